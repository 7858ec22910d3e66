/* fleetview.h: the fleet as one view: VMs, not files. Every consumer that ranks or analyses
 * many VMs (vmscope_drift, vmscope drift/analyze/similar/report, the accuracy bench) builds
 * one of these, so they all count the same peers and give the same answers.
 *
 * Documents are grouped by VM identity (the document's id: a domain UUID, or the canonical
 * path of an image or tree). A VM is its newest document (by taken_at; on a tie the one added
 * last); the next newest is kept as its previous snapshot, for history. Several documents of
 * one VM (a pool globbed as pool/x/y.json, the same image named twice, two pools holding a VM
 * that migrated) are therefore one peer, never several.
 *
 * Peer groups: a VM's close peers are the other members of its role (analytics.h: VMs joined by
 * the likeness of their MinHash signatures), at any fleet size. With VS_PEERS_ROLE a VM is
 * ranked against them; with VS_PEERS_FLEET against the whole fleet. A VM with too few close
 * peers is "unique": its role has at most min_role_peers members, or it has more than
 * VS_VIEW_OWN_KEYS keys that no other VM has at all (a role of its own: the role analysis
 * drops tokens of one VM, so it joins the role it is otherwise most like). A unique VM is
 * ranked against the whole fleet for information, none of its findings alarm, and it is
 * nobody's close peer.
 * A VM is never its own peer.
 *
 * The role analysis sees a key whose values are moving through the fleet (rolling out between
 * snapshots, or a package installed in several versions) by its presence alone: a rollout is
 * not a split of roles, nor an anomaly of each VM that took it (nor, for `vmscope similar
 * --setting`, a version to look for).
 *
 * The view also gives drift its fleet context (drift.h's vs_drift_fleet): the fleet's and
 * each role's populations, the keys rolling out (at least VS_VIEW_ROLLING_VMS VMs changed
 * them to one value since their previous snapshots), and the size of a team's tweak (2 to
 * VS_VIEW_GROUP_MIN VMs, or a tenth of a fleet of more than 40). */
#ifndef VS_FLEETVIEW_H
#define VS_FLEETVIEW_H

#include "analytics.h"
#include "drift.h"
#include "feature.h"
#include "population.h"
#include "strmap.h"

#define VS_VIEW_MIN_ROLE_PEERS 2
#define VS_VIEW_GROUP_MIN 4
#define VS_VIEW_OWN_KEYS 16
#define VS_VIEW_ROLLING_VMS 2

enum vs_peer_group { VS_PEERS_ROLE, VS_PEERS_FLEET };
/* "role", or "fleet" (also "all", the plugin's older word): 0, else -1. */
int vs_peer_group_parse(const char *s, enum vs_peer_group *out);
const char *vs_peer_group_name(enum vs_peer_group g);

struct vs_view_opts {
  enum vs_peer_group peers;
  size_t min_role_peers;          /* 0: VS_VIEW_MIN_ROLE_PEERS */
  struct vs_analytics_opts roles; /* the role analysis's settings */
  const struct vs_strmap *labels; /* VM name or id -> label, or NULL */
};

struct vs_view;
struct vs_view *vs_view_new(void);
void vs_view_free(struct vs_view *v);
void vs_view_freep(struct vs_view **v);

/* Adds DOC (the view takes it). Returns 1 when DOC is the newest of its VM so far, 0 when the
 * VM already had a newer (or equally new) document, which stays. */
int vs_view_add(struct vs_view *v, struct vs_feature *doc);
/* Adds DOC as the one document of its VM, whatever its time: a target ranked against its
 * peers. Documents of that VM added before are dropped; returns how many. */
size_t vs_view_add_target(struct vs_view *v, struct vs_feature *doc);
/* Removes VM I (before prepare); the last VM takes its index. */
void vs_view_remove(struct vs_view *v, size_t i);
/* Adds the newest and the previous document of every VM of the snapshot pool DIR. VMs whose
 * documents do not load are skipped, each with an error in the view's error list; a VM whose
 * newest document was taken before NOT_BEFORE (an ISO 8601 UTC "YYYY-MM-DDTHH:MM:SSZ", or
 * NULL for no limit) is left out and counted in *FORGOTTEN (may be NULL). Fails (-1, ERR) only
 * when DIR cannot be listed: ENOENT when it does not exist, ENOTDIR when it is no directory,
 * and EINVAL when it holds no pool at all but looks like a guest tree (an etc/ directory). */
