/* Hostile guest trees: whatever a guest's owner writes must not hurt the host or stop the
 * document. */
#include "extract.h"
#include "fixture.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static bool skipped_with(const struct vs_feature *doc, const char *path, const char *needle) {
  const char *p, *r;
  for (size_t i = 0; vs_feature_skipped(doc, i, &p, &r); i++)
    if (strcmp(p, path) == 0 && strstr(r, needle)) return true;
  return false;
}

/* Root reads mode-000 files through CAP_DAC_OVERRIDE; drop it (and DAC_READ_SEARCH) from the
 * effective set so that "unreadable" means what it means for the guest's own files. */
static bool set_dac_caps(bool on) {
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0) return false;
  unsigned bits = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);
  if (on)
    d[0].effective |= bits & d[0].permitted;
  else
    d[0].effective &= ~bits;
  return syscall(SYS_capset, &h, d) == 0;
}

static struct vs_feature *extract(const char *root, struct vs_extract_stats *st) {
  struct vs_err err = {0};
  struct vs_source *src = vs_source_open_dir(root, &err);
  struct vs_extractor *x = vs_extractor_new(NULL, &err);
  struct vs_feature *doc = vs_feature_new();
  if (!src || !x || vs_extract(x, src, doc, st, &err) < 0) {
    diag("extract failed: %s", vs_err_msg(&err));
    vs_feature_free(doc);
    doc = NULL;
  }
  vs_err_clear(&err);
  vs_extractor_free(x);
  vs_source_free(src);
  return doc;
}

/* What a hostile tree could do, and what this machine let the test make of it. */
struct hostile {
  char *root;
  bool have_dev; /* mknod worked: /etc/resolv.conf is a device node */
  bool dropped;  /* CAP_DAC_OVERRIDE was dropped for the extraction: /etc/sudoers is unreadable */
};

static void make_hostile_tree(struct hostile *h) {
  const char *root = h->root;
  fx_write(root, "etc/passwd", "root:x:0:0:guest root:/root:/bin/sh\n");
  fx_write(root, "etc/hostname", "hostile\n");
  /* Escapes: absolute, and relative past the root. Both must land on the guest's own passwd. */
  fx_symlink(root, "etc/ssh/sshd_config", "/etc/passwd");
  fx_symlink(root, "etc/ssh/sshd_config.d/evil.conf", "../../../../../../../../etc/passwd");
  /* 4 GiB sparse config file. */
  char *big = NULL;
  if (asprintf(&big, "%s/etc/security/limits.conf", root) < 0) abort();
  fx_write(root, "etc/security/limits.conf", "");
  ok(truncate(big, 4LL << 30) == 0, "made a 4 GiB sparse limits.conf");
  free(big);
  /* Unreadable. */
  fx_write(root, "etc/sudoers", "root ALL=(ALL) ALL\n");
  fx_chmod(root, "etc/sudoers", 0);
  /* Binary junk, with and without NUL bytes. */
  unsigned char junk[4096];
  for (size_t i = 0; i < sizeof(junk); i++)
    junk[i] = (unsigned char)(i * 7919u >> 3);
  fx_write_bytes(root, "etc/ssh/ssh_config", junk, sizeof(junk));
  fx_write(root, "etc/login.defs", "\xff\xfe\x80 garbage === [[[ \x01\x02\n");
  /* A FIFO, a device node and a symlink loop where config files should be. */
  char *fifo = NULL, *dev = NULL;
  if (asprintf(&fifo, "%s/etc/hosts", root) < 0 || asprintf(&dev, "%s/etc/resolv.conf", root) < 0)
    abort();
  ok(mkfifo(fifo, 0644) == 0, "made a FIFO at /etc/hosts");
  h->have_dev = mknod(dev, S_IFCHR | 0644, makedev(1, 3)) == 0;
  free(fifo);
  free(dev);
  fx_symlink(root, "etc/fstab", "fstab2");
  fx_symlink(root, "etc/fstab2", "/etc/fstab");
  /* A name with a newline, and one that is not UTF-8. */
  fx_write(root, "etc/sudoers.d/bad\nname", "Defaults env_reset\n");
  fx_write(root, "etc/sudoers.d/\xff\xfe", "Defaults !lecture\n");
  /* os-release as a directory. */
  fx_mkdir(root, "etc/os-release");
}

/* Extracts the tree as the guest's own files would read: without root's DAC override. */
static struct vs_feature *extract_as_guest(struct hostile *h) {
  h->dropped = geteuid() != 0 || set_dac_caps(false);
  struct vs_extract_stats st;
  double t0 = vs_now_monotonic();
  struct vs_feature *doc = extract(h->root, &st);
  double took = vs_now_monotonic() - t0;
  if (geteuid() == 0) set_dac_caps(true);
  ok(doc != NULL, "the hostile tree still yields a document (%.0f ms)", took * 1e3);
  return doc;
}

static void test_symlinks_stay_in_the_guest(const struct vs_feature *doc) {
  const char *passwd_digest = vs_feature_get(doc, "meta:/etc/passwd:sha256");
  ok(passwd_digest != NULL, "the guest's passwd is digested");
  is_str(vs_feature_get(doc, "meta:/etc/ssh/sshd_config:sha256"), passwd_digest,
         "an absolute symlink to /etc/passwd reads the guest's passwd, not the host's");
  is_str(vs_feature_get(doc, "meta:/etc/ssh/sshd_config.d/evil.conf:sha256"), passwd_digest,
         "a relative symlink climbing past the root reads the guest's passwd too");
  is_str(vs_feature_get(doc, "meta:/etc/ssh/sshd_config:link"), "/etc/passwd",
         "the symlink itself is recorded");
  is_str(vs_feature_get(doc, "user:root:home"), "/root", "the guest's own passwd is used");
  ok(vs_feature_get(doc, "user:root:uid") && !vs_feature_get(doc, "user:daemon:uid"),
     "no account of the host's passwd leaks in");
}

