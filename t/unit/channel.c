/* The guest agent channel against the real qemu-ga (run here as "qemu-ga -m unix-listen",
 * with everything that changes the machine blocked), a socket that never answers, a relay that
 * sends garbage first, a fake agent that answers with junk, and one whose guest is frozen. */
#include "channel.h"
#include "daemons.h"
#include "fixture.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *blocked =
    "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-time,"
    "guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-fstrim,"
    "guest-set-user-password,guest-set-vcpus,guest-set-memory-blocks,guest-file-open,"
    "guest-file-write,guest-ssh-add-authorized-keys,guest-ssh-remove-authorized-keys,"
    "guest-network-set-interfaces";

static int listen_on(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) abort();
  return fd;
}

static int connect_to(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) return -1;
  return fd;
}

/* A relay to qemu-ga that first sends a stale reply and junk, as a previous client's leftovers
 * would look. */
struct relay {
  int listen_fd;
  const char *agent;
};
static void *relay_run(void *p) {
  struct relay *r = p;
  int client = accept(r->listen_fd, NULL, NULL);
  int agent = connect_to(r->agent);
  if (client < 0 || agent < 0) return NULL;
  const char junk[] = "{\"return\": 42}\n}}garbage{{\n";
  if (write(client, junk, sizeof(junk) - 1) < 0) return NULL;
  struct pollfd fds[2] = {{.fd = client, .events = POLLIN}, {.fd = agent, .events = POLLIN}};
  char buf[65536];
  while (poll(fds, 2, 5000) > 0) {
    for (int i = 0; i < 2; i++) {
      if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0 || write(fds[1 - i].fd, buf, (size_t)n) != n) goto out;
    }
  }
out:
  close(client);
  close(agent);
  return NULL;
}

/* A fake agent's one connection on LISTEN_FD: each command line gets ANSWER's reply (OUT, a
 * line); guest-sync-delimited is answered here, as an agent does, with its 0xFF marker. */
typedef void answer_fn(const char *line, char *out, size_t size, void *arg);
static void serve_lines(int listen_fd, answer_fn *answer, void *arg) {
  int fd = accept(listen_fd, NULL, NULL);
  if (fd < 0) return;
  char buf[4096];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
    buf[len] = '\0';
    char *nl;
    while ((nl = strchr(buf, '\n'))) {
      *nl = '\0';
      char *id = strstr(buf, "\"id\":");
      char out[512];
      if (strstr(buf, "guest-sync-delimited") && id)
        snprintf(out, sizeof(out), "\xff{\"return\": %ld}\n", strtol(id + 5, NULL, 10));
      else
        answer(buf, out, sizeof(out), arg);
      if (write(fd, out, strlen(out)) < 0) break;
      len -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, len + 1);
    }
  }
  close(fd);
}

/* A fake agent that syncs properly, answers the first command with junk, then behaves. It
 * serves one connection (the channel resyncs on the same one) and returns when it closes. */
static void junk_first(const char *line, char *out, size_t size, void *arg) {
  (void)line;
  int *commands = arg;
  snprintf(out, size, "%s",
           (*commands)++ == 0 ? "this is not json\n" : "{\"return\": {\"fake\": true}}\n");
}
static void *fake_run(void *p) {
  int commands = 0;
  serve_lines(*(int *)p, junk_first, &commands);
  return NULL;
}

/* A fake agent whose guest's file systems are frozen, as qemu-ga is between
 * guest-fsfreeze-freeze and guest-fsfreeze-thaw: it refuses guest-exec with qemu-ga's own
 * error and answers guest-fsfreeze-status "frozen", THAW_AFTER times (-1: for good), then
 * "thawed" and runs what it is asked. One connection. */
