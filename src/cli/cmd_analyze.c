/* vmscope analyze / similar / report: roles, anomaly and labels over many VMs, VMs ranked by
 * likeness to one (analytics.h), and the HTML drift report (report.h), which shows them. */
#include "cli.h"

#include "analytics.h"
#include "drift.h"
#include "fleetview.h"
#include "pool.h"
#include "population.h"
#include "report.h"
#include "strmap.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *out, bool similar) {
  if (similar)
    fputs("Usage: vmscope similar [OPTIONS] (VM | --setting KEY=VALUE...) (--pool DIR | "
          "SOURCE...)\n"
          "\n"
          "Rank every VM by likeness to VM (a name or id among the documents), or by how many of\n"
          "the given settings it has (\"which VMs look like the one that was compromised\").\n",
          out);
  else
    fputs("Usage: vmscope analyze [OPTIONS] (--pool DIR | SOURCE...)\n"
          "\n"
          "Group VMs into roles by what they are (their settings, packages, services, virtual\n"
          "hardware), without being told how many: MinHash signatures of each VM's informative\n"
          "settings (those neither unique to one VM nor shared by nearly all), locality-\n"
          "sensitive hashing and a similarity threshold. Each VM gets its role, its similarity\n"
          "to the role's medoid, an anomaly score in [0, 1] (1 - that similarity, or the\n"
          "change since its previous snapshot in the pool when larger) and, when some VMs are\n"
          "labelled, a predicted label with its probability (5 nearest labelled VMs).\n",
          out);
  fputs("\n"
        "A SOURCE is a saved feature document (.json, one or an array), a guest tree or a disk\n"
        "image. With --pool, each VM's newest document in the snapshot pool DIR.\n"
        "\n"
        "Options:\n"
        "  -p, --pool DIR          the snapshot pool (vmscope_snapshot's DataDir); repeatable,\n"
        "                          pools add up (VMs count once, by id)\n"
        "  -f, --format json|text  output format (default json)\n"
        "      --seed N            the hashing seed (default fixed: results repeat)\n"
        "      --threshold S       similarity that puts two VMs in one role (default 0.6)\n",
        out);
  if (similar)
    fputs("      --setting KEY=VALUE a setting the VMs are ranked by (repeatable)\n"
          "  -n, --top N             print the N most similar (default 20; 0: all)\n",
          out);
  else
    fputs("  -l, --labels FILE       known labels, one \"NAME LABEL\" per line (# comments)\n",
          out);
  fputs("  -q, --quiet             no progress line: on a terminal, standard error shows\n"
        "                          what the libguestfs appliance is doing while it reads\n"
        "                          an image the direct reader cannot (tens of seconds)\n"
        "  -h, --help              this help\n"
        "\n"
        "Exit status: 0 done, 1 some source failed (the others were analysed), 2 usage error.\n",
        out);
}

/* The VMs from --pool directories (repeatable: pools add up) and SOURCEs: one view, each VM once
 * (fleetview.h); QUIET: no progress line. Returns an exit status; VS_EXIT_USAGE means stop. */
static int load(struct vs_view *view, const char *const *pools, size_t n_pools, char **paths,
                size_t n, bool quiet, const char *prog) {
  int status = vs_cli_add_pools(view, pools, n_pools, prog);
  if (status == VS_EXIT_USAGE || n == 0) return status;
  struct vs_cli_read r = {.backend = VS_BACKEND_AUTO, .quiet = quiet};
  int rc = vs_cli_add_sources(view, &r, paths, n, NULL, NULL, prog);
  return rc > status ? rc : status;
}

/* Labels of the file at PATH (by VM name or id), or NULL (message printed). */
static struct vs_strmap *read_labels(const char *path, const char *prog) {
  struct vs_err err = {0};
  struct vs_strmap *m = NULL;
  if (vs_labels_load(path, &m, &err) < 0) {
    vs_cli_fail(&err, NULL, -1, prog);
    return NULL;
  }
  return m;
}

