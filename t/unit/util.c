/* base/util: the line reader every line-oriented file goes through, string lists, the new
 * file that never replaces another, and JSON merge patches. */
#include "fixture.h"
#include "tap.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/magic.h> /* TMPFS_MAGIC */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h> /* fstatfs */
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Every line vs_lines returns for TEXT, joined by '|'; "ERR:message" when it fails. */
static char *lines_of(const char *text) {
  struct vs_err err = {0};
  _cleanup_(vs_lines_close) struct vs_lines r = {0};
  struct vs_buf out = {0};
  char *line;
  int got = vs_lines_open_text(&r, text, "t.conf", &err);
  while (got == 0 && (got = vs_lines_next(&r, &line, &err)) > 0) {
    if (out.len) vs_buf_addc(&out, '|');
    vs_buf_adds(&out, line);
    got = 0;
  }
  if (got < 0) {
    vs_buf_reset(&out);
    vs_buf_addf(&out, "ERR:%s", vs_err_msg(&err));
  }
  vs_err_clear(&err);
  return vs_buf_steal(&out);
}

static void test_lines(void) {
  char *s = lines_of("# a comment\n\n  \t\nweb-1 web\n  db-1 db  # a trailing comment\n");
  is_str(s, "web-1 web|db-1 db",
         "comment lines and blank lines are skipped, a trailing comment after a blank is cut, and "
         "the rest is trimmed");
  free(s);
  s = lines_of("web#2 web\nfile:/etc/x:#comment * - why\n");
  is_str(s, "web#2 web|file:/etc/x:#comment * - why",
         "a '#' inside a word is kept: it is part of a name or a key");
  free(s);
  s = lines_of("a\r\nb");
  is_str(s, "a|b", "a CRLF line ends and a last line without a newline are read whole");
  free(s);
  s = lines_of("");
  is_str(s, "", "an empty text has no lines");
  free(s);

  struct vs_buf big = {0};
  vs_buf_adds(&big, "ok\n");
  for (int i = 0; i < VS_LINE_MAX + 1; i++)
    vs_buf_addc(&big, 'x');
  vs_buf_adds(&big, " tail\n");
  s = lines_of(big.data);
  ok(strncmp(s, "ERR:t.conf:2: ", 14) == 0 && strstr(s, "16384"),
     "a line over VS_LINE_MAX bytes is an error naming the file, the line and the limit, not "
     "two lines (%s)",
     s);
  free(s);
  vs_buf_reset(&big);
  for (int i = 0; i < VS_LINE_MAX; i++)
    vs_buf_addc(&big, 'y');
  s = lines_of(big.data);
  ok(strlen(s) == VS_LINE_MAX, "a line of exactly VS_LINE_MAX bytes is read whole");
  free(s);
  vs_buf_free(&big);

  char *dir = fx_tmpdir();
  fx_write_bytes(dir, "nul", "a\nb\0c\n", 6);
  char *path = vs_xasprintf("%s/nul", dir);
  struct vs_err err = {0};
  struct vs_lines r;
  char *line;
  ok(vs_lines_open(&r, path, NULL, &err) == 0 && vs_lines_next(&r, &line, &err) == 1 &&
         strcmp(line, "a") == 0,
     "a file opens and its first line is read");
  bool refused = vs_lines_next(&r, &line, &err) < 0;
  ok(refused && strstr(vs_err_msg(&err), "/nul:2: a NUL byte"),
     "a NUL byte in a line is an error naming the file and line (%s)", vs_err_msg(&err));
  vs_lines_close(&r);
  vs_lines_close(&r);
  ok(r.f == NULL && r.what == NULL, "closing twice is safe");
  vs_err_clear(&err);
  free(path);

  path = vs_xasprintf("%s/missing", dir);
  refused = vs_lines_open(&r, path, "the waiver file", &err) < 0;
  ok(refused && err.code == ENOENT &&
         strstr(vs_err_msg(&err), "missing: cannot open the waiver file: "),
     "a file that is not there is an error saying what it was to be (%s)", vs_err_msg(&err));
  vs_lines_close(&r);
  vs_err_clear(&err);
  free(path);
  fx_rmtree(dir);
  free(dir);
}

static void test_words(void) {
  char text[] = "  one\ttwo   three ";
  char *p = text;
  char *a = vs_next_word(&p), *b = vs_next_word(&p), *c = vs_next_word(&p);
  ok(a && b && c && strcmp(a, "one") == 0 && strcmp(b, "two") == 0 && strcmp(c, "three") == 0,
     "words are split at runs of blanks");
  ok(vs_next_word(&p) == NULL, "trailing blanks give no more words");
}

