/* drift_accuracy ROLES WORK [CASES] [SEED]: how well drift ranking finds one injected
 * misconfiguration in a fleet, and how quiet it stays on fleets with nothing injected.
 *
 * ROLES holds role trees of real Debian 12 files (bench/fleet-roles.sh). Each fleet has 10 to
 * 30 VMs spread over the three roles, each VM a hard-linked copy of its role's tree with the
 * variation real fleets have: its own hostname, /etc/hosts line and machine-id; each fleet
 * has a latest batch of security updates (one to three packages) that 30% of its VMs have not
 * applied yet; 3% of VMs carry an admin's tweak; in every other fleet a
 * fifth of the VMs write one sshd_config directive out at its documented default. Into a copy
 * of one VM's tree the benchmark injects one misconfiguration, extracts the document, and ranks
 * it as `vmscope drift --pool FLEET --target INJECTED` would: the fleet's documents and the
 * injected one in a fleet view (fleetview.h), which takes the injected document in place of
 * the clean one of the same VM, finds the roles and ranks it against its peer group, once with
 * --peer-group fleet and once with --peer-group role (the default, as vmscope_drift's). The
 * injection's keys are those that differ between the clean and the injected document
 * (vs_drift_diff); its rank is the rank of the first finding that is one of those keys, or a
 * unit finding covering one (a parsed file's digest, which is only edit evidence, does not
 * count). Clean fleets are ranked VM by VM (each against its peers) and every VM with an alarm
 * is counted.
 *
 * Prints a table; exits 0 whatever the figures (a benchmark, not a test). */
#include "analytics.h"
#include "fleetgen.h"
#include "fleetview.h"
#include "strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FLEET 30
#define CASES_PER_FLEET 8
#define DEFAULT_CASES 240
#define DEFAULT_SEED "20261125"

static const char *const role_names[] = {"web", "db", "app"};

struct tally {
  size_t cases, rank1, top3, alarmed;
};

/* The two ways a VM is ranked: against the whole fleet, and against its role (the default). */
enum { BY_FLEET, BY_ROLE, N_PEERS };
static const enum vs_peer_group peer_groups[N_PEERS] = {VS_PEERS_FLEET, VS_PEERS_ROLE};

/* Every VM of every fleet, as tokens, for predicting labels at the end (the fleets share
 * their role trees, so they are one population for labels). */
struct token_pool {
  uint64_t **tokens;
  size_t *n_tokens, *truth;
  size_t n, cap;
};

struct results {
  struct tally by_kind[N_PEERS][FG_N_INJ], total[N_PEERS];
  size_t ranks_hist[4]; /* whole fleet: 1, 2-3, 4+, not found */
  /* clean fleets: [explicit defaults] */
  size_t clean_vms[2], clean_alarmed[N_PEERS][2], nofold_vms, nofold_alarmed;
  struct vs_strmap *causes; /* key -> alarms on clean fleets (whole fleet) */
  double ari_sum, ari_min;
  size_t fleets, case_no;
  struct token_pool all;
};

struct bench {
  struct fg_bench fg;
  size_t want_cases;
};

struct fleet {
  size_t n;
  bool explicit_defaults;
  const char *batch[3]; /* this fleet's latest update batch */
  size_t n_batch;
  char *dir;
  char *dirs[MAX_FLEET];
  struct vs_feature *docs[MAX_FLEET];
};

/* ------------------------------------------------------------------------------- fleets */

static void make_vm(struct bench *b, const struct fleet *f, const char *role, const char *dir,
                    const char *name) {
  fg_vm_base(b->fg.roles, role, dir, name, &b->fg.r);
  if (fg_chance(&b->fg.r, 0.3)) /* the latest update batch is not applied yet */
    for (size_t k = 0; k < f->n_batch; k++)
      free(fg_set_version(dir, f->batch[k], fg_older_version));
  if (f->explicit_defaults && fg_chance(&b->fg.r, 0.2)) fg_write_out_default(dir, &b->fg.r);
  if (fg_chance(&b->fg.r, 0.03)) fg_tweak(dir, fg_rnd(&b->fg.r, FG_ADMIN_TWEAKS));
}

