/* fs_ext.c: ext2/3/4 for the direct reader (fs.h), through libext2fs with an io_manager that
 * reads through our image reader; and the files a patch set's blocks belong to. */
#include "fs.h"
#include "dl.h"
#include "source_image.h"
#include "strmap.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libext2fs and its com_err are opened on first use (dl.h): by the first ext file system read,
 * or a patch set's first changed file looked for. A command that reads no ext file system
 * (a patch set's compare, a Windows or XFS guest) does not load them at start-up, where they
 * cost about 2 ms from a cold page cache. */
/* clang-format off */
#define EXT2FS_SYMBOLS(X) X(ext2fs_block_iterate3) X(ext2fs_close_free) X(ext2fs_close_inode_scan) \
  X(ext2fs_dir_iterate2) X(ext2fs_dirent_name_len) X(ext2fs_file_close) \
  X(ext2fs_file_open2) X(ext2fs_file_read) X(ext2fs_get_next_inode) \
  X(ext2fs_inline_data_get) X(ext2fs_inline_data_size) \
  X(ext2fs_inode_has_valid_blocks2) X(ext2fs_is_fast_symlink) X(ext2fs_namei) \
  X(ext2fs_open2) X(ext2fs_open_inode_scan) X(ext2fs_read_inode)
#define COM_ERR_SYMBOLS(X) X(error_message)
/* clang-format on */
VS_DL_LIBRARY(ext2fs_lib, VS_SONAME_EXT2FS, "libext2fs2", EXT2FS_SYMBOLS);
VS_DL_LIBRARY(com_err_lib, VS_SONAME_COM_ERR, "libcom-err2", COM_ERR_SYMBOLS);

/* Opens both libraries; 0, else -1 and ERR. */
static int load_ext2fs(struct vs_err *err) {
  return vs_dl_load(&ext2fs_lib, err) < 0 || vs_dl_load(&com_err_lib, err) < 0 ? -1 : 0;
}

struct part_io {
  struct vs_image *img;
  uint64_t offset, size;
};

struct ext {
  ext2_filsys fs;
  struct part_io *io;
};

/* ------------------------------------------------------------------------- io manager */

static errcode_t io_open(const char *name, int flags, io_channel *channel);

static errcode_t io_close(io_channel ch) {
  if (--ch->refcount > 0) return 0;
  free(ch->name);
  free(ch);
  return 0;
}

static errcode_t io_set_blksize(io_channel ch, int blksize) {
  ch->block_size = blksize;
  return 0;
}

static errcode_t io_read64(io_channel ch, unsigned long long block, int count, void *data) {
  struct part_io *p = ch->private_data;
  uint64_t size =
      count < 0 ? (uint64_t)(-(int64_t)count) : (uint64_t)count * (uint64_t)ch->block_size;
  uint64_t off = block * (uint64_t)ch->block_size;
  if (off > p->size || size > p->size - off) return EXT2_ET_SHORT_READ;
  struct vs_err err = {0};
  if (vs_image_pread(p->img, data, (size_t)size, p->offset + off, &err) < 0) {
    vs_log(VS_LOG_WARNING, "%s", vs_err_msg(&err));
    vs_err_clear(&err);
    return EXT2_ET_SHORT_READ;
  }
  return 0;
}

static errcode_t io_read(io_channel ch, unsigned long block, int count, void *data) {
  return io_read64(ch, block, count, data);
}

static errcode_t io_write(io_channel ch, unsigned long block, int count, const void *data) {
  (void)ch, (void)block, (void)count, (void)data;
  return EXT2_ET_RO_FILSYS;
}

static errcode_t io_write64(io_channel ch, unsigned long long block, int count, const void *data) {
  (void)ch, (void)block, (void)count, (void)data;
  return EXT2_ET_RO_FILSYS;
}

static errcode_t io_flush(io_channel ch) {
  (void)ch;
  return 0;
}

static errcode_t io_set_option(io_channel ch, const char *option, const char *arg) {
  (void)ch, (void)option, (void)arg;
  return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager vs_io_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "vmscope image",
    .open = io_open,
    .close = io_close,
    .set_blksize = io_set_blksize,
    .read_blk = io_read,
    .write_blk = io_write,
    .flush = io_flush,
    .set_option = io_set_option,
    .read_blk64 = io_read64,
    .write_blk64 = io_write64,
};

/* libext2fs names a device by a string: ours carries the address of the part_io. */
static errcode_t io_open(const char *name, int flags, io_channel *channel) {
  void *p = NULL;
  if (!name || sscanf(name, "vmscope:%p", &p) != 1 || !p) return EXT2_ET_BAD_DEVICE_NAME;
  if (flags & IO_FLAG_RW) return EXT2_ET_RO_FILSYS;
  io_channel ch = calloc(1, sizeof(*ch));
  if (!ch) return EXT2_ET_NO_MEMORY;
  ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
  ch->manager = &vs_io_manager;
  ch->name = strdup(name);
  ch->block_size = 1024;
  ch->refcount = 1;
  ch->private_data = p;
  if (!ch->name) {
    free(ch);
    return EXT2_ET_NO_MEMORY;
  }
  *channel = ch;
  return 0;
}

bool vs_fs_ext_handles(const char *fstype) {
  return strcmp(fstype, "ext2") == 0 || strcmp(fstype, "ext3") == 0 || strcmp(fstype, "ext4") == 0;
}

static ext2_filsys open_fs(struct vs_image *img, const struct vs_volume *v, struct part_io **io,
                           struct vs_err *err) {
  *io = vs_xcalloc(1, sizeof(**io));
  (*io)->img = img;
  (*io)->offset = v->offset;
  (*io)->size = v->size;
  char name[64];
  snprintf(name, sizeof(name), "vmscope:%p", (void *)*io); /* fits: a pointer is short */
  ext2_filsys fs = NULL;
  errcode_t rc = sym_ext2fs_open2(name, NULL, EXT2_FLAG_64BITS | EXT2_FLAG_IGNORE_CSUM_ERRORS, 0, 0,
                                  &vs_io_manager, &fs);
  if (rc) {
    vs_err_set(err, EIO, "%s: partition %d (%s): libext2fs cannot open it: %s", vs_image_path(img),
               v->number, v->fstype, sym_error_message(rc));
    free(*io);
    *io = NULL;
    return NULL;
  }
  return fs;
}

/* --------------------------------------------------------------------------- tree ops */

static int lookup(struct ext *m, const char *rel, const char *path, ext2_ino_t *ino,
                  struct ext2_inode *inode, struct vs_err *err) {
  errcode_t rc = *rel ? sym_ext2fs_namei(m->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, rel, ino) : 0;
  if (!*rel) *ino = EXT2_ROOT_INO;
  if (rc == EXT2_ET_FILE_NOT_FOUND)
    return vs_err_set(err, ENOENT, "%s: %s", path, strerror(ENOENT));
  if (rc) return vs_err_set(err, EIO, "%s: %s", path, sym_error_message(rc));
  rc = sym_ext2fs_read_inode(m->fs, *ino, inode);
  if (rc)
    return vs_err_set(err, EIO, "%s: reading inode %u: %s", path, *ino, sym_error_message(rc));
  return 0;
}

static int ext_lstat(void *fs, const char *rel, const char *path, struct vs_stat *st,
                     struct vs_err *err) {
  ext2_ino_t ino;
  struct ext2_inode inode;
  if (lookup(fs, rel, path, &ino, &inode, err) < 0) return -1;
  st->type = vs_fs_mode_type(inode.i_mode);
  st->size = EXT2_I_SIZE(&inode);
  st->mode = inode.i_mode & 07777;
  st->uid = inode_uid(inode);
  st->gid = inode_gid(inode);
  st->mtime = (int64_t)inode.i_mtime;
  return 0;
}

/* Reads a regular file or a slow symlink's content, at most MAX bytes. */
static int read_inode_data(struct ext *m, ext2_ino_t ino, struct ext2_inode *inode,
                           const char *path, size_t max, struct vs_buf *out, struct vs_err *err) {
  uint64_t size = EXT2_I_SIZE(inode);
  if (size > max)
    return vs_err_set(err, EFBIG, "%s: %" PRIu64 " bytes, over the limit of %zu", path, size, max);
  ext2_file_t file;
  errcode_t rc = sym_ext2fs_file_open2(m->fs, ino, inode, 0, &file);
  if (rc) return vs_err_set(err, EIO, "%s: %s", path, sym_error_message(rc));
  char chunk[65536];
  int ret = 0;
  for (;;) {
    unsigned int got = 0;
    rc = sym_ext2fs_file_read(file, chunk, sizeof(chunk), &got);
    if (rc) {
      ret = vs_err_set(err, EIO, "%s: read: %s", path, sym_error_message(rc));
      break;
    }
    if (got == 0) break;
    if (out->len + got > max) {
      ret =
          vs_err_set(err, EFBIG, "%s: longer than its size says; over the limit of %zu", path, max);
      break;
    }
    vs_buf_add(out, chunk, got);
  }
  sym_ext2fs_file_close(file);
  return ret;
}

static int ext_readlink(void *fs, const char *rel, const char *path, char **target,
                        struct vs_err *err) {
  struct ext *m = fs;
  ext2_ino_t ino;
  struct ext2_inode inode;
  if (lookup(m, rel, path, &ino, &inode, err) < 0) return -1;
  if (vs_fs_mode_type(inode.i_mode) != VS_FT_LNK)
    return vs_err_set(err, EINVAL, "%s: not a symlink", path);
  uint64_t size = EXT2_I_SIZE(&inode);
  if (size > VS_SOURCE_MAX_PATH)
    return vs_err_set(err, ENAMETOOLONG, "%s: symlink target longer than %d bytes", path,
                      VS_SOURCE_MAX_PATH);
  if (inode.i_flags & EXT4_INLINE_DATA_FL) {
    char buf[VS_SOURCE_MAX_PATH + 64];
    size_t n = sizeof(buf);
    errcode_t rc = sym_ext2fs_inline_data_size(m->fs, ino, &n);
    if (rc || n > sizeof(buf) || (rc = sym_ext2fs_inline_data_get(m->fs, ino, &inode, buf, &n)))
      return vs_err_set(err, EIO, "%s: inline symlink: %s", path,
                        rc ? sym_error_message(rc) : "too long");
    *target = vs_xstrndup(buf, size < n ? (size_t)size : n);
    return 0;
  }
  if (sym_ext2fs_is_fast_symlink(&inode)) {
    if (size >= sizeof(inode.i_block))
      return vs_err_set(err, EINVAL, "%s: fast symlink claims %" PRIu64 " bytes", path, size);
    *target = vs_xstrndup((const char *)inode.i_block, (size_t)size);
    return 0;
  }
  struct vs_buf b = {0};
  if (read_inode_data(m, ino, &inode, path, VS_SOURCE_MAX_PATH, &b, err) < 0) {
    vs_buf_free(&b);
    return -1;
  }
  *target = vs_xstrndup(b.data ? b.data : "", b.len);
  vs_buf_free(&b);
  return 0;
}

static int ext_read(void *fs, const char *rel, const char *path, size_t max, struct vs_buf *out,
                    struct vs_err *err) {
  ext2_ino_t ino;
  struct ext2_inode inode;
  if (lookup(fs, rel, path, &ino, &inode, err) < 0) return -1;
  if (vs_fs_mode_type(inode.i_mode) != VS_FT_REG)
    return vs_err_set(err, EINVAL, "%s: is a %s, not a regular file", path,
                      vs_ftype_name(vs_fs_mode_type(inode.i_mode)));
  return read_inode_data(fs, ino, &inode, path, max, out, err);
}

struct list_ctx {
  char **v;
  size_t n, max;
  bool truncated;
};

static int list_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent, int offset,
                   int blocksize, char *buf, void *priv) {
  (void)dir, (void)entry, (void)offset, (void)blocksize, (void)buf;
  struct list_ctx *c = priv;
  int len = sym_ext2fs_dirent_name_len(dirent);
  if ((len == 1 && dirent->name[0] == '.') ||
      (len == 2 && dirent->name[0] == '.' && dirent->name[1] == '.'))
    return 0;
  if (len == 0 || memchr(dirent->name, '/', (size_t)len) || memchr(dirent->name, '\0', (size_t)len))
    return 0; /* not a name a path can hold */
  if (c->n >= c->max) {
    c->truncated = true;
    return DIRENT_ABORT;
  }
  vs_strv_take(&c->v, &c->n, vs_xstrndup(dirent->name, (size_t)len));
  return 0;
}

