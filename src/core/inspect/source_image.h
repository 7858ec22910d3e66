/* source_image.h: the direct reader: a guest's disk images read through libext2fs, libfsntfs
 * and libfsxfs on our own image reader (image.h), with no appliance; the other backend is
 * source_guestfs.h. */
#ifndef VS_SOURCE_IMAGE_H
#define VS_SOURCE_IMAGE_H

#include "image.h"
#include "source.h"

#include <jansson.h>
#include <stdint.h>

/* A guest's disk images, read directly: ext2/3/4 (libext2fs), NTFS (libfsntfs) and, with
 * OPTS->read_xfs, XFS (libfsxfs) on whole disks, MBR or GPT partitions and LVM2 logical volumes
 * (libvslvm), all on our own image reader, with no appliance, no qemu-nbd and no raw copy. The
 * root file system is the one holding /etc with an os-release or fstab (else an NTFS volume
 * holding Windows); every file system its fstab mounts (UUID=, LABEL=, PARTUUID=, device and
 * LV names) is mounted where fstab says. Fails with ENOTSUP when what the guest needs lies on
 * something else (btrfs, LUKS, XFS without read_xfs...), the message saying what and why:
 * the cue to use the guestfs backend. */
struct vs_source *vs_source_open_image(const char *const *paths, size_t n_paths,
                                       const struct vs_image_opts *opts, struct vs_err *err);

/* The volumes of IMG whose files vs_image_files_in_ranges can name (ext2/3/4 file systems),
 * with the library that reads them opened: what can be found of IMG before the ranges are
 * known. Their count, with *VOLS to free; or -1 and ERR. */
int vs_image_file_volumes(struct vs_image *img, struct vs_volume **vols, struct vs_err *err);
/* The files (regular files and symlinks) of the file systems VOLS (vs_image_file_volumes') on
 * IMG with a data block in RANGES (pairs of disk byte offset and length, sorted) that differs
 * from BASE's (NULL: any block in the ranges counts): a JSON array of {"volume", "path",
 * "inode"}, at most 10,000 per file system, in *FILES. A file system that cannot be opened
 * names none. For patch set manifests. */
void vs_image_files_in_ranges(struct vs_image *img, struct vs_image *base,
                              const struct vs_volume *vols, int n_vols, const uint64_t *ranges,
                              size_t n_ranges, json_t **files);

#endif
