# t/lib.sh: TAP helpers for the shell tests. Source it, call ok/is/skip, end with done_testing.
set -u
VS_BUILDDIR=${VS_BUILDDIR:-$(pwd)}
VS_SRCDIR=${VS_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
VMSCOPE="$VS_BUILDDIR/vmscope"
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
tmpdir() { mktemp -d "${TMPDIR:-/tmp}/vstest-XXXXXX"; }
