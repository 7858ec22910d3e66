#!/usr/bin/env bash
# demo-run.sh BUILDDIR TREE DEMODIR: the main job on a demo fleet of two hosts, with what is
# already built. As root (PostgreSQL runs as its own user).
#
# From TREE (a Debian 12 root file system) it makes one base disk image and ten guests cloned
# from it: eight web servers and two databases (their own user, sysctl tuning, more vCPUs and
# memory). web-02 is misconfigured (root logins, IPv4 forwarding); web-05 writes sshd's
# documented default out, which is no drift. Each guest's disk is a thin qcow2 overlay on the
# base holding only the blocks its edits changed (made by `vmscope patchset make`; the edits go
# into a raw copy of the base with debugfs, nothing is mounted).
#
# Two hosts share the guests: host-a runs web-01 and web-03..web-08, host-b runs web-02, db-01
# and db-02. Each is a real collectd (its own Hostname, libvirt test-driver node and DataDir)
# with vmscope_snapshot, vmscope_drift and vmscope_action. Both hosts' vmscope_drift publish
# into one fleet store, a private PostgreSQL 15 started here in DEMODIR/pg (t/lib/postgres.sh)
# and stopped by its pid at the end, also on a failure; its password is in
# DEMODIR/fleet-store.pw only. host-a starts first and takes the store's lock (the fleet's
# once-only work); host-b starts once host-a's guests are in the store, so that none of its
# rankings has a part of the fleet only. (host-a ranks its seven alone for those seconds: six
# identical web servers and web-05, whose one written-out default then sets it apart as
# anomalous, which host-b's guests clear.) Between host-a's first and second snapshot web-04's
# guest is edited (its disk replaced by one with the edits). web-02 is the finding only the
# fleet view has: host-b holds no other web server, so its own pool gives web-02 no close
# peers and nothing alarms, while against the fleet's eight web servers its root logins stand
# out, and host-b's collectd notifies them.
# Then it prints the notifications of both hosts (the findings, each with the host that sent
# it), what host-b alone says about web-02 beside what the fleet says, the fleet's findings from
# the store, the roles, and writes the HTML report from the store. scripts/demo.sh installs and
# builds first; t/integration/demo.sh runs this and checks. Exit status 3: PostgreSQL cannot
# start (VS_PG_WHY's reason on stderr).
set -euo pipefail
builddir=$(cd "$1" && pwd) tree=$2 demo=$3
top=$(cd "$(dirname "$0")/.." && pwd)
vmscope=$builddir/vmscope
interval=${VS_DEMO_INTERVAL:-6}
VS_BUILDDIR=$builddir
. "$top/t/lib/collectd.sh"
. "$top/t/lib/postgres.sh"
VMSCOPE=$vmscope
. "$top/scripts/guest-images.sh"

hosts="host-a host-b"
declare -A on=([host-a]="web-01 web-03 web-04 web-05 web-06 web-07 web-08" [host-b]="web-02 db-01 db-02")
rm -rf "$demo/images" "$demo/edits" "$demo/dest" "$demo/pg" "$demo/host-a" "$demo/host-b" \
  "$demo/pool" "$demo/node.xml" "$demo/collectd.conf" "$demo/collectd.log" "$demo/collectd.out"
mkdir -p "$demo/images" "$demo/edits"
images=$demo/images
guests="web-01 web-02 web-03 web-04 web-05 web-06 web-07 web-08 db-01 db-02"
plugindir=$(vs_plugin_dir "$demo")
vs_collectd_env
declare -A cpid=()
images_pid=
stop_host() { # HOST: its collectd, by its pid
  kill "${cpid[$1]}" 2>/dev/null || true
  wait "${cpid[$1]}" 2>/dev/null || true
  unset "cpid[$1]"
}
stop_collectd() { # the elected host last: no other takes the store's lock over as it goes
  local h
  for h in "${!cpid[@]}"; do
    grep -q "this host does the fleet's once-only work" "$demo/$h/collectd.log" 2>/dev/null || stop_host "$h"
  done
  for h in "${!cpid[@]}"; do stop_host "$h"; done
}
stop_all() { # what runs: the images' job, collectd and PostgreSQL, by their pids
  [ -z "$images_pid" ] || { kill "$images_pid" 2>/dev/null && wait "$images_pid" 2>/dev/null; } || true
  stop_collectd
  vs_pg_stop
}
trap stop_all EXIT

