/* fuzz_config.h: the callbacks a plugin registered with collectd_stub.c. */
#ifndef VS_FUZZ_CONFIG_H
#define VS_FUZZ_CONFIG_H

#include "collectd/core/daemon/plugin.h"

struct fuzz_callbacks {
  int (*config)(oconfig_item_t *ci);
  int (*init)(void);
  int (*shutdown)(void);
  unsigned long log_lines;
};
extern struct fuzz_callbacks fuzz_cb;

void module_register(void);

#endif
