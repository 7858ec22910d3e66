/* fleet/baseline: a host's baseline holds the value more than half of its VMs hold of each key,
 * whatever their order; a VM's patch onto it makes its settings again (RFC 7386, as
 * vs_json_merge_apply and the store's vmscope_settings apply it) and has as many members as its
 * distance; and it wears out only when the patches have grown. */
#include "baseline.h"
#include "feature.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* VM I of N: "same" on every VM; "most" 'a' on all but every third ('b'); "half" set on the
 * even VMs only; "split" 'x' on half and 'y' on the other; "own" a value of its own; "some"
 * set on the first VM only. */
static struct vs_feature *make_vm(size_t i) {
  struct vs_feature *d = vs_feature_new();
  char id[32], own[32];
  snprintf(id, sizeof(id), "vm-%zu", i);
  snprintf(own, sizeof(own), "own-%zu", i);
  vs_feature_set_id(d, id, id);
  vs_feature_set(d, "same", "1", NULL);
  vs_feature_set(d, "most", i % 3 == 2 ? "b" : "a", NULL);
  if (i % 2 == 0) vs_feature_set(d, "half", "on", NULL);
  vs_feature_set(d, "split", i % 2 ? "x" : "y", NULL);
  vs_feature_set(d, "own", own, NULL);
  if (i == 0) vs_feature_set(d, "some", "z", NULL);
  return d;
}

/* A view of VMs FROM..TO (TO < FROM: backwards). */
static struct vs_view *view_of(size_t from, size_t to) {
  struct vs_view *v = vs_view_new();
  for (size_t i = from;; i = to < from ? i - 1 : i + 1) {
    vs_view_add(v, make_vm(i));
    if (i == to) break;
  }
  return v;
}

static char *settings_text(const json_t *settings) {
  return json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS);
}

int main(void) {
  plan_no_plan();
  struct vs_view *six = view_of(0, 5), *backwards = view_of(5, 0);
  struct vs_baseline *b = vs_baseline_make(six), *b2 = vs_baseline_make(backwards);
  char *text = settings_text(vs_baseline_settings(b));
  /* "half" is on 3 of 6: not more than half; "split" 3 and 3 */
  is_str(text, "{\"most\":\"a\",\"same\":\"1\"}",
         "the baseline holds the values more than half of the VMs hold, and no other key");
  is_str(vs_baseline_id(b), vs_baseline_id(b2),
         "the same VMs in another order make the same baseline, by the same id");
  ok(strlen(vs_baseline_id(b)) == VS_BASELINE_ID_LEN &&
         strspn(vs_baseline_id(b), "0123456789abcdef") == VS_BASELINE_ID_LEN,
     "its id is %d hex digits: %s", VS_BASELINE_ID_LEN, vs_baseline_id(b));
  free(text);
  struct vs_view *five = view_of(0, 4); /* "half": 3 of 5, "split": y on 3 */
  struct vs_baseline *b5 = vs_baseline_make(five);
  text = settings_text(vs_baseline_settings(b5));
  is_str(text, "{\"half\":\"on\",\"most\":\"a\",\"same\":\"1\",\"split\":\"y\"}",
         "of five VMs, a value on three is in it, and one of a key's values");
  ok(strcmp(vs_baseline_id(b5), vs_baseline_id(b)) != 0, "another baseline, another id");
  free(text);

  size_t total = 0, wrong = 0;
  for (size_t i = 0; i < 6; i++) {
    const struct vs_feature *doc = vs_view_doc(six, i);
    json_t *patch = vs_baseline_patch(b, doc);
    json_t *made = vs_json_merge_apply(vs_baseline_settings(b), patch);
    json_t *whole = vs_feature_to_json(doc);
    size_t distance = vs_baseline_distance(b, doc);
    if (!json_equal(made, json_object_get(whole, "settings")) ||
        json_object_size(patch) != distance) {
      char *p = settings_text(patch);
      diag("VM %zu: patch %s, distance %zu", i, p, distance);
      free(p);
      wrong++;
    }
    total += distance;
    json_decref(patch);
    json_decref(made);
    json_decref(whole);
  }
  ok(wrong == 0,
     "each VM's patch onto it makes its settings, and has as many members as its "
     "distance (%zu VMs wrong)",
     wrong);
  json_t *p0 = vs_baseline_patch(b, vs_view_doc(six, 2)); /* most b, no half, split y */
  text = settings_text(p0);
  is_str(text, "{\"half\":\"on\",\"most\":\"b\",\"own\":\"own-2\",\"split\":\"y\"}",
         "a patch holds the values that differ and the keys the baseline lacks");
  free(text);
  json_decref(p0);
  struct vs_feature *lacking = vs_feature_new();
  vs_feature_set_id(lacking, "vm-x", "vm-x");
  vs_feature_set(lacking, "most", "a", NULL);
  p0 = vs_baseline_patch(b, lacking);
  text = settings_text(p0);
  is_str(text, "{\"same\":null}", "and null for a key of the baseline the VM lacks");
  is_num((double)vs_baseline_distance(b, lacking), 1, "which counts in its distance");
  free(text);
  json_decref(p0);
  vs_feature_free(lacking);

  is_num((double)vs_baseline_made_distance(b), (double)total,
         "its made distance is its VMs' distances together");
  size_t total5 = 0; /* "half", in the baseline of five, lacked by two of them */
  for (size_t i = 0; i < 5; i++)
    total5 += vs_baseline_distance(b5, vs_view_doc(five, i));
  is_num((double)vs_baseline_made_distance(b5), (double)total5,
         "and with keys of the baseline some VMs lack, too");
  ok(!vs_baseline_worn(b, total + 6 * 16, 6),
     "a baseline is not worn by 16 more members a VM (a rollout of 16 keys)");
  ok(vs_baseline_worn(b, 2 * total + 6 * 16 + 1, 6),
     "but is by more than that, the patches more than twice as large as when it was made");
  struct vs_view *none = vs_view_new();
  struct vs_baseline *empty = vs_baseline_make(none);
  text = settings_text(vs_baseline_settings(empty));
  is_str(text, "{}", "no VMs: an empty baseline");
  ok(!vs_baseline_worn(empty, 16, 1) && vs_baseline_worn(empty, 17, 1),
     "one made of none wears out at more than 16 members a VM");
  free(text);
  vs_baseline_free(empty);
  vs_view_free(none);
  vs_baseline_free(b);
  vs_baseline_free(b2);
  vs_baseline_free(b5);
  vs_view_free(six);
  vs_view_free(backwards);
  vs_view_free(five);
  return done_testing();
}
