/* What a fleet shows as a whole: groups, rollouts, VMs with no close peers (fleetfind.h). */
#include "fleetfind.h"

#include "strmap.h"
#include "util.h"
#include "version.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void group_clear(struct vs_group *g) {
  free(g->key);
  free(g->value);
  free(g->rest);
  vs_strv_free(g->members, g->n_members);
}

void vs_fleet_findings_free(struct vs_fleet_findings *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n_groups; i++)
    group_clear(&f->groups[i]);
  free(f->groups);
  for (size_t i = 0; i < f->n_rollouts; i++) {
    free(f->rollouts[i].key);
    free(f->rollouts[i].value);
    free(f->rollouts[i].from);
  }
  free(f->rollouts);
  vs_strv_free(f->unique, f->n_unique);
  free(f);
}

void vs_fleet_findings_freep(struct vs_fleet_findings **f) {
  vs_fleet_findings_free(*f);
}

static const char *vm_name(const struct vs_feature *doc) {
  return vs_feature_name(doc) ? vs_feature_name(doc) : vs_feature_id(doc);
}

/* Whether VALUE is the majority of KEY in a role of two VMs or more: a role's own value. */
static bool role_value(const struct vs_view *v, const char *key, const char *value) {
  for (size_t r = 0; r < vs_view_group_count(v); r++)
    if (vs_view_group_pop(v, r) && vs_pop_majority_is(vs_view_group_pop(v, r), key, value))
      return true;
  return false;
}

static bool is_digest(const char *key) {
  return strncmp(key, "meta:", 5) == 0 && vs_has_suffix(key, ":sha256");
}

/* How much a key says about what a group changed: a setting (0), a file's metadata (1), a
 * file's digest (2), which only says that the file differs. */
static int telling(const char *key) {
  return strncmp(key, "meta:", 5) != 0 ? 0 : is_digest(key) ? 2 : 1;
}

/* A key that says more than THAN about what a group changed; then the first by name. */
static bool more_telling(const char *key, const char *than) {
  return telling(key) != telling(than) ? telling(key) < telling(than) : strcmp(key, than) < 0;
}

/* A value of a key that 2 to group_max VMs share and most of the fleet does not: a small
 * group's, unless its members turn out to be fewer than two (unique VMs do not count). */
struct candidate {
  size_t key;               /* its index in the fleet's population */
  const char *name, *value; /* the population's strings */
  const char *rest;         /* the value most of the fleet has */
  uint32_t rest_count;
  size_t *vms, n_vms, cap; /* the members: view indices, ascending; at most CAP (the count) */
};

struct finder {
  const struct vs_view *v;
  struct vs_fleet_findings *out;
  struct vs_strmap *by_members; /* the members' view indices, joined -> group index + 1 */
  size_t cap_groups;
  size_t key; /* the key being looked at */
  const char *name;
  struct vs_pop_stats st;
  struct candidate *cands; /* in the order the keys and their values are looked at */
  size_t n_cands, cap_cands;
};

