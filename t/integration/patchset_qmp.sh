#!/usr/bin/env bash
# patchset apply under a running VM: real qemu-system-x86_64 under TCG with no guest OS, its
# disk an overlay on a base with known patterns and a cluster written "by the guest"; after
# apply, reads through the running VM's block node (exported by the VM's own NBD server) show
# patched data where the set changed, the guest's data where it wrote, base data elsewhere, and
# the VM never stopped.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
command -v qemu-system-x86_64 >/dev/null || { skip 1 "qemu-system-x86_64 is not installed"; done_testing; exit $?; }
work=$(tmpdir)
qpid=
trap '[ -n "$qpid" ] && kill "$qpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || bail "no work directory"
QMP="$VS_BUILDDIR/t/lib/qmp_cmd"
qemu-img create -q -f qcow2 base.qcow2 16M
qemu-io -f qcow2 -c "write -P 0xaa 0 16M" base.qcow2 >/dev/null
cp base.qcow2 patched.qcow2
qemu-io -f qcow2 -c "write -P 0xbb 1M 128k" -c "write -P 0xbc 6M 64k" patched.qcow2 >/dev/null
"$VMSCOPE" patchset make -b base.qcow2 -p patched.qcow2 -o set.qcow2; ok $? "a patch set is made"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 vm.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 vm2.qcow2 # a second disk on the same base
vs_qemu_vm "$work" ",discard=unmap" ",discard=unmap,detect-zeroes=unmap,cache.no-flush=on" \
  -blockdev "driver=file,node-name=vm2-file,filename=$work/vm2.qcow2" \
  -blockdev driver=qcow2,node-name=vm2-fmt,file=vm2-file,backing=base-fmt \
  -device virtio-blk-pci,drive=vm2-fmt,id=disk1
ok $? "the VM runs and exports its disk's node over NBD (its own server), for reading what the guest sees"
qpid=$VS_QEMU_PID
hmp() { "$QMP" qmp.sock human-monitor-command "$(jq -cn --arg c "$1" '{"command-line": $c}')"; }
"$QMP" qmp.sock block-export-add '{"type":"nbd","id":"disk2","node-name":"vm2-fmt","name":"disk2"}' >/dev/null || bail "cannot export the second disk"
vm_read() { vs_nbd_read "$work/nbd.sock" disk "$@"; }
# (share-rw lets HMP's qemu-io write beside the guest's device, as the guest would)
is "$(hmp 'qemu-io vm-fmt "write -P 0xcc 1M 64k"')" '""' "the running guest writes a cluster (HMP qemu-io)"
hmp 'qemu-io vm-fmt "write -P 0xcd 3M 64k"' >/dev/null
is "$(vm_read 0xcc 1M 64k)" ok "and reads it back"
is "$(vm_read 0xbb 1088k 64k)" "Pattern verification failed at offset 1114112, 65536 bytes" \
  "before apply the set's clusters read as the base (the check can fail)"
is "$("$QMP" qmp.sock query-status | jq -r .status)" running "the VM runs"
"$VMSCOPE" patchset apply --qmp "$work/qmp.sock" --device nosuch set.qcow2 >/dev/null 2>bad.err; is $? 1 "a node that does not exist is refused"
"$VMSCOPE" patchset apply --qmp "$work/qmp.sock" set.qcow2 >/dev/null 2>two.err; is $? 1 "with two disks on the set's base and none named, apply refuses to guess"
grep -qE 'nodes (vm-fmt, vm2-fmt|vm2-fmt, vm-fmt)\): name one with --device' two.err; ok $? "and names both ($(cat two.err))"
is "$("$QMP" qmp.sock x-debug-query-block-graph | jq -r '[.nodes[].name] | map(select(startswith("vs-patch"))) | length')" 0 "and nothing was added to the VM's block graph"
# The guest's agent, for the flush: the real qemu-ga (here it runs on the test machine).
if command -v qemu-ga >/dev/null; then
  qemu-ga -m unix-listen -p "$work/qga.sock" -t "$work" -b guest-shutdown,guest-file-open,guest-file-write >qga.log 2>&1 &
  gapid=$!
  for _ in $(seq 1 50); do [ -S qga.sock ] && break; sleep 0.1; done
