/* blockgraph.h: a running VM's block graph as QEMU reports it (x-debug-query-block-graph and
 * query-named-block-nodes): which node is whose "file" or "backing" child, the file behind a
 * node, what its image header names as backing file, and the options to reopen a node with
 * another backing node without losing its cache mode and zero detection. A snapshot: it does
 * not follow the VM's later changes. */
#ifndef VS_BLOCKGRAPH_H
#define VS_BLOCKGRAPH_H

#include "util.h"

#include <jansson.h>

struct vs_blockgraph;
struct vs_monitor;

/* Queries M's block graph and named nodes. */
struct vs_blockgraph *vs_blockgraph_query(struct vs_monitor *m, struct vs_err *err);
void vs_blockgraph_free(struct vs_blockgraph *g);
void vs_blockgraph_freep(struct vs_blockgraph **g);

/* The name of the I-th node of the graph (in QEMU's order), or NULL past the last. */
const char *vs_blockgraph_node(const struct vs_blockgraph *g, size_t i);
/* Whether a node named NAME exists, and whether it is any node's child (a disk's chain holds
 * it). */
bool vs_blockgraph_has(const struct vs_blockgraph *g, const char *name);
bool vs_blockgraph_in_use(const struct vs_blockgraph *g, const char *name);
/* The name of the child CHILD ("file", "backing") of block driver node NODE, or NULL. Caller
 * frees. */
char *vs_blockgraph_child(const struct vs_blockgraph *g, const char *node, const char *child);
/* The file behind format node NODE (its "file" child's file name: a format node with an
 * explicit backing reports a json: pseudo-filename itself), or NULL. Caller frees. */
char *vs_blockgraph_file(const struct vs_blockgraph *g, const char *node);
/* Whether the image header of NODE (whose file is FILE) names REAL_PATH as its backing file,
 * relative names taken from FILE's directory. */
bool vs_blockgraph_header_backing_is(const struct vs_blockgraph *g, const char *node,
                                     const char *file, const char *real_path);
/* The blockdev-reopen arguments that put qcow2 node NODE (on protocol node FILE) onto BACKING:
 * blockdev-reopen resets the cache mode, zero detection and read-only state to their defaults
 * unless given them (the discard mode it keeps), so they carry what QEMU reports of NODE. */
json_t *vs_blockgraph_reopen_args(const struct vs_blockgraph *g, const char *node, const char *file,
                                  const char *backing);

#endif