static int ext_list(void *fs, const char *rel, const char *path, size_t max, char ***names,
                    size_t *count, bool *truncated, struct vs_err *err) {
  struct ext *m = fs;
  ext2_ino_t ino;
  struct ext2_inode inode;
  if (lookup(m, rel, path, &ino, &inode, err) < 0) return -1;
  if (vs_fs_mode_type(inode.i_mode) != VS_FT_DIR)
    return vs_err_set(err, ENOTDIR, "%s: not a directory", path);
  struct list_ctx c = {.max = max};
  errcode_t rc = sym_ext2fs_dir_iterate2(m->fs, ino, 0, NULL, list_cb, &c);
  if (rc) {
    vs_strv_free(c.v, c.n);
    return vs_err_set(err, EIO, "%s: reading the directory: %s", path, sym_error_message(rc));
  }
  if (c.n) qsort(c.v, c.n, sizeof(char *), vs_cmp_strp);
  *names = c.v;
  *count = c.n;
  *truncated = c.truncated;
  return 0;
}

static void ext_close(void *fs) {
  struct ext *m = fs;
  if (!m) return;
  sym_ext2fs_close_free(&m->fs);
  free(m->io);
  free(m);
}

static const struct vs_fs_ops ext_ops = {
    .lstat = ext_lstat,
    .readlink = ext_readlink,
    .read = ext_read,
    .list = ext_list,
    .close = ext_close,
};

