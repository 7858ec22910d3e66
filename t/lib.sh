# t/lib.sh: TAP helpers for the shell tests. Source it, call ok/is/skip, end with done_testing.
set -u
VS_BUILDDIR=${VS_BUILDDIR:-$(pwd)}
VS_SRCDIR=${VS_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
VMSCOPE="$VS_BUILDDIR/vmscope"
# The valgrind suite (scripts/test.sh) runs vmscope and the test programs under memcheck.
VS_RUN=()
if [ "${VS_VALGRIND:-}" = 1 ]; then
  VMSCOPE="$VS_SRCDIR/t/lib/vg-vmscope"
  VS_RUN=("$VS_SRCDIR/t/lib/valgrind.sh")
fi
_n=0
_failed=0
ok() { # CONDITION-EXIT-STATUS DESCRIPTION
  local rc=$1
  shift
  _n=$((_n + 1))
  if [ "$rc" -eq 0 ]; then
    echo "ok $_n - $*"
  else
    echo "not ok $_n - $*"
    _failed=$((_failed + 1))
  fi
}
is() { # GOT WANT DESCRIPTION
  local got=$1 want=$2
  shift 2
  if [ "$got" = "$want" ]; then ok 0 "$*"; else
    ok 1 "$*"
    echo "#   got:  '$got'"
    echo "#   want: '$want'"
  fi
}
skip() { # COUNT REASON
  local i
  for ((i = 0; i < $1; i++)); do
    _n=$((_n + 1))
    echo "ok $_n # SKIP $2"
  done
}
diag() { echo "# $*"; }
bail() {
  echo "Bail out! $*"
  exit 1
}
done_testing() {
  echo "1..$_n"
  [ "$_failed" -eq 0 ]
}
# wait_for SECONDS COMMAND...: polls COMMAND every quarter second until it succeeds (0) or
# SECONDS pass (1).
wait_for() { # SECONDS COMMAND...
  local t=$(($1 * 4))
  shift
  while [ $t -gt 0 ]; do
    "$@" && return 0
    sleep 0.25
    t=$((t - 1))
  done
  return 1
}
tmpdir() { mktemp -d "${TMPDIR:-/tmp}/vstest-XXXXXX"; }
# What a running VM's guest reads: with a disk node exported read-only by the VM's own NBD
# server (nbd-server-start + block-export-add), vs_nbd_read SOCKET EXPORT PATTERN OFFSET LENGTH
# prints "ok" when qemu-io reads PATTERN there, else the first line qemu-io printed. (HMP's
# qemu-io prints its findings on QEMU's stdout, not in the monitor's reply.)
vs_nbd_read() {
  local out
  out=$(qemu-io -r -f raw "nbd+unix:///$2?socket=$1" -c "read -P $3 $4 $5" 2>&1)
  if grep -q '^read ' <<<"$out" && ! grep -q 'verification failed' <<<"$out"; then echo ok; else echo "$out" | head -n 1; fi
}
