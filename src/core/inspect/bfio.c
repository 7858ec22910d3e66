/* bfio.c: libbfio's callbacks over our own reads, and a region of one of our images (bfio.h).
 * libbfio is opened on first use (dl.h): libvhdi's copy of it (bfio.h says why). */
#include "bfio.h"

#include "dl.h"

#include <errno.h>
#include <libvhdi.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The libbfio functions vmscope calls, from libvhdi (bfio.h); image_yal.c opens libvhdi again
 * for its own functions, when it reads a VHD. libvhdi's copy has no libbfio_error_free: an
 * error of that copy is its libcerror's, which libvhdi_error_free frees. */
/* clang-format off */
#define BFIO_SYMBOLS(X) X(libbfio_handle_initialize) X(libbfio_handle_free) X(libvhdi_error_free) \
  X(libbfio_pool_initialize) X(libbfio_pool_append_handle) X(libbfio_pool_free)
/* clang-format on */
VS_DL_LIBRARY(bfio_lib, VS_SONAME_VHDI, "libvhdi1", BFIO_SYMBOLS);

int vs_bfio_load(struct vs_err *err) {
  if (vs_dl_load(&bfio_lib, err) < 0)
    return vs_err_prefix(err, "libbfio (libvhdi's copy, which every libyal reader reads through)");
  return 0;
}

/* libbfio's io handle: a position in what READ reads (libbfio may clone it; clones share CTX). */
struct bio {
  vs_bfio_read_fn *read;
  void *ctx;
  uint64_t size, pos;
  bool is_open;
};

static int bio_free(intptr_t **io, libbfio_error_t **error) {
  (void)error;
  free(*io);
  *io = NULL;
  return 1;
}

static int bio_clone(intptr_t **dst, intptr_t *src, libbfio_error_t **error) {
  (void)error;
  if (!dst || !src) return -1;
  struct bio *c = vs_xcalloc(1, sizeof(*c));
  const struct bio *o = (const struct bio *)src;
  *c = (struct bio){.read = o->read, .ctx = o->ctx, .size = o->size};
  *dst = (intptr_t *)c;
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
  struct bio *o = (struct bio *)io;
  if (o->pos >= o->size) return 0;
  if (size > o->size - o->pos) size = (size_t)(o->size - o->pos);
  if (size > SSIZE_MAX) size = SSIZE_MAX;
  if (o->read(o->ctx, buf, size, o->pos) < 0) return -1;
  o->pos += size;
  return (ssize_t)size;
}

static ssize_t bio_write(intptr_t *io, const uint8_t *buf, size_t size, libbfio_error_t **error) {
  (void)io, (void)buf, (void)size, (void)error;
  return -1;
}

static off64_t bio_seek(intptr_t *io, off64_t offset, int whence, libbfio_error_t **error) {
  (void)error;
  struct bio *o = (struct bio *)io;
  int64_t base = whence == SEEK_SET   ? 0
                 : whence == SEEK_CUR ? (int64_t)o->pos
                 : whence == SEEK_END ? (int64_t)o->size
                                      : -1;
  if (base < 0 || offset < -base || offset > INT64_MAX - base) return -1;
  o->pos = (uint64_t)(base + offset);
  return (off64_t)o->pos;
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
  *size = ((struct bio *)io)->size;
  return 1;
}

libbfio_handle_t *vs_bfio_handle_new(uint64_t size, vs_bfio_read_fn *read, void *ctx) {
  if (vs_bfio_load(NULL) < 0) return NULL;
  struct bio *o = vs_xcalloc(1, sizeof(*o));
  *o = (struct bio){.read = read, .ctx = ctx, .size = size};
  libbfio_handle_t *h = NULL;
  libbfio_error_t *be = NULL;
  if (sym_libbfio_handle_initialize(&h, (intptr_t *)o, bio_free, bio_clone, bio_open, bio_close,
                                    bio_read, bio_write, bio_seek, bio_exists, bio_is_open,
                                    bio_get_size, LIBBFIO_FLAG_IO_HANDLE_MANAGED, &be) != 1) {
    sym_libvhdi_error_free(&be);
    free(o);
    return NULL;
  }
  return h;
}

void vs_bfio_handle_free(libbfio_handle_t **h) {
  if (*h) sym_libbfio_handle_free(h, NULL); /* a handle was made: libbfio is loaded */
  *h = NULL;
}

int vs_bfio_pool_new(libbfio_pool_t **pool, libbfio_error_t **e) {
  return sym_libbfio_pool_initialize(pool, 0, LIBBFIO_POOL_UNLIMITED_NUMBER_OF_OPEN_HANDLES, e);
}

int vs_bfio_pool_append(libbfio_pool_t *pool, libbfio_handle_t *h, libbfio_error_t **e) {
  int entry = 0;
  return sym_libbfio_pool_append_handle(pool, &entry, h, LIBBFIO_OPEN_READ, e);
}

void vs_bfio_pool_free(libbfio_pool_t **pool) {
  if (*pool) sym_libbfio_pool_free(pool, NULL);
  *pool = NULL;
}

/* Reads of a region: within the current operation's budget, through the image reader. */
static int region_read(void *ctx, uint8_t *buf, size_t size, uint64_t pos) {
  struct vs_bfio *b = ctx;
  if (size > b->budget) {
    b->over_budget = true;
    return -1;
  }
  struct vs_err err = {0};
  if (vs_image_pread(b->img, buf, size, b->offset + pos, &err) < 0) {
    vs_log(VS_LOG_WARNING, "%s", vs_err_msg(&err));
    vs_err_clear(&err);
    return -1;
  }
  b->budget -= size;
  return 0;
}

int vs_bfio_open(struct vs_bfio *b, struct vs_image *img, uint64_t offset, uint64_t size,
                 uint64_t budget, const char *what, struct vs_err *err) {
  *b = (struct vs_bfio){.img = img, .offset = offset, .size = size, .budget = budget};
  if (vs_bfio_load(err) < 0) return -1;
  b->handle = vs_bfio_handle_new(size, region_read, b);
  if (!b->handle) return vs_err_set(err, ENOMEM, "%s: libbfio cannot make a handle", what);
  return 0;
}

void vs_bfio_begin(struct vs_bfio *b, uint64_t budget) {
  b->budget = budget;
  b->over_budget = false;
}

void vs_bfio_close(struct vs_bfio *b) {
  vs_bfio_handle_free(&b->handle);
}

int vs_bfio_fail(struct vs_err *err, const struct vs_bfio *b, const char *lib, unsigned budget_mib,
                 int code, const char *what, char *why) {
  for (char *p = why; *p; p++) /* libcerror ends lines and joins the chain with newlines */
    if (*p == '\n') *p = *(p + 1) ? ' ' : '\0';
  if (b && b->over_budget)
    return vs_err_set(err, EFBIG, "%s: %s read more than %u MiB for it (a loop in its structures?)",
                      what, lib, budget_mib);
  return vs_err_set(err, code, "%s%s%s", what, why[0] ? ": " : "", why);
}
