/* analyze/neighbours: close groups by exact distance. Two kinds of VM that differ in many keys
 * are two groups; VMs of one kind with a few tweaks are one; a VM far from every other is a
 * group of its own; and the relation must hold both ways, so a VM halfway between two kinds
 * does not bridge them. */
#include "analytics.h"
#include "neighbours.h"
#include "tap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VMS 32

/* VMs built from documents, as the fleet view hands them to vs_close_groups. */
struct fleet {
  struct vs_feature *docs[MAX_VMS];
  uint64_t *tokens[MAX_VMS];
  struct vs_vm_tokens vms[MAX_VMS];
  size_t n;
};

static void fleet_clear(struct fleet *f) {
  for (size_t i = 0; i < f->n; i++) {
    vs_feature_free(f->docs[i]);
    free(f->tokens[i]);
  }
  f->n = 0;
}

/* A VM named NAME with the distribution every VM shares and its own hostname; the caller adds
 * the rest. */
static struct vs_feature *add_vm(struct fleet *f, const char *name) {
  struct vs_feature *d = vs_feature_new();
  char id[64];
  snprintf(id, sizeof(id), "/vms/%s", name);
  vs_feature_set_id(d, id, name);
  vs_feature_set(d, "os:distro", "debian", NULL);
  vs_feature_set(d, "file:/etc/hostname:name", name, NULL);
  f->docs[f->n++] = d;
  return d;
}

/* KEYS settings of the kind KIND's own file ("file:/etc/KIND.conf:sI"), from FIRST. */
static void kind_keys(struct vs_feature *d, const char *kind, int first, int keys) {
  char key[96];
  for (int k = first; k < first + keys; k++) {
    snprintf(key, sizeof(key), "file:/etc/%s.conf:s%d", kind, k);
    vs_feature_setf(d, key, NULL, "%s-%d", kind, k);
  }
}

/* The close groups of F's VMs, into GROUP; the number of groups. */
static size_t groups_of(struct fleet *f, size_t *group) {
  for (size_t i = 0; i < f->n; i++) {
    size_t n = vs_doc_tokens(f->docs[i], &f->tokens[i]);
    f->vms[i] = (struct vs_vm_tokens){.id = vs_feature_id(f->docs[i]),
                                      .name = vs_feature_name(f->docs[i]),
                                      .tokens = f->tokens[i],
                                      .n = n};
  }
  return vs_close_groups(f->vms, f->n, group);
}

static size_t index_of(const struct fleet *f, const char *name) {
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(vs_feature_name(f->docs[i]), name) == 0) return i;
  return SIZE_MAX;
}

/* Whether the VMs FIRST..LAST (indices) are all in one group. */
static bool together(const size_t *group, size_t first, size_t last) {
  for (size_t i = first; i <= last; i++)
    if (group[i] != group[first]) return false;
  return true;
}

/* Six web servers and five databases, 60 settings of their own file each; the web servers
 * carry a few tweaks: other values on two of them, two extra keys on one. */
static void test_two_kinds(void) {
  struct fleet f = {0};
  char name[32];
  for (int i = 1; i <= 6; i++) {
    snprintf(name, sizeof(name), "web-%02d", i);
    struct vs_feature *d = add_vm(&f, name);
    kind_keys(d, "web", 0, 60);
  }
  vs_feature_set(f.docs[1], "file:/etc/web.conf:s3", "tweaked", NULL);
  vs_feature_set(f.docs[2], "file:/etc/web.conf:s7", "tweaked", NULL);
  vs_feature_set(f.docs[3], "file:/etc/sysctl.conf:vm.swappiness", "10", NULL);
  vs_feature_set(f.docs[3], "file:/etc/sysctl.conf:net.core.somaxconn", "4096", NULL);
  for (int i = 1; i <= 5; i++) {
    snprintf(name, sizeof(name), "db-%02d", i);
    struct vs_feature *d = add_vm(&f, name);
    kind_keys(d, "db", 0, 60);
  }
  size_t group[MAX_VMS];
  size_t n = groups_of(&f, group);
  ok(n == 2, "two kinds of VM that differ in 120 keys are two close groups (%zu)", n);
  ok(together(group, 0, 5), "the six web servers are one group, tweaks and all");
  ok(together(group, 6, 10), "the five databases are another");
  ok(group[0] != group[6], "and a web server is no database's close peer");
  fleet_clear(&f);
}

/* Five web servers, and one VM that shares nothing with them but the distribution: 80 keys
 * of its own. */
