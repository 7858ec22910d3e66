/* vmscope_action's <Rule> blocks: each is read into a struct vs_rule (rules.h) and checked as
 * a whole (vs_rule_check, the webhook template, a name no other rule has) before it joins the
 * pending rules. Every message starts with "vmscope_action: Rule "name"". */
#include "action_internal.h"

#include "webhook.h"

/* A field of Match (or its own line) names one glob: given twice, the rule is refused. */
static int set_glob(const struct vs_rule *r, const char *f, char **field, const char *v) {
  if (*field) {
    ERROR(PLUGIN ": Rule \"%s\": %s is given twice (\"%s\" and \"%s\"): a notification has one %s",
          r->name, f, *field, v, f);
    return -1;
  }
  *field = vs_xstrdup(v);
  return 0;
}

/* The glob of Match's field F in R, and the field's name as the documentation spells it
 * (NULL when F is no glob field). */
static char **glob_field(struct vs_rule *r, const char *f, const char **name) {
  const struct {
    const char *name;
    char **glob;
  } fields[] = {{"Plugin", &r->plugin},
                {"PluginInstance", &r->plugin_instance},
                {"Type", &r->type},
                {"TypeInstance", &r->type_instance},
                {"Severity", &r->severity}};
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
    if (strcasecmp(f, fields[i].name) == 0) {
      if (name) *name = fields[i].name;
      return fields[i].glob;
    }
  return NULL;
}

/* Match Plugin "x" Type "y" Severity "warning" Meta "key" "value" ... */
static int rule_match(struct vs_rule *r, const oconfig_item_t *c) {
  for (int k = 0; k < c->values_num;) {
    if (c->values[k].type != OCONFIG_TYPE_STRING || k + 1 >= c->values_num ||
        c->values[k + 1].type != OCONFIG_TYPE_STRING) {
      ERROR(PLUGIN ": Rule \"%s\": Match takes pairs of strings: FIELD \"glob\" ...", r->name);
      return -1;
    }
    const char *f = c->values[k].value.string, *v = c->values[k + 1].value.string;
    const char *name = NULL;
    char **glob = glob_field(r, f, &name);
    if (glob) {
      if (set_glob(r, name, glob, v) < 0) return -1;
      k += 2;
    } else if (strcasecmp(f, "Meta") == 0) {
      if (k + 2 >= c->values_num || c->values[k + 2].type != OCONFIG_TYPE_STRING) {
        ERROR(PLUGIN ": Rule \"%s\": Match Meta takes a key glob and a value glob", r->name);
        return -1;
      }
      size_t nk = r->n_meta;
      vs_strv_add(&r->meta_keys, &nk, v);
      vs_strv_add(&r->meta_values, &r->n_meta, c->values[k + 2].value.string);
      k += 3;
    } else {
      ERROR(PLUGIN ": Rule \"%s\": Match field \"%s\" (expected Plugin, PluginInstance, Type, "
                   "TypeInstance, Severity or Meta)",
            r->name, f);
      return -1;
    }
  }
  return 0;
}

/* Plugin "x" on a line of its own (Meta "key" "value" too) is Match Plugin "x". */
static int rule_match_line(struct vs_rule *r, const oconfig_item_t *c) {
  if (c->values_num > 2) {
    ERROR(PLUGIN ": Rule \"%s\": %s takes one glob (Meta: two)", r->name, c->key);
    return -1;
  }
  oconfig_value_t vals[3];
  vals[0] = (oconfig_value_t){.type = OCONFIG_TYPE_STRING, .value.string = c->key};
  for (int v = 0; v < c->values_num; v++)
    vals[v + 1] = c->values[v];
  oconfig_item_t m = {.key = "Match", .values = vals, .values_num = c->values_num + 1};
  return rule_match(r, &m);
}

