/* analyze/fleetctx and population summaries: a host ranking its own VMs from the fleet's
 * context (the fleet's and its groups' population summaries, the group majorities, its VMs'
 * parts) gets every finding, score, kind and role exactly as the whole view does; and what
 * another host wrote is checked before it is trusted. */
#include "fleetview.h"
#include "population.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1796200000
#define VMS 90
#define HOSTS 3

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

static const char *const roles[] = {"web", "db", "app"};

/* VM I: its role's settings with the variety a fleet has (deviants of its own, a team's value
 * shared by a few, another role's value, keys only some have, defaults written out or
 * declared, packages in two versions, a hostname of its own), and a few VMs of a kind of their
 * own. TAKEN_AT and the CHANGED key make a previous snapshot. */
static struct vs_feature *make_vm(size_t i, int64_t taken_at, bool previous) {
  struct vs_feature *d = vs_feature_new();
  const char *role = roles[i % 3];
  char id[64], name[32], key[96], value[64];
  snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012zu", i);
  snprintf(name, sizeof(name), "%s-%02zu", role, i);
  vs_feature_set_id(d, id, name);
  vs_feature_set_taken_at(d, taken_at);
  vs_feature_set_os(d, "package_format", "deb");
  vs_feature_set(d, "os:distro", "debian", NULL);
  vs_feature_set(d, "file:/etc/hostname:name", name, NULL);
  for (int k = 0; k < 25; k++) {
    snprintf(key, sizeof(key), "file:/etc/%s.conf:setting%d", role, k);
    uint32_t r = rnd(100);
    if (r < 4)
      snprintf(value, sizeof(value), "own-%zu-%d", i, k); /* held alone */
    else if (r < 7)
      snprintf(value, sizeof(value), "team-%u", rnd(2)); /* shared by a few */
    else
      snprintf(value, sizeof(value), "%s-%d", role, k);
    vs_feature_set(d, key, value, NULL);
  }
  for (int k = 0; k < 8; k++) { /* shared by every role; web differs on two */
    snprintf(key, sizeof(key), "file:/etc/common.conf:c%d", k);
    bool webs = k < 2 && strcmp(role, "web") == 0;
    bool other = k < 2 && !webs && rnd(30) == 0; /* takes web's value */
    vs_feature_setf(d, key, NULL, "%s", webs || other ? "web-way" : "usual");
  }
  if (rnd(3)) vs_feature_set(d, "file:/etc/optional.conf:x", rnd(2) ? "1" : "2", NULL);
  /* sshd's documented default, declared by most, written out by some */
  if (rnd(4)) vs_feature_set_default(d, "file:/etc/ssh/sshd_config:PermitRootLogin", "no");
  if (rnd(5) == 0) vs_feature_set(d, "file:/etc/ssh/sshd_config:PermitRootLogin", "no", NULL);
  if (rnd(40) == 0) vs_feature_set(d, "file:/etc/ssh/sshd_config:PermitRootLogin", "yes", NULL);
  vs_feature_set(d, "pkg:openssl", rnd(5) ? "3.0.15-1~deb12u1" : "3.0.14-1~deb12u2", NULL);
  /* A rollout between snapshots: every fifth VM moved to one value, and three VMs, one of each
   * role, to another (each alone among its peers). */
  const char *nofile = "1024";
  if (!previous && i % 5 == 0) nofile = "65536";
  if (!previous && i % 31 == 1) nofile = "4096";
  vs_feature_set(d, "file:/etc/limits.conf:nofile", nofile, NULL);
  if (i == 1 || i == 5 || i == 9) /* a team's tweak, on one VM of each role */
    vs_feature_set(d, "file:/etc/common.conf:c5", "tweaked", NULL);
  if (i == 7) vs_feature_set(d, "vm:cpu:count", "4", NULL); /* a source no other VM has */
  if (i % 29 == 0)                                          /* a kind of machine of its own */
    for (int k = 0; k < 20; k++) {
      snprintf(key, sizeof(key), "file:/etc/odd%zu.conf:k%d", i, k);
      vs_feature_set(d, key, "x", NULL);
    }
  return d;
}

