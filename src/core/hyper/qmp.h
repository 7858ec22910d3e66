/* qmp.h: a QEMU Machine Protocol client on a unix socket (QEMU's -qmp unix:PATH,server). */
#ifndef VS_QMP_H
#define VS_QMP_H

#include "util.h"

#include <jansson.h>

struct vs_qmp;
/* Connects, reads the greeting and negotiates capabilities; every wait ends after TIMEOUT_MS. */
struct vs_qmp *vs_qmp_open(const char *path, int timeout_ms, struct vs_err *err);
void vs_qmp_close(struct vs_qmp *q);
void vs_qmp_closep(struct vs_qmp **q);
/* Runs COMMAND with ARGUMENTS (may be NULL; not stolen): *RETURN gets its "return" (a new
 * reference; may be NULL when the caller does not want it). Events in between are skipped.
 * QEMU's error class and description become ERR's message. */
int vs_qmp_execute(struct vs_qmp *q, const char *command, json_t *arguments, json_t **ret,
                   struct vs_err *err);

#endif
