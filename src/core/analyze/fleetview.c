/* The fleet as one view: VMs by identity, their roles and peer groups (fleetview.h). */
#include "fleetview.h"
#include "fleetview_int.h"

#include "neighbours.h"
#include "pool.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A VM's tokens, held by the views and the cache entry that use them: a kept VM's are its
 * entry's own, not a copy (copying them, 16 KB a VM at 2,000 settings and again for its
 * previous snapshot, was a tenth of the elected host's refresh at 10,000 VMs in
 * bench/fleet-scale.sh, most of it the kernel zeroing the fresh pages). REFS counts the
 * holders besides the first, as a document's do. */
struct held_tokens {
  unsigned refs;
  uint64_t t[];
};

static struct held_tokens *held_of(uint64_t *t) {
  return (struct held_tokens *)((char *)t - offsetof(struct held_tokens, t));
}

/* N tokens to hold, uninitialised. */
static uint64_t *tokens_new(size_t n) {
  struct held_tokens *h = vs_xmalloc(sizeof(*h) + (n ? n : 1) * sizeof(uint64_t));
  h->refs = 0;
  return h->t;
}

/* T (malloc'd, N of them) as held tokens; T is freed. */
static uint64_t *tokens_adopt(uint64_t *t, size_t n) {
  uint64_t *held = tokens_new(n);
  memcpy(held, t, n * sizeof(uint64_t));
  free(t);
  return held;
}

static uint64_t *tokens_share(uint64_t *t) {
  if (t) __atomic_add_fetch(&held_of(t)->refs, 1, __ATOMIC_RELAXED);
  return t;
}

static void tokens_drop(uint64_t *t) {
  if (!t) return;
  struct held_tokens *h = held_of(t);
  unsigned refs = __atomic_load_n(&h->refs, __ATOMIC_ACQUIRE);
  while (refs && !__atomic_compare_exchange_n(&h->refs, &refs, refs - 1, false, __ATOMIC_ACQ_REL,
                                              __ATOMIC_ACQUIRE))
    ;
  if (!refs) free(h);
}

/* *T (N tokens) to change in place: its own copy first while another holds it. */
static void tokens_unshare(uint64_t **t, size_t n) {
  if (__atomic_load_n(&held_of(*t)->refs, __ATOMIC_ACQUIRE) == 0) return;
  uint64_t *copy = tokens_new(n);
  memcpy(copy, *t, n * sizeof(uint64_t));
  tokens_drop(*t);
  *t = copy;
}

int vs_peer_group_parse(const char *s, enum vs_peer_group *out) {
  if (strcasecmp(s, "role") == 0)
    *out = VS_PEERS_ROLE;
  else if (strcasecmp(s, "fleet") == 0 || strcasecmp(s, "all") == 0)
    *out = VS_PEERS_FLEET;
  else
    return -1;
  return 0;
}

const char *vs_peer_group_name(enum vs_peer_group g) {
  return g == VS_PEERS_ROLE ? "role" : "fleet";
}

struct vs_view *vs_view_new(void) {
  struct vs_view *v = vs_xcalloc(1, sizeof(*v));
  v->by_id = vs_strmap_new(NULL);
  return v;
}

void vs_view_free(struct vs_view *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) {
    vs_feature_free(v->vms[i].doc);
    vs_feature_free(v->vms[i].prev);
    tokens_drop(v->vms[i].tokens);
    tokens_drop(v->vms[i].prev_tokens);
  }
  free(v->vms);
  vs_strmap_free(v->by_id);
  vs_strv_free(v->errors, v->n_errors);
  for (size_t g = 0; g < v->n_groups; g++) { /* a group's may be the fleet's (build_groups) */
    if ((!v->kind_pops || v->role_pops[g] != v->kind_pops[g]) && v->role_pops[g] != v->fleet)
      vs_pop_free(v->role_pops[g]);
    if (v->kind_pops && v->kind_pops[g] != v->fleet) vs_pop_free(v->kind_pops[g]);
  }
  free(v->kind_pops);
  free(v->role_pops);
  free(v->role_names);
  free(v->unique);
  free(v->group);
  free(v->group_size);
  vs_strmap_free(v->rolling);
  vs_strmap_free(v->moving);
  vs_analysis_free(v->analysis);
  vs_pop_free(v->fleet);
  free(v->tokens);
  free(v->group_ids);
  free(v->roles);
  json_decref(v->majorities);
  json_decref(v->context);
  free(v);
}

void vs_view_freep(struct vs_view **v) {
  vs_view_free(*v);
}

long vs_view_find_id(const struct vs_view *v, const char *id) {
  uintptr_t at = id ? (uintptr_t)vs_strmap_get(v->by_id, id) : 0;
  return (long)at - 1;
}

long vs_view_find(const struct vs_view *v, const char *name) {
  long i = vs_view_find_id(v, name);
  if (i >= 0) return i;
  for (size_t k = 0; k < v->n; k++) {
    const char *nk = vs_feature_name(v->vms[k].doc);
    if (!nk || strcmp(nk, name) != 0) continue;
    if (i >= 0) return -2;
    i = (long)k;
  }
  return i;
}

/* Whether A was taken after B (a document without a time is older than any with one). */
static bool newer(const struct vs_feature *a, const struct vs_feature *b) {
  const char *ta = vs_feature_taken_at(a), *tb = vs_feature_taken_at(b);
  if (!tb) return true;
  if (!ta) return false;
  return strcmp(ta, tb) >= 0;
}

int vs_view_add(struct vs_view *v, struct vs_feature *doc) {
  long at = vs_view_find_id(v, vs_feature_id(doc));
  if (at >= 0) {
    struct vm *m = &v->vms[at];
    if (newer(doc, m->doc)) {
      vs_feature_free(m->prev);
      m->prev = m->doc;
      m->doc = doc;
      return 1;
    }
    if (!m->prev || newer(doc, m->prev)) {
      vs_feature_free(m->prev);
      m->prev = doc;
    } else {
      vs_feature_free(doc);
    }
    return 0;
  }
  if (v->n == v->cap) {
    v->cap = v->cap ? 2 * v->cap : 16;
    v->vms = vs_xrealloc(v->vms, v->cap * sizeof(*v->vms));
  }
  v->vms[v->n++] = (struct vm){.doc = doc};
  vs_strmap_put(v->by_id, vs_feature_id(doc) ? vs_feature_id(doc) : "", (void *)(uintptr_t)v->n);
  return 1;
}

