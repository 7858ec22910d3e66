/* fleet_scale URL PASSWORD_FILE POSTMASTER_PID VMS KEYS HOSTS[,HOSTS...]: how the fleet store
 * (store.h) scales with the number of hosts, against a real PostgreSQL (bench/fleet-scale.sh
 * starts one). URL reaches the server without a database name (postgresql://ROLE@HOST:PORT/);
 * the role may create databases.
 *
 * For each fleet size, in a fresh database: HOSTS hosts of VMS VMs each, with the synthetic
 * documents of bench/drift_scale.c (KEYS settings; three roles, the VMs of each role spread
 * across the hosts) and a previous snapshot each (a tenth of the VMs changed one key since:
 * a rollout). Every host publishes its VMs (vs_store_publish_vms, one store connection each);
 * the fleet is read back once (vs_store_load), prepared and ranked on two threads, and every
 * host publishes its VMs' findings: the store as a fleet's first round leaves it. Then, timed:
 *   1. the elected host's refresh (host 0), the first after its election: vs_store_round_view
 *      reading the whole fleet (publish its VMs, read every VM's rows, prepare the view), the
 *      ranking of its own VMs and their findings, vs_fleet_find, vs_store_publish_fleet and
 *      vs_store_publish_context (the context the other hosts rank from);
 *  1b. its next refresh, the same, after every host published again with a tenth of its VMs
 *      changed (a new snapshot, one key new): the rows whose fingerprint did not change, and
 *      what the prepare worked out of them, are kept from the refresh before;
 *   2. another host's round (host 1) from that context, three times, the median reported
 *      (vs_store_round_view: publish its VMs, read its VMs' parts, their groups' and the
 *      fleet's, prepare a view of its own VMs; the ranking of its VMs, each checked equal to
 *      the whole view's; vs_store_publish_findings), after the whole view and host 0's kept
 *      rows are freed, as on a host that is not elected;
 *   3. the database's size (pg_database_size) and bytes per VM;
 *   4. PostgreSQL's CPU seconds for 1, 1b and 2: the run time of the postmaster and its live
 *      children (/proc/PID/schedstat, in ns), and of those that ended (the postmaster's cutime
 *      + cstime, in ticks).
 * The peer, measured in the same run: PostgreSQL's own bulk path, COPY FROM STDIN of the same
 * rows (made from the same documents) into a table like vmscope_vms, against the store's
 * publish of one host's VMs; and COPY TO STDOUT of the fleet's rows against vs_store_load.
 * At the end: the table, the growth per 10x hosts (from the last two sizes) and, labelled as
 * such, the extrapolation to 1,000 hosts, or the figures measured there when 1,000 hosts is
 * the last size. */
#include "baseline.h"
#include "fleetfind.h"
#include "fleetview.h"
#include "store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZES 16
#define THREADS 2
#define ROUNDS 3      /* host 1's rounds, of which the median is reported */
#define FRESH 3       /* host 1's fresh clients (each sends every VM), the median reported */
#define CHANGED_VMS 3 /* i % 10: the VMs that take a new snapshot between two refreshes */

static void die(const char *what, const char *why) {
  fprintf(stderr, "fleet_scale: %s: %s\n", what, why);
  exit(1);
}

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static const char *const namespaces[] = {"file:/etc/app/conf%zu.conf:setting",
                                         "pkg:package-",
                                         "sysctl:net.core.param",
                                         "svc:unit-",
                                         "meta:/etc/f",
                                         "user:u"};

/* Setting K's key. */
static void key_name(size_t k, char *key, size_t size) {
  const char *ns = namespaces[k % 6];
  if (k % 6 == 0)
    snprintf(key, size, ns, k / 60);
  else
    snprintf(key, size, "%s", ns);
  size_t kl = strlen(key);
  snprintf(key + kl, size - kl, "%zu", k);
}

/* VM I's newest document (bench/drift_scale.c's, with an id, OS facts and a time), or its
 * previous snapshot an hour before (PREVIOUS): every tenth VM changed key 9 since. */
static struct vs_feature *make_doc(size_t i, size_t keys, int64_t now, bool previous) {
  struct vs_feature *d = vs_feature_new();
  char id[64], name[32], key[96], value[64];
  snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012zx", i);
  snprintf(name, sizeof(name), "vm-%06zu", i);
  vs_feature_set_id(d, id, name);
  vs_feature_set_taken_at(d, previous ? now - 3600 : now);
  vs_feature_set_source(d, "domain", name, "direct");
  vs_feature_set_os(d, "type", "linux");
  vs_feature_set_os(d, "distro", "debian");
  vs_feature_set_os(d, "version", "12");
  vs_feature_set_os(d, "hostname", name);
  vs_feature_set_os(d, "arch", "x86_64");
  vs_feature_set_os(d, "package_format", "deb");
  unsigned role = (unsigned)(mix(i * 7919 + 1) % 3);
  for (size_t k = 0; k < keys; k++) {
    uint64_t h = mix((uint64_t)i * 1000003ULL + k);
    key_name(k, key, sizeof(key));
    unsigned bucket = (unsigned)(k % 100);
    if (previous && k == 9 && i % 10 == 0) {
      snprintf(value, sizeof(value), "value-old");
    } else if (bucket < 1) { /* differs everywhere */
      snprintf(value, sizeof(value), "%016llx", (unsigned long long)h);
    } else if (bucket < 3) { /* set on some VMs only */
      if (h % 4 == 0) continue;
      snprintf(value, sizeof(value), "on");
    } else if (bucket < 8) { /* follows the role */
      snprintf(value, sizeof(value), "role-%u-%zu", role, k % 7);
    } else if (h % 100 < 97) {
      snprintf(value, sizeof(value), "value-%zu", k % 13);
    } else {
      snprintf(value, sizeof(value), "deviant-%u", (unsigned)(h % 3));
    }
    vs_feature_set(d, key, value, NULL);
  }
  return d;
}

/* Host H's pool: its VMS VMs, newest and previous documents, VM i on host i / VMS. */
static struct vs_view *make_local(size_t h, size_t vms, size_t keys, int64_t now) {
  struct vs_view *v = vs_view_new();
  for (size_t i = h * vms; i < (h + 1) * vms; i++) {
    vs_view_add(v, make_doc(i, keys, now, true));
    vs_view_add(v, make_doc(i, keys, now, false));
  }
  return v;
}

