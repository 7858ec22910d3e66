/* util.h: the core's error type, log sink, allocation and string helpers.
 *
 * Errors: every fallible core function takes a struct vs_err * (may be NULL) and on failure
 * fills it with an errno-style code and a heap message a user can act on, then returns -1 or
 * NULL. Allocation failure is not reported this way: the vs_x* allocators abort the process
 * with a message, because no caller here could do anything useful without memory. */
#ifndef VS_UTIL_H
#define VS_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <pthread.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define VS_PRINTF(a, b) __attribute__((format(printf, a, b)))

struct vs_err {
  int code;  /* errno value, or EINVAL for content problems */
  char *msg; /* heap; NULL when no error */
};

/* Sets ERR (if not NULL), replacing any earlier error. Always returns -1. */
int vs_err_set(struct vs_err *err, int code, const char *fmt, ...) VS_PRINTF(3, 4);
/* Prepends "PREFIX: " to ERR's message (for context such as the VM or file). Returns -1. */
int vs_err_prefix(struct vs_err *err, const char *fmt, ...) VS_PRINTF(2, 3);
void vs_err_clear(struct vs_err *err);
/* The message, or "unknown error" when none is set. */
const char *vs_err_msg(const struct vs_err *err);

enum vs_log_level {
  VS_LOG_ERR = 3,
  VS_LOG_WARNING = 4,
  VS_LOG_NOTICE = 5,
  VS_LOG_INFO = 6,
  VS_LOG_DEBUG = 7
};
typedef void (*vs_log_sink_fn)(enum vs_log_level level, const char *msg, void *ctx);
/* The host (CLI or plugin) decides where core log lines go; the default drops them. */
void vs_log_set_sink(vs_log_sink_fn sink, void *ctx);
void vs_log(enum vs_log_level level, const char *fmt, ...) VS_PRINTF(2, 3);

void *vs_xmalloc(size_t n);
void *vs_xcalloc(size_t n, size_t size);
void *vs_xrealloc(void *p, size_t n);
char *vs_xstrdup(const char *s);
char *vs_xstrndup(const char *s, size_t n);
char *vs_xasprintf(const char *fmt, ...) VS_PRINTF(1, 2);
/* The refusal of an input PATH that is also where a command's output goes (a shell's ">>" or
 * "1<>" onto it): never written into, said the same way by every reader. */
char *vs_msg_output_is_input(const char *path);
char *vs_xvasprintf(const char *fmt, va_list ap) VS_PRINTF(1, 0);

/* Hands ownership of *P to the caller and leaves NULL behind (for _cleanup_ variables). */
static inline void *vs_steal_ptr(void *pp) {
  void **p = pp;
  void *v = *p;
  *p = NULL;
  return v;
}
#define vs_steal(pp) vs_steal_ptr(pp)

void vs_freep(void *pp);
void vs_closep(int *fd);

/* A file that appears under its name only once it is complete: written unnamed in the
 * target's directory (O_TMPFILE; a named PATH.tmp-XXXXXX where the file system has no such
 * thing), then fsync'd and linked under its name (named beside it and renamed into place when
 * it replaces a file). A process killed before the end leaves nothing behind (but the
 * fallback's temporary file, or, killed between the two steps of a replacement, its
 * temporary name). */
struct vs_newfile {
  int fd;
  char *path, *tmp; /* TMP: the temporary name, NULL while the file has none */
};
/* MODE as for open(2), less the umask. */
int vs_newfile_open(struct vs_newfile *f, const char *path, unsigned mode, struct vs_err *err);
/* Appends LEN bytes of DATA to the file (all of them, or an error). */
int vs_newfile_write(struct vs_newfile *f, const void *data, size_t len, struct vs_err *err);
/* Starts writing what was written so far to the disk, without waiting: the fsync of the commit
 * then waits only for what is left (a 4 MiB file's took 2.2-2.5 ms, 0.13 ms once its writeback
 * had started 2 ms earlier). Failures show at the commit. */
