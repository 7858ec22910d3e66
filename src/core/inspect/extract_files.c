/* Watched config files: settings through Augeas, and owner, mode and digest of each file.
 *
 * Augeas parses text we hand it (aug_text_store) and never opens a guest file: a guest's
 * symlink cannot point it at a host file, and the same code serves every source backend.
 * Lens modules load on first use (AUG_NO_MODL_AUTOLOAD), which is what keeps a document's
 * Augeas work to milliseconds rather than the second a full autoload costs. A file parsed
 * before (same lens, path, content and Augeas) is answered from the parse cache when the
 * extractor has one: its records replay exactly what parsing it put in the document. */
#include "extract_int.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "dl.h"

/* Augeas (and the libxml2, ICU and libstdc++ it needs) is opened by the first document that
 * parses a config file: mapping them was a third of every command's start-up, and vmscope
 * patchset and send, a drift over saved documents, and the drift and action plugins never
 * parse one. */
/* clang-format off */
#define AUGEAS_SYMBOLS(X) X(aug_init) X(aug_close) X(aug_error) X(aug_error_details)              \
  X(aug_error_message) X(aug_error_minor_message) X(aug_get) X(aug_match) X(aug_rm) X(aug_set)    \
  X(aug_text_store)
/* clang-format on */
VS_DL_LIBRARY(augeas_lib, VS_SONAME_AUGEAS, "libaugeas0", AUGEAS_SYMBOLS);

#define AUG_ROOT "/nonexistent/vmscope" /* Augeas must never read the host's files */

/* Augeas is not safe in two threads at once even with a handle each: compiling a lens's
 * regular expressions sets glibc's process-wide re_syntax_options and puts the old value back
 * around each re_compile_pattern (another thread's compile can take the wrong syntax, and that
 * lens then fails on every file for the handle's life), and libaugeas and libfa keep static
 * state besides. helgrind reports races on all three with two threads and two handles; a
 * document of vmscope_snapshot's once lost its sshd_config settings in CI. Every extractor's
 * Augeas work in the process holds this lock: config parsing is milliseconds per file, so
 * workers rarely wait on it. */
static pthread_mutex_t augeas_lock = PTHREAD_MUTEX_INITIALIZER;

static augeas *ensure_aug(struct vs_extractor *x, struct vs_feature *doc) {
  if (!x->aug) {
    struct vs_err err = {0};
    if (vs_dl_load(&augeas_lib, &err) < 0) {
      vs_feature_skip(doc, "file:", "%s; no config file settings read", vs_err_msg(&err));
      vs_err_clear(&err);
      return NULL;
    }
    x->aug = sym_aug_init(AUG_ROOT, NULL, AUG_NO_MODL_AUTOLOAD | AUG_NO_LOAD | AUG_SAVE_NOOP);
    if (!x->aug)
      vs_feature_skip(doc, "file:", "Augeas failed to start; no config file settings read");
  }
  return x->aug;
}

void vs_x_close_augeas(struct vs_extractor *x) {
  if (x->aug) {
    pthread_mutex_lock(&augeas_lock);
    sym_aug_close(x->aug);
    pthread_mutex_unlock(&augeas_lock);
    x->aug = NULL;
  }
  for (size_t i = 0; i < x->n_rules; i++) {
    struct lens_rule *r = &x->rules[i];
    free(r->lens);
    vs_strv_free(r->incl, r->n_incl);
    vs_strv_free(r->excl, r->n_excl);
  }
  free(x->rules);
  x->rules = NULL;
  x->n_rules = 0;
  free(x->aug_version);
  x->aug_version = NULL;
}

static char **match_values(augeas *a, const char *expr, size_t *count) {
  char **m = NULL;
  int n = sym_aug_match(a, expr, &m);
  char **v = vs_xcalloc(n > 0 ? (size_t)n : 1, sizeof(char *));
  size_t out = 0;
  for (int i = 0; i < n; i++) {
    const char *val = NULL;
    if (sym_aug_get(a, m[i], &val) == 1 && val) v[out++] = vs_xstrdup(val);
    free(m[i]);
  }
  free(m);
  *count = out;
  return v;
}

