/* The fleet map against a real etcd (Debian's etcd-server, started here on loopback). */
#include "fixture.h"
#include "fleet.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t start_etcd(const char *dir, int client_port, int peer_port) {
  char data[512], client[64], peer[64], cluster[128], log[512];
  snprintf(data, sizeof(data), "%s/etcd-%d", dir, client_port);
  snprintf(client, sizeof(client), "http://127.0.0.1:%d", client_port);
  snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", peer_port);
  snprintf(cluster, sizeof(cluster), "n1=%s", peer);
  snprintf(log, sizeof(log), "%s/etcd-%d.log", dir, client_port);
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(log, "w", stdout) || !freopen(log, "a", stderr)) _exit(126);
    execlp("etcd", "etcd", "--name", "n1", "--data-dir", data, "--listen-client-urls", client,
           "--advertise-client-urls", client, "--listen-peer-urls", peer,
           "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster, (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* Waits up to 10 s for etcd to grant a 2 s lease; returns whether it did. */
static bool wait_for_lease(struct vs_fleet *f, int64_t *lease) {
  struct vs_err err = {0};
  bool up = false;
  for (int i = 0; i < 100 && !up; i++) {
    up = vs_fleet_lease_grant(f, 2, lease, &err) == 0;
    vs_err_clear(&err);
    if (!up) usleep(100000);
  }
  return up;
}

static void test_keys(struct vs_fleet *f) {
  struct vs_err err = {0};
  ok(vs_fleet_put(f, "hosts/h1", "{\"up\":true}", 0, &err) == 0, "a key is put");
  char *v = NULL;
  int64_t rev = 0;
  ok(vs_fleet_get(f, "hosts/h1", &v, &rev, &err) == 0 && v && strcmp(v, "{\"up\":true}") == 0 &&
         rev > 0,
     "and read back with its revision");
  free(v);
  ok(vs_fleet_get(f, "hosts/none", &v, &rev, &err) < 0 && err.code == ENOENT,
     "a missing key is ENOENT");
  vs_err_clear(&err);
}

static void test_vm_map(struct vs_fleet *f, int64_t lease) {
  struct vs_err err = {0};
  ok(vs_fleet_map_vm(f, lease, "uuid-1", "h1", "web-01", "libvirt", &err) == 0 &&
         vs_fleet_map_vm(f, lease, "uuid-2", "h1", "web-02", "libvirt", &err) == 0,
     "two VMs are mapped to h1 under its lease");
  struct vs_kv *kv = NULL;
  size_t n = 0;
  ok(vs_fleet_list(f, "vms/", &kv, &n, &err) == 0 && n == 2 && strcmp(kv[0].key, "vms/uuid-1") == 0,
     "the map lists them, keys relative to the prefix");
  vs_kvs_free(kv, n);
  char *host = NULL, *uuid = NULL;
  int64_t mrev = 0;
  ok(vs_fleet_locate(f, "web-02", &host, &uuid, &mrev, &err) == 0 && strcmp(host, "h1") == 0 &&
         strcmp(uuid, "uuid-2") == 0,
     "a VM is located by name");
  bool done = false;
  ok(vs_fleet_put_if_unchanged(f, "vms/uuid-2", mrev, "inbox/h1/m1", "{}", &done, &err) == 0 &&
         done,
     "a message is put for h1 while web-02 is still mapped there (one transaction)");
  vs_fleet_map_vm(f, lease, "uuid-2", "h2", "web-02", "libvirt", &err); /* it migrated */
  ok(vs_fleet_put_if_unchanged(f, "vms/uuid-2", mrev, "inbox/h1/m2", "{}", &done, &err) == 0 &&
         !done,
     "after it moved, the same transaction puts nothing");
  free(host);
  free(uuid);
  char *v = NULL;
  ok(vs_fleet_delete(f, "inbox/h1/m1", &err) == 0 &&
         vs_fleet_get(f, "inbox/h1/m1", &v, NULL, &err) < 0,
     "a key is deleted");
  vs_err_clear(&err);
}

static void test_lease_expiry(struct vs_fleet *f, int64_t lease) {
  struct vs_err err = {0};
  ok(vs_fleet_lease_keepalive(f, lease, &err) == 0, "the lease is kept alive");
  sleep(4); /* past the 2 s TTL without keep-alive */
  struct vs_kv *kv = NULL;
  size_t n = 0;
  ok(vs_fleet_list(f, "vms/", &kv, &n, &err) == 0 && n == 0,
     "when the host stops renewing, its VMs drop out of the map");
  vs_kvs_free(kv, n);
  ok(vs_fleet_lease_keepalive(f, lease, &err) < 0 && err.code == ENOENT,
     "and renewing the expired lease says so");
  vs_err_clear(&err);
}

/* An endpoint that does not answer: the next one serves. */
static void test_endpoint_failover(const char *ep, const char *dead) {
  struct vs_err err = {0};
  const char *two[] = {dead, ep};
  struct vs_fleet_opts o2 = {.endpoints = two, .n_endpoints = 2, .timeout_ms = 1000};
  struct vs_fleet *f = vs_fleet_open(&o2, &err);
  ok(vs_fleet_put(f, "hosts/h2", "x", 0, &err) == 0 && strcmp(vs_fleet_endpoint(f), ep) == 0,
     "with the first endpoint down, the second serves (%s)", err.msg ? err.msg : "ok");
  vs_fleet_close(f);
  const char *none[] = {dead};
  struct vs_fleet_opts o3 = {.endpoints = none, .n_endpoints = 1, .timeout_ms = 500};
  f = vs_fleet_open(&o3, &err);
  ok(vs_fleet_put(f, "hosts/h3", "x", 0, &err) < 0 && err.msg && strstr(err.msg, dead),
     "with none answering, the error names the endpoints tried");
  vs_err_clear(&err);
  vs_fleet_close(f);
}

/* A member in the middle of an election: every request is answered as etcd answers while it
 * has no leader (gRPC's Unavailable, HTTP 503 through its JSON gateway). It counts them. */
struct electing {
  int listener;
  int requests;
};

static void *electing_serve(void *arg) {
  struct electing *e = arg;
  static const char body[] =
      "{\"error\":\"etcdserver: leader changed\",\"code\":14,\"message\":\"etcdserver: "
      "leader changed\"}";
  for (;;) {
    int c = accept(e->listener, NULL, NULL);
    if (c < 0) return NULL; /* the listener was shut down */
    char buf[4096];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(buf) - 1 && (n = read(c, buf + got, sizeof(buf) - 1 - got)) > 0) {
      got += (size_t)n;
      buf[got] = '\0';
      char *end = strstr(buf, "\r\n\r\n"), *len = strstr(buf, "Content-Length: ");
      if (end && (!len || got >= (size_t)(end + 4 - buf) + (size_t)atoi(len + 16))) break;
    }
    __atomic_add_fetch(&e->requests, 1, __ATOMIC_RELAXED);
    char reply[512];
    int m = snprintf(reply, sizeof(reply),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(body), body);
    if (write(c, reply, (size_t)m) != m) diag("the electing member's reply was cut short");
    close(c);
  }
}

