#include "drift.h"
#include "majority.h"
#include "population.h"
#include "strmap.h"
#include "tap.h"
#include "version.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static bool near(double a, double b) {
  return fabs(a - b) < 1e-9;
}

static struct vs_feature *doc_with(const char *id, const char *const *kv) {
  struct vs_feature *d = vs_feature_new();
  vs_feature_set_id(d, id, id);
  for (size_t i = 0; kv && kv[i]; i += 2)
    vs_feature_set(d, kv[i], kv[i + 1], NULL);
  return d;
}

/* A population of N documents "vm-I" with KEY = VALUES[I % n_values] (NULL: unset). */
static struct vs_pop *pop_of(const char *key, const char *const *values, size_t n_values,
                             size_t n) {
  struct vs_pop *pop = vs_pop_new();
  for (size_t i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof(id), "vm-%zu", i);
    struct vs_feature *d = doc_with(id, NULL);
    if (values[i % n_values]) vs_feature_set(d, key, values[i % n_values], NULL);
    vs_feature_set(d, "os:distro", "debian", NULL);
    vs_pop_add(pop, d);
    vs_feature_free(d);
  }
  vs_pop_prepare(pop);
  return pop;
}

static const struct vs_finding *finding(const struct vs_drift *d, const char *key) {
  for (size_t i = 0; d && i < d->n_findings; i++)
    if (strcmp(d->findings[i].key, key) == 0) return &d->findings[i];
  return NULL;
}

static void test_formula_values(void) {
  ok(near(vs_drift_k(10, 2, 0), 2.0 / 12.0), "K = c(m+1)/(N+c): N=10, c=2, m=0 gives 1/6");
  ok(near(vs_drift_p(10, 2, 0, 1), 12.0 / 14.0),
     "P = (N+c)/(N+c+ct(m+1)): N=10, c=2, m=0, t=1 gives 12/14");
  ok(near(vs_drift_p(10, 2, 0, 5), 12.0 / 22.0), "P with t=5 suspects gives 12/22");
  ok(vs_drift_score(11, 2, 0) > vs_drift_score(11, 12, 0),
     "a unique value among agreeing peers scores above a key that differs everywhere");
  ok(vs_drift_score(11, 12, 0) > vs_drift_score(11, 2, 5),
     "a key that differs everywhere scores above a value shared with half the peers");
  ok(near(vs_drift_score(10, 1, 10), 0), "agreeing with every peer scores 0");
}

/* Four samples say "no", the target T (not a member) says "yes": "yes" is unseen; then the
 * same against one sample. */
static void test_formula_unseen_value(const struct vs_feature *t) {
  const char *no[] = {"no"};
  struct vs_pop *pop = pop_of("file:/etc/ssh/sshd_config:PermitRootLogin", no, 1, 4);
  struct vs_err err = {0};
  struct vs_drift *d = vs_drift_rank(pop, t, NULL, &err);
  const struct vs_finding *f = finding(d, "file:/etc/ssh/sshd_config:PermitRootLogin");
  ok(f && f->n == 4 && f->c == 2 && f->m == 0,
     "an unseen value: N=4, c = 1 distinct + 1 for the unseen value = 2, m=0");
  ok(f && near(f->k, 2.0 / 6.0) && near(f->p, 1.0 / 5.0) && near(f->score, 0.8),
     "and K = 2*1/(4+2) = 1/3; alone among 4 agreeing peers: p = 1/(4+1), score 0.8");
  ok(f && strcmp(f->majority, "no") == 0 && f->majority_count == 4,
     "the finding names the majority value and its count");
  ok(f && f->rank == 1, "and it ranks first");
  ok(d && d->n_findings == 1, "agreeing keys are not findings");
  vs_drift_free(d);
  vs_pop_free(pop);

  /* N = 1. */
  pop = pop_of("file:/etc/ssh/sshd_config:PermitRootLogin", no, 1, 1);
  d = vs_drift_rank(pop, t, NULL, &err);
  f = finding(d, "file:/etc/ssh/sshd_config:PermitRootLogin");
  ok(f && f->n == 1 && f->c == 2 && f->m == 0 && near(f->k, 2.0 / 3.0),
     "one sample: N=1, c=2, m=0, K=2/3");
  vs_drift_free(d);
  vs_pop_free(pop);
  vs_err_clear(&err);
}

/* The target is a member: it is left out of its own samples. */
static void test_formula_member_target(void) {
  const char *mixed[] = {"no", "no", "no", "no", "yes"};
  struct vs_pop *pop = pop_of("k", mixed, 5, 5); /* vm-4 says yes */
  struct vs_feature *vm4 =
      doc_with("vm-4", (const char *[]){"k", "yes", "os:distro", "debian", NULL});
  struct vs_err err = {0};
  struct vs_drift *d = vs_drift_rank(pop, vm4, NULL, &err);
  const struct vs_finding *f = finding(d, "k");
  ok(d && d->samples == 4, "a member target is left out of the samples (N = 5 - 1)");
  ok(f && f->c == 2 && f->m == 0 && near(f->k, 2.0 / 6.0),
     "its own value does not count: c=2 (no + unseen yes), m=0");
  vs_drift_free(d);
  vs_feature_free(vm4);
  vs_pop_free(pop);
  vs_err_clear(&err);
}

/* m > 0: two of ten samples share the target's value. */
static void test_formula_shared_value(void) {
  const char *split[] = {"a", "a", "a", "a", "b", "a", "a", "a", "a", "b"};
  struct vs_pop *pop = pop_of("k", split, 10, 10);
  struct vs_feature *tb = doc_with("t", (const char *[]){"k", "b", "os:distro", "debian", NULL});
  struct vs_err err = {0};
  struct vs_drift *d = vs_drift_rank(pop, tb, NULL, &err);
  const struct vs_finding *f = finding(d, "k");
  ok(f && f->n == 10 && f->c == 2 && f->m == 2 && near(f->k, 2.0 * 3 / 12),
     "two samples share the value: N=10, c=2, m=2, K=6/12");
  vs_drift_free(d);
  vs_feature_free(tb);
  vs_pop_free(pop);
  vs_err_clear(&err);
}

/* Every sample differs (hostname): score about one half. */
static void test_formula_hostname_like(void) {
  struct vs_pop *pop = vs_pop_new();
  for (int i = 0; i < 10; i++) {
    char id[32], host[16];
    snprintf(id, sizeof(id), "h%d", i);
    snprintf(host, sizeof(host), "web-%02d", i);
    struct vs_feature *h = doc_with(id, (const char *[]){"os:hostname", host, NULL});
    vs_pop_add(pop, h);
    vs_feature_free(h);
  }
  vs_pop_prepare(pop);
  struct vs_feature *th = doc_with("t", (const char *[]){"os:hostname", "db-01", NULL});
  struct vs_err err = {0};
  struct vs_drift *d = vs_drift_rank(pop, th, NULL, &err);
  const struct vs_finding *f = finding(d, "os:hostname");
  ok(f && f->c == 11 && f->m == 0 && near(f->k, 11.0 / 21.0),
     "a hostname-like key: c = 10 + 1, m = 0, K = 11/21");
  ok(f && f->severity == VS_SEVERITY_INFO, "which is info, not an alarm");
  ok(d && d->alarms == 0, "so the VM raises no alarm");
  vs_drift_free(d);
  vs_feature_free(th);
  vs_pop_free(pop);
  vs_err_clear(&err);
}

