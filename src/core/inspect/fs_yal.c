/* fs_yal.c: a file's bytes, a directory's names and a symlink's target through one libyal
 * file-system library's calls (fs_yal.h). */
#include "fs_yal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vs_yal_fs_fail(const struct vs_yal_fs *y, struct vs_bfio *io, struct vs_err *err, int code,
                   intptr_t **e, const char *fmt, ...) {
  char what[VS_SOURCE_MAX_PATH + 256], why[512] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  if (*e && y->error_sprint(*e, why, sizeof(why)) < 0) why[0] = '\0';
  y->error_free(e);
  return vs_bfio_fail(err, io, y->lib, y->budget_mib, code, what, why);
}

int vs_yal_fs_read(const struct vs_yal_fs *y, struct vs_bfio *io, intptr_t *fe, enum vs_ftype type,
                   const char *path, size_t max, struct vs_buf *out, struct vs_err *err) {
  intptr_t *e = NULL;
  uint64_t size = 0;
  int rc = 0;
  if (type != VS_FT_REG)
    rc = vs_err_set(err, EINVAL, "%s: is a %s, not a regular file", path, vs_ftype_name(type));
  if (rc == 0 && y->get_size(fe, &size, &e) != 1)
    rc = vs_yal_fs_fail(y, io, err, EIO, &e, "%s: reading its size", path);
  if (rc == 0 && size > max)
    rc = vs_err_set(err, EFBIG, "%s: %" PRIu64 " bytes, over the limit of %zu", path, size, max);
  if (rc == 0) io->budget += size; /* the file's own bytes */
  uint8_t chunk[65536];
  for (uint64_t done = 0; rc == 0 && done < size;) {
    size_t want = size - done < sizeof(chunk) ? (size_t)(size - done) : sizeof(chunk);
    ssize_t got = y->read_at(fe, chunk, want, (off64_t)done, &e);
    if (got < 0)
      rc = vs_yal_fs_fail(y, io, err, EIO, &e, "%s: read at %" PRIu64, path, done);
    else if (got == 0)
      rc = vs_err_set(err, EIO, "%s: ends at %" PRIu64 " bytes, before its size of %" PRIu64, path,
                      done, size);
    else {
      vs_buf_add(out, chunk, (size_t)got);
      done += (uint64_t)got;
    }
  }
  y->entry_free(&fe, NULL);
  return rc;
}

int vs_yal_fs_list(const struct vs_yal_fs *y, struct vs_bfio *io, intptr_t *fe, enum vs_ftype type,
                   const char *path, size_t max, char ***names, size_t *count, bool *truncated,
                   struct vs_err *err) {
  intptr_t *e = NULL;
  int n = 0, rc = 0;
  if (type != VS_FT_DIR) rc = vs_err_set(err, ENOTDIR, "%s: not a directory", path);
  if (rc == 0 && y->count(fe, &n, &e) != 1)
    rc = vs_yal_fs_fail(y, io, err, EIO, &e, "%s: reading the directory", path);
  char **v = NULL;
  size_t k = 0;
  *truncated = false;
  for (int i = 0; rc == 0 && i < n; i++) {
    intptr_t *sub = NULL;
    uint8_t name[1024]; /* XFS names are at most 255 bytes, NTFS's 765 bytes of UTF-8 */
    if (y->sub(fe, i, &sub, &e) != 1) {
      rc = vs_yal_fs_fail(y, io, err, EIO, &e, "%s: reading entry %d of the directory", path, i);
      break;
    }
    int got = y->name(sub, name, sizeof(name), &e);
    bool hidden = y->hidden && y->hidden(sub);
    y->entry_free(&sub, NULL);
    if (got != 1) {
      rc = vs_yal_fs_fail(y, io, err, EIO, &e, "%s: reading the name of entry %d", path, i);
      break;
    }
    name[sizeof(name) - 1] = '\0';
    if (hidden || !name[0] || strchr((char *)name, '/') || strcmp((char *)name, ".") == 0 ||
        strcmp((char *)name, "..") == 0)
      continue; /* metadata, or not a name a path can hold */
    if (k >= max) {
      *truncated = true;
      break;
    }
    vs_strv_add(&v, &k, (char *)name);
  }
  y->entry_free(&fe, NULL);
  if (rc < 0) {
    vs_strv_free(v, k);
    return -1;
  }
  if (k) qsort(v, k, sizeof(char *), vs_cmp_strp);
  *names = v;
  *count = k;
  return 0;
}

int vs_yal_fs_readlink(const struct vs_yal_fs *y, struct vs_bfio *io, intptr_t *fe,
                       enum vs_ftype type, const char *path, char **target, struct vs_err *err) {
  if (type != VS_FT_LNK) {
    y->entry_free(&fe, NULL);
    return vs_err_set(err, EINVAL, "%s: not a symlink", path);
  }
  intptr_t *e = NULL;
  uint8_t buf[VS_SOURCE_MAX_PATH + 1];
  size_t n = 0;
  int rc = y->link_size(fe, &n, &e);
  if (rc == 1 && n > sizeof(buf)) {
    y->entry_free(&fe, NULL);
    return vs_err_set(err, ENAMETOOLONG, "%s: symlink target longer than %d bytes", path,
                      VS_SOURCE_MAX_PATH);
  }
  if (rc == 1) rc = y->link_target(fe, buf, sizeof(buf), &e);
  y->entry_free(&fe, NULL);
  if (rc != 1) return vs_yal_fs_fail(y, io, err, EIO, &e, "%s: reading the symlink's target", path);
  buf[sizeof(buf) - 1] = '\0';
  *target = vs_xstrdup((char *)buf);
  return 0;
}