# The guests' disk images, made while PostgreSQL starts.
(
  # The base image: TREE's ext4 file system filling the disk.
  size=$(($(du -sm "$tree" | cut -f1) * 13 / 10 + 64))
  vs_base_image "$tree" "$demo/edits/base.raw" "$images/base.qcow2" "$size"

  # guest NAME [FILE-IN-GUEST LOCAL-FILE]...: NAME's disk, the base with those files replaced.
  guest() {
    local name=$1
    shift
    vs_guest_image "$demo/edits/base.raw" "$images/base.qcow2" "${VS_GUEST_OUT:-$images/$name.qcow2}" "$@"
  }
  e=$demo/edits
  sshd=$tree/etc/ssh/sshd_config
  sed 's/^#PermitRootLogin.*/PermitRootLogin yes/' "$sshd" >"$e/sshd-root"
  { cat "$sshd" && echo 'PermitRootLogin prohibit-password'; } >"$e/sshd-default"
  { cat "$sshd" && echo 'MaxAuthTries 10'; } >"$e/sshd-maxauth"
  printf 'net.ipv4.ip_forward = 1\n' >"$e/router.conf"
  printf 'net.core.somaxconn = 4096\n' >"$e/somaxconn.conf"
  printf 'vm.swappiness = 1\nkernel.shmmax = 68719476736\n' >"$e/db.conf"
  { cat "$tree/etc/passwd" && echo 'postgres:x:105:110:PostgreSQL administrator:/var/lib/postgresql:/bin/bash'; } >"$e/passwd-db"
  { cat "$tree/etc/group" && echo 'postgres:x:110:'; } >"$e/group-db"
  for g in $guests; do
    printf '%s\n' "$g" >"$e/hostname-$g"
    set -- /etc/hostname "$e/hostname-$g"
    case $g in
    web-02) set -- "$@" /etc/ssh/sshd_config "$e/sshd-root" /etc/sysctl.d/60-router.conf "$e/router.conf" ;;
    web-05) set -- "$@" /etc/ssh/sshd_config "$e/sshd-default" ;;
    db-*) set -- "$@" /etc/passwd "$e/passwd-db" /etc/group "$e/group-db" /etc/sysctl.d/60-db.conf "$e/db.conf" ;;
    esac
    guest "$g" "$@"
  done
  # What web-04's admin will have done by the second snapshot.
  VS_GUEST_OUT=$images/web-04.next.qcow2 guest web-04 /etc/hostname "$e/hostname-web-04" \
    /etc/ssh/sshd_config "$e/sshd-maxauth" /etc/sysctl.d/60-somaxconn.conf "$e/somaxconn.conf"
  rm -f "$demo/edits/base.raw"
  echo "== the demo fleet: $images/base.qcow2 ($(du -m "$images/base.qcow2" | cut -f1) MiB) and ten thin overlays on it"
  for g in $guests; do printf '%s %s KiB; ' "$g" "$(du -k "$images/$g.qcow2" | cut -f1)"; done
  echo
) >"$demo/images.out" 2>"$demo/images.err" &
images_pid=$!

# The fleet store: a private PostgreSQL, the database "vmscope" and its owner, a login role whose
# password (random, made here) is in a file only, which the hosts and the commands below read.
pw=$demo/fleet-store.pw
(umask 077 && printf '%s\n' "$(od -An -tx1 -N18 /dev/urandom | tr -d ' \n')" >"$pw")
vs_pg_start "$demo/pg" || { echo "demo: cannot start PostgreSQL for the fleet store: $VS_PG_WHY" >&2 && exit 3; }
vs_pg_store vmscope "$pw"
url=$(vs_pg_url vmscope vmscope)
wait "$images_pid" || { cat "$demo/images.err" >&2 && echo "demo: the guests' disk images could not be made" >&2 && exit 1; }
images_pid=
cat "$demo/images.out"
cat "$demo/images.err" >&2
echo "== the fleet store: PostgreSQL 15 in $demo/pg, $url (password in $pw)"

fix=$(printf '%s' '{"execute":"guest-exec","arguments":{"path":"/bin/sed","arg":["-i","s/^PermitRootLogin yes/#PermitRootLogin prohibit-password/","/etc/ssh/sshd_config"]}}' | sed 's/\\/\\\\/g; s/"/\\"/g')
k=0
declare -A uuid=()
for g in $guests; do
  k=$((k + 1))
  uuid[$g]=5e1d0000-0000-4000-8000-0000000000$(printf '%02d' $k)
