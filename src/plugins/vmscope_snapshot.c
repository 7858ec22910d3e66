/* vmscope_snapshot: collectd plugin that snapshots every libvirt domain (and configured guest
 * trees) on its interval, keeps the documents in the snapshot pool, and reports what it found.
 * See collectd-vmscope(5).
 *
 * Workers (plugin_thread_create) share the cycle: the first idle one lists the domains, all of
 * them take domains from the list; the read callback only dispatches what they cached. */
#include "glue.h"

#include "drift.h"
#include "extract.h"
#include "parse_cache.h"
#include "pool.h"
#include "snapshot.h"
#include "source_guestfs.h"
#include "virt.h"

#define PLUGIN "vmscope_snapshot"
#define MAX_WORKERS 16

struct job {
  struct vs_domain dom; /* a domain, or with TREE set a guest tree (dom.name, dom.uuid = path) */
  bool tree;
};

struct result { /* the latest snapshot of one domain or tree */
  char *id, *instance;
  bool ok;
  double seconds;
  cdtime_t last;
  size_t settings, packages, users, services, changed;
};

static struct {
  /* configuration */
  char *uri;
  char **globs;
  size_t n_globs;
  bool ignore_selected;
  char **tree_names, **tree_paths;
  size_t n_trees;
  cdtime_t interval;
  enum vs_snapshot_mode mode;
  enum vs_backend_choice backend;
  struct vs_watch *watch;
  struct vs_regwatch *regwatch; /* registry values of Windows guests */
  char **backing_dirs;
  size_t n_backing_dirs;
  char *data_dir, *backup_dir;
  char *parse_cache_dir;              /* ParseCache DIR; NULL: DataDir/.parse-cache */
  bool parse_cache_off;               /* ParseCache false */
  struct vs_parse_cache *parse_cache; /* shared by the workers' extractors */
  int keep;
  double keep_days;
  int workers;
  enum vs_instance_format instance_format;
  /* the cycle, under LOCK */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t threads[MAX_WORKERS];
  int running;
  bool stop, listing;
  struct vs_virt *virt;
  struct job *jobs;
  size_t n_jobs, next_job, in_flight;
  cdtime_t next_cycle;
  double cycle_started, cycle_seconds; /* the last full cycle's wall time */
  size_t cycle_targets;
  double read_seconds; /* the read callback's own time, last call */
  cdtime_t read_time;  /* one timestamp for every value of one read */
  struct result *results;
  size_t n_results;
  struct vs_once once;
} snap = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .keep = 10,
          .keep_days = 30,
          .workers = 1};

/* ------------------------------------------------------------------------------ config */

static int config_strings(oconfig_item_t *c, int min, int max, const char *what) {
  if (c->values_num < min || c->values_num > max) goto bad;
  for (int i = 0; i < c->values_num; i++)
    if (c->values[i].type != OCONFIG_TYPE_STRING) goto bad;
  return 0;
bad:
  ERROR(PLUGIN ": %s takes %s", c->key, what);
  return -1;
}

static int config_choice(oconfig_item_t *c, const char *const *names, int n, int *out) {
  if (config_strings(c, 1, 1, "one string") < 0) return -1;
  for (int i = 0; i < n; i++)
    if (strcasecmp(c->values[0].value.string, names[i]) == 0) {
      *out = i;
      return 0;
    }
  ERROR(PLUGIN ": %s \"%s\" is not one of the choices (%s%s%s%s%s)", c->key,
        c->values[0].value.string, names[0], n > 1 ? ", " : "", n > 1 ? names[1] : "",
        n > 2 ? ", " : "", n > 2 ? names[2] : "");
  return -1;
}

static int config_tree(oconfig_item_t *c) {
  if (config_strings(c, 2, 2, "a name and the path of a guest root file system") < 0) return -1;
  const char *name = c->values[0].value.string, *path = c->values[1].value.string;
  for (size_t i = 0; i < snap.n_trees; i++)
    if (strcmp(snap.tree_names[i], name) == 0) {
      ERROR(PLUGIN ": Tree \"%s\" is given twice (a name is one tree's plugin instance)", name);
      return -1;
    }
  if (vs_cf_check_dir(c, PLUGIN, path) < 0) return -1;
  size_t n_names = snap.n_trees; /* the two lists grow together; n_trees counts both */
  vs_strv_add(&snap.tree_names, &n_names, name);
  vs_strv_add(&snap.tree_paths, &snap.n_trees, path);
  return 0;
}

