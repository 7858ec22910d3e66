/* vmscope drift: rank the settings that set a VM apart from its close peers (PeerPressure), over
 * the same fleet view (fleetview.h) the vmscope_drift plugin ranks; --fleet: the fleet's own
 * findings (fleetfind.h). */
#include "cli.h"

#include "drift.h"
#include "fleetfind.h"
#include "fleetview.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PROG "vmscope drift"
/* A finding at or above --fail-on. Above the usage and partial statuses: a script tells "the
 * fleet drifted" from "the command could not look". */
#define EXIT_FINDING 3

static void usage(FILE *out) {
  fprintf(out,
          "Usage: vmscope drift [OPTIONS] --target SOURCE SAMPLE...\n"
          "       vmscope drift [OPTIONS] --all SOURCE...\n"
          "       vmscope drift [OPTIONS] --pool DIR... [--target VM] [SOURCE...]\n"
          "       vmscope drift [OPTIONS] --fleet (--pool DIR... | SOURCE...)\n"
          "\n"
          "Rank the settings whose values set a VM apart from its peers (PeerPressure): for\n"
          "each key, N peers, c distinct values among them (plus one when the target's is\n"
          "unseen) and m peers sharing the target's value give K = c(m+1)/(N+c); findings are\n"
          "sorted by K. A SOURCE is a guest tree (directory), a disk image, or a saved feature\n"
          "document (.json, one document or an array of them). Peers are VMs, not files:\n"
          "documents of one VM (same id) count once, as its newest, and a VM is never its own\n"
          "peer (a target given among the samples is dropped from them, with a note).\n"
          "\n"
          "A VM's peers are its close peers: the VMs that differ from it in few settings\n"
          "(a close group). A VM with fewer than --min-role-peers close peers is unique: it is\n"
          "ranked against the whole fleet for information, and none of its findings alarm.\n"
          "Each finding has a kind: alone (no peer shares the value), shared (some do),\n"
          "group (a small group of VMs elsewhere has it: a team's tweak, see --fleet),\n"
          "rollout (a package newer than the peers', or a key moving through the fleet),\n"
          "source (a namespace, such as vm:, none of the peers has) or edit (a parsed file's\n"
          "digest). Only \"alone\" findings alarm. Their score is 1 - p, p the chance that a\n"
          "VM drawn like its peers stands out as much: alone among 2 agreeing close peers\n"
          "scores 0.67, among 4 0.80, among 9 0.90; among peers that all differ, 0.\n"
          "\n"
          "Options:\n"
          "  -t, --target SOURCE|VM  the VM to rank (with --pool: a VM's name or id in it)\n"
          "  -a, --all               rank every VM against the others (the default with --pool)\n"
          "  -p, --pool DIR          the snapshot pool (vmscope_snapshot's DataDir): each VM's\n"
          "                          newest document; repeatable, pools add up\n"
          "      --fleet             print the fleet's own findings instead of each VM's:\n"
          "                          groups of VMs sharing a value most others lack (a team's\n"
          "                          tweak, one line per group), rollouts with their share,\n"
          "                          and the unique VMs; not with --target\n"
          "      --peer-group role|fleet\n"
          "                          rank against the VM's close peers or the whole fleet\n"
          "                          (default role)\n"
          "      --min-role-peers N  a VM needs N close peers to be compared with them; with\n"
          "                          fewer it is unique (default %d)\n"
          "  -f, --format json|text  output format (default json)\n"
          "  -n, --top N             print the N most suspicious findings of each VM\n"
          "                          (default 20; 0 prints all)\n"
          "  -W, --waivers FILE      waivers, one per line: KEY-GLOB VM-GLOB EXPIRES REASON\n"
          "                          (EXPIRES is YYYY-MM-DD or -); waived findings are still\n"
          "                          printed, marked waived, and raise no alarm\n"
          "      --warn-score S      score from which an \"alone\" finding is a warning\n"
          "                          (default %.2f: alone among 2 agreeing close peers)\n"
          "      --fail-score S      score from which it is a failure (default %.2f: among 9)\n"
          "      --fail-on warning|failure\n"
          "                          exit 3 when a finding of that severity or worse is not\n"
          "                          waived (an alarm); not with --fleet\n"
          "  -q, --quiet             print nothing (for scripts, with --fail-on), not even\n"
          "                          the progress line shown on a terminal while the\n"
          "                          libguestfs appliance works\n"
          "      --compact           JSON on one line\n",
          VS_VIEW_MIN_ROLE_PEERS, VS_DRIFT_WARN_SCORE, VS_DRIFT_FAIL_SCORE);
  fputs(vs_cli_read_help, out);
  fputs("  -h, --help              this help\n"
        "\n"
        "Example: vmscope drift --fleet --format text --pool /var/lib/collectd/vmscope\n"
        "\n"
        "Exit status: 0 ok, 1 some source failed or could not be ranked (the rest is still\n"
        "printed), 2 usage error, 3 an alarm at or above --fail-on (and nothing failed).\n",
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

static bool parse_count(const char *arg, const char *opt, unsigned long *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(arg, &end, 10);
  if (errno || end == arg || *end || arg[0] == '-' || v > 1000000) {
    fprintf(stderr, PROG ": %s takes a count from 0 to 1000000, not \"%s\"\n", opt, arg);
    return false;
  }
  *out = v;
  return true;
}

/* "the value of db-01's kind", or of a VM with no close peers. */
static void add_role_of_value(struct vs_buf *b, const char *role) {
  if (strncmp(role, "a VM ", 5) == 0)
    vs_buf_addf(b, "; the value of %s", role);
  else
    vs_buf_addf(b, "; value of %s's kind", role);
}

/* Why a finding is what it is: its kind and the evidence ("alone among 4 close peers; p=0.20").
 * CLOSE: the peers are the VM's close group (else the fleet). */
static char *evidence(const struct vs_finding *f, bool close) {
  struct vs_buf b = {0};
  const char *peers = close ? "close peers" : "peers";
  bool differ = strcmp(f->majority, VS_ALL_DIFFER) == 0;
  switch (f->kind) {
  case VS_FINDING_ALONE:
    if (differ)
      vs_buf_addf(&b, "alone among %u %s that all differ", f->n, peers);
    else if (f->majority_count == f->n)
      vs_buf_addf(&b, "alone among %u %s; all have %s", f->n, peers, f->majority);
    else
      vs_buf_addf(&b, "alone among %u %s; %u have %s", f->n, peers, f->majority_count, f->majority);
    vs_buf_addf(&b, "; p=%.2f", f->p);
    if (f->role_of_value)
      add_role_of_value(&b, f->role_of_value);
    else if (f->elsewhere)
      vs_buf_addf(&b, "; %u other VM%s of the fleet ha%s it", f->elsewhere,
                  f->elsewhere == 1 ? "" : "s", f->elsewhere == 1 ? "s" : "ve");
    break;
  case VS_FINDING_SHARED:
    vs_buf_addf(&b, "shared with %u of %u %s", f->m, f->n, peers);
    if (!differ) vs_buf_addf(&b, "; %u have %s", f->majority_count, f->majority);
    break;
  case VS_FINDING_GROUP:
    vs_buf_addf(&b, "group: %u other VM%s ha%s it; the peers have %s (see --fleet)", f->elsewhere,
                f->elsewhere == 1 ? "" : "s", f->elsewhere == 1 ? "s" : "ve", f->majority);
    break;
  case VS_FINDING_ROLLOUT:
    vs_buf_addf(&b, "rollout: the peers have %s", f->majority);
    if (f->elsewhere)
      vs_buf_addf(&b, "; %u other VM%s ha%s it", f->elsewhere, f->elsewhere == 1 ? "" : "s",
                  f->elsewhere == 1 ? "s" : "ve");
    break;
  case VS_FINDING_SOURCE:
    vs_buf_addf(&b, "source: %zu key%s of a namespace %s", f->keys, f->keys == 1 ? "" : "s",
                strcmp(f->value, VS_ABSENT) == 0 ? "all the peers have and this VM lacks"
                                                 : "none of the peers has");
    break;
  case VS_FINDING_EDIT:
    vs_buf_addf(&b, "edit: the file's own settings show what changed");
    break;
  }
  if (f->about_key && f->kind != VS_FINDING_SOURCE)
    vs_buf_addf(&b, "; %zu keys, shown: %s", f->keys, f->about_key);
  vs_buf_add(&b, "", 0);
  return vs_buf_steal(&b);
}

static void print_text(const struct vs_drift *d, bool close, size_t top) {
  printf("# %s: %u samples, %zu findings, %zu alarms%s\n", d->target_name, d->samples,
         d->n_findings, d->alarms, d->unique ? "; no close peers: nothing alarms" : "");
  size_t n = top && top < d->n_findings ? top : d->n_findings;
  for (size_t i = 0; i < n; i++) {
    const struct vs_finding *f = &d->findings[i];
    _cleanup_(vs_freep) char *why = evidence(f, close);
    printf("%3zu  %.3f  %-7s  %-7s  %s = %s  (%s)%s%s%s\n", f->rank, f->score,
           vs_severity_name(f->severity), vs_finding_kind_name(f->kind), f->key, f->value, why,
           f->waived ? "  waived: " : "", f->waived ? f->waiver.reason : "",
           f->waiver.expired ? "  (waiver expired)" : "");
  }
}

/* The fleet's own findings as text: one line per group, per rollout, per unique VM. */
static void print_fleet_text(const struct vs_fleet_findings *f) {
  printf("# fleet: %u VMs, %zu group%s, %zu rollout%s, %zu unique\n", f->vms, f->n_groups,
         f->n_groups == 1 ? "" : "s", f->n_rollouts, f->n_rollouts == 1 ? "" : "s", f->n_unique);
  for (size_t i = 0; i < f->n_groups; i++) {
    _cleanup_(vs_freep) char *msg = vs_group_describe(&f->groups[i], f->vms);
    printf("group    %s\n", msg);
  }
  for (size_t i = 0; i < f->n_rollouts; i++) {
    const struct vs_rollout *r = &f->rollouts[i];
    printf("rollout  %s is %s on %u of %u VMs (%.0f%%), from %s%s\n", r->key, r->value, r->have,
           r->of, r->of ? 100.0 * r->have / r->of : 0.0, r->from,
           r->by_version ? "" : " (moved since their previous snapshots)");
  }
  for (size_t i = 0; i < f->n_unique; i++)
    printf("unique   %s: no close peers: nothing alarms\n", f->unique[i]);
}

struct options {
  const char *target, *waiver_file;
  const char *pools[VS_CLI_MAX_REPEAT];
  size_t n_pools;
  bool all, text, compact, quiet;
  bool fleet;         /* --fleet: the fleet's findings, not each VM's */
  bool target_source; /* --target is a SOURCE to read (else a VM of the pools) */
  unsigned long top;
  int fail_on; /* -1: none, else the least severity that fails */
  struct vs_drift_opts drift;
  struct vs_view_opts view;
  struct vs_cli_read read;
};

/* Everything the run prints goes through here: one report per target. */
struct output {
  const struct options *o;
  json_t *array; /* several targets: reports collected here */
  bool alarmed;  /* a finding at or above --fail-on */
};

static void emit(struct output *out, const struct vs_drift *d, bool close) {
  const struct options *o = out->o;
  for (size_t i = 0; o->fail_on >= 0 && i < d->n_findings; i++)
    if (!d->findings[i].waived && (int)d->findings[i].severity >= o->fail_on) out->alarmed = true;
  if (o->quiet) return;
  if (o->text) {
    print_text(d, close, o->top);
    return;
  }
  json_t *j = vs_drift_to_json(d, o->top);
  if (out->array) {
    json_array_append_new(out->array, j);
    return;
  }
  vs_cli_print_json(j, o->compact, PROG);
  json_decref(j);
}

/* The options that take one value, as given (converted by convert()). */
struct given {
  const char *format, *top, *group, *min_role, *warn, *fail, *fail_on;
};

/* Converts what GIVEN holds into O; -1 (printed) for a bad value. */
static int convert(const struct given *g, struct options *o) {
  unsigned long v;
  if (g->format && vs_cli_format_option(g->format, PROG, &o->text) < 0) return -1;
  if (g->top && !parse_count(g->top, "--top", &o->top)) return -1;
  if (g->group && vs_peer_group_parse(g->group, &o->view.peers) < 0) {
    fprintf(stderr, PROG ": --peer-group takes role or fleet, not \"%s\"\n", g->group);
    return -1;
  }
  if (g->min_role) {
    if (!parse_count(g->min_role, "--min-role-peers", &v)) return -1;
    if (v < 1) {
      fprintf(stderr, PROG ": --min-role-peers takes at least 1, not \"%s\"\n", g->min_role);
      return -1;
    }
    o->view.min_role_peers = v;
  }
  if (g->warn && !parse_score(g->warn, "--warn-score", &o->drift.warn_score)) return -1;
  if (g->fail && !parse_score(g->fail, "--fail-score", &o->drift.fail_score)) return -1;
  if (g->fail_on) {
    if (strcmp(g->fail_on, "warning") == 0)
      o->fail_on = VS_SEVERITY_WARNING;
    else if (strcmp(g->fail_on, "failure") == 0)
      o->fail_on = VS_SEVERITY_FAILURE;
    else {
      fprintf(stderr, PROG ": --fail-on takes warning or failure, not \"%s\"\n", g->fail_on);
      return -1;
    }
  }
  return 0;
}

/* What the options ask for, checked as a whole; -1 (printed) when they conflict. */
static int check(int argc, struct options *o) {
  if (o->fleet && o->target) {
    fprintf(stderr, PROG ": --fleet reports the whole fleet and --target one VM: give one of "
                         "them\n");
    return -1;
  }
  if (o->fleet && o->fail_on >= 0) {
    fprintf(stderr, PROG ": --fail-on is for alarms, and the fleet's findings (--fleet) are "
                         "never alarms\n");
    return -1;
  }
  if (o->fleet) o->all = true;
  if (o->n_pools) {
    if (!o->target) o->all = true;
  } else if (o->all == (o->target != NULL)) {
    fprintf(stderr, PROG ": give --target SOURCE with samples, --all SOURCE..., or --pool DIR\n");
    return -1;
  } else if (argc - optind < 1) {
    fprintf(stderr, PROG ": %s\n",
            o->all ? "--all needs documents to rank" : "no SAMPLE given to compare with");
    return -1;
  }
  struct stat st;
  o->target_source = o->target && (!o->n_pools || stat(o->target, &st) == 0);
  if (o->all && o->target) {
    fprintf(stderr, PROG ": --all ranks every VM and --target one: give one of them\n");
    return -1;
  }
  if (o->compact && (o->text || o->quiet)) {
    fprintf(stderr, PROG ": --compact is for JSON output, not %s\n",
            o->quiet ? "--quiet" : "--format text");
    return -1;
  }
  double warn = o->drift.warn_score ? o->drift.warn_score : VS_DRIFT_WARN_SCORE;
  double fail = o->drift.fail_score ? o->drift.fail_score : VS_DRIFT_FAIL_SCORE;
  if (fail < warn) {
    fprintf(stderr, PROG ": --fail-score %.3f is below --warn-score %.3f\n", fail, warn);
    return -1;
  }
  return 0;
}

/* Parses the command line into O; returns -1 (message printed) on a usage error, 1 for --help,
 * else 0 with optind at the first SOURCE. */
static int parse(int argc, char **argv, struct options *o) {
  enum {
    OPT_WARN = VS_CLI_OPT_FIRST_FREE,
    OPT_FAIL,
    OPT_COMPACT,
    OPT_PEER_GROUP,
    OPT_MIN_ROLE,
    OPT_FAIL_ON,
    OPT_FLEET
  };
  static const struct option opts[] = {{"target", required_argument, NULL, 't'},
                                       {"all", no_argument, NULL, 'a'},
                                       {"pool", required_argument, NULL, 'p'},
                                       {"fleet", no_argument, NULL, OPT_FLEET},
                                       {"peer-group", required_argument, NULL, OPT_PEER_GROUP},
                                       {"min-role-peers", required_argument, NULL, OPT_MIN_ROLE},
                                       {"format", required_argument, NULL, 'f'},
                                       {"top", required_argument, NULL, 'n'},
                                       {"waivers", required_argument, NULL, 'W'},
                                       {"warn-score", required_argument, NULL, OPT_WARN},
                                       {"fail-score", required_argument, NULL, OPT_FAIL},
                                       {"fail-on", required_argument, NULL, OPT_FAIL_ON},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"compact", no_argument, NULL, OPT_COMPACT},
                                       {"help", no_argument, NULL, 'h'},
                                       VS_CLI_READ_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  struct given g = {0};
  const struct vs_cli_once single[] = {{'t', "--target", &o->target},
                                       {'W', "--waivers", &o->waiver_file},
                                       {'f', "--format", &g.format},
                                       {'n', "--top", &g.top},
                                       {OPT_PEER_GROUP, "--peer-group", &g.group},
                                       {OPT_MIN_ROLE, "--min-role-peers", &g.min_role},
                                       {OPT_WARN, "--warn-score", &g.warn},
                                       {OPT_FAIL, "--fail-score", &g.fail},
                                       {OPT_FAIL_ON, "--fail-on", &g.fail_on}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "t:ap:f:n:W:qh" VS_CLI_READ_SHORT, opts, NULL)) != -1) {
    int taken = vs_cli_read_option(&o->read, c, optarg, PROG);
    if (taken == 0)
      taken = vs_cli_take_once(single, sizeof(single) / sizeof(single[0]), c, optarg, PROG);
    if (taken < 0) return -1;
    if (taken) continue;
    if (c == 'a') {
      o->all = true;
    } else if (c == 'p') {
      if (vs_cli_add_repeat(o->pools, &o->n_pools, optarg, "--pool", PROG) < 0) return -1;
    } else if (c == 'q') {
      o->quiet = o->read.quiet = true;
    } else if (c == OPT_COMPACT) {
      o->compact = true;
    } else if (c == OPT_FLEET) {
      o->fleet = true;
    } else if (c == 'h') {
      usage(stdout);
      return 1;
    } else {
      usage(stderr);
      return -1;
    }
  }
  if (convert(&g, o) < 0) return -1;
  return check(argc, o);
}

