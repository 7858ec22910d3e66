/* vmscope_drift: collectd plugin that ranks every VM of the snapshot pool against its peers
 * (PeerPressure, see drift.h) on its interval, and reports drift as metrics and notifications.
 * See collectd-vmscope(5).
 *
 * One worker thread builds the fleet view of the pool (fleetview.h: each VM's newest document,
 * roles, peer groups; the same code `vmscope drift --pool` runs), ranks each VM, and sends a
 * config_drift notification when an alarm appears (WARNING, or FAILURE from FailureScore),
 * changes severity, or clears (OKAY); with ResendInterval, active alarms are sent again. The
 * alarm state belongs to the worker alone (notifications go out without any lock held, since
 * collectd delivers them in the sender's thread); the read callback dispatches the metrics the
 * worker last published, under the lock. */
#include "glue.h"

#include "analytics.h"
#include "drift.h"
#include "fleetview.h"
#include "majority.h"
#include "pool.h"

#define PLUGIN "vmscope_drift"

struct alarm { /* an active alarm of one VM */
  char *key;
  enum vs_severity severity;
  cdtime_t sent;
  bool seen; /* still raised in this round */
};

struct vm { /* one VM's latest ranking (the worker's) */
  char *id, *name;
  double score;
  size_t n_alarmed, waived, peers; /* alarms (not waived) and waived ones of this round */
  struct alarm *alarms;
  size_t n_alarms;
  bool seen;
  /* analytics */
  char *medoid;     /* its role's medoid last round (a role is known by it), NULL before */
  size_t role_size; /* its role's size last round */
  double anomaly, similarity, label_p;
  bool anomalous; /* above AnomalyThreshold: notified */
};

struct metric { /* what the read callback dispatches for one VM */
  char *instance;
  double score;
  size_t alarms, waived, peers;
  double anomaly, similarity, label_p; /* label_p < 0: no label */
};

static struct {
  char *data_dir, *waiver_file, *label_file;
  enum vs_peer_group peer_group;
  enum vs_instance_format instance_format;
  cdtime_t forget_after; /* a VM whose newest document is older is gone (0: never) */
  size_t forgotten;      /* the worker's: VMs left out last round for that */
  double anomaly_threshold, role_threshold;
  int min_role_peers;
  double warn_score, fail_score;
  cdtime_t interval, resend;
  int top;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t thread;
  bool running, stop;
  struct vm *vms; /* the worker's */
  size_t n_vms;
  struct metric *metrics; /* under LOCK */
  size_t n_metrics;
  struct vs_majorities *majorities; /* the worker's */
  uint64_t majority_changes;        /* under LOCK: fleet-wide keys whose majority moved */
  struct vs_once once;              /* the worker's */
} drift = {.lock = PTHREAD_MUTEX_INITIALIZER,
           .wake = PTHREAD_COND_INITIALIZER,
           .peer_group = VS_PEERS_ROLE,
           .forget_after = TIME_T_TO_CDTIME_T_STATIC(86400),
           .anomaly_threshold = 0.5,
           .min_role_peers = VS_VIEW_MIN_ROLE_PEERS,
           .warn_score = VS_DRIFT_WARN_SCORE,
           .fail_score = VS_DRIFT_FAIL_SCORE};

