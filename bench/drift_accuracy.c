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
 * it against the rest of the fleet (the clean VM's document removed from the population, which
 * is what the additive population is for). The injection's keys are those that differ between
 * the clean and the injected document (vs_drift_diff); its rank is the rank of the first finding
 * that is one of those keys, or a unit finding covering one (a parsed file's digest, which is
 * only edit evidence, does not count). Clean fleets are ranked VM by VM
 * (each against the others) and every VM with an alarm is counted.
 *
 * Prints a table; exits 0 whatever the figures (a benchmark, not a test). */
#include "analytics.h"
#include "drift.h"
#include "extract.h"
#include "population.h"
#include "source.h"
#include "strmap.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FLEET 30
#define CASES_PER_FLEET 8

/* ------------------------------------------------------------------------------ helpers */

struct rng {
  uint64_t s;
};
static uint32_t rnd(struct rng *r, uint32_t n) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return (uint32_t)((r->s * 2685821657736338717ULL) >> 33) % n;
}
static bool chance(struct rng *r, double p) {
  return rnd(r, 1000000) < (uint32_t)(p * 1000000);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("drift_accuracy: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static char *path_join(const char *a, const char *b) {
  return vs_xasprintf("%s/%s", a, b);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return NULL;
  struct vs_buf b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    vs_buf_add(&b, chunk, n);
  fclose(f);
  vs_buf_add(&b, "", 0);
  return vs_buf_steal(&b);
}

/* Replaces PATH (maybe a hard link shared with the role tree) by a file of its own holding
 * CONTENT, keeping its mode. */
static void write_own(const char *path, const char *content) {
  struct stat st;
  mode_t mode = stat(path, &st) == 0 ? st.st_mode & 07777 : 0644;
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) die("%s: %s", path, strerror(errno));
  size_t len = strlen(content);
  if (write(fd, content, len) != (ssize_t)len || fchmod(fd, mode) < 0 || close(fd) < 0)
    die("%s: write failed: %s", path, strerror(errno));
}

static void append_line(const char *path, const char *line) {
  char *old = slurp(path);
  char *text = vs_xasprintf("%s%s%s\n", old ? old : "",
                            old && *old && old[strlen(old) - 1] != '\n' ? "\n" : "", line);
  write_own(path, text);
  free(text);
  free(old);
}

/* Replaces the first line of PATH starting with PREFIX by LINE; false when there is none. */
static bool replace_line(const char *path, const char *prefix, const char *line) {
  char *old = slurp(path);
  if (!old) return false;
  size_t plen = strlen(prefix);
  for (char *p = old; *p;) {
    char *eol = strchrnul(p, '\n');
    if (strncmp(p, prefix, plen) == 0) {
      char *text = vs_xasprintf("%.*s%s%s", (int)(p - old), old, line, eol);
      write_own(path, text);
      free(text);
      free(old);
      return true;
    }
    p = *eol ? eol + 1 : eol;
  }
  free(old);
  return false;
}

static const char *copy_from, *copy_to;
static int copy_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  const char *rel = path + strlen(copy_from);
  char *dst = vs_xasprintf("%s%s", copy_to, rel);
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
  if (rc < 0) die("copying %s to %s: %s", path, dst, strerror(errno));
  free(dst);
  return 0;
}

/* cp -al: the VM's tree shares the role's files until it writes its own (write_own). */
static void copy_tree(const char *from, const char *to) {
  copy_from = from;
  copy_to = to;
  if (nftw(from, copy_one, 32, FTW_PHYS) < 0) die("cannot copy %s: %s", from, strerror(errno));
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  remove(path);
  return 0;
}
static void remove_tree(const char *dir) {
  nftw(dir, remove_one, 32, FTW_DEPTH | FTW_PHYS);
}

/* --------------------------------------------------------------- packages in dpkg status */

/* An older version of V: the last digit run that is not zero, less one ("+deb12u4" ->
 * "+deb12u3", "4.0.2-3" -> "4.0.2-2"). NULL when there is none. */
