/* vmscope fleet: the fleet map in etcd (ls), and a host's proxy agent (proxy). */
#include "cli.h"

#include "route.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "vmscope fleet"

static void usage(FILE *out) {
  fputs("Usage: vmscope fleet ls --store URL...\n"
        "       vmscope fleet proxy [--store URL...] [--socket PATH] --host NAME [--connect URI]\n"
        "                           [--vm UUID:NAME:CHANNEL]... [--lease S] [--allow COMMAND]...\n"
        "\n"
        "ls lists the fleet map: which host runs which VM, and its channel. proxy runs a\n"
        "host's proxy agent in the foreground: it keeps the host's VMs in the map under a lease\n"
        "(the running libvirt domains with --connect, and each --vm), takes the messages put\n"
        "into the host's inbox, delivers them through each VM's channel (\"unix:PATH\" or\n"
        "\"libvirt\") and answers them; messages for VMs that moved are moved after them.\n"
        "With --socket (and without etcd) it also serves a local unix socket, mode 0600, that\n"
        "\"vmscope send --proxy-socket\" talks to directly.\n"
        "\n"
        "Options:\n"
        "  -S, --store URL         an etcd endpoint (repeatable: the next serves when one\n"
        "                          does not answer)\n"
        "      --prefix P          the keys' prefix (default /vmscope/)\n"
        "  -H, --host NAME         this host's name in the map\n"
        "      --socket PATH       serve this unix socket too (the embedded mode, no etcd)\n"
        "  -c, --connect URI       libvirt URI whose running domains this host maps\n"
        "      --vm UUID:NAME:CHANNEL\n"
        "                          a VM to map besides them (repeatable)\n"
        "      --lease S           the lease's time to live in seconds (default 15)\n"
        "  -a, --allow COMMAND     allow a guest agent command beyond the read-only default\n"
        "  -t, --timeout S         seconds to wait for each agent reply (default 5)\n",
        out);
  fputs(vs_cli_fleet_help, out);
  fputs("  -h, --help              this help\n", out);
}

static volatile sig_atomic_t stopping;
static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static int list_map(const struct vs_fleet_opts *fo) {
  struct vs_err err = {0};
  _cleanup_(vs_fleet_closep) struct vs_fleet *f = vs_fleet_open(fo, &err);
  struct vs_kv *kv = NULL;
  size_t n = 0;
  if (!f || vs_fleet_list(f, "vms/", &kv, &n, &err) < 0) {
    fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_PARTIAL;
  }
  printf("%-36s  %-20s  %-24s  %s\n", "VM", "HOST", "NAME", "CHANNEL");
  for (size_t i = 0; i < n; i++) {
    json_t *j = json_loads(kv[i].value, 0, NULL);
    const char *h = json_string_value(json_object_get(j, "host"));
    const char *nm = json_string_value(json_object_get(j, "name"));
    const char *ch = json_string_value(json_object_get(j, "channel"));
    printf("%-36s  %-20s  %-24s  %s\n", kv[i].key + 4, h ? h : "?", nm ? nm : "?", ch ? ch : "?");
    json_decref(j);
  }
  vs_kvs_free(kv, n);
  return VS_EXIT_OK;
}

static int run_proxy(const struct vs_fleet_opts *fo, const struct vs_channel_opts *co,
                     const char *host, const char *uri, const char *sock, int lease,
                     const struct vs_proxy_vm *vms, size_t n_vms) {
  struct vs_err err = {0};
  _cleanup_(vs_fleet_closep) struct vs_fleet *f = fo->n_endpoints ? vs_fleet_open(fo, &err) : NULL;
  _cleanup_(vs_virt_closep) struct vs_virt *v = NULL;
  bool ok = !fo->n_endpoints || f;
  if (ok && uri) ok = (v = vs_virt_open(uri, false, &err)) != NULL;
  struct vs_proxy *p = ok ? vs_proxy_new(f, host, lease, v, co, &err) : NULL;
  if (p && sock && vs_proxy_listen(p, sock, &err) < 0) {
    vs_proxy_free(p);
    p = NULL;
  }
  if (!p) {
    fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_PARTIAL;
  }
  vs_proxy_set_vms(p, vms, n_vms);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  double next_refresh = 0;
  while (!stopping) {
    if (vs_now_monotonic() >= next_refresh) {
      if (vs_proxy_refresh(p, &err) < 0) {
        fprintf(stderr, PROG ": proxy %s: %s\n", host, vs_err_msg(&err));
        vs_err_clear(&err);
        next_refresh = vs_now_monotonic() + 1;
      } else {
        next_refresh = vs_now_monotonic() + lease / 3.0;
      }
    }
    int handled = vs_proxy_deliver(p, &err);
    if (handled < 0) {
      fprintf(stderr, PROG ": proxy %s: %s\n", host, vs_err_msg(&err));
      vs_err_clear(&err);
      usleep(200000);
    } else if (handled == 0) {
      /* An empty inbox: look again soon (a watch would need no polling), serving the local
       * socket meanwhile. */
      if (vs_proxy_serve(p, f ? 2 : 200, &err) < 0) vs_err_clear(&err);
    }
  }
  vs_proxy_free(p);
  return VS_EXIT_OK;
}

