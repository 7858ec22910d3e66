#include "store.h"

#include "baseline.h"
#include "crypto.h"
#include "dl.h"
#include "strmap.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock of the host that does the fleet's once-only work ("vmscope" in ASCII). */
#define ELECTION_LOCK 0x766d73636f7065LL

/* libpq is opened with the first store (dl.h): only the hosts with a FleetStore load it. */
/* clang-format off */
#define PQ_SYMBOLS(X) X(PQclear) X(PQconnectdbParams) X(PQerrorMessage) X(PQexec) X(PQexecParams) \
  X(PQfinish) X(PQgetisnull) X(PQgetlength) X(PQgetvalue) X(PQntuples) X(PQresStatus)             \
  X(PQresultErrorMessage) X(PQresultStatus) X(PQstatus)
/* clang-format on */
VS_DL_LIBRARY(pq_lib, VS_SONAME_PQ, "libpq5", PQ_SYMBOLS);

/* A VM's row as the store last had it, checked and loaded, kept between reads so that a row
 * whose fingerprint (content_sha256, schema version 5) is the same is not read and loaded again:
 * reading and checking every row was over half of the elected host's refresh. */
struct kept_row {
  char *uuid, *digest;
  char *base;                    /* its baseline's key in vs_store's bases (its serial), or NULL */
  struct vs_feature *doc, *prev; /* DOC NULL when the row's newest document was refused */
  char *error;                   /* why the row, or its previous snapshot, was refused */
};

struct kept {
  struct kept_row *rows;     /* in the order the store gave them (by uuid) */
  size_t n, loaded;          /* LOADED: the rows read and loaded, not taken from the last read */
  struct vs_strmap *by_uuid; /* uuid -> index + 1 */
};

static void kept_free(struct kept *k) {
  if (!k) return;
  for (size_t i = 0; i < k->n; i++) {
    free(k->rows[i].uuid);
    free(k->rows[i].digest);
    free(k->rows[i].base);
    free(k->rows[i].error);
    vs_feature_free(k->rows[i].doc);
    vs_feature_free(k->rows[i].prev);
  }
  free(k->rows);
  vs_strmap_free(k->by_uuid);
  free(k);
}

struct vs_store {
  PGconn *conn;
  char *url, *password, *ca_file; /* to connect again */
  char *host, *safe_url;
  double host_timeout;
  int connect_timeout;
  bool store_documents, read_only, elected, migrated;
  bool no_lz4;       /* the server refused lz4 on this connection: not asked again until the next */
  struct kept *kept; /* the fleet as last read, loaded; NULL after a round from the context */
  struct vs_view_cache *view_cache; /* what the whole view's prepare worked out of them */
  json_t *last_context; /* the context as last read: [fleet, {group: part}, {uuid: part}] */
  /* The context as this host wrote it last, so that the next one writes only the VM parts that
   * changed: its epoch as the store said it (NULL: write it whole) and each VM's part as text. */
  char *context_base;
  struct vs_strmap *context_vm_parts; /* uuid -> text */
  /* Each VM's digest (vs_view_digest) as the last context had it, valid for the document it
   * was computed from, which the entry holds a reference to: hashing every VM's settings was
   * most of writing the context, and a kept row's document is the same object next round. */
  struct vs_strmap *digests; /* uuid -> struct digest * */
  /* What this host published of each of its VMs, so that one whose documents did not change
   * is not sent again: the documents (references) and the fingerprint of its row as the store
   * returned it, for a row that held what was sent. The store checks each fingerprint named
   * against the row, so a row changed since by anyone is sent again whole. */
  struct vs_strmap *published; /* uuid -> struct published * */
  /* And of each of its VMs' rankings, so that one that did not change is not sent again: the
   * digest of its text as sent and the fingerprint the store returned for its row. */
  struct vs_strmap *ranked; /* uuid -> struct ranked * */
  /* The baseline this host's rows are patches onto (baseline.h), made from its VMs when it
   * first publishes and when it wears out, and whether the store is known to hold it. */
  struct vs_baseline *baseline;
  bool baseline_stored;
  /* The hosts' baselines as read, serial -> struct base *: a baseline row does not change (a
   * host that makes one again makes another serial), and each is read again only when none
   * of the rows kept refers to it any more. */
  struct vs_strmap *bases;
};

struct base {
  json_t *settings; /* NULL: refused, ERROR says why */
  /* The document of SETTINGS (vs_feature_of_settings), whose settings the rows loaded onto it
   * share: a thousand rows' documents hold them once, not a thousand times (the elected host
   * held 12.9 GiB at 30,000 VMs of 2,000 keys, 6.8 GiB after). NULL where a value is not clean
   * text: the rows are merged as JSON then, and refused as they would be. */
  struct vs_feature *doc;
  size_t len; /* bytes as read */
  char *error;
};

static void base_free(void *p) {
  struct base *b = p;
  if (!b) return;
  json_decref(b->settings);
  vs_feature_free(b->doc);
  free(b->error);
  free(b);
}

struct ranked {
  unsigned char digest[VS_SHA256_LEN];
  char *sha;
};

static void ranked_free(void *p) {
  struct ranked *x = p;
  if (!x) return;
  free(x->sha);
  free(x);
}

struct published {
  struct vs_feature *doc, *prev;
  char *sha;
  size_t distance; /* the members of its settings' patch onto the baseline */
};

static void published_free(void *p) {
  struct published *x = p;
  if (!x) return;
  vs_feature_free(x->doc);
  vs_feature_free(x->prev);
  free(x->sha);
  free(x);
}

struct digest {
  struct vs_feature *doc;
  char *hex;
};

static void digest_free(void *p) {
  struct digest *d = p;
  if (!d) return;
  vs_feature_free(d->doc);
  free(d->hex);
  free(d);
}

static void free_digest_at(void *arg, size_t i) {
  digest_free(((struct digest **)arg)[i]);
}

/* What vmscope_publish_findings checks first, in every schema version: the host is the caller,
 * and ranks no VM another host published since. */
#define FINDINGS_HOST_SQL                                                                          \
  "  PERFORM vmscope_check_host(p_host);"                                                          \
  "  IF EXISTS (SELECT FROM vmscope_vms v JOIN jsonb_to_recordset(p_rankings) AS r(uuid text)"     \
  "      ON r.uuid = v.uuid WHERE v.host <> p_host) THEN"                                          \
  "    RAISE EXCEPTION 'host % ranks a VM another host published since', p_host"                   \
  "      USING ERRCODE = '40001';"                                                                 \
  "  END IF;"

/* vmscope_publish_findings as schema versions 2 and 5 write it (CREATE: "CREATE" or "CREATE OR
 * REPLACE"); DELETE_FINDINGS: the statement that removes the findings this publish did not find
 * again, and those of VMs the host no longer ranks. */
#define PUBLISH_FINDINGS_SQL(create, delete_findings)                                              \
  create                                                                                           \
      " FUNCTION vmscope_publish_findings(p_host text, p_rankings jsonb, p_findings jsonb)"        \
      " RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ "        \
      "BEGIN" FINDINGS_HOST_SQL                                                                    \
      "  INSERT INTO vmscope_rankings (uuid, host, name, ranked_at, samples, alarms, unique_vm,"   \
      "      drift)"                                                                               \
      "    SELECT r.uuid, p_host, r.name, now(), r.samples, r.alarms, r.unique_vm, r.drift"        \
      "    FROM jsonb_to_recordset(p_rankings) AS r(uuid text, name text, samples integer,"        \
      "      alarms integer, unique_vm boolean, drift jsonb)"                                      \
      "    ON CONFLICT (uuid) DO UPDATE SET host = EXCLUDED.host, name = EXCLUDED.name,"           \
      "      ranked_at = EXCLUDED.ranked_at, samples = EXCLUDED.samples,"                          \
      "      alarms = EXCLUDED.alarms, unique_vm = EXCLUDED.unique_vm, drift = EXCLUDED.drift;"    \
      "  INSERT INTO vmscope_findings (uuid, host, name, key, value, majority, majority_count,"    \
      "      peers, share, score, p, severity, kind, rank, waived, since, ranked_at)"              \
      "    SELECT r.uuid, p_host, r.name, r.key, r.value, r.majority, r.majority_count, r.peers,"  \
      "      r.share, r.score, r.p, r.severity, r.kind, r.rank, r.waived, now(), now()"            \
      "    FROM jsonb_to_recordset(p_findings) AS r(uuid text, name text, key text, value text,"   \
      "      majority text, majority_count integer, peers integer, share double precision,"        \
      "      score double precision, p double precision, severity text, kind text,"                \
      "      rank integer, waived boolean)"                                                        \
      "    ON CONFLICT (uuid, key) DO UPDATE SET host = EXCLUDED.host, name = EXCLUDED.name,"      \
      "      since = CASE WHEN vmscope_findings.value = EXCLUDED.value"                            \
      "        THEN vmscope_findings.since ELSE EXCLUDED.since END,"                               \
      "      value = EXCLUDED.value, majority = EXCLUDED.majority,"                                \
      "      majority_count = EXCLUDED.majority_count, peers = EXCLUDED.peers,"                    \
      "      share = EXCLUDED.share, score = EXCLUDED.score, p = EXCLUDED.p,"                      \
      "      severity = EXCLUDED.severity, kind = EXCLUDED.kind, rank = EXCLUDED.rank,"            \
      "      waived = EXCLUDED.waived, ranked_at = EXCLUDED.ranked_at;" delete_findings            \
      "  DELETE FROM vmscope_rankings k WHERE k.host = p_host AND NOT k.uuid IN"                   \
      "    (SELECT r.uuid FROM jsonb_to_recordset(p_rankings) AS r(uuid text));"                   \
      "END $$;"

/* The upsert of the VMs a publish sends, to the columns it sets (since schema version 3). */
#define PUBLISH_VMS_UPSERT_SQL                                                                     \
  "  INSERT INTO vmscope_vms (uuid, host, name, taken_at, published, doc, previous,"               \
  "      previous_patch)"                                                                          \
  "    SELECT r.uuid, p_host, r.name, r.taken_at, now(), r.doc, r.previous, r.previous_patch"      \
  "    FROM jsonb_to_recordset(p_vms) AS r(uuid text, name text, taken_at timestamptz,"            \
  "      doc jsonb, previous jsonb, previous_patch jsonb)"                                         \
  "    ON CONFLICT (uuid) DO UPDATE SET host = EXCLUDED.host, name = EXCLUDED.name,"               \
  "      taken_at = EXCLUDED.taken_at, published = EXCLUDED.published,"

/* vmscope_publish_vms as schema versions 3 and 5 write it; WHERE: which rows of the VMs it
 * publishes are rewritten. */
#define PUBLISH_VMS_SQL(where)                                                                     \
  "CREATE OR REPLACE FUNCTION vmscope_publish_vms(p_host text, p_count integer, p_vms jsonb,"      \
  "  p_docs jsonb)"                                                                                \
  " RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN"       \
  "  PERFORM vmscope_check_host(p_host);"                                                          \
  "  INSERT INTO vmscope_hosts (host, seen, vms) VALUES (p_host, now(), p_count)"                  \
  "    ON CONFLICT (host) DO UPDATE SET seen = now(), vms = p_count;" PUBLISH_VMS_UPSERT_SQL       \
  " doc = EXCLUDED.doc,"                                                                           \
  "      previous = EXCLUDED.previous, previous_patch = EXCLUDED.previous_patch"                   \
  "      WHERE " where ";"                                                                         \
  "  DELETE FROM vmscope_vms WHERE host = p_host AND NOT uuid IN"                                  \
  "    (SELECT r.uuid FROM jsonb_to_recordset(p_vms) AS r(uuid text));"                            \
  "  INSERT INTO vmscope_documents (uuid, taken_at, host, doc)"                                    \
  "    SELECT r.uuid, r.taken_at, p_host, r.doc FROM jsonb_to_recordset(p_docs)"                   \
  "    AS r(uuid text, taken_at timestamptz, doc jsonb) ON CONFLICT DO NOTHING;"                   \
  "END $$;"

/* What it checks first since schema version 7: that, and every ranking can be shown (but those
 * UNLESS, a condition and "AND ", says need not be: schema version 9). */
#define FINDINGS_SHOWN_SQL(unless)                                                                 \
  "  IF EXISTS (SELECT FROM jsonb_to_recordset(p_rankings) AS r(uuid text, drift jsonb)"           \
  "      WHERE r.uuid IS NULL OR " unless "NOT vmscope_drift_ok(r.drift)) THEN"                    \
  "    RAISE EXCEPTION 'host %: a ranking without a uuid, or whose findings are not an array "     \
  "of objects with key, value, majority (count, share), n, score, p, severity, kind, rank "        \
  "and waived, one per key', p_host USING ERRCODE = '22023';"                                      \
  "  END IF;"
#define FINDINGS_CHECKS_SQL FINDINGS_HOST_SQL FINDINGS_SHOWN_SQL("")
/* And how it writes each ranking of P_RANKINGS (R), with its since: those WHERE says (versions 7
 * and 8: every one). */
#define FINDINGS_INSERT_WHERE_SQL(where)                                                           \
  "  INSERT INTO vmscope_rankings (uuid, host, name, ranked_at, samples, alarms, unique_vm,"       \
  "      drift, since)"                                                                            \
  "    SELECT r.uuid, p_host, r.name, now(), r.samples, r.alarms, r.unique_vm, r.drift,"           \
  "      coalesce((SELECT jsonb_object_agg(f.key, coalesce(w.since, to_jsonb(now())))"             \
  "        FROM jsonb_to_recordset(r.drift -> 'findings') AS f(key text, value text)"              \
  "        LEFT JOIN (SELECT g.key, g.value, t.value AS since FROM vmscope_rankings o"             \
  "          CROSS JOIN LATERAL jsonb_to_recordset(o.drift -> 'findings')"                         \
  "            AS g(key text, value text)"                                                         \
  "          JOIN LATERAL jsonb_each(o.since) AS t ON t.key = g.key"                               \
  "          WHERE o.uuid = r.uuid) w ON w.key = f.key AND w.value = f.value), '{}')"              \
  "    FROM jsonb_to_recordset(p_rankings) AS r(uuid text, name text, samples integer,"            \
  "      alarms integer, unique_vm boolean, drift jsonb)" where                                    \
  "    ON CONFLICT (uuid) DO UPDATE SET host = EXCLUDED.host, name = EXCLUDED.name,"               \
  "      ranked_at = EXCLUDED.ranked_at, samples = EXCLUDED.samples,"                              \
  "      alarms = EXCLUDED.alarms, unique_vm = EXCLUDED.unique_vm, drift = EXCLUDED.drift,"        \
  "      since = EXCLUDED.since;"
#define FINDINGS_INSERT_SQL FINDINGS_INSERT_WHERE_SQL("")

/* vmscope_publish_findings since schema version 8 (CREATE: "CREATE" or "CREATE OR REPLACE"), to
 * the rankings' writing: the checks, and the rankings named as kept are as named (nor is one of
 * a VM another host published since: sent, it is refused by the checks). */
#define PUBLISH_FINDINGS_SIGNATURE_SQL(create)                                                     \
  create " FUNCTION vmscope_publish_findings(p_host text, p_rankings jsonb,"                       \
         "  p_kept jsonb DEFAULT '[]')"                                                            \
         " RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ "
#define FINDINGS_KEPT_AS_NAMED_SQL                                                                 \
  "  IF EXISTS (SELECT FROM jsonb_to_recordset(p_kept) AS k(uuid text, sha text)"                  \
  "      WHERE NOT EXISTS (SELECT FROM vmscope_rankings o WHERE o.uuid = k.uuid"                   \
  "        AND o.host = p_host AND o.sha256 = k.sha)"                                              \
  "      OR EXISTS (SELECT FROM vmscope_vms v WHERE v.uuid = k.uuid AND v.host <> p_host))"        \
  " THEN"                                                                                          \
  "    RETURN NULL;"                                                                               \
  "  END IF;"
#define PUBLISH_FINDINGS_KEPT_SQL(create)                                                          \
  PUBLISH_FINDINGS_SIGNATURE_SQL(create) "BEGIN" FINDINGS_CHECKS_SQL FINDINGS_KEPT_AS_NAMED_SQL

/* ... and after them: the host's rankings neither sent nor named go, and it returns the
 * fingerprints of the rankings sent. */
#define PUBLISH_FINDINGS_TAIL_SQL                                                                  \
  "  DELETE FROM vmscope_rankings d WHERE d.host = p_host AND NOT d.uuid IN"                       \
  "    (SELECT r.uuid FROM jsonb_to_recordset(p_rankings) AS r(uuid text)"                         \
  "     UNION ALL SELECT k.uuid FROM jsonb_to_recordset(p_kept) AS k(uuid text));"                 \
  "  RETURN (SELECT coalesce(jsonb_object_agg(o.uuid, o.sha256), '{}')"                            \
  "    FROM vmscope_rankings o JOIN jsonb_to_recordset(p_rankings) AS r(uuid text)"                \
  "      ON r.uuid = o.uuid);"                                                                     \
  "END $$;"