static char *older_version(const char *v) {
  char *o = vs_xstrdup(v);
  for (char *p = o + strlen(o); p > o;) {
    char *end = p;
    while (p > o && p[-1] >= '0' && p[-1] <= '9')
      p--;
    if (p < end) {
      long n = strtol(p, NULL, 10);
      if (n > 0) {
        char *res = vs_xasprintf("%.*s%ld%s", (int)(p - o), o, n - 1, end);
        free(o);
        if (vs_version_compare("deb", res, v) < 0) return res;
        free(res);
        return NULL;
      }
    }
    if (p > o) p--;
  }
  free(o);
  return NULL;
}

/* Sets PACKAGE's Version in the tree's dpkg status; returns the old version or NULL. */
static char *set_version(const char *root, const char *package, char *(*change)(const char *)) {
  char *path = path_join(root, "var/lib/dpkg/status");
  char *text = slurp(path);
  char *want = vs_xasprintf("Package: %s\n", package);
  char *stanza = text ? strstr(text, want) : NULL;
  while (stanza && stanza != text && stanza[-1] != '\n')
    stanza = strstr(stanza + 1, want);
  char *result = NULL;
  if (stanza) {
    char *end = strstr(stanza, "\n\n");
    char *ver = strstr(stanza, "\nVersion: ");
    if (ver && (!end || ver < end)) {
      ver += strlen("\nVersion: ");
      char *eol = strchrnul(ver, '\n');
      char *old = vs_xstrndup(ver, (size_t)(eol - ver));
      char *newer = change(old);
      if (newer) {
        char *out = vs_xasprintf("%.*s%s%s", (int)(ver - text), text, newer, eol);
        write_own(path, out);
        free(out);
        free(newer);
        result = old;
      } else {
        free(old);
      }
    }
  }
  free(want);
  free(text);
  free(path);
  return result;
}

/* The installed packages of a tree with a Debian security update ("+deb12u") in their version:
 * the ones a VM can lag behind on. */
static char **security_updated(const char *root, size_t *n) {
  char *path = path_join(root, "var/lib/dpkg/status");
  char *text = slurp(path);
  free(path);
  if (!text) die("%s has no dpkg status", root);
  char **out = NULL;
  size_t cap = 0;
  *n = 0;
  char *pkg = NULL;
  for (char *line = text; *line;) {
    char *eol = strchrnul(line, '\n');
    if (strncmp(line, "Package: ", 9) == 0) {
      free(pkg);
      pkg = vs_xstrndup(line + 9, (size_t)(eol - line - 9));
    } else if (strncmp(line, "Version: ", 9) == 0 && pkg &&
               memmem(line, (size_t)(eol - line), "+deb12u", 7)) {
      if (*n == cap) {
        cap = cap ? 2 * cap : 32;
        out = vs_xrealloc(out, cap * sizeof(char *));
      }
      out[(*n)++] = vs_xstrdup(pkg);
    }
    line = *eol ? eol + 1 : eol;
  }
  free(pkg);
  free(text);
  return out;
}

/* --------------------------------------------------------------------- natural variation */

/* Uncomments one "#Directive value" line of sshd_config: the value its comment documents as the
 * default, now written out. */
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

static bool write_out_default(const char *root, struct rng *r) {
  char *path = path_join(root, "etc/ssh/sshd_config");
  char *text = slurp(path);
  bool done = false;
  if (text) {
    char *cands[64];
    size_t n = 0;
    for (char *line = text; *line && n < 64;) {
      char *eol = strchrnul(line, '\n');
      if (line[0] == '#' &&
          ((line[1] >= 'A' && line[1] <= 'Z') || (line[1] >= 'a' && line[1] <= 'z')) &&
          strncmp(line, "#Match", 6) != 0 && memchr(line, ' ', (size_t)(eol - line)) &&
          commented_once(text, line))
        cands[n++] = line;
      line = *eol ? eol + 1 : eol;
    }
    if (n) {
      char *pick = cands[rnd(r, (uint32_t)n)];
      char *eol = strchrnul(pick, '\n');
      char *line = vs_xstrndup(pick + 1, (size_t)(eol - pick - 1));
      append_line(path, line); /* written out below the comment, as an admin would */
      free(line);
      done = true;
    }
  }
  free(text);
  free(path);
  return done;
}

