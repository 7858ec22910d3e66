/* vmscope patchset make: the clusters a patch changed, as a thin qcow2 layer on the base. */
#include "cli.h"

#include "patchset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "vmscope patchset"

static void usage(FILE *out) {
  fputs("Usage: vmscope patchset make --base BASE --patched PATCHED -o SET.qcow2 [OPTIONS]\n"
        "\n"
        "Compare BASE and PATCHED (raw or qcow2 disk images of one size) cluster by cluster\n"
        "and write SET.qcow2, a thin qcow2 layer whose backing file is BASE and which holds\n"
        "exactly the clusters that differ, and SET.qcow2.json, its manifest (BASE's identity,\n"
        "the changed ranges). When PATCHED is an overlay of BASE, its allocated clusters are\n"
        "taken without reading BASE.\n"
        "\n"
        "Options:\n"
        "  -b, --base BASE         the image the patch was applied to\n"
        "  -p, --patched PATCHED   the image after the patch\n"
        "  -o, --output SET        the layer to write (never written in place)\n"
        "      --cluster-size N    the layer's cluster size in bytes, 512..2097152, a power of\n"
        "                          two (default: PATCHED's, 64 KiB for raw)\n"
        "      --stats             print what was compared and how long it took\n"
        "  -h, --help              this help\n"
        "\n"
        "Exit status: 0 written, 1 failed, 2 usage error.\n",
        out);
}

int vs_cmd_patchset(int argc, char **argv) {
  enum { OPT_CS = VS_CLI_OPT_FIRST_FREE, OPT_STATS };
  static const struct option opts[] = {{"base", required_argument, NULL, 'b'},
                                       {"patched", required_argument, NULL, 'p'},
                                       {"output", required_argument, NULL, 'o'},
                                       {"cluster-size", required_argument, NULL, OPT_CS},
                                       {"stats", no_argument, NULL, OPT_STATS},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? VS_EXIT_USAGE : VS_EXIT_OK;
  }
  if (strcmp(argv[1], "make") != 0) {
    fprintf(stderr, PROG ": unknown action \"%s\" (this version has: make)\n", argv[1]);
    return VS_EXIT_USAGE;
  }
  const char *base = NULL, *patched = NULL, *out = NULL;
  unsigned bits = 0;
  bool stats = false;
  int c;
  optind = 2;
  while ((c = getopt_long(argc, argv, "b:p:o:h", opts, NULL)) != -1) {
    switch (c) {
    case 'b':
      base = optarg;
      break;
    case 'p':
      patched = optarg;
      break;
    case 'o':
      out = optarg;
      break;
    case OPT_CS: {
      char *end;
      unsigned long v = strtoul(optarg, &end, 10);
      bits = 0;
      while (bits < 22 && (1UL << bits) < v)
        bits++;
      if (*end || (1UL << bits) != v || bits < 9 || bits > 21) {
        fprintf(stderr, PROG ": --cluster-size takes a power of two in 512..2097152, not \"%s\"\n",
                optarg);
        return VS_EXIT_USAGE;
      }
      break;
    }
    case OPT_STATS:
      stats = true;
      break;
    case 'h':
      usage(stdout);
      return VS_EXIT_OK;
    default:
      usage(stderr);
      return VS_EXIT_USAGE;
    }
  }
  if (!base || !patched || !out || optind < argc) {
    fprintf(stderr, PROG ": make needs --base, --patched and -o, and nothing else\n");
    return VS_EXIT_USAGE;
  }
  struct vs_err err = {0};
  struct vs_patchset_stats st;
  if (vs_patchset_make(base, patched, out, bits, &st, &err) < 0) {
    fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_PARTIAL;
  }
  if (stats)
    fprintf(stderr,
            "%s: %llu clusters of %llu KiB: %llu changed, %llu now zero; %llu holes not read, "
            "%llu taken from the overlay; %.1f MiB read in %.3f s\n",
            out, (unsigned long long)st.clusters,
            (unsigned long long)(1ULL << st.cluster_bits) / 1024, (unsigned long long)st.changed,
            (unsigned long long)st.zeroed, (unsigned long long)st.skipped_holes,
            (unsigned long long)st.taken_from_overlay, (double)st.bytes_read / 1048576.0,
            st.seconds);
  return VS_EXIT_OK;
}
