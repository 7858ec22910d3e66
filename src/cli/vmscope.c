/* vmscope: inspect guests and their drift by hand. One file per subcommand. */
#include "cli.h"

#include "util.h"
#include "vs_config.h"

#include <stdio.h>
#include <string.h>

static void log_to_stderr(enum vs_log_level level, const char *msg, void *ctx) {
  (void)ctx;
  if (level <= VS_LOG_WARNING) fprintf(stderr, "vmscope: %s\n", msg);
}

static void usage(FILE *out) {
  fputs(
      "Usage: vmscope [--version] [--help] COMMAND [ARGS]\n"
      "\n"
      "Look inside virtual machines from the outside and find how each drifted from its peers.\n"
      "\n"
      "Commands:\n"
      "  inspect   extract the feature document (OS, packages, users, services, sysctl,\n"
      "            config settings, file metadata) of guest trees and disk images\n"
      "  snapshot  the same for libvirt domains, with their virtual hardware (vm:)\n"
      "  drift     rank the settings that set a VM apart from its peers (PeerPressure)\n"
      "  diff      what changed between two snapshots of one VM\n"
      "  send      one command to a guest's agent (unix socket, libvirt, or routed)\n"
      "  fleet     the fleet map (ls), a host's proxy agent (proxy), fleet-wide findings (drift),\n"
      "            the fleet store's schema (migrate)\n"
      "  patchset  the clusters a patch changed, as a thin qcow2 layer on the base (make),\n"
      "            inserted under a stopped or running VM's disk (apply), listed (status)\n"
      "  analyze   roles, anomaly scores and labels learned from many VMs\n"
      "  similar   VMs ranked by likeness to one VM, or to a few settings\n"
      "  report    one self-contained HTML page: heat map, roles, findings, changes\n"
      "\n"
      "Run 'vmscope COMMAND --help' for a command's options; see vmscope(1).\n"
      "Exit status: 0 ok, 1 some input failed (the others were still done), 2 usage error.\n",
      out);
}

int main(int argc, char **argv) {
  vs_log_set_sink(log_to_stderr, NULL);
  if (argc < 2) {
    usage(stderr);
    return VS_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return VS_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("vmscope %s\n", VS_VERSION);
    return VS_EXIT_OK;
  }
  if (strcmp(argv[1], "inspect") == 0) return vs_cmd_inspect(argc - 1, argv + 1);
  if (strcmp(argv[1], "drift") == 0) return vs_cmd_drift(argc - 1, argv + 1);
  if (strcmp(argv[1], "diff") == 0) return vs_cmd_diff(argc - 1, argv + 1);
  if (strcmp(argv[1], "snapshot") == 0) return vs_cmd_snapshot(argc - 1, argv + 1);
  if (strcmp(argv[1], "send") == 0) return vs_cmd_send(argc - 1, argv + 1);
  if (strcmp(argv[1], "fleet") == 0) return vs_cmd_fleet(argc - 1, argv + 1);
  if (strcmp(argv[1], "patchset") == 0) return vs_cmd_patchset(argc - 1, argv + 1);
  if (strcmp(argv[1], "analyze") == 0) return vs_cmd_analyze(argc - 1, argv + 1);
  if (strcmp(argv[1], "similar") == 0) return vs_cmd_similar(argc - 1, argv + 1);
  if (strcmp(argv[1], "report") == 0) return vs_cmd_report(argc - 1, argv + 1);
  fprintf(stderr, "vmscope: unknown command \"%s\"\n", argv[1]);
  usage(stderr);
  return VS_EXIT_USAGE;
}
