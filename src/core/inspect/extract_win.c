/* Windows guests: OS facts, applications, services, accounts and watched registry values, read
 * from the registry hives under the system root with hivex.
 *
 * hivex opens hives by file name only, so each hive is read through the source (any backend,
 * bounded by VS_EXTRACT_MAX_HIVE and the document's read budget) into a memfd and opened as
 * /proc/self/fd/N. A hive is guest data: every walk is bounded (a fixed path, or a key pattern
 * of at most VS_REGWATCH_MAX_DEPTH components, at most MAX_KEYS_VISITED keys per hive and
 * MAX_SUBKEYS children per key), so a cyclic key list cannot keep us walking, and every string
 * is bounded before it is decoded. A hive hivex refuses is recorded as skipped, naming it. */
#include "extract_int.h"

#include "dl.h"

#include <errno.h>
#include <fnmatch.h>
#include <hivex.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_KEYS_VISITED 200000    /* keys looked at in one hive, all walks together */
#define MAX_SUBKEYS 20000          /* children of one key taken */
#define MAX_VALUES 20000           /* values of one key taken */
#define MAX_VALUE_BYTES (1u << 20) /* a value's data decoded at all */
#define MAX_BINARY_SHOWN 2048      /* bytes of a binary value shown in hex */

/* hivex, opened on first use (dl.h): by the first Windows guest. */
/* clang-format off */
#define HIVEX_SYMBOLS(X) X(hivex_close) X(hivex_node_children) X(hivex_node_get_child)             \
  X(hivex_node_get_value) X(hivex_node_name) X(hivex_node_name_len) X(hivex_node_values)           \
  X(hivex_open) X(hivex_root) X(hivex_value_dword) X(hivex_value_key) X(hivex_value_key_len)       \
  X(hivex_value_multiple_strings) X(hivex_value_qword) X(hivex_value_string) X(hivex_value_type)   \
  X(hivex_value_value)
/* clang-format on */
VS_DL_LIBRARY(hivex_lib, VS_SONAME_HIVEX, "libhivex0", HIVEX_SYMBOLS);

static const char *const systemroots[] = {"Windows", "WINNT"};

/* The entry of directory DIR named NAME in any case, as a new path; NULL when there is none. */
static char *find_nocase(struct vs_source *src, const char *dir, const char *name) {
  char **names = NULL;
  size_t n = 0;
  bool trunc = false;
  struct vs_err err = {0};
  char *found = NULL;
  if (vs_source_list(src, dir, &names, &n, &trunc, &err) == 0) {
    for (size_t i = 0; i < n && !found; i++)
      if (strcasecmp(names[i], name) == 0)
        found = vs_xasprintf("%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", names[i]);
    vs_strv_free(names, n);
  }
  vs_err_clear(&err);
  return found;
}

/* Follows the components of REL ("System32/config/SAM") from DIR, each in any case. */
static char *find_path_nocase(struct vs_source *src, const char *dir, const char *rel) {
  char *path = vs_xstrdup(dir), *copy = vs_xstrdup(rel), *save = NULL;
  for (char *c = strtok_r(copy, "/", &save); c && path; c = strtok_r(NULL, "/", &save)) {
    char *next = find_nocase(src, path, c);
    free(path);
    path = next;
  }
  free(copy);
  return path;
}

