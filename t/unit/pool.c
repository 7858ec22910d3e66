#include "fixture.h"
#include "pool.h"
#include "source.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct vs_feature *snap(const char *id, int64_t t, const char *value) {
  struct vs_feature *d = vs_feature_new();
  vs_feature_set_id(d, id, "web-07");
  vs_feature_set_taken_at(d, t);
  vs_feature_set(d, "file:/etc/ssh/sshd_config:PermitRootLogin", value, NULL);
  return d;
}

static size_t count_files(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  size_t n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  if (d) closedir(d);
  return n;
}

/* A pool under a test's temporary directory, and the VM and time its documents are about. */
struct pool_fx {
  char *root, *pool;
  const char *uuid;
  int64_t t0;
};

static void test_write_names_by_time(const struct pool_fx *fx) {
  struct vs_err err = {0};
  char *path = NULL;
  struct vs_feature *a = snap(fx->uuid, fx->t0, "no");
  ok(vs_pool_write(fx->pool, a, &path, &err) == 0, "a document is written into an empty pool");
  is_str(path ? strrchr(path, '/') + 1 : NULL, "20261125T180000Z.json",
         "named by its time, under the VM's uuid");
  ok(path && strstr(path, fx->uuid) != NULL, "in the VM's own directory");
  free(path);
  path = NULL;
  ok(vs_pool_write(fx->pool, a, &path, &err) == 0 && path &&
         strstr(path, "20261125T180000Z001.json"),
     "a second document in the same second gets 001 and replaces nothing");
  free(path);
  vs_feature_free(a);
  vs_err_clear(&err);
}

static void test_newest_reads_back(const struct pool_fx *fx) {
  struct vs_err err = {0};
  struct vs_feature *b = snap(fx->uuid, fx->t0 + 3600, "yes");
  ok(vs_pool_write(fx->pool, b, NULL, &err) == 0, "a later document is written");
  vs_feature_free(b);
  struct vs_feature *prev = NULL;
  struct vs_feature *newest = vs_pool_newest(fx->pool, fx->uuid, &prev, &err);
  is_str(newest ? vs_feature_get(newest, "file:/etc/ssh/sshd_config:PermitRootLogin") : NULL, "yes",
         "the newest document reads back");
  is_str(prev ? vs_feature_taken_at(prev) : NULL, "2026-11-25T18:00:00Z", "and the one before it");
  vs_feature_free(newest);
  vs_feature_free(prev);
  ok(vs_pool_count(fx->pool, fx->uuid) == 3, "three documents are kept");
  vs_err_clear(&err);
}

/* A crash mid-write leaves a temporary file, a crash mid-copy a broken file: neither hides
 * the VM, and the next write clears the temporary file. */
static void test_crash_leftovers(const struct pool_fx *fx) {
  struct vs_err err = {0};
  char *rel = NULL;
  if (asprintf(&rel, "pool/%s/.tmp-abc123", fx->uuid) < 0) abort();
  fx_write(fx->root, rel, "{\"schema\": \"vmscope.featu");
  free(rel);
  if (asprintf(&rel, "pool/%s/20261125T200000Z.json", fx->uuid) < 0) abort();
  fx_write(fx->root, rel, "{\"schema\": \"vmscope.featu");
  free(rel);
  struct vs_feature *newest = vs_pool_newest(fx->pool, fx->uuid, NULL, &err);
  is_str(newest ? vs_feature_taken_at(newest) : NULL, "2026-11-25T19:00:00Z",
         "a newer document that does not load is skipped: the newest readable one is read");
  vs_feature_free(newest);
  struct vs_feature *c = snap(fx->uuid, fx->t0 + 3 * 3600, "no");
  ok(vs_pool_write(fx->pool, c, NULL, &err) == 0, "writing after a crash works");
  vs_feature_free(c);
  char *abs_vmdir = NULL;
  if (asprintf(&abs_vmdir, "%s/%s", fx->pool, fx->uuid) < 0) abort();
  ok(count_files(abs_vmdir, ".tmp-") == 0, "and removes the leftover temporary file");
  free(abs_vmdir);
  vs_err_clear(&err);
}

/* Retention: keep 2, and nothing older than a day; the newest always stays. */
static void test_prune_keeps_newest(const struct pool_fx *fx) {
  struct vs_err err = {0};
  int removed = vs_pool_prune(fx->pool, fx->uuid, 2, 0, (time_t)(fx->t0 + 4 * 3600), &err);
  ok(removed == 3 && vs_pool_count(fx->pool, fx->uuid) == 2,
     "KeepSnapshots 2 removes the 3 oldest of 5");
  removed = vs_pool_prune(fx->pool, fx->uuid, 0, 1, (time_t)(fx->t0 + 30 * 86400), &err);
  ok(removed == 1 && vs_pool_count(fx->pool, fx->uuid) == 1,
     "KeepDays 1 a month later removes all but the newest");
  struct vs_feature *newest = vs_pool_newest(fx->pool, fx->uuid, NULL, &err);
  is_str(newest ? vs_feature_taken_at(newest) : NULL, "2026-11-25T21:00:00Z",
         "which is the one kept");
  vs_feature_free(newest);
  vs_err_clear(&err);
}

