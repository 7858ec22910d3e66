#!/usr/bin/env bash
# guest-snapshot.sh [RUNS]: what a backup-mode snapshot costs a running guest (issue 20, point 6).
# Boots the real guest of t/lib/guest.sh (the Debian kernel, the debootstrap tree as its ext4
# root, qemu-ga inside; TCG where there is no KVM) under a private libvirtd, then RUNS times
# (default 5):
#   vmscope  `vmscope snapshot --mode backup`: its wall time, the bytes it read through the
#            backup job's NBD export (--stats), and how long the guest's file systems were
#            frozen, three ways: the longest a write to the guest's root file system was held
#            (bench/guest_pause.c --write, run in the guest: what the guest's programs see), the
#            guest's fsfreeze hook (it logs freeze and thaw with its uptime, in 10 ms steps, and
#            runs before the freeze and after the thaw), and on the host (--stats: the freeze's
#            answer to the thaw's)
#   peer     what a libvirt backup tool does (virtnbdbackup's way on libvirt 9, whose
#            backup-begin has no --quiesce yet): `virsh domfsfreeze`, `virsh backup-begin`
#            (pull mode), `virsh domfsthaw`, then a full read of the export (`qemu-img convert`
#            to a local qcow2, which reads every block the export says holds data)
# and a control, the same write probe over half a second with no snapshot (the guest's own
# stalls), and prints the medians with the ratios. With VS_BASELINE=/path/to/an/older/vmscope, that binary
# takes a snapshot the same way in each run too (before/after a change, under the same load).
# Last, one more snapshot with libvirtd logging its monitor and agent traffic shows where the
# frozen time goes. Targets: frozen <= 100 ms (the write probe's), bytes read <= 5% of the disk.
# Needs root (the private libvirtd) and a C compiler that links static programs.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export VS_SRCDIR=$top VS_BUILDDIR=${VS_BUILDDIR:-$top/build}
runs=${1:-5}
[ -x "$VS_BUILDDIR/vmscope" ] || bash "$top/scripts/build.sh" "$VS_BUILDDIR" >/dev/null
. "$top/t/lib/lib.sh"
. "$top/t/lib/libvirtd.sh"
. "$top/t/lib/guest.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/vs-guestbench-XXXXXX")
trap 'vs_libvirtd_stop; rm -rf "$work"' EXIT
${CC:-cc} -static -O2 -std=gnu11 -Wall -Wextra -Werror -o "$work/guest_pause" "$top/bench/guest_pause.c" ||
  { echo "guest-snapshot.sh: cannot build bench/guest_pause.c static (${CC:-cc} -static)" >&2; exit 1; }
vs_guest_image >/dev/null || { echo "guest-snapshot.sh: $VS_GUEST_WHY" >&2; exit 1; }
vs_libvirtd_start "$work/libvirt" || { echo "guest-snapshot.sh: no private libvirtd: $VS_LIBVIRT_WHY" >&2; exit 1; }
chmod 755 "$work"
mkdir -p "$work/bk" "$work/peer"
chmod 777 "$work/peer" # QEMU, as libvirt-qemu, makes the export's socket and scratch file there
dom=vs-bench-guest
vs_guest_boot "$dom" "$work/vm" || { echo "guest-snapshot.sh: the guest did not boot: $VS_GUEST_WHY" >&2; exit 1; }
vs_guest_put "$dom" "$work/guest_pause" /run/vs-pause ||
  { echo "guest-snapshot.sh: cannot copy the write probe into the guest" >&2; exit 1; }
disk=$(qemu-img info --output=json -U "$work/vm/$dom.qcow2" | jq '."virtual-size"')
machine="$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(vs_guest_kvm_works && echo KVM || echo TCG)"
echo "guest-snapshot: a running guest booted in $VS_GUEST_BOOT_S s; its disk is $((disk / 1048576)) MiB ($machine; $(date -u +%Y-%m-%d))"

