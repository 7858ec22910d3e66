/* Patch sets (patchset.h) made here from raw disks that differ in known clusters, and judged
 * by the manifest, by our image reader (exactly the changed clusters are in the layer, data or
 * zero), and by qemu-img (check: consistent; compare: a guest on the set sees the patched
 * disk); an overlay of the base taken without reading the base; the refusals (an output that
 * is an input, disks of different sizes, an existing output); applying the set under a stopped
 * disk that has written some of the set's clusters itself, and the set's status; where a qcow2
 * file stores its clusters (the compare in the file's order reads them there). */
#include "fixture.h"
#include "image.h"
#include "layer.h"
#include "patchset.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KB 1024u
#define CS (64 * KB)
#define SIZE (2048 * KB) /* 32 clusters of 64 KiB */

static char *path_in(const char *dir, const char *name) {
  return vs_xasprintf("%s/%s", dir, name);
}

static enum vs_cluster_state state_at(struct vs_image *img, uint64_t off) {
  enum vs_cluster_state s = VS_CLUSTER_UNALLOCATED;
  if (vs_image_cluster_state(img, off, &s, NULL) < 0) return (enum vs_cluster_state) - 1;
  return s;
}

/* The ranges of manifest M's KEY ("changed", "zeroed") as text: "[[65536,65536],...]". */
static char *ranges(json_t *m, const char *key) {
  char *t = json_dumps(json_object_get(m, key), JSON_COMPACT);
  return t ? t : vs_xstrdup("(none)");
}

/* Which clusters of LAYER it holds, as "1d 3z 8d" (d: data, z: zero). */
static char *held(struct vs_image *layer) {
  struct vs_buf b = {0};
  for (uint64_t c = 0; c < SIZE / CS; c++) {
    enum vs_cluster_state s = state_at(layer, c * CS);
    if (s != VS_CLUSTER_UNALLOCATED)
      vs_buf_addf(&b, "%s%llu%c", b.len ? " " : "", (unsigned long long)c,
                  s == VS_CLUSTER_DATA   ? 'd'
                  : s == VS_CLUSTER_ZERO ? 'z'
                                         : '?');
  }
  return b.len ? vs_buf_steal(&b) : vs_xstrdup("");
}

/* base.raw: all 0x11. patched.raw: cluster 1 differs in 3 bytes, clusters 8 and 9 are 0x99,
 * cluster 5 is zeros, cluster 20 is 0x20. */
static void make_disks(const char *dir) {
  uint8_t *disk = vs_xmalloc(SIZE);
  memset(disk, 0x11, SIZE);
  fx_write_bytes(dir, "base.raw", disk, SIZE);
  memset(disk + 1 * CS + 4000, 0x42, 3);
  memset(disk + 5 * CS, 0, CS);
  memset(disk + 8 * CS, 0x99, 2 * CS);
  memset(disk + 20 * CS, 0x20, CS);
  fx_write_bytes(dir, "patched.raw", disk, SIZE);
  fx_write_bytes(dir, "short.raw", disk, SIZE - CS);
  free(disk);
}

static void make_set(const char *dir) {
  char *base = path_in(dir, "base.raw"), *patched = path_in(dir, "patched.raw");
  char *set = path_in(dir, "fix.qcow2"), *mpath = path_in(dir, "fix.qcow2.json");
  struct vs_err err = {0};
  struct vs_patchset_stats st;
  ok(vs_patchset_make(base, patched, set, 0, false, &st, &err) == 0,
     "a patch set is made from two raw disks of one size");
  ok(st.cluster_bits == 16 && st.clusters == 32,
     "in 64 KiB clusters, raw disks' default: 32 clusters compared");
  ok(st.changed == 4 && st.zeroed == 1 && st.taken_from_overlay == 0,
     "4 clusters changed and 1 now zero");
  json_t *m = json_load_file(mpath, 0, NULL);
  ok(m != NULL, "its manifest is written beside it");
  char *changed = ranges(m, "changed"), *zeroed = ranges(m, "zeroed");
  is_str(changed, "[[65536,65536],[524288,131072],[1310720,65536]]",
         "the manifest's changed ranges are clusters 1, 8-9 (merged) and 20");
  is_str(zeroed, "[[327680,65536]]", "and its zeroed range is cluster 5");
  struct vs_image *b = vs_image_open(base, NULL, NULL);
  char id[65] = {0}, real[PATH_MAX];
  ok(b && vs_image_identity(b, id, NULL) == 0 &&
         strcmp(json_string_value(json_object_get(json_object_get(m, "base"), "identity")) ?: "",
                id) == 0,
     "the manifest names the base by its identity");
  ok(realpath(base, real) &&
         strcmp(json_string_value(json_object_get(json_object_get(m, "base"), "path")) ?: "",
                real) == 0 &&
         json_integer_value(json_object_get(json_object_get(m, "base"), "size")) == SIZE &&
         json_integer_value(json_object_get(m, "cluster_size")) == CS &&
         json_is_false(json_object_get(m, "patched_is_overlay")),
     "and by its real path and size, with the cluster size, not from an overlay");
  struct vs_image *layer = vs_image_open(set, NULL, &err);
  char *h = layer ? held(layer) : NULL;
  is_str(h, "1d 5z 8d 9d 20d", "the layer holds exactly the changed clusters, 5 as zeros");
  ok(layer && vs_image_backing(layer) && strcmp(vs_image_path(vs_image_backing(layer)), base) == 0,
     "and has the base as its backing file");
  char *check[] = {"qemu-img", "check", "-q", "-f", "qcow2", set, NULL};
  ok(fx_run(check) == 0, "qemu-img check finds the set consistent");
  char *compare[] = {"qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw", set, patched, NULL};
  ok(fx_run(compare) == 0, "qemu-img compare: a guest on the set sees the patched disk");
  vs_image_close(layer);
  vs_image_close(b);
  json_decref(m);
  free(h);
  free(changed);
  free(zeroed);
  free(base);
  free(patched);
  free(set);
  free(mpath);
}