static void test_strv(void) {
  char **v = NULL;
  size_t n = 0;
  char name[16];
  for (int i = 0; i < 1000; i++) {
    snprintf(name, sizeof(name), "s%d", i);
    if (i % 2)
      vs_strv_add(&v, &n, name);
    else
      vs_strv_take(&v, &n, vs_xstrdup(name));
  }
  int bad = 0;
  for (int i = 0; i < 1000; i++) {
    snprintf(name, sizeof(name), "s%d", i);
    bad += strcmp(v[i], name) != 0;
  }
  ok(n == 1000 && bad == 0, "1,000 strings added or taken are all there, in order");
  ok(v[n] == NULL, "the list ends with a NULL");
  free(v[--n]);
  vs_strv_add(&v, &n, "again");
  ok(n == 1000 && strcmp(v[999], "again") == 0 && v[1000] == NULL,
     "after the owner drops the last string, the list grows again in place");
  vs_strv_free(v, n);
  vs_strv_free(NULL, 0);
  ok(true, "freeing an empty list is fine");
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return NULL;
  char buf[256];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return vs_xstrdup(buf);
}

static size_t count_entries(const char *dir) {
  char *cmd = vs_xasprintf("ls -A '%s' | wc -l", dir);
  FILE *p = popen(cmd, "r");
  free(cmd);
  size_t n = 0;
  if (p) {
    if (fscanf(p, "%zu", &n) != 1) n = 0;
    pclose(p);
  }
  return n;
}

static void test_newfile_new(void) {
  char *dir = fx_tmpdir();
  fx_write(dir, "a.json", "old\n");
  char *a = vs_xasprintf("%s/a.json", dir), *b = vs_xasprintf("%s/b.json", dir);
  struct vs_err err = {0};
  struct vs_newfile f = {.fd = -1};
  ok(vs_newfile_open(&f, a, 0600, &err) == 0 && vs_newfile_write(&f, "new\n", 4, &err) == 0,
     "a new file is written");
  ok(vs_newfile_commit_new(&f, a, &err) == 0, "it is not put where a file already is");
  ok(count_entries(dir) == 1,
     "and stays unnamed meanwhile: a process killed now would leave no name behind");
  char *got = slurp(a);
  is_str(got, "old\n", "the file already there is left as it was");
  free(got);
  vs_newfile_writeback(&f); /* started before it is placed: the commit still syncs it */
  ok(vs_newfile_commit_new(&f, b, &err) == 1, "the same file is then put under a free name");
  got = slurp(b);
  is_str(got, "new\n", "with all it was given");
  free(got);
  struct stat st;
  mode_t mask = umask(0);
  umask(mask);
  ok(stat(b, &st) == 0 && (st.st_mode & 0777) == (0600 & ~mask),
     "with the mode it was opened with");
  ok(count_entries(dir) == 2, "and no temporary file is left beside them");

  ok(vs_newfile_open(&f, a, 0600, &err) == 0 && vs_newfile_commit_new(&f, a, &err) == 0,
     "another new file finds its name taken");
  vs_newfile_abandon(&f);
  vs_newfile_writeback(&f); /* abandoned: nothing to write, and no descriptor used */
  ok(count_entries(dir) == 2, "abandoned, it leaves nothing behind");
  vs_err_clear(&err);
  free(a);
  free(b);
  fx_rmtree(dir);
  free(dir);
}

/* Whether the page at OFF of FD is cached, by both probes; -1 when they disagree. */
static int cached_both(int fd, uint64_t off) {
  bool a = vs_page_cached(fd, off), b = vs_page_cached_mapped(fd, off);
  return a == b ? a : -1;
}

/* A file the caller neither owns nor may write: cachestat refuses it and mincore would say every
 * page is cached, so vs_page_cached reads instead. Run as nobody, on root's file PATH, whose
 * pages are evicted first. */
static void not_owner(const char *path, long page) {
  if (geteuid() != 0) {
    skip(1, "not root: no other user's file to ask about");
    return;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
    ok(0, "root's file opened read-only and evicted: %s", strerror(errno));
    if (fd >= 0) close(fd);
    return;
  }
  pid_t child = fork();
  if (child == 0) {
    char one[1];
    bool right = setgid(65534) == 0 && setuid(65534) == 0 && !vs_page_cached(fd, 0) &&
                 pread(fd, one, 1, page) == 1 && vs_page_cached(fd, (uint64_t)page);
    _exit(right ? 0 : 1);
  }
  int status = 0;
  bool waited = child > 0 && waitpid(child, &status, 0) == child;
  ok(waited && WIFEXITED(status) && WEXITSTATUS(status) == 0,
     "another user's file: an evicted page is not cached, a page read is (as nobody)");
  close(fd);
}

