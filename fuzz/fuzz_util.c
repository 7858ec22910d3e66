/* fuzz_util.c: see fuzz.h. */
#include "fuzz.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[PATH_MAX];

static void remove_dir(void) {
  char cmd[PATH_MAX + 16];
  /* Only our own mkdtemp directory, whose name has no shell metacharacters. */
  if (dir[0] && snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) < (int)sizeof(cmd))
    (void)!system(cmd);
}

const char *fuzz_dir(void) {
  if (!dir[0]) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (snprintf(dir, sizeof(dir), "%s/vsfuzz-XXXXXX", base) >= (int)sizeof(dir) || !mkdtemp(dir))
      abort();
    atexit(remove_dir);
  }
  return dir;
}

const char *fuzz_file(const char *name, const uint8_t *data, size_t size) {
  static char path[PATH_MAX];
  if (snprintf(path, sizeof(path), "%s/%s", fuzz_dir(), name) >= (int)sizeof(path)) abort();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) abort();
  size_t done = 0;
  while (done < size) {
    ssize_t w = write(fd, data + done, size - done);
    if (w <= 0) abort();
    done += (size_t)w;
  }
  close(fd);
  return path;
}
