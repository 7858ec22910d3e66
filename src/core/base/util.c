#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h> /* mincore */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h> /* preadv2 */
#include <time.h>
#include <unistd.h>

char *vs_xvasprintf(const char *fmt, va_list ap) {
  char *out = NULL;
  if (vasprintf(&out, fmt, ap) < 0) {
    fputs("vmscope: out of memory\n", stderr);
    abort();
  }
  return out;
}

int vs_err_set(struct vs_err *err, int code, const char *fmt, ...) {
  if (!err) return -1;
  va_list ap;
  va_start(ap, fmt);
  char *msg = vs_xvasprintf(fmt, ap);
  va_end(ap);
  free(err->msg);
  err->msg = msg;
  err->code = code ? code : EINVAL;
  return -1;
}

int vs_err_prefix(struct vs_err *err, const char *fmt, ...) {
  if (!err) return -1;
  va_list ap;
  va_start(ap, fmt);
  char *prefix = vs_xvasprintf(fmt, ap);
  va_end(ap);
  char *msg = vs_xasprintf("%s: %s", prefix, err->msg ? err->msg : "unknown error");
  free(prefix);
  free(err->msg);
  err->msg = msg;
  if (!err->code) err->code = EINVAL;
  return -1;
}

void vs_err_clear(struct vs_err *err) {
  if (!err) return;
  free(err->msg);
  err->msg = NULL;
  err->code = 0;
}

const char *vs_err_msg(const struct vs_err *err) {
  return err && err->msg ? err->msg : "unknown error";
}

/* Set once by the host at start-up, before any thread runs; read-only afterwards. */
static vs_log_sink_fn log_sink;
static void *log_sink_ctx;

void vs_log_set_sink(vs_log_sink_fn sink, void *ctx) {
  log_sink = sink;
  log_sink_ctx = ctx;
}

void vs_log(enum vs_log_level level, const char *fmt, ...) {
  if (!log_sink) return;
  va_list ap;
  va_start(ap, fmt);
  char *msg = vs_xvasprintf(fmt, ap);
  va_end(ap);
  log_sink(level, msg, log_sink_ctx);
  free(msg);
}

static void *oom(void) {
  fputs("vmscope: out of memory\n", stderr);
  abort();
}

void *vs_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  return p ? p : oom();
}

void *vs_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  return p ? p : oom();
}

void *vs_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  return q ? q : oom();
}

char *vs_xstrdup(const char *s) {
  char *p = strdup(s);
  return p ? p : oom();
}

char *vs_xstrndup(const char *s, size_t n) {
  char *p = strndup(s, n);
  return p ? p : oom();
}

char *vs_xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vs_xvasprintf(fmt, ap);
  va_end(ap);
  return s;
}

void vs_freep(void *pp) {
  free(*(void **)pp);
}

void vs_closep(int *fd) {
  if (*fd >= 0) close(*fd);
}

static void buf_reserve(struct vs_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) {
    if (cap > SIZE_MAX / 2) oom();
    cap *= 2;
  }
  b->data = vs_xrealloc(b->data, cap);
  b->cap = cap;
  b->data[b->len] = '\0';
}

