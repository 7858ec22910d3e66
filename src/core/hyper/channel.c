#include "channel.h"

#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libvirt/virterror.h>

enum transport { UNIX_SOCKET, LIBVIRT };

struct vs_channel {
  pthread_mutex_t lock;
  enum transport kind;
  char *target; /* socket path, or domain */
  struct vs_virt *virt;
  int fd;
  bool synced;
  struct vs_buf in; /* received, not yet consumed */
  int timeout_ms;
  int thaw_wait_ms; /* 0: a frozen guest's refusal is the answer */
  size_t max_reply;
  char **allow;
  size_t n_allow;
};

const char *vs_channel_status_name(enum vs_channel_status s) {
  static const char *const names[] = {"ok",          "not_configured", "not_connected", "timeout",
                                      "agent_error", "malformed",      "refused",       "failed"};
  return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "failed";
}

/* Read-only, informational commands: what is allowed unless the caller allows more. */
static const char *const default_allow[] = {"guest-ping",
                                            "guest-info",
                                            "guest-get-osinfo",
                                            "guest-get-host-name",
                                            "guest-get-time",
                                            "guest-get-timezone",
                                            "guest-get-users",
                                            "guest-get-vcpus",
                                            "guest-get-fsinfo",
                                            "guest-get-disks",
                                            "guest-fsfreeze-status",
                                            "guest-network-get-interfaces",
                                            "guest-get-memory-blocks",
                                            "guest-get-memory-block-info",
                                            "guest-get-cpustats",
                                            "guest-get-diskstats"};

static struct vs_channel *channel_new(enum transport kind, const char *target,
                                      const struct vs_channel_opts *o) {
  struct vs_channel *c = vs_xcalloc(1, sizeof(*c));
  pthread_mutex_init(&c->lock, NULL);
  c->kind = kind;
  c->target = vs_xstrdup(target);
  c->fd = -1;
  c->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : VS_CHANNEL_TIMEOUT_MS;
  c->max_reply = o && o->max_reply ? o->max_reply : VS_CHANNEL_MAX_REPLY;
  c->thaw_wait_ms = o && o->thaw_wait_ms > 0 ? o->thaw_wait_ms : 0;
  size_t n = o ? o->n_allow : 0;
  c->allow = vs_xcalloc(n + 1, sizeof(char *));
  for (size_t i = 0; i < n; i++)
    c->allow[c->n_allow++] = vs_xstrdup(o->allow[i]);
  return c;
}

struct vs_channel *vs_channel_open_unix(const char *path, const struct vs_channel_opts *o) {
  return channel_new(UNIX_SOCKET, path, o);
}

struct vs_channel *vs_channel_open_libvirt(struct vs_virt *v, const char *domain,
                                           const struct vs_channel_opts *o) {
  struct vs_channel *c = channel_new(LIBVIRT, domain, o);
  c->virt = v;
  return c;
}

struct vs_channel *vs_channel_open_spec(const char *spec, struct vs_virt *v, const char *uuid,
                                        const struct vs_channel_opts *o) {
  if (strncmp(spec, "unix:", 5) == 0) return vs_channel_open_unix(spec + 5, o);
  if (strcmp(spec, "libvirt") == 0 && v) return vs_channel_open_libvirt(v, uuid, o);
  return NULL;
}

static void disconnect(struct vs_channel *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->synced = false;
  vs_buf_reset(&c->in);
}

