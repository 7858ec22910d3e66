/* baseline.h: a host's settings baseline, so that the fleet store keeps what its VMs share once.
 *
 * Most settings of a host's VMs are the same: ranking by peers rests on it (in
 * bench/drift-scale.sh's documents 92% of the keys agree across the fleet). The store keeps a
 * host's baseline once (schema version 10: vmscope_baselines), the value more than half of its
 * VMs hold of each key, and each VM's row holds its settings as an RFC 7386 merge patch onto
 * it: the keys whose value differs, null for the baseline's keys the VM lacks. At 2,000
 * settings a VM that is about 1.5 KB a row as PostgreSQL compresses it, against 11 KB whole.
 *
 * A baseline is named by its content: the first 128 bits of the SHA-256 of its settings as
 * compact JSON with sorted keys, in hex. A host that makes it again from the same documents
 * (after a restart) names the same baseline, and its rows do not change. */
#ifndef VS_BASELINE_H
#define VS_BASELINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "fleetview.h"

#define VS_BASELINE_ID_LEN 32 /* hex digits */

struct vs_baseline;

/* The baseline of the newest documents of LOCAL's VMs: each key with the value more than half
 * of them hold (none when LOCAL is empty). Never fails but for memory (abort). */
struct vs_baseline *vs_baseline_make(const struct vs_view *local);
void vs_baseline_free(struct vs_baseline *b);
void vs_baseline_freep(struct vs_baseline **b);

const char *vs_baseline_id(const struct vs_baseline *b);
/* Its settings, key -> value (borrowed). */
const json_t *vs_baseline_settings(const struct vs_baseline *b);
/* How many members DOC's patch onto B has: the keys whose value differs, and B's keys DOC
 * lacks. */
size_t vs_baseline_distance(const struct vs_baseline *b, const struct vs_feature *doc);
/* DOC's settings as a merge patch onto B. Caller owns it. */
json_t *vs_baseline_patch(const struct vs_baseline *b, const struct vs_feature *doc);
/* Whether B has worn out: the VMs' patches onto it (DISTANCE members in all, VMS VMs) have
 * grown to more than twice what they were when it was made, and by more than 16 members a VM.
 * Making it again then rewrites every row of the host once; a rollout (one key changed on
 * every VM) alone does not. */
bool vs_baseline_worn(const struct vs_baseline *b, size_t distance, size_t vms);
/* The members of the patches of the VMs it was made from. */
size_t vs_baseline_made_distance(const struct vs_baseline *b);

#endif