/* ParseCache DIR, true (the default directory) or false (every file parsed every time). */
static int config_parse_cache(oconfig_item_t *c) {
  free(snap.parse_cache_dir);
  snap.parse_cache_dir = NULL;
  snap.parse_cache_off = false;
  if (c->values_num == 1 && c->values[0].type == OCONFIG_TYPE_BOOLEAN) {
    snap.parse_cache_off = !c->values[0].value.boolean;
    return 0;
  }
  if (config_strings(c, 1, 1, "a directory, or true or false") < 0) return -1;
  snap.parse_cache_dir = vs_xstrdup(c->values[0].value.string);
  return 0;
}

static int config_one(oconfig_item_t *c) {
  static const char *const modes[] = {"readonly", "backup"};
  static const char *const backends[] = {"auto", "direct", "guestfs"};
  struct vs_err err = {0};
  int rc = 0, choice = 0;
  if (strcasecmp(c->key, "Connection") == 0) {
    rc = vs_cf_string(c, PLUGIN, &snap.uri);
  } else if (strcasecmp(c->key, "Domain") == 0) {
    rc = config_strings(c, 1, 1, "a domain name or glob");
    if (rc == 0) vs_strv_add(&snap.globs, &snap.n_globs, c->values[0].value.string);
  } else if (strcasecmp(c->key, "IgnoreSelected") == 0) {
    rc = vs_cf_boolean(c, PLUGIN, &snap.ignore_selected);
  } else if (strcasecmp(c->key, "Tree") == 0) {
    rc = config_tree(c);
  } else if (strcasecmp(c->key, "Interval") == 0) {
    rc = vs_cf_cdtime(c, PLUGIN, &snap.interval);
  } else if (strcasecmp(c->key, "SnapshotMode") == 0) {
    if ((rc = config_choice(c, modes, 2, &choice)) == 0) snap.mode = (enum vs_snapshot_mode)choice;
  } else if (strcasecmp(c->key, "Backend") == 0) {
    if ((rc = config_choice(c, backends, 3, &choice)) == 0)
      snap.backend = (enum vs_backend_choice)choice;
  } else if (strcasecmp(c->key, "Watch") == 0) {
    rc = config_strings(c, 1, 2, "a guest path or glob and, optionally, an Augeas lens");
    if (rc == 0 &&
        (rc = vs_watch_add(snap.watch, c->values[0].value.string,
                           c->values_num == 2 ? c->values[1].value.string : NULL, &err)) < 0)
      ERROR(PLUGIN ": Watch: %s", vs_err_msg(&err));
  } else if (strcasecmp(c->key, "WatchFile") == 0) {
    char *file = NULL;
    if ((rc = vs_cf_string(c, PLUGIN, &file)) == 0 &&
        (rc = vs_cf_check_file(c, PLUGIN, file)) == 0 &&
        (rc = vs_watch_load_file(snap.watch, file, &err)) < 0)
      ERROR(PLUGIN ": WatchFile: %s", vs_err_msg(&err));
    free(file);
  } else if (strcasecmp(c->key, "RegWatch") == 0) {
    rc = config_strings(c, 1, 2, "a registry key pattern and, optionally, a value name");
    if (rc == 0 &&
        (rc = vs_regwatch_add(snap.regwatch, c->values[0].value.string,
                              c->values_num == 2 ? c->values[1].value.string : NULL, &err)) < 0)
      ERROR(PLUGIN ": RegWatch: %s", vs_err_msg(&err));
  } else if (strcasecmp(c->key, "RegWatchFile") == 0) {
    char *file = NULL;
    if ((rc = vs_cf_string(c, PLUGIN, &file)) == 0 &&
        (rc = vs_cf_check_file(c, PLUGIN, file)) == 0 &&
        (rc = vs_regwatch_load_file(snap.regwatch, file, &err)) < 0)
      ERROR(PLUGIN ": RegWatchFile: %s", vs_err_msg(&err));
    free(file);
  } else if (strcasecmp(c->key, "BackingDir") == 0) {
    rc = config_strings(c, 1, 1, "a directory");
    if (rc == 0 && (rc = vs_cf_check_dir(c, PLUGIN, c->values[0].value.string)) == 0)
      vs_strv_add(&snap.backing_dirs, &snap.n_backing_dirs, c->values[0].value.string);
  } else if (strcasecmp(c->key, "DataDir") == 0) {
    rc = vs_cf_string(c, PLUGIN, &snap.data_dir); /* created at init when missing */
  } else if (strcasecmp(c->key, "ParseCache") == 0) {
    rc = config_parse_cache(c);
  } else if (strcasecmp(c->key, "BackupDir") == 0) {
    if ((rc = vs_cf_string(c, PLUGIN, &snap.backup_dir)) == 0)
      rc = vs_cf_check_dir(c, PLUGIN, snap.backup_dir);
  } else if (strcasecmp(c->key, "KeepSnapshots") == 0) {
    if ((rc = vs_cf_int(c, PLUGIN, &snap.keep)) == 0 && snap.keep < 1) {
      ERROR(PLUGIN ": KeepSnapshots must be at least 1 (the newest is always kept), not %d",
            snap.keep);
      rc = -1;
    }
  } else if (strcasecmp(c->key, "KeepDays") == 0) {
    if ((rc = vs_cf_double(c, PLUGIN, &snap.keep_days)) == 0 &&
        !(snap.keep_days >= 0 && snap.keep_days <= VS_CF_MAX_SECONDS / 86400)) {
      ERROR(PLUGIN ": KeepDays takes days from 0 (documents of any age are kept) to %.0f, not %g",
            VS_CF_MAX_SECONDS / 86400, snap.keep_days);
      rc = -1;
    }
  } else if (strcasecmp(c->key, "Workers") == 0) {
    if ((rc = vs_cf_int(c, PLUGIN, &snap.workers)) == 0 &&
        (snap.workers < 1 || snap.workers > MAX_WORKERS)) {
      ERROR(PLUGIN ": Workers must be between 1 and %d, not %d", MAX_WORKERS, snap.workers);
      rc = -1;
    }
  } else if (strcasecmp(c->key, "PluginInstanceFormat") == 0) {
    rc = vs_cf_get_instance_format(c, PLUGIN, &snap.instance_format);
  } else if (strcasecmp(c->key, "NoDefaultWatch") != 0 &&
             strcasecmp(c->key, "NoDefaultRegWatch") != 0) {
    ERROR(PLUGIN ": unknown option \"%s\" (expected Connection, Domain, IgnoreSelected, Tree, "
                 "Interval, SnapshotMode, Backend, Watch, WatchFile, NoDefaultWatch, RegWatch, "
                 "RegWatchFile, NoDefaultRegWatch, BackingDir, "
                 "DataDir, ParseCache, BackupDir, KeepSnapshots, KeepDays, Workers or "
                 "PluginInstanceFormat)",
          c->key);
    rc = -1;
  }
  vs_err_clear(&err);
  return rc;
}