/* vmscope_publish_vms since schema version 7 (CREATE: "CREATE" or "CREATE OR REPLACE"): what
 * it does before writing the rows (the rows named as kept are checked, the host is seen) ... */
#define PUBLISH_VMS_HEAD_SQL(create) PUBLISH_VMS_HEAD_WITH_SQL(create, "", "", "", "")
/* ... (since schema version 10, with MORE_PARAMETERS, DECLARE: "DECLARE ...; " or "", FIRST:
 * what it does before the checks, and MORE_STALE: another condition, "OR ...", on which it
 * writes nothing) ... */
#define PUBLISH_VMS_HEAD_WITH_SQL(create, more_parameters, declare, first, more_stale)             \
  create " FUNCTION vmscope_publish_vms(p_host text, p_count integer, p_vms jsonb,"                \
         "  p_docs jsonb, p_kept jsonb DEFAULT '[]'" more_parameters ")"                           \
         " RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS "       \
         "$$ " declare "BEGIN"                                                                     \
         "  PERFORM vmscope_check_host(p_host);" first                                             \
         "  IF EXISTS (SELECT FROM jsonb_to_recordset(p_kept) AS k(uuid text, sha text)"           \
         "      WHERE NOT EXISTS (SELECT FROM vmscope_vms v WHERE v.uuid = k.uuid"                 \
         "        AND v.host = p_host AND v.content_sha256 = k.sha))" more_stale " THEN"           \
         "    RETURN NULL;"                                                                        \
         "  END IF;"                                                                               \
         "  INSERT INTO vmscope_hosts (host, seen, vms) VALUES (p_host, now(), p_count)"           \
         "    ON CONFLICT (host) DO UPDATE SET seen = now(), vms = p_count;"
/* ... and after: the host's VMs neither sent nor named go, the whole documents are kept, and
 * it returns the fingerprints of the rows that hold what was sent (not one of this host's whose
 * snapshot is newer than the one sent: its clock went back, or its pool did, and the publish
 * leaves it as it is). */
#define PUBLISH_VMS_TAIL_SQL PUBLISH_VMS_TAIL_WITH_SQL("")
/* (since schema version 10, with THEN: what it does after the rows, before it returns) */
#define PUBLISH_VMS_TAIL_WITH_SQL(then)                                                            \
  "  DELETE FROM vmscope_vms WHERE host = p_host AND NOT uuid IN"                                  \
  "    (SELECT r.uuid FROM jsonb_to_recordset(p_vms) AS r(uuid text)"                              \
  "     UNION ALL SELECT k.uuid FROM jsonb_to_recordset(p_kept) AS k(uuid text));" then            \
  "  INSERT INTO vmscope_documents (uuid, taken_at, host, doc)"                                    \
  "    SELECT r.uuid, r.taken_at, p_host, r.doc FROM jsonb_to_recordset(p_docs)"                   \
  "    AS r(uuid text, taken_at timestamptz, doc jsonb) ON CONFLICT DO NOTHING;"                   \
  "  RETURN (SELECT coalesce(jsonb_object_agg(v.uuid, v.content_sha256), '{}')"                    \
  "    FROM vmscope_vms v JOIN"                                                                    \
  "      (SELECT r.uuid, r.taken_at FROM jsonb_to_recordset(p_vms)"                                \
  "         AS r(uuid text, taken_at timestamptz)"                                                 \
  "       UNION ALL SELECT k.uuid, k.taken_at::timestamptz FROM jsonb_to_recordset(p_kept)"        \
  "         AS k(uuid text, taken_at text) WHERE k.taken_at IS NOT NULL) AS sent"                  \
  "      ON sent.uuid = v.uuid AND sent.taken_at = v.taken_at"                                     \
  "    WHERE v.host = p_host);"                                                                    \
  "END $$;"

/* Each migration takes the schema from version i to i + 1, in the transaction that records it.
 * Laid out as SQL, not by clang-format: with a macro between two string literals it indents
 * the rest as the macro's arguments and breaks the literals mid-statement. */
