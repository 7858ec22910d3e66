/* dl.h: a library opened on first use: its symbols resolved once for all threads, and the
 * library that is missing, or lacks a symbol, named in an error every caller gets. And none of
 * the libraries vmscope opens so is mapped at start-up; libbfio's one copy (inspect/bfio.h)
 * serves every libyal reader. */
#include "bfio.h"
#include "dl.h"
#include "fixture.h"
#include "tap.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define M_SYMBOLS(X) X(cos) X(sqrt)
VS_DL_LIBRARY(m_lib, "libm.so.6", "libc6", M_SYMBOLS);

#define RACE_SYMBOLS(X) X(floor)
VS_DL_LIBRARY(race_lib, "libm.so.6", "libc6", RACE_SYMBOLS);

/* The file FN resolves to in the loader's global scope, where the readers' calls bind first. */
static const char *defined_in(const char *fn) {
  Dl_info info;
  void *f = dlsym(RTLD_DEFAULT, fn);
  return f && dladdr(f, &info) && info.dli_fname ? info.dli_fname : "nowhere";
}

/* libbfio's copy: libvhdi's, loaded before any reader, serves all of them, wherever the reader
 * would have found libbfio itself (its NEEDED libbfio1, or its own copy). */
static void one_libbfio(void) {
  struct vs_err err = {0};
  int rc = vs_bfio_load(&err);
  ok(rc == 0, "libbfio's copy is loaded (%s)", err.msg ? err.msg : "no error");
  vs_err_clear(&err);
  ok(fx_mapped(VS_SONAME_VHDI) && !fx_mapped("libbfio.so"),
     "it is libvhdi's; libbfio1 is not mapped");
  const char *readers[] = {VS_SONAME_FSNTFS, VS_SONAME_FSXFS, VS_SONAME_VSLVM, VS_SONAME_VMDK,
                           VS_SONAME_VHDI};
  for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++) /* as dl.c opens them */
    ok(dlopen(readers[i], RTLD_NOW | RTLD_GLOBAL) != NULL, "reader %s opened after it", readers[i]);
  ok(fx_mapped("libbfio.so"), "libbfio1 is mapped now (libfsntfs, libfsxfs and libvmdk need it)");
  /* Some that vmscope calls, some that only libvhdi's copy defines, and the pool's internals. */
  const char *fns[] = {"libbfio_handle_initialize",  "libbfio_handle_free",
                       "libbfio_pool_append_handle", "libbfio_handle_open",
                       "libbfio_handle_read_buffer", "libbfio_handle_read_buffer_at_offset",
                       "libbfio_pool_open",          "libbfio_internal_pool_open",
                       "libbfio_handle_get_size",    "libbfio_pool_read_buffer"};
  for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
    ok(strstr(defined_in(fns[i]), VS_SONAME_VHDI) != NULL, "%s is libvhdi's copy's: %s", fns[i],
       defined_in(fns[i]));
}

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

  /* Each opened by the one module that wraps it (dl.h), none linked. */
  const char *lazy[] = {"libvirt.so",   "libvirt-qemu.so", "libguestfs.so", "libpq.so",
                        "libcurl.so",   "libnbd.so",       "librpm.so",     "librpmio.so",
                        "libaugeas.so", "libxml2.so",      "libnettle.so",  "libhivex.so",
                        "libfsntfs.so", "libfsxfs.so",     "libvslvm.so",   "libvhdi.so",
                        "libvmdk.so",   "libbfio.so"};
  for (size_t i = 0; i < sizeof(lazy) / sizeof(lazy[0]); i++)
    ok(!fx_mapped(lazy[i]), "%s is not mapped at start-up", lazy[i]);

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

  one_libbfio();
  free(missing.error); /* a library's error is kept for the process's life: these are locals */
  free(old.error);
  return done_testing();
}