/* *DEFAULTS becomes false when CI has KEY (NoDefaultWatch, NoDefaultRegWatch) set true: the
 * list starts empty. Read before the entries, which add to the list. */
static int config_no_default(oconfig_item_t *ci, const char *key, bool *defaults) {
  for (int i = 0; i < ci->children_num; i++)
    if (strcasecmp(ci->children[i].key, key) == 0) {
      bool none = false;
      if (vs_cf_boolean(&ci->children[i], PLUGIN, &none) != 0) return -1;
      *defaults = !none;
    }
  return 0;
}

static int config(oconfig_item_t *ci) {
  static const char *const lists[] = {"Domain",   "Tree",         "Watch",      "WatchFile",
                                      "RegWatch", "RegWatchFile", "BackingDir", NULL};
  if (vs_cf_check_repeats(ci, PLUGIN, NULL, lists) < 0) return -1;
  bool defaults = true, reg_defaults = true;
  if (config_no_default(ci, "NoDefaultWatch", &defaults) < 0 ||
      config_no_default(ci, "NoDefaultRegWatch", &reg_defaults) < 0)
    return -1;
  vs_watch_free(snap.watch);
  snap.watch = defaults ? vs_watch_new_default() : vs_watch_new_empty();
  vs_regwatch_free(snap.regwatch);
  snap.regwatch = reg_defaults ? vs_regwatch_new_default() : vs_regwatch_new_empty();
  for (int i = 0; i < ci->children_num; i++)
    if (config_one(&ci->children[i]) != 0) return -1;
  return 0;
}

