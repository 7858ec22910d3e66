#!/usr/bin/env bash
# patchset.sh [SIZE_GIB]: vmscope patchset make against the qemu-img route
# ("qemu-img create -b PATCHED" + "qemu-img rebase -b BASE"), on SIZE_GIB (default 4) GiB qcow2
# images whose every cluster holds data and of which 1% differ, cold (page cache dropped) and
# warm (the best of three runs); the overlay case (PATCHED an overlay of BASE); and reading
# both images with cat, the floor for any tool that copies them out of the page cache.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
gib=${1:-4}
[ -x "$build/vmscope" ] || bash "$top/scripts/build.sh" "$build"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/vs-patchset-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
size=$((gib * 1024))M
clusters=$((gib * 16384)) # 64 KiB clusters
echo "building ${gib} GiB base and patched images (every cluster allocated, 1% changed)..."
qemu-img create -q -f qcow2 base.qcow2 "$size"
fill=()
for ((g = 0; g < gib; g++)); do fill+=(-c "write -P 0x5a ${g}G 1G"); done # qemu-io caps one request
qemu-io -f qcow2 "${fill[@]}" base.qcow2 >/dev/null
cp base.qcow2 patched.qcow2
changes=()
step=100
for ((c = 7; c < clusters; c += step)); do changes+=(-c "write -P 0xa5 $((c * 65536)) 65536"); done
qemu-io -f qcow2 "${changes[@]}" patched.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 over.qcow2
qemu-io -f qcow2 "${changes[@]}" over.qcow2 >/dev/null
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
secs() { local t0=$1; awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
run_ours() { rm -f set.qcow2*; local t0; t0=$(date +%s.%N); "$build/vmscope" patchset make -b base.qcow2 -p "$1" -o set.qcow2; secs "$t0"; }
run_qemu() {
  rm -f q.qcow2
  local t0; t0=$(date +%s.%N)
  qemu-img create -q -f qcow2 -b patched.qcow2 -F qcow2 q.qcow2
  qemu-img rebase -q -b base.qcow2 -F qcow2 q.qcow2
  secs "$t0"
}
run_cat() { local t0; t0=$(date +%s.%N); cat base.qcow2 patched.qcow2 >/dev/null; secs "$t0"; }
drop; ours_cold=$(run_ours patched.qcow2)
drop; qemu_cold=$(run_qemu)
drop; cat_cold=$(run_cat)
best() { # the fastest of three warm runs of COMMAND
  local a b c
  a=$("$@") b=$("$@") c=$("$@")
  printf '%s\n%s\n%s\n' "$a" "$b" "$c" | sort -n | head -n1
}
ours_warm=$(best run_ours patched.qcow2)
qemu_warm=$(best run_qemu)
cat_warm=$(best run_cat)
qemu-img compare -q set.qcow2 patched.qcow2 && same=identical || same=DIFFERENT
drop; over_cold=$(run_ours over.qcow2)
over=$(run_ours over.qcow2)
qemu-img compare -q set.qcow2 over.qcow2 && same_over=identical || same_over=DIFFERENT
changed=$(jq '[.changed[][1]] | add / 65536' set.qcow2.json)
echo "patchset: ${gib} GiB, $((${#changes[@]} / 2)) of $clusters clusters changed (64 KiB), $(nproc) cores"
printf '%-34s %10s %10s\n' "" cold warm
printf '%-34s %9ss %9ss\n' "vmscope patchset make" "$ours_cold" "$ours_warm"
printf '%-34s %9ss %9ss\n' "qemu-img create -b + rebase" "$qemu_cold" "$qemu_warm"
printf '%-34s %9ss %9ss\n' "cat base patched > /dev/null" "$cat_cold" "$cat_warm"
awk -v o="$ours_cold" -v q="$qemu_cold" -v c="$cat_cold" -v ow="$ours_warm" -v qw="$qemu_warm" -v cw="$cat_warm" \
  'BEGIN { printf "ratio qemu-img / ours: %.1fx cold, %.1fx warm (target >= 2x); ours / cat: %.1fx cold, %.1fx warm (target <= 2x)\n", q / o, qw / ow, o / c, ow / cw
          printf "(cold, no reader of both images beats cat: the best ratio possible here is qemu-img / cat, %.1fx; warm, ours compares the page cache in place)\n", q / c }'
echo "overlay case (PATCHED an overlay of BASE): $over_cold s cold, $over s warm (target <= 0.05 s); result $same_over to the overlay"
echo "the layer reads $same to the patched image ($changed clusters of data)"