static void report_unused_labels(const struct vs_view *view, const struct vs_strmap *labels,
                                 const char *path, const char *prog) {
  size_t used = 0;
  const struct vs_vm_tokens *vms = vs_view_tokens(view);
  for (size_t i = 0; i < vs_view_count(view); i++)
    used += vms[i].label != NULL;
  if (used < vs_strmap_count(labels))
    fprintf(stderr, "%s: %s: %zu of its %zu names match no VM\n", prog, path,
            vs_strmap_count(labels) - used, vs_strmap_count(labels));
}

static void print_roles_text(const struct vs_view *view) {
  const struct vs_analysis *a = vs_view_analysis(view);
  const struct vs_vm_tokens *vms = vs_view_tokens(view);
  size_t n = vs_view_count(view);
  printf("%zu VMs, %zu roles\n", n, vs_analysis_role_count(a));
  for (size_t r = 0; r < vs_analysis_role_count(a); r++) {
    const struct vs_vm_tokens *m = &vms[vs_analysis_medoid(a, r)];
    printf("role %zu: %zu VMs, medoid %s\n", r, vs_analysis_role_size(a, r),
           m->name ? m->name : m->id);
  }
  for (size_t i = 0; i < n; i++) {
    double p;
    const char *l = vs_analysis_label(a, i, &p);
    printf("%-24s role %-3zu similarity %.3f anomaly %.3f", vms[i].name ? vms[i].name : "",
           vs_analysis_role(a, i), vs_analysis_similarity(a, i), vs_analysis_anomaly(a, i));
    if (l) printf("  label %s (%.2f)", l, p);
    putchar('\n');
  }
}

/* vmscope similar's ranking: by likeness to VM T, or (T < 0) to the settings. */
static int print_similar(const struct vs_view *view, long t, const char *const *settings,
                         size_t n_settings, bool text, size_t top, const char *prog) {
  const struct vs_analysis *a = vs_view_analysis(view);
  const struct vs_vm_tokens *vms = vs_view_tokens(view);
  size_t n = vs_view_count(view);
  _cleanup_(vs_freep) size_t *order = vs_xcalloc(n ? n : 1, sizeof(size_t));
  _cleanup_(vs_freep) double *sims = vs_xcalloc(n ? n : 1, sizeof(double));
  if (t >= 0) {
    vs_analysis_similar(a, (size_t)t, order, sims);
  } else {
    uint64_t q[VS_CLI_MAX_REPEAT];
    for (size_t k = 0; k < n_settings; k++) {
      const char *eq = strchr(settings[k], '=');
      _cleanup_(vs_freep) char *key = vs_xstrndup(settings[k], (size_t)(eq - settings[k]));
      q[k] = vs_token(key, eq + 1);
    }
    vs_analysis_similar_tokens(a, vms, q, n_settings, order, sims);
  }
  size_t shown = top == 0 || top > n ? n : top;
  json_t *list = json_array();
  for (size_t k = 0; k < shown; k++) {
    const struct vs_vm_tokens *v = &vms[order[k]];
    if (text)
      printf("%3zu  %.3f  %s (role %zu)\n", k + 1, sims[k], v->name ? v->name : v->id,
             vs_analysis_role(a, order[k]));
    else
      json_array_append_new(list, json_pack("{sIss?ss?sfsI}", "rank", (json_int_t)(k + 1), "id",
                                            v->id, "name", v->name, "similarity", sims[k], "role",
                                            (json_int_t)vs_analysis_role(a, order[k])));
  }
  int status = !text && vs_cli_print_json(list, false, prog) < 0 ? VS_EXIT_PARTIAL : VS_EXIT_OK;
  json_decref(list);
  return status;
}

/* analyze's and similar's command line. */
struct args {
  const char *pools[VS_CLI_MAX_REPEAT], *settings[VS_CLI_MAX_REPEAT];
  size_t n_pools, n_settings;
  const char *labels, *format, *seed, *threshold, *top; /* as given, once each */
  bool text, quiet;
  size_t top_n;
  struct vs_view_opts vo;
};

/* A whole number in [0, MAX] from ARG, or false. */
static bool whole(const char *arg, unsigned long long max, unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(arg, &end, 10);
  if (!*arg || *end || errno || arg[0] == '-' || v > max) return false;
  *out = v;
  return true;
}

