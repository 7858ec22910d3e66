/* drift_fleet.c: what the fleet shows as a whole (fleetfind.h), notified once for the fleet,
 * with no plugin instance: a team's tweak on a small group of VMs (config_group), a rollout in
 * progress with its share (rollout), and a key whose majority moved (majority_change, unless a
 * rollout moved it). The state is the worker's alone. */
#include "drift_internal.h"

#include "majority.h"

struct group { /* a group notified: known by its key and its members */
  char *id;    /* KEY "\n" MEMBER "\n" MEMBER... */
  char *key, *value, *members;
  size_t n_members;
  bool seen;
};

struct rollout { /* a rollout notified, by key */
  char *key, *value;
  uint32_t have, of;
  bool seen;
};

static struct {
  struct vs_majorities *majorities;
  struct group *groups;
  size_t n_groups;
  struct rollout *rollouts; /* last round's rollouts */
  size_t n_rollouts;
} fleet;

/* A notification of the fleet's (no plugin instance) about KEY: its type instance is KEY
 * shortened, its meta starts with "key" and "value". */
static void init_fleet_notification(notification_t *n, int severity, const char *type,
                                    const char *key, const char *value) {
  char short_key[DATA_MAX_NAME_LEN];
  vs_short_key(key, short_key, sizeof(short_key));
  vs_notification_init(n, severity, PLUGIN, "", type, short_key);
  plugin_notification_meta_add_string(n, "key", key);
  plugin_notification_meta_add_string(n, "value", value);
}

/* Whether KEY is a rollout of F, or was one last round (fleet.rollouts before this round's). */
static bool is_rollout(const struct vs_fleet_findings *f, const char *key) {
  for (size_t i = 0; i < f->n_rollouts; i++)
    if (strcmp(f->rollouts[i].key, key) == 0) return true;
  for (size_t i = 0; i < fleet.n_rollouts; i++)
    if (strcmp(fleet.rollouts[i].key, key) == 0) return true;
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
  init_fleet_notification(&n, NOTIF_WARNING, "majority_change", c->key, c->after);
  plugin_notification_meta_add_string(&n, "previous", c->before);
  plugin_notification_meta_add_unsigned_int(&n, "support", c->support);
  plugin_notification_meta_add_unsigned_int(&n, "vms", c->docs);
  vs_notification_send(&n, "%s's majority moved from %s to %s (%u of %u VMs)", key_leaf(c->key),
                       c->before, c->after, c->support, c->docs);
}

size_t fleet_notify_majorities(const struct vs_pop *pop, const struct vs_fleet_findings *f) {
  if (!fleet.majorities) fleet.majorities = vs_majorities_new();
  struct majority_round round = {.fleet = f};
  vs_majorities_update(fleet.majorities, pop, notify_majority, &round);
  return round.sent;
}

/* ------------------------------------------------------------------------------ groups */

static void free_group(struct group *g) {
  free(g->id);
  free(g->key);
  free(g->value);
  free(g->members);
}

static void notify_group(const struct vs_group *g, uint32_t vms, const char *members) {
  notification_t n;
  init_fleet_notification(&n, NOTIF_WARNING, "config_group", g->key, g->value);
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
  init_fleet_notification(&n, NOTIF_OKAY, "config_group", g->key, g->value);
  plugin_notification_meta_add_string(&n, "members", g->members);
  plugin_notification_meta_add_unsigned_int(&n, "count", g->n_members);
  vs_notification_send(&n, "%s is no longer %s on a group of its own (%zu VMs: %s)",
                       key_leaf(g->key), g->value, g->n_members, g->members);
}

/* G as known (state) once notified: by key and members. */
static struct group *know_group(const struct vs_group *g, bool notify, uint32_t vms) {
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
  for (size_t k = 0; k < fleet.n_groups; k++)
    if (strcmp(fleet.groups[k].id, id_s) == 0) return &fleet.groups[k];
  if (notify) notify_group(g, vms, members_s);
  fleet.groups = vs_xrealloc(fleet.groups, (fleet.n_groups + 1) * sizeof(*fleet.groups));
  struct group *known = &fleet.groups[fleet.n_groups++];
  *known = (struct group){.id = vs_steal(&id_s),
                          .key = vs_xstrdup(g->key),
                          .value = vs_xstrdup(g->value),
                          .members = vs_steal(&members_s),
                          .n_members = g->n_members};
  return known;
}

