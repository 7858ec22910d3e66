#include "patchset_int.h"

#include "layer.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static bool is_zero(const uint8_t *p, size_t n) {
  return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

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

/* Adds the cluster at OFF (N bytes of the disk; DATA, padded to a cluster of CS in PAD) to D. */
static int add_changed(struct vs_ps_diff *d, uint64_t off, const uint8_t *data, size_t n,
                       uint64_t cs, uint8_t *pad, struct vs_err *err) {
  if (n < cs) { /* the disk's last, partial cluster: padded with zeros */
    memcpy(pad, data, n);
    memset(pad + n, 0, cs - n);
    data = pad;
  }
  if (is_zero(data, n)) {
    vs_ps_add_range(d->zeroed, off, n);
    d->st->zeroed++;
    return vs_layer_add_zero(d->layer, off, err);
  }
  vs_ps_add_range(d->changed, off, n);
  d->st->changed++;
  return vs_layer_add_data(d->layer, off, data, err);
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

/* Compares the runs K of RB and RP (at START) and adds the clusters that differ to D. */
static int compare_run(struct run_reader *rb, struct run_reader *rp, uint64_t start, uint64_t k,
                       struct cmp_helper *h, bool helper, const uint8_t *zeros, uint8_t *pad,
                       bool *differs, struct vs_ps_diff *d, struct vs_err *err) {
  struct run_slot *sb = &rb->slot[k % 2], *sp = &rp->slot[k % 2];
  uint64_t cs = rb->cs, size = rb->size;
  uint64_t len = size - start < rb->run ? size - start : rb->run, nc = (len + cs - 1) / cs;
  struct run_cmp c = {sb, sp, zeros, start, size, cs, 0, nc, differs};
  if (helper && nc > 1) {
    c.to = nc / 2;
    h->work = c;
    h->work.from = nc / 2;
    h->work.to = nc;
    sem_post(&h->go);
    compare_clusters(&c);
    sem_wait(&h->done);
  } else {
    compare_clusters(&c);
  }
  int rc = 0;
  for (uint64_t i = 0; rc == 0 && i < nc; i++) {
    uint64_t off = start + i * cs;
    size_t n = (size_t)(size - off < cs ? size - off : cs);
    d->st->clusters++;
    if (sb->hole[i] && sp->hole[i])
      d->st->skipped_holes++;
    else if (differs[i])
      rc = add_changed(d, off, sp->hole[i] ? zeros : sp->run + i * cs, n, cs, pad, err);
  }
  return rc;
}

int vs_ps_compare(struct vs_image *b, struct vs_image *p, uint64_t cs, struct vs_ps_diff *d,
                  struct vs_err *err) {
  struct run_reader rb, rp;
  int rc = run_reader_start(&rb, b, cs, err);
  if (rc == 0 && (rc = run_reader_start(&rp, p, cs, err)) < 0) run_reader_stop(&rb);
  if (rc < 0) return rc;
  _cleanup_(vs_freep) uint8_t *pad = vs_xcalloc(1, cs);
  _cleanup_(vs_freep) uint8_t *zeros = vs_xcalloc(1, cs);
  _cleanup_(vs_freep) bool *differs = vs_xcalloc(rb.run / cs, sizeof(bool));
  struct cmp_helper h = {0};
  sem_init(&h.go, 0, 0);
  sem_init(&h.done, 0, 0);
  pthread_t ht;
  bool helper = pthread_create(&ht, NULL, cmp_helper_main, &h) == 0;
  for (uint64_t start = 0, k = 0; rc == 0 && start < rb.size; start += rb.run, k++) {
    sem_wait(&rb.full[k % 2]);
    sem_wait(&rp.full[k % 2]);
    if (rb.rc < 0 || rp.rc < 0) {
      rc = vs_err_set(err, (rb.rc < 0 ? rb.err : rp.err).code, "%s",
                      vs_err_msg(rb.rc < 0 ? &rb.err : &rp.err));
      break;
    }
    rc = compare_run(&rb, &rp, start, k, &h, helper, zeros, pad, differs, d, err);
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
  d->st->bytes_read += rb.bytes_read + rp.bytes_read;
  run_reader_stop(&rb);
  run_reader_stop(&rp);
  return rc;
}

/* Asks for every cluster P itself holds at once, so a cold disk reads them in one sweep. */
static void prefetch_own(struct vs_image *p, uint64_t cs) {
  for (uint64_t off = 0; off < vs_image_size(p); off += cs) {
    enum vs_cluster_state s;
    if (vs_image_cluster_state(p, off, &s, NULL) == 0 && s == VS_CLUSTER_DATA)
      vs_image_prefetch(p, off, cs);
  }
}

int vs_ps_take_overlay(struct vs_image *p, uint64_t cs, struct vs_ps_diff *d, struct vs_err *err) {
  /* Runs of P's own clusters are read with one call. */
  uint64_t size = vs_image_size(p), run = RUN_BYTES > cs ? RUN_BYTES : cs, max_run = run / cs;
  _cleanup_(vs_freep) uint8_t *buf = vs_xmalloc(run);
  _cleanup_(vs_freep) uint8_t *pad = vs_xcalloc(1, cs);
  prefetch_own(p, cs);
  int rc = 0;
  for (uint64_t off = 0; rc == 0 && off < size;) {
    enum vs_cluster_state s;
    uint64_t n_run = 0;
    while (off + n_run * cs < size && n_run < max_run &&
           (rc = vs_image_cluster_state(p, off + n_run * cs, &s, err)) == 0 &&
           s != VS_CLUSTER_UNALLOCATED)
      n_run++;
    if (rc < 0) break;
    d->st->clusters += n_run ? n_run : 1;
    if (!n_run) {
      off += cs;
      continue;
    }
    uint64_t len = off + n_run * cs <= size ? n_run * cs : size - off;
    /* The file's pages in place when the run lies in one piece: written to the layer straight
     * from the page cache, not copied out first. */
    const uint8_t *src = vs_image_map(p, off, (size_t)len);
    if (!src && (rc = vs_image_pread(p, buf, (size_t)len, off, err)) < 0) break;
    if (!src) src = buf;
    d->st->bytes_read += len;
    d->st->taken_from_overlay += n_run;
    for (uint64_t i = 0; rc == 0 && i < n_run; i++) {
      size_t n = (size_t)(len - i * cs < cs ? len - i * cs : cs);
      rc = add_changed(d, off + i * cs, src + i * cs, n, cs, pad, err);
    }
    off += n_run * cs;
  }
  return rc;
}
