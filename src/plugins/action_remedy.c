/* vmscope_action's config-driven remediation: each <Rule> block (action_rule.c) registers a
 * notification callback of its own ("vmscope_action/RULE"), which takes the notifications its
 * rule matches (never this plugin's own) within the rule's rate limit and cooldown, copies them
 * into a bounded queue and returns; a fixed pool of workers runs the rule's actions (remedy.h)
 * and reports each result as an action_result notification and as counters. An action that
 * failed for an alarm is tried again with backoff while the alarm stands (retry.h): one more
 * callback ("vmscope_action/retries") sees the OKAYs that end alarms, and one thread puts the
 * retries that are due back into the queue. */
#include "action_internal.h"

#include "channel.h"
#include "queue.h"
#include "remedy.h"
#include "retry.h"

#define MAX_WORKERS 32

static struct {
  const struct action_conf *conf; /* the plugin's, set before the workers start */
  struct vs_rule *pending;        /* rules read from the config, until init */
  size_t n_pending;
  struct vs_rules *rules;
  struct vs_queue *queue;
  int n_workers, queue_size;
  cdtime_t exec_deadline, copy_timeout;
  bool patchset_copy;
  enum vs_instance_format instance_format; /* of action_result */
  pthread_t workers[MAX_WORKERS];
  int workers_running;
  struct vs_retries *retries;
  pthread_t retry_thread;
  bool retry_running;
  pthread_mutex_t lock;
  uint64_t ok, failed, dropped, retried; /* under LOCK */
  double duration_sum;                   /* since the last read, under LOCK */
  uint64_t duration_n;
  double last_drop_log;
  double last_duration; /* the read callback's: < 0 until an action finished */
  bool stopping;        /* atomic */
} rem = {
    .lock = PTHREAD_MUTEX_INITIALIZER, .n_workers = 2, .queue_size = 1000, .last_duration = -1};

/* ---------------------------------------------------------------------------- config */

/* An int option from LOW to HIGH. */
static int config_int(const oconfig_item_t *c, int *out, int low, int high) {
  if (vs_cf_int(c, PLUGIN, out) < 0) return -1;
  if (*out >= low && *out <= high) return 0;
  ERROR(PLUGIN ": %s must be %d to %d", c->key, low, high);
  return -1;
}

static int config_patchset_method(const oconfig_item_t *c) {
  _cleanup_(vs_freep) char *m = NULL;
  int rc = vs_cf_string(c, PLUGIN, &m);
  if (rc == 0 && strcasecmp(m, "copy") != 0 && strcasecmp(m, "reopen") != 0) {
    ERROR(PLUGIN ": PatchsetMethod is reopen or copy, not \"%s\"", m);
    rc = -1;
  }
  rem.patchset_copy = m && strcasecmp(m, "copy") == 0;
  return rc;
}

int remedy_config(oconfig_item_t *c) {
  const char *k = c->key;
  if (strcasecmp(k, "Rule") == 0) return rule_config(c, &rem.pending, &rem.n_pending);
  if (strcasecmp(k, "Workers") == 0) return config_int(c, &rem.n_workers, 1, MAX_WORKERS);
  if (strcasecmp(k, "QueueSize") == 0) return config_int(c, &rem.queue_size, 1, 1000000);
  if (strcasecmp(k, "ExecTimeout") == 0) return vs_cf_cdtime(c, PLUGIN, &rem.exec_deadline);
  if (strcasecmp(k, "CopyTimeout") == 0) return vs_cf_cdtime(c, PLUGIN, &rem.copy_timeout);
  if (strcasecmp(k, "PatchsetMethod") == 0) return config_patchset_method(c);
  if (strcasecmp(k, "PluginInstanceFormat") == 0)
    return vs_cf_get_instance_format(c, PLUGIN, &rem.instance_format);
  return 1;
}

bool remedy_has_rules(void) {
  return rem.n_pending > 0;
}