# The freeze/thaw pairs the guest's hook logged since line FROM: frozen milliseconds, one a line.
frozen_ms() {
  vs_guest_exec "$dom" /bin/cat /run/vs-freeze.log 2>/dev/null | tail -n "+$1" |
    awk '$1 == "freeze" { f = $2 } $1 == "thaw" && f != "" { printf "%.0f\n", ($2 - f) * 1000; f = "" }'
}
log_lines() { vs_guest_exec "$dom" /bin/cat /run/vs-freeze.log 2>/dev/null | wc -l; }
num='^[0-9]+([.][0-9]+)?$' # a figure; anything else ("nan": missing) never counts
# median: of the numbers on standard input; a missing figure ("nan") is left out, not counted.
median() { grep -E "$num" | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "nan" }'; }

: >"$work/vs.txt"
: >"$work/base.txt"
: >"$work/peer.txt"
: >"$work/control.txt"
# The write probe in the guest, on a file of its root file system (/run, where it lives, is a
# tmpfs, which no freeze holds): probe_start before, probe_stop after, which prints the longest
# a write was held, in ms.
probe_start() { vs_guest_pause_start "$dom" --write /var/tmp/vs-probe 0 || exit 1; }
probe_stop() {
  local out
  out=$(vs_guest_pause_stop "$dom") || exit 1
  echo "$out" >>"$work/probe.log"
  local held
  held=$(awk '{ print $6 }' <<<"$out")
  [[ $held =~ $num ]] || { echo "guest-snapshot.sh: the write probe gave no figure: $out" >&2; exit 1; }
  echo "$held"
}
# take VMSCOPE OUT: one backup-mode snapshot by the vmscope binary VMSCOPE; appends "WALL-MS
# BYTES GUEST-FROZEN-MS HOST-FROZEN-MS WRITE-HELD-MS" to OUT.
take() {
  local from ms bytes host_frozen held hook
  from=$(($(log_lines) + 1))
  probe_start
  "$1" snapshot --connect "$VS_LIBVIRT_URI" --domain "$dom" --mode backup \
    --backup-dir "$work/bk" --backing-dir "$VS_GUEST_CACHE" --stats >/dev/null 2>"$work/stats" ||
    { echo "guest-snapshot.sh: $1 snapshot failed: $(cat "$work/stats")" >&2; exit 1; }
  held=$(probe_stop) || exit 1 # the subshell's exit ends only itself
  grep -q '(quiesced: ' "$work/stats" || { echo "guest-snapshot.sh: the snapshot was not quiesced: $(cat "$work/stats")" >&2; exit 1; }
  ms=$(sed -n 's/.*: \([0-9.]*\) ms, .*/\1/p' "$work/stats")
  bytes=$(sed -n 's/.*, \([0-9]*\) bytes read.*/\1/p' "$work/stats")
  host_frozen=$(sed -n 's/.*(quiesced: frozen \([0-9.]*\) ms).*/\1/p' "$work/stats")
  [ -n "$ms" ] && [ -n "$bytes" ] && [ -n "$host_frozen" ] ||
    { echo "guest-snapshot.sh: --stats lacks the wall time, bytes or frozen time: $(cat "$work/stats")" >&2; exit 1; }
  hook=$(frozen_ms "$from" | tail -n1)
  echo "$ms $bytes ${hook:-nan} $host_frozen $held" >>"$2"
}
for i in $(seq 1 "$runs"); do
  probe_start
  sleep 0.5 # the control: the guest's own stalls, over a window as long as a snapshot's
  held=$(probe_stop) || exit 1
  echo "$held" >>"$work/control.txt"
  take "$VS_BUILDDIR/vmscope" "$work/vs.txt"
  [ -n "${VS_BASELINE:-}" ] && take "$VS_BASELINE" "$work/base.txt"

  from=$(($(log_lines) + 1))
  sock=$work/peer/peer.sock
  cat >"$work/backup.xml" <<XML