void vs_channel_close(struct vs_channel *c) {
  if (!c) return;
  disconnect(c);
  vs_buf_free(&c->in);
  for (size_t i = 0; i < c->n_allow; i++)
    free(c->allow[i]);
  free(c->allow);
  free(c->target);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

void vs_channel_closep(struct vs_channel **c) {
  vs_channel_close(*c);
}

bool vs_channel_allows(const struct vs_channel *c, const char *command) {
  for (size_t i = 0; i < sizeof(default_allow) / sizeof(default_allow[0]); i++)
    if (strcmp(command, default_allow[i]) == 0) return true;
  for (size_t i = 0; i < c->n_allow; i++)
    if (strcmp(command, c->allow[i]) == 0) return true;
  /* Polling an exec is part of the exec: allowed when guest-exec is. */
  if (strcmp(command, "guest-exec-status") == 0) return vs_channel_allows(c, "guest-exec");
  return false;
}

static enum vs_channel_status fail(struct vs_err *err, enum vs_channel_status s, int code,
                                   const char *fmt, ...) VS_PRINTF(4, 5);
static enum vs_channel_status fail(struct vs_err *err, enum vs_channel_status s, int code,
                                   const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) abort();
  va_end(ap);
  vs_err_set(err, code, "%s (%s)", msg, vs_channel_status_name(s));
  free(msg);
  return s;
}

/* ----------------------------------------------------------------------- unix transport */

static int remaining_ms(double deadline) {
  double left = deadline - vs_now_monotonic();
  return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

static enum vs_channel_status connect_unix(struct vs_channel *c, struct vs_err *err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(c->target) >= sizeof(sa.sun_path))
    return fail(err, VS_CHANNEL_FAILED, ENAMETOOLONG, "%s: socket path too long", c->target);
  memcpy(sa.sun_path, c->target, strlen(c->target) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail(err, VS_CHANNEL_FAILED, errno, "socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = errno;
    close(fd);
    if (e == ENOENT || e == ECONNREFUSED || e == EAGAIN)
      return fail(err, VS_CHANNEL_NOT_CONNECTED, e, "%s: nothing listens: %s", c->target,
                  strerror(e));
    return fail(err, VS_CHANNEL_FAILED, e, "%s: %s", c->target, strerror(e));
  }
  c->fd = fd;
  return VS_CHANNEL_OK;
}

static enum vs_channel_status write_all(struct vs_channel *c, const char *data, size_t len,
                                        double deadline, struct vs_err *err) {
  while (len) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      int e = errno;
      disconnect(c);
      return fail(err, VS_CHANNEL_NOT_CONNECTED, e, "%s: send: %s", c->target, strerror(e));
    }
    struct pollfd p = {.fd = c->fd, .events = POLLOUT};
    if (poll(&p, 1, remaining_ms(deadline)) == 0)
      return fail(err, VS_CHANNEL_TIMEOUT, ETIMEDOUT, "%s: the agent does not take input",
                  c->target);
  }
  return VS_CHANNEL_OK;
}

/* Reads more input, waiting until DEADLINE. */
static enum vs_channel_status read_more(struct vs_channel *c, double deadline, struct vs_err *err) {
  for (;;) {
    char chunk[65536];
    ssize_t n = recv(c->fd, chunk, sizeof(chunk), 0);
    if (n > 0) {
      vs_buf_add(&c->in, chunk, (size_t)n);
      return VS_CHANNEL_OK;
    }
    if (n == 0) {
      disconnect(c);
      return fail(err, VS_CHANNEL_NOT_CONNECTED, ECONNRESET, "%s: the agent closed the channel",
                  c->target);
    }
    if (errno != EAGAIN && errno != EINTR) {
      int e = errno;
      disconnect(c);
      return fail(err, VS_CHANNEL_NOT_CONNECTED, e, "%s: recv: %s", c->target, strerror(e));
    }
    int ms = remaining_ms(deadline);
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (ms == 0 || poll(&p, 1, ms) == 0)
      return fail(err, VS_CHANNEL_TIMEOUT, ETIMEDOUT, "%s: no reply within %d ms", c->target,
                  c->timeout_ms);
  }
}

static void consume(struct vs_channel *c, size_t n) {
  memmove(c->in.data, c->in.data + n, c->in.len - n);
  c->in.len -= n;
  c->in.data[c->in.len] = '\0';
}