struct frozen_agent {
  int listen_fd;
  int thaw_after;
  int late_refusals; /* guest-exec-status refused this many times while already thawed */
  int refused, status_asked, execs; /* what it saw */
};
static void frozen_answer(const char *line, char *out, size_t size, void *arg) {
  struct frozen_agent *a = arg;
  bool is_frozen = a->thaw_after < 0 || a->status_asked < a->thaw_after;
  if (strstr(line, "guest-fsfreeze-status")) {
    snprintf(out, size, "{\"return\": \"%s\"}\n", is_frozen ? "frozen" : "thawed");
    a->status_asked++;
  } else if (is_frozen || (a->late_refusals > 0 && strstr(line, "guest-exec-status"))) {
    if (!is_frozen) a->late_refusals--; /* a freeze that ended before anyone asked */
    const char *cmd = strstr(line, "guest-exec-status") ? "guest-exec-status" : "guest-exec";
    snprintf(out, size,
             "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command %s has been "
             "disabled: the agent is in frozen state\"}}\n",
             cmd);
    a->refused++;
  } else if (strstr(line, "guest-exec-status")) {
    snprintf(out, size,
             "{\"return\": {\"exited\": true, \"exitcode\": 0, \"out-data\": \"b2sK\"}}\n");
  } else {
    snprintf(out, size, "{\"return\": {\"pid\": 42}}\n");
    a->execs++;
  }
}
static void *frozen_run(void *p) {
  struct frozen_agent *a = p;
  serve_lines(a->listen_fd, frozen_answer, a);
  return NULL;
}

/* One guest-exec through a channel with THAW_WAIT_MS to an agent frozen THAW_AFTER times. */
static enum vs_channel_status exec_frozen(const char *dir, int thaw_after, int thaw_wait_ms,
                                          struct frozen_agent *a, struct vs_exec_result *x,
                                          struct vs_err *err, double *seconds) {
  char path[300];
  snprintf(path, sizeof(path), "%s/frozen-%d-%d.sock", dir, thaw_after, thaw_wait_ms);
  *a = (struct frozen_agent){.listen_fd = listen_on(path), .thaw_after = thaw_after};
  pthread_t t;
  pthread_create(&t, NULL, frozen_run, a);
  const char *allow[] = {"guest-exec"};
  struct vs_channel_opts o = {.allow = allow, .n_allow = 1, .thaw_wait_ms = thaw_wait_ms};
  struct vs_channel *c = vs_channel_open_unix(path, &o);
  double t0 = vs_now_monotonic();
  enum vs_channel_status s = vs_channel_exec(c, "/bin/true", NULL, 5000, x, err);
  *seconds = vs_now_monotonic() - t0;
  vs_channel_close(c); /* the fake's connection ends */
  pthread_join(t, NULL);
  close(a->listen_fd);
  return s;
}

/* Issue 20's race: a remediation's guest-exec sent while a backup snapshot had the guest's
 * file systems frozen was refused, and nothing tried again. */
