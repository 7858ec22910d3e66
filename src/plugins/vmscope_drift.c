/* vmscope_drift: collectd plugin that ranks every VM of the snapshot pool against its peers
 * (PeerPressure, see drift.h) on its interval, and reports drift as metrics and notifications.
 * See collectd-vmscope(5).
 *
 * One worker thread builds the fleet view of the pool (fleetview.h: each VM's newest document,
 * close groups, peer groups; the same code `vmscope drift --pool` runs), ranks each VM, and
 * sends a config_drift notification when an alarm appears (WARNING, or FAILURE from
 * FailureScore), changes severity, or clears (OKAY); with ResendInterval, active alarms are sent
 * again. A VM with no close peers (unique) raises no alarm and no anomaly: one "unique"
 * notification says so, and one when it has peers again. What the fleet shows as a whole
 * (fleetfind.h) is notified once for the fleet, with no plugin instance: a team's tweak on a
 * small group of VMs (config_group), a rollout in progress with its share (rollout), and a key
 * whose majority moved (majority_change, unless a rollout moved it). The state belongs to the
 * worker alone (notifications go out without any lock held, since collectd delivers them in the
 * sender's thread); the read callback dispatches the metrics the worker last published, under
 * the lock. */
#include "glue.h"

#include "analytics.h"
#include "drift.h"
#include "fleetfind.h"
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
  double score;                              /* the highest score among its alarms */
  size_t n_alarmed, failures, waived, peers; /* alarms (not waived), failures among them, and
                                                waived ones of this round */
  struct alarm *alarms;
  size_t n_alarms;
  bool seen;
  bool unique, ranked; /* no close peers last round; ranked at least once */
  /* analytics */
  char *medoid;     /* its role's medoid last round (a role is known by it), NULL before */
  size_t role_size; /* its role's size last round */
  double anomaly, similarity, label_p;
  bool anomalous; /* above AnomalyThreshold: notified */
};

struct metric { /* what the read callback dispatches for one VM */
  char *instance;
  double score;
  size_t alarms, failures, waived, peers;
  bool unique;
  double anomaly, similarity, label_p; /* label_p < 0: no label */
};

struct group { /* a group notified (the worker's): known by its key and its members */
  char *id;    /* KEY "\n" MEMBER "\n" MEMBER... */
  char *key, *value, *members;
  size_t n_members;
  bool seen;
};

