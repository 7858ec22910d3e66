/* fuzz_drift: what vmscope drift and vmscope_drift read besides documents: a waiver file
 * (first byte 'w'), a labels file ('l'), or a JSON array of documents ranked each against the
 * others and grouped into roles (anything else). */
#include "analytics.h"
#include "drift.h"
#include "feature.h"
#include "fuzz.h"
#include "population.h"
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DOCS 24

static void rank_all(struct vs_feature **docs, size_t n, const struct vs_waivers *w) {
  struct vs_pop *pop = vs_pop_new();
  for (size_t i = 0; i < n; i++)
    vs_pop_add(pop, docs[i]);
  vs_pop_prepare(pop);
  struct vs_drift_opts opts = {.waivers = w, .now = 1700000000};
  struct vs_err err = {0};
  for (size_t i = 0; i < n; i++) {
    struct vs_drift *d = vs_drift_rank(pop, docs[i], &opts, &err);
    vs_err_clear(&err);
    if (d) json_decref(vs_drift_to_json(d, 5));
    vs_drift_free(d);
  }
  vs_pop_free(pop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (1u << 20)) return 0;
  struct vs_err err = {0};
  char *text = malloc(size);
  if (!text) abort();
  memcpy(text, data + 1, size - 1);
  text[size - 1] = 0;
  if (data[0] == 'w') {
    struct vs_waivers *w = vs_waivers_parse(text, "fuzz", &err);
    vs_err_clear(&err);
    if (w) {
      struct vs_feature *docs[2] = {vs_feature_new(), vs_feature_new()};
      vs_feature_set_id(docs[0], "a", "web-01");
      vs_feature_set_id(docs[1], "b", "web-02");
      vs_feature_set(docs[0], "file:/etc/ssh/sshd_config:PermitRootLogin", "yes", NULL);
      rank_all(docs, 2, w);
      vs_feature_free(docs[0]);
      vs_feature_free(docs[1]);
    }
    vs_waivers_free(w);
  } else if (data[0] == 'l') {
    const char *path = fuzz_file("labels", data + 1, size - 1);
    struct vs_strmap *labels = NULL;
    if (vs_labels_load(path, &labels, &err) < 0) vs_err_clear(&err);
    vs_strmap_free(labels);
  } else {
    json_error_t je;
    json_t *root = json_loadb((const char *)data + 1, size - 1, 0, &je);
    struct vs_feature *docs[MAX_DOCS];
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(root) && n < MAX_DOCS; i++) {
      docs[n] = vs_feature_from_json(json_array_get(root, i), "fuzz", &err);
      vs_err_clear(&err);
      if (docs[n]) n++;
    }
    json_decref(root);
    rank_all(docs, n, NULL);
    struct vs_vm_tokens vms[MAX_DOCS];
    uint64_t *tokens[MAX_DOCS];
    for (size_t i = 0; i < n; i++) {
      vms[i] =
          (struct vs_vm_tokens){.id = vs_feature_id(docs[i]), .name = vs_feature_name(docs[i])};
      vms[i].n = vs_doc_tokens(docs[i], &tokens[i]);
      vms[i].tokens = tokens[i];
      vms[i].label = i % 3 == 0 ? "web" : NULL;
    }
    struct vs_analytics_opts ao = {0};
    if (n) {
      struct vs_analysis *a = vs_analyze(vms, n, &ao);
      json_decref(vs_analysis_json(a, vms));
      vs_analysis_free(a);
    }
    for (size_t i = 0; i < n; i++) {
      free(tokens[i]);
      vs_feature_free(docs[i]);
    }
  }
  free(text);
  return 0;
}