/* The next line of input (without its newline), parsed as JSON. */
static enum vs_channel_status read_json(struct vs_channel *c, double deadline, json_t **out,
                                        struct vs_err *err) {
  for (;;) {
    char *nl = c->in.len ? memchr(c->in.data, '\n', c->in.len) : NULL;
    if (nl) {
      size_t len = (size_t)(nl - c->in.data);
      json_error_t je;
      *out = json_loadb(c->in.data, len, JSON_REJECT_DUPLICATES, &je);
      consume(c, len + 1);
      if (!*out) {
        c->synced = false;
        return fail(err, VS_CHANNEL_MALFORMED, EPROTO, "%s: the reply is not JSON: %s", c->target,
                    je.text);
      }
      return VS_CHANNEL_OK;
    }
    if (c->in.len > c->max_reply) {
      disconnect(c);
      return fail(err, VS_CHANNEL_MALFORMED, EMSGSIZE, "%s: a reply over %zu bytes", c->target,
                  c->max_reply);
    }
    enum vs_channel_status s = read_more(c, deadline, err);
    if (s != VS_CHANNEL_OK) return s;
  }
}

/* guest-sync-delimited: after it, the next line is the reply to the next command. */
static enum vs_channel_status sync_unix(struct vs_channel *c, struct vs_err *err) {
  double deadline = vs_now_monotonic() + c->timeout_ms / 1000.0;
  enum vs_channel_status s;
  if (c->fd < 0 && (s = connect_unix(c, err)) != VS_CHANNEL_OK) return s;
  vs_buf_reset(&c->in);
  uint32_t id;
  if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id)) id = (uint32_t)(uintptr_t)c ^ 0x5a5a;
  id &= 0x7fffffff; /* a JSON integer every agent parses */
  char *msg =
      vs_xasprintf("\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%u}}\n", id);
  s = write_all(c, msg, strlen(msg), deadline, err);
  free(msg);
  if (s != VS_CHANNEL_OK) return s;
  /* Whatever comes before the agent's 0xFF marker is someone else's: discard it. */
  for (;;) {
    char *mark = c->in.len ? memchr(c->in.data, 0xff, c->in.len) : NULL;
    if (mark) {
      consume(c, (size_t)(mark - c->in.data) + 1);
      break;
    }
    vs_buf_reset(&c->in);
    if ((s = read_more(c, deadline, err)) != VS_CHANNEL_OK) return s;
  }
  for (;;) {
    json_t *j = NULL;
    s = read_json(c, deadline, &j, err);
    if (s == VS_CHANNEL_MALFORMED) {
      vs_err_clear(err);
      continue; /* garbage after the marker: keep looking for our id */
    }
    if (s != VS_CHANNEL_OK) return s;
    json_t *r = json_object_get(j, "return");
    bool ours = json_is_integer(r) && json_integer_value(r) == (json_int_t)id;
    json_decref(j);
    if (ours) break;
  }
  c->synced = true;
  return VS_CHANNEL_OK;
}

static enum vs_channel_status call_unix(struct vs_channel *c, const char *text, json_t **reply,
                                        struct vs_err *err) {
  enum vs_channel_status s;
  if (!c->synced && (s = sync_unix(c, err)) != VS_CHANNEL_OK) return s;
  double deadline = vs_now_monotonic() + c->timeout_ms / 1000.0;
  if ((s = write_all(c, text, strlen(text), deadline, err)) != VS_CHANNEL_OK) return s;
  if ((s = write_all(c, "\n", 1, deadline, err)) != VS_CHANNEL_OK) return s;
  s = read_json(c, deadline, reply, err);
  if (s == VS_CHANNEL_TIMEOUT) c->synced = false; /* a late reply must not answer the next one */
  return s;
}

/* -------------------------------------------------------------------- libvirt transport */