static int config(oconfig_item_t *ci) {
  if (vs_cf_check_repeats(ci, PLUGIN, NULL, NULL) < 0) return -1;
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = &ci->children[i];
    int rc;
    if (strcasecmp(c->key, "DataDir") == 0)
      rc = vs_cf_string(c, PLUGIN, &drift.data_dir);
    else if (strcasecmp(c->key, "WaiverFile") == 0) {
      rc = vs_cf_string(c, PLUGIN, &drift.waiver_file);
      if (rc == 0) rc = vs_cf_check_file(c, PLUGIN, drift.waiver_file);
    } else if (strcasecmp(c->key, "WarningScore") == 0)
      rc = vs_cf_double(c, PLUGIN, &drift.warn_score);
    else if (strcasecmp(c->key, "FailureScore") == 0)
      rc = vs_cf_double(c, PLUGIN, &drift.fail_score);
    else if (strcasecmp(c->key, "Interval") == 0)
      rc = vs_cf_cdtime(c, PLUGIN, &drift.interval);
    else if (strcasecmp(c->key, "ResendInterval") == 0)
      rc = vs_cf_cdtime(c, PLUGIN, &drift.resend);
    else if (strcasecmp(c->key, "ForgetAfter") == 0)
      rc = vs_cf_cdtime(c, PLUGIN, &drift.forget_after);
    else if (strcasecmp(c->key, "Top") == 0)
      rc = vs_cf_int(c, PLUGIN, &drift.top);
    else if (strcasecmp(c->key, "LabelFile") == 0) {
      rc = vs_cf_string(c, PLUGIN, &drift.label_file);
      if (rc == 0) rc = vs_cf_check_file(c, PLUGIN, drift.label_file);
    } else if (strcasecmp(c->key, "AnomalyThreshold") == 0)
      rc = vs_cf_double(c, PLUGIN, &drift.anomaly_threshold);
    else if (strcasecmp(c->key, "RoleThreshold") == 0)
      rc = vs_cf_double(c, PLUGIN, &drift.role_threshold);
    else if (strcasecmp(c->key, "MinRolePeers") == 0)
      rc = vs_cf_int(c, PLUGIN, &drift.min_role_peers);
    else if (strcasecmp(c->key, "PluginInstanceFormat") == 0)
      rc = vs_cf_get_instance_format(c, PLUGIN, &drift.instance_format);
    else if (strcasecmp(c->key, "PeerGroup") == 0) {
      char *g = NULL;
      rc = vs_cf_string(c, PLUGIN, &g);
      if (rc == 0 && vs_peer_group_parse(g, &drift.peer_group) < 0) {
        ERROR(PLUGIN ": PeerGroup is role or fleet (or all, the same as fleet), not \"%s\"", g);
        rc = -1;
      }
      free(g);
    } else {
      ERROR(PLUGIN ": unknown option \"%s\" (expected DataDir, WaiverFile, WarningScore, "
                   "FailureScore, Interval, ResendInterval, ForgetAfter, Top, PeerGroup, "
                   "LabelFile, AnomalyThreshold, RoleThreshold, MinRolePeers or "
                   "PluginInstanceFormat)",
            c->key);
      return -1;
    }
    if (rc != 0) return -1;
  }
  if (drift.warn_score <= 0 || drift.warn_score > 1 || drift.fail_score < drift.warn_score ||
      drift.fail_score > 1) {
    ERROR(PLUGIN ": WarningScore and FailureScore must satisfy 0 < WarningScore (%g) <= "
                 "FailureScore (%g) <= 1",
          drift.warn_score, drift.fail_score);
    return -1;
  }
  if (drift.top < 0) {
    ERROR(PLUGIN ": Top must not be negative (0 reports every alarm), not %d", drift.top);
    return -1;
  }
  if (drift.anomaly_threshold <= 0 || drift.anomaly_threshold > 1) {
    ERROR(PLUGIN ": AnomalyThreshold is in (0, 1], not %g", drift.anomaly_threshold);
    return -1;
  }
  if (drift.role_threshold < 0 || drift.role_threshold > 1) {
    ERROR(PLUGIN ": RoleThreshold is in [0, 1] (0: the default 0.6), not %g", drift.role_threshold);
    return -1;
  }
  if (drift.min_role_peers < 1) {
    ERROR(PLUGIN ": MinRolePeers is at least 1, not %d", drift.min_role_peers);
    return -1;
  }
  return 0;
}

static struct vm *find_vm(const char *id) {
  for (size_t i = 0; i < drift.n_vms; i++)
    if (strcmp(drift.vms[i].id, id) == 0) return &drift.vms[i];
  drift.vms = vs_xrealloc(drift.vms, (drift.n_vms + 1) * sizeof(*drift.vms));
  struct vm *v = &drift.vms[drift.n_vms++];
  *v = (struct vm){.id = vs_xstrdup(id)};
  return v;
}

static void free_vm(struct vm *v) {
  for (size_t i = 0; i < v->n_alarms; i++)
    free(v->alarms[i].key);
  free(v->alarms);
  free(v->id);
  free(v->name);
  free(v->medoid);
}

