#!/usr/bin/env bash
# The fleet store's roles and faults, with the real PostgreSQL (TLS only, its certificate signed
# by a CA made here) and two real collectd hosts, each connecting as its own role (a member of
# vmscope_host) with FleetStoreCAFile (verify-full): a host writes its own rows only, a
# reader (vmscope_reader, as Grafana) reads and writes nothing, passwords are never logged; a
# row written by something else is refused; a VM that migrates is one row, the newest
# snapshot's; a host killed at random points never double-counts; the store down is said once,
# ranked through with the fleet as last read, and caught up with when it is back; a host that
# dies leaves the fleet's view after HostTimeout while its rows stay; the host that takes the
# election over starts from what the one before it published (and refuses that row if it fails
# the checks).
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
. "$VS_SRCDIR/t/lib/postgres.sh"
[ -x "$COLLECTD" ] || bail "collectd is not installed (scripts/install-deps.sh installs it)"
work=$(tmpdir)
declare -A cpid=()
cleanup() {
  local p
  for p in "${cpid[@]}"; do kill "$p" 2>/dev/null; done
  wait "${cpid[@]}" 2>/dev/null
  vs_pg_stop
  rm -rf "$work"
}
trap cleanup EXIT; [ -n "${KEEP:-}" ] && trap - EXIT
# TLS only, with a CA made here: hosts verify the server (FleetStoreCAFile, verify-full).
mkdir -p "$work/tls"
(
  cd "$work/tls" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=vmscope-test-ca &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=someone-else &&
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 &&
    printf 'subjectAltName=IP:127.0.0.1\n' >san.ext &&
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext
) >"$work/tls/openssl.log" 2>&1 || bail "openssl: $(tail -n1 "$work/tls/openssl.log")"
chmod 755 "$work/tls"
chmod 644 "$work/tls/ca.crt" "$work/tls/other-ca.crt"
VS_PG_TLS=$work/tls vs_pg_start "$work/pg" || { skip 1 "$VS_PG_WHY"; done_testing; exit $?; }
sql() { VS_PG_DB=vmscope vs_pg_sql "$@"; }
as_role() { # ROLE PASSWORD SQL: psql over TCP as ROLE; its output and errors
  PGPASSWORD=$2 psql -qAtX -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$VS_PG_PORT user=$1 dbname=vmscope" -c "$3" 2>&1 | head -n1
}
vs_pg_sql -c "CREATE ROLE vmscope LOGIN CREATEROLE PASSWORD 'owner-secret'" -c 'CREATE DATABASE vmscope OWNER vmscope' >/dev/null
printf 'owner-secret\n' >"$work/owner.pw"
"$VMSCOPE" fleet migrate --store "$(vs_pg_url vmscope vmscope)" --password-file "$work/owner.pw" --ca-file "$work/tls/ca.crt" >"$work/migrate.out" 2>&1
is "$?:$(cat "$work/migrate.out")" "0:the fleet store's schema is at version 10" "the owner creates the schema (vmscope fleet migrate)"
for h in host-a host-b; do
  vs_pg_sql -c "CREATE ROLE \"$h\" LOGIN PASSWORD 'pw-of-$h' IN ROLE vmscope_host" >/dev/null
  printf 'pw-of-%s\n' "$h" >"$work/$h.pw"
done
vs_pg_sql -c "CREATE ROLE grafana LOGIN PASSWORD 'pw-of-grafana' IN ROLE vmscope_reader" >/dev/null

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
base=$work/trees/base
mk "$base/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
mk "$base/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\n'
mk "$base/var/lib/dpkg/status" 'Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n'
mkdir -p "$work/images"
declare -A vms=([host-a]="web-1 web-2 web-3" [host-b]="web-4 web-5 web-6")
for n in web-1 web-2 web-3 web-4 web-5 web-6; do
  cp -a "$base" "$work/trees/$n"
  mk "$work/trees/$n/etc/hostname" "$n\n"
  bash "$VS_SRCDIR/scripts/tree-to-image.sh" "$work/trees/$n" "$work/images/$n.qcow2" whole || bail "image $n"
