/* fuzz_fs.h: what the file system fuzz targets (fuzz_ntfs, fuzz_xfs) share. */
#ifndef VS_FUZZ_FS_H
#define VS_FUZZ_FS_H

#include "fs.h"

/* Walks FS from its root as the direct backend would: a few levels and at most 256 entries,
 * listing, stating, reading files (up to 1 MiB) and reading links. */
void fuzz_walk_fs(struct vs_fs *fs);

#endif
