/* patchset.h: patch sets (US8819660): the disk clusters a patch changed, as a thin qcow2 layer
 * on the base image, with a manifest saying what base it belongs to and what it changes. */
#ifndef VS_PATCHSET_H
#define VS_PATCHSET_H

#include "image.h"

#include <jansson.h>

struct vs_patchset_stats {
  uint64_t clusters;           /* clusters of the disk */
  uint64_t changed, zeroed;    /* clusters in the set: with data, reading as zeros */
  uint64_t skipped_holes;      /* clusters neither image stores: not read */
  uint64_t taken_from_overlay; /* PATCHED is an overlay of BASE: its clusters, base not read */
  uint64_t bytes_read;
  unsigned cluster_bits;
  double seconds;
};

/* Compares BASE and PATCHED (same virtual size) cluster by cluster and writes OUT, a thin qcow2
 * layer with BASE as its backing file holding exactly the clusters that differ, and OUT.json,
 * its manifest: {"base": {"path", "size", "identity"}, "cluster_size", "changed": [[offset,
 * length], ...], "zeroed": [...]}. When PATCHED's backing file is BASE, its allocated clusters
 * are taken without reading the base. CLUSTER_BITS 0 takes PATCHED's cluster size (64 KiB for
 * raw). BASE's backing files must lie in its own directory; PATCHED's in its own or BASE's. */
int vs_patchset_make(const char *base, const char *patched, const char *out, unsigned cluster_bits,
                     struct vs_patchset_stats *st, struct vs_err *err);

#endif
