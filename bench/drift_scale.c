/* drift_scale [DOCS] [KEYS] [THREADS]: how drift ranking scales.
 *
 * Synthetic documents, made deterministically from their index so that a target can be made
 * again instead of kept: KEYS settings each, of the shapes real documents have. Most keys agree
 * across the fleet with a few deviants (97% one value, the rest among three others); 5% of keys
 * follow one of three roles; 2% are set on only some VMs; 1% differ on every VM (hostname,
 * machine-id, host key digests). For 1,000, 2,000, 5,000 and DOCS documents it prints: the time
 * to build the population (documents added by THREADS threads into populations of their own,
 * then merged, so host counts merging into fleet counts is what is measured), the time to rank
 * one target (median over 200), the time to rank every document against the others on THREADS
 * threads, the population's distinct keys and pairs, and the peak RSS. Making the documents is
 * timed apart: it stands for loading them from the snapshot pool. */
#include "drift.h"
#include "population.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static const char *const namespaces[] = {"file:/etc/app/conf%zu.conf:setting",
                                         "pkg:package-",
                                         "sysctl:net.core.param",
                                         "svc:unit-",
                                         "meta:/etc/f",
                                         "user:u"};

/* Document I of the fleet, with KEYS settings. */
static struct vs_feature *make_doc(size_t i, size_t keys) {
  struct vs_feature *d = vs_feature_new();
  char id[32], key[96], value[64];
  snprintf(id, sizeof(id), "vm-%06zu", i);
  vs_feature_set_id(d, id, id);
  unsigned role = (unsigned)(mix(i * 7919 + 1) % 3);
  for (size_t k = 0; k < keys; k++) {
    uint64_t h = mix((uint64_t)i * 1000003ULL + k);
    const char *ns = namespaces[k % 6];
    if (k % 6 == 0)
      snprintf(key, sizeof(key), ns, k / 60);
    else
      snprintf(key, sizeof(key), "%s", ns);
    size_t kl = strlen(key);
    snprintf(key + kl, sizeof(key) - kl, "%zu", k);
    unsigned bucket = (unsigned)(k % 100);
    if (bucket < 1) { /* differs everywhere */
      snprintf(value, sizeof(value), "%016llx", (unsigned long long)h);
    } else if (bucket < 3) { /* set on some VMs only */
      if (h % 4 == 0) continue;
      snprintf(value, sizeof(value), "on");
    } else if (bucket < 8) { /* follows the role */
      snprintf(value, sizeof(value), "role-%u-%zu", role, k % 7);
    } else if (h % 100 < 97) {
      snprintf(value, sizeof(value), "value-%zu", k % 13);
    } else {
      snprintf(value, sizeof(value), "deviant-%u", (unsigned)(h % 3));
    }
    vs_feature_set(d, key, value, NULL);
  }
  return d;
}

struct job {
  size_t from, to, keys;
  struct vs_pop *pop;    /* build: this thread's own; rank: the shared, prepared one */
  double make_s, work_s; /* time making documents, time in the core */
  size_t findings;
};

static void *build_part(void *p) {
  struct job *j = p;
  j->pop = vs_pop_new();
  for (size_t i = j->from; i < j->to; i++) {
    double t0 = vs_now_monotonic();
    struct vs_feature *d = make_doc(i, j->keys);
    double t1 = vs_now_monotonic();
    vs_pop_add(j->pop, d);
    j->work_s += vs_now_monotonic() - t1;
    j->make_s += t1 - t0;
    vs_feature_free(d);
  }
  return NULL;
}

