/* OS facts, accounts, services and sysctl: the parts of a guest read with plain parsers. */
#include "extract_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vs_x_set_os(struct vs_feature *doc, const char *field, const char *value, const char *origin) {
  vs_feature_set_os(doc, field, value);
  char key[64];
  snprintf(key, sizeof(key), "os:%s", field); /* fits: fields are short literals */
  vs_feature_set(doc, key, vs_feature_os(doc, field), origin);
}

/* Unquotes an os-release value in place (shell-like: "..." with backslash escapes, '...'). */
static char *os_release_value(char *v) {
  v = vs_trim(v);
  size_t n = strlen(v);
  if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
    char q = v[0];
    v[n - 1] = '\0';
    v++;
    if (q == '"') {
      char *w = v;
      for (char *r = v; *r; r++) {
        if (*r == '\\' && r[1] && strchr("\"\\`$", r[1])) r++;
        *w++ = *r;
      }
      *w = '\0';
    }
  }
  return v;
}

/* e_machine of an ELF header -> the architecture name libguestfs and uname use. */
static const char *elf_arch(const unsigned char *h, size_t len) {
  if (len < 20 || memcmp(h, "\177ELF", 4) != 0) return NULL;
  bool is64 = h[4] == 2, big = h[5] == 2;
  unsigned m = big ? (unsigned)(h[18] << 8 | h[19]) : (unsigned)(h[19] << 8 | h[18]);
  switch (m) {
  case 3:
    return "i386";
  case 62:
    return "x86_64";
  case 183:
    return "aarch64";
  case 40:
    return "armv7l";
  case 243:
    return is64 ? "riscv64" : "riscv32";
  case 21:
    return big ? "ppc64" : "ppc64le";
  case 20:
    return "ppc";
  case 22:
    return "s390x";
  case 8:
    return is64 ? "mips64" : "mips";
  default:
    return NULL;
  }
}

/* The os-release ID of the distribution a redhat-release line names ("CentOS release 6.10
 * (Final)"), so that a guest older than os-release (RHEL and CentOS 6) and its successors are
 * one distribution; NULL for a name not known here. */
static const char *redhat_release_id(const char *line) {
  static const struct {
    const char *prefix, *id;
  } names[] = {
      {"Red Hat Enterprise Linux", "rhel"}, {"CentOS", "centos"},        {"Rocky Linux", "rocky"},
      {"AlmaLinux", "almalinux"},           {"Fedora", "fedora"},        {"Oracle Linux", "ol"},
      {"Scientific Linux", "scientific"},   {"CloudLinux", "cloudlinux"}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strncmp(line, names[i].prefix, strlen(names[i].prefix)) == 0) return names[i].id;
  return NULL;
}

/* A guest with no os-release: distro, version (major.minor of "release X.Y...") and the line
 * as its pretty name, from /etc/redhat-release, as libguestfs's inspection reads it. */
static void redhat_release(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc) {
  const char *origin = "/etc/redhat-release";
  if (vs_x_read(x, src, doc, origin, 4096, true) < 0) return;
  char *line = vs_trim(x->buf.data);
  line[strcspn(line, "\n")] = '\0';
  const char *id = redhat_release_id(line);
  const char *rel = strstr(line, " release ");
  if (!id || !rel) {
    vs_feature_skip(doc, origin, "not a release line of a distribution known here: \"%.80s\"",
                    line);
    return;
  }
  vs_x_set_os(doc, "type", "linux", origin);
  vs_x_set_os(doc, "distro", id, origin);
  vs_x_set_os(doc, "pretty_name", line, origin);
  const char *v = rel + strlen(" release ");
  size_t major = strspn(v, "0123456789"), len = major;
  if (major && v[major] == '.' && strspn(v + major + 1, "0123456789"))
    len += 1 + strspn(v + major + 1, "0123456789");
  if (major && len < 32) {
    char version[32];
    memcpy(version, v, len);
    version[len] = '\0';
    vs_x_set_os(doc, "version", version, origin);
  }
}

