#include "image_yal.h"
#include "bfio.h"
#include "dl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libbfio.h>
/* Debian's libvhdi was built with a private copy of libbfio and so leaves its libbfio functions
 * out of its header, though it exports them: they take the handles libbfio makes. */
#define HAVE_LIBBFIO 1
#include <libvhdi.h>
#include <libvmdk.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the library may read through our handles to open an image (headers, block tables, a
 * descriptor), and for one read on top of the bytes asked for (tables, bitmaps, compressed
 * grains). */
#define OPEN_READ_BUDGET (64u << 20)
#define READ_BUDGET (16u << 20)
#define MAX_EXTENTS 64
#define MAX_DESCRIPTOR (1u << 20) /* a descriptor file is text of a few hundred bytes */

/* Each opened on first use (dl.h), after libbfio (bfio.h): an image opens only its own. */
/* clang-format off */
#define VHDI_SYMBOLS(X) X(libvhdi_error_free) X(libvhdi_error_sprint) X(libvhdi_file_close)        \
  X(libvhdi_file_free) X(libvhdi_file_get_disk_type) X(libvhdi_file_get_file_type)                \
  X(libvhdi_file_get_media_size) X(libvhdi_file_initialize) X(libvhdi_file_open_file_io_handle)   \
  X(libvhdi_file_read_buffer_at_offset)
#define VMDK_SYMBOLS(X) X(libvmdk_error_free) X(libvmdk_error_sprint)                              \
  X(libvmdk_extent_descriptor_free) X(libvmdk_extent_descriptor_get_type)                         \
  X(libvmdk_extent_descriptor_get_utf8_filename)                                                  \
  X(libvmdk_extent_descriptor_get_utf8_filename_size) X(libvmdk_handle_close)                     \
  X(libvmdk_handle_free) X(libvmdk_handle_get_extent_descriptor) X(libvmdk_handle_get_media_size) \
  X(libvmdk_handle_get_number_of_extents) X(libvmdk_handle_get_parent_content_identifier)         \
  X(libvmdk_handle_initialize) X(libvmdk_handle_open_extent_data_files_file_io_pool)              \
  X(libvmdk_handle_open_file_io_handle) X(libvmdk_handle_read_buffer_at_offset)
/* clang-format on */
VS_DL_LIBRARY(vhdi_lib, VS_SONAME_VHDI, "libvhdi1", VHDI_SYMBOLS);
VS_DL_LIBRARY(vmdk_lib, VS_SONAME_VMDK, "libvmdk1", VMDK_SYMBOLS);

struct yfile {
  struct vs_yal *y;
  int fd;
  bool owns_fd; /* extents' files are ours; the image's own is the caller's */
  uint64_t size;
};

struct vs_yal {
  enum vs_yal_kind kind;
  char *path;
  struct yfile *files; /* [0]: the image itself; then a VMDK's extents */
  size_t n_files;
  uint64_t size, bytes_read;
  uint64_t budget, budget_limit; /* bytes the current operation may still read, and could */
  bool over_budget;
  bool embedded; /* a VMDK sparse extent file holding its own descriptor */
  libbfio_handle_t *top;
  libbfio_pool_t *pool;
  libvhdi_file_t *vhd;
  libvmdk_handle_t *vmdk;
};

const char *vs_yal_kind_name(enum vs_yal_kind kind) {
  return kind == VS_YAL_VHD ? "vhd" : kind == VS_YAL_VHDX ? "vhdx" : "vmdk";
}

const char *vs_yal_format(const struct vs_yal *y) {
  return vs_yal_kind_name(y->kind);
}

static bool read_exact(int fd, void *buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += (size_t)n;
  }
  return true;
}

int vs_yal_probe(int fd, uint64_t file_size) {
  static const char descriptor[] = "# Disk DescriptorFile";
  uint8_t head[32] = {0}, tail[8] = {0};
  if (file_size < sizeof(head) || !read_exact(fd, head, sizeof(head), 0)) return -1;
  if (memcmp(head, "vhdxfile", 8) == 0) return VS_YAL_VHDX;
  if (memcmp(head, "conectix", 8) == 0) return VS_YAL_VHD;
  if (memcmp(head, "KDMV", 4) == 0) return VS_YAL_VMDK;
  if (file_size <= MAX_DESCRIPTOR && memcmp(head, descriptor, sizeof(descriptor) - 1) == 0)
    return VS_YAL_VMDK;
  if (file_size >= 512 && read_exact(fd, tail, sizeof(tail), file_size - 512) &&
      memcmp(tail, "conectix", 8) == 0)
    return VS_YAL_VHD; /* a fixed VHD: the data, then the footer */
  return -1;
}

