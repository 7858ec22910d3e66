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

/* The heat map's labels are laid out here, where no browser measures them: the font is named
 * (DejaVu Sans, Debian's default, then Verdana, whose metrics are alike), and a label's width is
 * taken from DejaVu Sans's advance widths (1/2048 em) of printable ASCII, 1 em for any other
 * character, plus a margin: a narrower font only leaves more room. */
#define HEAT_FONT_PX 11
#define HEAT_FONT "\"DejaVu Sans\",Verdana,sans-serif"
#define LABEL_MAX 120 /* longer labels keep their ends around an ellipsis; the title has all */
static const unsigned short advance[95] = {
    651,  821,  942,  1716, 1303, 1946, 1597, 563,  799,  799,  1024, 1716, 651,  739,  651,  690,
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 690,  690,  1716, 1716, 1716, 1087,
    2048, 1401, 1405, 1430, 1577, 1294, 1178, 1589, 1540, 604,  604,  1343, 1141, 1767, 1532, 1612,
    1235, 1612, 1423, 1300, 1251, 1499, 1401, 2025, 1403, 1251, 1403, 799,  690,  799,  1716, 1024,
    1024, 1255, 1300, 1126, 1300, 1260, 721,  1300, 1298, 569,  569,  1186, 569,  1995, 1298, 1253,
    1300, 842,  1067, 803,  1298, 1212, 1675, 1212, 1212, 1075, 1303, 690,  1303, 1716};

static double text_width(const char *s) {
  double units = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p >= 32 && *p < 127)
      units += advance[*p - 32];
    else if ((*p & 0xC0) != 0x80) /* one per UTF-8 character */
      units += 2048;
  return units / 2048 * HEAT_FONT_PX * 1.08 + 2;
}

/* S as a label: itself, or when longer than MAX bytes its start and end around an ellipsis. */
static char *label_of(const char *s, size_t max) {
  size_t len = strlen(s);
  if (len <= max) return vs_xstrdup(s);
  size_t head = max / 2, tail = len - (max - head);
  while (head > 0 && ((unsigned char)s[head] & 0xC0) == 0x80) /* whole UTF-8 characters */
    head--;
  while (tail < len && ((unsigned char)s[tail] & 0xC0) == 0x80)
    tail++;
  return vs_xasprintf("%.*s…%s", (int)head, s, s + tail);
}

struct column {
  const char *key;
  double best;
  char *label;
  double width;
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

/* Columns: the keys of each VM's top alarms (warning or worse, not waived), by their highest
 * score, at most MAX_KEYS of them; info findings (a hostname, say) would only crowd the map. */
static struct column *heat_columns(const struct vs_report *r, size_t top, size_t max_keys,
                                   size_t *n) {
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
        cols[n_cols++] = (struct column){f->key, f->score, NULL, 0};
      } else if (f->score > cols[c].best) {
        cols[c].best = f->score;
      }
    }
  }
  qsort(cols, n_cols, sizeof(*cols), cmp_column);
  *n = n_cols > max_keys ? max_keys : n_cols;
  return cols;
}

#define HEAT_CELL 18

/* Where the map's parts go: the rows start LEFT px from the left (past the VM names), HEAD px
 * from the top (under the rotated key labels); WIDTH x HEIGHT holds all of it. */
struct heat_layout {
  int left, head, width, height;
};

/* Lays out the labels: each VM's name in NAMES[i], each column's label and width in COLS. */
static struct heat_layout heat_layout(const struct vs_report *r, char **names, struct column *cols,
                                      size_t n_cols) {
  const double sin60 = 0.8660254, cos60 = 0.5, ascent = 0.93 * HEAT_FONT_PX;
  double name_w = 0, label_h = 0, label_right = 0;
  for (size_t i = 0; i < r->n; i++) {
    names[i] = label_of(vm_name(&r->vms[i]), LABEL_MAX / 2);
    if (text_width(names[i]) > name_w) name_w = text_width(names[i]);
  }
  struct heat_layout l = {.left = (int)name_w + 12};
  for (size_t c = 0; c < n_cols; c++) {
    cols[c].label = label_of(cols[c].key, LABEL_MAX);
    cols[c].width = text_width(cols[c].label);
    if (cols[c].width * sin60 > label_h) label_h = cols[c].width * sin60;
    double right = l.left + (double)c * HEAT_CELL + HEAT_CELL / 2.0 + cols[c].width * cos60;
    if (right > label_right) label_right = right;
  }
  l.head = (int)(label_h + ascent * cos60) + 12; /* the rotated glyphs' tops reach past the ends */
  l.width = l.left + (int)n_cols * HEAT_CELL + 10;
  l.height = l.head + (int)r->n * HEAT_CELL + 10;
  if (l.width < (int)(label_right + ascent * sin60) + 10)
    l.width = (int)(label_right + ascent * sin60) + 10;
  return l;
}

