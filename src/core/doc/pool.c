#include "pool.h"

#include "strmap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_plain_id(const char *id) {
  if (!*id || strcmp(id, ".") == 0 || strcmp(id, "..") == 0 || strlen(id) > 200) return false;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-'))
      return false;
  return true;
}

/* The directory name of VM ID inside the pool. */
char *vs_pool_dir_name(const char *id) {
  if (is_plain_id(id)) return vs_xstrdup(id);
  struct vs_buf b = {0};
  vs_buf_addc(&b, 'x');
  for (const unsigned char *p = (const unsigned char *)id; *p && b.len < 240; p++)
    vs_buf_addf(&b, "%02x", *p);
  return vs_buf_steal(&b);
}

static int mkdir_p(const char *path, struct vs_err *err) {
  char *copy = vs_xstrdup(path);
  for (char *p = copy + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(copy, 0750) < 0 && errno != EEXIST) {
      vs_err_set(err, errno, "%s: cannot create the directory: %s", copy, strerror(errno));
      free(copy);
      return -1;
    }
    *p = '/';
  }
  free(copy);
  if (mkdir(path, 0750) < 0 && errno != EEXIST)
    return vs_err_set(err, errno, "%s: cannot create the directory: %s", path, strerror(errno));
  return 0;
}

/* "2026-11-25T19:20:00Z" -> "20261125T192000Z", or NULL when TAKEN_AT is not in that form. */
static char *stamp_of(const char *taken_at) {
  if (strlen(taken_at) != 20 || taken_at[4] != '-' || taken_at[7] != '-' || taken_at[10] != 'T' ||
      taken_at[13] != ':' || taken_at[16] != ':' || taken_at[19] != 'Z')
    return NULL;
  char out[17];
  size_t o = 0;
  for (const char *p = taken_at; *p; p++) {
    if (*p == '-' || *p == ':') continue;
    if (*p != 'T' && *p != 'Z' && (*p < '0' || *p > '9')) return NULL;
    out[o++] = *p;
  }
  out[o] = '\0';
  return vs_xstrdup(out);
}