/* ------------------------------------------------------------------------------ worker */

static void free_jobs(struct job *jobs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(jobs[i].dom.name);
    free(jobs[i].dom.uuid);
    free(jobs[i].dom.xml);
  }
  free(jobs);
}

/* The cycle's work: the selected domains and the trees. Runs unlocked, in one worker. *COMPLETE
 * tells whether libvirt was listed (when it is used): only then is a VM missing from the work
 * known to be gone. */
static struct job *list_jobs(size_t *n, bool *complete) {
  struct vs_err err = {0};
  struct vs_domain *doms = NULL;
  size_t n_doms = 0;
  bool want_libvirt = snap.uri || snap.n_trees == 0;
  if (want_libvirt) {
    /* Between cycles, no worker uses the connection (virt.h): it may be replaced here. */
    if (snap.virt && !vs_virt_alive(snap.virt)) {
      /* libvirtd went away. Said even when the reconnection below succeeds at once (libvirtd
       * restarted between two cycles): an operator sees each loss and its recovery. */
      vs_virt_close(snap.virt);
      snap.virt = NULL;
      pthread_mutex_lock(&snap.lock);
      vs_once_fail(&snap.once, PLUGIN, "libvirt",
                   "the connection to libvirtd was lost; reconnecting");
      pthread_mutex_unlock(&snap.lock);
    }
    if (!snap.virt) snap.virt = vs_virt_open(snap.uri, snap.mode == VS_SNAPSHOT_READONLY, &err);
    if (snap.virt && vs_virt_domains(snap.virt, &doms, &n_doms, &err) < 0) {
      /* libvirtd went away during the listing: the same loss as above, said the same way. */
      if (!vs_virt_alive(snap.virt)) {
        vs_err_clear(&err);
        vs_err_set(&err, ECONNRESET, "the connection to libvirtd was lost; reconnecting");
      }
      vs_virt_close(snap.virt);
      snap.virt = NULL;
    }
    pthread_mutex_lock(&snap.lock);
    if (snap.virt)
      vs_once_ok(&snap.once, PLUGIN, "libvirt");
    else
      vs_once_fail(&snap.once, PLUGIN, "libvirt", vs_err_msg(&err));
    pthread_mutex_unlock(&snap.lock);
    vs_err_clear(&err);
  }
  *complete = !want_libvirt || snap.virt;
  struct job *jobs = vs_xcalloc(n_doms + snap.n_trees + 1, sizeof(*jobs));
  size_t k = 0;
  for (size_t i = 0; i < n_doms; i++) {
    if (vs_domain_selected(snap.globs, snap.n_globs, snap.ignore_selected, doms[i].name)) {
      jobs[k++].dom = doms[i];
    } else {
      free(doms[i].name);
      free(doms[i].uuid);
      free(doms[i].xml);
    }
  }
  free(doms);
  for (size_t i = 0; i < snap.n_trees; i++) {
    jobs[k].tree = true;
    jobs[k].dom.name = vs_xstrdup(snap.tree_names[i]);
    jobs[k++].dom.uuid = vs_xstrdup(snap.tree_paths[i]);
  }
  *n = k;
  return jobs;
}

static struct vs_feature *snapshot_tree(struct vs_extractor *x, const struct job *j, int64_t now,
                                        struct vs_err *err) {
  struct vs_source *src = vs_source_open_dir(j->dom.uuid, err);
  if (!src) return NULL;
  struct vs_feature *doc = vs_feature_new();
  vs_feature_set_id(doc, j->dom.uuid, j->dom.name);
  vs_feature_set_taken_at(doc, now);
  vs_feature_set_source(doc, "dir", j->dom.uuid, "dir");
  struct vs_extract_stats st;
  if (vs_extract(x, src, doc, &st, err) < 0) {
    vs_feature_free(doc);
    doc = NULL;
  }
  vs_source_free(src);
  return doc;
}

static size_t count_prefix(const struct vs_feature *doc, const char *prefix, const char *suffix,
                           const char *value) {
  size_t n = 0, pos = 0, plen = strlen(prefix);
  const char *k, *v;
  while (vs_feature_next(doc, &pos, &k, &v))
    n += strncmp(k, prefix, plen) == 0 && (!suffix || vs_has_suffix(k, suffix)) &&
         (!value || strcmp(v, value) == 0);
  return n;
}

