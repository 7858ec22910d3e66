/* store.h: the fleet store, in PostgreSQL (libpq): what ranking needs across hosts.
 *
 * One fleet is many hosts, each with its own snapshot pool. Each host publishes its VMs into
 * the store, keyed by domain UUID: the VM's ranking document (its newest feature document's
 * id, name, time, OS facts, settings and documented defaults; the previous snapshot's too, for
 * the keys moving through the fleet) and, once ranked, its findings. Every host then reads the
 * whole fleet back as one view (fleetview.h) and ranks its own VMs against the fleet's peers:
 * the same view, and so the same findings, as one pool holding every host's documents.
 * Provenance, file metadata lists and skipped files stay on the host unless the whole
 * documents are asked for (store_documents). docs/fleet-store.md has the schema.
 *
 * Every publish is one transaction: a host killed mid-publish leaves the store as it was. A VM
 * is one row whichever host published it; the newest snapshot wins, so a VM that migrated is
 * counted once, on the host that saw it last. A host not heard from for host_timeout seconds
 * drops out of the fleet view; its rows stay, for history.
 *
 * Rows are written by other hosts: each is checked as a document from a guest would be
 * (strict loading, bounded size, its id equal to its key) and one that fails is refused and
 * reported, never ranked.
 *
 * The schema is created and migrated by vs_store_open (its version in vmscope_schema). The
 * store is not thread-safe: one user at a time. */
#ifndef VS_STORE_H
#define VS_STORE_H

#include "drift.h"
#include "fleetfind.h"
#include "fleetview.h"
#include "util.h"

struct vs_baseline;

#define VS_STORE_SCHEMA_VERSION 10
/* The most bytes a row's document may have; a larger one is refused. So is a context whose
 * parts a host reads are larger together, or a VM's part larger than VS_STORE_MAX_VM_PART. */
#define VS_STORE_MAX_DOC (64u << 20)
#define VS_STORE_MAX_VM_PART (64u << 10)

struct vs_store_opts {
  const char *url;           /* "postgresql://..." or a libpq key=value string */
  const char *password_file; /* its first line is the password; may be NULL */
  const char *ca_file;       /* the server's CA: sslmode verify-full; may be NULL */
  const char *host;          /* this host's name in the store */
  double host_timeout;       /* seconds; 0: VS_STORE_HOST_TIMEOUT */
  bool store_documents;      /* publish whole feature documents too */
  bool read_only;            /* a reader: the schema must be at VS_STORE_SCHEMA_VERSION already
                                (neither created nor migrated: an empty database is not an
                                empty fleet) */
  double connect_timeout;    /* seconds; 0: 10 */
};
#define VS_STORE_HOST_TIMEOUT 300.0

struct vs_store;

/* A store not connected yet: it connects when first used, and again after the connection is
 * lost. Fails only when the password file cannot be read. */
struct vs_store *vs_store_new(const struct vs_store_opts *o, struct vs_err *err);
/* Connects S (again, when the connection was lost) and brings the schema to
 * VS_STORE_SCHEMA_VERSION (a newer one is refused): 0, or -1 and ERR, which names the store
 * (its URL without a password) and what failed. */
int vs_store_connect(struct vs_store *s, struct vs_err *err);
/* vs_store_new, then vs_store_connect. */
struct vs_store *vs_store_open(const struct vs_store_opts *o, struct vs_err *err);
void vs_store_free(struct vs_store *s);
void vs_store_freep(struct vs_store **s);

/* The URL with any password in it replaced by "***", for messages. Caller frees. */
char *vs_store_url_safe(const char *url);

/* A VM's documents as vs_store_publish_vms writes them: *NEWEST is DOC as ranking reads it
 * (without provenance and skipped files), its settings as "settings_patch", a merge patch onto
 * BASELINE, when BASELINE is not NULL; PREV (may be NULL) goes as a merge patch onto it in
 * *PATCH, or whole in *WHOLE where no patch can say it (the other is NULL; both are with no
 * PREV). The caller owns the three. For the benchmark's peer, which must write the same rows. */
void vs_store_row_docs(const struct vs_feature *doc, const struct vs_feature *prev,
                       const struct vs_baseline *baseline, json_t **newest, json_t **whole,
                       json_t **patch);

/* Publishes this host's VMs (every VM of LOCAL: its newest and previous documents) in one
 * transaction, and marks the host seen. A VM of this host that LOCAL no longer has leaves the
 * fleet (its row goes, unless another host published it since). A VM whose documents are the
 * ones this store object published last is named by its row's fingerprint instead of sent,
 * and one snapshotted again that found nothing changed sends its new time only; when a row so
 * named is not that one any more, nothing is written and a second transaction sends every VM.
 * The store object keeps a reference to each VM's documents as published, for the next call. */