static void test_far_vm(void) {
  struct fleet f = {0};
  char name[32];
  for (int i = 1; i <= 5; i++) {
    snprintf(name, sizeof(name), "web-%02d", i);
    kind_keys(add_vm(&f, name), "web", 0, 40);
  }
  kind_keys(add_vm(&f, "build-01"), "build", 0, 80);
  size_t group[MAX_VMS];
  size_t n = groups_of(&f, group);
  size_t far = index_of(&f, "build-01");
  ok(n == 2, "a VM far from all others is a group of its own beside the web servers (%zu)", n);
  bool alone = far != SIZE_MAX;
  for (size_t i = 0; alone && i < f.n; i++)
    if (i != far && group[i] == group[far]) alone = false;
  ok(alone, "build-01 shares its group with no web server");
  ok(together(group, 0, 4), "and the five web servers stay together");
  fleet_clear(&f);
}

/* Three web servers and three databases, each VM with two keys of its own; "mixed" has half of
 * the web servers' keys and half of the databases': 42 keys from each VM of either kind, its
 * own nearest distance, so by its own measure every VM is close, while by theirs (4 keys to
 * their nearest) it is far. The relation must hold both ways: it joins neither. */
static void test_both_ways(void) {
  struct fleet f = {0};
  char name[32], key[64];
  static const char *const kinds[] = {"web", "db"};
  for (int k = 0; k < 2; k++)
    for (int i = 1; i <= 3; i++) {
      snprintf(name, sizeof(name), "%s-%02d", kinds[k], i);
      struct vs_feature *d = add_vm(&f, name);
      kind_keys(d, kinds[k], 0, 40);
      snprintf(key, sizeof(key), "file:/etc/own-%s.conf:a", name);
      vs_feature_set(d, key, "1", NULL);
      snprintf(key, sizeof(key), "file:/etc/own-%s.conf:b", name);
      vs_feature_set(d, key, "1", NULL);
    }
  struct vs_feature *mixed = add_vm(&f, "mixed");
  kind_keys(mixed, "web", 0, 20);
  kind_keys(mixed, "db", 0, 20);
  size_t group[MAX_VMS];
  size_t n = groups_of(&f, group);
  size_t m = index_of(&f, "mixed");
  ok(n == 3, "web servers, databases, and the VM halfway between them: three groups (%zu)", n);
  ok(group[0] != group[3], "the halfway VM does not bridge the web servers and the databases");
  ok(m != SIZE_MAX && group[m] != group[0] && group[m] != group[3],
     "it joins neither: they are close to it only by its own measure");
  ok(together(group, 0, 2) && together(group, 3, 5), "each kind stays one group");
  fleet_clear(&f);
}

/* The edge of closeness: A, and B with NEAR keys of its own (A's nearest distance, so A is
 * close to what is at most 2 * NEAR + VS_CLOSE_SLACK keys away), and C with that many keys of
 * its own, or one more. C's distance to A is exactly the difference of their sizes, which is
 * where the search for close pairs stops; at NEAR 2 the factor 2 counts too. */
static void test_edge_of_reach(void) {
  for (int near = 0; near <= 2; near += 2) {
    int reach = 2 * near + VS_CLOSE_SLACK;
    for (int extra = reach; extra <= reach + 1; extra++) {
      struct fleet f = {0};
      kind_keys(add_vm(&f, "a"), "web", 0, 40);
      struct vs_feature *b = add_vm(&f, "b");
      kind_keys(b, "web", 0, 40);
      kind_keys(b, "b", 0, near);
      struct vs_feature *c = add_vm(&f, "c");
      kind_keys(c, "web", 0, 40);
      kind_keys(c, "c", 0, extra);
      size_t group[MAX_VMS];
      size_t n = groups_of(&f, group);
      if (extra == reach)
        ok(n == 1, "a VM %d keys from one whose nearest is %d keys away is its close peer (%zu)",
           extra, near, n);
      else
        ok(n == 2 && group[2] != group[0] && group[0] == group[1],
           "a VM %d keys from one whose nearest is %d keys away is not (%zu groups)", extra, near,
           n);
      fleet_clear(&f);
    }
  }
}

static void test_edges(void) {
  ok(vs_close_groups(NULL, 0, NULL) == 0, "no VMs, no groups");
  struct fleet f = {0};
  kind_keys(add_vm(&f, "only"), "web", 0, 5);
  size_t group[1] = {99};
  ok(groups_of(&f, group) == 1 && group[0] == 0, "one VM is one group, numbered 0");
  fleet_clear(&f);
}

/* The definition, pair by pair (neighbours.h), on raw token arrays: what vs_close_groups, which
 * measures between classes of VMs with the same keys, must agree with. */
