/* The parse cache: config files' parse results on disk, under a digest of their inputs.
 *
 * Layout: DIR/B/KEYHEX, where KEYHEX is the key's 64 hex digits and B its first one. The 16
 * buckets keep the size bound cheap: a put scans its own bucket only (about 1/16th of the
 * entries), against 1/16th of the limit, and a key's first digit spreads entries evenly. */
#include "parse_cache.h"

#include "crypto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "VSPARSE1"
#define MAGIC_LEN 8
#define HEADER_LEN (MAGIC_LEN + 2 * VS_PARSE_CACHE_KEY_LEN + 8) /* magic, key, digest, length */
#define BUCKETS 16
#define REFRESH_AFTER 86400  /* seconds: a hit older than this marks its entry used */
#define TMP_STALE_AFTER 3600 /* seconds: a temporary file a killed writer left */

struct vs_parse_cache {
  char *dir;
  int dfd;
  uid_t uid;
  uint64_t limit;
  pthread_mutex_t lock;          /* guards bucket_bytes */
  int64_t bucket_bytes[BUCKETS]; /* bytes on disk per bucket as last scanned plus our writes;
                                    -1 before the first scan */
  atomic_uint tmp_counter;
  atomic_bool write_warned;
};

char *vs_parse_cache_default_dir(void) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (xdg && xdg[0] == '/') return vs_xasprintf("%s/vmscope/parse", xdg);
  if (home && home[0]) return vs_xasprintf("%s/.cache/vmscope/parse", home);
  return NULL;
}

/* Makes DIR and its missing parents, each mode 0700 (as the XDG spec asks of ~/.cache). */
static int make_dirs(const char *dir, struct vs_err *err) {
  _cleanup_(vs_freep) char *p = vs_xstrdup(dir);
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0') continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
      return vs_err_set(err, errno, "%s: cannot create: %s", p, strerror(errno));
    *s = c;
    if (!c) return 0;
    while (s[1] == '/')
      s++;
    if (!s[1]) return 0; /* a trailing '/' */
  }
}

struct vs_parse_cache *vs_parse_cache_open(const char *dir, struct vs_err *err) {
  if (!dir || !dir[0]) {
    vs_err_set(err, EINVAL, "the parse cache needs a directory");
    return NULL;
  }
  if (make_dirs(dir, err) < 0) return NULL;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    vs_err_set(err, errno, "%s: %s", dir,
               errno == ELOOP || errno == ENOTDIR ? "a symbolic link, or not a directory"
                                                  : strerror(errno));
    return NULL;
  }
  struct stat st;
  uid_t uid = geteuid();
  if (fstat(dfd, &st) < 0) {
    vs_err_set(err, errno, "%s: %s", dir, strerror(errno));
  } else if (st.st_uid != uid) {
    vs_err_set(err, EPERM,
               "%s: owned by uid %u, not by this user (uid %u): its entries would decide "
               "documents' settings; give a directory of your own",
               dir, (unsigned)st.st_uid, (unsigned)uid);
  } else if (st.st_mode & 077) {
    vs_err_set(err, EPERM,
               "%s: mode %04o lets other users in: its entries would decide documents' "
               "settings; chmod 700 it",
               dir, (unsigned)(st.st_mode & 07777));
  } else {
    struct vs_parse_cache *c = vs_xcalloc(1, sizeof(*c));
    c->dir = vs_xstrdup(dir);
    c->dfd = dfd;
    c->uid = uid;
    c->limit = VS_PARSE_CACHE_LIMIT;
    pthread_mutex_init(&c->lock, NULL);
    for (int i = 0; i < BUCKETS; i++)
      c->bucket_bytes[i] = -1;
    return c;
  }
  close(dfd);
  return NULL;
}

void vs_parse_cache_free(struct vs_parse_cache *c) {
  if (!c) return;
  close(c->dfd);
  pthread_mutex_destroy(&c->lock);
  free(c->dir);
  free(c);
}

void vs_parse_cache_freep(struct vs_parse_cache **c) {
  vs_parse_cache_free(*c);
}

void vs_parse_cache_set_limit(struct vs_parse_cache *c, uint64_t bytes) {
  pthread_mutex_lock(&c->lock);
  c->limit = bytes;
  pthread_mutex_unlock(&c->lock);
}

