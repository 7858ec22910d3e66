/* neighbours.h: which VMs are close peers, by the exact number of settings in which they
 * differ.
 *
 * Two VMs' distance is the size of the symmetric difference of their (key, value) tokens,
 * leaving out the tokens every VM has (they differ nowhere). Tokens of one VM alone count:
 * a web server among application servers differs from each of them in every nginx setting,
 * which is what makes it another kind of machine; the role analysis (analytics.h) drops
 * them to find roles, and so joins such a VM to the role it otherwise resembles, and at five
 * VMs a rollout or a team's tweak is all that its informative tokens hold.
 *
 * VM j is close to VM i when their distance is at most twice i's distance to its nearest
 * neighbour plus VS_CLOSE_SLACK: VMs of one kind differ in what each has of its own
 * (hostname, machine-id, host keys: about 30 tokens) and a few tweaks, VMs of two kinds in
 * hundreds of settings. Close groups are the connected groups of that relation, where it holds
 * both ways (a VM far from all others would otherwise join groups that are not alike). */
#ifndef VS_NEIGHBOURS_H
#define VS_NEIGHBOURS_H

#include "analytics.h"

#include <stddef.h>

#define VS_CLOSE_SLACK 16

/* Fills GROUP[i] (N entries) with VM i's close group, numbered from 0 in the order of their
 * first VM; returns the number of groups. O(N^2) merges of each VM's tokens but the common
 * ones: about 1 s for 1,000 VMs of 3,000 settings on this project's CI machine. */
size_t vs_close_groups(const struct vs_vm_tokens *vms, size_t n, size_t *group);

#endif
