#include "feature.h"
#include "fixture.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct vs_feature *sample(void) {
  struct vs_feature *doc = vs_feature_new();
  vs_feature_set_id(doc, "4b3c1f2e-0000-4000-8000-000000000007", "web-07");
  vs_feature_set_taken_at(doc, 1795543200);
  vs_feature_set_source(doc, "dir", "/srv/guests/web-07", "dir");
  vs_feature_set_os(doc, "distro", "debian");
  vs_feature_set_os(doc, "version", "12");
  vs_feature_set(doc, "file:/etc/ssh/sshd_config:PermitRootLogin", "yes", "/etc/ssh/sshd_config");
  vs_feature_set(doc, "pkg:openssh-server", "1:9.2p1-2+deb12u3", "/var/lib/dpkg/status");
  vs_feature_set(doc, "pkg:bash", "5.2.15-2+b2", "/var/lib/dpkg/status");
  vs_feature_set(doc, "vm:vcpu", "2", NULL);
  vs_feature_skip(doc, "/etc/broken.conf", "not parsed with Foo.lns: line 3");
  return doc;
}

static void expect_load_error(const char *json, const char *needle, const char *desc) {
  struct vs_err err = {0};
  struct vs_feature *doc = vs_feature_loads(json, strlen(json), "doc.json", &err);
  ok(doc == NULL && err.msg && strstr(err.msg, "doc.json") && strstr(err.msg, needle), "%s", desc);
  if (err.msg && !strstr(err.msg, needle)) diag("message was: %s", err.msg);
  vs_feature_free(doc);
  vs_err_clear(&err);
}

static void test_set_and_get(struct vs_feature *doc) {
  is_str(vs_feature_get(doc, "pkg:bash"), "5.2.15-2+b2", "a setting reads back");
  ok(vs_feature_get(doc, "pkg:zsh") == NULL, "a missing key reads as NULL (absent)");
  vs_feature_set(doc, "pkg:bash", "5.2.21-2", "/var/lib/dpkg/status");
  is_str(vs_feature_get(doc, "pkg:bash"), "5.2.21-2", "setting a key again replaces its value");
  ok(vs_feature_count(doc) == 4, "replacing does not add a key");
  is_str(vs_feature_origin(doc, "pkg:bash"), "/var/lib/dpkg/status", "provenance is kept");
  is_str(vs_feature_taken_at(doc), "2026-11-24T18:00:00Z", "taken_at is RFC 3339 UTC");
}

static void test_guest_bytes_escaped(struct vs_feature *doc) {
  vs_feature_set(doc, "user:evil\nname:uid", "0", "/etc/passwd");
  ok(vs_feature_get(doc, "user:evil\\x0Aname:uid") != NULL,
     "a newline in a guest-derived key is escaped, so keys never hold one");
  vs_feature_setn(doc, "file:/etc/junk:x",
                  "a\xff\xfe"
                  "b",
                  4, "/etc/junk");
  is_str(vs_feature_get(doc, "file:/etc/junk:x"), "a\\xFF\\xFEb",
         "bytes that are not UTF-8 are escaped as \\xHH");
  vs_feature_set(doc, "file:/etc/x:utf8", "Grüße", NULL);
  is_str(vs_feature_get(doc, "file:/etc/x:utf8"), "Grüße", "valid UTF-8 is kept as it is");
}

static void test_value_cut_at_limit(struct vs_feature *doc) {
  char *big = malloc(VS_FEATURE_MAX_VALUE + 100);
  memset(big, 'a', VS_FEATURE_MAX_VALUE + 99);
  big[VS_FEATURE_MAX_VALUE + 99] = '\0';
  vs_feature_set(doc, "file:/etc/big:v", big, "/etc/big");
  free(big);
  ok(strlen(vs_feature_get(doc, "file:/etc/big:v")) == VS_FEATURE_MAX_VALUE,
     "a value over the limit is cut at the limit");
  const char *path, *reason;
  bool found = false;
  for (size_t i = 0; vs_feature_skipped(doc, i, &path, &reason); i++)
    found |= strcmp(path, "file:/etc/big:v") == 0 && strstr(reason, "kept the first") != NULL;
  ok(found, "and the cut is recorded in skipped, not silent");
}