/* clang-format off */
static const char *const migrations[] = {
    /* 1: hosts, their VMs' ranking documents, rankings, findings, fleet findings, documents */
    "CREATE TABLE vmscope_hosts ("
    "  host text PRIMARY KEY CHECK (length(host) BETWEEN 1 AND 255),"
    "  first_seen timestamptz NOT NULL DEFAULT now(),"
    "  seen timestamptz NOT NULL,"
    "  vms integer NOT NULL DEFAULT 0);"
    "CREATE TABLE vmscope_vms ("
    "  uuid text PRIMARY KEY CHECK (length(uuid) BETWEEN 1 AND 1024),"
    "  host text NOT NULL REFERENCES vmscope_hosts (host),"
    "  name text NOT NULL,"
    "  taken_at timestamptz NOT NULL,"
    "  published timestamptz NOT NULL,"
    "  doc jsonb NOT NULL,"
    "  previous jsonb);"
    "CREATE INDEX vmscope_vms_host ON vmscope_vms (host);"
    "CREATE TABLE vmscope_rankings ("
    "  uuid text PRIMARY KEY,"
    "  host text NOT NULL REFERENCES vmscope_hosts (host),"
    "  name text NOT NULL,"
    "  ranked_at timestamptz NOT NULL,"
    "  samples integer NOT NULL,"
    "  alarms integer NOT NULL,"
    "  unique_vm boolean NOT NULL,"
    "  drift jsonb NOT NULL);"
    "CREATE TABLE vmscope_findings ("
    "  uuid text NOT NULL,"
    "  host text NOT NULL REFERENCES vmscope_hosts (host),"
    "  name text NOT NULL,"
    "  key text NOT NULL,"
    "  value text NOT NULL,"
    "  majority text NOT NULL,"
    "  majority_count integer NOT NULL,"
    "  peers integer NOT NULL,"
    "  share double precision NOT NULL,"
    "  score double precision NOT NULL,"
    "  p double precision NOT NULL,"
    "  severity text NOT NULL,"
    "  kind text NOT NULL,"
    "  rank integer NOT NULL,"
    "  waived boolean NOT NULL,"
    "  since timestamptz NOT NULL,"
    "  ranked_at timestamptz NOT NULL,"
    "  PRIMARY KEY (uuid, key));"
    "CREATE INDEX vmscope_findings_key ON vmscope_findings (key);"
    "CREATE TABLE vmscope_fleet_findings ("
    "  host text NOT NULL REFERENCES vmscope_hosts (host),"
    "  found_at timestamptz NOT NULL,"
    "  findings jsonb NOT NULL);"
    "CREATE TABLE vmscope_documents ("
    "  uuid text NOT NULL,"
    "  taken_at timestamptz NOT NULL,"
    "  host text NOT NULL REFERENCES vmscope_hosts (host),"
    "  doc jsonb NOT NULL,"
    "  PRIMARY KEY (uuid, taken_at));",
    /* 2: hosts write through these functions only, each as itself. A host's role is named as
     * the host (a member of vmscope_host); the schema's owner may write as any host (one
     * shared role for a fleet that trusts its hosts). Readers (vmscope_reader, Grafana) and
     * hosts read every table but the whole documents. */
    "DO $$ BEGIN"
    "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vmscope_host') THEN"
    "    CREATE ROLE vmscope_host NOLOGIN; END IF;"
    "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vmscope_reader') THEN"
    "    CREATE ROLE vmscope_reader NOLOGIN; END IF;"
    "END $$;"
    "CREATE FUNCTION vmscope_check_host(p_host text) RETURNS void LANGUAGE plpgsql "
    "SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN"
    "  IF p_host IS NULL OR (p_host <> session_user AND session_user <> (SELECT r.rolname"
    "      FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
    "      WHERE c.oid = 'vmscope_vms'::regclass)) THEN"
    "    RAISE EXCEPTION 'role % may not write as host %: each host writes its own rows, "
    "as the role named as the host', session_user, p_host USING ERRCODE = '42501';"
    "  END IF;"
    "END $$;"
    "CREATE FUNCTION vmscope_publish_vms(p_host text, p_count integer, p_vms jsonb, p_docs jsonb)"
    " RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN"
    "  PERFORM vmscope_check_host(p_host);"
    "  INSERT INTO vmscope_hosts (host, seen, vms) VALUES (p_host, now(), p_count)"
    "    ON CONFLICT (host) DO UPDATE SET seen = now(), vms = p_count;"
    /* The newest snapshot wins: a host still holding an older one of a VM that migrated does
     * not take it back. */
    "  INSERT INTO vmscope_vms (uuid, host, name, taken_at, published, doc, previous)"
    "    SELECT r.uuid, p_host, r.name, r.taken_at, now(), r.doc, r.previous"
    "    FROM jsonb_to_recordset(p_vms) AS r(uuid text, name text, taken_at timestamptz,"
    "      doc jsonb, previous jsonb)"
    "    ON CONFLICT (uuid) DO UPDATE SET host = EXCLUDED.host, name = EXCLUDED.name,"
    "      taken_at = EXCLUDED.taken_at, published = EXCLUDED.published, doc = EXCLUDED.doc,"
    "      previous = EXCLUDED.previous WHERE vmscope_vms.taken_at <= EXCLUDED.taken_at;"
    "  DELETE FROM vmscope_vms WHERE host = p_host AND NOT uuid IN"
    "    (SELECT r.uuid FROM jsonb_to_recordset(p_vms) AS r(uuid text));"
    "  INSERT INTO vmscope_documents (uuid, taken_at, host, doc)"
    "    SELECT r.uuid, r.taken_at, p_host, r.doc FROM jsonb_to_recordset(p_docs)"
    "    AS r(uuid text, taken_at timestamptz, doc jsonb) ON CONFLICT DO NOTHING;"
    "END $$;"
    /* A finding keeps its "since" while its value stays; the ones not found again go, and so
     * does every finding and ranking of a VM this host no longer ranks (unless another host
     * ranks it now). A host changes the rows of the VMs it ranks, and no other. */
    PUBLISH_FINDINGS_SQL(
        "CREATE", "  DELETE FROM vmscope_findings f WHERE (f.uuid IN (SELECT r.uuid FROM"
                  "      jsonb_to_recordset(p_rankings) AS r(uuid text)) AND f.ranked_at < now())"
                  "    OR (f.host = p_host AND NOT f.uuid IN (SELECT r.uuid FROM"
                  "      jsonb_to_recordset(p_rankings) AS r(uuid text)));")
    /* The fleet's own findings come from the elected host: the session holding the lock. */
    "CREATE FUNCTION vmscope_publish_fleet(p_host text, p_findings jsonb)"
    " RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN"
    "  PERFORM vmscope_check_host(p_host);"
    "  IF NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory'"
    "      AND pid = pg_backend_pid() AND granted AND classid = 7761267"
    "      AND objid = 1668247653 AND objsubid = 1) THEN"
    "    RAISE EXCEPTION 'host % does not hold the fleet''s lock', p_host"
    "      USING ERRCODE = '42501';"
    "  END IF;"
    "  DELETE FROM vmscope_fleet_findings;"
    "  INSERT INTO vmscope_fleet_findings (host, found_at, findings)"
    "    VALUES (p_host, now(), p_findings);"
    "END $$;"
    "REVOKE ALL ON vmscope_schema, vmscope_hosts, vmscope_vms, vmscope_rankings,"
    "  vmscope_findings, vmscope_fleet_findings, vmscope_documents FROM PUBLIC;"
    "REVOKE ALL ON FUNCTION vmscope_check_host(text),"
    "  vmscope_publish_vms(text, integer, jsonb, jsonb),"
    "  vmscope_publish_findings(text, jsonb, jsonb), vmscope_publish_fleet(text, jsonb)"
    "  FROM PUBLIC;"
    "GRANT SELECT ON vmscope_schema, vmscope_hosts, vmscope_vms, vmscope_rankings,"
    "  vmscope_findings, vmscope_fleet_findings TO vmscope_host, vmscope_reader;"
    "GRANT EXECUTE ON FUNCTION vmscope_publish_vms(text, integer, jsonb, jsonb),"
    "  vmscope_publish_findings(text, jsonb, jsonb), vmscope_publish_fleet(text, jsonb)"
    "  TO vmscope_host;",
    /* 3: the previous snapshot as a merge patch onto the newest (RFC 7386: the members that
     * changed), not a second whole document: it was 46% of vmscope_vms. A row has one or the
     * other (whole where no patch can say it: a member set to null). */
    "ALTER TABLE vmscope_vms ADD COLUMN previous_patch jsonb,"
    "  ADD CONSTRAINT vmscope_vms_one_previous CHECK (previous IS NULL OR previous_patch IS NULL);"
    /* and the function that publishes them */
    PUBLISH_VMS_SQL("vmscope_vms.taken_at <= EXCLUDED.taken_at"),
    /* 4: the fleet's context (fleetview.h), written by the elected host from the whole view:
     * the other hosts rank their own VMs from it and read neither every VM's row nor more
     * than their own VMs' groups. One transaction replaces it whole. */
    "CREATE TABLE vmscope_context ("
    "  part text PRIMARY KEY CHECK (part = 'fleet' OR part ~ '^group:[0-9]+$'),"
    "  host text NOT NULL REFERENCES vmscope_hosts (host),"
    "  made_at timestamptz NOT NULL,"
    "  body jsonb NOT NULL);"
    "CREATE TABLE vmscope_vm_context ("
    "  uuid text PRIMARY KEY CHECK (length(uuid) BETWEEN 1 AND 1024),"
    "  made_at timestamptz NOT NULL,"
    "  body jsonb NOT NULL);"
    "CREATE FUNCTION vmscope_check_elected(p_host text) RETURNS void LANGUAGE plpgsql "
    "SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN"
    "  PERFORM vmscope_check_host(p_host);"
    "  IF NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory'"
    "      AND pid = pg_backend_pid() AND granted AND classid = 7761267"
    "      AND objid = 1668247653 AND objsubid = 1) THEN"
    "    RAISE EXCEPTION 'host % does not hold the fleet''s lock', p_host"
    "      USING ERRCODE = '42501';"
    "  END IF;"
    "END $$;"
    "CREATE FUNCTION vmscope_publish_context(p_host text, p_fleet jsonb, p_groups jsonb,"
    "  p_vms jsonb)"
    " RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN"
    "  PERFORM vmscope_check_elected(p_host);"
    "  DELETE FROM vmscope_context;"
    "  INSERT INTO vmscope_context (part, host, made_at, body) VALUES ('fleet', p_host, now(),"
    "    p_fleet);"
    "  INSERT INTO vmscope_context (part, host, made_at, body)"
    "    SELECT 'group:' || g.key, p_host, now(), g.value FROM jsonb_each(p_groups) AS g;"
    "  DELETE FROM vmscope_vm_context;"
    "  INSERT INTO vmscope_vm_context (uuid, made_at, body)"
    "    SELECT v.key, now(), v.value FROM jsonb_each(p_vms) AS v;"
    "END $$;"
    "REVOKE ALL ON vmscope_context, vmscope_vm_context FROM PUBLIC;"
    "REVOKE ALL ON FUNCTION vmscope_check_elected(text),"
    "  vmscope_publish_context(text, jsonb, jsonb, jsonb) FROM PUBLIC;"
    "GRANT SELECT ON vmscope_context, vmscope_vm_context TO vmscope_host, vmscope_reader;"
    "GRANT EXECUTE ON FUNCTION vmscope_publish_context(text, jsonb, jsonb, jsonb)"
    "  TO vmscope_host;",
    /* 5: each row's fingerprint, the SHA-256 of its content, computed by the server from the
     * row itself, whoever wrote it: the elected host loads again only the rows whose
     * fingerprint is not the one it holds. Each part but the last is a whole JSON text or
     * empty, so the separators cannot be read two ways. (decode(..., 'escape') of the text
     * with its backslashes doubled is its bytes: convert_to, the obvious way, is not immutable
     * and a generated column must be.) */
    "ALTER TABLE vmscope_vms ADD COLUMN content_sha256 text GENERATED ALWAYS AS (encode(sha256("
    "  decode(replace(doc::text || '|' || coalesce(previous::text, '') || '|' ||"
    "  coalesce(previous_patch::text, '') || '|' || host, '\\', '\\\\'), 'escape')), 'hex'))"
    "  STORED;"
    /* And a publish rewrites only the rows that changed: every host publishes every VM each
     * round, and rewriting the same row each time left as many dead rows as live ones (the
     * store's vmscope_vms twice its size in bench/fleet-scale.sh) and a new fingerprint to
     * compute. `published` is then when the row's content was published. */
    PUBLISH_VMS_SQL(
        "vmscope_vms.taken_at <= EXCLUDED.taken_at AND (vmscope_vms.host,"
        " vmscope_vms.name, vmscope_vms.taken_at, vmscope_vms.doc, vmscope_vms.previous,"
        " vmscope_vms.previous_patch) IS DISTINCT FROM (EXCLUDED.host, EXCLUDED.name,"
        " EXCLUDED.taken_at, EXCLUDED.doc, EXCLUDED.previous, EXCLUDED.previous_patch)")
    /* A host's findings by its name, not by reading every host's: a publish removed them with
     * one statement whose OR no index serves, a scan of the whole table each round (a host's
     * publish 0.26 s at 100 hosts, 0.46 s at 300, in bench/fleet-scale.sh). */
    "CREATE INDEX vmscope_findings_host ON vmscope_findings (host);"
    "CREATE INDEX vmscope_rankings_host ON vmscope_rankings (host);"
    /* and the removal in two statements, one for each index */
    PUBLISH_FINDINGS_SQL(
        "CREATE OR REPLACE",
        "  DELETE FROM vmscope_findings f USING jsonb_to_recordset(p_rankings)"
        "    AS r(uuid text) WHERE f.uuid = r.uuid AND f.ranked_at < now();"
        "  DELETE FROM vmscope_findings f WHERE f.host = p_host AND NOT f.uuid IN"
        "    (SELECT r.uuid FROM jsonb_to_recordset(p_rankings) AS r(uuid text));"),
    /* 6: the context written from what changed: rewriting every VM's part each refresh was a
     * sixth of the elected host's refresh (2.8 s of 17.3 s at 300 hosts in
     * bench/fleet-scale.sh), and a VM's part changes only when its group, role or digest
     * does. P_BASE is the epoch of the context this host wrote last, in microseconds (NULL:
     * write it whole; bigint, as extract() is a float before PostgreSQL 14 and a float's
     * epoch does not survive a round trip as text); when the context is another one (another
     * host was elected since) or is later than now (the server's clock went back: a VM part
     * written now would be older than the fleet part), nothing is written and NULL says so.
     * A VM part's made_at is when it was last written: the fleet part's says how fresh the
     * whole is. Returns the new context's epoch. */
    "DROP FUNCTION vmscope_publish_context(text, jsonb, jsonb, jsonb);"
    "CREATE FUNCTION vmscope_publish_context(p_host text, p_base bigint, p_fleet jsonb,"
    "  p_groups jsonb, p_vms jsonb, p_gone jsonb)"
    " RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ BEGIN"
    "  PERFORM vmscope_check_elected(p_host);"
    "  IF p_base IS NULL THEN"
    "    DELETE FROM vmscope_vm_context;"
    "  ELSIF NOT EXISTS (SELECT FROM vmscope_context WHERE part = 'fleet' AND host = p_host"
    "      AND (extract(epoch FROM made_at) * 1000000)::bigint = p_base AND made_at <= now()) THEN"
    "    RETURN NULL;"
    "  ELSE"
    "    DELETE FROM vmscope_vm_context WHERE uuid IN (SELECT jsonb_array_elements_text(p_gone));"
    "  END IF;"
    "  DELETE FROM vmscope_context;"
    "  INSERT INTO vmscope_context (part, host, made_at, body) VALUES ('fleet', p_host, now(),"
    "    p_fleet);"
    "  INSERT INTO vmscope_context (part, host, made_at, body)"
    "    SELECT 'group:' || g.key, p_host, now(), g.value FROM jsonb_each(p_groups) AS g;"
    "  INSERT INTO vmscope_vm_context (uuid, made_at, body)"
    "    SELECT v.key, now(), v.value FROM jsonb_each(p_vms) AS v"
    "    ON CONFLICT (uuid) DO UPDATE SET made_at = EXCLUDED.made_at, body = EXCLUDED.body;"
    "  RETURN (extract(epoch FROM now()) * 1000000)::bigint;"
    "END $$;"
    "REVOKE ALL ON FUNCTION vmscope_publish_context(text, bigint, jsonb, jsonb, jsonb, jsonb)"
    "  FROM PUBLIC;"
    "GRANT EXECUTE ON FUNCTION vmscope_publish_context(text, bigint, jsonb, jsonb, jsonb, jsonb)"
    "  TO vmscope_host;",
    /* 7: each finding kept once, in its ranking's drift document, which held every one of them
     * already: vmscope_findings repeated them a row each, 70% of the store at 2,000 keys a VM
     * (bench/fleet-scale.sh: 53 of 80 KB a VM), and its rows were a host's publish. It is now
     * a view of the same columns over vmscope_rankings; a finding's "since" (kept while its
     * value stays) is in the ranking's SINCE, key -> time. The publish checks each finding has
     * the columns the view makes of it, so that no host's document can break a reader's query;
     * the rankings written before that fail the check go (their hosts write them again the
     * next round). The times carry over. */
    "CREATE FUNCTION vmscope_drift_ok(p_drift jsonb) RETURNS boolean LANGUAGE plpgsql"
    " IMMUTABLE SET search_path FROM CURRENT AS $$ BEGIN"
    "  IF jsonb_typeof(p_drift -> 'findings') IS DISTINCT FROM 'array' THEN RETURN false; END IF;"
    "  RETURN NOT EXISTS (SELECT FROM jsonb_to_recordset(p_drift -> 'findings') AS f(key text,"
    "      value text, majority jsonb, n integer, score double precision, p double precision,"
    "      severity text, kind text, rank integer, waived boolean)"
    "    GROUP BY f.key HAVING count(*) > 1 OR bool_or(f.key IS NULL"
    "      OR f.value IS NULL OR f.n IS NULL OR f.score IS NULL OR f.p IS NULL"
    "      OR f.severity IS NULL OR f.kind IS NULL OR f.rank IS NULL OR f.waived IS NULL"
    "      OR jsonb_typeof(f.majority) IS DISTINCT FROM 'object'"
    "      OR (f.majority ->> 'count')::integer IS NULL"
    "      OR (f.majority ->> 'share')::double precision IS NULL));"
    "EXCEPTION WHEN OTHERS THEN RETURN false; END $$;"
    "REVOKE ALL ON FUNCTION vmscope_drift_ok(jsonb) FROM PUBLIC;"
    "DELETE FROM vmscope_rankings WHERE NOT vmscope_drift_ok(drift);"
    "ALTER TABLE vmscope_rankings ADD COLUMN since jsonb NOT NULL DEFAULT '{}';"
    "UPDATE vmscope_rankings k SET since = coalesce((SELECT jsonb_object_agg(f.key, f.since)"
    "  FROM vmscope_findings f WHERE f.uuid = k.uuid), '{}');"
    "DROP FUNCTION vmscope_publish_findings(text, jsonb, jsonb);"
    "DROP TABLE vmscope_findings;"
    "CREATE VIEW vmscope_findings AS"
    "  SELECT k.uuid, k.host, k.name, f.key, f.value,"
    "    coalesce(f.majority ->> 'value', '') AS majority,"
    "    (f.majority ->> 'count')::integer AS majority_count, f.n AS peers,"
    "    coalesce((f.majority ->> 'share')::double precision, 0) AS share, f.score, f.p,"
    "    f.severity, f.kind, f.rank, f.waived, (k.since ->> f.key)::timestamptz AS since,"
    "    k.ranked_at"
    "  FROM vmscope_rankings k CROSS JOIN LATERAL jsonb_to_recordset(k.drift -> 'findings')"
    "    AS f(key text, value text, majority jsonb, n integer, score double precision,"
    "      p double precision, severity text, kind text, rank integer, waived boolean);"
    "CREATE FUNCTION vmscope_publish_findings(p_host text, p_rankings jsonb)"
    " RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ "
    "BEGIN" FINDINGS_CHECKS_SQL
        /* Each VM's since, one VM at a time: its new findings against its old ones, whose
         * values and times are read apart and joined by key (since -> key for each finding
         * decompressed since again each time: 36 of 160 ms for 100 VMs of 144 findings), so
         * that no plan can join one VM's findings with another's (a nested loop over every VM's,
         * 1.1 s for 100 VMs when the table was small). */
        FINDINGS_INSERT_SQL
    "  DELETE FROM vmscope_rankings k WHERE k.host = p_host AND NOT k.uuid IN"
    "    (SELECT r.uuid FROM jsonb_to_recordset(p_rankings) AS r(uuid text));"
    "END $$;"
    /* And a host sends again only the VMs whose documents changed since it published them
     * (sending and comparing every document each round was a third of a host's round at
     * 2,000 keys a VM: 0.50 of 1.54 s): for each other VM it names the fingerprint of the
     * row it wrote (P_KEPT: [{uuid, sha}]). A VM snapshotted again that found nothing changed
     * (every VM, every hour, by default) is such a row with its new time: {uuid, sha, taken_at,
     * previous_patch}, the previous snapshot now being the newest the row held, the patch onto
     * the newest that says so. When one of the rows named is not that one (changed or gone,
     * whoever did it), nothing is written and NULL says so: the host sends every VM. Returns
     * the fingerprints of the rows of P_VMS and of those given a new time that are now this
     * host's. */
    "DROP FUNCTION vmscope_publish_vms(text, integer, jsonb, jsonb);"
    PUBLISH_VMS_HEAD_SQL("CREATE")
    PUBLISH_VMS_UPSERT_SQL
    " doc = EXCLUDED.doc,"
    "      previous = EXCLUDED.previous, previous_patch = EXCLUDED.previous_patch"
    "      WHERE vmscope_vms.taken_at <= EXCLUDED.taken_at AND (vmscope_vms.host,"
    "        vmscope_vms.name, vmscope_vms.taken_at, vmscope_vms.doc, vmscope_vms.previous,"
    "        vmscope_vms.previous_patch) IS DISTINCT FROM (EXCLUDED.host, EXCLUDED.name,"
    "        EXCLUDED.taken_at, EXCLUDED.doc, EXCLUDED.previous, EXCLUDED.previous_patch);"
    "  UPDATE vmscope_vms v SET taken_at = k.taken_at::timestamptz, published = now(),"
    "      doc = jsonb_set(v.doc, '{taken_at}', to_jsonb(k.taken_at)), previous = NULL,"
    "      previous_patch = k.previous_patch"
    "    FROM jsonb_to_recordset(p_kept) AS k(uuid text, sha text, taken_at text,"
    "      previous_patch jsonb)"
    "    WHERE k.taken_at IS NOT NULL AND v.uuid = k.uuid AND v.host = p_host"
    "      AND v.content_sha256 = k.sha AND v.taken_at <= k.taken_at::timestamptz;"
    PUBLISH_VMS_TAIL_SQL
    "REVOKE ALL ON FUNCTION vmscope_publish_vms(text, integer, jsonb, jsonb, jsonb) FROM PUBLIC;"
    "GRANT EXECUTE ON FUNCTION vmscope_publish_vms(text, integer, jsonb, jsonb, jsonb)"
    "  TO vmscope_host;"
    "REVOKE ALL ON vmscope_findings FROM PUBLIC;"
    "REVOKE ALL ON FUNCTION vmscope_publish_findings(text, jsonb) FROM PUBLIC;"
    "GRANT SELECT ON vmscope_findings TO vmscope_host, vmscope_reader;"
    "GRANT EXECUTE ON FUNCTION vmscope_publish_findings(text, jsonb) TO vmscope_host;",
    /* 8: a host sends again only the rankings that changed since it published them (every
     * ranking rewritten every round was most of a round's writes at 2,000 keys a VM, a new
     * compressed drift document a VM each time, when most are what they were): for each other
     * VM it names the fingerprint of the ranking it wrote (P_KEPT: [{uuid, sha}]), which is
     * kept as it is, drift and since untouched, and marked ranked now. When one named is not
     * that one (changed or gone, whoever did it), nothing is written and NULL says so: the host
     * sends every ranking. Returns the fingerprints of the rankings of P_RANKINGS. */
    /* Generated, as vmscope_vms.content_sha256: any change to the row changes it. */
    "ALTER TABLE vmscope_rankings ADD COLUMN sha256 text GENERATED ALWAYS AS (encode(sha256("
    "  decode(replace(host || '|' || name || '|' || samples::text || '|' || alarms::text || '|'"
    "  || unique_vm::text || '|' || drift::text, '\\', '\\\\'), 'escape')), 'hex')) STORED;"
    "DROP FUNCTION vmscope_publish_findings(text, jsonb);"
    PUBLISH_FINDINGS_KEPT_SQL("CREATE")
    FINDINGS_INSERT_SQL
    "  UPDATE vmscope_rankings o SET ranked_at = now()"
    "    FROM jsonb_to_recordset(p_kept) AS k(uuid text) WHERE o.uuid = k.uuid"
    "      AND o.host = p_host;"
    PUBLISH_FINDINGS_TAIL_SQL
    "REVOKE ALL ON FUNCTION vmscope_publish_findings(text, jsonb, jsonb) FROM PUBLIC;"
    "GRANT EXECUTE ON FUNCTION vmscope_publish_findings(text, jsonb, jsonb) TO vmscope_host;",
    /* 9: a row rewritten only where what it holds changed. Every VM is snapshotted again every
     * hour by default, and most find nothing changed: the row's document was rewritten only
     * for its new time (jsonb_set), its whole compressed TOAST value again (11 KB a VM at
     * 2,000 settings, about 1.1 GB an hour at 100,000 VMs, WAL and dead rows alike). The new
     * time is now RETAKEN_AT, the newest snapshot's taken_at as its host wrote it, when the
     * document's own is its first one found unchanged since; readers take the newest as the
     * document with RETAKEN_AT for its taken_at. The fingerprint covers it (length-prefixed:
     * the parts cannot be read two ways); rows written before get their new fingerprints here,
     * so a host's first publish after this sends every VM once. */
    "ALTER TABLE vmscope_vms ADD COLUMN retaken_at text;"
    "ALTER TABLE vmscope_vms DROP COLUMN content_sha256;"
    "ALTER TABLE vmscope_vms ADD COLUMN content_sha256 text GENERATED ALWAYS AS (encode(sha256("
    "  decode(replace(doc::text || '|' || coalesce(previous::text, '') || '|' ||"
    "  coalesce(previous_patch::text, '') || '|' ||"
    "  coalesce(length(retaken_at)::text || ':' || retaken_at, '') || '|' || host,"
    "  '\\', '\\\\'), 'escape')), 'hex')) STORED;"
    /* A ranking is marked ranked now each round it did not change (kept, schema version 8):
     * each mark is a new version of the row, and the row carried its since inline (1 KB a VM
     * compressed), so most of a round's writes were copies of it. Rows over 128 bytes now
     * keep their large values out of line (since too: a new version shares it), and pages
     * keep a fifth free, so that a mark can be a heap-only update on the same page, pruned
     * without a vacuum. */
    "ALTER TABLE vmscope_rankings SET (toast_tuple_target = 128, fillfactor = 80);"
    "ALTER TABLE vmscope_vms SET (fillfactor = 80);"
    /* A row's newest document: DOC, with RETAKEN_AT for its taken_at when there is one (a
     * document that is not an object, which the readers refuse, as it is: jsonb_set would
     * fail every publish that compared with it). Not a RETURN-bodied function: PostgreSQL 12
     * and 13 have none. And a publish refuses a document that is not an object. */
    "CREATE FUNCTION vmscope_newest(p_doc jsonb, p_retaken_at text) RETURNS jsonb"
    " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN p_retaken_at IS NULL"
    " OR jsonb_typeof(p_doc) IS DISTINCT FROM 'object' THEN p_doc"
    " ELSE jsonb_set(p_doc, '{taken_at}', to_jsonb(p_retaken_at)) END $$;"
    "GRANT EXECUTE ON FUNCTION vmscope_newest(jsonb, text) TO vmscope_host, vmscope_reader;"
    PUBLISH_VMS_HEAD_SQL("CREATE OR REPLACE")
    "  IF EXISTS (SELECT FROM jsonb_to_recordset(p_vms) AS r(uuid text, doc jsonb)"
    "      WHERE r.uuid IS NULL OR jsonb_typeof(r.doc) IS DISTINCT FROM 'object') THEN"
    "    RAISE EXCEPTION 'host %: a VM without a uuid, or whose document is not a JSON object',"
    "      p_host USING ERRCODE = '22023';"
    "  END IF;"
    /* A row that holds what was sent already (its time as RETAKEN_AT) is left as it is, and
     * one whose newest document is the one sent keeps it as it is held: one content, one
     * fingerprint, and no document written again for another column. */
    PUBLISH_VMS_UPSERT_SQL
    "      doc = CASE WHEN vmscope_newest(vmscope_vms.doc, vmscope_vms.retaken_at) = EXCLUDED.doc"
    "        THEN vmscope_vms.doc ELSE EXCLUDED.doc END,"
    "      retaken_at = CASE WHEN vmscope_newest(vmscope_vms.doc, vmscope_vms.retaken_at) ="
    "        EXCLUDED.doc THEN vmscope_vms.retaken_at END,"
    "      previous = EXCLUDED.previous, previous_patch = EXCLUDED.previous_patch"
    "      WHERE vmscope_vms.taken_at <= EXCLUDED.taken_at AND (vmscope_vms.host,"
    "        vmscope_vms.name, vmscope_vms.taken_at,"
    "        vmscope_newest(vmscope_vms.doc, vmscope_vms.retaken_at), vmscope_vms.previous,"
    "        vmscope_vms.previous_patch) IS DISTINCT FROM (EXCLUDED.host, EXCLUDED.name,"
    "        EXCLUDED.taken_at, EXCLUDED.doc, EXCLUDED.previous, EXCLUDED.previous_patch);"
    "  UPDATE vmscope_vms v SET taken_at = k.taken_at::timestamptz, published = now(),"
    "      retaken_at = k.taken_at, previous = NULL, previous_patch = k.previous_patch"
    "    FROM jsonb_to_recordset(p_kept) AS k(uuid text, sha text, taken_at text,"
    "      previous_patch jsonb)"
    "    WHERE k.taken_at IS NOT NULL AND v.uuid = k.uuid AND v.host = p_host"
    "      AND v.content_sha256 = k.sha AND v.taken_at <= k.taken_at::timestamptz;"
    PUBLISH_VMS_TAIL_SQL
    /* And a ranking sent that is what its row holds already (sent by a host that does not
     * know its fingerprint: after a restart) is kept as if named: not written again, its since
     * not worked out again, nor checked again (it was when written): 0.27 s of server time for
     * 100 VMs at 2,000 keys before, when every ranking of a host restarted was. */
    PUBLISH_FINDINGS_SIGNATURE_SQL("CREATE OR REPLACE")
    "DECLARE v_same text[]; "
    "BEGIN"
    FINDINGS_HOST_SQL
    FINDINGS_KEPT_AS_NAMED_SQL
    "  v_same := ARRAY(SELECT r.uuid FROM jsonb_to_recordset(p_rankings) AS r(uuid text,"
    "      name text, samples integer, alarms integer, unique_vm boolean, drift jsonb)"
    "    JOIN vmscope_rankings o ON o.uuid = r.uuid AND o.host = p_host"
    "      AND (o.name, o.samples, o.alarms, o.unique_vm, o.drift) ="
    "        (r.name, r.samples, r.alarms, r.unique_vm, r.drift));"
    FINDINGS_SHOWN_SQL("(r.uuid = ANY (v_same)) IS NOT TRUE AND ")
    FINDINGS_INSERT_WHERE_SQL("    WHERE (r.uuid = ANY (v_same)) IS NOT TRUE")
    /* those written now are ranked now: the others sent, and those named, are marked so (a
     * ranking the server's clock put later than now too) */
    "  UPDATE vmscope_rankings o SET ranked_at = now()"
    "    WHERE o.host = p_host AND o.ranked_at <> now() AND o.uuid IN"
    "      (SELECT r.uuid FROM jsonb_to_recordset(p_rankings) AS r(uuid text)"
    "       UNION ALL SELECT k.uuid FROM jsonb_to_recordset(p_kept) AS k(uuid text));"
    PUBLISH_FINDINGS_TAIL_SQL,
    /* 10: what a host's VMs share, stored once. Each row held its VM's settings whole: 11 KB
     * a VM compressed at 2,000 settings, nearly half the store (bench/fleet-scale.sh: 24.5 KB a
     * VM, 2.3 GiB for 100,000 VMs), when most of them are what the host's other VMs hold too.
     * A host now keeps a baseline (baseline.h: the value more than half of its VMs hold of each
     * key), named by the host after its content (ID), and a row with a BASELINE holds its
     * settings as a merge patch onto it (RFC 7386: the keys whose value differs, null for the
     * baseline's keys the VM lacks), as "settings_patch" in place of "settings": a host of an
     * earlier version, which would read the patch as the settings, refuses a document without
     * them instead. A row without one holds them whole, as before. A row refers to a baseline
     * by its SERIAL, which the store gives it and never gives again, and the row's fingerprint
     * covers it: a baseline that went and came back under the same id with other settings is
     * another serial, and its rows are read again. A host writes only its own baselines, and
     * a row refers only to its own host's (the foreign key). */
    "CREATE TABLE vmscope_baselines ("
    "  serial bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  host text NOT NULL REFERENCES vmscope_hosts (host),"
    "  id text NOT NULL CHECK (id ~ '^[0-9a-f]{32}$'),"
    "  made_at timestamptz NOT NULL,"
    "  settings jsonb NOT NULL CHECK (jsonb_typeof(settings) = 'object'),"
    "  UNIQUE (host, id), UNIQUE (host, serial));"
    "ALTER TABLE vmscope_vms ADD COLUMN baseline bigint,"
    "  ADD CONSTRAINT vmscope_vms_baseline FOREIGN KEY (host, baseline)"
    "    REFERENCES vmscope_baselines (host, serial);"
    /* the host's rows by host, and by baseline when a baseline goes (the foreign key's check) */
    "DROP INDEX vmscope_vms_host;"
    "CREATE INDEX vmscope_vms_host ON vmscope_vms (host, baseline);"
    "ALTER TABLE vmscope_vms DROP COLUMN content_sha256;"
    "ALTER TABLE vmscope_vms ADD COLUMN content_sha256 text GENERATED ALWAYS AS (encode(sha256("
    "  decode(replace(doc::text || '|' || coalesce(previous::text, '') || '|' ||"
    "  coalesce(previous_patch::text, '') || '|' ||"
    "  coalesce(length(retaken_at)::text || ':' || retaken_at, '') || '|' ||"
    "  coalesce(baseline::text, '') || '|' || host, '\\', '\\\\'), 'escape')), 'hex')) STORED;"
    /* A row's settings whole, for a reader in SQL: DOC's, or (P_BASELINE: the settings of the
     * row's baseline) the baseline's patched by DOC's. */
    "CREATE FUNCTION vmscope_settings(p_doc jsonb, p_baseline jsonb) RETURNS jsonb"
    " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN p_baseline IS NULL"
    " THEN p_doc -> 'settings'"
    " ELSE jsonb_strip_nulls(p_baseline || (p_doc -> 'settings_patch')) END $$;"
    "GRANT EXECUTE ON FUNCTION vmscope_settings(jsonb, jsonb) TO vmscope_host, vmscope_reader;"
    "REVOKE ALL ON vmscope_baselines FROM PUBLIC;"
    "GRANT SELECT ON vmscope_baselines TO vmscope_host, vmscope_reader;"
    /* The publish names the baseline every row it sends is a patch onto, P_BASELINE {id,
     * settings}, its settings left out when the host knows the store holds it; when the store
     * does not (any more), nothing is written and NULL says so, as for a kept row not as
     * named: the host sends every VM, and its baseline. (P_BASELINE NULL: the rows hold their
     * settings whole.) A host's publishes take its row in vmscope_hosts first, so that one
     * does not remove a baseline another's checks found. A baseline no row of the host refers
     * to any more goes (but the one named). */
    "DROP FUNCTION vmscope_publish_vms(text, integer, jsonb, jsonb, jsonb);"
    PUBLISH_VMS_HEAD_WITH_SQL("CREATE", ", p_baseline jsonb DEFAULT NULL",
        "DECLARE v_baseline bigint; ",
        "  PERFORM 1 FROM vmscope_hosts WHERE host = p_host FOR UPDATE;",
        " OR (p_baseline IS NOT NULL AND p_baseline -> 'settings' IS NULL AND NOT EXISTS"
        "    (SELECT FROM vmscope_baselines b WHERE b.host = p_host"
        "       AND b.id = p_baseline ->> 'id'))")
    "  IF EXISTS (SELECT FROM jsonb_to_recordset(p_vms) AS r(uuid text, doc jsonb)"
    "      WHERE r.uuid IS NULL OR jsonb_typeof(r.doc) IS DISTINCT FROM 'object') THEN"
    "    RAISE EXCEPTION 'host %: a VM without a uuid, or whose document is not a JSON object',"
    "      p_host USING ERRCODE = '22023';"
    "  END IF;"
    "  INSERT INTO vmscope_baselines (host, id, made_at, settings)"
    "    SELECT p_host, p_baseline ->> 'id', now(), p_baseline -> 'settings'"
    "    WHERE p_baseline -> 'settings' IS NOT NULL ON CONFLICT DO NOTHING;"
    "  v_baseline := (SELECT b.serial FROM vmscope_baselines b WHERE b.host = p_host"
    "    AND b.id = p_baseline ->> 'id');"
    "  INSERT INTO vmscope_vms (uuid, host, name, taken_at, published, doc, previous,"
    "      previous_patch, baseline)"
    "    SELECT r.uuid, p_host, r.name, r.taken_at, now(), r.doc, r.previous, r.previous_patch,"
    "      v_baseline"
    "    FROM jsonb_to_recordset(p_vms) AS r(uuid text, name text, taken_at timestamptz,"
    "      doc jsonb, previous jsonb, previous_patch jsonb)"
    "    ON CONFLICT (uuid) DO UPDATE SET host = EXCLUDED.host, name = EXCLUDED.name,"
    "      taken_at = EXCLUDED.taken_at, published = EXCLUDED.published,"
    "      doc = CASE WHEN (vmscope_newest(vmscope_vms.doc, vmscope_vms.retaken_at),"
    "          vmscope_vms.baseline) IS NOT DISTINCT FROM (EXCLUDED.doc, EXCLUDED.baseline)"
    "        THEN vmscope_vms.doc ELSE EXCLUDED.doc END,"
    "      retaken_at = CASE WHEN (vmscope_newest(vmscope_vms.doc, vmscope_vms.retaken_at),"
    "          vmscope_vms.baseline) IS NOT DISTINCT FROM (EXCLUDED.doc, EXCLUDED.baseline)"
    "        THEN vmscope_vms.retaken_at END,"
    "      baseline = EXCLUDED.baseline,"
    "      previous = EXCLUDED.previous, previous_patch = EXCLUDED.previous_patch"
    "      WHERE vmscope_vms.taken_at <= EXCLUDED.taken_at AND (vmscope_vms.host,"
    "        vmscope_vms.name, vmscope_vms.taken_at,"
    "        vmscope_newest(vmscope_vms.doc, vmscope_vms.retaken_at), vmscope_vms.baseline,"
    "        vmscope_vms.previous, vmscope_vms.previous_patch) IS DISTINCT FROM (EXCLUDED.host,"
    "        EXCLUDED.name, EXCLUDED.taken_at, EXCLUDED.doc, EXCLUDED.baseline,"
    "        EXCLUDED.previous, EXCLUDED.previous_patch);"
    "  UPDATE vmscope_vms v SET taken_at = k.taken_at::timestamptz, published = now(),"
    "      retaken_at = k.taken_at, previous = NULL, previous_patch = k.previous_patch"
    "    FROM jsonb_to_recordset(p_kept) AS k(uuid text, sha text, taken_at text,"
    "      previous_patch jsonb)"
    "    WHERE k.taken_at IS NOT NULL AND v.uuid = k.uuid AND v.host = p_host"
    "      AND v.content_sha256 = k.sha AND v.taken_at <= k.taken_at::timestamptz;"
    PUBLISH_VMS_TAIL_WITH_SQL(
    "  DELETE FROM vmscope_baselines b WHERE b.host = p_host"
    "    AND b.serial IS DISTINCT FROM v_baseline AND NOT EXISTS"
    "      (SELECT FROM vmscope_vms v WHERE v.host = p_host AND v.baseline = b.serial);")
    "REVOKE ALL ON FUNCTION vmscope_publish_vms(text, integer, jsonb, jsonb, jsonb, jsonb)"
    "  FROM PUBLIC;"
    "GRANT EXECUTE ON FUNCTION vmscope_publish_vms(text, integer, jsonb, jsonb, jsonb, jsonb)"
    "  TO vmscope_host;",
};
/* clang-format on */
_Static_assert(sizeof(migrations) / sizeof(*migrations) == VS_STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* What this host wrote of the context is no longer known to be what the store holds. */
static void forget_context(struct vs_store *s) {
  free(s->context_base);
  s->context_base = NULL;
  vs_strmap_free(s->context_vm_parts);
  s->context_vm_parts = NULL;
}

/* All a writer of the context keeps: the context as written and the digests. */
static void drop_writer_state(struct vs_store *s) {
  forget_context(s);
  vs_strmap_free(s->digests);
  s->digests = NULL;
}

char *vs_store_url_safe(const char *url) {
  /* postgresql://user:PASSWORD@host/... and password=... in a key=value string */
  const char *scheme = strstr(url, "://");
  if (scheme) {
    const char *auth = scheme + 3, *at = strchr(auth, '@'), *slash = strchr(auth, '/');
    const char *colon = strchr(auth, ':');
    if (at && (!slash || at < slash) && colon && colon < at)
      return vs_xasprintf("%.*s:***%s", (int)(colon - url), url, at);
    return vs_xstrdup(url);
  }
  const char *pw = strstr(url, "password=");
  if (!pw) return vs_xstrdup(url);
  const char *end = strchr(pw, ' ');
  return vs_xasprintf("%.*spassword=***%s", (int)(pw - url), url, end ? end : "");
}

static int pq_fail(struct vs_store *s, PGresult *r, const char *what, struct vs_err *err) {
  const char *msg = r ? sym_PQresultErrorMessage(r) : "";
  if (!*msg) msg = sym_PQerrorMessage(s->conn);
  if (!*msg && r) msg = sym_PQresStatus(sym_PQresultStatus(r)); /* a query of the wrong kind */
  vs_err_set(err, EIO, "fleet store %s: %s: %.*s", s->safe_url, what, (int)strcspn(msg, "\n"), msg);
  sym_PQclear(r);
  return -1;
}

/* Runs SQL with PARAMS (text), expecting STATUS; the result, or NULL with ERR. */
static PGresult *run(struct vs_store *s, const char *what, ExecStatusType status, const char *sql,
                     int n, const char *const *params, struct vs_err *err) {
  PGresult *r = sym_PQexecParams(s->conn, sql, n, NULL, params, NULL, NULL, 0);
  if (sym_PQresultStatus(r) != status) {
    pq_fail(s, r, what, err);
    return NULL;
  }
  return r;
}

static int exec(struct vs_store *s, const char *what, const char *sql, int n,
                const char *const *params, struct vs_err *err) {
  PGresult *r = run(s, what, PGRES_COMMAND_OK, sql, n, params, err);
  if (!r) return -1;
  sym_PQclear(r);
  return 0;
}

/* Calls one of the schema's functions (one statement: one transaction). */
static int call(struct vs_store *s, const char *what, const char *sql, int n,
                const char *const *params, struct vs_err *err) {
  PGresult *r = run(s, what, PGRES_TUPLES_OK, sql, n, params, err);
  if (!r) return -1;
  sym_PQclear(r);
  return 0;
}

/* Calls a publishing function that returns the fingerprints of the rows it wrote (uuid ->
 * sha): that object, JSON null when the function refused what was named as kept (nothing
 * written), or NULL with ERR. */
static json_t *call_fingerprints(struct vs_store *s, const char *what, const char *sql, int n,
                                 const char *const *params, struct vs_err *err) {
  PGresult *r = run(s, what, PGRES_TUPLES_OK, sql, n, params, err);
  if (!r) return NULL;
  json_t *shas = NULL;
  if (sym_PQntuples(r) == 1 && sym_PQgetisnull(r, 0, 0))
    shas = json_null();
  else if (sym_PQntuples(r) == 1)
    shas =
        vs_json_loadb_strict(sym_PQgetvalue(r, 0, 0), (size_t)sym_PQgetlength(r, 0, 0), what, err);
  if (shas && !json_is_object(shas) && !json_is_null(shas)) {
    json_decref(shas);
    shas = NULL;
  }
  if (!shas && !err->msg)
    vs_err_set(err, EIO, "fleet store %s: %s: no fingerprints returned", s->safe_url, what);
  sym_PQclear(r);
  return shas;
}

/* SHAS, what a publishing call sending every row returned after a call that named rows as kept
 * was refused: a refusal now, with none kept, is an error (NULL with ERR). */
static json_t *resent(struct vs_store *s, json_t *shas, const char *what, struct vs_err *err) {
  if (!json_is_null(shas)) return shas;
  json_decref(shas);
  vs_err_set(err, EIO, "fleet store %s: %s: refused with none kept", s->safe_url, what);
  return NULL;
}

static int begin(struct vs_store *s, struct vs_err *err) {
  return exec(s, "BEGIN", "BEGIN", 0, NULL, err);
}

/* Ends the transaction: COMMIT when RC is 0, else ROLLBACK (ERR keeps the first failure). */
static int end(struct vs_store *s, int rc, struct vs_err *err) {
  if (rc == 0) return exec(s, "COMMIT", "COMMIT", 0, NULL, err);
  sym_PQclear(sym_PQexec(s->conn, "ROLLBACK"));
  return -1;
}

static char *read_password(const char *path, struct vs_err *err) {
  FILE *f = fopen(path, "re");
  if (!f) {
    vs_err_set(err, errno, "%s: cannot read the fleet store's password: %s", path, strerror(errno));
    return NULL;
  }
  char line[1024];
  bool got = fgets(line, sizeof(line), f) != NULL;
  bool more = got && !strchr(line, '\n') && !feof(f) && fgetc(f) != EOF;
  fclose(f);
  if (!got || more) {
    vs_err_set(err, EINVAL, "%s: %s", path,
               got ? "the password's line is longer than 1023 bytes" : "the file is empty");
    return NULL;
  }
  line[strcspn(line, "\r\n")] = '\0';
  return vs_xstrdup(line);
}

/* The schema's version: 0 when there is none yet. */
static int read_version(struct vs_store *s, int *version, struct vs_err *err) {
  PGresult *r = run(s, "reading the schema's version", PGRES_TUPLES_OK,
                    "SELECT to_regclass('vmscope_schema') IS NOT NULL", 0, NULL, err);
  if (!r) return -1;
  bool exists = strcmp(sym_PQgetvalue(r, 0, 0), "t") == 0;
  sym_PQclear(r);
  *version = 0;
  if (!exists) return 0;
  if (!(r = run(s, "reading the schema's version", PGRES_TUPLES_OK,
                "SELECT coalesce(max(version), 0) FROM vmscope_schema", 0, NULL, err)))
    return -1;
  *version = atoi(sym_PQgetvalue(r, 0, 0));
  sym_PQclear(r);
  return 0;
}

/* Brings the schema to the newest version. Only a store that needs it is changed, so that a
 * host whose role may not create tables connects to a store that is up to date. */
static int migrate(struct vs_store *s, struct vs_err *err) {
  const size_t n = sizeof(migrations) / sizeof(*migrations);
  int version;
  if (read_version(s, &version, err) < 0) return -1;
  if (version == (int)n) return 0;
  if (version > (int)n)
    return vs_err_set(err, EPROTO,
                      "fleet store %s: its schema is version %d, newer than this vmscope's %zu: "
                      "upgrade vmscope on this host",
                      s->safe_url, version, n);
  if (s->read_only && version == 0)
    return vs_err_set(err, ENOENT,
                      "fleet store %s: the database holds no vmscope schema (is it the fleet's "
                      "database?); its owner creates it with vmscope fleet migrate",
                      s->safe_url);
  if (s->read_only)
    return vs_err_set(err, EPROTO,
                      "fleet store %s: its schema is version %d, older than this vmscope's %zu: "
                      "its owner brings it up to date with vmscope fleet migrate",
                      s->safe_url, version, n);
  /* One migrates at a time: the others wait for the lock, then find the work done. */
  if (begin(s, err) < 0) return -1;
  PGresult *r = run(s, "locking the schema", PGRES_TUPLES_OK, "SELECT pg_advisory_xact_lock(7666)",
                    0, NULL, err);
  int rc = r ? 0 : -1;
  sym_PQclear(r);
  if (rc == 0)
    rc = exec(s, "creating vmscope_schema",
              "CREATE TABLE IF NOT EXISTS vmscope_schema (version integer NOT NULL)", 0, NULL, err);
  if (rc == 0) rc = read_version(s, &version, err);
  for (size_t i = (size_t)version; rc == 0 && i < n; i++) {
    PGresult *m = sym_PQexec(s->conn, migrations[i]);
    if (sym_PQresultStatus(m) != PGRES_COMMAND_OK) {
      char *what = vs_xasprintf("migrating the schema to version %zu (by its owner, a role "
                                "that may create tables and roles)",
                                i + 1);
      rc = pq_fail(s, m, what, err);
      free(what);
      break;
    }
    sym_PQclear(m);
    char v[16];
    snprintf(v, sizeof(v), "%zu", i + 1);
    const char *p[] = {v};
    rc = exec(s, "recording the schema's version", "INSERT INTO vmscope_schema VALUES ($1)", 1, p,
              err);
  }
  return end(s, rc, err);
}

/* Connects (again) and migrates: a new session holds no advisory lock, so the election is run
 * again too. */
static int connect_store(struct vs_store *s, struct vs_err *err) {
  if (s->conn && sym_PQstatus(s->conn) == CONNECTION_OK && s->migrated) return 0;
  s->elected = s->migrated = s->no_lz4 = false;
  if (s->conn) sym_PQfinish(s->conn);
  char timeout[32];
  snprintf(timeout, sizeof(timeout), "%d", s->connect_timeout);
  const char *keys[8], *values[8];
  int k = 0;
  /* Defaults first: what the URL says overrides them; the options given apart override it. */
  keys[k] = "connect_timeout", values[k++] = timeout;
  keys[k] = "application_name", values[k++] = "vmscope";
  keys[k] = "dbname", values[k++] = s->url;
  if (s->password) keys[k] = "password", values[k++] = s->password;
  if (s->ca_file) {
    keys[k] = "sslmode", values[k++] = "verify-full";
    keys[k] = "sslrootcert", values[k++] = s->ca_file;
  }
  keys[k] = NULL, values[k] = NULL;
  s->conn = sym_PQconnectdbParams(keys, values, 1);
  if (sym_PQstatus(s->conn) != CONNECTION_OK) return pq_fail(s, NULL, "cannot connect", err);
  sym_PQclear(sym_PQexec(s->conn, "SET client_min_messages = warning"));
  if (migrate(s, err) < 0) return -1;
  s->migrated = true;
  return 0;
}

struct vs_store *vs_store_new(const struct vs_store_opts *o, struct vs_err *err) {
  if (vs_dl_load(&pq_lib, err) < 0) return NULL;
  _cleanup_(vs_store_freep) struct vs_store *s = vs_xcalloc(1, sizeof(*s));
  s->url = vs_xstrdup(o->url);
  s->safe_url = vs_store_url_safe(o->url);
  s->host = vs_xstrdup(o->host);
  s->ca_file = o->ca_file ? vs_xstrdup(o->ca_file) : NULL;
  s->host_timeout = o->host_timeout > 0 ? o->host_timeout : VS_STORE_HOST_TIMEOUT;
  s->connect_timeout = o->connect_timeout > 0 ? (int)(o->connect_timeout + 0.999) : 10;
  s->store_documents = o->store_documents;
  s->read_only = o->read_only;
  if (o->password_file && !(s->password = read_password(o->password_file, err))) return NULL;
  return vs_steal(&s);
}

int vs_store_connect(struct vs_store *s, struct vs_err *err) {
  return connect_store(s, err);
}

struct vs_store *vs_store_open(const struct vs_store_opts *o, struct vs_err *err) {
  _cleanup_(vs_store_freep) struct vs_store *s = vs_store_new(o, err);
  if (!s || connect_store(s, err) < 0) return NULL;
  return vs_steal(&s);
}

void vs_store_free(struct vs_store *s) {
  if (!s) return;
  if (s->conn) sym_PQfinish(s->conn);
  if (s->password) explicit_bzero(s->password, strlen(s->password));
  free(s->password);
  free(s->url);
  free(s->ca_file);
  free(s->host);
  free(s->safe_url);
  kept_free(s->kept);
  vs_view_cache_free(s->view_cache);
  json_decref(s->last_context);
  drop_writer_state(s);
  vs_strmap_free(s->published);
  vs_strmap_free(s->ranked);
  vs_baseline_free(s->baseline);
  vs_strmap_free(s->bases);
  free(s);
}

void vs_store_freep(struct vs_store **s) {
  vs_store_free(*s);
  *s = NULL;
}

void vs_store_row_docs(const struct vs_feature *doc, const struct vs_feature *prev,
                       const struct vs_baseline *baseline, json_t **newest, json_t **whole,
                       json_t **patch) {
  /* What ranking reads: neither which file gave each setting nor the files skipped. Made from
   * the documents, not from their JSON: 2,000 settings a VM made as JSON twice and compared as
   * JSON were over a third of a publish that sends every VM (0.10 of 0.25-0.29 s for 100 VMs,
   * 0.04 s after). */
  *newest =
      baseline ? vs_feature_to_json_but_settings(doc) : vs_feature_to_json_but_provenance(doc);
  /* the previous one's patch is onto the newest whole, as a reader makes it */
  *patch = prev ? vs_feature_merge_diff(doc, prev) : NULL;
  *whole = prev && !*patch ? vs_feature_to_json_but_provenance(prev) : NULL;
  if (baseline &&
      json_object_set_new(*newest, "settings_patch", vs_baseline_patch(baseline, doc)) < 0)
    abort(); /* out of memory */
}

/* What this host last published of VM I of LOCAL, when it still holds the same: the same
 * documents (RETAKEN false), or (RETAKEN true) a newest taken again that found nothing
 * changed, whose previous is the newest published. WAS NULL when it must be sent. */
struct as_published {
  const struct published *was;
  bool retaken;
};

static struct as_published as_published(const struct vs_store *s, const struct vs_view *local,
                                        size_t i) {
  const struct vs_feature *doc = vs_view_doc(local, i), *prev = vs_view_prev(local, i);
  const struct published *was =
      s->published ? vs_strmap_get(s->published, vs_feature_id(doc)) : NULL;
  if (!was) return (struct as_published){NULL, false};
  if (vs_feature_same_but_provenance(was->doc, doc) &&
      vs_feature_same_but_provenance(was->prev, prev))
    return (struct as_published){was, false};
  bool retaken = prev && vs_feature_same_but_provenance(was->doc, prev) &&
                 vs_feature_same_but_time(was->doc, doc) &&
                 strcmp(vs_feature_taken_at(doc), vs_feature_taken_at(prev)) > 0;
  return (struct as_published){retaken ? was : NULL, retaken};
}

/* Each sent VM's row of a vmscope_publish_vms call as JSON text, and its whole document's
 * (StoreDocuments), one VM at a time on every CPU: building and writing 2,000 settings twice
 * a VM was half of a round that sends every VM (0.24 of 0.47 s for 100 VMs). */
struct row_texts {
  const struct vs_view *local;
  const struct vs_baseline *baseline;
  const struct as_published *as; /* NULL: every VM is sent */
  bool store_documents;
  char **row, **doc; /* [i]: VM I's, NULL when not sent (or out of memory: ERR[i] set) */
  bool *failed;
};

static void row_text(void *arg, size_t i) {
  struct row_texts *job = arg;
  const struct vs_feature *doc = vs_view_doc(job->local, i), *prev = vs_view_prev(job->local, i);
  const struct published *was = job->as ? job->as[i].was : NULL;
  if (was && !job->as[i].retaken) return;
  if (!was) {
    json_t *newest, *whole, *patch;
    vs_store_row_docs(doc, prev, job->baseline, &newest, &whole, &patch);
    json_t *row = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "uuid", vs_feature_id(doc), "name",
                            vs_feature_name(doc), "taken_at", vs_feature_taken_at(doc), "doc",
                            newest, "previous", whole ? whole : json_null(), "previous_patch",
                            patch ? patch : json_null());
    job->row[i] = row ? json_dumps(row, JSON_COMPACT) : NULL;
    json_decref(row);
    job->failed[i] = !job->row[i];
  }
  if (job->store_documents) { /* a new snapshot, whole: a retaken one too */
    json_t *whole = json_pack("{s:s,s:s,s:o}", "uuid", vs_feature_id(doc), "taken_at",
                              vs_feature_taken_at(doc), "doc", vs_feature_to_json(doc));
    job->doc[i] = whole ? json_dumps(whole, JSON_COMPACT) : NULL;
    json_decref(whole);
    job->failed[i] |= !job->doc[i];
  }
}