/* One small group's value C: a new group, or one more key of a group of the same VMs. */
static void add_group_key(struct finder *f, const struct candidate *c) {
  if (c->n_vms < 2) return;
  /* The members by their view indices (one VM each in one view), in decimal: not their ids
   * through a printf, which was most of vs_fleet_find (a value 3% of 30,000 VMs share has 900
   * members, and thousands of values are looked at). */
  struct vs_buf ids = {0};
  for (size_t k = 0; k < c->n_vms; k++) {
    char digits[24];
    size_t n = sizeof(digits), vm = c->vms[k];
    digits[--n] = ',';
    do
      digits[--n] = (char)('0' + vm % 10);
    while (vm /= 10);
    vs_buf_add(&ids, digits + n, sizeof(digits) - n);
  }
  vs_buf_add(&ids, "", 0);
  _cleanup_(vs_freep) char *sig = vs_buf_steal(&ids);
  size_t at = (uintptr_t)vs_strmap_get(f->by_members, sig);
  struct vs_group *g;
  if (at) {
    g = &f->out->groups[at - 1];
    g->keys++;
    if (!more_telling(c->name, g->key)) return;
    group_clear(g);
    *g = (struct vs_group){.keys = g->keys};
  } else {
    if (f->out->n_groups == f->cap_groups) {
      f->cap_groups = f->cap_groups ? 2 * f->cap_groups : 8;
      f->out->groups = vs_xrealloc(f->out->groups, f->cap_groups * sizeof(*f->out->groups));
    }
    g = &f->out->groups[f->out->n_groups++];
    *g = (struct vs_group){.keys = 1};
    vs_strmap_put(f->by_members, sig, (void *)(uintptr_t)f->out->n_groups);
  }
  g->key = vs_xstrdup(c->name);
  g->value = vs_xstrdup(c->value);
  g->rest = vs_xstrdup(c->rest);
  g->rest_count = c->rest_count;
  for (size_t k = 0; k < c->n_vms; k++)
    vs_strv_add(&g->members, &g->n_members, vm_name(vs_view_doc(f->v, c->vms[k])));
  qsort(g->members, g->n_members, sizeof(char *), vs_cmp_strp);
}

static bool is_version(const char *key, const char *value) {
  return strncmp(key, "pkg:", 4) == 0 && strcmp(value, VS_ABSENT) != 0;
}

static void consider_value(const char *value, uint32_t count, void *arg) {
  struct finder *f = arg;
  if (count < 2 || count > vs_view_group_max(f->v) || strcmp(value, f->st.top_value[0]) == 0)
    return;
  if (is_version(f->name, value) && is_version(f->name, f->st.top_value[0])) return; /* rollout */
  if (role_value(f->v, f->name, value)) return;
  if (f->n_cands == f->cap_cands) {
    f->cap_cands = f->cap_cands ? 2 * f->cap_cands : 64;
    f->cands = vs_xrealloc(f->cands, f->cap_cands * sizeof(*f->cands));
  }
  f->cands[f->n_cands++] = (struct candidate){.key = f->key,
                                              .name = f->name,
                                              .value = value,
                                              .rest = f->st.top_value[0],
                                              .rest_count = f->st.top_count[0],
                                              .vms = vs_xcalloc(count, sizeof(size_t)),
                                              .cap = count};
}

static void add_member(struct candidate *c, size_t vm) {
  if (c->n_vms < c->cap) c->vms[c->n_vms++] = vm;
}

/* The candidates' members found in a contiguous run of VMs: (candidate, VM) in VM order. */
struct hits {
  struct hit {
    size_t cand, vm;
  } * v;
  size_t n, cap;
};

struct members_job {
  const struct finder *f;
  const struct vs_vm_tokens *tokens; /* the view's */
  /* The candidates found by their token (vs_token of their key and value), candidate + 1 in
   * CAND, linear probing from the token's low bits (a hash already); MASK 0: none. */
  uint64_t *token;
  uint32_t *cand;
  size_t mask;
  /* The others (a key moving through the fleet has a token of its presence alone), looked
   * up by key: name -> value -> candidate + 1. */
  const struct vs_strmap *by_key;
  const char **keys;
  struct vs_strmap **values; /* each key's map */
  size_t n_keys;
  const size_t *absent; /* the candidates whose value is <absent> */
  size_t n_absent;
  struct hits part[VS_PARALLEL_MAX];
};

static void add_hit(struct hits *h, size_t cand, size_t vm) {
  if (h->n == h->cap) {
    h->cap = h->cap ? 2 * h->cap : 64;
    h->v = vs_xrealloc(h->v, h->cap * sizeof(*h->v));
  }
  h->v[h->n++] = (struct hit){cand, vm};
}

