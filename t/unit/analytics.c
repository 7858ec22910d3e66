/* Roles, anomaly, labels and likeness on synthetic fleets: VMs of three roles that share a
 * common base, each with its own hostname-like tokens and a little noise. */
#include "analytics.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

struct fleet {
  size_t n;
  struct vs_vm_tokens *vms;
  uint64_t **tokens;
  size_t *truth;
  char **names;
};

static const char *const roles[] = {"web", "db", "ci-runner"};

/* N VMs: a base of 400 settings everyone has, 60 of its role, 3 of its own, and with
 * probability NOISE each role setting flipped to another value. */
static struct fleet make(size_t n, double noise, uint64_t seed) {
  struct fleet f = {.n = n};
  f.vms = calloc(n, sizeof(*f.vms));
  f.tokens = calloc(n, sizeof(uint64_t *));
  f.truth = calloc(n, sizeof(size_t));
  f.names = calloc(n, sizeof(char *));
  uint64_t s = seed;
  for (size_t i = 0; i < n; i++) {
    size_t r = rnd(&s) % 3, k = 0;
    f.truth[i] = r;
    f.tokens[i] = calloc(463, sizeof(uint64_t));
    char key[64], val[64];
    for (int b = 0; b < 400; b++) {
      snprintf(key, sizeof(key), "base:%d", b);
      f.tokens[i][k++] = vs_token(key, "v");
    }
    for (int b = 0; b < 60; b++) {
      snprintf(key, sizeof(key), "%s:%d", roles[r], b);
      bool flip = (double)(rnd(&s) % 10000) / 10000 < noise;
      snprintf(val, sizeof(val), flip ? "odd-%zu" : "v", i);
      f.tokens[i][k++] = vs_token(key, val);
    }
    for (int b = 0; b < 3; b++) {
      snprintf(key, sizeof(key), "own:%d", b);
      snprintf(val, sizeof(val), "%zu", i);
      f.tokens[i][k++] = vs_token(key, val);
    }
    char name[64];
    snprintf(name, sizeof(name), "%s-%03zu", roles[r], i);
    f.names[i] = strdup(name);
    f.vms[i] =
        (struct vs_vm_tokens){.id = f.names[i], .name = f.names[i], .tokens = f.tokens[i], .n = k};
  }
  return f;
}

/* The demo fleet's shape: eight web servers and two databases on one base; the web servers
 * VM 0, 1 and 2 each drifted their own way (a setting of their own, and so an sshd_config
 * digest of their own: they all lack the digest the seven others share). */
static void test_own_drifts_are_not_likeness(void) {
  enum { N = 10, BASE = 40, ROLE = 12 };
  uint64_t tokens[N][BASE + ROLE + 4];
  struct vs_vm_tokens vms[N];
  char key[64], val[64], names[N][16];
  for (size_t i = 0; i < N; i++) {
    size_t k = 0;
    const char *role = i < 8 ? "web" : "db";
    for (int b = 0; b < BASE; b++) {
      snprintf(key, sizeof(key), "base:%d", b);
      tokens[i][k++] = vs_token(key, "v");
    }
    for (int b = 0; b < ROLE; b++) {
      snprintf(key, sizeof(key), "%s:%d", role, b);
      tokens[i][k++] = vs_token(key, "v");
    }
    snprintf(val, sizeof(val), "%s-%02zu", role, i);
    tokens[i][k++] = vs_token("file:/etc/hostname:hostname", val);
    if (i < 3) {
      static const char *const drift[] = {"PermitRootLogin", "MaxAuthTries", "MaxAuthSessions"};
      snprintf(key, sizeof(key), "file:/etc/ssh/sshd_config:%s", drift[i]);
      tokens[i][k++] = vs_token(key, "10");
      snprintf(val, sizeof(val), "digest-%zu", i);
      tokens[i][k++] = vs_token("meta:/etc/ssh/sshd_config:sha256", val);
    } else {
      tokens[i][k++] = vs_token("meta:/etc/ssh/sshd_config:sha256", "digest");
    }
    snprintf(names[i], sizeof(names[i]), "%s-%02zu", role, i);
    vms[i] = (struct vs_vm_tokens){.id = names[i], .name = names[i], .tokens = tokens[i], .n = k};
  }
  struct vs_analysis *a = vs_analyze(vms, N, NULL);
  size_t order[N];
  double sims[N], sim_of[N];
  vs_analysis_similar(a, 0, order, sims);
  for (size_t r = 0; r < N; r++)
    sim_of[order[r]] = sims[r];
  ok(sim_of[1] < 1.0 && sim_of[2] < 1.0,
     "two VMs that each drifted their own way are not as like a third with its own drift as it "
     "is like itself (%.3f, %.3f)",
     sim_of[1], sim_of[2]);
  ok(sim_of[3] > sim_of[1] && sim_of[3] > sim_of[2],
     "a VM of its role that did not drift is more like it than they are (%.3f): lacking the "
     "common sshd_config is not a likeness when each has its own",
     sim_of[3]);
  ok(sim_of[1] > sim_of[8] && sim_of[2] > sim_of[8],
     "and they are still more like it than a VM of another role (%.3f)", sim_of[8]);
  ok(vs_analysis_pair(a, 0, 1) == 1.0 && vs_analysis_role(a, 0) == vs_analysis_role(a, 3),
     "while roles, which ignore what one VM alone has, keep them together with the others");
  vs_analysis_free(a);
}

