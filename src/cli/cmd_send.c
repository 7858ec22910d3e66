/* vmscope send: one command to a guest's agent, the reply on standard output. */
#include "cli.h"

#include "channel.h"
#include "route.h"
#include "virt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "vmscope send"

static void usage(FILE *out) {
  fputs("Usage: vmscope send [OPTIONS] --agent-socket PATH JSON\n"
        "       vmscope send [OPTIONS] [--connect URI] VM JSON\n"
        "       vmscope send [OPTIONS] --store URL... VM JSON\n"
        "       vmscope send [OPTIONS] --proxy-socket PATH VM JSON\n"
        "\n"
        "Send one command to a guest's QEMU guest agent and print its reply (the agent's\n"
        "\"return\" value, as JSON). JSON is the command: {\"execute\": \"guest-ping\"}, with\n"
        "\"arguments\" when it takes some. The agent is reached on a unix socket that speaks its\n"
        "protocol (QEMU's chardev for the agent, or qemu-ga -m unix-listen), or through libvirt\n"
        "(virDomainQemuAgentCommand) for domain VM, by name or UUID, or routed: put into the\n"
        "inbox of the host the etcd fleet map says runs VM, and answered by that host's proxy\n"
        "(vmscope fleet proxy).\n"
        "\n"
        "Options:\n"
        "  -s, --agent-socket PATH the agent's unix socket\n"
        "  -c, --connect URI       libvirt URI for VM (default: libvirt's default)\n"
        "  -S, --store URL         route through etcd at URL (repeatable)\n"
        "  -P, --proxy-socket PATH through a local proxy's socket (vmscope fleet proxy --socket)\n"
        "  -t, --timeout S         seconds to wait for each reply (default 5)\n"
        "  -a, --allow COMMAND     allow a command beyond the read-only default list\n"
        "                          (guest-exec, guest-file-open, ...); repeatable\n"
        "      --compact           JSON on one line\n"
        "  -h, --help              this help\n"
        "(with --store: --cacert FILE, --cert FILE, --key FILE, --user NAME for TLS and\n"
        "authentication; the password is read from VMSCOPE_ETCD_PASSWORD)\n"
        "\n"
        "Exit status: 0 the agent answered; 1 it did not or answered an error, and the message\n"
        "names the kind (not_configured, not_connected, timeout, agent_error, malformed,\n"
        "refused, failed); 2 usage error.\n",
        out);
}

