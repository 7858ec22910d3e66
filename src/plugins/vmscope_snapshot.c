/* vmscope_snapshot: collectd plugin that periodically extracts the feature document of each
 * configured guest tree and reports what it found.
 *
 *   <Plugin vmscope_snapshot>
 *     Tree "web-07" "/srv/guests/web-07"   # a guest root file system on this host
 *     Interval 300
 *     Watch "/etc/myapp.conf" "Shellvars.lns"
 *     WatchFile "/etc/vmscope/watch"
 *     NoDefaultWatch false
 *   </Plugin>
 *
 * Extraction runs in one worker thread; the read callback only dispatches what the worker
 * last cached, so it never blocks. */
#include "collectd/core/daemon/collectd.h"
#include "collectd/core/daemon/plugin.h"
#include "collectd/core/utils/common/common.h"

#include "extract.h"
#include "feature.h"
#include "source.h"
#include "watch.h"

#define PLUGIN "vmscope_snapshot"

struct tree {
  char *name, *path;
  bool has_result, ok;
  double seconds;
  size_t settings, packages, skipped;
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t thread;
  bool running, stop;
  struct tree *trees;
  size_t n_trees;
  cdtime_t interval;
  struct vs_watch *watch;
} snap = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void log_sink(enum vs_log_level level, const char *msg, void *ctx) {
  (void)ctx;
  plugin_log((int)level, PLUGIN ": %s", msg);
}

static int config_tree(oconfig_item_t *ci) {
  if (ci->values_num != 2 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[1].type != OCONFIG_TYPE_STRING) {
    ERROR(PLUGIN ": Tree takes two strings: a name and the path of a guest root file system");
    return -1;
  }
  struct tree *t = realloc(snap.trees, (snap.n_trees + 1) * sizeof(*t));
  if (!t) return -1;
  snap.trees = t;
  t = &snap.trees[snap.n_trees++];
  memset(t, 0, sizeof(*t));
  t->name = strdup(ci->values[0].value.string);
  t->path = strdup(ci->values[1].value.string);
  return t->name && t->path ? 0 : -1;
}

static int config_watch(oconfig_item_t *ci) {
  if (ci->values_num < 1 || ci->values_num > 2 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      (ci->values_num == 2 && ci->values[1].type != OCONFIG_TYPE_STRING)) {
    ERROR(PLUGIN ": Watch takes a guest path or glob and, optionally, an Augeas lens");
    return -1;
  }
  struct vs_err err = {0};
  int rc = vs_watch_add(snap.watch, ci->values[0].value.string,
                        ci->values_num == 2 ? ci->values[1].value.string : NULL, &err);
  if (rc < 0) ERROR(PLUGIN ": %s", vs_err_msg(&err));
  vs_err_clear(&err);
  return rc;
}

static int config(oconfig_item_t *ci) {
  bool defaults = true;
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = &ci->children[i];
    if (strcasecmp(c->key, "NoDefaultWatch") == 0 && cf_util_get_boolean(c, &defaults) == 0)
      defaults = !defaults;
  }
  vs_watch_free(snap.watch);
  snap.watch = defaults ? vs_watch_new_default() : vs_watch_new_empty();
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *c = &ci->children[i];
    int rc = 0;
    if (strcasecmp(c->key, "Tree") == 0) {
      rc = config_tree(c);
    } else if (strcasecmp(c->key, "Interval") == 0) {
      rc = cf_util_get_cdtime(c, &snap.interval);
    } else if (strcasecmp(c->key, "Watch") == 0) {
      rc = config_watch(c);
    } else if (strcasecmp(c->key, "WatchFile") == 0) {
      char *file = NULL;
      struct vs_err err = {0};
      rc = cf_util_get_string(c, &file);
      if (rc == 0 && (rc = vs_watch_load_file(snap.watch, file, &err)) < 0)
        ERROR(PLUGIN ": %s", vs_err_msg(&err));
      vs_err_clear(&err);
      free(file);
    } else if (strcasecmp(c->key, "NoDefaultWatch") == 0) {
      continue; /* read above */
    } else {
      ERROR(PLUGIN ": unknown option \"%s\" (expected Tree, Interval, Watch, WatchFile or "
                   "NoDefaultWatch)",
            c->key);
      rc = -1;
    }
    if (rc != 0) return -1;
  }
  return 0;
}

