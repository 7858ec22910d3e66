/* webhook.h: a notification posted to an HTTP endpoint (libcurl), as vmscope_action's webhook
 * action does: by default as Alertmanager v2 alerts, so that a WARNING or FAILURE fires an
 * alert and the OKAY that follows resolves it.
 *
 * Alertmanager tells alerts apart by their labels, so the labels are what stays the same
 * between firing and resolving: alertname ("vmscope_" TYPE), rule, host, domain, plugin, type,
 * type_instance, and the "key" meta when there is one. The severity, message and other meta go
 * into annotations. "startsAt" is the notification's time; an OKAY sets "endsAt" to it.
 *
 * A body template is text with ${FIELD} placeholders, replaced by the field's value escaped
 * for a JSON string (templates are meant to produce JSON): severity, host, plugin,
 * plugin_instance, type, type_instance, message, time (RFC 3339), rule, domain, and
 * meta:KEY. An unknown field is refused when the template is checked. */
#ifndef VS_WEBHOOK_H
#define VS_WEBHOOK_H

#include "rules.h"

/* Checks a template's placeholders. */
int vs_webhook_check_template(const char *tpl, struct vs_err *err);
/* The body for event E under rule RULE: the template's rendering, or Alertmanager v2 alerts.
 * Caller frees. */
char *vs_webhook_body(const struct vs_webhook_opts *o, const char *rule, const struct vs_event *e);
/* POSTs BODY (application/json) to URL with O's headers, authentication and TLS settings.
 * Retries connection failures, timeouts and 5xx/429 answers O->retries times with a doubling
 * backoff; a 4xx answer is final. Returns the HTTP status of the last answer (2xx: delivered)
 * or -1 with ERR set; *ATTEMPTS (may be NULL) says how many were made. */
int vs_webhook_post(const char *url, const struct vs_webhook_opts *o, const char *body,
                    int *attempts, struct vs_err *err);

#endif
