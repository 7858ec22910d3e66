#include "patchset.h"

#include "layer.h"
#include "source.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Whether A and B name one file (by device and inode: hard links and symlinks too). */
static bool same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* ------------------------------------------------------------------------------- make */

/* Each image is read by a thread of its own, a run ahead of the comparison, so the two files
 * are read at once (two sequential streams for the disk, two cores for the page-cache copies)
 * while the main thread compares and writes the layer. */
#define RUN_BYTES (4u << 20)

struct run_slot {
  uint8_t *data;      /* the buffer runs are read into */
  const uint8_t *run; /* the run: DATA, or the file's pages in place */
  bool *hole;         /* per cluster of the run: reads as zeros with nothing stored; not read */
};

struct run_reader {
  struct vs_image *img;
  uint64_t size, cs, run;
  struct run_slot slot[2];
  sem_t full[2], empty[2];
  atomic_bool stop;
  int rc;
  struct vs_err err;
  uint64_t bytes_read;
  pthread_t thread;
};

static void *run_reader_main(void *arg) {
  struct run_reader *r = arg;
  for (uint64_t start = 0, k = 0; start < r->size; start += r->run, k++) {
    struct run_slot *s = &r->slot[k % 2];
    sem_wait(&r->empty[k % 2]);
    if (atomic_load(&r->stop)) break;
    uint64_t len = r->size - start < r->run ? r->size - start : r->run;
    uint64_t nc = (len + r->cs - 1) / r->cs;
    bool any_hole = false;
    for (uint64_t i = 0; i < nc; i++)
      any_hole |= s->hole[i] = vs_image_cluster_is_hole(r->img, start + i * r->cs, NULL);
    /* In place when the file holds the run in one piece: its pages are faulted in here, in
     * this thread, so that the comparison finds them mapped. */
    s->run = any_hole ? NULL : vs_image_map(r->img, start, (size_t)len);
    if (s->run) {
      long page = sysconf(_SC_PAGESIZE);
      uintptr_t a = (uintptr_t)s->run & ~(uintptr_t)(page - 1);
      madvise((void *)a, (size_t)len + ((uintptr_t)s->run - a), MADV_POPULATE_READ);
      r->bytes_read += len;
      nc = 0; /* nothing to read */
    } else {
      s->run = s->data;
    }
    for (uint64_t i = 0; r->rc == 0 && i < nc;) {
      if (s->hole[i]) {
        i++;
        continue;
      }
      uint64_t j = i + 1;
      while (j < nc && !s->hole[j])
        j++;
      uint64_t off = start + i * r->cs,
               end = start + j * r->cs < start + len ? start + j * r->cs : start + len;
      r->rc = vs_image_pread(r->img, s->data + i * r->cs, (size_t)(end - off), off, &r->err);
      r->bytes_read += end - off;
      i = j;
    }
    sem_post(&r->full[k % 2]);
    if (r->rc < 0) break;
  }
  return NULL;
}

static int run_reader_start(struct run_reader *r, struct vs_image *img, uint64_t cs,
                            struct vs_err *err) {
  *r = (struct run_reader){.img = img, .size = vs_image_size(img), .cs = cs, .run = RUN_BYTES};
  if (r->run < cs) r->run = cs;
  for (int i = 0; i < 2; i++) {
    r->slot[i].data = vs_xmalloc(r->run);
    r->slot[i].hole = vs_xcalloc(r->run / cs, sizeof(bool));
    sem_init(&r->full[i], 0, 0);
    sem_init(&r->empty[i], 0, 1);
  }
  atomic_init(&r->stop, false);
  vs_image_advise_sequential(img);
  int e = pthread_create(&r->thread, NULL, run_reader_main, r);
  if (e) {
    r->thread = 0;
    return vs_err_set(err, e, "%s: cannot start a reader thread: %s", vs_image_path(img),
                      strerror(e));
  }
  return 0;
}

/* Stops R's thread (it may be waiting for a free slot) and frees what it holds. */
static void run_reader_stop(struct run_reader *r) {
  if (r->thread) {
    atomic_store(&r->stop, true);
    sem_post(&r->empty[0]);
    sem_post(&r->empty[1]);
    pthread_join(r->thread, NULL);
  }
  for (int i = 0; i < 2; i++) {
    free(r->slot[i].data);
    free(r->slot[i].hole);
    sem_destroy(&r->full[i]);
    sem_destroy(&r->empty[i]);
  }
  vs_err_clear(&r->err);
}

/* Adds the cluster at OFF (N bytes of the disk; DATA, padded to a cluster) to the layer. */
static int add_changed(struct vs_layer *l, uint64_t off, const uint8_t *data, size_t n, uint64_t cs,
                       uint8_t *pad, json_t *changed, json_t *zeroed, struct vs_patchset_stats *st,
                       struct vs_err *err) {
  if (n < cs) { /* the disk's last, partial cluster: padded with zeros */
    memcpy(pad, data, n);
    memset(pad + n, 0, cs - n);
    data = pad;
  }
  if (is_zero(data, n)) {
    add_range(zeroed, off, n);
    st->zeroed++;
    return vs_layer_add_zero(l, off, err);
  }
  add_range(changed, off, n);
  st->changed++;
  return vs_layer_add_data(l, off, data, err);
}

/* Which clusters of a run differ, found by two threads at once: the main thread takes the
 * first half of the run, a helper the second. (Comparing in place is bound by memory
 * bandwidth, which one core does not use up.) */
struct run_cmp {
  const struct run_slot *sb, *sp;
  const uint8_t *zeros;
  uint64_t start, size, cs, from, to; /* clusters [FROM, TO) of the run at START */
  bool *differs;
};

static void compare_clusters(const struct run_cmp *c) {
  for (uint64_t i = c->from; i < c->to; i++) {
    uint64_t off = c->start + i * c->cs;
    size_t n = (size_t)(c->size - off < c->cs ? c->size - off : c->cs);
    bool hb = c->sb->hole[i], hp = c->sp->hole[i];
    c->differs[i] = !(hb && hp) && memcmp(hb ? c->zeros : c->sb->run + i * c->cs,
                                          hp ? c->zeros : c->sp->run + i * c->cs, n) != 0;
  }
}

struct cmp_helper {
  struct run_cmp work;
  sem_t go, done;
  bool quit;
};

