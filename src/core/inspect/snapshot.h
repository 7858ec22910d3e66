/* snapshot.h: one libvirt domain -> its feature document.
 *
 * The document holds the guest's settings, read from the domain's disks, and the VM's own
 * settings from its XML (vm:). Its id is the domain's UUID, its name the domain's name.
 *
 * Modes:
 *   readonly  the disks' current chains as they are on the host, opened read-only with the
 *             formats the domain XML gives (a guest that writes a qcow2 header into a raw disk
 *             is not read as qcow2), taking no lock, so a running VM is not disturbed. Works
 *             with every driver whose disks are local files or block devices. A running
 *             guest's file system may be mid-write: what is inconsistent is skipped, not
 *             guessed.
 *   backup    (qemu driver) a pull-mode backup job (virDomainBackupBegin) gives a
 *             point-in-time NBD export of each disk of a running domain, frozen first through
 *             the guest agent when one answers; the exports are read through libnbd by the
 *             direct backend, then the job ends. A domain that is not running is read as in
 *             readonly mode: nothing writes to its disks. */
#ifndef VS_SNAPSHOT_H
#define VS_SNAPSHOT_H

#include "extract.h"
#include "feature.h"
#include "virt.h"
#include "watch.h"

enum vs_snapshot_mode { VS_SNAPSHOT_READONLY, VS_SNAPSHOT_BACKUP };
enum vs_backend_choice { VS_BACKEND_AUTO, VS_BACKEND_DIRECT, VS_BACKEND_GUESTFS };

struct vs_snapshot_opts {
  enum vs_snapshot_mode mode;
  enum vs_backend_choice backend;
  /* Directories backing files may lie in (NULL/0: each disk's own directory). */
  const char *const *backing_dirs;
  size_t n_backing_dirs;
  const struct vs_watch *watch; /* for the guestfs backend (NULL: the default list) */
  const char *backup_dir;       /* backup mode: where the job's socket and scratch files go */
  /* The direct backend reads XFS too (vs_image_opts.read_xfs): for the CLI's explicit
   * --backend direct only; the plugin, reading guests unattended, never sets it. */
  bool read_xfs;
};

struct vs_snapshot_stats {
  double seconds;
  const char *backend; /* "direct", "guestfs", or "none" (no disk could be read) */
  size_t packages;
  bool backup, quiesced; /* read from a backup job; the guest's file systems were frozen */
  uint64_t bytes_read;   /* from the disks or their exports, with the direct reader */
  double frozen_seconds; /* quiesced: how long the guest's file systems were frozen */
};

/* Snapshots domain DOM of V with extractor X (one thread at a time). TAKEN_AT is the
 * document's time. A domain with no disk to read still gives a document (its vm: settings,
 * and why in skipped); a disk that cannot be read is an error naming the domain and disk. */
struct vs_feature *vs_snapshot_domain(struct vs_virt *v, const struct vs_domain *dom,
                                      struct vs_extractor *x, const struct vs_snapshot_opts *o,
                                      int64_t taken_at, struct vs_snapshot_stats *st,
                                      struct vs_err *err);

#endif
