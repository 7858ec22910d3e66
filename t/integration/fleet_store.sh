#!/usr/bin/env bash
# One fleet, three hosts: three real collectd instances (their own Hostname, DataDir and libvirt
# test-driver node) with vmscope_snapshot and vmscope_drift, publishing into one real
# PostgreSQL. Each role's VMs are spread across the hosts. Every VM's findings must equal those
# of one pool holding every host's documents (vmscope drift --pool A --pool B --pool C), and
# the misconfigurations only the fleet view can see must be alarmed on their hosts: web-03
# (one other web server on its host) and db-03 (no other database on its host).
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
. "$VS_SRCDIR/t/lib/postgres.sh"
[ -x "$COLLECTD" ] || bail "collectd is not installed (scripts/install-deps.sh installs it)"
work=$(tmpdir)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait "${pids[@]}" 2>/dev/null
  vs_pg_stop
  rm -rf "$work"
}
trap cleanup EXIT; [ -n "${KEEP:-}" ] && trap - EXIT
vs_pg_start "$work/pg" || { skip 1 "$VS_PG_WHY"; done_testing; exit $?; }
pids+=("$VS_PG_PID")
printf 'fleet-secret\n' >"$work/password"
chmod 600 "$work/password"
# The schema's owner, that every host shares here (t/integration/fleet_security.sh gives each
# host its own role): it may create the group roles the schema grants to.
vs_pg_store vmscope "$work/password"
url=$(vs_pg_url vmscope vmscope)
sql() { VS_PG_DB=vmscope vs_pg_sql "$@"; }
# A vmscope_vms row's settings whole (schema version 10: a patch onto its host's baseline)
settings="vmscope_settings(doc, (SELECT b.settings FROM vmscope_baselines b WHERE b.serial = vmscope_vms.baseline))"

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
base=$work/trees/base
mk "$base/etc/os-release" 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
mk "$base/etc/ssh/sshd_config" '#PermitRootLogin prohibit-password\nPort 22\nUsePAM yes\n'
mk "$base/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n'
mk "$base/etc/group" 'root:x:0:\n'
mk "$base/etc/sysctl.d/50-base.conf" 'kernel.sysrq = 0\n'
status='Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n'
mk "$base/var/lib/dpkg/status" "$status"
# A database server: PostgreSQL's packages, user and kernel settings, twenty-odd keys no web
# server has (so that a database alone on its host is unique there: nothing to compare with).
db=$work/trees/db
cp -a "$base" "$db"
dbstatus=$status
for p in postgresql-15 postgresql-client-15 postgresql-common postgresql-client-common libpq5 \
  libllvm14 libicu72 libxslt1.1 libjson-perl libsensors5 ssl-cert sysstat logrotate locales \
  libcommon-sense-perl libtypes-serialiser-perl libjson-xs-perl pgdg-keyring; do
  dbstatus+="\nPackage: $p\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n"
done
mk "$db/var/lib/dpkg/status" "$dbstatus"
mk "$db/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\npostgres:x:105:110:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n'
mk "$db/etc/group" 'root:x:0:\npostgres:x:110:\n'
mk "$db/etc/sysctl.d/60-db.conf" 'vm.swappiness = 1\nkernel.shmmax = 68719476736\n'

# host-a: web-01 web-02 db-01; host-b: web-03 web-04 db-02; host-c: web-05 web-06 db-03
hosts=(host-a host-b host-c)
declare -A vms=([host-a]="web-01 web-02 db-01" [host-b]="web-03 web-04 db-02" [host-c]="web-05 web-06 db-03")
mkdir -p "$work/images"
for n in web-01 web-02 web-03 web-04 web-05 web-06 db-01 db-02 db-03; do
  case $n in db-*) cp -a "$db" "$work/trees/$n" ;; *) cp -a "$base" "$work/trees/$n" ;; esac
  mk "$work/trees/$n/etc/hostname" "$n\n"
done
mk "$work/trees/web-03/etc/ssh/sshd_config" '#PermitRootLogin prohibit-password\nPort 22\nUsePAM yes\nPermitRootLogin yes\n'
mk "$work/trees/db-03/etc/sysctl.d/60-db.conf" 'vm.swappiness = 60\nkernel.shmmax = 68719476736\n'
built=0
for n in web-01 web-02 web-03 web-04 web-05 web-06 db-01 db-02 db-03; do
  bash "$VS_SRCDIR/scripts/tree-to-image.sh" "$work/trees/$n" "$work/images/$n.qcow2" whole && built=$((built + 1))
done
is $built 9 "nine qcow2 images are built from guest trees"

plugindir=$(vs_plugin_dir "$work")
ok $? "make install into a staging root"
vs_collectd_env
uuid() { # web-03 -> ...0013, db-02 -> ...0092
  case $1 in db-*) printf '00000000-0000-4000-8000-00000000009%s' "${1#db-0}" ;; *) printf '00000000-0000-4000-8000-00000000001%s' "${1#web-0}" ;; esac
}
start_host() { # HOST
  local h=$1 d=$work/$1 n
  mkdir -p "$d"
  {
    echo "<node>"
    for n in ${vms[$h]}; do
      vs_test_domain "$n" "$(uuid "$n")" "$work/images/$n.qcow2" 2 512
    done
    echo "</node>"
  } >"$d/node.xml"
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
  FleetStore "$url"
  FleetStorePasswordFile "$work/password"
  HostTimeout 120
</Plugin>
CONF
  "${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$d/collectd.conf" >"$d/collectd.out" 2>&1 &
  pids+=($!)
  hostpids+=($!)
}
hostpids=()
for h in "${hosts[@]}"; do start_host "$h"; done

# The fleet as one pool holding every host's documents, and as the hosts ranked it: each VM's
# name, peers, and findings (key, rank, score, severity, kind).
shape='[.[] | {name, samples, unique, alarms, findings: [.findings[] | {key, value, rank, score: (.score * 1000 | round), severity, kind}]}] | sort_by(.name)'
union() { "$VMSCOPE" drift --pool "$work/host-a/pool" --pool "$work/host-b/pool" --pool "$work/host-c/pool" --format json 2>/dev/null | jq -S "$shape"; }
fleet() { "$VMSCOPE" fleet drift --store "$url" --password-file "$work/password" --format json 2>/dev/null | jq -S "$shape"; }
ranked_all() { [ "$(sql -c 'SELECT count(*) || $$ $$ || count(DISTINCT host) FROM vmscope_rankings' 2>/dev/null)" = "9 3" ]; }
same() { [ -n "$(union)" ] && [ "$(union)" = "$(fleet)" ]; }
wait_for 120 ranked_all
ok $? "the three hosts publish and rank their nine VMs"
wait_for 60 same
ok $? "every VM's findings (keys, values, ranks, scores, severities, kinds) equal one pool's of every host's documents"
diff <(union) <(fleet) | head -n 20 | sed 's/^/# /'
# The two hosts that are not elected rank from the context the elected host makes (its groups'
# and the fleet's population summaries), not from every VM's row; and still equal one pool. A
# host says when it starts ranking from the context and why it reads the whole fleet again:
# the last of the two it said is what it does.
in_context() { # HOST
  grep -h "from the fleet's context\|reading the whole fleet" "$work/$1/collectd.log" | tail -n1 |
    grep -q "from the fleet's context (9 VMs in the fleet)"
}
others_in_context() {
  local h n=0
  for h in "${hosts[@]}"; do
    grep -q "this host does the fleet's once-only work" "$work/$h/collectd.log" || { in_context "$h" && n=$((n + 1)); }
  done
  [ $n = 2 ]
}
wait_for 60 others_in_context
r=$?
ok $r "the two hosts not elected rank their VMs from the fleet's context of all nine VMs"
[ $r = 0 ] || grep -h "vmscope_drift: .*\(context\|whole fleet\|once-only\)" "$work"/host-*/collectd.log | head -n 20 | sed 's/^/# /'
since=$(sql -c "SELECT now()")
ranked_since() { [ "$(sql -c "SELECT count(*) FROM vmscope_rankings WHERE ranked_at > '$since'")" = 9 ]; }
wait_for 30 ranked_since && others_in_context && same
ok $? "ranked again from it, every VM's findings still equal one pool's"
diff <(union) <(fleet) | head -n 20 | sed 's/^/# /'
is "$(sql -c "SELECT count(*) FILTER (WHERE part = 'fleet') || ' ' || (count(*) FILTER (WHERE part LIKE 'group:%') > 0) FROM vmscope_context") $(sql -c 'SELECT count(*) FROM vmscope_vm_context')" \
  "1 true 9" \
  "the context: one fleet part, a part per group, a part per VM"
