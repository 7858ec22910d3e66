/* progress.h: one status line updated in place on a terminal while something slow runs (the
 * libguestfs appliance: 20-60 s to launch under emulation), erased when done. Drawn with a
 * carriage return and spaces, no terminal escapes; control characters in the text (a file name
 * is the guest owner's) are shown as '?'. Safe from several threads: a ticker redraws it. */
#ifndef VS_CLI_PROGRESS_H
#define VS_CLI_PROGRESS_H

#include "util.h"

#include <stdbool.h>
#include <stdio.h>

struct vs_cli_progress;
/* A status line on OUT. When IS_TERMINAL is false nothing at all is written but what
 * vs_cli_progress_printf prints: the caller passes isatty(fileno(OUT)) and not --quiet. COLUMNS
 * bounds the line (0: the terminal's width, asked at each draw; 80 when it does not say). With
 * TICKER, a thread redraws the line at each whole second of its phase, so the elapsed time
 * moves while nothing else does; without, only vs_cli_progress_tick does (tests). */
struct vs_cli_progress *vs_cli_progress_new(FILE *out, bool is_terminal, unsigned columns,
                                            bool ticker);
/* Erases the line, stops the ticker. Accepts NULL. */
void vs_cli_progress_free(struct vs_cli_progress *p);
static inline void vs_cli_progress_freep(struct vs_cli_progress **p) {
  vs_cli_progress_free(*p);
}

/* The line becomes the formatted text: a phase that begins at NOW (vs_now_monotonic's seconds).
 * Once it has lasted a second the line ends with its elapsed time: "(12 s)", "(1 min 05 s)";
 * the text is cut to fit the width, never the time. */
void vs_cli_progress_set(struct vs_cli_progress *p, double now, const char *fmt, ...)
    VS_PRINTF(3, 4);
/* Draws the line again as of NOW. */
void vs_cli_progress_tick(struct vs_cli_progress *p, double now);
/* Prints the formatted text (end it with a newline) on OUT whether or not it is a terminal,
 * with the status line erased first and drawn again after, so that the two never mix. P may
 * be NULL: the text then goes to standard error. */
void vs_cli_progress_printf(struct vs_cli_progress *p, const char *fmt, ...) VS_PRINTF(2, 3);

#endif
