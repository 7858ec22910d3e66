/* report.h: one self-contained HTML page about a fleet's drift (inline CSS and SVG, nothing
 * fetched, no script): a VM x setting heat map of the top findings, the roles, each VM's
 * findings with what explains them (its value, the majority and its share, or "all differ"
 * when no two peers share a value), and what changed between each VM's last two snapshots.
 * The heat map is sized to its labels, each whole up to 120 bytes and titled with its whole
 * text, none outside the map or over another (t/integration/report.sh measures them in
 * Chromium). Every guest-derived text is escaped. */
#ifndef VS_REPORT_H
#define VS_REPORT_H

/* Named in each page's <meta name="generator">: a page vmscope wrote may be written again. */
#define VS_REPORT_GENERATOR "vmscope report"

#include "analytics.h"
#include "drift.h"
#include "feature.h"

struct vs_report_vm {
  const struct vs_feature *doc;
  const struct vs_drift *drift; /* may be NULL (not ranked) */
  const struct vs_diff *diff;   /* since the previous snapshot, or NULL */
  const char *since;            /* the previous snapshot's time, or NULL */
};

struct vs_report {
  const char *title;
  const struct vs_report_vm *vms;
  size_t n;
  const struct vs_analysis *roles; /* over VMS in the same order, or NULL */
  size_t top;                      /* findings per VM shown (0: 10) */
  size_t heat_keys;                /* heat map columns (0: 30) */
};

/* The page (a heap string). */
char *vs_report_html(const struct vs_report *r);

#endif
