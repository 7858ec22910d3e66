#include "patchset_int.h"

#include "virt.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------ a chain and a set */

struct vs_image *vs_ps_open_chain(const char *path, const char *a, const char *b, const char *c,
                                  struct vs_err *err) {
  _cleanup_(vs_freep) char *da = vs_xstrdup(a);
  _cleanup_(vs_freep) char *db = vs_xstrdup(b);
  _cleanup_(vs_freep) char *dc = vs_xstrdup(c);
  const char *dirs[3] = {dirname(da), dirname(db), dirname(dc)};
  struct vs_image_opts o = {.backing_dirs = dirs, .n_backing_dirs = 3};
  return vs_image_open(path, &o, err);
}

struct vs_image *vs_ps_open_layer(const char *set, const char *base_path, const char *want,
                                  struct vs_err *err) {
  _cleanup_(vs_image_closep) struct vs_image *layer =
      vs_ps_open_chain(set, set, set, base_path ? base_path : set, err);
  if (!layer) return NULL;
  char lid[65] = {0};
  if (!vs_image_backing(layer) ||
      vs_image_identity((struct vs_image *)vs_image_backing(layer), lid, err) < 0 ||
      strcmp(lid, want) != 0) {
    vs_err_set(err, EINVAL, "%s: the layer's backing file is not the base its manifest names", set);
    return NULL;
  }
  return vs_steal(&layer);
}

/* Whether some image from TOP down to ON_BASE holds anything of [OFF, OFF+CS). */
static bool is_held(const struct vs_image *top, const struct vs_image *on_base, uint64_t off,
                    uint64_t cs) {
  for (const struct vs_image *i = top; i; i = vs_image_backing(i)) {
    uint64_t ics = vs_image_cluster_size(i);
    for (uint64_t o = off; ics && o < off + cs && o < vs_image_size(i); o += ics) {
      enum vs_cluster_state s;
      if (vs_image_cluster_state((struct vs_image *)i, o & ~(ics - 1), &s, NULL) == 0 &&
          s != VS_CLUSTER_UNALLOCATED)
        return true;
    }
    if (i == on_base) break;
  }
  return false;
}

json_t *vs_ps_coverage(const struct vs_image *top, const struct vs_image *on_base,
                       struct vs_image *layer, uint64_t *set_clusters, uint64_t *shadowed) {
  json_t *ranges = json_array();
  uint64_t cs = vs_image_cluster_size(layer);
  *set_clusters = *shadowed = 0;
  for (uint64_t off = 0; cs && off < vs_image_size(layer); off += cs) {
    enum vs_cluster_state st;
    if (vs_image_cluster_state(layer, off, &st, NULL) < 0 || st == VS_CLUSTER_UNALLOCATED) continue;
    (*set_clusters)++;
    if (is_held(top, on_base, off, cs)) {
      (*shadowed)++;
      vs_ps_add_range(ranges, off, cs);
    }
  }
  return ranges;
}

void vs_ps_report_coverage(json_t *report, struct vs_image *top, struct vs_image *layer,
                           struct vs_err *err) {
  if (!top || !layer) {
    json_object_set_new(report, "set_clusters", json_null());
    json_object_set_new(report, "shadowed", json_null());
    _cleanup_(vs_freep) char *why = vs_xasprintf("unknown: %s", err->msg ? err->msg : "not opened");
    json_object_set_new(report, "coverage", vs_json_text(why, strlen(why)));
    vs_err_clear(err);
    return;
  }
  uint64_t set_clusters = 0, shadowed = 0;
  json_t *ranges = vs_ps_coverage(top, top, layer, &set_clusters, &shadowed);
  json_object_set_new(report, "set_clusters", json_integer((json_int_t)set_clusters));
  json_object_set_new(report, "shadowed", json_integer((json_int_t)shadowed));
  json_object_set_new(report, "shadowed_ranges", ranges);
}

/* ------------------------------------------------------------------- a stopped disk */

