/* vmscope_action: collectd plugin for two things. It hosts this host's proxy agent
 * (action_proxy.c, see route.h): it keeps the host's running domains in the etcd fleet map
 * under a lease, delivers the messages put into the host's inbox through each VM's guest agent
 * channel, and answers them; without a FleetStore it serves a local unix socket instead (mode
 * 0600). And it runs config-driven remediation (action_remedy.c, action_rule.c): each <Rule>
 * block registers a notification callback of its own, whose matching notifications a pool of
 * workers turns into the rule's actions (remedy.h), each reported as an action_result
 * notification and as counters. See collectd-vmscope(5).
 *
 * This file reads the <Plugin> block (where libvirt, the fleet store and the guest agents are,
 * which both parts use; the remediation's own options go to action_remedy.c) and starts,
 * reads and stops the two parts. Threads (plugin_thread_create): one for the proxy, Workers
 * for the actions. */
#include "action_internal.h"

static struct action_conf conf = {.lease = 15};

/* ---------------------------------------------------------------------------- config */

/* FleetStore and AllowCommand: lists of strings, at most MAX_LIST. */
static int config_list(const oconfig_item_t *c, char **list, size_t *n) {
  for (int k = 0; k < c->values_num; k++) {
    if (c->values[k].type != OCONFIG_TYPE_STRING || *n == MAX_LIST) {
      ERROR(PLUGIN ": %s takes strings (at most %d)", c->key, MAX_LIST);
      return -1;
    }
    list[(*n)++] = vs_xstrdup(c->values[k].value.string);
  }
  return 0;
}

/* A file that must be there now (the fleet store's TLS files). */
static int config_file(const oconfig_item_t *c, char **path) {
  return vs_cf_string(c, PLUGIN, path) < 0 ? -1 : vs_cf_check_file(c, PLUGIN, *path);
}

static int config_lease(const oconfig_item_t *c) {
  if (vs_cf_int(c, PLUGIN, &conf.lease) < 0) return -1;
  if (conf.lease >= 2) return 0;
  ERROR(PLUGIN ": Lease must be at least 2 seconds");
  return -1;
}

/* The options both parts use; 1 when KEY is none of them. */
static int config_shared(const oconfig_item_t *c) {
  const char *k = c->key;
  if (strcasecmp(k, "FleetStore") == 0) return config_list(c, conf.stores, &conf.n_stores);
  if (strcasecmp(k, "AllowCommand") == 0) return config_list(c, conf.allow, &conf.n_allow);
  if (strcasecmp(k, "HostName") == 0) return vs_cf_string(c, PLUGIN, &conf.host);
  if (strcasecmp(k, "Lease") == 0) return config_lease(c);
  if (strcasecmp(k, "AgentTimeout") == 0) return vs_cf_cdtime(c, PLUGIN, &conf.agent_timeout);
  if (strcasecmp(k, "ThawTimeout") == 0) {
    conf.thaw_timeout_set = true;
    return vs_cf_cdtime(c, PLUGIN, &conf.thaw_timeout);
  }
  if (strcasecmp(k, "Socket") == 0) return vs_cf_string(c, PLUGIN, &conf.socket);
  if (strcasecmp(k, "Connection") == 0) return vs_cf_string(c, PLUGIN, &conf.uri);
  if (strcasecmp(k, "Prefix") == 0) return vs_cf_string(c, PLUGIN, &conf.prefix);
  if (strcasecmp(k, "FleetCACert") == 0) return config_file(c, &conf.cacert);
  if (strcasecmp(k, "FleetCert") == 0) return config_file(c, &conf.cert);
  if (strcasecmp(k, "FleetKey") == 0) return config_file(c, &conf.key);
  if (strcasecmp(k, "FleetUser") == 0) return vs_cf_string(c, PLUGIN, &conf.user);
  if (strcasecmp(k, "FleetPassword") == 0) return vs_cf_string(c, PLUGIN, &conf.password);
  return 1;
}

static int config(oconfig_item_t *ci) {
  static const char *const lists[] = {"FleetStore", "AllowCommand", "Rule", NULL};
  if (vs_cf_check_repeats(ci, PLUGIN, NULL, lists) < 0) return -1;
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = &ci->children[i];
    int rc = config_shared(c);
    if (rc == 1) rc = remedy_config(c);
    if (rc == 1) {
      ERROR(PLUGIN
            ": unknown option \"%s\" (expected FleetStore, HostName, Lease, "
            "AgentTimeout, ThawTimeout, AllowCommand, Socket, Connection, Prefix, FleetCACert, "
            "FleetCert, FleetKey, FleetUser, FleetPassword, Rule, Workers, QueueSize, "
            "ExecTimeout, PatchsetMethod, CopyTimeout or PluginInstanceFormat)",
            c->key);
      return -1;
    }
    if (rc != 0) return -1;
  }
  if (conf.n_stores == 0 && !conf.socket && !remedy_has_rules()) {
    ERROR(PLUGIN ": give FleetStore (etcd endpoints), Socket (a local proxy socket) or a Rule");
    return -1;
  }
  return remedy_check_allowed(&conf);
}

/* ------------------------------------------------------------------------- lifecycle */

static bool has_proxy(void) {
  return conf.n_stores || conf.socket;
}

static int init(void) {
  vs_log_set_sink(vs_glue_log_sink, PLUGIN);
  if (!conf.host) conf.host = vs_xstrdup(hostname_g ? hostname_g : "localhost");
  if (conf.agent_timeout == 0) conf.agent_timeout = TIME_T_TO_CDTIME_T(5);
  if (!conf.thaw_timeout_set) conf.thaw_timeout = TIME_T_TO_CDTIME_T(60);
  if (remedy_start(&conf) != 0) return -1;
  return has_proxy() ? proxy_start(&conf) : 0;
}

static int read_cb(void) {
  if (has_proxy()) proxy_read();
  remedy_read();
  return 0;
}

/* Before any plugin's shutdown callback (vs_glue_register_read): no thread of ours dispatches
 * after this. */
static void halt(void) {
  proxy_stop();
  remedy_halt();
}

static int shutdown_cb(void) {
  halt();
  remedy_stop();
  for (size_t i = 0; i < conf.n_stores; i++)
    free(conf.stores[i]);
  for (size_t i = 0; i < conf.n_allow; i++)
    free(conf.allow[i]);
  char **strings[] = {&conf.host, &conf.socket, &conf.uri,  &conf.prefix,  &conf.cacert,
                      &conf.cert, &conf.key,    &conf.user, &conf.password};
  for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
    vs_freep(strings[i]);
  conf = (struct action_conf){.lease = conf.lease,
                              .agent_timeout = conf.agent_timeout,
                              .thaw_timeout = conf.thaw_timeout,
                              .thaw_timeout_set = conf.thaw_timeout_set};
  return 0;
}

void module_register(void) {
  plugin_register_complex_config(PLUGIN, config);
  plugin_register_init(PLUGIN, init);
  vs_glue_register_read(PLUGIN, read_cb, halt);
  plugin_register_shutdown(PLUGIN, shutdown_cb);
}
