/* vmscope inspect: SOURCE... -> feature documents on standard output. */
#include "cli.h"

#include "extract.h"
#include "feature.h"
#include "source.h"
#include "watch.h"

#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *out) {
  fputs("Usage: vmscope inspect [OPTIONS] SOURCE...\n"
        "\n"
        "Extract the feature document of each SOURCE: a guest's root file system as a\n"
        "directory on this host (a mounted guest, a container rootfs, a debootstrap tree),\n"
        "or a guest disk image (raw or qcow2). One document is printed for one source, a\n"
        "JSON array for several.\n"
        "\n"
        "Options:\n"
        "  -f, --format json|text  output format (default json); text prints one\n"
        "                          \"key = value\" line per setting after a header\n"
        "  -w, --watch FILE        add the watch entries of FILE (\"PATTERN [LENS]\" per\n"
        "                          line, \"!PATTERN\" removes one) to the watch list;\n"
        "                          may be given more than once\n"
        "      --no-default-watch  start from an empty watch list instead of the default\n"
        "      --compact           JSON on one line per document\n"
        "      --stats             print extraction timings per phase to standard error\n"
        "  -b, --backend auto|direct|guestfs\n"
        "                          how to read disk images (default auto): direct reads\n"
        "                          ext2/3/4 on raw and qcow2 itself, with no appliance;\n"
        "                          guestfs uses a libguestfs appliance (LVM, XFS, btrfs...);\n"
        "                          auto tries direct and falls back to guestfs\n"
        "      --image-format raw|qcow2\n"
        "                          the images' format, instead of probing it\n"
        "      --backing-dir DIR   a directory backing files may lie in (repeatable; default:\n"
        "                          the image's own directory)\n"
        "  -h, --help              this help\n"
        "\n"
        "Exit status: 0 ok, 1 some source failed (the others are still printed), 2 usage.\n",
        out);
}

static void print_text(const struct vs_feature *doc) {
  printf("# %s (%s %s, %s)\n", vs_feature_name(doc),
         vs_feature_os(doc, "distro") ? vs_feature_os(doc, "distro") : "unknown",
         vs_feature_os(doc, "version") ? vs_feature_os(doc, "version") : "?",
         vs_feature_source(doc, "path"));
  size_t n;
  const char **keys = vs_feature_keys(doc, &n);
  for (size_t i = 0; i < n; i++)
    printf("%s = %s\n", keys[i], vs_feature_get(doc, keys[i]));
  free(keys);
  const char *path, *reason;
  for (size_t i = 0; vs_feature_skipped(doc, i, &path, &reason); i++)
    printf("# skipped %s: %s\n", path, reason);
}

struct inspect_opts {
  bool stats;
  enum { BACKEND_AUTO, BACKEND_DIRECT, BACKEND_GUESTFS } backend;
  struct vs_image_opts image;
  const struct vs_watch *watch;
};

/* Opens a directory or, with the direct backend, an image. *NEEDS_GUESTFS is set (and NULL
 * returned) when the image is for the guestfs backend: asked for, or (under auto) holding
 * what the direct backend cannot read. */
static struct vs_source *open_source(const char *path, const struct inspect_opts *o,
                                     bool *needs_guestfs, struct vs_err *err) {
  struct stat st;
  *needs_guestfs = false;
  if (stat(path, &st) < 0) {
    vs_err_set(err, errno, "%s: %s", path, strerror(errno));
    return NULL;
  }
  if (S_ISDIR(st.st_mode)) return vs_source_open_dir(path, err);
  if (o->backend == BACKEND_GUESTFS) {
    *needs_guestfs = true;
    return NULL;
  }
  struct vs_source *src = vs_source_open_image(&path, 1, &o->image, err);
  if (!src && err->code == ENOTSUP && o->backend == BACKEND_AUTO) {
    vs_log(VS_LOG_INFO, "%s; trying libguestfs", vs_err_msg(err));
    vs_err_clear(err);
    *needs_guestfs = true;
  }
  return src;
}

