/* Turning the command line's SOURCE arguments into feature documents: a guest tree as a
 * directory, a disk image (direct reader, or a libguestfs batch for what it cannot read), or a
 * saved feature document (.json: one document or an array of them, as "vmscope inspect"
 * prints). Shared by the subcommands that read guests. */
#include "cli.h"

#include "fleet.h"
#include "parse_cache.h"
#include "progress.h"
#include "source_guestfs.h"
#include "source_image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char vs_cli_read_help[] =
    "  -w, --watch FILE        add the watch entries of FILE (\"PATTERN [LENS]\" per\n"
    "                          line, \"!PATTERN\" removes one) to the watch list;\n"
    "                          may be given more than once\n"
    "      --no-default-watch  start from an empty watch list instead of the default\n"
    "      --reg-watch FILE    add the registry watch entries of FILE (\"KEY [VALUE]\"\n"
    "                          per line, \"!KEY [VALUE]\" removes one) to the registry\n"
    "                          values read from Windows guests; repeatable\n"
    "      --no-default-reg-watch\n"
    "                          start from an empty registry watch list\n"
    "      --stats             print extraction timings per phase to standard error\n"
    "  -b, --backend auto|direct|guestfs\n"
    "                          how to read disk images (default auto): direct reads\n"
    "                          ext2/3/4, NTFS and LVM2 volumes on raw, qcow2, VHD/VHDX\n"
    "                          and VMDK images itself (VMDK extents obey --backing-dir),\n"
    "                          with no appliance, and XFS only when direct is given\n"
    "                          (libfsxfs is unfit for hostile images: SECURITY.md);\n"
    "                          guestfs uses a libguestfs appliance (XFS, btrfs, LUKS...);\n"
    "                          auto tries direct and falls back to guestfs, saying why\n"
    "                          (unless --quiet)\n"
    "      --image-format raw|qcow2|vhd|vhdx|vmdk\n"
    "                          the images' format, instead of probing it (vpc is vhd)\n"
    "      --backing-dir DIR   a directory backing files may lie in (repeatable; default:\n"
    "                          the image's own directory)\n"
    "      --parse-cache DIR   keep what parsing each config file gave in DIR (made mode\n"
    "                          0700; one of another user, or open to others, is refused),\n"
    "                          so a file seen before is not parsed again (default:\n"
    "                          $XDG_CACHE_HOME/vmscope/parse or ~/.cache/vmscope/parse)\n"
    "      --no-parse-cache    parse every config file, keep nothing\n";

const char vs_cli_fleet_help[] =
    "      --cacert FILE       the CA certificate to trust for https:// stores\n"
    "      --cert FILE         a client certificate for the store (with --key)\n"
    "      --key FILE          its private key\n"
    "      --user NAME         etcd user; the password is read from VMSCOPE_ETCD_PASSWORD\n";

int vs_cli_fleet_option(struct vs_fleet_opts *fo, int c, const char *arg) {
  switch (c) {
  case VS_CLI_OPT_CACERT:
    fo->cacert = arg;
    return 1;
  case VS_CLI_OPT_CERT:
    fo->cert = arg;
    return 1;
  case VS_CLI_OPT_KEY:
    fo->key = arg;
    return 1;
  case VS_CLI_OPT_USER:
    fo->user = arg;
    fo->password = getenv("VMSCOPE_ETCD_PASSWORD");
    return 1;
  }
  return 0;
}

int vs_cli_set_once(const char **slot, const char *arg, const char *opt, const char *prog) {
  if (*slot) {
    fprintf(stderr, "%s: %s given twice (\"%s\", then \"%s\"): give it once\n", prog, opt, *slot,
            arg);
    return -1;
  }
  *slot = arg;
  return 0;
}

int vs_cli_take_once(const struct vs_cli_once *t, size_t n, int c, const char *arg,
                     const char *prog) {
  for (size_t i = 0; i < n; i++)
    if (t[i].c == c) return vs_cli_set_once(t[i].slot, arg, t[i].name, prog) < 0 ? -1 : 1;
  return 0;
}

