#include "patchset_int.h"

#include "crypto.h"
#include "layer.h"
#include "source_image.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------- manifests */

void vs_ps_add_range(json_t *ranges, uint64_t off, uint64_t len) {
  size_t n = json_array_size(ranges);
  json_t *last = n ? json_array_get(ranges, n - 1) : NULL;
  if (last) {
    uint64_t lo = (uint64_t)json_integer_value(json_array_get(last, 0));
    uint64_t ll = (uint64_t)json_integer_value(json_array_get(last, 1));
    if (lo + ll == off) {
      json_array_set_new(last, 1, json_integer((json_int_t)(ll + len)));
      return;
    }
  }
  json_array_append_new(ranges, json_pack("[II]", (json_int_t)off, (json_int_t)len));
}

bool vs_ps_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

const char *vs_ps_manifest_identity(json_t *m) {
  return json_string_value(json_object_get(json_object_get(m, "base"), "identity"));
}

const char *vs_ps_manifest_base_path(json_t *m) {
  return json_string_value(json_object_get(json_object_get(m, "base"), "path"));
}

json_t *vs_ps_manifest_load(const char *set, struct vs_err *err) {
  /* Every apply compares images' identities (SHA-256), some without asking why one failed:
   * a digest library that cannot be opened is said here, not taken for another base. */
  if (vs_crypto_load(err) < 0) return NULL;
  struct stat st;
  if (stat(set, &st) < 0) {
    vs_err_set(err, errno, "%s: %s", set, strerror(errno));
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    vs_err_set(err, EINVAL,
               "%s is not a patch set (not a file): give the SET.qcow2 vmscope patchset make "
               "wrote",
               set);
    return NULL;
  }
  _cleanup_(vs_freep) char *path = vs_xasprintf("%s.json", set);
  json_error_t je;
  _cleanup_(json_decrefp) json_t *m = json_load_file(path, 0, &je);
  if (!m && access(path, F_OK) < 0)
    vs_err_set(err, EINVAL,
               "%s is not a patch set: it has no manifest %s beside it (give the SET.qcow2 "
               "vmscope patchset make wrote, with its .json)",
               set, path);
  else if (!m || !vs_ps_manifest_identity(m))
    vs_err_set(err, EINVAL, "%s: not a patch set manifest (%s)", path,
               m ? "no base identity" : je.text);
  return m && vs_ps_manifest_identity(m) ? vs_steal(&m) : NULL;
}

bool vs_ps_manifest_same(json_t *a, json_t *b) {
  const char *keys[] = {"cluster_size", "changed", "zeroed"};
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
    if (!json_equal(json_object_get(a, keys[i]), json_object_get(b, keys[i]))) return false;
  return json_equal(json_object_get(json_object_get(a, "base"), "identity"),
                    json_object_get(json_object_get(b, "base"), "identity"));
}

/* ------------------------------------------------------------------------------- make */

/* Which files of the patched guest P (its file systems VOLS) the CHANGED and ZEROED ranges
 * belong to, where our ext reader can tell. */
static json_t *changed_files(struct vs_image *p, struct vs_image *b, const struct vs_volume *vols,
                             int n_vols, json_t *changed, json_t *zeroed) {
  size_t nr = json_array_size(changed) + json_array_size(zeroed), k = 0;
  uint64_t *pairs = vs_xcalloc(2 * nr + 2, sizeof(uint64_t));
  json_t *lists[2] = {changed, zeroed}, *r, *files = NULL;
  for (int li = 0; li < 2; li++) {
    size_t i;
    json_array_foreach(lists[li], i, r) {
      pairs[2 * k] = (uint64_t)json_integer_value(json_array_get(r, 0));
      pairs[2 * k++ + 1] = (uint64_t)json_integer_value(json_array_get(r, 1));
    }
  }
  /* Sorted by offset for the lookup: merge the two sorted lists. */
  for (size_t i = 1; i < k; i++)
    for (size_t j = i; j > 0 && pairs[2 * j] < pairs[2 * (j - 1)]; j--) {
      uint64_t a0 = pairs[2 * j], a1 = pairs[2 * j + 1];
      pairs[2 * j] = pairs[2 * (j - 1)];
      pairs[2 * j + 1] = pairs[2 * (j - 1) + 1];
      pairs[2 * (j - 1)] = a0;
      pairs[2 * (j - 1) + 1] = a1;
    }
  if (k) vs_image_files_in_ranges(p, b, vols, n_vols, pairs, k, &files);
  free(pairs);
  return files;
}

