#!/usr/bin/env bash
# patchset apply killed (SIGKILL) right after each of its steps on a running VM (real QEMU
# under TCG, the apply's QMP connection relayed by t/lib/qmp_killer.py): after blockdev-add,
# after blockdev-reopen (the set in the running chain, the overlay's header not yet naming it),
# after change-backing-file. Each time the VM keeps running and reading the guest's data, a
# second apply brings the disk to the applied state, and the stopped images pass qemu-img
# check and read as applied.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
command -v qemu-system-x86_64 >/dev/null && command -v python3 >/dev/null || { skip 1 "qemu-system-x86_64 or python3 is not installed"; done_testing; exit $?; }
work=$(tmpdir)
qpid=
trap '[ -n "$qpid" ] && kill "$qpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || bail "no work directory"
QMP="$VS_BUILDDIR/t/lib/qmp_cmd"
qemu-img create -q -f qcow2 base.qcow2 16M
qemu-io -f qcow2 -c "write -P 0xaa 0 16M" base.qcow2 >/dev/null
cp base.qcow2 patched.qcow2
qemu-io -f qcow2 -c "write -P 0xbb 6M 128k" patched.qcow2 >/dev/null
"$VMSCOPE" patchset make -b base.qcow2 -p patched.qcow2 -o set.qcow2 || bail "no patch set"
start_vm() {
  vs_qemu_vm "$work" "" ""
  qpid=$VS_QEMU_PID
}
hmp() { "$QMP" qmp.sock human-monitor-command "$(jq -cn --arg c "$1" '{"command-line": $c}')"; }
vm_read() { vs_nbd_read "$work/nbd.sock" disk "$@"; }
for step in blockdev-add blockdev-reopen change-backing-file; do
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 vm.qcow2
  start_vm
  hmp 'qemu-io vm-fmt "write -P 0xcc 1M 64k"' >/dev/null
  rm -f killer.sock
  python3 "$VS_SRCDIR/t/lib/qmp_killer.py" killer.sock qmp.sock "$step" >killer.out 2>&1 &
  kpid=$!
  for _ in $(seq 1 50); do [ -S killer.sock ] && break; sleep 0.1; done
  "$VMSCOPE" patchset apply --qmp "$work/killer.sock" --device vm-fmt set.qcow2 >apply1.json 2>apply1.err
  rc=$?
  wait "$kpid"
  [ $rc = 137 ] && grep -q "killed .* after $step" killer.out
  ok $? "apply is killed right after $step"
  [ "$("$QMP" qmp.sock query-status | jq -r .status)" = running ] && [ "$(vm_read 0xcc 1M 64k)" = ok ] && [ "$(vm_read 0xaa 9M 64k)" = ok ]
  ok $? "  the VM runs on, reading the guest's data and the base"
  "$VMSCOPE" patchset apply --qmp "$work/qmp.sock" --device vm-fmt set.qcow2 >apply2.json 2>apply2.err
  rc=$?
  [ $rc = 0 ] || grep -q 'already' apply2.err
  ok $? "  a second apply completes it: exit $rc $(head -c 160 apply2.err)"
  if [ "$step" = blockdev-reopen ]; then
    is "$(jq -r .resumed apply2.json)" true "  (it finished the stopped apply: the set was in the chain, the header did not name it)"
  fi
  [ "$(vm_read 0xbb 6M 64k)" = ok ] && [ "$(vm_read 0xcc 1M 64k)" = ok ]
  ok $? "  the running VM reads the patched data and its own"
  [ "$(qemu-img info -U --output=json vm.qcow2 | jq -r '."backing-filename"' | xargs basename)" = set.qcow2 ]
  ok $? "  the overlay's header names the set, so a restart keeps it"
  [ "$("$QMP" qmp.sock x-debug-query-block-graph | jq '[.nodes[].name | select(startswith("vs-patch"))] | length')" = 1 ]
  ok $? "  one layer node in the VM's block graph, not a leftover beside it"
  kill "$qpid"
  wait "$qpid" 2>/dev/null
  qpid=
  reads=$(qemu-io -r -f qcow2 -c "read -P 0xbb 6M 64k" -c "read -P 0xcc 1M 64k" -c "read -P 0xaa 9M 64k" vm.qcow2 2>&1)
  qemu-img check -q vm.qcow2 && qemu-img check -q set.qcow2 && [ "$(grep -c '^read ' <<<"$reads")" = 3 ] && ! grep -q 'verification failed' <<<"$reads"
  ok $? "  stopped, the images pass qemu-img check and read as applied"
done
done_testing
