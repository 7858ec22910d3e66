#include "daemons.h"

#include "tap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void *serve(void *arg) {
  struct fx_httpd *s = arg;
  for (;;) {
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) return NULL;
    char buf[sizeof(s->last)];
    size_t len = 0;
    ssize_t n;
    /* the whole request: headers, then Content-Length bytes */
    while (len < sizeof(buf) - 1 && (n = read(c, buf + len, sizeof(buf) - 1 - len)) > 0) {
      len += (size_t)n;
      buf[len] = 0;
      char *end = strstr(buf, "\r\n\r\n");
      char *cl = strcasestr(buf, "Content-Length:");
      if (end && cl && len >= (size_t)(end + 4 - buf) + (size_t)atoi(cl + 15)) break;
    }
    buf[len] = 0;
    memcpy(s->last, buf, len + 1);
    int status = s->statuses[s->served < s->n_statuses ? s->served : s->n_statuses - 1];
    s->served++;
    char reply[128];
    int rl = snprintf(reply, sizeof(reply), "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nok", status);
    if (write(c, reply, (size_t)rl) < 0) diag("write failed");
    close(c);
  }
}

int fx_httpd_start(struct fx_httpd *s) {
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->fd, 8) < 0 ||
      getsockname(s->fd, (struct sockaddr *)&a, &al) < 0 ||
      pthread_create(&s->thread, NULL, serve, s) != 0) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    return -1;
  }
  s->port = ntohs(a.sin_port);
  return 0;
}

void fx_httpd_answer(struct fx_httpd *s, int first, int then) {
  s->statuses[0] = first;
  s->statuses[1] = then;
  s->n_statuses = 2;
  s->served = 0;
}

void fx_httpd_stop(struct fx_httpd *s) {
  if (s->fd < 0) return;
  shutdown(s->fd, SHUT_RDWR);
  close(s->fd);
  s->fd = -1;
  pthread_join(s->thread, NULL);
}

static bool accepts(const char *sock) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
  bool up = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  if (fd >= 0) close(fd);
  return up;
}

pid_t fx_qemu_ga_start(const char *sock, const char *dir, const char *blocked) {
  pid_t pid = fork();
  if (pid == 0) {
    /* Not our stdout: the TAP driver reads it to its end, which a leftover agent would hold. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execlp("qemu-ga", "qemu-ga", "-m", "unix-listen", "-p", sock, "-t", dir, "-b", blocked,
           (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 100 && pid > 0; i++) {
    if (accepts(sock)) return pid;
    if (waitpid(pid, NULL, WNOHANG) == pid) return -1; /* it exited: not installed, or refused */
    usleep(50000);
  }
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  }
  return -1;
}
