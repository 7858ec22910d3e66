#!/usr/bin/env bash
# patchset apply on a running domain of a private libvirtd (QEMU driver), through libvirt's
# monitor pass-through: the node on the base is found by the set's identity, the domain keeps
# running, reads through it show the patched data, and its overlay's header names the set.
# Then --method copy: libvirt's shallow block copy onto a new top on the set, and a pivot.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/libvirtd.sh"
work=$(tmpdir)
trap 'vs_libvirtd_stop; rm -rf "$work"' EXIT
if ! vs_libvirtd_start "$work/libvirt"; then
  skip 25 "no private libvirtd: $VS_LIBVIRT_WHY"
  done_testing
  exit $?
fi
chmod 755 "$work"
cd "$work" || bail "no work directory"
qemu-img create -q -f qcow2 base.qcow2 16M
qemu-io -f qcow2 -c "write -P 0xaa 0 16M" base.qcow2 >/dev/null
cp base.qcow2 patched.qcow2
qemu-io -f qcow2 -c "write -P 0xbb 2M 64k" patched.qcow2 >/dev/null
"$VMSCOPE" patchset make -b base.qcow2 -p patched.qcow2 -o set.qcow2; ok $? "a patch set is made"
qemu-img create -q -f qcow2 -b "$work/base.qcow2" -F qcow2 vm.qcow2
chmod a+rw ./*.qcow2
vs_domain_xml vs-patch-1 "$work/vm.qcow2" >dom.xml
virsh -c "$VS_LIBVIRT_URI" create dom.xml >/dev/null 2>&1; ok $? "a domain runs on an overlay of the base"
"$VMSCOPE" patchset apply --connect "$VS_LIBVIRT_URI" --flush 'echo 3 > /proc/sys/vm/drop_caches' vs-patch-1 set.qcow2 >apply.json 2>apply.err
ok $? "patchset apply on the running domain, through libvirt ($(cat apply.err))"
is "$(jq -r .flush.status apply.json)" not_configured "the flush is reported as not done: this domain has no agent channel"
is "$(virsh -c "$VS_LIBVIRT_URI" domstate vs-patch-1 2>/dev/null | head -n1)" running "the domain kept running"
is "$(qemu-img info -U --output=json vm.qcow2 | jq -r '."backing-filename"' | xargs basename)" set.qcow2 "its overlay's header names the set"
# What a guest reads: its disk's top node, exported read-only by the domain's own NBD server
# (its socket in a directory QEMU, not root, can write).
mkdir -m 777 nbd
vm_export() { # DOMAIN
  local node
  node=$(virsh -c "$VS_LIBVIRT_URI" qemu-monitor-command "$1" '{"execute":"query-block"}' |
    jq -r '.return[] | select(.qdev | test("virtio-disk0")) | .inserted."node-name"')
  virsh -c "$VS_LIBVIRT_URI" qemu-monitor-command "$1" "$(jq -cn --arg p "$work/nbd/$1.sock" \
    '{execute: "nbd-server-start", arguments: {addr: {type: "unix", data: {path: $p}}}}')" >/dev/null &&
    virsh -c "$VS_LIBVIRT_URI" qemu-monitor-command "$1" "$(jq -cn --arg n "$node" \
      '{execute: "block-export-add", arguments: {type: "nbd", id: "disk", "node-name": $n, name: "disk"}}')" >/dev/null
}
vm_export vs-patch-1; ok $? "the domain exports its disk over NBD, for reading what the guest sees"
is "$(vs_nbd_read "$work/nbd/vs-patch-1.sock" disk 0xbb 2M 64k)" ok "reads through the running domain show the patched data"
is "$(vs_nbd_read "$work/nbd/vs-patch-1.sock" disk 0xaa 4M 64k)" ok "and the base elsewhere"

# --method copy, on a set that changes the clusters at 2M and 6M, under a guest that wrote 2M.
cp base.qcow2 patched2.qcow2
qemu-io -f qcow2 -c "write -P 0xbb 2M 64k" -c "write -P 0xbb 6M 64k" patched2.qcow2 >/dev/null
"$VMSCOPE" patchset make -b base.qcow2 -p patched2.qcow2 -o fix.qcow2; ok $? "a second patch set is made"
qemu-img create -q -f qcow2 -b "$work/base.qcow2" -F qcow2 vm2.qcow2
# What the guest wrote before: its device does not share writes, so into its overlay first.
qemu-io -f qcow2 -c "write -P 0xcc 2M 64k" vm2.qcow2 >/dev/null
chmod a+rw ./*.qcow2
vs_domain_xml vs-patch-2 "$work/vm2.qcow2" >dom2.xml
virsh -c "$VS_LIBVIRT_URI" create dom2.xml >/dev/null 2>&1; ok $? "a second domain runs on an overlay of the base"
pid=$(cat /run/libvirt/qemu/vs-patch-2.pid 2>/dev/null)
"$VMSCOPE" patchset apply --connect "$VS_LIBVIRT_URI" --method copy vs-patch-2 fix.qcow2 >copy.json 2>copy.err
ok $? "patchset apply --method copy on the running domain ($(cat copy.err))"
diag "pivot took $(jq -r '.pivot_seconds * 1000 | . * 1000 | round / 1000' copy.json) ms"
is "$(jq -r '.method + " " + .disk + " " + (.image | split("/") | last)' copy.json)" "copy vda vm2.fix.qcow2" \
  "it reports the method, the disk and the new top image"
is "$(virsh -c "$VS_LIBVIRT_URI" domstate vs-patch-2 2>/dev/null | head -n1)" running "the domain kept running"
is "$(cat /run/libvirt/qemu/vs-patch-2.pid 2>/dev/null)" "$pid" "in the same QEMU process"
is "$(virsh -c "$VS_LIBVIRT_URI" domblklist vs-patch-2 | awk '$1 == "vda" { print $2 }' | xargs basename)" \
  vm2.fix.qcow2 "the disk now runs on the new top image"
is "$(qemu-img info -U --output=json vm2.fix.qcow2 | jq -r '."backing-filename"' | xargs basename)" fix.qcow2 \
  "whose backing file is the set"
vm_export vs-patch-2; ok $? "the domain exports its disk (now the new top) over NBD"
is "$(vs_nbd_read "$work/nbd/vs-patch-2.sock" disk 0xbb 6M 64k)" ok "the patched cluster shows the patched data"
is "$(vs_nbd_read "$work/nbd/vs-patch-2.sock" disk 0xcc 2M 64k)" ok "the guest's own cluster keeps the guest's data"
is "$(vs_nbd_read "$work/nbd/vs-patch-2.sock" disk 0xaa 8M 64k)" ok "and the others show the base"
is "$(jq -c '[.set_clusters, .shadowed, .shadowed_ranges]' copy.json)" '[2,1,[[2097152,65536]]]' \
  "coverage: of the set's 2 clusters the guest already holds 1, at 2M"
"$VMSCOPE" patchset status --connect "$VS_LIBVIRT_URI" vs-patch-2 >status.json 2>&1
is "$(jq -r '.[0].image' status.json | xargs basename)" fix.qcow2 "patchset status finds the set in the running chain"
"$VMSCOPE" patchset apply --connect "$VS_LIBVIRT_URI" --method copy vs-patch-2 fix.qcow2 >/dev/null 2>again.err
is $? 1 "applying it again is refused"
grep -q 'already in its chain' again.err; ok $? "because the set is in its chain already ($(cat again.err))"
done_testing
