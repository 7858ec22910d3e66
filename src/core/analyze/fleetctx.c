/* The fleet's context (fleetview.h): the parts a host holding every VM writes, and a view of
 * another host's own VMs prepared from them, so that it ranks them as the whole view would
 * without reading every VM's document. */
#include "crypto.h"
#include "fleetview.h"
#include "fleetview_int.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The SHA-256 of B's bytes in hexadecimal (caller frees), or NULL with ERR. */
static char *sha256_hex(const struct vs_buf *b, struct vs_err *err) {
  unsigned char sum[VS_SHA256_LEN];
  if (vs_sha256(b->data ? b->data : "", b->len, sum, err) < 0) return NULL;
  char *hex = vs_xcalloc(2 * VS_SHA256_LEN + 1, 1);
  vs_hex(sum, VS_SHA256_LEN, hex);
  return hex;
}

char *vs_view_digest(const struct vs_feature *doc, struct vs_err *err) {
  struct vs_buf b = {0};
  const char **keys = vs_feature_keys(doc, NULL);
  for (size_t i = 0; keys[i]; i++) {
    const char *value = vs_feature_get(doc, keys[i]);
    vs_buf_adds(&b, "s");
    vs_buf_add(&b, keys[i], strlen(keys[i]) + 1);
    vs_buf_add(&b, value, strlen(value) + 1);
  }
  free(keys);
  /* Defaults have no sorted listing: sort them here, so that equal documents hash equal. */
  size_t n = vs_feature_default_count(doc), k = 0, pos = 0;
  const char **dkeys = vs_xcalloc(n + 1, sizeof(*dkeys));
  const char *key, *value;
  while (k < n && vs_feature_next_default(doc, &pos, &key, &value))
    dkeys[k++] = key;
  qsort(dkeys, k, sizeof(*dkeys), vs_cmp_strp);
  for (size_t i = 0; i < k; i++) {
    const char *dv = vs_feature_default(doc, dkeys[i]);
    vs_buf_adds(&b, "d");
    vs_buf_add(&b, dkeys[i], strlen(dkeys[i]) + 1);
    vs_buf_add(&b, dv, strlen(dv) + 1);
  }
  free(dkeys);
  char *hex = sha256_hex(&b, err);
  vs_buf_free(&b);
  return hex;
}

/* ---------------------------------------------------------------------------- writing */

/* The two lowest-numbered groups whose majority one value is. */
struct majority_of {
  long group[2];
};

/* The value the majority of POP (two VMs or more) holds for KEY, or NULL; as vs_pop_majority_is
 * decides it, a key the population lacks being VS_ABSENT on all of it. */
static const char *majority_value(const struct vs_pop *pop, const char *key) {
  if (vs_pop_docs(pop) < 2) return NULL;
  long i = vs_pop_key_index(pop, key);
  if (i < 0) return VS_ABSENT;
  struct vs_pop_stats st;
  vs_pop_key_stats(pop, (size_t)i, &st);
  return st.top_value[0] && 2 * st.top_count[0] > st.docs ? st.top_value[0] : NULL;
}

/* Every key's group majorities: KEY -> [[VALUE, GROUP, NAME, GROUP or null, NAME or null]...]. */
static json_t *majorities(const struct vs_view *v) {
  json_t *out = json_object();
  for (size_t i = 0; i < vs_pop_keys(v->fleet); i++) {
    const char *key = vs_pop_key_name(v->fleet, i);
    _cleanup_(vs_strmap_freep) struct vs_strmap *of = vs_strmap_new(free);
    for (size_t g = 0; g < v->n_groups; g++) {
      const char *value = majority_value(v->kind_pops[g], key);
      if (!value) continue;
      struct majority_of *m = vs_strmap_get(of, value);
      if (!m) {
        m = vs_xcalloc(1, sizeof(*m));
        *m = (struct majority_of){{(long)g, -1}};
        vs_strmap_put(of, value, m);
      } else if (m->group[1] < 0) {
        m->group[1] = (long)g;
      }
    }
    if (!vs_strmap_count(of)) continue;
    json_t *list = json_array();
    const char **values = vs_strmap_sorted_keys(of, NULL);
    bool whole = true;
    for (size_t k = 0; values[k] && whole; k++) {
      const struct majority_of *m = vs_strmap_get(of, values[k]);
      json_t *second = m->group[1] < 0 ? json_null() : json_integer(m->group[1]);
      whole = json_array_append_new(
                  list, json_pack("[s,I,s,o,s?]", values[k], (json_int_t)m->group[0],
                                  v->role_names[m->group[0]], second,
                                  m->group[1] < 0 ? NULL : v->role_names[m->group[1]])) == 0;
    }
    free(values);
    /* A value that cannot be written (not UTF-8) would go missing from a part that reads back
     * well formed: no part instead. */
    if (!whole) json_decref(list);
    if (!whole || json_object_set_new(out, key, list) < 0) {
      json_decref(out);
      return NULL;
    }
  }
  return out;
}