static void test_defaults_are_not_settings(struct vs_feature *doc) {
  char *no_defaults = vs_feature_dumps(doc, false);
  ok(!strstr(no_defaults, "\"defaults\""), "a document without defaults has no defaults object");
  free(no_defaults);
  size_t settings_before = vs_feature_count(doc);
  vs_feature_set_default(doc, "file:/etc/ssh/sshd_config:PermitRootLogin", "prohibit-password");
  is_str(vs_feature_default(doc, "file:/etc/ssh/sshd_config:PermitRootLogin"), "prohibit-password",
         "a default reads back");
  ok(vs_feature_count(doc) == settings_before, "and is not a setting");
}

/* Round trip: document -> JSON -> document -> JSON gives the same bytes. */
static void test_json_round_trip(const struct vs_feature *doc) {
  char *a = vs_feature_dumps(doc, true);
  struct vs_err err = {0};
  struct vs_feature *back = vs_feature_loads(a, strlen(a), "a.json", &err);
  ok(back != NULL, "a written document loads again (%s)", err.msg ? err.msg : "no error");
  char *b = back ? vs_feature_dumps(back, true) : NULL;
  ok(b && strcmp(a, b) == 0, "writing the loaded document gives the same bytes (pretty)");
  char *ca = vs_feature_dumps(doc, false), *cb = back ? vs_feature_dumps(back, false) : NULL;
  ok(cb && strcmp(ca, cb) == 0, "and the same bytes in compact form");
  ok(back && vs_feature_count(back) == vs_feature_count(doc), "every setting survives");
  is_str(back ? vs_feature_origin(back, "file:/etc/ssh/sshd_config:PermitRootLogin") : NULL,
         "/etc/ssh/sshd_config", "provenance survives the round trip");
  ok(back && vs_feature_origin(back, "vm:vcpu") == NULL, "a key without provenance stays so");
  is_str(back ? vs_feature_os(back, "distro") : NULL, "debian", "os facts survive");
  is_str(back ? vs_feature_source(back, "path") : NULL, "/srv/guests/web-07", "source survives");
  ok(back && vs_feature_skipped_count(back) == vs_feature_skipped_count(doc),
     "skipped entries survive");
  is_str(back ? vs_feature_default(back, "file:/etc/ssh/sshd_config:PermitRootLogin") : NULL,
         "prohibit-password", "defaults survive the round trip");
  vs_err_clear(&err);
  free(a);
  free(b);
  free(ca);
  free(cb);
  vs_feature_free(back);
}

/* DOC as the fleet store sends it: the whole document without provenance and skipped. */
static json_t *ranking_json(const struct vs_feature *doc) {
  json_t *j = vs_feature_to_json(doc);
  json_object_del(j, "provenance");
  json_object_del(j, "skipped");
  return j;
}

/* Whether vs_feature_same_but_provenance says what comparing the documents sent says. */
static bool same_as_sent(const struct vs_feature *a, const struct vs_feature *b) {
  json_t *x = ranking_json(a), *y = ranking_json(b);
  bool same = json_equal(x, y) == vs_feature_same_but_provenance(a, b);
  json_decref(x);
  json_decref(y);
  return same;
}

/* What the fleet store compares to send a VM's document again or not: each field that ranking
 * reads, told apart; provenance and skipped files not. */
