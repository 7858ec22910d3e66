/* fleetfind.h: what a fleet shows as a whole, found once per fleet view instead of on each VM
 * (issue 18: a team's tweak is one finding, not an alarm on each VM it touched).
 *
 * Groups: a value that 2 to group_max VMs share (fleetview.h) while most of the fleet holds
 * another, and that is no role's own value (the majority of a close group of two VMs or more);
 * unique VMs are no members (what they differ in is their own kind's). A group whose keys are
 * all file digests is none: it only says that tweaks of one file combine differently. The
 * keys a group of VMs shares are one finding, named by its most telling key (a setting before a
 * file's digest or metadata): "sysctl:vm.swappiness is 10 on 3 of 50 VMs: web-03, web-07,
 * web-11; 47 of the rest have 60".
 *
 * Rollouts: a package whose newest version some VMs have while at least two VMs have an older
 * one (a lone older VM is that VM's finding: it missed the update), and a key that at least
 * VS_VIEW_ROLLING_VMS VMs changed to one value since their previous snapshots. The share is of
 * the VMs that have the package (or of the fleet). */
#ifndef VS_FLEETFIND_H
#define VS_FLEETFIND_H

#include "fleetview.h"

#include <jansson.h>

struct vs_group {
  char *key, *value; /* the most telling key the group shares, and its value there */
  char *rest;        /* the value most of the fleet has for KEY */
  uint32_t rest_count;
  size_t keys;    /* keys the group shares */
  char **members; /* the members' names (ids when unnamed), sorted */
  size_t n_members;
};

struct vs_rollout {
  char *key, *value; /* the package key and its newest version, or the key and its new value */
  char *from;        /* the most common other value */
  uint32_t have, of; /* VMs that have VALUE, of those that have the package (or all VMs) */
  bool by_version;   /* a package version (else: moved between snapshots) */
};

struct vs_fleet_findings {
  uint32_t vms;
  struct vs_group *groups; /* sorted by key */
  size_t n_groups;
  struct vs_rollout *rollouts; /* sorted by key */
  size_t n_rollouts;
  char **unique; /* the VMs with no close peers (vs_view_unique), sorted */
  size_t n_unique;
};

/* The fleet findings of the prepared view V. */
struct vs_fleet_findings *vs_fleet_find(const struct vs_view *v);
void vs_fleet_findings_free(struct vs_fleet_findings *f);
void vs_fleet_findings_freep(struct vs_fleet_findings **f);
/* The group's one-line description ("KEY is V on 3 of 50 VMs: a, b, c; 47 of the rest have W
 * (2 keys set these VMs apart)"). */
char *vs_group_describe(const struct vs_group *g, uint32_t vms);
/* {"vms":N, "groups":[{"key","value","keys","members":[...],"rest":{"value","count"},
 *  "message"}], "rollouts":[{"key","value","from","have","of","share","by":"version"|
 *  "snapshots"}], "unique":[...]} */
json_t *vs_fleet_findings_json(const struct vs_fleet_findings *f);
/* The inverse of vs_fleet_findings_json, for findings another host published: every member
 * and field checked (no other member, counts in range); NULL with ERR saying what is wrong. */
struct vs_fleet_findings *vs_fleet_findings_from_json(const json_t *j, struct vs_err *err);

#endif
