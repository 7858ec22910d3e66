/* One action of a remediation rule (remedy.h), as vmscope_action's workers run it: an agent
 * command to a domain of libvirt's test driver (a node XML made here) whose agent channel is
 * the real qemu-ga on a unix socket; a command for a domain this host does not run, with and
 * without a fleet store to route it; a webhook against a small HTTP server run here, with its
 * retries; a patch set for a domain that is not there; and the inputs it refuses. */
#include "daemons.h"
#include "fixture.h"
#include "remedy.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static struct vs_event drift_event(const char *domain) {
  struct vs_event e = {.severity = VS_SEV_WARNING,
                       .time = 1764000000.25,
                       .host = vs_xstrdup("host-1"),
                       .plugin = vs_xstrdup("vmscope_drift"),
                       .plugin_instance = vs_xstrdup(domain),
                       .type = vs_xstrdup("config_drift"),
                       .type_instance = vs_xstrdup("sshd_config.PermitRootLogin"),
                       .message = vs_xstrdup("PermitRootLogin is \"yes\"")};
  vs_event_add_meta(&e, "key", "file:/etc/ssh/sshd_config:PermitRootLogin");
  return e;
}

/* The rule an action belongs to: only its name and webhook options matter here. */
static struct vs_rule rule_named(const char *name) {
  return (struct vs_rule){.name = (char *)name, .webhook = {.retries = -1}};
}

/* Runs one action of KIND with ARG for DOMAIN; *DETAIL (when asked) and ERR are the caller's. */
static int run(struct vs_remedy *c, const struct vs_rule *r, enum vs_action_kind kind,
               const char *arg, const char *domain, json_t **detail, struct vs_err *err) {
  struct vs_event e = drift_event(domain);
  struct vs_rule_action a = {kind, (char *)arg};
  int rc = vs_remedy_run(c, r, &a, &e, domain, detail, err);
  vs_event_clear(&e);
  return rc;
}

static bool has(const struct vs_err *err, const char *text) {
  return err->msg && strstr(err->msg, text);
}

/* An error for a test's description: the message, or that there was none. */
static const char *why(const struct vs_err *err) {
  return err->msg ? err->msg : "no error";
}

/* ----------------------------------------------------------------- refused inputs */

static void test_refusals(const char *uri) {
  int rc;
  struct vs_remedy_opts o = {.uri = uri};
  struct vs_remedy c = {.o = &o};
  struct vs_rule r = rule_named("fix");
  struct vs_err err = {0};
  json_t *detail = NULL;
  rc = run(&c, &r, VS_ACTION_AGENT, "guest-ping", "web-01", &detail, &err);
  ok(rc == -1 && err.code == EINVAL && has(&err, "\"guest-ping\" is not {\"execute\": ...}"),
     "an agent action that is not JSON is refused: %s", why(&err));
  ok(detail == NULL, "and reports no detail");
  ok(c.virt == NULL, "without connecting to libvirt");
  vs_err_clear(&err);
  rc = run(&c, &r, VS_ACTION_AGENT, "{\"arguments\":{}}", "web-01", &detail, &err);
  ok(rc == -1 && err.code == EINVAL && has(&err, "is not {\"execute\": ...}"),
     "an agent command without \"execute\" is refused: %s", why(&err));
  vs_err_clear(&err);
  rc = run(&c, &r, (enum vs_action_kind)7, "x", "web-01", &detail, &err);
  ok(rc == -1 && err.code == EINVAL && has(&err, "7"),
     "an action of no known kind fails with a message: %s", why(&err));
  vs_err_clear(&err);
  vs_remedy_clear(&c);
  vs_remedy_clear(&c);
  ok(c.virt == NULL && c.fleet == NULL, "a context is cleared twice, and when nothing was opened");
}

/* -------------------------------------------------------------- where agent commands go */