static struct vs_feature *docs[VMS], *prevs[VMS];

static struct vs_feature *copy(const struct vs_feature *doc) {
  json_t *j = vs_feature_to_json(doc);
  struct vs_feature *c = vs_feature_from_json(j, "copy", NULL);
  json_decref(j);
  return c;
}

/* J written out and read back, as the store holds it. */
static json_t *through_text(const json_t *j) {
  char *text = json_dumps(j, JSON_COMPACT);
  json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
  free(text);
  return back;
}

static struct vs_view *whole(enum vs_peer_group peers) {
  struct vs_view *v = vs_view_new();
  for (size_t i = 0; i < VMS; i++) {
    vs_view_add(v, copy(docs[i]));
    vs_view_add(v, copy(prevs[i]));
  }
  struct vs_view_opts o = {.peers = peers};
  vs_view_prepare(v, &o);
  return v;
}

struct context {
  json_t *fleet, *groups, *vms;
};

static void context_free(struct context *c) {
  json_decref(c->fleet);
  json_decref(c->groups);
  json_decref(c->vms);
}

/* The context the whole view W writes, as text makes it. */
static struct context context_of(const struct vs_view *w) {
  struct context c = {.groups = json_object(), .vms = json_object()};
  json_t *fleet = vs_view_context_fleet(w);
  c.fleet = through_text(fleet);
  json_decref(fleet);
  for (size_t g = 0; g < vs_view_group_count(w); g++) {
    char number[32];
    snprintf(number, sizeof(number), "%zu", g);
    json_t *part = vs_view_context_group(w, g);
    json_object_set_new(c.groups, number, through_text(part));
    json_decref(part);
  }
  for (size_t i = 0; i < vs_view_count(w); i++) {
    json_t *part = vs_view_context_vm(w, i, NULL, NULL);
    json_object_set_new(c.vms, vs_feature_id(vs_view_doc(w, i)), through_text(part));
    json_decref(part);
  }
  return c;
}

/* Host H's own VMs (every HOSTS-th), with their previous snapshots. */
static struct vs_view *host_vms(size_t h) {
  struct vs_view *v = vs_view_new();
  for (size_t i = h; i < VMS; i += HOSTS) {
    vs_view_add(v, copy(docs[i]));
    vs_view_add(v, copy(prevs[i]));
  }
  return v;
}

/* The parts of the groups of host H's VMs only, as a host reads them. */
static json_t *groups_of(const struct context *c, const struct vs_view *w, size_t h) {
  json_t *out = json_object();
  for (size_t i = h; i < VMS; i += HOSTS) {
    long k = vs_view_find_id(w, vs_feature_id(docs[i]));
    char number[32];
    snprintf(number, sizeof(number), "%zu", vs_view_group(w, (size_t)k));
    json_object_set(out, number, json_object_get(c->groups, number));
  }
  return out;
}

static bool same_role(const struct vs_view_role *a, const struct vs_view_role *b) {
  return a->number == b->number && strcmp(a->medoid_id, b->medoid_id) == 0 && a->size == b->size &&
         a->anomaly == b->anomaly && a->similarity == b->similarity && a->label_p == b->label_p &&
         (a->label ? b->label && !strcmp(a->label, b->label) : !b->label);
}

