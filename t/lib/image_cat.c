/* t/lib/image_cat: test helper. Writes an image's virtual disk to standard output through our
 * reader (to compare with qemu-img convert -O raw), or with -v lists what libblkid finds on it,
 * or with -i prints its format and virtual size. Exit 1 with the reader's message on error. */
#include "image.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *dirs[8];
  struct vs_image_opts opts = {.backing_dirs = dirs};
  bool volumes = false, info = false;
  size_t chunk = 1 << 20;
  int c;
  while ((c = getopt(argc, argv, "f:b:vic:")) != -1) {
    if (c == 'f')
      opts.format = optarg;
    else if (c == 'b' && opts.n_backing_dirs < 8)
      dirs[opts.n_backing_dirs++] = optarg;
    else if (c == 'v')
      volumes = true;
    else if (c == 'i')
      info = true;
    else if (c == 'c')
      chunk = (size_t)strtoul(optarg, NULL, 0);
    else
      return 2;
  }
  if (optind != argc - 1 || chunk == 0) {
    fprintf(stderr, "usage: image_cat [-f FORMAT] [-b BACKING-DIR]... [-v|-i] [-c CHUNK] IMAGE\n");
    return 2;
  }
  struct vs_err err = {0};
  struct vs_image *img = vs_image_open(argv[optind], &opts, &err);
  if (!img) {
    fprintf(stderr, "%s\n", vs_err_msg(&err));
    vs_err_clear(&err);
    return 1;
  }
  int rc = 0;
  if (info) {
    printf("%s %" PRIu64 "\n", vs_image_format(img), vs_image_size(img));
  } else if (volumes) {
    struct vs_volume *v = NULL;
    int n = vs_image_volumes(img, &v, &err);
    if (n < 0) {
      fprintf(stderr, "%s\n", vs_err_msg(&err));
      rc = 1;
    }
    for (int i = 0; i < n; i++)
      printf("%d %" PRIu64 " %" PRIu64 " %s uuid=%s label=%s partuuid=%s\n", v[i].number,
             v[i].offset, v[i].size, v[i].fstype[0] ? v[i].fstype : "-", v[i].uuid, v[i].label,
             v[i].partuuid);
    free(v);
  } else {
    /* Odd-sized reads at odd offsets exercise reads that straddle clusters. */
    char *buf = malloc(chunk);
    for (uint64_t off = 0; off < vs_image_size(img) && rc == 0;) {
      size_t n = vs_image_size(img) - off < chunk ? (size_t)(vs_image_size(img) - off) : chunk;
      if (vs_image_pread(img, buf, n, off, &err) < 0) {
        fprintf(stderr, "%s\n", vs_err_msg(&err));
        rc = 1;
      } else if (fwrite(buf, 1, n, stdout) != n) {
        rc = 1;
      }
      off += n;
    }
    free(buf);
  }
  vs_err_clear(&err);
  vs_image_close(img);
  return rc;
}