is "$(sql -c 'SELECT count(previous_patch) || $$ $$ || count(previous) FROM vmscope_vms')" "9 0" \
  "each VM's previous snapshot is stored as a patch onto its newest, not whole (and equal above)"
is "$(fleet | jq -r '[.[] | select(.alarms > 0) | .name] | join(",")')" "db-03,web-03" \
  "the alarms are db-03's and web-03's, whose hosts hold no other database / one other web server"
is "$(sql -c "SELECT host || ' ' || name || ' ' || key || ' ' || severity FROM vmscope_findings WHERE severity IN ('warning', 'failure') ORDER BY name")" \
  "host-c db-03 sysctl:vm.swappiness warning
host-b web-03 file:/etc/ssh/sshd_config:PermitRootLogin warning" \
  "vmscope_findings has them, with their hosts"
# Each alone: what one host's own pool says about them.
alone_b=$("$VMSCOPE" drift --pool "$work/host-b/pool" --target web-03 --format json 2>/dev/null | jq '.alarms')
alone_c=$("$VMSCOPE" drift --pool "$work/host-c/pool" --target db-03 --format json 2>/dev/null | jq '.alarms')
is "$alone_b:$alone_c" "0:0" "neither is an alarm in its own host's pool: only the fleet view finds them"
alarmed() { grep -q "Notification: severity = $2, host = $1, plugin = vmscope_drift, plugin_instance = $3, type = config_drift" "$work/$1/collectd.log"; }
wait_for 30 alarmed host-b WARNING web-03 && wait_for 30 alarmed host-c WARNING db-03
ok $? "and each is notified by its own host's collectd (config_drift WARNING)"
is "$(cat "$work"/host-*/collectd.log | grep -c 'Notification: .*type = config_drift')" 2 \
  "no other host notifies them, and nothing else is notified"
is "$(grep -l "this host does the fleet's once-only work" "$work"/host-*/collectd.log | wc -l)" 1 \
  "one host holds the fleet store's lock and does the fleet's once-only work"
elected=$(grep -l "this host does the fleet's once-only work" "$work"/host-*/collectd.log | head -n1 | xargs -r dirname | xargs -r basename)
counted=$(for h in "${hosts[@]}"; do compgen -G "$work/$h/csv/$h/vmscope_drift/count-groups-*" >/dev/null && echo "$h"; done)
is "$counted" "$elected" "the fleet's counts (count-groups, count-rollouts) come from that host alone"
is "$(sql -c "SELECT string_agg(version::text, ',' ORDER BY version) FROM vmscope_schema")" 1,2,3,4,5,6,7,8,9,10 "the schema is created once, at version 10"
# The fleet-wide report, from the store, and the same page from the three pools.
"$VMSCOPE" report --html "$work/fleet.html" --store "$url" --password-file "$work/password" --title fleet 2>"$work/report.err"
ok $? "vmscope report --html --store draws the fleet-wide report$(sed 's/^/: /' "$work/report.err" | head -n1)"
"$VMSCOPE" report --html "$work/pools.html" --pool "$work/host-a/pool" --pool "$work/host-b/pool" --pool "$work/host-c/pool" --title fleet 2>/dev/null
is "$(grep -c '<tr' "$work/fleet.html")" "$(grep -c '<tr' "$work/pools.html")" \
  "with the rows of the report over every host's pool (every VM, every finding)"
grep -q 'web-03' "$work/fleet.html" && grep -q 'db-03' "$work/fleet.html" && grep -q 'PermitRootLogin' "$work/fleet.html"
ok $? "naming web-03 and db-03, and web-03's PermitRootLogin"
"$VMSCOPE" report --html "$work/x.html" --store "$url" --password-file "$work/nosuch" 2>"$work/report.err"
is "$?:$(cat "$work/report.err")" "2:vmscope report: --store $work/nosuch: cannot read the fleet store's password: No such file or directory" \
  "a password file that is not there is a usage error that names it"
"$VMSCOPE" fleet drift --store "$work/password" --password-file "$work/password" 2>"$work/drift.err"
is "$?:$(cat "$work/drift.err")" "2:vmscope fleet: \"$work/password\" is not a PostgreSQL URL (postgresql://...) nor a connection string (host=... dbname=...)" \
  "a file given as the store is a usage error"
"$VMSCOPE" fleet migrate --store "postgresql://vmscope@127.0.0.1:1/vmscope" --password-file "$work/password" 2>"$work/drift.err"
[[ $? == 1 && $(cat "$work/drift.err") == *"cannot connect"*"Connection refused"* ]]
ok $? "a store that cannot be reached is a source that failed (1), not a usage error: $(cat "$work/drift.err")"
# A reader creates nothing: a database without the schema (the wrong database in the URL) is
# not an empty fleet, and a schema older than the reader's is not brought up to date by it.
vs_pg_sql -c 'CREATE DATABASE vmscope_empty OWNER vmscope' >/dev/null
empty_url=${url%/vmscope}/vmscope_empty
"$VMSCOPE" fleet drift --store "$empty_url" --password-file "$work/password" >"$work/empty.out" 2>"$work/empty.err"
[[ $? == 1 && ! -s $work/empty.out && $(cat "$work/empty.err") == *"holds no vmscope schema"*"vmscope fleet migrate"* ]]
ok $? "vmscope fleet drift on a database without the schema fails (1) and says who creates it: $(cat "$work/empty.err")"
"$VMSCOPE" report --html "$work/empty.html" --store "$empty_url" --password-file "$work/password" 2>"$work/empty.err"
[[ $? == 1 && ! -e $work/empty.html && $(VS_PG_DB=vmscope_empty vs_pg_sql -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0 ]]
ok $? "and so does vmscope report --store, and neither created a table: $(head -n1 "$work/empty.err")"
VS_PG_DB=vmscope_empty vs_pg_sql -c 'CREATE TABLE vmscope_schema (version integer NOT NULL); ALTER TABLE vmscope_schema OWNER TO vmscope; INSERT INTO vmscope_schema VALUES (1)' >/dev/null
"$VMSCOPE" fleet drift --store "$empty_url" --password-file "$work/password" 2>"$work/empty.err" >/dev/null
[[ $? == 1 && $(cat "$work/empty.err") == *"version 1, older than"*"vmscope fleet migrate"* ]]
ok $? "an older schema is the owner's to migrate: $(cat "$work/empty.err")"
vs_pg_sql -c 'DROP DATABASE vmscope_empty' >/dev/null
is "$(grep -c fleet-secret "$work/report.err" "$work"/host-*/collectd.log | grep -vc ':0$')" 0 "no password in a message or a log"

# contrib/grafana/vmscope-fleet.json (Grafana on the fleet store), without Grafana: every query
# variable's and panel's SQL, variables set and macros expanded (t/lib/grafana_sql.sh), run over
# TCP as a read-only role against the store the three collectd filled; each has its columns and
# rows where this fleet has data. The fleet's own findings (groups, rollouts, unique VMs) are
# none here: their panels run and have their columns, and run again on the findings that
# vmscope drift --fleet (the same vs_fleet_findings_json) finds in a fleet that has each.
. "$VS_SRCDIR/t/lib/grafana_sql.sh"
gdash=$VS_SRCDIR/contrib/grafana/vmscope-fleet.json
jq -e '[.panels[] | select(.type != "row") | (.targets | length == 1) and (.targets[] | .datasource.uid == "${DS_POSTGRES}" and
  (.format == "table" or .format == "time_series") and (.rawSql | length > 0))] | length > 0 and all' "$gdash" >/dev/null &&
  jq -e '[.templating.list[] | select(.type == "query") | .datasource.uid == "${DS_POSTGRES}"] | all' "$gdash" >/dev/null