done
uuid() { printf '00000000-0000-4000-8000-00000000000%s' "${1#web-}"; }
plugindir=$(vs_plugin_dir "$work") || bail "make install"
vs_collectd_env
start_host() { # HOST
  local h=$1 d=$work/$1 n
  mkdir -p "$d"
  if [ ! -f "$d/collectd.conf" ]; then
    { echo "<node>"; for n in ${vms[$h]}; do vs_test_domain "$n" "$(uuid "$n")" "$work/images/$n.qcow2"; done; echo "</node>"; } >"$d/node.xml"
    { vs_collectd_conf "$d" "$plugindir" | sed "s/^Hostname \"vstest\"/Hostname \"$h\"/"; cat <<CONF; } >"$d/collectd.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "test://$d/node.xml"
  Interval 1
  DataDir "$d/pool"
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$d/pool"
  Interval 1
  FleetStore "postgresql://$h@127.0.0.1:$VS_PG_PORT/vmscope?connect_timeout=3"
  FleetStorePasswordFile "$work/$h.pw"
  FleetStoreCAFile "$work/tls/ca.crt"
  HostTimeout 8
</Plugin>
CONF
  fi
  "${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$d/collectd.conf" >>"$d/collectd.out" 2>&1 &
  cpid[$h]=$!
}
start_host host-a
start_host host-b
samples() { sql -c "SELECT string_agg(samples::text, ',' ORDER BY name) FROM vmscope_rankings WHERE host = '$1'" 2>/dev/null; }
fleet_of_six() { [ "$(samples host-a)" = 5,5,5 ] && [ "$(samples host-b)" = 5,5,5 ]; }
wait_for 120 fleet_of_six
ok $? "two hosts, each as its own role, rank their VMs against the fleet's six (5 peers each)"

tls=$(sql -c "SELECT string_agg(DISTINCT a.usename || ':' || s.ssl, ',' ORDER BY a.usename || ':' || s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'vmscope'")
is "$tls" "host-a:true,host-b:true" "both hosts' sessions are TLS (the server takes no other TCP connection)"
"$VMSCOPE" fleet drift --store "$(vs_pg_url vmscope vmscope)" --password-file "$work/owner.pw" --ca-file "$work/tls/other-ca.crt" >/dev/null 2>"$work/e"
rc=$?
[ $rc = 1 ] && grep -q "cannot connect: .*certificate verify failed" "$work/e"
ok $? "a server whose certificate another CA signed is refused, a source that failed (exit $rc: $(head -c 200 "$work/e"))"