/* A member that answers it cannot serve now (HTTP 503, as in an election after a member
 * died) is passed over for the next, which serves; with only such members, the request is
 * asked again until its timeout, and the error says what they answered. */
static void test_election(const char *ep) {
  struct electing e = {.listener = socket(AF_INET, SOCK_STREAM, 0)};
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  pthread_t t;
  if (e.listener < 0 || bind(e.listener, (struct sockaddr *)&a, sizeof(a)) < 0 ||
      listen(e.listener, 8) < 0 || getsockname(e.listener, (struct sockaddr *)&a, &len) < 0 ||
      pthread_create(&t, NULL, electing_serve, &e) != 0) {
    skip(2, "no loopback listener for the electing member");
    return;
  }
  char electing[64];
  snprintf(electing, sizeof(electing), "http://127.0.0.1:%d", ntohs(a.sin_port));
  struct vs_err err = {0};
  const char *two[] = {electing, ep};
  struct vs_fleet_opts o2 = {.endpoints = two, .n_endpoints = 2, .timeout_ms = 1000};
  struct vs_fleet *f = vs_fleet_open(&o2, &err);
  bool put = vs_fleet_put(f, "hosts/h4", "x", 0, &err) == 0;
  ok(put && strcmp(vs_fleet_endpoint(f), ep) == 0 &&
         __atomic_load_n(&e.requests, __ATOMIC_RELAXED) == 1,
     "a member answering \"leader changed\" (HTTP 503) is passed over, and the next serves (%s)",
     err.msg ? err.msg : "ok");
  vs_err_clear(&err);
  vs_fleet_close(f);
  const char *one[] = {electing};
  struct vs_fleet_opts o1 = {.endpoints = one, .n_endpoints = 1, .timeout_ms = 500};
  f = vs_fleet_open(&o1, &err);
  int before = __atomic_load_n(&e.requests, __ATOMIC_RELAXED);
  bool refused = vs_fleet_put(f, "hosts/h5", "x", 0, &err) < 0;
  int asked = __atomic_load_n(&e.requests, __ATOMIC_RELAXED) - before;
  ok(refused && err.code == EHOSTUNREACH && err.msg &&
         strstr(err.msg, "HTTP 503: etcdserver: leader changed") && asked > 1,
     "with every member electing, it is asked again until the timeout, and the error says what "
     "they answered (%d requests: %s)",
     asked, err.msg ? err.msg : "none");
  vs_err_clear(&err);
  vs_fleet_close(f);
  shutdown(e.listener, SHUT_RDWR);
  close(e.listener);
  pthread_join(t, NULL);
}

int main(void) {
  plan_no_plan();
  char *dir = fx_tmpdir();
  int port = 24000 + (int)(getpid() % 1000) * 2;
  pid_t etcd = start_etcd(dir, port, port + 1);
  char ep[64], dead[64];
  snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
  snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", port + 1999);
  const char *endpoints[] = {ep};
  struct vs_fleet_opts o = {.endpoints = endpoints, .n_endpoints = 1, .timeout_ms = 2000};
  struct vs_err err = {0};
  struct vs_fleet *f = vs_fleet_open(&o, &err);
  int64_t lease = 0;
  bool up = wait_for_lease(f, &lease);
  if (!up) {
    skip(1, "etcd did not start (is etcd-server installed?)");
    kill(etcd, SIGTERM);
    waitpid(etcd, NULL, 0);
    vs_fleet_close(f);
    return done_testing();
  }
  ok(up, "a real etcd grants a lease");
  test_keys(f);
  test_vm_map(f, lease);
  test_lease_expiry(f, lease);
  vs_fleet_close(f);

  test_endpoint_failover(ep, dead);
  test_election(ep);

  vs_err_clear(&err);
  kill(etcd, SIGTERM);
  waitpid(etcd, NULL, 0);
  fx_rmtree(dir);
  free(dir);
  return done_testing();
}
