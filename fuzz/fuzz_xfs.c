/* fuzz_xfs: an XFS volume, as the direct backend's glue meets it (src/core/inspect/fs_xfs.c):
 * libfsxfs on our libbfio callbacks over a raw image, then a walk of the tree (fuzz_fs.c). The
 * input is the start of the volume: mkfs.xfs makes nothing under 300 MiB, and what a walk reads
 * (the superblock, allocation group 0's headers, the root's inodes and directories) lies in its
 * first MiBs, so the rest of a 320 MiB volume reads as zeros (a sparse file), but for the
 * other allocation groups' superblocks, which libfsxfs reads too: copies of the first. */
#include "fuzz.h"
#include "fuzz_fs.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define VOLUME_SIZE (320u << 20)

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Copies the superblock (the input's first sector) to the start of allocation groups 1-15. */
static void copy_superblocks(const char *path, const uint8_t *data, size_t size) {
  if (size < 512) return;
  uint64_t ag_bytes = (uint64_t)be32(data + 4) * be32(data + 84); /* blocksize, agblocks */
  uint32_t agcount = be32(data + 88);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  for (uint32_t i = 1; ag_bytes && i < agcount && i < 16; i++)
    if (i * ag_bytes >= size && i * ag_bytes + 512 <= VOLUME_SIZE &&
        pwrite(fd, data, 512, (off_t)(i * ag_bytes)) != 512)
      break;
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct vs_err err = {0};
  if (size > (8u << 20)) return 0;
  const char *path = fuzz_file("xfs.img", data, size);
  if (truncate(path, VOLUME_SIZE) < 0) return 0;
  copy_superblocks(path, data, size);
  struct vs_image_opts o = {.format = "raw"};
  struct vs_image *img = vs_image_open(path, &o, &err);
  if (!img) {
    vs_err_clear(&err);
    return 0;
  }
  struct vs_volume v = {.offset = 0, .size = vs_image_size(img)};
  strcpy(v.fstype, "xfs");
  struct vs_fs fs;
  if (vs_fs_xfs_open(img, &v, &fs, &err) == 0) {
    fuzz_walk_fs(&fs);
    vs_fs_close(&fs);
  }
  vs_err_clear(&err);
  vs_image_close(img);
  return 0;
}
