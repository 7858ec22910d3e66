#!/usr/bin/env bash
# demo-run.sh BUILDDIR TREE DEMODIR: the main job on a demo fleet, with what is already built.
#
# From TREE (a Debian 12 root file system) it makes one base disk image and ten guests cloned
# from it: eight web servers and two databases (their own user, sysctl tuning, more vCPUs and
# memory). web-02 is misconfigured (root logins, IPv4 forwarding); web-05 writes sshd's
# documented default out, which is no drift. Each guest's disk is a thin qcow2 overlay on the
# base holding only the blocks its edits changed (made by `vmscope patchset make`; the edits go
# into a raw copy of the base with debugfs, nothing is mounted). libvirt's test driver serves
# the ten domains; the real collectd runs vmscope_snapshot, vmscope_drift and vmscope_action
# for two snapshot intervals, and between them web-04's guest is edited (its disk replaced by
# one with the edits). Then it prints the notifications (the findings), the roles, and writes
# the HTML report. scripts/demo.sh installs and builds first; t/integration/demo.sh runs this and checks.
set -euo pipefail
builddir=$(cd "$1" && pwd) tree=$2 demo=$3
top=$(cd "$(dirname "$0")/.." && pwd)
vmscope=$builddir/vmscope
interval=${VS_DEMO_INTERVAL:-6}
VS_BUILDDIR=$builddir
. "$top/t/lib/collectd.sh"
VMSCOPE=$vmscope
. "$top/scripts/guest-images.sh"

rm -rf "$demo/images" "$demo/edits" "$demo/pool" "$demo/dest"
mkdir -p "$demo/images" "$demo/edits"
images=$demo/images

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
guests="web-01 web-02 web-03 web-04 web-05 web-06 web-07 web-08 db-01 db-02"
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

{
  echo "<node>"
  k=0
  for g in $guests; do
    k=$((k + 1))
    case $g in db-*) vcpu=4 mem=8192 ;; *) vcpu=2 mem=2048 ;; esac
    vs_test_domain "$g" "5e1d0000-0000-4000-8000-0000000000$(printf '%02d' $k)" "$images/$g.qcow2" \
      $vcpu $mem "<interface type='network'><source network='default'/><model type='virtio'/></interface>"
  done
  echo "</node>"
} >"$demo/node.xml"

plugindir=$(vs_plugin_dir "$demo")
fix=$(printf '%s' '{"execute":"guest-exec","arguments":{"path":"/bin/sed","arg":["-i","s/^PermitRootLogin yes/#PermitRootLogin prohibit-password/","/etc/ssh/sshd_config"]}}' | sed 's/\\/\\\\/g; s/"/\\"/g')
{ vs_collectd_conf "$demo" "$plugindir" "$demo/collectd.log"; cat <<CONF; } >"$demo/collectd.conf"
Hostname "demo-host"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "test://$demo/node.xml"
  Interval $interval
  DataDir "$demo/pool"
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$demo/pool"
  Interval 1
</Plugin>
LoadPlugin vmscope_action
<Plugin vmscope_action>
  Connection "test://$demo/node.xml"
  AllowCommand "guest-exec"
  <Rule "no-root-login">
    # an alarm (warning or failure: alone among 2 agreeing close peers warns, among 9 fails)
    Match Plugin "vmscope_drift" Type "config_drift" Severity "[wf]*" Meta "key" "file:/etc/ssh/sshd_config:PermitRootLogin"
    Action "agent" "$fix"
    DryRun true
  </Rule>
</Plugin>
CONF
rm -f "$demo/collectd.log"
vs_collectd_env
echo "== collectd with vmscope_snapshot (every ${interval} s), vmscope_drift and vmscope_action on test://$demo/node.xml"
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$demo/collectd.conf" >"$demo/collectd.out" 2>&1 &
cpid=$!
trap 'kill $cpid 2>/dev/null || true' EXIT
# rounds N: every guest has N documents in the pool
rounds() {
  local d n=0
  for d in "$demo"/pool/*/; do
    [ -d "$d" ] && [ "$(find "$d" -maxdepth 1 -name '2*.json' | wc -l)" -ge "$1" ] && n=$((n + 1))
  done
  [ "$n" -eq 10 ]
}
wait_until() { # SECONDS WHAT COMMAND...: polls COMMAND until it succeeds
  local t=$(($1 * 4)) what=$2
  shift 2
  while ! "$@"; do
    kill -0 $cpid 2>/dev/null || { echo "demo: collectd exited while waiting for $what:" >&2 && tail -n 20 "$demo/collectd.out" "$demo/collectd.log" >&2 && exit 1; }
    t=$((t - 1))
    [ $t -gt 0 ] || { echo "demo: timed out waiting for $what" >&2 && tail -n 20 "$demo/collectd.log" >&2 && exit 1; }
    sleep 0.25
  done
}
notified() { grep -q "Notification: .*$1" "$demo/collectd.log" 2>/dev/null; }
start=$(date +%s.%N)
wait_until 300 "the first snapshot of every guest" rounds 1
echo "first snapshot of the ten guests after $(echo "$(date +%s.%N) - $start" | bc) s"
# web-04's admin edits the guest: its disk becomes the edited one (a rename, as a write would)
mv "$images/web-04.next.qcow2" "$images/web-04.qcow2"
wait_until 300 "the second snapshot of every guest" rounds 2
wait_until 60 "vmscope_drift's verdict on web-04's edit" notified "plugin_instance = web-04, type = config_drift"
wait_until 30 "the dry-run remediation" notified "type = action_result"
echo "second snapshot after $(echo "$(date +%s.%N) - $start" | bc) s; stopping collectd"
kill $cpid
wait $cpid 2>/dev/null || true
trap - EXIT

echo
echo "== the findings: collectd's notifications ($demo/collectd.log)"
sed -n 's/^.*Notification: severity = \([A-Z]*\), host = [^,]*, plugin = \([^,]*\), plugin_instance = \([^,]*\), type = \([^,]*\), \(type_instance = [^,]*, \)\{0,1\}message = \(.*\)$/\1 \3 \4: \6/p' "$demo/collectd.log" |
  grep -v ' feature_change: .*first snapshot' | sort | uniq
echo
echo "== vmscope analyze --format text --pool $demo/pool"
"$vmscope" analyze --format text --pool "$demo/pool"
"$vmscope" report --html "$demo/report.html" --pool "$demo/pool" --title "vmscope demo fleet"
echo
echo "== the HTML report: $demo/report.html ($(du -k "$demo/report.html" | cut -f1) KiB, self-contained)"
