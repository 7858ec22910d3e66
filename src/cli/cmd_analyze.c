/* vmscope analyze / similar / report: roles, anomaly and labels over many VMs, VMs ranked by
 * likeness to one (analytics.h), and the HTML drift report (report.h), which shows them. */
#include "cli.h"

#include "analytics.h"
#include "drift.h"
#include "pool.h"
#include "population.h"
#include "report.h"
#include "strmap.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        "  -p, --pool DIR          the snapshot pool (vmscope_snapshot's DataDir)\n"
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
  fputs("  -h, --help              this help\n"
        "\n"
        "Exit status: 0 done, 1 some source failed (the others were analysed), 2 usage error.\n",
        out);
}

struct vm_set {
  struct vs_feature **docs, **prev_docs; /* PREV_DOCS: the pool's snapshot before, or NULL */
  size_t n;
  struct vs_vm_tokens *vms;
  uint64_t **tokens, **prev;
  char **labels;
};

static void vm_set_clear(struct vm_set *s) {
  for (size_t i = 0; i < s->n; i++) {
    vs_feature_free(s->docs[i]);
    vs_feature_free(s->prev_docs[i]);
    free(s->tokens[i]);
    free(s->prev[i]);
    free(s->labels[i]);
  }
  free(s->docs);
  free(s->prev_docs);
  free(s->vms);
  free(s->tokens);
  free(s->prev);
  free(s->labels);
}

static void add_doc(struct vm_set *s, struct vs_feature *doc, struct vs_feature *prev) {
  s->docs = vs_xrealloc(s->docs, (s->n + 1) * sizeof(*s->docs));
  s->prev_docs = vs_xrealloc(s->prev_docs, (s->n + 1) * sizeof(*s->prev_docs));
  s->tokens = vs_xrealloc(s->tokens, (s->n + 1) * sizeof(*s->tokens));
  s->prev = vs_xrealloc(s->prev, (s->n + 1) * sizeof(*s->prev));
  s->labels = vs_xrealloc(s->labels, (s->n + 1) * sizeof(*s->labels));
  s->vms = vs_xrealloc(s->vms, (s->n + 1) * sizeof(*s->vms));
  size_t i = s->n++;
  s->docs[i] = doc;
  s->labels[i] = NULL;
  s->vms[i] = (struct vs_vm_tokens){.id = vs_feature_id(doc), .name = vs_feature_name(doc)};
  s->vms[i].n = vs_feature_tokens(doc, &s->tokens[i]);
  s->vms[i].tokens = s->tokens[i];
  s->prev[i] = NULL;
  s->prev_docs[i] = prev;
  if (prev) {
    s->vms[i].n_prev = vs_feature_tokens(prev, &s->prev[i]);
    s->vms[i].prev_tokens = s->prev[i];
  }
}

/* Loads the VMs: the pool's newest documents (with the one before, for history), or SOURCEs. */
static int load(struct vm_set *s, const char *pool, char **paths, size_t n, const char *prog) {
  int status = VS_EXIT_OK;
  if (pool) {
    struct vs_err err = {0};
    char **list = NULL;
    size_t nv = 0;
    if (vs_pool_vms(pool, &list, &nv, &err) < 0) {
      fprintf(stderr, "%s: %s\n", prog, vs_err_msg(&err));
      vs_err_clear(&err);
      return VS_EXIT_PARTIAL;
    }
    for (size_t i = 0; i < nv; i++) {
      struct vs_feature *doc = vs_pool_newest_in(pool, list[i], &err), *prev = NULL;
      if (!doc) {
        fprintf(stderr, "%s: %s: %s\n", prog, list[i], vs_err_msg(&err));
        vs_err_clear(&err);
        status = VS_EXIT_PARTIAL;
        continue;
      }
      struct vs_feature *again = vs_pool_newest(pool, vs_feature_id(doc), &prev, NULL);
      vs_feature_free(again);
      add_doc(s, doc, prev);
    }
    for (size_t i = 0; i < nv; i++)
      free(list[i]);
    free(list);
    return status;
  }
  struct vs_cli_read r = {.backend = VS_CLI_BACKEND_AUTO};
  struct vs_cli_docs *out = vs_xcalloc(n, sizeof(*out));
  if (vs_cli_read_sources(&r, paths, n, out, prog) < 0) {
    free(out);
    return VS_EXIT_USAGE;
  }
  for (size_t i = 0; i < n; i++) {
    if (out[i].error) {
      fprintf(stderr, "%s: %s\n", prog, out[i].error);
      status = VS_EXIT_PARTIAL;
    }
    for (size_t k = 0; k < out[i].n; k++) {
      add_doc(s, out[i].docs[k], NULL);
      out[i].docs[k] = NULL;
    }
    vs_cli_docs_clear(&out[i]);
  }
  free(out);
  return status;
}