static void test_equal(enum vs_peer_group peers) {
  struct vs_view *w = whole(peers);
  struct context c = context_of(w);
  size_t ranked = 0, differ = 0, roles_differ = 0, alarms = 0, kinds[6] = {0}, findings = 0;
  size_t other_roles = 0;
  for (size_t h = 0; h < HOSTS; h++) {
    struct vs_view *mine = host_vms(h);
    json_t *groups = groups_of(&c, w, h);
    struct vs_err err = {0};
    struct vs_view_opts o = {.peers = peers};
    int rc = vs_view_prepare_context(mine, c.fleet, groups, c.vms, &o, &err);
    ok(rc == 0, "%s: host %zu's view is prepared from the context%s%s", vs_peer_group_name(peers),
       h, rc ? ": " : "", rc ? vs_err_msg(&err) : "");
    vs_err_clear(&err);
    for (size_t i = 0; rc == 0 && i < vs_view_count(mine); i++) {
      long k = vs_view_find_id(w, vs_feature_id(vs_view_doc(mine, i)));
      struct vs_drift *a = vs_view_rank(w, (size_t)k, NULL, NULL);
      struct vs_drift *b = vs_view_rank(mine, i, NULL, NULL);
      json_t *ja = vs_drift_to_json(a, 0), *jb = vs_drift_to_json(b, 0);
      if (!json_equal(ja, jb)) {
        if (!differ++) {
          char *sa = json_dumps(ja, JSON_COMPACT), *sb = json_dumps(jb, JSON_COMPACT);
          diag("whole:   %.600s", sa);
          diag("context: %.600s", sb);
          free(sa);
          free(sb);
        }
      }
      struct vs_view_role ra, rb;
      vs_view_role(w, (size_t)k, &ra);
      vs_view_role(mine, i, &rb);
      if (!same_role(&ra, &rb) || vs_view_unique(w, (size_t)k) != vs_view_unique(mine, i) ||
          vs_view_by_role(w, (size_t)k) != vs_view_by_role(mine, i) ||
          !vs_view_same_role(mine, i, ra.medoid_id))
        roles_differ++;
      alarms += a->alarms;
      for (size_t f = 0; f < a->n_findings; f++) {
        kinds[a->findings[f].kind]++;
        other_roles += a->findings[f].role_of_value != NULL;
      }
      findings += a->n_findings;
      ranked++;
      json_decref(ja);
      json_decref(jb);
      vs_drift_free(a);
      vs_drift_free(b);
    }
    ok(rc != 0 || vs_view_fleet_vms(mine) == VMS, "and it knows the fleet has %d VMs", VMS);
    json_decref(groups);
    vs_view_free(mine);
  }
  diag("%s: %zu VMs ranked, %zu findings (%zu alone, %zu shared, %zu group, %zu rollout, %zu "
       "source; %zu another role's value), %zu alarms, %zu groups",
       vs_peer_group_name(peers), ranked, findings, kinds[VS_FINDING_ALONE],
       kinds[VS_FINDING_SHARED], kinds[VS_FINDING_GROUP], kinds[VS_FINDING_ROLLOUT],
       kinds[VS_FINDING_SOURCE], other_roles, alarms, vs_view_group_count(w));
  ok(ranked == VMS && differ == 0,
     "%s: every VM's ranking from the context equals the whole view's (%zu of %zu differ)",
     vs_peer_group_name(peers), differ, ranked);
  ok(roles_differ == 0,
     "%s: and so do its role, medoid, anomaly, uniqueness and peers (%zu differ)",
     vs_peer_group_name(peers), roles_differ);
  bool by_role = peers == VS_PEERS_ROLE;
  ok(alarms > 0 && kinds[VS_FINDING_ALONE] && kinds[VS_FINDING_SHARED] &&
         kinds[VS_FINDING_SOURCE] &&
         (!by_role || (kinds[VS_FINDING_ROLLOUT] && kinds[VS_FINDING_GROUP] && other_roles)),
     "%s: the fleet has alarms and findings of each kind the comparison must cover",
     vs_peer_group_name(peers));
  context_free(&c);
  vs_view_free(w);
}

/* The summary names what two VMs share and counts the rest: it is smaller than the whole
 * population, and the same population read back. */