fi
"$VMSCOPE" patchset apply --qmp "$work/qmp.sock" --device vm-fmt --flush 'echo caches dropped' \
  --agent-socket "$work/qga.sock" set.qcow2 >apply.json; ok $? "patchset apply --qmp inserts the set under the running disk"
[ -n "${gapid:-}" ] && kill "$gapid" 2>/dev/null
if command -v qemu-ga >/dev/null; then
  is "$(jq -c '.flush | [.status, .exit_code, .output]' apply.json)" '["ok",0,"caches dropped\n"]' \
    "then the flush command runs in the guest through its agent (guest-exec)"
else
  skip 1 "qemu-ga is not installed"
fi
is "$(jq -c '[.set_clusters, .shadowed]' apply.json)" "[3,1]" "coverage: 3 clusters in the set, 1 already written by the guest"
diag "reopen took $(jq -r '.reopen_seconds * 1000 | . * 1000 | round / 1000' apply.json) ms"
is "$("$QMP" qmp.sock query-status | jq -r .status)" running "the VM never stopped"
is "$(vm_read 0xcc 1M 64k)" ok "through the running VM: the guest's data where it wrote"
is "$(vm_read 0xbb 1088k 64k)" ok "patched data where the set changed"
is "$(vm_read 0xbc 6M 64k)" ok "(both of its ranges)"
is "$(vm_read 0xaa 9M 64k)" ok "base data elsewhere"
# blockdev-reopen resets what it is not given: the node keeps its options.
is "$("$QMP" qmp.sock query-named-block-nodes '{"flat":true}' | jq -c '.[] | select(."node-name" == "vm-fmt") | [.cache."no-flush", .detect_zeroes, .ro]')" \
  '[true,"unmap",false]' "the reopened node keeps its cache mode, zero detection and read-write state"
hmp 'qemu-io vm-fmt "discard 3M 64k"' >/dev/null
is "$(vm_read 0 3M 64k)" ok "and its discard mode (unmap): a cluster the guest discards reads as zeros"
is "$(qemu-img info -U --output=json vm.qcow2 | jq -r '."backing-filename"' | xargs basename)" set.qcow2 "the overlay's header names the set, so a restart keeps it"
# The other disk on the same base gets its own layer node: now the only candidate, it is found.
is "$(vs_nbd_read "$work/nbd.sock" disk2 0xaa 1088k 64k)" ok "the second disk still reads the base where the set changed"
"$VMSCOPE" patchset apply --qmp "$work/qmp.sock" set.qcow2 >apply2.json 2>apply2.err
ok $? "apply with no disk named patches the other disk on the base ($(cat apply2.err))"
is "$(jq -r .node apply2.json)" vm2-fmt "(the second disk's node)"
is "$("$QMP" qmp.sock x-debug-query-block-graph | jq -r '[.nodes[].name | select(startswith("vs-patch"))] | length')" 2 \
  "each disk has its own layer node"
is "$(vs_nbd_read "$work/nbd.sock" disk2 0xbb 1088k 64k)" ok "and the second disk reads the patched data too"
"$VMSCOPE" patchset apply --qmp "$work/qmp.sock" set.qcow2 >/dev/null 2>again.err; is $? 1 "once both run on the set, apply has nothing to do"
grep -q 'runs on the set .* already' again.err; ok $? "and says so ($(cat again.err))"
kill "$qpid"; wait "$qpid" 2>/dev/null; qpid=
qemu-img check -q vm.qcow2 && qemu-img check -q vm2.qcow2 && qemu-img check -q set.qcow2 && qemu-img check -q base.qcow2
ok $? "every image passes qemu-img check"
qemu-io -r -f qcow2 -c "read -P 0xbb 1088k 64k" -c "read -P 0xcc 1M 64k" vm.qcow2 | grep -q 'Pattern verification failed'
is $? 1 "and the stopped disk reads the same"
is "$(qemu-img info -U --output=json vm2.qcow2 | jq -r '."backing-filename"' | xargs basename)" set.qcow2 "as does the second disk's header"
done_testing
