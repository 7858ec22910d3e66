/* fuzz_lvm: an LVM2 physical volume, as the direct backend's glue meets it
 * (src/core/inspect/lvm.c): its label, and the volume group's metadata libvslvm parses on our
 * libbfio callbacks, then the logical volumes' extents checked and their starts probed. The
 * input is the start of the physical volume (label and metadata area); the rest of a 64 MiB
 * volume reads as zeros (a sparse file). */
#include "fuzz.h"
#include "lvm.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VOLUME_SIZE (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct vs_err err = {0};
  if (size > (4u << 20)) return 0;
  const char *path = fuzz_file("pv.img", data, size);
  if (truncate(path, VOLUME_SIZE) < 0) return 0;
  struct vs_image_opts o = {.format = "raw"};
  struct vs_image *img = vs_image_open(path, &o, &err);
  if (!img) {
    vs_err_clear(&err);
    return 0;
  }
  struct vs_volume pv = {.number = 1, .offset = 0, .size = vs_image_size(img)};
  strcpy(pv.fstype, "LVM2_member");
  struct vs_volume *lvs = NULL;
  int n = 0;
  if (vs_lvm_volumes(img, &pv, &lvs, &n, &err) < 0) vs_err_clear(&err);
  free(lvs);
  vs_image_close(img);
  return 0;
}
