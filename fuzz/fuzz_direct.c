/* fuzz_direct: a whole raw disk, as the direct backend meets it: partition tables (libblkid),
 * ext2/3/4 through libext2fs on our reader, the root found by its /etc, fstab followed, and
 * the document extracted (Augeas on whatever files the image holds). */
#include "extract.h"
#include "feature.h"
#include "fuzz.h"
#include "source_image.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct vs_extractor *x;
  struct vs_err err = {0};
  if (size > (8u << 20)) return 0;
  if (!x) {
    x = vs_extractor_new(NULL, &err);
    if (!x) abort();
    vs_extractor_set_read_budget(x, 4u << 20);
  }
  const char *path = fuzz_file("disk.img", data, size);
  const char *paths[] = {path};
  struct vs_image_opts o = {.format = "raw"};
  struct vs_source *src = vs_source_open_image(paths, 1, &o, &err);
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
