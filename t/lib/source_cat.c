/* t/lib/source_cat: test helper. Opens disk images with the direct backend (source_image.h) and
 * runs each OP PATH pair through the vs_source API: "cat" writes the file's bytes, "ls" its
 * sorted names one a line, "stat" "TYPE SIZE" (the link itself), "readlink" the target. Exit
 * 1 with the message of the first failure. Usage: source_cat IMAGE... -- OP PATH... */
#include "source_image.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(struct vs_source *src, const char *op, const char *path, struct vs_err *err) {
  if (strcmp(op, "cat") == 0) {
    struct vs_buf b = {0};
    int rc = vs_source_read(src, path, 64u << 20, &b, err);
    if (rc == 0 && b.len && fwrite(b.data, 1, b.len, stdout) != b.len) rc = -1;
    vs_buf_free(&b);
    return rc;
  }
  if (strcmp(op, "ls") == 0) {
    char **names = NULL;
    size_t n = 0;
    bool truncated = false;
    if (vs_source_list(src, path, &names, &n, &truncated, err) < 0) return -1;
    for (size_t i = 0; i < n; i++)
      printf("%s\n", names[i]);
    vs_strv_free(names, n);
    return 0;
  }
  if (strcmp(op, "stat") == 0) {
    struct vs_stat st;
    if (vs_source_stat(src, path, false, &st, err) < 0) return -1;
    printf("%s %" PRIu64 "\n", vs_ftype_name(st.type), st.size);
    return 0;
  }
  if (strcmp(op, "readlink") == 0) {
    char *t = NULL;
    if (vs_source_readlink(src, path, &t, err) < 0) return -1;
    printf("%s\n", t);
    free(t);
    return 0;
  }
  return vs_err_set(err, EINVAL, "%s: unknown operation (cat, ls, stat, readlink)", op);
}

int main(int argc, char **argv) {
  int sep = 1;
  while (sep < argc && strcmp(argv[sep], "--") != 0)
    sep++;
  if (sep == 1 || sep == argc || (argc - sep - 1) % 2 != 0) {
    fprintf(stderr, "usage: source_cat IMAGE... -- OP PATH...\n");
    return 2;
  }
  struct vs_err err = {0};
  /* The direct reader as --backend direct has it: XFS read too. */
  struct vs_image_opts opts = {.read_xfs = true};
  struct vs_source *src =
      vs_source_open_image((const char *const *)argv + 1, (size_t)(sep - 1), &opts, &err);
  int rc = 0;
  for (int i = sep + 1; src && rc == 0 && i < argc; i += 2)
    rc = run(src, argv[i], argv[i + 1], &err);
  if (!src || rc < 0) {
    fprintf(stderr, "%s\n", vs_err_msg(&err));
    rc = 1;
  }
  vs_err_clear(&err);
  vs_source_free(src);
  return rc;
}
