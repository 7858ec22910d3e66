/* fuzz_ntfs: an NTFS volume, as the direct backend's glue meets it (src/core/inspect/fs_ntfs.c):
 * libfsntfs on our libbfio callbacks over a raw image, then a walk of the tree (a few levels,
 * a bounded number of entries) that lists, stats, reads files and reads links. */
#include "fs.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void walk(struct vs_fs *fs, const char *rel, int depth, size_t *left) {
  struct vs_err err = {0};
  char **names = NULL;
  size_t n = 0;
  bool truncated = false;
  if (fs->ops->list(fs->impl, rel, rel, 64, &names, &n, &truncated, &err) < 0) {
    vs_err_clear(&err);
    return;
  }
  for (size_t i = 0; i < n && *left; i++, (*left)--) {
    char path[VS_SOURCE_MAX_PATH];
    if (snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", names[i]) >= (int)sizeof(path))
      continue;
    struct vs_stat st;
    if (fs->ops->lstat(fs->impl, path, path, &st, &err) < 0) {
      vs_err_clear(&err);
      continue;
    }
    if (st.type == VS_FT_DIR && depth < 4) {
      walk(fs, path, depth + 1, left);
    } else if (st.type == VS_FT_LNK) {
      char *target = NULL;
      if (fs->ops->readlink(fs->impl, path, path, &target, &err) < 0) vs_err_clear(&err);
      free(target);
    } else {
      struct vs_buf b = {0};
      if (fs->ops->read(fs->impl, path, path, 1u << 20, &b, &err) < 0) vs_err_clear(&err);
      vs_buf_free(&b);
    }
  }
  vs_strv_free(names, n);
}

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
    size_t left = 256;
    walk(&fs, "", 0, &left);
    vs_fs_close(&fs);
  }
  vs_err_clear(&err);
  vs_image_close(img);
  return 0;
}