/* TEXTS[0..N) that are not NULL as the elements of one JSON array; frees them. */
static char *array_of(char **texts, size_t n) {
  struct vs_buf b = {0};
  vs_buf_addc(&b, '[');
  for (size_t i = 0; i < n; i++) {
    if (!texts[i]) continue;
    if (b.len > 1) vs_buf_addc(&b, ',');
    vs_buf_adds(&b, texts[i]);
    free(texts[i]);
    texts[i] = NULL;
  }
  vs_buf_addc(&b, ']');
  return vs_buf_steal(&b);
}

/* One call of vmscope_publish_vms: every VM of LOCAL, or (AS not NULL: as_published of each
 * VM, one per VM of LOCAL) only those not as this host last published them, the others named
 * with their fingerprints (and the new time of those snapshotted again unchanged). The
 * fingerprints returned (an object, uuid -> sha), JSON null when a kept row was not as named
 * (nothing written), or NULL with ERR. */
static json_t *publish_vms(struct vs_store *s, const struct vs_view *local,
                           const struct as_published *as, struct vs_err *err) {
  size_t n = vs_view_count(local);
  _cleanup_(vs_freep) char **row = vs_xcalloc(n ? n : 1, sizeof(char *));
  _cleanup_(vs_freep) char **doc = vs_xcalloc(n ? n : 1, sizeof(char *));
  _cleanup_(vs_freep) bool *failed = vs_xcalloc(n ? n : 1, sizeof(bool));
  struct row_texts job = {local, s->baseline, as, s->store_documents, row, doc, failed};
  vs_parallel_for(n, 0, row_text, &job);
  json_t *kept = json_array();
  bool out_of_memory = false;
  for (size_t i = 0; i < n; i++) {
    const struct vs_feature *newest = vs_view_doc(local, i), *prev = vs_view_prev(local, i);
    const struct published *was = as ? as[i].was : NULL;
    out_of_memory |= failed[i];
    /* a VM missing from KEPT would leave the fleet: one that cannot be written fails the call */
    if (was && !as[i].retaken)
      out_of_memory |=
          json_array_append_new(
              kept, json_pack("{s:s,s:s}", "uuid", vs_feature_id(newest), "sha", was->sha)) < 0;
    else if (was) /* the row's newest becomes its previous: the patch onto the newest is its time */
      out_of_memory |=
          json_array_append_new(kept, json_pack("{s:s,s:s,s:s,s:{s:s}}", "uuid",
                                                vs_feature_id(newest), "sha", was->sha, "taken_at",
                                                vs_feature_taken_at(newest), "previous_patch",
                                                "taken_at", vs_feature_taken_at(prev))) < 0;
  }
  _cleanup_(vs_freep) char *rows_text = array_of(row, n);
  _cleanup_(vs_freep) char *docs_text = array_of(doc, n);
  _cleanup_(vs_freep) char *kept_text = json_dumps(kept, JSON_COMPACT);
  json_decref(kept);
  /* the baseline's settings only when the store may not hold it */
  json_t *baseline = json_pack("{s:s}", "id", vs_baseline_id(s->baseline));
  if (baseline && !s->baseline_stored &&
      json_object_set(baseline, "settings", (json_t *)vs_baseline_settings(s->baseline)) < 0) {
    json_decref(baseline);
    baseline = NULL;
  }
  _cleanup_(vs_freep) char *baseline_text = baseline ? json_dumps(baseline, JSON_COMPACT) : NULL;
  json_decref(baseline);
  if (out_of_memory || !kept_text || !baseline_text) {
    vs_err_set(err, ENOMEM, "fleet store %s: cannot serialize this host's VMs", s->safe_url);
    return NULL;
  }
  char count[32];
  snprintf(count, sizeof(count), "%zu", n);
  const char *docs_sent = s->store_documents ? docs_text : NULL;
  const char *p[] = {s->host, count, rows_text, docs_sent, kept_text, baseline_text};
  return call_fingerprints(
      s, "publishing this host's VMs",
      "SELECT vmscope_publish_vms($1, $2::integer, $3::jsonb, $4::jsonb, $5::jsonb, $6::jsonb)", 6,
      p, err);
}

