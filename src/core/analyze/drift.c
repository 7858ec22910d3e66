#include "drift.h"

#include "strmap.h"
#include "version.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *vs_severity_name(enum vs_severity s) {
  switch (s) {
  case VS_SEVERITY_FAILURE:
    return "failure";
  case VS_SEVERITY_WARNING:
    return "warning";
  case VS_SEVERITY_INFO:
    break;
  }
  return "info";
}

const char *vs_finding_kind_name(enum vs_finding_kind k) {
  static const char *const names[] = {"alone", "shared", "group", "rollout", "source", "edit"};
  return k <= VS_FINDING_EDIT ? names[k] : "?";
}

double vs_drift_k(uint32_t n, uint32_t c, uint32_t m) {
  return (double)c * ((double)m + 1.0) / ((double)n + (double)c);
}

double vs_drift_score(uint32_t n, uint32_t c, uint32_t m) {
  double s = 1.0 - vs_drift_k(n, c, m);
  return s < 0 ? 0 : s > 1 ? 1 : s;
}

double vs_drift_p(uint32_t n, uint32_t c, uint32_t m, uint32_t t) {
  double nc = (double)n + (double)c;
  return nc / (nc + (double)c * (double)t * ((double)m + 1.0));
}

/* -------------------------------------------------------------------------------- waivers */

struct waiver {
  char *key_glob, *vm_glob, *expires, *reason;
  time_t ends; /* first second it no longer holds; 0: never */
};

struct vs_waivers {
  struct waiver *items;
  size_t n;
};

void vs_waivers_free(struct vs_waivers *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) {
    free(w->items[i].key_glob);
    free(w->items[i].vm_glob);
    free(w->items[i].expires);
    free(w->items[i].reason);
  }
  free(w->items);
  free(w);
}

void vs_waivers_freep(struct vs_waivers **w) {
  vs_waivers_free(*w);
}

size_t vs_waivers_count(const struct vs_waivers *w) {
  return w ? w->n : 0;
}

/* "YYYY-MM-DD" -> the first second after that day (UTC), or -1. */
static time_t day_end(const char *s) {
  int y, mo, d;
  char tail;
  if (sscanf(s, "%4d-%2d-%2d%c", &y, &mo, &d, &tail) != 3 || strlen(s) != 10) return -1;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d};
  time_t t = timegm(&tm);
  struct tm check;
  if (t == (time_t)-1 || !gmtime_r(&t, &check) || check.tm_mday != d || check.tm_mon != mo - 1)
    return -1; /* 2026-02-30 */
  return t + 86400;
}

/* One waiver line: "KEY-GLOB VM-GLOB EXPIRES REASON..." into W; errors name WHAT:LINENO. */
static int add_waiver(struct vs_waivers *w, size_t *cap, char *p, const char *what, size_t lineno,
                      struct vs_err *err) {
  char *key = vs_next_word(&p), *vm = vs_next_word(&p), *expires = vm ? vs_next_word(&p) : NULL;
  char *reason = expires ? vs_trim(p) : NULL;
  if (!reason || !*reason)
    return vs_err_set(err, EINVAL,
                      "%s:%zu: expected \"KEY-GLOB VM-GLOB EXPIRES REASON\" (EXPIRES is YYYY-MM-DD "
                      "or -, and a reason is required)",
                      what, lineno);
  time_t ends = 0;
  if (strcmp(expires, "-") != 0 && (ends = day_end(expires)) < 0)
    return vs_err_set(err, EINVAL,
                      "%s:%zu: expiry \"%s\" is not a date YYYY-MM-DD (or - for never)", what,
                      lineno, expires);
  if (w->n == *cap) {
    *cap = *cap ? 2 * *cap : 8;
    w->items = vs_xrealloc(w->items, *cap * sizeof(*w->items));
  }
  w->items[w->n++] = (struct waiver){vs_xstrdup(key), vs_xstrdup(vm),
                                     ends ? vs_xstrdup(expires) : NULL, vs_xstrdup(reason), ends};
  return 0;
}

static struct vs_waivers *read_waivers(struct vs_lines *r, struct vs_err *err) {
  _cleanup_(vs_waivers_freep) struct vs_waivers *w = vs_xcalloc(1, sizeof(*w));
  size_t cap = 0;
  char *line;
  int got;
  while ((got = vs_lines_next(r, &line, err)) > 0) {
    if (add_waiver(w, &cap, line, r->what, r->lineno, err) < 0) return NULL;
    if (r->bytes >= (16u << 20)) {
      vs_err_set(err, EFBIG, "%s: over 16 MiB; not a waiver file", r->what);
      return NULL;
    }
  }
  return got < 0 ? NULL : vs_steal(&w);
}

