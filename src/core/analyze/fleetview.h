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
 * Peer groups: with VS_PEERS_ROLE a VM is ranked against the other members of its role
 * (analytics.h) when the role has more than min_role_peers members, else against the whole
 * fleet; with VS_PEERS_FLEET always against the whole fleet. A VM is never its own peer. */
#ifndef VS_FLEETVIEW_H
#define VS_FLEETVIEW_H

#include "analytics.h"
#include "drift.h"
#include "feature.h"
#include "population.h"
#include "strmap.h"

#define VS_VIEW_MIN_ROLE_PEERS 8

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
/* The whole fleet's population. */
const struct vs_pop *vs_view_fleet(const struct vs_view *v);
/* Whether VM I is ranked against its role (true) or the fleet (false). */
bool vs_view_by_role(const struct vs_view *v, size_t i);

/* Ranks VM I against its peer group (see above). */
struct vs_drift *vs_view_rank(const struct vs_view *v, size_t i, const struct vs_drift_opts *o,
                              struct vs_err *err);

#endif
