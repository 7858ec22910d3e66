/* majority.h: which value the majority of a fleet holds for each key, and when that changes.
 *
 * A fleet-wide change (a rollout, an edit pushed everywhere, a package upgraded on most VMs)
 * shows as a key whose majority value moves from one value to another. A tracker remembers,
 * per key, the value more than half of the documents of the last population held (VS_ABSENT
 * included, defaults folded into it as the population folds them); a key that appears after
 * the first population was absent before it. A key with no strict
 * majority keeps the majority it last had, so A -> split -> B is one change from A to B.
 * Populations smaller than VS_MAJORITY_MIN_DOCS change nothing: a "majority" of two VMs says
 * little about a fleet. */
#ifndef VS_MAJORITY_H
#define VS_MAJORITY_H

#include "population.h"

#define VS_MAJORITY_MIN_DOCS 3

struct vs_majorities;

struct vs_majority_change {
  const char *key;
  const char *before, *after; /* the old and new majority values */
  uint32_t support, docs;     /* documents holding AFTER, of DOCS */
};

struct vs_majorities *vs_majorities_new(void);
void vs_majorities_free(struct vs_majorities *m);
void vs_majorities_freep(struct vs_majorities **m);

/* Brings M in line with the prepared population POP and calls CHANGED for every key whose
 * majority moved since the last update (never on the first update). Returns how many
 * keys changed. The change's strings live until CHANGED returns. */
size_t vs_majorities_update(struct vs_majorities *m, const struct vs_pop *pop,
                            void (*changed)(const struct vs_majority_change *c, void *arg),
                            void *arg);

/* The majority value remembered for KEY, or NULL when it never had one. */
const char *vs_majorities_get(const struct vs_majorities *m, const char *key);

#endif
