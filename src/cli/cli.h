/* cli.h: the vmscope command's subcommands. Each returns the process exit status:
 * 0 success, 1 some input failed (the rest was still done), 2 usage error. */
#ifndef VS_CLI_H
#define VS_CLI_H

#include "extract.h"
#include "feature.h"
#include "image.h"
#include "snapshot.h"
#include "source.h"
#include "watch.h"

#include <getopt.h>

#define VS_EXIT_OK 0
#define VS_EXIT_PARTIAL 1
#define VS_EXIT_USAGE 2

int vs_cmd_inspect(int argc, char **argv);
int vs_cmd_drift(int argc, char **argv);
int vs_cmd_diff(int argc, char **argv);
int vs_cmd_snapshot(int argc, char **argv);
int vs_cmd_send(int argc, char **argv);
int vs_cmd_fleet(int argc, char **argv);
int vs_cmd_fleet_drift(int argc, char **argv);
int vs_cmd_patchset(int argc, char **argv);
int vs_cmd_analyze(int argc, char **argv);
int vs_cmd_similar(int argc, char **argv);
int vs_cmd_report(int argc, char **argv);

/* ----------------------------------------------- reading SOURCE arguments (read_docs.c) */

#define VS_CLI_MAX_REPEAT 64
enum {
  VS_CLI_OPT_NO_DEFAULT_WATCH = 0x100,
  VS_CLI_OPT_STATS,
  VS_CLI_OPT_REG_WATCH,
  VS_CLI_OPT_NO_DEFAULT_REG_WATCH,
  VS_CLI_OPT_IMAGE_FORMAT,
  VS_CLI_OPT_BACKING_DIR,
  VS_CLI_OPT_CACERT,
  VS_CLI_OPT_CERT,
  VS_CLI_OPT_KEY,
  VS_CLI_OPT_USER,
  VS_CLI_OPT_PARSE_CACHE,
  VS_CLI_OPT_NO_PARSE_CACHE,
  VS_CLI_OPT_FIRST_FREE /* subcommands number their own long options from here */
};
/* getopt_long entries for the options every guest-reading subcommand takes. */
#define VS_CLI_READ_OPTIONS                                                                        \
  {"watch", required_argument, NULL, 'w'},                                                         \
      {"no-default-watch", no_argument, NULL, VS_CLI_OPT_NO_DEFAULT_WATCH},                        \
      {"reg-watch", required_argument, NULL, VS_CLI_OPT_REG_WATCH},                                \
      {"no-default-reg-watch", no_argument, NULL, VS_CLI_OPT_NO_DEFAULT_REG_WATCH},                \
      {"stats", no_argument, NULL, VS_CLI_OPT_STATS}, {"backend", required_argument, NULL, 'b'},   \
      {"image-format", required_argument, NULL, VS_CLI_OPT_IMAGE_FORMAT},                          \
      {"backing-dir", required_argument, NULL, VS_CLI_OPT_BACKING_DIR},                            \
      {"parse-cache", required_argument, NULL, VS_CLI_OPT_PARSE_CACHE}, {                          \
    "no-parse-cache", no_argument, NULL, VS_CLI_OPT_NO_PARSE_CACHE                                 \
  }
#define VS_CLI_READ_SHORT "w:b:"
extern const char vs_cli_read_help[];

struct vs_cli_read {
  bool stats, no_default_watch;
  bool quiet; /* -q, --quiet: no progress line (progress.h) while the libguestfs appliance works;
               * each subcommand takes the option itself, as it means more in drift and diff */
  enum vs_backend_choice backend;
  const char *backend_arg; /* --backend as given: a second one is refused */
  struct vs_image_opts image;
  const char *backing_dirs[VS_CLI_MAX_REPEAT];
  const char *watch_files[VS_CLI_MAX_REPEAT];
  size_t n_watch_files;
  const char *reg_watch_files[VS_CLI_MAX_REPEAT];
  size_t n_reg_watch_files;
  bool no_default_reg_watch;
  const char *parse_cache; /* --parse-cache DIR; NULL: the default directory */
  bool no_parse_cache;
};
/* Takes option C if it is one of VS_CLI_READ_OPTIONS: returns 1, or -1 (message printed,
 * prefixed with PROG) for a bad value; 0 when C is not one of them. */
