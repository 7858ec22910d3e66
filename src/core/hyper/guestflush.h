/* guestflush.h: after a disk's blocks changed under a running guest (a patch set put under
 * it), the guest may still serve the replaced files from its page cache: one shell command run
 * in the guest by its agent (drop caches, restart services) makes it read them again. */
#ifndef VS_GUESTFLUSH_H
#define VS_GUESTFLUSH_H

#include <jansson.h>

struct vs_channel;

/* Runs COMMAND in the guest through channel C ("/bin/sh -c COMMAND" by guest-exec, so C must
 * allow guest-exec), waiting up to DEADLINE_MS. Never fails: the result says what happened,
 * {"command", "status" (a channel status name), "exit_code", "output", "error"}. */
json_t *vs_guestflush_run(struct vs_channel *c, const char *command, int deadline_ms);

#endif
