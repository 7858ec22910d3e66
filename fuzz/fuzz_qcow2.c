/* fuzz_qcow2: the image reader on a hostile file: header, L1/L2 tables, refcount-free reads,
 * zero and compressed clusters, extended L2, backing names (only the target's own directory
 * is allowed, and it holds nothing but the input). */
#include "fuzz.h"
#include "image.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (4u << 20)) return 0;
  const char *path = fuzz_file("top.qcow2", data, size);
  struct vs_err err = {0};
  struct vs_image *img = vs_image_open(path, NULL, &err); /* probed, as an unknown file is */
  vs_err_clear(&err);
  if (!img) return 0;
  uint64_t vsize = vs_image_size(img), cluster = vs_image_cluster_size(img);
  if (!cluster) cluster = 65536;
  static uint8_t buf[8192];
  /* The first clusters, a read across a cluster boundary, and the end of the disk. */
  for (uint64_t i = 0; i < 16 && i * cluster < vsize; i++) {
    uint64_t off = i * cluster;
    enum vs_cluster_state state;
    if (vs_image_cluster_state(img, off, &state, &err) < 0) vs_err_clear(&err);
    (void)vs_image_cluster_is_hole(img, off, &err);
    vs_err_clear(&err);
    size_t len = off + sizeof(buf) <= vsize ? sizeof(buf) : (size_t)(vsize - off);
    if (vs_image_pread(img, buf, len, off, &err) < 0) vs_err_clear(&err);
  }
  if (vsize > cluster && vs_image_pread(img, buf, 1024, cluster - 512, &err) < 0)
    vs_err_clear(&err);
  if (vsize >= sizeof(buf) && vs_image_pread(img, buf, sizeof(buf), vsize - sizeof(buf), &err) < 0)
    vs_err_clear(&err);
  for (const struct vs_image *b = vs_image_backing(img); b; b = vs_image_backing(b))
    (void)vs_image_format(b);
  vs_image_close(img);
  return 0;
}