/* An id that is not a plain name (an image path) is stored hex-encoded. */
static void test_path_like_id_and_listing(const struct pool_fx *fx) {
  struct vs_err err = {0};
  char *path = NULL;
  struct vs_feature *img = snap("/srv/images/../web 07.qcow2", fx->t0, "no");
  ok(vs_pool_write(fx->pool, img, &path, &err) == 0 && path && !strstr(path, "/../") &&
         strstr(path, "/pool/x2f"),
     "a path-like id becomes a hex directory name, never a path");
  free(path);
  char **vms = NULL;
  size_t n = 0;
  ok(vs_pool_vms(fx->pool, &vms, &n, &err) == 0 && n == 2, "the pool lists its two VMs");
  struct vs_feature *back = n == 2 ? vs_pool_newest_in(fx->pool, vms[0], &err) : NULL;
  ok(back != NULL, "and a VM's newest document is read by its directory name");
  vs_feature_free(back);
  vs_strv_free(vms, n);
  vs_feature_free(img);
  ok(vs_pool_newest(fx->pool, "no-such-vm", NULL, &err) == NULL && err.code == ENOENT,
     "a VM with no documents is ENOENT");
  vs_err_clear(&err);
}

/* A second pool for vs_pool_prune_gone: a VM still present and one gone, four documents each,
 * a day apart, the newest at t0. */
struct gone_fx {
  const struct pool_fx *fx;
  char *pool2;
  const char *here, *gone;
};

static void fill_gone_pool(const struct gone_fx *g) {
  struct vs_err err = {0};
  for (int i = 0; i < 4; i++) {
    struct vs_feature *h = snap(g->here, g->fx->t0 - (3 - i) * 86400, "no");
    struct vs_feature *d = snap(g->gone, g->fx->t0 - (3 - i) * 86400, "no");
    vs_pool_write(g->pool2, h, NULL, &err);
    vs_pool_write(g->pool2, d, NULL, &err);
    vs_feature_free(h);
    vs_feature_free(d);
  }
  vs_err_clear(&err);
}

/* Retention for every VM of the pool, snapshotted this cycle or not (vs_pool_prune_gone). */
static void test_prune_gone_forgets_after_keepdays(const struct gone_fx *g) {
  struct vs_err err = {0};
  const int64_t t0 = g->fx->t0;
  const char *present[] = {g->here};
  int removed = vs_pool_prune_gone(g->pool2, present, 1, 2, 30, (time_t)t0, &err);
  ok(removed == 4 && vs_pool_count(g->pool2, g->here) == 2 && vs_pool_count(g->pool2, g->gone) == 2,
     "KeepSnapshots 2 applies to a VM not snapshotted this cycle as to one that was");
  removed = vs_pool_prune_gone(g->pool2, present, 1, 2, 30, (time_t)(t0 + 29 * 86400), &err);
  ok(removed == 0 && vs_pool_count(g->pool2, g->gone) == 2,
     "a gone VM keeps its documents while its newest is within KeepDays (30) old");
  removed = vs_pool_prune_gone(g->pool2, present, 1, 2, 30, (time_t)(t0 + 31 * 86400), &err);
  ok(removed == 3 && vs_pool_count(g->pool2, g->gone) == 0,
     "a VM gone for longer than KeepDays loses all its documents, the newest too");
  char *gone_dir = NULL;
  if (asprintf(&gone_dir, "%s/%s", g->pool2, g->gone) < 0) abort();
  struct stat st;
  ok(stat(gone_dir, &st) < 0 && errno == ENOENT, "and its directory leaves the pool");
  free(gone_dir);
  ok(vs_pool_count(g->pool2, g->here) == 1,
     "a VM still present keeps its newest document, however old");
  vs_err_clear(&err);
}

static void test_prune_gone_keeps_when_unsure(const struct gone_fx *g) {
  struct vs_err err = {0};
  const int64_t t0 = g->fx->t0;
  const char *present[] = {g->here};
  struct vs_feature *g2 = snap(g->gone, t0 - 86400, "no");
  vs_pool_write(g->pool2, g2, NULL, &err);
  vs_feature_free(g2);
  int removed = vs_pool_prune_gone(g->pool2, NULL, 0, 2, 30, (time_t)(t0 + 90 * 86400), &err);
  ok(removed == 0 && vs_pool_count(g->pool2, g->gone) == 1 && vs_pool_count(g->pool2, g->here) == 1,
     "with no list of present VMs (libvirt unreachable) no VM counts as gone");
  removed = vs_pool_prune_gone(g->pool2, present, 1, 2, 0, (time_t)(t0 + 900 * 86400), &err);
  ok(removed == 0 && vs_pool_count(g->pool2, g->gone) == 1, "KeepDays 0 never forgets a gone VM");
  vs_err_clear(&err);
}