static void notify_change(const struct job *j, const struct vs_feature *prev,
                          const struct vs_feature *doc, const struct vs_diff *d) {
  notification_t n;
  /* Routine maintenance (packages upgraded or installed, their files with them) is OKAY;
   * local edits, downgrades, removals and other changes are a WARNING to look at. */
  bool routine =
      d->n_changes == d->upgrades + d->installed + vs_diff_count_class(d, VS_CLASS_WITH_PACKAGE);
  vs_notification_init_vm(&n, routine ? NOTIF_OKAY : NOTIF_WARNING, PLUGIN, snap.instance_format,
                          j->dom.name, j->tree ? NULL : j->dom.uuid, "feature_change", "");
  plugin_notification_meta_add_string(&n, "id", vs_feature_id(doc));
  plugin_notification_meta_add_string(&n, "since", vs_feature_taken_at(prev));
  plugin_notification_meta_add_string(&n, "taken_at", vs_feature_taken_at(doc));
  plugin_notification_meta_add_unsigned_int(&n, "added", d->added);
  plugin_notification_meta_add_unsigned_int(&n, "removed", d->removed);
  plugin_notification_meta_add_unsigned_int(&n, "changed", d->changed);
  plugin_notification_meta_add_unsigned_int(&n, "upgrades", d->upgrades);
  plugin_notification_meta_add_unsigned_int(&n, "downgrades", d->downgrades);
  plugin_notification_meta_add_unsigned_int(&n, "files_edited_locally", d->local_edits);
  plugin_notification_meta_add_unsigned_int(&n, "files_changed_with_package", d->package_edits);
  char *keys = vs_diff_key_list(d, 600);
  plugin_notification_meta_add_string(&n, "keys", keys);
  vs_notification_send(&n,
                       "%s: %zu settings changed since %s (%zu added, %zu removed, %zu "
                       "changed; %zu upgrades, %zu downgrades, %zu files edited locally): %s",
                       vs_feature_name(doc), d->n_changes, vs_feature_taken_at(prev), d->added,
                       d->removed, d->changed, d->upgrades, d->downgrades, d->local_edits, keys);
  free(keys);
}

/* A retention failure is a lasting one (a document that cannot be removed stays): logged once
 * per CAUSE, and its recovery once. ERR NULL: it worked. */
static void note_retention(const char *cause, const struct vs_err *err) {
  pthread_mutex_lock(&snap.lock);
  if (err) {
    char *msg = vs_xasprintf("the pool's retention (KeepSnapshots %d, KeepDays %g) failed: %s",
                             snap.keep, snap.keep_days, vs_err_msg(err));
    vs_once_fail(&snap.once, PLUGIN, cause, msg);
    free(msg);
  } else {
    vs_once_ok(&snap.once, PLUGIN, cause);
  }
  pthread_mutex_unlock(&snap.lock);
}

/* Retention for every VM of the pool, once a cycle, those not snapshotted this cycle too: a
 * VM that is no longer in JOBS loses all its documents once its newest is older than KeepDays
 * (when the listing was COMPLETE). Runs unlocked, in the worker that listed the cycle. */
static void prune_pool(const struct job *jobs, size_t n, bool complete) {
  const char **present = vs_xcalloc(n + 1, sizeof(char *));
  for (size_t i = 0; i < n; i++)
    present[i] = jobs[i].dom.uuid;
  struct vs_err err = {0};
  int rc = vs_pool_prune_gone(snap.data_dir, complete ? present : NULL, n, (size_t)snap.keep,
                              snap.keep_days, time(NULL), &err);
  /* a pool not made yet (no snapshot so far) has nothing to prune */
  note_retention("retention", rc < 0 && err.code != ENOENT ? &err : NULL);
  vs_err_clear(&err);
  free(present);
}

/* The cycle marker vmscope_drift waits on (pool.h): its failure is logged once, and rankers
 * then rank a partial first cycle. Runs unlocked; the end of one cycle (the worker of its last
 * job) and the start of the next (another worker's listing) may race, and each rewrites the
 * marker from what it reads: MARK_LOCK keeps them in turn. */
