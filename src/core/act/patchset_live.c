#include "patchset_int.h"

#include "blockgraph.h"
#include "monitor.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A running VM's disk as its block graph shows it: NODE, the format node of the image that
 * sits on the set's base (or, RESUMED, on the set's layer node LAYER_NODE already: an apply
 * stopped after its reopen), on protocol node FILE_NODE (file OVER_FILE) and on BASE_NODE
 * (file BASE_FILE). */
struct disk {
  char *node, *file_node, *base_node, *over_file, *base_file;
  char layer_node[32];
  bool resumed;
};

static void disk_clear(struct disk *d) {
  free(d->node);
  free(d->file_node);
  free(d->base_node);
  free(d->over_file);
  free(d->base_file);
}

/* The layer node of set WANT (a base identity) under disk node NODE. One per disk, so that two
 * disks of a VM on the same base each get the set; QEMU's node names stay under 32 bytes. */
static void layer_name(const char *want, const char *node, char out[static 32]) {
  uint32_t h = 2166136261u; /* FNV-1a of the disk's node name */
  for (const unsigned char *p = (const unsigned char *)node; *p; p++)
    h = (h ^ *p) * 16777619u;
  snprintf(out, 32, "vs-patch-%.12s-%08x", want, h);
}

/* Whether the image of file FILE has identity WANT. */
static bool has_identity(const char *file, const char *want) {
  _cleanup_(vs_image_closep) struct vs_image *img = vs_image_open(file, NULL, NULL);
  char id[65] = {0};
  return img && vs_image_identity(img, id, NULL) == 0 && strcmp(id, want) == 0;
}

/* Whether format node NAME is one to apply the set to: it sits on the set's base, or on a
 * layer node of the set (PREFIX) without its header naming the set yet (*DONE when it does). */
static bool is_candidate(const struct vs_blockgraph *g, const char *name, const char *prefix,
                         const char *want, const char *set_real, bool *done) {
  *done = false;
  _cleanup_(vs_freep) char *backing = vs_blockgraph_child(g, name, "backing");
  if (!backing) return false;
  if (strncmp(backing, prefix, strlen(prefix)) == 0) {
    _cleanup_(vs_freep) char *file = vs_blockgraph_file(g, name);
    *done = file && vs_blockgraph_header_backing_is(g, name, file, set_real);
    return !*done;
  }
  _cleanup_(vs_freep) char *bfile = vs_blockgraph_file(g, backing);
  return bfile && has_identity(bfile, want);
}

/* The disk node to apply set WANT to when none is named: the one format node that sits on the
 * set's base, or on the set's layer without its header naming the set yet (an apply that was
 * stopped). More than one is ambiguous: ERR names them. With none, ERR says whether the set is
 * applied everywhere already. */
static char *pick_node(const struct vs_blockgraph *g, const char *want, const char *set_real,
                       const char *what, struct vs_err *err) {
  char prefix[32];
  snprintf(prefix, sizeof(prefix), "vs-patch-%.12s-", want);
  _cleanup_(vs_buf_free) struct vs_buf names = {0};
  _cleanup_(vs_freep) char *found = NULL;
  size_t n_found = 0, n_done = 0;
  const char *name;
  for (size_t i = 0; (name = vs_blockgraph_node(g, i)); i++) {
    bool done;
    if (!*name || strncmp(name, "vs-patch-", 9) == 0) continue;
    bool match = is_candidate(g, name, prefix, want, set_real, &done);
    n_done += done;
    if (!match) continue;
    vs_buf_addf(&names, "%s%s", n_found ? ", " : "", name);
    if (n_found++ == 0) found = vs_xstrdup(name);
  }
  if (n_found > 1)
    vs_err_set(err, EINVAL,
               "%s: %zu disks sit on the set's base (nodes %s): name one with --device", what,
               n_found, names.data);
  else if (n_found == 0 && n_done > 0)
    vs_err_set(err, EEXIST,
               "%s: every disk on the set's base runs on the set %s already: nothing to do", what,
               set_real);
  else if (n_found == 0)
    vs_err_set(err, ENOENT, "%s: no disk of the VM sits on the set's base (identity %.16s...)",
               what, want);
  return n_found == 1 ? vs_steal(&found) : NULL;
}

/* The format node whose backing node is NODE, or NULL (caller frees). */
static char *parent_of(const struct vs_blockgraph *g, const char *node) {
  const char *name;
  for (size_t i = 0; (name = vs_blockgraph_node(g, i)); i++) {
    if (!*name) continue;
    _cleanup_(vs_freep) char *backing = vs_blockgraph_child(g, name, "backing");
    if (backing && strcmp(backing, node) == 0) return vs_xstrdup(name);
  }
  return NULL;
}

