#include "webhook.h"

#include "dl.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* libcurl is opened with the first webhook (dl.h). */
/* clang-format off */
#define CURL_SYMBOLS(X) X(curl_easy_cleanup) X(curl_easy_getinfo) X(curl_easy_init)               \
  X(curl_easy_perform) X(curl_easy_setopt) X(curl_easy_strerror) X(curl_slist_append)             \
  X(curl_slist_free_all)
/* clang-format on */
VS_DL_LIBRARY(curl_lib, VS_SONAME_CURL, "libcurl4", CURL_SYMBOLS);

static const char *const fields[] = {"severity", "host",          "plugin",  "plugin_instance",
                                     "type",     "type_instance", "message", "time",
                                     "rule",     "domain"};

int vs_webhook_check_template(const char *tpl, struct vs_err *err) {
  for (const char *p = strstr(tpl, "${"); p; p = strstr(p + 2, "${")) {
    const char *end = strchr(p, '}');
    if (!end) return vs_err_set(err, EINVAL, "webhook body: \"${\" without \"}\"");
    size_t len = (size_t)(end - p - 2);
    bool known = len > 5 && strncmp(p + 2, "meta:", 5) == 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(*fields) && !known; i++)
      known = strlen(fields[i]) == len && strncmp(p + 2, fields[i], len) == 0;
    if (!known)
      return vs_err_set(err, EINVAL,
                        "webhook body: unknown field ${%.*s} (severity, host, plugin, "
                        "plugin_instance, type, type_instance, message, time, rule, domain, "
                        "meta:KEY)",
                        (int)len, p + 2);
  }
  return 0;
}

static char *rfc3339(double t) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return vs_xasprintf("%.*s.%03dZ", (int)n, buf, (int)((t - (double)s) * 1000) % 1000);
}

static const char *field(const struct vs_event *e, const char *rule, const char *name, size_t len,
                         char **tmp) {
#define IS(s) (strlen(s) == len && strncmp(name, s, len) == 0)
  if (IS("severity")) return vs_notif_severity_name(e->severity);
  if (IS("host")) return e->host;
  if (IS("plugin")) return e->plugin;
  if (IS("plugin_instance")) return e->plugin_instance;
  if (IS("type")) return e->type;
  if (IS("type_instance")) return e->type_instance;
  if (IS("message")) return e->message;
  if (IS("rule")) return rule;
  if (IS("domain")) return vs_event_domain(e);
  if (IS("time")) return *tmp = rfc3339(e->time);
#undef IS
  if (len > 5 && strncmp(name, "meta:", 5) == 0) {
    char *key = vs_xstrndup(name + 5, len - 5);
    const char *v = vs_event_meta(e, key);
    free(key);
    return v;
  }
  return NULL;
}

/* S as the inside of a JSON string. */
static void add_json_text(struct vs_buf *b, const char *s) {
  json_t *j = vs_json_text(s, s ? strlen(s) : 0);
  char *enc = json_dumps(j, JSON_ENCODE_ANY);
  json_decref(j);
  if (enc && strlen(enc) >= 2) vs_buf_add(b, enc + 1, strlen(enc) - 2);
  free(enc);
}

static char *render(const char *tpl, const char *rule, const struct vs_event *e) {
  struct vs_buf b = {0};
  const char *p = tpl;
  for (const char *q = strstr(p, "${"); q; q = strstr(p, "${")) {
    const char *end = strchr(q, '}');
    if (!end) break;
    vs_buf_add(&b, p, (size_t)(q - p));
    char *tmp = NULL;
    add_json_text(&b, field(e, rule, q + 2, (size_t)(end - q - 2), &tmp));
    free(tmp);
    p = end + 1;
  }
  vs_buf_adds(&b, p);
  return vs_buf_steal(&b);
}

