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

#include <jansson.h>

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
 * thing), then fsync'd, named and renamed into place. A process killed before the end leaves
 * nothing behind (only the fallback's temporary file). */
struct vs_newfile {
  int fd;
  char *path, *tmp; /* TMP: the temporary name, NULL while the file has none */
};
/* MODE as for open(2), less the umask. */
int vs_newfile_open(struct vs_newfile *f, const char *path, unsigned mode, struct vs_err *err);
/* Appends LEN bytes of DATA to the file (all of them, or an error). */
int vs_newfile_write(struct vs_newfile *f, const void *data, size_t len, struct vs_err *err);
/* Puts the file under its name (replacing what was there), syncs the directory, closes it. */
int vs_newfile_commit(struct vs_newfile *f, struct vs_err *err);
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

/* String lists: an array of N strings, grown one at a time. vs_strv_add appends a copy of S
 * (out of memory aborts, as the vs_x* allocators do); vs_strv_free frees the first N strings
 * of V, then V (NULL is fine). */
void vs_strv_add(char ***v, size_t *n, const char *s);
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
/* True when S (LEN bytes) is valid UTF-8 with no control characters. */
bool vs_text_is_clean(const char *s, size_t len);

/* Base64 TEXT decoded (NUL-terminated; may hold NULs), its length in *LEN (may be NULL);
 * NULL when TEXT is not base64. */
char *vs_base64_decode(const char *text, size_t *len);

char *vs_trim(char *s); /* trims ASCII white space in place; returns the start */
bool vs_has_suffix(const char *s, const char *suffix);
/* qsort comparator for an array of strings (char * or const char *). */
int vs_cmp_strp(const void *a, const void *b);
double vs_now_monotonic(void); /* seconds */
/* Formats T as RFC 3339 UTC ("2026-11-24T18:00:00Z") into OUT (at least 21 bytes). */
void vs_format_utc(int64_t t, char out[static 21]);

/* Peak resident set size of this process in KiB, or -1. */
long vs_peak_rss_kib(void);

#endif
