/* vmscope_action's proxy agent (see route.h): one thread keeps this host's running domains in
 * the etcd fleet map under a lease, delivers the messages put into the host's inbox through
 * each VM's guest agent channel, and answers them; without a FleetStore it serves a local unix
 * socket instead (mode 0600). libvirt, the fleet store and the proxy are reopened when they
 * fail, and each failure and recovery is logged once. */
#include "action_internal.h"

#include "channel.h"
#include "route.h"
#include "virt.h"

static struct {
  const struct action_conf *conf; /* the plugin's, set before the thread starts */
  pthread_t thread;
  pthread_mutex_t lock;
  bool running, stop;
  uint64_t delivered, errors; /* under LOCK */
  struct vs_once once;        /* the thread's */
} px = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The thread's connections, each reopened when it fails. */
struct proxy_run {
  struct vs_channel_opts co;
  struct vs_fleet *f; /* NULL without a FleetStore */
  struct vs_virt *v;
  struct vs_proxy *p;
  double next_refresh;
  unsigned long events, seen_events; /* EVENTS counts libvirt's lifecycle events */
};

/* libvirt connected and watched; a libvirtd that went away takes the proxy with it. */
static void keep_libvirt(struct proxy_run *r) {
  struct vs_err err = {0};
  if (!r->v && !(r->v = vs_virt_open(px.conf->uri, false, &err))) {
    vs_once_fail(&px.once, PLUGIN, "libvirt", vs_err_msg(&err));
  } else if (r->v && vs_virt_watch_lifecycle(r->v, &r->events, &err) < 0) {
    vs_once_fail(&px.once, PLUGIN, "libvirt events", vs_err_msg(&err));
  } else if (r->v && !vs_virt_alive(r->v)) {
    vs_virt_close(r->v); /* libvirtd went away: reconnect next round */
    r->v = NULL;
    vs_proxy_free(r->p);
    r->p = NULL;
  }
  vs_err_clear(&err);
}

/* The proxy, once libvirt (and the fleet store, when there is one) is there. */
static void keep_proxy(struct proxy_run *r) {
  if (!r->v || r->p || (px.conf->n_stores && !r->f)) return;
  struct vs_err err = {0};
  r->p = vs_proxy_new(r->f, px.conf->host, px.conf->lease, r->v, &r->co, &err);
  if (r->p && px.conf->socket && vs_proxy_listen(r->p, px.conf->socket, &err) < 0) {
    vs_proxy_free(r->p);
    r->p = NULL;
  }
  if (!r->p) {
    vs_once_fail(&px.once, PLUGIN, "proxy", vs_err_msg(&err));
    vs_err_clear(&err);
    return;
  }
  vs_once_ok(&px.once, PLUGIN, "libvirt");
  vs_once_ok(&px.once, PLUGIN, "proxy");
}

/* The map follows the domains: a lifecycle event (a domain started, stopped, migrated in or
 * out) refreshes it at once; otherwise it is refreshed, and the lease renewed, at a third of
 * the lease's time to live. */
static void refresh_map(struct proxy_run *r) {
  unsigned long now_events = __atomic_load_n(&r->events, __ATOMIC_RELAXED);
  if (now_events == r->seen_events && vs_now_monotonic() < r->next_refresh) return;
  r->seen_events = now_events;
  struct vs_err err = {0};
  if (vs_proxy_refresh(r->p, &err) < 0) {
    vs_once_fail(&px.once, PLUGIN, "fleet", vs_err_msg(&err));
    vs_err_clear(&err);
  } else {
    vs_once_ok(&px.once, PLUGIN, "fleet");
  }
  r->next_refresh = vs_now_monotonic() + px.conf->lease / 3.0;
}

/* One round: the inbox, then the socket's clients (waiting for them only when the inbox had
 * nothing, and briefly when the inbox needs polling too). */
static void deliver(struct proxy_run *r) {
  struct vs_err err = {0};
  int handled = vs_proxy_deliver(r->p, &err);
  if (handled < 0) {
    vs_once_fail(&px.once, PLUGIN, "inbox", vs_err_msg(&err));
    vs_err_clear(&err);
  }
  int served = vs_proxy_serve(r->p, handled > 0 ? 0 : (r->f ? 5 : 200), &err);
  if (served < 0) vs_err_clear(&err);
  pthread_mutex_lock(&px.lock);
  if (handled > 0) px.delivered += (uint64_t)handled;
  if (served > 0) px.delivered += (uint64_t)served;
  if (handled < 0) px.errors++;
  pthread_mutex_unlock(&px.lock);
}

static bool should_stop(void) {
  pthread_mutex_lock(&px.lock);
  bool stop = px.stop;
  pthread_mutex_unlock(&px.lock);
  return stop;
}

static void *proxy_thread(void *arg) {
  (void)arg;
  struct vs_fleet_opts fo = action_fleet_opts(px.conf);
  struct proxy_run r = {.co = {.timeout_ms = (int)CDTIME_T_TO_MS(px.conf->agent_timeout),
                               .allow = (const char *const *)px.conf->allow,
                               .n_allow = px.conf->n_allow,
                               .thaw_wait_ms = (int)CDTIME_T_TO_MS(px.conf->thaw_timeout)}};
  struct vs_err err = {0};
  if (px.conf->n_stores && !(r.f = vs_fleet_open(&fo, &err))) {
    vs_once_fail(&px.once, PLUGIN, "fleet", vs_err_msg(&err)); /* the proxy cannot start */
    vs_err_clear(&err);
  }
  vs_virt_enable_events(); /* before the connection: domain lifecycle events update the map */
  while (!should_stop()) {
    keep_libvirt(&r);
    keep_proxy(&r);
    if (r.p) {
      refresh_map(&r);
      deliver(&r);
    } else {
      usleep(500000);
    }
  }
  vs_proxy_free(r.p);
  vs_virt_close(r.v);
  vs_fleet_close(r.f);
  vs_once_free(&px.once);
  return NULL;
}

int proxy_start(const struct action_conf *c) {
  if (px.running) return 0;
  px.conf = c;
  px.stop = false;
  if (plugin_thread_create(&px.thread, proxy_thread, NULL, "vmscope action") != 0) {
    ERROR(PLUGIN ": cannot start the worker thread");
    return -1;
  }
  px.running = true;
  return 0;
}

void proxy_read(void) {
  pthread_mutex_lock(&px.lock);
  uint64_t delivered = px.delivered, errors = px.errors;
  pthread_mutex_unlock(&px.lock);
  vs_glue_submit(PLUGIN, "", "count", "messages_delivered", (gauge_t)delivered, 0);
  vs_glue_submit(PLUGIN, "", "count", "inbox_errors", (gauge_t)errors, 0);
}

void proxy_stop(void) {
  if (!px.running) return;
  pthread_mutex_lock(&px.lock);
  px.stop = true;
  pthread_mutex_unlock(&px.lock);
  pthread_join(px.thread, NULL);
  px.running = false;
}
