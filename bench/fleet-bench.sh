#!/usr/bin/env bash
# fleet-bench.sh PROGRAM [ARGS...]: runs bench/PROGRAM ROLES WORK ARGS... for the benchmarks on
# fleets built from real Debian 12 files (drift_accuracy, alarm_calibration): a debootstrap
# tree (cached as the tests cache it) and role packages fetched with apt-get download
# (bench/fleet-roles.sh), the VM trees made in a fresh WORK directory removed afterwards.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
prog=$1
shift
build=${VS_BUILDDIR:-$top/build}
[ -x "$build/bench/$prog" ] || { bash "$top/scripts/build.sh" "$build" && make -C "$build" "bench/$prog" >/dev/null; }
base=${VS_DEBOOTSTRAP_CACHE:-$build/t/cache/debootstrap/root}
bash "$top/scripts/debootstrap-tree.sh" "$base"
cache=$build/bench/cache
bash "$top/bench/fleet-roles.sh" "$base" "$cache"
# Thousands of small trees are made and removed: on tmpfs when there is one (mkdir costs
# 0.7 ms on this machine's disk, microseconds in memory).
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
work=$(mktemp -d "$shm/vs-$prog-XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -a "$cache/roles" "$work/roles" # VM trees hard-link to it: same file system
"$build/bench/$prog" "$work/roles" "$work/fleets" "$@"
