#include "feature.h"

#include "strmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The key and the value are part of the setting's allocation, which the settings map keys by
 * its KEY (vs_strmap_new_keys_in_values): one allocation a setting, not two, where documents
 * of thousands of settings are loaded and freed by the thousand (the elected host of a fleet
 * store, bench/fleet-scale.sh), and a lookup reads the key and the value in one place.
 *
 * A setting from no origin is shared between documents that hold the same (put_shared):
 * a copy (a VM's previous snapshot made from its newest) or a document loaded onto a
 * baseline (vs_feature_from_json_merged's BASE) holds the other's, not a copy of its own. A
 * shared setting never changes: a holder that would change it puts its own in its place. */
struct setting {
  const char *origin; /* interned in doc->origins; NULL for one that is shared */
  const char *value;  /* in KEY's allocation, after it */
  unsigned refs;      /* holders besides the first (atomic: documents are freed anywhere) */
  char key[];
};

/* A setting KEY (KEY_LEN bytes) of VALUE's LEN bytes (neither holds a NUL), from no origin
 * yet. */
static struct setting *setting_new(const char *key, size_t key_len, const char *value, size_t len) {
  struct setting *s = vs_xmalloc(sizeof(*s) + key_len + 1 + len + 1);
  s->origin = NULL;
  s->refs = 0;
  memcpy(s->key, key, key_len);
  s->key[key_len] = 0;
  char *v = s->key + key_len + 1;
  memcpy(v, value, len);
  v[len] = 0;
  s->value = v;
  return s;
}

/* Frees P, a struct setting, or, while another document holds it, drops one holder. */
static void setting_free(void *p) {
  struct setting *s = p;
  unsigned refs = __atomic_load_n(&s->refs, __ATOMIC_ACQUIRE);
  while (refs && !__atomic_compare_exchange_n(&s->refs, &refs, refs - 1, false, __ATOMIC_ACQ_REL,
                                              __ATOMIC_ACQUIRE))
    ;
  if (!refs) free(s);
}

/* A copy of S, from no origin, held by no one else. */
static struct setting *setting_copy(const struct setting *s) {
  return setting_new(s->key, strlen(s->key), s->value, strlen(s->value));
}

/* Puts S into MAP of settings, shared when it is from no origin (an origin is interned in its
 * document); else a copy of it from none. */
static void put_shared(struct vs_strmap *map, struct setting *s) {
  if (s->origin)
    s = setting_copy(s);
  else
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
  vs_strmap_put(map, s->key, s);
}

static bool setting_shared(struct setting *s) {
  return __atomic_load_n(&s->refs, __ATOMIC_ACQUIRE) != 0;
}

static struct vs_strmap *settings_new(void) {
  return vs_strmap_new_keys_in_values(setting_free, offsetof(struct setting, key));
}

/* Puts KEY = VALUE (strings) into MAP of settings, replacing what it held. */
static void put_setting(struct vs_strmap *map, const char *key, const char *value) {
  struct setting *s = setting_new(key, strlen(key), value, strlen(value));
  vs_strmap_put(map, s->key, s);
}

struct skipped {
  char *path, *reason;
};

struct vs_feature {
  char *id, *name, *taken_at;
  char *source_kind, *source_path, *source_backend;
  struct vs_strmap *os;       /* field -> char * */
  struct vs_strmap *settings; /* key -> struct setting * */
  struct vs_strmap *origins;  /* origin -> owned copy of it: the interned string */
  struct vs_strmap *defaults; /* key -> char *: the value the key has when it is absent */
  struct skipped *skipped;
  size_t n_skipped, cap_skipped, n_skipped_dropped;
  unsigned refs; /* holders besides the first (vs_feature_ref) */
};

struct vs_feature *vs_feature_new(void) {
  struct vs_feature *doc = vs_xcalloc(1, sizeof(*doc));
  doc->os = vs_strmap_new(free);
  doc->settings = settings_new();
  doc->origins = vs_strmap_new(free);
  doc->defaults = vs_strmap_new(free);
  doc->id = vs_xstrdup("");
  doc->name = vs_xstrdup("");
  doc->taken_at = vs_xstrdup("1970-01-01T00:00:00Z");
  doc->source_kind = vs_xstrdup("dir");
  doc->source_path = vs_xstrdup("");
  doc->source_backend = vs_xstrdup("dir");
  return doc;
}

struct vs_feature *vs_feature_ref(struct vs_feature *doc) {
  if (doc) __atomic_add_fetch(&doc->refs, 1, __ATOMIC_RELAXED);
  return doc;
}

void vs_feature_free(struct vs_feature *doc) {
  if (!doc) return;
  /* Another holder still has it: the last one frees it. */
  unsigned refs = __atomic_load_n(&doc->refs, __ATOMIC_ACQUIRE);
  while (refs && !__atomic_compare_exchange_n(&doc->refs, &refs, refs - 1, false, __ATOMIC_ACQ_REL,
                                              __ATOMIC_ACQUIRE))
    ;
  if (refs) return;
  free(doc->id);
  free(doc->name);
  free(doc->taken_at);
  free(doc->source_kind);
  free(doc->source_path);
  free(doc->source_backend);
  vs_strmap_free(doc->os);
  vs_strmap_free(doc->settings);
  vs_strmap_free(doc->origins);
  vs_strmap_free(doc->defaults);
  for (size_t i = 0; i < doc->n_skipped; i++) {
    free(doc->skipped[i].path);
    free(doc->skipped[i].reason);
  }
  free(doc->skipped);
  free(doc);
}

void vs_feature_freep(struct vs_feature **doc) {
  vs_feature_free(*doc);
}

static char *sanitized(const char *s, size_t len) {
  struct vs_buf b = {0};
  vs_buf_add_sanitized(&b, s, len);
  return vs_buf_steal(&b);
}

static void replace(char **slot, const char *value) {
  char *v = sanitized(value ? value : "", value ? strlen(value) : 0);
  free(*slot);
  *slot = v;
}

void vs_feature_set_id(struct vs_feature *doc, const char *id, const char *name) {
  replace(&doc->id, id);
  replace(&doc->name, name);
}

void vs_feature_set_taken_at(struct vs_feature *doc, int64_t unix_seconds) {
  char buf[21];
  vs_format_utc(unix_seconds, buf);
  replace(&doc->taken_at, buf);
}

void vs_feature_set_source(struct vs_feature *doc, const char *kind, const char *path,
                           const char *backend) {
  replace(&doc->source_kind, kind);
  replace(&doc->source_path, path);
  replace(&doc->source_backend, backend);
}

const char *vs_feature_id(const struct vs_feature *doc) {
  return doc->id;
}
const char *vs_feature_name(const struct vs_feature *doc) {
  return doc->name;
}
const char *vs_feature_taken_at(const struct vs_feature *doc) {
  return doc->taken_at;
}

const char *vs_feature_source(const struct vs_feature *doc, const char *field) {
  if (strcmp(field, "kind") == 0) return doc->source_kind;
  if (strcmp(field, "path") == 0) return doc->source_path;
  if (strcmp(field, "backend") == 0) return doc->source_backend;
  return NULL;
}

void vs_feature_set_os(struct vs_feature *doc, const char *field, const char *value) {
  vs_strmap_put(doc->os, field, sanitized(value, strlen(value)));
}

const char *vs_feature_os(const struct vs_feature *doc, const char *field) {
  return vs_strmap_get(doc->os, field);
}

static const char *intern_origin(struct vs_feature *doc, const char *origin) {
  if (!origin) return NULL;
  const char *have = vs_strmap_get(doc->origins, origin);
  if (have) return have;
  /* A guest's file name may be any bytes; the document is JSON, whose keys must be UTF-8 (the
   * provenance map is keyed by origin): stored as keys are, with \xNN for what is not. */
  struct vs_buf b = {0};
  vs_buf_add_sanitized(&b, origin, strlen(origin));
  char *copy = b.data ? vs_buf_steal(&b) : vs_xstrdup("");
  vs_strmap_put(doc->origins, origin, copy);
  return copy;
}

void vs_feature_setn(struct vs_feature *doc, const char *key, const char *value, size_t len,
                     const char *origin) {
  struct vs_buf k = {0};
  vs_buf_add_sanitized(&k, key, strlen(key));
  const char *key_text = k.data ? k.data : "";
  bool is_new = !vs_strmap_has(doc->settings, key_text);
  if (is_new && vs_strmap_count(doc->settings) >= VS_FEATURE_MAX_SETTINGS) {
    if (vs_strmap_count(doc->settings) == VS_FEATURE_MAX_SETTINGS)
      vs_feature_skip(doc, key_text,
                      "document already holds %d settings; this and later ones dropped",
                      VS_FEATURE_MAX_SETTINGS);
    vs_buf_free(&k);
    return;
  }
  size_t keep = len;
  if (len > VS_FEATURE_MAX_VALUE) {
    keep = VS_FEATURE_MAX_VALUE;
    /* Do not cut a UTF-8 sequence in half: back up to a lead byte. */
    while (keep > 0 && ((unsigned char)value[keep] & 0xC0) == 0x80)
      keep--;
    vs_feature_skip(doc, key_text, "value is %zu bytes; kept the first %zu", len, keep);
  }
  struct vs_buf v = {0};
  vs_buf_add_sanitized(&v, value, keep);
  struct setting *s = setting_new(key_text, k.len, v.data ? v.data : "", v.len);
  vs_buf_free(&v);
  s->origin = intern_origin(doc, origin);
  vs_strmap_put(doc->settings, s->key, s);
  vs_buf_free(&k);
}

void vs_feature_set(struct vs_feature *doc, const char *key, const char *value,
                    const char *origin) {
  vs_feature_setn(doc, key, value, strlen(value), origin);
}

void vs_feature_setf(struct vs_feature *doc, const char *key, const char *origin, const char *fmt,
                     ...) {
  va_list ap;
  va_start(ap, fmt);
  char *v = NULL;
  int n = vasprintf(&v, fmt, ap);
  va_end(ap);
  if (n < 0) abort();
  vs_feature_setn(doc, key, v, (size_t)n, origin);
  free(v);
}

const char *vs_feature_get(const struct vs_feature *doc, const char *key) {
  struct setting *s = vs_strmap_get(doc->settings, key);
  return s ? s->value : NULL;
}

const char *vs_feature_origin(const struct vs_feature *doc, const char *key) {
  struct setting *s = vs_strmap_get(doc->settings, key);
  return s ? s->origin : NULL;
}

/* Whether maps A and B of strings (or, with SETTINGS, of struct setting) hold the same values
 * under the same keys. */
static bool same_map(const struct vs_strmap *a, const struct vs_strmap *b, bool settings) {
  if (vs_strmap_count(a) != vs_strmap_count(b)) return false;
  size_t pos = 0;
  const char *k;
  void *v;
  while (vs_strmap_next(a, &pos, &k, &v)) {
    void *w = vs_strmap_get(b, k);
    if (!w) return false;
    const char *x = settings ? ((struct setting *)v)->value : v;
    const char *y = settings ? ((struct setting *)w)->value : w;
    if (strcmp(x, y) != 0) return false;
  }
  return true;
}

static bool same(const struct vs_feature *a, const struct vs_feature *b, bool but_time) {
  if (!a || !b) return a == b;
  return a == b ||
         (strcmp(a->id, b->id) == 0 && strcmp(a->name, b->name) == 0 &&
          (but_time || strcmp(a->taken_at, b->taken_at) == 0) &&
          strcmp(a->source_kind, b->source_kind) == 0 &&
          strcmp(a->source_path, b->source_path) == 0 &&
          strcmp(a->source_backend, b->source_backend) == 0 && same_map(a->os, b->os, false) &&
          same_map(a->defaults, b->defaults, false) && same_map(a->settings, b->settings, true));
}

bool vs_feature_same_but_provenance(const struct vs_feature *a, const struct vs_feature *b) {
  return same(a, b, false);
}

static void add_skipped(struct vs_feature *doc, char *path, char *reason) {
  if (doc->n_skipped >= VS_FEATURE_MAX_SKIPPED) {
    doc->n_skipped_dropped++;
    free(path);
    free(reason);
    return;
  }
  if (doc->n_skipped == doc->cap_skipped) {
    doc->cap_skipped = doc->cap_skipped ? doc->cap_skipped * 2 : 8;
    doc->skipped = vs_xrealloc(doc->skipped, doc->cap_skipped * sizeof(*doc->skipped));
  }
  doc->skipped[doc->n_skipped++] = (struct skipped){path, reason};
}

/* A copy of DOC; with SKIPPED, its files skipped too (never where each setting came from). */
static struct vs_feature *copy(const struct vs_feature *doc, bool skipped) {
  struct vs_feature *copy = vs_xcalloc(1, sizeof(*copy));
  copy->id = vs_xstrdup(doc->id);
  copy->name = vs_xstrdup(doc->name);
  copy->taken_at = vs_xstrdup(doc->taken_at);
  copy->source_kind = vs_xstrdup(doc->source_kind);
  copy->source_path = vs_xstrdup(doc->source_path);
  copy->source_backend = vs_xstrdup(doc->source_backend);
  copy->os = vs_strmap_new(free);
  copy->settings = settings_new();
  copy->origins = vs_strmap_new(free);
  copy->defaults = vs_strmap_new(free);
  size_t pos = 0;
  const char *k;
  void *v;
  while (vs_strmap_next(doc->os, &pos, &k, &v))
    vs_strmap_put(copy->os, k, vs_xstrdup(v));
  vs_strmap_reserve(copy->settings, vs_strmap_count(doc->settings));
  for (pos = 0; vs_strmap_next(doc->settings, &pos, &k, &v);)
    put_shared(copy->settings, v); /* not changed: a new holder */
  for (pos = 0; vs_strmap_next(doc->defaults, &pos, &k, &v);)
    vs_strmap_put(copy->defaults, k, vs_xstrdup(v));
  for (size_t i = 0; skipped && i < doc->n_skipped; i++)
    add_skipped(copy, vs_xstrdup(doc->skipped[i].path), vs_xstrdup(doc->skipped[i].reason));
  if (skipped) copy->n_skipped_dropped = doc->n_skipped_dropped;
  return copy;
}

struct vs_feature *vs_feature_copy_but_provenance(const struct vs_feature *doc) {
  return copy(doc, false);
}

bool vs_feature_same_but_time(const struct vs_feature *a, const struct vs_feature *b) {
  return same(a, b, true);
}

bool vs_feature_unset(struct vs_feature *doc, const char *key) {
  return vs_strmap_remove(doc->settings, key);
}

size_t vs_feature_count(const struct vs_feature *doc) {
  return vs_strmap_count(doc->settings);
}

const char **vs_feature_keys(const struct vs_feature *doc, size_t *count) {
  return vs_strmap_sorted_keys(doc->settings, count);
}

bool vs_feature_next(const struct vs_feature *doc, size_t *pos, const char **key,
                     const char **value) {
  void *v;
  if (!vs_strmap_next(doc->settings, pos, key, &v)) return false;
  *value = ((struct setting *)v)->value;
  return true;
}

void vs_feature_set_default(struct vs_feature *doc, const char *key, const char *value) {
  struct vs_buf k = {0};
  vs_buf_add_sanitized(&k, key, strlen(key));
  if (vs_strmap_has(doc->defaults, k.data) ||
      vs_strmap_count(doc->defaults) < VS_FEATURE_MAX_SETTINGS)
    vs_strmap_put(doc->defaults, k.data, sanitized(value, strnlen(value, VS_FEATURE_MAX_VALUE)));
  vs_buf_free(&k);
}

const char *vs_feature_default(const struct vs_feature *doc, const char *key) {
  return vs_strmap_get(doc->defaults, key);
}

size_t vs_feature_default_count(const struct vs_feature *doc) {
  return vs_strmap_count(doc->defaults);
}

bool vs_feature_next_default(const struct vs_feature *doc, size_t *pos, const char **key,
                             const char **value) {
  void *v;
  if (!vs_strmap_next(doc->defaults, pos, key, &v)) return false;
  *value = v;
  return true;
}

void vs_feature_skip(struct vs_feature *doc, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *reason = NULL;
  if (vasprintf(&reason, fmt, ap) < 0) abort();
  va_end(ap);
  char *r = sanitized(reason, strlen(reason));
  free(reason);
  add_skipped(doc, sanitized(path, strlen(path)), r);
}

size_t vs_feature_skipped_count(const struct vs_feature *doc) {
  return doc->n_skipped + (doc->n_skipped_dropped ? 1 : 0);
}

bool vs_feature_skipped(const struct vs_feature *doc, size_t i, const char **path,
                        const char **reason) {
  if (i >= doc->n_skipped) return false;
  *path = doc->skipped[i].path;
  *reason = doc->skipped[i].reason;
  return true;
}

/* ------------------------------------------------------------------------------------ JSON */

static json_t *jstr(const char *s) {
  json_t *j = json_string(s);
  if (!j) /* only when S is not UTF-8, which sanitizing rules out */
    abort();
  return j;
}

/* DOC as JSON; without PROVENANCE, neither where each setting came from nor the files skipped,
 * and the settings in the map's order, not sorted (the sort is for the provenance lists); and
 * without SETTINGS (only without PROVENANCE), no "settings" at all. */
static json_t *to_json(const struct vs_feature *doc, bool provenance, bool settings_too) {
  json_t *root = json_object();
  json_object_set_new(root, "schema", jstr(VS_FEATURE_SCHEMA));
  json_object_set_new(root, "id", jstr(doc->id));
  json_object_set_new(root, "name", jstr(doc->name));
  json_object_set_new(root, "taken_at", jstr(doc->taken_at));
  json_t *src = json_object();
  json_object_set_new(src, "kind", jstr(doc->source_kind));
  json_object_set_new(src, "path", jstr(doc->source_path));
  json_object_set_new(src, "backend", jstr(doc->source_backend));
  json_object_set_new(root, "source", src);

  json_t *os = json_object();
  size_t pos = 0;
  const char *k;
  void *v;
  while (vs_strmap_next(doc->os, &pos, &k, &v))
    json_object_set_new(os, k, jstr(v));
  json_object_set_new(root, "os", os);

  json_t *settings = json_object();
  json_t *prov = provenance ? json_object() : NULL;
  size_t n = 0;
  const char **keys = provenance ? vs_feature_keys(doc, &n) : NULL;
  for (pos = 0; !provenance && settings_too && vs_strmap_next(doc->settings, &pos, &k, &v);)
    json_object_set_new(settings, k, jstr(((const struct setting *)v)->value));
  for (size_t i = 0; i < n; i++) {
    struct setting *s = vs_strmap_get(doc->settings, keys[i]);
    json_object_set_new(settings, keys[i], jstr(s->value));
    if (s->origin) {
      json_t *list = json_object_get(prov, s->origin);
      if (!list) {
        list = json_array();
        /* set_new frees LIST when it fails (a key that is not UTF-8: origins are sanitized, so
         * this is a safety net, not a path) */
        if (json_object_set_new(prov, s->origin, list) < 0) continue;
      }
      json_array_append_new(list, jstr(keys[i]));
    }
  }
  free(keys);
  if (settings_too || provenance)
    json_object_set_new(root, "settings", settings);
  else
    json_decref(settings);
  if (prov) json_object_set_new(root, "provenance", prov);
  if (vs_strmap_count(doc->defaults)) { /* absent from documents that know no defaults */
    json_t *defaults = json_object();
    pos = 0;
    while (vs_strmap_next(doc->defaults, &pos, &k, &v))
      json_object_set_new(defaults, k, jstr(v));
    json_object_set_new(root, "defaults", defaults);
  }
  if (!provenance) return root;

  json_t *skipped = json_array();
  for (size_t i = 0; i < doc->n_skipped; i++) {
    json_t *e = json_object();
    json_object_set_new(e, "path", jstr(doc->skipped[i].path));
    json_object_set_new(e, "reason", jstr(doc->skipped[i].reason));
    json_array_append_new(skipped, e);
  }
  if (doc->n_skipped_dropped) {
    json_t *e = json_object();
    json_object_set_new(e, "path", jstr("*"));
    char *r = vs_xasprintf("%zu more entries not recorded", doc->n_skipped_dropped);
    json_object_set_new(e, "reason", jstr(r));
    free(r);
    json_array_append_new(skipped, e);
  }
  json_object_set_new(root, "skipped", skipped);
  return root;
}

json_t *vs_feature_to_json(const struct vs_feature *doc) {
  return to_json(doc, true, true);
}

json_t *vs_feature_to_json_but_provenance(const struct vs_feature *doc) {
  return to_json(doc, false, true);
}

json_t *vs_feature_to_json_but_settings(const struct vs_feature *doc) {
  return to_json(doc, false, false);
}

json_t *vs_feature_merge_diff(const struct vs_feature *from, const struct vs_feature *to) {
  /* What is not settings, a few members, diffed as JSON; the settings key by key. */
  json_t *from_rest = to_json(from, false, false), *to_rest = to_json(to, false, false);
  json_t *patch = vs_json_merge_diff(from_rest, to_rest);
  json_decref(from_rest);
  json_decref(to_rest);
  if (!patch) return NULL;
  json_t *settings = json_object();
  const char *k;
  void *v;
  for (size_t pos = 0; vs_strmap_next(from->settings, &pos, &k, &v);)
    if (!vs_strmap_has(to->settings, k)) json_object_set_new(settings, k, json_null());
  for (size_t pos = 0; vs_strmap_next(to->settings, &pos, &k, &v);) {
    const char *value = ((const struct setting *)v)->value;
    const struct setting *was = vs_strmap_get(from->settings, k);
    if (!was || strcmp(was->value, value) != 0) json_object_set_new(settings, k, jstr(value));
  }
  if (json_object_size(settings))
    json_object_set_new(patch, "settings", settings);
  else
    json_decref(settings);
  return patch;
}

char *vs_feature_dumps(const struct vs_feature *doc, bool pretty) {
  json_t *root = vs_feature_to_json(doc);
  char *s = json_dumps(root, JSON_SORT_KEYS | (pretty ? JSON_INDENT(2) : JSON_COMPACT));
  json_decref(root);
  if (!s) abort();
  return s;
}

static const char *json_type_name(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  case JSON_NULL:
    return "null";
  }
  return "unknown";
}

/* Fetches FIELD of OBJ as a string; an error names WHAT, the field and what it found. */
static const char *get_string(const json_t *obj, const char *field, const char *what,
                              const char *where, struct vs_err *err) {
  json_t *j = json_object_get(obj, field);
  if (!j) {
    if (*where) /* "skipped[3]." names the object: without its dot */
      vs_err_set(err, EINVAL, "%s: %.*s has no \"%s\"", what, (int)strlen(where) - 1, where, field);
    else if (strcmp(field, "schema") == 0)
      vs_err_set(err, EINVAL,
                 "%s: has no \"schema\" (not a vmscope feature document: give one that vmscope "
                 "inspect or vmscope snapshot wrote)",
                 what);
    else
      vs_err_set(err, EINVAL, "%s: has no \"%s\"", what, field);
    return NULL;
  }
  if (!json_is_string(j)) {
    vs_err_set(err, EINVAL, "%s: %s\"%s\" is %s; expected a string", what, where, field,
               json_type_name(j));
    return NULL;
  }
  return json_string_value(j);
}

static bool check_clean(const char *s, const char *what, const char *where, struct vs_err *err) {
  if (vs_text_is_clean(s, strlen(s))) return true;
  vs_err_set(err, EINVAL, "%s: %s holds a control character", what, where);
  return false;
}

static int load_source(struct vs_feature *doc, const json_t *root, const char *what,
                       struct vs_err *err) {
  json_t *src = json_object_get(root, "source");
  if (!json_is_object(src))
    return vs_err_set(err, EINVAL, "%s: \"source\" is %s; expected an object", what,
                      src ? json_type_name(src) : "missing");
  const char *kind = get_string(src, "kind", what, "source.", err);
  const char *path = kind ? get_string(src, "path", what, "source.", err) : NULL;
  const char *backend = path ? get_string(src, "backend", what, "source.", err) : NULL;
  if (!backend) return -1;
  vs_feature_set_source(doc, kind, path, backend);
  return 0;
}

static int load_string_map(const json_t *obj, const char *field, const char *what,
                           struct vs_err *err,
                           void (*store)(struct vs_feature *, const char *, const char *),
                           struct vs_feature *doc) {
  if (!json_is_object(obj))
    return vs_err_set(err, EINVAL, "%s: \"%s\" is %s; expected an object", what, field,
                      obj ? json_type_name(obj) : "missing");
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) {
    if (!json_is_string(v))
      return vs_err_set(err, EINVAL, "%s: %s[\"%s\"] is %s; expected a string", what, field, k,
                        json_type_name(v));
    if (!check_clean(k, what, field, err) || !check_clean(json_string_value(v), what, k, err))
      return -1;
    store(doc, k, json_string_value(v));
  }
  return 0;
}