void vs_buf_add(struct vs_buf *b, const void *data, size_t len) {
  buf_reserve(b, len);
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void vs_buf_adds(struct vs_buf *b, const char *s) {
  vs_buf_add(b, s, strlen(s));
}

void vs_buf_addc(struct vs_buf *b, char c) {
  vs_buf_add(b, &c, 1);
}

void vs_buf_addf(struct vs_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vs_xvasprintf(fmt, ap);
  va_end(ap);
  vs_buf_adds(b, s);
  free(s);
}

void vs_buf_reset(struct vs_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void vs_buf_free(struct vs_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *vs_buf_steal(struct vs_buf *b) {
  if (!b->data) return vs_xstrdup("");
  char *s = b->data;
  b->data = NULL;
  b->len = b->cap = 0;
  return s;
}

/* Length of the valid UTF-8 sequence at S (at most AVAIL bytes), or 0 when invalid. Rejects
 * overlong forms, surrogates and code points past U+10FFFF, as JSON parsers do. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  size_t n;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (avail < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

static bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7F;
}

bool vs_text_is_clean(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < len;) {
    size_t n = utf8_seq_len(p + i, len - i);
    if (n == 0 || (n == 1 && is_control(p[i]))) return false;
    i += n;
  }
  return true;
}

static void add_escaped(struct vs_buf *b, const char *s, size_t len, bool escape_controls) {
  const unsigned char *p = (const unsigned char *)s;
  buf_reserve(b, len);
  for (size_t i = 0; i < len;) {
    size_t n = utf8_seq_len(p + i, len - i);
    if (n == 0 || (escape_controls && n == 1 && is_control(p[i]))) {
      vs_buf_addf(b, "\\x%02X", p[i]);
      i++;
    } else {
      vs_buf_add(b, p + i, n);
      i += n;
    }
  }
}

void vs_buf_add_sanitized(struct vs_buf *b, const char *s, size_t len) {
  add_escaped(b, s, len, true);
}

json_t *vs_json_text(const char *s, size_t len) {
  json_t *j = json_stringn(s ? s : "", s ? len : 0);
  if (j) return j;
  struct vs_buf b = {0};
  add_escaped(&b, s, len, false);
  j = json_stringn(b.data ? b.data : "", b.len);
  vs_buf_free(&b);
  return j;
}

json_t *vs_json_loadb_strict(const char *text, size_t len, const char *what, struct vs_err *err) {
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    vs_err_set(err, EINVAL, "%s: not valid JSON at line %d, column %d: %s", what, jerr.line,
               jerr.column, jerr.text);
  return root;
}

/* Merges the object PATCH into the object OUT in place. Each part of PATCH is copied once and
 * OUT is changed where it stands, so the work is linear in the two: a copy per level of a deep
 * patch would cost its depth times the target's size. */
static void merge_into(json_t *out, const json_t *patch) {
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)patch, key, value) {
    if (json_is_null(value)) {
      json_object_del(out, key);
    } else if (json_is_object(value)) {
      json_t *member = json_object_get(out, key);
      if (!json_is_object(member)) {
        member = json_object();
        json_object_set_new(out, key, member);
      }
      merge_into(member, value);
    } else {
      json_object_set_new(out, key, json_deep_copy(value));
    }
  }
}

json_t *vs_json_merge_apply(const json_t *target, const json_t *patch) {
  if (!json_is_object(patch)) return json_deep_copy(patch);
  json_t *out = json_is_object(target) ? json_deep_copy(target) : json_object();
  merge_into(out, patch);
  return out;
}

/* The members of TO that differ from FROM's, and null for FROM's that TO lacks; TO itself
 * when either is no object. Unchecked: a null in TO is not told from a removal. */
static json_t *merge_diff(const json_t *from, const json_t *to) {
  if (!json_is_object(from) || !json_is_object(to)) return json_deep_copy(to);
  json_t *patch = json_object();
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)from, key, value) {
    if (!json_object_get(to, key)) json_object_set_new(patch, key, json_null());
  }
  json_object_foreach((json_t *)to, key, value) {
    json_t *was = json_object_get(from, key);
    if (!was)
      json_object_set_new(patch, key, json_deep_copy(value));
    else if (!json_equal(was, value))
      json_object_set_new(patch, key, merge_diff(was, value));
  }
  return patch;
}

json_t *vs_json_merge_diff(const json_t *from, const json_t *to) {
  if (json_is_null(to)) return NULL; /* a patch of null would read as "no patch" */
  json_t *patch = merge_diff(from, to);
  json_t *check = patch ? vs_json_merge_apply(from, patch) : NULL;
  bool exact = check && json_equal(check, to);
  json_decref(check);
  if (exact) return patch;
  json_decref(patch);
  return NULL;
}