/* The labels file's labels onto the VMs it names (by name or id). */
static int read_labels(struct vm_set *s, const char *path, const char *prog) {
  struct vs_err err = {0};
  struct vs_strmap *m = NULL;
  if (vs_labels_load(path, &m, &err) < 0) {
    fprintf(stderr, "%s: %s\n", prog, vs_err_msg(&err));
    vs_err_clear(&err);
    return -1;
  }
  size_t used = 0;
  for (size_t i = 0; i < s->n; i++) {
    const char *l = s->vms[i].name ? vs_strmap_get(m, s->vms[i].name) : NULL;
    if (!l && s->vms[i].id) l = vs_strmap_get(m, s->vms[i].id);
    if (!l) continue;
    s->labels[i] = vs_xstrdup(l);
    s->vms[i].label = s->labels[i];
    used++;
  }
  if (used < vs_strmap_count(m))
    fprintf(stderr, "%s: %s: %zu of its %zu names match no VM\n", prog, path,
            vs_strmap_count(m) - used, vs_strmap_count(m));
  vs_strmap_free(m);
  return 0;
}

static int run(int argc, char **argv, bool similar) {
  const char *prog = similar ? "vmscope similar" : "vmscope analyze";
  enum { OPT_SEED = VS_CLI_OPT_FIRST_FREE, OPT_THRESHOLD, OPT_SETTING };
  static const struct option opts[] = {{"pool", required_argument, NULL, 'p'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"labels", required_argument, NULL, 'l'},
                                       {"seed", required_argument, NULL, OPT_SEED},
                                       {"threshold", required_argument, NULL, OPT_THRESHOLD},
                                       {"setting", required_argument, NULL, OPT_SETTING},
                                       {"top", required_argument, NULL, 'n'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *pool = NULL, *labels = NULL, *settings[VS_CLI_MAX_REPEAT];
  size_t n_settings = 0;
  bool text = false;
  long top = 20;
  struct vs_analytics_opts ao = {0};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "p:f:l:n:h", opts, NULL)) != -1) {
    char *end = NULL;
    if (c == 'p') {
      pool = optarg;
    } else if (c == 'f') {
      if (vs_cli_format_option(optarg, prog, &text) < 0) return VS_EXIT_USAGE;
    } else if (c == 'l' && !similar) {
      labels = optarg;
    } else if (c == OPT_SEED) {
      ao.seed = strtoull(optarg, &end, 10);
      if (!*optarg || *end) goto bad;
    } else if (c == OPT_THRESHOLD) {
      ao.threshold = strtod(optarg, &end);
      if (!*optarg || *end || ao.threshold <= 0 || ao.threshold > 1) goto bad;
    } else if (c == OPT_SETTING && similar && n_settings < VS_CLI_MAX_REPEAT &&
               strchr(optarg, '=')) {
      settings[n_settings++] = optarg;
    } else if (c == 'n' && similar) {
      top = strtol(optarg, &end, 10);
      if (!*optarg || *end || top < 0) goto bad;
    } else if (c == 'h') {
      usage(stdout, similar);
      return VS_EXIT_OK;
    } else {
    bad:
      if (c != '?') fprintf(stderr, "%s: bad value \"%s\"\n", prog, optarg ? optarg : "");
      usage(stderr, similar);
      return VS_EXIT_USAGE;
    }
  }
  const char *target = NULL;
  if (similar && !n_settings) {
    if (optind >= argc) {
      fprintf(stderr, "%s: give a VM or --setting KEY=VALUE\n", prog);
      return VS_EXIT_USAGE;
    }
    target = argv[optind++];
  }
  if (!pool && optind >= argc) {
    fprintf(stderr, "%s: give --pool DIR or SOURCE...\n", prog);
    return VS_EXIT_USAGE;
  }
  struct vm_set s = {0};
  int status = load(&s, pool, argv + optind, pool ? 0 : (size_t)(argc - optind), prog);
  if (status == VS_EXIT_USAGE) return status;
  if (labels && read_labels(&s, labels, prog) < 0) {
    vm_set_clear(&s);
    return VS_EXIT_USAGE;
  }
  struct vs_analysis *a = vs_analyze(s.vms, s.n, &ao);
  if (!similar) {
    if (text) {
      printf("%zu VMs, %zu roles\n", s.n, vs_analysis_role_count(a));
      for (size_t r = 0; r < vs_analysis_role_count(a); r++) {
        const struct vs_vm_tokens *m = &s.vms[vs_analysis_medoid(a, r)];
        printf("role %zu: %zu VMs, medoid %s\n", r, vs_analysis_role_size(a, r),
               m->name ? m->name : m->id);
      }
      for (size_t i = 0; i < s.n; i++) {
        double p;
        const char *l = vs_analysis_label(a, i, &p);
        printf("%-24s role %-3zu similarity %.3f anomaly %.3f", s.vms[i].name ? s.vms[i].name : "",
               vs_analysis_role(a, i), vs_analysis_similarity(a, i), vs_analysis_anomaly(a, i));
        if (l) printf("  label %s (%.2f)", l, p);
        putchar('\n');
      }
    } else {
      json_t *j = vs_analysis_json(a, s.vms);
      if (vs_cli_print_json(j, false, prog) < 0) status = VS_EXIT_PARTIAL;
      json_decref(j);
    }
  } else {
    size_t *order = vs_xcalloc(s.n ? s.n : 1, sizeof(size_t));
    double *sims = vs_xcalloc(s.n ? s.n : 1, sizeof(double));
    size_t t = s.n;
    for (size_t i = 0; target && i < s.n; i++)
      if (strcmp(s.vms[i].name ? s.vms[i].name : "", target) == 0 ||
          strcmp(s.vms[i].id ? s.vms[i].id : "", target) == 0)
        t = i;
    if (target && t == s.n) {
      fprintf(stderr, "%s: no VM %s among the %zu documents\n", prog, target, s.n);
      status = VS_EXIT_PARTIAL;
    } else {
      if (target) {
        vs_analysis_similar(a, t, order, sims);
      } else {
        uint64_t q[VS_CLI_MAX_REPEAT];
        for (size_t k = 0; k < n_settings; k++) {
          char *key = vs_xstrndup(settings[k], (size_t)(strchr(settings[k], '=') - settings[k]));
          q[k] = vs_token(key, strchr(settings[k], '=') + 1);
          free(key);
        }
        vs_analysis_similar_tokens(a, s.vms, q, n_settings, order, sims);
      }
      size_t shown = top == 0 || (size_t)top > s.n ? s.n : (size_t)top;
      json_t *list = json_array();
      for (size_t k = 0; k < shown; k++) {
        const struct vs_vm_tokens *v = &s.vms[order[k]];
        if (text)
          printf("%3zu  %.3f  %s (role %zu)\n", k + 1, sims[k], v->name ? v->name : v->id,
                 vs_analysis_role(a, order[k]));
        else
          json_array_append_new(list, json_pack("{sIss?ss?sfsI}", "rank", (json_int_t)(k + 1), "id",
                                                v->id, "name", v->name, "similarity", sims[k],
                                                "role", (json_int_t)vs_analysis_role(a, order[k])));
      }
      if (!text && vs_cli_print_json(list, false, prog) < 0) status = VS_EXIT_PARTIAL;
      json_decref(list);
    }
    free(order);
    free(sims);
  }
  vs_analysis_free(a);
  vm_set_clear(&s);
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
  fputs("Usage: vmscope report --html OUT.html [OPTIONS] (--pool DIR | SOURCE...)\n"
        "\n"
        "Write one self-contained HTML page (inline CSS and SVG, nothing fetched): a VM x\n"
        "setting heat map of the top findings, the roles, each VM's findings with their value,\n"
        "majority and share, and, from a pool, what changed since each VM's previous snapshot.\n"
        "VMs are ranked against their role when it has at least 8 others, as vmscope_drift\n"
        "does, else against all the others.\n"
        "\n"
        "Options:\n"
        "  -o, --html OUT.html     the page to write\n"
        "  -p, --pool DIR          the snapshot pool (vmscope_snapshot's DataDir)\n"
        "  -n, --top N             findings per VM (default 10)\n"
        "      --title TEXT        the page's title\n"
        "  -h, --help              this help\n"
        "\n"
        "Exit status: 0 written, 1 some source failed (the page has the others), 2 usage error.\n",
        out);
}

