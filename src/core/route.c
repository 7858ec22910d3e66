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

enum vs_channel_status vs_route_send(struct vs_fleet *f, const char *vm, json_t *command,
                                     int timeout_ms, json_t **reply, struct vs_err *err) {
  *reply = NULL;
  double deadline = vs_now_monotonic() + (timeout_ms > 0 ? timeout_ms : 10000) / 1000.0;
  _cleanup_(vs_freep) char *id = message_id();
  _cleanup_(vs_freep) char *reply_key = vs_xasprintf("replies/%s", id);
  bool placed = false;
  char *placed_host = NULL, *inbox = NULL, *text = NULL;
  for (int attempt = 0; attempt < 5 && !placed; attempt++) {
    char *host = NULL, *uuid = NULL;
    int64_t rev = 0;
    if (vs_fleet_locate(f, vm, &host, &uuid, &rev, err) < 0) {
      enum vs_channel_status s =
          err->code == ENOENT ? VS_CHANNEL_NOT_CONFIGURED : VS_CHANNEL_FAILED;
      vs_err_prefix(err, "routing to %s (%s)", vm, vs_channel_status_name(s));
      return s;
    }
    json_t *msg =
        json_pack("{sssOsI}", "vm", uuid, "command", command, "sent", (json_int_t)time(NULL));
    free(text);
    text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    free(inbox);
    inbox = vs_xasprintf("inbox/%s/%s", host, id);
    char *guard = vs_xasprintf("vms/%s", uuid);
    int rc = vs_fleet_put_if_unchanged(f, guard, rev, inbox, text, &placed, err);
    free(guard);
    free(uuid);
    if (placed)
      placed_host = host;
    else
      free(host);
    if (rc < 0) {
      free(inbox);
      free(text);
      return VS_CHANNEL_FAILED;
    }
    /* Not placed: the VM moved between locating and sending; locate it again. */
  }
  if (!placed) {
    free(inbox);
    free(text);
    vs_err_set(err, EAGAIN, "%s keeps moving between hosts; not sent (failed)", vm);
    return VS_CHANNEL_FAILED;
  }
  double next_check = vs_now_monotonic() + 0.5;
  int wait_ms = 1;
  for (;;) {
    char *value = NULL;
    if (vs_fleet_get(f, reply_key, &value, NULL, err) == 0) {
      vs_fleet_delete(f, reply_key, NULL);
      free(placed_host);
      free(inbox);
      free(text);
      json_t *r = json_loads(value, 0, NULL);
      free(value);
      const char *status = json_string_value(json_object_get(r, "status"));
      enum vs_channel_status s = status_of(status);
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
    if (err->code != ENOENT) {
      free(placed_host);
      free(inbox);
      free(text);
      return VS_CHANNEL_FAILED;
    }
    vs_err_clear(err);
    if (vs_now_monotonic() > next_check) {
      /* Still unanswered: if the VM now runs elsewhere (its old host may be dead and unable
       * to move the message itself), move it after the VM. */
      next_check = vs_now_monotonic() + 0.5;
      char *host = NULL, *uuid = NULL;
      int64_t rev = 0;
      if (vs_fleet_locate(f, vm, &host, &uuid, &rev, NULL) == 0 && strcmp(host, placed_host) != 0) {
        char *to = vs_xasprintf("inbox/%s/%s", host, id), *guard = vs_xasprintf("vms/%s", uuid);
        bool moved = false;
        if (vs_fleet_move(f, inbox, to, text, guard, rev, &moved, NULL) == 0 && moved) {
          free(inbox);
          inbox = vs_steal(&to);
          free(placed_host);
          placed_host = vs_steal(&host);
        }
        free(to);
        free(guard);
      }
      free(host);
      free(uuid);
    }
    if (vs_now_monotonic() > deadline) {
      free(placed_host);
      free(inbox);
      free(text);
      vs_err_set(err, ETIMEDOUT,
                 "%s: no reply within %d ms (the message stays queued for its host) (timeout)", vm,
                 timeout_ms);
      return VS_CHANNEL_TIMEOUT;
    }
    usleep((useconds_t)wait_ms * 1000);
    if (wait_ms < 50) wait_ms *= 2;
  }
}

/* ---------------------------------------------------------------------------- the proxy */

struct vs_proxy {
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

int vs_proxy_refresh(struct vs_proxy *p, struct vs_err *err) {
  if (p->lease && vs_fleet_lease_keepalive(p->fleet, p->lease, err) < 0) {
    if (err->code != ENOENT) return -1;
    vs_err_clear(err);
    p->lease = 0; /* expired (we were away): a new one, and the map written again below */
  }
  if (!p->lease && vs_fleet_lease_grant(p->fleet, p->lease_s, &p->lease, err) < 0) return -1;
  vs_strmap_free(p->mine);
  p->mine = vs_strmap_new(free);
  for (size_t i = 0; i < p->n_vms; i++) {
    if (vs_fleet_map_vm(p->fleet, p->lease, p->vms[i].uuid, p->host, p->vms[i].name,
                        p->vms[i].channel, err) < 0)
      return -1;
    vs_strmap_put(p->mine, p->vms[i].uuid, vs_xstrdup(p->vms[i].channel));
  }
  if (p->virt) {
    struct vs_domain *doms = NULL;
    size_t n = 0;
    if (vs_virt_domains(p->virt, &doms, &n, err) < 0) return -1;
    for (size_t i = 0; i < n; i++) {
      if (!doms[i].active || vs_strmap_has(p->mine, doms[i].uuid)) continue;
      if (vs_fleet_map_vm(p->fleet, p->lease, doms[i].uuid, p->host, doms[i].name, "libvirt", err) <
          0) {
        vs_domains_free(doms, n);
        return -1;
      }
      vs_strmap_put(p->mine, doms[i].uuid, vs_xstrdup("libvirt"));
    }
    vs_domains_free(doms, n);
  }
  return 0;
}

static struct vs_channel *channel_for(struct vs_proxy *p, const char *uuid, const char *spec) {
  struct vs_channel *c = vs_strmap_get(p->channels, uuid);
  if (c) return c;
  if (strncmp(spec, "unix:", 5) == 0)
    c = vs_channel_open_unix(spec + 5, &p->channel_opts);
  else if (strcmp(spec, "libvirt") == 0 && p->virt)
    c = vs_channel_open_libvirt(p->virt, uuid, &p->channel_opts);
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
