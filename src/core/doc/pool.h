/* pool.h: the snapshot pool on disk: one feature document per VM per snapshot.
 *
 * Layout: DIR/<vm>/<YYYYMMDDTHHMMSSZ>[NNN].json, where <vm> is the document's id when it is made
 * of [A-Za-z0-9._-] only (a domain UUID), else "x" and its bytes in hex. Names sort by time.
 * A document is written to a temporary file in the VM's directory, fsync'd, renamed into place
 * (never over another document) and the directory fsync'd (vs_newfile): after a crash at any
 * point the directory holds the old documents, possibly the new one, and perhaps a leftover
 * temporary file ("*.tmp-*", ignored and removed by the next write) — never a partial
 * document under a final name. Reading the newest skips
 * documents that do not load, so one bad file never hides a VM. */
#ifndef VS_POOL_H
#define VS_POOL_H

#include "feature.h"

#include <time.h>

/* Writes DOC (by its id and taken_at) into the pool at DIR, creating directories as needed.
 * *PATH_OUT (may be NULL) gets the final path. */
int vs_pool_write(const char *dir, const struct vs_feature *doc, char **path_out,
                  struct vs_err *err);

/* Whether DIR holds a guest's /etc (a directory): a guest tree, never a pool. */
bool vs_pool_is_guest_tree(const char *dir);
/* Whether DIR may be a pool: missing, or a directory that is not a guest tree (no etc/), so
 * that documents never land in a guest's root file system. 0, or -1 with ERR. */
int vs_pool_check(const char *dir, struct vs_err *err);
/* Creates the pool's directory DIR (and its parents) unless it is there; refuses what
 * vs_pool_check refuses. */
int vs_pool_create(const char *dir, struct vs_err *err);

/* Applies retention to VM ID: keeps at most KEEP documents (0: no count limit) and drops those
 * taken more than KEEP_DAYS days before NOW (0: no age limit); the newest document is always
 * kept. Returns how many were removed, or -1 when the VM's directory cannot be read or a
 * document cannot be removed (ERR says which; the others are still removed). */
int vs_pool_prune(const char *dir, const char *id, size_t keep, double keep_days, time_t now,
                  struct vs_err *err);

/* Applies retention to every VM of the pool, those that were not snapshotted lately too: as
 * vs_pool_prune for each VM in PRESENT (N_PRESENT ids: the VMs that still exist); a VM not in
 * it is gone, and once its newest document is more than KEEP_DAYS days old (never when 0) all
 * its documents and its directory are removed, so that a VM removed from the host leaves the
 * pool. PRESENT NULL: every VM counts as present (the caller does not know which exist).
 * Returns how many documents were removed, or -1 with ERR set to the first failure (the other
 * VMs are still pruned). */
int vs_pool_prune_gone(const char *dir, const char *const *present, size_t n_present, size_t keep,
                       double keep_days, time_t now, struct vs_err *err);

/* The newest readable document of VM ID, and (if SECOND is not NULL) the one before it. Fails
 * with ENOENT when the VM has none. */
struct vs_feature *vs_pool_newest(const char *dir, const char *id, struct vs_feature **second,
                                  struct vs_err *err);

/* The VMs that have documents: their directory names, sorted (NULL-terminated; free with
 * vs_strv_free(list, n)). */
int vs_pool_vms(const char *dir, char ***list, size_t *n, struct vs_err *err);
/* The newest readable document of the VM stored under directory name NAME (from vs_pool_vms). */
struct vs_feature *vs_pool_newest_in(const char *dir, const char *name, struct vs_err *err);

/* The directory name VM ID's documents go in (see Layout above). Caller frees. */
char *vs_pool_dir_name(const char *id);

/* How many documents VM ID has. */
size_t vs_pool_count(const char *dir, const char *id);

/* The snapshot cycle marker, DIR/cycle.json: vmscope_snapshot marks each cycle's start (DONE
 * false) and end (DONE true) with the number of DOMAINS it lists. A pool whose first cycle is
 * still running holds only some of the fleet's VMs, and ranking a VM against some of its peers
 * raises alarms that the whole pool would not (a database VM whose twin is not snapshotted yet
 * stands alone): rankers wait for the first cycle's end. Writes are atomic (vs_newfile). */
int vs_pool_mark_cycle(const char *dir, bool done, size_t domains, time_t now, struct vs_err *err);
/* Whether DIR's first snapshot cycle is running: a marker says a cycle started and none ever
 * ended. *DOMAINS (may be NULL) gets how many domains that cycle lists. No marker (a pool
 * written by the CLI or an older vmscope), or one that does not parse, is not waited for. */
bool vs_pool_first_cycle_running(const char *dir, size_t *domains);

#endif