char *vs_x_win_systemroot(struct vs_source *src) {
  for (size_t i = 0; i < sizeof(systemroots) / sizeof(systemroots[0]); i++) {
    char *root = find_nocase(src, "/", systemroots[i]);
    if (!root) continue;
    char *software = find_path_nocase(src, root, "System32/config/SOFTWARE");
    char *system = find_path_nocase(src, root, "System32/config/SYSTEM");
    bool ok = software && system;
    free(software);
    free(system);
    if (ok) return root;
    free(root);
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------- hives */

struct hive {
  hive_h *h;
  const char *name; /* "SOFTWARE" */
  char *path;       /* the guest path it came from */
  size_t visited;
  bool over_budget; /* recorded once */
};

static void hive_close(struct hive *hv) {
  if (hv->h) sym_hivex_close(hv->h);
  free(hv->path);
  *hv = (struct hive){0};
}

/* Opens hive NAME under the system root ROOT: 0, or -1 after recording why in DOC (a hive that
 * is not there is recorded too when REQUIRED). */
static int hive_open(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
                     const char *root, const char *name, bool required, struct hive *hv) {
  *hv = (struct hive){.name = name};
  char *rel = vs_xasprintf("System32/config/%s", name);
  hv->path = find_path_nocase(src, root, rel);
  free(rel);
  if (!hv->path) {
    if (required)
      vs_feature_skip(doc, root, "no %s hive under System32/config: its settings are not read",
                      name);
    return -1;
  }
  if (vs_x_read(x, src, doc, hv->path, VS_EXTRACT_MAX_HIVE, false) < 0) return -1;
  size_t len = x->buf.len;
  int fd = memfd_create("vmscope-hive", MFD_CLOEXEC);
  if (fd < 0) {
    vs_feature_skip(doc, hv->path, "%s hive: memfd_create: %s", name, strerror(errno));
    return -1;
  }
  for (size_t done = 0; done < len;) {
    ssize_t w = write(fd, x->buf.data + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      vs_feature_skip(doc, hv->path, "%s hive: writing its copy to a memfd: %s", name,
                      w < 0 ? strerror(errno) : "no progress");
      close(fd);
      return -1;
    }
    done += (size_t)w;
  }
  if (strcmp(name, "SAM") == 0) memset(x->buf.data, 0, x->buf.len); /* no hashes left behind */
  char proc[64];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  errno = 0;
  hv->h = sym_hivex_open(proc, 0);
  int saved = errno;
  close(fd); /* hivex keeps its own descriptor or mapping */
  if (!hv->h) {
    vs_feature_skip(doc, hv->path, "%s hive (%zu bytes): hivex cannot read it: %s", name, len,
                    saved ? strerror(saved) : "not a registry hive");
    return -1;
  }
  return 0;
}

/* Counts one key visited; false (recorded once) when the hive's budget is spent. */
static bool visit(struct hive *hv, struct vs_feature *doc) {
  if (hv->visited < MAX_KEYS_VISITED) {
    hv->visited++;
    return true;
  }
  if (!hv->over_budget)
    vs_feature_skip(doc, hv->path, "%s hive: more than %d keys visited; the rest is not read",
                    hv->name, MAX_KEYS_VISITED);
  hv->over_budget = true;
  return false;
}

/* The key at backslash-separated PATH under NODE, or 0. */
static hive_node_h key_at(struct hive *hv, struct vs_feature *doc, hive_node_h node,
                          const char *path) {
  char *copy = vs_xstrdup(path), *save = NULL;
  for (char *c = strtok_r(copy, "\\", &save); c && node; c = strtok_r(NULL, "\\", &save))
    node = visit(hv, doc) ? sym_hivex_node_get_child(hv->h, node, c) : 0;
  free(copy);
  return node;
}

/* A child's name, at most 1024 bytes of UTF-16 decoded; NULL when hivex cannot read it. */
static char *key_name(struct hive *hv, hive_node_h node) {
  if (sym_hivex_node_name_len(hv->h, node) > 1024) return NULL;
  return sym_hivex_node_name(hv->h, node);
}

/* The children of NODE (0-terminated, at most MAX_SUBKEYS), or NULL after recording why. */
static hive_node_h *children(struct hive *hv, struct vs_feature *doc, hive_node_h node,
                             const char *where) {
  errno = 0;
  hive_node_h *kids = sym_hivex_node_children(hv->h, node);
  if (!kids) {
    vs_feature_skip(doc, hv->path, "%s hive: the subkeys of %s cannot be read: %s", hv->name, where,
                    strerror(errno ? errno : EINVAL));
    return NULL;
  }
  size_t n = 0;
  while (kids[n] && n < MAX_SUBKEYS)
    n++;
  if (kids[n]) {
    vs_feature_skip(doc, hv->path, "%s hive: %s has more than %d subkeys; the rest are not read",
                    hv->name, where, MAX_SUBKEYS);
    kids[n] = 0;
  }
  return kids;
}

/* The value named NAME (any case) of NODE, or 0. */
static hive_value_h value_of(struct hive *hv, hive_node_h node, const char *name) {
  return node ? sym_hivex_node_get_value(hv->h, node, name) : 0;
}

static bool value_dword(struct hive *hv, hive_value_h v, uint32_t *out) {
  hive_type t;
  size_t len;
  if (!v || sym_hivex_value_type(hv->h, v, &t, &len) < 0) return false;
  if ((t != hive_t_REG_DWORD && t != hive_t_REG_DWORD_BIG_ENDIAN) || len < 4) return false;
  *out = (uint32_t)sym_hivex_value_dword(hv->h, v);
  return true;
}

/* A value's data normalised for the document: REG_DWORD and REG_QWORD as decimal numbers,
 * strings as UTF-8, REG_MULTI_SZ as its strings joined with ',' (as group members are), a ','
 * or '\\' within a string escaped with a '\\' (so that ["a,b", "c"] and ["a", "b", "c"] differ),
 * anything else as hex (the first MAX_BINARY_SHOWN bytes). NULL when hivex cannot decode it
 * or it is longer than MAX_VALUE_BYTES; *WHY says which. */
static char *value_text(struct hive *hv, hive_value_h v, const char **why) {
  hive_type t;
  size_t len;
  *why = "its type cannot be read";
  if (sym_hivex_value_type(hv->h, v, &t, &len) < 0) return NULL;
  *why = "its data is longer than 1 MiB";
  if (len > MAX_VALUE_BYTES) return NULL;
  *why = "hivex cannot decode it";
  switch (t) {
  case hive_t_REG_DWORD:
  case hive_t_REG_DWORD_BIG_ENDIAN:
    if (len < 4) return NULL;
    return vs_xasprintf("%" PRIu32, (uint32_t)sym_hivex_value_dword(hv->h, v));
  case hive_t_REG_QWORD:
    if (len < 8) return NULL;
    return vs_xasprintf("%" PRIu64, (uint64_t)sym_hivex_value_qword(hv->h, v));
  case hive_t_REG_SZ:
  case hive_t_REG_EXPAND_SZ:
  case hive_t_REG_LINK:
    return sym_hivex_value_string(hv->h, v);
  case hive_t_REG_MULTI_SZ: {
    char **strs = sym_hivex_value_multiple_strings(hv->h, v);
    if (!strs) return NULL;
    struct vs_buf b = {0};
    vs_buf_add(&b, "", 0);
    size_t n = 0;
    while (strs[n])
      n++;
    while (n && !*strs[n - 1]) /* hivex may give the list's terminator as an empty string */
      free(strs[--n]);
    for (size_t i = 0; i < n; i++) {
      if (i) vs_buf_addc(&b, ',');
      for (const char *c = strs[i]; *c; c++) {
        if (*c == ',' || *c == '\\') vs_buf_addc(&b, '\\');
        vs_buf_addc(&b, *c);
      }
      free(strs[i]);
    }
    free(strs);
    return vs_buf_steal(&b);
  }
  default: {
    size_t got = 0;
    char *raw = sym_hivex_value_value(hv->h, v, &t, &got);
    if (!raw) return NULL;
    size_t shown = got < MAX_BINARY_SHOWN ? got : MAX_BINARY_SHOWN;
    char *hex = vs_xmalloc(2 * shown + 1);
    vs_hex((const unsigned char *)raw, shown, hex);
    free(raw);
    return hex;
  }
  }
}

/* Sets KEY to the value NAME of NODE when it has one; true when it did. */
static bool set_from_value(struct hive *hv, struct vs_feature *doc, hive_node_h node,
                           const char *name, const char *key, const char *origin) {
  hive_value_h v = value_of(hv, node, name);
  if (!v) return false;
  const char *why;
  char *text = value_text(hv, v, &why);
  if (!text) {
    vs_feature_skip(doc, hv->path, "%s hive: %s\\%s: %s", hv->name, origin, name, why);
    return false;
  }
  vs_feature_set(doc, key, text, origin);
  free(text);
  return true;
}

/* "ControlSet001", from SYSTEM\Select\Current; NULL when the hive does not say. */
static char *current_control_set(struct hive *hv, struct vs_feature *doc) {
  uint32_t n;
  if (!value_dword(hv, value_of(hv, key_at(hv, doc, sym_hivex_root(hv->h), "Select"), "Current"),
                   &n) ||
      n == 0 || n > 999) {
    vs_feature_skip(doc, hv->path, "SYSTEM hive: no control set in Select\\Current");
    return NULL;
  }
  return vs_xasprintf("ControlSet%03" PRIu32, n);
}

/* ----------------------------------------------------------------------------- OS facts */

/* The machine of a PE executable's header: the architecture of the guest's cmd.exe. */
static const char *pe_arch(const unsigned char *p, size_t len) {
  if (len < 0x40 || p[0] != 'M' || p[1] != 'Z') return NULL;
  uint32_t pe = (uint32_t)p[0x3c] | (uint32_t)p[0x3d] << 8 | (uint32_t)p[0x3e] << 16 |
                (uint32_t)p[0x3f] << 24;
  if (pe > len - 6 || memcmp(p + pe, "PE\0\0", 4) != 0) return NULL;
  switch ((unsigned)p[pe + 4] | (unsigned)p[pe + 5] << 8) {
  case 0x14c:
    return "i386";
  case 0x8664:
    return "x86_64";
  case 0xaa64:
    return "aarch64";
  default:
    return NULL;
  }
}

static void win_os(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
                   const char *root, struct hive *software, struct hive *system, const char *ccs) {
  vs_x_set_os(doc, "type", "windows", root);
  vs_x_set_os(doc, "distro", "windows", root);
  if (software->h) {
    static const char cv[] = "Microsoft\\Windows NT\\CurrentVersion";
    const char *origin = "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion";
    hive_node_h node = key_at(software, doc, sym_hivex_root(software->h), cv);
    static const struct {
      const char *value, *field;
    } wanted[] = {{"ProductName", "pretty_name"},
                  {"EditionID", "edition"},
                  {"InstallationType", "variant"},
                  {"CurrentBuildNumber", "build"},
                  {"CurrentBuild", "build"}};
    for (size_t i = 0; node && i < sizeof(wanted) / sizeof(wanted[0]); i++) {
      char key[64];
      snprintf(key, sizeof(key), "os:%s", wanted[i].field);
      if (vs_feature_get(doc, key)) continue; /* CurrentBuildNumber before CurrentBuild */
      if (set_from_value(software, doc, node, wanted[i].value, key, origin))
        vs_feature_set_os(doc, wanted[i].field, vs_feature_get(doc, key));
    }
    /* libguestfs's order: the major and minor numbers (Windows 10 on), else CurrentVersion. */
    uint32_t major, minor;
    if (value_dword(software, value_of(software, node, "CurrentMajorVersionNumber"), &major) &&
        value_dword(software, value_of(software, node, "CurrentMinorVersionNumber"), &minor)) {
      char version[32];
      snprintf(version, sizeof(version), "%" PRIu32 ".%" PRIu32, major, minor);
      vs_x_set_os(doc, "version", version, origin);
    } else if (set_from_value(software, doc, node, "CurrentVersion", "os:version", origin)) {
      vs_feature_set_os(doc, "version", vs_feature_get(doc, "os:version"));
    }
    if (!node) vs_feature_skip(doc, software->path, "SOFTWARE hive: no key %s", cv);
  }
  if (system->h && ccs) {
    /* The TCP/IP host name first, as libguestfs does; the NetBIOS computer name else. */
    char *tcpip = vs_xasprintf("%s\\Services\\Tcpip\\Parameters", ccs);
    char *cn = vs_xasprintf("%s\\Control\\ComputerName\\ComputerName", ccs);
    hive_node_h r = sym_hivex_root(system->h);
    if (!set_from_value(system, doc, key_at(system, doc, r, tcpip), "Hostname", "os:hostname",
                        "HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters"))
      set_from_value(system, doc, key_at(system, doc, r, cn), "ComputerName", "os:hostname",
                     "HKLM\\SYSTEM\\CurrentControlSet\\Control\\ComputerName\\ComputerName");
    if (vs_feature_get(doc, "os:hostname"))
      vs_feature_set_os(doc, "hostname", vs_feature_get(doc, "os:hostname"));
    free(tcpip);
    free(cn);
  }
  char *cmd = find_path_nocase(src, root, "System32/cmd.exe");
  if (cmd && vs_x_read(x, src, doc, cmd, 64u << 20, true) == 0) {
    const char *arch = pe_arch((const unsigned char *)x->buf.data, x->buf.len);
    if (arch) vs_x_set_os(doc, "arch", arch, cmd);
  }
  free(cmd);
}

/* ------------------------------------------------------------------------- applications */

/* pkg:NAME = DisplayVersion for each subkey of an Uninstall key that has a DisplayName (as
 * libguestfs lists them: the subkey's name is the package's name, the display name being
 * translated). A name in both views with different versions keeps both, sorted. */
static size_t win_apps(struct hive *hv, struct vs_feature *doc, const char *path) {
  hive_node_h node = key_at(hv, doc, sym_hivex_root(hv->h), path);
  if (!node) return 0;
  char *origin = vs_xasprintf("HKLM\\SOFTWARE\\%s", path);
  hive_node_h *kids = children(hv, doc, node, origin);
  size_t count = 0;
  for (size_t i = 0; kids && kids[i] && visit(hv, doc); i++) {
    if (!value_of(hv, kids[i], "DisplayName")) continue;
    char *name = key_name(hv, kids[i]);
    if (!name || !*name) {
      free(name);
      continue;
    }
    const char *why;
    hive_value_h dv = value_of(hv, kids[i], "DisplayVersion");
    char *version = dv ? value_text(hv, dv, &why) : NULL;
    if (!version) version = vs_xstrdup("");
    char *key = vs_xasprintf("pkg:%s", name);
    const char *have = vs_feature_get(doc, key);
    if (have && strcmp(have, version) != 0) {
      char *joined = strcmp(have, version) < 0 ? vs_xasprintf("%s %s", have, version)
                                               : vs_xasprintf("%s %s", version, have);
      vs_feature_set(doc, key, joined, origin);
      free(joined);
    } else if (!have) {
      vs_feature_set(doc, key, version, origin);
      count++;
    }
    free(key);
    free(version);
    free(name);
  }
  free(kids);
  free(origin);
  return count;
}

/* ----------------------------------------------------------------------------- services */

static void win_services(struct hive *hv, struct vs_feature *doc, const char *ccs) {
  char *path = vs_xasprintf("%s\\Services", ccs);
  const char *origin = "HKLM\\SYSTEM\\CurrentControlSet\\Services";
  hive_node_h node = key_at(hv, doc, sym_hivex_root(hv->h), path);
  hive_node_h *kids = node ? children(hv, doc, node, origin) : NULL;
  static const char *const starts[] = {"boot", "system", "auto", "manual", "disabled"};
  for (size_t i = 0; kids && kids[i] && visit(hv, doc); i++) {
    uint32_t type = 0, start;
    bool typed = value_dword(hv, value_of(hv, kids[i], "Type"), &type);
    /* Drivers (Type 1, 2) and entries with no Type and no image are not services. */
    if (!(typed && (type & 0x30)) && !(!typed && value_of(hv, kids[i], "ImagePath"))) continue;
    if (!value_dword(hv, value_of(hv, kids[i], "Start"), &start)) continue;
    char *name = key_name(hv, kids[i]);
    if (!name || !*name) {
      free(name);
      continue;
    }
    uint32_t delayed = 0;
    char *key = vs_xasprintf("svc:%s", name);
    if (start == 2 && value_dword(hv, value_of(hv, kids[i], "DelayedAutostart"), &delayed) &&
        delayed)
      vs_feature_set(doc, key, "auto-delayed", origin);
    else if (start < 5)
      vs_feature_set(doc, key, starts[start], origin);
    else
      vs_feature_setf(doc, key, origin, "%" PRIu32, start);
    free(key);
    free(name);
  }
  free(kids);
  free(path);
}

/* ----------------------------------------------------------------------------- accounts */

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The raw data of value NAME of NODE when it is at most MAX_VALUE_BYTES; *LEN its length. */
static unsigned char *value_bytes(struct hive *hv, hive_node_h node, const char *name,
                                  size_t *len) {
  hive_value_h v = value_of(hv, node, name);
  hive_type t;
  if (!v || sym_hivex_value_type(hv->h, v, &t, len) < 0 || *len > MAX_VALUE_BYTES) return NULL;
  return (unsigned char *)sym_hivex_value_value(hv->h, v, &t, len);
}

/* Each subkey of NAMES (under the SAM's PATH) is an account whose RID is the type of its
 * default value (the SAM's layout, as samba's and chntpw's documentation describe it). Calls
 * FN for each. */
static void sam_names(struct hive *hv, struct vs_feature *doc, const char *path,
                      void (*fn)(struct hive *, struct vs_feature *, hive_node_h, const char *,
                                 uint32_t, const char *),
                      const char *prefix) {
  hive_node_h parent = key_at(hv, doc, sym_hivex_root(hv->h), path);
  hive_node_h names = parent ? sym_hivex_node_get_child(hv->h, parent, "Names") : 0;
  char *where = vs_xasprintf("SAM\\%s\\Names", path);
  hive_node_h *kids = names ? children(hv, doc, names, where) : NULL;
  for (size_t i = 0; kids && kids[i] && visit(hv, doc); i++) {
    char *name = key_name(hv, kids[i]);
    hive_value_h *values = sym_hivex_node_values(hv->h, kids[i]);
    hive_type t = 0;
    size_t len;
    bool found = false;
    for (size_t k = 0; values && values[k] && k < MAX_VALUES && !found; k++)
      if (sym_hivex_value_key_len(hv->h, values[k]) == 0 &&
          sym_hivex_value_type(hv->h, values[k], &t, &len) == 0)
        found = true;
    free(values);
    if (name && *name && found) fn(hv, doc, parent, name, (uint32_t)t, prefix);
    free(name);
  }
  free(kids);
  free(where);
}

static void sam_user(struct hive *hv, struct vs_feature *doc, hive_node_h users, const char *name,
                     uint32_t rid, const char *prefix) {
  const char *origin = "HKLM\\SAM\\SAM\\Domains\\Account\\Users";
  char key[512], hexrid[16];
  if (snprintf(key, sizeof(key), "%s%s:rid", prefix, name) >= (int)sizeof(key)) return;
  vs_feature_setf(doc, key, origin, "%" PRIu32, rid);
  snprintf(hexrid, sizeof(hexrid), "%08" PRIX32, rid);
  hive_node_h node = sym_hivex_node_get_child(hv->h, users, hexrid);
  if (!node) return;
  size_t len = 0;
  unsigned char *f = value_bytes(hv, node, "F", &len);
  if (f && len >= 0x3a) { /* the account control bits at 0x38: 0x0001 is "disabled" */
    snprintf(key, sizeof(key), "%s%s:disabled", prefix, name);
    vs_feature_set(doc, key, (f[0x38] & 1) ? "yes" : "no", origin);
  }
  free(f);
  unsigned char *v = value_bytes(hv, node, "V", &len);
  if (v && len >= 0xcc) { /* the NT hash's entry: offset at 0xa8, length at 0xac */
    uint32_t off = le32(v + 0xa8), n = le32(v + 0xac);
    if ((uint64_t)off + 0xcc + n <= len) {
      snprintf(key, sizeof(key), "%s%s:password", prefix, name);
      vs_feature_set(doc, key, n > 4 ? "set" : "empty", origin); /* never the hash itself */
    }
  }
  if (v) memset(v, 0, len);
  free(v);
}

static void sam_group(struct hive *hv, struct vs_feature *doc, hive_node_h aliases,
                      const char *name, uint32_t rid, const char *prefix) {
  (void)hv;
  (void)aliases;
  char key[512];
  if (snprintf(key, sizeof(key), "%s%s:rid", prefix, name) < (int)sizeof(key))
    vs_feature_setf(doc, key, "HKLM\\SAM\\SAM\\Domains", "%" PRIu32, rid);
}

static void win_accounts(struct hive *hv, struct vs_feature *doc) {
  sam_names(hv, doc, "SAM\\Domains\\Account\\Users", sam_user, "user:");
  sam_names(hv, doc, "SAM\\Domains\\Builtin\\Aliases", sam_group, "group:");
  sam_names(hv, doc, "SAM\\Domains\\Account\\Aliases", sam_group, "group:");
}

/* ---------------------------------------------------------------------- watched values */

struct reg_walk {
  struct hive *hv;
  struct vs_feature *doc;
  char **comps;
  size_t n_comps;
  const char *value; /* pattern, or NULL: every value */
  const char *ccs;   /* what CurrentControlSet names in SYSTEM, or NULL */
};

static bool is_glob(const char *s) {
  return strpbrk(s, "*?[") != NULL;
}

static void reg_values(struct reg_walk *w, hive_node_h node, const char *shown) {
  hive_value_h *values = sym_hivex_node_values(w->hv->h, node);
  if (!values) {
    vs_feature_skip(w->doc, w->hv->path, "%s hive: the values of %s cannot be read: %s",
                    w->hv->name, shown, strerror(errno ? errno : EINVAL));
    return;
  }
  for (size_t i = 0; values[i] && i < MAX_VALUES; i++) {
    if (sym_hivex_value_key_len(w->hv->h, values[i]) > 1024) continue;
    char *name = sym_hivex_value_key(w->hv->h, values[i]);
    if (!name) continue;
    if (!w->value || fnmatch(w->value, name, FNM_CASEFOLD) == 0) {
      const char *why;
      char *text = value_text(w->hv, values[i], &why);
      char *key = vs_xasprintf("reg:%s:%s", shown, *name ? name : "(default)");
      if (text)
        vs_feature_set(w->doc, key, text, w->hv->path);
      else
        vs_feature_skip(w->doc, w->hv->path, "%s: %s", key, why);
      free(key);
      free(text);
    }
    free(name);
  }
  free(values);
}

/* Matches components I.. of the pattern below NODE, whose key is SHOWN. The depth is the
 * pattern's (at most VS_REGWATCH_MAX_DEPTH), whatever the hive's key lists point to. */
static void reg_match(struct reg_walk *w, hive_node_h node, size_t i, const char *shown) {
  if (!visit(w->hv, w->doc)) return;
  if (i == w->n_comps) {
    reg_values(w, node, shown);
    return;
  }
  const char *c = w->comps[i];
  if (i == 0 && w->ccs && strcasecmp(c, "CurrentControlSet") == 0) {
    hive_node_h child = sym_hivex_node_get_child(w->hv->h, node, w->ccs);
    char *next = vs_xasprintf("%s\\CurrentControlSet", shown);
    if (child) reg_match(w, child, i + 1, next);
    free(next);
    return;
  }
  if (!is_glob(c)) {
    hive_node_h child = sym_hivex_node_get_child(w->hv->h, node, c);
    char *name = child ? key_name(w->hv, child) : NULL;
    if (name) {
      char *next = vs_xasprintf("%s\\%s", shown, name);
      reg_match(w, child, i + 1, next);
      free(next);
    }
    free(name);
    return;
  }
  hive_node_h *kids = children(w->hv, w->doc, node, shown);
  for (size_t k = 0; kids && kids[k] && !w->hv->over_budget; k++) {
    char *name = key_name(w->hv, kids[k]);
    if (name && fnmatch(c, name, FNM_CASEFOLD) == 0) {
      char *next = vs_xasprintf("%s\\%s", shown, name);
      reg_match(w, kids[k], i + 1, next);
      free(next);
    }
    free(name);
  }
  free(kids);
}

static void win_registry(const struct vs_regwatch *rw, struct vs_feature *doc,
                         struct hive *software, struct hive *system, const char *ccs) {
  for (size_t e = 0; e < vs_regwatch_count(rw); e++) {
    const char *pattern, *value;
    vs_regwatch_entry(rw, e, &pattern, &value);
    bool is_system = strncmp(pattern, "HKLM\\SYSTEM", 11) == 0;
    struct hive *hv = is_system ? system : software;
    if (!hv->h) continue;
    char *copy = vs_xstrdup(pattern + (is_system ? 11 : 13)), *save = NULL;
    char *comps[VS_REGWATCH_MAX_DEPTH + 1];
    size_t n = 0;
    for (char *c = strtok_r(copy, "\\", &save); c && n <= VS_REGWATCH_MAX_DEPTH;
         c = strtok_r(NULL, "\\", &save))
      comps[n++] = c;
    struct reg_walk w = {hv, doc, comps, n, value, is_system ? ccs : NULL};
    if (n <= VS_REGWATCH_MAX_DEPTH)
      reg_match(&w, sym_hivex_root(hv->h), 0, is_system ? "HKLM\\SYSTEM" : "HKLM\\SOFTWARE");
    free(copy);
  }
}

/* ------------------------------------------------------------------------------- driver */

void vs_x_windows(struct vs_extractor *x, struct vs_source *src, struct vs_feature *doc,
                  const char *root, struct vs_extract_stats *st) {
  double t0 = vs_now_monotonic(), t = t0, now;
#define LAP(field)                                                                                 \
  do {                                                                                             \
    now = vs_now_monotonic();                                                                      \
    st->field += now - t;                                                                          \
    t = now;                                                                                       \
  } while (0)
  struct hive software = {0}, system = {0}, sam = {0};
  struct vs_err err = {0};
  bool registry = vs_dl_load(&hivex_lib, &err) == 0;
  if (!registry) { /* what the files say is still read: the OS's type, its architecture */
    vs_feature_skip(doc, root, "%s; the registry is not read", vs_err_msg(&err));
    vs_err_clear(&err);
  } else {
    hive_open(x, src, doc, root, "SOFTWARE", true, &software);
    hive_open(x, src, doc, root, "SYSTEM", true, &system);
  }
  char *ccs = system.h ? current_control_set(&system, doc) : NULL;
  win_os(x, src, doc, root, &software, &system, ccs);
  LAP(seconds_os);
  if (software.h) {
    st->packages += win_apps(&software, doc, "Microsoft\\Windows\\CurrentVersion\\Uninstall");
    st->packages +=
        win_apps(&software, doc, "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall");
  }
  LAP(seconds_packages);
  if (registry && hive_open(x, src, doc, root, "SAM", false, &sam) == 0) win_accounts(&sam, doc);
  hive_close(&sam);
  LAP(seconds_accounts);
  if (system.h && ccs) win_services(&system, doc, ccs);
  LAP(seconds_services);
  win_registry(x->regwatch, doc, &software, &system, ccs);
  LAP(seconds_files);
#undef LAP
  st->seconds_total = t - t0;
  free(ccs);
  hive_close(&software);
  hive_close(&system);
}