static size_t token_slot(const struct members_job *job, uint64_t t) {
  size_t s = (size_t)t & job->mask;
  while (job->cand[s] && job->token[s] != t)
    s = (s + 1) & job->mask;
  return s;
}

/* VM's hit when VALUE is a candidate's (VALUES: its key's candidates, or NULL). */
static void hit_if_candidate(struct hits *h, size_t vm, const struct vs_strmap *values,
                             const char *value) {
  size_t c = values ? (uintptr_t)vs_strmap_get(values, value) : 0;
  if (c) add_hit(h, c - 1, vm);
}

/* A VM's hits come in any order: each is another candidate's (a VM holds one value of a key),
 * and they are added to each in VM order. Its tokens, made already for the role analysis, are
 * looked up among the candidates' (a token equal to one is checked against the VM's value, and
 * a candidate is found once a VM: the answer does not rest on a hash); the other candidates'
 * keys are looked up in the VM's settings when they are fewer than those, else its settings
 * are walked. */
static void members_chunk(void *arg, size_t chunk, size_t from, size_t to) {
  struct members_job *job = arg;
  const struct vs_pop *fleet = vs_view_fleet(job->f->v);
  struct hits *h = &job->part[chunk];
  /* The VM (+ 1) a candidate was last found on: another setting whose token is equal (made to
   * be: the token's hash is keyed by public constants) finds it again on the same VM. */
  _cleanup_(vs_freep) size_t *found_on = vs_xcalloc(job->f->n_cands, sizeof(size_t));
  for (size_t j = from; j < to; j++) {
    if (vs_view_unique(job->f->v, j)) continue; /* its own kind's value, not a tweak */
    const struct vs_feature *doc = vs_view_doc(job->f->v, j);
    for (size_t k = 0; job->mask && k < job->tokens[j].n; k++) {
      uint32_t c = job->cand[token_slot(job, job->tokens[j].tokens[k])];
      if (!c || found_on[c - 1] == j + 1) continue;
      const struct candidate *cand = &job->f->cands[c - 1];
      const char *value = vs_feature_get(doc, cand->name);
      if (!value || strcmp(value, cand->value) != 0) continue;
      found_on[c - 1] = j + 1;
      add_hit(h, c - 1, j);
    }
    if (job->n_keys < vs_feature_count(doc)) {
      for (size_t k = 0; k < job->n_keys; k++) {
        const char *value = vs_feature_get(doc, job->keys[k]);
        if (value) hit_if_candidate(h, j, job->values[k], value);
      }
    } else {
      size_t pos = 0;
      const char *key, *value;
      while (vs_feature_next(doc, &pos, &key, &value))
        hit_if_candidate(h, j, vs_strmap_get(job->by_key, key), value);
    }
    for (size_t a = 0; a < job->n_absent; a++) {
      const struct candidate *c = &job->f->cands[job->absent[a]];
      if (strcmp(vs_pop_fold(fleet, c->key, vs_feature_get(doc, c->name)), VS_ABSENT) == 0)
        add_hit(h, job->absent[a], j);
    }
  }
}

/* Each candidate's members, in one pass over the VMs (not one pass over every VM per
 * candidate: that grew with the fleet times its candidates), on every CPU: each run of VMs is
 * looked at apart and its members added in VM order. A value that is not <absent> is held by
 * exactly the VMs that set the key to it (it is not the key's default, which folds to
 * <absent>); <absent> is looked for as the statistics fold it. */
