#!/usr/bin/env bash
# Builds vmscope into DIR (default build/) with the given configure arguments.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
shift || true
cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi >/dev/null 2>&1
mkdir -p "$dir"
cd "$dir"
[ -f Makefile ] && [ config.status -nt ../configure ] || ../configure -q "$@"
make -j"$(nproc)" >/dev/null
