/* fleetview_int.h: the fleet view's insides, shared by fleetview.c (a view of every VM) and
 * fleetctx.c (a host's VMs in the fleet's context). Not for other modules. */
#ifndef VS_FLEETVIEW_INT_H
#define VS_FLEETVIEW_INT_H

#include "fleetview.h"

struct vm {
  struct vs_feature *doc, *prev; /* newest, and the one before (or NULL) */
  uint64_t *tokens, *prev_tokens;
};

struct vs_view {
  struct vm *vms;
  size_t n, cap;
  struct vs_strmap *by_id; /* id -> index + 1 */
  char **errors;
  size_t n_errors;
  /* after prepare */
  bool prepared;
  struct vs_view_opts opts;
  struct vs_vm_tokens *tokens;
  struct vs_analysis *analysis;
  struct vs_pop *fleet;
  struct vs_pop **role_pops; /* per close group: its VMs but the unique ones (peers), or NULL */
  struct vs_pop **kind_pops; /* per close group: all its VMs (whose value a value is) */
  const char **role_names;   /* each role's medoid's name (or id) */
  bool *unique;              /* per VM: fewer than min_role_peers close peers */
  size_t *group, n_groups;   /* per VM: its close group (neighbours.h); how many */
  size_t *group_size;
  struct vs_strmap *rolling; /* keys moving through the fleet between snapshots */
  struct vs_strmap *moving;  /* the keys whose tokens count their presence alone */
  uint32_t group_max;
  struct vs_view_times times; /* what prepare took */
  /* A view prepared from the fleet's context (fleetctx.c) holds this host's VMs alone: */
  bool from_context;
  size_t *group_ids;          /* per close group: its number in the fleet (the context's) */
  json_t *majorities;         /* KEY -> [[VALUE, GROUP, NAME, GROUP, NAME]...], checked */
  struct vs_view_role *roles; /* per VM: its role as the elected host's analysis saw it */
  json_t *context;            /* the parts it was made from: the strings above point into them */
};

/* vs_view_same_role of a view from the context (fleetctx.c). */
bool vs_view_context_same_role(const struct vs_view *v, size_t i, const char *id);

#endif
