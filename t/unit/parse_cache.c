#include "extract.h"
#include "fixture.h"
#include "parse_cache.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char sshd[] = "#PermitRootLogin prohibit-password\n#Port 22\nUsePAM yes\n"
                           "X11Forwarding no\nMatch User backup\n  PasswordAuthentication no\n";

/* A guest with parsed files of several lenses, one of which does not parse. */
static char *make_guest(void) {
  char *root = fx_tmpdir();
  fx_write(root, "etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
  fx_write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
  fx_write(root, "etc/ssh/sshd_config", sshd);
  fx_write(root, "etc/sudoers", "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n");
  fx_write(root, "etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost\n");
  fx_write(root, "etc/fstab", "this is = not [ an fstab\n");
  return root;
}

/* ROOT's document as JSON, extracted with CACHE (may be NULL); its stats in *ST. */
static char *inspect(const char *root, struct vs_parse_cache *cache, struct vs_extract_stats *st) {
  struct vs_err err = {0};
  struct vs_extractor *x = vs_extractor_new(NULL, &err);
  vs_extractor_set_parse_cache(x, cache);
  struct vs_source *src = vs_source_open_dir(root, &err);
  struct vs_feature *doc = vs_feature_new();
  char *json = NULL;
  if (src && vs_extract(x, src, doc, st, &err) == 0)
    json = vs_feature_dumps(doc, false);
  else
    diag("extract: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_feature_free(doc);
  vs_source_free(src);
  vs_extractor_free(x);
  return json;
}

/* Calls FN(DIR/B/NAME) for every entry of the cache in DIR; returns how many. */
static size_t each_entry(const char *dir, void (*fn)(const char *path)) {
  size_t n = 0;
  for (int b = 0; b < 16; b++) {
    char *bucket = vs_xasprintf("%s/%x", dir, b);
    DIR *d = opendir(bucket);
    struct dirent *e;
    while (d && (e = readdir(d)))
      if (e->d_name[0] != '.') {
        char *path = vs_xasprintf("%s/%s", bucket, e->d_name);
        if (fn) fn(path);
        free(path);
        n++;
      }
    if (d) closedir(d);
    free(bucket);
  }
  return n;
}

static void corrupt(const char *path) {
  FILE *f = fopen(path, "r+");
  if (!f) return;
  fseek(f, -1, SEEK_END); /* the payload's last byte: its digest no longer matches */
  int c = fgetc(f);
  fseek(f, -1, SEEK_END);
  fputc(c ^ 0x20, f);
  fclose(f);
}

static void truncate_entry(const char *path) {
  if (truncate(path, 20) < 0) diag("truncate %s: %s", path, strerror(errno));
}

static void test_documents(void) {
  char *root = make_guest(), *dir = fx_tmpdir(), *cdir = vs_xasprintf("%s/cache", dir);
  struct vs_err err = {0};
  struct vs_parse_cache *cache = vs_parse_cache_open(cdir, &err);
  ok(cache != NULL, "a missing cache directory is made");
  struct stat st;
  ok(stat(cdir, &st) == 0 && (st.st_mode & 0777) == 0700, "with mode 0700");
  struct vs_extract_stats s0, s1, s2, s3;
  char *plain = inspect(root, NULL, &s0), *cold = inspect(root, cache, &s1),
       *warm = inspect(root, cache, &s2);
  ok(plain && cold && warm, "the guest extracts with no cache, a cold one and a warm one");
  is_str(cold, plain, "a cold cache gives the very document no cache gives");
  is_str(warm, plain, "a hit gives the very document a parse gives (JSON compared byte for byte)");
  ok(strstr(plain, "not parsed with Fstab.lns") != NULL, "(the fixture's fstab does not parse)");
  ok(s1.files_cached == 0 && s1.files_parsed == 3 && s1.files_failed == 1,
     "cold: 3 files parsed, 1 failed, none from the cache");
  ok(s2.files_cached == 4 && s2.files_parsed == 3 && s2.files_failed == 1,
     "warm: the same counts, all 4 answered by the cache (a failure too)");
  is_num((double)each_entry(cdir, NULL), 4, "one entry per parsed file");

  fx_write(root, "etc/ssh/sshd_config", "PermitRootLogin yes\n");
  char *changed = inspect(root, cache, &s3);
  ok(s3.files_cached == 3, "a changed file misses; the 3 others hit");
  ok(changed && strstr(changed, "\"file:/etc/ssh/sshd_config:PermitRootLogin\":\"yes\""),
     "and the document holds the changed file's settings");
  free(changed);
  fx_write(root, "etc/ssh/sshd_config", sshd);

  each_entry(cdir, corrupt);
  char *after = inspect(root, cache, &s3);
  is_str(after, plain, "entries whose payload was changed are ignored: the document is right");
  ok(s3.files_cached == 0, "none of them counted as a hit");
  free(after);
  after = inspect(root, cache, &s3);
  ok(s3.files_cached == 4, "they were rewritten: the next run hits again");
  free(after);
  each_entry(cdir, truncate_entry);
  after = inspect(root, cache, &s3);
  ok(after && strcmp(after, plain) == 0 && s3.files_cached == 0,
     "truncated entries are ignored too, the document unchanged");
  free(after);
  vs_parse_cache_free(cache);

  free(plain);
  free(cold);
  free(warm);
  fx_rmtree(root);
  fx_rmtree(dir);
  free(root);
  free(dir);
  free(cdir);
}

static void test_trust(void) {
  char *dir = fx_tmpdir();
  struct vs_err err = {0};
  ok(chmod(dir, 0755) == 0, "(a cache directory others can read)");
  struct vs_parse_cache *c = vs_parse_cache_open(dir, &err);
  ok(c == NULL && strstr(vs_err_msg(&err), "mode 0755"),
     "a cache directory open to other users is refused: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_parse_cache_free(c);
  chmod(dir, 0700);
  if (geteuid() == 0) {
    ok(chown(dir, 1, 1) == 0, "(the cache directory given to uid 1)");
    c = vs_parse_cache_open(dir, &err);
    ok(c == NULL && strstr(vs_err_msg(&err), "owned by uid 1"),
       "a cache directory of another user is refused: %s", vs_err_msg(&err));
    vs_err_clear(&err);
    vs_parse_cache_free(c);
    if (chown(dir, 0, 0) < 0) diag("chown back: %s", strerror(errno));
  } else {
    skip(2, "changing a directory's owner needs root");
  }
  char *link = vs_xasprintf("%s.link", dir);
  ok(symlink(dir, link) == 0, "(a symbolic link to the cache directory)");
  c = vs_parse_cache_open(link, &err);
  ok(c == NULL, "a symbolic link as the cache directory is refused: %s", vs_err_msg(&err));
  vs_err_clear(&err);
  vs_parse_cache_free(c);
  unlink(link);
  free(link);

  /* An entry that is a symbolic link to a valid entry elsewhere is not read. */
  char *other = fx_tmpdir();
  struct vs_parse_cache *a = vs_parse_cache_open(dir, &err), *b = vs_parse_cache_open(other, &err);
  unsigned char key[VS_PARSE_CACHE_KEY_LEN];
  vs_parse_cache_key(key, "Hosts.lns", "/etc/hosts", "x", 1, "1.14.0", 1);
  vs_parse_cache_put(b, key, "payload", 7);
  size_t len = 0;
  char *got = vs_parse_cache_get(b, key, &len);
  ok(got && len == 7 && memcmp(got, "payload", 7) == 0, "a put is read back");
  free(got);
  char hex[65];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", key[i]);
  char *target = vs_xasprintf("%s/%c/%s", other, hex[0], hex),
       *bucket = vs_xasprintf("%s/%c", dir, hex[0]), *planted = vs_xasprintf("%s/%s", bucket, hex);
  mkdir(bucket, 0700);
  ok(symlink(target, planted) == 0, "(an entry planted as a symbolic link)");
  ok(vs_parse_cache_get(a, key, &len) == NULL, "an entry that is a symbolic link is not read");
  unsigned char key2[VS_PARSE_CACHE_KEY_LEN];
  vs_parse_cache_key(key2, "Hosts.lns", "/etc/hosts", "y", 1, "1.14.0", 1);
  ok(memcmp(key, key2, sizeof(key)) != 0, "another content is another key");
  vs_parse_cache_key(key2, "Hosts.lns", "/etc/hosts", "x", 1, "1.14.1", 1);
  ok(memcmp(key, key2, sizeof(key)) != 0, "another Augeas version is another key");
  vs_parse_cache_key(key2, "Hosts.lns", "/etc/hosts", "x", 1, "1.14.0", 2);
  ok(memcmp(key, key2, sizeof(key)) != 0, "another schema is another key");
  vs_parse_cache_free(a);
  vs_parse_cache_free(b);
  free(target);
  free(bucket);
  free(planted);
  fx_rmtree(other);
  free(other);
  fx_rmtree(dir);
  free(dir);
}

static uint64_t cache_bytes(const char *dir) {
  uint64_t total = 0;
  for (int b = 0; b < 16; b++) {
    char *bucket = vs_xasprintf("%s/%x", dir, b);
    DIR *d = opendir(bucket);
    struct dirent *e;
    struct stat st;
    while (d && (e = readdir(d)))
      if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0)
        total += (uint64_t)st.st_blocks * 512;
    if (d) closedir(d);
    free(bucket);
  }
  return total;
}

static void test_bound(void) {
  char *dir = fx_tmpdir();
  struct vs_err err = {0};
  struct vs_parse_cache *c = vs_parse_cache_open(dir, &err);
  const uint64_t limit = 16 * 64 * 1024; /* 1 MiB: 64 KiB a bucket */
  vs_parse_cache_set_limit(c, limit);
  static char payload[3000];
  memset(payload, 'x', sizeof(payload));
  unsigned char first[VS_PARSE_CACHE_KEY_LEN], key[VS_PARSE_CACHE_KEY_LEN];
  size_t len = 0;
  for (int i = 0; i < 2000; i++) {
    char path[32];
    snprintf(path, sizeof(path), "/etc/f%d", i);
    vs_parse_cache_key(i ? key : first, "Hosts.lns", path, "", 0, "1.14.0", 1);
    vs_parse_cache_put(c, i ? key : first, payload, sizeof(payload));
  }
  uint64_t bytes = cache_bytes(dir);
  ok(bytes <= limit, "2,000 entries of 3 KB (8 MB) were pruned to the 1 MiB limit (%llu bytes)",
     (unsigned long long)bytes);
  ok(bytes >= limit / 2, "and not far under it");
  char *got = vs_parse_cache_get(c, key, &len);
  ok(got != NULL, "the newest entry is kept");
  free(got);
  ok(vs_parse_cache_get(c, first, &len) == NULL, "the oldest is gone");
  static char big[VS_PARSE_CACHE_MAX_ENTRY + 1];
  vs_parse_cache_key(key, "Hosts.lns", "/etc/big", "", 0, "1.14.0", 1);
  vs_parse_cache_put(c, key, big, sizeof(big));
  ok(vs_parse_cache_get(c, key, &len) == NULL, "an entry over the size cap is not stored");
  vs_parse_cache_free(c);
  fx_rmtree(dir);
  free(dir);
}

int main(void) {
  test_documents();
  test_trust();
  test_bound();
  return done_testing();
}
