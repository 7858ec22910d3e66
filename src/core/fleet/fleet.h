/* fleet.h: the fleet map in etcd v3, through etcd's JSON gateway (libcurl + jansson).
 *
 * Keys live under a prefix (default "/vmscope/"); every key below is relative to it. A host
 * holds a lease and writes "vms/<uuid>" = {"host","name","channel"} under it, so a dead host's
 * VMs drop out of the map when its lease expires. Several endpoints may be given: a request
 * that cannot reach one goes to the next, so the map keeps working while a cluster member is
 * down. TLS (CA, client certificate) and username/password go through libcurl.
 *
 * Not thread-safe: one struct vs_fleet per thread. */
#ifndef VS_FLEET_H
#define VS_FLEET_H

#include "util.h"

#include <jansson.h>
#include <stdint.h>

struct vs_fleet_opts {
  const char *const *endpoints; /* "http://127.0.0.1:2379", ... */
  size_t n_endpoints;
  const char *prefix;              /* default "/vmscope/" */
  int timeout_ms;                  /* per request (default 5000) */
  const char *cacert, *cert, *key; /* TLS files, may be NULL */
  const char *user, *password;     /* etcd authentication, may be NULL */
};

struct vs_fleet;
struct vs_fleet *vs_fleet_open(const struct vs_fleet_opts *o, struct vs_err *err);
void vs_fleet_close(struct vs_fleet *f);
void vs_fleet_closep(struct vs_fleet **f);
/* The endpoint the last request went to. */
const char *vs_fleet_endpoint(const struct vs_fleet *f);

int vs_fleet_lease_grant(struct vs_fleet *f, int ttl_s, int64_t *lease, struct vs_err *err);
/* Renews LEASE; fails with ENOENT when it expired (its keys are gone: register again). */
int vs_fleet_lease_keepalive(struct vs_fleet *f, int64_t lease, struct vs_err *err);
int vs_fleet_lease_revoke(struct vs_fleet *f, int64_t lease, struct vs_err *err);

/* KEY = VALUE, attached to LEASE (0: none). */
int vs_fleet_put(struct vs_fleet *f, const char *key, const char *value, int64_t lease,
                 struct vs_err *err);
/* KEY's value (caller frees) and its modification revision; ENOENT when there is none. */
int vs_fleet_get(struct vs_fleet *f, const char *key, char **value, int64_t *mod_revision,
                 struct vs_err *err);
struct vs_kv {
  char *key, *value; /* the key without the prefix */
  int64_t mod_revision;
};
/* Every key starting with PREFIX (relative), sorted. */
int vs_fleet_list(struct vs_fleet *f, const char *prefix, struct vs_kv **out, size_t *n,
                  struct vs_err *err);
void vs_kvs_free(struct vs_kv *kv, size_t n);
/* The pairs of an etcd /v3/kv/range reply (the gateway's JSON: base64 keys and values, 64-bit
 * integers as strings) whose key starts with PREFIX, the prefix taken off. Entries that are
 * not well formed (no key, bad base64, another prefix) are left out: the store is not trusted
 * to be ours alone. Never fails; *OUT is freed with vs_kvs_free. */
void vs_fleet_parse_range(const char *prefix, const json_t *reply, struct vs_kv **out, size_t *n);
int vs_fleet_delete(struct vs_fleet *f, const char *key, struct vs_err *err);
/* Puts KEY = VALUE only if GUARD's modification revision is still GUARD_REVISION (one
 * transaction). *DONE says whether it was. */
int vs_fleet_put_if_unchanged(struct vs_fleet *f, const char *guard, int64_t guard_revision,
                              const char *key, const char *value, bool *done, struct vs_err *err);

/* Deletes KEY only if its modification revision is still REVISION. */
int vs_fleet_delete_if_unchanged(struct vs_fleet *f, const char *key, int64_t revision, bool *done,
                                 struct vs_err *err);

/* Moves FROM to TO in one transaction: TO = VALUE and FROM deleted, only if FROM still exists
 * and (when GUARD is not NULL) GUARD's modification revision is still GUARD_REVISION. *DONE
 * says whether it happened. Answering a message (reply written, message gone) and re-routing
 * it are such moves, so a message is never both answered and pending. */
int vs_fleet_move(struct vs_fleet *f, const char *from, const char *to, const char *value,
                  const char *guard, int64_t guard_revision, bool *done, struct vs_err *err);

/* --------------------------------------------------------------------------- the map */

/* Maps VM UUID to HOST under LEASE: "vms/<uuid>" = {"host","name","channel"}. */
int vs_fleet_map_vm(struct vs_fleet *f, int64_t lease, const char *uuid, const char *host,
                    const char *name, const char *channel, struct vs_err *err);
/* Which host runs VM (a UUID, or a name looked up in the map). *HOST and *UUID are the
 * caller's; *REVISION is the map entry's (for vs_fleet_put_if_unchanged). ENOENT: unmapped. */
int vs_fleet_locate(struct vs_fleet *f, const char *vm, char **host, char **uuid, int64_t *revision,
                    struct vs_err *err);

#endif