/* Keeps S's baseline for LOCAL's VMs, and each VM's distance from it in DISTANCE[i] (AS: each
 * VM as published, whose distance is known): made when there is none, and again when it has
 * worn out. When that makes another one, the store does not hold it, and no row is a patch onto
 * it: every VM is sent (AS cleared). */
static void keep_baseline(struct vs_store *s, const struct vs_view *local, struct as_published *as,
                          size_t *distance) {
  size_t n = vs_view_count(local), total = 0;
  for (size_t i = 0; s->baseline && i < n; i++)
    total += distance[i] =
        as[i].was ? as[i].was->distance : vs_baseline_distance(s->baseline, vs_view_doc(local, i));
  if (s->baseline && !vs_baseline_worn(s->baseline, total, n)) return;
  struct vs_baseline *made = vs_baseline_make(local);
  bool same = s->baseline && strcmp(vs_baseline_id(made), vs_baseline_id(s->baseline)) == 0;
  vs_baseline_free(s->baseline);
  s->baseline = made; /* the same one made now is no longer worn: as good as it gets */
  if (same) return;
  s->baseline_stored = false;
  vs_strmap_free(s->published);
  s->published = NULL;
  for (size_t i = 0; i < n; i++) {
    as[i] = (struct as_published){NULL, false};
    distance[i] = vs_baseline_distance(made, vs_view_doc(local, i));
  }
}

int vs_store_publish_vms(struct vs_store *s, const struct vs_view *local, struct vs_err *err) {
  if (connect_store(s, err) < 0) return -1;
  /* Each VM compared once (two documents, key by key): the same answer serves the call and
   * what is kept of it. */
  size_t n = vs_view_count(local);
  _cleanup_(vs_freep) struct as_published *as = vs_xcalloc(n ? n : 1, sizeof(*as));
  _cleanup_(vs_freep) size_t *distance = vs_xcalloc(n ? n : 1, sizeof(*distance));
  for (size_t i = 0; i < n; i++)
    as[i] = as_published(s, local, i);
  keep_baseline(s, local, as, distance);
  bool kept = true;
  json_t *shas = publish_vms(s, local, as, err);
  if (json_is_null(shas)) { /* a row kept is not as named, or the baseline is not there */
    kept = false;
    s->baseline_stored = false;
    json_decref(shas);
    shas = resent(s, publish_vms(s, local, NULL, err), "publishing this host's VMs", err);
  }
  s->baseline_stored = shas != NULL;
  /* What the store now holds of them: the rows kept, and those whose fingerprints it returned
   * (a VM another host published later is not this host's row, and is sent again). */
  struct vs_strmap *published = shas ? vs_strmap_new(published_free) : NULL;
  for (size_t i = 0; shas && i < n; i++) {
    const struct vs_feature *doc = vs_view_doc(local, i);
    const struct published *was = kept && !as[i].retaken ? as[i].was : NULL;
    const char *sha = was ? was->sha : json_string_value(json_object_get(shas, vs_feature_id(doc)));
    if (!sha) continue;
    struct published *now = vs_xcalloc(1, sizeof(*now));
    /* held, not changed */
    now->doc = vs_feature_ref((struct vs_feature *)doc);
    now->prev = vs_feature_ref((struct vs_feature *)vs_view_prev(local, i));
    now->sha = vs_xstrdup(sha);
    now->distance = distance[i];
    vs_strmap_put(published, vs_feature_id(doc), now);
  }
  bool ok = shas != NULL;
  json_decref(shas);
  vs_strmap_free(s->published);
  s->published = published;
  return ok ? 0 : -1;
}

