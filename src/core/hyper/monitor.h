/* monitor.h: a running VM's QEMU monitor, reached either over QEMU's QMP socket or through
 * libvirt's monitor pass-through (virDomainQemuMonitorCommand, which taints the domain). Both
 * take the same commands and give the same replies, so callers do not care which it is. */
#ifndef VS_MONITOR_H
#define VS_MONITOR_H

#include "util.h"

#include <jansson.h>

struct vs_monitor;
struct vs_virt;

/* Connects to the QMP socket PATH; every wait ends after TIMEOUT_MS. */
struct vs_monitor *vs_monitor_open_qmp(const char *path, int timeout_ms, struct vs_err *err);
/* The monitor of libvirt DOMAIN (name or UUID) on V, which must outlive the monitor and be a
 * read-write connection. Nothing is sent until the first command. */
struct vs_monitor *vs_monitor_open_libvirt(struct vs_virt *v, const char *domain);
void vs_monitor_close(struct vs_monitor *m);
void vs_monitor_closep(struct vs_monitor **m);
/* What the monitor serves (the socket's path or the domain), for messages. */
const char *vs_monitor_what(const struct vs_monitor *m);
/* Runs COMMAND with ARGS (may be NULL; not stolen). *RET (may be NULL) gets the reply's
 * "return" as a new reference. QEMU's error description becomes ERR's message. */
int vs_monitor_exec(struct vs_monitor *m, const char *command, json_t *args, json_t **ret,
                    struct vs_err *err);

#endif
