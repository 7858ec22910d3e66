#include "patchset.h"

#include "layer.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds [OFF, OFF+LEN) to the JSON list of ranges, merging it with the last one when adjacent. */
static void add_range(json_t *ranges, uint64_t off, uint64_t len) {
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

static bool is_zero(const uint8_t *p, size_t n) {
  return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static bool same_file(const char *a, const char *b) {
  char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
  bool same = ra && rb && strcmp(ra, rb) == 0;
  free(ra);
  free(rb);
  return same;
}

int vs_patchset_make(const char *base, const char *patched, const char *out, unsigned cluster_bits,
                     struct vs_patchset_stats *st, struct vs_err *err) {
  struct vs_patchset_stats local;
  if (!st) st = &local;
  *st = (struct vs_patchset_stats){0};
  double t0 = vs_now_monotonic();
  _cleanup_(vs_image_closep) struct vs_image *b = vs_image_open(base, NULL, err);
  if (!b) return -1;
  /* PATCHED may be an overlay whose backing file is BASE, in BASE's directory. */
  char *pdir_copy = vs_xstrdup(patched), *bdir_copy = vs_xstrdup(base);
  const char *dirs[2] = {dirname(pdir_copy), dirname(bdir_copy)};
  struct vs_image_opts po = {.backing_dirs = dirs, .n_backing_dirs = 2};
  _cleanup_(vs_image_closep) struct vs_image *p = vs_image_open(patched, &po, err);
  free(pdir_copy);
  free(bdir_copy);
  if (!p) return -1;
  if (vs_image_size(b) != vs_image_size(p))
    return vs_err_set(err, EINVAL,
                      "%s is %" PRIu64 " bytes and %s %" PRIu64
                      "; a patch set needs disks of one size",
                      base, vs_image_size(b), patched, vs_image_size(p));
  unsigned bits = cluster_bits;
  if (!bits) {
    uint64_t pcs = vs_image_cluster_size(p);
    bits = 16;
    while (pcs && (1ULL << bits) < pcs && bits < 21)
      bits++;
    while (pcs && (1ULL << bits) > pcs && bits > 9)
      bits--;
  }
  uint64_t cs = 1ULL << bits, size = vs_image_size(b);
  const struct vs_image *pb = vs_image_backing(p);
  bool overlay = pb && vs_image_cluster_size(p) == cs && same_file(vs_image_path(pb), base);
  /* The layer names its base as the user did, relative to the layer when it can. */
  char *base_real = realpath(base, NULL), *out_dir = vs_xstrdup(out);
  char *od = realpath(dirname(out_dir), NULL);
  const char *backing = base_real ? base_real : base;
  if (base_real && od && strncmp(base_real, od, strlen(od)) == 0 && base_real[strlen(od)] == '/')
    backing = base_real + strlen(od) + 1;
  struct vs_layer *l = vs_layer_create(out, size, bits, backing, vs_image_format(b), err);
  json_t *changed = json_array(), *zeroed = json_array();
  /* Both images are read in runs of clusters (1 MiB or one cluster), front to back, so the
   * kernel's read-ahead sees two sequential streams rather than alternating small reads. */
  uint64_t run = cs >= (1u << 20) ? cs : (1u << 20);
  uint8_t *bb = vs_xmalloc(run), *pp = vs_xmalloc(run), *zc = vs_xcalloc(1, cs);
  vs_image_advise_sequential(b);
  vs_image_advise_sequential(p);
  int rc = l ? 0 : -1;
  for (uint64_t start = 0; rc == 0 && start < size; start += run) {
    uint64_t len = size - start < run ? size - start : run;
    bool loaded = false; /* this run read from both images */
    for (uint64_t off = start; rc == 0 && off < start + len; off += cs) {
      size_t n = (size_t)(size - off < cs ? size - off : cs);
      st->clusters++;
      uint8_t *pc = pp + (off - start), *bc = bb + (off - start);
      bool differs;
      if (overlay) {
        enum vs_cluster_state s;
        if ((rc = vs_image_cluster_state(p, off, &s, err)) < 0) break;
        if (s == VS_CLUSTER_UNALLOCATED) continue;
        st->taken_from_overlay++;
        if ((rc = vs_image_pread(p, pc, n, off, err)) < 0) break;
        st->bytes_read += n;
        differs = true;
      } else {
        bool hb = vs_image_cluster_is_hole(b, off, err), hp = vs_image_cluster_is_hole(p, off, err);
        if (hb && hp) {
          st->skipped_holes++;
          continue;
        }
        if (!loaded) {
          if ((rc = vs_image_pread(b, bb, (size_t)len, start, err)) < 0 ||
              (rc = vs_image_pread(p, pp, (size_t)len, start, err)) < 0)
            break;
          st->bytes_read += 2 * len;
          loaded = true;
        }
        differs = memcmp(bc, pc, n) != 0;
      }
      if (!differs) continue;
      uint8_t *data = pc;
      if (n < cs) { /* the disk's last, partial cluster: padded with zeros */
        memcpy(zc, pc, n);
        memset(zc + n, 0, cs - n);
        data = zc;
      }
      if (is_zero(data, n)) {
        rc = vs_layer_add_zero(l, off, err);
        add_range(zeroed, off, n);
        st->zeroed++;
      } else {
        rc = vs_layer_add_data(l, off, data, err);
        add_range(changed, off, n);
        st->changed++;
      }
      if (n < cs) memset(zc, 0, cs);
    }
  }
  free(bb);
  free(pp);
  free(zc);
  char id[65] = {0};
  if (rc == 0) rc = vs_image_identity(b, id, err);
  if (rc == 0) {
    rc = vs_layer_finish(l, err);
    l = NULL;
  }
  if (l) vs_layer_abort(l);
  if (rc == 0) {
    json_t *m = json_pack("{s{sssIss}sIsOsOsb}", "base", "path", base_real ? base_real : base,
                          "size", (json_int_t)size, "identity", id, "cluster_size", (json_int_t)cs,
                          "changed", changed, "zeroed", zeroed, "patched_is_overlay", overlay);
    char *mpath = vs_xasprintf("%s.json", out), *tmp = vs_xasprintf("%s.json.tmp", out);
    if (json_dump_file(m, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0 || rename(tmp, mpath) < 0)
      rc = vs_err_set(err, errno ? errno : EIO, "%s: cannot write the manifest", mpath);
    free(mpath);
    free(tmp);
    json_decref(m);
  }
  json_decref(changed);
  json_decref(zeroed);
  free(base_real);
  free(od);
  free(out_dir);
  st->cluster_bits = bits;
  st->seconds = vs_now_monotonic() - t0;
  return rc;
}
