/* vmscope_action: collectd plugin for two things. It hosts this host's proxy agent (see
 * route.h): it keeps the host's running domains in the etcd fleet map under a lease, delivers
 * the messages put into the host's inbox through each VM's guest agent channel, and answers
 * them; without a FleetStore it serves a local unix socket instead (mode 0600). And it runs
 * config-driven remediation: each <Rule> block registers a notification callback of its own
 * ("vmscope_action/RULE"), which takes the notifications its rule matches (never this
 * plugin's own) within the rule's rate limit and cooldown, copies them into a bounded queue
 * and returns; a fixed pool of workers runs the rule's actions (remedy.h) and reports each
 * result as an action_result notification and as counters. See collectd-vmscope(5).
 *
 * Threads (plugin_thread_create): one for the proxy, Workers for the actions. */
#include "glue.h"

#include "channel.h"
#include "fleet.h"
#include "queue.h"
#include "remedy.h"
#include "route.h"
#include "rules.h"
#include "virt.h"
#include "webhook.h"

#define PLUGIN "vmscope_action"
#define MAX_LIST 64
#define MAX_WORKERS 32

static struct {
  char *stores[MAX_LIST];
  size_t n_stores;
  char *allow[MAX_LIST];
  size_t n_allow;
  char *host, *socket, *uri, *prefix;
  char *cacert, *cert, *key, *user, *password; /* etcd TLS and authentication */
  int lease;
  cdtime_t agent_timeout;
  pthread_t thread;
  pthread_mutex_t lock;
  bool running, stop;
  uint64_t delivered, errors; /* under LOCK */
  size_t vms;
  struct vs_once once; /* the worker's */
  /* remediation */
  struct vs_rule *pending; /* rules read from the config, until init */
  size_t n_pending;
  struct vs_rules *rules;
  struct vs_queue *queue;
  int n_workers, queue_size;
  cdtime_t exec_deadline, copy_timeout;
  bool patchset_copy;
  pthread_t workers[MAX_WORKERS];
  int workers_running;
  uint64_t actions_ok, actions_failed, actions_dropped; /* under LOCK */
  double duration_sum;                                  /* since the last read, under LOCK */
  uint64_t duration_n;
  double last_drop_log;
  double last_duration;                    /* the read callback's: < 0 until an action finished */
  bool stopping;                           /* atomic */
  enum vs_instance_format instance_format; /* of action_result */
} act = {.lock = PTHREAD_MUTEX_INITIALIZER,
         .lease = 15,
         .n_workers = 2,
         .queue_size = 1000,
         .last_duration = -1};

/* --------------------------------------------------------------------------- rules */

/* A field of Match (or its own line) names one glob: given twice, the rule is refused. */
static int set_glob(const struct vs_rule *r, const char *f, char **field, const char *v) {
  if (*field) {
    ERROR(PLUGIN ": Rule \"%s\": %s is given twice (\"%s\" and \"%s\"): a notification has one %s",
          r->name, f, *field, v, f);
    return -1;
  }
  *field = vs_xstrdup(v);
  return 0;
}

/* Match Plugin "x" Type "y" Severity "warning" Meta "key" "value" ... */
static int rule_match(struct vs_rule *r, oconfig_item_t *c) {
  for (int k = 0; k < c->values_num;) {
    int step = 2; /* FIELD "glob", or Meta "key" "value" */
    if (c->values[k].type != OCONFIG_TYPE_STRING || k + 1 >= c->values_num ||
        c->values[k + 1].type != OCONFIG_TYPE_STRING) {
      ERROR(PLUGIN ": Rule \"%s\": Match takes pairs of strings: FIELD \"glob\" ...", r->name);
      return -1;
    }
    const char *f = c->values[k].value.string, *v = c->values[k + 1].value.string;
    int rc;
    if (strcasecmp(f, "Plugin") == 0)
      rc = set_glob(r, "Plugin", &r->plugin, v);
    else if (strcasecmp(f, "PluginInstance") == 0)
      rc = set_glob(r, "PluginInstance", &r->plugin_instance, v);
    else if (strcasecmp(f, "Type") == 0)
      rc = set_glob(r, "Type", &r->type, v);
    else if (strcasecmp(f, "TypeInstance") == 0)
      rc = set_glob(r, "TypeInstance", &r->type_instance, v);
    else if (strcasecmp(f, "Severity") == 0)
      rc = set_glob(r, "Severity", &r->severity, v);
    else if (strcasecmp(f, "Meta") == 0) {
      if (k + 2 >= c->values_num || c->values[k + 2].type != OCONFIG_TYPE_STRING) {
        ERROR(PLUGIN ": Rule \"%s\": Match Meta takes a key glob and a value glob", r->name);
        return -1;
      }
      size_t nk = r->n_meta;
      vs_strv_add(&r->meta_keys, &nk, v);
      vs_strv_add(&r->meta_values, &r->n_meta, c->values[k + 2].value.string);
      step = 3;
    } else {
      ERROR(PLUGIN ": Rule \"%s\": Match field \"%s\" (expected Plugin, PluginInstance, Type, "
                   "TypeInstance, Severity or Meta)",
            r->name, f);
      return -1;
    }
    if (rc != 0) return -1;
    k += step;
  }
  return 0;
}

