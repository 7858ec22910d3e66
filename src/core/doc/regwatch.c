#include "regwatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct entry {
  char *key, *value;
};

struct vs_regwatch {
  struct entry *e;
  size_t n, cap;
};

#define CCS "HKLM\\SYSTEM\\CurrentControlSet\\"
#define POLICIES "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\"
static const struct {
  const char *key, *value;
} default_entries[] = {
    {CCS "Services\\SharedAccess\\Parameters\\FirewallPolicy\\DomainProfile", "EnableFirewall"},
    {CCS "Services\\SharedAccess\\Parameters\\FirewallPolicy\\StandardProfile", "EnableFirewall"},
    {CCS "Services\\SharedAccess\\Parameters\\FirewallPolicy\\PublicProfile", "EnableFirewall"},
    {CCS "Control\\Terminal?Server", "fDenyTSConnections"},
    {CCS "Control\\Terminal?Server\\WinStations\\RDP-Tcp", "UserAuthentication"},
    {CCS "Control\\Terminal?Server\\WinStations\\RDP-Tcp", "SecurityLayer"},
    {POLICIES "System", "EnableLUA"},
    {POLICIES "System", "ConsentPromptBehaviorAdmin"},
    {POLICIES "System", "FilterAdministratorToken"},
    {CCS "Services\\LanmanServer\\Parameters", "SMB1"},
    {CCS "Services\\LanmanServer\\Parameters", "RequireSecuritySignature"},
    {CCS "Services\\LanmanWorkstation\\Parameters", "RequireSecuritySignature"},
    {CCS "Control\\Lsa", "RunAsPPL"},
    {CCS "Control\\Lsa", "LmCompatibilityLevel"},
    {CCS "Control\\Lsa", "NoLMHash"},
    {CCS "Control\\Lsa", "LimitBlankPasswordUse"},
    {CCS "Control\\Lsa", "SCENoApplyLegacyAuditPolicy"},
    {CCS "Control\\Lsa", "CrashOnAuditFail"},
    {CCS "Control\\SecurityProviders\\SCHANNEL\\Protocols\\*\\*", "Enabled"},
    {CCS "Control\\SecurityProviders\\SCHANNEL\\Protocols\\*\\*", "DisabledByDefault"},
    {"HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU", "NoAutoUpdate"},
    {"HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU", "AUOptions"},
    {"HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate", "WUServer"},
    {POLICIES "Explorer", "NoDriveTypeAutoRun"},
    {POLICIES "Explorer", "NoAutorun"},
    {POLICIES "System\\Audit", "ProcessCreationIncludeCmdLine_Enabled"},
    {CCS "Services\\EventLog\\Security", "MaxSize"},
};

struct vs_regwatch *vs_regwatch_new_empty(void) {
  return vs_xcalloc(1, sizeof(struct vs_regwatch));
}

struct vs_regwatch *vs_regwatch_new_default(void) {
  struct vs_regwatch *w = vs_regwatch_new_empty();
  for (size_t i = 0; i < sizeof(default_entries) / sizeof(default_entries[0]); i++)
    vs_regwatch_add(w, default_entries[i].key, default_entries[i].value, NULL);
  return w;
}

struct vs_regwatch *vs_regwatch_copy(const struct vs_regwatch *w) {
  if (!w) return vs_regwatch_new_default();
  struct vs_regwatch *copy = vs_regwatch_new_empty();
  for (size_t i = 0; i < w->n; i++)
    vs_regwatch_add(copy, w->e[i].key, w->e[i].value, NULL);
  return copy;
}

void vs_regwatch_free(struct vs_regwatch *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) {
    free(w->e[i].key);
    free(w->e[i].value);
  }
  free(w->e);
  free(w);
}

void vs_regwatch_freep(struct vs_regwatch **w) {
  vs_regwatch_free(*w);
}

