/* regwatch.h: the registry values of Windows guests that go into the feature document as reg:
 * settings; the registry counterpart of watch.h's list of config files.
 *
 * An entry is a key pattern and, optionally, a value name pattern:
 *   HKLM\SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters SMB1
 * The key starts with HKLM\SOFTWARE or HKLM\SYSTEM (HKEY_LOCAL_MACHINE\ is read as HKLM\);
 * "CurrentControlSet" right after HKLM\SYSTEM is the control set the hive's Select\Current
 * names, and keeps that name in the document so that guests compare alike. Every key component
 * and the value name are globs (fnmatch, case-insensitive as the registry is):
 * "Protocols\*\Server", and "?" stands for a blank ("Terminal?Server"), since blanks separate the
 * fields. With no value name every value of the key is taken. The SAM and SECURITY hives are
 * refused: they hold secrets. A registry watch file holds one entry per line, "KEY [VALUE]", read
 * as watch files are (comments, blank lines); "!KEY [VALUE]" removes the entry written exactly so.
 */
#ifndef VS_REGWATCH_H
#define VS_REGWATCH_H

#include "util.h"

#define VS_REGWATCH_MAX_DEPTH 32 /* components of a key pattern */

struct vs_regwatch;

/* The default list: firewall profiles, RDP and NLA, UAC, SMBv1, LSA protection and NTLM
 * level, SCHANNEL protocol switches, Windows Update policy, autorun, audit settings. */
struct vs_regwatch *vs_regwatch_new_default(void);
struct vs_regwatch *vs_regwatch_new_empty(void);
/* A copy of W, or of the default list when W is NULL. */
struct vs_regwatch *vs_regwatch_copy(const struct vs_regwatch *w);
void vs_regwatch_free(struct vs_regwatch *w);
void vs_regwatch_freep(struct vs_regwatch **w);

/* Adds (or, with a leading '!', removes) one entry. VALUE may be NULL: every value. */
int vs_regwatch_add(struct vs_regwatch *w, const char *key, const char *value, struct vs_err *err);
/* Reads entries from a registry watch file on this host. Errors name the file and line. */
int vs_regwatch_load_file(struct vs_regwatch *w, const char *path, struct vs_err *err);

size_t vs_regwatch_count(const struct vs_regwatch *w);
/* The I-th entry: KEY in its canonical form ("HKLM\SYSTEM\..."), VALUE NULL for every value. */
void vs_regwatch_entry(const struct vs_regwatch *w, size_t i, const char **key, const char **value);

#endif