int vs_cli_add_repeat(const char **list, size_t *n, const char *arg, const char *opt,
                      const char *prog) {
  if (*n == VS_CLI_MAX_REPEAT) {
    fprintf(stderr, "%s: at most %d %s options\n", prog, VS_CLI_MAX_REPEAT, opt);
    return -1;
  }
  list[(*n)++] = arg;
  return 0;
}

int vs_cli_format_option(const char *arg, const char *prog, bool *text) {
  if (strcmp(arg, "json") != 0 && strcmp(arg, "text") != 0) {
    fprintf(stderr, "%s: --format takes json or text, not \"%s\"\n", prog, arg);
    return -1;
  }
  *text = strcmp(arg, "text") == 0;
  return 0;
}

int vs_cli_print_json(const json_t *j, bool compact, const char *prog) {
  char *s =
      json_dumps(j, JSON_ENCODE_ANY | JSON_SORT_KEYS | (compact ? JSON_COMPACT : JSON_INDENT(2)));
  if (!s) {
    fprintf(stderr, "%s: out of memory serializing the JSON output\n", prog);
    return -1;
  }
  puts(s);
  free(s);
  return 0;
}

int vs_cli_fail(struct vs_err *err, const char *context, int status, const char *prog) {
  fprintf(stderr, "%s: %s%s%s\n", prog, context ? context : "", context ? " " : "",
          vs_err_msg(err));
  vs_err_clear(err);
  return status;
}

int vs_cli_flush(const char *prog) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "%s: writing standard output failed\n", prog);
    return -1;
  }
  return 0;
}

struct vs_watch *vs_cli_load_watch(const struct vs_cli_read *r, const char *prog) {
  struct vs_err err = {0};
  _cleanup_(vs_watch_freep) struct vs_watch *watch =
      r->no_default_watch ? vs_watch_new_empty() : vs_watch_new_default();
  for (size_t i = 0; i < r->n_watch_files; i++)
    if (vs_watch_load_file(watch, r->watch_files[i], &err) < 0) {
      vs_cli_fail(&err, NULL, -1, prog);
      return NULL;
    }
  return vs_steal(&watch);
}

struct vs_regwatch *vs_cli_load_regwatch(const struct vs_cli_read *r, const char *prog) {
  struct vs_err err = {0};
  _cleanup_(vs_regwatch_freep) struct vs_regwatch *rw =
      r->no_default_reg_watch ? vs_regwatch_new_empty() : vs_regwatch_new_default();
  for (size_t i = 0; i < r->n_reg_watch_files; i++)
    if (vs_regwatch_load_file(rw, r->reg_watch_files[i], &err) < 0) {
      vs_cli_fail(&err, NULL, -1, prog);
      return NULL;
    }
  return vs_steal(&rw);
}

struct vs_parse_cache *vs_cli_open_parse_cache(const struct vs_cli_read *r, const char *prog) {
  if (r->no_parse_cache) return NULL;
  _cleanup_(vs_freep) char *dir =
      r->parse_cache ? vs_xstrdup(r->parse_cache) : vs_parse_cache_default_dir();
  if (!dir) return NULL;
  struct vs_err err = {0};
  struct vs_parse_cache *cache = vs_parse_cache_open(dir, &err);
  if (!cache) {
    fprintf(stderr, "%s: warning: parse cache not used: %s\n", prog, vs_err_msg(&err));
    vs_err_clear(&err);
  }
  return cache;
}

/* The formats vs_source_open_image reads, as qemu-img names them (and vhd, the common name of
 * its vpc). */
static bool is_image_format(const char *arg) {
  static const char *const formats[] = {"raw", "qcow2", "vhd", "vpc", "vhdx", "vmdk"};
  for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
    if (strcmp(arg, formats[i]) == 0) return true;
  return false;
}

