/* vmscope snapshot: libvirt domains -> feature documents, as vmscope_snapshot takes them. */
#include "cli.h"

#include "pool.h"
#include "snapshot.h"
#include "virt.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PROG "vmscope snapshot"

static void usage(FILE *out) {
  fputs("Usage: vmscope snapshot [OPTIONS]\n"
        "\n"
        "Take a snapshot of libvirt domains: each domain's guest settings, read from its disks,\n"
        "and its virtual hardware (vm:) from its XML, as the vmscope_snapshot plugin does.\n"
        "Prints one document for one domain, a JSON array for several.\n"
        "\n"
        "Options:\n"
        "  -c, --connect URI       libvirt URI (default: libvirt's default)\n"
        "  -d, --domain GLOB|UUID  the domains to take, by name pattern or UUID (repeatable;\n"
        "                          default: all); one that matches no domain is an error\n"
        "      --ignore-selected   take every domain except those --domain names\n"
        "  -m, --mode readonly|backup\n"
        "                          readonly (default) reads the disks as they are, without\n"
        "                          locks; backup reads a point-in-time NBD export of a running\n"
        "                          domain's disks from a pull-mode backup job (qemu driver),\n"
        "                          freezing the guest's file systems when its agent answers\n"
        "      --backup-dir DIR    where backup jobs put their socket and scratch files\n"
        "                          (default /var/tmp; QEMU must be able to create files there)\n"
        "      --data-dir DIR      also write each document into the snapshot pool at DIR\n"
        "  -f, --format json|text  output format (default json)\n"
        "      --compact           JSON on one line\n",
        out);
  fputs(vs_cli_read_help, out);
  fputs("  -h, --help              this help\n"
        "\n"
        "Options that take a value may be given once, except --domain, --watch and\n"
        "--backing-dir, which add up. What would be ignored is refused: --ignore-selected\n"
        "without --domain, --backup-dir without --mode backup, --image-format (the formats\n"
        "come from the domain XML), --compact with --format text.\n"
        "\n"
        "Exit status: 0 ok, 1 some domain failed (the others are still printed) or a --domain\n"
        "matched none (nothing is taken), 2 usage.\n",
        out);
}

/* A domain is chosen by a --domain that is a glob of its name or its UUID (any case). */
static bool matches(const char *glob, const struct vs_domain *d) {
  return fnmatch(glob, d->name, 0) == 0 || strcasecmp(glob, d->uuid) == 0;
}

static bool is_selected(char *const *globs, size_t n, bool ignore, const struct vs_domain *d) {
  if (n == 0) return true;
  bool match = false;
  for (size_t i = 0; i < n && !match; i++)
    match = matches(globs[i], d);
  return match != ignore;
}

/* A --domain that names no domain is a typo or the wrong host, never "nothing to do": -1 (printed,
 * with the domains there are) when one matches none. */
static int refuse_unmatched(char *const *globs, size_t n_globs, const struct vs_domain *doms,
                            size_t n, const char *uri) {
  for (size_t g = 0; g < n_globs; g++) {
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
      found = matches(globs[g], &doms[i]);
    if (found) continue;
    struct vs_buf names = {0};
    for (size_t i = 0; i < n && i < 10; i++)
      vs_buf_addf(&names, "%s%s", i ? ", " : "", doms[i].name);
    if (n > 10) vs_buf_addf(&names, ", ... (%zu in all)", n);
    fprintf(stderr, PROG ": --domain \"%s\" matches no domain on %s (%s%s)\n", globs[g],
            uri ? uri : "libvirt's default URI", n ? "the domains: " : "it has none",
            n ? names.data : "");
    vs_buf_free(&names);
    return -1;
  }
  return 0;
}