/* An agent action's command must pass the channel's allow-list as configured (AllowCommand):
 * one that cannot is refused now, not when its alarm fires. */
int remedy_check_allowed(const struct action_conf *c) {
  struct vs_channel_opts co = {.allow = (const char *const *)c->allow, .n_allow = c->n_allow};
  struct vs_channel *ch = vs_channel_open_unix("", &co); /* only its allow-list is asked */
  int rc = 0;
  for (size_t i = 0; i < rem.n_pending && rc == 0; i++)
    for (size_t k = 0; k < rem.pending[i].n_actions && rc == 0; k++) {
      const struct vs_rule_action *a = &rem.pending[i].actions[k];
      if (a->kind != VS_ACTION_AGENT) continue;
      json_t *cmd = json_loads(a->arg, 0, NULL); /* vs_rule_check made sure it has "execute" */
      const char *execute = json_string_value(json_object_get(cmd, "execute"));
      if (execute && !vs_channel_allows(ch, execute)) {
        ERROR(PLUGIN ": Rule \"%s\": its agent action runs \"%s\", which the guest agent "
                     "channel refuses: add AllowCommand \"%s\" to <Plugin " PLUGIN ">",
              rem.pending[i].name, execute, execute);
        rc = -1;
      }
      json_decref(cmd);
    }
  vs_channel_close(ch);
  return rc;
}

/* --------------------------------------------------------------------- notifications */

struct job {
  size_t rule;
  struct vs_event *event;
  int attempt; /* 1: the first run; a retry runs one action */
  size_t action;
};

static void job_free(void *p) {
  struct job *j = p;
  vs_event_free(j->event);
  free(j);
}

/* rules.h speaks collectd's severity numbers without knowing collectd: they must agree. */
_Static_assert(VS_SEV_FAILURE == NOTIF_FAILURE && VS_SEV_WARNING == NOTIF_WARNING &&
                   VS_SEV_OKAY == NOTIF_OKAY,
               "rules.h's severities are collectd's");

/* A meta entry's value as text, in BUF when it is not a string already. */
static const char *meta_text(const notification_meta_t *m, char *buf, size_t size) {
  switch (m->type) {
  case NM_TYPE_STRING:
    return m->nm_value.nm_string ? m->nm_value.nm_string : "";
  case NM_TYPE_SIGNED_INT:
    snprintf(buf, size, "%" PRIi64, m->nm_value.nm_signed_int);
    return buf;
  case NM_TYPE_UNSIGNED_INT:
    snprintf(buf, size, "%" PRIu64, m->nm_value.nm_unsigned_int);
    return buf;
  case NM_TYPE_DOUBLE:
    snprintf(buf, size, "%.17g", m->nm_value.nm_double);
    return buf;
  case NM_TYPE_BOOLEAN:
    return m->nm_value.nm_boolean ? "true" : "false";
  }
  buf[0] = '\0'; /* a type collectd added since */
  return buf;
}

static struct vs_event *event_of(const notification_t *n) {
  struct vs_event *e = vs_xcalloc(1, sizeof(*e));
  e->severity = n->severity;
  e->time = CDTIME_T_TO_DOUBLE(n->time ? n->time : cdtime());
  e->host = vs_xstrdup(n->host);
  e->plugin = vs_xstrdup(n->plugin);
  e->plugin_instance = vs_xstrdup(n->plugin_instance);
  e->type = vs_xstrdup(n->type);
  e->type_instance = vs_xstrdup(n->type_instance);
  e->message = vs_xstrdup(n->message);
  for (const notification_meta_t *m = n->meta; m; m = m->next) {
    char buf[64];
    vs_event_add_meta(e, m->name, meta_text(m, buf, sizeof(buf)));
  }
  return e;
}

/* A job the queue had no room for: counted, and logged at most every 10 s, so a flood does not
 * flood the log too. */
