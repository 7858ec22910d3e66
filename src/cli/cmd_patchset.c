/* vmscope patchset make: the clusters a patch changed, as a thin qcow2 layer on the base. */
#include "cli.h"

#include "channel.h"
#include "guestflush.h"
#include "patchset.h"
#include "virt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "vmscope patchset"

static void usage(FILE *out) {
  fputs("Usage: vmscope patchset make --base BASE --patched PATCHED -o SET.qcow2 [--force] "
        "[OPTIONS]\n"
        "       vmscope patchset apply (--image TOP | [--connect URI] [--method M] DOMAIN) "
        "SET.qcow2\n"
        "       vmscope patchset apply --qmp PATH [--device NODE] SET.qcow2\n"
        "       vmscope patchset status (--image TOP | [--connect URI] DOMAIN)\n"
        "\n"
        "Compare BASE and PATCHED (raw or qcow2 disk images of one size) cluster by cluster\n"
        "and write SET.qcow2, a thin qcow2 layer whose backing file is BASE and which holds\n"
        "exactly the clusters that differ, and SET.qcow2.json, its manifest (BASE's identity,\n"
        "the changed ranges). When PATCHED is an overlay of BASE, its allocated clusters are\n"
        "taken without reading BASE.\n"
        "Nothing is ever written over an input: SET or SET.json that is BASE, PATCHED or any\n"
        "image of their backing chains, under any name (hard link, symlink, another path),\n"
        "is refused, even with --force; so is one that exists, unless --force. Both appear\n"
        "only when complete (a failure leaves the names as they were). Images of different\n"
        "virtual sizes are refused before anything is written.\n"
        "\n"
        "apply inserts SET under a stopped disk: the image of its chain that sits on the set's\n"
        "base (by the manifest's identity) is re-pointed to SET, and the report says which of\n"
        "the set's clusters the images above already hold (the guest keeps its own data\n"
        "there). It refuses a chain not based on the base, one that has the set already (by\n"
        "any name, or a copy), images another process holds open, a TOP that is the set, the\n"
        "base or another set. With --qmp, the VM runs: the set is added as a node\n"
        "on the base node and NODE (the format node of the image on the base; without\n"
        "--device, the one disk node that sits on the set's base: with two or more, apply\n"
        "names them and stops) is reopened onto it, its header re-pointed; any failure puts\n"
        "the chain back. Each disk gets its own layer node. A running libvirt DOMAIN is done\n"
        "the same way through libvirt's monitor pass-through (the node found the same way\n"
        "unless --device names it), or, with --method copy, by libvirt's own\n"
        "shallow block copy: the disk whose top image sits on the base gets a new empty top\n"
        "image on SET (TOP.SETNAME.qcow2 beside the old one), the copy moves what the guest\n"
        "wrote onto it and the disk pivots to it; a failure cancels the job.\n"
        "status lists the patch sets in a disk's chain; a TOP that is not a qcow2 image is\n"
        "refused.\n"
        "\n"
        "Options:\n"
        "  -b, --base BASE         the image the patch was applied to\n"
        "  -p, --patched PATCHED   the image after the patch\n"
        "  -o, --output SET        the layer to write (never written in place)\n"
        "      --force             replace SET and SET.json if they exist (never an input)\n"
        "      --cluster-size N    the layer's cluster size in bytes, 512..2097152, a power of\n"
        "                          two (default: 64 KiB, or PATCHED's when smaller or when\n"
        "                          PATCHED is an overlay of BASE)\n"
        "      --stats             print what was compared and how long it took\n"
        "  -i, --image TOP         apply/status: the disk's top image\n"
        "  -c, --connect URI       apply/status: libvirt URI for DOMAIN\n"
        "      --backing-dir DIR   status: a directory backing files may lie in (repeatable)\n"
        "      --qmp PATH          apply: QEMU's QMP socket of a running VM\n"
        "      --device NODE       apply to a running VM: the format node that sits on the\n"
        "                          base (needed when more than one disk does)\n"
        "      --method M          apply to a running libvirt DOMAIN: reopen (default; QMP\n"
        "                          blockdev-reopen through the monitor pass-through) or copy\n"
        "                          (libvirt block copy and pivot)\n"
        "      --timeout SECONDS   with --method copy: how long to wait for the copy (600)\n"
        "      --flush COMMAND     apply to a running VM: then run COMMAND in the guest\n"
        "                          (/bin/sh -c, by guest-exec) so it drops what it cached of\n"
        "                          the replaced files (drop caches, restart services)\n"
        "      --agent-socket PATH with --qmp: the guest agent's socket for --flush\n"
        "  -h, --help              this help\n"
        "\n"
        "Each option is given once (--backing-dir may repeat); an option the action would\n"
        "ignore is refused.\n"
        "\n"
        "Exit status: 0 written, 1 failed (nothing changed), 2 usage error (an output that is\n"
        "an input or exists, an option given twice or not for this action).\n",
        out);
}