ok $? "vmscope-fleet.json: every panel and query variable reads the PostgreSQL data source \${DS_POSTGRES} with raw SQL"
# Grafana's role as docs/fleet-store.md makes it: a member of vmscope_reader (SELECT on the
# vmscope_* tables but vmscope_documents), read-only transactions by default.
sql -c "CREATE ROLE vmscope_grafana LOGIN PASSWORD 'grafana-secret' IN ROLE vmscope_reader" \
  -c 'GRANT CONNECT ON DATABASE vmscope TO vmscope_grafana' \
  -c 'ALTER ROLE vmscope_grafana SET default_transaction_read_only = on' >/dev/null
ok $? "a read-only role for Grafana: CONNECT, member of vmscope_reader"
GF_URL=$(vs_pg_url vmscope_grafana vmscope)
GF_PASSWORD=grafana-secret
GF_FROM=$(($(date +%s) - 3600)) GF_TO=$(($(date +%s) + 60)) GF_INTERVAL=1m
! out=$(gf_run 'DELETE FROM vmscope_rankings' 2>&1) && grep -q 'read-only transaction' <<<"$out"
ok $? "the role's transactions are read-only: $(head -n1 <<<"$out")"
! out=$(gf_run 'START TRANSACTION READ WRITE; DELETE FROM vmscope_rankings' 2>&1) &&
  grep -q 'permission denied for table vmscope_rankings' <<<"$out"
ok $? "and a read-write one is refused by its rights: $(head -n1 <<<"$out")"
# The variables as a user would set them: live 5 minutes, every host and VM, every severity.
gvar() { jq -r --arg n "$1" '.templating.list[] | select(.name == $n) | .query' "$gdash"; }
gf_set live '5 minutes'
gf_check 'variable host' "$(gvar host)" host 3
is "$(cut -f1 <<<"$GF_ROWS" | paste -sd' ')" "host-a host-b host-c" "variable host lists the three hosts"
mapfile -t ghosts < <(cut -f1 <<<"$GF_ROWS")
gf_set host "${ghosts[@]}"
gf_check 'variable vm' "$(gvar vm)" name 9
mapfile -t gvms < <(cut -f1 <<<"$GF_ROWS")
gf_set vm "${gvms[@]}"
gf_check 'variable key' "$(gvar key)" key 2
is "$(head -n 2 <<<"$GF_ROWS" | sort | paste -sd' ')" "file:/etc/ssh/sshd_config:PermitRootLogin sysctl:vm.swappiness" \
  "variable key lists the keys alarming on most VMs first"
gf_set key 'file:/etc/ssh/sshd_config:PermitRootLogin'
gf_set severity failure warning info
# Each panel's columns, and the least rows it has in this fleet (0: none here).
declare -A gcols=(
  ['Current findings']='vm host key value majority share score severity kind since waived'
  ['Keys drifting on most VMs']='key alarmed_vms waived_vms vms new_in_range top_score'
  ['Values of ${key} across the fleet']='value vms names'
  ['Findings over time']='time metric value'
  ['Fleet']='vms groups rollouts unique_vms elected_host found_at'
  ['Groups']='key value vms members rest_value rest_vms keys message found_at'
  ['Rollouts']='key value from_value have of_vms share by found_at'
  ['Unique VMs']='vm found_at'
)
declare -A gmin=(['Current findings']=2 ['Keys drifting on most VMs']=2 ['Values of ${key} across the fleet']=2
  ['Findings over time']=1 ['Fleet']=1 ['Groups']=0 ['Rollouts']=0 ['Unique VMs']=0)
declare -A gpanel=()
while IFS=$'\t' read -r title fmt; do
  gpanel[$title]=$(jq -r --arg t "$title" '.panels[] | select(.title == $t) | .targets[0].rawSql' "$gdash")
  if [ -z "${gcols[$title]:-}" ]; then
    ok 1 "panel \"$title\" ($fmt) has an expected shape in this test"
    continue
  fi
  why=
  [ "${gmin[$title]}" = 0 ] && why=", none in this fleet: checked below on one that has them"
  gf_check "panel \"$title\" ($fmt$why)" "${gpanel[$title]}" "${gcols[$title]}" "${gmin[$title]}"
  case $title in
    'Current findings') gfind=$GF_ROWS ;;
    'Keys drifting on most VMs') gkeys=$GF_ROWS ;;
    'Values of ${key} across the fleet') gdist=$GF_ROWS ;;
    'Findings over time') gtime=$GF_ROWS ;;
    'Fleet') gfleet=$GF_ROWS ;;
  esac
done < <(jq -r '.panels[] | select(.type != "row") | [.title, .targets[0].format] | @tsv' "$gdash")
is "${#gpanel[@]}" "${#gcols[@]}" "every panel of the dashboard was run (${#gpanel[@]})"
is "$(awk -F'\t' '$8 == "warning" {print $1, $2, $3, $5}' <<<"$gfind" | sort)" \
  "db-03 host-c sysctl:vm.swappiness 1
web-03 host-b file:/etc/ssh/sshd_config:PermitRootLogin <absent>" \
  "panel \"Current findings\" shows the two alarms with VM, host, key and majority"
is "$(head -n 2 <<<"$gkeys" | cut -f1,2 | sort | tr '\t' ' ' | paste -sd,)" \
  "file:/etc/ssh/sshd_config:PermitRootLogin 1,sysctl:vm.swappiness 1" \
  "panel \"Keys drifting on most VMs\" puts the alarmed keys first, one VM each"
is "$(cut -f1,2 <<<"$gdist" | tr '\t' ' ' | paste -sd,)" "<absent> 8,yes 1" \
  "panel \"Values of \${key}\": PermitRootLogin is yes on one VM and absent on the 8 others"
gf_set key 'sysctl:vm.swappiness'
gf_check 'panel "Values of ${key}" with key sysctl:vm.swappiness' "${gpanel['Values of ${key} across the fleet']}" "${gcols['Values of ${key} across the fleet']}" 3
is "$(cut -f1,2 <<<"$GF_ROWS" | tr '\t' ' ' | paste -sd,)" "<absent> 6,1 2,60 1" \
  "and vm.swappiness is 1 on two databases, 60 on db-03, absent on the six web servers"
# A key every VM holds with one value is in each host's baseline and in no row (schema version
# 10): the panel reads it from the baselines.
bkey=$(sql -c "SELECT k FROM vmscope_baselines b, jsonb_object_keys(b.settings) AS k GROUP BY k HAVING count(DISTINCT b.host) = 3 AND count(DISTINCT b.settings -> k) = 1 AND NOT EXISTS (SELECT FROM vmscope_vms v WHERE v.doc -> 'settings_patch' ? k) ORDER BY k LIMIT 1")
bval=$(sql -c "SELECT settings ->> \$\$$bkey\$\$ FROM vmscope_baselines LIMIT 1")
gf_set key "$bkey"
gf_check "panel \"Values of \${key}\" with key $bkey, held by every VM" "${gpanel['Values of ${key} across the fleet']}" "${gcols['Values of ${key} across the fleet']}" 1
is "$(cut -f1,2 <<<"$GF_ROWS" | tr '\t' ' ' | paste -sd,)" "$bval 9" \
  "and a key all nine VMs share is read from their hosts' baselines: $bkey"