/* Whether VM I took a new snapshot between the two refreshes of the steady state. */
static bool changes(size_t i) {
  return i % 10 == CHANGED_VMS;
}

/* Host H's pool a refresh later: a tenth of the VMs (changes) took a new snapshot, five
 * minutes after the newest, with key 11 set to a new value; the others are as they were. */
static struct vs_view *make_local_next(size_t h, size_t vms, size_t keys, int64_t now) {
  struct vs_view *v = vs_view_new();
  char key[96];
  key_name(11, key, sizeof(key));
  for (size_t i = h * vms; i < (h + 1) * vms; i++) {
    vs_view_add(v, make_doc(i, keys, now, !changes(i)));
    struct vs_feature *next = make_doc(i, keys, now, false);
    if (changes(i)) {
      vs_feature_set_taken_at(next, now + 300);
      vs_feature_set(next, key, "value-next", NULL);
    }
    vs_view_add(v, next);
  }
  return v;
}

/* Host H's pool after make_local_next's, every VM snapshotted again an hour later, finding
 * nothing changed: the newest of make_local_next is the previous. */
static struct vs_view *make_local_retaken(size_t h, size_t vms, size_t keys, int64_t now) {
  struct vs_view *next = make_local_next(h, vms, keys, now), *v = vs_view_new();
  for (size_t i = 0; i < vs_view_count(next); i++) {
    const struct vs_feature *newest = vs_view_doc(next, i);
    char *text = vs_feature_dumps(newest, false);
    struct vs_err err = {0};
    struct vs_feature *again = vs_feature_loads(text, strlen(text), "retaken", &err);
    if (!again) die("a document taken again", vs_err_msg(&err));
    free(text);
    struct tm tm = {0};
    if (!strptime(vs_feature_taken_at(newest), "%Y-%m-%dT%H:%M:%SZ", &tm))
      die("a document taken again", vs_feature_taken_at(newest));
    vs_feature_set_taken_at(again, (int64_t)timegm(&tm) + 3600);
    vs_view_add(v, vs_feature_ref((struct vs_feature *)newest)); /* held, not changed */
    vs_view_add(v, again);
  }
  vs_view_free(next);
  return v;
}

static char *host_name(size_t h) {
  return vs_xasprintf("host-%04zu", h);
}

/* The host a VM's id says it is on (its index / VMS). */
static size_t host_of(const char *id, size_t vms) {
  const char *tail = strrchr(id, '-');
  return (size_t)strtoull(tail ? tail + 1 : id, NULL, 16) / vms;
}

static struct vs_store *open_store(const char *url, const char *password_file, size_t h) {
  char *host = host_name(h);
  struct vs_store_opts o = {.url = url,
                            .password_file = password_file,
                            .host = host,
                            .host_timeout = 86400 /* setup must not age hosts out */};
  struct vs_err err = {0};
  struct vs_store *s = vs_store_open(&o, &err);
  if (!s) die(host, vs_err_msg(&err));
  free(host);
  return s;
}

/* ------------------------------------------------------------------ PostgreSQL's CPU time */

/* utime + stime (+ cutime + cstime when CHILDREN) of process PID, in clock ticks, and its
 * parent; false when it is gone. */
static bool proc_ticks(long pid, bool children, unsigned long long *ticks, long *ppid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f) return false;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
  if (!p) return false;
  char state;
  long pp;
  unsigned long long ut, st, cut, cst;
  if (sscanf(p + 2, "%c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &state, &pp,
             &ut, &st, &cut, &cst) != 6)
    return false;
  *ticks = ut + st + (children ? cut + cst : 0);
  *ppid = pp;
  return true;
}

/* The CPU time process PID has run, in ns (/proc/PID/schedstat: exact, where /proc/PID/stat
 * counts 10 ms ticks, which made a round's share of a backend's time unreadable); -1 when it
 * is gone. */
static long long proc_run_ns(long pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%ld/schedstat", pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  long long ns = -1;
  if (fscanf(f, "%lld", &ns) != 1) ns = -1;
  fclose(f);
  return ns;
}

/* The server's CPU seconds so far: the postmaster and its live children (to the ns), and those
 * it reaped (in ticks: what the kernel keeps of them). */
static double pg_cpu(long postmaster) {
  unsigned long long own = 0, t;
  long pp;
  if (!proc_ticks(postmaster, true, &own, &pp)) die("/proc", "the postmaster is gone");
  unsigned long long alone = 0;
  proc_ticks(postmaster, false, &alone, &pp);
  double total = (double)(own - alone) / (double)sysconf(_SC_CLK_TCK); /* the reaped */
  long long ns = proc_run_ns(postmaster);
  if (ns > 0) total += (double)ns / 1e9;
  DIR *d = opendir("/proc");
  if (!d) die("/proc", strerror(errno));
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    long pid = strtol(e->d_name, NULL, 10);
    if (!proc_ticks(pid, false, &t, &pp) || pp != postmaster) continue;
    ns = proc_run_ns(pid);
    total += ns >= 0 ? (double)ns / 1e9 : (double)t / (double)sysconf(_SC_CLK_TCK);
  }
  closedir(d);
  return total;
}

/* ------------------------------------------------------------------ libpq for the peer */

static void ignore_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static PGconn *connect_db(const char *url, const char *password_file) {
  char password[1024] = "";
  FILE *f = fopen(password_file, "re");
  if (!f || !fgets(password, sizeof(password), f)) die(password_file, "cannot read the password");
  fclose(f);
  password[strcspn(password, "\r\n")] = '\0';
  const char *keys[] = {"dbname", "password", NULL}, *values[] = {url, password, NULL};
  PGconn *c = PQconnectdbParams(keys, values, 1);
  if (PQstatus(c) != CONNECTION_OK) die(url, PQerrorMessage(c));
  PQsetNoticeProcessor(c, ignore_notice, NULL); /* "database ... does not exist, skipping" */
  return c;
}

static void sql(PGconn *c, const char *q) {
  PGresult *r = PQexec(c, q);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die(q, PQerrorMessage(c));
  PQclear(r);
}

static double sql_number(PGconn *c, const char *q) {
  PGresult *r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) die(q, PQerrorMessage(c));
  double v = strtod(PQgetvalue(r, 0, 0), NULL);
  PQclear(r);
  return v;
}

