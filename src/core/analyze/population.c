#include "population.h"

#include "strmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One distinct value of one key. VALUE points into the population's string table. */
struct value_slot {
  uint64_t hash; /* 0 with VALUE NULL: an empty slot */
  const char *value;
  uint32_t count;    /* documents that set the key to this value */
  uint32_t declared; /* documents that declare this value the key's default */
};

struct pop_key {
  const char *name;
  uint64_t hash;
  uint32_t present; /* documents that set the key */
  uint32_t live;    /* slots with count > 0 */
  uint32_t cap, used;
  uint32_t singles; /* a summary's values held by one document each, counted but not named */
  struct value_slot *slots;
  /* Filled by vs_pop_prepare(). */
  const struct value_slot *dflt;
  struct vs_pop_stats stats;
};

/* A set of strings stored once each, found by hash. */
struct interned {
  uint64_t hash;
  char *s;
};

/* For a key of many values (TAIL_MIN_VALUES), the documents whose folded value is held by at
 * most C documents, for each C up to TAIL_MAX: vs_pop_at_most for a value few documents hold
 * (a hostname's, a machine id's: the key's tail) without walking every value. Kept apart from
 * the keys, in key order, as a close group's population of a few VMs has none. */
#define TAIL_MIN_VALUES 64
#define TAIL_MAX 8
struct tail {
  size_t key;
  uint32_t docs[TAIL_MAX + 1];
};

struct vs_pop {
  uint64_t k0, k1;
  struct tail *tails; /* filled by vs_pop_prepare() */
  size_t n_tails, cap_tails;
  struct pop_key *keys;
  size_t n_keys, cap_keys;
  uint32_t *key_index; /* open addressing: 1 + index into KEYS, 0 empty */
  size_t cap_index;
  struct interned *strings;
  size_t n_strings, cap_strings;
  struct vs_strmap *members; /* id -> count, stored in the pointer */
  size_t docs, pairs;
  uint64_t generation, prepared_generation;
  bool summary; /* made by vs_pop_from_summary: read-only */
};

struct vs_pop *vs_pop_new(void) {
  struct vs_pop *pop = vs_xcalloc(1, sizeof(*pop));
  vs_hash_seed(&pop->k0, &pop->k1);
  pop->cap_index = 64;
  pop->key_index = vs_xcalloc(pop->cap_index, sizeof(uint32_t));
  pop->cap_strings = 64;
  pop->strings = vs_xcalloc(pop->cap_strings, sizeof(struct interned));
  pop->members = vs_strmap_new(NULL);
  pop->generation = 1;
  return pop;
}

void vs_pop_free(struct vs_pop *pop) {
  if (!pop) return;
  for (size_t i = 0; i < pop->n_keys; i++)
    free(pop->keys[i].slots);
  free(pop->keys);
  free(pop->key_index);
  for (size_t i = 0; i < pop->cap_strings; i++)
    free(pop->strings[i].s);
  free(pop->strings);
  vs_strmap_free(pop->members);
  free(pop->tails);
  free(pop);
}

void vs_pop_freep(struct vs_pop **pop) {
  vs_pop_free(*pop);
}

static uint64_t hash_of(const struct vs_pop *pop, const char *s) {
  uint64_t h = vs_siphash24(s, strlen(s), pop->k0, pop->k1);
  return h ? h : 1; /* 0 marks an empty slot */
}

static const char *intern(struct vs_pop *pop, const char *s, uint64_t hash) {
  if (2 * (pop->n_strings + 1) > pop->cap_strings) {
    size_t cap = 2 * pop->cap_strings;
    struct interned *grown = vs_xcalloc(cap, sizeof(*grown));
    for (size_t i = 0; i < pop->cap_strings; i++) {
      if (!pop->strings[i].s) continue;
      size_t j = pop->strings[i].hash & (cap - 1);
      while (grown[j].s)
        j = (j + 1) & (cap - 1);
      grown[j] = pop->strings[i];
    }
    free(pop->strings);
    pop->strings = grown;
    pop->cap_strings = cap;
  }
  size_t j = hash & (pop->cap_strings - 1);
  for (; pop->strings[j].s; j = (j + 1) & (pop->cap_strings - 1))
    if (pop->strings[j].hash == hash && strcmp(pop->strings[j].s, s) == 0) return pop->strings[j].s;
  pop->strings[j] = (struct interned){hash, vs_xstrdup(s)};
  pop->n_strings++;
  return pop->strings[j].s;
}