/* What the elected host's options make of the roles and of uniqueness, which a host ranking
 * from its context must share: {"format", "min_role_peers", "role_threshold", "common_share",
 * "neighbours", "seed", "labels": a digest of the labels, or null}, defaults written out. */
static json_t *options_of(const struct vs_view_opts *o) {
  const struct vs_analytics_opts *r = &o->roles;
  char *labels = NULL;
  if (o->labels && vs_strmap_count(o->labels)) {
    struct vs_buf b = {0};
    const char **names = vs_strmap_sorted_keys(o->labels, NULL);
    for (size_t i = 0; names[i]; i++)
      vs_buf_addf(&b, "%s\t%s\n", names[i], (const char *)vs_strmap_get(o->labels, names[i]));
    free(names);
    labels = sha256_hex(&b, NULL);
    if (!labels) labels = vs_xstrdup("?"); /* no digest: equal to no other host's */
    vs_buf_free(&b);
  }
  json_t *j = json_pack(
      "{s:i,s:I,s:f,s:f,s:i,s:I,s:s?}", "format", 1, "min_role_peers",
      (json_int_t)(o->min_role_peers ? o->min_role_peers : VS_VIEW_MIN_ROLE_PEERS),
      "role_threshold", r->threshold > 0 ? r->threshold : 0.6, "common_share",
      r->common_share > 0 ? r->common_share : 0.9, "neighbours",
      r->neighbours > 0 ? r->neighbours : 5, "seed", (json_int_t)r->seed, "labels", labels);
  free(labels);
  return j;
}

json_t *vs_view_context_fleet(const struct vs_view *v) {
  json_t *rolling = json_object();
  size_t pos = 0;
  const char *key;
  void *value;
  bool whole = true;
  while (whole && vs_strmap_next(v->rolling, &pos, &key, &value))
    whole = json_object_set_new(rolling, key, json_string(value)) == 0;
  if (!whole) {
    json_decref(rolling);
    return NULL;
  }
  /* A part that cannot be written whole is not written: json_pack fails on a NULL "o". */
  return json_pack("{s:I,s:I,s:o,s:o,s:o,s:o}", "vms", (json_int_t)v->n, "group_max",
                   (json_int_t)v->group_max, "rolling", rolling, "population",
                   vs_pop_summary(v->fleet), "majorities", majorities(v), "options",
                   options_of(&v->opts));
}

json_t *vs_view_context_group(const struct vs_view *v, size_t group) {
  const struct vs_pop *peers = v->role_pops[group];
  return json_pack("{s:s,s:o}", "name", v->role_names[group], "peers",
                   peers ? vs_pop_summary(peers) : json_null());
}

json_t *vs_view_context_vm(const struct vs_view *v, size_t i, const char *digest,
                           struct vs_err *err) {
  _cleanup_(vs_freep) char *made = digest ? NULL : vs_view_digest(v->vms[i].doc, err);
  if (!digest && !(digest = made)) return NULL;
  struct vs_view_role r;
  vs_view_role(v, i, &r);
  json_t *role =
      json_pack("{s:I,s:s,s:s?,s:I,s:f,s:f,s:s?,s:f}", "number", (json_int_t)r.number, "medoid",
                r.medoid_id, "medoid_name", r.medoid_name, "size", (json_int_t)r.size, "anomaly",
                r.anomaly, "similarity", r.similarity, "label", r.label, "label_p", r.label_p);
  json_t *part =
      json_pack("{s:I,s:b,s:s,s:s,s:o}", "group", (json_int_t)v->group[i], "unique", v->unique[i],
                "digest", digest, "taken_at", vs_feature_taken_at(v->vms[i].doc), "role", role);
  if (!part)
    vs_err_set(err, EINVAL, "VM %s (%s): its part of the fleet's context cannot be written",
               vs_feature_name(v->vms[i].doc), vs_feature_id(v->vms[i].doc));
  return part;
}