struct vs_waivers *vs_waivers_parse(const char *text, const char *what, struct vs_err *err) {
  _cleanup_(vs_lines_close) struct vs_lines lines = {0};
  if (vs_lines_open_text(&lines, text, what, err) < 0) return NULL;
  return read_waivers(&lines, err);
}

struct vs_waivers *vs_waivers_load(const char *path, struct vs_err *err) {
  _cleanup_(vs_lines_close) struct vs_lines lines = {0};
  if (vs_lines_open(&lines, path, "the waiver file", err) < 0) return NULL;
  return read_waivers(&lines, err);
}

void vs_waivers_match(const struct vs_waivers *w, const char *key, const char *name, const char *id,
                      time_t now, struct vs_waiver_match *out) {
  *out = (struct vs_waiver_match){0};
  for (size_t i = 0; w && i < w->n; i++) {
    const struct waiver *v = &w->items[i];
    if (fnmatch(v->key_glob, key, 0) != 0) continue;
    if (fnmatch(v->vm_glob, name, 0) != 0 && fnmatch(v->vm_glob, id, 0) != 0) continue;
    bool expired = v->ends && now >= v->ends;
    if (!out->reason || (out->expired && !expired))
      *out = (struct vs_waiver_match){v->reason, v->expires, expired};
    if (!expired) return;
  }
}

/* -------------------------------------------------------------------------------- ranking */

/* The unit a key belongs to, for collapsing: one file (its file: and meta: keys), one user,
 * one group. Returns the length of the unit's key prefix ("file:/etc/x:", "user:toor:"), or 0
 * for keys that stand alone; *NS_LEN gets the length of the namespace ("file:"). */
static size_t unit_prefix(const char *key) {
  static const char *const ns[] = {"file:", "meta:", "user:", "group:"};
  for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
    size_t len = strlen(ns[i]);
    if (strncmp(key, ns[i], len) != 0) continue;
    const char *colon = strchr(key + len, ':');
    return colon ? (size_t)(colon - key) + 1 : 0;
  }
  return 0;
}

/* The unit's name: file: and meta: keys of one path are one unit, named "file:PATH:". */
static char *unit_name(const char *key) {
  size_t len = unit_prefix(key);
  if (!len) return NULL;
  if (strncmp(key, "meta:", 5) == 0) return vs_xasprintf("file:%.*s", (int)(len - 5), key + 5);
  return vs_xstrndup(key, len);
}

struct candidate {
  struct vs_finding f;
  char *unit;
  bool target_only; /* the target has it and no sample does */
  bool source;      /* its namespace is the target's alone, or the samples' alone */
};

static void finding_clear(struct vs_finding *f) {
  free(f->key);
  free(f->value);
  free(f->majority);
  free(f->about_key);
  free(f->role_of_value);
}

void vs_drift_free(struct vs_drift *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n_findings; i++)
    finding_clear(&d->findings[i]);
  free(d->findings);
  free(d->target_id);
  free(d->target_name);
  free(d);
}

void vs_drift_freep(struct vs_drift **d) {
  vs_drift_free(*d);
}

struct ranking {
  const struct vs_pop *pop;
  const struct vs_feature *target;
  bool member;
  uint32_t n;
  struct candidate *cands;
  size_t n_cands, cap_cands;
  struct vs_strmap *sample_ns, *target_ns; /* namespaces ("vm:") some sample / the target has */
};

/* The namespace of KEY: "vm:" of "vm:cpu:count"; a key with no colon is its own. */
static char *namespace_of(const char *key) {
  const char *colon = strchr(key, ':');
  return colon ? vs_xstrndup(key, (size_t)(colon - key) + 1) : vs_xstrdup(key);
}

/* Whether KEY's namespace is another kind of source: the target's and no sample's, or some
 * samples' and not the target's at all. */
static bool foreign_namespace(const struct ranking *r, const char *key) {
  _cleanup_(vs_freep) char *ns = namespace_of(key);
  return vs_strmap_has(r->target_ns, ns) != vs_strmap_has(r->sample_ns, ns);
}