static enum vs_channel_status call_libvirt(struct vs_channel *c, const char *text, json_t **reply,
                                           struct vs_err *err) {
  char *out = NULL;
  int code = 0;
  int timeout_s = (c->timeout_ms + 999) / 1000;
  if (vs_virt_agent_command(c->virt, c->target, text, timeout_s, &out, &code, err) < 0) {
    enum vs_channel_status s = code == VIR_ERR_ARGUMENT_UNSUPPORTED ? VS_CHANNEL_NOT_CONFIGURED
                               : code == VIR_ERR_AGENT_UNRESPONSIVE ? VS_CHANNEL_NOT_CONNECTED
                               : code == VIR_ERR_AGENT_UNSYNCED     ? VS_CHANNEL_NOT_CONNECTED
                               : code == VIR_ERR_OPERATION_TIMEOUT  ? VS_CHANNEL_TIMEOUT
                               : code == VIR_ERR_OPERATION_INVALID  ? VS_CHANNEL_NOT_CONNECTED
                                                                    : VS_CHANNEL_FAILED;
    return fail(err, s, err->code ? err->code : EIO, "%s", vs_err_msg(err));
  }
  json_error_t je;
  *reply = out ? json_loads(out, JSON_REJECT_DUPLICATES, &je) : NULL;
  free(out);
  if (!*reply)
    return fail(err, VS_CHANNEL_MALFORMED, EPROTO, "%s: the reply is not JSON", c->target);
  return VS_CHANNEL_OK;
}

/* -------------------------------------------------------------------------------- calls */

/* COMMAND (encoded as TEXT) once: the agent's "return" into *REPLY, its "error" as
 * VS_CHANNEL_AGENT_ERROR. */
static enum vs_channel_status call_once(struct vs_channel *c, const char *command, const char *text,
                                        json_t **reply, struct vs_err *err) {
  json_t *answer = NULL;
  pthread_mutex_lock(&c->lock);
  enum vs_channel_status s = c->kind == UNIX_SOCKET ? call_unix(c, text, &answer, err)
                                                    : call_libvirt(c, text, &answer, err);
  pthread_mutex_unlock(&c->lock);
  if (s != VS_CHANNEL_OK) return s;
  json_t *ret = json_object_get(answer, "return"), *error = json_object_get(answer, "error");
  if (ret) {
    *reply = json_incref(ret);
  } else if (json_is_object(error)) {
    const char *cls = json_string_value(json_object_get(error, "class"));
    const char *desc = json_string_value(json_object_get(error, "desc"));
    s = fail(err, VS_CHANNEL_AGENT_ERROR, EREMOTEIO, "%s: %s: %s: %s", c->target, command,
             cls ? cls : "error", desc ? desc : "(no description)");
  } else {
    s = fail(err, VS_CHANNEL_MALFORMED, EPROTO, "%s: %s: a reply with neither return nor error",
             c->target, command);
  }
  json_decref(answer);
  return s;
}

/* Whether the agent says the guest's file systems are frozen. */
static bool frozen(struct vs_channel *c) {
  json_t *st = NULL;
  struct vs_err e = {0};
  bool is_frozen = call_once(c, "guest-fsfreeze-status", "{\"execute\":\"guest-fsfreeze-status\"}",
                             &st, &e) == VS_CHANNEL_OK &&
                   json_is_string(st) && strcmp(json_string_value(st), "frozen") == 0;
  json_decref(st);
  vs_err_clear(&e);
  return is_frozen;
}

/* A frozen guest's agent refuses all but a few commands (through libvirt, that comes as a
 * libvirt error): when the file systems are frozen, waits until they thaw, at most until
 * UNTIL (monotonic seconds). 1: thawed, the command may be sent again; 0: it was not frozen
 * (ERR stays); -1: still frozen at UNTIL (ERR says so). */