/* Opens PATCHED, which may be an overlay whose backing file is BASE, in BASE's directory. */
static struct vs_image *open_patched(const char *patched, const char *base, struct vs_err *err) {
  _cleanup_(vs_freep) char *pdir_copy = vs_xstrdup(patched);
  _cleanup_(vs_freep) char *bdir_copy = vs_xstrdup(base);
  const char *dirs[2] = {dirname(pdir_copy), dirname(bdir_copy)};
  struct vs_image_opts po = {.backing_dirs = dirs, .n_backing_dirs = 2};
  return vs_image_open(patched, &po, err);
}

/* Opens BASE and PATCHED (open_patched). */
static int open_inputs(const char *base, const char *patched, struct vs_image **b,
                       struct vs_image **p, struct vs_err *err) {
  *p = NULL;
  if (!(*b = vs_image_open(base, NULL, err))) return -1;
  if (!(*p = open_patched(patched, base, err))) return -1;
  if (vs_image_size(*b) != vs_image_size(*p))
    return vs_err_set(err, EINVAL,
                      "%s is %" PRIu64 " bytes and %s %" PRIu64
                      ": a patch set needs disks of one size (patch a copy of the base, or "
                      "qemu-img resize the smaller one first); nothing written",
                      base, vs_image_size(*b), patched, vs_image_size(*p));
  return 0;
}

/* The layer's cluster bits: CLUSTER_BITS when given; when PATCHED is an overlay of BASE, its
 * cluster size within 9..21 bits (its clusters are taken as they are); else 64 KiB, or
 * PATCHED's cluster size when smaller. A layer finer than PATCHED holds only what changed (one
 * of 2 MiB clusters held 128 MiB for 64 changed 64 KiB ranges), and a qcow2 chain may mix
 * cluster sizes. */
static unsigned layer_bits(const struct vs_image *p, const char *base, unsigned cluster_bits) {
  if (cluster_bits) return cluster_bits;
  uint64_t pcs = vs_image_cluster_size(p);
  const struct vs_image *pb = vs_image_backing(p);
  bool overlay = pb && vs_ps_same_file(vs_image_path(pb), base);
  unsigned bits = 16;
  while (overlay && pcs && (1ULL << bits) < pcs && bits < 21)
    bits++;
  while (pcs && (1ULL << bits) > pcs && bits > 9)
    bits--;
  return bits;
}

/* The layer names its base as the user did (BASE, or BASE_REAL, its real path), relative to the
 * layer OUT when the base lies in or under OUT's directory. */
static char *layer_backing(const char *base, const char *base_real, const char *out) {
  _cleanup_(vs_freep) char *out_dir = vs_xstrdup(out);
  _cleanup_(vs_freep) char *od = realpath(dirname(out_dir), NULL);
  if (base_real && od && strncmp(base_real, od, strlen(od)) == 0 && base_real[strlen(od)] == '/')
    return vs_xstrdup(base_real + strlen(od) + 1);
  return vs_xstrdup(base_real ? base_real : base);
}

/* What the manifest needs of the images besides what differs, found on a thread of its own, on
 * handles of its own, while the images are compared: the base's identity (opening the digest
 * library and hashing took 2.5 ms of a 14 ms make of a 1 GiB overlay, with libcrypto; crypto.h
 * has Nettle's figures), and the patched image's ext file systems, whose files the changes are
 * looked for in (libblkid opened and the disk probed took 4-6 ms of a cold sparse 1 GiB make,
 * against 55 ms for cat to read both images). */