static void test_same_but_provenance(const struct vs_feature *doc) {
  ok(vs_feature_same_but_provenance(NULL, NULL) && !vs_feature_same_but_provenance(doc, NULL) &&
         !vs_feature_same_but_provenance(NULL, doc),
     "no document is the same as no document only");
  char *text = vs_feature_dumps(doc, false);
  struct vs_err err = {0};
  struct vs_feature *copy = vs_feature_loads(text, strlen(text), "copy.json", &err);
  ok(copy && vs_feature_same_but_provenance(doc, copy) && vs_feature_same_but_provenance(copy, doc),
     "a copy of a document is the same (%s)", err.msg ? err.msg : "loaded");
  if (copy) vs_feature_set(copy, "vm:vcpu", vs_feature_get(doc, "vm:vcpu"), "/elsewhere");
  if (copy) vs_feature_skip(copy, "/etc/other.conf", "skipped too");
  ok(vs_feature_same_but_provenance(doc, copy) && vs_feature_same_but_time(doc, copy) &&
         same_as_sent(doc, copy),
     "also with other provenance and files skipped, as the documents sent are");
  const char *changes[] = {"a value",  "a key more", "a key less", "the name",
                           "the time", "the source", "an OS fact", "a default"};
  for (size_t i = 0; i < sizeof(changes) / sizeof(*changes); i++) {
    struct vs_feature *d = vs_feature_loads(text, strlen(text), "other.json", &err);
    if (!d) break;
    switch (i) {
    case 0:
      vs_feature_set(d, "vm:vcpu", "4", NULL);
      break;
    case 1:
      vs_feature_set(d, "vm:x", "4", NULL);
      break;
    case 2:
      vs_feature_unset(d, "vm:vcpu");
      break;
    case 3:
      vs_feature_set_id(d, vs_feature_id(d), "x");
      break;
    case 4:
      vs_feature_set_taken_at(d, 1);
      break;
    case 5:
      vs_feature_set_source(d, "dir", "/x", "dir");
      break;
    case 6:
      vs_feature_set_os(d, "version", "13");
      break;
    default:
      vs_feature_set_default(d, "vm:vcpu", "1");
      break;
    }
    ok(!vs_feature_same_but_provenance(doc, d) && !vs_feature_same_but_provenance(d, doc) &&
           same_as_sent(doc, d),
       "not the same with %s changed, as the documents sent are not", changes[i]);
    ok(vs_feature_same_but_time(doc, d) == (i == 4),
       "the same but for the time taken %s with %s changed", i == 4 ? "only" : "not", changes[i]);
    vs_feature_free(d);
  }
  vs_err_clear(&err);
  free(text);
  vs_feature_free(copy);
}

/* The document without provenance, as JSON and as a copy made without JSON, against the whole
 * document written with those members taken out and read back (what the fleet store did for
 * each VM each round before): equal, member for member and byte for byte. */
static void test_copy_but_provenance(const struct vs_feature *doc) {
  json_t *want = ranking_json(doc), *got = vs_feature_to_json_but_provenance(doc);
  ok(json_equal(want, got), "as JSON: the whole document but provenance and skipped files");
  ok(!json_object_get(got, "provenance") && !json_object_get(got, "skipped") &&
         json_object_size(json_object_get(got, "settings")) == vs_feature_count(doc) &&
         json_object_get(got, "defaults"),
     "every setting and the defaults, no provenance and no skipped files");
  struct vs_err err = {0};
  struct vs_feature *read_back = vs_feature_from_json(want, "ranking.json", &err);
  struct vs_feature *copy = vs_feature_copy_but_provenance(doc);
  char *a = read_back ? vs_feature_dumps(read_back, false) : NULL;
  char *b = vs_feature_dumps(copy, false);
  ok(a && strcmp(a, b) == 0, "a copy is the document as JSON read back, byte for byte (%s)",
     err.msg ? err.msg : "read");
  ok(vs_feature_same_but_provenance(doc, copy) && vs_feature_skipped_count(copy) == 0 &&
         vs_feature_origin(copy, "file:/etc/ssh/sshd_config:PermitRootLogin") == NULL &&
         vs_feature_skipped_count(doc) > 0,
     "the same but for provenance (none) and the files skipped (none)");
  vs_feature_set(copy, "vm:vcpu", "64", NULL);
  is_str(vs_feature_get(doc, "vm:vcpu"), "2", "a copy is its own: changing it leaves the document");
  vs_err_clear(&err);
  free(a);
  free(b);
  json_decref(want);
  json_decref(got);
  vs_feature_free(read_back);
  vs_feature_free(copy);
}

/* Through a file, as the pool will store them. */
static void test_file_round_trip(const struct vs_feature *doc) {
  struct vs_err err = {0};
  char *dir = fx_tmpdir();
  char *file = NULL;
  if (asprintf(&file, "%s/doc.json", dir) < 0) abort();
  char *text = vs_feature_dumps(doc, false);
  fx_write(dir, "doc.json", text);
  struct vs_feature *back = vs_feature_load(file, &err);
  char *again = back ? vs_feature_dumps(back, false) : NULL;
  ok(again && strcmp(again, text) == 0, "a document saved to a file loads back equal");
  free(again);
  free(text);
  vs_feature_free(back);

  fx_write(dir, "bad.json", "{\"schema\": \"vmscope.features/1\",\n  \"id\": }");
  char *bad = NULL;
  if (asprintf(&bad, "%s/bad.json", dir) < 0) abort();
  back = vs_feature_load(bad, &err);
  ok(!back && err.msg && strstr(err.msg, bad) && strstr(err.msg, "line 2"),
     "malformed JSON in a file fails naming the file and the line");
  diag("%s", vs_err_msg(&err));
  vs_err_clear(&err);
  free(bad);
  char *missing = NULL;
  if (asprintf(&missing, "%s/missing.json", dir) < 0) abort();
  back = vs_feature_load(missing, &err);
  ok(!back && err.msg && strstr(err.msg, missing), "a missing file fails naming the file");
  vs_err_clear(&err);
  free(missing);
  free(file);
  fx_rmtree(dir);
  free(dir);
}