/* ------------------------------------------------------------------- libbfio callbacks */

/* Reads of one file (the image or an extent): within the current operation's budget. */
static int yfile_read(void *ctx, uint8_t *buf, size_t size, uint64_t pos) {
  struct yfile *f = ctx;
  struct vs_yal *y = f->y;
  if (size > y->budget) {
    y->over_budget = true;
    return -1;
  }
  if (!read_exact(f->fd, buf, size, pos)) return -1;
  y->budget -= size;
  y->bytes_read += size;
  return 0;
}

static libbfio_handle_t *bio_new(struct yfile *f) {
  return vs_bfio_handle_new(f->size, yfile_read, f);
}

/* ------------------------------------------------------------------------------ errors */

/* libvhdi's, libvmdk's and libbfio's errors are all libcerror's (intptr_t): the printer of the
 * library the image opened serves for all three. */

/* Fills ERR with CODE and the message, with the library's reason, and frees E. */
static int fail(struct vs_err *err, struct vs_yal *y, int code, intptr_t **e, const char *what) {
  char why[512] = "";
  bool vmdk = y->kind == VS_YAL_VMDK;
  if (*e && (vmdk ? sym_libvmdk_error_sprint : sym_libvhdi_error_sprint)(*e, why, sizeof(why)) < 0)
    why[0] = '\0';
  (vmdk ? sym_libvmdk_error_free : sym_libvhdi_error_free)(e);
  for (char *p = why; *p; p++) /* libcerror ends lines and joins the chain with newlines */
    if (*p == '\n') *p = *(p + 1) ? ' ' : '\0';
  if (y->over_budget)
    return vs_err_set(err, EFBIG,
                      "%s: %s: %s read more than the %" PRIu64 " MiB allowed for it (a looping "
                      "or oversized table?)",
                      y->path, what, y->kind == VS_YAL_VMDK ? "libvmdk" : "libvhdi",
                      y->budget_limit >> 20);
  return vs_err_set(err, code, "%s: %s%s%s", y->path, what, why[0] ? ": " : "", why);
}

static void begin_op(struct vs_yal *y, uint64_t budget) {
  y->budget = y->budget_limit = budget;
  y->over_budget = false;
}

/* ------------------------------------------------------------------------- VHD, VHDX */

static int open_vhd(struct vs_yal *y, struct vs_err *err) {
  libvhdi_error_t *e = NULL;
  if (sym_libvhdi_file_initialize(&y->vhd, &e) != 1)
    return fail(err, y, ENOMEM, &e, "libvhdi failed to start");
  if (sym_libvhdi_file_open_file_io_handle(y->vhd, y->top, LIBVHDI_OPEN_READ, &e) != 1)
    return fail(err, y, EINVAL, &e, "not a VHD/VHDX image libvhdi reads");
  int type = 0;
  uint32_t disk_type = 0;
  size64_t size = 0;
  if (sym_libvhdi_file_get_file_type(y->vhd, &type, &e) != 1 ||
      sym_libvhdi_file_get_disk_type(y->vhd, &disk_type, &e) != 1 ||
      sym_libvhdi_file_get_media_size(y->vhd, &size, &e) != 1)
    return fail(err, y, EINVAL, &e, "reading the image's header");
  y->kind = type == LIBVHDI_FILE_TYPE_VHDX ? VS_YAL_VHDX : VS_YAL_VHD;
  if (disk_type == LIBVHDI_DISK_TYPE_DIFFERENTIAL)
    return vs_err_set(err, ENOTSUP,
                      "%s: a differencing %s image (its data depends on a parent image); vmscope "
                      "does not read those: read a merged copy (qemu-img convert)",
                      y->path, type == LIBVHDI_FILE_TYPE_VHDX ? "VHDX" : "VHD");
  if (disk_type != LIBVHDI_DISK_TYPE_FIXED && disk_type != LIBVHDI_DISK_TYPE_DYNAMIC)
    return vs_err_set(err, ENOTSUP, "%s: disk type %" PRIu32 "; vmscope reads fixed and dynamic",
                      y->path, disk_type);
  y->size = size;
  return 0;
}

/* ------------------------------------------------------------------------------- VMDK */