int vs_store_publish_vms(struct vs_store *s, const struct vs_view *local, struct vs_err *err);

/* Adds every VM of the fleet (hosts seen within host_timeout) to VIEW, as vs_view_add does:
 * the newest and the previous document. Rows that fail the checks are refused: *REFUSED (may
 * be NULL) counts them and ERRORS (may be NULL) gets one message each. */
int vs_store_load(struct vs_store *s, struct vs_view *view, size_t *refused, char ***errors,
                  size_t *n_errors, struct vs_err *err);

/* Publishes the findings of this host's VMs (RANKED[i] of VM ids), replacing the ones it
 * published before; a finding keeps its "since" while its value stays. One transaction. */
int vs_store_publish_findings(struct vs_store *s, struct vs_drift *const *ranked, size_t n,
                              struct vs_err *err);

/* Publishes the fleet's own findings (groups, rollouts, unique VMs): the elected host only. */
int vs_store_publish_fleet(struct vs_store *s, const struct vs_fleet_findings *f,
                           struct vs_err *err);

/* A host's round: */
struct vs_store_round {
  /* in */
  bool use_context;        /* rank from the context the elected host made (fleetview.h) */
  const char *const *also; /* other VMs whose parts to read: the medoids LOCAL's VMs had */
  size_t n_also;           /* (for vs_view_same_role) */
  /* out */
  bool stale;            /* the store failed: the view is from the last one read */
  bool from_context;     /* the view holds LOCAL's VMs alone, prepared from the context */
  bool alone;            /* stale, and nothing of the fleet was read: LOCAL's VMs only */
  char *why_not_context; /* use_context, but not from the context: why */
  char **errors;         /* rows refused */
  size_t n_errors;
  size_t rows;        /* the whole fleet read: the VMs' rows it held */
  size_t rows_loaded; /* and of them, those loaded this round: new, or changed since the
                       * last whole read (the others are kept loaded between rounds) */
};
/* Publishes LOCAL's VMs (as vs_store_publish_vms); then, with USE_CONTEXT, reads the context's
 * parts of LOCAL's VMs (and ALSO's), of their groups and the fleet's, in one snapshot, and
 * returns LOCAL's VMs prepared from them: what it reads grows with this host's VMs and the
 * fleet's keys, not with the fleet's VMs. Without USE_CONTEXT, when there is no context younger
 * than host_timeout, when it does not count one of LOCAL's VMs as it is now (new, or its
 * settings changed since), or when a part is refused (WHY_NOT_CONTEXT says why), it reads the
 * whole fleet back and returns it as one view, prepared with VO, in which this host's VMs are
 * those of LOCAL (vs_store_is_local); rows refused (see above) are reported in ERRORS. When the
 * store cannot be reached (or fails), the last context read (if it still counts LOCAL's VMs as
 * they are) or the last rows read stand in: STALE, and ERR says why; ALONE when there are
 * neither (the view is LOCAL's VMs only); the store reconnects on the next round. Free ROUND's
 * outputs with vs_store_round_clear. */
struct vs_view *vs_store_round_view(struct vs_store *s, const struct vs_view *local,
                                    const struct vs_view_opts *vo, struct vs_store_round *round,
                                    struct vs_err *err);
void vs_store_round_clear(struct vs_store_round *round);

/* The elected host's part of a refresh: the fleet's context made from FLEET (a prepared view of
 * every VM), replacing the last one in one transaction. Refused unless this session holds the
 * fleet's lock (vs_store_elected). */
int vs_store_publish_context(struct vs_store *s, const struct vs_view *fleet, struct vs_err *err);

/* Whether VM I of a view from vs_store_round_view is this host's to rank: LOCAL has it, and its
 * newest document is LOCAL's (not a newer one of a host it migrated to). */
bool vs_store_is_local(const struct vs_view *fleet, size_t i, const struct vs_view *local);

/* The fleet's findings as the elected host last published them (an empty set when none were):
 * what a host taking over the election was told already, so that it notifies only what changed
 * since. NULL with ERR when the store cannot be read or the row fails the checks. */
struct vs_fleet_findings *vs_store_last_fleet(struct vs_store *s, struct vs_err *err);

/* Whether this host does the fleet's once-only work: it holds the store's advisory lock (taken
 * here if free; held while the connection lives, so another host takes over when it dies). */
bool vs_store_elected(struct vs_store *s);

/* The rankings the hosts published (vmscope_rankings): a JSON array of vs_drift_to_json
 * objects, each with "host", sorted by VM name; VM (may be NULL) selects one by name or id. */
json_t *vs_store_rankings(struct vs_store *s, const char *vm, struct vs_err *err);

#endif
