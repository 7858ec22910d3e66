/* patchset_int.h: shared between the patchset*.c files; not part of the core's interface.
 * patchset.c makes a set and reads manifests, patchset_compare.c finds the clusters that
 * differ, patchset_apply.c puts a set under a stopped disk (and holds what every apply needs:
 * opening a chain with the set, coverage), patchset_live.c under a running VM's disk through
 * its monitor, patchset_copy.c by libvirt's block copy. */
#ifndef VS_PATCHSET_INT_H
#define VS_PATCHSET_INT_H

#include "patchset.h"

struct vs_layer;

/* ------------------------------------------------------------ manifests (patchset.c) */

/* The manifest SET.json of patch set SET, checked to name its base's identity; NULL (ERR says
 * why) when SET is no regular file, has no manifest, or the manifest is not one. */
json_t *vs_ps_manifest_load(const char *set, struct vs_err *err);
/* The base's identity (never NULL in a loaded manifest) and path (may be NULL) in manifest M. */
const char *vs_ps_manifest_identity(json_t *m);
const char *vs_ps_manifest_base_path(json_t *m);
/* Whether manifests A and B describe the same set: one base, the same clusters. */
bool vs_ps_manifest_same(json_t *a, json_t *b);
/* Whether A and B name one file (by device and inode: hard links and symlinks too). */
bool vs_ps_same_file(const char *a, const char *b);
/* Adds [OFF, OFF+LEN) to the JSON list of [offset, length] ranges, merging it with the last one
 * when adjacent. */
void vs_ps_add_range(json_t *ranges, uint64_t off, uint64_t len);

/* ------------------------------------------------------ comparing (patchset_compare.c) */

/* What make collects: the layer being written, the ranges for the manifest, the counts. */
struct vs_ps_diff {
  struct vs_layer *layer;
  json_t *changed, *zeroed;
  struct vs_patchset_stats *st;
};
/* Adds to D every cluster (of size CS) of P that differs from B's, P and B being of one size:
 * B[0] and P[0], and B[1] and P[1] (other handles on the same images, or NULL), are read and
 * compared by a thread each, in turns. */
int vs_ps_compare(struct vs_image *const b[2], struct vs_image *const p[2], uint64_t cs,
                  struct vs_ps_diff *d, struct vs_err *err);
/* Adds to D every cluster P itself holds, P being an overlay of the base with clusters of CS:
 * only those can differ, and the base is not read. */
int vs_ps_take_overlay(struct vs_image *p, uint64_t cs, struct vs_ps_diff *d, struct vs_err *err);

/* -------------------------------------------------------- a chain and a set (patchset_apply.c) */

/* Opens the chain of PATH, its backing files looked for in the directories of A, B and C (in
 * that order): a disk's top image, the set and its base. */
struct vs_image *vs_ps_open_chain(const char *path, const char *a, const char *b, const char *c,
                                  struct vs_err *err);
/* Opens patch set SET, checking that its backing file is the base with identity WANT (its
 * manifest's; BASE_PATH, the manifest's base path, may be NULL). */
struct vs_image *vs_ps_open_layer(const char *set, const char *base_path, const char *want,
                                  struct vs_err *err);
/* The clusters of LAYER that the images from TOP down to ON_BASE already hold (the guest keeps
 * its own data there): their ranges, *SET_CLUSTERS the set's clusters, *SHADOWED how many it
 * holds. */
json_t *vs_ps_coverage(const struct vs_image *top, const struct vs_image *on_base,
                       struct vs_image *layer, uint64_t *set_clusters, uint64_t *shadowed);
/* The coverage of a live apply in REPORT: the set's clusters and those the guest's overlay TOP
 * already holds; when TOP or LAYER could not be opened (ERR says why, and is cleared), it is
 * unknown, and the report says so rather than "shadowed": 0. */
void vs_ps_report_coverage(json_t *report, struct vs_image *top, struct vs_image *layer,
                           struct vs_err *err);

/* A domain's file-backed disks (vs_virt_xml_disks of its XML; WHAT names it in errors). */
struct vs_disk;
struct vs_ps_disks {
  struct vs_disk *v;
  size_t n;
};
int vs_ps_disks_of(const char *xml, const char *what, struct vs_ps_disks *d, struct vs_err *err);
void vs_ps_disks_clear(struct vs_ps_disks *d);

#endif