static void test_load_errors(void) {
  expect_load_error("[1,2]", "expected an object", "a JSON array is not a document");
  expect_load_error("{\"schema\": \"vmscope.features/2\"}", "vmscope.features/1",
                    "a wrong schema fails naming the expected one");
  expect_load_error("{\"id\": \"x\"}", "\"schema\"", "a document without schema fails");
  expect_load_error("{\"schema\":\"vmscope.features/1\",\"id\":\"x\",\"name\":\"n\","
                    "\"taken_at\":\"t\",\"source\":{\"kind\":\"dir\",\"path\":\"/\","
                    "\"backend\":\"dir\"},\"os\":{},\"settings\":{\"pkg:a\": 3}}",
                    "settings[\"pkg:a\"] is a number",
                    "a setting that is not a string fails naming the key and what it is");
  expect_load_error("{\"schema\":\"vmscope.features/1\",\"id\":\"x\",\"name\":\"n\","
                    "\"taken_at\":\"t\",\"source\":{\"kind\":\"dir\",\"path\":\"/\","
                    "\"backend\":\"dir\"},\"os\":{},\"settings\":{\"a\\nb\":\"v\"}}",
                    "control character", "a key holding a newline is refused");
  expect_load_error("{\"schema\":\"vmscope.features/1\",\"id\":\"x\",\"name\":\"n\","
                    "\"taken_at\":\"t\",\"source\":{\"kind\":\"dir\",\"path\":\"/\","
                    "\"backend\":\"dir\"},\"os\":{},\"settings\":{},"
                    "\"provenance\":{\"/etc/x\":[\"nokey\"]}}",
                    "does not name a key", "provenance naming an unknown key is refused");
  expect_load_error("{\"schema\":\"vmscope.features/1\",\"id\":\"x\",\"name\":\"n\","
                    "\"taken_at\":\"t\",\"os\":{},\"settings\":{}}",
                    "\"source\"", "a document without source fails");
  expect_load_error("{\"schema\":\"vmscope.features/1\",\"schema\":\"x\"}", "duplicate",
                    "duplicate object keys are refused");
}

/* A document shared by two holders lives until both have freed it (valgrind and ASan see a
 * use after the first free, or a leak after the second). */
static void test_shared(void) {
  struct vs_feature *doc = sample();
  struct vs_feature *also = vs_feature_ref(doc);
  vs_feature_free(doc);
  ok(also == doc && strcmp(vs_feature_get(also, "vm:vcpu") ?: "", "2") == 0,
     "a document one holder freed is still whole for the other");
  vs_feature_free(also);
  ok(vs_feature_ref(NULL) == NULL, "no document: no reference");
}

/* Loads TEXT (JSON) strictly, for a test's input. */
static json_t *parse(const char *text) {
  json_error_t jerr;
  json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  if (!j) { /* the test's own input: nothing else can be checked */
    diag("a test's JSON does not parse: %s: %s", text, jerr.text);
    abort();
  }
  return j;
}

/* What loading DOC_JSON merged with PATCH gives, written whole ("refused: " and the message
 * when it is refused): the answer both shortcuts must give. */
static char *merged_then_loaded(const json_t *root, const json_t *patch) {
  json_t *merged = vs_json_merge_apply(root, patch);
  struct vs_err err = {0};
  struct vs_feature *doc = vs_feature_from_json(merged, "doc", &err);
  char *out = doc ? vs_feature_dumps(doc, false) : vs_xasprintf("refused: %s", err.msg);
  vs_feature_free(doc);
  vs_err_clear(&err);
  json_decref(merged);
  return out;
}

