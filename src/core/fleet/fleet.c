#include "fleet.h"

#include "crypto.h"
#include "dl.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* libcurl is opened with the first fleet map (dl.h), not by every command at start-up. */
/* clang-format off */
#define CURL_SYMBOLS(X) X(curl_easy_cleanup) X(curl_easy_getinfo) X(curl_easy_init)               \
  X(curl_easy_perform) X(curl_easy_setopt) X(curl_easy_strerror) X(curl_global_init)              \
  X(curl_slist_append) X(curl_slist_free_all)
/* clang-format on */
VS_DL_LIBRARY(curl_lib, VS_SONAME_CURL, "libcurl4", CURL_SYMBOLS);

struct vs_fleet {
  CURL *curl;
  char **endpoints;
  size_t n_endpoints, current;
  char *prefix;
  int timeout_ms;
  char *user_password;
  struct vs_buf response;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void init_curl(void) {
  sym_curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Nettle is opened by vs_fleet_open: NULL only for a key or value over 1 GiB, which the
 * request's json_pack then refuses ("cannot encode the request"). */
static char *b64(const char *s, size_t len) {
  return vs_base64_encode(s, len, NULL);
}

/* The full key for relative KEY, base64 for the gateway. */
static char *full_key(const struct vs_fleet *f, const char *key) {
  char *k = vs_xasprintf("%s%s", f->prefix, key);
  char *e = b64(k, strlen(k));
  free(k);
  return e;
}

/* The end of the range of keys starting with P: P with its last byte incremented. */
static char *range_end(const char *p) {
  size_t len = strlen(p);
  char *e = vs_xstrdup(p);
  while (len > 0 && (unsigned char)e[len - 1] == 0xff)
    len--;
  if (len == 0) {
    free(e);
    return b64("\0", 1);
  }
  e[len - 1]++;
  char *out = b64(e, len);
  free(e);
  return out;
}

struct vs_fleet *vs_fleet_open(const struct vs_fleet_opts *o, struct vs_err *err) {
  if (vs_dl_load(&curl_lib, err) < 0 || vs_crypto_load(err) < 0) return NULL;
  pthread_once(&curl_once, init_curl);
  if (!o || o->n_endpoints == 0) {
    vs_err_set(err, EINVAL, "no etcd endpoint given");
    return NULL;
  }
  struct vs_fleet *f = vs_xcalloc(1, sizeof(*f));
  f->curl = sym_curl_easy_init();
  if (!f->curl) {
    vs_err_set(err, ENOMEM, "libcurl: cannot create a handle");
    free(f);
    return NULL;
  }
  f->endpoints = vs_xcalloc(o->n_endpoints, sizeof(char *));
  for (size_t i = 0; i < o->n_endpoints; i++) {
    size_t len = strlen(o->endpoints[i]);
    while (len > 0 && o->endpoints[i][len - 1] == '/')
      len--;
    f->endpoints[f->n_endpoints++] = vs_xstrndup(o->endpoints[i], len);
  }
  f->prefix = vs_xstrdup(o->prefix ? o->prefix : "/vmscope/");
  f->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
  if (o->cacert) sym_curl_easy_setopt(f->curl, CURLOPT_CAINFO, o->cacert);
  if (o->cert) sym_curl_easy_setopt(f->curl, CURLOPT_SSLCERT, o->cert);
  if (o->key) sym_curl_easy_setopt(f->curl, CURLOPT_SSLKEY, o->key);
  if (o->user) {
    f->user_password = vs_xasprintf("%s:%s", o->user, o->password ? o->password : "");
    sym_curl_easy_setopt(f->curl, CURLOPT_USERPWD, f->user_password);
  }
  return f;
}

void vs_fleet_close(struct vs_fleet *f) {
  if (!f) return;
  sym_curl_easy_cleanup(f->curl);
  for (size_t i = 0; i < f->n_endpoints; i++)
    free(f->endpoints[i]);
  free(f->endpoints);
  free(f->prefix);
  free(f->user_password);
  vs_buf_free(&f->response);
  free(f);
}

void vs_fleet_closep(struct vs_fleet **f) {
  vs_fleet_close(*f);
}

const char *vs_fleet_endpoint(const struct vs_fleet *f) {
  return f->endpoints[f->current];
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx) {
  struct vs_fleet *f = ctx;
  if (f->response.len + size * n > (64u << 20)) return 0; /* a reply that big is not etcd's */
  vs_buf_add(&f->response, data, size * n);
  return size * n;
}

/* Sleeps SECONDS (at most a second). */
static void pause_for(double seconds) {
  struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(seconds * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* POSTs BODY (stolen) to PATH of the first endpoint that answers, starting with the one that
 * answered last. A member that cannot be reached, or answers that it cannot serve now (HTTP
 * 5xx: etcd's "leader changed", "no leader", "request timed out" while the members elect a
 * leader after one died), is passed over for the next. When every member was passed over and
 * one of them said it cannot serve now, the members are asked again, after 50 ms and then
 * twice as long each time (at most 500 ms), until the request's timeout has passed since the
 * first: an election takes about a second, and a message sent meanwhile must not be lost. Any
 * other answer is final: another member would answer the same. Returns the parsed reply or
 * NULL. */
static json_t *post(struct vs_fleet *f, const char *path, json_t *body, struct vs_err *err) {
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (!text) {
    vs_err_set(err, EINVAL, "%s: cannot encode the request", path);
    return NULL;
  }
  struct curl_slist *headers = sym_curl_slist_append(NULL, "Content-Type: application/json");
  json_t *reply = NULL;
  struct vs_buf tried = {0};
  bool final = false;
  double deadline = vs_now_monotonic() + f->timeout_ms / 1000.0, wait = 0.05;
  for (;;) {
    bool unavailable = false;
    vs_buf_reset(&tried);
    for (size_t attempt = 0; attempt < f->n_endpoints && !reply && !final; attempt++) {
      size_t i = (f->current + attempt) % f->n_endpoints;
      char *url = vs_xasprintf("%s%s", f->endpoints[i], path);
      vs_buf_reset(&f->response);
      sym_curl_easy_setopt(f->curl, CURLOPT_URL, url);
      sym_curl_easy_setopt(f->curl, CURLOPT_POSTFIELDS, text);
      sym_curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, headers);
      sym_curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_body);
      sym_curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, f);
      sym_curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, (long)f->timeout_ms);
      sym_curl_easy_setopt(f->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(f->timeout_ms / 2 + 1));
      sym_curl_easy_setopt(f->curl, CURLOPT_NOSIGNAL, 1L);
      CURLcode rc = sym_curl_easy_perform(f->curl);
      long status = 0;
      sym_curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
      if (rc != CURLE_OK) {
        vs_buf_addf(&tried, "%s%s: %s", tried.len ? "; " : "", f->endpoints[i],
                    sym_curl_easy_strerror(rc));
      } else {
        json_error_t je;
        json_t *j = json_loadb(f->response.data ? f->response.data : "", f->response.len, 0, &je);
        const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
        if (!msg && j) msg = json_string_value(json_object_get(j, "error"));
        if (status == 200 && json_is_object(j)) {
          reply = j;
          f->current = i;
          j = NULL;
        } else if (status >= 500) {
          vs_buf_addf(&tried, "%s%s: HTTP %ld: %s", tried.len ? "; " : "", f->endpoints[i], status,
                      msg ? msg : "unexpected reply");
          unavailable = true;
        } else {
          vs_err_set(err, status == 401 || status == 403 ? EACCES : EIO, "%s%s: HTTP %ld: %s",
                     f->endpoints[i], path, status, msg ? msg : "unexpected reply");
          final = true;
        }
        json_decref(j);
      }
      free(url);
    }
    double left = deadline - vs_now_monotonic();
    if (reply || final || !unavailable || left <= 0) break;
    pause_for(wait < left ? wait : left);
    wait = wait * 2 < 0.5 ? wait * 2 : 0.5;
  }
  if (!reply && !final)
    vs_err_set(err, EHOSTUNREACH, "no etcd endpoint answers: %s", tried.len ? tried.data : "none");
  sym_curl_slist_free_all(headers);
  vs_buf_free(&tried);
  free(text);
  return reply;
}

