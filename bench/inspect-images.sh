#!/usr/bin/env bash
# bench/inspect-images.sh [N] : N (default 20) qcow2 images of the debootstrap tree, inspected
# with --backend direct, with --backend guestfs (one batched appliance), and by virt-inspector
# one image at a time, all in this run; prints time per image and the ratios.
# VIRT_INSPECTOR_SAMPLE=K runs virt-inspector on the first K images only (default: all N),
# since it takes about half a minute per image under emulation.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
n=${1:-20}
sample=${VIRT_INSPECTOR_SAMPLE:-$n}
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
bash "$top/scripts/build.sh" "$(realpath --relative-to="$top" "$build")"
export VS_DEBOOTSTRAP_CACHE=${VS_DEBOOTSTRAP_CACHE:-$build/t/cache/debootstrap}
tree="$VS_DEBOOTSTRAP_CACHE/root"
[ -f "$tree/.vmscope-complete" ] || (cd "$build" && VS_BUILDDIR="$build" VS_SRCDIR="$top" bash "$top/t/integration/debootstrap.sh" >/dev/null)
work=$(mktemp -d "${TMPDIR:-/var/tmp}/vmscope-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
bash "$top/scripts/tree-to-image.sh" "$tree" "$work/img-01.qcow2" gpt
imgs=("$work/img-01.qcow2")
for i in $(seq 2 "$n"); do
  cp "$work/img-01.qcow2" "$work/img-$(printf %02d "$i").qcow2"
  imgs+=("$work/img-$(printf %02d "$i").qcow2")
done
sync
now() { date +%s.%N; }
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.3f", (b - a) / n }'; }
echo "machine: $(nproc) cores; $n images of $(du -m "$work/img-01.qcow2" | cut -f1) MiB (qcow2, GPT, ext4)"
t0=$(now); "$build/vmscope" inspect --compact --backend direct "${imgs[@]}" >"$work/direct.json"; t1=$(now)
direct=$(per "$t0" "$t1" "$n")
t0=$(now); "$build/vmscope" inspect --compact --backend guestfs "${imgs[@]}" >"$work/guestfs.json"; t1=$(now)
guestfs=$(per "$t0" "$t1" "$n")
t0=$(now)
for img in "${imgs[@]:0:$sample}"; do virt-inspector --format=qcow2 -a "$img" >/dev/null; done
t1=$(now)
vi=$(per "$t0" "$t1" "$sample")
same=$(jq -S '[.[].settings]' "$work/direct.json" | cmp -s - <(jq -S '[.[].settings]' "$work/guestfs.json") && echo yes || echo NO)
echo "  direct:                 $direct s per image"
echo "  guestfs (one appliance): $guestfs s per image"
echo "  virt-inspector:         $vi s per image (over $sample images)"
awk -v d="$direct" -v g="$guestfs" -v v="$vi" 'BEGIN {
  printf "  ratio virt-inspector / direct:  %.0fx\n", v / d
  printf "  ratio virt-inspector / guestfs: %.1fx\n", v / g }'
echo "  direct and guestfs documents have identical settings: $same"