static void *cmp_helper_main(void *arg) {
  struct cmp_helper *h = arg;
  for (;;) {
    sem_wait(&h->go);
    if (h->quit) return NULL;
    compare_clusters(&h->work);
    sem_post(&h->done);
  }
}

/* Compares BASE and PATCHED run by run, each read by its own thread. */
static int compare_images(struct vs_image *b, struct vs_image *p, uint64_t cs, struct vs_layer *l,
                          json_t *changed, json_t *zeroed, struct vs_patchset_stats *st,
                          struct vs_err *err) {
  struct run_reader rb, rp;
  uint8_t *pad = vs_xcalloc(1, cs), *zeros = vs_xcalloc(1, cs);
  int rc = run_reader_start(&rb, b, cs, err);
  if (rc == 0 && (rc = run_reader_start(&rp, p, cs, err)) < 0) run_reader_stop(&rb);
  if (rc < 0) {
    free(pad);
    free(zeros);
    return rc;
  }
  uint64_t size = vs_image_size(b);
  bool *differs = vs_xcalloc(rb.run / cs, sizeof(bool));
  struct cmp_helper h = {0};
  sem_init(&h.go, 0, 0);
  sem_init(&h.done, 0, 0);
  pthread_t ht;
  bool helper = pthread_create(&ht, NULL, cmp_helper_main, &h) == 0;
  for (uint64_t start = 0, k = 0; rc == 0 && start < size; start += rb.run, k++) {
    struct run_slot *sb = &rb.slot[k % 2], *sp = &rp.slot[k % 2];
    sem_wait(&rb.full[k % 2]);
    sem_wait(&rp.full[k % 2]);
    if (rb.rc < 0 || rp.rc < 0) {
      rc = vs_err_set(err, (rb.rc < 0 ? rb.err : rp.err).code, "%s",
                      vs_err_msg(rb.rc < 0 ? &rb.err : &rp.err));
      break;
    }
    uint64_t len = size - start < rb.run ? size - start : rb.run, nc = (len + cs - 1) / cs;
    struct run_cmp c = {sb, sp, zeros, start, size, cs, 0, nc, differs};
    if (helper && nc > 1) {
      c.to = nc / 2;
      h.work = c;
      h.work.from = nc / 2;
      h.work.to = nc;
      sem_post(&h.go);
      compare_clusters(&c);
      sem_wait(&h.done);
    } else {
      compare_clusters(&c);
    }
    for (uint64_t i = 0; rc == 0 && i < nc; i++) {
      uint64_t off = start + i * cs;
      size_t n = (size_t)(size - off < cs ? size - off : cs);
      st->clusters++;
      if (sb->hole[i] && sp->hole[i])
        st->skipped_holes++;
      else if (differs[i])
        rc = add_changed(l, off, sp->hole[i] ? zeros : sp->run + i * cs, n, cs, pad, changed,
                         zeroed, st, err);
    }
    sem_post(&rb.empty[k % 2]);
    sem_post(&rp.empty[k % 2]);
  }
  if (helper) {
    h.quit = true;
    sem_post(&h.go);
    pthread_join(ht, NULL);
  }
  sem_destroy(&h.go);
  sem_destroy(&h.done);
  free(differs);
  st->bytes_read += rb.bytes_read + rp.bytes_read;
  run_reader_stop(&rb);
  run_reader_stop(&rp);
  free(pad);
  free(zeros);
  return rc;
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

/* Which files of the patched guest P the CHANGED and ZEROED ranges belong to, where our ext
 * reader can tell (NULL when it cannot). */
static json_t *changed_files(struct vs_image *p, struct vs_image *b, json_t *changed,
                             json_t *zeroed) {
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
  if (k && vs_image_files_in_ranges(p, b, pairs, k, &files, NULL) < 0) files = NULL;
  free(pairs);
  return files;
}

int vs_patchset_make(const char *base, const char *patched, const char *out, unsigned cluster_bits,
                     bool force, struct vs_patchset_stats *st, struct vs_err *err) {
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
                      ": a patch set needs disks of one size (patch a copy of the base, or "
                      "qemu-img resize the smaller one first); nothing written",
                      base, vs_image_size(b), patched, vs_image_size(p));
  /* Neither the set nor its manifest may be an input or an image the inputs read. */
  const struct vs_image *inputs[2] = {b, p};
  _cleanup_(vs_freep) char *mpath = vs_xasprintf("%s.json", out);
  if (check_outputs(out, mpath, inputs, force, err) < 0) return -1;
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
  int rc = l ? 0 : -1;
  if (rc == 0 && overlay) {
    /* Only PATCHED's own clusters can differ; runs of them are read with one call. */
    uint8_t *buf = vs_xmalloc(RUN_BYTES > cs ? RUN_BYTES : cs), *pad = vs_xcalloc(1, cs);
    uint64_t max_run = (RUN_BYTES > cs ? RUN_BYTES : cs) / cs;
    for (uint64_t off = 0; off < size; off += cs) { /* all of it read at once, from a cold disk */
      enum vs_cluster_state s;
      if (vs_image_cluster_state(p, off, &s, NULL) == 0 && s == VS_CLUSTER_DATA)
        vs_image_prefetch(p, off, cs);
    }
    for (uint64_t off = 0; rc == 0 && off < size;) {
      enum vs_cluster_state s;
      uint64_t n_run = 0;
      while (off + n_run * cs < size && n_run < max_run &&
             (rc = vs_image_cluster_state(p, off + n_run * cs, &s, err)) == 0 &&
             s != VS_CLUSTER_UNALLOCATED)
        n_run++;
      if (rc < 0) break;
      st->clusters += n_run ? n_run : 1;
      if (!n_run) {
        off += cs;
        continue;
      }
      uint64_t len = off + n_run * cs <= size ? n_run * cs : size - off;
      /* The file's pages in place when the run lies in one piece: written to the layer
       * straight from the page cache, not copied out first. */
      const uint8_t *src = vs_image_map(p, off, (size_t)len);
      if (!src && (rc = vs_image_pread(p, buf, (size_t)len, off, err)) < 0) break;
      if (!src) src = buf;
      st->bytes_read += len;
      st->taken_from_overlay += n_run;
      for (uint64_t i = 0; rc == 0 && i < n_run; i++) {
        size_t n = (size_t)(len - i * cs < cs ? len - i * cs : cs);
        rc = add_changed(l, off + i * cs, src + i * cs, n, cs, pad, changed, zeroed, st, err);
      }
      off += n_run * cs;
    }
    free(buf);
    free(pad);
  } else if (rc == 0) {
    rc = compare_images(b, p, cs, l, changed, zeroed, st, err);
  }
  char id[65] = {0};
  if (rc == 0) rc = vs_image_identity(b, id, err);
  /* The manifest is made in full before the layer is put in place, and put beside it right
   * after: a failure on the way leaves neither. */
  struct vs_newfile mf = {.fd = -1};
  if (rc == 0) {
    json_t *files = changed_files(p, b, changed, zeroed);
    json_t *m = json_pack("{s{sssIss}sIsOsOsbso}", "base", "path", base_real ? base_real : base,
                          "size", (json_int_t)size, "identity", id, "cluster_size", (json_int_t)cs,
                          "changed", changed, "zeroed", zeroed, "patched_is_overlay", overlay,
                          "files", files ? files : json_array());
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS); /* one write, not many */
    json_decref(m);
    if (!text)
      rc = vs_err_set(err, ENOMEM, "%s: cannot encode the manifest", mpath);
    else if ((rc = vs_newfile_open(&mf, mpath, 0644, err)) == 0)
      rc = vs_newfile_write(&mf, text, strlen(text), err);
    free(text);
  }
  /* Again, right before anything is renamed into place: the names may have changed since. */
  if (rc == 0) rc = check_outputs(out, mpath, inputs, force, err);
  if (rc == 0) {
    rc = vs_layer_finish(l, err);
    l = NULL;
  }
  if (l) vs_layer_abort(l);
  if (rc == 0 && (rc = vs_newfile_commit(&mf, err)) < 0) {
    unlink(out); /* no set without its manifest */
    vs_err_prefix(err, "%s removed again", out);
  }
  vs_newfile_abandon(&mf);
  json_decref(changed);
  json_decref(zeroed);
  free(base_real);
  free(od);
  free(out_dir);
  st->cluster_bits = bits;
  st->seconds = vs_now_monotonic() - t0;
  return rc;
}