static int severity_of(enum vs_severity s) {
  return s == VS_SEVERITY_FAILURE   ? NOTIF_FAILURE
         : s == VS_SEVERITY_WARNING ? NOTIF_WARNING
                                    : NOTIF_OKAY;
}

static void notify_finding(const struct vs_drift *d, const struct vs_finding *f, int severity) {
  notification_t n;
  char short_key[DATA_MAX_NAME_LEN];
  vs_short_key(f->key, short_key, sizeof(short_key));
  vs_notification_init_vm(&n, severity, PLUGIN, drift.instance_format, d->target_name, d->target_id,
                          "config_drift", short_key);
  plugin_notification_meta_add_string(&n, "key", f->key);
  plugin_notification_meta_add_string(&n, "value", f->value);
  plugin_notification_meta_add_string(&n, "majority", f->majority);
  plugin_notification_meta_add_unsigned_int(&n, "support", f->majority_count);
  plugin_notification_meta_add_unsigned_int(&n, "peers", f->n);
  plugin_notification_meta_add_double(&n, "score", f->score);
  plugin_notification_meta_add_unsigned_int(&n, "rank", f->rank);
  plugin_notification_meta_add_unsigned_int(&n, "c", f->c);
  plugin_notification_meta_add_unsigned_int(&n, "m", f->m);
  plugin_notification_meta_add_string(&n, "severity", vs_severity_name(f->severity));
  plugin_notification_meta_add_string(&n, "id", d->target_id);
  const char *leaf = strrchr(f->key, ':');
  leaf = leaf && leaf[1] && leaf[1] != '*' ? leaf + 1 : f->key;
  if (strcmp(f->majority, VS_ALL_DIFFER) == 0)
    vs_notification_send(&n, "%s is %s on %s; its %u peers all differ (score %.2f, rank %zu)", leaf,
                         f->value, d->target_name, f->n, f->score, f->rank);
  else
    vs_notification_send(&n, "%s is %s on %s; %u of %u peers have %s (score %.2f, rank %zu)", leaf,
                         f->value, d->target_name, f->majority_count, f->n, f->majority, f->score,
                         f->rank);
}

static void notify_cleared(const struct vm *v, const struct alarm *a) {
  notification_t n;
  char short_key[DATA_MAX_NAME_LEN];
  vs_short_key(a->key, short_key, sizeof(short_key));
  vs_notification_init_vm(&n, NOTIF_OKAY, PLUGIN, drift.instance_format, v->name, v->id,
                          "config_drift", short_key);
  plugin_notification_meta_add_string(&n, "key", a->key);
  plugin_notification_meta_add_string(&n, "id", v->id);
  vs_notification_send(&n, "%s on %s no longer sets it apart from its peers", a->key,
                       v->name ? v->name : v->id);
}

/* A fleet-wide key's majority moved: no plugin instance, since it is the fleet's, not a VM's. */
static void notify_majority(const struct vs_majority_change *c, void *arg) {
  (void)arg;
  notification_t n;
  char short_key[DATA_MAX_NAME_LEN];
  vs_short_key(c->key, short_key, sizeof(short_key));
  vs_notification_init(&n, NOTIF_WARNING, PLUGIN, "", "majority_change", short_key);
  plugin_notification_meta_add_string(&n, "key", c->key);
  plugin_notification_meta_add_string(&n, "value", c->after);
  plugin_notification_meta_add_string(&n, "previous", c->before);
  plugin_notification_meta_add_unsigned_int(&n, "support", c->support);
  plugin_notification_meta_add_unsigned_int(&n, "vms", c->docs);
  const char *leaf = strrchr(c->key, ':');
  leaf = leaf && leaf[1] && leaf[1] != '*' ? leaf + 1 : c->key;
  vs_notification_send(&n, "%s's majority moved from %s to %s (%u of %u VMs)", leaf, c->before,
                       c->after, c->support, c->docs);
}

/* Brings V's alarms in line with ranking D: notifies what appeared, changed severity, is due
 * for a resend, or cleared. */