static void test_frozen_guest(const char *dir) {
  struct frozen_agent a;
  struct vs_exec_result x = {0};
  struct vs_err err = {0};
  double secs;
  enum vs_channel_status s = exec_frozen(dir, 3, 10000, &a, &x, &err, &secs);
  is_num(s, VS_CHANNEL_OK, "a guest-exec refused while the guest is frozen runs once it thawed%s%s",
         s ? ": " : "", s ? vs_err_msg(&err) : "");
  is_num(x.exit_code, 0, "and its exit code is the command's");
  is_num(a.refused, 1, "it was refused once (frozen)");
  is_num(a.status_asked, 4,
         "the channel asked guest-fsfreeze-status until it said thawed (4 times)");
  is_num(a.execs, 1, "and then ran it, once");
  vs_exec_result_clear(&x);
  vs_err_clear(&err);

  /* A backup's freeze, short, fell between guest-exec and guest-exec-status: the status poll
   * was refused, and the freeze was over when the channel asked. The command ran in the guest;
   * its result is still to be read (in CI the action reported a failure, the fix had run, and
   * its retry was dropped when the alarm cleared). */
  char path[300];
  snprintf(path, sizeof(path), "%s/late.sock", dir);
  a = (struct frozen_agent){.listen_fd = listen_on(path), .late_refusals = 1};
  pthread_t t;
  pthread_create(&t, NULL, frozen_run, &a);
  const char *allow[] = {"guest-exec"};
  struct vs_channel_opts o = {.allow = allow, .n_allow = 1, .thaw_wait_ms = 3000};
  struct vs_channel *c = vs_channel_open_unix(path, &o);
  s = vs_channel_exec(c, "/bin/true", NULL, 5000, &x, &err);
  vs_channel_close(c);
  pthread_join(t, NULL);
  close(a.listen_fd);
  is_num(s, VS_CHANNEL_OK,
         "a status poll refused by a freeze that ended before it was seen is sent again%s%s",
         s ? ": " : "", s ? vs_err_msg(&err) : "");
  is_num(a.refused, 1, "  (it was refused once, as frozen)");
  is_num(a.execs, 1, "  and the command ran once");
  is_num(x.exit_code, 0, "  and its exit code is the command's");
  vs_exec_result_clear(&x);
  vs_err_clear(&err);

  s = exec_frozen(dir, 3, 0, &a, &x, &err, &secs);
  is_num(s, VS_CHANNEL_AGENT_ERROR, "with no thaw wait the refusal is the answer");
  ok(strstr(vs_err_msg(&err), "frozen state") != NULL, "naming the frozen state: %s",
     vs_err_msg(&err));
  is_num(a.status_asked, 0, "and nobody asks whether the guest is frozen");
  vs_exec_result_clear(&x);
  vs_err_clear(&err);

  s = exec_frozen(dir, -1, 400, &a, &x, &err, &secs);
  is_num(s, VS_CHANNEL_AGENT_ERROR,
         "a guest that stays frozen fails the call when the wait is over");
  ok(strstr(vs_err_msg(&err), "stayed frozen") != NULL, "saying it stayed frozen: %s",
     vs_err_msg(&err));
  ok(secs >= 0.4 && secs < 5, "after the thaw wait, not the exec deadline (%.2f s)", secs);
  is_num(a.execs, 0, "and the command never ran");
  vs_exec_result_clear(&x);
  vs_err_clear(&err);
}

static void test_calls_answer(struct vs_channel *c) {
  struct vs_err err = {0};
  json_t *r = NULL;
  ok(vs_channel_call(c, "guest-ping", NULL, &r, &err) == VS_CHANNEL_OK && json_is_object(r),
     "guest-ping answers {} (%s)", err.msg ? err.msg : "ok");
  json_decref(r);
  ok(vs_channel_call(c, "guest-info", NULL, &r, &err) == VS_CHANNEL_OK &&
         json_is_string(json_object_get(r, "version")),
     "guest-info gives the agent's version");
  json_decref(r);
  ok(vs_channel_call(c, "guest-get-osinfo", NULL, &r, &err) == VS_CHANNEL_OK &&
         json_is_string(json_object_get(r, "id")),
     "guest-get-osinfo gives the OS id");
  json_decref(r);
  json_t *bad = json_pack("{si}", "bogus", 1);
  ok(vs_channel_call(c, "guest-info", bad, &r, &err) == VS_CHANNEL_AGENT_ERROR && err.msg &&
         strstr(err.msg, "agent_error") && strstr(err.msg, "bogus"),
     "an argument the agent rejects is an agent error with its description");
  json_decref(bad);
  vs_err_clear(&err);
  ok(vs_channel_call(c, "guest-ping", NULL, &r, &err) == VS_CHANNEL_OK,
     "and the channel still works after it");
  json_decref(r);
  vs_err_clear(&err);
}

static void test_commands_refused_unless_allowed(struct vs_channel *c) {
  struct vs_err err = {0};
  json_t *r = NULL;
  ok(vs_channel_call(c, "guest-exec", NULL, &r, &err) == VS_CHANNEL_REFUSED && err.msg &&
         strstr(err.msg, "refused"),
     "guest-exec is refused unless allowed");
  vs_err_clear(&err);
  ok(vs_channel_call(c, "guest-file-open", NULL, &r, &err) == VS_CHANNEL_REFUSED,
     "and so are file operations");
  vs_err_clear(&err);
}

