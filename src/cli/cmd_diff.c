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
        "OLD must not be taken after NEW (swap them, or say --any-order), and two documents of\n"
        "different libvirt domains (different UUIDs) are refused: diff compares two snapshots\n"
        "of one VM (vmscope drift compares VMs).\n"
        "\n"
        "Options:\n"
        "  -f, --format json|text  output format (default json); text names the VM and both\n"
        "                          snapshot times\n"
        "      --compact           JSON on one line\n"
        "      --exit-code         exit 1 when something changed, 0 when nothing did\n"
        "  -q, --quiet             print nothing, not even the progress line shown on a\n"
        "                          terminal while the libguestfs appliance works; implies\n"
        "                          --exit-code\n"
        "      --any-order         compare even when OLD was taken after NEW\n",
        out);
  fputs(vs_cli_read_help, out);
  fputs("  -h, --help              this help\n"
        "\n"
        "Exit status: 0 ok (whether or not anything changed), 1 a source failed, 2 usage.\n"
        "With --exit-code or --quiet, as git diff: 0 nothing changed, 1 something changed,\n"
        "2 usage, 3 a source failed (nothing was compared).\n",
        out);
}

static void print_text(const struct vs_diff *d, const struct vs_feature *a,
                       const struct vs_feature *b) {
  if (strcmp(vs_feature_name(a), vs_feature_name(b)) == 0)
    printf("# %s: %s -> %s\n", vs_feature_name(a), vs_feature_taken_at(a), vs_feature_taken_at(b));
  else
    printf("# %s (%s) -> %s (%s)\n", vs_feature_name(a), vs_feature_taken_at(a), vs_feature_name(b),
           vs_feature_taken_at(b));
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

/* Whether OLD and NEW can be two snapshots of one VM, in that order: -1 (message printed) when
 * not. Documents of libvirt domains carry the domain's UUID; a tree's or an image's id is the
 * file's, and two files may well be two snapshots of one VM, so only domains are compared by id.
 * taken_at is UTC "YYYY-MM-DDTHH:MM:SSZ", which sorts as text. */
static int check_pair(const struct vs_feature *a, const struct vs_feature *b, bool any_order) {
  const char *ka = vs_feature_source(a, "kind"), *kb = vs_feature_source(b, "kind");
  if (ka && kb && strcmp(ka, "domain") == 0 && strcmp(kb, "domain") == 0 &&
      strcmp(vs_feature_id(a), vs_feature_id(b)) != 0) {
    fprintf(stderr, PROG ": OLD is %s, NEW is %s: diff compares two snapshots of one VM\n",
            vs_feature_name(a), vs_feature_name(b));
    return -1;
  }
  if (!any_order && strcmp(vs_feature_taken_at(a), vs_feature_taken_at(b)) > 0) {
    fprintf(stderr,
            PROG ": OLD was taken after NEW (%s > %s): swap them, or give --any-order to compare "
                 "them as given\n",
            vs_feature_taken_at(a), vs_feature_taken_at(b));
    return -1;
  }
  return 0;
}

enum { OPT_COMPACT = VS_CLI_OPT_FIRST_FREE, OPT_EXIT_CODE, OPT_ANY_ORDER };
enum { EXIT_CHANGED = 1, EXIT_FAILED = 3 }; /* with --exit-code */

/* The command line, parsed. */
struct args {
  struct vs_cli_read read;
  bool text, compact, exit_code, quiet, any_order;
  const char *format;
};

/* The command line into A: 1 help printed, -1 usage error (printed), 0 go on. */
static int parse(int argc, char **argv, struct args *a) {
  static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                       {"compact", no_argument, NULL, OPT_COMPACT},
                                       {"exit-code", no_argument, NULL, OPT_EXIT_CODE},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"any-order", no_argument, NULL, OPT_ANY_ORDER},
                                       {"help", no_argument, NULL, 'h'},
                                       VS_CLI_READ_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "f:qh" VS_CLI_READ_SHORT, opts, NULL)) != -1) {
    int taken = vs_cli_read_option(&a->read, c, optarg, PROG);
    if (taken < 0) return -1;
    if (taken) continue;
    if (c == 'f') {
      if (vs_cli_set_once(&a->format, optarg, "--format", PROG) < 0 ||
          vs_cli_format_option(optarg, PROG, &a->text) < 0)
        return -1;
    } else if (c == OPT_COMPACT) {
      a->compact = true;
    } else if (c == OPT_EXIT_CODE) {
      a->exit_code = true;
    } else if (c == 'q') {
      a->quiet = a->exit_code = a->read.quiet = true;
    } else if (c == OPT_ANY_ORDER) {
      a->any_order = true;
    } else if (c == 'h') {
      usage(stdout);
      return 1;
    } else {
      usage(stderr);
      return -1;
    }
  }
  if (a->compact && (a->text || a->quiet)) {
    fprintf(stderr, PROG ": --compact is for JSON output, not %s\n",
            a->quiet ? "--quiet" : "--format text");
    return -1;
  }
  if (argc - optind != 2) {
    fprintf(stderr, PROG ": expected OLD and NEW\n");
    usage(stderr);
    return -1;
  }
  return 0;
}