static void test_summary(void) {
  struct vs_pop *pop = vs_pop_new();
  for (size_t i = 0; i < VMS; i++)
    vs_pop_add(pop, docs[i]);
  vs_pop_prepare(pop);
  json_t *s = vs_pop_summary(pop);
  long host = vs_pop_key_index(pop, "file:/etc/hostname:name");
  const json_t *jk = NULL;
  size_t i;
  json_t *k;
  json_array_foreach(json_object_get(s, "keys"), i, k) {
    if (strcmp(json_string_value(json_array_get(k, 0)), "file:/etc/hostname:name") == 0) jk = k;
  }
  ok(host >= 0 && jk && json_integer_value(json_array_get(jk, 2)) == VMS - 2 &&
         json_array_size(json_array_get(jk, 4)) == 2,
     "hostnames: the two first named (the statistics' top two), %d counted as singles", VMS - 2);
  struct vs_err err = {0};
  const char *member[] = {vs_feature_id(docs[0])};
  struct vs_pop *back = vs_pop_from_summary(s, member, 1, "test", &err);
  ok(back && vs_pop_is_summary(back) && vs_pop_docs(back) == VMS &&
         vs_pop_keys(back) == vs_pop_keys(pop) && vs_pop_pairs(back) == vs_pop_pairs(pop) &&
         vs_pop_member(back, member[0]) == 1,
     "read back: as many documents, keys and pairs, and its member");
  size_t same = 0, asked = 0;
  for (size_t key = 0; back && key < vs_pop_keys(pop); key++) {
    const char *name = vs_pop_key_name(pop, key);
    long b = vs_pop_key_index(back, name);
    struct vs_pop_stats x, y;
    vs_pop_key_stats(pop, key, &x);
    vs_pop_key_stats(back, (size_t)b, &y);
    for (size_t d = 0; d < VMS; d++) {
      const char *t = vs_pop_fold(pop, key, vs_feature_get(docs[d], name));
      asked++;
      same += vs_pop_count(pop, key, t) == vs_pop_count(back, (size_t)b, t) &&
              !strcmp(t, vs_pop_fold(back, (size_t)b, vs_feature_get(docs[d], name))) &&
              vs_pop_at_most(pop, key, d % 5) == vs_pop_at_most(back, (size_t)b, d % 5) &&
              vs_pop_present(pop, key) == vs_pop_present(back, (size_t)b) &&
              x.distinct == y.distinct && x.top_count[0] == y.top_count[0] &&
              x.top_count[1] == y.top_count[1] && !strcmp(x.top_value[0], y.top_value[0]) &&
              (x.top_value[1] ? y.top_value[1] && !strcmp(x.top_value[1], y.top_value[1])
                              : !y.top_value[1]) &&
              (x.default_value ? y.default_value && !strcmp(x.default_value, y.default_value)
                               : !y.default_value);
    }
  }
  ok(asked && same == asked,
     "every key's statistics, and each VM's value's count and tail, equal the population's "
     "(%zu of %zu)",
     same, asked);
  char *text = json_dumps(s, JSON_COMPACT), *dump = vs_pop_dump(pop);
  diag("summary %zu bytes, the population's dump %zu", strlen(text), strlen(dump));
  ok(strlen(text) < strlen(dump), "the summary is smaller than the population it stands for");
  free(text);
  free(dump);
  bool refused = vs_pop_remove(back, docs[0], &err) < 0 && err.code == EINVAL;
  ok(refused, "a summary cannot change: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_pop_free(back);
  vs_pop_free(pop);
  json_decref(s);
}

/* A summary that was not written by vmscope (or was changed) is refused, saying what. */
static void test_bad_summaries(void) {
  static const char *const bad[] = {
      "[]",
      "{\"docs\":-1,\"keys\":[]}",
      "{\"docs\":3,\"keys\":[[\"k\",2,0,null,[[\"a\",1]]]]}",           /* 1 of 2 present */
      "{\"docs\":3,\"keys\":[[\"k\",4,0,null,[[\"a\",4]]]]}",           /* more than docs */
      "{\"docs\":3,\"keys\":[[\"k\",2,0,null,[[\"a\",1],[\"a\",1]]]]}", /* a value twice */
      "{\"docs\":3,\"keys\":[[\"k\",1,0,null,[[\"a\",1]]],[\"k\",1,0,null,[[\"a\",1]]]]}",
      "{\"docs\":3,\"keys\":[[\"k\",1,0,\"d\",[[\"a\",1]]]]}", /* default not counted */
      "{\"docs\":3,\"keys\":[[\"k\",1,2,null,[]]]}",           /* singles over present */
      "{\"docs\":3,\"keys\":[[\"k\",1,0,null,[[\"a\",\"1\"]]]]}",
      "{\"docs\":3,\"keys\":[[\"k\",1,0,null]]}",
  };
  size_t refused = 0;
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    json_t *j = json_loads(bad[i], 0, NULL);
    struct vs_err err = {0};
    struct vs_pop *p = vs_pop_from_summary(j, NULL, 0, "store row", &err);
    if (!p && err.code == EINVAL && strstr(vs_err_msg(&err), "store row"))
      refused++;
    else
      diag("accepted: %s", bad[i]);
    vs_pop_free(p);
    vs_err_clear(&err);
    json_decref(j);
  }
  ok(refused == sizeof(bad) / sizeof(*bad), "%zu malformed summaries refused, each named", refused);
  json_t *j = json_loads("{\"docs\":1,\"keys\":[]}", 0, NULL);
  const char *two[] = {"a", "b"};
  struct vs_err err = {0};
  bool no = !vs_pop_from_summary(j, two, 2, "store row", &err) && err.code == EINVAL;
  ok(no, "more members than documents: refused (%s)", vs_err_msg(&err));
  vs_err_clear(&err);
  json_decref(j);
}