static void test_many_pings(struct vs_channel *c) {
  struct vs_err err = {0};
  json_t *r = NULL;
  double t0 = vs_now_monotonic();
  int n = 0;
  for (; n < 200; n++)
    if (vs_channel_call(c, "guest-ping", NULL, &r, &err) != VS_CHANNEL_OK)
      break;
    else
      json_decref(r);
  double per = (vs_now_monotonic() - t0) / (n ? n : 1);
  ok(n == 200, "200 pings in a row answer (%.3f ms each)", per * 1e3);
  vs_err_clear(&err);
}

static void test_exec_output(struct vs_channel *c) {
  struct vs_err err = {0};
  struct vs_exec_result x;
  const char *argv_echo[] = {"vmscope", "channel", NULL};
  ok(vs_channel_exec(c, "/bin/echo", argv_echo, 10000, &x, &err) == VS_CHANNEL_OK &&
         x.exit_code == 0 && x.out && strcmp(x.out, "vmscope channel\n") == 0,
     "guest-exec runs a command and returns its output (%s)", err.msg ? err.msg : "ok");
  vs_exec_result_clear(&x);
  /* Output is whatever the guest wrote: a byte that is not UTF-8 must not make the report that
   * carries it unencodable (jansson's json_dumps gives up on the whole document). */
  const char *argv_junk[] = {"-c", "printf 'ok\\377\\000\\nline 2\\n'", NULL};
  enum vs_channel_status junk_status = vs_channel_exec(c, "/bin/sh", argv_junk, 10000, &x, &err);
  ok(junk_status == VS_CHANNEL_OK && x.out_len == 12,
     "guest-exec returns output that is not UTF-8, NUL included, byte for byte (%zu bytes)",
     x.out_len);
  json_t *report = json_pack("{so}", "output", vs_json_text(x.out, x.out_len));
  char *report_text = json_dumps(report, JSON_COMPACT);
  is_str(report_text, "{\"output\":\"ok\\\\xFF\\u0000\\nline 2\\n\"}",
         "and it serializes, the stray byte as \\xFF, the NUL and newlines escaped by JSON");
  free(report_text);
  json_decref(report);
  vs_exec_result_clear(&x);
  vs_err_clear(&err);
}

static void test_exec_status_and_deadline(struct vs_channel *c) {
  struct vs_err err = {0};
  struct vs_exec_result x;
  const char *argv_false[] = {NULL};
  ok(vs_channel_exec(c, "/bin/false", argv_false, 10000, &x, &err) == VS_CHANNEL_OK &&
         x.exit_code == 1,
     "and its exit status");
  vs_exec_result_clear(&x);
  const char *argv_sleep[] = {"5", NULL};
  double t0 = vs_now_monotonic();
  ok(vs_channel_exec(c, "/bin/sleep", argv_sleep, 300, &x, &err) == VS_CHANNEL_TIMEOUT &&
         vs_now_monotonic() - t0 < 2,
     "a command that outlives its deadline is a timeout, within the deadline");
  vs_err_clear(&err);
  vs_exec_result_clear(&x);
}

/* Nothing listens. */
static void test_no_socket(const char *dir) {
  struct vs_err err = {0};
  json_t *r = NULL;
  char missing[300];
  snprintf(missing, sizeof(missing), "%s/none.sock", dir);
  struct vs_channel *c = vs_channel_open_unix(missing, NULL);
  ok(vs_channel_call(c, "guest-ping", NULL, &r, &err) == VS_CHANNEL_NOT_CONNECTED && err.msg &&
         strstr(err.msg, "not_connected"),
     "no socket is not_connected");
  vs_err_clear(&err);
  vs_channel_close(c);
}

