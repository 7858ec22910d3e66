#!/usr/bin/env bash
# valgrind.sh PROGRAM [ARGS...]: runs PROGRAM under valgrind's memcheck for the valgrind suite
# (scripts/test.sh): any invalid access, use of uninitialised memory or definite/indirect leak
# makes it exit 97 and leaves a report in $VS_VG_LOGS (one file per process; test.sh fails the
# suite for every non-empty one). Reachable memory at exit is not a leak here.
logs=${VS_VG_LOGS:-${TMPDIR:-/tmp}/vs-valgrind}
mkdir -p "$logs"
exec valgrind --quiet --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect --num-callers=30 --child-silent-after-fork=yes --keep-debuginfo=yes \
  --suppressions="$(dirname "$0")/valgrind.supp" --log-file="$logs/%p.log" "$@"
