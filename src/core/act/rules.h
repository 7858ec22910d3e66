/* rules.h: remediation rules, as vmscope_action runs them: which notifications a rule takes,
 * for which domains, what it runs, and how often at most. Independent of collectd: a
 * notification is a plain struct vs_event, deep-copied so it can outlive the callback that
 * received it.
 *
 * Matching: every field a rule names (plugin, plugin_instance, type, type_instance, severity)
 * must match its fnmatch glob (a glob with no wildcard is an exact match); every Meta pair must
 * be matched by one meta entry of the event (key glob and value glob); and the event's domain
 * (its plugin_instance, or its "domain" meta), or the VM's name or UUID when the event carries
 * them as "name" and "id" meta (vmscope's plugins do, whatever their PluginInstanceFormat),
 * must match one of the rule's Domain globs when it has any. Globs are checked when the rule is
 * made: an unbalanced '[' is refused.
 *
 * How often: per (rule, domain), at most RateLimit runs in any window of that many seconds,
 * and none within Cooldown seconds of the last run. Thread-safe: a rule set has its own lock
 * for that state. */
#ifndef VS_RULES_H
#define VS_RULES_H

#include "util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* collectd's notification severities (drift.h has the findings' own). */
enum vs_notif_severity { VS_SEV_FAILURE = 1, VS_SEV_WARNING = 2, VS_SEV_OKAY = 4 };
const char *vs_notif_severity_name(int severity); /* "failure", "warning", "okay" */
int vs_notif_severity_parse(const char *name);    /* -1 when not one of them (any case) */

struct vs_event_meta {
  char *key, *value; /* values of every type, as text */
};
struct vs_event {
  int severity;
  double time; /* seconds since the epoch */
  char *host, *plugin, *plugin_instance, *type, *type_instance, *message;
  struct vs_event_meta *meta;
  size_t n_meta;
};
void vs_event_add_meta(struct vs_event *e, const char *key, const char *value);
const char *vs_event_meta(const struct vs_event *e, const char *key); /* NULL when absent */
/* The domain the event is about: its "domain" meta, else its plugin_instance ("" when none). */
const char *vs_event_domain(const struct vs_event *e);
struct vs_event *vs_event_copy(const struct vs_event *e);
void vs_event_free(struct vs_event *e); /* frees E itself too */
void vs_event_clear(struct vs_event *e);
json_t *vs_event_json(const struct vs_event *e); /* every field, meta as an object */

enum vs_action_kind { VS_ACTION_AGENT, VS_ACTION_PATCHSET, VS_ACTION_WEBHOOK };
const char *vs_action_kind_name(enum vs_action_kind k);
int vs_action_kind_parse(const char *name); /* -1 when unknown */

struct vs_rule_action {
  enum vs_action_kind kind;
  char *arg; /* agent: a {"execute": ...} command; patchset: a set's path; webhook: a URL */
};

/* The webhook options of a rule (all optional). */
struct vs_webhook_opts {
  char **headers; /* "Name: value" */
  size_t n_headers;
  char *user, *password; /* basic authentication */
  char *bearer;          /* a bearer token */
  char *cacert;          /* a CA bundle; the system's by default */
  bool insecure;         /* no TLS verification (off by default) */
  int timeout_ms;        /* per attempt; 0: 5000 */
  int retries;           /* after the first attempt; -1: 3 */
  int backoff_ms;        /* before the first retry, doubling; 0: 500 */
  char *body;            /* a template (see webhook.h); NULL: Alertmanager v2 alerts */
};

struct vs_rule {
  char *name;
  char *plugin, *plugin_instance, *type, *type_instance, *severity; /* globs; NULL: any */
  char **meta_keys, **meta_values;                                  /* glob pairs */
  size_t n_meta;
  char **domains; /* globs; none: every domain */
  size_t n_domains;
  struct vs_rule_action *actions;
  size_t n_actions;
  bool dry_run;
  int rate_count, rate_window_s; /* 0: no limit */
  int cooldown_s;                /* 0: none */
  int retries;                   /* a failed action for an alarm (retry.h); -1: the default */
  double retry_backoff_s;        /* before the first retry, doubling; 0: the default */
  struct vs_webhook_opts webhook;
};

/* Checks a rule once it is filled in (by a config parser): its globs are well formed, it has
 * actions, agent commands are JSON objects with "execute", numbers are in range. */
int vs_rule_check(const struct vs_rule *r, struct vs_err *err);
void vs_rule_clear(struct vs_rule *r);
bool vs_rule_matches(const struct vs_rule *r, const struct vs_event *e);
/* A glob that fnmatch reads as meant: '[' closed by ']'. */
bool vs_glob_valid(const char *glob);

struct vs_rules;
/* Takes the rules (moved out of R, which is left empty). */
struct vs_rules *vs_rules_new(struct vs_rule *r, size_t n);
void vs_rules_free(struct vs_rules *rs);
size_t vs_rules_count(const struct vs_rules *rs);
const struct vs_rule *vs_rules_get(const struct vs_rules *rs, size_t i);
/* Whether rule I may run now (at NOW, seconds) for DOMAIN: within its rate limit and past its
 * cooldown. When it may, the run is recorded. */
bool vs_rules_admit(struct vs_rules *rs, size_t i, const char *domain, double now);

#endif
