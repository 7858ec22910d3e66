/* The direct backend of source.h: the file systems on raw and qcow2 images, read through our
 * image reader (ext2/3/4: fs_ext.c, NTFS: fs_ntfs.c, XFS: fs_xfs.c); this file finds the volumes
 * (partitions, and the logical volumes of LVM2 physical volumes: lvm.c), chooses the root and
 * mounts what the guest's fstab says. */
#include "source_image.h"
#include "fs.h"
#include "lvm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_MOUNTS 64

struct mount {
  char *point; /* "/", "/var", ... */
  struct vs_fs fs;
};

struct disk {
  struct vs_image *img;
  struct vs_volume *vols;
  int n_vols;
};

struct image_impl {
  struct disk *disks;
  size_t n_disks;
  struct mount mounts[MAX_MOUNTS];
  size_t n_mounts;
  bool read_xfs;     /* vs_image_opts.read_xfs */
  bool xfs_declined; /* an XFS was passed over for it being unset */
};

/* Why an XFS is not read without read_xfs: the end of ENOTSUP messages. */
#define XFS_DECLINED                                                                               \
  "XFS is left to the appliance: libfsxfs 20201117 is unfit for hostile images (SECURITY.md), "    \
  "so the direct backend reads it only when asked to"

static bool is_readable(struct image_impl *im, const char *fstype) {
  if (vs_fs_xfs_handles(fstype)) {
    if (!im->read_xfs) im->xfs_declined = true;
    return im->read_xfs;
  }
  return vs_fs_ext_handles(fstype) || vs_fs_ntfs_handles(fstype);
}

static int open_fs(struct vs_image *img, const struct vs_volume *v, struct vs_fs *fs,
                   struct vs_err *err) {
  *fs = (struct vs_fs){0};
  if (vs_fs_ext_handles(v->fstype)) return vs_fs_ext_open(img, v, fs, err);
  if (vs_fs_ntfs_handles(v->fstype)) return vs_fs_ntfs_open(img, v, fs, err);
  if (vs_fs_xfs_handles(v->fstype)) return vs_fs_xfs_open(img, v, fs, err);
  char name[160];
  return vs_err_set(err, ENOTSUP, "%s: %s holds %s, which the direct backend cannot read",
                    vs_image_path(img), vs_volume_name(v, name, sizeof(name)),
                    v->fstype[0] ? v->fstype : "nothing known");
}

/* --------------------------------------------------------------------------- tree ops */

/* The mount holding PATH, and PATH relative to it. */
static struct mount *mount_for(struct image_impl *im, const char *path, const char **rel) {
  struct mount *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < im->n_mounts; i++) {
    const char *mp = im->mounts[i].point;
    size_t n = strlen(mp);
    bool match =
        strcmp(mp, "/") == 0 || (strncmp(path, mp, n) == 0 && (path[n] == '\0' || path[n] == '/'));
    if (match && (!best || n > best_len)) {
      best = &im->mounts[i];
      best_len = n;
    }
  }
  *rel = best && strcmp(best->point, "/") != 0 ? path + best_len : path;
  return best;
}

/* The mounted file system holding PATH, with PATH below its root in *REL (no leading '/'). */
static struct vs_fs *fs_for(struct image_impl *im, const char *path, const char **rel,
                            struct vs_err *err) {
  struct mount *m = mount_for(im, path, rel);
  if (!m) {
    vs_err_set(err, ENOENT, "%s: no file system mounted there", path);
    return NULL;
  }
  while (**rel == '/')
    (*rel)++;
  return &m->fs;
}

static int img_lstat(void *impl, const char *path, struct vs_stat *st, struct vs_err *err) {
  const char *rel;
  struct vs_fs *fs = fs_for(impl, path, &rel, err);
  return fs ? fs->ops->lstat(fs->impl, rel, path, st, err) : -1;
}

static int img_readlink(void *impl, const char *path, char **target, struct vs_err *err) {
  const char *rel;
  struct vs_fs *fs = fs_for(impl, path, &rel, err);
  return fs ? fs->ops->readlink(fs->impl, rel, path, target, err) : -1;
}

static int img_read(void *impl, const char *path, size_t max, struct vs_buf *out,
                    struct vs_err *err) {
  const char *rel;
  struct vs_fs *fs = fs_for(impl, path, &rel, err);
  return fs ? fs->ops->read(fs->impl, rel, path, max, out, err) : -1;
}

static int img_list(void *impl, const char *path, size_t max, char ***names, size_t *count,
                    bool *truncated, struct vs_err *err) {
  const char *rel;
  struct vs_fs *fs = fs_for(impl, path, &rel, err);
  return fs ? fs->ops->list(fs->impl, rel, path, max, names, count, truncated, err) : -1;
}

