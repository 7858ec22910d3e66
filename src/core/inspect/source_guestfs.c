/* The guestfs backend of source.h: one libguestfs appliance for a batch of images. */
#include "source_guestfs.h"

#include "dl.h"
#include "extract.h"

#include "strmap.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <fcntl.h>
#include <guestfs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* libguestfs is opened when an appliance is first wanted (dl.h): the direct reader's commands
 * do not load it. */
/* clang-format off */
#define GUESTFS_SYMBOLS(X) X(guestfs_add_drive_opts) X(guestfs_case_sensitive_path)               \
  X(guestfs_close) X(guestfs_create) X(guestfs_device_index) X(guestfs_download)                  \
  X(guestfs_filesize) X(guestfs_free_application2_list) X(guestfs_free_lvm_pv_list)               \
  X(guestfs_free_statns) X(guestfs_glob_expand_opts) X(guestfs_inspect_get_mountpoints)           \
  X(guestfs_inspect_get_package_format) X(guestfs_inspect_get_type)                               \
  X(guestfs_inspect_get_windows_systemroot) X(guestfs_inspect_list_applications2)                 \
  X(guestfs_inspect_os) X(guestfs_is_dir_opts) X(guestfs_is_file_opts) X(guestfs_is_lv)           \
  X(guestfs_is_symlink) X(guestfs_last_error) X(guestfs_launch) X(guestfs_lstatns)                \
  X(guestfs_lvm_canonical_lv_name) X(guestfs_mount_ro) X(guestfs_part_to_dev) X(guestfs_pread)    \
  X(guestfs_pvs_full) X(guestfs_readlink) X(guestfs_realpath) X(guestfs_set_error_handler)        \
  X(guestfs_tar_out_opts) X(guestfs_umount_all) X(guestfs_vgpvuuids)
/* clang-format on */
VS_DL_LIBRARY(guestfs_lib, VS_SONAME_GUESTFS, "libguestfs0", GUESTFS_SYMBOLS);

#define MAX_FETCHED 10000
#define MAX_DOWNLOAD (4u << 20)

struct vs_guestfs {
  guestfs_h *g;
  char **paths;
  char **formats;
  size_t n;
  struct vs_watch *watch;
  char **roots; /* every OS root libguestfs found, NULL-terminated */
  vs_guestfs_progress_fn progress;
  void *progress_ctx;
};

/* Tells the host that PHASE begins (for image I, when it is one image's). */
static void report(const struct vs_guestfs *gfs, enum vs_guestfs_phase phase, size_t i,
                   int attempt) {
  if (!gfs->progress) return;
  struct vs_guestfs_event ev = {.phase = phase,
                                .n_images = gfs->n,
                                .image = i,
                                .path = i < gfs->n ? gfs->paths[i] : NULL,
                                .attempt = attempt};
  gfs->progress(&ev, gfs->progress_ctx);
}

static void free_strings(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

static int gerr(struct vs_guestfs *gfs, struct vs_err *err, const char *what) {
  const char *msg = sym_guestfs_last_error(gfs->g);
  return vs_err_set(err, EIO, "libguestfs: %s: %s", what, msg ? msg : "failed");
}

/* guestfs_launch has no deadline, and under emulation an appliance now and then hangs in
 * boot. A watchdog thread kills this process's hypervisor children past the deadline, which
 * makes the launch fail (and be retried) instead of hanging forever. */
#define LAUNCH_DEADLINE_S 600

struct watchdog {
  pthread_mutex_t lock;
  pthread_cond_t done_cond;
  bool done, fired;
};

static void kill_hypervisor_children(void) {
  DIR *d = opendir("/proc");
  if (!d) return;
  pid_t self = getpid();
  struct dirent *de;
  while ((de = readdir(d))) {
    char path[300], buf[512];
    if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
    snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name); /* fits: d_name <= 255 */
    FILE *f = fopen(path, "re");
    if (!f) continue;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold spaces, so parse from the last ')'. */
    char *open = strchr(buf, '('), *close_paren = strrchr(buf, ')');
    int ppid = 0;
    char state;
    if (!open || !close_paren || sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid == self && strncmp(open + 1, "qemu-system", 11) == 0)
      kill((pid_t)atoi(de->d_name), SIGKILL);
  }
  closedir(d);
}