static void drop(struct fleet *f) {
  for (size_t i = 0; i < f->n; i++) {
    free(f->tokens[i]);
    free(f->names[i]);
  }
  free(f->tokens);
  free(f->truth);
  free(f->names);
  free(f->vms);
}

/* Roles on the generated fleet: ROLE[i] is VM i's role in A. */
static void test_roles_found(const struct fleet *f, const struct vs_analysis *a,
                             const size_t *role) {
  double ari = vs_adjusted_rand(role, f->truth, f->n);
  ok(vs_analysis_role_count(a) == 3, "three roles are found among 600 VMs (%zu)",
     vs_analysis_role_count(a));
  ok(ari >= 0.95, "they are the generator's roles: adjusted Rand index %.3f", ari);
  ok(vs_analysis_role_size(a, 0) >= vs_analysis_role_size(a, 1) &&
         vs_analysis_role_size(a, 1) >= vs_analysis_role_size(a, 2),
     "roles are numbered largest first");
  size_t m = vs_analysis_medoid(a, vs_analysis_role(a, 0));
  ok(vs_analysis_role(a, m) == vs_analysis_role(a, 0), "a role's medoid is one of its members");
}

static void test_analysis_repeats(const struct fleet *f, const struct vs_analysis *a,
                                  const size_t *role) {
  struct vs_analysis *again = vs_analyze(f->vms, f->n, NULL);
  bool same = true;
  for (size_t i = 0; i < f->n; i++)
    same &= vs_analysis_role(again, i) == role[i] &&
            vs_analysis_similarity(again, i) == vs_analysis_similarity(a, i);
  ok(same, "the same seed gives the same roles and similarities");
  vs_analysis_free(again);
}

static double worst_anomaly(const struct vs_analysis *a, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++)
    if (vs_analysis_anomaly(a, i) > worst) worst = vs_analysis_anomaly(a, i);
  return worst;
}

/* anomaly: a VM whose role settings are half odd sits far from its role, whether against its
 * peers or against its own last snapshot. */