# --- roles ----------------------------------------------------------------------------------
out=$(as_role host-a pw-of-host-a "SELECT vmscope_publish_vms('host-b', 0, '[]', NULL)")
[[ $out == *"role host-a may not write as host host-b"* ]]
ok $? "host-a cannot publish as host-b (its counts): $out"
out=$(as_role host-a pw-of-host-a "UPDATE vmscope_rankings SET drift = '{\"findings\": []}' WHERE host = 'host-b'")
[[ $out == *"permission denied for table vmscope_rankings"* ]]
ok $? "nor change host-b's findings in the table: $out"
out=$(as_role host-a pw-of-host-a "UPDATE vmscope_findings SET severity = 'okay' WHERE host = 'host-b'")
[[ $out == *"cannot update view \"vmscope_findings\""* ]]
ok $? "nor through the view of them, which no one writes: $out"
out=$(as_role host-a pw-of-host-a "DELETE FROM vmscope_vms WHERE host = 'host-b'")
[[ $out == *"permission denied for table vmscope_vms"* ]]
ok $? "nor delete host-b's VMs: $out"
out=$(as_role host-a pw-of-host-a "UPDATE vmscope_baselines SET settings = '{}' WHERE host = 'host-b'")
[[ $out == *"permission denied for table vmscope_baselines"* ]]
ok $? "nor change host-b's baseline, what host-b's VMs share (schema version 10): $out"
# (Two hosts whose VMs share the same values have the same baseline, by its content, each its
# own row: a baseline only host-b holds is named here.)
bb=$(printf 'd%.0s' {1..32})
sql -c "INSERT INTO vmscope_baselines (host, id, made_at, settings) VALUES ('host-b', '$bb', now(), '{}')" >/dev/null
out=$(as_role host-a pw-of-host-a "SELECT coalesce(vmscope_publish_vms('host-a', 1, '[{\"uuid\": \"x-1\", \"name\": \"x-1\", \"taken_at\": \"2030-01-01T00:00:00Z\", \"doc\": {\"id\": \"x-1\", \"settings\": {}}, \"baseline\": \"$bb\"}]', NULL, '[]', '{\"id\": \"$bb\"}')::text, 'null')")
[[ $out == null && $(sql -c "SELECT count(*) FROM vmscope_vms WHERE uuid = 'x-1'") == 0 ]]
ok $? "nor make a row of its own a patch onto host-b's baseline (not host-a's: nothing is written): $out"
sql -c "DELETE FROM vmscope_baselines WHERE id = '$bb'" >/dev/null
out=$(as_role host-a pw-of-host-a "SELECT vmscope_publish_findings('host-a', '[{\"uuid\": \"$(uuid web-4)\", \"name\": \"web-4\", \"samples\": 0, \"alarms\": 0, \"unique_vm\": false, \"drift\": {\"findings\": []}}]')")
[[ $out == *"host host-a ranks a VM another host published"* ]]
ok $? "nor publish a ranking of host-b's VM under its own name: $out"
out=$(as_role host-a pw-of-host-a "SELECT vmscope_publish_fleet('host-a', '{}')")
[[ $out == *"does not hold the fleet's lock"* ]]
ok $? "the fleet's findings come from the session that holds the lock only: $out"
out=$(as_role host-a pw-of-host-a "SELECT vmscope_publish_context('host-a', NULL, '{}', '{}', '{}', '[]')")
[[ $out == *"does not hold the fleet's lock"* ]]
ok $? "and so does the context the other hosts rank from: $out"
out=$(as_role host-a pw-of-host-a "DELETE FROM vmscope_vm_context")
[[ $out == *"permission denied for table vmscope_vm_context"* ]]
ok $? "which no host writes directly: $out"
is "$(sql -c "SELECT count(*) FROM vmscope_vms WHERE host = 'host-b'"):$(sql -c "SELECT count(*) FROM vmscope_findings WHERE host = 'host-b' AND severity = 'okay'")" "3:0" \
  "host-b's rows are as host-b wrote them"
out=$(as_role grafana pw-of-grafana "SELECT count(*) FROM vmscope_findings")
[[ $out =~ ^[0-9]+$ ]]
ok $? "the reader role (Grafana) reads the findings ($out rows)"
out=$(as_role grafana pw-of-grafana "INSERT INTO vmscope_hosts (host, seen) VALUES ('x', now())")
[[ $out == *"permission denied"* ]]
ok $? "and writes nothing: $out"
out=$(as_role grafana pw-of-grafana "SELECT vmscope_publish_vms('grafana', 0, '[]', NULL)")
[[ $out == *"permission denied for function vmscope_publish_vms"* ]]
ok $? "not even as a host of its own name: $out"
out=$(as_role grafana pw-of-grafana "SELECT count(*) FROM vmscope_documents")
[[ $out == *"permission denied for table vmscope_documents"* ]]
ok $? "whole documents are for their owner only: $out"

# --- rows written by something else ---------------------------------------------------------
# (A host's row with its settings whole, not a patch onto its baseline: as the rows of another
# writer, or of a host of schema version 9 or older, are.)
whole="jsonb_set(v.doc - 'settings_patch', '{settings}', vmscope_settings(v.doc, (SELECT b.settings FROM vmscope_baselines b WHERE b.serial = v.baseline)))"
sql -c "INSERT INTO vmscope_hosts (host, seen) VALUES ('rogue', now() + interval '1 hour');
  INSERT INTO vmscope_vms VALUES ('00000000-0000-4000-8000-0000000000ff', 'rogue', 'web-x', now(), now(),
    (SELECT $whole FROM vmscope_vms v WHERE uuid = '$(uuid web-1)'), NULL)" >/dev/null
