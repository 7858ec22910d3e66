/* fuzz_fs.c: the walk the file system fuzz targets share (fuzz_fs.h). */
#include "fuzz_fs.h"

#include <stdio.h>
#include <stdlib.h>

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

void fuzz_walk_fs(struct vs_fs *fs) {
  size_t left = 256;
  walk(fs, "", 0, &left);
}
