/* daemons.h: the small servers the unit tests talk to, started and stopped by the test: a
 * loopback HTTP server with scripted answers (webhooks), and the real qemu-ga on a unix socket
 * (guest agent channels). */
#ifndef VS_DAEMONS_H
#define VS_DAEMONS_H

#include <pthread.h>
#include <sys/types.h>

/* Answers each request with the next status of STATUSES (the last one again once the list is
 * used up; set them before a request, or with fx_httpd_answer) and keeps the last request's
 * text in LAST. */
struct fx_httpd {
  int fd, port;
  int statuses[8], n_statuses, served;
  char last[8192];
  pthread_t thread;
};
/* Listens on a free loopback port and serves in a thread: 0, or -1 when no loopback socket
 * can be had (the caller skips). */
int fx_httpd_start(struct fx_httpd *s);
/* The next answer is FIRST, every one after it THEN. */
void fx_httpd_answer(struct fx_httpd *s, int first, int then);
/* Stops listening (a request after this finds nothing) and joins the thread. */
void fx_httpd_stop(struct fx_httpd *s);

/* Starts the real qemu-ga listening on SOCK, DIR its state directory, with the commands in
 * BLOCKED (comma-separated) disabled, and waits up to 5 s for it to accept: its pid, or -1
 * (not installed, or it did not come up; then it is stopped). The caller kills it. */
pid_t fx_qemu_ga_start(const char *sock, const char *dir, const char *blocked);

#endif
