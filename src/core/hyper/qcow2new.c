#include "qcow2new.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QCOW_MAGIC 0x514649fbu
#define OFLAG_COPIED (1ULL << 63)
#define OFLAG_ZERO 1ULL
#define EXT_BACKING_FORMAT 0xe2792acau
#define HEADER_LENGTH 104

struct entry {
  uint64_t guest_cluster;
  uint64_t host; /* 0: a zero cluster */
};

struct vs_qcow2new {
  char *path;
  struct vs_newfile file;
  uint64_t size;
  unsigned bits;
  uint64_t cs;
  char *backing, *backing_format; /* NULL: no backing file */
  struct entry *entries;
  size_t n, cap;
  uint64_t next_host; /* where the next cluster goes */
  uint64_t data_clusters;
};

static void put_be32(uint8_t *p, uint32_t v) {
  for (int i = 3; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}
static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}
static void put_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static int pwrite_all(struct vs_qcow2new *q, const void *buf, size_t len, uint64_t off,
                      struct vs_err *err) {
  const uint8_t *p = buf;
  while (len) {
    ssize_t n = pwrite(q->file.fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return vs_err_set(err, errno ? errno : EIO, "%s: write at %" PRIu64 " failed: %s", q->path,
                        off, strerror(errno ? errno : EIO));
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

struct vs_qcow2new *vs_qcow2new_create(const char *path, uint64_t virtual_size,
                                       unsigned cluster_bits, const char *backing,
                                       const char *backing_format, unsigned mode,
                                       struct vs_err *err) {
  if (cluster_bits < 9 || cluster_bits > 21) {
    vs_err_set(err, EINVAL, "%s: cluster size 2^%u is outside 512 B..2 MiB", path, cluster_bits);
    return NULL;
  }
  uint64_t cs = 1ULL << cluster_bits;
  if (backing) {
    size_t meta = HEADER_LENGTH + 8 + ((strlen(backing_format) + 7) & ~7u) + 8 + strlen(backing);
    if (meta > cs || strlen(backing) > 1023) {
      vs_err_set(err, ENAMETOOLONG, "%s: backing file name \"%s\" does not fit the header", path,
                 backing);
      return NULL;
    }
  }
  struct vs_qcow2new *q = vs_xcalloc(1, sizeof(*q));
  if (vs_newfile_open(&q->file, path, mode, err) < 0) {
    free(q);
    return NULL;
  }
  q->path = vs_xstrdup(path);
  q->size = virtual_size;
  q->bits = cluster_bits;
  q->cs = cs;
  if (backing) {
    q->backing = vs_xstrdup(backing);
    q->backing_format = vs_xstrdup(backing_format);
  }
  q->next_host = cs; /* cluster 0 is the header's */
  return q;
}

static void free_image(struct vs_qcow2new *q) {
  free(q->path);
  free(q->backing);
  free(q->backing_format);
  free(q->entries);
  free(q);
}

void vs_qcow2new_abort(struct vs_qcow2new *q) {
  if (!q) return;
  vs_newfile_abandon(&q->file);
  free_image(q);
}

static void abortp(struct vs_qcow2new **q) {
  vs_qcow2new_abort(*q);
}

uint64_t vs_qcow2new_clusters(const struct vs_qcow2new *q) {
  return q->n;
}
uint64_t vs_qcow2new_data_clusters(const struct vs_qcow2new *q) {
  return q->data_clusters;
}

static int add(struct vs_qcow2new *q, uint64_t off, uint64_t host, struct vs_err *err) {
  if (off & (q->cs - 1) || off >= q->size)
    return vs_err_set(err, EINVAL, "%s: cluster offset %" PRIu64 " is not a cluster of the disk",
                      q->path, off);
  uint64_t gc = off >> q->bits;
  if (q->n && gc <= q->entries[q->n - 1].guest_cluster)
    return vs_err_set(err, EINVAL, "%s: clusters must come in increasing order", q->path);
  if (q->n == q->cap) {
    q->cap = q->cap ? 2 * q->cap : 256;
    q->entries = vs_xrealloc(q->entries, q->cap * sizeof(*q->entries));
  }
  q->entries[q->n++] = (struct entry){gc, host};
  return 0;
}

int vs_qcow2new_add_data(struct vs_qcow2new *q, uint64_t off, const void *data,
                         struct vs_err *err) {
  if (add(q, off, q->next_host, err) < 0) return -1;
  if (pwrite_all(q, data, q->cs, q->next_host, err) < 0) return -1;
  q->next_host += q->cs;
  q->data_clusters++;
  return 0;
}

int vs_qcow2new_add_zero(struct vs_qcow2new *q, uint64_t off, struct vs_err *err) {
  return add(q, off, 0, err);
}

static uint64_t div_up(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

/* Writes the L2 tables, one per L1 index that has clusters, right after the data, filling L1. */
static int write_l2_tables(struct vs_qcow2new *q, uint64_t *l1, uint8_t *buf, struct vs_err *err) {
  uint64_t cs = q->cs, l2_entries = cs / 8;
  for (size_t i = 0; i < q->n;) {
    uint64_t l1i = q->entries[i].guest_cluster / l2_entries;
    memset(buf, 0, cs);
    size_t j = i;
    for (; j < q->n && q->entries[j].guest_cluster / l2_entries == l1i; j++) {
      uint64_t e = q->entries[j].host ? q->entries[j].host | OFLAG_COPIED : OFLAG_ZERO;
      put_be64(buf + (q->entries[j].guest_cluster % l2_entries) * 8, e);
    }
    if (pwrite_all(q, buf, cs, q->next_host, err) < 0) return -1;
    l1[l1i] = q->next_host | OFLAG_COPIED;
    q->next_host += cs;
    i = j;
  }
  return 0;
}

/* Writes the L1 table of L1_SIZE entries at the next free cluster, which *L1_OFF gets. */
static int write_l1_table(struct vs_qcow2new *q, const uint64_t *l1, uint64_t l1_size,
                          uint64_t *l1_off, struct vs_err *err) {
  uint64_t l1_clusters = div_up(l1_size * 8, q->cs);
  _cleanup_(vs_freep) uint8_t *l1buf = vs_xcalloc(l1_clusters, q->cs);
  for (uint64_t i = 0; i < l1_size; i++)
    put_be64(l1buf + i * 8, l1[i]);
  *l1_off = q->next_host;
  if (pwrite_all(q, l1buf, l1_clusters * q->cs, *l1_off, err) < 0) return -1;
  q->next_host += l1_clusters * q->cs;
  return 0;
}

/* Writes the refcounts (16 bits each) of every cluster, the refcount structures' own included,
 * at the next free cluster: *RT_OFF gets the table's offset, *RT_CLUSTERS its length. */
static int write_refcounts(struct vs_qcow2new *q, uint8_t *buf, uint64_t *rt_off,
                           uint64_t *rt_clusters, struct vs_err *err) {
  uint64_t cs = q->cs, before = q->next_host / cs, per_block = cs / 2, blocks = 0, table = 0;
  /* Grow the block and table counts until they cover themselves. */
  for (;;) {
    uint64_t total = before + table + blocks;
    uint64_t nb = div_up(total, per_block), nt = div_up(nb * 8, cs);
    if (nb == blocks && nt == table) break;
    blocks = nb;
    table = nt;
  }
  uint64_t rb_off = q->next_host + table * cs, total = before + table + blocks;
  _cleanup_(vs_freep) uint8_t *rt = vs_xcalloc(table, cs);
  for (uint64_t b = 0; b < blocks; b++) {
    memset(buf, 0, cs);
    for (uint64_t k = 0; k < per_block && b * per_block + k < total; k++)
      put_be16(buf + k * 2, 1);
    if (pwrite_all(q, buf, cs, rb_off + b * cs, err) < 0) return -1;
    put_be64(rt + b * 8, rb_off + b * cs);
  }
  *rt_off = q->next_host;
  *rt_clusters = table;
  if (pwrite_all(q, rt, table * cs, *rt_off, err) < 0) return -1;
  q->next_host = rb_off + blocks * cs;
  return 0;
}

/* Writes the header into the first cluster (BUF, a cluster's worth): with a backing file, the
 * backing format extension and the backing file name after it; without, neither. */
static int write_header(struct vs_qcow2new *q, uint8_t *buf, uint64_t l1_size, uint64_t l1_off,
                        uint64_t rt_off, uint64_t rt_clusters, struct vs_err *err) {
  memset(buf, 0, q->cs);
  size_t ext = HEADER_LENGTH, name_len = 0;
  uint64_t name_off = 0;
  if (q->backing) {
    size_t fmt_len = strlen(q->backing_format);
    name_len = strlen(q->backing);
    put_be32(buf + ext, EXT_BACKING_FORMAT);
    put_be32(buf + ext + 4, (uint32_t)fmt_len);
    memcpy(buf + ext + 8, q->backing_format, fmt_len);
    ext += 8 + ((fmt_len + 7) & ~(size_t)7);
    name_off = ext + 8;
    memcpy(buf + name_off, q->backing, name_len);
  }
  put_be32(buf + ext, 0); /* end of extensions */
  put_be32(buf + ext + 4, 0);
  put_be32(buf + 0, QCOW_MAGIC);
  put_be32(buf + 4, 3);
  put_be64(buf + 8, name_off);
  put_be32(buf + 16, (uint32_t)name_len);
  put_be32(buf + 20, q->bits);
  put_be64(buf + 24, q->size);
  put_be32(buf + 32, 0); /* no encryption */
  put_be32(buf + 36, (uint32_t)l1_size);
  put_be64(buf + 40, l1_off);
  put_be64(buf + 48, rt_off);
  put_be32(buf + 56, (uint32_t)rt_clusters);
  put_be32(buf + 60, 0); /* no snapshots */
  put_be64(buf + 64, 0);
  put_be64(buf + 72, 0); /* incompatible features */
  put_be64(buf + 80, 0); /* compatible features */
  put_be64(buf + 88, 0); /* autoclear features */
  put_be32(buf + 96, 4); /* refcount_order: 16-bit refcounts */
  put_be32(buf + 100, HEADER_LENGTH);
  return pwrite_all(q, buf, q->cs, 0, err);
}

/* Data clusters are in place: the metadata follows them, the header last (until then the file
 * is no image at all). */
static int write_metadata(struct vs_qcow2new *q, struct vs_err *err) {
  uint64_t l1_size = div_up(div_up(q->size, q->cs), q->cs / 8);
  if (l1_size == 0) l1_size = 1;
  _cleanup_(vs_freep) uint8_t *buf = vs_xcalloc(1, q->cs);
  _cleanup_(vs_freep) uint64_t *l1 = vs_xcalloc(l1_size, sizeof(uint64_t));
  uint64_t l1_off, rt_off, rt_clusters;
  if (write_l2_tables(q, l1, buf, err) < 0 || write_l1_table(q, l1, l1_size, &l1_off, err) < 0 ||
      write_refcounts(q, buf, &rt_off, &rt_clusters, err) < 0 ||
      write_header(q, buf, l1_size, l1_off, rt_off, rt_clusters, err) < 0)
    return -1;
  if (ftruncate(q->file.fd, (off_t)q->next_host) < 0)
    return vs_err_set(err, errno, "%s: %s", q->path, strerror(errno));
  return 0;
}

void vs_qcow2new_writeback(struct vs_qcow2new *q) {
  vs_newfile_writeback(&q->file);
}

int vs_qcow2new_finish(struct vs_qcow2new *q, struct vs_err *err) {
  _cleanup_(abortp) struct vs_qcow2new *owned = q;
  if (write_metadata(q, err) < 0 || vs_newfile_commit(&q->file, err) < 0) return -1;
  free_image(vs_steal(&owned));
  return 0;
}

int vs_qcow2new_empty(const char *path, uint64_t virtual_size, unsigned mode, struct vs_err *err) {
  struct vs_qcow2new *q = vs_qcow2new_create(path, virtual_size, 16, NULL, NULL, mode, err);
  return q ? vs_qcow2new_finish(q, err) : -1;
}
