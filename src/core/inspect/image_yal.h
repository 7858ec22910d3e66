/* image_yal.h (internal to image.c): VHD and VHDX images through libyal's libvhdi, VMDK images
 * through libvmdk. Each library reads through libbfio handles whose callbacks are our own
 * preads, bounded by the file's size and by a read budget per operation (opening, and each
 * read), so a block table that points past the file or keeps the library reading ends in an
 * error naming the image.
 *
 * A VMDK descriptor names its extents' files: each name goes through RESOLVE (image.c's
 * backing-file allow-list), so a descriptor cannot make us read /etc/passwd. Differencing
 * images (a VHD/VHDX or VMDK with a parent) are refused. */
#ifndef VS_IMAGE_YAL_H
#define VS_IMAGE_YAL_H

#include "util.h"

#include <stdint.h>

enum vs_yal_kind { VS_YAL_VHD, VS_YAL_VHDX, VS_YAL_VMDK };

struct vs_yal;

/* Which of the three FD (FILE_SIZE bytes) holds, by its signature: the VHD footer
 * ("conectix", at the end, or copied at the start of a dynamic VHD), "vhdxfile", or a VMDK
 * ("KDMV" sparse extent, or a descriptor file's "# Disk DescriptorFile"). -1 for none. */
int vs_yal_probe(int fd, uint64_t file_size);

/* Resolves an extent's NAME (relative to the image's directory) to a real path in an allowed
 * directory; NULL with ERR filled when it cannot or may not. */
typedef char *vs_yal_resolve_fn(void *ctx, const char *name, struct vs_err *err);

/* Opens the image in FD (FILE_SIZE bytes, owned by the caller and kept open while the result
 * lives). PATH names it in messages. */
struct vs_yal *vs_yal_open(enum vs_yal_kind kind, int fd, uint64_t file_size, const char *path,
                           vs_yal_resolve_fn *resolve, void *ctx, struct vs_err *err);
void vs_yal_close(struct vs_yal *y);
/* "vhd", "vhdx" or "vmdk" (libvhdi tells VHD from VHDX, whatever the caller asked for). */
const char *vs_yal_format(const struct vs_yal *y);
/* The same names for a kind vs_yal_probe found. */
const char *vs_yal_kind_name(enum vs_yal_kind kind);
uint64_t vs_yal_size(const struct vs_yal *y);
uint64_t vs_yal_bytes_read(const struct vs_yal *y);
/* Reads LEN bytes of the virtual disk at OFF (inside the disk: the caller checked). */
int vs_yal_pread(struct vs_yal *y, void *buf, size_t len, uint64_t off, struct vs_err *err);

#endif
