/* vmscope drift: rank the settings that set a VM apart from its peers (PeerPressure). */
#include "cli.h"

#include "drift.h"
#include "population.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "vmscope drift"

static void usage(FILE *out) {
  fprintf(out,
          "Usage: vmscope drift [OPTIONS] --target SOURCE SAMPLE...\n"
          "       vmscope drift [OPTIONS] --all SOURCE...\n"
          "\n"
          "Rank the settings whose values set a VM apart from its peers (PeerPressure): for\n"
          "each key, N samples, c distinct values among them (plus one when the target's is\n"
          "unseen) and m samples sharing the target's value give K = c(m+1)/(N+c); findings\n"
          "are sorted by K, and score = 1 - K. A SOURCE is a guest tree (directory), a disk\n"
          "image, or a saved feature document (.json, one document or an array of them).\n"
          "\n"
          "Options:\n"
          "  -t, --target SOURCE     the VM to rank against the SAMPLE documents\n"
          "  -a, --all               rank every document against all the others\n"
          "  -f, --format json|text  output format (default json)\n"
          "  -n, --top N             print the N most suspicious findings of each VM\n"
          "                          (default 20; 0 prints all)\n"
          "  -W, --waivers FILE      waivers, one per line: KEY-GLOB VM-GLOB EXPIRES REASON\n"
          "                          (EXPIRES is YYYY-MM-DD or -); waived findings are still\n"
          "                          printed, marked waived, and raise no alarm\n"
          "      --warn-score S      score from which a finding is a warning (default %.2f)\n"
          "      --fail-score S      score from which a finding is a failure (default %.2f)\n"
          "      --compact           JSON on one line\n",
          VS_DRIFT_WARN_SCORE, VS_DRIFT_FAIL_SCORE);
  fputs(vs_cli_read_help, out);
  fputs("  -h, --help              this help\n"
        "\n"
        "Exit status: 0 ok, 1 some source failed or could not be ranked (the rest is still\n"
        "printed), 2 usage error.\n",
        out);
}

static bool parse_score(const char *arg, const char *opt, double *out) {
  char *end;
  errno = 0;
  double v = strtod(arg, &end);
  if (errno || end == arg || *end || !isfinite(v) || v <= 0 || v > 1) {
    fprintf(stderr, PROG ": %s takes a score in (0, 1], not \"%s\"\n", opt, arg);
    return false;
  }
  *out = v;
  return true;
}

static void print_text(const struct vs_drift *d, size_t top) {
  printf("# %s: %u samples, %zu findings, %zu alarms\n", d->target_name, d->samples, d->n_findings,
         d->alarms);
  size_t n = top && top < d->n_findings ? top : d->n_findings;
  for (size_t i = 0; i < n; i++) {
    const struct vs_finding *f = &d->findings[i];
    printf("%3zu  %.3f  %-7s  %s = %s  (peers: %s %u/%u; c=%u m=%u)%s%s%s\n", f->rank, f->score,
           vs_severity_name(f->severity), f->key, f->value, f->majority, f->majority_count, f->n,
           f->c, f->m, f->waived ? "  waived: " : "", f->waived ? f->waiver.reason : "",
           f->waiver.expired ? "  (waiver expired)" : "");
  }
}

/* Everything the run prints goes through here: one report per target. */
struct output {
  bool text, compact;
  size_t top;
  json_t *array; /* --all: reports collected here */
};

static void emit(struct output *o, const struct vs_drift *d) {
  if (o->text) {
    print_text(d, o->top);
    return;
  }
  json_t *j = vs_drift_to_json(d, o->top);
  if (o->array) {
    json_array_append_new(o->array, j);
    return;
  }
  vs_cli_print_json(j, o->compact, PROG);
  json_decref(j);
}

