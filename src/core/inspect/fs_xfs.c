/* fs_xfs.c: XFS for the direct reader (fs.h), through libyal's libfsxfs on a libbfio handle
 * (bfio.h) whose callbacks read the volume through our image reader.
 *
 * libfsxfs parses what the guest wrote. What we bound around it, as fs_ntfs.c does: every read
 * stays inside the volume; each operation (open, a look-up, a listing, a file's content) may
 * read at most OP_READ_BUDGET bytes through the handle (plus the file's own bytes for a read),
 * so a looping B+tree or directory that keeps libfsxfs reading ends in an error; a path walk
 * is one look-up per component (at most VS_SOURCE_MAX_PATH bytes of path), and never goes
 * back up (source.c resolves "..", so a directory entry pointing at an ancestor is only ever
 * read as one more level); file contents are copied through a fixed buffer up to the caller's
 * MAX, whatever size the inode claims. */
#include "fs_yal.h"

#include "dl.h"

#include <errno.h>
#include <inttypes.h>
#include <libfsxfs.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OP_READ_BUDGET (64u << 20)

/* libfsxfs, opened on first use (dl.h), after libbfio (bfio.h). */
/* clang-format off */
#define FSXFS_SYMBOLS(X) X(libfsxfs_error_free) X(libfsxfs_error_sprint)                           \
  X(libfsxfs_file_entry_free) X(libfsxfs_file_entry_get_file_mode)                                 \
  X(libfsxfs_file_entry_get_group_identifier) X(libfsxfs_file_entry_get_modification_time)         \
  X(libfsxfs_file_entry_get_number_of_sub_file_entries)                                            \
  X(libfsxfs_file_entry_get_owner_identifier) X(libfsxfs_file_entry_get_size)                      \
  X(libfsxfs_file_entry_get_sub_file_entry_by_index) X(libfsxfs_file_entry_get_utf8_name)          \
  X(libfsxfs_file_entry_get_utf8_symbolic_link_target)                                             \
  X(libfsxfs_file_entry_get_utf8_symbolic_link_target_size)                                        \
  X(libfsxfs_file_entry_read_buffer_at_offset) X(libfsxfs_volume_close) X(libfsxfs_volume_free)    \
  X(libfsxfs_volume_get_file_entry_by_utf8_path) X(libfsxfs_volume_get_root_directory)             \
  X(libfsxfs_volume_initialize) X(libfsxfs_volume_open_file_io_handle)
/* clang-format on */
VS_DL_LIBRARY(fsxfs_lib, VS_SONAME_FSXFS, "libfsxfs1", FSXFS_SYMBOLS);

struct xfs {
  struct vs_bfio io; /* the volume on the disk */
  libfsxfs_volume_t *vol;
  struct vs_yal_fs calls; /* xfs_calls() */
};

/* libfsxfs's calls for fs_yal.c, once it is loaded. */
static struct vs_yal_fs xfs_calls(void) {
  return (struct vs_yal_fs){
      .lib = "libfsxfs",
      .budget_mib = OP_READ_BUDGET >> 20,
      .error_sprint = sym_libfsxfs_error_sprint,
      .error_free = sym_libfsxfs_error_free,
      .entry_free = sym_libfsxfs_file_entry_free,
      .get_size = sym_libfsxfs_file_entry_get_size,
      .read_at = sym_libfsxfs_file_entry_read_buffer_at_offset,
      .count = sym_libfsxfs_file_entry_get_number_of_sub_file_entries,
      .sub = sym_libfsxfs_file_entry_get_sub_file_entry_by_index,
      .name = sym_libfsxfs_file_entry_get_utf8_name,
      .link_size = sym_libfsxfs_file_entry_get_utf8_symbolic_link_target_size,
      .link_target = sym_libfsxfs_file_entry_get_utf8_symbolic_link_target,
  };
}

/* Fills ERR with CODE and what follows, with libfsxfs's reason, and frees *E. */
#define fail(err, fs, code, e, ...)                                                                \
  vs_yal_fs_fail(&(fs)->calls, &(fs)->io, err, code, e, __VA_ARGS__)

/* The entry at REL (components separated by '/'), and its type: one operation's start.
 * libfsxfs walks the path itself (its look-up of one name in a directory fails on this
 * version), one directory per component, following no symlink. */
static int find(struct xfs *fs, const char *rel, const char *path, libfsxfs_file_entry_t **out,
                enum vs_ftype *type, uint16_t *mode, struct vs_err *err) {
  vs_bfio_begin(&fs->io, OP_READ_BUDGET);
  libfsxfs_error_t *e = NULL;
  libfsxfs_file_entry_t *fe = NULL;
  char full[VS_SOURCE_MAX_PATH + 2];
  int n = snprintf(full, sizeof(full), "/%s", rel);
  if (n < 0 || (size_t)n >= sizeof(full))
    return vs_err_set(err, ENAMETOOLONG, "%s: %s", path, strerror(ENAMETOOLONG));
  int rc = *rel ? sym_libfsxfs_volume_get_file_entry_by_utf8_path(fs->vol, (const uint8_t *)full,
                                                                  (size_t)n, &fe, &e)
                : sym_libfsxfs_volume_get_root_directory(fs->vol, &fe, &e);
  if (rc < 0) return fail(err, fs, EIO, &e, "%s: looking it up", path);
  if (rc == 0) return vs_err_set(err, ENOENT, "%s: %s", path, strerror(ENOENT));
  uint16_t m = 0;
  if (sym_libfsxfs_file_entry_get_file_mode(fe, &m, &e) != 1) {
    sym_libfsxfs_file_entry_free(&fe, NULL);
    return fail(err, fs, EIO, &e, "%s: reading its inode", path);
  }
  *out = fe;
  *type = vs_fs_mode_type(m);
  if (mode) *mode = m;
  return 0;
}

