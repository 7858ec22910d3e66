#!/usr/bin/env bash
# drift-accuracy.sh [CASES] [SEED]: the drift accuracy benchmark (bench/drift_accuracy.c) on
# fleets built from real Debian 12 files: a debootstrap tree (cached as the tests cache it) and
# role packages fetched with apt-get download (bench/fleet-roles.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
[ -x "$build/bench/drift_accuracy" ] || { bash "$top/scripts/build.sh" "$build" && make -C "$build" bench/drift_accuracy >/dev/null; }
base=${VS_DEBOOTSTRAP_CACHE:-$build/t/cache/debootstrap/root}
bash "$top/scripts/debootstrap-tree.sh" "$base"
cache=$build/bench/cache
bash "$top/bench/fleet-roles.sh" "$base" "$cache"
# Thousands of small trees are made and removed: on tmpfs when there is one (mkdir costs
# 0.7 ms on this machine's disk, microseconds in memory).
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
work=$(mktemp -d "$shm/vs-accuracy-XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -a "$cache/roles" "$work/roles" # VM trees hard-link to it: same file system
"$build/bench/drift_accuracy" "$work/roles" "$work/fleets" "${1:-240}" "${2:-20261125}"
