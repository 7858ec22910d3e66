/* baseline.c: see baseline.h. */
#include "baseline.h"

#include <string.h>

#include "crypto.h"
#include "feature.h"
#include "strmap.h"
#include "util.h"

struct vs_baseline {
  char id[VS_BASELINE_ID_LEN + 1];
  json_t *settings;
  size_t made_distance;
};

/* A key's majority vote (Boyer-Moore) over the documents that hold it: a value more than half
 * of all documents hold is more than half of these too, and is the candidate left whatever the
 * documents' order; HELD, counted in a second pass, says whether it is one, and HOLDERS how
 * many documents hold the key. */
struct vote {
  const char *candidate; /* a document's string: the documents outlive the vote */
  size_t votes, held, holders;
};

struct vs_baseline *vs_baseline_make(const struct vs_view *local) {
  size_t n = vs_view_count(local);
  _cleanup_(vs_strmap_freep) struct vs_strmap *votes = vs_strmap_new(free);
  size_t settings = 0; /* of all the documents */
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < n; i++) {
      const struct vs_feature *doc = vs_view_doc(local, i);
      const char *key, *value;
      for (size_t pos = 0; vs_feature_next(doc, &pos, &key, &value);) {
        struct vote *v = vs_strmap_get(votes, key);
        if (pass == 1) {
          v->held += strcmp(v->candidate, value) == 0;
          v->holders++;
          settings++;
        } else if (!v) {
          v = vs_xcalloc(1, sizeof(*v));
          *v = (struct vote){value, 1, 0, 0};
          vs_strmap_put(votes, key, v);
        } else if (v->votes == 0) {
          *v = (struct vote){value, 1, 0, 0};
        } else {
          v->votes += strcmp(v->candidate, value) == 0 ? 1 : (size_t)-1;
        }
      }
    }
  struct vs_baseline *b = vs_xcalloc(1, sizeof(*b));
  b->settings = json_object();
  const char *key;
  void *p;
  /* The patches' members (vs_baseline_distance of every document) from the votes: every
   * setting but those that hold the baseline's value, and for each of its keys, the documents
   * that lack it. */
  b->made_distance = settings;
  for (size_t pos = 0; vs_strmap_next(votes, &pos, &key, &p);) {
    const struct vote *v = p;
    if (v->held * 2 <= n) continue;
    if (json_object_set_new(b->settings, key, json_string(v->candidate)) < 0)
      abort();                          /* out of memory: a document's strings are UTF-8 */
    b->made_distance += n - v->holders; /* lack it */
    b->made_distance -= v->held;        /* hold its value: SETTINGS counted them */
  }
  _cleanup_(vs_freep) char *text = json_dumps(b->settings, JSON_COMPACT | JSON_SORT_KEYS);
  unsigned char digest[VS_SHA256_LEN];
  struct vs_err err = {0};
  if (!text || vs_sha256(text, strlen(text), digest, &err) < 0) abort();
  vs_hex(digest, VS_BASELINE_ID_LEN / 2, b->id);
  return b;
}

void vs_baseline_free(struct vs_baseline *b) {
  if (!b) return;
  json_decref(b->settings);
  free(b);
}

void vs_baseline_freep(struct vs_baseline **b) {
  vs_baseline_free(*b);
  *b = NULL;
}

const char *vs_baseline_id(const struct vs_baseline *b) {
  return b->id;
}

const json_t *vs_baseline_settings(const struct vs_baseline *b) {
  return b->settings;
}

size_t vs_baseline_made_distance(const struct vs_baseline *b) {
  return b->made_distance;
}

/* DOC's difference from B: how many members its patch onto B has, which are also set in PATCH
 * when it is not NULL (the values that differ or B lacks, null for B's keys DOC lacks). */
static size_t diff(const struct vs_baseline *b, const struct vs_feature *doc, json_t *patch) {
  size_t differ = 0, present = 0; /* PRESENT: the keys of B that DOC holds */
  const char *key, *value;
  for (size_t pos = 0; vs_feature_next(doc, &pos, &key, &value);) {
    const json_t *base = json_object_get(b->settings, key);
    present += base != NULL;
    if (base && strcmp(json_string_value(base), value) == 0) continue;
    differ++;
    if (patch && json_object_set_new(patch, key, json_string(value)) < 0)
      abort(); /* as in vs_feature_to_json: a document's strings are UTF-8 */
  }
  size_t lacking = json_object_size(b->settings) - present;
  if (patch && lacking) {
    json_t *base;
    json_object_foreach(b->settings, key, base) {
      if (!vs_feature_get(doc, key) && json_object_set_new(patch, key, json_null()) < 0) abort();
    }
  }
  return differ + lacking;
}

size_t vs_baseline_distance(const struct vs_baseline *b, const struct vs_feature *doc) {
  return diff(b, doc, NULL);
}

json_t *vs_baseline_patch(const struct vs_baseline *b, const struct vs_feature *doc) {
  json_t *patch = json_object();
  diff(b, doc, patch);
  return patch;
}

bool vs_baseline_worn(const struct vs_baseline *b, size_t distance, size_t vms) {
  return distance > 2 * b->made_distance && distance - b->made_distance > 16 * vms;
}
