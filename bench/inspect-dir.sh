#!/usr/bin/env bash
# bench/inspect-dir.sh [TREE]: inspect the debootstrap minbase+openssh tree 20 times, in one
# process (as the plugin does) and as 20 separate `vmscope inspect` runs (as a person does),
# and print documents per second, peak RSS and the Augeas share.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
bash "$top/scripts/build.sh" "$(realpath --relative-to="$top" "$build")"
make -s -C "$build" bench/inspect_dir >/dev/null
tree=${1:-}
if [ -z "$tree" ]; then
  export VS_DEBOOTSTRAP_CACHE=${VS_DEBOOTSTRAP_CACHE:-$build/t/cache/debootstrap}
  tree="$VS_DEBOOTSTRAP_CACHE/root"
  [ -f "$tree/.vmscope-complete" ] || (cd "$build" && VS_BUILDDIR="$build" VS_SRCDIR="$top" bash "$top/t/integration/debootstrap.sh" >/dev/null)
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
"$build/bench/inspect_dir" "$tree" 20
t0=$(date +%s.%N)
for _ in $(seq 1 20); do "$build/vmscope" inspect --compact "$tree" >/dev/null; done
t1=$(date +%s.%N)
rss=$( { /usr/bin/env time -f %M "$build/vmscope" inspect --compact "$tree" >/dev/null; } 2>&1 | tail -n1 || true)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "  vmscope inspect as a command: %.1f ms per tree (20 processes, each loading its lenses)\n", (b - a) * 1000 / 20 }'
case "$rss" in ''|*[!0-9]*) ;; *) echo "  vmscope inspect peak RSS: $((rss / 1024)) MiB";; esac
