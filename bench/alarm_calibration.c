/* alarm_calibration ROLES WORK [SCALE] [SEED] [SIZES]: whether drift's alarms mean the same
 * thing on 5 VMs and on 1,000 (issue 18; run by bench/drift-accuracy.sh): per fleet size, how
 * often one injected misconfiguration is ranked first and alarmed, how many VMs of clean
 * fleets alarm, and the group findings (fleetfind.h) and unique VMs of clean fleets.
 *
 * Everything is ranked as the product ranks with its default settings: the fleet's documents
 * in a fleet view (fleetview.h: PeerGroup role, close groups, MinRolePeers, WarningScore and
 * FailureScore at their defaults), the injected document in place of its VM's clean one, as
 * `vmscope drift --pool FLEET --target INJECTED` and vmscope_drift do.
 *
 * Fleets are made of real Debian 12 files (ROLES: bench/fleet-roles.sh's web, db and app trees,
 * each VM a hard-linked copy, fleetgen.h) with the natural variation of issue 18:
 * - roles of very different sizes: one role holds 55-85% of the VMs; in half of the fleets a
 *   VM is alone in its role;
 * - team tweaks: one or two settings (four at 200 VMs and more), each changed on a group of
 *   2-4 VMs, or 2-10% of a fleet of 50 and more, half of the time within one role;
 * - a partial rollout: an upgrade of one to three packages with a Debian security update, on
 *   10-60% of the VMs (the others have the version before);
 * - explicit defaults: a fifth of the VMs write one sshd_config directive out at its
 *   documented default;
 * - keys that differ on every VM: hostname, /etc/hosts line, machine-id, SSH host keys.
 * Each case injects one misconfiguration of fleetgen's seven kinds (the seventh the value of
 * another role) into a copy of one VM whose role has at least two other VMs that agree, and
 * ranks it among the rest of its fleet. "One host" is a fleet of 60 placed on hosts of 4-8
 * VMs at random, each host's VMs ranked alone (a host's collectd seeing only its own).
 *
 * SCALE (default 1) multiplies the number of fleets and cases; SIZES (default all) is a comma
 * list of the rows to run ("5,8,host"). Prints a table; exits 0 whatever the figures. */
#include "fleetfind.h"
#include "fleetgen.h"
#include "fleetview.h"
#include "strmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_SEED "20261202"
#define HOST_FLEET 60
#define HOST_MIN 4
#define HOST_MAX 8

static const char *const role_names[] = {"web", "db", "app"};
enum { N_ROLES = 3 };

/* A row of the table: fleets of N VMs, or (HOSTS) fleets of N placed on hosts. */
struct plan {
  const char *label;
  size_t n, fleets, cases_per_fleet; /* for hosts: cases per host */
  bool hosts;
};
static const struct plan plans[] = {{"5", 5, 40, 3, false},       {"8", 8, 25, 4, false},
                                    {"12", 12, 20, 5, false},     {"20", 20, 12, 6, false},
                                    {"50", 50, 5, 10, false},     {"200", 200, 2, 15, false},
                                    {"1000", 1000, 1, 12, false}, {"host", HOST_FLEET, 3, 2, true}};
#define N_PLANS (sizeof(plans) / sizeof(plans[0]))

struct tally {
  size_t fleets, cases, rank1, top3, alarmed;
  size_t role_cases, role_rank1, role_alarmed; /* another role's value */
  size_t clean_vms, clean_alarmed, skipped;
  size_t clean_fleets, groups, tweaks, unique; /* fleet findings of clean fleets */
  struct vs_strmap *causes;                    /* key -> VMs of clean fleets it alarmed on */
};

struct bench {
  struct fg_bench fg;
  double scale;
  size_t case_no;
};

struct fleet {
  size_t n, teams; /* VMs, team tweaks made */
  char *dir;
  char **dirs;
  size_t *role; /* index into role_names */
  struct vs_feature **docs;
};

/* Some VMs of a fleet: the whole fleet, or one host's. */
struct members {
  const struct fleet *f;
  size_t *idx;
  size_t n;
};

/* ------------------------------------------------------------------------------- fleets */

