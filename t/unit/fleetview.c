/* analyze/fleetview: VMs, not files (one peer per VM identity, its newest document, the previous
 * kept for history), peer groups by role or fleet, a VM never its own peer, and the pool
 * loader's refusals. */
#include "fixture.h"
#include "fleetview.h"
#include "pool.h"
#include "util.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1796200000

/* A VM of role ROLE ("web" or "db"): twenty settings of its role's own file, one hostname of
 * its own, and the distribution every VM shares. */
static struct vs_feature *vm(const char *role, int i, int64_t taken_at) {
  struct vs_feature *d = vs_feature_new();
  char id[64], name[32], key[96];
  snprintf(id, sizeof(id), "00000000-0000-4000-8000-%s%08d", strcmp(role, "web") ? "0db0" : "0eb0",
           i);
  snprintf(name, sizeof(name), "%s-%02d", role, i);
  vs_feature_set_id(d, id, name);
  vs_feature_set_taken_at(d, taken_at);
  vs_feature_set(d, "os:distro", "debian", NULL);
  vs_feature_set(d, "file:/etc/hostname:name", name, NULL);
  for (int k = 0; k < 20; k++) {
    snprintf(key, sizeof(key), "file:/etc/%s.conf:setting%d", role, k);
    vs_feature_setf(d, key, NULL, "%s-value-%d", role, k);
  }
  return d;
}

static void test_newest_per_vm(void) {
  _cleanup_(vs_view_freep) struct vs_view *v = vs_view_new();
  ok(vs_view_add(v, vm("web", 1, T0)) == 1, "a VM's first document is its newest");
  struct vs_feature *newer = vm("web", 1, T0 + 60);
  vs_feature_set(newer, "file:/etc/web.conf:setting0", "changed", NULL);
  ok(vs_view_add(v, newer) == 1, "a newer document of the same VM replaces it");
  ok(vs_view_add(v, vm("web", 1, T0 + 30)) == 0, "an older one does not");
  struct vs_feature *tie = vm("web", 1, T0 + 60);
  vs_feature_set(tie, "file:/etc/web.conf:setting0", "tie", NULL);
  ok(vs_view_add(v, tie) == 1, "on a tie the document added last wins");
  ok(vs_view_count(v) == 1, "three documents of one VM are one VM, not three peers");
  is_str(vs_feature_get(vs_view_doc(v, 0), "file:/etc/web.conf:setting0"), "tie",
         "the VM is its newest document");
  const struct vs_feature *prev = vs_view_prev(v, 0);
  ok(prev && strcmp(vs_feature_get(prev, "file:/etc/web.conf:setting0"), "changed") == 0,
     "and the next newest is kept as its previous snapshot");
}

static void test_find_and_target(void) {
  _cleanup_(vs_view_freep) struct vs_view *v = vs_view_new();
  for (int i = 1; i <= 3; i++)
    vs_view_add(v, vm("web", i, T0));
  struct vs_feature *twin = vm("db", 1, T0);
  vs_feature_set_id(twin, vs_feature_id(twin), "web-02"); /* a second VM named web-02 */
  vs_view_add(v, twin);
  ok(vs_view_find(v, "web-01") == 0, "a VM is found by name");
  ok(vs_view_find(v, "00000000-0000-4000-8000-0eb000000003") == 2, "and by id");
  ok(vs_view_find(v, "web-02") == -2, "a name two VMs share finds neither (-2)");
  ok(vs_view_find(v, "web-99") == -1, "an unknown name is -1");
  struct vs_feature *target = vm("web", 3, T0 - 3600);
  vs_feature_set(target, "file:/etc/web.conf:setting0", "target", NULL);
  ok(vs_view_add_target(v, target) == 1,
     "a target replaces every document of its VM, even newer ones (1 dropped)");
  long t = vs_view_find(v, "web-03");
  ok(t >= 0 && vs_view_count(v) == 4 &&
         strcmp(vs_feature_get(vs_view_doc(v, (size_t)t), "file:/etc/web.conf:setting0"),
                "target") == 0,
     "and is that VM's one document, one VM of the four");
  vs_view_remove(v, 0);
  ok(vs_view_count(v) == 3 && vs_view_find(v, "web-01") == -1, "a removed VM is gone");
}

