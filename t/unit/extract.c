#include "extract.h"
#include "fixture.h"
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static void md5_hex(const char *text, char out[33]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text, strlen(text), md, &len, EVP_md5(), NULL);
  for (unsigned i = 0; i < len && i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Defaults a guest documents: sshd_config's commented-out directives, and dpkg conffiles that
 * were never edited. */
static void test_defaults(struct vs_extractor *x) {
  static const char sshd[] = "# This is the sshd server system-wide configuration file.\n"
                             "#Port 22\n"
                             "#PermitRootLogin prohibit-password\n"
                             "#MaxAuthTries 6\n"
                             "UsePAM yes\n"
                             "#Match User anoncvs\n"
                             "#\tX11Forwarding no\n";
  static const char sudoers[] = "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n";
  char sshd_md5[33], status[1024];
  md5_hex(sshd, sshd_md5);
  int n = snprintf(status, sizeof(status),
                   "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2\n"
                   "Conffiles:\n /etc/ssh/sshd_config %s\n /etc/ssh/old_config "
                   "0123456789abcdef0123456789abcdef obsolete\n\n"
                   "Package: sudo\nStatus: install ok installed\nVersion: 1.9.13p3-1\n"
                   "Conffiles:\n /etc/sudoers 0123456789abcdef0123456789abcdef\n",
                   sshd_md5);
  ok(n > 0 && (size_t)n < sizeof(status), "(the fixture's dpkg status fits)");
  char *root = fx_tmpdir();
  fx_write(root, "var/lib/dpkg/status", status);
  fx_write(root, "etc/ssh/sshd_config", sshd);
  fx_write(root, "etc/ssh/old_config", "x\n");
  fx_write(root, "etc/sudoers", sudoers);
  struct vs_err err = {0};
  struct vs_source *src = vs_source_open_dir(root, &err);
  struct vs_feature *doc = vs_feature_new();
  ok(src && vs_extract(x, src, doc, NULL, &err) == 0, "a tree with dpkg conffiles extracts");
  is_str(vs_feature_default(doc, "file:/etc/ssh/sshd_config:PermitRootLogin"), "prohibit-password",
         "sshd_config's \"#PermitRootLogin prohibit-password\" is that key's default");
  is_str(vs_feature_default(doc, "file:/etc/ssh/sshd_config:MaxAuthTries"), "6",
         "and \"#MaxAuthTries 6\" another");
  ok(vs_feature_get(doc, "file:/etc/ssh/sshd_config:PermitRootLogin") == NULL,
     "a default is not a setting");
  ok(vs_feature_default(doc, "file:/etc/ssh/sshd_config:This") == NULL,
     "a prose comment (\"# This is ...\") is not a default");
  ok(vs_feature_default(doc, "file:/etc/ssh/sshd_config:Match/Settings/X11Forwarding") == NULL &&
         vs_feature_default(doc, "file:/etc/ssh/sshd_config:X11Forwarding") == NULL,
     "nor is the commented example Match block");
  is_str(vs_feature_get(doc, "meta:/etc/ssh/sshd_config:package"), "openssh-server",
         "a conffile records the package that ships it");
  const char *digest = vs_feature_get(doc, "meta:/etc/ssh/sshd_config:sha256");
  ok(digest && vs_feature_default(doc, "meta:/etc/ssh/sshd_config:sha256") &&
         strcmp(vs_feature_default(doc, "meta:/etc/ssh/sshd_config:sha256"), digest) == 0,
     "a conffile whose MD5 is the shipped one has its own digest as default (never edited)");
  is_str(vs_feature_get(doc, "meta:/etc/sudoers:package"), "sudo", "sudoers is sudo's");
  ok(vs_feature_default(doc, "meta:/etc/sudoers:sha256") == NULL,
     "an edited conffile (MD5 differs) has no default digest");
  ok(vs_feature_default(doc, "file:/etc/sudoers:Defaults/env_reset") == NULL,
     "files that do not document defaults in comments give none (opt-in per lens)");
  vs_feature_free(doc);
  vs_source_free(src);
  fx_rmtree(root);
  free(root);
}

static const char dpkg_status[] =
    "Package: dpkg\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\n"
    "Version: 1.21.22\nDescription: Debian package management system\n continuation line\n\n"
    "Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\n"
    "Version: 1:9.2p1-2+deb12u3\nConffiles:\n /etc/ssh/moduli 0123\n\n"
    "Package: removed-pkg\nStatus: deinstall ok config-files\nArchitecture: amd64\n"
    "Version: 1.0\n\n"
    "Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n\n"
    "Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9\n";

static void make_tree(const char *root) {
  fx_write(root, "etc/os-release",
           "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n"
           "VERSION_ID=\"12\"\nID=debian\n# ID=ubuntu\nID_LIKE='rhel fedora'\n");
  fx_write(root, "etc/hostname", "web-07\n");
  fx_write(root, "var/lib/dpkg/status", dpkg_status);
  fx_write(root, "etc/passwd",
           "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
           "bob:x:1000:1000:Bob,,,:/home/bob:/bin/zsh\nbroken-line\n");
  fx_write(root, "etc/shadow",
           "root:$6$salt$hashhashhash:19000:0:99999:7:::\nwww-data:*:19000:0:99999:7:::\n"
           "bob:!$6$x$y:19000:0:90:7:::\n");
  fx_write(root, "etc/group", "root:x:0:\nsudo:x:27:bob,alice\n");
  fx_symlink(root, "etc/systemd/system/multi-user.target.wants/ssh.service",
             "/lib/systemd/system/ssh.service");
  fx_symlink(root, "etc/systemd/system/timers.target.wants/apt-daily.timer",
             "/lib/systemd/system/apt-daily.timer");
  fx_symlink(root, "etc/systemd/system/rsync.service", "/dev/null");
  fx_symlink(root, "etc/systemd/system/sshd.service", "/lib/systemd/system/ssh.service");
  fx_write(
      root, "lib/systemd/system/ssh.service",
      "[Unit]\nDescription=OpenBSD Secure Shell server\n[Install]\nWantedBy=multi-user.target\n");
  fx_write(root, "lib/systemd/system/nginx.service",
           "[Service]\nExecStart=/usr/sbin/nginx\n\n[Install]\nWantedBy=multi-user.target\n");
  fx_write(root, "lib/systemd/system/static.service", "[Service]\nExecStart=/bin/true\n");
  fx_write(root, "lib/systemd/system/rsync.service", "[Install]\nWantedBy=multi-user.target\n");
  fx_symlink(root, "etc/rc2.d/S01legacy", "../init.d/legacy");
  fx_symlink(root, "etc/rc2.d/S01ssh", "../init.d/ssh");
  fx_write(root, "usr/lib/sysctl.d/50-default.conf",
           "net.ipv4.ip_forward = 0\nkernel.sysrq = 16\n-net.core.somaxconn=128\n");
  fx_write(root, "etc/sysctl.d/50-default.conf", "kernel.sysrq = 1\n");
  fx_write(root, "etc/sysctl.d/60-forward.conf", "; comment\nnet/ipv4/ip_forward = 1\n");
  fx_write(root, "etc/sysctl.conf", "# later than every sysctl.d file\nvm.swappiness = 10\n");
  fx_write(root, "etc/ssh/sshd_config",
           "# shipped comment\nPort 2222\nPermitRootLogin yes\n#PasswordAuthentication no\n"
           "Subsystem sftp /usr/lib/openssh/sftp-server\nMatch User bob\n  X11Forwarding no\n");
  fx_write(root, "etc/sudoers", "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n");
  fx_chmod(root, "etc/sudoers", 0440);
  fx_write(root, "etc/hosts", "127.0.0.1 localhost\n10.0.0.7 web-07.example web-07\n");
  fx_write(root, "etc/exports", "/srv 10.0.0.0/8(ro,sync)\n");
}

/* Documents extracted at once in several threads, each with its own extractor (as
 * vmscope_snapshot's workers do), must be the same as one extracted alone: every setting
 * with its value. Augeas compiles a lens's regular expressions under the process-wide
 * re_syntax_options, which it sets and puts back around each compile; two threads at it
 * together compiled with each other's syntax, and a lens compiled wrong lost every setting of
 * the files it parsed for that extractor's life (seen in CI as a VM whose sshd_config had no
 * settings). */
struct extract_job {
  const char *root;
  const struct vs_watch *watch;
  const struct vs_feature *want;
  int rounds, mismatches;
  char first[256];
};

static void *extract_rounds(void *arg) {
  struct extract_job *j = arg;
  for (int r = 0; r < j->rounds; r++) {
    struct vs_err err = {0};
    struct vs_source *src = vs_source_open_dir(j->root, &err);
    struct vs_extractor *x = vs_extractor_new(j->watch, &err);
    struct vs_feature *doc = vs_feature_new();
    bool same = src && x && vs_extract(x, src, doc, NULL, &err) == 0 &&
                vs_feature_count(doc) == vs_feature_count(j->want);
    size_t pos = 0;
    const char *key, *value;
    while (same && vs_feature_next(j->want, &pos, &key, &value)) {
      const char *got = vs_feature_get(doc, key);
      same = got && strcmp(got, value) == 0;
      if (!same && !j->first[0])
        snprintf(j->first, sizeof(j->first), "%s: %s, not %s", key, got ? got : "absent", value);
    }
    if (!same) j->mismatches++;
    vs_feature_free(doc);
    vs_extractor_free(x);
    vs_source_free(src);
    vs_err_clear(&err);
  }
  return NULL;
}

static void test_threads(const char *root, const struct vs_watch *watch,
                         const struct vs_feature *want) {
  enum { THREADS = 4 };
  /* The plain run races 6 rounds in each thread (12 took 28 s of CI's plain suite; the four
   * threads load their lenses together in every round, which is what raced). Under valgrind
   * one: memcheck needs every path once, and 48 fresh extractors loading their lenses cost 8
   * of CI's minutes there. Under ASan three: the four threads still compile their lenses at
   * once, and 48 cost 12 minutes on a loaded machine. */
  const char *vg = getenv("VS_VALGRIND"), *san = getenv("VS_SANITIZED");
  int rounds = vg && strcmp(vg, "1") == 0 ? 1 : san && strcmp(san, "1") == 0 ? 3 : 6;
  struct extract_job jobs[THREADS];
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (struct extract_job){root, watch, want, rounds, 0, ""};
    pthread_create(&t[i], NULL, extract_rounds, &jobs[i]);
  }
  int mismatches = 0;
  const char *first = "";
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    mismatches += jobs[i].mismatches;
    if (!*first && jobs[i].first[0]) first = jobs[i].first;
  }
  ok(mismatches == 0,
     "%d documents extracted in %d threads at once equal the one made alone (%d differ%s%s)",
     THREADS * rounds, THREADS, mismatches, *first ? "; first: " : "", first);
}

