/* fleetgen.h: synthetic fleets of real Debian 12 files for the drift benchmarks
 * (drift_accuracy, alarm_calibration), and the one way they score an injected setting.
 *
 * ROLES holds role trees (bench/fleet-roles.sh: web, db, app). A VM is a hard-linked copy of
 * its role's tree (cp -al) that writes its own files when it changes them, so thousands of VMs
 * cost little; the benchmarks add the variation and the injections on top of fg_vm_base.
 * Everything random comes from one seeded generator, so a seed gives the same fleets.
 * The helpers exit with a message on any failure: they are for benchmarks, not the product. */
#ifndef VS_FLEETGEN_H
#define VS_FLEETGEN_H

#include "drift.h"
#include "extract.h"
#include "feature.h"
#include "fleetview.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------ helpers */

struct fg_rng {
  uint64_t s;
};
uint32_t fg_rnd(struct fg_rng *r, uint32_t n); /* uniform in [0, N) */
bool fg_chance(struct fg_rng *r, double p);

/* What every run of a fleet benchmark has: the role trees, a work directory, the random
 * generator, the extractor, and the packages a VM can lag behind on. */
struct fg_bench {
  const char *roles, *work, *seed;
  struct fg_rng r;
  struct vs_extractor *x;
  char **lag_pkgs; /* packages of the app role with a Debian security update */
  size_t n_lag;
};
/* Opens it for the role trees ROLES and the work directory WORK (made when missing), with
 * the random generator seeded from SEED (a decimal number). */
void fg_bench_open(struct fg_bench *b, const char *roles, const char *work, const char *seed);
void fg_bench_close(struct fg_bench *b);
double fg_pct(size_t part, size_t whole); /* 0 when WHOLE is 0 */

/* Prints "PROG: message" and exits 1 (PROG set by fg_set_prog). */
void fg_set_prog(const char *prog);
void fg_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

char *fg_path(const char *dir, const char *rel);
char *fg_slurp(const char *path); /* NULL when unreadable */
/* Replaces PATH (maybe a hard link shared with the role tree) by a file of its own holding
 * CONTENT, keeping its mode. */
void fg_write_own(const char *path, const char *content);
void fg_append_line(const char *path, const char *line);
/* Replaces the first line of PATH starting with PREFIX by LINE; false when there is none. */
bool fg_replace_line(const char *path, const char *prefix, const char *line);
/* ROOT/REL: replaces the line starting with PREFIX by LINE, or appends LINE. */
void fg_set_line(const char *root, const char *rel, const char *prefix, const char *line);
void fg_copy_tree(const char *from, const char *to); /* cp -al */
void fg_remove_tree(const char *dir);
/* A fresh directory for many small trees: DIR/NAME (removed first when it exists). */
char *fg_fresh_dir(const char *dir, const char *name);

/* --------------------------------------------------------------- packages in dpkg status */

/* An older version of V: the last digit run that is not zero, less one ("+deb12u4" ->
 * "+deb12u3", "4.0.2-3" -> "4.0.2-2"). NULL when there is none. */
char *fg_older_version(const char *v);
/* Two steps back, so that the version is not the one VMs behind on updates have. */
char *fg_two_versions_older(const char *v);
/* Sets PACKAGE's Version in ROOT's dpkg status to CHANGE(old); returns the old version, or
 * NULL when the package or an older version is missing. */
char *fg_set_version(const char *root, const char *package, char *(*change)(const char *));
/* The installed packages of ROOT with a Debian security update ("+deb12u") in their version:
 * the ones a VM can lag behind on. */
char **fg_security_updated(const char *root, size_t *n);

/* --------------------------------------------------------------------------------- VMs */

/* A setting whose value differs between roles: databases tune dirty page writeback. */
#define FG_ROLE_SYSCTL_FILE "etc/sysctl.d/60-db.conf"
#define FG_ROLE_SYSCTL "vm.dirty_ratio = 5\n"

/* DIR: ROLE's tree with what every VM has of its own: hostname, /etc/hosts line and
 * machine-id (32 draws of R); a db VM also has the role's sysctl. */
void fg_vm_base(const char *roles, const char *role, const char *dir, const char *name,
                struct fg_rng *r);
/* Writes out one "#Directive value" line of sshd_config: the default its comment documents. */
bool fg_write_out_default(const char *root, struct fg_rng *r);
/* An admin's or a team's tweak: FG_TWEAKS of them, each a different setting (the first
 * FG_ADMIN_TWEAKS are drift_accuracy's admin tweaks). */
#define FG_TWEAKS 8
#define FG_ADMIN_TWEAKS 4
void fg_tweak(const char *root, uint32_t which);
/* ROOT/etc/ssh's host public keys rewritten with random material (their private keys are not
 * readable to the extractor anyway): keys that differ on every VM. */
void fg_own_host_keys(const char *root, struct fg_rng *r);
/* The extracted document of the tree DIR, with id and name NAME. */
struct vs_feature *fg_extract(struct vs_extractor *x, const char *dir, const char *name);
/* A copy of DOC (a view takes the documents it is given). */
struct vs_feature *fg_copy(const struct vs_feature *doc);

/* --------------------------------------------------------------------------- injections */

enum fg_inj {
  FG_INJ_VALUE,
  FG_INJ_UID0,
  FG_INJ_SERVICE,
  FG_INJ_DOWNGRADE,
  FG_INJ_MODE,
  FG_INJ_SYSCTL,
  FG_INJ_ROLE, /* the value another role has */
  FG_N_INJ
};
extern const char *const fg_inj_names[FG_N_INJ];
/* Injects one misconfiguration of KIND into ROOT, a VM of ROLE; *WHAT says which. False when
 * this VM offers nothing to inject of that kind (*WHAT is then NULL). */
bool fg_inject(enum fg_inj kind, const char *root, const char *role, struct fg_rng *r, char **what);

/* The fleet view of the documents DOCS[IDX[i]] (IDX NULL: the first N), each added as COPY
 * makes it (the view takes what it is given), prepared with OPTS; TARGET, when given, takes
 * the place of its VM's document, as `vmscope drift --target` does. */
struct vs_view *fg_view(struct vs_feature *const *docs, const size_t *idx, size_t n,
                        struct vs_feature *(*copy)(const struct vs_feature *),
                        const struct vs_view_opts *opts, struct vs_feature *target);
/* VM I of V ranked against its peers, as the product ranks it (default drift options). */
struct vs_drift *fg_rank(const struct vs_view *v, size_t i);

/* A copy of the tree VM_DIR (VM NAME of ROLE) with one misconfiguration of KIND injected,
 * extracted in SCRATCH (a directory left as it was); *WHAT says which, *DIFF what it changed
 * from CLEAN. NULL when nothing could be injected or nothing changed. */
struct vs_feature *fg_injected(struct fg_bench *b, const char *scratch, const char *vm_dir,
                               const struct vs_feature *clean, enum fg_inj kind, const char *role,
                               char **what, struct vs_diff **diff);

/* The rank of D's first finding that stands for a change of DIFF (0: none), and in *ALARM
 * whether such a finding alarms. A parsed file's digest, which is only edit evidence (info by
 * design), does not count as finding it. */
size_t fg_injected_rank(const struct vs_drift *d, const struct vs_diff *diff, bool *alarm);

#endif