/* A host's VM that changed since the context was made, or is not in it, is not ranked from it
 * (ESTALE: read the fleet instead); a part that is not well formed is refused (EINVAL). */
static void test_refusals(void) {
  struct vs_view *w = whole(VS_PEERS_ROLE);
  struct context c = context_of(w);
  struct vs_err err = {0};
  bool rc;

  struct vs_view *mine = host_vms(0);
  json_t *groups = groups_of(&c, w, 0);
  struct vs_feature *changed = copy(docs[0]);
  vs_feature_set_taken_at(changed, T0 + 7200);
  vs_feature_set(changed, "file:/etc/web.conf:setting3", "edited", NULL);
  vs_view_add(mine, changed);
  rc = vs_view_prepare_context(mine, c.fleet, groups, c.vms, NULL, &err) < 0 &&
       err.code == ESTALE && strstr(vs_err_msg(&err), "changed since");
  ok(rc, "a VM changed since the context: ESTALE (%s)", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_view_free(mine);

  mine = host_vms(0);
  struct vs_feature *same = copy(docs[0]);
  vs_feature_set_taken_at(same, T0 + 7200);
  vs_view_add(mine, same);
  ok(vs_view_prepare_context(mine, c.fleet, groups, c.vms, NULL, &err) == 0,
     "a newer snapshot with the same settings is ranked from it (the digest is of the counts)");
  vs_err_clear(&err);
  vs_view_free(mine);

  mine = host_vms(0);
  struct vs_feature *stranger = copy(docs[0]);
  vs_feature_set_id(stranger, "11111111-2222-4333-8444-555555555555", "newcomer");
  vs_view_add(mine, stranger);
  rc = vs_view_prepare_context(mine, c.fleet, groups, c.vms, NULL, &err) < 0 &&
       err.code == ESTALE && strstr(vs_err_msg(&err), "newcomer");
  ok(rc, "a VM the context does not have: ESTALE, naming it (%s)", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_view_free(mine);

  /* A VM that migrated: the context counts the newer document another host published. */
  mine = host_vms(0);
  struct vs_feature *left = copy(docs[0]);
  vs_feature_set_taken_at(left, T0 - 60); /* this host's last document of it is older */
  vs_view_add_target(mine, left);
  size_t before = vs_view_count(mine);
  rc = vs_view_prepare_context(mine, c.fleet, groups, c.vms, NULL, &err) == 0 &&
       vs_view_count(mine) == before - 1 && vs_view_find_id(mine, vs_feature_id(docs[0])) < 0;
  ok(rc,
     "a VM whose newer document another host published is left to that host (%zu of %zu VMs "
     "ranked here)%s%s",
     vs_view_count(mine), before, err.msg ? ": " : "", err.msg ? vs_err_msg(&err) : "");
  vs_err_clear(&err);
  vs_view_free(mine);

  /* Other role options than the elected host's: its roles and uniqueness are not this host's. */
  mine = host_vms(0);
  struct vs_view_opts other = {.min_role_peers = 3};
  rc = vs_view_prepare_context(mine, c.fleet, groups, c.vms, &other, &err) < 0 &&
       err.code == ESTALE && strstr(vs_err_msg(&err), "MinRolePeers");
  ok(rc, "a context made with other role options (MinRolePeers 2 against 3): ESTALE (%s)",
     vs_err_msg(&err));
  vs_err_clear(&err);
  vs_view_free(mine);

  /* Parts another host (or something else) wrote wrong. */
  const char *id = vs_feature_id(docs[0]);
  json_t *vms = json_deep_copy(c.vms);
  json_object_set_new(json_object_get(json_object_get(vms, id), "role"), "size",
                      json_string("many"));
  mine = host_vms(0);
  rc = vs_view_prepare_context(mine, c.fleet, groups, vms, NULL, &err) < 0 && err.code == EINVAL;
  ok(rc, "a VM's part with a role size that is no count: refused (%s)", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_view_free(mine);
  json_decref(vms);

  json_t *fleet = json_deep_copy(c.fleet);
  json_object_set_new(json_object_get(fleet, "majorities"), "file:/etc/common.conf:c0",
                      json_pack("[[s,i,s,i]]", "web-way", 0, "web-00", 1));
  mine = host_vms(0);
  rc = vs_view_prepare_context(mine, fleet, groups, c.vms, NULL, &err) < 0 && err.code == EINVAL;
  ok(rc, "a majority with a second group but no name: refused (%s)", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_view_free(mine);
  json_object_set_new(fleet, "vms", json_integer(VMS + 1));
  json_object_set_new(fleet, "majorities", json_object());
  mine = host_vms(0);
  rc = vs_view_prepare_context(mine, fleet, groups, c.vms, NULL, &err) < 0 && err.code == EINVAL &&
       strstr(vs_err_msg(&err), "counts");
  ok(rc, "a fleet part whose VM count is not its population's: refused (%s)", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_view_free(mine);
  json_decref(fleet);

  json_t *no_groups = json_object();
  mine = host_vms(0);
  rc = vs_view_prepare_context(mine, c.fleet, no_groups, c.vms, NULL, &err) < 0 &&
       err.code == EINVAL;
  ok(rc, "a group part missing: refused (%s)", vs_err_msg(&err));
  vs_err_clear(&err);
  ok(vs_view_prepare_context(mine, c.fleet, groups, c.vms, NULL, &err) == 0,
     "and the view, left as it was, is prepared from the right parts after");
  vs_view_free(mine);
  json_decref(no_groups);

  json_decref(groups);
  context_free(&c);
  vs_view_free(w);
}

int main(void) {
  plan_no_plan();
  for (size_t i = 0; i < VMS; i++) {
    uint64_t saved = rng;
    prevs[i] = make_vm(i, T0 - 3600, true);
    rng = saved; /* the same draws: the previous snapshot differs in the rollout only */
    docs[i] = make_vm(i, T0, false);
  }
  test_equal(VS_PEERS_ROLE);
  test_equal(VS_PEERS_FLEET);
  test_summary();
  test_bad_summaries();
  test_refusals();
  for (size_t i = 0; i < VMS; i++) {
    vs_feature_free(docs[i]);
    vs_feature_free(prevs[i]);
  }
  return done_testing();
}