static void store_os(struct vs_feature *doc, const char *k, const char *v) {
  vs_feature_set_os(doc, k, v);
}

static void store_setting(struct vs_feature *doc, const char *k, const char *v) {
  put_setting(doc->settings, k, v);
}

static void store_default(struct vs_feature *doc, const char *k, const char *v) {
  vs_strmap_put(doc->defaults, k, vs_xstrdup(v));
}

static int load_provenance(struct vs_feature *doc, const json_t *prov, const char *what,
                           struct vs_err *err) {
  if (!prov) return 0;
  if (!json_is_object(prov))
    return vs_err_set(err, EINVAL, "%s: \"provenance\" is %s; expected an object", what,
                      json_type_name(prov));
  const char *origin;
  json_t *keys;
  json_object_foreach((json_t *)prov, origin, keys) {
    if (!json_is_array(keys))
      return vs_err_set(err, EINVAL, "%s: provenance[\"%s\"] is %s; expected an array of keys",
                        what, origin, json_type_name(keys));
    size_t i;
    json_t *key;
    json_array_foreach(keys, i, key) {
      struct setting *s =
          json_is_string(key) ? vs_strmap_get(doc->settings, json_string_value(key)) : NULL;
      if (!s)
        return vs_err_set(err, EINVAL,
                          "%s: provenance[\"%s\"][%zu] does not name a key of \"settings\"", what,
                          origin, i);
      if (setting_shared(s)) { /* another document's too (a baseline's): this one's own now */
        s = setting_copy(s);
        vs_strmap_put(doc->settings, s->key, s);
      }
      s->origin = intern_origin(doc, origin);
    }
  }
  return 0;
}