/* Appends TEXT to the CSV line in B as one quoted field; NULL as an unquoted empty one (SQL's
 * NULL). */
static void csv_field(char **b, size_t *len, size_t *cap, const char *text, bool last) {
  size_t need = *len + 2 * (text ? strlen(text) : 0) + 4;
  if (need > *cap) {
    *cap = need * 2;
    *b = vs_xrealloc(*b, *cap);
  }
  char *o = *b + *len;
  if (text) {
    *o++ = '"';
    for (const char *p = text; *p; p++) {
      if (*p == '"') *o++ = '"';
      *o++ = *p;
    }
    *o++ = '"';
  }
  *o++ = last ? '\n' : ',';
  *len = (size_t)(o - *b);
}

/* J as compact text (NULL for NULL); J is freed. */
static char *dump_text(json_t *j) {
  if (!j) return NULL;
  char *t = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!t) die("dump_text", "cannot serialize a document");
  return t;
}

/* COPY FROM STDIN of LOCAL's rows into bench_copy (like vmscope_vms): seconds, making the rows
 * from the documents included, as the store's publish includes it. */
static double copy_in(PGconn *c, const struct vs_view *local, const char *host) {
  sql(c, "TRUNCATE bench_copy");
  /* the host's baseline as its publish makes it (once, not each round) */
  struct vs_baseline *baseline = vs_baseline_make(local);
  double t0 = vs_now_monotonic();
  PGresult *r = PQexec(c, "COPY bench_copy (uuid, host, name, taken_at, published, doc, "
                          "previous, previous_patch, baseline) FROM STDIN WITH (FORMAT csv)");
  if (PQresultStatus(r) != PGRES_COPY_IN) die("COPY FROM STDIN", PQerrorMessage(c));
  PQclear(r);
  char *line = NULL;
  size_t cap = 0;
  for (size_t i = 0; i < vs_view_count(local); i++) {
    const struct vs_feature *doc = vs_view_doc(local, i), *prev = vs_view_prev(local, i);
    /* The rows the store's publish writes: the settings a patch onto the host's baseline, the
     * previous snapshot a patch onto the newest, else whole. */
    json_t *dj, *pj, *patch;
    vs_store_row_docs(doc, prev, baseline, &dj, &pj, &patch);
    char *d = dump_text(dj), *pt = dump_text(patch), *p = dump_text(pj);
    size_t len = 0;
    csv_field(&line, &len, &cap, vs_feature_id(doc), false);
    csv_field(&line, &len, &cap, host, false);
    csv_field(&line, &len, &cap, vs_feature_name(doc), false);
    csv_field(&line, &len, &cap, vs_feature_taken_at(doc), false);
    csv_field(&line, &len, &cap, "now", false);
    csv_field(&line, &len, &cap, d, false);
    csv_field(&line, &len, &cap, p, false);
    csv_field(&line, &len, &cap, pt, false);
    csv_field(&line, &len, &cap, "1", true); /* its serial in the store */
    free(pt);
    if (PQputCopyData(c, line, (int)len) != 1) die("COPY FROM STDIN", PQerrorMessage(c));
    free(d);
    free(p);
  }
  free(line);
  if (PQputCopyEnd(c, NULL) != 1) die("COPY FROM STDIN", PQerrorMessage(c));
  r = PQgetResult(c);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) die("COPY FROM STDIN", PQerrorMessage(c));
  PQclear(r);
  while ((r = PQgetResult(c)))
    PQclear(r);
  double seconds = vs_now_monotonic() - t0;
  vs_baseline_free(baseline);
  return seconds;
}

/* COPY TO STDOUT of the rows vs_store_load reads: seconds, and the bytes received. */
static double copy_out(PGconn *c, double *bytes) {
  double t0 = vs_now_monotonic();
  PGresult *r = PQexec(c, "COPY (SELECT v.uuid, v.host, v.doc, v.previous, v.previous_patch, "
                          "v.retaken_at, v.baseline "
                          "FROM vmscope_vms v "
                          "JOIN vmscope_hosts h ON h.host = v.host ORDER BY v.uuid) TO STDOUT");
  if (PQresultStatus(r) != PGRES_COPY_OUT) die("COPY TO STDOUT", PQerrorMessage(c));
  PQclear(r);
  char *buf;
  int n;
  *bytes = 0;
  while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
    *bytes += n;
    PQfreemem(buf);
  }
  if (n != -1) die("COPY TO STDOUT", PQerrorMessage(c));
  r = PQgetResult(c);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) die("COPY TO STDOUT", PQerrorMessage(c));
  PQclear(r);
  while ((r = PQgetResult(c)))
    PQclear(r);
  return vs_now_monotonic() - t0;
}

/* ------------------------------------------------------------------ ranking every VM */

struct rank_job {
  const struct vs_view *view;
  struct vs_drift **out;
  size_t from, to;
};

static void *rank_part(void *p) {
  struct rank_job *j = p;
  struct vs_drift_opts o = {.now = time(NULL)};
  for (size_t i = j->from; i < j->to; i++) {
    struct vs_err err = {0};
    j->out[i] = vs_view_rank(j->view, i, &o, &err);
    if (!j->out[i]) die("ranking the fleet", vs_err_msg(&err));
  }
  return NULL;
}

static struct vs_drift **rank_all(const struct vs_view *view) {
  size_t n = vs_view_count(view);
  struct vs_drift **out = vs_xcalloc(n ? n : 1, sizeof(*out));
  struct rank_job jobs[THREADS];
  pthread_t tid[THREADS];
  for (size_t t = 0; t < THREADS; t++) {
    jobs[t] = (struct rank_job){view, out, n * t / THREADS, n * (t + 1) / THREADS};
    int rc = pthread_create(&tid[t], NULL, rank_part, &jobs[t]);
    if (rc != 0) die("pthread_create", strerror(rc));
  }
  for (size_t t = 0; t < THREADS; t++)
    pthread_join(tid[t], NULL);
  return out;
}

/* ------------------------------------------------------------------ one fleet size */

/* One refresh of the elected host's, timed. */
struct refresh {
  double view, rank, findings, find, fleet_pub, ctx_pub, total;
  double pg, cpu;            /* PostgreSQL's and this process's CPU seconds */
  double heap;               /* MiB of heap the whole view holds */
  size_t rows, rows_loaded;  /* the rows read, and those loaded (not kept from before) */
  struct vs_view_times prep; /* the prepare, by phase */
  size_t groups, rollouts, unique;
};

