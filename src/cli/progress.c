/* One status line updated in place on a terminal (progress.h). */
#include "progress.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

struct vs_cli_progress {
  FILE *out;
  bool is_terminal;
  unsigned columns;
  pthread_mutex_t lock; /* guards what follows, and every write to OUT */
  pthread_cond_t wake;  /* the ticker's: the phase changed, or stop */
  bool has_ticker, stop;
  pthread_t ticker;
  char *text;      /* the phase's text, NULL when there is none */
  double start;    /* when the phase began */
  double last_now; /* the time of the last draw, for a redraw after printf */
  size_t drawn;    /* how many columns the line takes on the terminal now */
};

static unsigned line_width(const struct vs_cli_progress *p) {
  if (p->columns) return p->columns;
  struct winsize ws;
  if (ioctl(fileno(p->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

/* Columns S takes: its UTF-8 characters (continuation bytes take none). */
static size_t columns_of(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += ((unsigned char)s[i] & 0xc0) != 0x80;
  return n;
}

/* The length of S's longest prefix of at most MAX columns that ends between characters. */
static size_t fit(const char *s, size_t max) {
  size_t i = 0, cols = 0;
  while (s[i]) {
    size_t next = i + 1;
    while (((unsigned char)s[next] & 0xc0) == 0x80)
      next++;
    if (cols + 1 > max) break;
    cols++;
    i = next;
  }
  return i;
}

/* Overwrites the terminal's line with the phase's text and its elapsed time as of NOW, padded
 * with spaces over what was there. Called with the lock held. */
static void draw(struct vs_cli_progress *p, double now) {
  p->last_now = now;
  if (!p->is_terminal || !p->text) return;
  char elapsed[48] = "";
  double t = now - p->start;
  long s = t > 0 ? (long)t : 0; /* whole seconds */
  if (s >= 60)
    snprintf(elapsed, sizeof(elapsed), " (%ld min %02ld s)", s / 60, s % 60);
  else if (s >= 1)
    snprintf(elapsed, sizeof(elapsed), " (%ld s)", s);
  /* The last column stays empty: writing there makes some terminals wrap. */
  size_t width = line_width(p) - 1, tail = strlen(elapsed);
  size_t keep = fit(p->text, width > tail ? width - tail : 0);
  size_t cols = columns_of(p->text, keep) + tail;
  struct vs_buf b = {0};
  vs_buf_addc(&b, '\r');
  vs_buf_add(&b, p->text, keep);
  vs_buf_adds(&b, elapsed);
  for (size_t i = cols; i < p->drawn; i++)
    vs_buf_addc(&b, ' ');
  fwrite(b.data, 1, b.len, p->out);
  fflush(p->out);
  vs_buf_free(&b);
  p->drawn = cols;
}

/* Blanks the terminal's line and puts the cursor at its start. Called with the lock held. */
static void erase(struct vs_cli_progress *p) {
  if (!p->drawn) return;
  struct vs_buf b = {0};
  vs_buf_addc(&b, '\r');
  for (size_t i = 0; i < p->drawn; i++)
    vs_buf_addc(&b, ' ');
  vs_buf_addc(&b, '\r');
  fwrite(b.data, 1, b.len, p->out);
  fflush(p->out);
  vs_buf_free(&b);
  p->drawn = 0;
}

/* The ticker: sleeps until the phase's next whole second (or a change, or stop) and redraws. */
static void *tick_run(void *arg) {
  struct vs_cli_progress *p = arg;
  pthread_mutex_lock(&p->lock);
  while (!p->stop) {
    if (!p->text) {
      pthread_cond_wait(&p->wake, &p->lock);
      continue;
    }
    double now = vs_now_monotonic();
    double since = now - p->start;
    struct timespec until =
        vs_monotonic_timespec(p->start + (double)(long)(since > 0 ? since : 0) + 1);
    if (pthread_cond_timedwait(&p->wake, &p->lock, &until) == ETIMEDOUT && !p->stop)
      draw(p, vs_now_monotonic());
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

struct vs_cli_progress *vs_cli_progress_new(FILE *out, bool is_terminal, unsigned columns,
                                            bool ticker) {
  struct vs_cli_progress *p = vs_xcalloc(1, sizeof(*p));
  p->out = out;
  p->is_terminal = is_terminal;
  p->columns = columns;
  pthread_mutex_init(&p->lock, NULL);
  vs_cond_init_monotonic(&p->wake);
  /* Without the thread (none can be made) the line still changes with each phase, and only
   * its elapsed time stands still: not worth failing a command for. */
  if (ticker && is_terminal) p->has_ticker = pthread_create(&p->ticker, NULL, tick_run, p) == 0;
  return p;
}

void vs_cli_progress_free(struct vs_cli_progress *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->stop = true;
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->lock);
  if (p->has_ticker) pthread_join(p->ticker, NULL);
  erase(p);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->lock);
  free(p->text);
  free(p);
}

void vs_cli_progress_set(struct vs_cli_progress *p, double now, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *text = vs_xvasprintf(fmt, ap);
  va_end(ap);
  for (char *c = text; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
  pthread_mutex_lock(&p->lock);
  free(p->text);
  p->text = text;
  p->start = now;
  draw(p, now);
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->lock);
}

void vs_cli_progress_tick(struct vs_cli_progress *p, double now) {
  pthread_mutex_lock(&p->lock);
  draw(p, now);
  pthread_mutex_unlock(&p->lock);
}

void vs_cli_progress_printf(struct vs_cli_progress *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (!p) {
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    return;
  }
  pthread_mutex_lock(&p->lock);
  erase(p);
  vfprintf(p->out, fmt, ap);
  draw(p, p->last_now);
  pthread_mutex_unlock(&p->lock);
  va_end(ap);
}