static void test_anomaly(struct fleet *f, const size_t *role, double worst_normal) {
  uint64_t *odd = calloc(463, sizeof(uint64_t));
  memcpy(odd, f->tokens[0], 463 * sizeof(uint64_t));
  for (int b = 400; b < 430; b++)
    odd[b] ^= 0x5a5a; /* half its role settings changed */
  f->vms[0].tokens = odd;
  struct vs_analysis *a = vs_analyze(f->vms, f->n, NULL);
  ok(vs_analysis_anomaly(a, 0) > 0.25 && vs_analysis_anomaly(a, 0) > 1.5 * worst_normal,
     "a VM with half its role settings changed scores anomaly %.2f (normal VMs at most %.2f)",
     vs_analysis_anomaly(a, 0), worst_normal);
  ok(vs_analysis_role(a, 0) == role[0], "and stays in its role");
  vs_analysis_free(a);
  f->vms[0].tokens = f->tokens[0];
  f->vms[0].prev_tokens = odd;
  f->vms[0].n_prev = 463;
  a = vs_analyze(f->vms, f->n, NULL);
  ok(vs_analysis_anomaly(a, 0) > 0.25,
     "a VM that changed that much since its last snapshot scores %.2f from its history",
     vs_analysis_anomaly(a, 0));
  vs_analysis_free(a);
  f->vms[0].prev_tokens = NULL;
  free(odd);
}

/* A previous snapshot whose tokens are the newest's very tokens (a view shares them when the
 * settings are the same) is scored as the same tokens copied are: no change; and one that
 * shares the array but not its length (a prefix) is another set, scored in full. */
static void test_prev_same(struct fleet *f) {
  size_t n = f->n, checked = 0, same = 0;
  uint64_t **copies = calloc(n, sizeof(*copies));
  for (size_t i = 0; i < n; i++) {
    f->vms[i].n_prev = i % 3 == 1 ? f->vms[i].n / 2 : f->vms[i].n;
    f->vms[i].prev_tokens = i % 3 ? f->vms[i].tokens : NULL;
  }
  struct vs_analysis *shared = vs_analyze(f->vms, n, NULL);
  for (size_t i = 0; i < n; i++)
    if (f->vms[i].prev_tokens) {
      copies[i] = malloc(f->vms[i].n * sizeof(uint64_t));
      memcpy(copies[i], f->vms[i].tokens, f->vms[i].n * sizeof(uint64_t));
      f->vms[i].prev_tokens = copies[i];
    }
  struct vs_analysis *copied = vs_analyze(f->vms, n, NULL);
  for (size_t i = 0; i < n; i++) {
    checked += i % 3 != 0;
    same += i % 3 != 0 && vs_analysis_anomaly(shared, i) == vs_analysis_anomaly(copied, i) &&
            vs_analysis_similarity(shared, i) == vs_analysis_similarity(copied, i);
    f->vms[i].prev_tokens = NULL;
    f->vms[i].n_prev = 0;
    free(copies[i]);
  }
  ok(checked && same == checked,
     "a previous snapshot sharing its newest's tokens scores as their copy does, whole or a "
     "prefix (%zu of %zu VMs)",
     same, checked);
  size_t prefix_moved = 0;
  for (size_t i = 1; i < n; i += 3)
    prefix_moved +=
        vs_analysis_anomaly(copied, i) > vs_analysis_anomaly(copied, i + 1 < n ? i + 1 : i);
  ok(prefix_moved > 0, "(a prefix is scored as a change: %zu VMs more anomalous)", prefix_moved);
  vs_analysis_free(shared);
  vs_analysis_free(copied);
  free(copies);
}

/* labels: 5% given (one VM in 20); returns how many. */
static size_t label_some(struct fleet *f) {
  size_t given = 0;
  for (size_t i = 0; i < f->n; i += 20, given++)
    f->vms[i].label = roles[f->truth[i]];
  return given;
}

static void test_labels_predicted(const struct fleet *f, const struct vs_analysis *a,
                                  size_t given) {
  size_t right = 0, predicted = 0;
  double p_min = 1;
  for (size_t i = 0; i < f->n; i++) {
    if (f->vms[i].label) continue;
    double p;
    const char *l = vs_analysis_label(a, i, &p);
    predicted++;
    right += l && strcmp(l, roles[f->truth[i]]) == 0;
    if (p < p_min) p_min = p;
  }
  ok((double)right / predicted >= 0.95,
     "with %zu of %zu VMs labelled, %.1f%% of the others get "
     "the right label (lowest probability %.2f)",
     given, f->n, 100.0 * right / predicted, p_min);
}

