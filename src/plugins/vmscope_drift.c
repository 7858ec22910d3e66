/* vmscope_drift: collectd plugin that ranks every VM of the snapshot pool against its peers
 * (PeerPressure, see drift.h) on its interval, and reports drift as metrics and notifications.
 * See collectd-vmscope(5).
 *
 * One worker thread builds the fleet view of the pool (fleetview.h: each VM's newest document,
 * close groups, peer groups; the same code `vmscope drift --pool` runs), ranks each VM, and
 * notifies what changed: about each VM (drift_vm.c: its alarms, config_drift; whether it is
 * unique; its role and anomaly), and about the fleet as a whole (drift_fleet.c: config_group,
 * rollout, majority_change). The state belongs to the worker alone (notifications go out
 * without any lock held, since collectd delivers them in the sender's thread); the read callback
 * dispatches the metrics the worker last published, under the lock.
 *
 * This file reads the <Plugin> block, runs the worker (reading the pool, the waivers and the
 * labels, storing the roles as analytics.json) and dispatches the metrics. */
#include "drift_internal.h"

#include "pool.h"
#include "store.h"

struct metric { /* what the read callback dispatches for one VM */
  char *instance;
  double score;
  size_t alarms, failures, waived, peers;
  bool unique;
  double anomaly, similarity, label_p; /* label_p < 0: no label */
};

static struct drift_conf conf = {.peer_group = VS_PEERS_ROLE,
                                 .forget_after = TIME_T_TO_CDTIME_T_STATIC(86400),
                                 .anomaly_threshold = 0.5,
                                 .min_role_peers = VS_VIEW_MIN_ROLE_PEERS,
                                 .warn_score = VS_DRIFT_WARN_SCORE,
                                 .fail_score = VS_DRIFT_FAIL_SCORE};

static struct {
  size_t forgotten; /* the worker's: VMs left out last round for ForgetAfter */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t thread;
  bool running, stop;
  bool reading;   /* under LOCK: collectd called read_cb, so every plugin's init has run */
  struct vm *vms; /* the worker's */
  size_t n_vms;
  struct metric *metrics; /* under LOCK */
  size_t n_metrics;
  uint64_t majority_changes;       /* under LOCK: fleet-wide keys whose majority moved */
  size_t groups_now, rollouts_now; /* under LOCK: this round's counts */
  bool fleet_counts;               /* under LOCK: this host sends them (not another's) */
  struct vs_once once;             /* the worker's */
  bool said_waiting;               /* the worker's: the first-cycle wait is logged */
  struct vs_store *store;          /* the worker's: the fleet store, or NULL */
  bool elected;                    /* the worker's: it held the store's lock last round */
  bool store_away;                 /* the worker's: the store failed last round */
  char *why_whole;                 /* the worker's: why it read the whole fleet last round */
  bool from_context;               /* the worker's: it ranked from the fleet's context last round */
  size_t context_vms;              /* the worker's: the fleet's VMs then (said when it changes) */

