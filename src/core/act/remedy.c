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

static int run_agent(struct vs_remedy *c, const char *command_text, const char *domain,
                     json_t **detail, struct vs_err *err) {
  json_t *cmd = json_loads(command_text, 0, NULL);
  const char *execute = json_string_value(json_object_get(cmd, "execute"));
  json_t *args = json_object_get(cmd, "arguments");
  int rc = -1;
  char *spec = NULL, *uuid = NULL;
  if (!execute) {
    vs_err_set(err, EINVAL, "agent action: \"%s\" is not {\"execute\": ...}", command_text);
    goto out;
  }
  int here = local_domain(c, domain, &spec, &uuid, err);
  if (here < 0 && !(c->o->fleet && c->o->fleet->n_endpoints)) goto out;
  if (here < 0) vs_err_clear(err); /* libvirt is away, but the fleet may know the VM */
  if (here > 0) {
    const char **allow = vs_xcalloc(c->o->n_allow + 1, sizeof(char *));
    size_t na = 0;
    bool exec_allowed = false;
    for (size_t i = 0; i < c->o->n_allow; i++) {
      allow[na++] = c->o->allow[i];
      exec_allowed |= strcmp(c->o->allow[i], "guest-exec") == 0;
    }
    if (exec_allowed) allow[na++] = "guest-exec-status"; /* to see the command finish */
    struct vs_channel_opts co = {
        .timeout_ms = c->o->agent_timeout_ms, .allow = allow, .n_allow = na};
    struct vs_channel *ch = vs_channel_open_spec(spec, c->virt, uuid, &co);
    enum vs_channel_status s;
    if (!ch) {
      free(allow);
      vs_err_set(err, ENOTSUP, "%s: agent channel \"%s\" is none vmscope knows", domain, spec);
      goto out;
    }
    if (strcmp(execute, "guest-exec") == 0) {
      /* Run to its end: a remediation that failed must say so. */
      const char *path = json_string_value(json_object_get(args, "path"));
      json_t *argj = json_object_get(args, "arg");
      size_t n = json_array_size(argj);
      const char **argv = vs_xcalloc(n + 1, sizeof(char *));
      for (size_t i = 0; i < n; i++)
        argv[i] = json_string_value(json_array_get(argj, i)) ?: "";
      struct vs_exec_result x = {0};
      s = path ? vs_channel_exec(ch, path, argv, c->o->exec_deadline_ms ?: 60000, &x, err)
               : (vs_err_set(err, EINVAL, "guest-exec without a \"path\""), VS_CHANNEL_MALFORMED);
      free(argv);
      if (s == VS_CHANNEL_OK) {
        *detail = vs_exec_result_to_json(&x);
        json_object_set_new(*detail, "channel", json_string(spec));
        if (x.exit_code != 0)
          vs_err_set(err, EIO, "%s: guest-exec %s exited with %d%s%.*s", domain, path, x.exit_code,
                     x.err_len ? ": " : "", (int)(x.err_len > 200 ? 200 : x.err_len),
                     x.err ? x.err : "");
        else
          rc = 0;
      }
      vs_exec_result_clear(&x);
    } else {
      json_t *reply = NULL;
      s = vs_channel_call(ch, execute, args, &reply, err);
      if (s == VS_CHANNEL_OK) {
        *detail = json_pack("{sosssss}", "return", reply, "channel", spec, "status", "ok");
        rc = 0;
      }
    }
    if (s != VS_CHANNEL_OK) vs_err_prefix(err, "%s (%s)", domain, vs_channel_status_name(s));
    vs_channel_close(ch);
    free(allow);
    goto out;
  }
  if (!c->o->fleet || !c->o->fleet->n_endpoints) {
    vs_err_set(err, ENOENT, "%s does not run on this host and no FleetStore routes elsewhere",
               domain);
    goto out;
  }
  if (!c->fleet && !(c->fleet = vs_fleet_open(c->o->fleet, err))) goto out;
  json_t *reply = NULL;
  enum vs_channel_status s =
      vs_route_send(c->fleet, domain, cmd, c->o->agent_timeout_ms ?: 10000, &reply, err);
  if (s == VS_CHANNEL_OK) {
    *detail = json_pack("{sosssb}", "return", reply, "status", "ok", "routed", 1);
    rc = 0;
  }
out:
  free(spec);
  free(uuid);
  json_decref(cmd);
  return rc;
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
  }
  json_decref(local);
  return rc;
}