static struct pop_key *find_key(const struct vs_pop *pop, const char *name, uint64_t hash) {
  for (size_t j = hash & (pop->cap_index - 1); pop->key_index[j];
       j = (j + 1) & (pop->cap_index - 1)) {
    struct pop_key *k = &pop->keys[pop->key_index[j] - 1];
    if (k->hash == hash && strcmp(k->name, name) == 0) return k;
  }
  return NULL;
}

static void index_key(struct vs_pop *pop, size_t i) {
  size_t j = pop->keys[i].hash & (pop->cap_index - 1);
  while (pop->key_index[j])
    j = (j + 1) & (pop->cap_index - 1);
  pop->key_index[j] = (uint32_t)(i + 1);
}

static struct pop_key *get_key(struct vs_pop *pop, const char *name) {
  uint64_t hash = hash_of(pop, name);
  struct pop_key *k = find_key(pop, name, hash);
  if (k) return k;
  if (pop->n_keys == pop->cap_keys) {
    pop->cap_keys = pop->cap_keys ? 2 * pop->cap_keys : 256;
    pop->keys = vs_xrealloc(pop->keys, pop->cap_keys * sizeof(struct pop_key));
  }
  if (2 * (pop->n_keys + 1) > pop->cap_index) {
    free(pop->key_index);
    pop->cap_index *= 2;
    pop->key_index = vs_xcalloc(pop->cap_index, sizeof(uint32_t));
    for (size_t i = 0; i < pop->n_keys; i++)
      index_key(pop, i);
  }
  k = &pop->keys[pop->n_keys];
  *k = (struct pop_key){.name = intern(pop, name, hash), .hash = hash, .cap = 4};
  k->slots = vs_xcalloc(k->cap, sizeof(struct value_slot));
  index_key(pop, pop->n_keys++);
  return k;
}

static struct value_slot *find_value(const struct pop_key *k, const char *value, uint64_t hash) {
  for (size_t j = hash & (k->cap - 1); k->slots[j].value; j = (j + 1) & (k->cap - 1))
    if (k->slots[j].hash == hash && strcmp(k->slots[j].value, value) == 0) return &k->slots[j];
  return NULL;
}

static struct value_slot *get_value(struct vs_pop *pop, struct pop_key *k, const char *value,
                                    uint64_t hash) {
  struct value_slot *s = find_value(k, value, hash);
  if (s) return s;
  if (2 * (k->used + 1) > k->cap) {
    uint32_t cap = 2 * k->cap;
    struct value_slot *grown = vs_xcalloc(cap, sizeof(*grown));
    for (uint32_t i = 0; i < k->cap; i++) {
      if (!k->slots[i].value) continue;
      size_t j = k->slots[i].hash & (cap - 1);
      while (grown[j].value)
        j = (j + 1) & (cap - 1);
      grown[j] = k->slots[i];
    }
    free(k->slots);
    k->slots = grown;
    k->cap = cap;
  }
  size_t j = hash & (k->cap - 1);
  while (k->slots[j].value)
    j = (j + 1) & (k->cap - 1);
  k->slots[j] = (struct value_slot){.hash = hash, .value = intern(pop, value, hash)};
  k->used++;
  return &k->slots[j];
}

/* Adds DELTA (+1 or -1, or a count when merging) to KEY = VALUE. */
static void count_value(struct vs_pop *pop, struct pop_key *k, struct value_slot *s,
                        int64_t delta) {
  uint32_t before = s->count;
  s->count = (uint32_t)((int64_t)s->count + delta);
  k->present = (uint32_t)((int64_t)k->present + delta);
  if (before == 0 && s->count > 0) {
    k->live++;
    pop->pairs++;
  } else if (before > 0 && s->count == 0) {
    k->live--;
    pop->pairs--;
  }
}