size_t vs_view_add_target(struct vs_view *v, struct vs_feature *doc) {
  long at = vs_view_find_id(v, vs_feature_id(doc));
  if (at < 0) {
    vs_view_add(v, doc);
    return 0;
  }
  struct vm *m = &v->vms[at];
  size_t dropped = 1 + (m->prev ? 1 : 0);
  vs_feature_free(m->doc);
  vs_feature_free(m->prev);
  m->doc = doc;
  m->prev = NULL;
  return dropped;
}

void vs_view_remove(struct vs_view *v, size_t i) {
  struct vm *m = &v->vms[i];
  vs_strmap_remove(v->by_id, vs_feature_id(m->doc) ? vs_feature_id(m->doc) : "");
  vs_feature_free(m->doc);
  vs_feature_free(m->prev);
  *m = v->vms[--v->n];
  if (i < v->n) {
    const char *id = vs_feature_id(m->doc);
    vs_strmap_put(v->by_id, id ? id : "", (void *)(uintptr_t)(i + 1));
  }
}

static void add_error(struct vs_view *v, char *msg) {
  vs_strv_take(&v->errors, &v->n_errors, msg);
}

size_t vs_view_errors(const struct vs_view *v, const char *const **msgs) {
  *msgs = (const char *const *)v->errors;
  return v->n_errors;
}

/* Whether DIR itself holds a .json document (a VM's directory of a pool, not the pool): the
 * pool's own files, vmscope_drift's analytics.json and vmscope_snapshot's cycle.json, aside. */
static bool holds_documents(const char *dir) {
  DIR *d = opendir(dir);
  bool found = false;
  for (struct dirent *e; d && !found && (e = readdir(d));)
    found = e->d_name[0] != '.' && vs_has_suffix(e->d_name, ".json") &&
            strcmp(e->d_name, "analytics.json") != 0 && strcmp(e->d_name, "cycle.json") != 0;
  if (d) closedir(d);
  return found;
}

bool vs_view_is_pool(const char *dir) {
  if (vs_pool_is_guest_tree(dir)) return false;
  _cleanup_(vs_freep) char *analytics = vs_xasprintf("%s/analytics.json", dir);
  _cleanup_(vs_freep) char *cycle = vs_xasprintf("%s/cycle.json", dir);
  if (access(analytics, F_OK) == 0 || access(cycle, F_OK) == 0) return true;
  char **names = NULL;
  size_t n = 0;
  if (vs_pool_vms(dir, &names, &n, NULL) < 0) return false;
  bool found = false;
  for (size_t i = 0; i < n && !found; i++) {
    _cleanup_(vs_freep) char *sub = vs_xasprintf("%s/%s", dir, names[i]);
    found = holds_documents(sub);
  }
  vs_strv_free(names, n);
  return found;
}

int vs_view_add_pool(struct vs_view *v, const char *dir, const char *not_before, size_t *forgotten,
                     struct vs_err *err) {
  struct stat st;
  if (stat(dir, &st) < 0) return vs_err_set(err, errno, "%s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return vs_err_set(err, ENOTDIR,
                      "%s is a file, not a snapshot pool (a directory of <vm>/<time>.json "
                      "documents): give it as a SOURCE instead of --pool",
                      dir);
  if (holds_documents(dir))
    return vs_err_set(err, EINVAL,
                      "%s holds documents itself: it is one VM's directory in a pool; give the "
                      "pool, its parent directory",
                      dir);
  if (vs_pool_is_guest_tree(dir))
    return vs_err_set(err, EINVAL,
                      "%s holds a guest's /etc: it is a guest tree, not a snapshot pool; give "
                      "it as a SOURCE instead of --pool",
                      dir);
  char **names = NULL;
  size_t n = 0;
  if (vs_pool_vms(dir, &names, &n, err) < 0) return -1;
  for (size_t i = 0; i < n; i++) {
    struct vs_err e = {0};
    struct vs_feature *doc = vs_pool_newest_in(dir, names[i], &e);
    if (!doc) {
      add_error(v, vs_xstrdup(vs_err_msg(&e))); /* it names the VM's directory */
      vs_err_clear(&e);
      continue;
    }
    _cleanup_(vs_freep) char *home = vs_pool_dir_name(vs_feature_id(doc));
    if (strcmp(home, names[i]) != 0) {
      /* A document copied into another VM's directory would hide that VM behind this one. */
      add_error(v, vs_xasprintf("%s/%s: its newest document is VM %s's (%s), not this "
                                "directory's: left out (move it to %s/%s)",
                                dir, names[i], vs_feature_name(doc) ? vs_feature_name(doc) : "?",
                                vs_feature_id(doc), dir, home));
      vs_feature_free(doc);
      continue;
    }
    const char *t = vs_feature_taken_at(doc);
    if (not_before && (!t || strcmp(t, not_before) < 0)) {
      if (forgotten) (*forgotten)++;
      vs_feature_free(doc);
      continue;
    }
    struct vs_feature *prev = NULL;
    vs_feature_free(vs_pool_newest(dir, vs_feature_id(doc), &prev, NULL));
    vs_view_add(v, doc);
    if (prev) vs_view_add(v, prev);
  }
  vs_strv_free(names, n);
  return 0;
}

/* Populations counted on every CPU: each chunk of VMs (in order) into populations of its own,
 * merged after in chunk order, so that keys and members come in the order of the VMs as they
 * would counted one by one (vs_pop_merge adds the counts exactly). */
struct pops_job {
  const struct vs_view *v;
  size_t n_pops;
  /* The populations VM I is counted in (at most 2) into OUT; returns how many. */
  size_t (*slots)(const struct vs_view *v, const bool *split, size_t i, size_t out[2]);
  const bool *split;
  struct vs_pop **part[VS_PARALLEL_MAX]; /* per chunk: its N_POPS populations, NULL when empty */
};

