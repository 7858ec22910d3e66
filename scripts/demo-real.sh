#!/usr/bin/env bash
# demo-real.sh BUILDDIR TREE DEMODIR: the closed loop on real running guests, what
# `scripts/demo.sh --real-guests` runs once it has installed and built. As root.
#
# The guest (scripts/guest-image.sh, cached in DEMODIR/guest): the host's Debian kernel, a
# busybox initramfs with qemu-ga, TREE (a Debian 12 root file system) as its ext4 root disk.
# Under a private libvirtd (t/lib/libvirtd.sh: QEMU, TCG where there is no KVM, in
# DEMODIR/real/libvirt) it boots two guests on their own overlays of that base, vsdemo-web-01
# and vsdemo-web-02, and defines eight stopped domains of their shape (vsdemo-web-03..10), each
# on its own overlay too (t/lib/guest.sh). The real collectd runs with the three plugins on them
# (vs_guest_loop_conf: backup-mode snapshots and drift ranking every 2 s, and a <Rule> whose
# agent action removes "PermitRootLogin yes" inside vsdemo-web-01). Then, inside the running
# vsdemo-web-01, through its agent, PermitRootLogin yes is appended to sshd_config, and it
# prints each step as collectd's log shows it, with the time since the change: the snapshot
# that read it (and how long the guest was frozen for it), the config_drift alarm, the
# remediation run inside the guest and its result, the OKAY; and what the guest's sshd_config
# says after. Everything it started (collectd, the guests, the domains it defined, libvirtd) it
# stops by pid or name at the end, also on a failure or Ctrl-C. The private libvirtd takes the
# test suite's lock (/run/lock/vmscope-test-libvirtd.lock): the demo waits for a test that holds
# it. Exit status 3: no private libvirtd here (the reason on stderr); 1: another failure.
set -euo pipefail
builddir=$(cd "$1" && pwd) tree=$2 demo=$3
VS_SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
VS_BUILDDIR=$builddir
VMSCOPE=$builddir/vmscope
VS_GUEST_CACHE=$demo/guest
. "$VS_SRCDIR/t/lib/libvirtd.sh"
. "$VS_SRCDIR/t/lib/guest.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"

