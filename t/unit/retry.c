/* Retries of failed remediations (retry.h): only for alarms, only while they stand, with a
 * doubling backoff and a limit, one per alarm and action; and the waiting thread's wake-ups. */
#include "retry.h"
#include "tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct vs_event event(const char *vm, const char *key, int severity) {
  return (struct vs_event){.severity = severity,
                           .host = "host-1",
                           .plugin = "vmscope_drift",
                           .plugin_instance = (char *)vm,
                           .type = "config_drift",
                           .type_instance = (char *)key,
                           .message = "PermitRootLogin drifted"};
}

static void test_only_standing_alarms(void) {
  struct vs_retries *r = vs_retries_new();
  struct vs_retry_policy p = {.retries = 3, .backoff_s = 10};
  struct vs_event alarm = event("web-01", "sshd.PermitRootLogin", VS_SEV_WARNING);
  ok(vs_retries_schedule(r, 0, 0, &p, &alarm, 1, 100) < 0,
     "an alarm no rule took is not retried (it is not known to stand)");
  vs_retries_alarm(r, &alarm);
  ok(vs_retries_standing(r, &alarm), "an alarm a rule took stands");
  struct vs_event okay_trigger = event("web-01", "sshd.PermitRootLogin", VS_SEV_OKAY);
  ok(vs_retries_schedule(r, 0, 0, &p, &okay_trigger, 1, 100) < 0,
     "an action an OKAY triggered is not retried (no alarm stands for it)");
  is_num(vs_retries_schedule(r, 0, 0, &p, &alarm, 1, 100), 10, "the first retry waits the backoff");
  is_num(vs_retries_pending(r), 1, "one retry waits");
  struct vs_retry rt;
  double next;
  is_num(vs_retries_take(r, 109.9, &rt, &next), 0, "not due before its time");
  is_num(next, 110, "and due at 110");
  is_num(vs_retries_take(r, 110, &rt, &next), 1, "due at its time");
  ok(rt.rule == 0 && rt.action == 0 && rt.attempt == 2, "as attempt 2 of rule 0's action 0");
  is_str(rt.event->plugin_instance, "web-01", "with the alarm, copied");
  vs_event_free(rt.event);
  is_num(vs_retries_take(r, 1000, &rt, &next), 0, "taken once");
  ok(next < 0, "and nothing is pending");

  is_num(vs_retries_schedule(r, 0, 0, &p, &alarm, 2, 200), 20,
         "the second retry waits twice as long");
  is_num(vs_retries_schedule(r, 0, 0, &p, &alarm, 3, 200), 40, "the third four times");
  is_num(vs_retries_pending(r), 1,
         "a newer failure of the same alarm and action replaces the older");
  ok(vs_retries_schedule(r, 0, 0, &p, &alarm, 4, 200) < 0, "no fourth retry: Retries 3");
  is_num(vs_retries_pending(r), 1, "the last retry still waits");

  struct vs_event other_vm = event("web-02", "sshd.PermitRootLogin", VS_SEV_WARNING);
  vs_retries_alarm(r, &other_vm);
  vs_retries_schedule(r, 0, 0, &p, &other_vm, 1, 200);
  vs_retries_schedule(r, 0, 1, &p, &alarm, 1, 200);
  is_num(vs_retries_pending(r), 3, "other VMs' alarms and other actions wait apart");
  struct vs_event other_key = event("web-01", "sshd.Port", VS_SEV_OKAY);
  vs_retries_note(r, &other_key);
  is_num(vs_retries_pending(r), 3, "an OKAY of another key ends nothing");
  struct vs_event okay = event("web-01", "sshd.PermitRootLogin", VS_SEV_OKAY);
  vs_retries_note(r, &okay);
  is_num(vs_retries_pending(r), 1, "the OKAY that ends the alarm drops its retries");
  ok(!vs_retries_standing(r, &alarm), "the alarm no longer stands");
  ok(vs_retries_schedule(r, 0, 0, &p, &alarm, 1, 300) < 0,
     "an attempt that fails after the OKAY is not retried");
  is_num(vs_retries_take(r, 1e9, &rt, NULL), 1, "the other VM's retry is still there");
  is_str(rt.event->plugin_instance, "web-02", "it is web-02's");
  vs_event_free(rt.event);
  vs_retries_alarm(r, &alarm);
  vs_retries_schedule(r, 0, 0, &p, &alarm, 1, 300);
  vs_retries_free(r); /* with one pending: freed (valgrind) */
}

static void test_backoff_cap(void) {
  struct vs_retries *r = vs_retries_new();
  struct vs_retry_policy p = {.retries = 100, .backoff_s = 1000};
  struct vs_event alarm = event("db-01", "x", VS_SEV_FAILURE);
  vs_retries_alarm(r, &alarm);
  is_num(vs_retries_schedule(r, 2, 0, &p, &alarm, 30, 0), VS_RETRY_MAX_BACKOFF_S,
         "the backoff stops doubling at %d s", VS_RETRY_MAX_BACKOFF_S);
  struct vs_retry_policy d = {.retries = 1};
  is_num(vs_retries_schedule(r, 2, 0, &d, &alarm, 1, 0), VS_RETRY_DEFAULT_BACKOFF_S,
         "no backoff given: the default, %d s", VS_RETRY_DEFAULT_BACKOFF_S);
  struct vs_retry_policy none = {.retries = 0};
  ok(vs_retries_schedule(r, 3, 0, &none, &alarm, 1, 0) < 0, "Retries 0: never retried");
  vs_retries_free(r);
}

struct waiter {
  struct vs_retries *r;
  int got;
  struct vs_retry rt;
};
static void *wait_run(void *p) {
  struct waiter *w = p;
  w->got = vs_retries_wait(w->r, &w->rt);
  return NULL;
}

static void test_wait(void) {
  struct vs_retries *r = vs_retries_new();
  struct waiter w = {.r = r};
  pthread_t t;
  pthread_create(&t, NULL, wait_run, &w); /* waits with nothing pending */
  struct vs_retry_policy p = {.retries = 1, .backoff_s = 0.1};
  struct vs_event alarm = event("web-09", "k", VS_SEV_WARNING);
  vs_retries_alarm(r, &alarm);
  double t0 = vs_now_monotonic();
  vs_retries_schedule(r, 7, 0, &p, &alarm, 1, t0);
  pthread_join(t, NULL);
  double waited = vs_now_monotonic() - t0;
  is_num(w.got, 1, "a waiting thread is woken by a new retry and takes it when due");
  ok(waited >= 0.1 && waited < 10, "after its backoff (%.3f s)", waited);
  is_num(w.rt.rule, 7, "the retry of rule 7");
  vs_event_free(w.rt.event);

  w = (struct waiter){.r = r};
  vs_retries_schedule(r, 7, 0, &p, &alarm, 1, vs_now_monotonic() + 3600);
  pthread_create(&t, NULL, wait_run, &w); /* a retry an hour away */
  vs_retries_close(r);
  pthread_join(t, NULL);
  is_num(w.got, 0, "closing wakes the waiter, which takes nothing");
  is_num(vs_retries_pending(r), 0, "and drops what was pending");
  ok(vs_retries_schedule(r, 7, 0, &p, &alarm, 1, 0) < 0, "nothing is scheduled once closed");
  vs_retries_free(r);
}

int main(void) {
  plan_no_plan();
  test_only_standing_alarms();
  test_backoff_cap();
  test_wait();
  return done_testing();
}
