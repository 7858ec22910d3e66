/* lvm.h: the logical volumes of an LVM2 physical volume, for the direct reader
 * (source_image.c): libvslvm parses the label and the volume group's metadata through a libbfio
 * handle on our image reader (bfio.h), and each logical volume lying in one piece on this
 * physical volume becomes a struct vs_volume like a partition (LV "VG/LV", its file system
 * probed by libblkid).
 *
 * The metadata is the guest's: libvslvm may read at most a few MiB of the physical volume for
 * it; a logical volume whose extents lie past the physical volume's end, on another physical
 * volume, or in several pieces (striped, or extended into non-adjacent space) is not listed, so
 * `auto` leaves such a guest to the appliance. */
#ifndef VS_LVM_H
#define VS_LVM_H

#include "image.h"

/* True when V is an LVM2 physical volume. */
bool vs_lvm_is_pv(const struct vs_volume *v);
/* Appends the logical volumes of the physical volume PV of IMG to *VOLS (*N of them, grown
 * with realloc). Logs what it leaves out. Returns the number appended, or -1 with ERR filled
 * when the metadata cannot be read. */
int vs_lvm_volumes(struct vs_image *img, const struct vs_volume *pv, struct vs_volume **vols,
                   int *n, struct vs_err *err);

#endif