static void make_fleet(struct bench *b, size_t number, struct fleet *f) {
  *f = (struct fleet){.n = 10 + fg_rnd(&b->fg.r, MAX_FLEET - 10 + 1),
                      .explicit_defaults = number % 2 == 1};
  f->n_batch = b->fg.n_lag ? 1 + fg_rnd(&b->fg.r, 3) : 0;
  for (size_t k = 0; k < f->n_batch; k++)
    f->batch[k] = b->fg.lag_pkgs[fg_rnd(&b->fg.r, (uint32_t)b->fg.n_lag)];
  _cleanup_(vs_freep) char *name = vs_xasprintf("fleet-%zu", number);
  f->dir = fg_fresh_dir(b->fg.work, name);
  for (size_t i = 0; i < f->n; i++) {
    const char *role = role_names[i % 3];
    char vm[64];
    snprintf(vm, sizeof(vm), "%s-%02zu", role, i);
    f->dirs[i] = fg_path(f->dir, vm);
    make_vm(b, f, role, f->dirs[i], vm);
    f->docs[i] = fg_extract(b->fg.x, f->dirs[i], vm);
  }
}

static void free_fleet(struct fleet *f) {
  for (size_t i = 0; i < f->n; i++) {
    vs_feature_free(f->docs[i]);
    free(f->dirs[i]);
  }
  fg_remove_tree(f->dir);
  free(f->dir);
}

/* --------------------------------------------------------------------------- fleet views */

static struct vs_feature *without_defaults(const struct vs_feature *doc) {
  json_t *j = vs_feature_to_json(doc);
  json_object_del(j, "defaults");
  struct vs_feature *d = vs_feature_from_json(j, "copy", NULL);
  json_decref(j);
  if (!d) fg_die("%s: its document without defaults does not load", vs_feature_name(doc));
  return d;
}

/* The fleet's documents (copies made by COPY) in a view prepared for PEERS; TARGET, when
 * given, takes the place of its VM's document. */
static struct vs_view *view_of(const struct fleet *f,
                               struct vs_feature *(*copy)(const struct vs_feature *),
                               enum vs_peer_group peers, struct vs_feature *target) {
  return fg_view(f->docs, NULL, f->n, copy, &(struct vs_view_opts){.peers = peers}, target);
}

/* VMs of view V with an alarm when each is ranked against its peers; CAUSES (may be NULL)
 * counts the keys that alarmed. */
static size_t clean_alarms(const struct vs_view *v, struct vs_strmap *causes) {
  size_t alarmed = 0;
  for (size_t i = 0; i < vs_view_count(v); i++) {
    _cleanup_(vs_drift_freep) struct vs_drift *d = fg_rank(v, i);
    if (!d->alarms) continue;
    alarmed++;
    for (size_t k = 0; causes && k < d->n_findings; k++)
      if (d->findings[k].severity >= VS_SEVERITY_WARNING) {
        uintptr_t c = (uintptr_t)vs_strmap_get(causes, d->findings[k].key);
        vs_strmap_put(causes, d->findings[k].key, (void *)(c + 1));
      }
  }
  return alarmed;
}

static void pool_add(struct token_pool *p, const uint64_t *tokens, size_t n, size_t truth) {
  if (p->n == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 256;
    p->tokens = vs_xrealloc(p->tokens, p->cap * sizeof(*p->tokens));
    p->n_tokens = vs_xrealloc(p->n_tokens, p->cap * sizeof(*p->n_tokens));
    p->truth = vs_xrealloc(p->truth, p->cap * sizeof(*p->truth));
  }
  p->tokens[p->n] = vs_xmalloc((n ? n : 1) * sizeof(uint64_t));
  memcpy(p->tokens[p->n], tokens, n * sizeof(uint64_t));
  p->n_tokens[p->n] = n;
  p->truth[p->n++] = truth;
}

/* The roles the view found against the generator's (VM i has role i % 3); its VMs' tokens go
 * to the label pool. */