static void test_likeness(const struct fleet *f, const struct vs_analysis *a) {
  size_t *order = calloc(f->n, sizeof(size_t));
  double *sims = calloc(f->n, sizeof(double));
  vs_analysis_similar(a, 5, order, sims);
  bool role_first = order[0] == 5;
  size_t same_role = 0;
  for (size_t i = 0; i < f->n; i++)
    same_role += f->truth[i] == f->truth[5];
  for (size_t i = 1; i < same_role; i++)
    role_first &= f->truth[order[i]] == f->truth[5];
  ok(role_first, "ranked by likeness to a VM: itself, then all %zu of its role, then the rest",
     same_role);
  uint64_t q[2] = {vs_token("db:3", "v"), vs_token("db:7", "v")};
  vs_analysis_similar_tokens(a, f->vms, q, 2, order, sims);
  ok(f->truth[order[0]] == 1 && sims[0] == 1.0, "ranked by a pair of settings: a db VM first");
  free(order);
  free(sims);
}

static void test_json(const struct fleet *f, const struct vs_analysis *a) {
  json_t *j = vs_analysis_json(a, f->vms);
  ok(json_array_size(json_object_get(j, "roles")) == 3 &&
         json_array_size(json_object_get(j, "vms")) == f->n &&
         json_is_string(json_object_get(json_array_get(json_object_get(j, "vms"), 1), "label")),
     "the JSON has roles and every VM with its label");
  json_decref(j);
}

static void test_adjusted_rand(void) {
  size_t x[] = {0, 0, 1, 1, 2, 2}, y[] = {5, 5, 7, 7, 9, 9}, z[] = {0, 1, 0, 1, 0, 1};
  ok(vs_adjusted_rand(x, y, 6) == 1.0, "ARI of the same grouping under other names is 1");
  ok(vs_adjusted_rand(x, z, 6) < 0.1, "and of an unrelated one about 0 (%.2f)",
     vs_adjusted_rand(x, z, 6));
}

static void test_no_vms(void) {
  struct vs_analysis *e = vs_analyze(NULL, 0, NULL);
  ok(vs_analysis_role_count(e) == 0, "no VMs, no roles");
  vs_analysis_free(e);
}

/* The nearest other role's medoid, by definition: what a VM alone in its role is measured
 * against (a role of one VM is its own medoid). */
static double nearest_role(const struct vs_analysis *a, size_t i, bool several_only) {
  double best = 0;
  for (size_t r = 0; r < vs_analysis_role_count(a); r++)
    if (r != vs_analysis_role(a, i) && (!several_only || vs_analysis_role_size(a, r) > 1) &&
        vs_analysis_pair(a, i, vs_analysis_medoid(a, r)) > best)
      best = vs_analysis_pair(a, i, vs_analysis_medoid(a, r));
  return best;
}

/* N VMs of 60 keys each, alike but for the values of their own: key k has a value of VM k % N
 * alone, and of VM (k / N + k) % N too for the first ODD keys. No two are alike enough to form a
 * role. */
static void lone_fleet(size_t n, int odd, uint64_t *t, struct vs_vm_tokens *vms) {
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < 60; k++) {
      bool own = i == k % n || ((int)k < odd && i == (k / n + k) % n);
      t[i * 60 + k] = (uint64_t)(k + 1) << 32 | (own ? 100 + i : 1);
    }
    vms[i] = (struct vs_vm_tokens){.id = "lone", .name = "lone", .tokens = t + i * 60, .n = 60};
  }
}

/* A VM alone in its role sits as far from the others as from the nearest other role: exactly,
 * while there are at most 64 roles (five VMs, none alike enough for a role, are as alike as
 * they are, not "like nothing", which would make each an anomaly); beyond, at least as near as
 * the nearest role of several VMs and no nearer than the definition, and near it. */
