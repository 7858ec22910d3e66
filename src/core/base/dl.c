/* dl.c: opening a library on first use (dl.h). */
#include "dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

/* One lock for all libraries: each is opened once, and the wait is only on first use. */
static pthread_mutex_t dl_lock = PTHREAD_MUTEX_INITIALIZER;

/* Under the lock: opens LIB, resolves its symbols; the error is kept in LIB on failure. */
static void open_library(struct vs_dl_library *lib) {
  /* RTLD_NOW: a missing symbol is found here, not as a crash in the middle of a call.
   * RTLD_GLOBAL: libvirt-qemu resolves its libvirt symbols from the libvirt opened before. */
  void *handle = dlopen(lib->soname, RTLD_NOW | RTLD_GLOBAL);
  if (!handle) {
    const char *why = dlerror();
    lib->error = vs_xasprintf("cannot load %s (%s): install the %s package", lib->soname,
                              why ? why : "no reason given", lib->package);
    __atomic_store_n(&lib->state, -1, __ATOMIC_RELEASE);
    return;
  }
  for (size_t i = 0; i < lib->n_symbols; i++) {
    dlerror();
    void *sym = dlsym(handle, lib->symbols[i].name);
    const char *why = dlerror();
    if (why || !sym) {
      lib->error = vs_xasprintf("%s has no %s (%s): this vmscope was built against a newer one; "
                                "install the %s package it was built with",
                                lib->soname, lib->symbols[i].name, why ? why : "a null symbol",
                                lib->package);
      __atomic_store_n(&lib->state, -1, __ATOMIC_RELEASE);
      return; /* the handle stays open: a half-resolved table is never used */
    }
    *lib->symbols[i].slot = sym;
  }
  __atomic_store_n(&lib->state, 1, __ATOMIC_RELEASE); /* the pointers before the state */
}

int vs_dl_load(struct vs_dl_library *lib, struct vs_err *err) {
  int state = __atomic_load_n(&lib->state, __ATOMIC_ACQUIRE);
  if (state == 0) {
    pthread_mutex_lock(&dl_lock);
    if (lib->state == 0) open_library(lib);
    state = lib->state;
    pthread_mutex_unlock(&dl_lock);
  }
  if (state > 0) return 0;
  return vs_err_set(err, ENOENT, "%s", lib->error);
}