/* The namespaces the target has, and those some sample has. */
static void find_namespaces(struct ranking *r) {
  r->target_ns = vs_strmap_new(NULL);
  r->sample_ns = vs_strmap_new(NULL);
  size_t pos = 0;
  const char *key, *value;
  while (vs_feature_next(r->target, &pos, &key, &value)) {
    _cleanup_(vs_freep) char *ns = namespace_of(key);
    vs_strmap_put(r->target_ns, ns, NULL);
  }
  for (size_t i = 0; i < vs_pop_keys(r->pop); i++) {
    const char *name = vs_pop_key_name(r->pop, i);
    uint32_t having = vs_pop_present(r->pop, i);
    if (r->member && vs_feature_get(r->target, name) && having) having--;
    if (!having) continue;
    _cleanup_(vs_freep) char *ns = namespace_of(name);
    vs_strmap_put(r->sample_ns, ns, NULL);
  }
}

static void add_candidate(struct ranking *r, const char *key, const char *value,
                          const char *majority, uint32_t majority_count, uint32_t c, uint32_t m,
                          uint32_t standing_out) {
  if (r->n_cands == r->cap_cands) {
    r->cap_cands = r->cap_cands ? 2 * r->cap_cands : 64;
    r->cands = vs_xrealloc(r->cands, r->cap_cands * sizeof(*r->cands));
  }
  struct candidate *cd = &r->cands[r->n_cands++];
  *cd = (struct candidate){0};
  struct vs_finding *f = &cd->f;
  f->key = vs_xstrdup(key);
  f->value = vs_xstrdup(value);
  /* No value is shared by two samples: there is no majority to show, and naming one sample's
   * value would read as if the fleet had it. */
  f->majority = vs_xstrdup(majority_count <= 1 && r->n >= 2 ? VS_ALL_DIFFER : majority);
  f->majority_count = majority_count;
  f->n = r->n;
  f->c = c;
  f->m = m;
  f->k = vs_drift_k(r->n, c, m);
  /* The permutation p-value: of the N + 1 VMs, those whose value is held by at most m + 1. */
  f->p = (double)standing_out / ((double)r->n + 1.0);
  if (f->p > 1) f->p = 1;
  f->score = 1.0 - f->p;
  f->kind = m ? VS_FINDING_SHARED : VS_FINDING_ALONE;
  f->keys = 1;
  cd->source = foreign_namespace(r, key);
  cd->unit = cd->source ? namespace_of(key) : unit_name(key);
  cd->target_only =
      strcmp(value, VS_ABSENT) != 0 && strcmp(majority, VS_ABSENT) == 0 && majority_count == r->n;
}

/* One key the population knows. */
static void rank_pop_key(struct ranking *r, size_t i) {
  const char *name = vs_pop_key_name(r->pop, i);
  const char *raw = vs_feature_get(r->target, name);
  struct vs_pop_stats st;
  vs_pop_key_stats(r->pop, i, &st);
  const char *t = vs_pop_fold(r->pop, i, raw);
  if (!st.default_value && raw && !r->member) { /* the target's own default, if it knows one */
    const char *own = vs_feature_default(r->target, name);
    if (own && strcmp(own, raw) == 0) t = VS_ABSENT;
  }
  uint32_t excl = r->member ? 1 : 0;
  uint32_t count = vs_pop_count(r->pop, i, t);
  if (count < excl) count = excl; /* the member under this id is not TARGET; compare anyway */
  uint32_t m = count - excl;
  const char *majority = st.top_value[0];
  uint32_t majority_count = st.top_count[0];
  if (excl && majority && strcmp(t, majority) == 0) {
    majority_count--;
    if (st.top_count[1] > majority_count) {
      majority = st.top_value[1];
      majority_count = st.top_count[1];
    }
  }
  if (!majority || majority_count == 0 || strcmp(majority, t) == 0) return;
  uint32_t c = st.distinct - (excl && count == 1 ? 1 : 0) + (m == 0 ? 1 : 0);
  uint32_t standing_out = vs_pop_at_most(r->pop, i, m + 1) + (r->member ? 0 : 1);
  add_candidate(r, name, t, majority, majority_count, c, m, standing_out);
}

/* A key of the target that no document of the population has (the target is not a member). */
static void rank_target_only_key(struct ranking *r, const char *key, const char *value) {
  const char *own = vs_feature_default(r->target, key);
  if (own && strcmp(own, value) == 0) return; /* its default: the same as absent */
  add_candidate(r, key, value, VS_ABSENT, r->n, 2, 0, 1 + (r->n <= 1 ? r->n : 0));
}

static int cmp_by_unit(const void *a, const void *b) {
  const struct candidate *x = a, *y = b;
  if (!x->unit || !y->unit) return x->unit ? 1 : y->unit ? -1 : strcmp(x->f.key, y->f.key);
  int r = strcmp(x->unit, y->unit);
  if (r) return r;
  return x->f.k < y->f.k ? -1 : x->f.k > y->f.k ? 1 : strcmp(x->f.key, y->f.key);
}