static void score_roles(const struct vs_view *v, struct results *res) {
  size_t n = vs_view_count(v), found[MAX_FLEET], truth[MAX_FLEET];
  for (size_t i = 0; i < n; i++) {
    found[i] = vs_analysis_role(vs_view_analysis(v), i);
    truth[i] = i % 3;
    const struct vs_vm_tokens *t = &vs_view_tokens(v)[i];
    pool_add(&res->all, t->tokens, t->n, truth[i]);
  }
  double ari = vs_adjusted_rand(found, truth, n);
  res->ari_sum += ari;
  if (ari < res->ari_min) res->ari_min = ari;
}

static void measure_clean(const struct fleet *f, struct results *res) {
  bool ed = f->explicit_defaults;
  res->clean_vms[ed] += f->n;
  for (int p = 0; p < N_PEERS; p++) {
    _cleanup_(vs_view_freep) struct vs_view *v = view_of(f, fg_copy, peer_groups[p], NULL);
    res->clean_alarmed[p][ed] += clean_alarms(v, p == BY_FLEET ? res->causes : NULL);
    if (p == BY_ROLE) score_roles(v, res);
  }
  if (!ed) return;
  _cleanup_(vs_view_freep) struct vs_view *bare =
      view_of(f, without_defaults, VS_PEERS_FLEET, NULL);
  res->nofold_alarmed += clean_alarms(bare, NULL);
  res->nofold_vms += f->n;
}

/* ---------------------------------------------------------------------------- injections */

/* Ranks BAD (VM T's document, injected) among the fleet with PEERS: the rank of its injected
 * setting (0: not found) and whether it alarms. */
static size_t evaluate(const struct fleet *f, size_t t, const struct vs_feature *bad,
                       const struct vs_diff *diff, enum vs_peer_group peers, bool *alarm,
                       const char *what) {
  _cleanup_(vs_view_freep) struct vs_view *v = view_of(f, fg_copy, peers, fg_copy(bad));
  long at = vs_view_find_id(v, vs_feature_id(bad));
  if (at < 0) fg_die("the injected %s is not in its fleet's view", vs_feature_name(bad));
  _cleanup_(vs_drift_freep) struct vs_drift *d = fg_rank(v, (size_t)at);
  size_t rank = fg_injected_rank(d, diff, alarm);
  if (getenv("VS_ACCURACY_VERBOSE") && (rank != 1 || !*alarm))
    fprintf(stderr, "# %s on %s (%zu peers, %s): rank %zu; top: %s (%.3f)\n", what,
            vs_feature_name(f->docs[t]), (size_t)d->samples, vs_peer_group_name(peers), rank,
            d->n_findings ? d->findings[0].key : "-", d->n_findings ? d->findings[0].score : 0.0);
  return rank;
}

static void count(struct tally *tk, struct tally *total, size_t rank, bool alarm) {
  for (struct tally *tl = tk; tl; tl = tl == tk ? total : NULL) { /* TOTAL may be NULL */
    tl->cases++;
    tl->rank1 += rank == 1;
    tl->top3 += rank >= 1 && rank <= 3;
    tl->alarmed += alarm;
  }
}

/* Injects KIND into a copy of VM T's tree and ranks it with both peer groups. */
static void run_case(struct bench *b, const struct fleet *f, enum fg_inj kind, size_t t,
                     struct results *res) {
  _cleanup_(vs_freep) char *what = NULL;
  _cleanup_(vs_diff_freep) struct vs_diff *diff = NULL;
  _cleanup_(vs_feature_freep) struct vs_feature *bad =
      fg_injected(&b->fg, f->dir, f->dirs[t], f->docs[t], kind, role_names[t % 3], &what, &diff);
  if (!bad) return;
  /* The targets are over the classic injections; another role's value is the case that
   * PeerGroup role exists for, counted apart. */
  bool classic = kind != FG_INJ_ROLE;
  for (int p = 0; p < N_PEERS; p++) {
    bool alarm;
    size_t rank = evaluate(f, t, bad, diff, peer_groups[p], &alarm, what);
    count(&res->by_kind[p][kind], classic ? &res->total[p] : NULL, rank, alarm);
    if (p == BY_FLEET && classic)
      res->ranks_hist[rank == 0 ? 3 : rank == 1 ? 0 : rank <= 3 ? 1 : 2]++;
  }
}