int vs_cli_read_option(struct vs_cli_read *r, int c, const char *arg, const char *prog) {
  if ((c == VS_CLI_OPT_PARSE_CACHE && r->no_parse_cache) ||
      (c == VS_CLI_OPT_NO_PARSE_CACHE && r->parse_cache)) {
    fprintf(stderr, "%s: --parse-cache and --no-parse-cache contradict each other\n", prog);
    return -1;
  }
  switch (c) {
  case VS_CLI_OPT_PARSE_CACHE:
    return vs_cli_set_once(&r->parse_cache, arg, "--parse-cache", prog) < 0 ? -1 : 1;
  case VS_CLI_OPT_NO_PARSE_CACHE:
    r->no_parse_cache = true;
    return 1;
  case 'w':
    if (r->n_watch_files == VS_CLI_MAX_REPEAT) {
      fprintf(stderr, "%s: at most %d --watch files\n", prog, VS_CLI_MAX_REPEAT);
      return -1;
    }
    r->watch_files[r->n_watch_files++] = arg;
    return 1;
  case VS_CLI_OPT_NO_DEFAULT_WATCH:
    r->no_default_watch = true;
    return 1;
  case VS_CLI_OPT_REG_WATCH:
    if (r->n_reg_watch_files == VS_CLI_MAX_REPEAT) {
      fprintf(stderr, "%s: at most %d --reg-watch files\n", prog, VS_CLI_MAX_REPEAT);
      return -1;
    }
    r->reg_watch_files[r->n_reg_watch_files++] = arg;
    return 1;
  case VS_CLI_OPT_NO_DEFAULT_REG_WATCH:
    r->no_default_reg_watch = true;
    return 1;
  case VS_CLI_OPT_STATS:
    r->stats = true;
    return 1;
  case 'b':
    if (vs_cli_set_once(&r->backend_arg, arg, "--backend", prog) < 0) return -1;
    if (strcmp(arg, "auto") == 0)
      r->backend = VS_BACKEND_AUTO;
    else if (strcmp(arg, "direct") == 0)
      r->backend = VS_BACKEND_DIRECT;
    else if (strcmp(arg, "guestfs") == 0)
      r->backend = VS_BACKEND_GUESTFS;
    else {
      fprintf(stderr, "%s: --backend takes auto, direct or guestfs, not \"%s\"\n", prog, arg);
      return -1;
    }
    /* XFS is read directly only when the user asks for the direct backend (SECURITY.md). */
    r->image.read_xfs = r->backend == VS_BACKEND_DIRECT;
    return 1;
  case VS_CLI_OPT_IMAGE_FORMAT:
    if (!is_image_format(arg)) {
      fprintf(stderr,
              "%s: --image-format takes raw, qcow2, vhd (or vpc), vhdx or vmdk, not \"%s\"\n", prog,
              arg);
      return -1;
    }
    if (vs_cli_set_once(&r->image.format, arg, "--image-format", prog) < 0) return -1;
    return 1;
  case VS_CLI_OPT_BACKING_DIR: {
    struct stat st;
    if (stat(arg, &st) < 0) {
      fprintf(stderr, "%s: --backing-dir %s: %s\n", prog, arg, strerror(errno));
      return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
      fprintf(stderr,
              "%s: --backing-dir %s: not a directory (give the directory that holds the "
              "backing files)\n",
              prog, arg);
      return -1;
    }
    if (r->image.n_backing_dirs == VS_CLI_MAX_REPEAT) {
      fprintf(stderr, "%s: at most %d --backing-dir options\n", prog, VS_CLI_MAX_REPEAT);
      return -1;
    }
    r->backing_dirs[r->image.n_backing_dirs++] = arg;
    r->image.backing_dirs = r->backing_dirs;
    return 1;
  }
  }
  return 0;
}

/* With --image-format given, an image whose signature says otherwise is refused before anything
 * reads it as what it is not (raw on a qcow2 file finds no file system, and the guestfs
 * fallback then fails in the appliance). NULL when it agrees. */