/* Reads the target SOURCE alone: its one document's id is *TARGET_ID, and the document goes
 * into VIEW first. */
static int read_target(const struct options *o, struct vs_view *view, char **target_id) {
  if (vs_cli_refuse_pool_source(o->target, PROG)) return VS_EXIT_USAGE;
  struct vs_cli_docs read = {0};
  char *path = (char *)o->target;
  if (vs_cli_read_sources(&o->read, &path, 1, &read, PROG) < 0) return VS_EXIT_USAGE;
  int status = VS_EXIT_OK;
  if (read.n != 1) {
    if (read.error)
      fprintf(stderr, PROG ": %s\n", read.error);
    else
      fprintf(stderr, PROG ": the target %s gave %zu documents; expected one\n", o->target, read.n);
    status = read.n ? VS_EXIT_USAGE : VS_EXIT_PARTIAL;
  } else {
    *target_id = vs_xstrdup(vs_feature_id(read.docs[0]));
    /* The same VM seen another way (its disk image, and its domain's documents in the pool)
     * has another id but its name: it is not its own peer either. */
    const char *name = vs_feature_name(read.docs[0]);
    for (size_t k = vs_view_count(view); name && k-- > 0;) { /* removal moves the last to k */
      const char *other = vs_feature_name(vs_view_doc(view, k));
      if (!other || strcmp(other, name) != 0) continue;
      fprintf(stderr,
              PROG ": note: the pool's VM %s (%s) has the target's name: taken as the target "
                   "itself, not its peer: left out\n",
              name, vs_feature_id(vs_view_doc(view, k)));
      vs_view_remove(view, k);
    }
    size_t dropped = vs_view_add_target(view, vs_steal(&read.docs[0]));
    if (dropped)
      fprintf(stderr,
              PROG ": note: %zu document(s) of the pool are the target itself (%s), not its "
                   "peers: left out\n",
              dropped, *target_id);
  }
  vs_cli_docs_clear(&read);
  return status;
}

