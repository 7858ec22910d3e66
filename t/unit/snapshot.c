/* snapshot.h's promises, on libvirt's test driver with disk images made here (mke2fs -d, then
 * qemu-img convert): a domain's document is its XML's vm: settings plus the guest read from
 * its disks, in the formats the XML gives, read-only and without a lock; the document is the
 * disk as it was when taken; a domain with no disk still gives a document; a disk that cannot
 * be read is an error naming the domain; backup mode reads a stopped domain as readonly mode
 * does, and a backup job that cannot begin leaves nothing behind. */
#include "fixture.h"
#include "snapshot.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAKEN_AT 1700000000 /* 2023-11-14T22:13:20Z */

/* DIR/NAME.raw, a whole-disk ext4 file system holding a Debian guest whose sshd listens on
 * PORT, and DIR/NAME.qcow2, the same as qcow2. Bails out when the tools are missing. */
static void make_images(const char *dir, const char *name, const char *port) {
  char tree[4096], raw[4096], qcow2[4096], sshd[64];
  snprintf(tree, sizeof(tree), "%s/tree-%s", dir, name);
  snprintf(raw, sizeof(raw), "%s/%s.raw", dir, name);
  snprintf(qcow2, sizeof(qcow2), "%s/%s.qcow2", dir, name);
  snprintf(sshd, sizeof(sshd), "PermitRootLogin no\nPort %s\n", port);
  fx_write(tree, "etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
  fx_write(tree, "etc/hostname", "web-01\n");
  fx_write(tree, "etc/ssh/sshd_config", sshd);
  fx_write(tree, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
  fx_write(tree, "var/lib/dpkg/status",
           "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2\n");
  unlink(raw);
  unlink(qcow2);
  char *mke2fs[] = {"mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, raw, "16M", NULL};
  char *convert[] = {"qemu-img", "convert", "-O", "qcow2", raw, qcow2, NULL};
  if (fx_run(mke2fs) != 0 || fx_run(convert) != 0) {
    printf("Bail out! cannot make the images (mke2fs -d, qemu-img convert)\n");
    exit(1);
  }
  fx_rmtree(tree);
}

/* One domain of the test driver's node XML: DISK is its devices' XML. */
static void add_domain(struct vs_buf *xml, const char *name, int uuid_tail, const char *disk) {
  vs_buf_addf(xml,
              " <domain type='test'>\n"
              "  <name>%s</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e19%02d</uuid>\n"
              "  <memory unit='MiB'>512</memory><vcpu>2</vcpu><os><type>hvm</type></os>\n"
              "  <devices>%s</devices>\n"
              " </domain>\n",
              name, uuid_tail, disk);
}

static char *file_disk(const char *format, const char *path) {
  return vs_xasprintf("<disk type='file' device='disk'><driver name='qemu' type='%s'/>"
                      "<source file='%s'/><target dev='vda' bus='virtio'/></disk>",
                      format, path);
}

/* The node XML: one domain per case, each named for what it holds. */
static char *node_xml(const char *dir) {
  struct vs_buf xml = {0};
  vs_buf_adds(&xml, "<node>\n");
  struct {
    const char *name, *format, *file;
  } disks[] = {{"raw", "raw", "web.raw"},
               {"qcow2", "qcow2", "web.qcow2"},
               {"qcow2-said-raw", "raw", "web.qcow2"},
               {"missing", "raw", "gone.raw"},
               {"zeros", "raw", "zeros.raw"}};
  for (size_t i = 0; i < sizeof(disks) / sizeof(disks[0]); i++) {
    char *path = vs_xasprintf("%s/%s", dir, disks[i].file);
    char *disk = file_disk(disks[i].format, path);
    add_domain(&xml, disks[i].name, (int)i, disk);
    free(disk);
    free(path);
  }
  add_domain(&xml, "no-disk", 10, "");
  add_domain(&xml, "network-only", 11,
             "<disk type='network' device='disk'><source protocol='rbd' name='pool/img'/>"
             "<target dev='vdb' bus='virtio'/></disk>");
  vs_buf_adds(&xml, "</node>\n");
  return xml.data;
}

static const struct vs_domain *find(const struct vs_domain *doms, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(doms[i].name, name) == 0) return &doms[i];
  printf("Bail out! the test driver has no domain %s\n", name);
  exit(1);
}

/* The names in DIR, sorted and joined by spaces ("" when empty), for comparing before/after. */
static char *listing(const char *dir) {
  struct dirent **names;
  int n = scandir(dir, &names, NULL, alphasort);
  struct vs_buf b = {0};
  vs_buf_adds(&b, "");
  for (int i = 0; i < n; i++) {
    if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0)
      vs_buf_addf(&b, "%s ", names[i]->d_name);
    free(names[i]);
  }
  if (n >= 0) free(names);
  return b.data;
}

static int open_fds(void) {
  char *l = listing("/proc/self/fd");
  int n = 0;
  for (const char *p = l; *p; p++)
    n += *p == ' ';
  free(l);
  return n;
}

struct env {
  const char *dir, *uri;
  struct vs_virt *v;
  const struct vs_domain *doms;
  size_t n;
  struct vs_extractor *x;
  struct vs_snapshot_opts readonly;
};

static struct vs_feature *take(const struct env *e, const char *name,
                               const struct vs_snapshot_opts *o, struct vs_snapshot_stats *st,
                               struct vs_err *err) {
  return vs_snapshot_domain(e->v, find(e->doms, e->n, name), e->x, o, TAKEN_AT, st, err);
}

/* A domain on a raw and on a qcow2 disk: the guest, the VM, the document's identity. */
static void test_read(const struct env *e) {
  struct vs_err err = {0};
  struct vs_snapshot_stats st;
  struct vs_feature *doc = take(e, "raw", &e->readonly, &st, &err);
  ok(doc != NULL, "a domain on a raw disk gives a document (%s)", doc ? "ok" : vs_err_msg(&err));
  vs_err_clear(&err);
  if (!doc) return;
  is_str(vs_feature_get(doc, "file:/etc/ssh/sshd_config:Port"), "22",
         "with the guest's settings read from the disk");
  is_str(vs_feature_get(doc, "pkg:openssh-server"), "1:9.2p1-2", "and its packages");
  is_str(vs_feature_os(doc, "distro"), "debian", "and its OS");
  is_str(vs_feature_get(doc, "vm:vcpu"), "2", "and the VM's own settings from its XML (vm:)");
  is_str(vs_feature_id(doc), "6695eb01-f6a4-8304-79aa-97f2502e1900", "its id is the domain's UUID");
  is_str(vs_feature_name(doc), "raw", "its name the domain's name");
  is_str(vs_feature_taken_at(doc), "2023-11-14T22:13:20Z", "its time the one given");
  is_str(vs_feature_source(doc, "kind"), "domain", "its source is a domain");
  char *raw = vs_xasprintf("%s/web.raw", e->dir);
  is_str(vs_feature_source(doc, "path"), raw, "read from the disk's path");
  free(raw);
  is_str(st.backend, "direct", "the stats say which backend read it");
  ok(st.packages == 1 && !st.backup && !st.quiesced && st.seconds > 0,
     "one package, no backup job, and how long it took");

  struct vs_feature *q = take(e, "qcow2", &e->readonly, &st, &err);
  ok(q != NULL, "the same guest on a qcow2 disk gives a document (%s)",
     q ? "ok" : vs_err_msg(&err));
  vs_err_clear(&err);
  size_t n_raw = vs_feature_count(doc), n_q = q ? vs_feature_count(q) : 0;
  bool same = q && n_raw == n_q;
  size_t nk;
  const char **keys = vs_feature_keys(doc, &nk);
  for (size_t i = 0; same && i < nk; i++) {
    const char *other = vs_feature_get(q, keys[i]);
    same = strncmp(keys[i], "vm:", 3) == 0 ||
           (other && strcmp(other, vs_feature_get(doc, keys[i])) == 0);
  }
  free(keys);
  ok(same, "with the guest settings the raw disk gives (%zu and %zu settings)", n_raw, n_q);
  is_str(q ? vs_feature_get(q, "vm:devices/disk[vda]/format") : NULL, "qcow2",
         "and its disk's format among the VM's settings");
  vs_feature_free(q);
  vs_feature_free(doc);
}

/* Formats come from the XML: a qcow2 file the XML calls raw is read as raw bytes (as a guest
 * that wrote a qcow2 header into its raw disk would be), never through the qcow2 layer. */
static void test_formats(const struct env *e) {
  struct vs_err err = {0};
  struct vs_feature *doc = take(e, "qcow2-said-raw", &e->readonly, NULL, &err);
  ok(doc == NULL, "a qcow2 file the domain XML says is raw is not read as qcow2");
  ok(strstr(vs_err_msg(&err), "domain qcow2-said-raw") != NULL, "the error names the domain: %s",
     vs_err_msg(&err));
  vs_err_clear(&err);
  vs_feature_free(doc);
}

/* What cannot be read is an error naming the domain; what there is not to read is a document. */
static void test_errors(const struct env *e) {
  struct vs_err err = {0};
  struct vs_feature *doc = take(e, "missing", &e->readonly, NULL, &err);
  ok(doc == NULL && strstr(vs_err_msg(&err), "domain missing") &&
         strstr(vs_err_msg(&err), "gone.raw"),
     "a disk file that does not exist is an error naming the domain and the disk: %s",
     vs_err_msg(&err));
  vs_err_clear(&err);
  vs_feature_free(doc);

  struct vs_snapshot_opts direct = e->readonly;
  direct.backend = VS_BACKEND_DIRECT;
  doc = take(e, "zeros", &direct, NULL, &err);
  ok(doc == NULL && strstr(vs_err_msg(&err), "domain zeros"),
     "with backend direct, a disk with no file system it reads is an error, not a libguestfs "
     "fallback: %s",
     vs_err_msg(&err));
  vs_err_clear(&err);
  vs_feature_free(doc);

  struct vs_snapshot_stats st;
  doc = take(e, "no-disk", &e->readonly, &st, &err);
  ok(doc != NULL, "a domain with no disk still gives a document");
  const char *path = "", *reason = "";
  bool skipped = doc && vs_feature_skipped(doc, 0, &path, &reason);
  ok(skipped && strcmp(path, "vm:disks") == 0, "which says in skipped why no guest was read: %s",
     reason);
  is_str(doc ? vs_feature_get(doc, "vm:memory") : NULL, "524288", "with its vm: settings");
  is_str(st.backend, "none", "and the stats say no backend read a disk");
  vs_feature_free(doc);

  doc = take(e, "network-only", &e->readonly, NULL, &err);
  path = reason = "";
  skipped = doc && vs_feature_skipped(doc, 0, &path, &reason);
  ok(skipped && strcmp(path, "vm:disks") == 0 && strstr(reason, "not read") &&
         strstr(reason, "vdb"),
     "a domain whose only disk is on the network gives a document that names that disk as not "
     "read: %s",
     doc ? reason : vs_err_msg(&err));
  vs_err_clear(&err);
  vs_feature_free(doc);

  struct vs_domain broken = {.name = "broken",
                             .uuid = "6695eb01-f6a4-8304-79aa-97f2502e1999",
                             .xml = "<domain><name>broken"};
  doc = vs_snapshot_domain(e->v, &broken, e->x, &e->readonly, TAKEN_AT, NULL, &err);
  ok(doc == NULL && err.msg, "a domain XML that does not parse is an error: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_feature_free(doc);
}

/* Backup mode: a stopped domain is read as readonly mode reads it; a running one needs a backup
 * job, which the test driver cannot begin: an error, with nothing left in the backup directory. */
static void test_backup(const struct env *e) {
  struct vs_err err = {0};
  struct vs_snapshot_opts backup = e->readonly;
  backup.mode = VS_SNAPSHOT_BACKUP;
  char *bk = vs_xasprintf("%s/bk", e->dir);
  fx_mkdir(e->dir, "bk");
  backup.backup_dir = bk;

  struct vs_domain stopped = *find(e->doms, e->n, "raw");
  stopped.active = false;
  struct vs_snapshot_stats st;
  struct vs_feature *doc = vs_snapshot_domain(e->v, &stopped, e->x, &backup, TAKEN_AT, &st, &err);
  ok(doc && !st.backup && strcmp(st.backend, "direct") == 0,
     "backup mode reads a stopped domain's disks as readonly mode does, with no job (%s)",
     doc ? "ok" : vs_err_msg(&err));
  is_str(doc ? vs_feature_get(doc, "file:/etc/ssh/sshd_config:Port") : NULL, "22",
         "and gives its guest's settings");
  vs_err_clear(&err);
  vs_feature_free(doc);

  /* Read-write, as backup jobs need (and the CLI opens for --mode backup). */
  struct vs_virt *rw = vs_virt_open(e->uri, false, &err);
  ok(rw != NULL, "the test driver opens read-write too (%s)", rw ? "ok" : vs_err_msg(&err));
  vs_err_clear(&err);
  doc = rw ? vs_snapshot_domain(rw, find(e->doms, e->n, "raw"), e->x, &backup, TAKEN_AT, &st, &err)
           : NULL;
  vs_virt_close(rw);
  ok(doc == NULL && strstr(vs_err_msg(&err), "domain raw (backup)"),
     "a running domain whose backup job cannot begin is an error naming the domain: %s",
     vs_err_msg(&err));
  vs_err_clear(&err);
  vs_feature_free(doc);
  char *left = listing(bk);
  is_str(left, "", "and the job's directory, socket and scratch files are not left behind");
  free(left);

  backup.backend = VS_BACKEND_GUESTFS;
  doc = take(e, "raw", &backup, NULL, &err);
  ok(doc == NULL && err.code == ENOTSUP && strstr(vs_err_msg(&err), "guestfs backend"),
     "the guestfs backend is refused for backup exports, before any job: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_feature_free(doc);
  free(bk);
}

/* Readonly mode leaves the disk as it was, takes no lock (a running QEMU holds its images'), and
 * the document is the disk as it was when taken. */
static void test_point_in_time(const struct env *e) {
  struct vs_err err = {0};
  char *raw = vs_xasprintf("%s/web.raw", e->dir);
  /* A write lock over the whole file, on an open file description of its own: any lock the
   * reader tried to take would conflict with it, as with QEMU's. */
  int fd = open(raw, O_RDWR);
  struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  ok(fd >= 0 && fcntl(fd, F_OFD_SETLK, &lk) == 0, "the raw disk is write-locked, as QEMU does");
  struct stat before, after;
  stat(raw, &before);
  char *listed = listing(e->dir);
  int fds = open_fds();
  struct vs_feature *first = take(e, "raw", &e->readonly, NULL, &err);
  ok(first != NULL, "readonly mode reads the locked disk (%s)", first ? "ok" : vs_err_msg(&err));
  vs_err_clear(&err);
  stat(raw, &after);
  ok(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
         before.st_mtim.tv_nsec == after.st_mtim.tv_nsec && before.st_size == after.st_size,
     "and leaves it unmodified");
  char *listed_after = listing(e->dir);
  is_str(listed_after, listed, "and leaves no file behind next to it");
  ok(open_fds() == fds, "and no file descriptor open");
  free(listed_after);
  free(listed);
  if (fd >= 0) close(fd);

  make_images(e->dir, "web", "2222"); /* the guest changes its sshd port */
  struct vs_feature *second = take(e, "raw", &e->readonly, NULL, &err);
  vs_err_clear(&err);
  is_str(first ? vs_feature_get(first, "file:/etc/ssh/sshd_config:Port") : NULL, "22",
         "a document keeps what the disk held when it was taken");
  is_str(second ? vs_feature_get(second, "file:/etc/ssh/sshd_config:Port") : NULL, "2222",
         "and the next snapshot sees the change");
  vs_feature_free(second);
  vs_feature_free(first);
  free(raw);
}

int main(void) {
  plan_no_plan();
  char *dir = fx_tmpdir();
  make_images(dir, "web", "22");
  static const char zeros[65536];
  fx_write_bytes(dir, "zeros.raw", zeros, sizeof(zeros));
  char *xml = node_xml(dir);
  fx_write(dir, "node.xml", xml);
  free(xml);
  char *uri = vs_xasprintf("test://%s/node.xml", dir);
  struct vs_err err = {0};
  struct env e = {.dir = dir, .uri = uri, .readonly = {.mode = VS_SNAPSHOT_READONLY}};
  struct vs_domain *doms = NULL;
  struct vs_watch *watch = vs_watch_new_default();
  e.v = vs_virt_open(uri, true, &err);
  e.x = vs_extractor_new(watch, &err);
  if (!e.v || !e.x || vs_virt_domains(e.v, &doms, &e.n, &err) < 0) {
    printf("Bail out! %s\n", vs_err_msg(&err));
    return 1;
  }
  e.doms = doms;
  test_read(&e);
  test_formats(&e);
  test_errors(&e);
  test_backup(&e);
  test_point_in_time(&e);
  vs_domains_free(doms, e.n);
  vs_extractor_free(e.x);
  vs_watch_free(watch);
  vs_virt_close(e.v);
  free(uri);
  fx_rmtree(dir);
  free(dir);
  return done_testing();
}
