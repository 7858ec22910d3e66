/* vmscope fleet: the fleet map in etcd (ls), a host's proxy agent (proxy), and the fleet
 * store's findings (drift, in cmd_fleet_drift.c). */
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
        "       vmscope fleet drift --store postgresql://... [--vm NAME] [--format json|text]\n"
        "       vmscope fleet migrate --store postgresql://...\n"
        "       vmscope fleet proxy [--store URL...] [--socket PATH] --host NAME [--connect URI]\n"
        "                           [--vm UUID:NAME:CHANNEL]... [--lease S] [--allow COMMAND]...\n"
        "\n"
        "ls lists the fleet map: which host runs which VM, and its channel. proxy runs a\n"
        "host's proxy agent in the foreground: it keeps the host's VMs in the map under a lease\n"
        "(the running libvirt domains with --connect, and each --vm), takes the messages put\n"
        "into the host's inbox, delivers them through each VM's channel (\"unix:PATH\" or\n"
        "\"libvirt\") and answers them; messages for VMs that moved are moved after them.\n"
        "With --socket (and without etcd) it also serves a local unix socket, mode 0600, that\n"
        "\"vmscope send --proxy-socket\" talks to directly. drift prints the findings the\n"
        "hosts ranked against the whole fleet, migrate creates the PostgreSQL fleet store's\n"
        "schema (see vmscope fleet drift --help).\n"
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

enum { OPT_PREFIX = VS_CLI_OPT_FIRST_FREE, OPT_VM, OPT_LEASE, OPT_SOCKET };

/* The command line, parsed. */
struct args {
  const char *action; /* "ls" or "proxy" */
  const char *stores[VS_CLI_MAX_REPEAT], *allow[VS_CLI_MAX_REPEAT];
  struct vs_proxy_vm vms[VS_CLI_MAX_REPEAT];
  char *vm_specs[VS_CLI_MAX_REPEAT]; /* owned: the strings VMS point into */
  size_t n_vms;
  struct vs_fleet_opts fo;
  struct vs_channel_opts co;
  const char *host, *uri, *sock;
  int lease;
};

static void args_clear(struct args *a) {
  for (size_t i = 0; i < a->n_vms; i++)
    free(a->vm_specs[i]);
}