/* No samples at all. */
static void test_formula_no_samples(const struct vs_feature *t) {
  struct vs_err err = {0};
  struct vs_pop *empty = vs_pop_new();
  vs_pop_prepare(empty);
  struct vs_drift *d = vs_drift_rank(empty, t, NULL, &err);
  ok(!d && err.msg && strstr(err.msg, "no sample"),
     "ranking against no samples fails and says why");
  vs_err_clear(&err);
  vs_pop_free(empty);
}

static void test_formula(void) {
  test_formula_values();
  struct vs_feature *t =
      doc_with("target", (const char *[]){"file:/etc/ssh/sshd_config:PermitRootLogin", "yes",
                                          "os:distro", "debian", NULL});
  test_formula_unseen_value(t);
  test_formula_member_target();
  test_formula_shared_value();
  test_formula_hostname_like();
  test_formula_no_samples(t);
  vs_feature_free(t);
}

static struct vs_feature *fleet_doc(int i) {
  char id[32], host[16], ver[32];
  snprintf(id, sizeof(id), "vm-%d", i);
  snprintf(host, sizeof(host), "host-%d", i);
  snprintf(ver, sizeof(ver), "1:9.2p1-2+deb12u%d", i % 3);
  struct vs_feature *d = doc_with(id, (const char *[]){"os:hostname", host, "pkg:openssh-server",
                                                       ver, "sysctl:vm.swappiness", "60", NULL});
  if (i % 4 == 0) vs_feature_set(d, "svc:nginx.service", "enabled", NULL);
  if (i % 5 == 0) vs_feature_set_default(d, "file:/etc/ssh/sshd_config:Port", "22");
  return d;
}

static void test_population(void) {
  struct vs_pop *all = vs_pop_new(), *a = vs_pop_new(), *b = vs_pop_new();
  for (int i = 0; i < 40; i++) {
    struct vs_feature *d = fleet_doc(i);
    vs_pop_add(all, d);
    vs_pop_add(i < 17 ? a : b, d);
    vs_feature_free(d);
  }
  vs_pop_merge(a, b);
  char *da = vs_pop_dump(all), *dm = vs_pop_dump(a);
  ok(strcmp(da, dm) == 0, "merging two populations gives the counts of one built from both");
  ok(vs_pop_docs(a) == 40 && vs_pop_member(a, "vm-33") == 1, "and the members of both");
  free(dm);

  /* Remove ten documents: equal to a population that never had them. */
  struct vs_pop *rest = vs_pop_new();
  struct vs_err err = {0};
  bool removed = true;
  for (int i = 0; i < 40; i++) {
    struct vs_feature *d = fleet_doc(i);
    if (i % 4 == 1)
      removed &= vs_pop_remove(all, d, &err) == 0;
    else
      vs_pop_add(rest, d);
    vs_feature_free(d);
  }
  ok(removed, "removing added documents succeeds");
  char *dr = vs_pop_dump(rest), *dall = vs_pop_dump(all);
  ok(strcmp(dr, dall) == 0, "and subtracting them equals recomputing without them");
  ok(vs_pop_member(all, "vm-1") == 0, "a removed document is no longer a member");
  free(dr);

  struct vs_feature *stranger = fleet_doc(2);
  vs_feature_set(stranger, "pkg:openssh-server", "0.1", NULL);
  ok(vs_pop_remove(all, stranger, &err) < 0 && err.msg && strstr(err.msg, "vm-2") &&
         strstr(err.msg, "pkg:openssh-server"),
     "removing a document that differs from the one added fails and names the key");
  vs_err_clear(&err);
  char *after = vs_pop_dump(all);
  ok(strcmp(after, dall) == 0, "and changes nothing");
  free(after);
  free(dall);
  vs_feature_free(stranger);
  struct vs_feature *unknown = doc_with("nobody", NULL);
  ok(vs_pop_remove(all, unknown, &err) < 0 && err.msg && strstr(err.msg, "nobody"),
     "removing a document that is not a member fails");
  vs_err_clear(&err);
  vs_feature_free(unknown);

  /* Replace ten documents with their next snapshots (a value changed, a key gone, a key and a
   * default new, the default gone): equal to a population counted from the new ones. */
  struct vs_pop *swapped = vs_pop_new(), *fresh = vs_pop_new();
  bool replaced = true;
  for (int i = 0; i < 40; i++) {
    struct vs_feature *d = fleet_doc(i);
    vs_pop_add(swapped, d);
    struct vs_feature *next = d;
    if (i % 4 == 2) {
      next = fleet_doc(i);
      vs_feature_set(next, "pkg:openssh-server", "1:9.2p1-2+deb12u9", NULL);
      vs_feature_unset(next, "sysctl:vm.swappiness");
      vs_feature_set(next, "pkg:rare", "1.0", NULL);
      vs_feature_set_default(next, "file:/etc/rare.conf:x", "0");
      replaced &= vs_pop_replace(swapped, d, next, &err) == 0;
    }
    vs_pop_add(fresh, next);
    if (next != d) vs_feature_free(next);
    vs_feature_free(d);
  }
  struct vs_feature *first = fleet_doc(2), *back = fleet_doc(2);
  vs_feature_set(first, "pkg:openssh-server", "1:9.2p1-2+deb12u9", NULL);
  vs_feature_unset(first, "sysctl:vm.swappiness");
  vs_feature_set(first, "pkg:rare", "1.0", NULL);
  vs_feature_set_default(first, "file:/etc/rare.conf:x", "0");
  replaced &= vs_pop_replace(swapped, first, back, &err) == 0; /* and vm-2 back as it was */
  vs_pop_remove(fresh, first, &err);
  vs_pop_add(fresh, back);
  char *dsw = vs_pop_dump(swapped), *dfr = vs_pop_dump(fresh);
  ok(replaced && strcmp(dsw, dfr) == 0,
     "replacing documents by their next snapshots equals counting the next ones (%s)",
     err.msg ? err.msg : "replaced");
  vs_err_clear(&err);
  struct vs_feature *stray = fleet_doc(2);
  vs_feature_set(stray, "pkg:openssh-server", "0.1", NULL); /* a value no document has */
  ok(vs_pop_replace(swapped, stray, back, &err) < 0 && err.msg && strstr(err.msg, "vm-2"),
     "replacing a document that differs from the one added fails");
  vs_err_clear(&err);
  vs_feature_free(stray);
  char *dsw2 = vs_pop_dump(swapped);
  ok(strcmp(dsw2, dsw) == 0, "and changes nothing");
  struct vs_pop *copy = vs_pop_copy(swapped);
  char *dcp = vs_pop_dump(copy);
  vs_pop_prepare(copy);
  vs_pop_prepare(fresh);
  ok(strcmp(dcp, dfr) == 0 && vs_pop_keys(copy) == vs_pop_keys(fresh) &&
         vs_pop_pairs(copy) == vs_pop_pairs(fresh),
     "a copy holds the same counts, and only the keys a document has (%zu, as counted anew: %zu)",
     vs_pop_keys(copy), vs_pop_keys(fresh));
  struct vs_pop *left = vs_pop_new();
  struct vs_feature *only = fleet_doc(7);
  vs_pop_add(left, only);
  vs_pop_remove(left, only, &err);
  struct vs_pop *empty = vs_pop_copy(left);
  ok(vs_pop_keys(left) > 0 && vs_pop_keys(empty) == 0 && vs_pop_docs(empty) == 0 &&
         vs_pop_member(empty, "vm-7") == 0,
     "what a removal leaves behind is not copied (%zu keys left, none copied)", vs_pop_keys(left));
  vs_feature_free(only);
  vs_pop_free(left);
  vs_pop_free(empty);
  free(dsw);
  free(dsw2);
  free(dfr);
  free(dcp);
  vs_feature_free(first);
  vs_feature_free(back);
  vs_pop_free(copy);
  vs_pop_free(swapped);
  vs_pop_free(fresh);

  /* Memory follows distinct pairs: 1000 identical documents hold as many pairs as one. */
  struct vs_pop *same = vs_pop_new();
  for (int i = 0; i < 1000; i++) {
    char id[32];
    snprintf(id, sizeof(id), "same-%d", i);
    struct vs_feature *d =
        doc_with(id, (const char *[]){"pkg:bash", "5.2", "sysctl:vm.swappiness", "60", NULL});
    vs_pop_add(same, d);
    vs_feature_free(d);
  }
  ok(vs_pop_pairs(same) == 2 && vs_pop_keys(same) == 2,
     "1000 identical documents are 2 keys and 2 pairs, not 2000");
  vs_pop_prepare(same);
  long i = vs_pop_key_index(same, "pkg:bash");
  ok(i >= 0 && vs_pop_count(same, (size_t)i, "5.2") == 1000 &&
         vs_pop_count(same, (size_t)i, NULL) == 0,
     "with counts 1000 for the value and 0 absent");
  struct vs_feature *extra = doc_with("extra", (const char *[]){"pkg:bash", "5.1", NULL});
  vs_pop_add(same, extra);
  ok(!vs_pop_is_prepared(same), "a change un-prepares the population");
  struct vs_drift *d = vs_drift_rank(same, extra, NULL, &err);
  ok(!d && err.msg && strstr(err.msg, "prepare"), "and ranking then asks for vs_pop_prepare");
  vs_err_clear(&err);
  vs_feature_free(extra);
  vs_pop_free(same);
  free(da);
  vs_pop_free(rest);
  vs_pop_free(all);
  vs_pop_free(a);
  vs_pop_free(b);
}

