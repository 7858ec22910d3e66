#include "route.h"

#include "strmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* An id that sorts by time: nanoseconds, then randomness against collisions. */
static char *message_id(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint32_t r = 0;
  if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) r = (uint32_t)getpid();
  return vs_xasprintf(
      "%016llx-%08x",
      (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec, r);
}

static enum vs_channel_status status_of(const char *name) {
  for (int s = VS_CHANNEL_OK; s <= VS_CHANNEL_FAILED; s++)
    if (name && strcmp(name, vs_channel_status_name((enum vs_channel_status)s)) == 0)
      return (enum vs_channel_status)s;
  return VS_CHANNEL_MALFORMED;
}

/* A message on its way: where it was put, and what it says. */
struct placed {
  char *host, *inbox, *text;
};

static void placed_clear(struct placed *p) {
  free(p->host);
  free(p->inbox);
  free(p->text);
  *p = (struct placed){0};
}

/* Puts the message into the inbox of the host that runs VM, guarded by the VM's map entry so
 * that a VM moving meanwhile is located again (at most five times). */
static enum vs_channel_status place(struct vs_fleet *f, const char *vm, json_t *command,
                                    const char *id, struct placed *p, struct vs_err *err) {
  for (int attempt = 0; attempt < 5; attempt++) {
    _cleanup_(vs_freep) char *host = NULL, *uuid = NULL;
    int64_t rev = 0;
    if (vs_fleet_locate(f, vm, &host, &uuid, &rev, err) < 0) {
      enum vs_channel_status s =
          err->code == ENOENT ? VS_CHANNEL_NOT_CONFIGURED : VS_CHANNEL_FAILED;
      vs_err_prefix(err, "routing to %s (%s)", vm, vs_channel_status_name(s));
      return s;
    }
    json_t *msg =
        json_pack("{sssOsI}", "vm", uuid, "command", command, "sent", (json_int_t)time(NULL));
    _cleanup_(vs_freep) char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    _cleanup_(vs_freep) char *inbox = vs_xasprintf("inbox/%s/%s", host, id);
    _cleanup_(vs_freep) char *guard = vs_xasprintf("vms/%s", uuid);
    bool placed = false;
    if (vs_fleet_put_if_unchanged(f, guard, rev, inbox, text, &placed, err) < 0)
      return VS_CHANNEL_FAILED;
    if (placed) {
      *p = (struct placed){vs_steal(&host), vs_steal(&inbox), vs_steal(&text)};
      return VS_CHANNEL_OK;
    }
    /* Not placed: the VM moved between locating and sending; locate it again. */
  }
  vs_err_set(err, EAGAIN, "%s keeps moving between hosts; not sent (failed)", vm);
  return VS_CHANNEL_FAILED;
}

/* If VM now runs elsewhere than where P was put (its old host may be dead and unable to move
 * the message itself), moves the message after it. */
static void follow(struct vs_fleet *f, const char *vm, const char *id, struct placed *p) {
  _cleanup_(vs_freep) char *host = NULL, *uuid = NULL;
  int64_t rev = 0;
  if (vs_fleet_locate(f, vm, &host, &uuid, &rev, NULL) < 0 || strcmp(host, p->host) == 0) return;
  _cleanup_(vs_freep) char *to = vs_xasprintf("inbox/%s/%s", host, id);
  _cleanup_(vs_freep) char *guard = vs_xasprintf("vms/%s", uuid);
  bool moved = false;
  if (vs_fleet_move(f, p->inbox, to, p->text, guard, rev, &moved, NULL) == 0 && moved) {
    free(p->inbox);
    p->inbox = vs_steal(&to);
    free(p->host);
    p->host = vs_steal(&host);
  }
}

