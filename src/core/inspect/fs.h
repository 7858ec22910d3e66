/* fs.h: a file system the direct reader mounted from a volume of an image (source_image.c):
 * ext2/3/4 through libext2fs (fs_ext.c), NTFS through libfsntfs (fs_ntfs.c), XFS through
 * libfsxfs (fs_xfs.c), each reading through our image reader and nothing else. A volume may be
 * a partition or an LVM2 logical volume (lvm.h) lying in one piece on the disk.
 *
 * The operations take REL, the path below the file system's root without a leading '/' (""
 * for the root itself), already resolved by source.c (no symlink but perhaps in the last
 * component), and SHOWN, the guest's path, which messages name. They behave as struct
 * vs_source_ops says: reads bounded by MAX and refused for anything but a regular file,
 * listings bounded by MAX and without "." and "..". */
#ifndef VS_FS_H
#define VS_FS_H

#include "image.h"
#include "source.h"

#include <stdio.h>

struct vs_fs_ops {
  int (*lstat)(void *fs, const char *rel, const char *shown, struct vs_stat *st,
               struct vs_err *err);
  int (*readlink)(void *fs, const char *rel, const char *shown, char **target, struct vs_err *err);
  int (*read)(void *fs, const char *rel, const char *shown, size_t max, struct vs_buf *out,
              struct vs_err *err);
  int (*list)(void *fs, const char *rel, const char *shown, size_t max, char ***names,
              size_t *count, bool *truncated, struct vs_err *err);
  void (*close)(void *fs);
};

/* One mounted file system. NOTE, when not NULL, is what a user should know about it once it
 * is the root (a journal that needs recovery). */
struct vs_fs {
  const struct vs_fs_ops *ops;
  void *impl;
  const char *note;
};

/* blkid TYPEs fs_ext.c reads. */
bool vs_fs_ext_handles(const char *fstype);
/* Opens the ext2/3/4 file system on volume V of IMG (which must outlive it) into *FS. */
int vs_fs_ext_open(struct vs_image *img, const struct vs_volume *v, struct vs_fs *fs,
                   struct vs_err *err);

bool vs_fs_ntfs_handles(const char *fstype);
/* Opens the NTFS volume V of IMG into *FS through libfsntfs on a libbfio handle whose reads go
 * to IMG (libfsntfs opens no file itself). Names are looked up case-insensitively, as Windows
 * does; the metadata files ($MFT, $Bitmap, ...) are not listed. */
int vs_fs_ntfs_open(struct vs_image *img, const struct vs_volume *v, struct vs_fs *fs,
                    struct vs_err *err);

bool vs_fs_xfs_handles(const char *fstype);
/* Opens the XFS volume V of IMG into *FS through libfsxfs on a libbfio handle whose reads go
 * to IMG (libfsxfs opens no file itself). */
int vs_fs_xfs_open(struct vs_image *img, const struct vs_volume *v, struct vs_fs *fs,
                   struct vs_err *err);

/* How messages name V: "partition 2", "logical volume rl/root" or "the whole disk". */
static inline const char *vs_volume_name(const struct vs_volume *v, char *buf, size_t size) {
  if (v->lv[0])
    snprintf(buf, size, "logical volume %s", v->lv);
  else if (v->number)
    snprintf(buf, size, "partition %d", v->number);
  else
    snprintf(buf, size, "the whole disk");
  return buf;
}

/* The type a POSIX st_mode (S_IFMT bits) gives. */
static inline enum vs_ftype vs_fs_mode_type(uint32_t mode) {
  switch (mode & 0170000) {
  case 0100000:
    return VS_FT_REG;
  case 0040000:
    return VS_FT_DIR;
  case 0120000:
    return VS_FT_LNK;
  case 0020000:
    return VS_FT_CHR;
  case 0060000:
    return VS_FT_BLK;
  case 0010000:
    return VS_FT_FIFO;
  default:
    return VS_FT_SOCK;
  }
}

/* Closes FS (a zeroed or closed one too) and zeroes it. */
static inline void vs_fs_close(struct vs_fs *fs) {
  if (fs->ops) fs->ops->close(fs->impl);
  *fs = (struct vs_fs){0};
}

#endif
