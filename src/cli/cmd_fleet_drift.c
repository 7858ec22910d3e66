/* vmscope fleet drift: the fleet's findings as the hosts ranked them, from the fleet store; and
 * vmscope fleet migrate: the store's schema, created or brought up to date by its owner. */
#include "cli.h"

#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "vmscope fleet"

static void usage(FILE *out) {
  fputs("Usage: vmscope fleet drift --store URL [--vm NAME] [--format json|text]\n"
        "       vmscope fleet migrate --store URL\n"
        "\n"
        "drift prints each VM's findings as the host that runs it ranked it against the whole\n"
        "fleet (vmscope_drift with FleetStore), from the PostgreSQL fleet store. The JSON is\n"
        "that of \"vmscope drift --format json\", each VM with the host that ranked it.\n"
        "migrate creates the store's schema, or brings it to this vmscope's version; run it\n"
        "as the database's owner (a role that may create roles: the schema makes the group\n"
        "roles vmscope_host and vmscope_reader), before hosts connect with their own roles.\n"
        "\n"
        "Options:\n"
        "  -S, --store URL         the fleet store: \"postgresql://USER@HOST/DB\" (libpq)\n"
        "      --password-file F   the password, on the file's first line (never in the URL)\n"
        "      --ca-file F         the server's CA certificate: TLS with sslmode verify-full\n"
        "      --vm NAME           this VM only (a name or a domain UUID)\n"
        "      --format FMT        json (the default) or text\n"
        "      --compact           JSON on one line\n"
        "  -h, --help              this help\n",
        out);
}

enum { OPT_PASSWORD_FILE = VS_CLI_OPT_FIRST_FREE, OPT_CA_FILE, OPT_VM, OPT_FORMAT, OPT_COMPACT };

struct options {
  const char *store, *password_file, *ca_file, *vm;
  bool text, compact;
};

/* 1 help printed, -1 usage error (printed), 0 go on. */
static int parse(int argc, char **argv, struct options *o) {
  static const struct option opts[] = {
      {"store", required_argument, NULL, 'S'},
      {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
      {"ca-file", required_argument, NULL, OPT_CA_FILE},
      {"vm", required_argument, NULL, OPT_VM},
      {"format", required_argument, NULL, OPT_FORMAT},
      {"compact", no_argument, NULL, OPT_COMPACT},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *format = NULL;
  const struct vs_cli_once single[] = {{'S', "--store", &o->store},
                                       {OPT_PASSWORD_FILE, "--password-file", &o->password_file},
                                       {OPT_CA_FILE, "--ca-file", &o->ca_file},
                                       {OPT_VM, "--vm", &o->vm},
                                       {OPT_FORMAT, "--format", &format}};
  int c;
  optind = 2;
  while ((c = getopt_long(argc, argv, "S:h", opts, NULL)) != -1) {
    int taken = vs_cli_take_once(single, sizeof(single) / sizeof(single[0]), c, optarg, PROG);
    if (taken < 0) return -1;
    if (taken) {
      if (c == OPT_FORMAT && vs_cli_format_option(optarg, PROG, &o->text) < 0) return -1;
      continue;
    }
    switch (c) {
    case OPT_COMPACT:
      o->compact = true;
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, PROG ": unexpected argument \"%s\"\n", argv[optind]);
    return -1;
  }
  if (!o->store) {
    fprintf(stderr, PROG ": --store URL is required (the fleet store, postgresql://...)\n");
    return -1;
  }
  return 0;
}

static void print_text(const json_t *rankings) {
  size_t i;
  json_t *r;
  json_array_foreach(rankings, i, r) {
    json_t *findings = json_object_get(r, "findings");
    printf("# %s (host %s): %lld samples, %zu findings, %lld alarms%s\n",
           json_string_value(json_object_get(r, "name")),
           json_string_value(json_object_get(r, "host")),
           json_integer_value(json_object_get(r, "samples")), json_array_size(findings),
           json_integer_value(json_object_get(r, "alarms")),
           json_is_true(json_object_get(r, "unique")) ? "; no close peers: nothing alarms" : "");
    size_t k;
    json_t *f;
    json_array_foreach(findings, k, f) {
      json_t *maj = json_object_get(f, "majority");
      printf("%3lld  %.3f  %-7s  %-7s  %s = %s  (peers: %s, %lld of %lld)%s\n",
             json_integer_value(json_object_get(f, "rank")),
             json_number_value(json_object_get(f, "score")),
             json_string_value(json_object_get(f, "severity")),
             json_string_value(json_object_get(f, "kind")),
             json_string_value(json_object_get(f, "key")),
             json_string_value(json_object_get(f, "value")),
             json_string_value(json_object_get(maj, "value")),
             json_integer_value(json_object_get(maj, "count")),
             json_integer_value(json_object_get(f, "n")),
             json_is_true(json_object_get(f, "waived")) ? "  waived" : "");
    }
  }
}

int vs_cmd_fleet_drift(int argc, char **argv) {
  struct options o = {0};
  int rc = parse(argc, argv, &o);
  if (rc != 0) return rc > 0 ? VS_EXIT_OK : VS_EXIT_USAGE;
  bool migrate_only = strcmp(argv[1], "migrate") == 0;
  if (migrate_only && (o.vm || o.text || o.compact)) {
    fprintf(stderr, PROG ": migrate takes --store, --password-file and --ca-file only\n");
    return VS_EXIT_USAGE;
  }
  struct vs_err err = {0};
  struct vs_store_opts so = {.url = o.store,
                             .password_file = o.password_file,
                             .ca_file = o.ca_file,
                             .host = "vmscope-cli",
                             .read_only = !migrate_only};
  int status = VS_EXIT_OK;
  _cleanup_(vs_store_freep) struct vs_store *store = vs_cli_open_store(&so, NULL, PROG, &status);
  if (!store) return status;
  if (migrate_only) {
    printf("the fleet store's schema is at version %d\n", VS_STORE_SCHEMA_VERSION);
    return vs_cli_flush(PROG) < 0 ? VS_EXIT_PARTIAL : VS_EXIT_OK;
  }
  json_t *rankings = vs_store_rankings(store, o.vm, &err);
  if (!rankings) return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  if (o.vm && json_array_size(rankings) == 0) {
    fprintf(stderr, PROG ": no host has ranked a VM named \"%s\" in the fleet store\n", o.vm);
    status = VS_EXIT_PARTIAL;
  }
  if (o.text)
    print_text(rankings);
  else if (vs_cli_print_json(rankings, o.compact, PROG) < 0)
    status = VS_EXIT_PARTIAL;
  json_decref(rankings);
  if (vs_cli_flush(PROG) < 0) status = VS_EXIT_PARTIAL;
  return status;
}