static char *format_mismatch(const char *path, const char *format) {
  bool raw_too = false;
  const char *is = vs_image_probe_format(path, &raw_too);
  const char *want = strcmp(format, "vpc") == 0 ? "vhd" : format;
  if (!is || strcmp(is, want) == 0 || (raw_too && strcmp(want, "raw") == 0))
    return NULL; /* the reader says why it cannot open it */
  if (strcmp(is, "raw") == 0)
    return vs_xasprintf("%s is not a %s image (no %s signature): drop --image-format or give raw",
                        path, want, want);
  return vs_xasprintf("%s is a %s image (not %s): drop --image-format or give %s", path, is, want,
                      is);
}

/* Opens a directory or, with the direct backend, an image. *NEEDS_GUESTFS is set (and NULL
 * returned) when the image is for the guestfs backend: asked for, or (under auto) holding
 * what the direct backend cannot read. */
static struct vs_source *open_source(const struct vs_cli_read *r, const char *path,
                                     const struct stat *st, bool *needs_guestfs,
                                     struct vs_err *err) {
  *needs_guestfs = false;
  if (S_ISDIR(st->st_mode)) return vs_source_open_dir(path, err);
  if (r->backend == VS_BACKEND_GUESTFS) {
    *needs_guestfs = true;
    return NULL;
  }
  struct vs_source *src = vs_source_open_image(&path, 1, &r->image, err);
  if (!src && err->code == ENOTSUP && r->backend == VS_BACKEND_AUTO) {
    /* Why the slow path: said unless --quiet. */
    if (r->quiet)
      vs_log(VS_LOG_INFO, "%s; trying libguestfs", vs_err_msg(err));
    else
      fprintf(stderr, "vmscope: %s; reading it through the libguestfs appliance\n",
              vs_err_msg(err));
    vs_err_clear(err);
    *needs_guestfs = true;
  }
  return src;
}

/* A source's identity and name. The id must not depend on the working directory or on how the
 * path was spelled ("web-01", "./web-01/", a symlink to it): the canonical absolute path, so
 * that two snapshots of one VM are one VM's. An NBD URI is its own identity. The name is a
 * tree's directory name, an image's file name without its image extension ("web-02.qcow2" is
 * web-02). */
static void set_identity(struct vs_feature *doc, const char *path, bool is_dir) {
  static const char *const image_exts[] = {".qcow2", ".qcow", ".img", ".raw",  ".qed",
                                           ".vmdk",  ".vdi",  ".vhd", ".vhdx", ".vpc"};
  _cleanup_(vs_freep) char *canon = vs_image_is_nbd_uri(path) ? NULL : realpath(path, NULL);
  const char *id = canon ? canon : path;
  const char *base = strrchr(id, '/');
  base = base && base[1] ? base + 1 : id;
  _cleanup_(vs_freep) char *name = vs_xstrdup(base);
  for (size_t i = 0; !is_dir && i < sizeof(image_exts) / sizeof(image_exts[0]); i++) {
    size_t n = strlen(name), e = strlen(image_exts[i]);
    if (n > e && strcasecmp(name + n - e, image_exts[i]) == 0) {
      name[n - e] = '\0';
      break;
    }
  }
  vs_feature_set_id(doc, id, name);
}

/* PROGRESS: the status line --stats prints around (NULL: none). */
static struct vs_feature *extract_doc(struct vs_extractor *x, struct vs_source *src,
                                      const char *path, bool stats,
                                      struct vs_cli_progress *progress, struct vs_err *err) {
  _cleanup_(vs_feature_freep) struct vs_feature *doc = vs_feature_new();
  set_identity(doc, path, strcmp(vs_source_kind(src), "dir") == 0);
  vs_feature_set_taken_at(doc, (int64_t)time(NULL));
  vs_feature_set_source(doc, vs_source_kind(src), vs_source_path(src), vs_source_backend(src));
  struct vs_extract_stats st;
  if (vs_extract(x, src, doc, &st, err) < 0) return NULL;
  if (stats)
    vs_cli_progress_printf(
        progress,
        "%s: %.1f ms (os %.1f, packages %.1f [%zu], accounts %.1f, services %.1f, sysctl "
        "%.1f, files %.1f [%zu parsed, %zu failed, %zu cached]), %zu settings, backend %s\n",
        path, st.seconds_total * 1e3, st.seconds_os * 1e3, st.seconds_packages * 1e3, st.packages,
        st.seconds_accounts * 1e3, st.seconds_services * 1e3, st.seconds_sysctl * 1e3,
        st.seconds_files * 1e3, st.files_parsed, st.files_failed, st.files_cached,
        vs_feature_count(doc), vs_source_backend(src));
  return vs_steal(&doc);
}