static const char *const patched_root =
    "{\"schema\": \"" VS_FEATURE_SCHEMA "\", \"id\": \"u-1\", \"name\": \"web-1\","
    " \"taken_at\": \"2026-12-01T10:00:00Z\","
    " \"source\": {\"kind\": \"dir\", \"path\": \"/g\", \"backend\": \"dir\"},"
    " \"os\": {\"distro\": \"debian\"}, \"defaults\": {\"d\": \"1\"},"
    " \"settings\": {\"a\": \"1\", \"b\": \"2\", \"c\": \"3\"},"
    " \"skipped\": [{\"path\": \"/x\", \"reason\": \"r\"}]}";

/* Whether vs_feature_from_json_merged of ROOT, BASE and PATCH (JSON texts) gives what loading
 * ROOT with BASE merged with PATCH for its settings gives, refusals and their words included;
 * and so with BASE's document (vs_feature_of_settings) shared, when it makes one. */
static void check_merged(const json_t *root, const char *base_text, const char *patch_text) {
  json_t *base = parse(base_text), *patch = parse(patch_text);
  json_t *whole = json_deep_copy(root), *none = json_object();
  json_object_set_new(whole, "settings", vs_json_merge_apply(base, patch));
  char *want = merged_then_loaded(whole, none);
  struct vs_err err = {0};
  struct vs_feature *doc = vs_feature_from_json_merged(root, base, NULL, patch, "doc", &err);
  char *got = doc ? vs_feature_dumps(doc, false) : vs_xasprintf("refused: %s", err.msg);
  is_str(got, want, "baseline %s with %s: the merged JSON's document", base_text, patch_text);
  free(got);
  vs_feature_free(doc);
  vs_err_clear(&err);
  struct vs_feature *base_doc = vs_feature_of_settings(base, "base", &err);
  vs_err_clear(&err);
  if (base_doc) {
    char *base_before = vs_feature_dumps(base_doc, false);
    doc = vs_feature_from_json_merged(root, base, base_doc, patch, "doc", &err);
    char *base_after = vs_feature_dumps(base_doc, false);
    vs_feature_free(base_doc); /* what DOC shares of it stays DOC's */
    got = doc ? vs_feature_dumps(doc, false) : vs_xasprintf("refused: %s", err.msg);
    is_str(got, want, "and with its settings shared from the baseline's document");
    is_str(base_after, base_before, "which is not changed");
    free(got);
    free(base_before);
    free(base_after);
    vs_feature_free(doc);
    vs_err_clear(&err);
  }
  free(want);
  json_decref(none);
  json_decref(whole);
  json_decref(patch);
  json_decref(base);
}

/* vs_feature_from_json_merged gives what merging a baseline's settings with a patch and
 * loading gives: a plain patch (made without the merged JSON) and every kind that is not. */
static void test_from_json_merged(void) {
  json_t *root = parse(patched_root);
  json_object_del(root, "settings");
  static const char *const base = "{\"a\": \"1\", \"b\": \"2\", \"c\": \"3\"}";
  static const char *const patches[] = {
      "{}",
      "{\"b\": \"two\", \"c\": null, \"d\": \"4\", \"gone\": null}",
      "{\"b\": {\"x\": \"1\"}}", /* an object is no string: refused */
      "{\"b\": 2}",              /* nor a number */
      "{\"b\": \"a\\u0007b\"}",  /* a control character: refused */
      "{\"b\": \"a\\u0000b\"}",  /* a NUL: read up to it */
      "{\"\\u0001\": \"1\"}",    /* a key with a control character: refused */
      "{\"\\u0001\": null}",     /* removing one that is not there: nothing */
  };
  for (size_t i = 0; i < sizeof(patches) / sizeof(*patches); i++)
    check_merged(root, base, patches[i]);
  /* A baseline member the patch keeps that is not clean text is refused as the merged JSON
   * is; one the patch replaces or removes is not seen. */
  static const char *const bad = "{\"a\": \"1\", \"b\": \"x\\u0002y\"}";
  check_merged(root, bad, "{\"a\": \"one\"}");
  check_merged(root, bad, "{\"b\": null}");
  check_merged(root, bad, "{\"b\": \"fine\"}");
  check_merged(root, "{\"a\": \"1\", \"b\": null}", "{\"a\": \"one\"}");
  check_merged(root, "{\"a\": \"1\", \"b\": 2}", "{\"a\": \"one\"}");
  check_merged(root, "{\"a\": \"1\", \"b\": {\"c\": \"3\"}}", "{\"a\": \"one\"}");
  check_merged(root, "{\"a\": \"1\", \"\\u0003\": \"3\"}", "{\"a\": \"one\"}");
  /* Provenance naming a setting kept from the baseline: the document's own, the baseline's
   * document not changed (a shared setting is never written). */
  json_t *with_origin = json_deep_copy(root);
  json_object_set_new(with_origin, "provenance", parse("{\"/etc/a\": [\"a\"]}"));
  check_merged(with_origin, base, "{\"b\": \"two\"}");
  json_decref(with_origin);
  /* No patch: merging gives nothing, refused as a document without settings is. */
  json_t *base_json = parse(base);
  struct vs_err err = {0};
  struct vs_feature *doc = vs_feature_from_json_merged(root, base_json, NULL, NULL, "doc", &err);
  ok(!doc && err.msg && strstr(err.msg, "\"settings\" is missing"),
     "a baseline with no patch merges to no settings: refused (%s)", err.msg ? err.msg : "loaded");
  vs_feature_free(doc);
  vs_err_clear(&err);
  json_decref(base_json);
  json_decref(root);
}

