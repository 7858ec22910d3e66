/* cli/progress: the status line the CLI draws on a terminal while the libguestfs appliance
 * works, as the bytes a terminal receives (a FILE the test reads back stands for it). */
#include "progress.h"
#include "tap.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fake terminal: a memory stream, and how much of it the test has looked at. */
struct term {
  FILE *f;
  char *buf;
  size_t len, seen;
};

static void term_open(struct term *t) {
  *t = (struct term){0};
  t->f = open_memstream(&t->buf, &t->len);
  if (!t->f) {
    diag("open_memstream: %s", strerror(errno));
    exit(99);
  }
}

/* What was written since the last call, as a new string. */
static char *term_new_bytes(struct term *t) {
  fflush(t->f);
  char *s = vs_xstrndup(t->buf + t->seen, t->len - t->seen);
  t->seen = t->len;
  return s;
}

static void term_close(struct term *t) {
  fclose(t->f);
  free(t->buf);
}

/* Checks that the bytes written since the last check are WANT. */
static void is_written(struct term *t, const char *want, const char *desc) {
  char *got = term_new_bytes(t);
  is_str(got, want, "%s", desc);
  free(got);
}

static void test_not_a_terminal(void) {
  struct term t;
  term_open(&t);
  struct vs_cli_progress *p = vs_cli_progress_new(t.f, false, 80, true);
  vs_cli_progress_set(p, 100, "vmscope inspect: libguestfs appliance for 2 images: launching");
  vs_cli_progress_tick(p, 112);
  is_written(&t, "", "not on a terminal (or under --quiet), a phase and its ticks write nothing");
  vs_cli_progress_printf(p, "disk.qcow2: 12.0 ms\n");
  is_written(&t, "disk.qcow2: 12.0 ms\n", "what --stats prints still goes out, alone");
  vs_cli_progress_free(p);
  is_written(&t, "", "and there is no line to erase at the end");
  term_close(&t);
}

static void test_phases_and_time(void) {
  struct term t;
  term_open(&t);
  struct vs_cli_progress *p = vs_cli_progress_new(t.f, true, 80, false);
  vs_cli_progress_set(p, 100, "vmscope: libguestfs appliance for 2 images: launching");
  is_written(&t, "\rvmscope: libguestfs appliance for 2 images: launching",
             "a phase is drawn at once, from the start of the line, with no newline");
  vs_cli_progress_tick(p, 100.9);
  is_written(&t, "\rvmscope: libguestfs appliance for 2 images: launching",
             "under a second, no time is shown");
  vs_cli_progress_tick(p, 112.3);
  is_written(&t, "\rvmscope: libguestfs appliance for 2 images: launching (12 s)",
             "a tick shows the whole seconds the phase has lasted");
  vs_cli_progress_tick(p, 165);
  is_written(&t, "\rvmscope: libguestfs appliance for 2 images: launching (1 min 05 s)",
             "from a minute on, in minutes and seconds");
  vs_cli_progress_set(p, 170, "vmscope: image 1 of 2: a.qcow2: reading files");
  is_written(&t,
             "\rvmscope: image 1 of 2: a.qcow2: reading files"
             "                     ", /* 66 - 45 columns */
             "a new phase starts its time over, and spaces blank what the longer line left");
  vs_cli_progress_free(p);
  is_written(&t, "\r                                             \r", /* 45 */
             "at the end the line is blanked and the cursor put back at its start");
  term_close(&t);
}

static void test_width(void) {
  struct term t;
  term_open(&t);
  struct vs_cli_progress *p = vs_cli_progress_new(t.f, true, 20, false);
  vs_cli_progress_set(p, 0, "vmscope: launching the appliance");
  is_written(&t, "\rvmscope: launching ",
             "a line wider than the terminal is cut one column short of its width");
  vs_cli_progress_tick(p, 12);
  is_written(&t, "\rvmscope: lau (12 s)", "the text is cut, never the elapsed time");
  vs_cli_progress_set(p, 12, "image: ééééééééééééééééééé");
  is_written(&t, "\rimage: éééééééééééé",
             "the width counts characters, and a UTF-8 character is never cut in two");
  vs_cli_progress_set(p, 12, "image \033[2J\nx\ty\x7f");
  is_written(&t, "\rimage ?[2J?x?y?    ",
             "control characters in a name (an escape, a newline) are shown as '?'");
  vs_cli_progress_free(p);
  term_close(&t);
}

static void test_printf_between(void) {
  struct term t;
  term_open(&t);
  struct vs_cli_progress *p = vs_cli_progress_new(t.f, true, 80, false);
  vs_cli_progress_set(p, 0, "vmscope: launching");
  vs_cli_progress_tick(p, 3);
  free(term_new_bytes(&t));
  vs_cli_progress_printf(p, "libguestfs appliance for %d image(s) up in %.1f s\n", 1, 3.0);
  is_written(&t,
             "\r                        \r" /* 24 */
             "libguestfs appliance for 1 image(s) up in 3.0 s\n"
             "\rvmscope: launching (3 s)",
             "a line printed meanwhile erases the status line first, and the status line is "
             "drawn again after it");
  vs_cli_progress_free(p);
  term_close(&t);
}

/* The ticker thread, on a pipe the test reads: it redraws the line at the phase's first whole
 * second with nothing else happening. Bounded: 10 s. */
static void test_ticker(void) {
  int fds[2];
  if (pipe(fds) < 0) {
    diag("pipe: %s", strerror(errno));
    exit(99);
  }
  FILE *w = fdopen(fds[1], "w");
  if (!w) exit(99);
  struct vs_cli_progress *p = vs_cli_progress_new(w, true, 80, true);
  vs_cli_progress_set(p, vs_now_monotonic(), "vmscope: launching");
  struct vs_buf got = {0};
  double deadline = vs_now_monotonic() + 10;
  while (!strstr(got.data ? got.data : "", "(1 s)") && vs_now_monotonic() < deadline) {
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    if (poll(&pfd, 1, (int)((deadline - vs_now_monotonic()) * 1000) + 1) <= 0) continue;
    char buf[256];
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    vs_buf_add(&got, buf, (size_t)n);
  }
  ok(got.data && strstr(got.data, "\rvmscope: launching (1 s)"),
     "on its own, the ticker redraws the line with its elapsed time once a second has passed");
  vs_cli_progress_free(p); /* stops and joins the ticker */
  fclose(w);
  close(fds[0]);
  vs_buf_free(&got);
}

int main(void) {
  test_not_a_terminal();
  test_phases_and_time();
  test_width();
  test_printf_between();
  test_ticker();
  return done_testing();
}
