/* qmp_cmd SOCKET COMMAND [ARGUMENTS-JSON]: one QMP command, its "return" printed as JSON
 * (exit 1 with QEMU's error on stderr). A test helper. */
#include "qmp.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: qmp_cmd SOCKET COMMAND [ARGUMENTS-JSON]\n");
    return 2;
  }
  struct vs_err err = {0};
  struct vs_qmp *q = vs_qmp_open(argv[1], 10000, &err);
  json_t *args = argc > 3 ? json_loads(argv[3], 0, NULL) : NULL, *ret = NULL;
  if (!q || vs_qmp_execute(q, argv[2], args, &ret, &err) < 0) {
    fprintf(stderr, "qmp_cmd: %s\n", vs_err_msg(&err));
    return 1;
  }
  char *s = json_dumps(ret, JSON_ENCODE_ANY | JSON_COMPACT);
  puts(s ? s : "null");
  free(s);
  json_decref(ret);
  json_decref(args);
  vs_qmp_close(q);
  return 0;
}