/* Column COL of ROW parsed: bounded, strictly (no member twice). NULL with ERR, or without
 * when the column is null. */
static json_t *row_json(const json_t *row, size_t col, const char *what, struct vs_err *err) {
  json_t *text = json_array_get(row, col);
  if (!json_is_string(text)) return NULL;
  size_t len = json_string_length(text);
  if (len > VS_STORE_MAX_DOC) {
    vs_err_set(err, EFBIG, "%s: the document has %zu bytes, more than %u", what, len,
               VS_STORE_MAX_DOC);
    return NULL;
  }
  return vs_json_loadb_strict(json_string_value(text), len, what, err);
}

/* DOC (may be NULL: refused, ERR set) checked: its id is the row's key UUID. */
static struct vs_feature *checked_doc(struct vs_feature *doc, const char *uuid, const char *what,
                                      struct vs_err *err) {
  if (doc && strcmp(vs_feature_id(doc), uuid) != 0) {
    vs_err_set(err, EINVAL, "%s: the document's id is \"%s\", not the row's", what,
               vs_feature_id(doc));
    vs_feature_free(doc);
    doc = NULL;
  }
  return doc;
}

/* Whether LOCAL (may be NULL) has VM UUID at TAKEN_AT or later: its row is this host's own. */
static bool local_has(const struct vs_view *local, const char *uuid, const char *taken_at) {
  long k = local ? vs_view_find_id(local, uuid) : -1;
  return k >= 0 && strcmp(vs_feature_taken_at(vs_view_doc(local, (size_t)k)), taken_at) >= 0;
}

/* The longest retaken_at (schema version 9) read: an RFC 3339 time is 20 to 35 bytes. */
#define MAX_RETAKEN_AT 64

/* A row's newest document (*DOC: its document, its settings patched onto its baseline BASE
 * when it has one, with its retaken_at for its time when it has one) and previous one (*PREV:
 * NULL when the row has none, whole or as a patch onto the newest), each checked. -1 with ERR
 * when either is refused: *DOC is then NULL when the newest was, and the newest when only the
 * previous was. A patch is bounded with what it applies to (the row's document, its baseline
 * and the previous one's patch together at most VS_STORE_MAX_DOC bytes), and so is what it
 * makes. */
static int row_docs(const json_t *row, const struct base *base, struct vs_feature **doc,
                    struct vs_feature **prev, struct vs_err *err) {
  *doc = *prev = NULL;
  const char *uuid = json_string_value(json_array_get(row, 0));
  const char *host = json_string_value(json_array_get(row, 1));
  _cleanup_(vs_freep) char *what = vs_xasprintf("fleet store: VM %s (host %s)", uuid, host);
  _cleanup_(vs_freep) char *what_prev = vs_xasprintf("%s, previous snapshot", what);
  json_t *newest = row_json(row, 2, what, err);
  if (!newest) {
    if (!err->msg) vs_err_set(err, EINVAL, "%s: the row has no document", what);
    return -1;
  }
  size_t doc_len = json_string_length(json_array_get(row, 2));
  const char *baseline = json_string_value(json_array_get(row, 6));
  json_t *settings_patch = NULL; /* NEWEST's */
  if (baseline) {
    settings_patch = json_object_get(newest, "settings_patch");
    if (!base)
      vs_err_set(err, EINVAL, "%s: its baseline %s is not in the store", what, baseline);
    else if (!base->settings)
      vs_err_set(err, EINVAL, "%s: refused with its baseline: %s", what, base->error);
    else if (base->len > VS_STORE_MAX_DOC - doc_len)
      vs_err_set(err, EFBIG,
                 "%s: its baseline %s has %zu bytes, and with the row's %zu more than %u", what,
                 baseline, base->len, doc_len, VS_STORE_MAX_DOC);
    else if (!json_is_object(settings_patch) || json_object_get(newest, "settings"))
      vs_err_set(err, EINVAL,
                 "%s: its document has no \"settings_patch\" object, or has \"settings\" too "
                 "(its settings are a patch onto its baseline %s)",
                 what, baseline);
    if (err->msg) {
      json_decref(newest);
      return -1;
    }
    doc_len += base->len;
  }
  const json_t *retaken = json_array_get(row, 5);
  if (json_is_string(retaken)) {
    size_t len = json_string_length(retaken);
    if (len > MAX_RETAKEN_AT) {
      vs_err_set(err, EFBIG, "%s: retaken_at has %zu bytes, more than %d", what, len,
                 MAX_RETAKEN_AT);
      json_decref(newest);
      return -1;
    }
    json_t *time = json_stringn(json_string_value(retaken), len); /* NULL: not UTF-8 */
    if (!time || !vs_text_is_clean(json_string_value(time), len)) {
      vs_err_set(err, EINVAL, "%s: retaken_at is not text (a control character, or not UTF-8)",
                 what);
      json_decref(time);
      json_decref(newest);
      return -1;
    }
    json_object_set_new(newest, "taken_at", time);
  }
  /* The settings merged onto the baseline as they are loaded: not made as JSON first (2,000
   * settings a VM, a thousand rows a refresh on the elected host of a large fleet). */
  *doc = checked_doc(baseline ? vs_feature_from_json_merged(newest, base->settings, base->doc,
                                                            settings_patch, what, err)
                              : vs_feature_from_json(newest, what, err),
                     uuid, what, err);
  json_t *previous = NULL;
  size_t patch_len = json_string_length(json_array_get(row, 4)); /* 0 when null */
  if (*doc && !(previous = row_json(row, 3, what_prev, err)) && !err->msg && patch_len) {
    if (patch_len > VS_STORE_MAX_DOC - doc_len)
      vs_err_set(err, EFBIG, "%s: the patch has %zu bytes, and with the newest's %zu more than %u",
                 what_prev, patch_len, doc_len, VS_STORE_MAX_DOC);
    json_t *patch = err->msg ? NULL : row_json(row, 4, what_prev, err);
    /* A patch of times and settings is applied to a copy of the newest document; any other is
     * merged onto the newest's JSON and loaded, to be refused as it would be. */
    struct vs_feature *patched = patch ? vs_feature_patched(*doc, patch) : NULL;
    if (patched) {
      *prev = checked_doc(patched, uuid, what_prev, err);
    } else if (patch) {
      if (baseline &&
          (json_object_set_new(newest, "settings",
                               vs_json_merge_apply(base->settings, settings_patch)) < 0 ||
           json_object_del(newest, "settings_patch") < 0))
        abort(); /* out of memory */
      previous = vs_json_merge_apply(newest, patch);
    }
    json_decref(patch);
  }
  if (previous)
    *prev = checked_doc(vs_feature_from_json(previous, what_prev, err), uuid, what_prev, err);
  json_decref(previous);
  json_decref(newest);
  return err->msg ? -1 : 0;
}

struct parsed_row {
  struct vs_feature *doc, *prev;
  struct vs_err err;
};

struct parse_job {
  const json_t *rows;
  const struct base *const *bases; /* [i]: row I's baseline, NULL when it has none or none read */
  struct parsed_row *out;
};

static void parse_row(void *arg, size_t i) {
  struct parse_job *job = arg;
  struct parsed_row *p = &job->out[i];
  if (row_docs(json_array_get(job->rows, i), job->bases[i], &p->doc, &p->prev, &p->err) == 0)
    vs_err_clear(&p->err);
}

/* A row as read to be loaded: result_rows and load_rows take its columns in this order. */
#define ROW_COLUMNS                                                                                \
  "v.uuid, v.host, v.doc, v.previous, v.previous_patch, v.retaken_at, v.baseline, "                \
  "v.content_sha256"
#define ROW_BASELINE 6
#define ROW_DIGEST 7 /* the column of the row's fingerprint */
/* The rows of the hosts seen within HostTimeout ($1, seconds), in the store's order. */
#define LIVE_ROWS                                                                                  \
  "FROM vmscope_vms v JOIN vmscope_hosts h ON h.host = v.host "                                    \
  "WHERE h.seen > now() - make_interval(secs => $1::double precision) ORDER BY v.uuid"

/* Result RES's rows (ROW_COLUMNS) as [uuid, host, doc text, previous text or null,
 * previous_patch text or null, retaken_at or null, baseline or null]. */
static json_t *result_rows(PGresult *res) {
  json_t *rows = json_array();
  for (int i = 0; i < sym_PQntuples(res); i++) {
    json_t *row = json_array();
    for (int col = 0; col < ROW_DIGEST; col++)
      json_array_append_new(row, sym_PQgetisnull(res, i, col)
                                     ? json_null()
                                     : json_stringn_nocheck(sym_PQgetvalue(res, i, col),
                                                            (size_t)sym_PQgetlength(res, i, col)));
    json_array_append_new(rows, row);
  }
  return rows;
}

/* Row I of RES's baseline's key in vs_store's bases (its serial, RES's), or NULL when it has
 * none. */
static const char *base_key(PGresult *res, int i) {
  return sym_PQgetisnull(res, i, ROW_BASELINE) ? NULL : sym_PQgetvalue(res, i, ROW_BASELINE);
}

/* Reads the baselines of RES's rows (ROW_COLUMNS) that S has not, each checked (bounded, loaded
 * strictly, an object of strings); one that is not, or that the store lacks, is kept with why,
 * and its rows are refused. -1 with ERR when the store fails. */
static int read_bases(struct vs_store *s, PGresult *res, struct vs_err *err) {
  if (!s->bases) s->bases = vs_strmap_new(base_free);
  _cleanup_(vs_strmap_freep) struct vs_strmap *asked = vs_strmap_new(NULL);
  struct vs_buf want = {0}; /* a JSON array of the serials: numbers, as the store wrote them */
  vs_buf_addc(&want, '[');
  for (int i = 0; i < sym_PQntuples(res); i++) {
    const char *key = base_key(res, i);
    if (!key || vs_strmap_has(s->bases, key) || !vs_strmap_put(asked, key, NULL)) continue;
    if (want.len > 1) vs_buf_addc(&want, ',');
    vs_buf_adds(&want, key);
  }
  vs_buf_addc(&want, ']');
  _cleanup_(vs_freep) char *want_text = vs_buf_steal(&want);
  if (!vs_strmap_count(asked)) return 0;
  const char *p[] = {want_text};
  PGresult *r = run(s, "reading the hosts' baselines", PGRES_TUPLES_OK,
                    "SELECT b.serial, b.host, b.id, b.settings FROM vmscope_baselines b "
                    "WHERE b.serial IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)",
                    1, p, err);
  if (!r) return -1;
  for (int i = 0; i < sym_PQntuples(r); i++) {
    _cleanup_(vs_freep) char *what = vs_xasprintf("fleet store: host %s's baseline %s",
                                                  sym_PQgetvalue(r, i, 1), sym_PQgetvalue(r, i, 2));
    struct base *b = vs_xcalloc(1, sizeof(*b));
    struct vs_err why = {0};
    b->len = (size_t)sym_PQgetlength(r, i, 3);
    if (b->len > VS_STORE_MAX_DOC)
      vs_err_set(&why, EFBIG, "%s: %zu bytes, more than %u", what, b->len, VS_STORE_MAX_DOC);
    else
      b->settings = vs_json_loadb_strict(sym_PQgetvalue(r, i, 3), b->len, what, &why);
    const char *key, *not_text = NULL; /* a key whose value is not a string */
    json_t *value;
    if (json_is_object(b->settings)) json_object_foreach(b->settings, key, value) {
        if (!json_is_string(value)) {
          not_text = key;
          break;
        }
      }
    if (b->settings && (!json_is_object(b->settings) || not_text)) {
      if (not_text)
        vs_err_set(&why, EINVAL, "%s: the value of \"%s\" is not a string", what, not_text);
      else
        vs_err_set(&why, EINVAL, "%s: not a JSON object", what);
      json_decref(b->settings);
      b->settings = NULL;
    }
    b->error = why.msg ? vs_xstrdup(why.msg) : NULL;
    vs_err_clear(&why);
    if (b->settings) {
      b->doc = vs_feature_of_settings(b->settings, what, &why);
      vs_err_clear(&why); /* said for each row, as before, by merging its JSON */
    }
    vs_strmap_put(s->bases, sym_PQgetvalue(r, i, 0), b);
  }
  sym_PQclear(r);
  return 0;
}

/* Forgets the baselines no row of K refers to. */
static void keep_bases(struct vs_store *s, const struct kept *k) {
  if (!s->bases) return;
  _cleanup_(vs_strmap_freep) struct vs_strmap *used = vs_strmap_new(NULL);
  for (size_t i = 0; i < k->n; i++)
    if (k->rows[i].base) vs_strmap_put(used, k->rows[i].base, NULL);
  const char **keys = vs_strmap_sorted_keys(s->bases, NULL);
  for (size_t i = 0; keys[i]; i++)
    if (!vs_strmap_has(used, keys[i])) vs_strmap_remove(s->bases, keys[i]);
  free(keys);
}

/* Loads the rows of RES (as result_rows) into K's rows named by their uuid, on every CPU:
 * checking and loading each row is most of a read. -1 with ERR when their baselines cannot be
 * read. */
static int load_rows(struct vs_store *s, struct kept *k, PGresult *res, struct vs_err *err) {
  if (read_bases(s, res, err) < 0) return -1;
  json_t *rows = result_rows(res);
  size_t n = json_array_size(rows);
  _cleanup_(vs_freep) const struct base **bases = vs_xcalloc(n ? n : 1, sizeof(*bases));
  for (size_t i = 0; i < n; i++) {
    const char *key = base_key(res, (int)i);
    bases[i] = key ? vs_strmap_get(s->bases, key) : NULL;
  }
  struct parse_job job = {rows, bases, vs_xcalloc(n ? n : 1, sizeof(struct parsed_row))};
  vs_parallel_for(n, 0, parse_row, &job);
  for (size_t i = 0; i < n; i++) {
    struct parsed_row *p = &job.out[i];
    size_t at = (uintptr_t)vs_strmap_get(k->by_uuid, sym_PQgetvalue(res, (int)i, 0));
    struct kept_row *row = at ? &k->rows[at - 1] : NULL;
    if (row && !row->digest) {
      k->loaded++;
      const char *key = base_key(res, (int)i);
      row->base = key ? vs_xstrdup(key) : NULL;
      row->digest = vs_xstrdup(sym_PQgetvalue(res, (int)i, ROW_DIGEST));
      row->doc = p->doc;
      row->prev = p->prev;
      row->error = p->err.msg ? vs_xstrdup(p->err.msg) : NULL;
    } else { /* not asked for: the snapshot does not change under the read */
      vs_feature_free(p->doc);
      vs_feature_free(p->prev);
    }
    vs_err_clear(&p->err);
  }
  free(job.out);
  json_decref(rows);
  return 0;
}

/* The fleet's live rows, checked and loaded, in one snapshot: the fingerprints of every row,
 * then the rows whose fingerprint is not OLD's for their VM (every row when OLD is NULL), the
 * others taken from OLD as they are. NULL with ERR when the store fails. */
