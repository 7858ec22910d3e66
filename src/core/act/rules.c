#include "rules.h"

#include "strmap.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *vs_notif_severity_name(int severity) {
  switch (severity) {
  case VS_SEV_FAILURE:
    return "failure";
  case VS_SEV_WARNING:
    return "warning";
  case VS_SEV_OKAY:
    return "okay";
  default:
    return "unknown";
  }
}

int vs_notif_severity_parse(const char *name) {
  if (strcasecmp(name, "failure") == 0) return VS_SEV_FAILURE;
  if (strcasecmp(name, "warning") == 0) return VS_SEV_WARNING;
  if (strcasecmp(name, "okay") == 0) return VS_SEV_OKAY;
  return -1;
}

static const char *const kind_names[] = {"agent", "patchset", "webhook"};

const char *vs_action_kind_name(enum vs_action_kind k) {
  return (unsigned)k < 3 ? kind_names[k] : "unknown";
}

int vs_action_kind_parse(const char *name) {
  for (int k = 0; k < 3; k++)
    if (strcasecmp(name, kind_names[k]) == 0) return k;
  return -1;
}

/* ------------------------------------------------------------------------------ events */

void vs_event_add_meta(struct vs_event *e, const char *key, const char *value) {
  e->meta = vs_xrealloc(e->meta, (e->n_meta + 1) * sizeof(*e->meta));
  e->meta[e->n_meta].key = vs_xstrdup(key);
  e->meta[e->n_meta++].value = vs_xstrdup(value);
}

const char *vs_event_meta(const struct vs_event *e, const char *key) {
  for (size_t i = 0; i < e->n_meta; i++)
    if (strcmp(e->meta[i].key, key) == 0) return e->meta[i].value;
  return NULL;
}

const char *vs_event_domain(const struct vs_event *e) {
  const char *d = vs_event_meta(e, "domain");
  if (d && *d) return d;
  return e->plugin_instance ? e->plugin_instance : "";
}

static char *dup_or_null(const char *s) {
  return s ? vs_xstrdup(s) : NULL;
}

struct vs_event *vs_event_copy(const struct vs_event *e) {
  struct vs_event *c = vs_xcalloc(1, sizeof(*c));
  c->severity = e->severity;
  c->time = e->time;
  c->host = dup_or_null(e->host);
  c->plugin = dup_or_null(e->plugin);
  c->plugin_instance = dup_or_null(e->plugin_instance);
  c->type = dup_or_null(e->type);
  c->type_instance = dup_or_null(e->type_instance);
  c->message = dup_or_null(e->message);
  for (size_t i = 0; i < e->n_meta; i++)
    vs_event_add_meta(c, e->meta[i].key, e->meta[i].value);
  return c;
}

void vs_event_clear(struct vs_event *e) {
  free(e->host);
  free(e->plugin);
  free(e->plugin_instance);
  free(e->type);
  free(e->type_instance);
  free(e->message);
  for (size_t i = 0; i < e->n_meta; i++) {
    free(e->meta[i].key);
    free(e->meta[i].value);
  }
  free(e->meta);
  *e = (struct vs_event){0};
}

void vs_event_free(struct vs_event *e) {
  if (!e) return;
  vs_event_clear(e);
  free(e);
}

json_t *vs_event_json(const struct vs_event *e) {
  json_t *meta = json_object();
  for (size_t i = 0; i < e->n_meta; i++)
    json_object_set_new(meta, e->meta[i].key, json_string(e->meta[i].value));
  return json_pack("{sssfss?ss?ss?ss?ss?ss?so}", "severity", vs_notif_severity_name(e->severity),
                   "time", e->time, "host", e->host, "plugin", e->plugin, "plugin_instance",
                   e->plugin_instance, "type", e->type, "type_instance", e->type_instance,
                   "message", e->message, "meta", meta);
}

/* ------------------------------------------------------------------------------- rules */

bool vs_glob_valid(const char *glob) {
  for (const char *p = glob; *p; p++) {
    if (*p == '\\') {
      if (!*++p) return false;
    } else if (*p == '[') {
      const char *q = p + 1;
      if (*q == '!' || *q == '^') q++;
      if (*q == ']') q++; /* a leading ']' is a member */
      while (*q && *q != ']')
        q++;
      if (!*q) return false;
      p = q;
    }
  }
  return true;
}

static bool glob_match(const char *glob, const char *s) {
  return !glob || fnmatch(glob, s ? s : "", 0) == 0;
}