static void *rank_part(void *p) {
  struct job *j = p;
  for (size_t i = j->from; i < j->to; i++) {
    double t0 = vs_now_monotonic();
    struct vs_feature *d = make_doc(i, j->keys);
    double t1 = vs_now_monotonic();
    struct vs_drift *r = vs_drift_rank(j->pop, d, NULL, NULL);
    j->work_s += vs_now_monotonic() - t1;
    j->make_s += t1 - t0;
    if (r) j->findings += r->n_findings;
    vs_drift_free(r);
    vs_feature_free(d);
  }
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void run(size_t docs, size_t keys, size_t threads) {
  struct job jobs[16] = {{0}};
  pthread_t tid[16];
  double t0 = vs_now_monotonic();
  for (size_t t = 0; t < threads; t++) {
    jobs[t] =
        (struct job){.from = docs * t / threads, .to = docs * (t + 1) / threads, .keys = keys};
    pthread_create(&tid[t], NULL, build_part, &jobs[t]);
  }
  double make_s = 0, add_s = 0;
  for (size_t t = 0; t < threads; t++) {
    pthread_join(tid[t], NULL);
    make_s = jobs[t].make_s > make_s ? jobs[t].make_s : make_s;
    add_s = jobs[t].work_s > add_s ? jobs[t].work_s : add_s;
  }
  double wall_build = vs_now_monotonic() - t0;
  double m0 = vs_now_monotonic();
  struct vs_pop *pop = jobs[0].pop;
  for (size_t t = 1; t < threads; t++) {
    vs_pop_merge(pop, jobs[t].pop);
    vs_pop_free(jobs[t].pop);
  }
  double merge_s = vs_now_monotonic() - m0;
  double p0 = vs_now_monotonic();
  vs_pop_prepare(pop);
  double prepare_s = vs_now_monotonic() - p0;

  /* One target at a time. */
  enum { SAMPLES = 200 };
  double one[SAMPLES];
  for (size_t s = 0; s < SAMPLES; s++) {
    struct vs_feature *d = make_doc((s * 7919) % docs, keys);
    double r0 = vs_now_monotonic();
    struct vs_drift *r = vs_drift_rank(pop, d, NULL, NULL);
    one[s] = vs_now_monotonic() - r0;
    vs_drift_free(r);
    vs_feature_free(d);
  }
  qsort(one, SAMPLES, sizeof(double), cmp_double);

  /* Everyone. */
  double a0 = vs_now_monotonic();
  size_t findings = 0;
  double rank_make = 0, rank_core = 0;
  for (size_t t = 0; t < threads; t++) {
    jobs[t] = (struct job){
        .from = docs * t / threads, .to = docs * (t + 1) / threads, .keys = keys, .pop = pop};
    pthread_create(&tid[t], NULL, rank_part, &jobs[t]);
  }
  for (size_t t = 0; t < threads; t++) {
    pthread_join(tid[t], NULL);
    findings += jobs[t].findings;
    rank_make = jobs[t].make_s > rank_make ? jobs[t].make_s : rank_make;
    rank_core = jobs[t].work_s > rank_core ? jobs[t].work_s : rank_core;
  }
  double wall_all = vs_now_monotonic() - a0;
  printf("%6zu docs x %zu keys: build %.2f s (adding %.2f s on %zu threads, merge %.2f s, "
         "prepare %.2f s; making documents %.2f s apart), %zu keys, %zu pairs\n",
         docs, keys, add_s + merge_s + prepare_s, add_s, threads, merge_s, prepare_s, make_s,
         vs_pop_keys(pop), vs_pop_pairs(pop));
  printf("%6s rank one target: median %.2f ms, p95 %.2f ms; rank all %zu: %.1f s in the core on "
         "%zu threads (%.1f s wall with making documents); %.0f findings per VM; peak RSS %ld "
         "MiB\n",
         "", one[SAMPLES / 2] * 1e3, one[SAMPLES * 95 / 100] * 1e3, docs, rank_core, threads,
         wall_all, (double)findings / (double)docs, vs_peak_rss_kib() / 1024);
  (void)wall_build;
  (void)rank_make;
  fflush(stdout);
  vs_pop_free(pop);
}

int main(int argc, char **argv) {
  size_t docs = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
  size_t keys = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000;
  size_t threads = argc > 3 ? strtoul(argv[3], NULL, 10) : 2;
  if (threads < 1 || threads > 16 || docs < 2 || keys < 1) {
    fprintf(stderr, "usage: drift_scale [DOCS>=2] [KEYS] [THREADS 1..16]\n");
    return 2;
  }
  printf("drift-scale: targets: build <= 5 s, one target <= 20 ms, all <= 60 s on 2 cores, "
         "peak RSS <= 2 GiB (at 10,000 x 2,000)\n");
  const size_t steps[] = {1000, 2000, 5000};
  for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++)
    if (steps[s] < docs) run(steps[s], keys, threads);
  run(docs, keys, threads);
  return 0;
}
