/* collectd_stub.c: the few collectd daemon functions a plugin's config callback reaches, so the
 * config handlers can be fuzzed without the daemon. The cf_util_get_* follow collectd 5.12's
 * configfile.c: one value of the right type, booleans also as "true"/"yes"/"on" and
 * "false"/"no"/"off" strings, intervals as non-negative numbers of seconds. Everything else
 * records the plugin's callbacks or does nothing. */
#include "collectd/core/daemon/collectd.h"
#include "collectd/core/daemon/configfile.h"
#include "collectd/core/daemon/plugin.h"
#include "collectd/core/utils/common/common.h"

#include "fuzz_config.h"

#include <stdarg.h>
#include <strings.h>

char *hostname_g = "fuzz";
cdtime_t interval_g = TIME_T_TO_CDTIME_T_STATIC(10);
struct fuzz_callbacks fuzz_cb;

cdtime_t cdtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return TIMESPEC_TO_CDTIME_T(&ts);
}

char *sstrncpy(char *dest, const char *src, size_t n) {
  size_t len = strnlen(src, n - 1); /* collectd's: at most N - 1 bytes, always terminated */
  memcpy(dest, src, len);
  dest[len] = '\0';
  return dest;
}

void plugin_log(int level, const char *format, ...) {
  (void)level;
  char buf[1024];
  va_list ap;
  va_start(ap, format);
  vsnprintf(buf, sizeof(buf), format, ap); /* formatted, so bad format arguments still show */
  va_end(ap);
  fuzz_cb.log_lines++;
}

cdtime_t plugin_get_interval(void) {
  return interval_g;
}

int plugin_register_complex_config(const char *type, int (*callback)(oconfig_item_t *)) {
  (void)type;
  fuzz_cb.config = callback;
  return 0;
}
int plugin_register_init(const char *name, plugin_init_cb callback) {
  (void)name;
  fuzz_cb.init = callback;
  return 0;
}
int plugin_register_read(const char *name, int (*callback)(void)) {
  (void)name;
  (void)callback;
  return 0;
}
int plugin_register_complex_read(const char *group, const char *name, plugin_read_cb callback,
                                 cdtime_t interval, user_data_t const *user_data) {
  (void)group;
  (void)name;
  (void)callback;
  (void)interval;
  /* never read: collectd frees the user data at shutdown, which here is at once */
  if (user_data && user_data->free_func) user_data->free_func(user_data->data);
  return 0;
}
int plugin_register_shutdown(const char *name, plugin_shutdown_cb callback) {
  (void)name;
  fuzz_cb.shutdown = callback;
  return 0;
}
int plugin_register_notification(const char *name, plugin_notification_cb callback,
                                 user_data_t const *user_data) {
  (void)name;
  (void)callback;
  if (user_data && user_data->free_func) user_data->free_func(user_data->data);
  return 0;
}
int plugin_unregister_notification(const char *name) {
  (void)name;
  return 0;
}
int plugin_dispatch_values(value_list_t const *vl) {
  (void)vl;
  return 0;
}
int plugin_dispatch_notification(const notification_t *notif) {
  (void)notif;
  return 0;
}
int plugin_thread_create(pthread_t *thread, void *(*start_routine)(void *), void *arg,
                         char const *name) {
  (void)name;
  return pthread_create(thread, NULL, start_routine, arg);
}

static int meta_add(notification_t *n, const char *name, int type, const void *value) {
  notification_meta_t *m = calloc(1, sizeof(*m));
  if (!m) return -1;
  sstrncpy(m->name, name, sizeof(m->name));
  m->type = type;
  switch (type) {
  case NM_TYPE_STRING:
    m->nm_value.nm_string = strdup(value);
    break;
  case NM_TYPE_UNSIGNED_INT:
    m->nm_value.nm_unsigned_int = *(const uint64_t *)value;
    break;
  case NM_TYPE_DOUBLE:
    m->nm_value.nm_double = *(const double *)value;
    break;
  default:
    m->nm_value.nm_boolean = *(const bool *)value;
  }
  m->next = n->meta;
  n->meta = m;
  return 0;
}
int plugin_notification_meta_add_string(notification_t *n, const char *name, const char *value) {
  return meta_add(n, name, NM_TYPE_STRING, value);
}
int plugin_notification_meta_add_unsigned_int(notification_t *n, const char *name, uint64_t value) {
  return meta_add(n, name, NM_TYPE_UNSIGNED_INT, &value);
}
int plugin_notification_meta_add_double(notification_t *n, const char *name, double value) {
  return meta_add(n, name, NM_TYPE_DOUBLE, &value);
}
int plugin_notification_meta_add_boolean(notification_t *n, const char *name, bool value) {
  return meta_add(n, name, NM_TYPE_BOOLEAN, &value);
}
int plugin_notification_meta_free(notification_meta_t *n) {
  while (n) {
    notification_meta_t *next = n->next;
    if (n->type == NM_TYPE_STRING) free((char *)n->nm_value.nm_string);
    free(n);
    n = next;
  }
  return 0;
}

int cf_util_get_string(const oconfig_item_t *ci, char **ret_string) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) return -1;
  char *s = strdup(ci->values[0].value.string);
  if (!s) return -1;
  free(*ret_string);
  *ret_string = s;
  return 0;
}
/* As collectd's, including its unchecked cast: a plugin that calls it with a huge number is
 * caught by the sanitizer (float-cast-overflow), as the real daemon would misbehave. */
int cf_util_get_int(const oconfig_item_t *ci, int *ret_value) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER) return -1;
  *ret_value = (int)ci->values[0].value.number;
  return 0;
}
int cf_util_get_double(const oconfig_item_t *ci, double *ret_value) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER) return -1;
  *ret_value = ci->values[0].value.number;
  return 0;
}
int cf_util_get_boolean(const oconfig_item_t *ci, bool *ret_bool) {
  if (ci->values_num != 1) return -1;
  if (ci->values[0].type == OCONFIG_TYPE_BOOLEAN) {
    *ret_bool = ci->values[0].value.boolean != 0;
    return 0;
  }
  if (ci->values[0].type != OCONFIG_TYPE_STRING) return -1;
  const char *s = ci->values[0].value.string;
  if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
    *ret_bool = true;
  else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
    *ret_bool = false;
  else
    return -1;
  return 0;
}
int cf_util_get_cdtime(const oconfig_item_t *ci, cdtime_t *ret_value) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER) return -1;
  *ret_value = DOUBLE_TO_CDTIME_T(ci->values[0].value.number);
  return 0;
}
