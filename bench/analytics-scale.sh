#!/usr/bin/env bash
# analytics-scale.sh [DOCS] [TOKENS]: signatures and roles of bench/analytics_scale.c for
# DOCS (default 100,000) synthetic VMs of TOKENS (default 500) settings, with the growth from a
# tenth of them. Analytics uses two threads for the signatures.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
[ -x "$build/bench/analytics_scale" ] || { bash "$top/scripts/build.sh" "$build" && make -C "$build" bench/analytics_scale >/dev/null; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
"$build/bench/analytics_scale" "${1:-100000}" "${2:-500}"