/* --------------------------------------------------------------------------- reading */

static bool is_count(const json_t *j) {
  return json_is_integer(j) && json_integer_value(j) >= 0 &&
         json_integer_value(j) <= (json_int_t)VS_POP_MAX_DOCS;
}

/* Whether every entry of the fleet part's majorities is [TEXT, GROUP, TEXT, GROUP or null, TEXT
 * or null], the second group present with its name only. */
static bool majorities_ok(const json_t *m) {
  const char *key;
  const json_t *list;
  if (!json_is_object(m)) return false;
  json_object_foreach((json_t *)m, key, list) {
    size_t i;
    const json_t *e;
    if (!json_is_array(list)) return false;
    json_array_foreach(list, i, e) {
      const json_t *g2 = json_array_get(e, 3), *n2 = json_array_get(e, 4);
      if (!json_is_array(e) || json_array_size(e) != 5 || !json_is_string(json_array_get(e, 0)) ||
          !is_count(json_array_get(e, 1)) || !json_is_string(json_array_get(e, 2)) ||
          !(json_is_null(g2) ? json_is_null(n2) : is_count(g2) && json_is_string(n2)))
        return false;
    }
  }
  return true;
}

const char *vs_view_context_role_of(const void *arg, const char *key, const char *value,
                                    size_t own_role) {
  const struct vs_view *v = arg;
  size_t i;
  const json_t *e;
  json_array_foreach(json_object_get(v->majorities, key), i, e) {
    if (strcmp(json_string_value(json_array_get(e, 0)), value) != 0) continue;
    if ((size_t)json_integer_value(json_array_get(e, 1)) != own_role)
      return json_string_value(json_array_get(e, 2));
    return json_string_value(json_array_get(e, 4)); /* NULL when there is no second */
  }
  return NULL;
}

/* Whether VM I's part in VMS counts a newer document of it than V's: another host's, to
 * which the VM migrated (that host ranks it). */
static bool moved_away(const struct vs_view *v, size_t i, const json_t *vms) {
  const json_t *part = json_object_get(vms, vs_feature_id(v->vms[i].doc));
  const char *counted = json_string_value(json_object_get(part, "taken_at"));
  const char *mine = vs_feature_taken_at(v->vms[i].doc);
  return counted && mine && strcmp(counted, mine) > 0;
}

/* VM I's part (in VMS), checked against its document now: its group number in *GROUP. */
static int vm_part(struct vs_view *v, size_t i, const json_t *vms, size_t *group,
                   struct vs_err *err) {
  const char *id = vs_feature_id(v->vms[i].doc), *name = vs_feature_name(v->vms[i].doc);
  const json_t *part = json_object_get(vms, id), *role = json_object_get(part, "role");
  if (!part)
    return vs_err_set(err, ESTALE, "VM %s (%s) is not in the fleet's context: new since", name, id);
  const json_t *g = json_object_get(part, "group"), *unique = json_object_get(part, "unique");
  const char *digest = json_string_value(json_object_get(part, "digest"));
  if (!json_is_string(json_object_get(part, "taken_at")))
    return vs_err_set(err, EINVAL, "the fleet's context of VM %s (%s) has no taken_at", name, id);
  const json_t *size = json_object_get(role, "size"), *label = json_object_get(role, "label");
  const json_t *medoid_name = json_object_get(role, "medoid_name");
  if (!is_count(g) || !json_is_boolean(unique) || !digest || !json_is_object(role) ||
      !is_count(json_object_get(role, "number")) ||
      !json_is_string(json_object_get(role, "medoid")) ||
      !(json_is_null(medoid_name) || json_is_string(medoid_name)) || !is_count(size) ||
      !json_is_number(json_object_get(role, "anomaly")) ||
      !json_is_number(json_object_get(role, "similarity")) ||
      !(json_is_null(label) || json_is_string(label)) ||
      !json_is_number(json_object_get(role, "label_p")))
    return vs_err_set(err, EINVAL,
                      "the fleet's context of VM %s (%s) is not {group, unique, digest, role}",
                      name, id);
  _cleanup_(vs_freep) char *now = vs_view_digest(v->vms[i].doc, err);
  if (!now) return -1;
  if (strcmp(now, digest) != 0)
    return vs_err_set(err, ESTALE, "VM %s (%s) changed since the fleet's context was made", name,
                      id);
  *group = (size_t)json_integer_value(g);
  v->unique[i] = json_is_true(unique);
  v->roles[i] =
      (struct vs_view_role){.number = (size_t)json_integer_value(json_object_get(role, "number")),
                            .medoid_id = json_string_value(json_object_get(role, "medoid")),
                            .medoid_name = json_string_value(medoid_name),
                            .size = (size_t)json_integer_value(size),
                            .anomaly = json_number_value(json_object_get(role, "anomaly")),
                            .similarity = json_number_value(json_object_get(role, "similarity")),
                            .label = json_string_value(label),
                            .label_p = json_number_value(json_object_get(role, "label_p"))};
  return 0;
}

