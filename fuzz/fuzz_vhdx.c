/* fuzz_vhdx: a VHD or VHDX image, as the image reader meets it (src/core/inspect/image_yal.c):
 * libvhdi on our libbfio callbacks, opened as the format libvirt would name ("vhdx" when the
 * input starts with its signature, "vpc" otherwise), then reads across the first blocks, a
 * sector boundary and the end of the disk. */
#include "fuzz.h"
#include "fuzz_yal.h"

#include <stdbool.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (16u << 20)) return 0; /* qemu-img's smallest VHDX with data is 9 MiB */
  bool is_vhdx = size >= 8 && memcmp(data, "vhdxfile", 8) == 0;
  fuzz_yal_read(fuzz_file("disk.img", data, size), is_vhdx ? "vhdx" : "vpc");
  return 0;
}
