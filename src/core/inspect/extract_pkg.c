/* Installed packages: dpkg's status file, and an RPM database read with librpm. */
#include "extract_int.h"
#include "dl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rpm/header.h>
#include <rpm/rpmdb.h>
#include <rpm/rpmlib.h>
#include <rpm/rpmmacro.h>
#include <rpm/rpmts.h>

/* librpm (and librpmio, its dependency, whose macro calls dlsym finds through it) is opened
 * only when a guest has an RPM database: with lua, sqlite, popt and libgcrypt behind it, it
 * was a sixth of every command's start-up. */
/* clang-format off */
#define RPM_SYMBOLS(X)                                                                              \
  X(rpmReadConfigFiles) X(rpmFreeRpmrc) X(rpmFreeMacros) X(rpmPushMacro) X(rpmPopMacro)            \
  X(rpmtsCreate) X(rpmtsFree) X(rpmtsSetRootDir) X(rpmtsSetVSFlags) X(rpmtsVSFlags)               \
  X(rpmtsInitIterator) X(rpmdbNextIterator) X(rpmdbFreeIterator) X(headerGetString)                \
  X(headerGetAsString)
/* clang-format on */
VS_DL_LIBRARY(rpm_lib, VS_SONAME_RPM, "librpm9", RPM_SYMBOLS);

/* dpkg's names for architectures -> uname's, for os.arch when the guest has no ELF shell. */
static const char *uname_arch(const char *deb) {
  static const char *const map[][2] = {
      {"amd64", "x86_64"},    {"i386", "i386"},   {"arm64", "aarch64"},  {"armhf", "armv7l"},
      {"ppc64el", "ppc64le"}, {"s390x", "s390x"}, {"riscv64", "riscv64"}};
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
    if (strcmp(deb, map[i][0]) == 0) return map[i][1];
  return deb;
}

struct stanza {
  const char *package, *status, *version, *arch;
  char **conffiles; /* the Conffiles field's lines: " PATH MD5 [obsolete]" */
  size_t n_conffiles, cap_conffiles;
};

/* Records which package ships each of its conffiles and the MD5 of the shipped version, so that
 * extracting the file can tell an edited conffile from the package's own. Obsolete entries
 * (the package no longer ships the file) are left out. */
static void note_conffiles(struct vs_strmap *conffiles, const struct stanza *s) {
  for (size_t i = 0; i < s->n_conffiles; i++) {
    char *fields[3] = {0};
    size_t n = 0;
    for (char *tok = s->conffiles[i]; n < 3;) {
      tok += strspn(tok, " \t");
      if (!*tok) break;
      fields[n++] = tok;
      tok += strcspn(tok, " \t");
      if (*tok) *tok++ = '\0';
    }
    if (n < 2 || fields[0][0] != '/' || strlen(fields[1]) != 32) continue;
    if (n == 3 &&
        (strcmp(fields[2], "obsolete") == 0 || strcmp(fields[2], "remove-on-upgrade") == 0))
      continue;
    vs_strmap_put(conffiles, fields[0], vs_xasprintf("%s %s", s->package, fields[1]));
  }
}

static void emit_dpkg(struct vs_feature *doc, struct vs_strmap *conffiles, const struct stanza *s,
                      const char *native, size_t *count) {
  if (!s->package || !s->status || !s->version) return;
  /* Status is "want flag state"; only "installed" counts (not config-files, half-*). */
  const char *state = strrchr(s->status, ' ');
  if (!state || strcmp(state + 1, "installed") != 0) return;
  if (conffiles) note_conffiles(conffiles, s);
  char *key;
  if (s->arch && native && strcmp(s->arch, native) != 0 && strcmp(s->arch, "all") != 0)
    key = vs_xasprintf("pkg:%s:%s", s->package, s->arch); /* a foreign (multiarch) package */
  else
    key = vs_xasprintf("pkg:%s", s->package);
  vs_feature_set(doc, key, s->version, "/var/lib/dpkg/status");
  free(key);
  (*count)++;
}