/* etcd's JSON gateway writes 64-bit integers as strings. */
static int64_t int64_of(const json_t *j) {
  if (json_is_integer(j)) return json_integer_value(j);
  if (json_is_string(j)) return strtoll(json_string_value(j), NULL, 10);
  return 0;
}

int vs_fleet_lease_grant(struct vs_fleet *f, int ttl_s, int64_t *lease, struct vs_err *err) {
  json_t *r = post(f, "/v3/lease/grant", json_pack("{si}", "TTL", ttl_s), err);
  if (!r) return -1;
  *lease = int64_of(json_object_get(r, "ID"));
  json_decref(r);
  return *lease ? 0 : vs_err_set(err, EIO, "etcd granted no lease");
}

int vs_fleet_lease_keepalive(struct vs_fleet *f, int64_t lease, struct vs_err *err) {
  char id[32];
  snprintf(id, sizeof(id), "%lld", (long long)lease);
  json_t *r = post(f, "/v3/lease/keepalive", json_pack("{ss}", "ID", id), err);
  if (!r) return -1;
  json_t *result = json_object_get(r, "result");
  int64_t ttl = int64_of(json_object_get(result ? result : r, "TTL"));
  json_decref(r);
  return ttl > 0 ? 0 : vs_err_set(err, ENOENT, "lease %lld expired", (long long)lease);
}