struct manifest_job {
  struct vs_image *base, *patched;
  char id[65];
  int id_rc;
  struct vs_volume *vols;
  int n_vols;       /* -1: not found */
  char *vols_error; /* why not, once manifest_end has tried again */
  struct vs_err err;
  pthread_t thread;
  bool threaded;
};

static void *manifest_main(void *arg) {
  struct manifest_job *j = arg;
  j->id_rc = vs_image_identity(j->base, j->id, &j->err);
  if (j->patched) {
    struct vs_err ignored = {0}; /* tried again after the compare, which says why (manifest_end) */
    j->n_vols = vs_image_file_volumes(j->patched, &j->vols, &ignored);
    vs_err_clear(&ignored);
  }
  return NULL;
}

/* Starts J on BASE and PATCHED (open_patched), unless BASE is no longer the file
 * B reads (or no thread can be had); the patched image's file systems only when PATCHED is still
 * the file P reads. */
static void manifest_start(struct manifest_job *j, const char *base, const struct vs_image *b,
                           const char *patched, const struct vs_image *p) {
  struct vs_err ignored = {0};
  j->n_vols = -1;
  j->base = vs_image_open(base, NULL, &ignored);
  vs_err_clear(&ignored);
  if (!j->base || !vs_image_same_files(j->base, b)) return;
  j->patched = open_patched(patched, base, &ignored);
  vs_err_clear(&ignored);
  if (j->patched && !vs_image_same_files(j->patched, p)) {
    vs_image_close(j->patched);
    j->patched = NULL;
  }
  j->threaded = pthread_create(&j->thread, NULL, manifest_main, j) == 0;
}

static void manifest_clear(struct manifest_job *j) {
  if (j->threaded) pthread_join(j->thread, NULL);
  j->threaded = false;
  vs_image_close(j->base);
  vs_image_close(j->patched);
  j->base = j->patched = NULL;
  free(j->vols);
  j->vols = NULL;
  free(j->vols_error);
  j->vols_error = NULL;
  vs_err_clear(&j->err);
}

/* B's identity in ID, and P's file systems in J: J's when it found them, else found now (with
 * the identity's error; file systems that cannot be found are none, and a warning says why). */
static int manifest_end(struct manifest_job *j, struct vs_image *b, char id[65], struct vs_image *p,
                        struct vs_err *err) {
  bool found = false;
  if (j->threaded) {
    pthread_join(j->thread, NULL);
    j->threaded = false;
    found = j->id_rc == 0;
  }
  if (j->n_vols < 0) {
    free(j->vols);
    j->vols = NULL;
    struct vs_err verr = {0};
    j->n_vols = vs_image_file_volumes(p, &j->vols, &verr);
    if (j->n_vols < 0) { /* the set is still right; its manifest cannot name the files */
      vs_log(VS_LOG_WARNING, "%s; the patch set's manifest does not say which files changed",
             vs_err_msg(&verr));
      j->vols_error = vs_xstrdup(vs_err_msg(&verr));
    }
    vs_err_clear(&verr);
  }
  if (found) memcpy(id, j->id, sizeof(j->id));
  return found ? 0 : vs_image_identity(b, id, err);
}

/* Writes the manifest of the set D made of B (at BASE_PATH, its identity in J) and P to a new
 * file MF at MPATH, not yet in place. */
