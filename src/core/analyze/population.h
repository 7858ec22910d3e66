/* population.h: how many feature documents hold each (key, value) pair.
 *
 * A population is a multiset of documents reduced to counts: for every key, how many documents
 * set it to each value, how many lack it (VS_ABSENT), and which defaults the documents declare
 * for it. It is additive: adding two populations' counts (vs_pop_merge) gives the population of
 * both, so counts taken per host merge into fleet counts, and removing a document subtracts
 * exactly what adding it added. Memory grows with the distinct keys and (key, value) pairs, not
 * with documents times keys: each distinct string is stored once and values are found by a
 * keyed 64-bit hash (SipHash with a per-population random key, so a guest cannot make values
 * collide), with the strings compared on a hash match.
 *
 * Defaults fold into absence: when documents declare a default for a key (vs_feature_default),
 * the most declared one is the population's default for that key, and the counts and
 * statistics below count a value equal to it as VS_ABSENT ("PermitRootLogin prohibit-password"
 * written out is the same as not writing it).
 *
 * Not thread-safe while it changes. After vs_pop_prepare() and until the next change, the
 * const functions may be called from many threads. */
#ifndef VS_POPULATION_H
#define VS_POPULATION_H

#include "feature.h"

#include <jansson.h>
#include <stdint.h>

#define VS_POP_MAX_DOCS UINT32_MAX

struct vs_pop;

struct vs_pop *vs_pop_new(void);
void vs_pop_free(struct vs_pop *pop);
void vs_pop_freep(struct vs_pop **pop);

/* Counts DOC's settings and declared defaults, and records its id as a member. */
void vs_pop_add(struct vs_pop *pop, const struct vs_feature *doc);
/* Subtracts what adding DOC added. Fails, changing nothing, when DOC's id is not a member or a
 * setting of DOC has no count to subtract (DOC is not the document that was added). */
int vs_pop_remove(struct vs_pop *pop, const struct vs_feature *doc, struct vs_err *err);
/* vs_pop_remove of OLD then vs_pop_add of DOC, touching only the settings and defaults in which
 * they differ when they are the same VM's (the same id): a VM's next snapshot changes few.
 * Fails, changing nothing, as vs_pop_remove does. */
int vs_pop_replace(struct vs_pop *pop, const struct vs_feature *old, const struct vs_feature *doc,
                   struct vs_err *err);
/* vs_pop_replace in two steps, so that the first, which reads only the two documents and
 * costs the most (each walked, each of its settings looked up in the other), can run for many
 * VMs on many threads (no population is read): what replacing OLD by DOC changes (a reference
 * to each: they must outlive it), and the change applied to POP, as vs_pop_replace does. */
struct vs_pop_change;
struct vs_pop_change *vs_pop_change_of(const struct vs_feature *old, const struct vs_feature *doc);
int vs_pop_apply_change(struct vs_pop *pop, const struct vs_pop_change *c, struct vs_err *err);
void vs_pop_change_free(struct vs_pop_change *c);
/* Adds every count and member of FROM to INTO (not the keys and values no document of FROM
 * has any more, which vs_pop_remove leaves behind in it). */
void vs_pop_merge(struct vs_pop *into, const struct vs_pop *from);
/* A copy of FROM's counts, members and declared defaults, without what vs_pop_remove left
 * behind (keys and values no document has any more, which FROM keeps): the population of the
 * same documents counted anew, but for the order of its keys. Caller frees. */
struct vs_pop *vs_pop_copy(const struct vs_pop *from);

size_t vs_pop_docs(const struct vs_pop *pop);
/* How many documents with this id were added (and not removed). */
size_t vs_pop_member(const struct vs_pop *pop, const char *id);
/* Distinct keys ever counted, and distinct (key, value) pairs with a non-zero count. */
size_t vs_pop_keys(const struct vs_pop *pop);
size_t vs_pop_pairs(const struct vs_pop *pop);

/* Computes each key's default and most common values; needed by the statistics below. */
void vs_pop_prepare(struct vs_pop *pop);
bool vs_pop_is_prepared(const struct vs_pop *pop);