static void count_chunk(void *arg, size_t c, size_t from, size_t to) {
  struct pops_job *j = arg;
  struct vs_pop **pops = vs_xcalloc(j->n_pops ? j->n_pops : 1, sizeof(*pops));
  for (size_t i = from; i < to; i++) {
    size_t slot[2], n = j->slots(j->v, j->split, i, slot);
    for (size_t s = 0; s < n; s++) {
      if (!pops[slot[s]]) pops[slot[s]] = vs_pop_new();
      vs_pop_add(pops[slot[s]], j->v->vms[i].doc);
    }
  }
  j->part[c] = pops;
}

/* N_POPS populations of the view's VMs, as SLOTS assigns them (NULL: no VM counted in it). */
static struct vs_pop **count_pops(const struct vs_view *v, size_t n_pops,
                                  size_t (*slots)(const struct vs_view *, const bool *, size_t,
                                                  size_t[2]),
                                  const bool *split) {
  struct pops_job job = {.v = v, .n_pops = n_pops, .slots = slots, .split = split};
  size_t chunks = vs_parallel_chunks(v->n, 256, count_chunk, &job);
  struct vs_pop **out = job.part[0];
  for (size_t c = 1; c < chunks; c++) {
    for (size_t p = 0; p < n_pops; p++) {
      if (!job.part[c][p]) continue;
      if (!out[p]) {
        out[p] = job.part[c][p];
        continue;
      }
      vs_pop_merge(out[p], job.part[c][p]);
      vs_pop_free(job.part[c][p]);
    }
    free(job.part[c]);
  }
  return out;
}

static size_t fleet_slot(const struct vs_view *v, const bool *split, size_t i, size_t out[2]) {
  (void)v;
  (void)split;
  (void)i;
  out[0] = 0;
  return 1;
}

/* A VM counts in its close group's population (slot: the group) and, in a group that holds a
 * unique VM (SPLIT), in the population of the group's peers (slot: groups + the group). A
 * group without unique VMs has one population for both. */
static size_t group_slots(const struct vs_view *v, const bool *split, size_t i, size_t out[2]) {
  size_t g = v->group[i];
  out[0] = g;
  if (v->unique[i] || !split[g]) return 1;
  out[1] = v->n_groups + g;
  return 2;
}

struct own_job {
  const struct vs_view *v;
  const char **keys; /* the fleet's keys that one VM alone has */
  size_t n_keys;
  size_t *own;
};

/* Keys VM I has and no other VM of the fleet has at all. The role analysis cannot see these
 * (tokens of one VM are dropped before roles are formed), so a web server alone among
 * application servers joins their role; what it has of its own says it is not one of them.
 * Looked up by the fleet's keys of one VM (few: most keys are every VM's) rather than by
 * walking each VM's thousands of settings, unless the VM has fewer settings than those. */
static void own_keys(void *arg, size_t i) {
  const struct own_job *j = arg;
  const struct vs_feature *doc = j->v->vms[i].doc;
  size_t own = 0;
  if (j->n_keys <= vs_feature_count(doc)) {
    for (size_t k = 0; k < j->n_keys; k++)
      own += vs_feature_get(doc, j->keys[k]) != NULL;
  } else {
    size_t pos = 0;
    const char *key, *value;
    while (vs_feature_next(doc, &pos, &key, &value)) {
      long k = vs_pop_key_index(j->v->fleet, key);
      own += k >= 0 && vs_pop_present(j->v->fleet, (size_t)k) == 1;
    }
  }
  j->own[i] = own;
}

/* The close groups (neighbours.h), each group's population (less its unique VMs: for peers and
 * for "another group's value") and the name it is known by (its first VM's). A VM is unique
 * when it has too few close peers: its close group has at most min_role_peers members, or it
 * has more than VS_VIEW_OWN_KEYS keys of its own (a kind of machine of its own). */
static void build_groups(struct vs_view *v) {
  v->group = vs_xcalloc(v->n ? v->n : 1, sizeof(size_t));
  v->n_groups = vs_close_groups(v->tokens, v->n, v->group);
  size_t ng = v->n_groups;
  v->group_size = vs_xcalloc(ng ? ng : 1, sizeof(size_t));
  v->role_pops = vs_xcalloc(ng ? ng : 1, sizeof(*v->role_pops));
  v->role_names = vs_xcalloc(ng ? ng : 1, sizeof(*v->role_names));
  for (size_t i = v->n; i-- > 0;) {
    v->group_size[v->group[i]]++;
    v->role_names[v->group[i]] = v->tokens[i].name ? v->tokens[i].name : v->tokens[i].id;
  }
  _cleanup_(vs_freep) size_t *own = vs_xcalloc(v->n ? v->n : 1, sizeof(size_t));
  struct own_job oj = {.v = v, .own = own};
  for (size_t k = 0; k < vs_pop_keys(v->fleet); k++) {
    if (vs_pop_present(v->fleet, k) != 1) continue;
    if (oj.n_keys % 64 == 0) oj.keys = vs_xrealloc(oj.keys, (oj.n_keys + 64) * sizeof(char *));
    oj.keys[oj.n_keys++] = vs_pop_key_name(v->fleet, k);
  }
  vs_parallel_for(v->n, 0, own_keys, &oj); /* the fleet's population is prepared: read-only */
  free(oj.keys);
  v->unique = vs_xcalloc(v->n ? v->n : 1, sizeof(bool));
  _cleanup_(vs_freep) bool *split = vs_xcalloc(ng ? ng : 1, sizeof(bool));
  _cleanup_(vs_freep) bool *peers = vs_xcalloc(ng ? ng : 1, sizeof(bool));
  for (size_t i = 0; i < v->n; i++) {
    size_t g = v->group[i];
    v->unique[i] = v->group_size[g] <= v->opts.min_role_peers || own[i] > VS_VIEW_OWN_KEYS;
    split[g] |= v->unique[i];
    peers[g] |= !v->unique[i]; /* a group of one is unique: MinRolePeers is at least 1 */
  }
  /* One close group of every VM, none of them unique (a fleet of one kind): its population
   * is the fleet's, the same documents counted in the same order, and is not counted again. */
  bool whole = ng == 1 && !split[0];
  struct vs_pop **pops = whole ? NULL : count_pops(v, 2 * ng, group_slots, split);
  v->kind_pops = vs_xcalloc(ng ? ng : 1, sizeof(*v->kind_pops));
  for (size_t g = 0; g < ng; g++) {
    v->kind_pops[g] = whole ? v->fleet : pops[g];
    v->role_pops[g] = split[g] ? pops[ng + g] : peers[g] ? v->kind_pops[g] : NULL;
    vs_pop_prepare(v->kind_pops[g]);
    if (v->role_pops[g]) vs_pop_prepare(v->role_pops[g]);
  }
  free(pops);
  for (size_t i = 0; i < v->n; i++) { /* its close peers were unique themselves */
    const struct vs_pop *pop = v->role_pops[v->group[i]];
    if (!pop || vs_pop_docs(pop) <= v->opts.min_role_peers) v->unique[i] = true;
  }
}

