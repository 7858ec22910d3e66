#include "source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct vs_source {
  const struct vs_source_ops *ops;
  void *impl;
  char *kind, *backend, *path;
  char **notes; /* path, reason, path, reason, ... */
  size_t n_notes;
  char **packages; /* name, version, format, ... */
  size_t n_packages;
};

void vs_source_add_package(struct vs_source *src, const char *name, const char *version,
                           const char *format) {
  vs_strv_add(&src->packages, &src->n_packages, name);
  vs_strv_add(&src->packages, &src->n_packages, version);
  vs_strv_add(&src->packages, &src->n_packages, format);
}

bool vs_source_package(const struct vs_source *src, size_t i, const char **name,
                       const char **version, const char **format) {
  if (3 * i + 2 >= src->n_packages) return false;
  *name = src->packages[3 * i];
  *version = src->packages[3 * i + 1];
  *format = src->packages[3 * i + 2];
  return true;
}

void vs_source_add_note(struct vs_source *src, const char *path, const char *fmt, ...) {
  if (src->n_notes >= 2 * 256) return;
  va_list ap;
  va_start(ap, fmt);
  char *reason = NULL;
  if (vasprintf(&reason, fmt, ap) < 0) abort();
  va_end(ap);
  vs_strv_add(&src->notes, &src->n_notes, path);
  vs_strv_take(&src->notes, &src->n_notes, reason);
}

bool vs_source_note(const struct vs_source *src, size_t i, const char **path, const char **reason) {
  if (2 * i + 1 >= src->n_notes) return false;
  *path = src->notes[2 * i];
  *reason = src->notes[2 * i + 1];
  return true;
}

struct vs_source *vs_source_new(const struct vs_source_ops *ops, void *impl, const char *kind,
                                const char *backend, const char *path) {
  struct vs_source *src = vs_xcalloc(1, sizeof(*src));
  src->ops = ops;
  src->impl = impl;
  src->kind = vs_xstrdup(kind);
  src->backend = vs_xstrdup(backend);
  src->path = vs_xstrdup(path);
  return src;
}

void vs_source_free(struct vs_source *src) {
  if (!src) return;
  if (src->ops->close) src->ops->close(src->impl);
  vs_strv_free(src->notes, src->n_notes);
  vs_strv_free(src->packages, src->n_packages);
  free(src->kind);
  free(src->backend);
  free(src->path);
  free(src);
}

uint64_t vs_source_bytes_read(const struct vs_source *src) {
  return src->ops->bytes_read ? src->ops->bytes_read(src->impl) : 0;
}

void vs_source_freep(struct vs_source **src) {
  vs_source_free(*src);
}

const char *vs_source_kind(const struct vs_source *src) {
  return src->kind;
}
const char *vs_source_backend(const struct vs_source *src) {
  return src->backend;
}
const char *vs_source_path(const struct vs_source *src) {
  return src->path;
}