static void add_member(struct vs_pop *pop, const char *id, int64_t delta) {
  uintptr_t n = (uintptr_t)vs_strmap_get(pop->members, id);
  n = (uintptr_t)((int64_t)n + delta);
  if (n)
    vs_strmap_put(pop->members, id, (void *)n);
  else
    vs_strmap_remove(pop->members, id);
}

void vs_pop_add(struct vs_pop *pop, const struct vs_feature *doc) {
  size_t pos = 0;
  const char *key, *value;
  while (vs_feature_next(doc, &pos, &key, &value)) {
    struct pop_key *k = get_key(pop, key);
    count_value(pop, k, get_value(pop, k, value, hash_of(pop, value)), 1);
  }
  pos = 0;
  while (vs_feature_next_default(doc, &pos, &key, &value)) {
    struct pop_key *k = get_key(pop, key);
    get_value(pop, k, value, hash_of(pop, value))->declared++;
  }
  add_member(pop, vs_feature_id(doc), 1);
  pop->docs++;
  pop->generation++;
}

int vs_pop_remove(struct vs_pop *pop, const struct vs_feature *doc, struct vs_err *err) {
  if (pop->summary)
    return vs_err_set(err, EINVAL, "document \"%s\": a population's summary cannot change",
                      vs_feature_id(doc));
  if (!vs_strmap_get(pop->members, vs_feature_id(doc)))
    return vs_err_set(err, ENOENT, "document \"%s\" (%s) is not in the population",
                      vs_feature_id(doc), vs_feature_name(doc));
  size_t pos = 0;
  const char *key, *value;
  /* Check everything first, so that a wrong document changes nothing. */
  while (vs_feature_next(doc, &pos, &key, &value)) {
    uint64_t kh = hash_of(pop, key);
    struct pop_key *k = find_key(pop, key, kh);
    struct value_slot *s = k ? find_value(k, value, hash_of(pop, value)) : NULL;
    if (!s || s->count == 0)
      return vs_err_set(err, EINVAL,
                        "document \"%s\": %s = \"%s\" was never counted; it is not the document "
                        "that was added",
                        vs_feature_id(doc), key, value);
  }
  pos = 0;
  while (vs_feature_next_default(doc, &pos, &key, &value)) {
    struct pop_key *k = find_key(pop, key, hash_of(pop, key));
    struct value_slot *s = k ? find_value(k, value, hash_of(pop, value)) : NULL;
    if (!s || s->declared == 0)
      return vs_err_set(err, EINVAL,
                        "document \"%s\": the default %s = \"%s\" was never counted; it is not "
                        "the document that was added",
                        vs_feature_id(doc), key, value);
  }
  pos = 0;
  while (vs_feature_next(doc, &pos, &key, &value)) {
    struct pop_key *k = find_key(pop, key, hash_of(pop, key));
    count_value(pop, k, find_value(k, value, hash_of(pop, value)), -1);
  }
  pos = 0;
  while (vs_feature_next_default(doc, &pos, &key, &value)) {
    struct pop_key *k = find_key(pop, key, hash_of(pop, key));
    find_value(k, value, hash_of(pop, value))->declared--;
  }
  add_member(pop, vs_feature_id(doc), -1);
  pop->docs--;
  pop->generation++;
  return 0;
}

/* Whether DOC holds KEY = VALUE (DEFAULTS: declares it as KEY's default). */
static bool holds(const struct vs_feature *doc, const char *key, const char *value, bool defaults) {
  const char *v = defaults ? vs_feature_default(doc, key) : vs_feature_get(doc, key);
  return v && strcmp(v, value) == 0;
}

/* What replacing OLD by DOC (one VM's documents) changes: the pairs of each that the other
 * does not hold, settings and declared defaults, in the order the documents list them. */
struct vs_pop_change {
  const struct vs_feature *old, *doc;
  struct pairs {
    const char **key, **value;
    size_t n, cap;
  } gone, added, gone_defaults, added_defaults;
};

static void pairs_add(struct pairs *p, const char *key, const char *value) {
  if (p->n == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 16;
    p->key = vs_xrealloc(p->key, p->cap * sizeof(char *));
    p->value = vs_xrealloc(p->value, p->cap * sizeof(char *));
  }
  p->key[p->n] = key;
  p->value[p->n++] = value;
}