/* VM I's moves since its previous snapshot ("KEY\tVALUE" each, VS_ABSENT for a key gone). */
struct moves {
  char **moves;
  size_t *key_len; /* a key may hold a tab: where it ends */
  size_t n;
};

struct move {
  const char *key, *value; /* VALUE: NULL for a key gone */
};

static int cmp_move(const void *a, const void *b) {
  return strcmp(((const struct move *)a)->key, ((const struct move *)b)->key);
}

/* The settings that differ between the two snapshots, in the order of their keys (as
 * vs_drift_diff lists them): found by looking each key up rather than by sorting both
 * documents' keys, which cost the most of the whole fleet's diffs. */
static void find_moves(void *arg, size_t i) {
  const struct vs_view *v = ((void **)arg)[0];
  struct moves *out = &((struct moves *)((void **)arg)[1])[i];
  const struct vs_feature *prev = v->vms[i].prev, *doc = v->vms[i].doc;
  if (!prev) return;
  struct move *found = NULL;
  size_t n = 0, cap = 0, pos = 0;
  const char *key, *value;
  for (int side = 0; side < 2; side++) {
    const struct vs_feature *from = side ? prev : doc, *other = side ? doc : prev;
    for (pos = 0; vs_feature_next(from, &pos, &key, &value);) {
      const char *was = vs_feature_get(other, key);
      if (side ? was != NULL : was && strcmp(was, value) == 0) continue;
      if (n == cap) {
        cap = cap ? 2 * cap : 16;
        found = vs_xrealloc(found, cap * sizeof(*found));
      }
      found[n++] = (struct move){key, side ? NULL : value};
    }
  }
  if (n) qsort(found, n, sizeof(*found), cmp_move);
  out->moves = vs_xcalloc(n + 1, sizeof(char *));
  out->key_len = vs_xcalloc(n + 1, sizeof(size_t));
  for (size_t c = 0; c < n; c++) {
    out->key_len[out->n] = strlen(found[c].key);
    out->moves[out->n++] =
        vs_xasprintf("%s\t%s", found[c].key, found[c].value ? found[c].value : VS_ABSENT);
  }
  free(found);
}

/* What prepare works out of one VM's two documents alone, kept between the prepares of views
 * that share documents (the fleet store keeps the rows it loaded: its whole view, round after
 * round). Valid for these very documents: the entry holds a reference to each, so that no
 * other document can take their address while it lives. */
struct cached {
  struct vs_feature *doc, *prev;
  struct moves moves;
  uint64_t *tokens, *prev_tokens; /* made under the cache's MOVING keys, or NULL */
  size_t n_tokens, n_prev;
  uint64_t used; /* the prepare that last used it */
};

struct vs_view_cache {
  struct vs_strmap *by_id;  /* VM id -> struct cached * */
  struct vs_strmap *moving; /* the moving keys the entries' tokens were made under */
  uint64_t prepares;
  /* The fleet's population as the last prepare counted it, and the document it counted of
   * each VM (id -> struct counted *): the next subtracts the documents that are no longer the
   * view's and adds those that are new, instead of counting every VM's settings again (a
   * quarter of the elected host's prepare at 2,000 settings a VM). REMOVED: the documents
   * subtracted since FLEET was last copied whole, which leaves behind what no document has
   * any more. */
  struct vs_pop *fleet;
  struct vs_strmap *counted;
  size_t removed;
};

struct counted {
  struct vs_feature *doc; /* a reference */
  uint64_t used;          /* the prepare that last found it in its view */
};

static void counted_free(void *p) {
  struct counted *c = p;
  if (c) vs_feature_free(c->doc);
  free(c);
}

static void moves_free(struct moves *m) {
  vs_strv_free(m->moves, m->n);
  free(m->key_len);
  *m = (struct moves){0};
}

static void cached_free(void *p) {
  struct cached *e = p;
  if (!e) return;
  vs_feature_free(e->doc);
  vs_feature_free(e->prev);
  moves_free(&e->moves);
  tokens_drop(e->tokens);
  tokens_drop(e->prev_tokens);
  free(e);
}

struct vs_view_cache *vs_view_cache_new(void) {
  struct vs_view_cache *c = vs_xcalloc(1, sizeof(*c));
  c->by_id = vs_strmap_new(cached_free);
  return c;
}

void vs_view_cache_free(struct vs_view_cache *c) {
  if (!c) return;
  vs_strmap_free(c->by_id);
  vs_strmap_free(c->moving);
  vs_pop_free(c->fleet);
  vs_strmap_free(c->counted);
  free(c);
}

static void forget_fleet(struct vs_view_cache *c) {
  vs_pop_free(c->fleet);
  vs_strmap_free(c->counted);
  c->fleet = NULL;
  c->counted = NULL;
  c->removed = 0;
}

struct change_job {
  const struct vs_view *v;
  struct counted **was; /* per VM: what was counted of it, when another document */
  struct vs_pop_change **change;
};

static void change_of(void *arg, size_t i) {
  const struct change_job *j = arg;
  if (j->was[i]) j->change[i] = vs_pop_change_of(j->was[i]->doc, j->v->vms[i].doc);
}

/* V's fleet population from CACHE's (counted by the prepare before, of the same view but for
 * what changed): the documents it counted that V no longer has subtracted, V's new ones
 * added, and the result copied without what the subtractions left behind (vs_pop_copy), so
 * that it is the population counted anew. NULL when CACHE has none (the first prepare, or a
 * document counted then changed since, which a subtraction finds: the caller counts whole and
 * keeps that, keep_fleet). */
