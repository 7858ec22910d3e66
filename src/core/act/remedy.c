#include "remedy.h"

#include "channel.h"
#include "patchset.h"
#include "route.h"
#include "virt.h"
#include "webhook.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void vs_remedy_clear(struct vs_remedy *c) {
  vs_virt_close(c->virt);
  vs_fleet_close(c->fleet);
  c->virt = NULL;
  c->fleet = NULL;
}

static struct vs_virt *virt_of(struct vs_remedy *c, struct vs_err *err) {
  if (c->virt && !vs_virt_alive(c->virt)) {
    vs_virt_close(c->virt); /* libvirtd restarted: a new connection */
    c->virt = NULL;
  }
  if (!c->virt) c->virt = vs_virt_open(c->o->uri, false, err);
  return c->virt;
}

/* The running domain NAME (or UUID) of this host, as *SPEC (its agent channel) and *UUID;
 * 0 when it does not run here. */
static int local_domain(struct vs_remedy *c, const char *name, char **spec, char **uuid,
                        struct vs_err *err) {
  *spec = *uuid = NULL;
  struct vs_virt *v = virt_of(c, err);
  if (!v) return -1;
  struct vs_domain *doms = NULL;
  size_t n = 0;
  if (vs_virt_domains(v, &doms, &n, err) < 0) return -1;
  for (size_t i = 0; i < n && !*uuid; i++) {
    if (!doms[i].active || (strcmp(doms[i].name, name) != 0 && strcmp(doms[i].uuid, name) != 0))
      continue;
    *spec = vs_virt_agent_spec(v, doms[i].xml);
    *uuid = vs_xstrdup(doms[i].uuid);
  }
  vs_domains_free(doms, n);
  return *uuid ? 1 : 0;
}

/* A channel call that failed: "DOMAIN (timeout): why". Returns -1. */
static int channel_failed(enum vs_channel_status s, const char *domain, struct vs_err *err) {
  return vs_err_prefix(err, "%s (%s)", domain, vs_channel_status_name(s));
}

/* guest-exec through CH, run to its end: a remediation that failed must say so. */
static int exec_to_end(const struct vs_remedy *c, struct vs_channel *ch, json_t *args,
                       const char *domain, const char *spec, json_t **detail, struct vs_err *err) {
  const char *path = json_string_value(json_object_get(args, "path"));
  if (!path) {
    vs_err_set(err, EINVAL, "guest-exec without a \"path\"");
    return channel_failed(VS_CHANNEL_MALFORMED, domain, err);
  }
  json_t *argj = json_object_get(args, "arg");
  size_t n = json_array_size(argj);
  _cleanup_(vs_freep) const char **argv = vs_xcalloc(n + 1, sizeof(char *));
  for (size_t i = 0; i < n; i++)
    argv[i] = json_string_value(json_array_get(argj, i)) ?: "";
  _cleanup_(vs_exec_result_clear) struct vs_exec_result x = {0};
  enum vs_channel_status s =
      vs_channel_exec(ch, path, argv, c->o->exec_deadline_ms ?: 60000, &x, err);
  if (s != VS_CHANNEL_OK) return channel_failed(s, domain, err);
  *detail = vs_exec_result_to_json(&x);
  json_object_set_new(*detail, "channel", json_string(spec));
  if (x.exit_code == 0) return 0;
  return vs_err_set(err, EIO, "%s: guest-exec %s exited with %d%s%.*s", domain, path, x.exit_code,
                    x.err_len ? ": " : "", (int)(x.err_len > 200 ? 200 : x.err_len),
                    x.err ? x.err : "");
}

