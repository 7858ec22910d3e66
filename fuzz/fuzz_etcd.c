/* fuzz_etcd: replies of etcd's JSON gateway as the fleet map reads them: a range reply's keys
 * and values (base64), revisions (64-bit integers as strings), under a prefix. */
#include "fleet.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  json_error_t je;
  json_t *reply = json_loadb((const char *)data, size, 0, &je);
  if (!json_is_object(reply)) {
    json_decref(reply);
    return 0;
  }
  static const char *const prefixes[] = {"", "/vmscope/", "/vmscope/vms/"};
  for (size_t i = 0; i < sizeof(prefixes) / sizeof(*prefixes); i++) {
    struct vs_kv *kv = NULL;
    size_t n = 0;
    vs_fleet_parse_range(prefixes[i], reply, &kv, &n);
    for (size_t k = 0; k < n; k++)
      if (!kv[k].key || !kv[k].value || strlen(kv[k].key) > size) abort();
    vs_kvs_free(kv, n);
  }
  json_decref(reply);
  return 0;
}
