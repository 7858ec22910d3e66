/* analyze/fleetfind: what a fleet shows as a whole. A team's tweak on 3 of 30 web servers is
 * one group naming the 3 (one finding for all the keys those VMs share), a package newer on a
 * few VMs is a rollout with its share and no group, a lone VM with an older version is no
 * rollout, a kind of VM of two members is no group either, and the VMs with no close peers
 * are listed as unique. */
#include "fleetfind.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct vs_feature *vm(const char *kind, int i, int keys) {
  struct vs_feature *d = vs_feature_new();
  char id[64], name[32], key[96];
  snprintf(name, sizeof(name), "%s-%02d", kind, i);
  snprintf(id, sizeof(id), "/vms/%s", name);
  vs_feature_set_id(d, id, name);
  vs_feature_set_os(d, "package_format", "deb");
  vs_feature_set(d, "os:distro", "debian", NULL);
  vs_feature_set(d, "file:/etc/hostname:name", name, NULL);
  for (int k = 0; k < keys; k++) {
    snprintf(key, sizeof(key), "file:/etc/%s.conf:s%d", kind, k);
    vs_feature_setf(d, key, NULL, "%s-%d", kind, k);
  }
  vs_feature_set(d, "pkg:openssl", "3.0.11-1~deb12u2", NULL);
  vs_feature_set(d, "pkg:bash", "5.2.15-2+b2", NULL);
  return d;
}

static bool is_one_of(int i, const int *set, size_t n) {
  for (size_t k = 0; k < n; k++)
    if (set[k] == i) return true;
  return false;
}

/* 30 web servers: web-03, web-07 and web-11 got a team's sysctl tweak (two keys); web-02,
 * web-05 and web-09 a newer openssl; web-13 alone an older bash. Two databases, a build, a
 * mail and a CI server, each kind with too few members to be anyone's close peers (and five
 * of them lacking the web servers' settings: more than a team's tweak). */
static struct vs_view *fleet(void) {
  static const int tweaked[] = {3, 7, 11}, upgraded[] = {2, 5, 9};
  struct vs_view *v = vs_view_new();
  for (int i = 1; i <= 30; i++) {
    struct vs_feature *d = vm("web", i, 30);
    bool tweak = is_one_of(i, tweaked, 3);
    vs_feature_set(d, "file:/etc/sysctl.conf:vm.swappiness", tweak ? "10" : "60", NULL);
    vs_feature_set(d, "file:/etc/sysctl.conf:net.core.somaxconn", tweak ? "4096" : "128", NULL);
    if (is_one_of(i, upgraded, 3)) vs_feature_set(d, "pkg:openssl", "3.0.13-1~deb12u1", NULL);
    if (i == 13) vs_feature_set(d, "pkg:bash", "5.2.15-2+b1", NULL);
    vs_view_add(v, d);
  }
  vs_view_add(v, vm("db", 1, 60));
  vs_view_add(v, vm("db", 2, 60));
  vs_view_add(v, vm("build", 1, 90));
  vs_view_add(v, vm("mail", 1, 70));
  vs_view_add(v, vm("ci", 1, 80));
  vs_view_prepare(v, NULL);
  return v;
}

static const struct vs_rollout *rollout(const struct vs_fleet_findings *f, const char *key) {
  for (size_t i = 0; i < f->n_rollouts; i++)
    if (strcmp(f->rollouts[i].key, key) == 0) return &f->rollouts[i];
  return NULL;
}

static void test_groups(const struct vs_fleet_findings *f) {
  ok(f->vms == 35, "the findings count the fleet's 35 VMs (%u)", f->vms);
  ok(f->n_groups == 1, "the tweak on 3 of 30 web servers is one group finding (%zu)", f->n_groups);
  if (f->n_groups < 1) return;
  const struct vs_group *g = &f->groups[0];
  ok(g->n_members == 3 && strcmp(g->members[0], "web-03") == 0 &&
         strcmp(g->members[1], "web-07") == 0 && strcmp(g->members[2], "web-11") == 0,
     "naming its 3 members, sorted");
  ok(g->keys == 2, "the two keys the same VMs share are one finding (%zu keys)", g->keys);
  ok(strcmp(g->key, "file:/etc/sysctl.conf:net.core.somaxconn") == 0 &&
         strcmp(g->value, "4096") == 0 && strcmp(g->rest, "128") == 0 && g->rest_count == 27,
     "named by one of its keys, with the group's value and the rest's (%s = %s; %u have %s)",
     g->key, g->value, g->rest_count, g->rest);
  _cleanup_(vs_freep) char *msg = vs_group_describe(g, f->vms);
  is_str(msg,
         "file:/etc/sysctl.conf:net.core.somaxconn is 4096 on 3 of 35 VMs: web-03, web-07, "
         "web-11; 27 of the rest have 128 (2 keys set these VMs apart)",
         "and described in one line");
}