static struct vs_pop *fleet_from_cache(const struct vs_view *v, struct vs_view_cache *cache) {
  if (!cache->fleet) return NULL;
  size_t cap = v->n ? v->n : 1;
  struct change_job job = {.v = v,
                           .was = vs_xcalloc(cap, sizeof(*job.was)),
                           .change = vs_xcalloc(cap, sizeof(*job.change))};
  for (size_t i = 0; i < v->n; i++) {
    struct counted *c = vs_strmap_get(cache->counted, vs_feature_id(v->vms[i].doc));
    if (c && c->doc != v->vms[i].doc) job.was[i] = c;
  }
  /* What each changed VM's documents differ in, on every CPU (the documents alone are read);
   * then the changes and the VMs new to the cache counted in the VMs' order, as one by one. */
  vs_parallel_for(v->n, 0, change_of, &job);
  bool failed = false;
  for (size_t i = 0; i < v->n && !failed; i++) {
    const char *id = vs_feature_id(v->vms[i].doc);
    struct counted *c = job.was[i] ? job.was[i] : vs_strmap_get(cache->counted, id);
    if (c && c->doc == v->vms[i].doc) {
      c->used = cache->prepares;
      continue;
    }
    if (c) { /* only what differs (one fails when the document changed since it was added) */
      if (vs_pop_apply_change(cache->fleet, job.change[i], NULL) < 0) {
        failed = true;
        break;
      }
      cache->removed++;
      vs_feature_free(c->doc);
    } else {
      c = vs_xcalloc(1, sizeof(*c));
      vs_strmap_put(cache->counted, id, c);
      vs_pop_add(cache->fleet, v->vms[i].doc);
    }
    c->doc = vs_feature_ref(v->vms[i].doc);
    c->used = cache->prepares;
  }
  for (size_t i = 0; i < v->n; i++)
    vs_pop_change_free(job.change[i]);
  free(job.change);
  free(job.was);
  if (failed) {
    forget_fleet(cache);
    return NULL;
  }
  char **gone = NULL;
  size_t n_gone = 0, pos = 0;
  const char *id;
  void *value;
  while (vs_strmap_next(cache->counted, &pos, &id, &value)) {
    struct counted *c = value;
    if (c->used == cache->prepares) continue;
    if (vs_pop_remove(cache->fleet, c->doc, NULL) < 0) {
      vs_strv_free(gone, n_gone);
      forget_fleet(cache);
      return NULL;
    }
    cache->removed++;
    vs_strv_add(&gone, &n_gone, id);
  }
  for (size_t k = 0; k < n_gone; k++)
    vs_strmap_remove(cache->counted, gone[k]);
  vs_strv_free(gone, n_gone);
  struct vs_pop *fleet = vs_pop_copy(cache->fleet);
  if (cache->removed > v->n) { /* what is left behind would outgrow what is counted */
    vs_pop_free(cache->fleet);
    cache->fleet = vs_pop_copy(fleet);
    cache->removed = 0;
  }
  return fleet;
}

/* Keeps in CACHE a copy of FLEET, V's population counted whole, for the next prepare. */
static void keep_fleet(const struct vs_view *v, struct vs_view_cache *cache,
                       const struct vs_pop *fleet) {
  forget_fleet(cache);
  cache->fleet = vs_pop_copy(fleet);
  cache->counted = vs_strmap_new(counted_free);
  for (size_t i = 0; i < v->n; i++) {
    struct counted *c = vs_xcalloc(1, sizeof(*c));
    c->doc = vs_feature_ref(v->vms[i].doc);
    c->used = cache->prepares;
    vs_strmap_put(cache->counted, vs_feature_id(c->doc), c);
  }
}

size_t vs_view_cache_count(const struct vs_view_cache *c) {
  return c ? vs_strmap_count(c->by_id) : 0;
}

static void find_moves_unless_kept(void *arg, size_t i) {
  const struct cached *const *hit = ((void **)arg)[2];
  if (!hit[i]) find_moves(arg, i);
}

/* Keys that at least VS_VIEW_ROLLING_VMS VMs changed to one same value since their previous
 * snapshots (a setting being rolled out, not each VM's drift), each mapped to that value.
 * PER_VM holds the moves of the VMs HIT has (kept), and gets the others'. */
static struct vs_strmap *rolling_keys(const struct vs_view *v, struct moves *per_vm,
                                      struct cached *const *hit, bool *prev_same) {
  /* Each VM's diff on its own (in parallel), then the moves counted in the VMs' order. */
  void *args[] = {(void *)v, per_vm, (void *)hit};
  vs_parallel_for(v->n, 0, find_moves_unless_kept, args);
  _cleanup_(vs_strmap_freep) struct vs_strmap *moves = vs_strmap_new(NULL);
  struct vs_strmap *rolling = vs_strmap_new(free);
  for (size_t i = 0; i < v->n; i++) {
    for (size_t c = 0; c < per_vm[i].n; c++) {
      const char *move = per_vm[i].moves[c];
      uintptr_t n = (uintptr_t)vs_strmap_get(moves, move) + 1;
      vs_strmap_put(moves, move, (void *)n);
      size_t len = per_vm[i].key_len[c];
      _cleanup_(vs_freep) char *key = vs_xstrndup(move, len);
      if (n >= VS_VIEW_ROLLING_VMS && !vs_strmap_has(rolling, key))
        vs_strmap_put(rolling, key, vs_xstrdup(move + len + 1));
    }
    prev_same[i] = v->vms[i].prev && per_vm[i].n == 0;
  }
  return rolling;
}

static void count_present(const char *value, uint32_t count, void *arg) {
  (void)count;
  *(size_t *)arg += strcmp(value, VS_ABSENT) != 0;
}

/* Keys whose values are moving through the fleet: those rolling out between snapshots, and
 * packages installed in more than one version (a rollout in progress, a VM lagging). */
static struct vs_strmap *moving_keys(const struct vs_view *v) {
  struct vs_strmap *moving = vs_strmap_new(NULL);
  size_t pos = 0;
  const char *key;
  void *value;
  while (vs_strmap_next(v->rolling, &pos, &key, &value))
    vs_strmap_put(moving, key, NULL);
  for (size_t i = 0; i < vs_pop_keys(v->fleet); i++) {
    const char *name = vs_pop_key_name(v->fleet, i);
    size_t versions = 0;
    if (strncmp(name, "pkg:", 4) != 0) continue;
    vs_pop_values(v->fleet, i, count_present, &versions);
    if (versions >= 2) vs_strmap_put(moving, name, NULL);
  }
  return moving;
}

