#!/usr/bin/env bash
# snapshot-cycle.sh [DOMAINS] [WORKERS]: the real collectd with vmscope_snapshot over libvirt's
# test driver, DOMAINS domains (default 20) whose disks are qcow2 clones (thin overlays) of an
# image of the debootstrap tree, read by the direct backend with WORKERS workers (default 2).
# Prints the full-cycle time and the read callback's time as the plugin reports them
# (duration-cycle, duration-read_callback), and the rate of documents written to the pool.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
n=${1:-20} workers=${2:-2}
[ -f "$build/vmscope_snapshot.la" ] || bash "$top/scripts/build.sh" "$build"
base=${VS_DEBOOTSTRAP_CACHE:-$build/t/cache/debootstrap}/root
bash "$top/scripts/debootstrap-tree.sh" "$base"
work=$(mktemp -d "${TMPDIR:-/tmp}/vs-cycle-XXXXXX")
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/img"
bash "$top/scripts/tree-to-image.sh" "$base" "$work/img/base.qcow2" gpt
VS_BUILDDIR=$build . "$top/t/lib/collectd.sh"
{
  echo "<node>"
  for i in $(seq -w 1 "$n"); do
    qemu-img create -q -f qcow2 -b "$work/img/base.qcow2" -F qcow2 "$work/img/vm-$i.qcow2"
    vs_test_domain "vm-$i" "00000000-0000-4000-8000-0000000$(printf '%05d' "$((10#$i))")" "$work/img/vm-$i.qcow2"
  done
  echo "</node>"
} >"$work/node.xml"
plugindir=$(VS_BUILDDIR=$build vs_plugin_dir "$work")
{ vs_collectd_conf "$work" "$plugindir"; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "test://$work/node.xml"
  Interval 10
  Workers $workers
  DataDir "$work/pool"
</Plugin>
CONF
collectd -f -C "$work/collectd.conf" >"$work/run.out" 2>&1 &
pid=$!
sleep 32 # three cycles
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
csv=$work/csv/vstest/vmscope_snapshot
[ -d "$csv" ] || { echo "snapshot-cycle: no values from the plugin"; tail -n 20 "$work/collectd.log"; exit 1; }
docs=$(find "$work/pool" -name '*.json' | wc -l)
cycles=$(awk -F, 'NR > 1 { print $2 }' "$csv"/duration-cycle-* | uniq)
echo "snapshot-cycle: $n domains on libvirt's test driver, qcow2 clones of the debootstrap image, direct backend, $workers workers, $(nproc) cores"
echo "full cycles (s): $(echo $cycles | tr ' ' ',') (target <= 10 s)"
awk -F, 'NR > 1 { print $2 }' "$csv"/duration-read_callback-* | sort -g |
  awk '{ v[NR] = $1 } END { printf "read callback: median %.3f ms, p90 %.3f ms, max %.3f ms over %d calls, %d values each (target <= 1 ms)\n", v[int((NR + 1) / 2)] * 1e3, v[int(NR * 0.9 + 0.5)] * 1e3, v[NR] * 1e3, NR, '"$n"' * 8 + 3 }'
echo "documents written to the pool: $docs ($(awk -F, 'NR > 1 { print $2 }' "$csv"/count-domains-* | tail -n1) domains per cycle)"
grep -E 'ERROR' "$work/collectd.log" | head -n 3 || true
