/* strmap.h: a hash map from strings to pointers with O(1) expected lookup.
 *
 * Keys are copied and owned by the map (but in vs_strmap_new_keys_in_values's). Keys come from
 * guest images, which anyone who controls a guest writes, so the hash is SipHash-2-4 keyed with
 * a per-map random seed: a guest cannot choose keys that collide. Not thread-safe. */
#ifndef VS_STRMAP_H
#define VS_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of DATA under the key (K0, K1), and a fresh random key for it: the hash every
 * table of guest-derived strings uses, so that no guest can pick colliding keys. */
uint64_t vs_siphash24(const void *data, size_t len, uint64_t k0, uint64_t k1);
void vs_hash_seed(uint64_t *k0, uint64_t *k1);

struct vs_strmap;
typedef void (*vs_strmap_free_fn)(void *value);

/* FREE_VALUE (may be NULL) is called on values that are replaced, removed or left at free. */
struct vs_strmap *vs_strmap_new(vs_strmap_free_fn free_value);
/* A map whose keys live in their values, KEY_OFFSET bytes into each: a put takes KEY as it is
 * (VALUE + KEY_OFFSET, which must not be NULL: else it aborts), neither copied nor freed by
 * the map, and a put that replaces a value takes its new KEY with it. For maps filled by the
 * thousand (a document's settings): one allocation an entry, not two, a key read with its
 * value, and no key kept beside it. */
struct vs_strmap *vs_strmap_new_keys_in_values(vs_strmap_free_fn free_value, size_t key_offset);
void vs_strmap_free(struct vs_strmap *map);
void vs_strmap_freep(struct vs_strmap **map);

/* Makes room for N live keys in all, so that putting them does not grow the table (removed
 * keys' tombstones aside): for a map whose size is known before it is filled (a document's
 * thousands of settings, loaded by the thousand). */
void vs_strmap_reserve(struct vs_strmap *map, size_t n);
/* Inserts or replaces. Returns true when KEY was new. */
bool vs_strmap_put(struct vs_strmap *map, const char *key, void *value);
void *vs_strmap_get(const struct vs_strmap *map, const char *key);
bool vs_strmap_has(const struct vs_strmap *map, const char *key);
/* Removes KEY (freeing its value). Returns true when it was present. */
bool vs_strmap_remove(struct vs_strmap *map, const char *key);
/* Removes KEY and returns its value, not freed: the caller's now (NULL when KEY is absent). */
void *vs_strmap_take(struct vs_strmap *map, const char *key);
size_t vs_strmap_count(const struct vs_strmap *map);

/* Iteration in no particular order: start with *POS = 0; returns false at the end. The map
 * must not be changed while iterating. */
bool vs_strmap_next(const struct vs_strmap *map, size_t *pos, const char **key, void **value);
/* The keys, sorted by strcmp, in a NULL-terminated array the caller frees (not the keys). */
const char **vs_strmap_sorted_keys(const struct vs_strmap *map, size_t *count);

#endif