/* PATCHED as a qcow2 overlay of the base (written through vs_layer) holding clusters 2 and 3,
 * cluster 3 the same as the base's: both are taken, the base not read. */
static void make_from_overlay(const char *dir) {
  char *base = path_in(dir, "base.raw"), *ov = path_in(dir, "overlay.qcow2");
  char *set = path_in(dir, "ov-fix.qcow2"), *mpath = path_in(dir, "ov-fix.qcow2.json");
  struct vs_err err = {0};
  uint8_t *c = vs_xmalloc(CS);
  struct vs_layer *l = vs_layer_create(ov, SIZE, 16, "base.raw", "raw", &err);
  memset(c, 0x77, CS);
  int rc = l ? vs_layer_add_data(l, 2 * CS, c, &err) : -1;
  memset(c, 0x11, CS);
  if (rc == 0) rc = vs_layer_add_data(l, 3 * CS, c, &err);
  ok(rc == 0 && vs_layer_finish(l, &err) == 0, "an overlay of the base is written");
  struct vs_patchset_stats st;
  ok(vs_patchset_make(base, ov, set, 0, false, &st, &err) == 0,
     "a set is made from the base and its overlay");
  ok(st.taken_from_overlay == 2 && st.changed == 2 && st.bytes_read == 2 * CS,
     "the overlay's two clusters are taken as they are, and only they are read");
  json_t *m = json_load_file(mpath, 0, NULL);
  char *changed = ranges(m, "changed");
  is_str(changed, "[[131072,131072]]", "the manifest names clusters 2-3");
  ok(json_is_true(json_object_get(m, "patched_is_overlay")), "and says it came from an overlay");
  json_decref(m);
  free(changed);
  free(c);
  free(base);
  free(ov);
  free(set);
  free(mpath);
}

static void refusals(const char *dir) {
  char *base = path_in(dir, "base.raw"), *patched = path_in(dir, "patched.raw");
  char *shrt = path_in(dir, "short.raw"), *set = path_in(dir, "fix.qcow2");
  char *other = path_in(dir, "other.qcow2"), *pm = path_in(dir, "patched.raw.json");
  char *om = path_in(dir, "other.qcow2.json");
  struct vs_err err = {0};
  ok(vs_patchset_make(base, patched, patched, 0, true, NULL, &err) < 0 &&
         strstr(vs_err_msg(&err), "is an input"),
     "an output that is the patched input is refused, even forced");
  vs_err_clear(&err);
  struct vs_image *p = vs_image_open(patched, NULL, NULL);
  ok(p && vs_image_size(p) == SIZE && access(pm, F_OK) != 0,
     "and the input is as it was, with no manifest beside it");
  vs_image_close(p);
  ok(vs_patchset_make(base, shrt, other, 0, false, NULL, &err) < 0 &&
         strstr(vs_err_msg(&err), "a patch set needs disks of one size"),
     "disks of different sizes are refused");
  vs_err_clear(&err);
  ok(access(other, F_OK) != 0 && access(om, F_OK) != 0, "and nothing is written");
  ok(vs_patchset_make(base, patched, set, 0, false, NULL, &err) < 0 && err.code == EEXIST,
     "a set that exists is not replaced without force");
  vs_err_clear(&err);
  ok(vs_patchset_make(base, patched, set, 0, true, NULL, &err) == 0, "and is with force");
  free(base);
  free(patched);
  free(shrt);
  free(set);
  free(other);
  free(pm);
  free(om);
}

