#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* S escaped for HTML text and attribute values (guest-derived: anything can be in it). */
static void esc(struct vs_buf *b, const char *s) {
  for (const char *p = s ? s : ""; *p; p++) {
    switch (*p) {
    case '&':
      vs_buf_adds(b, "&amp;");
      break;
    case '<':
      vs_buf_adds(b, "&lt;");
      break;
    case '>':
      vs_buf_adds(b, "&gt;");
      break;
    case '"':
      vs_buf_adds(b, "&quot;");
      break;
    case '\'':
      vs_buf_adds(b, "&#39;");
      break;
    default:
      vs_buf_addc(b, *p);
    }
  }
}

/* At most MAX characters of S, for table cells: long values are cut with an ellipsis. */
static void esc_cut(struct vs_buf *b, const char *s, size_t max) {
  s = s ? s : "";
  if (strlen(s) <= max) {
    esc(b, s);
    return;
  }
  size_t keep = max;
  while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80) /* whole UTF-8 characters */
    keep--;
  char *cut = vs_xstrndup(s, keep);
  esc(b, cut);
  vs_buf_adds(b, "…");
  free(cut);
}

static const char *vm_name(const struct vs_report_vm *v) {
  const char *n = vs_feature_name(v->doc);
  return n && *n ? n : vs_feature_id(v->doc);
}

/* A score in [0, 1] as a color from white to red. */
static void heat_color(struct vs_buf *b, double score) {
  if (score < 0) score = 0;
  if (score > 1) score = 1;
  int g = (int)(255 - 200 * score), r = 255;
  vs_buf_addf(b, "rgb(%d,%d,%d)", r, g, g);
}

struct column {
  const char *key;
  double best;
};

static int cmp_column(const void *p, const void *q) {
  const struct column *x = p, *y = q;
  if (x->best != y->best) return x->best > y->best ? -1 : 1;
  return strcmp(x->key, y->key);
}

static const struct vs_finding *finding_of(const struct vs_drift *d, const char *key) {
  for (size_t i = 0; d && i < d->n_findings; i++)
    if (strcmp(d->findings[i].key, key) == 0) return &d->findings[i];
  return NULL;
}

static void heat_map(struct vs_buf *b, const struct vs_report *r, size_t top, size_t max_keys) {
  /* Columns: the keys of each VM's top alarms (warning or worse, not waived), by their highest
   * score; info findings (a hostname, say) would only crowd the map. */
  struct column *cols = NULL;
  size_t n_cols = 0;
  for (size_t i = 0; i < r->n; i++) {
    const struct vs_drift *d = r->vms[i].drift;
    for (size_t k = 0; d && k < d->n_findings && k < top; k++) {
      const struct vs_finding *f = &d->findings[k];
      if (f->severity < VS_SEVERITY_WARNING || f->waived) continue;
      size_t c = 0;
      while (c < n_cols && strcmp(cols[c].key, f->key) != 0)
        c++;
      if (c == n_cols) {
        cols = vs_xrealloc(cols, (n_cols + 1) * sizeof(*cols));
        cols[n_cols++] = (struct column){f->key, f->score};
      } else if (f->score > cols[c].best) {
        cols[c].best = f->score;
      }
    }
  }
  qsort(cols, n_cols, sizeof(*cols), cmp_column);
  if (n_cols > max_keys) n_cols = max_keys;
  const int cell = 18, left = 160, head = 220;
  int width = left + (int)n_cols * cell + 20, height = head + (int)r->n * cell + 10;
  vs_buf_addf(b,
              "<svg id=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
              "role=\"img\" aria-label=\"drift heat map\">\n",
              width, height);
  for (size_t c = 0; c < n_cols; c++) {
    int x = left + (int)c * cell + cell / 2;
    vs_buf_addf(b, "<text class=\"key\" transform=\"translate(%d,%d) rotate(-60)\">", x, head - 6);
    esc_cut(b, cols[c].key, 40);
    vs_buf_adds(b, "</text>\n");
  }
  for (size_t i = 0; i < r->n; i++) {
    int y = head + (int)i * cell;
    vs_buf_addf(b, "<text class=\"vm\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6,
                y + cell - 5);
    esc_cut(b, vm_name(&r->vms[i]), 24);
    vs_buf_adds(b, "</text>\n");
    for (size_t c = 0; c < n_cols; c++) {
      const struct vs_finding *f = finding_of(r->vms[i].drift, cols[c].key);
      double score = f ? f->score : 0;
      vs_buf_addf(b, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"",
                  left + (int)c * cell, y, cell - 1, cell - 1);
      heat_color(b, f && !f->waived ? score : 0);
      vs_buf_adds(b, "\"><title>");
      esc(b, vm_name(&r->vms[i]));
      vs_buf_adds(b, ": ");
      esc(b, cols[c].key);
      if (f) {
        vs_buf_adds(b, " = ");
        esc_cut(b, f->value, 80);
        vs_buf_addf(b, " (score %.2f, %s%s)", f->score, vs_severity_name(f->severity),
                    f->waived ? ", waived" : "");
      } else {
        vs_buf_adds(b, ": with its peers");
      }
      vs_buf_adds(b, "</title></rect>\n");
    }
  }
  vs_buf_adds(b, "</svg>\n");
  free(cols);
}