refused() { grep -q "vmscope_drift: fleet store: VM 00000000-0000-4000-8000-0000000000ff (host rogue): the document's id is \"$(uuid web-1)\", not the row's" "$work/$1/collectd.log"; }
# The host that reads every row is the elected one (it makes the context the other ranks from).
elected=$(grep -l "this host does the fleet's once-only work" "$work"/host-*/collectd.log | head -n1 | xargs -r dirname | xargs -r basename)
wait_for 30 refused "$elected"
ok $? "a row whose document is another VM's is refused by the host that reads every row (the elected $elected), which says which and why"
# Two more rounds of each host's, each publishing its rankings after the row was refused.
ranked_since() { [ "$(sql -c "SELECT count(*) FROM vmscope_rankings WHERE host = '$1' AND ranked_at > to_timestamp($2)")" -gt 0 ]; }
for round in 1 2; do
  since=$(date -u +%s.%N)
  wait_for 30 ranked_since host-a "$since" && wait_for 30 ranked_since host-b "$since"
done
is "$(samples host-a) $(samples host-b)" "5,5,5 5,5,5" \
  "and it is not counted: the VMs still have 5 peers, on the other host too, which ranks from the elected host's context"
sql -c "DELETE FROM vmscope_vms WHERE host = 'rogue'; DELETE FROM vmscope_hosts WHERE host = 'rogue'" >/dev/null
# Rows whose newest document is sound and whose previous one names another VM: as a patch onto
# the newest (ff), and whole, as schema version 2 stored it (fe).
sql -c "INSERT INTO vmscope_hosts (host, seen) VALUES ('rogue', now() + interval '1 hour');
  INSERT INTO vmscope_vms (uuid, host, name, taken_at, published, doc, previous, previous_patch)
    SELECT '00000000-0000-4000-8000-0000000000f' || x, 'rogue', 'web-' || x, now(), now(),
      jsonb_set($whole, '{id}', to_jsonb('00000000-0000-4000-8000-0000000000f' || x)),
      CASE x WHEN 'e' THEN $whole END, CASE x WHEN 'f' THEN '{\"id\": \"$(uuid web-2)\"}'::jsonb END
    FROM vmscope_vms v, (VALUES ('e'), ('f')) AS r(x) WHERE uuid = '$(uuid web-1)'" >/dev/null
refused_prev() {
  grep -q "vmscope_drift: fleet store: VM 00000000-0000-4000-8000-0000000000ff (host rogue), previous snapshot: the document's id is \"$(uuid web-2)\", not the row's" "$work/$1/collectd.log" &&
    grep -q "vmscope_drift: fleet store: VM 00000000-0000-4000-8000-0000000000fe (host rogue), previous snapshot: the document's id is \"$(uuid web-1)\", not the row's" "$work/$1/collectd.log"
}
wait_for 30 refused_prev "$elected"
ok $? "a previous snapshot that is another VM's, as a patch or whole, is refused, and the elected host says so"
sql -c "DELETE FROM vmscope_vms WHERE host = 'rogue'; DELETE FROM vmscope_hosts WHERE host = 'rogue'" >/dev/null

# --- rows kept loaded between rounds (schema version 5: each row's fingerprint) --------------
# Eight sound rows of a host that publishes nothing more. After the round that loads them, the
# elected host loads again only the rows that changed (the six VMs of host-a and host-b take a
# new snapshot every second): a round that loads six rows or fewer of fourteen kept the eight.
sql -c "INSERT INTO vmscope_hosts (host, seen) VALUES ('rogue', now() + interval '1 hour');
  INSERT INTO vmscope_vms (uuid, host, name, taken_at, published, doc)
    SELECT '00000000-0000-4000-8000-0000000000f' || x, 'rogue', 'web-' || x, now(), now(),
      jsonb_set(jsonb_set($whole, '{id}', to_jsonb('00000000-0000-4000-8000-0000000000f' || x)),
        '{name}', to_jsonb('web-' || x))
    FROM vmscope_vms v, (VALUES ('0'), ('1'), ('2'), ('3'), ('4'), ('5'), ('6'), ('7')) AS r(x)
    WHERE uuid = '$(uuid web-1)'" >/dev/null
