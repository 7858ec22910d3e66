#include "patchset_int.h"

#include "layer.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool is_zero(const uint8_t *p, size_t n) {
  return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Two workers, each with its own handles on both images, compare a half of the disk each,
 * front to back (so each file handle is read in order, and the kernel's read-ahead keeps up
 * on a cold disk). Where both images' runs are in the page cache (the probe that asks ahead
 * says so) they are compared where they lie, mapped (vs_image_map_stored): a full 1 GiB pair
 * took 0.085 s so against 0.150 s copied out with pread, the copy being most of the time. A
 * cold run is read with pread, in pieces small enough to stay in the core's cache, and compared
 * while it is still there: mapped, it was slower cold (0.94-1.45 s against 0.87-0.90 s), the
 * page faults waiting on the disk one by one. (4 MiB runs compared after they were copied came
 * back from memory a second time.) Which clusters differ goes into a bitmap; the layer is then
 * written in order, the changed clusters read again from the patched image, which has just been
 * read. */
#define RUN_CLUSTERS_MIN 64 /* a run is whole bitmap words: workers never share one */
#define PIECE_BYTES (256u << 10)
#define RUN_BYTES (1u << 20)
#define PREFETCH_RUNS 8
#define PREFETCH_BYTES (16u << 20)
#define MAX_AHEAD 256
#define CACHED_RUNS 16

struct cmp_shared {
  uint64_t size, cs, run_bytes, n_runs;
  uint64_t *differs;                 /* a bit per cluster */
  atomic_uint_fast64_t first_failed; /* the first run that failed (UINT64_MAX: none) */
};

struct cmp_worker {
  struct cmp_shared *sh;
  struct vs_image *b, *p;
  uint64_t from_run, to_run; /* its part of the disk: runs [FROM_RUN, TO_RUN) */
  bool warm;                 /* the run it compares is in the page cache: compared mapped */
  uint64_t mapped;           /* bytes of both images compared so */
  uint64_t skipped_holes;
  uint64_t failed_run; /* with RC < 0 */
  int rc;
  struct vs_err err;
  pthread_t thread;
};

/* Compares the clusters [FIRST, FIRST + N) of W's images (at most PIECE_BYTES, or one cluster),
 * reading only the runs of them that are not holes in both. */
static int compare_piece(struct cmp_worker *w, uint64_t first, uint64_t n, uint8_t *bb,
                         uint8_t *pb) {
  struct cmp_shared *sh = w->sh;
  uint64_t cs = sh->cs;
  bool holes[PIECE_BYTES / 512 + 1];
  for (uint64_t i = 0; i < n; i++)
    holes[i] = vs_image_cluster_is_hole(w->b, (first + i) * cs, NULL) &&
               vs_image_cluster_is_hole(w->p, (first + i) * cs, NULL);
  for (uint64_t i = 0; i < n;) {
    if (holes[i]) {
      w->skipped_holes++;
      i++;
      continue;
    }
    uint64_t j = i + 1;
    while (j < n && !holes[j])
      j++;
    uint64_t off = (first + i) * cs, len = (j - i) * cs;
    if (len > sh->size - off) len = sh->size - off;
    i = j;
    /* Clusters larger than a piece (2 MiB ones) are read and compared a piece at a time. */
    uint64_t seg = cs < PIECE_BYTES ? cs : PIECE_BYTES, hb = 0, hp = 0;
    bool in_place = w->warm && vs_image_stored_run(w->b, off, len, &hb) &&
                    vs_image_stored_run(w->p, off, len, &hp);
    for (uint64_t at = 0; at < len; at += PIECE_BYTES) {
      size_t n_at = (size_t)(len - at < PIECE_BYTES ? len - at : PIECE_BYTES);
      bool differs[PIECE_BYTES / 512 + 1];
      if (in_place) {
        const uint8_t *mb = vs_image_map_stored(w->b, hb + at, n_at, &w->err);
        const uint8_t *mp = mb ? vs_image_map_stored(w->p, hp + at, n_at, &w->err) : NULL;
        if (!mp || vs_image_cmp_mapped(w->b, mb, w->p, mp, n_at, (size_t)seg, differs, &w->err) < 0)
          return -1;
        w->mapped += 2 * (uint64_t)n_at;
      } else {
        if (vs_image_pread(w->b, bb, n_at, off + at, &w->err) < 0 ||
            vs_image_pread(w->p, pb, n_at, off + at, &w->err) < 0)
          return -1;
        for (size_t s = 0; s < n_at; s += seg)
          differs[s / seg] = memcmp(bb + s, pb + s, n_at - s < seg ? n_at - s : (size_t)seg) != 0;
      }
      for (size_t s = 0; s < n_at; s += seg) {
        uint64_t k = (off + at + s) / cs;
        if (differs[s / seg]) sh->differs[k / 64] |= 1ULL << (k % 64);
      }
    }
  }
  return 0;
}

