#!/usr/bin/env bash
# patchset.sh [SIZE_GIB] [SHAPE...]: vmscope patchset make against the qemu-img route
# ("qemu-img create -b PATCHED" + "qemu-img rebase -b BASE") and against reading both images
# with cat (the floor for any tool that reads them), on SIZE_GIB (default 1) GiB qcow2 images
# of each shape, cold (page cache dropped) and warm (the best of three runs), all in this run.
# Shapes (default: all):
#   full        every 64 KiB cluster holds data; 64 clusters changed, 16 MiB apart
#   full-2m     the same with 2 MiB clusters
#   sparse      1 cluster in 16 holds data (the rest never written); the same changes
#   fragmented  every cluster holds data, written in a shuffled order, so the file holds the
#               clusters far from their guest order; the same changes
#   overlay     PATCHED an overlay of the full BASE holding the changes (the base is not read)
# Prints a table and each shape's ratios; the last line is the worst shape's.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
gib=${1:-1}
shift || true
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(full full-2m sparse fragmented overlay)
[ -x "$build/vmscope" ] || bash "$top/scripts/build.sh" "$(realpath --relative-to="$top" "$build")"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/vs-patchset-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
mib=$((gib * 1024))
changes() { # the 64 changed 64 KiB clusters, 16 MiB apart (within the disk)
  local step=$((mib / 64)) i
  for ((i = 0; i < 64; i++)); do printf -- '-c\nwrite -P 0xa5 %dM 64k\n' $((i * step + 1)); done
}
mapfile -t change_args < <(changes)
make_shape() { # SHAPE: base.qcow2 and patched.qcow2 of that shape
  rm -f base.qcow2 patched.qcow2
  local cs=65536 fill=() g
  [ "$1" = full-2m ] && cs=2097152
  qemu-img create -q -f qcow2 -o cluster_size=$cs base.qcow2 "${gib}G"
  case $1 in
  full | full-2m | overlay)
    for ((g = 0; g < gib; g++)); do fill+=(-c "write -P 0x5a ${g}G 1G"); done
    ;;
  sparse)
    for ((g = 0; g < mib * 16; g += 16)); do fill+=(-c "write -P 0x5a $((g * 64))k 64k"); done
    ;;
  fragmented)
    for g in $(seq 0 $((mib * 16 - 1)) | shuf --random-source=<(yes)); do fill+=(-c "write -P 0x5a $((g * 64))k 64k"); done
    ;;
  esac
  printf '%s\n' "${fill[@]}" | xargs -d '\n' -n 2000 qemu-io -f qcow2 base.qcow2 >/dev/null
  if [ "$1" = overlay ]; then
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 patched.qcow2
  else
    cp base.qcow2 patched.qcow2
  fi
  qemu-io -f qcow2 "${change_args[@]}" patched.qcow2 >/dev/null
}
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
secs() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
run_ours() { rm -f set.qcow2*; local t0; t0=$(date +%s.%N); "$build/vmscope" patchset make -b base.qcow2 -p patched.qcow2 -o set.qcow2; secs "$t0"; }
run_qemu() {
  rm -f q.qcow2
  local t0; t0=$(date +%s.%N)
  qemu-img create -q -f qcow2 -b patched.qcow2 -F qcow2 q.qcow2
  qemu-img rebase -q -b base.qcow2 -F qcow2 q.qcow2
  secs "$t0"
}
run_cat() { local t0; t0=$(date +%s.%N); cat base.qcow2 patched.qcow2 >/dev/null; secs "$t0"; }
best() { # the fastest of three runs of COMMAND
  local a b c
  a=$("$@") b=$("$@") c=$("$@")
  printf '%s\n%s\n%s\n' "$a" "$b" "$c" | sort -n | head -n1
}
echo "patchset make: ${gib} GiB qcow2 images, 64 clusters of 64 KiB changed; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%-11s %8s %8s %8s %8s %8s %8s  %-9s %-9s %-9s %-9s %s\n' shape "ours" "qemu" "cat" "ours" "qemu" "cat" "q/o cold" "q/o warm" "o/c cold" "o/c warm" result
printf '%-11s %26s %26s\n' "" "--------- cold ---------" "--------- warm ---------"
worst=""
for shape in "${shapes[@]}"; do
  make_shape "$shape"
  drop; oc=$(run_ours)
  drop; qc=$(run_qemu)
  drop; cc=$(run_cat)
  ow=$(best run_ours) qw=$(best run_qemu) cw=$(best run_cat)
  qemu-img compare -q set.qcow2 patched.qcow2 && same=identical || same=DIFFERENT
  line=$(awk -v s="$shape" -v oc="$oc" -v qc="$qc" -v cc="$cc" -v ow="$ow" -v qw="$qw" -v cw="$cw" -v r="$same" \
    'BEGIN { printf "%-11s %7.3fs %7.3fs %7.3fs %7.3fs %7.3fs %7.3fs  %8.1fx %8.1fx %8.1fx %8.1fx %s", s, oc, qc, cc, ow, qw, cw, qc / oc, qw / ow, oc / cc, ow / cw, r }')
  echo "$line"
  # the worst shape: the lowest warm ratio to qemu-img
  worst=$(printf '%s\n%s\n' "$worst" "$line" | awk 'NF { print $(NF-3) + 0, $0 }' | sort -n | head -n1 | cut -d' ' -f2-)
done
echo "targets: qemu-img / ours >= 2x warm and >= 1x cold; ours / cat <= 1.2x (the overlay reads only its own clusters)"
echo "worst shape (warm ratio to qemu-img): $worst"
