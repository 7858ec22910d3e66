/* fuzz_hive: a Windows registry hive, as the extractor meets it (src/core/inspect/extract_win.c:
 * hivex on a memfd copy, the bounded walks of the Uninstall, Services and SAM keys and the
 * watched registry values). The input is the guest's SOFTWARE, SYSTEM and SAM hive at once, so
 * that every walk meets it, in a directory tree that is otherwise a Windows system root. */
#include "extract.h"
#include "feature.h"
#include "fuzz.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct vs_extractor *x;
  static char root[PATH_MAX];
  struct vs_err err = {0};
  if (size > (8u << 20)) return 0;
  if (!x) {
    x = vs_extractor_new(NULL, &err);
    if (!x) abort();
    vs_extractor_set_read_budget(x, 32u << 20);
    const char *dirs[] = {"root", "root/Windows", "root/Windows/System32",
                          "root/Windows/System32/config"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
      char d[PATH_MAX];
      if (snprintf(d, sizeof(d), "%s/%s", fuzz_dir(), dirs[i]) >= (int)sizeof(d) ||
          (mkdir(d, 0700) < 0 && i == 0))
        abort();
    }
    if (snprintf(root, sizeof(root), "%s/root", fuzz_dir()) >= (int)sizeof(root)) abort();
  }
  fuzz_file("root/Windows/System32/config/SOFTWARE", data, size);
  fuzz_file("root/Windows/System32/config/SYSTEM", data, size);
  fuzz_file("root/Windows/System32/config/SAM", data, size);
  struct vs_source *src = vs_source_open_dir(root, &err);
  vs_err_clear(&err);
  if (!src) return 0;
  struct vs_feature *doc = vs_feature_new();
  if (vs_extract(x, src, doc, NULL, &err) < 0) vs_err_clear(&err);
  char *text = vs_feature_dumps(doc, false);
  free(text);
  vs_feature_free(doc);
  vs_source_free(src);
  return 0;
}
