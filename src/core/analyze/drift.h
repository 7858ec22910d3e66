/* drift.h: which settings set a VM apart from its peers, and what changed between two of its
 * snapshots.
 *
 * Ranking is PeerPressure (Wang et al., OSDI 2004; US8645950). For key k with target value v
 * over N sample documents (the population without the target itself): c = distinct values of k
 * among the samples (VS_ABSENT counting as one), plus one when no sample has v; m = samples
 * whose value is v. The sick probability with t suspect keys is
 *     P = (N + c) / (N + c + c t (m + 1)),
 * which orders keys exactly as K = c (m + 1) / (N + c) does, smaller K more suspicious. The
 * score reported is 1 - K, clamped to [0, 1]: a value no peer shares while all peers agree
 * scores near 1; a key whose value differs on every VM (hostname, machine-id) scores about 0.5
 * however large the fleet, and a value the target shares with a large part of the fleet scores
 * near 0. Only keys where the target's value is not the samples' most common one are findings.
 *
 * What keeps noise off the top: values equal to the key's default count as VS_ABSENT (see
 * population.h); keys that vary everywhere score about 0.5 by the formula itself; and a unit
 * (one file's settings and metadata, one user, one group) that the target has and no sample
 * has, or that every sample has and the target lacks, is reported as one finding
 * ("file:/etc/app.conf:*") carrying the statistics of its most suspicious key, instead of one
 * finding per key.
 *
 * Which findings alarm (issue 18: an alarm must mean the same on 5 VMs and on 1,000). The
 * ranking says how odd a value is; the alarm says the VM alone holds it among peers that
 * agree. Each finding has a kind:
 * - "alone": no peer shares the target's value. Its score is 1 - p, where p is the exact
 *   permutation p-value of "the target's value is held by m+1 VMs" among the target and its N
 *   peers: p = (VMs whose value is held by at most m+1 of them) / (N + 1). If the target were
 *   drawn like its peers, p is the chance that it would stand out as much. Two agreeing peers
 *   give p = 1/3 (score 0.67), four 0.2 (0.80), nine 0.1 (0.90); peers that all differ give
 *   p = 1 (score 0), however many they are.
 * - "shared": some peers share the value (m > 0): never an alarm.
 * - "group": the value is a small group's (at most group_max VMs of the fleet hold it, and it
 *   is the value of no other kind of VM, a close group whose majority holds it): a team's
 *   tweak, reported once for the fleet (fleetfind.h), not on each member.
 * - "rollout": a package version being rolled out (the target's is newer than its peers', or
 *   older but held by other VMs too), or a key moving through the fleet between snapshots.
 * - "source": the key's namespace ("vm:") is one that none of the peers has, or that all of
 *   them have and the target lacks: another kind of source, one finding "vm:*".
 * - "edit": the digest of a file whose settings are parsed (meta:PATH:sha256 beside
 *   file:PATH:...): what the edit changed shows in the file's own settings.
 * Severity: an "alone" finding with score >= fail_score is "failure", >= warn_score "warning";
 * everything else is "info", and so is every finding of a VM with no close peers (the fleet
 * view's "unique" VM, which has no one to be compared with). A finding that is not waived and
 * is a warning or worse is an alarm. Findings are ordered by severity, then K. */
#ifndef VS_DRIFT_H
#define VS_DRIFT_H

#include "feature.h"
#include "population.h"

#include <jansson.h>
#include <stdint.h>
#include <time.h>

/* A finding's majority when no two samples share a value (hostname, machine-id). */
#define VS_ALL_DIFFER "<all differ>"

/* Alone among at least 2 agreeing peers warns; among at least 9, fails. */
#define VS_DRIFT_WARN_SCORE 0.6
#define VS_DRIFT_FAIL_SCORE 0.9

enum vs_severity { VS_SEVERITY_INFO, VS_SEVERITY_WARNING, VS_SEVERITY_FAILURE };
const char *vs_severity_name(enum vs_severity s);