/* Alarms first (a waived one as what it would be), then by K. */
static int cmp_by_rank(const void *a, const void *b) {
  const struct vs_finding *x = a, *y = b;
  if (x->severity != y->severity) return x->severity > y->severity ? -1 : 1;
  if (x->k != y->k) return x->k < y->k ? -1 : 1;
  return strcmp(x->key, y->key);
}

/* How many of the target's keys belong to each unit (a value written out at its own default is
 * as good as absent: it is no candidate, and must not keep the unit from collapsing). */
static struct vs_strmap *target_units(const struct vs_feature *target) {
  struct vs_strmap *units = vs_strmap_new(NULL);
  size_t pos = 0;
  const char *key, *value;
  while (vs_feature_next(target, &pos, &key, &value)) {
    const char *own = vs_feature_default(target, key);
    if (own && strcmp(own, value) == 0) continue;
    char *u = unit_name(key);
    if (!u) continue;
    vs_strmap_put(units, u, (void *)((uintptr_t)vs_strmap_get(units, u) + 1));
    free(u);
  }
  return units;
}

/* Moves the candidates into D's findings, one finding per unit the target alone has or alone
 * lacks, one per key otherwise. */
static void collapse_units(struct ranking *r, struct vs_drift *d) {
  if (r->n_cands) qsort(r->cands, r->n_cands, sizeof(*r->cands), cmp_by_unit);
  _cleanup_(vs_strmap_freep) struct vs_strmap *units = target_units(r->target);
  d->findings = vs_xcalloc(r->n_cands + 1, sizeof(*d->findings));
  for (size_t i = 0; i < r->n_cands;) {
    size_t j = i + 1;
    while (j < r->n_cands && r->cands[i].unit && r->cands[j].unit &&
           strcmp(r->cands[i].unit, r->cands[j].unit) == 0)
      j++;
    size_t group = j - i, target_has = 0, only = 0, lacks = 0;
    if (r->cands[i].unit) target_has = (uintptr_t)vs_strmap_get(units, r->cands[i].unit);
    for (size_t g = i; g < j; g++) {
      only += r->cands[g].target_only;
      lacks += strcmp(r->cands[g].f.value, VS_ABSENT) == 0;
    }
    bool collapse = r->cands[i].source || (group >= 2 && ((only == group && target_has == group) ||
                                                          (target_has == 0 && lacks == group)));
    if (collapse) {
      struct vs_finding *f = &d->findings[d->n_findings++];
      *f = r->cands[i].f; /* the group's most suspicious key speaks for it */
      f->about_key = f->key;
      f->key = vs_xasprintf("%s*", r->cands[i].unit);
      f->keys = group;
      if (r->cands[i].source) f->kind = VS_FINDING_SOURCE;
      for (size_t g = i + 1; g < j; g++)
        finding_clear(&r->cands[g].f);
    } else {
      for (size_t g = i; g < j; g++)
        d->findings[d->n_findings++] = r->cands[g].f;
    }
    for (size_t g = i; g < j; g++)
      free(r->cands[g].unit);
    i = j;
  }
  free(r->cands);
  r->cands = NULL;
}

/* The paths of the files the target has parsed settings of (file:PATH:...). */
static struct vs_strmap *parsed_files(const struct vs_feature *target) {
  struct vs_strmap *paths = vs_strmap_new(NULL);
  size_t pos = 0;
  const char *key, *value;
  while (vs_feature_next(target, &pos, &key, &value)) {
    if (strncmp(key, "file:", 5) != 0) continue;
    const char *colon = strchr(key + 5, ':');
    if (!colon) continue;
    char *path = vs_xstrndup(key + 5, (size_t)(colon - key - 5));
    vs_strmap_put(paths, path, NULL);
    free(path);
  }
  return paths;
}

/* A digest finding ("meta:PATH:sha256") about a file whose settings are parsed only says that
 * the file was edited: every setting the edit changed is a finding of its own, and an edit that
 * changed none (a comment, a default written out) is no reason to page anyone. */
static bool is_edit_evidence(const char *key, struct vs_strmap *parsed) {
  if (strncmp(key, "meta:", 5) != 0 || !vs_has_suffix(key, ":sha256")) return false;
  size_t len = strlen(key) - 5 - strlen(":sha256");
  char *path = vs_xstrndup(key + 5, len);
  bool parsed_file = vs_strmap_has(parsed, path);
  free(path);
  return parsed_file;
}

