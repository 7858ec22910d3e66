/* The fleet as one view: VMs by identity, their roles and peer groups (fleetview.h). */
#include "fleetview.h"

#include "pool.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct vm {
  struct vs_feature *doc, *prev; /* newest, and the one before (or NULL) */
  uint64_t *tokens, *prev_tokens;
};

struct vs_view {
  struct vm *vms;
  size_t n, cap;
  struct vs_strmap *by_id; /* id -> index + 1 */
  char **errors;
  size_t n_errors;
  /* after prepare */
  bool prepared;
  struct vs_view_opts opts;
  struct vs_vm_tokens *tokens;
  struct vs_analysis *analysis;
  struct vs_pop *fleet;
  struct vs_pop **role_pops; /* per role; NULL for a role too small to be a peer group */
};

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
    free(v->vms[i].tokens);
    free(v->vms[i].prev_tokens);
  }
  free(v->vms);
  vs_strmap_free(v->by_id);
  vs_strv_free(v->errors, v->n_errors);
  for (size_t r = 0; v->analysis && r < vs_analysis_role_count(v->analysis); r++)
    vs_pop_free(v->role_pops[r]);
  free(v->role_pops);
  vs_analysis_free(v->analysis);
  vs_pop_free(v->fleet);
  free(v->tokens);
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

/* Whether DIR itself holds a .json document (a VM's directory of a pool, not the pool). */
static bool holds_documents(const char *dir) {
  DIR *d = opendir(dir);
  bool found = false;
  for (struct dirent *e; d && !found && (e = readdir(d));)
    found = e->d_name[0] != '.' && vs_has_suffix(e->d_name, ".json") &&
            strcmp(e->d_name, "analytics.json") != 0;
  if (d) closedir(d);
  return found;
}

bool vs_view_is_pool(const char *dir) {
  if (vs_pool_is_guest_tree(dir)) return false;
  _cleanup_(vs_freep) char *analytics = vs_xasprintf("%s/analytics.json", dir);
  if (access(analytics, F_OK) == 0) return true;
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

void vs_view_prepare(struct vs_view *v, const struct vs_view_opts *opts) {
  if (v->prepared) return;
  v->prepared = true;
  v->opts = opts ? *opts : (struct vs_view_opts){0};
  if (!v->opts.min_role_peers) v->opts.min_role_peers = VS_VIEW_MIN_ROLE_PEERS;
  v->fleet = vs_pop_new();
  v->tokens = vs_xcalloc(v->n ? v->n : 1, sizeof(*v->tokens));
  for (size_t i = 0; i < v->n; i++) {
    struct vm *m = &v->vms[i];
    vs_pop_add(v->fleet, m->doc);
    struct vs_vm_tokens *t = &v->tokens[i];
    *t = (struct vs_vm_tokens){.id = vs_feature_id(m->doc), .name = vs_feature_name(m->doc)};
    t->n = vs_doc_tokens(m->doc, &m->tokens);
    t->tokens = m->tokens;
    if (m->prev) {
      t->n_prev = vs_doc_tokens(m->prev, &m->prev_tokens);
      t->prev_tokens = m->prev_tokens;
    }
    if (v->opts.labels) {
      const char *l = t->name ? vs_strmap_get(v->opts.labels, t->name) : NULL;
      t->label = l ? l : (t->id ? vs_strmap_get(v->opts.labels, t->id) : NULL);
    }
  }
  vs_pop_prepare(v->fleet);
  v->analysis = vs_analyze(v->tokens, v->n, &v->opts.roles);
  size_t nr = vs_analysis_role_count(v->analysis);
  v->role_pops = vs_xcalloc(nr ? nr : 1, sizeof(*v->role_pops));
  if (v->opts.peers != VS_PEERS_ROLE) return;
  for (size_t i = 0; i < v->n; i++) {
    size_t r = vs_analysis_role(v->analysis, i);
    if (vs_analysis_role_size(v->analysis, r) <= v->opts.min_role_peers) continue;
    if (!v->role_pops[r]) v->role_pops[r] = vs_pop_new();
    vs_pop_add(v->role_pops[r], v->vms[i].doc);
  }
  for (size_t r = 0; r < nr; r++)
    if (v->role_pops[r]) vs_pop_prepare(v->role_pops[r]);
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

const struct vs_pop *vs_view_fleet(const struct vs_view *v) {
  return v->fleet;
}

bool vs_view_by_role(const struct vs_view *v, size_t i) {
  return v->role_pops && v->role_pops[vs_analysis_role(v->analysis, i)] != NULL;
}

struct vs_drift *vs_view_rank(const struct vs_view *v, size_t i, const struct vs_drift_opts *o,
                              struct vs_err *err) {
  const struct vs_pop *peers =
      vs_view_by_role(v, i) ? v->role_pops[vs_analysis_role(v->analysis, i)] : v->fleet;
  return vs_drift_rank(peers, v->vms[i].doc, o, err);
}
