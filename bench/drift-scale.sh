#!/usr/bin/env bash
# drift-scale.sh [DOCS] [KEYS] [THREADS]: population build and ranking speed at fleet scale
# (bench/drift_scale.c), by default 10,000 documents x 2,000 keys on 2 threads, with the
# growth from 1,000 documents.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
[ -x "$build/bench/drift_scale" ] || { bash "$top/scripts/build.sh" "$build" && make -C "$build" bench/drift_scale >/dev/null; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
"$build/bench/drift_scale" "${1:-10000}" "${2:-2000}" "${3:-2}"