/* Learns which lens Augeas itself would use for which paths, from the transforms its modules
 * declare. Costs a full module load (a few hundred ms) once, only for watch entries that name
 * no lens. */
static void load_rules(struct vs_extractor *x) {
  x->rules_loaded = true;
  struct vs_err err = {0};
  if (vs_dl_load(&augeas_lib, &err) < 0) { /* ensure_aug says why, in the document */
    vs_err_clear(&err);
    return;
  }
  pthread_mutex_lock(&augeas_lock);
  augeas *a = sym_aug_init(AUG_ROOT, NULL, AUG_NO_LOAD | AUG_SAVE_NOOP);
  if (!a) {
    pthread_mutex_unlock(&augeas_lock);
    return;
  }
  char **m = NULL;
  int n = sym_aug_match(a, "/augeas/load/*", &m);
  x->rules = vs_xcalloc(n > 0 ? (size_t)n : 1, sizeof(struct lens_rule));
  for (int i = 0; i < n; i++) {
    char *expr = vs_xasprintf("%s/lens", m[i]);
    const char *lens = NULL;
    if (sym_aug_get(a, expr, &lens) == 1 && lens) {
      struct lens_rule *r = &x->rules[x->n_rules++];
      r->lens = vs_xstrdup(lens[0] == '@' ? lens + 1 : lens);
      if (lens[0] == '@') { /* "@Sshd" names the module's lns */
        char *full = vs_xasprintf("%s.lns", r->lens);
        free(r->lens);
        r->lens = full;
      }
      char *ie = vs_xasprintf("%s/incl", m[i]), *ee = vs_xasprintf("%s/excl", m[i]);
      r->incl = match_values(a, ie, &r->n_incl);
      r->excl = match_values(a, ee, &r->n_excl);
      free(ie);
      free(ee);
    }
    free(expr);
    free(m[i]);
  }
  free(m);
  sym_aug_close(a);
  pthread_mutex_unlock(&augeas_lock);
}

static const char *lens_for(struct vs_extractor *x, const char *path) {
  if (!x->rules_loaded) load_rules(x);
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  for (size_t i = 0; i < x->n_rules; i++) {
    struct lens_rule *r = &x->rules[i];
    bool in = false;
    for (size_t j = 0; j < r->n_incl && !in; j++)
      in = fnmatch(r->incl[j], path, FNM_PATHNAME | FNM_NOESCAPE) == 0;
    for (size_t j = 0; j < r->n_excl && in; j++) {
      const char *pat = r->excl[j];
      in = fnmatch(pat, strchr(pat, '/') ? path : base, FNM_PATHNAME | FNM_NOESCAPE) != 0;
    }
    if (in) return r->lens;
  }
  return NULL;
}

/* Why the last aug_text_store into /vs/out failed, as "line L: message". */
static char *parse_error(augeas *aug) {
  if (sym_aug_error(aug) != AUG_NOERROR) {
    const char *minor = sym_aug_error_minor_message(aug), *details = sym_aug_error_details(aug);
    return vs_xasprintf("%s%s%s%s%s", sym_aug_error_message(aug), minor ? ": " : "",
                        minor ? minor : "", details ? ": " : "", details ? details : "");
  }
  const char *msg = NULL, *line = NULL, *ch = NULL;
  sym_aug_get(aug, "/augeas/text/vs/out/error/message", &msg);
  sym_aug_get(aug, "/augeas/text/vs/out/error/line", &line);
  sym_aug_get(aug, "/augeas/text/vs/out/error/char", &ch);
  return vs_xasprintf("line %s, column %s: %s", line ? line : "?", ch ? ch : "?",
                      msg ? msg : "the lens did not match");
}