static int rule_config(oconfig_item_t *ci) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    ERROR(PLUGIN ": <Rule> takes one name: <Rule \"name\">");
    return -1;
  }
  struct vs_rule r = {.name = vs_xstrdup(ci->values[0].value.string), .webhook.retries = -1};
  /* "vmscope_action: Rule "name"", the prefix of this rule's messages */
  _cleanup_(vs_freep) char *where = vs_xasprintf(PLUGIN ": Rule \"%s\"", r.name);
  static const char *const lists[] = {"Match", "Meta", "Domain", "Action", "WebhookHeader", NULL};
  int rc = vs_cf_check_repeats(ci, where, NULL, lists);
  for (int i = 0; i < ci->children_num && rc == 0; i++) {
    oconfig_item_t *c = &ci->children[i];
    const char *k = c->key;
    if (strcasecmp(k, "Match") == 0) {
      rc = rule_match(&r, c);
    } else if (strcasecmp(k, "Plugin") == 0 || strcasecmp(k, "PluginInstance") == 0 ||
               strcasecmp(k, "Type") == 0 || strcasecmp(k, "TypeInstance") == 0 ||
               strcasecmp(k, "Severity") == 0 || strcasecmp(k, "Meta") == 0) {
      oconfig_item_t m = {.key = "Match", .values_num = c->values_num + 1};
      oconfig_value_t vals[4];
      if (c->values_num > 2) {
        ERROR(PLUGIN ": Rule \"%s\": %s takes one glob (Meta: two)", r.name, k);
        rc = -1;
        break;
      }
      vals[0] = (oconfig_value_t){.type = OCONFIG_TYPE_STRING, .value.string = (char *)k};
      for (int v = 0; v < c->values_num; v++)
        vals[v + 1] = c->values[v];
      m.values = vals;
      rc = rule_match(&r, &m);
    } else if (strcasecmp(k, "Domain") == 0) {
      for (int v = 0; v < c->values_num && rc == 0; v++) {
        if (c->values[v].type != OCONFIG_TYPE_STRING) {
          ERROR(PLUGIN ": Rule \"%s\": Domain takes names or globs (strings)", r.name);
          rc = -1;
        } else {
          vs_strv_add(&r.domains, &r.n_domains, c->values[v].value.string);
        }
      }
    } else if (strcasecmp(k, "Action") == 0) {
      int kind = c->values_num == 2 && c->values[0].type == OCONFIG_TYPE_STRING &&
                         c->values[1].type == OCONFIG_TYPE_STRING
                     ? vs_action_kind_parse(c->values[0].value.string)
                     : -1;
      if (kind < 0) {
        ERROR(PLUGIN ": Rule \"%s\": Action takes \"agent\", \"patchset\" or \"webhook\" and "
                     "its argument",
              r.name);
        rc = -1;
      } else if (kind == VS_ACTION_PATCHSET &&
                 vs_cf_check_file(c, where, c->values[1].value.string) < 0) {
        rc = -1; /* "Rule "x": Action "/sets/fix.qcow2": No such file or directory" */
      } else {
        r.actions = vs_xrealloc(r.actions, (r.n_actions + 1) * sizeof(*r.actions));
        r.actions[r.n_actions++] = (struct vs_rule_action){(enum vs_action_kind)kind,
                                                           vs_xstrdup(c->values[1].value.string)};
      }
    } else if (strcasecmp(k, "DryRun") == 0) {
      rc = vs_cf_boolean(c, where, &r.dry_run);
    } else if (strcasecmp(k, "RateLimit") == 0) {
      /* two numbers: collectd's cf_util_* take one, so they are checked here (the fuzzer's
       * RateLimit 3e86 1 was an unchecked cast) */
      if (c->values_num != 2 || c->values[0].type != OCONFIG_TYPE_NUMBER ||
          c->values[1].type != OCONFIG_TYPE_NUMBER ||
          !vs_cf_whole_int(c->values[0].value.number, &r.rate_count) ||
          !vs_cf_whole_int(c->values[1].value.number, &r.rate_window_s) || r.rate_count < 0 ||
          r.rate_window_s < 0) {
        ERROR(PLUGIN ": Rule \"%s\": RateLimit takes a count and seconds, whole numbers from 0 "
                     "to %d",
              r.name, INT_MAX);
        rc = -1;
      }
    } else if (strcasecmp(k, "Cooldown") == 0) {
      rc = vs_cf_int(c, where, &r.cooldown_s);
    } else if (strcasecmp(k, "WebhookHeader") == 0) {
      char *h = NULL;
      if ((rc = vs_cf_string(c, where, &h)) == 0)
        vs_strv_add(&r.webhook.headers, &r.webhook.n_headers, h);
      free(h);
    } else if (strcasecmp(k, "WebhookUser") == 0) {
      rc = vs_cf_string(c, where, &r.webhook.user);
    } else if (strcasecmp(k, "WebhookPassword") == 0) {
      rc = vs_cf_string(c, where, &r.webhook.password);
    } else if (strcasecmp(k, "WebhookBearer") == 0) {
      rc = vs_cf_string(c, where, &r.webhook.bearer);
    } else if (strcasecmp(k, "WebhookCACert") == 0) {
      if ((rc = vs_cf_string(c, where, &r.webhook.cacert)) == 0)
        rc = vs_cf_check_file(c, where, r.webhook.cacert);
    } else if (strcasecmp(k, "WebhookVerifyPeer") == 0) {
      bool verify = true;
      rc = vs_cf_boolean(c, where, &verify);
      r.webhook.insecure = !verify;
    } else if (strcasecmp(k, "WebhookTimeout") == 0) {
      cdtime_t t = 0;
      if ((rc = vs_cf_cdtime(c, where, &t)) == 0) r.webhook.timeout_ms = (int)CDTIME_T_TO_MS(t);
    } else if (strcasecmp(k, "WebhookRetries") == 0) {
      rc = vs_cf_int(c, where, &r.webhook.retries);
    } else if (strcasecmp(k, "WebhookBody") == 0) {
      rc = vs_cf_string(c, where, &r.webhook.body);
    } else {
      ERROR(PLUGIN ": Rule \"%s\": unknown option \"%s\" (expected Match, Plugin, PluginInstance, "
                   "Type, TypeInstance, Severity, Meta, Domain, Action, DryRun, RateLimit, "
                   "Cooldown, WebhookHeader, WebhookUser, WebhookPassword, WebhookBearer, "
                   "WebhookCACert, WebhookVerifyPeer, WebhookTimeout, WebhookRetries or "
                   "WebhookBody)",
            r.name, k);
      rc = -1;
    }
  }
  struct vs_err err = {0};
  if (rc == 0 && (vs_rule_check(&r, &err) < 0 ||
                  (r.webhook.body && vs_webhook_check_template(r.webhook.body, &err) < 0))) {
    ERROR(PLUGIN ": %s", vs_err_msg(&err));
    vs_err_clear(&err);
    rc = -1;
  }
  for (size_t i = 0; rc == 0 && i < act.n_pending; i++)
    if (strcmp(act.pending[i].name, r.name) == 0) {
      ERROR(PLUGIN ": two rules are named \"%s\" (a rule's name is its callback's)", r.name);
      rc = -1;
    }
  if (rc != 0) {
    vs_rule_clear(&r);
    return -1;
  }
  act.pending = vs_xrealloc(act.pending, (act.n_pending + 1) * sizeof(*act.pending));
  act.pending[act.n_pending++] = r;
  return 0;
}

