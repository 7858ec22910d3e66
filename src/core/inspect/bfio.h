/* bfio.h: a libbfio handle over a region of one of our images, for the libyal readers of the
 * direct path (fs_ntfs.c, fs_xfs.c, lvm.c): they open no file themselves, and read only through
 * it, so backing chains, the backing-file allow-list and the image's read limits keep working.
 *
 * Reads stay inside [OFFSET, OFFSET + SIZE) (a read past its end is short, as at a device's
 * end), and an operation started by vs_bfio_begin may read at most its budget: a looping
 * structure that keeps a library reading ends in an error, OVER_BUDGET set.
 *
 * libbfio is opened on first use (dl.h), and called only here: the other modules call it
 * through these functions, and each libyal reader's open calls vs_bfio_load before it opens its
 * own library. One copy of libbfio must serve the process, as the handles we make are read by
 * the readers' own libbfio calls. Debian's libvhdi and libvslvm each carry and export a private
 * copy, and every reader calls libbfio through the PLT (none is linked -Bsymbolic), so each call
 * goes to the first copy in the loader's global scope that defines the function. libvhdi's copy
 * is the newest, and the only one defining every libbfio function a reader calls (libbfio1's
 * lacks libbfio_handle_read_buffer_at_offset and the pool internals libvhdi calls): so
 * vs_bfio_load opens libvhdi (RTLD_GLOBAL) before any reader and takes libbfio's functions from
 * it, and that copy serves every reader whatever image comes first, as it did when they were
 * linked (libvhdi came first in the link order). t/unit/dl.c checks it. */
#ifndef VS_BFIO_H
#define VS_BFIO_H

#include "image.h"

#include <libbfio.h>

struct vs_bfio {
  struct vs_image *img;
  uint64_t offset, size; /* the region of the disk */
  uint64_t budget;       /* bytes the current operation may still read */
  bool over_budget;
  libbfio_handle_t *handle;
};

/* Opens libbfio's copy that serves the process (libvhdi's, above): 0, or -1 and ERR naming the
 * library and its package. */
int vs_bfio_load(struct vs_err *err);

/* Reads SIZE bytes at POS (already within the handle's size) into BUF: 0, or -1 when it
 * cannot (libbfio then fails the library's read). */
typedef int vs_bfio_read_fn(void *ctx, uint8_t *buf, size_t size, uint64_t pos);
/* A read-only libbfio handle over SIZE bytes that READ reads, with CTX (which must outlive
 * it and its clones); NULL when libbfio cannot make one, or is not loaded (vs_bfio_load). The
 * other readers of the direct path (image_yal.c: an image file and its extents) use it with
 * their own READ. */
libbfio_handle_t *vs_bfio_handle_new(uint64_t size, vs_bfio_read_fn *read, void *ctx);
/* Frees *H (nothing when it is NULL) and sets it to NULL. */
void vs_bfio_handle_free(libbfio_handle_t **h);

/* A pool of handles (a VMDK's extents), as libbfio's own calls: 1 on success, else E is set.
 * After vs_bfio_load. The pool takes the handles appended to it. */
int vs_bfio_pool_new(libbfio_pool_t **pool, libbfio_error_t **e);
int vs_bfio_pool_append(libbfio_pool_t *pool, libbfio_handle_t *h, libbfio_error_t **e);
/* Frees *POOL and its handles (nothing when it is NULL). */
void vs_bfio_pool_free(libbfio_pool_t **pool);

/* Makes B->handle over [OFFSET, OFFSET + SIZE) of IMG, with BUDGET for the first operation
 * (loading libbfio first). B must not move while the handle lives. WHAT names the region in a
 * message. */
int vs_bfio_open(struct vs_bfio *b, struct vs_image *img, uint64_t offset, uint64_t size,
                 uint64_t budget, const char *what, struct vs_err *err);
/* Starts an operation that may read BUDGET bytes. */
void vs_bfio_begin(struct vs_bfio *b, uint64_t budget);
/* Frees the handle (after the library that used it let go of it); B may be zeroed. */
void vs_bfio_close(struct vs_bfio *b);

/* Fills ERR with CODE and WHAT, followed by WHY (a libyal library's error text, its lines
 * joined), or, when B's budget ran out, says so: LIB read more than BUDGET_MIB for it. */
int vs_bfio_fail(struct vs_err *err, const struct vs_bfio *b, const char *lib, unsigned budget_mib,
                 int code, const char *what, char *why);

#endif