/* What parsing one file gives, as records a document replays (and the parse cache keeps):
 *   'S' NODE '\0' VALUE '\0'   the setting file:PATH:NODE = VALUE
 *   'D' NODE '\0' VALUE '\0'   that setting's default
 *   'K' REASON '\0'             PATH skipped, and why
 *   'P' or 'F'                 the file parsed, or failed to
 * Bump PARSE_SCHEMA whenever what these records say for a given file changes: cached entries
 * of other schemas then miss. */
#define PARSE_SCHEMA 1

static void record(struct vs_buf *out, char kind, const char *a, const char *b) {
  vs_buf_addc(out, kind);
  if (a) vs_buf_add(out, a, strlen(a) + 1);
  if (b) vs_buf_add(out, b, strlen(b) + 1);
}

/* The string at *P (within END), and *P moved past it; NULL when none ends before END. */
static const char *next_string(const char **p, const char *end) {
  const char *s = *p, *nul = memchr(s, '\0', (size_t)(end - s));
  if (!nul) return NULL;
  *p = nul + 1;
  return s;
}

/* Puts the records DATA (LEN bytes) into DOC as PATH's, or only checks them when DOC is NULL.
 * False when they are malformed (a cache entry of another writer): nothing is put then, as the
 * caller checks first. */
static bool replay(const char *data, size_t len, struct vs_feature *doc, const char *path,
                   struct vs_extract_stats *st) {
  const char *p = data, *end = data + len;
  while (p < end) {
    char kind = *p++;
    const char *a = NULL, *b = NULL;
    switch (kind) {
    case 'S':
    case 'D':
      if (!(a = next_string(&p, end)) || !(b = next_string(&p, end))) return false;
      if (!doc) break;
      char *key = vs_xasprintf("file:%s:%s", path, a);
      if (kind == 'S')
        vs_feature_set(doc, key, b, path);
      else
        vs_feature_set_default(doc, key, b);
      free(key);
      break;
    case 'K':
      if (!(a = next_string(&p, end))) return false;
      if (doc) vs_feature_skip(doc, path, "%s", a);
      break;
    case 'P':
    case 'F':
      if (doc) ++*(kind == 'P' ? &st->files_parsed : &st->files_failed);
      break;
    default:
      return false;
    }
  }
  return true;
}

/* Every node with a value under /vs/out becomes a setting record (NODE = value), or when
 * AS_DEFAULTS the record of that setting's default. */
static void emit_settings(augeas *aug, struct vs_buf *out, bool as_defaults) {
  char **m = NULL;
  int n = sym_aug_match(aug, "/vs/out//*", &m);
  /* A valueless leaf is a flag (sudoers' "Defaults env_reset"): present, with value "". The
   * matches come level by level, so first note every node that has a child. */
  _cleanup_(vs_strmap_freep) struct vs_strmap *parents = vs_strmap_new(NULL);
  for (int i = 0; i < n; i++) {
    char *slash = strrchr(m[i], '/');
    while (slash && slash > m[i] && slash[-1] == '\\') /* an escaped '/' inside a label */
      slash = memrchr(m[i], '/', (size_t)(slash - m[i]));
    if (slash) {
      *slash = '\0';
      vs_strmap_put(parents, m[i], NULL);
      *slash = '/';
    }
  }
  size_t taken = 0;
  const size_t prefix = strlen("/vs/out/");
  for (int i = 0; i < n; i++) {
    const char *val = NULL;
    if (taken < VS_EXTRACT_MAX_FILE_SETTINGS && !strstr(m[i], "#comment") &&
        sym_aug_get(aug, m[i], &val) == 1 && (val || !vs_strmap_has(parents, m[i]))) {
      record(out, as_defaults ? 'D' : 'S', m[i] + prefix, val ? val : "");
      if (++taken == VS_EXTRACT_MAX_FILE_SETTINGS && !as_defaults) {
        char *why = vs_xasprintf("more than %d settings; the rest not recorded",
                                 VS_EXTRACT_MAX_FILE_SETTINGS);
        record(out, 'K', why, NULL);
        free(why);
      }
    }
    free(m[i]);
  }
  free(m);
}

