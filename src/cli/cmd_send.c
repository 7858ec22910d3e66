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

enum { OPT_COMPACT = VS_CLI_OPT_FIRST_FREE };

/* The command line, parsed. */
struct args {
  struct vs_fleet_opts fo;
  const char *socket_path, *uri, *proxy_socket, *timeout, *wait;
  const char *tls; /* the first TLS or authentication option given, for the message */
  const char *stores[VS_CLI_MAX_REPEAT];
  size_t n_stores;
  const char *allow[VS_CLI_MAX_REPEAT];
  struct vs_channel_opts co;
  bool compact;
  int wait_ms;
};

/* How the agent is reached, for the first call and those after it (--wait's polls). It owns
 * what it opened. */
struct route {
  struct vs_channel *ch;  /* this host: a socket or libvirt */
  struct vs_virt *virt;   /* the channel's connection, with libvirt */
  struct vs_fleet *fleet; /* or routed through etcd */
  const char *proxy_socket, *vm;
  int timeout_ms;
};

static void route_clear(struct route *r) {
  vs_channel_close(r->ch);
  vs_virt_close(r->virt);
  vs_fleet_close(r->fleet);
}

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

/* Opens the way to the agent A names, to VM (NULL: the agent socket is the VM), and makes the
 * first call. */
static enum vs_channel_status call_first(const struct args *a, struct route *rt, const char *vm,
                                         const char *execute, json_t *arguments, json_t **reply,
                                         struct vs_err *err) {
  *rt = (struct route){.proxy_socket = a->proxy_socket, .vm = vm};
  if (a->n_stores || a->proxy_socket) { /* routed: through the fleet map, or a local proxy */
    struct vs_fleet_opts fo = a->fo;
    fo.endpoints = a->stores;
    fo.n_endpoints = a->n_stores;
    rt->fleet = a->n_stores ? vs_fleet_open(&fo, err) : NULL;
    rt->timeout_ms = a->co.timeout_ms ? a->co.timeout_ms : 10000;
    if (!a->proxy_socket && !rt->fleet) return VS_CHANNEL_FAILED;
    return call_route(rt, execute, arguments, reply, err);
  }
  if (!a->socket_path && !(rt->virt = vs_virt_open(a->uri, false, err))) {
    /* Named by its kind, as the channel's own errors are. */
    vs_err_set(err, err->code, "%s (%s)", vs_err_msg(err),
               vs_channel_status_name(VS_CHANNEL_FAILED));
    return VS_CHANNEL_FAILED;
  }
  rt->ch = a->socket_path ? vs_channel_open_unix(a->socket_path, &a->co)
                          : vs_channel_open_libvirt(rt->virt, vm, &a->co);
  return vs_channel_call(rt->ch, execute, arguments, reply, err);
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
  if (s != VS_CHANNEL_OK) return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
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

/* A TLS or authentication option C (VS_CLI_FLEET_OPTIONS): refused (-1, printed) the second
 * time; the first one given is remembered for the message that it needs --store. 0 for any
 * other option. */
static int check_fleet_option(struct args *a, int c, const char *arg) {
  static const char *const names[] = {"--cacert", "--cert", "--key", "--user"};
  if (c < VS_CLI_OPT_CACERT || c > VS_CLI_OPT_USER) return 0;
  const char *given[] = {a->fo.cacert, a->fo.cert, a->fo.key, a->fo.user};
  const char *name = names[c - VS_CLI_OPT_CACERT], *slot = given[c - VS_CLI_OPT_CACERT];
  if (vs_cli_set_once(&slot, arg, name, PROG) < 0) return -1;
  if (!a->tls) a->tls = name;
  return 0;
}

/* One option C (with ARG) of those vs_cli_once and the fleet options do not take into A:
 * 1 help printed, -1 usage error (printed), 0 taken. */
static int take_option(struct args *a, int c, const char *arg) {
  switch (c) {
  case 'S':
    return vs_cli_add_repeat(a->stores, &a->n_stores, arg, "--store", PROG);
  case 't':
    return vs_cli_set_once(&a->timeout, arg, "--timeout", PROG) < 0 ||
                   (a->co.timeout_ms = parse_ms(arg, "--timeout")) < 0
               ? -1
               : 0;
  case 'W':
    return vs_cli_set_once(&a->wait, arg ? arg : "60", "--wait", PROG) < 0 ||
                   (a->wait_ms = parse_ms(a->wait, "--wait")) < 0
               ? -1
               : 0;
  case 'a':
    return vs_cli_add_repeat(a->allow, &a->co.n_allow, arg, "--allow", PROG);
  case OPT_COMPACT:
    a->compact = true;
    return 0;
  case 'h':
    usage(stdout);
    return 1;
  default:
    usage(stderr);
    return -1;
  }
}

/* One way to the agent: two would leave one of them silently unused. -1 (printed) when A gives
 * more, TLS options without a store, or not the arguments its way takes. */
static int check(const struct args *a, int argc, char **argv) {
  const char *ways[4],
      *given[] = {a->socket_path ? "--agent-socket" : NULL, a->uri ? "--connect" : NULL,
                  a->n_stores ? "--store" : NULL, a->proxy_socket ? "--proxy-socket" : NULL};
  size_t n_ways = 0;
  for (size_t i = 0; i < 4; i++)
    if (given[i]) ways[n_ways++] = given[i];
  if (n_ways > 1) {
    fprintf(stderr, PROG ": %s and %s are two ways to reach the agent: give one\n", ways[0],
            ways[1]);
    return -1;
  }
  if (a->tls && !a->n_stores) {
    fprintf(stderr, PROG ": %s is for the fleet store: give --store URL too, or drop it\n", a->tls);
    return -1;
  }
  int want = a->socket_path ? 1 : 2;
  if (argc - optind == want) return 0;
  if (a->socket_path && argc - optind == 2) {
    fprintf(stderr,
            PROG ": with --agent-socket give only JSON (the socket is the VM), not \"%s\"\n",
            argv[optind]);
    return -1;
  }
  fprintf(stderr, PROG ": expected %s\n", a->socket_path ? "JSON" : "VM and JSON");
  usage(stderr);
  return -1;
}

/* The command line into A: 1 help printed, -1 usage error (printed), 0 go on. */
static int parse(int argc, char **argv, struct args *a) {
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
  const struct vs_cli_once single[] = {{'P', "--proxy-socket", &a->proxy_socket},
                                       {'s', "--agent-socket", &a->socket_path},
                                       {'c', "--connect", &a->uri}};
  a->co.allow = a->allow;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "s:c:S:P:t:a:W::h", opts, NULL)) != -1) {
    if (check_fleet_option(a, c, optarg) < 0) return -1;
    if (vs_cli_fleet_option(&a->fo, c, optarg)) continue;
    int taken = vs_cli_take_once(single, sizeof(single) / sizeof(single[0]), c, optarg, PROG);
    if (taken < 0) return -1;
    if (taken) continue;
    int rc = take_option(a, c, optarg);
    if (rc != 0) return rc;
  }
  return check(a, argc, argv);
}

