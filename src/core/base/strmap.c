#include "strmap.h"

#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct slot {
  char *key; /* NULL: empty; TOMBSTONE: removed */
  void *value;
  uint64_t hash;
};

struct vs_strmap {
  struct slot *slots;
  size_t cap;  /* power of two */
  size_t used; /* live keys */
  size_t dead; /* tombstones */
  uint64_t k0, k1;
  vs_strmap_free_fn free_value;
  bool keys_in_values; /* keys are not the map's: vs_strmap_new_keys_in_values */
};

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

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
  map->slots = vs_xcalloc(map->cap, sizeof(struct slot));
  map->free_value = free_value;
  vs_hash_seed(&map->k0, &map->k1);
  return map;
}

struct vs_strmap *vs_strmap_new_keys_in_values(vs_strmap_free_fn free_value) {
  struct vs_strmap *map = vs_strmap_new(free_value);
  map->keys_in_values = true;
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
  for (size_t i = 0; i < map->cap; i++) {
    struct slot *s = &map->slots[i];
    if (s->key && s->key != TOMBSTONE) {
      if (map->free_value) map->free_value(s->value);
      if (!map->keys_in_values) free(s->key);
    }
  }
  free(map->slots);
  free(map);
}

void vs_strmap_freep(struct vs_strmap **map) {
  vs_strmap_free(*map);
}

/* Index of KEY's slot, or of the slot where it would go (first tombstone or empty). */
static size_t find_slot(const struct vs_strmap *map, const char *key, uint64_t hash, bool *found) {
  size_t mask = map->cap - 1, i = hash & mask, first_dead = SIZE_MAX;
  for (;;) {
    struct slot *s = &map->slots[i];
    if (!s->key) {
      *found = false;
      return first_dead != SIZE_MAX ? first_dead : i;
    }
    if (s->key == TOMBSTONE) {
      if (first_dead == SIZE_MAX) first_dead = i;
    } else if (s->hash == hash && strcmp(s->key, key) == 0) {
      *found = true;
      return i;
    }
    i = (i + 1) & mask;
  }
}

/* Rehashes MAP's live keys into CAP slots (a power of two that holds them). */
static void resize(struct vs_strmap *map, size_t cap) {
  size_t old_cap = map->cap;
  struct slot *old = map->slots;
  map->slots = vs_xcalloc(cap, sizeof(struct slot));
  map->cap = cap;
  map->dead = 0;
  for (size_t i = 0; i < old_cap; i++) {
    if (!old[i].key || old[i].key == TOMBSTONE) continue;
    size_t j = old[i].hash & (cap - 1);
    while (map->slots[j].key)
      j = (j + 1) & (cap - 1);
    map->slots[j] = old[i];
  }
  free(old);
}

static void grow(struct vs_strmap *map) {
  size_t cap = map->cap;
  if ((map->used + 1) * 2 > cap)
    cap *= 2; /* else only tombstones filled the table: rehash at the same size */
  resize(map, cap);
}

void vs_strmap_reserve(struct vs_strmap *map, size_t n) {
  if (n > SIZE_MAX / 8) return; /* more than memory holds: the puts fail as they would */
  size_t cap = map->cap;
  while ((n + 1) * 4 > cap * 3)
    cap *= 2;
  if (cap > map->cap) resize(map, cap);
}

bool vs_strmap_put(struct vs_strmap *map, const char *key, void *value) {
  if ((map->used + map->dead + 1) * 4 > map->cap * 3) grow(map);
  uint64_t hash = vs_siphash24(key, strlen(key), map->k0, map->k1);
  bool found;
  size_t i = find_slot(map, key, hash, &found);
  struct slot *s = &map->slots[i];
  if (found) {
    if (map->free_value && s->value != value) map->free_value(s->value);
    s->value = value;
    if (map->keys_in_values) s->key = (char *)key; /* the old one went with its value */
    return false;
  }
  if (s->key == TOMBSTONE) map->dead--;
  s->key = map->keys_in_values ? (char *)key : vs_xstrdup(key);
  s->value = value;
  s->hash = hash;
  map->used++;
  return true;
}

void *vs_strmap_get(const struct vs_strmap *map, const char *key) {
  bool found;
  size_t i = find_slot(map, key, vs_siphash24(key, strlen(key), map->k0, map->k1), &found);
  return found ? map->slots[i].value : NULL;
}

bool vs_strmap_has(const struct vs_strmap *map, const char *key) {
  bool found;
  find_slot(map, key, vs_siphash24(key, strlen(key), map->k0, map->k1), &found);
  return found;
}

/* Removes KEY's slot, calling FREE_VALUE on its value when FREE_IT; returns its value. */
static void *remove_key(struct vs_strmap *map, const char *key, bool free_it, bool *found) {
  size_t i = find_slot(map, key, vs_siphash24(key, strlen(key), map->k0, map->k1), found);
  if (!*found) return NULL;
  struct slot *s = &map->slots[i];
  void *value = s->value;
  if (free_it && map->free_value) map->free_value(value);
  if (!map->keys_in_values) free(s->key);
  s->key = TOMBSTONE;
  s->value = NULL;
  map->used--;
  map->dead++;
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
  for (size_t i = *pos; i < map->cap; i++) {
    struct slot *s = &map->slots[i];
    if (s->key && s->key != TOMBSTONE) {
      if (key) *key = s->key;
      if (value) *value = s->value;
      *pos = i + 1;
      return true;
    }
  }
  *pos = map->cap;
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
