/* fuzz_yal.c: see fuzz_yal.h. */
#include "fuzz_yal.h"

#include "image.h"

#include <stdint.h>

void fuzz_yal_read(const char *path, const char *format) {
  struct vs_err err = {0};
  struct vs_image_opts o = {.format = format};
  struct vs_image *img = vs_image_open(path, &o, &err);
  vs_err_clear(&err);
  if (!img) return;
  static uint8_t buf[65536];
  uint64_t vsize = vs_image_size(img);
  for (uint64_t off = 0; off < vsize && off < (1u << 20); off += sizeof(buf)) {
    size_t len = vsize - off < sizeof(buf) ? (size_t)(vsize - off) : sizeof(buf);
    if (vs_image_pread(img, buf, len, off, &err) < 0) vs_err_clear(&err);
  }
  if (vsize > 4096 && vs_image_pread(img, buf, 1024, 4096 - 512, &err) < 0) vs_err_clear(&err);
  if (vsize >= sizeof(buf) && vs_image_pread(img, buf, sizeof(buf), vsize - sizeof(buf), &err) < 0)
    vs_err_clear(&err);
  (void)vs_image_format(img);
  vs_image_close(img);
}