bool vs_rule_matches(const struct vs_rule *r, const struct vs_event *e) {
  if (!glob_match(r->plugin, e->plugin) || !glob_match(r->plugin_instance, e->plugin_instance) ||
      !glob_match(r->type, e->type) || !glob_match(r->type_instance, e->type_instance))
    return false;
  if (r->severity && fnmatch(r->severity, vs_notif_severity_name(e->severity), FNM_CASEFOLD) != 0)
    return false;
  for (size_t i = 0; i < r->n_meta; i++) {
    bool found = false;
    for (size_t k = 0; k < e->n_meta && !found; k++)
      found = fnmatch(r->meta_keys[i], e->meta[k].key, 0) == 0 &&
              fnmatch(r->meta_values[i], e->meta[k].value, 0) == 0;
    if (!found) return false;
  }
  if (r->n_domains == 0) return true;
  /* the domain, and the VM's name and UUID when the notification carries them: a Domain glob
   * on names works whatever the sender's PluginInstanceFormat */
  const char *known[] = {vs_event_domain(e), vs_event_meta(e, "name"), vs_event_meta(e, "id")};
  for (size_t i = 0; i < r->n_domains; i++)
    for (size_t k = 0; k < sizeof(known) / sizeof(*known); k++)
      if (known[k] && fnmatch(r->domains[i], known[k], 0) == 0) return true;
  return false;
}

int vs_rule_check(const struct vs_rule *r, struct vs_err *err) {
  const char *name = r->name ? r->name : "(unnamed)";
  const char *globs[] = {r->plugin, r->plugin_instance, r->type, r->type_instance, r->severity};
  for (size_t i = 0; i < sizeof(globs) / sizeof(*globs); i++)
    if (globs[i] && !vs_glob_valid(globs[i]))
      return vs_err_set(err, EINVAL, "Rule \"%s\": \"%s\" is not a well-formed glob", name,
                        globs[i]);
  for (size_t i = 0; i < r->n_meta; i++)
    if (!vs_glob_valid(r->meta_keys[i]) || !vs_glob_valid(r->meta_values[i]))
      return vs_err_set(err, EINVAL, "Rule \"%s\": Meta \"%s\" \"%s\" is not a well-formed glob",
                        name, r->meta_keys[i], r->meta_values[i]);
  for (size_t i = 0; i < r->n_domains; i++)
    if (!vs_glob_valid(r->domains[i]))
      return vs_err_set(err, EINVAL, "Rule \"%s\": Domain \"%s\" is not a well-formed glob", name,
                        r->domains[i]);
  if (r->severity && strpbrk(r->severity, "*?[") == NULL &&
      vs_notif_severity_parse(r->severity) < 0)
    return vs_err_set(err, EINVAL, "Rule \"%s\": Severity \"%s\" is none of failure, warning, okay",
                      name, r->severity);
  if (r->n_actions == 0) return vs_err_set(err, EINVAL, "Rule \"%s\" has no Action", name);
  for (size_t i = 0; i < r->n_actions; i++) {
    const struct vs_rule_action *a = &r->actions[i];
    if (!a->arg || !*a->arg)
      return vs_err_set(err, EINVAL, "Rule \"%s\": %s action without an argument", name,
                        vs_action_kind_name(a->kind));
    if (a->kind == VS_ACTION_AGENT) {
      json_error_t je;
      json_t *j = json_loads(a->arg, 0, &je);
      bool good = json_is_object(j) && json_is_string(json_object_get(j, "execute"));
      json_decref(j);
      if (!good)
        return vs_err_set(err, EINVAL,
                          "Rule \"%s\": agent action \"%s\" is not a JSON object with \"execute\"",
                          name, a->arg);
    } else if (a->kind == VS_ACTION_WEBHOOK && strncmp(a->arg, "http://", 7) != 0 &&
               strncmp(a->arg, "https://", 8) != 0) {
      return vs_err_set(err, EINVAL, "Rule \"%s\": webhook \"%s\" is not an http(s) URL", name,
                        a->arg);
    }
  }
  if (r->rate_count < 0 || r->rate_window_s < 0 || (r->rate_count > 0) != (r->rate_window_s > 0) ||
      r->rate_count > 10000)
    return vs_err_set(err, EINVAL, "Rule \"%s\": RateLimit takes a count (1..10000) and seconds",
                      name);
  if (r->cooldown_s < 0)
    return vs_err_set(err, EINVAL, "Rule \"%s\": Cooldown takes seconds", name);
  if (r->retries < -1 || r->retries > 100)
    return vs_err_set(err, EINVAL, "Rule \"%s\": Retries takes a count from 0 to 100", name);
  if (r->retry_backoff_s != 0 && !(r->retry_backoff_s >= 0.1 && r->retry_backoff_s <= 3600))
    return vs_err_set(err, EINVAL, "Rule \"%s\": RetryBackoff takes seconds from 0.1 to 3600",
                      name);
  for (size_t i = 0; i < r->webhook.n_headers; i++)
    if (!strchr(r->webhook.headers[i], ':') || strpbrk(r->webhook.headers[i], "\r\n"))
      return vs_err_set(err, EINVAL, "Rule \"%s\": WebhookHeader \"%s\" is not \"Name: value\"",
                        name, r->webhook.headers[i]);
  if (r->webhook.bearer && r->webhook.user)
    return vs_err_set(err, EINVAL, "Rule \"%s\": give WebhookUser or WebhookBearer, not both",
                      name);
  return 0;
}