/* A document that cannot be removed (here a directory under a document's name, which even
 * root cannot unlink) makes retention fail with the path and the reason. */
static void test_prune_failure_is_reported(const struct gone_fx *g) {
  struct vs_err err = {0};
  const char *present[] = {g->here};
  char *stuck = NULL;
  if (asprintf(&stuck, "pool2/%s/20261101T000000Z.json/x", g->gone) < 0) abort();
  fx_write(g->fx->root, stuck, "x");
  free(stuck);
  int removed =
      vs_pool_prune_gone(g->pool2, present, 1, 2, 30, (time_t)(g->fx->t0 + 90 * 86400), &err);
  ok(removed == -1 && err.msg && strstr(err.msg, "20261101T000000Z.json: cannot remove"),
     "a document that cannot be removed is an error, not a silence: %s", vs_err_msg(&err));
  ok(vs_pool_count(g->pool2, g->gone) == 1, "and the removable documents are removed all the same");
  vs_err_clear(&err);
}

static void test_create_refuses_a_file(const struct pool_fx *fx) {
  struct vs_err err = {0};
  char *file = NULL;
  if (asprintf(&file, "%s/afile", fx->root) < 0) abort();
  fx_write(fx->root, "afile", "x");
  int made = vs_pool_create(file, &err);
  ok(made < 0 && err.code == ENOTDIR, "vs_pool_create refuses a file: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  free(file);
}

/* The cycle marker: a first cycle that runs is waited for; once one ended, later cycles are not
 * (the pool holds every VM's earlier documents); a marker that is not ours is not trusted. */
static void test_cycle_marker(const struct pool_fx *fx) {
  struct vs_err err = {0};
  char *dir = NULL;
  if (asprintf(&dir, "%s/cycles", fx->root) < 0) abort();
  ok(vs_pool_create(dir, &err) == 0, "a pool for the cycle marker");
  size_t domains = 99;
  ok(!vs_pool_first_cycle_running(dir, &domains), "no marker: nothing to wait for");
  ok(vs_pool_mark_cycle(dir, false, 10, (time_t)fx->t0, &err) == 0, "the first cycle starts");
  ok(vs_pool_first_cycle_running(dir, &domains) && domains == 10,
     "while it runs, rankers wait (%zu domains)", domains);
  ok(vs_pool_mark_cycle(dir, true, 10, (time_t)fx->t0 + 5, &err) == 0, "it ends");
  ok(!vs_pool_first_cycle_running(dir, NULL), "and they rank");
  ok(vs_pool_mark_cycle(dir, false, 12, (time_t)fx->t0 + 60, &err) == 0 &&
         !vs_pool_first_cycle_running(dir, &domains) && domains == 12,
     "a later cycle that runs is not waited for: the last one ended");
  char *path = NULL, text[4096] = "";
  if (asprintf(&path, "%s/cycle.json", dir) < 0) abort();
  FILE *f = fopen(path, "r");
  size_t len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
  text[len] = '\0';
  if (f) fclose(f);
  free(path);
  ok(strstr(text, "\"completed\": \"2026-11-25T18:00:05Z\"") &&
         strstr(text, "\"started\": \"2026-11-25T18:01:00Z\""),
     "the marker keeps the last end and the running start: %s", text);
  fx_write(dir, "cycle.json", "[\"started\"]");
  ok(!vs_pool_first_cycle_running(dir, NULL), "a marker that is not an object is not waited for");
  fx_write(dir, "cycle.json", "{\"started\": \"x\", \"completed\": null}");
  ok(vs_pool_first_cycle_running(dir, NULL), "one whose first cycle never ended is");
  vs_err_clear(&err);
  free(dir);
}

int main(void) {
  plan_no_plan();
  struct pool_fx fx = {.root = fx_tmpdir(),
                       .uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f",
                       .t0 = 1795629600 /* 2026-11-25T18:00:00Z */};
  if (asprintf(&fx.pool, "%s/pool", fx.root) < 0) return 2;
  test_write_names_by_time(&fx);
  test_newest_reads_back(&fx);
  test_crash_leftovers(&fx);
  test_prune_keeps_newest(&fx);
  test_path_like_id_and_listing(&fx);

  struct gone_fx g = {.fx = &fx,
                      .here = "11111111-1111-4111-8111-111111111111",
                      .gone = "22222222-2222-4222-8222-222222222222"};
  if (asprintf(&g.pool2, "%s/pool2", fx.root) < 0) return 2;
  fill_gone_pool(&g);
  test_prune_gone_forgets_after_keepdays(&g);
  test_prune_gone_keeps_when_unsure(&g);
  test_prune_failure_is_reported(&g);
  free(g.pool2);

  test_create_refuses_a_file(&fx);
  test_cycle_marker(&fx);
  free(fx.pool);
  fx_rmtree(fx.root);
  free(fx.root);
  return done_testing();
}