int vs_cmd_snapshot(int argc, char **argv) {
  enum {
    OPT_IGNORE = VS_CLI_OPT_FIRST_FREE,
    OPT_BACKUP_DIR,
    OPT_DATA_DIR,
    OPT_COMPACT,
  };
  static const struct option opts[] = {{"connect", required_argument, NULL, 'c'},
                                       {"domain", required_argument, NULL, 'd'},
                                       {"ignore-selected", no_argument, NULL, OPT_IGNORE},
                                       {"mode", required_argument, NULL, 'm'},
                                       {"backup-dir", required_argument, NULL, OPT_BACKUP_DIR},
                                       {"data-dir", required_argument, NULL, OPT_DATA_DIR},
                                       {"format", required_argument, NULL, 'f'},
                                       {"compact", no_argument, NULL, OPT_COMPACT},
                                       {"help", no_argument, NULL, 'h'},
                                       VS_CLI_READ_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  struct vs_cli_read r = {0};
  const char *uri = NULL, *data_dir = NULL, *mode = NULL, *format = NULL;
  char *globs[VS_CLI_MAX_REPEAT];
  size_t n_globs = 0;
  bool ignore = false, text = false, compact = false;
  struct vs_snapshot_opts so = {0};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:d:m:f:h" VS_CLI_READ_SHORT, opts, NULL)) != -1) {
    int taken = vs_cli_read_option(&r, c, optarg, PROG);
    if (taken < 0) return VS_EXIT_USAGE;
    if (taken) continue;
    switch (c) {
    case 'c':
      if (vs_cli_set_once(&uri, optarg, "--connect", PROG) < 0) return VS_EXIT_USAGE;
      break;
    case 'd':
      if (n_globs == VS_CLI_MAX_REPEAT) {
        fprintf(stderr, PROG ": at most %d --domain options\n", VS_CLI_MAX_REPEAT);
        return VS_EXIT_USAGE;
      }
      globs[n_globs++] = optarg;
      break;
    case OPT_IGNORE:
      ignore = true;
      break;
    case 'm':
      if (vs_cli_set_once(&mode, optarg, "--mode", PROG) < 0) return VS_EXIT_USAGE;
      if (strcmp(optarg, "readonly") == 0)
        so.mode = VS_SNAPSHOT_READONLY;
      else if (strcmp(optarg, "backup") == 0)
        so.mode = VS_SNAPSHOT_BACKUP;
      else {
        fprintf(stderr, PROG ": --mode takes readonly or backup, not \"%s\"\n", optarg);
        return VS_EXIT_USAGE;
      }
      break;
    case OPT_BACKUP_DIR:
      if (vs_cli_set_once(&so.backup_dir, optarg, "--backup-dir", PROG) < 0) return VS_EXIT_USAGE;
      break;
    case OPT_DATA_DIR:
      if (vs_cli_set_once(&data_dir, optarg, "--data-dir", PROG) < 0) return VS_EXIT_USAGE;
      break;
    case 'f':
      if (vs_cli_set_once(&format, optarg, "--format", PROG) < 0 ||
          vs_cli_format_option(optarg, PROG, &text) < 0)
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
  if (optind < argc) {
    fprintf(stderr, PROG ": unexpected argument \"%s\" (domains are chosen with --domain)\n",
            argv[optind]);
    return VS_EXIT_USAGE;
  }
  /* What would be silently ignored is refused. */
  const char *unused = ignore && !n_globs ? "--ignore-selected needs --domain (it takes every "
                                            "domain except those --domain names)"
                       : so.backup_dir && so.mode != VS_SNAPSHOT_BACKUP
                           ? "--backup-dir is for --mode backup"
                       : r.image.format  ? "--image-format does not apply to snapshot: each "
                                           "disk's format comes from the domain XML"
                       : compact && text ? "--compact is for JSON output, not --format text"
                                         : NULL;
  if (unused) {
    fprintf(stderr, PROG ": %s\n", unused);
    return VS_EXIT_USAGE;
  }
  struct vs_err err = {0};
  if (data_dir && vs_pool_check(data_dir, &err) < 0) { /* before any snapshot is taken */
    fprintf(stderr, PROG ": --data-dir %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_USAGE;
  }
  _cleanup_(vs_watch_freep) struct vs_watch *watch =
      r.no_default_watch ? vs_watch_new_empty() : vs_watch_new_default();
  for (size_t i = 0; i < r.n_watch_files; i++)
    if (vs_watch_load_file(watch, r.watch_files[i], &err) < 0) {
      fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
      vs_err_clear(&err);
      return VS_EXIT_USAGE;
    }
  so.backend = r.backend;
  so.backing_dirs = r.backing_dirs;
  so.n_backing_dirs = r.image.n_backing_dirs;
  so.watch = watch;
  _cleanup_(vs_virt_closep) struct vs_virt *v =
      vs_virt_open(uri, so.mode == VS_SNAPSHOT_READONLY, &err);
  struct vs_domain *doms = NULL;
  size_t n = 0;
  if (!v || vs_virt_domains(v, &doms, &n, &err) < 0) {
    fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_PARTIAL;
  }
  if (refuse_unmatched(globs, n_globs, doms, n, vs_virt_uri(v)) < 0) {
    vs_domains_free(doms, n);
    return VS_EXIT_PARTIAL;
  }
  _cleanup_(vs_extractor_freep) struct vs_extractor *x = vs_extractor_new(watch, &err);
  int status = VS_EXIT_OK;
  json_t *array = json_array();
  size_t taken = 0;
  for (size_t i = 0; x && i < n; i++) {
    if (!is_selected(globs, n_globs, ignore, &doms[i])) continue;
    struct vs_snapshot_stats st;
    _cleanup_(vs_feature_freep) struct vs_feature *doc =
        vs_snapshot_domain(v, &doms[i], x, &so, (int64_t)time(NULL), &st, &err);
    if (!doc) {
      fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
      vs_err_clear(&err);
      status = VS_EXIT_PARTIAL;
      continue;
    }
    taken++;
    if (r.stats)
      fprintf(stderr, "%s: %.1f ms, backend %s%s%s, %zu settings\n", doms[i].name, st.seconds * 1e3,
              st.backend, st.backup ? ", from a backup job" : "",
              st.backup ? (st.quiesced ? " (quiesced)" : " (crash-consistent)") : "",
              vs_feature_count(doc));
    if (data_dir && vs_pool_write(data_dir, doc, NULL, &err) < 0) {
      fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
      vs_err_clear(&err);
      status = VS_EXIT_PARTIAL;
    }
    if (text) {
      size_t nk;
      const char **keys = vs_feature_keys(doc, &nk);
      printf("# %s (%s)\n", vs_feature_name(doc), vs_feature_id(doc));
      for (size_t k = 0; k < nk; k++)
        printf("%s = %s\n", keys[k], vs_feature_get(doc, keys[k]));
      free(keys);
    } else {
      json_array_append_new(array, vs_feature_to_json(doc));
    }
  }
  if (!x) {
    fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    status = VS_EXIT_PARTIAL;
  }
  if (!text && (taken || status == VS_EXIT_OK)) {
    json_t *out = taken == 1 ? json_array_get(array, 0) : array;
    vs_cli_print_json(out, compact, PROG);
  }
  json_decref(array);
  vs_domains_free(doms, n);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, PROG ": writing standard output failed\n");
    return VS_EXIT_PARTIAL;
  }
  return status;
}