/* vs_pop_at_most, the tail a value's count stands in, walks every value of a key but keeps a
 * table for keys of many values and small counts: both must give the same numbers. A hostname
 * key of 295 VMs: 200 hostnames of their own, 20 held by two VMs, 10 by three, one by eight,
 * one by nine, and 8 VMs at the declared default or without the key (absent, held by 8). */
struct at_most_sum {
  uint32_t max, docs;
};

static void sum_at_most(const char *value, uint32_t count, void *arg) {
  struct at_most_sum *a = arg;
  (void)value;
  if (count <= a->max) a->docs += count;
}

static size_t tails_agree(const struct vs_pop *pop, const char *key, size_t *asked) {
  long k = vs_pop_key_index(pop, key);
  size_t same = 0;
  for (uint32_t max = 0; k >= 0 && max <= 12; max++) {
    struct at_most_sum a = {.max = max};
    vs_pop_values(pop, (size_t)k, sum_at_most, &a);
    same += vs_pop_at_most(pop, (size_t)k, max) == a.docs;
    (*asked)++;
  }
  return same;
}

static void test_tail(void) {
  const char *key = "file:/etc/hostname:name";
  struct vs_pop *pop = vs_pop_new();
  struct vs_feature *docs[295];
  for (int i = 0; i < 295; i++) {
    char id[32], value[32];
    snprintf(id, sizeof(id), "vm-%d", i);
    if (i < 200)
      snprintf(value, sizeof(value), "host-%d", i);
    else if (i < 240)
      snprintf(value, sizeof(value), "pair-%d", (i - 200) / 2);
    else if (i < 270)
      snprintf(value, sizeof(value), "triple-%d", (i - 240) / 3);
    else if (i < 278)
      snprintf(value, sizeof(value), "eight");
    else if (i < 287)
      snprintf(value, sizeof(value), "nine");
    else
      snprintf(value, sizeof(value), "localhost");
    docs[i] = doc_with(id, (const char *[]){"os:distro", "debian", NULL});
    vs_feature_set_default(docs[i], key, "localhost");
    if (i < 290) vs_feature_set(docs[i], key, value, NULL);
    vs_pop_add(pop, docs[i]);
  }
  vs_pop_prepare(pop);
  size_t asked = 0, same = tails_agree(pop, key, &asked);
  long k = vs_pop_key_index(pop, key);
  ok(same == asked && k >= 0 && vs_pop_at_most(pop, (size_t)k, 1) == 200 &&
         vs_pop_at_most(pop, (size_t)k, 8) == 200 + 40 + 30 + 8 + 8 &&
         vs_pop_at_most(pop, (size_t)k, 9) == 295,
     "a key of many values: each tail up to 12 is what walking its values gives (%zu of %zu)", same,
     asked);
  asked = same = 0;
  for (int i = 0; i < 3; i++) { /* two hostnames and a pair's, each prepared again */
    vs_pop_remove(pop, docs[i * 100], NULL);
    vs_pop_prepare(pop);
    same += tails_agree(pop, key, &asked);
  }
  ok(same == asked && vs_pop_at_most(pop, (size_t)k, 1) == 198 + 1,
     "and again after each of three VMs left (%zu of %zu)", same, asked);
  /* Absent from more documents than the table has counts: walked, not counted in it. */
  struct vs_feature *bare[1000];
  for (int i = 0; i < 1000; i++) {
    char id[32];
    snprintf(id, sizeof(id), "bare-%d", i);
    bare[i] = doc_with(id, (const char *[]){"os:distro", "debian", NULL});
    vs_pop_add(pop, bare[i]);
  }
  vs_pop_prepare(pop);
  asked = 0;
  same = tails_agree(pop, key, &asked);
  ok(same == asked && vs_pop_at_most(pop, (size_t)k, 1000) == 199 + 40 - 2 + 30 + 8 + 9,
     "and with the key absent from 1,000 more VMs (%zu of %zu)", same, asked);
  for (int i = 0; i < 1000; i++)
    vs_feature_free(bare[i]);
  for (int i = 0; i < 295; i++)
    vs_feature_free(docs[i]);
  vs_pop_free(pop);
}

static void test_defaults(void) {
  /* Ten VMs leave PermitRootLogin at its default; one writes the default out; one sets yes. */
  const char *key = "file:/etc/ssh/sshd_config:PermitRootLogin";
  struct vs_pop *pop = vs_pop_new();
  struct vs_feature *docs[12];
  for (int i = 0; i < 12; i++) {
    char id[32];
    snprintf(id, sizeof(id), "vm-%d", i);
    docs[i] = doc_with(id, (const char *[]){"os:distro", "debian", NULL});
    vs_feature_set_default(docs[i], key, "prohibit-password");
    if (i == 10) vs_feature_set(docs[i], key, "prohibit-password", NULL);
    if (i == 11) vs_feature_set(docs[i], key, "yes", NULL);
    vs_pop_add(pop, docs[i]);
  }
  vs_pop_prepare(pop);
  long k = vs_pop_key_index(pop, key);
  struct vs_pop_stats st;
  vs_pop_key_stats(pop, (size_t)k, &st);
  is_str(st.default_value, "prohibit-password", "the declared default is the key's default");
  ok(vs_pop_count(pop, (size_t)k, NULL) == 11,
     "a value written out equal to the default counts as absent (10 + 1)");
  struct vs_err err = {0};
  struct vs_drift *d = vs_drift_rank(pop, docs[10], NULL, &err);
  ok(d && !finding(d, key), "the VM that wrote the default out has no finding for it");
  vs_drift_free(d);
  d = vs_drift_rank(pop, docs[11], NULL, &err);
  const struct vs_finding *f = finding(d, key);
  ok(f && f->c == 2 && f->m == 0 && strcmp(f->majority, VS_ABSENT) == 0 && f->majority_count == 11,
     "the VM that set yes stands apart from 11 peers at the default");
  ok(f && f->severity >= VS_SEVERITY_WARNING && d->alarms == 1, "and raises an alarm");
  vs_drift_free(d);
  for (int i = 0; i < 12; i++)
    vs_feature_free(docs[i]);
  vs_pop_free(pop);
}