static void roles_table(struct vs_buf *b, const struct vs_report *r) {
  const struct vs_analysis *a = r->roles;
  vs_buf_adds(b, "<h2>Roles</h2>\n<table id=\"roles\"><tr><th>role</th><th>VMs</th><th>medoid</th>"
                 "<th>members (similarity, anomaly)</th></tr>\n");
  for (size_t k = 0; k < vs_analysis_role_count(a); k++) {
    vs_buf_addf(b, "<tr class=\"role\"><td>%zu</td><td>%zu</td><td>", k,
                vs_analysis_role_size(a, k));
    esc(b, vm_name(&r->vms[vs_analysis_medoid(a, k)]));
    vs_buf_adds(b, "</td><td>");
    bool first = true;
    for (size_t i = 0; i < r->n; i++) {
      if (vs_analysis_role(a, i) != k) continue;
      if (!first) vs_buf_adds(b, ", ");
      first = false;
      double anomaly = vs_analysis_anomaly(a, i);
      vs_buf_addf(b, "<span class=\"%s\">", anomaly >= 0.5 ? "anomalous" : "member");
      esc(b, vm_name(&r->vms[i]));
      vs_buf_addf(b, " (%.2f, %.2f)</span>", vs_analysis_similarity(a, i), anomaly);
    }
    vs_buf_adds(b, "</td></tr>\n");
  }
  vs_buf_adds(b, "</table>\n");
}