static void run_cases(struct bench *b, const struct fleet *f, struct results *res) {
  for (int c = 0; c < CASES_PER_FLEET && res->total[BY_FLEET].cases < b->want_cases;
       c++, res->case_no++) {
    enum fg_inj kind = (enum fg_inj)(res->case_no % FG_N_INJ);
    size_t t = fg_rnd(&b->fg.r, (uint32_t)f->n);
    run_case(b, f, kind, t, res);
  }
}

/* ------------------------------------------------------------------------------- output */

static void print_row(const char *name, const struct tally *t) {
  if (t->cases)
    printf("%-18s %6zu %7.1f%% %7.1f%% %7.1f%%\n", name, t->cases, 100.0 * t->rank1 / t->cases,
           100.0 * t->top3 / t->cases, 100.0 * t->alarmed / t->cases);
}

/* The classic injections, their total, then another role's value (not in the total). */
static void print_table(const struct tally *by_kind, const struct tally *total) {
  printf("%-18s %6s %8s %8s %8s\n", "injection", "cases", "rank 1", "top 3", "alarm");
  for (int k = 0; k < FG_N_INJ; k++)
    if (k != FG_INJ_ROLE) print_row(fg_inj_names[k], &by_kind[k]);
  print_row("all of these", total);
  print_row(fg_inj_names[FG_INJ_ROLE], &by_kind[FG_INJ_ROLE]);
}

static void print_clean(const struct results *res) {
  const size_t *vms = res->clean_vms, *al = res->clean_alarmed[BY_FLEET];
  printf("clean fleets: %zu VMs, %zu with an alarm (%.1f%%); fleets without explicit defaults "
         "%.1f%% of %zu, fleets where VMs write defaults out %.1f%% of %zu (%.1f%% if defaults "
         "were not folded)\n",
         vms[0] + vms[1], al[0] + al[1], fg_pct(al[0] + al[1], vms[0] + vms[1]),
         fg_pct(al[0], vms[0]), vms[0], fg_pct(al[1], vms[1]), vms[1],
         fg_pct(res->nofold_alarmed, res->nofold_vms));
  size_t n_causes;
  _cleanup_(vs_freep) const char **keys = vs_strmap_sorted_keys(res->causes, &n_causes);
  printf("alarm keys on clean fleets:");
  for (size_t i = 0; i < n_causes; i++)
    printf(" %s (%zu)", keys[i], (size_t)(uintptr_t)vs_strmap_get(res->causes, keys[i]));
  printf("%s\n", n_causes ? "" : " none");
}

static void print_by_role(const struct results *res) {
  printf("\nwith PeerGroup role, the default (peers = the target's close group as the fleet view "
         "found it; a VM with fewer than %d close peers is unique and raises no alarm):\n",
         VS_VIEW_MIN_ROLE_PEERS);
  print_table(res->by_kind[BY_ROLE], &res->total[BY_ROLE]);
  const size_t *al = res->clean_alarmed[BY_ROLE], *vms = res->clean_vms;
  printf("clean fleets with PeerGroup role: %zu VMs, %zu with an alarm (%.1f%%)\n", vms[0] + vms[1],
         al[0] + al[1], fg_pct(al[0] + al[1], vms[0] + vms[1]));
  const struct tally *xf = &res->by_kind[BY_FLEET][FG_INJ_ROLE];
  const struct tally *xr = &res->by_kind[BY_ROLE][FG_INJ_ROLE];
  printf("another role's value (%zu cases): rank 1 %.1f%% with PeerGroup role, %.1f%% with the "
         "whole fleet; alarm %.1f%% and %.1f%%\n",
         xf->cases, fg_pct(xr->rank1, xr->cases), fg_pct(xf->rank1, xf->cases),
         fg_pct(xr->alarmed, xr->cases), fg_pct(xf->alarmed, xf->cases));
  printf("roles: adjusted Rand index against the generator's roles, mean %.3f, lowest %.3f over "
         "%zu fleets (target >= 0.95)\n",
         res->fleets ? res->ari_sum / (double)res->fleets : 0, res->ari_min, res->fleets);
}