<domainbackup mode='pull'><server transport='unix' socket='$sock'/>
<disks><disk name='vda' backup='yes' type='file'><scratch file='$work/peer/peer.scratch'/></disk></disks></domainbackup>
XML
  probe_start
  t0=$(date +%s.%N)
  virsh -c "$VS_LIBVIRT_URI" domfsfreeze "$dom" >/dev/null ||
    { echo "guest-snapshot.sh: virsh domfsfreeze failed" >&2; exit 1; }
  virsh -c "$VS_LIBVIRT_URI" backup-begin "$dom" "$work/backup.xml" >/dev/null ||
    { virsh -c "$VS_LIBVIRT_URI" domfsthaw "$dom" >/dev/null; echo "guest-snapshot.sh: virsh backup-begin failed" >&2; exit 1; }
  virsh -c "$VS_LIBVIRT_URI" domfsthaw "$dom" >/dev/null ||
    { echo "guest-snapshot.sh: virsh domfsthaw failed" >&2; exit 1; }
  held=$(probe_stop) || exit 1 # the subshell's exit ends only itself
  data=$(qemu-img map --output=json "nbd+unix:///vda?socket=$sock" | jq '[.[] | select(.data) | .length] | add // empty')
  rm -f "$work/copy.qcow2"
  qemu-img convert -O qcow2 "nbd+unix:///vda?socket=$sock" "$work/copy.qcow2" ||
    { echo "guest-snapshot.sh: qemu-img convert of the export failed" >&2; exit 1; }
  ms=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
  virsh -c "$VS_LIBVIRT_URI" domjobabort "$dom" >/dev/null 2>&1
  for _ in $(seq 1 40); do virsh -c "$VS_LIBVIRT_URI" domjobinfo "$dom" 2>/dev/null | grep -q 'Job type: *None' && break; sleep 0.25; done
  hook=$(frozen_ms "$from" | tail -n1)
  echo "$ms ${data:-nan} ${hook:-nan} $held" >>"$work/peer.txt"
done
rm -f "$work/copy.qcow2"

# Where the frozen time goes: one more vmscope snapshot with libvirtd logging what it sends to
# QEMU's monitor and to the guest agent; each message from the freeze to the thaw, with its time
# after the freeze (libvirtd's log has millisecond times).
admin="libvirtd:///system?socket=$work/libvirt/sock/libvirt-admin-sock"
if virt-admin -c "$admin" daemon-log-filters "1:qemu.qemu_monitor 1:qemu.qemu_agent 4:*" >/dev/null 2>&1 &&
  virt-admin -c "$admin" daemon-log-outputs "1:file:$work/trace.log" >/dev/null 2>&1; then
  "$VS_BUILDDIR/vmscope" snapshot --connect "$VS_LIBVIRT_URI" --domain "$dom" --mode backup \
    --backup-dir "$work/bk" --backing-dir "$VS_GUEST_CACHE" --stats >/dev/null 2>"$work/stats"
  virt-admin -c "$admin" daemon-log-outputs "3:file:$work/libvirt/libvirtd.log" >/dev/null 2>&1
  virt-admin -c "$admin" daemon-log-filters "" >/dev/null 2>&1
  echo "where the frozen time goes ($(sed -n 's/.*(quiesced: \(frozen [0-9.]* ms\)).*/\1/p' "$work/stats") in this run; libvirtd's log):"
  echo "  sent at, ms after the freeze was sent   answered after, ms   command (agent or QMP)"
  grep -E "Send command '|Receive command reply|QEMU_MONITOR_SEND_MSG|QEMU_MONITOR_RECV_REPLY" "$work/trace.log" |
    awk '{ split($2, t, /[:+]/); ms = ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000
           if ($0 ~ /Receive command reply|QEMU_MONITOR_RECV_REPLY/) {
             if (on && what != "") printf "  %10.0f %32.0f   %s\n", sent - t0, ms - sent, what
             if (what == "guest-fsfreeze-thaw") on = 0
             what = ""; next }
           what = match($0, /"execute":"[a-z-]+"/) ? substr($0, RSTART + 11, RLENGTH - 12) : "?"
           sent = ms
           if (what == "guest-fsfreeze-freeze") { t0 = ms; on = 1 } }'
else
  echo "(virt-admin cannot set libvirtd's log: no breakdown of the frozen time)"
fi