/* An agent action's command must pass the channel's allow-list as configured (AllowCommand):
 * one that cannot is refused now, not when its alarm fires. */
static int check_rules_allowed(void) {
  struct vs_channel_opts co = {.allow = (const char *const *)act.allow, .n_allow = act.n_allow};
  struct vs_channel *ch = vs_channel_open_unix("", &co); /* only its allow-list is asked */
  int rc = 0;
  for (size_t i = 0; i < act.n_pending && rc == 0; i++)
    for (size_t k = 0; k < act.pending[i].n_actions && rc == 0; k++) {
      const struct vs_rule_action *a = &act.pending[i].actions[k];
      if (a->kind != VS_ACTION_AGENT) continue;
      json_t *cmd = json_loads(a->arg, 0, NULL); /* vs_rule_check made sure it has "execute" */
      const char *execute = json_string_value(json_object_get(cmd, "execute"));
      if (execute && !vs_channel_allows(ch, execute)) {
        ERROR(PLUGIN ": Rule \"%s\": its agent action runs \"%s\", which the guest agent "
                     "channel refuses: add AllowCommand \"%s\" to <Plugin " PLUGIN ">",
              act.pending[i].name, execute, execute);
        rc = -1;
      }
      json_decref(cmd);
    }
  vs_channel_close(ch);
  return rc;
}

