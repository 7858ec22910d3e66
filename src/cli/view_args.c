/* The fleet view from the command line: --pool directories and SOURCE arguments, shared by
 * drift, analyze, similar and report so that they count the same VMs. */
#include "cli.h"

#include "fleetview.h"
#include "pool.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool vs_cli_refuse_pool_source(const char *path, const char *prog) {
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode) || !vs_view_is_pool(path)) return false;
  fprintf(stderr, "%s: %s is a snapshot pool, not a guest: give it as --pool %s\n", prog, path,
          path);
  return true;
}

int vs_cli_add_pools(struct vs_view *view, const char *const *pools, size_t n, const char *prog) {
  int status = VS_EXIT_OK;
  const char *const *errors;
  size_t reported = vs_view_errors(view, &errors);
  for (size_t i = 0; i < n; i++) {
    struct vs_err err = {0};
    size_t before = vs_view_count(view);
    if (vs_view_add_pool(view, pools[i], NULL, NULL, &err) < 0)
      return vs_cli_fail(&err, "--pool", VS_EXIT_USAGE, prog);
    size_t domains = 0;
    if (vs_pool_first_cycle_running(pools[i], &domains)) {
      fprintf(stderr,
              "%s: --pool %s: vmscope_snapshot's first cycle (%zu domain(s)) is still running: "
              "the pool holds %zu of them so far, and VMs are ranked against the peers in it\n",
              prog, pools[i], domains, vs_view_count(view) - before);
      status = VS_EXIT_PARTIAL;
    }
    size_t n_errors = vs_view_errors(view, &errors);
    for (; reported < n_errors; reported++) {
      fprintf(stderr, "%s: %s\n", prog, errors[reported]);
      status = VS_EXIT_PARTIAL;
    }
    /* A pool that adds no VM may hold the VMs of one given before (the same pool twice): only
     * one with no VM at all is an error. */
    if (vs_view_count(view) == before && !vs_view_is_pool(pools[i])) {
      fprintf(stderr, "%s: --pool %s holds no VM documents\n", prog, pools[i]);
      status = VS_EXIT_PARTIAL;
    }
  }
  return status;
}

struct vs_store *vs_cli_open_store(const struct vs_store_opts *so, const char *context,
                                   const char *prog, int *status) {
  struct vs_err err = {0};
  /* libpq's two forms: a URI, or keyword=value pairs (a file path given by mistake is neither) */
  if (strncmp(so->url, "postgresql://", 13) != 0 && strncmp(so->url, "postgres://", 11) != 0 &&
      !strchr(so->url, '=')) {
    vs_err_set(&err, EINVAL,
               "\"%s\" is not a PostgreSQL URL (postgresql://...) nor a connection string "
               "(host=... dbname=...)",
               so->url);
    *status = vs_cli_fail(&err, context, VS_EXIT_USAGE, prog);
    return NULL;
  }
  _cleanup_(vs_store_freep) struct vs_store *store = vs_store_new(so, &err);
  if (!store) {
    *status = vs_cli_fail(&err, context, VS_EXIT_USAGE, prog);
    return NULL;
  }
  if (vs_store_connect(store, &err) < 0) {
    *status = vs_cli_fail(&err, context, VS_EXIT_PARTIAL, prog);
    return NULL;
  }
  return vs_steal(&store);
}

int vs_cli_add_store(struct vs_view *view, const char *url, const char *password_file,
                     const char *ca_file, const char *prog) {
  struct vs_err err = {0};
  struct vs_store_opts so = {.url = url,
                             .password_file = password_file,
                             .ca_file = ca_file,
                             .host = "vmscope-cli",
                             .read_only = true};
  int status;
  _cleanup_(vs_store_freep) struct vs_store *store =
      vs_cli_open_store(&so, "--store", prog, &status);
  if (!store) return status;
  char **errors = NULL;
  size_t n_errors = 0, refused = 0;
  if (vs_store_load(store, view, &refused, &errors, &n_errors, &err) < 0)
    return vs_cli_fail(&err, "--store", VS_EXIT_PARTIAL, prog);
  for (size_t i = 0; i < n_errors; i++)
    fprintf(stderr, "%s: %s\n", prog, errors[i]);
  vs_strv_free(errors, n_errors);
  return refused ? VS_EXIT_PARTIAL : VS_EXIT_OK;
}

int vs_cli_add_sources(struct vs_view *view, const struct vs_cli_read *r, char **paths, size_t n,
                       const char *not_id, const char *not_name, const char *prog) {
  for (size_t i = 0; i < n; i++)
    if (vs_cli_refuse_pool_source(paths[i], prog)) return VS_EXIT_USAGE;
  struct vs_cli_docs *read = vs_xcalloc(n ? n : 1, sizeof(*read));
  if (vs_cli_read_sources(r, paths, n, read, prog) < 0) {
    free(read);
    return VS_EXIT_USAGE;
  }
  int status = VS_EXIT_OK;
  size_t dropped = 0, added = 0, before = vs_view_count(view);
  for (size_t i = 0; i < n; i++) {
    if (read[i].error) {
      fprintf(stderr, "%s: %s\n", prog, read[i].error);
      status = VS_EXIT_PARTIAL;
    }
    for (size_t j = 0; j < read[i].n; j++) {
      struct vs_feature *doc = vs_steal(&read[i].docs[j]);
      const char *name = vs_feature_name(doc);
      if ((not_id && strcmp(vs_feature_id(doc), not_id) == 0) ||
          (not_name && name && strcmp(name, not_name) == 0)) {
        dropped++;
        vs_feature_free(doc);
        continue;
      }
      vs_view_add(view, doc);
      added++;
    }
    vs_cli_docs_clear(&read[i]);
  }
  free(read);
  if (dropped)
    fprintf(stderr,
            "%s: note: %zu sample(s) are documents of the target itself (%s, %s), not its "
            "peers: left out\n",
            prog, dropped, not_name ? not_name : "", not_id);
  if (added > vs_view_count(view) - before)
    fprintf(stderr,
            "%s: note: the sources hold %zu documents of %zu VMs: each VM counts once, as its "
            "newest document\n",
            prog, added, vs_view_count(view) - before);
  return status;
}
