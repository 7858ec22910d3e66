#!/usr/bin/env bash
# vmscope_action hosts the proxy agent inside the real collectd: it maps the running domains of
# a private libvirtd (QEMU driver) into a real etcd, and a message routed to one of them comes
# back with that domain's real answer (its agent is not connected: there is no guest OS).
# Without etcd, the proxy's own socket (mode 0600) is the way in, tested against the real
# qemu-ga.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/libvirtd.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
work=$(tmpdir)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; vs_libvirtd_stop; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
command -v etcd >/dev/null && command -v qemu-ga >/dev/null || { skip 1 "etcd or qemu-ga is not installed"; done_testing; exit $?; }

# Embedded mode: no etcd, a local proxy socket.
qemu-ga -m unix-listen -p "$work/qga.sock" -t "$work" -b guest-shutdown,guest-exec,guest-file-open,guest-file-write >"$work/qga.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -S "$work/qga.sock" ] && break; sleep 0.1; done
"$VMSCOPE" fleet proxy --socket "$work/proxy.sock" --host local --vm "00000000-0000-4000-8000-0000000000a1:local-01:unix:$work/qga.sock" >"$work/local.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -S "$work/proxy.sock" ] && break; sleep 0.1; done
is "$(stat -c %a "$work/proxy.sock")" 600 "without etcd the proxy serves a local socket, mode 0600"
is "$("$VMSCOPE" send --proxy-socket "$work/proxy.sock" --compact local-01 '{"execute":"guest-ping"}')" "{}" \
  "vmscope send --proxy-socket reaches the agent through it"
"$VMSCOPE" send --proxy-socket "$work/proxy.sock" other '{"execute":"guest-ping"}' 2>&1 | grep -q not_configured
ok $? "a VM the proxy does not serve is not_configured"

if ! vs_libvirtd_start "$work/libvirt"; then
  skip 4 "no private libvirtd: $VS_LIBVIRT_WHY"
  done_testing
  exit $?
fi
chmod 755 "$work"
qemu-img create -q -f qcow2 "$work/a.qcow2" 16M && chmod a+rw "$work/a.qcow2"
channel="<channel type='unix'><source mode='bind' path='$work/agent.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
vs_domain_xml vs-action-1 "$work/a.qcow2" "$channel" >"$work/a.xml"
virsh -c "$VS_LIBVIRT_URI" create "$work/a.xml" >/dev/null 2>&1; ok $? "a domain with an agent channel runs"
port=$((30000 + $$ % 1000 * 2))
store=http://127.0.0.1:$port
etcd --name a1 --data-dir "$work/etcd" --listen-client-urls "$store" --advertise-client-urls "$store" \
  --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
  --initial-cluster "a1=http://127.0.0.1:$((port + 1))" >"$work/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -X POST "$store/v3/kv/range" -d '{"key":"AA=="}' >/dev/null 2>&1 && break; sleep 0.1; done
plugindir=$(vs_plugin_dir "$work")
{ vs_collectd_conf "$work" "$plugindir"; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin vmscope_action
<Plugin vmscope_action>
  FleetStore "$store"
  HostName "hv-1"
  Connection "$VS_LIBVIRT_URI"
  Lease 30
  AgentTimeout 2
</Plugin>
CONF
vs_collectd_env
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/run.out" 2>&1 &
cpid=$!
pids+=($cpid)
for _ in $(seq 1 60); do "$VMSCOPE" fleet ls --store "$store" 2>/dev/null | grep -q vs-action-1 && break; sleep 0.5; done
"$VMSCOPE" fleet ls --store "$store" | grep -qE ' hv-1 +vs-action-1 +libvirt$'; ok $? "vmscope_action maps the running domain to its host"
"$VMSCOPE" send --store "$store" --timeout 20 vs-action-1 '{"execute":"guest-ping"}' >"$work/routed.out" 2>&1
grep -q not_connected "$work/routed.out"; ok $? "a routed guest-ping comes back with the domain's own answer: $(cat "$work/routed.out")"
# Lifecycle events keep the map current at once (the periodic refresh is every 10 s here).
qemu-img create -q -f qcow2 "$work/b.qcow2" 16M && chmod a+rw "$work/b.qcow2"
vs_domain_xml vs-action-2 "$work/b.qcow2" >"$work/b.xml"
virsh -c "$VS_LIBVIRT_URI" create "$work/b.xml" >/dev/null 2>&1
t0=$(date +%s)
for _ in $(seq 1 30); do "$VMSCOPE" fleet ls --store "$store" 2>/dev/null | grep -q vs-action-2 && break; sleep 0.1; done
"$VMSCOPE" fleet ls --store "$store" | grep -q ' vs-action-2 '; ok $? "a domain that starts is in the map within 3 s ($(( $(date +%s) - t0 )) s)"
virsh -c "$VS_LIBVIRT_URI" destroy vs-action-2 >/dev/null 2>&1
for _ in $(seq 1 30); do "$VMSCOPE" fleet ls --store "$store" 2>/dev/null | grep -q vs-action-2 || break; sleep 0.1; done
! "$VMSCOPE" fleet ls --store "$store" | grep -q ' vs-action-2 '; ok $? "and one that stops leaves it within 3 s"
kill -0 "$cpid"; ok $? "collectd keeps running"
done_testing