/* A stamp's time (UTC), or -1. */
static time_t stamp_time(const char *name) {
  struct tm tm = {0};
  if (sscanf(name, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec) != 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return timegm(&tm);
}

static bool is_document_name(const char *name) {
  return name[0] != '.' && vs_has_suffix(name, ".json") && stamp_time(name) != (time_t)-1;
}

/* The document file names in VMDIR, sorted oldest first; temporary files left by a crash are
 * removed on the way when CLEAN. */
static char **list_documents(const char *vmdir, size_t *n, bool clean, struct vs_err *err) {
  *n = 0;
  DIR *d = opendir(vmdir);
  if (!d) {
    vs_err_set(err, errno, "%s: %s", vmdir, strerror(errno));
    return NULL;
  }
  char **names = vs_xcalloc(1, sizeof(char *));
  struct dirent *e;
  while ((e = readdir(d))) {
    if (clean && strstr(e->d_name, ".tmp-")) { /* no document's name holds one */
      unlinkat(dirfd(d), e->d_name, 0);
      continue;
    }
    if (is_document_name(e->d_name)) vs_strv_add(&names, n, e->d_name);
  }
  closedir(d);
  qsort(names, *n, sizeof(char *), vs_cmp_strp);
  return names;
}

int vs_pool_write(const char *dir, const struct vs_feature *doc, char **path_out,
                  struct vs_err *err) {
  _cleanup_(vs_freep) char *stamp = stamp_of(vs_feature_taken_at(doc));
  if (!stamp)
    return vs_err_set(err, EINVAL, "%s: taken_at \"%s\" is not YYYY-MM-DDTHH:MM:SSZ",
                      vs_feature_id(doc), vs_feature_taken_at(doc));
  _cleanup_(vs_freep) char *name = vs_pool_dir_name(vs_feature_id(doc));
  _cleanup_(vs_freep) char *vmdir = vs_xasprintf("%s/%s", dir, name);
  if (mkdir_p(vmdir, err) < 0) return -1;
  size_t stale = 0;
  char **old = list_documents(vmdir, &stale, true, NULL); /* clears crash leftovers */
  if (old) vs_strv_free(old, stale);

  _cleanup_(vs_freep) char *first = vs_xasprintf("%s/%s.json", vmdir, stamp);
  _cleanup_(vs_newfile_abandon) struct vs_newfile f = {.fd = -1};
  _cleanup_(vs_freep) char *json = vs_feature_dumps(doc, false);
  if (vs_newfile_open(&f, first, 0600, err) < 0 ||
      vs_newfile_write(&f, json, strlen(json), err) < 0 || vs_newfile_write(&f, "\n", 1, err) < 0)
    return -1;
  /* Never replace a document: two snapshots in one second get 001, 002... (which sort after
   * the first: '0' > '.') */
  for (int seq = 0; seq < 1000; seq++) {
    _cleanup_(vs_freep) char *final =
        seq ? vs_xasprintf("%s/%s%03d.json", vmdir, stamp, seq) : vs_xstrdup(first);
    int placed = vs_newfile_commit_new(&f, final, err);
    if (placed < 0) return -1;
    if (placed == 0) continue;
    if (path_out) *path_out = vs_steal(&final);
    return 0;
  }
  return vs_err_set(err, EEXIST, "%s: a thousand documents in one second", vmdir);
}

bool vs_pool_is_guest_tree(const char *dir) {
  _cleanup_(vs_freep) char *etc = vs_xasprintf("%s/etc", dir);
  struct stat st;
  return lstat(etc, &st) == 0 && S_ISDIR(st.st_mode);
}

int vs_pool_check(const char *dir, struct vs_err *err) {
  struct stat st;
  if (stat(dir, &st) < 0)
    return errno == ENOENT ? 0 : vs_err_set(err, errno, "%s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return vs_err_set(err, ENOTDIR,
                      "%s is not a directory: a snapshot pool is a directory of its own", dir);
  if (vs_pool_is_guest_tree(dir))
    return vs_err_set(err, EINVAL,
                      "%s holds a guest's /etc: it is a guest tree, not a snapshot pool (give a "
                      "directory of its own)",
                      dir);
  return 0;
}

int vs_pool_create(const char *dir, struct vs_err *err) {
  if (vs_pool_check(dir, err) < 0 || mkdir_p(dir, err) < 0) return -1;
  struct stat st;
  if (stat(dir, &st) < 0) return vs_err_set(err, errno, "%s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return vs_err_set(err, ENOTDIR, "%s: not a directory", dir);
  return 0;
}

/* Hands SRC's error to DST (which may be NULL), leaving SRC empty. */
static void move_err(struct vs_err *dst, struct vs_err *src) {
  if (dst) {
    vs_err_clear(dst);
    *dst = *src;
  } else {
    vs_err_clear(src);
  }
  *src = (struct vs_err){0};
}

static bool too_old(const char *doc, double keep_days, time_t now) {
  time_t t = stamp_time(doc);
  return keep_days > 0 && t != (time_t)-1 && (double)(now - t) > keep_days * 86400.0;
}

/* Removes VMDIR/NAME; the first failure goes to ERR. */
static bool remove_document(const char *vmdir, const char *name, struct vs_err *err) {
  _cleanup_(vs_freep) char *path = vs_xasprintf("%s/%s", vmdir, name);
  if (unlink(path) == 0) return true;
  if (errno != ENOENT && !err->msg)
    vs_err_set(err, errno, "%s: cannot remove: %s", path, strerror(errno));
  return false;
}

/* Retention in the VM directory VMDIR; with GONE, a VM whose newest document is too old loses
 * them all (and the directory). */
static int prune_dir(const char *vmdir, size_t keep, double keep_days, time_t now, bool gone,
                     struct vs_err *err) {
  size_t n;
  char **docs = list_documents(vmdir, &n, false, err);
  if (!docs) return -1;
  bool all = gone && n > 0 && too_old(docs[n - 1], keep_days, now);
  int removed = 0;
  struct vs_err first = {0};
  for (size_t i = 0; i < n; i++) {
    bool newest = i + 1 == n; /* kept unless the VM is gone for good */
    if (!all && (newest || (!(keep && n - i > keep) && !too_old(docs[i], keep_days, now))))
      continue;
    removed += remove_document(vmdir, docs[i], &first);
  }
  vs_strv_free(docs, n);
  if (all && !first.msg && rmdir(vmdir) < 0 && errno != ENOENT && errno != ENOTEMPTY)
    vs_err_set(&first, errno, "%s: cannot remove: %s", vmdir, strerror(errno));
  if (first.msg) {
    move_err(err, &first);
    return -1;
  }
  return removed;
}

int vs_pool_prune(const char *dir, const char *id, size_t keep, double keep_days, time_t now,
                  struct vs_err *err) {
  _cleanup_(vs_freep) char *name = vs_pool_dir_name(id);
  _cleanup_(vs_freep) char *vmdir = vs_xasprintf("%s/%s", dir, name);
  return prune_dir(vmdir, keep, keep_days, now, false, err);
}

int vs_pool_prune_gone(const char *dir, const char *const *present, size_t n_present, size_t keep,
                       double keep_days, time_t now, struct vs_err *err) {
  char **vms = NULL;
  size_t n = 0;
  if (vs_pool_vms(dir, &vms, &n, err) < 0) return -1;
  struct vs_strmap *here = vs_strmap_new(NULL);
  for (size_t i = 0; present && i < n_present; i++) {
    char *name = vs_pool_dir_name(present[i]);
    vs_strmap_put(here, name, (void *)here);
    free(name);
  }
  int removed = 0;
  struct vs_err first = {0};
  for (size_t i = 0; i < n; i++) {
    struct vs_err one = {0};
    _cleanup_(vs_freep) char *vmdir = vs_xasprintf("%s/%s", dir, vms[i]);
    bool gone = present && !vs_strmap_has(here, vms[i]);
    int r = prune_dir(vmdir, keep, keep_days, now, gone, &one);
    if (r > 0) removed += r;
    if (r < 0 && !first.msg) move_err(&first, &one);
    vs_err_clear(&one);
  }
  vs_strmap_free(here);
  vs_strv_free(vms, n);
  if (first.msg) {
    move_err(err, &first);
    return -1;
  }
  return removed;
}

static struct vs_feature *newest_in(const char *vmdir, struct vs_feature **second,
                                    struct vs_err *err) {
  if (second) *second = NULL;
  size_t n;
  char **docs = list_documents(vmdir, &n, false, err);
  if (!docs) return NULL;
  struct vs_feature *found = NULL;
  _cleanup_(vs_freep) char *why = NULL; /* the newest document's load error */
  for (size_t i = n; i-- > 0;) {
    char *path = vs_xasprintf("%s/%s", vmdir, docs[i]);
    struct vs_err lerr = {0};
    struct vs_feature *doc = vs_feature_load(path, &lerr);
    if (!doc) vs_log(VS_LOG_WARNING, "skipping %s", vs_err_msg(&lerr));
    if (!doc && !why) why = vs_xstrdup(vs_err_msg(&lerr));
    vs_err_clear(&lerr);
    free(path);
    if (!doc) continue;
    if (!found) {
      found = doc;
      if (!second) break;
    } else {
      *second = doc;
      break;
    }
  }
  vs_strv_free(docs, n);
  if (!found && why)
    vs_err_set(err, ENOENT, "%s: no readable document (the newest: %s)", vmdir, why);
  else if (!found)
    vs_err_set(err, ENOENT, "%s: no document", vmdir);
  return found;
}

struct vs_feature *vs_pool_newest(const char *dir, const char *id, struct vs_feature **second,
                                  struct vs_err *err) {
  _cleanup_(vs_freep) char *name = vs_pool_dir_name(id);
  _cleanup_(vs_freep) char *vmdir = vs_xasprintf("%s/%s", dir, name);
  return newest_in(vmdir, second, err);
}

struct vs_feature *vs_pool_newest_in(const char *dir, const char *name, struct vs_err *err) {
  if (strchr(name, '/') || name[0] == '.') {
    vs_err_set(err, EINVAL, "\"%s\" is not a VM directory name of the pool", name);
    return NULL;
  }
  _cleanup_(vs_freep) char *vmdir = vs_xasprintf("%s/%s", dir, name);
  return newest_in(vmdir, NULL, err);
}

int vs_pool_vms(const char *dir, char ***list, size_t *n, struct vs_err *err) {
  *n = 0;
  *list = NULL;
  DIR *d = opendir(dir);
  if (!d) return vs_err_set(err, errno, "%s: %s", dir, strerror(errno));
  char **names = vs_xcalloc(1, sizeof(char *));
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
      vs_strv_add(&names, n, e->d_name);
  }
  closedir(d);
  qsort(names, *n, sizeof(char *), vs_cmp_strp);
  *list = names;
  return 0;
}

size_t vs_pool_count(const char *dir, const char *id) {
  _cleanup_(vs_freep) char *name = vs_pool_dir_name(id);
  _cleanup_(vs_freep) char *vmdir = vs_xasprintf("%s/%s", dir, name);
  size_t n;
  char **docs = list_documents(vmdir, &n, false, NULL);
  if (docs) vs_strv_free(docs, n);
  return docs ? n : 0;
}

#define CYCLE_FILE "cycle.json"
#define CYCLE_MAX_BYTES 4096

static json_t *load_cycle(const char *dir) {
  _cleanup_(vs_freep) char *path = vs_xasprintf("%s/" CYCLE_FILE, dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return NULL;
  char text[CYCLE_MAX_BYTES];
  ssize_t len = read(fd, text, sizeof(text));
  close(fd);
  if (len <= 0 || (size_t)len == sizeof(text)) return NULL;
  json_t *j = json_loadb(text, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
  if (j && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

int vs_pool_mark_cycle(const char *dir, bool done, size_t domains, time_t now, struct vs_err *err) {
  char stamp[32];
  struct tm tm;
  strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
  json_t *old = load_cycle(dir);
  json_t *completed = old ? json_object_get(old, "completed") : NULL;
  json_t *started = old ? json_object_get(old, "started") : NULL;
  json_t *j = json_pack(
      "{s:O?,s:O?,s:I}", "started", done && json_is_string(started) ? started : NULL, "completed",
      json_is_string(completed) ? completed : NULL, "domains", (json_int_t)domains);
  json_decref(old);
  if (!j) return vs_err_set(err, ENOMEM, "%s/" CYCLE_FILE ": out of memory", dir);
  json_object_set_new(j, done ? "completed" : "started", json_string(stamp));
  _cleanup_(vs_freep) char *text = json_dumps(j, JSON_SORT_KEYS);
  json_decref(j);
  _cleanup_(vs_freep) char *path = vs_xasprintf("%s/" CYCLE_FILE, dir);
  if (!text) return vs_err_set(err, ENOMEM, "%s: out of memory", path);
  struct vs_newfile f = {.fd = -1};
  if (vs_newfile_open(&f, path, 0640, err) < 0) return -1;
  if (vs_newfile_write(&f, text, strlen(text), err) < 0 || vs_newfile_commit(&f, err) < 0) {
    vs_newfile_abandon(&f);
    return -1;
  }
  return 0;
}

bool vs_pool_first_cycle_running(const char *dir, size_t *domains) {
  json_t *j = load_cycle(dir);
  if (!j) return false;
  bool running = json_is_string(json_object_get(j, "started")) &&
                 !json_is_string(json_object_get(j, "completed"));
  json_t *n = json_object_get(j, "domains");
  if (domains)
    *domains = json_is_integer(n) && json_integer_value(n) >= 0 ? (size_t)json_integer_value(n) : 0;
  json_decref(j);
  return running;
}