static struct kept *read_fleet(struct vs_store *s, const struct kept *old, struct vs_err *err) {
  char timeout[32];
  snprintf(timeout, sizeof(timeout), "%.3f", s->host_timeout);
  const char *p[] = {timeout};
  if (exec(s, "reading the fleet", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
           err) < 0)
    return NULL;
  /* Every column when nothing is kept; else the fingerprints first. */
  PGresult *r =
      run(s, "reading the fleet", PGRES_TUPLES_OK,
          old ? "SELECT v.uuid, v.content_sha256 " LIVE_ROWS : "SELECT " ROW_COLUMNS " " LIVE_ROWS,
          1, p, err);
  if (!r) {
    end(s, -1, err);
    return NULL;
  }
  struct kept *k = vs_xcalloc(1, sizeof(*k));
  k->n = (size_t)sym_PQntuples(r);
  k->rows = vs_xcalloc(k->n ? k->n : 1, sizeof(*k->rows));
  k->by_uuid = vs_strmap_new(NULL);
  json_t *changed = json_array();
  for (size_t i = 0; i < k->n; i++) {
    struct kept_row *row = &k->rows[i];
    row->uuid = vs_xstrdup(sym_PQgetvalue(r, (int)i, 0));
    vs_strmap_put(k->by_uuid, row->uuid, (void *)(uintptr_t)(i + 1));
    const char *digest = sym_PQgetvalue(r, (int)i, old ? 1 : ROW_DIGEST);
    size_t at = old ? (uintptr_t)vs_strmap_get(old->by_uuid, row->uuid) : 0;
    const struct kept_row *was = at ? &old->rows[at - 1] : NULL;
    json_t *id = NULL;
    if (was && strcmp(was->digest, digest) == 0) {
      row->digest = vs_xstrdup(digest);
      row->base = was->base ? vs_xstrdup(was->base) : NULL;
      row->doc = vs_feature_ref(was->doc);
      row->prev = vs_feature_ref(was->prev);
      row->error = was->error ? vs_xstrdup(was->error) : NULL;
    } else if (old && (id = json_string(row->uuid))) {
      json_array_append_new(changed, id);
    } else if (old) { /* not UTF-8 (a store in another encoding): that row alone is refused */
      row->digest = vs_xstrdup("");
      row->error =
          vs_xasprintf("fleet store %s: a VM whose uuid is not UTF-8 text: refused", s->safe_url);
    }
  }
  int rc = 0;
  if (!old) {
    rc = load_rows(s, k, r, err);
  } else if (json_array_size(changed)) {
    _cleanup_(vs_freep) char *ids = json_dumps(changed, JSON_COMPACT);
    const char *q[] = {ids};
    PGresult *rows = ids ? run(s, "reading the fleet's changed rows", PGRES_TUPLES_OK,
                               "SELECT " ROW_COLUMNS " FROM vmscope_vms v "
                               "WHERE v.uuid IN (SELECT jsonb_array_elements_text($1::jsonb))",
                               1, q, err)
                         : NULL;
    if (!ids) vs_err_set(err, ENOMEM, "fleet store %s: cannot list the rows to read", s->safe_url);
    rc = rows ? load_rows(s, k, rows, err) : -1;
    sym_PQclear(rows);
  }
  json_decref(changed);
  sym_PQclear(r);
  for (size_t i = 0; rc == 0 && i < k->n; i++)
    if (!k->rows[i].digest) /* the snapshot holds it: a store that does not keep its word */
      rc = vs_err_set(err, EIO, "fleet store %s: VM %s was listed but not read", s->safe_url,
                      k->rows[i].uuid);
  if (end(s, rc, err) < 0) {
    kept_free(k);
    return NULL;
  }
  keep_bases(s, k);
  return k;
}

/* Adds K's documents to VIEW, but those of VMs LOCAL has as new (added from it: the same
 * documents twice would make a VM's previous snapshot a copy of its newest). A refused row is
 * reported; a VM whose newest document is refused is left out, not ranked on its previous one,
 * and one whose previous is refused is ranked without it. */
static void add_kept(struct vs_view *view, const struct kept *k, const struct vs_view *local,
                     size_t *refused, char ***errors, size_t *n_errors) {
  for (size_t i = 0; i < k->n; i++) {
    const struct kept_row *row = &k->rows[i];
    if (row->doc && local_has(local, row->uuid, vs_feature_taken_at(row->doc))) continue;
    if (row->error) {
      if (refused) (*refused)++;
      if (errors) vs_strv_add(errors, n_errors, row->error);
    }
    if (row->doc) vs_view_add(view, vs_feature_ref(row->doc));
    if (row->prev) vs_view_add(view, vs_feature_ref(row->prev));
  }
}

int vs_store_load(struct vs_store *s, struct vs_view *view, size_t *refused, char ***errors,
                  size_t *n_errors, struct vs_err *err) {
  struct kept *k = read_fleet(s, NULL, err);
  if (!k) return -1;
  if (refused) *refused = 0;
  add_kept(view, k, NULL, refused, errors, n_errors);
  kept_free(k);
  return 0;
}

/* A view of LOCAL's VMs as the store holds them (vs_store_row_docs: what ranking reads), so that
 * this host's VMs are ranked in the same form as every other host's. Copied, not written as
 * JSON and read back: that was two thirds of a round's view at 2,000 settings a VM (0.21 of
 * 0.31 s for 100 VMs in bench/fleet-scale.sh). */
static struct vs_view *local_as_stored(const struct vs_view *local) {
  struct vs_view *view = vs_view_new();
  for (size_t i = 0; i < vs_view_count(local); i++) {
    const struct vs_feature *docs[] = {vs_view_doc(local, i), vs_view_prev(local, i)};
    for (size_t k = 0; k < 2; k++)
      if (docs[k]) vs_view_add(view, vs_feature_copy_but_provenance(docs[k]));
  }
  return view;
}

/* Reads the context parts of LOCAL's VMs and of the VMs in ALSO, of their groups and the fleet's,
 * in one statement (one snapshot: one refresh's parts, even while the elected host writes the
 * next): [fleet, {group: part}, {uuid: part}], each part checked as text from another host. NULL
 * with ERR: ENOENT when there is no context younger than host_timeout, EIO when the store
 * failed, EINVAL/EFBIG for a part refused. */
static json_t *read_context(struct vs_store *s, const struct vs_view *local,
                            const char *const *also, size_t n_also, struct vs_err *err) {
  json_t *ids = json_array(), *also_ids = json_array();
  for (size_t i = 0; i < vs_view_count(local); i++)
    json_array_append_new(ids, json_string(vs_feature_id(vs_view_doc(local, i))));
  for (size_t i = 0; i < n_also; i++)
    json_array_append_new(also_ids, json_string(also[i]));
  _cleanup_(vs_freep) char *ids_text = json_dumps(ids, JSON_COMPACT);
  _cleanup_(vs_freep) char *also_text = json_dumps(also_ids, JSON_COMPACT);
  json_decref(ids);
  json_decref(also_ids);
  if (!ids_text || !also_text) {
    vs_err_set(err, ENOMEM, "fleet store %s: cannot list this host's VMs", s->safe_url);
    return NULL;
  }
  char timeout[32];
  snprintf(timeout, sizeof(timeout), "%.3f", s->host_timeout);
  _cleanup_(vs_freep) char *max = vs_xasprintf("%u", VS_STORE_MAX_DOC);
  _cleanup_(vs_freep) char *max_vm = vs_xasprintf("%u", VS_STORE_MAX_VM_PART);
  const char *p[] = {ids_text, timeout, max, also_text, max_vm};
  /* Sizes are checked before a part is sent, each VM's and all of them together: a row written
   * by something else may be huge, and libpq holds the whole result. The medoids' parts are
   * read for their role, not their groups. */
  PGresult *r = run(s, "reading the fleet's context", PGRES_TUPLES_OK,
                    "WITH mine AS (SELECT c.uuid, c.made_at, c.body FROM vmscope_vm_context c "
                    "  WHERE c.uuid IN (SELECT jsonb_array_elements_text($1::jsonb))), "
                    "parts AS (SELECT 'vm' AS kind, uuid AS name, made_at, body FROM mine "
                    "  UNION ALL SELECT 'vm', c.uuid, c.made_at, c.body FROM vmscope_vm_context c "
                    "  WHERE c.uuid IN (SELECT jsonb_array_elements_text($4::jsonb)) "
                    "  AND c.uuid NOT IN (SELECT uuid FROM mine) "
                    "  UNION ALL SELECT 'part', part, made_at, body FROM vmscope_context "
                    "  WHERE part = 'fleet' OR part IN "
                    "    (SELECT 'group:' || (body->>'group') FROM mine)), "
                    "sized AS (SELECT *, octet_length(body::text) AS size FROM parts), "
                    "total AS (SELECT coalesce(sum(size), 0) AS total FROM sized), "
                    "made AS (SELECT made_at AS fleet_made_at FROM vmscope_context "
                    "  WHERE part = 'fleet') "
                    "SELECT kind, name, CASE WHEN kind = 'vm' THEN made_at <= fleet_made_at "
                    "ELSE made_at > now() - make_interval(secs => $2::double precision) END, "
                    "CASE WHEN total <= $3::bigint AND (kind <> 'vm' OR size <= $5::bigint) "
                    "THEN body::text END, made_at::text, size, total "
                    "FROM sized, total LEFT JOIN made ON true "
                    "WHERE kind <> 'vm' OR fleet_made_at IS NOT NULL ORDER BY kind <> 'part'",
                    5, p, err);
  if (!r) return NULL;
  json_t *fleet = NULL, *groups = json_object(), *vms = json_object();
  const char *made_at = NULL;
  for (int i = 0; i < sym_PQntuples(r) && !err->msg; i++) {
    const char *kind = sym_PQgetvalue(r, i, 0), *name = sym_PQgetvalue(r, i, 1);
    _cleanup_(vs_freep) char *what =
        vs_xasprintf("fleet store %s: the fleet's context, %s %s", s->safe_url, kind, name);
    bool vm = strcmp(kind, "vm") == 0, in_time = strcmp(sym_PQgetvalue(r, i, 2), "t") == 0;
    if (vm && !in_time) {
      vs_err_set(err, EINVAL,
                 "%s: made at %s, after the fleet's part (%s): written by something other than "
                 "vmscope_publish_context, or the server's clock went back",
                 what, sym_PQgetvalue(r, i, 4), made_at ? made_at : "none");
      break;
    }
    if (!vm && !in_time) {
      vs_err_set(err, ENOENT,
                 "fleet store %s: the fleet's context was made at %s, longer than HostTimeout "
                 "(%.0f s) ago",
                 s->safe_url, sym_PQgetvalue(r, i, 4), s->host_timeout);
      break;
    }
    /* The fleet's part and its groups' are written together; a VM's part when it changed. */
    if (!vm && made_at && strcmp(made_at, sym_PQgetvalue(r, i, 4)) != 0) {
      vs_err_set(err, EINVAL, "%s: made at %s, not with the rest (%s)", what,
                 sym_PQgetvalue(r, i, 4), made_at);
      break;
    }
    if (!vm) made_at = sym_PQgetvalue(r, i, 4);
    if (sym_PQgetisnull(r, i, 3)) {
      vs_err_set(err, EFBIG, "%s: %s bytes (at most %u a VM's), of %s bytes in all (at most %u)",
                 what, sym_PQgetvalue(r, i, 5), VS_STORE_MAX_VM_PART, sym_PQgetvalue(r, i, 6),
                 VS_STORE_MAX_DOC);
      break;
    }
    json_t *body =
        vs_json_loadb_strict(sym_PQgetvalue(r, i, 3), (size_t)sym_PQgetlength(r, i, 3), what, err);
    if (!body) break;
    if (vm)
      json_object_set_new(vms, name, body);
    else if (strcmp(name, "fleet") == 0)
      fleet = body;
    else
      json_object_set_new(groups, name + strlen("group:"), body);
  }
  sym_PQclear(r);
  if (!err->msg && !fleet)
    vs_err_set(err, ENOENT, "fleet store %s: no host has made the fleet's context yet",
               s->safe_url);
  if (err->msg) {
    json_decref(fleet);
    json_decref(groups);
    json_decref(vms);
    return NULL;
  }
  return json_pack("[o,o,o]", fleet, groups, vms);
}

/* LOCAL's VMs prepared from CONTEXT ([fleet, groups, vms]), or NULL with ERR (fleetview.h). */
static struct vs_view *context_view(const struct vs_view *local, const json_t *context,
                                    const struct vs_view_opts *vo, struct vs_err *err) {
  _cleanup_(vs_view_freep) struct vs_view *view = local_as_stored(local);
  if (vs_view_prepare_context(view, json_array_get(context, 0), json_array_get(context, 1),
                              json_array_get(context, 2), vo, err) < 0)
    return NULL;
  return vs_steal(&view);
}

struct vs_view *vs_store_round_view(struct vs_store *s, const struct vs_view *local,
                                    const struct vs_view_opts *vo, struct vs_store_round *round,
                                    struct vs_err *err) {
  round->stale = round->from_context = round->alone = false;
  if (round->use_context) drop_writer_state(s); /* not elected: another host writes it */
  round->rows = round->rows_loaded = 0;
  free(round->why_not_context);
  round->why_not_context = NULL;
  struct vs_err why = {0};
  struct kept *rows = NULL;
  bool up = connect_store(s, err) == 0 && vs_store_publish_vms(s, local, err) == 0;
  if (up && round->use_context) {
    json_t *context = read_context(s, local, round->also, round->n_also, &why);
    struct vs_view *view = context ? context_view(local, context, vo, &why) : NULL;
    if (context) {
      json_decref(s->last_context);
      s->last_context = context;
    }
    if (view) { /* the rows read before are older than this: never fall back to them */
      kept_free(s->kept);
      s->kept = NULL;
      vs_strmap_free(s->bases); /* and their baselines */
      s->bases = NULL;
      vs_view_cache_free(s->view_cache);
      s->view_cache = NULL;
      round->from_context = true;
      return view;
    }
    if (why.code == EIO) { /* the store failed while reading: as when it is away */
      vs_err_set(err, why.code, "%s", vs_err_msg(&why));
      up = false;
    }
  }
  if (up) rows = read_fleet(s, s->kept, err);
  if (rows) { /* the last context is older than this: never fall back to it */
    round->rows = rows->n;
    round->rows_loaded = rows->loaded;
    kept_free(s->kept);
    s->kept = rows;
    json_decref(s->last_context);
    s->last_context = NULL;
  } else {
    round->stale = true;
  }
  /* Away: the last context still counts LOCAL's VMs as they are, or the last rows read. */
  struct vs_view *view = NULL;
  if (round->stale && round->use_context && s->last_context) {
    vs_err_clear(&why);
    view = context_view(local, s->last_context, vo, &why);
    round->from_context = view != NULL;
  }
  if (round->use_context && !round->from_context && why.msg)
    round->why_not_context = vs_xstrdup(vs_err_msg(&why));
  vs_err_clear(&why);
  if (view) return view;
  view = local_as_stored(local);
  if (s->kept) add_kept(view, s->kept, local, NULL, &round->errors, &round->n_errors);
  round->alone = round->stale && !s->kept;
  if (s->kept && !s->view_cache) s->view_cache = vs_view_cache_new();
  vs_view_prepare_cached(view, vo, s->view_cache);
  return view;
}

void vs_store_round_clear(struct vs_store_round *round) {
  vs_strv_free(round->errors, round->n_errors);
  free(round->why_not_context);
  round->errors = NULL;
  round->n_errors = 0;
  round->why_not_context = NULL;
}

struct vm_part {
  char *text;   /* the VM's part of the context, as JSON text */
  char *digest; /* its document's digest */
  struct vs_err err;
};

struct vm_parts {
  const struct vs_view *fleet;
  const struct vs_strmap *digests; /* the last context's, or NULL */
  struct vm_part *parts;
};

static void make_vm_part(void *arg, size_t i) {
  struct vm_parts *job = arg;
  const struct vs_feature *doc = vs_view_doc(job->fleet, i);
  const struct digest *kept = job->digests ? vs_strmap_get(job->digests, vs_feature_id(doc)) : NULL;
  struct vm_part *p = &job->parts[i];
  p->digest = kept && kept->doc == doc ? vs_xstrdup(kept->hex) : vs_view_digest(doc, &p->err);
  json_t *part = p->digest ? vs_view_context_vm(job->fleet, i, p->digest, &p->err) : NULL;
  if (part && !(job->parts[i].text = json_dumps(part, JSON_COMPACT)))
    vs_err_set(&job->parts[i].err, ENOMEM,
               "VM %s: out of memory writing its part of the fleet's context",
               vs_feature_id(vs_view_doc(job->fleet, i)));
  json_decref(part);
}

/* ID as a JSON string, or NULL when it is not UTF-8. */
static char *json_string_text(const char *id) {
  json_t *key = json_string(id);
  char *text = key ? json_dumps(key, JSON_ENCODE_ANY) : NULL;
  json_decref(key);
  return text;
}

/* Adds "ID":TEXT to the JSON object being written in B. */
static int add_member_text(const struct vs_store *s, struct vs_buf *b, const char *id,
                           const char *text, struct vs_err *err) {
  _cleanup_(vs_freep) char *key_text = json_string_text(id);
  if (!key_text)
    return vs_err_set(err, EINVAL,
                      "fleet store %s: a VM whose uuid is not UTF-8 text: its part of the fleet's "
                      "context cannot be written",
                      s->safe_url);
  vs_buf_addf(b, "%s%s:%s", b->len > 1 ? "," : "", key_text, text);
  return 0;
}

/* Calls vmscope_publish_context with the VM parts in PARTS (FLEET's order) that differ from the
 * ones written last, or with all of them when BASE is NULL; the new context's epoch, or NULL:
 * with ERR when the call failed, without when the store holds another context than BASE's. */