/* Notifies the groups of F that are new (by key and members), and those gone (OKAY). */
static void update_groups(const struct vs_fleet_findings *f) {
  for (size_t i = 0; i < fleet.n_groups; i++)
    fleet.groups[i].seen = false;
  for (size_t i = 0; i < f->n_groups; i++)
    know_group(&f->groups[i], true, f->vms)->seen = true;
  for (size_t i = 0; i < fleet.n_groups;) {
    if (fleet.groups[i].seen) {
      i++;
      continue;
    }
    notify_group_gone(&fleet.groups[i]);
    free_group(&fleet.groups[i]);
    fleet.groups[i] = fleet.groups[--fleet.n_groups];
  }
}

/* ---------------------------------------------------------------------------- rollouts */

/* A rollout in progress (R), or over (R NULL: OLD is the last one notified; POP says how
 * many VMs now have its value). Informational: OKAY, meta severity "info". */
static void notify_rollout(const struct vs_rollout *r, const struct rollout *old,
                           const struct vs_pop *pop) {
  notification_t n;
  const char *key = r ? r->key : old->key, *value = r ? r->value : old->value;
  init_fleet_notification(&n, NOTIF_OKAY, "rollout", key, value);
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
  long i = vs_pop_key_index(pop, key);
  uint32_t have = i >= 0 ? vs_pop_count(pop, (size_t)i, value) : 0;
  uint32_t of = (uint32_t)vs_pop_docs(pop);
  plugin_notification_meta_add_unsigned_int(&n, "have", have);
  plugin_notification_meta_add_unsigned_int(&n, "of", of);
  plugin_notification_meta_add_string(&n, "state", have == of ? "complete" : "over");
  vs_notification_send(&n, "%s %s: the rollout is %s (%u of %u VMs have it)", key_leaf(key), value,
                       have == of ? "complete" : "over", have, of);
}

static void free_rollout(struct rollout *r) {
  free(r->key);
  free(r->value);
}

/* Notifies the rollouts of F that appeared or whose share (or value) changed, and those gone;
 * keeps this round's as the state. */
static void update_rollouts(const struct vs_fleet_findings *f, const struct vs_pop *pop) {
  for (size_t i = 0; i < fleet.n_rollouts; i++)
    fleet.rollouts[i].seen = false;
  for (size_t i = 0; i < f->n_rollouts; i++) {
    const struct vs_rollout *r = &f->rollouts[i];
    struct rollout *known = NULL;
    for (size_t k = 0; k < fleet.n_rollouts && !known; k++)
      if (strcmp(fleet.rollouts[k].key, r->key) == 0) known = &fleet.rollouts[k];
    if (!known) {
      fleet.rollouts =
          vs_xrealloc(fleet.rollouts, (fleet.n_rollouts + 1) * sizeof(*fleet.rollouts));
      known = &fleet.rollouts[fleet.n_rollouts++];
      *known = (struct rollout){.key = vs_xstrdup(r->key)};
    }
    if (!known->value || strcmp(known->value, r->value) != 0 || known->have != r->have ||
        known->of != r->of) {
      notify_rollout(r, NULL, pop);
      free(known->value);
      known->value = vs_xstrdup(r->value);
      known->have = r->have;
      known->of = r->of;
    }
    known->seen = true;
  }
  for (size_t i = 0; i < fleet.n_rollouts;) {
    if (fleet.rollouts[i].seen) {
      i++;
      continue;
    }
    notify_rollout(NULL, &fleet.rollouts[i], pop);
    free_rollout(&fleet.rollouts[i]);
    fleet.rollouts[i] = fleet.rollouts[--fleet.n_rollouts];
  }
}

void fleet_notify_findings(const struct vs_fleet_findings *f, const struct vs_pop *pop) {
  update_groups(f);
  update_rollouts(f, pop);
}

void fleet_take_over(const struct vs_fleet_findings *last) {
  fleet_forget();
  for (size_t i = 0; i < last->n_groups; i++)
    know_group(&last->groups[i], false, last->vms);
  fleet.rollouts = vs_xcalloc(last->n_rollouts + 1, sizeof(*fleet.rollouts));
  for (size_t i = 0; i < last->n_rollouts; i++)
    fleet.rollouts[fleet.n_rollouts++] =
        (struct rollout){.key = vs_xstrdup(last->rollouts[i].key),
                         .value = vs_xstrdup(last->rollouts[i].value),
                         .have = last->rollouts[i].have,
                         .of = last->rollouts[i].of};
}

void fleet_forget(void) {
  vs_majorities_free(fleet.majorities);
  fleet.majorities = NULL;
  for (size_t i = 0; i < fleet.n_groups; i++)
    free_group(&fleet.groups[i]);
  free(fleet.groups);
  fleet.groups = NULL;
  fleet.n_groups = 0;
  for (size_t i = 0; i < fleet.n_rollouts; i++)
    free_rollout(&fleet.rollouts[i]);
  free(fleet.rollouts);
  fleet.rollouts = NULL;
  fleet.n_rollouts = 0;
}
