#include "image.h"
#include "image_yal.h"

#include "crypto.h"
#include "dl.h"

#include <blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h> /* memfd_create, mmap */
#include <sys/stat.h>
#include <sys/sysmacros.h> /* major, minor */
#include <sys/uio.h>       /* preadv2 */
#include <unistd.h>
#include <zlib.h>
#include <libnbd.h>
#include <zstd.h>

/* libblkid, zlib and zstd are opened on first use (dl.h): by the first partition table or file
 * system probed, and the first compressed cluster of each kind. A patch set's compare needs
 * none of them, and each costs a command's start-up about 1 ms from a cold page cache. */
/* clang-format off */
#define BLKID_SYMBOLS(X) X(blkid_do_safeprobe) X(blkid_free_probe) X(blkid_new_probe)                \
  X(blkid_partition_get_partno) X(blkid_partition_get_size) X(blkid_partition_get_start)          \
  X(blkid_partition_get_uuid) X(blkid_partition_is_extended) X(blkid_partlist_get_partition)      \
  X(blkid_partlist_numof_partitions) X(blkid_probe_enable_partitions)                            \
  X(blkid_probe_enable_superblocks) X(blkid_probe_get_partitions) X(blkid_probe_lookup_value)     \
  X(blkid_probe_set_device) X(blkid_probe_set_partitions_flags) X(blkid_probe_set_superblocks_flags)
#define ZLIB_SYMBOLS(X) X(inflateInit2_) X(inflate) X(inflateEnd)
#define ZSTD_SYMBOLS(X) X(ZSTD_createDCtx) X(ZSTD_decompressStream) X(ZSTD_freeDCtx)                \
  X(ZSTD_getErrorName) X(ZSTD_isError)
/* clang-format on */
VS_DL_LIBRARY(blkid_lib, VS_SONAME_BLKID, "libblkid1", BLKID_SYMBOLS);
VS_DL_LIBRARY(zlib_lib, VS_SONAME_Z, "zlib1g", ZLIB_SYMBOLS);
VS_DL_LIBRARY(zstd_lib, VS_SONAME_ZSTD, "libzstd1", ZSTD_SYMBOLS);

/* libnbd is opened with the first NBD export (dl.h): reading image files does not load it. */
/* clang-format off */
#define NBD_SYMBOLS(X) X(nbd_add_meta_context) X(nbd_block_status) X(nbd_can_meta_context)        \
  X(nbd_close) X(nbd_connect_uri) X(nbd_create) X(nbd_get_errno) X(nbd_get_error) X(nbd_get_size) \
  X(nbd_pread) X(nbd_shutdown)
/* clang-format on */
VS_DL_LIBRARY(nbd_lib, VS_SONAME_NBD, "libnbd0", NBD_SYMBOLS);

#define QCOW_MAGIC 0x514649fbu
#define QCOW_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW_OFLAG_ZERO 1ULL
#define OFFSET_MASK 0x00fffffffffffe00ULL
#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTL2 (1ULL << 4)
#define INCOMPAT_KNOWN UINT64_C(0x1f)
#define EXT_END 0x00000000u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_DATA_FILE 0x44415441u
#define MAX_L1_BYTES (32u << 20)
#define L2_CACHE 16

struct l2_slot {
  uint64_t offset; /* host offset of the table; 0 = empty slot */
  uint8_t *data;
};

struct vs_image {
  char *path; /* for messages, sanitized */
  int fd;
  struct nbd_handle *nbd; /* an NBD export instead of a file (a libvirt backup job) */
  struct vs_yal *yal;     /* a VHD, VHDX or VMDK image, read by libvhdi or libvmdk */
  bool nbd_extents;       /* the server answers base:allocation block status */
  uint64_t file_size, size;
  bool is_qcow2;
  unsigned cluster_bits;
  uint64_t cluster_size;
  bool extended_l2;
  unsigned entry_bytes; /* 8, or 16 with extended L2 */
  uint64_t l2_entries;
  uint64_t *l1;
  uint32_t l1_size;
  int compression; /* 0 deflate, 1 zstd */
  struct vs_image *backing;
  struct l2_slot l2[L2_CACHE];
  unsigned l2_next;
  uint8_t *zdata;      /* the last decompressed cluster */
  uint64_t zentry;     /* its L2 entry, 0 when none */
  uint8_t *zinput;     /* compressed bytes */
  uint64_t bytes_read; /* from the file or the export: vs_image_bytes_read */
  uint8_t *map;        /* a window of the file (vs_image_map_stored), or NULL */
  uint64_t map_off, map_len;
  uint64_t asked_end;  /* the end of the range of the file last asked for ahead (ask_ahead) */
  uint64_t read_ahead; /* the file's read-ahead window (ask_ahead), once found */
  bool read_ahead_found;
};

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t be64(const uint8_t *p) {
  return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static char *printable(const char *s, size_t len) {
  struct vs_buf b = {0};
  vs_buf_add_sanitized(&b, s, len);
  return vs_buf_steal(&b);
}

/* pread that fails on a short read: every range we read was checked to lie in the file. */
static int read_at(struct vs_image *img, void *buf, size_t len, uint64_t off, const char *what,
                   struct vs_err *err) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(img->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return vs_err_set(err, errno, "%s: reading %s at %" PRIu64 ": %s", img->path, what,
                        off + done, strerror(errno));
    }
    if (n == 0)
      return vs_err_set(err, EIO, "%s: %s at %" PRIu64 " (%zu bytes) ends past the end of the file",
                        img->path, what, off, len);
    done += (size_t)n;
    img->bytes_read += (uint64_t)n;
  }
  return 0;
}

void vs_image_close(struct vs_image *img) {
  if (!img) return;
  vs_image_close(img->backing);
  vs_yal_close(img->yal);
  if (img->map) munmap(img->map, img->map_len);
  if (img->fd >= 0) close(img->fd);
  if (img->nbd) {
    sym_nbd_shutdown(img->nbd, 0);
    sym_nbd_close(img->nbd);
  }
  for (int i = 0; i < L2_CACHE; i++)
    free(img->l2[i].data);
  free(img->l1);
  free(img->zdata);
  free(img->zinput);
  free(img->path);
  free(img);
}

void vs_image_closep(struct vs_image **img) {
  vs_image_close(*img);
}

const char *vs_image_path(const struct vs_image *img) {
  return img->path;
}
const char *vs_image_format(const struct vs_image *img) {
  return img->nbd ? "nbd" : img->yal ? vs_yal_format(img->yal) : img->is_qcow2 ? "qcow2" : "raw";
}
uint64_t vs_image_size(const struct vs_image *img) {
  return img->size;
}
const struct vs_image *vs_image_backing(const struct vs_image *img) {
  return img->backing;
}
uint64_t vs_image_cluster_size(const struct vs_image *img) {
  return img->is_qcow2 ? img->cluster_size : 0;
}

/* ----------------------------------------------------------------------------- opening */

struct chain {
  dev_t dev[VS_IMAGE_MAX_CHAIN];
  ino_t ino[VS_IMAGE_MAX_CHAIN];
  int depth;
  const struct vs_image_opts *opts;
  char **allowed; /* realpath'd directories */
  size_t n_allowed;
};

static struct vs_image *open_chain(const char *path, const char *format, struct chain *ch,
                                   struct vs_err *err);

/* -1 with ERR filled when the file ST (PATH) is the caller's output (vs_image_opts.output). */
static int is_output(const struct chain *ch, const struct stat *st, const char *path,
                     struct vs_err *err) {
  const struct stat *out = ch->opts ? ch->opts->output : NULL;
  if (!out || out->st_dev != st->st_dev || out->st_ino != st->st_ino) return 0;
  _cleanup_(vs_freep) char *msg = vs_msg_output_is_input(path);
  return vs_err_set(err, EINVAL, "%s", msg);
}

static bool is_allowed(const struct chain *ch, const char *real) {
  for (size_t i = 0; i < ch->n_allowed; i++) {
    size_t n = strlen(ch->allowed[i]);
    if (strncmp(real, ch->allowed[i], n) == 0 &&
        (real[n] == '/' || (n == 1 && ch->allowed[i][0] == '/')))
      return true;
  }
  return false;
}