static struct vs_feature *extract_doc(struct vs_extractor *x, struct vs_source *src,
                                      const char *path, bool stats, struct vs_err *err) {
  _cleanup_(vs_feature_freep) struct vs_feature *doc = vs_feature_new();
  const char *base = strrchr(path, '/');
  base = base && base[1] ? base + 1 : path;
  vs_feature_set_id(doc, path, base);
  vs_feature_set_taken_at(doc, (int64_t)time(NULL));
  vs_feature_set_source(doc, vs_source_kind(src), vs_source_path(src), vs_source_backend(src));
  struct vs_extract_stats st;
  if (vs_extract(x, src, doc, &st, err) < 0) return NULL;
  if (stats)
    fprintf(stderr,
            "%s: %.1f ms (os %.1f, packages %.1f [%zu], accounts %.1f, services %.1f, sysctl "
            "%.1f, files %.1f [%zu parsed, %zu failed]), %zu settings, backend %s\n",
            path, st.seconds_total * 1e3, st.seconds_os * 1e3, st.seconds_packages * 1e3,
            st.packages, st.seconds_accounts * 1e3, st.seconds_services * 1e3,
            st.seconds_sysctl * 1e3, st.seconds_files * 1e3, st.files_parsed, st.files_failed,
            vs_feature_count(doc), vs_source_backend(src));
  return vs_steal(&doc);
}

/* Inspects the images at INDEX[0..N) of PATHS through one appliance, filling DOCS and ERRS. */
static void inspect_guestfs(struct vs_extractor *x, char **paths, const size_t *index, size_t n,
                            const struct inspect_opts *o, struct vs_feature **docs, char **errs) {
  const char **batch = vs_xcalloc(n, sizeof(char *));
  for (size_t k = 0; k < n; k++)
    batch[k] = paths[index[k]];
  struct vs_err err = {0};
  double t0 = vs_now_monotonic();
  struct vs_guestfs *gfs = vs_guestfs_open(batch, n, &o->image, o->watch, &err);
  if (!gfs && n > 1) {
    /* A batch that will not start: one appliance per image, so one bad image costs only
     * itself. */
    vs_log(VS_LOG_WARNING, "%s; retrying with one appliance per image", vs_err_msg(&err));
    vs_err_clear(&err);
    for (size_t k = 0; k < n; k++)
      inspect_guestfs(x, paths, index + k, 1, o, docs, errs);
    free(batch);
    return;
  }
  if (o->stats && gfs)
    fprintf(stderr, "libguestfs appliance for %zu image(s) up in %.1f s\n", n,
            vs_now_monotonic() - t0);
  for (size_t k = 0; k < n; k++) {
    struct vs_source *src = gfs ? vs_guestfs_source(gfs, k, &err) : NULL;
    if (src) docs[index[k]] = extract_doc(x, src, paths[index[k]], o->stats, &err);
    if (!docs[index[k]]) errs[index[k]] = vs_xstrdup(vs_err_msg(&err));
    vs_err_clear(&err);
    vs_source_free(src);
  }
  vs_guestfs_close(gfs);
  free(batch);
}