/* At most this many keys changing between moving and not: the kept tokens are mended, key by
 * key; more, and every VM's tokens are made again. */
#define VS_VIEW_MEND_KEYS 64

struct tokens_job {
  struct vs_view *v;
  const struct vs_strmap *moving;
  const bool *prev_same;
  const struct moves *moves; /* per VM: what differs since its previous snapshot */
  struct cached *const *hit; /* kept entries, or NULL */
  bool kept; /* the entries' tokens can be taken, once the tokens of these keys are made again */
  struct mend {
    const char *key;
    bool was_moving; /* under which the kept tokens were made (else it is moving now) */
  } mend[VS_VIEW_MEND_KEYS];
  size_t n_mend;
};

/* Makes again the tokens (N, made from DOC's settings) of the keys J mends: each such key DOC
 * has, by its token as it was made and as it is now. A document's tokens hold one per key, so
 * one token equal to the token as it was made is replaced (of two equal ones, either: the same
 * set); no other key is hashed, and DOC's settings are not walked. */
static void mend_tokens(const struct tokens_job *j, const struct vs_feature *doc, uint64_t *t,
                        size_t n) {
  uint64_t was[VS_VIEW_MEND_KEYS], now[VS_VIEW_MEND_KEYS], filter = 0;
  size_t m = 0;
  for (size_t x = 0; x < j->n_mend; x++) {
    const char *value = vs_feature_get(doc, j->mend[x].key);
    if (!value) continue;
    was[m] = vs_token(j->mend[x].key, j->mend[x].was_moving ? "" : value);
    now[m] = vs_token(j->mend[x].key, j->mend[x].was_moving ? value : "");
    filter |= 1ULL << (was[m] >> 58);
    m++;
  }
  for (size_t k = 0; m && k < n; k++) {
    if (!(filter & 1ULL << (t[k] >> 58))) continue;
    for (size_t x = 0; x < m; x++)
      if (t[k] == was[x]) { /* once: another key's token may be equal (made to be) */
        t[k] = now[x];
        was[x] = was[--m];
        now[x] = now[m];
        break;
      }
  }
}

/* At most this many settings differing between a VM's snapshots, its previous snapshot's
 * tokens are its newest's with those keys' tokens replaced; more, and they are made whole. */
#define VS_VIEW_MOVES_PATCHED 64

/* The tokens of VM M's previous snapshot from its newest's (T, N) and the settings in which
 * the two differ (MV): the tokens of those keys as the previous snapshot holds them in place
 * of the newest's. Returns how many (a malloc'd *OUT), or SIZE_MAX when MV is too long. */
static size_t prev_tokens_from(const struct tokens_job *j, const struct vm *m,
                               const struct moves *mv, const uint64_t *t, size_t n,
                               uint64_t **out) {
  if (mv->n > VS_VIEW_MOVES_PATCHED) return SIZE_MAX;
  uint64_t drop[VS_VIEW_MOVES_PATCHED], add[VS_VIEW_MOVES_PATCHED], filter = 0;
  size_t n_drop = 0, n_add = 0;
  for (size_t c = 0; c < mv->n; c++) {
    _cleanup_(vs_freep) char *key = vs_xstrndup(mv->moves[c], mv->key_len[c]);
    const char *now = vs_feature_get(m->doc, key), *was = vs_feature_get(m->prev, key);
    bool moving = vs_strmap_has(j->moving, key);
    if (now) {
      drop[n_drop] = vs_token(key, moving ? "" : now);
      filter |= 1ULL << (drop[n_drop++] >> 58);
    }
    if (was) add[n_add++] = vs_token(key, moving ? "" : was);
  }
  uint64_t *p = tokens_new(n + n_add);
  size_t k = 0;
  for (size_t x = 0; x < n; x++) {
    bool dropped = false;
    for (size_t d = 0; (filter & 1ULL << (t[x] >> 58)) && d < n_drop && !dropped; d++)
      if (t[x] == drop[d]) {
        drop[d] = drop[--n_drop]; /* each once: a document holds one token a key */
        dropped = true;
      }
    if (!dropped) p[k++] = t[x];
  }
  memcpy(p + k, add, n_add * sizeof(uint64_t));
  *out = p;
  return k + n_add;
}

/* The VMs' tokens for the role analysis: a key whose values are moving through the fleet
 * counts by its presence alone, so that half the fleet upgraded is not two roles, and a VM
 * that upgraded did not change role or become anomalous. A kept entry's tokens are mended in
 * place (its own: each VM's entry is another; copied first while a view holds them) and
 * shared with the view. */
static void tokens_of(void *arg, size_t i) {
  const struct tokens_job *j = arg;
  struct vs_view *v = j->v;
  struct vm *m = &v->vms[i];
  struct vs_vm_tokens *t = &v->tokens[i];
  struct cached *e = j->hit ? j->hit[i] : NULL;
  *t = (struct vs_vm_tokens){.id = vs_feature_id(m->doc), .name = vs_feature_name(m->doc)};
  bool kept = e && j->kept && e->tokens;
  if (kept) {
    if (j->n_mend) { /* the entry's own, changed where another holds them */
      /* Previous snapshot's tokens that are its newest's (the same settings) are mended once
       * and stay one: the entry's second hold would otherwise make every such VM's a copy. */
      bool one = e->prev_tokens == e->tokens;
      if (one) tokens_drop(e->prev_tokens); /* not the last hold: E->TOKENS is one */
      tokens_unshare(&e->tokens, e->n_tokens);
      mend_tokens(j, m->doc, e->tokens, e->n_tokens);
      if (one) {
        e->prev_tokens = tokens_share(e->tokens);
      } else if (e->prev_tokens) {
        tokens_unshare(&e->prev_tokens, e->n_prev);
        mend_tokens(j, m->prev, e->prev_tokens, e->n_prev);
      }
    }
    m->tokens = tokens_share(e->tokens);
    t->n = e->n_tokens;
  } else {
    t->n = vs_doc_tokens_by(m->doc, j->moving, &m->tokens);
    m->tokens = tokens_adopt(m->tokens, t->n);
  }
  if (m->prev && j->prev_same[i]) {           /* the same settings as its newest: the same tokens */
    m->prev_tokens = tokens_share(m->tokens); /* (their order counts for nothing) */
    t->n_prev = t->n;
  } else if (m->prev && kept && e->prev_tokens) {
    m->prev_tokens = tokens_share(e->prev_tokens);
    t->n_prev = e->n_prev;
  } else if (m->prev) {
    t->n_prev = prev_tokens_from(j, m, &j->moves[i], m->tokens, t->n, &m->prev_tokens);
    if (t->n_prev == SIZE_MAX) {
      t->n_prev = vs_doc_tokens_by(m->prev, j->moving, &m->prev_tokens);
      m->prev_tokens = tokens_adopt(m->prev_tokens, t->n_prev);
    }
  }
  t->tokens = m->tokens;
  t->prev_tokens = m->prev_tokens;
  if (v->opts.labels) {
    const char *l = t->name ? vs_strmap_get(v->opts.labels, t->name) : NULL;
    t->label = l ? l : (t->id ? vs_strmap_get(v->opts.labels, t->id) : NULL);
  }
}

