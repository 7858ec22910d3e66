/* analyze/report: the HTML page about a fleet's drift, read back from documents the test
 * builds: the heat map's columns and cells, the findings' rows, the changes since the last
 * snapshot, the escaping of guest-derived text, and the generator meta. */
#include "drift.h"
#include "population.h"
#include "report.h"
#include "tap.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_VMS 12
#define ROOT_KEY "file:/etc/ssh/sshd_config:PermitRootLogin"
#define FWD_KEY "sysctl:net.ipv4.ip_forward"
#define HOSTILE "<script>alert('x')</script>"

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

/* The fill of the heat map cell whose title starts with TITLE ("rgb(...)"), or "". */
static char *cell_fill(const char *page, const char *title) {
  char *want = vs_xasprintf("<title>%s", title);
  const char *t = strstr(page, want);
  free(want);
  if (!t) return vs_xstrdup("");
  const char *rect = t;
  while (rect > page && strncmp(rect, "<rect ", 6) != 0)
    rect--;
  const char *fill = strstr(rect, "fill=\"");
  if (!fill || fill > t) return vs_xstrdup("");
  fill += 6;
  return vs_xstrndup(fill, strcspn(fill, "\""));
}

/* The findings table of VM NAME's section (from its heading to the section's end). */
static char *section_of(const char *page, const char *name) {
  char *head = vs_xasprintf("<section class=\"vm\"><h3>%s</h3>", name);
  const char *s = strstr(page, head);
  free(head);
  if (!s) return vs_xstrdup("");
  const char *end = strstr(s, "</section>");
  return vs_xstrndup(s, end ? (size_t)(end - s) : strlen(s));
}

static struct vs_feature *vm(size_t i, const char *root, const char *fwd) {
  char id[32], name[32];
  snprintf(id, sizeof(id), "uuid-%zu", i);
  snprintf(name, sizeof(name), "web-%zu", i);
  struct vs_feature *d = vs_feature_new();
  vs_feature_set_id(d, id, name);
  vs_feature_set(d, "os:distro", "debian", NULL);
  vs_feature_set(d, ROOT_KEY, root, NULL);
  vs_feature_set(d, FWD_KEY, fwd, NULL);
  return d;
}

/* Twelve web servers agree, but web-7 permits root logins (with a value a guest could choose
 * to attack the page) and web-6 forwards packets; web-0 was ranked and changed since its
 * previous snapshot, web-1 was not ranked. */
struct fleet {
  struct vs_feature *docs[N_VMS], *before;
  struct vs_pop *pop;
  struct vs_drift *drift[N_VMS], *unranked;
  struct vs_diff *diff;
  struct vs_report_vm vms[N_VMS];
};

static void fleet_make(struct fleet *f) {
  f->pop = vs_pop_new();
  for (size_t i = 0; i < N_VMS; i++) {
    f->docs[i] = vm(i, i == 7 ? HOSTILE : "no", i == 6 ? "1" : "0");
    vs_pop_add(f->pop, f->docs[i]);
  }
  vs_pop_prepare(f->pop);
  struct vs_err err = {0};
  for (size_t i = 0; i < N_VMS; i++) {
    f->drift[i] = vs_drift_rank(f->pop, f->docs[i], NULL, &err);
    if (!f->drift[i]) diag("ranking web-%zu: %s", i, vs_err_msg(&err));
    vs_err_clear(&err);
    f->vms[i] = (struct vs_report_vm){.doc = f->docs[i], .drift = f->drift[i]};
  }
  f->unranked = f->drift[1];
  f->vms[1].drift = NULL;
  f->before = vm(0, "yes", "0");
  f->diff = vs_drift_diff(f->before, f->docs[0]);
  f->vms[0].diff = f->diff;
  f->vms[0].since = "2026-11-24T18:00:00Z";
}

static void fleet_free(struct fleet *f) {
  vs_diff_free(f->diff);
  vs_feature_free(f->before);
  vs_drift_free(f->unranked);
  for (size_t i = 0; i < N_VMS; i++) {
    if (i != 1) vs_drift_free(f->drift[i]);
    vs_feature_free(f->docs[i]);
  }
  vs_pop_free(f->pop);
}

