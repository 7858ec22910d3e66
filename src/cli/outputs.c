/* outputs.c: the files a subcommand writes never replace what it reads. */
#include "cli.h"

#include "image.h"
#include "layer.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int vs_cli_check_output(const char *out, char *const *inputs, size_t n, bool force,
                        const char *prog) {
  /* The images among the inputs, with their backing chains: backing files are looked for in
   * the directory of every input, a superset of where the readers look. */
  char **dir_copies = vs_xcalloc(n + 1, sizeof(char *));
  const char **dirs = vs_xcalloc(n + 1, sizeof(char *));
  struct vs_image **chains = vs_xcalloc(n + 1, sizeof(*chains));
  size_t n_chains = 0;
  for (size_t i = 0; i < n; i++) {
    dir_copies[i] = vs_xstrdup(inputs[i]);
    dirs[i] = dirname(dir_copies[i]);
  }
  struct vs_image_opts o = {.backing_dirs = dirs, .n_backing_dirs = n};
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (vs_image_is_nbd_uri(inputs[i]) || stat(inputs[i], &st) < 0 || !S_ISREG(st.st_mode))
      continue;
    /* One that does not open is not an image (or its reader says why later). */
    if ((chains[n_chains] = vs_image_open(inputs[i], &o, NULL))) n_chains++;
  }
  struct vs_err err = {0};
  int rc = vs_layer_check_output(out, (const char *const *)inputs, n,
                                 (const struct vs_image *const *)chains, n_chains, force, &err);
  if (rc < 0) vs_cli_fail(&err, NULL, rc, prog);
  for (size_t i = 0; i < n_chains; i++)
    vs_image_close(chains[i]);
  for (size_t i = 0; i < n; i++)
    free(dir_copies[i]);
  free(chains);
  free(dirs);
  free(dir_copies);
  return rc;
}