/* Walks the status file's stanzas, calling FN for each. Field values point into TEXT. */
static void each_stanza(char *text, void (*fn)(const struct stanza *, void *), void *ctx) {
  struct stanza s = {0};
  bool in_conffiles = false;
  char *line = text;
  for (;;) {
    char *eol = strchr(line, '\n');
    if (eol) *eol = '\0';
    if (!*line) {
      if (s.package) fn(&s, ctx);
      s.package = s.status = s.version = s.arch = NULL;
      s.n_conffiles = 0;
      in_conffiles = false;
    } else if (*line == ' ' || *line == '\t') {
      if (in_conffiles) {
        if (s.n_conffiles == s.cap_conffiles) {
          s.cap_conffiles = s.cap_conffiles ? 2 * s.cap_conffiles : 16;
          s.conffiles = vs_xrealloc(s.conffiles, s.cap_conffiles * sizeof(char *));
        }
        s.conffiles[s.n_conffiles++] = line;
      }
    } else {
      in_conffiles = strncmp(line, "Conffiles:", 10) == 0;
      char *colon = strchr(line, ':');
      if (colon) {
        *colon = '\0';
        char *v = vs_trim(colon + 1);
        if (strcmp(line, "Package") == 0)
          s.package = v;
        else if (strcmp(line, "Status") == 0)
          s.status = v;
        else if (strcmp(line, "Version") == 0)
          s.version = v;
        else if (strcmp(line, "Architecture") == 0)
          s.arch = v;
      }
    }
    if (!eol) break;
    line = eol + 1;
  }
  if (s.package) fn(&s, ctx);
  free(s.conffiles);
}

struct dpkg_ctx {
  struct vs_feature *doc;
  struct vs_strmap *conffiles;
  const char *native;
  size_t count;
};

/* The Architecture of the "dpkg" stanza, which is the native one ("dpkg --print-architecture"),
 * found by scanning lines without touching TEXT (the parse that follows writes into it). */
static char *dpkg_native_arch(const char *text) {
  bool in_dpkg = false;
  for (const char *line = text; *line;) {
    const char *eol = strchrnul(line, '\n');
    size_t len = (size_t)(eol - line);
    char *value = NULL;
    if (len == 0) {
      in_dpkg = false;
    } else if (len > 8 && memcmp(line, "Package:", 8) == 0) {
      value = vs_xstrndup(line + 8, len - 8);
      in_dpkg = strcmp(vs_trim(value), "dpkg") == 0;
    } else if (in_dpkg && len > 13 && memcmp(line, "Architecture:", 13) == 0) {
      value = vs_xstrndup(line + 13, len - 13);
      char *arch = vs_xstrdup(vs_trim(value));
      free(value);
      return arch;
    }
    free(value);
    line = *eol ? eol + 1 : eol;
  }
  return NULL;
}

static void emit_stanza(const struct stanza *s, void *p) {
  struct dpkg_ctx *c = p;
  emit_dpkg(c->doc, c->conffiles, s, c->native, &c->count);
}

size_t vs_x_dpkg(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc) {
  if (vs_x_read(x, src, doc, "/var/lib/dpkg/status", VS_EXTRACT_MAX_DATABASE, true) < 0) return 0;
  char *native = dpkg_native_arch(x->buf.data);
  struct dpkg_ctx c = {.doc = doc, .conffiles = x->conffiles, .native = native};
  each_stanza(x->buf.data, emit_stanza, &c);
  if (c.count) {
    vs_feature_set_os(doc, "package_format", "deb");
    vs_feature_set(doc, "os:package_format", "deb", "/var/lib/dpkg/status");
    if (c.native && !vs_feature_os(doc, "arch")) {
      vs_feature_set_os(doc, "arch", uname_arch(c.native));
      vs_feature_set(doc, "os:arch", uname_arch(c.native), "/var/lib/dpkg/status");
    }
  }
  free(native);
  return c.count;
}

/* -------------------------------------------------------------------------------------- rpm */

/* librpm keeps its configuration and macros in process-wide state: read the configuration
 * on first use, and let one extraction at a time set the database macros and iterate. */
static pthread_mutex_t rpm_lock = PTHREAD_MUTEX_INITIALIZER;
static bool rpm_config_read; /* under rpm_lock */

void vs_extract_release(void) {
  pthread_mutex_lock(&rpm_lock);
  if (rpm_config_read) {
    sym_rpmFreeMacros(NULL);
    sym_rpmFreeRpmrc();
    rpm_config_read = false;
  }
  pthread_mutex_unlock(&rpm_lock);
}

static const struct {
  const char *file, *backend;
} rpm_backends[] = {{"rpmdb.sqlite", "sqlite"}, {"Packages.db", "ndb"}, {"Packages", "bdb_ro"}};