void vs_newfile_writeback(struct vs_newfile *f);
/* Puts the file under its name (replacing what was there), syncs the directory, closes it. */
int vs_newfile_commit(struct vs_newfile *f, struct vs_err *err);
/* Puts the file under PATH (in the directory it was opened for) only if nothing is there: a
 * document that must never replace another. 1 when it did (as vs_newfile_commit); 0 when PATH
 * exists, and the file stays ready for another PATH (or vs_newfile_abandon); -1 with ERR. */
int vs_newfile_commit_new(struct vs_newfile *f, const char *path, struct vs_err *err);
/* Drops the file, if not committed. Safe to call twice. */
void vs_newfile_abandon(struct vs_newfile *f);

/* Restores SIGCHLD's default disposition when it is ignored (SIG_IGN or SA_NOCLDWAIT, as
 * collectd sets it): children are then reaped automatically and a waitpid for one's exit
 * status fails with ECHILD. Callers that spawn a child and want its status call this first.
 * A real handler someone installed is left alone. */
void vs_reset_sigchld(void);

/* A growable byte buffer that is always NUL-terminated. */
struct vs_buf {
  char *data;
  size_t len, cap;
};
void vs_buf_add(struct vs_buf *b, const void *data, size_t len);
void vs_buf_adds(struct vs_buf *b, const char *s);
void vs_buf_addf(struct vs_buf *b, const char *fmt, ...) VS_PRINTF(2, 3);
void vs_buf_addc(struct vs_buf *b, char c);
void vs_buf_reset(struct vs_buf *b);
void vs_buf_free(struct vs_buf *b);

/* String lists: an array of N heap strings and a NULL after them, grown one at a time in
 * amortized constant time. V starts as NULL with N 0, and only vs_strv_add and vs_strv_take
 * grow it (they know its room from N alone; the owner may lower N, never raise it).
 * vs_strv_add appends a copy of S, vs_strv_take S itself (a heap string the list then owns);
 * out of memory aborts, as the vs_x* allocators do. vs_strv_free frees the first N strings
 * of V, then V (NULL is fine). */
void vs_strv_add(char ***v, size_t *n, const char *s);
void vs_strv_take(char ***v, size_t *n, char *s);
void vs_strv_free(char **v, size_t n);
char *vs_buf_steal(struct vs_buf *b);

/* Appends S to B with every byte that is a control character, or not part of valid UTF-8,
 * written as \xHH, so guest-derived text is safe to put in JSON, keys and log lines. */
void vs_buf_add_sanitized(struct vs_buf *b, const char *s, size_t len);
/* S (LEN bytes, may hold NULs; S may be NULL when LEN is 0) as a JSON string, with the bytes
 * that are not UTF-8 written as \xHH and control characters kept (JSON escapes them): jansson
 * cannot encode invalid UTF-8, and one such byte from a guest would make the whole document
 * that holds the text fail to serialize. */
json_t *vs_json_text(const char *s, size_t len);
/* TEXT (LEN bytes) parsed as JSON, strictly (a member named twice is refused); NULL with ERR
 * naming WHAT and the line and column where it fails. */
json_t *vs_json_loadb_strict(const char *text, size_t len, const char *what, struct vs_err *err);
/* JSON Merge Patch (RFC 7386). vs_json_merge_apply returns a new value: TARGET with PATCH
 * applied (an object member of PATCH that is null removes that member), leaving both as they
 * are; its work and its result are linear in the sizes of the two, however deep PATCH is.
 * vs_json_merge_diff returns a patch that turns FROM into TO (only the members that differ,
 * recursively through objects), or NULL when none can: a merge patch cannot set a member to
 * null, nor make the whole value null. The patch is checked by applying it, so a non-NULL one
 * always gives TO exactly. */
json_t *vs_json_merge_apply(const json_t *target, const json_t *patch);
json_t *vs_json_merge_diff(const json_t *from, const json_t *to);
/* True when S (LEN bytes) is valid UTF-8 with no control characters. */
bool vs_text_is_clean(const char *s, size_t len);

/* LEN bytes at BYTES as lowercase hexadecimal into HEX (2 LEN + 1 bytes, NUL-terminated). */
void vs_hex(const unsigned char *bytes, size_t len, char *hex);