static int print_json(json_t *j) {
  vs_cli_print_json(j, false, PROG);
  json_decref(j);
  return fflush(stdout) == 0 ? VS_EXIT_OK : VS_EXIT_PARTIAL;
}

/* getopt's '?' or ':' (OPTS begin with ':'), as one line. */
static int bad_option(int c, char **argv) {
  const char *arg = argv[optind - 1];
  if (c == ':')
    fprintf(stderr, PROG ": %s needs a value (see vmscope patchset --help)\n", arg);
  else if (optopt)
    fprintf(stderr, PROG ": unknown option -%c (see vmscope patchset --help)\n", optopt);
  else
    fprintf(stderr, PROG ": unknown option \"%s\" (see vmscope patchset --help)\n", arg);
  return VS_EXIT_USAGE;
}

/* Refuses option NAME (given when SET) with the reason WHY. */
static bool refuse(bool set, const char *name, const char *why) {
  if (set) fprintf(stderr, PROG ": %s %s\n", name, why);
  return set;
}

/* The first of two positional arguments that name one file, or NULL. */
static const char *same_twice(char **args, int n) {
  struct stat a, b;
  for (int i = 0; i < n; i++)
    for (int k = i + 1; k < n; k++)
      if (strcmp(args[i], args[k]) == 0 || (stat(args[i], &a) == 0 && stat(args[k], &b) == 0 &&
                                            a.st_dev == b.st_dev && a.st_ino == b.st_ino))
        return args[i];
  return NULL;
}

/* ------------------------------------------------------------------- apply and status */

struct apply_args {
  bool apply;
  const char *image, *uri, *qmp, *device, *flush, *agent, *method, *timeout;
  const char *dirs[VS_CLI_MAX_REPEAT];
  size_t n_dirs;
  bool copy;
  int timeout_s;
  char **pos; /* the positional arguments */
  int n_pos;
};

/* Reads the options of apply or status into A: -1 to go on, else the exit status (help
 * printed, or a usage error). */
static int parse_apply_options(int argc, char **argv, struct apply_args *a) {
  enum {
    OPT_BACKING = VS_CLI_OPT_FIRST_FREE,
    OPT_QMP,
    OPT_DEVICE,
    OPT_FLUSH,
    OPT_AGENT,
    OPT_METHOD,
    OPT_TIMEOUT
  };
  static const struct option opts[] = {{"image", required_argument, NULL, 'i'},
                                       {"qmp", required_argument, NULL, OPT_QMP},
                                       {"device", required_argument, NULL, OPT_DEVICE},
                                       {"flush", required_argument, NULL, OPT_FLUSH},
                                       {"agent-socket", required_argument, NULL, OPT_AGENT},
                                       {"method", required_argument, NULL, OPT_METHOD},
                                       {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                       {"connect", required_argument, NULL, 'c'},
                                       {"backing-dir", required_argument, NULL, OPT_BACKING},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const struct vs_cli_once single[] = {
      {'i', "--image", &a->image},          {'c', "--connect", &a->uri},
      {OPT_QMP, "--qmp", &a->qmp},          {OPT_DEVICE, "--device", &a->device},
      {OPT_FLUSH, "--flush", &a->flush},    {OPT_AGENT, "--agent-socket", &a->agent},
      {OPT_METHOD, "--method", &a->method}, {OPT_TIMEOUT, "--timeout", &a->timeout}};
  int c;
  optind = 2;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":i:c:h", opts, NULL)) != -1) {
    int taken = vs_cli_take_once(single, sizeof(single) / sizeof(single[0]), c, optarg, PROG);
    if (taken < 0) return VS_EXIT_USAGE;
    if (taken) continue;
    if (c == OPT_BACKING && a->n_dirs < VS_CLI_MAX_REPEAT) {
      a->dirs[a->n_dirs++] = optarg;
    } else if (c == OPT_BACKING) {
      fprintf(stderr,
              PROG ": more than %d --backing-dir: put the backing files in fewer "
                   "directories\n",
              VS_CLI_MAX_REPEAT);
      return VS_EXIT_USAGE;
    } else if (c == 'h') {
      usage(stdout);
      return VS_EXIT_OK;
    } else {
      return bad_option(c, argv);
    }
  }
  a->pos = argv + optind;
  a->n_pos = argc - optind;
  return -1;
}