gall=$(sql -c 'SELECT count(*) FROM vmscope_findings')
is "$(awk -F'\t' '{n += $3} END {print n}' <<<"$gtime")" "$gall" "panel \"Findings over time\" counts all $gall findings in the range"
is "$(cut -f1-4 <<<"$gfleet" | tr '\t' ' ')" "9 0 0 0" "panel \"Fleet\": 9 VMs; no groups, rollouts or unique VMs in this fleet"
# A fleet that has each: a tweak on two of eight web servers, a newer openssh on three, and a
# database alone among them; vmscope drift --fleet finds them (vs_fleet_findings_json, what the
# elected host stores), and the panels read them in place of vmscope_fleet_findings.
for i in 1 2 3 4 5 6 7 8; do
  cp -a "$work/trees/base" "$work/gtrees/f-0$i" 2>/dev/null || { mkdir -p "$work/gtrees" && cp -a "$work/trees/base" "$work/gtrees/f-0$i"; }
  mk "$work/gtrees/f-0$i/etc/hostname" "f-0$i\n"
  mk "$work/gtrees/f-0$i/etc/sysctl.conf" 'vm.swappiness = 60\n'
done
for i in 2 5; do mk "$work/gtrees/f-0$i/etc/sysctl.conf" 'vm.swappiness = 10\n'; done
for i in 3 6 8; do
  mk "$work/gtrees/f-0$i/var/lib/dpkg/status" "$(sed 's/1:9.2p1-2+deb12u3/1:9.2p1-2+deb12u5/' "$work/trees/base/var/lib/dpkg/status")\n"
