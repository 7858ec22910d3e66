#include "analytics.h"

#include "strmap.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define K VS_MINHASH_BINS
#define BANDS 32
#define ROWS (K / BANDS)
#define EMPTY UINT64_MAX
#define MEDOID_SAMPLE 64
#define LONE_EXACT 64 /* roles up to which a lone VM is compared with every one */
/* VMs with at most this many informative tokens keep them, and are compared exactly: with few
 * tokens the signature's estimate is coarse. */
#define EXACT_MAX 512

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* A token's high half is its key's hash, its low half the setting's: the tokens of one key
 * sort together, so a VM's other value for a key is found next to where the key's token is. */
#define KEY_BITS 0xffffffff00000000ULL

uint64_t vs_token(const char *key, const char *value) {
  size_t kl = strlen(key), vl = strlen(value);
  char stack[512], *buf = kl + vl + 1 <= sizeof(stack) ? stack : vs_xmalloc(kl + vl + 1);
  memcpy(buf, key, kl);
  buf[kl] = 0; /* keys hold no NUL: "a"+"bc" and "ab"+"c" differ */
  memcpy(buf + kl + 1, value, vl);
  uint64_t k = vs_siphash24(buf, kl, 0x766d73636f706521ULL, 0x6b657973ULL);
  uint64_t t = vs_siphash24(buf, kl + vl + 1, 0x766d73636f706521ULL, 0x746f6b656e73ULL);
  if (buf != stack) free(buf);
  return (k & KEY_BITS) | (t & ~KEY_BITS);
}

size_t vs_doc_tokens_by(const struct vs_feature *doc, const struct vs_strmap *by_presence,
                        uint64_t **out) {
  size_t n = vs_feature_count(doc), i = 0, pos = 0;
  uint64_t *t = vs_xcalloc(n ? n : 1, sizeof(uint64_t));
  const char *k, *v;
  while (i < n && vs_feature_next(doc, &pos, &k, &v))
    t[i++] = vs_token(k, by_presence && vs_strmap_has(by_presence, k) ? "" : v);
  *out = t;
  return i;
}

size_t vs_doc_tokens(const struct vs_feature *doc, uint64_t **out) {
  return vs_doc_tokens_by(doc, NULL, out);
}

/* ------------------------------------------------------- token counts (an open hash table) */

/* A token's count and whether it is negatable in one slot: a signature looks up each of a
 * VM's thousands of tokens, and at 10,000 VMs the table is megabytes, each lookup a cache
 * miss; one slot is one miss where the count, then the negatable tokens' own table, were
 * three (bench/fleet-scale.sh: the signatures were half the role analysis). */
struct count_slot {
  uint64_t key; /* 0: empty (a token 0 is counted in ZERO, and is never negatable) */
  uint32_t n;
  uint32_t neg; /* the token's index + 1 among the negatable ones (struct negatable), or 0 */
};

struct counts {
  struct count_slot *slot;
  size_t cap, used;
  uint32_t zero;
};

static void counts_add_n(struct counts *c, uint64_t t, uint32_t n);

static void counts_grow(struct counts *c) {
  struct counts big = {.cap = c->cap ? 2 * c->cap : 1 << 16, .zero = c->zero};
  big.slot = vs_xcalloc(big.cap, sizeof(*big.slot));
  for (size_t i = 0; i < c->cap; i++)
    if (c->slot[i].key) {
      size_t h = mix64(c->slot[i].key) & (big.cap - 1);
      while (big.slot[h].key)
        h = (h + 1) & (big.cap - 1);
      big.slot[h] = c->slot[i];
      big.used++;
    }
  free(c->slot);
  *c = big;
}

/* Adds N to token T's count. */
static void counts_add_n(struct counts *c, uint64_t t, uint32_t n) {
  if (!t) {
    c->zero += n;
    return;
  }
  if (2 * (c->used + 1) > c->cap) counts_grow(c);
  size_t h = mix64(t) & (c->cap - 1);
  while (c->slot[h].key && c->slot[h].key != t)
    h = (h + 1) & (c->cap - 1);
  if (!c->slot[h].key) {
    c->slot[h].key = t;
    c->used++;
  }
  c->slot[h].n += n;
}

/* Token T's slot, or NULL when it is not counted (or is 0: its count is ZERO). */
static struct count_slot *counts_slot(const struct counts *c, uint64_t t) {
  if (!t || !c->cap) return NULL;
  size_t h = mix64(t) & (c->cap - 1);
  while (c->slot[h].key && c->slot[h].key != t)
    h = (h + 1) & (c->cap - 1);
  return c->slot[h].key ? &c->slot[h] : NULL;
}

/* How many tokens ahead a loop over a VM's tokens asks for the slot it will look up: its
 * lookups are independent, and most of the fleet's tokens are in no cache (a token held by
 * one VM, its hostname, is in one slot of a table of megabytes). */
#define PREFETCH_AHEAD 8

/* Asks for token T's slot in C's table (a hint: the table may grow before it is used). */
static void counts_prefetch(const struct counts *c, uint64_t t) {
  if (c->cap) __builtin_prefetch(&c->slot[mix64(t) & (c->cap - 1)]);
}

struct count_job {
  const struct vs_vm_tokens *vms;
  size_t from, to;
  struct counts df;
};

static void *count_worker(void *arg) {
  struct count_job *j = arg;
  for (size_t i = j->from; i < j->to; i++) {
    const uint64_t *tokens = j->vms[i].tokens;
    size_t n = j->vms[i].n;
    for (size_t t = 0; t < n; t++) {
      if (t + PREFETCH_AHEAD < n) counts_prefetch(&j->df, tokens[t + PREFETCH_AHEAD]);
      counts_add_n(&j->df, tokens[t], 1);
    }
  }
  return NULL;
}

