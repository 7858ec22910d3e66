/* crypto.c: digests and base64 through Nettle, opened on first use (crypto.h). */
#include "crypto.h"

#include "dl.h"

#include <errno.h>
#include <nettle/base64.h>
#include <nettle/md5.h>
#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
#define NETTLE_SYMBOLS(X) X(nettle_sha256_init) X(nettle_sha256_update) X(nettle_sha256_digest)  \
  X(nettle_md5_init) X(nettle_md5_update) X(nettle_md5_digest) X(nettle_base64_encode_raw)       \
  X(nettle_base64_decode_init) X(nettle_base64_decode_update) X(nettle_base64_decode_final)
/* clang-format on */
/* Debian 12's package of libnettle.so.8 (13's is libnettle8t64). */
VS_DL_LIBRARY(nettle_lib, VS_SONAME_NETTLE, "libnettle8", NETTLE_SYMBOLS);

int vs_crypto_load(struct vs_err *err) {
  return vs_dl_load(&nettle_lib, err);
}

/* The most bytes base64 is asked to encode or decode at once. */
#define MAX_BLOCK ((size_t)1 << 30)

int vs_sha256(const void *data, size_t len, unsigned char out[VS_SHA256_LEN], struct vs_err *err) {
  if (vs_dl_load(&nettle_lib, err) < 0) return -1;
  struct sha256_ctx c;
  sym_nettle_sha256_init(&c);
  sym_nettle_sha256_update(&c, len, data);
  sym_nettle_sha256_digest(&c, VS_SHA256_LEN, out);
  return 0;
}

int vs_md5(const void *data, size_t len, unsigned char out[VS_MD5_LEN], struct vs_err *err) {
  if (vs_dl_load(&nettle_lib, err) < 0) return -1;
  struct md5_ctx c;
  sym_nettle_md5_init(&c);
  sym_nettle_md5_update(&c, len, data);
  sym_nettle_md5_digest(&c, VS_MD5_LEN, out);
  return 0;
}

struct vs_sha256_ctx {
  struct sha256_ctx md;
};

struct vs_sha256_ctx *vs_sha256_begin(struct vs_err *err) {
  if (vs_dl_load(&nettle_lib, err) < 0) return NULL;
  struct vs_sha256_ctx *c = vs_xmalloc(sizeof(*c));
  sym_nettle_sha256_init(&c->md);
  return c;
}

void vs_sha256_add(struct vs_sha256_ctx *c, const void *data, size_t len) {
  sym_nettle_sha256_update(&c->md, len, data);
}

int vs_sha256_end(struct vs_sha256_ctx *c, unsigned char out[VS_SHA256_LEN], struct vs_err *err) {
  if (!c) return vs_err_set(err, EINVAL, "no SHA-256 digest was begun");
  if (out) sym_nettle_sha256_digest(&c->md, VS_SHA256_LEN, out);
  free(c);
  return 0;
}

char *vs_base64_encode(const void *data, size_t len, struct vs_err *err) {
  if (len > MAX_BLOCK) {
    vs_err_set(err, EFBIG, "%zu bytes are too many to encode at once (at most %zu)", len,
               MAX_BLOCK);
    return NULL;
  }
  if (vs_dl_load(&nettle_lib, err) < 0) return NULL;
  size_t n = BASE64_ENCODE_RAW_LENGTH(len);
  char *out = vs_xmalloc(n + 1);
  sym_nettle_base64_encode_raw(out, len, data);
  out[n] = '\0';
  return out;
}

char *vs_base64_decode(const char *text, size_t *len) {
  size_t in = strlen(text), n = 0;
  /* Nettle would skip white space anywhere in the text: refused here, as libcrypto's decoder
   * refused it inside the text, with anything else outside the alphabet. */
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
  if (in > MAX_BLOCK || in % 4 != 0 || text[strspn(text, alphabet)] != '\0' ||
      vs_dl_load(&nettle_lib, NULL) < 0)
    return NULL;
  uint8_t *out = vs_xmalloc(BASE64_DECODE_LENGTH(in) + 1);
  struct base64_decode_ctx c;
  sym_nettle_base64_decode_init(&c);
  if (!sym_nettle_base64_decode_update(&c, &n, out, in, text) ||
      !sym_nettle_base64_decode_final(&c)) {
    free(out);
    return NULL;
  }
  out[n] = '\0';
  if (len) *len = n;
  return (char *)out;
}