/* Whether OLD and NEW, as read into READ, are one document each: an exit status (printed when
 * not VS_EXIT_OK). */
static int check_read(const struct args *a, const struct vs_cli_docs read[2], char *const *paths) {
  int status = VS_EXIT_OK;
  for (int i = 0; i < 2; i++) {
    if (read[i].error) {
      fprintf(stderr, PROG ": %s\n", read[i].error);
      if (status == VS_EXIT_OK) status = a->exit_code ? EXIT_FAILED : VS_EXIT_PARTIAL;
    } else if (read[i].n != 1) {
      fprintf(stderr, PROG ": %s holds %zu documents; expected one\n", paths[i], read[i].n);
      status = VS_EXIT_USAGE;
    }
  }
  return status;
}

/* Compares OLD A with NEW B and prints what changed as A asks. Returns the exit status. */
static int compare(const struct args *a, const struct vs_feature *old,
                   const struct vs_feature *new) {
  _cleanup_(vs_diff_freep) struct vs_diff *d = vs_drift_diff(old, new);
  if (a->quiet) {
    /* nothing printed */
  } else if (a->text) {
    print_text(d, old, new);
  } else {
    json_t *j = vs_diff_to_json(d, old, new);
    json_object_set_new(json_object_get(j, "old"), "name", json_string(vs_feature_name(old)));
    json_object_set_new(json_object_get(j, "new"), "name", json_string(vs_feature_name(new)));
    int printed = vs_cli_print_json(j, a->compact, PROG);
    json_decref(j);
    if (printed < 0) return a->exit_code ? EXIT_FAILED : VS_EXIT_PARTIAL;
  }
  return a->exit_code && d->n_changes ? EXIT_CHANGED : VS_EXIT_OK;
}

int vs_cmd_diff(int argc, char **argv) {
  struct args a = {0};
  int rc = parse(argc, argv, &a);
  if (rc != 0) return rc > 0 ? VS_EXIT_OK : VS_EXIT_USAGE;
  if (vs_cli_refuse_unused_image_options(&a.read, argv + optind, 2, PROG)) return VS_EXIT_USAGE;
  struct vs_cli_docs read[2] = {0};
  if (vs_cli_read_sources(&a.read, argv + optind, 2, read, PROG) < 0) return VS_EXIT_USAGE;
  int status = check_read(&a, read, argv + optind);
  if (status == VS_EXIT_OK && check_pair(read[0].docs[0], read[1].docs[0], a.any_order) < 0)
    status = VS_EXIT_USAGE;
  if (status == VS_EXIT_OK) status = compare(&a, read[0].docs[0], read[1].docs[0]);
  vs_cli_docs_clear(&read[0]);
  vs_cli_docs_clear(&read[1]);
  if (vs_cli_flush(PROG) < 0) return a.exit_code ? EXIT_FAILED : VS_EXIT_PARTIAL;
  return status;
}