void vs_hex(const unsigned char *bytes, size_t len, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    hex[2 * i] = digits[bytes[i] >> 4];
    hex[2 * i + 1] = digits[bytes[i] & 15];
  }
  hex[2 * len] = '\0';
}

char *vs_trim(char *s) {
  while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\f' || *s == '\v')
    s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n' ||
               s[n - 1] == '\f' || s[n - 1] == '\v'))
    s[--n] = '\0';
  return s;
}

static bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

char *vs_next_word(char **p) {
  while (is_blank(**p))
    (*p)++;
  if (!**p) return NULL;
  char *start = *p;
  while (**p && !is_blank(**p))
    (*p)++;
  if (**p) *(*p)++ = '\0';
  return start;
}

int vs_lines_open(struct vs_lines *r, const char *path, const char *what, struct vs_err *err) {
  *r = (struct vs_lines){.f = fopen(path, "re")};
  if (!r->f)
    return what ? vs_err_set(err, errno, "%s: cannot open %s: %s", path, what, strerror(errno))
                : vs_err_set(err, errno, "%s: %s", path, strerror(errno));
  r->what = vs_xstrdup(path);
  return 0;
}

int vs_lines_open_text(struct vs_lines *r, const char *text, const char *what, struct vs_err *err) {
  *r = (struct vs_lines){.what = vs_xstrdup(what)};
  size_t len = strlen(text);
  if (len == 0) return 0; /* fmemopen wants a buffer; no lines need no stream */
  r->f = fmemopen((void *)text, len, "r");
  if (!r->f) {
    vs_err_set(err, errno, "%s: %s", what, strerror(errno));
    vs_lines_close(r);
    return -1;
  }
  return 0;
}

/* Cuts LINE at its comment: a '#' first on the line or after a blank. */
static void cut_comment(char *line) {
  for (char *p = line; *p; p++)
    if (*p == '#' && (p == line || is_blank(p[-1]))) {
      *p = '\0';
      return;
    }
}

int vs_lines_next(struct vs_lines *r, char **line, struct vs_err *err) {
  while (r->f) {
    errno = 0;
    ssize_t n = getline(&r->line, &r->cap, r->f);
    if (n < 0) {
      if (ferror(r->f))
        return vs_err_set(err, errno ? errno : EIO, "%s: read error after line %zu: %s", r->what,
                          r->lineno, strerror(errno ? errno : EIO));
      return 0;
    }
    r->lineno++;
    r->bytes += (uint64_t)n;
    if (n > 0 && r->line[n - 1] == '\n') r->line[--n] = '\0';
    if ((size_t)n > VS_LINE_MAX)
      return vs_err_set(err, EINVAL, "%s:%zu: a line of %zd bytes, over the %d a line may have",
                        r->what, r->lineno, n, VS_LINE_MAX);
    if (memchr(r->line, '\0', (size_t)n))
      return vs_err_set(err, EINVAL, "%s:%zu: a NUL byte; not a text file", r->what, r->lineno);
    cut_comment(r->line);
    char *s = vs_trim(r->line);
    if (!*s) continue;
    *line = s;
    return 1;
  }
  return 0;
}

void vs_lines_close(struct vs_lines *r) {
  if (!r) return;
  if (r->f) fclose(r->f);
  free(r->line);
  free(r->what);
  *r = (struct vs_lines){0};
}

int vs_cmp_strp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool vs_has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

void vs_cond_init_monotonic(pthread_cond_t *cond) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(cond, &attr);
  pthread_condattr_destroy(&attr);
}

double vs_now_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct timespec vs_monotonic_timespec(double t) {
  time_t sec = t > 0 ? (time_t)t : 0; /* truncated: the floor of a time not negative */
  long nsec = t > 0 ? (long)((t - (double)sec) * 1e9) : 0;
  if (nsec > 999999999) nsec = 999999999;
  return (struct timespec){.tv_sec = sec, .tv_nsec = nsec};
}

void vs_format_utc(int64_t t, char out[static 21]) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm) || strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    strcpy(out, "1970-01-01T00:00:00Z");
}

