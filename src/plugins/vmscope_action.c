/* vmscope_action: collectd plugin that hosts this host's proxy agent (see route.h): it keeps
 * the host's running domains in the etcd fleet map under a lease, delivers the messages put
 * into the host's inbox through each VM's guest agent channel, and answers them; without a
 * FleetStore it serves a local unix socket instead (mode 0600). See collectd-vmscope(5).
 *
 * One worker thread (plugin_thread_create) runs the proxy; the read callback dispatches its
 * counters. Config-driven remediation comes with issue 8. */
#include "glue.h"

#include "fleet.h"
#include "route.h"
#include "virt.h"

#define PLUGIN "vmscope_action"
#define MAX_LIST 64

static struct {
  char *stores[MAX_LIST];
  size_t n_stores;
  char *allow[MAX_LIST];
  size_t n_allow;
  char *host, *socket, *uri, *prefix;
  char *cacert, *cert, *key, *user, *password; /* etcd TLS and authentication */
  int lease;
  cdtime_t agent_timeout;
  pthread_t thread;
  pthread_mutex_t lock;
  bool running, stop;
  uint64_t delivered, errors; /* under LOCK */
  size_t vms;
  struct vs_once once; /* the worker's */
} act = {.lock = PTHREAD_MUTEX_INITIALIZER, .lease = 15};

static int config(oconfig_item_t *ci) {
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = &ci->children[i];
    int rc = 0;
    if (strcasecmp(c->key, "FleetStore") == 0 || strcasecmp(c->key, "AllowCommand") == 0) {
      bool store = strcasecmp(c->key, "FleetStore") == 0;
      for (int k = 0; k < c->values_num && rc == 0; k++) {
        if (c->values[k].type != OCONFIG_TYPE_STRING ||
            (store ? act.n_stores : act.n_allow) == MAX_LIST) {
          ERROR(PLUGIN ": %s takes strings (at most %d)", c->key, MAX_LIST);
          rc = -1;
        } else if (store) {
          act.stores[act.n_stores++] = strdup(c->values[k].value.string);
        } else {
          act.allow[act.n_allow++] = strdup(c->values[k].value.string);
        }
      }
    } else if (strcasecmp(c->key, "HostName") == 0) {
      rc = cf_util_get_string(c, &act.host);
    } else if (strcasecmp(c->key, "Lease") == 0) {
      if ((rc = cf_util_get_int(c, &act.lease)) == 0 && act.lease < 2) {
        ERROR(PLUGIN ": Lease must be at least 2 seconds");
        rc = -1;
      }
    } else if (strcasecmp(c->key, "AgentTimeout") == 0) {
      rc = cf_util_get_cdtime(c, &act.agent_timeout);
    } else if (strcasecmp(c->key, "Socket") == 0) {
      rc = cf_util_get_string(c, &act.socket);
    } else if (strcasecmp(c->key, "Connection") == 0) {
      rc = cf_util_get_string(c, &act.uri);
    } else if (strcasecmp(c->key, "Prefix") == 0) {
      rc = cf_util_get_string(c, &act.prefix);
    } else if (strcasecmp(c->key, "FleetCACert") == 0) {
      rc = cf_util_get_string(c, &act.cacert);
    } else if (strcasecmp(c->key, "FleetCert") == 0) {
      rc = cf_util_get_string(c, &act.cert);
    } else if (strcasecmp(c->key, "FleetKey") == 0) {
      rc = cf_util_get_string(c, &act.key);
    } else if (strcasecmp(c->key, "FleetUser") == 0) {
      rc = cf_util_get_string(c, &act.user);
    } else if (strcasecmp(c->key, "FleetPassword") == 0) {
      rc = cf_util_get_string(c, &act.password);
    } else {
      ERROR(PLUGIN
            ": unknown option \"%s\" (expected FleetStore, HostName, Lease, "
            "AgentTimeout, AllowCommand, Socket, Connection, Prefix, FleetCACert, FleetCert, "
            "FleetKey, FleetUser or FleetPassword)",
            c->key);
      rc = -1;
    }
    if (rc != 0) return -1;
  }
  if (act.n_stores == 0 && !act.socket) {
    ERROR(PLUGIN ": give FleetStore (etcd endpoints) or Socket (a local proxy socket)");
    return -1;
  }
  return 0;
}