static void test_rollouts(const struct vs_fleet_findings *f) {
  const struct vs_rollout *r = rollout(f, "pkg:openssl");
  ok(r && r->by_version, "a package newer on 3 VMs is a rollout by version");
  ok(r && strcmp(r->value, "3.0.13-1~deb12u1") == 0 && strcmp(r->from, "3.0.11-1~deb12u2") == 0,
     "from the fleet's version to the newest");
  ok(r && r->have == 3 && r->of == 35, "with its share: 3 of the 35 VMs that have the package");
  ok(!rollout(f, "pkg:bash"), "one VM with an older version is no rollout (it missed an update)");
  ok(f->n_rollouts == 1, "and nothing else is rolling out (%zu)", f->n_rollouts);
}

static void test_unique(const struct vs_fleet_findings *f) {
  ok(f->n_unique == 5 && strcmp(f->unique[0], "build-01") == 0 &&
         strcmp(f->unique[1], "ci-01") == 0 && strcmp(f->unique[2], "db-01") == 0 &&
         strcmp(f->unique[3], "db-02") == 0 && strcmp(f->unique[4], "mail-01") == 0,
     "the VMs with fewer than 2 close peers are listed as unique, sorted (%zu)", f->n_unique);
}

static void test_json(const struct vs_fleet_findings *f) {
  json_t *j = vs_fleet_findings_json(f);
  json_t *g = json_array_get(json_object_get(j, "groups"), 0);
  json_t *r = json_array_get(json_object_get(j, "rollouts"), 0);
  ok(json_integer_value(json_object_get(j, "vms")) == 35 &&
         json_array_size(json_object_get(g, "members")) == 3 &&
         json_integer_value(json_object_get(g, "keys")) == 2,
     "JSON: the group with its members and keys");
  ok(r && json_real_value(json_object_get(r, "share")) > 0.085 &&
         json_real_value(json_object_get(r, "share")) < 0.086 &&
         strcmp(json_string_value(json_object_get(r, "by")), "version") == 0,
     "the rollout with its share (3/35) and how it was seen");
  ok(json_array_size(json_object_get(j, "unique")) == 5, "and the unique VMs");
  struct vs_err err = {0};
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *back =
      vs_fleet_findings_from_json(j, &err);
  json_t *again = back ? vs_fleet_findings_json(back) : NULL;
  ok(again && json_equal(j, again),
     "read back (a host taking over reads its predecessor's): the same findings%s%s",
     back ? "" : ": ", back ? "" : vs_err_msg(&err));
  json_decref(again);
  vs_err_clear(&err);
  /* Rows in the store are written by others: each is checked, none is trusted. */
  static const char *const bad[] = {
      "{\"vms\":3,\"groups\":[],\"rollouts\":[]}",
      "{\"vms\":3,\"groups\":[],\"rollouts\":[],\"unique\":[],\"extra\":1}",
      "{\"vms\":-1,\"groups\":[],\"rollouts\":[],\"unique\":[]}",
      "{\"vms\":3,\"groups\":{},\"rollouts\":[],\"unique\":[]}",
      "{\"vms\":3,\"groups\":[{\"key\":\"k\",\"value\":\"v\",\"keys\":1,\"members\":[1],"
      "\"rest\":{\"value\":\"w\",\"count\":2},\"message\":\"m\"}],\"rollouts\":[],\"unique\":[]}",
      "{\"vms\":3,\"groups\":[],\"rollouts\":[{\"key\":\"k\",\"value\":\"v\",\"from\":\"w\","
      "\"have\":4,\"of\":3,\"share\":1.3,\"by\":\"version\"}],\"unique\":[]}",
      "{\"vms\":3,\"groups\":[],\"rollouts\":[{\"key\":\"k\",\"value\":\"v\",\"from\":\"w\","
      "\"have\":1,\"of\":3,\"share\":0.3,\"by\":\"rumour\"}],\"unique\":[]}",
      "{\"vms\":3,\"groups\":[],\"rollouts\":[],\"unique\":[\"a\",null]}",
  };
  size_t refused = 0;
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    json_t *b = json_loads(bad[i], 0, NULL);
    struct vs_fleet_findings *got = b ? vs_fleet_findings_from_json(b, &err) : NULL;
    if (b && !got && *vs_err_msg(&err))
      refused++;
    else
      diag("not refused: %s", bad[i]);
    vs_fleet_findings_free(got);
    vs_err_clear(&err);
    json_decref(b);
  }
  ok(refused == sizeof(bad) / sizeof(*bad),
     "findings missing a member, with another, a count out of range or a wrong type are refused "
     "with a reason (%zu of %zu)",
     refused, sizeof(bad) / sizeof(*bad));
  json_decref(j);
}

/* 10 web servers and DBS databases: every web setting is absent on the databases, which is
 * their kind's value (their close group lacks the key entirely), not a team's tweak. */
static struct vs_fleet_findings *web_and_db(int dbs) {
  _cleanup_(vs_view_freep) struct vs_view *v = vs_view_new();
  for (int i = 1; i <= 10; i++)
    vs_view_add(v, vm("web", i, 5));
  for (int i = 1; i <= dbs; i++)
    vs_view_add(v, vm("db", i, 5));
  vs_view_prepare(v, NULL);
  return vs_fleet_find(v);
}

