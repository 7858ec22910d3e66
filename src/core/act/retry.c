/* Retries of failed remediations while their alarm stands (retry.h). */
#include "retry.h"

#include "strmap.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pending {
  size_t rule, action;
  struct vs_event *event;
  char *identity;
  int attempt;
  double due;
};

struct vs_retries {
  pthread_mutex_t lock;
  pthread_cond_t changed;     /* a retry scheduled, or closed: on CLOCK_MONOTONIC */
  struct vs_strmap *standing; /* identity -> (void *)1, for the alarms rules took */
  struct pending *pending;
  size_t n, cap;
  bool closed;
};

bool vs_event_is_alarm(const struct vs_event *e) {
  return e->severity == VS_SEV_WARNING || e->severity == VS_SEV_FAILURE;
}

/* What an alarm and the OKAY that ends it have in common. Tabs cannot occur in collectd's
 * identifiers as vmscope sends them; another plugin's would at worst join two identities. */
static char *identity(const struct vs_event *e) {
  return vs_xasprintf("%s\t%s\t%s\t%s\t%s", e->host ? e->host : "", e->plugin ? e->plugin : "",
                      e->plugin_instance ? e->plugin_instance : "", e->type ? e->type : "",
                      e->type_instance ? e->type_instance : "");
}

struct vs_retries *vs_retries_new(void) {
  struct vs_retries *r = vs_xcalloc(1, sizeof(*r));
  pthread_mutex_init(&r->lock, NULL);
  vs_cond_init_monotonic(&r->changed);
  r->standing = vs_strmap_new(NULL);
  return r;
}

static void pending_clear(struct pending *p) {
  vs_event_free(p->event);
  free(p->identity);
}

/* Drops pending retry I (under the lock); the last takes its place. */
static void drop(struct vs_retries *r, size_t i) {
  pending_clear(&r->pending[i]);
  r->pending[i] = r->pending[--r->n];
}

static void drop_all(struct vs_retries *r) {
  while (r->n)
    drop(r, r->n - 1);
}

void vs_retries_free(struct vs_retries *r) {
  if (!r) return;
  drop_all(r);
  free(r->pending);
  vs_strmap_free(r->standing);
  pthread_cond_destroy(&r->changed);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

void vs_retries_alarm(struct vs_retries *r, const struct vs_event *e) {
  if (!vs_event_is_alarm(e)) return;
  _cleanup_(vs_freep) char *id = identity(e);
  pthread_mutex_lock(&r->lock);
  vs_strmap_put(r->standing, id, (void *)1);
  pthread_mutex_unlock(&r->lock);
}

void vs_retries_note(struct vs_retries *r, const struct vs_event *e) {
  if (e->severity != VS_SEV_OKAY) return;
  _cleanup_(vs_freep) char *id = identity(e);
  pthread_mutex_lock(&r->lock);
  if (vs_strmap_remove(r->standing, id))
    for (size_t i = r->n; i-- > 0;)
      if (strcmp(r->pending[i].identity, id) == 0) drop(r, i);
  pthread_mutex_unlock(&r->lock);
}

bool vs_retries_standing(struct vs_retries *r, const struct vs_event *e) {
  _cleanup_(vs_freep) char *id = identity(e);
  pthread_mutex_lock(&r->lock);
  bool standing = vs_strmap_has(r->standing, id);
  pthread_mutex_unlock(&r->lock);
  return standing;
}

/* The wait before attempt ATTEMPT + 1: BACKOFF doubled ATTEMPT - 1 times, at most the cap. */
static double backoff(const struct vs_retry_policy *p, int attempt) {
  double wait = p->backoff_s > 0 ? p->backoff_s : VS_RETRY_DEFAULT_BACKOFF_S;
  for (int i = 1; i < attempt && wait < VS_RETRY_MAX_BACKOFF_S; i++)
    wait *= 2;
  return wait < VS_RETRY_MAX_BACKOFF_S ? wait : VS_RETRY_MAX_BACKOFF_S;
}

double vs_retries_schedule(struct vs_retries *r, size_t rule, size_t action,
                           const struct vs_retry_policy *p, const struct vs_event *e, int attempt,
                           double now) {
  if (!vs_event_is_alarm(e) || attempt < 1 || attempt > p->retries) return -1;
  char *id = identity(e);
  double wait = backoff(p, attempt);
  pthread_mutex_lock(&r->lock);
  if (r->closed || !vs_strmap_has(r->standing, id)) {
    pthread_mutex_unlock(&r->lock);
    free(id);
    return -1;
  }
  for (size_t i = r->n; i-- > 0;) /* one retry per alarm and action: the newest */
    if (r->pending[i].rule == rule && r->pending[i].action == action &&
        strcmp(r->pending[i].identity, id) == 0)
      drop(r, i);
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 8;
    r->pending = vs_xrealloc(r->pending, r->cap * sizeof(*r->pending));
  }
  r->pending[r->n++] = (struct pending){.rule = rule,
                                        .action = action,
                                        .event = vs_event_copy(e),
                                        .identity = id,
                                        .attempt = attempt + 1,
                                        .due = now + wait};
  pthread_cond_broadcast(&r->changed);
  pthread_mutex_unlock(&r->lock);
  return wait;
}

/* Under the lock: the earliest pending retry, or -1. */
static long earliest(const struct vs_retries *r) {
  long best = -1;
  for (size_t i = 0; i < r->n; i++)
    if (best < 0 || r->pending[i].due < r->pending[best].due) best = (long)i;
  return best;
}

/* Under the lock: takes the earliest retry when it is due at NOW. */
static int take_locked(struct vs_retries *r, double now, struct vs_retry *out, double *next) {
  long i = earliest(r);
  if (next) *next = i < 0 ? -1 : r->pending[i].due;
  if (i < 0 || r->pending[i].due > now) return 0;
  struct pending *p = &r->pending[i];
  *out = (struct vs_retry){
      .rule = p->rule, .action = p->action, .event = vs_steal(&p->event), .attempt = p->attempt};
  drop(r, (size_t)i);
  return 1;
}

int vs_retries_take(struct vs_retries *r, double now, struct vs_retry *out, double *next) {
  pthread_mutex_lock(&r->lock);
  int got = take_locked(r, now, out, next);
  pthread_mutex_unlock(&r->lock);
  return got;
}

int vs_retries_wait(struct vs_retries *r, struct vs_retry *out) {
  pthread_mutex_lock(&r->lock);
  int got = 0;
  while (!r->closed) {
    double next;
    if ((got = take_locked(r, vs_now_monotonic(), out, &next))) break;
    if (next < 0) {
      pthread_cond_wait(&r->changed, &r->lock);
      continue;
    }
    struct timespec ts = vs_monotonic_timespec(next);
    int rc = pthread_cond_timedwait(&r->changed, &r->lock, &ts);
    if (rc != 0 && rc != ETIMEDOUT) abort(); /* EINVAL: a bug, not a condition */
  }
  pthread_mutex_unlock(&r->lock);
  return got;
}

void vs_retries_close(struct vs_retries *r) {
  pthread_mutex_lock(&r->lock);
  r->closed = true;
  drop_all(r);
  pthread_cond_broadcast(&r->changed);
  pthread_mutex_unlock(&r->lock);
}

size_t vs_retries_pending(struct vs_retries *r) {
  pthread_mutex_lock(&r->lock);
  size_t n = r->n;
  pthread_mutex_unlock(&r->lock);
  return n;
}