/* Ten web servers and nine databases: two roles, each over min_role_peers (8). */
static struct vs_view *two_roles(enum vs_peer_group peers, size_t min_role_peers) {
  struct vs_view *v = vs_view_new();
  for (int i = 1; i <= 10; i++)
    vs_view_add(v, vm("web", i, T0));
  for (int i = 1; i <= 9; i++)
    vs_view_add(v, vm("db", i, T0));
  struct vs_view_opts o = {.peers = peers, .min_role_peers = min_role_peers};
  vs_view_prepare(v, &o);
  return v;
}

static uint32_t samples(const struct vs_view *v, const char *name) {
  struct vs_err err = {0};
  long i = vs_view_find(v, name);
  struct vs_drift *d = i >= 0 ? vs_view_rank(v, (size_t)i, NULL, &err) : NULL;
  uint32_t n = d ? d->samples : 0;
  if (!d) diag("ranking %s: %s", name, vs_err_msg(&err));
  vs_drift_free(d);
  vs_err_clear(&err);
  return n;
}

static void test_peer_groups(void) {
  _cleanup_(vs_view_freep) struct vs_view *v = two_roles(VS_PEERS_ROLE, 0);
  const struct vs_analysis *a = vs_view_analysis(v);
  ok(a && vs_analysis_role_count(a) == 2, "the role analysis finds the two roles (%zu)",
     a ? vs_analysis_role_count(a) : 0);
  long web = vs_view_find(v, "web-04"), db = vs_view_find(v, "db-04");
  ok(web >= 0 && db >= 0 && vs_view_by_role(v, (size_t)web) && vs_view_by_role(v, (size_t)db),
     "with more than 8 members each, every VM is ranked against its role");
  ok(samples(v, "web-04") == 9, "a web server's peers are the 9 other web servers, not itself");
  ok(samples(v, "db-04") == 8, "a database's are the 8 other databases");
  struct vs_err err = {0};
  struct vs_drift *d = vs_view_rank(v, (size_t)web, NULL, &err);
  ok(d && d->alarms == 0, "a web server is no misfit among web servers (%zu alarms)",
     d ? d->alarms : 0);
  vs_drift_free(d);
  vs_err_clear(&err);

  _cleanup_(vs_view_freep) struct vs_view *fleet = two_roles(VS_PEERS_FLEET, 0);
  ok(samples(fleet, "web-04") == 18, "with --peer-group fleet its peers are the 18 other VMs");
  _cleanup_(vs_view_freep) struct vs_view *small = two_roles(VS_PEERS_ROLE, 9);
  ok(samples(small, "db-04") == 18 && samples(small, "web-04") == 9,
     "a role of 9 is ranked against the fleet when more than 9 are needed; one of 10 is not");
}

