/* fuzz_vmdk: a VMDK image, as the image reader meets it (src/core/inspect/image_yal.c):
 * libvmdk on our libbfio callbacks, a sparse extent or a descriptor whose extents must resolve
 * inside the target's own directory (which holds the input as disk.vmdk and nothing else),
 * then reads across the first grains and the end of the disk. */
#include "fuzz.h"
#include "fuzz_yal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (8u << 20)) return 0;
  fuzz_yal_read(fuzz_file("disk.vmdk", data, size), "vmdk");
  return 0;
}
