#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct vs_qmp {
  int fd;
  int timeout_ms;
  char *path;
  struct vs_buf in;
};

void vs_qmp_close(struct vs_qmp *q) {
  if (!q) return;
  if (q->fd >= 0) close(q->fd);
  vs_buf_free(&q->in);
  free(q->path);
  free(q);
}

void vs_qmp_closep(struct vs_qmp **q) {
  vs_qmp_close(*q);
}

/* The next JSON line from QEMU. */
static json_t *read_message(struct vs_qmp *q, struct vs_err *err) {
  double deadline = vs_now_monotonic() + q->timeout_ms / 1000.0;
  for (;;) {
    char *nl = q->in.len ? memchr(q->in.data, '\n', q->in.len) : NULL;
    if (nl) {
      size_t len = (size_t)(nl - q->in.data);
      json_t *j = json_loadb(q->in.data, len, 0, NULL);
      memmove(q->in.data, nl + 1, q->in.len - len - 1);
      q->in.len -= len + 1;
      q->in.data[q->in.len] = '\0';
      if (!j) vs_err_set(err, EPROTO, "%s: QEMU sent something that is not JSON", q->path);
      return j;
    }
    if (q->in.len > (16u << 20)) {
      vs_err_set(err, EMSGSIZE, "%s: a QMP message over 16 MiB", q->path);
      return NULL;
    }
    int ms = (int)((deadline - vs_now_monotonic()) * 1000);
    struct pollfd p = {.fd = q->fd, .events = POLLIN};
    if (ms <= 0 || poll(&p, 1, ms) <= 0) {
      vs_err_set(err, ETIMEDOUT, "%s: QEMU did not answer within %d ms", q->path, q->timeout_ms);
      return NULL;
    }
    char chunk[65536];
    ssize_t n = read(q->fd, chunk, sizeof(chunk));
    if (n <= 0) {
      vs_err_set(err, ECONNRESET, "%s: QEMU closed the monitor", q->path);
      return NULL;
    }
    vs_buf_add(&q->in, chunk, (size_t)n);
  }
}

struct vs_qmp *vs_qmp_open(const char *path, int timeout_ms, struct vs_err *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path)) {
    vs_err_set(err, ENAMETOOLONG, "%s: socket path too long", path);
    return NULL;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  struct vs_qmp *q = vs_xcalloc(1, sizeof(*q));
  q->path = vs_xstrdup(path);
  q->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
  q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    vs_err_set(err, errno, "%s: cannot connect to QEMU's monitor: %s", path, strerror(errno));
    vs_qmp_close(q);
    return NULL;
  }
  json_t *greeting = read_message(q, err);
  bool ok = greeting && json_object_get(greeting, "QMP");
  json_decref(greeting);
  if (!ok || vs_qmp_execute(q, "qmp_capabilities", NULL, NULL, err) < 0) {
    if (!ok && !err->msg) vs_err_set(err, EPROTO, "%s: no QMP greeting", path);
    vs_qmp_close(q);
    return NULL;
  }
  return q;
}

int vs_qmp_execute(struct vs_qmp *q, const char *command, json_t *arguments, json_t **ret,
                   struct vs_err *err) {
  if (ret) *ret = NULL;
  json_t *cmd = json_pack("{ss}", "execute", command);
  if (arguments) json_object_set(cmd, "arguments", arguments);
  char *text = json_dumps(cmd, JSON_COMPACT);
  json_decref(cmd);
  size_t len = strlen(text);
  bool sent = write(q->fd, text, len) == (ssize_t)len && write(q->fd, "\n", 1) == 1;
  free(text);
  if (!sent)
    return vs_err_set(err, EIO, "%s: cannot send %s: %s", q->path, command, strerror(errno));
  for (;;) {
    json_t *m = read_message(q, err);
    if (!m) return -1;
    if (json_object_get(m, "event")) {
      json_decref(m);
      continue;
    }
    json_t *e = json_object_get(m, "error");
    if (e) {
      const char *cls = json_string_value(json_object_get(e, "class"));
      const char *desc = json_string_value(json_object_get(e, "desc"));
      vs_err_set(err, EREMOTEIO, "%s: %s: %s", command, cls ? cls : "error",
                 desc ? desc : "(no description)");
      json_decref(m);
      return -1;
    }
    if (ret) *ret = json_incref(json_object_get(m, "return"));
    json_decref(m);
    return 0;
  }
}