/* Into J: whether tokens made under the moving keys WAS can be taken for MOVING, and the keys
 * whose tokens must be made again: those moving now and not then, or then and not now. */
static void plan_mend(struct tokens_job *j, const struct vs_strmap *was,
                      const struct vs_strmap *moving) {
  j->kept = was != NULL;
  for (int side = 0; side < 2 && j->kept; side++) {
    const struct vs_strmap *from = side ? moving : was, *other = side ? was : moving;
    size_t pos = 0;
    const char *key;
    void *value;
    while (j->kept && vs_strmap_next(from, &pos, &key, &value)) {
      if (vs_strmap_has(other, key)) continue;
      if (j->n_mend == VS_VIEW_MEND_KEYS)
        j->kept = false;
      else
        j->mend[j->n_mend++] = (struct mend){key, !side};
    }
  }
}

/* Returns whether every kept entry's tokens were taken (mended in place where they had to). */
static bool make_tokens(struct vs_view *v, const bool *prev_same, const struct moves *moves,
                        struct cached *const *hit, struct vs_view_cache *cache) {
  const struct vs_strmap *moving = v->moving = moving_keys(v);
  v->tokens = vs_xcalloc(v->n ? v->n : 1, sizeof(*v->tokens));
  struct tokens_job job = {
      .v = v, .moving = moving, .prev_same = prev_same, .moves = moves, .hit = hit};
  if (cache) plan_mend(&job, cache->moving, moving);
  vs_parallel_for(v->n, 0, tokens_of, &job); /* each VM's own: read-only maps, its own slots */
  if (!cache) return false;
  vs_strmap_free(cache->moving);
  cache->moving = vs_strmap_new(NULL); /* its own: the view may go first */
  size_t pos = 0;
  const char *key;
  void *value;
  while (vs_strmap_next(moving, &pos, &key, &value))
    vs_strmap_put(cache->moving, key, NULL);
  return job.kept;
}

/* Entries replaced or gone: freed on every CPU (a document's references are counted
 * atomically, and each entry is another VM's), their thousands of settings each. */
static void free_entry(void *arg, size_t i) {
  cached_free(((struct cached **)arg)[i]);
}

/* Keeps in CACHE what this prepare worked out of each VM's documents (PER_VM's moves, which
 * it takes, and the tokens), for the next; forgets the VMs this view does not have as they
 * were. */
static void keep(struct vs_view *v, struct vs_view_cache *cache, struct cached **hit,
                 struct moves *per_vm, bool kept_tokens) {
  struct cached **dead = NULL;
  size_t n_dead = 0, cap_dead = 0;
  for (size_t i = 0; i < v->n; i++) {
    struct vm *m = &v->vms[i];
    struct cached *e = hit[i];
    if (!e) {
      e = vs_xcalloc(1, sizeof(*e));
      e->doc = vs_feature_ref(m->doc);
      e->prev = vs_feature_ref(m->prev);
      e->moves = per_vm[i];
      per_vm[i] = (struct moves){0};
      struct cached *was = vs_strmap_take(cache->by_id, vs_feature_id(m->doc));
      if (was) {
        if (n_dead == cap_dead)
          dead = vs_xrealloc(dead, (cap_dead = cap_dead ? 2 * cap_dead : 64) * sizeof(*dead));
        dead[n_dead++] = was;
      }
      vs_strmap_put(cache->by_id, vs_feature_id(m->doc), e);
    }
    if (!hit[i] || !kept_tokens || !e->tokens) { /* made this time */
      tokens_drop(e->tokens);
      tokens_drop(e->prev_tokens);
      e->tokens = tokens_share(m->tokens);
      e->n_tokens = v->tokens[i].n;
      e->prev_tokens = tokens_share(m->prev_tokens);
      e->n_prev = v->tokens[i].n_prev;
    }
    e->used = cache->prepares;
  }
  char **gone = NULL;
  size_t n_gone = 0, pos = 0;
  const char *id;
  void *value;
  while (vs_strmap_next(cache->by_id, &pos, &id, &value))
    if (((struct cached *)value)->used != cache->prepares) vs_strv_add(&gone, &n_gone, id);
  for (size_t k = 0; k < n_gone; k++) {
    if (n_dead == cap_dead)
      dead = vs_xrealloc(dead, (cap_dead = cap_dead ? 2 * cap_dead : 64) * sizeof(*dead));
    dead[n_dead++] = vs_strmap_take(cache->by_id, gone[k]);
  }
  vs_strv_free(gone, n_gone);
  vs_parallel_for(n_dead, 0, free_entry, dead);
  free(dead);
}

void vs_view_prepare(struct vs_view *v, const struct vs_view_opts *opts) {
  vs_view_prepare_cached(v, opts, NULL);
}

