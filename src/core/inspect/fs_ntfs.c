/* fs_ntfs.c: NTFS for the direct reader (fs.h), through libyal's libfsntfs on a libbfio handle
 * whose callbacks read the volume through our image reader.
 *
 * libfsntfs parses what the guest wrote. What we bound around it: every read stays inside the
 * volume; each operation (open, a look-up, a listing, a file's content) may read at most
 * OP_READ_BUDGET bytes through the handle (plus the file's own bytes for a read), so a looping
 * run list or index that keeps libfsntfs reading ends in an error; a path walk is one look-up
 * per component (at most VS_SOURCE_MAX_PATH bytes of path); file contents are copied through a
 * fixed buffer up to the caller's MAX, whatever size the volume claims. */
#include "fs.h"

#include <errno.h>
#include <inttypes.h>
#include <libbfio.h>
#include <limits.h>
#include <libfsntfs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OP_READ_BUDGET (128u << 20)
#define MFT_FIRST_USER_ENTRY 24 /* entries 0-23 are metadata files or reserved; 5 is the root */
#define MFT_ROOT_ENTRY 5

struct ntfs {
  struct vs_image *img;
  uint64_t offset, size; /* the volume on the disk */
  uint64_t budget;       /* bytes the current operation may still read */
  bool over_budget;
  libbfio_handle_t *bfio;
  libfsntfs_volume_t *vol;
};

/* libbfio's io handle: a position in the volume (libbfio may clone it; clones share NTFS). */
struct bio {
  struct ntfs *fs;
  uint64_t pos;
  bool is_open;
};

/* ------------------------------------------------------------------- libbfio callbacks */

static int bio_free(intptr_t **io, libbfio_error_t **error) {
  (void)error;
  free(*io);
  *io = NULL;
  return 1;
}

static int bio_clone(intptr_t **dst, intptr_t *src, libbfio_error_t **error) {
  (void)error;
  if (!dst || !src) return -1;
  struct bio *b = vs_xcalloc(1, sizeof(*b));
  b->fs = ((struct bio *)src)->fs;
  *dst = (intptr_t *)b;
  return 1;
}

static int bio_open(intptr_t *io, int flags, libbfio_error_t **error) {
  (void)error;
  if (flags & ~LIBBFIO_ACCESS_FLAG_READ) return -1; /* read-only */
  ((struct bio *)io)->is_open = true;
  ((struct bio *)io)->pos = 0;
  return 1;
}

static int bio_close(intptr_t *io, libbfio_error_t **error) {
  (void)error;
  ((struct bio *)io)->is_open = false;
  return 0;
}

static ssize_t bio_read(intptr_t *io, uint8_t *buf, size_t size, libbfio_error_t **error) {
  (void)error;
  struct bio *b = (struct bio *)io;
  struct ntfs *fs = b->fs;
  if (b->pos >= fs->size) return 0;
  if (size > fs->size - b->pos) size = (size_t)(fs->size - b->pos);
  if (size > SSIZE_MAX) size = SSIZE_MAX;
  if (size > fs->budget) {
    fs->over_budget = true;
    return -1;
  }
  struct vs_err err = {0};
  if (vs_image_pread(fs->img, buf, size, fs->offset + b->pos, &err) < 0) {
    vs_log(VS_LOG_WARNING, "%s", vs_err_msg(&err));
    vs_err_clear(&err);
    return -1;
  }
  fs->budget -= size;
  b->pos += size;
  return (ssize_t)size;
}

static ssize_t bio_write(intptr_t *io, const uint8_t *buf, size_t size, libbfio_error_t **error) {
  (void)io, (void)buf, (void)size, (void)error;
  return -1;
}

static off64_t bio_seek(intptr_t *io, off64_t offset, int whence, libbfio_error_t **error) {
  (void)error;
  struct bio *b = (struct bio *)io;
  int64_t base = whence == SEEK_SET   ? 0
                 : whence == SEEK_CUR ? (int64_t)b->pos
                 : whence == SEEK_END ? (int64_t)b->fs->size
                                      : -1;
  if (base < 0 || offset < -base || offset > INT64_MAX - base) return -1;
  b->pos = (uint64_t)(base + offset);
  return (off64_t)b->pos;
}

static int bio_exists(intptr_t *io, libbfio_error_t **error) {
  (void)io, (void)error;
  return 1;
}

static int bio_is_open(intptr_t *io, libbfio_error_t **error) {
  (void)error;
  return ((struct bio *)io)->is_open ? 1 : 0;
}

static int bio_get_size(intptr_t *io, size64_t *size, libbfio_error_t **error) {
  (void)error;
  *size = ((struct bio *)io)->fs->size;
  return 1;
}

/* ------------------------------------------------------------------------------ errors */