static void img_close(void *impl) {
  struct image_impl *im = impl;
  if (!im) return;
  for (size_t i = 0; i < im->n_mounts; i++) {
    vs_fs_close(&im->mounts[i].fs);
    free(im->mounts[i].point);
  }
  for (size_t i = 0; i < im->n_disks; i++) {
    vs_image_close(im->disks[i].img);
    free(im->disks[i].vols);
  }
  free(im->disks);
  free(im);
}

static uint64_t img_bytes_read(void *impl) {
  struct image_impl *im = impl;
  uint64_t n = 0;
  for (size_t i = 0; i < im->n_disks; i++)
    n += vs_image_bytes_read(im->disks[i].img);
  return n;
}

static const struct vs_source_ops image_ops = {
    .lstat = img_lstat,
    .readlink = img_readlink,
    .read = img_read,
    .list = img_list,
    .close = img_close,
    .bytes_read = img_bytes_read,
};

/* ------------------------------------------------------------------ root and fstab */

static void add_mount(struct image_impl *im, const char *point, struct vs_fs *fs) {
  struct mount *m = &im->mounts[im->n_mounts++];
  m->point = vs_xstrdup(point);
  m->fs = *fs;
  *fs = (struct vs_fs){0};
}

/* Whether SPEC names the logical volume LV ("VG/LV"). */
static bool lv_names(const char *lv, const char *spec) {
  char mapper[2 * 136 + 16] = "/dev/mapper/";
  size_t k = strlen(mapper);
  for (const char *p = lv; *p && k + 3 < sizeof(mapper); p++) {
    if (*p == '-') mapper[k++] = '-';
    mapper[k++] = *p == '/' ? '-' : *p;
  }
  mapper[k] = '\0';
  return strcmp(spec, mapper) == 0 || (strncmp(spec, "/dev/", 5) == 0 && strcmp(spec + 5, lv) == 0);
}

/* The volume an fstab device spec names: UUID=, LABEL=, PARTUUID=, /dev/disk/by-*, or a
 * device name (/dev/vda2, /dev/sdb, /dev/nvme0n1p3, /dev/xvda1), disks in the order given. */
static bool find_volume(struct image_impl *im, const char *spec, size_t *disk, int *vol) {
  static const struct {
    const char *prefix;
    int field; /* 0 uuid, 1 label, 2 partuuid */
  } tags[] = {{"UUID=", 0},
              {"LABEL=", 1},
              {"PARTUUID=", 2},
              {"/dev/disk/by-uuid/", 0},
              {"/dev/disk/by-label/", 1},
              {"/dev/disk/by-partuuid/", 2}};
  for (size_t t = 0; t < sizeof(tags) / sizeof(tags[0]); t++) {
    size_t n = strlen(tags[t].prefix);
    if (strncmp(spec, tags[t].prefix, n) != 0) continue;
    const char *want = spec + n;
    for (size_t d = 0; d < im->n_disks; d++)
      for (int i = 0; i < im->disks[d].n_vols; i++) {
        const struct vs_volume *v = &im->disks[d].vols[i];
        const char *have = tags[t].field == 0   ? v->uuid
                           : tags[t].field == 1 ? v->label
                                                : v->partuuid;
        if (*have && (tags[t].field == 1 ? strcmp(have, want) : strcasecmp(have, want)) == 0) {
          *disk = d;
          *vol = i;
          return true;
        }
      }
    return false;
  }
  /* Logical volumes: /dev/VG/LV and /dev/mapper/VG-LV (a '-' in either name doubled). */
  for (size_t d = 0; d < im->n_disks; d++)
    for (int i = 0; i < im->disks[d].n_vols; i++) {
      const char *lv = im->disks[d].vols[i].lv;
      if (lv[0] && lv_names(lv, spec)) {
        *disk = d;
        *vol = i;
        return true;
      }
    }
  /* Device names: a letter (or nvme number) picks the disk, a trailing number the partition. */
  const char *p = NULL;
  size_t d = 0;
  int part = 0;
  char letter;
  unsigned nvme;
  int used = 0;
  if (sscanf(spec, "/dev/%*[svx]d%c%n", &letter, &used) == 1 && used > 0) {
    if (strncmp(spec, "/dev/xvd", 8) != 0 && strncmp(spec, "/dev/sd", 7) != 0 &&
        strncmp(spec, "/dev/vd", 7) != 0)
      return false;
    d = (size_t)(letter - 'a');
    p = spec + used;
  } else if (sscanf(spec, "/dev/nvme0n%u%n", &nvme, &used) == 1 && used > 0) {
    d = nvme ? nvme - 1 : 0;
    p = spec + used;
    if (*p == 'p') p++;
  } else {
    return false;
  }
  if (*p) part = atoi(p);
  if (d >= im->n_disks) return false;
  for (int i = 0; i < im->disks[d].n_vols; i++)
    if (im->disks[d].vols[i].number == part) {
      *disk = d;
      *vol = i;
      return true;
    }
  return false;
}