static int config(oconfig_item_t *ci) {
  static const char *const lists[] = {"FleetStore", "AllowCommand", "Rule", NULL};
  if (vs_cf_check_repeats(ci, PLUGIN, NULL, lists) < 0) return -1;
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = &ci->children[i];
    int rc = 0;
    if (strcasecmp(c->key, "FleetStore") == 0 || strcasecmp(c->key, "AllowCommand") == 0) {
      bool store = strcasecmp(c->key, "FleetStore") == 0;
      for (int k = 0; k < c->values_num && rc == 0; k++) {
        if (c->values[k].type != OCONFIG_TYPE_STRING ||
            (store ? act.n_stores : act.n_allow) == MAX_LIST) {
          ERROR(PLUGIN ": %s takes strings (at most %d)", c->key, MAX_LIST);
          rc = -1;
        } else if (store) {
          act.stores[act.n_stores++] = vs_xstrdup(c->values[k].value.string);
        } else {
          act.allow[act.n_allow++] = vs_xstrdup(c->values[k].value.string);
        }
      }
    } else if (strcasecmp(c->key, "HostName") == 0) {
      rc = vs_cf_string(c, PLUGIN, &act.host);
    } else if (strcasecmp(c->key, "Lease") == 0) {
      if ((rc = vs_cf_int(c, PLUGIN, &act.lease)) == 0 && act.lease < 2) {
        ERROR(PLUGIN ": Lease must be at least 2 seconds");
        rc = -1;
      }
    } else if (strcasecmp(c->key, "AgentTimeout") == 0) {
      rc = vs_cf_cdtime(c, PLUGIN, &act.agent_timeout);
    } else if (strcasecmp(c->key, "Socket") == 0) {
      rc = vs_cf_string(c, PLUGIN, &act.socket);
    } else if (strcasecmp(c->key, "Connection") == 0) {
      rc = vs_cf_string(c, PLUGIN, &act.uri);
    } else if (strcasecmp(c->key, "Prefix") == 0) {
      rc = vs_cf_string(c, PLUGIN, &act.prefix);
    } else if (strcasecmp(c->key, "FleetCACert") == 0) {
      if ((rc = vs_cf_string(c, PLUGIN, &act.cacert)) == 0)
        rc = vs_cf_check_file(c, PLUGIN, act.cacert);
    } else if (strcasecmp(c->key, "FleetCert") == 0) {
      if ((rc = vs_cf_string(c, PLUGIN, &act.cert)) == 0)
        rc = vs_cf_check_file(c, PLUGIN, act.cert);
    } else if (strcasecmp(c->key, "FleetKey") == 0) {
      if ((rc = vs_cf_string(c, PLUGIN, &act.key)) == 0) rc = vs_cf_check_file(c, PLUGIN, act.key);
    } else if (strcasecmp(c->key, "FleetUser") == 0) {
      rc = vs_cf_string(c, PLUGIN, &act.user);
    } else if (strcasecmp(c->key, "FleetPassword") == 0) {
      rc = vs_cf_string(c, PLUGIN, &act.password);
    } else if (strcasecmp(c->key, "Rule") == 0) {
      rc = rule_config(c);
    } else if (strcasecmp(c->key, "Workers") == 0) {
      if ((rc = vs_cf_int(c, PLUGIN, &act.n_workers)) == 0 &&
          (act.n_workers < 1 || act.n_workers > MAX_WORKERS)) {
        ERROR(PLUGIN ": Workers must be 1 to %d", MAX_WORKERS);
        rc = -1;
      }
    } else if (strcasecmp(c->key, "QueueSize") == 0) {
      if ((rc = vs_cf_int(c, PLUGIN, &act.queue_size)) == 0 &&
          (act.queue_size < 1 || act.queue_size > 1000000)) {
        ERROR(PLUGIN ": QueueSize must be 1 to 1000000");
        rc = -1;
      }
    } else if (strcasecmp(c->key, "ExecTimeout") == 0) {
      rc = vs_cf_cdtime(c, PLUGIN, &act.exec_deadline);
    } else if (strcasecmp(c->key, "CopyTimeout") == 0) {
      rc = vs_cf_cdtime(c, PLUGIN, &act.copy_timeout);
    } else if (strcasecmp(c->key, "PatchsetMethod") == 0) {
      char *m = NULL;
      if ((rc = vs_cf_string(c, PLUGIN, &m)) == 0 && strcasecmp(m, "copy") != 0 &&
          strcasecmp(m, "reopen") != 0) {
        ERROR(PLUGIN ": PatchsetMethod is reopen or copy, not \"%s\"", m);
        rc = -1;
      }
      act.patchset_copy = m && strcasecmp(m, "copy") == 0;
      free(m);
    } else if (strcasecmp(c->key, "PluginInstanceFormat") == 0) {
      rc = vs_cf_get_instance_format(c, PLUGIN, &act.instance_format);
    } else {
      ERROR(PLUGIN
            ": unknown option \"%s\" (expected FleetStore, HostName, Lease, "
            "AgentTimeout, AllowCommand, Socket, Connection, Prefix, FleetCACert, FleetCert, "
            "FleetKey, FleetUser, FleetPassword, Rule, Workers, QueueSize, ExecTimeout, "
            "PatchsetMethod, CopyTimeout or PluginInstanceFormat)",
            c->key);
      rc = -1;
    }
    if (rc != 0) return -1;
  }
  if (act.n_stores == 0 && !act.socket && act.n_pending == 0) {
    ERROR(PLUGIN ": give FleetStore (etcd endpoints), Socket (a local proxy socket) or a Rule");
    return -1;
  }
  return check_rules_allowed();
}

