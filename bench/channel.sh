#!/usr/bin/env bash
# channel.sh [N]: guest-ping through the unix transport against the real qemu-ga (in process,
# one channel, N sequential round trips), and the peer: a process spawned per message, as a
# script calling "virsh qemu-agent-command" would (here "vmscope send --agent-socket", which
# is that process minus libvirt).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
n=${1:-5000}
[ -x "$build/bench/channel" ] || { bash "$top/scripts/build.sh" "$build" && make -C "$build" bench/channel >/dev/null; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vs-channel-XXXXXX")
qemu-ga -m unix-listen -p "$work/qga.sock" -t "$work" -b guest-shutdown,guest-exec,guest-file-open,guest-file-write >"$work/qga.log" 2>&1 &
qga=$!
trap 'kill $qga 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do [ -S "$work/qga.sock" ] && break; sleep 0.1; done
"$build/bench/channel" "$work/qga.sock" "$n" | tee "$work/unix.out"
spawn=200
t0=$(date +%s%N)
for _ in $(seq 1 $spawn); do "$build/vmscope" send --compact --agent-socket "$work/qga.sock" '{"execute":"guest-ping"}' >/dev/null; done
t1=$(date +%s%N)
per=$(awk -v a="$t0" -v b="$t1" -v n=$spawn 'BEGIN { printf "%.3f", (b - a) / n / 1e6 }')
p50=$(sed -n 's/.*p50 \([0-9.]*\) ms.*/\1/p' "$work/unix.out")
echo "peer, a process per message: $spawn round trips, $per ms each on average"
awk -v a="$per" -v b="$p50" 'BEGIN { printf "ratio peer / unix p50: %.0fx\n", a / b }'
port=$((27000 + $$ % 1000 * 2))
store=http://127.0.0.1:$port
etcd --name b1 --data-dir "$work/etcd" --listen-client-urls "$store" --advertise-client-urls "$store" \
  --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
  --initial-cluster "b1=http://127.0.0.1:$((port + 1))" >"$work/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 1 100); do curl -s -X POST "$store/v3/kv/range" -d '{"key":"AA=="}' >/dev/null 2>&1 && break; sleep 0.1; done
"$build/vmscope" fleet proxy --store "$store" --host bench --vm "00000000-0000-4000-8000-00000000be01:bench-vm:unix:$work/qga.sock" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
trap 'kill $qga $etcd_pid $proxy_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do "$build/vmscope" fleet ls --store "$store" 2>/dev/null | grep -q bench-vm && break; sleep 0.1; done
"$build/bench/channel" --routed "$store" bench-vm 500