/* The proxy's reply VALUE: its status, and *REPLY (the agent's return) when it is ok. */
static enum vs_channel_status take_reply(const char *value, json_t **reply, struct vs_err *err) {
  json_t *r = json_loads(value, 0, NULL);
  enum vs_channel_status s = status_of(json_string_value(json_object_get(r, "status")));
  if (s == VS_CHANNEL_OK) {
    *reply = json_incref(json_object_get(r, "return"));
    vs_err_clear(err);
  } else {
    const char *why = json_string_value(json_object_get(r, "error"));
    vs_err_set(err, EREMOTEIO, "%s", why ? why : "the proxy's reply is malformed (malformed)");
  }
  json_decref(r);
  return s;
}

enum vs_channel_status vs_route_send(struct vs_fleet *f, const char *vm, json_t *command,
                                     int timeout_ms, json_t **reply, struct vs_err *err) {
  *reply = NULL;
  double deadline = vs_now_monotonic() + (timeout_ms > 0 ? timeout_ms : 10000) / 1000.0;
  _cleanup_(vs_freep) char *id = message_id();
  _cleanup_(vs_freep) char *reply_key = vs_xasprintf("replies/%s", id);
  _cleanup_(placed_clear) struct placed p = {0};
  enum vs_channel_status placed = place(f, vm, command, id, &p, err);
  if (placed != VS_CHANNEL_OK) return placed;
  double next_check = vs_now_monotonic() + 0.5;
  int wait_ms = 1;
  _cleanup_(vs_freep) char *store_error = NULL; /* the store's last error while waiting */
  for (;;) {
    _cleanup_(vs_freep) char *value = NULL;
    if (vs_fleet_get(f, reply_key, &value, NULL, err) == 0) {
      vs_fleet_delete(f, reply_key, NULL);
      return take_reply(value, reply, err);
    }
    if (err->code == EACCES) return VS_CHANNEL_FAILED; /* credentials do not get better */
    bool store_down = err->code != ENOENT;
    if (store_down) {
      /* The message is placed; the store is unavailable for now (a member down, no quorum):
       * keep asking until the deadline, and say why if it comes. */
      free(store_error);
      store_error = vs_xstrdup(vs_err_msg(err));
    }
    vs_err_clear(err);
    if (vs_now_monotonic() > next_check) {
      next_check = vs_now_monotonic() + 0.5;
      follow(f, vm, id, &p);
    }
    if (vs_now_monotonic() > deadline) {
      vs_err_set(err, ETIMEDOUT,
                 "%s: no reply within %d ms (the message stays queued for its host)%s%s (timeout)",
                 vm, timeout_ms, store_error ? "; the store last said: " : "",
                 store_error ? store_error : "");
      return VS_CHANNEL_TIMEOUT;
    }
    usleep((useconds_t)(store_down ? 200 : wait_ms) * 1000);
    if (wait_ms < 50) wait_ms *= 2;
  }
}

/* ---------------------------------------------------------------------------- the proxy */

struct vs_proxy {
  int listen_fd; /* the local socket, or -1 */
  char *socket_path;
  struct vs_fleet *fleet;
  char *host;
  int lease_s;
  int64_t lease;
  struct vs_virt *virt;
  struct vs_channel_opts channel_opts;
  struct vs_proxy_vm *vms;
  size_t n_vms;
  struct vs_strmap *channels; /* uuid -> struct vs_channel * */
  struct vs_strmap *mine;     /* uuids this host maps -> channel spec */
};

static void channel_free(void *c) {
  vs_channel_close(c);
}

struct vs_proxy *vs_proxy_new(struct vs_fleet *f, const char *host, int lease_s,
                              struct vs_virt *virt, const struct vs_channel_opts *channel,
                              struct vs_err *err) {
  if (!host || !*host || strchr(host, '/')) {
    vs_err_set(err, EINVAL, "host name \"%s\" is empty or holds '/'", host ? host : "");
    return NULL;
  }
  struct vs_proxy *p = vs_xcalloc(1, sizeof(*p));
  p->listen_fd = -1;
  p->fleet = f;
  p->host = vs_xstrdup(host);
  p->lease_s = lease_s > 0 ? lease_s : 15;
  p->virt = virt;
  if (channel) p->channel_opts = *channel;
  p->channels = vs_strmap_new(channel_free);
  p->mine = vs_strmap_new(free);
  return p;
}

