/* majority.c: see majority.h. */
#include "majority.h"

#include "strmap.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct vs_majorities {
  struct vs_strmap *values; /* key -> its last majority value (owned) */
  bool primed;              /* a population was seen: a key new since then was absent */
};

struct vs_majorities *vs_majorities_new(void) {
  struct vs_majorities *m = vs_xcalloc(1, sizeof(*m));
  m->values = vs_strmap_new(free);
  return m;
}

void vs_majorities_free(struct vs_majorities *m) {
  if (!m) return;
  vs_strmap_free(m->values);
  free(m);
}

void vs_majorities_freep(struct vs_majorities **m) {
  vs_majorities_free(*m);
}

/* Records VALUE as KEY's majority; 1 (after telling CHANGED) when it moved from another. */
static size_t note(struct vs_majorities *m, const char *key, const char *value, uint32_t support,
                   size_t docs, void (*changed)(const struct vs_majority_change *c, void *arg),
                   void *arg) {
  const char *before = vs_strmap_get(m->values, key);
  if (!before && m->primed) before = VS_ABSENT;
  if (before && strcmp(before, value) == 0) return 0;
  if (before && changed) {
    struct vs_majority_change c = {key, before, value, support, (uint32_t)docs};
    changed(&c, arg);
  }
  /* KEY may be the map's own copy (the sweep over absent keys): put copies it first. */
  _cleanup_(vs_freep) char *key_copy = vs_xstrdup(key);
  bool moved = before != NULL;
  vs_strmap_put(m->values, key_copy, vs_xstrdup(value));
  return moved ? 1 : 0;
}

size_t vs_majorities_update(struct vs_majorities *m, const struct vs_pop *pop,
                            void (*changed)(const struct vs_majority_change *c, void *arg),
                            void *arg) {
  size_t docs = vs_pop_docs(pop), n_changed = 0;
  if (docs < VS_MAJORITY_MIN_DOCS || !vs_pop_is_prepared(pop)) return 0;
  for (size_t i = 0; i < vs_pop_keys(pop); i++) {
    struct vs_pop_stats st;
    vs_pop_key_stats(pop, i, &st);
    if (!st.top_value[0] || (size_t)st.top_count[0] * 2 <= docs) continue;
    n_changed +=
        note(m, vs_pop_key_name(pop, i), st.top_value[0], st.top_count[0], docs, changed, arg);
  }
  /* A key no document has any more is held by none: its majority is absence. */
  size_t n_keys = 0;
  _cleanup_(vs_freep) const char **keys = vs_strmap_sorted_keys(m->values, &n_keys);
  for (size_t i = 0; i < n_keys; i++)
    if (vs_pop_key_index(pop, keys[i]) < 0)
      n_changed += note(m, keys[i], VS_ABSENT, (uint32_t)docs, docs, changed, arg);
  m->primed = true;
  return n_changed;
}

const char *vs_majorities_get(const struct vs_majorities *m, const char *key) {
  return vs_strmap_get(m->values, key);
}
