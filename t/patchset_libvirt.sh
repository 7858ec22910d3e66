#!/usr/bin/env bash
# patchset apply on a running domain of a private libvirtd (QEMU driver), through libvirt's
# monitor pass-through: the node on the base is found by the set's identity, the domain keeps
# running, reads through it show the patched data, and its overlay's header names the set.
. "${VS_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "$VS_SRCDIR/t/lib/libvirtd.sh"
work=$(tmpdir)
trap 'vs_libvirtd_stop; rm -rf "$work"' EXIT
if ! vs_libvirtd_start "$work/libvirt"; then
  skip 6 "no private libvirtd: $VS_LIBVIRT_WHY"
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
node=$(jq -r .node apply.json)
virsh -c "$VS_LIBVIRT_URI" qemu-monitor-command vs-patch-1 --hmp "qemu-io $node \"read -P 0xbb 2M 64k\"" >read.out 2>&1
is "$(tr -d '\r\n' <read.out)" "" "reads through the running domain show the patched data"
done_testing