int vs_view_add_pool(struct vs_view *v, const char *dir, const char *not_before, size_t *forgotten,
                     struct vs_err *err);
/* Whether DIR looks like a snapshot pool: no guest /etc, and a subdirectory holding a .json
 * document (or the analytics.json vmscope_drift writes). For telling a pool given as a guest. */
bool vs_view_is_pool(const char *dir);
/* Messages of what could not be read while adding (not owned by the caller). */
size_t vs_view_errors(const struct vs_view *v, const char *const **msgs);

/* Computes the roles, the fleet's population and the peer groups. Call after the last add;
 * the view then no longer changes. Thread-safe to rank from many threads afterwards. */
void vs_view_prepare(struct vs_view *v, const struct vs_view_opts *opts);
/* What a prepare works out of each VM's own two documents (its moves since its previous
 * snapshot, its tokens), kept for the next prepare of a view holding the same documents: the
 * same document objects, shared (vs_feature_ref), as the fleet store's whole view round after
 * round. A VM whose documents are others is worked out again; the VMs a prepare's view does
 * not have are forgotten; when the fleet's moving keys changed, the kept tokens of those keys
 * are mended in place (all are made again when more than 64 keys changed). The fleet's
 * population is kept too, and adjusted by what changed (vs_pop_change_of on every CPU, then
 * vs_pop_apply_change and vs_pop_remove) rather than counted again. The answers are those of
 * vs_view_prepare. Not thread-safe: one prepare at a time. */
struct vs_view_cache;
struct vs_view_cache *vs_view_cache_new(void);
void vs_view_cache_free(struct vs_view_cache *c);
size_t vs_view_cache_count(const struct vs_view_cache *c); /* the VMs it keeps */
void vs_view_prepare_cached(struct vs_view *v, const struct vs_view_opts *opts,
                            struct vs_view_cache *c);

size_t vs_view_count(const struct vs_view *v);
const struct vs_feature *vs_view_doc(const struct vs_view *v, size_t i);
/* The VM's previous snapshot, or NULL. */
const struct vs_feature *vs_view_prev(const struct vs_view *v, size_t i);
/* The VM whose id, or whose name, is NAME; -1 when none. An id wins over a name; a name that
 * two VMs share finds neither (-2). */
long vs_view_find(const struct vs_view *v, const char *name);
/* The VM holding a document with DOC's id, or -1. */
long vs_view_find_id(const struct vs_view *v, const char *id);

/* After prepare: the role analysis and the VMs as it saw them (index i is VM i). */
const struct vs_analysis *vs_view_analysis(const struct vs_view *v);
const struct vs_vm_tokens *vs_view_tokens(const struct vs_view *v);
/* The keys whose tokens are made of their presence alone (vs_doc_tokens_by): the keys moving
 * through the fleet. A VM's token of any other key is vs_token(key, its value). NULL for a
 * view prepared from the fleet's context (which has no tokens either). */
const struct vs_strmap *vs_view_moving(const struct vs_view *v);
/* The whole fleet's population. */
const struct vs_pop *vs_view_fleet(const struct vs_view *v);
/* Whether VM I is ranked against its close group (true) or the fleet (false). */
bool vs_view_by_role(const struct vs_view *v, size_t i);

/* Whether VM I has too few close peers (see above). */
bool vs_view_unique(const struct vs_view *v, size_t i);
/* The keys rolling out (each mapped to the value it moves to); the most VMs a team's tweak
 * is found on. */
const struct vs_strmap *vs_view_rolling(const struct vs_view *v);
uint32_t vs_view_group_max(const struct vs_view *v);
/* The close groups (neighbours.h): how many, VM I's, and a group's population (all its VMs,
 * unique ones too: whose value a value is). */
size_t vs_view_group_count(const struct vs_view *v);
size_t vs_view_group(const struct vs_view *v, size_t i);
const struct vs_pop *vs_view_group_pop(const struct vs_view *v, size_t group);

/* Where vs_view_prepare spent its time, seconds (a view from the context: zero): the fleet's
 * population, the keys rolling out, the VMs' tokens, the role analysis, and the close groups
 * with their populations. For the benchmarks. */
struct vs_view_times {
  double population, rolling, tokens, roles, groups;
};
void vs_view_prepare_times(const struct vs_view *v, struct vs_view_times *out);