static void test_page_escapes(const char *page) {
  ok(strstr(page, "<meta name=\"generator\" content=\"" VS_REPORT_GENERATOR "\">") != NULL,
     "the page names its generator in a meta element");
  ok(strstr(page, "<title>Fleet &lt;b&gt;&amp;&lt;/b&gt;</title>") != NULL &&
         strstr(page, "<b>&</b>") == NULL,
     "the title is escaped: its markup is text");
  ok(strstr(page, "<script") == NULL,
     "a setting's <script> value never reaches the page as markup");
  ok(count(page, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") >= 2,
     "it is shown escaped, in the heat map's cell title and in the findings row");
  ok(strstr(page, "<p id=\"summary\">12 VMs; 2 with alarms, 2 alarms in all") != NULL,
     "the summary counts the VMs, those with alarms and the alarms");
}

static void test_heat_map(const char *page) {
  /* The heat map: one column per alarmed key, one cell per VM and column. */
  ok(count(page, "<text class=\"key\"") == 2, "the heat map has a column for each alarmed key");
  ok(strstr(page, "<title>" ROOT_KEY "</title>" ROOT_KEY "</text>") != NULL &&
         strstr(page, "<title>" FWD_KEY "</title>" FWD_KEY "</text>") != NULL,
     "each column is labelled with its key, whole, and titled with it");
  ok(count(page, "<text class=\"vm\"") == N_VMS, "and a row for each VM");
  ok(count(page, "<rect class=\"cell\"") == 2 * N_VMS, "with a cell for each VM and key");
  char *hot = cell_fill(page, "web-7: " ROOT_KEY " = ");
  char *cold = cell_fill(page, "web-3: " ROOT_KEY ": with its peers");
  ok(*hot && strcmp(hot, "rgb(255,255,255)") != 0, "web-7's root login cell is colored (%s)", hot);
  is_str(cold, "rgb(255,255,255)", "a VM that agrees with its peers has a white cell");
  free(hot);
  free(cold);
  ok(strstr(page, "web-7: " ROOT_KEY " = &lt;script&gt;") != NULL,
     "the cell's title holds the VM, the key and its escaped value");
}

static void test_finding_rows(const char *page) {
  /* The rows of each VM's findings. */
  char *s7 = section_of(page, "web-7");
  ok(strstr(s7, "<p>1 alarm among ") != NULL, "web-7's section counts its one alarm");
  ok(strstr(s7, "<td>" ROOT_KEY "</td><td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</td>"
                "<td>no</td><td>11 of 11</td>") != NULL,
     "its finding's row holds the key, its value, the majority value and its share");
  ok(strstr(s7, "<tr class=\"finding failure\"><td>1</td>") ||
         strstr(s7, "<tr class=\"finding warning\"><td>1</td>"),
     "and is the first row, marked with its severity");
  ok(strstr(s7, FWD_KEY) == NULL, "a key web-7 shares with most of its peers has no row");
  free(s7);
  char *s6 = section_of(page, "web-6");
  ok(strstr(s6, "<td>" FWD_KEY "</td><td>1</td><td>0</td><td>11 of 11</td>") != NULL,
     "web-6's row says its 1 against its peers' 0");
  free(s6);
  char *s1 = section_of(page, "web-1");
  ok(strstr(s1, "<p>Not ranked (no peers).</p>") != NULL, "a VM not ranked says so");
  free(s1);
  char *s0 = section_of(page, "web-0");
  ok(strstr(s0, "<h4>Since 2026-11-24T18:00:00Z: 1 change</h4>") != NULL,
     "web-0's section counts the changes since its previous snapshot");
  ok(strstr(s0, "<tr class=\"change\"><td>" ROOT_KEY "</td><td>yes</td><td>no</td>") != NULL,
     "and lists the change with what was and what is");
  free(s0);
}

static void test_fewer_columns(struct vs_report *r) {
  /* Fewer columns: the highest-scoring key stays. */
  r->heat_keys = 1;
  char *page = vs_report_html(r);
  ok(count(page, "<text class=\"key\"") == 1, "heat_keys 1 keeps one column");
  ok(count(page, "<rect class=\"cell\"") == N_VMS, "and one cell per VM");
  free(page);
}

int main(void) {
  plan_no_plan();
  struct fleet f;
  fleet_make(&f);
  struct vs_report r = {.title = "Fleet <b>&</b>", .vms = f.vms, .n = N_VMS};
  char *page = vs_report_html(&r);
  test_page_escapes(page);
  test_heat_map(page);
  test_finding_rows(page);
  free(page);
  test_fewer_columns(&r);
  fleet_free(&f);
  return done_testing();
}