/* Whether VALUE is a version of KEY's package newer (> 0) or older (< 0) than MAJORITY; 0 when
 * KEY is no package or either side is absent. */
static int package_direction(const struct vs_feature *target, const struct vs_finding *f) {
  if (strncmp(f->key, "pkg:", 4) != 0 || strcmp(f->value, VS_ABSENT) == 0 ||
      strcmp(f->majority, VS_ABSENT) == 0 || strcmp(f->majority, VS_ALL_DIFFER) == 0)
    return 0;
  return vs_version_compare(vs_feature_os(target, "package_format"), f->value, f->majority);
}

/* How many VMs of the fleet hold VALUE for KEY (folded as the fleet folds it). */
static uint32_t fleet_count(const struct vs_pop *fleet, const char *key, const char *value) {
  long i = vs_pop_key_index(fleet, key);
  if (i < 0) return strcmp(value, VS_ABSENT) == 0 ? (uint32_t)vs_pop_docs(fleet) : 0;
  return vs_pop_count(fleet, (size_t)i, value);
}

/* The role other than the target's whose majority value of KEY is VALUE, or -1. */
static long role_of_value(const struct vs_drift_fleet *fl, const char *key, const char *value) {
  for (size_t r = 0; r < fl->n_roles; r++)
    if (r != fl->own_role && fl->roles[r] && vs_pop_majority_is(fl->roles[r], key, value))
      return (long)r;
  return -1;
}

/* An "alone" finding seen from the fleet: still alone, another role's value, a rollout, or a
 * team's tweak (the target's group, or its peers'). */
static void classify_in_fleet(struct vs_finding *f, const struct vs_feature *target,
                              const struct vs_drift_fleet *fl) {
  const char *key = f->about_key ? f->about_key : f->key;
  if (fl->rolling && vs_strmap_has(fl->rolling, key)) {
    f->kind = VS_FINDING_ROLLOUT;
    return;
  }
  uint32_t holders = fleet_count(fl->fleet, key, f->value);
  f->elsewhere = holders ? holders - 1 : 0; /* the target is a member of the fleet */
  int dir = package_direction(target, f);
  if (dir > 0 || (dir < 0 && f->elsewhere > 0)) {
    f->kind = VS_FINDING_ROLLOUT;
    return;
  }
  if (!f->elsewhere) return;
  long r = fl->role_of ? -1 : role_of_value(fl, key, f->value);
  const char *role = fl->role_of ? fl->role_of(fl->role_of_arg, key, f->value, fl->own_role)
                                 : (r >= 0 ? fl->role_names[r] : NULL);
  if (role) {
    f->role_of_value = vs_xstrdup(role);
    return;
  }
  if (f->elsewhere < fl->group_max) f->kind = VS_FINDING_GROUP;
}

static void judge(struct vs_finding *f, const struct vs_drift *d, const struct vs_feature *target,
                  const struct vs_drift_opts *opts, struct vs_strmap *parsed) {
  double warn = opts && opts->warn_score > 0 ? opts->warn_score : VS_DRIFT_WARN_SCORE;
  double fail = opts && opts->fail_score > 0 ? opts->fail_score : VS_DRIFT_FAIL_SCORE;
  f->edit_evidence = is_edit_evidence(f->key, parsed);
  if (f->edit_evidence) f->kind = VS_FINDING_EDIT;
  if (f->kind == VS_FINDING_ALONE && opts && opts->fleet) classify_in_fleet(f, target, opts->fleet);
  f->severity = VS_SEVERITY_INFO;
  if (f->kind == VS_FINDING_ALONE && !d->unique)
    f->severity = f->score >= fail   ? VS_SEVERITY_FAILURE
                  : f->score >= warn ? VS_SEVERITY_WARNING
                                     : VS_SEVERITY_INFO;
  if (opts && opts->waivers) {
    vs_waivers_match(opts->waivers, f->key, d->target_name, d->target_id, opts->now, &f->waiver);
    if (!f->waiver.reason && f->about_key)
      vs_waivers_match(opts->waivers, f->about_key, d->target_name, d->target_id, opts->now,
                       &f->waiver);
    f->waived = f->waiver.reason && !f->waiver.expired;
  }
}