int vs_cmd_inspect(int argc, char **argv) {
  static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                       {"watch", required_argument, NULL, 'w'},
                                       {"no-default-watch", no_argument, NULL, 'N'},
                                       {"compact", no_argument, NULL, 'c'},
                                       {"stats", no_argument, NULL, 's'},
                                       {"backend", required_argument, NULL, 'b'},
                                       {"image-format", required_argument, NULL, 'F'},
                                       {"backing-dir", required_argument, NULL, 'B'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  bool text = false, compact = false, defaults = true;
  struct inspect_opts o = {0};
  const char *backing_dirs[64];
  o.image.backing_dirs = backing_dirs;
  const char *watch_files[64];
  size_t n_watch = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "f:w:h", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      if (strcmp(optarg, "json") == 0)
        text = false;
      else if (strcmp(optarg, "text") == 0)
        text = true;
      else {
        fprintf(stderr, "vmscope inspect: --format takes json or text, not \"%s\"\n", optarg);
        return VS_EXIT_USAGE;
      }
      break;
    case 'w':
      if (n_watch == sizeof(watch_files) / sizeof(watch_files[0])) {
        fprintf(stderr, "vmscope inspect: at most 64 --watch files\n");
        return VS_EXIT_USAGE;
      }
      watch_files[n_watch++] = optarg;
      break;
    case 'N':
      defaults = false;
      break;
    case 'c':
      compact = true;
      break;
    case 's':
      o.stats = true;
      break;
    case 'b':
      if (strcmp(optarg, "auto") == 0)
        o.backend = BACKEND_AUTO;
      else if (strcmp(optarg, "direct") == 0)
        o.backend = BACKEND_DIRECT;
      else if (strcmp(optarg, "guestfs") == 0)
        o.backend = BACKEND_GUESTFS;
      else {
        fprintf(stderr, "vmscope inspect: --backend takes auto, direct or guestfs, not \"%s\"\n",
                optarg);
        return VS_EXIT_USAGE;
      }
      break;
    case 'F':
      if (strcmp(optarg, "raw") != 0 && strcmp(optarg, "qcow2") != 0) {
        fprintf(stderr, "vmscope inspect: --image-format takes raw or qcow2, not \"%s\"\n", optarg);
        return VS_EXIT_USAGE;
      }
      o.image.format = optarg;
      break;
    case 'B':
      if (o.image.n_backing_dirs == sizeof(backing_dirs) / sizeof(backing_dirs[0])) {
        fprintf(stderr, "vmscope inspect: at most 64 --backing-dir options\n");
        return VS_EXIT_USAGE;
      }
      backing_dirs[o.image.n_backing_dirs++] = optarg;
      break;
    case 'h':
      usage(stdout);
      return VS_EXIT_OK;
    default:
      usage(stderr);
      return VS_EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    fprintf(stderr, "vmscope inspect: no SOURCE given\n");
    usage(stderr);
    return VS_EXIT_USAGE;
  }
  struct vs_err err = {0};
  _cleanup_(vs_watch_freep) struct vs_watch *watch =
      defaults ? vs_watch_new_default() : vs_watch_new_empty();
  for (size_t i = 0; i < n_watch; i++) {
    if (vs_watch_load_file(watch, watch_files[i], &err) < 0) {
      fprintf(stderr, "vmscope inspect: %s\n", vs_err_msg(&err));
      vs_err_clear(&err);
      return VS_EXIT_USAGE;
    }
  }
  _cleanup_(vs_extractor_freep) struct vs_extractor *x = vs_extractor_new(watch, &err);
  if (!x) {
    fprintf(stderr, "vmscope inspect: %s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return VS_EXIT_PARTIAL;
  }
  o.watch = watch;
  size_t n_sources = (size_t)(argc - optind);
  char **paths = argv + optind;
  struct vs_feature **docs = vs_xcalloc(n_sources, sizeof(*docs));
  char **errs = vs_xcalloc(n_sources, sizeof(char *));
  size_t *pending = vs_xcalloc(n_sources, sizeof(size_t)), n_pending = 0;
  for (size_t i = 0; i < n_sources; i++) {
    bool needs_guestfs = false;
    struct vs_source *src = open_source(paths[i], &o, &needs_guestfs, &err);
    if (src) docs[i] = extract_doc(x, src, paths[i], o.stats, &err);
    if (needs_guestfs)
      pending[n_pending++] = i;
    else if (!docs[i])
      errs[i] = vs_xstrdup(vs_err_msg(&err));
    vs_err_clear(&err);
    vs_source_free(src);
  }
  if (n_pending) inspect_guestfs(x, paths, pending, n_pending, &o, docs, errs);

  int status = VS_EXIT_OK;
  json_t *array = n_sources > 1 && !text ? json_array() : NULL;
  for (size_t i = 0; i < n_sources; i++) {
    struct vs_feature *doc = docs[i];
    if (!doc) {
      fprintf(stderr, "vmscope inspect: %s\n", errs[i] ? errs[i] : "failed");
      free(errs[i]);
      status = VS_EXIT_PARTIAL;
      continue;
    }
    if (text) {
      print_text(doc);
    } else if (array) {
      json_array_append_new(array, vs_feature_to_json(doc));
    } else {
      char *s = vs_feature_dumps(doc, !compact);
      puts(s);
      free(s);
    }
    vs_feature_free(doc);
  }
  free(docs);
  free(errs);
  free(pending);
  if (array) {
    char *s = json_dumps(array, JSON_SORT_KEYS | (compact ? JSON_COMPACT : JSON_INDENT(2)));
    json_decref(array);
    if (!s) {
      fprintf(stderr, "vmscope inspect: out of memory serializing the documents\n");
      return VS_EXIT_PARTIAL;
    }
    puts(s);
    free(s);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "vmscope inspect: writing standard output failed\n");
    return VS_EXIT_PARTIAL;
  }
  return status;
}
