/* route.h: a message for a VM reaches it wherever it runs (US9191454).
 *
 * A sender locates the VM in the fleet map and puts the message into that host's inbox,
 * "inbox/<host>/<id>" = {"vm", "command", "sent"}, in one transaction that checks the VM is
 * still mapped to that host. The host's proxy takes its inbox in id order (ids sort by time),
 * delivers each message through the VM's channel, and answers it: "replies/<id>" written and
 * the message deleted in one transaction. So a message is pending or answered, never both: a
 * proxy that restarts delivers what is still pending and never answers a message twice (a
 * proxy that dies between delivering and answering delivers that message again: at least
 * once, for commands that are not answered yet). A pending message whose VM now runs
 * elsewhere is moved to the new host's inbox. The sender waits for its reply, then deletes it.
 *
 * A VM's channel, from the map: "unix:PATH" (a socket that speaks the agent's protocol) or
 * "libvirt" (through the proxy's libvirt connection). */
#ifndef VS_ROUTE_H
#define VS_ROUTE_H

#include "channel.h"
#include "fleet.h"
#include "virt.h"

/* Sends COMMAND ({"execute": ...}) to VM (UUID or name) and waits up to TIMEOUT_MS for the
 * reply: on success *REPLY is the agent's return value. A failure carries the channel's kind
 * of error (from the proxy) or VS_CHANNEL_NOT_CONFIGURED when the VM is not in the map,
 * VS_CHANNEL_TIMEOUT when no proxy answered in time. Once the message is placed, a store that
 * stops answering (a member down, no quorum) is asked again until the deadline, so a sender
 * rides out an outage its timeout covers. */
enum vs_channel_status vs_route_send(struct vs_fleet *f, const char *vm, json_t *command,
                                     int timeout_ms, json_t **reply, struct vs_err *err);

struct vs_proxy_vm {
  const char *uuid, *name, *channel;
};

struct vs_proxy;
/* A proxy for HOST: keeps its VMs in the map under a lease of LEASE_S seconds. VIRT (may be
 * NULL) is used for "libvirt" channels and to list the host's running domains. */
struct vs_proxy *vs_proxy_new(struct vs_fleet *f, const char *host, int lease_s,
                              struct vs_virt *virt, const struct vs_channel_opts *channel,
                              struct vs_err *err);
void vs_proxy_free(struct vs_proxy *p);
/* Maps these VMs (besides the running libvirt domains, which are mapped on every refresh). */
void vs_proxy_set_vms(struct vs_proxy *p, const struct vs_proxy_vm *vms, size_t n);
/* Renews the lease and writes the map (again: a lease that expired is replaced). */
int vs_proxy_refresh(struct vs_proxy *p, struct vs_err *err);
/* Delivers what is in the inbox; returns how many messages were answered or moved, or -1. */
int vs_proxy_deliver(struct vs_proxy *p, struct vs_err *err);

/* ------------------------------------------------- without etcd: the proxy's own socket */

/* With no fleet store the proxy serves a local unix socket (mode 0600): a client sends one
 * line {"vm": UUID-or-name, "command": {...}} and reads one line back, {"status": kind,
 * "return": ..., "error": ...}. F may be NULL for a proxy that only serves its socket. */
int vs_proxy_listen(struct vs_proxy *p, const char *path, struct vs_err *err);
/* Serves the socket's clients for up to WAIT_MS (one request per connection); returns how many
 * were answered, or -1. */
int vs_proxy_serve(struct vs_proxy *p, int wait_ms, struct vs_err *err);
/* The client side: COMMAND to VM through the proxy socket at PATH. */
enum vs_channel_status vs_route_send_local(const char *path, const char *vm, json_t *command,
                                           int timeout_ms, json_t **reply, struct vs_err *err);

#endif
