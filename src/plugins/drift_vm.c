/* drift_vm.c: what the worker notifies about one VM after ranking it (drift.h, analytics.h).
 * A config_drift notification when an alarm appears (WARNING, or FAILURE from FailureScore),
 * changes severity, or clears (OKAY); with ResendInterval, active alarms are sent again. A VM
 * with no close peers (unique) raises no alarm and no anomaly: one "unique" notification says
 * so, and one when it has peers again. And role_change and anomaly from the fleet's roles. */
#include "drift_internal.h"

static int severity_of(enum vs_severity s) {
  return s == VS_SEVERITY_FAILURE   ? NOTIF_FAILURE
         : s == VS_SEVERITY_WARNING ? NOTIF_WARNING
                                    : NOTIF_OKAY;
}

/* A config_drift notification about KEY on the VM NAME (ID): its type instance is KEY
 * shortened, its meta (after the VM's name) starts with "key". */
static void init_alarm_notification(const struct drift_conf *c, notification_t *n, int severity,
                                    const char *name, const char *id, const char *key) {
  char short_key[DATA_MAX_NAME_LEN];
  vs_short_key(key, short_key, sizeof(short_key));
  vs_notification_init_vm(n, severity, PLUGIN, c->instance_format, name, id, "config_drift",
                          short_key);
  plugin_notification_meta_add_string(n, "key", key);
}

/* An alarm of D, with its evidence: "PermitRootLogin is yes on web-03; its 4 close peers all
 * have prohibit-password (alone among them: p = 0.20, score 0.80, rank 1)". CLOSE: the peers
 * are the VM's close peers (else the whole fleet, PeerGroup fleet). */
static void notify_finding(const struct drift_conf *c, const struct vs_drift *d,
                           const struct vs_finding *f, int severity, bool close) {
  notification_t n;
  init_alarm_notification(c, &n, severity, d->target_name, d->target_id, f->key);
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
  if (f->about_key) plugin_notification_meta_add_string(&n, "about_key", f->about_key);
  /* a collapsed unit (a file or user only this VM has) is named by the setting whose value and
   * statistics are shown, and the unit after it */
  _cleanup_(vs_freep) char *unit =
      f->about_key ? vs_xasprintf(" (one of the %zu keys of %s)", f->keys, f->key) : NULL;
  _cleanup_(vs_freep) char *kind =
      f->role_of_value ? vs_xasprintf(" (the value of %s's kind)", f->role_of_value) : NULL;
  _cleanup_(vs_freep) char *they =
      strcmp(f->majority, VS_ALL_DIFFER) == 0 ? vs_xasprintf("its %u %s all differ", f->n, peers)
      : f->majority_count == f->n
          ? vs_xasprintf("its %u %s all have %s", f->n, peers, f->majority)
          : vs_xasprintf("%u of its %u %s have %s", f->majority_count, f->n, peers, f->majority);
  vs_notification_send(&n, "%s is %s on %s%s%s; %s (%s%s: p = %.2f, score %.2f, rank %zu)",
                       key_leaf(f->about_key ? f->about_key : f->key), f->value, d->target_name,
                       unit ? unit : "", kind ? kind : "", they, vs_finding_kind_name(f->kind),
                       f->kind == VS_FINDING_ALONE ? " among them" : "", f->p, f->score, f->rank);
}

static void notify_cleared(const struct drift_conf *c, const struct vm *v, const struct alarm *a) {
  notification_t n;
  init_alarm_notification(c, &n, NOTIF_OKAY, v->name, v->id, a->key);
  plugin_notification_meta_add_string(&n, "id", v->id);
  vs_notification_send(&n, "%s on %s no longer sets it apart from its peers", a->key,
                       v->name ? v->name : v->id);
}

void vm_clear_alarms(const struct drift_conf *c, const struct vm *v) {
  for (size_t k = 0; k < v->n_alarms; k++)
    notify_cleared(c, v, &v->alarms[k]);
}