/* The guest's disk: a qcow2 overlay of the base that wrote cluster 20 (0xee) itself. */
static void apply_stopped(const char *dir) {
  char *base = path_in(dir, "base.raw"), *top = path_in(dir, "vm.qcow2");
  char *set = path_in(dir, "fix.qcow2");
  struct vs_err err = {0};
  uint8_t *c = vs_xmalloc(CS);
  memset(c, 0xee, CS);
  struct vs_layer *l = vs_layer_create(top, SIZE, 16, "base.raw", "raw", &err);
  ok(l && vs_layer_add_data(l, 20 * CS, c, &err) == 0 && vs_layer_finish(l, &err) == 0,
     "a VM's overlay of the base is written, holding cluster 20 of its own");
  json_t *r = NULL;
  ok(vs_patchset_apply_image(base, set, &r, &err) < 0 &&
         strstr(vs_err_msg(&err), "is the set's base itself"),
     "the set is not applied to its base");
  vs_err_clear(&err);
  ok(vs_patchset_apply_image(top, set, &r, &err) == 0, "the set is put under the VM's overlay");
  char real[PATH_MAX];
  ok(r && realpath(top, real) &&
         strcmp(json_string_value(json_object_get(r, "image")) ?: "", real) == 0 &&
         json_integer_value(json_object_get(r, "set_clusters")) == 5 &&
         json_integer_value(json_object_get(r, "shadowed")) == 1,
     "the report: the overlay re-pointed, 5 set clusters, 1 of them shadowed by the guest");
  char *sh = ranges(r, "shadowed_ranges");
  is_str(sh, "[[1310720,65536]]", "the shadowed one is cluster 20");
  json_decref(r);
  struct vs_image *img = vs_image_open(top, NULL, &err);
  uint8_t got[3] = {0}, own = 0, old = 0;
  ok(img && vs_image_pread(img, got, 3, 1 * CS + 4000, NULL) == 0 &&
         vs_image_pread(img, &own, 1, 20 * CS, NULL) == 0 &&
         vs_image_pread(img, &old, 1, 0, NULL) == 0 && got[0] == 0x42 && got[2] == 0x42 &&
         own == 0xee && old == 0x11,
     "the guest now reads the set's bytes, its own cluster 20, and the base elsewhere");
  vs_image_close(img);
  ok(vs_patchset_apply_image(top, set, &r, &err) < 0 && err.code == EEXIST,
     "applying it again is refused");
  vs_err_clear(&err);
  json_t *s = NULL;
  ok(vs_patchset_status(top, NULL, 0, &s, &err) == 0 && json_array_size(s) == 1 &&
         json_integer_value(json_object_get(json_array_get(s, 0), "changed_clusters")) == 4,
     "status finds the one set in the chain, with its 4 changed clusters");
  json_decref(s);
  free(sh);
  free(c);
  free(base);
  free(top);
  free(set);
}

/* The compare of a warm pair, mapped: IMG stores cluster 3 (bytes C) at HOST in its file OWN;
 * RAW is a raw image of other bytes. Leaves OWN cut short at HOST. */