int vs_fleet_lease_revoke(struct vs_fleet *f, int64_t lease, struct vs_err *err) {
  char id[32];
  snprintf(id, sizeof(id), "%lld", (long long)lease);
  json_t *r = post(f, "/v3/lease/revoke", json_pack("{ss}", "ID", id), err);
  json_decref(r);
  return r ? 0 : -1;
}

static json_t *put_request(struct vs_fleet *f, const char *key, const char *value, int64_t lease) {
  char *k = full_key(f, key), *v = b64(value, strlen(value));
  json_t *req = json_pack("{ssss}", "key", k, "value", v);
  if (lease) {
    char id[32];
    snprintf(id, sizeof(id), "%lld", (long long)lease);
    json_object_set_new(req, "lease", json_string(id));
  }
  free(k);
  free(v);
  return req;
}

int vs_fleet_put(struct vs_fleet *f, const char *key, const char *value, int64_t lease,
                 struct vs_err *err) {
  json_t *r = post(f, "/v3/kv/put", put_request(f, key, value, lease), err);
  json_decref(r);
  return r ? 0 : -1;
}

static int range(struct vs_fleet *f, const char *key, bool prefix, struct vs_kv **out, size_t *n,
                 struct vs_err *err) {
  char *k = full_key(f, key);
  json_t *req = json_pack("{ss}", "key", k);
  free(k);
  if (prefix) {
    char *full = vs_xasprintf("%s%s", f->prefix, key);
    char *end = range_end(full);
    json_object_set_new(req, "range_end", json_string(end));
    free(end);
    free(full);
  }
  json_t *r = post(f, "/v3/kv/range", req, err);
  if (!r) return -1;
  vs_fleet_parse_range(f->prefix, r, out, n);
  json_decref(r);
  return 0;
}

void vs_fleet_parse_range(const char *prefix, const json_t *reply, struct vs_kv **out, size_t *n) {
  json_t *kvs = json_object_get(reply, "kvs");
  size_t count = json_array_size(kvs);
  *out = vs_xcalloc(count + 1, sizeof(**out));
  *n = 0;
  size_t plen = strlen(prefix);
  for (size_t i = 0; i < count; i++) {
    json_t *e = json_array_get(kvs, i);
    const char *kb = json_string_value(json_object_get(e, "key"));
    const char *vb = json_string_value(json_object_get(e, "value"));
    char *kk = kb ? vs_base64_decode(kb, NULL) : NULL;
    char *vv = vb ? vs_base64_decode(vb, NULL) : vs_xstrdup("");
    if (!kk || !vv || strncmp(kk, prefix, plen) != 0) {
      free(kk);
      free(vv);
      continue;
    }
    (*out)[*n].key = vs_xstrdup(kk + plen);
    (*out)[*n].value = vv;
    (*out)[(*n)++].mod_revision = int64_of(json_object_get(e, "mod_revision"));
    free(kk);
  }
}

void vs_kvs_free(struct vs_kv *kv, size_t n) {
  for (size_t i = 0; kv && i < n; i++) {
    free(kv[i].key);
    free(kv[i].value);
  }
  free(kv);
}

int vs_fleet_get(struct vs_fleet *f, const char *key, char **value, int64_t *mod_revision,
                 struct vs_err *err) {
  struct vs_kv *kv = NULL;
  size_t n = 0;
  if (range(f, key, false, &kv, &n, err) < 0) return -1;
  if (n == 0) {
    vs_kvs_free(kv, n);
    return vs_err_set(err, ENOENT, "%s%s: no such key", f->prefix, key);
  }
  *value = vs_steal(&kv[0].value);
  if (mod_revision) *mod_revision = kv[0].mod_revision;
  vs_kvs_free(kv, n);
  return 0;
}

static int cmp_kv(const void *a, const void *b) {
  return strcmp(((const struct vs_kv *)a)->key, ((const struct vs_kv *)b)->key);
}

int vs_fleet_list(struct vs_fleet *f, const char *prefix, struct vs_kv **out, size_t *n,
                  struct vs_err *err) {
  if (range(f, prefix, true, out, n, err) < 0) return -1;
  qsort(*out, *n, sizeof(**out), cmp_kv);
  return 0;
}