int vs_cmd_report(int argc, char **argv) {
  const char *prog = "vmscope report";
  enum { OPT_TITLE = VS_CLI_OPT_FIRST_FREE };
  static const struct option opts[] = {
      {"html", required_argument, NULL, 'o'}, {"pool", required_argument, NULL, 'p'},
      {"top", required_argument, NULL, 'n'},  {"title", required_argument, NULL, OPT_TITLE},
      {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
  const char *out = NULL, *pool = NULL, *title = NULL;
  long top = 10;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:p:n:h", opts, NULL)) != -1) {
    char *end = NULL;
    if (c == 'o') {
      out = optarg;
    } else if (c == 'p') {
      pool = optarg;
    } else if (c == 'n') {
      top = strtol(optarg, &end, 10);
      if (!*optarg || *end || top < 1) {
        fprintf(stderr, "%s: --top takes a positive number\n", prog);
        return VS_EXIT_USAGE;
      }
    } else if (c == OPT_TITLE) {
      title = optarg;
    } else if (c == 'h') {
      report_usage(stdout);
      return VS_EXIT_OK;
    } else {
      report_usage(stderr);
      return VS_EXIT_USAGE;
    }
  }
  if (!out || (!pool && optind >= argc)) {
    fprintf(stderr, "%s: give --html OUT.html and --pool DIR or SOURCE...\n", prog);
    return VS_EXIT_USAGE;
  }
  struct vm_set s = {0};
  int status = load(&s, pool, argv + optind, pool ? 0 : (size_t)(argc - optind), prog);
  if (status == VS_EXIT_USAGE) return status;
  struct vs_analysis *a = vs_analyze(s.vms, s.n, NULL);
  struct vs_pop *all = vs_pop_new();
  for (size_t i = 0; i < s.n; i++)
    vs_pop_add(all, s.docs[i]);
  vs_pop_prepare(all);
  struct vs_report_vm *rv = vs_xcalloc(s.n ? s.n : 1, sizeof(*rv));
  struct vs_drift **drifts = vs_xcalloc(s.n ? s.n : 1, sizeof(*drifts));
  struct vs_diff **diffs = vs_xcalloc(s.n ? s.n : 1, sizeof(*diffs));
  for (size_t i = 0; i < s.n; i++) {
    struct vs_pop *mates = NULL;
    size_t role = vs_analysis_role(a, i);
    if (vs_analysis_role_size(a, role) > 8) {
      mates = vs_pop_new();
      for (size_t k = 0; k < s.n; k++)
        if (vs_analysis_role(a, k) == role) vs_pop_add(mates, s.docs[k]);
      vs_pop_prepare(mates);
    }
    drifts[i] = s.n > 1 ? vs_drift_rank(mates ? mates : all, s.docs[i], NULL, NULL) : NULL;
    vs_pop_free(mates);
    if (s.prev_docs[i]) diffs[i] = vs_drift_diff(s.prev_docs[i], s.docs[i]);
    rv[i] = (struct vs_report_vm){s.docs[i], drifts[i], diffs[i],
                                  s.prev_docs[i] ? vs_feature_taken_at(s.prev_docs[i]) : NULL};
  }
  struct vs_report r = {.title = title, .vms = rv, .n = s.n, .roles = a, .top = (size_t)top};
  char *html = vs_report_html(&r);
  struct vs_err err = {0};
  struct vs_newfile f;
  if (vs_newfile_open(&f, out, 0644, &err) < 0 ||
      vs_newfile_write(&f, html, strlen(html), &err) < 0 || vs_newfile_commit(&f, &err) < 0) {
    if (f.fd >= 0 || f.path) vs_newfile_abandon(&f);
    fprintf(stderr, "%s: %s\n", prog, vs_err_msg(&err));
    vs_err_clear(&err);
    status = VS_EXIT_PARTIAL;
  }
  free(html);
  for (size_t i = 0; i < s.n; i++) {
    vs_drift_free(drifts[i]);
    vs_diff_free(diffs[i]);
  }
  free(drifts);
  free(diffs);
  free(rv);
  vs_pop_free(all);
  vs_analysis_free(a);
  vm_set_clear(&s);
  return status;
}
