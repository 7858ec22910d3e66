/* crypto.h: digests and base64 through Nettle, which is mapped only when first used. The
 * digests are checked against the published test vectors (FIPS 180-2, RFC 1321), base64
 * against RFC 4648's. */
#include "crypto.h"
#include "fixture.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *sha256_hex(const char *text) {
  static char hex[2 * VS_SHA256_LEN + 1];
  unsigned char d[VS_SHA256_LEN];
  struct vs_err err = {0};
  if (vs_sha256(text, strlen(text), d, &err) < 0) {
    snprintf(hex, sizeof(hex), "error: %s", vs_err_msg(&err));
    vs_err_clear(&err);
    return hex;
  }
  vs_hex(d, sizeof(d), hex);
  return hex;
}

int main(void) {
  plan_no_plan();
  ok(!fx_mapped("libnettle.so"), "Nettle is not mapped at start-up");
  is_str(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
         "SHA-256 of \"abc\" (FIPS 180-2)");
  ok(fx_mapped("libnettle.so"), "Nettle is mapped once a digest is asked for");
  is_str(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
         "SHA-256 of nothing");

  unsigned char md5[VS_MD5_LEN];
  char hex[2 * VS_MD5_LEN + 1];
  struct vs_err err = {0};
  is_num(vs_md5("abc", 3, md5, &err), 0, "MD5 of \"abc\"");
  vs_hex(md5, sizeof(md5), hex);
  is_str(hex, "900150983cd24fb0d6963f7d28e17f72", "is RFC 1321's");

  /* In pieces, the same as at once. */
  const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  struct vs_sha256_ctx *c = vs_sha256_begin(&err);
  ok(c != NULL, "a digest in pieces begins");
  for (size_t i = 0; i < strlen(msg); i += 5)
    vs_sha256_add(c, msg + i, strlen(msg) - i < 5 ? strlen(msg) - i : 5);
  unsigned char d[VS_SHA256_LEN];
  char dhex[2 * VS_SHA256_LEN + 1];
  is_num(vs_sha256_end(c, d, &err), 0, "and ends");
  vs_hex(d, sizeof(d), dhex);
  is_str(dhex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
         "with FIPS 180-2's digest of the 448-bit message, added 5 bytes at a time");
  c = vs_sha256_begin(&err);
  is_num(vs_sha256_end(c, NULL, &err), 0, "a digest ended without a result only frees its state");

  /* RFC 4648, section 10, and bytes that are not text. */
  static const char *const vectors[][2] = {{"", ""},
                                           {"f", "Zg=="},
                                           {"fo", "Zm8="},
                                           {"foo", "Zm9v"},
                                           {"foob", "Zm9vYg=="},
                                           {"fooba", "Zm9vYmE="},
                                           {"foobar", "Zm9vYmFy"}};
  for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
    char *e = vs_base64_encode(vectors[i][0], strlen(vectors[i][0]), &err);
    is_str(e ? e : "(null)", vectors[i][1], "base64 of \"%s\"", vectors[i][0]);
    size_t len = 99;
    char *back = vs_base64_decode(vectors[i][1], &len);
    ok(back && len == strlen(vectors[i][0]) && memcmp(back, vectors[i][0], len) == 0,
       "and decoded back (%zu bytes)", len);
    free(e);
    free(back);
  }
  static const char binary[] = {'\0', '\xff', '\0', 'x'};
  char *e = vs_base64_encode(binary, sizeof(binary), &err);
  size_t len = 0;
  char *back = e ? vs_base64_decode(e, &len) : NULL;
  ok(back && len == sizeof(binary) && memcmp(back, binary, len) == 0 && back[len] == '\0',
     "bytes with NULs survive the round trip, NUL-terminated (%s)", e ? e : "(null)");
  free(e);
  free(back);
  ok(vs_base64_decode("Zm9v!!==", &len) == NULL, "text that is not base64 is refused");
  ok(vs_base64_decode("Zm9", &len) == NULL, "as is a length that is not a multiple of four");
  ok(vs_base64_decode("Zm9v    ", &len) == NULL && vs_base64_decode("Zm 9v", &len) == NULL &&
         vs_base64_decode("Zm9vYg==\n", &len) == NULL,
     "and white space, inside the text or after it");
  ok(vs_base64_decode("Zm9=", &len) == NULL, "and bits after the last byte that are not zero");
  vs_err_clear(&err);
  return done_testing();
}