/* Into OUT, the pairs of FROM that OTHER does not hold (DEFAULTS: declared defaults). */
static void unshared(const struct vs_feature *from, const struct vs_feature *other, bool defaults,
                     struct pairs *out) {
  size_t pos = 0;
  const char *key, *value;
  while (defaults ? vs_feature_next_default(from, &pos, &key, &value)
                  : vs_feature_next(from, &pos, &key, &value))
    if (!holds(other, key, value, defaults)) pairs_add(out, key, value);
}

struct vs_pop_change *vs_pop_change_of(const struct vs_feature *old, const struct vs_feature *doc) {
  struct vs_pop_change *c = vs_xcalloc(1, sizeof(*c));
  c->old = old;
  c->doc = doc;
  if (strcmp(vs_feature_id(old), vs_feature_id(doc)) != 0) return c; /* removed, then added */
  unshared(old, doc, false, &c->gone);
  unshared(doc, old, false, &c->added);
  unshared(old, doc, true, &c->gone_defaults);
  unshared(doc, old, true, &c->added_defaults);
  return c;
}

static void pairs_clear(struct pairs *p) {
  free(p->key);
  free(p->value);
}

void vs_pop_change_free(struct vs_pop_change *c) {
  if (!c) return;
  pairs_clear(&c->gone);
  pairs_clear(&c->added);
  pairs_clear(&c->gone_defaults);
  pairs_clear(&c->added_defaults);
  free(c);
}

/* Whether each pair of P was counted (declared) in POP. */
static bool counted_all(const struct vs_pop *pop, const struct pairs *p, bool defaults) {
  for (size_t x = 0; x < p->n; x++) {
    const struct pop_key *k = find_key(pop, p->key[x], hash_of(pop, p->key[x]));
    const struct value_slot *s = k ? find_value(k, p->value[x], hash_of(pop, p->value[x])) : NULL;
    if (!s || (defaults ? s->declared : s->count) == 0) return false;
  }
  return true;
}

/* Subtracts (DELTA -1) or adds (+1) the pairs of P. */
static void count_pairs(struct vs_pop *pop, const struct pairs *p, int delta, bool defaults) {
  for (size_t x = 0; x < p->n; x++) {
    struct pop_key *k = get_key(pop, p->key[x]);
    struct value_slot *s = get_value(pop, k, p->value[x], hash_of(pop, p->value[x]));
    if (defaults)
      s->declared = (uint32_t)((int64_t)s->declared + delta);
    else
      count_value(pop, k, s, delta);
  }
}

int vs_pop_apply_change(struct vs_pop *pop, const struct vs_pop_change *c, struct vs_err *err) {
  const struct vs_feature *old = c->old, *doc = c->doc;
  if (strcmp(vs_feature_id(old), vs_feature_id(doc)) != 0) {
    if (vs_pop_remove(pop, old, err) < 0) return -1;
    vs_pop_add(pop, doc);
    return 0;
  }
  if (pop->summary)
    return vs_err_set(err, EINVAL, "document \"%s\": a population's summary cannot change",
                      vs_feature_id(doc));
  if (!vs_strmap_get(pop->members, vs_feature_id(old)) || !counted_all(pop, &c->gone, false) ||
      !counted_all(pop, &c->gone_defaults, true))
    return vs_err_set(err, EINVAL,
                      "document \"%s\" (%s): not the document that was added, or not added",
                      vs_feature_id(old), vs_feature_name(old));
  count_pairs(pop, &c->gone, -1, false);
  count_pairs(pop, &c->added, 1, false);
  count_pairs(pop, &c->gone_defaults, -1, true);
  count_pairs(pop, &c->added_defaults, 1, true);
  pop->generation++;
  return 0;
}

int vs_pop_replace(struct vs_pop *pop, const struct vs_feature *old, const struct vs_feature *doc,
                   struct vs_err *err) {
  struct vs_pop_change *c = vs_pop_change_of(old, doc);
  int rc = vs_pop_apply_change(pop, c, err);
  vs_pop_change_free(c);
  return rc;
}