static void dropped(const struct vs_rule *r, const notification_t *n) {
  pthread_mutex_lock(&rem.lock);
  uint64_t count = ++rem.dropped;
  double now = vs_now_monotonic();
  bool say = now - rem.last_drop_log >= 10;
  if (say) rem.last_drop_log = now;
  pthread_mutex_unlock(&rem.lock);
  if (say)
    WARNING(PLUGIN ": the action queue is full (QueueSize %d): rule \"%s\" dropped for %s "
                   "(%" PRIu64 " dropped so far)",
            rem.queue_size, r->name, n->plugin_instance, count);
}

/* One per rule (collectd calls each with every notification): takes what the rule matches
 * and may run now, copied, into the queue. Never waits. */
static int notify_cb(const notification_t *n, user_data_t *ud) {
  size_t rule = (size_t)(uintptr_t)ud->data;
  if (!rem.rules || !rem.queue || __atomic_load_n(&rem.stopping, __ATOMIC_ACQUIRE) ||
      strcmp(n->plugin, PLUGIN) == 0) /* no loops */
    return 0;
  const struct vs_rule *r = vs_rules_get(rem.rules, rule);
  /* Matching needs the meta as text: the event is built first, and kept only if it matches. */
  struct vs_event *e = event_of(n);
  if (!r || !vs_rule_matches(r, e)) {
    vs_event_free(e);
    return 0;
  }
  vs_retries_alarm(rem.retries, e); /* it stands, whether this rule runs for it now or not */
  if (!vs_rules_admit(rem.rules, rule, vs_event_domain(e), vs_now_monotonic())) {
    vs_event_free(e);
    return 0;
  }
  struct job *j = vs_xcalloc(1, sizeof(*j));
  j->rule = rule;
  j->event = e;
  j->attempt = 1;
  if (vs_queue_push(rem.queue, j)) return 0;
  job_free(j);
  dropped(r, n);
  return 0;
}

/* Every OKAY: the alarm it ends has its retries dropped (whichever plugin sent it). */
static int okay_cb(const notification_t *n, user_data_t *ud) {
  (void)ud;
  if (!rem.retries || n->severity != NOTIF_OKAY || strcmp(n->plugin, PLUGIN) == 0) return 0;
  struct vs_event e = {.severity = n->severity,
                       .host = (char *)n->host,
                       .plugin = (char *)n->plugin,
                       .plugin_instance = (char *)n->plugin_instance,
                       .type = (char *)n->type,
                       .type_instance = (char *)n->type_instance};
  vs_retries_note(rem.retries, &e);
  return 0;
}

/* ---------------------------------------------------------------------------- workers */

/* The VM's plugin instance as PluginInstanceFormat says, whichever way the notification named
 * it: vmscope's plugins give the VM's name (meta "name") and UUID (meta "id") besides their
 * plugin instance; other plugins' notifications keep theirs. */
static const char *event_instance(const struct vs_event *e) {
  const char *domain = vs_event_domain(e);
  if (!e->plugin || strncmp(e->plugin, "vmscope_", 8) != 0) return domain;
  const char *name = vs_event_meta(e, "name"), *id = vs_event_meta(e, "id");
  return vs_instance_name(rem.instance_format, name ? name : domain, id ? id : domain);
}

/* The action's result as an action_result notification; RETRY_IN: seconds until it is tried
 * again, or < 0 when it is not. */
