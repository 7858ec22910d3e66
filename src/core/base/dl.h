/* dl.h: a shared library opened on first use instead of at start-up.
 *
 * libvirt, libguestfs, libpq, libcurl and libnbd bring some 50 shared objects between them,
 * and mapping and relocating those was two thirds of a one-shot command's start-up (74 ms of
 * CPU for `vmscope --version`, 22 ms without), though `vmscope inspect IMAGE` needs none of them
 * and each plugin needs one or two. So are librpm, Augeas and libxml2, which only an RPM
 * guest's packages, a config file's settings or a domain's XML need, and Nettle (crypto.h).
 * So are hivex and libyal's readers (libfsntfs, libfsxfs, libvslvm, libvhdi, libvmdk and the
 * libbfio they read through), which only Windows guests, NTFS, XFS and LVM volumes and VHD/VMDK
 * images need: bound at start-up (BIND_NOW), they cost 1.3 ms of every process's start
 * (`vmscope --version`: 2.5 ms with them, 1.2 ms without). So are libblkid, libext2fs with its
 * com_err, zlib and zstd, which a patch set's compare needs none of: from a cold page cache they
 * cost a command's start 4-6 ms.
 * The module that wraps such a library (virt.c, source_guestfs.c, store.c, webhook.c and
 * fleet.c, image.c, extract_pkg.c, extract_files.c, version.c, crypto.c, extract_win.c, fs_ext.c,
 * fs_ntfs.c, fs_xfs.c, lvm.c, image_yal.c, bfio.c) lists the functions it calls, calls them through
 * pointers, and calls vs_dl_load before the first of them; nothing else in vmscope names the
 * library.
 *
 *   #define CURL_SYMBOLS(X) X(curl_easy_init) X(curl_easy_perform)
 *   VS_DL_LIBRARY(curl_lib, VS_SONAME_CURL, "libcurl4", CURL_SYMBOLS)
 *   ...
 *   if (vs_dl_load(&curl_lib, err) < 0) return -1;
 *   CURL *h = sym_curl_easy_init();
 *
 * The library is opened once per process, whichever thread comes first, with every listed
 * symbol resolved; when that fails, every call of vs_dl_load says why (the library's file and
 * the Debian package that installs it, or the symbol this build needs and it lacks). It is
 * never closed: its code may be running in threads it started. */
#ifndef VS_DL_H
#define VS_DL_H

#include "vs_config.h"

#include "util.h"

#include <stddef.h>

struct vs_dl_symbol {
  const char *name;
  void **slot;
};

struct vs_dl_library {
  const char *soname;  /* the file dlopen looks for: "libcurl.so.4" (configure finds it) */
  const char *package; /* the Debian package that installs it, for the error */
  const struct vs_dl_symbol *symbols;
  size_t n_symbols;
  int state;   /* 0: not tried; 1: loaded; -1: failed (error says why). Under dl.c's lock */
  char *error; /* kept for the process's life, as the library would have been */
};

/* Opens LIB and resolves its symbols, once; 0 when they can be called, else -1 and ERR. */
int vs_dl_load(struct vs_dl_library *lib, struct vs_err *err);

/* For the symbol list X: a pointer sym_NAME of NAME's own type for each, and LIB, the library
 * SONAME (installed by PACKAGE) that vs_dl_load fills them from. Static: one module's. */
#define VS_DL_POINTER_(name) static __typeof__(name) *sym_##name;
#define VS_DL_ENTRY_(name) {#name, (void **)&sym_##name},
#define VS_DL_LIBRARY(lib, soname, package, list)                                                  \
  list(VS_DL_POINTER_) static const struct vs_dl_symbol lib##_symbols[] = {list(VS_DL_ENTRY_)};    \
  static struct vs_dl_library lib = {                                                              \
      soname, package, lib##_symbols, sizeof(lib##_symbols) / sizeof(lib##_symbols[0]), 0, NULL}

#endif