struct result {
  size_t hosts, vms;
  double setup_publish; /* mean seconds of a host's first publish */
  /* 1. the elected host's refresh, the first after its election (every row read) */
  double el_view, el_rank, el_findings, find, fleet_pub, ctx_pub, elected;
  /* 1b. its next refresh, a tenth of the VMs changed (the rows it keeps loaded reused) */
  struct refresh steady;
  /* 2. another host's round, from the context */
  double view, rank, findings, round;
  double round_all, view_all; /* a fresh client's round, every VM sent (the median of FRESH) */
  double round_retaken;       /* a round after every VM was snapshotted again, unchanged */
  double publish, copy_in;    /* one host's publish alone, and COPY of the same rows */
  double load, copy_out;      /* vs_store_load of the fleet, and COPY TO STDOUT of its rows */
  double out_bytes;
  double db_bytes, vms_bytes, baselines_bytes, findings_bytes, rankings_bytes, context_bytes;
  double empty_bytes;              /* the database with the schema and no rows */
  double pg_round, pg_elected;     /* PostgreSQL's CPU seconds */
  double cpu_round, cpu_elected;   /* this process's (the host's) CPU seconds */
  double heap_round, heap_elected; /* MiB of heap the host's view holds */
  struct vs_view_times prep;       /* the whole view's prepare, by phase */
  size_t groups, rollouts, unique, n_findings, differ;
};

/* Of the N rounds AT, the one of median length (of equal ones, the earlier counts as shorter). */
static size_t median_round(const struct result *at, size_t n) {
  for (size_t k = 0; k < n; k++) {
    size_t below = 0;
    for (size_t l = 0; l < n; l++)
      below += at[l].round < at[k].round || (at[l].round == at[k].round && l < k);
    if (below == n / 2) return k;
  }
  return 0;
}

/* This process's CPU seconds: unlike the wall clock, not stretched by other work on the cores. */
static double cpu_self(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0) die("clock_gettime", strerror(errno));
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* MiB of heap in use: what a view holds is the difference while it lives. */
static double heap_mib(void) {
  return (double)mallinfo2().uordblks / 1048576.0;
}

/* Ranks the VMs of VIEW that LOCAL has into MINE (LOCAL's count of them); their findings. */
static size_t rank_local(const struct vs_view *view, const struct vs_view *local,
                         struct vs_drift **mine, size_t vms) {
  struct vs_drift_opts o = {.now = time(NULL)};
  struct vs_err err = {0};
  size_t k = 0, findings = 0;
  for (size_t i = 0; i < vs_view_count(view); i++) {
    if (!vs_store_is_local(view, i, local)) continue;
    if (k == vms) die("the fleet view", "more VMs are local than the host has");
    if (!(mine[k] = vs_view_rank(view, i, &o, &err))) die("ranking", vs_err_msg(&err));
    findings += mine[k++]->n_findings;
  }
  if (k != vms) die("the fleet view", "fewer VMs are local than the host has");
  return findings;
}

/* The elected host's refresh (host 0, store S0, its pool LOCAL): the whole fleet read, its own
 * VMs ranked and their findings published, vs_fleet_find, the fleet's findings and the context
 * published. Returns the whole view. */
static struct vs_view *refresh(struct vs_store *s0, const struct vs_view *local,
                               const struct vs_view_opts *vo, size_t hosts, size_t vms,
                               long postmaster, struct refresh *out) {
  struct vs_err err = {0};
  struct vs_drift **mine = vs_xcalloc(vms, sizeof(*mine));
  if (!vs_store_elected(s0)) die("the election", "host 0 does not hold the store's lock");
  double c0 = pg_cpu(postmaster), u0 = cpu_self(), h0 = heap_mib();
  double t0 = vs_now_monotonic();
  struct vs_store_round whole = {0};
  struct vs_view *view = vs_store_round_view(s0, local, vo, &whole, &err);
  double t1 = vs_now_monotonic();
  if (whole.stale) die("the fleet view", vs_err_msg(&err));
  if (whole.n_errors) die("the fleet view", whole.errors[0]);
  if (vs_view_count(view) != hosts * vms) die("the fleet view", "it does not hold every VM");
  out->rows = whole.rows;
  out->rows_loaded = whole.rows_loaded;
  vs_store_round_clear(&whole);
  out->heap = heap_mib() - h0;
  vs_view_prepare_times(view, &out->prep);
  rank_local(view, local, mine, vms);
  double t2 = vs_now_monotonic();
  if (vs_store_publish_findings(s0, mine, vms, &err) < 0)
    die("publishing the findings", vs_err_msg(&err));
  double t3 = vs_now_monotonic();
  struct vs_fleet_findings *f = vs_fleet_find(view);
  double t4 = vs_now_monotonic();
  if (vs_store_publish_fleet(s0, f, &err) < 0) die("publishing the fleet", vs_err_msg(&err));
  double t5 = vs_now_monotonic();
  if (vs_store_publish_context(s0, view, &err) < 0) die("publishing the context", vs_err_msg(&err));
  double t6 = vs_now_monotonic();
  out->pg = pg_cpu(postmaster) - c0;
  out->cpu = cpu_self() - u0;
  out->view = t1 - t0, out->rank = t2 - t1, out->findings = t3 - t2;
  out->find = t4 - t3, out->fleet_pub = t5 - t4, out->ctx_pub = t6 - t5, out->total = t6 - t0;
  out->groups = f->n_groups, out->rollouts = f->n_rollouts, out->unique = f->n_unique;
  vs_fleet_findings_free(f);
  for (size_t i = 0; i < vms; i++)
    vs_drift_free(mine[i]);
  free(mine);
  return view;
}