/* Checks the values of --method and --timeout: false (message printed) when one is bad. */
static bool check_values(struct apply_args *a) {
  if (a->method && strcmp(a->method, "copy") != 0 && strcmp(a->method, "reopen") != 0) {
    fprintf(stderr, PROG ": --method takes reopen or copy, not \"%s\"\n", a->method);
    return false;
  }
  a->copy = a->method && strcmp(a->method, "copy") == 0;
  a->timeout_s = 600;
  if (a->timeout) {
    char *end;
    long t = strtol(a->timeout, &end, 10);
    if (!*a->timeout || *end || t < 1 || t > 86400) {
      fprintf(stderr, PROG ": --timeout takes whole seconds, 1 to 86400, not \"%s\"\n", a->timeout);
      return false;
    }
    a->timeout_s = (int)t;
  }
  return true;
}

/* Options that would be ignored are refused: the user meant something else. True (message
 * printed) when one is. */
static bool refuse_ignored(const struct apply_args *a) {
  bool apply = a->apply, copy = a->copy;
  const char *image = a->image, *qmp = a->qmp, *device = a->device, *flush = a->flush;
  const char *agent = a->agent, *method = a->method, *timeout = a->timeout, *uri = a->uri;
  return refuse(!apply && (qmp || device || flush || agent || method || timeout),
                qmp      ? "--qmp"
                : device ? "--device"
                : flush  ? "--flush"
                : agent  ? "--agent-socket"
                : method ? "--method"
                         : "--timeout",
                "is for apply, not status") ||
         refuse(apply && a->n_dirs, "--backing-dir", "is for status, not apply") ||
         refuse(image && qmp, "--qmp", "and --image name two disks: give one") ||
         refuse(image && uri, "--connect", "is for a DOMAIN, not --image TOP") ||
         refuse(image && (device || flush || method),
                device  ? "--device"
                : flush ? "--flush"
                        : "--method",
                "is for a running VM, not a stopped disk's --image") ||
         refuse(qmp && (uri || method), uri ? "--connect" : "--method",
                "is for a libvirt DOMAIN, not --qmp") ||
         refuse(agent && !qmp, "--agent-socket",
                "is for --qmp (a libvirt DOMAIN's agent is reached through libvirt)") ||
         refuse(timeout && !copy, "--timeout", "is for --method copy") ||
         refuse(device && copy, "--device", "is for --method reopen (copy picks the disk itself)");
}

/* Whether A has the positional arguments its action takes (message printed when not). */
static bool check_positional(const struct apply_args *a) {
  int want = a->qmp ? 1 : (a->image ? 0 : 1) + (a->apply ? 1 : 0);
  if (a->n_pos == want) return true;
  const char *twice = same_twice(a->pos, a->n_pos);
  if (a->apply && twice)
    fprintf(stderr, PROG ": %s given twice: apply takes one SET.qcow2\n", twice);
  else if (a->qmp)
    fprintf(stderr, PROG ": apply --qmp PATH [--device NODE] takes one SET.qcow2\n");
  else if (a->apply)
    fprintf(stderr, PROG ": apply takes %s\n",
            a->image ? "one SET.qcow2 after --image TOP"
                     : "DOMAIN and SET.qcow2 (or --image TOP SET.qcow2)");
  else
    fprintf(stderr, PROG ": status takes %s\n",
            a->image ? "nothing but --image TOP" : "one DOMAIN (or --image TOP)");
  return false;
}