/* vs_feature_patched gives what merging the document's JSON with the patch and loading gives
 * (its skipped files kept), or NULL for the caller to do that. */
static void test_patched(void) {
  json_t *root = parse(patched_root);
  struct vs_err err = {0};
  struct vs_feature *doc = vs_feature_from_json(root, "doc", &err);
  ok(doc != NULL, "the document to patch loads (%s)", err.msg ? err.msg : "no error");
  if (!doc) abort(); /* nothing else can be checked */
  static const char *const plain[] = {
      "{}",
      "{\"taken_at\": \"2026-11-30T09:00:00Z\"}",
      "{\"taken_at\": \"2026-11-30T09:00:00Z\", \"settings\": {\"a\": null, \"b\": \"two\", "
      "\"z\": \"26\"}}",
      "{\"name\": \"web-1b\", \"os\": {\"distro\": null, \"release\": \"12\"}, \"defaults\": "
      "{\"d\": null, \"e\": \"5\"}}",
      "{\"settings\": {\"nothing\": null}}",
  };
  for (size_t i = 0; i < sizeof(plain) / sizeof(*plain); i++) {
    json_t *patch = parse(plain[i]);
    char *want = merged_then_loaded(root, patch);
    struct vs_feature *got = vs_feature_patched(doc, patch);
    char *text = got ? vs_feature_dumps(got, false) : vs_xstrdup("(not applied)");
    is_str(text, want, "patched with %s: the document the merged JSON loads as", plain[i]);
    free(text);
    free(want);
    vs_feature_free(got);
    json_decref(patch);
  }
  char *before = vs_feature_dumps(doc, false);
  static const char *const not_plain[] = {
      "{\"id\": \"u-2\"}",
      "{\"schema\": \"other\"}",
      "{\"source\": {\"path\": \"/h\"}}",
      "{\"skipped\": null}",
      "{\"taken_at\": null}",
      "{\"taken_at\": 5}",
      "{\"os\": null}",
      "{\"settings\": {\"a\": {\"b\": \"1\"}}}",
      "{\"settings\": {\"a\": \"x\\u0000y\"}}",
      "{\"defaults\": {\"a\": \"\\u0007\"}}",
      "[]",
  };
  for (size_t i = 0; i < sizeof(not_plain) / sizeof(*not_plain); i++) {
    json_t *patch = parse(not_plain[i]);
    struct vs_feature *got = vs_feature_patched(doc, patch);
    ok(got == NULL, "%s is left to the caller to merge as JSON", not_plain[i]);
    vs_feature_free(got);
    json_decref(patch);
  }
  char *after = vs_feature_dumps(doc, false);
  is_str(after, before, "and the document patched is not changed");
  /* A patched document shares the settings it keeps: they outlive the one it was made from. */
  struct vs_feature *source = vs_feature_from_json(root, "doc", &err);
  json_t *retaken = parse(plain[1]);
  struct vs_feature *kept = source ? vs_feature_patched(source, retaken) : NULL;
  char *want_kept = merged_then_loaded(root, retaken);
  vs_feature_free(source);
  char *kept_text = kept ? vs_feature_dumps(kept, false) : vs_xstrdup("(not applied)");
  is_str(kept_text, want_kept, "a patched document outlives the one it was made from");
  free(kept_text);
  free(want_kept);
  vs_feature_free(kept);
  json_decref(retaken);
  free(before);
  free(after);
  vs_feature_free(doc);
  /* Provenance names settings a patch may remove: such a document is left to the JSON. */
  json_object_set_new(root, "provenance", parse("{\"/etc/a\": [\"a\"]}"));
  doc = vs_feature_from_json(root, "doc", &err);
  json_t *patch = parse("{\"settings\": {\"a\": null}}");
  ok(doc && !vs_feature_patched(doc, patch),
     "a document that says where its settings came from is left to the JSON");
  char *want = merged_then_loaded(root, patch);
  ok(strstr(want, "refused: ") == want, "(which refuses this one: %s)", want);
  free(want);
  json_decref(patch);
  vs_feature_free(doc);
  vs_err_clear(&err);
  json_decref(root);
}

