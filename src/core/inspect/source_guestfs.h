/* source_guestfs.h: guest disk images read through a libguestfs appliance, for what the
 * direct reader (source_image.h) cannot read: LVM, XFS, btrfs, LUKS... */
#ifndef VS_SOURCE_GUESTFS_H
#define VS_SOURCE_GUESTFS_H

#include "image.h"
#include "source.h"
#include "watch.h"

/* Guest disk images read through one libguestfs appliance for a whole batch: every image is
 * added read-only with its format given explicitly, the appliance starts once (retried once
 * if it dies), and each image's OS root is mounted read-only in turn; its files are pulled out
 * in bulk (tar-out of /etc and the package, unit and sysctl directories, downloads of the
 * other watched files) into a private staging directory, where the same extraction as for a
 * directory runs. Backing chains are checked against OPTS first with our own reader. */
struct vs_guestfs;
struct vs_guestfs *vs_guestfs_open(const char *const *paths, size_t n_paths,
                                   const struct vs_image_opts *opts, const struct vs_watch *watch,
                                   struct vs_err *err);
/* The source for image I of the batch (free it before the next call). */
struct vs_source *vs_guestfs_source(struct vs_guestfs *gfs, size_t i, struct vs_err *err);
void vs_guestfs_close(struct vs_guestfs *gfs);
/* Kills every libguestfs appliance this process started (its qemu-system children), so that
 * whatever libguestfs call a thread is in fails at once instead of running for minutes under
 * emulation. For shutting down: collectd gives plugins no way to cancel a running read. */
void vs_guestfs_kill_appliances(void);

#endif