void vs_x_os(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc) {
  const char *origin = "/etc/os-release";
  int rc = vs_x_read(x, src, doc, origin, VS_EXTRACT_MAX_CONFIG, true);
  if (rc < 0) {
    origin = "/usr/lib/os-release";
    rc = vs_x_read(x, src, doc, origin, VS_EXTRACT_MAX_CONFIG, true);
  }
  if (rc < 0) redhat_release(x, src, doc);
  if (rc == 0) {
    static const struct {
      const char *var, *field;
    } wanted[] = {{"ID", "distro"},
                  {"VERSION_ID", "version"},
                  {"PRETTY_NAME", "pretty_name"},
                  {"ID_LIKE", "id_like"}};
    vs_x_set_os(doc, "type", "linux", origin);
    char *save = NULL;
    for (char *line = strtok_r(x->buf.data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
      char *eq = strchr(line, '=');
      if (!eq || line[0] == '#') continue;
      *eq = '\0';
      const char *var = vs_trim(line);
      for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
        if (strcmp(var, wanted[i].var) == 0)
          vs_x_set_os(doc, wanted[i].field, os_release_value(eq + 1), origin);
    }
  }

  if (vs_x_read(x, src, doc, "/etc/hostname", 4096, true) == 0) {
    char *h = vs_trim(x->buf.data);
    h[strcspn(h, "\n")] = '\0';
    if (*h) vs_x_set_os(doc, "hostname", h, "/etc/hostname");
  }

  /* The architecture of the shell the guest runs, which holds for foreign-arch images too. */
  static const char *const shells[] = {"/bin/sh", "/usr/bin/sh", "/bin/busybox"};
  for (size_t i = 0; i < sizeof(shells) / sizeof(shells[0]); i++) {
    if (vs_x_read(x, src, doc, shells[i], 64u << 20, true) < 0) continue;
    const char *arch = elf_arch((const unsigned char *)x->buf.data, x->buf.len);
    if (arch) {
      vs_x_set_os(doc, "arch", arch, shells[i]);
      break;
    }
  }
}

/* -------------------------------------------------------------------------------- accounts */

#define MAX_ACCOUNT_LINES 100000

static const char *password_state(const char *pw) {
  if (!*pw) return "empty";
  if (pw[0] == '!' || pw[0] == '*') return "locked";
  return "set";
}

void vs_x_accounts(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc) {
  char *f[8];
  if (vs_x_read(x, src, doc, "/etc/passwd", VS_EXTRACT_MAX_CONFIG, true) == 0) {
    char *save = NULL;
    size_t lines = 0;
    for (char *line = strtok_r(x->buf.data, "\n", &save); line && lines < MAX_ACCOUNT_LINES;
         line = strtok_r(NULL, "\n", &save), lines++) {
      if (line[0] == '#' || line[0] == '+' || line[0] == '-') continue;
      if (vs_x_split(line, ':', f, 8) != 7 || !f[0][0]) {
        vs_feature_skip(doc, "/etc/passwd", "line %zu: expected 7 colon-separated fields",
                        lines + 1);
        continue;
      }
      char key[512];
      static const char *const names[] = {NULL, NULL, "uid", "gid", NULL, "home", "shell"};
      for (int i = 2; i < 7; i++) {
        if (!names[i] ||
            snprintf(key, sizeof(key), "user:%s:%s", f[0], names[i]) >= (int)sizeof(key))
          continue;
        vs_feature_set(doc, key, f[i], "/etc/passwd");
      }
      /* A hash kept in passwd itself (no shadow): record only its state. */
      if (strcmp(f[1], "x") != 0 &&
          snprintf(key, sizeof(key), "user:%s:password", f[0]) < (int)sizeof(key))
        vs_feature_set(doc, key, password_state(f[1]), "/etc/passwd");
    }
  }
  if (vs_x_read(x, src, doc, "/etc/shadow", VS_EXTRACT_MAX_CONFIG, true) == 0) {
    char *save = NULL;
    size_t lines = 0;
    for (char *line = strtok_r(x->buf.data, "\n", &save); line && lines < MAX_ACCOUNT_LINES;
         line = strtok_r(NULL, "\n", &save), lines++) {
      size_t n = vs_x_split(line, ':', f, 8);
      if (n < 2 || !f[0][0]) continue;
      char key[512];
      if (snprintf(key, sizeof(key), "user:%s:password", f[0]) < (int)sizeof(key))
        vs_feature_set(doc, key, password_state(f[1]), "/etc/shadow");
      /* Field 5 is the maximum password age; it says whether passwords expire. */
      if (n >= 5 && f[4][0] &&
          snprintf(key, sizeof(key), "user:%s:max_days", f[0]) < (int)sizeof(key))
        vs_feature_set(doc, key, f[4], "/etc/shadow");
    }
    memset(x->buf.data, 0, x->buf.len); /* do not leave hashes in a scratch buffer */
  }
  if (vs_x_read(x, src, doc, "/etc/group", VS_EXTRACT_MAX_CONFIG, true) == 0) {
    char *save = NULL;
    size_t lines = 0;
    for (char *line = strtok_r(x->buf.data, "\n", &save); line && lines < MAX_ACCOUNT_LINES;
         line = strtok_r(NULL, "\n", &save), lines++) {
      if (vs_x_split(line, ':', f, 5) != 4 || !f[0][0]) {
        if (line[0] != '#')
          vs_feature_skip(doc, "/etc/group", "line %zu: expected 4 colon-separated fields",
                          lines + 1);
        continue;
      }
      char key[512];
      if (snprintf(key, sizeof(key), "group:%s:gid", f[0]) < (int)sizeof(key))
        vs_feature_set(doc, key, f[2], "/etc/group");
      if (f[3][0] && snprintf(key, sizeof(key), "group:%s:members", f[0]) < (int)sizeof(key))
        vs_feature_set(doc, key, f[3], "/etc/group");
    }
  }
}

/* -------------------------------------------------------------------------------- services */

static const char *const unit_dirs[] = {"/etc/systemd/system", "/run/systemd/system",
                                        "/usr/local/lib/systemd/system", "/usr/lib/systemd/system",
                                        "/lib/systemd/system"};

static bool is_unit_name(const char *name) {
  static const char *const suffixes[] = {".service", ".socket", ".timer", ".path",
                                         ".target",  ".mount",  ".swap",  ".automount"};
  for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
    if (vs_has_suffix(name, suffixes[i])) return true;
  return false;
}

/* True when a unit file has an [Install] section that could enable it. */
static bool has_install_section(const char *text) {
  bool in_install = false;
  const char *p = text;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    while (len && (*p == ' ' || *p == '\t'))
      p++, len--;
    if (len && *p == '[')
      in_install = len >= 9 && memcmp(p, "[Install]", 9) == 0;
    else if (in_install)
      for (const char *k = "WantedBy=\0RequiredBy=\0Alias=\0UpheldBy=\0"; *k; k += strlen(k) + 1)
        if (len > strlen(k) && memcmp(p, k, strlen(k)) == 0) return true;
    if (!eol) break;
    p = eol + 1;
  }
  return false;
}