/* The fleet store as configured (Store, Prefix, TLS and credentials). */
static struct vs_fleet_opts fleet_opts(void) {
  return (struct vs_fleet_opts){.endpoints = (const char *const *)act.stores,
                                .n_endpoints = act.n_stores,
                                .prefix = act.prefix,
                                .cacert = act.cacert,
                                .cert = act.cert,
                                .key = act.key,
                                .user = act.user,
                                .password = act.password};
}

static void *worker(void *arg) {
  (void)arg;
  struct vs_err err = {0};
  struct vs_fleet_opts fo = fleet_opts();
  struct vs_channel_opts co = {.timeout_ms = (int)CDTIME_T_TO_MS(act.agent_timeout),
                               .allow = (const char *const *)act.allow,
                               .n_allow = act.n_allow};
  struct vs_fleet *f = act.n_stores ? vs_fleet_open(&fo, &err) : NULL;
  struct vs_virt *v = NULL;
  struct vs_proxy *p = NULL;
  double next_refresh = 0;
  unsigned long events = 0, seen_events = 0;
  vs_virt_enable_events(); /* before the connection: domain lifecycle events update the map */
  bool stop = false;
  while (!stop) {
    if (!v && !(v = vs_virt_open(act.uri, false, &err))) {
      vs_once_fail(&act.once, PLUGIN, "libvirt", vs_err_msg(&err));
      vs_err_clear(&err);
    } else if (v && vs_virt_watch_lifecycle(v, &events, &err) < 0) {
      vs_once_fail(&act.once, PLUGIN, "libvirt events", vs_err_msg(&err));
      vs_err_clear(&err);
    } else if (v && !vs_virt_alive(v)) {
      vs_virt_close(v); /* libvirtd went away: reconnect next round */
      v = NULL;
      vs_proxy_free(p);
      p = NULL;
    }
    if (v && !p && (!act.n_stores || f)) {
      p = vs_proxy_new(f, act.host, act.lease, v, &co, &err);
      if (p && act.socket && vs_proxy_listen(p, act.socket, &err) < 0) {
        vs_proxy_free(p);
        p = NULL;
      }
      if (!p) {
        vs_once_fail(&act.once, PLUGIN, "proxy", vs_err_msg(&err));
        vs_err_clear(&err);
      } else {
        vs_once_ok(&act.once, PLUGIN, "libvirt");
        vs_once_ok(&act.once, PLUGIN, "proxy");
      }
    }
    int handled = 0;
    if (p) {
      /* The map follows the domains: a lifecycle event (a domain started, stopped, migrated
       * in or out) refreshes it at once; otherwise it is refreshed, and the lease renewed, at
       * a third of the lease's time to live. */
      unsigned long now_events = __atomic_load_n(&events, __ATOMIC_RELAXED);
      if (now_events != seen_events || vs_now_monotonic() >= next_refresh) {
        seen_events = now_events;
        if (vs_proxy_refresh(p, &err) < 0) {
          vs_once_fail(&act.once, PLUGIN, "fleet", vs_err_msg(&err));
          vs_err_clear(&err);
        } else {
          vs_once_ok(&act.once, PLUGIN, "fleet");
        }
        next_refresh = vs_now_monotonic() + act.lease / 3.0;
      }
      handled = vs_proxy_deliver(p, &err);
      if (handled < 0) {
        vs_once_fail(&act.once, PLUGIN, "inbox", vs_err_msg(&err));
        vs_err_clear(&err);
      }
      int served = vs_proxy_serve(p, handled > 0 ? 0 : (f ? 5 : 200), &err);
      if (served < 0) vs_err_clear(&err);
      pthread_mutex_lock(&act.lock);
      if (handled > 0) act.delivered += (uint64_t)handled;
      if (served > 0) act.delivered += (uint64_t)served;
      if (handled < 0) act.errors++;
      pthread_mutex_unlock(&act.lock);
    } else {
      usleep(500000);
    }
    pthread_mutex_lock(&act.lock);
    stop = act.stop;
    pthread_mutex_unlock(&act.lock);
  }
  vs_proxy_free(p);
  vs_virt_close(v);
  vs_fleet_close(f);
  vs_once_free(&act.once);
  return NULL;
}