static struct result run(const char *base_url, const char *password_file, long postmaster,
                         size_t hosts, size_t vms, size_t keys) {
  struct result res = {.hosts = hosts, .vms = hosts * vms};
  int64_t now = (int64_t)time(NULL) - 600;
  char db[64];
  snprintf(db, sizeof(db), "vs_fleet_%zu", hosts);
  char *admin_url = vs_xasprintf("%spostgres", base_url), *url = vs_xasprintf("%s%s", base_url, db);
  PGconn *admin = connect_db(admin_url, password_file);
  char *q = vs_xasprintf("DROP DATABASE IF EXISTS %s", db);
  sql(admin, q);
  free(q);
  q = vs_xasprintf("CREATE DATABASE %s", db);
  sql(admin, q);
  free(q);
  struct vs_view_opts vo = {.peers = VS_PEERS_ROLE};
  struct vs_err err = {0};
  PGconn *c = connect_db(url, password_file);

  /* Every host publishes its VMs. */
  double t0 = vs_now_monotonic();
  for (size_t h = 0; h < hosts; h++) {
    struct vs_view *local = make_local(h, vms, keys, now);
    struct vs_store *s = open_store(url, password_file, h);
    if (h == 0) res.empty_bytes = sql_number(c, "SELECT pg_database_size(current_database())");
    double p0 = vs_now_monotonic();
    if (vs_store_publish_vms(s, local, &err) < 0) die("publishing a host's VMs", vs_err_msg(&err));
    res.setup_publish += vs_now_monotonic() - p0;
    vs_store_free(s);
    vs_view_free(local);
  }
  res.setup_publish /= (double)hosts;
  fprintf(stderr, "  %zu hosts published (%.1f s)\n", hosts, vs_now_monotonic() - t0);

  /* The fleet's first round: read once, ranked, each host's findings published. */
  struct vs_store *s0 = open_store(url, password_file, 0), *s1 = open_store(url, password_file, 1);
  struct vs_view *ref = vs_view_new();
  size_t refused = 0;
  t0 = vs_now_monotonic();
  if (vs_store_load(s0, ref, &refused, NULL, NULL, &err) < 0)
    die("reading the fleet", vs_err_msg(&err));
  res.load = vs_now_monotonic() - t0;
  if (refused) die("reading the fleet", "rows were refused");
  vs_view_prepare(ref, &vo);
  struct vs_drift **all = rank_all(ref);
  size_t n = vs_view_count(ref);
  if (n != hosts * vms) die("reading the fleet", "the view does not hold every VM");
  struct vs_drift **mine = vs_xcalloc(vms, sizeof(*mine));
  for (size_t h = 0; h < hosts; h++) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (host_of(all[i]->target_id, vms) == h && k < vms) mine[k++] = all[i];
    struct vs_store *s = h == 0 ? s0 : h == 1 ? s1 : open_store(url, password_file, h);
    if (vs_store_publish_findings(s, mine, k, &err) < 0)
      die("publishing a host's findings", vs_err_msg(&err));
    if (s != s0 && s != s1) vs_store_free(s);
  }
  for (size_t i = 0; i < n; i++)
    vs_drift_free(all[i]);
  free(all);
  vs_view_free(ref);
  fprintf(stderr, "  first round's findings published (%.1f s)\n", vs_now_monotonic() - t0);

  /* 1. The elected host's refresh (host 0), the first after its election: every row read. */
  struct vs_view *local = make_local(0, vms, keys, now);
  struct refresh cold = {0};
  struct vs_view *view = refresh(s0, local, &vo, hosts, vms, postmaster, &cold);
  if (cold.rows_loaded != hosts * vms) die("the first refresh", "it did not load every row");
  res.el_view = cold.view, res.el_rank = cold.rank, res.el_findings = cold.findings;
  res.find = cold.find, res.fleet_pub = cold.fleet_pub, res.ctx_pub = cold.ctx_pub;
  res.elected = cold.total, res.pg_elected = cold.pg, res.cpu_elected = cold.cpu;
  res.heap_elected = cold.heap, res.prep = cold.prep;
  res.groups = cold.groups, res.rollouts = cold.rollouts, res.unique = cold.unique;
  vs_view_free(view);

  /* 1b. Its next refresh: every host publishes again, a tenth of the VMs with a new snapshot. */
  t0 = vs_now_monotonic();
  vs_view_free(local);
  local = make_local_next(0, vms, keys, now);
  for (size_t h = 1; h < hosts; h++) {
    struct vs_view *next = make_local_next(h, vms, keys, now);
    struct vs_store *s = h == 1 ? s1 : open_store(url, password_file, h);
    if (vs_store_publish_vms(s, next, &err) < 0) die("publishing a host's VMs", vs_err_msg(&err));
    if (s != s1) vs_store_free(s);
    vs_view_free(next);
  }
  fprintf(stderr, "  every host published again, a tenth of the VMs changed (%.1f s)\n",
          vs_now_monotonic() - t0);
  view = refresh(s0, local, &vo, hosts, vms, postmaster, &res.steady);
  if (res.steady.rows != hosts * vms) die("the next refresh", "it did not read every row");

  /* The whole view's rankings of host 1's VMs, for the check below; then the whole view and
   * the rows host 0's store keeps go, as on a host that is not elected (a process holding them
   * makes another round's allocations slower: 0.65 s against 0.47 s at 100 hosts, measured). */
  struct vs_view *local1 = make_local_next(1, vms, keys, now);
  json_t *expected = json_object();
  for (size_t i = 0; i < vms; i++) {
    const char *id = vs_feature_id(vs_view_doc(local1, i));
    long w = vs_view_find_id(view, id);
    struct vs_drift *d =
        w >= 0 ? vs_view_rank(view, (size_t)w, &(struct vs_drift_opts){.now = time(NULL)}, &err)
               : NULL;
    if (d) json_object_set_new(expected, id, vs_drift_to_json(d, 0));
    vs_drift_free(d);
  }
  vs_view_free(view);
  vs_store_free(s0);
  s0 = open_store(url, password_file, 0);

  /* 2. Another host's round (host 1), from that context: first FRESH fresh clients' rounds,
   * each of which sends every VM (as after a restart, or when every VM took a new snapshot
   * since the round before); then ROUNDS more, which send none. Each figure is that of the
   * round of median length of its kind (one round alone was up to 2x off now and then on this
   * shared machine). The rankings of each are checked against the whole view's. */
  /* And last, a round after every VM of host 1 was snapshotted again and found nothing
   * changed (every VM, every hour, by default): only the new times are sent. */
  struct vs_view *retaken = make_local_retaken(1, vms, keys, now);
  struct result at[FRESH + ROUNDS + 1];
  for (int k = 0; k < FRESH + ROUNDS + 1; k++) {
    struct result *x = &at[k];
    const struct vs_view *pool = k < FRESH + ROUNDS ? local1 : retaken;
    if (k < FRESH) { /* a new client, which knows nothing of what the store holds */
      vs_store_free(s1);
      s1 = open_store(url, password_file, 1);
    }
    double c0 = pg_cpu(postmaster), u0 = cpu_self(), h0 = heap_mib();
    t0 = vs_now_monotonic();
    struct vs_store_round round = {.use_context = true};
    struct vs_view *ctx = vs_store_round_view(s1, pool, &vo, &round, &err);
    double t1 = vs_now_monotonic();
    if (round.stale) die("the context view", vs_err_msg(&err));
    if (!round.from_context) die("the context view", round.why_not_context);
    vs_store_round_clear(&round);
    x->heap_round = heap_mib() - h0;
    x->n_findings = rank_local(ctx, pool, mine, vms);
    double t2 = vs_now_monotonic();
    if (vs_store_publish_findings(s1, mine, vms, &err) < 0)
      die("publishing the findings", vs_err_msg(&err));
    double t3 = vs_now_monotonic();
    double c1 = pg_cpu(postmaster), u1 = cpu_self();
    x->view = t1 - t0, x->rank = t2 - t1, x->findings = t3 - t2, x->round = t3 - t0;
    x->pg_round = c1 - c0, x->cpu_round = u1 - u0;
    for (size_t i = 0; i < vms; i++) {
      json_t *want = json_object_get(expected, mine[i]->target_id);
      json_t *got = vs_drift_to_json(mine[i], 0);
      res.differ += !want || !json_equal(want, got);
      json_decref(got);
      vs_drift_free(mine[i]);
    }
    vs_view_free(ctx);
  }
  size_t fresh = median_round(at, FRESH), median = FRESH + median_round(at + FRESH, ROUNDS);
  res.round_all = at[fresh].round, res.view_all = at[fresh].view;
  res.round_retaken = at[FRESH + ROUNDS].round;
  vs_view_free(retaken);
  res.view = at[median].view, res.rank = at[median].rank, res.findings = at[median].findings;
  res.round = at[median].round, res.pg_round = at[median].pg_round;
  res.cpu_round = at[median].cpu_round, res.heap_round = at[median].heap_round;
  res.n_findings = at[median].n_findings;
  json_decref(expected);
  free(mine);
  vs_view_free(local1);

  /* The peer: COPY of the same rows, and of the fleet's rows out. */
  t0 = vs_now_monotonic();
  if (vs_store_publish_vms(s0, local, &err) < 0) die("publishing a host's VMs", vs_err_msg(&err));
  res.publish = vs_now_monotonic() - t0;
  sql(c, "CREATE TABLE bench_copy (LIKE vmscope_vms INCLUDING ALL)");
  res.copy_in = copy_in(c, local, "host-0000");
  res.copy_out = copy_out(c, &res.out_bytes);
  sql(c, "DROP TABLE bench_copy");

  /* 3. The store's size. */
  sql(c, "CHECKPOINT");
  res.db_bytes = sql_number(c, "SELECT pg_database_size(current_database())");
  res.vms_bytes = sql_number(c, "SELECT pg_total_relation_size('vmscope_vms')");
  res.baselines_bytes = sql_number(c, "SELECT pg_total_relation_size('vmscope_baselines')");
  /* The findings are in vmscope_rankings (schema version 7): their "since" times measured apart */
  res.findings_bytes =
      sql_number(c, "SELECT coalesce(sum(pg_column_size(since)), 0) FROM vmscope_rankings");
  res.rankings_bytes = sql_number(c, "SELECT pg_total_relation_size('vmscope_rankings')");
  res.context_bytes = sql_number(c, "SELECT pg_total_relation_size('vmscope_context') + "
                                    "pg_total_relation_size('vmscope_vm_context')");
  PQfinish(c);
  vs_view_free(local);
  vs_store_free(s0);
  vs_store_free(s1);
  q = vs_xasprintf("DROP DATABASE %s", db);
  sql(admin, q);
  free(q);
  PQfinish(admin);
  free(admin_url);
  free(url);
  return res;
}