static void *worker(void *arg) {
  (void)arg;
  struct vs_err err = {0};
  struct vs_fleet_opts fo = {.endpoints = (const char *const *)act.stores,
                             .n_endpoints = act.n_stores,
                             .prefix = act.prefix,
                             .cacert = act.cacert,
                             .cert = act.cert,
                             .key = act.key,
                             .user = act.user,
                             .password = act.password};
  struct vs_channel_opts co = {.timeout_ms = (int)CDTIME_T_TO_MS(act.agent_timeout),
                               .allow = (const char *const *)act.allow,
                               .n_allow = act.n_allow};
  struct vs_fleet *f = act.n_stores ? vs_fleet_open(&fo, &err) : NULL;
  struct vs_virt *v = NULL;
  struct vs_proxy *p = NULL;
  double next_refresh = 0;
  unsigned long events = 0, seen_events = 0;
  vs_virt_enable_events(); /* before the connection: domain lifecycle events update the map */
  bool stop = false;
  while (!stop) {
    if (!v && !(v = vs_virt_open(act.uri, false, &err))) {
      vs_once_fail(&act.once, PLUGIN, "libvirt", vs_err_msg(&err));
      vs_err_clear(&err);
    } else if (v && vs_virt_watch_lifecycle(v, &events, &err) < 0) {
      vs_once_fail(&act.once, PLUGIN, "libvirt events", vs_err_msg(&err));
      vs_err_clear(&err);
    } else if (v && !vs_virt_alive(v)) {
      vs_virt_close(v); /* libvirtd went away: reconnect next round */
      v = NULL;
      vs_proxy_free(p);
      p = NULL;
    }
    if (v && !p && (!act.n_stores || f)) {
      p = vs_proxy_new(f, act.host, act.lease, v, &co, &err);
      if (p && act.socket && vs_proxy_listen(p, act.socket, &err) < 0) {
        vs_proxy_free(p);
        p = NULL;
      }
      if (!p) {
        vs_once_fail(&act.once, PLUGIN, "proxy", vs_err_msg(&err));
        vs_err_clear(&err);
      } else {
        vs_once_ok(&act.once, PLUGIN, "libvirt");
        vs_once_ok(&act.once, PLUGIN, "proxy");
      }
    }
    int handled = 0;
    if (p) {
      /* The map follows the domains: a lifecycle event (a domain started, stopped, migrated
       * in or out) refreshes it at once; otherwise it is refreshed, and the lease renewed, at
       * a third of the lease's time to live. */
      unsigned long now_events = __atomic_load_n(&events, __ATOMIC_RELAXED);
      if (now_events != seen_events || vs_now_monotonic() >= next_refresh) {
        seen_events = now_events;
        if (vs_proxy_refresh(p, &err) < 0) {
          vs_once_fail(&act.once, PLUGIN, "fleet", vs_err_msg(&err));
          vs_err_clear(&err);
        } else {
          vs_once_ok(&act.once, PLUGIN, "fleet");
        }
        next_refresh = vs_now_monotonic() + act.lease / 3.0;
      }
      handled = vs_proxy_deliver(p, &err);
      if (handled < 0) {
        vs_once_fail(&act.once, PLUGIN, "inbox", vs_err_msg(&err));
        vs_err_clear(&err);
      }
      int served = vs_proxy_serve(p, handled > 0 ? 0 : (f ? 5 : 200), &err);
      if (served < 0) vs_err_clear(&err);
      pthread_mutex_lock(&act.lock);
      if (handled > 0) act.delivered += (uint64_t)handled;
      if (served > 0) act.delivered += (uint64_t)served;
      if (handled < 0) act.errors++;
      pthread_mutex_unlock(&act.lock);
    } else {
      usleep(500000);
    }
    pthread_mutex_lock(&act.lock);
    stop = act.stop;
    pthread_mutex_unlock(&act.lock);
  }
  vs_proxy_free(p);
  vs_virt_close(v);
  vs_fleet_close(f);
  vs_once_free(&act.once);
  return NULL;
}

static int init(void) {
  vs_log_set_sink(vs_glue_log_sink, PLUGIN);
  if (!act.host) act.host = strdup(hostname_g ? hostname_g : "localhost");
  if (act.agent_timeout == 0) act.agent_timeout = TIME_T_TO_CDTIME_T(5);
  if (act.running) return 0;
  act.stop = false;
  if (plugin_thread_create(&act.thread, worker, NULL, "vmscope action") != 0) {
    ERROR(PLUGIN ": cannot start the worker thread");
    return -1;
  }
  act.running = true;
  return 0;
}

static int read_cb(void) {
  pthread_mutex_lock(&act.lock);
  uint64_t delivered = act.delivered, errors = act.errors;
  pthread_mutex_unlock(&act.lock);
  vs_glue_submit(PLUGIN, "", "count", "messages_delivered", (gauge_t)delivered, 0);
  vs_glue_submit(PLUGIN, "", "count", "inbox_errors", (gauge_t)errors, 0);
  return 0;
}

static int shutdown_cb(void) {
  if (act.running) {
    pthread_mutex_lock(&act.lock);
    act.stop = true;
    pthread_mutex_unlock(&act.lock);
    pthread_join(act.thread, NULL);
    act.running = false;
  }
  for (size_t i = 0; i < act.n_stores; i++)
    free(act.stores[i]);
  for (size_t i = 0; i < act.n_allow; i++)
    free(act.allow[i]);
  act.n_stores = act.n_allow = 0;
  free(act.host);
  free(act.socket);
  free(act.uri);
  free(act.prefix);
  free(act.cacert);
  free(act.cert);
  free(act.key);
  free(act.user);
  free(act.password);
  act.host = act.socket = act.uri = act.prefix = NULL;
  act.cacert = act.cert = act.key = act.user = act.password = NULL;
  return 0;
}

void module_register(void) {
  plugin_register_complex_config(PLUGIN, config);
  plugin_register_init(PLUGIN, init);
  plugin_register_read(PLUGIN, read_cb);
  plugin_register_shutdown(PLUGIN, shutdown_cb);
}