/* Removes the staging directory with whatever librpm left in it (sqlite adds -shm, -wal). */
static void remove_stage(const char *stage) {
  char *dbpath = vs_xasprintf("%s/var/lib/rpm", stage);
  DIR *d = opendir(dbpath);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)))
      if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
        unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
  }
  rmdir(dbpath);
  free(dbpath);
  static const char *const parents[] = {"/var/lib", "/var", ""};
  for (size_t i = 0; i < 3; i++) {
    char *p = vs_xasprintf("%s%s", stage, parents[i]);
    rmdir(p);
    free(p);
  }
}

static int write_file(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return -1;
    }
    off += (size_t)w;
  }
  return close(fd);
}

/* Finds the guest's RPM database: its directory, librpm's backend for it, and the names in
 * that directory (*NAMES, *N). False when there is none. */
static bool find_rpmdb(struct vs_source *src, struct vs_feature *doc, const char **dbdir,
                       const char **backend, char ***names, size_t *n) {
  static const char *const dbdirs[] = {"/var/lib/rpm", "/usr/lib/sysimage/rpm"};
  for (size_t d = 0; d < 2; d++) {
    bool trunc = false;
    struct vs_err err = {0};
    if (vs_source_list(src, dbdirs[d], names, n, &trunc, &err) < 0) {
      vs_x_list_failed(doc, dbdirs[d], &err);
      continue;
    }
    for (size_t b = 0; b < sizeof(rpm_backends) / sizeof(rpm_backends[0]); b++)
      for (size_t i = 0; i < *n; i++)
        if (strcmp((*names)[i], rpm_backends[b].file) == 0) {
          *backend = rpm_backends[b].backend;
          *dbdir = dbdirs[d];
          return true;
        }
    vs_strv_free(*names, *n);
    *names = NULL;
    *n = 0;
  }
  return false;
}

/* A private directory STAGE with var/lib/rpm under it (*DBPATH), where librpm will look. */
static int make_stage(struct vs_feature *doc, const char *dbdir, char **stage, char **dbpath) {
  const char *tmp = getenv("TMPDIR");
  *stage = vs_xasprintf("%s/vmscope-rpm-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(*stage)) {
    vs_feature_skip(doc, dbdir, "cannot make a staging directory %s: %s", *stage, strerror(errno));
    free(vs_steal(stage));
    return -1;
  }
  *dbpath = vs_xasprintf("%s/var/lib/rpm", *stage);
  char *mid = vs_xasprintf("%s/var/lib", *stage), *top = vs_xasprintf("%s/var", *stage);
  bool made = mkdir(top, 0700) == 0 && mkdir(mid, 0700) == 0 && mkdir(*dbpath, 0700) == 0;
  free(mid);
  free(top);
  if (made) return 0;
  vs_feature_skip(doc, dbdir, "cannot make %s: %s", *dbpath, strerror(errno));
  return -1;
}

/* Copies the database directory's regular files through the source (at most
 * VS_EXTRACT_MAX_DATABASE bytes in all) into DBPATH. */
static void stage_files(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
                        const char *dbdir, const char *dbpath, char **names, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    char *gpath = vs_xasprintf("%s/%s", dbdir, names[i]);
    struct vs_stat st;
    struct vs_err err = {0};
    bool ok = vs_source_stat(src, gpath, false, &st, &err) == 0 && st.type == VS_FT_REG;
    vs_err_clear(&err);
    if (ok && vs_x_read(x, src, doc, gpath, VS_EXTRACT_MAX_DATABASE - total, false) == 0) {
      total += x->buf.len;
      char *hpath = vs_xasprintf("%s/%s", dbpath, names[i]);
      if (write_file(hpath, x->buf.data, x->buf.len) < 0)
        vs_feature_skip(doc, gpath, "cannot stage a copy at %s: %s", hpath, strerror(errno));
      free(hpath);
    }
    free(gpath);
  }
}

/* Each package's versions ("pkg:NAME" -> "EVR [EVR...]") into VERSIONS; returns how many
 * package headers it counted. */
static size_t collect_versions(rpmdbMatchIterator it, struct vs_strmap *versions) {
  size_t count = 0;
  Header h;
  while ((h = sym_rpmdbNextIterator(it))) {
    const char *name = sym_headerGetString(h, RPMTAG_NAME);
    char *evr = sym_headerGetAsString(h, RPMTAG_EVR);
    if (!name || !evr || strcmp(name, "gpg-pubkey") == 0) {
      free(evr);
      continue;
    }
    /* Several versions of one name (kernels) are listed together, sorted. */
    char *key = vs_xasprintf("pkg:%s", name);
    char *have = vs_strmap_get(versions, key);
    char *joined = have ? (strcmp(have, evr) < 0 ? vs_xasprintf("%s %s", have, evr)
                                                 : vs_xasprintf("%s %s", evr, have))
                        : vs_xstrdup(evr);
    vs_strmap_put(versions, key, joined);
    free(key);
    free(evr);
    count++;
  }
  return count;
}

