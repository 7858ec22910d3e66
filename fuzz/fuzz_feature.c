/* fuzz_feature: the feature-document loader on hostile JSON (a pool file, a saved document),
 * and what is done with a document that loads: serialized again, counted into a population,
 * ranked and diffed. */
#include "drift.h"
#include "feature.h"
#include "fuzz.h"
#include "population.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  struct vs_err err = {0};
  struct vs_feature *doc = vs_feature_loads((const char *)data, size, "fuzz", &err);
  vs_err_clear(&err);
  if (!doc) return 0;
  char *text = vs_feature_dumps(doc, true);
  struct vs_feature *again = text ? vs_feature_loads(text, strlen(text), "again", &err) : NULL;
  vs_err_clear(&err);
  free(text);
  struct vs_pop *pop = vs_pop_new();
  vs_pop_add(pop, doc);
  if (again) vs_pop_add(pop, again);
  vs_pop_prepare(pop);
  struct vs_drift_opts opts = {0};
  struct vs_drift *d = vs_drift_rank(pop, doc, &opts, &err);
  vs_err_clear(&err);
  if (d) json_decref(vs_drift_to_json(d, 0));
  vs_drift_free(d);
  if (again) {
    struct vs_diff *diff = vs_drift_diff(doc, again);
    json_decref(vs_diff_to_json(diff, doc, again));
    vs_diff_free(diff);
    if (vs_pop_remove(pop, again, &err) < 0) vs_err_clear(&err);
  }
  vs_pop_free(pop);
  vs_feature_free(again);
  vs_feature_free(doc);
  return 0;
}