static int rule_domains(struct vs_rule *r, const oconfig_item_t *c) {
  for (int v = 0; v < c->values_num; v++) {
    if (c->values[v].type != OCONFIG_TYPE_STRING) {
      ERROR(PLUGIN ": Rule \"%s\": Domain takes names or globs (strings)", r->name);
      return -1;
    }
    vs_strv_add(&r->domains, &r->n_domains, c->values[v].value.string);
  }
  return 0;
}

/* Action "agent"|"patchset"|"webhook" "argument"; a patch set must be there now. */
static int rule_action(struct vs_rule *r, const oconfig_item_t *c, const char *where) {
  int kind = c->values_num == 2 && c->values[0].type == OCONFIG_TYPE_STRING &&
                     c->values[1].type == OCONFIG_TYPE_STRING
                 ? vs_action_kind_parse(c->values[0].value.string)
                 : -1;
  if (kind < 0) {
    ERROR(PLUGIN ": Rule \"%s\": Action takes \"agent\", \"patchset\" or \"webhook\" and its "
                 "argument",
          r->name);
    return -1;
  }
  const char *arg = c->values[1].value.string;
  if (kind == VS_ACTION_PATCHSET && vs_cf_check_file(c, where, arg) < 0)
    return -1; /* "Rule "x": Action "/sets/fix.qcow2": No such file or directory" */
  r->actions = vs_xrealloc(r->actions, (r->n_actions + 1) * sizeof(*r->actions));
  r->actions[r->n_actions++] = (struct vs_rule_action){(enum vs_action_kind)kind, vs_xstrdup(arg)};
  return 0;
}

/* RateLimit COUNT SECONDS: two numbers, where collectd's cf_util_* take one, so they are checked
 * here (the fuzzer's RateLimit 3e86 1 was an unchecked cast). */
static int rule_rate_limit(struct vs_rule *r, const oconfig_item_t *c) {
  if (c->values_num != 2 || c->values[0].type != OCONFIG_TYPE_NUMBER ||
      c->values[1].type != OCONFIG_TYPE_NUMBER ||
      !vs_cf_whole_int(c->values[0].value.number, &r->rate_count) ||
      !vs_cf_whole_int(c->values[1].value.number, &r->rate_window_s) || r->rate_count < 0 ||
      r->rate_window_s < 0) {
    ERROR(PLUGIN ": Rule \"%s\": RateLimit takes a count and seconds, whole numbers from 0 to %d",
          r->name, INT_MAX);
    return -1;
  }
  return 0;
}

/* The Webhook* options; 1 when KEY is none of them. */
static int rule_webhook(struct vs_webhook_opts *w, const oconfig_item_t *c, const char *where) {
  const char *k = c->key;
  if (strcasecmp(k, "WebhookHeader") == 0) {
    _cleanup_(vs_freep) char *h = NULL;
    if (vs_cf_string(c, where, &h) < 0) return -1;
    vs_strv_add(&w->headers, &w->n_headers, h);
    return 0;
  }
  if (strcasecmp(k, "WebhookUser") == 0) return vs_cf_string(c, where, &w->user);
  if (strcasecmp(k, "WebhookPassword") == 0) return vs_cf_string(c, where, &w->password);
  if (strcasecmp(k, "WebhookBearer") == 0) return vs_cf_string(c, where, &w->bearer);
  if (strcasecmp(k, "WebhookCACert") == 0)
    return vs_cf_string(c, where, &w->cacert) < 0 ? -1 : vs_cf_check_file(c, where, w->cacert);
  if (strcasecmp(k, "WebhookVerifyPeer") == 0) {
    bool verify = true;
    int rc = vs_cf_boolean(c, where, &verify);
    w->insecure = !verify;
    return rc;
  }
  if (strcasecmp(k, "WebhookTimeout") == 0) {
    cdtime_t t = 0;
    if (vs_cf_cdtime(c, where, &t) < 0) return -1;
    w->timeout_ms = (int)CDTIME_T_TO_MS(t);
    return 0;
  }
  if (strcasecmp(k, "WebhookRetries") == 0) return vs_cf_int(c, where, &w->retries);
  if (strcasecmp(k, "WebhookBody") == 0) return vs_cf_string(c, where, &w->body);
  return 1;
}

