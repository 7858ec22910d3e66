#include "guestflush.h"

#include "channel.h"

json_t *vs_guestflush_run(struct vs_channel *c, const char *command, int deadline_ms) {
  struct vs_err err = {0};
  struct vs_exec_result x = {0};
  const char *argv[] = {"-c", command, NULL};
  enum vs_channel_status s = vs_channel_exec(c, "/bin/sh", argv, deadline_ms, &x, &err);
  json_t *r = json_pack("{ssss}", "command", command, "status", vs_channel_status_name(s));
  if (s == VS_CHANNEL_OK) {
    json_object_set_new(r, "exit_code", json_integer(x.exit_code));
    json_object_set_new(r, "output", vs_json_text(x.out, x.out_len));
    if (x.exit_code != 0) json_object_set_new(r, "error", vs_json_text(x.err, x.err_len));
  } else {
    json_object_set_new(r, "error", json_string(vs_err_msg(&err)));
  }
  vs_exec_result_clear(&x);
  vs_err_clear(&err);
  return r;
}
