/* replay.c: runs a fuzz target over files (or every file of directories) given on the command
 * line, as TAP: one test per input, "ok" when the target returns (a crash or a sanitizer
 * report ends the program, which the test harness sees). */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int n_tests;

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    printf("not ok %d - %s: %s\n", ++n_tests, path, strerror(errno));
    return 1;
  }
  size_t cap = 1 << 16, len = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) {
      uint8_t *bigger = realloc(buf, cap *= 2);
      if (!bigger) free(buf);
      buf = bigger;
    }
  }
  fclose(f);
  if (!buf) {
    printf("not ok %d - %s: out of memory\n", ++n_tests, path);
    return 1;
  }
  fflush(stdout);
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  printf("ok %d - %s (%zu bytes)\n", ++n_tests, path, len);
  return 0;
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
  int failed = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      DIR *d = opendir(argv[i]);
      struct dirent *e;
      char **names = NULL;
      size_t n = 0;
      while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char **more = realloc(names, (n + 1) * sizeof(*names));
        if (!more) abort();
        names = more;
        if (asprintf(&names[n++], "%s/%s", argv[i], e->d_name) < 0) abort();
      }
      if (d) closedir(d);
      qsort(names, n, sizeof(*names), cmp);
      for (size_t k = 0; k < n; k++) {
        failed += run_file(names[k]);
        free(names[k]);
      }
      free(names);
    } else {
      failed += run_file(argv[i]);
    }
  }
  printf("1..%d\n", n_tests);
  return failed ? 1 : 0;
}
