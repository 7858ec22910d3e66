/* dl.h: a library opened on first use: its symbols resolved once for all threads, and the
 * library that is missing, or lacks a symbol, named in an error every caller gets. */
#include "dl.h"
#include "tap.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define M_SYMBOLS(X) X(cos) X(sqrt)
VS_DL_LIBRARY(m_lib, "libm.so.6", "libc6", M_SYMBOLS);

#define RACE_SYMBOLS(X) X(floor)
VS_DL_LIBRARY(race_lib, "libm.so.6", "libc6", RACE_SYMBOLS);

static void *load_race(void *arg) {
  (void)arg;
  struct vs_err err = {0};
  int rc = vs_dl_load(&race_lib, &err);
  vs_err_clear(&err);
  return (void *)(intptr_t)(rc == 0 && sym_floor(2.5) == 2.0);
}

int main(void) {
  plan_no_plan();
  struct vs_err err = {0};

  ok(sym_cos == NULL, "nothing is resolved before the first load");
  is_num(vs_dl_load(&m_lib, &err), 0, "a library present is loaded");
  ok(sym_cos && sym_cos(0.0) == 1.0 && sym_sqrt(16.0) == 4.0,
     "its functions are called through the pointers, with their own types");
  is_num(vs_dl_load(&m_lib, &err), 0, "loading it again is a no-op");

  struct vs_dl_library missing = {"libvs-no-such-library.so.7", "vs-nothing", NULL, 0, 0, NULL};
  is_num(vs_dl_load(&missing, &err), -1, "a library that is not installed is an error");
  ok(strstr(vs_err_msg(&err), "libvs-no-such-library.so.7") &&
         strstr(vs_err_msg(&err), "install the vs-nothing package"),
     "which names its file and the package that installs it: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  is_num(vs_dl_load(&missing, &err), -1, "and every later caller gets the same error");
  ok(strstr(vs_err_msg(&err), "libvs-no-such-library.so.7") != NULL, "with its message");
  vs_err_clear(&err);

  void *present = NULL, *absent = NULL;
  const struct vs_dl_symbol symbols[] = {{"cos", &present}, {"vs_no_such_symbol", &absent}};
  struct vs_dl_library old = {"libm.so.6", "libc6", symbols, 2, 0, NULL};
  is_num(vs_dl_load(&old, &err), -1, "a library that lacks a symbol this build calls is an error");
  ok(strstr(vs_err_msg(&err), "has no vs_no_such_symbol") != NULL, "which names the symbol: %s",
     vs_err_msg(&err));
  vs_err_clear(&err);
  is_num(vs_dl_load(&old, NULL), -1, "(with no place for the error too)");

  pthread_t t[8];
  for (int i = 0; i < 8; i++)
    pthread_create(&t[i], NULL, load_race, NULL);
  int good = 0;
  for (int i = 0; i < 8; i++) {
    void *r;
    pthread_join(t[i], &r);
    good += r != NULL;
  }
  is_num(good, 8, "eight threads loading at once each find the library loaded and callable");
  free(missing.error); /* a library's error is kept for the process's life: these are locals */
  free(old.error);
  return done_testing();
}