static int load_skipped(struct vs_feature *doc, const json_t *arr, const char *what,
                        struct vs_err *err) {
  if (!arr) return 0;
  if (!json_is_array(arr))
    return vs_err_set(err, EINVAL, "%s: \"skipped\" is %s; expected an array", what,
                      json_type_name(arr));
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e) {
    char where[48];
    snprintf(where, sizeof(where), "skipped[%zu].", i); /* fits: 20 digits at most */
    if (!json_is_object(e))
      return vs_err_set(err, EINVAL, "%s: skipped[%zu] is %s; expected an object", what, i,
                        json_type_name(e));
    const char *path = get_string(e, "path", what, where, err);
    const char *reason = path ? get_string(e, "reason", what, where, err) : NULL;
    if (!reason) return -1;
    add_skipped(doc, vs_xstrdup(path), vs_xstrdup(reason));
  }
  return 0;
}

/* Whether VALUE under KEY, a member of a merge patch onto a map of strings, is one that
 * load_string_map would take once merged (a clean string) or one that removes (null): what is
 * applied to a document without making the merged JSON. A string holding a NUL is not (it is
 * read up to the NUL), nor anything else: the JSON is merged and loaded then, and refused as
 * it always was. */
static bool plain_member(const char *key, const json_t *value) {
  return json_is_null(value) ||
         (json_is_string(value) && vs_text_is_clean(key, strlen(key)) &&
          vs_text_is_clean(json_string_value(value), json_string_length(value)));
}