static int list_map(const struct vs_fleet_opts *fo) {
  struct vs_err err = {0};
  _cleanup_(vs_fleet_closep) struct vs_fleet *f = vs_fleet_open(fo, &err);
  struct vs_kv *kv = NULL;
  size_t n = 0;
  if (!f || vs_fleet_list(f, "vms/", &kv, &n, &err) < 0)
    return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
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

/* Runs the proxy A describes until SIGTERM or SIGINT. */
static int run_proxy(const struct args *a) {
  struct vs_err err = {0};
  const char *host = a->host;
  _cleanup_(vs_fleet_closep) struct vs_fleet *f =
      a->fo.n_endpoints ? vs_fleet_open(&a->fo, &err) : NULL;
  _cleanup_(vs_virt_closep) struct vs_virt *v = NULL;
  bool ok = !a->fo.n_endpoints || f;
  if (ok && a->uri) ok = (v = vs_virt_open(a->uri, false, &err)) != NULL;
  struct vs_proxy *p = ok ? vs_proxy_new(f, host, a->lease, v, &a->co, &err) : NULL;
  if (p && a->sock && vs_proxy_listen(p, a->sock, &err) < 0) {
    vs_proxy_free(p);
    p = NULL;
  }
  if (!p) return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  vs_proxy_set_vms(p, a->vms, a->n_vms);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  double next_refresh = 0;
  _cleanup_(vs_freep) char *last_serve_err = NULL;
  while (!stopping) {
    if (vs_now_monotonic() >= next_refresh) {
      if (vs_proxy_refresh(p, &err) < 0) {
        vs_err_prefix(&err, "proxy %s", host);
        vs_cli_fail(&err, NULL, 0, PROG);
        next_refresh = vs_now_monotonic() + 1;
      } else {
        next_refresh = vs_now_monotonic() + a->lease / 3.0;
      }
    }
    int handled = vs_proxy_deliver(p, &err);
    if (handled < 0) {
      vs_err_prefix(&err, "proxy %s", host);
      vs_cli_fail(&err, NULL, 0, PROG);
      usleep(200000);
    } else if (handled == 0) {
      /* An empty inbox: look again soon (a watch would need no polling), serving the local
       * socket meanwhile. */
      if (vs_proxy_serve(p, f ? 2 : 200, &err) < 0) {
        /* Said once per distinct failure: this loop turns every few milliseconds. */
        if (!last_serve_err || strcmp(last_serve_err, vs_err_msg(&err)) != 0) {
          free(last_serve_err);
          last_serve_err = vs_xstrdup(vs_err_msg(&err));
          vs_err_prefix(&err, "proxy %s", host);
          vs_cli_fail(&err, NULL, 0, PROG);
        }
        vs_err_clear(&err);
      }
    }
  }
  vs_proxy_free(p);
  return VS_EXIT_OK;
}

/* --vm UUID:NAME:CHANNEL into A: -1 (printed) when it is not that, or one too many. */
static int add_vm(struct args *a, const char *arg) {
  char *spec = vs_xstrdup(arg), *u = strchr(spec, ':'), *n = u ? strchr(u + 1, ':') : NULL;
  if (!n || a->n_vms == VS_CLI_MAX_REPEAT) {
    fprintf(stderr, PROG ": --vm takes UUID:NAME:CHANNEL (CHANNEL is unix:PATH or libvirt)\n");
    free(spec);
    return -1;
  }
  *u = *n = '\0';
  a->vm_specs[a->n_vms] = spec;
  a->vms[a->n_vms++] = (struct vs_proxy_vm){spec, u + 1, n + 1};
  return 0;
}

/* One option C (with ARG) into A: 1 help printed, -1 usage error (printed), 0 taken. */
static int take_option(struct args *a, int c, const char *arg) {
  switch (c) {
  case 'S':
    if (a->fo.n_endpoints < VS_CLI_MAX_REPEAT) a->stores[a->fo.n_endpoints++] = arg;
    return 0;
  case OPT_PREFIX:
    a->fo.prefix = arg;
    return 0;
  case OPT_SOCKET:
    a->sock = arg;
    return 0;
  case 'H':
    a->host = arg;
    return 0;
  case 'c':
    a->uri = arg;
    return 0;
  case OPT_VM:
    return add_vm(a, arg);
  case OPT_LEASE:
    a->lease = atoi(arg);
    if (a->lease >= 2) return 0;
    fprintf(stderr, PROG ": --lease takes seconds, at least 2\n");
    return -1;
  case 'a':
    if (a->co.n_allow < VS_CLI_MAX_REPEAT) a->allow[a->co.n_allow++] = arg;
    return 0;
  case 't':
    a->co.timeout_ms = (int)(atof(arg) * 1000);
    return 0;
  case 'h':
    usage(stdout);
    return 1;
  default:
    usage(stderr);
    return -1;
  }
}

/* The options after the action into A: 1 help printed, -1 usage error (printed), 0 go on. */
static int parse(int argc, char **argv, struct args *a) {
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
  a->action = argv[1];
  a->fo.endpoints = a->stores;
  a->co.allow = a->allow;
  a->lease = 15;
  int c;
  optind = 2;
  while ((c = getopt_long(argc, argv, "S:H:c:a:t:h", opts, NULL)) != -1) {
    if (vs_cli_fleet_option(&a->fo, c, optarg)) continue;
    int rc = take_option(a, c, optarg);
    if (rc != 0) return rc;
  }
  return 0;
}

int vs_cmd_fleet(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? VS_EXIT_USAGE : VS_EXIT_OK;
  }
  if (strcmp(argv[1], "drift") == 0 || strcmp(argv[1], "migrate") == 0)
    return vs_cmd_fleet_drift(argc, argv);
  _cleanup_(args_clear) struct args a = {0};
  int rc = parse(argc, argv, &a);
  if (rc != 0) return rc > 0 ? VS_EXIT_OK : VS_EXIT_USAGE;
  bool is_ls = strcmp(a.action, "ls") == 0, is_proxy = strcmp(a.action, "proxy") == 0;
  if ((!is_ls && !is_proxy) || (is_ls && a.fo.n_endpoints == 0) ||
      (is_proxy && (!a.host || (a.fo.n_endpoints == 0 && !a.sock)))) {
    fprintf(stderr, PROG ": expected \"ls --store URL\" or \"proxy --store URL|--socket PATH "
                         "--host NAME\"\n");
    return VS_EXIT_USAGE;
  }
  if (is_ls) return list_map(&a.fo);
  return run_proxy(&a);
}
