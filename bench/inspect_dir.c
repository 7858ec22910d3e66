/* bench/inspect_dir: documents per second, peak RSS and the Augeas share of inspecting one
 * directory tree N times, with one extractor as the plugin uses it, against Augeas loading the
 * same tree the default way (every lens autoloaded over the whole of /etc: what augtool does).
 *
 *   bench/inspect_dir TREE [N [CACHEDIR]]   (N defaults to 20; with CACHEDIR, the extractor
 *                                          keeps and reads parse results there) */
#include "extract.h"
#include "parse_cache.h"

#include <augeas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s TREE [N]\n", argv[0]);
    return 2;
  }
  const char *tree = argv[1];
  int n = argc > 2 ? atoi(argv[2]) : 20;
  if (n < 1 || n > 100000) {
    fprintf(stderr, "N must be between 1 and 100000\n");
    return 2;
  }
  struct vs_err err = {0};
  struct vs_parse_cache *cache = NULL;
  if (argc > 3 && !(cache = vs_parse_cache_open(argv[3], &err))) {
    fprintf(stderr, "inspect_dir: %s\n", vs_err_msg(&err));
    return 1;
  }
  struct vs_extractor *x = vs_extractor_new(NULL, &err);
  vs_extractor_set_parse_cache(x, cache);
  double *total = calloc((size_t)n, sizeof(double)), *files = calloc((size_t)n, sizeof(double));
  size_t settings = 0, parsed = 0;
  double t0 = vs_now_monotonic();
  for (int i = 0; i < n; i++) {
    struct vs_source *src = vs_source_open_dir(tree, &err);
    struct vs_feature *doc = vs_feature_new();
    struct vs_extract_stats st;
    if (!src || vs_extract(x, src, doc, &st, &err) < 0) {
      fprintf(stderr, "inspect_dir: %s\n", vs_err_msg(&err));
      return 1;
    }
    /* Serializing is part of producing a document. */
    free(vs_feature_dumps(doc, false));
    total[i] = st.seconds_total;
    files[i] = st.seconds_files;
    settings = vs_feature_count(doc);
    parsed = st.files_parsed;
    vs_feature_free(doc);
    vs_source_free(src);
  }
  double wall = vs_now_monotonic() - t0;
  double first = total[0], first_files = files[0];
  qsort(total, (size_t)n, sizeof(double), cmp_double);
  qsort(files, (size_t)n, sizeof(double), cmp_double);
  long rss = vs_peak_rss_kib();

  /* The peer: Augeas with every lens autoloaded, reading the tree's /etc as augtool does. */
  double a0 = vs_now_monotonic();
  augeas *aug = aug_init(tree, NULL, AUG_NO_ERR_CLOSE);
  double full_load = vs_now_monotonic() - a0;
  char **m = NULL;
  int n_files = aug ? aug_match(aug, "/augeas/files//path", &m) : 0;
  for (int i = 0; i < n_files; i++)
    free(m[i]);
  free(m);
  if (aug) aug_close(aug);

  printf("inspect-dir: %s, %d runs, %zu settings per document, %zu config files parsed\n", tree, n,
         settings, parsed);
  printf("  per tree: first %.1f ms (Augeas %.1f ms, lenses loading), then median %.1f ms, "
         "max %.1f ms\n",
         first * 1e3, first_files * 1e3, total[n / 2] * 1e3, total[n - 1] * 1e3);
  printf("  Augeas over the watch list: median %.1f ms, max %.1f ms\n", files[n / 2] * 1e3,
         files[n - 1] * 1e3);
  printf("  documents per second: %.1f (wall %.2f s for %d)\n", n / wall, wall, n);
  printf("  peak RSS: %.1f MiB\n", rss / 1024.0);
  printf("  peer, Augeas default load of the same tree (%d files): %.1f ms; ratio to our "
         "median Augeas time: %.0fx\n",
         n_files, full_load * 1e3, full_load / files[n / 2]);
  free(total);
  free(files);
  vs_extractor_free(x);
  vs_parse_cache_free(cache);
  return 0;
}
