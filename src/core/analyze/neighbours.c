/* Close peers by exact distance (neighbours.h). */
#include "neighbours.h"

#include "util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sorts T (N tokens) and drops repeats; returns the new count. */
static size_t sort_unique(uint64_t *t, size_t n) {
  if (n) qsort(t, n, sizeof(*t), cmp_u64);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!k || t[k - 1] != t[i]) t[k++] = t[i];
  return k;
}

struct tokset {
  uint64_t *t;
  size_t n;
};

/* The first VM's distinct keys (the key part of its tokens, analytics.h), in an open hash
 * table, with how many VMs have each: the keys every VM has are among them. A fleet's VMs
 * have thousands of keys and differ in a few, so each VM's keys are looked up here rather than
 * sorted whole; only those left, the few that vary, are sorted. */
struct key_table {
  uint64_t *key; /* EMPTY_SLOT: free (a key part has 32 bits) */
  bool *common;
  size_t mask;
  const struct vs_vm_tokens *vms;
  struct tokset *sets;
  uint32_t *count_of[VS_PARALLEL_MAX]; /* each chunk's counts, by slot */
};
#define EMPTY_SLOT UINT64_MAX

/* KEY's slot, or the free slot where it would go (linear probing from its hash's). */
static size_t probe(const struct key_table *kt, uint64_t key) {
  size_t s = (size_t)(key * 0x9e3779b97f4a7c15ULL >> 20) & kt->mask;
  while (kt->key[s] != key && kt->key[s] != EMPTY_SLOT)
    s = (s + 1) & kt->mask;
  return s;
}

static long slot_of(const struct key_table *kt, uint64_t key) {
  size_t s = probe(kt, key);
  return kt->key[s] == key ? (long)s : -1;
}

static void count_chunk(void *arg, size_t chunk, size_t from, size_t to) {
  struct key_table *kt = arg;
  uint32_t *count = vs_xcalloc(kt->mask + 1, sizeof(uint32_t));
  _cleanup_(vs_freep) size_t *seen = vs_xcalloc(kt->mask + 1, sizeof(size_t)); /* VM + 1 */
  for (size_t i = from; i < to; i++)
    for (size_t k = 0; k < kt->vms[i].n; k++) {
      long s = slot_of(kt, kt->vms[i].tokens[k] >> 32);
      if (s < 0 || seen[s] == i + 1) continue;
      seen[s] = i + 1;
      count[s]++;
    }
  kt->count_of[chunk] = count;
}

/* VM I's distinct keys but the common ones, sorted. */
static void reduced_set(void *arg, size_t i) {
  const struct key_table *kt = arg;
  const struct vs_vm_tokens *vm = &kt->vms[i];
  struct tokset *set = &kt->sets[i];
  set->t = vs_xmalloc((vm->n ? vm->n : 1) * sizeof(uint64_t));
  size_t m = 0;
  for (size_t k = 0; k < vm->n; k++) {
    uint64_t key = vm->tokens[k] >> 32;
    long s = slot_of(kt, key);
    if (s < 0 || !kt->common[s]) set->t[m++] = key;
  }
  set->n = sort_unique(set->t, m);
}

/* Each VM's distinct keys, sorted, less those every VM has. */
static struct tokset *reduced_sets(const struct vs_vm_tokens *vms, size_t n) {
  size_t cap = vs_table_cap(vms[0].n);
  struct key_table kt = {.key = vs_xmalloc(cap * sizeof(uint64_t)),
                         .common = vs_xcalloc(cap, sizeof(bool)),
                         .mask = cap - 1,
                         .vms = vms,
                         .sets = vs_xcalloc(n, sizeof(struct tokset))};
  for (size_t s = 0; s < cap; s++)
    kt.key[s] = EMPTY_SLOT;
  for (size_t k = 0; k < vms[0].n; k++) {
    uint64_t key = vms[0].tokens[k] >> 32;
    kt.key[probe(&kt, key)] = key; /* a key seen before: its own slot again */
  }
  size_t chunks = vs_parallel_chunks(n, 64, count_chunk, &kt);
  _cleanup_(vs_freep) uint32_t *count = vs_xcalloc(cap, sizeof(uint32_t));
  for (size_t c = 0; c < chunks; c++) {
    for (size_t s = 0; s < cap; s++)
      count[s] += kt.count_of[c][s];
    free(kt.count_of[c]);
  }
  for (size_t s = 0; s < cap; s++)
    kt.common[s] = kt.key[s] != EMPTY_SLOT && count[s] == n;
  vs_parallel_for(n, 0, reduced_set, &kt);
  free(kt.key);
  free(kt.common);
  return kt.sets;
}