/* One cell: VM V's finding for column COL's key (white when it has none or it is waived). */
static void heat_cell(struct vs_buf *b, const struct vs_report_vm *v, const struct column *col,
                      int x, int y) {
  const struct vs_finding *f = finding_of(v->drift, col->key);
  double score = f ? f->score : 0;
  vs_buf_addf(b, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"", x, y,
              HEAT_CELL - 1, HEAT_CELL - 1);
  heat_color(b, f && !f->waived ? score : 0);
  vs_buf_adds(b, "\"><title>");
  esc(b, vm_name(v));
  vs_buf_adds(b, ": ");
  esc(b, col->key);
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

/* The heat map: a row per VM, its name left of it; a column per key, its label above it,
 * rotated 60 degrees so that neighbours 18 px apart stand 15.6 px apart across their baselines
 * (more than a line of 11 px text), and the map as wide and as tall as its longest labels
 * need. Every label is whole up to LABEL_MAX bytes and carries a title with the whole text. */
static void heat_map(struct vs_buf *b, const struct vs_report *r, size_t top, size_t max_keys) {
  size_t n_cols;
  struct column *cols = heat_columns(r, top, max_keys, &n_cols);
  char **names = vs_xcalloc(r->n ? r->n : 1, sizeof(char *));
  struct heat_layout l = heat_layout(r, names, cols, n_cols);
  vs_buf_addf(b,
              "<svg id=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
              "role=\"img\" aria-label=\"drift heat map\">\n",
              l.width, l.height);
  for (size_t c = 0; c < n_cols; c++) {
    /* The baseline starts under the column's middle, shifted so the glyphs, above it, are. */
    int x = l.left + (int)c * HEAT_CELL + HEAT_CELL / 2 + 3;
    vs_buf_addf(b, "<text class=\"key\" transform=\"translate(%d,%d) rotate(-60)\"><title>", x,
                l.head - 4);
    esc(b, cols[c].key);
    vs_buf_adds(b, "</title>");
    esc(b, cols[c].label);
    vs_buf_adds(b, "</text>\n");
  }
  for (size_t i = 0; i < r->n; i++) {
    int y = l.head + (int)i * HEAT_CELL;
    vs_buf_addf(b, "<text class=\"vm\" x=\"%d\" y=\"%d\" text-anchor=\"end\"><title>", l.left - 6,
                y + HEAT_CELL - 5);
    esc(b, vm_name(&r->vms[i]));
    vs_buf_adds(b, "</title>");
    esc(b, names[i]);
    vs_buf_adds(b, "</text>\n");
    for (size_t c = 0; c < n_cols; c++)
      heat_cell(b, &r->vms[i], &cols[c], l.left + (int)c * HEAT_CELL, y);
  }
  vs_buf_adds(b, "</svg>\n");
  vs_strv_free(names, r->n);
  for (size_t c = 0; c < n_cols; c++)
    free(cols[c].label);
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
      /* Where no two peers agree, the most common value would be any one of them: none. */
      if (f->majority && strcmp(f->majority, VS_ALL_DIFFER) == 0)
        vs_buf_adds(b, "<i>all differ</i></td><td>none shared");
      else {
        esc_cut(b, f->majority, 40);
        vs_buf_addf(b, "</td><td>%u of %u", f->majority_count, f->n);
      }
      vs_buf_addf(b, "</td><td>%.2f</td><td>%s%s</td></tr>\n", f->score,
                  vs_severity_name(f->severity), f->waived ? " (waived)" : "");
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
                  "<meta name=\"generator\" content=\"" VS_REPORT_GENERATOR "\">\n"
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
                  "svg text{font-size:11px;font-family:" HEAT_FONT "}\n"
                  "svg rect.cell{stroke:#e4e4e4}\n"
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