int vs_cli_read_option(struct vs_cli_read *r, int c, const char *arg, const char *prog);

/* An option that takes one value: sets *SLOT to ARG, or returns -1 (message "PROG: OPT given
 * twice" printed) when it is already set. */
int vs_cli_set_once(const char **slot, const char *arg, const char *opt, const char *prog);
/* Options that take one value each, as a table: getopt's C, the option's name, its slot. */
struct vs_cli_once {
  int c;
  const char *name;
  const char **slot;
};
/* Takes option C (with ARG) into its slot in T[0..N): 1 taken, -1 given twice (printed, prefixed
 * with PROG), 0 when C is not one of T. */
int vs_cli_take_once(const struct vs_cli_once *t, size_t n, int c, const char *arg,
                     const char *prog);

/* A repeatable option's ARG appended to LIST[0..*N): -1 (printed, prefixed with PROG) past
 * VS_CLI_MAX_REPEAT. */
int vs_cli_add_repeat(const char **list, size_t *n, const char *arg, const char *opt,
                      const char *prog);

/* Whether OUT may be written (outputs.c): refused (-1, one line printed, prefixed with PROG) when
 * it is, by device and inode (any name: hard link, symlink, another path), one of INPUTS[0..N)
 * or an image in the backing chain of one, lies inside an input directory (a pool, a guest
 * tree), is a directory, or, unless FORCE, exists at all. Call it before reading anything. */
int vs_cli_check_output(const char *out, char *const *inputs, size_t n, bool force,
                        const char *prog);

/* --format ARG: sets *TEXT and returns 0 for "json" or "text"; -1 (message printed, prefixed with
 * PROG) for anything else. */
int vs_cli_format_option(const char *arg, const char *prog, bool *text);

/* The one way a subcommand reports a core error: "PROG: MESSAGE", or "PROG: CONTEXT MESSAGE"
 * when CONTEXT is not NULL, on standard error; ERR is then cleared for its next use. Returns
 * STATUS, so `return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);` reports and leaves. */
int vs_cli_fail(struct vs_err *err, const char *context, int status, const char *prog);

/* Flushes standard output: -1 (message printed, prefixed with PROG) when what was printed did
 * not all get written (a full disk, a closed pipe), which the exit status must say. */
int vs_cli_flush(const char *prog);

/* The watch list R's options give (the default one or none, plus each --watch file), or NULL
 * (message printed, prefixed with PROG) when a file cannot be read. */
struct vs_watch *vs_cli_load_watch(const struct vs_cli_read *r, const char *prog);
/* The registry watch list of Windows guests R's options give (the default one or none, plus
 * each --reg-watch file), or NULL after printing why. */
struct vs_regwatch *vs_cli_load_regwatch(const struct vs_cli_read *r, const char *prog);
/* The parse cache R asks for (--parse-cache DIR, or the default directory), or NULL: refused
 * (a warning prefixed with PROG says why; the sources are still read, parsing every file),
 * --no-parse-cache, or no home directory to keep it in. */
struct vs_parse_cache *vs_cli_open_parse_cache(const struct vs_cli_read *r, const char *prog);

/* J on standard output as every subcommand prints JSON: keys sorted, indented by two unless
 * COMPACT. Returns -1 (message printed, prefixed with PROG) when J cannot be serialized. */
int vs_cli_print_json(const json_t *j, bool compact, const char *prog);

/* etcd TLS and authentication, for the subcommands that talk to the fleet store. The password
 * comes from the environment (VMSCOPE_ETCD_PASSWORD), never from the command line. */
#define VS_CLI_FLEET_OPTIONS                                                                       \
  {"cacert", required_argument, NULL, VS_CLI_OPT_CACERT},                                          \
      {"cert", required_argument, NULL, VS_CLI_OPT_CERT},                                          \
      {"key", required_argument, NULL, VS_CLI_OPT_KEY}, {                                          \
    "user", required_argument, NULL, VS_CLI_OPT_USER                                               \
  }