static bool store_text(augeas *aug, const char *lens, const char *text) {
  sym_aug_rm(aug, "/vs");
  sym_aug_rm(aug, "/augeas/text/vs");
  return sym_aug_set(aug, "/vs/in", text) == 0 &&
         sym_aug_text_store(aug, lens, "/vs/in", "/vs/out") == 0;
}

/* Lenses of files that, as shipped, list every option at its default value commented out
 * ("#PermitRootLogin prohibit-password"; OpenSSH's sshd_config says this is its strategy).
 * Other files comment out suggestions instead (sysctl.conf's "#net.ipv4.ip_forward=1" is the
 * opposite of the kernel's default), so the rule is opt-in per lens. */
static bool documents_defaults(const char *lens) {
  static const char *const lenses[] = {"Sshd.lns"};
  for (size_t i = 0; i < sizeof(lenses) / sizeof(lenses[0]); i++)
    if (strcmp(lens, lenses[i]) == 0) return true;
  return false;
}

/* The commented-out directives of TEXT ("#Name value", no space after '#', so prose comments
 * and indented examples are left out; a "#Match" block is an example, not a default), one per
 * line with the '#' removed. */
static char *commented_directives(const char *text) {
  struct vs_buf out = {0};
  for (const char *line = text; *line;) {
    const char *eol = strchrnul(line, '\n');
    size_t len = (size_t)(eol - line);
    if (len > 3 && line[0] == '#' &&
        ((line[1] >= 'A' && line[1] <= 'Z') || (line[1] >= 'a' && line[1] <= 'z'))) {
      size_t name =
          1 + strspn(line + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
      bool has_value = name < len && (line[name] == ' ' || line[name] == '\t');
      if (has_value && !(name == 6 && strncasecmp(line + 1, "Match", 5) == 0)) {
        vs_buf_add(&out, line + 1, len - 1);
        vs_buf_add(&out, "\n", 1);
      }
    }
    line = *eol ? eol + 1 : eol;
  }
  vs_buf_add(&out, "", 0);
  return vs_buf_steal(&out);
}

/* Records the defaults a shipped file documents in its comments. The directives are parsed
 * together; when one of them does not parse, each is tried alone so the rest still count. */
static void note_commented_defaults(augeas *aug, struct vs_buf *out, const char *lens,
                                    const char *text) {
  char *directives = commented_directives(text);
  if (!*directives) {
    free(directives);
    return;
  }
  if (store_text(aug, lens, directives)) {
    emit_settings(aug, out, true);
  } else {
    for (char *line = directives; *line;) {
      char *eol = strchr(line, '\n');
      *eol = '\0';
      char *one = vs_xasprintf("%s\n", line);
      if (store_text(aug, lens, one)) emit_settings(aug, out, true);
      free(one);
      line = eol + 1;
    }
  }
  free(directives);
}

/* Parses X->buf with LENS into records in OUT. False when Augeas cannot start (recorded in
 * DOC: no records then, and nothing worth caching). */
static bool parse_records_locked(struct vs_extractor *x, struct vs_feature *doc, const char *lens,
                                 struct vs_buf *out) {
  augeas *aug = ensure_aug(x, doc);
  if (!aug) return false;
  if (!store_text(aug, lens, x->buf.data)) {
    char *why = parse_error(aug);
    char *reason = vs_xasprintf("not parsed with %s: %s", lens, why);
    record(out, 'K', reason, NULL);
    record(out, 'F', NULL, NULL);
    free(reason);
    free(why);
  } else {
    record(out, 'P', NULL, NULL);
    emit_settings(aug, out, false);
    if (documents_defaults(lens)) note_commented_defaults(aug, out, lens, x->buf.data);
  }
  sym_aug_rm(aug, "/vs");
  sym_aug_rm(aug, "/augeas/text/vs");
  return true;
}

/* The parse cache's key for PATH's content under LENS, into KEY. False when there is no cache,
 * Augeas cannot start (recorded in DOC), or the digest fails. */
static bool cache_key(struct vs_extractor *x, struct vs_feature *doc, const char *path,
                      const char *lens, unsigned char key[VS_PARSE_CACHE_KEY_LEN]) {
  if (!x->cache) return false;
  if (!x->aug_version) { /* Augeas's own version: a new one may parse differently */
    pthread_mutex_lock(&augeas_lock);
    augeas *aug = ensure_aug(x, doc);
    const char *v = NULL;
    if (aug)
      x->aug_version = vs_xstrdup(sym_aug_get(aug, "/augeas/version", &v) == 1 && v ? v : "?");
    pthread_mutex_unlock(&augeas_lock);
    if (!aug) return false;
  }
  return vs_parse_cache_key(key, lens, path, x->buf.data, x->buf.len, x->aug_version,
                            PARSE_SCHEMA) == 0;
}

static void parse_settings(struct vs_extractor *x, struct vs_feature *doc, const char *path,
                           const char *lens, struct vs_extract_stats *st) {
  unsigned char key[VS_PARSE_CACHE_KEY_LEN];
  bool keyed = cache_key(x, doc, path, lens, key);
  if (keyed) {
    size_t len = 0;
    _cleanup_(vs_freep) char *hit = vs_parse_cache_get(x->cache, key, &len);
    if (hit && replay(hit, len, NULL, path, st)) {
      replay(hit, len, doc, path, st);
      st->files_cached++;
      return;
    }
  }
  struct vs_buf out = {0};
  pthread_mutex_lock(&augeas_lock);
  bool parsed = parse_records_locked(x, doc, lens, &out);
  pthread_mutex_unlock(&augeas_lock);
  if (parsed) {
    replay(out.data ? out.data : "", out.len, doc, path, st);
    if (keyed) vs_parse_cache_put(x->cache, key, out.data ? out.data : "", out.len);
  }
  vs_buf_free(&out);
}

void vs_extractor_set_parse_cache(struct vs_extractor *x, struct vs_parse_cache *cache) {
  x->cache = cache;
}

/* A dpkg conffile: which package ships it, and whether this copy is the shipped one (its MD5
 * is the one dpkg recorded). A never-edited conffile's digest is its package's default, so an
 * untouched file compares equal across package versions and only an edit stands out. */
static void note_conffile(struct vs_extractor *x, struct vs_feature *doc, const char *path,
                          const char *sha256) {
  const char *entry = vs_strmap_get(x->conffiles, path);
  if (!entry) return;
  const char *space = strchr(entry, ' ');
  char *package = vs_xstrndup(entry, (size_t)(space - entry));
  char *key = vs_xasprintf("meta:%s:package", path);
  vs_feature_set(doc, key, package, "/var/lib/dpkg/status");
  free(key);
  free(package);
  unsigned char md[VS_MD5_LEN];
  char hex[2 * VS_MD5_LEN + 1];
  if (!sha256 || vs_md5(x->buf.data, x->buf.len, md, NULL) < 0) return;
  vs_hex(md, sizeof(md), hex);
  if (strcmp(hex, space + 1) == 0) {
    key = vs_xasprintf("meta:%s:sha256", path);
    vs_feature_set_default(doc, key, sha256);
    free(key);
  }
}

/* Files whose digest would help guess a secret they hold: owner and mode only. */
static bool is_secret(const char *path) {
  return strcmp(path, "/etc/shadow") == 0 || strcmp(path, "/etc/gshadow") == 0;
}

static void watch_one(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
                      const char *path, const char *lens, struct vs_extract_stats *st) {
  struct vs_err err = {0};
  struct vs_stat lst, fst;
  if (vs_source_stat(src, path, false, &lst, &err) < 0) {
    vs_feature_skip(doc, path, "%s", vs_err_msg(&err));
    vs_err_clear(&err);
    return;
  }
  if (lst.type == VS_FT_LNK) {
    char *target = NULL;
    if (vs_source_readlink(src, path, &target, &err) == 0) {
      char *key = vs_xasprintf("meta:%s:link", path);
      vs_feature_set(doc, key, target, path);
      free(key);
      free(target);
    }
    vs_err_clear(&err);
  }
  if (vs_source_stat(src, path, true, &fst, &err) < 0) {
    vs_feature_skip(doc, path, "%s", vs_err_msg(&err));
    vs_err_clear(&err);
    return;
  }
  if (fst.type == VS_FT_DIR) return; /* a glob matched a directory: nothing to parse */
  char *key = vs_xasprintf("meta:%s:owner", path);
  vs_feature_setf(doc, key, path, "%u:%u", fst.uid, fst.gid);
  free(key);
  key = vs_xasprintf("meta:%s:mode", path);
  vs_feature_setf(doc, key, path, "%04o", fst.mode);
  free(key);
  if (fst.type != VS_FT_REG) {
    vs_feature_skip(doc, path, "is a %s; not read", vs_ftype_name(fst.type));
    return;
  }
  if (vs_x_read(x, src, doc, path, VS_EXTRACT_MAX_CONFIG, false) < 0) return;
  if (!is_secret(path)) {
    unsigned char md[VS_SHA256_LEN];
    if (vs_sha256(x->buf.data, x->buf.len, md, &err) == 0) {
      char hex[2 * VS_SHA256_LEN + 1];
      vs_hex(md, sizeof(md), hex);
      key = vs_xasprintf("meta:%s:sha256", path);
      vs_feature_set(doc, key, hex, path);
      free(key);
      note_conffile(x, doc, path, hex);
    } else {
      vs_feature_skip(doc, path, "no digest: %s", vs_err_msg(&err));
    }
    vs_err_clear(&err);
  }
  if (lens && strcmp(lens, VS_WATCH_NO_LENS) == 0) return;
  if (memchr(x->buf.data, '\0', x->buf.len)) {
    vs_feature_skip(doc, path, "holds NUL bytes, so it is not a text config file; not parsed");
    st->files_failed++;
    return;
  }
  const char *use = lens ? lens : lens_for(x, path);
  if (!use) {
    vs_feature_skip(doc, path, "no Augeas lens handles this path; name one in the watch list");
    return;
  }
  parse_settings(x, doc, path, use, st);
}

void vs_x_files(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
                struct vs_extract_stats *st) {
  _cleanup_(vs_strmap_freep) struct vs_strmap *done = vs_strmap_new(NULL);
  for (size_t i = 0; i < vs_watch_count(x->watch); i++) {
    const char *pattern, *lens;
    vs_watch_entry(x->watch, i, &pattern, &lens);
    char **paths = NULL;
    size_t n = 0;
    bool trunc = false;
    struct vs_err err = {0};
    if (vs_source_glob(src, pattern, &paths, &n, &trunc, &err) < 0) {
      vs_feature_skip(doc, pattern, "%s", vs_err_msg(&err));
      vs_err_clear(&err);
      continue;
    }
    if (trunc)
      vs_feature_skip(doc, pattern, "matches more than %d paths; the rest not read",
                      VS_SOURCE_MAX_GLOB);
    for (size_t j = 0; j < n; j++)
      if (vs_strmap_put(done, paths[j], NULL)) /* first entry naming a file wins */
        watch_one(x, src, doc, paths[j], lens, st);
    vs_strv_free(paths, n);
  }
}