/* Labels: 5% of all VMs (every 20th) labelled with their role's name, the rest predicted. */
static void print_labels(const struct token_pool *all) {
  _cleanup_(vs_freep) struct vs_vm_tokens *av = vs_xcalloc(all->n ? all->n : 1, sizeof(*av));
  size_t labelled = 0;
  for (size_t i = 0; i < all->n; i++) {
    av[i] = (struct vs_vm_tokens){.tokens = all->tokens[i], .n = all->n_tokens[i]};
    if (i % 20 == 0) {
      av[i].label = role_names[all->truth[i]];
      labelled++;
    }
  }
  struct vs_analysis *la = vs_analyze(av, all->n, NULL);
  size_t right = 0, predicted = 0;
  for (size_t i = 0; i < all->n; i++) {
    if (av[i].label) continue;
    const char *l = vs_analysis_label(la, i, NULL);
    predicted++;
    right += l && strcmp(l, role_names[all->truth[i]]) == 0;
  }
  vs_analysis_free(la);
  printf("labels: %zu of %zu VMs (5%%) labelled; %.1f%% of the other %zu predicted right "
         "(target >= 95%%)\n",
         labelled, all->n, fg_pct(right, predicted), predicted);
}

static void print_results(const struct bench *b, const struct results *res, double secs) {
  const struct tally *total = &res->total[BY_FLEET];
  printf("drift-accuracy: %zu injected cases over %zu fleets of 10-%d VMs (3 roles, peers = the "
         "whole fleet), seed %s, %.1f s\n\n",
         total->cases, res->fleets, MAX_FLEET, b->fg.seed, secs);
  print_table(res->by_kind[BY_FLEET], total);
  const size_t *h = res->ranks_hist;
  printf("\nranks: 1: %zu, 2-3: %zu, 4+: %zu, not found: %zu\n", h[0], h[1], h[2], h[3]);
  print_clean(res);
  print_by_role(res);
  print_labels(&res->all);
  const size_t *al = res->clean_alarmed[BY_FLEET], *vms = res->clean_vms;
  bool met = fg_pct(total->rank1, total->cases) >= 90 && fg_pct(total->top3, total->cases) >= 98 &&
             fg_pct(al[0] + al[1], vms[0] + vms[1]) <= 5 &&
             fg_pct(total->alarmed, total->cases) >= 95;
  printf("targets (rank 1 >= 90%%, top 3 >= 98%%, clean alarms <= 5%%, injected alarms >= 95%%): "
         "%s\n",
         met ? "met" : "NOT met");
}

/* ---------------------------------------------------------------------------------- main */

static void free_results(struct results *res) {
  vs_strmap_free(res->causes);
  for (size_t i = 0; i < res->all.n; i++)
    free(res->all.tokens[i]);
  free(res->all.tokens);
  free(res->all.n_tokens);
  free(res->all.truth);
}

int main(int argc, char **argv) {
  fg_set_prog("drift_accuracy");
  if (argc < 3) {
    fprintf(stderr, "usage: drift_accuracy ROLES WORK [CASES] [SEED]\n");
    return 2;
  }
  struct bench b = {.want_cases = argc > 3 ? strtoul(argv[3], NULL, 10) : DEFAULT_CASES};
  fg_bench_open(&b.fg, argv[1], argv[2], argc > 4 ? argv[4] : DEFAULT_SEED);
  struct results res = {.causes = vs_strmap_new(NULL), .ari_min = 1};
  double t0 = vs_now_monotonic();
  while (res.total[BY_FLEET].cases < b.want_cases) {
    struct fleet f;
    make_fleet(&b, res.fleets, &f);
    measure_clean(&f, &res);
    run_cases(&b, &f, &res);
    free_fleet(&f);
    res.fleets++;
  }
  print_results(&b, &res, vs_now_monotonic() - t0);
  free_results(&res);
  fg_bench_close(&b.fg);
  return 0;
}