/* Keys by index, 0 <= I < vs_pop_keys(); the index of KEY, or -1 when no document had it. */
const char *vs_pop_key_name(const struct vs_pop *pop, size_t i);
long vs_pop_key_index(const struct vs_pop *pop, const char *key);

/* One key over the whole population, defaults folded into VS_ABSENT. */
struct vs_pop_stats {
  uint32_t docs;     /* documents in the population */
  uint32_t distinct; /* distinct values, VS_ABSENT counting as one when any document lacks it */
  const char *default_value; /* the key's default, or NULL */
  const char *top_value[2];  /* the most and second most common values (VS_ABSENT included) */
  uint32_t top_count[2];     /* 0 when there is no such value */
};
/* Requires a prepared population. */
void vs_pop_key_stats(const struct vs_pop *pop, size_t i, struct vs_pop_stats *out);
/* VALUE as the statistics see it: VS_ABSENT for NULL or the key's default, else VALUE. */
const char *vs_pop_fold(const struct vs_pop *pop, size_t i, const char *value);
/* Documents whose folded value of key I is VALUE (NULL or VS_ABSENT: those lacking it).
 * Requires a prepared population. */
uint32_t vs_pop_count(const struct vs_pop *pop, size_t i, const char *value);

/* Calls EACH for every value of key I with a non-zero count, folded as the statistics fold
 * them (VS_ABSENT once, for the documents lacking the key or holding its default), in no
 * particular order. Requires a prepared population. */
void vs_pop_values(const struct vs_pop *pop, size_t i,
                   void (*each)(const char *value, uint32_t count, void *arg), void *arg);
/* Whether VALUE is what most of POP (two documents or more) hold for KEY: more than half of
 * them, folded as the statistics fold (a key no document has is VS_ABSENT on all of them).
 * Requires a prepared population. */
bool vs_pop_majority_is(const struct vs_pop *pop, const char *key, const char *value);
/* Documents that set key I at all, its default included. */
uint32_t vs_pop_present(const struct vs_pop *pop, size_t i);
/* Documents of the population whose folded value of key I is held by at most MAX documents
 * (a permutation test's tail: how many VMs stand out at least as much as one held by MAX).
 * Requires a prepared population. A lookup for a key of many values (a hostname's) and a
 * small MAX, a walk of the key's values otherwise. */
uint32_t vs_pop_at_most(const struct vs_pop *pop, size_t i, uint32_t max);

/* A population's summary: what ranking a member against it needs, in a size that grows with
 * the keys and the values two documents share, not with the documents. Per key: how many
 * documents set it, its default, the values held by two documents or more, the two most common
 * values whatever their counts, and how many values one document holds alone ("singles":
 * hostnames, machine ids), counted but not named. No members.
 *   {"docs": N, "keys": [[KEY, PRESENT, SINGLES, DEFAULT or null, [[VALUE, COUNT]...]]...]}
 * Requires a prepared population. */
json_t *vs_pop_summary(const struct vs_pop *pop);
/* The population a summary describes, prepared and read-only (add, remove and merge are not
 * for it), with MEMBERS as its members: the documents that will be ranked against it, each
 * counted in the summary as it is now. Every statistic, count and tail above is then exact for
 * a member's own values; vs_pop_count of a value not named is 1 when some document holds a
 * value alone (the member's, which is what ranking asks), and vs_pop_values calls EACH for the
 * named values only. A summary that is not well formed (counts that do not add up, a key or
 * value twice) is refused: WHAT names it in ERR. */
struct vs_pop *vs_pop_from_summary(const json_t *summary, const char *const *members,
                                   size_t n_members, const char *what, struct vs_err *err);
bool vs_pop_is_summary(const struct vs_pop *pop);

/* Every count as text, keys and values sorted ("KEY\tVALUE\tCOUNT\tDECLARED\n", raw values,
 * absent counts included): equal populations give equal text. Caller frees. */
char *vs_pop_dump(const struct vs_pop *pop);

#endif
