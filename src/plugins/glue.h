/* glue.h: what the vmscope plugins share: core logging into collectd's log, logging a failing
 * cause once instead of every interval, notifications with meta, and identifiers. */
#ifndef VS_GLUE_H
#define VS_GLUE_H

#include "collectd/core/daemon/collectd.h"
#include "collectd/core/daemon/plugin.h"
#include "collectd/core/utils/common/common.h"

#include "strmap.h"
#include "util.h"

/* Sends the core's log lines to plugin_log, prefixed with the plugin's name (CTX). */
void vs_glue_log_sink(enum vs_log_level level, const char *msg, void *ctx);

/* Causes already reported, so that a disk that stays unreadable or a libvirt that stays away
 * is logged once, not every interval; and its recovery is logged once too. Not thread-safe:
 * callers hold their plugin's lock. */
struct vs_once {
  struct vs_strmap *seen; /* cause key -> message */
};
/* Logs MSG at ERROR the first time CAUSE fails with it (or with another message), at DEBUG
 * after that. */
void vs_once_fail(struct vs_once *o, const char *plugin, const char *cause, const char *msg);
/* CAUSE works again: logs that once at INFO if its failure had been logged. */
void vs_once_ok(struct vs_once *o, const char *plugin, const char *cause);
void vs_once_free(struct vs_once *o);

/* Registers READ as PLUGIN's read callback, and STOP to run when collectd begins to shut down.
 * collectd calls shutdown callbacks in LoadPlugin order, so a plugin loaded after exec (or any
 * notification or write plugin) would still be dispatching from its worker threads while that
 * plugin's shutdown frees what its callback uses: exec's frees its program list, and a
 * notification then reads freed memory. The read callbacks' user data is freed right after the
 * read threads stop and before any shutdown callback runs, so STOP, called from there, ends the
 * plugin's worker threads while every other plugin still works. STOP must be safe to call
 * again from the shutdown callback. */
int vs_glue_register_read(const char *plugin, int (*read)(void), void (*stop)(void));

/* Dispatches one gauge value PLUGIN/INSTANCE/TYPE-TYPE_INSTANCE, taken at TIME (0: now). */
void vs_glue_submit(const char *plugin, const char *instance, const char *type,
                    const char *type_instance, gauge_t value, cdtime_t time);

/* A notification under construction (meta added with plugin_notification_meta_add_*). */
void vs_notification_init(notification_t *n, int severity, const char *plugin,
                          const char *plugin_instance, const char *type, const char *type_instance);
/* Sets the message (cut at a UTF-8 boundary to collectd's 255 bytes, with "..." when cut),
 * dispatches, and frees the meta. */
void vs_notification_send(notification_t *n, const char *fmt, ...) VS_PRINTF(2, 3);

/* A short form of a setting key for type_instance (at most DATA_MAX_NAME_LEN - 1 bytes):
 * "file:/etc/ssh/sshd_config:PermitRootLogin" -> "sshd_config.PermitRootLogin". */
void vs_short_key(const char *key, char *out, size_t size);

/* Configuration. Every message these log names the plugin and the option ("vmscope_drift: Top
 * takes exactly one number, not ..."), and they return 0, or -1 after logging at ERROR.
 *
 * collectd's cf_util_get_int and cf_util_get_cdtime convert any number, however large,
 * negative or fractional (casting 1e80 to int is undefined behaviour; the fuzzer found it):
 * vs_cf_int takes one number that is a whole int, vs_cf_cdtime a duration of 0 to
 * VS_CF_MAX_SECONDS seconds, vs_cf_double a finite number. collectd's cf_util_get_string and
 * cf_util_get_boolean do not say which plugin failed: vs_cf_string (replacing *OUT) and
 * vs_cf_boolean do. */
#define VS_CF_MAX_SECONDS (100.0 * 365 * 86400)
int vs_cf_int(const oconfig_item_t *ci, const char *plugin, int *out);
int vs_cf_cdtime(const oconfig_item_t *ci, const char *plugin, cdtime_t *out);
int vs_cf_double(const oconfig_item_t *ci, const char *plugin, double *out);
int vs_cf_string(const oconfig_item_t *ci, const char *plugin, char **out);
int vs_cf_boolean(const oconfig_item_t *ci, const char *plugin, bool *out);
/* The same without the plugin's name in the message (kept until every caller passes it). */
int vs_cf_get_int(const oconfig_item_t *ci, int *ret_value);
int vs_cf_get_cdtime(const oconfig_item_t *ci, cdtime_t *ret_value);
/* Whether D is a whole number an int holds (then *OUT gets it). */
bool vs_cf_whole_int(double d, int *out);

/* An option given twice is an error unless it is a list: every child key of CI that appears
 * more than once and is not in REPEATABLE (NULL-terminated; case-insensitive) is logged as
 * "PLUGIN: [CONTEXT: ]KEY is given twice ...". */
int vs_cf_check_repeats(const oconfig_item_t *ci, const char *plugin, const char *context,
                        const char *const *repeatable);

/* A path named by option CI must be there when the configuration is read, not fail later:
 * a regular file that can be read, or a directory. "PLUGIN: Key \"path\": why". */
int vs_cf_check_file(const oconfig_item_t *ci, const char *plugin, const char *path);
int vs_cf_check_dir(const oconfig_item_t *ci, const char *plugin, const char *path);

/* PluginInstanceFormat name|uuid, one setting each vmscope plugin reads (the same value in the
 * three blocks): what the plugin instance of a VM's values and notifications is. */
enum vs_instance_format { VS_INSTANCE_NAME, VS_INSTANCE_UUID };
int vs_cf_get_instance_format(const oconfig_item_t *ci, const char *plugin,
                              enum vs_instance_format *out);
/* A VM's plugin instance: its UUID under VS_INSTANCE_UUID, else its NAME. An id that is not a
 * domain's (empty, NULL, or a guest tree's path) gives the name either way; a missing name
 * gives the id. */
const char *vs_instance_name(enum vs_instance_format f, const char *name, const char *uuid);
/* vs_notification_init for a notification about one VM: the plugin instance as F says, and
 * meta "name" (the VM's name) so that a consumer (vmscope_action's Domain globs) knows the VM
 * by either; callers add "id" (the UUID) as before. */
void vs_notification_init_vm(notification_t *n, int severity, const char *plugin,
                             enum vs_instance_format f, const char *name, const char *uuid,
                             const char *type, const char *type_instance);

#endif
