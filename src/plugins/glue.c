#include "glue.h"

#include <limits.h>

#include <stdarg.h>

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

static bool one_number(const oconfig_item_t *ci, double *d) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER) {
    ERROR("%s takes exactly one number", ci->key);
    return false;
  }
  *d = ci->values[0].value.number;
  return true;
}

bool vs_cf_whole_int(double d, int *out) {
  if (!(d >= INT_MIN && d <= INT_MAX) || d != (double)(int)d) return false;
  *out = (int)d;
  return true;
}

int vs_cf_get_int(const oconfig_item_t *ci, int *ret_value) {
  double d;
  if (!one_number(ci, &d)) return -1;
  if (!vs_cf_whole_int(d, ret_value)) {
    ERROR("%s takes a whole number from %d to %d, not %g", ci->key, INT_MIN, INT_MAX, d);
    return -1;
  }
  return 0;
}

int vs_cf_get_cdtime(const oconfig_item_t *ci, cdtime_t *ret_value) {
  double d;
  if (!one_number(ci, &d)) return -1;
  if (!(d >= 0 && d <= VS_CF_MAX_SECONDS)) {
    ERROR("%s takes seconds from 0 to %.0f, not %g", ci->key, VS_CF_MAX_SECONDS, d);
    return -1;
  }
  *ret_value = DOUBLE_TO_CDTIME_T(d);
  return 0;
}