struct rollout { /* a rollout notified (the worker's), by key */
  char *key, *value;
  uint32_t have, of;
  bool seen;
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
  struct group *groups;             /* the worker's */
  size_t n_groups;
  struct rollout *rollouts; /* the worker's: last round's rollouts */
  size_t n_rollouts;
  size_t groups_now, rollouts_now; /* under LOCK: this round's counts */
  struct vs_once once;             /* the worker's */
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

/* The last part of KEY, for messages: "PermitRootLogin" of "file:/etc/ssh/sshd_config:
 * PermitRootLogin", "openssl" of "pkg:openssl"; a collapsed unit ("file:/etc/app.conf:*") is
 * named whole. */
static const char *key_leaf(const char *key) {
  const char *leaf = strrchr(key, ':');
  return leaf && leaf[1] && leaf[1] != '*' ? leaf + 1 : key;
}

/* An alarm of D, with its evidence: "PermitRootLogin is yes on web-03; its 4 close peers all
 * have prohibit-password (alone among them: p = 0.20, score 0.80, rank 1)". CLOSE: the peers
 * are the VM's close peers (else the whole fleet, PeerGroup fleet). */
static void notify_finding(const struct vs_drift *d, const struct vs_finding *f, int severity,
                           bool close) {
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
  plugin_notification_meta_add_double(&n, "p", f->p);
  plugin_notification_meta_add_unsigned_int(&n, "rank", f->rank);
  plugin_notification_meta_add_unsigned_int(&n, "c", f->c);
  plugin_notification_meta_add_unsigned_int(&n, "m", f->m);
  plugin_notification_meta_add_string(&n, "kind", vs_finding_kind_name(f->kind));
  plugin_notification_meta_add_unsigned_int(&n, "elsewhere", f->elsewhere);
  if (f->role_of_value) plugin_notification_meta_add_string(&n, "value_of", f->role_of_value);
  plugin_notification_meta_add_string(&n, "severity", vs_severity_name(f->severity));
  plugin_notification_meta_add_string(&n, "id", d->target_id);
  const char *peers = close ? "close peers" : "peers";
  _cleanup_(vs_freep) char *kind =
      f->role_of_value ? vs_xasprintf(" (the value of %s's kind)", f->role_of_value) : NULL;
  _cleanup_(vs_freep) char *they =
      strcmp(f->majority, VS_ALL_DIFFER) == 0 ? vs_xasprintf("its %u %s all differ", f->n, peers)
      : f->majority_count == f->n
          ? vs_xasprintf("its %u %s all have %s", f->n, peers, f->majority)
          : vs_xasprintf("%u of its %u %s have %s", f->majority_count, f->n, peers, f->majority);
  vs_notification_send(&n, "%s is %s on %s%s; %s (%s%s: p = %.2f, score %.2f, rank %zu)",
                       key_leaf(f->key), f->value, d->target_name, kind ? kind : "", they,
                       vs_finding_kind_name(f->kind),
                       f->kind == VS_FINDING_ALONE ? " among them" : "", f->p, f->score, f->rank);
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

/* Whether KEY is a rollout of F, or was one last round (drift.rollouts before this round's). */
static bool is_rollout(const struct vs_fleet_findings *f, const char *key) {
  for (size_t i = 0; i < f->n_rollouts; i++)
    if (strcmp(f->rollouts[i].key, key) == 0) return true;
  for (size_t i = 0; i < drift.n_rollouts; i++)
    if (strcmp(drift.rollouts[i].key, key) == 0) return true;
  return false;
}

struct majority_round {
  const struct vs_fleet_findings *fleet;
  size_t sent;
};

/* A fleet-wide key's majority moved: no plugin instance, since it is the fleet's, not a VM's.
 * A rollout moving it is the rollout notification's news, not a second one. */
static void notify_majority(const struct vs_majority_change *c, void *arg) {
  struct majority_round *round = arg;
  if (is_rollout(round->fleet, c->key)) return;
  round->sent++;
  notification_t n;
  char short_key[DATA_MAX_NAME_LEN];
  vs_short_key(c->key, short_key, sizeof(short_key));
  vs_notification_init(&n, NOTIF_WARNING, PLUGIN, "", "majority_change", short_key);
  plugin_notification_meta_add_string(&n, "key", c->key);
  plugin_notification_meta_add_string(&n, "value", c->after);
  plugin_notification_meta_add_string(&n, "previous", c->before);
  plugin_notification_meta_add_unsigned_int(&n, "support", c->support);
  plugin_notification_meta_add_unsigned_int(&n, "vms", c->docs);
  vs_notification_send(&n, "%s's majority moved from %s to %s (%u of %u VMs)", key_leaf(c->key),
                       c->before, c->after, c->support, c->docs);
}

/* ------------------------------------------------------------------------ fleet findings */

static void free_group(struct group *g) {
  free(g->id);
  free(g->key);
  free(g->value);
  free(g->members);
}

static void notify_group(const struct vs_group *g, uint32_t vms, const char *members) {
  notification_t n;
  char short_key[DATA_MAX_NAME_LEN];
  vs_short_key(g->key, short_key, sizeof(short_key));
  vs_notification_init(&n, NOTIF_WARNING, PLUGIN, "", "config_group", short_key);
  plugin_notification_meta_add_string(&n, "key", g->key);
  plugin_notification_meta_add_string(&n, "value", g->value);
  plugin_notification_meta_add_string(&n, "members", members);
  plugin_notification_meta_add_unsigned_int(&n, "count", g->n_members);
  plugin_notification_meta_add_string(&n, "rest", g->rest);
  plugin_notification_meta_add_unsigned_int(&n, "support", g->rest_count);
  plugin_notification_meta_add_unsigned_int(&n, "keys", g->keys);
  plugin_notification_meta_add_unsigned_int(&n, "vms", vms);
  plugin_notification_meta_add_string(&n, "severity", "warning");
  _cleanup_(vs_freep) char *msg = vs_group_describe(g, vms);
  vs_notification_send(&n, "%s", msg);
}

static void notify_group_gone(const struct group *g) {
  notification_t n;
  char short_key[DATA_MAX_NAME_LEN];
  vs_short_key(g->key, short_key, sizeof(short_key));
  vs_notification_init(&n, NOTIF_OKAY, PLUGIN, "", "config_group", short_key);
  plugin_notification_meta_add_string(&n, "key", g->key);
  plugin_notification_meta_add_string(&n, "value", g->value);
  plugin_notification_meta_add_string(&n, "members", g->members);
  plugin_notification_meta_add_unsigned_int(&n, "count", g->n_members);
  vs_notification_send(&n, "%s is no longer %s on a group of its own (%zu VMs: %s)",
                       key_leaf(g->key), g->value, g->n_members, g->members);
}

/* Notifies the groups of F that are new (by key and members), and those gone (OKAY). */
static void update_groups(const struct vs_fleet_findings *f) {
  for (size_t i = 0; i < drift.n_groups; i++)
    drift.groups[i].seen = false;
  for (size_t i = 0; i < f->n_groups; i++) {
    const struct vs_group *g = &f->groups[i];
    struct vs_buf id = {0}, members = {0};
    vs_buf_adds(&id, g->key);
    for (size_t k = 0; k < g->n_members; k++) {
      vs_buf_addf(&id, "\n%s", g->members[k]);
      vs_buf_addf(&members, "%s%s", k ? ", " : "", g->members[k]);
    }
    vs_buf_add(&id, "", 0);
    vs_buf_add(&members, "", 0);
    _cleanup_(vs_freep) char *id_s = vs_buf_steal(&id);
    _cleanup_(vs_freep) char *members_s = vs_buf_steal(&members);
    struct group *known = NULL;
    for (size_t k = 0; k < drift.n_groups && !known; k++)
      if (strcmp(drift.groups[k].id, id_s) == 0) known = &drift.groups[k];
    if (!known) {
      notify_group(g, f->vms, members_s);
      drift.groups = vs_xrealloc(drift.groups, (drift.n_groups + 1) * sizeof(*drift.groups));
      known = &drift.groups[drift.n_groups++];
      *known = (struct group){.id = vs_steal(&id_s),
                              .key = vs_xstrdup(g->key),
                              .value = vs_xstrdup(g->value),
                              .members = vs_steal(&members_s),
                              .n_members = g->n_members};
    }
    known->seen = true;
  }
  for (size_t i = 0; i < drift.n_groups;) {
    if (drift.groups[i].seen) {
      i++;
      continue;
    }
    notify_group_gone(&drift.groups[i]);
    free_group(&drift.groups[i]);
    drift.groups[i] = drift.groups[--drift.n_groups];
  }
}

/* A rollout in progress (R), or over (R NULL: OLD is the last one notified; FLEET says how
 * many VMs now have its value). Informational: OKAY, meta severity "info". */
static void notify_rollout(const struct vs_rollout *r, const struct rollout *old,
                           const struct vs_pop *fleet) {
  notification_t n;
  char short_key[DATA_MAX_NAME_LEN];
  const char *key = r ? r->key : old->key, *value = r ? r->value : old->value;
  vs_short_key(key, short_key, sizeof(short_key));
  vs_notification_init(&n, NOTIF_OKAY, PLUGIN, "", "rollout", short_key);
  plugin_notification_meta_add_string(&n, "key", key);
  plugin_notification_meta_add_string(&n, "value", value);
  plugin_notification_meta_add_string(&n, "severity", "info");
  if (r) {
    double share = r->of ? (double)r->have / r->of : 0;
    plugin_notification_meta_add_string(&n, "from", r->from);
    plugin_notification_meta_add_unsigned_int(&n, "have", r->have);
    plugin_notification_meta_add_unsigned_int(&n, "of", r->of);
    plugin_notification_meta_add_double(&n, "share", share);
    plugin_notification_meta_add_string(&n, "by", r->by_version ? "version" : "snapshots");
    plugin_notification_meta_add_string(&n, "state", "in progress");
    vs_notification_send(&n, "%s %s on %u of %u VMs (%.0f%%), from %s%s", key_leaf(key), value,
                         r->have, r->of, 100 * share, r->from,
                         r->by_version ? "" : " (moved since their previous snapshots)");
    return;
  }
  long i = vs_pop_key_index(fleet, key);
  uint32_t have = i >= 0 ? vs_pop_count(fleet, (size_t)i, value) : 0;
  uint32_t of = (uint32_t)vs_pop_docs(fleet);
  plugin_notification_meta_add_unsigned_int(&n, "have", have);
  plugin_notification_meta_add_unsigned_int(&n, "of", of);
  plugin_notification_meta_add_string(&n, "state", have == of ? "complete" : "over");
  vs_notification_send(&n, "%s %s: the rollout is %s (%u of %u VMs have it)", key_leaf(key), value,
                       have == of ? "complete" : "over", have, of);
}

/* Notifies the rollouts of F that appeared or whose share (or value) changed, and those gone;
 * keeps this round's as the state. */
static void update_rollouts(const struct vs_fleet_findings *f, const struct vs_pop *fleet) {
  for (size_t i = 0; i < drift.n_rollouts; i++)
    drift.rollouts[i].seen = false;
  for (size_t i = 0; i < f->n_rollouts; i++) {
    const struct vs_rollout *r = &f->rollouts[i];
    struct rollout *known = NULL;
    for (size_t k = 0; k < drift.n_rollouts && !known; k++)
      if (strcmp(drift.rollouts[k].key, r->key) == 0) known = &drift.rollouts[k];
    if (!known) {
      drift.rollouts =
          vs_xrealloc(drift.rollouts, (drift.n_rollouts + 1) * sizeof(*drift.rollouts));
      known = &drift.rollouts[drift.n_rollouts++];
      *known = (struct rollout){.key = vs_xstrdup(r->key)};
    }
    if (!known->value || strcmp(known->value, r->value) != 0 || known->have != r->have ||
        known->of != r->of) {
      notify_rollout(r, NULL, fleet);
      free(known->value);
      known->value = vs_xstrdup(r->value);
      known->have = r->have;
      known->of = r->of;
    }
    known->seen = true;
  }
  for (size_t i = 0; i < drift.n_rollouts;) {
    if (drift.rollouts[i].seen) {
      i++;
      continue;
    }
    notify_rollout(NULL, &drift.rollouts[i], fleet);
    free(drift.rollouts[i].key);
    free(drift.rollouts[i].value);
    drift.rollouts[i] = drift.rollouts[--drift.n_rollouts];
  }
}

/* Brings V's alarms in line with ranking D: notifies what appeared, changed severity, is due
 * for a resend, or cleared. */
static void update_alarms(struct vm *v, const struct vs_drift *d, cdtime_t now, bool close) {
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
      notify_finding(d, f, severity_of(f->severity), close);
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

/* Hands this round's figures to the read callback, and the fleet's counts (GROUPS, ROLLOUTS). */
static void publish_metrics(size_t groups, size_t rollouts) {
  struct metric *m = vs_xcalloc(drift.n_vms + 1, sizeof(*m));
  for (size_t i = 0; i < drift.n_vms; i++)
    m[i] = (struct metric){
        vs_xstrdup(vs_instance_name(drift.instance_format, drift.vms[i].name, drift.vms[i].id)),
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
 * medoid is not in its role any more) or its anomaly crossed AnomalyThreshold. A unique VM has
 * no role to be anomalous in: it raises no anomaly (one it had is cleared). */
static void update_analytics(struct vm *v, const struct vs_view *view, size_t i, bool unique) {
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
  bool above = !unique && v->anomaly >= drift.anomaly_threshold;
  if (above != v->anomalous && unique)
    notify_vm(v, NOTIF_OKAY, "anomaly",
              "%s is no longer anomalous: it has no close peers, no role to stand out from",
              v->name ? v->name : v->id);
  else if (above != v->anomalous)
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

/* V became unique (no close peers: D->unique), or stopped being: an informational notification
 * (OKAY, meta severity "info"), also when V is first ranked unique. VMS: the fleet's size. */
static void update_unique(struct vm *v, const struct vs_drift *d, size_t vms) {
  bool was = v->unique, first = !v->ranked;
  v->unique = d->unique;
  v->ranked = true;
  if (first ? !d->unique : was == d->unique) return;
  notification_t n;
  vs_notification_init_vm(&n, NOTIF_OKAY, PLUGIN, drift.instance_format, v->name, v->id, "unique",
                          "");
  plugin_notification_meta_add_string(&n, "severity", "info");
  plugin_notification_meta_add_boolean(&n, "unique", d->unique);
  plugin_notification_meta_add_unsigned_int(&n, "vms", vms);
  plugin_notification_meta_add_unsigned_int(&n, "peers", d->samples);
  plugin_notification_meta_add_string(&n, "id", v->id);
  const char *name = v->name ? v->name : v->id;
  if (d->unique)
    vs_notification_send(&n,
                         "%s is unique: it has no close peers to be compared with among the "
                         "fleet's %zu VMs (ranked for information, no alarms)",
                         name, vms);
  else
    vs_notification_send(&n,
                         "%s is no longer unique: it has %u close peers among the fleet's %zu "
                         "VMs, and its settings are compared with theirs",
                         name, d->samples, vms);
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
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *fleet =
      n >= 2 ? vs_fleet_find(view) : vs_xcalloc(1, sizeof(*fleet));
  if (!drift.majorities) drift.majorities = vs_majorities_new();
  struct majority_round round = {.fleet = fleet};
  vs_majorities_update(drift.majorities, vs_view_fleet(view), notify_majority, &round);
  pthread_mutex_lock(&drift.lock);
  drift.majority_changes += round.sent;
  pthread_mutex_unlock(&drift.lock);
  update_groups(fleet);
  update_rollouts(fleet, vs_view_fleet(view));
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
    update_unique(v, d, n);
    update_alarms(v, d, now, vs_view_by_role(view, i));
    update_analytics(v, view, i, d->unique);
  }
  drop_unseen();
  publish_metrics(fleet->n_groups, fleet->n_rollouts);
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
    submit(m->instance, "count", "failures", (gauge_t)m->failures);
    submit(m->instance, "count", "waived", (gauge_t)m->waived);
    submit(m->instance, "gauge", "peers", (gauge_t)m->peers);
    submit(m->instance, "gauge", "unique", m->unique ? 1 : 0);
    submit(m->instance, "gauge", "anomaly", m->anomaly);
    submit(m->instance, "gauge", "role_similarity", m->similarity);
    if (m->label_p >= 0) submit(m->instance, "gauge", "label_probability", m->label_p);
  }
  if (drift.n_metrics > 0) { /* the fleet's: "count" like majority_changes, no VM's gauge */
    submit("", "count", "majority_changes", (gauge_t)drift.majority_changes);
    submit("", "count", "groups", (gauge_t)drift.groups_now);
    submit("", "count", "rollouts", (gauge_t)drift.rollouts_now);
  }
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
  for (size_t i = 0; i < drift.n_groups; i++)
    free_group(&drift.groups[i]);
  free(drift.groups);
  drift.groups = NULL;
  drift.n_groups = 0;
  for (size_t i = 0; i < drift.n_rollouts; i++) {
    free(drift.rollouts[i].key);
    free(drift.rollouts[i].value);
  }
  free(drift.rollouts);
  drift.rollouts = NULL;
  drift.n_rollouts = 0;
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