static void test_unreadable_files_skipped(const struct vs_feature *doc, const struct hostile *h) {
  ok(skipped_with(doc, "/etc/security/limits.conf", "over the limit"),
     "the 4 GiB sparse file is skipped as over the size limit, not read");
  is_str(vs_feature_get(doc, "meta:/etc/security/limits.conf:mode"), "0644",
         "its metadata is still recorded");
  if (h->dropped)
    ok(skipped_with(doc, "/etc/sudoers", "Permission denied"),
       "an unreadable file is recorded as skipped with the reason");
  else
    skip(1, "cannot drop CAP_DAC_OVERRIDE here");
  ok(skipped_with(doc, "/etc/ssh/ssh_config", "NUL bytes"),
     "binary junk with NUL bytes is not fed to a lens, and says why");
  ok(skipped_with(doc, "/etc/login.defs", "not parsed with Login_defs.lns"),
     "junk a lens cannot parse is recorded as a parse failure naming the lens");
  ok(vs_feature_get(doc, "meta:/etc/login.defs:sha256") != NULL,
     "an unparsable file still gets its digest");
  ok(skipped_with(doc, "/etc/hosts", "FIFO"), "a FIFO is skipped without blocking");
  if (h->have_dev)
    ok(skipped_with(doc, "/etc/resolv.conf", "character device"),
       "a device node is skipped, never opened");
  else
    skip(1, "mknod not permitted here");
  ok(skipped_with(doc, "/etc/fstab", "symlinks"), "a symlink loop is skipped as such");
}

static void test_odd_names_escaped(const struct vs_feature *doc) {
  ok(vs_feature_get(doc, "file:/etc/sudoers.d/bad\\x0Aname:Defaults/env_reset") != NULL,
     "a file name with a newline becomes an escaped key");
  ok(vs_feature_get(doc, "file:/etc/sudoers.d/\\xFF\\xFE:Defaults/lecture") != NULL ||
         vs_feature_get(doc, "meta:/etc/sudoers.d/\\xFF\\xFE:sha256") != NULL,
     "a file name that is not UTF-8 becomes an escaped key");
  ok(vs_feature_os(doc, "distro") == NULL && skipped_with(doc, "/etc/os-release", "directory"),
     "an os-release that is a directory is skipped, with no distro guessed");
}

static void test_document_loads_back(const struct vs_feature *doc) {
  struct vs_err err = {0};
  char *json = vs_feature_dumps(doc, false);
  struct vs_feature *back = vs_feature_loads(json, strlen(json), "hostile", &err);
  ok(back != NULL, "the document is valid JSON that loads back (%s)", err.msg ? err.msg : "ok");
  /* Its provenance is keyed by file name: the name that is not UTF-8 must be escaped there too
   * (valgrind found jansson freeing the list it refused, then our append to it). */
  ok(json && strstr(json, "\"/etc/sudoers.d/\\\\xFF\\\\xFE\":[") != NULL,
     "the provenance names that file escaped, with its keys");
  vs_err_clear(&err);
  vs_feature_free(back);
  free(json);
}

/* A read budget stops a guest with very many files from keeping us reading. */
static void test_read_budget(void) {
  struct vs_err err = {0};
  char *many = fx_tmpdir();
  /* A guest (a tree with no OS is refused); empty, so that the budget is the files' alone. */
  fx_write(many, "etc/os-release", "");
  static char chunk[100000];
  memset(chunk, '#', sizeof(chunk));
  for (int i = 0; i < 30; i++) {
    char name[64];
    snprintf(name, sizeof(name), "etc/sudoers.d/f%02d", i);
    fx_write_bytes(many, name, chunk, sizeof(chunk));
  }
  struct vs_source *msrc = vs_source_open_dir(many, &err);
  struct vs_extractor *mx = vs_extractor_new(NULL, &err);
  vs_extractor_set_read_budget(mx, 1000000);
  struct vs_feature *mdoc = vs_feature_new();
  ok(vs_extract(mx, msrc, mdoc, NULL, &err) == 0, "a tree of 30 large files extracts");
  ok(skipped_with(mdoc, "/etc/sudoers.d/f29", "read budget"),
     "files past the document's read budget are skipped, saying so");

  ok(vs_feature_get(mdoc, "meta:/etc/sudoers.d/f00:sha256") != NULL,
     "files within the budget were read");
  vs_err_clear(&err);
  vs_feature_free(mdoc);
  vs_extractor_free(mx);
  vs_source_free(msrc);
  fx_rmtree(many);
  free(many);
}

int main(void) {
  plan_no_plan();
  struct hostile h = {.root = fx_tmpdir()};
  make_hostile_tree(&h);
  struct vs_feature *doc = extract_as_guest(&h);
  if (!doc) return done_testing();
  test_symlinks_stay_in_the_guest(doc);
  test_unreadable_files_skipped(doc, &h);
  test_odd_names_escaped(doc);
  test_document_loads_back(doc);
  vs_feature_free(doc);

  test_read_budget();

  fx_chmod(h.root, "etc/sudoers", 0644);
  fx_rmtree(h.root);
  free(h.root);
  return done_testing();
}