/* The real path of the file NAME (a backing file, or a VMDK's extent: WHAT) that the image
 * at PATH names, relative to its directory, when it lies in an allowed directory. */
static char *resolve_allowed(const char *path, const char *name, const char *what,
                             const struct chain *ch, struct vs_err *err) {
  char *full;
  if (name[0] == '/') {
    full = vs_xstrdup(name);
  } else {
    char *copy = vs_xstrdup(path);
    full = vs_xasprintf("%s/%s", dirname(copy), name);
    free(copy);
  }
  char *real = realpath(full, NULL);
  if (!real) {
    int e = errno;
    char *shown = printable(full, strlen(full));
    free(full);
    vs_err_set(err, e, "%s: %s %s: %s", path, what, shown, strerror(e));
    free(shown);
    return NULL;
  }
  free(full);
  if (!is_allowed(ch, real)) {
    struct vs_buf dirs = {0};
    for (size_t i = 0; i < ch->n_allowed; i++)
      vs_buf_addf(&dirs, "%s%s", i ? ", " : "", ch->allowed[i]);
    char *shown = printable(name, strlen(name));
    vs_err_set(err, EPERM,
               "%s: %s \"%s\" resolves to %s, outside the directories backing files may lie "
               "in (%s)",
               path, what, shown, real, dirs.data ? dirs.data : "none");
    free(shown);
    vs_buf_free(&dirs);
    free(real);
    return NULL;
  }
  return real;
}

static int open_backing(struct vs_image *img, const char *name, const char *format,
                        struct chain *ch, struct vs_err *err) {
  char *real = resolve_allowed(img->path, name, "backing file", ch, err);
  if (!real) return -1;
  img->backing = open_chain(real, format, ch, err);
  free(real);
  return img->backing ? 0 : -1;
}

/* A VMDK descriptor's extents obey the backing files' allow-list. */
struct extent_ctx {
  const char *path;
  const struct chain *ch;
};

static char *resolve_extent(void *ctx, const char *name, struct vs_err *err) {
  const struct extent_ctx *x = ctx;
  char *real = resolve_allowed(x->path, name, "extent file", x->ch, err);
  struct stat st;
  if (real && stat(real, &st) == 0 && is_output(x->ch, &st, real, err) < 0) {
    free(real);
    return NULL;
  }
  return real;
}

static int parse_extensions(struct vs_image *img, const uint8_t *c0, size_t c0_len, size_t start,
                            char **backing_format, struct vs_err *err) {
  size_t off = start;
  for (int guard = 0; guard < 1024 && off + 8 <= c0_len; guard++) {
    uint32_t type = be32(c0 + off), len = be32(c0 + off + 4);
    if (type == EXT_END) return 0;
    if (len > c0_len - off - 8)
      return vs_err_set(err, EINVAL,
                        "%s: header extension 0x%08x at %zu runs past the first cluster", img->path,
                        type, off);
    if (type == EXT_BACKING_FORMAT) {
      free(*backing_format);
      *backing_format = vs_xstrndup((const char *)c0 + off + 8, len);
    } else if (type == EXT_DATA_FILE) {
      return vs_err_set(err, ENOTSUP, "%s: uses an external data file; vmscope does not read those",
                        img->path);
    }
    off += 8 + (((size_t)len + 7) & ~(size_t)7);
  }
  return 0;
}

/* The fields of a qcow2 header that matter once the image is open are in IMG; these only
 * while opening it. */
struct qcow2_header {
  uint32_t version;
  uint64_t backing_off;
  uint32_t backing_len;
  uint64_t l1_off;
  uint64_t incompat;
  uint32_t header_len; /* where the header extensions start */
};

/* Reads the header's fixed fields and refuses versions, cluster sizes and encryption we do
 * not read; leaves the feature bits to check_features. */
static int read_header(struct vs_image *img, uint8_t h[static 112], struct qcow2_header *hd,
                       struct vs_err *err) {
  size_t hlen = img->file_size < 112 ? (size_t)img->file_size : 112;
  if (hlen < 72)
    return vs_err_set(err, EINVAL, "%s: %" PRIu64 " bytes, too short for a qcow2 header", img->path,
                      img->file_size);
  if (read_at(img, h, hlen, 0, "the qcow2 header", err) < 0) return -1;
  *hd = (struct qcow2_header){.version = be32(h + 4), .header_len = 72};
  if (hd->version != 2 && hd->version != 3)
    return vs_err_set(err, ENOTSUP, "%s: qcow2 version %u; vmscope reads versions 2 and 3",
                      img->path, hd->version);
  hd->backing_off = be64(h + 8);
  hd->backing_len = be32(h + 16);
  img->cluster_bits = be32(h + 20);
  img->size = be64(h + 24);
  uint32_t crypt = be32(h + 32);
  img->l1_size = be32(h + 36);
  hd->l1_off = be64(h + 40);
  if (img->cluster_bits < 9 || img->cluster_bits > 21)
    return vs_err_set(err, EINVAL, "%s: cluster_bits %u outside 9..21", img->path,
                      img->cluster_bits);
  img->cluster_size = 1ULL << img->cluster_bits;
  if (crypt != 0)
    return vs_err_set(err, ENOTSUP, "%s: encrypted (%s); vmscope does not read encrypted images",
                      img->path,
                      crypt == 1   ? "AES"
                      : crypt == 2 ? "LUKS"
                                   : "unknown method");
  if (hd->version == 3) {
    if (hlen < 104)
      return vs_err_set(err, EINVAL, "%s: too short for a qcow2 v3 header", img->path);
    hd->incompat = be64(h + 72);
    hd->header_len = be32(h + 100);
    if (hd->header_len < 104 || hd->header_len > img->cluster_size)
      return vs_err_set(err, EINVAL, "%s: header length %u is not within 104..%" PRIu64, img->path,
                        hd->header_len, img->cluster_size);
  }
  return 0;
}

/* The incompatible feature bits: refuses those we do not know or read, takes the compression
 * type and the L2 entry size from the others. */
static int check_features(struct vs_image *img, const uint8_t h[static 112],
                          const struct qcow2_header *hd, struct vs_err *err) {
  uint64_t incompat = hd->incompat;
  if (incompat & ~INCOMPAT_KNOWN)
    return vs_err_set(err, ENOTSUP,
                      "%s: unknown incompatible feature bits 0x%" PRIx64 "; refusing to guess",
                      img->path, (uint64_t)(incompat & ~INCOMPAT_KNOWN));
  if (incompat & INCOMPAT_DATA_FILE)
    return vs_err_set(err, ENOTSUP, "%s: uses an external data file; vmscope does not read those",
                      img->path);
  if (incompat & INCOMPAT_CORRUPT)
    vs_log(VS_LOG_WARNING, "%s: qcow2 image is marked corrupt; reading it anyway, read-only",
           img->path);
  if (incompat & INCOMPAT_COMPRESSION) {
    if (hd->header_len < 105)
      return vs_err_set(err, EINVAL, "%s: compression type bit set but header has no such field",
                        img->path);
    img->compression = h[104];
    if (img->compression > 1)
      return vs_err_set(err, ENOTSUP, "%s: compression type %d; vmscope reads deflate and zstd",
                        img->path, img->compression);
  }
  img->extended_l2 = (incompat & INCOMPAT_EXTL2) != 0;
  if (img->extended_l2 && img->cluster_bits < 14)
    return vs_err_set(err, EINVAL, "%s: extended L2 entries need clusters of 16 KiB or more",
                      img->path);
  img->entry_bytes = img->extended_l2 ? 16 : 8;
  img->l2_entries = img->cluster_size / img->entry_bytes;
  return 0;
}