bool vs_view_context_same_role(const struct vs_view *v, size_t i, const char *id) {
  const json_t *part = json_object_get(json_array_get(v->context, 2), id);
  const json_t *number = json_object_get(json_object_get(part, "role"), "number");
  return is_count(number) && (size_t)json_integer_value(number) == v->roles[i].number;
}

/* The local group of fleet group G (added when new). */
static size_t local_group(struct vs_view *v, size_t g) {
  for (size_t k = 0; k < v->n_groups; k++)
    if (v->group_ids[k] == g) return k;
  v->group_ids[v->n_groups] = g;
  return v->n_groups++;
}

/* The population of local group K's peers, from its part in GROUPS: its members are V's VMs of
 * the group that are not unique (those ranked against it). */
static int group_part(struct vs_view *v, size_t k, const json_t *groups, struct vs_err *err) {
  char number[32];
  snprintf(number, sizeof(number), "%zu", v->group_ids[k]);
  const json_t *part = json_object_get(groups, number), *peers = json_object_get(part, "peers");
  const char *name = json_string_value(json_object_get(part, "name"));
  if (!name || !(json_is_null(peers) || json_is_object(peers)))
    return vs_err_set(err, EINVAL, "the fleet's context of group %s is not {name, peers}", number);
  v->role_names[k] = name;
  const char **members = vs_xcalloc(v->n + 1, sizeof(*members));
  size_t n = 0;
  for (size_t i = 0; i < v->n; i++)
    if (v->group[i] == k && !v->unique[i]) members[n++] = vs_feature_id(v->vms[i].doc);
  if (n && json_is_null(peers)) {
    vs_err_set(err, EINVAL,
               "the fleet's context of group %s has no peers, but VM %s is ranked against them",
               number, members[0]);
    free(members);
    return -1;
  }
  _cleanup_(vs_freep) char *what = vs_xasprintf("the fleet's context of group %s", number);
  if (json_is_object(peers) &&
      !(v->role_pops[k] = vs_pop_from_summary(peers, members, n, what, err))) {
    free(members);
    return -1;
  }
  free(members);
  return 0;
}