int vs_cmd_drift(int argc, char **argv) {
  enum { OPT_WARN = VS_CLI_OPT_FIRST_FREE, OPT_FAIL, OPT_COMPACT };
  static const struct option opts[] = {{"target", required_argument, NULL, 't'},
                                       {"all", no_argument, NULL, 'a'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"top", required_argument, NULL, 'n'},
                                       {"waivers", required_argument, NULL, 'W'},
                                       {"warn-score", required_argument, NULL, OPT_WARN},
                                       {"fail-score", required_argument, NULL, OPT_FAIL},
                                       {"compact", no_argument, NULL, OPT_COMPACT},
                                       {"help", no_argument, NULL, 'h'},
                                       VS_CLI_READ_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  struct vs_cli_read r = {0};
  struct output out = {.top = 20};
  struct vs_drift_opts dopts = {.now = time(NULL)};
  const char *target = NULL, *waiver_file = NULL;
  bool all = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "t:af:n:W:h" VS_CLI_READ_SHORT, opts, NULL)) != -1) {
    int taken = vs_cli_read_option(&r, c, optarg, PROG);
    if (taken < 0) return VS_EXIT_USAGE;
    if (taken) continue;
    switch (c) {
    case 't':
      target = optarg;
      break;
    case 'a':
      all = true;
      break;
    case 'f':
      if (vs_cli_format_option(optarg, PROG, &out.text) < 0) return VS_EXIT_USAGE;
      break;
    case 'n': {
      char *end;
      errno = 0;
      unsigned long v = strtoul(optarg, &end, 10);
      if (errno || end == optarg || *end || optarg[0] == '-') {
        fprintf(stderr, PROG ": --top takes a count (0 for all), not \"%s\"\n", optarg);
        return VS_EXIT_USAGE;
      }
      out.top = v;
      break;
    }
    case 'W':
      waiver_file = optarg;
      break;
    case OPT_WARN:
      if (!parse_score(optarg, "--warn-score", &dopts.warn_score)) return VS_EXIT_USAGE;
      break;
    case OPT_FAIL:
      if (!parse_score(optarg, "--fail-score", &dopts.fail_score)) return VS_EXIT_USAGE;
      break;
    case OPT_COMPACT:
      out.compact = true;
      break;
    case 'h':
      usage(stdout);
      return VS_EXIT_OK;
    default:
      usage(stderr);
      return VS_EXIT_USAGE;
    }
  }
  if (all == (target != NULL)) {
    fprintf(stderr, PROG ": give either --target SOURCE with samples, or --all\n");
    return VS_EXIT_USAGE;
  }
  double warn = dopts.warn_score ? dopts.warn_score : VS_DRIFT_WARN_SCORE;
  double fail = dopts.fail_score ? dopts.fail_score : VS_DRIFT_FAIL_SCORE;
  if (fail < warn) {
    fprintf(stderr, PROG ": --fail-score %.3f is below --warn-score %.3f\n", fail, warn);
    return VS_EXIT_USAGE;
  }
  size_t n_args = (size_t)(argc - optind) + (target ? 1 : 0);
  if (argc - optind < 1) {
    fprintf(stderr, PROG ": %s\n",
            all ? "--all needs documents to rank" : "no SAMPLE given to compare with");
    return VS_EXIT_USAGE;
  }
  struct vs_err err = {0};
  _cleanup_(vs_waivers_freep) struct vs_waivers *waivers = NULL;
  if (waiver_file && !(waivers = vs_waivers_load(waiver_file, &err))) {
    fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_USAGE;
  }
  dopts.waivers = waivers;

  /* The target comes first, then the samples. */
  char **paths = vs_xcalloc(n_args, sizeof(char *));
  size_t p = 0;
  if (target) paths[p++] = (char *)target;
  for (int i = optind; i < argc; i++)
    paths[p++] = argv[i];
  struct vs_cli_docs *read = vs_xcalloc(n_args, sizeof(*read));
  if (vs_cli_read_sources(&r, paths, n_args, read, PROG) < 0) {
    free(paths);
    free(read);
    return VS_EXIT_USAGE;
  }
  int status = VS_EXIT_OK;
  _cleanup_(vs_pop_freep) struct vs_pop *pop = vs_pop_new();
  for (size_t i = 0; i < n_args; i++) {
    if (read[i].error) {
      fprintf(stderr, PROG ": %s\n", read[i].error);
      status = VS_EXIT_PARTIAL;
    }
    for (size_t j = 0; j < read[i].n; j++)
      vs_pop_add(pop, read[i].docs[j]);
  }
  vs_pop_prepare(pop);
  if (all && vs_pop_docs(pop) < 2) {
    fprintf(stderr, PROG ": --all needs at least two documents; the sources gave %zu\n",
            vs_pop_docs(pop));
    if (status == VS_EXIT_OK) status = VS_EXIT_USAGE;
  } else if (target && read[0].n != 1) {
    fprintf(stderr, PROG ": the target %s gave %zu documents; expected one\n", target, read[0].n);
    status = read[0].n ? VS_EXIT_USAGE : VS_EXIT_PARTIAL;
  } else {
    out.array = all && !out.text ? json_array() : NULL;
    for (size_t i = 0; i < (all ? n_args : 1); i++) {
      for (size_t j = 0; j < read[i].n; j++) {
        _cleanup_(vs_drift_freep) struct vs_drift *d =
            vs_drift_rank(pop, read[i].docs[j], &dopts, &err);
        if (!d) {
          fprintf(stderr, PROG ": %s\n", vs_err_msg(&err));
          vs_err_clear(&err);
          status = VS_EXIT_PARTIAL;
          continue;
        }
        emit(&out, d);
      }
    }
    if (out.array) {
      vs_cli_print_json(out.array, out.compact, PROG);
      json_decref(out.array);
    }
  }
  for (size_t i = 0; i < n_args; i++)
    vs_cli_docs_clear(&read[i]);
  free(read);
  free(paths);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, PROG ": writing standard output failed\n");
    return VS_EXIT_PARTIAL;
  }
  return status;
}