static int mount_fstab(struct vs_source *src, struct image_impl *im, struct vs_err *err) {
  struct vs_buf b = {0};
  struct vs_err e = {0};
  if (vs_source_read(src, "/etc/fstab", 1u << 20, &b, &e) < 0) {
    if (e.code != ENOENT) vs_source_add_note(src, "/etc/fstab", "%s", vs_err_msg(&e));
    vs_err_clear(&e);
    vs_buf_free(&b);
    return 0;
  }
  vs_buf_add(&b, "", 0);
  int rc = 0;
  char *save = NULL;
  for (char *line = strtok_r(b.data, "\n", &save); line && rc == 0;
       line = strtok_r(NULL, "\n", &save)) {
    char spec[512], point[512], type[64];
    char *s = vs_trim(line);
    if (*s == '#' || sscanf(s, "%511s %511s %63s", spec, point, type) != 3) continue;
    if (point[0] != '/' || strcmp(point, "/") == 0 || strcmp(type, "swap") == 0) continue;
    /* The file systems the guest's own files live on; elsewhere a miss is only noted. */
    bool needed = strncmp(point, "/etc", 4) == 0 || strncmp(point, "/usr", 4) == 0 ||
                  strncmp(point, "/var", 4) == 0 || strncmp(point, "/lib", 4) == 0;
    size_t d;
    int v;
    if (!find_volume(im, spec, &d, &v)) {
      if (strcmp(type, "tmpfs") == 0 || strcmp(type, "proc") == 0 || strcmp(type, "sysfs") == 0 ||
          strcmp(type, "devpts") == 0 || strcmp(type, "nfs") == 0 || strcmp(type, "nfs4") == 0 ||
          strcmp(type, "cifs") == 0 || strcmp(type, "none") == 0)
        continue;
      vs_source_add_note(src, "/etc/fstab", "%s on %s: no such device or file system on the disks",
                         spec, point);
      continue;
    }
    struct vs_volume *vol = &im->disks[d].vols[v];
    if (!is_readable(im, vol->fstype)) {
      bool is_xfs = vs_fs_xfs_handles(vol->fstype);
      const char *what = vol->fstype[0] ? vol->fstype : "an unknown file system";
      if (needed)
        rc =
            vs_err_set(err, ENOTSUP, "%s holds %s on %s, %s", vs_image_path(im->disks[d].img),
                       point, what, is_xfs ? XFS_DECLINED : "which the direct backend cannot read");
      else
        vs_source_add_note(src, point, "on %s, %s", what,
                           is_xfs ? XFS_DECLINED : "which the direct backend cannot read");
      continue;
    }
    if (im->n_mounts == MAX_MOUNTS) {
      vs_source_add_note(src, point, "more than %d mounts; not mounted", MAX_MOUNTS);
      continue;
    }
    struct vs_fs fs;
    if (open_fs(im->disks[d].img, vol, &fs, &e) < 0) {
      if (needed)
        rc = vs_err_set(err, e.code, "%s", vs_err_msg(&e));
      else
        vs_source_add_note(src, point, "%s", vs_err_msg(&e));
      vs_err_clear(&e);
      continue;
    }
    add_mount(im, point, &fs);
  }
  vs_buf_free(&b);
  return rc;
}

/* Whether FS holds a Linux root (/etc with os-release or fstab) or a Windows one
 * (Windows/System32/config, found case-insensitively on NTFS). */
static bool holds_linux_root(struct vs_fs *fs) {
  struct vs_err e = {0};
  struct vs_stat st;
  bool yes = fs->ops->lstat(fs->impl, "etc", "/etc", &st, &e) == 0 && st.type == VS_FT_DIR &&
             (fs->ops->lstat(fs->impl, "etc/os-release", "/etc/os-release", &st, &e) == 0 ||
              fs->ops->lstat(fs->impl, "etc/fstab", "/etc/fstab", &st, &e) == 0);
  vs_err_clear(&e);
  return yes;
}

static bool holds_windows_root(struct vs_fs *fs) {
  struct vs_err e = {0};
  struct vs_stat st;
  bool yes = fs->ops->lstat(fs->impl, "Windows/System32/config", "/Windows/System32/config", &st,
                            &e) == 0 &&
             st.type == VS_FT_DIR;
  vs_err_clear(&e);
  return yes;
}