/* How many of the N VMs have each token (a VM's duplicates count once: tokens come from a
 * map): each half of the VMs counted on its own thread from 64 VMs, then added up. */
static struct counts count_tokens(const struct vs_vm_tokens *vms, size_t n) {
  struct count_job jobs[2] = {{.vms = vms, .to = n / 2}, {.vms = vms, .from = n / 2, .to = n}};
  pthread_t t;
  bool threaded = n >= 64 && pthread_create(&t, NULL, count_worker, &jobs[1]) == 0;
  if (!threaded) jobs[0].to = n;
  count_worker(&jobs[0]);
  if (threaded) {
    pthread_join(t, NULL);
    for (size_t i = 0; i < jobs[1].df.cap; i++)
      if (jobs[1].df.slot[i].key)
        counts_add_n(&jobs[0].df, jobs[1].df.slot[i].key, jobs[1].df.slot[i].n);
    jobs[0].df.zero += jobs[1].df.zero;
    free(jobs[1].df.slot);
  }
  return jobs[0].df;
}

/* ------------------------------------------------------------------------------ analysis */

struct vs_analysis {
  size_t n, n_roles;
  uint64_t seed;
  uint64_t *sig;    /* n x K */
  bool *blank;      /* no informative token at all */
  uint64_t **exact; /* the informative token hashes, sorted, when at most EXACT_MAX */
  size_t *n_exact;
  size_t *n_informative; /* how many informative tokens (and negations) each VM has */
  size_t *n_own;         /* and how many tokens no other VM has */
  uint64_t **other;      /* with EXACT: its negations of a value it has another of, sorted */
  size_t *n_other;
  size_t *role, *role_size, *medoid;
  double *similarity, *anomaly, *label_p;
  char **label;
};

/* The negatable tokens (those whose absence is informative too) by key, so that a VM's
 * tokens are each looked up once, instead of sorted to be merged with them (by value: their
 * count slots, struct count_slot). Slots hold an index + 1 (0: free); linear probing from the
 * key's mix64. */
struct negatable {
  const uint64_t *neg; /* sorted */
  size_t n_neg;
  uint64_t *key; /* by key part: the key's number + 1 in KEY_INDEX */
  uint32_t *key_index;
  uint32_t *key_of; /* NEG[k]'s key's number */
  size_t n_keys, mask;
};

struct sig_job {
  struct vs_analysis *a;
  const struct vs_vm_tokens *vms;
  const struct counts *df;
  uint32_t lo, hi; /* informative: LO <= count <= HI */
  const struct negatable *neg;
  size_t from, to;
};

static int cmp_u64(const void *p, const void *q) {
  uint64_t x = *(const uint64_t *)p, y = *(const uint64_t *)q;
  return x < y ? -1 : x > y;
}

/* One-permutation MinHash of TOKENS (those whose count is informative) into SIG; false when
 * none is. Empty bins borrow from another bin chosen by a hash of their index (densified). */
struct hashes { /* the informative token hashes of one VM, while there are few */
  uint64_t h[EXACT_MAX];
  size_t n;
  bool over;
  size_t all, own;           /* informative hashes put, and tokens of this VM alone */
  uint64_t other[EXACT_MAX]; /* negations of a value where the VM has another one */
  size_t n_other;
};

static void put(uint64_t *sig, uint64_t h, struct hashes *keep) {
  unsigned bin = (unsigned)(h >> 57);
  uint64_t v = h & ((1ULL << 57) - 1);
  if (v < sig[bin]) sig[bin] = v;
  if (keep) keep->all++;
  if (keep && !keep->over) {
    if (keep->n == EXACT_MAX)
      keep->over = true;
    else
      keep->h[keep->n++] = h;
  }
}

static size_t neg_slot(const uint64_t *table, const uint32_t *index, size_t mask, uint64_t x) {
  size_t h = mix64(x) & mask;
  while (index[h] && table[h] != x)
    h = (h + 1) & mask;
  return h;
}

static bool signature(const uint64_t *tokens, size_t n, const struct sig_job *j, uint64_t *sig,
                      struct hashes *keep) {
  for (int b = 0; b < K; b++)
    sig[b] = EMPTY;
  bool any = false;
  const struct negatable *ng = j->neg;
  /* Which negatable tokens the VM has, and which of their keys with any value. */
  uint8_t *has = ng->n_neg ? vs_xcalloc(ng->n_neg + ng->n_keys, 1) : NULL;
  uint8_t *key_held = has ? has + ng->n_neg : NULL;
  for (size_t i = 0; i < n; i++) {
    if (i + PREFETCH_AHEAD < n) counts_prefetch(j->df, tokens[i + PREFETCH_AHEAD]);
    const struct count_slot *slot = counts_slot(j->df, tokens[i]);
    uint32_t c = slot ? slot->n : tokens[i] ? 0 : j->df->zero;
    if (ng->n_neg) {
      if (slot && slot->neg) has[slot->neg - 1] = 1;
      uint32_t k = keep /* only the likeness of kept hashes asks about the key */
                       ? ng->key_index[neg_slot(ng->key, ng->key_index, ng->mask, tokens[i] >> 32)]
                       : 0;
      if (k) key_held[k - 1] = 1;
    }
    if (keep && c < j->lo) keep->own++;
    if (c < j->lo || c > j->hi) continue;
    put(sig, mix64(tokens[i] ^ j->a->seed), keep);
    any = true;
  }
  /* A role is also what its VMs lack: a VM without a token that a good share of VMs have gets
   * that token's negation (so VMs of a role defined by the packages it does not have still
   * share something). */
  for (size_t k = 0; k < ng->n_neg; k++) {
    if (has[k]) continue;
    uint64_t h = mix64(ng->neg[k] ^ j->a->seed ^ 0x6e6f742d746f6b65ULL);
    put(sig, h, keep);
    any = true;
    /* It has the key with another value: for likeness, that value says how it differs,
     * while "not the common value" is shared by VMs that differ in unrelated ways. */
    if (keep && keep->n_other < EXACT_MAX && key_held[ng->key_of[k]])
      keep->other[keep->n_other++] = h;
  }
  free(has);
  if (!any) return false;
  uint64_t filled[K];
  memcpy(filled, sig, sizeof(filled));
  for (int b = 0; b < K; b++) {
    if (filled[b] != EMPTY) continue;
    for (uint64_t attempt = 1;; attempt++) {
      unsigned from = (unsigned)(mix64(j->a->seed ^ ((uint64_t)b << 32 | attempt)) % K);
      if (filled[from] != EMPTY) {
        sig[b] = filled[from] | (1ULL << 58); /* marked: a borrowed value matches borrowed ones */
        break;
      }
    }
  }
  return true;
}

