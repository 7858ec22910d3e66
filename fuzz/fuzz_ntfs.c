/* fuzz_ntfs: an NTFS volume, as the direct backend's glue meets it (src/core/inspect/fs_ntfs.c):
 * libfsntfs on our libbfio callbacks over a raw image, then a walk of the tree (a few levels,
 * a bounded number of entries) that lists, stats, reads files and reads links. */
#include "fuzz.h"
#include "fuzz_fs.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct vs_err err = {0};
  if (size > (8u << 20)) return 0;
  const char *path = fuzz_file("ntfs.img", data, size);
  struct vs_image_opts o = {.format = "raw"};
  struct vs_image *img = vs_image_open(path, &o, &err);
  if (!img) {
    vs_err_clear(&err);
    return 0;
  }
  struct vs_volume v = {.offset = 0, .size = vs_image_size(img)};
  strcpy(v.fstype, "ntfs");
  struct vs_fs fs;
  if (vs_fs_ntfs_open(img, &v, &fs, &err) == 0) {
    fuzz_walk_fs(&fs);
    vs_fs_close(&fs);
  }
  vs_err_clear(&err);
  vs_image_close(img);
  return 0;
}