/* Whether another process holds a lock on PATH (QEMU locks the images it has open). */
static bool in_use(const char *path) {
  _cleanup_(vs_closep) int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

/* Refuses a TOP that is the set itself or that a running VM holds. */
static int check_top(const char *top, const char *set, struct vs_err *err) {
  if (vs_ps_same_file(top, set))
    return vs_err_set(err, EINVAL,
                      "%s is the patch set itself: give the disk's top image (--image TOP) and the "
                      "set to put under it",
                      top);
  if (in_use(top))
    return vs_err_set(err, EBUSY, "%s is open in another process (a running VM?): not changed",
                      top);
  return 0;
}

/* Why no image of CHAIN (TOP's) sits on the base with identity WANT. */
static int no_image_on_base(struct vs_image *chain, const char *top, const char *want,
                            struct vs_err *err) {
  char id[65] = {0};
  if (vs_image_identity(chain, id, NULL) == 0 && strcmp(id, want) == 0)
    return vs_err_set(err, EINVAL,
                      "%s is the set's base itself: apply the set to the overlay a VM runs on (its "
                      "top image), never to the base: not changed",
                      top);
  return vs_err_set(err, EINVAL,
                    "%s: its chain is not based on the set's base (identity %.16s...): not changed",
                    top, want);
}

/* The image of CHAIN (TOP's) that sits on the base of set SET (manifest M), refusing a chain
 * that holds the set already, by any name or as a twin made of the same changes. */
static const struct vs_image *find_on_base(struct vs_image *chain, const char *top, const char *set,
                                           const char *set_real, json_t *m, struct vs_err *err) {
  const char *want = vs_ps_manifest_identity(m);
  for (const struct vs_image *i = chain; i && vs_image_backing(i); i = vs_image_backing(i)) {
    char id[65] = {0};
    if (vs_image_identity((struct vs_image *)vs_image_backing(i), id, err) < 0) return NULL;
    if (vs_ps_same_file(vs_image_path(i), set_real)) {
      vs_err_set(err, EEXIST, "%s: the patch set %s is already in its chain: not changed", top,
                 set);
      return NULL;
    }
    _cleanup_(json_decrefp) json_t *im = vs_ps_manifest_load(vs_image_path(i), NULL);
    if (im && vs_ps_manifest_same(im, m)) {
      vs_err_set(err, EEXIST,
                 "%s: the patch set %s is already in its chain as %s (the same changes on the same "
                 "base): not changed",
                 top, set, vs_image_path(i));
      return NULL;
    }
    if (strcmp(id, want) == 0) return i;
  }
  no_image_on_base(chain, top, want, err);
  return NULL;
}

/* The real path of ON_BASE, the image to re-point, refused when it is a set itself or in use. */
static char *image_to_repoint(const struct vs_image *on_base, struct vs_err *err) {
  _cleanup_(json_decrefp) json_t *om = vs_ps_manifest_load(vs_image_path(on_base), NULL);
  if (om) {
    vs_err_set(err, EINVAL,
               "%s sits on the set's base but is a patch set itself (it has a manifest): "
               "re-pointing it would change a set other disks may use; make one set from both "
               "patches instead: not changed",
               vs_image_path(on_base));
    return NULL;
  }
  _cleanup_(vs_freep) char *above = realpath(vs_image_path(on_base), NULL);
  if (!above) {
    vs_err_set(err, errno, "%s: %s", vs_image_path(on_base), strerror(errno));
    return NULL;
  }
  if (in_use(above)) {
    vs_err_set(err, EBUSY, "%s is open in another process: not changed", vs_image_path(on_base));
    return NULL;
  }
  return vs_steal(&above);
}

/* Refuses a set whose own chain holds ABOVE: re-pointing ABOVE onto it would make a loop. */
static int check_no_loop(const struct vs_image *layer, const char *set, const char *above,
                         struct vs_err *err) {
  for (const struct vs_image *i = layer; i; i = vs_image_backing(i)) {
    if (vs_ps_same_file(vs_image_path(i), above))
      return vs_err_set(err, ELOOP,
                        "%s: the set's own chain holds %s: re-pointing it onto the set would make "
                        "a loop: not changed",
                        set, above);
  }
  return 0;
}

/* Re-points ABOVE onto SET_REAL: qemu-img rewrites only its header (-u). */
static int rebase(const char *above, const char *set_real, struct vs_err *err) {
  char *argv[] = {"qemu-img", "rebase",         "-u",          "-f", "qcow2", "-F", "qcow2",
                  "-b",       (char *)set_real, (char *)above, NULL};
  pid_t pid;
  int status = 0;
  vs_reset_sigchld(); /* under collectd: the exit status is needed */
  if (posix_spawnp(&pid, "qemu-img", NULL, NULL, argv, environ) != 0 ||
      waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return vs_err_set(err, EIO, "%s: qemu-img rebase -u failed (status %d): not changed", above,
                      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return 0;
}

int vs_patchset_apply_image(const char *top, const char *set, json_t **report, struct vs_err *err) {
  *report = NULL;
  _cleanup_(json_decrefp) json_t *m = vs_ps_manifest_load(set, err);
  if (!m) return -1;
  const char *want = vs_ps_manifest_identity(m), *base_path = vs_ps_manifest_base_path(m);
  _cleanup_(vs_freep) char *set_real = realpath(set, NULL);
  if (!set_real) return vs_err_set(err, errno, "%s: %s", set, strerror(errno));
  if (check_top(top, set, err) < 0) return -1;
  _cleanup_(vs_image_closep) struct vs_image *chain =
      vs_ps_open_chain(top, top, set, base_path ? base_path : set, err);
  if (!chain) return -1;
  const struct vs_image *on_base = find_on_base(chain, top, set, set_real, m, err);
  if (!on_base) return -1;
  _cleanup_(vs_freep) char *above = image_to_repoint(on_base, err);
  if (!above) return -1;
  _cleanup_(vs_image_closep) struct vs_image *layer = vs_ps_open_layer(set, base_path, want, err);
  if (!layer || check_no_loop(layer, set, above, err) < 0) return -1;
  uint64_t set_clusters = 0, shadowed = 0;
  _cleanup_(json_decrefp) json_t *ranges =
      vs_ps_coverage(chain, on_base, layer, &set_clusters, &shadowed);
  /* qemu-img opens the images itself: ours are closed first. */
  vs_image_close(vs_steal(&chain));
  vs_image_close(vs_steal(&layer));
  if (rebase(above, set_real, err) < 0) return -1;
  *report = json_pack("{sssssIsIsO}", "image", above, "set", set_real, "set_clusters",
                      (json_int_t)set_clusters, "shadowed", (json_int_t)shadowed, "shadowed_ranges",
                      ranges);
  return 0;
}

/* ------------------------------------------------------------ a libvirt domain, any state */

int vs_ps_disks_of(const char *xml, const char *what, struct vs_ps_disks *d, struct vs_err *err) {
  _cleanup_(vs_freep) char *skipped = NULL;
  return vs_virt_xml_disks(xml, what, &d->v, &d->n, &skipped, err);
}

void vs_ps_disks_clear(struct vs_ps_disks *d) {
  vs_disks_free(d->v, d->n);
}

/* A stopped domain D: the disk whose chain sits on the set's base is re-pointed. */
static int apply_stopped(const struct vs_domain *d, const char *set, json_t **report,
                         struct vs_err *err) {
  _cleanup_(vs_ps_disks_clear) struct vs_ps_disks dk = {0};
  if (vs_ps_disks_of(d->xml, d->name, &dk, err) < 0) return -1;
  _cleanup_(vs_buf_free) struct vs_buf why = {0};
  for (size_t k = 0; k < dk.n; k++) {
    struct vs_err e = {0};
    if (vs_patchset_apply_image(dk.v[k].path, set, report, &e) == 0) return 0;
    vs_buf_addf(&why, "%s%s: %s", why.len ? "; " : "", dk.v[k].target, vs_err_msg(&e));
    vs_err_clear(&e);
  }
  return vs_err_set(err, EINVAL, "%s: no disk took the set (%s)", d->name,
                    why.len ? why.data : "no file-backed disks");
}

int vs_patchset_apply_domain(struct vs_virt *v, const char *domain, const char *node,
                             const char *set, bool copy, int timeout_s, json_t **report,
                             struct vs_err *err) {
  *report = NULL;
  struct vs_domain *doms = NULL;
  size_t nd = 0;
  if (vs_virt_domains(v, &doms, &nd, err) < 0) return -1;
  struct vs_domain *d = NULL;
  for (size_t i = 0; i < nd && !d; i++)
    if (strcmp(doms[i].name, domain) == 0 || strcmp(doms[i].uuid, domain) == 0) d = &doms[i];
  int rc = -1;
  if (!d)
    vs_err_set(err, ENOENT, "no domain %s", domain);
  else if (d->active)
    rc = copy ? vs_patchset_apply_copy(v, d->uuid, d->xml, set, timeout_s, report, err)
              : vs_patchset_apply_libvirt(v, d->uuid, node, set, report, err);
  else
    rc = apply_stopped(d, set, report, err);
  if (rc == 0) {
    json_object_set_new(*report, "domain", json_string(d->name));
    json_object_set_new(*report, "running", json_boolean(d->active));
  }
  vs_domains_free(doms, nd);
  return rc;
}