/* Lists the staged database under STAGE with librpm into DOC; returns how many packages. */
static size_t list_staged(struct vs_feature *doc, const char *dbdir, const char *stage,
                          const char *backend) {
  struct vs_err err = {0};
  if (vs_dl_load(&rpm_lib, &err) < 0) {
    vs_feature_skip(doc, dbdir, "%s; packages not listed", vs_err_msg(&err));
    vs_err_clear(&err);
    return 0;
  }
  pthread_mutex_lock(&rpm_lock);
  if (!rpm_config_read && sym_rpmReadConfigFiles(NULL, NULL) != 0) {
    pthread_mutex_unlock(&rpm_lock);
    vs_feature_skip(doc, dbdir, "librpm could not read its configuration; packages not listed");
    return 0;
  }
  rpm_config_read = true;
  size_t count = 0;
  sym_rpmPushMacro(NULL, "_dbpath", NULL, "/var/lib/rpm", RMIL_CMDLINE);
  sym_rpmPushMacro(NULL, "_db_backend", NULL, backend, RMIL_CMDLINE);
  rpmts ts = sym_rpmtsCreate();
  sym_rpmtsSetRootDir(ts, stage);
  sym_rpmtsSetVSFlags(ts, sym_rpmtsVSFlags(ts) | RPMVSF_MASK_NOSIGNATURES | RPMVSF_MASK_NODIGESTS);
  rpmdbMatchIterator it = sym_rpmtsInitIterator(ts, RPMDBI_PACKAGES, NULL, 0);
  if (!it) {
    vs_feature_skip(doc, dbdir, "librpm could not open the %s database", backend);
  } else {
    _cleanup_(vs_strmap_freep) struct vs_strmap *versions = vs_strmap_new(free);
    count = collect_versions(it, versions);
    sym_rpmdbFreeIterator(it);
    size_t nk;
    const char **keys = vs_strmap_sorted_keys(versions, &nk);
    for (size_t i = 0; i < nk; i++)
      vs_feature_set(doc, keys[i], vs_strmap_get(versions, keys[i]), dbdir);
    free(keys);
  }
  sym_rpmtsFree(ts);
  sym_rpmPopMacro(NULL, "_db_backend");
  sym_rpmPopMacro(NULL, "_dbpath");
  pthread_mutex_unlock(&rpm_lock);
  return count;
}

/* librpm opens databases only by host path, and would follow a guest's symlinks there: copy
 * the database's regular files through the source (bounded) into a private directory and
 * point librpm at that instead. */
size_t vs_x_rpm(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc) {
  const char *dbdir = NULL, *backend = NULL;
  char **names = NULL;
  size_t n = 0;
  if (!find_rpmdb(src, doc, &dbdir, &backend, &names, &n)) return 0;
  char *stage = NULL, *dbpath = NULL;
  size_t count = 0;
  if (make_stage(doc, dbdir, &stage, &dbpath) == 0) {
    stage_files(x, src, doc, dbdir, dbpath, names, n);
    count = list_staged(doc, dbdir, stage, backend);
    if (count) {
      vs_feature_set_os(doc, "package_format", "rpm");
      vs_feature_set(doc, "os:package_format", "rpm", dbdir);
    }
  }
  if (stage) remove_stage(stage);
  free(dbpath);
  free(stage);
  vs_strv_free(names, n);
  return count;
}

size_t vs_x_backend_packages(struct vs_source *src, struct vs_feature *doc) {
  const char *name, *version, *format = NULL;
  size_t i = 0;
  for (; vs_source_package(src, i, &name, &version, &format); i++) {
    char *key = vs_xasprintf("pkg:%s", name);
    char *origin = vs_xasprintf("libguestfs:%s", format);
    vs_feature_set(doc, key, version, origin);
    free(origin);
    free(key);
  }
  if (i) {
    vs_feature_set_os(doc, "package_format", format);
    vs_feature_set(doc, "os:package_format", format, "libguestfs");
  }
  return i;
}
