/* vmscope snapshot: libvirt domains -> feature documents, as vmscope_snapshot takes them. */
#include "cli.h"
#include "parse_cache.h"

#include "pool.h"
#include "snapshot.h"
#include "virt.h"

#include <fnmatch.h>
#include <inttypes.h>
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

/* The command line, parsed. */
struct args {
  struct vs_cli_read read;
  const char *uri, *data_dir, *mode, *format;
  const char *globs[VS_CLI_MAX_REPEAT];
  size_t n_globs;
  bool ignore, text, compact;
  struct vs_snapshot_opts so;
};

/* A domain is chosen by a --domain that is a glob of its name or its UUID (any case). */
static bool matches(const char *glob, const struct vs_domain *d) {
  return fnmatch(glob, d->name, 0) == 0 || strcasecmp(glob, d->uuid) == 0;
}

static bool is_selected(const struct args *a, const struct vs_domain *d) {
  if (a->n_globs == 0) return true;
  bool match = false;
  for (size_t i = 0; i < a->n_globs && !match; i++)
    match = matches(a->globs[i], d);
  return match != a->ignore;
}

/* A --domain that names no domain is a typo or the wrong host, never "nothing to do": -1 (printed,
 * with the domains there are) when one matches none. */
static int refuse_unmatched(const char *const *globs, size_t n_globs, const struct vs_domain *doms,
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

/* --mode ARG into A: -1 (printed) for one it does not know. */
static int parse_mode(struct args *a, const char *arg) {
  if (strcmp(arg, "readonly") == 0)
    a->so.mode = VS_SNAPSHOT_READONLY;
  else if (strcmp(arg, "backup") == 0)
    a->so.mode = VS_SNAPSHOT_BACKUP;
  else {
    fprintf(stderr, PROG ": --mode takes readonly or backup, not \"%s\"\n", arg);
    return -1;
  }
  return 0;
}

/* What would be silently ignored is refused: -1 (printed). */
static int refuse_unused(const struct args *a) {
  const char *unused = a->ignore && !a->n_globs ? "--ignore-selected needs --domain (it takes "
                                                  "every domain except those --domain names)"
                       : a->so.backup_dir && a->so.mode != VS_SNAPSHOT_BACKUP
                           ? "--backup-dir is for --mode backup"
                       : a->read.image.format  ? "--image-format does not apply to snapshot: each "
                                                 "disk's format comes from the domain XML"
                       : a->compact && a->text ? "--compact is for JSON output, not --format text"
                                               : NULL;
  if (!unused) return 0;
  fprintf(stderr, PROG ": %s\n", unused);
  return -1;
}

/* The command line into A: 1 help printed, -1 usage error (printed), 0 go on. */
static int parse(int argc, char **argv, struct args *a) {
  enum { OPT_IGNORE = VS_CLI_OPT_FIRST_FREE, OPT_BACKUP_DIR, OPT_DATA_DIR, OPT_COMPACT };
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
  const struct vs_cli_once single[] = {{'c', "--connect", &a->uri},
                                       {'m', "--mode", &a->mode},
                                       {OPT_BACKUP_DIR, "--backup-dir", &a->so.backup_dir},
                                       {OPT_DATA_DIR, "--data-dir", &a->data_dir},
                                       {'f', "--format", &a->format}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:d:m:f:h" VS_CLI_READ_SHORT, opts, NULL)) != -1) {
    int taken = vs_cli_read_option(&a->read, c, optarg, PROG);
    if (taken == 0)
      taken = vs_cli_take_once(single, sizeof(single) / sizeof(single[0]), c, optarg, PROG);
    if (taken < 0 || (c == 'm' && parse_mode(a, optarg) < 0) ||
        (c == 'f' && vs_cli_format_option(optarg, PROG, &a->text) < 0))
      return -1;
    if (taken) continue;
    if (c == 'd') {
      if (vs_cli_add_repeat(a->globs, &a->n_globs, optarg, "--domain", PROG) < 0) return -1;
    } else if (c == OPT_IGNORE) {
      a->ignore = true;
    } else if (c == OPT_COMPACT) {
      a->compact = true;
    } else if (c == 'h') {
      usage(stdout);
      return 1;
    } else {
      usage(stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, PROG ": unexpected argument \"%s\" (domains are chosen with --domain)\n",
            argv[optind]);
    return -1;
  }
  return refuse_unused(a);
}

/* What the snapshots of the chosen domains are printed into. */
struct output {
  const struct args *a;
  json_t *array; /* JSON output: the documents */
  size_t taken;
};

static void print_text(const struct vs_feature *doc) {
  size_t nk;
  const char **keys = vs_feature_keys(doc, &nk);
  printf("# %s (%s)\n", vs_feature_name(doc), vs_feature_id(doc));
  for (size_t k = 0; k < nk; k++)
    printf("%s = %s\n", keys[k], vs_feature_get(doc, keys[k]));
  free(keys);
}

/* Takes domain DOM: its document printed (text) or kept for the JSON output, written into the
 * pool with --data-dir. Returns an exit status. */
static int take(struct output *out, struct vs_virt *v, const struct vs_domain *dom,
                struct vs_extractor *x) {
  const struct args *a = out->a;
  struct vs_err err = {0};
  struct vs_snapshot_stats st;
  _cleanup_(vs_feature_freep) struct vs_feature *doc =
      vs_snapshot_domain(v, dom, x, &a->so, (int64_t)time(NULL), &st, &err);
  if (!doc) return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  out->taken++;
  if (a->read.stats) {
    char how[64] = "";
    if (st.backup && st.quiesced)
      snprintf(how, sizeof(how), " (quiesced: frozen %.1f ms)", st.frozen_seconds * 1e3);
    else if (st.backup)
      snprintf(how, sizeof(how), " (crash-consistent)");
    fprintf(stderr, "%s: %.1f ms, backend %s%s%s, %zu settings, %" PRIu64 " bytes read\n",
            dom->name, st.seconds * 1e3, st.backend, st.backup ? ", from a backup job" : "", how,
            vs_feature_count(doc), st.bytes_read);
  }
  int status = VS_EXIT_OK;
  if (a->data_dir && vs_pool_write(a->data_dir, doc, NULL, &err) < 0)
    status = vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  if (a->text)
    print_text(doc);
  else
    json_array_append_new(out->array, vs_feature_to_json(doc));
  return status;
}

/* Takes the chosen domains among DOMS[0..N) of V. Returns an exit status. */
static int take_all(const struct args *a, struct vs_virt *v, const struct vs_watch *watch,
                    const struct vs_domain *doms, size_t n) {
  struct vs_err err = {0};
  _cleanup_(vs_parse_cache_freep) struct vs_parse_cache *cache = NULL; /* outlives X */
  _cleanup_(vs_extractor_freep) struct vs_extractor *x = vs_extractor_new(watch, &err);
  if (!x) return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  _cleanup_(vs_regwatch_freep) struct vs_regwatch *regwatch = vs_cli_load_regwatch(&a->read, PROG);
  if (!regwatch) return VS_EXIT_USAGE;
  vs_extractor_set_regwatch(x, regwatch);
  if ((cache = vs_cli_open_parse_cache(&a->read, PROG))) vs_extractor_set_parse_cache(x, cache);
  struct output out = {.a = a, .array = json_array()};
  int status = VS_EXIT_OK;
  for (size_t i = 0; i < n; i++)
    if (is_selected(a, &doms[i]) && take(&out, v, &doms[i], x) != VS_EXIT_OK)
      status = VS_EXIT_PARTIAL;
  if (!a->text && (out.taken || status == VS_EXIT_OK))
    vs_cli_print_json(out.taken == 1 ? json_array_get(out.array, 0) : out.array, a->compact, PROG);
  json_decref(out.array);
  return status;
}

/* Takes the chosen domains of A's connection. Returns an exit status. */
static int run(struct args *a, const struct vs_watch *watch) {
  struct vs_err err = {0};
  a->so.backend = a->read.backend;
  a->so.read_xfs = a->read.image.read_xfs;
  a->so.backing_dirs = a->read.backing_dirs;
  a->so.n_backing_dirs = a->read.image.n_backing_dirs;
  a->so.watch = watch;
  _cleanup_(vs_virt_closep) struct vs_virt *v =
      vs_virt_open(a->uri, a->so.mode == VS_SNAPSHOT_READONLY, &err);
  struct vs_domain *doms = NULL;
  size_t n = 0;
  if (!v || vs_virt_domains(v, &doms, &n, &err) < 0)
    return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  int status = refuse_unmatched(a->globs, a->n_globs, doms, n, vs_virt_uri(v)) < 0
                   ? VS_EXIT_PARTIAL
                   : take_all(a, v, watch, doms, n);
  vs_domains_free(doms, n);
  return status;
}

int vs_cmd_snapshot(int argc, char **argv) {
  struct args a = {0};
  int rc = parse(argc, argv, &a);
  if (rc != 0) return rc > 0 ? VS_EXIT_OK : VS_EXIT_USAGE;
  struct vs_err err = {0};
  if (a.data_dir && vs_pool_check(a.data_dir, &err) < 0) /* before any snapshot is taken */
    return vs_cli_fail(&err, "--data-dir", VS_EXIT_USAGE, PROG);
  _cleanup_(vs_watch_freep) struct vs_watch *watch = vs_cli_load_watch(&a.read, PROG);
  if (!watch) return VS_EXIT_USAGE;
  int status = run(&a, watch);
  return vs_cli_flush(PROG) < 0 ? VS_EXIT_PARTIAL : status;
}