/* ---------------------------------------------------------------- notifications, workers */

struct job {
  size_t rule;
  struct vs_event *event;
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
    const char *v = buf;
    switch (m->type) {
    case NM_TYPE_STRING:
      v = m->nm_value.nm_string ? m->nm_value.nm_string : "";
      break;
    case NM_TYPE_SIGNED_INT:
      snprintf(buf, sizeof(buf), "%" PRIi64, m->nm_value.nm_signed_int);
      break;
    case NM_TYPE_UNSIGNED_INT:
      snprintf(buf, sizeof(buf), "%" PRIu64, m->nm_value.nm_unsigned_int);
      break;
    case NM_TYPE_DOUBLE:
      snprintf(buf, sizeof(buf), "%.17g", m->nm_value.nm_double);
      break;
    case NM_TYPE_BOOLEAN:
      v = m->nm_value.nm_boolean ? "true" : "false";
      break;
    }
    vs_event_add_meta(e, m->name, v);
  }
  return e;
}

/* One per rule (collectd calls each with every notification): takes what the rule matches
 * and may run now, copied, into the queue. Never waits. */
static int notify_cb(const notification_t *n, user_data_t *ud) {
  size_t rule = (size_t)(uintptr_t)ud->data;
  if (!act.rules || !act.queue || strcmp(n->plugin, PLUGIN) == 0) return 0; /* no loops */
  const struct vs_rule *r = vs_rules_get(act.rules, rule);
  /* Matching needs the meta as text: the event is built first, and kept only if it matches. */
  struct vs_event *e = event_of(n);
  if (!r || !vs_rule_matches(r, e) ||
      !vs_rules_admit(act.rules, rule, vs_event_domain(e), vs_now_monotonic())) {
    vs_event_free(e);
    return 0;
  }
  struct job *j = vs_xcalloc(1, sizeof(*j));
  j->rule = rule;
  j->event = e;
  if (vs_queue_push(act.queue, j)) return 0;
  job_free(j);
  pthread_mutex_lock(&act.lock);
  uint64_t dropped = ++act.actions_dropped;
  double now = vs_now_monotonic();
  bool say = now - act.last_drop_log >= 10;
  if (say) act.last_drop_log = now;
  pthread_mutex_unlock(&act.lock);
  if (say) /* at most every 10 s, so a flood does not flood the log too */
    WARNING(PLUGIN ": the action queue is full (QueueSize %d): rule \"%s\" dropped for %s "
                   "(%" PRIu64 " dropped so far)",
            act.queue_size, r->name, n->plugin_instance, dropped);
  return 0;
}