/* ------------------------------------------------------------------------------- apply */

extern char **environ;

static json_t *load_manifest(const char *set, struct vs_err *err) {
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
  char *path = vs_xasprintf("%s.json", set);
  json_error_t je;
  json_t *m = json_load_file(path, 0, &je);
  if (!m && access(path, F_OK) < 0)
    vs_err_set(err, EINVAL,
               "%s is not a patch set: it has no manifest %s beside it (give the SET.qcow2 "
               "vmscope patchset make wrote, with its .json)",
               set, path);
  else if (!m || !json_is_string(json_object_get(json_object_get(m, "base"), "identity")))
    vs_err_set(err, EINVAL, "%s: not a patch set manifest (%s)", path,
               m ? "no base identity" : je.text);
  if (m && !json_is_string(json_object_get(json_object_get(m, "base"), "identity"))) {
    json_decref(m);
    m = NULL;
  }
  free(path);
  return m;
}

/* Whether the manifests A and B describe the same set: one base, the same clusters. */
static bool same_manifest(json_t *a, json_t *b) {
  const char *keys[] = {"cluster_size", "changed", "zeroed"};
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
    if (!json_equal(json_object_get(a, keys[i]), json_object_get(b, keys[i]))) return false;
  return json_equal(json_object_get(json_object_get(a, "base"), "identity"),
                    json_object_get(json_object_get(b, "base"), "identity"));
}

/* Whether another process holds a lock on PATH (QEMU locks the images it has open). */
static bool in_use(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  bool busy = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  close(fd);
  return busy;
}

static struct vs_image *open_for(const char *top, const char *set, const char *base,
                                 struct vs_err *err) {
  char *a = vs_xstrdup(top), *b = vs_xstrdup(set), *c = vs_xstrdup(base);
  const char *dirs[3] = {dirname(a), dirname(b), dirname(c)};
  struct vs_image_opts o = {.backing_dirs = dirs, .n_backing_dirs = 3};
  struct vs_image *img = vs_image_open(top, &o, err);
  free(a);
  free(b);
  free(c);
  return img;
}

/* Opens the patch set SET, checking that its backing file is the base with identity WANT. */
static struct vs_image *open_layer(const char *set, const char *base_path, const char *want,
                                   struct vs_err *err) {
  struct vs_image *layer = open_for(set, set, base_path ? base_path : set, err);
  if (!layer) return NULL;
  char lid[65] = {0};
  if (!vs_image_backing(layer) ||
      vs_image_identity((struct vs_image *)vs_image_backing(layer), lid, err) < 0 ||
      strcmp(lid, want) != 0) {
    vs_err_set(err, EINVAL, "%s: the layer's backing file is not the base its manifest names", set);
    vs_image_close(layer);
    return NULL;
  }
  return layer;
}

/* Coverage: which clusters of LAYER the images from TOP down to ON_BASE already hold. */
static json_t *coverage(const struct vs_image *top, const struct vs_image *on_base,
                        struct vs_image *layer, uint64_t *set_clusters, uint64_t *shadowed) {
  json_t *ranges = json_array();
  uint64_t cs = vs_image_cluster_size(layer);
  *set_clusters = *shadowed = 0;
  for (uint64_t off = 0; cs && off < vs_image_size(layer); off += cs) {
    enum vs_cluster_state st;
    if (vs_image_cluster_state(layer, off, &st, NULL) < 0 || st == VS_CLUSTER_UNALLOCATED) continue;
    (*set_clusters)++;
    bool held = false;
    for (const struct vs_image *i = top; i && !held; i = vs_image_backing(i)) {
      uint64_t ics = vs_image_cluster_size(i);
      for (uint64_t o = off; ics && o < off + cs && o < vs_image_size(i) && !held; o += ics) {
        enum vs_cluster_state s2;
        held = vs_image_cluster_state((struct vs_image *)i, o & ~(ics - 1), &s2, NULL) == 0 &&
               s2 != VS_CLUSTER_UNALLOCATED;
      }
      if (i == on_base) break;
    }
    if (held) {
      (*shadowed)++;
      add_range(ranges, off, cs);
    }
  }
  return ranges;
}