/* L1: enough entries to cover the virtual size, all inside the file. */
static int read_l1(struct vs_image *img, uint64_t l1_off, struct vs_err *err) {
  uint64_t per_l1 = img->l2_entries * img->cluster_size;
  uint64_t needed = img->size / per_l1 + (img->size % per_l1 != 0);
  if ((uint64_t)img->l1_size < needed)
    return vs_err_set(err, EINVAL, "%s: L1 table has %u entries; %" PRIu64 " GiB needs %" PRIu64,
                      img->path, img->l1_size, img->size >> 30, needed);
  if ((uint64_t)img->l1_size * 8 > MAX_L1_BYTES)
    return vs_err_set(err, EINVAL, "%s: L1 table of %u entries is over the %u MiB vmscope reads",
                      img->path, img->l1_size, MAX_L1_BYTES >> 20);
  if (!img->l1_size) return 0;
  if (l1_off % img->cluster_size || l1_off == 0)
    return vs_err_set(err, EINVAL,
                      "%s: L1 table offset %" PRIu64 " is not a cluster boundary past the header",
                      img->path, l1_off);
  if (l1_off + (uint64_t)img->l1_size * 8 > img->file_size)
    return vs_err_set(err, EINVAL,
                      "%s: L1 table at %" PRIu64 " ends past the end of the file (%" PRIu64
                      " bytes)",
                      img->path, l1_off, img->file_size);
  img->l1 = vs_xmalloc((size_t)img->l1_size * 8);
  if (read_at(img, img->l1, (size_t)img->l1_size * 8, l1_off, "the L1 table", err) < 0) return -1;
  for (uint32_t i = 0; i < img->l1_size; i++)
    img->l1[i] = be64((const uint8_t *)&img->l1[i]);
  return 0;
}

/* The backing file's name and format, from the first cluster (the name at the header's
 * offset, the format in a header extension); *NAME stays NULL when there is none. */
static int read_backing_name(struct vs_image *img, const struct qcow2_header *hd, char **name,
                             char **format, struct vs_err *err) {
  size_t c0_len = img->file_size < img->cluster_size ? (size_t)img->file_size : img->cluster_size;
  _cleanup_(vs_freep) uint8_t *c0 = vs_xmalloc(c0_len);
  if (read_at(img, c0, c0_len, 0, "the first cluster", err) < 0) return -1;
  if (parse_extensions(img, c0, c0_len, hd->version == 3 ? hd->header_len : 72, format, err) < 0)
    return -1;
  if (!hd->backing_off) return 0;
  if (hd->backing_len == 0 || hd->backing_len > 1023 || hd->backing_off + hd->backing_len > c0_len)
    return vs_err_set(err, EINVAL,
                      "%s: backing file name (%u bytes at %" PRIu64
                      ") is not inside the first cluster",
                      img->path, hd->backing_len, hd->backing_off);
  if (memchr(c0 + hd->backing_off, '\0', hd->backing_len))
    return vs_err_set(err, EINVAL, "%s: backing file name holds a NUL byte", img->path);
  *name = vs_xstrndup((const char *)c0 + hd->backing_off, hd->backing_len);
  return 0;
}

/* The image format libvirt's and qemu's name FORMAT stands for, -1 when not one libyal reads. */
static int yal_kind_of(const char *format) {
  if (strcmp(format, "vhd") == 0 || strcmp(format, "vpc") == 0) return VS_YAL_VHD;
  if (strcmp(format, "vhdx") == 0) return VS_YAL_VHDX;
  if (strcmp(format, "vmdk") == 0) return VS_YAL_VMDK;
  return -1;
}

static int open_qcow2_backing(struct vs_image *img, const struct qcow2_header *hd, struct chain *ch,
                              struct vs_err *err) {
  _cleanup_(vs_freep) char *name = NULL;
  _cleanup_(vs_freep) char *format = NULL;
  if (read_backing_name(img, hd, &name, &format, err) < 0) return -1;
  if (!name) return 0;
  if (format && strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0 &&
      yal_kind_of(format) < 0)
    return vs_err_set(err, ENOTSUP,
                      "%s: backing file format \"%s\"; vmscope reads raw, qcow2, vpc, vhdx and "
                      "vmdk",
                      img->path, format);
  return open_backing(img, name, format, ch, err);
}

static int open_qcow2(struct vs_image *img, struct chain *ch, struct vs_err *err) {
  uint8_t h[112] = {0};
  struct qcow2_header hd = {0};
  if (read_header(img, h, &hd, err) < 0 || check_features(img, h, &hd, err) < 0 ||
      read_l1(img, hd.l1_off, err) < 0 || open_qcow2_backing(img, &hd, ch, err) < 0)
    return -1;
  img->zdata = vs_xmalloc(img->cluster_size);
  return 0;
}

static struct vs_image *open_chain(const char *path, const char *format, struct chain *ch,
                                   struct vs_err *err) {
  _cleanup_(vs_image_closep) struct vs_image *img = vs_xcalloc(1, sizeof(*img));
  img->path = printable(path, strlen(path));
  img->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the open */
  if (img->fd < 0) {
    vs_err_set(err, errno, "%s: %s", img->path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(img->fd, &st) < 0) {
    vs_err_set(err, errno, "%s: %s", img->path, strerror(errno));
    return NULL;
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    vs_err_set(err, EINVAL, "%s: not a regular file or block device", img->path);
    return NULL;
  }
  if (fcntl(img->fd, F_SETFL, 0) < 0) { /* a block device's reads wait for the data */
    vs_err_set(err, errno, "%s: %s", img->path, strerror(errno));
    return NULL;
  }
  if (is_output(ch, &st, img->path, err) < 0) return NULL;
  for (int i = 0; i < ch->depth; i++) {
    if (ch->dev[i] == st.st_dev && ch->ino[i] == st.st_ino) {
      vs_err_set(err, ELOOP, "%s: backing chain loops back to an image already in it", img->path);
      return NULL;
    }
  }
  if (ch->depth == VS_IMAGE_MAX_CHAIN) {
    vs_err_set(err, ELOOP, "%s: backing chain deeper than %d images", img->path,
               VS_IMAGE_MAX_CHAIN);
    return NULL;
  }
  ch->dev[ch->depth] = st.st_dev;
  ch->ino[ch->depth] = st.st_ino;
  ch->depth++;
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(img->fd, 0, SEEK_END);
    img->file_size = end < 0 ? 0 : (uint64_t)end;
  } else {
    img->file_size = (uint64_t)st.st_size;
  }
  uint8_t magic[4] = {0};
  bool probed_qcow2 = img->file_size >= 4 && read_at(img, magic, 4, 0, "the magic", err) == 0 &&
                      be32(magic) == QCOW_MAGIC;
  vs_err_clear(err);
  int probed_yal = probed_qcow2 ? -1 : vs_yal_probe(img->fd, img->file_size);
  int want_yal = format ? yal_kind_of(format) : -1;
  if (format && strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0 && want_yal < 0) {
    vs_err_set(err, ENOTSUP,
               "%s: format \"%s\"; vmscope reads raw, qcow2, vhd (vpc), vhdx and vmdk", img->path,
               format);
    return NULL;
  }
  if (format && strcmp(format, "qcow2") == 0 && !probed_qcow2) {
    vs_err_set(err, EINVAL, "%s: expected a qcow2 image, but the file has no qcow2 magic",
               img->path);
    return NULL;
  }
  if (want_yal >= 0 && probed_yal != want_yal) {
    vs_err_set(err, EINVAL, "%s: expected a %s image, but the file has no %s signature", img->path,
               format, format);
    return NULL;
  }
  img->is_qcow2 = format ? strcmp(format, "qcow2") == 0 : probed_qcow2;
  int kind = format ? want_yal : probed_yal;
  if (img->is_qcow2) {
    if (open_qcow2(img, ch, err) < 0) return NULL;
  } else if (kind >= 0) {
    struct extent_ctx x = {.path = img->path, .ch = ch};
    img->yal = vs_yal_open((enum vs_yal_kind)kind, img->fd, img->file_size, img->path,
                           resolve_extent, &x, err);
    if (!img->yal) return NULL;
    img->size = vs_yal_size(img->yal);
  } else {
    img->size = img->file_size;
  }
  return vs_steal(&img);
}

const char *vs_image_probe_format(const char *path, bool *raw_too) {
  *raw_too = false;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (fd < 0) return NULL;
  const char *format = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    uint8_t magic[4] = {0};
    bool is_qcow2 = pread(fd, magic, 4, 0) == 4 && be32(magic) == QCOW_MAGIC;
    int kind = is_qcow2 ? -1 : vs_yal_probe(fd, (uint64_t)st.st_size);
    format = is_qcow2 ? "qcow2" : kind >= 0 ? vs_yal_kind_name((enum vs_yal_kind)kind) : "raw";
    /* A fixed VHD is the disk, then a footer: its first sector is the guest's. */
    *raw_too =
        kind == VS_YAL_VHD && !(pread(fd, magic, 4, 0) == 4 && memcmp(magic, "cone", 4) == 0);
  }
  close(fd);
  return format;
}