static char *write_context(struct vs_store *s, const struct vs_view *fleet,
                           const struct vm_part *parts, const char *base, const char *fleet_text,
                           const char *groups_text, struct vs_err *err) {
  struct vs_buf vms = {0}, gone = {0};
  vs_buf_addc(&vms, '{');
  vs_buf_addc(&gone, '[');
  for (size_t i = 0; i < vs_view_count(fleet) && !err->msg; i++) {
    const char *id = vs_feature_id(vs_view_doc(fleet, i));
    const char *was = base ? vs_strmap_get(s->context_vm_parts, id) : NULL;
    if (!was || strcmp(was, parts[i].text) != 0) add_member_text(s, &vms, id, parts[i].text, err);
  }
  size_t pos = 0;
  const char *id;
  void *text;
  while (base && !err->msg && vs_strmap_next(s->context_vm_parts, &pos, &id, &text)) {
    if (vs_view_find_id(fleet, id) >= 0) continue;
    _cleanup_(vs_freep) char *key_text = json_string_text(id); /* written once: it is UTF-8 */
    if (key_text) vs_buf_addf(&gone, "%s%s", gone.len > 1 ? "," : "", key_text);
  }
  vs_buf_addc(&vms, '}');
  vs_buf_addc(&gone, ']');
  _cleanup_(vs_freep) char *vms_text = vs_buf_steal(&vms);
  _cleanup_(vs_freep) char *gone_text = vs_buf_steal(&gone);
  if (err->msg) return NULL;
  const char *p[] = {s->host, base, fleet_text, groups_text, vms_text, gone_text};
  PGresult *r = run(s, "publishing the fleet's context", PGRES_TUPLES_OK,
                    "SELECT vmscope_publish_context($1, $2::bigint, $3::jsonb, $4::jsonb, "
                    "$5::jsonb, $6::jsonb)",
                    6, p, err);
  if (!r) return NULL;
  char *epoch = sym_PQntuples(r) == 1 && !sym_PQgetisnull(r, 0, 0)
                    ? vs_xstrdup(sym_PQgetvalue(r, 0, 0))
                    : NULL;
  sym_PQclear(r);
  return epoch;
}

int vs_store_publish_context(struct vs_store *s, const struct vs_view *fleet, struct vs_err *err) {
  json_t *groups = json_object();
  for (size_t g = 0; g < vs_view_group_count(fleet) && !err->msg; g++) {
    char number[32];
    snprintf(number, sizeof(number), "%zu", g);
    if (json_object_set_new(groups, number, vs_view_context_group(fleet, g)) < 0)
      vs_err_set(err, EINVAL, "group %s's part of the fleet's context cannot be written", number);
  }
  size_t n = vs_view_count(fleet);
  struct vm_part *parts = vs_xcalloc(n ? n : 1, sizeof(*parts));
  struct vm_parts job = {.fleet = fleet, .digests = s->digests, .parts = parts};
  vs_parallel_for(n, 0, make_vm_part, &job); /* each VM's digest of its settings: every CPU */
  /* The digests kept for the next: a VM's entry moves over while its document is the one
   * digested; the entries replaced, and those of VMs gone, are freed on every CPU (they hold
   * the last references to the documents of the VMs that changed, thousands of settings
   * each: 0.37 s on one CPU at 10,000 VMs, 1,000 of them changed, in bench/fleet-scale.sh). */
  struct vs_strmap *digests = vs_strmap_new(digest_free);
  struct digest **dead =
      vs_xcalloc(n + (s->digests ? vs_strmap_count(s->digests) : 0) + 1, sizeof(*dead));
  size_t n_dead = 0;
  for (size_t i = 0; i < n; i++) {
    if (!parts[i].digest) continue;
    const struct vs_feature *doc = vs_view_doc(fleet, i);
    struct digest *d = s->digests ? vs_strmap_take(s->digests, vs_feature_id(doc)) : NULL;
    if (d && d->doc != doc) {
      dead[n_dead++] = d;
      d = NULL;
    }
    if (!d) {
      d = vs_xcalloc(1, sizeof(*d));
      d->doc = vs_feature_ref((struct vs_feature *)doc); /* held, not changed */
      d->hex = vs_steal(&parts[i].digest);
    }
    vs_strmap_put(digests, vs_feature_id(d->doc), d);
  }
  char **gone = NULL; /* the VMs no longer in the fleet */
  size_t n_gone = 0, pos = 0;
  const char *id;
  void *value;
  while (s->digests && vs_strmap_next(s->digests, &pos, &id, &value))
    vs_strv_add(&gone, &n_gone, id);
  for (size_t k = 0; k < n_gone; k++)
    dead[n_dead++] = vs_strmap_take(s->digests, gone[k]);
  vs_strv_free(gone, n_gone);
  vs_strmap_free(s->digests);
  s->digests = digests;
  vs_parallel_for(n_dead, 0, free_digest_at, dead);
  free(dead);
  for (size_t i = 0; i < n && !err->msg; i++)
    if (parts[i].err.msg) vs_err_set(err, parts[i].err.code, "%s", parts[i].err.msg);
  json_t *fleet_part = err->msg ? NULL : vs_view_context_fleet(fleet);
  bool fleet_written = fleet_part != NULL;
  _cleanup_(vs_freep) char *fleet_text = fleet_part ? json_dumps(fleet_part, JSON_COMPACT) : NULL;
  _cleanup_(vs_freep) char *groups_text = fleet_part ? json_dumps(groups, JSON_COMPACT) : NULL;
  json_decref(fleet_part);
  json_decref(groups);
  if (!err->msg && !fleet_written)
    vs_err_set(err, EINVAL, "fleet store %s: the fleet's part of the context cannot be written",
               s->safe_url);
  if (!err->msg && (!fleet_text || !groups_text))
    vs_err_set(err, ENOMEM, "fleet store %s: cannot serialize the fleet's context", s->safe_url);
  char *epoch = NULL;
  if (!err->msg && connect_store(s, err) == 0) {
    epoch = write_context(s, fleet, parts, s->context_base, fleet_text, groups_text, err);
    if (!epoch && !err->msg && s->context_base) /* another context: write this one whole */
      epoch = write_context(s, fleet, parts, NULL, fleet_text, groups_text, err);
    if (!epoch && !err->msg)
      vs_err_set(err, EIO, "fleet store %s: publishing the fleet's context: no epoch returned",
                 s->safe_url);
  }
  forget_context(s);
  if (epoch) { /* what the store now holds */
    s->context_base = epoch;
    s->context_vm_parts = vs_strmap_new(free);
    for (size_t i = 0; i < n; i++)
      vs_strmap_put(s->context_vm_parts, vs_feature_id(vs_view_doc(fleet, i)),
                    vs_steal(&parts[i].text));
  }
  for (size_t i = 0; i < n; i++) {
    free(parts[i].text);
    free(parts[i].digest); /* a kept entry's copy (a new entry took its own) */
    vs_err_clear(&parts[i].err);
  }
  free(parts);
  return err->msg ? -1 : 0;
}

bool vs_store_is_local(const struct vs_view *fleet, size_t i, const struct vs_view *local) {
  const struct vs_feature *doc = vs_view_doc(fleet, i);
  long k = vs_view_find_id(local, vs_feature_id(doc));
  return k >= 0 &&
         strcmp(vs_feature_taken_at(vs_view_doc(local, (size_t)k)), vs_feature_taken_at(doc)) == 0;
}

/* One call of vmscope_publish_findings: every ranking of TEXTS (VM UUIDS[i]'s), but those
 * KEEP names (may be NULL: none; else KEEP[i] is NULL or the fingerprint of the row that holds
 * it). The fingerprints returned (an object, uuid -> sha), JSON null when a kept row was not as
 * named (nothing written), or NULL with ERR. */
static json_t *publish_rankings(struct vs_store *s, const char *const *uuids, char *const *texts,
                                const char *const *keep, size_t n, struct vs_err *err) {
  struct vs_buf sent = {0};
  json_t *kept = json_array();
  vs_buf_addc(&sent, '[');
  for (size_t i = 0; i < n; i++) {
    if (keep && keep[i]) {
      json_array_append_new(kept, json_pack("{s:s,s:s}", "uuid", uuids[i], "sha", keep[i]));
      continue;
    }
    if (sent.len > 1) vs_buf_addc(&sent, ',');
    vs_buf_adds(&sent, texts[i]);
  }
  vs_buf_addc(&sent, ']');
  _cleanup_(vs_freep) char *sent_text = vs_buf_steal(&sent);
  _cleanup_(vs_freep) char *kept_text = json_dumps(kept, JSON_COMPACT);
  json_decref(kept);
  if (!kept_text) {
    vs_err_set(err, ENOMEM, "fleet store %s: cannot serialize the findings", s->safe_url);
    return NULL;
  }
  const char *p[] = {s->host, sent_text, kept_text};
  return call_fingerprints(s, "publishing the findings",
                           "SELECT vmscope_publish_findings($1, $2::jsonb, $3::jsonb)", 3, p, err);
}

int vs_store_publish_findings(struct vs_store *s, struct vs_drift *const *ranked, size_t n,
                              struct vs_err *err) {
  /* Each ranking as text, and its digest: one that is what this host last sent is named by
   * its row's fingerprint instead. */
  _cleanup_(vs_freep) char **texts = vs_xcalloc(n ? n : 1, sizeof(char *));
  _cleanup_(vs_freep) const char **uuids = vs_xcalloc(n ? n : 1, sizeof(char *));
  _cleanup_(vs_freep) const char **keep = vs_xcalloc(n ? n : 1, sizeof(char *));
  _cleanup_(vs_freep) struct ranked *now = vs_xcalloc(n ? n : 1, sizeof(*now));
  _cleanup_(vs_freep) bool *digested = vs_xcalloc(n ? n : 1, sizeof(bool));
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const struct vs_drift *d = ranked[i];
    json_t *one = json_pack("{s:s,s:s,s:i,s:i,s:b,s:o}", "uuid", d->target_id, "name",
                            d->target_name, "samples", (int)d->samples, "alarms", (int)d->alarms,
                            "unique_vm", d->unique, "drift", vs_drift_to_json(d, 0));
    texts[i] = one ? json_dumps(one, JSON_COMPACT) : NULL;
    json_decref(one);
    if (!texts[i]) {
      rc = vs_err_set(err, ENOMEM, "fleet store %s: cannot serialize the findings of %s",
                      s->safe_url, d->target_name);
      break;
    }
    uuids[i] = d->target_id;
    struct vs_err ignored = {0}; /* no digest: the ranking is sent */
    digested[i] = vs_sha256(texts[i], strlen(texts[i]), now[i].digest, &ignored) == 0;
    vs_err_clear(&ignored);
    const struct ranked *was = s->ranked ? vs_strmap_get(s->ranked, d->target_id) : NULL;
    if (digested[i] && was && memcmp(was->digest, now[i].digest, VS_SHA256_LEN) == 0)
      keep[i] = was->sha;
  }
  json_t *shas = NULL;
  bool kept = true;
  if (rc == 0 && connect_store(s, err) == 0) {
    shas = publish_rankings(s, uuids, texts, keep, n, err);
    if (json_is_null(shas)) { /* a ranking kept is not as named: send them all */
      kept = false;
      json_decref(shas);
      shas = resent(s, publish_rankings(s, uuids, texts, NULL, n, err), "publishing the findings",
                    err);
    }
  }
  /* What the store now holds of them: the rankings kept, and those whose fingerprints it
   * returned. After a failure nothing is known: the next call sends every ranking. */
  struct vs_strmap *held = shas ? vs_strmap_new(ranked_free) : NULL;
  for (size_t i = 0; shas && i < n; i++) {
    const char *sha =
        kept && keep[i] ? keep[i] : json_string_value(json_object_get(shas, uuids[i]));
    if (!sha || !digested[i]) continue;
    struct ranked *r = vs_xmalloc(sizeof(*r));
    memcpy(r->digest, now[i].digest, VS_SHA256_LEN);
    r->sha = vs_xstrdup(sha);
    vs_strmap_put(held, uuids[i], r);
  }
  bool ok = shas != NULL;
  json_decref(shas);
  for (size_t i = 0; i < n; i++)
    free(texts[i]);
  vs_strmap_free(s->ranked);
  s->ranked = held;
  return ok ? 0 : -1;
}

int vs_store_publish_fleet(struct vs_store *s, const struct vs_fleet_findings *f,
                           struct vs_err *err) {
  json_t *j = vs_fleet_findings_json(f);
  _cleanup_(vs_freep) char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!text)
    return vs_err_set(err, ENOMEM, "fleet store %s: cannot serialize the fleet's findings",
                      s->safe_url);
  const char *p[] = {s->host, text};
  if (connect_store(s, err) < 0) return -1;
  /* Compressed with lz4 where the server has it (PostgreSQL 14 and later built with it; else
   * it refuses the setting and pglz stays: only the speed depends on it): the fleet's findings
   * at 10,000 VMs, 11.5 MB of JSON each refresh, took PostgreSQL 375 ms to store with pglz
   * and 151 ms with lz4, for 17% more bytes. Only this value: every host's rows with lz4 made
   * the store 12% larger (bench/fleet-scale.sh at 2,000 settings a VM). Asked once a
   * connection: each refusal is an error in the server's log. */
  bool lz4 = false;
  if (!s->no_lz4) {
    PGresult *r = sym_PQexec(s->conn, "SET default_toast_compression = lz4");
    lz4 = sym_PQresultStatus(r) == PGRES_COMMAND_OK;
    s->no_lz4 = !lz4;
    sym_PQclear(r);
  }
  int rc = call(s, "publishing the fleet's findings", "SELECT vmscope_publish_fleet($1, $2::jsonb)",
                2, p, err);
  if (lz4) { /* not reset: the next call starts a new session, rather than write lz4 on */
    PGresult *r = sym_PQexec(s->conn, "RESET default_toast_compression");
    if (sym_PQresultStatus(r) != PGRES_COMMAND_OK) s->migrated = false;
    sym_PQclear(r);
  }
  return rc;
}

bool vs_store_elected(struct vs_store *s) {
  if (!s->conn || sym_PQstatus(s->conn) != CONNECTION_OK) return s->elected = false;
  if (s->elected) return true;
  char key[32];
  snprintf(key, sizeof(key), "%lld", ELECTION_LOCK);
  const char *p[] = {key};
  PGresult *r = sym_PQexecParams(s->conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, NULL, p,
                                 NULL, NULL, 0);
  s->elected = sym_PQresultStatus(r) == PGRES_TUPLES_OK && sym_PQntuples(r) == 1 &&
               strcmp(sym_PQgetvalue(r, 0, 0), "t") == 0;
  sym_PQclear(r);
  return s->elected;
}

json_t *vs_store_rankings(struct vs_store *s, const char *vm, struct vs_err *err) {
  if (connect_store(s, err) < 0) return NULL;
  const char *p[] = {vm ? vm : ""};
  PGresult *r = run(s, "reading the rankings", PGRES_TUPLES_OK,
                    "SELECT host, drift FROM vmscope_rankings "
                    "WHERE $1 = '' OR name = $1 OR uuid = $1 ORDER BY name, uuid",
                    1, p, err);
  if (!r) return NULL;
  json_t *out = json_array();
  for (int i = 0; i < sym_PQntuples(r); i++) {
    json_t *d = json_loadb(sym_PQgetvalue(r, i, 1), (size_t)sym_PQgetlength(r, i, 1), 0, NULL);
    if (!json_is_object(d)) {
      vs_err_set(err, EINVAL, "fleet store %s: a ranking of host %s is not a JSON object",
                 s->safe_url, sym_PQgetvalue(r, i, 0));
      json_decref(d);
      json_decref(out);
      sym_PQclear(r);
      return NULL;
    }
    json_object_set_new(d, "host", json_string(sym_PQgetvalue(r, i, 0)));
    json_array_append_new(out, d);
  }
  sym_PQclear(r);
  return out;
}

struct vs_fleet_findings *vs_store_last_fleet(struct vs_store *s, struct vs_err *err) {
  if (connect_store(s, err) < 0) return NULL;
  _cleanup_(vs_freep) char *max = vs_xasprintf("%u", VS_STORE_MAX_DOC);
  const char *p[] = {max};
  /* The size is checked before the row is sent: a row written by something else may be huge. */
  PGresult *r = run(s, "reading the fleet's last findings", PGRES_TUPLES_OK,
                    "SELECT host, CASE WHEN octet_length(findings::text) <= $1::bigint "
                    "THEN findings::text END, octet_length(findings::text) "
                    "FROM vmscope_fleet_findings ORDER BY found_at DESC LIMIT 1",
                    1, p, err);
  if (!r) return NULL;
  if (sym_PQntuples(r) == 0) {
    sym_PQclear(r);
    return vs_xcalloc(1, sizeof(struct vs_fleet_findings));
  }
  struct vs_fleet_findings *f = NULL;
  json_error_t je = {0};
  struct vs_err why = {0};
  json_t *j = NULL;
  if (sym_PQgetisnull(r, 0, 1))
    vs_err_set(&why, EFBIG, "%s bytes, more than %u", sym_PQgetvalue(r, 0, 2), VS_STORE_MAX_DOC);
  else if (!(j = json_loadb(sym_PQgetvalue(r, 0, 1), (size_t)sym_PQgetlength(r, 0, 1),
                            JSON_REJECT_DUPLICATES, &je)))
    vs_err_set(&why, EINVAL, "%s", je.text);
  else
    f = vs_fleet_findings_from_json(j, &why);
  json_decref(j);
  if (!f)
    vs_err_set(err, why.code,
               "fleet store %s: the fleet findings host %s published are refused: %s", s->safe_url,
               sym_PQgetvalue(r, 0, 0), vs_err_msg(&why));
  vs_err_clear(&why);
  sym_PQclear(r);
  return f;
}
