/* fixture.h: guest trees made by the tests, in a fresh temporary directory each. */
#ifndef VS_FIXTURE_H
#define VS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Makes a temporary directory and returns its path, which the caller frees. */
char *fx_tmpdir(void);
/* Writes CONTENT to ROOT/REL, creating parent directories; aborts the test on failure. */
void fx_write(const char *root, const char *rel, const char *content);
void fx_write_bytes(const char *root, const char *rel, const void *data, size_t len);
void fx_symlink(const char *root, const char *rel, const char *target);
void fx_mkdir(const char *root, const char *rel);
void fx_chmod(const char *root, const char *rel, mode_t mode);
/* Removes the tree (rm -rf without a shell). */
void fx_rmtree(const char *root);
/* Runs ARGV (ARGV[0] looked up on PATH, no shell) with its output dropped: its exit status, or
 * -1 when it could not be started or was killed. For the oracles the tests ask (qemu-img). */
int fx_run(char *const argv[]);
/* Whether PROGRAM is installed: `PROGRAM --version` runs and exits 0. */
bool fx_have(const char *program);
/* Whether a file whose path contains NAME is mapped into this process (/proc/self/maps): for
 * the libraries opened on first use. */
bool fx_mapped(const char *name);

#endif