static void report(const struct vs_rule *r, const struct vs_rule_action *a, const char *domain,
                   const struct job *j, bool good, double seconds, const char *error,
                   json_t *detail, double retry_in) {
  const struct vs_event *e = j->event;
  notification_t n;
  char ti[DATA_MAX_NAME_LEN];
  snprintf(ti, sizeof(ti), "%s", r->name);
  vs_notification_init(&n, good ? NOTIF_OKAY : NOTIF_FAILURE, PLUGIN, event_instance(e),
                       "action_result", ti);
  plugin_notification_meta_add_string(&n, "rule", r->name);
  plugin_notification_meta_add_string(&n, "action", vs_action_kind_name(a->kind));
  plugin_notification_meta_add_string(&n, "argument", a->arg);
  plugin_notification_meta_add_string(&n, "domain", domain);
  plugin_notification_meta_add_double(&n, "duration", seconds);
  plugin_notification_meta_add_boolean(&n, "dry_run", r->dry_run);
  plugin_notification_meta_add_string(&n, "trigger", e->type ? e->type : "");
  plugin_notification_meta_add_unsigned_int(&n, "attempt", (uint64_t)j->attempt);
  if (retry_in >= 0) plugin_notification_meta_add_double(&n, "retry_in", retry_in);
  if (error) plugin_notification_meta_add_string(&n, "error", error);
  if (detail) {
    char *d = json_dumps(detail, JSON_COMPACT);
    if (d) plugin_notification_meta_add_string(&n, "detail", d);
    free(d);
  }
  if (r->dry_run)
    vs_notification_send(&n, "rule %s: would run %s %s on %s (dry run)", r->name,
                         vs_action_kind_name(a->kind), a->arg, domain);
  else if (good)
    vs_notification_send(&n, "rule %s: %s on %s done in %.0f ms%s", r->name,
                         vs_action_kind_name(a->kind), domain, seconds * 1000,
                         j->attempt > 1 ? " (a retry)" : "");
  else if (retry_in >= 0) /* the retry before the error: collectd cuts messages at 256 bytes */
    vs_notification_send(&n, "rule %s: %s on %s failed, tried again in %.0f s (attempt %d): %s",
                         r->name, vs_action_kind_name(a->kind), domain, retry_in, j->attempt + 1,
                         error ? error : "unknown error");
  else
    vs_notification_send(&n, "rule %s: %s on %s failed: %s", r->name, vs_action_kind_name(a->kind),
                         domain, error ? error : "unknown error");
}

/* When a failed action of rule R is tried again (-1: it is not): while its alarm stands and its
 * retries last, never once the plugin is stopping. */
static double schedule_retry(const struct vs_rule *r, const struct job *j, size_t action) {
  if (__atomic_load_n(&rem.stopping, __ATOMIC_ACQUIRE)) return -1;
  struct vs_retry_policy p = {.retries = r->retries < 0 ? VS_RETRY_DEFAULT_COUNT : r->retries,
                              .backoff_s = r->retry_backoff_s};
  return vs_retries_schedule(rem.retries, j->rule, action, &p, j->event, j->attempt,
                             vs_now_monotonic());
}

/* Runs (or, in a dry run, names) action ACTION of rule R for the job's event, reports the
 * result, counts it, and schedules a retry when it failed for an alarm. */
static void run_action(struct vs_remedy *ctx, const struct vs_rule *r, size_t action,
                       const struct job *j) {
  const struct vs_rule_action *a = &r->actions[action];
  const char *domain = vs_event_domain(j->event);
  double t0 = vs_now_monotonic();
  struct vs_err err = {0};
  json_t *detail = NULL;
  int rc = 0;
  if (r->dry_run)
    INFO(PLUGIN ": rule \"%s\" (dry run): would run %s %s on %s", r->name,
         vs_action_kind_name(a->kind), a->arg, domain);
  else
    rc = vs_remedy_run(ctx, r, a, j->event, domain, &detail, &err);
  double secs = vs_now_monotonic() - t0;
  double retry_in = rc < 0 ? schedule_retry(r, j, action) : -1;
  if (rc < 0 && retry_in >= 0)
    WARNING(PLUGIN ": rule \"%s\": %s on %s failed (attempt %d): %s; tried again in %.0f s",
            r->name, vs_action_kind_name(a->kind), domain, j->attempt, vs_err_msg(&err), retry_in);
  else if (rc < 0)
    WARNING(PLUGIN ": rule \"%s\": %s on %s failed (attempt %d): %s", r->name,
            vs_action_kind_name(a->kind), domain, j->attempt, vs_err_msg(&err));
  report(r, a, domain, j, rc == 0, secs, rc < 0 ? vs_err_msg(&err) : NULL, detail, retry_in);
  pthread_mutex_lock(&rem.lock);
  if (rc == 0)
    rem.ok++;
  else
    rem.failed++;
  if (retry_in >= 0) rem.retried++;
  rem.duration_sum += secs;
  rem.duration_n++;
  pthread_mutex_unlock(&rem.lock);
  json_decref(detail);
  vs_err_clear(&err);
}