static void test_edit_evidence(void) {
  /* Ten identical sshd_config files; the target's differs only in a comment. */
  struct vs_pop *pop = vs_pop_new();
  for (int i = 0; i < 10; i++) {
    char id[32];
    snprintf(id, sizeof(id), "vm-%d", i);
    struct vs_feature *d = doc_with(id, (const char *[]){"file:/etc/ssh/sshd_config:Port", "22",
                                                         "meta:/etc/ssh/sshd_config:sha256", "aaaa",
                                                         "meta:/etc/passwd:sha256", "pppp", NULL});
    vs_pop_add(pop, d);
    vs_feature_free(d);
  }
  vs_pop_prepare(pop);
  struct vs_feature *t = doc_with("t", (const char *[]){"file:/etc/ssh/sshd_config:Port", "22",
                                                        "meta:/etc/ssh/sshd_config:sha256", "bbbb",
                                                        "meta:/etc/passwd:sha256", "qqqq", NULL});
  struct vs_err err = {0};
  struct vs_drift *d = vs_drift_rank(pop, t, NULL, &err);
  const struct vs_finding *sshd = finding(d, "meta:/etc/ssh/sshd_config:sha256");
  const struct vs_finding *passwd = finding(d, "meta:/etc/passwd:sha256");
  ok(sshd && sshd->edit_evidence && sshd->severity == VS_SEVERITY_INFO,
     "the digest of a parsed file that changed nothing parsed is reported, as info only");
  ok(passwd && !passwd->edit_evidence && passwd->severity >= VS_SEVERITY_WARNING,
     "the digest of a file with no parsed settings keeps its severity");
  vs_drift_free(d);
  vs_feature_free(t);
  vs_pop_free(pop);
}

static void test_units(void) {
  struct vs_pop *pop = vs_pop_new();
  for (int i = 0; i < 10; i++) {
    char id[32];
    snprintf(id, sizeof(id), "vm-%d", i);
    struct vs_feature *d =
        doc_with(id, (const char *[]){"user:root:uid", "0", "user:root:shell", "/bin/bash",
                                      "file:/etc/app.conf:a", "1", "file:/etc/app.conf:b", "2",
                                      "meta:/etc/app.conf:mode", "0644", "file:/etc/hosts:x", "1",
                                      "meta:/etc/hosts:mode", "0644", NULL});
    vs_pop_add(pop, d);
    vs_feature_free(d);
  }
  vs_pop_prepare(pop);
  struct vs_feature *t = doc_with(
      "t", (const char *[]){"user:root:uid", "0", "user:root:shell", "/bin/bash", "user:toor:uid",
                            "0", "user:toor:gid", "0", "user:toor:shell", "/bin/sh",
                            "file:/etc/hosts:x", "1", "meta:/etc/hosts:mode", "0644", NULL});
  struct vs_err err = {0};
  struct vs_drift *d = vs_drift_rank(pop, t, NULL, &err);
  const struct vs_finding *u = finding(d, "user:toor:*");
  ok(u && u->keys == 3 && u->about_key, "a user only the target has is one finding for its 3 keys");
  ok(u && u->rank <= 2 && u->c == 2 && u->m == 0 && near(u->k, 2.0 / 12.0),
     "with the statistics of its keys (c=2, m=0, K=2/12), in the top two");
  const struct vs_finding *file = finding(d, "file:/etc/app.conf:*");
  ok(file && file->keys == 3 && strcmp(file->value, VS_ABSENT) == 0,
     "a file every peer has and the target lacks is one finding (2 settings + 1 meta key)");
  ok(d && d->n_findings == 2, "and nothing else is reported");
  vs_drift_free(d);
  vs_feature_free(t);
  vs_pop_free(pop);
}

static void test_waivers(void) {
  struct vs_err err = {0};
  const char *text = "# waivers\n"
                     "file:/etc/ssh/sshd_config:PermitRootLogin  web-*  2026-12-31  root login "
                     "for the migration (OPS-12)\n"
                     "pkg:*  *  -  packages follow the release train\n"
                     "sysctl:*  db-01  2026-01-31  tuning test, over\n";
  struct vs_waivers *w = vs_waivers_parse(text, "waivers", &err);
  ok(w && vs_waivers_count(w) == 3, "a waiver file with three waivers parses");
  struct vs_waiver_match m;
  time_t before = 1795000000; /* 2026-11-18 */
  time_t after = 1798848000;  /* 2027-01-02 */
  vs_waivers_match(w, "file:/etc/ssh/sshd_config:PermitRootLogin", "web-07", "uuid-7", before, &m);
  ok(m.reason && !m.expired && strstr(m.reason, "OPS-12"),
     "a key and VM glob match before the expiry day: waived, with its reason");
  vs_waivers_match(w, "file:/etc/ssh/sshd_config:PermitRootLogin", "web-07", "uuid-7", after, &m);
  ok(m.reason && m.expired, "after the expiry day the waiver matches but is expired");
  vs_waivers_match(w, "file:/etc/ssh/sshd_config:PermitRootLogin", "db-01", "uuid-1", before, &m);
  ok(!m.reason, "a VM the glob does not name is not waived");
  vs_waivers_match(w, "pkg:bash", "anything", "x", after, &m);
  ok(m.reason && !m.expired && !m.expires, "a waiver with - never expires");
  vs_waivers_match(w, "sysctl:vm.swappiness", "other", "db-01", before, &m);
  ok(m.reason && m.expired, "the VM glob matches the id as well as the name");

  /* Through the ranking: waived findings stay in the list, marked, and raise no alarm. */
  const char *no[] = {"no"};
  struct vs_pop *pop = pop_of("file:/etc/ssh/sshd_config:PermitRootLogin", no, 1, 20);
  struct vs_feature *t =
      doc_with("uuid-7", (const char *[]){"file:/etc/ssh/sshd_config:PermitRootLogin", "yes",
                                          "os:distro", "debian", NULL});
  vs_feature_set_id(t, "uuid-7", "web-07");
  struct vs_drift_opts o = {.waivers = w, .now = before};
  struct vs_drift *d = vs_drift_rank(pop, t, &o, &err);
  const struct vs_finding *f = finding(d, "file:/etc/ssh/sshd_config:PermitRootLogin");
  ok(f && f->waived && f->severity == VS_SEVERITY_FAILURE && d->alarms == 0,
     "a waived finding is still reported with its severity, and is no alarm");
  json_t *j = d ? vs_drift_to_json(d, 0) : NULL;
  json_t *jf = j ? json_array_get(json_object_get(j, "findings"), 0) : NULL;
  ok(jf && json_is_true(json_object_get(jf, "waived")) &&
         json_object_get(json_object_get(jf, "waiver"), "reason"),
     "the JSON says waived and why");
  json_decref(j);
  vs_drift_free(d);
  o.now = after;
  d = vs_drift_rank(pop, t, &o, &err);
  f = finding(d, "file:/etc/ssh/sshd_config:PermitRootLogin");
  ok(f && !f->waived && f->waiver.expired && d->alarms == 1,
     "once the waiver expires the finding alarms again, and says the waiver expired");
  vs_drift_free(d);
  vs_feature_free(t);
  vs_pop_free(pop);
  vs_waivers_free(w);

  w = vs_waivers_parse("pkg:* * -\n", "w.txt", &err);
  ok(!w && err.msg && strstr(err.msg, "w.txt:1") && strstr(err.msg, "reason"),
     "a waiver without a reason is refused, naming file and line");
  vs_err_clear(&err);
  w = vs_waivers_parse("\n\npkg:* * 2026-02-30 why\n", "w.txt", &err);
  ok(!w && err.msg && strstr(err.msg, "w.txt:3") && strstr(err.msg, "2026-02-30"),
     "an impossible expiry date is refused, naming file and line");
  vs_err_clear(&err);
}