static void update_alarms(struct vm *v, const struct vs_drift *d, cdtime_t now) {
  for (size_t i = 0; i < v->n_alarms; i++)
    v->alarms[i].seen = false;
  size_t reported = 0;
  for (size_t i = 0; i < d->n_findings; i++) {
    const struct vs_finding *f = &d->findings[i];
    if (f->waived || f->severity < VS_SEVERITY_WARNING) continue;
    if (drift.top && reported >= (size_t)drift.top) break;
    reported++;
    struct alarm *a = NULL;
    for (size_t k = 0; k < v->n_alarms && !a; k++)
      if (strcmp(v->alarms[k].key, f->key) == 0) a = &v->alarms[k];
    bool send = false;
    if (!a) {
      v->alarms = vs_xrealloc(v->alarms, (v->n_alarms + 1) * sizeof(*v->alarms));
      a = &v->alarms[v->n_alarms++];
      *a = (struct alarm){.key = vs_xstrdup(f->key), .severity = f->severity};
      send = true;
    } else if (a->severity != f->severity) {
      a->severity = f->severity;
      send = true;
    } else if (drift.resend && now - a->sent >= drift.resend) {
      send = true;
    }
    a->seen = true;
    if (send) {
      notify_finding(d, f, severity_of(f->severity));
      a->sent = now;
    }
  }
  for (size_t i = 0; i < v->n_alarms;) {
    if (v->alarms[i].seen) {
      i++;
      continue;
    }
    notify_cleared(v, &v->alarms[i]);
    free(v->alarms[i].key);
    v->alarms[i] = v->alarms[--v->n_alarms];
  }
}

static void free_metrics(struct metric *m, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(m[i].instance);
  free(m);
}

/* Hands this round's figures to the read callback. */
static void publish_metrics(void) {
  struct metric *m = vs_xcalloc(drift.n_vms + 1, sizeof(*m));
  for (size_t i = 0; i < drift.n_vms; i++)
    m[i] = (struct metric){
        vs_xstrdup(vs_instance_name(drift.instance_format, drift.vms[i].name, drift.vms[i].id)),
        drift.vms[i].score,
        drift.vms[i].n_alarmed,
        drift.vms[i].waived,
        drift.vms[i].peers,
        drift.vms[i].anomaly,
        drift.vms[i].similarity,
        drift.vms[i].label_p};
  pthread_mutex_lock(&drift.lock);
  struct metric *old = drift.metrics;
  size_t n_old = drift.n_metrics;
  drift.metrics = m;
  drift.n_metrics = drift.n_vms;
  pthread_mutex_unlock(&drift.lock);
  free_metrics(old, n_old);
}

/* ---------------------------------------------------------------------------- analytics */

/* The roles, as `vmscope analyze` prints them, stored as DataDir/analytics.json for other
 * tools. */
static void store_analytics(const struct vs_view *view) {
  struct vs_err err = {0};
  json_t *j = vs_analysis_json(vs_view_analysis(view), vs_view_tokens(view));
  _cleanup_(vs_freep) char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(j);
  _cleanup_(vs_freep) char *path = vs_xasprintf("%s/analytics.json", drift.data_dir);
  struct vs_newfile f = {.fd = -1};
  if (!text)
    vs_err_set(&err, ENOMEM, "%s: cannot serialize the roles", path);
  else if (vs_newfile_open(&f, path, 0644, &err) == 0 &&
           (vs_newfile_write(&f, text, strlen(text), &err) < 0 || vs_newfile_commit(&f, &err) < 0))
    vs_newfile_abandon(&f);
  if (err.msg) {
    vs_once_fail(&drift.once, PLUGIN, "analytics.json", vs_err_msg(&err));
    vs_err_clear(&err);
  } else {
    vs_once_ok(&drift.once, PLUGIN, "analytics.json");
  }
}

static void notify_vm(const struct vm *v, int severity, const char *type, const char *fmt, ...)
    VS_PRINTF(4, 5);
static void notify_vm(const struct vm *v, int severity, const char *type, const char *fmt, ...) {
  notification_t n;
  vs_notification_init_vm(&n, severity, PLUGIN, drift.instance_format, v->name, v->id, type, "");
  plugin_notification_meta_add_double(&n, "anomaly", v->anomaly);
  plugin_notification_meta_add_double(&n, "role_similarity", v->similarity);
  if (v->medoid) plugin_notification_meta_add_string(&n, "medoid", v->medoid);
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  vs_notification_send(&n, "%s", msg ? msg : type);
  free(msg);
}

