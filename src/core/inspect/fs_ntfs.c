/* fs_ntfs.c: NTFS for the direct reader (fs.h), through libyal's libfsntfs on a libbfio handle
 * whose callbacks read the volume through our image reader.
 *
 * libfsntfs parses what the guest wrote. What we bound around it: every read stays inside the
 * volume; each operation (open, a look-up, a listing, a file's content) may read at most
 * OP_READ_BUDGET bytes through the handle (plus the file's own bytes for a read), so a looping
 * run list or index that keeps libfsntfs reading ends in an error; a path walk is one look-up
 * per component (at most VS_SOURCE_MAX_PATH bytes of path); file contents are copied through a
 * fixed buffer up to the caller's MAX, whatever size the volume claims. */
#include "fs_yal.h"

#include "dl.h"

#include <errno.h>
#include <inttypes.h>
#include <libfsntfs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OP_READ_BUDGET (128u << 20)
#define MFT_FIRST_USER_ENTRY 24 /* entries 0-23 are metadata files or reserved; 5 is the root */
#define MFT_ROOT_ENTRY 5

/* libfsntfs, opened on first use (dl.h), after libbfio (bfio.h). */
/* clang-format off */
#define FSNTFS_SYMBOLS(X) X(libfsntfs_error_free) X(libfsntfs_error_sprint)                        \
  X(libfsntfs_file_entry_free) X(libfsntfs_file_entry_get_file_attribute_flags)                    \
  X(libfsntfs_file_entry_get_file_reference) X(libfsntfs_file_entry_get_modification_time)         \
  X(libfsntfs_file_entry_get_number_of_sub_file_entries) X(libfsntfs_file_entry_get_size)          \
  X(libfsntfs_file_entry_get_sub_file_entry_by_index)                                              \
  X(libfsntfs_file_entry_get_sub_file_entry_by_utf8_name) X(libfsntfs_file_entry_get_utf8_name)    \
  X(libfsntfs_file_entry_get_utf8_symbolic_link_target)                                            \
  X(libfsntfs_file_entry_get_utf8_symbolic_link_target_size)                                       \
  X(libfsntfs_file_entry_has_directory_entries_index) X(libfsntfs_file_entry_is_symbolic_link)     \
  X(libfsntfs_file_entry_read_buffer_at_offset) X(libfsntfs_volume_close) X(libfsntfs_volume_free) \
  X(libfsntfs_volume_get_root_directory) X(libfsntfs_volume_initialize)                            \
  X(libfsntfs_volume_open_file_io_handle)
/* clang-format on */
VS_DL_LIBRARY(fsntfs_lib, VS_SONAME_FSNTFS, "libfsntfs1", FSNTFS_SYMBOLS);

struct ntfs {
  struct vs_bfio io; /* the volume on the disk */
  libfsntfs_volume_t *vol;
  struct vs_yal_fs calls; /* ntfs_calls() */
};

/* ------------------------------------------------------------------------------ errors */

static bool is_metadata(libfsntfs_file_entry_t *fe);

/* libfsntfs's calls for fs_yal.c, once it is loaded. */
static struct vs_yal_fs ntfs_calls(void) {
  return (struct vs_yal_fs){
      .lib = "libfsntfs",
      .budget_mib = OP_READ_BUDGET >> 20,
      .error_sprint = sym_libfsntfs_error_sprint,
      .error_free = sym_libfsntfs_error_free,
      .entry_free = sym_libfsntfs_file_entry_free,
      .get_size = sym_libfsntfs_file_entry_get_size,
      .read_at = sym_libfsntfs_file_entry_read_buffer_at_offset,
      .count = sym_libfsntfs_file_entry_get_number_of_sub_file_entries,
      .sub = sym_libfsntfs_file_entry_get_sub_file_entry_by_index,
      .name = sym_libfsntfs_file_entry_get_utf8_name,
      .link_size = sym_libfsntfs_file_entry_get_utf8_symbolic_link_target_size,
      .link_target = sym_libfsntfs_file_entry_get_utf8_symbolic_link_target,
      .hidden = is_metadata,
  };
}

/* Fills ERR with CODE and what follows, with libfsntfs's reason, and frees *E. */
#define fail(err, fs, code, e, ...)                                                                \
  vs_yal_fs_fail(&(fs)->calls, &(fs)->io, err, code, e, __VA_ARGS__)

static void begin_op(struct ntfs *fs, uint64_t extra) {
  vs_bfio_begin(&fs->io, OP_READ_BUDGET + extra);
}

/* ------------------------------------------------------------------------------ tree ops */