static void test_page_cached(void) {
  long cs = syscall(451, -1, NULL, NULL, 0) < 0 && errno == ENOSYS ? 0 : 1;
  diag("this kernel %s cachestat: %s", cs ? "has" : "has no",
       cs ? "vs_page_cached asks it" : "vs_page_cached and mincore are one probe here");
  char *dir = fx_tmpdir();
  char *path = vs_xasprintf("%s/pages", dir);
  long page = sysconf(_SC_PAGESIZE);
  char *buf = vs_xmalloc((size_t)page * 4);
  memset(buf, 0x5a, (size_t)page * 4);
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  bool written = fd >= 0 && write(fd, buf, (size_t)page * 4) == page * 4 && fsync(fd) == 0;
  ok(written && cached_both(fd, 0) == 1 && cached_both(fd, (uint64_t)page * 3 + 5) == 1,
     "pages just written are in the page cache, by cachestat and by mincore");
  struct statfs fs;
  /* Evicting works on a disk's file system; tmpfs keeps its pages (they are the file). Under
   * valgrind, a file's pages read as cached after POSIX_FADV_DONTNEED (seen with 3.19). */
  if (fstatfs(fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC) {
    skip(3, "TMPDIR is on tmpfs, whose pages cannot be evicted");
  } else if (getenv("VS_VALGRIND")) {
    skip(3, "under valgrind, evicted pages read as cached");
  } else {
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM); /* a read below reads its page alone */
    bool gone = cached_both(fd, 0) == 0 && cached_both(fd, (uint64_t)page * 2) == 0;
    /* Asked again after a while: a probe that started a read would have brought it in. */
    struct timespec wait = {0, 20 * 1000 * 1000};
    nanosleep(&wait, NULL);
    ok(gone && cached_both(fd, (uint64_t)page * 2) == 0,
       "evicted, they are not, and asking does not read them");
    char one[1];
    ok(pread(fd, one, 1, page) == 1 && cached_both(fd, (uint64_t)page) == 1 &&
           cached_both(fd, (uint64_t)page * 3) == 0,
       "a page read is, the others stay out");
    not_owner(path, page);
  }
  ok(!vs_page_cached(-1, 0) && !vs_page_cached_mapped(-1, 0), "a bad descriptor is not cached");
  if (fd >= 0) close(fd);
  free(buf);
  unlink(path);
  free(path);
  fx_rmtree(dir);
  free(dir);
}

static void test_monotonic_timespec(void) {
  struct timespec a = vs_monotonic_timespec(12.25), b = vs_monotonic_timespec(-3.5);
  struct timespec c = vs_monotonic_timespec(7.9999999999), d = vs_monotonic_timespec(86400.0);
  ok(a.tv_sec == 12 && a.tv_nsec == 250000000, "12.25 s is 12 s and 250,000,000 ns");
  ok(b.tv_sec == 0 && b.tv_nsec == 0, "a negative instant is the clock's start");
  ok(c.tv_sec == 7 && c.tv_nsec >= 999999000 && c.tv_nsec <= 999999999,
     "just under a second more stays under it (%ld ns)", c.tv_nsec);
  ok(d.tv_sec == 86400 && d.tv_nsec == 0, "a whole day is whole");
}

static json_t *js(const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
  if (!j) {
    diag("bad test JSON %s: %s", text, e.text);
    abort();
  }
  return j;
}

/* Whether the diff of FROM and TO is the patch EXPECT (text, or NULL for none), and applied to
 * FROM gives TO. */
static bool diff_is(const char *from, const char *to, const char *expect) {
  json_t *f = js(from), *t = js(to), *patch = vs_json_merge_diff(f, t);
  json_t *want = expect ? js(expect) : NULL;
  bool same = want ? patch && json_equal(patch, want) : !patch;
  if (patch) {
    json_t *back = vs_json_merge_apply(f, patch);
    same = same && json_equal(back, t);
    json_decref(back);
  }
  json_t *f_again = js(from);
  same = same && json_equal(f, f_again); /* FROM is left as it was */
  json_decref(f_again);
  json_decref(f);
  json_decref(t);
  json_decref(patch);
  json_decref(want);
  return same;
}