static bool has_key(const struct vs_vm_tokens *vm, size_t key) {
  for (size_t p = 0; p < vm->n; p++)
    if (vm->tokens[p] >> 32 == key) return true;
  return false;
}

/* The keys one VM has and the other lacks, but the common ones (each key once). */
static uint32_t ref_distance(const struct vs_vm_tokens *a, const struct vs_vm_tokens *b,
                             const bool *common, size_t keys) {
  uint32_t d = 0;
  for (size_t k = 0; k < keys; k++)
    d += !common[k] && has_key(a, k) != has_key(b, k);
  return d;
}

static size_t ref_find(size_t *parent, size_t x) {
  while (parent[x] != x)
    x = parent[x];
  return x;
}

static size_t ref_groups(const struct vs_vm_tokens *vms, size_t n, size_t keys, size_t *group) {
  bool *common = calloc(keys, sizeof(bool));
  for (size_t k = 0; k < keys; k++) {
    size_t have = 0;
    for (size_t i = 0; i < n; i++)
      have += has_key(&vms[i], k);
    common[k] = have == n;
  }
  uint32_t *nearest = malloc(n * sizeof(uint32_t));
  size_t *parent = malloc(n * sizeof(size_t)), *number = malloc(n * sizeof(size_t)), groups = 0;
  for (size_t i = 0; i < n; i++) {
    nearest[i] = UINT32_MAX;
    for (size_t j = 0; j < n; j++)
      if (j != i && ref_distance(&vms[i], &vms[j], common, keys) < nearest[i])
        nearest[i] = ref_distance(&vms[i], &vms[j], common, keys);
    parent[i] = i;
    number[i] = SIZE_MAX;
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) {
      uint64_t x = ref_distance(&vms[i], &vms[j], common, keys);
      if (x <= 2 * (uint64_t)nearest[i] + VS_CLOSE_SLACK &&
          x <= 2 * (uint64_t)nearest[j] + VS_CLOSE_SLACK)
        parent[ref_find(parent, i)] = ref_find(parent, j);
    }
  for (size_t i = 0; i < n; i++) {
    size_t root = ref_find(parent, i);
    if (number[root] == SIZE_MAX) number[root] = groups++;
    group[i] = number[root];
  }
  free(common);
  free(nearest);
  free(parent);
  free(number);
  return groups;
}

/* Random fleets of 1 to 60 VMs over up to 60 keys, drawn from a few key-set patterns with
 * noise (so that many VMs share their keys, and some do not), two tokens per key at times. */
static void test_against_definition(void) {
  uint64_t r = 0x9e3779b97f4a7c15ULL;
#define RND(n)                                                                                     \
  ((r = r * 6364136223846793005ULL + 1442695040888963407ULL), (size_t)((r >> 33) % (n)))
  size_t agree = 0, runs = 300, multi = 0;
  for (size_t run = 0; run < runs; run++) {
    size_t n = 1 + RND(60), keys = 1 + RND(60), patterns = 1 + RND(5);
    struct vs_vm_tokens vms[60];
    uint64_t tokens[60][122];
    bool pattern[5][60];
    for (size_t p = 0; p < patterns; p++)
      for (size_t k = 0; k < keys; k++)
        pattern[p][k] = RND(2) != 0;
    for (size_t i = 0; i < n; i++) {
      size_t p = RND(patterns), m = 0;
      for (size_t k = 0; k < keys; k++) {
        bool has = RND(30) == 0 ? !pattern[p][k] : pattern[p][k];
        if (!has) continue;
        tokens[i][m++] = (uint64_t)k << 32 | RND(3);
        if (RND(4) == 0) tokens[i][m++] = (uint64_t)k << 32 | 7;
      }
      vms[i] = (struct vs_vm_tokens){.tokens = tokens[i], .n = m};
    }
    size_t got[60], want[60];
    size_t g = vs_close_groups(vms, n, got), w = ref_groups(vms, n, keys, want);
    multi += w > 1;
    if (g == w && memcmp(got, want, n * sizeof(size_t)) == 0)
      agree++;
    else
      diag("run %zu: %zu VMs, %zu keys: %zu groups, the definition %zu", run, n, keys, g, w);
  }
#undef RND
  ok(agree == runs && multi > runs / 4,
     "the same groups, numbered alike, as the definition pair by pair on %zu random fleets "
     "(%zu agree; %zu with more than one group)",
     runs, agree, multi);
}

