#include "layer.h"

#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

struct vs_layer {
  char *path;
  struct vs_newfile file;
  uint64_t size;
  unsigned bits;
  uint64_t cs;
  char *backing, *backing_format;
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

static bool same_inode(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Whether the file PATH names would appear in directory DIR or below it. */
static bool lies_inside(const char *path, const struct stat *dir) {
  char *copy = vs_xstrdup(path);
  char *real = realpath(dirname(copy), NULL);
  free(copy);
  bool inside = false;
  while (real && !inside) {
    struct stat st;
    inside = stat(real, &st) == 0 && same_inode(&st, dir);
    char *slash = strrchr(real, '/');
    if (!slash || (slash == real && !real[1])) break;
    slash[slash == real] = 0; /* "/a" becomes "/" */
  }
  free(real);
  return inside;
}

static int refuse_input(const char *path, const char *input, struct vs_err *err) {
  if (strcmp(path, input) == 0)
    return vs_err_set(err, EINVAL,
                      "%s is an input: an output never replaces an input; write it to a new file",
                      path);
  return vs_err_set(err, EINVAL,
                    "%s is the input %s under another name: an output never replaces an input; "
                    "write it to a new file",
                    path, input);
}

int vs_layer_check_output(const char *path, const char *const *inputs, size_t n_inputs,
                          const struct vs_image *const *chains, size_t n_chains, bool force,
                          struct vs_err *err) {
  struct stat lst, st;
  bool exists = lstat(path, &lst) == 0;
  if (!exists && errno != ENOENT) return vs_err_set(err, errno, "%s: %s", path, strerror(errno));
  if (!exists) {
    char *copy = vs_xstrdup(path);
    const char *dir = dirname(copy);
    struct stat dst;
    bool is_dir = stat(dir, &dst) == 0 && S_ISDIR(dst.st_mode);
    if (!is_dir)
      vs_err_set(err, ENOENT, "%s: no directory %s to write it in: create it first", path, dir);
    free(copy);
    if (!is_dir) return -1;
  }
  bool target = exists && stat(path, &st) == 0; /* what a symlink there points to */
  if (target && S_ISDIR(st.st_mode))
    return vs_err_set(err, EISDIR, "%s is a directory: give the name of a file to write", path);
  for (size_t i = 0; i < n_inputs; i++) {
    struct stat ist;
    if (stat(inputs[i], &ist) < 0) continue;
    if (S_ISDIR(ist.st_mode) && lies_inside(path, &ist))
      return vs_err_set(err, EINVAL,
                        "%s lies inside the input directory %s: write it outside the inputs", path,
                        inputs[i]);
    if (target && same_inode(&st, &ist)) return refuse_input(path, inputs[i], err);
  }
  for (size_t i = 0; i < n_chains; i++) {
    for (const struct vs_image *img = chains[i]; target && img; img = vs_image_backing(img)) {
      struct stat ist;
      if (stat(vs_image_path(img), &ist) < 0 || !same_inode(&st, &ist)) continue;
      if (img == chains[i]) return refuse_input(path, vs_image_path(img), err);
      return vs_err_set(err, EINVAL,
                        "%s is %s, in the backing chain of the input %s: an output never "
                        "replaces an image an input reads; write it to a new file",
                        path, vs_image_path(img), vs_image_path(chains[i]));
    }
  }
  if (exists && !S_ISREG(lst.st_mode) && !S_ISLNK(lst.st_mode))
    return vs_err_set(err, EINVAL, "%s is not a regular file: not replaced; give a new file name",
                      path);
  if (target && !S_ISREG(st.st_mode))
    return vs_err_set(err, EINVAL,
                      "%s points to something that is not a regular file: not replaced; give a "
                      "new file name",
                      path);
  if (exists && !force)
    return vs_err_set(err, EEXIST,
                      "%s exists already: not replaced (choose another name, remove it, or give "
                      "--force to replace it)",
                      path);
  return 0;
}

static int pwrite_all(struct vs_layer *l, const void *buf, size_t len, uint64_t off,
                      struct vs_err *err) {
  const uint8_t *p = buf;
  while (len) {
    ssize_t n = pwrite(l->file.fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return vs_err_set(err, errno ? errno : EIO, "%s: write at %" PRIu64 " failed: %s", l->path,
                        off, strerror(errno ? errno : EIO));
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return 0;
}

struct vs_layer *vs_layer_create(const char *path, uint64_t virtual_size, unsigned cluster_bits,
                                 const char *backing, const char *backing_format,
                                 struct vs_err *err) {
  if (cluster_bits < 9 || cluster_bits > 21) {
    vs_err_set(err, EINVAL, "%s: cluster size 2^%u is outside 512 B..2 MiB", path, cluster_bits);
    return NULL;
  }
  uint64_t cs = 1ULL << cluster_bits;
  size_t meta = HEADER_LENGTH + 8 + ((strlen(backing_format) + 7) & ~7u) + 8 + strlen(backing);
  if (meta > cs || strlen(backing) > 1023) {
    vs_err_set(err, ENAMETOOLONG, "%s: backing file name \"%s\" does not fit the header", path,
               backing);
    return NULL;
  }
  struct vs_layer *l = vs_xcalloc(1, sizeof(*l));
  if (vs_newfile_open(&l->file, path, 0644, err) < 0) {
    free(l);
    return NULL;
  }
  l->path = vs_xstrdup(path);
  l->size = virtual_size;
  l->bits = cluster_bits;
  l->cs = cs;
  l->backing = vs_xstrdup(backing);
  l->backing_format = vs_xstrdup(backing_format);
  l->next_host = cs; /* cluster 0 is the header's */
  return l;
}

static void free_layer(struct vs_layer *l) {
  free(l->path);
  free(l->backing);
  free(l->backing_format);
  free(l->entries);
  free(l);
}

void vs_layer_abort(struct vs_layer *l) {
  if (!l) return;
  vs_newfile_abandon(&l->file);
  free_layer(l);
}

void vs_layer_abortp(struct vs_layer **l) {
  vs_layer_abort(*l);
}

uint64_t vs_layer_clusters(const struct vs_layer *l) {
  return l->n;
}
uint64_t vs_layer_data_clusters(const struct vs_layer *l) {
  return l->data_clusters;
}

static int add(struct vs_layer *l, uint64_t off, uint64_t host, struct vs_err *err) {
  if (off & (l->cs - 1) || off >= l->size)
    return vs_err_set(err, EINVAL, "%s: cluster offset %" PRIu64 " is not a cluster of the disk",
                      l->path, off);
  uint64_t gc = off >> l->bits;
  if (l->n && gc <= l->entries[l->n - 1].guest_cluster)
    return vs_err_set(err, EINVAL, "%s: clusters must come in increasing order", l->path);
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 256;
    l->entries = vs_xrealloc(l->entries, l->cap * sizeof(*l->entries));
  }
  l->entries[l->n++] = (struct entry){gc, host};
  return 0;
}

int vs_layer_add_data(struct vs_layer *l, uint64_t off, const void *data, struct vs_err *err) {
  if (add(l, off, l->next_host, err) < 0) return -1;
  if (pwrite_all(l, data, l->cs, l->next_host, err) < 0) return -1;
  l->next_host += l->cs;
  l->data_clusters++;
  return 0;
}

int vs_layer_add_zero(struct vs_layer *l, uint64_t off, struct vs_err *err) {
  return add(l, off, 0, err);
}

static uint64_t div_up(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

/* Writes the L2 tables, one per L1 index that has clusters, right after the data, filling L1. */
static int write_l2_tables(struct vs_layer *l, uint64_t *l1, uint8_t *buf, struct vs_err *err) {
  uint64_t cs = l->cs, l2_entries = cs / 8;
  for (size_t i = 0; i < l->n;) {
    uint64_t l1i = l->entries[i].guest_cluster / l2_entries;
    memset(buf, 0, cs);
    size_t j = i;
    for (; j < l->n && l->entries[j].guest_cluster / l2_entries == l1i; j++) {
      uint64_t e = l->entries[j].host ? l->entries[j].host | OFLAG_COPIED : OFLAG_ZERO;
      put_be64(buf + (l->entries[j].guest_cluster % l2_entries) * 8, e);
    }
    if (pwrite_all(l, buf, cs, l->next_host, err) < 0) return -1;
    l1[l1i] = l->next_host | OFLAG_COPIED;
    l->next_host += cs;
    i = j;
  }
  return 0;
}

/* Writes the L1 table of L1_SIZE entries at the next free cluster, which *L1_OFF gets. */
static int write_l1_table(struct vs_layer *l, const uint64_t *l1, uint64_t l1_size,
                          uint64_t *l1_off, struct vs_err *err) {
  uint64_t l1_clusters = div_up(l1_size * 8, l->cs);
  _cleanup_(vs_freep) uint8_t *l1buf = vs_xcalloc(l1_clusters, l->cs);
  for (uint64_t i = 0; i < l1_size; i++)
    put_be64(l1buf + i * 8, l1[i]);
  *l1_off = l->next_host;
  if (pwrite_all(l, l1buf, l1_clusters * l->cs, *l1_off, err) < 0) return -1;
  l->next_host += l1_clusters * l->cs;
  return 0;
}

/* Writes the refcounts (16 bits each) of every cluster, the refcount structures' own included,
 * at the next free cluster: *RT_OFF gets the table's offset, *RT_CLUSTERS its length. */
static int write_refcounts(struct vs_layer *l, uint8_t *buf, uint64_t *rt_off,
                           uint64_t *rt_clusters, struct vs_err *err) {
  uint64_t cs = l->cs, before = l->next_host / cs, per_block = cs / 2, blocks = 0, table = 0;
  /* Grow the block and table counts until they cover themselves. */
  for (;;) {
    uint64_t total = before + table + blocks;
    uint64_t nb = div_up(total, per_block), nt = div_up(nb * 8, cs);
    if (nb == blocks && nt == table) break;
    blocks = nb;
    table = nt;
  }
  uint64_t rb_off = l->next_host + table * cs, total = before + table + blocks;
  _cleanup_(vs_freep) uint8_t *rt = vs_xcalloc(table, cs);
  for (uint64_t b = 0; b < blocks; b++) {
    memset(buf, 0, cs);
    for (uint64_t k = 0; k < per_block && b * per_block + k < total; k++)
      put_be16(buf + k * 2, 1);
    if (pwrite_all(l, buf, cs, rb_off + b * cs, err) < 0) return -1;
    put_be64(rt + b * 8, rb_off + b * cs);
  }
  *rt_off = l->next_host;
  *rt_clusters = table;
  if (pwrite_all(l, rt, table * cs, *rt_off, err) < 0) return -1;
  l->next_host = rb_off + blocks * cs;
  return 0;
}

/* Writes the header, with the backing format extension and the backing file name, into the
 * first cluster (BUF, a cluster's worth). */
static int write_header(struct vs_layer *l, uint8_t *buf, uint64_t l1_size, uint64_t l1_off,
                        uint64_t rt_off, uint64_t rt_clusters, struct vs_err *err) {
  memset(buf, 0, l->cs);
  size_t fmt_len = strlen(l->backing_format), name_len = strlen(l->backing);
  size_t ext = HEADER_LENGTH;
  put_be32(buf + ext, EXT_BACKING_FORMAT);
  put_be32(buf + ext + 4, (uint32_t)fmt_len);
  memcpy(buf + ext + 8, l->backing_format, fmt_len);
  ext += 8 + ((fmt_len + 7) & ~(size_t)7);
  put_be32(buf + ext, 0); /* end of extensions */
  put_be32(buf + ext + 4, 0);
  uint64_t name_off = ext + 8;
  memcpy(buf + name_off, l->backing, name_len);
  put_be32(buf + 0, QCOW_MAGIC);
  put_be32(buf + 4, 3);
  put_be64(buf + 8, name_off);
  put_be32(buf + 16, (uint32_t)name_len);
  put_be32(buf + 20, l->bits);
  put_be64(buf + 24, l->size);
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
  return pwrite_all(l, buf, l->cs, 0, err);
}

/* Data clusters are in place: the metadata follows them, the header last (until then the file
 * is no image at all). */
static int write_metadata(struct vs_layer *l, struct vs_err *err) {
  uint64_t l1_size = div_up(div_up(l->size, l->cs), l->cs / 8);
  if (l1_size == 0) l1_size = 1;
  _cleanup_(vs_freep) uint8_t *buf = vs_xcalloc(1, l->cs);
  _cleanup_(vs_freep) uint64_t *l1 = vs_xcalloc(l1_size, sizeof(uint64_t));
  uint64_t l1_off, rt_off, rt_clusters;
  if (write_l2_tables(l, l1, buf, err) < 0 || write_l1_table(l, l1, l1_size, &l1_off, err) < 0 ||
      write_refcounts(l, buf, &rt_off, &rt_clusters, err) < 0 ||
      write_header(l, buf, l1_size, l1_off, rt_off, rt_clusters, err) < 0)
    return -1;
  if (ftruncate(l->file.fd, (off_t)l->next_host) < 0)
    return vs_err_set(err, errno, "%s: %s", l->path, strerror(errno));
  return 0;
}

int vs_layer_finish(struct vs_layer *l, struct vs_err *err) {
  _cleanup_(vs_layer_abortp) struct vs_layer *owned = l;
  if (write_metadata(l, err) < 0 || vs_newfile_commit(&l->file, err) < 0) return -1;
  free_layer(vs_steal(&owned));
  return 0;
}