/* A running VM through QEMU's monitor at --qmp, then --flush through --agent-socket. */
static int apply_qmp(const struct apply_args *a) {
  struct vs_err err = {0};
  json_t *r = NULL;
  if (vs_patchset_apply_qmp(a->qmp, a->device, a->pos[0], &r, &err) < 0)
    return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  if (a->flush && !a->agent) {
    json_object_set_new(r, "flush",
                        json_pack("{ssssss}", "command", a->flush, "status", "not_configured",
                                  "error", "no --agent-socket to reach the guest"));
  } else if (a->flush) {
    const char *allow[] = {"guest-exec"};
    struct vs_channel_opts co = {.allow = allow, .n_allow = 1};
    _cleanup_(vs_channel_closep) struct vs_channel *ch = vs_channel_open_unix(a->agent, &co);
    json_object_set_new(r, "flush", vs_guestflush_run(ch, a->flush, 60000));
  }
  return print_json(r);
}

/* A libvirt DOMAIN, running or stopped, then --flush through libvirt when it runs. */
static int apply_domain(const struct apply_args *a) {
  struct vs_err err = {0};
  _cleanup_(vs_virt_closep) struct vs_virt *rw = vs_virt_open(a->uri, false, &err);
  json_t *r = NULL;
  if (!rw || vs_patchset_apply_domain(rw, a->pos[0], a->device, a->pos[1], a->copy, a->timeout_s,
                                      &r, &err) < 0)
    return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  if (a->flush && json_is_true(json_object_get(r, "running"))) {
    const char *allow[] = {"guest-exec"};
    struct vs_channel_opts co = {.allow = allow, .n_allow = 1};
    _cleanup_(vs_channel_closep) struct vs_channel *ch =
        vs_channel_open_libvirt(rw, json_string_value(json_object_get(r, "domain")), &co);
    json_object_set_new(r, "flush", vs_guestflush_run(ch, a->flush, 60000));
  }
  return print_json(r);
}

/* A stopped disk's --image TOP. */
static int apply_image(const char *top, const char *set) {
  struct vs_err err = {0};
  json_t *r = NULL;
  if (vs_patchset_apply_image(top, set, &r, &err) < 0)
    return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  return print_json(r);
}

/* The top images of the disks of the libvirt domain NAME, into *TOPS (*N of them): -1 (message
 * printed) when there is no such domain. */
static int domain_tops(const char *uri, const char *name, char ***tops, size_t *n) {
  struct vs_err err = {0};
  _cleanup_(vs_virt_closep) struct vs_virt *v = vs_virt_open(uri, true, &err);
  struct vs_domain *doms = NULL;
  size_t nd = 0;
  if (!v || vs_virt_domains(v, &doms, &nd, &err) < 0)
    return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG), -1;
  for (size_t i = 0; i < nd; i++) {
    if (strcmp(doms[i].name, name) != 0 && strcmp(doms[i].uuid, name) != 0) continue;
    struct vs_disk *disks = NULL;
    size_t nk = 0;
    _cleanup_(vs_freep) char *skipped = NULL;
    if (vs_virt_xml_disks(doms[i].xml, doms[i].name, &disks, &nk, &skipped, &err) == 0) {
      *tops = vs_xcalloc(nk + 1, sizeof(char *));
      for (size_t k = 0; k < nk; k++)
        (*tops)[(*n)++] = vs_xstrdup(disks[k].path);
    }
    vs_disks_free(disks, nk);
  }
  vs_domains_free(doms, nd);
  if (*tops) return 0;
  fprintf(stderr, PROG ": no domain %s%s%s\n", name, err.msg ? ": " : "", err.msg ? err.msg : "");
  vs_err_clear(&err);
  return -1;
}

