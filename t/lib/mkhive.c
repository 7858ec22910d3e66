/* mkhive: registry hives for the tests, made at test time (hivex cannot create one from
 * nothing, and nothing binary is committed).
 *
 *   mkhive empty OUT      a valid empty hive: a 4096-byte base block with its checksum, one
 *                         4096-byte hbin holding the root key (nk, named ROOT) and its security
 *                         cell (sk); hivexregedit --merge fills it
 *   mkhive cycle IN OUT   IN with the last entry of every subkey list (lf, lh, li) pointed back
 *                         at the root key: every key with subkeys then has the root as a child,
 *                         a cyclic key list
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE 0x1000

static void put16(unsigned char *p, uint16_t v) {
  p[0] = v & 0xff;
  p[1] = v >> 8;
}

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int write_file(const char *path, const unsigned char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    return 1;
  }
  return 0;
}

static int make_empty(const char *out) {
  static unsigned char h[2 * BASE];
  unsigned char *b = h, *bin = h + BASE;
  const uint32_t root = 0x20, sk = 0x78, free_at = 0xa8;
  memcpy(b, "regf", 4);
  put32(b + 0x04, 1); /* sequence numbers, equal: the hive was written completely */
  put32(b + 0x08, 1);
  put32(b + 0x14, 1); /* version 1.3 */
  put32(b + 0x18, 3);
  put32(b + 0x1c, 0); /* a primary file */
  put32(b + 0x20, 1); /* direct memory load */
  put32(b + 0x24, root);
  put32(b + 0x28, BASE); /* bytes of hbins */
  put32(b + 0x2c, 1);
  uint32_t sum = 0;
  for (int i = 0; i < 0x1fc; i += 4)
    sum ^= get32(b + i);
  put32(b + 0x1fc, sum);

  memcpy(bin, "hbin", 4);
  put32(bin + 0x04, 0);    /* this hbin's offset from the first */
  put32(bin + 0x08, BASE); /* its size */

  unsigned char *nk = bin + root;
  put32(nk, (uint32_t)-0x58);
  memcpy(nk + 0x04, "nk", 2);
  put16(nk + 0x06, 0x2c);       /* hive entry, no delete, compressed (ASCII) name */
  put32(nk + 0x20, 0xffffffff); /* no subkeys */
  put32(nk + 0x24, 0xffffffff);
  put32(nk + 0x2c, 0xffffffff); /* no values */
  put32(nk + 0x30, sk);
  put32(nk + 0x34, 0xffffffff); /* no class name */
  put16(nk + 0x4c, 4);
  memcpy(nk + 0x50, "ROOT", 4);

  unsigned char *s = bin + sk;
  put32(s, (uint32_t)-0x30);
  memcpy(s + 0x04, "sk", 2);
  put32(s + 0x08, sk); /* the only sk: its own neighbour both ways */
  put32(s + 0x0c, sk);
  put32(s + 0x10, 1);  /* one key refers to it */
  put32(s + 0x14, 20); /* an empty self-relative security descriptor */
  s[0x18] = 1;
  put16(s + 0x1a, 0x8000);

  put32(bin + free_at, BASE - free_at); /* the rest of the hbin is one free cell */
  return write_file(out, h, sizeof(h));
}

static int make_cycle(const char *in, const char *out) {
  FILE *f = fopen(in, "rb");
  if (!f) {
    perror(in);
    return 1;
  }
  static unsigned char h[64 << 20];
  size_t len = fread(h, 1, sizeof(h), f);
  fclose(f);
  if (len < 2 * BASE || memcmp(h, "regf", 4) != 0) {
    fprintf(stderr, "%s: not a hive\n", in);
    return 1;
  }
  uint32_t root = get32(h + 0x24);
  int patched = 0;
  for (size_t page = BASE; page + 0x20 <= len;) {
    uint32_t size = get32(h + page + 8);
    if (memcmp(h + page, "hbin", 4) != 0 || size < 0x20 || page + size > len) break;
    for (size_t cell = page + 0x20; cell + 8 <= page + size;) {
      int32_t sz = (int32_t)get32(h + cell);
      uint32_t n = sz < 0 ? (uint32_t)-sz : (uint32_t)sz;
      if (n < 8 || cell + n > page + size) break;
      const unsigned char *id = h + cell + 4;
      uint16_t count = (uint16_t)(h[cell + 6] | h[cell + 7] << 8);
      if (sz < 0 && count > 0 && (memcmp(id, "lf", 2) == 0 || memcmp(id, "lh", 2) == 0) &&
          8 + 8u * count <= n) {
        put32(h + cell + 8 + 8 * (count - 1), root);
        patched++;
      } else if (sz < 0 && count > 0 && memcmp(id, "li", 2) == 0 && 8 + 4u * count <= n) {
        put32(h + cell + 8 + 4 * (count - 1), root);
        patched++;
      }
      cell += n;
    }
    page += size;
  }
  if (!patched) {
    fprintf(stderr, "%s: no subkey list to patch\n", in);
    return 1;
  }
  return write_file(out, h, len);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "empty") == 0) return make_empty(argv[2]);
  if (argc == 4 && strcmp(argv[1], "cycle") == 0) return make_cycle(argv[2], argv[3]);
  fprintf(stderr, "usage: mkhive empty OUT | mkhive cycle IN OUT\n");
  return 2;
}