/* The name of the target TARGET_ID in VIEW, or NULL. */
static const char *target_name(const struct vs_view *view, const char *target_id) {
  long t = target_id ? vs_view_find_id(view, target_id) : -1;
  return t >= 0 ? vs_feature_name(vs_view_doc(view, (size_t)t)) : NULL;
}

/* --fleet: the prepared VIEW's fleet findings; the exit status. */
static int print_fleet(const struct options *o, const struct vs_view *view) {
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *f = vs_fleet_find(view);
  if (o->quiet) return VS_EXIT_OK;
  if (o->text) {
    print_fleet_text(f);
  } else {
    json_t *j = vs_fleet_findings_json(f);
    int printed = vs_cli_print_json(j, o->compact, PROG);
    json_decref(j);
    if (printed < 0) return VS_EXIT_PARTIAL;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, PROG ": writing standard output failed\n");
    return VS_EXIT_PARTIAL;
  }
  return VS_EXIT_OK;
}

static int worse(int a, int b) {
  return a > b ? a : b;
}

/* An option for images only (--image-format, --backend, --backing-dir) with no image among the
 * target and the SAMPLES (read apart: judged together) would be ignored: true (message
 * printed). A pool given as a source is refused first, as what it is. A target not found under
 * --pool is taken for a VM's name; one that looks like a path or an NBD URI still counts as an
 * image here, so that its own error is the one the user sees. */
