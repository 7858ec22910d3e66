#include "fixture.h"
#include "source.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *read_str(struct vs_source *src, const char *path, struct vs_buf *b,
                            struct vs_err *err) {
  vs_err_clear(err);
  if (vs_source_read(src, path, 1 << 20, b, err) < 0) return NULL;
  vs_buf_add(b, "", 0);
  return b->data;
}

/* Returns false when the FIFO cannot be made here. */
static bool make_tree(const char *root) {
  fx_write(root, "etc/hostname", "guest\n");
  fx_write(root, "etc/real.conf", "real\n");
  fx_symlink(root, "etc/abs.conf", "/etc/real.conf");
  fx_symlink(root, "etc/rel.conf", "../etc/./real.conf");
  fx_symlink(root, "etc/escape", "../../../../../../etc/hostname");
  fx_symlink(root, "etc/loop1", "loop2");
  fx_symlink(root, "etc/loop2", "loop1");
  fx_symlink(root, "bin", "usr/bin");
  fx_write(root, "usr/bin/tool", "#!/bin/sh\n");
  fx_write(root, "etc/d/a.conf", "a");
  fx_write(root, "etc/d/b.conf", "b");
  fx_write(root, "etc/d/.hidden.conf", "h");
  fx_write(root, "etc/d/c.txt", "c");
  fx_write(root, "etc/big", "0123456789");
  char *fifo = NULL;
  if (asprintf(&fifo, "%s/etc/fifo", root) < 0) return false;
  bool made = mkfifo(fifo, 0644) == 0;
  free(fifo);
  return made;
}

static void test_links_resolve_inside(struct vs_source *src) {
  struct vs_err err = {0};
  struct vs_buf b = {0};
  is_str(read_str(src, "/etc/abs.conf", &b, &err), "real\n",
         "an absolute symlink resolves inside the tree, as under chroot");
  is_str(read_str(src, "/etc/rel.conf", &b, &err), "real\n", "a relative symlink resolves");
  is_str(read_str(src, "/etc/escape", &b, &err), "guest\n",
         "a link climbing out with ../.. stops at the tree's root, never the host's /etc");
  is_str(read_str(src, "/bin/tool", &b, &err), "#!/bin/sh\n",
         "a symlinked directory in the middle of a path is followed (merged /usr)");
  vs_buf_free(&b);
  vs_err_clear(&err);
}

static void test_read_refusals(struct vs_source *src) {
  struct vs_err err = {0};
  struct vs_buf b = {0};
  ok(read_str(src, "/etc/loop1", &b, &err) == NULL && err.code == ELOOP && strstr(err.msg, "loop"),
     "a symlink loop fails with ELOOP and says so");
  ok(read_str(src, "/etc/fifo", &b, &err) == NULL && strstr(err.msg, "FIFO"),
     "a FIFO is refused without being opened for reading (no hang)");
  ok(read_str(src, "/etc", &b, &err) == NULL && strstr(err.msg, "directory"),
     "a directory is not read as a file");
  vs_err_clear(&err);
  ok(vs_source_read(src, "/etc/big", 5, &b, &err) < 0 && err.code == EFBIG &&
         strstr(err.msg, "over the limit"),
     "a file over the caller's size limit is refused with EFBIG");
  ok(read_str(src, "/etc/missing", &b, &err) == NULL && err.code == ENOENT &&
         strstr(err.msg, "/etc/missing"),
     "a missing file fails with ENOENT naming the path");
  ok(read_str(src, "/etc/hostname/x", &b, &err) == NULL && err.code == ENOTDIR,
     "a file used as a directory fails with ENOTDIR");
  vs_buf_free(&b);
  vs_err_clear(&err);
}

static void test_resolve_and_stat(struct vs_source *src) {
  struct vs_err err = {0};
  char *res = NULL;
  ok(vs_source_resolve(src, "/etc/abs.conf", false, &res, &err) == 0 &&
         strcmp(res, "/etc/abs.conf") == 0,
     "resolving without following the last link keeps it");
  free(res);
  ok(vs_source_resolve(src, "/../../etc/./abs.conf", true, &res, &err) == 0 &&
         strcmp(res, "/etc/real.conf") == 0,
     "resolving follows links and folds . and .. above the root");
  free(res);
  struct vs_stat st;
  ok(vs_source_stat(src, "/etc/abs.conf", false, &st, &err) == 0 && st.type == VS_FT_LNK,
     "lstat sees a symlink");
  ok(vs_source_stat(src, "/etc/abs.conf", true, &st, &err) == 0 && st.type == VS_FT_REG &&
         st.size == 5,
     "stat follows it to the file");
  vs_err_clear(&err);
}

static void test_glob_and_list(struct vs_source *src) {
  struct vs_err err = {0};
  char **paths = NULL;
  size_t n = 0;
  bool trunc = true;
  ok(vs_source_glob(src, "/etc/d/*.conf", &paths, &n, &trunc, &err) == 0 && n == 2 &&
         strcmp(paths[0], "/etc/d/a.conf") == 0 && strcmp(paths[1], "/etc/d/b.conf") == 0 && !trunc,
     "a glob lists matching files sorted, without dot files");
  vs_strv_free(paths, n);
  ok(vs_source_glob(src, "/etc/*/b.conf", &paths, &n, &trunc, &err) == 0 && n == 1,
     "a wildcard in a middle component works");
  vs_strv_free(paths, n);
  ok(vs_source_glob(src, "/etc/none/*", &paths, &n, &trunc, &err) == 0 && n == 0,
     "a glob under a missing directory yields nothing");
  vs_strv_free(paths, n);
  ok(vs_source_glob(src, "etc/x", &paths, &n, &trunc, &err) < 0, "a relative pattern is refused");
  vs_err_clear(&err);

  char **names = NULL;
  ok(vs_source_list(src, "/etc/d", &names, &n, &trunc, &err) == 0 && n == 4 &&
         strcmp(names[0], ".hidden.conf") == 0,
     "listing a directory gives every name, sorted");
  vs_strv_free(names, n);
  vs_err_clear(&err);
}

int main(void) {
  plan_no_plan();
  char *root = fx_tmpdir();
  if (!make_tree(root)) return 2;

  struct vs_err err = {0};
  struct vs_source *src = vs_source_open_dir(root, &err);
  ok(src != NULL, "a directory opens as a source");
  test_links_resolve_inside(src);
  test_read_refusals(src);
  test_resolve_and_stat(src);
  test_glob_and_list(src);
  vs_source_free(src);

  ok(vs_source_open_dir("/nonexistent/tree", &err) == NULL && strstr(err.msg, "/nonexistent/tree"),
     "a missing tree fails naming it");
  vs_err_clear(&err);
  fx_rmtree(root);
  free(root);
  return done_testing();
}