static void shuffle(struct fg_rng *r, size_t *a, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = fg_rnd(r, (uint32_t)i), t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

static size_t *identity(size_t n) {
  size_t *a = vs_xmalloc((n ? n : 1) * sizeof(size_t));
  for (size_t i = 0; i < n; i++)
    a[i] = i;
  return a;
}

static double uniform(struct fg_rng *r, double lo, double hi) {
  return lo + (hi - lo) * fg_rnd(r, 1000001) / 1e6;
}

/* Role sizes: one big role (55-85%), maybe a VM alone in its role, the rest the third role. */
static void plan_roles(struct fg_rng *r, size_t n, size_t *role) {
  size_t order[N_ROLES] = {0, 1, 2};
  shuffle(r, order, N_ROLES);
  size_t lone = fg_chance(r, 0.5) ? 1 : 0;
  size_t big = (size_t)ceil((double)(n - lone) * uniform(r, 0.55, 0.85));
  if (big < 3) big = 3;
  if (big > n - lone - 1) big = n - lone - 1; /* the third role has a VM */
  for (size_t i = 0; i < n; i++)
    role[i] = order[i < big ? 0 : i < n - lone ? 1 : 2];
  shuffle(r, role, n);
}

/* The rollout: BATCH's packages upgraded on a share of 10-60% of the VMs; LAGS[i] says VM i
 * has the version before. */
static size_t plan_rollout(struct bench *b, size_t n, const char *batch[3], bool *lags) {
  size_t n_batch = b->fg.n_lag ? 1 + fg_rnd(&b->fg.r, 3) : 0;
  for (size_t k = 0; k < n_batch; k++)
    batch[k] = b->fg.lag_pkgs[fg_rnd(&b->fg.r, (uint32_t)b->fg.n_lag)];
  size_t upgraded = (size_t)lround((double)n * uniform(&b->fg.r, 0.10, 0.60));
  _cleanup_(vs_freep) size_t *order = identity(n);
  shuffle(&b->fg.r, order, n);
  for (size_t i = 0; i < n; i++)
    lags[order[i]] = i >= upgraded;
  return n_batch;
}

static void make_vm(struct bench *b, struct fleet *f, size_t i, const char *batch[3],
                    size_t n_batch, bool lags) {
  const char *role = role_names[f->role[i]];
  char name[64];
  snprintf(name, sizeof(name), "%s-%04zu", role, i);
  f->dirs[i] = fg_path(f->dir, name);
  fg_vm_base(b->fg.roles, role, f->dirs[i], name, &b->fg.r);
  fg_own_host_keys(f->dirs[i], &b->fg.r);
  for (size_t k = 0; lags && k < n_batch; k++)
    free(fg_set_version(f->dirs[i], batch[k], fg_older_version));
  if (fg_chance(&b->fg.r, 0.2)) fg_write_out_default(f->dirs[i], &b->fg.r);
}

/* A team's tweak on a small group: 2-4 VMs, or 2-10% of a fleet of 50 and more; half of the
 * time the group is within one role (the team's service), when that role is big enough. */
static void team_tweak(struct bench *b, struct fleet *f, uint32_t which) {
  size_t size = f->n >= 50 ? (size_t)lround((double)f->n * uniform(&b->fg.r, 0.02, 0.10))
                           : 2 + fg_rnd(&b->fg.r, 3);
  if (size < 2) size = 2;
  if (size > f->n / 2) size = f->n / 2 < 2 ? 2 : f->n / 2;
  size_t role = f->role[fg_rnd(&b->fg.r, (uint32_t)f->n)];
  bool in_role = fg_chance(&b->fg.r, 0.5);
  _cleanup_(vs_freep) size_t *order = identity(f->n);
  shuffle(&b->fg.r, order, f->n);
  size_t in = 0, members = 0;
  for (size_t i = 0; i < f->n; i++)
    in += f->role[i] == role;
  in_role = in_role && in >= size + 2;
  for (size_t k = 0; k < f->n && members < size; k++)
    if (!in_role || f->role[order[k]] == role) {
      fg_tweak(f->dirs[order[k]], which);
      members++;
    }
}

static void make_fleet(struct bench *b, size_t n, size_t number, struct fleet *f) {
  *f = (struct fleet){.n = n,
                      .dirs = vs_xcalloc(n, sizeof(char *)),
                      .role = vs_xcalloc(n, sizeof(size_t)),
                      .docs = vs_xcalloc(n, sizeof(struct vs_feature *))};
  _cleanup_(vs_freep) char *name = vs_xasprintf("fleet-%zu", number);
  f->dir = fg_fresh_dir(b->fg.work, name);
  plan_roles(&b->fg.r, n, f->role);
  const char *batch[3];
  _cleanup_(vs_freep) bool *lags = vs_xcalloc(n, sizeof(bool));
  size_t n_batch = plan_rollout(b, n, batch, lags);
  for (size_t i = 0; i < n; i++)
    make_vm(b, f, i, batch, n_batch, lags[i]);
  size_t teams = n >= 200 ? 4 : 1 + fg_chance(&b->fg.r, 0.5);
  size_t tweaks[FG_TWEAKS];
  for (size_t k = 0; k < FG_TWEAKS; k++)
    tweaks[k] = k;
  shuffle(&b->fg.r, tweaks, FG_TWEAKS);
  for (size_t k = 0; k < teams; k++)
    team_tweak(b, f, (uint32_t)tweaks[k]);
  f->teams = teams;
  for (size_t i = 0; i < n; i++)
    f->docs[i] = fg_extract(b->fg.x, f->dirs[i], strrchr(f->dirs[i], '/') + 1);
}

static void free_fleet(struct fleet *f) {
  for (size_t i = 0; i < f->n; i++) {
    vs_feature_free(f->docs[i]);
    free(f->dirs[i]);
  }
  free(f->docs);
  free(f->dirs);
  free(f->role);
  fg_remove_tree(f->dir);
  free(f->dir);
}

/* ---------------------------------------------------------------------------- measuring */

/* M's documents in a view with the default settings; TARGET, when given, takes the place of
 * its VM's document. */
static struct vs_view *view_of(const struct members *m, struct vs_feature *target) {
  return fg_view(m->f->docs, m->idx, m->n, fg_copy, &(struct vs_view_opts){0}, target);
}

static void count_key(struct vs_strmap *causes, const char *key) {
  uintptr_t c = (uintptr_t)vs_strmap_get(causes, key);
  vs_strmap_put(causes, key, (void *)(c + 1));
}

/* Every VM of M ranked against its peers: those with an alarm are counted, and their keys; and
 * the fleet findings (groups, VMs with no close peers). */
static void measure_clean(const struct members *m, struct tally *t) {
  _cleanup_(vs_view_freep) struct vs_view *v = view_of(m, NULL);
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *ff = vs_fleet_find(v);
  t->clean_fleets++;
  t->groups += ff->n_groups;
  for (size_t k = 0; getenv("VS_CALIBRATION_VERBOSE") && k < ff->n_groups; k++) {
    _cleanup_(vs_freep) char *msg = vs_group_describe(&ff->groups[k], ff->vms);
    fprintf(stderr, "# group in a clean fleet of %zu: %s\n", m->n, msg);
  }
  t->unique += ff->n_unique;
  if (m->n == m->f->n) t->tweaks += m->f->teams;
  for (size_t i = 0; i < vs_view_count(v); i++) {
    _cleanup_(vs_drift_freep) struct vs_drift *d = fg_rank(v, i);
    t->clean_vms++;
    if (!d->alarms) continue;
    t->clean_alarmed++;
    for (size_t k = 0; k < d->n_findings; k++)
      if (d->findings[k].severity >= VS_SEVERITY_WARNING && !d->findings[k].waived)
        count_key(t->causes, d->findings[k].key);
  }
}

/* A VM of M whose role has at least two others in M (peers that can agree), or -1. */
static long pick_target(struct fg_rng *r, const struct members *m) {
  _cleanup_(vs_freep) size_t *order = identity(m->n);
  shuffle(r, order, m->n);
  for (size_t k = 0; k < m->n; k++) {
    size_t role = m->f->role[m->idx[order[k]]], mates = 0;
    for (size_t i = 0; i < m->n; i++)
      mates += m->f->role[m->idx[i]] == role;
    if (mates >= 3) return (long)m->idx[order[k]];
  }
  return -1;
}

static void count_case(struct tally *t, enum fg_inj kind, size_t rank, bool alarm) {
  t->cases++;
  t->rank1 += rank == 1;
  t->top3 += rank >= 1 && rank <= 3;
  t->alarmed += alarm;
  if (kind != FG_INJ_ROLE) return;
  t->role_cases++;
  t->role_rank1 += rank == 1;
  t->role_alarmed += alarm;
}

/* Injects the next kind into a copy of one VM of M and ranks it among M. */
static void run_case(struct bench *b, const struct members *m, struct tally *t) {
  enum fg_inj kind = (enum fg_inj)(b->case_no++ % FG_N_INJ);
  long at = pick_target(&b->fg.r, m);
  if (at < 0) {
    t->skipped++;
    return;
  }
  const struct fleet *f = m->f;
  size_t target = (size_t)at;
  _cleanup_(vs_freep) char *what = NULL;
  _cleanup_(vs_diff_freep) struct vs_diff *diff = NULL;
  _cleanup_(vs_feature_freep) struct vs_feature *bad =
      fg_injected(&b->fg, f->dir, f->dirs[target], f->docs[target], kind,
                  role_names[f->role[target]], &what, &diff);
  if (!bad) {
    t->skipped++;
    return;
  }
  _cleanup_(vs_view_freep) struct vs_view *v = view_of(m, fg_copy(bad));
  long i = vs_view_find_id(v, vs_feature_id(bad));
  if (i < 0) fg_die("the injected %s is not in its fleet's view", vs_feature_name(bad));
  _cleanup_(vs_drift_freep) struct vs_drift *d = fg_rank(v, (size_t)i);
  bool alarm;
  size_t rank = fg_injected_rank(d, diff, &alarm);
  count_case(t, kind, rank, alarm);
  if (getenv("VS_CALIBRATION_VERBOSE") && (rank != 1 || !alarm))
    fprintf(stderr,
            "# %zu VMs: %s on %s (%u peers%s): rank %zu, %s; top: %s (%.3f, %s, %u elsewhere)\n",
            m->n, what, vs_feature_name(bad), d->samples, d->unique ? ", unique" : "", rank,
            alarm ? "alarmed" : "not alarmed", d->n_findings ? d->findings[0].key : "-",
            d->n_findings ? d->findings[0].score : 0.0,
            d->n_findings ? vs_finding_kind_name(d->findings[0].kind) : "-",
            d->n_findings ? d->findings[0].elsewhere : 0);
}

static void measure(struct bench *b, const struct members *m, size_t cases, struct tally *t) {
  measure_clean(m, t);
  for (size_t c = 0; c < cases; c++)
    run_case(b, m, t);
}

/* The fleet placed on hosts of HOST_MIN-HOST_MAX VMs at random, each host measured alone. */
static void measure_hosts(struct bench *b, const struct fleet *f, size_t cases, struct tally *t) {
  _cleanup_(vs_freep) size_t *order = identity(f->n);
  shuffle(&b->fg.r, order, f->n);
  for (size_t first = 0; first < f->n;) {
    size_t left = f->n - first, size = HOST_MIN + fg_rnd(&b->fg.r, HOST_MAX - HOST_MIN + 1);
    if (left <= HOST_MAX)
      size = left;
    else if (left - size < HOST_MIN) /* the last host is not smaller than HOST_MIN */
      size = left - HOST_MIN;
    struct members m = {.f = f, .idx = order + first, .n = size};
    measure(b, &m, cases, t);
    first += size;
  }
}

static size_t scaled(size_t n, double scale) {
  long v = lround((double)n * scale);
  return v < 1 ? 1 : (size_t)v;
}

/* Each row has its own random stream from the seed, so that a row run alone (SIZES) gives
 * the figures it has in the whole table. */
static void run_plan(struct bench *b, const struct plan *p, size_t number, struct tally *t) {
  b->fg.r.s = (strtoull(b->fg.seed, NULL, 10) + 1) * 0x9E3779B97F4A7C15ULL + number;
  if (!b->fg.r.s) b->fg.r.s = 1;
  b->case_no = 0;
  size_t fleets = scaled(p->fleets, b->scale);
  size_t cases = p->hosts ? p->cases_per_fleet : scaled(p->cases_per_fleet, b->scale);
  if (cases < 2) cases = 2;
  for (size_t k = 0; k < fleets; k++) {
    struct fleet f;
    make_fleet(b, p->n, number * 1000 + k, &f);
    if (p->hosts) {
      measure_hosts(b, &f, cases, t);
    } else {
      _cleanup_(vs_freep) size_t *all = identity(f.n);
      measure(b, &(struct members){.f = &f, .idx = all, .n = f.n}, cases, t);
    }
    free_fleet(&f);
    t->fleets++;
  }
}

/* ------------------------------------------------------------------------------- output */

/* SECS: wall and CPU seconds (other work on the machine stretches the first). */
static void print_row(const struct plan *p, const struct tally *t, const double secs[2]) {
  char label[64];
  if (p->hosts)
    snprintf(label, sizeof(label), "one host (%d-%d of %zu)", HOST_MIN, HOST_MAX, p->n);
  else
    snprintf(label, sizeof(label), "%zu", p->n);
  char tweaks[64] = "";
  if (t->tweaks) snprintf(tweaks, sizeof(tweaks), " (%zu tweaks made)", t->tweaks);
  printf("| %s | %zu | %zu | %.0f%% | %.0f%% | %.0f%% | %.0f%% / %.0f%% of %zu | %.1f%% of %zu | "
         "%zu in %zu fleets%s; %zu unique VMs | %.0f s (CPU %.0f s) |\n",
         label, t->fleets, t->cases, fg_pct(t->rank1, t->cases), fg_pct(t->top3, t->cases),
         fg_pct(t->alarmed, t->cases), fg_pct(t->role_rank1, t->role_cases),
         fg_pct(t->role_alarmed, t->role_cases), t->role_cases,
         fg_pct(t->clean_alarmed, t->clean_vms), t->clean_vms, t->groups, t->clean_fleets, tweaks,
         t->unique, secs[0], secs[1]);
}

struct cause {
  const char *key;
  size_t count;
};

static int by_count(const void *a, const void *b) {
  const struct cause *x = a, *y = b;
  return x->count != y->count ? (x->count < y->count ? 1 : -1) : strcmp(x->key, y->key);
}

/* The keys that alarmed most on clean fleets, most first (at most 5). */
static void print_causes(const struct plan *p, const struct tally *t) {
  size_t n;
  _cleanup_(vs_freep) const char **keys = vs_strmap_sorted_keys(t->causes, &n);
  _cleanup_(vs_freep) struct cause *causes = vs_xcalloc(n ? n : 1, sizeof(*causes));
  for (size_t i = 0; i < n; i++)
    causes[i] = (struct cause){keys[i], (size_t)(uintptr_t)vs_strmap_get(t->causes, keys[i])};
  qsort(causes, n, sizeof(*causes), by_count);
  printf("- %s%s: %zu VMs of clean fleets alarmed; cases skipped %zu; top alarm keys:",
         p->hosts ? "one host" : p->label, p->hosts ? "" : " VMs", t->clean_alarmed, t->skipped);
  for (size_t i = 0; i < 5 && i < n; i++)
    printf(" %s (%zu)", causes[i].key, causes[i].count);
  printf("%s\n", n ? "" : " none");
}

static void print_header(const struct bench *b, const char *sizes) {
  printf("drift accuracy by fleet size: default settings (PeerGroup %s, MinRolePeers %d, "
         "WarningScore %.2f, "
         "FailureScore %.2f), seed %s, scale %g\n",
         vs_peer_group_name(VS_PEERS_ROLE), VS_VIEW_MIN_ROLE_PEERS, VS_DRIFT_WARN_SCORE,
         VS_DRIFT_FAIL_SCORE, b->fg.seed, b->scale);
  printf("command: bash bench/drift-accuracy.sh %g %s%s%s\n\n", b->scale, b->fg.seed,
         sizes ? " " : "", sizes ? sizes : "");
  printf("| fleet size | fleets | cases | injected setting ranked 1st | top 3 | injected setting "
         "alarmed | another role's value: ranked 1st / alarmed | VMs of clean fleets alarmed | "
         "group findings on clean fleets | time |\n|---|---|---|---|---|---|---|---|---|---|\n");
}

/* ---------------------------------------------------------------------------------- main */

/* Whether row P is in the comma list SIZES (NULL: every row). */
static bool wanted(const char *sizes, const struct plan *p) {
  if (!sizes) return true;
  size_t len = strlen(p->label);
  for (const char *s = sizes; *s; s += strcspn(s, ",") + (s[strcspn(s, ",")] == ',')) {
    if (strncmp(s, p->label, len) == 0 && (s[len] == ',' || !s[len])) return true;
  }
  return false;
}

/* alarm_calibration --pool DIR: the alarms of the snapshot pool DIR as the product raises them
 * (vs_view_add_pool, vs_view_prepare with default options, fg_rank), one JSON line each:
 * {"key":...,"severity":...,"vm":...}; for t/integration/one_path.sh, which compares them
 * with `vmscope drift --pool` and vmscope_drift's notifications. Exits 1 when a VM of the pool
 * could not be read. */
static int print_pool_alarms(const char *dir) {
  _cleanup_(vs_view_freep) struct vs_view *v = vs_view_new();
  struct vs_err err = {0};
  if (vs_view_add_pool(v, dir, NULL, NULL, &err) < 0) fg_die("--pool %s", vs_err_msg(&err));
  const char *const *errors;
  size_t n_errors = vs_view_errors(v, &errors);
  for (size_t i = 0; i < n_errors; i++)
    fprintf(stderr, "alarm_calibration: %s\n", errors[i]);
  vs_view_prepare(v, NULL);
  if (vs_view_count(v) < 2) fg_die("--pool %s: ranking needs at least two VMs", dir);
  for (size_t i = 0; i < vs_view_count(v); i++) {
    _cleanup_(vs_drift_freep) struct vs_drift *d = fg_rank(v, i);
    for (size_t k = 0; k < d->n_findings; k++) {
      const struct vs_finding *f = &d->findings[k];
      if (f->waived || f->severity < VS_SEVERITY_WARNING) continue;
      json_t *j = json_pack("{s:s, s:s, s:s}", "vm", d->target_name ? d->target_name : d->target_id,
                            "key", f->key, "severity", vs_severity_name(f->severity));
      char *line = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
      if (!line) fg_die("%s: %s: cannot write the alarm as JSON", d->target_name, f->key);
      puts(line);
      free(line);
      json_decref(j);
    }
  }
  if (fflush(stdout) != 0 || ferror(stdout)) fg_die("writing standard output failed");
  return n_errors ? 1 : 0;
}

int main(int argc, char **argv) {
  fg_set_prog("alarm_calibration");
  if (argc == 3 && strcmp(argv[1], "--pool") == 0) return print_pool_alarms(argv[2]);
  if (argc < 3) {
    fprintf(stderr, "usage: alarm_calibration ROLES WORK [SCALE] [SEED] [SIZES]\n"
                    "       alarm_calibration --pool DIR\n");
    return 2;
  }
  struct bench b = {.scale = argc > 3 ? strtod(argv[3], NULL) : 1.0};
  if (!(b.scale > 0 && b.scale <= 100)) fg_die("SCALE is in (0, 100], not \"%s\"", argv[3]);
  fg_bench_open(&b.fg, argv[1], argv[2], argc > 4 ? argv[4] : DEFAULT_SEED);
  const char *sizes = argc > 5 ? argv[5] : NULL;
  print_header(&b, sizes);
  struct tally tallies[N_PLANS] = {{0}};
  double t0 = vs_now_monotonic();
  for (size_t k = 0; k < N_PLANS; k++) {
    if (!wanted(sizes, &plans[k])) continue;
    tallies[k].causes = vs_strmap_new(NULL);
    double start = vs_now_monotonic();
    clock_t cpu = clock();
    run_plan(&b, &plans[k], k, &tallies[k]);
    double secs[2] = {vs_now_monotonic() - start, (double)(clock() - cpu) / CLOCKS_PER_SEC};
    print_row(&plans[k], &tallies[k], secs);
    fflush(stdout);
  }
  printf("\ntotal %.0f s (CPU %.0f s)\n\n", vs_now_monotonic() - t0,
         (double)clock() / CLOCKS_PER_SEC);
  for (size_t k = 0; k < N_PLANS; k++)
    if (tallies[k].causes) print_causes(&plans[k], &tallies[k]);
  for (size_t k = 0; k < N_PLANS; k++)
    vs_strmap_free(tallies[k].causes);
  fg_bench_close(&b.fg);
  return 0;
}