/* The values of the options that take one; -1 (printed) for a bad one. */
static int convert_args(struct args *a, const char *prog) {
  unsigned long long v = 20;
  if (a->format && vs_cli_format_option(a->format, prog, &a->text) < 0) return -1;
  if (a->seed && !whole(a->seed, UINT64_MAX, &v)) {
    fprintf(stderr, "%s: --seed takes a number from 0 to 2^64-1, not \"%s\"\n", prog, a->seed);
    return -1;
  }
  if (a->seed) a->vo.roles.seed = v;
  if (a->threshold) {
    char *end;
    double t = strtod(a->threshold, &end);
    if (!*a->threshold || *end || !(t > 0 && t <= 1)) {
      fprintf(stderr, "%s: --threshold takes a similarity in (0, 1], not \"%s\"\n", prog,
              a->threshold);
      return -1;
    }
    a->vo.roles.threshold = t;
  }
  v = 20;
  if (a->top && !whole(a->top, SIZE_MAX, &v)) {
    fprintf(stderr, "%s: --top takes a count (0 for all), not \"%s\"\n", prog, a->top);
    return -1;
  }
  a->top_n = (size_t)v;
  for (size_t k = 0; k < a->n_settings; k++)
    if (!strchr(a->settings[k], '=') || a->settings[k][0] == '=') {
      fprintf(stderr, "%s: --setting takes KEY=VALUE, not \"%s\"\n", prog, a->settings[k]);
      return -1;
    }
  return 0;
}

/* Parses analyze's or similar's options into A: -1 usage error (printed), 1 --help, else 0. */
static int parse_args(int argc, char **argv, bool similar, struct args *a, const char *prog) {
  enum { OPT_SEED = VS_CLI_OPT_FIRST_FREE, OPT_THRESHOLD, OPT_SETTING };
  static const struct option opts[] = {{"pool", required_argument, NULL, 'p'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"labels", required_argument, NULL, 'l'},
                                       {"seed", required_argument, NULL, OPT_SEED},
                                       {"threshold", required_argument, NULL, OPT_THRESHOLD},
                                       {"setting", required_argument, NULL, OPT_SETTING},
                                       {"top", required_argument, NULL, 'n'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const struct vs_cli_once single[] = {{'f', "--format", &a->format},
                                       {OPT_SEED, "--seed", &a->seed},
                                       {OPT_THRESHOLD, "--threshold", &a->threshold},
                                       {similar ? 'n' : -1, "--top", &a->top},
                                       {similar ? -1 : 'l', "--labels", &a->labels}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":p:f:l:n:qh", opts, NULL)) != -1) {
    int taken = vs_cli_take_once(single, sizeof(single) / sizeof(single[0]), c, optarg, prog);
    if (taken < 0) return -1;
    if (taken) continue;
    if (c == 'p') {
      if (vs_cli_add_repeat(a->pools, &a->n_pools, optarg, "--pool", prog) < 0) return -1;
    } else if (c == OPT_SETTING && similar) {
      if (vs_cli_add_repeat(a->settings, &a->n_settings, optarg, "--setting", prog) < 0) return -1;
    } else if (c == 'q') {
      a->quiet = true;
    } else if (c == 'h') {
      usage(stdout, similar);
      return 1;
    } else {
      if (c == ':')
        fprintf(stderr, "%s: %s needs a value\n", prog, argv[optind - 1]);
      else
        fprintf(stderr, "%s: unknown option %s\n", prog, argv[optind - 1]);
      usage(stderr, similar);
      return -1;
    }
  }
  return convert_args(a, prog);
}

static int worse_of(int a, int b) {
  return a > b ? a : b;
}

/* analyze's output: the roles, as JSON or text. */
static int roles_of(const struct vs_view *view, bool text, const char *prog) {
  if (text) {
    print_roles_text(view);
    return VS_EXIT_OK;
  }
  json_t *j = vs_analysis_json(vs_view_analysis(view), vs_view_tokens(view));
  int status = vs_cli_print_json(j, false, prog) < 0 ? VS_EXIT_PARTIAL : VS_EXIT_OK;
  json_decref(j);
  return status;
}