/* Fills ERR with CODE and WHAT, with libfsntfs's reason, and frees E. */
static int fail(struct vs_err *err, struct ntfs *fs, int code, libfsntfs_error_t **e,
                const char *fmt, ...) VS_PRINTF(5, 6);
static int fail(struct vs_err *err, struct ntfs *fs, int code, libfsntfs_error_t **e,
                const char *fmt, ...) {
  char what[VS_SOURCE_MAX_PATH + 256], why[512] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  if (*e && libfsntfs_error_sprint(*e, why, sizeof(why)) < 0) why[0] = '\0';
  libfsntfs_error_free(e);
  for (char *p = why; *p; p++) /* libcerror ends lines and joins the chain with newlines */
    if (*p == '\n') *p = *(p + 1) ? ' ' : '\0';
  if (fs && fs->over_budget)
    return vs_err_set(err, EFBIG,
                      "%s: libfsntfs read more than %u MiB for it (a looping run list "
                      "or index?)",
                      what, OP_READ_BUDGET >> 20);
  return vs_err_set(err, code, "%s%s%s", what, why[0] ? ": " : "", why);
}

static void begin_op(struct ntfs *fs, uint64_t extra) {
  fs->budget = OP_READ_BUDGET + extra;
  fs->over_budget = false;
}

/* ------------------------------------------------------------------------------ tree ops */

static uint64_t entry_index(libfsntfs_file_entry_t *fe) {
  uint64_t ref = 0;
  libfsntfs_error_t *e = NULL;
  if (libfsntfs_file_entry_get_file_reference(fe, &ref, &e) != 1) {
    libfsntfs_error_free(&e);
    return 0;
  }
  return ref & UINT64_C(0xffffffffffff); /* the MFT entry; the top 16 bits are its sequence */
}

static bool is_metadata(libfsntfs_file_entry_t *fe) {
  uint64_t i = entry_index(fe);
  return i < MFT_FIRST_USER_ENTRY && i != MFT_ROOT_ENTRY;
}

/* The entry at REL (components separated by '/'; NTFS compares names case-insensitively). */
static int lookup(struct ntfs *fs, const char *rel, const char *path, libfsntfs_file_entry_t **out,
                  struct vs_err *err) {
  libfsntfs_error_t *e = NULL;
  libfsntfs_file_entry_t *fe = NULL;
  if (libfsntfs_volume_get_root_directory(fs->vol, &fe, &e) != 1)
    return fail(err, fs, EIO, &e, "%s: reading the root directory", path);
  while (*rel) {
    const char *slash = strchr(rel, '/');
    size_t n = slash ? (size_t)(slash - rel) : strlen(rel);
    libfsntfs_file_entry_t *sub = NULL;
    int rc = n ? libfsntfs_file_entry_get_sub_file_entry_by_utf8_name(fe, (const uint8_t *)rel, n,
                                                                      &sub, &e)
               : 0;
    libfsntfs_file_entry_free(&fe, NULL);
    if (rc < 0) return fail(err, fs, EIO, &e, "%s: looking up %.*s", path, (int)n, rel);
    if (rc == 0 || is_metadata(sub)) {
      libfsntfs_file_entry_free(&sub, NULL);
      return vs_err_set(err, ENOENT, "%s: %s", path, strerror(ENOENT));
    }
    fe = sub;
    rel += n;
    while (*rel == '/')
      rel++;
  }
  *out = fe;
  return 0;
}

static int entry_type(struct ntfs *fs, libfsntfs_file_entry_t *fe, const char *path,
                      enum vs_ftype *type, struct vs_err *err) {
  libfsntfs_error_t *e = NULL;
  int rc = libfsntfs_file_entry_is_symbolic_link(fe, &e);
  if (rc < 0) return fail(err, fs, EIO, &e, "%s: reading its reparse point", path);
  if (rc == 1) {
    *type = VS_FT_LNK;
    return 0;
  }
  rc = libfsntfs_file_entry_has_directory_entries_index(fe, &e);
  if (rc < 0) return fail(err, fs, EIO, &e, "%s: reading its index", path);
  *type = rc == 1 ? VS_FT_DIR : VS_FT_REG;
  return 0;
}

/* Starts an operation: the entry at REL, and its type. */
static int find(struct ntfs *fs, const char *rel, const char *path, libfsntfs_file_entry_t **fe,
                enum vs_ftype *type, struct vs_err *err) {
  begin_op(fs, 0);
  if (lookup(fs, rel, path, fe, err) < 0) return -1;
  if (entry_type(fs, *fe, path, type, err) == 0) return 0;
  libfsntfs_file_entry_free(fe, NULL);
  return -1;
}