/* One option of a <Rule> block. */
static int rule_option(struct vs_rule *r, const oconfig_item_t *c, const char *where) {
  const char *k = c->key;
  if (strcasecmp(k, "Match") == 0) return rule_match(r, c);
  if (glob_field(r, k, NULL) || strcasecmp(k, "Meta") == 0) return rule_match_line(r, c);
  if (strcasecmp(k, "Domain") == 0) return rule_domains(r, c);
  if (strcasecmp(k, "Action") == 0) return rule_action(r, c, where);
  if (strcasecmp(k, "DryRun") == 0) return vs_cf_boolean(c, where, &r->dry_run);
  if (strcasecmp(k, "RateLimit") == 0) return rule_rate_limit(r, c);
  if (strcasecmp(k, "Cooldown") == 0) return vs_cf_int(c, where, &r->cooldown_s);
  if (strcasecmp(k, "Retries") == 0) return vs_cf_int(c, where, &r->retries);
  if (strcasecmp(k, "RetryBackoff") == 0) return vs_cf_double(c, where, &r->retry_backoff_s);
  int rc = rule_webhook(&r->webhook, c, where);
  if (rc <= 0) return rc;
  ERROR(PLUGIN ": Rule \"%s\": unknown option \"%s\" (expected Match, Plugin, PluginInstance, "
               "Type, TypeInstance, Severity, Meta, Domain, Action, DryRun, RateLimit, Cooldown, "
               "Retries, RetryBackoff, WebhookHeader, WebhookUser, WebhookPassword, WebhookBearer, "
               "WebhookCACert, "
               "WebhookVerifyPeer, WebhookTimeout, WebhookRetries or WebhookBody)",
        r->name, k);
  return -1;
}

/* The rule as a whole: rules.h's checks, its webhook template, and a name of its own. */
static int rule_whole(const struct vs_rule *r, const struct vs_rule *pending, size_t n_pending) {
  struct vs_err err = {0};
  if (vs_rule_check(r, &err) < 0 ||
      (r->webhook.body && vs_webhook_check_template(r->webhook.body, &err) < 0)) {
    ERROR(PLUGIN ": %s", vs_err_msg(&err));
    vs_err_clear(&err);
    return -1;
  }
  for (size_t i = 0; i < n_pending; i++)
    if (strcmp(pending[i].name, r->name) == 0) {
      ERROR(PLUGIN ": two rules are named \"%s\" (a rule's name is its callback's)", r->name);
      return -1;
    }
  return 0;
}

int rule_config(oconfig_item_t *ci, struct vs_rule **pending, size_t *n_pending) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    ERROR(PLUGIN ": <Rule> takes one name: <Rule \"name\">");
    return -1;
  }
  _cleanup_(vs_rule_clear) struct vs_rule r = {
      .name = vs_xstrdup(ci->values[0].value.string), .retries = -1, .webhook.retries = -1};
  /* "vmscope_action: Rule "name"", the prefix of this rule's messages */
  _cleanup_(vs_freep) char *where = vs_xasprintf(PLUGIN ": Rule \"%s\"", r.name);
  static const char *const lists[] = {"Match", "Meta", "Domain", "Action", "WebhookHeader", NULL};
  if (vs_cf_check_repeats(ci, where, NULL, lists) < 0) return -1;
  for (int i = 0; i < ci->children_num; i++)
    if (rule_option(&r, &ci->children[i], where) != 0) return -1;
  if (rule_whole(&r, *pending, *n_pending) < 0) return -1;
  *pending = vs_xrealloc(*pending, (*n_pending + 1) * sizeof(**pending));
  (*pending)[(*n_pending)++] = r;
  r = (struct vs_rule){0}; /* moved into the pending rules */
  return 0;
}