struct vs_drift *vs_drift_rank(const struct vs_pop *pop, const struct vs_feature *target,
                               const struct vs_drift_opts *opts, struct vs_err *err) {
  if (!vs_pop_is_prepared(pop)) {
    vs_err_set(err, EINVAL, "the population changed after vs_pop_prepare(); prepare it again");
    return NULL;
  }
  struct ranking r = {.pop = pop, .target = target};
  r.member = vs_pop_member(pop, vs_feature_id(target)) > 0;
  size_t docs = vs_pop_docs(pop) - (r.member ? 1 : 0);
  if (docs == 0) {
    vs_err_set(err, EINVAL, "%s: no sample documents to compare with (the population holds %s)",
               vs_feature_name(target), r.member ? "only this VM" : "nothing");
    return NULL;
  }
  r.n = (uint32_t)docs;
  struct vs_drift *d = vs_xcalloc(1, sizeof(*d));
  d->target_id = vs_xstrdup(vs_feature_id(target));
  d->target_name = vs_xstrdup(vs_feature_name(target));
  d->samples = r.n;
  d->unique = opts && opts->fleet && opts->fleet->unique;
  find_namespaces(&r);
  for (size_t i = 0; i < vs_pop_keys(pop); i++)
    rank_pop_key(&r, i);
  d->keys_compared = vs_pop_keys(pop);
  if (!r.member) {
    size_t pos = 0;
    const char *key, *value;
    while (vs_feature_next(target, &pos, &key, &value))
      if (vs_pop_key_index(pop, key) < 0) {
        rank_target_only_key(&r, key, value);
        d->keys_compared++;
      }
  }
  collapse_units(&r, d);
  vs_strmap_free(r.target_ns);
  vs_strmap_free(r.sample_ns);
  _cleanup_(vs_strmap_freep) struct vs_strmap *parsed = parsed_files(target);
  for (size_t i = 0; i < d->n_findings; i++)
    judge(&d->findings[i], d, target, opts, parsed);
  qsort(d->findings, d->n_findings, sizeof(*d->findings), cmp_by_rank);
  for (size_t i = 0; i < d->n_findings; i++) {
    struct vs_finding *f = &d->findings[i];
    f->rank = i + 1;
    if (!f->waived && f->severity >= VS_SEVERITY_WARNING) d->alarms++;
  }
  return d;
}

static json_t *jstr(const char *s) {
  json_t *j = json_string(s);
  return j ? j : json_string("\\x??"); /* values come sanitized; this is only a guard */
}

json_t *vs_drift_to_json(const struct vs_drift *d, size_t top) {
  json_t *root = json_object();
  json_object_set_new(root, "target", jstr(d->target_id));
  json_object_set_new(root, "name", jstr(d->target_name));
  json_object_set_new(root, "samples", json_integer(d->samples));
  if (d->unique) json_object_set_new(root, "unique", json_true());
  json_object_set_new(root, "keys_compared", json_integer((json_int_t)d->keys_compared));
  json_object_set_new(root, "alarms", json_integer((json_int_t)d->alarms));
  json_object_set_new(root, "findings_total", json_integer((json_int_t)d->n_findings));
  json_t *arr = json_array();
  size_t n = top && top < d->n_findings ? top : d->n_findings;
  for (size_t i = 0; i < n; i++) {
    const struct vs_finding *f = &d->findings[i];
    json_t *o = json_object();
    json_object_set_new(o, "rank", json_integer((json_int_t)f->rank));
    json_object_set_new(o, "key", jstr(f->key));
    json_object_set_new(o, "value", jstr(f->value));
    json_t *maj = json_object();
    json_object_set_new(maj, "value", jstr(f->majority));
    json_object_set_new(maj, "count", json_integer(f->majority_count));
    json_object_set_new(maj, "share", json_real(f->n ? (double)f->majority_count / f->n : 0));
    json_object_set_new(o, "majority", maj);
    json_object_set_new(o, "n", json_integer(f->n));
    json_object_set_new(o, "c", json_integer(f->c));
    json_object_set_new(o, "m", json_integer(f->m));
    json_object_set_new(o, "k", json_real(f->k));
    json_object_set_new(o, "p", json_real(f->p));
    json_object_set_new(o, "score", json_real(f->score));
    json_object_set_new(o, "kind", jstr(vs_finding_kind_name(f->kind)));
    if (f->elsewhere) json_object_set_new(o, "elsewhere", json_integer(f->elsewhere));
    if (f->role_of_value) json_object_set_new(o, "role_of_value", jstr(f->role_of_value));
    json_object_set_new(o, "severity", jstr(vs_severity_name(f->severity)));
    json_object_set_new(o, "waived", json_boolean(f->waived));
    if (f->edit_evidence) json_object_set_new(o, "edit_evidence", json_true());
    if (f->about_key) {
      json_object_set_new(o, "keys", json_integer((json_int_t)f->keys));
      json_object_set_new(o, "about_key", jstr(f->about_key));
    }
    if (f->waiver.reason) {
      json_t *w = json_object();
      json_object_set_new(w, "reason", jstr(f->waiver.reason));
      json_object_set_new(w, "expires", f->waiver.expires ? jstr(f->waiver.expires) : json_null());
      json_object_set_new(w, "expired", json_boolean(f->waiver.expired));
      json_object_set_new(o, "waiver", w);
    }
    json_array_append_new(arr, o);
  }
  json_object_set_new(root, "findings", arr);
  return root;
}