gauge() { tail -qn1 "$work/$1/csv/$1/vmscope_drift/count-$2"-* 2>/dev/null | tail -n1 | cut -d, -f2 | cut -d. -f1; }
kept_eight() {
  local rows loaded
  rows=$(gauge "$1" fleet_rows) loaded=$(gauge "$1" fleet_rows_loaded)
  [ "${rows:-0}" -eq 14 ] && [ "${loaded:-99}" -le 6 ]
}
wait_for 30 kept_eight "$elected"
ok $? "the elected host keeps the rows it loaded: a round loads only the new or changed ($(gauge "$elected" fleet_rows_loaded) of $(gauge "$elected" fleet_rows) rows; count-fleet_rows_loaded)"
# And it writes again only the context's VM parts that changed (schema version 6): the eight
# unchanged VMs' parts stay as a refresh after this point found them, the fleet's part newer.
t0=$(sql -c "SELECT now()")
parts_kept() {
  [ "$(sql -c "SELECT count(*) FILTER (WHERE c.made_at < '$t0') || ' ' || (f.made_at > '$t0')
    FROM vmscope_vm_context c, vmscope_context f WHERE f.part = 'fleet' AND c.uuid LIKE '%0000000000f_'
    GROUP BY f.made_at")" = "8 true" ]
}
wait_for 30 parts_kept
ok $? "the refreshes after it leave the eight unchanged VMs' parts of the context as they were"
# A fleet part other than the one the elected host wrote last (its time set back, as another
# writer would leave it): the host writes the whole context again, the eight unchanged VMs'
# parts with the rest.
# (An UPDATE that meets the elected host's publish replacing the row updates nothing: again.)
t1=$(sql -c "SELECT now()")
set_back() { [ "$(sql -c "WITH u AS (UPDATE vmscope_context SET made_at = made_at - interval '1 second' WHERE part = 'fleet' RETURNING 1) SELECT count(*) FROM u")" = 1 ]; }
for _ in 1 2 3 4 5 6 7 8 9 10; do set_back && break; done
whole_again() { [ "$(sql -c "SELECT count(*) FROM vmscope_vm_context WHERE made_at > '$t1' AND uuid LIKE '%0000000000f_'")" = 8 ]; }
wait_for 30 whole_again
ok $? "a context that is not the one it wrote last is written again whole: the eight unchanged VMs' parts too"
# One of them changed in place, its time the same: read again, and refused.
sql -c "UPDATE vmscope_vms SET doc = jsonb_set(doc, '{id}', to_jsonb('$(uuid web-2)'::text))
  WHERE uuid = '00000000-0000-4000-8000-0000000000f3'" >/dev/null
changed_refused() { grep -q "vmscope_drift: fleet store: VM 00000000-0000-4000-8000-0000000000f3 (host rogue): the document's id is \"$(uuid web-2)\", not the row's" "$work/$1/collectd.log"; }
wait_for 30 changed_refused "$elected"
ok $? "a kept row changed in place (its taken_at the same) is read again and refused: its fingerprint is computed by PostgreSQL from the row"
sql -c "DELETE FROM vmscope_vms WHERE host = 'rogue'; DELETE FROM vmscope_hosts WHERE host = 'rogue'" >/dev/null

# --- a VM that migrates: one row, the newest snapshot's ------------------------------------
pw() { cat "$work/$1.pw"; }
row='{"uuid": "00000000-0000-4000-8000-0000000000ee", "name": "mover", "taken_at": "T", "doc": {}, "previous": null}'
as_role vmscope owner-secret "SELECT vmscope_publish_vms('host-m1', 1, '[${row/T/2026-12-01T10:00:00Z}]', NULL);
  SELECT vmscope_publish_vms('host-m2', 1, '[${row/T/2026-12-01T11:00:00Z}]', NULL);
  SELECT vmscope_publish_vms('host-m1', 1, '[${row/T/2026-12-01T10:00:00Z}]', NULL)" >/dev/null