void vs_pop_merge(struct vs_pop *into, const struct vs_pop *from) {
  for (size_t i = 0; i < from->n_keys; i++) {
    const struct pop_key *fk = &from->keys[i];
    struct pop_key *k = NULL; /* made at its first value counted or declared: not one that
                                 vs_pop_remove left behind in FROM */
    for (uint32_t j = 0; j < fk->cap; j++) {
      const struct value_slot *fs = &fk->slots[j];
      if (!fs->value || (fs->count == 0 && fs->declared == 0)) continue;
      if (!k) k = get_key(into, fk->name);
      struct value_slot *s = get_value(into, k, fs->value, hash_of(into, fs->value));
      if (fs->count) count_value(into, k, s, fs->count);
      s->declared += fs->declared;
    }
  }
  size_t pos = 0;
  const char *id;
  void *n;
  while (vs_strmap_next(from->members, &pos, &id, &n))
    add_member(into, id, (int64_t)(uintptr_t)n);
  into->docs += from->docs;
  into->generation++;
}

struct vs_pop *vs_pop_copy(const struct vs_pop *from) {
  struct vs_pop *into = vs_pop_new();
  vs_pop_merge(into, from);
  return into;
}

size_t vs_pop_docs(const struct vs_pop *pop) {
  return pop->docs;
}

size_t vs_pop_member(const struct vs_pop *pop, const char *id) {
  return (size_t)(uintptr_t)vs_strmap_get(pop->members, id);
}

size_t vs_pop_keys(const struct vs_pop *pop) {
  return pop->n_keys;
}

size_t vs_pop_pairs(const struct vs_pop *pop) {
  return pop->pairs;
}

/* The most declared default (ties: the smaller string, so the choice does not depend on the
 * order documents came in). */
static const struct value_slot *key_default(const struct pop_key *k) {
  const struct value_slot *best = NULL;
  for (uint32_t j = 0; j < k->cap; j++) {
    const struct value_slot *s = &k->slots[j];
    if (!s->value || !s->declared) continue;
    if (!best || s->declared > best->declared ||
        (s->declared == best->declared && strcmp(s->value, best->value) < 0))
      best = s;
  }
  return best;
}

/* Keeps the two largest (count, value) pairs in STATS; ties go to the smaller string. */
static void consider_top(struct vs_pop_stats *st, const char *value, uint32_t count) {
  if (count == 0) return;
  for (int i = 0; i < 2; i++) {
    if (count > st->top_count[i] ||
        (count == st->top_count[i] && st->top_value[i] && strcmp(value, st->top_value[i]) < 0)) {
      if (i == 0) {
        st->top_count[1] = st->top_count[0];
        st->top_value[1] = st->top_value[0];
      }
      st->top_count[i] = count;
      st->top_value[i] = value;
      return;
    }
  }
}

/* Key I's tail (struct tail), when it has TAIL_MIN_VALUES values or more; its absent
 * documents (ABSENT) count as one value, as vs_pop_values counts them. */
static void add_tail(struct vs_pop *pop, size_t i, uint32_t absent) {
  const struct pop_key *k = &pop->keys[i];
  if (k->live < TAIL_MIN_VALUES) return;
  if (pop->n_tails == pop->cap_tails) {
    pop->cap_tails = pop->cap_tails ? 2 * pop->cap_tails : 16;
    pop->tails = vs_xrealloc(pop->tails, pop->cap_tails * sizeof(*pop->tails));
  }
  struct tail *t = &pop->tails[pop->n_tails++];
  *t = (struct tail){.key = i};
  if (absent && absent <= TAIL_MAX) t->docs[absent] += absent;
  for (uint32_t j = 0; j < k->cap; j++) {
    const struct value_slot *s = &k->slots[j];
    if (s->value && s->count && s->count <= TAIL_MAX && s != k->dflt) t->docs[s->count] += s->count;
  }
  for (size_t c = 1; c <= TAIL_MAX; c++)
    t->docs[c] += t->docs[c - 1];
}

