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

/* VM I's distinct keys (as the key part of its tokens), sorted. */
static void key_set(void *arg, size_t i) {
  const struct vs_vm_tokens *vms = ((void **)arg)[0];
  struct tokset *set = &((struct tokset *)((void **)arg)[1])[i];
  set->t = vs_xmalloc((vms[i].n ? vms[i].n : 1) * sizeof(uint64_t));
  for (size_t k = 0; k < vms[i].n; k++)
    set->t[k] = vms[i].tokens[k] >> 32; /* the key's part of the token (analytics.h) */
  set->n = sort_unique(set->t, vms[i].n);
}

/* Keeps of SET the tokens BY has (KEEP) or those it lacks (!KEEP); both sorted. */
static void filter(struct tokset *set, const struct tokset *by, bool keep) {
  size_t k = 0, c = 0;
  for (size_t p = 0; p < set->n; p++) {
    while (c < by->n && by->t[c] < set->t[p])
      c++;
    if ((c < by->n && by->t[c] == set->t[p]) == keep) set->t[k++] = set->t[p];
  }
  set->n = k;
}

/* Each VM's distinct keys, sorted, less those every VM has. */
static struct tokset *reduced_sets(const struct vs_vm_tokens *vms, size_t n) {
  struct tokset *sets = vs_xcalloc(n, sizeof(*sets));
  void *args[] = {(void *)vms, sets};
  vs_parallel_for(n, 0, key_set, args);
  /* The keys every VM has: the first VM's, narrowed by each other VM's. */
  struct tokset common = {.t = vs_xmalloc((sets[0].n ? sets[0].n : 1) * sizeof(uint64_t))};
  memcpy(common.t, sets[0].t, sets[0].n * sizeof(uint64_t));
  common.n = sets[0].n;
  for (size_t i = 1; i < n && common.n; i++)
    filter(&common, &sets[i], true);
  for (size_t i = 0; i < n; i++)
    filter(&sets[i], &common, false);
  free(common.t);
  return sets;
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

/* Orders VM indices by their sets (SETS): by size, then token by token. */
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

/* VMs with the same keys (less the common ones) are one class: at distance 0 from each other,
 * so always close, and at the same distance from every other VM. Distances are measured
 * between classes only, twice (for the nearest neighbours, then for closeness) rather than
 * kept: a fleet of mostly alike VMs has few classes, and memory stays linear in the fleet
 * however many there are. The groups are those of every pair of VMs. */
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
  _cleanup_(vs_freep) uint32_t *nearest = vs_xmalloc(classes * sizeof(uint32_t));
  for (size_t c = 0; c < classes; c++)
    nearest[c] = members[c] > 1 ? 0 : UINT32_MAX;
  for (size_t c = 0; c < classes; c++)
    for (size_t e = c + 1; e < classes; e++) {
      uint32_t x = distance(&sets[first[c]], &sets[first[e]]);
      if (x < nearest[c]) nearest[c] = x;
      if (x < nearest[e]) nearest[e] = x;
    }
  _cleanup_(vs_freep) size_t *parent = vs_xmalloc(classes * sizeof(size_t));
  for (size_t c = 0; c < classes; c++)
    parent[c] = c;
  for (size_t c = 0; c < classes; c++)
    for (size_t e = c + 1; e < classes; e++)
      if (close_both(distance(&sets[first[c]], &sets[first[e]]), nearest[c], nearest[e]))
        parent[find(parent, c)] = find(parent, e);
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