static void find_members(struct finder *f) {
  if (!f->n_cands) return;
  const struct vs_vm_tokens *tokens = vs_view_tokens(f->v);
  const struct vs_strmap *moving = vs_view_moving(f->v);
  _cleanup_(vs_strmap_freep) struct vs_strmap *by_key =
      vs_strmap_new((vs_strmap_free_fn)vs_strmap_free);
  _cleanup_(vs_freep) size_t *absent = vs_xcalloc(f->n_cands, sizeof(size_t));
  _cleanup_(vs_freep) const char **keys = vs_xcalloc(f->n_cands, sizeof(char *));
  _cleanup_(vs_freep) struct vs_strmap **values_of = vs_xcalloc(f->n_cands, sizeof(*values_of));
  struct members_job job = {.f = f,
                            .tokens = tokens,
                            .by_key = by_key,
                            .keys = keys,
                            .values = values_of,
                            .absent = absent};
  size_t cap = vs_table_cap(f->n_cands);
  _cleanup_(vs_freep) uint64_t *token = vs_xcalloc(cap, sizeof(uint64_t));
  _cleanup_(vs_freep) uint32_t *cand = vs_xcalloc(cap, sizeof(uint32_t));
  job.token = token, job.cand = cand, job.mask = cap - 1;
  bool any_token = false;
  for (size_t c = 0; c < f->n_cands; c++) {
    const struct candidate *cd = &f->cands[c];
    if (strcmp(cd->value, VS_ABSENT) == 0) {
      absent[job.n_absent++] = c;
      continue;
    }
    if (tokens && moving && !vs_strmap_has(moving, cd->name)) {
      uint64_t t = vs_token(cd->name, cd->value);
      size_t s = token_slot(&job, t);
      if (!cand[s]) { /* else two candidates' tokens are equal: the second is looked up */
        token[s] = t;
        cand[s] = (uint32_t)c + 1;
        any_token = true;
        continue;
      }
    }
    struct vs_strmap *values = vs_strmap_get(by_key, cd->name);
    if (!values) {
      vs_strmap_put(by_key, cd->name, values = vs_strmap_new(NULL));
      values_of[job.n_keys] = values;
      keys[job.n_keys++] = cd->name;
    }
    vs_strmap_put(values, cd->value, (void *)(uintptr_t)(c + 1));
  }
  if (!any_token) job.mask = 0;
  size_t chunks = vs_parallel_chunks(vs_view_count(f->v), 256, members_chunk, &job);
  for (size_t c = 0; c < chunks; c++) {
    for (size_t k = 0; k < job.part[c].n; k++)
      add_member(&f->cands[job.part[c].v[k].cand], job.part[c].v[k].vm);
    free(job.part[c].v);
  }
}

static void find_groups(struct finder *f) {
  const struct vs_pop *fleet = vs_view_fleet(f->v);
  for (size_t i = 0; i < vs_pop_keys(fleet); i++) {
    f->key = i;
    f->name = vs_pop_key_name(fleet, i);
    vs_pop_key_stats(fleet, i, &f->st);
    if (vs_strmap_has(vs_view_rolling(f->v), f->name)) continue;
    if (!f->st.top_value[0] || 2 * f->st.top_count[0] <= f->st.docs) continue; /* no "rest" */
    vs_pop_values(fleet, i, consider_value, f);
  }
  find_members(f);
  for (size_t c = 0; c < f->n_cands; c++) {
    add_group_key(f, &f->cands[c]);
    free(f->cands[c].vms);
  }
  free(f->cands);
}

/* ------------------------------------------------------------------------------ rollouts */

struct versions {
  const char *format;
  const char *newest, *from;
  uint32_t newest_count, from_count, present;
};

/* Whether VALUE held by COUNT VMs is a better "from" than the one so far: more VMs, or as many
 * and first by name (not the order values happen to come in, which differs between hosts). */
static bool better_from(const struct versions *vs, const char *value, uint32_t count) {
  return !vs->from || count > vs->from_count ||
         (count == vs->from_count && strcmp(value, vs->from) < 0);
}