/* The patch sets in the chains of TOPS[0..N) as one JSON array; a domain's (not --image's,
 * IMAGE false) disk that is not qcow2 has none. */
static int status_of(const char *const *tops, size_t n, bool image, const struct apply_args *a) {
  struct vs_err err = {0};
  int status = VS_EXIT_PARTIAL;
  _cleanup_(json_decrefp) json_t *all = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *r = NULL;
    if (vs_patchset_status(tops[i], a->dirs, a->n_dirs, &r, &err) == 0) {
      json_array_extend(all, r);
      json_decref(r);
      status = VS_EXIT_OK;
    } else if (!image && err.code == EMEDIUMTYPE) {
      status = VS_EXIT_OK; /* a domain's raw disk: no chain, no set */
      vs_err_clear(&err);
    } else {
      vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
    }
  }
  return status == VS_EXIT_OK ? print_json(vs_steal(&all)) : status;
}

/* status: --image TOP's chain, or each disk's of DOMAIN. */
static int status(const struct apply_args *a) {
  if (a->image) return status_of(&a->image, 1, true, a);
  char **tops = NULL;
  size_t n = 0;
  if (domain_tops(a->uri, a->pos[0], &tops, &n) < 0) return VS_EXIT_PARTIAL;
  int rc = VS_EXIT_PARTIAL;
  if (n == 0)
    fprintf(stderr, PROG ": domain %s has no file-backed disk\n", a->pos[0]);
  else
    rc = status_of((const char *const *)tops, n, false, a);
  vs_strv_free(tops, n);
  return rc;
}

static int apply_or_status(int argc, char **argv) {
  struct apply_args a = {.apply = strcmp(argv[1], "apply") == 0};
  int rc = parse_apply_options(argc, argv, &a);
  if (rc >= 0) return rc;
  if (!check_values(&a) || refuse_ignored(&a) || !check_positional(&a)) return VS_EXIT_USAGE;
  if (a.apply && a.qmp) return apply_qmp(&a);
  if (a.apply && !a.image) return apply_domain(&a);
  if (a.apply) return apply_image(a.image, a.pos[0]);
  return status(&a);
}

/* ---------------------------------------------------------------------------------- make */

struct make_args {
  const char *base, *patched, *out, *cluster_size;
  unsigned bits;
  bool stats, force;
};

/* Reads the options of make into M: -1 to go on, else the exit status. */
static int parse_make_options(int argc, char **argv, struct make_args *m) {
  enum { OPT_CS = VS_CLI_OPT_FIRST_FREE, OPT_STATS, OPT_FORCE };
  static const struct option opts[] = {
      {"base", required_argument, NULL, 'b'},   {"patched", required_argument, NULL, 'p'},
      {"output", required_argument, NULL, 'o'}, {"cluster-size", required_argument, NULL, OPT_CS},
      {"stats", no_argument, NULL, OPT_STATS},  {"force", no_argument, NULL, OPT_FORCE},
      {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
  const struct vs_cli_once single[] = {{'b', "--base", &m->base},
                                       {'p', "--patched", &m->patched},
                                       {'o', "--output", &m->out},
                                       {OPT_CS, "--cluster-size", &m->cluster_size}};
  int c;
  optind = 2;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":b:p:o:h", opts, NULL)) != -1) {
    int taken = vs_cli_take_once(single, sizeof(single) / sizeof(single[0]), c, optarg, PROG);
    if (taken < 0) return VS_EXIT_USAGE;
    if (taken) continue;
    if (c == OPT_STATS || c == OPT_FORCE) {
      bool *flag = c == OPT_STATS ? &m->stats : &m->force;
      if (*flag) {
        fprintf(stderr, PROG ": %s given twice: give it once\n",
                c == OPT_STATS ? "--stats" : "--force");
        return VS_EXIT_USAGE;
      }
      *flag = true;
    } else if (c == 'h') {
      usage(stdout);
      return VS_EXIT_OK;
    } else {
      return bad_option(c, argv);
    }
  }
  return -1;
}

