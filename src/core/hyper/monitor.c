#include "monitor.h"

#include "qmp.h"
#include "virt.h"

#include <errno.h>
#include <stdlib.h>

struct vs_monitor {
  struct vs_qmp *qmp; /* NULL: libvirt's pass-through */
  struct vs_virt *v;
  char *what; /* the socket's path or the domain */
};

struct vs_monitor *vs_monitor_open_qmp(const char *path, int timeout_ms, struct vs_err *err) {
  struct vs_qmp *q = vs_qmp_open(path, timeout_ms, err);
  if (!q) return NULL;
  struct vs_monitor *m = vs_xcalloc(1, sizeof(*m));
  m->qmp = q;
  m->what = vs_xstrdup(path);
  return m;
}

struct vs_monitor *vs_monitor_open_libvirt(struct vs_virt *v, const char *domain) {
  struct vs_monitor *m = vs_xcalloc(1, sizeof(*m));
  m->v = v;
  m->what = vs_xstrdup(domain);
  return m;
}

void vs_monitor_close(struct vs_monitor *m) {
  if (!m) return;
  vs_qmp_close(m->qmp);
  free(m->what);
  free(m);
}

void vs_monitor_closep(struct vs_monitor **m) {
  vs_monitor_close(*m);
}

const char *vs_monitor_what(const struct vs_monitor *m) {
  return m->what;
}

/* libvirt passes the command text through and hands back QEMU's reply text. */
static int exec_libvirt(struct vs_monitor *m, const char *command, json_t *args, json_t **ret,
                        struct vs_err *err) {
  _cleanup_(json_decrefp) json_t *cmd = json_pack("{ss}", "execute", command);
  if (args) json_object_set(cmd, "arguments", args);
  _cleanup_(vs_freep) char *text = json_dumps(cmd, JSON_COMPACT);
  _cleanup_(vs_freep) char *reply = NULL;
  if (!text) return vs_err_set(err, ENOMEM, "%s: cannot encode the command %s", m->what, command);
  if (vs_virt_monitor_command(m->v, m->what, text, &reply, err) < 0) return -1;
  _cleanup_(json_decrefp) json_t *r = json_loads(reply, 0, NULL);
  json_t *e = json_object_get(r, "error");
  if (!r || e) {
    const char *desc = json_string_value(json_object_get(e, "desc"));
    return vs_err_set(err, EREMOTEIO, "%s: %s", command, desc ? desc : "an unreadable reply");
  }
  if (ret) *ret = json_incref(json_object_get(r, "return"));
  return 0;
}

int vs_monitor_exec(struct vs_monitor *m, const char *command, json_t *args, json_t **ret,
                    struct vs_err *err) {
  if (ret) *ret = NULL;
  if (m->qmp) return vs_qmp_execute(m->qmp, command, args, ret, err);
  return exec_libvirt(m, command, args, ret, err);
}