static void inspect_tree(struct vs_extractor *x, struct tree *t) {
  struct vs_err err = {0};
  struct vs_extract_stats st = {0};
  struct vs_feature *doc = NULL;
  struct vs_source *src = vs_source_open_dir(t->path, &err);
  if (src) {
    doc = vs_feature_new();
    vs_feature_set_id(doc, t->path, t->name);
    vs_feature_set_source(doc, "dir", t->path, "dir");
    if (vs_extract(x, src, doc, &st, &err) < 0) {
      vs_feature_free(doc);
      doc = NULL;
    }
  }
  if (!doc) ERROR(PLUGIN ": %s: %s", t->name, vs_err_msg(&err));
  pthread_mutex_lock(&snap.lock);
  t->has_result = true;
  t->ok = doc != NULL;
  t->seconds = st.seconds_total;
  t->settings = doc ? vs_feature_count(doc) : 0;
  t->packages = st.packages;
  t->skipped = doc ? vs_feature_skipped_count(doc) : 0;
  pthread_mutex_unlock(&snap.lock);
  vs_feature_free(doc);
  vs_source_free(src);
  vs_err_clear(&err);
}

static void *worker(void *arg) {
  (void)arg;
  struct vs_err err = {0};
  struct vs_extractor *x = vs_extractor_new(snap.watch, &err);
  if (!x) {
    ERROR(PLUGIN ": %s", vs_err_msg(&err));
    vs_err_clear(&err);
    return NULL;
  }
  pthread_mutex_lock(&snap.lock);
  while (!snap.stop) {
    pthread_mutex_unlock(&snap.lock);
    for (size_t i = 0; i < snap.n_trees; i++)
      inspect_tree(x, &snap.trees[i]);
    pthread_mutex_lock(&snap.lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)CDTIME_T_TO_TIME_T(snap.interval);
    while (!snap.stop && pthread_cond_timedwait(&snap.wake, &snap.lock, &until) == 0)
      ;
  }
  pthread_mutex_unlock(&snap.lock);
  vs_extractor_free(x);
  return NULL;
}

static int init(void) {
  vs_log_set_sink(log_sink, NULL);
  if (!snap.watch) snap.watch = vs_watch_new_default();
  if (snap.interval == 0) snap.interval = plugin_get_interval();
  if (snap.running || snap.n_trees == 0) return 0;
  snap.stop = false;
  if (plugin_thread_create(&snap.thread, worker, NULL, "vmscope snap") != 0) {
    ERROR(PLUGIN ": cannot start the worker thread");
    return -1;
  }
  snap.running = true;
  return 0;
}

static void submit(const char *instance, const char *type, const char *type_instance,
                   gauge_t value) {
  value_list_t vl = VALUE_LIST_INIT;
  value_t v = {.gauge = value};
  vl.values = &v;
  vl.values_len = 1;
  sstrncpy(vl.plugin, PLUGIN, sizeof(vl.plugin));
  sstrncpy(vl.plugin_instance, instance, sizeof(vl.plugin_instance));
  sstrncpy(vl.type, type, sizeof(vl.type));
  sstrncpy(vl.type_instance, type_instance, sizeof(vl.type_instance));
  plugin_dispatch_values(&vl);
}

static int read_cb(void) {
  pthread_mutex_lock(&snap.lock);
  for (size_t i = 0; i < snap.n_trees; i++) {
    struct tree *t = &snap.trees[i];
    if (!t->has_result) continue;
    submit(t->name, "bool", "snapshot_ok", t->ok ? 1 : 0);
    if (!t->ok) continue;
    submit(t->name, "count", "settings", (gauge_t)t->settings);
    submit(t->name, "count", "packages", (gauge_t)t->packages);
    submit(t->name, "count", "skipped", (gauge_t)t->skipped);
    submit(t->name, "duration", "extract", t->seconds);
  }
  pthread_mutex_unlock(&snap.lock);
  return 0;
}

static int shutdown_cb(void) {
  if (snap.running) {
    pthread_mutex_lock(&snap.lock);
    snap.stop = true;
    pthread_cond_broadcast(&snap.wake);
    pthread_mutex_unlock(&snap.lock);
    pthread_join(snap.thread, NULL);
    snap.running = false;
  }
  for (size_t i = 0; i < snap.n_trees; i++) {
    free(snap.trees[i].name);
    free(snap.trees[i].path);
  }
  free(snap.trees);
  snap.trees = NULL;
  snap.n_trees = 0;
  vs_watch_free(snap.watch);
  snap.watch = NULL;
  return 0;
}

void module_register(void) {
  plugin_register_complex_config(PLUGIN, config);
  plugin_register_init(PLUGIN, init);
  plugin_register_read(PLUGIN, read_cb);
  plugin_register_shutdown(PLUGIN, shutdown_cb);
}