/* V (VM I of VIEW) this round: its figures, and notifications when its role changed (its old
 * medoid is not in its role any more) or its anomaly crossed AnomalyThreshold. */
static void update_analytics(struct vm *v, const struct vs_view *view, size_t i) {
  const struct vs_analysis *a = vs_view_analysis(view);
  const struct vs_vm_tokens *vms = vs_view_tokens(view);
  size_t role = vs_analysis_role(a, i), m = vs_analysis_medoid(a, role);
  const char *medoid = vms[m].id;
  v->anomaly = vs_analysis_anomaly(a, i);
  v->similarity = vs_analysis_similarity(a, i);
  const char *label = vs_analysis_label(a, i, &v->label_p);
  if (!label) v->label_p = -1;
  size_t size = vs_analysis_role_size(a, role);
  if (v->medoid && strcmp(v->medoid, medoid) != 0) {
    /* The role may only have a new medoid: it changed when the old medoid is not in it any
     * more, or, for a VM that was its own role's medoid, when it left or joined others. */
    bool same = false;
    if (strcmp(v->medoid, v->id) == 0) {
      same = (v->role_size == 1) == (size == 1);
    } else {
      for (size_t k = 0; k < vs_analysis_count(a) && !same; k++)
        same = strcmp(vms[k].id, v->medoid) == 0 && vs_analysis_role(a, k) == role;
    }
    if (!same)
      notify_vm(v, NOTIF_WARNING, "role_change",
                "%s changed role: now like %s (%zu VMs), similarity %.2f",
                v->name ? v->name : v->id, vms[m].name ? vms[m].name : medoid, size, v->similarity);
  }
  free(v->medoid);
  v->medoid = vs_xstrdup(medoid);
  v->role_size = size;
  bool above = v->anomaly >= drift.anomaly_threshold;
  if (above != v->anomalous)
    notify_vm(v, above ? NOTIF_WARNING : NOTIF_OKAY, "anomaly",
              above ? "%s is anomalous: %.2f from its role (threshold %.2f)"
                    : "%s is no longer anomalous: %.2f from its role (threshold %.2f)",
              v->name ? v->name : v->id, v->anomaly, drift.anomaly_threshold);
  v->anomalous = above;
}

/* This round's waivers: reloaded each round so that edits apply without a restart. The file was
 * there at init (a missing one is a configuration error); losing it later is logged once. */
static struct vs_waivers *load_waivers(void) {
  struct vs_err err = {0};
  struct vs_waivers *w = NULL;
  if (drift.waiver_file && !(w = vs_waivers_load(drift.waiver_file, &err))) {
    vs_once_fail(&drift.once, PLUGIN, "WaiverFile", vs_err_msg(&err));
    vs_err_clear(&err);
  } else if (drift.waiver_file) {
    vs_once_ok(&drift.once, PLUGIN, "WaiverFile");
  }
  return w;
}

static struct vs_strmap *load_labels(void) {
  struct vs_err err = {0};
  struct vs_strmap *labels = NULL;
  if (drift.label_file && vs_labels_load(drift.label_file, &labels, &err) < 0) {
    vs_once_fail(&drift.once, PLUGIN, "LabelFile", vs_err_msg(&err));
    vs_err_clear(&err);
  } else if (drift.label_file) {
    vs_once_ok(&drift.once, PLUGIN, "LabelFile");
  }
  return labels;
}

/* The pool as one fleet view, less the VMs gone for longer than ForgetAfter; NULL (logged
 * once) when the pool cannot be read. */