static void consider_version(const char *value, uint32_t count, void *arg) {
  struct versions *vs = arg;
  if (strcmp(value, VS_ABSENT) == 0) return;
  vs->present += count;
  if (!vs->newest || vs_version_compare(vs->format, value, vs->newest) > 0) {
    if (vs->newest && better_from(vs, vs->newest, vs->newest_count)) {
      vs->from = vs->newest;
      vs->from_count = vs->newest_count;
    }
    vs->newest = value;
    vs->newest_count = count;
  } else if (better_from(vs, value, count)) {
    vs->from = value;
    vs->from_count = count;
  }
}

static void add_rollout(struct vs_fleet_findings *out, size_t *cap, struct vs_rollout r) {
  if (out->n_rollouts == *cap) {
    *cap = *cap ? 2 * *cap : 8;
    out->rollouts = vs_xrealloc(out->rollouts, *cap * sizeof(*out->rollouts));
  }
  out->rollouts[out->n_rollouts++] = r;
}

static void find_rollouts(const struct vs_view *v, struct vs_fleet_findings *out) {
  const struct vs_pop *fleet = vs_view_fleet(v);
  const char *format = vs_view_count(v) ? vs_feature_os(vs_view_doc(v, 0), "package_format") : NULL;
  size_t cap = 0;
  _cleanup_(vs_strmap_freep) struct vs_strmap *seen = vs_strmap_new(NULL);
  for (size_t i = 0; i < vs_pop_keys(fleet); i++) {
    const char *name = vs_pop_key_name(fleet, i);
    if (strncmp(name, "pkg:", 4) != 0) continue;
    struct versions vs = {.format = format};
    vs_pop_values(fleet, i, consider_version, &vs);
    if (!vs.from || vs.present - vs.newest_count < 2) continue;
    add_rollout(out, &cap,
                (struct vs_rollout){vs_xstrdup(name), vs_xstrdup(vs.newest), vs_xstrdup(vs.from),
                                    vs.newest_count, vs.present, true});
    vs_strmap_put(seen, name, NULL);
  }
  size_t pos = 0;
  const char *key;
  void *value;
  while (vs_strmap_next(vs_view_rolling(v), &pos, &key, &value)) {
    long i = vs_pop_key_index(fleet, key);
    if (i < 0 || vs_strmap_has(seen, key)) continue;
    struct vs_pop_stats st;
    vs_pop_key_stats(fleet, (size_t)i, &st);
    const char *from =
        st.top_value[0] && strcmp(st.top_value[0], value) != 0 ? st.top_value[0] : st.top_value[1];
    uint32_t have = vs_pop_count(fleet, (size_t)i, value);
    add_rollout(out, &cap,
                (struct vs_rollout){vs_xstrdup(key), vs_xstrdup(value),
                                    vs_xstrdup(from ? from : VS_ABSENT), have,
                                    (uint32_t)vs_view_count(v), false});
  }
}

/* -------------------------------------------------------------------------------- whole */

/* By key, then value and members: an order that does not depend on the order found in. */
static int cmp_group(const void *a, const void *b) {
  const struct vs_group *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (!c) c = strcmp(x->value, y->value);
  for (size_t i = 0; !c && i < x->n_members && i < y->n_members; i++)
    c = strcmp(x->members[i], y->members[i]);
  return c ? c : (x->n_members > y->n_members) - (x->n_members < y->n_members);
}

static int cmp_rollout(const void *a, const void *b) {
  return strcmp(((const struct vs_rollout *)a)->key, ((const struct vs_rollout *)b)->key);
}

