/* feature.h: the feature document (schema "vmscope.features/1"): one VM's OS facts, its
 * settings as a flat map of string keys to string values, where each setting came from, and
 * what extraction had to skip. JSON in and out through jansson; writing then reading gives
 * back an equal document, and reading then writing gives back the same bytes.
 *
 * Keys and values are stored sanitized: a control character or a byte that is not valid
 * UTF-8 becomes \xHH, so a key never holds a newline and every document is valid JSON.
 * Values longer than VS_FEATURE_MAX_VALUE are cut there and the cut is recorded as skipped. */
#ifndef VS_FEATURE_H
#define VS_FEATURE_H

#include "util.h"

#include <jansson.h>
#include <stdint.h>

#define VS_FEATURE_SCHEMA "vmscope.features/1"
#define VS_FEATURE_MAX_VALUE 4096
#define VS_FEATURE_MAX_SETTINGS 1000000
#define VS_FEATURE_MAX_SKIPPED 1000
#define VS_ABSENT "<absent>"

struct vs_feature;

struct vs_feature *vs_feature_new(void);
/* Frees DOC, or, while another holder has a reference (vs_feature_ref), drops one. */
void vs_feature_free(struct vs_feature *doc);
/* DOC, with one more holder: each holder frees it once, the last one for good. A document is
 * shared only once it no longer changes (the vs_feature_set* functions are for its maker). */
struct vs_feature *vs_feature_ref(struct vs_feature *doc);
void vs_feature_freep(struct vs_feature **doc);

void vs_feature_set_id(struct vs_feature *doc, const char *id, const char *name);
void vs_feature_set_taken_at(struct vs_feature *doc, int64_t unix_seconds);
/* KIND is "domain", "image" or "dir"; BACKEND is "direct", "guestfs" or "dir". */
void vs_feature_set_source(struct vs_feature *doc, const char *kind, const char *path,
                           const char *backend);
const char *vs_feature_id(const struct vs_feature *doc);
const char *vs_feature_name(const struct vs_feature *doc);
const char *vs_feature_taken_at(const struct vs_feature *doc);
const char *vs_feature_source(const struct vs_feature *doc, const char *field);

/* OS facts: type, distro, version, hostname, arch, package_format, pretty_name, id_like. */
void vs_feature_set_os(struct vs_feature *doc, const char *field, const char *value);
const char *vs_feature_os(const struct vs_feature *doc, const char *field);

/* Sets KEY to VALUE (LEN bytes, may hold NULs and junk), recording ORIGIN (the file or
 * database it came from; may be NULL). Later calls for the same key win. */
void vs_feature_setn(struct vs_feature *doc, const char *key, const char *value, size_t len,
                     const char *origin);
void vs_feature_set(struct vs_feature *doc, const char *key, const char *value, const char *origin);
void vs_feature_setf(struct vs_feature *doc, const char *key, const char *origin, const char *fmt,
                     ...) VS_PRINTF(4, 5);
/* The value, or NULL when the document lacks KEY (drift compares that as VS_ABSENT). */
const char *vs_feature_get(const struct vs_feature *doc, const char *key);
const char *vs_feature_origin(const struct vs_feature *doc, const char *key);
bool vs_feature_unset(struct vs_feature *doc, const char *key);
size_t vs_feature_count(const struct vs_feature *doc);
/* Sorted keys in a NULL-terminated array; free the array, not the keys. A key (here, or from
 * vs_feature_next) lives in its setting: setting that key again, or unsetting it, ends it. */
const char **vs_feature_keys(const struct vs_feature *doc, size_t *count);
/* Whether A and B say the same of their VM but perhaps for where each setting came from
 * (provenance) and which files were skipped: the same id, name, time, source, OS facts,
 * settings and defaults. Either may be NULL (then both must be). */
bool vs_feature_same_but_provenance(const struct vs_feature *a, const struct vs_feature *b);
/* A copy of DOC without where each setting came from (provenance) and the files skipped:
 * what a reader of the document as JSON without those members loads, made without the JSON
 * (vs_feature_same_but_provenance holds between DOC and the copy). Caller frees. */
struct vs_feature *vs_feature_copy_but_provenance(const struct vs_feature *doc);
/* The same, and perhaps taken at another time: a snapshot that found nothing changed. */
bool vs_feature_same_but_time(const struct vs_feature *a, const struct vs_feature *b);
/* Iteration over the settings in no particular order (cheaper than sorted keys): start with
 * *POS = 0; returns false at the end. The document must not change while iterating. */