static struct vs_view *read_pool(const struct vs_strmap *labels) {
  struct vs_err err = {0};
  _cleanup_(vs_view_freep) struct vs_view *view = vs_view_new();
  char not_before[32] = "";
  if (drift.forget_after) {
    time_t t = CDTIME_T_TO_TIME_T(cdtime() - drift.forget_after);
    struct tm tm;
    strftime(not_before, sizeof(not_before), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  }
  size_t forgotten = 0;
  if (vs_view_add_pool(view, drift.data_dir, drift.forget_after ? not_before : NULL, &forgotten,
                       &err) < 0) {
    char *msg = vs_xasprintf("DataDir: %s%s", vs_err_msg(&err),
                             err.code == ENOENT ? " (nothing to rank until vmscope_snapshot "
                                                  "writes there: is DataDir the same in both?)"
                                                : "");
    vs_once_fail(&drift.once, PLUGIN, "DataDir", msg);
    free(msg);
    vs_err_clear(&err);
    return NULL;
  }
  vs_once_ok(&drift.once, PLUGIN, "DataDir");
  const char *const *errors;
  size_t n_errors = vs_view_errors(view, &errors);
  for (size_t i = 0; i < n_errors; i++)
    vs_once_fail(&drift.once, PLUGIN, errors[i], errors[i]);
  if (forgotten != drift.forgotten)
    INFO(PLUGIN ": %zu VM(s) left out: no snapshot in the last %.0f s (ForgetAfter)", forgotten,
         CDTIME_T_TO_DOUBLE(drift.forget_after));
  drift.forgotten = forgotten;
  struct vs_view_opts vo = {.peers = drift.peer_group,
                            .min_role_peers = (size_t)drift.min_role_peers,
                            .roles = {.threshold = drift.role_threshold},
                            .labels = labels};
  vs_view_prepare(view, &vo);
  return vs_steal(&view);
}

/* V's figures from ranking D. */
static void count_alarms(struct vm *v, const struct vs_drift *d) {
  v->peers = d->samples;
  v->score = 0;
  v->n_alarmed = v->waived = 0;
  for (size_t k = 0; k < d->n_findings; k++) {
    const struct vs_finding *f = &d->findings[k];
    if (f->severity < VS_SEVERITY_WARNING) continue;
    if (f->waived) {
      v->waived++;
      continue;
    }
    v->n_alarmed++;
    if (f->score > v->score) v->score = f->score;
  }
}

/* VMs not ranked this round (gone from the pool, or forgotten): their alarms clear. */
static void drop_unseen(void) {
  for (size_t i = 0; i < drift.n_vms;) {
    if (drift.vms[i].seen) {
      i++;
      continue;
    }
    for (size_t k = 0; k < drift.vms[i].n_alarms; k++)
      notify_cleared(&drift.vms[i], &drift.vms[i].alarms[k]);
    free_vm(&drift.vms[i]);
    drift.vms[i] = drift.vms[--drift.n_vms];
  }
}

static void rank_pool(void) {
  struct vs_err err = {0};
  _cleanup_(vs_waivers_freep) struct vs_waivers *waivers = load_waivers();
  _cleanup_(vs_strmap_freep) struct vs_strmap *labels = load_labels();
  _cleanup_(vs_view_freep) struct vs_view *view = read_pool(labels);
  if (!view) return;
  size_t n = vs_view_count(view);
  if (!drift.majorities) drift.majorities = vs_majorities_new();
  size_t moved = vs_majorities_update(drift.majorities, vs_view_fleet(view), notify_majority, NULL);
  pthread_mutex_lock(&drift.lock);
  drift.majority_changes += moved;
  pthread_mutex_unlock(&drift.lock);
  if (n) store_analytics(view);
  struct vs_drift_opts opts = {.warn_score = drift.warn_score,
                               .fail_score = drift.fail_score,
                               .waivers = waivers,
                               .now = time(NULL)};
  cdtime_t now = cdtime();
  for (size_t i = 0; i < drift.n_vms; i++)
    drift.vms[i].seen = false;
  for (size_t i = 0; n >= 2 && i < n; i++) {
    _cleanup_(vs_drift_freep) struct vs_drift *d = vs_view_rank(view, i, &opts, &err);
    if (!d) {
      WARNING(PLUGIN ": %s", vs_err_msg(&err));
      vs_err_clear(&err);
      continue;
    }
    struct vm *v = find_vm(d->target_id);
    free(v->name);
    v->name = vs_xstrdup(d->target_name);
    v->seen = true;
    count_alarms(v, d);
    update_alarms(v, d, now);
    update_analytics(v, view, i);
  }
  drop_unseen();
  publish_metrics();
}

static void *worker(void *arg) {
  (void)arg;
  pthread_mutex_lock(&drift.lock);
  while (!drift.stop) {
    pthread_mutex_unlock(&drift.lock);
    rank_pool();
    pthread_mutex_lock(&drift.lock);
    cdtime_t until_cd = cdtime() + drift.interval;
    struct timespec until = CDTIME_T_TO_TIMESPEC(until_cd);
    while (!drift.stop && pthread_cond_timedwait(&drift.wake, &drift.lock, &until) == 0)
      ;
  }
  pthread_mutex_unlock(&drift.lock);
  return NULL;
}

static int init(void) {
  vs_log_set_sink(vs_glue_log_sink, PLUGIN);
  if (!drift.data_dir) drift.data_dir = vs_xstrdup("/var/lib/collectd/vmscope");
  if (drift.interval == 0) drift.interval = plugin_get_interval();
  if (drift.running) return 0;
  struct vs_err err = {0};
  if (vs_pool_check(drift.data_dir, &err) < 0) { /* a missing one is only logged: see read_pool */
    ERROR(PLUGIN ": DataDir: %s", vs_err_msg(&err));
    vs_err_clear(&err);
    return -1;
  }
  struct vs_waivers *w = drift.waiver_file ? vs_waivers_load(drift.waiver_file, &err) : NULL;
  if (drift.waiver_file && !w) {
    ERROR(PLUGIN ": WaiverFile: %s", vs_err_msg(&err));
    vs_err_clear(&err);
    return -1;
  }
  vs_waivers_free(w);
  drift.stop = false;
  if (plugin_thread_create(&drift.thread, worker, NULL, "vmscope drift") != 0) {
    ERROR(PLUGIN ": cannot start the worker thread");
    return -1;
  }
  drift.running = true;
  return 0;
}

static void submit(const char *instance, const char *type, const char *type_instance,
                   gauge_t value) {
  vs_glue_submit(PLUGIN, instance, type, type_instance, value, 0);
}

static int read_cb(void) {
  pthread_mutex_lock(&drift.lock);
  for (size_t i = 0; i < drift.n_metrics; i++) {
    const struct metric *m = &drift.metrics[i];
    submit(m->instance, "gauge", "drift_score", m->score);
    submit(m->instance, "count", "alarms", (gauge_t)m->alarms);
    submit(m->instance, "count", "waived", (gauge_t)m->waived);
    submit(m->instance, "gauge", "peers", (gauge_t)m->peers);
    submit(m->instance, "gauge", "anomaly", m->anomaly);
    submit(m->instance, "gauge", "role_similarity", m->similarity);
    if (m->label_p >= 0) submit(m->instance, "gauge", "label_probability", m->label_p);
  }
  if (drift.n_metrics > 0) submit("", "count", "majority_changes", (gauge_t)drift.majority_changes);
  pthread_mutex_unlock(&drift.lock);
  return 0;
}

static int shutdown_cb(void) {
  if (drift.running) {
    pthread_mutex_lock(&drift.lock);
    drift.stop = true;
    pthread_cond_broadcast(&drift.wake);
    pthread_mutex_unlock(&drift.lock);
    pthread_join(drift.thread, NULL);
    drift.running = false;
  }
  for (size_t i = 0; i < drift.n_vms; i++)
    free_vm(&drift.vms[i]);
  free(drift.vms);
  drift.vms = NULL;
  drift.n_vms = 0;
  free_metrics(drift.metrics, drift.n_metrics);
  drift.metrics = NULL;
  drift.n_metrics = 0;
  vs_majorities_free(drift.majorities);
  drift.majorities = NULL;
  vs_once_free(&drift.once);
  free(drift.data_dir);
  free(drift.waiver_file);
  free(drift.label_file);
  drift.data_dir = drift.waiver_file = drift.label_file = NULL;
  return 0;
}

void module_register(void) {
  plugin_register_complex_config(PLUGIN, config);
  plugin_register_init(PLUGIN, init);
  plugin_register_read(PLUGIN, read_cb);
  plugin_register_shutdown(PLUGIN, shutdown_cb);
}