static void free_list(char **l, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(l[i]);
  free(l);
}

void vs_rule_clear(struct vs_rule *r) {
  free(r->name);
  free(r->plugin);
  free(r->plugin_instance);
  free(r->type);
  free(r->type_instance);
  free(r->severity);
  free_list(r->meta_keys, r->n_meta);
  free_list(r->meta_values, r->n_meta);
  free_list(r->domains, r->n_domains);
  for (size_t i = 0; i < r->n_actions; i++)
    free(r->actions[i].arg);
  free(r->actions);
  free_list(r->webhook.headers, r->webhook.n_headers);
  free(r->webhook.user);
  free(r->webhook.password);
  free(r->webhook.bearer);
  free(r->webhook.cacert);
  free(r->webhook.body);
  *r = (struct vs_rule){0};
}

/* ------------------------------------------------------------------- rate limits, cooldowns */

struct runs { /* the last runs of one (rule, domain), a ring of rate_count times */
  double *at;
  size_t n, next;
  double last;
};

static void runs_free(void *p) {
  struct runs *r = p;
  free(r->at);
  free(r);
}

struct vs_rules {
  struct vs_rule *rules;
  size_t n;
  pthread_mutex_t lock;
  struct vs_strmap *runs; /* "INDEX/DOMAIN" -> struct runs */
};

struct vs_rules *vs_rules_new(struct vs_rule *r, size_t n) {
  struct vs_rules *rs = vs_xcalloc(1, sizeof(*rs));
  rs->rules = vs_xcalloc(n ? n : 1, sizeof(*rs->rules));
  for (size_t i = 0; i < n; i++) {
    rs->rules[i] = r[i];
    r[i] = (struct vs_rule){0};
  }
  rs->n = n;
  pthread_mutex_init(&rs->lock, NULL);
  rs->runs = vs_strmap_new(runs_free);
  return rs;
}

void vs_rules_free(struct vs_rules *rs) {
  if (!rs) return;
  for (size_t i = 0; i < rs->n; i++)
    vs_rule_clear(&rs->rules[i]);
  free(rs->rules);
  vs_strmap_free(rs->runs);
  pthread_mutex_destroy(&rs->lock);
  free(rs);
}

size_t vs_rules_count(const struct vs_rules *rs) {
  return rs->n;
}

const struct vs_rule *vs_rules_get(const struct vs_rules *rs, size_t i) {
  return i < rs->n ? &rs->rules[i] : NULL;
}

bool vs_rules_admit(struct vs_rules *rs, size_t i, const char *domain, double now) {
  if (i >= rs->n) return false;
  const struct vs_rule *r = &rs->rules[i];
  if (r->rate_count == 0 && r->cooldown_s == 0) return true;
  char *key = vs_xasprintf("%zu/%s", i, domain);
  pthread_mutex_lock(&rs->lock);
  struct runs *ru = vs_strmap_get(rs->runs, key);
  if (!ru) {
    ru = vs_xcalloc(1, sizeof(*ru));
    ru->at = vs_xcalloc(r->rate_count > 0 ? (size_t)r->rate_count : 1, sizeof(double));
    ru->last = -1e300;
    vs_strmap_put(rs->runs, key, ru);
  }
  bool ok = now - ru->last >= r->cooldown_s;
  if (ok && r->rate_count > 0 && ru->n == (size_t)r->rate_count)
    ok = now - ru->at[ru->next] >= r->rate_window_s; /* the oldest of the last COUNT runs */
  if (ok) {
    ru->last = now;
    if (r->rate_count > 0) {
      ru->at[ru->next] = now;
      ru->next = (ru->next + 1) % (size_t)r->rate_count;
      if (ru->n < (size_t)r->rate_count) ru->n++;
    }
  }
  pthread_mutex_unlock(&rs->lock);
  free(key);
  return ok;
}