/* Opens the file of extent I (NAME, as the descriptor says) after RESOLVE allowed it. */
static int open_extent(struct vs_yal *y, const char *name, vs_yal_resolve_fn *resolve, void *ctx,
                       struct yfile *f, struct vs_err *err) {
  _cleanup_(vs_freep) char *real = resolve(ctx, name, err);
  if (!real) return -1;
  f->y = y;
  f->owns_fd = true;
  f->fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the open */
  struct stat st;
  if (f->fd < 0 || fstat(f->fd, &st) < 0)
    return vs_err_set(err, errno, "%s: extent file %s: %s", y->path, real, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return vs_err_set(err, EINVAL, "%s: extent file %s is not a regular file", y->path, real);
  f->size = (uint64_t)st.st_size;
  return 0;
}

static int open_extents(struct vs_yal *y, vs_yal_resolve_fn *resolve, void *ctx,
                        struct vs_err *err) {
  libvmdk_error_t *e = NULL;
  int n = 0;
  if (sym_libvmdk_handle_get_number_of_extents(y->vmdk, &n, &e) != 1)
    return fail(err, y, EINVAL, &e, "reading the descriptor's extents");
  if (n < 1 || n > MAX_EXTENTS)
    return vs_err_set(err, EINVAL, "%s: %d extents; vmscope reads 1 to %d", y->path, n,
                      MAX_EXTENTS);
  /* A sparse extent file ("KDMV") with its descriptor embedded is the whole disk, as qemu reads
   * it: the extent name in that descriptor is the file's name when it was made, and a copy or
   * a renamed file keeps it, so following it would read another file (or none). */
  uint8_t magic[4] = {0};
  y->embedded =
      read_exact(y->files[0].fd, magic, sizeof(magic), 0) && memcmp(magic, "KDMV", 4) == 0;
  if (y->embedded && n != 1)
    return vs_err_set(err, EINVAL,
                      "%s: a sparse VMDK file whose embedded descriptor lists %d extents (one "
                      "file is one extent)",
                      y->path, n);
  y->files = vs_xrealloc(y->files, (size_t)(n + 1) * sizeof(*y->files));
  libbfio_error_t *be = NULL;
  if (vs_bfio_pool_new(&y->pool, &be) != 1)
    return fail(err, y, ENOMEM, &be, "libbfio failed to start a pool");
  for (int i = 0; i < n; i++) {
    libvmdk_extent_descriptor_t *d = NULL;
    int type = 0;
    size_t name_size = 0;
    if (sym_libvmdk_handle_get_extent_descriptor(y->vmdk, i, &d, &e) != 1 ||
        sym_libvmdk_extent_descriptor_get_type(d, &type, &e) != 1 ||
        sym_libvmdk_extent_descriptor_get_utf8_filename_size(d, &name_size, &e) != 1 ||
        name_size < 2 || name_size > PATH_MAX) {
      sym_libvmdk_extent_descriptor_free(&d, NULL);
      return fail(err, y, EINVAL, &e, "reading an extent's name and type");
    }
    if (type != LIBVMDK_EXTENT_TYPE_FLAT && type != LIBVMDK_EXTENT_TYPE_SPARSE &&
        type != LIBVMDK_EXTENT_TYPE_VMFS_FLAT && type != LIBVMDK_EXTENT_TYPE_VMFS_SPARSE) {
      sym_libvmdk_extent_descriptor_free(&d, NULL);
      return vs_err_set(err, ENOTSUP,
                        "%s: extent %d is of type %d (a device or zeros); vmscope reads flat "
                        "and sparse extents in files",
                        y->path, i + 1, type);
    }
    _cleanup_(vs_freep) char *name = vs_xmalloc(name_size);
    int rc = sym_libvmdk_extent_descriptor_get_utf8_filename(d, (uint8_t *)name, name_size, &e);
    sym_libvmdk_extent_descriptor_free(&d, NULL);
    if (rc != 1) return fail(err, y, EINVAL, &e, "reading an extent's name");
    struct yfile *f = &y->files[y->n_files];
    *f = (struct yfile){.fd = -1};
    y->n_files++;
    if (y->embedded) /* the file itself, whatever name its descriptor kept */
      *f = (struct yfile){.y = y, .fd = y->files[0].fd, .size = y->files[0].size};
    else if (open_extent(y, name, resolve, ctx, f, err) < 0)
      return -1;
    libbfio_handle_t *h = bio_new(f);
    if (!h || vs_bfio_pool_append(y->pool, h, &be) != 1) {
      vs_bfio_handle_free(&h);
      return fail(err, y, ENOMEM, &be, "adding an extent to the libbfio pool");
    }
  }
  if (sym_libvmdk_handle_open_extent_data_files_file_io_pool(y->vmdk, y->pool, &e) != 1)
    return fail(err, y, EINVAL, &e, "reading the extents");
  return 0;
}

static int open_vmdk(struct vs_yal *y, vs_yal_resolve_fn *resolve, void *ctx, struct vs_err *err) {
  libvmdk_error_t *e = NULL;
  if (sym_libvmdk_handle_initialize(&y->vmdk, &e) != 1)
    return fail(err, y, ENOMEM, &e, "libvmdk failed to start");
  if (sym_libvmdk_handle_open_file_io_handle(y->vmdk, y->top, LIBVMDK_OPEN_READ, &e) != 1)
    return fail(err, y, EINVAL, &e, "not a VMDK image libvmdk reads");
  uint32_t parent_cid = 0;
  int has_parent = sym_libvmdk_handle_get_parent_content_identifier(y->vmdk, &parent_cid, &e);
  if (has_parent < 0) return fail(err, y, EINVAL, &e, "reading the descriptor");
  if (has_parent == 1 && parent_cid != UINT32_MAX)
    return vs_err_set(err, ENOTSUP,
                      "%s: a VMDK with a parent (parentCID %08" PRIx32 "); vmscope does not read "
                      "differencing images: read a merged copy (qemu-img convert)",
                      y->path, parent_cid);
  if (open_extents(y, resolve, ctx, err) < 0) return -1;
  size64_t size = 0;
  if (sym_libvmdk_handle_get_media_size(y->vmdk, &size, &e) != 1)
    return fail(err, y, EINVAL, &e, "reading the disk's size");
  y->size = size;
  return 0;
}

/* --------------------------------------------------------------------------- the image */

void vs_yal_close(struct vs_yal *y) {
  if (!y) return;
  if (y->vhd) {
    sym_libvhdi_file_close(y->vhd, NULL);
    sym_libvhdi_file_free(&y->vhd, NULL);
  }
  if (y->vmdk) {
    sym_libvmdk_handle_close(y->vmdk, NULL);
    sym_libvmdk_handle_free(&y->vmdk, NULL);
  }
  vs_bfio_pool_free(&y->pool);
  vs_bfio_handle_free(&y->top);
  for (size_t i = 0; i < y->n_files; i++)
    if (y->files[i].owns_fd && y->files[i].fd >= 0) close(y->files[i].fd);
  free(y->files);
  free(y->path);
  free(y);
}

static void yal_closep(struct vs_yal **y) {
  vs_yal_close(*y);
}

struct vs_yal *vs_yal_open(enum vs_yal_kind kind, int fd, uint64_t file_size, const char *path,
                           vs_yal_resolve_fn *resolve, void *ctx, struct vs_err *err) {
  _cleanup_(yal_closep) struct vs_yal *y = vs_xcalloc(1, sizeof(*y));
  y->kind = kind;
  y->path = vs_xstrdup(path);
  y->files = vs_xcalloc(1, sizeof(*y->files));
  y->files[0] = (struct yfile){.y = y, .fd = fd, .size = file_size};
  y->n_files = 1;
  /* libbfio before the reader (bfio.h); the reader before any of its calls, fail()'s too. */
  if (vs_bfio_load(err) < 0 || vs_dl_load(kind == VS_YAL_VMDK ? &vmdk_lib : &vhdi_lib, err) < 0) {
    vs_err_prefix(err, "%s", path);
    return NULL;
  }
  y->top = bio_new(&y->files[0]);
  if (!y->top) {
    vs_err_set(err, ENOMEM, "%s: libbfio failed to start", path);
    return NULL;
  }
  begin_op(y, OPEN_READ_BUDGET);
  int rc = kind == VS_YAL_VMDK ? open_vmdk(y, resolve, ctx, err) : open_vhd(y, err);
  return rc < 0 ? NULL : vs_steal(&y);
}

uint64_t vs_yal_size(const struct vs_yal *y) {
  return y->size;
}

uint64_t vs_yal_bytes_read(const struct vs_yal *y) {
  return y->bytes_read;
}

int vs_yal_pread(struct vs_yal *y, void *buf, size_t len, uint64_t off, struct vs_err *err) {
  size_t done = 0;
  while (done < len) {
    size_t n = len - done > (1u << 30) ? (1u << 30) : len - done;
    begin_op(y, READ_BUDGET + 4 * (uint64_t)n);
    intptr_t *e = NULL;
    uint8_t *at = (uint8_t *)buf + done;
    ssize_t got =
        y->vhd
            ? sym_libvhdi_file_read_buffer_at_offset(y->vhd, at, n, (off64_t)(off + done), &e)
            : sym_libvmdk_handle_read_buffer_at_offset(y->vmdk, at, n, (off64_t)(off + done), &e);
    if (got <= 0) {
      char what[96];
      snprintf(what, sizeof(what), "reading %zu bytes at %" PRIu64 "%s", n, off + done,
               got == 0 ? ": nothing read" : "");
      return fail(err, y, EIO, &e, what);
    }
    done += (size_t)got;
  }
  return 0;
}