int vs_cmd_send(int argc, char **argv) {
  enum { OPT_COMPACT = VS_CLI_OPT_FIRST_FREE };
  static const struct option opts[] = {{"agent-socket", required_argument, NULL, 's'},
                                       {"connect", required_argument, NULL, 'c'},
                                       {"store", required_argument, NULL, 'S'},
                                       {"proxy-socket", required_argument, NULL, 'P'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"allow", required_argument, NULL, 'a'},
                                       {"compact", no_argument, NULL, OPT_COMPACT},
                                       {"help", no_argument, NULL, 'h'},
                                       VS_CLI_FLEET_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  struct vs_fleet_opts fo = {0};
  const char *socket_path = NULL, *uri = NULL, *proxy_socket = NULL;
  const char *stores[VS_CLI_MAX_REPEAT];
  size_t n_stores = 0;
  const char *allow[VS_CLI_MAX_REPEAT];
  struct vs_channel_opts co = {.allow = allow};
  bool compact = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "s:c:S:P:t:a:h", opts, NULL)) != -1) {
    if (vs_cli_fleet_option(&fo, c, optarg)) continue;
    switch (c) {
    case 'S':
      if (n_stores < VS_CLI_MAX_REPEAT) stores[n_stores++] = optarg;
      break;
    case 'P':
      proxy_socket = optarg;
      break;
    case 's':
      socket_path = optarg;
      break;
    case 'c':
      uri = optarg;
      break;
    case 't': {
      char *end;
      errno = 0;
      double t = strtod(optarg, &end);
      if (errno || end == optarg || *end || t <= 0 || t > 86400) {
        fprintf(stderr, PROG ": --timeout takes seconds (0 < S <= 86400), not \"%s\"\n", optarg);
        return VS_EXIT_USAGE;
      }
      co.timeout_ms = (int)(t * 1000);
      break;
    }
    case 'a':
      if (co.n_allow == VS_CLI_MAX_REPEAT) {
        fprintf(stderr, PROG ": at most %d --allow options\n", VS_CLI_MAX_REPEAT);
        return VS_EXIT_USAGE;
      }
      allow[co.n_allow++] = optarg;
      break;
    case OPT_COMPACT:
      compact = true;
      break;
    case 'h':
      usage(stdout);
      return VS_EXIT_OK;
    default:
      usage(stderr);
      return VS_EXIT_USAGE;
    }
  }
  int want = socket_path ? 1 : 2;
  if (argc - optind != want) {
    fprintf(stderr, PROG ": expected %s\n", socket_path ? "JSON" : "VM and JSON");
    usage(stderr);
    return VS_EXIT_USAGE;
  }
  const char *vm = socket_path ? NULL : argv[optind];
  const char *text = argv[argc - 1];
  json_error_t je;
  json_t *cmd = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  const char *execute = cmd ? json_string_value(json_object_get(cmd, "execute")) : NULL;
  json_t *arguments = cmd ? json_object_get(cmd, "arguments") : NULL;
  if (!execute || (arguments && !json_is_object(arguments))) {
    fprintf(stderr,
            PROG
            ": the command must be a JSON object {\"execute\": NAME[, \"arguments\": {...}]}%s%s\n",
            cmd ? "" : ": ", cmd ? "" : je.text);
    json_decref(cmd);
    return VS_EXIT_USAGE;
  }
  struct vs_err err = {0};
  if (n_stores || proxy_socket) { /* routed: through the fleet map, or a local proxy */
    fo.endpoints = stores;
    fo.n_endpoints = n_stores;
    _cleanup_(vs_fleet_closep) struct vs_fleet *f = n_stores ? vs_fleet_open(&fo, &err) : NULL;
    json_t *reply = NULL;
    int timeout = co.timeout_ms ? co.timeout_ms : 10000;
    enum vs_channel_status s =
        proxy_socket ? vs_route_send_local(proxy_socket, vm, cmd, timeout, &reply, &err)
        : f          ? vs_route_send(f, vm, cmd, timeout, &reply, &err)
                     : VS_CHANNEL_FAILED;
    json_decref(cmd);
    if (s != VS_CHANNEL_OK) {
      fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
      vs_err_clear(&err);
      return VS_EXIT_PARTIAL;
    }
    vs_cli_print_json(reply, compact, PROG);
    json_decref(reply);
    return fflush(stdout) == 0 ? VS_EXIT_OK : VS_EXIT_PARTIAL;
  }
  _cleanup_(vs_virt_closep) struct vs_virt *v = NULL;
  if (!socket_path && !(v = vs_virt_open(uri, false, &err))) {
    fprintf(stderr, PROG ": %s (failed)\n", vs_err_msg(&err));
    vs_err_clear(&err);
    json_decref(cmd);
    return VS_EXIT_PARTIAL;
  }
  _cleanup_(vs_channel_closep) struct vs_channel *ch =
      socket_path ? vs_channel_open_unix(socket_path, &co) : vs_channel_open_libvirt(v, vm, &co);
  json_t *reply = NULL;
  enum vs_channel_status s = vs_channel_call(ch, execute, arguments, &reply, &err);
  json_decref(cmd);
  if (s != VS_CHANNEL_OK) {
    fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_PARTIAL;
  }
  vs_cli_print_json(reply, compact, PROG);
  json_decref(reply);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, PROG ": writing standard output failed\n");
    return VS_EXIT_PARTIAL;
  }
  return VS_EXIT_OK;
}