/* The coverage of a live apply in REPORT: the set's clusters and those the guest's overlay TOP
 * already holds; when the images could not be opened (ERR says why, and is cleared), it is
 * unknown, and the report says so rather than "shadowed": 0. */
static void add_coverage(json_t *report, struct vs_image *top, struct vs_image *layer,
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
  json_t *ranges = coverage(top, top, layer, &set_clusters, &shadowed);
  json_object_set_new(report, "set_clusters", json_integer((json_int_t)set_clusters));
  json_object_set_new(report, "shadowed", json_integer((json_int_t)shadowed));
  json_object_set_new(report, "shadowed_ranges", ranges);
}

int vs_patchset_apply_image(const char *top, const char *set, json_t **report, struct vs_err *err) {
  *report = NULL;
  json_t *m = load_manifest(set, err);
  if (!m) return -1;
  const char *want = json_string_value(json_object_get(json_object_get(m, "base"), "identity"));
  const char *base_path = json_string_value(json_object_get(json_object_get(m, "base"), "path"));
  int rc = -1;
  char *set_real = realpath(set, NULL), *above = NULL;
  struct vs_image *chain = NULL, *layer = NULL;
  if (!set_real) {
    vs_err_set(err, errno, "%s: %s", set, strerror(errno));
    goto out;
  }
  if (same_file(top, set)) {
    vs_err_set(err, EINVAL,
               "%s is the patch set itself: give the disk's top image (--image TOP) and the set "
               "to put under it",
               top);
    goto out;
  }
  if (in_use(top)) {
    vs_err_set(err, EBUSY, "%s is open in another process (a running VM?): not changed", top);
    goto out;
  }
  chain = open_for(top, set, base_path ? base_path : set, err);
  if (!chain) goto out;
  /* The image that sits on the base. */
  const struct vs_image *on_base = NULL;
  for (const struct vs_image *i = chain; i && vs_image_backing(i); i = vs_image_backing(i)) {
    char id[65] = {0};
    if (vs_image_identity((struct vs_image *)vs_image_backing(i), id, err) < 0) goto out;
    if (same_file(vs_image_path(i), set_real)) {
      vs_err_set(err, EEXIST, "%s: the patch set %s is already in its chain: not changed", top,
                 set);
      goto out;
    }
    json_t *im = load_manifest(vs_image_path(i), NULL);
    bool twin = im && same_manifest(im, m);
    json_decref(im);
    if (twin) {
      vs_err_set(err, EEXIST,
                 "%s: the patch set %s is already in its chain as %s (the same changes on the same "
                 "base): not changed",
                 top, set, vs_image_path(i));
      goto out;
    }
    if (strcmp(id, want) == 0) {
      on_base = i;
      break;
    }
  }
  if (!on_base) {
    char id[65] = {0};
    if (vs_image_identity(chain, id, NULL) == 0 && strcmp(id, want) == 0)
      vs_err_set(err, EINVAL,
                 "%s is the set's base itself: apply the set to the overlay a VM runs on (its top "
                 "image), never to the base: not changed",
                 top);
    else
      vs_err_set(err, EINVAL,
                 "%s: its chain is not based on the set's base (identity %.16s...): not changed",
                 top, want);
    goto out;
  }
  json_t *om = load_manifest(vs_image_path(on_base), NULL);
  bool on_set = om != NULL;
  json_decref(om);
  if (on_set) {
    vs_err_set(err, EINVAL,
               "%s sits on the set's base but is a patch set itself (it has a manifest): "
               "re-pointing it would change a set other disks may use; make one set from both "
               "patches instead: not changed",
               vs_image_path(on_base));
    goto out;
  }
  above = realpath(vs_image_path(on_base), NULL);
  if (!above) {
    vs_err_set(err, errno, "%s: %s", vs_image_path(on_base), strerror(errno));
    goto out;
  }
  if (in_use(above)) {
    vs_err_set(err, EBUSY, "%s is open in another process: not changed", vs_image_path(on_base));
    goto out;
  }
  layer = open_layer(set, base_path, want, err);
  if (!layer) goto out;
  for (const struct vs_image *i = layer; i; i = vs_image_backing(i)) {
    if (!same_file(vs_image_path(i), above)) continue;
    vs_err_set(err, ELOOP,
               "%s: the set's own chain holds %s: re-pointing it onto the set would make a loop: "
               "not changed",
               set, above);
    goto out;
  }
  uint64_t set_clusters = 0, shadowed = 0;
  json_t *ranges = coverage(chain, on_base, layer, &set_clusters, &shadowed);
  vs_image_close(chain);
  chain = NULL;
  vs_image_close(layer);
  layer = NULL;
  /* Re-point the image on the base: qemu-img rewrites only its header (-u). */
  char *argv[] = {"qemu-img", "rebase", "-u",     "-f",  "qcow2", "-F",
                  "qcow2",    "-b",     set_real, above, NULL};
  pid_t pid;
  int status = 0;
  vs_reset_sigchld(); /* under collectd: the exit status is needed */
  if (posix_spawnp(&pid, "qemu-img", NULL, NULL, argv, environ) != 0 ||
      waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    vs_err_set(err, EIO, "%s: qemu-img rebase -u failed (status %d): not changed", above,
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    json_decref(ranges);
    goto out;
  }
  *report = json_pack("{sssssIsIso}", "image", above, "set", set_real, "set_clusters",
                      (json_int_t)set_clusters, "shadowed", (json_int_t)shadowed, "shadowed_ranges",
                      ranges);
  rc = 0;
out:
  vs_image_close(chain);
  vs_image_close(layer);
  free(above);
  free(set_real);
  json_decref(m);
  return rc;
}

int vs_patchset_status(const char *top, const char *const *dirs, size_t n_dirs, json_t **out,
                       struct vs_err *err) {
  *out = NULL;
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
    json_t *m = load_manifest(vs_image_path(i), NULL);
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

/* ---------------------------------------------------------------- a running VM, over QMP */

#include "qmp.h"

/* The name of the child NAME ("file", "backing") of block node NODE, from QEMU's block graph. */
static char *child_of(json_t *graph, const char *node, const char *name) {
  json_int_t id = -1;
  size_t i;
  json_t *n;
  json_array_foreach(json_object_get(graph, "nodes"), i, n) {
    const char *nm = json_string_value(json_object_get(n, "name"));
    if (nm && strcmp(nm, node) == 0 &&
        strcmp(json_string_value(json_object_get(n, "type")) ?: "", "block-driver") == 0)
      id = json_integer_value(json_object_get(n, "id"));
  }
  json_t *e;
  json_array_foreach(json_object_get(graph, "edges"), i, e) {
    if (json_integer_value(json_object_get(e, "parent")) != id) continue;
    if (strcmp(json_string_value(json_object_get(e, "name")) ?: "", name) != 0) continue;
    json_int_t child = json_integer_value(json_object_get(e, "child"));
    size_t k;
    json_array_foreach(json_object_get(graph, "nodes"), k,
                       n) if (json_integer_value(json_object_get(n, "id")) ==
                              child) return vs_xstrdup(json_string_value(json_object_get(n, "name"))
                                                           ?: "");
  }
  return NULL;
}

/* The file behind block node NODE. */
static char *filename_of(json_t *nodes, const char *node) {
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    const char *nm = json_string_value(json_object_get(n, "node-name"));
    if (nm && strcmp(nm, node) == 0) {
      const char *f = json_string_value(json_object_get(n, "file"));
      return f ? vs_xstrdup(f) : NULL;
    }
  }
  return NULL;
}

#include "virt.h"

/* A QEMU monitor: a QMP socket, or libvirt's pass-through. */
struct monitor {
  int (*exec)(void *ctx, const char *command, json_t *args, json_t **ret, struct vs_err *err);
  void *ctx;
  const char *what; /* for messages */
};

static int exec_qmp(void *ctx, const char *command, json_t *args, json_t **ret,
                    struct vs_err *err) {
  return vs_qmp_execute(ctx, command, args, ret, err);
}

struct libvirt_ctx {
  struct vs_virt *v;
  const char *domain;
};

static int exec_libvirt(void *ctx, const char *command, json_t *args, json_t **ret,
                        struct vs_err *err) {
  struct libvirt_ctx *c = ctx;
  if (ret) *ret = NULL;
  json_t *cmd = json_pack("{ss}", "execute", command);
  if (args) json_object_set(cmd, "arguments", args);
  char *text = json_dumps(cmd, JSON_COMPACT), *reply = NULL;
  json_decref(cmd);
  int rc = vs_virt_monitor_command(c->v, c->domain, text, &reply, err);
  free(text);
  if (rc < 0) return -1;
  json_t *r = json_loads(reply, 0, NULL);
  free(reply);
  json_t *e = json_object_get(r, "error");
  if (!r || e) {
    const char *desc = json_string_value(json_object_get(e, "desc"));
    vs_err_set(err, EREMOTEIO, "%s: %s", command, desc ? desc : "an unreadable reply");
    json_decref(r);
    return -1;
  }
  if (ret) *ret = json_incref(json_object_get(r, "return"));
  json_decref(r);
  return 0;
}

/* Block node NAME's id in GRAPH, or -1. */
static json_int_t node_id(json_t *graph, const char *name) {
  size_t i;
  json_t *n;
  json_array_foreach(json_object_get(graph, "nodes"), i, n) {
    const char *nm = json_string_value(json_object_get(n, "name"));
    if (nm && strcmp(nm, name) == 0) return json_integer_value(json_object_get(n, "id"));
  }
  return -1;
}

/* Whether node ID is any node's child (a disk's chain holds it). */
static bool node_in_use(json_t *graph, json_int_t id) {
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(graph, "edges"), i, e) {
    if (json_integer_value(json_object_get(e, "child")) == id) return true;
  }
  return false;
}

