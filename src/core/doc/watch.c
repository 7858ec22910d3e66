#include "watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
  char *pattern, *lens;
};

struct vs_watch {
  struct entry *e;
  size_t n, cap;
};

/* Lenses named explicitly so that Augeas need not load every module to find them. Each family's
 * counterparts are here: a RHEL-family guest's SELinux mode (the first thing a CIS or STIG
 * baseline checks, and a VM left permissive after debugging is the drift an ops team looks
 * for), its yum/dnf repositories and gpgcheck (apt's sources on Debian), and its PAM stacks
 * (system-auth and password-auth, Debian's common-auth and common-password). */
static const struct {
  const char *pattern, *lens;
} default_entries[] = {
    {"/etc/ssh/sshd_config", "Sshd.lns"},
    {"/etc/ssh/sshd_config.d/*.conf", "Sshd.lns"},
    {"/etc/ssh/ssh_config", "Ssh.lns"},
    {"/etc/sudoers", "Sudoers.lns"},
    {"/etc/sudoers.d/*", "Sudoers.lns"},
    {"/etc/login.defs", "Login_defs.lns"},
    {"/etc/fstab", "Fstab.lns"},
    {"/etc/hosts", "Hosts.lns"},
    {"/etc/resolv.conf", "Resolv.lns"},
    {"/etc/nsswitch.conf", "Nsswitch.lns"},
    {"/etc/security/limits.conf", "Limits.lns"},
    {"/etc/security/limits.d/*.conf", "Limits.lns"},
    {"/etc/crontab", "Cron.lns"},
    {"/etc/cron.d/*", "Cron.lns"},
    {"/etc/apt/sources.list", "Aptsources.lns"},
    {"/etc/apt/sources.list.d/*.list", "Aptsources.lns"},
    {"/etc/yum.repos.d/*.repo", "Yum.lns"},
    {"/etc/dnf/dnf.conf", "Yum.lns"},
    {"/etc/selinux/config", "Shellvars.lns"},
    {"/etc/pam.d/sshd", "Pam.lns"},
    {"/etc/pam.d/common-auth", "Pam.lns"},
    {"/etc/pam.d/common-password", "Pam.lns"},
    {"/etc/pam.d/system-auth", "Pam.lns"},
    {"/etc/pam.d/password-auth", "Pam.lns"},
    {"/etc/default/grub", "Shellvars.lns"},
    {"/etc/nginx/nginx.conf", "Nginx.lns"},
    {"/etc/nginx/sites-enabled/*", "Nginx.lns"},
    {"/etc/nginx/conf.d/*.conf", "Nginx.lns"},
    {"/etc/apache2/apache2.conf", "Httpd.lns"},
    {"/etc/apache2/ports.conf", "Httpd.lns"},
    {"/etc/apache2/sites-enabled/*", "Httpd.lns"},
    {"/etc/httpd/conf/httpd.conf", "Httpd.lns"},
    {"/etc/postgresql/*/*/postgresql.conf", "Postgresql.lns"},
    {"/etc/postgresql/*/*/pg_hba.conf", "Pg_hba.lns"},
    {"/etc/mysql/my.cnf", "MySQL.lns"},
    {"/etc/mysql/conf.d/*.cnf", "MySQL.lns"},
    {"/etc/mysql/mysql.conf.d/*.cnf", "MySQL.lns"},
    {"/etc/mysql/mariadb.conf.d/*.cnf", "MySQL.lns"},
    {"/etc/my.cnf", "MySQL.lns"},
    {"/etc/passwd", VS_WATCH_NO_LENS},
    {"/etc/shadow", VS_WATCH_NO_LENS},
    {"/etc/group", VS_WATCH_NO_LENS},
};

struct vs_watch *vs_watch_new_empty(void) {
  return vs_xcalloc(1, sizeof(struct vs_watch));
}

struct vs_watch *vs_watch_new_default(void) {
  struct vs_watch *w = vs_watch_new_empty();
  for (size_t i = 0; i < sizeof(default_entries) / sizeof(default_entries[0]); i++)
    vs_watch_add(w, default_entries[i].pattern, default_entries[i].lens, NULL);
  return w;
}

struct vs_watch *vs_watch_copy(const struct vs_watch *w) {
  if (!w) return vs_watch_new_default();
  struct vs_watch *copy = vs_watch_new_empty();
  for (size_t i = 0; i < w->n; i++)
    vs_watch_add(copy, w->e[i].pattern, w->e[i].lens, NULL);
  return copy;
}

void vs_watch_free(struct vs_watch *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) {
    free(w->e[i].pattern);
    free(w->e[i].lens);
  }
  free(w->e);
  free(w);
}

void vs_watch_freep(struct vs_watch **w) {
  vs_watch_free(*w);
}

static bool lens_name_ok(const char *lens) {
  if (strcmp(lens, VS_WATCH_NO_LENS) == 0) return true;
  /* Module.lens: letters, digits and underscores, as Augeas names them. */
  const char *dot = strchr(lens, '.');
  if (!dot || dot == lens || !dot[1]) return false;
  for (const char *p = lens; *p; p++)
    if (!(*p == '.' || *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9')))
      return false;
  return true;
}

int vs_watch_add(struct vs_watch *w, const char *pattern, const char *lens, struct vs_err *err) {
  if (pattern[0] == '!') {
    size_t out = 0;
    for (size_t i = 0; i < w->n; i++) {
      if (strcmp(w->e[i].pattern, pattern + 1) == 0) {
        free(w->e[i].pattern);
        free(w->e[i].lens);
      } else {
        w->e[out++] = w->e[i];
      }
    }
    w->n = out;
    return 0;
  }
  if (pattern[0] != '/')
    return vs_err_set(err, EINVAL, "watch pattern \"%s\" is not an absolute guest path", pattern);
  if (lens && !lens_name_ok(lens))
    return vs_err_set(err, EINVAL,
                      "watch pattern \"%s\": lens \"%s\" is not of the form Module.lens (or \"-\")",
                      pattern, lens);
  for (size_t i = 0; i < w->n; i++) {
    if (strcmp(w->e[i].pattern, pattern) == 0) { /* a later entry re-states the lens */
      free(w->e[i].lens);
      w->e[i].lens = lens ? vs_xstrdup(lens) : NULL;
      return 0;
    }
  }
  if (w->n == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 32;
    w->e = vs_xrealloc(w->e, w->cap * sizeof(*w->e));
  }
  w->e[w->n++] = (struct entry){vs_xstrdup(pattern), lens ? vs_xstrdup(lens) : NULL};
  return 0;
}

int vs_watch_load_file(struct vs_watch *w, const char *path, struct vs_err *err) {
  _cleanup_(vs_lines_close) struct vs_lines lines = {0};
  if (vs_lines_open(&lines, path, NULL, err) < 0) return -1;
  char *s;
  int got;
  while ((got = vs_lines_next(&lines, &s, err)) > 0) {
    char *pattern = vs_next_word(&s), *lens = vs_next_word(&s);
    if (vs_next_word(&s))
      return vs_err_set(err, EINVAL, "%s:%zu: expected \"PATTERN [LENS]\", found more fields", path,
                        lines.lineno);
    if (vs_watch_add(w, pattern, lens, err) < 0)
      return vs_err_prefix(err, "%s:%zu", path, lines.lineno);
  }
  return got;
}

size_t vs_watch_count(const struct vs_watch *w) {
  return w->n;
}

void vs_watch_entry(const struct vs_watch *w, size_t i, const char **pattern, const char **lens) {
  *pattern = w->e[i].pattern;
  *lens = w->e[i].lens;
}