/* The VM's plugin instance as PluginInstanceFormat says, whichever way the notification named
 * it: vmscope's plugins give the VM's name (meta "name") and UUID (meta "id") besides their
 * plugin instance; other plugins' notifications keep theirs. */
static const char *event_instance(const struct vs_event *e) {
  const char *domain = vs_event_domain(e);
  if (!e->plugin || strncmp(e->plugin, "vmscope_", 8) != 0) return domain;
  const char *name = vs_event_meta(e, "name"), *id = vs_event_meta(e, "id");
  return vs_instance_name(act.instance_format, name ? name : domain, id ? id : domain);
}

static void report(const struct vs_rule *r, const struct vs_rule_action *a, const char *domain,
                   const struct vs_event *e, bool good, double seconds, const char *error,
                   json_t *detail) {
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
    vs_notification_send(&n, "rule %s: %s on %s done in %.0f ms", r->name,
                         vs_action_kind_name(a->kind), domain, seconds * 1000);
  else
    vs_notification_send(&n, "rule %s: %s on %s failed: %s", r->name, vs_action_kind_name(a->kind),
                         domain, error ? error : "unknown error");
}

static void *action_worker(void *arg) {
  (void)arg;
  struct vs_fleet_opts fo = fleet_opts();
  struct vs_remedy_opts ro = {.uri = act.uri,
                              .fleet = &fo,
                              .allow = (const char *const *)act.allow,
                              .n_allow = act.n_allow,
                              .agent_timeout_ms = (int)CDTIME_T_TO_MS(act.agent_timeout),
                              .exec_deadline_ms = (int)CDTIME_T_TO_MS(act.exec_deadline),
                              .patchset_copy = act.patchset_copy,
                              .copy_timeout_s = (int)CDTIME_T_TO_TIME_T(act.copy_timeout)};
  struct vs_remedy rem = {.o = &ro};
  struct job *j;
  while ((j = vs_queue_pop(act.queue))) {
    if (__atomic_load_n(&act.stopping, __ATOMIC_ACQUIRE)) {
      job_free(j);
      continue;
    }
    const struct vs_rule *r = vs_rules_get(act.rules, j->rule);
    const char *domain = vs_event_domain(j->event);
    for (size_t i = 0; r && i < r->n_actions; i++) {
      const struct vs_rule_action *a = &r->actions[i];
      double t0 = vs_now_monotonic();
      struct vs_err err = {0};
      json_t *detail = NULL;
      int rc = 0;
      if (r->dry_run)
        INFO(PLUGIN ": rule \"%s\" (dry run): would run %s %s on %s", r->name,
             vs_action_kind_name(a->kind), a->arg, domain);
      else
        rc = vs_remedy_run(&rem, r, a, j->event, domain, &detail, &err);
      double secs = vs_now_monotonic() - t0;
      if (rc < 0)
        WARNING(PLUGIN ": rule \"%s\": %s on %s failed: %s", r->name, vs_action_kind_name(a->kind),
                domain, vs_err_msg(&err));
      report(r, a, domain, j->event, rc == 0, secs, rc < 0 ? vs_err_msg(&err) : NULL, detail);
      pthread_mutex_lock(&act.lock);
      if (rc == 0)
        act.actions_ok++;
      else
        act.actions_failed++;
      act.duration_sum += secs;
      act.duration_n++;
      pthread_mutex_unlock(&act.lock);
      json_decref(detail);
      vs_err_clear(&err);
    }
    job_free(j);
  }
  vs_remedy_clear(&rem);
  return NULL;
}

static int start_rules(void) {
  if (act.rules || act.n_pending == 0) return 0;
  act.rules = vs_rules_new(act.pending, act.n_pending);
  free(act.pending);
  act.pending = NULL;
  act.n_pending = 0;
  act.queue = vs_queue_new((size_t)act.queue_size);
  for (int i = 0; i < act.n_workers; i++) {
    if (plugin_thread_create(&act.workers[i], action_worker, NULL, "vmscope act") != 0) {
      ERROR(PLUGIN ": cannot start action worker %d", i);
      return -1;
    }
    act.workers_running++;
  }
  for (size_t i = 0; i < vs_rules_count(act.rules); i++) {
    char name[DATA_MAX_NAME_LEN * 2];
    snprintf(name, sizeof(name), PLUGIN "/%s", vs_rules_get(act.rules, i)->name);
    user_data_t ud = {.data = (void *)(uintptr_t)i};
    if (plugin_register_notification(name, notify_cb, &ud) != 0) {
      ERROR(PLUGIN ": cannot register the notification callback %s", name);
      return -1;
    }
  }
  return 0;
}