static int ntfs_lstat(void *impl, const char *rel, const char *path, struct vs_stat *st,
                      struct vs_err *err) {
  struct ntfs *fs = impl;
  libfsntfs_file_entry_t *fe = NULL;
  if (find(fs, rel, path, &fe, &st->type, err) < 0) return -1;
  libfsntfs_error_t *e = NULL;
  size64_t size = 0;
  uint32_t flags = 0;
  uint64_t ft = 0;
  int rc = 0;
  if (libfsntfs_file_entry_get_size(fe, &size, &e) != 1 ||
      libfsntfs_file_entry_get_file_attribute_flags(fe, &flags, &e) != 1 ||
      libfsntfs_file_entry_get_modification_time(fe, &ft, &e) != 1)
    rc = fail(err, fs, EIO, &e, "%s: reading its attributes", path);
  libfsntfs_file_entry_free(&fe, NULL);
  if (rc < 0) return -1;
  /* Windows has no mode bits: what a Linux guest would show for such a file. */
  st->size = st->type == VS_FT_DIR ? 0 : size;
  st->mode = st->type == VS_FT_DIR                             ? 0755
             : flags & LIBFSNTFS_FILE_ATTRIBUTE_FLAG_READ_ONLY ? 0444
                                                               : 0644;
  st->uid = st->gid = 0;
  st->mtime = ft ? (int64_t)(ft / 10000000u) - INT64_C(11644473600) : 0; /* FILETIME */
  return 0;
}

/* What the volume says a symlink or junction points at, as a guest path: "\??\C:\Windows" and
 * "C:\Windows" become "/Windows" (whatever the drive letter: source.c keeps it in the tree),
 * backslashes become slashes, a relative target stays relative. */