/* The layer node of set WANT (a base identity) under disk node NODE. One per disk, so that two
 * disks of a VM on the same base each get the set; QEMU's node names stay under 32 bytes. */
static void layer_name(const char *want, const char *node, char out[static 32]) {
  uint32_t h = 2166136261u; /* FNV-1a of the disk's node name */
  for (const unsigned char *p = (const unsigned char *)node; *p; p++)
    h = (h ^ *p) * 16777619u;
  snprintf(out, 32, "vs-patch-%.12s-%08x", want, h);
}

/* Whether the image header of NODE (its file OVER_FILE) names SET_REAL as its backing file,
 * as QEMU reports it. */
static bool header_names(json_t *nodes, const char *node, const char *over_file,
                         const char *set_real) {
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    const char *nm = json_string_value(json_object_get(n, "node-name"));
    if (!nm || strcmp(nm, node) != 0) continue;
    const char *b =
        json_string_value(json_object_get(json_object_get(n, "image"), "backing-filename"));
    if (!b) return false;
    if (b[0] == '/') return strcmp(b, set_real) == 0;
    char *dir = vs_xstrdup(over_file), *joined = vs_xasprintf("%s/%s", dirname(dir), b);
    char *real = realpath(joined, NULL);
    bool same = real && strcmp(real, set_real) == 0;
    free(real);
    free(joined);
    free(dir);
    return same;
  }
  return false;
}

/* The disk node to apply set WANT to when none is named: the one format node that sits on the
 * set's base, or on the set's layer without its header naming the set yet (an apply that was
 * stopped). More than one is ambiguous: ERR names them. With none, ERR says whether the set is
 * applied everywhere already. */
