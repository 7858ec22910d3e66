/* layer.h: writes a thin qcow2 layer: a fresh qcow2 v3 image whose backing file is the base
 * and which holds exactly the clusters given to it (data, or reading as zeros). It is what a
 * patch set ships (US8819660): inserted under a VM's overlay, its clusters supersede the
 * base's.
 *
 * hyper/qcow2new writes the image (the one qcow2 writer, which a backup job's scratch file also
 * comes from): nothing appears under PATH until it is complete, and a writer killed before the
 * end leaves nothing behind. */
#ifndef VS_LAYER_H
#define VS_LAYER_H

#include "util.h"

#include <stdint.h>

struct vs_layer;
struct vs_image;

/* Whether PATH may be written as a new file without destroying an input. Refused (-1, ERR
 * names both files and says what to do) when PATH is, by device and inode (so under any name:
 * a hard link, a symlink to it, a path through another directory), one of INPUTS[0..N_INPUTS)
 * or an image of CHAINS[0..N_CHAINS) or of their backing chains; when it lies inside an input
 * that is a directory (a pool, a guest tree); when it is a directory or its directory is
 * missing; and, unless FORCE, when anything is there at all (EEXIST). Inputs that do not exist
 * are skipped. Writers call it before they create anything and again right before they rename
 * into place. */
int vs_layer_check_output(const char *path, const char *const *inputs, size_t n_inputs,
                          const struct vs_image *const *chains, size_t n_chains, bool force,
                          struct vs_err *err);

/* CLUSTER_BITS 9..21 (512 B to 2 MiB); BACKING is written as given (a path the base is found
 * by, relative to the layer's directory or absolute), BACKING_FORMAT "qcow2" or "raw". */
struct vs_layer *vs_layer_create(const char *path, uint64_t virtual_size, unsigned cluster_bits,
                                 const char *backing, const char *backing_format,
                                 struct vs_err *err);
/* The cluster at guest offset OFF (cluster-aligned, increasing from call to call) holds DATA
 * (a whole cluster). */
int vs_layer_add_data(struct vs_layer *l, uint64_t off, const void *data, struct vs_err *err);
/* The cluster at OFF reads as zeros (the zero flag: no data stored). */
int vs_layer_add_zero(struct vs_layer *l, uint64_t off, struct vs_err *err);
/* Starts writing the clusters added so far to the disk, while the caller does other work. */
void vs_layer_writeback(struct vs_layer *l);
/* Writes the metadata and moves the image into place. Frees L. */
int vs_layer_finish(struct vs_layer *l, struct vs_err *err);
/* Drops the temporary file. Frees L (NULL is fine). */
void vs_layer_abort(struct vs_layer *l);
void vs_layer_abortp(struct vs_layer **l);
/* Clusters added so far, and how many of them hold data. */
uint64_t vs_layer_clusters(const struct vs_layer *l);
uint64_t vs_layer_data_clusters(const struct vs_layer *l);

#endif