/* EXECUTE with ARGS to DOMAIN's agent on this host, through its channel SPEC. */
static int run_local(struct vs_remedy *c, const char *execute, json_t *args, const char *domain,
                     const char *spec, const char *uuid, json_t **detail, struct vs_err *err) {
  _cleanup_(vs_freep) const char **allow = vs_xcalloc(c->o->n_allow + 1, sizeof(char *));
  size_t na = 0;
  bool exec_allowed = false;
  for (size_t i = 0; i < c->o->n_allow; i++) {
    allow[na++] = c->o->allow[i];
    exec_allowed |= strcmp(c->o->allow[i], "guest-exec") == 0;
  }
  if (exec_allowed) allow[na++] = "guest-exec-status"; /* to see the command finish */
  struct vs_channel_opts co = {.timeout_ms = c->o->agent_timeout_ms,
                               .allow = allow,
                               .n_allow = na,
                               .thaw_wait_ms = c->o->thaw_wait_ms};
  _cleanup_(vs_channel_closep) struct vs_channel *ch =
      vs_channel_open_spec(spec, c->virt, uuid, &co);
  if (!ch)
    return vs_err_set(err, ENOTSUP, "%s: agent channel \"%s\" is none vmscope knows", domain, spec);
  if (strcmp(execute, "guest-exec") == 0)
    return exec_to_end(c, ch, args, domain, spec, detail, err);
  json_t *reply = NULL;
  enum vs_channel_status s = vs_channel_call(ch, execute, args, &reply, err);
  if (s != VS_CHANNEL_OK) return channel_failed(s, domain, err);
  *detail = json_pack("{sossss}", "return", reply, "channel", spec, "status", "ok");
  return 0;
}

/* CMD to DOMAIN's agent through the fleet store, to the host that runs it. */
static int run_routed(struct vs_remedy *c, json_t *cmd, const char *domain, json_t **detail,
                      struct vs_err *err) {
  if (!c->o->fleet || !c->o->fleet->n_endpoints)
    return vs_err_set(err, ENOENT,
                      "%s does not run on this host and no FleetStore routes elsewhere", domain);
  if (!c->fleet && !(c->fleet = vs_fleet_open(c->o->fleet, err))) return -1;
  json_t *reply = NULL;
  enum vs_channel_status s =
      vs_route_send(c->fleet, domain, cmd, c->o->agent_timeout_ms ?: 10000, &reply, err);
  if (s != VS_CHANNEL_OK) return -1;
  *detail = json_pack("{sosssb}", "return", reply, "status", "ok", "routed", 1);
  return 0;
}

static int run_agent(struct vs_remedy *c, const char *command_text, const char *domain,
                     json_t **detail, struct vs_err *err) {
  _cleanup_(json_decrefp) json_t *cmd = json_loads(command_text, 0, NULL);
  const char *execute = json_string_value(json_object_get(cmd, "execute"));
  if (!execute)
    return vs_err_set(err, EINVAL, "agent action: \"%s\" is not {\"execute\": ...}", command_text);
  _cleanup_(vs_freep) char *spec = NULL;
  _cleanup_(vs_freep) char *uuid = NULL;
  int here = local_domain(c, domain, &spec, &uuid, err);
  if (here > 0)
    return run_local(c, execute, json_object_get(cmd, "arguments"), domain, spec, uuid, detail,
                     err);
  if (here < 0) {
    if (!c->o->fleet || !c->o->fleet->n_endpoints) return -1;
    vs_err_clear(err); /* libvirt is away, but the fleet may know the VM */
  }
  return run_routed(c, cmd, domain, detail, err);
}

int vs_remedy_run(struct vs_remedy *c, const struct vs_rule *r, const struct vs_rule_action *a,
                  const struct vs_event *e, const char *domain, json_t **detail,
                  struct vs_err *err) {
  json_t *local = NULL;
  if (!detail) detail = &local;
  *detail = NULL;
  int rc = -1;
  switch (a->kind) {
  case VS_ACTION_AGENT:
    rc = run_agent(c, a->arg, domain, detail, err);
    break;
  case VS_ACTION_PATCHSET: {
    struct vs_virt *v = virt_of(c, err);
    rc = v ? vs_patchset_apply_domain(v, domain, NULL, a->arg, c->o->patchset_copy,
                                      c->o->copy_timeout_s ?: 600, detail, err)
           : -1;
    break;
  }
  case VS_ACTION_WEBHOOK: {
    char *body = vs_webhook_body(&r->webhook, r->name, e);
    int attempts = 0;
    int status = vs_webhook_post(a->arg, &r->webhook, body, &attempts, err);
    free(body);
    *detail = json_pack("{sisi}", "http_status", status, "attempts", attempts);
    rc = status >= 200 && status < 300 ? 0 : -1;
    break;
  }
  default: /* the contract: -1 comes with a message */
    vs_err_set(err, EINVAL, "%s: action kind %d is none of agent, patchset or webhook", domain,
               (int)a->kind);
  }
  json_decref(local);
  return rc;
}