static bool refuse_unused_image_options(const struct options *o, char **samples, size_t n) {
  if (!vs_cli_image_option(&o->read, NULL)) return false;
  bool target_input =
      o->target_source || (o->target && (strchr(o->target, '/') || vs_image_is_nbd_uri(o->target)));
  _cleanup_(vs_freep) char **inputs = vs_xcalloc(n + 1, sizeof(char *));
  size_t n_inputs = 0;
  if (target_input) inputs[n_inputs++] = (char *)o->target;
  for (size_t i = 0; i < n; i++)
    inputs[n_inputs++] = samples[i];
  for (size_t i = 0; i < n_inputs; i++)
    if (vs_cli_refuse_pool_source(inputs[i], PROG)) return true;
  return vs_cli_refuse_unused_image_options(&o->read, inputs, n_inputs, PROG);
}

int vs_cmd_drift(int argc, char **argv) {
  struct options o = {.top = 20, .fail_on = -1, .drift.now = time(NULL)};
  int rc = parse(argc, argv, &o);
  if (rc != 0) return rc > 0 ? VS_EXIT_OK : VS_EXIT_USAGE;
  struct vs_err err = {0};
  _cleanup_(vs_waivers_freep) struct vs_waivers *waivers = NULL;
  if (o.waiver_file && !(waivers = vs_waivers_load(o.waiver_file, &err)))
    return vs_cli_fail(&err, NULL, VS_EXIT_USAGE, PROG);
  o.drift.waivers = waivers;
  if (refuse_unused_image_options(&o, argv + optind, (size_t)(argc - optind))) return VS_EXIT_USAGE;

  _cleanup_(vs_view_freep) struct vs_view *view = vs_view_new();
  _cleanup_(vs_freep) char *target_id = NULL;
  int status = vs_cli_add_pools(view, o.pools, o.n_pools, PROG);
  if (status == VS_EXIT_USAGE) return status;
  if (o.target_source) {
    int read = read_target(&o, view, &target_id);
    if (read != VS_EXIT_OK) return worse(status, read);
  }
  if (optind < argc)
    status = worse(status, vs_cli_add_sources(view, &o.read, argv + optind, (size_t)(argc - optind),
                                              target_id, target_name(view, target_id), PROG));
  if (status == VS_EXIT_USAGE) return status;
  vs_view_prepare(view, &o.view);

  size_t first = 0, end = vs_view_count(view);
  if (o.target) {
    long t = target_id ? vs_view_find_id(view, target_id) : vs_view_find(view, o.target);
    if (t < 0) {
      fprintf(stderr, PROG ": %s %s among the %zu VMs of the pool%s\n", o.target,
              t == -2 ? "names more than one VM: give its id" : "is no VM", end,
              o.n_pools > 1 ? "s" : "");
      return worse(status, VS_EXIT_PARTIAL);
    }
    first = (size_t)t;
    end = first + 1;
  }
  if (vs_view_count(view) < 2) {
    fprintf(stderr, PROG ": ranking needs at least two VMs; the sources gave %zu\n",
            vs_view_count(view));
    return worse(status, o.n_pools ? VS_EXIT_PARTIAL : VS_EXIT_USAGE);
  }
  if (o.fleet) return worse(status, print_fleet(&o, view));
  struct output out = {.o = &o};
  out.array = o.all && !o.text && !o.quiet ? json_array() : NULL;
  for (size_t i = first; i < end; i++) {
    _cleanup_(vs_drift_freep) struct vs_drift *d = vs_view_rank(view, i, &o.drift, &err);
    if (!d) {
      status = worse(status, vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG));
      continue;
    }
    emit(&out, d, vs_view_by_role(view, i));
  }
  if (out.array) {
    vs_cli_print_json(out.array, o.compact, PROG);
    json_decref(out.array);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, PROG ": writing standard output failed\n");
    return VS_EXIT_PARTIAL;
  }
  if (status == VS_EXIT_OK && out.alarmed) return EXIT_FINDING;
  return status;
}
