/* fs_yal.h: what fs_ntfs.c and fs_xfs.c share. libyal's file-system libraries give a file
 * entry the same calls under their own prefixes (libfsntfs_file_entry_*, libfsxfs_file_entry_*,
 * on intptr_t handles, errors libcerror's); through a table of one library's calls, these read
 * a file's bytes, list a directory and read a symlink's target, each bounded as fs.h promises,
 * with the library's reason in every error and its read budget said when it runs out. */
#ifndef VS_FS_YAL_H
#define VS_FS_YAL_H

#include "bfio.h"
#include "fs.h"

#include <stdint.h>
#include <sys/types.h>

struct vs_yal_fs {
  const char *lib;     /* "libfsntfs", in messages */
  unsigned budget_mib; /* one operation's read budget */
  int (*error_sprint)(intptr_t *e, char *s, size_t size);
  void (*error_free)(intptr_t **e);
  int (*entry_free)(intptr_t **fe, intptr_t **e);
  int (*get_size)(intptr_t *fe, uint64_t *size, intptr_t **e);
  ssize_t (*read_at)(intptr_t *fe, void *buf, size_t size, off64_t off, intptr_t **e);
  int (*count)(intptr_t *fe, int *n, intptr_t **e);
  int (*sub)(intptr_t *fe, int i, intptr_t **sub, intptr_t **e);
  int (*name)(intptr_t *fe, uint8_t *s, size_t size, intptr_t **e);
  int (*link_size)(intptr_t *fe, size_t *size, intptr_t **e);
  int (*link_target)(intptr_t *fe, uint8_t *s, size_t size, intptr_t **e);
  bool (*hidden)(intptr_t *fe); /* entries a listing leaves out (NTFS's metadata files), or NULL */
};

/* Fills ERR with CODE and what FMT says, with the library's reason from *E (freed), or says
 * that the operation's budget on IO ran out. Returns -1. */
int vs_yal_fs_fail(const struct vs_yal_fs *y, struct vs_bfio *io, struct vs_err *err, int code,
                   intptr_t **e, const char *fmt, ...) VS_PRINTF(6, 7);

/* Each takes FE, the entry at PATH of type TYPE that the caller looked up, and frees it. */
int vs_yal_fs_read(const struct vs_yal_fs *y, struct vs_bfio *io, intptr_t *fe, enum vs_ftype type,
                   const char *path, size_t max, struct vs_buf *out, struct vs_err *err);
int vs_yal_fs_list(const struct vs_yal_fs *y, struct vs_bfio *io, intptr_t *fe, enum vs_ftype type,
                   const char *path, size_t max, char ***names, size_t *count, bool *truncated,
                   struct vs_err *err);
/* The target as the volume holds it (at most VS_SOURCE_MAX_PATH bytes). */
int vs_yal_fs_readlink(const struct vs_yal_fs *y, struct vs_bfio *io, intptr_t *fe,
                       enum vs_ftype type, const char *path, char **target, struct vs_err *err);

#endif