static char *pick_node(json_t *graph, json_t *nodes, const char *want, const char *set_real,
                       const char *what, struct vs_err *err) {
  char prefix[32];
  snprintf(prefix, sizeof(prefix), "vs-patch-%.12s-", want);
  struct vs_buf names = {0};
  char *found = NULL;
  size_t n_found = 0, n_done = 0, i;
  json_t *n;
  json_array_foreach(json_object_get(graph, "nodes"), i, n) {
    const char *name = json_string_value(json_object_get(n, "name"));
    if (!name || !*name || strncmp(name, "vs-patch-", 9) == 0) continue;
    char *backing = child_of(graph, name, "backing");
    bool match = false;
    if (backing && strncmp(backing, prefix, strlen(prefix)) == 0) {
      char *file_node = child_of(graph, name, "file");
      char *file = file_node ? filename_of(nodes, file_node) : NULL;
      bool done = file && header_names(nodes, name, file, set_real);
      n_done += done;
      match = !done;
      free(file_node);
      free(file);
    } else if (backing) {
      char *bfile_node = child_of(graph, backing, "file");
      char *bfile = bfile_node ? filename_of(nodes, bfile_node) : NULL;
      if (bfile) {
        struct vs_image *img = vs_image_open(bfile, NULL, NULL);
        char id[65] = {0};
        match = img && vs_image_identity(img, id, NULL) == 0 && strcmp(id, want) == 0;
        vs_image_close(img);
      }
      free(bfile_node);
      free(bfile);
    }
    free(backing);
    if (!match) continue;
    vs_buf_addf(&names, "%s%s", n_found ? ", " : "", name);
    if (n_found++ == 0) found = vs_xstrdup(name);
  }
  if (n_found > 1) {
    vs_err_set(err, EINVAL,
               "%s: %zu disks sit on the set's base (nodes %s): name one with --device", what,
               n_found, names.data);
    free(found);
    found = NULL;
  } else if (n_found == 0 && n_done > 0) {
    vs_err_set(err, EEXIST,
               "%s: every disk on the set's base runs on the set %s already: nothing to do", what,
               set_real);
  } else if (n_found == 0) {
    vs_err_set(err, ENOENT, "%s: no disk of the VM sits on the set's base (identity %.16s...)",
               what, want);
  }
  vs_buf_free(&names);
  return found;
}

static int apply_live(struct monitor *mon, const char *node_arg, const char *set, json_t **report,
                      struct vs_err *err);

int vs_patchset_apply_qmp(const char *qmp_path, const char *node, const char *set, json_t **report,
                          struct vs_err *err) {
  *report = NULL;
  _cleanup_(vs_qmp_closep) struct vs_qmp *q = vs_qmp_open(qmp_path, 10000, err);
  if (!q) return -1;
  struct monitor mon = {exec_qmp, q, qmp_path};
  return apply_live(&mon, node, set, report, err);
}

int vs_patchset_apply_libvirt(struct vs_virt *v, const char *domain, const char *node,
                              const char *set, json_t **report, struct vs_err *err) {
  *report = NULL;
  struct libvirt_ctx c = {v, domain};
  struct monitor mon = {exec_libvirt, &c, domain};
  return apply_live(&mon, node, set, report, err);
}

/* blockdev-reopen resets the cache mode, zero detection and read-only state to their defaults
 * unless it is given them (the discard mode it keeps): the node is reopened with what QEMU
 * reports of them. */
static json_t *reopen_options(json_t *nodes, const char *node, const char *file,
                              const char *backing) {
  json_t *o = json_pack("{ssssssss}", "driver", "qcow2", "node-name", node, "file", file, "backing",
                        backing);
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    const char *nm = json_string_value(json_object_get(n, "node-name"));
    if (!nm || strcmp(nm, node) != 0) continue;
    json_t *cache = json_object_get(n, "cache");
    if (json_is_object(cache))
      json_object_set_new(o, "cache",
                          json_pack("{sbsb}", "direct",
                                    json_is_true(json_object_get(cache, "direct")), "no-flush",
                                    json_is_true(json_object_get(cache, "no-flush"))));
    const char *dz = json_string_value(json_object_get(n, "detect_zeroes"));
    if (dz) json_object_set_new(o, "detect-zeroes", json_string(dz));
    json_object_set_new(o, "read-only", json_boolean(json_is_true(json_object_get(n, "ro"))));
    break;
  }
  return json_pack("{s[o]}", "options", o);
}

