/* crypto.c: digests and base64 through libcrypto, opened on first use (crypto.h). */
#include "crypto.h"

#include "dl.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
#define CRYPTO_SYMBOLS(X) X(EVP_Digest) X(EVP_sha256) X(EVP_md5) X(EVP_MD_CTX_new)               \
  X(EVP_MD_CTX_free) X(EVP_DigestInit_ex) X(EVP_DigestUpdate) X(EVP_DigestFinal_ex)              \
  X(EVP_EncodeBlock) X(EVP_DecodeBlock)
/* clang-format on */
/* Debian 12's package of libcrypto.so.3 (13's is libssl3t64). */
VS_DL_LIBRARY(crypto_lib, VS_SONAME_CRYPTO, "libssl3", CRYPTO_SYMBOLS);

int vs_crypto_load(struct vs_err *err) {
  return vs_dl_load(&crypto_lib, err);
}

/* EVP's lengths are ints. */
#define MAX_BLOCK ((size_t)1 << 30)

static int digest(const EVP_MD *(*md)(void), const char *name, const void *data, size_t len,
                  unsigned char *out, unsigned int want, struct vs_err *err) {
  unsigned int got = 0;
  if (sym_EVP_Digest(data, len, out, &got, md(), NULL) != 1 || got != want)
    return vs_err_set(err, EIO, "libcrypto: the %s digest of %zu bytes failed", name, len);
  return 0;
}

int vs_sha256(const void *data, size_t len, unsigned char out[VS_SHA256_LEN], struct vs_err *err) {
  if (vs_dl_load(&crypto_lib, err) < 0) return -1;
  return digest(sym_EVP_sha256, "SHA-256", data, len, out, VS_SHA256_LEN, err);
}

int vs_md5(const void *data, size_t len, unsigned char out[VS_MD5_LEN], struct vs_err *err) {
  if (vs_dl_load(&crypto_lib, err) < 0) return -1;
  return digest(sym_EVP_md5, "MD5", data, len, out, VS_MD5_LEN, err);
}

struct vs_sha256_ctx {
  EVP_MD_CTX *md;
  bool failed;
};

struct vs_sha256_ctx *vs_sha256_begin(struct vs_err *err) {
  if (vs_dl_load(&crypto_lib, err) < 0) return NULL;
  EVP_MD_CTX *md = sym_EVP_MD_CTX_new();
  if (!md || sym_EVP_DigestInit_ex(md, sym_EVP_sha256(), NULL) != 1) {
    sym_EVP_MD_CTX_free(md);
    vs_err_set(err, ENOMEM, "libcrypto: cannot start a SHA-256 digest");
    return NULL;
  }
  struct vs_sha256_ctx *c = vs_xmalloc(sizeof(*c));
  *c = (struct vs_sha256_ctx){md, false};
  return c;
}

void vs_sha256_add(struct vs_sha256_ctx *c, const void *data, size_t len) {
  if (!c->failed && sym_EVP_DigestUpdate(c->md, data, len) != 1) c->failed = true;
}

int vs_sha256_end(struct vs_sha256_ctx *c, unsigned char out[VS_SHA256_LEN], struct vs_err *err) {
  if (!c) return vs_err_set(err, EINVAL, "libcrypto: no SHA-256 digest was begun");
  int rc = 0;
  if (out) {
    unsigned int got = 0;
    if (c->failed || sym_EVP_DigestFinal_ex(c->md, out, &got) != 1 || got != VS_SHA256_LEN)
      rc = vs_err_set(err, EIO, "libcrypto: a SHA-256 digest failed");
  }
  sym_EVP_MD_CTX_free(c->md);
  free(c);
  return rc;
}

char *vs_base64_encode(const void *data, size_t len, struct vs_err *err) {
  if (len > MAX_BLOCK) {
    vs_err_set(err, EFBIG, "%zu bytes are too many to encode at once (at most %zu)", len,
               MAX_BLOCK);
    return NULL;
  }
  if (vs_dl_load(&crypto_lib, err) < 0) return NULL;
  char *out = vs_xmalloc(4 * ((len + 2) / 3) + 1);
  sym_EVP_EncodeBlock((unsigned char *)out, data, (int)len);
  return out;
}

char *vs_base64_decode(const char *text, size_t *len) {
  size_t in = strlen(text);
  if (in > MAX_BLOCK || vs_dl_load(&crypto_lib, NULL) < 0) return NULL;
  unsigned char *out = vs_xmalloc(in / 4 * 3 + 4);
  int n = in ? sym_EVP_DecodeBlock(out, (const unsigned char *)text, (int)in) : 0;
  if (n < 0) {
    free(out);
    return NULL;
  }
  while (in > 0 && text[in - 1] == '=' && n > 0) { /* EVP_DecodeBlock counts padding as data */
    in--;
    n--;
  }
  out[n] = '\0';
  if (len) *len = (size_t)n;
  return (char *)out;
}
