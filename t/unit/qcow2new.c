/* A new qcow2 image with no backing file (qcow2new.h): the empty image a backup job's scratch
 * file is, and one holding clusters of its own, judged by qemu-img (check: the metadata is
 * consistent; info: size and backing; compare: what a guest reads) and by our own image reader.
 * (Layers over a base, the writer's other use, are t/unit/layer's.) */
#include "fixture.h"
#include "image.h"
#include "qcow2new.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CS (64 * 1024u)

/* `qemu-img info` of PATH, as JSON, into OUT (a file beside it). */
static char *info(const char *path, const char *out) {
  char *cmd = vs_xasprintf("qemu-img info --output=json -f qcow2 '%s' >'%s'", path, out);
  char *argv[] = {"sh", "-c", cmd, NULL};
  int rc = fx_run(argv);
  free(cmd);
  if (rc != 0) return NULL;
  FILE *f = fopen(out, "r");
  if (!f) return NULL;
  char *text = vs_xcalloc(1, 4096);
  size_t n = fread(text, 1, 4095, f);
  fclose(f);
  text[n] = 0;
  return text;
}

static void empty(const char *dir) {
  const uint64_t size = 367ULL << 20; /* the test guest's disk: not a power of two */
  char *path = vs_xasprintf("%s/vda.scratch", dir), *json_path = vs_xasprintf("%s/info", dir);
  struct vs_err err = {0};
  int rc = vs_qcow2new_empty(path, size, 0600, &err);
  ok(rc == 0, "an empty image of 367 MiB is written %s", err.msg ? err.msg : "");
  struct stat st;
  ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
     "with the mode asked for (0600: the scratch file holds the guest's data)");
  ok(stat(path, &st) == 0 && st.st_size == 4 * CS,
     "four clusters: the header, the L1 table, the refcount table and its block (%lld bytes)",
     (long long)st.st_size);
  char *argv[] = {"qemu-img", "check", "-q", "-f", "qcow2", path, NULL};
  ok(fx_run(argv) == 0, "qemu-img check finds its metadata consistent");
  char *json = info(path, json_path);
  char *want = vs_xasprintf("\"virtual-size\": %llu,", (unsigned long long)size);
  ok(json && strstr(json, want), "qemu-img info gives the size asked for");
  ok(json && !strstr(json, "backing-filename"), "and no backing file");
  free(want);
  free(json);
  char *zeros = vs_xasprintf("%s/zeros.raw", dir);
  FILE *f = fopen(zeros, "w");
  bool sized = f && ftruncate(fileno(f), (off_t)size) == 0;
  if (f) fclose(f);
  char *compare[] = {"qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw", path, zeros, NULL};
  ok(sized && fx_run(compare) == 0, "qemu-img compare: a guest reads zeros from all of it");
  free(zeros);
  struct vs_image *img = vs_image_open(path, NULL, &err);
  ok(img && !vs_image_backing(img), "our reader opens it, with no backing file");
  vs_image_close(img);
  free(err.msg);
  err = (struct vs_err){0};
  char *missing = vs_xasprintf("%s/no/such/dir/x.scratch", dir);
  rc = vs_qcow2new_empty(missing, size, 0600, &err);
  ok(rc < 0 && err.msg && strstr(err.msg, missing),
     "a directory that is not there is an error naming the file: %s", err.msg ? err.msg : "");
  free(err.msg);
  free(missing);
  free(path);
  free(json_path);
}

/* Data clusters on no backing file: what is not written reads as zeros. */
static void data_without_backing(const char *dir) {
  const uint64_t size = 16 * CS;
  char *path = vs_xasprintf("%s/own.qcow2", dir), *want_path = vs_xasprintf("%s/own.raw", dir);
  struct vs_err err = {0};
  struct vs_qcow2new *q = vs_qcow2new_create(path, size, 16, NULL, NULL, 0644, &err);
  uint8_t *aa = vs_xmalloc(CS);
  memset(aa, 0xaa, CS);
  ok(q && vs_qcow2new_add_data(q, 2 * CS, aa, &err) == 0 &&
         vs_qcow2new_add_zero(q, 5 * CS, &err) == 0 && vs_qcow2new_data_clusters(q) == 1 &&
         vs_qcow2new_finish(q, &err) == 0,
     "an image of its own with one data cluster and one zero cluster is written");
  uint8_t *want = vs_xcalloc(1, size);
  memset(want + 2 * CS, 0xaa, CS);
  fx_write_bytes(dir, "own.raw", want, size);
  char *check[] = {"qemu-img", "check", "-q", "-f", "qcow2", path, NULL};
  char *compare[] = {"qemu-img", "compare", "-q", "-f",      "qcow2",
                     "-F",       "raw",     path, want_path, NULL};
  ok(fx_run(check) == 0 && fx_run(compare) == 0,
     "qemu-img finds it consistent, reading 0xaa in cluster 2 and zeros everywhere else");
  free(want);
  free(aa);
  free(path);
  free(want_path);
}

int main(void) {
  char *dir = fx_tmpdir();
  empty(dir);
  data_without_backing(dir);
  fx_rmtree(dir);
  free(dir);
  return done_testing();
}
