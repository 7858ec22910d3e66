#!/usr/bin/env bash
# contrib/grafana/vmscope.json, validated without Grafana (not in Debian): the real collectd
# with all three plugins snapshots ten guest trees and exports through write_prometheus, the
# real Prometheus scrapes it, and every panel's query of the dashboard (the VM variable set to
# one of the VMs) is run through Prometheus's HTTP API and must return data. Twice: with
# PluginInstanceFormat name (ten guest trees) and uuid (the same guests as libvirt test-driver
# domains), the one setting the three plugins share: the dashboard works either way.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
for c in prometheus jq; do
  command -v "$c" >/dev/null || { skip 1 "$c is not installed"; done_testing; exit $?; }
done
if ldd /usr/lib/collectd/write_prometheus.so | grep -q 'not found'; then
  skip 1 "collectd's write_prometheus misses libraries: $(ldd /usr/lib/collectd/write_prometheus.so | grep 'not found' | tr -s ' \n' ' ')"
  done_testing
  exit $?
fi
work=$(tmpdir)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT
dash=$VS_SRCDIR/contrib/grafana/vmscope.json
jq -e '.panels and .templating.list' "$dash" >/dev/null; ok $? "the dashboard is JSON with panels and variables"

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
trees=
for i in 1 2 3 4 5 6 7 8 9 10; do
  t=$work/trees/web-$i
  mk "$t/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
  mk "$t/etc/hostname" "web-$i\n"
  mk "$t/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\n'
  mk "$t/var/lib/dpkg/status" 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n'
  trees+="  Tree \"web-$i\" \"$t\""$'\n'
done
mk "$work/trees/web-3/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\nPermitRootLogin yes\n'
plugindir=$(vs_plugin_dir "$work")
cp /usr/lib/collectd/write_prometheus.so "$plugindir/"
vs_collectd_env

# The same ten guests as libvirt test-driver domains on qcow2 images, for the pass with
# PluginInstanceFormat uuid (a guest tree has no UUID: its plugin instance is its name).
mkdir -p "$work/images"
built=0
{
  echo "<node>"
  for i in 1 2 3 4 5 6 7 8 9 10; do
    bash "$VS_SRCDIR/scripts/tree-to-image.sh" "$work/trees/web-$i" "$work/images/web-$i.qcow2" whole && built=$((built + 1))
    vs_test_domain "web-$i" "00000000-0000-4000-8000-0000000000$(printf '%02d' $i)" "$work/images/web-$i.qcow2"
  done
  echo "</node>"
} >"$work/node.xml"

# run_pass FORMAT SOURCE-LINES: collectd with the three plugins (PluginInstanceFormat FORMAT
# in each) exporting to a real Prometheus; every panel's query, the VM variable set to one of
# the VMs it lists, returns data. Leaves the VM variable's values in $work/FORMAT.vms.
run_pass() {
  local fmt=$1 sources=$2 d=$work/$1 port=$((24000 + $$ % 1000 * 2 + ${3:-0}))
  mkdir -p "$d"
  { vs_collectd_conf "$d" "$plugindir"; cat <<CONF; } >"$d/collectd.conf"
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Port "$port"
</Plugin>
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
$sources
  DataDir "$d/pool"
  Interval 1
  PluginInstanceFormat $fmt
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$d/pool"
  Interval 1
  PluginInstanceFormat $fmt
</Plugin>
LoadPlugin vmscope_action
<Plugin vmscope_action>
  PluginInstanceFormat $fmt
  <Rule "alert">
    Type "config_drift"
    Action "webhook" "http://127.0.0.1:1/nothing-listens"
    WebhookRetries 0
  </Rule>
</Plugin>
CONF
  "${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$d/collectd.conf" >"$d/collectd.out" 2>&1 &
  local cpid=$!
  pids+=($cpid)
  cat >"$d/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: collectd
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:$port"]
YML
  local pport=$((port + 1))
  prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/tsdb" \
    --web.listen-address="127.0.0.1:$pport" >"$d/prometheus.log" 2>&1 &
  local ppid=$!
  pids+=($ppid)
  api=http://127.0.0.1:$pport/api/v1
  for _ in $(seq 1 240); do
    has_data 'collectd_vmscope_action_count{vmscope_action="actions_failed"} > 0' &&
      has_data 'collectd_vmscope_drift_gauge{type="anomaly"}' &&
      has_data 'delta(collectd_vmscope_drift_count{vmscope_drift="majority_changes"}[1h]) >= 0' && break
    sleep 0.5
  done
  has_data 'collectd_vmscope_drift_gauge{type="drift_score"}'
  ok $? "PluginInstanceFormat $fmt: Prometheus scrapes vmscope's values from collectd's write_prometheus"
  local vm
  # the variable's query, label_values(collectd_vmscope_drift_gauge, vmscope_drift)
  curl -s -G --data-urlencode 'match[]=collectd_vmscope_drift_gauge' "$api/label/vmscope_drift/values" | jq -r '.data[]' >"$work/$fmt.vms"
  vm=$(head -n1 "$work/$fmt.vms")
  is "$(wc -l <"$work/$fmt.vms")" 10 "PluginInstanceFormat $fmt: the VM variable's query (label_values) lists the ten VMs ($vm ...)"
  while IFS=$'\t' read -r title expr; do
    e=${expr//\$vm/$vm}
    n=$(query "$e")
    [ "${n:-0}" -gt 0 ] 2>/dev/null
    ok $? "PluginInstanceFormat $fmt: panel \"${title//\$vm/$vm}\": $e returns data ($n series)"
  done < <(jq -r '.panels[] | select(.type != "row") | .title as $t | .targets[] | [$t, .expr] | @tsv' "$dash")
  kill "$cpid" "$ppid" 2>/dev/null
  wait "$cpid" "$ppid" 2>/dev/null
}
query() { curl -s --data-urlencode "query=$1" "$api/query" | jq -r '.data.result | length'; }
has_data() { [ "$(query "$1")" -gt 0 ] 2>/dev/null; }

run_pass name "$trees" 0
is $built 10 "ten qcow2 images are built from the same guest trees, as libvirt test domains"
run_pass uuid "  Connection \"test://$work/node.xml\"" 100
! grep -qv '^00000000-0000-4000-8000-0000000000[01][0-9]$' "$work/uuid.vms"
ok $? "with PluginInstanceFormat uuid the VM variable lists the domains' UUIDs, and the per-VM panels above found data under them"
done_testing
