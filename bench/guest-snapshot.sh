#!/usr/bin/env bash
# guest-snapshot.sh [RUNS]: what a backup-mode snapshot costs a running guest (issue 20, point 6).
# Boots the real guest of t/lib/guest.sh (the Debian kernel, the debootstrap tree as its ext4
# root, qemu-ga inside; TCG where there is no KVM) under a private libvirtd, then RUNS times
# (default 5):
#   vmscope  `vmscope snapshot --mode backup`: its wall time, the bytes it read through the
#            backup job's NBD export (--stats), and how long the guest's file systems were
#            frozen (the guest's fsfreeze hook logs freeze and thaw with its uptime: 10 ms steps)
#   peer     what a libvirt backup tool does (virtnbdbackup's way on libvirt 9, whose
#            backup-begin has no --quiesce yet): `virsh domfsfreeze`, `virsh backup-begin`
#            (pull mode), `virsh domfsthaw`, then a full read of the export (`qemu-img convert`
#            to a local qcow2, which reads every block the export says holds data)
# and prints the medians with the ratios. Targets: frozen <= 100 ms, bytes read <= 5% of the
# disk. Needs root (the private libvirtd).
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
vs_guest_image >/dev/null || { echo "guest-snapshot.sh: $VS_GUEST_WHY" >&2; exit 1; }
vs_libvirtd_start "$work/libvirt" || { echo "guest-snapshot.sh: no private libvirtd: $VS_LIBVIRT_WHY" >&2; exit 1; }
chmod 755 "$work"
mkdir -p "$work/bk" "$work/peer"
chmod 777 "$work/peer" # QEMU, as libvirt-qemu, makes the export's socket and scratch file there
dom=vs-bench-guest
vs_guest_boot "$dom" "$work/vm" || { echo "guest-snapshot.sh: the guest did not boot: $VS_GUEST_WHY" >&2; exit 1; }
disk=$(qemu-img info --output=json -U "$work/vm/$dom.qcow2" | jq '."virtual-size"')
machine="$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $( [ -c /dev/kvm ] && echo KVM || echo TCG)"
echo "guest-snapshot: a running guest booted in $VS_GUEST_BOOT_S s; its disk is $((disk / 1048576)) MiB ($machine; $(date -u +%Y-%m-%d))"

# The freeze/thaw pairs the guest's hook logged since line FROM: frozen milliseconds, one a line.
frozen_ms() {
  vs_guest_exec "$dom" /bin/cat /run/vs-freeze.log 2>/dev/null | tail -n "+$1" |
    awk '$1 == "freeze" { f = $2 } $1 == "thaw" && f != "" { printf "%.0f\n", ($2 - f) * 1000; f = "" }'
}
log_lines() { vs_guest_exec "$dom" /bin/cat /run/vs-freeze.log 2>/dev/null | wc -l; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "nan" }'; }

: >"$work/vs.txt"
: >"$work/peer.txt"
for i in $(seq 1 "$runs"); do
  from=$(($(log_lines) + 1))
  "$VS_BUILDDIR/vmscope" snapshot --connect "$VS_LIBVIRT_URI" --domain "$dom" --mode backup \
    --backup-dir "$work/bk" --backing-dir "$VS_GUEST_CACHE" --stats >/dev/null 2>"$work/stats" ||
    { echo "guest-snapshot.sh: vmscope snapshot failed: $(cat "$work/stats")" >&2; exit 1; }
  grep -q '(quiesced: ' "$work/stats" || { echo "guest-snapshot.sh: the snapshot was not quiesced: $(cat "$work/stats")" >&2; exit 1; }
  ms=$(sed -n 's/.*: \([0-9.]*\) ms, .*/\1/p' "$work/stats")
  bytes=$(sed -n 's/.*, \([0-9]*\) bytes read.*/\1/p' "$work/stats")
  host_frozen=$(sed -n 's/.*(quiesced: frozen \([0-9.]*\) ms).*/\1/p' "$work/stats")
  echo "$ms $bytes $(frozen_ms "$from" | tail -n1) $host_frozen" >>"$work/vs.txt"

  from=$(($(log_lines) + 1))
  sock=$work/peer/peer.sock
  cat >"$work/backup.xml" <<XML