struct vs_fleet_findings *vs_fleet_find(const struct vs_view *v) {
  struct vs_fleet_findings *out = vs_xcalloc(1, sizeof(*out));
  out->vms = (uint32_t)vs_view_count(v);
  struct finder f = {.v = v, .out = out, .by_members = vs_strmap_new(NULL)};
  find_groups(&f);
  vs_strmap_free(f.by_members);
  /* A group whose every key is a digest only differs in a file's bytes: VMs whose tweaks of
   * one file combine differently (the file's settings are groups of their own). */
  size_t kept = 0;
  for (size_t i = 0; i < out->n_groups; i++) {
    if (is_digest(out->groups[i].key))
      group_clear(&out->groups[i]);
    else
      out->groups[kept++] = out->groups[i];
  }
  out->n_groups = kept;
  if (out->n_groups) qsort(out->groups, out->n_groups, sizeof(*out->groups), cmp_group);
  find_rollouts(v, out);
  if (out->n_rollouts) qsort(out->rollouts, out->n_rollouts, sizeof(*out->rollouts), cmp_rollout);
  for (size_t i = 0; i < vs_view_count(v); i++)
    if (vs_view_unique(v, i)) vs_strv_add(&out->unique, &out->n_unique, vm_name(vs_view_doc(v, i)));
  if (out->n_unique) qsort(out->unique, out->n_unique, sizeof(char *), vs_cmp_strp);
  return out;
}

char *vs_group_describe(const struct vs_group *g, uint32_t vms) {
  struct vs_buf b = {0};
  vs_buf_addf(&b, "%s is %s on %zu of %u VMs:", g->key, g->value, g->n_members, vms);
  for (size_t i = 0; i < g->n_members; i++)
    vs_buf_addf(&b, "%s %s", i ? "," : "", g->members[i]);
  vs_buf_addf(&b, "; %u of the rest have %s", g->rest_count, g->rest);
  if (g->keys > 1) vs_buf_addf(&b, " (%zu keys set these VMs apart)", g->keys);
  vs_buf_add(&b, "", 0);
  return vs_buf_steal(&b);
}

static json_t *strv_json(char *const *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

json_t *vs_fleet_findings_json(const struct vs_fleet_findings *f) {
  json_t *groups = json_array(), *rollouts = json_array();
  for (size_t i = 0; i < f->n_groups; i++) {
    const struct vs_group *g = &f->groups[i];
    _cleanup_(vs_freep) char *msg = vs_group_describe(g, f->vms);
    json_array_append_new(groups,
                          json_pack("{s:s, s:s, s:I, s:o, s:{s:s, s:I}, s:s}", "key", g->key,
                                    "value", g->value, "keys", (json_int_t)g->keys, "members",
                                    strv_json(g->members, g->n_members), "rest", "value", g->rest,
                                    "count", (json_int_t)g->rest_count, "message", msg));
  }
  for (size_t i = 0; i < f->n_rollouts; i++) {
    const struct vs_rollout *r = &f->rollouts[i];
    json_array_append_new(rollouts, json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:s}", "key", r->key,
                                              "value", r->value, "from", r->from, "have",
                                              (json_int_t)r->have, "of", (json_int_t)r->of, "share",
                                              r->of ? (double)r->have / r->of : 0.0, "by",
                                              r->by_version ? "version" : "snapshots"));
  }
  return json_pack("{s:I, s:o, s:o, s:o}", "vms", (json_int_t)f->vms, "groups", groups, "rollouts",
                   rollouts, "unique", strv_json(f->unique, f->n_unique));
}

/* A JSON array of strings as a string vector, or -1 (ERR names WHAT). */
static int strv_from_json(const json_t *a, const char *what, char ***out, size_t *n,
                          struct vs_err *err) {
  *out = NULL;
  *n = 0;
  if (!json_is_array(a)) return vs_err_set(err, EINVAL, "%s is not an array", what);
  size_t len = json_array_size(a);
  char **v = vs_xcalloc(len ? len : 1, sizeof(*v));
  for (size_t i = 0; i < len; i++) {
    const char *s = json_string_value(json_array_get(a, i));
    if (!s) {
      vs_strv_free(v, i);
      return vs_err_set(err, EINVAL, "%s[%zu] is not a string", what, i);
    }
    v[i] = vs_xstrdup(s);
  }
  *out = v;
  *n = len;
  return 0;
}

static bool count_ok(json_int_t v) {
  return v >= 0 && v <= UINT32_MAX;
}