  /* The whole fleet's rows read in the last round, and of them those loaded again (not kept
   * from the read before): the worker's, and under LOCK for the read callback. */
  size_t rows, rows_loaded;
  size_t rows_now, rows_loaded_now; /* under LOCK */
} drift = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static int config(oconfig_item_t *ci) {
  if (vs_cf_check_repeats(ci, PLUGIN, NULL, NULL) < 0) return -1;
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = &ci->children[i];
    int rc;
    if (strcasecmp(c->key, "DataDir") == 0)
      rc = vs_cf_string(c, PLUGIN, &conf.data_dir);
    else if (strcasecmp(c->key, "WaiverFile") == 0) {
      rc = vs_cf_string(c, PLUGIN, &conf.waiver_file);
      if (rc == 0) rc = vs_cf_check_file(c, PLUGIN, conf.waiver_file);
    } else if (strcasecmp(c->key, "WarningScore") == 0)
      rc = vs_cf_double(c, PLUGIN, &conf.warn_score);
    else if (strcasecmp(c->key, "FailureScore") == 0)
      rc = vs_cf_double(c, PLUGIN, &conf.fail_score);
    else if (strcasecmp(c->key, "Interval") == 0)
      rc = vs_cf_cdtime(c, PLUGIN, &conf.interval);
    else if (strcasecmp(c->key, "ResendInterval") == 0)
      rc = vs_cf_cdtime(c, PLUGIN, &conf.resend);
    else if (strcasecmp(c->key, "ForgetAfter") == 0)
      rc = vs_cf_cdtime(c, PLUGIN, &conf.forget_after);
    else if (strcasecmp(c->key, "Top") == 0)
      rc = vs_cf_int(c, PLUGIN, &conf.top);
    else if (strcasecmp(c->key, "LabelFile") == 0) {
      rc = vs_cf_string(c, PLUGIN, &conf.label_file);
      if (rc == 0) rc = vs_cf_check_file(c, PLUGIN, conf.label_file);
    } else if (strcasecmp(c->key, "AnomalyThreshold") == 0)
      rc = vs_cf_double(c, PLUGIN, &conf.anomaly_threshold);
    else if (strcasecmp(c->key, "RoleThreshold") == 0)
      rc = vs_cf_double(c, PLUGIN, &conf.role_threshold);
    else if (strcasecmp(c->key, "MinRolePeers") == 0)
      rc = vs_cf_int(c, PLUGIN, &conf.min_role_peers);
    else if (strcasecmp(c->key, "PluginInstanceFormat") == 0)
      rc = vs_cf_get_instance_format(c, PLUGIN, &conf.instance_format);
    else if (strcasecmp(c->key, "PeerGroup") == 0) {
      char *g = NULL;
      rc = vs_cf_string(c, PLUGIN, &g);
      if (rc == 0 && vs_peer_group_parse(g, &conf.peer_group) < 0) {
        ERROR(PLUGIN ": PeerGroup is role or fleet (or all, the same as fleet), not \"%s\"", g);
        rc = -1;
      }
      free(g);
    } else if (strcasecmp(c->key, "FleetStore") == 0)
      rc = vs_cf_string(c, PLUGIN, &conf.store_url);
    else if (strcasecmp(c->key, "FleetStorePasswordFile") == 0) {
      rc = vs_cf_string(c, PLUGIN, &conf.store_password_file);
      if (rc == 0) rc = vs_cf_check_file(c, PLUGIN, conf.store_password_file);
    } else if (strcasecmp(c->key, "FleetStoreCAFile") == 0) {
      rc = vs_cf_string(c, PLUGIN, &conf.store_ca_file);
      if (rc == 0) rc = vs_cf_check_file(c, PLUGIN, conf.store_ca_file);
    } else if (strcasecmp(c->key, "HostTimeout") == 0)
      rc = vs_cf_cdtime(c, PLUGIN, &conf.host_timeout);
    else if (strcasecmp(c->key, "StoreDocuments") == 0)
      rc = vs_cf_boolean(c, PLUGIN, &conf.store_documents);
    else {
      ERROR(PLUGIN ": unknown option \"%s\" (expected DataDir, WaiverFile, WarningScore, "
                   "FailureScore, Interval, ResendInterval, ForgetAfter, Top, PeerGroup, "
                   "LabelFile, AnomalyThreshold, RoleThreshold, MinRolePeers, "
                   "PluginInstanceFormat, FleetStore, FleetStorePasswordFile, FleetStoreCAFile, "
                   "HostTimeout or StoreDocuments)",
            c->key);
      return -1;
    }
    if (rc != 0) return -1;
  }
  if (conf.warn_score <= 0 || conf.warn_score > 1 || conf.fail_score < conf.warn_score ||
      conf.fail_score > 1) {
    ERROR(PLUGIN ": WarningScore and FailureScore must satisfy 0 < WarningScore (%g) <= "
                 "FailureScore (%g) <= 1",
          conf.warn_score, conf.fail_score);
    return -1;
  }
  if (conf.top < 0) {
    ERROR(PLUGIN ": Top must not be negative (0 reports every alarm), not %d", conf.top);
    return -1;
  }
  if (conf.anomaly_threshold <= 0 || conf.anomaly_threshold > 1) {
    ERROR(PLUGIN ": AnomalyThreshold is in (0, 1], not %g", conf.anomaly_threshold);
    return -1;
  }
  if (conf.role_threshold < 0 || conf.role_threshold > 1) {
    ERROR(PLUGIN ": RoleThreshold is in [0, 1] (0: the default 0.6), not %g", conf.role_threshold);
    return -1;
  }
  if (conf.min_role_peers < 1) {
    ERROR(PLUGIN ": MinRolePeers is at least 1, not %d", conf.min_role_peers);
    return -1;
  }
  if (!conf.store_url && (conf.store_password_file || conf.store_ca_file || conf.host_timeout ||
                          conf.store_documents)) {
    ERROR(PLUGIN ": FleetStorePasswordFile, FleetStoreCAFile, HostTimeout and StoreDocuments "
                 "are options of the fleet store: set FleetStore too");
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

static void free_metrics(struct metric *m, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(m[i].instance);
  free(m);
}

/* Hands this round's figures to the read callback, and the fleet's counts (GROUPS, ROLLOUTS),
 * which only the host that found them sends (FLEET_COUNTS), not every host of a fleet store. */
static void publish_metrics(size_t groups, size_t rollouts, bool fleet_counts) {
  struct metric *m = vs_xcalloc(drift.n_vms + 1, sizeof(*m));
  for (size_t i = 0; i < drift.n_vms; i++)
    m[i] = (struct metric){
        vs_xstrdup(vs_instance_name(conf.instance_format, drift.vms[i].name, drift.vms[i].id)),
        drift.vms[i].score,
        drift.vms[i].n_alarmed,
        drift.vms[i].failures,
        drift.vms[i].waived,
        drift.vms[i].peers,
        drift.vms[i].unique,
        drift.vms[i].anomaly,
        drift.vms[i].similarity,
        drift.vms[i].label_p};
  pthread_mutex_lock(&drift.lock);
  struct metric *old = drift.metrics;
  size_t n_old = drift.n_metrics;
  drift.metrics = m;
  drift.n_metrics = drift.n_vms;
  drift.groups_now = groups;
  drift.rollouts_now = rollouts;
  drift.fleet_counts = fleet_counts;
  drift.rows_now = drift.rows;
  drift.rows_loaded_now = drift.rows_loaded;
  pthread_mutex_unlock(&drift.lock);
  free_metrics(old, n_old);
}

/* ------------------------------------------------------------------------------- worker */

/* The roles, as `vmscope analyze` prints them, stored as DataDir/analytics.json for other
 * tools. */
static void store_analytics(const struct vs_view *view) {
  struct vs_err err = {0};
  json_t *j = vs_analysis_json(vs_view_analysis(view), vs_view_tokens(view));
  _cleanup_(vs_freep) char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(j);
  _cleanup_(vs_freep) char *path = vs_xasprintf("%s/analytics.json", conf.data_dir);
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

/* This round's waivers: reloaded each round so that edits apply without a restart. The file was
 * there at init (a missing one is a configuration error); losing it later is logged once. */
static struct vs_waivers *load_waivers(void) {
  struct vs_err err = {0};
  struct vs_waivers *w = NULL;
  if (conf.waiver_file && !(w = vs_waivers_load(conf.waiver_file, &err))) {
    vs_once_fail(&drift.once, PLUGIN, "WaiverFile", vs_err_msg(&err));
    vs_err_clear(&err);
  } else if (conf.waiver_file) {
    vs_once_ok(&drift.once, PLUGIN, "WaiverFile");
  }
  return w;
}

static struct vs_strmap *load_labels(void) {
  struct vs_err err = {0};
  struct vs_strmap *labels = NULL;
  if (conf.label_file && vs_labels_load(conf.label_file, &labels, &err) < 0) {
    vs_once_fail(&drift.once, PLUGIN, "LabelFile", vs_err_msg(&err));
    vs_err_clear(&err);
  } else if (conf.label_file) {
    vs_once_ok(&drift.once, PLUGIN, "LabelFile");
  }
  return labels;
}

/* The pool as one fleet view (not prepared yet), less the VMs gone for longer than ForgetAfter;
 * NULL (logged once) when the pool cannot be read. */
static struct vs_view *read_pool(void) {
  struct vs_err err = {0};
  _cleanup_(vs_view_freep) struct vs_view *view = vs_view_new();
  char not_before[32] = "";
  if (conf.forget_after) {
    time_t t = CDTIME_T_TO_TIME_T(cdtime() - conf.forget_after);
    struct tm tm;
    strftime(not_before, sizeof(not_before), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  }
  size_t forgotten = 0;
  if (vs_view_add_pool(view, conf.data_dir, conf.forget_after ? not_before : NULL, &forgotten,
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
         CDTIME_T_TO_DOUBLE(conf.forget_after));
  drift.forgotten = forgotten;
  return vs_steal(&view);
}

/* The fleet store, made on first use (store.h: it connects when used). */
static struct vs_store *fleet_store(void) {
  if (drift.store) return drift.store;
  struct vs_err err = {0};
  struct vs_store_opts o = {.url = conf.store_url,
                            .password_file = conf.store_password_file,
                            .ca_file = conf.store_ca_file,
                            .host = hostname_g ? hostname_g : "localhost",
                            .host_timeout = CDTIME_T_TO_DOUBLE(conf.host_timeout),
                            .store_documents = conf.store_documents};
  if (!(drift.store = vs_store_new(&o, &err))) {
    vs_once_fail(&drift.once, PLUGIN, "FleetStore", vs_err_msg(&err));
    vs_err_clear(&err);
  }
  return drift.store;
}

/* This host's VMs in the fleet's view from the store: from the elected host's context when
 * USE_CONTEXT and it counts this host's VMs as they are (said when that starts, and when the
 * fleet's size in it changes), else the whole fleet read; when the
 * store is away, the fleet as it was last read (said once, and once more when it is back);
 * NULL when the store cannot even be set up (then this host ranks its own pool). */
static struct vs_view *fleet_view(const struct vs_view *local, const struct vs_view_opts *vo,
                                  bool use_context, bool *from_context, bool *alone) {
  struct vs_store *store = fleet_store();
  if (!store) return NULL;
  struct vs_err err = {0};
  /* The medoids this host's VMs had: whether one is still in its VM's role (role_change). */
  const char **medoids = vs_xcalloc(drift.n_vms + 1, sizeof(*medoids));
  size_t n_medoids = 0;
  for (size_t i = 0; i < drift.n_vms; i++)
    if (drift.vms[i].medoid) medoids[n_medoids++] = drift.vms[i].medoid;
  struct vs_store_round round = {.use_context = use_context, .also = medoids, .n_also = n_medoids};
  struct vs_view *view = vs_store_round_view(store, local, vo, &round, &err);
  free(medoids);
  /* Once when it goes away (whatever each round's error says, a refused connection after a
   * closed one), once when it is back. */
  if (round.stale && !drift.store_away && round.alone)
    ERROR(PLUGIN ": %s; not ranking until it is back: no fleet was read yet that still counts "
                 "this host's VMs as they are",
          vs_err_msg(&err));
  else if (round.stale && !drift.store_away)
    ERROR(PLUGIN ": %s; ranking against the fleet as last read (%zu VMs) until it is back",
          vs_err_msg(&err), vs_view_fleet_vms(view));
  else if (!round.stale && drift.store_away)
    INFO(PLUGIN ": FleetStore works again");
  drift.store_away = round.stale;
  vs_err_clear(&err);
  /* Why the whole fleet was read: once per reason (a VM new or changed since the last refresh
   * is the common one, and passes with the next refresh). */
  if (round.why_not_context &&
      (!drift.why_whole || strcmp(drift.why_whole, round.why_not_context) != 0))
    INFO(PLUGIN ": reading the whole fleet this round: %s", round.why_not_context);
  free(drift.why_whole);
  drift.why_whole = round.why_not_context ? vs_xstrdup(round.why_not_context) : NULL;
  for (size_t i = 0; i < round.n_errors; i++) /* rows written by others that fail the checks */
    vs_once_fail(&drift.once, PLUGIN, round.errors[i], round.errors[i]);
  if (round.from_context && (!drift.from_context || drift.context_vms != vs_view_fleet_vms(view)))
    INFO(PLUGIN ": ranking this host's %zu VMs from the fleet's context (%zu VMs in the fleet): "
                "its own VMs' groups read, not every VM",
         vs_view_count(view), vs_view_fleet_vms(view));
  drift.rows = round.rows;
  drift.rows_loaded = round.rows_loaded;
  drift.from_context = *from_context = round.from_context;
  *alone = round.alone;
  drift.context_vms = vs_view_fleet_vms(view);
  vs_store_round_clear(&round);
  return view;
}

/* Publishes this host's rankings (and, from the elected host, the fleet's findings and the
 * context the other hosts rank from: VIEW is then the whole fleet's). */
static void publish(struct vs_drift *const *ranked, size_t n, const struct vs_fleet_findings *f,
                    const struct vs_view *view, bool elected) {
  struct vs_err err = {0};
  if (vs_store_publish_findings(drift.store, ranked, n, &err) < 0 ||
      (elected && vs_store_publish_fleet(drift.store, f, &err) < 0)) {
    vs_once_fail(&drift.once, PLUGIN, "FleetStore findings", vs_err_msg(&err));
    vs_err_clear(&err);
  } else {
    vs_once_ok(&drift.once, PLUGIN, "FleetStore findings");
  }
  /* Apart: the other hosts rank from it, whatever became of this host's findings. */
  if (!elected) return;
  if (vs_store_publish_context(drift.store, view, &err) < 0) {
    vs_once_fail(&drift.once, PLUGIN, "FleetStore context", vs_err_msg(&err));
    vs_err_clear(&err);
  } else {
    vs_once_ok(&drift.once, PLUGIN, "FleetStore context");
  }
}

/* V's figures from ranking D. */
static void count_alarms(struct vm *v, const struct vs_drift *d) {
  v->peers = d->samples;
  v->score = 0;
  v->n_alarmed = v->failures = v->waived = 0;
  for (size_t k = 0; k < d->n_findings; k++) {
    const struct vs_finding *f = &d->findings[k];
    if (f->severity < VS_SEVERITY_WARNING) continue;
    if (f->waived) {
      v->waived++;
      continue;
    }
    v->n_alarmed++;
    if (f->severity == VS_SEVERITY_FAILURE) v->failures++;
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
    vm_clear_alarms(&conf, &drift.vms[i]);
    free_vm(&drift.vms[i]);
    drift.vms[i] = drift.vms[--drift.n_vms];
  }
}

/* Whether vmscope_snapshot's first cycle over DataDir is running (pool.h): the pool holds only
 * some of the VMs, and ranking them now would alarm on VMs whose peers are not in yet. */
static bool first_cycle_running(void) {
  size_t domains = 0;
  if (!vs_pool_first_cycle_running(conf.data_dir, &domains)) return false;
  if (!drift.said_waiting)
    INFO(PLUGIN ": %s: waiting for vmscope_snapshot's first cycle (%zu domain(s)) to end: "
                "ranking before that would compare VMs with some of their peers only",
         conf.data_dir, domains);
  drift.said_waiting = true;
  return true;
}

/* The election moved to this host (ELECTED) or away from it. A host taking over starts from
 * what the host before it published (else it would notify every standing group again, and
 * never clear the ones gone); one that lost it forgets, so that it starts from the store again
 * when its turn comes back. */
static void take_over(bool elected) {
  fleet_forget();
  if (!elected) return;
  struct vs_err err = {0};
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *last =
      vs_store_last_fleet(drift.store, &err);
  if (last)
    fleet_take_over(last);
  else
    WARNING(PLUGIN ": %s; the fleet's standing groups and rollouts are notified again",
            vs_err_msg(&err));
  vs_err_clear(&err);
}

static void rank_pool(void) {
  struct vs_err err = {0};
  if (first_cycle_running()) return;
  _cleanup_(vs_waivers_freep) struct vs_waivers *waivers = load_waivers();
  _cleanup_(vs_strmap_freep) struct vs_strmap *labels = load_labels();
  _cleanup_(vs_view_freep) struct vs_view *local = read_pool();
  if (!local) return;
  struct vs_view_opts vo = {.peers = conf.peer_group,
                            .min_role_peers = (size_t)conf.min_role_peers,
                            .roles = {.threshold = conf.role_threshold},
                            .labels = labels};
  /* With a fleet store, this host's VMs are ranked in the whole fleet's view, and the fleet's
   * once-only notifications come from the elected host alone. */
  bool from_context = false, alone = false;
  /* The elected host reads the whole fleet: it makes the context the others rank from. */
  bool whole = drift.elected || (drift.store && vs_store_elected(drift.store));
  _cleanup_(vs_view_freep) struct vs_view *fleet_wide =
      conf.store_url ? fleet_view(local, &vo, !whole, &from_context, &alone) : NULL;
  bool elected = !fleet_wide || vs_store_elected(drift.store);
  if (fleet_wide && elected && from_context) { /* elected since: the whole fleet after all */
    vs_view_free(fleet_wide);
    fleet_wide = fleet_view(local, &vo, false, &from_context, &alone);
  }
  /* The store away, and neither a context nor rows of it ever read: ranking this host's VMs
   * among themselves would alarm on what the fleet would not. The last findings stand. */
  if (fleet_wide && alone) return;
  if (!fleet_wide) vs_view_prepare(local, &vo);
  const struct vs_view *view = fleet_wide ? fleet_wide : local;
  if (fleet_wide && elected != drift.elected) {
    INFO(PLUGIN ": %s", elected ? "this host does the fleet's once-only work (groups, rollouts, "
                                  "majority changes): it holds the fleet store's lock"
                                : "another host does the fleet's once-only work now");
    take_over(elected);
  }
  drift.elected = fleet_wide && elected;
  size_t n = vs_view_fleet_vms(view);
  /* The fleet's findings are the elected host's work alone: the others rank their own VMs. */
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *fleet =
      n >= 2 && elected ? vs_fleet_find(view) : vs_xcalloc(1, sizeof(*fleet));
  if (elected) {
    size_t majority_changes = fleet_notify_majorities(vs_view_fleet(view), fleet);
    pthread_mutex_lock(&drift.lock);
    drift.majority_changes += majority_changes;
    pthread_mutex_unlock(&drift.lock);
    fleet_notify_findings(fleet, vs_view_fleet(view));
  }
  if (n && vs_view_analysis(view)) store_analytics(view); /* not from the context: no roles */
  struct vs_drift_opts opts = {.warn_score = conf.warn_score,
                               .fail_score = conf.fail_score,
                               .waivers = waivers,
                               .now = time(NULL)};
  cdtime_t now = cdtime();
  for (size_t i = 0; i < drift.n_vms; i++)
    drift.vms[i].seen = false;
  struct vs_drift **ranked = vs_xcalloc(vs_view_count(view) + 1, sizeof(*ranked));
  size_t n_ranked = 0;
  for (size_t i = 0; n >= 2 && i < vs_view_count(view); i++) {
    if (fleet_wide && !vs_store_is_local(view, i, local)) continue; /* another host's */
    struct vs_drift *d = vs_view_rank(view, i, &opts, &err);
    if (!d) {
      WARNING(PLUGIN ": %s", vs_err_msg(&err));
      vs_err_clear(&err);
      continue;
    }
    ranked[n_ranked++] = d;
    struct vm *v = find_vm(d->target_id);
    free(v->name);
    v->name = vs_xstrdup(d->target_name);
    v->seen = true;
    count_alarms(v, d);
    vm_update_unique(&conf, v, d, n);
    vm_update_alarms(&conf, v, d, now, vs_view_by_role(view, i));
    vm_update_analytics(&conf, v, view, i, d->unique);
  }
  if (fleet_wide) publish(ranked, n_ranked, fleet, view, elected && !drift.store_away);
  for (size_t i = 0; i < n_ranked; i++)
    vs_drift_free(ranked[i]);
  free(ranked);
  drop_unseen();
  publish_metrics(fleet->n_groups, fleet->n_rollouts, elected);
}

static void *worker(void *arg) {
  (void)arg;
  pthread_mutex_lock(&drift.lock);
  /* The first round waits for collectd's first read, which comes after every plugin's init: a
   * round run at once, on a pool kept from before a restart, sent its alarms before
   * vmscope_action (loaded after this plugin) had registered its rules, and no rule saw them. */
  while (!drift.stop && !drift.reading)
    pthread_cond_wait(&drift.wake, &drift.lock);
  while (!drift.stop) {
    pthread_mutex_unlock(&drift.lock);
    rank_pool();
    pthread_mutex_lock(&drift.lock);
    cdtime_t until_cd = cdtime() + conf.interval;
    struct timespec until = CDTIME_T_TO_TIMESPEC(until_cd);
    while (!drift.stop && pthread_cond_timedwait(&drift.wake, &drift.lock, &until) == 0)
      ;
  }
  pthread_mutex_unlock(&drift.lock);
  return NULL;
}

static int init(void) {
  vs_log_set_sink(vs_glue_log_sink, PLUGIN);
  if (!conf.data_dir) conf.data_dir = vs_xstrdup("/var/lib/collectd/vmscope");
  if (conf.interval == 0) conf.interval = plugin_get_interval();
  if (drift.running) return 0;
  struct vs_err err = {0};
  if (vs_pool_check(conf.data_dir, &err) < 0) { /* a missing one is only logged: see read_pool */
    ERROR(PLUGIN ": DataDir: %s", vs_err_msg(&err));
    vs_err_clear(&err);
    return -1;
  }
  struct vs_waivers *w = conf.waiver_file ? vs_waivers_load(conf.waiver_file, &err) : NULL;
  if (conf.waiver_file && !w) {
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
  if (!drift.reading) {
    drift.reading = true;
    pthread_cond_broadcast(&drift.wake);
  }
  for (size_t i = 0; i < drift.n_metrics; i++) {
    const struct metric *m = &drift.metrics[i];
    submit(m->instance, "gauge", "drift_score", m->score);
    submit(m->instance, "count", "alarms", (gauge_t)m->alarms);
    submit(m->instance, "count", "failures", (gauge_t)m->failures);
    submit(m->instance, "count", "waived", (gauge_t)m->waived);
    submit(m->instance, "gauge", "peers", (gauge_t)m->peers);
    submit(m->instance, "gauge", "unique", m->unique ? 1 : 0);
    submit(m->instance, "gauge", "anomaly", m->anomaly);
    submit(m->instance, "gauge", "role_similarity", m->similarity);
    if (m->label_p >= 0) submit(m->instance, "gauge", "label_probability", m->label_p);
  }
  if (drift.n_metrics > 0 && drift.fleet_counts) { /* the fleet's: no VM's gauge */
    submit("", "count", "majority_changes", (gauge_t)drift.majority_changes);
    submit("", "count", "groups", (gauge_t)drift.groups_now);
    submit("", "count", "rollouts", (gauge_t)drift.rollouts_now);
  }
  if (drift.n_metrics > 0 && drift.rows_now > 0) { /* what reading the whole fleet cost */
    submit("", "count", "fleet_rows", (gauge_t)drift.rows_now);
    submit("", "count", "fleet_rows_loaded", (gauge_t)drift.rows_loaded_now);
  }
  pthread_mutex_unlock(&drift.lock);
  return 0;
}

/* Before any plugin's shutdown callback (vs_glue_register_read): the worker dispatches. */
static void halt(void) {
  if (!drift.running) return;
  pthread_mutex_lock(&drift.lock);
  drift.stop = true;
  pthread_cond_broadcast(&drift.wake);
  pthread_mutex_unlock(&drift.lock);
  pthread_join(drift.thread, NULL);
  drift.running = false;
}

static int shutdown_cb(void) {
  halt();
  for (size_t i = 0; i < drift.n_vms; i++)
    free_vm(&drift.vms[i]);
  free(drift.vms);
  drift.vms = NULL;
  drift.n_vms = 0;
  free_metrics(drift.metrics, drift.n_metrics);
  drift.metrics = NULL;
  drift.n_metrics = 0;
  fleet_forget();
  vs_store_freep(&drift.store);
  free(drift.why_whole);
  drift.why_whole = NULL;
  vs_once_free(&drift.once);
  free(conf.data_dir);
  free(conf.waiver_file);
  free(conf.label_file);
  free(conf.store_url);
  free(conf.store_password_file);
  free(conf.store_ca_file);
  conf.data_dir = conf.waiver_file = conf.label_file = NULL;
  conf.store_url = conf.store_password_file = conf.store_ca_file = NULL;
  return 0;
}

void module_register(void) {
  plugin_register_complex_config(PLUGIN, config);
  plugin_register_init(PLUGIN, init);
  vs_glue_register_read(PLUGIN, read_cb, halt);
  plugin_register_shutdown(PLUGIN, shutdown_cb);
}