/* --------------------------------------------------------------------------- temporal diff */

const char *vs_change_kind_name(enum vs_change_kind k) {
  return k == VS_CHANGE_ADDED ? "added" : k == VS_CHANGE_REMOVED ? "removed" : "changed";
}

const char *vs_change_class_name(enum vs_change_class c) {
  static const char *const names[] = {"",          "installed", "uninstalled", "upgrade",
                                      "downgrade", "package",   "local_edit"};
  return names[c];
}

size_t vs_diff_count_class(const struct vs_diff *d, enum vs_change_class c) {
  size_t n = 0;
  for (size_t i = 0; i < d->n_changes; i++)
    n += d->changes[i].class == c;
  return n;
}

char *vs_diff_key_list(const struct vs_diff *d, size_t max) {
  struct vs_buf b = {0};
  size_t i = 0;
  for (; i < d->n_changes; i++) {
    if (b.len && b.len + strlen(d->changes[i].key) + 2 > max) break;
    vs_buf_addf(&b, "%s%s", b.len ? ", " : "", d->changes[i].key);
  }
  if (i < d->n_changes) vs_buf_addf(&b, ", and %zu more", d->n_changes - i);
  vs_buf_add(&b, "", 0);
  return vs_buf_steal(&b);
}

void vs_diff_free(struct vs_diff *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n_changes; i++) {
    free(d->changes[i].key);
    free(d->changes[i].old_value);
    free(d->changes[i].new_value);
    free(d->changes[i].package);
  }
  free(d->changes);
  free(d);
}

void vs_diff_freep(struct vs_diff **d) {
  vs_diff_free(*d);
}

static bool is_pkg_key(const char *key) {
  return strncmp(key, "pkg:", 4) == 0;
}

/* The file a file: or meta: key is about, as "PATH" (caller frees), or NULL. */
static char *key_path(const char *key) {
  if (strncmp(key, "file:", 5) != 0 && strncmp(key, "meta:", 5) != 0) return NULL;
  const char *colon = strchr(key + 5, ':');
  return colon ? vs_xstrndup(key + 5, (size_t)(colon - key - 5)) : NULL;
}

static bool same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void classify(struct vs_diff *d, struct vs_change *ch, const struct vs_feature *old_doc,
                     const struct vs_feature *new_doc, struct vs_strmap *files_seen) {
  if (is_pkg_key(ch->key)) {
    if (ch->kind == VS_CHANGE_ADDED) {
      ch->class = VS_CLASS_INSTALLED;
      d->installed++;
    } else if (ch->kind == VS_CHANGE_REMOVED) {
      ch->class = VS_CLASS_UNINSTALLED;
      d->uninstalled++;
    } else {
      const char *format = vs_feature_os(new_doc, "package_format");
      if (!format) format = vs_feature_os(old_doc, "package_format");
      int cmp = vs_version_compare(format, ch->old_value, ch->new_value);
      if (cmp < 0) {
        ch->class = VS_CLASS_UPGRADE;
        d->upgrades++;
      } else if (cmp > 0) {
        ch->class = VS_CLASS_DOWNGRADE;
        d->downgrades++;
      }
    }
    return;
  }
  _cleanup_(vs_freep) char *path = key_path(ch->key);
  if (!path) return;
  char *pkg_key = vs_xasprintf("meta:%s:package", path);
  const char *package = vs_feature_get(new_doc, pkg_key);
  if (!package) package = vs_feature_get(old_doc, pkg_key);
  free(pkg_key);
  bool with_package = false;
  if (package) {
    ch->package = vs_xstrdup(package);
    char *k = vs_xasprintf("pkg:%s", package);
    with_package = !same(vs_feature_get(old_doc, k), vs_feature_get(new_doc, k));
    free(k);
  }
  ch->class = with_package ? VS_CLASS_WITH_PACKAGE : VS_CLASS_LOCAL_EDIT;
  if (vs_strmap_put(files_seen, path, NULL)) {
    if (with_package)
      d->package_edits++;
    else
      d->local_edits++;
  }
}