done
cp -a "$work/trees/db-01" "$work/gtrees/db-01"
gjson=$("$VMSCOPE" drift --fleet --compact "$work"/gtrees/* 2>/dev/null)
is "$(jq -c '[.vms, (.groups | length), (.rollouts | length), .unique]' <<<"$gjson")" '[9,1,1,["db-01"]]' \
  "vmscope drift --fleet finds one group, one rollout and one unique VM in that fleet"
gff="(SELECT 'host-a'::text AS host, now() AS found_at, '${gjson//\'/\'\'}'::jsonb AS findings)"
for title in Fleet Groups Rollouts 'Unique VMs'; do
  gf_check "panel \"$title\" on those findings" "${gpanel[$title]//FROM vmscope_fleet_findings ff/FROM $gff ff}" "${gcols[$title]}" 1
  case $title in
    Fleet) is "$(cut -f1-4 <<<"$GF_ROWS" | tr '\t' ' ')" "9 1 1 1" "panel \"Fleet\" counts them" ;;
    Groups) is "$(cut -f1-7 <<<"$GF_ROWS" | tr '\t' '|')" "sysctl:vm.swappiness|10|2|f-02, f-05|60|6|1" \
      "panel \"Groups\": key, value, size, members, the rest's value and count, keys" ;;
    Rollouts) is "$(cut -f1-7 <<<"$GF_ROWS" | tr '\t' '|')" "pkg:openssh-server|1:9.2p1-2+deb12u5|1:9.2p1-2+deb12u3|3|9|0.3333333333333333|version" \
      "panel \"Rollouts\": key, newest value, from, have, of, share, by" ;;
    'Unique VMs') is "$(cut -f1 <<<"$GF_ROWS")" db-01 "panel \"Unique VMs\" names the database" ;;
  esac
done
# --- upgrading a store that holds version 2 rows (docs/fleet-store.md: migrate, then upgrade the
# hosts). The hosts stop, and the store is taken back to what version 2 hosts leave: each VM's
# previous snapshot whole in vmscope_vms.previous (rebuilt from its version 3 patch by jq, RFC
# 7386 written a second time, apart from vs_json_merge_apply) and no previous_patch column.
# vmscope fleet migrate brings that store to version 10 with its rows, and what is read from it
# is what version 2 rows hold.
for p in "${hostpids[@]}"; do kill "$p" 2>/dev/null; done
wait "${hostpids[@]}" 2>/dev/null
"$VMSCOPE" report --html "$work/v3.html" --store "$url" --password-file "$work/password" --title fleet 2>/dev/null
ok $? "the hosts are stopped, and the fleet-wide report is drawn from the version 3 store"
# The store's password and CA files are inputs: no output replaces them, --force or not.
cp -p "$work/password" "$work/password.keep"
"$VMSCOPE" report --html "$work/password" --force --store "$url" --password-file "$work/password" 2>"$work/pw-out.err"
is "$?:$(cmp -s "$work/password" "$work/password.keep" && echo kept)" "2:kept" \
  "report --html naming the password file is refused, even with --force: $(head -n1 "$work/pw-out.err")"
"$VMSCOPE" report --html "$work/password.keep" --force --store "$url" --password-file "$work/password" --ca-file "$work/password.keep" 2>"$work/pw-out.err"
is "$?:$(cmp -s "$work/password" "$work/password.keep" && echo kept)" "2:kept" \
  "and so is one naming the CA file: $(head -n1 "$work/pw-out.err")"
rm -f "$work/password.keep"
# The context is written from what changed only over the context the writer wrote last
# (schema version 6): over another (its epoch not the one given), the call writes nothing and
# says so with NULL, and the host writes the whole. Called as the owner, in a session holding
# the fleet's lock ("vmscope" in ASCII), now that no host does.
as_owner() { # SQL...: one session, each statement's output
  local a=() q
  for q in "$@"; do a+=(-c "$q"); done
  PGPASSWORD=fleet-secret psql -qAtX -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$VS_PG_PORT user=vmscope dbname=vmscope" "${a[@]}" 2>&1
}
ctx_host=$(sql -c "SELECT host FROM vmscope_context WHERE part = 'fleet'")
epoch_us="(extract(epoch FROM made_at) * 1000000)::bigint" # the call's epoch: microseconds
ctx_epoch=$(sql -c "SELECT $epoch_us FROM vmscope_context WHERE part = 'fleet'")
ctx_state() { sql -c "SELECT $epoch_us || ' ' || (SELECT count(*) FROM vmscope_vm_context) FROM vmscope_context WHERE part = 'fleet'"; }
lock="SELECT pg_advisory_lock(x'766d73636f7065'::bigint)"
gone=$(uuid web-01)
out=$(as_owner "$lock" "SELECT coalesce(vmscope_publish_context('$ctx_host', $ctx_epoch - 1, '{}', '{}', '{}', '[\"$gone\"]')::text, 'none')")
is "$(tail -n1 <<<"$out") $(ctx_state)" "none $ctx_epoch 9" \
  "a context written over another than the writer's last is not written: NULL, and the store's is as it was"
out=$(as_owner "$lock" "SELECT vmscope_publish_context('$ctx_host', $ctx_epoch, '{}', '{}', '{}', '[\"$gone\"]')")
new_epoch=$(tail -n1 <<<"$out")
is "$([ "$new_epoch" -gt "$ctx_epoch" ] 2>/dev/null && echo newer) $(ctx_state)" "newer $new_epoch 8" \
  "over its own, it is: a new epoch, the one the store holds, and the VM part said gone is removed"
out=$(as_owner "$lock" "SELECT vmscope_publish_context('$ctx_host', $new_epoch, '{}', '{}', '{}', '[]') > $new_epoch")
is "$(tail -n1 <<<"$out")" t "and the epoch it returned is the base of the next call"
mp='def mp($p): if ($p | type) == "object" then reduce ($p | keys_unsorted[]) as $k
  (if type == "object" then . else {} end; if $p[$k] == null then del(.[$k]) else .[$k] |= mp($p[$k]) end)
  else $p end;'
sql -c 'SELECT uuid FROM vmscope_vms WHERE previous_patch IS NOT NULL ORDER BY uuid' >"$work/v3.uuids"
{
  echo 'BEGIN;'
  while read -r u; do
    # the patch is onto the newest document: the row's, with its retaken_at for its time (a
    # patch from a snapshot taken in the same second as the one before holds no time at all)
    sql -c "SELECT jsonb_set(vmscope_newest(v.doc, v.retaken_at) - 'settings_patch', '{settings}', vmscope_settings(v.doc, b.settings)) FROM vmscope_vms v
      LEFT JOIN vmscope_baselines b ON b.serial = v.baseline WHERE v.uuid = '$u'" >"$work/row.doc" </dev/null
    sql -c "SELECT previous_patch FROM vmscope_vms WHERE uuid = '$u'" >"$work/row.patch" </dev/null
    prev=$(jq -cn --slurpfile d "$work/row.doc" --slurpfile p "$work/row.patch" "$mp"' $d[0] | mp($p[0])') || prev=
    echo "UPDATE vmscope_vms SET previous = \$vsq\$${prev:-invalid}\$vsq\$::jsonb, previous_patch = NULL WHERE uuid = '$u';"
  done <"$work/v3.uuids"
  # The version 3 vmscope_publish_vms stays: the migration to version 3 replaces it. Version 4's
  # context (as version 6 writes it) and version 5's fingerprints and indexes go too,
  # version 7's findings view becomes version 2's table again, with the times it shows, and
  # version 9's retaken_at goes back into its document, and version 10's baselines into the
  # settings they are patches of (by vmscope_settings).
  echo "UPDATE vmscope_vms v SET doc = jsonb_set(v.doc - 'settings_patch', '{settings}', vmscope_settings(v.doc, b.settings)), baseline = NULL FROM vmscope_baselines b WHERE b.serial = v.baseline;"
  echo 'DROP FUNCTION vmscope_publish_vms(text, integer, jsonb, jsonb, jsonb, jsonb), vmscope_settings(jsonb, jsonb);'
  echo 'ALTER TABLE vmscope_vms DROP COLUMN content_sha256, DROP COLUMN baseline; DROP TABLE vmscope_baselines;'
  echo 'CREATE INDEX vmscope_vms_host ON vmscope_vms (host);' 
  echo 'CREATE TABLE v2_findings AS SELECT * FROM vmscope_findings;'
  echo 'DROP VIEW vmscope_findings; DROP FUNCTION vmscope_publish_findings(text, jsonb, jsonb);'
  echo 'ALTER TABLE vmscope_rankings DROP COLUMN sha256;'
  echo 'DROP FUNCTION vmscope_drift_ok(jsonb);'
  echo 'ALTER TABLE vmscope_rankings DROP COLUMN since;'
  echo 'ALTER TABLE v2_findings RENAME TO vmscope_findings;'
  echo 'ALTER TABLE vmscope_findings OWNER TO vmscope;'
  echo 'ALTER TABLE vmscope_findings ADD PRIMARY KEY (uuid, key);'
  echo 'UPDATE vmscope_findings SET since = since - interval '"'1 day'"';'
  # and a ranking an older host wrote that the view could not show, which version 7 removes
  echo "INSERT INTO vmscope_rankings (uuid, host, name, ranked_at, samples, alarms, unique_vm, drift) VALUES ('bad-1', 'host-a', 'bad-1', now(), 1, 0, false, '{\"findings\": [{\"key\": \"k\", \"value\": \"v\", \"n\": \"many\"}]}');"
  echo 'DROP FUNCTION vmscope_publish_context(text, bigint, jsonb, jsonb, jsonb, jsonb), vmscope_check_elected(text);'
  echo 'DROP TABLE vmscope_context, vmscope_vm_context;'
  echo "UPDATE vmscope_vms SET doc = jsonb_set(doc, '{taken_at}', to_jsonb(retaken_at)) WHERE retaken_at IS NOT NULL;"
  echo 'ALTER TABLE vmscope_vms DROP COLUMN retaken_at, RESET (fillfactor);'
  echo 'ALTER TABLE vmscope_rankings RESET (toast_tuple_target, fillfactor);'
  echo 'DROP FUNCTION vmscope_newest(jsonb, text);'
  echo 'DROP INDEX vmscope_rankings_host;'
  echo 'ALTER TABLE vmscope_vms DROP COLUMN previous_patch; DELETE FROM vmscope_schema WHERE version >= 3;'
  echo 'COMMIT;'
} >"$work/to-v2.sql"
findings_v7=$(sql -c "SELECT string_agg(uuid || key || value || score || severity, ',' ORDER BY uuid, key) FROM vmscope_findings")
[ "$(wc -l <"$work/v3.uuids")" = 9 ] && sql -f "$work/to-v2.sql" >/dev/null
ok $? "the store is taken back to version 2: nine rows with whole previous snapshots"
"$VMSCOPE" fleet migrate --store "$url" --password-file "$work/password" >"$work/migrate.out" 2>&1
is "$?:$(cat "$work/migrate.out")" "0:the fleet store's schema is at version 10" "vmscope fleet migrate brings it to version 10"
is "$(sql -c "SELECT string_agg(version::text, ',' ORDER BY version) || ' ' || (SELECT count(previous) || ' ' || count(previous_patch) FROM vmscope_vms) FROM vmscope_schema")" \
  "1,2,3,4,5,6,7,8,9,10 9 0" "with its nine rows, their previous snapshots whole as version 2 wrote them"
[ -n "$findings_v7" ] && [ "$(sql -c "SELECT string_agg(uuid || key || value || score || severity, ',' ORDER BY uuid, key) FROM vmscope_findings")" = "$findings_v7" ]
ok $? "the findings (version 7: a view of the rankings) are those the table held"
is "$(sql -c "SELECT count(*) FROM vmscope_rankings WHERE uuid = 'bad-1'")" 0 \
  "a ranking the view could not show (written before version 7) is removed, and the view reads"
is "$(sql -c "SELECT count(*) FILTER (WHERE since < ranked_at - interval '12 hours') || ' of ' || count(*) FROM vmscope_findings")" \
  "$(sql -c 'SELECT count(*) || $$ of $$ || count(*) FROM vmscope_findings')" "and so are their times (since), carried over"
"$VMSCOPE" report --html "$work/migrated.html" --store "$url" --password-file "$work/password" --title fleet 2>"$work/migrated.err"
ok $? "the fleet-wide report is drawn from the migrated store$(sed 's/^/: /' "$work/migrated.err" | head -n1)"
diff "$work/v3.html" "$work/migrated.html" >"$work/migrated.diff"
ok $? "and is the report drawn before: the whole previous snapshots are read as their patches were"
sed 's/^/# /' "$work/migrated.diff" | head -n 10
# What a whole previous snapshot says shows: web-01's said PermitRootLogin no.
sql -c "UPDATE vmscope_vms SET previous = jsonb_set(previous, '{settings,file:/etc/ssh/sshd_config:PermitRootLogin}', '\"no\"') WHERE name = 'web-01'" >/dev/null
"$VMSCOPE" report --html "$work/changed.html" --store "$url" --password-file "$work/password" --title fleet 2>/dev/null
grep -q '<h4>Since [0-9TZ:-]*: 1 change</h4>' "$work/changed.html" &&
  grep -q '<td>file:/etc/ssh/sshd_config:PermitRootLogin</td><td>no</td>' "$work/changed.html"
ok $? "a change in a whole previous snapshot is web-01's change since it:$(grep -o '<td>file:/etc/ssh/sshd_config:PermitRootLogin</td><td>[^<]*</td><td>[^<]*</td>' "$work/changed.html" | head -n1 | sed 's/<[^>]*>/ /g' | tr -s ' ')"
# A finding's "since" is kept while its value stays (version 7 keeps it in the ranking's
# since; the view shows it), and the publish refuses a finding the view could not show. As the
# owner, for host-t, a host of its own that ranks one VM no host published.
finding() { # KEY VALUE [SCORE]: a finding as vs_drift_to_json writes it
  printf '{"rank": 1, "key": "%s", "value": "%s", "majority": {"value": "x", "count": 3, "share": 0.75}, "n": 4, "p": 0.1, "score": %s, "kind": "alone", "severity": "warning", "waived": false}' "$1" "$2" "${3:-0.5}"
}
ranking() { # FINDING...: host-t's one ranking, of VM t-1
  local IFS=,
  printf '[{"uuid": "t-1", "name": "t-1", "samples": 4, "alarms": 1, "unique_vm": false, "drift": {"findings": [%s]}}]' "$*"
}
tsince() { sql -c "SELECT string_agg(key || '=' || value || '@' || extract(epoch FROM since), ' ' ORDER BY key) FROM vmscope_findings WHERE uuid = 't-1'"; }
out=$(as_owner "SELECT vmscope_publish_vms('host-t', 0, '[]', NULL)" \
  "SELECT vmscope_publish_findings('host-t', '$(ranking "$(finding k1 a)" "$(finding k2 b)")')")
first=$(tsince)
out=$(as_owner "SELECT vmscope_publish_findings('host-t', '$(ranking "$(finding k1 a 0.9)" "$(finding k2 c)")')")
second=$(tsince)
t1=${first%% *} t1=${t1#*@}
[[ $first == "k1=a@$t1 k2=b@$t1" && ${second%% *} == "k1=a@$t1" && $second == *" k2=c@"* && ${second##*@} != "$t1" ]]
ok $? "a finding keeps its since while its value stays, and a new value starts anew: $first -> $second"
is "$(sql -c "SELECT host || ' ' || name || ' ' || majority || ' ' || majority_count || ' ' || peers || ' ' || share || ' ' || score || ' ' || severity || ' ' || kind || ' ' || rank || ' ' || waived FROM vmscope_findings WHERE uuid = 't-1' AND key = 'k1'")" \
  "host-t t-1 x 3 4 0.75 0.9 warning alone 1 false" "the view shows each of a finding's columns"
out=$(as_owner "SELECT vmscope_publish_findings('host-t', '$(ranking "$(finding k1 a)" '{"key": "k3", "value": "v"}')')")
[[ $out == *"whose findings are not an array of objects with key, value"* && $(tsince) == "$second" ]]
ok $? "a finding the view could not show is refused, and nothing is written: $out"
out=$(as_owner "SELECT vmscope_publish_findings('host-t', '$(ranking "$(finding k1 a)" '{"rank": 2, "key": "k4", "value": "v", "majority": {"value": "x", "count": "3.5", "share": 0.75}, "n": 4, "p": 0.1, "score": 0.5, "kind": "alone", "severity": "warning", "waived": false}')')")
[[ $out == *"whose findings are not an array of objects with key, value"* && $(tsince) == "$second" ]]
ok $? "so is one whose column does not cast (a count of 3.5): $out"
out=$(as_owner "SELECT vmscope_publish_findings('host-t', '$(ranking "$(finding k1 a)" "$(finding k1 b)")')")
[[ $out == *"one per key"* && $(tsince) == "$second" ]]
ok $? "so is a key's finding twice: $out"
out=$(as_owner "SELECT vmscope_publish_findings('host-t', '[{\"uuid\": \"t-1\", \"name\": \"t-1\", \"samples\": 1, \"alarms\": 0, \"unique_vm\": false, \"drift\": {}}]')")
[[ $out == *"a ranking without a uuid, or whose findings are not an array"* ]]
ok $? "and a ranking without its findings: $out"
# A host sends again only the VMs whose documents changed (version 7), and names the others
# with the fingerprints of the rows it wrote; a row not as named (changed or gone, whoever did
# it) makes the call write nothing and return NULL, and the host then sends every VM whole.
trow='{"uuid": "t-2", "name": "t-2", "taken_at": "2026-12-01T10:00:00Z", "doc": {"id": "t-2"}, "previous": null, "previous_patch": null}'
out=$(as_owner "SELECT vmscope_publish_vms('host-t', 1, '[$trow]', NULL)")
tsha=$(sql -c "SELECT content_sha256 FROM vmscope_vms WHERE uuid = 't-2'")
is "$out" "{\"t-2\": \"$tsha\"}" "a publish returns the fingerprints of the rows it wrote"
tkept() { # SHA: what the call returns, then (read after it) whether the row is there and the host's seen
  as_owner "SELECT coalesce(vmscope_publish_vms('host-t', 1, '[]', NULL, '[{\"uuid\": \"t-2\", \"sha\": \"$1\"}]')::text, 'null')" \
    "SELECT (SELECT count(*) FROM vmscope_vms WHERE uuid = 't-2' AND host = 'host-t') || ' ' || (SELECT seen FROM vmscope_hosts WHERE host = 'host-t')" | paste -sd' '
}
kept1=$(tkept "$tsha")
[[ $kept1 == "{} 1 "* ]]
ok $? "a row named with its fingerprint is kept, not sent again: $kept1"
kept2=$(tkept "0$tsha")
is "$kept2" "null ${kept1#\{\} }" "named with another fingerprint: nothing is written (NULL; the host's seen unchanged)"
sql -c "UPDATE vmscope_vms SET doc = '{\"id\": \"t-2\", \"x\": 1}' WHERE uuid = 't-2'" >/dev/null
is "$(tkept "$tsha" | cut -d' ' -f1,2)" "null 1" "nor when the row was changed by another since"
sql -c "DELETE FROM vmscope_vms WHERE uuid = 't-2'" >/dev/null
is "$(tkept "$tsha" | cut -d' ' -f1,2)" "null 0" "nor when it is gone"
# A publish names the baseline its rows are patches onto, and sends it unless it knows the store
# holds it (schema version 10): named and not there, nothing is written and NULL says so (the
# host then sends every VM, and the baseline). A baseline no row of its host refers to goes.
b1=$(printf 'b%.0s' {1..32}) b2=$(printf 'c%.0s' {1..32})
brow() { echo "{\"uuid\": \"t-2\", \"name\": \"t-2\", \"taken_at\": \"2026-12-01T10:00:00Z\", \"doc\": {\"id\": \"t-2\", \"settings_patch\": {\"k\": \"$1\"}}, \"previous\": null, \"previous_patch\": null}"; }
trowstate() { sql -c "SELECT baseline || ' ' || content_sha256 FROM vmscope_vms WHERE uuid = 't-2'"; }
bstate() { sql -c "SELECT coalesce(string_agg(id, ',' ORDER BY id), 'none') FROM vmscope_baselines WHERE host = 'host-t'"; }
out=$(as_owner "SELECT coalesce(vmscope_publish_vms('host-t', 1, '[$(brow v)]', NULL, '[]', '{\"id\": \"$b1\"}')::text, 'null')")
is "$out $(bstate)" "null none" "a baseline named that the store does not hold: nothing is written, and NULL says so"
out=$(as_owner "SELECT vmscope_publish_vms('host-t', 1, '[$(brow v)]', NULL, '[]', '{\"id\": \"$b1\", \"settings\": {\"k\": \"base\", \"l\": \"m\"}}') IS NOT NULL" \
  "SELECT vmscope_settings(v.doc, b.settings)::text FROM vmscope_vms v JOIN vmscope_baselines b ON b.serial = v.baseline WHERE v.uuid = 't-2'")
is "$(paste -sd' ' <<<"$out") $(bstate)" "t {\"k\": \"v\", \"l\": \"m\"} $b1" \
  "sent with it, the baseline is stored and the row refers to it (vmscope_settings: the row's settings whole)"
on_b1=$(trowstate)
out=$(as_owner "SELECT vmscope_publish_vms('host-t', 1, '[$(brow w)]', NULL, '[]', '{\"id\": \"$b2\", \"settings\": {}}') IS NOT NULL")
is "$out $(bstate)" "t $b2" "a baseline that no row of its host refers to any more goes"
# The same id again with other settings (a host may say what it likes of its own baseline):
# the row refers to it by another serial, and its fingerprint changes, so a reader that kept
# the row and the baseline read before reads both again.
out=$(as_owner "SELECT vmscope_publish_vms('host-t', 1, '[$(brow v)]', NULL, '[]', '{\"id\": \"$b1\", \"settings\": {\"k\": \"base\", \"l\": \"n\"}}') IS NOT NULL")
on_b1_again=$(trowstate)
[[ $out == t && ${on_b1_again%% *} != "${on_b1%% *}" && ${on_b1_again#* } != "${on_b1#* }" ]]
ok $? "a baseline that went and came back under its id with other settings is another serial, and the row's fingerprint changes: $on_b1 -> $on_b1_again"
out=$(as_owner "SELECT vmscope_publish_vms('host-t', 0, '[]', NULL, '[]', '{\"id\": \"$b2\", \"settings\": {}}') IS NOT NULL")
is "$out $(bstate)" "t $b2" "and one whose last row goes in the same publish goes in it too"
out=$(as_owner "SELECT vmscope_publish_vms('host-t', 1, '[$(brow w)]', NULL, '[]', '{\"id\": \"not hex\", \"settings\": {}}')")
[[ $out == *"violates check constraint"* && $(bstate) == "$b2" ]]
ok $? "a baseline id that is not 32 hex digits is refused: $out"
sql -c "DELETE FROM vmscope_vms WHERE uuid = 't-2'; DELETE FROM vmscope_baselines WHERE host = 'host-t'" >/dev/null
as_owner "SELECT vmscope_publish_findings('host-t', '[]')" >/dev/null
# One host's store client from one publish to the next (t/lib/store_publish, the code the plugin
# runs): it sends again only the VMs whose documents changed, and of a VM snapshotted again
# that found nothing changed (every VM, every hour, by default) only the new time; when a row
# it kept is not as it wrote it (changed by another, or gone), it sends every VM whole. A name
# changed in the store shows which rows were sent whole: the fingerprint is of the documents
# and the host, not the name.
coproc PUB { "$VS_BUILDDIR/t/lib/store_publish" "$url" "$work/password" host-p 2>&1; }
pub_pid=$PUB_PID pub_in=${PUB[1]} # bash unsets PUB and PUB_PID once the coprocess is reaped
pids+=("$pub_pid")
pub() { local line; echo "$1" >&"${PUB[1]}" && read -r -t 30 line <&"${PUB[0]}" && echo "$line"; }
pub_names() { sql -c "SELECT string_agg(name, ',' ORDER BY uuid) FROM vmscope_vms WHERE host = 'host-p'"; }
is "$(pub publish) $(pub_names)" "ok p-1,p-2,p-3" "a host publishes its three VMs"
sql -c "UPDATE vmscope_vms SET name = 'renamed' WHERE host = 'host-p'" >/dev/null
is "$(pub publish) $(pub_names)" "ok renamed,renamed,renamed" "unchanged, none is sent again (the names changed in the store stay)"
pub "change p-2" >/dev/null
is "$(pub publish) $(pub_names)" "ok renamed,p-2,renamed" "a VM whose document changed is sent, and only it"
p1() { sql -c "SELECT taken_at || ' ' || coalesce(retaken_at, 'none') || ' ' || (doc ->> 'taken_at') || ' ' || previous_patch::text || ' ' || (previous IS NULL) FROM vmscope_vms WHERE uuid = 'p-1'"; }
pub "retake p-1" >/dev/null
is "$(pub publish) $(pub_names) $(p1)" 'ok renamed,p-2,renamed 2026-11-30 00:54:20+00 2026-11-30T00:54:20Z 2026-11-30T00:53:20Z {"taken_at": "2026-11-30T00:53:20Z"} true' \
  "a VM snapshotted again unchanged: its row takes the new time (retaken_at: its document is not written again), the previous snapshot as a patch, and nothing else is sent"
fleet=$(pub read) # the coprocess is not reached from a pipeline
is "$(tr ' ' '\n' <<<"$fleet" | grep '^p-1:')" "p-1:2026-11-30T00:54:20Z<2026-11-30T00:53:20Z" \
  "and it is read as its new snapshot, with the one before as its previous"
sql -c "UPDATE vmscope_vms SET retaken_at = repeat('9', 65) WHERE uuid = 'p-1'" >/dev/null
fleet=$(pub read)
is "$(grep -o '[0-9]* refused' <<<"$fleet")" "1 refused" "a retaken_at written by another that is too long to be a time refuses the row"
sql -c "UPDATE vmscope_vms SET retaken_at = E'2026-11-30T00:54:20Z\\x01' WHERE uuid = 'p-1'" >/dev/null
fleet=$(pub read)
is "$(grep -o '[0-9]* refused' <<<"$fleet")" "1 refused" "and so does one holding a control character"
sql -c "UPDATE vmscope_vms SET retaken_at = '2026-11-30T00:54:20Z' WHERE uuid = 'p-1'" >/dev/null
is "$(pub publish) $(pub_names)" "ok renamed,p-2,renamed" "and the round after it sends nothing again"
# What a host's VMs share is stored once (schema version 10): its baseline, the value more
# than half of them hold of each key, and each row's settings a merge patch onto it.
is "$(sql -c "SELECT (SELECT count(*) FROM vmscope_baselines WHERE host = 'host-p') || ' ' || (b.settings ->> 'version') || ' ' || string_agg(v.uuid || '=' || (v.doc -> 'settings_patch')::text, ' ' ORDER BY v.uuid) FROM vmscope_vms v JOIN vmscope_baselines b ON b.serial = v.baseline WHERE v.host = 'host-p' GROUP BY b.settings")" \
  '1 0 p-1={} p-2={"version": "1"} p-3={}' \
  "a host's baseline holds what its VMs share, and each row only what differs from it"
# Rows whose baseline, or whose patch onto it, is not what a reader can use are refused, and
# the reader says which and why; read by a client that has not read that baseline before (one
# that has keeps it: a baseline is named by its content, and only its host writes it).
fresh_read() { printf 'read\n' | "$VS_BUILDDIR/t/lib/store_publish" "$url" "$work/password" host-r 2>&1; }
sql -c "UPDATE vmscope_baselines SET settings = jsonb_set(settings, '{version}', '0') WHERE host = 'host-p'" >/dev/null
is "$(fresh_read | grep -o '[0-9]* refused')" "3 refused" \
  "a baseline holding a value that is not text is refused, and so is every row that refers to it"
sql -c "UPDATE vmscope_baselines SET settings = jsonb_set(settings, '{version}', '\"0\"') WHERE host = 'host-p'" >/dev/null
sql -c "UPDATE vmscope_vms SET doc = jsonb_set(doc, '{settings_patch}', '[]') WHERE uuid = 'p-3'" >/dev/null
fleet=$(pub read)
is "$(grep -o '[0-9]* refused' <<<"$fleet")" "1 refused" "a row whose settings patch is not an object is refused"
sql -c "UPDATE vmscope_vms SET doc = jsonb_set(doc, '{settings_patch}', '{}') WHERE uuid = 'p-3'" >/dev/null
is "$(fresh_read | grep -o '[0-9]* refused')" "0 refused" "and, as they were, none is"
p1_sha=$(sql -c "SELECT content_sha256 FROM vmscope_vms WHERE uuid = 'p-1'")
# A fresh client with the same pool sends each VM whole: p-1's row as it was is what it writes.
printf '%s\n' "change p-2" "retake p-1" publish | "$VS_BUILDDIR/t/lib/store_publish" "$url" "$work/password" host-p >"$work/fresh.out" 2>&1
is "$(tail -n1 "$work/fresh.out") $(pub_names) $(sql -c "SELECT content_sha256 FROM vmscope_vms WHERE uuid = 'p-1'")" "ok p-1,p-2,p-3 $p1_sha" \
  "a fresh client with the same pool sends every VM whole, and p-1's row is the same as the new time made it"
pub "forget p-1" >/dev/null
is "$(pub publish) $(pub_names) $(sql -c "SELECT coalesce(previous_patch::text, 'none') FROM vmscope_vms WHERE uuid = 'p-1'")" "ok p-1,p-2,p-3 none" \
  "a VM whose previous snapshot left the pool is sent whole (its newest unchanged)"
sql -c "UPDATE vmscope_vms SET doc = jsonb_set(doc, '{settings_patch,version}', '\"tampered\"') WHERE uuid = 'p-3'" >/dev/null
is "$(pub publish) $(pub_names) $(sql -c "SELECT $settings ->> 'version' FROM vmscope_vms WHERE uuid = 'p-3'")" "ok p-1,p-2,p-3 0" \
  "a row changed by another since: every VM is sent whole, and the row is the host's again"
# A document that is not an object is refused (schema version 9); and one another wrote, with a
# retaken_at (which only an object can take), does not stop the VM's host taking its row back.
out=$(as_owner "SELECT vmscope_publish_vms('host-t', 1, '[{\"uuid\": \"t-3\", \"name\": \"t-3\", \"taken_at\": \"2026-12-01T10:00:00Z\", \"doc\": [], \"previous\": null, \"previous_patch\": null}]', NULL)")
[[ $out == *"whose document is not a JSON object"* ]]
ok $? "a publish refuses a document that is not a JSON object: $out"
sql -c "UPDATE vmscope_vms SET doc = '[]', retaken_at = '2026-11-30T00:59:00Z' WHERE uuid = 'p-3'" >/dev/null
is "$(pub publish) $(sql -c "SELECT jsonb_typeof(doc) || ' ' || coalesce(retaken_at, 'none') FROM vmscope_vms WHERE uuid = 'p-3'")" "ok object none" \
  "a row whose document another made an array, with a retaken_at, is the host's again at its next publish"
sql -c "DELETE FROM vmscope_vms WHERE uuid = 'p-1'" >/dev/null
pub "retake p-1" >/dev/null
is "$(pub publish) $(pub_names) $(sql -c "SELECT taken_at FROM vmscope_vms WHERE uuid = 'p-1'")" "ok p-1,p-2,p-3 2026-11-30 00:55:20+00" \
  "and a row gone is written again, whole, a new time or not"
# And of its rankings (schema version 8): one that did not change is not sent again, only
# marked ranked now; when one it kept is not as it wrote it, every ranking is sent whole. A
# since changed in the store shows which were sent whole: the fingerprint does not cover it.
marked() { sql -c "SELECT string_agg(name || ':' || (since ? 'marker')::text, ',' ORDER BY uuid) FROM vmscope_rankings WHERE host = 'host-p'"; }
ranked_at() { sql -c "SELECT ranked_at FROM vmscope_rankings WHERE uuid = 'p-1'"; }
is "$(pub rank) $(sql -c "SELECT count(*) || ' ' || count(sha256) FROM vmscope_rankings WHERE host = 'host-p'")" "ok 3 3" \
  "the host publishes its three rankings, each with its fingerprint"
sql -c "UPDATE vmscope_rankings SET since = since || '{\"marker\": 1}' WHERE host = 'host-p'" >/dev/null
at1=$(ranked_at)
is "$(pub rank) $(marked)" "ok p-1:true,p-2:true,p-3:true" "ranked again unchanged, none is sent again (since changed in the store stays)"
[ "$(sql -c "SELECT '$(ranked_at)'::timestamptz > '$at1'::timestamptz")" = t ]
ok $? "and each is marked ranked now"
# A fresh client (a host restarted) knows no fingerprint and sends every ranking: each that its
# row holds already is kept as if named (schema version 9), not written again (since changed in
# the store stays), and marked ranked now.
at2=$(ranked_at)
printf '%s\n' "change p-2" "retake p-1" "forget p-1" "retake p-1" rank | "$VS_BUILDDIR/t/lib/store_publish" "$url" "$work/password" host-p >"$work/fresh-rank.out" 2>&1
is "$(tail -n1 "$work/fresh-rank.out") $(marked)" "ok p-1:true,p-2:true,p-3:true" \
  "a fresh client sends every ranking, and those the rows hold already are not written again"
[ "$(sql -c "SELECT '$(ranked_at)'::timestamptz > '$at2'::timestamptz")" = t ]
ok $? "and each is marked ranked now"
sql -c "UPDATE vmscope_rankings SET ranked_at = now() + interval '1 hour' WHERE host = 'host-p'" >/dev/null
is "$(pub rank) $(sql -c "SELECT count(*) FROM vmscope_rankings WHERE host = 'host-p' AND ranked_at > now()")" "ok 0" \
  "a ranking marked later than now (the server's clock went back) is marked ranked now"
pub "change p-2" >/dev/null
pub publish >/dev/null
is "$(pub rank) $(marked)" "ok p-1:true,p-2:false,p-3:true" "a ranking that changed (p-2's value, the minority, changed) is sent, and only it"
sql -c "UPDATE vmscope_rankings SET alarms = alarms + 7 WHERE uuid = 'p-3'" >/dev/null
is "$(pub rank) $(marked) $(sql -c "SELECT alarms FROM vmscope_rankings WHERE uuid = 'p-3'")" "ok p-1:true,p-2:false,p-3:false 0" \
  "a ranking changed by another since: every ranking is sent whole, the row is the host's again, and one its row holds already is not written again (p-2's was, above)"
sql -c "DELETE FROM vmscope_rankings WHERE uuid = 'p-1'" >/dev/null
is "$(pub rank) $(sql -c "SELECT count(*) FROM vmscope_rankings WHERE host = 'host-p'")" "ok 3" "and a ranking gone is written again"
p3_at=$(sql -c "SELECT ranked_at FROM vmscope_rankings WHERE uuid = 'p-3'")
p3_base=$(sql -c "SELECT baseline FROM vmscope_vms WHERE uuid = 'p-3'")
sql -c "UPDATE vmscope_vms SET host = 'host-t', baseline = NULL WHERE uuid = 'p-3'" >/dev/null # it migrated
out=$(pub rank)
[[ $out == *"host host-p ranks a VM another host published since"* && $(sql -c "SELECT ranked_at FROM vmscope_rankings WHERE uuid = 'p-3'") == "$p3_at" ]]
ok $? "a ranking kept of a VM another host published since is refused as one sent is, and not marked ranked: $out"
sql -c "UPDATE vmscope_vms SET host = 'host-p', baseline = '$p3_base' WHERE uuid = 'p-3'" >/dev/null
eval "exec ${pub_in}>&-"
wait "$pub_pid"
ok $? "the client exits cleanly"
# A client whose pool is older than the row of its own it wrote before (a clock that went back,
# a DataDir restored) leaves that row as it is, and keeps no fingerprint of it: what it then
# writes is what a fresh client with the same pool writes.
qpub() { printf '%s\n' "$@" | "$VS_BUILDDIR/t/lib/store_publish" "$url" "$work/password" host-q 2>&1 | paste -sd' '; }
q1() { sql -c "SELECT ($settings ->> 'version') || ' ' || coalesce(retaken_at, doc ->> 'taken_at') || ' ' || content_sha256 FROM vmscope_vms WHERE uuid = 'p-1'"; }
sql -c "DELETE FROM vmscope_vms WHERE host = 'host-p'" >/dev/null
qa=$(qpub "change p-1" publish)
newer=$(q1)
qb=$(qpub publish "retake p-1" publish "retake p-1" publish publish)
older=$(q1)
qc=$(qpub "retake p-1" "retake p-1" publish)
is "$qa $qb $qc $(q1)" "ok ok ok ok ok ok ok ok ok ok ok $older" \
  "a client whose pool is older than its row converges to what a fresh client with that pool writes"
[ "${newer%% *}" = 1 ] && [ "${older%% *}" = 0 ]
ok $? "(the newer row held version 1 until the older pool's snapshots caught up with its time: $newer, then $older)"
is "$(sql -c "SELECT count(*) FROM vmscope_rankings WHERE host = 'host-t'")" 0 "host-t's ranking goes when it ranks it no more"
# The fleet's findings, the one large value the elected host writes each refresh (11.5 MB of
# JSON at 10,000 VMs in bench/fleet-scale.sh), are compressed with lz4 where the server has it,
# as Debian's PostgreSQL 15 has (without it, with pglz: a ~100 KB value is compressed either way).
is "$(qpub fleet)" ok "a host that takes the fleet's lock (the collectd hosts are stopped) publishes the fleet's findings"
is "$(sql -c "SELECT pg_column_compression(findings) || ' ' || jsonb_array_length(findings -> 'groups') FROM vmscope_fleet_findings")" "lz4 300" \
  "they are stored compressed with lz4"
done_testing