static int xfs_lstat(void *impl, const char *rel, const char *path, struct vs_stat *st,
                     struct vs_err *err) {
  struct xfs *fs = impl;
  libfsxfs_file_entry_t *fe = NULL;
  uint16_t mode = 0;
  if (find(fs, rel, path, &fe, &st->type, &mode, err) < 0) return -1;
  libfsxfs_error_t *e = NULL;
  size64_t size = 0;
  uint32_t uid = 0, gid = 0;
  int64_t ns = 0;
  int rc = 0;
  if (sym_libfsxfs_file_entry_get_size(fe, &size, &e) != 1 ||
      sym_libfsxfs_file_entry_get_owner_identifier(fe, &uid, &e) != 1 ||
      sym_libfsxfs_file_entry_get_group_identifier(fe, &gid, &e) != 1 ||
      sym_libfsxfs_file_entry_get_modification_time(fe, &ns, &e) != 1)
    rc = fail(err, fs, EIO, &e, "%s: reading its inode", path);
  sym_libfsxfs_file_entry_free(&fe, NULL);
  if (rc < 0) return -1;
  st->size = st->type == VS_FT_DIR ? 0 : size;
  st->mode = mode & 07777;
  st->uid = uid;
  st->gid = gid;
  st->mtime = ns / 1000000000;
  return 0;
}

static int xfs_readlink(void *impl, const char *rel, const char *path, char **target,
                        struct vs_err *err) {
  struct xfs *fs = impl;
  libfsxfs_file_entry_t *fe = NULL;
  enum vs_ftype type;
  if (find(fs, rel, path, &fe, &type, NULL, err) < 0) return -1;
  return vs_yal_fs_readlink(&fs->calls, &fs->io, fe, type, path, target, err);
}

static int xfs_read(void *impl, const char *rel, const char *path, size_t max, struct vs_buf *out,
                    struct vs_err *err) {
  struct xfs *fs = impl;
  libfsxfs_file_entry_t *fe = NULL;
  enum vs_ftype type;
  if (find(fs, rel, path, &fe, &type, NULL, err) < 0) return -1;
  return vs_yal_fs_read(&fs->calls, &fs->io, fe, type, path, max, out, err);
}

static int xfs_list(void *impl, const char *rel, const char *path, size_t max, char ***names,
                    size_t *count, bool *truncated, struct vs_err *err) {
  struct xfs *fs = impl;
  libfsxfs_file_entry_t *fe = NULL;
  enum vs_ftype type;
  if (find(fs, rel, path, &fe, &type, NULL, err) < 0) return -1;
  return vs_yal_fs_list(&fs->calls, &fs->io, fe, type, path, max, names, count, truncated, err);
}

static void xfs_close(void *impl) {
  struct xfs *fs = impl;
  if (!fs) return;
  if (fs->vol) {
    sym_libfsxfs_volume_close(fs->vol, NULL);
    sym_libfsxfs_volume_free(&fs->vol, NULL);
  }
  vs_bfio_close(&fs->io);
  free(fs);
}

static const struct vs_fs_ops xfs_ops = {
    .lstat = xfs_lstat,
    .readlink = xfs_readlink,
    .read = xfs_read,
    .list = xfs_list,
    .close = xfs_close,
};

bool vs_fs_xfs_handles(const char *fstype) {
  return strcmp(fstype, "xfs") == 0;
}

int vs_fs_xfs_open(struct vs_image *img, const struct vs_volume *v, struct vs_fs *out,
                   struct vs_err *err) {
  char name[160], what[PATH_MAX + 200];
  snprintf(what, sizeof(what), "%s: %s (xfs)", vs_image_path(img),
           vs_volume_name(v, name, sizeof(name)));
  if (vs_bfio_load(err) < 0 || vs_dl_load(&fsxfs_lib, err) < 0)
    return vs_err_prefix(err, "%s", what);
  struct xfs *fs = vs_xcalloc(1, sizeof(*fs));
  fs->calls = xfs_calls();
  if (vs_bfio_open(&fs->io, img, v->offset, v->size, OP_READ_BUDGET, what, err) < 0) {
    free(fs);
    return -1;
  }
  libfsxfs_error_t *e = NULL;
  if (sym_libfsxfs_volume_initialize(&fs->vol, &e) != 1 ||
      sym_libfsxfs_volume_open_file_io_handle(fs->vol, fs->io.handle, LIBFSXFS_OPEN_READ, &e) !=
          1) {
    fail(err, fs, EIO, &e, "%s: libfsxfs cannot open it", what);
    if (fs->vol) sym_libfsxfs_volume_free(&fs->vol, NULL);
    xfs_close(fs);
    return -1;
  }
  *out = (struct vs_fs){.ops = &xfs_ops, .impl = fs};
  return 0;
}