static void test_merge_patch(void) {
  ok(diff_is("{\"a\":\"1\",\"b\":\"2\"}", "{\"a\":\"1\",\"b\":\"2\"}", "{}"),
     "equal documents: an empty patch");
  ok(diff_is("{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}", "{\"a\":\"1\",\"b\":\"9\",\"d\":\"4\"}",
             "{\"b\":\"9\",\"c\":null,\"d\":\"4\"}"),
     "a changed, a removed and an added member, and nothing else");
  ok(diff_is("{\"s\":{\"k1\":\"v\",\"k2\":\"w\"},\"os\":{\"id\":\"debian\"}}",
             "{\"s\":{\"k1\":\"v\",\"k2\":\"x\"},\"os\":{\"id\":\"debian\"}}",
             "{\"s\":{\"k2\":\"x\"}}"),
     "objects are diffed member by member, however deep");
  ok(diff_is("{\"l\":[1,2,3],\"o\":{\"x\":1}}", "{\"l\":[1,2],\"o\":\"flat\"}",
             "{\"l\":[1,2],\"o\":\"flat\"}"),
     "arrays and a member that changes type are replaced whole");
  ok(diff_is("{\"o\":\"flat\"}", "{\"o\":{\"x\":\"1\"}}", "{\"o\":{\"x\":\"1\"}}"),
     "a value that becomes an object is set whole");
  ok(diff_is("{\"a\":\"1\"}", "{\"a\":null}", NULL), "a member set to null gives no patch");
  ok(diff_is("{\"a\":\"1\"}", "{\"a\":{\"n\":null}}", NULL),
     "a null inside a new object gives no patch");
  ok(diff_is("{\"a\":\"1\"}", "[\"x\"]", "[\"x\"]"), "a document that is no object is replaced");
  ok(diff_is("{\"a\":{\"x\":\"1\"}}", "{\"a\":{}}", "{\"a\":{\"x\":null}}") &&
         diff_is("{}", "{\"a\":{}}", "{\"a\":{}}") &&
         diff_is("{\"a\":\"1\"}", "{\"a\":{}}", "{\"a\":{}}") &&
         diff_is("{\"a\":{}}", "{}", "{\"a\":null}"),
     "empty objects: emptied, added, replacing a string, removed");
  ok(diff_is("{\"a\":\"1\"}", "null", NULL), "a document that becomes null gives no patch");
  json_t *t = js("{\"a\":{\"b\":\"1\"},\"c\":\"2\"}"), *p = js("{\"a\":{\"b\":null},\"c\":null}");
  json_t *r = vs_json_merge_apply(t, p), *want = js("{\"a\":{}}");
  ok(json_equal(r, want), "nulls remove members at every depth (RFC 7386)");
  json_decref(r);
  json_decref(want);
  json_decref(p);
  p = js("{\"z\":{\"y\":\"1\"}}");
  json_t *flat = json_string("not an object");
  r = vs_json_merge_apply(flat, p);
  ok(json_equal(r, p), "a patch onto a value that is no object starts from {}");
  json_decref(r);
  json_decref(flat);
  json_decref(p);
  json_decref(t);
}

static size_t allocated;
static void *counting_malloc(size_t n) {
  allocated += n;
  return malloc(n);
}

/* A hostile patch 200 levels deep (a chain of "x" members; jansson parses up to 2048), onto a
 * target holding the same chain with a large array at its end: applying it must cost about
 * one copy of the target, not one per level. */
static void test_merge_patch_cost(void) {
  enum { DEPTH = 200, ITEMS = 2000 };
  json_t *leaf = json_array();
  for (int i = 0; i < ITEMS; i++)
    json_array_append_new(leaf, json_string("a string of some length, many times"));
  json_t *target = leaf, *patch = json_pack("{s:s}", "y", "1");
  for (int i = 0; i < DEPTH; i++) {
    target = json_pack("{s:o}", "x", target);
    patch = json_pack("{s:o}", "x", patch);
  }
  json_malloc_t old_malloc;
  json_free_t old_free;
  json_get_alloc_funcs(&old_malloc, &old_free);
  allocated = 0;
  json_set_alloc_funcs(counting_malloc, free);
  json_t *copy = json_deep_copy(target);
  size_t one_copy = allocated;
  allocated = 0;
  json_t *out = vs_json_merge_apply(target, patch);
  size_t applied = allocated;
  json_set_alloc_funcs(old_malloc, old_free);
  json_t *at = out;
  for (int i = 0; i < DEPTH && at; i++)
    at = json_object_get(at, "x");
  ok(json_is_object(at) && json_object_size(at) == 1 &&
         strcmp(json_string_value(json_object_get(at, "y")) ?: "", "1") == 0,
     "the patch is applied at depth %d: the array there becomes its object", DEPTH);
  ok(applied < 2 * one_copy,
     "a patch %d levels deep costs about one copy of the target (%zu bytes, a copy %zu)", DEPTH,
     applied, one_copy);
  json_decref(out);
  json_decref(copy);
  json_decref(target);
  json_decref(patch);
}