long vs_peak_rss_kib(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return ru.ru_maxrss;
}

int vs_newfile_open(struct vs_newfile *f, const char *path, unsigned mode, struct vs_err *err) {
  *f = (struct vs_newfile){.fd = -1, .path = vs_xstrdup(path)};
  _cleanup_(vs_freep) char *dir_copy = vs_xstrdup(path);
  const char *dir = dirname(dir_copy);
  f->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, (mode_t)mode);
  if (f->fd < 0) {
    f->tmp = vs_xasprintf("%s.tmp-XXXXXX", path);
    f->fd = mkostemp(f->tmp, O_CLOEXEC);
    if (f->fd >= 0) {
      mode_t mask = umask(0);
      umask(mask);
      if (fchmod(f->fd, (mode_t)mode & ~mask) < 0) { /* mkostemp makes 0600 */
        vs_err_set(err, errno, "%s: %s", f->tmp, strerror(errno));
        vs_newfile_abandon(f);
        return -1;
      }
    }
  }
  if (f->fd < 0) { /* named by what the caller gave: the temporary name is ours */
    vs_err_set(err, errno, "%s: cannot create it (a new file in %s): %s", path, dir,
               strerror(errno));
    vs_newfile_abandon(f);
    return -1;
  }
  return 0;
}

/* Links the unnamed file under NAME: 0, or -1 with errno (EEXIST: NAME exists). */
static int newfile_link(const struct vs_newfile *f, const char *name) {
  char proc[64];
  int len = snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
  if (len < 0 || (size_t)len >= sizeof(proc)) {
    errno = EOVERFLOW;
    return -1;
  }
  return linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW);
}

/* Links the unnamed file under a temporary name beside its target, for the rename that puts
 * it in place (a link cannot replace a file). */
static int newfile_name(struct vs_newfile *f, struct vs_err *err) {
  for (unsigned attempt = 0; attempt < 100; attempt++) {
    char *tmp = vs_xasprintf("%s.tmp-%ld-%u", f->path, (long)getpid(), attempt);
    if (newfile_link(f, tmp) == 0) {
      f->tmp = tmp;
      return 0;
    }
    int e = errno;
    free(tmp);
    if (e != EEXIST)
      return vs_err_set(err, e, "%s: cannot give the new file a name: %s", f->path, strerror(e));
  }
  return vs_err_set(err, EEXIST, "%s: 100 temporary names beside it are taken", f->path);
}