enum vs_finding_kind {
  VS_FINDING_ALONE,
  VS_FINDING_SHARED,
  VS_FINDING_GROUP,
  VS_FINDING_ROLLOUT,
  VS_FINDING_SOURCE,
  VS_FINDING_EDIT
};
const char *vs_finding_kind_name(enum vs_finding_kind k);

/* PeerPressure's ranking key K, and its own score 1 - K (clamped to [0, 1]; findings carry 1 - p).
 */
double vs_drift_k(uint32_t n, uint32_t c, uint32_t m);
double vs_drift_score(uint32_t n, uint32_t c, uint32_t m);
/* The sick probability P with T suspect keys. */
double vs_drift_p(uint32_t n, uint32_t c, uint32_t m, uint32_t t);

/* ------------------------------------------------------------------------------ waivers */

/* A list of waivers, each a line "KEY-GLOB VM-GLOB EXPIRES REASON...": fnmatch globs for the
 * key and for the VM's name or id ("*" for every VM), the last day the waiver holds
 * (YYYY-MM-DD, UTC, or "-" for never), and why, which is required; comments and blank lines
 * as util.h's vs_lines reads them. A file over 16 MiB is refused. */
struct vs_waivers;
struct vs_waivers *vs_waivers_parse(const char *text, const char *what, struct vs_err *err);
struct vs_waivers *vs_waivers_load(const char *path, struct vs_err *err);
void vs_waivers_free(struct vs_waivers *w);
void vs_waivers_freep(struct vs_waivers **w);
size_t vs_waivers_count(const struct vs_waivers *w);

struct vs_waiver_match {
  const char *reason;  /* NULL: no waiver names this key and VM */
  const char *expires; /* "YYYY-MM-DD" or NULL for never */
  bool expired;        /* matched, but past its last day at NOW: it waives nothing */
};
/* The first waiver naming KEY for the VM (NAME or ID), preferring one still in force. */
void vs_waivers_match(const struct vs_waivers *w, const char *key, const char *name, const char *id,
                      time_t now, struct vs_waiver_match *out);

/* ------------------------------------------------------------------------------ ranking */

/* What the fleet beyond the peers says about a finding (the fleet view fills it in). */
struct vs_drift_fleet {
  const struct vs_pop *fleet;        /* every VM, the target among them */
  const struct vs_pop *const *roles; /* each close group's population (fleetview.h) */
  const char *const *role_names;     /* the name of a VM of each, for messages */
  size_t n_roles, own_role;          /* the target's group */
  uint32_t group_max;                /* the most VMs a team's tweak is found on */
  const struct vs_strmap *rolling;   /* keys moving through the fleet between snapshots */
  bool unique;                       /* the target has no close peers: nothing alarms */
  /* In place of ROLES (N_ROLES 0), when their populations are not at hand (a host ranking from
   * the fleet store's summaries): the name of the lowest-numbered group but OWN_ROLE whose
   * majority of KEY is VALUE, or NULL. */
  const char *(*role_of)(const void *arg, const char *key, const char *value, size_t own_role);
  const void *role_of_arg;
};

struct vs_drift_opts {
  double warn_score, fail_score;      /* 0 means the default */
  const struct vs_waivers *waivers;   /* may be NULL */
  time_t now;                         /* for waiver expiry */
  const struct vs_drift_fleet *fleet; /* NULL: the peers are all there is */
};

struct vs_finding {
  size_t rank; /* 1 = most suspicious */
  char *key;   /* a collapsed unit: "file:/etc/app.conf:*", "user:toor:*" */
  char *value; /* the target's value as compared (VS_ABSENT, or a default folded to it) */
  char *majority;
  uint32_t majority_count;
  uint32_t n, c, m;
  double k, p, score; /* score = 1 - p */
  enum vs_finding_kind kind;
  uint32_t elsewhere;  /* with a fleet: other VMs beyond the peers holding the value */
  char *role_of_value; /* with a fleet: the role whose value it is (its medoid's name) */
  enum vs_severity severity;
  size_t keys;        /* keys this finding stands for (1 unless collapsed) */
  char *about_key;    /* collapsed: the key whose statistics are shown; else NULL */
  bool edit_evidence; /* a parsed file's digest: capped at info */
  bool waived;
  struct vs_waiver_match waiver; /* strings point into the waivers */
};