/* "HKEY_LOCAL_MACHINE\X" or "HKLM\X" -> "HKLM\X", when X is a hive we read; NULL otherwise. */
static char *canonical_key(const char *key, struct vs_err *err) {
  const char *rest = NULL;
  if (strncasecmp(key, "HKLM\\", 5) == 0)
    rest = key + 5;
  else if (strncasecmp(key, "HKEY_LOCAL_MACHINE\\", 19) == 0)
    rest = key + 19;
  if (!rest) {
    vs_err_set(err, EINVAL, "registry watch key \"%s\" does not start with HKLM\\", key);
    return NULL;
  }
  static const char *const hives[] = {"SOFTWARE", "SYSTEM"};
  for (size_t i = 0; i < 2; i++) {
    size_t n = strlen(hives[i]);
    if (strncasecmp(rest, hives[i], n) == 0 && (rest[n] == '\0' || rest[n] == '\\')) {
      size_t depth = 0;
      for (const char *p = rest; *p; p++) {
        if (*p == '\\' && (p[1] == '\\' || p[1] == '\0')) {
          vs_err_set(err, EINVAL, "registry watch key \"%s\" has an empty component", key);
          return NULL;
        }
        depth += *p == '\\';
      }
      if (depth > VS_REGWATCH_MAX_DEPTH) {
        vs_err_set(err, EINVAL, "registry watch key \"%s\" is deeper than %d components", key,
                   VS_REGWATCH_MAX_DEPTH);
        return NULL;
      }
      return vs_xasprintf("HKLM\\%s%s", hives[i], rest + n);
    }
  }
  vs_err_set(err, EINVAL,
             "registry watch key \"%s\": only the SOFTWARE and SYSTEM hives are watched "
             "(the SAM and SECURITY hives hold secrets)",
             key);
  return NULL;
}

static bool same_entry(const struct entry *e, const char *key, const char *value) {
  return strcmp(e->key, key) == 0 &&
         (value ? e->value && strcmp(e->value, value) == 0 : e->value == NULL);
}

int vs_regwatch_add(struct vs_regwatch *w, const char *key, const char *value, struct vs_err *err) {
  bool removing = key[0] == '!';
  _cleanup_(vs_freep) char *canon = canonical_key(key + removing, err);
  if (!canon) return -1;
  if (removing) {
    size_t out = 0;
    for (size_t i = 0; i < w->n; i++) {
      if (same_entry(&w->e[i], canon, value)) {
        free(w->e[i].key);
        free(w->e[i].value);
      } else {
        w->e[out++] = w->e[i];
      }
    }
    w->n = out;
    return 0;
  }
  if (value && !*value) value = NULL;
  for (size_t i = 0; i < w->n; i++)
    if (same_entry(&w->e[i], canon, value)) return 0;
  if (w->n == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 32;
    w->e = vs_xrealloc(w->e, w->cap * sizeof(*w->e));
  }
  w->e[w->n++] = (struct entry){vs_steal(&canon), value ? vs_xstrdup(value) : NULL};
  return 0;
}

int vs_regwatch_load_file(struct vs_regwatch *w, const char *path, struct vs_err *err) {
  _cleanup_(vs_lines_close) struct vs_lines lines = {0};
  if (vs_lines_open(&lines, path, "registry watch file", err) < 0) return -1;
  char *s;
  int got;
  while ((got = vs_lines_next(&lines, &s, err)) > 0) {
    char *key = vs_next_word(&s), *value = vs_next_word(&s);
    if (vs_next_word(&s))
      return vs_err_set(err, EINVAL,
                        "%s:%zu: expected \"KEY [VALUE]\", found more fields (write a blank in a "
                        "name as ?)",
                        path, lines.lineno);
    if (vs_regwatch_add(w, key, value, err) < 0)
      return vs_err_prefix(err, "%s:%zu", path, lines.lineno);
  }
  return got;
}

size_t vs_regwatch_count(const struct vs_regwatch *w) {
  return w->n;
}

void vs_regwatch_entry(const struct vs_regwatch *w, size_t i, const char **key,
                       const char **value) {
  *key = w->e[i].key;
  *value = w->e[i].value;
}