/* similar's output: the VMs by likeness to TARGET, or to the settings, which some VM must have
 * (a key no VM has is a typo, not a ranking of zeros). */
static int similar_of(const struct vs_view *view, const char *target, const struct args *a,
                      const char *prog) {
  for (size_t k = 0; k < a->n_settings; k++) {
    const char *eq = strchr(a->settings[k], '=');
    _cleanup_(vs_freep) char *key = vs_xstrndup(a->settings[k], (size_t)(eq - a->settings[k]));
    if (vs_pop_key_index(vs_view_fleet(view), key) < 0) {
      fprintf(stderr, "%s: no VM has %s (see vmscope inspect for the keys)\n", prog, key);
      return VS_EXIT_USAGE;
    }
  }
  long t = target ? vs_view_find(view, target) : -1;
  if (target && t < 0) {
    fprintf(stderr, "%s: %s %s among the %zu VMs\n", prog, target,
            t == -2 ? "names more than one VM: give its id" : "is no VM", vs_view_count(view));
    return VS_EXIT_PARTIAL;
  }
  return print_similar(view, t, a->settings, a->n_settings, a->text, a->top_n, prog);
}

static int run(int argc, char **argv, bool similar) {
  const char *prog = similar ? "vmscope similar" : "vmscope analyze";
  struct args a = {0};
  int parsed = parse_args(argc, argv, similar, &a, prog);
  if (parsed != 0) return parsed > 0 ? VS_EXIT_OK : VS_EXIT_USAGE;
  const char **pools = a.pools, *labels = a.labels;
  size_t n_pools = a.n_pools, n_settings = a.n_settings;
  struct vs_view_opts vo = a.vo;
  const char *target = NULL;
  if (similar) {
    if (!n_settings && optind >= argc) {
      fprintf(stderr, "%s: give a VM or --setting KEY=VALUE\n", prog);
      return VS_EXIT_USAGE;
    }
    struct stat st;
    if (!n_settings)
      target = argv[optind++];
    else if (optind < argc && (n_pools || stat(argv[optind], &st) < 0)) {
      /* With a pool, or not a file: a VM's name besides the settings. */
      fprintf(stderr, "%s: give a VM or --setting KEY=VALUE, not both (\"%s\" with --setting)\n",
              prog, argv[optind]);
      return VS_EXIT_USAGE;
    }
  }
  if (!n_pools && optind >= argc) {
    fprintf(stderr, "%s: give --pool DIR or SOURCE...\n", prog);
    return VS_EXIT_USAGE;
  }
  _cleanup_(vs_strmap_freep) struct vs_strmap *label_map = NULL;
  if (labels && !(label_map = read_labels(labels, prog))) return VS_EXIT_USAGE;
  vo.labels = label_map;
  _cleanup_(vs_view_freep) struct vs_view *view = vs_view_new();
  int status = load(view, pools, n_pools, argv + optind, (size_t)(argc - optind), a.quiet, prog);
  if (status == VS_EXIT_USAGE) return status;
  if (vs_view_count(view) == 0) {
    fprintf(stderr, "%s: no VM to analyse\n", prog);
    return VS_EXIT_PARTIAL;
  }
  vs_view_prepare(view, &vo);
  if (label_map) report_unused_labels(view, label_map, labels, prog);
  status =
      worse_of(status, similar ? similar_of(view, target, &a, prog) : roles_of(view, a.text, prog));
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "%s: writing standard output failed\n", prog);
    return VS_EXIT_PARTIAL;
  }
  return status;
}

int vs_cmd_analyze(int argc, char **argv) {
  return run(argc, argv, false);
}

int vs_cmd_similar(int argc, char **argv) {
  return run(argc, argv, true);
}

/* ------------------------------------------------------------------------------- report */