static void set_one(struct vs_cli_docs *out, struct vs_feature *doc) {
  out->docs = vs_xcalloc(1, sizeof(*out->docs));
  out->docs[0] = doc;
  out->n = 1;
}

/* A libguestfs batch's status line (progress.h), short enough for 80 columns: "vmscope:" as
 * the log lines say, not the subcommand's name. */
static void show_image_phase(struct vs_cli_progress *line, size_t i, size_t n, const char *path,
                             const char *what) {
  const char *base = strrchr(path, '/');
  vs_cli_progress_set(line, vs_now_monotonic(), "vmscope: libguestfs, image %zu of %zu: %s: %s",
                      i + 1, n, base && base[1] ? base + 1 : path, what);
}

static void show_batch_phase(struct vs_cli_progress *line, size_t n, const char *what) {
  vs_cli_progress_set(line, vs_now_monotonic(), "vmscope: libguestfs appliance for %zu image%s: %s",
                      n, n == 1 ? "" : "s", what);
}

/* The core's progress callback (source_guestfs.h). */
static void show_guestfs_phase(const struct vs_guestfs_event *ev, void *ctx) {
  struct vs_cli_progress *line = ctx;
  switch (ev->phase) {
  case VS_GUESTFS_CHECKING:
    show_batch_phase(line, ev->n_images, "checking the images");
    break;
  case VS_GUESTFS_LAUNCHING:
    show_batch_phase(line, ev->n_images,
                     ev->attempt > 1 ? "launching again (the first one died)" : "launching");
    break;
  case VS_GUESTFS_INSPECTING:
    show_batch_phase(line, ev->n_images, "finding the operating systems");
    break;
  case VS_GUESTFS_MOUNTING:
    show_image_phase(line, ev->image, ev->n_images, ev->path, "mounting");
    break;
  case VS_GUESTFS_READING:
    show_image_phase(line, ev->image, ev->n_images, ev->path, "reading files");
    break;
  case VS_GUESTFS_LISTING_APPS:
    show_image_phase(line, ev->image, ev->n_images, ev->path, "listing the applications");
    break;
  }
}

/* Inspects the images at INDEX[0..N) of PATHS through one appliance, showing its progress on
 * a terminal. */