static int ntfs_readlink(void *impl, const char *rel, const char *path, char **target,
                         struct vs_err *err) {
  struct ntfs *fs = impl;
  libfsntfs_file_entry_t *fe = NULL;
  enum vs_ftype type;
  if (find(fs, rel, path, &fe, &type, err) < 0) return -1;
  if (type != VS_FT_LNK) {
    libfsntfs_file_entry_free(&fe, NULL);
    return vs_err_set(err, EINVAL, "%s: not a symlink", path);
  }
  libfsntfs_error_t *e = NULL;
  uint8_t buf[VS_SOURCE_MAX_PATH + 1];
  size_t n = 0;
  int rc = libfsntfs_file_entry_get_utf8_symbolic_link_target_size(fe, &n, &e);
  if (rc == 1 && n > sizeof(buf)) {
    libfsntfs_file_entry_free(&fe, NULL);
    return vs_err_set(err, ENAMETOOLONG, "%s: symlink target longer than %d bytes", path,
                      VS_SOURCE_MAX_PATH);
  }
  if (rc == 1) rc = libfsntfs_file_entry_get_utf8_symbolic_link_target(fe, buf, sizeof(buf), &e);
  libfsntfs_file_entry_free(&fe, NULL);
  if (rc != 1) return fail(err, fs, EIO, &e, "%s: reading the symlink's target", path);
  buf[sizeof(buf) - 1] = '\0';
  char *t = (char *)buf;
  if (strncmp(t, "\\??\\", 4) == 0) t += 4;
  if (((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z') && t[1] == ':') t += 2;
  char *out = vs_xstrdup(t);
  for (char *p = out; *p; p++)
    if (*p == '\\') *p = '/';
  *target = out;
  return 0;
}

static int ntfs_read(void *impl, const char *rel, const char *path, size_t max, struct vs_buf *out,
                     struct vs_err *err) {
  struct ntfs *fs = impl;
  libfsntfs_file_entry_t *fe = NULL;
  enum vs_ftype type;
  if (find(fs, rel, path, &fe, &type, err) < 0) return -1;
  libfsntfs_error_t *e = NULL;
  size64_t size = 0;
  int rc = 0;
  if (type != VS_FT_REG)
    rc = vs_err_set(err, EINVAL, "%s: is a %s, not a regular file", path, vs_ftype_name(type));
  if (rc == 0 && libfsntfs_file_entry_get_size(fe, &size, &e) != 1)
    rc = fail(err, fs, EIO, &e, "%s: reading its size", path);
  if (rc == 0 && size > max)
    rc = vs_err_set(err, EFBIG, "%s: %" PRIu64 " bytes, over the limit of %zu", path,
                    (uint64_t)size, max);
  if (rc == 0) fs->budget += size; /* the file's own bytes */
  uint8_t chunk[65536];
  for (uint64_t done = 0; rc == 0 && done < size;) {
    size_t want = size - done < sizeof(chunk) ? (size_t)(size - done) : sizeof(chunk);
    ssize_t got = libfsntfs_file_entry_read_buffer_at_offset(fe, chunk, want, (off64_t)done, &e);
    if (got < 0)
      rc = fail(err, fs, EIO, &e, "%s: read at %" PRIu64, path, done);
    else if (got == 0)
      rc = vs_err_set(err, EIO, "%s: ends at %" PRIu64 " bytes, before its size of %" PRIu64, path,
                      done, (uint64_t)size);
    else {
      vs_buf_add(out, chunk, (size_t)got);
      done += (uint64_t)got;
    }
  }
  libfsntfs_file_entry_free(&fe, NULL);
  return rc;
}

static int ntfs_list(void *impl, const char *rel, const char *path, size_t max, char ***names,
                     size_t *count, bool *truncated, struct vs_err *err) {
  struct ntfs *fs = impl;
  libfsntfs_file_entry_t *fe = NULL;
  enum vs_ftype type;
  if (find(fs, rel, path, &fe, &type, err) < 0) return -1;
  libfsntfs_error_t *e = NULL;
  int n = 0;
  int rc = 0;
  if (type != VS_FT_DIR) rc = vs_err_set(err, ENOTDIR, "%s: not a directory", path);
  if (rc == 0 && libfsntfs_file_entry_get_number_of_sub_file_entries(fe, &n, &e) != 1)
    rc = fail(err, fs, EIO, &e, "%s: reading the directory", path);
  char **v = NULL;
  size_t k = 0;
  *truncated = false;
  for (int i = 0; rc == 0 && i < n; i++) {
    libfsntfs_file_entry_t *sub = NULL;
    uint8_t name[1024]; /* 255 UTF-16 units: at most 765 bytes of UTF-8 */
    if (libfsntfs_file_entry_get_sub_file_entry_by_index(fe, i, &sub, &e) != 1) {
      rc = fail(err, fs, EIO, &e, "%s: reading entry %d of the directory", path, i);
      break;
    }
    int got = libfsntfs_file_entry_get_utf8_name(sub, name, sizeof(name), &e);
    bool hidden = is_metadata(sub);
    libfsntfs_file_entry_free(&sub, NULL);
    if (got != 1) {
      rc = fail(err, fs, EIO, &e, "%s: reading the name of entry %d", path, i);
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
  libfsntfs_file_entry_free(&fe, NULL);
  if (rc < 0) {
    vs_strv_free(v, k);
    return -1;
  }
  if (k) qsort(v, k, sizeof(char *), vs_cmp_strp);
  *names = v;
  *count = k;
  return 0;
}

static void ntfs_close(void *impl) {
  struct ntfs *fs = impl;
  if (!fs) return;
  if (fs->vol) {
    libfsntfs_volume_close(fs->vol, NULL);
    libfsntfs_volume_free(&fs->vol, NULL);
  }
  if (fs->bfio) libbfio_handle_free(&fs->bfio, NULL);
  free(fs);
}

static const struct vs_fs_ops ntfs_ops = {
    .lstat = ntfs_lstat,
    .readlink = ntfs_readlink,
    .read = ntfs_read,
    .list = ntfs_list,
    .close = ntfs_close,
};

bool vs_fs_ntfs_handles(const char *fstype) {
  return strcmp(fstype, "ntfs") == 0;
}

int vs_fs_ntfs_open(struct vs_image *img, const struct vs_volume *v, struct vs_fs *out,
                    struct vs_err *err) {
  struct ntfs *fs = vs_xcalloc(1, sizeof(*fs));
  fs->img = img;
  fs->offset = v->offset;
  fs->size = v->size;
  begin_op(fs, 0);
  struct bio *b = vs_xcalloc(1, sizeof(*b));
  b->fs = fs;
  libbfio_error_t *be = NULL;
  if (libbfio_handle_initialize(&fs->bfio, (intptr_t *)b, bio_free, bio_clone, bio_open, bio_close,
                                bio_read, bio_write, bio_seek, bio_exists, bio_is_open,
                                bio_get_size, LIBBFIO_FLAG_IO_HANDLE_MANAGED, &be) != 1) {
    libbfio_error_free(&be);
    free(b);
    free(fs);
    return vs_err_set(err, ENOMEM, "%s: partition %d: libbfio cannot make a handle",
                      vs_image_path(img), v->number);
  }
  libfsntfs_error_t *e = NULL;
  if (libfsntfs_volume_initialize(&fs->vol, &e) != 1 ||
      libfsntfs_volume_open_file_io_handle(fs->vol, fs->bfio, LIBFSNTFS_OPEN_READ, &e) != 1) {
    fail(err, fs, EIO, &e, "%s: partition %d (ntfs): libfsntfs cannot open it", vs_image_path(img),
         v->number);
    if (fs->vol) libfsntfs_volume_free(&fs->vol, NULL);
    ntfs_close(fs);
    return -1;
  }
  *out = (struct vs_fs){.ops = &ntfs_ops, .impl = fs};
  return 0;
}
