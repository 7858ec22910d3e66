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
};

static struct vs_source *open_source(const char *path, const struct inspect_opts *o,
                                     struct vs_err *err) {
  struct stat st;
  if (stat(path, &st) < 0) {
    vs_err_set(err, errno, "%s: %s", path, strerror(errno));
    return NULL;
  }
  if (S_ISDIR(st.st_mode)) return vs_source_open_dir(path, err);
  if (o->backend == BACKEND_GUESTFS) {
    vs_err_set(err, ENOTSUP, "%s: the guestfs backend is not built yet", path);
    return NULL;
  }
  return vs_source_open_image(&path, 1, &o->image, err);
}

static struct vs_feature *inspect_one(struct vs_extractor *x, const char *path,
                                      const struct inspect_opts *o, struct vs_err *err) {
  bool stats = o->stats;
  _cleanup_(vs_source_freep) struct vs_source *src = open_source(path, o, err);
  if (!src) return NULL;
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
            "%.1f, files %.1f [%zu parsed, %zu failed]), %zu settings\n",
            path, st.seconds_total * 1e3, st.seconds_os * 1e3, st.seconds_packages * 1e3,
            st.packages, st.seconds_accounts * 1e3, st.seconds_services * 1e3,
            st.seconds_sysctl * 1e3, st.seconds_files * 1e3, st.files_parsed, st.files_failed,
            vs_feature_count(doc));
  return vs_steal(&doc);
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
  int n_sources = argc - optind, status = VS_EXIT_OK;
  json_t *array = n_sources > 1 && !text ? json_array() : NULL;
  for (int i = optind; i < argc; i++) {
    struct vs_feature *doc = inspect_one(x, argv[i], &o, &err);
    if (!doc) {
      fprintf(stderr, "vmscope inspect: %s\n", vs_err_msg(&err));
      vs_err_clear(&err);
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