void vs_pop_prepare(struct vs_pop *pop) {
  if (pop->prepared_generation == pop->generation) return;
  pop->n_tails = 0;
  for (size_t i = 0; i < pop->n_keys; i++) {
    struct pop_key *k = &pop->keys[i];
    k->dflt = key_default(k);
    struct vs_pop_stats *st = &k->stats;
    *st = (struct vs_pop_stats){.docs = (uint32_t)pop->docs};
    st->default_value = k->dflt ? k->dflt->value : NULL;
    uint32_t folded = k->dflt ? k->dflt->count : 0;
    uint32_t absent = (uint32_t)pop->docs - k->present + folded;
    st->distinct = k->live - (folded > 0) + (absent > 0);
    consider_top(st, VS_ABSENT, absent);
    for (uint32_t j = 0; j < k->cap; j++) {
      const struct value_slot *s = &k->slots[j];
      if (s->value && s != k->dflt) consider_top(st, s->value, s->count);
    }
    add_tail(pop, i, absent);
  }
  pop->prepared_generation = pop->generation;
}

bool vs_pop_is_prepared(const struct vs_pop *pop) {
  return pop->prepared_generation == pop->generation;
}

const char *vs_pop_key_name(const struct vs_pop *pop, size_t i) {
  return i < pop->n_keys ? pop->keys[i].name : NULL;
}

long vs_pop_key_index(const struct vs_pop *pop, const char *key) {
  struct pop_key *k = find_key(pop, key, hash_of(pop, key));
  return k ? (long)(k - pop->keys) : -1;
}

void vs_pop_key_stats(const struct vs_pop *pop, size_t i, struct vs_pop_stats *out) {
  *out = pop->keys[i].stats;
}

const char *vs_pop_fold(const struct vs_pop *pop, size_t i, const char *value) {
  const struct pop_key *k = &pop->keys[i];
  if (!value || (k->dflt && strcmp(value, k->dflt->value) == 0)) return VS_ABSENT;
  return value;
}

uint32_t vs_pop_count(const struct vs_pop *pop, size_t i, const char *value) {
  const struct pop_key *k = &pop->keys[i];
  uint32_t folded = k->dflt ? k->dflt->count : 0;
  value = vs_pop_fold(pop, i, value);
  if (strcmp(value, VS_ABSENT) == 0) return (uint32_t)pop->docs - k->present + folded;
  const struct value_slot *s = find_value(k, value, hash_of(pop, value));
  if (s) return s->count;
  return k->singles ? 1 : 0; /* a member's value not named in a summary: its own alone */
}

void vs_pop_values(const struct vs_pop *pop, size_t i,
                   void (*each)(const char *value, uint32_t count, void *arg), void *arg) {
  const struct pop_key *k = &pop->keys[i];
  uint32_t absent = vs_pop_count(pop, i, NULL);
  if (absent) each(VS_ABSENT, absent, arg);
  for (uint32_t j = 0; j < k->cap; j++) {
    const struct value_slot *s = &k->slots[j];
    if (s->value && s->count && s != k->dflt) each(s->value, s->count, arg);
  }
}

bool vs_pop_majority_is(const struct vs_pop *pop, const char *key, const char *value) {
  if (pop->docs < 2) return false;
  long i = vs_pop_key_index(pop, key);
  if (i < 0) return strcmp(value, VS_ABSENT) == 0;
  const struct vs_pop_stats *st = &pop->keys[i].stats;
  return st->top_value[0] && strcmp(st->top_value[0], value) == 0 &&
         2 * st->top_count[0] > st->docs;
}

uint32_t vs_pop_present(const struct vs_pop *pop, size_t i) {
  return pop->keys[i].present;
}

struct at_most {
  uint32_t max, docs;
};

static void add_if_at_most(const char *value, uint32_t count, void *arg) {
  struct at_most *a = arg;
  (void)value;
  if (count <= a->max) a->docs += count;
}

static int cmp_tail_key(const void *key, const void *t) {
  size_t i = *(const size_t *)key, k = ((const struct tail *)t)->key;
  return i < k ? -1 : i > k;
}

uint32_t vs_pop_at_most(const struct vs_pop *pop, size_t i, uint32_t max) {
  uint32_t singles = max >= 1 ? pop->keys[i].singles : 0;
  const struct tail *t = pop->n_tails && max <= TAIL_MAX && vs_pop_is_prepared(pop)
                             ? bsearch(&i, pop->tails, pop->n_tails, sizeof(*t), cmp_tail_key)
                             : NULL;
  if (t) return t->docs[max] + singles;
  struct at_most a = {.max = max};
  vs_pop_values(pop, i, add_if_at_most, &a);
  return a.docs + singles;
}