static void digest_add(struct vs_sha256_ctx *ctx, const void *data, size_t len) {
  unsigned char n[8];
  for (int i = 0; i < 8; i++)
    n[i] = (unsigned char)((uint64_t)len >> (8 * i));
  vs_sha256_add(ctx, n, sizeof(n));
  vs_sha256_add(ctx, data, len);
}

int vs_parse_cache_key(unsigned char key[VS_PARSE_CACHE_KEY_LEN], const char *lens,
                       const char *path, const char *text, size_t len, const char *version,
                       unsigned schema) {
  static const char domain[] = "vmscope parse cache key";
  char schema_s[16];
  snprintf(schema_s, sizeof(schema_s), "%u", schema);
  struct vs_sha256_ctx *ctx = vs_sha256_begin(NULL);
  if (!ctx) return -1;
  digest_add(ctx, domain, sizeof(domain) - 1);
  digest_add(ctx, schema_s, strlen(schema_s));
  digest_add(ctx, version, strlen(version));
  digest_add(ctx, lens, strlen(lens));
  digest_add(ctx, path, strlen(path));
  digest_add(ctx, text, len);
  return vs_sha256_end(ctx, key, NULL);
}

/* "B/KEYHEX" into NAME. */
static void entry_name(const unsigned char key[VS_PARSE_CACHE_KEY_LEN], char name[67]) {
  vs_hex(key, VS_PARSE_CACHE_KEY_LEN, name + 2);
  name[0] = name[2];
  name[1] = '/';
}

static int bucket_of(const char *name) {
  return name[0] <= '9' ? name[0] - '0' : name[0] - 'a' + 10;
}

static bool sha256(const void *data, size_t len, unsigned char out[VS_PARSE_CACHE_KEY_LEN]) {
  return vs_sha256(data, len, out, NULL) == 0;
}

static bool read_all(int fd, char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf + done, len - done, (off_t)done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += (size_t)n;
  }
  return true;
}

char *vs_parse_cache_get(struct vs_parse_cache *c, const unsigned char key[VS_PARSE_CACHE_KEY_LEN],
                         size_t *len) {
  char name[67];
  entry_name(key, name);
  _cleanup_(vs_closep) int fd = openat(c->dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != c->uid ||
      st.st_size < HEADER_LEN || st.st_size > HEADER_LEN + VS_PARSE_CACHE_MAX_ENTRY)
    return NULL;
  size_t size = (size_t)st.st_size, n = size - HEADER_LEN;
  _cleanup_(vs_freep) char *buf = vs_xmalloc(size + 1);
  unsigned char digest[VS_PARSE_CACHE_KEY_LEN];
  uint64_t stated = 0;
  if (!read_all(fd, buf, size)) return NULL;
  for (int i = 0; i < 8; i++)
    stated |= (uint64_t)(unsigned char)buf[MAGIC_LEN + 2 * VS_PARSE_CACHE_KEY_LEN + i] << (8 * i);
  if (memcmp(buf, MAGIC, MAGIC_LEN) != 0 ||
      memcmp(buf + MAGIC_LEN, key, VS_PARSE_CACHE_KEY_LEN) != 0 || stated != n ||
      !sha256(buf + HEADER_LEN, n, digest) ||
      memcmp(buf + MAGIC_LEN + VS_PARSE_CACHE_KEY_LEN, digest, VS_PARSE_CACHE_KEY_LEN) != 0)
    return NULL;
  if (time(NULL) - st.st_mtime > REFRESH_AFTER) futimens(fd, NULL); /* recently used */
  memmove(buf, buf + HEADER_LEN, n);
  buf[n] = '\0';
  *len = n;
  return vs_steal(&buf);
}

struct entry {
  char name[80];
  int64_t bytes;
  struct timespec mtime;
};