static void *action_worker(void *arg) {
  (void)arg;
  const struct action_conf *c = rem.conf;
  struct vs_fleet_opts fo = action_fleet_opts(c);
  struct vs_remedy_opts ro = {.uri = c->uri,
                              .fleet = &fo,
                              .allow = (const char *const *)c->allow,
                              .n_allow = c->n_allow,
                              .agent_timeout_ms = (int)CDTIME_T_TO_MS(c->agent_timeout),
                              .thaw_wait_ms = (int)CDTIME_T_TO_MS(c->thaw_timeout),
                              .exec_deadline_ms = (int)CDTIME_T_TO_MS(rem.exec_deadline),
                              .patchset_copy = rem.patchset_copy,
                              .copy_timeout_s = (int)CDTIME_T_TO_TIME_T(rem.copy_timeout)};
  struct vs_remedy ctx = {.o = &ro};
  struct job *j;
  while ((j = vs_queue_pop(rem.queue))) {
    const struct vs_rule *r = vs_rules_get(rem.rules, j->rule);
    bool stopping = __atomic_load_n(&rem.stopping, __ATOMIC_ACQUIRE); /* drop what is queued */
    if (r && !stopping && j->attempt > 1) {
      if (j->action < r->n_actions) run_action(&ctx, r, j->action, j);
    } else {
      for (size_t i = 0; r && !stopping && i < r->n_actions; i++)
        run_action(&ctx, r, i, j);
    }
    job_free(j);
  }
  vs_remedy_clear(&ctx);
  return NULL;
}

/* Puts the retries that fall due back into the queue, as jobs of one action each. */
static void *retry_thread(void *arg) {
  (void)arg;
  struct vs_retry rt;
  while (vs_retries_wait(rem.retries, &rt)) {
    const struct vs_rule *r = vs_rules_get(rem.rules, rt.rule);
    struct job *j = vs_xcalloc(1, sizeof(*j));
    *j = (struct job){
        .rule = rt.rule, .event = rt.event, .attempt = rt.attempt, .action = rt.action};
    if (vs_queue_push(rem.queue, j)) continue;
    notification_t n = {.plugin_instance = ""};
    snprintf(n.plugin_instance, sizeof(n.plugin_instance), "%s", vs_event_domain(j->event));
    if (r) dropped(r, &n);
    job_free(j);
  }
  return NULL;
}

/* ---------------------------------------------------------------------------- lifecycle */

static void callback_name(size_t i, char *name, size_t size) {
  snprintf(name, size, PLUGIN "/%s", vs_rules_get(rem.rules, i)->name);
}