static bool plain_map_patch(const json_t *patch) {
  if (!json_is_object(patch)) return false;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)patch, k, v) {
    if (!plain_member(k, v)) return false;
  }
  return true;
}

/* PATCH (plain_map_patch) applied to MAP of DOC, its values put by STORE. */
static void apply_map_patch(struct vs_feature *doc, struct vs_strmap *map, const json_t *patch,
                            void (*store)(struct vs_feature *, const char *, const char *)) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)patch, k, v) {
    if (json_is_null(v))
      vs_strmap_remove(map, k);
    else
      store(doc, k, json_string_value(v));
  }
}

static void reserve_settings(struct vs_feature *doc, size_t n) {
  vs_strmap_reserve(doc->settings, n < VS_FEATURE_MAX_SETTINGS ? n : VS_FEATURE_MAX_SETTINGS);
}

/* Puts SETTINGS (an object) with PATCH (plain_map_patch) merged onto it into DOC, as loading
 * the merged object would. False, DOC's settings left empty, when a member of SETTINGS that
 * PATCH keeps is not a clean string: the merged object is loaded then, to be refused as
 * before. */
static bool put_merged_settings(struct vs_feature *doc, const json_t *settings,
                                const json_t *patch) {
  reserve_settings(doc, json_object_size(settings) + json_object_size(patch));
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)settings, k, v) {
    if (json_object_get(patch, k)) continue;
    if (!plain_member(k, v) || json_is_null(v)) {
      vs_strmap_free(doc->settings);
      doc->settings = settings_new();
      return false;
    }
    store_setting(doc, k, json_string_value(v));
  }
  apply_map_patch(doc, doc->settings, patch, store_setting);
  return true;
}

