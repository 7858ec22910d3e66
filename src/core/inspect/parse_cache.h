/* parse_cache.h: what parsing one config file gave, kept on disk, so that the next document
 * holding the same file skips Augeas (and its lens compile: most of a one-shot inspect).
 *
 * An entry is a payload (opaque here: the extractor's encoding of the file's settings) under a
 * key, the SHA-256 of everything the payload depends on (vs_parse_cache_key). Files identical
 * across a fleet hit on every image after the first.
 *
 * Threat model: the cache decides what settings a document holds, so it must be ours. The
 * directory is owned by the running user and no one else may read or write it (mode 0700; made
 * so when missing, refused when not so). Entries are opened without following symbolic links
 * and read only when they are regular files of ours; each holds its key and its payload's
 * digest, checked on read, so a torn, truncated or foreign entry is a miss (and is rewritten),
 * never a wrong answer and never a failed inspect. Entries appear by rename (no reader sees a
 * partial one) and are not synced: a cache survives losing one. Several processes may share a
 * directory. An entry is at most VS_PARSE_CACHE_MAX_ENTRY bytes; past the size limit, the
 * least recently used entries go (their modification time, refreshed by a hit a day old). */
#ifndef VS_PARSE_CACHE_H
#define VS_PARSE_CACHE_H

#include "util.h"

#include <stdint.h>

#define VS_PARSE_CACHE_MAX_ENTRY (1u << 20) /* one file's payload */
#define VS_PARSE_CACHE_LIMIT (64ull << 20)  /* the directory, all entries (default) */
#define VS_PARSE_CACHE_KEY_LEN 32           /* SHA-256 */

struct vs_parse_cache; /* opaque; safe to share between threads */

/* The CLI's default directory: $XDG_CACHE_HOME/vmscope/parse (when absolute, as the XDG spec
 * asks), else $HOME/.cache/vmscope/parse. NULL when neither is set. */
char *vs_parse_cache_default_dir(void);

/* Opens DIR, made (mode 0700, and its missing parents 0700) when missing. Returns NULL and
 * fills ERR when it cannot be made or opened, is not a directory, is not owned by the effective
 * uid or lets group or others in (its mode is not 0700 or stricter). */
struct vs_parse_cache *vs_parse_cache_open(const char *dir, struct vs_err *err);
void vs_parse_cache_free(struct vs_parse_cache *c);
void vs_parse_cache_freep(struct vs_parse_cache **c);
/* Changes the size limit of the whole directory (default VS_PARSE_CACHE_LIMIT bytes). */
void vs_parse_cache_set_limit(struct vs_parse_cache *c, uint64_t bytes);

/* KEY = SHA-256 of every input (each length-prefixed): the LENS, the guest PATH, the file's
 * TEXT (LEN bytes), the parser's VERSION (Augeas's own) and SCHEMA, a number the payload's
 * writer bumps whenever what it stores changes. Returns -1 only when Nettle cannot be opened. */
int vs_parse_cache_key(unsigned char key[VS_PARSE_CACHE_KEY_LEN], const char *lens,
                       const char *path, const char *text, size_t len, const char *version,
                       unsigned schema);

/* The payload stored under KEY (heap, NUL-terminated after *LEN bytes), or NULL: no entry, or
 * one that is unreadable or fails its checks (then a put replaces it). */
char *vs_parse_cache_get(struct vs_parse_cache *c, const unsigned char key[VS_PARSE_CACHE_KEY_LEN],
                         size_t *len);
/* Stores DATA (LEN bytes) under KEY and keeps the directory under its limit. A payload over
 * VS_PARSE_CACHE_MAX_ENTRY is not stored; a write that fails is logged once per cache and
 * otherwise ignored (the next run parses again). */
void vs_parse_cache_put(struct vs_parse_cache *c, const unsigned char key[VS_PARSE_CACHE_KEY_LEN],
                        const void *data, size_t len);

#endif