/* Two documents of one VM: packages upgraded, downgraded, installed and removed, a conffile
 * changed with its package and one edited locally, a service disabled. */
static struct vs_feature *diff_old_doc(void) {
  struct vs_feature *old = doc_with("vm", (const char *[]){"pkg:openssh-server",
                                                           "1:9.2p1-2+deb12u2",
                                                           "pkg:bash",
                                                           "5.2.15-2",
                                                           "pkg:curl",
                                                           "7.88.1-10",
                                                           "pkg:telnet",
                                                           "0.17-44",
                                                           "meta:/etc/ssh/sshd_config:package",
                                                           "openssh-server",
                                                           "meta:/etc/ssh/sshd_config:sha256",
                                                           "aaaa",
                                                           "file:/etc/ssh/sshd_config:Port",
                                                           "22",
                                                           "meta:/etc/bash.bashrc:package",
                                                           "bash",
                                                           "meta:/etc/bash.bashrc:sha256",
                                                           "bbbb",
                                                           "svc:ssh.service",
                                                           "enabled",
                                                           NULL});
  vs_feature_set_os(old, "package_format", "deb");
  return old;
}

static struct vs_feature *diff_new_doc(void) {
  struct vs_feature *new = doc_with("vm", (const char *[]){"pkg:openssh-server",
                                                           "1:9.2p1-2+deb12u3",
                                                           "pkg:bash",
                                                           "5.2.15-2",
                                                           "pkg:curl",
                                                           "7.88.1-10~bpo1",
                                                           "pkg:vim",
                                                           "2:9.0.1378-2",
                                                           "meta:/etc/ssh/sshd_config:package",
                                                           "openssh-server",
                                                           "meta:/etc/ssh/sshd_config:sha256",
                                                           "cccc",
                                                           "file:/etc/ssh/sshd_config:Port",
                                                           "2222",
                                                           "meta:/etc/bash.bashrc:package",
                                                           "bash",
                                                           "meta:/etc/bash.bashrc:sha256",
                                                           "dddd",
                                                           "svc:ssh.service",
                                                           "disabled",
                                                           NULL});
  vs_feature_set_os(new, "package_format", "deb");
  return new;
}

static void test_diff_classes(const struct vs_diff *d) {
  const struct vs_change *by_key[32] = {0};
  const char *keys[] = {"pkg:openssh-server",
                        "pkg:curl",
                        "pkg:vim",
                        "pkg:telnet",
                        "meta:/etc/ssh/sshd_config:sha256",
                        "file:/etc/ssh/sshd_config:Port",
                        "meta:/etc/bash.bashrc:sha256",
                        "svc:ssh.service",
                        "pkg:bash"};
  size_t nk = sizeof(keys) / sizeof(keys[0]);
  for (size_t i = 0; i < d->n_changes; i++)
    for (size_t k = 0; k < nk; k++)
      if (strcmp(d->changes[i].key, keys[k]) == 0) by_key[k] = &d->changes[i];
  ok(by_key[0] && by_key[0]->class == VS_CLASS_UPGRADE, "deb12u2 -> deb12u3 is an upgrade");
  ok(by_key[1] && by_key[1]->class == VS_CLASS_DOWNGRADE,
     "7.88.1-10 -> 7.88.1-10~bpo1 is a downgrade ('~' sorts before the end)");
  ok(by_key[2] && by_key[2]->kind == VS_CHANGE_ADDED && by_key[2]->class == VS_CLASS_INSTALLED,
     "a new package is added and installed");
  ok(by_key[3] && by_key[3]->kind == VS_CHANGE_REMOVED && by_key[3]->class == VS_CLASS_UNINSTALLED,
     "a package gone is removed and uninstalled");
  ok(by_key[4] && by_key[4]->class == VS_CLASS_WITH_PACKAGE && by_key[4]->package &&
         strcmp(by_key[4]->package, "openssh-server") == 0,
     "sshd_config changed while openssh-server was upgraded: a change with the package");
  ok(by_key[5] && by_key[5]->class == VS_CLASS_WITH_PACKAGE,
     "and so did the setting parsed from it");
  ok(by_key[6] && by_key[6]->class == VS_CLASS_LOCAL_EDIT,
     "bash.bashrc changed while bash did not: a local edit");
  ok(by_key[7] && by_key[7]->kind == VS_CHANGE_CHANGED && by_key[7]->class == VS_CLASS_NONE,
     "a service change is a plain change");
  ok(!by_key[8], "an unchanged key is not listed");
}

static void test_diff_summary(const struct vs_diff *d) {
  ok(d->upgrades == 1 && d->downgrades == 1 && d->installed == 1 && d->uninstalled == 1,
     "the summary counts 1 upgrade, 1 downgrade, 1 install, 1 removal");
  ok(d->package_edits == 1 && d->local_edits == 1,
     "and one file changed with its package, one edited locally (files, not keys)");
  ok(d->added == 1 && d->removed == 1 && d->changed == 6, "added 1, removed 1, changed 6");
}

static void test_diff(void) {
  struct vs_feature *old = diff_old_doc(), *new = diff_new_doc();
  struct vs_diff *d = vs_drift_diff(old, new);
  test_diff_classes(d);
  test_diff_summary(d);
  vs_diff_free(d);
  vs_feature_free(old);
  vs_feature_free(new);
}

/* dpkg itself is the reference for Debian version order. */
static int dpkg_says(const char *a, const char *b) {
  char *argv_lt[] = {"dpkg", "--compare-versions", (char *)a, "lt", (char *)b, NULL};
  char *argv_gt[] = {"dpkg", "--compare-versions", (char *)a, "gt", (char *)b, NULL};
  char **argvs[2] = {argv_lt, argv_gt};
  for (int k = 0; k < 2; k++) {
    pid_t pid = fork();
    if (pid == 0) {
      execvp("dpkg", argvs[k]);
      _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) > 1) return 99;
    if (WEXITSTATUS(st) == 0) return k == 0 ? -1 : 1;
  }
  return 0;
}