static int apply_live(struct monitor *mon, const char *node_arg, const char *set, json_t **report,
                      struct vs_err *err) {
  *report = NULL;
  json_t *m = load_manifest(set, err);
  if (!m) return -1;
  const char *want = json_string_value(json_object_get(json_object_get(m, "base"), "identity"));
  int rc = -1;
  char *set_real = realpath(set, NULL), *file_node = NULL, *base_node = NULL;
  char *over_file = NULL, *base_file = NULL, layer_node[32];
  json_t *graph = NULL, *nodes = NULL;
  struct vs_image *base_img = NULL, *layer = NULL, *over = NULL;
  bool added = false;
  char *node = NULL;
  if (!set_real) {
    vs_err_set(err, errno, "%s: %s", set, strerror(errno));
    goto out;
  }
  json_t *flat = json_pack("{sb}", "flat", 1);
  int qr = mon->exec(mon->ctx, "x-debug-query-block-graph", NULL, &graph, err) < 0 ||
           mon->exec(mon->ctx, "query-named-block-nodes", flat, &nodes, err) < 0;
  json_decref(flat);
  if (qr) goto out;
  if (node_arg && strncmp(node_arg, "vs-patch-", 9) == 0) {
    vs_err_set(err, EINVAL,
               "%s: node %s is a patch set's layer node: name the disk's format node with "
               "--device (or leave it out)",
               mon->what, node_arg);
    goto out;
  }
  node = node_arg ? vs_xstrdup(node_arg) : pick_node(graph, nodes, want, set_real, mon->what, err);
  if (!node) goto out;
  layer_name(want, node, layer_node);
  file_node = child_of(graph, node, "file");
  base_node = child_of(graph, node, "backing");
  /* Already running on the set: an apply done, or one stopped after its reopen (the chain
   * holds the set, the overlay's header does not name it yet). The base is the layer's. */
  bool resume = base_node && strcmp(base_node, layer_node) == 0;
  if (resume) {
    free(base_node);
    base_node = child_of(graph, layer_node, "backing");
  }
  /* Files from the protocol nodes: a format node with an explicit backing reports a json:
   * pseudo-filename. */
  char *base_file_node = base_node ? child_of(graph, base_node, "file") : NULL;
  over_file = file_node ? filename_of(nodes, file_node) : NULL;
  base_file = base_file_node ? filename_of(nodes, base_file_node) : NULL;
  free(base_file_node);
  if (!file_node || !base_node || !base_file || !over_file) {
    vs_err_set(err, ENOENT, "%s: no format node \"%s\" with a file and a backing node", mon->what,
               node);
    goto out;
  }
  if (same_file(over_file, set_real) || same_file(base_file, set_real)) {
    vs_err_set(err, EINVAL,
               "%s: %s is the disk's own %s image, not a patch set to put under it: not changed",
               mon->what, set, same_file(over_file, set_real) ? "top" : "base");
    goto out;
  }
  char id[65] = {0};
  if (!(base_img = vs_image_open(base_file, NULL, err)) || vs_image_identity(base_img, id, err) < 0)
    goto out;
  if (strcmp(id, want) != 0) {
    vs_err_set(err, EINVAL, "%s: node %s sits on %s, not on the set's base: not changed", mon->what,
               node, base_file);
    goto out;
  }
  double pause = 0;
  int r;
  if (resume && header_names(nodes, node, over_file, set_real)) {
    vs_err_set(err, EEXIST, "%s: node %s already runs on the set %s: nothing to do", mon->what,
               node, set_real);
    goto out;
  }
  if (!resume) {
    /* A layer node left by an apply that was stopped after adding it: nothing uses it. */
    json_int_t stale = node_id(graph, layer_node);
    if (stale >= 0) {
      if (node_in_use(graph, stale)) {
        vs_err_set(err, EBUSY, "%s: node %s is in another disk's chain: not changed", mon->what,
                   layer_node);
        goto out;
      }
      json_t *del = json_pack("{ss}", "node-name", layer_node);
      r = mon->exec(mon->ctx, "blockdev-del", del, NULL, err);
      json_decref(del);
      if (r < 0) {
        vs_err_prefix(err, "removing the layer node an interrupted apply left");
        goto out;
      }
    }
    json_t *add = json_pack("{sssss{sssssb}sssb}", "driver", "qcow2", "node-name", layer_node,
                            "file", "driver", "file", "filename", set_real, "read-only", 1,
                            "backing", base_node, "read-only", 1);
    r = mon->exec(mon->ctx, "blockdev-add", add, NULL, err);
    json_decref(add);
    if (r < 0) goto out;
    added = true;
    /* The guest-visible moment: QEMU drains the node's requests while it reopens. */
    double t0 = vs_now_monotonic();
    json_t *reopen = reopen_options(nodes, node, file_node, layer_node);
    r = mon->exec(mon->ctx, "blockdev-reopen", reopen, NULL, err);
    json_decref(reopen);
    pause = vs_now_monotonic() - t0;
    if (r < 0) goto out;
  }
  json_t *cbf =
      json_pack("{ssssss}", "device", node, "image-node-name", node, "backing-file", set_real);
  r = mon->exec(mon->ctx, "change-backing-file", cbf, NULL, err);
  json_decref(cbf);
  if (r < 0 && !resume) { /* put the chain back as it was */
    json_t *back = reopen_options(nodes, node, file_node, base_node);
    mon->exec(mon->ctx, "blockdev-reopen", back, NULL, NULL);
    json_decref(back);
  }
  if (r < 0) goto out;
  added = false; /* in use now */
  /* Coverage, from the images as they are on disk: first have QEMU write out the metadata it
   * holds for the node, so that what the guest wrote counts. */
  char *flush = vs_xasprintf("qemu-io %s flush", node);
  json_t *hmp = json_pack("{ss}", "command-line", flush);
  mon->exec(mon->ctx, "human-monitor-command", hmp, NULL, NULL);
  json_decref(hmp);
  free(flush);
  char *d1 = vs_xstrdup(over_file), *d2 = vs_xstrdup(set_real), *d3 = vs_xstrdup(base_file);
  const char *dirs[3] = {dirname(d1), dirname(d2), dirname(d3)};
  struct vs_image_opts o = {.backing_dirs = dirs, .n_backing_dirs = 3};
  struct vs_err cov_err = {0};
  over = vs_image_open(over_file, &o, &cov_err);
  layer = over ? vs_image_open(set_real, &o, &cov_err) : NULL;
  free(d1);
  free(d2);
  free(d3);
  *report = json_pack("{sssssssfsb}", "image", over_file, "node", node, "set", set_real,
                      "reopen_seconds", pause, "resumed", resume);
  add_coverage(*report, over, layer, &cov_err);
  rc = 0;
out:
  if (added) {
    json_t *del = json_pack("{ss}", "node-name", layer_node);
    mon->exec(mon->ctx, "blockdev-del", del, NULL, NULL);
    json_decref(del);
  }
  vs_image_close(base_img);
  vs_image_close(layer);
  vs_image_close(over);
  json_decref(graph);
  json_decref(nodes);
  free(node);
  free(file_node);
  free(base_node);
  free(over_file);
  free(base_file);
  free(set_real);
  json_decref(m);
  return rc;
}

/* ------------------------------------------------- a running libvirt VM, by block copy */

/* DIR/NAME.SETNAME.qcow2 beside TOP ("vm.qcow2" and "fix.qcow2": "vm.fix.qcow2"). */
static char *copy_dest(const char *top, const char *set) {
  char *t = vs_xstrdup(top), *s = vs_xstrdup(set);
  const char *tb = strrchr(t, '/') ? strrchr(t, '/') + 1 : t, *sb = basename(s);
  size_t tl = strlen(tb), sl = strlen(sb);
  if (tl > 6 && strcmp(tb + tl - 6, ".qcow2") == 0) tl -= 6;
  if (sl > 6 && strcmp(sb + sl - 6, ".qcow2") == 0) sl -= 6;
  char *dest = vs_xasprintf("%.*s%.*s.%.*s.qcow2", (int)(tb - t), t, (int)tl, tb, (int)sl, sb);
  free(t);
  free(s);
  return dest;
}