/* ------------------------------------------------------------------ the table */

/* Growth per 10x hosts from A to B (of the last two sizes): 10^slope of log y over log x. */
static double per10(double ya, double yb, size_t xa, size_t xb) {
  if (ya <= 0 || yb <= 0 || xa == xb) return NAN;
  return pow(10, log(yb / ya) / log((double)xb / (double)xa));
}

static double extrapolate(double yb, size_t xb, double growth, size_t to) {
  return yb * pow(growth, log10((double)to / (double)xb));
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: fleet_scale URL PASSWORD_FILE POSTMASTER_PID VMS KEYS HOSTS[,...]\n");
    return 2;
  }
  const char *base_url = argv[1], *password_file = argv[2];
  long postmaster = strtol(argv[3], NULL, 10);
  size_t vms = strtoul(argv[4], NULL, 10), keys = strtoul(argv[5], NULL, 10);
  size_t sizes[MAX_SIZES], n_sizes = 0;
  for (char *p = argv[6], *end; *p && n_sizes < MAX_SIZES; p = *end ? end + 1 : end) {
    sizes[n_sizes] = strtoul(p, &end, 10);
    if (end == p || sizes[n_sizes] < 1 || (*end && *end != ',')) {
      fprintf(stderr, "fleet_scale: HOSTS is a comma-separated list of host counts\n");
      return 2;
    }
    n_sizes++;
  }
  for (size_t i = 0; i < n_sizes; i++)
    if (sizes[i] < 2) n_sizes = 0; /* host 0 is elected, host 1 ranks from its context */
  if (postmaster <= 0 || vms < 2 || keys < 10 || n_sizes == 0) {
    fprintf(stderr, "fleet_scale: POSTMASTER_PID > 0, VMS >= 2, KEYS >= 10, HOSTS >= 2\n");
    return 2;
  }
  struct result r[MAX_SIZES];
  for (size_t s = 0; s < n_sizes; s++) {
    fprintf(stderr, "fleet_scale: %zu hosts x %zu VMs x %zu keys\n", sizes[s], vms, keys);
    r[s] = run(base_url, password_file, postmaster, sizes[s], vms, keys);
  }

  printf("fleet-scale: hosts of %zu VMs, %zu keys each (and a previous snapshot each); targets "
         "at 1,000 hosts x 100 VMs: a host's publish + rank <= 1 s, the elected refresh <= 60 s, "
         "the store <= 2 GiB\n",
         vms, keys);
  printf("1. a host's round, seconds, from the elected host's context: view = vs_store_round_view "
         "(publish its VMs, read its VMs' parts, their groups' and the fleet's, prepare a view of "
         "its own VMs); rank = its %zu VMs; find = vs_store_publish_findings; round = view + "
         "rank + find in a round with no VM changed since the last (none sent; the median of %d); "
         "all = the same with every VM sent (a fresh client: after a restart, or every VM "
         "changed since; the median of %d fresh clients); "
         "again = the same after every VM was snapshotted again and found nothing changed "
         "(only the new times sent). "
         "The elected "
         "host's refresh: whole = the same reading every VM's rows and preparing the whole "
         "view, + its own VMs ranked and published, + ffind (vs_fleet_find) + pub "
         "(vs_store_publish_fleet) + ctx (vs_store_publish_context)\n",
         vms, ROUNDS, FRESH);
  printf("%6s %7s | %6s %6s %6s %6s %6s %6s | %7s %7s %6s %6s %6s | %8s %7s | %7s %7s | %7s "
         "%7s\n",
         "hosts", "VMs", "all", "again", "round", "view", "rank", "find", "elected", "whole",
         "ffind", "pub", "ctx", "storeMiB", "B/VM", "pgCPUrd", "pgCPUel", "heapRd", "heapEl");
  for (size_t s = 0; s < n_sizes; s++)
    printf("%6zu %7zu | %6.3f %6.3f %6.3f %6.3f %6.3f %6.3f | %7.2f %7.2f %6.2f %6.2f %6.2f | "
           "%8.1f %7.0f | %7.2f %7.2f | %7.1f %7.1f\n",
           r[s].hosts, r[s].vms, r[s].round_all, r[s].round_retaken, r[s].round, r[s].view,
           r[s].rank, r[s].findings, r[s].elected, r[s].el_view, r[s].find, r[s].fleet_pub,
           r[s].ctx_pub, r[s].db_bytes / 1048576,
           (r[s].db_bytes - r[s].empty_bytes) / (double)r[s].vms, r[s].pg_round, r[s].pg_elected,
           r[s].heap_round, r[s].heap_elected);
  printf("1b. the elected host's next refresh (the one above is the first after its election, "
         "which reads every row): every host published again, a tenth of the VMs with a new "
         "snapshot; the rows whose fingerprint did not change are kept loaded from the refresh "
         "before; seconds, as above\n");
  printf("%6s %7s | %7s %7s %6s %6s %6s | %6s %6s | %9s\n", "hosts", "VMs", "steady", "whole",
         "ffind", "pub", "ctx", "pgCPU", "CPU", "loaded");
  for (size_t s = 0; s < n_sizes; s++) {
    const struct refresh *st = &r[s].steady;
    printf("%6zu %7zu | %7.2f %7.2f %6.2f %6.2f %6.2f | %6.2f %6.2f | %4zu/%zu\n", r[s].hosts,
           r[s].vms, st->total, st->view, st->find, st->fleet_pub, st->ctx_pub, st->pg, st->cpu,
           st->rows_loaded, st->rows);
  }
  for (size_t s = 0; s < n_sizes; s++) {
    const struct vs_view_times *t = &r[s].steady.prep;
    printf("%6zu hosts: its prepare %.2f s = population %.2f + rolling %.2f + tokens %.2f + "
           "roles %.2f + groups %.2f\n",
           r[s].hosts, t->population + t->rolling + t->tokens + t->roles + t->groups, t->population,
           t->rolling, t->tokens, t->roles, t->groups);
  }
  printf("2. storeMiB = pg_database_size; B/VM = (that - the empty store's) / VMs; pgCPU = "
         "PostgreSQL's CPU seconds in the round (rd) and the refresh (el); heap = MiB of heap the "
         "host's view holds (the round's: its own VMs and the context; the elected host's: the "
         "whole fleet)\n");
  printf("3. CPU seconds, not stretched by other work on the machine: the host's (client) + "
         "PostgreSQL's, for its round and for the elected refresh; the store by table; the "
         "whole view's parts measured apart; the fleet's findings; the round's rankings "
         "against the whole view's\n");
  for (size_t s = 0; s < n_sizes; s++)
    printf("%6zu hosts: round %.3f + %.3f CPU s, elected %.2f + %.2f CPU s; vmscope_vms %.1f, "
           "the hosts' baselines %.1f, vmscope_rankings %.1f (the findings' since %.1f of it), the "
           "context %.1f MiB "
           "(empty store %.1f MiB); whole view %.2f s = publish %.2f + read %.2f (vs_store_load) "
           "+ prepare and the rest %.2f; its own VMs ranked %.2f s, published %.2f s; %.1f "
           "findings per VM; %zu groups, %zu rollouts, %zu unique; %zu of %zu rankings from the "
           "context differ from the whole view's\n",
           r[s].hosts, r[s].cpu_round, r[s].pg_round, r[s].cpu_elected, r[s].pg_elected,
           r[s].vms_bytes / 1048576, r[s].baselines_bytes / 1048576, r[s].rankings_bytes / 1048576,
           r[s].findings_bytes / 1048576, r[s].context_bytes / 1048576, r[s].empty_bytes / 1048576,
           r[s].el_view, r[s].publish, r[s].load, r[s].el_view - r[s].publish - r[s].load,
           r[s].el_rank, r[s].el_findings, (double)r[s].n_findings / (double)vms, r[s].groups,
           r[s].rollouts, r[s].unique, r[s].differ, (size_t)(FRESH + ROUNDS + 1) * vms);
  printf("3b. the whole view's prepare on the elected host, seconds, by phase: the fleet's "
         "population, the keys rolling out (each VM's diff from its previous snapshot), the "
         "VMs' tokens, the role analysis (MinHash, LSH), the close groups and their "
         "populations\n");
  for (size_t s = 0; s < n_sizes; s++) {
    const struct vs_view_times *t = &r[s].prep;
    printf("%6zu hosts: prepare %.2f s = population %.2f + rolling %.2f + tokens %.2f + roles "
           "%.2f + groups %.2f\n",
           r[s].hosts, t->population + t->rolling + t->tokens + t->roles + t->groups, t->population,
           t->rolling, t->tokens, t->roles, t->groups);
  }
  printf("4. the peer, PostgreSQL's own bulk path, in the same run: a host's publish "
         "(vs_store_publish_vms, an upsert of its VMs) / COPY FROM STDIN of the same rows into a "
         "table like vmscope_vms; the fleet's read (vs_store_load: read, check, add) / COPY TO "
         "STDOUT of the same rows\n");
  for (size_t s = 0; s < n_sizes; s++)
    printf("%6zu hosts: publish %.3f s / COPY in %.3f s = %.2fx; read %.2f s / COPY out %.2f s "
           "(%.0f MiB) = %.2fx; a host's first publish (insert) %.3f s\n",
           r[s].hosts, r[s].publish, r[s].copy_in, r[s].publish / r[s].copy_in, r[s].load,
           r[s].copy_out, r[s].out_bytes / 1048576, r[s].load / r[s].copy_out, r[s].setup_publish);
  if (n_sizes < 2) return 0;
  const struct result *a = &r[n_sizes - 2], *b = &r[n_sizes - 1];
  struct {
    const char *what;
    double ya, yb;
    const char *unit;
  } figs[] = {
      {"a host's round from the context (s)", a->round, b->round, "s"},
      {"  of which the context view (s)", a->view, b->view, "s"},
      {"the elected refresh (s)", a->elected, b->elected, "s"},
      {"  of which the whole view (s)", a->el_view, b->el_view, "s"},
      {"  of which vs_fleet_find (s)", a->find, b->find, "s"},
      {"  of which vs_store_publish_context (s)", a->ctx_pub, b->ctx_pub, "s"},
      {"store bytes per VM", (a->db_bytes - a->empty_bytes) / (double)a->vms,
       (b->db_bytes - b->empty_bytes) / (double)b->vms, "B"},
      {"PostgreSQL CPU per host round (s)", a->pg_round, b->pg_round, "s"},
      {"PostgreSQL CPU per elected refresh (s)", a->pg_elected, b->pg_elected, "s"},
      {"heap of a host's context view (MiB)", a->heap_round, b->heap_round, "MiB"},
      {"heap of the elected host's view (MiB)", a->heap_elected, b->heap_elected, "MiB"},
      {"host CPU per round (s)", a->cpu_round, b->cpu_round, "s"},
      {"the elected host's next refresh (s)", a->steady.total, b->steady.total, "s"},
      {"  of which the whole view (s)", a->steady.view, b->steady.view, "s"},
      {"a round after every VM was retaken (s)", a->round_retaken, b->round_retaken, "s"},
      {"a host's round sending every VM (s)", a->round_all, b->round_all, "s"},
  };
  enum { N_FIGS = sizeof(figs) / sizeof(figs[0]) };
  double x[N_FIGS];
  /* The largest size run is the target's: its figures are the ones measured, not carried. */
  bool run_at_target = b->hosts == 1000;
  printf("growth from %zu to %zu hosts, as a ratio per 10x hosts (10x: linear in the fleet, "
         "100x: quadratic), and %s:\n",
         a->hosts, b->hosts,
         run_at_target ? "the figures at 1,000 hosts, MEASURED (the size run last)"
                       : "an EXTRAPOLATION (not measured) to 1,000 hosts along that growth");
  for (size_t i = 0; i < N_FIGS; i++) {
    double g = per10(figs[i].ya, figs[i].yb, a->hosts, b->hosts);
    bool measured = !isnan(g);
    if (!measured) g = 10; /* too small to time: taken as linear */
    x[i] = extrapolate(figs[i].yb, b->hosts, g, 1000);
    printf("  %-40s %9.2f -> %9.2f: %6.1fx per 10x%s; %s: %10.1f %s\n", figs[i].what, figs[i].ya,
           figs[i].yb, g, measured ? "" : " (below the clock's resolution: taken as linear)",
           run_at_target ? "measured" : "extrapolated", x[i], figs[i].unit);
  }
  double round = x[0], elected = x[2];
  /* Bytes per VM as at the largest size, or along their growth when they grow. */
  double per_vm = (b->db_bytes - b->empty_bytes) / (double)b->vms;
  double store = b->empty_bytes + (x[6] > per_vm ? x[6] : per_vm) * 1000.0 * (double)vms;
  if (run_at_target)
    printf("MEASURED at 1,000 hosts x %zu VMs (%zu VMs):\n", vms, 1000 * vms);
  else
    printf("EXTRAPOLATED to 1,000 hosts x %zu VMs (%zu VMs), each figure along its own growth:\n",
           vms, 1000 * vms);
  printf("  a host's publish + rank (round)   %10.2f s   target 1 s: %s (%.2f s, %s, after "
         "every VM was snapshotted again unchanged; %.2f s, %s, in a round that sends every "
         "VM)\n",
         round, round <= 1 ? "met" : "NOT met", x[N_FIGS - 2],
         x[N_FIGS - 2] <= 1 ? "met" : "NOT met", x[N_FIGS - 1],
         x[N_FIGS - 1] <= 1 ? "met" : "NOT met");
  printf("  the elected refresh               %10.1f s   target 60 s: %s (a refresh with a "
         "tenth of the VMs changed; the whole view %.1f s)\n",
         x[12], x[12] <= 60 ? "met" : "NOT met", x[13]);
  printf("  the first refresh after election  %10.1f s   (every row read: the whole view %.1f s, "
         "vs_fleet_find %.1f s, the context's publish %.1f s)\n",
         elected, x[3], x[4], x[5]);
  printf("  the store                         %10.0f MiB target 2,048 MiB: %s\n", store / 1048576,
         store <= 2048.0 * 1048576 ? "met" : "NOT met");
  printf("  PostgreSQL CPU per fleet cycle    %10.0f s   (every host's round + the refresh, "
         "on the one server: %.1f cores busy at a 300 s interval)\n",
         x[7] * 1000 + x[8], (x[7] * 1000 + x[8]) / 300);
  printf("  heap of a host's context view     %10.1f MiB; of the elected host's whole view %.0f "
         "MiB\n",
         x[9], x[10]);
  printf("  a host's CPU per round            %10.2f s\n", x[11]);
  return 0;
}