struct vs_drift {
  char *target_id, *target_name;
  uint32_t samples;     /* N */
  bool unique;          /* no close peers (vs_drift_fleet.unique): findings are only info */
  size_t keys_compared; /* keys of the target or the samples that were looked at */
  size_t alarms;        /* findings not waived with severity warning or failure */
  struct vs_finding *findings;
  size_t n_findings;
};

/* Ranks TARGET against the population POP, which must be prepared (vs_pop_prepare); when
 * TARGET's id is a member of POP, that document is left out of the samples. Fails when there
 * is no sample to compare with. Thread-safe for a prepared population that does not change. */
struct vs_drift *vs_drift_rank(const struct vs_pop *pop, const struct vs_feature *target,
                               const struct vs_drift_opts *opts, struct vs_err *err);
void vs_drift_free(struct vs_drift *d);
void vs_drift_freep(struct vs_drift **d);
/* {"target":..., "name":..., "samples":N, "alarms":A, "findings_total":F,
 *  "findings":[{"rank":1,"key":...,"value":...,"majority":{"value":...,"count":...,
 *  "share":...},"c":...,"m":...,"n":...,"k":...,"score":...,"severity":"warning",
 *  "waived":false, ...}]}; TOP > 0 keeps the first TOP findings. */
json_t *vs_drift_to_json(const struct vs_drift *d, size_t top);

/* -------------------------------------------------------------------------- temporal diff */

enum vs_change_kind { VS_CHANGE_ADDED, VS_CHANGE_REMOVED, VS_CHANGE_CHANGED };
enum vs_change_class {
  VS_CLASS_NONE,
  VS_CLASS_INSTALLED,    /* pkg: added */
  VS_CLASS_UNINSTALLED,  /* pkg: removed */
  VS_CLASS_UPGRADE,      /* pkg: newer version */
  VS_CLASS_DOWNGRADE,    /* pkg: older version */
  VS_CLASS_WITH_PACKAGE, /* file:/meta: change to a file whose owning package changed too */
  VS_CLASS_LOCAL_EDIT    /* file:/meta: change while the owning package (if any) did not */
};
const char *vs_change_kind_name(enum vs_change_kind k);
const char *vs_change_class_name(enum vs_change_class c);

struct vs_change {
  char *key;
  char *old_value, *new_value; /* NULL when absent */
  enum vs_change_kind kind;
  enum vs_change_class class;
  char *package; /* the owning package of a file change, when known */
};

struct vs_diff {
  size_t added, removed, changed;
  size_t upgrades, downgrades, installed, uninstalled, package_edits, local_edits;
  struct vs_change *changes; /* sorted by key */
  size_t n_changes;
};

/* What changed from OLD to NEW (two snapshots of one VM; their ids are not checked). A file
 * change is a local edit unless the file's owning package (meta:PATH:package, from dpkg's
 * conffiles) changed version between the two. */
struct vs_diff *vs_drift_diff(const struct vs_feature *old_doc, const struct vs_feature *new_doc);
/* Changes of class C. */
size_t vs_diff_count_class(const struct vs_diff *d, enum vs_change_class c);
/* The changed keys, comma-separated, at most about MAX bytes ("..., and 12 more"). */
char *vs_diff_key_list(const struct vs_diff *d, size_t max);
void vs_diff_free(struct vs_diff *d);
void vs_diff_freep(struct vs_diff **d);
json_t *vs_diff_to_json(const struct vs_diff *d, const struct vs_feature *old_doc,
                        const struct vs_feature *new_doc);

#endif
