#include "glue.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

void vs_glue_log_sink(enum vs_log_level level, const char *msg, void *ctx) {
  plugin_log((int)level, "%s: %s", (const char *)ctx, msg);
}

void vs_glue_submit(const char *plugin, const char *instance, const char *type,
                    const char *type_instance, gauge_t value, cdtime_t time) {
  value_list_t vl = VALUE_LIST_INIT;
  value_t v = {.gauge = value};
  vl.values = &v;
  vl.values_len = 1;
  vl.time = time;
  sstrncpy(vl.plugin, plugin, sizeof(vl.plugin));
  sstrncpy(vl.plugin_instance, instance, sizeof(vl.plugin_instance));
  sstrncpy(vl.type, type, sizeof(vl.type));
  sstrncpy(vl.type_instance, type_instance, sizeof(vl.type_instance));
  plugin_dispatch_values(&vl);
}

struct glue_read {
  int (*read)(void);
  void (*stop)(void);
  char plugin[DATA_MAX_NAME_LEN];
};

static int glue_read(user_data_t *ud) {
  const struct glue_read *r = ud->data;
  return r->read();
}

static void glue_read_free(void *data) {
  struct glue_read *r = data;
  r->stop();
  /* between collectd's "Stopping N read threads" and "Stopping N write threads": the tests
   * check that order */
  INFO("%s: its threads have stopped: collectd is shutting down", r->plugin);
  free(r);
}

int vs_glue_register_read(const char *plugin, int (*read)(void), void (*stop)(void)) {
  struct glue_read *r = vs_xcalloc(1, sizeof(*r));
  r->read = read;
  r->stop = stop;
  sstrncpy(r->plugin, plugin, sizeof(r->plugin));
  /* collectd frees the user data itself if the registration fails */
  return plugin_register_complex_read(NULL, plugin, glue_read, 0,
                                      &(user_data_t){.data = r, .free_func = glue_read_free});
}

void vs_once_fail(struct vs_once *o, const char *plugin, const char *cause, const char *msg) {
  if (!o->seen) o->seen = vs_strmap_new(free);
  const char *before = vs_strmap_get(o->seen, cause);
  if (before && strcmp(before, msg) == 0) {
    DEBUG("%s: %s (still)", plugin, msg);
    return;
  }
  ERROR("%s: %s", plugin, msg);
  vs_strmap_put(o->seen, cause, vs_xstrdup(msg));
}

void vs_once_ok(struct vs_once *o, const char *plugin, const char *cause) {
  if (o->seen && vs_strmap_has(o->seen, cause)) {
    INFO("%s: %s works again", plugin, cause);
    vs_strmap_remove(o->seen, cause);
  }
}

void vs_once_free(struct vs_once *o) {
  vs_strmap_free(o->seen);
  o->seen = NULL;
}

void vs_notification_init(notification_t *n, int severity, const char *plugin,
                          const char *plugin_instance, const char *type,
                          const char *type_instance) {
  memset(n, 0, sizeof(*n));
  n->severity = severity;
  n->time = cdtime();
  sstrncpy(n->host, hostname_g ? hostname_g : "localhost", sizeof(n->host));
  sstrncpy(n->plugin, plugin, sizeof(n->plugin));
  sstrncpy(n->plugin_instance, plugin_instance, sizeof(n->plugin_instance));
  sstrncpy(n->type, type, sizeof(n->type));
  sstrncpy(n->type_instance, type_instance, sizeof(n->type_instance));
}

/* Cuts S to fit SIZE bytes without splitting a UTF-8 sequence, ending it with "...". */
static void cut_utf8(char *s, size_t size) {
  size_t keep = size - 4;
  while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
    keep--;
  memcpy(s + keep, "...", 4);
}

void vs_notification_send(notification_t *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  int len = vasprintf(&msg, fmt, ap);
  va_end(ap);
  if (len < 0) abort();
  size_t size = sizeof(n->message);
  if ((size_t)len >= size) {
    msg[size - 1] = '\0';
    cut_utf8(msg, size);
  }
  sstrncpy(n->message, msg, sizeof(n->message));
  free(msg);
  plugin_dispatch_notification(n);
  plugin_notification_meta_free(n->meta);
  n->meta = NULL;
}

