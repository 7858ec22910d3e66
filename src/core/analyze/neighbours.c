/* Close peers by exact distance (neighbours.h). */
#include "neighbours.h"

#include "util.h"

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

/* Each VM's distinct keys (as the key part of its tokens), sorted, less those every VM has. */
static struct tokset *reduced_sets(const struct vs_vm_tokens *vms, size_t n) {
  struct tokset *sets = vs_xcalloc(n, sizeof(*sets));
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    sets[i].t = vs_xmalloc((vms[i].n ? vms[i].n : 1) * sizeof(uint64_t));
    for (size_t k = 0; k < vms[i].n; k++)
      sets[i].t[k] = vms[i].tokens[k] >> 32; /* the key's part of the token (analytics.h) */
    sets[i].n = sort_unique(sets[i].t, vms[i].n);
    total += sets[i].n;
  }
  _cleanup_(vs_freep) uint64_t *all = vs_xmalloc((total ? total : 1) * sizeof(uint64_t));
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(all + at, sets[i].t, sets[i].n * sizeof(uint64_t));
    at += sets[i].n;
  }
  if (total) qsort(all, total, sizeof(uint64_t), cmp_u64);
  size_t n_common = 0; /* tokens in every set: each set holds a token once */
  for (size_t i = 0; i < total;) {
    size_t j = i;
    while (j < total && all[j] == all[i])
      j++;
    if (j - i == n) all[n_common++] = all[i];
    i = j;
  }
  for (size_t i = 0; i < n; i++) {
    size_t k = 0, c = 0;
    for (size_t p = 0; p < sets[i].n; p++) {
      while (c < n_common && all[c] < sets[i].t[p])
        c++;
      if (c < n_common && all[c] == sets[i].t[p]) continue;
      sets[i].t[k++] = sets[i].t[p];
    }
    sets[i].n = k;
  }
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

size_t vs_close_groups(const struct vs_vm_tokens *vms, size_t n, size_t *group) {
  if (n == 0) return 0;
  struct tokset *sets = reduced_sets(vms, n);
  _cleanup_(vs_freep) uint32_t *d = vs_xmalloc(n * n * sizeof(uint32_t));
  _cleanup_(vs_freep) uint32_t *nearest = vs_xmalloc(n * sizeof(uint32_t));
  for (size_t i = 0; i < n; i++)
    nearest[i] = UINT32_MAX;
  for (size_t i = 0; i < n; i++) {
    d[i * n + i] = 0;
    for (size_t j = i + 1; j < n; j++) {
      uint32_t x = distance(&sets[i], &sets[j]);
      d[i * n + j] = d[j * n + i] = x;
      if (x < nearest[i]) nearest[i] = x;
      if (x < nearest[j]) nearest[j] = x;
    }
  }
  _cleanup_(vs_freep) size_t *parent = vs_xmalloc(n * sizeof(size_t));
  for (size_t i = 0; i < n; i++)
    parent[i] = i;
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) {
      uint64_t x = d[i * n + j];
      if (x <= 2 * (uint64_t)nearest[i] + VS_CLOSE_SLACK &&
          x <= 2 * (uint64_t)nearest[j] + VS_CLOSE_SLACK)
        parent[find(parent, i)] = find(parent, j);
    }
  _cleanup_(vs_freep) size_t *number = vs_xmalloc(n * sizeof(size_t));
  size_t groups = 0;
  for (size_t i = 0; i < n; i++)
    number[i] = SIZE_MAX;
  for (size_t i = 0; i < n; i++) {
    size_t root = find(parent, i);
    if (number[root] == SIZE_MAX) number[root] = groups++;
    group[i] = number[root];
  }
  for (size_t i = 0; i < n; i++)
    free(sets[i].t);
  free(sets);
  return groups;
}
