/* watch.h: the list of guest files whose settings (through Augeas) and metadata (owner, mode,
 * SHA-256) go into the feature document.
 *
 * An entry is a guest path or glob and, optionally, the Augeas lens that parses it
 * ("Sshd.lns"); with no lens, the lens Augeas itself would pick for that path is used, and
 * "-" means metadata only. A watch file holds one entry per line: "PATTERN [LENS]", with
 * comments and blank lines as util.h's vs_lines reads them, and a line "!PATTERN" removes the
 * entries (default or earlier) whose pattern is exactly PATTERN. */
#ifndef VS_WATCH_H
#define VS_WATCH_H

#include "util.h"

#define VS_WATCH_NO_LENS "-"

struct vs_watch;

/* The default list: sshd, sudoers, login.defs, fstab, hosts, resolv.conf, limits, crontab,
 * apt sources, nginx, apache, postgresql, mysql and a few more. */
struct vs_watch *vs_watch_new_default(void);
struct vs_watch *vs_watch_new_empty(void);
/* A copy of W, or of the default list when W is NULL. */
struct vs_watch *vs_watch_copy(const struct vs_watch *w);
void vs_watch_free(struct vs_watch *w);
void vs_watch_freep(struct vs_watch **w);

/* Adds (or, with a leading '!', removes) one entry. LENS may be NULL. */
int vs_watch_add(struct vs_watch *w, const char *pattern, const char *lens, struct vs_err *err);
/* Reads entries from a watch file on this host. Errors name the file and line. */
int vs_watch_load_file(struct vs_watch *w, const char *path, struct vs_err *err);

size_t vs_watch_count(const struct vs_watch *w);
/* The I-th entry; LENS is NULL when Augeas should choose. */
void vs_watch_entry(const struct vs_watch *w, size_t i, const char **pattern, const char **lens);

#endif