char *vs_trim(char *s); /* trims ASCII white space in place; returns the start */
/* The next blank-separated word at *P, NUL-terminated in place, *P moved past it; NULL when
 * only blanks are left. */
char *vs_next_word(char **p);

/* Line-oriented files a user writes (waivers, watch lists, labels), read one way: blank lines
 * are skipped, and a '#' that starts a word (first on the line or after a blank) starts a
 * comment to the end of the line, so '#' inside a word ("web#2", "a:#b") is kept. A line of
 * more than VS_LINE_MAX bytes, or with a NUL byte, is an error naming the file and line, never
 * cut short. */
#define VS_LINE_MAX 16384
struct vs_lines {
  FILE *f;
  char *what; /* the file's name in messages */
  char *line;
  size_t cap;
  size_t lineno;  /* of the line last returned */
  uint64_t bytes; /* read so far */
};
/* Opens PATH; WHAT (may be NULL) says what it is in the error when it cannot be opened
 * ("PATH: cannot open WHAT: ..."). */
int vs_lines_open(struct vs_lines *r, const char *path, const char *what, struct vs_err *err);
/* Reads TEXT instead of a file, named WHAT in messages. */
int vs_lines_open_text(struct vs_lines *r, const char *text, const char *what, struct vs_err *err);
/* The next line that is not blank once its comment is gone, trimmed, in *LINE (writable; valid
 * until the next call). 1, 0 at the end, or -1 with ERR. */
int vs_lines_next(struct vs_lines *r, char **line, struct vs_err *err);
/* NULL-safe; safe to call twice. */
void vs_lines_close(struct vs_lines *r);
bool vs_has_suffix(const char *s, const char *suffix);
/* qsort comparator for an array of strings (char * or const char *). */
int vs_cmp_strp(const void *a, const void *b);
double vs_now_monotonic(void); /* seconds */
/* A condition variable whose timed waits take vs_now_monotonic's clock (CLOCK_MONOTONIC). */
void vs_cond_init_monotonic(pthread_cond_t *cond);
/* The instant T (vs_now_monotonic's seconds, not negative) as a timed wait on such a condition
 * takes it. */
struct timespec vs_monotonic_timespec(double t);
/* Formats T as RFC 3339 UTC ("2026-11-24T18:00:00Z") into OUT (at least 21 bytes). */
void vs_format_utc(int64_t t, char out[static 21]);

/* Calls EACH(ARG, I) once for every I < N, on this thread and up to THREADS - 1 others (0: as
 * many as the CPUs online, at most VS_PARALLEL_MAX), each taking the next I; on this thread
 * alone when N is small or no thread can be made. EACH may touch only what I owns. */
#define VS_PARALLEL_MAX 8
void vs_parallel_for(size_t n, size_t threads, void (*each)(void *arg, size_t i), void *arg);
/* Splits [0, N) into contiguous chunks, in order, one a CPU online (at most VS_PARALLEL_MAX)
 * and MIN_CHUNK items each at least, and calls EACH(ARG, C, FROM, TO) for chunk C on a thread
 * of its own; returns how many chunks there were (1 when N is small). For work that cannot be
 * shared item by item, such as counting into a structure per chunk that is merged after, in
 * chunk order. EACH may touch only what chunk C owns. */
size_t vs_parallel_chunks(size_t n, size_t min_chunk,
                          void (*each)(void *arg, size_t chunk, size_t from, size_t to), void *arg);

/* The slots of an open-addressing table for N entries: the least power of two at least 2N
 * (at most half full), and at least 16. */
size_t vs_table_cap(size_t n);

/* Whether the page of file FD holding byte OFF is in the page cache, found without reading it
 * (a read with RWF_NOWAIT starts reading a page that is not there) where the kernel allows:
 * cachestat (Linux 6.5), or before it the page mapped and mincore asked. Both answer only for a
 * file the caller owns or may write (or root); for another's, such a read answers. False when it
 * cannot be told. */
bool vs_page_cached(int fd, uint64_t off);
/* vs_page_cached by mincore alone, as it answers without cachestat (for its test). */
bool vs_page_cached_mapped(int fd, uint64_t off);

/* Peak resident set size of this process in KiB, or -1. */
long vs_peak_rss_kib(void);

#endif