static int write_manifest(struct vs_newfile *mf, const char *mpath, struct vs_image *b,
                          struct manifest_job *j, struct vs_image *p, const char *base_path,
                          bool overlay, const struct vs_ps_diff *d, struct vs_err *err) {
  char id[65] = {0};
  if (manifest_end(j, b, id, p, err) < 0) return -1;
  /* Files not looked for (the file systems could not be read) are null, not none. */
  json_t *files =
      j->n_vols < 0 ? json_null() : changed_files(p, b, j->vols, j->n_vols, d->changed, d->zeroed);
  _cleanup_(json_decrefp) json_t *m =
      json_pack("{s{sssIss}sIsOsOsbso}", "base", "path", base_path, "size",
                (json_int_t)vs_image_size(b), "identity", id, "cluster_size",
                (json_int_t)(1ULL << d->st->cluster_bits), "changed", d->changed, "zeroed",
                d->zeroed, "patched_is_overlay", overlay, "files", files ? files : json_array());
  if (m && j->vols_error) json_object_set_new(m, "files_error", json_string(j->vols_error));
  _cleanup_(vs_freep) char *text = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS); /* one write */
  if (!text) return vs_err_set(err, ENOMEM, "%s: cannot encode the manifest", mpath);
  if (vs_newfile_open(mf, mpath, 0644, err) < 0) return -1;
  return vs_newfile_write(mf, text, strlen(text), err);
}

static void diff_clear(struct vs_ps_diff *d) {
  json_decref(d->changed);
  json_decref(d->zeroed);
}

/* Fills layer L with the clusters of P that differ from B's, and writes the manifest beside
 * OUT, complete but not in place. */
static int fill_layer(struct vs_image *b, struct manifest_job *j, struct vs_image *p,
                      const char *base, const char *patched, const char *base_real,
                      struct vs_layer *l, struct vs_patchset_stats *st, struct vs_newfile *mf,
                      const char *mpath, struct vs_err *err) {
  uint64_t cs = 1ULL << st->cluster_bits;
  const struct vs_image *pb = vs_image_backing(p);
  bool overlay = pb && vs_image_cluster_size(p) == cs && vs_ps_same_file(vs_image_path(pb), base);
  _cleanup_(diff_clear) struct vs_ps_diff d = {l, json_array(), json_array(), st};
  int rc;
  if (overlay) {
    rc = vs_ps_take_overlay(p, cs, &d, err);
  } else {
    /* A second pair of handles for the second comparing thread (an image serves one thread):
     * without them, when they cannot be opened, one thread compares. */
    _cleanup_(vs_image_closep) struct vs_image *b2 = NULL;
    _cleanup_(vs_image_closep) struct vs_image *p2 = NULL;
    struct vs_err ignored = {0};
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1 &&
        (open_inputs(base, patched, &b2, &p2, &ignored) < 0 || !vs_image_same_files(b, b2) ||
         !vs_image_same_files(p, p2))) {
      vs_image_closep(&b2);
      vs_image_closep(&p2);
    }
    vs_err_clear(&ignored);
    struct vs_image *const bs[2] = {b, b2}, *const ps[2] = {p, p2};
    rc = vs_ps_compare(bs, ps, cs, &d, err);
  }
  if (rc < 0) return -1;
  vs_layer_writeback(l); /* the data is all there: to the disk while the manifest is made */
  /* The manifest is made in full before the layer is put in place, and put beside it right
   * after: a failure on the way leaves neither. */
  return write_manifest(mf, mpath, b, j, p, base_real ? base_real : base, overlay, &d, err);
}

/* Refuses OUT and its manifest MPATH when either is one of INPUTS' images (or exists, unless
 * FORCE). */
static int check_outputs(const char *out, const char *mpath, const struct vs_image *const inputs[2],
                         bool force, struct vs_err *err) {
  if (vs_layer_check_output(out, NULL, 0, inputs, 2, force, err) < 0 ||
      vs_layer_check_output(mpath, NULL, 0, inputs, 2, force, err) < 0)
    return -1;
  return 0;
}