/* Which runs a worker takes to be in the page cache, and which it compares in place: those from
 * its first on while every probe of what it asks for ahead finds it cached; none after the
 * first probe that does not (a run the kernel is still reading ahead looks cached by its first
 * page, and mapped, its other pages were waited for a fault at a time: a cold 1 GiB pair took
 * 1.0-1.75 s so, against 0.89-1.17 s). Counted in runs (the guest's order) or entries of the
 * list (the file's). */
struct warmth {
  uint64_t cached_until; /* before it: taken to be cached, not asked for again */
  uint64_t warm_until;   /* before it: compared in place */
  bool all_warm;         /* every probe so far found its run cached, or nothing to ask */
};

/* The probes of the run at NEXT found it cached (NB and NP both -1; SPAN runs are then taken to
 * be), asked the kernel for it (> 0) or found no data there to ask for (0: nothing to tell). */
static void warmth_probed(struct warmth *t, int64_t nb, int64_t np, uint64_t next, uint64_t span) {
  if (nb < 0 && np < 0) t->cached_until = next + span;
  t->all_warm = t->all_warm && nb <= 0 && np <= 0;
}

/* The runs before END have been asked for. */
static void warmth_asked(struct warmth *t, uint64_t end) {
  if (t->all_warm) t->warm_until = t->cached_until > end ? t->cached_until : end;
}