static void report_usage(FILE *out) {
  fputs("Usage: vmscope report --html OUT.html [OPTIONS] (--pool DIR | --store URL | SOURCE...)\n"
        "\n"
        "Write one self-contained HTML page (inline CSS and SVG, nothing fetched): a VM x\n"
        "setting heat map of the top findings, the roles, each VM's findings with their value,\n"
        "majority and share, and, from a pool, what changed since each VM's previous snapshot.\n"
        "VMs are ranked against their role when it has at least 8 others, as vmscope_drift\n"
        "does, else against all the others.\n"
        "\n"
        "Options:\n"
        "  -o, --html OUT.html     the page to write\n"
        "  -p, --pool DIR          the snapshot pool (vmscope_snapshot's DataDir); repeatable,\n"
        "                          pools add up (VMs count once, by id)\n"
        "      --store URL         the whole fleet from the PostgreSQL fleet store\n"
        "                          (postgresql://...: every host's VMs, as vmscope_drift's\n"
        "                          FleetStore publishes them)\n"
        "      --password-file F   the store's password, on the file's first line\n"
        "      --ca-file F         the store's CA certificate: TLS, sslmode verify-full\n"
        "  -n, --top N             findings per VM (default 10; 0: all)\n"
        "      --title TEXT        the page's title\n"
        "      --force             replace OUT.html even when it is not a page vmscope\n"
        "                          wrote (never an input)\n"
        "  -q, --quiet             no progress line: on a terminal, standard error shows\n"
        "                          what the libguestfs appliance is doing while it reads\n"
        "                          an image the direct reader cannot (tens of seconds)\n"
        "  -h, --help              this help\n"
        "\n"
        "Exit status: 0 written, 1 some source failed (the page has the others), 2 usage error.\n",
        out);
}

/* The page for the VMs of VIEW, each ranked against its peer group. */
static char *report_html(const struct vs_view *view, const char *title, size_t top) {
  size_t n = vs_view_count(view);
  struct vs_report_vm *rv = vs_xcalloc(n ? n : 1, sizeof(*rv));
  struct vs_drift **drifts = vs_xcalloc(n ? n : 1, sizeof(*drifts));
  struct vs_diff **diffs = vs_xcalloc(n ? n : 1, sizeof(*diffs));
  for (size_t i = 0; i < n; i++) {
    const struct vs_feature *doc = vs_view_doc(view, i), *prev = vs_view_prev(view, i);
    drifts[i] = n > 1 ? vs_view_rank(view, i, NULL, NULL) : NULL;
    if (prev) diffs[i] = vs_drift_diff(prev, doc);
    rv[i] =
        (struct vs_report_vm){doc, drifts[i], diffs[i], prev ? vs_feature_taken_at(prev) : NULL};
  }
  struct vs_report r = {.title = title,
                        .vms = rv,
                        .n = n,
                        .roles = vs_view_analysis(view),
                        .top = top ? top : SIZE_MAX};
  char *html = vs_report_html(&r);
  for (size_t i = 0; i < n; i++) {
    vs_drift_free(drifts[i]);
    vs_diff_free(diffs[i]);
  }
  free(drifts);
  free(diffs);
  free(rv);
  return html;
}

/* Whether PATH is a page vmscope report wrote (its generator named in its first 4 KiB). */
static bool is_report(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return false;
  char head[4097];
  size_t n = fread(head, 1, sizeof(head) - 1, f);
  fclose(f);
  head[n] = '\0';
  return strstr(head, "<meta name=\"generator\" content=\"" VS_REPORT_GENERATOR "\">") != NULL;
}