int vs_fs_ext_open(struct vs_image *img, const struct vs_volume *v, struct vs_fs *fs,
                   struct vs_err *err) {
  if (load_ext2fs(err) < 0)
    return vs_err_prefix(err, "%s: partition %d (%s)", vs_image_path(img), v->number, v->fstype);
  struct part_io *io;
  ext2_filsys e = open_fs(img, v, &io, err);
  if (!e) return -1;
  struct ext *m = vs_xcalloc(1, sizeof(*m));
  m->fs = e;
  m->io = io;
  *fs = (struct vs_fs){.ops = &ext_ops, .impl = m};
  if (e->super->s_feature_incompat & EXT3_FEATURE_INCOMPAT_RECOVER)
    fs->note = "the journal of the root file system needs recovery (the guest is running or "
               "crashed): changes still in the journal are not seen";
  return 0;
}

/* ------------------------------------------------------------- blocks -> files (patch sets) */

struct block_hits {
  const uint64_t *ranges; /* sorted pairs: offset, length */
  size_t n_ranges;
  uint64_t vol_offset;
  unsigned blocksize;
  struct vs_image *img, *base; /* BASE: compare the block, so only real changes count */
  uint8_t *a, *b;
  bool hit;
};

static bool in_ranges(const struct block_hits *h, uint64_t off) {
  size_t lo = 0, hi = h->n_ranges;
  while (lo < hi) { /* the last range starting at or before OFF */
    size_t mid = (lo + hi) / 2;
    if (h->ranges[2 * mid] <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo > 0 && off < h->ranges[2 * (lo - 1)] + h->ranges[2 * (lo - 1) + 1];
}

static int block_cb(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk,
                    int ref_offset, void *priv) {
  (void)fs;
  (void)blockcnt;
  (void)ref_blk;
  (void)ref_offset;
  struct block_hits *h = priv;
  uint64_t off = h->vol_offset + *blocknr * (uint64_t)h->blocksize;
  if (!in_ranges(h, off) && !in_ranges(h, off + h->blocksize - 1)) return 0;
  /* Clusters hold many blocks: the block itself must differ. */
  if (h->base && off + h->blocksize <= vs_image_size(h->base) &&
      vs_image_pread(h->img, h->a, h->blocksize, off, NULL) == 0 &&
      vs_image_pread(h->base, h->b, h->blocksize, off, NULL) == 0 &&
      memcmp(h->a, h->b, h->blocksize) == 0)
    return 0;
  h->hit = true;
  return BLOCK_ABORT;
}

struct name_walk {
  ext2_filsys fs;
  struct vs_strmap *hits; /* inode number (text) -> NULL */
  json_t *out;
  int volume;
  struct vs_buf path;
  size_t budget; /* directory entries left to look at */
  int depth;
};

static int name_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent, int offset,
                   int blocksize, char *buf, void *priv) {
  (void)dir;
  (void)entry;
  (void)offset;
  (void)blocksize;
  (void)buf;
  struct name_walk *w = priv;
  if (w->budget == 0) return DIRENT_ABORT;
  w->budget--;
  int len = sym_ext2fs_dirent_name_len(dirent);
  if ((len == 1 && dirent->name[0] == '.') ||
      (len == 2 && dirent->name[0] == '.' && dirent->name[1] == '.'))
    return 0;
  size_t keep = w->path.len;
  vs_buf_addc(&w->path, '/');
  vs_buf_add_sanitized(&w->path, dirent->name, (size_t)len); /* guest-written names */
  char key[16];
  snprintf(key, sizeof(key), "%u", dirent->inode);
  if (vs_strmap_has(w->hits, key)) {
    json_array_append_new(w->out, json_pack("{sisssI}", "volume", w->volume, "path", w->path.data,
                                            "inode", (json_int_t)dirent->inode));
    vs_strmap_remove(w->hits, key); /* one name per file */
  }
  struct ext2_inode inode;
  if (w->depth < 64 && sym_ext2fs_read_inode(w->fs, dirent->inode, &inode) == 0 &&
      LINUX_S_ISDIR(inode.i_mode)) {
    w->depth++;
    sym_ext2fs_dir_iterate2(w->fs, dirent->inode, 0, NULL, name_cb, w);
    w->depth--;
  }
  w->path.len = keep;
  if (w->path.data) w->path.data[keep] = '\0';
  return 0;
}

int vs_image_file_volumes(struct vs_image *img, struct vs_volume **vols, struct vs_err *err) {
  *vols = NULL;
  struct vs_volume *all = NULL;
  int n_all = vs_image_volumes(img, &all, err), n = 0;
  if (n_all < 0) return -1;
  for (int v = 0; v < n_all; v++)
    if (vs_fs_ext_handles(all[v].fstype)) all[n++] = all[v];
  if (n && load_ext2fs(err) < 0) {
    vs_err_prefix(err, "%s: partition %d (%s)", vs_image_path(img), all[0].number, all[0].fstype);
    free(all);
    return -1;
  }
  *vols = all;
  return n;
}

void vs_image_files_in_ranges(struct vs_image *img, struct vs_image *base,
                              const struct vs_volume *vols, int n_vols, const uint64_t *ranges,
                              size_t n_ranges, json_t **files) {
  *files = json_array();
  for (int v = 0; v < n_vols; v++) {
    if (!vs_fs_ext_handles(vols[v].fstype) || load_ext2fs(NULL) < 0) continue;
    struct part_io *io = NULL;
    ext2_filsys fs = open_fs(img, &vols[v], &io, NULL);
    if (!fs) continue;
    struct vs_strmap *hits = vs_strmap_new(NULL);
    ext2_inode_scan scan = NULL;
    uint8_t *a = vs_xmalloc(fs->blocksize), *b = vs_xmalloc(fs->blocksize);
    if (sym_ext2fs_open_inode_scan(fs, 0, &scan) == 0) {
      ext2_ino_t ino;
      struct ext2_inode inode;
      while (sym_ext2fs_get_next_inode(scan, &ino, &inode) == 0 && ino &&
             vs_strmap_count(hits) < 10000) {
        if (!inode.i_links_count || inode.i_dtime ||
            !sym_ext2fs_inode_has_valid_blocks2(fs, &inode))
          continue;
        if (!LINUX_S_ISREG(inode.i_mode) && !LINUX_S_ISLNK(inode.i_mode)) continue;
        struct block_hits h = {ranges, n_ranges, vols[v].offset, fs->blocksize, img, base,
                               a,      b,        false};
        sym_ext2fs_block_iterate3(fs, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, NULL,
                                  block_cb, &h);
        if (!h.hit) continue;
        char key[16];
        snprintf(key, sizeof(key), "%u", ino);
        vs_strmap_put(hits, key, NULL);
      }
      sym_ext2fs_close_inode_scan(scan);
    }
    if (vs_strmap_count(hits)) { /* their names: one walk of the directory tree */
      struct name_walk w = {fs, hits, *files, vols[v].number, {0}, 1000000, 0};
      sym_ext2fs_dir_iterate2(fs, EXT2_ROOT_INO, 0, NULL, name_cb, &w);
      vs_buf_free(&w.path);
    }
    vs_strmap_free(hits);
    free(a);
    free(b);
    sym_ext2fs_close_free(&fs);
    free(io);
  }
}