static int cmp_oldest(const void *a, const void *b) {
  const struct entry *x = a, *y = b;
  if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
  if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* Sums bucket B's entries and, past BOUND, removes the least recently used ones until three
 * quarters of it are left (so the next puts need no scan). Removes stale temporary files.
 * Returns the bytes left. Called with C's lock held. */
static int64_t prune_bucket(struct vs_parse_cache *c, int b, int64_t bound) {
  char bucket[2] = {"0123456789abcdef"[b], '\0'};
  int fd = openat(c->dfd, bucket, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0) close(fd);
    return 0;
  }
  struct entry *v = NULL;
  size_t n = 0, cap = 0;
  int64_t total = 0;
  time_t now = time(NULL);
  struct dirent *e;
  while ((e = readdir(d))) {
    struct stat st;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
        strlen(e->d_name) >= sizeof(v->name) ||
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    if (e->d_name[0] == '.') { /* a writer's temporary file */
      if (now - st.st_mtime > TMP_STALE_AFTER) unlinkat(dirfd(d), e->d_name, 0);
      continue;
    }
    if (n == cap) v = vs_xrealloc(v, (cap = cap ? 2 * cap : 64) * sizeof(*v));
    memcpy(v[n].name, e->d_name, strlen(e->d_name) + 1); /* its length checked above */
    v[n].bytes = (int64_t)st.st_blocks * 512;
    v[n].mtime = st.st_mtim;
    total += v[n++].bytes;
  }
  if (total > bound) {
    qsort(v, n, sizeof(*v), cmp_oldest);
    for (size_t i = 0; i < n && total > bound / 4 * 3; i++)
      if (unlinkat(dirfd(d), v[i].name, 0) == 0 || errno == ENOENT) total -= v[i].bytes;
  }
  free(v);
  closedir(d);
  return total;
}

static void keep_bound(struct vs_parse_cache *c, int b, int64_t added) {
  pthread_mutex_lock(&c->lock);
  int64_t bound = (int64_t)(c->limit / BUCKETS);
  if (c->bucket_bytes[b] < 0 || c->bucket_bytes[b] + added > bound)
    c->bucket_bytes[b] = prune_bucket(c, b, bound);
  else
    c->bucket_bytes[b] += added;
  pthread_mutex_unlock(&c->lock);
}

static bool write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

static void warn_once(struct vs_parse_cache *c, const char *what, int code) {
  if (!atomic_exchange(&c->write_warned, true))
    vs_log(VS_LOG_WARNING,
           "parse cache %s: %s: %s (entries are not kept; documents are not affected)", c->dir,
           what, strerror(code));
}

void vs_parse_cache_put(struct vs_parse_cache *c, const unsigned char key[VS_PARSE_CACHE_KEY_LEN],
                        const void *data, size_t len) {
  if (len > VS_PARSE_CACHE_MAX_ENTRY) return;
  char name[67], bucket[2], tmp[96];
  entry_name(key, name);
  bucket[0] = name[0];
  bucket[1] = '\0';
  unsigned char header[HEADER_LEN];
  memcpy(header, MAGIC, MAGIC_LEN);
  memcpy(header + MAGIC_LEN, key, VS_PARSE_CACHE_KEY_LEN);
  if (!sha256(data, len, header + MAGIC_LEN + VS_PARSE_CACHE_KEY_LEN)) return;
  for (int i = 0; i < 8; i++)
    header[MAGIC_LEN + 2 * VS_PARSE_CACHE_KEY_LEN + i] = (unsigned char)((uint64_t)len >> (8 * i));
  if (mkdirat(c->dfd, bucket, 0700) < 0 && errno != EEXIST) {
    warn_once(c, "cannot create a bucket directory", errno);
    return;
  }
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%ld-%u", bucket, (long)getpid(),
             atomic_fetch_add(&c->tmp_counter, 1));
    fd = openat(c->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    warn_once(c, "cannot create an entry", errno);
    return;
  }
  bool written = write_all(fd, header, sizeof(header)) && write_all(fd, data, len);
  int code = errno;
  if (close(fd) < 0 && written) {
    written = false;
    code = errno;
  }
  if (!written || renameat(c->dfd, tmp, c->dfd, name) < 0) {
    if (written) code = errno;
    unlinkat(c->dfd, tmp, 0);
    warn_once(c, "cannot write an entry", code);
    return;
  }
  keep_bound(c, bucket_of(name), (int64_t)((HEADER_LEN + len + 4095) / 4096 * 4096));
}
