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
        "(vmscope fleet proxy). --agent-socket, --connect, --store and --proxy-socket are\n"
        "ways to reach the agent: give one of them.\n"
        "\n"
        "Options:\n"
        "  -s, --agent-socket PATH the agent's unix socket\n"
        "  -c, --connect URI       libvirt URI for VM (default: libvirt's default)\n"
        "  -S, --store URL         route through etcd at URL (repeatable)\n"
        "  -P, --proxy-socket PATH through a local proxy's socket (vmscope fleet proxy --socket)\n"
        "  -t, --timeout S         seconds to wait for each reply (default 5; routed 10)\n"
        "  -a, --allow COMMAND     allow a command beyond the read-only default list\n"
        "                          (guest-exec, guest-file-open, ...); repeatable\n"
        "  -W, --wait[=S]          with guest-exec: wait up to S seconds (default 60) for the\n"
        "                          command to exit (polling guest-exec-status; output is\n"
        "                          captured unless \"capture-output\" is false) and print\n"
        "                          {\"pid\", \"exit_code\", \"signal\", \"output\", \"stderr\", "
        "...}\n"
        "                          with its output decoded\n"
        "      --compact           JSON on one line\n"
        "  -h, --help              this help\n"
        "(with --store: --cacert FILE, --cert FILE, --key FILE, --user NAME for TLS and\n"
        "authentication; the password is read from VMSCOPE_ETCD_PASSWORD)\n"
        "Options that take a value may be given once, except --store and --allow, which add up.\n"
        "\n"
        "Exit status: 0 the agent answered (with --wait: and the command exited 0); 1 it did\n"
        "not or answered an error, and the message names the kind (not_configured,\n"
        "not_connected, timeout, agent_error, malformed, refused, failed); 2 usage error;\n"
        "3 with --wait, the command ran and exited non-zero or was killed (the reply says how).\n",
        out);
}

/* How the agent is reached, for the calls after the first (--wait's polls). */
struct route {
  struct vs_channel *ch;  /* this host: a socket or libvirt */
  struct vs_fleet *fleet; /* or routed through etcd */
  const char *proxy_socket, *vm;
  int timeout_ms;
};

static enum vs_channel_status call_route(void *p, const char *command, json_t *arguments,
                                         json_t **reply, struct vs_err *err) {
  struct route *r = p;
  if (r->ch) return vs_channel_call(r->ch, command, arguments, reply, err);
  json_t *cmd = json_pack("{ss}", "execute", command);
  if (arguments) json_object_set(cmd, "arguments", arguments);
  enum vs_channel_status s =
      r->proxy_socket ? vs_route_send_local(r->proxy_socket, r->vm, cmd, r->timeout_ms, reply, err)
                      : vs_route_send(r->fleet, r->vm, cmd, r->timeout_ms, reply, err);
  json_decref(cmd);
  return s;
}

/* The reply to guest-exec, waited for: the started pid, then what the process did. Returns the
 * exit status. */
static int wait_exec(struct route *rt, const char *target, json_t *arguments, json_t *started,
                     int wait_ms, bool compact) {
  json_t *pid = json_object_get(started, "pid");
  if (!json_is_integer(pid)) {
    fprintf(stderr, PROG ": guest-exec returned no pid (malformed)\n");
    return VS_EXIT_PARTIAL;
  }
  const char *path = json_string_value(json_object_get(arguments, "path"));
  struct vs_exec_result x = {0};
  struct vs_err err = {0};
  enum vs_channel_status s = vs_exec_wait(call_route, rt, target, path ? path : "guest-exec",
                                          json_integer_value(pid), wait_ms, &x, &err);
  if (s != VS_CHANNEL_OK) {
    fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_PARTIAL;
  }
  json_t *report = vs_exec_result_to_json(&x);
  json_object_set(report, "pid", pid);
  int status = x.exit_code == 0 && x.signal == 0 ? VS_EXIT_OK : 3;
  vs_exec_result_clear(&x);
  if (vs_cli_print_json(report, compact, PROG) < 0) status = VS_EXIT_PARTIAL;
  json_decref(report);
  return status;
}

/* OPT's ARG, seconds (0 < S <= 86400), in milliseconds; -1 (printed) when it is not. */
static int parse_ms(const char *arg, const char *opt) {
  char *end;
  errno = 0;
  double t = strtod(arg, &end);
  if (errno || end == arg || *end || t <= 0 || t > 86400) {
    fprintf(stderr, PROG ": %s takes seconds (0 < S <= 86400), not \"%s\"\n", opt, arg);
    return -1;
  }
  return t * 1000 < 1 ? 1 : (int)(t * 1000);
}

