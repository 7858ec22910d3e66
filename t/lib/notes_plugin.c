/* vstest_notes: a collectd plugin for the tests. It writes each notification to a file of its
 * own in Directory, in the format the exec plugin's NotificationExec gives its program, from
 * the daemon itself instead of a child.
 *
 * Why not NotificationExec: the exec plugin forks once per notification, and under
 * AddressSanitizer (GCC 12's runtime does not hold its allocator's locks across fork) a child
 * forked while another thread held one of them hangs before its exec, so the notification is
 * never written. action_rules.sh lost one so in three CI runs, in the burst of its first round;
 * the hung child was found left over, single-threaded, in the sanitizer's FutexWait.
 *
 * A file is written under a temporary name and renamed, so a reader never sees half of one;
 * names are the dispatch order, zero-padded. */
#include "collectd/core/daemon/collectd.h"
#include "collectd/core/daemon/plugin.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char *directory; /* kept to the end: another plugin's thread may notify at shutdown */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long sequence; /* under LOCK */

static const char *config_keys[] = {"Directory"};

static int notes_config(const char *key, const char *value) {
  if (strcasecmp(key, "Directory") != 0) return -1;
  free(directory);
  directory = strdup(value);
  return directory ? 0 : -1;
}

static int notes_init(void) {
  if (directory) return 0;
  ERROR("vstest_notes: Directory is not set");
  return -1;
}

static const char *severity_name(int severity) {
  return severity == NOTIF_OKAY ? "OKAY" : severity == NOTIF_WARNING ? "WARNING" : "FAILURE";
}

static void write_note(FILE *f, const notification_t *n) {
  fprintf(f, "Severity: %s\nTime: %.3f\n", severity_name(n->severity), CDTIME_T_TO_DOUBLE(n->time));
  if (n->host[0]) fprintf(f, "Host: %s\n", n->host);
  if (n->plugin[0]) fprintf(f, "Plugin: %s\n", n->plugin);
  if (n->plugin_instance[0]) fprintf(f, "PluginInstance: %s\n", n->plugin_instance);
  if (n->type[0]) fprintf(f, "Type: %s\n", n->type);
  if (n->type_instance[0]) fprintf(f, "TypeInstance: %s\n", n->type_instance);
  for (const notification_meta_t *m = n->meta; m; m = m->next) {
    if (m->type == NM_TYPE_STRING)
      fprintf(f, "%s: %s\n", m->name, m->nm_value.nm_string);
    else if (m->type == NM_TYPE_SIGNED_INT)
      fprintf(f, "%s: %" PRIi64 "\n", m->name, m->nm_value.nm_signed_int);
    else if (m->type == NM_TYPE_UNSIGNED_INT)
      fprintf(f, "%s: %" PRIu64 "\n", m->name, m->nm_value.nm_unsigned_int);
    else if (m->type == NM_TYPE_DOUBLE)
      fprintf(f, "%s: %e\n", m->name, m->nm_value.nm_double);
    else if (m->type == NM_TYPE_BOOLEAN)
      fprintf(f, "%s: %s\n", m->name, m->nm_value.nm_boolean ? "true" : "false");
  }
  fprintf(f, "\n%s\n", n->message);
}

static int notes_notification(const notification_t *n, user_data_t *ud) {
  (void)ud;
  pthread_mutex_lock(&lock);
  unsigned long seq = ++sequence;
  pthread_mutex_unlock(&lock);
  char tmp[PATH_MAX], path[PATH_MAX];
  if (snprintf(tmp, sizeof(tmp), "%s/.%012lu.tmp", directory, seq) >= (int)sizeof(tmp) ||
      snprintf(path, sizeof(path), "%s/%012lu", directory, seq) >= (int)sizeof(path)) {
    ERROR("vstest_notes: Directory %s is too long a path", directory);
    return -1;
  }
  FILE *f = fopen(tmp, "w");
  if (!f) {
    ERROR("vstest_notes: cannot create %s: %s", tmp, strerror(errno));
    return -1;
  }
  write_note(f, n);
  int failed = ferror(f);
  if (fclose(f) != 0 || failed || rename(tmp, path) != 0) {
    ERROR("vstest_notes: cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

void module_register(void) {
  plugin_register_config("vstest_notes", notes_config, config_keys,
                         sizeof(config_keys) / sizeof(*config_keys));
  plugin_register_init("vstest_notes", notes_init);
  plugin_register_notification("vstest_notes", notes_notification, NULL);
}