int vs_cmd_report(int argc, char **argv) {
  const char *prog = "vmscope report";
  enum { OPT_TITLE = VS_CLI_OPT_FIRST_FREE, OPT_FORCE, OPT_STORE, OPT_PASSWORD_FILE, OPT_CA_FILE };
  static const struct option opts[] = {
      {"html", required_argument, NULL, 'o'},
      {"pool", required_argument, NULL, 'p'},
      {"store", required_argument, NULL, OPT_STORE},
      {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
      {"ca-file", required_argument, NULL, OPT_CA_FILE},
      {"top", required_argument, NULL, 'n'},
      {"title", required_argument, NULL, OPT_TITLE},
      {"force", no_argument, NULL, OPT_FORCE},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *out = NULL, *pools[VS_CLI_MAX_REPEAT], *title = NULL, *top_arg = NULL;
  const char *store = NULL, *password_file = NULL, *ca_file = NULL;
  bool force = false, quiet = false;
  size_t n_pools = 0;
  const struct vs_cli_once single[] = {{'o', "--html", &out},
                                       {'n', "--top", &top_arg},
                                       {OPT_TITLE, "--title", &title},
                                       {OPT_STORE, "--store", &store},
                                       {OPT_PASSWORD_FILE, "--password-file", &password_file},
                                       {OPT_CA_FILE, "--ca-file", &ca_file}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:p:n:qh", opts, NULL)) != -1) {
    int taken = vs_cli_take_once(single, sizeof(single) / sizeof(single[0]), c, optarg, prog);
    if (taken < 0) return VS_EXIT_USAGE;
    if (taken) continue;
    if (c == 'p') {
      if (vs_cli_add_repeat(pools, &n_pools, optarg, "--pool", prog) < 0) return VS_EXIT_USAGE;
    } else if (c == OPT_FORCE) {
      force = true;
    } else if (c == 'q') {
      quiet = true;
    } else if (c == 'h') {
      report_usage(stdout);
      return VS_EXIT_OK;
    } else {
      report_usage(stderr);
      return VS_EXIT_USAGE;
    }
  }
  unsigned long long top = 10;
  if (top_arg && !whole(top_arg, SIZE_MAX, &top)) {
    fprintf(stderr, "%s: --top takes a count of findings per VM (0 for all), not \"%s\"\n", prog,
            top_arg);
    return VS_EXIT_USAGE;
  }
  if (!out || (!n_pools && !store && optind >= argc)) {
    fprintf(stderr, "%s: give --html OUT.html and --pool DIR, --store URL or SOURCE...\n", prog);
    return VS_EXIT_USAGE;
  }
  if (!store && (password_file || ca_file)) {
    fprintf(stderr, "%s: --password-file and --ca-file are for --store\n", prog);
    return VS_EXIT_USAGE;
  }
  /* The page replaces a page vmscope wrote (or, with --force, any file), never an input: the
   * store's password and CA files are inputs too. */
  bool replace = force || is_report(out);
  const char *store_files[2];
  size_t n_store_files = 0;
  if (password_file) store_files[n_store_files++] = password_file;
  if (ca_file) store_files[n_store_files++] = ca_file;
  if (vs_cli_check_output(out, (char *const *)pools, n_pools, replace, prog) < 0 ||
      vs_cli_check_output(out, argv + optind, (size_t)(argc - optind), true, prog) < 0 ||
      vs_cli_check_output(out, (char *const *)store_files, n_store_files, true, prog) < 0)
    return VS_EXIT_USAGE;
  _cleanup_(vs_view_freep) struct vs_view *view = vs_view_new();
  int status = store ? vs_cli_add_store(view, store, password_file, ca_file, prog) : VS_EXIT_OK;
  if (status == VS_EXIT_USAGE) return status;
  int loaded = load(view, pools, n_pools, argv + optind, (size_t)(argc - optind), quiet, prog);
  if (loaded == VS_EXIT_USAGE) return loaded;
  if (loaded > status) status = loaded;
  if (vs_view_count(view) == 0) {
    fprintf(stderr, "%s: no VM to report on: nothing written\n", prog);
    return VS_EXIT_PARTIAL;
  }
  vs_view_prepare(view, NULL);
  _cleanup_(vs_freep) char *html = report_html(view, title, (size_t)top);
  struct vs_err err = {0};
  struct vs_newfile f = {.fd = -1};
  if (vs_newfile_open(&f, out, 0644, &err) < 0 ||
      vs_newfile_write(&f, html, strlen(html), &err) < 0 || vs_newfile_commit(&f, &err) < 0) {
    if (f.fd >= 0 || f.path) vs_newfile_abandon(&f);
    status = vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, prog);
  }
  return status;
}