static void admin_tweak(const char *root, struct rng *r) {
  char *p;
  switch (rnd(r, 4)) {
  case 0:
    p = path_join(root, "etc/ssh/sshd_config");
    append_line(p, "ClientAliveInterval 300");
    break;
  case 1:
    p = path_join(root, "etc/sysctl.d/10-local.conf");
    append_line(p, "vm.swappiness = 10");
    break;
  case 2:
    p = path_join(root, "etc/login.defs");
    if (!replace_line(p, "UMASK", "UMASK\t\t027")) append_line(p, "UMASK 027");
    break;
  default:
    p = path_join(root, "etc/passwd");
    append_line(p, "deploy:x:1001:1001:Deploy,,,:/home/deploy:/bin/bash");
    break;
  }
  free(p);
}

struct fleet_ctx {
  const char *roles;
  char **lag_pkgs; /* packages with a Debian security update */
  size_t n_lag;
  const char *batch[3]; /* this fleet's latest update batch */
  size_t n_batch;
};

/* A setting whose value differs between roles: databases tune dirty page writeback. */
#define ROLE_SYSCTL_FILE "etc/sysctl.d/60-db.conf"
#define ROLE_SYSCTL "vm.dirty_ratio = 5\n"
static void make_vm(const struct fleet_ctx *fc, const char *role, const char *dir, const char *name,
                    struct rng *r, bool explicit_defaults) {
  char *from = path_join(fc->roles, role);
  copy_tree(from, dir);
  free(from);
  if (strcmp(role, "db") == 0) {
    char *tuning = path_join(dir, ROLE_SYSCTL_FILE);
    write_own(tuning, ROLE_SYSCTL);
    free(tuning);
  }
  char *p = path_join(dir, "etc/hostname"), *line = vs_xasprintf("%s", name);
  write_own(p, name);
  append_line(p, "");
  free(p);
  free(line);
  p = path_join(dir, "etc/hosts");
  line = vs_xasprintf("127.0.1.1\t%s.example.net %s", name, name);
  append_line(p, line);
  free(p);
  free(line);
  char id[33];
  for (int i = 0; i < 32; i++)
    id[i] = "0123456789abcdef"[rnd(r, 16)];
  id[32] = '\0';
  p = path_join(dir, "etc/machine-id");
  write_own(p, id);
  free(p);
  if (chance(r, 0.3)) /* the latest update batch is not applied yet */
    for (size_t k = 0; k < fc->n_batch; k++)
      free(set_version(dir, fc->batch[k], older_version));
  if (explicit_defaults && chance(r, 0.2)) write_out_default(dir, r);
  if (chance(r, 0.03)) admin_tweak(dir, r);
}

/* ------------------------------------------------------------------------------ injections */

enum { INJ_VALUE, INJ_UID0, INJ_SERVICE, INJ_DOWNGRADE, INJ_MODE, INJ_SYSCTL, INJ_ROLE, N_INJ };
static const char *const inj_names[N_INJ] = {
    "changed value", "uid-0 user",   "disabled service",    "downgraded pkg",
    "weakened mode", "added sysctl", "another role's value"};

/* Two steps back, so that the version is not the one VMs behind on updates have. */
static char *two_versions_older(const char *v) {
  char *one = older_version(v);
  char *two = one ? older_version(one) : NULL;
  free(one);
  return two;
}

