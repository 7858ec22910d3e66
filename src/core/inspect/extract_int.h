/* extract_int.h: shared between the extract_*.c files; not part of the core's interface. */
#ifndef VS_EXTRACT_INT_H
#define VS_EXTRACT_INT_H

#include "extract.h"
#include "parse_cache.h"
#include "strmap.h"

#include <augeas.h>

struct vs_extractor {
  struct vs_watch *watch;
  struct vs_regwatch *regwatch;
  augeas *aug;                  /* lenses load on first use and stay loaded */
  char *aug_version;            /* Augeas's, part of the parse cache's keys */
  struct vs_parse_cache *cache; /* borrowed; NULL: every file is parsed */
  struct lens_rule *rules;
  size_t n_rules;
  bool rules_loaded;
  struct vs_buf buf;   /* scratch for file contents */
  uint64_t bytes_read; /* for the current document, against read_budget */
  uint64_t read_budget;
  struct vs_strmap *conffiles; /* this document's dpkg conffiles: path -> "PACKAGE MD5" */
};

struct lens_rule {
  char *lens;
  char **incl, **excl;
  size_t n_incl, n_excl;
};

/* Reads guest PATH into X->buf, at most MAX bytes and what is left of the document's read
 * budget (so that a guest with a million large unit files cannot keep us reading). Returns 0,
 * or -1 after recording why in DOC's skipped list; a missing file is not recorded when
 * MISSING_OK. */
/* A directory the extractor had to list could not be: recorded as skipped in DOC unless it is
 * not there (ENOENT, ENOTDIR), which is what most guests' optional directories are; clears ERR.
 * A listing that fails silently would drop every setting under it with no trace. */
void vs_x_list_failed(struct vs_feature *doc, const char *dir, struct vs_err *err);
int vs_x_read(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
              const char *path, size_t max, bool missing_ok);

void vs_x_os(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc);
void vs_x_accounts(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc);
void vs_x_services(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc);
void vs_x_sysctl(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc);
size_t vs_x_dpkg(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc);
size_t vs_x_rpm(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc);
size_t vs_x_backend_packages(struct vs_source *src, struct vs_feature *doc);
void vs_x_files(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
                struct vs_extract_stats *stats);
/* Closes X's Augeas handle and frees its lens rules (under the Augeas lock, extract_files.c). */
void vs_x_close_augeas(struct vs_extractor *x);

/* Sets the OS fact FIELD and its os: setting, recording ORIGIN. */
void vs_x_set_os(struct vs_feature *doc, const char *field, const char *value, const char *origin);
/* Windows (extract_win.c): the guest path of the system root ("/Windows", any case) when it
 * holds System32/config/SOFTWARE and SYSTEM, else NULL; then everything read from its hives. */
char *vs_x_win_systemroot(struct vs_source *src);
void vs_x_windows(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
                  const char *root, struct vs_extract_stats *st);

/* Splits S in place at DELIM into at most MAX fields; returns how many. */
size_t vs_x_split(char *s, char delim, char **fields, size_t max);

#endif