static void *sig_worker(void *arg) {
  struct sig_job *j = arg;
  struct hashes *keep = vs_xmalloc(sizeof(*keep));
  for (size_t i = j->from; i < j->to; i++) {
    keep->n = keep->all = keep->own = keep->n_other = 0;
    keep->over = false;
    j->a->blank[i] = !signature(j->vms[i].tokens, j->vms[i].n, j, j->a->sig + i * K, keep);
    j->a->n_informative[i] = keep->all;
    j->a->n_own[i] = keep->own;
    if (!keep->over && keep->n) {
      qsort(keep->h, keep->n, sizeof(uint64_t), cmp_u64);
      size_t m = 0; /* distinct hashes */
      for (size_t k = 0; k < keep->n; k++)
        if (!m || keep->h[k] != keep->h[m - 1]) keep->h[m++] = keep->h[k];
      j->a->exact[i] = vs_xmalloc(m * sizeof(uint64_t));
      memcpy(j->a->exact[i], keep->h, m * sizeof(uint64_t));
      j->a->n_exact[i] = m;
      qsort(keep->other, keep->n_other, sizeof(uint64_t), cmp_u64);
      j->a->other[i] = vs_xmalloc((keep->n_other ? keep->n_other : 1) * sizeof(uint64_t));
      memcpy(j->a->other[i], keep->other, keep->n_other * sizeof(uint64_t));
      j->a->n_other[i] = keep->n_other;
    }
  }
  free(keep);
  return NULL;
}

static double sig_sim(const uint64_t *x, const uint64_t *y) {
  int same = 0;
  for (int b = 0; b < K; b++)
    same += x[b] == y[b];
  return (double)same / K;
}

static bool has_hash(const uint64_t *v, size_t n, uint64_t h) {
  return n && bsearch(&h, v, n, sizeof(uint64_t), cmp_u64) != NULL;
}

/* How many informative tokens VMs I and J share (estimated from their signatures when either
 * has too many to keep), and how many they have together (TOTAL, counting shared ones twice).
 * With LIKENESS, a negation of a value the VM has another one of counts for nothing (exactly
 * only: a signature cannot tell it from the others). */
static void overlap(const struct vs_analysis *a, size_t i, size_t j, bool likeness, double *both,
                    double *total) {
  *both = 0;
  *total = 0;
  if (a->blank[i] || a->blank[j]) {
    *total = (double)(a->n_informative[i] + a->n_informative[j]);
    return;
  }
  if (a->exact[i] && a->exact[j]) { /* |A n B| by merging */
    const uint64_t *x = a->exact[i], *y = a->exact[j];
    size_t nx = a->n_exact[i], ny = a->n_exact[j], p = 0, q = 0, n = 0;
    while (!likeness && p < nx && q < ny) { /* without a branch the order of hashes predicts */
      uint64_t u = x[p], w = y[q];
      n += u == w;
      p += u <= w;
      q += w <= u;
    }
    while (likeness && p < nx && q < ny) {
      if (x[p] == y[q]) {
        n += !likeness || (!has_hash(a->other[i], a->n_other[i], x[p]) &&
                           !has_hash(a->other[j], a->n_other[j], x[p]));
        p++;
        q++;
      } else if (x[p] < y[q]) {
        p++;
      } else {
        q++;
      }
    }
    *both = (double)n;
    *total = (double)(nx + ny);
    if (likeness) *total -= (double)(a->n_other[i] + a->n_other[j]);
    return;
  }
  double s = sig_sim(a->sig + i * K, a->sig + j * K); /* J = both / (total - both) */
  *total = (double)(a->n_informative[i] + a->n_informative[j]);
  *both = s * *total / (1 + s);
}

double vs_analysis_pair(const struct vs_analysis *a, size_t i, size_t j) {
  if (a->blank[i] || a->blank[j]) return a->blank[i] && a->blank[j] ? 1.0 : 0.0;
  if (!a->exact[i] || !a->exact[j]) return sig_sim(a->sig + i * K, a->sig + j * K);
  double both, total;
  overlap(a, i, j, false, &both, &total);
  return both / (total - both);
}

double vs_analysis_likeness(const struct vs_analysis *a, size_t i, size_t j) {
  if (i == j) return 1.0;
  double both, total;
  overlap(a, i, j, true, &both, &total);
  /* A token of one VM alone is in neither's intersection: it only widens the union. */
  double either = total - both + (double)(a->n_own[i] + a->n_own[j]);
  return either > 0 ? both / either : 1.0;
}