static uint32_t distance(const struct tokset *a, const struct tokset *b) {
  size_t p = 0, q = 0, both = 0;
  while (p < a->n && q < b->n) {
    if (a->t[p] == b->t[q]) {
      both++;
      p++;
      q++;
    } else if (a->t[p] < b->t[q]) {
      p++;
    } else {
      q++;
    }
  }
  return (uint32_t)(a->n + b->n - 2 * both);
}

static size_t find(size_t *parent, size_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

/* Orders VM indices by their sets (SETS): by size, then token by token. The size first is what
 * the second pass relies on to end a row (JOIN_ROWS): along a row the sizes never decrease. */
static int cmp_set(const void *a, const void *b, void *sets) {
  const struct tokset *x = (const struct tokset *)sets + *(const size_t *)a;
  const struct tokset *y = (const struct tokset *)sets + *(const size_t *)b;
  if (x->n != y->n) return x->n < y->n ? -1 : 1;
  for (size_t k = 0; k < x->n; k++)
    if (x->t[k] != y->t[k]) return x->t[k] < y->t[k] ? -1 : 1;
  return 0;
}

/* Whether two VMs (or two classes of VMs with the same keys) at distance X, with nearest
 * neighbours at NI and NJ, are close both ways. */
static bool close_both(uint32_t x, uint32_t ni, uint32_t nj) {
  return x <= 2 * (uint64_t)ni + VS_CLOSE_SLACK && x <= 2 * (uint64_t)nj + VS_CLOSE_SLACK;
}

/* The classes: VMs with the same keys (less the common ones), each standing for its members.
 * When the keys that vary are few (BITS_MAX), each class's are also a bitset over them, and a
 * distance is the popcount of two bitsets' XOR: the same number as distance()'s merge, without
 * its branches. */
#define BITS_MAX 4096
struct classes {
  const struct tokset *sets;
  const size_t *first; /* a VM of each class */
  size_t k;
  uint64_t *bits; /* K x WORDS, or NULL: merge the sets */
  size_t words;
  const size_t *size;      /* each class's number of keys, nondecreasing */
  const uint32_t *nearest; /* set for the second pass */
  /* each chunk's own: the nearest distances it saw, or the groups it joined */
  uint32_t *near_of[VS_PARALLEL_MAX];
  size_t *parent_of[VS_PARALLEL_MAX];
};

static void make_bits(struct classes *c) {
  size_t all = 0;
  for (size_t x = 0; x < c->k; x++)
    all += c->sets[c->first[x]].n;
  _cleanup_(vs_freep) uint64_t *keys = vs_xmalloc((all ? all : 1) * sizeof(uint64_t));
  size_t m = 0;
  for (size_t x = 0; x < c->k; x++) {
    const struct tokset *t = &c->sets[c->first[x]];
    memcpy(keys + m, t->t, t->n * sizeof(uint64_t));
    m += t->n;
  }
  m = sort_unique(keys, m);
  if (m > BITS_MAX) return;
  c->words = m / 64 + 1;
  c->bits = vs_xcalloc(c->k * c->words, sizeof(uint64_t));
  for (size_t x = 0; x < c->k; x++) {
    const struct tokset *t = &c->sets[c->first[x]];
    uint64_t *row = c->bits + x * c->words;
    size_t b = 0; /* both sorted: one walk */
    for (size_t p = 0; p < t->n; p++) {
      while (keys[b] < t->t[p])
        b++;
      row[b / 64] |= 1ULL << (b % 64);
    }
  }
}

static inline __attribute__((always_inline)) uint32_t class_distance(const struct classes *c,
                                                                     size_t x, size_t y) {
  if (!c->bits) return distance(&c->sets[c->first[x]], &c->sets[c->first[y]]);
  const uint64_t *a = c->bits + x * c->words, *b = c->bits + y * c->words;
  uint32_t d = 0;
  for (size_t w = 0; w < c->words; w++)
    d += (uint32_t)__builtin_popcountll(a[w] ^ b[w]);
  return d;
}

/* Each row x of the folded rows [FROM, TO) in turn: row m with row k - 1 - m, so that in the
 * first pass each folded row is as much work as another and the chunks take equal shares (the
 * second's rows end early and skip pairs, so theirs vary). Row x is the pairs (x, y > x). */
#define EACH_ROW(c, from, to, x, body)                                                             \
  for (size_t m_ = (from); m_ < (to); m_++)                                                        \
    for (size_t h_ = 0; h_ < 2; h_++) {                                                            \
      size_t x = h_ ? (c)->k - 1 - m_ : m_;                                                        \
      if (h_ && x == m_) break;                                                                    \
      body                                                                                         \
    }

/* The first pass, one chunk of the pairs: each class's nearest distance among them, with
 * DISTANCE the distance of classes x and y. The least of a row is kept in a register and
 * taken without a branch: a fleet of many classes makes billions of pairs. */
#define NEAREST_ROWS(c, from, to, near, distance)                                                  \
  EACH_ROW(c, from, to, x, {                                                                       \
    uint32_t nx = near[x];                                                                         \
    for (size_t y = x + 1; y < (c)->k; y++) {                                                      \
      uint32_t d = (distance);                                                                     \
      nx = d < nx ? d : nx;                                                                        \
      near[y] = d < near[y] ? d : near[y];                                                         \
    }                                                                                              \
    near[x] = nx;                                                                                  \
  })

/* The second pass, one chunk of the pairs: joins the classes close both ways. A pair whose
 * classes this chunk has joined already is not measured: in a fleet of one kind of VM that is
 * nearly every pair. The classes are ordered by size and two classes' distance is at least the
 * difference of their sizes, so a row ends where that difference exceeds what its class can
 * be close to. */
#define JOIN_ROWS(c, from, to, parent, distance)                                                   \
  EACH_ROW(c, from, to, x, {                                                                       \
    uint64_t reach = 2 * (uint64_t)(c)->nearest[x] + VS_CLOSE_SLACK;                               \
    size_t rx = find(parent, x); /* stays a root: the others are joined under it */                \
    for (size_t y = x + 1; y < (c)->k && (c)->size[y] - (c)->size[x] <= reach; y++) {              \
      size_t ry = find(parent, y);                                                                 \
      if (ry != rx && close_both((distance), (c)->nearest[x], (c)->nearest[y])) parent[ry] = rx;   \
    }                                                                                              \
  })

/* ROWS (NEAREST_ROWS or JOIN_ROWS) over OUT, with the distance of one word's popcount, the
 * common case, in a loop of its own. */
#define BY_DISTANCE(ROWS, out)                                                                     \
  do {                                                                                             \
    if (word) {                                                                                    \
      ROWS(c, from, to, out, (uint32_t)__builtin_popcountll(word[x] ^ word[y]));                   \
    } else {                                                                                       \
      ROWS(c, from, to, out, class_distance(c, x, y));                                             \
    }                                                                                              \
  } while (0)

/* One chunk of the pairs, in either pass: the first (C->NEAREST not set yet) finds each
 * class's nearest distance, the second joins the classes close both ways. Compiled twice,
 * with the CPU's popcount instruction and without, and the one this CPU can run is chosen when
 * the program starts. */
__attribute__((target_clones("popcnt", "default"))) static void scan_chunk(void *arg, size_t chunk,
                                                                           size_t from, size_t to) {
  struct classes *c = arg;
  const uint64_t *word = c->bits && c->words == 1 ? c->bits : NULL;
  if (!c->nearest) {
    uint32_t *near = vs_xmalloc(c->k * sizeof(uint32_t));
    for (size_t x = 0; x < c->k; x++)
      near[x] = UINT32_MAX;
    BY_DISTANCE(NEAREST_ROWS, near);
    c->near_of[chunk] = near;
  } else {
    size_t *parent = vs_xmalloc(c->k * sizeof(size_t));
    for (size_t x = 0; x < c->k; x++)
      parent[x] = x;
    BY_DISTANCE(JOIN_ROWS, parent);
    c->parent_of[chunk] = parent;
  }
}

/* VMs with the same keys (less the common ones) are one class: at distance 0 from each other,
 * so always close, and at the same distance from every other VM. Distances are measured
 * between classes only, twice (for the nearest neighbours, then for closeness) rather than
 * kept: a fleet of mostly alike VMs has few classes, and memory stays linear in the fleet
 * however many there are. Each pass runs on every CPU, each chunk of pairs with its own
 * nearest distances (then the least of them) or its own groups (then joined: the groups of
 * every chunk's pairs are those of all pairs). The groups are those of every pair of VMs. */
size_t vs_close_groups(const struct vs_vm_tokens *vms, size_t n, size_t *group) {
  if (n == 0) return 0;
  struct tokset *sets = reduced_sets(vms, n);
  _cleanup_(vs_freep) size_t *order = vs_xmalloc(n * sizeof(size_t));
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  qsort_r(order, n, sizeof(size_t), cmp_set, sets);
  _cleanup_(vs_freep) size_t *class_of = vs_xmalloc(n * sizeof(size_t));
  _cleanup_(vs_freep) size_t *first = vs_xmalloc(n * sizeof(size_t)); /* a class's VM */
  _cleanup_(vs_freep) size_t *members = vs_xmalloc(n * sizeof(size_t));
  size_t classes = 0;
  for (size_t k = 0; k < n; k++) {
    if (k == 0 || cmp_set(&order[k - 1], &order[k], sets) != 0) {
      first[classes] = order[k];
      members[classes++] = 0;
    }
    class_of[order[k]] = classes - 1;
    members[classes - 1]++;
  }
  _cleanup_(vs_freep) size_t *size = vs_xmalloc(classes * sizeof(size_t));
  for (size_t c = 0; c < classes; c++)
    size[c] = sets[first[c]].n; /* nondecreasing: cmp_set orders by size first */
  struct classes cl = {.sets = sets, .first = first, .k = classes, .size = size};
  make_bits(&cl);
  size_t folded = (classes + 1) / 2;
  _cleanup_(vs_freep) uint32_t *nearest = vs_xmalloc(classes * sizeof(uint32_t));
  for (size_t c = 0; c < classes; c++)
    nearest[c] = members[c] > 1 ? 0 : UINT32_MAX;
  size_t chunks = vs_parallel_chunks(folded, 64, scan_chunk, &cl);
  for (size_t h = 0; h < chunks; h++) {
    for (size_t c = 0; c < classes; c++)
      if (cl.near_of[h][c] < nearest[c]) nearest[c] = cl.near_of[h][c];
    free(cl.near_of[h]);
  }
  cl.nearest = nearest;
  _cleanup_(vs_freep) size_t *parent = vs_xmalloc(classes * sizeof(size_t));
  for (size_t c = 0; c < classes; c++)
    parent[c] = c;
  chunks = vs_parallel_chunks(folded, 64, scan_chunk, &cl);
  for (size_t h = 0; h < chunks; h++) {
    for (size_t c = 0; c < classes; c++)
      parent[find(parent, c)] = find(parent, find(cl.parent_of[h], c));
    free(cl.parent_of[h]);
  }
  free(cl.bits);
  _cleanup_(vs_freep) size_t *number = vs_xmalloc(classes * sizeof(size_t));
  size_t groups = 0;
  for (size_t c = 0; c < classes; c++)
    number[c] = SIZE_MAX;
  for (size_t i = 0; i < n; i++) {
    size_t root = find(parent, class_of[i]);
    if (number[root] == SIZE_MAX) number[root] = groups++;
    group[i] = number[root];
  }
  for (size_t i = 0; i < n; i++)
    free(sets[i].t);
  free(sets);
  return groups;
}
