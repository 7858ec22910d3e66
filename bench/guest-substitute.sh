#!/usr/bin/env bash
# guest-substitute.sh [RUNS]: the pause a running guest sees while a patch set's thin qcow2
# layer is put under its disk live (issue 20, point 6). Boots the real guest of t/lib/guest.sh
# (TCG where there is no KVM) under a private libvirtd, copies bench/guest_pause.c into it (built
# static here) and, RUNS times (default 8), measures each of
#   control  `vmscope patchset status` (reads the running disk's block graph, changes nothing):
#            what the guest sees of the measuring itself (the agent's calls, TCG's own stalls)
#   reopen   `vmscope patchset apply` (blockdev-add, blockdev-reopen, change-backing-file)
#   copy     `vmscope patchset apply --method copy` (libvirt's shallow block copy and pivot)
#   peer     `virsh snapshot-create-as --disk-only --no-metadata --atomic --reuse-external`:
#            libvirt's way to put a layer over a running disk (an external snapshot), here a
#            layer made beforehand that holds the same kind of cluster as a set
# the same way: inside the guest, guest_pause reads one 4 KiB block of /dev/vda with O_DIRECT in
# a loop from before the command to after it; the longest gap between two reads is the pause the
# guest saw, or the noise around it (the control's). Each set and the peer's layer change that
# block (a 64 KiB cluster the guest does not use, between the partition table and the first
# partition), so the gap before the first read of the new content is the pause across the
# switch itself. Beside
# them the figure vmscope reports (the reopen's, the pivot's) and each command's wall time. Each
# run puts three images into the disk's chain, and vmscope reads chains at most 16 deep: the
# guest is booted afresh every 4 runs. Prints the medians and the ratios to the peer. Needs root
# (the private libvirtd) and a C compiler that links static programs.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export VS_SRCDIR=$top VS_BUILDDIR=${VS_BUILDDIR:-$top/build}
runs=${1:-8}
[[ $runs =~ ^[1-9][0-9]?$ ]] || { echo "guest-substitute.sh: RUNS is 1 to 99, not $runs" >&2; exit 2; }
[ -x "$VS_BUILDDIR/vmscope" ] || bash "$top/scripts/build.sh" "$VS_BUILDDIR" >/dev/null
. "$top/t/lib/lib.sh"
. "$top/t/lib/libvirtd.sh"
. "$top/t/lib/guest.sh"
die() {
  echo "guest-substitute.sh: $*" >&2
  exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/vs-guestsub-XXXXXX")
trap 'vs_libvirtd_stop; rm -rf "$work"' EXIT
${CC:-cc} -static -O2 -std=gnu11 -Wall -Wextra -Werror -o "$work/guest_pause" "$top/bench/guest_pause.c" ||
  die "cannot build bench/guest_pause.c static (${CC:-cc} -static)"
vs_guest_image >/dev/null || die "$VS_GUEST_WHY"
vm=$work/vm
mkdir -p "$vm" && chmod 755 "$work" "$vm" || die "cannot make $vm"
# Backing files are looked for beside the image (vmscope refuses others): the base, linked in.
ln "$VS_GUEST_CACHE/base.qcow2" "$vm/base.qcow2" 2>/dev/null || cp "$VS_GUEST_CACHE/base.qcow2" "$vm/base.qcow2" ||
  die "cannot link or copy the base into $vm"
vs_libvirtd_start "$work/libvirt" || die "no private libvirtd: $VS_LIBVIRT_WHY"
dom=vs-bench-sub
disk=$(qemu-img info --output=json -U "$vm/base.qcow2" | jq '."virtual-size"')
agent() { vs_guest_agent "$dom" "$1" 30; }
# boot: the guest on a fresh overlay of the base, with the helper in its /run (tmpfs, through the
# agent's file calls, 48 KiB at a time) and its finest clock source.
boot() {
  local start csd cs avail
  vs_guest_stop "$dom" >/dev/null 2>&1
  vs_guest_boot_on "$dom" "$vm" "$vm/base.qcow2" || die "the guest did not boot: $VS_GUEST_WHY"
  vs_guest_put "$dom" "$work/guest_pause" /run/vs-pause || die "cannot copy the helper into the guest's /run/vs-pause"
  start=$(vs_guest_exec "$dom" /bin/cat /sys/block/vda/vda1/start) || die "cannot read where the guest's first partition starts"
  [ $((start * 512)) -ge $((9 * 65536)) ] || die "the first partition starts at sector $start: not 8 free clusters before it"
  csd=/sys/devices/system/clocksource/clocksource0
  cs=$(vs_guest_exec "$dom" /bin/cat "$csd/current_clocksource") avail=$(vs_guest_exec "$dom" /bin/cat "$csd/available_clocksource")
  echo "the guest booted in $VS_GUEST_BOOT_S s; its kernel's clock source: $cs (it has: $avail; guest_pause times by the TSC)"
}
machine="$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(vs_guest_kvm_works && echo KVM || echo TCG)"
echo "guest-substitute: $runs runs on a running guest whose disk is $((disk / 1048576)) MiB ($machine; $(date -u +%Y-%m-%d))"

# The image the disk's top sits on (a set goes right above it), and a new set NAME on it whose
# one cluster (64 KiB at OFFSET) holds the byte PATTERN.
top_image() { virsh -c "$VS_LIBVIRT_URI" domblklist "$dom" --details | awk '$3 == "vda" { print $4 }'; }
backing_of() { qemu-img info -U --output=json "$1" | jq -r '."full-backing-filename" // ."backing-filename"'; }
make_set() { # NAME PATTERN OFFSET
  local b p=$vm/$1.patched.qcow2
  b=$(backing_of "$(top_image)")
  # Written with no backing, then put on B (a full cluster needs nothing from below).
  qemu-img create -q -f qcow2 "$p" "$disk" && qemu-io -f qcow2 -c "write -q -P $2 $3 65536" "$p" &&
    qemu-img rebase -q -u -f qcow2 -b "$b" -F qcow2 "$p" &&
    "$VS_BUILDDIR/vmscope" patchset make --base "$b" --patched "$p" -o "$vm/$1.qcow2" 2>"$work/make.err" &&
    chmod 644 "$vm/$1.qcow2" || die "cannot make the set $1 on $b: $(cat "$work/make.err" 2>/dev/null)"
}

# The peer's layer: a new overlay NAME of the disk's top image whose one cluster (64 KiB at
# OFFSET) holds the byte PATTERN, as a set's does (libvirt opens it: --reuse-external).
make_overlay() { # NAME PATTERN OFFSET
  local o=$vm/$1.qcow2
  qemu-img create -q -f qcow2 "$o" "$disk" && qemu-io -f qcow2 -c "write -q -P $2 $3 65536" "$o" &&
    qemu-img rebase -q -u -f qcow2 -b "$(top_image)" -F qcow2 "$o" && chmod 644 "$o" ||
    die "cannot make the overlay $1 on $(top_image)"
}

# pause OFFSET COMMAND...: runs guest_pause in the guest on the block at OFFSET, then COMMAND on
# the host once it reads, then stops it; prints "LONGEST-GAP-MS WALL-MS SWITCH-GAP-MS" (-1: the
# block never changed). COMMAND's output goes to $work/cmd.out.
pause() {
  local t0 wall out off=$1
  shift
  vs_guest_pause_start "$dom" /dev/vda "$off" || die "cannot start the helper in the guest"
  t0=$(date +%s.%N)
  "$@" >"$work/cmd.out" 2>"$work/cmd.err" || die "$* failed: $(cat "$work/cmd.err")"
  wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
  out=$(vs_guest_pause_stop "$dom") || die "the helper failed"
  echo "$out" >>"$work/helper.log"
  echo "$(awk '{ print $6 }' <<<"$out") $wall $(awk '{ print $10 }' <<<"$out")"
}

for f in control reopen copy peer; do : >"$work/$f.txt"; done
for i in $(seq 1 "$runs"); do
  [ $(((i - 1) % 4)) = 0 ] && boot
  # A layer shadows what is put under it later: each run's sets take a cluster of their own (the
  # copy's set goes over the reopen's and changes the block again), the peer's layer another.
  set_off=$(((1 + 2 * ((i - 1) % 4)) * 65536)) peer_off=$(((2 + 2 * ((i - 1) % 4)) * 65536))
  r=$(pause "$set_off" "$VS_BUILDDIR/vmscope" patchset status --connect "$VS_LIBVIRT_URI" "$dom") || exit 1
  echo "$r" >>"$work/control.txt"

  make_set "r$i" $((i * 2)) "$set_off"
  r=$(pause "$set_off" "$VS_BUILDDIR/vmscope" patchset apply --connect "$VS_LIBVIRT_URI" "$dom" "$vm/r$i.qcow2") || exit 1
  echo "$r $(jq -r '.reopen_seconds * 1000' "$work/cmd.out")" >>"$work/reopen.txt"

  make_set "c$i" $((i * 2 + 1)) "$set_off"
  r=$(pause "$set_off" "$VS_BUILDDIR/vmscope" patchset apply --connect "$VS_LIBVIRT_URI" --method copy "$dom" "$vm/c$i.qcow2") || exit 1
  echo "$r $(jq -r '.pivot_seconds * 1000' "$work/cmd.out")" >>"$work/copy.txt"

  make_overlay "s$i" $((i * 2 + 100)) "$peer_off"
  r=$(pause "$peer_off" virsh -c "$VS_LIBVIRT_URI" snapshot-create-as "$dom" --disk-only --no-metadata --atomic \
    --reuse-external --diskspec "vda,snapshot=external,file=$vm/s$i.qcow2") || exit 1
  echo "$r" >>"$work/peer.txt"
  if [ $((i % 4)) = 0 ] || [ "$i" = "$runs" ]; then
    [ "$(vs_guest_exec "$dom" /bin/sh -c 'dmesg | grep -cE "I/O error|EXT4-fs (error|warning)|Buffer I/O"')" = 0 ] ||
      echo "guest-substitute.sh: the guest's kernel logged I/O or ext4 errors" >&2
    echo "(the disk's chain is $(qemu-img info -U --backing-chain --output=json "$(top_image)" | jq length) images deep after run $i)"
  fi
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "nan" }'; }
col() { awk -v c="$2" '{ print $c }' "$work/$1.txt" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
ms() { awk -v v="$1" 'BEGIN { printf "%.1f", v }'; }
peer=$(col peer 1)
printf '%-52s %10s %10s %10s %10s\n' "median of $runs runs, ms" control reopen copy "virsh snap"
printf '%-52s %10s %10s %10s %10s\n' "longest gap between the guest's O_DIRECT reads" \
  "$(ms "$(col control 1)")" "$(ms "$(col reopen 1)")" "$(ms "$(col copy 1)")" "$(ms "$peer")"
printf '%-52s %10s %10s %10s\n' "  to the peer's" "" "$(ratio "$(col reopen 1)" "$peer")" "$(ratio "$(col copy 1)" "$peer")"
printf '%-52s %10s %10s %10s %10s\n' "the gap across the switch (the block's new content)" "" "$(ms "$(col reopen 3)")" "$(ms "$(col copy 3)")" "$(ms "$(col peer 3)")"
printf '%-52s %10s %10s %10s\n' "  to the peer's" "" "$(ratio "$(col reopen 3)" "$(col peer 3)")" "$(ratio "$(col copy 3)" "$(col peer 3)")"
printf '%-52s %10s %10s %10s\n' "what vmscope reports (the reopen's, the pivot's)" "" "$(ms "$(col reopen 4)")" "$(ms "$(col copy 4)")"
printf '%-52s %10s %10s %10s %10s\n' "the command's wall time" "$(col control 2)" "$(col reopen 2)" "$(col copy 2)" "$(col peer 2)"
for f in control reopen copy peer; do
  echo "  $f, each run's longest gap and gap across the switch: $(awk '{ printf "%.1f/%.1f ", $1, $3 }' "$work/$f.txt")"
done