work=$demo/real
dom=vsdemo-web-01
running=(vsdemo-web-01 vsdemo-web-02)
peers=(vsdemo-web-03 vsdemo-web-04 vsdemo-web-05 vsdemo-web-06 vsdemo-web-07 vsdemo-web-08 vsdemo-web-09 vsdemo-web-10)
log=$work/collectd.log
die() { # STATUS MESSAGE
  echo "demo: $2" >&2
  exit "$1"
}
cpid= booted=() defined=
stop_all() { # what this script started, by pid or name
  local g
  trap - EXIT INT TERM
  set +e
  if [ -n "$cpid" ]; then
    kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
    echo "stopped collectd (pid $cpid)"
    cpid=
  fi
  for g in "${booted[@]}"; do
    vs_guest_stop "$g" || echo "demo: $g did not stop" >&2
  done
  [ ${#booted[@]} = 0 ] || echo "stopped ${booted[*]}"
  if [ -n "$defined" ]; then
    vs_guest_undefine "${peers[@]}" || true
    echo "undefined ${peers[*]}"
  fi
  if [ ${#VS_LIBVIRTD_PIDS[@]} -gt 0 ]; then
    vs_libvirtd_stop || true
    echo "stopped the private libvirtd"
  fi
}
trap stop_all EXIT
trap 'echo "demo: interrupted; stopping what it started" >&2; exit 130' INT
trap 'exit 143' TERM

# ---- the guest image: built once, then checked against its stamp
echo "== the guest: the host's Debian kernel, a busybox initramfs with qemu-ga, the Debian 12 tree as its root disk"
t0=$(vs_guest_now)
if [ -f "$VS_GUEST_CACHE/stamp" ]; then built=cached; else built=built; fi
bash "$VS_SRCDIR/scripts/guest-image.sh" "$VS_GUEST_CACHE" "$tree" 2>"$demo/guest-image.err" ||
  { cat "$demo/guest-image.err" >&2 && die 1 "the guest image could not be built (scripts/guest-image.sh)"; }
# guest-image.sh rebuilds a cached guest whose stamp (kernel, qemu-ga, tree, script) changed
grep -q 'building the guest' "$demo/guest-image.err" && built=built
echo "$VS_GUEST_CACHE: $built in $(vs_guest_since "$t0") s ($(sed -n 's/^kernel=//p' "$VS_GUEST_CACHE/stamp"), $(sed -n 's/^qemu-ga=//p' "$VS_GUEST_CACHE/stamp"); $(du -m "$VS_GUEST_CACHE/initrd.img" | cut -f1) MiB initramfs, $(du -m "$VS_GUEST_CACHE/base.qcow2" | cut -f1) MiB base image)"

# ---- a private libvirtd
rm -rf "$work"
mkdir -p "$work"
chmod 755 "$demo" "$work"
# the plugins installed beside collectd's own (before anything is started: a build that fails
# fails here)
plugindir=$(vs_plugin_dir "$work") || die 1 "make install into $work/dest failed: $(tail -n 3 "$work/install.log")"
lock=/run/lock/vmscope-test-libvirtd.lock waited=
if ! flock -n "$lock" true 2>/dev/null; then
  echo "demo: a test's private libvirtd holds $lock; waiting for it (at most 15 minutes)"
  waited=", the wait for the lock included"
fi
t0=$(vs_guest_now)
if ! vs_libvirtd_start "$work/libvirt"; then
  other=$(pgrep -x libvirtd | tr '\n' ' ') || true
  die 3 "cannot start a private libvirtd: $VS_LIBVIRT_WHY${other:+ (another libvirtd runs here, pid $other: this demo starts its own; stop that one, e.g. systemctl stop libvirtd, and run it again)}"
fi
virt=TCG
grep -q "<domain type='kvm'>" <(vs_guest_domain_xml x x x x) && virt=KVM
echo "== a private libvirtd (QEMU driver, $virt) on $work/libvirt/sock: answering after $(vs_guest_since "$t0") s$waited"
vs_guest_undefine "${peers[@]}" || true # a run killed before its cleanup

# ---- the fleet: two running guests, eight stopped domains of their shape
for g in "${running[@]}"; do
  booted+=("$g")
  vs_guest_boot "$g" "$work/vm" || die 1 "$g did not boot: $VS_GUEST_WHY"
  echo "$g: booted on its overlay $work/vm/$g.qcow2; its agent answers $VS_GUEST_BOOT_S s after create (user space at ${VS_GUEST_USERSPACE_S:-?} s guest time)"
done
defined=1
vs_guest_peers "$work/vm" "${peers[@]}" || die 1 "the stopped domains could not be defined"
echo "${peers[0]}..${peers[-1]#vsdemo-}: eight stopped domains of the same shape, each on its own overlay of the same base"

# ---- collectd with the three plugins
vs_collectd_env
vs_guest_loop_conf "$work" "$plugindir" "$dom" | sed 's/^Hostname "vstest"$/Hostname "host-a"/' >"$work/collectd.conf"
# the rule's command, from its Action (JSON in a collectd string)
fix=$(sed -n 's/^ *Action "agent" "\(.*\)"$/\1/p' "$work/collectd.conf" | sed 's/\\\(.\)/\1/g' | jq -r '.arguments.arg[-1]')
t0=$(vs_guest_now)
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/collectd.out" 2>&1 &
cpid=$!
echo "== collectd $COLLECTD -C $work/collectd.conf (pid $cpid): vmscope_snapshot (backup jobs, every 2 s), vmscope_drift (every 2 s), vmscope_action (rule root-login: agent guest-exec in $dom)"

# await SECONDS WHAT COMMAND...: COMMAND, until it succeeds; a collectd that exits, or SECONDS
# passing, ends the demo with WHAT.
alive_and() {
  kill -0 "$cpid" 2>/dev/null ||
    { tail -n 20 "$work/collectd.out" "$log" >&2; die 1 "collectd exited while waiting for $what"; }
  "$@"
}
await() {
  what=$2
  vs_guest_wait "$1" alive_and "${@:3}" ||
    { tail -n 20 "$log" >&2; die 1 "timed out after $1 s waiting for $what"; }
}
lines() {
  local n
  n=$(grep -c "$1" "$log" 2>/dev/null) || true
  echo "${n:-0}"
}
# newer PATTERN N: the log holds more than N lines matching PATTERN
newer() { [ "$(lines "$1")" -gt "$2" ]; }
# message PATTERN N: the message of the (N+1)th notification matching PATTERN
message() { grep "$1" "$log" | sed -n "$(($2 + 1)){s/.*, message = //p}"; }
documents() { [ "$(find "$work/pool" -mindepth 2 -maxdepth 2 -name '2*.json' 2>/dev/null | wc -l)" -ge 10 ]; }
ranked() { [ "$(jq '.vms | length' "$work/pool/analytics.json" 2>/dev/null)" = 10 ]; }
await 180 "the first snapshot of the ten" documents
await 60 "the first ranking of the ten" ranked
key='type = config_drift, type_instance = sshd_config.PermitRootLogin'
alarm="severity = \(WARNING\|FAILURE\), host = host-a, plugin = vmscope_drift, plugin_instance = $dom, $key"
okay="severity = OKAY, host = host-a, plugin = vmscope_drift, plugin_instance = $dom, $key"
changed="plugin = vmscope_snapshot, plugin_instance = $dom, type = feature_change"
fixed="type = action_result, .*rule root-login: agent on $dom"
echo "the ten VMs snapshotted and ranked $(vs_guest_since "$t0") s after collectd started; config_drift alarms: $(lines "severity = \(WARNING\|FAILURE\), .*type = config_drift")"

# ---- the change, inside the running guest
echo
echo "== the change: inside the running $dom, through its agent (guest-exec): echo 'PermitRootLogin yes' >>/etc/ssh/sshd_config"
n_changed=$(lines "$changed") n_alarm=$(lines "$alarm") n_fixed=$(lines "$fixed") n_okay=$(lines "$okay")
# the guest's fsfreeze hook's log: "freeze UPTIME" and "thaw UPTIME" lines
freeze_log() { vs_guest_exec "$dom" /bin/cat /run/vs-freeze.log >"$work/freeze.log" 2>/dev/null; }
vs_guest_wait 30 freeze_log || : >"$work/freeze.log"
freezes=$(wc -l <"$work/freeze.log")
# A guest-exec a snapshot's freeze refused is tried again; the marker keeps one that ran, but
# whose end was not seen, from appending the line twice.
change() {
  vs_guest_exec "$dom" /bin/sh -c "[ -e /run/vsdemo-change ] || { echo 'PermitRootLogin yes' >>/etc/ssh/sshd_config; sync; touch /run/vsdemo-change; }" >/dev/null 2>&1
}
vs_guest_wait 60 change || die 1 "the agent of $dom did not run the change"
t0=$(vs_guest_now)
echo "[+0.0 s] written at $(date +%T); inside $dom: $(vs_guest_exec "$dom" /bin/grep -n '^PermitRootLogin' /etc/ssh/sshd_config 2>/dev/null || echo '(the agent is busy)')"
await 120 "the snapshot that reads the change" newer "$changed" "$n_changed"
echo "[+$(vs_guest_since "$t0") s] snapshot: $(message "$changed" "$n_changed")"
await 120 "the config_drift alarm" newer "$alarm" "$n_alarm"
alarm_s=$(vs_guest_since "$t0")
# severity PATTERN N: the severity of the (N+1)th notification matching PATTERN
severity() { grep "$1" "$log" | sed -n "$(($2 + 1)){s/.*severity = \([A-Z]*\),.*/\1/p}"; }
echo "[+$alarm_s s] alarm: $(severity "$alarm" "$n_alarm") config_drift $dom: $(message "$alarm" "$n_alarm")"
echo "         vmscope_action's rule root-login runs, inside $dom through its agent: sh -c \"$fix\""
# each result until one is OKAY (one the guest refused while a snapshot had it frozen is
# tried again: its FAILURE says when)
while :; do
  await 120 "the remediation's result" newer "$fixed" "$n_fixed"
  echo "[+$(vs_guest_since "$t0") s] remediation: $(severity "$fixed" "$n_fixed") action_result: $(message "$fixed" "$n_fixed")"
  [ "$(severity "$fixed" "$n_fixed")" != OKAY ] || break
  n_fixed=$((n_fixed + 1))
done
await 120 "the alarm's OKAY" newer "$okay" "$n_okay"
total_s=$(vs_guest_since "$t0")
echo "[+$total_s s] cleared: OKAY config_drift $dom: $(message "$okay" "$n_okay")"
after() { vs_guest_exec "$dom" /bin/sh -c "grep -c '^PermitRootLogin yes' /etc/ssh/sshd_config; true" >"$work/after" 2>/dev/null; }
vs_guest_wait 30 after || echo "(the agent did not answer)" >"$work/after"
echo "inside $dom now: $(cat "$work/after") line(s) 'PermitRootLogin yes' in /etc/ssh/sshd_config"
clear_s=$(awk -v a="$alarm_s" -v b="$total_s" 'BEGIN { printf "%.1f", b - a }')
echo "change to alarm: $alarm_s s; alarm to clear: $clear_s s (snapshots and rankings every 2 s, $virt guests)"

# ---- what a snapshot of a running guest cost
vs_guest_wait 30 freeze_log || : >"$work/freeze.log"
frozen=$(awk -v skip="$freezes" 'NR > skip && $1 == "freeze" { f = $2 } NR > skip && $1 == "thaw" && f { ms = ($2 - f) * 1000; n++; s += ms; if (!min || ms < min) min = ms; if (ms > max) max = ms; f = 0 }
  END { if (n) printf "%d freezes since the change, %.0f-%.0f ms (mean %.0f ms)", n, min, max, s / n }' "$work/freeze.log")
# (csv writes the last snapshot's duration every second: one row a snapshot once repeats go)
took=$(cat "$work"/csv/*/vmscope_snapshot-"$dom"/duration-snapshot-* 2>/dev/null | cut -d, -f2 | grep '^[0-9]' | uniq |
  awk '{ ms = $1 * 1000; n++; s += ms; if (!min || ms < min) min = ms; if (ms > max) max = ms } END { if (n) printf "%d snapshots, %.0f-%.0f ms (mean %.0f ms)", n, min, max, s / n }')
echo "the snapshots of $dom, each a backup job: ${took:-not measured} (collectd's duration-snapshot); the guest's file systems frozen for it: ${frozen:-not measured} (its fsfreeze hook, guest time)"
echo
echo "== the notifications are in $log; stopping what the demo started"
stop_all