static pthread_mutex_t mark_lock = PTHREAD_MUTEX_INITIALIZER;
static void mark_cycle(bool done, size_t domains) {
  struct vs_err err = {0};
  pthread_mutex_lock(&mark_lock);
  int rc = vs_pool_mark_cycle(snap.data_dir, done, domains, time(NULL), &err);
  pthread_mutex_unlock(&mark_lock);
  pthread_mutex_lock(&snap.lock);
  if (rc < 0)
    vs_once_fail(&snap.once, PLUGIN, "cycle.json", vs_err_msg(&err));
  else
    vs_once_ok(&snap.once, PLUGIN, "cycle.json");
  pthread_mutex_unlock(&snap.lock);
  vs_err_clear(&err);
}

static void run_job(struct vs_extractor *x, const struct job *j) {
  struct vs_err err = {0};
  int64_t now = (int64_t)time(NULL);
  struct vs_feature *doc = NULL;
  double t0 = vs_now_monotonic();
  if (j->tree) {
    doc = snapshot_tree(x, j, now, &err);
  } else {
    struct vs_snapshot_opts o = {.mode = snap.mode,
                                 .backend = snap.backend,
                                 .backing_dirs = (const char *const *)snap.backing_dirs,
                                 .n_backing_dirs = snap.n_backing_dirs,
                                 .watch = snap.watch,
                                 .backup_dir = snap.backup_dir};
    doc = vs_snapshot_domain(snap.virt, &j->dom, x, &o, now, NULL, &err);
  }
  double seconds = vs_now_monotonic() - t0;
  const char *id = j->dom.uuid;
  char *cause = vs_xasprintf("%s %s", j->tree ? "tree" : "domain", j->dom.name);
  struct vs_feature *prev = NULL;
  struct vs_diff *diff = NULL;
  if (doc) {
    prev = vs_pool_newest(snap.data_dir, vs_feature_id(doc), NULL, NULL);
    char *kept = vs_xasprintf("the pool, for %s", cause); /* causes of their own */
    if (vs_pool_write(snap.data_dir, doc, NULL, &err) == 0) {
      int pruned = vs_pool_prune(snap.data_dir, vs_feature_id(doc), (size_t)snap.keep,
                                 snap.keep_days, (time_t)now, &err);
      note_retention(kept, pruned < 0 ? &err : NULL);
    } else {
      char *msg = vs_xasprintf("%s: the snapshot is not kept: %s", j->dom.name, vs_err_msg(&err));
      pthread_mutex_lock(&snap.lock);
      vs_once_fail(&snap.once, PLUGIN, kept, msg);
      pthread_mutex_unlock(&snap.lock);
      free(msg);
    }
    free(kept);
    vs_err_clear(&err);
    if (prev) diff = vs_drift_diff(prev, doc);
  }
  const char *instance =
      vs_instance_name(snap.instance_format, j->dom.name, j->tree ? NULL : j->dom.uuid);
  if (diff && diff->n_changes) notify_change(j, prev, doc, diff);

  pthread_mutex_lock(&snap.lock);
  if (doc)
    vs_once_ok(&snap.once, PLUGIN, cause);
  else
    vs_once_fail(&snap.once, PLUGIN, cause, vs_err_msg(&err));
  struct result *r = NULL;
  for (size_t i = 0; i < snap.n_results && !r; i++)
    if (strcmp(snap.results[i].id, id) == 0) r = &snap.results[i];
  if (!r) {
    snap.results = vs_xrealloc(snap.results, (snap.n_results + 1) * sizeof(*snap.results));
    r = &snap.results[snap.n_results++];
    *r = (struct result){.id = vs_xstrdup(id)};
  }
  if (r) {
    free(r->instance);
    r->instance = vs_xstrdup(instance);
    r->ok = doc != NULL;
    if (doc) {
      r->seconds = seconds;
      r->last = cdtime();
      r->settings = vs_feature_count(doc);
      r->packages = count_prefix(doc, "pkg:", NULL, NULL);
      r->users = count_prefix(doc, "user:", ":uid", NULL);
      r->services = count_prefix(doc, "svc:", NULL, "enabled");
      r->changed = diff ? diff->n_changes : 0;
    }
  }
  pthread_mutex_unlock(&snap.lock);
  free(cause);
  vs_diff_free(diff);
  vs_feature_free(prev);
  vs_feature_free(doc);
  vs_err_clear(&err);
}

