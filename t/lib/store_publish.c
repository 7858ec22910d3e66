/* store_publish URL PASSWORD_FILE HOST: one host's store client, driven line by line from
 * stdin, so that a test can change the store between two publishes of the same process (whose
 * memory of what it published is what is tested). Commands, each answered with one line:
 *   publish     vs_store_publish_vms of this host's three VMs, p-1, p-2 and p-3, their
 *               documents made anew each time (as the plugin reads its pool each round):
 *               "ok" or "error: MESSAGE"
 *   change ID   VM ID takes a snapshot a minute later with a new value: "ok"
 *   retake ID   VM ID takes a snapshot a minute later that finds nothing changed: "ok"
 *   forget ID   VM ID's previous snapshot leaves the pool (retention): "ok"
 *   rank        the three VMs ranked against each other, and vs_store_publish_findings of
 *               their rankings: "ok" or "error: MESSAGE"
 *   read        the fleet as vs_store_load reads it, each VM (by uuid) as
 *               "ID:NEWEST'S TAKEN_AT<PREVIOUS'S or none", space-separated, then "N refused"
 *               (the rows refused), or "error: MESSAGE"
 *   fleet       the fleet's lock taken, vs_store_publish_fleet of findings of 300 groups of 20
 *               VMs (some 100 KB of JSON): "ok" or "error: MESSAGE"
 * Until a VM's first change or retake it has no previous snapshot.
 * At the end of input it exits 0. */
#include "fleetfind.h"
#include "fleetview.h"
#include "store.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VMS 3

/* A VM's snapshot: which value it found, and a minute after what. */
struct snap {
  unsigned version, minute;
};

/* A command's one line: "ok" when RC is 0, else "error: " and ERR's message (cleared). */
static void answer(int rc, struct vs_err *err) {
  if (rc == 0)
    printf("ok\n");
  else
    printf("error: %s\n", vs_err_msg(err));
  vs_err_clear(err);
}

static struct vs_feature *make_doc(size_t i, struct snap at) {
  struct vs_feature *d = vs_feature_new();
  char id[16], value[16];
  snprintf(id, sizeof(id), "p-%zu", i + 1);
  vs_feature_set_id(d, id, id);
  vs_feature_set_taken_at(d, 1796000000 + 60 * (int64_t)at.minute);
  vs_feature_set_source(d, "dir", id, "dir");
  vs_feature_set_os(d, "distro", "debian");
  vs_feature_set(d, "file:/etc/ssh/sshd_config:Port", "22", "/etc/ssh/sshd_config");
  snprintf(value, sizeof(value), "%u", at.version);
  vs_feature_set(d, "version", value, NULL);
  return d;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: store_publish URL PASSWORD_FILE HOST\n");
    return 2;
  }
  struct vs_store_opts o = {.url = argv[1], .password_file = argv[2], .host = argv[3]};
  struct vs_err err = {0};
  struct vs_store *s = vs_store_open(&o, &err);
  if (!s) {
    fprintf(stderr, "store_publish: %s\n", vs_err_msg(&err));
    return 1;
  }
  struct snap newest[VMS] = {{0, 0}}, prev[VMS] = {{0, 0}};
  bool has_prev[VMS] = {false};
  char line[256];
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof(line), stdin)) {
    line[strcspn(line, "\n")] = '\0';
    if (strcmp(line, "publish") == 0 || strcmp(line, "rank") == 0) {
      struct vs_view *local = vs_view_new();
      for (size_t i = 0; i < VMS; i++) {
        if (has_prev[i]) vs_view_add(local, make_doc(i, prev[i]));
        vs_view_add(local, make_doc(i, newest[i]));
      }
      int rc = -1;
      if (line[0] == 'p') {
        rc = vs_store_publish_vms(s, local, &err);
      } else {
        struct vs_view_opts vo = {.peers = VS_PEERS_FLEET};
        vs_view_prepare(local, &vo);
        struct vs_drift *ranked[VMS] = {NULL};
        struct vs_drift_opts dop = {0};
        size_t n = 0;
        while (n < VMS && (ranked[n] = vs_view_rank(local, n, &dop, &err)))
          n++;
        if (n == VMS) rc = vs_store_publish_findings(s, ranked, n, &err);
        for (size_t i = 0; i < n; i++)
          vs_drift_free(ranked[i]);
      }
      answer(rc, &err);
      vs_view_free(local);
    } else if (strcmp(line, "read") == 0) {
      struct vs_view *fleet = vs_view_new();
      size_t refused = 0;
      if (vs_store_load(s, fleet, &refused, NULL, NULL, &err) < 0) {
        printf("error: %s\n", vs_err_msg(&err));
        vs_err_clear(&err);
      } else {
        for (size_t i = 0; i < vs_view_count(fleet); i++) {
          const struct vs_feature *doc = vs_view_doc(fleet, i), *p = vs_view_prev(fleet, i);
          printf("%s%s:%s<%s", i ? " " : "", vs_feature_id(doc), vs_feature_taken_at(doc),
                 p ? vs_feature_taken_at(p) : "none");
        }
        printf("%s%zu refused\n", vs_view_count(fleet) ? " " : "", refused);
      }
      vs_view_free(fleet);
    } else if (strcmp(line, "fleet") == 0) {
      struct vs_fleet_findings *f = vs_xcalloc(1, sizeof(*f));
      f->vms = 6000;
      f->n_groups = 300;
      f->groups = vs_xcalloc(f->n_groups, sizeof(*f->groups));
      for (size_t g = 0; g < f->n_groups; g++) {
        struct vs_group *x = &f->groups[g];
        x->key = vs_xasprintf("file:/etc/app.conf:k%03zu", g);
        x->value = vs_xstrdup("tuned");
        x->rest = vs_xstrdup("default");
        x->rest_count = 5000;
        x->keys = 1;
        x->n_members = 20;
        x->members = vs_xcalloc(x->n_members, sizeof(char *));
        for (size_t m = 0; m < x->n_members; m++)
          x->members[m] = vs_xasprintf("vm-%05zu", g * x->n_members + m);
      }
      int rc = vs_store_elected(s) ? vs_store_publish_fleet(s, f, &err)
                                   : vs_err_set(&err, EAGAIN, "another host holds the lock");
      answer(rc, &err);
      vs_fleet_findings_free(f);
    } else if ((strncmp(line, "change p-", 9) == 0 || strncmp(line, "retake p-", 9) == 0) &&
               line[9] >= '1' && line[9] < '1' + VMS && !line[10]) {
      size_t i = (size_t)(line[9] - '1');
      prev[i] = newest[i], has_prev[i] = true;
      newest[i].minute++;
      if (line[0] == 'c') newest[i].version++;
      printf("ok\n");
    } else if (strncmp(line, "forget p-", 9) == 0 && line[9] >= '1' && line[9] < '1' + VMS &&
               !line[10]) {
      has_prev[line[9] - '1'] = false;
      printf("ok\n");
    } else {
      printf("error: unknown command \"%s\"\n", line);
    }
  }
  vs_store_free(s);
  return 0;
}
