/* Remediation rules (matching, rate limits, cooldowns), the bounded queue, and webhooks: the
 * Alertmanager body, templates, and posting with retries and authentication against a small
 * HTTP server run here. */
#include "queue.h"
#include "rules.h"
#include "daemons.h"
#include "tap.h"
#include "webhook.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct vs_event drift_event(const char *domain, int severity) {
  struct vs_event e = {.severity = severity,
                       .time = 1764000000.25,
                       .host = vs_xstrdup("host-1"),
                       .plugin = vs_xstrdup("vmscope_drift"),
                       .plugin_instance = vs_xstrdup(domain),
                       .type = vs_xstrdup("config_drift"),
                       .type_instance = vs_xstrdup("sshd_config.PermitRootLogin"),
                       .message = vs_xstrdup("PermitRootLogin is \"yes\" on web-03")};
  vs_event_add_meta(&e, "key", "file:/etc/ssh/sshd_config:PermitRootLogin");
  vs_event_add_meta(&e, "value", "yes");
  return e;
}

static struct vs_rule base_rule(void) {
  struct vs_rule r = {.name = vs_xstrdup("root-login"),
                      .plugin = vs_xstrdup("vmscope_drift"),
                      .type = vs_xstrdup("config_drift"),
                      .severity = vs_xstrdup("warning")};
  r.meta_keys = vs_xcalloc(1, sizeof(char *));
  r.meta_values = vs_xcalloc(1, sizeof(char *));
  r.meta_keys[0] = vs_xstrdup("key");
  r.meta_values[0] = vs_xstrdup("file:/etc/ssh/sshd_config:PermitRootLogin");
  r.n_meta = 1;
  r.domains = vs_xcalloc(1, sizeof(char *));
  r.domains[0] = vs_xstrdup("web-*");
  r.n_domains = 1;
  r.actions = vs_xcalloc(1, sizeof(*r.actions));
  r.actions[0] =
      (struct vs_rule_action){VS_ACTION_AGENT, vs_xstrdup("{\"execute\":\"guest-ping\"}")};
  r.n_actions = 1;
  return r;
}

static void test_matching(void) {
  struct vs_rule r = base_rule();
  struct vs_event e = drift_event("web-03", VS_SEV_WARNING);
  ok(vs_rule_check(&r, NULL) == 0, "a well-formed rule passes its check");
  ok(vs_rule_matches(&r, &e), "it matches the drift it names");
  struct vs_event db = drift_event("db-01", VS_SEV_WARNING);
  ok(!vs_rule_matches(&r, &db), "not on a domain outside its Domain globs");
  struct vs_event okay = drift_event("web-03", VS_SEV_OKAY);
  ok(!vs_rule_matches(&r, &okay), "not at another severity (exact)");
  free(r.severity);
  r.severity = vs_xstrdup("*");
  ok(vs_rule_matches(&r, &okay), "Severity \"*\" takes every severity");
  free(e.meta[0].value);
  e.meta[0].value = vs_xstrdup("file:/etc/ssh/sshd_config:Port");
  ok(!vs_rule_matches(&r, &e), "not when the meta value differs");
  free(r.meta_values[0]);
  r.meta_values[0] = vs_xstrdup("file:/etc/ssh/*");
  ok(vs_rule_matches(&r, &e), "a meta glob takes any sshd_config key");
  vs_event_add_meta(&db, "domain", "web-09");
  ok(vs_rule_matches(&r, &db), "the \"domain\" meta names the domain when there is one");
  /* PluginInstanceFormat uuid: the plugin instance is the UUID, the name rides in meta */
  struct vs_event byuuid = drift_event("00000000-0000-4000-8000-000000000003", VS_SEV_WARNING);
  ok(!vs_rule_matches(&r, &byuuid), "a UUID instance alone does not match a Domain glob on names");
  vs_event_add_meta(&byuuid, "name", "web-03");
  ok(vs_rule_matches(&r, &byuuid),
     "with the VM's name in meta \"name\", Domain \"web-*\" matches a UUID instance");
  struct vs_event byname = drift_event("web-03", VS_SEV_WARNING);
  vs_event_add_meta(&byname, "id", "00000000-0000-4000-8000-000000000003");
  free(r.domains[0]);
  r.domains[0] = vs_xstrdup("00000000-0000-4000-8000-00000000000[0-3]");
  ok(vs_rule_matches(&r, &byname), "and a Domain glob on UUIDs matches a name instance by its id");
  free(r.domains[0]);
  r.domains[0] = vs_xstrdup("web-*");
  vs_event_clear(&byuuid);
  vs_event_clear(&byname);
  struct vs_event other = drift_event("web-03", VS_SEV_WARNING);
  free(other.plugin);
  other.plugin = vs_xstrdup("vmscope_action");
  ok(!vs_rule_matches(&r, &other), "another plugin's notification is not taken");

  struct vs_event *copy = vs_event_copy(&e);
  free(e.meta[1].value);
  e.meta[1].value = vs_xstrdup("changed");
  is_str(vs_event_meta(copy, "value"), "yes", "a copied event keeps its own meta (deep copy)");
  vs_event_free(copy);
  vs_event_clear(&e);
  vs_event_clear(&db);
  vs_event_clear(&okay);
  vs_event_clear(&other);
  vs_rule_clear(&r);
}