col() { awk -v c="$2" '{ print $c }' "$1" | median; }
vs_ms=$(col "$work/vs.txt" 1) vs_bytes=$(col "$work/vs.txt" 2) vs_frozen=$(col "$work/vs.txt" 3)
vs_host_frozen=$(col "$work/vs.txt" 4) vs_held=$(col "$work/vs.txt" 5)
peer_ms=$(col "$work/peer.txt" 1) peer_bytes=$(col "$work/peer.txt" 2) peer_frozen=$(col "$work/peer.txt" 3)
peer_held=$(col "$work/peer.txt" 4) control_held=$(col "$work/control.txt" 1)
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f%%", 100 * a / b }'; }
ratio() { awk -v a="$1" -v b="$2" -v n="$num" 'BEGIN { if (a ~ n && b ~ n && b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
missing=$(cat "$work/vs.txt" "$work/peer.txt" "$work/control.txt" | grep -o nan | wc -l)
[ "$missing" -eq 0 ] || echo "($missing figures missing from the runs: left out of their medians)"
printf '%-44s %14s %14s %10s\n' "median of $runs runs" vmscope "virsh+qemu-img" ratio
printf '%-44s %14s %14s %10s\n' "wall time, ms" "$vs_ms" "$peer_ms" "$(ratio "$vs_ms" "$peer_ms")"
printf '%-44s %14s %14s %10s\n' "bytes read from the export" "$vs_bytes" "$peer_bytes" "$(ratio "$vs_bytes" "$peer_bytes")"
printf '%-44s %14s %14s\n' "  of the disk's $disk bytes" "$(pct "$vs_bytes" "$disk")" "$(pct "$peer_bytes" "$disk")"
printf '%-44s %14s %14s %10s\n' "a guest's write held by the freeze, ms" "$vs_held" "$peer_held" "$(ratio "$vs_held" "$peer_held")"
printf '%-44s %14s\n' "  the same probe with no snapshot, ms" "$control_held"
printf '%-44s %14s %14s %10s\n' "guest's file systems frozen, ms (10 ms steps)" "$vs_frozen" "$peer_frozen" "$(ratio "$vs_frozen" "$peer_frozen")"
printf '%-44s %14s\n' "  freeze's return to thaw's, on the host, ms" "$vs_host_frozen"
if [ -n "${VS_BASELINE:-}" ]; then
  printf '%-44s %14s %14s %10s\n' "the baseline ($VS_BASELINE), same runs:" "" "" ""
  printf '%-44s %14s %14s %10s\n' "  wall time, ms" "$(col "$work/base.txt" 1)" "" "$(ratio "$vs_ms" "$(col "$work/base.txt" 1)")"
  printf '%-44s %14s %14s %10s\n' "  frozen, ms (the guest's hook)" "$(col "$work/base.txt" 3)" "" "$(ratio "$vs_frozen" "$(col "$work/base.txt" 3)")"
  printf '%-44s %14s %14s %10s\n' "  frozen, on the host, ms" "$(col "$work/base.txt" 4)" "" "$(ratio "$vs_host_frozen" "$(col "$work/base.txt" 4)")"
fi
for f in vs base peer; do
  [ -s "$work/$f.txt" ] && echo "  $f, each run's frozen ms (hook/host/write held): $(awk -v f="$f" '{ if (f == "peer") printf "%s/-/%s ", $3, $4; else printf "%s/%s/%s ", $3, $4, $5 }' "$work/$f.txt")"
done
echo "  control, each run's longest write, ms: $(tr '\n' ' ' <"$work/control.txt")"
# A figure that is missing or not a number never meets a target.
echo "targets: frozen <= 100 ms: $(awk -v f="$vs_held" -v n="$num" 'BEGIN { print (f ~ n && f + 0 <= 100 ? "met" : "NOT met") }') (the median of the longest a guest's write was held; $(awk -v n="$num" '$5 ~ n && $5 + 0 > 100 { c++ } END { print c + 0 }' "$work/vs.txt") of $runs runs over 100 ms); bytes read <= 5% of the disk: $(awk -v b="$vs_bytes" -v d="$disk" -v n="$num" 'BEGIN { print (b ~ n && d + 0 > 0 && b <= 0.05 * d ? "met" : "NOT met") }')"