static bool inject(int kind, const char *root, const char *role, struct rng *r, char **what) {
  char *p = NULL;
  bool ok = true;
  switch (kind) {
  case INJ_ROLE: /* the value another role has: a database's tuning on a web server, or a
                    database without it */
    p = path_join(root, ROLE_SYSCTL_FILE);
    if (strcmp(role, "db") == 0) {
      ok = unlink(p) == 0;
      *what = vs_xstrdup("db without its vm.dirty_ratio = 5 (the other roles' default)");
    } else {
      write_own(p, ROLE_SYSCTL);
      *what = vs_xasprintf("%s with vm.dirty_ratio = 5 (the db role's value)", role);
    }
    break;
  case INJ_VALUE: {
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
    uint32_t i = rnd(r, sizeof(edits) / sizeof(edits[0]));
    p = path_join(root, edits[i][0]);
    if (!replace_line(p, edits[i][1], edits[i][2])) append_line(p, edits[i][2]);
    *what = vs_xasprintf("%s: %s", edits[i][0], edits[i][2]);
    break;
  }
  case INJ_UID0:
    p = path_join(root, "etc/passwd");
    append_line(p, "toor:x:0:0:root:/root:/bin/bash");
    free(p);
    p = path_join(root, "etc/shadow");
    append_line(p, "toor:$6$x$y:19000:0:99999:7:::");
    *what = vs_xstrdup("toor uid 0");
    break;
  case INJ_SERVICE: {
    static const char *const units[] = {"ssh.service",     "cron.service", "nginx.service",
                                        "mariadb.service", "sudo.service", "procps.service"};
    for (int tries = 0; tries < 12; tries++) {
      const char *u = units[rnd(r, sizeof(units) / sizeof(units[0]))];
      char *rel = vs_xasprintf("etc/systemd/system/multi-user.target.wants/%s", u);
      free(p);
      p = path_join(root, rel);
      free(rel);
      if (unlink(p) == 0) {
        *what = vs_xasprintf("%s disabled", u);
        break;
      }
    }
    ok = *what != NULL;
    break;
  }
  case INJ_DOWNGRADE: {
    static const char *const pkgs[] = {"openssh-server", "sudo", "libc6",  "openssl", "bash",
                                       "systemd",        "cron", "procps", "apt",     "login"};
    for (int tries = 0; tries < 12 && !*what; tries++) {
      const char *pkg = pkgs[rnd(r, sizeof(pkgs) / sizeof(pkgs[0]))];
      char *old = set_version(root, pkg, two_versions_older);
      if (old) *what = vs_xasprintf("%s downgraded from %s", pkg, old);
      free(old);
    }
    ok = *what != NULL;
    break;
  }
  case INJ_MODE: {
    static const char *const files[][2] = {{"etc/shadow", "0644"},
                                           {"etc/sudoers", "0666"},
                                           {"etc/ssh/sshd_config", "0666"},
                                           {"etc/passwd", "0666"},
                                           {"etc/login.defs", "0666"}};
    uint32_t i = rnd(r, sizeof(files) / sizeof(files[0]));
    p = path_join(root, files[i][0]);
    char *content = slurp(p);
    if (!content) return false;
    write_own(p, content); /* its own inode: the role's file keeps its mode */
    free(content);
    if (chmod(p, (mode_t)strtol(files[i][1], NULL, 8)) < 0) die("chmod %s: %s", p, strerror(errno));
    *what = vs_xasprintf("%s mode %s", files[i][0], files[i][1]);
    break;
  }
  default: {
    static const char *const lines[] = {"net.ipv4.ip_forward = 1", "kernel.randomize_va_space = 0",
                                        "net.ipv4.conf.all.accept_redirects = 1",
                                        "kernel.kptr_restrict = 0", "fs.suid_dumpable = 2"};
    const char *l = lines[rnd(r, sizeof(lines) / sizeof(lines[0]))];
    p = path_join(root, "etc/sysctl.d/99-tuning.conf");
    append_line(p, l);
    *what = vs_xstrdup(l);
    break;
  }
  }
  free(p);
  return ok;
}

/* ---------------------------------------------------------------------------- evaluation */

