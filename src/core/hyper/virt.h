/* virt.h: libvirt: a connection, its domains, and what a domain's XML says.
 *
 * The domain XML gives two things: the VM's virtual hardware as vm: settings (so hardware drift
 * is ranked like guest drift), and the disks to read. vm: keys name devices by what is stable
 * across VMs: disks by target ("vm:devices/disk[vda]/cache"), channels by target name, other
 * devices by their order ("vm:devices/interface[1]/model"). Secrets in the XML (graphics
 * passwords, auth) are never copied.
 *
 * Thread safety: a struct vs_virt may serve many threads at once (vmscope_snapshot's workers
 * share one): libvirt connections are thread-safe, and the only error state used here is
 * libvirt's last error, which libvirt keeps per thread (virGetLastError). Opening, closing
 * and (un)registering lifecycle events change the struct itself: its owner does those while
 * no other thread uses it. */
#ifndef VS_VIRT_H
#define VS_VIRT_H

#include "feature.h"

#include <stdbool.h>
#include <stddef.h>

struct vs_virt;

/* Opens URI (NULL: libvirt's default). READ_ONLY connections cannot start backup jobs. */
struct vs_virt *vs_virt_open(const char *uri, bool read_only, struct vs_err *err);
void vs_virt_close(struct vs_virt *v);
void vs_virt_closep(struct vs_virt **v);
/* False once the connection is gone (libvirtd restarted, socket closed): reopen it. */
bool vs_virt_alive(struct vs_virt *v);
const char *vs_virt_uri(const struct vs_virt *v);

struct vs_domain {
  char *name, *uuid;
  bool active;
  char *xml; /* the live XML of an active domain, else the persistent one */
};

/* Every domain, active and defined, sorted by name. */
int vs_virt_domains(struct vs_virt *v, struct vs_domain **out, size_t *n, struct vs_err *err);
void vs_domains_free(struct vs_domain *d, size_t n);

/* Whether domain NAME is chosen by the fnmatch GLOBS: every domain when there are none; with
 * IGNORE, every domain that matches none of them. */
bool vs_domain_selected(char *const *globs, size_t n, bool ignore, const char *name);

/* The domain XML's settings, as vm: keys into DOC. WHAT names the domain in errors. */
int vs_virt_xml_settings(const char *xml, const char *what, struct vs_feature *doc,
                         struct vs_err *err);

struct vs_disk {
  char *target; /* "vda" */
  char *path;   /* the top image of the chain (a file or block device) */
  char *format; /* "qcow2", "raw", or NULL when the XML does not say */
  bool readonly;
};
/* The domain's disks (device="disk") backed by a file or block device; network disks and
 * CD-ROMs are left out, and named in *SKIPPED (a heap string, NULL when none). */
int vs_virt_xml_disks(const char *xml, const char *what, struct vs_disk **out, size_t *n,
                      char **skipped, struct vs_err *err);
void vs_disks_free(struct vs_disk *d, size_t n);

/* How to reach the guest agent of a domain whose XML is XML on V's hypervisor: "libvirt"
 * (virDomainQemuAgentCommand) for QEMU, which holds the agent's socket itself; for drivers
 * that cannot carry agent commands (the test driver, or a hypervisor whose agent socket is
 * served by something else), "unix:PATH" from the XML's org.qemu.guest_agent.0 unix channel,
 * else "libvirt". Caller frees. */
char *vs_virt_agent_spec(struct vs_virt *v, const char *xml);

/* libvirt delivers events only through an event loop, which must exist before the connection
 * that wants events is opened: this registers libvirt's default loop and runs it in a thread of
 * its own for the life of the process (once; later calls do nothing). */
void vs_virt_enable_events(void);
/* Counts the domain lifecycle events (start, stop, migration...) V's connection sees, so a
 * poller can tell cheaply that its domains changed: *COUNTER (updated atomically) grows by one
 * per event. V must have been opened after vs_virt_enable_events(). */
int vs_virt_watch_lifecycle(struct vs_virt *v, unsigned long *counter, struct vs_err *err);

/* Sends the guest agent command JSON (a complete {"execute": ...} object) to DOMAIN (name or
 * UUID) through libvirt, waiting at most TIMEOUT_S seconds. On success *REPLY is the agent's
 * whole reply text. On failure *LIBVIRT_CODE is libvirt's error number (virErrorNumber: e.g.
 * VIR_ERR_AGENT_UNRESPONSIVE when the agent is not connected), so callers can tell the causes
 * apart. */
int vs_virt_agent_command(struct vs_virt *v, const char *domain, const char *json, int timeout_s,
                          char **reply, int *libvirt_code, struct vs_err *err);

/* Runs a QMP command on the running DOMAIN's monitor through libvirt's pass-through
 * (virDomainQemuMonitorCommand; libvirt marks the domain tainted). *REPLY is QEMU's whole
 * reply text. */
int vs_virt_monitor_command(struct vs_virt *v, const char *domain, const char *json, char **reply,
                            struct vs_err *err);

/* Puts DOMAIN's disk TARGET on DEST while the domain runs, by a shallow block copy onto DEST
 * (an existing qcow2 image with the backing chain the disk is to have from now on: only what
 * the top image holds is copied) and a pivot once the copy has caught up. Waits at most
 * TIMEOUT_S for that; on any failure the job is cancelled and the disk stays as it was.
 * *PIVOT_SECONDS: how long the pivot took (the guest's I/O is drained for it). Needs a
 * read-write connection. */
int vs_virt_block_copy_pivot(struct vs_virt *v, const char *domain, const char *target,
                             const char *dest, int timeout_s, double *pivot_seconds,
                             struct vs_err *err);

/* A pull-mode backup job (qemu driver): a point-in-time NBD export of some of a running
 * domain's disks, on a unix socket in a private directory. While it runs, the guest keeps
 * writing; the export keeps showing the disks as they were when it began (QEMU copies what the
 * guest overwrites into scratch files). */
struct vs_backup;
/* Begins a backup of TARGETS ("vda", ...) of the domain with UUID; every other disk is left
 * out. The socket and scratch files go into a new directory under DIR (QEMU must be able to
 * create files there); the scratch files (empty qcow2 images of each disk's size, given to the
 * user the domain's DAC label names) are made here before any freeze, and libvirt is told to
 * reuse them (libvirt 9 would make them while the guest is frozen). Before beginning, the
 * guest's file systems are frozen through the guest agent when one answers, and thawed right
 * after (*QUIESCED says whether they were); no agent is no error. A thaw that fails (libvirtd
 * gone between the freeze and the thaw) is made before the domain's next backup begins, in this
 * process: a guest is never left frozen by us, and a freeze someone else made is never ended by
 * us. Needs a read-write connection. */
struct vs_backup *vs_virt_backup_begin(struct vs_virt *v, const char *uuid,
                                       const char *const *targets, size_t n, const char *dir,
                                       bool *quiesced, struct vs_err *err);
/* How long the guest's file systems were frozen for the job (0 when they were not): from the
 * freeze's return to the thaw's, so at least as long as the guest saw. */
double vs_backup_frozen_seconds(const struct vs_backup *b);
/* The NBD URI of TARGET's export (caller frees). */
char *vs_backup_uri(const struct vs_backup *b, const char *target);
/* Ends the job and removes its socket, scratch files and directory (as it does when the job
 * did not begin). */
void vs_virt_backup_end(struct vs_backup *b);

#endif