static void free_vms(struct vs_proxy *p) {
  for (size_t i = 0; i < p->n_vms; i++) {
    free((char *)p->vms[i].uuid);
    free((char *)p->vms[i].name);
    free((char *)p->vms[i].channel);
  }
  free(p->vms);
  p->vms = NULL;
  p->n_vms = 0;
}

void vs_proxy_free(struct vs_proxy *p) {
  if (!p) return;
  if (p->listen_fd >= 0) {
    close(p->listen_fd);
    unlink(p->socket_path);
  }
  free(p->socket_path);
  free_vms(p);
  vs_strmap_free(p->channels);
  vs_strmap_free(p->mine);
  free(p->host);
  free(p);
}

void vs_proxy_set_vms(struct vs_proxy *p, const struct vs_proxy_vm *vms, size_t n) {
  free_vms(p);
  p->vms = vs_xcalloc(n + 1, sizeof(*p->vms));
  for (size_t i = 0; i < n; i++)
    p->vms[p->n_vms++] = (struct vs_proxy_vm){vs_xstrdup(vms[i].uuid), vs_xstrdup(vms[i].name),
                                              vs_xstrdup(vms[i].channel)};
}

/* Which VMs are this host's, and their channels: the configured ones and the running
 * libvirt domains. */
static int collect_mine(struct vs_proxy *p, struct vs_err *err) {
  vs_strmap_free(p->mine);
  p->mine = vs_strmap_new(free);
  /* (on failure p->mine holds what was collected so far) */
  for (size_t i = 0; i < p->n_vms; i++) {
    vs_strmap_put(p->mine, p->vms[i].uuid, vs_xstrdup(p->vms[i].channel));
    char *byname = vs_xasprintf("name:%s", p->vms[i].name);
    vs_strmap_put(p->mine, byname, vs_xstrdup(p->vms[i].uuid));
    free(byname);
  }
  if (!p->virt) return 0;
  struct vs_domain *doms = NULL;
  size_t n = 0;
  if (vs_virt_domains(p->virt, &doms, &n, err) < 0) return -1;
  for (size_t i = 0; i < n; i++) {
    if (!doms[i].active || vs_strmap_has(p->mine, doms[i].uuid)) continue;
    vs_strmap_put(p->mine, doms[i].uuid, vs_virt_agent_spec(p->virt, doms[i].xml));
    char *byname = vs_xasprintf("name:%s", doms[i].name);
    vs_strmap_put(p->mine, byname, vs_xstrdup(doms[i].uuid));
    free(byname);
  }
  vs_domains_free(doms, n);
  return 0;
}