static struct vs_feature *extract_tree(struct vs_extractor *x, const char *dir, const char *name) {
  struct vs_err err = {0};
  struct vs_source *src = vs_source_open_dir(dir, &err);
  if (!src) die("%s", vs_err_msg(&err));
  struct vs_feature *doc = vs_feature_new();
  vs_feature_set_id(doc, name, name);
  if (vs_extract(x, src, doc, NULL, &err) < 0) die("%s", vs_err_msg(&err));
  vs_source_free(src);
  return doc;
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

struct tally {
  size_t cases, rank1, top3, alarmed, rank_sum;
};

static struct vs_feature *without_defaults(const struct vs_feature *doc) {
  json_t *j = vs_feature_to_json(doc);
  json_object_del(j, "defaults");
  struct vs_feature *d = vs_feature_from_json(j, "copy", NULL);
  json_decref(j);
  return d;
}

/* VMs of the fleet with an alarm when each is ranked against the others. */
static size_t clean_alarms(struct vs_feature **docs, size_t n, struct vs_strmap *causes) {
  struct vs_pop *pop = vs_pop_new();
  for (size_t i = 0; i < n; i++)
    vs_pop_add(pop, docs[i]);
  vs_pop_prepare(pop);
  size_t alarmed = 0;
  for (size_t i = 0; i < n; i++) {
    struct vs_drift *d = vs_drift_rank(pop, docs[i], NULL, NULL);
    if (d && d->alarms) {
      alarmed++;
      for (size_t k = 0; causes && k < d->n_findings; k++)
        if (d->findings[k].severity >= VS_SEVERITY_WARNING) {
          uintptr_t c = (uintptr_t)vs_strmap_get(causes, d->findings[k].key);
          vs_strmap_put(causes, d->findings[k].key, (void *)(c + 1));
        }
    }
    vs_drift_free(d);
  }
  vs_pop_free(pop);
  return alarmed;
}

/* Ranks BAD against POP: the rank of the first finding that covers a change of DIFF (0: none)
 * and whether it alarms. */
static size_t evaluate(struct vs_pop *pop, const struct vs_feature *bad, const struct vs_diff *diff,
                       bool *alarm, const char *what) {
  struct vs_err err = {0};
  vs_pop_prepare(pop);
  struct vs_drift *d = vs_drift_rank(pop, bad, NULL, &err);
  if (!d) die("%s", vs_err_msg(&err));
  size_t rank = 0;
  *alarm = false;
  /* A digest that is only edit evidence (info by design) does not count as finding it. */
  for (size_t k = 0; k < d->n_findings; k++)
    for (size_t j = 0; j < diff->n_changes && !d->findings[k].edit_evidence; j++)
      if (covers(d->findings[k].key, diff->changes[j].key)) {
        if (!rank) rank = d->findings[k].rank;
        *alarm |= d->findings[k].severity >= VS_SEVERITY_WARNING && !d->findings[k].waived;
      }
  if (getenv("VS_ACCURACY_VERBOSE") && (rank != 1 || !*alarm))
    fprintf(stderr, "# %s on %s (%zu peers): rank %zu; top: %s (%.3f)\n", what,
            vs_feature_name(bad), (size_t)d->samples, rank,
            d->n_findings ? d->findings[0].key : "-", d->n_findings ? d->findings[0].score : 0.0);
  vs_drift_free(d);
  return rank;
}

static void count(struct tally *tk, struct tally *total, size_t rank, bool alarm) {
  for (struct tally *tl = tk; tl; tl = tl == tk ? total : NULL) { /* TOTAL may be NULL */
    tl->cases++;
    tl->rank1 += rank == 1;
    tl->top3 += rank >= 1 && rank <= 3;
    tl->alarmed += alarm;
    tl->rank_sum += rank ? rank : 1000;
  }
}

static void print_row(const char *name, const struct tally *t) {
  if (t->cases)
    printf("%-18s %6zu %7.1f%% %7.1f%% %7.1f%%\n", name, t->cases, 100.0 * t->rank1 / t->cases,
           100.0 * t->top3 / t->cases, 100.0 * t->alarmed / t->cases);
}

/* The classic injections, their total, then another role's value (not in the total). */
static void print_table(const struct tally *by_kind, const struct tally *total) {
  printf("%-18s %6s %8s %8s %8s\n", "injection", "cases", "rank 1", "top 3", "alarm");
  for (int k = 0; k < N_INJ; k++)
    if (k != INJ_ROLE) print_row(inj_names[k], &by_kind[k]);
  print_row("all of these", total);
  print_row(inj_names[INJ_ROLE], &by_kind[INJ_ROLE]);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: drift_accuracy ROLES WORK [CASES] [SEED]\n");
    return 2;
  }
  const char *roles = argv[1], *work = argv[2];
  size_t want_cases = argc > 3 ? strtoul(argv[3], NULL, 10) : 240;
  struct rng r = {argc > 4 ? strtoull(argv[4], NULL, 10) : 20261125};
  if (!r.s) r.s = 1;
  static const char *const role_names[] = {"web", "db", "app"};
  struct fleet_ctx fc = {.roles = roles};
  char *app = path_join(roles, "app");
  fc.lag_pkgs = security_updated(app, &fc.n_lag);
  free(app);
  struct vs_err err = {0};
  struct vs_extractor *x = vs_extractor_new(NULL, &err);
  if (!x) die("%s", vs_err_msg(&err));
  mkdir(work, 0700);

