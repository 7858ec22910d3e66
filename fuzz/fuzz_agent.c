/* fuzz_agent: a hostile guest agent on the other end of a unix channel. The input is split at
 * NUL bytes: the first part answers every guest-sync-delimited ("@ID@" becomes the id asked
 * for; an empty part answers honestly: 0xFF and {"return": ID}), each following part answers
 * the next command, and when the parts run out the agent hangs up. The first byte chooses the
 * call: guest-info, or guest-exec polled with guest-exec-status (output decoded from base64). */
#include "channel.h"
#include "fuzz.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct agent {
  int listener;
  const uint8_t *data;
  size_t size;
};

static void send_all(int fd, const void *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    p = (const char *)p + w;
    n -= (size_t)w;
  }
}

/* One request line from the client, or false when it hung up. */
static bool read_line(int fd, char *line, size_t cap) {
  size_t len = 0;
  for (;;) {
    char ch;
    /* A client still waiting for a reply that will not come: hang up rather than wait out its
     * deadline, which would only slow the fuzzer down. */
    struct pollfd readable = {.fd = fd, .events = POLLIN};
    if (poll(&readable, 1, 5) != 1) return false;
    ssize_t r = recv(fd, &ch, 1, 0);
    if (r <= 0) return false;
    if (ch == '\n') break;
    if (len + 1 < cap) line[len++] = ch;
  }
  line[len] = 0;
  return true;
}

static void *serve(void *arg) {
  struct agent *a = arg;
  struct pollfd waiting = {.fd = a->listener, .events = POLLIN};
  if (poll(&waiting, 1, 2000) != 1) return NULL; /* the client never came */
  int fd = accept(a->listener, NULL, NULL);
  if (fd < 0) return NULL;
  const uint8_t *end = a->data + a->size;
  const uint8_t *sync = a->data, *sync_end = memchr(sync, 0, a->size);
  if (!sync_end) sync_end = end;
  const uint8_t *next = sync_end < end ? sync_end + 1 : end;
  char line[4096];
  while (read_line(fd, line, sizeof(line))) {
    const char *idp = strstr(line, "\"id\":");
    if (strstr(line, "guest-sync-delimited") && idp) {
      unsigned long id = strtoul(idp + 5, NULL, 10);
      char ids[24];
      int idlen = snprintf(ids, sizeof(ids), "%lu", id);
      if (sync == sync_end) {
        char reply[64];
        int n = snprintf(reply, sizeof(reply), "\xff{\"return\": %lu}\n", id);
        send_all(fd, reply, (size_t)n);
        continue;
      }
      for (const uint8_t *p = sync; p < sync_end;) {
        const uint8_t *at = memmem(p, (size_t)(sync_end - p), "@ID@", 4);
        const uint8_t *stop = at ? at : sync_end;
        send_all(fd, p, (size_t)(stop - p));
        if (!at) break;
        send_all(fd, ids, (size_t)idlen);
        p = at + 4;
      }
      continue;
    }
    if (next >= end) break;
    const uint8_t *part_end = memchr(next, 0, (size_t)(end - next));
    if (!part_end) part_end = end;
    send_all(fd, next, (size_t)(part_end - next));
    next = part_end < end ? part_end + 1 : end;
  }
  close(fd);
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int listener = -1;
  static char path[256];
  if (size < 1 || size > (256u << 10)) return 0;
  if (listener < 0) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (snprintf(path, sizeof(path), "%s/agent.sock", fuzz_dir()) >= (int)sizeof(sa.sun_path))
      abort();
    strcpy(sa.sun_path, path);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(listener, 4) < 0)
      abort();
  }
  struct agent a = {listener, data + 1, size - 1};
  pthread_t t;
  if (pthread_create(&t, NULL, serve, &a) != 0) abort();
  const char *const allow[] = {"guest-exec", "guest-exec-status"};
  struct vs_channel_opts o = {.timeout_ms = 200, .allow = allow, .n_allow = 2, .max_reply = 65536};
  struct vs_channel *c = vs_channel_open_unix(path, &o);
  struct vs_err err = {0};
  if (data[0] & 1) {
    const char *const argv[] = {"-c", "true", NULL};
    struct vs_exec_result r = {0};
    (void)vs_channel_exec(c, "/bin/sh", argv, 300, &r, &err);
    vs_exec_result_clear(&r);
  } else {
    json_t *reply = NULL;
    (void)vs_channel_call(c, "guest-info", NULL, &reply, &err);
    json_decref(reply);
  }
  vs_err_clear(&err);
  vs_channel_close(c); /* hangs up: the agent's read ends */
  pthread_join(t, NULL);
  return 0;
}