/* A tree with no operating system is no VM: refused, not an empty document. */
static void test_no_os(struct vs_extractor *x) {
  struct vs_err err = {0};
  char *empty = fx_tmpdir();
  fx_write(empty, "srv/data.txt", "not an OS\n");
  struct vs_source *src = vs_source_open_dir(empty, &err);
  struct vs_feature *doc = vs_feature_new();
  ok(vs_extract(x, src, doc, NULL, &err) < 0 && err.code == ENOENT,
     "a tree without os-release, package database or passwd is refused (ENOENT)");
  ok(err.msg && strstr(err.msg, "no operating system found in ") &&
         strstr(err.msg, ": no /etc/os-release, no package database"),
     "saying no operating system was found (%s)", err.msg ? err.msg : "no message");
  ok(vs_feature_count(doc) == 0, "and adds nothing to the document");
  vs_err_clear(&err);
  vs_feature_free(doc);
  vs_source_free(src);
  static const char *const marks[][2] = {{"usr/lib/os-release", "ID=fedora\n"},
                                         {"var/lib/dpkg/status", ""},
                                         {"etc/passwd", "root:x:0:0::/root:/bin/sh\n"}};
  for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
    char *tree = fx_tmpdir();
    fx_write(tree, marks[i][0], marks[i][1]);
    src = vs_source_open_dir(tree, &err);
    doc = vs_feature_new();
    ok(vs_extract(x, src, doc, NULL, &err) == 0, "a tree with only /%s is an OS (%s)", marks[i][0],
       err.msg ? err.msg : "ok");
    vs_err_clear(&err);
    vs_feature_free(doc);
    vs_source_free(src);
    fx_rmtree(tree);
    free(tree);
  }
  fx_rmtree(empty);
  free(empty);
}