/* Whether vs_feature_merge_diff(FROM, TO) is what vs_json_merge_diff of their JSON gives, and
 * makes TO's JSON of FROM's. */
static void check_merge_diff(const struct vs_feature *from, const struct vs_feature *to,
                             const char *what) {
  json_t *a = vs_feature_to_json_but_provenance(from), *b = vs_feature_to_json_but_provenance(to);
  json_t *want = vs_json_merge_diff(a, b), *got = vs_feature_merge_diff(from, to);
  json_t *made = got ? vs_json_merge_apply(a, got) : NULL;
  char *want_text = want ? json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS) : vs_xstrdup("NULL");
  char *got_text = got ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS) : vs_xstrdup("NULL");
  is_str(got_text, want_text, "merge diff, %s: the JSON's", what);
  ok(made && json_equal(made, b), "and it makes the other document's JSON");
  free(want_text);
  free(got_text);
  json_decref(made);
  json_decref(got);
  json_decref(want);
  json_decref(a);
  json_decref(b);
}

/* vs_feature_merge_diff and vs_feature_to_json_but_settings against the JSON they stand for. */
static void test_merge_diff(void) {
  json_t *root = parse(patched_root);
  struct vs_err err = {0};
  struct vs_feature *doc = vs_feature_from_json(root, "doc", &err);
  if (!doc) abort();
  static const char *const patches[] = {
      "{}",
      "{\"taken_at\": \"2026-11-30T09:00:00Z\", \"settings\": {\"a\": null, \"b\": \"two\", "
      "\"z\": \"26\"}}",
      "{\"name\": \"web-1b\", \"os\": {\"distro\": null, \"release\": \"12\"}, \"defaults\": "
      "{\"d\": null, \"e\": \"5\"}}",
      "{\"defaults\": {\"d\": null}, \"settings\": {\"a\": null, \"b\": null, \"c\": null}}",
  };
  for (size_t i = 0; i < sizeof(patches) / sizeof(*patches); i++) {
    json_t *patch = parse(patches[i]);
    struct vs_feature *other = vs_feature_patched(doc, patch);
    if (!other) abort();
    check_merge_diff(doc, other, patches[i]);
    check_merge_diff(other, doc, "the other way");
    vs_feature_free(other);
    json_decref(patch);
  }
  struct vs_feature *bare = vs_feature_new(); /* another id and source, no OS facts */
  check_merge_diff(doc, bare, "onto a document of nothing");
  check_merge_diff(bare, doc, "from a document of nothing");
  json_t *all = vs_feature_to_json_but_provenance(doc),
         *rest = vs_feature_to_json_but_settings(doc);
  json_object_del(all, "settings");
  ok(json_equal(all, rest), "a document's JSON but settings is its JSON without \"settings\"");
  json_decref(all);
  json_decref(rest);
  vs_feature_free(bare);
  vs_feature_free(doc);
  json_decref(root);
}

int main(void) {
  plan_no_plan();
  test_shared();
  /* One document through every test, in order: each builds on what the one before set. */
  struct vs_feature *doc = sample();
  test_set_and_get(doc);
  test_guest_bytes_escaped(doc);
  test_value_cut_at_limit(doc);
  test_defaults_are_not_settings(doc);
  test_json_round_trip(doc);
  test_file_round_trip(doc);
  test_same_but_provenance(doc);
  test_copy_but_provenance(doc);
  test_load_errors();
  test_from_json_merged();
  test_patched();
  test_merge_diff();
  vs_feature_free(doc);
  return done_testing();
}