static int init(void) {
  vs_log_set_sink(vs_glue_log_sink, PLUGIN);
  if (!act.host) act.host = vs_xstrdup(hostname_g ? hostname_g : "localhost");
  if (act.agent_timeout == 0) act.agent_timeout = TIME_T_TO_CDTIME_T(5);
  if (start_rules() != 0) return -1;
  if (act.running || (act.n_stores == 0 && !act.socket)) return 0; /* no proxy to run */
  act.stop = false;
  if (plugin_thread_create(&act.thread, worker, NULL, "vmscope action") != 0) {
    ERROR(PLUGIN ": cannot start the worker thread");
    return -1;
  }
  act.running = true;
  return 0;
}

static int read_cb(void) {
  pthread_mutex_lock(&act.lock);
  uint64_t delivered = act.delivered, errors = act.errors;
  uint64_t aok = act.actions_ok, afail = act.actions_failed, adrop = act.actions_dropped;
  double dsum = act.duration_sum;
  uint64_t dn = act.duration_n;
  act.duration_sum = 0;
  act.duration_n = 0;
  pthread_mutex_unlock(&act.lock);
  if (act.n_stores || act.socket) {
    vs_glue_submit(PLUGIN, "", "count", "messages_delivered", (gauge_t)delivered, 0);
    vs_glue_submit(PLUGIN, "", "count", "inbox_errors", (gauge_t)errors, 0);
  }
  if (act.rules) {
    vs_glue_submit(PLUGIN, "", "count", "actions_ok", (gauge_t)aok, 0);
    vs_glue_submit(PLUGIN, "", "count", "actions_failed", (gauge_t)afail, 0);
    vs_glue_submit(PLUGIN, "", "count", "actions_dropped", (gauge_t)adrop, 0);
    /* the mean of the actions finished since the last read; kept while none finish, so the
     * series does not come and go */
    if (dn) act.last_duration = dsum / (double)dn;
    if (act.last_duration >= 0)
      vs_glue_submit(PLUGIN, "", "duration", "action", (gauge_t)act.last_duration, 0);
  }
  return 0;
}

static int shutdown_cb(void) {
  if (act.running) {
    pthread_mutex_lock(&act.lock);
    act.stop = true;
    pthread_mutex_unlock(&act.lock);
    pthread_join(act.thread, NULL);
    act.running = false;
  }
  if (act.queue) {
    /* No more notifications in; what is queued is dropped (a shutdown does not wait for
     * webhooks to retry), the workers end after the action they are running. */
    for (size_t i = 0; act.rules && i < vs_rules_count(act.rules); i++) {
      char name[DATA_MAX_NAME_LEN * 2];
      snprintf(name, sizeof(name), PLUGIN "/%s", vs_rules_get(act.rules, i)->name);
      plugin_unregister_notification(name);
    }
    __atomic_store_n(&act.stopping, true, __ATOMIC_RELEASE);
    vs_queue_close(act.queue);
    for (int i = 0; i < act.workers_running; i++)
      pthread_join(act.workers[i], NULL);
    act.workers_running = 0;
    vs_queue_free(act.queue, job_free);
    act.queue = NULL;
  }
  vs_rules_free(act.rules);
  act.rules = NULL;
  for (size_t i = 0; i < act.n_pending; i++)
    vs_rule_clear(&act.pending[i]);
  free(act.pending);
  act.pending = NULL;
  act.n_pending = 0;
  for (size_t i = 0; i < act.n_stores; i++)
    free(act.stores[i]);
  for (size_t i = 0; i < act.n_allow; i++)
    free(act.allow[i]);
  act.n_stores = act.n_allow = 0;
  free(act.host);
  free(act.socket);
  free(act.uri);
  free(act.prefix);
  free(act.cacert);
  free(act.cert);
  free(act.key);
  free(act.user);
  free(act.password);
  act.host = act.socket = act.uri = act.prefix = NULL;
  act.cacert = act.cert = act.key = act.user = act.password = NULL;
  return 0;
}

void module_register(void) {
  plugin_register_complex_config(PLUGIN, config);
  plugin_register_init(PLUGIN, init);
  plugin_register_read(PLUGIN, read_cb);
  plugin_register_shutdown(PLUGIN, shutdown_cb);
}