const char *vs_ftype_name(enum vs_ftype t) {
  static const char *const names[] = {"regular file", "directory", "symlink", "character device",
                                      "block device", "FIFO",      "socket"};
  return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

/* -------------------------------------------------------------------------- resolution */

/* "..": RES loses its last component; at the tree's root it stays there. */
static void drop_last(struct vs_buf *res) {
  char *slash = res->len ? strrchr(res->data, '/') : NULL;
  if (slash) {
    res->len = (size_t)(slash - res->data);
    res->data[res->len] = '\0';
  }
}

/* RES names a symlink: its target goes in front of what TODO still holds from NEXT on, and
 * RES goes back to the link's directory (SAVED bytes), or to the tree's root for an absolute
 * target. The expansion is bounded: symlinks cannot grow a path without limit. */
static int splice_link(struct vs_source *src, const char *path, struct vs_buf *res, size_t saved,
                       struct vs_buf *todo, size_t next, struct vs_err *err) {
  _cleanup_(vs_freep) char *target = NULL;
  if (src->ops->readlink(src->impl, res->data, &target, err) < 0) return -1;
  struct vs_buf rest = {0};
  vs_buf_adds(&rest, target);
  vs_buf_addc(&rest, '/');
  vs_buf_adds(&rest, todo->data + next);
  if (rest.len >= 4 * VS_SOURCE_MAX_PATH) {
    vs_buf_free(&rest);
    return vs_err_set(err, ENAMETOOLONG, "%s: symlinks expand past %d bytes", path,
                      4 * VS_SOURCE_MAX_PATH);
  }
  vs_buf_free(todo);
  *todo = rest;
  res->len = todo->data[0] == '/' ? 0 : saved;
  if (res->data) res->data[res->len] = '\0';
  return 0;
}

/* Resolution keeps the result as "/a/b/c" in RES and the components still to walk in TODO,
 * a path whose front is consumed; a symlink's target is spliced in front of the rest. */
int vs_source_resolve(struct vs_source *src, const char *path, bool follow_last, char **resolved,
                      struct vs_err *err) {
  if (strlen(path) >= VS_SOURCE_MAX_PATH)
    return vs_err_set(err, ENAMETOOLONG, "%s: path is longer than %d bytes", path,
                      VS_SOURCE_MAX_PATH);
  struct vs_buf res = {0}, todo = {0};
  vs_buf_adds(&todo, path);
  int links = 0, rc = -1;
  size_t at = 0; /* start of the unconsumed part of TODO */
  for (;;) {
    while (todo.data[at] == '/')
      at++;
    if (!todo.data[at]) break;
    const char *comp = todo.data + at;
    size_t clen = strcspn(comp, "/");
    size_t next = at + clen;
    bool is_last =
        todo.data[next] == '\0' || todo.data[next + strspn(todo.data + next, "/")] == '\0';
    if (clen == 1 && comp[0] == '.') {
      at = next;
      continue;
    }
    if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
      drop_last(&res);
      at = next;
      continue;
    }
    size_t saved = res.len;
    vs_buf_addc(&res, '/');
    vs_buf_add(&res, comp, clen);
    if (res.len >= VS_SOURCE_MAX_PATH) {
      vs_err_set(err, ENAMETOOLONG, "%s: resolves to a path longer than %d bytes", path,
                 VS_SOURCE_MAX_PATH);
      goto out;
    }
    if (is_last && !follow_last) {
      at = next;
      continue;
    }
    struct vs_stat st;
    if (src->ops->lstat(src->impl, res.data, &st, err) < 0) goto out;
    if (st.type == VS_FT_LNK) {
      if (++links > VS_SOURCE_MAX_LINKS) {
        vs_err_set(err, ELOOP, "%s: more than %d symlinks (a loop?)", path, VS_SOURCE_MAX_LINKS);
        goto out;
      }
      if (splice_link(src, path, &res, saved, &todo, next, err) < 0) goto out;
      at = 0;
      continue;
    }
    if (!is_last && st.type != VS_FT_DIR) {
      vs_err_set(err, ENOTDIR, "%s: %s is a %s, not a directory", path, res.data,
                 vs_ftype_name(st.type));
      goto out;
    }
    at = next;
  }
  if (res.len == 0) vs_buf_addc(&res, '/');
  *resolved = vs_buf_steal(&res);
  rc = 0;
out:
  vs_buf_free(&res);
  vs_buf_free(&todo);
  return rc;
}

int vs_source_stat(struct vs_source *src, const char *path, bool follow, struct vs_stat *st,
                   struct vs_err *err) {
  _cleanup_(vs_freep) char *real = NULL;
  if (vs_source_resolve(src, path, follow, &real, err) < 0) return -1;
  return src->ops->lstat(src->impl, real, st, err);
}

int vs_source_readlink(struct vs_source *src, const char *path, char **target, struct vs_err *err) {
  _cleanup_(vs_freep) char *real = NULL;
  if (vs_source_resolve(src, path, false, &real, err) < 0) return -1;
  return src->ops->readlink(src->impl, real, target, err);
}

