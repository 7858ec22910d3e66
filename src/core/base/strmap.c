#include "strmap.h"

#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* A compact open hash table: the entries in one array, in the order they were put, and an
 * index of 32-bit numbers into it (linear probing). A document of 2,000 settings had 4,096
 * slots of 24 bytes (98 KB, over half of what the elected host of a fleet store held a VM);
 * its index is 16 KB and its entries 32 KB (its keys are in its values), and walking the map
 * reads the entries in a row. A map's own keys are in an array beside the entries. */
struct entry {
  void *value; /* in a map whose keys are in its values, NULL: removed */
  uint64_t hash;
};

#define EMPTY 0
#define REMOVED 1
#define FIRST 2 /* an index slot holds an entry's number + FIRST */

struct vs_strmap {
  uint32_t *index;
  size_t cap; /* index slots, a power of two */
  struct entry *entries;
  char **keys;       /* by entry, the map's own copies (NULL: removed); NULL when KEY_OFFSET says */
  size_t key_offset; /* keys in values: where each value holds its key */
  size_t n_entries;  /* entries made, removed ones too */
  size_t cap_entries; /* entries room is made for */
  size_t used;        /* live keys */
  size_t removed;     /* REMOVED slots in the index */
  uint64_t k0, k1;
  vs_strmap_free_fn free_value;
  bool keys_in_values; /* keys are not the map's: vs_strmap_new_keys_in_values */
};