static void test_routing(const char *uri, const char *dir) {
  int rc;
  struct vs_remedy_opts o = {.uri = uri};
  struct vs_remedy c = {.o = &o};
  struct vs_rule r = rule_named("fix");
  struct vs_err err = {0};
  json_t *detail = NULL;
  rc = run(&c, &r, VS_ACTION_AGENT, "{\"execute\":\"guest-ping\"}", "ghost-01", &detail, &err);
  ok(rc == -1 && err.code == ENOENT &&
         has(&err, "ghost-01 does not run on this host and no FleetStore routes elsewhere"),
     "a domain this host does not run, with no fleet store: %s", why(&err));
  vs_err_clear(&err);
  struct vs_virt *first = c.virt;
  ok(first != NULL, "the first command opened the context's libvirt connection");
  rc = run(&c, &r, VS_ACTION_AGENT, "{\"execute\":\"guest-ping\"}", "off-01", &detail, &err);
  ok(rc == -1 && err.code == ENOENT,
     "a domain defined here but shut off does not run here either: %s", why(&err));
  vs_err_clear(&err);
  ok(c.virt == first, "the next command reuses that connection");
  vs_remedy_clear(&c);

  /* libvirt is away: without a fleet store that is the error; with one the command is routed
   * (here to a store that refuses connections, so the store's error is reported). */
  char *gone = vs_xasprintf("test://%s/no-such-node.xml", dir);
  o.uri = gone;
  rc = run(&c, &r, VS_ACTION_AGENT, "{\"execute\":\"guest-ping\"}", "web-01", &detail, &err);
  ok(rc == -1 && has(&err, "no-such-node.xml"),
     "with libvirt away and no fleet store, libvirt's error is the action's: %s", why(&err));
  vs_err_clear(&err);
  const char *endpoints[] = {"http://127.0.0.1:9"};
  struct vs_fleet_opts fo = {.endpoints = endpoints, .n_endpoints = 1, .timeout_ms = 2000};
  o.fleet = &fo;
  o.agent_timeout_ms = 2000;
  rc = run(&c, &r, VS_ACTION_AGENT, "{\"execute\":\"guest-ping\"}", "web-01", &detail, &err);
  ok(rc == -1 && err.msg && !has(&err, "no-such-node.xml") && !has(&err, "does not run"),
     "with a fleet store, a domain libvirt cannot show is routed: %s", why(&err));
  ok(c.fleet != NULL, "through the context's fleet connection");
  ok(detail == NULL, "a command that was not delivered has no detail");
  vs_err_clear(&err);
  vs_remedy_clear(&c);
  free(gone);
}

/* ------------------------------------------------------------ a local agent: qemu-ga */

/* What could change this machine is blocked, as in t/unit/channel.c: the agent runs here, not
 * in a guest. guest-exec stays: the tests run /bin/sh -c "exit N" through it. */
static const char *blocked =
    "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-time,"
    "guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-fstrim,"
    "guest-set-user-password,guest-set-vcpus,guest-set-memory-blocks,guest-file-open,"
    "guest-file-write,guest-ssh-add-authorized-keys,guest-ssh-remove-authorized-keys,"
    "guest-network-set-interfaces";