done
for h in $hosts; do
  d=$demo/$h
  mkdir -p "$d"
  {
    echo "<node>"
    for g in ${on[$h]}; do
      case $g in db-*) vcpu=4 mem=8192 ;; *) vcpu=2 mem=2048 ;; esac
      vs_test_domain "$g" "${uuid[$g]}" "$images/$g.qcow2" $vcpu $mem \
        "<interface type='network'><source network='default'/><model type='virtio'/></interface>"
    done
    echo "</node>"
  } >"$d/node.xml"
  { vs_collectd_conf "$d" "$plugindir" | sed "s/^Hostname \"vstest\"/Hostname \"$h\"/"; cat <<CONF; } >"$d/collectd.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "test://$d/node.xml"
  Interval $interval
  DataDir "$d/pool"
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$d/pool"
  Interval 1
  FleetStore "$url"
  FleetStorePasswordFile "$pw"
</Plugin>
LoadPlugin vmscope_action
<Plugin vmscope_action>
  Connection "test://$d/node.xml"
  AllowCommand "guest-exec"
  <Rule "no-root-login">
    # an alarm (warning or failure: alone among 2 agreeing close peers warns, among 9 fails)
    Match Plugin "vmscope_drift" Type "config_drift" Severity "[wf]*" Meta "key" "file:/etc/ssh/sshd_config:PermitRootLogin"
    Action "agent" "$fix"
    DryRun true
  </Rule>
</Plugin>
CONF
done
start_host() { # HOST
  "${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$demo/$1/collectd.conf" >"$demo/$1/collectd.out" 2>&1 &
  cpid[$1]=$!
  echo "$1: collectd $COLLECTD -C $demo/$1/collectd.conf on test://$demo/$1/node.xml: $(echo ${on[$1]})"
}
# rounds N HOST...: every guest of these hosts has N documents in its host's pool
rounds() {
  local d h n=0 want=0
  for h in "${@:2}"; do
    want=$((want + $(wc -w <<<"${on[$h]}")))
    for d in "$demo/$h"/pool/*/; do
      [ -d "$d" ] && [ "$(find "$d" -maxdepth 1 -name '2*.json' | wc -l)" -ge "$1" ] && n=$((n + 1))
    done
  done
  [ "$n" -eq "$want" ]
}
wait_until() { # SECONDS WHAT COMMAND...: polls COMMAND until it succeeds
  local t=$(($1 * 4)) what=$2 h
  shift 2
  while ! "$@"; do
    for h in "${!cpid[@]}"; do
      kill -0 "${cpid[$h]}" 2>/dev/null || { echo "demo: $h's collectd exited while waiting for $what:" >&2 && tail -n 20 "$demo/$h/collectd.out" "$demo/$h/collectd.log" >&2 && exit 1; }
    done
    t=$((t - 1))
    [ $t -gt 0 ] || { echo "demo: timed out waiting for $what" >&2 && tail -n 20 "$demo"/host-*/collectd.log >&2 && exit 1; }
    sleep 0.25
  done
}
sql() { VS_PG_DB=vmscope vs_pg_sql "$@" 2>/dev/null; }
# published HOST N: the store holds HOST's N guests
published() { [ "$(sql -c "SELECT count(*) FROM vmscope_vms WHERE host = '$1'")" = "$2" ]; }
notified() { grep -q "Notification: .*host = $1, .*$2" "$demo/$1/collectd.log" 2>/dev/null; }
# alarmed VM...: the store's alarms (warnings and failures) are those of these VMs
alarmed() { [ "$(sql -c "SELECT string_agg(DISTINCT name, ' ' ORDER BY name) FROM vmscope_findings WHERE severity IN ('warning', 'failure')")" = "$*" ]; }
echo "== two hosts, each a collectd with vmscope_snapshot (every ${interval} s), vmscope_drift and vmscope_action on its own test-driver node"
start=$(date +%s.%N)
# host-a first; host-b once host-a's guests are in the store (none of host-b's rankings has a
# part of the fleet only)
start_host host-a
wait_until 300 "host-a's guests in the fleet store" published host-a 7
echo "host-a's first snapshot is in the fleet store after $(echo "$(date +%s.%N) - $start" | bc) s"
# web-04's admin edits the guest: its disk becomes the edited one (a rename, as a write would)
mv "$images/web-04.next.qcow2" "$images/web-04.qcow2"
start_host host-b
wait_until 300 "host-b's guests in the fleet store" published host-b 3
echo "host-b's first snapshot is in the fleet store after $(echo "$(date +%s.%N) - $start" | bc) s"
wait_until 300 "host-a's second snapshot" rounds 2 host-a
wait_until 60 "host-a's verdict on web-04's edit" notified host-a "plugin_instance = web-04, type = config_drift"
wait_until 60 "host-b's verdict on web-02" notified host-b "plugin_instance = web-02, type = config_drift"
wait_until 30 "the dry-run remediation" notified host-b "type = action_result"
wait_until 60 "the fleet store's alarms of web-02 and web-04" alarmed web-02 web-04
echo "host-a's second snapshot and the findings after $(echo "$(date +%s.%N) - $start" | bc) s; stopping both collectd"
stop_collectd
echo "the fleet store's hosts: $(sql -c "SELECT string_agg(host || ' (' || vms || ' VMs)', ', ' ORDER BY host) FROM vmscope_hosts")"