/* Puts BASE's settings (vs_feature_of_settings) with PATCH (plain_map_patch) merged onto them
 * into DOC, BASE's own shared: what put_merged_settings puts of the settings BASE was made of,
 * each of which is a clean string. */
static void put_merged_shared(struct vs_feature *doc, const struct vs_feature *base,
                              const json_t *patch) {
  reserve_settings(doc, vs_strmap_count(base->settings) + json_object_size(patch));
  const char *k;
  void *v;
  for (size_t pos = 0; vs_strmap_next(base->settings, &pos, &k, &v);)
    if (!json_object_get(patch, k)) put_shared(doc->settings, v);
  apply_map_patch(doc, doc->settings, patch, store_setting);
}

/* Loads DOC's settings: SETTINGS with PATCH merged onto it (RFC 7386) when PATCH is not NULL,
 * BASE's (the document SETTINGS make, or NULL) shared where it keeps them. */
static int load_settings(struct vs_feature *doc, const json_t *settings,
                         const struct vs_feature *base, const json_t *patch, const char *what,
                         struct vs_err *err) {
  if (!patch) {
    if (json_is_object(settings)) /* sized once; no more than a document may hold */
      reserve_settings(doc, json_object_size(settings));
    return load_string_map(settings, "settings", what, err, store_setting, doc);
  }
  if (base && plain_map_patch(patch)) {
    put_merged_shared(doc, base, patch);
    return 0;
  }
  if (json_is_object(settings) && plain_map_patch(patch) &&
      put_merged_settings(doc, settings, patch))
    return 0;
  json_t *merged = vs_json_merge_apply(settings, patch);
  int rc = load_settings(doc, merged, NULL, NULL, what, err);
  json_decref(merged);
  return rc;
}