/* The units linked from one .wants/ or .requires/ directory PATH are enabled. */
static void note_wanted(struct vs_source *src, struct vs_feature *doc, const char *path,
                        const char *prefix, struct vs_strmap *known) {
  char **units = NULL;
  size_t nu = 0;
  bool trunc = false;
  struct vs_err err = {0};
  if (vs_source_list(src, path, &units, &nu, &trunc, &err) == 0) {
    for (size_t u = 0; u < nu; u++) {
      if (!is_unit_name(units[u])) continue;
      char *key = vs_xasprintf("%s%s", prefix, units[u]);
      vs_feature_set(doc, key, "enabled", path);
      vs_strmap_put(known, units[u], NULL);
      free(key);
    }
  } else {
    vs_feature_skip(doc, path, "%s", vs_err_msg(&err));
    vs_err_clear(&err);
  }
  vs_strv_free(units, nu);
}

/* A unit NAME that is a symbolic link at PATH is masked (to /dev/null) or an alias. */
static void note_linked(struct vs_source *src, struct vs_feature *doc, const char *path,
                        const char *prefix, const char *name, struct vs_strmap *known) {
  char *target = NULL;
  struct vs_err err = {0};
  if (vs_source_readlink(src, path, &target, &err) == 0) {
    if (strcmp(target, "/dev/null") == 0) {
      char *key = vs_xasprintf("%s%s", prefix, name);
      vs_feature_set(doc, key, "masked", path);
      free(key);
    }
    vs_strmap_put(known, name, NULL); /* masked, or an alias: not "disabled" */
    free(target);
  }
  vs_err_clear(&err); /* EINVAL: a regular unit file, looked at by services_disabled */
}

