#include "extract_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct vs_extractor *vs_extractor_new(const struct vs_watch *watch, struct vs_err *err) {
  (void)err;
  struct vs_extractor *x = vs_xcalloc(1, sizeof(*x));
  x->watch = vs_watch_copy(watch);
  x->regwatch = vs_regwatch_copy(NULL);
  x->read_budget = VS_EXTRACT_READ_BUDGET;
  x->conffiles = vs_strmap_new(free);
  return x;
}

void vs_extractor_free(struct vs_extractor *x) {
  if (!x) return;
  vs_watch_free(x->watch);
  vs_regwatch_free(x->regwatch);
  vs_x_close_augeas(x);
  vs_buf_free(&x->buf);
  vs_strmap_free(x->conffiles);
  free(x);
}

void vs_extractor_set_read_budget(struct vs_extractor *x, uint64_t bytes) {
  x->read_budget = bytes;
}

void vs_extractor_set_regwatch(struct vs_extractor *x, const struct vs_regwatch *rw) {
  vs_regwatch_free(x->regwatch);
  x->regwatch = vs_regwatch_copy(rw);
}

void vs_extractor_freep(struct vs_extractor **x) {
  vs_extractor_free(*x);
}

int vs_x_read(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
              const char *path, size_t max, bool missing_ok) {
  struct vs_err err = {0};
  uint64_t left = x->bytes_read < x->read_budget ? x->read_budget - x->bytes_read : 0;
  if (left == 0) {
    vs_feature_skip(doc, path,
                    "not read: the document's read budget of %" PRIu64 " bytes is used up",
                    x->read_budget);
    return -1;
  }
  if (vs_source_read(src, path, max < left ? max : (size_t)left, &x->buf, &err) == 0) {
    x->bytes_read += x->buf.len;
    vs_buf_add(&x->buf, "", 0); /* an empty file still yields a string */
    return 0;
  }
  if (!(missing_ok && err.code == ENOENT)) vs_feature_skip(doc, path, "%s", vs_err_msg(&err));
  vs_err_clear(&err);
  return -1;
}

void vs_x_list_failed(struct vs_feature *doc, const char *dir, struct vs_err *err) {
  if (err->code != ENOENT && err->code != ENOTDIR) vs_feature_skip(doc, dir, "%s", vs_err_msg(err));
  vs_err_clear(err);
}

size_t vs_x_split(char *s, char delim, char **fields, size_t max) {
  size_t n = 0;
  while (n < max) {
    fields[n++] = s;
    char *d = strchr(s, delim);
    if (!d) break;
    *d = '\0';
    s = d + 1;
  }
  return n;
}

/* Whether the tree holds an operating system at all: an os-release, a package database (dpkg's,
 * an RPM database, or packages the backend listed) or a passwd file. A tree with none of them
 * (an empty directory, a data volume, a typo'd path) is no VM, and a document of it would be
 * an empty peer that makes every other VM look drifted. */
static bool has_os(struct vs_source *src) {
  static const char *const marks[] = {"/etc/os-release",       "/usr/lib/os-release",
                                      "/var/lib/dpkg/status",  "/var/lib/rpm",
                                      "/usr/lib/sysimage/rpm", "/etc/passwd"};
  const char *name, *version, *format;
  if (vs_source_package(src, 0, &name, &version, &format)) return true;
  for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
    struct vs_stat st;
    struct vs_err e = {0};
    int rc = vs_source_stat(src, marks[i], true, &st, &e);
    vs_err_clear(&e);
    if (rc == 0) return true;
  }
  return false;
}

int vs_extract(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
               struct vs_extract_stats *stats, struct vs_err *err) {
  struct vs_extract_stats local = {0};
  struct vs_extract_stats *st = stats ? stats : &local;
  memset(st, 0, sizeof(*st));
  x->bytes_read = 0;
  vs_strmap_free(x->conffiles); /* another guest's packages */
  x->conffiles = vs_strmap_new(free);
  struct vs_stat root;
  if (vs_source_stat(src, "/", true, &root, err) < 0)
    return vs_err_prefix(err, "%s: cannot read the tree's root", vs_source_path(src));
  if (root.type != VS_FT_DIR)
    return vs_err_set(err, ENOTDIR, "%s: the tree's root is not a directory", vs_source_path(src));
  _cleanup_(vs_freep) char *winroot = vs_x_win_systemroot(src);
  if (!winroot && !has_os(src))
    return vs_err_set(err, ENOENT,
                      "no operating system found in %s: no /etc/os-release, no package database",
                      vs_source_path(src));

  const char *note_path, *note_reason;
  for (size_t i = 0; vs_source_note(src, i, &note_path, &note_reason); i++)
    vs_feature_skip(doc, note_path, "%s", note_reason);
  if (winroot) return vs_x_windows(x, src, doc, winroot, st), 0;
  double t0 = vs_now_monotonic(), t = t0, now;
#define PHASE(field, call)                                                                         \
  do {                                                                                             \
    call;                                                                                          \
    now = vs_now_monotonic();                                                                      \
    st->field = now - t;                                                                           \
    t = now;                                                                                       \
  } while (0)
  PHASE(seconds_os, vs_x_os(x, src, doc));
  PHASE(seconds_packages, st->packages = vs_x_dpkg(x, src, doc) + vs_x_rpm(x, src, doc));
  if (st->packages == 0) st->packages = vs_x_backend_packages(src, doc);
  PHASE(seconds_accounts, vs_x_accounts(x, src, doc));
  PHASE(seconds_services, vs_x_services(x, src, doc));
  PHASE(seconds_sysctl, vs_x_sysctl(x, src, doc));
  PHASE(seconds_files, vs_x_files(x, src, doc, st));
#undef PHASE
  st->seconds_total = t - t0;
  return 0;
}