/* A socket that accepts and never answers. */
static void test_silent_socket(const char *silent) {
  struct vs_err err = {0};
  json_t *r = NULL;
  int silent_fd = listen_on(silent);
  struct vs_channel_opts quick = {.timeout_ms = 300};
  struct vs_channel *c = vs_channel_open_unix(silent, &quick);
  double t0 = vs_now_monotonic();
  enum vs_channel_status s = vs_channel_call(c, "guest-ping", NULL, &r, &err);
  double waited = vs_now_monotonic() - t0;
  ok(s == VS_CHANNEL_TIMEOUT && waited < 1.0,
     "a socket that never answers is a timeout after the deadline (%.0f ms)", waited * 1e3);
  vs_err_clear(&err);
  vs_channel_close(c);
  close(silent_fd);
}

/* Leftovers on the socket before our sync: discarded. */
static void test_leftovers_discarded(const char *relayed, const char *sock) {
  struct vs_err err = {0};
  json_t *r = NULL;
  struct relay rl = {.listen_fd = listen_on(relayed), .agent = sock};
  pthread_t rt;
  pthread_create(&rt, NULL, relay_run, &rl);
  struct vs_channel *c = vs_channel_open_unix(relayed, NULL);
  ok(vs_channel_call(c, "guest-info", NULL, &r, &err) == VS_CHANNEL_OK &&
         json_is_string(json_object_get(r, "version")),
     "a stale reply and garbage before the sync marker are discarded (%s)",
     err.msg ? err.msg : "ok");
  json_decref(r);
  vs_err_clear(&err);
  vs_channel_close(c);
  pthread_join(rt, NULL);
  close(rl.listen_fd);
}

/* A reply that is not JSON: malformed, and the next call syncs again and works. */
static void test_malformed_reply(const char *fake) {
  struct vs_err err = {0};
  json_t *r = NULL;
  int fake_fd = listen_on(fake);
  pthread_t ft;
  pthread_create(&ft, NULL, fake_run, &fake_fd);
  struct vs_channel *c = vs_channel_open_unix(fake, NULL);
  ok(vs_channel_call(c, "guest-ping", NULL, &r, &err) == VS_CHANNEL_MALFORMED && err.msg &&
         strstr(err.msg, "malformed"),
     "a reply that is not JSON is malformed");
  vs_err_clear(&err);
  ok(vs_channel_call(c, "guest-ping", NULL, &r, &err) == VS_CHANNEL_OK &&
         json_is_true(json_object_get(r, "fake")),
     "the next call syncs again and gets its own reply");
  json_decref(r);
  vs_err_clear(&err);
  vs_channel_close(c);
  pthread_join(ft, NULL); /* the fake returns once the channel has closed its connection */
  close(fake_fd);
}

int main(void) {
  plan_no_plan();
  char *dir = fx_tmpdir();
  char sock[256], silent[256], relayed[256], fake[256];
  snprintf(sock, sizeof(sock), "%s/qga.sock", dir);
  snprintf(silent, sizeof(silent), "%s/silent.sock", dir);
  snprintf(relayed, sizeof(relayed), "%s/relay.sock", dir);
  snprintf(fake, sizeof(fake), "%s/fake.sock", dir);
  pid_t qga = fx_qemu_ga_start(sock, dir, blocked);
  bool up = qga > 0;
  if (!up) {
    skip(1, "qemu-ga did not start (is qemu-guest-agent installed?)");
    return done_testing();
  }
  ok(up, "the real qemu-ga listens on a unix socket");

  struct vs_channel *c = vs_channel_open_unix(sock, NULL);
  test_calls_answer(c);
  test_commands_refused_unless_allowed(c);
  test_many_pings(c);
  vs_channel_close(c);

  const char *allow[] = {"guest-exec"};
  struct vs_channel_opts o = {.allow = allow, .n_allow = 1};
  c = vs_channel_open_unix(sock, &o);
  test_exec_output(c);
  test_exec_status_and_deadline(c);
  vs_channel_close(c);

  test_no_socket(dir);
  test_silent_socket(silent);
  test_leftovers_discarded(relayed, sock);
  test_malformed_reply(fake);
  test_frozen_guest(dir);

  kill(qga, SIGTERM);
  waitpid(qga, NULL, 0);
  fx_rmtree(dir);
  free(dir);
  return done_testing();
}