struct vs_fleet_findings *vs_fleet_findings_from_json(const json_t *j, struct vs_err *err) {
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *f = vs_xcalloc(1, sizeof(*f));
  json_int_t vms;
  json_t *groups, *rollouts, *unique;
  json_error_t je = {0};
  if (json_unpack_ex((json_t *)j, &je, JSON_STRICT, "{s:I, s:o, s:o, s:o}", "vms", &vms, "groups",
                     &groups, "rollouts", &rollouts, "unique", &unique) < 0) {
    vs_err_set(err, EINVAL, "fleet findings: %s", je.text);
    return NULL;
  }
  if (!count_ok(vms) || !json_is_array(groups) || !json_is_array(rollouts)) {
    vs_err_set(err, EINVAL, "fleet findings: vms out of range, or groups or rollouts not arrays");
    return NULL;
  }
  f->vms = (uint32_t)vms;
  f->groups = vs_xcalloc(json_array_size(groups) + 1, sizeof(*f->groups));
  for (size_t i = 0; i < json_array_size(groups); i++) {
    struct vs_group *g = &f->groups[f->n_groups];
    const char *key, *value, *rest, *msg;
    json_int_t keys, rest_count;
    json_t *members;
    if (json_unpack_ex(json_array_get(groups, i), &je, JSON_STRICT,
                       "{s:s, s:s, s:I, s:o, s:{s:s, s:I}, s:s}", "key", &key, "value", &value,
                       "keys", &keys, "members", &members, "rest", "value", &rest, "count",
                       &rest_count, "message", &msg) < 0 ||
        !count_ok(keys) || !count_ok(rest_count)) {
      vs_err_set(err, EINVAL, "fleet findings: group %zu: %s", i,
                 *je.text ? je.text : "a count out of range");
      return NULL;
    }
    _cleanup_(vs_freep) char *what = vs_xasprintf("fleet findings: group %zu's members", i);
    char **names;
    size_t n_names;
    if (strv_from_json(members, what, &names, &n_names, err) < 0) return NULL;
    *g = (struct vs_group){.key = vs_xstrdup(key),
                           .value = vs_xstrdup(value),
                           .rest = vs_xstrdup(rest),
                           .rest_count = (uint32_t)rest_count,
                           .keys = (size_t)keys,
                           .members = names,
                           .n_members = n_names};
    f->n_groups++;
  }
  f->rollouts = vs_xcalloc(json_array_size(rollouts) + 1, sizeof(*f->rollouts));
  for (size_t i = 0; i < json_array_size(rollouts); i++) {
    const char *key, *value, *from, *by;
    json_int_t have, of;
    double share;
    if (json_unpack_ex(json_array_get(rollouts, i), &je, JSON_STRICT,
                       "{s:s, s:s, s:s, s:I, s:I, s:F, s:s}", "key", &key, "value", &value, "from",
                       &from, "have", &have, "of", &of, "share", &share, "by", &by) < 0 ||
        !count_ok(have) || !count_ok(of) || have > of ||
        (strcmp(by, "version") != 0 && strcmp(by, "snapshots") != 0)) {
      vs_err_set(err, EINVAL, "fleet findings: rollout %zu: %s", i,
                 *je.text ? je.text
                          : "have > of, a count out of range, or by not version|snapshots");
      return NULL;
    }
    f->rollouts[f->n_rollouts++] = (struct vs_rollout){.key = vs_xstrdup(key),
                                                       .value = vs_xstrdup(value),
                                                       .from = vs_xstrdup(from),
                                                       .have = (uint32_t)have,
                                                       .of = (uint32_t)of,
                                                       .by_version = strcmp(by, "version") == 0};
  }
  if (strv_from_json(unique, "fleet findings: unique", &f->unique, &f->n_unique, err) < 0)
    return NULL;
  return vs_steal(&f);
}