/* Fills D with disk node D->node's neighbours in G and its files, refusing a disk that is not
 * on the set's base (identity WANT) or that runs on the set SET (at SET_REAL) already. */
static int resolve_disk(const struct vs_blockgraph *g, const char *what, const char *set,
                        const char *set_real, const char *want, struct disk *d,
                        struct vs_err *err) {
  layer_name(want, d->node, d->layer_node);
  d->file_node = vs_blockgraph_child(g, d->node, "file");
  d->base_node = vs_blockgraph_child(g, d->node, "backing");
  /* Already running on the set: an apply done, or one stopped after its reopen (the chain
   * holds the set, the overlay's header does not name it yet). The base is the layer's. */
  d->resumed = d->base_node && strcmp(d->base_node, d->layer_node) == 0;
  if (d->resumed) {
    free(d->base_node);
    d->base_node = vs_blockgraph_child(g, d->layer_node, "backing");
  }
  d->over_file = d->file_node ? vs_blockgraph_file(g, d->node) : NULL;
  d->base_file = d->base_node ? vs_blockgraph_file(g, d->base_node) : NULL;
  if (!d->file_node || !d->base_node || !d->base_file || !d->over_file)
    return vs_err_set(err, ENOENT, "%s: no format node \"%s\" with a file and a backing node", what,
                      d->node);
  _cleanup_(vs_freep) char *parent =
      vs_ps_same_file(d->over_file, set_real) ? parent_of(g, d->node) : NULL;
  if (parent) /* a block copy put the set in the chain, under a new top: it sits on the base */
    return vs_err_set(err, EEXIST,
                      "%s: the set %s is in the disk's chain already (node %s, under %s): nothing "
                      "to do",
                      what, set_real, d->node, parent);
  if (vs_ps_same_file(d->over_file, set_real) || vs_ps_same_file(d->base_file, set_real))
    return vs_err_set(err, EINVAL,
                      "%s: %s is the disk's own %s image, not a patch set to put under it: not "
                      "changed",
                      what, set, vs_ps_same_file(d->over_file, set_real) ? "top" : "base");
  _cleanup_(vs_image_closep) struct vs_image *base_img = vs_image_open(d->base_file, NULL, err);
  char id[65] = {0};
  if (!base_img || vs_image_identity(base_img, id, err) < 0) return -1;
  if (strcmp(id, want) != 0)
    return vs_err_set(err, EINVAL, "%s: node %s sits on %s, not on the set's base: not changed",
                      what, d->node, d->base_file);
  if (d->resumed && vs_blockgraph_header_backing_is(g, d->node, d->over_file, set_real))
    return vs_err_set(err, EEXIST, "%s: node %s already runs on the set %s: nothing to do", what,
                      d->node, set_real);
  return 0;
}

/* Runs COMMAND on M with the one argument KEY: VALUE, its failure ignored (for undoing, and
 * for a flush the report does without). */
static void exec_node(struct vs_monitor *m, const char *command, const char *key,
                      const char *value) {
  _cleanup_(json_decrefp) json_t *args = json_pack("{ss}", key, value);
  vs_monitor_exec(m, command, args, NULL, NULL);
}

/* Adds the set (SET_REAL) as read-only layer node D->layer_node on D's base node, removing a
 * stale one an interrupted apply left, and reopens D's node onto it: *PAUSE gets how long the
 * reopen took. On failure the layer node is gone again. */
static int insert_layer(struct vs_monitor *m, const struct vs_blockgraph *g, const struct disk *d,
                        const char *set_real, double *pause, struct vs_err *err) {
  if (vs_blockgraph_has(g, d->layer_node)) { /* nothing uses it: a leftover */
    if (vs_blockgraph_in_use(g, d->layer_node))
      return vs_err_set(err, EBUSY, "%s: node %s is in another disk's chain: not changed",
                        vs_monitor_what(m), d->layer_node);
    _cleanup_(json_decrefp) json_t *del = json_pack("{ss}", "node-name", d->layer_node);
    if (vs_monitor_exec(m, "blockdev-del", del, NULL, err) < 0)
      return vs_err_prefix(err, "removing the layer node an interrupted apply left");
  }
  _cleanup_(json_decrefp) json_t *add = json_pack(
      "{sssss{sssssb}sssb}", "driver", "qcow2", "node-name", d->layer_node, "file", "driver",
      "file", "filename", set_real, "read-only", 1, "backing", d->base_node, "read-only", 1);
  if (vs_monitor_exec(m, "blockdev-add", add, NULL, err) < 0) return -1;
  /* The guest-visible moment: QEMU drains the node's requests while it reopens. */
  double t0 = vs_now_monotonic();
  _cleanup_(json_decrefp) json_t *reopen =
      vs_blockgraph_reopen_args(g, d->node, d->file_node, d->layer_node);
  int r = vs_monitor_exec(m, "blockdev-reopen", reopen, NULL, err);
  *pause = vs_now_monotonic() - t0;
  if (r < 0) exec_node(m, "blockdev-del", "node-name", d->layer_node);
  return r;
}

