/* retry.h: when vmscope_action tries a failed remediation again. An action that failed for an
 * alarm (a WARNING or FAILURE notification) is tried again after a backoff that doubles from
 * one attempt to the next, for as long as that alarm stands and the rule's retries last: the
 * alarm the guest agent refused because a snapshot had the guest's file systems frozen, the
 * libvirtd that was restarting, the agent that was not up yet, are remedied a little later
 * instead of never.
 *
 * An alarm is known by its identity: host, plugin, plugin instance, type and type instance
 * (the OKAY that clears it has the same). It stands from the moment a rule saw it
 * (vs_retries_alarm) until an OKAY of that identity is noted (vs_retries_note), whichever
 * plugin sent it: the retries pending for it are dropped then, and an attempt that fails
 * after that is not retried. A new alarm of the same identity for the same rule replaces the
 * retry pending for the older one, so one alarm has at most one retry waiting per action.
 *
 * Independent of collectd. Times are monotonic seconds. Thread-safe: the notification
 * callbacks note and schedule, one thread waits for what is due (vs_retries_wait). */
#ifndef VS_RETRY_H
#define VS_RETRY_H

#include "rules.h"

#include <stdbool.h>
#include <stddef.h>

#define VS_RETRY_DEFAULT_COUNT 5      /* retries after the first attempt */
#define VS_RETRY_DEFAULT_BACKOFF_S 10 /* before the first retry, doubling */
#define VS_RETRY_MAX_BACKOFF_S 3600   /* no wait longer than this */

struct vs_retry_policy {
  int retries;      /* after the first attempt; 0: none */
  double backoff_s; /* before the first retry; doubles, up to VS_RETRY_MAX_BACKOFF_S */
};

/* A retry that is due: the rule and which of its actions, the alarm (the caller owns it) and
 * the attempt's number (2 for the first retry). */
struct vs_retry {
  size_t rule, action;
  struct vs_event *event;
  int attempt;
};

struct vs_retries;
struct vs_retries *vs_retries_new(void);
/* Frees R and what is still pending. */
void vs_retries_free(struct vs_retries *r);

/* Whether E is an alarm: a WARNING or a FAILURE. */
bool vs_event_is_alarm(const struct vs_event *e);
/* A rule took E: when E is an alarm, it stands from now. */
void vs_retries_alarm(struct vs_retries *r, const struct vs_event *e);
/* Any notification: an OKAY ends the alarm of its identity, and the retries pending for it. */
void vs_retries_note(struct vs_retries *r, const struct vs_event *e);
/* Attempt ATTEMPT (1: the first run) of action ACTION of rule RULE for alarm E failed at NOW:
 * schedules the next attempt when P allows one more and the alarm still stands. Returns the
 * wait before it in seconds, or -1 when there is none (the alarm cleared, no retries left, E
 * is no alarm, or R is closed). E is copied. */
double vs_retries_schedule(struct vs_retries *r, size_t rule, size_t action,
                           const struct vs_retry_policy *p, const struct vs_event *e, int attempt,
                           double now);
/* The next retry due at NOW, into *OUT: 1, or 0 when none is due (*NEXT, when not NULL: when
 * the next one is, or a negative number when none is pending). Retries whose alarm cleared are
 * never returned. */
int vs_retries_take(struct vs_retries *r, double now, struct vs_retry *out, double *next);
/* Waits until a retry is due and takes it (1), or until vs_retries_close (0). */
int vs_retries_wait(struct vs_retries *r, struct vs_retry *out);
/* Wakes vs_retries_wait for good; what is pending is dropped. */
void vs_retries_close(struct vs_retries *r);
/* How many retries are waiting. */
size_t vs_retries_pending(struct vs_retries *r);
/* Whether an alarm of E's identity stands (a rule took one, and no OKAY came since). */
bool vs_retries_standing(struct vs_retries *r, const struct vs_event *e);

#endif