  struct tally by_kind[N_INJ] = {0}, total = {0}, role_total = {0}, role_kind[N_INJ] = {0};
  /* Roles over each fleet against the generator's truth, and every VM of every fleet kept as
   * tokens for labels at the end (the fleets share their role trees). */
  double ari_sum = 0, ari_min = 1;
  size_t ari_fleets = 0, n_all = 0, cap_all = 0;
  uint64_t **all_tokens = NULL;
  size_t *all_n = NULL, *all_truth = NULL;
  size_t clean_vms[2] = {0}, clean_alarmed[2] = {0}, nofold_alarmed = 0, nofold_vms = 0;
  struct vs_strmap *causes = vs_strmap_new(NULL);
  size_t fleets = 0, case_no = 0, ranks_hist[4] = {0};
  double t0 = vs_now_monotonic();
  while (total.cases < want_cases) {
    size_t n = 10 + rnd(&r, MAX_FLEET - 10 + 1);
    bool explicit_defaults = fleets % 2 == 1;
    fc.n_batch = fc.n_lag ? 1 + rnd(&r, 3) : 0;
    for (size_t k = 0; k < fc.n_batch; k++)
      fc.batch[k] = fc.lag_pkgs[rnd(&r, (uint32_t)fc.n_lag)];
    char *fleet_dir = vs_xasprintf("%s/fleet-%zu", work, fleets);
    remove_tree(fleet_dir);
    if (mkdir(fleet_dir, 0700) < 0) die("%s: %s", fleet_dir, strerror(errno));
    struct vs_feature *docs[MAX_FLEET];
    char *dirs[MAX_FLEET];
    for (size_t i = 0; i < n; i++) {
      const char *role = role_names[i % 3];
      char name[64];
      snprintf(name, sizeof(name), "%s-%02zu", role, i);
      dirs[i] = vs_xasprintf("%s/%s", fleet_dir, name);
      make_vm(&fc, role, dirs[i], name, &r, explicit_defaults);
      docs[i] = extract_tree(x, dirs[i], name);
    }
    clean_vms[explicit_defaults] += n;
    clean_alarmed[explicit_defaults] += clean_alarms(docs, n, causes);
    if (explicit_defaults) {
      struct vs_feature *bare[MAX_FLEET];
      for (size_t i = 0; i < n; i++)
        bare[i] = without_defaults(docs[i]);
      nofold_alarmed += clean_alarms(bare, n, NULL);
      nofold_vms += n;
      for (size_t i = 0; i < n; i++)
        vs_feature_free(bare[i]);
    }

    struct vs_vm_tokens vt[MAX_FLEET];
    uint64_t *tok[MAX_FLEET];
    size_t truth[MAX_FLEET], found[MAX_FLEET];
    for (size_t i = 0; i < n; i++) {
      vt[i] = (struct vs_vm_tokens){.name = vs_feature_name(docs[i])};
      vt[i].n = vs_feature_tokens(docs[i], &tok[i]);
      vt[i].tokens = tok[i];
      truth[i] = i % 3;
    }
    struct vs_analysis *an = vs_analyze(vt, n, NULL);
    for (size_t i = 0; i < n; i++)
      found[i] = vs_analysis_role(an, i);
    double ari = vs_adjusted_rand(found, truth, n);
    ari_sum += ari;
    ari_fleets++;
    if (ari < ari_min) ari_min = ari;
    for (size_t i = 0; i < n; i++) {
      if (n_all == cap_all) {
        cap_all = cap_all ? 2 * cap_all : 256;
        all_tokens = vs_xrealloc(all_tokens, cap_all * sizeof(*all_tokens));
        all_n = vs_xrealloc(all_n, cap_all * sizeof(*all_n));
        all_truth = vs_xrealloc(all_truth, cap_all * sizeof(*all_truth));
      }
      all_tokens[n_all] = tok[i];
      all_n[n_all] = vt[i].n;
      all_truth[n_all++] = truth[i];
    }

    struct vs_pop *pop = vs_pop_new();
    for (size_t i = 0; i < n; i++)
      vs_pop_add(pop, docs[i]);
    for (int c = 0; c < CASES_PER_FLEET && total.cases < want_cases; c++, case_no++) {
      int kind = (int)(case_no % N_INJ);
      size_t t = rnd(&r, (uint32_t)n);
      char *inj_dir = vs_xasprintf("%s/injected", fleet_dir);
      remove_tree(inj_dir);
      copy_tree(dirs[t], inj_dir);
      char *what = NULL;
      if (!inject(kind, inj_dir, role_names[t % 3], &r, &what)) {
        free(what);
        free(inj_dir);
        continue;
      }
      struct vs_feature *bad = extract_tree(x, inj_dir, vs_feature_name(docs[t]));
      struct vs_diff *diff = vs_drift_diff(docs[t], bad);
      if (diff->n_changes == 0) {
        fprintf(stderr, "# injection \"%s\" changed no key; not counted\n", what);
      } else {
        if (vs_pop_remove(pop, docs[t], &err) < 0) die("%s", vs_err_msg(&err));
        bool alarm;
        size_t rank = evaluate(pop, bad, diff, &alarm, what);
        /* The targets are over the classic injections; another role's value is the case that
         * PeerGroup role exists for, counted apart. */
        bool classic = kind != INJ_ROLE;
        count(&by_kind[kind], classic ? &total : NULL, rank, alarm);
        if (classic) ranks_hist[rank == 0 ? 3 : rank == 1 ? 0 : rank <= 3 ? 1 : 2]++;
        /* PeerGroup role: the target's role-mates only, as analytics grouped them. */
        /* (as vmscope_drift does by default: the whole fleet when the role has fewer than 8
         * others, too few for PeerPressure to alarm at the default WarningScore) */
        size_t n_mates = 0;
        for (size_t i = 0; i < n; i++)
          n_mates += i != t && found[i] == found[t];
        struct vs_pop *mates = n_mates >= 8 ? vs_pop_new() : NULL;
        for (size_t i = 0; mates && i < n; i++)
          if (i != t && found[i] == found[t]) vs_pop_add(mates, docs[i]);
        rank = evaluate(mates ? mates : pop, bad, diff, &alarm, what);
        count(&role_kind[kind], classic ? &role_total : NULL, rank, alarm);
        vs_pop_free(mates);
        vs_pop_add(pop, docs[t]);
      }
      vs_diff_free(diff);
      vs_feature_free(bad);
      free(what);
      remove_tree(inj_dir);
      free(inj_dir);
    }
    vs_pop_free(pop);
    vs_analysis_free(an);
    for (size_t i = 0; i < n; i++) {
      vs_feature_free(docs[i]);
      free(dirs[i]);
    }
    remove_tree(fleet_dir);
    free(fleet_dir);
    fleets++;
  }
  double secs = vs_now_monotonic() - t0;