/* Results of domains that are gone stop being dispatched. Called locked. */
static void forget_missing(const struct job *jobs, size_t n) {
  for (size_t i = 0; i < snap.n_results;) {
    bool listed = false;
    for (size_t k = 0; k < n && !listed; k++)
      listed = strcmp(jobs[k].dom.uuid, snap.results[i].id) == 0;
    if (listed) {
      i++;
      continue;
    }
    free(snap.results[i].id);
    free(snap.results[i].instance);
    snap.results[i] = snap.results[--snap.n_results];
  }
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
  vs_extractor_set_regwatch(x, snap.regwatch);
  vs_extractor_set_parse_cache(x, snap.parse_cache);
  pthread_mutex_lock(&snap.lock);
  while (!snap.stop) {
    if (snap.next_job < snap.n_jobs) {
      const struct job *j = &snap.jobs[snap.next_job++];
      snap.in_flight++;
      pthread_mutex_unlock(&snap.lock);
      run_job(x, j);
      pthread_mutex_lock(&snap.lock);
      if (--snap.in_flight == 0 && snap.next_job == snap.n_jobs) {
        snap.cycle_seconds = vs_now_monotonic() - snap.cycle_started;
        snap.cycle_targets = snap.n_jobs;
        size_t domains = snap.n_jobs;
        pthread_mutex_unlock(&snap.lock);
        mark_cycle(true, domains);
        pthread_mutex_lock(&snap.lock);
      }
      continue;
    }
    if (!snap.listing && snap.in_flight == 0 && cdtime() >= snap.next_cycle) {
      snap.listing = true;
      snap.next_cycle = cdtime() + snap.interval;
      snap.cycle_started = vs_now_monotonic();
      pthread_mutex_unlock(&snap.lock);
      size_t n = 0;
      bool complete = false;
      struct job *jobs = list_jobs(&n, &complete);
      prune_pool(jobs, jobs ? n : 0, complete && jobs);
      if (jobs) mark_cycle(n == 0, n); /* a listing of no domains is a cycle already done */
      pthread_mutex_lock(&snap.lock);
      free_jobs(snap.jobs, snap.n_jobs);
      snap.jobs = jobs;
      snap.n_jobs = jobs ? n : 0;
      snap.next_job = 0;
      forget_missing(snap.jobs, snap.n_jobs);
      snap.listing = false;
      pthread_cond_broadcast(&snap.wake);
      continue;
    }
    cdtime_t wait = snap.next_cycle > cdtime() ? snap.next_cycle - cdtime() : MS_TO_CDTIME_T(100);
    struct timespec until = CDTIME_T_TO_TIMESPEC(cdtime() + wait);
    pthread_cond_timedwait(&snap.wake, &snap.lock, &until);
  }
  pthread_mutex_unlock(&snap.lock);
  vs_extractor_free(x);
  return NULL;
}

/* ------------------------------------------------------------------------ collectd hooks */

static int init(void) {
  vs_log_set_sink(vs_glue_log_sink, PLUGIN);
  if (!snap.watch) snap.watch = vs_watch_new_default();
  if (!snap.regwatch) snap.regwatch = vs_regwatch_new_default();
  if (snap.interval == 0) snap.interval = plugin_get_interval();
  if (!snap.data_dir) snap.data_dir = vs_xstrdup("/var/lib/collectd/vmscope");
  if (snap.running) return 0;
  struct vs_err err = {0};
  if (vs_pool_create(snap.data_dir, &err) < 0) { /* vmscope_drift reads it: made here */
    ERROR(PLUGIN ": DataDir: %s", vs_err_msg(&err));
    vs_err_clear(&err);
    return -1;
  }
  if (!snap.parse_cache_off && !snap.parse_cache) {
    char *dir = snap.parse_cache_dir ? vs_xstrdup(snap.parse_cache_dir)
                                     : vs_xasprintf("%s/.parse-cache", snap.data_dir);
    if (!(snap.parse_cache = vs_parse_cache_open(dir, &err))) {
      WARNING(PLUGIN ": ParseCache: %s; every config file is parsed each time", vs_err_msg(&err));
      vs_err_clear(&err);
    }
    free(dir);
  }
  snap.stop = false;
  for (int i = 0; i < snap.workers; i++) {
    if (plugin_thread_create(&snap.threads[i], worker, NULL, "vmscope snap") != 0) {
      ERROR(PLUGIN ": cannot start worker thread %d", i + 1);
      break;
    }
    snap.running++;
  }
  return snap.running ? 0 : -1;
}