/* Entry I's key, or NULL when it was removed. */
static const char *key_of(const struct vs_strmap *map, size_t i) {
  if (!map->keys_in_values) return map->keys[i];
  const char *value = map->entries[i].value;
  return value ? value + map->key_offset : NULL;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
  do {                                                                                             \
    v0 += v1;                                                                                      \
    v1 = ROTL(v1, 13);                                                                             \
    v1 ^= v0;                                                                                      \
    v0 = ROTL(v0, 32);                                                                             \
    v2 += v3;                                                                                      \
    v3 = ROTL(v3, 16);                                                                             \
    v3 ^= v2;                                                                                      \
    v0 += v3;                                                                                      \
    v3 = ROTL(v3, 21);                                                                             \
    v3 ^= v0;                                                                                      \
    v2 += v1;                                                                                      \
    v1 = ROTL(v1, 17);                                                                             \
    v1 ^= v2;                                                                                      \
    v2 = ROTL(v2, 32);                                                                             \
  } while (0)

uint64_t vs_siphash24(const void *data, size_t len, uint64_t k0, uint64_t k1) {
  const unsigned char *in = data;
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  uint64_t b = (uint64_t)len << 56;
  size_t full = len & ~(size_t)7;
  for (size_t i = 0; i < full; i += 8) {
    uint64_t m;
    memcpy(&m, in + i, 8);
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
  }
  for (size_t i = 0; i < (len & 7); i++)
    b |= (uint64_t)in[full + i] << (8 * i);
  v3 ^= b;
  SIPROUND;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

struct vs_strmap *vs_strmap_new(vs_strmap_free_fn free_value) {
  struct vs_strmap *map = vs_xcalloc(1, sizeof(*map));
  map->cap = 16;
  map->index = vs_xcalloc(map->cap, sizeof(*map->index));
  map->free_value = free_value;
  vs_hash_seed(&map->k0, &map->k1);
  return map;
}

struct vs_strmap *vs_strmap_new_keys_in_values(vs_strmap_free_fn free_value, size_t key_offset) {
  struct vs_strmap *map = vs_strmap_new(free_value);
  map->keys_in_values = true;
  map->key_offset = key_offset;
  return map;
}

void vs_hash_seed(uint64_t *k0, uint64_t *k1) {
  uint64_t seed[2] = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  /* A short read only weakens flooding resistance; the hash still works. */
  if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
    seed[0] ^= (uint64_t)(uintptr_t)k0 ^ (uint64_t)vs_now_monotonic();
  *k0 = seed[0];
  *k1 = seed[1];
}

void vs_strmap_free(struct vs_strmap *map) {
  if (!map) return;
  for (size_t i = 0; i < map->n_entries; i++) {
    if (!key_of(map, i)) continue;
    if (map->free_value) map->free_value(map->entries[i].value);
    if (!map->keys_in_values) free(map->keys[i]);
  }
  free(map->entries);
  free(map->keys);
  free(map->index);
  free(map);
}

void vs_strmap_freep(struct vs_strmap **map) {
  vs_strmap_free(*map);
}

/* The index slot of KEY, or of the slot where it would go (the first removed one, or the
 * empty one that ends its run). */
static size_t find_slot(const struct vs_strmap *map, const char *key, uint64_t hash, bool *found) {
  size_t mask = map->cap - 1, i = hash & mask, first_removed = SIZE_MAX;
  for (;;) {
    uint32_t at = map->index[i];
    if (at == EMPTY) {
      *found = false;
      return first_removed != SIZE_MAX ? first_removed : i;
    }
    if (at == REMOVED) {
      if (first_removed == SIZE_MAX) first_removed = i;
    } else {
      if (map->entries[at - FIRST].hash == hash && strcmp(key_of(map, at - FIRST), key) == 0) {
        *found = true;
        return i;
      }
    }
    i = (i + 1) & mask;
  }
}

/* An index of CAP slots (a power of two that holds the live keys) for MAP's live entries,
 * the removed ones dropped (the rest keep their order). */
static void rebuild(struct vs_strmap *map, size_t cap) {
  size_t live = 0;
  for (size_t i = 0; i < map->n_entries; i++) {
    if (!key_of(map, i)) continue;
    if (map->keys) map->keys[live] = map->keys[i];
    map->entries[live++] = map->entries[i];
  }
  map->n_entries = live;
  free(map->index);
  map->index = vs_xcalloc(cap, sizeof(*map->index));
  map->cap = cap;
  map->removed = 0;
  for (size_t i = 0; i < live; i++) {
    size_t j = map->entries[i].hash & (cap - 1);
    while (map->index[j] != EMPTY)
      j = (j + 1) & (cap - 1);
    map->index[j] = (uint32_t)(i + FIRST);
  }
}

/* The index slots N live keys need: no more than three in four taken. */
static size_t cap_for(size_t n) {
  size_t cap = 16;
  while ((n + 1) * 4 > cap * 3)
    cap *= 2;
  return cap;
}

/* The index slots for one more key than USED, at most half of them taken: keys put and removed
 * at a steady count then fill it with removed slots again only after a quarter of its size
 * (rebuilt at the smallest size that holds them, it was rebuilt every few puts). */
static size_t cap_to_grow(size_t used) {
  size_t cap = cap_for(used + 1);
  return (used + 1) * 2 > cap ? 2 * cap : cap;
}

/* Room for N entries in all. */
static void entries_reserve(struct vs_strmap *map, size_t n) {
  if (n <= map->cap_entries) return;
  if (n > SIZE_MAX / sizeof(*map->entries)) abort(); /* more than memory holds */
  map->entries = vs_xrealloc(map->entries, n * sizeof(*map->entries));
  if (!map->keys_in_values) map->keys = vs_xrealloc(map->keys, n * sizeof(*map->keys));
  map->cap_entries = n;
}

void vs_strmap_reserve(struct vs_strmap *map, size_t n) {
  if (n > UINT32_MAX - FIRST || n > SIZE_MAX / 8)
    return; /* more than an index holds: the puts fail as they would */
  size_t cap = cap_for(n);
  if (cap > map->cap) rebuild(map, cap);
  entries_reserve(map, n);
}

bool vs_strmap_put(struct vs_strmap *map, const char *key, void *value) {
  if (map->keys_in_values && (!value || key != (const char *)value + map->key_offset))
    abort(); /* not where the map was told its values hold their keys */
  /* The index full of removed slots, or the entries of removed entries: made anew. */
  if ((map->used + map->removed + 1) * 4 > map->cap * 3 ||
      (map->n_entries == map->cap_entries && map->n_entries >= 2 * map->used + 16))
    rebuild(map, cap_to_grow(map->used));
  uint64_t hash = vs_siphash24(key, strlen(key), map->k0, map->k1);
  bool found;
  size_t i = find_slot(map, key, hash, &found);
  if (found) {
    struct entry *e = &map->entries[map->index[i] - FIRST];
    if (map->free_value && e->value != value) map->free_value(e->value);
    e->value = value; /* in a map whose keys are in its values, the key too */
    return false;
  }
  if (map->n_entries >= UINT32_MAX - FIRST) abort(); /* four billion keys: out of memory */
  if (map->n_entries == map->cap_entries)
    entries_reserve(map, map->cap_entries ? 2 * map->cap_entries : 8);
  if (map->index[i] == REMOVED) map->removed--;
  map->index[i] = (uint32_t)(map->n_entries + FIRST);
  if (!map->keys_in_values) map->keys[map->n_entries] = vs_xstrdup(key);
  map->entries[map->n_entries++] = (struct entry){value, hash};
  map->used++;
  return true;
}

void *vs_strmap_get(const struct vs_strmap *map, const char *key) {
  bool found;
  size_t i = find_slot(map, key, vs_siphash24(key, strlen(key), map->k0, map->k1), &found);
  return found ? map->entries[map->index[i] - FIRST].value : NULL;
}

bool vs_strmap_has(const struct vs_strmap *map, const char *key) {
  bool found;
  find_slot(map, key, vs_siphash24(key, strlen(key), map->k0, map->k1), &found);
  return found;
}

/* Removes KEY's entry, calling FREE_VALUE on its value when FREE_IT; returns its value. */
static void *remove_key(struct vs_strmap *map, const char *key, bool free_it, bool *found) {
  size_t i = find_slot(map, key, vs_siphash24(key, strlen(key), map->k0, map->k1), found);
  if (!*found) return NULL;
  size_t at = map->index[i] - FIRST;
  void *value = map->entries[at].value;
  if (free_it && map->free_value) map->free_value(value);
  if (!map->keys_in_values) {
    free(map->keys[at]);
    map->keys[at] = NULL;
  }
  map->entries[at] = (struct entry){NULL, 0};
  map->index[i] = REMOVED;
  map->used--;
  map->removed++;
  return free_it ? NULL : value;
}

bool vs_strmap_remove(struct vs_strmap *map, const char *key) {
  bool found;
  remove_key(map, key, true, &found);
  return found;
}

void *vs_strmap_take(struct vs_strmap *map, const char *key) {
  bool found;
  return remove_key(map, key, false, &found);
}

size_t vs_strmap_count(const struct vs_strmap *map) {
  return map->used;
}

bool vs_strmap_next(const struct vs_strmap *map, size_t *pos, const char **key, void **value) {
  for (size_t i = *pos; i < map->n_entries; i++) {
    const char *k = key_of(map, i);
    if (k) {
      if (key) *key = k;
      if (value) *value = map->entries[i].value;
      *pos = i + 1;
      return true;
    }
  }
  *pos = map->n_entries;
  return false;
}

const char **vs_strmap_sorted_keys(const struct vs_strmap *map, size_t *count) {
  const char **keys = vs_xcalloc(map->used + 1, sizeof(char *));
  size_t n = 0, pos = 0;
  const char *k;
  while (vs_strmap_next(map, &pos, &k, NULL))
    keys[n++] = k;
  qsort(keys, n, sizeof(char *), vs_cmp_strp);
  if (count) *count = n;
  return keys;
}