/* The fleet part's population, rolling keys and sizes. */
static int fleet_part(struct vs_view *v, const json_t *fleet, const struct vs_view_opts *opts,
                      struct vs_err *err) {
  json_t *mine = options_of(opts);
  const json_t *theirs = json_object_get(fleet, "options");
  if (!mine || !json_equal(mine, theirs)) {
    _cleanup_(vs_freep) char *t = theirs ? json_dumps(theirs, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    _cleanup_(vs_freep) char *o = mine ? json_dumps(mine, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(mine);
    return vs_err_set(err, ESTALE,
                      "the fleet's context was made with role options %s, this host's are %s: "
                      "give every host the same LabelFile, MinRolePeers and RoleThreshold",
                      t ? t : "none", o ? o : "none");
  }
  json_decref(mine);
  const json_t *vms = json_object_get(fleet, "vms"),
               *group_max = json_object_get(fleet, "group_max");
  const json_t *rolling = json_object_get(fleet, "rolling");
  const json_t *m = json_object_get(fleet, "majorities");
  if (!is_count(vms) || !is_count(group_max) || !json_is_object(rolling) || !majorities_ok(m))
    return vs_err_set(err, EINVAL,
                      "the fleet's context is not {vms, group_max, rolling, population, "
                      "majorities}");
  const char **members = vs_xcalloc(v->n + 1, sizeof(*members));
  for (size_t i = 0; i < v->n; i++)
    members[i] = vs_feature_id(v->vms[i].doc);
  v->fleet = vs_pop_from_summary(json_object_get(fleet, "population"), members, v->n,
                                 "the fleet's context", err);
  free(members);
  if (!v->fleet) return -1;
  if (vs_view_fleet_vms(v) != (size_t)json_integer_value(vms))
    return vs_err_set(err, EINVAL, "the fleet's context counts %zu VMs, but says %lld",
                      vs_view_fleet_vms(v), (long long)json_integer_value(vms));
  v->rolling = vs_strmap_new(free);
  const char *key;
  const json_t *value;
  json_object_foreach((json_t *)rolling, key, value) {
    if (!json_is_string(value))
      return vs_err_set(err, EINVAL, "the fleet's context: rolling key %s has no value", key);
    vs_strmap_put(v->rolling, key, vs_xstrdup(json_string_value(value)));
  }
  v->group_max = (uint32_t)json_integer_value(group_max);
  v->majorities = json_incref((json_t *)m);
  return 0;
}

/* Undoes a failed prepare: V is as it was added. */
static void unprepare(struct vs_view *v) {
  for (size_t g = 0; g < v->n_groups; g++)
    vs_pop_free(v->role_pops[g]);
  free(v->role_pops);
  free(v->role_names);
  free(v->unique);
  free(v->group);
  free(v->group_ids);
  free(v->roles);
  vs_pop_free(v->fleet);
  vs_strmap_free(v->rolling);
  json_decref(v->majorities);
  json_decref(v->context);
  v->role_pops = NULL;
  v->role_names = NULL;
  v->unique = NULL;
  v->group = v->group_ids = NULL;
  v->n_groups = 0;
  v->roles = NULL;
  v->fleet = NULL;
  v->rolling = NULL;
  v->majorities = v->context = NULL;
}

int vs_view_prepare_context(struct vs_view *v, const json_t *fleet, const json_t *groups,
                            const json_t *vms, const struct vs_view_opts *opts,
                            struct vs_err *err) {
  if (v->prepared) return vs_err_set(err, EINVAL, "the view is prepared already");
  size_t cap = v->n ? v->n : 1;
  v->unique = vs_xcalloc(cap, sizeof(bool));
  v->group = vs_xcalloc(cap, sizeof(size_t));
  v->group_ids = vs_xcalloc(cap, sizeof(size_t));
  v->roles = vs_xcalloc(cap, sizeof(*v->roles));
  v->role_pops = vs_xcalloc(cap, sizeof(*v->role_pops));
  v->role_names = vs_xcalloc(cap, sizeof(*v->role_names));
  /* The parts stay with the view: names and roles point into them. */
  v->context = json_pack("[O,O,O]", fleet, groups, vms);
  int rc = json_is_object(groups) && json_is_object(vms)
               ? 0
               : vs_err_set(err, EINVAL, "the fleet's context has no groups or VMs");
  for (size_t i = v->n; rc == 0 && i-- > 0;) /* another host ranks them */
    if (moved_away(v, i, vms)) vs_view_remove(v, i);
  for (size_t i = 0; rc == 0 && i < v->n; i++) {
    size_t g = 0;
    rc = vm_part(v, i, vms, &g, err);
    if (rc == 0) v->group[i] = local_group(v, g);
  }
  for (size_t k = 0; rc == 0 && k < v->n_groups; k++)
    rc = group_part(v, k, groups, err);
  if (rc == 0) rc = fleet_part(v, fleet, opts ? opts : &(struct vs_view_opts){0}, err);
  if (rc < 0) {
    unprepare(v);
    return -1;
  }
  v->opts = opts ? *opts : (struct vs_view_opts){0};
  if (!v->opts.min_role_peers) v->opts.min_role_peers = VS_VIEW_MIN_ROLE_PEERS;
  v->from_context = v->prepared = true;
  return 0;
}