int vs_cmd_fleet(int argc, char **argv) {
  enum { OPT_PREFIX = VS_CLI_OPT_FIRST_FREE, OPT_VM, OPT_LEASE, OPT_SOCKET };
  static const struct option opts[] = {{"store", required_argument, NULL, 'S'},
                                       {"prefix", required_argument, NULL, OPT_PREFIX},
                                       {"host", required_argument, NULL, 'H'},
                                       {"connect", required_argument, NULL, 'c'},
                                       {"vm", required_argument, NULL, OPT_VM},
                                       {"lease", required_argument, NULL, OPT_LEASE},
                                       {"socket", required_argument, NULL, OPT_SOCKET},
                                       {"allow", required_argument, NULL, 'a'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       VS_CLI_FLEET_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? VS_EXIT_USAGE : VS_EXIT_OK;
  }
  const char *action = argv[1];
  const char *stores[VS_CLI_MAX_REPEAT], *allow[VS_CLI_MAX_REPEAT];
  struct vs_proxy_vm vms[VS_CLI_MAX_REPEAT];
  char *vm_specs[VS_CLI_MAX_REPEAT];
  size_t n_vms = 0;
  struct vs_fleet_opts fo = {.endpoints = stores};
  struct vs_channel_opts co = {.allow = allow};
  const char *host = NULL, *uri = NULL, *sock = NULL;
  int lease = 15, c;
  optind = 2;
  while ((c = getopt_long(argc, argv, "S:H:c:a:t:h", opts, NULL)) != -1) {
    if (vs_cli_fleet_option(&fo, c, optarg)) continue;
    switch (c) {
    case 'S':
      if (fo.n_endpoints < VS_CLI_MAX_REPEAT) stores[fo.n_endpoints++] = optarg;
      break;
    case OPT_PREFIX:
      fo.prefix = optarg;
      break;
    case OPT_SOCKET:
      sock = optarg;
      break;
    case 'H':
      host = optarg;
      break;
    case 'c':
      uri = optarg;
      break;
    case OPT_VM: {
      char *spec = vs_xstrdup(optarg), *a = strchr(spec, ':'), *b = a ? strchr(a + 1, ':') : NULL;
      if (!b || n_vms == VS_CLI_MAX_REPEAT) {
        fprintf(stderr, PROG ": --vm takes UUID:NAME:CHANNEL (CHANNEL is unix:PATH or libvirt)\n");
        free(spec);
        return VS_EXIT_USAGE;
      }
      *a = *b = '\0';
      vm_specs[n_vms] = spec;
      vms[n_vms++] = (struct vs_proxy_vm){spec, a + 1, b + 1};
      break;
    }
    case OPT_LEASE:
      lease = atoi(optarg);
      if (lease < 2) {
        fprintf(stderr, PROG ": --lease takes seconds, at least 2\n");
        return VS_EXIT_USAGE;
      }
      break;
    case 'a':
      if (co.n_allow < VS_CLI_MAX_REPEAT) allow[co.n_allow++] = optarg;
      break;
    case 't':
      co.timeout_ms = (int)(atof(optarg) * 1000);
      break;
    case 'h':
      usage(stdout);
      return VS_EXIT_OK;
    default:
      usage(stderr);
      return VS_EXIT_USAGE;
    }
  }
  int status;
  bool is_ls = strcmp(action, "ls") == 0, is_proxy = strcmp(action, "proxy") == 0;
  if ((!is_ls && !is_proxy) || (is_ls && fo.n_endpoints == 0) ||
      (is_proxy && (!host || (fo.n_endpoints == 0 && !sock)))) {
    fprintf(stderr, PROG ": expected \"ls --store URL\" or \"proxy --store URL|--socket PATH "
                         "--host NAME\"\n");
    status = VS_EXIT_USAGE;
  } else if (strcmp(action, "ls") == 0) {
    status = list_map(&fo);
  } else {
    status = run_proxy(&fo, &co, host, uri, sock, lease, vms, n_vms);
  }
  for (size_t i = 0; i < n_vms; i++)
    free(vm_specs[i]);
  return status;
}
