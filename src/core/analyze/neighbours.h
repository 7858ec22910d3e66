/* neighbours.h: which VMs are close peers, by the exact number of keys in which they differ.
 *
 * Two VMs' distance is the number of keys one of them has and the other lacks (the key part of
 * their tokens, analytics.h), leaving out keys every VM has. Values do not count: VMs of one
 * kind differ in values everywhere (hostname, machine-id, host keys, a rollout, a team's
 * tweak), while another kind of machine has whole packages, services and files the first
 * lacks. Keys of one VM alone count: a web server among application servers has every nginx
 * setting they lack, which is what makes it another kind of machine; the role analysis
 * (analytics.h) drops such tokens to find roles, and so joins such a VM to the role it
 * otherwise resembles, and at five VMs a rollout or a tweak is all its informative tokens hold.
 *
 * VM j is close to VM i when their distance is at most twice i's distance to its nearest
 * neighbour plus VS_CLOSE_SLACK (measured on fleets built from real Debian 12 files: VMs of one
 * kind 0-8 keys apart, of two kinds 30 and more). Close groups are the connected groups of
 * that relation where it holds both ways (a VM far from all others would otherwise join
 * groups that are not alike). */
#ifndef VS_NEIGHBOURS_H
#define VS_NEIGHBOURS_H

#include "analytics.h"

#include <stddef.h>

#define VS_CLOSE_SLACK 8

/* Fills GROUP[i] (N entries) with VM i's close group, numbered from 0 in the order of their
 * first VM; returns the number of groups. At most K^2 merges of each VM's keys but the common
 * ones, K the number of distinct such key sets (at most N; VMs of one kind often share theirs),
 * on every CPU (each merge a popcount when the keys that vary are at most 4,096), and memory
 * linear in N. The nearest distances take K^2 / 2 merges; joining the close ones skips pairs
 * already joined and pairs whose sizes alone put them too far apart. */
size_t vs_close_groups(const struct vs_vm_tokens *vms, size_t n, size_t *group);

#endif