int vs_proxy_refresh(struct vs_proxy *p, struct vs_err *err) {
  if (!p->fleet) return collect_mine(p, err);
  if (p->lease && vs_fleet_lease_keepalive(p->fleet, p->lease, err) < 0) {
    if (err->code != ENOENT) return -1;
    vs_err_clear(err);
    p->lease = 0; /* expired (we were away): a new one, and the map written again below */
  }
  if (!p->lease && vs_fleet_lease_grant(p->fleet, p->lease_s, &p->lease, err) < 0) return -1;
  struct vs_strmap *before = p->mine;
  p->mine = NULL;
  if (collect_mine(p, err) < 0) {
    vs_strmap_free(before);
    return -1;
  }
  /* VMs that stopped here or left: out of the map, unless another host mapped them since. */
  size_t bpos = 0;
  const char *gone;
  void *unused;
  while (before && vs_strmap_next(before, &bpos, &gone, &unused)) {
    if (strncmp(gone, "name:", 5) == 0 || vs_strmap_has(p->mine, gone)) continue;
    char *host = NULL, *uuid = NULL;
    int64_t rev = 0;
    if (vs_fleet_locate(p->fleet, gone, &host, &uuid, &rev, NULL) == 0 &&
        strcmp(host, p->host) == 0) {
      char *key = vs_xasprintf("vms/%s", uuid);
      bool done = false;
      vs_fleet_delete_if_unchanged(p->fleet, key, rev, &done, NULL);
      free(key);
    }
    free(host);
    free(uuid);
    vs_strmap_remove(p->channels, gone);
  }
  vs_strmap_free(before);
  size_t pos = 0;
  const char *uuid;
  void *spec;
  while (vs_strmap_next(p->mine, &pos, &uuid, &spec)) {
    if (strncmp(uuid, "name:", 5) == 0) continue;
    const char *name = uuid;
    for (size_t i = 0; i < p->n_vms; i++)
      if (strcmp(p->vms[i].uuid, uuid) == 0) name = p->vms[i].name;
    if (p->virt && strcmp(spec, "libvirt") == 0) {
      struct vs_domain *doms = NULL;
      size_t n = 0;
      if (vs_virt_domains(p->virt, &doms, &n, NULL) == 0)
        for (size_t i = 0; i < n; i++)
          if (strcmp(doms[i].uuid, uuid) == 0) {
            if (vs_fleet_map_vm(p->fleet, p->lease, uuid, p->host, doms[i].name, spec, err) < 0) {
              vs_domains_free(doms, n);
              return -1;
            }
            name = NULL;
          }
      vs_domains_free(doms, n);
      if (!name) continue;
    }
    if (vs_fleet_map_vm(p->fleet, p->lease, uuid, p->host, name, spec, err) < 0) return -1;
  }
  return 0;
}

static struct vs_channel *channel_for(struct vs_proxy *p, const char *uuid, const char *spec) {
  struct vs_channel *c = vs_strmap_get(p->channels, uuid);
  if (c) return c;
  c = vs_channel_open_spec(spec, p->virt, uuid, &p->channel_opts);
  if (c) vs_strmap_put(p->channels, uuid, c);
  return c;
}

/* Answers message KEY: the reply written and the message deleted, in one transaction. */
static int answer(struct vs_proxy *p, const char *key, const char *id, enum vs_channel_status s,
                  json_t *ret, const char *why, struct vs_err *err) {
  json_t *r = json_pack("{ss}", "status", vs_channel_status_name(s));
  if (ret) json_object_set(r, "return", ret);
  if (why) json_object_set_new(r, "error", json_string(why));
  char *text = json_dumps(r, JSON_COMPACT);
  json_decref(r);
  char *reply_key = vs_xasprintf("replies/%s", id);
  bool done = false;
  int rc = vs_fleet_move(p->fleet, key, reply_key, text, NULL, 0, &done, err);
  free(reply_key);
  free(text);
  return rc;
}

