/* channel SOCKET [N]: guest-ping round trips through the unix transport to a guest agent at
 * SOCKET, one channel, sequentially: p50, p99 and messages per second.
 * channel --routed STORE VM [N]: the same routed through the fleet map in etcd at STORE (a
 * proxy for VM's host must be running). */
#include "channel.h"
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int routed(const char *store, const char *vm, size_t n) {
  const char *eps[] = {store};
  struct vs_fleet_opts fo = {.endpoints = eps, .n_endpoints = 1};
  struct vs_err err = {0};
  struct vs_fleet *f = vs_fleet_open(&fo, &err);
  json_t *cmd = json_pack("{ss}", "execute", "guest-ping"), *r = NULL;
  double *t = calloc(n, sizeof(double));
  if (!f || !t) return 1;
  double start = vs_now_monotonic();
  for (size_t i = 0; i < n; i++) {
    double t0 = vs_now_monotonic();
    if (vs_route_send(f, vm, cmd, 10000, &r, &err) != VS_CHANNEL_OK) {
      fprintf(stderr, "channel: routed %zu: %s\n", i, vs_err_msg(&err));
      return 1;
    }
    json_decref(r);
    t[i] = vs_now_monotonic() - t0;
  }
  double total = vs_now_monotonic() - start;
  qsort(t, n, sizeof(double), cmp_double);
  printf("routed through etcd: %zu guest-ping round trips: p50 %.3f ms, p99 %.3f ms, %.0f "
         "messages/s\n",
         n, t[n / 2] * 1e3, t[(size_t)(n * 0.99)] * 1e3, (double)n / total);
  free(t);
  json_decref(cmd);
  vs_fleet_close(f);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "--routed") == 0)
    return routed(argv[2], argv[3], argc > 4 ? strtoul(argv[4], NULL, 10) : 500);
  if (argc < 2) {
    fprintf(stderr, "usage: channel SOCKET [N]\n");
    return 2;
  }
  size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 5000;
  if (n < 1) n = 1;
  struct vs_channel *c = vs_channel_open_unix(argv[1], NULL);
  struct vs_err err = {0};
  json_t *r = NULL;
  if (vs_channel_call(c, "guest-ping", NULL, &r, &err) != VS_CHANNEL_OK) { /* connect + sync */
    fprintf(stderr, "channel: %s\n", vs_err_msg(&err));
    return 1;
  }
  json_decref(r);
  double *t = calloc(n, sizeof(double));
  if (!t) return 1;
  double start = vs_now_monotonic();
  for (size_t i = 0; i < n; i++) {
    double t0 = vs_now_monotonic();
    if (vs_channel_call(c, "guest-ping", NULL, &r, &err) != VS_CHANNEL_OK) {
      fprintf(stderr, "channel: ping %zu: %s\n", i, vs_err_msg(&err));
      return 1;
    }
    json_decref(r);
    t[i] = vs_now_monotonic() - t0;
  }
  double total = vs_now_monotonic() - start;
  qsort(t, n, sizeof(double), cmp_double);
  printf("unix transport: %zu guest-ping round trips: p50 %.3f ms, p99 %.3f ms, %.0f messages/s\n",
         n, t[n / 2] * 1e3, t[(size_t)(n * 0.99)] * 1e3, (double)n / total);
  free(t);
  vs_channel_close(c);
  return 0;
}