static void test_check(void) {
  struct vs_err err = {0};
  ok(vs_glob_valid("web-[0-9]*") && vs_glob_valid("[]x]") && vs_glob_valid("a\\*"),
     "well-formed globs pass");
  ok(!vs_glob_valid("web-[0-9") && !vs_glob_valid("x\\"), "an unclosed [ or a trailing \\ fails");
  struct vs_rule r = base_rule();
  free(r.domains[0]);
  r.domains[0] = vs_xstrdup("web-[");
  ok(vs_rule_check(&r, &err) < 0 && strstr(vs_err_msg(&err), "web-["),
     "a rule with a bad Domain glob is refused: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_rule_clear(&r);
  r = base_rule();
  free(r.actions[0].arg);
  r.actions[0].arg = vs_xstrdup("{\"command\":1}");
  ok(vs_rule_check(&r, &err) < 0, "an agent action that is not {\"execute\":...} is refused: %s",
     vs_err_msg(&err));
  vs_err_clear(&err);
  r.actions[0] = (struct vs_rule_action){VS_ACTION_WEBHOOK, r.actions[0].arg};
  free(r.actions[0].arg);
  r.actions[0].arg = vs_xstrdup("ftp://x");
  ok(vs_rule_check(&r, &err) < 0, "a webhook that is not http(s) is refused: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  free(r.actions[0].arg);
  r.actions[0].arg = vs_xstrdup("http://127.0.0.1:1/x");
  free(r.severity);
  r.severity = vs_xstrdup("urgent");
  ok(vs_rule_check(&r, &err) < 0, "an unknown severity is refused: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  free(r.severity);
  r.severity = NULL;
  r.rate_count = 1;
  ok(vs_rule_check(&r, &err) < 0, "a RateLimit without its window is refused");
  vs_err_clear(&err);
  vs_rule_clear(&r);
  ok(vs_webhook_check_template("{\"t\":\"${type}\",\"k\":\"${meta:key}\"}", NULL) == 0,
     "a template with known fields passes");
  ok(vs_webhook_check_template("${nosuch}", &err) < 0, "an unknown field is refused: %s",
     vs_err_msg(&err));
  vs_err_clear(&err);
}

static void test_limits(void) {
  struct vs_rule r[2] = {base_rule(), base_rule()};
  r[0].rate_count = 2;
  r[0].rate_window_s = 60;
  r[1].cooldown_s = 100;
  struct vs_rules *rs = vs_rules_new(r, 2);
  ok(vs_rules_admit(rs, 0, "web-03", 1000) && vs_rules_admit(rs, 0, "web-03", 1001),
     "RateLimit 2 60: two runs in a minute");
  ok(!vs_rules_admit(rs, 0, "web-03", 1030), "not a third within the minute");
  ok(vs_rules_admit(rs, 0, "web-04", 1030), "another domain has its own count");
  ok(vs_rules_admit(rs, 0, "web-03", 1060.5), "a minute after the first, one more");
  ok(!vs_rules_admit(rs, 0, "web-03", 1060.9), "but only one");
  ok(vs_rules_admit(rs, 1, "web-03", 1000), "Cooldown 100: the first run");
  ok(!vs_rules_admit(rs, 1, "web-03", 1099), "none 99 s later");
  ok(vs_rules_admit(rs, 1, "web-03", 1100), "one 100 s later");
  vs_rules_free(rs);
}

static void test_queue(void) {
  struct vs_queue *q = vs_queue_new(3);
  int a = 1, b = 2, c = 3, d = 4;
  ok(vs_queue_push(q, &a) && vs_queue_push(q, &b) && vs_queue_push(q, &c),
     "a queue of 3 takes three items");
  ok(!vs_queue_push(q, &d), "and refuses a fourth at once");
  ok(vs_queue_pop(q) == &a && vs_queue_pop(q) == &b, "items come out in order");
  vs_queue_close(q);
  ok(!vs_queue_push(q, &d), "a closed queue takes nothing");
  ok(vs_queue_pop(q) == &c && vs_queue_pop(q) == NULL, "what is left comes out, then NULL");
  vs_queue_free(q, NULL);
}

static void test_body(void) {
  struct vs_webhook_opts o = {.retries = -1};
  struct vs_event e = drift_event("web-03", VS_SEV_WARNING);
  char *body = vs_webhook_body(&o, "root-login", &e);
  json_t *j = json_loads(body, 0, NULL);
  json_t *a = json_array_get(j, 0);
  is_str(json_string_value(json_object_get(json_object_get(a, "labels"), "alertname")),
         "vmscope_config_drift", "the default body is Alertmanager v2 alerts: alertname");
  is_str(json_string_value(json_object_get(json_object_get(a, "labels"), "domain")), "web-03",
         "labelled with the domain");
  is_str(json_string_value(json_object_get(json_object_get(a, "labels"), "key")),
         "file:/etc/ssh/sshd_config:PermitRootLogin", "and the key");
  is_str(json_string_value(json_object_get(a, "startsAt")), "2025-11-24T16:00:00.250Z",
         "startsAt is the notification's time");
  ok(!json_object_get(a, "endsAt"), "a WARNING has no endsAt");
  json_decref(j);
  free(body);
  e.severity = VS_SEV_OKAY;
  body = vs_webhook_body(&o, "root-login", &e);
  j = json_loads(body, 0, NULL);
  a = json_array_get(j, 0);
  is_str(json_string_value(json_object_get(a, "endsAt")), "2025-11-24T16:00:00.250Z",
         "an OKAY sets endsAt, so the alert resolves");
  json_decref(j);
  free(body);
  o.body = vs_xstrdup("{\"msg\":\"${message}\",\"vm\":\"${domain}\",\"k\":\"${meta:key}\"}");
  body = vs_webhook_body(&o, "root-login", &e);
  is_str(body,
         "{\"msg\":\"PermitRootLogin is \\\"yes\\\" on web-03\",\"vm\":\"web-03\","
         "\"k\":\"file:/etc/ssh/sshd_config:PermitRootLogin\"}",
         "a template is filled in, its values escaped for JSON");
  free(body);
  free(o.body);
  vs_event_clear(&e);
  /* Notification text can carry guest bytes that are not UTF-8; the body must still be JSON. */
  e = drift_event("web-\xff", VS_SEV_WARNING);
  o.body = vs_xstrdup("{\"vm\":\"${domain}\"}");
  body = vs_webhook_body(&o, "root-login", &e);
  is_str(body, "{\"vm\":\"web-\\\\xFF\"}", "a value that is not UTF-8 is written with \\xHH");
  free(body);
  free(o.body);
  vs_event_clear(&e);
}

static void test_post(void) {
  struct fx_httpd s = {.statuses = {503, 503, 200}, .n_statuses = 3};
  if (fx_httpd_start(&s) < 0) {
    skip(7, "no loopback socket");
    return;
  }
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v2/alerts", s.port);
  char *hdr[] = {"X-Team: ops"};
  struct vs_webhook_opts o = {.retries = 3,
                              .backoff_ms = 20,
                              .bearer = "s3cret",
                              .headers = hdr,
                              .n_headers = 1,
                              .timeout_ms = 2000};
  int attempts = 0;
  struct vs_err err = {0};
  int status = vs_webhook_post(url, &o, "[{\"labels\":{}}]", &attempts, &err);
  ok(status == 200 && attempts == 3,
     "two 503 answers are retried, the third attempt lands (%d, %d)", status, attempts);
  ok(strstr(s.last, "Authorization: Bearer s3cret") != NULL, "with the bearer token");
  ok(strstr(s.last, "X-Team: ops") != NULL, "and the configured header");
  ok(strstr(s.last, "[{\"labels\":{}}]") != NULL, "and the body");
  s.statuses[0] = 400;
  s.n_statuses = 1;
  s.served = 0;
  o.bearer = NULL;
  o.user = "alice";
  o.password = "pw";
  status = vs_webhook_post(url, &o, "{}", &attempts, &err);
  ok(status == 400 && attempts == 1 && strstr(vs_err_msg(&err), "HTTP 400"),
     "a 400 is final, not retried: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  ok(strstr(s.last, "Authorization: Basic YWxpY2U6cHc=") != NULL, "with basic authentication");
  fx_httpd_stop(&s);
  o.retries = 1;
  status = vs_webhook_post(url, &o, "{}", &attempts, &err);
  ok(status == -1 && attempts == 2 && err.msg,
     "an endpoint that is gone fails after its retries: %s", vs_err_msg(&err));
  vs_err_clear(&err);
}

int main(void) {
  test_matching();
  test_check();
  test_limits();
  test_queue();
  test_body();
  test_post();
  return done_testing();
}
