#include "snapshot.h"

#include "source_guestfs.h"
#include "source_image.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Reads the guest from the disk images at PATHS into DOC. */
static int read_disks(struct vs_extractor *x, const char *const *paths, const char *const *formats,
                      size_t n, const struct vs_snapshot_opts *o, struct vs_feature *doc,
                      struct vs_snapshot_stats *st, struct vs_err *err) {
  struct vs_image_opts io = {.backing_dirs = o->backing_dirs,
                             .n_backing_dirs = o->n_backing_dirs,
                             .formats = formats,
                             .read_xfs = o->read_xfs};
  struct vs_extract_stats es = {0};
  if (o->backend != VS_BACKEND_GUESTFS) {
    struct vs_source *src = vs_source_open_image(paths, n, &io, err);
    if (src) {
      int rc = vs_extract(x, src, doc, &es, err);
      st->backend = "direct";
      st->bytes_read = vs_source_bytes_read(src);
      st->packages = es.packages;
      vs_feature_set_source(doc, "domain", paths[0], "direct");
      vs_source_free(src);
      return rc;
    }
    if (err->code != ENOTSUP || o->backend == VS_BACKEND_DIRECT) return -1;
    vs_log(VS_LOG_INFO, "%s; trying libguestfs", vs_err_msg(err));
    vs_err_clear(err);
  }
  /* One appliance with all of the domain's disks; the guest is what the first one holds. */
  struct vs_guestfs *gfs = vs_guestfs_open(paths, n, &io, o->watch, err);
  if (!gfs) return -1;
  struct vs_source *src = vs_guestfs_source(gfs, 0, err);
  int rc = src ? vs_extract(x, src, doc, &es, err) : -1;
  vs_source_free(src);
  vs_guestfs_close(gfs);
  st->backend = "guestfs";
  st->packages = es.packages;
  vs_feature_set_source(doc, "domain", paths[0], "guestfs");
  return rc;
}

/* Reads the disks through a pull-mode backup job's NBD exports. */
static int read_backup(struct vs_virt *v, const struct vs_domain *dom, const struct vs_disk *disks,
                       size_t n, struct vs_extractor *x, const struct vs_snapshot_opts *o,
                       struct vs_feature *doc, struct vs_snapshot_stats *st, struct vs_err *err) {
  if (o->backend == VS_BACKEND_GUESTFS)
    return vs_err_set(err, ENOTSUP,
                      "domain %s: the guestfs backend does not read backup exports; use Backend "
                      "auto or direct with SnapshotMode backup",
                      dom->name);
  const char **targets = vs_xcalloc(n, sizeof(char *));
  for (size_t i = 0; i < n; i++)
    targets[i] = disks[i].target;
  struct vs_backup *b = vs_virt_backup_begin(
      v, dom->uuid, targets, n, o->backup_dir ? o->backup_dir : "/var/tmp", &st->quiesced, err);
  int rc = -1;
  if (b) {
    char **uris = vs_xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
      uris[i] = vs_backup_uri(b, targets[i]);
    struct vs_snapshot_opts direct = *o;
    direct.backend = VS_BACKEND_DIRECT; /* NBD exports are for the direct reader */
    rc = read_disks(x, (const char *const *)uris, NULL, n, &direct, doc, st, err);
    st->backup = true;
    st->frozen_seconds = vs_backup_frozen_seconds(b);
    /* The export's socket is gone with the job: name the disk that was read. */
    vs_feature_set_source(doc, "domain", disks[0].path, "direct");
    vs_virt_backup_end(b);
    for (size_t i = 0; i < n; i++)
      free(uris[i]);
    free(uris);
  }
  free(targets);
  if (rc < 0) vs_err_prefix(err, "domain %s (backup)", dom->name);
  return rc;
}

struct vs_feature *vs_snapshot_domain(struct vs_virt *v, const struct vs_domain *dom,
                                      struct vs_extractor *x, const struct vs_snapshot_opts *o,
                                      int64_t taken_at, struct vs_snapshot_stats *st,
                                      struct vs_err *err) {
  struct vs_snapshot_stats local;
  if (!st) st = &local;
  *st = (struct vs_snapshot_stats){.backend = "none"};
  double t0 = vs_now_monotonic();
  _cleanup_(vs_feature_freep) struct vs_feature *doc = vs_feature_new();
  vs_feature_set_id(doc, dom->uuid, dom->name);
  vs_feature_set_taken_at(doc, taken_at);
  vs_feature_set_source(doc, "domain", "", "none");
  if (vs_virt_xml_settings(dom->xml, dom->name, doc, err) < 0) return NULL;

  struct vs_disk *disks = NULL;
  size_t n = 0;
  char *skipped = NULL;
  if (vs_virt_xml_disks(dom->xml, dom->name, &disks, &n, &skipped, err) < 0) return NULL;
  if (skipped) vs_feature_skip(doc, "vm:disks", "not read: %s", skipped);
  free(skipped);
  int rc = 0;
  if (n == 0) {
    vs_feature_skip(doc, "vm:disks", "the domain has no file or block disk to read");
  } else if (o->mode == VS_SNAPSHOT_BACKUP && dom->active) {
    rc = read_backup(v, dom, disks, n, x, o, doc, st, err);
  } else {
    const char **paths = vs_xcalloc(n, sizeof(char *)), **formats = vs_xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
      paths[i] = disks[i].path;
      formats[i] = disks[i].format && (strcmp(disks[i].format, "raw") == 0 ||
                                       strcmp(disks[i].format, "qcow2") == 0)
                       ? disks[i].format
                       : NULL;
    }
    rc = read_disks(x, paths, formats, n, o, doc, st, err);
    if (rc < 0) vs_err_prefix(err, "domain %s", dom->name);
    free(paths);
    free(formats);
  }
  vs_disks_free(disks, n);
  st->seconds = vs_now_monotonic() - t0;
  return rc < 0 ? NULL : vs_steal(&doc);
}
