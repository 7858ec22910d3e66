#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int n_run, n_failed, n_planned = -1;

void plan(int n) {
  n_planned = n;
  printf("1..%d\n", n);
}

void plan_no_plan(void) {
  n_planned = -1;
}

static void vresult(bool cond, const char *desc, va_list ap) {
  n_run++;
  if (!cond) n_failed++;
  printf("%s %d - ", cond ? "ok" : "not ok", n_run);
  vprintf(desc, ap);
  putchar('\n');
  fflush(stdout);
}

bool ok(bool cond, const char *desc, ...) {
  va_list ap;
  va_start(ap, desc);
  vresult(cond, desc, ap);
  va_end(ap);
  return cond;
}

bool is_str(const char *got, const char *want, const char *desc, ...) {
  bool cond = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);
  va_list ap;
  va_start(ap, desc);
  vresult(cond, desc, ap);
  va_end(ap);
  if (!cond)
    printf("#   got:  %s%s%s\n#   want: %s%s%s\n", got ? "\"" : "", got ? got : "(null)",
           got ? "\"" : "", want ? "\"" : "", want ? want : "(null)", want ? "\"" : "");
  return cond;
}

bool is_num(double got, double want, const char *desc, ...) {
  bool cond = got == want;
  va_list ap;
  va_start(ap, desc);
  vresult(cond, desc, ap);
  va_end(ap);
  if (!cond) printf("#   got:  %.17g\n#   want: %.17g\n", got, want);
  return cond;
}

void diag(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("# ", stdout);
  vprintf(fmt, ap);
  putchar('\n');
  va_end(ap);
}

void skip(int n, const char *why) {
  for (int i = 0; i < n; i++)
    printf("ok %d # SKIP %s\n", ++n_run, why);
}

int done_testing(void) {
  if (n_planned < 0)
    printf("1..%d\n", n_run);
  else if (n_planned != n_run)
    printf("# planned %d tests but ran %d\n", n_planned, n_run);
  fflush(stdout);
  return n_failed || (n_planned >= 0 && n_planned != n_run) ? 1 : 0;
}