bool vs_feature_next(const struct vs_feature *doc, size_t *pos, const char **key,
                     const char **value);

/* Defaults: the value KEY has when the document does not set it (learned from the guest: a
 * shipped config file's commented-out directives, a dpkg conffile never edited). Drift compares
 * an explicit value equal to its default as if the key were absent. Serialized as "defaults",
 * only when there is one. */
void vs_feature_set_default(struct vs_feature *doc, const char *key, const char *value);
const char *vs_feature_default(const struct vs_feature *doc, const char *key);
size_t vs_feature_default_count(const struct vs_feature *doc);
bool vs_feature_next_default(const struct vs_feature *doc, size_t *pos, const char **key,
                             const char **value);

/* Records that PATH (a guest path, or a key) was skipped or only partly read, and why. */
void vs_feature_skip(struct vs_feature *doc, const char *path, const char *fmt, ...)
    VS_PRINTF(3, 4);
size_t vs_feature_skipped_count(const struct vs_feature *doc);
/* The I-th skipped entry's path and reason, or false past the end. */
bool vs_feature_skipped(const struct vs_feature *doc, size_t i, const char **path,
                        const char **reason);

json_t *vs_feature_to_json(const struct vs_feature *doc);
/* The same without "provenance" and "skipped" (vs_feature_copy_but_provenance as JSON), its
 * settings in no particular order: for a reader to whom the order of members means nothing. */
json_t *vs_feature_to_json_but_provenance(const struct vs_feature *doc);
/* The same without "settings": for a writer that sends them apart (a fleet store's row, its
 * settings a patch onto its host's baseline). */
json_t *vs_feature_to_json_but_settings(const struct vs_feature *doc);
/* The RFC 7386 merge patch that makes TO's vs_feature_to_json_but_provenance of FROM's: what
 * vs_json_merge_diff of the two gives (json_equal), or NULL where it gives none, made without
 * either's settings as JSON. For two snapshots of one VM, thousands of settings that differ
 * in a few (a fleet store's row: the previous snapshot as a patch onto the newest). */
json_t *vs_feature_merge_diff(const struct vs_feature *from, const struct vs_feature *to);
/* Serialized with sorted keys; PRETTY indents by 2. Caller frees. */
char *vs_feature_dumps(const struct vs_feature *doc, bool pretty);
/* Builds a document from JSON. WHAT names the input in errors (a file name). */
struct vs_feature *vs_feature_from_json(const json_t *root, const char *what, struct vs_err *err);
/* vs_feature_from_json of ROOT with SETTINGS, merged with PATCH (RFC 7386; a NULL PATCH merges
 * to nothing, which is refused), for its "settings" (ROOT's own not read): the same document
 * and the same refusals, without making the merged object when PATCH is plain (every member a
 * clean string or null). For a fleet store's rows: a host's shared baseline of thousands of
 * settings and each VM's few differences. BASE, when not NULL, is vs_feature_of_settings of
 * SETTINGS, made once for the rows that share them: the settings kept from it are its own,
 * shared (not copied), so that a thousand documents loaded onto one baseline hold its
 * settings once. */
struct vs_feature *vs_feature_from_json_merged(const json_t *root, const json_t *settings,
                                               const struct vs_feature *base, const json_t *patch,
                                               const char *what, struct vs_err *err);
/* A document of SETTINGS alone (an object of strings), refused as vs_feature_from_json refuses
 * its "settings": vs_feature_from_json_merged's BASE. */
struct vs_feature *vs_feature_of_settings(const json_t *settings, const char *what,
                                          struct vs_err *err);
/* The document that loading DOC's JSON with PATCH merged onto it (RFC 7386) gives, made by
 * copying DOC (the settings it keeps are DOC's, shared): NULL when PATCH is not one applied that
 * way (a member other than "taken_at" and "name", strings, and "os", "settings" and "defaults",
 * objects whose members are clean strings or null; or DOC says where its settings came from), for
 * the caller to merge the JSON itself (and have it refused as it would be). DOC's JSON is the one
 * it was loaded from, skipped files and all. Caller frees. */
struct vs_feature *vs_feature_patched(const struct vs_feature *doc, const json_t *patch);
struct vs_feature *vs_feature_loads(const char *text, size_t len, const char *what,
                                    struct vs_err *err);
struct vs_feature *vs_feature_load(const char *path, struct vs_err *err);

#endif
