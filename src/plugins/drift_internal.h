/* drift_internal.h: the parts of vmscope_drift (see vmscope_drift.c) and what they share.
 * vmscope_drift.c reads the <Plugin> block, runs the worker and dispatches the metrics; the
 * worker hands each ranked VM to drift_vm.c (its alarms, its uniqueness, its role and anomaly)
 * and the fleet's findings to drift_fleet.c (config_group, rollout, majority_change). All of it
 * runs in the worker thread alone, so none of it takes a lock; the options are read-only once
 * init has started the worker. Private to vmscope_drift.so: hidden, so that the plugin exports
 * module_register only. */
#ifndef VS_DRIFT_INTERNAL_H
#define VS_DRIFT_INTERNAL_H

#include "glue.h"

#include "analytics.h"
#include "drift.h"
#include "fleetfind.h"
#include "fleetview.h"

#define PLUGIN "vmscope_drift"

#pragma GCC visibility push(hidden)

struct drift_conf { /* the <Plugin> block */
  char *data_dir, *waiver_file, *label_file;
  enum vs_peer_group peer_group;
  enum vs_instance_format instance_format;
  cdtime_t forget_after; /* a VM whose newest document is older is gone (0: never) */
  double anomaly_threshold, role_threshold;
  int min_role_peers;
  double warn_score, fail_score;
  cdtime_t interval, resend;
  int top;
  /* the fleet store (store.h): NULL url for a host of its own */
  char *store_url, *store_password_file, *store_ca_file;
  cdtime_t host_timeout;
  bool store_documents;
};

struct alarm { /* an active alarm of one VM */
  char *key;
  enum vs_severity severity;
  cdtime_t sent;
  bool seen; /* still raised in this round */
};

struct vm { /* one VM's latest ranking (the worker's) */
  char *id, *name;
  double score;                              /* the highest score among its alarms */
  size_t n_alarmed, failures, waived, peers; /* alarms (not waived), failures among them, and
                                                waived ones of this round */
  struct alarm *alarms;
  size_t n_alarms;
  bool seen;
  bool unique, ranked; /* no close peers last round; ranked at least once */
  /* analytics */
  char *medoid;     /* its role's medoid last round (a role is known by it), NULL before */
  size_t role_size; /* its role's size last round */
  double anomaly, similarity, label_p;
  bool anomalous; /* above AnomalyThreshold: notified */
};

/* The last part of KEY, for messages: "PermitRootLogin" of "file:/etc/ssh/sshd_config:
 * PermitRootLogin", "openssl" of "pkg:openssl"; a collapsed unit ("file:/etc/app.conf:*") is
 * named whole. */
static inline const char *key_leaf(const char *key) {
  const char *leaf = strrchr(key, ':');
  return leaf && leaf[1] && leaf[1] != '*' ? leaf + 1 : key;
}

/* One VM (drift_vm.c), after ranking D. C: the options. V became unique (no close peers:
 * D->unique) or stopped being: an informational notification, also when V is first ranked
 * unique; VMS is the fleet's size. */
void vm_update_unique(const struct drift_conf *c, struct vm *v, const struct vs_drift *d,
                      size_t vms);
/* Brings V's alarms in line with D: notifies what appeared, changed severity, is due for a
 * resend, or cleared. CLOSE: D's peers are V's close peers (else the whole fleet). */
void vm_update_alarms(const struct drift_conf *c, struct vm *v, const struct vs_drift *d,
                      cdtime_t now, bool close);
/* V is VM I of VIEW: its role, anomaly and label figures, and their notifications. */
void vm_update_analytics(const struct drift_conf *c, struct vm *v, const struct vs_view *view,
                         size_t i, bool unique);
/* V is gone (not ranked this round): its alarms clear. */
void vm_clear_alarms(const struct drift_conf *c, const struct vm *v);

/* The fleet (drift_fleet.c), each round, in this order. The fleet-wide keys of POP whose
 * majority moved, less those a rollout of F (this round's or last round's) moved: notified,
 * and counted in the return value. */
size_t fleet_notify_majorities(const struct vs_pop *pop, const struct vs_fleet_findings *f);
/* F's groups and rollouts that are new or changed, and those gone (POP: the fleet now). */
void fleet_notify_findings(const struct vs_fleet_findings *f, const struct vs_pop *pop);
void fleet_forget(void); /* frees what the rounds kept */
/* A host elected now: what the host before it notified (LAST, from the store) is known, so
 * only what changed since is notified (and what is gone gets its OKAY from this host). */
void fleet_take_over(const struct vs_fleet_findings *last);

#pragma GCC visibility pop

#endif