static int wait_thawed(struct vs_channel *c, const char *command, double until,
                       struct vs_err *err) {
  if (!frozen(c)) return 0;
  double t0 = vs_now_monotonic();
  int wait_ms = 20;
  do {
    if (vs_now_monotonic() >= until) {
      vs_err_clear(err);
      fail(err, VS_CHANNEL_AGENT_ERROR, EBUSY,
           "%s: %s: the guest's file systems stayed frozen for %.1f s (a snapshot's freeze, or "
           "one nobody thawed: guest-fsfreeze-thaw ends it); not run",
           c->target, command, vs_now_monotonic() - t0);
      return -1;
    }
    usleep((useconds_t)wait_ms * 1000);
    if (wait_ms < 500) wait_ms *= 2;
  } while (frozen(c));
  vs_log(VS_LOG_INFO, "%s: %s waited %.2f s for the guest's file systems to thaw", c->target,
         command, vs_now_monotonic() - t0);
  vs_err_clear(err);
  return 1;
}

/* Whether ERR is qemu-ga's refusal of a command while the guest's file systems are frozen
 * ("Command guest-exec-status has been disabled: the agent is in frozen state"), whichever
 * transport brought it. */
static bool refused_frozen(const struct vs_err *err) {
  return err->msg && strstr(err->msg, "has been disabled") && strstr(err->msg, "frozen state");
}

enum vs_channel_status vs_channel_call(struct vs_channel *c, const char *command, json_t *arguments,
                                       json_t **reply, struct vs_err *err) {
  *reply = NULL;
  if (!vs_channel_allows(c, command))
    return fail(err, VS_CHANNEL_REFUSED, EPERM,
                "%s: \"%s\" is not allowed on this channel (allow it in the configuration)",
                c->target, command);
  json_t *cmd = json_object();
  json_object_set_new(cmd, "execute", json_string(command));
  if (arguments) json_object_set(cmd, "arguments", arguments);
  _cleanup_(vs_freep) char *text = json_dumps(cmd, JSON_COMPACT);
  json_decref(cmd);
  if (!text) return fail(err, VS_CHANNEL_FAILED, EINVAL, "%s: cannot encode the command", command);
  double until = vs_now_monotonic() + c->thaw_wait_ms / 1000.0;
  for (;;) {
    enum vs_channel_status s = call_once(c, command, text, reply, err);
    if ((s != VS_CHANNEL_AGENT_ERROR && s != VS_CHANNEL_FAILED) || c->thaw_wait_ms <= 0 ||
        strncmp(command, "guest-fsfreeze-", 15) == 0)
      return s;
    int thawed = wait_thawed(c, command, until, err);
    if (thawed == 0 && refused_frozen(err) && vs_now_monotonic() < until) {
      /* A freeze short enough to end between the refusal and guest-fsfreeze-status (a backup
       * snapshot's): the guest is thawed now, so the command is sent again. */
      vs_log(VS_LOG_INFO,
             "%s: %s was refused by a freeze that had ended when it was looked "
             "at; sent again",
             c->target, command);
      usleep(20000);
      continue;
    }
    if (thawed == 0) return s;
    if (thawed < 0) return VS_CHANNEL_AGENT_ERROR;
  }
}

/* Base64 TEXT decoded, cut at MAX bytes (*TRUNCATED says so); junk decodes as empty. */
static char *decode_base64(const char *text, size_t max, size_t *len, bool *truncated) {
  char *out = vs_base64_decode(text, len);
  if (!out) {
    out = vs_xstrdup("");
    *len = 0;
  }
  *truncated = *len > max;
  if (*truncated) {
    *len = max;
    out[max] = '\0';
  }
  return out;
}

void vs_exec_result_clear(struct vs_exec_result *r) {
  free(r->out);
  free(r->err);
  *r = (struct vs_exec_result){0};
}

json_t *vs_exec_result_to_json(const struct vs_exec_result *x) {
  return json_pack("{sisisososbsb}", "exit_code", x->exit_code, "signal", x->signal, "output",
                   vs_json_text(x->out, x->out_len), "stderr", vs_json_text(x->err, x->err_len),
                   "output_truncated", x->out_truncated, "stderr_truncated", x->err_truncated);
}

