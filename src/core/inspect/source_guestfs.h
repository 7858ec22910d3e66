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

/* What a batch is doing, for a host that shows it (the CLI on a terminal): the appliance takes
 * 20-60 s to launch under emulation, and an image some seconds more. */
enum vs_guestfs_phase {
  VS_GUESTFS_CHECKING,    /* our reader checks each image's backing chain */
  VS_GUESTFS_LAUNCHING,   /* the appliance boots; ATTEMPT 2 when the first one died */
  VS_GUESTFS_INSPECTING,  /* libguestfs looks for the operating systems on every image */
  VS_GUESTFS_MOUNTING,    /* image IMAGE's file systems are mounted read-only */
  VS_GUESTFS_READING,     /* its files are pulled out */
  VS_GUESTFS_LISTING_APPS /* its packages come from libguestfs's listing (neither deb nor rpm) */
};
struct vs_guestfs_event {
  enum vs_guestfs_phase phase;
  size_t n_images;
  size_t image;     /* from VS_GUESTFS_MOUNTING on: the image's index in the batch (before:
                     * N_IMAGES) */
  const char *path; /* and its path (before: NULL) */
  int attempt;      /* VS_GUESTFS_LAUNCHING: 1, or 2 for the second try */
};
/* Called as each phase begins, from the thread that called into this module; it must not call
 * back into it. The host measures time and renders; nothing here prints. */
typedef void (*vs_guestfs_progress_fn)(const struct vs_guestfs_event *ev, void *ctx);
/* vs_guestfs_open reporting its phases and those of each vs_guestfs_source to PROGRESS (with
 * CTX). vs_guestfs_open is this with no PROGRESS: the plugins stay silent. */
struct vs_guestfs *vs_guestfs_open_reporting(const char *const *paths, size_t n_paths,
                                             const struct vs_image_opts *opts,
                                             const struct vs_watch *watch,
                                             vs_guestfs_progress_fn progress, void *ctx,
                                             struct vs_err *err);
/* The source for image I of the batch (free it before the next call). */
struct vs_source *vs_guestfs_source(struct vs_guestfs *gfs, size_t i, struct vs_err *err);
void vs_guestfs_close(struct vs_guestfs *gfs);
/* Kills every libguestfs appliance this process started (its qemu-system children), so that
 * whatever libguestfs call a thread is in fails at once instead of running for minutes under
 * emulation. For shutting down: collectd gives plugins no way to cancel a running read. */
void vs_guestfs_kill_appliances(void);

#endif
