/* A thin qcow2 layer (layer.h), written here over a raw base made here, and judged by qemu-img
 * (check: the metadata is consistent; compare: the guest reads exactly the expected disk) and
 * by reading it back through our own image reader: data clusters, zero clusters, clusters left
 * to the base, a last partial cluster, many L2 tables and refcount blocks; the clusters it
 * refuses, and the outputs vs_layer_check_output refuses. */
#include "fixture.h"
#include "image.h"
#include "layer.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KB 1024u
#define CS (64 * KB)

static int qemu_img_check(const char *path) {
  char *argv[] = {"qemu-img", "check", "-q", "-f", "qcow2", (char *)path, NULL};
  return fx_run(argv);
}

/* qemu-img compare: 0 when the guest sees the same bytes in both (FMT_B: "raw" or "qcow2"). */
static int qemu_img_compare(const char *a, const char *b, const char *fmt_b) {
  char *argv[] = {"qemu-img", "compare",     "-q",      "-f",      "qcow2",
                  "-F",       (char *)fmt_b, (char *)a, (char *)b, NULL};
  return fx_run(argv);
}

static char *path_in(const char *dir, const char *name) {
  return vs_xasprintf("%s/%s", dir, name);
}

static size_t entries(const char *dir) {
  DIR *d = opendir(dir);
  size_t n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

/* Whether LEN bytes at OFF of IMG all read as BYTE. */
static bool reads_as(struct vs_image *img, uint64_t off, size_t len, uint8_t byte) {
  uint8_t *buf = vs_xmalloc(len);
  bool same = vs_image_pread(img, buf, len, off, NULL) == 0;
  for (size_t i = 0; same && i < len; i++)
    same = buf[i] == byte;
  free(buf);
  return same;
}

static enum vs_cluster_state state_at(struct vs_image *img, uint64_t off) {
  enum vs_cluster_state s = VS_CLUSTER_UNALLOCATED;
  if (vs_image_cluster_state(img, off, &s, NULL) < 0) return (enum vs_cluster_state) - 1;
  return s;
}

/* A raw disk of SIZE bytes all 0x11, and its expected copy to be edited by the test. */
static uint8_t *make_base(const char *dir, const char *name, size_t size) {
  uint8_t *disk = vs_xmalloc(size);
  memset(disk, 0x11, size);
  fx_write_bytes(dir, name, disk, size);
  return disk;
}

static void data_zero_and_base(const char *dir) {
  const size_t size = 1024 * KB;
  uint8_t *want = make_base(dir, "base.raw", size);
  char *path = path_in(dir, "layer.qcow2");
  struct vs_err err = {0};
  struct vs_layer *l = vs_layer_create(path, size, 16, "base.raw", "raw", &err);
  ok(l != NULL, "a layer of 64 KiB clusters is created over a raw base");
  uint8_t *aa = vs_xmalloc(CS), *bb = vs_xmalloc(CS);
  memset(aa, 0xaa, CS);
  memset(bb, 0xbb, CS);
  ok(vs_layer_add_data(l, 1 * CS, aa, &err) == 0 && vs_layer_add_zero(l, 3 * CS, &err) == 0 &&
         vs_layer_add_data(l, 8 * CS, bb, &err) == 0,
     "clusters 1 (data), 3 (zero) and 8 (data) are added in order");
  ok(vs_layer_clusters(l) == 3 && vs_layer_data_clusters(l) == 2,
     "it counts three clusters, two of them with data");
  ok(access(path, F_OK) != 0, "nothing appears under the layer's name before it is finished");
  ok(vs_layer_finish(l, &err) == 0, "the layer is finished");
  ok(entries(dir) == 2, "and then the directory holds the base and the layer, nothing else");
  ok(qemu_img_check(path) == 0, "qemu-img check finds the layer's metadata consistent");
  memset(want + 1 * CS, 0xaa, CS);
  memset(want + 3 * CS, 0, CS);
  memset(want + 8 * CS, 0xbb, CS);
  fx_write_bytes(dir, "want.raw", want, size);
  char *want_path = path_in(dir, "want.raw");
  ok(qemu_img_compare(path, want_path, "raw") == 0,
     "qemu-img compare: a guest reads the base with exactly those three clusters replaced");
  struct vs_image *img = vs_image_open(path, NULL, &err);
  ok(img && vs_image_backing(img) && strcmp(vs_image_format(vs_image_backing(img)), "raw") == 0,
     "our reader opens it with the raw base as its backing file");
  ok(img && state_at(img, 1 * CS) == VS_CLUSTER_DATA && state_at(img, 3 * CS) == VS_CLUSTER_ZERO &&
         state_at(img, 8 * CS) == VS_CLUSTER_DATA && state_at(img, 0) == VS_CLUSTER_UNALLOCATED &&
         state_at(img, 15 * CS) == VS_CLUSTER_UNALLOCATED,
     "the layer holds exactly clusters 1 and 8 with data and 3 as zeros, the rest is the base's");
  ok(img && reads_as(img, 1 * CS, CS, 0xaa) && reads_as(img, 3 * CS, CS, 0) &&
         reads_as(img, 8 * CS, CS, 0xbb) && reads_as(img, 0, CS, 0x11) &&
         reads_as(img, 15 * CS, CS, 0x11),
     "and reads back as 0xaa, zeros, 0xbb where it holds them and the base's 0x11 elsewhere");
  vs_image_close(img);
  free(aa);
  free(bb);
  free(want);
  free(want_path);
  free(path);
}

/* A disk whose size is not a whole number of clusters: its last cluster is partial. */
static void partial_last_cluster(const char *dir) {
  const size_t size = 256 * KB + 4 * KB;
  uint8_t *want = make_base(dir, "odd.raw", size);
  char *path = path_in(dir, "odd.qcow2");
  struct vs_err err = {0};
  struct vs_layer *l = vs_layer_create(path, size, 16, "odd.raw", "raw", &err);
  uint8_t *cc = vs_xcalloc(1, CS);
  memset(cc, 0xcc, 4 * KB);
  ok(l && vs_layer_add_data(l, 4 * CS, cc, &err) == 0 && vs_layer_finish(l, &err) == 0,
     "a layer over a disk of 260 KiB takes its last, partial cluster");
  memset(want + 4 * CS, 0xcc, 4 * KB);
  fx_write_bytes(dir, "odd-want.raw", want, size);
  char *want_path = path_in(dir, "odd-want.raw");
  ok(qemu_img_check(path) == 0 && qemu_img_compare(path, want_path, "raw") == 0,
     "qemu-img finds it consistent and reading the disk's last 4 KiB from it");
  free(cc);
  free(want);
  free(want_path);
  free(path);
}

/* 512-byte clusters: 64 L2 entries per table, 256 refcounts per block, so 700 clusters need
 * many L2 tables and several refcount blocks, which must count themselves. */
static void many_tables(const char *dir) {
  const size_t size = 2048 * KB;
  uint8_t *want = make_base(dir, "big.raw", size);
  char *path = path_in(dir, "big.qcow2");
  struct vs_err err = {0};
  struct vs_layer *l = vs_layer_create(path, size, 9, "big.raw", "raw", &err);
  uint8_t sector[512];
  int rc = l ? 0 : -1;
  for (uint64_t i = 0; rc == 0 && i < 700; i++) {
    uint64_t off = i * 5 * 512; /* every fifth cluster */
    memset(sector, (int)(i % 251) + 1, sizeof(sector));
    rc = i % 7 == 3 ? vs_layer_add_zero(l, off, &err) : vs_layer_add_data(l, off, sector, &err);
    memcpy(want + off, sector, sizeof(sector));
    if (i % 7 == 3) memset(want + off, 0, sizeof(sector));
  }
  ok(rc == 0 && vs_layer_finish(l, &err) == 0, "700 clusters of 512 bytes over 2 MiB make a layer");
  fx_write_bytes(dir, "big-want.raw", want, size);
  char *want_path = path_in(dir, "big-want.raw");
  ok(qemu_img_check(path) == 0,
     "qemu-img check finds every cluster counted once, the refcount blocks' own included");
  ok(qemu_img_compare(path, want_path, "raw") == 0, "and a guest reads every one of them right");
  free(want);
  free(want_path);
  free(path);
}

static void refusals(const char *dir) {
  char *path = path_in(dir, "refused.qcow2");
  struct vs_err err = {0};
  ok(vs_layer_create(path, 1024 * KB, 8, "base.raw", "raw", &err) == NULL && err.code == EINVAL,
     "a cluster size of 256 bytes is refused");
  vs_err_clear(&err);
  char *long_name = vs_xcalloc(1, 1100);
  memset(long_name, 'b', 1099);
  ok(vs_layer_create(path, 1024 * KB, 16, long_name, "raw", &err) == NULL &&
         err.code == ENAMETOOLONG,
     "a backing file name of 1099 bytes is refused: it does not fit the header");
  vs_err_clear(&err);
  free(long_name);
  struct vs_layer *l = vs_layer_create(path, 1024 * KB, 16, "base.raw", "raw", &err);
  ok(l && vs_layer_add_zero(l, 4 * CS, &err) == 0, "a layer takes cluster 4");
  ok(vs_layer_add_zero(l, 2 * CS, &err) < 0 && strstr(vs_err_msg(&err), "increasing order"),
     "then cluster 2 is refused: clusters come in increasing order");
  vs_err_clear(&err);
  ok(vs_layer_add_zero(l, 5 * CS + 512, &err) < 0 &&
         strstr(vs_err_msg(&err), "is not a cluster of the disk"),
     "an offset that is not a cluster's start is refused");
  vs_err_clear(&err);
  ok(vs_layer_add_zero(l, 16 * CS, &err) < 0, "and so is a cluster past the end of the disk");
  vs_err_clear(&err);
  size_t before = entries(dir);
  vs_layer_abort(l);
  ok(entries(dir) == before && access(path, F_OK) != 0, "an aborted layer leaves nothing behind");
  vs_layer_abort(NULL);
  ok(true, "and aborting NULL does nothing");
  free(path);
}

static void check_output(const char *dir) {
  char *base = path_in(dir, "base.raw"), *lnk = path_in(dir, "base-link.raw");
  char *fresh = path_in(dir, "fresh.qcow2"), *existing = path_in(dir, "layer.qcow2");
  char *missing = path_in(dir, "no-such-dir/x.qcow2");
  const char *inputs[] = {base};
  struct vs_err err = {0};
  ok(link(base, lnk) == 0, "a hard link to the base is made");
  ok(vs_layer_check_output(lnk, inputs, 1, NULL, 0, true, &err) < 0 &&
         strstr(vs_err_msg(&err), "is the input"),
     "an output that is the input under another name is refused, even when forced");
  vs_err_clear(&err);
  struct vs_image *layer = vs_image_open(existing, NULL, NULL);
  const struct vs_image *chains[] = {layer};
  ok(layer && vs_layer_check_output(base, NULL, 0, chains, 1, true, &err) < 0 &&
         strstr(vs_err_msg(&err), "in the backing chain"),
     "an output that is an image in an input's backing chain is refused");
  vs_err_clear(&err);
  vs_image_close(layer);
  ok(vs_layer_check_output(existing, inputs, 1, NULL, 0, false, &err) < 0 && err.code == EEXIST,
     "a file that exists is refused without force");
  vs_err_clear(&err);
  ok(vs_layer_check_output(existing, inputs, 1, NULL, 0, true, &err) == 0,
     "and allowed with force, when it is no input");
  ok(vs_layer_check_output(dir, NULL, 0, NULL, 0, true, &err) < 0 && err.code == EISDIR,
     "a directory is refused");
  vs_err_clear(&err);
  const char *dir_input[] = {dir};
  ok(vs_layer_check_output(fresh, dir_input, 1, NULL, 0, false, &err) < 0 &&
         strstr(vs_err_msg(&err), "lies inside the input directory"),
     "an output inside an input directory is refused");
  vs_err_clear(&err);
  ok(vs_layer_check_output(missing, inputs, 1, NULL, 0, false, &err) < 0 && err.code == ENOENT,
     "an output whose directory is missing is refused");
  vs_err_clear(&err);
  ok(vs_layer_check_output(fresh, inputs, 1, NULL, 0, false, &err) == 0,
     "a new name beside the inputs is fine");
  free(base);
  free(lnk);
  free(fresh);
  free(existing);
  free(missing);
}

int main(void) {
  plan_no_plan();
  if (!fx_have("qemu-img")) {
    skip(1, "qemu-img is not installed");
    return done_testing();
  }
  char *dir = fx_tmpdir();
  data_zero_and_base(dir);
  partial_last_cluster(dir);
  many_tables(dir);
  refusals(dir);
  check_output(dir);
  fx_rmtree(dir);
  free(dir);
  return done_testing();
}