is "$(sql -c "SELECT count(*) || ' ' || min(host) FROM vmscope_vms WHERE uuid = '00000000-0000-4000-8000-0000000000ee'")" "1 host-m2" \
  "a VM published by two hosts is one row, the host with the newer snapshot's, though the other publishes after"
as_role vmscope owner-secret "SELECT vmscope_publish_vms('host-m1', 0, '[]', NULL)" >/dev/null
is "$(sql -c "SELECT count(*) FROM vmscope_vms WHERE uuid = '00000000-0000-4000-8000-0000000000ee'")" 1 \
  "and the host it left cannot remove it"
sql -c "DELETE FROM vmscope_vms WHERE uuid = '00000000-0000-4000-8000-0000000000ee'; DELETE FROM vmscope_hosts WHERE host LIKE 'host-m_'" >/dev/null

# --- host-b killed at random points: never a double count -----------------------------------
for i in 1 2 3 4 5; do
  kill -9 "${cpid[host-b]}" 2>/dev/null
  wait "${cpid[host-b]}" 2>/dev/null
  start_host host-b
  sleep "0.$((RANDOM % 10))$((RANDOM % 10))" # a random point in its next round, not a tuned wait
done
kill -9 "${cpid[host-b]}"
wait "${cpid[host-b]}" 2>/dev/null
restarted=$(date -u +%s)
start_host host-b
consistent() {
  [ "$(sql -c "SELECT count(*) || ' ' || count(DISTINCT uuid) FROM vmscope_vms")" = "6 6" ] &&
    [ "$(sql -c "SELECT string_agg(h.host || '=' || h.vms || '/' || (SELECT count(*) FROM vmscope_vms v WHERE v.host = h.host), ' ' ORDER BY h.host) FROM vmscope_hosts h")" = "host-a=3/3 host-b=3/3" ] &&
    [ "$(samples host-b)" = 5,5,5 ] &&
    [ "$(sql -c "SELECT count(*) FROM vmscope_rankings WHERE host = 'host-b' AND ranked_at > to_timestamp($restarted)")" = 3 ]
}
wait_for 60 consistent
ok $? "killed by SIGKILL five times at random points: six VMs, each once, each host's count its rows', ranked again as before"
is "$(sql -c "SELECT count(*) FROM vmscope_findings f WHERE NOT EXISTS (SELECT FROM vmscope_vms v WHERE v.uuid = f.uuid)")" 0 \
  "and no finding of a VM that is not there"

# --- the store down, and back ---------------------------------------------------------------
said=$(cat "$work/host-a/collectd.log" | grep -c 'ranking against the fleet as last read') # a slow first connect may have said it
vs_pg_stop
down() { grep -q "vmscope_drift: fleet store postgresql://$1@127.0.0.1:$VS_PG_PORT/vmscope?connect_timeout=3: .*; ranking against the fleet as last read ([0-9]* VMs) until it is back" "$work/$1/collectd.log"; }
wait_for 120 down host-a && wait_for 120 down host-b
ok $? "the store stopped: each host says so, and ranks against the fleet as last read" ||
  for h in host-a host-b; do grep -h 'vmscope_drift' "$work/$h/collectd.log" | tail -n 6 | sed "s/^/# $h: /"; done
sleep 3 # three more rounds without the store: said once, not each round
is "$(($(grep -c 'ranking against the fleet as last read' "$work/host-a/collectd.log") - said))" 1 "once"
is "$(grep -c "plugin_instance = web-[123], type = unique" "$work/host-a/collectd.log")" 0 \
  "and no VM of host-a became unique: its peers on host-b are still counted"
ts=$(date -u +%s)
VS_PG_PID= # started again on its data and port
setpriv --reuid=postgres --regid=postgres --init-groups /usr/lib/postgresql/15/bin/postgres -D "$work/pg/data" \
  -k "$work/pg/sock" -p "$VS_PG_PORT" -c listen_addresses=127.0.0.1 -c fsync=off \
  -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key >>"$work/pg/postgres.log" 2>&1 &