static void submit(const char *instance, const char *type, const char *type_instance,
                   gauge_t value) {
  vs_glue_submit(PLUGIN, instance, type, type_instance, value, snap.read_time);
}

static int read_cb(void) {
  double t0 = vs_now_monotonic();
  snap.read_time = cdtime();
  pthread_mutex_lock(&snap.lock);
  /* The plugin's own figures, under no plugin instance: how long a full cycle over every
   * domain took, and how long this callback took last time (it must stay well under 1 ms). */
  if (snap.cycle_targets) {
    submit("", "duration", "cycle", snap.cycle_seconds);
    submit("", "count", "domains", (gauge_t)snap.cycle_targets);
  }
  if (snap.read_seconds > 0) submit("", "duration", "read_callback", snap.read_seconds);
  for (size_t i = 0; i < snap.n_results; i++) {
    const struct result *r = &snap.results[i];
    submit(r->instance, "bool", "snapshot_ok", r->ok ? 1 : 0);
    if (r->last == 0) continue; /* never succeeded yet */
    submit(r->instance, "count", "settings", (gauge_t)r->settings);
    submit(r->instance, "count", "packages", (gauge_t)r->packages);
    submit(r->instance, "count", "users", (gauge_t)r->users);
    submit(r->instance, "count", "services", (gauge_t)r->services);
    submit(r->instance, "count", "changed_settings", (gauge_t)r->changed);
    submit(r->instance, "duration", "snapshot", r->seconds);
    submit(r->instance, "timestamp", "last_snapshot", CDTIME_T_TO_DOUBLE(r->last));
  }
  snap.read_seconds = vs_now_monotonic() - t0;
  pthread_mutex_unlock(&snap.lock);
  return 0;
}

/* Before any plugin's shutdown callback (vs_glue_register_read): the workers dispatch. */
static void halt(void) {
  pthread_mutex_lock(&snap.lock);
  snap.stop = true;
  pthread_cond_broadcast(&snap.wake);
  pthread_mutex_unlock(&snap.lock);
  /* A worker inside libguestfs would finish its appliance's launch and inspection first (half
   * a minute under emulation): kill the appliances, so its calls fail and it sees the stop;
   * again while waiting, since one may have been starting its qemu when we looked. */
  for (int i = 0; i < snap.running; i++) {
    for (;;) {
      vs_guestfs_kill_appliances();
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_nsec += 200 * 1000 * 1000;
      if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
      }
      int rc = pthread_timedjoin_np(snap.threads[i], NULL, &until);
      if (rc == 0 || rc != ETIMEDOUT) break;
    }
  }
  snap.running = 0;
}

static int shutdown_cb(void) {
  halt();
  free_jobs(snap.jobs, snap.n_jobs);
  snap.jobs = NULL;
  snap.n_jobs = snap.next_job = 0;
  for (size_t i = 0; i < snap.n_results; i++) {
    free(snap.results[i].id);
    free(snap.results[i].instance);
  }
  free(snap.results);
  snap.results = NULL;
  snap.n_results = 0;
  vs_virt_close(snap.virt);
  snap.virt = NULL;
  vs_once_free(&snap.once);
  vs_strv_free(snap.globs, snap.n_globs);
  vs_strv_free(snap.tree_names, snap.n_trees);
  vs_strv_free(snap.tree_paths, snap.n_trees);
  vs_strv_free(snap.backing_dirs, snap.n_backing_dirs);
  snap.globs = snap.tree_names = snap.tree_paths = snap.backing_dirs = NULL;
  snap.n_globs = snap.n_trees = snap.n_backing_dirs = 0;
  free(snap.uri);
  free(snap.data_dir);
  free(snap.backup_dir);
  free(snap.parse_cache_dir);
  snap.uri = snap.data_dir = snap.backup_dir = snap.parse_cache_dir = NULL;
  vs_parse_cache_free(snap.parse_cache); /* the workers that used it are gone */
  snap.parse_cache = NULL;
  vs_watch_free(snap.watch);
  snap.watch = NULL;
  vs_regwatch_free(snap.regwatch);
  snap.regwatch = NULL;
  vs_extract_release(); /* the workers are gone */
  return 0;
}

void module_register(void) {
  plugin_register_complex_config(PLUGIN, config);
  plugin_register_init(PLUGIN, init);
  vs_glue_register_read(PLUGIN, read_cb, halt);
  plugin_register_shutdown(PLUGIN, shutdown_cb);
}