int vs_patchset_apply_copy(struct vs_virt *v, const char *domain, const char *xml, const char *set,
                           int timeout_s, json_t **report, struct vs_err *err) {
  *report = NULL;
  json_t *m = load_manifest(set, err);
  if (!m) return -1;
  const char *want = json_string_value(json_object_get(json_object_get(m, "base"), "identity"));
  const char *base_path = json_string_value(json_object_get(json_object_get(m, "base"), "path"));
  struct vs_disk *disks = NULL;
  size_t nd = 0;
  char *skipped = NULL, *set_real = realpath(set, NULL), *dest = NULL;
  struct vs_image *layer = NULL, *top = NULL;
  const char *target = NULL, *top_path = NULL;
  uint64_t top_size = 0;
  unsigned top_bits = 16;
  int rc = -1;
  if (!set_real) {
    vs_err_set(err, errno, "%s: %s", set, strerror(errno));
    goto out;
  }
  if (vs_virt_xml_disks(xml, domain, &disks, &nd, &skipped, err) < 0) goto out;
  if (!(layer = open_layer(set, base_path, want, err))) goto out;
  /* The disk whose top image sits on the base: a shallow copy replaces only the top image. */
  for (size_t i = 0; i < nd && !target; i++) {
    if (same_file(disks[i].path, set_real)) {
      vs_err_set(err, EINVAL, "%s: disk %s runs on %s itself, not on an overlay: not changed",
                 domain, disks[i].target, set);
      goto out;
    }
    struct vs_image *chain = open_for(disks[i].path, set, base_path ? base_path : set, NULL);
    const struct vs_image *below = chain ? vs_image_backing(chain) : NULL;
    char id[65] = {0};
    if (below && vs_image_identity((struct vs_image *)below, id, NULL) == 0 &&
        strcmp(id, want) == 0) {
      target = disks[i].target;
      top_path = disks[i].path;
      top_size = vs_image_size(chain);
      for (top_bits = 9; top_bits < 21 && (1ULL << top_bits) < vs_image_cluster_size(chain);)
        top_bits++;
    } else {
      for (const struct vs_image *b = below; b && !target; b = vs_image_backing(b)) {
        if (same_file(vs_image_path(b), set_real)) {
          vs_err_set(err, EEXIST, "%s: disk %s: the patch set %s is already in its chain", domain,
                     disks[i].target, set);
          vs_image_close(chain);
          goto out;
        }
        char bid[65] = {0};
        if (vs_image_backing(b) &&
            vs_image_identity((struct vs_image *)vs_image_backing(b), bid, NULL) == 0 &&
            strcmp(bid, want) == 0) {
          vs_err_set(err, EINVAL,
                     "%s: disk %s: the image on the set's base is %s, below the top image; "
                     "--method copy replaces only the top: use the default method",
                     domain, disks[i].target, vs_image_path(b));
          vs_image_close(chain);
          goto out;
        }
      }
    }
    vs_image_close(chain);
  }
  if (!target) {
    vs_err_set(err, ENOENT, "%s: no disk's top image sits on the set's base (identity %.16s...)",
               domain, want);
    goto out;
  }
  dest = copy_dest(top_path, set_real);
  struct stat dst;
  if (lstat(dest, &dst) == 0) { /* a dangling symlink too: the new top would replace it */
    vs_err_set(err, EEXIST, "%s: %s exists already (the set applied before?): not changed", domain,
               dest);
    goto out;
  }
  /* The new top: empty, on the set; the copy fills it with what the guest wrote. */
  struct vs_layer *l = vs_layer_create(dest, top_size, top_bits, set_real, "qcow2", err);
  if (!l || vs_layer_finish(l, err) < 0) goto out;
  double pivot = 0;
  if (vs_virt_block_copy_pivot(v, domain, target, dest, timeout_s, &pivot, err) < 0) {
    unlink(dest);
    goto out;
  }
  /* QEMU has closed the old top: what the guest wrote there is on disk, and all in it. */
  struct vs_err cov_err = {0};
  top = open_for(top_path, set, base_path ? base_path : set, &cov_err);
  *report = json_pack("{sssssssssssf}", "method", "copy", "disk", target, "image", dest,
                      "previous_image", top_path, "set", set_real, "pivot_seconds", pivot);
  add_coverage(*report, top, layer, &cov_err);
  rc = 0;
out:
  vs_image_close(layer);
  vs_image_close(top);
  vs_disks_free(disks, nd);
  free(skipped);
  free(set_real);
  free(dest);
  json_decref(m);
  return rc;
}

/* ------------------------------------------------------------ a libvirt domain, any state */

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
  if (!d) {
    vs_err_set(err, ENOENT, "no domain %s", domain);
  } else if (d->active) {
    rc = copy ? vs_patchset_apply_copy(v, d->uuid, d->xml, set, timeout_s, report, err)
              : vs_patchset_apply_libvirt(v, d->uuid, node, set, report, err);
  } else {
    /* Stopped: the disk whose chain sits on the set's base is re-pointed. */
    struct vs_disk *disks = NULL;
    size_t nk = 0;
    char *skipped = NULL;
    struct vs_buf why = {0};
    if (vs_virt_xml_disks(d->xml, d->name, &disks, &nk, &skipped, err) == 0) {
      for (size_t k = 0; k < nk && rc < 0; k++) {
        struct vs_err e = {0};
        rc = vs_patchset_apply_image(disks[k].path, set, report, &e);
        if (rc < 0)
          vs_buf_addf(&why, "%s%s: %s", why.len ? "; " : "", disks[k].target, vs_err_msg(&e));
        vs_err_clear(&e);
      }
      if (rc < 0)
        vs_err_set(err, EINVAL, "%s: no disk took the set (%s)", d->name,
                   why.len ? why.data : "no file-backed disks");
    }
    vs_buf_free(&why);
    free(skipped);
    vs_disks_free(disks, nk);
  }
  if (rc == 0) {
    json_object_set_new(*report, "domain", json_string(d->name));
    json_object_set_new(*report, "running", json_boolean(d->active));
  }
  vs_domains_free(doms, nd);
  return rc;
}

/* ------------------------------------------------------------------------ guest flush */

#include "channel.h"

json_t *vs_patchset_flush(struct vs_channel *c, const char *command, int deadline_ms) {
  struct vs_err err = {0};
  struct vs_exec_result x;
  const char *argv[] = {"-c", command, NULL};
  enum vs_channel_status s = vs_channel_exec(c, "/bin/sh", argv, deadline_ms, &x, &err);
  json_t *r = json_pack("{ssss}", "command", command, "status", vs_channel_status_name(s));
  if (s == VS_CHANNEL_OK) {
    json_object_set_new(r, "exit_code", json_integer(x.exit_code));
    json_object_set_new(r, "output", vs_json_text(x.out, x.out_len));
    if (x.exit_code != 0) json_object_set_new(r, "error", vs_json_text(x.err, x.err_len));
  } else {
    json_object_set_new(r, "error", json_string(vs_err_msg(&err)));
  }
  vs_exec_result_clear(&x);
  vs_err_clear(&err);
  return r;
}