/* Set for good once the process shuts its appliances down: a launch that fails then is not
 * retried, and no new one starts. Process-wide, because the appliances are the process's. */
static atomic_bool appliances_killed;

void vs_guestfs_kill_appliances(void) {
  atomic_store(&appliances_killed, true);
  kill_hypervisor_children();
}

static void *watchdog_run(void *arg) {
  struct watchdog *w = arg;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += LAUNCH_DEADLINE_S;
  pthread_mutex_lock(&w->lock);
  while (!w->done)
    if (pthread_cond_timedwait(&w->done_cond, &w->lock, &until) == ETIMEDOUT && !w->done) {
      w->fired = true;
      kill_hypervisor_children();
      break;
    }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

static int launch_with_deadline(guestfs_h *g, bool *timed_out) {
  struct watchdog w = {.lock = PTHREAD_MUTEX_INITIALIZER, .done_cond = PTHREAD_COND_INITIALIZER};
  pthread_t t;
  bool have_thread = pthread_create(&t, NULL, watchdog_run, &w) == 0;
  int rc = sym_guestfs_launch(g);
  if (have_thread) {
    pthread_mutex_lock(&w.lock);
    w.done = true;
    pthread_cond_signal(&w.done_cond);
    pthread_mutex_unlock(&w.lock);
    pthread_join(t, NULL);
  }
  *timed_out = w.fired;
  return rc;
}

static guestfs_h *launch(const struct vs_guestfs *gfs, struct vs_err *err) {
  char *const *paths = gfs->paths, *const *formats = gfs->formats;
  size_t n = gfs->n;
  for (int attempt = 0; attempt < 2; attempt++) {
    report(gfs, VS_GUESTFS_LAUNCHING, n, attempt + 1);
    if (atomic_load(&appliances_killed)) {
      vs_err_set(err, ECANCELED, "libguestfs: shutting down, no appliance is launched");
      return NULL;
    }
    guestfs_h *g = sym_guestfs_create();
    if (!g) {
      vs_err_set(err, ENOMEM, "libguestfs: cannot create a handle");
      return NULL;
    }
    sym_guestfs_set_error_handler(g, NULL, NULL);
    /* libguestfs waits for its appliance's qemu-img and qemu; adding a read-only drive already
     * runs qemu-img (its overlay) */
    vs_reset_sigchld();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
      rc = sym_guestfs_add_drive_opts(g, paths[i], GUESTFS_ADD_DRIVE_OPTS_READONLY, 1,
                                      GUESTFS_ADD_DRIVE_OPTS_FORMAT, formats[i], -1);
    bool timed_out = false;
    if (rc == 0) rc = launch_with_deadline(g, &timed_out);
    if (rc == 0) return g;
    const char *msg = sym_guestfs_last_error(g);
    vs_err_set(err, EIO, "libguestfs: launching the appliance for %zu image(s)%s: %s%s", n,
               attempt ? " (second try)" : "",
               timed_out ? "no answer within the deadline; hypervisor killed: " : "",
               msg ? msg : "failed");
    sym_guestfs_close(g);
    /* About one launch in fifteen dies under emulation: try once more. */
  }
  return NULL;
}

struct vs_guestfs *vs_guestfs_open(const char *const *paths, size_t n_paths,
                                   const struct vs_image_opts *opts, const struct vs_watch *watch,
                                   struct vs_err *err) {
  return vs_guestfs_open_reporting(paths, n_paths, opts, watch, NULL, NULL, err);
}

struct vs_guestfs *vs_guestfs_open_reporting(const char *const *paths, size_t n_paths,
                                             const struct vs_image_opts *opts,
                                             const struct vs_watch *watch,
                                             vs_guestfs_progress_fn progress, void *ctx,
                                             struct vs_err *err) {
  if (vs_dl_load(&guestfs_lib, err) < 0) return NULL;
  struct vs_guestfs *gfs = vs_xcalloc(1, sizeof(*gfs));
  gfs->paths = vs_xcalloc(n_paths + 1, sizeof(char *));
  gfs->formats = vs_xcalloc(n_paths + 1, sizeof(char *));
  gfs->watch = vs_watch_copy(watch);
  gfs->progress = progress;
  gfs->progress_ctx = ctx;
  gfs->n = n_paths;
  for (size_t i = 0; i < n_paths; i++)
    gfs->paths[i] = vs_xstrdup(paths[i]);
  report(gfs, VS_GUESTFS_CHECKING, gfs->n, 0);
  /* Our reader checks each chain against the backing-file policy before qemu follows it. */
  for (size_t i = 0; i < n_paths; i++) {
    struct vs_image *img = vs_image_open(paths[i], opts, err);
    if (!img) {
      vs_guestfs_close(gfs);
      return NULL;
    }
    const char *format = vs_image_format(img);
    gfs->formats[i] = vs_xstrdup(strcmp(format, "vhd") == 0 ? "vpc" : format); /* qemu's name */
    vs_image_close(img);
  }
  gfs->g = launch(gfs, err);
  if (!gfs->g) {
    vs_guestfs_close(gfs);
    return NULL;
  }
  report(gfs, VS_GUESTFS_INSPECTING, gfs->n, 0);
  gfs->roots = sym_guestfs_inspect_os(gfs->g);
  if (!gfs->roots) {
    gerr(gfs, err, "inspect_os");
    vs_guestfs_close(gfs);
    return NULL;
  }
  return gfs;
}

void vs_guestfs_close(struct vs_guestfs *gfs) {
  if (!gfs) return;
  if (gfs->g) sym_guestfs_close(gfs->g);
  free_strings(gfs->roots);
  vs_strv_free(gfs->paths, gfs->n);
  vs_strv_free(gfs->formats, gfs->n);
  vs_watch_free(gfs->watch);
  free(gfs);
}

/* ------------------------------------------------------------------- pulling files out */

struct stage {
  struct vs_guestfs *gfs;
  char *root;               /* host directory */
  struct vs_source *src;    /* the staged tree's source, which collects the notes */
  struct vs_strmap *pulled; /* guest real paths of directories already pulled */
  size_t fetched;
};

static char *host_path(struct stage *st, const char *guest) {
  return vs_xasprintf("%s%s", st->root, guest);
}

static void mkdirs(const char *path) {
  char *p = vs_xstrdup(path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    mkdir(p, 0755);
    *s = '/';
  }
  mkdir(p, 0755);
  free(p);
}

static void mkparents(const char *path) {
  char *p = vs_xstrdup(path);
  char *slash = strrchr(p, '/');
  if (slash && slash != p) {
    *slash = '\0';
    mkdirs(p);
  }
  free(p);
}

/* Recreates in the stage every symlink met on the way to guest PATH (and on the way to their
 * targets), so that the staged tree resolves PATH as the guest does. */
static void replicate_links(struct stage *st, const char *path, int depth) {
  if (depth > VS_SOURCE_MAX_LINKS) return;
  guestfs_h *g = st->gfs->g;
  char *cur = vs_xcalloc(1, strlen(path) + 2);
  const char *p = path;
  size_t len = 0;
  while (*p) {
    while (*p == '/')
      p++;
    size_t n = strcspn(p, "/");
    if (!n) break;
    cur[len++] = '/';
    memcpy(cur + len, p, n);
    len += n;
    cur[len] = '\0';
    p += n;
    if (sym_guestfs_is_symlink(g, cur) != 1) continue;
    char *target = sym_guestfs_readlink(g, cur);
    if (!target) break;
    /* Place the link under its parent's real path: the parent may itself be reached
     * through a link (/bin/sh with /bin -> usr/bin). */
    char *slash = strrchr(cur, '/');
    char *parent = slash == cur ? vs_xstrdup("/") : vs_xstrndup(cur, (size_t)(slash - cur));
    char *real_parent = sym_guestfs_realpath(g, parent);
    char *h =
        vs_xasprintf("%s%s/%s", st->root,
                     real_parent && strcmp(real_parent, "/") != 0 ? real_parent : "", slash + 1);
    free(parent);
    free(real_parent);
    struct stat sb;
    if (lstat(h, &sb) < 0) {
      mkparents(h);
      if (symlink(target, h) < 0)
        vs_source_add_note(st->src, cur, "cannot recreate the symlink in the staging directory: %s",
                           strerror(errno));
    }
    free(h);
    char *next = target[0] == '/' ? vs_xstrdup(target) : NULL;
    if (!next) {
      char *dir = vs_xstrndup(cur, (size_t)(strrchr(cur, '/') - cur));
      next = vs_xasprintf("%s/%s", dir, target);
      free(dir);
    }
    replicate_links(st, next, depth + 1);
    free(next);
    free(target);
  }
  free(cur);
}

static void apply_meta(struct stage *st, const char *guest, const char *host) {
  struct guestfs_statns *s = sym_guestfs_lstatns(st->gfs->g, guest);
  if (!s) return;
  if (lchown(host, (uid_t)s->st_uid, (gid_t)s->st_gid) < 0 && errno != EPERM)
    vs_source_add_note(st->src, guest, "cannot set the staged copy's owner: %s", strerror(errno));
  chmod(host, (mode_t)(s->st_mode & 07777));
  sym_guestfs_free_statns(s);
}

/* Runs tar without a shell to unpack ARCHIVE into DIR, keeping numeric owners and modes. */
static int untar(const char *archive, const char *dir) {
  vs_reset_sigchld();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execlp("tar", "tar", "-x", "-p", "--numeric-owner", "--no-overwrite-dir", "-f", archive, "-C",
           dir, (char *)NULL);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void pull_dir(struct stage *st, const char *dir) {
  guestfs_h *g = st->gfs->g;
  replicate_links(st, dir, 0);
  char *real = sym_guestfs_realpath(g, dir);
  if (!real || sym_guestfs_is_dir_opts(g, real, -1) != 1) {
    free(real);
    return;
  }
  if (!vs_strmap_put(st->pulled, real, NULL)) { /* pulled under another name (/lib) */
    free(real);
    return;
  }
  char *h = host_path(st, real);
  mkdirs(h);
  char *tarfile = vs_xasprintf("%s.tar", st->root);
  if (sym_guestfs_tar_out_opts(g, real, tarfile, GUESTFS_TAR_OUT_OPTS_NUMERICOWNER, 1, -1) < 0)
    vs_source_add_note(st->src, real, "tar-out failed: %s", sym_guestfs_last_error(g));
  else if (untar(tarfile, h) < 0)
    vs_source_add_note(st->src, real, "unpacking the tar-out copy into %s failed", h);
  else
    apply_meta(st, real, h);
  unlink(tarfile);
  free(tarfile);
  free(h);
  free(real);
}

/* Copies one guest file (at most LIMIT bytes, or its head when HEAD_ONLY) into the stage. */
static void pull_file(struct stage *st, const char *path, size_t limit, bool head_only) {
  guestfs_h *g = st->gfs->g;
  if (st->fetched >= MAX_FETCHED) return;
  replicate_links(st, path, 0);
  char *real = sym_guestfs_realpath(g, path);
  if (!real || sym_guestfs_is_file_opts(g, real, -1) != 1) {
    free(real);
    return;
  }
  char *h = host_path(st, real);
  struct stat sb;
  if (lstat(h, &sb) == 0) {
    free(h);
    free(real);
    return;
  }
  mkparents(h);
  st->fetched++;
  int64_t size = sym_guestfs_filesize(g, real);
  if (head_only || (size >= 0 && (uint64_t)size > limit)) {
    /* Keep the size honest for the reader's limit: a sparse file of the same length. */
    size_t got = 0;
    char *head = sym_guestfs_pread(g, real, head_only ? 64 : 0, 0, &got);
    int fd = open(h, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      if (head && got && write(fd, head, got) != (ssize_t)got)
        vs_source_add_note(st->src, real, "cannot write the staged copy");
      if (!head_only && ftruncate(fd, size) < 0)
        vs_source_add_note(st->src, real, "cannot size the staged copy");
      close(fd);
    }
    free(head);
  } else if (sym_guestfs_download(g, real, h) < 0) {
    vs_source_add_note(st->src, real, "download failed: %s", sym_guestfs_last_error(g));
  }
  apply_meta(st, real, h);
  free(h);
  free(real);
}

static const char *const pulled_dirs[] = {
    "/etc",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/var/lib/rpm",
    "/usr/lib/sysimage/rpm",
};

static void pull_root(struct stage *st) {
  for (size_t i = 0; i < sizeof(pulled_dirs) / sizeof(pulled_dirs[0]); i++)
    pull_dir(st, pulled_dirs[i]);
  pull_file(st, "/usr/lib/os-release", MAX_DOWNLOAD, false);
  pull_file(st, "/var/lib/dpkg/status", (256u << 20), false);
  static const char *const shells[] = {"/bin/sh", "/usr/bin/sh", "/bin/busybox"};
  for (size_t i = 0; i < 3; i++)
    pull_file(st, shells[i], 0, true);
  /* Watched files outside the directories pulled whole. */
  for (size_t i = 0; i < vs_watch_count(st->gfs->watch); i++) {
    const char *pattern, *lens;
    vs_watch_entry(st->gfs->watch, i, &pattern, &lens);
    if (strncmp(pattern, "/etc/", 5) == 0) continue;
    char **paths = sym_guestfs_glob_expand_opts(st->gfs->g, pattern, -1);
    for (char **p = paths; p && *p; p++)
      pull_file(st, *p, MAX_DOWNLOAD, false);
    free_strings(paths);
  }
}

/* A Windows guest's registry hives and its cmd.exe (what extract_win.c reads), found in any
 * case under the system root libguestfs found. Returns whether ROOT is a Windows guest. */
static bool pull_windows(struct stage *st, const char *root) {
  guestfs_h *g = st->gfs->g;
  char *type = sym_guestfs_inspect_get_type(g, root);
  bool is_windows = type && strcmp(type, "windows") == 0;
  free(type);
  char *sysroot = is_windows ? sym_guestfs_inspect_get_windows_systemroot(g, root) : NULL;
  static const char *const files[] = {"system32/config/software", "system32/config/system",
                                      "system32/config/sam", "system32/cmd.exe"};
  for (size_t i = 0; sysroot && i < sizeof(files) / sizeof(files[0]); i++) {
    char *path = vs_xasprintf("%s/%s", sysroot, files[i]);
    char *real = sym_guestfs_case_sensitive_path(g, path);
    if (real) pull_file(st, real, VS_EXTRACT_MAX_HIVE, false);
    free(real);
    free(path);
  }
  free(sysroot);
  return is_windows;
}

static int cmp_mountpoint(const void *a, const void *b) {
  const char *const *x = a, *const *y = b;
  return (int)strlen(x[0]) - (int)strlen(y[0]);
}

static int mount_root(struct vs_guestfs *gfs, const char *root, struct stage *st,
                      struct vs_err *err) {
  char **mps = sym_guestfs_inspect_get_mountpoints(gfs->g, root);
  if (!mps) return gerr(gfs, err, "inspect_get_mountpoints");
  size_t n = 0;
  while (mps[2 * n])
    n++;
  qsort(mps, n, 2 * sizeof(char *), cmp_mountpoint);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    if (sym_guestfs_mount_ro(gfs->g, mps[2 * i + 1], mps[2 * i]) < 0) {
      if (strcmp(mps[2 * i], "/") == 0) {
        rc = gerr(gfs, err, "mounting the root file system");
        break;
      }
      vs_source_add_note(st->src, mps[2 * i], "not mounted: %s", sym_guestfs_last_error(gfs->g));
    }
  }
  free_strings(mps);
  return rc;
}

/* The index of the drive (0 for /dev/sda) holding ROOT: a partition's or a whole disk's own,
 * or for a logical volume (/dev/rl/root, the default layout of RHEL, Rocky and Alma) the drive
 * of its volume group's first physical volume; -1 when none is found. */
static int drive_of_root(guestfs_h *g, const char *root) {
  char *dev = sym_guestfs_part_to_dev(g, root);
  int idx = sym_guestfs_device_index(g, dev ? dev : root);
  free(dev);
  if (idx >= 0 || sym_guestfs_is_lv(g, root) != 1) return idx;
  char *lv = sym_guestfs_lvm_canonical_lv_name(g, root); /* "/dev/VG/LV" */
  const char *vg_start = lv && strncmp(lv, "/dev/", 5) == 0 ? lv + 5 : NULL;
  const char *vg_end = vg_start ? strchr(vg_start, '/') : NULL;
  char *vg = vg_end ? vs_xstrndup(vg_start, (size_t)(vg_end - vg_start)) : NULL;
  char **uuids = vg ? sym_guestfs_vgpvuuids(g, vg) : NULL;
  struct guestfs_lvm_pv_list *pvs = uuids && uuids[0] ? sym_guestfs_pvs_full(g) : NULL;
  /* vgpvuuids gives LVM's dashed form (treOr9-KL7C-...), pvs_full 32 bytes without dashes
   * and without a NUL */
  char want[sizeof(pvs->val[0].pv_uuid) + 1] = "";
  size_t len = 0;
  for (const char *c = uuids && uuids[0] ? uuids[0] : ""; *c && len < sizeof(want); c++)
    if (*c != '-') want[len++] = *c;
  for (uint32_t k = 0; pvs && k < pvs->len && idx < 0; k++) {
    if (len != sizeof(pvs->val[k].pv_uuid) || memcmp(pvs->val[k].pv_uuid, want, len) != 0) continue;
    dev = sym_guestfs_part_to_dev(g, pvs->val[k].pv_name);
    idx = sym_guestfs_device_index(g, dev ? dev : pvs->val[k].pv_name);
    free(dev);
  }
  if (pvs) sym_guestfs_free_lvm_pv_list(pvs);
  free_strings(uuids);
  free(vg);
  free(lv);
  return idx;
}

struct vs_source *vs_guestfs_source(struct vs_guestfs *gfs, size_t i, struct vs_err *err) {
  if (i >= gfs->n) {
    vs_err_set(err, EINVAL, "no image %zu in this batch", i);
    return NULL;
  }
  /* The root on drive I: libguestfs names drives /dev/sda, /dev/sdb, ... in the order added. */
  report(gfs, VS_GUESTFS_MOUNTING, i, 0);
  const char *root = NULL;
  for (char **r = gfs->roots; *r && !root; r++) {
    int idx = drive_of_root(gfs->g, *r);
    if (idx >= 0 && (size_t)idx == i) root = *r;
  }
  if (!root) {
    vs_err_set(err, ENOENT, "%s: libguestfs found no operating system on this image",
               gfs->paths[i]);
    return NULL;
  }
  const char *tmp = getenv("TMPDIR");
  struct stage st = {.gfs = gfs, .pulled = vs_strmap_new(NULL)};
  st.root = vs_xasprintf("%s/vmscope-guestfs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(st.root)) {
    vs_err_set(err, errno, "making a staging directory %s: %s", st.root, strerror(errno));
    vs_strmap_free(st.pulled);
    free(st.root);
    return NULL;
  }
  /* The staged tree is removed when its source is freed, on success and failure alike. */
  st.src = vs_source_open_staged(st.root, "image", "guestfs", gfs->paths[i], true, err);
  if (st.src && mount_root(gfs, root, &st, err) < 0) {
    vs_source_free(st.src);
    st.src = NULL;
  }
  struct vs_source *src = st.src;
  if (src) {
    report(gfs, VS_GUESTFS_READING, i, 0);
    pull_root(&st);
    /* Package formats the extractor does not parse come from libguestfs's own listing; a
     * Windows guest's come from its hives. */
    bool is_windows = pull_windows(&st, root);
    char *format = sym_guestfs_inspect_get_package_format(gfs->g, root);
    if (!is_windows && format && strcmp(format, "deb") != 0 && strcmp(format, "rpm") != 0) {
      report(gfs, VS_GUESTFS_LISTING_APPS, i, 0);
      struct guestfs_application2_list *apps = sym_guestfs_inspect_list_applications2(gfs->g, root);
      for (uint32_t k = 0; apps && k < apps->len; k++) {
        struct guestfs_application2 *a = &apps->val[k];
        char *ver = a->app2_release && *a->app2_release
                        ? vs_xasprintf("%s-%s", a->app2_version, a->app2_release)
                        : vs_xstrdup(a->app2_version);
        vs_source_add_package(src, a->app2_name, ver, format);
        free(ver);
      }
      if (apps) sym_guestfs_free_application2_list(apps);
    }
    free(format);
  } else {
    rmdir(st.root);
  }
  sym_guestfs_umount_all(gfs->g);
  vs_strmap_free(st.pulled);
  free(st.root);
  return src;
}