int vs_proxy_deliver(struct vs_proxy *p, struct vs_err *err) {
  if (!p->fleet) return 0; /* a proxy for its local socket only */
  char *prefix = vs_xasprintf("inbox/%s/", p->host);
  struct vs_kv *kv = NULL;
  size_t n = 0;
  int rc = vs_fleet_list(p->fleet, prefix, &kv, &n, err);
  size_t plen = strlen(prefix);
  free(prefix);
  if (rc < 0) return -1;
  int handled = 0;
  for (size_t i = 0; i < n; i++) { /* sorted: ids sort by time */
    const char *id = kv[i].key + plen;
    json_t *msg = json_loads(kv[i].value, 0, NULL);
    const char *uuid = json_string_value(json_object_get(msg, "vm"));
    json_t *cmd = json_object_get(msg, "command");
    const char *execute = json_string_value(json_object_get(cmd, "execute"));
    const char *spec = uuid ? vs_strmap_get(p->mine, uuid) : NULL;
    struct vs_err e = {0};
    if (!uuid || !execute) {
      answer(p, kv[i].key, id, VS_CHANNEL_MALFORMED, NULL, "the message has no vm or command", &e);
    } else if (!spec) {
      /* Not ours (any more): move it to where the VM runs now, if it runs anywhere. */
      char *host = NULL, *u = NULL;
      int64_t rev = 0;
      if (vs_fleet_locate(p->fleet, uuid, &host, &u, &rev, &e) == 0 && strcmp(host, p->host) != 0) {
        char *to = vs_xasprintf("inbox/%s/%s", host, id), *guard = vs_xasprintf("vms/%s", u);
        bool done = false;
        vs_fleet_move(p->fleet, kv[i].key, to, kv[i].value, guard, rev, &done, &e);
        free(to);
        free(guard);
      } else if (e.code == ENOENT) {
        answer(p, kv[i].key, id, VS_CHANNEL_NOT_CONFIGURED, NULL,
               "the VM is not in the fleet map any more (not_configured)", &e);
      }
      free(host);
      free(u);
    } else {
      struct vs_channel *c = channel_for(p, uuid, spec);
      json_t *ret = NULL;
      enum vs_channel_status s =
          c ? vs_channel_call(c, execute, json_object_get(cmd, "arguments"), &ret, &e)
            : VS_CHANNEL_NOT_CONFIGURED;
      char *why = s == VS_CHANNEL_OK
                      ? NULL
                      : vs_xstrdup(c ? vs_err_msg(&e) : "no usable channel (not_configured)");
      vs_err_clear(&e);
      answer(p, kv[i].key, id, s, ret, why, &e);
      free(why);
      json_decref(ret);
    }
    if (e.msg) vs_log(VS_LOG_WARNING, "proxy %s: message %s: %s", p->host, id, e.msg);
    vs_err_clear(&e);
    json_decref(msg);
    handled++;
  }
  vs_kvs_free(kv, n);
  return handled;
}

/* ------------------------------------------------------------------------ local socket */

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

int vs_proxy_listen(struct vs_proxy *p, const char *path, struct vs_err *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path))
    return vs_err_set(err, ENAMETOOLONG, "%s: socket path too long", path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  /* Only a stale socket of an earlier run is replaced: never a file that is anything else. */
  struct stat st;
  if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
    return vs_err_set(err, EEXIST, "%s exists and is not a socket: not replaced (give a new path)",
                      path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return vs_err_set(err, errno, "socket: %s", strerror(errno));
  unlink(path);             /* a stale socket of an earlier run */
  mode_t old = umask(0177); /* created 0600: only this user may send */
  int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
  umask(old);
  if (rc < 0 || listen(fd, 16) < 0) {
    int e = errno;
    close(fd);
    return vs_err_set(err, e, "%s: cannot listen: %s", path, strerror(e));
  }
  p->listen_fd = fd;
  p->socket_path = vs_xstrdup(path);
  return 0;
}

/* Reads from FD into IN until it holds a newline, MAX bytes, the peer closes, or DEADLINE
 * (monotonic seconds) passes. */
static void read_line(int fd, double deadline, size_t max, struct vs_buf *in) {
  char chunk[65536];
  while (!memchr(in->data ? in->data : "", '\n', in->len) && in->len < max) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int ms = (int)((deadline - vs_now_monotonic()) * 1000);
    if (ms <= 0 || poll(&pf, 1, ms) <= 0) break;
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) break;
    vs_buf_add(in, chunk, (size_t)n);
  }
}