enum vs_channel_status vs_exec_wait(vs_agent_call_fn call, void *ctx, const char *target,
                                    const char *what, int64_t pid, int deadline_ms,
                                    struct vs_exec_result *out, struct vs_err *err) {
  *out = (struct vs_exec_result){0};
  /* The output comes base64-encoded: a Nettle that cannot be opened is said here, not read
   * as empty output. */
  if (vs_crypto_load(err) < 0) return VS_CHANNEL_FAILED;
  if (deadline_ms <= 0) deadline_ms = 30000;
  double deadline = vs_now_monotonic() + deadline_ms / 1000.0;
  int wait_ms = 2;
  for (;;) {
    json_t *st_args = json_pack("{sI}", "pid", (json_int_t)pid), *st = NULL;
    enum vs_channel_status s = call(ctx, "guest-exec-status", st_args, &st, err);
    json_decref(st_args);
    if (s != VS_CHANNEL_OK) return s;
    if (json_is_true(json_object_get(st, "exited"))) {
      json_t *code = json_object_get(st, "exitcode"), *sig = json_object_get(st, "signal");
      out->exit_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
      out->signal = json_is_integer(sig) ? (int)json_integer_value(sig) : 0;
      const char *o = json_string_value(json_object_get(st, "out-data"));
      const char *e = json_string_value(json_object_get(st, "err-data"));
      out->out =
          decode_base64(o ? o : "", VS_CHANNEL_MAX_OUTPUT, &out->out_len, &out->out_truncated);
      out->err =
          decode_base64(e ? e : "", VS_CHANNEL_MAX_OUTPUT, &out->err_len, &out->err_truncated);
      out->out_truncated |= json_is_true(json_object_get(st, "out-truncated"));
      out->err_truncated |= json_is_true(json_object_get(st, "err-truncated"));
      json_decref(st);
      return VS_CHANNEL_OK;
    }
    json_decref(st);
    if (vs_now_monotonic() + wait_ms / 1000.0 > deadline)
      return fail(err, VS_CHANNEL_TIMEOUT, ETIMEDOUT,
                  "%s: %s (pid %lld in the guest) did not exit within %d ms; it is left running",
                  target, what, (long long)pid, deadline_ms);
    usleep((useconds_t)wait_ms * 1000);
    if (wait_ms < 100) wait_ms *= 2;
  }
}

static enum vs_channel_status call_channel(void *c, const char *command, json_t *arguments,
                                           json_t **reply, struct vs_err *err) {
  return vs_channel_call(c, command, arguments, reply, err);
}

enum vs_channel_status vs_channel_exec(struct vs_channel *c, const char *path,
                                       const char *const *argv, int deadline_ms,
                                       struct vs_exec_result *out, struct vs_err *err) {
  *out = (struct vs_exec_result){0};
  double t0 = vs_now_monotonic();
  json_t *args = json_object();
  json_object_set_new(args, "path", json_string(path));
  json_t *arg = json_array();
  for (size_t i = 0; argv && argv[i]; i++)
    json_array_append_new(arg, json_string(argv[i]));
  json_object_set_new(args, "arg", arg);
  json_object_set_new(args, "capture-output", json_true());
  json_t *started = NULL;
  enum vs_channel_status s = vs_channel_call(c, "guest-exec", args, &started, err);
  json_decref(args);
  if (s != VS_CHANNEL_OK) return s;
  json_int_t pid = json_integer_value(json_object_get(started, "pid"));
  bool has_pid = json_is_integer(json_object_get(started, "pid"));
  json_decref(started);
  if (!has_pid)
    return fail(err, VS_CHANNEL_MALFORMED, EPROTO, "%s: guest-exec returned no pid", c->target);
  if (deadline_ms <= 0) deadline_ms = 30000;
  int left = deadline_ms - (int)((vs_now_monotonic() - t0) * 1000);
  return vs_exec_wait(call_channel, c, c->target, path, pid, left > 0 ? left : 1, out, err);
}
