/* extract.h: a guest file tree -> its feature document.
 *
 * What goes in (DESIGN.md "The feature document"): os: facts from os-release, the hostname and
 * the architecture of the guest's /bin/sh; pkg: from dpkg's status file and from an RPM
 * database (read with librpm); user:, group: from passwd, group and shadow (whether a password
 * is set, never the hash); svc: enabled, disabled and masked systemd units (and SysV scripts
 * with no unit); sysctl: in the order the kernel applies them; file: every setting of every
 * watched config file, parsed by Augeas from the content we read (Augeas never opens a guest
 * file itself, so it cannot be led out of the tree); meta: owner, mode and SHA-256 of watched
 * files. A Windows guest (a system root with System32/config/SOFTWARE and SYSTEM) gives the
 * same namespaces from its registry hives instead (extract_win.c), and reg: settings from the
 * watched registry values.
 *
 * Extraction never gives up on one bad file: what cannot be read or parsed is recorded in the
 * document's "skipped" list and the rest goes on. Every read is bounded. */
#ifndef VS_EXTRACT_H
#define VS_EXTRACT_H

#include "feature.h"
#include "regwatch.h"
#include "source.h"
#include "watch.h"

#define VS_EXTRACT_MAX_CONFIG (4u << 20)       /* one config file */
#define VS_EXTRACT_MAX_DATABASE (256u << 20)   /* dpkg status, rpmdb */
#define VS_EXTRACT_MAX_FILE_SETTINGS 20000     /* settings taken from one config file */
#define VS_EXTRACT_MAX_HIVE (256u << 20)       /* one Windows registry hive */
#define VS_EXTRACT_READ_BUDGET (1024ull << 20) /* bytes read for one document, all files */

struct vs_extract_stats {
  double seconds_total, seconds_os, seconds_packages, seconds_accounts, seconds_services,
      seconds_sysctl, seconds_files;
  size_t files_parsed, files_failed, packages;
  size_t files_cached; /* of files_parsed and files_failed: answered by the parse cache */
};

/* Holds what is worth keeping across documents (an Augeas handle with its lenses loaded).
 * One extractor serves one thread at a time. WATCH is copied; NULL means the default list. */
struct vs_extractor;
struct vs_extractor *vs_extractor_new(const struct vs_watch *watch, struct vs_err *err);
void vs_extractor_free(struct vs_extractor *x);
/* Has X answer a config file it parsed before (same lens, path, content and Augeas) from
 * CACHE instead of Augeas (parse_cache.h). CACHE is borrowed: it outlives X, and may be shared
 * by several extractors. NULL (the default) parses every file. */
struct vs_parse_cache;
void vs_extractor_set_parse_cache(struct vs_extractor *x, struct vs_parse_cache *cache);
/* Changes the per-document read budget (default VS_EXTRACT_READ_BUDGET bytes). */
void vs_extractor_set_read_budget(struct vs_extractor *x, uint64_t bytes);
void vs_extractor_freep(struct vs_extractor **x);
/* The registry values taken from Windows guests (regwatch.h): RW is copied; NULL means the
 * default list, which is also what an extractor starts with. */
void vs_extractor_set_regwatch(struct vs_extractor *x, const struct vs_regwatch *rw);

/* Fills DOC from SRC (its id, name and source fields are the caller's). Returns -1 only when
 * the tree as a whole is unusable: its root is not a readable directory, or it holds no
 * operating system (no os-release, no package database, no /etc/passwd: an empty directory is
 * no VM, ENOENT). STATS may be NULL. */
int vs_extract(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
               struct vs_extract_stats *stats, struct vs_err *err);

/* Frees what extraction's libraries keep for the whole process (librpm's configuration and
 * macros), for a plugin about to be unloaded: collectd dlcloses it, and librpm's statics with
 * it. Call it with no extraction running; a later vs_extract reads the configuration again. */
void vs_extract_release(void);

#endif