/* One request on a connected client: read a line, deliver, write a line. */
static void serve_client(struct vs_proxy *p, int fd) {
  struct vs_buf in = {0};
  read_line(fd, vs_now_monotonic() + 5, 1u << 20, &in);
  json_t *req = in.len ? json_loadb(in.data, strcspn(in.data, "\n"), 0, NULL) : NULL;
  vs_buf_free(&in);
  const char *vm = json_string_value(json_object_get(req, "vm"));
  json_t *cmd = json_object_get(req, "command");
  const char *execute = json_string_value(json_object_get(cmd, "execute"));
  enum vs_channel_status s = VS_CHANNEL_MALFORMED;
  json_t *ret = NULL;
  struct vs_err e = {0};
  if (!vm || !execute) {
    vs_err_set(&e, EINVAL, "expected {\"vm\": ..., \"command\": {\"execute\": ...}} (malformed)");
  } else {
    char *byname = vs_xasprintf("name:%s", vm);
    const char *uuid = vs_strmap_get(p->mine, byname);
    free(byname);
    if (!uuid) uuid = vm;
    const char *spec = vs_strmap_get(p->mine, uuid);
    struct vs_channel *c = spec ? channel_for(p, uuid, spec) : NULL;
    if (!c) {
      s = VS_CHANNEL_NOT_CONFIGURED;
      vs_err_set(&e, ENOENT, "%s is not a VM of this host (not_configured)", vm);
    } else {
      s = vs_channel_call(c, execute, json_object_get(cmd, "arguments"), &ret, &e);
    }
  }
  json_t *r = json_pack("{ss}", "status", vs_channel_status_name(s));
  if (ret) json_object_set_new(r, "return", ret);
  if (s != VS_CHANNEL_OK) json_object_set_new(r, "error", json_string(vs_err_msg(&e)));
  char *text = json_dumps(r, JSON_COMPACT);
  json_decref(r);
  json_decref(req);
  vs_err_clear(&e);
  if (text) {
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
      vs_log(VS_LOG_DEBUG, "proxy socket: the client left before its reply");
  }
  free(text);
}

int vs_proxy_serve(struct vs_proxy *p, int wait_ms, struct vs_err *err) {
  if (p->listen_fd < 0) return 0;
  struct pollfd pf = {.fd = p->listen_fd, .events = POLLIN};
  int rc = poll(&pf, 1, wait_ms);
  if (rc < 0 && errno != EINTR) return vs_err_set(err, errno, "poll: %s", strerror(errno));
  int served = 0;
  for (;;) {
    int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) break;
    serve_client(p, fd);
    close(fd);
    served++;
  }
  return served;
}

enum vs_channel_status vs_route_send_local(const char *path, const char *vm, json_t *command,
                                           int timeout_ms, json_t **reply, struct vs_err *err) {
  *reply = NULL;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path)) {
    vs_err_set(err, ENAMETOOLONG, "%s: socket path too long (failed)", path);
    return VS_CHANNEL_FAILED;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    vs_err_set(err, errno, "%s: no proxy listens: %s (not_connected)", path, strerror(errno));
    if (fd >= 0) close(fd);
    return VS_CHANNEL_NOT_CONNECTED;
  }
  json_t *req = json_pack("{sssO}", "vm", vm, "command", command);
  char *text = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  size_t len = strlen(text);
  bool sent = write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
  free(text);
  struct vs_buf in = {0};
  if (sent)
    read_line(fd, vs_now_monotonic() + (timeout_ms > 0 ? timeout_ms : 10000) / 1000.0, 4u << 20,
              &in);
  close(fd);
  json_t *r = in.len ? json_loadb(in.data, strcspn(in.data, "\n"), 0, NULL) : NULL;
  vs_buf_free(&in);
  if (!r) {
    vs_err_set(err, ETIMEDOUT, "%s: no reply from the proxy within %d ms (timeout)", path,
               timeout_ms);
    return VS_CHANNEL_TIMEOUT;
  }
  enum vs_channel_status s = status_of(json_string_value(json_object_get(r, "status")));
  if (s == VS_CHANNEL_OK) {
    *reply = json_incref(json_object_get(r, "return"));
  } else {
    const char *why = json_string_value(json_object_get(r, "error"));
    vs_err_set(err, EREMOTEIO, "%s", why ? why : "the proxy's reply is malformed (malformed)");
  }
  json_decref(r);
  return s;
}