  printf("drift-accuracy: %zu injected cases over %zu fleets of 10-%d VMs (3 roles, peers = the "
         "whole fleet), seed %s, %.1f s\n\n",
         total.cases, fleets, MAX_FLEET, argc > 4 ? argv[4] : "20261125", secs);
  print_table(by_kind, &total);
  printf("\nranks: 1: %zu, 2-3: %zu, 4+: %zu, not found: %zu\n", ranks_hist[0], ranks_hist[1],
         ranks_hist[2], ranks_hist[3]);
  size_t vms = clean_vms[0] + clean_vms[1], alarmed = clean_alarmed[0] + clean_alarmed[1];
  printf("clean fleets: %zu VMs, %zu with an alarm (%.1f%%); fleets without explicit defaults "
         "%.1f%% of %zu, fleets where VMs write defaults out %.1f%% of %zu (%.1f%% if defaults "
         "were not folded)\n",
         vms, alarmed, 100.0 * alarmed / vms, 100.0 * clean_alarmed[0] / clean_vms[0], clean_vms[0],
         100.0 * clean_alarmed[1] / clean_vms[1], clean_vms[1],
         nofold_vms ? 100.0 * nofold_alarmed / nofold_vms : 0.0);
  size_t n_causes;
  const char **keys = vs_strmap_sorted_keys(causes, &n_causes);
  printf("alarm keys on clean fleets:");
  for (size_t i = 0; i < n_causes; i++)
    printf(" %s (%zu)", keys[i], (size_t)(uintptr_t)vs_strmap_get(causes, keys[i]));
  printf("%s\n", n_causes ? "" : " none");
  free(keys);
  printf("\nwith PeerGroup role (peers = the target's role as analytics found it):\n");
  print_table(role_kind, &role_total);
  const struct tally *xa = &by_kind[INJ_ROLE], *xr = &role_kind[INJ_ROLE];
  printf("another role's value (%zu cases): rank 1 %.1f%% with PeerGroup role, %.1f%% with the "
         "whole fleet; alarm %.1f%% and %.1f%%\n",
         xa->cases, xa->cases ? 100.0 * xr->rank1 / xr->cases : 0,
         xa->cases ? 100.0 * xa->rank1 / xa->cases : 0,
         xa->cases ? 100.0 * xr->alarmed / xr->cases : 0,
         xa->cases ? 100.0 * xa->alarmed / xa->cases : 0);
  printf("roles: adjusted Rand index against the generator's roles, mean %.3f, lowest %.3f over "
         "%zu fleets (target >= 0.95)\n",
         ari_fleets ? ari_sum / ari_fleets : 0, ari_min, ari_fleets);
  /* Labels: 5% of all VMs (every 20th) labelled with their role's name. */
  static const char *const truth_names[] = {"web", "db", "app"};
  struct vs_vm_tokens *av = vs_xcalloc(n_all ? n_all : 1, sizeof(*av));
  size_t labelled = 0;
  for (size_t i = 0; i < n_all; i++) {
    av[i] = (struct vs_vm_tokens){.tokens = all_tokens[i], .n = all_n[i]};
    if (i % 20 == 0) {
      av[i].label = truth_names[all_truth[i]];
      labelled++;
    }
  }
  struct vs_analysis *la = vs_analyze(av, n_all, NULL);
  size_t right = 0, predicted = 0;
  for (size_t i = 0; i < n_all; i++) {
    if (av[i].label) continue;
    const char *l = vs_analysis_label(la, i, NULL);
    predicted++;
    right += l && strcmp(l, truth_names[all_truth[i]]) == 0;
  }
  printf("labels: %zu of %zu VMs (5%%) labelled; %.1f%% of the other %zu predicted right "
         "(target >= 95%%)\n",
         labelled, n_all, predicted ? 100.0 * right / predicted : 0, predicted);
  vs_analysis_free(la);
  free(av);
  for (size_t i = 0; i < n_all; i++)
    free(all_tokens[i]);
  free(all_tokens);
  free(all_n);
  free(all_truth);
  bool met = 100.0 * total.rank1 / total.cases >= 90 && 100.0 * total.top3 / total.cases >= 98 &&
             100.0 * alarmed / vms <= 5 && 100.0 * total.alarmed / total.cases >= 95;
  printf("targets (rank 1 >= 90%%, top 3 >= 98%%, clean alarms <= 5%%, injected alarms >= 95%%): "
         "%s\n",
         met ? "met" : "NOT met");
  vs_strmap_free(causes);
  for (size_t i = 0; i < fc.n_lag; i++)
    free(fc.lag_pkgs[i]);
  free(fc.lag_pkgs);
  vs_extractor_free(x);
  return 0;
}