void vs_view_prepare_cached(struct vs_view *v, const struct vs_view_opts *opts,
                            struct vs_view_cache *cache) {
  if (v->prepared) return;
  v->prepared = true;
  v->opts = opts ? *opts : (struct vs_view_opts){0};
  if (!v->opts.min_role_peers) v->opts.min_role_peers = VS_VIEW_MIN_ROLE_PEERS;
  double t0 = vs_now_monotonic();
  if (cache) cache->prepares++;
  v->fleet = cache ? fleet_from_cache(v, cache) : NULL;
  if (!v->fleet) {
    struct vs_pop **fleet = count_pops(v, 1, fleet_slot, NULL);
    v->fleet = fleet[0] ? fleet[0] : vs_pop_new();
    free(fleet);
    if (cache) keep_fleet(v, cache, v->fleet);
  }
  vs_pop_prepare(v->fleet);
  double t1 = vs_now_monotonic();
  size_t cap = v->n ? v->n : 1;
  _cleanup_(vs_freep) bool *prev_same = vs_xcalloc(cap, sizeof(bool));
  _cleanup_(vs_freep) struct cached **hit = vs_xcalloc(cap, sizeof(*hit));
  struct moves *per_vm = vs_xcalloc(cap, sizeof(*per_vm));
  for (size_t i = 0; cache && i < v->n; i++) {
    struct cached *e = vs_strmap_get(cache->by_id, vs_feature_id(v->vms[i].doc));
    if (e && e->doc == v->vms[i].doc && e->prev == v->vms[i].prev) {
      hit[i] = e;
      per_vm[i] = e->moves; /* borrowed */
    }
  }
  v->rolling = rolling_keys(v, per_vm, hit, prev_same);
  double t2 = vs_now_monotonic();
  bool kept_tokens = make_tokens(v, prev_same, per_vm, hit, cache);
  if (cache) keep(v, cache, hit, per_vm, kept_tokens);
  for (size_t i = 0; i < v->n; i++)
    if (!hit[i]) moves_free(&per_vm[i]);
  free(per_vm);
  double t3 = vs_now_monotonic();
  v->analysis = vs_analyze(v->tokens, v->n, &v->opts.roles);
  double t4 = vs_now_monotonic();
  build_groups(v);
  v->times = (struct vs_view_times){.population = t1 - t0,
                                    .rolling = t2 - t1,
                                    .tokens = t3 - t2,
                                    .roles = t4 - t3,
                                    .groups = vs_now_monotonic() - t4};
  /* A team's tweak: 2-4 VMs, or up to a tenth of a large fleet. */
  v->group_max = v->n / 10 > VS_VIEW_GROUP_MIN ? (uint32_t)(v->n / 10) : VS_VIEW_GROUP_MIN;
}

size_t vs_view_count(const struct vs_view *v) {
  return v->n;
}

const struct vs_feature *vs_view_doc(const struct vs_view *v, size_t i) {
  return v->vms[i].doc;
}

const struct vs_feature *vs_view_prev(const struct vs_view *v, size_t i) {
  return v->vms[i].prev;
}

const struct vs_analysis *vs_view_analysis(const struct vs_view *v) {
  return v->analysis;
}

const struct vs_vm_tokens *vs_view_tokens(const struct vs_view *v) {
  return v->tokens;
}

const struct vs_strmap *vs_view_moving(const struct vs_view *v) {
  return v->moving;
}

const struct vs_pop *vs_view_fleet(const struct vs_view *v) {
  return v->fleet;
}

bool vs_view_by_role(const struct vs_view *v, size_t i) {
  return v->opts.peers == VS_PEERS_ROLE && !vs_view_unique(v, i);
}

bool vs_view_unique(const struct vs_view *v, size_t i) {
  return v->unique[i];
}

const struct vs_strmap *vs_view_rolling(const struct vs_view *v) {
  return v->rolling;
}

uint32_t vs_view_group_max(const struct vs_view *v) {
  return v->group_max;
}

size_t vs_view_group_count(const struct vs_view *v) {
  return v->n_groups;
}

size_t vs_view_group(const struct vs_view *v, size_t i) {
  return v->group[i];
}

const struct vs_pop *vs_view_group_pop(const struct vs_view *v, size_t group) {
  return v->kind_pops ? v->kind_pops[group] : NULL;
}

void vs_view_prepare_times(const struct vs_view *v, struct vs_view_times *out) {
  *out = v->times;
}

size_t vs_view_fleet_vms(const struct vs_view *v) {
  return vs_pop_docs(v->fleet);
}

void vs_view_role(const struct vs_view *v, size_t i, struct vs_view_role *out) {
  if (v->from_context) {
    *out = v->roles[i];
    return;
  }
  const struct vs_analysis *a = v->analysis;
  size_t role = vs_analysis_role(a, i), m = vs_analysis_medoid(a, role);
  *out = (struct vs_view_role){.number = role,
                               .medoid_id = v->tokens[m].id,
                               .medoid_name = v->tokens[m].name,
                               .size = vs_analysis_role_size(a, role),
                               .anomaly = vs_analysis_anomaly(a, i),
                               .similarity = vs_analysis_similarity(a, i)};
  out->label = vs_analysis_label(a, i, &out->label_p);
  if (!out->label) out->label_p = -1;
}

struct vs_drift *vs_view_rank(const struct vs_view *v, size_t i, const struct vs_drift_opts *o,
                              struct vs_err *err) {
  size_t role = v->group[i];
  bool by_role = vs_view_by_role(v, i);
  struct vs_drift_fleet fleet = {.fleet = v->fleet,
                                 .roles = (const struct vs_pop *const *)v->kind_pops,
                                 .role_names = v->role_names,
                                 .n_roles = v->from_context ? 0 : v->n_groups,
                                 .own_role = v->from_context ? v->group_ids[role] : role,
                                 .group_max = v->group_max,
                                 .rolling = v->rolling,
                                 .unique = vs_view_unique(v, i),
                                 .role_of = v->from_context ? vs_view_context_role_of : NULL,
                                 .role_of_arg = v};
  struct vs_drift_opts opts = o ? *o : (struct vs_drift_opts){0};
  opts.fleet = &fleet;
  const struct vs_pop *peers = by_role && v->role_pops[role] ? v->role_pops[role] : v->fleet;
  return vs_drift_rank(peers, v->vms[i].doc, &opts, err);
}

bool vs_view_same_role(const struct vs_view *v, size_t i, const char *id) {
  if (v->from_context) return vs_view_context_same_role(v, i, id);
  long k = vs_view_find_id(v, id);
  return k >= 0 && vs_analysis_role(v->analysis, (size_t)k) == vs_analysis_role(v->analysis, i);
}