static int sign(int x) {
  return x < 0 ? -1 : x > 0;
}

static void test_versions(void) {
  static const char *const pairs[][2] = {{"1.0", "1.0"},
                                         {"1.0", "1.1"},
                                         {"1.0~rc1", "1.0"},
                                         {"1.0~~", "1.0~"},
                                         {"1.0", "1.0+b1"},
                                         {"1:0.9", "2.0"},
                                         {"2:1.0", "10:0.1"},
                                         {"1.0-1", "1.0-1+deb12u1"},
                                         {"9.2p1-2+deb12u3", "9.2p1-2+deb12u2"},
                                         {"1.10", "1.9"},
                                         {"1.010", "1.10"},
                                         {"1.0a", "1.0"},
                                         {"1.0a", "1.0+"},
                                         {"1.0.0", "1.0"},
                                         {"0:1.2", "1.2"},
                                         {"1.2-3", "1.2-10"},
                                         {"1.2-3a", "1.2-3"},
                                         {"5.2.15-2+b2", "5.2.15-2"},
                                         {"7.88.1-10", "7.88.1-10~bpo1"},
                                         {"2.36-9+deb12u4", "2.36-9+deb12u10"},
                                         {"1:9.2p1", "9.2p1"},
                                         {"1.0b", "1.0a"},
                                         {"1.0-a", "1.0-A"},
                                         {"3.0.11-1~deb12u2", "3.0.11-1"},
                                         {"252.30-1~deb12u2", "252.33-1~deb12u1"}};
  size_t n = sizeof(pairs) / sizeof(pairs[0]), agree = 0, checked = 0;
  for (size_t i = 0; i < n; i++) {
    int want = dpkg_says(pairs[i][0], pairs[i][1]);
    if (want == 99) continue;
    checked++;
    int got = sign(vs_version_compare("deb", pairs[i][0], pairs[i][1]));
    if (got == want)
      agree++;
    else
      diag("%s vs %s: dpkg says %d, we say %d", pairs[i][0], pairs[i][1], want, got);
  }
  if (checked)
    ok(agree == checked, "Debian version order agrees with dpkg --compare-versions on %zu pairs",
       checked);
  else
    skip(1, "dpkg is not installed");
  ok(vs_version_compare("rpm", "1:1.0-1", "2.0-1") > 0, "RPM: an epoch outranks the version");
  ok(vs_version_compare("rpm", "2.0-1.el9", "2.0-2.el9") < 0, "RPM: release 1 is older than 2");
  ok(vs_version_compare("rpm", "5.14.0-1 5.14.0-3", "5.14.0-2") > 0,
     "several versions compare by the highest listed");
}

struct seen_changes {
  char text[512];
  size_t n;
};

static void note_change(const struct vs_majority_change *c, void *arg) {
  struct seen_changes *s = arg;
  size_t len = strlen(s->text);
  snprintf(s->text + len, sizeof(s->text) - len, "%s%s:%s->%s(%u/%u)", s->n ? " " : "", c->key,
           c->before, c->after, c->support, c->docs);
  s->n++;
}

static void test_majority(void) {
  struct vs_majorities *m = vs_majorities_new();
  struct seen_changes s = {{0}, 0};
  const char *const no[] = {"no"}, *const split[] = {"no", "yes"},
                    *const yes3of4[] = {"yes", "yes", "yes", "no"}, *const unset[] = {NULL};
  struct vs_pop *p = pop_of("file:/etc/ssh/sshd_config:PermitRootLogin", no, 1, 5);
  ok(vs_majorities_update(m, p, note_change, &s) == 0 && s.n == 0,
     "a key's first majority is no change");
  is_str(vs_majorities_get(m, "file:/etc/ssh/sshd_config:PermitRootLogin"), "no",
         "the tracker remembers it");
  vs_pop_free(p);
  p = pop_of("file:/etc/ssh/sshd_config:PermitRootLogin", split, 2, 4);
  ok(vs_majorities_update(m, p, note_change, &s) == 0, "a 2:2 split has no majority: no change");
  is_str(vs_majorities_get(m, "file:/etc/ssh/sshd_config:PermitRootLogin"), "no",
         "and the key keeps its last majority");
  vs_pop_free(p);
  p = pop_of("file:/etc/ssh/sshd_config:PermitRootLogin", yes3of4, 4, 4);
  ok(vs_majorities_update(m, p, note_change, &s) == 1, "3 of 4 on a new value is one change");
  is_str(s.text, "file:/etc/ssh/sshd_config:PermitRootLogin:no->yes(3/4)",
         "from the old majority to the new, with its support");
  vs_pop_free(p);
  p = pop_of("file:/etc/ssh/sshd_config:PermitRootLogin", unset, 1, 4);
  s.text[0] = 0;
  s.n = 0;
  ok(vs_majorities_update(m, p, note_change, &s) == 1 &&
         strcmp(s.text, "file:/etc/ssh/sshd_config:PermitRootLogin:yes-><absent>(4/4)") == 0,
     "a key the fleet drops moves its majority to <absent>: %s", s.text);
  vs_pop_free(p);
  p = pop_of("file:/etc/ssh/sshd_config:PermitRootLogin", yes3of4, 1, 2);
  ok(vs_majorities_update(m, p, note_change, &s) == 0 &&
         strcmp(vs_majorities_get(m, "file:/etc/ssh/sshd_config:PermitRootLogin"), VS_ABSENT) == 0,
     "two documents are too few to move a majority");
  vs_pop_free(p);
  p = pop_of("sysctl:net.ipv4.ip_forward", yes3of4, 4, 4);
  s.text[0] = 0;
  s.n = 0;
  ok(vs_majorities_update(m, p, note_change, &s) == 1 &&
         strstr(s.text, "sysctl:net.ipv4.ip_forward:<absent>->yes(3/4)") != NULL,
     "a key no VM had, set on most of them, moves from <absent>: %s", s.text);
  vs_pop_free(p);
  vs_majorities_free(m);
}

/* ---------------------------------------------------------------- kinds (issue 18) */

#define SWAP "file:/etc/sysctl.conf:vm.swappiness"

/* A VM "ID" with SWAP = VALUE (NULL: unset), a package and the distribution. */
static struct vs_feature *kind_doc(const char *id, const char *value) {
  struct vs_feature *d = doc_with(id, (const char *[]){"os:distro", "debian", NULL});
  vs_feature_set_os(d, "package_format", "deb");
  if (value) vs_feature_set(d, SWAP, value, NULL);
  return d;
}

/* Adds N documents "PREFIX-I" with SWAP = VALUE to each population of POPS (NULL-ended). */
static void add_docs(struct vs_pop *const *pops, const char *prefix, size_t n, const char *value) {
  for (size_t i = 0; i < n; i++) {
    char id[48];
    snprintf(id, sizeof(id), "%s-%02zu", prefix, i + 1);
    struct vs_feature *d = kind_doc(id, value);
    for (size_t p = 0; pops[p]; p++)
      vs_pop_add(pops[p], d);
    vs_feature_free(d);
  }
}

