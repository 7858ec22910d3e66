#!/usr/bin/env bash
# patchset.sh [SIZES_GIB] [SHAPE...]: vmscope patchset make against the qemu-img route
# ("qemu-img create -b PATCHED" + "qemu-img rebase -b BASE") and against reading both images
# with cat (the floor for any tool that reads them), on qcow2 images of each size in SIZES_GIB
# (a comma-separated list, default 1: e.g. 1,16,64) and each shape, cold (the page cache
# dropped before each run; the median of VS_BENCH_COLD_RUNS runs, default 3, the tools taking
# turns) and warm (the best of three runs), all in this run. A size whose two images would not fit the
# free disk is skipped, and said so; one whose images would not stay in the page cache (more
# than half the memory available) is measured cold only.
# Shapes (default: all):
#   full        every 64 KiB cluster holds data; 64 clusters changed, spread evenly
#   full-2m     the same with 2 MiB clusters
#   sparse      1 cluster in 16 holds data (the rest never written); the same changes
#   fragmented  every cluster holds data, written in a shuffled order, so the file holds the
#               clusters far from their guest order; the same changes
#   overlay     PATCHED an overlay of the full BASE holding the changes (the base is not read)
# Prints a table and each shape's ratios; the last line is the worst shape's.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
IFS=, read -r -a sizes <<<"${1:-1}"
shift || true
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(full full-2m sparse fragmented overlay)
usage() { echo "patchset.sh: $1 (usage: patchset.sh [SIZES_GIB, e.g. 1,16,64] [full|full-2m|sparse|fragmented|overlay]...)" >&2; exit 2; }
for gib in "${sizes[@]}"; do [[ $gib =~ ^[1-9][0-9]*$ ]] || usage "\"$gib\" is not a size in GiB (a whole number, at least 1)"; done
for shape in "${shapes[@]}"; do
  case $shape in full | full-2m | sparse | fragmented | overlay) ;; *) usage "no shape \"$shape\"" ;; esac
done
[ -x "$build/vmscope" ] || bash "$top/scripts/build.sh" "$(realpath --relative-to="$top" "$build")"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/vs-patchset-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
changes() { # the 64 changed 64 KiB clusters, spread evenly (16 MiB apart at 1 GiB)
  local step=$((mib / 64)) i
  for ((i = 0; i < 64; i++)); do printf -- '-c\nwrite -P 0xa5 %dM 64k\n' $((i * step + 1)); done
}
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
# Timed with bash's own clock: a date process before and after would add its start-up (~5 ms here)
# to both tools' figures and pull small ratios towards 1.
secs() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'; }
run_ours() { rm -f set.qcow2*; local t0; t0=$EPOCHREALTIME; "$build/vmscope" patchset make -b base.qcow2 -p patched.qcow2 -o set.qcow2; secs "$t0"; }
run_qemu() {
  rm -f q.qcow2
  local t0; t0=$EPOCHREALTIME
  qemu-img create -q -f qcow2 -b patched.qcow2 -F qcow2 q.qcow2
  qemu-img rebase -q -b base.qcow2 -F qcow2 q.qcow2
  secs "$t0"
}
run_cat() { local t0; t0=$EPOCHREALTIME; cat base.qcow2 patched.qcow2 >/dev/null; secs "$t0"; }
# Cold: the median of COLD_RUNS runs of each tool, taken in turns, each after the page cache is
# dropped. This machine's disk gave one `cat` of the same two 64 MiB files 57 ms and 178 ms
# within a minute: one cold run of each said more of the disk than of the tools.
cold_runs=${VS_BENCH_COLD_RUNS:-3}
[[ $cold_runs =~ ^[1-9][0-9]*$ ]] || usage "VS_BENCH_COLD_RUNS=\"$cold_runs\" is not a count of runs"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
cold() { # sets oc, qc and cc
  local i o=() q=() c=()
  for ((i = 0; i < cold_runs; i++)); do
    drop; o+=("$(run_ours)")
    drop; q+=("$(run_qemu)")
    drop; c+=("$(run_cat)")
  done
  oc=$(printf '%s\n' "${o[@]}" | median) qc=$(printf '%s\n' "${q[@]}" | median) cc=$(printf '%s\n' "${c[@]}" | median)
}
best() { # the fastest of three runs of COMMAND
  local a b c
  a=$("$@") b=$("$@") c=$("$@")
  printf '%s\n%s\n%s\n' "$a" "$b" "$c" | sort -n | head -n1
}
echo "patchset make: qcow2 images of ${sizes[*]} GiB, 64 clusters of 64 KiB changed; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%-15s %8s %8s %8s %8s %8s %8s  %-9s %-9s %-9s %-9s %s\n' shape "ours" "qemu" "cat" "ours" "qemu" "cat" "q/o cold" "q/o warm" "o/c cold" "o/c warm" result
printf '%-15s %26s %26s\n' "" "--------- cold ---------" "--------- warm ---------"
worst=""
data_mib() { # SHAPE: MiB of data in both images (an overlay holds only the changes)
  case $1 in sparse) echo $((mib / 8)) ;; overlay) echo $((mib + 4)) ;; *) echo $((2 * mib)) ;; esac
}
for gib in "${sizes[@]}"; do
  mib=$((gib * 1024))
  mapfile -t change_args < <(changes)
  for shape in "${shapes[@]}"; do
    name="$shape ${gib}G"
    data=$(data_mib "$shape")
    free_mib=$(($(df -Pm "$work" | awk 'NR == 2 { print $4 }') - 4096))
    avail_mib=$(($(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo) / 1024))
    if [ $((data + 64)) -gt "$free_mib" ]; then
      printf '%-15s skipped: its images need %d MiB, %d MiB free\n' "$name" "$data" "$free_mib"
      continue
    fi
    make_shape "$shape"
    cold
    if [ "$data" -le $((avail_mib / 2)) ]; then
      ow=$(best run_ours) qw=$(best run_qemu) cw=$(best run_cat)
    else
      ow= qw= cw= # they would not stay in the page cache: cold only
    fi
    qemu-img compare -q set.qcow2 patched.qcow2 && same=identical || same=DIFFERENT
    line=$(awk -v s="$name" -v oc="$oc" -v qc="$qc" -v cc="$cc" -v ow="$ow" -v qw="$qw" -v cw="$cw" -v r="$same" \
      'BEGIN { if (ow == "") printf "%-15s %7.3fs %7.3fs %7.3fs %8s %8s %8s  %8.1fx %9s %8.1fx %9s %s (cold only: images over half the memory)", s, oc, qc, cc, "-", "-", "-", qc / oc, "-", oc / cc, "-", r;
               else printf "%-15s %7.3fs %7.3fs %7.3fs %7.3fs %7.3fs %7.3fs  %8.1fx %8.1fx %8.1fx %8.1fx %s", s, oc, qc, cc, ow, qw, cw, qc / oc, qw / ow, oc / cc, ow / cw, r }')
    echo "$line"
    rm -f base.qcow2 patched.qcow2 set.qcow2* q.qcow2
    # the worst shape: the lowest warm ratio to qemu-img
    [ -n "$ow" ] && worst=$(printf '%s\n%s\n' "$worst" "$line" | awk 'NF { print $10 + 0, $0 }' | sort -n | head -n1 | cut -d' ' -f2-)
  done
done
echo "targets: qemu-img / ours >= 2x warm and >= 1x cold; ours / cat <= 1.2x (the overlay reads only its own clusters)"
echo "worst shape (warm ratio to qemu-img): ${worst:-none: no shape was measured warm}"