/* A guest older than os-release (RHEL and CentOS 6) is named by /etc/redhat-release: the
 * distribution's os-release ID and major.minor, as its successors' os-release would give. */
static void test_redhat_release(struct vs_extractor *x) {
  static const char *const cases[][4] = {
      {"CentOS release 6.10 (Final)\n", "centos", "6.10", "CentOS release 6.10 (Final)"},
      {"Red Hat Enterprise Linux Server release 7.9 (Maipo)\n", "rhel", "7.9", NULL},
      {"CentOS Linux release 7.9.2009 (Core)\n", "centos", "7.9", NULL},
      {"Rocky Linux release 9.3 (Blue Onyx)\n", "rocky", "9.3", NULL},
      {"Fedora release 38 (Thirty Eight)\n", "fedora", "38", NULL},
      {"Frobnix OS release 1.0\n", NULL, NULL, NULL}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct vs_err err = {0};
    char *tree = fx_tmpdir();
    fx_write(tree, "etc/redhat-release", cases[i][0]);
    fx_write(tree, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    struct vs_source *src = vs_source_open_dir(tree, &err);
    struct vs_feature *doc = vs_feature_new();
    ok(src && vs_extract(x, src, doc, NULL, &err) == 0, "a tree with only redhat-release extracts");
    is_str(vs_feature_os(doc, "distro"), cases[i][1], "\"%.*s\": distro %s",
           (int)strcspn(cases[i][0], "\n"), cases[i][0], cases[i][1] ? cases[i][1] : "absent");
    is_str(vs_feature_os(doc, "version"), cases[i][2], "and version %s",
           cases[i][2] ? cases[i][2] : "absent");
    if (cases[i][3]) {
      is_str(vs_feature_get(doc, "os:pretty_name"), cases[i][3], "the line is the pretty name");
      is_str(vs_feature_origin(doc, "os:distro"), "/etc/redhat-release", "with its provenance");
    }
    if (!cases[i][1]) {
      const char *path = NULL, *why = NULL;
      bool skipped = vs_feature_skipped(doc, 0, &path, &why);
      ok(skipped && strcmp(path, "/etc/redhat-release") == 0,
         "an unknown distribution's line is recorded as skipped (%s)", skipped ? why : "nothing");
    }
    vs_err_clear(&err);
    vs_feature_free(doc);
    vs_source_free(src);
    fx_rmtree(tree);
    free(tree);
  }
}

/* A directory the extractor lists and cannot (here /etc/sysctl.d is a file) is recorded as
 * skipped: its settings are missing, and the document says so instead of looking complete. A
 * directory that is simply not there is not. */
static void test_unlistable_dir(struct vs_extractor *x) {
  struct vs_err err = {0};
  char *tree = fx_tmpdir();
  fx_write(tree, "etc/os-release", "ID=debian\nVERSION_ID=12\n");
  fx_write(tree, "etc/sysctl.d", "not a directory\n");
  fx_write(tree, "etc/sysctl.conf", "vm.swappiness = 10\n");
  struct vs_source *src = vs_source_open_dir(tree, &err);
  struct vs_feature *doc = vs_feature_new();
  ok(src && vs_extract(x, src, doc, NULL, &err) == 0,
     "a tree whose /etc/sysctl.d is a file extracts");
  const char *path, *why;
  bool sysctl_d = false, other = false;
  for (size_t i = 0; vs_feature_skipped(doc, i, &path, &why); i++) {
    if (strcmp(path, "/etc/sysctl.d") == 0 && strstr(why, "not a directory"))
      sysctl_d = true;
    else
      other = true;
  }
  ok(sysctl_d, "/etc/sysctl.d is recorded as skipped, saying why");
  ok(!other, "the directories that are not there (/run/sysctl.d, /etc/systemd/system ...) are not");
  is_str(vs_feature_get(doc, "sysctl:vm.swappiness"), "10", "and /etc/sysctl.conf is still read");
  vs_err_clear(&err);
  vs_feature_free(doc);
  vs_source_free(src);
  fx_rmtree(tree);
  free(tree);
}

static void test_watch_entries(struct vs_watch *watch) {
  struct vs_err err = {0};
  ok(vs_watch_add(watch, "/etc/exports", NULL, &err) == 0,
     "a watch entry without a lens is accepted");
  ok(vs_watch_add(watch, "/etc/x", "no lens", &err) < 0 && strstr(err.msg, "Module.lens"),
     "a malformed lens name is refused with a hint");
  vs_err_clear(&err);
}

/* The value of KEY in DOC, WANT (NULL: absent). */
#define HAS(key, want)                                                                             \
  is_str(vs_feature_get(doc, key), want, "%s = %s", key, want ? want : "absent")

static void test_os_facts(const struct vs_feature *doc) {
  is_str(vs_feature_os(doc, "distro"), "debian", "distro comes from os-release ID, not a comment");
  is_str(vs_feature_os(doc, "version"), "12", "version from VERSION_ID, unquoted");
  is_str(vs_feature_os(doc, "pretty_name"), "Debian GNU/Linux 12 (bookworm)", "pretty name");
  is_str(vs_feature_os(doc, "id_like"), "rhel fedora", "single-quoted values unquote too");
  is_str(vs_feature_os(doc, "hostname"), "web-07", "hostname from /etc/hostname");
  is_str(vs_feature_os(doc, "arch"), "x86_64", "arch from dpkg's own architecture without a shell");
  HAS("os:distro", "debian");
  is_str(vs_feature_origin(doc, "os:distro"), "/etc/os-release", "os facts carry provenance");
}

static void test_packages(const struct vs_feature *doc, const struct vs_extract_stats *st) {
  HAS("pkg:openssh-server", "1:9.2p1-2+deb12u3");
  HAS("pkg:tzdata", "2024a-0+deb12u1");
  HAS("pkg:removed-pkg", NULL);
  HAS("pkg:libc6:i386", "2.36-9");
  ok(st->packages == 4, "4 installed packages counted (config-files state left out)");
  is_str(vs_feature_os(doc, "package_format"), "deb", "package format deb");
}

static void test_users_and_groups(const struct vs_feature *doc) {
  HAS("user:root:uid", "0");
  HAS("user:bob:shell", "/bin/zsh");
  HAS("user:www-data:home", "/var/www");
  HAS("user:root:password", "set");
  HAS("user:www-data:password", "locked");
  HAS("user:bob:password", "locked");
  HAS("user:bob:max_days", "90");
  HAS("group:sudo:members", "bob,alice");
  HAS("group:sudo:gid", "27");
  char *json = vs_feature_dumps(doc, false);
  ok(strstr(json, "hashhash") == NULL && strstr(json, "$6$") == NULL,
     "no password hash appears anywhere in the document");
  free(json);
}

static void test_services(const struct vs_feature *doc) {
  HAS("svc:ssh.service", "enabled");
  HAS("svc:apt-daily.timer", "enabled");
  HAS("svc:rsync.service", "masked");
  HAS("svc:nginx.service", "disabled");
  HAS("svc:static.service", NULL);
  HAS("svc:sshd.service", NULL);
  HAS("svc:legacy.service", "enabled");
}

static void test_sysctl_in_kernel_order(const struct vs_feature *doc) {
  HAS("sysctl:kernel.sysrq", "1");
  is_str(vs_feature_origin(doc, "sysctl:kernel.sysrq"), "/etc/sysctl.d/50-default.conf",
         "/etc/sysctl.d shadows a same-named file in /usr/lib/sysctl.d entirely");
  HAS("sysctl:net.ipv4.ip_forward", "1");
  HAS("sysctl:net.core.somaxconn", NULL);
  HAS("sysctl:vm.swappiness", "10");
}

static void test_files_through_augeas(const struct vs_feature *doc) {
  HAS("file:/etc/ssh/sshd_config:PermitRootLogin", "yes");
  HAS("file:/etc/ssh/sshd_config:Port", "2222");
  HAS("file:/etc/ssh/sshd_config:PasswordAuthentication", NULL);
  HAS("file:/etc/ssh/sshd_config:Subsystem/sftp", "/usr/lib/openssh/sftp-server");
  HAS("file:/etc/ssh/sshd_config:Match/Settings/X11Forwarding", "no");
  HAS("file:/etc/hosts:2/canonical", "web-07.example");
  HAS("file:/etc/sudoers:Defaults/env_reset", "");
  HAS("file:/etc/sudoers:spec/user", "root");
  HAS("file:/etc/exports:dir", "/srv");
  is_str(vs_feature_origin(doc, "file:/etc/hosts:2/ipaddr"), "/etc/hosts",
         "file settings carry their file as provenance");
}

static void test_file_meta(const struct vs_feature *doc, const struct vs_extract_stats *st) {
  HAS("meta:/etc/sudoers:mode", "0440");
  HAS("meta:/etc/sudoers:owner", "0:0");
  HAS("meta:/etc/hosts:sha256", "50cd3d46b9cd310e89cf1e4e087125417f913fe25abe0a69b8ef611a7df202a6");
  ok(vs_feature_get(doc, "meta:/etc/shadow:mode") &&
         !vs_feature_get(doc, "meta:/etc/shadow:sha256"),
     "shadow gets owner and mode but no digest");
  ok(st->files_parsed >= 4 && st->files_failed == 0, "every watched file parsed (%zu)",
     st->files_parsed);
  const char *p, *r;
  bool passwd_note = false;
  for (size_t i = 0; vs_feature_skipped(doc, i, &p, &r); i++) {
    diag("skipped %s: %s", p, r);
    passwd_note |= strcmp(p, "/etc/passwd") == 0 && strstr(r, "line 4");
  }
  ok(passwd_note, "a malformed passwd line is recorded with its line number");
}

/* A second tree through the same extractor: state does not leak between documents. */
static void test_second_tree_same_extractor(struct vs_extractor *x) {
  struct vs_err err = {0};
  char *root2 = fx_tmpdir();
  fx_write(root2, "etc/os-release", "ID=debian\n");
  fx_write(root2, "etc/ssh/sshd_config", "PermitRootLogin no\n");
  struct vs_source *src2 = vs_source_open_dir(root2, &err);
  struct vs_feature *doc2 = vs_feature_new();
  ok(vs_extract(x, src2, doc2, NULL, &err) == 0, "a second tree extracts with the same extractor");
  is_str(vs_feature_get(doc2, "file:/etc/ssh/sshd_config:PermitRootLogin"), "no",
         "it gets its own value");
  ok(vs_feature_get(doc2, "file:/etc/ssh/sshd_config:Port") == NULL &&
         vs_feature_get(doc2, "pkg:dpkg") == NULL,
     "and nothing of the first tree");
  vs_err_clear(&err);
  vs_feature_free(doc2);
  vs_source_free(src2);
  fx_rmtree(root2);
  free(root2);
}

int main(void) {
  plan_no_plan();
  char *root = fx_tmpdir();
  make_tree(root);
  struct vs_err err = {0};
  struct vs_source *src = vs_source_open_dir(root, &err);
  struct vs_watch *watch = vs_watch_new_default();
  test_watch_entries(watch);
  struct vs_extractor *x = vs_extractor_new(watch, &err);
  struct vs_feature *doc = vs_feature_new();
  struct vs_extract_stats st;
  ok(vs_extract(x, src, doc, &st, &err) == 0, "a tree extracts");
  test_os_facts(doc);
  test_packages(doc, &st);
  test_users_and_groups(doc);
  test_services(doc);
  test_sysctl_in_kernel_order(doc);
  test_files_through_augeas(doc);
  test_file_meta(doc, &st);
  test_second_tree_same_extractor(x);

  test_defaults(x);
  test_threads(root, watch, doc);
  test_no_os(x);
  test_redhat_release(x);
  test_unlistable_dir(x);
  vs_err_clear(&err);
  vs_feature_free(doc);
  vs_extractor_free(x);
  vs_watch_free(watch);
  vs_source_free(src);
  fx_rmtree(root);
  free(root);
  return done_testing();
}
