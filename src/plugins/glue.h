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

/* collectd's cf_util_get_int and cf_util_get_cdtime convert any number, however large,
 * negative or fractional (casting 1e80 to int is undefined behaviour; the fuzzer found it):
 * these take one number that is a whole int, or a duration of 0 to VS_CF_MAX_SECONDS seconds,
 * and log which option was wrong otherwise. Same return convention (0, or -1). */
#define VS_CF_MAX_SECONDS (100.0 * 365 * 86400)
int vs_cf_get_int(const oconfig_item_t *ci, int *ret_value);
/* Whether D is a whole number an int holds (then *OUT gets it). */
bool vs_cf_whole_int(double d, int *out);
int vs_cf_get_cdtime(const oconfig_item_t *ci, cdtime_t *ret_value);

#endif