static struct vs_feature *from_json(const json_t *root, const json_t *settings,
                                    const struct vs_feature *base, const json_t *patch,
                                    const char *what, struct vs_err *err) {
  if (!json_is_object(root)) {
    vs_err_set(err, EINVAL, "%s: the document is %s; expected an object", what,
               json_type_name(root));
    return NULL;
  }
  const char *schema = get_string(root, "schema", what, "", err);
  if (!schema) return NULL;
  if (strcmp(schema, VS_FEATURE_SCHEMA) != 0) {
    vs_err_set(err, EINVAL, "%s: schema is \"%s\"; expected \"%s\"", what, schema,
               VS_FEATURE_SCHEMA);
    return NULL;
  }
  _cleanup_(vs_feature_freep) struct vs_feature *doc = vs_feature_new();
  const char *id = get_string(root, "id", what, "", err);
  const char *name = id ? get_string(root, "name", what, "", err) : NULL;
  const char *taken_at = name ? get_string(root, "taken_at", what, "", err) : NULL;
  if (!taken_at) return NULL;
  vs_feature_set_id(doc, id, name);
  replace(&doc->taken_at, taken_at);
  if (load_source(doc, root, what, err) < 0 ||
      load_string_map(json_object_get(root, "os"), "os", what, err, store_os, doc) < 0 ||
      load_settings(doc, settings, base, patch, what, err) < 0 ||
      load_provenance(doc, json_object_get(root, "provenance"), what, err) < 0 ||
      (json_object_get(root, "defaults") &&
       load_string_map(json_object_get(root, "defaults"), "defaults", what, err, store_default,
                       doc) < 0) ||
      load_skipped(doc, json_object_get(root, "skipped"), what, err) < 0)
    return NULL;
  return vs_steal(&doc);
}