VS_PG_PID=$!
back() { grep -q "vmscope_drift: FleetStore works again" "$work/$1/collectd.log"; }
caught_up() { [ "$(sql -c "SELECT count(*) FROM vmscope_rankings WHERE ranked_at > to_timestamp($ts)" 2>/dev/null)" = 6 ]; }
wait_for 60 back host-a && wait_for 60 back host-b && wait_for 60 caught_up
ok $? "when it is back each host says so once and catches up: all six VMs ranked again"

# --- a host that dies: out of the view after HostTimeout, its rows kept ---------------------
kill "${cpid[host-b]}"
wait "${cpid[host-b]}" 2>/dev/null
unset 'cpid[host-b]'
alone() { [ "$(samples host-a)" = 2,2,2 ]; }
wait_for 60 alone
ok $? "host-b stopped: after HostTimeout (8 s) host-a ranks its VMs against its own (2 peers each)"
is "$(sql -c "SELECT count(*) FROM vmscope_vms WHERE host = 'host-b'")" 3 "host-b's rows stay, for history"

# --- the election moves: the host taking over starts from what was notified -----------------
back_at=$(date -u +%s)
start_host host-b
ranks_again() { [ "$(sql -c "SELECT count(*) FROM vmscope_rankings WHERE host = 'host-b' AND ranked_at > to_timestamp($back_at)")" = 3 ]; }
wait_for 120 ranks_again
elections=$(grep -c "this host does the fleet's once-only work" "$work/host-b/collectd.log")
kill -STOP "${cpid[host-b]}" # so that it cannot take over before the row below is there
kill -9 "${cpid[host-a]}"
wait "${cpid[host-a]}" 2>/dev/null
unset 'cpid[host-a]'
# host-a's last publish, as if it had notified a group that is gone now (and whatever it had)
sql -c "UPDATE vmscope_fleet_findings SET findings = jsonb_set(findings, '{groups}', findings->'groups' || '[{\"key\":\"sysctl:vm.swappiness\",\"value\":\"10\",\"keys\":1,\"members\":[\"web-1\",\"web-2\"],\"rest\":{\"value\":\"60\",\"count\":4},\"message\":\"vm.swappiness is 10 on 2 of 6 VMs\"}]'::jsonb)" >/dev/null
kill -CONT "${cpid[host-b]}"
took_over() { [ "$(grep -c "this host does the fleet's once-only work" "$work/host-b/collectd.log")" -gt "$elections" ]; }
cleared() { grep -q "Notification: severity = OKAY, host = host-b, plugin = vmscope_drift, type = config_group, type_instance = sysctl.vm.swappiness, message = vm.swappiness is no longer 10 on a group of its own (2 VMs: web-1, web-2)" "$work/host-b/collectd.log"; }
wait_for 120 took_over && wait_for 60 cleared
ok $? "host-a killed: host-b takes the election over and clears the group host-a had notified, which is gone" ||
  grep -h 'vmscope_drift' "$work/host-b/collectd.log" | tail -n 6 | sed "s/^/# host-b: /"
published_by() { [ "$(sql -c "SELECT host FROM vmscope_fleet_findings")" = "$1" ]; }
wait_for 120 published_by host-b # host-b's own publish as the elected host, then its last
kill -9 "${cpid[host-b]}"
wait "${cpid[host-b]}" 2>/dev/null
sql -c "UPDATE vmscope_fleet_findings SET findings = '{\"vms\":6,\"groups\":[],\"rollouts\":[],\"unique\":[],\"by\":\"someone\"}'::jsonb" >/dev/null
start_host host-b
refused_last() { grep -q "the fleet findings host host-b published are refused: fleet findings: .*by.*; the fleet's standing groups and rollouts are notified again" "$work/host-b/collectd.log"; }
wait_for 120 refused_last
ok $? "a row of fleet findings that fails the checks is refused, and said so, when a host takes over"

# --- passwords -----------------------------------------------------------------------------
is "$(grep -l -e pw-of-host -e owner-secret "$work"/host-*/collectd.log "$work"/host-*/collectd.out "$work/pg/postgres.log" "$work/migrate.out" 2>/dev/null | wc -l)" 0 \
  "no password appears in any log"
done_testing
