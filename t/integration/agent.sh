#!/usr/bin/env bash
# The guest agent channel through libvirt, end to end, on a real QEMU domain under a private
# libvirtd: a domain with an agent channel but no guest OS (so no agent answers) gives the
# clean not_connected error, a domain without one not_configured, and nothing hangs.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/libvirtd.sh"
work=$(tmpdir)
trap 'vs_libvirtd_stop; rm -rf "$work"' EXIT
if ! vs_libvirtd_start "$work/libvirt"; then
  skip 6 "no private libvirtd: $VS_LIBVIRT_WHY"
  done_testing
  exit $?
fi
chmod 755 "$work"
qemu-img create -q -f qcow2 "$work/a.qcow2" 16M
qemu-img create -q -f qcow2 "$work/b.qcow2" 16M
chmod a+rw "$work"/*.qcow2
channel="<channel type='unix'><source mode='bind' path='$work/agent.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
vs_domain_xml vs-agent-1 "$work/a.qcow2" "$channel" >"$work/a.xml"
vs_domain_xml vs-noagent-1 "$work/b.qcow2" >"$work/b.xml"
virsh -c "$VS_LIBVIRT_URI" create "$work/a.xml" >/dev/null 2>"$work/a.err"; ok $? "a domain with an agent channel starts"
virsh -c "$VS_LIBVIRT_URI" create "$work/b.xml" >/dev/null 2>"$work/b.err"; ok $? "and one without"

t0=$(date +%s.%N)
timeout 60 "$VMSCOPE" send --connect "$VS_LIBVIRT_URI" --timeout 2 vs-agent-1 '{"execute":"guest-ping"}' >"$work/a.out" 2>&1
rc=$?
is $rc 1 "guest-ping through libvirt fails when no agent runs in the guest"
grep -q 'not_connected' "$work/a.out"; ok $? "as not_connected: $(cat "$work/a.out")"
awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { exit !(b - a < 10) }'; ok $? "without hanging"
timeout 60 "$VMSCOPE" send --connect "$VS_LIBVIRT_URI" vs-noagent-1 '{"execute":"guest-ping"}' >"$work/b.out" 2>&1
grep -q 'not_configured' "$work/b.out"; ok $? "a domain with no agent channel is not_configured: $(cat "$work/b.out")"
done_testing