struct vs_feature *vs_feature_from_json(const json_t *root, const char *what, struct vs_err *err) {
  return from_json(root, json_object_get(root, "settings"), NULL, NULL, what, err);
}

struct vs_feature *vs_feature_of_settings(const json_t *settings, const char *what,
                                          struct vs_err *err) {
  _cleanup_(vs_feature_freep) struct vs_feature *doc = vs_feature_new();
  if (load_settings(doc, settings, NULL, NULL, what, err) < 0) return NULL;
  return vs_steal(&doc);
}

struct vs_feature *vs_feature_from_json_merged(const json_t *root, const json_t *settings,
                                               const struct vs_feature *base, const json_t *patch,
                                               const char *what, struct vs_err *err) {
  return patch
             ? from_json(root, settings, base, patch, what, err)
             : from_json(root, NULL, NULL, NULL, what, err); /* a merge with no patch is nothing */
}

struct vs_feature *vs_feature_patched(const struct vs_feature *doc, const json_t *patch) {
  if (!json_is_object(patch) || vs_strmap_count(doc->origins)) return NULL;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)patch, k, v) {
    bool text = strcmp(k, "taken_at") == 0 || strcmp(k, "name") == 0;
    bool map = strcmp(k, "os") == 0 || strcmp(k, "settings") == 0 || strcmp(k, "defaults") == 0;
    if (!(text ? json_is_string(v) : map && plain_map_patch(v))) return NULL;
  }
  struct vs_feature *out = copy(doc, true);
  json_object_foreach((json_t *)patch, k, v) {
    if (strcmp(k, "taken_at") == 0)
      replace(&out->taken_at, json_string_value(v));
    else if (strcmp(k, "name") == 0)
      replace(&out->name, json_string_value(v));
    else if (strcmp(k, "os") == 0)
      apply_map_patch(out, out->os, v, store_os);
    else if (strcmp(k, "settings") == 0)
      apply_map_patch(out, out->settings, v, store_setting);
    else
      apply_map_patch(out, out->defaults, v, store_default);
  }
  return out;
}

struct vs_feature *vs_feature_loads(const char *text, size_t len, const char *what,
                                    struct vs_err *err) {
  json_t *root = vs_json_loadb_strict(text, len, what, err);
  if (!root) return NULL;
  struct vs_feature *doc = vs_feature_from_json(root, what, err);
  json_decref(root);
  return doc;
}

struct vs_feature *vs_feature_load(const char *path, struct vs_err *err) {
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    if (jerr.line < 0 || jerr.position == 0)
      vs_err_set(err, EINVAL, "%s: %s", path, jerr.text);
    else
      vs_err_set(err, EINVAL, "%s: not valid JSON at line %d, column %d: %s", path, jerr.line,
                 jerr.column, jerr.text);
    return NULL;
  }
  struct vs_feature *doc = vs_feature_from_json(root, path, err);
  json_decref(root);
  return doc;
}
