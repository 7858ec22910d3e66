# t/lib/lib.sh: TAP helpers for the shell tests. Source it, call ok/is/skip, end with done_testing.
set -u
VS_BUILDDIR=${VS_BUILDDIR:-$(pwd)}
VS_SRCDIR=${VS_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
VMSCOPE="$VS_BUILDDIR/vmscope"
# The CLI's parse cache (by default under ~/.cache) in the build tree, shared by the tests.
export XDG_CACHE_HOME="$VS_BUILDDIR/t/cache/xdg"
# The cache holds the running guest's kernel and base image too (t/lib/guest.sh), which QEMU reads
# as libvirt-qemu: whoever makes XDG_CACHE_HOME first may make its parents 0700 (the parse cache
# does), so the shared parent is made, and kept, reachable here.
mkdir -p "$VS_BUILDDIR/t/cache" 2>/dev/null && chmod 755 "$VS_BUILDDIR/t/cache" 2>/dev/null
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
# The hivex and libyal libraries among those COMMAND maps, at start-up or later (dlopen), one
# a line: they are opened on first use (src/core/base/dl.h). Runs COMMAND as it is, not under
# valgrind; its output is dropped.
vs_yal_loaded() { # COMMAND...
  LD_DEBUG=files "$@" 2>&1 >/dev/null | sed -n 's/.*[[:space:]]file=\([^ ]*\) \[0\];.*/\1/p' |
    grep -E '^lib(hivex|fsntfs|fsxfs|vslvm|vhdi|vmdk|bfio)\.' | LC_ALL=C sort -u
}
# vs_copy_source DEST: the project's source files into DEST (made), as a fresh clone has them:
# the files git tracks, or, in a distribution tarball's tree, everything but build directories.
vs_copy_source() {
  mkdir -p "$1" || return 1
  if [ -d "$VS_SRCDIR/.git" ]; then
    git -C "$VS_SRCDIR" ls-files -z | (cd "$VS_SRCDIR" && xargs -0 tar cf -) | tar xf - -C "$1"
  else
    (cd "$VS_SRCDIR" && tar cf - --exclude='./build*' --exclude='./_build' .) | tar xf - -C "$1"
  fi
}
# What a running VM's guest reads: with a disk node exported read-only by the VM's own NBD
# server (nbd-server-start + block-export-add), vs_nbd_read SOCKET EXPORT PATTERN OFFSET LENGTH
# prints "ok" when qemu-io reads PATTERN there, else the first line qemu-io printed. (HMP's
# qemu-io prints its findings on QEMU's stdout, not in the monitor's reply.)
# vs_qemu_vm WORK VM-FILE-OPTS VM-FMT-OPTS [QEMU-ARGS...]: a running VM with no guest OS (TCG,
# 64 MiB): WORK/vm.qcow2 as node vm-fmt (device disk0, share-rw so that HMP's qemu-io can write
# beside it as the guest would) on WORK/base.qcow2 as node base-fmt, each node with the options
# given (",opt=value..."), and QEMU-ARGS; QMP at WORK/qmp.sock; its own NBD server at
# WORK/nbd.sock exporting vm-fmt as "disk". Sets VS_QEMU_PID; QEMU's output in WORK/qemu.log.
vs_qemu_vm() {
  local work=$1 file_opts=$2 fmt_opts=$3 qmp=$VS_BUILDDIR/t/lib/qmp_cmd
  shift 3
  rm -f "$work/qmp.sock" "$work/nbd.sock"
  qemu-system-x86_64 -machine pc,accel=tcg -m 64 -nodefaults -display none \
    -qmp "unix:$work/qmp.sock,server=on,wait=off" \
    -blockdev "driver=file,node-name=base-file,filename=$work/base.qcow2,read-only=on" \
    -blockdev driver=qcow2,node-name=base-fmt,file=base-file,read-only=on \
    -blockdev "driver=file,node-name=vm-file,filename=$work/vm.qcow2$file_opts" \
    -blockdev "driver=qcow2,node-name=vm-fmt,file=vm-file,backing=base-fmt$fmt_opts" \
    -device virtio-blk-pci,drive=vm-fmt,id=disk0,share-rw=on "$@" >"$work/qemu.log" 2>&1 &
  VS_QEMU_PID=$!
  wait_for 5 test -S "$work/qmp.sock" || return 1
  "$qmp" "$work/qmp.sock" nbd-server-start "$(jq -cn --arg p "$work/nbd.sock" '{addr: {type: "unix", data: {path: $p}}}')" >/dev/null &&
    "$qmp" "$work/qmp.sock" block-export-add '{"type":"nbd","id":"disk","node-name":"vm-fmt","name":"disk"}' >/dev/null
}
vs_nbd_read() {
  local out
  out=$(qemu-io -r -f raw "nbd+unix:///$2?socket=$1" -c "read -P $3 $4 $5" 2>&1)
  if grep -q '^read ' <<<"$out" && ! grep -q 'verification failed' <<<"$out"; then echo ok; else echo "$out" | head -n 1; fi
}