/* The command TEXT: *CMD (the caller's) and its name and arguments, checked against what --wait
 * takes; -1 (printed) when it is no agent command. */
static int parse_command(const struct args *a, const char *text, json_t **cmd, const char **execute,
                         json_t **arguments) {
  json_error_t je;
  *cmd = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  *execute = *cmd ? json_string_value(json_object_get(*cmd, "execute")) : NULL;
  *arguments = *cmd ? json_object_get(*cmd, "arguments") : NULL;
  if (!*execute || (*arguments && !json_is_object(*arguments))) {
    fprintf(stderr,
            PROG
            ": the command must be a JSON object {\"execute\": NAME[, \"arguments\": {...}]}%s%s\n",
            *cmd ? "" : ": ", *cmd ? "" : je.text);
    return -1;
  }
  if (a->wait && strcmp(*execute, "guest-exec") != 0) {
    fprintf(stderr, PROG ": --wait is for guest-exec (it waits for the command to exit), not %s\n",
            *execute);
    return -1;
  }
  if (a->wait && !json_object_get(*arguments, "capture-output"))
    json_object_set_new(*arguments, "capture-output", json_true()); /* what --wait prints */
  return 0;
}

int vs_cmd_send(int argc, char **argv) {
  struct args a = {0};
  int rc = parse(argc, argv, &a);
  if (rc != 0) return rc > 0 ? VS_EXIT_OK : VS_EXIT_USAGE;
  const char *vm = a.socket_path ? NULL : argv[optind];
  _cleanup_(json_decrefp) json_t *cmd = NULL;
  const char *execute;
  json_t *arguments;
  if (parse_command(&a, argv[argc - 1], &cmd, &execute, &arguments) < 0) return VS_EXIT_USAGE;
  struct vs_err err = {0};
  _cleanup_(route_clear) struct route rt = {0};
  _cleanup_(json_decrefp) json_t *reply = NULL;
  if (call_first(&a, &rt, vm, execute, arguments, &reply, &err) != VS_CHANNEL_OK)
    return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  int status = a.wait
                   ? wait_exec(&rt, vm ? vm : a.socket_path, arguments, reply, a.wait_ms, a.compact)
               : vs_cli_print_json(reply, a.compact, PROG) < 0 ? VS_EXIT_PARTIAL
                                                               : VS_EXIT_OK;
  return vs_cli_flush(PROG) < 0 ? VS_EXIT_PARTIAL : status;
}