void vm_update_alarms(const struct drift_conf *c, struct vm *v, const struct vs_drift *d,
                      cdtime_t now, bool close) {
  for (size_t i = 0; i < v->n_alarms; i++)
    v->alarms[i].seen = false;
  size_t reported = 0;
  for (size_t i = 0; i < d->n_findings; i++) {
    const struct vs_finding *f = &d->findings[i];
    if (f->waived || f->severity < VS_SEVERITY_WARNING) continue;
    if (c->top && reported >= (size_t)c->top) break;
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
    } else if (c->resend && now - a->sent >= c->resend) {
      send = true;
    }
    a->seen = true;
    if (send) {
      notify_finding(c, d, f, severity_of(f->severity), close);
      a->sent = now;
    }
  }
  for (size_t i = 0; i < v->n_alarms;) {
    if (v->alarms[i].seen) {
      i++;
      continue;
    }
    notify_cleared(c, v, &v->alarms[i]);
    free(v->alarms[i].key);
    v->alarms[i] = v->alarms[--v->n_alarms];
  }
}

/* Informational: OKAY, meta severity "info". */
void vm_update_unique(const struct drift_conf *c, struct vm *v, const struct vs_drift *d,
                      size_t vms) {
  bool was = v->unique, first = !v->ranked;
  v->unique = d->unique;
  v->ranked = true;
  if (first ? !d->unique : was == d->unique) return;
  notification_t n;
  vs_notification_init_vm(&n, NOTIF_OKAY, PLUGIN, c->instance_format, v->name, v->id, "unique", "");
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

/* ---------------------------------------------------------------------------- analytics */

static void notify_vm(const struct drift_conf *c, const struct vm *v, int severity,
                      const char *type, const char *fmt, ...) VS_PRINTF(5, 6);
static void notify_vm(const struct drift_conf *c, const struct vm *v, int severity,
                      const char *type, const char *fmt, ...) {
  notification_t n;
  vs_notification_init_vm(&n, severity, PLUGIN, c->instance_format, v->name, v->id, type, "");
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

/* Notifications when V's role changed (its old medoid is not in its role any more) or its
 * anomaly crossed AnomalyThreshold. A unique VM has no role to be anomalous in: it raises no
 * anomaly (one it had is cleared). */
void vm_update_analytics(const struct drift_conf *c, struct vm *v, const struct vs_view *view,
                         size_t i, bool unique) {
  struct vs_view_role r;
  vs_view_role(view, i, &r);
  const char *medoid = r.medoid_id;
  v->anomaly = r.anomaly;
  v->similarity = r.similarity;
  v->label_p = r.label_p;
  size_t size = r.size;
  if (v->medoid && strcmp(v->medoid, medoid) != 0) {
    /* The role may only have a new medoid: it changed when the old medoid is not in it any
     * more, or, for a VM that was its own role's medoid, when it left or joined others. */
    bool same = false;
    if (strcmp(v->medoid, v->id) == 0)
      same = (v->role_size == 1) == (size == 1);
    else
      same = vs_view_same_role(view, i, v->medoid);
    if (!same)
      notify_vm(c, v, NOTIF_WARNING, "role_change",
                "%s changed role: now like %s (%zu VMs), similarity %.2f",
                v->name ? v->name : v->id, r.medoid_name ? r.medoid_name : medoid, size,
                v->similarity);
  }
  free(v->medoid);
  v->medoid = vs_xstrdup(medoid);
  v->role_size = size;
  bool above = !unique && v->anomaly >= c->anomaly_threshold;
  if (above != v->anomalous && unique)
    notify_vm(c, v, NOTIF_OKAY, "anomaly",
              "%s is no longer anomalous: it has no close peers, no role to stand out from",
              v->name ? v->name : v->id);
  else if (above != v->anomalous)
    notify_vm(c, v, above ? NOTIF_WARNING : NOTIF_OKAY, "anomaly",
              above ? "%s is anomalous: %.2f from its role (threshold %.2f)"
                    : "%s is no longer anomalous: %.2f from its role (threshold %.2f)",
              v->name ? v->name : v->id, v->anomaly, c->anomaly_threshold);
  v->anomalous = above;
}
