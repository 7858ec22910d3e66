/* vmscope inspect: SOURCE... -> feature documents on standard output. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "vmscope inspect"

static void usage(FILE *out) {
  fputs("Usage: vmscope inspect [OPTIONS] SOURCE...\n"
        "\n"
        "Extract the feature document of each SOURCE: a guest's root file system as a\n"
        "directory on this host (a mounted guest, a container rootfs, a debootstrap tree),\n"
        "a guest disk image (raw, qcow2, VHD/VHDX or VMDK), or an NBD export\n"
        "(nbd://HOST/NAME or nbd+unix:///NAME?socket=PATH). One document is printed for\n"
        "one source, a JSON array for several.\n"
        "\n"
        "Options:\n"
        "  -f, --format json|text  output format (default json); text prints one\n"
        "                          \"key = value\" line per setting after a header\n"
        "      --compact           JSON on one line per document\n"
        "  -q, --quiet             no progress line: on a terminal, standard error shows\n"
        "                          what the libguestfs appliance is doing (launching, each\n"
        "                          image), as it takes tens of seconds, nor why an image\n"
        "                          is left to it\n",
        out);
  fputs(vs_cli_read_help, out);
  fputs("  -h, --help              this help\n"
        "\n"
        "A directory or image with no operating system in it (no os-release, no package\n"
        "database, no /etc/passwd) is an error, not a document. A document's id is the\n"
        "source's canonical absolute path (an NBD URI as given), its name the directory's\n"
        "name or the image file's name without its extension. --format, --backend and\n"
        "--image-format may be given once; --watch and --backing-dir add up.\n"
        "\n"
        "Exit status: 0 ok, 1 some source failed (the others are still printed), 2 usage.\n",
        out);
}

static void print_text(const struct vs_feature *doc) {
  printf("# %s (%s %s, %s)\n", vs_feature_name(doc),
         vs_feature_os(doc, "distro") ? vs_feature_os(doc, "distro") : "unknown",
         vs_feature_os(doc, "version") ? vs_feature_os(doc, "version") : "?",
         vs_feature_source(doc, "path"));
  size_t n;
  const char **keys = vs_feature_keys(doc, &n);
  for (size_t i = 0; i < n; i++)
    printf("%s = %s\n", keys[i], vs_feature_get(doc, keys[i]));
  free(keys);
  const char *path, *reason;
  for (size_t i = 0; vs_feature_skipped(doc, i, &path, &reason); i++)
    printf("# skipped %s: %s\n", path, reason);
}

enum { OPT_COMPACT = VS_CLI_OPT_FIRST_FREE };

/* The command line, parsed. */
struct args {
  struct vs_cli_read read;
  bool text, compact;
  const char *format;
};

/* The command line into A: 1 help printed, -1 usage error (printed), 0 go on. */
static int parse(int argc, char **argv, struct args *a) {
  static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                       {"compact", no_argument, NULL, OPT_COMPACT},
                                       {"quiet", no_argument, NULL, 'q'},
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
    } else if (c == 'q') {
      a->read.quiet = true;
    } else if (c == 'h') {
      usage(stdout);
      return 1;
    } else {
      usage(stderr);
      return -1;
    }
  }
  if (a->compact && a->text) {
    fprintf(stderr, PROG ": --compact is for JSON output, not --format text\n");
    return -1;
  }
  if (optind >= argc) {
    fprintf(stderr, PROG ": no SOURCE given\n");
    usage(stderr);
    return -1;
  }
  return 0;
}

/* Prints the documents READ[0..N) gave (clearing each), and the errors. Several documents are
 * one JSON array. Returns the exit status, or -1 (printed) when that array cannot be made. */
static int print_docs(const struct args *a, struct vs_cli_docs *read, size_t n) {
  int status = VS_EXIT_OK;
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += read[i].n;
  json_t *array = (n > 1 || total > 1) && !a->text ? json_array() : NULL;
  for (size_t i = 0; i < n; i++) {
    if (read[i].error) {
      fprintf(stderr, PROG ": %s\n", read[i].error);
      status = VS_EXIT_PARTIAL;
    }
    for (size_t j = 0; j < read[i].n; j++) {
      struct vs_feature *doc = read[i].docs[j];
      if (a->text) {
        print_text(doc);
      } else if (array) {
        json_array_append_new(array, vs_feature_to_json(doc));
      } else {
        char *s = vs_feature_dumps(doc, !a->compact);
        puts(s);
        free(s);
      }
    }
    vs_cli_docs_clear(&read[i]);
  }
  if (array) {
    int printed = vs_cli_print_json(array, a->compact, PROG);
    json_decref(array);
    if (printed < 0) return -1;
  }
  return status;
}

int vs_cmd_inspect(int argc, char **argv) {
  struct args a = {0};
  int rc = parse(argc, argv, &a);
  if (rc != 0) return rc > 0 ? VS_EXIT_OK : VS_EXIT_USAGE;
  size_t n_sources = (size_t)(argc - optind);
  if (vs_cli_refuse_unused_image_options(&a.read, argv + optind, n_sources, PROG))
    return VS_EXIT_USAGE;
  _cleanup_(vs_freep) struct vs_cli_docs *read = vs_xcalloc(n_sources, sizeof(*read));
  if (vs_cli_read_sources(&a.read, argv + optind, n_sources, read, PROG) < 0) return VS_EXIT_USAGE;
  int status = print_docs(&a, read, n_sources);
  if (status < 0) return VS_EXIT_PARTIAL; /* the output could not be made: printed */
  return vs_cli_flush(PROG) < 0 ? VS_EXIT_PARTIAL : status;
}