/* The key parts of a VM's tokens, sorted and without repeats: what the distance counts. */
static size_t key_parts(const struct vs_vm_tokens *vm, uint64_t *out) {
  size_t m = 0;
  for (size_t t = 0; t < vm->n; t++)
    out[m++] = vm->tokens[t] >> 32;
  for (size_t a = 1; a < m; a++) /* insertion sort: the tokens are nearly sorted already */
    for (size_t b = a; b > 0 && out[b - 1] > out[b]; b--) {
      uint64_t x = out[b];
      out[b] = out[b - 1];
      out[b - 1] = x;
    }
  size_t k = 0;
  for (size_t a = 0; a < m; a++)
    if (!k || out[k - 1] != out[a]) out[k++] = out[a];
  return k;
}

/* Large fleets, where the groups are made on several CPUs: N VMs of a few key-set patterns
 * over PATTERN_KEYS keys, with noise, and OWN keys drawn from a space of 100,000 that each
 * pair of VMs shares (and a key every VM has). Against the definition, with the distance as the
 * size of the symmetric difference of two VMs' key sets (a key every VM has is in neither). */
#define BIG 400
static void test_large(size_t n, size_t pattern_keys, size_t own, const char *what) {
  uint64_t r = 0x2545f4914f6cdd1dULL + n + own;
#define RND(m)                                                                                     \
  ((r = r * 6364136223846793005ULL + 1442695040888963407ULL), (size_t)((r >> 33) % (m)))
  static uint64_t tokens[BIG][128], keys[BIG][128];
  static struct vs_vm_tokens vms[BIG];
  static size_t nk[BIG], got[BIG], want[BIG], parent[BIG], number[BIG];
  static uint32_t nearest[BIG];
  static bool pattern[4][64];
  for (size_t p = 0; p < 4; p++)
    for (size_t k = 0; k < pattern_keys; k++)
      pattern[p][k] = RND(2) != 0;
  for (size_t i = 0; i < n; i++) {
    size_t p = RND(4), m = 0;
    tokens[i][m++] = (uint64_t)200000 << 32; /* every VM's */
    for (size_t k = 0; k < pattern_keys; k++)
      if (RND(20) == 0 ? !pattern[p][k] : pattern[p][k]) tokens[i][m++] = (uint64_t)k << 32 | 1;
    uint64_t twin = 0x9e3779b97f4a7c15ULL * (i / 2 + 1); /* VMs 2j and 2j + 1 share theirs */
    for (size_t o = 0; o < own; o++) {
      twin = twin * 6364136223846793005ULL + 1442695040888963407ULL;
      tokens[i][m++] = (uint64_t)(100 + (twin >> 33) % 100000) << 32;
    }
    vms[i] = (struct vs_vm_tokens){.tokens = tokens[i], .n = m};
    nk[i] = key_parts(&vms[i], keys[i]);
  }
#undef RND
  size_t g = vs_close_groups(vms, n, got);
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    nearest[i] = UINT32_MAX;
    parent[i] = i;
    number[i] = SIZE_MAX;
  }
  for (size_t pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < n; i++)
      for (size_t j = i + 1; j < n; j++) {
        size_t a = 0, b = 0, both = 0;
        while (a < nk[i] && b < nk[j])
          if (keys[i][a] == keys[j][b])
            both++, a++, b++;
          else if (keys[i][a] < keys[j][b])
            a++;
          else
            b++;
        uint64_t x = nk[i] + nk[j] - 2 * both;
        if (pass == 0) {
          if (x < nearest[i]) nearest[i] = (uint32_t)x;
          if (x < nearest[j]) nearest[j] = (uint32_t)x;
        } else if (x <= 2 * (uint64_t)nearest[i] + VS_CLOSE_SLACK &&
                   x <= 2 * (uint64_t)nearest[j] + VS_CLOSE_SLACK) {
          parent[ref_find(parent, i)] = ref_find(parent, j);
        }
      }
  for (size_t i = 0; i < n; i++) {
    size_t root = ref_find(parent, i);
    if (number[root] == SIZE_MAX) number[root] = w++;
    want[i] = number[root];
  }
  ok(g == w && memcmp(got, want, n * sizeof(size_t)) == 0 && w > 1 && w < n,
     "%s: %zu VMs, the same %zu groups as the definition (%zu found)", what, n, w, g);
}

int main(void) {
  plan_no_plan();
  test_against_definition();
  test_large(BIG, 60, 0, "few keys that vary (each distance a popcount)");
  test_large(BIG, 60, 8, "64 to 4,096 keys that vary (each distance a few words' popcount)");
  test_large(BIG, 60, 24, "more than 4,096 keys that vary (each distance a merge)");
  test_two_kinds();
  test_far_vm();
  test_both_ways();
  test_edges();
  test_edge_of_reach();
  return done_testing();
}
