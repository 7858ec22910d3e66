/* channel.h: a host-to-guest channel through the QEMU guest agent (US9191454's "management
 * channel"): send a command, get its reply, with a deadline on every wait.
 *
 * Transports:
 *   unix     a socket that speaks the agent's protocol: QEMU's chardev for the agent's
 *            virtio-serial port, or "qemu-ga -m unix-listen". Framing is ours: a 0xFF byte and
 *            guest-sync-delimited with a random id, everything up to the agent's 0xFF marker
 *            discarded, then one JSON reply per line; after a timeout or garbage the channel
 *            syncs again before the next command, so a late reply is never taken for the next.
 *   libvirt  virDomainQemuAgentCommand, with the timeout given to libvirt.
 *
 * One channel talks to one guest agent, which serves one client at a time: calls on a channel
 * are serialized (a mutex), so threads may share it. Commands pass an allow-list: by default
 * only read-only, informational ones; guest-exec and file access only when the caller allows
 * them. Replies are bounded in size. */
#ifndef VS_CHANNEL_H
#define VS_CHANNEL_H

#include "util.h"
#include "virt.h"

#include <jansson.h>

/* Why a call failed, distinctly, so that a person (or a retry policy) can tell a VM with no
 * agent from one whose agent is down or slow. */
enum vs_channel_status {
  VS_CHANNEL_OK,
  VS_CHANNEL_NOT_CONFIGURED, /* the VM has no agent channel */
  VS_CHANNEL_NOT_CONNECTED,  /* the channel exists but nothing answers on it */
  VS_CHANNEL_TIMEOUT,        /* no (complete) reply within the deadline */
  VS_CHANNEL_AGENT_ERROR,    /* the agent answered {"error": ...} */
  VS_CHANNEL_MALFORMED,      /* the reply was not the JSON the protocol promises */
  VS_CHANNEL_REFUSED,        /* the command is not on the allow-list */
  VS_CHANNEL_FAILED          /* anything else (I/O, libvirt) */
};
const char *vs_channel_status_name(enum vs_channel_status s); /* "timeout", ... */

#define VS_CHANNEL_TIMEOUT_MS 5000
#define VS_CHANNEL_MAX_REPLY (1u << 20)
#define VS_CHANNEL_MAX_OUTPUT (1u << 20) /* guest-exec output kept, per stream */

struct vs_channel_opts {
  int timeout_ms;           /* every wait (0: VS_CHANNEL_TIMEOUT_MS) */
  const char *const *allow; /* commands allowed besides the read-only default list */
  size_t n_allow;
  size_t max_reply; /* bytes (0: VS_CHANNEL_MAX_REPLY) */
  /* A command the agent refuses while the guest's file systems are frozen (a snapshot's
   * freeze: guest-exec, file access) is sent again once guest-fsfreeze-status says they
   * thawed, waiting at most this long (then VS_CHANNEL_AGENT_ERROR says they stayed frozen).
   * 0: no wait, the refusal is the answer. */
  int thaw_wait_ms;
};

struct vs_channel;

/* A channel over the unix socket PATH. Connecting is lazy (the first call), so opening never
 * blocks. */
struct vs_channel *vs_channel_open_unix(const char *path, const struct vs_channel_opts *o);
/* A channel through libvirt to DOMAIN (a name or UUID) of V, which must outlive the channel. */
struct vs_channel *vs_channel_open_libvirt(struct vs_virt *v, const char *domain,
                                           const struct vs_channel_opts *o);
/* A channel from a fleet map's channel spec: "unix:PATH", or "libvirt" (to domain UUID of V,
 * which may be NULL: then there is none). NULL for a spec it does not know. */
struct vs_channel *vs_channel_open_spec(const char *spec, struct vs_virt *v, const char *uuid,
                                        const struct vs_channel_opts *o);
void vs_channel_close(struct vs_channel *c);
void vs_channel_closep(struct vs_channel **c);

/* Whether COMMAND passes the channel's allow-list. */
bool vs_channel_allows(const struct vs_channel *c, const char *command);

/* Runs COMMAND with ARGUMENTS (may be NULL; not stolen). On success *REPLY gets the agent's
 * "return" value (a new reference). On failure ERR says what happened and the status says
 * which kind of failure; an agent error's class and description are in the message. */
enum vs_channel_status vs_channel_call(struct vs_channel *c, const char *command, json_t *arguments,
                                       json_t **reply, struct vs_err *err);

struct vs_exec_result {
  int exit_code;   /* -1 when killed by a signal */
  int signal;      /* the signal, or 0 */
  char *out, *err; /* decoded output (NUL-terminated; may hold NULs) */
  size_t out_len, err_len;
  bool out_truncated, err_truncated; /* the agent or we cut the output */
};
/* guest-exec PATH with ARGV (NULL-terminated, may be NULL), capturing its output: started,
 * then polled with guest-exec-status until it exits or DEADLINE_MS passes (which is a
 * timeout; the process is left running in the guest). Needs guest-exec and guest-exec-status
 * allowed. */
enum vs_channel_status vs_channel_exec(struct vs_channel *c, const char *path,
                                       const char *const *argv, int deadline_ms,
                                       struct vs_exec_result *out, struct vs_err *err);
void vs_exec_result_clear(struct vs_exec_result *r);
/* R as {"exit_code", "signal", "output", "stderr", "output_truncated", "stderr_truncated"}:
 * output that is not UTF-8 keeps its bytes as \\xHH (vs_json_text). */
json_t *vs_exec_result_to_json(const struct vs_exec_result *r);

/* How vs_exec_wait asks the agent: a channel (vs_channel_call), or a route to another host. */
typedef enum vs_channel_status (*vs_agent_call_fn)(void *ctx, const char *command,
                                                   json_t *arguments, json_t **reply,
                                                   struct vs_err *err);
/* Polls guest-exec-status for PID through CALL until the process exits (OUT gets its exit code
 * and decoded output) or DEADLINE_MS passes (a timeout naming TARGET and WHAT, the command; the
 * process is left running in the guest). The one poll loop of vs_channel_exec, the agent
 * actions and vmscope send --wait. */
enum vs_channel_status vs_exec_wait(vs_agent_call_fn call, void *ctx, const char *target,
                                    const char *what, int64_t pid, int deadline_ms,
                                    struct vs_exec_result *out, struct vs_err *err);

#endif
