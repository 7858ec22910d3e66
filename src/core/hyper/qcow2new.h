/* qcow2new.h: writes a new qcow2 v3 image that holds exactly the clusters given to it (data, or
 * reading as zeros), over a backing file or none. The one qcow2 writer: act/layer's thin layers
 * (a patch set, US8819660) are such images over a base, and a backup job's scratch file
 * (hyper/virt) is one with no cluster and no backing file, made before the guest is frozen.
 *
 * The image is written to an unnamed file in PATH's directory (O_TMPFILE; a named temporary
 * file where the file system has no such thing), data clusters first, then the L2 tables, the
 * L1 table, the refcount table and blocks (every cluster counted once) and last the header;
 * it is fsync'd, linked under a temporary name and renamed into place. So nothing appears
 * under PATH until it is complete, and a writer killed before the end leaves nothing behind. */
#ifndef VS_QCOW2NEW_H
#define VS_QCOW2NEW_H

#include "util.h"

#include <stdint.h>

struct vs_qcow2new;

/* CLUSTER_BITS 9..21 (512 B to 2 MiB); BACKING is written as given (a path the backing file is
 * found by, relative to the image's directory or absolute) or NULL for none, BACKING_FORMAT
 * "qcow2" or "raw" (NULL with no backing). MODE as for open(2), less the umask. */
struct vs_qcow2new *vs_qcow2new_create(const char *path, uint64_t virtual_size,
                                       unsigned cluster_bits, const char *backing,
                                       const char *backing_format, unsigned mode,
                                       struct vs_err *err);
/* The cluster at guest offset OFF (cluster-aligned, increasing from call to call) holds DATA
 * (a whole cluster). */
int vs_qcow2new_add_data(struct vs_qcow2new *q, uint64_t off, const void *data, struct vs_err *err);
/* The cluster at OFF reads as zeros (the zero flag: no data stored). */
int vs_qcow2new_add_zero(struct vs_qcow2new *q, uint64_t off, struct vs_err *err);
/* Starts writing the clusters added so far to the disk (vs_newfile_writeback): for a caller
 * with other work to do before vs_qcow2new_finish. */
void vs_qcow2new_writeback(struct vs_qcow2new *q);
/* Writes the metadata and moves the image into place. Frees Q. */
int vs_qcow2new_finish(struct vs_qcow2new *q, struct vs_err *err);
/* Drops the temporary file. Frees Q (NULL is fine). */
void vs_qcow2new_abort(struct vs_qcow2new *q);
/* Clusters added so far, and how many of them hold data. */
uint64_t vs_qcow2new_clusters(const struct vs_qcow2new *q);
uint64_t vs_qcow2new_data_clusters(const struct vs_qcow2new *q);

/* An empty image of VIRTUAL_SIZE bytes at PATH (64 KiB clusters, no backing file, no cluster
 * allocated: four clusters of metadata, the
 * header, the L1 table, the refcount table and its block, up to 4 TiB), as above; MODE as for
 * open(2). */
int vs_qcow2new_empty(const char *path, uint64_t virtual_size, unsigned mode, struct vs_err *err);

#endif