/* The target "t" (value "10") alone among N peers that agree on "60", without a fleet. */
static struct vs_drift *alone_among(size_t n, const struct vs_drift_opts *opts) {
  _cleanup_(vs_pop_freep) struct vs_pop *pop = vs_pop_new();
  add_docs((struct vs_pop *[]){pop, NULL}, "peer", n, "60");
  vs_pop_prepare(pop);
  _cleanup_(vs_feature_freep) struct vs_feature *t = kind_doc("t", "10");
  struct vs_err err = {0};
  struct vs_drift *d = vs_drift_rank(pop, t, opts, &err);
  if (!d) diag("ranking: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  return d;
}

static void test_kind_alone(void) {
  static const struct {
    size_t n;
    enum vs_severity want;
  } cases[] = {{1, VS_SEVERITY_INFO},    {2, VS_SEVERITY_WARNING}, {4, VS_SEVERITY_WARNING},
               {8, VS_SEVERITY_WARNING}, {9, VS_SEVERITY_FAILURE}, {30, VS_SEVERITY_FAILURE}};
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    _cleanup_(vs_drift_freep) struct vs_drift *d = alone_among(cases[c].n, NULL);
    const struct vs_finding *f = finding(d, SWAP);
    /* With one peer, both VMs hold their value alone: each stands out as much, p = 2/2. */
    double p = cases[c].n == 1 ? 1.0 : 1.0 / ((double)cases[c].n + 1);
    ok(f && f->kind == VS_FINDING_ALONE && near(f->p, p) && near(f->score, 1 - p) &&
           f->severity == cases[c].want,
       "alone among %zu agreeing peers: p = %.3f, score %.2f, %s (%s, p=%.3f, %s)", cases[c].n, p,
       1 - p, vs_severity_name(cases[c].want), f ? vs_finding_kind_name(f->kind) : "-",
       f ? f->p : -1, f ? vs_severity_name(f->severity) : "-");
  }
  _cleanup_(vs_drift_freep) struct vs_drift *d = alone_among(9, NULL);
  ok(d && d->alarms == 1, "an alone finding that warns or fails is an alarm");
  struct vs_drift_opts strict = {.warn_score = 0.85, .fail_score = 0.95};
  _cleanup_(vs_drift_freep) struct vs_drift *s = alone_among(4, &strict);
  const struct vs_finding *f = finding(s, SWAP);
  ok(f && f->severity == VS_SEVERITY_INFO && s->alarms == 0,
     "a warn score above 0.80 leaves alone-among-4 at info");
}

/* Peers that all differ: alone, but p = 1, never an alarm. */
static void test_kind_all_differ(void) {
  _cleanup_(vs_pop_freep) struct vs_pop *pop = vs_pop_new();
  for (int i = 0; i < 9; i++) {
    char id[16], v[16];
    snprintf(id, sizeof(id), "p%d", i);
    snprintf(v, sizeof(v), "%d", 20 + i);
    struct vs_feature *d = kind_doc(id, v);
    vs_pop_add(pop, d);
    vs_feature_free(d);
  }
  vs_pop_prepare(pop);
  _cleanup_(vs_feature_freep) struct vs_feature *t = kind_doc("t", "10");
  struct vs_err err = {0};
  _cleanup_(vs_drift_freep) struct vs_drift *d = vs_drift_rank(pop, t, NULL, &err);
  const struct vs_finding *f = finding(d, SWAP);
  ok(f && near(f->p, 1) && f->severity == VS_SEVERITY_INFO,
     "alone among 9 peers that all differ: p = 1, info (p=%.2f)", f ? f->p : -1);
  vs_err_clear(&err);
}

static void test_kind_shared(void) {
  _cleanup_(vs_pop_freep) struct vs_pop *pop = vs_pop_new();
  add_docs((struct vs_pop *[]){pop, NULL}, "peer", 9, "60");
  add_docs((struct vs_pop *[]){pop, NULL}, "twin", 1, "10");
  vs_pop_prepare(pop);
  _cleanup_(vs_feature_freep) struct vs_feature *t = kind_doc("t", "10");
  struct vs_err err = {0};
  _cleanup_(vs_drift_freep) struct vs_drift *d = vs_drift_rank(pop, t, NULL, &err);
  const struct vs_finding *f = finding(d, SWAP);
  ok(f && f->kind == VS_FINDING_SHARED && f->m == 1 && f->severity == VS_SEVERITY_INFO,
     "a value shared with one peer of 10 is \"shared\", info (%s, %s)",
     f ? vs_finding_kind_name(f->kind) : "-", f ? vs_severity_name(f->severity) : "-");
  ok(d && d->alarms == 0, "and raises no alarm");
  vs_err_clear(&err);
}

/* A fleet: the target "t" (SWAP = "10") and its 5 close peers (all "60") are role 0; role 1
 * is OTHERS VMs "db-NN" of which HOLDERS have "10", the rest "60". */
struct kind_fleet {
  struct vs_pop *fleet, *roles[2];
  const char *names[2];
  struct vs_drift_fleet ctx;
};

static void kind_fleet_init(struct kind_fleet *k, size_t others, size_t holders) {
  k->fleet = vs_pop_new();
  k->roles[0] = vs_pop_new();
  k->roles[1] = vs_pop_new();
  add_docs((struct vs_pop *[]){k->fleet, k->roles[0], NULL}, "web", 5, "60");
  add_docs((struct vs_pop *[]){k->fleet, k->roles[1], NULL}, "db", holders, "10");
  add_docs((struct vs_pop *[]){k->fleet, k->roles[1], NULL}, "db-other", others - holders, "60");
  struct vs_feature *t = kind_doc("t", "10");
  vs_pop_add(k->fleet, t);
  vs_pop_add(k->roles[0], t);
  vs_feature_free(t);
  for (size_t i = 0; i < 3; i++)
    vs_pop_prepare(i ? k->roles[i - 1] : k->fleet);
  k->names[0] = "web-01";
  k->names[1] = "db-01";
  k->ctx = (struct vs_drift_fleet){.fleet = k->fleet,
                                   .roles = (const struct vs_pop *const *)k->roles,
                                   .role_names = k->names,
                                   .n_roles = 2,
                                   .own_role = 0,
                                   .group_max = 4};
}

static void kind_fleet_clear(struct kind_fleet *k) {
  vs_pop_free(k->fleet);
  vs_pop_free(k->roles[0]);
  vs_pop_free(k->roles[1]);
}

/* Ranks the target "t" (DOC, or kind_doc("t", "10")) against its role's peers with K's
 * context. */