/* How many VMs the fleet has (a view from the context: the fleet's, not this host's). */
size_t vs_view_fleet_vms(const struct vs_view *v);

/* VM I's role as the role analysis sees it: its medoid, how many VMs the role has, how far the
 * VM is from it, and its label (NULL, LABEL_P -1, when none). Strings are the view's. */
struct vs_view_role {
  size_t number;                       /* the role's, in the analysis that found it */
  const char *medoid_id, *medoid_name; /* the name may be NULL */
  size_t size;
  double anomaly, similarity;
  const char *label;
  double label_p;
};
void vs_view_role(const struct vs_view *v, size_t i, struct vs_view_role *out);
/* Whether the VM with id ID is in VM I's role. A view from the context knows it of the VMs
 * whose parts it was given (vs_view_prepare_context's VMS, which may hold other VMs' parts
 * too); false for any other. */
bool vs_view_same_role(const struct vs_view *v, size_t i, const char *id);

/* Ranks VM I against its peer group (see above), with the fleet's context. */
struct vs_drift *vs_view_rank(const struct vs_view *v, size_t i, const struct vs_drift_opts *o,
                              struct vs_err *err);

/* ------------------------------------------------------------------ the fleet's context
 *
 * What a host needs to rank its own VMs as the whole view would, without every VM's document
 * (fleetctx.c; store.h keeps it in the fleet store): one host holding the whole view writes
 * it, the others prepare a view of their own VMs from it. Its parts:
 * - the fleet's: {"vms": N, "group_max": G, "rolling": {KEY: VALUE}, "options": the role
 *   options it was made with, "population": the fleet's population summary (population.h),
 *   "majorities": {KEY: [[VALUE, GROUP, NAME,
 *   GROUP or null, NAME or null]...]}}: each value that is the majority of some close group
 *   of two VMs or more, with the two lowest-numbered such groups and their names (whose value
 *   an "alone" finding is: drift.h);
 * - one per close group: {"name": NAME, "peers": the summary of its peers' population, or
 *   null when all its VMs are unique};
 * - one per VM: {"group": G, "unique": B, "digest": what its populations count of it
 *   (vs_view_digest), "taken_at": the counted document's time, "role": {"number", "medoid",
 *   "medoid_name", "size", "anomaly", "similarity", "label", "label_p"}}.
 * The sizes grow with the keys, the values two VMs share and the groups, not with the VMs. */

/* A hex SHA-256 of what a population counts of DOC (its settings and defaults): equal digests,
 * equal counts. NULL with ERR only when the digest cannot be computed (crypto.h). */
char *vs_view_digest(const struct vs_feature *doc, struct vs_err *err);
/* The parts of a prepared view of every VM; NULL when one cannot be written whole (a string
 * that is not UTF-8; ERR says which VM for the VM's part). */
json_t *vs_view_context_fleet(const struct vs_view *v);
json_t *vs_view_context_group(const struct vs_view *v, size_t group);
/* DIGEST: vs_view_digest of the VM's document when the caller kept it, or NULL. */
json_t *vs_view_context_vm(const struct vs_view *v, size_t i, const char *digest,
                           struct vs_err *err);

/* Prepares V, which holds this host's VMs only, from the context: FLEET the fleet's part,
 * GROUPS {"G": part} holding the part of each group its VMs are in, VMS {ID: part} one per VM
 * of V. V's VMs are then ranked (vs_view_rank) as a view of every VM counted by the context
 * would rank them; roles come from the parts (vs_view_role), and vs_view_analysis,
 * vs_view_tokens and vs_view_group_pop are NULL. A VM whose part counts a newer document of it
 * than V's (it migrated: the host holding that one ranks it) is removed from V first. The
 * parts are written by another host: one that is not well formed is refused (EINVAL); a
 * context that counts a VM other than as V holds it now (its digest differs, or it has no
 * part), or that was made with other role options than OPTS (the fleet part's "options":
 * MinRolePeers, the role analysis's settings, a digest of the labels), is refused too
 * (ESTALE). V is left unprepared on failure. */
int vs_view_prepare_context(struct vs_view *v, const json_t *fleet, const json_t *groups,
                            const json_t *vms, const struct vs_view_opts *opts, struct vs_err *err);
/* drift.h's role_of for a view prepared from the context (ARG). */
const char *vs_view_context_role_of(const void *arg, const char *key, const char *value,
                                    size_t own_role);

#endif