struct counted {
  unsigned *calls;
};

static void count_call(void *arg, size_t i) {
  struct counted *c = arg;
  __atomic_add_fetch(&c->calls[i], 1, __ATOMIC_RELAXED);
}

/* A helper thread's first call wakes the caller's, which waits for it (at most 30 s): whether
 * other threads share the work does not depend on how soon they are scheduled. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t helped;
  pthread_t caller;
  bool by_other;
} share = {.lock = PTHREAD_MUTEX_INITIALIZER, .helped = PTHREAD_COND_INITIALIZER};

static void wait_for_help(void *arg, size_t i) {
  (void)arg;
  (void)i;
  pthread_mutex_lock(&share.lock);
  if (!pthread_equal(pthread_self(), share.caller)) {
    share.by_other = true;
    pthread_cond_broadcast(&share.helped);
  } else {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    while (!share.by_other && pthread_cond_timedwait(&share.helped, &share.lock, &until) == 0)
      ;
  }
  pthread_mutex_unlock(&share.lock);
}

/* Every index once, whatever the threads asked for; more than one thread when there is work
 * for them and more than one CPU. */
static void test_parallel_for(void) {
  static const size_t sizes[] = {0, 1, 15, 1000, 100000};
  static const size_t threads[] = {0, 1, 3, 64};
  size_t wrong = 0, cases = 0;
  for (size_t s = 0; s < sizeof(sizes) / sizeof(*sizes); s++)
    for (size_t t = 0; t < sizeof(threads) / sizeof(*threads); t++) {
      size_t n = sizes[s];
      struct counted c = {vs_xcalloc(n + 1, sizeof(unsigned))};
      vs_parallel_for(n, threads[t], count_call, &c);
      for (size_t i = 0; i < n; i++)
        wrong += c.calls[i] != 1;
      cases++;
      free(c.calls);
    }
  ok(wrong == 0, "vs_parallel_for calls every index exactly once (%zu cases, %zu wrong)", cases,
     wrong);
  if (sysconf(_SC_NPROCESSORS_ONLN) > 1) {
    share.caller = pthread_self();
    vs_parallel_for(64, 2, wait_for_help, NULL);
    ok(share.by_other, "and a thread other than the caller's takes some of the indexes");
  } else {
    skip(1, "one CPU: the caller's thread alone");
  }
}

struct chunk_seen {
  size_t from[VS_PARALLEL_MAX], to[VS_PARALLEL_MAX];
  unsigned calls[VS_PARALLEL_MAX];
};

static void note_chunk(void *arg, size_t c, size_t from, size_t to) {
  struct chunk_seen *seen = arg;
  seen->from[c] = from;
  seen->to[c] = to;
  seen->calls[c]++;
}

/* Chunks cover [0, N) in order, without gap or overlap, each called once, none smaller than
 * asked unless there is one only. */
static void test_parallel_chunks(void) {
  static const size_t sizes[] = {0, 1, 255, 256, 511, 512, 1000, 100003};
  size_t wrong = 0, cases = 0, most = 0;
  for (size_t s = 0; s < sizeof(sizes) / sizeof(*sizes); s++) {
    size_t n = sizes[s];
    struct chunk_seen seen = {0};
    size_t chunks = vs_parallel_chunks(n, 256, note_chunk, &seen);
    if (chunks > most) most = chunks;
    bool good =
        chunks >= 1 && chunks <= VS_PARALLEL_MAX && seen.from[0] == 0 && seen.to[chunks - 1] == n;
    for (size_t c = 0; c < chunks; c++) {
      good &= seen.calls[c] == 1 && seen.from[c] <= seen.to[c];
      good &= c + 1 == chunks || seen.to[c] == seen.from[c + 1];
      good &= chunks == 1 || seen.to[c] - seen.from[c] >= 256;
    }
    wrong += !good;
    cases++;
  }
  ok(wrong == 0, "vs_parallel_chunks covers every index once, in order (%zu cases, %zu wrong)",
     cases, wrong);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  ok(most == (size_t)(cpus > VS_PARALLEL_MAX ? VS_PARALLEL_MAX : cpus),
     "and makes a chunk per CPU when there is work for each (%zu chunks, %ld CPUs)", most, cpus);
}

int main(void) {
  plan_no_plan();
  test_parallel_for();
  test_parallel_chunks();
  test_lines();
  test_words();
  test_strv();
  test_newfile_new();
  test_page_cached();
  test_monotonic_timespec();
  test_merge_patch();
  test_merge_patch_cost();
  return done_testing();
}