static void test_agent(const char *uri, const char *sock) {
  int rc;
  struct vs_remedy_opts o = {.uri = uri, .agent_timeout_ms = 5000, .exec_deadline_ms = 20000};
  struct vs_remedy c = {.o = &o};
  struct vs_rule r = rule_named("fix");
  struct vs_err err = {0};
  json_t *detail = NULL;
  char *spec = vs_xasprintf("unix:%s", sock);

  rc = run(&c, &r, VS_ACTION_AGENT, "{\"execute\":\"guest-ping\"}", "web-01", &detail, &err);
  ok(rc == 0, "guest-ping reaches the domain's agent through its unix channel (%s)", why(&err));
  is_str(json_string_value(json_object_get(detail, "status")), "ok", "the detail says ok");
  is_str(json_string_value(json_object_get(detail, "channel")), spec, "and names the channel");
  ok(json_is_object(json_object_get(detail, "return")), "and holds the agent's return value");
  json_decref(detail);
  detail = NULL;
  rc = run(&c, &r, VS_ACTION_AGENT, "{\"execute\":\"guest-ping\"}",
           "6695eb01-f6a4-8304-79aa-97f2502e193f", NULL, &err);
  ok(rc == 0, "the domain is found by its UUID too, and the detail may be left unasked");

  const char *exec_true = "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/sh\","
                          "\"arg\":[\"-c\",\"exit 0\"],\"capture-output\":true}}";
  rc = run(&c, &r, VS_ACTION_AGENT, exec_true, "web-01", &detail, &err);
  ok(rc == -1 && has(&err, "web-01 (refused)"),
     "guest-exec is refused unless AllowCommand allows it: %s", why(&err));
  vs_err_clear(&err);
  json_decref(detail);
  detail = NULL;

  const char *allow[] = {"guest-exec"};
  o.allow = allow;
  o.n_allow = 1;
  rc = run(&c, &r, VS_ACTION_AGENT, exec_true, "web-01", &detail, &err);
  ok(rc == 0, "an allowed guest-exec is run to its end (%s)", why(&err));
  ok(json_integer_value(json_object_get(detail, "exit_code")) == 0 &&
         json_object_get(detail, "exit_code"),
     "its exit code is in the detail");
  json_decref(detail);
  detail = NULL;
  const char *exec_fails = "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/sh\","
                           "\"arg\":[\"-c\",\"echo disk full >&2; exit 3\"],"
                           "\"capture-output\":true}}";
  rc = run(&c, &r, VS_ACTION_AGENT, exec_fails, "web-01", &detail, &err);
  ok(rc == -1 && err.code == EIO &&
         has(&err, "web-01: guest-exec /bin/sh exited with 3: disk full"),
     "a command that exits non-zero fails the action, with its stderr");
  ok(json_integer_value(json_object_get(detail, "exit_code")) == 3,
     "and the detail still says what it did (exit code 3)");
  vs_err_clear(&err);
  json_decref(detail);
  detail = NULL;
  rc = run(&c, &r, VS_ACTION_AGENT, "{\"execute\":\"guest-exec\",\"arguments\":{}}", "web-01",
           &detail, &err);
  ok(rc == -1 && has(&err, "guest-exec without a \"path\""),
     "a guest-exec without a path is refused: %s", why(&err));
  vs_err_clear(&err);
  json_decref(detail);
  detail = NULL;
  rc = run(&c, &r, VS_ACTION_AGENT, "{\"execute\":\"guest-ping\"}", "db-01", &detail, &err);
  ok(rc == -1 && has(&err, "db-01 ("),
     "a domain without a unix agent channel goes through libvirt, which the test driver "
     "refuses: %s",
     why(&err));
  vs_err_clear(&err);
  json_decref(detail);
  vs_remedy_clear(&c);
  free(spec);
}

/* ------------------------------------------------------------------------- webhooks */

static int webhook(const struct vs_rule *r, const char *url, int *status, int *attempts,
                   struct vs_err *err) {
  struct vs_remedy_opts o = {0};
  struct vs_remedy c = {.o = &o};
  json_t *detail = NULL;
  int rc = run(&c, r, VS_ACTION_WEBHOOK, url, "web-03", &detail, err);
  *status = (int)json_integer_value(json_object_get(detail, "http_status"));
  *attempts = (int)json_integer_value(json_object_get(detail, "attempts"));
  json_decref(detail);
  vs_remedy_clear(&c);
  return rc;
}

static void test_webhook(void) {
  int rc;
  struct fx_httpd s = {0};
  if (fx_httpd_start(&s) < 0) {
    skip(9, "no loopback socket");
    return;
  }
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v2/alerts", s.port);
  struct vs_rule r = rule_named("root-login");
  r.webhook.backoff_ms = 10;
  r.webhook.timeout_ms = 2000;
  struct vs_err err = {0};
  int status = 0, attempts = 0;

  fx_httpd_answer(&s, 503, 200);
  rc = webhook(&r, url, &status, &attempts, &err);
  ok(rc == 0 && status == 200 && attempts == 2,
     "a 503 is retried and the second attempt lands: the action succeeds (%d, %d attempts)", status,
     attempts);
  ok(strstr(s.last, "\"alertname\":\"vmscope_config_drift\"") &&
         strstr(s.last, "\"rule\":\"root-login\"") && strstr(s.last, "\"domain\":\"web-03\""),
     "the body is Alertmanager's alert for the rule and the notification's domain");
  fx_httpd_answer(&s, 400, 200);
  rc = webhook(&r, url, &status, &attempts, &err);
  ok(rc == -1 && status == 400 && attempts == 1 && has(&err, "400"),
     "a 400 fails the action at once, not retried: %s", why(&err));
  vs_err_clear(&err);
  fx_httpd_answer(&s, 503, 503);
  r.webhook.retries = 2;
  rc = webhook(&r, url, &status, &attempts, &err);
  ok(rc == -1 && status == 503 && attempts == 3,
     "503 every time: the action fails after its retries (%d attempts): %s", attempts, why(&err));
  vs_err_clear(&err);
  fx_httpd_answer(&s, 503, 200);
  r.webhook.retries = 0;
  rc = webhook(&r, url, &status, &attempts, &err);
  ok(rc == -1 && status == 503 && attempts == 1, "WebhookRetries 0: one attempt only (%d)",
     attempts);
  vs_err_clear(&err);
  r.webhook.retries = -1;
  r.webhook.body = "{\"text\":\"${rule} on ${domain}: ${meta:key}\"}";
  fx_httpd_answer(&s, 204, 204);
  rc = webhook(&r, url, &status, &attempts, &err);
  ok(rc == 0 && status == 204, "any 2xx is success (204)");
  ok(strstr(s.last,
            "{\"text\":\"root-login on web-03: file:/etc/ssh/sshd_config:PermitRootLogin\"}"),
     "a body template is filled from the rule and the notification");
  r.webhook.body = NULL;
  fx_httpd_stop(&s);
  r.webhook.retries = 1;
  rc = webhook(&r, url, &status, &attempts, &err);
  ok(rc == -1 && status == -1 && attempts == 2 && err.msg,
     "an endpoint that is gone fails after its retries, with why: %s", why(&err));
  vs_err_clear(&err);
  rc = webhook(&r, "ftp://127.0.0.1/alerts", &status, &attempts, &err);
  ok(rc == -1 && status == -1 && err.msg, "a URL that is neither http nor https is not posted: %s",
     why(&err));
  vs_err_clear(&err);
}