static size_t find(size_t *parent, size_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

static void join(size_t *parent, size_t x, size_t y) {
  x = find(parent, x);
  y = find(parent, y);
  if (x == y) return;
  if (x < y) /* the lower index is the root: the result does not depend on the join order */
    parent[y] = x;
  else
    parent[x] = y;
}

struct band_entry {
  uint64_t key;
  size_t vm;
};

static int cmp_band(const void *p, const void *q) {
  const struct band_entry *x = p, *y = q;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->vm < y->vm ? -1 : x->vm > y->vm;
}

struct role_rank {
  size_t root, size;
};

static int cmp_role(const void *p, const void *q) {
  const struct role_rank *x = p, *y = q;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  return x->root < y->root ? -1 : x->root > y->root;
}

struct vote {
  double sim;
  size_t vm;
};

static int cmp_vote(const void *p, const void *q) {
  const struct vote *x = p, *y = q;
  if (x->sim != y->sim) return x->sim > y->sim ? -1 : 1;
  return x->vm < y->vm ? -1 : x->vm > y->vm;
}

static void predict_labels(struct vs_analysis *a, const struct vs_vm_tokens *vms, int k) {
  size_t n_labelled = 0;
  for (size_t i = 0; i < a->n; i++)
    n_labelled += vms[i].label != NULL;
  if (!n_labelled) return;
  struct vote *v = vs_xcalloc(n_labelled, sizeof(*v));
  for (size_t i = 0; i < a->n; i++) {
    if (vms[i].label) {
      a->label[i] = vs_xstrdup(vms[i].label);
      a->label_p[i] = 1.0;
      continue;
    }
    size_t m = 0;
    for (size_t j = 0; j < a->n; j++)
      if (vms[j].label) v[m++] = (struct vote){vs_analysis_pair(a, i, j), j};
    qsort(v, m, sizeof(*v), cmp_vote);
    size_t top = m < (size_t)k ? m : (size_t)k;
    double total = 0, best = -1;
    const char *winner = NULL;
    for (size_t x = 0; x < top; x++)
      total += v[x].sim + 1e-9;
    for (size_t x = 0; x < top; x++) {
      const char *l = vms[v[x].vm].label;
      double w = 0;
      for (size_t y = 0; y < top; y++)
        if (strcmp(vms[v[y].vm].label, l) == 0) w += v[y].sim + 1e-9;
      if (w > best || (w == best && strcmp(l, winner) < 0)) {
        best = w;
        winner = l;
      }
    }
    a->label[i] = vs_xstrdup(winner);
    a->label_p[i] = total > 0 ? best / total : 0;
  }
  free(v);
}

static struct vs_analysis *analysis_new(size_t n, const struct vs_analytics_opts *o) {
  struct vs_analysis *a = vs_xcalloc(1, sizeof(*a));
  a->n = n;
  a->seed = o->seed ? o->seed : 0x5eed5eed5eedULL;
  size_t cap = n ? n : 1;
  a->sig = vs_xcalloc(cap * K, sizeof(uint64_t));
  a->blank = vs_xcalloc(cap, sizeof(bool));
  a->exact = vs_xcalloc(cap, sizeof(uint64_t *));
  a->n_exact = vs_xcalloc(cap, sizeof(size_t));
  a->n_informative = vs_xcalloc(cap, sizeof(size_t));
  a->n_own = vs_xcalloc(cap, sizeof(size_t));
  a->other = vs_xcalloc(cap, sizeof(uint64_t *));
  a->n_other = vs_xcalloc(cap, sizeof(size_t));
  a->role = vs_xcalloc(cap, sizeof(size_t));
  a->role_size = vs_xcalloc(cap, sizeof(size_t));
  a->medoid = vs_xcalloc(cap, sizeof(size_t));
  a->similarity = vs_xcalloc(cap, sizeof(double));
  a->anomaly = vs_xcalloc(cap, sizeof(double));
  a->label_p = vs_xcalloc(cap, sizeof(double));
  a->label = vs_xcalloc(cap, sizeof(char *));
  return a;
}

/* Negatable tokens, sorted: those that at least the complement of the common share of the N
 * VMs have, and not all but one. */
static uint64_t *negatable_tokens(const struct counts *df, size_t n, double common, size_t *n_neg) {
  double lo = (1 - common) * (double)n; /* not negative: its ceiling without libm */
  uint32_t neg_lo = (uint32_t)lo + ((double)(uint32_t)lo < lo);
  if (neg_lo < 2) neg_lo = 2;
  uint64_t *neg = NULL;
  size_t cap = 0;
  *n_neg = 0;
  for (size_t i = 0; n >= 4 && i < df->cap; i++) {
    const struct count_slot *c = &df->slot[i];
    if (!c->key || c->n < neg_lo || c->n + 2 > n) continue;
    if (*n_neg == cap) {
      cap = cap ? 2 * cap : 256;
      neg = vs_xrealloc(neg, cap * sizeof(uint64_t));
    }
    neg[(*n_neg)++] = c->key;
  }
  if (*n_neg) qsort(neg, *n_neg, sizeof(uint64_t), cmp_u64);
  return neg;
}

/* NG's tables over its N_NEG tokens NEG (sorted, distinct). */
static void negatable_index(struct negatable *ng, struct counts *df, const uint64_t *neg,
                            size_t n_neg) {
  *ng = (struct negatable){.neg = neg, .n_neg = n_neg};
  if (!n_neg) return;
  size_t cap = vs_table_cap(n_neg);
  ng->mask = cap - 1;
  ng->key = vs_xcalloc(cap, sizeof(uint64_t));
  ng->key_index = vs_xcalloc(cap, sizeof(uint32_t));
  ng->key_of = vs_xcalloc(n_neg, sizeof(uint32_t));
  for (size_t k = 0; k < n_neg; k++) {
    counts_slot(df, neg[k])->neg = (uint32_t)k + 1; /* counted: it was found there */
    size_t s = neg_slot(ng->key, ng->key_index, ng->mask, neg[k] >> 32);
    if (!ng->key_index[s]) {
      ng->key[s] = neg[k] >> 32;
      ng->key_index[s] = (uint32_t)++ng->n_keys;
    }
    ng->key_of[k] = ng->key_index[s] - 1;
  }
}

static void negatable_clear(struct negatable *ng) {
  free(ng->key);
  free(ng->key_index);
  free(ng->key_of);
}

/* Every VM's signature, on two threads from 64 VMs. JOB describes what is informative; its
 * range is ignored. */
static void sign_all(const struct sig_job *job, size_t n) {
  struct sig_job jobs[2] = {*job, *job};
  jobs[0].from = 0;
  jobs[0].to = jobs[1].from = n / 2;
  jobs[1].to = n;
  pthread_t t;
  bool threaded = n >= 64 && pthread_create(&t, NULL, sig_worker, &jobs[1]) == 0;
  if (!threaded) jobs[0].to = n;
  sig_worker(&jobs[0]);
  if (threaded) pthread_join(t, NULL);
}

/* The VMs most like one that the bands proposed to compare it with, most alike first: for a
 * VM left alone in its role, the nearest of them that is alone too. */
#define PROPOSED 4
struct proposed {
  double sim[PROPOSED];
  size_t vm[PROPOSED];
  size_t n;
};

static void propose(struct proposed *p, size_t vm, double sim) {
  for (size_t k = 0; k < p->n; k++) /* a pair can meet in several bands */
    if (p->vm[k] == vm) return;
  size_t at = p->n < PROPOSED ? p->n++ : PROPOSED;
  while (at > 0 && p->sim[at - 1] < sim) {
    if (at < PROPOSED) {
      p->sim[at] = p->sim[at - 1];
      p->vm[at] = p->vm[at - 1];
    }
    at--;
  }
  if (at < PROPOSED) {
    p->sim[at] = sim;
    p->vm[at] = vm;
  }
}

/* A band's candidate pairs (a bucket's first VM and each other), and their similarity. */
struct band_pairs {
  const struct vs_analysis *a;
  size_t (*pair)[2];
  double *sim;
  size_t n, cap;
};

static void pair_sim(void *arg, size_t k) {
  struct band_pairs *bp = arg;
  bp->sim[k] = vs_analysis_pair(bp->a, bp->pair[k][0], bp->pair[k][1]);
}

/* Candidate pairs from the bands, joined (union-find PARENT) when similar enough; each pair
 * compared is proposed to both (PROPOSED). A band's pairs whose VMs are apart when it begins
 * are compared on every CPU first; then, in the band's order as before, those still apart (a
 * join earlier in the band may have joined them) are proposed and joined. */
static size_t *join_similar(const struct vs_analysis *a, double threshold,
                            struct proposed *proposed) {
  size_t n = a->n;
  size_t *parent = vs_xcalloc(n, sizeof(size_t));
  for (size_t i = 0; i < n; i++)
    parent[i] = i;
  struct band_entry *be = vs_xcalloc(n, sizeof(*be));
  struct band_pairs bp = {.a = a};
  for (int b = 0; b < BANDS; b++) {
    for (size_t i = 0; i < n; i++) {
      uint64_t h = a->blank[i] ? 0 : 0x9e3779b97f4a7c15ULL * (uint64_t)(b + 1);
      for (int r = 0; r < ROWS && !a->blank[i]; r++)
        h = mix64(h ^ a->sig[i * K + b * ROWS + r]);
      be[i] = (struct band_entry){h, i};
    }
    qsort(be, n, sizeof(*be), cmp_band);
    bp.n = 0;
    for (size_t s = 0; s < n;) {
      size_t e = s + 1;
      while (e < n && be[e].key == be[s].key)
        e++;
      for (size_t x = s + 1; x < e; x++) {
        if (find(parent, be[x].vm) == find(parent, be[s].vm)) continue;
        if (bp.n == bp.cap) {
          bp.cap = bp.cap ? 2 * bp.cap : 256;
          bp.pair = vs_xrealloc(bp.pair, bp.cap * sizeof(*bp.pair));
          bp.sim = vs_xrealloc(bp.sim, bp.cap * sizeof(*bp.sim));
        }
        bp.pair[bp.n][0] = be[s].vm;
        bp.pair[bp.n++][1] = be[x].vm;
      }
      s = e;
    }
    vs_parallel_for(bp.n, 0, pair_sim, &bp);
    for (size_t k = 0; k < bp.n; k++) {
      size_t p = bp.pair[k][0], q = bp.pair[k][1];
      if (find(parent, q) == find(parent, p)) continue;
      propose(&proposed[p], q, bp.sim[k]);
      propose(&proposed[q], p, bp.sim[k]);
      if (bp.sim[k] >= threshold) join(parent, p, q);
    }
  }
  free(bp.pair);
  free(bp.sim);
  free(be);
  return parent;
}

/* Roles: the groups of PARENT, largest first. */
static void assign_roles(struct vs_analysis *a, size_t *parent) {
  size_t n = a->n;
  struct role_rank *rr = vs_xcalloc(n, sizeof(*rr));
  size_t *count = vs_xcalloc(n, sizeof(size_t));
  for (size_t i = 0; i < n; i++)
    count[find(parent, i)]++;
  for (size_t i = 0; i < n; i++)
    if (count[i]) rr[a->n_roles++] = (struct role_rank){i, count[i]};
  qsort(rr, a->n_roles, sizeof(*rr), cmp_role);
  size_t *role_of_root = count; /* reused */
  for (size_t r = 0; r < a->n_roles; r++) {
    role_of_root[rr[r].root] = r;
    a->role_size[r] = rr[r].size;
  }
  for (size_t i = 0; i < n; i++)
    a->role[i] = role_of_root[find(parent, i)];
  free(rr);
  free(count);
}

/* Medoids: among up to MEDOID_SAMPLE members (the first ones), the most like the others. */
static void find_medoids(struct vs_analysis *a) {
  size_t *sample = vs_xcalloc(MEDOID_SAMPLE, sizeof(size_t));
  for (size_t r = 0; r < a->n_roles; r++) {
    size_t m = 0;
    for (size_t i = 0; i < a->n && m < MEDOID_SAMPLE; i++)
      if (a->role[i] == r) sample[m++] = i;
    double best = -1;
    for (size_t x = 0; x < m; x++) {
      double sum = 0;
      for (size_t y = 0; y < m; y++)
        sum += vs_analysis_pair(a, sample[x], sample[y]);
      if (sum > best) {
        best = sum;
        a->medoid[r] = sample[x];
      }
    }
  }
  free(sample);
}

/* The medoids a lone VM is compared with (the first LONE_EXACT roles and those of two VMs or
 * more), by the informative hashes of those compared exactly: for each hash, the roles whose
 * medoid has it (in ROLE, from FIRST[slot] for COUNT[slot]; HASH[slot] the hash, COUNT 0: a
 * free slot). A lone VM's shared hashes with each are then counted from its own hashes' lists,
 * not by merging its hashes with every medoid's: lone VMs and roles both grow with the fleet. */
struct medoid_index {
  size_t n_compared; /* roles 0 .. n_compared - 1 */
  uint64_t *hash;
  size_t *first;
  uint32_t *count;
  size_t mask;
  uint32_t *role;
  size_t *others, n_others; /* the compared roles whose medoid is blank or not compared exactly */
};

static size_t index_slot(const struct medoid_index *ix, uint64_t h) {
  size_t s = (size_t)mix64(h) & ix->mask;
  while (ix->count[s] && ix->hash[s] != h)
    s = (s + 1) & ix->mask;
  return s;
}

static void medoid_index_make(struct medoid_index *ix, const struct vs_analysis *a) {
  *ix = (struct medoid_index){0};
  while (ix->n_compared < a->n_roles &&
         (ix->n_compared < LONE_EXACT || a->role_size[ix->n_compared] > 1))
    ix->n_compared++;
  size_t n = 0;
  for (size_t r = 0; r < ix->n_compared; r++) {
    size_t m = a->medoid[r];
    if (!a->blank[m] && a->exact[m]) n += a->n_exact[m];
  }
  struct band_entry *all = vs_xmalloc((n ? n : 1) * sizeof(*all));
  ix->others = vs_xmalloc((ix->n_compared ? ix->n_compared : 1) * sizeof(size_t));
  n = 0;
  for (size_t r = 0; r < ix->n_compared; r++) {
    size_t m = a->medoid[r];
    if (a->blank[m] || !a->exact[m]) {
      ix->others[ix->n_others++] = r;
      continue;
    }
    for (size_t k = 0; k < a->n_exact[m]; k++)
      all[n++] = (struct band_entry){a->exact[m][k], r}; /* a hash and its role */
  }
  qsort(all, n, sizeof(*all), cmp_band);
  size_t cap = vs_table_cap(n);
  ix->mask = cap - 1;
  ix->hash = vs_xcalloc(cap, sizeof(uint64_t));
  ix->first = vs_xcalloc(cap, sizeof(size_t));
  ix->count = vs_xcalloc(cap, sizeof(uint32_t));
  ix->role = vs_xmalloc((n ? n : 1) * sizeof(uint32_t));
  for (size_t k = 0; k < n; k++) {
    ix->role[k] = (uint32_t)all[k].vm;
    size_t s = index_slot(ix, all[k].key);
    if (!ix->count[s]) {
      ix->hash[s] = all[k].key;
      ix->first[s] = k;
    }
    ix->count[s]++;
  }
  free(all);
}

static void medoid_index_clear(struct medoid_index *ix) {
  free(ix->hash);
  free(ix->first);
  free(ix->count);
  free(ix->role);
  free(ix->others);
}

struct score_job {
  struct vs_analysis *a;
  const struct vs_vm_tokens *vms;
  const struct sig_job *hist;
  const struct proposed *proposed; /* join_similar's */
  const struct medoid_index *ix;
};

/* The most alike of the compared roles' medoids to lone VM I (vs_analysis_pair of each, but
 * its own role), or NEAREST when none is more alike. SHARED (IX's compared roles, zero) and
 * TOUCHED are a chunk's scratch. */
static double nearest_medoid(const struct score_job *j, size_t i, double nearest, uint32_t *shared,
                             uint32_t *touched) {
  const struct vs_analysis *a = j->a;
  const struct medoid_index *ix = j->ix;
  if (a->blank[i] || !a->exact[i]) { /* compared by signature: each in turn */
    for (size_t r = 0; r < ix->n_compared; r++) {
      if (r == a->role[i]) continue;
      double sim = vs_analysis_pair(a, i, a->medoid[r]);
      if (sim > nearest) nearest = sim;
    }
    return nearest;
  }
  size_t n_touched = 0;
  for (size_t k = 0; k < a->n_exact[i]; k++) {
    size_t s = index_slot(ix, a->exact[i][k]);
    for (uint32_t x = 0; x < ix->count[s]; x++) {
      uint32_t r = ix->role[ix->first[s] + x];
      if (!shared[r]++) touched[n_touched++] = r;
    }
  }
  /* A medoid sharing nothing is 0 alike: it cannot be the nearest. The rest as overlap()
   * works it out: both / (total - both). */
  for (size_t t = 0; t < n_touched; t++) {
    uint32_t r = touched[t];
    double both = (double)shared[r], total = (double)(a->n_exact[i] + a->n_exact[a->medoid[r]]);
    shared[r] = 0;
    if (r == a->role[i]) continue;
    double sim = both / (total - both);
    if (sim > nearest) nearest = sim;
  }
  for (size_t o = 0; o < ix->n_others; o++) {
    if (ix->others[o] == a->role[i]) continue;
    double sim = vs_analysis_pair(a, i, a->medoid[ix->others[o]]);
    if (sim > nearest) nearest = sim;
  }
  return nearest;
}

/* VM I's similarity to its role, and its anomaly: that, or the change since its last snapshot
 * (signed as the job's HIST says what is informative). Writes I's slots only. */
static void score_one(const struct score_job *j, size_t i, uint32_t *shared, uint32_t *touched) {
  struct vs_analysis *a = j->a;
  a->similarity[i] = vs_analysis_pair(a, i, a->medoid[a->role[i]]);
  if (a->role_size[a->role[i]] == 1 && a->n_roles > 1) {
    /* Alone in its role: that is what is odd about it; it sits as far from the others as
     * from the nearest other role. Up to LONE_EXACT roles every other role's medoid is
     * compared; beyond, only those of two VMs or more (roles are numbered by decreasing
     * size: they come first) and the VMs the bands proposed to compare it with: half a fleet
     * can be alone, and each lone VM against each is quadratic in the fleet, while the
     * roles of several VMs are few. What it is then short of the definition is a lone VM
     * the bands did not propose (the less alike, the likelier) or that four others, more
     * alike but in roles of several VMs, pushed out. */
    double nearest = 0;
    const struct proposed *p = &j->proposed[i];
    for (size_t k = 0; k < p->n && nearest == 0; k++) /* the first alone: the most alike */
      if (a->role_size[a->role[p->vm[k]]] == 1) nearest = p->sim[k];
    a->similarity[i] = nearest_medoid(j, i, nearest, shared, touched);
  }
  a->anomaly[i] = 1.0 - a->similarity[i];
  /* Its previous snapshot's tokens the very same (a view shares them when the two snapshots'
   * settings are the same): the same signature, nothing changed. */
  const struct vs_vm_tokens *t = &j->vms[i];
  if (t->prev_tokens && !(t->prev_tokens == t->tokens && t->n_prev == t->n)) {
    uint64_t prev[K];
    bool any = signature(j->vms[i].prev_tokens, j->vms[i].n_prev, j->hist, prev, NULL);
    double h = any && !a->blank[i] ? sig_sim(a->sig + i * K, prev) : (any == !a->blank[i]);
    if (1.0 - h > a->anomaly[i]) a->anomaly[i] = 1.0 - h;
  }
}

static void score_chunk(void *arg, size_t chunk, size_t from, size_t to) {
  (void)chunk;
  const struct score_job *j = arg;
  size_t roles = j->ix->n_compared ? j->ix->n_compared : 1;
  _cleanup_(vs_freep) uint32_t *shared = vs_xcalloc(roles, sizeof(uint32_t));
  _cleanup_(vs_freep) uint32_t *touched = vs_xmalloc(roles * sizeof(uint32_t));
  for (size_t i = from; i < to; i++)
    score_one(j, i, shared, touched);
}

static void score_similarity(struct vs_analysis *a, const struct vs_vm_tokens *vms,
                             const struct sig_job *hist, const struct proposed *proposed) {
  struct medoid_index ix;
  medoid_index_make(&ix, a);
  struct score_job job = {.a = a, .vms = vms, .hist = hist, .proposed = proposed, .ix = &ix};
  vs_parallel_chunks(a->n, 64, score_chunk, &job);
  medoid_index_clear(&ix);
}

struct vs_analysis *vs_analyze(const struct vs_vm_tokens *vms, size_t n,
                               const struct vs_analytics_opts *o) {
  struct vs_analytics_opts def = {0};
  if (!o) o = &def;
  struct vs_analysis *a = analysis_new(n, o);
  if (!n) return a;
  double threshold = o->threshold > 0 ? o->threshold : 0.6;
  double common = o->common_share > 0 ? o->common_share : 0.9;
  struct counts df = count_tokens(vms, n);
  uint32_t hi = (uint32_t)(common * (double)n); /* not negative: truncated is its floor */
  if (n < 3) hi = (uint32_t)n;                  /* too few VMs to tell common from shared */
  size_t n_neg;
  _cleanup_(vs_freep) uint64_t *neg = negatable_tokens(&df, n, common, &n_neg);
  struct negatable ng;
  negatable_index(&ng, &df, neg, n_neg);
  struct sig_job job = {.a = a, .vms = vms, .df = &df, .lo = n < 2 ? 1 : 2, .hi = hi, .neg = &ng};
  sign_all(&job, n);
  _cleanup_(vs_freep) struct proposed *proposed = vs_xcalloc(n, sizeof(*proposed));
  size_t *parent = join_similar(a, threshold, proposed);
  assign_roles(a, parent);
  free(parent);
  find_medoids(a);
  score_similarity(a, vms, &job, proposed);
  free(df.slot);
  negatable_clear(&ng);
  predict_labels(a, vms, o->neighbours > 0 ? o->neighbours : 5);
  return a;
}

void vs_analysis_free(struct vs_analysis *a) {
  if (!a) return;
  for (size_t i = 0; i < a->n; i++) {
    free(a->label[i]);
    free(a->exact[i]);
    free(a->other[i]);
  }
  free(a->other);
  free(a->n_other);
  free(a->exact);
  free(a->n_exact);
  free(a->n_informative);
  free(a->n_own);
  free(a->label);
  free(a->label_p);
  free(a->sig);
  free(a->blank);
  free(a->role);
  free(a->role_size);
  free(a->medoid);
  free(a->similarity);
  free(a->anomaly);
  free(a);
}

size_t vs_analysis_count(const struct vs_analysis *a) {
  return a->n;
}
size_t vs_analysis_role_count(const struct vs_analysis *a) {
  return a->n_roles;
}
size_t vs_analysis_role(const struct vs_analysis *a, size_t vm) {
  return a->role[vm];
}
size_t vs_analysis_role_size(const struct vs_analysis *a, size_t role) {
  return role < a->n_roles ? a->role_size[role] : 0;
}
size_t vs_analysis_medoid(const struct vs_analysis *a, size_t role) {
  return a->medoid[role];
}
double vs_analysis_similarity(const struct vs_analysis *a, size_t vm) {
  return a->similarity[vm];
}
double vs_analysis_anomaly(const struct vs_analysis *a, size_t vm) {
  return a->anomaly[vm];
}
const char *vs_analysis_label(const struct vs_analysis *a, size_t vm, double *probability) {
  if (probability) *probability = a->label_p[vm];
  return a->label[vm];
}

static void rank(size_t n, double *sims, size_t *order) {
  struct vote *v = vs_xcalloc(n ? n : 1, sizeof(*v));
  for (size_t i = 0; i < n; i++)
    v[i] = (struct vote){sims[i], i};
  qsort(v, n, sizeof(*v), cmp_vote);
  for (size_t i = 0; i < n; i++) {
    order[i] = v[i].vm;
    sims[i] = v[i].sim;
  }
  free(v);
}

void vs_analysis_similar(const struct vs_analysis *a, size_t target, size_t *order, double *sims) {
  for (size_t i = 0; i < a->n; i++)
    sims[i] = i == target ? 1.0 + 1e-9 : vs_analysis_likeness(a, target, i); /* itself first */
  rank(a->n, sims, order);
  if (a->n) sims[0] = 1.0;
}

void vs_analysis_similar_tokens(const struct vs_analysis *a, const struct vs_vm_tokens *vms,
                                const uint64_t *tokens, size_t n, size_t *order, double *sims) {
  for (size_t i = 0; i < a->n; i++) {
    uint64_t *sorted = vs_xcalloc(vms[i].n ? vms[i].n : 1, sizeof(uint64_t));
    memcpy(sorted, vms[i].tokens, vms[i].n * sizeof(uint64_t));
    qsort(sorted, vms[i].n, sizeof(uint64_t), cmp_u64);
    size_t have = 0;
    for (size_t t = 0; t < n; t++)
      have += bsearch(&tokens[t], sorted, vms[i].n, sizeof(uint64_t), cmp_u64) != NULL;
    sims[i] = n ? (double)have / (double)n : 0;
    free(sorted);
  }
  rank(a->n, sims, order);
}

json_t *vs_analysis_json(const struct vs_analysis *a, const struct vs_vm_tokens *vms) {
  json_t *roles = json_array(), *list = json_array();
  for (size_t r = 0; r < a->n_roles; r++) {
    const struct vs_vm_tokens *m = &vms[a->medoid[r]];
    json_array_append_new(roles, json_pack("{sIsIss}", "id", (json_int_t)r, "size",
                                           (json_int_t)a->role_size[r], "medoid",
                                           m->name ? m->name
                                           : m->id ? m->id
                                                   : ""));
  }
  for (size_t i = 0; i < a->n; i++) {
    json_t *v =
        json_pack("{ss?ss?sIsfsf}", "id", vms[i].id, "name", vms[i].name, "role",
                  (json_int_t)a->role[i], "similarity", a->similarity[i], "anomaly", a->anomaly[i]);
    if (a->label[i]) {
      json_object_set_new(v, "label", json_string(a->label[i]));
      json_object_set_new(v, "label_probability", json_real(a->label_p[i]));
    }
    json_array_append_new(list, v);
  }
  return json_pack("{soso}", "roles", roles, "vms", list);
}

/* ----------------------------------------------------------------------- agreement */

static double pairs(double x) {
  return x * (x - 1) / 2;
}

struct cell {
  size_t a, b;
};

static int cmp_cell(const void *p, const void *q) {
  const struct cell *x = p, *y = q;
  if (x->a != y->a) return x->a < y->a ? -1 : 1;
  return x->b < y->b ? -1 : x->b > y->b;
}

static int cmp_size(const void *p, const void *q) {
  size_t x = *(const size_t *)p, y = *(const size_t *)q;
  return x < y ? -1 : x > y;
}

static double sum_pairs_of_runs(size_t *v, size_t n) {
  qsort(v, n, sizeof(size_t), cmp_size);
  double s = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && v[j] == v[i])
      j++;
    s += pairs((double)(j - i));
    i = j;
  }
  return s;
}