static void *cmp_worker_main(void *arg) {
  struct cmp_worker *w = arg;
  struct cmp_shared *sh = w->sh;
  uint64_t piece = PIECE_BYTES / sh->cs ? PIECE_BYTES / sh->cs : 1; /* clusters */
  _cleanup_(vs_freep) uint8_t *bb = vs_xmalloc(PIECE_BYTES);
  _cleanup_(vs_freep) uint8_t *pb = vs_xmalloc(PIECE_BYTES);
  uint64_t run_clusters = sh->run_bytes / sh->cs, total = (sh->size + sh->cs - 1) / sh->cs;
  /* Asked ahead: on a cold disk, the kernel reads the runs ahead in large requests while this
   * one is compared (its own read-ahead, in 256 KiB reads alternating between two files, made
   * the cold case 3x slower than one reader per file). At least PREFETCH_RUNS runs, and as many
   * more (up to MAX_AHEAD) as it takes to have PREFETCH_BYTES of data asked for: a sparse
   * image's run holds little, and 8 of them kept the disk waiting (3.6x cat's time cold at
   * 16 GiB). Where both images are in the page cache, asked again only every CACHED_RUNS runs,
   * and compared in place (struct warmth). */
  uint64_t next = w->from_run;     /* the next run to ask for */
  uint64_t ahead = 0;              /* bytes asked for the runs [r, next) */
  uint64_t asked[MAX_AHEAD] = {0}; /* each of those runs' part, at [run % MAX_AHEAD] */
  struct warmth t = {.warm_until = w->from_run, .all_warm = true};
  /* After a failure, only the runs before it are still compared, so the error given is the
   * first in the disk's order, whichever thread came to it. */
  for (uint64_t r = w->from_run; r < w->to_run && r < atomic_load(&sh->first_failed); r++) {
    if (r > w->from_run) ahead -= asked[(r - 1) % MAX_AHEAD];
    while (next < w->to_run && next < r + MAX_AHEAD &&
           (next <= r + PREFETCH_RUNS || ahead < PREFETCH_BYTES)) {
      uint64_t n = 0;
      if (next >= t.cached_until) {
        int64_t nb = vs_image_prefetch(w->b, next * sh->run_bytes, sh->run_bytes);
        int64_t np = vs_image_prefetch(w->p, next * sh->run_bytes, sh->run_bytes);
        warmth_probed(&t, nb, np, next, CACHED_RUNS);
        n = (uint64_t)(nb > 0 ? nb : 0) + (uint64_t)(np > 0 ? np : 0);
      }
      warmth_asked(&t, next + 1);
      asked[next % MAX_AHEAD] = n;
      ahead += n;
      next++;
    }
    w->warm = r < t.warm_until;
    uint64_t end = (r + 1) * run_clusters < total ? (r + 1) * run_clusters : total;
    for (uint64_t c = r * run_clusters; c < end; c += piece)
      if (compare_piece(w, c, end - c < piece ? end - c : piece, bb, pb) < 0) {
        w->rc = -1;
        w->failed_run = r;
        uint_fast64_t seen = atomic_load(&sh->first_failed);
        while (r < seen && !atomic_compare_exchange_weak(&sh->first_failed, &seen, r)) {
        }
        return NULL;
      }
  }
  return NULL;
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

/* Writes the clusters the bitmap marks, in order, read again from P (runs of them at once). */
static int take_differing(struct vs_image *p, const struct cmp_shared *sh, struct vs_ps_diff *d,
                          struct vs_err *err) {
  uint64_t total = (sh->size + sh->cs - 1) / sh->cs, max_run = RUN_BYTES / sh->cs;
  if (max_run == 0) max_run = 1;
  _cleanup_(vs_freep) uint8_t *buf = vs_xmalloc(max_run * sh->cs);
  _cleanup_(vs_freep) uint8_t *pad = vs_xcalloc(1, sh->cs);
  for (uint64_t k = 0; k < total;) {
    if (!(sh->differs[k / 64] >> (k % 64) & 1)) {
      k++;
      continue;
    }
    uint64_t n = 1;
    while (k + n < total && n < max_run && (sh->differs[(k + n) / 64] >> ((k + n) % 64) & 1))
      n++;
    uint64_t off = k * sh->cs, len = off + n * sh->cs <= sh->size ? n * sh->cs : sh->size - off;
    if (vs_image_pread(p, buf, (size_t)len, off, err) < 0) return -1;
    d->st->bytes_read += len;
    for (uint64_t i = 0; i < n; i++) {
      size_t m = (size_t)(len - i * sh->cs < sh->cs ? len - i * sh->cs : sh->cs);
      if (add_changed(d, off + i * sh->cs, buf + i * sh->cs, m, sh->cs, pad, err) < 0) return -1;
    }
    k += n;
  }
  return 0;
}

/* Runs FN on A on this thread and, with N 2, on B on a thread of its own; when no thread can be
 * had, on this one after A. */
static void run_workers(void *(*fn)(void *), void *a, void *b, pthread_t *thread, size_t n) {
  bool threaded = n == 2 && pthread_create(thread, NULL, fn, b) == 0;
  fn(a);
  if (threaded)
    pthread_join(*thread, NULL);
  else if (n == 2)
    fn(b);
}

/* The second half of the disk on a thread of its own, the first on this one. The error given
 * is the first in the disk's order. */
static int compare_in_guest_order(struct cmp_worker w[2], size_t n_workers, struct vs_ps_diff *d,
                                  struct vs_err *err) {
  run_workers(cmp_worker_main, &w[0], &w[1], &w[1].thread, n_workers);
  int rc = 0;
  const struct cmp_worker *first = NULL;
  for (size_t i = 0; i < n_workers; i++) {
    d->st->skipped_holes += w[i].skipped_holes;
    d->st->bytes_mapped += w[i].mapped;
    if (w[i].rc < 0 && (!first || w[i].failed_run < first->failed_run)) first = &w[i];
  }
  if (first) rc = vs_err_set(err, first->err.code, "%s", vs_err_msg(&first->err));
  for (size_t i = 0; i < n_workers; i++)
    vs_err_clear(&w[i].err);
  return rc;
}

/* ------------------------------------------------------------------- in the file's order */

/* A fragmented qcow2 file (a guest that wrote its disk out of order, clusters allocated as
 * written) holds its clusters far from the guest's order: read in the guest's order it is read
 * at random, 2.1x the time `cat` takes to read it on a cold disk at 16 GiB. Its clusters are then
 * compared in the base file's order instead: a patched image that is a copy of the base (the
 * usual way to make one) lies the same way, so both files are read front to back. Only clusters
 * both images store as plain data in their own files are taken so; the rest (holes in one,
 * compressed, zero, a backing file's) are compared afterwards in the guest's order. */
struct stored {
  uint64_t base_host, patched_host, cluster;
};

#define SCATTERED 8 /* file order when 1 in SCATTERED data clusters jumps in the file */
/* Clusters listed at most, else guest order: 8 Mi entries of 24 bytes, 192 MiB of list (and
 * as much again while it grows and is sorted); never more than the smaller file can hold. */
#define MAX_LISTED (8ull << 20)

struct order_worker {
  struct cmp_shared *sh;
  struct vs_image *b, *p;
  const struct stored *list;
  size_t n;
  uint64_t *differs; /* its own bitmap: two workers' clusters share words */
  uint64_t mapped;   /* bytes of both images compared in place */
  atomic_bool *stop;
  uint64_t failed_at; /* with RC < 0: the guest's offset it failed at */
  int rc;
  struct vs_err err;
  pthread_t thread;
};

static int by_base_host(const void *x, const void *y) {
  const struct stored *a = x, *b = y;
  return a->base_host < b->base_host ? -1 : a->base_host > b->base_host;
}

/* Whether entry I + 1 of L lies right after entry I in both files. */
static bool follows(const struct stored *l, size_t i, uint64_t cs) {
  return l[i + 1].base_host == l[i].base_host + cs &&
         l[i + 1].patched_host == l[i].patched_host + cs;
}

/* W failed comparing the guest's bytes at OFF: it stops, and so does the other worker. */
static void *order_failed(struct order_worker *w, uint64_t off) {
  w->failed_at = off;
  vs_err_prefix(&w->err, "comparing the guest's bytes at %" PRIu64, off);
  w->rc = -1;
  atomic_store(&w->stop[0], true);
  return NULL;
}

static void *order_worker_main(void *arg) {
  struct order_worker *w = arg;
  const struct stored *l = w->list;
  uint64_t cs = w->sh->cs, size = w->sh->size;
  uint64_t piece = PIECE_BYTES / cs ? PIECE_BYTES / cs : 1; /* clusters */
  _cleanup_(vs_freep) uint8_t *bb = vs_xmalloc(PIECE_BYTES);
  _cleanup_(vs_freep) uint8_t *pb = vs_xmalloc(PIECE_BYTES);
  /* Asked ahead, and compared in place, as in the guest's order, by runs that lie together in
   * both files. */
  size_t next = 0;
  struct warmth t = {.all_warm = true};
  for (size_t i = 0; i < w->n && !atomic_load(&w->stop[0]);) {
    while (next < w->n && (next - i) * cs < PREFETCH_BYTES) {
      size_t j = next + 1;
      while (j < w->n && j - next < (RUN_BYTES + cs - 1) / cs && follows(l, j - 1, cs))
        j++;
      if (next >= t.cached_until) {
        int64_t nb = vs_image_prefetch_stored(w->b, l[next].base_host, (j - next) * cs);
        int64_t np = vs_image_prefetch_stored(w->p, l[next].patched_host, (j - next) * cs);
        warmth_probed(&t, nb, np, next, CACHED_RUNS * (RUN_BYTES / cs + 1));
      }
      warmth_asked(&t, j);
      next = j;
    }
    bool warm = i < t.warm_until;
    size_t j = i + 1;
    while (j < w->n && j - i < piece && follows(l, j - 1, cs))
      j++;
    uint64_t len = (j - i) * cs;
    for (uint64_t at = 0; at < len; at += PIECE_BYTES) {
      size_t n_at = (size_t)(len - at < PIECE_BYTES ? len - at : PIECE_BYTES);
      const uint8_t *mb = NULL, *mp = NULL;
      if (warm) {
        mb = vs_image_map_stored(w->b, l[i].base_host + at, n_at, &w->err);
        mp = mb ? vs_image_map_stored(w->p, l[i].patched_host + at, n_at, &w->err) : NULL;
      }
      if (warm ? !mp
               : vs_image_read_stored(w->b, bb, n_at, l[i].base_host + at, &w->err) < 0 ||
                     vs_image_read_stored(w->p, pb, n_at, l[i].patched_host + at, &w->err) < 0)
        return order_failed(w, l[i + at / cs].cluster * cs + at % cs);
      /* Cluster by cluster (a piece at a time for clusters larger than a piece); the disk's
       * last cluster only as far as the disk goes. */
      uint64_t seg = cs < PIECE_BYTES ? cs : PIECE_BYTES;
      for (size_t s = 0; s < n_at; s += seg) {
        const struct stored *e = &l[i + (at + s) / cs];
        uint64_t in = (at + s) % cs, off = e->cluster * cs + in;
        if (off >= size) continue;
        size_t m = n_at - s < seg ? n_at - s : (size_t)seg;
        if (m > size - off) m = (size_t)(size - off);
        bool differs;
        if (!warm) {
          differs = memcmp(bb + s, pb + s, m) != 0;
        } else if (vs_image_cmp_mapped(w->b, mb + s, w->p, mp + s, m, m, &differs, &w->err) < 0) {
          return order_failed(w, off);
        }
        if (differs) w->differs[e->cluster / 64] |= 1ULL << (e->cluster % 64);
      }
      if (warm) w->mapped += 2 * (uint64_t)n_at;
    }
    i = j;
  }
  return NULL;
}

/* Lists in *STORED the clusters both B and P store as plain data in their own files, and in
 * *OTHER the rest that are not holes in both, and says (1) whether the file's order is worth
 * taking: most clusters are stored, and one in SCATTERED of B's follows no other in its file.
 * It stops (0) as soon as the clusters left could not make the stored ones outnumber the rest,
 * so that a base stored otherwise (compressed, or an overlay's few clusters) costs no full pass,
 * and when more are found stored in both than the smaller file holds: a hostile file's clusters
 * sharing places would make a tiny file list 192 MiB. */
static int list_stored(struct vs_image *b, struct vs_image *p, const struct cmp_shared *sh,
                       struct stored **stored, size_t *n_stored, uint64_t **other, size_t *n_other,
                       uint64_t *holes) {
  uint64_t cs = sh->cs, total = (sh->size + cs - 1) / cs, jumps = 0, last = 0;
  uint64_t fits_b = vs_image_stored_max(b), fits_p = vs_image_stored_max(p);
  uint64_t fits = fits_b < fits_p ? fits_b : fits_p;
  if (vs_image_cluster_size(b) != cs || vs_image_cluster_size(p) != cs || total > MAX_LISTED ||
      fits == 0)
    return 0;
  /* A quick look first: a file whose first clusters follow each other is taken in the guest's
   * order without listing every cluster. */
  size_t cap_s = 0, cap_o = 0;
  *n_stored = *n_other = 0;
  *holes = 0;
  for (uint64_t k = 0; k < total; k++) {
    uint64_t hb, hp;
    if (vs_image_cluster_is_hole(b, k * cs, NULL) && vs_image_cluster_is_hole(p, k * cs, NULL)) {
      ++*holes;
      continue;
    }
    if (vs_image_stored_at(b, k * cs, &hb) && vs_image_stored_at(p, k * cs, &hp)) {
      if (*n_stored && hb != last + cs) jumps++;
      last = hb;
      if (*n_stored == cap_s)
        *stored = vs_xrealloc(*stored, (cap_s = cap_s ? 2 * cap_s : 1024) * sizeof(**stored));
      (*stored)[(*n_stored)++] = (struct stored){hb, hp, k};
    } else {
      if (*n_other == cap_o)
        *other = vs_xrealloc(*other, (cap_o = cap_o ? 2 * cap_o : 1024) * sizeof(**other));
      (*other)[(*n_other)++] = k;
    }
    if ((*n_stored == 4096 && jumps * SCATTERED < *n_stored) || *n_stored > fits ||
        *n_stored + (total - k - 1) <= *n_other)
      return 0;
  }
  return *n_stored > *n_other && jumps * SCATTERED >= *n_stored;
}

/* Compares in the base file's order (above); 1 when that order is not worth taking. */
static int compare_in_file_order(struct cmp_worker w[2], size_t n_workers, struct cmp_shared *sh,
                                 struct vs_ps_diff *d, struct vs_err *err) {
  _cleanup_(vs_freep) struct stored *list = NULL;
  _cleanup_(vs_freep) uint64_t *other = NULL;
  size_t n = 0, n_other = 0;
  uint64_t holes = 0, words = ((sh->size + sh->cs - 1) / sh->cs + 63) / 64;
  if (!list_stored(w[0].b, w[0].p, sh, &list, &n, &other, &n_other, &holes)) return 1;
  qsort(list, n, sizeof(*list), by_base_host);
  atomic_bool stop;
  atomic_init(&stop, false);
  struct order_worker ow[2];
  for (size_t i = 0; i < n_workers; i++) {
    ow[i] = (struct order_worker){.sh = sh,
                                  .b = w[i].b,
                                  .p = w[i].p,
                                  .stop = &stop,
                                  .list = list + n * i / n_workers,
                                  .n = n * (i + 1) / n_workers - n * i / n_workers,
                                  .differs = vs_xcalloc(words, sizeof(uint64_t))};
    vs_image_advise_sequential(w[i].b);
    vs_image_advise_sequential(w[i].p);
  }
  run_workers(order_worker_main, &ow[0], &ow[1], &ow[1].thread, n_workers);
  /* The first failure stops both workers, so the one given is the lower of at most two. */
  int rc = 0;
  const struct order_worker *failed = NULL;
  for (size_t i = 0; i < n_workers; i++)
    if (ow[i].rc < 0 && (!failed || ow[i].failed_at < failed->failed_at)) failed = &ow[i];
  if (failed) rc = vs_err_set(err, failed->err.code, "%s", vs_err_msg(&failed->err));
  for (size_t i = 0; i < n_workers; i++) {
    d->st->bytes_mapped += ow[i].mapped;
    vs_err_clear(&ow[i].err);
    for (uint64_t k = 0; k < words; k++)
      sh->differs[k] |= ow[i].differs[k];
    free(ow[i].differs);
  }
  d->st->skipped_holes += holes;
  d->st->in_file_order += n;
  /* The rest, in the guest's order, on this thread. */
  uint64_t piece = PIECE_BYTES / sh->cs ? PIECE_BYTES / sh->cs : 1;
  _cleanup_(vs_freep) uint8_t *bb = vs_xmalloc(PIECE_BYTES);
  _cleanup_(vs_freep) uint8_t *pb = vs_xmalloc(PIECE_BYTES);
  for (size_t i = 0; rc == 0 && i < n_other;) {
    size_t j = i + 1;
    while (j < n_other && j - i < piece && other[j] == other[j - 1] + 1)
      j++;
    if (compare_piece(&w[0], other[i], j - i, bb, pb) < 0)
      rc = vs_err_set(err, w[0].err.code, "%s", vs_err_msg(&w[0].err));
    i = j;
  }
  vs_err_clear(&w[0].err);
  d->st->skipped_holes += w[0].skipped_holes;
  return rc;
}

int vs_ps_compare(struct vs_image *const b[2], struct vs_image *const p[2], uint64_t cs,
                  struct vs_ps_diff *d, struct vs_err *err) {
  uint64_t size = vs_image_size(b[0]), total = (size + cs - 1) / cs;
  struct cmp_shared sh = {.size = size, .cs = cs, .run_bytes = RUN_BYTES};
  if (sh.run_bytes < cs * RUN_CLUSTERS_MIN) sh.run_bytes = cs * RUN_CLUSTERS_MIN;
  sh.n_runs = (size + sh.run_bytes - 1) / sh.run_bytes;
  _cleanup_(vs_freep) uint64_t *differs = vs_xcalloc((total + 63) / 64, sizeof(uint64_t));
  sh.differs = differs;
  atomic_init(&sh.first_failed, UINT64_MAX);
  struct cmp_worker w[2] = {{.sh = &sh, .b = b[0], .p = p[0]}, {.sh = &sh, .b = b[1], .p = p[1]}};
  size_t n_workers = b[1] && p[1] && sh.n_runs > 1 ? 2 : 1;
  for (size_t i = 0; i < n_workers; i++) {
    w[i].from_run = sh.n_runs * i / n_workers;
    w[i].to_run = sh.n_runs * (i + 1) / n_workers;
  }
  uint64_t read_before[4];
  for (size_t i = 0; i < n_workers; i++) {
    read_before[2 * i] = vs_image_bytes_read(w[i].b);
    read_before[2 * i + 1] = vs_image_bytes_read(w[i].p);
    vs_image_advise_sequential(w[i].b);
    vs_image_advise_sequential(w[i].p);
  }
  int rc = compare_in_file_order(w, n_workers, &sh, d, err);
  if (rc == 1) rc = compare_in_guest_order(w, n_workers, d, err);
  for (size_t i = 0; i < n_workers; i++)
    d->st->bytes_read += vs_image_bytes_read(w[i].b) - read_before[2 * i] +
                         vs_image_bytes_read(w[i].p) - read_before[2 * i + 1];
  d->st->clusters += total;
  if (rc < 0) return rc;
  return take_differing(p[0], &sh, d, err);
}

/* Asks for every cluster P itself holds at once, so a cold disk reads them in one sweep (and,
 * where they are in the page cache, asks again every CACHED_RUNS runs only). */
static void prefetch_own(struct vs_image *p, uint64_t run) {
  for (uint64_t off = 0; off < vs_image_size(p); off += run)
    if (vs_image_prefetch(p, off, run) < 0) off += (CACHED_RUNS - 1) * run;
}

int vs_ps_take_overlay(struct vs_image *p, uint64_t cs, struct vs_ps_diff *d, struct vs_err *err) {
  /* Runs of P's own clusters are read with one call. */
  uint64_t size = vs_image_size(p), run = RUN_BYTES > cs ? RUN_BYTES : cs, max_run = run / cs;
  _cleanup_(vs_freep) uint8_t *buf = vs_xmalloc(run);
  _cleanup_(vs_freep) uint8_t *pad = vs_xcalloc(1, cs);
  prefetch_own(p, run);
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
    if ((rc = vs_image_pread(p, buf, (size_t)len, off, err)) < 0) break;
    const uint8_t *src = buf;
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
