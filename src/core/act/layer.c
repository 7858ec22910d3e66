#include "layer.h"

#include "image.h"
#include "qcow2new.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A layer is a new qcow2 image over its base (hyper/qcow2new writes it). */
struct vs_layer {
  struct vs_qcow2new *image;
};

static bool same_inode(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Whether the file PATH names would appear in directory DIR or below it. */
static bool lies_inside(const char *path, const struct stat *dir) {
  char *copy = vs_xstrdup(path);
  char *real = realpath(dirname(copy), NULL);
  free(copy);
  bool inside = false;
  while (real && !inside) {
    struct stat st;
    inside = stat(real, &st) == 0 && same_inode(&st, dir);
    char *slash = strrchr(real, '/');
    if (!slash || (slash == real && !real[1])) break;
    slash[slash == real] = 0; /* "/a" becomes "/" */
  }
  free(real);
  return inside;
}

static int refuse_input(const char *path, const char *input, struct vs_err *err) {
  if (strcmp(path, input) == 0)
    return vs_err_set(err, EINVAL,
                      "%s is an input: an output never replaces an input; write it to a new file",
                      path);
  return vs_err_set(err, EINVAL,
                    "%s is the input %s under another name: an output never replaces an input; "
                    "write it to a new file",
                    path, input);
}

int vs_layer_check_output(const char *path, const char *const *inputs, size_t n_inputs,
                          const struct vs_image *const *chains, size_t n_chains, bool force,
                          struct vs_err *err) {
  struct stat lst, st;
  bool exists = lstat(path, &lst) == 0;
  if (!exists && errno != ENOENT) return vs_err_set(err, errno, "%s: %s", path, strerror(errno));
  if (!exists) {
    char *copy = vs_xstrdup(path);
    const char *dir = dirname(copy);
    struct stat dst;
    bool is_dir = stat(dir, &dst) == 0 && S_ISDIR(dst.st_mode);
    if (!is_dir)
      vs_err_set(err, ENOENT, "%s: no directory %s to write it in: create it first", path, dir);
    free(copy);
    if (!is_dir) return -1;
  }
  bool target = exists && stat(path, &st) == 0; /* what a symlink there points to */
  if (target && S_ISDIR(st.st_mode))
    return vs_err_set(err, EISDIR, "%s is a directory: give the name of a file to write", path);
  for (size_t i = 0; i < n_inputs; i++) {
    struct stat ist;
    if (stat(inputs[i], &ist) < 0) continue;
    if (S_ISDIR(ist.st_mode) && lies_inside(path, &ist))
      return vs_err_set(err, EINVAL,
                        "%s lies inside the input directory %s: write it outside the inputs", path,
                        inputs[i]);
    if (target && same_inode(&st, &ist)) return refuse_input(path, inputs[i], err);
  }
  for (size_t i = 0; i < n_chains; i++) {
    for (const struct vs_image *img = chains[i]; target && img; img = vs_image_backing(img)) {
      struct stat ist;
      if (stat(vs_image_path(img), &ist) < 0 || !same_inode(&st, &ist)) continue;
      if (img == chains[i]) return refuse_input(path, vs_image_path(img), err);
      return vs_err_set(err, EINVAL,
                        "%s is %s, in the backing chain of the input %s: an output never "
                        "replaces an image an input reads; write it to a new file",
                        path, vs_image_path(img), vs_image_path(chains[i]));
    }
  }
  if (exists && !S_ISREG(lst.st_mode) && !S_ISLNK(lst.st_mode))
    return vs_err_set(err, EINVAL, "%s is not a regular file: not replaced; give a new file name",
                      path);
  if (target && !S_ISREG(st.st_mode))
    return vs_err_set(err, EINVAL,
                      "%s points to something that is not a regular file: not replaced; give a "
                      "new file name",
                      path);
  if (exists && !force)
    return vs_err_set(err, EEXIST,
                      "%s exists already: not replaced (choose another name, remove it, or give "
                      "--force to replace it)",
                      path);
  return 0;
}

struct vs_layer *vs_layer_create(const char *path, uint64_t virtual_size, unsigned cluster_bits,
                                 const char *backing, const char *backing_format,
                                 struct vs_err *err) {
  struct vs_qcow2new *image =
      vs_qcow2new_create(path, virtual_size, cluster_bits, backing, backing_format, 0644, err);
  if (!image) return NULL;
  struct vs_layer *l = vs_xcalloc(1, sizeof(*l));
  l->image = image;
  return l;
}

int vs_layer_add_data(struct vs_layer *l, uint64_t off, const void *data, struct vs_err *err) {
  return vs_qcow2new_add_data(l->image, off, data, err);
}

int vs_layer_add_zero(struct vs_layer *l, uint64_t off, struct vs_err *err) {
  return vs_qcow2new_add_zero(l->image, off, err);
}

void vs_layer_writeback(struct vs_layer *l) {
  vs_qcow2new_writeback(l->image);
}

int vs_layer_finish(struct vs_layer *l, struct vs_err *err) {
  int rc = vs_qcow2new_finish(l->image, err);
  free(l);
  return rc;
}

void vs_layer_abort(struct vs_layer *l) {
  if (!l) return;
  vs_qcow2new_abort(l->image);
  free(l);
}

void vs_layer_abortp(struct vs_layer **l) {
  vs_layer_abort(*l);
}

uint64_t vs_layer_clusters(const struct vs_layer *l) {
  return vs_qcow2new_clusters(l->image);
}
uint64_t vs_layer_data_clusters(const struct vs_layer *l) {
  return vs_qcow2new_data_clusters(l->image);
}