<domainbackup mode='pull'><server transport='unix' socket='$sock'/>
<disks><disk name='vda' backup='yes' type='file'><scratch file='$work/peer/peer.scratch'/></disk></disks></domainbackup>
XML
  t0=$(date +%s.%N)
  virsh -c "$VS_LIBVIRT_URI" domfsfreeze "$dom" >/dev/null ||
    { echo "guest-snapshot.sh: virsh domfsfreeze failed" >&2; exit 1; }
  virsh -c "$VS_LIBVIRT_URI" backup-begin "$dom" "$work/backup.xml" >/dev/null ||
    { virsh -c "$VS_LIBVIRT_URI" domfsthaw "$dom" >/dev/null; echo "guest-snapshot.sh: virsh backup-begin failed" >&2; exit 1; }
  virsh -c "$VS_LIBVIRT_URI" domfsthaw "$dom" >/dev/null ||
    { echo "guest-snapshot.sh: virsh domfsthaw failed" >&2; exit 1; }
  data=$(qemu-img map --output=json "nbd+unix:///vda?socket=$sock" | jq '[.[] | select(.data) | .length] | add')
  rm -f "$work/copy.qcow2"
  qemu-img convert -O qcow2 "nbd+unix:///vda?socket=$sock" "$work/copy.qcow2" ||
    { echo "guest-snapshot.sh: qemu-img convert of the export failed" >&2; exit 1; }
  ms=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
  virsh -c "$VS_LIBVIRT_URI" domjobabort "$dom" >/dev/null 2>&1
  for _ in $(seq 1 40); do virsh -c "$VS_LIBVIRT_URI" domjobinfo "$dom" 2>/dev/null | grep -q 'Job type: *None' && break; sleep 0.25; done
  echo "$ms $data $(frozen_ms "$from" | tail -n1)" >>"$work/peer.txt"
done
rm -f "$work/copy.qcow2"

col() { awk -v c="$2" '{ print $c }' "$1" | median; }
vs_ms=$(col "$work/vs.txt" 1) vs_bytes=$(col "$work/vs.txt" 2) vs_frozen=$(col "$work/vs.txt" 3)
vs_host_frozen=$(col "$work/vs.txt" 4)
peer_ms=$(col "$work/peer.txt" 1) peer_bytes=$(col "$work/peer.txt" 2) peer_frozen=$(col "$work/peer.txt" 3)
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f%%", 100 * a / b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
printf '%-44s %14s %14s %10s\n' "median of $runs runs" vmscope "virsh+qemu-img" ratio
printf '%-44s %14s %14s %10s\n' "wall time, ms" "$vs_ms" "$peer_ms" "$(ratio "$vs_ms" "$peer_ms")"
printf '%-44s %14s %14s %10s\n' "bytes read from the export" "$vs_bytes" "$peer_bytes" "$(ratio "$vs_bytes" "$peer_bytes")"
printf '%-44s %14s %14s\n' "  of the disk's $disk bytes" "$(pct "$vs_bytes" "$disk")" "$(pct "$peer_bytes" "$disk")"
printf '%-44s %14s %14s %10s\n' "guest's file systems frozen, ms (10 ms steps)" "$vs_frozen" "$peer_frozen" "$(ratio "$vs_frozen" "$peer_frozen")"
printf '%-44s %14s\n' "  freeze's return to thaw's, on the host, ms" "$vs_host_frozen"
echo "targets: frozen <= 100 ms: $(awk -v f="$vs_frozen" 'BEGIN { print (f <= 100 ? "met" : "NOT met") }') (the guest's hook; it runs before the freeze and after the thaw); bytes read <= 5% of the disk: $(awk -v b="$vs_bytes" -v d="$disk" 'BEGIN { print (b <= 0.05 * d ? "met" : "NOT met") }')"