int remedy_start(const struct action_conf *c) {
  if (rem.rules || rem.n_pending == 0) return 0;
  rem.conf = c;
  rem.rules = vs_rules_new(rem.pending, rem.n_pending);
  free(rem.pending);
  rem.pending = NULL;
  rem.n_pending = 0;
  rem.queue = vs_queue_new((size_t)rem.queue_size);
  rem.retries = vs_retries_new();
  if (plugin_thread_create(&rem.retry_thread, retry_thread, NULL, "vmscope retry") != 0) {
    ERROR(PLUGIN ": cannot start the retry thread");
    return -1;
  }
  rem.retry_running = true;
  user_data_t okay_ud = {0};
  if (plugin_register_notification(PLUGIN "/retries", okay_cb, &okay_ud) != 0) {
    ERROR(PLUGIN ": cannot register the notification callback " PLUGIN "/retries");
    return -1;
  }
  for (int i = 0; i < rem.n_workers; i++) {
    if (plugin_thread_create(&rem.workers[i], action_worker, NULL, "vmscope act") != 0) {
      ERROR(PLUGIN ": cannot start action worker %d", i);
      return -1;
    }
    rem.workers_running++;
  }
  for (size_t i = 0; i < vs_rules_count(rem.rules); i++) {
    char name[DATA_MAX_NAME_LEN * 2];
    callback_name(i, name, sizeof(name));
    user_data_t ud = {.data = (void *)(uintptr_t)i};
    if (plugin_register_notification(name, notify_cb, &ud) != 0) {
      ERROR(PLUGIN ": cannot register the notification callback %s", name);
      return -1;
    }
  }
  return 0;
}

void remedy_read(void) {
  if (!rem.rules) return;
  pthread_mutex_lock(&rem.lock);
  uint64_t ok = rem.ok, failed = rem.failed, drops = rem.dropped, retried = rem.retried;
  double dsum = rem.duration_sum;
  uint64_t dn = rem.duration_n;
  rem.duration_sum = 0;
  rem.duration_n = 0;
  pthread_mutex_unlock(&rem.lock);
  vs_glue_submit(PLUGIN, "", "count", "actions_ok", (gauge_t)ok, 0);
  vs_glue_submit(PLUGIN, "", "count", "actions_failed", (gauge_t)failed, 0);
  vs_glue_submit(PLUGIN, "", "count", "actions_dropped", (gauge_t)drops, 0);
  vs_glue_submit(PLUGIN, "", "count", "actions_retried", (gauge_t)retried, 0);
  /* the mean of the actions finished since the last read; kept while none finish, so the
   * series does not come and go */
  if (dn) rem.last_duration = dsum / (double)dn;
  if (rem.last_duration >= 0)
    vs_glue_submit(PLUGIN, "", "duration", "action", (gauge_t)rem.last_duration, 0);
}

void remedy_halt(void) {
  if (!rem.queue || __atomic_load_n(&rem.stopping, __ATOMIC_ACQUIRE)) return;
  /* No more notifications in; what is queued is dropped (a shutdown does not wait for webhooks
   * to retry), the workers end after the action they are running. */
  __atomic_store_n(&rem.stopping, true, __ATOMIC_RELEASE);
  if (rem.retry_running) { /* before the queue closes: the thread pushes into it */
    vs_retries_close(rem.retries);
    pthread_join(rem.retry_thread, NULL);
    rem.retry_running = false;
  }
  vs_queue_close(rem.queue);
  for (int i = 0; i < rem.workers_running; i++)
    pthread_join(rem.workers[i], NULL);
  rem.workers_running = 0;
}

void remedy_stop(void) {
  if (rem.queue) {
    /* Unregistered here, not in remedy_halt: another vmscope plugin's worker may still be
     * dispatching then, and collectd's notification list has no lock. */
    for (size_t i = 0; rem.rules && i < vs_rules_count(rem.rules); i++) {
      char name[DATA_MAX_NAME_LEN * 2];
      callback_name(i, name, sizeof(name));
      plugin_unregister_notification(name);
    }
    plugin_unregister_notification(PLUGIN "/retries");
    remedy_halt();
    vs_queue_free(rem.queue, job_free);
    rem.queue = NULL;
  }
  vs_retries_free(rem.retries);
  rem.retries = NULL;
  vs_rules_free(rem.rules);
  rem.rules = NULL;
  for (size_t i = 0; i < rem.n_pending; i++)
    vs_rule_clear(&rem.pending[i]);
  free(rem.pending);
  rem.pending = NULL;
  rem.n_pending = 0;
}