double vs_adjusted_rand(const size_t *a, const size_t *b, size_t n) {
  if (n < 2) return 1.0;
  struct cell *c = vs_xcalloc(n, sizeof(*c));
  size_t *x = vs_xcalloc(n, sizeof(size_t)), *y = vs_xcalloc(n, sizeof(size_t));
  for (size_t i = 0; i < n; i++) {
    c[i] = (struct cell){a[i], b[i]};
    x[i] = a[i];
    y[i] = b[i];
  }
  qsort(c, n, sizeof(*c), cmp_cell);
  double index = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && c[j].a == c[i].a && c[j].b == c[i].b)
      j++;
    index += pairs((double)(j - i));
    i = j;
  }
  double ra = sum_pairs_of_runs(x, n), rb = sum_pairs_of_runs(y, n);
  free(c);
  free(x);
  free(y);
  double expected = ra * rb / pairs((double)n), max = (ra + rb) / 2;
  return max == expected ? 1.0 : (index - expected) / (max - expected);
}

int vs_labels_load(const char *path, struct vs_strmap **out, struct vs_err *err) {
  *out = NULL;
  _cleanup_(vs_lines_close) struct vs_lines lines = {0};
  if (vs_lines_open(&lines, path, NULL, err) < 0) return -1;
  _cleanup_(vs_strmap_freep) struct vs_strmap *m = vs_strmap_new(free);
  char *line;
  int got;
  while ((got = vs_lines_next(&lines, &line, err)) > 0) {
    char *name = vs_next_word(&line), *label = vs_next_word(&line);
    if (!label || vs_next_word(&line))
      return vs_err_set(err, EINVAL, "%s:%zu: expected \"NAME LABEL\"", path, lines.lineno);
    vs_strmap_put(m, name, vs_xstrdup(label));
  }
  if (got < 0) return -1;
  *out = vs_steal(&m);
  return 0;
}