static void test_pool(void) {
  char *root = fx_tmpdir();
  char *pool = NULL, *tree = NULL, *file = NULL;
  if (asprintf(&pool, "%s/pool", root) < 0 || asprintf(&tree, "%s/guest", root) < 0 ||
      asprintf(&file, "%s/file", root) < 0)
    abort();
  struct vs_err err = {0};
  for (int i = 1; i <= 3; i++) {
    struct vs_feature *old = vm("web", i, i == 3 ? T0 - 86400 * 30 : T0 - 60);
    struct vs_feature *now = vm("web", i, i == 3 ? T0 - 86400 * 29 : T0);
    if (vs_pool_write(pool, old, NULL, &err) < 0 || vs_pool_write(pool, now, NULL, &err) < 0)
      diag("writing the pool: %s", vs_err_msg(&err));
    vs_feature_free(old);
    vs_feature_free(now);
  }
  fx_write(root, "pool/garbage/2026-11-01T00:00:00Z.json", "{not json");
  fx_write(root, "guest/etc/hostname", "web-09\n");
  fx_write(root, "file", "x");
  ok(vs_view_is_pool(pool) && !vs_view_is_pool(tree), "a pool looks like one; a guest does not");

  _cleanup_(vs_view_freep) struct vs_view *v = vs_view_new();
  size_t forgotten = 0;
  int loaded = vs_view_add_pool(v, pool, "2026-12-01T00:00:00Z", &forgotten, &err);
  ok(loaded == 0, "a pool loads: %s", err.msg ? err.msg : "no error");
  vs_err_clear(&err);
  ok(vs_view_count(v) == 2 && forgotten == 1,
     "two VMs, and the one not seen since before NOT_BEFORE is forgotten (%zu, %zu)",
     vs_view_count(v), forgotten);
  ok(vs_view_count(v) == 2 && vs_view_prev(v, 0) && vs_view_prev(v, 1),
     "each with its previous snapshot");
  const char *const *msgs = NULL;
  size_t n_errors = vs_view_errors(v, &msgs);
  ok(n_errors == 1 && strstr(msgs[0], "garbage"),
     "a document that does not load is an error naming it, and is skipped: %s",
     n_errors ? msgs[0] : "none");
  int rc = vs_view_add_pool(v, "/nonexistent/pool", NULL, NULL, &err);
  ok(rc < 0 && err.code == ENOENT, "a missing pool is ENOENT: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  rc = vs_view_add_pool(v, file, NULL, NULL, &err);
  ok(rc < 0 && err.code == ENOTDIR, "a file is ENOTDIR: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  rc = vs_view_add_pool(v, tree, NULL, NULL, &err);
  ok(rc < 0 && err.code == EINVAL, "a guest tree given as a pool is refused (EINVAL): %s",
     vs_err_msg(&err));
  vs_err_clear(&err);
  fx_rmtree(root);
  free(pool);
  free(tree);
  free(file);
  free(root);
}

/* Everything a prepared view answers, as one JSON text: rolling keys, each VM's tokens (as a
 * sorted set), group, uniqueness, role and ranking, and the role analysis. */
static int cmp_token(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static json_t *token_set(const uint64_t *t, size_t n) {
  uint64_t *sorted = vs_xmalloc((n ? n : 1) * sizeof(uint64_t));
  memcpy(sorted, t, n * sizeof(uint64_t));
  qsort(sorted, n, sizeof(uint64_t), cmp_token);
  json_t *set = json_array();
  for (size_t k = 0; k < n; k++)
    json_array_append_new(set, json_integer((json_int_t)(sorted[k] >> 1)));
  free(sorted);
  return set;
}

static void add_count(const char *value, uint32_t count, void *arg) {
  json_object_set_new(arg, value, json_integer(count));
}

static char *answers(const struct vs_view *v) {
  json_t *all = json_object(), *vms = json_object(), *rolling = json_object();
  size_t pos = 0;
  const char *key;
  void *value;
  while (vs_strmap_next(vs_view_rolling(v), &pos, &key, &value))
    json_object_set_new(rolling, key, json_string(value));
  const struct vs_vm_tokens *t = vs_view_tokens(v);
  for (size_t i = 0; i < vs_view_count(v); i++) {
    struct vs_err err = {0};
    struct vs_drift *d = vs_view_rank(v, i, &(struct vs_drift_opts){.now = T0}, &err);
    struct vs_view_role r;
    vs_view_role(v, i, &r);
    json_object_set_new(
        vms, vs_feature_id(vs_view_doc(v, i)),
        json_pack("{s:o,s:o,s:I,s:b,s:I,s:o}", "tokens", token_set(t[i].tokens, t[i].n), "prev",
                  t[i].prev_tokens ? token_set(t[i].prev_tokens, t[i].n_prev) : json_null(),
                  "group", (json_int_t)vs_view_group(v, i), "unique", vs_view_unique(v, i), "role",
                  (json_int_t)r.number, "drift", d ? vs_drift_to_json(d, 0) : json_null()));
    vs_drift_free(d);
    vs_err_clear(&err);
  }
  /* The fleet's population, key by key: every value's count, the default and the top two */
  const struct vs_pop *pop = vs_view_fleet(v);
  json_t *fleet = json_object();
  for (size_t k = 0; k < vs_pop_keys(pop); k++) {
    struct vs_pop_stats st;
    vs_pop_key_stats(pop, k, &st);
    json_t *values = json_object();
    vs_pop_values(pop, k, add_count, values);
    json_object_set_new(fleet, vs_pop_key_name(pop, k),
                        json_pack("{s:o,s:I,s:s?,s:s?,s:I}", "values", values, "distinct",
                                  (json_int_t)st.distinct, "default", st.default_value, "top",
                                  st.top_value[0], "top_count", (json_int_t)st.top_count[0]));
  }
  json_object_set_new(all, "fleet", fleet);
  json_object_set_new(all, "fleet_docs", json_integer((json_int_t)vs_pop_docs(pop)));
  json_object_set_new(all, "vms", vms);
  json_object_set_new(all, "rolling", rolling);
  json_object_set_new(all, "analysis", vs_analysis_json(vs_view_analysis(v), t));
  char *text = json_dumps(all, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(all);
  return text;
}

/* A view holding DOCS (shared: each a new reference) prepared with CACHE (or none). */
static struct vs_view *shared_view(struct vs_feature **docs, size_t n,
                                   struct vs_view_cache *cache) {
  struct vs_view *v = vs_view_new();
  for (size_t i = 0; i < n; i++)
    if (docs[i]) vs_view_add(v, vs_feature_ref(docs[i]));
  vs_view_prepare_cached(v, &(struct vs_view_opts){.peers = VS_PEERS_ROLE}, cache);
  return v;
}

/* Rounds of one cache, each against a prepare without it: the same answers (the fleet's
 * population, kept and adjusted by the cache, included), when a VM's newest document changed,
 * when a VM left, when a key started rolling out (the tokens of every VM change: the moving
 * keys count by presence), when a key and a declared default left every VM, and when a VM came
 * back. */
static void test_cache(void) {
  enum { N = 24 };
  struct vs_feature *docs[2 * N] = {0}; /* each VM's previous, then its newest */
  for (int i = 0; i < N; i++) {
    const char *role = i % 3 ? "web" : "db";
    docs[2 * i] = vm(role, i, T0);
    docs[2 * i + 1] = vm(role, i, T0 + 60);
    if (i % 4 == 0) vs_feature_set(docs[2 * i + 1], "pkg:openssl", "3.0.15", NULL);
    if (i % 4 == 0) vs_feature_set(docs[2 * i], "pkg:openssl", "3.0.14", NULL);
  }
  vs_feature_set_default(docs[2 * 3 + 1], "pkg:openssl", "3.0.15");
  struct vs_view_cache *cache = vs_view_cache_new();
  size_t same = 0, rounds = 0, kept_same = 0;
  struct vs_view *last = NULL; /* the round before's, held while the next is prepared */
  char *last_answers = NULL;
  bool shared = false;
  for (int round = 0; round < 6; round++) {
    if (round == 2) { /* VM 5's new snapshot; VM 7 leaves */
      vs_feature_free(docs[2 * 5]);
      docs[2 * 5] = docs[2 * 5 + 1];
      docs[2 * 5 + 1] = vm("web", 5, T0 + 120);
      vs_feature_set(docs[2 * 5 + 1], "file:/etc/web.conf:setting3", "tuned", NULL);
      vs_feature_free(docs[2 * 7]);
      vs_feature_free(docs[2 * 7 + 1]);
      docs[2 * 7] = docs[2 * 7 + 1] = NULL;
    }
    if (round == 3) /* half the VMs move one key to one value: it rolls out */
      for (int i = 0; i < N; i += 2) {
        if (!docs[2 * i]) continue;
        vs_feature_free(docs[2 * i]);
        docs[2 * i] = docs[2 * i + 1];
        docs[2 * i + 1] = vm(i % 3 ? "web" : "db", i, T0 + 180);
        vs_feature_set(docs[2 * i + 1], "file:/etc/hostname:name", "rolled", NULL);
      }
    if (round == 4) /* openssl and its default leave every VM that had them */
      for (int i = 0; i < N; i++) {
        if (!docs[2 * i] || (i % 4 && i != 3)) continue;
        vs_feature_free(docs[2 * i]);
        docs[2 * i] = docs[2 * i + 1];
        docs[2 * i + 1] = vm(i % 3 ? "web" : "db", i, T0 + 240);
      }
    if (round == 5) { /* VM 7 comes back, and VM 9 is new for the fleet */
      docs[2 * 7 + 1] = vm("web", 7, T0 + 300);
      vs_feature_free(docs[2 * 9]);
      vs_feature_free(docs[2 * 9 + 1]);
      docs[2 * 9] = NULL;
      docs[2 * 9 + 1] = vm("db", 9, T0 + 300);
    }
    struct vs_view *with = shared_view(docs, 2 * N, cache),
                   *without = shared_view(docs, 2 * N, NULL);
    char *a = answers(with), *b = answers(without);
    same += strcmp(a, b) == 0;
    rounds++;
    if (strcmp(a, b) != 0) diag("round %d: %.300s\n  against %.300s", round, a, b);
    if (last) { /* a view the cache's tokens are shared with is not changed by a later prepare */
      char *again = answers(last);
      kept_same += strcmp(again, last_answers) == 0;
      if (strcmp(again, last_answers) != 0)
        diag("round %d's view after round %d: %.300s\n  against %.300s", round - 1, round, again,
             last_answers);
      free(again);
    }
    if (round == 1) { /* VM 1 is as it was: its tokens are the kept ones, not a copy */
      long i = vs_view_find_id(with, vs_feature_id(docs[3])),
           k = vs_view_find_id(last, vs_feature_id(docs[3]));
      shared = i >= 0 && k >= 0 &&
               vs_view_tokens(with)[i].tokens == vs_view_tokens(last)[k].tokens &&
               vs_view_tokens(with)[i].prev_tokens == vs_view_tokens(with)[i].tokens;
    }
    vs_view_free(last);
    free(last_answers);
    last = with;
    last_answers = a;
    free(b);
    vs_view_free(without);
  }
  vs_view_free(last);
  free(last_answers);
  ok(same == rounds,
     "a prepare with kept moves, tokens and population answers as one without (%zu of %zu "
     "rounds)",
     same, rounds);
  ok(kept_same == rounds - 1,
     "each view answers the same after the next was prepared, the tokens mended where a key "
     "started or stopped moving (%zu of %zu)",
     kept_same, rounds - 1);
  ok(shared, "a kept VM's tokens are shared with the cache, and its previous snapshot's with "
             "its newest's when their settings are the same");
  ok(vs_view_cache_count(cache) == N, "and keeps the VMs of the last view only (%zu of %d)",
     vs_view_cache_count(cache), N);
  for (size_t k = 0; k < 2 * N; k++)
    vs_feature_free(docs[k]);
  vs_view_cache_free(
      cache); /* the last references: valgrind and ASan see a leak or a double free */
}

/* A setting crafted so that its token equals the token of another of the VM's settings
 * (analytics.h: keyed by public constants; found by a search of 2^32 tries): when that other
 * key starts moving through the fleet, the kept tokens are mended as a prepare without the
 * cache makes them, the crafted one kept. */
static void test_cache_token_twin(void) {
  static const char *key = "file:/etc/sysctl.conf:vm.swappiness";
  static const char *twin_key = "file:/etc/x.conf:k30b8d9e9", *twin_value = "va87a2a7";
  enum { N = 12 };
  struct vs_feature *docs[2 * N] = {0}; /* each VM's newest, then a newer one or NULL */
  for (int i = 0; i < N; i++) {
    docs[2 * i] = vm("web", i, T0);
    vs_feature_set(docs[2 * i], key, i % 4 == 1 ? "10" : "60", NULL);
    if (i == 1) vs_feature_set(docs[2 * i], twin_key, twin_value, NULL);
  }
  ok(vs_token(twin_key, twin_value) == vs_token(key, "10"), "the crafted token is the other's");
  struct vs_view_cache *cache = vs_view_cache_new();
  size_t same = 0;
  for (int round = 0; round < 4; round++) {
    if (round == 1) /* two VMs move the key to one value: it rolls out, and is mended */
      for (int i = 6; i <= 7; i++) {
        docs[2 * i + 1] = vm("web", i, T0 + 60);
        vs_feature_set(docs[2 * i + 1], key, "30", NULL);
      }
    if (round == 3) /* their next snapshots hold it still: it stops moving, mended back */
      for (int i = 6; i <= 7; i++) {
        vs_feature_free(docs[2 * i]);
        docs[2 * i] = docs[2 * i + 1];
        docs[2 * i + 1] = vm("web", i, T0 + 120);
        vs_feature_set(docs[2 * i + 1], key, "30", NULL);
      }
    struct vs_view *with = shared_view(docs, 2 * N, cache),
                   *without = shared_view(docs, 2 * N, NULL);
    char *a = answers(with), *b = answers(without);
    same += strcmp(a, b) == 0;
    if (strcmp(a, b) != 0) diag("round %d: %.300s\n  against %.300s", round, a, b);
    free(a);
    free(b);
    vs_view_free(with);
    vs_view_free(without);
  }
  ok(same == 4,
     "a VM holding two settings of one token is mended as it is made, the key moving and then "
     "not (%zu of 4 rounds)",
     same);
  for (size_t k = 0; k < 2 * N; k++)
    vs_feature_free(docs[k]);
  vs_view_cache_free(cache);
}

int main(void) {
  plan_no_plan();
  test_cache();
  test_cache_token_twin();
  test_newest_per_vm();
  test_find_and_target();
  test_peer_groups();
  test_pool();
  return done_testing();
}