int vs_fleet_delete(struct vs_fleet *f, const char *key, struct vs_err *err) {
  char *k = full_key(f, key);
  json_t *r = post(f, "/v3/kv/deleterange", json_pack("{ss}", "key", k), err);
  free(k);
  json_decref(r);
  return r ? 0 : -1;
}

int vs_fleet_put_if_unchanged(struct vs_fleet *f, const char *guard, int64_t guard_revision,
                              const char *key, const char *value, bool *done, struct vs_err *err) {
  char *g = full_key(f, guard), rev[32];
  snprintf(rev, sizeof(rev), "%lld", (long long)guard_revision);
  json_t *txn = json_pack("{s[{ssssssss}]s[{so}]s[]}", "compare", "key", g, "result", "EQUAL",
                          "target", "MOD", "mod_revision", rev, "success", "request_put",
                          put_request(f, key, value, 0), "failure");
  free(g);
  json_t *r = post(f, "/v3/kv/txn", txn, err);
  if (!r) return -1;
  *done = json_is_true(json_object_get(r, "succeeded"));
  json_decref(r);
  return 0;
}

int vs_fleet_delete_if_unchanged(struct vs_fleet *f, const char *key, int64_t revision, bool *done,
                                 struct vs_err *err) {
  char *k = full_key(f, key), rev[32];
  snprintf(rev, sizeof(rev), "%lld", (long long)revision);
  json_t *txn =
      json_pack("{s[{ssssssss}]s[{s{ss}}]s[]}", "compare", "key", k, "result", "EQUAL", "target",
                "MOD", "mod_revision", rev, "success", "request_delete_range", "key", k, "failure");
  free(k);
  json_t *r = post(f, "/v3/kv/txn", txn, err);
  if (!r) return -1;
  *done = json_is_true(json_object_get(r, "succeeded"));
  json_decref(r);
  return 0;
}

int vs_fleet_move(struct vs_fleet *f, const char *from, const char *to, const char *value,
                  const char *guard, int64_t guard_revision, bool *done, struct vs_err *err) {
  char *fk = full_key(f, from);
  json_t *compare = json_pack("[{ssssssss}]", "key", fk, "result", "GREATER", "target", "VERSION",
                              "version", "0");
  if (guard) {
    char *g = full_key(f, guard), rev[32];
    snprintf(rev, sizeof(rev), "%lld", (long long)guard_revision);
    json_array_append_new(compare, json_pack("{ssssssss}", "key", g, "result", "EQUAL", "target",
                                             "MOD", "mod_revision", rev));
    free(g);
  }
  json_t *txn =
      json_pack("{sos[{so}{s{ss}}]s[]}", "compare", compare, "success", "request_put",
                put_request(f, to, value, 0), "request_delete_range", "key", fk, "failure");
  free(fk);
  json_t *r = post(f, "/v3/kv/txn", txn, err);
  if (!r) return -1;
  *done = json_is_true(json_object_get(r, "succeeded"));
  json_decref(r);
  return 0;
}

int vs_fleet_map_vm(struct vs_fleet *f, int64_t lease, const char *uuid, const char *host,
                    const char *name, const char *channel, struct vs_err *err) {
  json_t *v = json_pack("{ssssss}", "host", host, "name", name ? name : "", "channel",
                        channel ? channel : "libvirt");
  char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(v);
  char *key = vs_xasprintf("vms/%s", uuid);
  int rc = vs_fleet_put(f, key, text, lease, err);
  free(key);
  free(text);
  return rc;
}

int vs_fleet_locate(struct vs_fleet *f, const char *vm, char **host, char **uuid, int64_t *revision,
                    struct vs_err *err) {
  struct vs_kv *kv = NULL;
  size_t n = 0;
  if (vs_fleet_list(f, "vms/", &kv, &n, err) < 0) return -1;
  int rc = vs_err_set(err, ENOENT, "%s is not in the fleet map", vm);
  for (size_t i = 0; i < n; i++) {
    json_t *j = json_loads(kv[i].value, 0, NULL);
    const char *h = json_string_value(json_object_get(j, "host"));
    const char *nm = json_string_value(json_object_get(j, "name"));
    const char *id = kv[i].key + strlen("vms/");
    if (h && (strcmp(id, vm) == 0 || (nm && strcmp(nm, vm) == 0))) {
      *host = vs_xstrdup(h);
      *uuid = vs_xstrdup(id);
      *revision = kv[i].mod_revision;
      vs_err_clear(err);
      rc = 0;
      json_decref(j);
      break;
    }
    json_decref(j);
  }
  vs_kvs_free(kv, n);
  return rc;
}