extern const char vs_cli_fleet_help[];
struct vs_fleet_opts;
/* Takes option C if it is one of VS_CLI_FLEET_OPTIONS (1), else 0. */
int vs_cli_fleet_option(struct vs_fleet_opts *fo, int c, const char *arg);

/* What one SOURCE argument gave: documents (a saved JSON array gives several), or an error. */
struct vs_cli_docs {
  struct vs_feature **docs;
  size_t n;
  char *error;
};
/* Reads PATHS[0..N) into OUT[0..N): directories and images are extracted (images the direct
 * reader cannot read go to one libguestfs batch, whose progress is shown on standard error
 * when it is a terminal, unless R says quiet), "*.json" files are loaded. Returns -1 (message
 * printed) only when the options are unusable (a bad watch file); a failing source leaves its
 * error in OUT and the rest are still read. */
int vs_cli_read_sources(const struct vs_cli_read *r, char **paths, size_t n,
                        struct vs_cli_docs *out, const char *prog);
/* The first of the options that apply to images only that R has (--image-format, --backend,
 * --backing-dir), with *WHAT (WHAT may be NULL) saying what it is for; NULL when none was
 * given. */
const char *vs_cli_image_option(const struct vs_cli_read *r, const char **what);
/* True (message printed: the command refuses, exit 2) when R has an option that applies to
 * images only (vs_cli_image_option) and none of the command's inputs PATHS[0..N) is an image
 * (only directories and feature documents): the option would be ignored. A path that cannot be
 * looked at counts as an image (it fails on its own, saying why). */
bool vs_cli_refuse_unused_image_options(const struct vs_cli_read *r, char *const *paths, size_t n,
                                        const char *prog);
void vs_cli_docs_clear(struct vs_cli_docs *d);

/* ------------------------------------------- the fleet view from the arguments (view_args.c) */

struct vs_view;
/* True (message printed) when PATH, given where a guest was expected, is a snapshot pool. */
bool vs_cli_refuse_pool_source(const char *path, const char *prog);
/* The fleet store SO names, connected; NULL with *STATUS set and the reason printed (CONTEXT,
 * may be NULL, before it): VS_EXIT_USAGE when SO's URL is neither a postgresql:// URL nor a
 * key=value connection string, or its password file cannot be read; VS_EXIT_PARTIAL when the
 * store cannot be reached or its schema brought up to date (the source failed). */
struct vs_store_opts;
struct vs_store *vs_cli_open_store(const struct vs_store_opts *so, const char *context,
                                   const char *prog, int *status);
/* Adds the VMs of the PostgreSQL fleet store URL (every host seen within its HostTimeout) to
 * VIEW. Returns what vs_cli_open_store does when it cannot be opened, VS_EXIT_PARTIAL when rows
 * were refused (each printed) or the fleet could not be read, else VS_EXIT_OK. */
int vs_cli_add_store(struct vs_view *view, const char *url, const char *password_file,
                     const char *ca_file, const char *prog);

/* Adds each pool's VMs to VIEW. Returns VS_EXIT_USAGE (printed) when one is not a pool,
 * VS_EXIT_PARTIAL when some VM could not be read or a pool is empty, else VS_EXIT_OK. */
int vs_cli_add_pools(struct vs_view *view, const char *const *pools, size_t n, const char *prog);
/* Reads PATHS into VIEW (documents of one VM count once), leaving out documents whose id is
 * NOT_ID or whose name is NOT_NAME (the target's: the same VM seen another way, with a note).
 * Returns VS_EXIT_USAGE for a pool given as a source or unusable options, VS_EXIT_PARTIAL when
 * a source failed (printed), else VS_EXIT_OK. */
int vs_cli_add_sources(struct vs_view *view, const struct vs_cli_read *r, char **paths, size_t n,
                       const char *not_id, const char *not_name, const char *prog);

#endif