/* Enabled: a unit linked from a .wants/ or .requires/ directory under /etc/systemd. */
static void services_enabled(struct vs_source *src, struct vs_feature *doc,
                             struct vs_strmap *known) {
  static const char *const farms[] = {"/etc/systemd/system", "/etc/systemd/user"};
  for (size_t fi = 0; fi < 2; fi++) {
    char **names = NULL;
    size_t n = 0;
    bool trunc = false;
    struct vs_err err = {0};
    if (vs_source_list(src, farms[fi], &names, &n, &trunc, &err) < 0) {
      vs_x_list_failed(doc, farms[fi], &err);
      continue;
    }
    const char *prefix = fi == 0 ? "svc:" : "svc:user/";
    for (size_t i = 0; i < n; i++) {
      char *path = vs_xasprintf("%s/%s", farms[fi], names[i]);
      if (vs_has_suffix(names[i], ".wants") || vs_has_suffix(names[i], ".requires"))
        note_wanted(src, doc, path, prefix, known);
      else if (is_unit_name(names[i]))
        note_linked(src, doc, path, prefix, names[i], known);
      free(path);
    }
    vs_strv_free(names, n);
  }
}

/* Disabled: an installable unit (one with an [Install] section) that nothing enabled. */
static void services_disabled(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
                              struct vs_strmap *known) {
  _cleanup_(vs_strmap_freep) struct vs_strmap *seen_dirs = vs_strmap_new(NULL);
  for (size_t d = 0; d < sizeof(unit_dirs) / sizeof(unit_dirs[0]); d++) {
    char **names = NULL;
    size_t n = 0;
    bool trunc = false;
    struct vs_err err = {0};
    char *real = NULL;
    if (vs_source_resolve(src, unit_dirs[d], true, &real, &err) < 0 ||
        !vs_strmap_put(seen_dirs, real, NULL)) { /* /lib is /usr/lib on merged-/usr guests */
      vs_err_clear(&err);
      free(real);
      continue;
    }
    free(real);
    if (vs_source_list(src, unit_dirs[d], &names, &n, &trunc, &err) < 0) {
      vs_x_list_failed(doc, unit_dirs[d], &err);
      continue;
    }
    for (size_t i = 0; i < n; i++) {
      if (!is_unit_name(names[i]) || strchr(names[i], '@') || vs_strmap_has(known, names[i]))
        continue;
      vs_strmap_put(known, names[i], NULL);
      char *path = vs_xasprintf("%s/%s", unit_dirs[d], names[i]);
      struct vs_stat st;
      if (vs_source_stat(src, path, false, &st, &err) == 0 && st.type == VS_FT_REG &&
          vs_x_read(x, src, doc, path, 1u << 20, false) == 0 && has_install_section(x->buf.data)) {
        char *key = vs_xasprintf("svc:%s", names[i]);
        vs_feature_set(doc, key, "disabled", path);
        free(key);
      }
      vs_err_clear(&err);
      free(path);
    }
    vs_strv_free(names, n);
  }
}