static struct vs_drift *rank_in(const struct kind_fleet *k, const struct vs_feature *doc) {
  _cleanup_(vs_feature_freep) struct vs_feature *t = doc ? NULL : kind_doc("t", "10");
  struct vs_drift_opts opts = {.fleet = &k->ctx};
  struct vs_err err = {0};
  struct vs_drift *d = vs_drift_rank(k->roles[0], doc ? doc : t, &opts, &err);
  if (!d) diag("ranking: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  return d;
}

static void test_kind_group(void) {
  struct kind_fleet k = {0};
  kind_fleet_init(&k, 10, 2); /* 2 of the 10 databases have "10" too: a team's tweak */
  _cleanup_(vs_drift_freep) struct vs_drift *d = rank_in(&k, NULL);
  const struct vs_finding *f = finding(d, SWAP);
  ok(f && f->kind == VS_FINDING_GROUP && f->elsewhere == 2 && f->severity == VS_SEVERITY_INFO,
     "alone among its peers, but held by 2 VMs elsewhere and no kind's value: \"group\", info "
     "(%s, elsewhere %u)",
     f ? vs_finding_kind_name(f->kind) : "-", f ? f->elsewhere : 0);
  ok(d && d->alarms == 0, "a team's tweak raises no per-VM alarm");
  kind_fleet_clear(&k);

  kind_fleet_init(&k, 10, 5); /* 5 elsewhere: more than a team's tweak (group_max 4) */
  _cleanup_(vs_drift_freep) struct vs_drift *wide = rank_in(&k, NULL);
  f = finding(wide, SWAP);
  ok(f && f->kind == VS_FINDING_ALONE && f->severity == VS_SEVERITY_WARNING,
     "held by 5 VMs elsewhere (over group_max 4, no kind's majority): still alone, a warning");
  kind_fleet_clear(&k);
}

static void test_kind_other_role(void) {
  struct kind_fleet k = {0};
  kind_fleet_init(&k, 4, 4); /* every database has "10": the databases' value */
  _cleanup_(vs_drift_freep) struct vs_drift *d = rank_in(&k, NULL);
  const struct vs_finding *f = finding(d, SWAP);
  ok(f && f->kind == VS_FINDING_ALONE && f->severity == VS_SEVERITY_WARNING,
     "another kind's value among 5 agreeing peers alarms (%s, %s)",
     f ? vs_finding_kind_name(f->kind) : "-", f ? vs_severity_name(f->severity) : "-");
  ok(f && f->role_of_value && strcmp(f->role_of_value, "db-01") == 0,
     "and names whose value it is (%s)", f && f->role_of_value ? f->role_of_value : "none");
  kind_fleet_clear(&k);
}

static void test_kind_rollout(void) {
  struct kind_fleet k = {0};
  kind_fleet_init(&k, 4, 0);
  _cleanup_(vs_feature_freep) struct vs_feature *t = kind_doc("t", "60");
  vs_feature_set(t, "pkg:openssl", "3.0.13-1~deb12u1", NULL);
  vs_feature_set(t, "pkg:zlib1g", "1:1.2.12-1", NULL);
  /* the peers' versions: added to a role of their own, with the fleet as before */
  _cleanup_(vs_pop_freep) struct vs_pop *peers = vs_pop_new();
  for (int i = 1; i <= 5; i++) {
    char id[16];
    snprintf(id, sizeof(id), "web-%02d", i);
    struct vs_feature *d = kind_doc(id, "60");
    vs_feature_set(d, "pkg:openssl", "3.0.11-1~deb12u2", NULL);
    vs_feature_set(d, "pkg:zlib1g", "1:1.2.13.dfsg-1", NULL);
    vs_pop_add(peers, d);
    vs_feature_free(d);
  }
  vs_pop_prepare(peers);
  struct vs_drift_opts opts = {.fleet = &k.ctx};
  struct vs_err err = {0};
  _cleanup_(vs_drift_freep) struct vs_drift *d = vs_drift_rank(peers, t, &opts, &err);
  vs_err_clear(&err);
  const struct vs_finding *f = finding(d, "pkg:openssl");
  ok(f && f->kind == VS_FINDING_ROLLOUT && f->severity == VS_SEVERITY_INFO,
     "a package newer than all its peers' is a rollout, info (%s)",
     f ? vs_finding_kind_name(f->kind) : "-");
  f = finding(d, "pkg:zlib1g");
  ok(f && f->kind == VS_FINDING_ALONE && f->severity == VS_SEVERITY_WARNING,
     "an older version no other VM has is the VM's own: alone, a warning (%s)",
     f ? vs_finding_kind_name(f->kind) : "-");

  _cleanup_(vs_strmap_freep) struct vs_strmap *rolling = vs_strmap_new(NULL);
  vs_strmap_put(rolling, SWAP, (void *)"10");
  k.ctx.rolling = rolling;
  _cleanup_(vs_drift_freep) struct vs_drift *moving = rank_in(&k, NULL);
  f = finding(moving, SWAP);
  ok(f && f->kind == VS_FINDING_ROLLOUT && moving->alarms == 0,
     "a key moving through the fleet between snapshots is a rollout, no alarm");
  kind_fleet_clear(&k);
}

static void test_kind_source(void) {
  _cleanup_(vs_pop_freep) struct vs_pop *pop = vs_pop_new();
  add_docs((struct vs_pop *[]){pop, NULL}, "tree", 9, "60");
  vs_pop_prepare(pop);
  _cleanup_(vs_feature_freep) struct vs_feature *t = kind_doc("t", "60");
  vs_feature_set(t, "vm:cpu:count", "4", NULL);
  vs_feature_set(t, "vm:memory:mib", "4096", NULL);
  vs_feature_set(t, "vm:disk:vda:cache", "none", NULL);
  struct vs_err err = {0};
  _cleanup_(vs_drift_freep) struct vs_drift *d = vs_drift_rank(pop, t, NULL, &err);
  vs_err_clear(&err);
  size_t vm_findings = 0;
  for (size_t i = 0; d && i < d->n_findings; i++)
    vm_findings += strncmp(d->findings[i].key, "vm:", 3) == 0;
  const struct vs_finding *f = finding(d, "vm:*");
  ok(vm_findings == 1 && f && f->keys == 3,
     "a vm: namespace none of the 9 peers has is one finding vm:* for its 3 keys (%zu)",
     vm_findings);
  ok(f && f->kind == VS_FINDING_SOURCE && f->severity == VS_SEVERITY_INFO && d->alarms == 0,
     "of kind \"source\", info: another kind of source, not 3 misconfigurations");
}

static void test_kind_unique(void) {
  struct kind_fleet k = {0};
  kind_fleet_init(&k, 4, 0);
  k.ctx.unique = true;
  _cleanup_(vs_pop_freep) struct vs_pop *pop = vs_pop_new();
  add_docs((struct vs_pop *[]){pop, NULL}, "web", 9, "60");
  vs_pop_prepare(pop);
  _cleanup_(vs_feature_freep) struct vs_feature *t = kind_doc("t", "10");
  vs_feature_set(t, "file:/etc/app.conf:mode", "debug", NULL);
  struct vs_drift_opts opts = {.fleet = &k.ctx};
  struct vs_err err = {0};
  _cleanup_(vs_drift_freep) struct vs_drift *d = vs_drift_rank(pop, t, &opts, &err);
  vs_err_clear(&err);
  bool all_info = d && d->n_findings > 0;
  for (size_t i = 0; all_info && i < d->n_findings; i++)
    all_info = d->findings[i].severity == VS_SEVERITY_INFO;
  ok(d && d->unique && all_info && d->alarms == 0,
     "a unique target (no close peers): every finding is info, even alone among 9 (%zu "
     "findings, %zu alarms)",
     d ? d->n_findings : 0, d ? d->alarms : 0);
  json_t *j = d ? vs_drift_to_json(d, 0) : NULL;
  ok(j && json_is_true(json_object_get(j, "unique")), "and its JSON says \"unique\": true");
  json_decref(j);
  kind_fleet_clear(&k);
}

static void test_kinds(void) {
  test_kind_alone();
  test_kind_all_differ();
  test_kind_shared();
  test_kind_group();
  test_kind_other_role();
  test_kind_rollout();
  test_kind_source();
  test_kind_unique();
}

int main(void) {
  plan_no_plan();
  test_formula();
  test_population();
  test_defaults();
  test_tail();
  test_units();
  test_edit_evidence();
  test_waivers();
  test_diff();
  test_versions();
  test_majority();
  test_kinds();
  return done_testing();
}
