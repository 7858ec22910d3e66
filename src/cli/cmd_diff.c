/* vmscope diff: what changed between two snapshots of one VM. */
#include "cli.h"

#include "drift.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "vmscope diff"

static void usage(FILE *out) {
  fputs("Usage: vmscope diff [OPTIONS] OLD NEW\n"
        "\n"
        "Print the settings added, removed and changed from OLD to NEW, two snapshots of one\n"
        "VM (guest trees, disk images or saved feature documents). Package version changes\n"
        "are classed as upgrade or downgrade (the guest's own version order), and changes to\n"
        "a config file as \"package\" when the package that ships it changed version too, or\n"
        "\"local_edit\" when it did not.\n"
        "\n"
        "Options:\n"
        "  -f, --format json|text  output format (default json)\n"
        "      --compact           JSON on one line\n",
        out);
  fputs(vs_cli_read_help, out);
  fputs("  -h, --help              this help\n"
        "\n"
        "Exit status: 0 ok (whether or not anything changed), 1 a source failed, 2 usage.\n",
        out);
}

static void print_text(const struct vs_diff *d) {
  printf("# %zu added, %zu removed, %zu changed; packages: %zu upgraded, %zu downgraded, %zu "
         "installed, %zu removed; files: %zu changed with their package, %zu edited locally\n",
         d->added, d->removed, d->changed, d->upgrades, d->downgrades, d->installed, d->uninstalled,
         d->package_edits, d->local_edits);
  for (size_t i = 0; i < d->n_changes; i++) {
    const struct vs_change *ch = &d->changes[i];
    const char *cls = vs_change_class_name(ch->class);
    if (ch->kind == VS_CHANGE_ADDED)
      printf("+ %s = %s", ch->key, ch->new_value);
    else if (ch->kind == VS_CHANGE_REMOVED)
      printf("- %s = %s", ch->key, ch->old_value);
    else
      printf("~ %s: %s -> %s", ch->key, ch->old_value, ch->new_value);
    if (*cls) printf("  [%s%s%s]", cls, ch->package ? " " : "", ch->package ? ch->package : "");
    putchar('\n');
  }
}

int vs_cmd_diff(int argc, char **argv) {
  enum { OPT_COMPACT = VS_CLI_OPT_FIRST_FREE };
  static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                       {"compact", no_argument, NULL, OPT_COMPACT},
                                       {"help", no_argument, NULL, 'h'},
                                       VS_CLI_READ_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  struct vs_cli_read r = {0};
  bool text = false, compact = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "f:h" VS_CLI_READ_SHORT, opts, NULL)) != -1) {
    int taken = vs_cli_read_option(&r, c, optarg, PROG);
    if (taken < 0) return VS_EXIT_USAGE;
    if (taken) continue;
    switch (c) {
    case 'f':
      if (vs_cli_format_option(optarg, PROG, &text) < 0) return VS_EXIT_USAGE;
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
  if (argc - optind != 2) {
    fprintf(stderr, PROG ": expected OLD and NEW\n");
    usage(stderr);
    return VS_EXIT_USAGE;
  }
  struct vs_cli_docs read[2] = {0};
  if (vs_cli_read_sources(&r, argv + optind, 2, read, PROG) < 0) return VS_EXIT_USAGE;
  int status = VS_EXIT_OK;
  for (int i = 0; i < 2; i++) {
    if (read[i].error) {
      fprintf(stderr, PROG ": %s\n", read[i].error);
      status = VS_EXIT_PARTIAL;
    } else if (read[i].n != 1) {
      fprintf(stderr, PROG ": %s holds %zu documents; expected one\n", argv[optind + i], read[i].n);
      status = VS_EXIT_USAGE;
    }
  }
  if (status == VS_EXIT_OK) {
    _cleanup_(vs_diff_freep) struct vs_diff *d = vs_drift_diff(read[0].docs[0], read[1].docs[0]);
    if (text) {
      print_text(d);
    } else {
      json_t *j = vs_diff_to_json(d, read[0].docs[0], read[1].docs[0]);
      vs_cli_print_json(j, compact, PROG);
      json_decref(j);
    }
  }
  vs_cli_docs_clear(&read[0]);
  vs_cli_docs_clear(&read[1]);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, PROG ": writing standard output failed\n");
    return VS_EXIT_PARTIAL;
  }
  return status;
}