static int make(const char *base, const char *patched, const char *out, unsigned cluster_bits,
                bool force, struct vs_patchset_stats *st, struct vs_err *err) {
  _cleanup_(vs_image_closep) struct vs_image *b = NULL;
  _cleanup_(vs_image_closep) struct vs_image *p = NULL;
  if (open_inputs(base, patched, &b, &p, err) < 0) return -1;
  /* Neither the set nor its manifest may be an input or an image the inputs read. */
  const struct vs_image *inputs[2] = {b, p};
  _cleanup_(vs_freep) char *mpath = vs_xasprintf("%s.json", out);
  if (check_outputs(out, mpath, inputs, force, err) < 0) return -1;
  st->cluster_bits = layer_bits(p, base, cluster_bits);
  _cleanup_(vs_freep) char *base_real = realpath(base, NULL);
  _cleanup_(vs_freep) char *backing = layer_backing(base, base_real, out);
  _cleanup_(vs_layer_abortp) struct vs_layer *l =
      vs_layer_create(out, vs_image_size(b), st->cluster_bits, backing, vs_image_format(b), err);
  if (!l) return -1;
  _cleanup_(vs_newfile_abandon) struct vs_newfile mf = {.fd = -1};
  _cleanup_(manifest_clear) struct manifest_job job = {0};
  manifest_start(&job, base, b, patched, p);
  if (fill_layer(b, &job, p, base, patched, base_real, l, st, &mf, mpath, err) < 0) return -1;
  /* Again, right before anything is renamed into place: the names may have changed since. */
  if (check_outputs(out, mpath, inputs, force, err) < 0) return -1;
  if (vs_layer_finish(vs_steal(&l), err) < 0) return -1;
  if (vs_newfile_commit(&mf, err) < 0) {
    unlink(out); /* no set without its manifest */
    return vs_err_prefix(err, "%s removed again", out);
  }
  return 0;
}

int vs_patchset_make(const char *base, const char *patched, const char *out, unsigned cluster_bits,
                     bool force, struct vs_patchset_stats *st, struct vs_err *err) {
  struct vs_patchset_stats local;
  if (!st) st = &local;
  *st = (struct vs_patchset_stats){0};
  double t0 = vs_now_monotonic();
  int rc = make(base, patched, out, cluster_bits, force, st, err);
  st->seconds = vs_now_monotonic() - t0;
  return rc;
}

/* ----------------------------------------------------------------------------- status */

int vs_patchset_status(const char *top, const char *const *dirs, size_t n_dirs, json_t **out,
                       struct vs_err *err) {
  *out = NULL;
  if (vs_crypto_load(err) < 0) return -1; /* as vs_ps_manifest_load: not "no layer" */
  char *d = vs_xstrdup(top);
  const char **all = vs_xcalloc(n_dirs + 1, sizeof(char *));
  all[0] = dirname(d);
  for (size_t i = 0; i < n_dirs; i++)
    all[i + 1] = dirs[i];
  struct vs_image_opts o = {.backing_dirs = all, .n_backing_dirs = n_dirs + 1};
  struct vs_image *chain = vs_image_open(top, &o, err);
  free(all);
  free(d);
  if (!chain) return -1;
  if (strcmp(vs_image_format(chain), "qcow2") != 0) {
    vs_err_set(err, EMEDIUMTYPE,
               "%s is not a qcow2 image (it reads as %s): it has no backing chain, so no patch "
               "set; give a disk's top qcow2 image",
               top, vs_image_format(chain));
    vs_image_close(chain);
    return -1;
  }
  json_t *arr = json_array();
  for (const struct vs_image *i = chain; i; i = vs_image_backing(i)) {
    json_t *m = vs_ps_manifest_load(vs_image_path(i), NULL);
    if (!m) continue;
    json_int_t changed = 0;
    size_t k;
    json_t *r;
    json_int_t cs = json_integer_value(json_object_get(m, "cluster_size"));
    json_array_foreach(json_object_get(m, "changed"), k, r) changed +=
        json_integer_value(json_array_get(r, 1));
    json_array_append_new(arr, json_pack("{sssOsI}", "image", vs_image_path(i), "base",
                                         json_object_get(json_object_get(m, "base"), "path"),
                                         "changed_clusters", cs ? (changed + cs - 1) / cs : 0));
    json_decref(m);
  }
  vs_image_close(chain);
  *out = arr;
  return 0;
}