void vs_short_key(const char *key, char *out, size_t size) {
  const char *rest = key;
  char *buf = NULL;
  if (strncmp(key, "file:", 5) == 0 || strncmp(key, "meta:", 5) == 0) {
    /* file:PATH:NODE -> basename(PATH).NODE */
    const char *path = key + 5, *colon = strchr(path, ':');
    size_t plen = colon ? (size_t)(colon - path) : strlen(path);
    const char *base = path;
    for (const char *p = path; p < path + plen; p++)
      if (*p == '/') base = p + 1;
    buf = vs_xasprintf("%.*s%s%s", (int)(path + plen - base), base, colon ? "." : "",
                       colon ? colon + 1 : "");
    rest = buf;
  }
  size_t len = strlen(rest), o = len < size - 1 ? len : size - 1;
  while (o > 0 && o < len && ((unsigned char)rest[o] & 0xC0) == 0x80) /* not mid-character */
    o--;
  for (size_t i = 0; i < o; i++)
    out[i] = (rest[i] == '/' || rest[i] == ':') ? '.' : rest[i];
  out[o] = '\0';
  free(buf); /* the short form is cut to SIZE on purpose: meta carries the full key */
}

/* "PLUGIN: " or nothing, for messages. */
#define P_FMT "%s%s"
#define P_ARG(plugin) (plugin) ? (plugin) : "", (plugin) ? ": " : ""

/* What CI was given instead, for "..., not X": "2 values", "\"abc\"", "true". */
static void given(const oconfig_item_t *ci, char *buf, size_t size) {
  if (ci->values_num != 1)
    snprintf(buf, size, "%d values", ci->values_num);
  else if (ci->values[0].type == OCONFIG_TYPE_STRING)
    snprintf(buf, size, "\"%s\"", ci->values[0].value.string);
  else if (ci->values[0].type == OCONFIG_TYPE_BOOLEAN)
    snprintf(buf, size, "%s", ci->values[0].value.boolean ? "true" : "false");
  else
    snprintf(buf, size, "%g", ci->values[0].value.number);
}

static bool one_of_type(const oconfig_item_t *ci, const char *plugin, int type, const char *what) {
  if (ci->values_num == 1 && ci->values[0].type == type) return true;
  char buf[128];
  given(ci, buf, sizeof(buf));
  ERROR(P_FMT "%s takes exactly one %s, not %s", P_ARG(plugin), ci->key, what, buf);
  return false;
}

bool vs_cf_whole_int(double d, int *out) {
  if (!(d >= INT_MIN && d <= INT_MAX) || d != (double)(int)d) return false;
  *out = (int)d;
  return true;
}

int vs_cf_int(const oconfig_item_t *ci, const char *plugin, int *out) {
  if (!one_of_type(ci, plugin, OCONFIG_TYPE_NUMBER, "number")) return -1;
  double d = ci->values[0].value.number;
  if (!vs_cf_whole_int(d, out)) {
    ERROR(P_FMT "%s takes a whole number from %d to %d, not %g", P_ARG(plugin), ci->key, INT_MIN,
          INT_MAX, d);
    return -1;
  }
  return 0;
}

int vs_cf_cdtime(const oconfig_item_t *ci, const char *plugin, cdtime_t *out) {
  if (!one_of_type(ci, plugin, OCONFIG_TYPE_NUMBER, "number")) return -1;
  double d = ci->values[0].value.number;
  if (!(d >= 0 && d <= VS_CF_MAX_SECONDS)) {
    ERROR(P_FMT "%s takes seconds from 0 to %.0f, not %g", P_ARG(plugin), ci->key,
          VS_CF_MAX_SECONDS, d);
    return -1;
  }
  *out = DOUBLE_TO_CDTIME_T(d);
  return 0;
}

int vs_cf_double(const oconfig_item_t *ci, const char *plugin, double *out) {
  if (!one_of_type(ci, plugin, OCONFIG_TYPE_NUMBER, "number")) return -1;
  double d = ci->values[0].value.number;
  if (!isfinite(d)) {
    ERROR(P_FMT "%s takes a finite number, not %g", P_ARG(plugin), ci->key, d);
    return -1;
  }
  *out = d;
  return 0;
}

int vs_cf_string(const oconfig_item_t *ci, const char *plugin, char **out) {
  if (!one_of_type(ci, plugin, OCONFIG_TYPE_STRING, "string")) return -1;
  free(*out);
  *out = vs_xstrdup(ci->values[0].value.string);
  return 0;
}