static char *alertmanager(const char *rule, const struct vs_event *e) {
  const char *key = vs_event_meta(e, "key");
  char *alertname = vs_xasprintf("vmscope_%s", e->type && *e->type ? e->type : "event");
  json_t *labels =
      json_pack("{ssssss}", "alertname", alertname, "rule", rule, "host", e->host ? e->host : "");
  free(alertname);
  const char *l[][2] = {{"domain", vs_event_domain(e)},
                        {"plugin", e->plugin},
                        {"type", e->type},
                        {"type_instance", e->type_instance},
                        {"key", key}};
  for (size_t i = 0; i < sizeof(l) / sizeof(*l); i++)
    if (l[i][1] && *l[i][1]) json_object_set_new(labels, l[i][0], json_string(l[i][1]));
  json_t *ann = json_pack("{ssss}", "severity", vs_notif_severity_name(e->severity), "summary",
                          e->message ? e->message : "");
  for (size_t i = 0; i < e->n_meta; i++)
    if (strcmp(e->meta[i].key, "key") != 0)
      json_object_set_new(ann, e->meta[i].key, json_string(e->meta[i].value));
  char *at = rfc3339(e->time);
  json_t *alert = json_pack("{sosossss}", "labels", labels, "annotations", ann, "startsAt", at,
                            "generatorURL", "");
  if (e->severity == VS_SEV_OKAY) {
    /* An OKAY does not know when the problem started: startsAt is left to Alertmanager's
     * record of the firing alert, which endsAt closes. */
    json_object_del(alert, "startsAt");
    json_object_set_new(alert, "endsAt", json_string(at));
  }
  free(at);
  json_t *arr = json_pack("[o]", alert);
  char *s = json_dumps(arr, JSON_COMPACT);
  json_decref(arr);
  return s;
}

char *vs_webhook_body(const struct vs_webhook_opts *o, const char *rule, const struct vs_event *e) {
  return o->body ? render(o->body, rule, e) : alertmanager(rule, e);
}

static size_t discard_body(char *p, size_t size, size_t n, void *ctx) {
  (void)p;
  (void)ctx;
  return size * n;
}

int vs_webhook_post(const char *url, const struct vs_webhook_opts *o, const char *body,
                    int *attempts, struct vs_err *err) {
  if (attempts) *attempts = 0;
  if (vs_dl_load(&curl_lib, err) < 0) return -1;
  CURL *c = sym_curl_easy_init();
  if (!c) return vs_err_set(err, ENOMEM, "%s: libcurl did not start", url);
  struct curl_slist *headers = sym_curl_slist_append(NULL, "Content-Type: application/json");
  for (size_t i = 0; i < o->n_headers; i++)
    headers = sym_curl_slist_append(headers, o->headers[i]);
  char *auth = NULL;
  if (o->bearer) {
    auth = vs_xasprintf("Authorization: Bearer %s", o->bearer);
    headers = sym_curl_slist_append(headers, auth);
  }
  char errbuf[CURL_ERROR_SIZE] = "";
  int timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
  sym_curl_easy_setopt(c, CURLOPT_URL, url);
  sym_curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  sym_curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  sym_curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
  sym_curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  sym_curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  sym_curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms / 2 + 1));
  sym_curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  sym_curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  sym_curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
  sym_curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
  if (o->cacert) sym_curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
  if (o->user) {
    sym_curl_easy_setopt(c, CURLOPT_USERNAME, o->user);
    sym_curl_easy_setopt(c, CURLOPT_PASSWORD, o->password ? o->password : "");
    sym_curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
  }
  int retries = o->retries >= 0 ? o->retries : 3;
  int backoff = o->backoff_ms > 0 ? o->backoff_ms : 500;
  long status = -1;
  char *why = NULL;
  for (int attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      usleep((useconds_t)backoff * 1000);
      backoff = backoff < 30000 ? backoff * 2 : backoff;
    }
    if (attempts) (*attempts)++;
    errbuf[0] = 0;
    CURLcode rc = sym_curl_easy_perform(c);
    free(why);
    why = NULL;
    if (rc != CURLE_OK) {
      status = -1;
      why = vs_xstrdup(errbuf[0] ? errbuf : sym_curl_easy_strerror(rc));
      /* TLS verification failures will not get better by trying again */
      if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) break;
      continue;
    }
    sym_curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) break;
    why = vs_xasprintf("HTTP %ld", status);
    if (status >= 400 && status < 500 && status != 429) break; /* the request is wrong */
  }
  if (why) vs_err_set(err, status > 0 ? EPROTO : EHOSTUNREACH, "%s: %s", url, why);
  free(why);
  free(auth);
  sym_curl_slist_free_all(headers);
  sym_curl_easy_cleanup(c);
  return status >= 200 && status < 300 ? (int)status : (status > 0 ? (int)status : -1);
}