static int cmp_slot_value(const void *a, const void *b) {
  return strcmp((*(const struct value_slot *const *)a)->value,
                (*(const struct value_slot *const *)b)->value);
}

char *vs_pop_dump(const struct vs_pop *pop) {
  struct vs_buf out = {0};
  const char **names = vs_xcalloc(pop->n_keys + 1, sizeof(char *));
  for (size_t i = 0; i < pop->n_keys; i++)
    names[i] = pop->keys[i].name;
  qsort(names, pop->n_keys, sizeof(char *), vs_cmp_strp);
  vs_buf_addf(&out, "docs\t%zu\n", pop->docs);
  for (size_t i = 0; i < pop->n_keys; i++) {
    const struct pop_key *k = find_key(pop, names[i], hash_of(pop, names[i]));
    const struct value_slot **vals = vs_xcalloc(k->used + 1, sizeof(*vals));
    size_t n = 0;
    for (uint32_t j = 0; j < k->cap; j++)
      if (k->slots[j].value && (k->slots[j].count || k->slots[j].declared))
        vals[n++] = &k->slots[j];
    qsort(vals, n, sizeof(*vals), cmp_slot_value);
    if (n) vs_buf_addf(&out, "%s\t%s\t%zu\t0\n", k->name, VS_ABSENT, pop->docs - k->present);
    for (size_t j = 0; j < n; j++)
      vs_buf_addf(&out, "%s\t%s\t%u\t%u\n", k->name, vals[j]->value, vals[j]->count,
                  vals[j]->declared);
    free(vals);
  }
  free(names);
  const char **ids = vs_strmap_sorted_keys(pop->members, NULL);
  for (size_t i = 0; ids[i]; i++)
    vs_buf_addf(&out, "member\t%s\t%zu\n", ids[i], vs_pop_member(pop, ids[i]));
  free(ids);
  return vs_buf_steal(&out);
}

/* ----------------------------------------------------------------------------- summaries */

/* Whether slot S of key K is named in a summary: held by two documents or more, one of the two
 * most common values (ties among singles are broken as the whole population breaks them), or
 * the key's default (its count folds into VS_ABSENT). */
static bool named(const struct pop_key *k, const struct value_slot *s) {
  return s->count >= 2 || s == k->dflt ||
         (s->count == 1 && ((k->stats.top_value[0] && s->value == k->stats.top_value[0]) ||
                            (k->stats.top_value[1] && s->value == k->stats.top_value[1])));
}

json_t *vs_pop_summary(const struct vs_pop *pop) {
  json_t *keys = json_array();
  for (size_t i = 0; i < pop->n_keys; i++) {
    const struct pop_key *k = &pop->keys[i];
    json_t *values = json_array();
    uint32_t singles = k->singles;
    bool whole = true;
    for (uint32_t j = 0; j < k->cap; j++) {
      const struct value_slot *s = &k->slots[j];
      if (!s->value || (s->count == 0 && s != k->dflt)) continue;
      if (!named(k, s))
        singles++;
      else if (json_array_append_new(values, json_pack("[s,I]", s->value, (json_int_t)s->count)))
        whole = false; /* not UTF-8 */
    }
    /* A value or key missing from a summary that reads back well formed would change every
     * answer about it: no summary instead. */
    if (!whole) json_decref(values);
    if (!whole || json_array_append_new(keys, json_pack("[s,I,I,s?,o]", k->name,
                                                        (json_int_t)k->present, (json_int_t)singles,
                                                        k->dflt ? k->dflt->value : NULL, values))) {
      json_decref(keys);
      return NULL;
    }
  }
  return json_pack("{s:I,s:o}", "docs", (json_int_t)pop->docs, "keys", keys);
}

/* A count of a summary: an integer from 0 to MAX. */
static bool summary_count(const json_t *j, size_t max, uint32_t *out) {
  if (!json_is_integer(j) || json_integer_value(j) < 0 || (size_t)json_integer_value(j) > max)
    return false;
  *out = (uint32_t)json_integer_value(j);
  return true;
}