static struct vs_source *new_source(struct image_impl *im, const char *const *paths,
                                    size_t n_paths) {
  char *path =
      n_paths > 1 ? vs_xasprintf("%s (+%zu disks)", paths[0], n_paths - 1) : vs_xstrdup(paths[0]);
  struct vs_source *src = vs_source_new(&image_ops, im, "image", "direct", path);
  free(path);
  if (im->mounts[0].fs.note) vs_source_add_note(src, "/", "%s", im->mounts[0].fs.note);
  return src;
}

struct vs_source *vs_source_open_image(const char *const *paths, size_t n_paths,
                                       const struct vs_image_opts *opts, struct vs_err *err) {
  struct image_impl *im = vs_xcalloc(1, sizeof(*im));
  im->read_xfs = opts && opts->read_xfs;
  im->disks = vs_xcalloc(n_paths ? n_paths : 1, sizeof(struct disk));
  struct vs_buf found = {0};
  struct vs_fs windows = {0}; /* the first NTFS volume holding Windows, kept open */
  for (size_t i = 0; i < n_paths; i++) {
    struct disk *d = &im->disks[im->n_disks];
    struct vs_image_opts one = opts ? *opts : (struct vs_image_opts){0};
    if (opts && opts->formats && opts->formats[i]) one.format = opts->formats[i];
    d->img = vs_image_open(paths[i], &one, err);
    if (!d->img) goto fail;
    im->n_disks++;
    d->n_vols = vs_image_volumes(d->img, &d->vols, err);
    if (d->n_vols < 0) goto fail;
    for (int v = 0, n = d->n_vols; v < n; v++) {
      if (!vs_lvm_is_pv(&d->vols[v])) continue;
      struct vs_volume pv = d->vols[v]; /* d->vols moves as it grows */
      struct vs_err e = {0};
      if (vs_lvm_volumes(d->img, &pv, &d->vols, &d->n_vols, &e) < 0) {
        vs_log(VS_LOG_WARNING, "%s", vs_err_msg(&e));
        vs_err_clear(&e);
      }
    }
    for (int v = 0; v < d->n_vols; v++)
      if (d->vols[v].lv[0])
        vs_buf_addf(&found, "%s%s on logical volume %s", found.len ? ", " : "",
                    d->vols[v].fstype[0] ? d->vols[v].fstype : "unknown", d->vols[v].lv);
      else
        vs_buf_addf(&found, "%s%s on %s %d", found.len ? ", " : "",
                    d->vols[v].fstype[0] ? d->vols[v].fstype : "unknown",
                    d->vols[v].number ? "partition" : "the whole disk", d->vols[v].number);
  }
  /* The root: the first file system with /etc holding os-release or fstab; failing that, the
   * first NTFS volume holding Windows. */
  bool all_read = true; /* every file system is one we read, and opened */
  for (size_t d = 0; d < im->n_disks; d++) {
    for (int v = 0; v < im->disks[d].n_vols; v++) {
      struct vs_volume *vol = &im->disks[d].vols[v];
      if (!is_readable(im, vol->fstype)) {
        all_read = false;
        continue;
      }
      struct vs_err e = {0};
      struct vs_fs fs;
      if (open_fs(im->disks[d].img, vol, &fs, &e) < 0) {
        all_read = false;
        vs_log(VS_LOG_WARNING, "%s", vs_err_msg(&e));
        vs_err_clear(&e);
        continue;
      }
      if (!holds_linux_root(&fs)) {
        if (!windows.ops && vs_fs_ntfs_handles(vol->fstype) && holds_windows_root(&fs))
          windows = fs;
        else
          vs_fs_close(&fs);
        continue;
      }
      vs_fs_close(&windows);
      add_mount(im, "/", &fs);
      struct vs_source *src = new_source(im, paths, n_paths);
      vs_buf_free(&found);
      if (mount_fstab(src, im, err) < 0) {
        vs_source_free(src);
        return NULL;
      }
      return src;
    }
  }
  if (windows.ops) {
    add_mount(im, "/", &windows);
    vs_buf_free(&found);
    return new_source(im, paths, n_paths);
  }
  /* Every file system was one we read (or there was none): no other backend would find more. */
  if (all_read)
    vs_err_set(err, ENOENT,
               "no operating system found in %s: no /etc/os-release, no package database "
               "(found: %s)",
               n_paths ? paths[0] : "", found.len ? found.data : "no file system");
  else
    vs_err_set(err, ENOTSUP,
               "%s: no ext2/3/4 root file system%s the direct backend can read, and no NTFS "
               "volume holding Windows (found: %s)%s",
               n_paths ? paths[0] : "", im->read_xfs ? " (nor XFS)" : "",
               found.len ? found.data : "no file system",
               im->xfs_declined ? "; " XFS_DECLINED : "");
fail:
  vs_buf_free(&found);
  vs_fs_close(&windows);
  img_close(im);
  return NULL;
}
