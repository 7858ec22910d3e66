#!/usr/bin/env bash
# soak.sh [MINUTES] [DOMAINS] [SETTINGS]: the real collectd with the three plugins over libvirt's
# test driver for MINUTES (default 30): DOMAINS domains (default 200) whose disks are thin qcow2
# overlays of one base image, each guest with about SETTINGS settings (default 5000: an
# /etc/sysctl.d file of SETTINGS keys besides the usual files), every hundredth with a value of
# its own so that drift has findings and vmscope_action a rule to run (dry). Snapshots and drift
# every 60 s. Samples collectd's resident memory and open descriptors every 10 s and prints
# them at the start (after the first full cycle) and the end, and every snapshot cycle's
# duration against its interval.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
minutes=${1:-30} n=${2:-200} settings=${3:-5000}
interval=60
[ -f "$build/vmscope_snapshot.la" ] || bash "$top/scripts/build.sh" "$build"
vmscope=$build/vmscope
work=$(mktemp -d "${TMPDIR:-/var/tmp}/vs-soak-XXXXXX")
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
export E2FSPROGS_FAKE_TIME=1700000000
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
tree=$work/tree
mk "$tree/etc/os-release" 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
mk "$tree/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n'
mk "$tree/etc/group" 'root:x:0:\nwww-data:x:33:\n'
mk "$tree/etc/ssh/sshd_config" '#PermitRootLogin prohibit-password\nPort 22\nUsePAM yes\nX11Forwarding yes\n'
mk "$tree/var/lib/dpkg/status" 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n'
awk -v n="$settings" 'BEGIN { for (i = 0; i < n; i++) printf "vm.soak.k%05d = %d\n", i, i * 7 % 1000 }' >"$work/sysctl.conf"
mk "$tree/etc/sysctl.d/50-soak.conf" ""
cp "$work/sysctl.conf" "$tree/etc/sysctl.d/50-soak.conf"
mkdir -p "$work/img" "$work/edits"
VMSCOPE=$vmscope
. "$top/scripts/guest-images.sh"
vs_base_image "$tree" "$work/edits/base.raw" "$work/img/base.qcow2" 16
echo "soak: building $n guests ($settings sysctl keys each) as thin overlays..." >&2
sed 's/^vm.soak.k00007 = .*/vm.soak.k00007 = 4242/' "$work/sysctl.conf" >"$work/edits/odd.conf"
VS_BUILDDIR=$build . "$top/t/lib/collectd.sh"
{
  echo "<node>"
  for i in $(seq -w 1 "$n"); do
    name=vm-$i
    printf '%s\n' "$name" >"$work/edits/hostname"
    set -- /etc/hostname "$work/edits/hostname"
    [ $((10#$i % 100)) != 0 ] || set -- "$@" /etc/sysctl.d/50-soak.conf "$work/edits/odd.conf"
    vs_guest_image "$work/edits/base.raw" "$work/img/base.qcow2" "$work/img/$name.qcow2" "$@"
    vs_test_domain "$name" "00000000-0000-4000-8000-0000000$(printf '%05d' "$((10#$i))")" "$work/img/$name.qcow2"
  done
  echo "</node>"
} >"$work/node.xml"
rm -f "$work/edits/base.raw"
plugindir=$(VS_BUILDDIR=$build vs_plugin_dir "$work")
{ vs_collectd_conf "$work" "$plugindir"; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "test://$work/node.xml"
  Interval $interval
  Workers 2
  KeepSnapshots 3
  DataDir "$work/pool"
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$work/pool"
  Interval $interval
</Plugin>
LoadPlugin vmscope_action
<Plugin vmscope_action>
  <Rule "odd">
    Match Plugin "vmscope_drift" Type "config_drift"
    Action "webhook" "http://127.0.0.1:1/"
    DryRun true
  </Rule>
</Plugin>
CONF
collectd -f -C "$work/collectd.conf" >"$work/run.out" 2>&1 &
pid=$!
end=$(($(date +%s) + minutes * 60))
echo "soak: collectd (pid $pid) with the three plugins for $minutes min; samples every 10 s" >&2
: >"$work/samples"
while [ "$(date +%s)" -lt "$end" ] && kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ { print $2 }' /proc/$pid/status)
  fds=$(ls /proc/$pid/fd | wc -l)
  threads=$(awk '/^Threads/ { print $2 }' /proc/$pid/status)
  echo "$(date +%s) $rss $fds $threads" >>"$work/samples"
  sleep 10
done
kill -0 "$pid" 2>/dev/null || { echo "soak: collectd died" >&2; tail -n 20 "$work/run.out" "$work/collectd.log" >&2; exit 1; }
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=
csv=$work/csv/vstest
cycles=$(awk -F, 'NR > 1 && $2 > 0 { print $2 }' "$csv"/vmscope_snapshot/duration-cycle-* | uniq)
# Warm after three intervals: every guest snapshotted and ranked, the pool at its retention.
warm=$(($(head -n1 "$work/samples" | cut -d' ' -f1) + 3 * interval))
echo "soak: $n domains x ~$settings settings, $minutes min, $(nproc) cores, snapshot and drift every ${interval} s"
awk -v after="$warm" '$1 >= after { if (!s) { s = $2; sf = $3; st = $4 } e = $2; ef = $3; et = $4; if ($2 > m) m = $2; if (!lo || $2 < lo) lo = $2 }
  END { printf "collectd RSS: %.1f MiB after three intervals, %.1f MiB at the end (%+.1f MiB; min %.1f, max %.1f)\nopen descriptors: %d -> %d; threads: %d -> %d\n", s / 1024, e / 1024, (e - s) / 1024, lo / 1024, m / 1024, sf, ef, st, et }' "$work/samples"
echo "snapshot cycles (s): $(echo $cycles | tr ' ' ',')"
echo "$cycles" | awk -v iv="$interval" '{ n++; if ($1 > m) m = $1; if ($1 > iv) late++ } END { printf "%d cycles, the longest %.1f s, %d over the %d s interval\n", n, m, late, iv }'
echo "documents in the pool: $(find "$work/pool" -name '*.json' | wc -l) (KeepSnapshots 3); drift alarms raised: $(grep -c 'type = config_drift' "$work/collectd.log" || true); dry-run actions: $(grep -c 'type = action_result' "$work/collectd.log" || true)"
grep -E 'ERROR' "$work/collectd.log" | head -n 3 || true