static void vm_section(struct vs_buf *b, const struct vs_report_vm *v, size_t top) {
  vs_buf_adds(b, "<section class=\"vm\"><h3>");
  esc(b, vm_name(v));
  vs_buf_adds(b, "</h3>\n");
  const struct vs_drift *d = v->drift;
  if (!d) {
    vs_buf_adds(b, "<p>Not ranked (no peers).</p>\n");
  } else {
    vs_buf_addf(b, "<p>%zu alarm%s among %zu findings, against %u peers.</p>\n", d->alarms,
                d->alarms == 1 ? "" : "s", d->n_findings, d->samples);
    vs_buf_adds(b, "<table class=\"findings\"><tr><th>#</th><th>setting</th><th>value</th>"
                   "<th>majority</th><th>share</th><th>score</th><th>severity</th></tr>\n");
    for (size_t k = 0; k < d->n_findings && k < top; k++) {
      const struct vs_finding *f = &d->findings[k];
      vs_buf_addf(b, "<tr class=\"finding %s%s\"><td>%zu</td><td>", vs_severity_name(f->severity),
                  f->waived ? " waived" : "", f->rank);
      esc_cut(b, f->key, 90);
      vs_buf_adds(b, "</td><td>");
      esc_cut(b, f->value, 40);
      vs_buf_adds(b, "</td><td>");
      esc_cut(b, f->majority, 40);
      vs_buf_addf(b, "</td><td>%u of %u</td><td>%.2f</td><td>%s%s</td></tr>\n", f->majority_count,
                  f->n, f->score, vs_severity_name(f->severity), f->waived ? " (waived)" : "");
    }
    vs_buf_adds(b, "</table>\n");
  }
  if (v->diff) {
    vs_buf_addf(b, "<h4>Since ");
    esc(b, v->since ? v->since : "the previous snapshot");
    vs_buf_addf(b, ": %zu change%s</h4>\n", v->diff->n_changes, v->diff->n_changes == 1 ? "" : "s");
    if (v->diff->n_changes) {
      vs_buf_adds(b, "<table class=\"changes\"><tr><th>setting</th><th>was</th><th>is</th>"
                     "<th>what</th></tr>\n");
      for (size_t k = 0; k < v->diff->n_changes && k < 50; k++) {
        const struct vs_change *c = &v->diff->changes[k];
        vs_buf_adds(b, "<tr class=\"change\"><td>");
        esc_cut(b, c->key, 90);
        vs_buf_adds(b, "</td><td>");
        esc_cut(b, c->old_value ? c->old_value : VS_ABSENT, 60);
        vs_buf_adds(b, "</td><td>");
        esc_cut(b, c->new_value ? c->new_value : VS_ABSENT, 60);
        vs_buf_adds(b, "</td><td>");
        esc(b, c->class != VS_CLASS_NONE ? vs_change_class_name(c->class)
                                         : vs_change_kind_name(c->kind));
        vs_buf_adds(b, "</td></tr>\n");
      }
      vs_buf_adds(b, "</table>\n");
    }
  }
  vs_buf_adds(b, "</section>\n");
}

char *vs_report_html(const struct vs_report *r) {
  size_t top = r->top ? r->top : 10, keys = r->heat_keys ? r->heat_keys : 30;
  struct vs_buf b = {0};
  size_t alarms = 0, alarmed = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->vms[i].drift) {
      alarms += r->vms[i].drift->alarms;
      alarmed += r->vms[i].drift->alarms > 0;
    }
  vs_buf_adds(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                  "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                  "style-src 'unsafe-inline'; img-src data:\">\n<title>");
  esc(&b, r->title ? r->title : "vmscope drift report");
  vs_buf_adds(&b, "</title>\n<style>\n"
                  "body{font-family:sans-serif;margin:2em;color:#222}\n"
                  "table{border-collapse:collapse;margin:0.5em 0 1.5em}\n"
                  "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}\n"
                  "th{background:#f0f0f0}\n"
                  "tr.warning td{background:#fff1d6}tr.failure td{background:#ffd9d9}\n"
                  "tr.waived td{color:#888}\n"
                  "svg text{font-size:11px;font-family:sans-serif}\n"
                  "span.anomalous{color:#b00;font-weight:bold}\n"
                  "section.vm{border-top:1px solid #ddd;margin-top:1em}\n"
                  "</style></head><body>\n<h1>");
  esc(&b, r->title ? r->title : "vmscope drift report");
  vs_buf_addf(&b, "</h1>\n<p id=\"summary\">%zu VMs; %zu with alarms, %zu alarms in all", r->n,
              alarmed, alarms);
  if (r->roles) vs_buf_addf(&b, "; %zu roles", vs_analysis_role_count(r->roles));
  vs_buf_adds(&b, ".</p>\n<h2>Drift heat map</h2>\n<p>Rows are VMs, columns the settings of their "
                  "alarms; red is a high score (hover for the value).</p>\n");
  heat_map(&b, r, top, keys);
  if (r->roles) roles_table(&b, r);
  vs_buf_adds(&b, "<h2>Findings per VM</h2>\n");
  for (size_t i = 0; i < r->n; i++)
    vm_section(&b, &r->vms[i], top);
  vs_buf_adds(&b, "</body></html>\n");
  return vs_buf_steal(&b);
}