/* ------------------------------------------------------------------------ patch sets */

static void test_patchset(const char *uri, const char *dir) {
  int rc;
  struct vs_remedy_opts o = {.uri = uri};
  struct vs_remedy c = {.o = &o};
  struct vs_rule r = rule_named("fix");
  struct vs_err err = {0};
  json_t *detail = NULL;
  char *set = vs_xasprintf("%s/fix.qcow2", dir);
  rc = run(&c, &r, VS_ACTION_PATCHSET, set, "ghost-01", &detail, &err);
  ok(rc == -1 && has(&err, "ghost-01"),
     "a patch set for a domain libvirt does not know fails, naming it: %s", why(&err));
  vs_err_clear(&err);
  json_decref(detail);
  vs_remedy_clear(&c);
  char *gone = vs_xasprintf("test://%s/no-such-node.xml", dir);
  o.uri = gone;
  rc = run(&c, &r, VS_ACTION_PATCHSET, set, "web-01", NULL, &err);
  ok(rc == -1 && has(&err, "no-such-node.xml"),
     "and with libvirt away, libvirt's error is the action's: %s", why(&err));
  vs_err_clear(&err);
  vs_remedy_clear(&c);
  free(gone);
  free(set);
}

int main(void) {
  plan_no_plan();
  char *dir = fx_tmpdir(); /* allocated: fixture.h's "static storage" is out of date */
  char *sock = vs_xasprintf("%s/qga.sock", dir);
  char *node =
      vs_xasprintf("<node>\n"
                   " <domain type='test'>\n"
                   "  <name>web-01</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>\n"
                   "  <memory unit='MiB'>512</memory><os><type>hvm</type></os>\n"
                   "  <devices><channel type='unix'><source mode='bind' path='%s'/>"
                   "<target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices>\n"
                   " </domain>\n"
                   " <domain type='test'>\n"
                   "  <name>db-01</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e1940</uuid>\n"
                   "  <memory unit='MiB'>512</memory><os><type>hvm</type></os>\n"
                   " </domain>\n"
                   " <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
                   "  <name>off-01</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e1941</uuid>\n"
                   "  <memory unit='MiB'>512</memory><os><type>hvm</type></os>\n"
                   "  <test:runstate>5</test:runstate>\n"
                   " </domain>\n"
                   "</node>\n",
                   sock);
  fx_write(dir, "node.xml", node);
  char *uri = vs_xasprintf("test://%s/node.xml", dir);

  test_refusals(uri);
  test_routing(uri, dir);
  pid_t qga = fx_qemu_ga_start(sock, dir, blocked);
  if (qga > 0) {
    test_agent(uri, sock);
    kill(qga, SIGTERM);
    waitpid(qga, NULL, 0);
  } else {
    skip(1, "qemu-ga did not start (is qemu-guest-agent installed?)");
  }
  test_webhook();
  test_patchset(uri, dir);

  fx_rmtree(dir);
  free(uri);
  free(node);
  free(sock);
  free(dir);
  return done_testing();
}