int vs_cf_boolean(const oconfig_item_t *ci, const char *plugin, bool *out) {
  if (ci->values_num == 1 && ci->values[0].type == OCONFIG_TYPE_BOOLEAN) {
    *out = ci->values[0].value.boolean != 0;
    return 0;
  }
  if (ci->values_num == 1 && ci->values[0].type == OCONFIG_TYPE_STRING) {
    const char *v = ci->values[0].value.string; /* as collectd's cf_util_get_boolean */
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
      *out = true;
      return 0;
    }
    if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
      *out = false;
      return 0;
    }
  }
  char buf[128];
  given(ci, buf, sizeof(buf));
  ERROR(P_FMT "%s takes true or false, not %s", P_ARG(plugin), ci->key, buf);
  return -1;
}

int vs_cf_get_int(const oconfig_item_t *ci, int *ret_value) {
  return vs_cf_int(ci, NULL, ret_value);
}

int vs_cf_get_cdtime(const oconfig_item_t *ci, cdtime_t *ret_value) {
  return vs_cf_cdtime(ci, NULL, ret_value);
}

int vs_cf_check_repeats(const oconfig_item_t *ci, const char *plugin, const char *context,
                        const char *const *repeatable) {
  for (int i = 0; i < ci->children_num; i++) {
    const char *key = ci->children[i].key;
    bool list = false;
    for (size_t r = 0; repeatable && repeatable[r] && !list; r++)
      list = strcasecmp(key, repeatable[r]) == 0;
    if (list) continue;
    for (int k = 0; k < i; k++)
      if (strcasecmp(ci->children[k].key, key) == 0) {
        ERROR(P_FMT "%s%s%s is given twice (it takes one value: give it once)", P_ARG(plugin),
              context ? context : "", context ? ": " : "", key);
        return -1;
      }
  }
  return 0;
}

static int check_path(const oconfig_item_t *ci, const char *plugin, const char *path, bool dir) {
  struct stat st;
  const char *why = NULL;
  int fd = -1;
  if (stat(path, &st) < 0)
    why = strerror(errno);
  else if (dir && !S_ISDIR(st.st_mode))
    why = "not a directory";
  else if (!dir && !S_ISREG(st.st_mode))
    why = S_ISDIR(st.st_mode) ? "a directory, not a file" : "not a regular file";
  else if (!dir && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    why = strerror(errno);
  if (fd >= 0) close(fd);
  if (!why) return 0;
  ERROR(P_FMT "%s \"%s\": %s", P_ARG(plugin), ci->key, path, why);
  return -1;
}

int vs_cf_check_file(const oconfig_item_t *ci, const char *plugin, const char *path) {
  return check_path(ci, plugin, path, false);
}

int vs_cf_check_dir(const oconfig_item_t *ci, const char *plugin, const char *path) {
  return check_path(ci, plugin, path, true);
}

int vs_cf_get_instance_format(const oconfig_item_t *ci, const char *plugin,
                              enum vs_instance_format *out) {
  if (!one_of_type(ci, plugin, OCONFIG_TYPE_STRING, "string (name or uuid)")) return -1;
  const char *v = ci->values[0].value.string;
  if (strcasecmp(v, "name") == 0)
    *out = VS_INSTANCE_NAME;
  else if (strcasecmp(v, "uuid") == 0)
    *out = VS_INSTANCE_UUID;
  else {
    ERROR(P_FMT "%s is name or uuid, not \"%s\"", P_ARG(plugin), ci->key, v);
    return -1;
  }
  return 0;
}

const char *vs_instance_name(enum vs_instance_format f, const char *name, const char *uuid) {
  bool has_uuid = uuid && *uuid && !strchr(uuid, '/'); /* a guest tree's id is its path */
  if (f == VS_INSTANCE_UUID && has_uuid) return uuid;
  if (name && *name) return name;
  return uuid ? uuid : "";
}

void vs_notification_init_vm(notification_t *n, int severity, const char *plugin,
                             enum vs_instance_format f, const char *name, const char *uuid,
                             const char *type, const char *type_instance) {
  vs_notification_init(n, severity, plugin, vs_instance_name(f, name, uuid), type, type_instance);
  if (name && *name) plugin_notification_meta_add_string(n, "name", name);
}