int vs_source_read(struct vs_source *src, const char *path, size_t max, struct vs_buf *out,
                   struct vs_err *err) {
  _cleanup_(vs_freep) char *real = NULL;
  vs_buf_reset(out);
  if (vs_source_resolve(src, path, true, &real, err) < 0) return -1;
  return src->ops->read(src->impl, real, max, out, err);
}

int vs_source_list(struct vs_source *src, const char *path, char ***names, size_t *count,
                   bool *truncated, struct vs_err *err) {
  _cleanup_(vs_freep) char *real = NULL;
  if (vs_source_resolve(src, path, true, &real, err) < 0) return -1;
  bool trunc = false;
  if (src->ops->list(src->impl, real, VS_SOURCE_MAX_DIR_ENTRIES, names, count, &trunc, err) < 0)
    return -1;
  if (truncated) *truncated = trunc;
  return 0;
}

/* ---------------------------------------------------------------------------------- glob */

struct glob_out {
  char **paths;
  size_t n;
  bool truncated;
};

static bool has_wildcard(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] == '*' || s[i] == '?' || s[i] == '[') return true;
  return false;
}

static void glob_add(struct glob_out *g, const char *path) {
  if (g->n >= VS_SOURCE_MAX_GLOB) {
    g->truncated = true;
    return;
  }
  vs_strv_add(&g->paths, &g->n, path);
}

/* Matches the components of REST below PREFIX (a guest path, "" for the root). */
static void glob_walk(struct vs_source *src, const char *prefix, const char *rest,
                      struct glob_out *g) {
  while (*rest == '/')
    rest++;
  if (!*rest) {
    struct vs_stat st;
    struct vs_err e = {0};
    if (vs_source_stat(src, *prefix ? prefix : "/", false, &st, &e) == 0)
      glob_add(g, *prefix ? prefix : "/");
    vs_err_clear(&e);
    return;
  }
  size_t clen = strcspn(rest, "/");
  if (!has_wildcard(rest, clen)) {
    char *next = vs_xasprintf("%s/%.*s", prefix, (int)clen, rest);
    glob_walk(src, next, rest + clen, g);
    free(next);
    return;
  }
  char *pattern = vs_xstrndup(rest, clen);
  char **names = NULL;
  size_t n = 0;
  struct vs_err e = {0};
  bool trunc = false;
  if (vs_source_list(src, *prefix ? prefix : "/", &names, &n, &trunc, &e) == 0) {
    if (trunc) g->truncated = true;
    for (size_t i = 0; i < n && !(g->truncated && g->n >= VS_SOURCE_MAX_GLOB); i++) {
      if (fnmatch(pattern, names[i], FNM_PERIOD) != 0) continue;
      char *next = vs_xasprintf("%s/%s", prefix, names[i]);
      glob_walk(src, next, rest + clen, g);
      free(next);
    }
  }
  vs_err_clear(&e);
  vs_strv_free(names, n);
  free(pattern);
}

int vs_source_glob(struct vs_source *src, const char *pattern, char ***paths, size_t *count,
                   bool *truncated, struct vs_err *err) {
  if (pattern[0] != '/')
    return vs_err_set(err, EINVAL, "%s: a watch pattern must be an absolute guest path", pattern);
  struct glob_out g = {0};
  glob_walk(src, "", pattern, &g);
  if (g.n) qsort(g.paths, g.n, sizeof(char *), vs_cmp_strp);
  *paths = g.paths;
  *count = g.n;
  if (truncated) *truncated = g.truncated;
  return 0;
}

/* ---------------------------------------------------------------------- dir backend */

struct dir_impl {
  int root_fd; /* O_PATH */
  char *root;
  bool remove_on_close;
};

/* Opens the directory holding resolved PATH's final component, walking every component with
 * O_NOFOLLOW so that a link swapped in after resolution is refused rather than followed.
 * *NAME points into PATH at the final component ("" for the root itself). */