echo
echo "== the findings: the notifications of both hosts' collectd ($demo/host-*/collectd.log); [the host that sent it]"
# SEVERITY VM TYPE: MESSAGE [HOST]; the fleet's own findings (no VM) as "fleet"
cat "$demo"/host-*/collectd.log |
  sed -n -e 's/^.*Notification: severity = \([A-Z]*\), host = \([^,]*\), plugin = [^,]*, plugin_instance = \([^,]*\), type = \([^,]*\), \(type_instance = [^,]*, \)\{0,1\}message = \(.*\)$/\1 \3 \4: \6 [\2]/p' \
    -e 's/^.*Notification: severity = \([A-Z]*\), host = \([^,]*\), plugin = [^,]*, type = \([^,]*\), \(type_instance = [^,]*, \)\{0,1\}message = \(.*\)$/\1 fleet \3: \5 [\2]/p' |
  grep -v ' feature_change: .*first snapshot' | sort | uniq
elected=$(grep -l "this host does the fleet's once-only work" "$demo"/host-*/collectd.log | sed 's|.*/\(host-[^/]*\)/collectd.log$|\1|' || true)
echo "the fleet's once-only work (groups, rollouts, majority changes): $(echo $elected), which holds the store's lock"

echo
echo "== only the fleet view finds this: web-02, host-b's only web server"
echo "host-b alone: vmscope drift --pool $demo/host-b/pool --target web-02 --format text"
"$vmscope" drift --pool "$demo/host-b/pool" --target web-02 --format text | grep -E '^#|PermitRootLogin'
echo "the fleet, as host-b's vmscope_drift ranked it: vmscope fleet drift --store $url --vm web-02 --format text"
"$vmscope" fleet drift --store "$url" --password-file "$pw" --vm web-02 --format text | grep -E '^#|PermitRootLogin'
alone=$("$vmscope" drift --pool "$demo/host-b/pool" --target web-02 --format json | jq '.alarms')
fleet=$("$vmscope" fleet drift --store "$url" --password-file "$pw" --vm web-02 --format json | jq '[.[] | .alarms] | add')
notes=$(grep -c "Notification: severity = [WF][A-Z]*, host = host-b, plugin = vmscope_drift, plugin_instance = web-02, type = config_drift" "$demo/host-b/collectd.log" || true)
echo "web-02's alarms: $alone from host-b's own pool, $fleet from the fleet; host-b's collectd notified $notes"

echo
echo "== the fleet's alarms: vmscope fleet drift --store $url --format text (each VM, and its warnings and failures)"
"$vmscope" fleet drift --store "$url" --password-file "$pw" --format text | grep -E '^#| (warning|failure) '

echo
echo "== vmscope analyze --format text --pool $demo/host-a/pool --pool $demo/host-b/pool"
"$vmscope" analyze --format text --pool "$demo/host-a/pool" --pool "$demo/host-b/pool"
"$vmscope" report --html "$demo/report.html" --store "$url" --password-file "$pw" --title "vmscope demo fleet"
stop_all
trap - EXIT
echo
echo "== the HTML report from the fleet store: $demo/report.html ($(du -k "$demo/report.html" | cut -f1) KiB, self-contained)"
