/* crypto.h: SHA-256 and MD5 digests and base64, from Nettle opened on first use (dl.h).
 *
 * A drift or report over saved documents or a fleet store, vmscope send and the drift and
 * action plugins' rounds digest nothing; extraction (file digests) and patch sets (image
 * identities) open the library on their first digest. It was libcrypto until 2026-12-05:
 * opening it and its first digest (OpenSSL's provider set-up) took 1.6-1.9 ms of CPU, Nettle's
 * 0.26-0.30 ms, the same 200 KiB digested (SHA-NI in both), and a 1 GiB patch set's make took
 * 16-17 ms in all. This module is the only one that names Nettle.
 *
 * Every function fails when Nettle cannot be opened; ERR, where there is one, then says why
 * (which package installs the library). */
#ifndef VS_CRYPTO_H
#define VS_CRYPTO_H

#include "util.h"

#include <stddef.h>

/* Opens Nettle now, for a module that wants to fail at its start rather than later. */
int vs_crypto_load(struct vs_err *err);

#define VS_SHA256_LEN 32
#define VS_MD5_LEN 16

/* The digest of LEN bytes at DATA into OUT: 0, or -1 and ERR. */
int vs_sha256(const void *data, size_t len, unsigned char out[VS_SHA256_LEN], struct vs_err *err);
int vs_md5(const void *data, size_t len, unsigned char out[VS_MD5_LEN], struct vs_err *err);

/* A SHA-256 digest over several pieces: begin, add each, end, which frees the state (OUT
 * NULL: only frees it). */
struct vs_sha256_ctx;
struct vs_sha256_ctx *vs_sha256_begin(struct vs_err *err);
void vs_sha256_add(struct vs_sha256_ctx *c, const void *data, size_t len);
int vs_sha256_end(struct vs_sha256_ctx *c, unsigned char out[VS_SHA256_LEN], struct vs_err *err);

/* LEN bytes at DATA as base64 (with padding), NUL-terminated; NULL with ERR when Nettle
 * cannot be opened, or LEN is over 1 GiB. */
char *vs_base64_encode(const void *data, size_t len, struct vs_err *err);
/* TEXT decoded (NUL-terminated; its length in *LEN when LEN is not NULL); NULL when TEXT is
 * not canonical base64 (RFC 4648: whole groups of four, padded, no white space, the bits after
 * the last byte zero) or Nettle cannot be opened. */
char *vs_base64_decode(const char *text, size_t *len);

#endif
