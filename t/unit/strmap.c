#include "strmap.h"
#include "tap.h"
#include "util.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int freed;
static void count_free(void *p) {
  freed++;
  free(p);
}

int main(void) {
  plan_no_plan();
  struct vs_strmap *m = vs_strmap_new(count_free);
  ok(vs_strmap_put(m, "a", vs_xstrdup("1")), "a new key reports that it was new");
  ok(!vs_strmap_put(m, "a", vs_xstrdup("2")), "putting an existing key reports a replacement");
  ok(freed == 1, "the replaced value is freed");
  is_str(vs_strmap_get(m, "a"), "2", "the later value wins");
  ok(vs_strmap_get(m, "b") == NULL, "a missing key yields NULL");
  int freed_before = freed;
  char *taken = vs_strmap_take(m, "a");
  is_str(taken, "2", "a key taken gives its value");
  ok(freed == freed_before && !vs_strmap_has(m, "a"),
     "and leaves the map without it, the value not freed (the taker's now)");
  ok(vs_strmap_take(m, "a") == NULL, "a key taken twice gives NULL the second time");
  vs_strmap_put(m, "a", taken);

  char key[32];
  for (int i = 0; i < 100000; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    vs_strmap_put(m, key, vs_xstrdup(key));
  }
  ok(vs_strmap_count(m) == 100001, "100,000 more keys are all counted");
  int bad = 0;
  for (int i = 0; i < 100000; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    const char *v = vs_strmap_get(m, key);
    bad += !v || strcmp(v, key) != 0;
  }
  ok(bad == 0, "every key finds its own value after the table grew");
  for (int i = 0; i < 100000; i += 2) {
    snprintf(key, sizeof(key), "k%d", i);
    vs_strmap_remove(m, key);
  }
  ok(vs_strmap_count(m) == 50001, "removing half leaves the other half");
  ok(!vs_strmap_has(m, "k0") && vs_strmap_has(m, "k1"), "removed keys are gone, others stay");
  for (int i = 0; i < 100000; i += 2) {
    snprintf(key, sizeof(key), "k%d", i);
    vs_strmap_put(m, key, vs_xstrdup("again"));
  }
  is_str(vs_strmap_get(m, "k4"), "again", "a removed key can be put again (tombstones reused)");

  /* Room made before and while it is filled: what it holds stays found. */
  struct vs_strmap *r = vs_strmap_new(NULL);
  vs_strmap_put(r, "first", (void *)1);
  vs_strmap_reserve(r, 5000);
  int lost = vs_strmap_get(r, "first") != (void *)1;
  for (int i = 0; i < 5000; i++) {
    snprintf(key, sizeof(key), "r%d", i);
    vs_strmap_put(r, key, (void *)(intptr_t)(i + 2));
    if (i == 2500) vs_strmap_reserve(r, 3); /* less than it holds: nothing to do */
  }
  for (int i = 0; i < 5000; i++) {
    snprintf(key, sizeof(key), "r%d", i);
    lost += vs_strmap_get(r, key) != (void *)(intptr_t)(i + 2);
  }
  ok(lost == 0 && vs_strmap_count(r) == 5001 && vs_strmap_get(r, "first") == (void *)1,
     "a map with room made for 5,000 keys, and then less, finds each of them");
  vs_strmap_free(r);

  /* Keys in their values: a value that holds its key, put, replaced, taken and removed, leaves
   * nothing behind and nothing freed twice (valgrind and ASan see either). */
  struct vs_strmap *kv = vs_strmap_new_keys_in_values(count_free, 0);
  freed = 0;
  int found = 0;
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 3000; i++) {
      char *value = vs_xasprintf("kv%d", i);
      if (!vs_strmap_put(kv, value, value)) found++; /* the key is the value itself */
    }
  char *again = vs_strmap_get(kv, "kv7");
  ok(found == 6000 && vs_strmap_count(kv) == 3000 && freed == 6000 && again &&
         strcmp(again, "kv7") == 0,
     "a replaced value goes with its key, and the key its new value holds finds it");
  char *held = vs_strmap_take(kv, "kv7");
  ok(held == again && !vs_strmap_has(kv, "kv7"), "a taken value keeps its key: the taker's");
  free(held);
  ok(vs_strmap_remove(kv, "kv8") && !vs_strmap_has(kv, "kv8") && freed == 6001,
     "a removed one is freed with its key");
  size_t pos = 0, seen = 0;
  const char *k;
  void *v;
  while (vs_strmap_next(kv, &pos, &k, &v))
    seen += k == v;
  ok(seen == 2998, "each key is the one in its value, not a copy");
  vs_strmap_free(kv);

  /* Keys further into their values (a document's setting: its key after its other fields). */
  struct keyed {
    uintptr_t n;
    char key[8];
  };
  struct vs_strmap *offset = vs_strmap_new_keys_in_values(free, offsetof(struct keyed, key));
  for (uintptr_t i = 0; i < 100; i++) {
    struct keyed *e = vs_xmalloc(sizeof(*e));
    e->n = i;
    snprintf(e->key, sizeof(e->key), "o%lu", (unsigned long)i);
    vs_strmap_put(offset, e->key, e);
  }
  vs_strmap_remove(offset, "o7");
  const struct keyed *o42 = vs_strmap_get(offset, "o42");
  size_t at_offset = 0, walked_offset = 0;
  const char *okey;
  void *ovalue;
  for (size_t at = 0; vs_strmap_next(offset, &at, &okey, &ovalue); walked_offset++)
    at_offset += okey == ((struct keyed *)ovalue)->key;
  ok(o42 && o42->n == 42 && !vs_strmap_has(offset, "o7") && walked_offset == 99 && at_offset == 99,
     "keys further into their values are found, and walked as the values hold them");
  vs_strmap_free(offset);

  struct vs_strmap *s = vs_strmap_new(NULL);
  vs_strmap_put(s, "pkg:zlib", NULL);
  vs_strmap_put(s, "os:distro", NULL);
  vs_strmap_put(s, "file:/etc/hosts:1/ipaddr", NULL);
  size_t n;
  const char **keys = vs_strmap_sorted_keys(s, &n);
  ok(n == 3 && strcmp(keys[0], "file:/etc/hosts:1/ipaddr") == 0 &&
         strcmp(keys[2], "pkg:zlib") == 0 && keys[3] == NULL,
     "sorted keys come in strcmp order, NULL-terminated");
  free(keys);
  vs_strmap_free(s);
  /* Churn: keys put and removed a hundred thousand times over, ten live at most, and a map
   * reserved after removals: the removed entries and index slots are reclaimed, and what is
   * walked is what is live. */
  struct vs_strmap *churn = vs_strmap_new(NULL);
  char name[32];
  size_t wrong = 0;
  for (uintptr_t i = 0; i < 100000; i++) {
    snprintf(name, sizeof(name), "c%lu", (unsigned long)i);
    vs_strmap_put(churn, name, (void *)(i + 1));
    if (i >= 10) {
      snprintf(name, sizeof(name), "c%lu", (unsigned long)(i - 10));
      wrong += !vs_strmap_remove(churn, name);
    }
  }
  vs_strmap_reserve(churn, 5000);
  size_t walked = 0;
  const char *live_key;
  void *live_value;
  for (size_t at = 0; vs_strmap_next(churn, &at, &live_key, &live_value);) {
    unsigned long i = strtoul(live_key + 1, NULL, 10);
    wrong +=
        i < 99990 || (uintptr_t)live_value != i + 1 || vs_strmap_get(churn, live_key) != live_value;
    walked++;
  }
  ok(wrong == 0 && walked == 10 && vs_strmap_count(churn) == 10,
     "after 100,000 keys put and removed, the ten live ones are walked, each once (%zu wrong)",
     wrong);
  vs_strmap_free(churn);
  freed = 0;
  size_t live = vs_strmap_count(m);
  vs_strmap_free(m);
  ok((size_t)freed == live, "freeing the map frees every live value once");
  return done_testing();
}