static int open_parent(struct dir_impl *d, const char *path, const char **name,
                       struct vs_err *err) {
  int fd = dup(d->root_fd);
  if (fd < 0) return vs_err_set(err, errno, "%s: dup: %s", d->root, strerror(errno));
  const char *p = path;
  for (;;) {
    while (*p == '/')
      p++;
    size_t len = strcspn(p, "/");
    const char *after = p + len;
    while (*after == '/')
      after++;
    if (!*after) {
      *name = p;
      return fd;
    }
    char comp[256];
    if (len >= sizeof(comp)) {
      close(fd);
      return vs_err_set(err, ENAMETOOLONG, "%s: a path component is longer than 255 bytes", path);
    }
    memcpy(comp, p, len);
    comp[len] = '\0';
    int next = openat(fd, comp, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
    int saved = errno;
    close(fd);
    if (next < 0) return vs_err_set(err, saved, "%s: %s", path, strerror(saved));
    fd = next;
    p += len;
  }
}

static enum vs_ftype ftype_of(mode_t m) {
  if (S_ISREG(m)) return VS_FT_REG;
  if (S_ISDIR(m)) return VS_FT_DIR;
  if (S_ISLNK(m)) return VS_FT_LNK;
  if (S_ISCHR(m)) return VS_FT_CHR;
  if (S_ISBLK(m)) return VS_FT_BLK;
  if (S_ISFIFO(m)) return VS_FT_FIFO;
  return VS_FT_SOCK;
}

static void fill_stat(struct vs_stat *st, const struct stat *s) {
  st->type = ftype_of(s->st_mode);
  st->size = (uint64_t)s->st_size;
  st->mode = s->st_mode & 07777;
  st->uid = s->st_uid;
  st->gid = s->st_gid;
  st->mtime = s->st_mtim.tv_sec;
}

static int dir_lstat(void *impl, const char *path, struct vs_stat *st, struct vs_err *err) {
  struct dir_impl *d = impl;
  const char *name;
  _cleanup_(vs_closep) int fd = open_parent(d, path, &name, err);
  if (fd < 0) return -1;
  struct stat s;
  if (fstatat(fd, *name ? name : "", &s, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) < 0)
    return vs_err_set(err, errno, "%s: %s", path, strerror(errno));
  fill_stat(st, &s);
  return 0;
}

static int dir_readlink(void *impl, const char *path, char **target, struct vs_err *err) {
  struct dir_impl *d = impl;
  const char *name;
  _cleanup_(vs_closep) int fd = open_parent(d, path, &name, err);
  if (fd < 0) return -1;
  char buf[VS_SOURCE_MAX_PATH + 1];
  ssize_t n = readlinkat(fd, name, buf, sizeof(buf));
  if (n < 0) return vs_err_set(err, errno, "%s: readlink: %s", path, strerror(errno));
  if ((size_t)n > VS_SOURCE_MAX_PATH)
    return vs_err_set(err, ENAMETOOLONG, "%s: symlink target longer than %d bytes", path,
                      VS_SOURCE_MAX_PATH);
  *target = vs_xstrndup(buf, (size_t)n);
  return 0;
}

/* Opens resolved PATH as an O_PATH descriptor without following a final symlink, and checks
 * its type before anything opens it for reading: opening a device node can have effects. */
static int open_checked(struct dir_impl *d, const char *path, enum vs_ftype want, struct stat *s,
                        struct vs_err *err) {
  const char *name;
  _cleanup_(vs_closep) int parent = open_parent(d, path, &name, err);
  if (parent < 0) return -1;
  int fd = openat(parent, *name ? name : ".", O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return vs_err_set(err, errno, "%s: %s", path, strerror(errno));
  if (fstat(fd, s) < 0) {
    int saved = errno;
    close(fd);
    return vs_err_set(err, saved, "%s: %s", path, strerror(saved));
  }
  if (ftype_of(s->st_mode) != want) {
    close(fd);
    return vs_err_set(err, EINVAL, "%s: is a %s, not a %s", path,
                      vs_ftype_name(ftype_of(s->st_mode)), vs_ftype_name(want));
  }
  return fd;
}

/* Reopens an O_PATH descriptor for reading; the kernel keeps it on the same inode. */
static int reopen(int path_fd, int flags, const char *path, struct vs_err *err) {
  char proc[64];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", path_fd); /* fits: an int is short */
  int fd = open(proc, flags | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return vs_err_set(err, errno, "%s: %s", path, strerror(errno));
  return fd;
}

static int dir_read(void *impl, const char *path, size_t max, struct vs_buf *out,
                    struct vs_err *err) {
  struct dir_impl *d = impl;
  struct stat s;
  _cleanup_(vs_closep) int pfd = open_checked(d, path, VS_FT_REG, &s, err);
  if (pfd < 0) return -1;
  if ((uint64_t)s.st_size > max)
    return vs_err_set(err, EFBIG, "%s: %jd bytes, over the limit of %zu", path, (intmax_t)s.st_size,
                      max);
  _cleanup_(vs_closep) int fd = reopen(pfd, O_RDONLY | O_NONBLOCK, path, err);
  if (fd < 0) return -1;
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      return vs_err_set(err, errno, "%s: read: %s", path, strerror(errno));
    }
    if (n == 0) return 0;
    if (out->len + (size_t)n > max) /* the file grew while we read it */
      return vs_err_set(err, EFBIG, "%s: grew past the limit of %zu bytes while read", path, max);
    vs_buf_add(out, chunk, (size_t)n);
  }
}

static int dir_list(void *impl, const char *path, size_t max, char ***names, size_t *count,
                    bool *truncated, struct vs_err *err) {
  struct dir_impl *d = impl;
  struct stat s;
  _cleanup_(vs_closep) int pfd = open_checked(d, path, VS_FT_DIR, &s, err);
  if (pfd < 0) return -1;
  int fd = reopen(pfd, O_RDONLY | O_DIRECTORY, path, err);
  if (fd < 0) return -1;
  DIR *dir = fdopendir(fd);
  if (!dir) {
    int saved = errno;
    close(fd);
    return vs_err_set(err, saved, "%s: %s", path, strerror(saved));
  }
  char **v = NULL;
  size_t n = 0;
  *truncated = false;
  /* errno is cleared before every readdir: the calls in between may set it even when they
   * succeed, and a stale value read after the last entry made a whole directory fail (a guest's
   * /etc/sysctl.d, under memcheck's allocator, in alarms.sh) */
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(dir);
    if (!de) break;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (n >= max) {
      *truncated = true;
      break;
    }
    vs_strv_add(&v, &n, de->d_name);
  }
  int saved = errno;
  closedir(dir);
  if (saved && !*truncated) {
    vs_strv_free(v, n);
    return vs_err_set(err, saved, "%s: readdir: %s", path, strerror(saved));
  }
  if (n) qsort(v, n, sizeof(char *), vs_cmp_strp);
  *names = v;
  *count = n;
  return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  if (flag == FTW_DP) chmod(path, 0700);
  remove(path);
  return 0;
}

static void dir_close(void *impl) {
  struct dir_impl *d = impl;
  if (!d) return;
  close(d->root_fd);
  if (d->remove_on_close) /* a staging copy this process made: it must not outlive us */
    nftw(d->root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
  free(d->root);
  free(d);
}

static const struct vs_source_ops dir_ops = {
    .lstat = dir_lstat,
    .readlink = dir_readlink,
    .read = dir_read,
    .list = dir_list,
    .close = dir_close,
};

struct vs_source *vs_source_open_staged(const char *root, const char *kind, const char *backend,
                                        const char *shown_path, bool remove_on_close,
                                        struct vs_err *err) {
  int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    vs_err_set(err, errno, "%s: cannot open as a directory tree: %s", root, strerror(errno));
    return NULL;
  }
  struct dir_impl *d = vs_xcalloc(1, sizeof(*d));
  d->root_fd = fd;
  d->root = vs_xstrdup(root);
  d->remove_on_close = remove_on_close;
  return vs_source_new(&dir_ops, d, kind, backend, shown_path);
}

struct vs_source *vs_source_open_dir(const char *root, struct vs_err *err) {
  return vs_source_open_staged(root, "dir", "dir", root, false, err);
}
