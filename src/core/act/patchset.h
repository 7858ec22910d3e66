/* patchset.h: patch sets (US8819660): the disk clusters a patch changed, as a thin qcow2 layer
 * on the base image, with a manifest saying what base it belongs to and what it changes.
 *
 * Made by patchset.c (the clusters found by patchset_compare.c); put under a stopped disk or a
 * libvirt domain in any state by patchset_apply.c, under a running VM's disk through its QEMU
 * monitor by patchset_live.c (hyper/monitor, hyper/blockgraph), by libvirt's block copy by
 * patchset_copy.c. What the guest cached of the replaced files: hyper/guestflush. */
#ifndef VS_PATCHSET_H
#define VS_PATCHSET_H

#include "image.h"

#include <jansson.h>

struct vs_patchset_stats {
  uint64_t clusters;           /* clusters of the disk */
  uint64_t changed, zeroed;    /* clusters in the set: with data, reading as zeros */
  uint64_t skipped_holes;      /* clusters neither image stores: not read */
  uint64_t taken_from_overlay; /* PATCHED is an overlay of BASE: its clusters, base not read */
  uint64_t in_file_order;      /* compared in the base file's order (a fragmented file) */
  uint64_t bytes_read;
  uint64_t bytes_mapped; /* of them, compared where they lay in the page cache (mapped) */
  unsigned cluster_bits;
  double seconds;
};

/* Compares BASE and PATCHED (same virtual size) cluster by cluster and writes OUT, a thin qcow2
 * layer with BASE as its backing file holding exactly the clusters that differ, and OUT.json,
 * its manifest: {"base": {"path", "size", "identity"}, "cluster_size", "changed": [[offset,
 * length], ...], "zeroed": [...]}. When PATCHED's backing file is BASE, its allocated clusters
 * are taken without reading the base. CLUSTER_BITS 0 takes PATCHED's cluster size (64 KiB for
 * raw). BASE's backing files must lie in its own directory; PATCHED's in its own or BASE's.
 * Nothing is written over an input: OUT or OUT.json that is BASE, PATCHED or an image of their
 * backing chains, by any name (vs_layer_check_output), is refused, and so is one that exists
 * unless FORCE. Both files appear only when complete and together; a failure leaves the names
 * as they were (with FORCE, a failure to put the manifest in place after the set took OUT's
 * name removes the set: OUT is then gone). */
int vs_patchset_make(const char *base, const char *patched, const char *out, unsigned cluster_bits,
                     bool force, struct vs_patchset_stats *st, struct vs_err *err);

/* Inserts patch set SET under the disk whose top image is TOP, which must not be in use (a
 * stopped VM): the image of TOP's chain that sits directly on the set's base (found by the
 * manifest's identity) gets SET as its backing file instead. Refused when the chain is not
 * based on the set's base, already holds the set, or TOP's chain is open for writing by another
 * process (an OFD lock, as QEMU takes). *REPORT gets {"image": the image re-pointed, "set",
 * "set_clusters", "shadowed": clusters of the set the images above it already hold (the guest
 * keeps its own data there), "shadowed_ranges": [[offset, length], ...]}. */
int vs_patchset_apply_image(const char *top, const char *set, json_t **report, struct vs_err *err);

/* Inserts SET under a running VM's disk through QEMU's monitor at QMP_PATH: NODE is the
 * format node of the image that sits on the set's base (checked by identity). The layer is
 * added as a read-only node on the base node, NODE is reopened onto it and its header's
 * backing file name changed to SET; if a step fails, what was done is undone and the VM runs
 * on the chain it had. The VM does not stop; *REPORT adds "reopen_seconds", the time the
 * reopen (which drains the node's requests) took. The reopen is given the node's cache mode
 * and zero detection as QEMU reports them (it would reset them to their defaults; its discard
 * mode it keeps). */
int vs_patchset_apply_qmp(const char *qmp_path, const char *node, const char *set, json_t **report,
                          struct vs_err *err);
/* The same for a running libvirt DOMAIN (name or UUID), through libvirt's monitor pass-through
 * (V must be a read-write connection). NODE may be NULL: the format node that sits on the
 * set's base is found in the domain's block graph. */
struct vs_virt;
int vs_patchset_apply_libvirt(struct vs_virt *v, const char *domain, const char *node,
                              const char *set, json_t **report, struct vs_err *err);

/* The same for a running libvirt DOMAIN whose live XML is XML, by libvirt's own means (no
 * monitor pass-through, no taint): the disk whose top image sits on the set's base gets a new,
 * empty top image on SET (TOP.SETNAME.qcow2 beside it), a shallow block copy moves what the
 * guest wrote onto it and the disk pivots to it. Waits at most TIMEOUT_S for the copy; on
 * failure the job is cancelled and the disk stays as it was. The old top is left in place.
 * *REPORT: {"method": "copy", "disk", "image" (the new top), "previous_image", "set",
 * "set_clusters", "shadowed", "shadowed_ranges", "pivot_seconds"}. */
int vs_patchset_apply_copy(struct vs_virt *v, const char *domain, const char *xml, const char *set,
                           int timeout_s, json_t **report, struct vs_err *err);

/* Applies SET to libvirt DOMAIN (name or UUID) in whatever state it is: running, through the
 * monitor pass-through (vs_patchset_apply_libvirt, on NODE or the node found by the set's
 * base when NULL) or, with COPY, by block copy
 * (vs_patchset_apply_copy, waiting at most TIMEOUT_S); stopped, by re-pointing the disk whose
 * chain sits on the set's base (vs_patchset_apply_image). *REPORT is theirs, with "domain"
 * and "running" added. V must be a read-write connection. */
int vs_patchset_apply_domain(struct vs_virt *v, const char *domain, const char *node,
                             const char *set, bool copy, int timeout_s, json_t **report,
                             struct vs_err *err);

/* The patch sets in TOP's chain (images with a manifest beside them): a JSON array of
 * {"image", "base", "changed_clusters"}. Backing files may lie in TOP's directory or DIRS. */
int vs_patchset_status(const char *top, const char *const *dirs, size_t n_dirs, json_t **out,
                       struct vs_err *err);

#endif