int vs_newfile_write(struct vs_newfile *f, const void *data, size_t len, struct vs_err *err) {
  const char *p = data;
  while (len) {
    ssize_t n = write(f->fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return vs_err_set(err, n < 0 ? errno : EIO, "%s: write failed: %s", f->path,
                        strerror(n < 0 ? errno : EIO));
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Puts the file under PATH: replacing what is there when REPLACE, else only when nothing is.
 * An unnamed file is synced and linked under PATH when nothing is there, else (REPLACE) named,
 * closed and renamed; a named one (the fallback's) is synced, closed and renamed. 1 when
 * placed, 0 when PATH exists and not REPLACE (the file stays, unnamed or under its temporary
 * name, for another PATH), -1 on error. */
static int newfile_place(struct vs_newfile *f, const char *path, bool replace, struct vs_err *err) {
  /* Unnamed, and nothing under PATH: linked there at once. Named first and then renamed, a
   * process killed between the two left the temporary name behind (a kill -9 of patchset make
   * in t/integration/patchset.sh found it once). Only a file that replaces another takes the
   * temporary name. */
  if (f->fd >= 0 && !f->tmp) {
    if (fsync(f->fd) < 0) return vs_err_set(err, errno, "%s: fsync: %s", path, strerror(errno));
    if (newfile_link(f, path) == 0) {
      int rc = close(f->fd);
      f->fd = -1;
      if (rc < 0) return vs_err_set(err, errno, "%s: cannot close: %s", path, strerror(errno));
      return 1;
    }
    if (errno != EEXIST)
      return vs_err_set(err, errno, "%s: cannot give the new file its name: %s", path,
                        strerror(errno));
    if (!replace) return 0; /* still unnamed, for another PATH */
  }
  if (f->fd >= 0) {
    if (fsync(f->fd) < 0) return vs_err_set(err, errno, "%s: fsync: %s", path, strerror(errno));
    if (!f->tmp && newfile_name(f, err) < 0) return -1;
    int rc = close(f->fd);
    f->fd = -1;
    if (rc < 0) return vs_err_set(err, errno, "%s: cannot close: %s", path, strerror(errno));
  }
  if (renameat2(AT_FDCWD, f->tmp, AT_FDCWD, path, replace ? 0 : RENAME_NOREPLACE) == 0) {
    free(f->tmp);
    f->tmp = NULL;
    return 1;
  }
  if (!replace && errno == EEXIST) return 0;
  return vs_err_set(err, errno, "%s: cannot move into place: %s", path, strerror(errno));
}

/* Makes the name of the file just placed at PATH durable, and forgets the file. */
static void newfile_done(struct vs_newfile *f, const char *path) {
  char *dir = vs_xstrdup(path);
  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (dfd >= 0) {
    fsync(dfd); /* the rename's durability; the file is complete either way */
    close(dfd);
  }
  vs_newfile_abandon(f); /* nothing is left to drop: frees the names */
}

void vs_newfile_writeback(struct vs_newfile *f) {
  if (f->fd >= 0) sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

int vs_newfile_commit(struct vs_newfile *f, struct vs_err *err) {
  if (newfile_place(f, f->path, true, err) < 0) {
    vs_newfile_abandon(f);
    return -1;
  }
  newfile_done(f, f->path);
  return 0;
}

int vs_newfile_commit_new(struct vs_newfile *f, const char *path, struct vs_err *err) {
  int placed = newfile_place(f, path, false, err);
  if (placed < 0) vs_newfile_abandon(f);
  if (placed == 1) newfile_done(f, path);
  return placed;
}

void vs_newfile_abandon(struct vs_newfile *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  if (f->tmp) unlink(f->tmp);
  free(f->tmp);
  free(f->path);
  f->tmp = f->path = NULL;
}

void vs_reset_sigchld(void) {
  struct sigaction sa;
  if (sigaction(SIGCHLD, NULL, &sa) == 0 &&
      (sa.sa_handler == SIG_IGN || (sa.sa_handler == SIG_DFL && (sa.sa_flags & SA_NOCLDWAIT)))) {
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    if (sigaction(SIGCHLD, &dfl, NULL) < 0)
      vs_log(VS_LOG_WARNING, "cannot reset SIGCHLD: %s", strerror(errno));
  }
}

/* The list's room is the power of two above N + 1 (N strings and the NULL), so it only grows
 * when N + 1 is one: amortized constant time without a capacity to carry around. */
void vs_strv_take(char ***v, size_t *n, char *s) {
  if (((*n + 1) & *n) == 0) {
    if (*n >= SIZE_MAX / 2 / sizeof(char *)) oom();
    *v = vs_xrealloc(*v, 2 * (*n + 1) * sizeof(char *));
  }
  (*v)[(*n)++] = s;
  (*v)[*n] = NULL;
}

void vs_strv_add(char ***v, size_t *n, const char *s) {
  vs_strv_take(v, n, vs_xstrdup(s));
}

void vs_strv_free(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

char *vs_msg_output_is_input(const char *path) {
  return vs_xasprintf("%s is also where the output goes: refused, so that it is not written into "
                      "(send the output elsewhere; if a shell's > emptied it, restore it first)",
                      path);
}

struct parallel {
  size_t n;
  atomic_size_t next;
  void (*each)(void *arg, size_t i);
  void *arg;
};

static void *parallel_run(void *p) {
  struct parallel *job = p;
  for (size_t i; (i = atomic_fetch_add(&job->next, 1)) < job->n;)
    job->each(job->arg, i);
  return NULL;
}

static size_t cpus_online(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? (size_t)cpus : 1;
}

/* Runs JOB on this thread and up to THREADS - 1 others. */
static void parallel_run_on(struct parallel *job, size_t threads) {
  pthread_t helpers[VS_PARALLEL_MAX];
  size_t started = 0;
  while (started + 1 < threads && pthread_create(&helpers[started], NULL, parallel_run, job) == 0)
    started++;
  parallel_run(job);
  for (size_t t = 0; t < started; t++)
    pthread_join(helpers[t], NULL);
}

void vs_parallel_for(size_t n, size_t threads, void (*each)(void *arg, size_t i), void *arg) {
  if (!threads) threads = cpus_online();
  if (threads > VS_PARALLEL_MAX) threads = VS_PARALLEL_MAX;
  if (threads > n / 16) threads = n / 16 ? n / 16 : 1; /* a thread is worth 16 items at least */
  struct parallel job = {.n = n, .each = each, .arg = arg};
  atomic_init(&job.next, 0);
  parallel_run_on(&job, threads);
}

struct chunks {
  size_t n, count;
  void (*each)(void *arg, size_t chunk, size_t from, size_t to);
  void *arg;
};

static void run_chunk(void *arg, size_t c) {
  const struct chunks *j = arg;
  j->each(j->arg, c, c * j->n / j->count, (c + 1) * j->n / j->count);
}

size_t vs_parallel_chunks(size_t n, size_t min_chunk,
                          void (*each)(void *arg, size_t chunk, size_t from, size_t to),
                          void *arg) {
  size_t count = cpus_online();
  if (count > VS_PARALLEL_MAX) count = VS_PARALLEL_MAX;
  if (min_chunk && count > n / min_chunk) count = n / min_chunk;
  if (!count) count = 1;
  struct chunks chunks = {.n = n, .count = count, .each = each, .arg = arg};
  struct parallel job = {.n = count, .each = run_chunk, .arg = &chunks};
  atomic_init(&job.next, 0);
  parallel_run_on(&job, count);
  return count;
}

/* cachestat(2): Debian 12's headers (Linux 6.1) know neither the call nor its structures. */
#ifndef __NR_cachestat
#define __NR_cachestat 451 /* x86-64's, and every architecture's of the generic table */
#endif
struct vs_cachestat_range {
  uint64_t off, len;
};
struct vs_cachestat {
  uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

bool vs_page_cached_mapped(int fd, uint64_t off) {
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  void *m = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, (off_t)(off & ~(page - 1)));
  if (m == MAP_FAILED) return false;
  unsigned char in_core = 0;
  bool cached = mincore(m, (size_t)page, &in_core) == 0 && (in_core & 1);
  munmap(m, (size_t)page);
  return cached;
}

bool vs_page_cached(int fd, uint64_t off) {
  static atomic_bool no_cachestat;
  if (!atomic_load_explicit(&no_cachestat, memory_order_relaxed)) {
    struct vs_cachestat_range r = {off, 1};
    struct vs_cachestat cs;
    if (syscall(__NR_cachestat, fd, &r, &cs, 0) == 0) return cs.nr_cache > 0;
    if (errno == ENOSYS)
      atomic_store_explicit(&no_cachestat, true, memory_order_relaxed);
    else if (errno != EPERM) /* EPERM: a file the caller may not write, or a seccomp filter */
      return false;
  }
  /* mincore answers for a file the caller owns (or root); of another's it says every page is
   * in the page cache. */
  struct stat st;
  if (fstat(fd, &st) < 0) return false;
  if (geteuid() == 0 || st.st_uid == geteuid()) return vs_page_cached_mapped(fd, off);
  /* Else a read that does not wait: right, but it starts reading a page that is not there. */
  char byte;
  struct iovec v = {&byte, 1};
  return preadv2(fd, &v, 1, (off_t)off, RWF_NOWAIT) == 1;
}

size_t vs_table_cap(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n)
    cap *= 2;
  return cap;
}