struct vs_diff *vs_drift_diff(const struct vs_feature *old_doc, const struct vs_feature *new_doc) {
  struct vs_diff *d = vs_xcalloc(1, sizeof(*d));
  size_t n_old, n_new;
  _cleanup_(vs_freep) const char **ko = vs_feature_keys(old_doc, &n_old);
  _cleanup_(vs_freep) const char **kn = vs_feature_keys(new_doc, &n_new);
  _cleanup_(vs_strmap_freep) struct vs_strmap *files_seen = vs_strmap_new(NULL);
  size_t cap = 0;
  for (size_t i = 0, j = 0; i < n_old || j < n_new;) {
    int cmp = i == n_old ? 1 : j == n_new ? -1 : strcmp(ko[i], kn[j]);
    const char *key = cmp <= 0 ? ko[i] : kn[j];
    const char *ov = cmp <= 0 ? vs_feature_get(old_doc, ko[i]) : NULL;
    const char *nv = cmp >= 0 ? vs_feature_get(new_doc, kn[j]) : NULL;
    if (cmp <= 0) i++;
    if (cmp >= 0) j++;
    if (same(ov, nv)) continue;
    if (d->n_changes == cap) {
      cap = cap ? 2 * cap : 32;
      d->changes = vs_xrealloc(d->changes, cap * sizeof(*d->changes));
    }
    struct vs_change *ch = &d->changes[d->n_changes++];
    *ch = (struct vs_change){.key = vs_xstrdup(key),
                             .old_value = ov ? vs_xstrdup(ov) : NULL,
                             .new_value = nv ? vs_xstrdup(nv) : NULL,
                             .kind = !ov   ? VS_CHANGE_ADDED
                                     : !nv ? VS_CHANGE_REMOVED
                                           : VS_CHANGE_CHANGED};
    if (ch->kind == VS_CHANGE_ADDED)
      d->added++;
    else if (ch->kind == VS_CHANGE_REMOVED)
      d->removed++;
    else
      d->changed++;
    classify(d, ch, old_doc, new_doc, files_seen);
  }
  return d;
}

json_t *vs_diff_to_json(const struct vs_diff *d, const struct vs_feature *old_doc,
                        const struct vs_feature *new_doc) {
  json_t *root = json_object();
  json_t *o = json_object(), *n = json_object();
  json_object_set_new(o, "id", jstr(vs_feature_id(old_doc)));
  json_object_set_new(o, "taken_at", jstr(vs_feature_taken_at(old_doc)));
  json_object_set_new(n, "id", jstr(vs_feature_id(new_doc)));
  json_object_set_new(n, "taken_at", jstr(vs_feature_taken_at(new_doc)));
  json_object_set_new(root, "old", o);
  json_object_set_new(root, "new", n);
  json_t *sum = json_object();
  json_object_set_new(sum, "added", json_integer((json_int_t)d->added));
  json_object_set_new(sum, "removed", json_integer((json_int_t)d->removed));
  json_object_set_new(sum, "changed", json_integer((json_int_t)d->changed));
  json_object_set_new(sum, "upgrades", json_integer((json_int_t)d->upgrades));
  json_object_set_new(sum, "downgrades", json_integer((json_int_t)d->downgrades));
  json_object_set_new(sum, "installed", json_integer((json_int_t)d->installed));
  json_object_set_new(sum, "uninstalled", json_integer((json_int_t)d->uninstalled));
  json_object_set_new(sum, "files_changed_with_package",
                      json_integer((json_int_t)d->package_edits));
  json_object_set_new(sum, "files_edited_locally", json_integer((json_int_t)d->local_edits));
  json_object_set_new(root, "summary", sum);
  json_t *arr = json_array();
  for (size_t i = 0; i < d->n_changes; i++) {
    const struct vs_change *ch = &d->changes[i];
    json_t *c = json_object();
    json_object_set_new(c, "key", jstr(ch->key));
    json_object_set_new(c, "kind", jstr(vs_change_kind_name(ch->kind)));
    json_object_set_new(c, "old", ch->old_value ? jstr(ch->old_value) : json_null());
    json_object_set_new(c, "new", ch->new_value ? jstr(ch->new_value) : json_null());
    if (ch->class != VS_CLASS_NONE)
      json_object_set_new(c, "class", jstr(vs_change_class_name(ch->class)));
    if (ch->package) json_object_set_new(c, "package", jstr(ch->package));
    json_array_append_new(arr, c);
  }
  json_object_set_new(root, "changes", arr);
  return root;
}