static void inspect_guestfs(const struct vs_cli_read *r, struct vs_extractor *x,
                            const struct vs_watch *watch, char **paths, const size_t *index,
                            size_t n, struct vs_cli_docs *out) {
  struct vs_err err = {0};
  if (n > 1) {
    /* Our reader's checks first (the backing-file allow-list, extents, the output): an image
     * they refuse is that image's error, and the others still share one appliance. */
    _cleanup_(vs_freep) size_t *fine = vs_xcalloc(n, sizeof(size_t));
    size_t n_fine = 0;
    for (size_t k = 0; k < n; k++) {
      struct vs_image *img = vs_image_open(paths[index[k]], &r->image, &err);
      if (img)
        fine[n_fine++] = index[k];
      else
        out[index[k]].error = vs_xstrdup(vs_err_msg(&err));
      vs_err_clear(&err);
      vs_image_close(img);
    }
    if (n_fine < n) {
      if (n_fine) inspect_guestfs(r, x, watch, paths, fine, n_fine, out);
      return;
    }
  }
  const char **batch = vs_xcalloc(n, sizeof(char *));
  for (size_t k = 0; k < n; k++)
    batch[k] = paths[index[k]];
  double t0 = vs_now_monotonic();
  struct vs_cli_progress *line =
      vs_cli_progress_new(stderr, !r->quiet && isatty(STDERR_FILENO), 0, true);
  struct vs_guestfs *gfs =
      vs_guestfs_open_reporting(batch, n, &r->image, watch, show_guestfs_phase, line, &err);
  if (!gfs && n > 1) {
    vs_cli_progress_free(line);
    /* A batch that will not start: one appliance per image, so one bad image costs only
     * itself. */
    vs_log(VS_LOG_WARNING, "%s; retrying with one appliance per image", vs_err_msg(&err));
    vs_err_clear(&err);
    for (size_t k = 0; k < n; k++)
      inspect_guestfs(r, x, watch, paths, index + k, 1, out);
    free(batch);
    return;
  }
  if (r->stats && gfs)
    vs_cli_progress_printf(line, "libguestfs appliance for %zu image(s) up in %.1f s\n", n,
                           vs_now_monotonic() - t0);
  for (size_t k = 0; k < n; k++) {
    struct vs_source *src = gfs ? vs_guestfs_source(gfs, k, &err) : NULL;
    if (src) show_image_phase(line, k, n, paths[index[k]], "extracting the features");
    struct vs_feature *doc =
        src ? extract_doc(x, src, paths[index[k]], r->stats, line, &err) : NULL;
    if (doc)
      set_one(&out[index[k]], doc);
    else
      out[index[k]].error = vs_xstrdup(vs_err_msg(&err));
    vs_err_clear(&err);
    vs_source_free(src);
  }
  if (gfs) show_batch_phase(line, n, "shutting down");
  vs_guestfs_close(gfs);
  vs_cli_progress_free(line);
  free(batch);
}

/* A saved feature document, or a JSON array of them. */
static void load_json(const char *path, struct vs_cli_docs *out) {
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    out->error = vs_xasprintf("%s: not valid JSON at line %d, column %d: %s", path, jerr.line,
                              jerr.column, jerr.text);
    return;
  }
  struct vs_err err = {0};
  size_t n = json_is_array(root) ? json_array_size(root) : 1;
  out->docs = vs_xcalloc(n ? n : 1, sizeof(*out->docs));
  for (size_t i = 0; i < n; i++) {
    char *what = json_is_array(root) ? vs_xasprintf("%s[%zu]", path, i) : vs_xstrdup(path);
    struct vs_feature *doc =
        vs_feature_from_json(json_is_array(root) ? json_array_get(root, i) : root, what, &err);
    free(what);
    if (!doc) {
      out->error = vs_xstrdup(vs_err_msg(&err));
      vs_err_clear(&err);
      break;
    }
    out->docs[out->n++] = doc;
  }
  json_decref(root);
}

/* Whether PATH (ST its stat) is read as a feature document rather than extracted. */
static bool is_feature_doc(const char *path, const struct stat *st) {
  return S_ISREG(st->st_mode) && vs_has_suffix(path, ".json");
}

const char *vs_cli_image_option(const struct vs_cli_read *r, const char **what) {
  const char *option = NULL, *for_what = NULL;
  if (r->image.format)
    option = "--image-format", for_what = "which names an image file's format";
  else if (r->backend_arg)
    option = "--backend", for_what = "which says how to read images";
  else if (r->image.n_backing_dirs)
    option = "--backing-dir", for_what = "which says where images' backing files and extents lie";
  if (what) *what = for_what;
  return option;
}