int vs_cmd_send(int argc, char **argv) {
  enum { OPT_COMPACT = VS_CLI_OPT_FIRST_FREE };
  static const struct option opts[] = {{"agent-socket", required_argument, NULL, 's'},
                                       {"connect", required_argument, NULL, 'c'},
                                       {"store", required_argument, NULL, 'S'},
                                       {"proxy-socket", required_argument, NULL, 'P'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"allow", required_argument, NULL, 'a'},
                                       {"wait", optional_argument, NULL, 'W'},
                                       {"compact", no_argument, NULL, OPT_COMPACT},
                                       {"help", no_argument, NULL, 'h'},
                                       VS_CLI_FLEET_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  struct vs_fleet_opts fo = {0};
  const char *socket_path = NULL, *uri = NULL, *proxy_socket = NULL, *timeout = NULL, *wait = NULL,
             *tls = NULL;
  const char *stores[VS_CLI_MAX_REPEAT];
  size_t n_stores = 0;
  const char *allow[VS_CLI_MAX_REPEAT];
  struct vs_channel_opts co = {.allow = allow};
  bool compact = false;
  int wait_ms = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "s:c:S:P:t:a:W::h", opts, NULL)) != -1) {
    static const char *const fleet_names[] = {"--cacert", "--cert", "--key", "--user"};
    if (c >= VS_CLI_OPT_CACERT && c <= VS_CLI_OPT_USER) {
      const char *prev[] = {fo.cacert, fo.cert, fo.key, fo.user};
      const char *name = fleet_names[c - VS_CLI_OPT_CACERT];
      const char *slot = prev[c - VS_CLI_OPT_CACERT];
      if (vs_cli_set_once(&slot, optarg, name, PROG) < 0) return VS_EXIT_USAGE;
      if (!tls) tls = name;
    }
    if (vs_cli_fleet_option(&fo, c, optarg)) continue;
    switch (c) {
    case 'S':
      if (n_stores == VS_CLI_MAX_REPEAT) {
        fprintf(stderr, PROG ": at most %d --store options\n", VS_CLI_MAX_REPEAT);
        return VS_EXIT_USAGE;
      }
      stores[n_stores++] = optarg;
      break;
    case 'P':
      if (vs_cli_set_once(&proxy_socket, optarg, "--proxy-socket", PROG) < 0) return VS_EXIT_USAGE;
      break;
    case 's':
      if (vs_cli_set_once(&socket_path, optarg, "--agent-socket", PROG) < 0) return VS_EXIT_USAGE;
      break;
    case 'c':
      if (vs_cli_set_once(&uri, optarg, "--connect", PROG) < 0) return VS_EXIT_USAGE;
      break;
    case 't':
      if (vs_cli_set_once(&timeout, optarg, "--timeout", PROG) < 0 ||
          (co.timeout_ms = parse_ms(optarg, "--timeout")) < 0)
        return VS_EXIT_USAGE;
      break;
    case 'W':
      if (vs_cli_set_once(&wait, optarg ? optarg : "60", "--wait", PROG) < 0 ||
          (wait_ms = parse_ms(wait, "--wait")) < 0)
        return VS_EXIT_USAGE;
      break;
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
  /* One way to the agent: two would leave one of them silently unused. */
  const char *ways[4],
      *given[] = {socket_path ? "--agent-socket" : NULL, uri ? "--connect" : NULL,
                  n_stores ? "--store" : NULL, proxy_socket ? "--proxy-socket" : NULL};
  size_t n_ways = 0;
  for (size_t i = 0; i < 4; i++)
    if (given[i]) ways[n_ways++] = given[i];
  if (n_ways > 1) {
    fprintf(stderr, PROG ": %s and %s are two ways to reach the agent: give one\n", ways[0],
            ways[1]);
    return VS_EXIT_USAGE;
  }
  if (tls && !n_stores) {
    fprintf(stderr, PROG ": %s is for the fleet store: give --store URL too, or drop it\n", tls);
    return VS_EXIT_USAGE;
  }
  int want = socket_path ? 1 : 2;
  if (argc - optind != want) {
    if (socket_path && argc - optind == 2) {
      fprintf(stderr,
              PROG ": with --agent-socket give only JSON (the socket is the VM), not \"%s\"\n",
              argv[optind]);
      return VS_EXIT_USAGE;
    }
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
  if (wait && strcmp(execute, "guest-exec") != 0) {
    fprintf(stderr, PROG ": --wait is for guest-exec (it waits for the command to exit), not %s\n",
            execute);
    json_decref(cmd);
    return VS_EXIT_USAGE;
  }
  if (wait && !json_object_get(arguments, "capture-output"))
    json_object_set_new(arguments, "capture-output", json_true()); /* what --wait prints */
  struct vs_err err = {0};
  struct route rt = {.proxy_socket = proxy_socket, .vm = vm};
  _cleanup_(vs_fleet_closep) struct vs_fleet *f = NULL;
  _cleanup_(vs_virt_closep) struct vs_virt *v = NULL;
  _cleanup_(vs_channel_closep) struct vs_channel *ch = NULL;
  json_t *reply = NULL;
  enum vs_channel_status s;
  if (n_stores || proxy_socket) { /* routed: through the fleet map, or a local proxy */
    fo.endpoints = stores;
    fo.n_endpoints = n_stores;
    f = n_stores ? vs_fleet_open(&fo, &err) : NULL;
    rt.fleet = f;
    rt.timeout_ms = co.timeout_ms ? co.timeout_ms : 10000;
    s = proxy_socket || f ? call_route(&rt, execute, arguments, &reply, &err) : VS_CHANNEL_FAILED;
  } else {
    if (!socket_path && !(v = vs_virt_open(uri, false, &err))) {
      fprintf(stderr, PROG ": %s (failed)\n", vs_err_msg(&err));
      vs_err_clear(&err);
      json_decref(cmd);
      return VS_EXIT_PARTIAL;
    }
    ch = socket_path ? vs_channel_open_unix(socket_path, &co) : vs_channel_open_libvirt(v, vm, &co);
    rt.ch = ch;
    s = vs_channel_call(ch, execute, arguments, &reply, &err);
  }
  if (s != VS_CHANNEL_OK) {
    json_decref(cmd);
    fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_PARTIAL;
  }
  int status = wait ? wait_exec(&rt, vm ? vm : socket_path, arguments, reply, wait_ms, compact)
               : vs_cli_print_json(reply, compact, PROG) < 0 ? VS_EXIT_PARTIAL
                                                             : VS_EXIT_OK;
  json_decref(reply);
  json_decref(cmd);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, PROG ": writing standard output failed\n");
    return VS_EXIT_PARTIAL;
  }
  return status;
}
