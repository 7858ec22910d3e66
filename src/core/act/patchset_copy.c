#include "patchset_int.h"

#include "layer.h"
#include "virt.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* DIR/NAME.SETNAME.qcow2 beside TOP ("vm.qcow2" and "fix.qcow2": "vm.fix.qcow2"). */
static char *copy_dest(const char *top, const char *set) {
  _cleanup_(vs_freep) char *t = vs_xstrdup(top);
  _cleanup_(vs_freep) char *s = vs_xstrdup(set);
  const char *tb = strrchr(t, '/') ? strrchr(t, '/') + 1 : t, *sb = basename(s);
  size_t tl = strlen(tb), sl = strlen(sb);
  if (tl > 6 && strcmp(tb + tl - 6, ".qcow2") == 0) tl -= 6;
  if (sl > 6 && strcmp(sb + sl - 6, ".qcow2") == 0) sl -= 6;
  return vs_xasprintf("%.*s%.*s.%.*s.qcow2", (int)(tb - t), t, (int)tl, tb, (int)sl, sb);
}

/* The disk the copy replaces the top image of: a shallow copy replaces only that. */
struct copy_disk {
  const struct vs_disk *disk;
  uint64_t size;
  unsigned bits;
};

/* Refuses disk K (of DOMAIN) whose chain below the top, from BELOW down, holds the set SET
 * already or has the image on the set's base (identity WANT) deeper than the top. */
static int check_below_top(const struct vs_image *below, const char *domain,
                           const struct vs_disk *k, const char *set, const char *set_real,
                           const char *want, struct vs_err *err) {
  for (const struct vs_image *b = below; b; b = vs_image_backing(b)) {
    if (vs_ps_same_file(vs_image_path(b), set_real))
      return vs_err_set(err, EEXIST, "%s: disk %s: the patch set %s is already in its chain",
                        domain, k->target, set);
    char bid[65] = {0};
    if (vs_image_backing(b) &&
        vs_image_identity((struct vs_image *)vs_image_backing(b), bid, NULL) == 0 &&
        strcmp(bid, want) == 0)
      return vs_err_set(err, EINVAL,
                        "%s: disk %s: the image on the set's base is %s, below the top image; "
                        "--method copy replaces only the top: use the default method",
                        domain, k->target, vs_image_path(b));
  }
  return 0;
}

/* Whether disk K's top image sits on the base of SET (manifest M), filling C; -1 when K
 * cannot take the set by copy. */
static int is_copy_disk(const struct vs_disk *k, const char *domain, const char *set,
                        const char *set_real, json_t *m, struct copy_disk *c, struct vs_err *err) {
  const char *want = vs_ps_manifest_identity(m), *base_path = vs_ps_manifest_base_path(m);
  if (vs_ps_same_file(k->path, set_real))
    return vs_err_set(err, EINVAL, "%s: disk %s runs on %s itself, not on an overlay: not changed",
                      domain, k->target, set);
  _cleanup_(vs_image_closep) struct vs_image *chain =
      vs_ps_open_chain(k->path, k->path, set, base_path ? base_path : set, NULL);
  const struct vs_image *below = chain ? vs_image_backing(chain) : NULL;
  char id[65] = {0};
  if (!below || vs_image_identity((struct vs_image *)below, id, NULL) < 0 || strcmp(id, want) != 0)
    return check_below_top(below, domain, k, set, set_real, want, err);
  c->disk = k;
  c->size = vs_image_size(chain);
  for (c->bits = 9; c->bits < 21 && (1ULL << c->bits) < vs_image_cluster_size(chain);)
    c->bits++;
  return 1;
}

/* The disk of DISKS[0..ND) whose top image sits on the set's base. */
static int find_copy_disk(const struct vs_disk *disks, size_t nd, const char *domain,
                          const char *set, const char *set_real, json_t *m, struct copy_disk *c,
                          struct vs_err *err) {
  for (size_t i = 0; i < nd; i++) {
    int r = is_copy_disk(&disks[i], domain, set, set_real, m, c, err);
    if (r != 0) return r < 0 ? -1 : 0;
  }
  return vs_err_set(err, ENOENT,
                    "%s: no disk's top image sits on the set's base (identity %.16s...)", domain,
                    vs_ps_manifest_identity(m));
}

/* Writes DEST, the disk's new top image: empty, on the set (SET_REAL); the copy fills it with
 * what the guest wrote. */
static int create_top(const char *domain, const char *dest, const struct copy_disk *c,
                      const char *set_real, struct vs_err *err) {
  struct stat dst;
  if (lstat(dest, &dst) == 0) /* a dangling symlink too: the new top would replace it */
    return vs_err_set(err, EEXIST, "%s: %s exists already (the set applied before?): not changed",
                      domain, dest);
  struct vs_layer *l = vs_layer_create(dest, c->size, c->bits, set_real, "qcow2", err);
  return l ? vs_layer_finish(l, err) : -1;
}

int vs_patchset_apply_copy(struct vs_virt *v, const char *domain, const char *xml, const char *set,
                           int timeout_s, json_t **report, struct vs_err *err) {
  *report = NULL;
  _cleanup_(json_decrefp) json_t *m = vs_ps_manifest_load(set, err);
  if (!m) return -1;
  const char *want = vs_ps_manifest_identity(m), *base_path = vs_ps_manifest_base_path(m);
  _cleanup_(vs_freep) char *set_real = realpath(set, NULL);
  if (!set_real) return vs_err_set(err, errno, "%s: %s", set, strerror(errno));
  _cleanup_(vs_ps_disks_clear) struct vs_ps_disks dk = {0};
  if (vs_ps_disks_of(xml, domain, &dk, err) < 0) return -1;
  _cleanup_(vs_image_closep) struct vs_image *layer = vs_ps_open_layer(set, base_path, want, err);
  struct copy_disk c = {0};
  if (!layer || find_copy_disk(dk.v, dk.n, domain, set, set_real, m, &c, err) < 0) return -1;
  _cleanup_(vs_freep) char *dest = copy_dest(c.disk->path, set_real);
  if (create_top(domain, dest, &c, set_real, err) < 0) return -1;
  double pivot = 0;
  if (vs_virt_block_copy_pivot(v, domain, c.disk->target, dest, timeout_s, &pivot, err) < 0) {
    unlink(dest);
    return -1;
  }
  /* QEMU has closed the old top: what the guest wrote there is on disk, and all in it. */
  struct vs_err cov_err = {0};
  _cleanup_(vs_image_closep) struct vs_image *top =
      vs_ps_open_chain(c.disk->path, c.disk->path, set, base_path ? base_path : set, &cov_err);
  *report = json_pack("{sssssssssssf}", "method", "copy", "disk", c.disk->target, "image", dest,
                      "previous_image", c.disk->path, "set", set_real, "pivot_seconds", pivot);
  vs_ps_report_coverage(*report, top, layer, &cov_err);
  return 0;
}
