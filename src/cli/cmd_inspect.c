/* vmscope inspect: SOURCE... -> feature documents on standard output. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
  fputs("Usage: vmscope inspect [OPTIONS] SOURCE...\n"
        "\n"
        "Extract the feature document of each SOURCE: a guest's root file system as a\n"
        "directory on this host (a mounted guest, a container rootfs, a debootstrap tree),\n"
        "a guest disk image (raw or qcow2), or an NBD export (nbd://HOST/NAME or\n"
        "nbd+unix:///NAME?socket=PATH). One document is printed for one source, a\n"
        "JSON array for several.\n"
        "\n"
        "Options:\n"
        "  -f, --format json|text  output format (default json); text prints one\n"
        "                          \"key = value\" line per setting after a header\n"
        "      --compact           JSON on one line per document\n",
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

int vs_cmd_inspect(int argc, char **argv) {
  enum { OPT_COMPACT = VS_CLI_OPT_FIRST_FREE };
  static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                       {"compact", no_argument, NULL, OPT_COMPACT},
                                       {"help", no_argument, NULL, 'h'},
                                       VS_CLI_READ_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  bool text = false, compact = false;
  const char *format = NULL;
  struct vs_cli_read r = {0};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "f:h" VS_CLI_READ_SHORT, opts, NULL)) != -1) {
    int taken = vs_cli_read_option(&r, c, optarg, "vmscope inspect");
    if (taken < 0) return VS_EXIT_USAGE;
    if (taken) continue;
    switch (c) {
    case 'f':
      if (vs_cli_set_once(&format, optarg, "--format", "vmscope inspect") < 0 ||
          vs_cli_format_option(optarg, "vmscope inspect", &text) < 0)
        return VS_EXIT_USAGE;
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
  if (compact && text) {
    fprintf(stderr, "vmscope inspect: --compact is for JSON output, not --format text\n");
    return VS_EXIT_USAGE;
  }
  if (optind >= argc) {
    fprintf(stderr, "vmscope inspect: no SOURCE given\n");
    usage(stderr);
    return VS_EXIT_USAGE;
  }
  size_t n_sources = (size_t)(argc - optind);
  struct vs_cli_docs *read = vs_xcalloc(n_sources, sizeof(*read));
  if (vs_cli_read_sources(&r, argv + optind, n_sources, read, "vmscope inspect") < 0) {
    free(read);
    return VS_EXIT_USAGE;
  }
  int status = VS_EXIT_OK;
  size_t total = 0;
  for (size_t i = 0; i < n_sources; i++)
    total += read[i].n;
  json_t *array = (n_sources > 1 || total > 1) && !text ? json_array() : NULL;
  for (size_t i = 0; i < n_sources; i++) {
    if (read[i].error) {
      fprintf(stderr, "vmscope inspect: %s\n", read[i].error);
      status = VS_EXIT_PARTIAL;
    }
    for (size_t j = 0; j < read[i].n; j++) {
      struct vs_feature *doc = read[i].docs[j];
      if (text) {
        print_text(doc);
      } else if (array) {
        json_array_append_new(array, vs_feature_to_json(doc));
      } else {
        char *s = vs_feature_dumps(doc, !compact);
        puts(s);
        free(s);
      }
    }
    vs_cli_docs_clear(&read[i]);
  }
  free(read);
  if (array) {
    int printed = vs_cli_print_json(array, compact, "vmscope inspect");
    json_decref(array);
    if (printed < 0) return VS_EXIT_PARTIAL;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "vmscope inspect: writing standard output failed\n");
    return VS_EXIT_PARTIAL;
  }
  return status;
}