static uint64_t entry_index(libfsntfs_file_entry_t *fe) {
  uint64_t ref = 0;
  libfsntfs_error_t *e = NULL;
  if (sym_libfsntfs_file_entry_get_file_reference(fe, &ref, &e) != 1) {
    sym_libfsntfs_error_free(&e);
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
  if (sym_libfsntfs_volume_get_root_directory(fs->vol, &fe, &e) != 1)
    return fail(err, fs, EIO, &e, "%s: reading the root directory", path);
  while (*rel) {
    const char *slash = strchr(rel, '/');
    size_t n = slash ? (size_t)(slash - rel) : strlen(rel);
    libfsntfs_file_entry_t *sub = NULL;
    int rc = n ? sym_libfsntfs_file_entry_get_sub_file_entry_by_utf8_name(fe, (const uint8_t *)rel,
                                                                          n, &sub, &e)
               : 0;
    sym_libfsntfs_file_entry_free(&fe, NULL);
    if (rc < 0) return fail(err, fs, EIO, &e, "%s: looking up %.*s", path, (int)n, rel);
    if (rc == 0 || is_metadata(sub)) {
      sym_libfsntfs_file_entry_free(&sub, NULL);
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
  int rc = sym_libfsntfs_file_entry_is_symbolic_link(fe, &e);
  if (rc < 0) return fail(err, fs, EIO, &e, "%s: reading its reparse point", path);
  if (rc == 1) {
    *type = VS_FT_LNK;
    return 0;
  }
  rc = sym_libfsntfs_file_entry_has_directory_entries_index(fe, &e);
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
  sym_libfsntfs_file_entry_free(fe, NULL);
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
  if (sym_libfsntfs_file_entry_get_size(fe, &size, &e) != 1 ||
      sym_libfsntfs_file_entry_get_file_attribute_flags(fe, &flags, &e) != 1 ||
      sym_libfsntfs_file_entry_get_modification_time(fe, &ft, &e) != 1)
    rc = fail(err, fs, EIO, &e, "%s: reading its attributes", path);
  sym_libfsntfs_file_entry_free(&fe, NULL);
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
  _cleanup_(vs_freep) char *raw = NULL;
  if (vs_yal_fs_readlink(&fs->calls, &fs->io, fe, type, path, &raw, err) < 0) return -1;
  char *t = raw;
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
  return vs_yal_fs_read(&fs->calls, &fs->io, fe, type, path, max, out, err);
}

static int ntfs_list(void *impl, const char *rel, const char *path, size_t max, char ***names,
                     size_t *count, bool *truncated, struct vs_err *err) {
  struct ntfs *fs = impl;
  libfsntfs_file_entry_t *fe = NULL;
  enum vs_ftype type;
  if (find(fs, rel, path, &fe, &type, err) < 0) return -1;
  return vs_yal_fs_list(&fs->calls, &fs->io, fe, type, path, max, names, count, truncated, err);
}

static void ntfs_close(void *impl) {
  struct ntfs *fs = impl;
  if (!fs) return;
  if (fs->vol) {
    sym_libfsntfs_volume_close(fs->vol, NULL);
    sym_libfsntfs_volume_free(&fs->vol, NULL);
  }
  vs_bfio_close(&fs->io);
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
  char what[128];
  snprintf(what, sizeof(what), "%s: partition %d", vs_image_path(img), v->number);
  if (vs_bfio_load(err) < 0 || vs_dl_load(&fsntfs_lib, err) < 0)
    return vs_err_prefix(err, "%s (ntfs)", what);
  struct ntfs *fs = vs_xcalloc(1, sizeof(*fs));
  fs->calls = ntfs_calls();
  if (vs_bfio_open(&fs->io, img, v->offset, v->size, OP_READ_BUDGET, what, err) < 0) {
    free(fs);
    return -1;
  }
  libfsntfs_error_t *e = NULL;
  if (sym_libfsntfs_volume_initialize(&fs->vol, &e) != 1 ||
      sym_libfsntfs_volume_open_file_io_handle(fs->vol, fs->io.handle, LIBFSNTFS_OPEN_READ, &e) !=
          1) {
    fail(err, fs, EIO, &e, "%s: partition %d (ntfs): libfsntfs cannot open it", vs_image_path(img),
         v->number);
    if (fs->vol) sym_libfsntfs_volume_free(&fs->vol, NULL);
    ntfs_close(fs);
    return -1;
  }
  *out = (struct vs_fs){.ops = &ntfs_ops, .impl = fs};
  return 0;
}