static void test_lone_vms(void) {
  static uint64_t t[5 * 60];
  static struct vs_vm_tokens vms[400];
  bool exact = true;
  for (int odd = 0; odd <= 60; odd += 10) {
    lone_fleet(5, odd, t, vms);
    struct vs_analysis *a = vs_analyze(vms, 5, NULL);
    for (size_t i = 0; i < 5; i++)
      if (vs_analysis_role_size(a, vs_analysis_role(a, i)) == 1 &&
          vs_analysis_similarity(a, i) != nearest_role(a, i, false)) {
        diag("odd %d, VM %zu: similarity %.3f, the definition %.3f", odd, i,
             vs_analysis_similarity(a, i), nearest_role(a, i, false));
        exact = false;
      }
    vs_analysis_free(a);
  }
  ok(exact, "with few roles, a VM alone in its role is as near as the nearest other role");
  /* Beyond: 400 VMs of 200 keys in bench/drift_scale's shapes (2% differing everywhere, 4% on
   * some VMs, 10% the role's), a fifth of the rest deviating: no two alike enough for a role. */
  static uint64_t bt[400 * 200];
  uint64_t seed = 11;
  for (size_t i = 0; i < 400; i++) {
    size_t m = 0;
    for (size_t k = 0; k < 200; k++) {
      uint64_t h = rnd(&seed), key = (uint64_t)(k + 1) << 32;
      if (k % 100 < 2)
        bt[i * 200 + m++] = key | (h & 0xffffffff);
      else if (k % 100 < 6 && h % 4)
        bt[i * 200 + m++] = key | 1;
      else if (k % 100 >= 6 && k % 100 < 16)
        bt[i * 200 + m++] = key | (10 + i % 3);
      else if (k % 100 >= 16)
        bt[i * 200 + m++] = key | (h % 100 >= 20 ? 2 : 3 + h % 3);
    }
    vms[i] = (struct vs_vm_tokens){.id = "lone", .name = "lone", .tokens = bt + i * 200, .n = m};
  }
  struct vs_analysis *a = vs_analyze(vms, 400, NULL);
  size_t lone = 0, bounded = 0, at = 0;
  double gap = 0, worst = 0;
  for (size_t i = 0; i < 400; i++) {
    if (vs_analysis_role_size(a, vs_analysis_role(a, i)) != 1) continue;
    double sim = vs_analysis_similarity(a, i), def = nearest_role(a, i, false);
    lone++;
    bounded += sim >= nearest_role(a, i, true) && sim <= def;
    at += sim == def;
    gap += def - sim;
    if (def - sim > worst) worst = def - sim;
  }
  gap /= lone ? (double)lone : 1;
  ok(vs_analysis_role_count(a) > 64 && lone > 64 && bounded == lone && gap < 0.02 && worst < 0.1,
     "with %zu roles, each of the %zu VMs alone is between the nearest role of several VMs and "
     "the nearest other role (%zu are), %zu at the latter, short of it by %.4f on average and "
     "%.4f at most",
     vs_analysis_role_count(a), lone, bounded, at, gap, worst);
  vs_analysis_free(a);
}

int main(void) {
  struct fleet f = make(600, 0.05, 42);
  struct vs_analysis *a = vs_analyze(f.vms, f.n, NULL);
  size_t *role = calloc(f.n, sizeof(size_t));
  for (size_t i = 0; i < f.n; i++)
    role[i] = vs_analysis_role(a, i);
  test_roles_found(&f, a, role);
  test_analysis_repeats(&f, a, role);
  double worst_normal = worst_anomaly(a, f.n);
  vs_analysis_free(a);
  test_anomaly(&f, role, worst_normal);
  test_prev_same(&f);

  size_t given = label_some(&f);
  a = vs_analyze(f.vms, f.n, NULL);
  test_labels_predicted(&f, a, given);
  test_likeness(&f, a);
  test_json(&f, a);
  vs_analysis_free(a);
  free(role);
  drop(&f);

  test_adjusted_rand();
  test_own_drifts_are_not_likeness();
  test_no_vms();
  test_lone_vms();
  return done_testing();
}