static void test_kind_lacking_keys(void) {
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *f = web_and_db(2);
  ok(f->n_groups == 0,
     "two unique VMs of another kind lacking the web servers' keys are no group (%zu%s%s)",
     f->n_groups, f->n_groups ? ": " : "", f->n_groups ? f->groups[0].key : "");
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *three = web_and_db(3);
  ok(three->n_groups == 0,
     "nor are three (a close group: lacking the keys is their kind's own value) (%zu%s%s)",
     three->n_groups, three->n_groups ? ": " : "", three->n_groups ? three->groups[0].key : "");
}

/* Two tweaks of one key (vm.swappiness 10 on two web servers, 20 on two others) and a rollout
 * from two older versions held by as many VMs each: the findings must not depend on the order
 * values come out of a hash table, which each host (each map) seeds at random. */
static char *tied_fleet_json(void) {
  _cleanup_(vs_view_freep) struct vs_view *v = vs_view_new();
  for (int i = 1; i <= 30; i++) {
    struct vs_feature *d = vm("web", i, 30);
    vs_feature_set(d, "file:/etc/sysctl.conf:vm.swappiness",
                   i == 3 || i == 7     ? "10"
                   : i == 15 || i == 19 ? "20"
                                        : "60",
                   NULL);
    vs_feature_set(d, "pkg:openssl",
                   i <= 10   ? "3.0.13-1~deb12u1"
                   : i <= 20 ? "3.0.11-1~deb12u2"
                             : "3.0.11-1~deb12u1",
                   NULL);
    vs_view_add(v, d);
  }
  vs_view_prepare(v, NULL);
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *f = vs_fleet_find(v);
  json_t *j = vs_fleet_findings_json(f);
  char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(j);
  return s;
}

static void test_order(void) {
  _cleanup_(vs_freep) char *first = tied_fleet_json();
  size_t same = 1;
  for (int k = 0; k < 20; k++) {
    _cleanup_(vs_freep) char *again = tied_fleet_json();
    if (strcmp(first, again) == 0) same++;
  }
  ok(same == 21, "the same findings, in the same order, from 21 fleets built alike (%zu)", same);
  ok(strstr(first, "\"from\":\"3.0.11-1~deb12u1\"") && strstr(first, "\"value\":\"10\"") &&
         strstr(first, "\"value\":\"20\"") &&
         strstr(first, "\"value\":\"10\"") < strstr(first, "\"value\":\"20\""),
     "a rollout from two versions held by as many VMs is from the first by name; two groups of "
     "one key are in the order of their values");
}

/* A setting whose token (analytics.h: keyed by public constants) equals the token of the
 * tweak's vm.swappiness=10, found by a search of 2^32 tries: its VM is one member once. */
#define TOKEN_TWIN_KEY "file:/etc/x.conf:k30b8d9e9"
#define TOKEN_TWIN_VALUE "va87a2a7"

static void test_token_twin(void) {
  ok(vs_token(TOKEN_TWIN_KEY, TOKEN_TWIN_VALUE) ==
         vs_token("file:/etc/sysctl.conf:vm.swappiness", "10"),
     "the crafted setting's token is the tweak's");
  _cleanup_(vs_view_freep) struct vs_view *v = vs_view_new();
  for (int i = 1; i <= 30; i++) {
    struct vs_feature *d = vm("web", i, 30);
    bool tweak = i == 3 || i == 7 || i == 11;
    vs_feature_set(d, "file:/etc/sysctl.conf:vm.swappiness", tweak ? "10" : "60", NULL);
    if (i == 3) vs_feature_set(d, TOKEN_TWIN_KEY, TOKEN_TWIN_VALUE, NULL);
    vs_view_add(v, d);
  }
  vs_view_prepare(v, NULL);
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *f = vs_fleet_find(v);
  const struct vs_group *g = f->n_groups == 1 ? &f->groups[0] : NULL;
  ok(g && g->n_members == 3 && strcmp(g->members[0], "web-03") == 0 &&
         strcmp(g->members[1], "web-07") == 0 && strcmp(g->members[2], "web-11") == 0,
     "a VM holding a setting whose token equals the group's value's is a member once (%zu "
     "groups; %s %s %s)",
     f->n_groups, g && g->n_members > 0 ? g->members[0] : "-",
     g && g->n_members > 1 ? g->members[1] : "-", g && g->n_members > 2 ? g->members[2] : "-");
}

int main(void) {
  plan_no_plan();
  _cleanup_(vs_view_freep) struct vs_view *v = fleet();
  _cleanup_(vs_fleet_findings_freep) struct vs_fleet_findings *f = vs_fleet_find(v);
  test_groups(f);
  test_rollouts(f);
  test_unique(f);
  test_json(f);
  test_kind_lacking_keys();
  test_order();
  test_token_twin();
  return done_testing();
}
