#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void die(const char *what, const char *path) {
  printf("Bail out! fixture: %s %s: %s\n", what, path, strerror(errno));
  exit(2);
}

char *fx_tmpdir(void) {
  const char *tmp = getenv("TMPDIR");
  char *p = NULL;
  if (asprintf(&p, "%s/vstest-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 || !mkdtemp(p))
    die("mkdtemp", p ? p : "");
  return p;
}

static char *join(const char *root, const char *rel) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", root, rel[0] == '/' ? rel + 1 : rel) < 0) die("asprintf", rel);
  return p;
}

static void mkparents(char *path) {
  for (char *s = path + 1; (s = strchr(s, '/')); s++) {
    *s = '\0';
    if (mkdir(path, 0755) < 0 && errno != EEXIST) die("mkdir", path);
    *s = '/';
  }
}

void fx_write_bytes(const char *root, const char *rel, const void *data, size_t len) {
  char *p = join(root, rel);
  mkparents(p);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0) die("write", p);
  free(p);
}

void fx_write(const char *root, const char *rel, const char *content) {
  fx_write_bytes(root, rel, content, strlen(content));
}

void fx_symlink(const char *root, const char *rel, const char *target) {
  char *p = join(root, rel);
  mkparents(p);
  if (symlink(target, p) < 0) die("symlink", p);
  free(p);
}

void fx_mkdir(const char *root, const char *rel) {
  char *p = join(root, rel);
  mkparents(p);
  if (mkdir(p, 0755) < 0 && errno != EEXIST) die("mkdir", p);
  free(p);
}

void fx_chmod(const char *root, const char *rel, mode_t mode) {
  char *p = join(root, rel);
  if (chmod(p, mode) < 0) die("chmod", p);
  free(p);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (flag == FTW_DP) chmod(path, 0700); /* tests leave mode-000 directories behind */
  return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

void fx_rmtree(const char *root) {
  nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int fx_run(char *const argv[]) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int st = 0, rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

bool fx_have(const char *program) {
  char *argv[] = {(char *)program, "--version", NULL};
  return fx_run(argv) == 0;
}

bool fx_mapped(const char *name) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return false;
  char line[4096];
  bool found = false;
  while (!found && fgets(line, sizeof(line), f))
    found = strstr(line, name) != NULL;
  fclose(f);
  return found;
}
