/* remedy.h: runs one action of a remediation rule (rules.h) for the notification that fired
 * it, as vmscope_action's workers do:
 *
 *   agent     the rule's {"execute": ...} command to the domain's guest agent: on this host
 *             through its channel (libvirt, or the XML's unix socket for drivers that cannot
 *             carry agent commands; see vs_virt_agent_spec), or, when the domain is not
 *             running here and a fleet store is configured, routed to the host that runs it.
 *             A local guest-exec is run to its end (started, then polled) and fails when the
 *             command exits non-zero; a routed guest-exec reports the started pid.
 *   patchset  the set applied to the domain, running or stopped (vs_patchset_apply_domain).
 *   webhook   the notification posted to the URL (webhook.h).
 *
 * A context holds one worker's connections (libvirt, etcd), opened on first use and reopened
 * when they fail; one context serves one thread. */
#ifndef VS_REMEDY_H
#define VS_REMEDY_H

#include "fleet.h"
#include "rules.h"

struct vs_remedy_opts {
  const char *uri;                   /* libvirt; NULL: the default */
  const struct vs_fleet_opts *fleet; /* NULL or no endpoints: nothing is routed */
  const char *const *allow;          /* agent commands allowed besides the read-only ones */
  size_t n_allow;
  int agent_timeout_ms; /* each agent call (0: the channel's default) */
  int thaw_wait_ms;     /* a frozen guest's agent: wait this long for the thaw (channel.h) */
  int exec_deadline_ms; /* a guest-exec's run (0: 60000) */
  bool patchset_copy;   /* patch sets under running domains by block copy, not reopen */
  int copy_timeout_s;   /* 0: 600 */
};

struct vs_remedy {
  const struct vs_remedy_opts *o;
  struct vs_virt *virt;
  struct vs_fleet *fleet;
};

/* Runs A (an action of rule R) for event E on domain DOMAIN. Returns 0 when it did what it
 * says, else -1 with ERR; *DETAIL (may be NULL) gets what it did as JSON (a reply, an exit
 * code and output, a patch set report, an HTTP status and attempts). */
int vs_remedy_run(struct vs_remedy *c, const struct vs_rule *r, const struct vs_rule_action *a,
                  const struct vs_event *e, const char *domain, json_t **detail,
                  struct vs_err *err);
/* Closes the context's connections. */
void vs_remedy_clear(struct vs_remedy *c);

#endif
