/* Synthetic fleets of real Debian 12 files for the drift benchmarks (fleetgen.h). */
#include "fleetgen.h"

#include "source.h"
#include "util.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------------ helpers */

uint32_t fg_rnd(struct fg_rng *r, uint32_t n) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return (uint32_t)((r->s * 2685821657736338717ULL) >> 33) % n;
}

bool fg_chance(struct fg_rng *r, double p) {
  return fg_rnd(r, 1000000) < (uint32_t)(p * 1000000);
}

void fg_bench_open(struct fg_bench *b, const char *roles, const char *work, const char *seed) {
  *b = (struct fg_bench){.roles = roles, .work = work, .seed = seed};
  b->r.s = strtoull(seed, NULL, 10);
  if (!b->r.s) b->r.s = 1;
  _cleanup_(vs_freep) char *app = fg_path(roles, "app");
  b->lag_pkgs = fg_security_updated(app, &b->n_lag);
  struct vs_err err = {0};
  b->x = vs_extractor_new(NULL, &err);
  if (!b->x) fg_die("%s", vs_err_msg(&err));
  if (mkdir(work, 0700) < 0 && errno != EEXIST) fg_die("%s: %s", work, strerror(errno));
}

void fg_bench_close(struct fg_bench *b) {
  vs_strv_free(b->lag_pkgs, b->n_lag);
  vs_extractor_free(b->x);
}

double fg_pct(size_t part, size_t whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static const char *prog = "fleetgen";
void fg_set_prog(const char *name) {
  prog = name;
}

void fg_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

char *fg_path(const char *dir, const char *rel) {
  return vs_xasprintf("%s/%s", dir, rel);
}

char *fg_slurp(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return NULL;
  struct vs_buf b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    vs_buf_add(&b, chunk, n);
  bool failed = ferror(f);
  fclose(f);
  if (failed) fg_die("%s: read failed", path);
  vs_buf_add(&b, "", 0);
  return vs_buf_steal(&b);
}

void fg_write_own(const char *path, const char *content) {
  struct stat st;
  mode_t mode = stat(path, &st) == 0 ? st.st_mode & 07777 : 0644;
  if (unlink(path) < 0 && errno != ENOENT) fg_die("%s: %s", path, strerror(errno));
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) fg_die("%s: %s", path, strerror(errno));
  size_t len = strlen(content);
  if (write(fd, content, len) != (ssize_t)len || fchmod(fd, mode) < 0 || close(fd) < 0)
    fg_die("%s: write failed: %s", path, strerror(errno));
}

void fg_append_line(const char *path, const char *line) {
  _cleanup_(vs_freep) char *old = fg_slurp(path);
  _cleanup_(vs_freep) char *text = vs_xasprintf(
      "%s%s%s\n", old ? old : "", old && *old && old[strlen(old) - 1] != '\n' ? "\n" : "", line);
  fg_write_own(path, text);
}

bool fg_replace_line(const char *path, const char *prefix, const char *line) {
  _cleanup_(vs_freep) char *old = fg_slurp(path);
  if (!old) return false;
  size_t plen = strlen(prefix);
  for (char *p = old; *p;) {
    char *eol = strchrnul(p, '\n');
    if (strncmp(p, prefix, plen) == 0) {
      _cleanup_(vs_freep) char *text = vs_xasprintf("%.*s%s%s", (int)(p - old), old, line, eol);
      fg_write_own(path, text);
      return true;
    }
    p = *eol ? eol + 1 : eol;
  }
  return false;
}

void fg_set_line(const char *root, const char *rel, const char *prefix, const char *line) {
  _cleanup_(vs_freep) char *p = fg_path(root, rel);
  if (!fg_replace_line(p, prefix, line)) fg_append_line(p, line);
}

static const char *copy_from, *copy_to; /* nftw has no context argument */
static int copy_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  _cleanup_(vs_freep) char *dst = vs_xasprintf("%s%s", copy_to, path + strlen(copy_from));
  int rc = 0;
  if (type == FTW_D)
    rc = mkdir(dst, st->st_mode & 07777) < 0 && errno != EEXIST ? -1 : 0;
  else if (type == FTW_SL) {
    char target[4096];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n >= 0) {
      target[n] = '\0';
      rc = symlink(target, dst);
    }
  } else if (type == FTW_F)
    rc = link(path, dst);
  if (rc < 0) fg_die("copying %s to %s: %s", path, dst, strerror(errno));
  return 0;
}