/* Checks make's arguments (after the options, ARGV[OPTIND..ARGC)): false, message printed,
 * when one is missing, extra or bad, or an output would replace an input. */
static bool check_make_args(int argc, char **argv, struct make_args *m) {
  if (m->cluster_size) {
    char *end;
    unsigned long v = strtoul(m->cluster_size, &end, 10);
    while (m->bits < 22 && (1UL << m->bits) < v)
      m->bits++;
    if (!*m->cluster_size || *end || (1UL << m->bits) != v || m->bits < 9 || m->bits > 21) {
      fprintf(stderr, PROG ": --cluster-size takes a power of two in 512..2097152, not \"%s\"\n",
              m->cluster_size);
      return false;
    }
  }
  if (!m->base || !m->patched || !m->out || optind < argc) {
    fprintf(stderr, PROG ": make needs --base, --patched and -o, and nothing else%s%s\n",
            optind < argc ? ", not " : "", optind < argc ? argv[optind] : "");
    return false;
  }
  if (!*m->base || !*m->patched || !*m->out) {
    fprintf(stderr, PROG ": %s takes a file name, not an empty one\n",
            !*m->base      ? "--base"
            : !*m->patched ? "--patched"
                           : "-o");
    return false;
  }
  struct stat bs, ps;
  if (stat(m->base, &bs) == 0 && stat(m->patched, &ps) == 0 && bs.st_dev == ps.st_dev &&
      bs.st_ino == ps.st_ino) {
    fprintf(stderr,
            PROG ": --base %s and --patched %s are one file: give the image before the patch "
                 "and the one after it\n",
            m->base, m->patched);
    return false;
  }
  /* Neither the set nor its manifest may replace an input (the core checks again). */
  char *inputs[] = {(char *)m->base, (char *)m->patched};
  _cleanup_(vs_freep) char *manifest = vs_xasprintf("%s.json", m->out);
  return vs_cli_check_output(m->out, inputs, 2, m->force, PROG) == 0 &&
         vs_cli_check_output(manifest, inputs, 2, m->force, PROG) == 0;
}

/* make's --stats: what was compared and how long it took. */
static void print_stats(const char *out, const struct vs_patchset_stats *st) {
  fprintf(stderr,
          "%s: %llu clusters of %llu KiB: %llu changed, %llu now zero; %llu holes not read, "
          "%llu taken from the overlay, %llu compared in the file's order; %.1f MiB read (%.1f "
          "MiB of it in the page cache, compared in place) in %.3f s\n",
          out, (unsigned long long)st->clusters,
          (unsigned long long)(1ULL << st->cluster_bits) / 1024, (unsigned long long)st->changed,
          (unsigned long long)st->zeroed, (unsigned long long)st->skipped_holes,
          (unsigned long long)st->taken_from_overlay, (unsigned long long)st->in_file_order,
          (double)st->bytes_read / 1048576.0, (double)st->bytes_mapped / 1048576.0, st->seconds);
}

static int make(int argc, char **argv) {
  struct make_args m = {0};
  int rc = parse_make_options(argc, argv, &m);
  if (rc >= 0) return rc;
  if (!check_make_args(argc, argv, &m)) return VS_EXIT_USAGE;
  struct vs_err err = {0};
  struct vs_patchset_stats st;
  if (vs_patchset_make(m.base, m.patched, m.out, m.bits, m.force, &st, &err) < 0)
    return vs_cli_fail(&err, NULL, VS_EXIT_PARTIAL, PROG);
  if (m.stats) print_stats(m.out, &st);
  return VS_EXIT_OK;
}

int vs_cmd_patchset(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? VS_EXIT_USAGE : VS_EXIT_OK;
  }
  if (strcmp(argv[1], "apply") == 0 || strcmp(argv[1], "status") == 0)
    return apply_or_status(argc, argv);
  if (strcmp(argv[1], "make") == 0) return make(argc, argv);
  fprintf(stderr, PROG ": unknown action \"%s\" (make, apply or status)\n", argv[1]);
  return VS_EXIT_USAGE;
}