static void mapped(struct vs_image *img, struct vs_image *raw, uint64_t host, const uint8_t *c,
                   const char *own) {
  struct vs_err err = {0};
  uint64_t h = 0, hr = 0;
  ok(img && vs_image_stored_run(img, 3 * CS + 4 * KB, 8 * KB, &h) && h == host + 4 * KB &&
         !vs_image_stored_run(img, 3 * CS, 2 * CS, &h) &&
         vs_image_stored_run(raw, 3 * CS, CS, &hr) && hr == 3 * CS,
     "a range inside cluster 3 is stored in one piece, one reaching the backing file's cluster 4 "
     "is not, and a raw image's bytes are where the guest has them");
  const uint8_t *m = img ? vs_image_map_stored(img, host, CS, &err) : NULL;
  ok(m && memcmp(m, c, CS) == 0, "cluster 3 mapped holds its bytes");
  bool differs[4] = {true, true, true, true};
  ok(m && vs_image_cmp_mapped(img, m, img, m, CS, CS / 4, differs, &err) == 0 && !differs[0] &&
         !differs[1] && !differs[2] && !differs[3],
     "compared with itself, no quarter of it differs");
  struct vs_image *other = vs_image_open(own, NULL, &err);
  const uint8_t *mr = vs_image_map_stored(raw, hr, CS, &err);
  ok(m && mr && vs_image_cmp_mapped(img, m, raw, mr, CS, CS, differs, &err) == 0 && differs[0],
     "compared with the raw image's cluster 3, it differs");
  ok(!vs_image_map_stored(raw, SIZE - KB, 2 * KB, &err) && strstr(vs_err_msg(&err), "not inside"),
     "a range past the file's end is not mapped");
  vs_err_clear(&err);
  /* Mapped by a second handle, then cut short: reading the mapping raises SIGBUS. */
  const uint8_t *mo = other ? vs_image_map_stored(other, host, CS, &err) : NULL;
  ok(mo && truncate(own, (off_t)host) == 0 &&
         vs_image_cmp_mapped(other, mo, raw, mr, CS, CS, differs, &err) < 0 &&
         strstr(vs_err_msg(&err), "cut short while it was read") && strstr(vs_err_msg(&err), own),
     "a file cut short while it is compared mapped fails, naming it, and the process lives on");
  vs_err_clear(&err);
  /* A SIGBUS outside a compare still has the action it had: the child dies of it (under a
   * sanitizer or valgrind, whose own handler was the action before, it does not return). */
  pid_t pid = fork();
  if (pid == 0) {
    volatile uint8_t byte = mo[CS - 1];
    (void)byte;
    _exit(0);
  }
  int status = 0;
  bool tooled = getenv("VS_SANITIZED") || getenv("VS_VALGRIND");
  ok(pid > 0 && waitpid(pid, &status, 0) == pid &&
         (tooled ? !(WIFEXITED(status) && WEXITSTATUS(status) == 0)
                 : WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS),
     "a SIGBUS elsewhere is not caught: the process dies of it, as before");
  vs_image_close(other);
}

/* Where an image stores its clusters, for the compare in the file's order: a qcow2 layer's own
 * clusters are found at places inside it and read back; a backing file's, a raw image's and a
 * place outside the file are not; a file cut short after it was opened fails naming it. */
static void stored_places(const char *dir) {
  char *base = path_in(dir, "base.raw"), *own = path_in(dir, "own.qcow2");
  struct vs_err err = {0};
  uint8_t *c = vs_xmalloc(CS), *got = vs_xmalloc(CS);
  memset(c, 0x33, CS);
  struct vs_layer *l = vs_layer_create(own, SIZE, 16, "base.raw", "raw", &err);
  ok(l && vs_layer_add_data(l, 3 * CS, c, &err) == 0 && vs_layer_finish(l, &err) == 0,
     "a layer holding cluster 3 of its own is written");
  struct vs_image *img = vs_image_open(own, NULL, &err), *raw = vs_image_open(base, NULL, &err);
  uint64_t host = 0, other = 0;
  struct stat st = {0};
  ok(img && raw && stat(own, &st) == 0 &&
         vs_image_stored_max(img) == (uint64_t)st.st_size / CS - 1 && vs_image_stored_max(raw) == 0,
     "a qcow2 file can hold its whole clusters after the header's, a raw image none of its own");
  ok(img && vs_image_stored_at(img, 3 * CS, &host) && host % CS == 0 &&
         host + CS <= (uint64_t)st.st_size,
     "cluster 3 is stored at a cluster's place inside the file");
  ok(img && !vs_image_stored_at(img, 4 * CS, &other) && !vs_image_stored_at(raw, 3 * CS, &other),
     "the backing file's cluster 4, and a raw image's, are not");
  ok(img && vs_image_read_stored(img, got, CS, host, &err) == 0 && memcmp(got, c, CS) == 0,
     "and reading it there gives its bytes");
  ok(img && vs_image_read_stored(img, got, CS, (uint64_t)st.st_size, &err) < 0 &&
         strstr(vs_err_msg(&err), "not inside the file's data") && strstr(vs_err_msg(&err), own),
     "a place past the file's end is refused, naming the file");
  vs_err_clear(&err);
  mapped(img, raw, host, c, own);
  ok(truncate(own, (off_t)host) == 0 && img && vs_image_read_stored(img, got, CS, host, &err) < 0 &&
         strstr(vs_err_msg(&err), "past the end of the file") && strstr(vs_err_msg(&err), own),
     "a file cut short after it was opened fails, naming it");
  vs_err_clear(&err);
  vs_image_close(img);
  vs_image_close(raw);
  free(c);
  free(got);
  free(base);
  free(own);
}

int main(void) {
  plan_no_plan();
  if (!fx_have("qemu-img")) {
    skip(1, "qemu-img is not installed");
    return done_testing();
  }
  char *dir = fx_tmpdir();
  make_disks(dir);
  make_set(dir);
  make_from_overlay(dir);
  refusals(dir);
  apply_stopped(dir);
  stored_places(dir);
  fx_rmtree(dir);
  free(dir);
  return done_testing();
}