/* Key [NAME, PRESENT, SINGLES, DEFAULT or null, [[VALUE, COUNT]...]] of a summary into POP. */
static int summary_key(struct vs_pop *pop, const json_t *jk, const char *what, struct vs_err *err) {
  const char *name = json_string_value(json_array_get(jk, 0));
  const json_t *dflt = json_array_get(jk, 3), *values = json_array_get(jk, 4);
  uint32_t present, singles;
  if (!json_is_array(jk) || json_array_size(jk) != 5 || !name ||
      !summary_count(json_array_get(jk, 1), pop->docs, &present) ||
      !summary_count(json_array_get(jk, 2), present, &singles) ||
      !(json_is_null(dflt) || json_is_string(dflt)) || !json_is_array(values))
    return vs_err_set(err, EINVAL,
                      "%s: a key is not [name, present, singles, default or null, values] with "
                      "counts of at most the %zu documents",
                      what, pop->docs);
  if (vs_pop_key_index(pop, name) >= 0)
    return vs_err_set(err, EINVAL, "%s: key \"%s\" is there twice", what, name);
  struct pop_key *k = get_key(pop, name);
  size_t sum = singles, j;
  const json_t *jv;
  bool has_default = json_is_null(dflt);
  json_array_foreach(values, j, jv) {
    const char *value = json_string_value(json_array_get(jv, 0));
    uint32_t count;
    if (!json_is_array(jv) || json_array_size(jv) != 2 || !value ||
        !summary_count(json_array_get(jv, 1), present, &count))
      return vs_err_set(err, EINVAL, "%s: key \"%s\": a value is not [text, count of at most %u]",
                        what, name, present);
    uint64_t hash = hash_of(pop, value);
    if (find_value(k, value, hash))
      return vs_err_set(err, EINVAL, "%s: key \"%s\": value \"%s\" is there twice", what, name,
                        value);
    struct value_slot *s = get_value(pop, k, value, hash);
    if (count) count_value(pop, k, s, count);
    if (json_is_string(dflt) && strcmp(value, json_string_value(dflt)) == 0) {
      s->declared = 1;
      has_default = true;
    }
    sum += count;
  }
  if (!has_default)
    return vs_err_set(err, EINVAL, "%s: key \"%s\": its default \"%s\" has no count", what, name,
                      json_string_value(dflt));
  if (sum != present)
    return vs_err_set(err, EINVAL,
                      "%s: key \"%s\": its values and singles count %zu documents, not the %u "
                      "that set it",
                      what, name, sum, present);
  k->singles = singles;
  k->present += singles;
  k->live += singles;
  pop->pairs += singles;
  return 0;
}

struct vs_pop *vs_pop_from_summary(const json_t *summary, const char *const *members,
                                   size_t n_members, const char *what, struct vs_err *err) {
  _cleanup_(vs_pop_freep) struct vs_pop *pop = vs_pop_new();
  const json_t *docs = json_object_get(summary, "docs"), *keys = json_object_get(summary, "keys");
  uint32_t n_docs;
  if (!json_is_object(summary) || !summary_count(docs, VS_POP_MAX_DOCS, &n_docs) ||
      !json_is_array(keys)) {
    vs_err_set(err, EINVAL, "%s: not a population's summary ({\"docs\": N, \"keys\": [...]})",
               what);
    return NULL;
  }
  if (n_members > n_docs) {
    vs_err_set(err, EINVAL, "%s: %zu members, but the summary counts %u documents", what, n_members,
               n_docs);
    return NULL;
  }
  pop->docs = n_docs;
  size_t i;
  const json_t *jk;
  json_array_foreach(keys, i, jk) {
    if (summary_key(pop, jk, what, err) < 0) return NULL;
  }
  for (size_t m = 0; m < n_members; m++)
    add_member(pop, members[m], 1);
  pop->summary = true;
  pop->generation++;
  vs_pop_prepare(pop);
  return vs_steal(&pop);
}

bool vs_pop_is_summary(const struct vs_pop *pop) {
  return pop->summary;
}