/* SysV scripts started in the default runlevel that no native unit replaces. */
static void services_sysv(struct vs_source *src, struct vs_feature *doc,
                          const struct vs_strmap *known) {
  char **names = NULL;
  size_t n = 0;
  bool trunc = false;
  struct vs_err err = {0};
  if (vs_source_list(src, "/etc/rc2.d", &names, &n, &trunc, &err) == 0) {
    for (size_t i = 0; i < n; i++) {
      if (names[i][0] != 'S' || strlen(names[i]) < 4) continue;
      char *unit = vs_xasprintf("%s.service", names[i] + 3);
      if (!vs_strmap_has(known, unit)) {
        char *key = vs_xasprintf("svc:%s", unit);
        vs_feature_set(doc, key, "enabled", "/etc/rc2.d");
        free(key);
      }
      free(unit);
    }
    vs_strv_free(names, n);
  } else {
    vs_x_list_failed(doc, "/etc/rc2.d", &err);
  }
}

void vs_x_services(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc) {
  /* The units enabled, masked or aliased, so that neither of the later passes reports them. */
  _cleanup_(vs_strmap_freep) struct vs_strmap *known = vs_strmap_new(NULL);
  services_enabled(src, doc, known);
  services_disabled(x, src, doc, known);
  services_sysv(src, doc, known);
}

/* ---------------------------------------------------------------------------------- sysctl */

/* Applies one sysctl file: "key = value" lines, '#' and ';' comments, a leading '-' meaning
 * "ignore failure"; '/' in a key is the same as '.'. */
static void apply_sysctl(char *text, const char *path, struct vs_feature *doc) {
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *s = vs_trim(line);
    if (!*s || *s == '#' || *s == ';') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      vs_feature_skip(doc, path, "line \"%.80s\" has no '='", s);
      continue;
    }
    *eq = '\0';
    char *k = vs_trim(s), *v = vs_trim(eq + 1);
    if (*k == '-') k = vs_trim(k + 1);
    if (!*k) continue;
    for (char *p = k; *p; p++)
      if (*p == '/') *p = '.';
    char *key = vs_xasprintf("sysctl:%s", k);
    vs_feature_set(doc, key, v, path);
    free(key);
  }
}

/* systemd-sysctl's order: every *.conf name once, from the first directory that has it
 * (/etc before /run before /usr/local/lib before /usr/lib), all names sorted; then
 * /etc/sysctl.conf, which Debian links in as 99-sysctl.conf. Later settings win. */
void vs_x_sysctl(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc) {
  static const char *const dirs[] = {"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d",
                                     "/usr/lib/sysctl.d", "/lib/sysctl.d"};
  _cleanup_(vs_strmap_freep) struct vs_strmap *chosen = vs_strmap_new(free);
  struct vs_err err = {0};
  for (size_t d = 0; d < sizeof(dirs) / sizeof(dirs[0]); d++) {
    char **names = NULL;
    size_t n = 0;
    bool trunc = false;
    if (vs_source_list(src, dirs[d], &names, &n, &trunc, &err) < 0) {
      vs_x_list_failed(doc, dirs[d], &err);
      continue;
    }
    for (size_t i = 0; i < n; i++)
      if (vs_has_suffix(names[i], ".conf") && !vs_strmap_has(chosen, names[i]))
        vs_strmap_put(chosen, names[i], vs_xasprintf("%s/%s", dirs[d], names[i]));
    vs_strv_free(names, n);
  }
  size_t n = 0;
  const char **order = vs_strmap_sorted_keys(chosen, &n);
  bool saw_sysctl_conf = false;
  for (size_t i = 0; i < n; i++) {
    const char *path = vs_strmap_get(chosen, order[i]);
    char *real = NULL;
    if (vs_source_resolve(src, path, true, &real, &err) == 0 &&
        strcmp(real, "/etc/sysctl.conf") == 0)
      saw_sysctl_conf = true;
    vs_err_clear(&err);
    free(real);
    if (vs_x_read(x, src, doc, path, VS_EXTRACT_MAX_CONFIG, false) == 0)
      apply_sysctl(x->buf.data, path, doc);
  }
  free(order);
  if (!saw_sysctl_conf &&
      vs_x_read(x, src, doc, "/etc/sysctl.conf", VS_EXTRACT_MAX_CONFIG, true) == 0)
    apply_sysctl(x->buf.data, "/etc/sysctl.conf", doc);
}