bool vs_image_is_nbd_uri(const char *path) {
  return strncmp(path, "nbd://", 6) == 0 || strncmp(path, "nbd+unix://", 11) == 0;
}

/* An NBD export, as a libvirt pull-mode backup serves each disk: the guest's view of the disk
 * at the moment the job began, whatever its format on the host. */
static struct vs_image *open_nbd(const char *uri, struct vs_err *err) {
  if (vs_dl_load(&nbd_lib, err) < 0) return NULL;
  _cleanup_(vs_image_closep) struct vs_image *img = vs_xcalloc(1, sizeof(*img));
  img->fd = -1;
  img->path = printable(uri, strlen(uri));
  img->nbd = sym_nbd_create();
  if (!img->nbd) {
    vs_err_set(err, ENOMEM, "%s: libnbd: %s", img->path, sym_nbd_get_error());
    return NULL;
  }
  /* Block status tells holes from data, so reading the unallocated parts costs no transfer. */
  sym_nbd_add_meta_context(img->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION);
  if (sym_nbd_connect_uri(img->nbd, uri) < 0) {
    vs_err_set(err, sym_nbd_get_errno() ? sym_nbd_get_errno() : EIO, "%s: cannot connect: %s",
               img->path, sym_nbd_get_error());
    return NULL;
  }
  int64_t size = sym_nbd_get_size(img->nbd);
  if (size < 0) {
    vs_err_set(err, EIO, "%s: the export has no size: %s", img->path, sym_nbd_get_error());
    return NULL;
  }
  img->size = img->file_size = (uint64_t)size;
  img->nbd_extents = sym_nbd_can_meta_context(img->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  return vs_steal(&img);
}

struct vs_image *vs_image_open(const char *path, const struct vs_image_opts *opts,
                               struct vs_err *err) {
  /* Only here, for the top image: a qcow2 header naming "nbd://..." as its backing file is a
   * file name like any other, and refused as one. */
  if (vs_image_is_nbd_uri(path)) return open_nbd(path, err);
  struct chain ch = {.opts = opts};
  char *own_dir = NULL;
  if (opts && opts->n_backing_dirs) {
    ch.allowed = vs_xcalloc(opts->n_backing_dirs, sizeof(char *));
    for (size_t i = 0; i < opts->n_backing_dirs; i++) {
      char *r = realpath(opts->backing_dirs[i], NULL);
      if (r) ch.allowed[ch.n_allowed++] = r;
    }
  } else {
    char *real = realpath(path, NULL);
    if (real) {
      own_dir = vs_xstrdup(dirname(real));
      free(real);
      ch.allowed = vs_xcalloc(1, sizeof(char *));
      ch.allowed[ch.n_allowed++] = own_dir;
      own_dir = NULL;
    }
  }
  struct vs_image *img = open_chain(path, opts ? opts->format : NULL, &ch, err);
  for (size_t i = 0; i < ch.n_allowed; i++)
    free(ch.allowed[i]);
  free(ch.allowed);
  free(own_dir);
  return img;
}

/* ------------------------------------------------------------------------------ reading */

static const uint8_t *get_l2(struct vs_image *img, uint64_t offset, struct vs_err *err) {
  for (int i = 0; i < L2_CACHE; i++)
    if (img->l2[i].offset == offset && img->l2[i].data) return img->l2[i].data;
  if (offset % img->cluster_size || offset < img->cluster_size) {
    vs_err_set(err, EINVAL, "%s: L2 table offset %" PRIu64 " is not a cluster past the header",
               img->path, offset);
    return NULL;
  }
  if (offset + img->cluster_size > img->file_size) {
    vs_err_set(err, EINVAL,
               "%s: L2 table at %" PRIu64 " ends past the end of the file (%" PRIu64 " bytes)",
               img->path, offset, img->file_size);
    return NULL;
  }
  struct l2_slot *s = &img->l2[img->l2_next];
  img->l2_next = (img->l2_next + 1) % L2_CACHE;
  if (!s->data) s->data = vs_xmalloc(img->cluster_size);
  s->offset = 0;
  if (read_at(img, s->data, img->cluster_size, offset, "an L2 table", err) < 0) return NULL;
  s->offset = offset;
  return s->data;
}

static int read_backing(struct vs_image *img, uint8_t *buf, size_t n, uint64_t off,
                        struct vs_err *err) {
  if (!img->backing || off >= img->backing->size) {
    memset(buf, 0, n);
    return 0;
  }
  size_t have = off + n > img->backing->size ? (size_t)(img->backing->size - off) : n;
  if (vs_image_pread(img->backing, buf, have, off, err) < 0) return -1;
  memset(buf + have, 0, n - have);
  return 0;
}

static int decompress(struct vs_image *img, uint64_t entry, struct vs_err *err) {
  if (img->zentry == entry) return 0;
  unsigned x = 62 - (img->cluster_bits - 8);
  uint64_t coff = entry & ((1ULL << x) - 1);
  uint64_t sectors = ((entry >> x) & ((1ULL << (img->cluster_bits - 8)) - 1)) + 1;
  uint64_t csize = sectors * 512 - (coff & 511);
  if (coff < img->cluster_size || coff >= img->file_size)
    return vs_err_set(err, EINVAL, "%s: compressed cluster at %" PRIu64 " is outside the file",
                      img->path, coff);
  if (coff + csize > img->file_size) /* the last cluster may end before its last sector */
    csize = img->file_size - coff;
  if (!img->zinput) img->zinput = vs_xmalloc(2 * img->cluster_size + 512);
  if (read_at(img, img->zinput, (size_t)csize, coff, "a compressed cluster", err) < 0) return -1;
  img->zentry = 0;
  size_t produced = 0;
  if (vs_dl_load(img->compression == 0 ? &zlib_lib : &zstd_lib, err) < 0)
    return vs_err_prefix(err, "%s: a compressed cluster at %" PRIu64, img->path, coff);
  if (img->compression == 0) {
    z_stream z = {0};
    if (sym_inflateInit2_(&z, -12, ZLIB_VERSION, (int)sizeof(z)) != Z_OK)
      return vs_err_set(err, ENOMEM, "%s: zlib failed to start", img->path);
    z.next_in = img->zinput;
    z.avail_in = (uInt)csize;
    z.next_out = img->zdata;
    z.avail_out = (uInt)img->cluster_size;
    int ret = sym_inflate(&z, Z_FINISH);
    produced = img->cluster_size - z.avail_out;
    sym_inflateEnd(&z);
    if (!((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && produced == img->cluster_size))
      return vs_err_set(err, EINVAL,
                        "%s: compressed cluster at %" PRIu64 " does not inflate to %" PRIu64
                        " bytes (zlib %d, %zu bytes)",
                        img->path, coff, img->cluster_size, ret, produced);
  } else {
    ZSTD_DCtx *z = sym_ZSTD_createDCtx();
    if (!z) return vs_err_set(err, ENOMEM, "%s: zstd failed to start", img->path);
    ZSTD_inBuffer in = {img->zinput, (size_t)csize, 0};
    ZSTD_outBuffer out = {img->zdata, (size_t)img->cluster_size, 0};
    size_t ret = 0;
    while (in.pos < in.size && out.pos < out.size) {
      ret = sym_ZSTD_decompressStream(z, &out, &in);
      if (sym_ZSTD_isError(ret)) break;
      if (ret == 0 && out.pos < out.size && in.pos == in.size) break;
    }
    sym_ZSTD_freeDCtx(z);
    if (sym_ZSTD_isError(ret) || out.pos != out.size)
      return vs_err_set(err, EINVAL,
                        "%s: compressed cluster at %" PRIu64 " does not decompress to %" PRIu64
                        " bytes (%s)",
                        img->path, coff, img->cluster_size,
                        sym_ZSTD_isError(ret) ? sym_ZSTD_getErrorName(ret) : "short");
  }
  img->zentry = entry;
  return 0;
}

/* The file offset of the guest cluster at OFF when the image stores it as plain data (not
 * compressed, not zero, not subclusters, not left to the backing file); 0 otherwise, and on
 * a bad L2 table, which read_cluster then reports. */
static uint64_t plain_data_host(struct vs_image *img, uint64_t off) {
  if (img->extended_l2) return 0;
  uint64_t ci = off >> img->cluster_bits;
  uint64_t l1i = ci / img->l2_entries, l2i = ci % img->l2_entries;
  uint64_t l2off = l1i < img->l1_size ? img->l1[l1i] & OFFSET_MASK : 0;
  const uint8_t *l2 = l2off ? get_l2(img, l2off, NULL) : NULL;
  if (!l2) return 0;
  uint64_t entry = be64(l2 + l2i * img->entry_bytes);
  if (entry & (QCOW_OFLAG_COMPRESSED | QCOW_OFLAG_ZERO)) return 0;
  uint64_t host = entry & OFFSET_MASK;
  return host % img->cluster_size == 0 && host >= img->cluster_size ? host : 0;
}

/* Reads N bytes at IN_CLUSTER within the data cluster at HOST (or the clusters after it). */
static int read_data(struct vs_image *img, uint8_t *buf, size_t n, uint64_t host,
                     uint64_t in_cluster, struct vs_err *err) {
  if (host % img->cluster_size)
    return vs_err_set(err, EINVAL, "%s: data cluster offset %" PRIu64 " is not cluster aligned",
                      img->path, host);
  if (host < img->cluster_size || host + in_cluster + n > img->file_size)
    return vs_err_set(err, EINVAL,
                      "%s: L2 entry points at %" PRIu64 ", outside the file's data (%" PRIu64
                      " bytes)",
                      img->path, host, img->file_size);
  return read_at(img, buf, n, host + in_cluster, "a data cluster", err);
}

/* Reads N bytes at OFF, all within one cluster. */
static int read_cluster(struct vs_image *img, uint8_t *buf, size_t n, uint64_t off,
                        struct vs_err *err) {
  uint64_t ci = off >> img->cluster_bits, co = off & (img->cluster_size - 1);
  uint64_t l1i = ci / img->l2_entries, l2i = ci % img->l2_entries;
  uint64_t l2off = l1i < img->l1_size ? img->l1[l1i] & OFFSET_MASK : 0;
  if (!l2off) return read_backing(img, buf, n, off, err);
  const uint8_t *l2 = get_l2(img, l2off, err);
  if (!l2) return -1;
  uint64_t entry = be64(l2 + l2i * img->entry_bytes);
  if (entry & QCOW_OFLAG_COMPRESSED) {
    if (decompress(img, entry & ~(3ULL << 62), err) < 0) return -1;
    memcpy(buf, img->zdata + co, n);
    return 0;
  }
  uint64_t host = entry & OFFSET_MASK;
  if (!img->extended_l2) {
    if (entry & QCOW_OFLAG_ZERO) {
      memset(buf, 0, n);
      return 0;
    }
    return host ? read_data(img, buf, n, host, co, err) : read_backing(img, buf, n, off, err);
  }
  /* Extended L2: 32 subclusters, each allocated, zero, or left to the backing file. */
  uint64_t bitmap = be64(l2 + l2i * 16 + 8);
  uint64_t sc_size = img->cluster_size / 32;
  size_t done = 0;
  while (done < n) {
    uint64_t pos = co + done;
    unsigned sc = (unsigned)(pos / sc_size);
    size_t chunk = (size_t)((sc + 1) * sc_size - pos);
    if (chunk > n - done) chunk = n - done;
    bool alloc = bitmap >> sc & 1, zero = bitmap >> (32 + sc) & 1;
    int rc;
    if (alloc && zero)
      rc = vs_err_set(err, EINVAL,
                      "%s: subcluster %u of cluster %" PRIu64 " is both allocated and zero",
                      img->path, sc, ci);
    else if (zero)
      memset(buf + done, 0, chunk), rc = 0;
    else if (alloc && !host)
      rc = vs_err_set(err, EINVAL, "%s: allocated subcluster with no host cluster", img->path);
    else if (alloc)
      rc = read_data(img, buf + done, chunk, host, pos, err);
    else
      rc = read_backing(img, buf + done, chunk, off + done, err);
    if (rc < 0) return -1;
    done += chunk;
  }
  return 0;
}

/* What block status said of a range: which parts read as zeros. The callback only takes
 * notes; libnbd holds the handle's lock while it runs, so reading happens after it returns. */
struct nbd_extents {
  uint64_t off, len; /* the range asked about */
  uint64_t done;     /* described up to here */
  struct {
    uint64_t start, end;
    bool zero;
  } parts[64];
  size_t n;
};

static int nbd_extent(void *ctx, const char *metacontext, uint64_t offset, uint32_t *entries,
                      size_t nr_entries, int *error) {
  (void)error;
  struct nbd_extents *x = ctx;
  if (strcmp(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0) return 0;
  for (size_t i = 0; i + 1 < nr_entries && x->n < 64 && offset < x->off + x->len; i += 2) {
    uint64_t start = offset > x->done ? offset : x->done;
    uint64_t end = offset + entries[i] < x->off + x->len ? offset + entries[i] : x->off + x->len;
    if (end > start && start == x->done) {
      x->parts[x->n].start = start;
      x->parts[x->n].end = end;
      x->parts[x->n++].zero = (entries[i + 1] & LIBNBD_STATE_ZERO) != 0;
      x->done = end;
    }
    offset += entries[i];
  }
  return 0;
}

static int nbd_read_range(struct vs_image *img, uint8_t *buf, size_t len, uint64_t off,
                          struct vs_err *err) {
  uint64_t pos = off, end = off + len;
  int failed = 0;
  /* Block status may describe less than was asked: go on from where it stopped, and read
   * plainly whatever it would not describe. */
  while (!failed && pos < end) {
    struct nbd_extents x = {.off = pos, .len = end - pos, .done = pos};
    if (img->nbd_extents &&
        sym_nbd_block_status(img->nbd, end - pos, pos,
                             (nbd_extent_callback){.callback = nbd_extent, .user_data = &x}, 0) < 0)
      x.n = 0;
    if (x.n == 0) { /* no description: read the rest */
      x.parts[0].start = pos;
      x.parts[0].end = end;
      x.parts[0].zero = false;
      x.n = 1;
    }
    for (size_t i = 0; i < x.n && !failed; i++) {
      uint8_t *dst = buf + (x.parts[i].start - off);
      size_t n = (size_t)(x.parts[i].end - x.parts[i].start);
      if (x.parts[i].zero)
        memset(dst, 0, n);
      else if (sym_nbd_pread(img->nbd, dst, n, x.parts[i].start, 0) < 0)
        failed = sym_nbd_get_errno() ? sym_nbd_get_errno() : EIO;
      else
        img->bytes_read += n;
      pos = x.parts[i].end;
    }
  }
  if (failed)
    return vs_err_set(err, failed, "%s: reading %zu bytes at %" PRIu64 " failed: %s", img->path,
                      len, off, sym_nbd_get_error() ? sym_nbd_get_error() : strerror(failed));
  return 0;
}

uint64_t vs_image_bytes_read(const struct vs_image *img) {
  uint64_t n = 0;
  for (; img; img = img->backing)
    n += img->bytes_read + (img->yal ? vs_yal_bytes_read(img->yal) : 0);
  return n;
}

int vs_image_pread(struct vs_image *img, void *buf, size_t len, uint64_t off, struct vs_err *err) {
  if (off > img->size || len > img->size - off)
    return vs_err_set(err, EINVAL,
                      "%s: read of %zu bytes at %" PRIu64 " is past the disk's end (%" PRIu64
                      " bytes)",
                      img->path, len, off, img->size);
  if (img->nbd) return nbd_read_range(img, buf, len, off, err);
  if (img->yal) return vs_yal_pread(img->yal, buf, len, off, err);
  if (!img->is_qcow2) return read_at(img, buf, len, off, "data", err);
  uint8_t *out = buf;
  uint64_t cs = img->cluster_size;
  while (len) {
    size_t n = (size_t)(cs - (off & (cs - 1)));
    if (n > len) n = len;
    /* Clusters that lie one after the other in the file are read with one call: images are
     * mostly written front to back, and a call per cluster is most of the cost of reading a
     * disk that is in the page cache. */
    uint64_t host = plain_data_host(img, off);
    if (host) {
      uint64_t co = off & (cs - 1);
      while (n < len && plain_data_host(img, off + n) == host + co + n)
        n += (size_t)(len - n < cs ? len - n : cs);
      if (read_data(img, out, n, host, co, err) < 0) return -1;
    } else if (read_cluster(img, out, n, off, err) < 0) {
      return -1;
    }
    out += n;
    off += n;
    len -= n;
  }
  return 0;
}

int vs_image_cluster_state(struct vs_image *img, uint64_t off, enum vs_cluster_state *state,
                           struct vs_err *err) {
  *state = VS_CLUSTER_DATA;
  if (!img->is_qcow2 || img->nbd) return 0;
  uint64_t ci = off >> img->cluster_bits;
  uint64_t l1i = ci / img->l2_entries, l2i = ci % img->l2_entries;
  uint64_t l2off = l1i < img->l1_size ? img->l1[l1i] & OFFSET_MASK : 0;
  if (!l2off) {
    *state = VS_CLUSTER_UNALLOCATED;
    return 0;
  }
  const uint8_t *l2 = get_l2(img, l2off, err);
  if (!l2) return -1;
  uint64_t entry = be64(l2 + l2i * img->entry_bytes);
  if (img->extended_l2) {
    uint64_t bitmap = be64(l2 + l2i * 16 + 8);
    if ((bitmap & 0xffffffffu) == 0 && (bitmap >> 32) == 0xffffffffu &&
        !(entry & QCOW_OFLAG_COMPRESSED))
      *state = VS_CLUSTER_ZERO;
    else if (bitmap == 0 && !(entry & QCOW_OFLAG_COMPRESSED))
      *state = VS_CLUSTER_UNALLOCATED;
    return 0; /* anything mixed is data, conservatively */
  }
  if (entry & QCOW_OFLAG_COMPRESSED) return 0;
  if (entry & QCOW_OFLAG_ZERO)
    *state = VS_CLUSTER_ZERO;
  else if (!(entry & OFFSET_MASK))
    *state = VS_CLUSTER_UNALLOCATED;
  return 0;
}

bool vs_image_cluster_is_hole(struct vs_image *img, uint64_t off, struct vs_err *err) {
  for (struct vs_image *i = img; i; i = i->backing) {
    enum vs_cluster_state st;
    if (vs_image_cluster_state(i, off, &st, err) < 0) return false;
    if (st == VS_CLUSTER_ZERO) return true;
    if (st == VS_CLUSTER_DATA) return false;
    if (i->backing && (i->backing->is_qcow2 ? i->backing->cluster_size : 0) != 0 &&
        i->backing->cluster_size != i->cluster_size)
      return false; /* clusters do not line up: let the caller read */
  }
  return true; /* unallocated all the way down: zeros */
}

bool vs_image_same_files(const struct vs_image *a, const struct vs_image *b) {
  for (; a && b; a = a->backing, b = b->backing) {
    struct stat sa, sb;
    if (a->fd < 0 || b->fd < 0 || fstat(a->fd, &sa) < 0 || fstat(b->fd, &sb) < 0 ||
        sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino || a->size != b->size)
      return false;
  }
  return !a && !b;
}

/* Whether the page at HOST of FD is in the page cache, asked without reading it
 * (vs_page_cached): a one-byte read with RWF_NOWAIT, the way before, starts reading the page
 * when it is not there, and a read far ahead of the ones the file's read-ahead follows breaks
 * its run. Cold, a sparse 1 GiB pair took 102 ms so against 88 ms (medians of 11, each asking
 * nothing ahead). */
static bool is_cached(int fd, uint64_t host) {
  return vs_page_cached(fd, host);
}

/* The read-ahead window of FD's file (POSIX_FADV_SEQUENTIAL doubles its device's, which sysfs
 * gives for a disk, a partition's disk, or a file system's own backing device); 256 KiB, the
 * kernel's default doubled, when none says. */
static uint64_t read_ahead_window(int fd) {
  struct stat st;
  uint64_t kb = 128;
  if (fstat(fd, &st) == 0) {
    static const char *const where[] = {"/sys/dev/block/%u:%u/queue/read_ahead_kb",
                                        "/sys/dev/block/%u:%u/../queue/read_ahead_kb",
                                        "/sys/class/bdi/%u:%u/read_ahead_kb"};
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
      char path[96];
      snprintf(path, sizeof(path), where[i], major(st.st_dev), minor(st.st_dev));
      FILE *f = fopen(path, "re");
      unsigned long long v;
      bool found = f && fscanf(f, "%llu", &v) == 1;
      if (f) fclose(f);
      if (found) {
        kb = v;
        break;
      }
    }
  }
  return 2 * kb * 1024;
}

/* Asks the kernel to read [HOST, HOST+LEN) of IMG's file ahead, unless the file's read-ahead
 * comes to it as the reads go on: it starts where the range asked before ended, or as far after
 * as the read-ahead's window reaches. With every range asked, a cold sparse 1 GiB pair took
 * 106-131 ms against 86-92 ms with none (medians of 9-15 in alternating runs, the probe reading
 * nothing), and asking each worker's first range and the short jumps cost 6-8 ms more; two
 * readers of a 64 MiB file took 83-110 ms asked ahead and 58-61 ms not, with 128 KiB of
 * read-ahead as with 8 MiB. On this disk what is asked ahead fills its queue and waits there,
 * and breaks the read-ahead's run, while the read-ahead keeps in step with the reads. A range
 * behind, or beyond the window (scattered clusters: a fragmented file read in the guest's
 * order) is asked for, the read-ahead knowing nothing of where the reads go next. */
static void ask_ahead(struct vs_image *img, uint64_t host, uint64_t len) {
  if (!img->read_ahead_found) {
    img->read_ahead = read_ahead_window(img->fd);
    img->read_ahead_found = true;
  }
  /* No read-ahead (read_ahead_kb 0): nothing comes to any range unasked. */
  if (!img->read_ahead || host < img->asked_end || host - img->asked_end > img->read_ahead)
    posix_fadvise(img->fd, (off_t)host, (off_t)len, POSIX_FADV_WILLNEED);
  img->asked_end = host + len;
}

int64_t vs_image_prefetch(struct vs_image *img, uint64_t off, uint64_t len) {
  if (img->fd < 0 || img->yal || off >= img->size) return 0; /* a VHD/VMDK maps its own way */
  if (len > img->size - off) len = img->size - off;
  /* Asking costs a call and a page-cache walk per run of clusters that lie together in the
   * file: one per cluster when they are scattered (a fragmented file), which on a warm cache
   * was a third of a patch set's compare, for pages already there. The range's first data
   * stands for it: when that is cached, so is the range taken to be. */
  if (!img->is_qcow2) {
    if (is_cached(img->fd, off)) return -1;
    ask_ahead(img, off, len);
    return (int64_t)len;
  }
  uint64_t cs = img->cluster_size, run_host = 0, run_len = 0, asked = 0;
  bool probed = false;
  for (uint64_t o = off & ~(cs - 1); o < off + len; o += cs) {
    uint64_t host = plain_data_host(img, o);
    if (host && !probed) {
      probed = true;
      if (is_cached(img->fd, host)) return -1; /* nothing asked yet */
    }
    if (host && run_len && host == run_host + run_len) {
      run_len += cs;
      continue;
    }
    if (run_len) ask_ahead(img, run_host, run_len);
    asked += run_len;
    run_host = host;
    run_len = host ? cs : 0;
  }
  if (run_len) ask_ahead(img, run_host, run_len);
  return (int64_t)(asked + run_len);
}

/* Whether IMG's own file can hold plain data clusters vs_image_stored_at finds. */
static bool stores_plain(const struct vs_image *img) {
  return img->is_qcow2 && !img->nbd && !img->yal && img->fd >= 0;
}

bool vs_image_stored_at(struct vs_image *img, uint64_t off, uint64_t *host) {
  if (!stores_plain(img) || off >= img->size) return false;
  *host = plain_data_host(img, off);
  return *host != 0 && *host + img->cluster_size <= img->file_size;
}

bool vs_image_stored_run(struct vs_image *img, uint64_t off, uint64_t len, uint64_t *host) {
  if (img->nbd || img->yal || img->fd < 0 || !len || off > img->size || len > img->size - off)
    return false;
  if (!img->is_qcow2) { /* a raw file: the guest's bytes are the file's */
    *host = off;
    return off + len <= img->file_size;
  }
  uint64_t cs = img->cluster_size, first = plain_data_host(img, off);
  if (!first) return false;
  for (uint64_t o = (off & ~(cs - 1)) + cs, want = first + cs; o < off + len; o += cs, want += cs)
    if (plain_data_host(img, o) != want) return false;
  *host = first + (off & (cs - 1));
  return *host + len <= img->file_size;
}

/* A window of the file is mapped at a time, so that what the process maps stays bounded on a
 * 64 GiB image (and moving it, an unmap seen by every thread, is rare). */
#define MAP_WINDOW (64ull << 20)

const uint8_t *vs_image_map_stored(struct vs_image *img, uint64_t host, size_t len,
                                   struct vs_err *err) {
  if (img->fd < 0 || img->nbd || img->yal || host > img->file_size || len > img->file_size - host) {
    vs_err_set(err, EINVAL,
               "%s: %zu bytes at %" PRIu64 " are not inside the file (%" PRIu64 " bytes)",
               img->path, len, host, img->file_size);
    return NULL;
  }
  if (!img->map || host < img->map_off || host + len > img->map_off + img->map_len) {
    if (img->map) munmap(img->map, (size_t)img->map_len);
    img->map = NULL;
    uint64_t start = host & ~(MAP_WINDOW - 1);
    if (host + len > start + MAP_WINDOW) start = host & ~(uint64_t)(sysconf(_SC_PAGESIZE) - 1);
    uint64_t end = start + MAP_WINDOW > host + len ? start + MAP_WINDOW : host + len;
    if (end > img->file_size) end = img->file_size;
    void *m = mmap(NULL, (size_t)(end - start), PROT_READ, MAP_SHARED, img->fd, (off_t)start);
    if (m == MAP_FAILED) {
      vs_err_set(err, errno, "%s: cannot map %" PRIu64 " bytes of it at %" PRIu64 ": %s", img->path,
                 end - start, start, strerror(errno));
      return NULL;
    }
    img->map = m;
    img->map_off = start;
    img->map_len = end - start;
  }
  img->bytes_read += len;
  return img->map + (host - img->map_off);
}

/* SIGBUS while a mapped image is compared: the file shrank since it was opened (someone cut
 * it). The reading thread jumps back to its compare, which fails naming the file; any other
 * SIGBUS gets the action there was before. SA_NODEFER keeps SIGBUS unblocked after the jump,
 * so no signal mask is saved or restored per compare (a system call each). */
static __thread sigjmp_buf
    *volatile bus_jump; /* volatile: memcmp cannot read it, the handler does */
static __thread volatile uintptr_t bus_addr;
static struct sigaction bus_before;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;

static void on_bus(int sig, siginfo_t *si, void *ctx) {
  (void)sig;
  (void)ctx;
  if (bus_jump) {
    bus_addr = (uintptr_t)si->si_addr;
    siglongjmp(*bus_jump, 1);
  }
  sigaction(SIGBUS, &bus_before, NULL); /* not ours: the fault comes again, to that action */
}

static void bus_install(void) {
  struct sigaction sa = {.sa_sigaction = on_bus, .sa_flags = SA_SIGINFO | SA_NODEFER};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &bus_before);
}

/* Compares A and B (LEN bytes) a SEG at a time into DIFFERS; -1 after a SIGBUS (bus_addr). */
static int guarded_cmp(const uint8_t *a, const uint8_t *b, size_t len, size_t seg, bool *differs) {
  sigjmp_buf jump;
  if (sigsetjmp(jump, 0)) {
    bus_jump = NULL;
    return -1;
  }
  bus_jump = &jump;
  for (size_t at = 0; at < len; at += seg)
    differs[at / seg] = memcmp(a + at, b + at, len - at < seg ? len - at : seg) != 0;
  bus_jump = NULL;
  return 0;
}

static bool maps(const struct vs_image *img, uintptr_t addr) {
  uintptr_t from = (uintptr_t)img->map;
  return img->map && addr >= from && addr - from < img->map_len;
}

int vs_image_cmp_mapped(struct vs_image *a, const uint8_t *pa, struct vs_image *b,
                        const uint8_t *pb, size_t len, size_t seg, bool *differs,
                        struct vs_err *err) {
  pthread_once(&bus_once, bus_install);
  if (guarded_cmp(pa, pb, len, seg, differs) == 0) return 0;
  struct vs_image *cut = maps(b, bus_addr) && !maps(a, bus_addr) ? b : a;
  struct stat st;
  uint64_t now = fstat(cut->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
  return vs_err_set(err, EIO,
                    "%s: the file was cut short while it was read (%" PRIu64
                    " bytes when opened, %" PRIu64 " now)",
                    cut->path, cut->file_size, now);
}

uint64_t vs_image_stored_max(const struct vs_image *img) {
  if (!stores_plain(img) || img->extended_l2) return 0; /* plain_data_host finds none there */
  uint64_t clusters = img->file_size / img->cluster_size;
  return clusters ? clusters - 1 : 0; /* cluster 0 is the header's */
}

int vs_image_read_stored(struct vs_image *img, void *buf, size_t len, uint64_t host,
                         struct vs_err *err) {
  if (img->fd < 0 || host < img->cluster_size || host > img->file_size ||
      len > img->file_size - host)
    return vs_err_set(err, EINVAL,
                      "%s: %zu bytes at %" PRIu64 " are not inside the file's data (%" PRIu64
                      " bytes)",
                      img->path, len, host, img->file_size);
  return read_at(img, buf, len, host, "data clusters", err);
}

int64_t vs_image_prefetch_stored(struct vs_image *img, uint64_t host, uint64_t len) {
  if (img->fd < 0 || host >= img->file_size) return 0;
  if (len > img->file_size - host) len = img->file_size - host;
  if (is_cached(img->fd, host)) return -1;
  ask_ahead(img, host, len);
  return (int64_t)len;
}

void vs_image_advise_sequential(struct vs_image *img) {
  for (struct vs_image *i = img; i; i = i->backing)
    if (i->fd >= 0) posix_fadvise(i->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
}

int vs_image_identity(struct vs_image *img, char out[65], struct vs_err *err) {
  struct vs_sha256_ctx *md = vs_sha256_begin(err);
  if (!md) return vs_err_prefix(err, "%s: its identity", img->path);
  size_t head = img->is_qcow2 && !img->nbd ? (size_t)img->cluster_size : 65536;
  if (head > img->file_size) head = (size_t)img->file_size;
  uint8_t *buf = vs_xmalloc(head ? head : 1);
  int rc = img->nbd ? nbd_read_range(img, buf, head < img->size ? head : (size_t)img->size, 0, err)
                    : read_at(img, buf, head, 0, "header", err);
  if (rc == 0) vs_sha256_add(md, buf, head);
  for (uint32_t i = 0; rc == 0 && img->is_qcow2 && !img->nbd && i < img->l1_size; i++) {
    uint8_t e[8]; /* as stored: big-endian */
    for (int b = 0; b < 8; b++)
      e[b] = (uint8_t)(img->l1[i] >> (56 - 8 * b));
    vs_sha256_add(md, e, 8);
  }
  /* The header and L1 table say how a qcow2 image is laid out, not what it holds: two images
   * converted from different file systems of one size can share them. The guest's first and
   * last 64 KiB (partition tables, superblocks with their UUIDs) tell such twins apart. */
  if (rc == 0 && (img->is_qcow2 || img->yal) && !img->nbd && img->size > 0) {
    size_t span = img->size < 65536 ? (size_t)img->size : 65536;
    uint8_t *data = vs_xmalloc(span);
    rc = vs_image_pread(img, data, span, 0, err);
    if (rc == 0) vs_sha256_add(md, data, span);
    if (rc == 0) rc = vs_image_pread(img, data, span, img->size - span, err);
    if (rc == 0) vs_sha256_add(md, data, span);
    free(data);
  }
  uint8_t size_be[8];
  for (int i = 0; i < 8; i++)
    size_be[i] = (uint8_t)(img->size >> (56 - 8 * i));
  vs_sha256_add(md, size_be, 8);
  unsigned char d[VS_SHA256_LEN];
  if (vs_sha256_end(md, rc == 0 ? d : NULL, err) < 0 && rc == 0)
    rc = vs_err_prefix(err, "%s: its identity", img->path);
  if (rc == 0) vs_hex(d, sizeof(d), out);
  free(buf);
  return rc;
}

/* ------------------------------------------------------------ partitions and file systems */

/* libblkid reads through a file descriptor only. It gets a sparse memfd the size of the disk
 * into which we copy just the regions it reads: the ends of the disk (partition tables, the
 * backup GPT), and the start and the space after each partition (superblocks, the extended
 * boot records of logical partitions), probing again until the partition list stops growing.
 * That costs a few MiB of copying, not a raw copy of the disk. */
#define PROBE_SPAN (1u << 20)

struct probe_map {
  int fd;
  uint64_t *done; /* start offsets already copied */
  size_t n_done, cap_done;
};

static int copy_region(struct vs_image *img, struct probe_map *pm, uint64_t off, uint64_t len,
                       struct vs_err *err) {
  if (off >= img->size) return 0;
  if (len > img->size - off) len = img->size - off;
  for (size_t i = 0; i < pm->n_done; i++)
    if (pm->done[i] == off) return 0;
  if (pm->n_done == pm->cap_done) {
    pm->cap_done = pm->cap_done ? 2 * pm->cap_done : 16;
    pm->done = vs_xrealloc(pm->done, pm->cap_done * sizeof(uint64_t));
  }
  pm->done[pm->n_done++] = off;
  static const uint8_t zero[65536];
  uint8_t chunk[65536];
  for (uint64_t at = off; at < off + len; at += sizeof(chunk)) {
    size_t n = (size_t)(off + len - at < sizeof(chunk) ? off + len - at : sizeof(chunk));
    if (vs_image_pread(img, chunk, n, at, err) < 0) return -1;
    if (memcmp(chunk, zero, n) == 0) continue; /* keep the memfd sparse */
    if (pwrite(pm->fd, chunk, n, (off_t)at) != (ssize_t)n)
      return vs_err_set(err, errno, "%s: writing the probe copy: %s", img->path, strerror(errno));
  }
  return 0;
}

static void copy_value(blkid_probe pr, const char *name, char *out, size_t size) {
  const char *v = NULL;
  size_t len = 0;
  out[0] = '\0';
  if (sym_blkid_probe_lookup_value(pr, name, &v, &len) == 0 && v)
    snprintf(out, size, "%s", v); /* blkid values are short; a longer one is cut, not used */
}

static void probe_fs(int fd, uint64_t off, uint64_t size, struct vs_volume *v) {
  blkid_probe pr = sym_blkid_new_probe();
  if (!pr) return;
  if (sym_blkid_probe_set_device(pr, fd, (blkid_loff_t)off, (blkid_loff_t)size) == 0) {
    sym_blkid_probe_enable_superblocks(pr, 1);
    sym_blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID |
                                                  BLKID_SUBLKS_LABEL);
    sym_blkid_probe_enable_partitions(pr, 0);
    if (sym_blkid_do_safeprobe(pr) == 0) {
      copy_value(pr, "TYPE", v->fstype, sizeof(v->fstype));
      copy_value(pr, "UUID", v->uuid, sizeof(v->uuid));
      copy_value(pr, "LABEL", v->label, sizeof(v->label));
    }
  }
  sym_blkid_free_probe(pr);
}

int vs_image_volumes(struct vs_image *img, struct vs_volume **volumes, struct vs_err *err) {
  *volumes = NULL;
  if (vs_dl_load(&blkid_lib, err) < 0)
    return vs_err_prefix(err, "%s: its partitions and file systems", img->path);
  struct probe_map pm = {.fd = memfd_create("vmscope-probe", MFD_CLOEXEC)};
  if (pm.fd < 0) return vs_err_set(err, errno, "memfd_create: %s", strerror(errno));
  int count = -1;
  struct vs_volume *v = NULL;
  size_t nv = 0;
  if (ftruncate(pm.fd, (off_t)img->size) < 0) {
    vs_err_set(err, errno, "%s: sizing the probe copy: %s", img->path, strerror(errno));
    goto out;
  }
  if (copy_region(img, &pm, 0, PROBE_SPAN, err) < 0 ||
      copy_region(img, &pm, img->size > PROBE_SPAN ? img->size - PROBE_SPAN : 0, PROBE_SPAN, err) <
          0)
    goto out;
  bool has_table = false;
  for (int round = 0; round < 256; round++) {
    size_t copied_before = pm.n_done;
    blkid_probe pr = sym_blkid_new_probe();
    if (!pr || sym_blkid_probe_set_device(pr, pm.fd, 0, (blkid_loff_t)img->size) < 0) {
      if (pr) sym_blkid_free_probe(pr);
      vs_err_set(err, EIO, "%s: libblkid could not start a probe", img->path);
      goto out;
    }
    sym_blkid_probe_enable_partitions(pr, 1);
    sym_blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
    sym_blkid_probe_enable_superblocks(pr, 0);
    blkid_partlist pl = sym_blkid_do_safeprobe(pr) == 0 ? sym_blkid_probe_get_partitions(pr) : NULL;
    int n = pl ? sym_blkid_partlist_numof_partitions(pl) : 0;
    free(v);
    v = n > 0 ? vs_xcalloc((size_t)n, sizeof(*v)) : NULL;
    nv = 0;
    has_table = n > 0;
    for (int i = 0; i < n; i++) {
      blkid_partition par = sym_blkid_partlist_get_partition(pl, i);
      uint64_t start = (uint64_t)sym_blkid_partition_get_start(par) * 512;
      uint64_t size = (uint64_t)sym_blkid_partition_get_size(par) * 512;
      if (start >= img->size || size > img->size - start)
        continue; /* a table entry past the disk's end: nothing to read there */
      if (copy_region(img, &pm, start, PROBE_SPAN, err) < 0 ||
          copy_region(img, &pm, start + size, PROBE_SPAN, err) < 0) {
        sym_blkid_free_probe(pr);
        goto out;
      }
      if (sym_blkid_partition_is_extended(par)) continue;
      struct vs_volume *vol = &v[nv++];
      vol->number = sym_blkid_partition_get_partno(par);
      vol->offset = start;
      vol->size = size;
      const char *pu = sym_blkid_partition_get_uuid(par);
      snprintf(vol->partuuid, sizeof(vol->partuuid), "%s", pu ? pu : "");
    }
    sym_blkid_free_probe(pr);
    if (pm.n_done == copied_before) break;
  }
  if (!has_table) {
    free(v);
    v = vs_xcalloc(1, sizeof(*v));
    nv = 1;
    v[0].size = img->size;
  }
  for (size_t i = 0; i < nv; i++)
    probe_fs(pm.fd, v[i].offset, v[i].size, &v[i]);
  if (!has_table && !v[0].fstype[0]) nv = 0; /* neither a partition table nor a file system */
  *volumes = v;
  v = NULL;
  count = (int)nv;
out:
  free(v);
  free(pm.done);
  close(pm.fd);
  return count;
}

int vs_image_probe_volume(struct vs_image *img, struct vs_volume *v, struct vs_err *err) {
  if (vs_dl_load(&blkid_lib, err) < 0)
    return vs_err_prefix(err, "%s: a volume's file system", img->path);
  if (v->offset >= img->size || v->size > img->size - v->offset)
    return vs_err_set(err, EINVAL,
                      "%s: a volume at %" PRIu64 " of %" PRIu64
                      " bytes ends past the end of the disk (%" PRIu64 " bytes)",
                      img->path, v->offset, v->size, img->size);
  struct probe_map pm = {.fd = memfd_create("vmscope-probe", MFD_CLOEXEC)};
  if (pm.fd < 0) return vs_err_set(err, errno, "memfd_create: %s", strerror(errno));
  int rc = -1;
  if (ftruncate(pm.fd, (off_t)img->size) < 0)
    vs_err_set(err, errno, "%s: sizing the probe copy: %s", img->path, strerror(errno));
  else if (copy_region(img, &pm, v->offset, PROBE_SPAN, err) == 0) {
    probe_fs(pm.fd, v->offset, v->size, v);
    rc = 0;
  }
  free(pm.done);
  close(pm.fd);
  return rc;
}
