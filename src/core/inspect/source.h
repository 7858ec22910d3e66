/* source.h: a read-only file tree to inspect (a guest's root file system), whatever holds it.
 *
 * Paths are the guest's own absolute paths ("/etc/ssh/sshd_config"). Every lookup resolves
 * symlinks the way the guest would with the tree as its root (as under chroot): an absolute
 * link target starts again at the tree's root and ".." never climbs above it, so no guest link
 * leads out of the tree. At most VS_SOURCE_MAX_LINKS links are followed per lookup. Reads are
 * bounded by the caller's size limit and refuse anything but regular files, so a device node,
 * FIFO or socket in a guest tree is never opened.
 *
 * Backends implement struct vs_source_ops on paths that are already resolved (no symlink in
 * any but perhaps the last component); this file does the resolution once for all of them. */
#ifndef VS_SOURCE_H
#define VS_SOURCE_H

#include "util.h"

#include <stdint.h>

#define VS_SOURCE_MAX_LINKS 40
#define VS_SOURCE_MAX_PATH 4096
#define VS_SOURCE_MAX_DIR_ENTRIES 100000
#define VS_SOURCE_MAX_GLOB 10000

enum vs_ftype { VS_FT_REG, VS_FT_DIR, VS_FT_LNK, VS_FT_CHR, VS_FT_BLK, VS_FT_FIFO, VS_FT_SOCK };

struct vs_stat {
  enum vs_ftype type;
  uint64_t size;
  uint32_t mode; /* permission bits, with setuid, setgid and sticky */
  uint32_t uid, gid;
  int64_t mtime;
};

struct vs_source_ops {
  /* Describes the final component of a resolved PATH without following it. */
  int (*lstat)(void *impl, const char *path, struct vs_stat *st, struct vs_err *err);
  /* A symlink's target, at most VS_SOURCE_MAX_PATH bytes. */
  int (*readlink)(void *impl, const char *path, char **target, struct vs_err *err);
  /* Appends a regular file's content to OUT; fails with EFBIG when it exceeds MAX bytes and
   * with EINVAL when PATH is not a regular file. */
  int (*read)(void *impl, const char *path, size_t max, struct vs_buf *out, struct vs_err *err);
  /* Names in directory PATH except "." and "..": at most MAX of them, *TRUNCATED says if
   * there were more. */
  int (*list)(void *impl, const char *path, size_t max, char ***names, size_t *count,
              bool *truncated, struct vs_err *err);
  void (*close)(void *impl);
  /* Bytes read from the storage under the source so far (may be NULL: not counted). */
  uint64_t (*bytes_read)(void *impl);
};

struct vs_source;

/* A directory on this host (a mounted guest, a container rootfs, a debootstrap tree). */
struct vs_source *vs_source_open_dir(const char *root, struct vs_err *err);
/* Wraps a backend. KIND and BACKEND go into the feature document ("image", "direct"). */
struct vs_source *vs_source_new(const struct vs_source_ops *ops, void *impl, const char *kind,
                                const char *backend, const char *path);
void vs_source_free(struct vs_source *src);
void vs_source_freep(struct vs_source **src);

const char *vs_source_kind(const struct vs_source *src);
const char *vs_source_backend(const struct vs_source *src);
/* Bytes the backend read from its storage so far; 0 when it does not count them. */
uint64_t vs_source_bytes_read(const struct vs_source *src);
const char *vs_source_path(const struct vs_source *src);

/* The canonical guest path PATH leads to; FOLLOW_LAST says whether a symlink in the final
 * component is followed too. ENOENT when a component is missing. */
int vs_source_resolve(struct vs_source *src, const char *path, bool follow_last, char **resolved,
                      struct vs_err *err);
int vs_source_stat(struct vs_source *src, const char *path, bool follow, struct vs_stat *st,
                   struct vs_err *err);
int vs_source_readlink(struct vs_source *src, const char *path, char **target, struct vs_err *err);
/* Reads the regular file PATH leads to into OUT (reset first), at most MAX bytes. */
int vs_source_read(struct vs_source *src, const char *path, size_t max, struct vs_buf *out,
                   struct vs_err *err);
/* Sorted names in the directory PATH leads to (at most VS_SOURCE_MAX_DIR_ENTRIES). */
int vs_source_list(struct vs_source *src, const char *path, char ***names, size_t *count,
                   bool *truncated, struct vs_err *err);
/* Expands a glob (fnmatch per component, '*' does not match a leading '.') to the existing
 * guest paths it names, sorted, at most VS_SOURCE_MAX_GLOB. A pattern without wildcards
 * yields itself when it exists. */
int vs_source_glob(struct vs_source *src, const char *pattern, char ***paths, size_t *count,
                   bool *truncated, struct vs_err *err);

/* Notes a backend makes while opening a source (a file system it could not read, a journal
 * that needs recovery); extraction copies them into the document's skipped list. */
void vs_source_add_note(struct vs_source *src, const char *path, const char *fmt, ...)
    VS_PRINTF(3, 4);
bool vs_source_note(const struct vs_source *src, size_t i, const char **path, const char **reason);

/* Packages a backend learned some other way (libguestfs lists them for package formats we do
 * not parse: pacman, apk, ...); extraction adds them as pkg: settings when the tree itself
 * yields none. FORMAT names the package format. */
void vs_source_add_package(struct vs_source *src, const char *name, const char *version,
                           const char *format);
bool vs_source_package(const struct vs_source *src, size_t i, const char **name,
                       const char **version, const char **format);

/* A directory on this host that a backend filled (a staging copy of a guest's files): the
 * document says KIND, BACKEND and SHOWN_PATH, and with REMOVE_ON_CLOSE the directory is
 * deleted when the source is freed. */
struct vs_source *vs_source_open_staged(const char *root, const char *kind, const char *backend,
                                        const char *shown_path, bool remove_on_close,
                                        struct vs_err *err);

const char *vs_ftype_name(enum vs_ftype t);

#endif