bool vs_cli_refuse_unused_image_options(const struct vs_cli_read *r, char *const *paths, size_t n,
                                        const char *prog) {
  const char *why, *option = vs_cli_image_option(r, &why);
  if (!option) return false;
  const char *first = NULL, *what = NULL;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (vs_image_is_nbd_uri(paths[i]) || stat(paths[i], &st) < 0) return false;
    bool is_doc = is_feature_doc(paths[i], &st);
    if (!S_ISDIR(st.st_mode) && !is_doc) return false; /* an image: the options apply */
    if (!first) {
      first = paths[i];
      what = is_doc ? "a feature document" : "a directory (a guest's tree)";
    }
  }
  if (first)
    fprintf(stderr, "%s: %s is %s, not an image: drop %s, %s\n", prog, first, what, option, why);
  else
    fprintf(stderr, "%s: %s is for images, and no image is given: drop it\n", prog, option);
  return true;
}

int vs_cli_read_sources(const struct vs_cli_read *r_in, char **paths, size_t n,
                        struct vs_cli_docs *out, const char *prog) {
  struct vs_err err = {0};
  /* Standard output redirected to a file: no source, backing file or extent may be it (the
   * document would be written into an input: ">> disk.vhd" appends over its footer). */
  struct vs_cli_read r_out = *r_in;
  const struct vs_cli_read *r = &r_out;
  struct stat out_st;
  if (fstat(STDOUT_FILENO, &out_st) == 0 && S_ISREG(out_st.st_mode)) r_out.image.output = &out_st;
  _cleanup_(vs_watch_freep) struct vs_watch *watch = vs_cli_load_watch(r, prog);
  if (!watch) return -1;
  _cleanup_(vs_regwatch_freep) struct vs_regwatch *regwatch = vs_cli_load_regwatch(r, prog);
  if (!regwatch) return -1;
  _cleanup_(vs_parse_cache_freep) struct vs_parse_cache *cache = NULL; /* outlives X */
  bool cache_tried = false;
  _cleanup_(vs_extractor_freep) struct vs_extractor *x = NULL;
  _cleanup_(vs_freep) size_t *pending = vs_xcalloc(n ? n : 1, sizeof(size_t));
  size_t n_pending = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st = {.st_mode = S_IFREG}; /* an NBD URI is read as an image */
    out[i] = (struct vs_cli_docs){0};
    if (!vs_image_is_nbd_uri(paths[i]) && stat(paths[i], &st) < 0) {
      out[i].error = vs_xasprintf("%s: %s", paths[i], strerror(errno));
      continue;
    }
    if (r->image.output && !S_ISDIR(st.st_mode) && st.st_dev == out_st.st_dev &&
        st.st_ino == out_st.st_ino) {
      out[i].error = vs_msg_output_is_input(paths[i]);
      continue;
    }
    if (is_feature_doc(paths[i], &st)) {
      load_json(paths[i], &out[i]);
      continue;
    }
    if (r->image.format && !vs_image_is_nbd_uri(paths[i]) &&
        (out[i].error = format_mismatch(paths[i], r->image.format)))
      continue;
    if (!x && (x = vs_extractor_new(watch, &err))) vs_extractor_set_regwatch(x, regwatch);
    if (!x) {
      out[i].error = vs_xstrdup(vs_err_msg(&err));
      vs_err_clear(&err);
      continue;
    }
    if (!cache_tried) {
      cache_tried = true;
      if ((cache = vs_cli_open_parse_cache(r, prog))) vs_extractor_set_parse_cache(x, cache);
    }
    bool needs_guestfs = false;
    struct vs_source *src = open_source(r, paths[i], &st, &needs_guestfs, &err);
    struct vs_feature *doc = src ? extract_doc(x, src, paths[i], r->stats, NULL, &err) : NULL;
    if (doc)
      set_one(&out[i], doc);
    else if (needs_guestfs)
      pending[n_pending++] = i;
    else
      out[i].error = vs_xstrdup(vs_err_msg(&err));
    vs_err_clear(&err);
    vs_source_free(src);
  }
  if (n_pending) inspect_guestfs(r, x, watch, paths, pending, n_pending, out);
  return 0;
}

void vs_cli_docs_clear(struct vs_cli_docs *d) {
  for (size_t i = 0; i < d->n; i++)
    vs_feature_free(d->docs[i]);
  free(d->docs);
  free(d->error);
  *d = (struct vs_cli_docs){0};
}