void fg_copy_tree(const char *from, const char *to) {
  copy_from = from;
  copy_to = to;
  if (nftw(from, copy_one, 32, FTW_PHYS) < 0) fg_die("cannot copy %s: %s", from, strerror(errno));
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  if (remove(path) < 0) fg_die("cannot remove %s: %s", path, strerror(errno));
  return 0;
}

void fg_remove_tree(const char *dir) {
  if (nftw(dir, remove_one, 32, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
    fg_die("cannot remove %s: %s", dir, strerror(errno));
}

char *fg_fresh_dir(const char *dir, const char *name) {
  char *path = fg_path(dir, name);
  fg_remove_tree(path);
  if (mkdir(path, 0700) < 0) fg_die("%s: %s", path, strerror(errno));
  return path;
}

/* --------------------------------------------------------------- packages in dpkg status */

char *fg_older_version(const char *v) {
  _cleanup_(vs_freep) char *o = vs_xstrdup(v);
  for (char *p = o + strlen(o); p > o;) {
    char *end = p;
    while (p > o && p[-1] >= '0' && p[-1] <= '9')
      p--;
    if (p < end) {
      long n = strtol(p, NULL, 10);
      if (n > 0) {
        _cleanup_(vs_freep) char *res = vs_xasprintf("%.*s%ld%s", (int)(p - o), o, n - 1, end);
        return vs_version_compare("deb", res, v) < 0 ? vs_steal(&res) : NULL;
      }
    }
    if (p > o) p--;
  }
  return NULL;
}

char *fg_two_versions_older(const char *v) {
  _cleanup_(vs_freep) char *one = fg_older_version(v);
  return one ? fg_older_version(one) : NULL;
}

/* The start of PACKAGE's stanza in a dpkg status TEXT, or NULL. */
static char *find_stanza(char *text, const char *package) {
  _cleanup_(vs_freep) char *want = vs_xasprintf("Package: %s\n", package);
  char *stanza = strstr(text, want);
  while (stanza && stanza != text && stanza[-1] != '\n')
    stanza = strstr(stanza + 1, want);
  return stanza;
}

char *fg_set_version(const char *root, const char *package, char *(*change)(const char *)) {
  _cleanup_(vs_freep) char *path = fg_path(root, "var/lib/dpkg/status");
  _cleanup_(vs_freep) char *text = fg_slurp(path);
  char *stanza = text ? find_stanza(text, package) : NULL;
  if (!stanza) return NULL;
  char *end = strstr(stanza, "\n\n");
  char *ver = strstr(stanza, "\nVersion: ");
  if (!ver || (end && ver > end)) return NULL;
  ver += strlen("\nVersion: ");
  char *eol = strchrnul(ver, '\n');
  _cleanup_(vs_freep) char *old = vs_xstrndup(ver, (size_t)(eol - ver));
  _cleanup_(vs_freep) char *newer = change(old);
  if (!newer) return NULL;
  _cleanup_(vs_freep) char *out = vs_xasprintf("%.*s%s%s", (int)(ver - text), text, newer, eol);
  fg_write_own(path, out);
  return vs_steal(&old);
}

char **fg_security_updated(const char *root, size_t *n) {
  _cleanup_(vs_freep) char *path = fg_path(root, "var/lib/dpkg/status");
  _cleanup_(vs_freep) char *text = fg_slurp(path);
  if (!text) fg_die("%s has no dpkg status", root);
  char **out = NULL;
  *n = 0;
  _cleanup_(vs_freep) char *pkg = NULL;
  for (char *line = text; *line;) {
    char *eol = strchrnul(line, '\n');
    if (strncmp(line, "Package: ", 9) == 0) {
      free(pkg);
      pkg = vs_xstrndup(line + 9, (size_t)(eol - line - 9));
    } else if (strncmp(line, "Version: ", 9) == 0 && pkg &&
               memmem(line, (size_t)(eol - line), "+deb12u", 7)) {
      vs_strv_add(&out, n, pkg);
    }
    line = *eol ? eol + 1 : eol;
  }
  return out;
}

/* --------------------------------------------------------------------------------- VMs */

void fg_vm_base(const char *roles, const char *role, const char *dir, const char *name,
                struct fg_rng *r) {
  _cleanup_(vs_freep) char *from = fg_path(roles, role);
  fg_copy_tree(from, dir);
  if (strcmp(role, "db") == 0) {
    _cleanup_(vs_freep) char *tuning = fg_path(dir, FG_ROLE_SYSCTL_FILE);
    fg_write_own(tuning, FG_ROLE_SYSCTL);
  }
  _cleanup_(vs_freep) char *hostname = fg_path(dir, "etc/hostname");
  _cleanup_(vs_freep) char *hostname_line = vs_xasprintf("%s\n", name);
  fg_write_own(hostname, hostname_line);
  _cleanup_(vs_freep) char *hosts = fg_path(dir, "etc/hosts");
  _cleanup_(vs_freep) char *hosts_line = vs_xasprintf("127.0.1.1\t%s.example.net %s", name, name);
  fg_append_line(hosts, hosts_line);
  char id[33];
  for (int i = 0; i < 32; i++)
    id[i] = "0123456789abcdef"[fg_rnd(r, 16)];
  id[32] = '\0';
  _cleanup_(vs_freep) char *machine_id = fg_path(dir, "etc/machine-id");
  fg_write_own(machine_id, id);
}

/* A directive commented out several times (HostKey, ListenAddress) has no single default:
 * writing one of them out changes what sshd does, so it is not "the default written out". */
static bool commented_once(const char *text, const char *line) {
  size_t name = strcspn(line, " \t\n");
  int seen = 0;
  for (const char *q = text; q; q = strchr(q, '\n')) {
    if (*q == '\n') q++;
    seen += strncmp(q, line, name) == 0 && (q[name] == ' ' || q[name] == '\t');
  }
  return seen == 1;
}

/* Whether LINE (up to EOL) of sshd_config TEXT is a commented-out directive with a value. */
static bool is_documented_default(const char *text, const char *line, const char *eol) {
  return line[0] == '#' &&
         ((line[1] >= 'A' && line[1] <= 'Z') || (line[1] >= 'a' && line[1] <= 'z')) &&
         strncmp(line, "#Match", 6) != 0 && memchr(line, ' ', (size_t)(eol - line)) &&
         commented_once(text, line);
}

bool fg_write_out_default(const char *root, struct fg_rng *r) {
  _cleanup_(vs_freep) char *path = fg_path(root, "etc/ssh/sshd_config");
  _cleanup_(vs_freep) char *text = fg_slurp(path);
  if (!text) return false;
  char *cands[64];
  size_t n = 0;
  for (char *line = text; *line && n < ARRAY_SIZE(cands);) {
    char *eol = strchrnul(line, '\n');
    if (is_documented_default(text, line, eol)) cands[n++] = line;
    line = *eol ? eol + 1 : eol;
  }
  if (!n) return false;
  char *pick = cands[fg_rnd(r, (uint32_t)n)];
  _cleanup_(vs_freep) char *line = vs_xstrndup(pick + 1, strchrnul(pick, '\n') - pick - 1);
  fg_append_line(path, line); /* written out below the comment, as an admin would */
  return true;
}

void fg_tweak(const char *root, uint32_t which) {
  /* file, the line it replaces (NULL: added below the rest), the line */
  static const char *const tweaks[FG_TWEAKS][3] = {
      {"etc/ssh/sshd_config", NULL, "ClientAliveInterval 300"},
      {"etc/sysctl.d/10-local.conf", NULL, "vm.swappiness = 10"},
      {"etc/login.defs", "UMASK", "UMASK\t\t027"},
      {"etc/passwd", NULL, "deploy:x:1001:1001:Deploy,,,:/home/deploy:/bin/bash"},
      {"etc/sysctl.d/10-local.conf", NULL, "net.core.somaxconn = 4096"},
      {"etc/security/limits.conf", NULL, "*\tsoft\tnofile\t65536"},
      {"etc/ssh/sshd_config", NULL, "MaxSessions 20"},
      {"etc/sysctl.d/10-local.conf", NULL, "kernel.panic = 10"}};
  const char *const *t = tweaks[which % FG_TWEAKS];
  if (t[1]) {
    fg_set_line(root, t[0], t[1], t[2]);
    return;
  }
  _cleanup_(vs_freep) char *p = fg_path(root, t[0]);
  fg_append_line(p, t[2]);
}

void fg_own_host_keys(const char *root, struct fg_rng *r) {
  static const char *const keys[] = {"ssh_host_ecdsa_key", "ssh_host_ed25519_key",
                                     "ssh_host_rsa_key"};
  for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
    char material[45];
    for (size_t i = 0; i + 1 < sizeof(material); i++)
      material[i] =
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[fg_rnd(r, 64)];
    material[sizeof(material) - 1] = '\0';
    _cleanup_(vs_freep) char *dir = fg_path(root, "etc/ssh");
    _cleanup_(vs_freep) char *priv = vs_xasprintf("%s/%s", dir, keys[k]);
    _cleanup_(vs_freep) char *pub = vs_xasprintf("%s.pub", priv);
    _cleanup_(vs_freep) char *priv_text = vs_xasprintf("-----BEGIN OPENSSH PRIVATE KEY-----\n"
                                                       "%s\n-----END OPENSSH PRIVATE KEY-----\n",
                                                       material);
    _cleanup_(vs_freep) char *pub_text = vs_xasprintf("ssh-key %s root@vm\n", material);
    if (access(priv, F_OK) == 0) fg_write_own(priv, priv_text);
    if (access(pub, F_OK) == 0) fg_write_own(pub, pub_text);
  }
}

struct vs_feature *fg_extract(struct vs_extractor *x, const char *dir, const char *name) {
  struct vs_err err = {0};
  struct vs_source *src = vs_source_open_dir(dir, &err);
  if (!src) fg_die("%s", vs_err_msg(&err));
  _cleanup_(vs_feature_freep) struct vs_feature *doc = vs_feature_new();
  vs_feature_set_id(doc, name, name);
  int rc = vs_extract(x, src, doc, NULL, &err);
  vs_source_free(src);
  if (rc < 0) fg_die("%s", vs_err_msg(&err));
  return vs_steal(&doc);
}

struct vs_feature *fg_copy(const struct vs_feature *doc) {
  json_t *j = vs_feature_to_json(doc);
  struct vs_err err = {0};
  struct vs_feature *copy = vs_feature_from_json(j, "copy", &err);
  json_decref(j);
  if (!copy) fg_die("copying %s: %s", vs_feature_name(doc), vs_err_msg(&err));
  return copy;
}

/* --------------------------------------------------------------------------- injections */

const char *const fg_inj_names[FG_N_INJ] = {
    "changed value", "uid-0 user",   "disabled service",    "downgraded pkg",
    "weakened mode", "added sysctl", "another role's value"};

/* A database's tuning on a web server, or a database without it. */
static bool inject_role(const char *root, const char *role, struct fg_rng *r, char **what) {
  (void)r;
  _cleanup_(vs_freep) char *p = fg_path(root, FG_ROLE_SYSCTL_FILE);
  if (strcmp(role, "db") == 0) {
    if (unlink(p) < 0) return false;
    *what = vs_xstrdup("db without its vm.dirty_ratio = 5 (the other roles' default)");
  } else {
    fg_write_own(p, FG_ROLE_SYSCTL);
    *what = vs_xasprintf("%s with vm.dirty_ratio = 5 (the db role's value)", role);
  }
  return true;
}

static bool inject_value(const char *root, const char *role, struct fg_rng *r, char **what) {
  (void)role;
  static const char *const edits[][3] = {
      {"etc/ssh/sshd_config", "PermitRootLogin", "PermitRootLogin yes"},
      {"etc/ssh/sshd_config", "PubkeyAuthentication", "PubkeyAuthentication no"},
      {"etc/ssh/sshd_config", "MaxAuthTries", "MaxAuthTries 50"},
      {"etc/ssh/sshd_config", "PermitEmptyPasswords", "PermitEmptyPasswords yes"},
      {"etc/ssh/sshd_config", "X11Forwarding", "X11Forwarding no"},
      {"etc/login.defs", "PASS_MAX_DAYS", "PASS_MAX_DAYS\t0"},
      {"etc/login.defs", "ENCRYPT_METHOD", "ENCRYPT_METHOD MD5"},
      {"etc/sudoers", "Defaults\tuse_pty", "Defaults\t!use_pty"},
      {"etc/login.defs", "UMASK", "UMASK\t\t000"}};
  const char *const *e = edits[fg_rnd(r, ARRAY_SIZE(edits))];
  fg_set_line(root, e[0], e[1], e[2]);
  *what = vs_xasprintf("%s: %s", e[0], e[2]);
  return true;
}

static bool inject_uid0(const char *root, const char *role, struct fg_rng *r, char **what) {
  (void)role;
  (void)r;
  _cleanup_(vs_freep) char *passwd = fg_path(root, "etc/passwd");
  fg_append_line(passwd, "toor:x:0:0:root:/root:/bin/bash");
  _cleanup_(vs_freep) char *shadow = fg_path(root, "etc/shadow");
  fg_append_line(shadow, "toor:$6$x$y:19000:0:99999:7:::");
  *what = vs_xstrdup("toor uid 0");
  return true;
}

static bool inject_service(const char *root, const char *role, struct fg_rng *r, char **what) {
  (void)role;
  static const char *const units[] = {"ssh.service",     "cron.service", "nginx.service",
                                      "mariadb.service", "sudo.service", "procps.service"};
  for (int tries = 0; tries < 12; tries++) {
    const char *u = units[fg_rnd(r, ARRAY_SIZE(units))];
    _cleanup_(vs_freep) char *p =
        vs_xasprintf("%s/etc/systemd/system/multi-user.target.wants/%s", root, u);
    if (unlink(p) == 0) {
      *what = vs_xasprintf("%s disabled", u);
      return true;
    }
  }
  return false;
}

static bool inject_downgrade(const char *root, const char *role, struct fg_rng *r, char **what) {
  (void)role;
  static const char *const pkgs[] = {"openssh-server", "sudo", "libc6",  "openssl", "bash",
                                     "systemd",        "cron", "procps", "apt",     "login"};
  for (int tries = 0; tries < 12; tries++) {
    const char *pkg = pkgs[fg_rnd(r, ARRAY_SIZE(pkgs))];
    _cleanup_(vs_freep) char *old = fg_set_version(root, pkg, fg_two_versions_older);
    if (old) {
      *what = vs_xasprintf("%s downgraded from %s", pkg, old);
      return true;
    }
  }
  return false;
}

static bool inject_mode(const char *root, const char *role, struct fg_rng *r, char **what) {
  (void)role;
  static const char *const files[][2] = {{"etc/shadow", "0644"},
                                         {"etc/sudoers", "0666"},
                                         {"etc/ssh/sshd_config", "0666"},
                                         {"etc/passwd", "0666"},
                                         {"etc/login.defs", "0666"}};
  const char *const *f = files[fg_rnd(r, ARRAY_SIZE(files))];
  _cleanup_(vs_freep) char *p = fg_path(root, f[0]);
  _cleanup_(vs_freep) char *content = fg_slurp(p);
  if (!content) return false;
  fg_write_own(p, content); /* its own inode: the role's file keeps its mode */
  if (chmod(p, (mode_t)strtol(f[1], NULL, 8)) < 0) fg_die("chmod %s: %s", p, strerror(errno));
  *what = vs_xasprintf("%s mode %s", f[0], f[1]);
  return true;
}

static bool inject_sysctl(const char *root, const char *role, struct fg_rng *r, char **what) {
  (void)role;
  static const char *const lines[] = {"net.ipv4.ip_forward = 1", "kernel.randomize_va_space = 0",
                                      "net.ipv4.conf.all.accept_redirects = 1",
                                      "kernel.kptr_restrict = 0", "fs.suid_dumpable = 2"};
  const char *l = lines[fg_rnd(r, ARRAY_SIZE(lines))];
  _cleanup_(vs_freep) char *p = fg_path(root, "etc/sysctl.d/99-tuning.conf");
  fg_append_line(p, l);
  *what = vs_xstrdup(l);
  return true;
}

bool fg_inject(enum fg_inj kind, const char *root, const char *role, struct fg_rng *r,
               char **what) {
  static bool (*const injectors[FG_N_INJ])(const char *, const char *, struct fg_rng *, char **) = {
      [FG_INJ_VALUE] = inject_value,     [FG_INJ_UID0] = inject_uid0,
      [FG_INJ_SERVICE] = inject_service, [FG_INJ_DOWNGRADE] = inject_downgrade,
      [FG_INJ_MODE] = inject_mode,       [FG_INJ_SYSCTL] = inject_sysctl,
      [FG_INJ_ROLE] = inject_role};
  *what = NULL;
  return injectors[kind](root, role, r, what);
}

/* ---------------------------------------------------------------------------- evaluation */

struct vs_view *fg_view(struct vs_feature *const *docs, const size_t *idx, size_t n,
                        struct vs_feature *(*copy)(const struct vs_feature *),
                        const struct vs_view_opts *opts, struct vs_feature *target) {
  struct vs_view *v = vs_view_new();
  for (size_t i = 0; i < n; i++)
    vs_view_add(v, copy(docs[idx ? idx[i] : i]));
  if (target) vs_view_add_target(v, target);
  vs_view_prepare(v, opts);
  return v;
}

struct vs_drift *fg_rank(const struct vs_view *v, size_t i) {
  struct vs_err err = {0};
  struct vs_drift *d = vs_view_rank(v, i, &(struct vs_drift_opts){0}, &err);
  if (!d) fg_die("ranking %s: %s", vs_feature_name(vs_view_doc(v, i)), vs_err_msg(&err));
  return d;
}

struct vs_feature *fg_injected(struct fg_bench *b, const char *scratch, const char *vm_dir,
                               const struct vs_feature *clean, enum fg_inj kind, const char *role,
                               char **what, struct vs_diff **diff) {
  *diff = NULL;
  _cleanup_(vs_freep) char *dir = fg_path(scratch, "injected");
  fg_remove_tree(dir);
  fg_copy_tree(vm_dir, dir);
  _cleanup_(vs_feature_freep) struct vs_feature *bad = NULL;
  if (fg_inject(kind, dir, role, &b->r, what)) bad = fg_extract(b->x, dir, vs_feature_name(clean));
  fg_remove_tree(dir);
  if (!bad) return NULL;
  *diff = vs_drift_diff(clean, bad);
  if ((*diff)->n_changes) return vs_steal(&bad);
  fprintf(stderr, "# injection \"%s\" changed no key; not counted\n", *what);
  vs_diff_free(*diff);
  *diff = NULL;
  return NULL;
}

/* Does finding key F stand for changed key C? A unit finding "file:PATH:*" covers the file's
 * file: and meta: keys, "user:NAME:*" the user's. */
static bool covers(const char *f, const char *c) {
  if (strcmp(f, c) == 0) return true;
  size_t len = strlen(f);
  if (len < 2 || f[len - 1] != '*') return false;
  if (strncmp(f, c, len - 1) == 0) return true;
  return strncmp(f, "file:", 5) == 0 && strncmp(c, "meta:", 5) == 0 &&
         strncmp(f + 5, c + 5, len - 6) == 0;
}

size_t fg_injected_rank(const struct vs_drift *d, const struct vs_diff *diff, bool *alarm) {
  size_t rank = 0;
  *alarm = false;
  for (size_t k = 0; k < d->n_findings; k++)
    for (size_t j = 0; j < diff->n_changes && !d->findings[k].edit_evidence; j++)
      if (covers(d->findings[k].key, diff->changes[j].key)) {
        if (!rank) rank = d->findings[k].rank;
        *alarm |= d->findings[k].severity >= VS_SEVERITY_WARNING && !d->findings[k].waived;
      }
  return rank;
}
