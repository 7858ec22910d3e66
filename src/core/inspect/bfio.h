/* bfio.h: a libbfio handle over a region of one of our images, for the libyal readers of the
 * direct path (fs_ntfs.c, fs_xfs.c, lvm.c): they open no file themselves, and read only through
 * it, so backing chains, the backing-file allow-list and the image's read limits keep working.
 *
 * Reads stay inside [OFFSET, OFFSET + SIZE) (a read past its end is short, as at a device's
 * end), and an operation started by vs_bfio_begin may read at most its budget: a looping
 * structure that keeps a library reading ends in an error, OVER_BUDGET set. */
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

/* Reads SIZE bytes at POS (already within the handle's size) into BUF: 0, or -1 when it
 * cannot (libbfio then fails the library's read). */
typedef int vs_bfio_read_fn(void *ctx, uint8_t *buf, size_t size, uint64_t pos);
/* A read-only libbfio handle over SIZE bytes that READ reads, with CTX (which must outlive
 * it and its clones); NULL when libbfio cannot make one. The other readers of the direct path
 * (image_yal.c: an image file and its extents) use it with their own READ. */
libbfio_handle_t *vs_bfio_handle_new(uint64_t size, vs_bfio_read_fn *read, void *ctx);

/* Makes B->handle over [OFFSET, OFFSET + SIZE) of IMG, with BUDGET for the first operation. B
 * must not move while the handle lives. WHAT names the region in a message. */
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
