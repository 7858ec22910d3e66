/* action_internal.h: the parts of vmscope_action (see vmscope_action.c) and what they share.
 * The plugin's <Plugin> block says where libvirt, the fleet store and the guest agents are;
 * the proxy (action_proxy.c) and the remediation (action_remedy.c, action_rule.c) both use
 * that, read-only once init has started their threads. Private to vmscope_action.so: hidden,
 * so that the plugin exports module_register only. */
#ifndef VS_ACTION_INTERNAL_H
#define VS_ACTION_INTERNAL_H

#include "glue.h"

#include "fleet.h"
#include "rules.h"

#define PLUGIN "vmscope_action"
#define MAX_LIST 64

#pragma GCC visibility push(hidden)

struct action_conf {
  char *stores[MAX_LIST]; /* FleetStore */
  size_t n_stores;
  char *allow[MAX_LIST]; /* AllowCommand */
  size_t n_allow;
  char *host, *socket, *uri, *prefix;
  char *cacert, *cert, *key, *user, *password; /* etcd TLS and authentication */
  int lease;
  cdtime_t agent_timeout;
  cdtime_t thaw_timeout; /* ThawTimeout: 0 no wait (thaw_timeout_set), unset 60 s */
  bool thaw_timeout_set;
};

/* The fleet store as configured (FleetStore, Prefix, TLS and credentials). */
static inline struct vs_fleet_opts action_fleet_opts(const struct action_conf *c) {
  return (struct vs_fleet_opts){.endpoints = (const char *const *)c->stores,
                                .n_endpoints = c->n_stores,
                                .prefix = c->prefix,
                                .cacert = c->cacert,
                                .cert = c->cert,
                                .key = c->key,
                                .user = c->user,
                                .password = c->password};
}

/* The proxy (action_proxy.c): serves this host's inbox, or its Socket, from one thread. */
int proxy_start(const struct action_conf *c); /* a no-op when it runs already */
void proxy_read(void);                        /* dispatches its counters */
void proxy_stop(void);                        /* stops and joins the thread if it runs */

/* Remediation (action_remedy.c). Its options in the <Plugin> block: 1 when KEY is none of
 * them, else 0, or -1 after logging why the value is refused. */
int remedy_config(oconfig_item_t *c);
bool remedy_has_rules(void); /* a Rule was configured */
/* Refuses the rules whose agent actions the channel's allow-list (C's AllowCommand) refuses. */
int remedy_check_allowed(const struct action_conf *c);
/* Builds the rule set, starts the workers and registers the rules' notification callbacks;
 * C must outlive remedy_stop. */
int remedy_start(const struct action_conf *c);
void remedy_read(void);
/* Ends the retry thread and the workers (dropping what is queued); safe to call again. */
void remedy_halt(void);
void remedy_stop(void); /* halts, unregisters, and frees the rules, started or only configured */

/* A <Rule> block (action_rule.c): checked and added to PENDING (*N_PENDING rules, whose names
 * it must not repeat). */
int rule_config(oconfig_item_t *ci, struct vs_rule **pending, size_t *n_pending);

#pragma GCC visibility pop

#endif
