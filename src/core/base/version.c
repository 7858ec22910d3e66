#include "version.h"

#include "dl.h"
#include "util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <rpm/rpmver.h>

/* librpmio is opened with the first RPM version compared: with lua, popt, libgcrypt and four
 * compression libraries behind it, linking it cost every process 5 ms to start. */
/* clang-format off */
#define RPMIO_SYMBOLS(X) X(rpmverParse) X(rpmverCmp) X(rpmvercmp) X(rpmverFree)
/* clang-format on */
VS_DL_LIBRARY(rpmio_lib, VS_SONAME_RPMIO, "librpmio9", RPMIO_SYMBOLS);

/* ASCII only, as dpkg's c_isdigit/c_isalpha: the locale must not change an order. */
static bool is_digit(int c) {
  return c >= '0' && c <= '9';
}
static bool is_alpha(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* dpkg's order of one character in the non-digit part: '~' first, then the end of the part,
 * then letters, then everything else. */
static int deb_order(int c) {
  if (is_digit(c)) return 0;
  if (is_alpha(c)) return c;
  if (c == '~') return -1;
  if (c) return c + 256;
  return 0;
}

/* dpkg's verrevcmp over [A, A_END) and [B, B_END). */
static int deb_part_compare(const char *a, const char *a_end, const char *b, const char *b_end) {
  while (a < a_end || b < b_end) {
    int first_diff = 0;
    while ((a < a_end && !is_digit((unsigned char)*a)) ||
           (b < b_end && !is_digit((unsigned char)*b))) {
      int ac = a < a_end ? deb_order((unsigned char)*a) : 0;
      int bc = b < b_end ? deb_order((unsigned char)*b) : 0;
      if (ac != bc) return ac - bc;
      a++;
      b++;
    }
    while (a < a_end && *a == '0')
      a++;
    while (b < b_end && *b == '0')
      b++;
    while (a < a_end && is_digit((unsigned char)*a) && b < b_end && is_digit((unsigned char)*b)) {
      if (!first_diff) first_diff = *a - *b;
      a++;
      b++;
    }
    if (a < a_end && is_digit((unsigned char)*a)) return 1;
    if (b < b_end && is_digit((unsigned char)*b)) return -1;
    if (first_diff) return first_diff;
  }
  return 0;
}

struct deb_version {
  unsigned long epoch;
  const char *upstream, *upstream_end, *revision, *revision_end;
};

static void deb_parse(const char *s, const char *end, struct deb_version *v) {
  v->epoch = 0;
  const char *colon = memchr(s, ':', (size_t)(end - s));
  if (colon) {
    char *stop;
    v->epoch = strtoul(s, &stop, 10);
    if (stop != colon)
      v->epoch = 0; /* not a number: the whole string is the version */
    else
      s = colon + 1;
  }
  const char *dash = NULL;
  for (const char *p = s; p < end; p++)
    if (*p == '-') dash = p;
  v->upstream = s;
  v->upstream_end = dash ? dash : end;
  v->revision = dash ? dash + 1 : end;
  v->revision_end = end;
}

static int deb_compare(const char *a, const char *a_end, const char *b, const char *b_end) {
  struct deb_version va, vb;
  deb_parse(a, a_end, &va);
  deb_parse(b, b_end, &vb);
  if (va.epoch != vb.epoch) return va.epoch < vb.epoch ? -1 : 1;
  int r = deb_part_compare(va.upstream, va.upstream_end, vb.upstream, vb.upstream_end);
  if (r) return r;
  return deb_part_compare(va.revision, va.revision_end, vb.revision, vb.revision_end);
}

/* The last space-separated version of S: the highest, as extraction lists them sorted. */
static const char *last_version(const char *s) {
  const char *space = strrchr(s, ' ');
  return space ? space + 1 : s;
}

int vs_version_compare(const char *format, const char *a, const char *b) {
  a = last_version(a);
  b = last_version(b);
  struct vs_err err = {0};
  if (format && strcmp(format, "rpm") == 0 && vs_dl_load(&rpmio_lib, &err) == 0) {
    rpmver va = sym_rpmverParse(a), vb = sym_rpmverParse(b);
    int r;
    if (va && vb)
      r = sym_rpmverCmp(va, vb);
    else
      r = sym_rpmvercmp(a, b); /* not E:V-R: compare as one version string */
    sym_rpmverFree(va);
    sym_rpmverFree(vb);
    return r;
  }
  if (err.code) {
    /* An install without librpmio (its package depends on it): said once; dpkg's order is
     * rpm's for the common versions (digits, dots, letters, '~'). */
    static atomic_bool said;
    if (!atomic_exchange(&said, true))
      vs_log(VS_LOG_ERR, "%s; RPM versions are ordered as dpkg orders them", vs_err_msg(&err));
    vs_err_clear(&err);
  }
  return deb_compare(a, a + strlen(a), b, b + strlen(b));
}
