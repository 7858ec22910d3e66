/* analytics.h: what a pool of VM snapshots says about the VMs as a whole (US9286182): roles
 * (which VMs are the same kind of machine), how far each VM sits from its role, labels
 * predicted from a few given ones, and VMs ranked by likeness to one.
 *
 * A VM is a set of tokens, one per (key, value) setting of its feature document. Tokens that
 * tell nothing about what a VM is are dropped before anything is compared: those of a single
 * VM (its hostname, its disk's path, an odd edit) and those nearly every VM has (the common
 * base), so that roles differ in what they share with nobody else; and a VM that lacks a
 * token a good share of VMs have (at least 1 - common_share of them), and has no other value
 * for its key, gets that token's negation, since a role may be defined by what it does not
 * have (no web server, no database); VMs that changed a common file in unrelated ways do not
 * share "not the common digest". The rest is summarised by a MinHash signature (one-permutation
 * hashing, 128 bins, densified), whose share of equal bins estimates the Jaccard similarity of two
 * VMs' token sets.
 *
 * Roles: locality-sensitive hashing (32 bands of 4 bins) proposes the pairs worth comparing;
 * pairs whose estimated similarity reaches the threshold are joined (union-find), and the
 * connected groups are the roles. Their number is found, not given; for a given seed and
 * input order the result is the same. Each role's medoid is the member most like the others
 * (among up to 64 of them); each VM's similarity is its similarity to its role's medoid (for
 * a VM alone in its role, to the nearest other role's medoid: exactly while there are at most
 * 64 roles; beyond, among the roles of two VMs or more and the VMs the bands proposed to
 * compare it with), and its anomaly in [0, 1] is 1 minus that, or 1 minus its similarity to its own
 * previous snapshot when that is larger.
 *
 * Labels: an unlabelled VM gets the label its 5 most similar labelled VMs vote for, weighted by
 * similarity, with the winning share as its probability.
 *
 * Likeness to one VM (vs_analysis_similar) is not role similarity: there the tokens of one VM
 * alone count too, as what sets it and the other apart, so two VMs that each drifted their own
 * way are not alike merely because they share a role. */
#ifndef VS_ANALYTICS_H
#define VS_ANALYTICS_H

#include "feature.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define VS_MINHASH_BINS 128

/* The token of one setting: its high 32 bits hash the key alone, so the tokens of one key sort
 * together (what the analysis relies on to find a VM's other value for a key). */
uint64_t vs_token(const char *key, const char *value);
/* The tokens of DOC's settings (a malloc'd array); returns how many. Here, not in feature.h:
 * a token is the analysis's view of a setting, and only the analysis's callers need them. */
size_t vs_doc_tokens(const struct vs_feature *doc, uint64_t **out);
/* The same, but a key in BY_PRESENCE (a set of keys; may be NULL) counts by its presence
 * alone, whatever its value: a key whose values are moving through the fleet (fleetview.h). */
struct vs_strmap;
size_t vs_doc_tokens_by(const struct vs_feature *doc, const struct vs_strmap *by_presence,
                        uint64_t **out);

struct vs_vm_tokens {
  const char *id, *name;
  const uint64_t *tokens;
  size_t n;
  const uint64_t *prev_tokens; /* the VM's previous snapshot, or NULL */
  size_t n_prev;
  const char *label; /* given by a user, or NULL */
};

struct vs_analytics_opts {
  uint64_t seed;       /* 0: a fixed default */
  double threshold;    /* similarity that joins two VMs in a role (0: 0.6) */
  double common_share; /* tokens in more than this share of VMs are dropped (0: 0.9) */
  int neighbours;      /* for labels (0: 5) */
};

struct vs_analysis;
/* Analyses the N VMs (not copied: they must outlive the analysis only during this call). */
struct vs_analysis *vs_analyze(const struct vs_vm_tokens *vms, size_t n,
                               const struct vs_analytics_opts *o);
void vs_analysis_free(struct vs_analysis *a);

size_t vs_analysis_count(const struct vs_analysis *a);
size_t vs_analysis_role_count(const struct vs_analysis *a);
/* Role ids are 0.. in decreasing size (ties: the role of the lowest VM index first). */
size_t vs_analysis_role(const struct vs_analysis *a, size_t vm);
size_t vs_analysis_role_size(const struct vs_analysis *a, size_t role);
size_t vs_analysis_medoid(const struct vs_analysis *a, size_t role);
double vs_analysis_similarity(const struct vs_analysis *a, size_t vm); /* to its medoid */
double vs_analysis_anomaly(const struct vs_analysis *a, size_t vm);
/* The predicted label (the given one for a labelled VM, NULL when no VM is labelled) and its
 * probability (1 for a given label). */
const char *vs_analysis_label(const struct vs_analysis *a, size_t vm, double *probability);
/* The estimated Jaccard similarity of two VMs' informative tokens (what roles are made of). */
double vs_analysis_pair(const struct vs_analysis *a, size_t i, size_t j);
/* The estimated Jaccard similarity of two VMs' tokens but the common base: their informative
 * tokens and also those of one VM alone (a drift of its own, its hostname), which no other VM
 * shares and so only widen the union. Two VMs that each drifted their own way are not alike,
 * as they are for vs_analysis_pair. */
double vs_analysis_likeness(const struct vs_analysis *a, size_t i, size_t j);
/* Every VM ranked by likeness to VM TARGET (itself first): ORDER and SIMS get N entries. */
void vs_analysis_similar(const struct vs_analysis *a, size_t target, size_t *order, double *sims);
/* Every VM ranked by similarity to a set of tokens (say, a few (key, value) pairs of a
 * compromised VM): the share of them each VM has. */
void vs_analysis_similar_tokens(const struct vs_analysis *a, const struct vs_vm_tokens *vms,
                                const uint64_t *tokens, size_t n, size_t *order, double *sims);
/* {"roles": [{"id", "size", "medoid"}], "vms": [{"id", "name", "role", "similarity",
 * "anomaly", "label", "label_probability"}]} */
json_t *vs_analysis_json(const struct vs_analysis *a, const struct vs_vm_tokens *vms);

/* A labels file: one "NAME LABEL" per line (NAME a VM's name or id), with comments and blank
 * lines as util.h's vs_lines reads them.
 * *OUT maps names to labels (heap strings). A line that is not two words is an error. */
struct vs_strmap;
int vs_labels_load(const char *path, struct vs_strmap **out, struct vs_err *err);

/* The adjusted Rand index of two clusterings of N items (1: identical; about 0: chance). */
double vs_adjusted_rand(const size_t *a, const size_t *b, size_t n);

#endif