/* Has D's image header name the set (SET_REAL) as its backing file. On failure, a layer this
 * apply inserted is taken out again and the chain put back as it was. */
static int repoint_header(struct vs_monitor *m, const struct vs_blockgraph *g, const struct disk *d,
                          const char *set_real, struct vs_err *err) {
  _cleanup_(json_decrefp) json_t *cbf = json_pack("{ssssss}", "device", d->node, "image-node-name",
                                                  d->node, "backing-file", set_real);
  if (vs_monitor_exec(m, "change-backing-file", cbf, NULL, err) == 0) return 0;
  if (!d->resumed) {
    _cleanup_(json_decrefp) json_t *back =
        vs_blockgraph_reopen_args(g, d->node, d->file_node, d->base_node);
    vs_monitor_exec(m, "blockdev-reopen", back, NULL, NULL);
    exec_node(m, "blockdev-del", "node-name", d->layer_node);
  }
  return -1;
}

/* The report of an apply to D that took PAUSE seconds, with its coverage from the images as
 * they are on disk. */
static json_t *live_report(struct vs_monitor *m, const struct disk *d, const char *set_real,
                           double pause) {
  /* First have QEMU write out the metadata it holds for the node, so what the guest wrote
   * counts. */
  _cleanup_(vs_freep) char *flush = vs_xasprintf("qemu-io %s flush", d->node);
  exec_node(m, "human-monitor-command", "command-line", flush);
  struct vs_err cov_err = {0};
  _cleanup_(vs_image_closep) struct vs_image *over =
      vs_ps_open_chain(d->over_file, d->over_file, set_real, d->base_file, &cov_err);
  _cleanup_(vs_image_closep) struct vs_image *layer =
      over ? vs_ps_open_chain(set_real, d->over_file, set_real, d->base_file, &cov_err) : NULL;
  json_t *report = json_pack("{sssssssfsb}", "image", d->over_file, "node", d->node, "set",
                             set_real, "reopen_seconds", pause, "resumed", d->resumed);
  vs_ps_report_coverage(report, over, layer, &cov_err);
  return report;
}

static int apply_live(struct vs_monitor *m, const char *node, const char *set, json_t **report,
                      struct vs_err *err) {
  *report = NULL;
  const char *what = vs_monitor_what(m);
  _cleanup_(json_decrefp) json_t *manifest = vs_ps_manifest_load(set, err);
  if (!manifest) return -1;
  const char *want = vs_ps_manifest_identity(manifest);
  _cleanup_(vs_freep) char *set_real = realpath(set, NULL);
  if (!set_real) return vs_err_set(err, errno, "%s: %s", set, strerror(errno));
  _cleanup_(vs_blockgraph_freep) struct vs_blockgraph *g = vs_blockgraph_query(m, err);
  if (!g) return -1;
  if (node && strncmp(node, "vs-patch-", 9) == 0)
    return vs_err_set(err, EINVAL,
                      "%s: node %s is a patch set's layer node: name the disk's format node with "
                      "--device (or leave it out)",
                      what, node);
  _cleanup_(disk_clear) struct disk d = {0};
  d.node = node ? vs_xstrdup(node) : pick_node(g, want, set_real, what, err);
  if (!d.node || resolve_disk(g, what, set, set_real, want, &d, err) < 0) return -1;
  double pause = 0;
  if (!d.resumed && insert_layer(m, g, &d, set_real, &pause, err) < 0) return -1;
  if (repoint_header(m, g, &d, set_real, err) < 0) return -1;
  *report = live_report(m, &d, set_real, pause);
  return 0;
}

int vs_patchset_apply_qmp(const char *qmp_path, const char *node, const char *set, json_t **report,
                          struct vs_err *err) {
  *report = NULL;
  _cleanup_(vs_monitor_closep) struct vs_monitor *m = vs_monitor_open_qmp(qmp_path, 10000, err);
  if (!m) return -1;
  return apply_live(m, node, set, report, err);
}

int vs_patchset_apply_libvirt(struct vs_virt *v, const char *domain, const char *node,
                              const char *set, json_t **report, struct vs_err *err) {
  *report = NULL;
  _cleanup_(vs_monitor_closep) struct vs_monitor *m = vs_monitor_open_libvirt(v, domain);
  return apply_live(m, node, set, report, err);
}
