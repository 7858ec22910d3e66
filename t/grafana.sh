#!/usr/bin/env bash
# contrib/grafana/vmscope.json, validated without Grafana (not in Debian): the real collectd
# with all three plugins snapshots ten guest trees and exports through write_prometheus, the
# real Prometheus scrapes it, and every panel's query of the dashboard (the VM variable set to
# one of the VMs) is run through Prometheus's HTTP API and must return data.
. "${VS_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
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
port=$((24000 + $$ % 1000 * 2))
{ vs_collectd_conf "$work" "$plugindir"; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Port "$port"
</Plugin>
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
$trees
  DataDir "$work/pool"
  Interval 1
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$work/pool"
  Interval 1
</Plugin>
LoadPlugin vmscope_action
<Plugin vmscope_action>
  <Rule "alert">
    Type "config_drift"
    Action "webhook" "http://127.0.0.1:1/nothing-listens"
    WebhookRetries 0
  </Rule>
</Plugin>
CONF
vs_collectd_env
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/collectd.out" 2>&1 &
pids+=($!)
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: collectd
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:$port"]
YML
pport=$((port + 1))
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
pids+=($!)
api=http://127.0.0.1:$pport/api/v1
query() { curl -s --data-urlencode "query=$1" "$api/query" | jq -r '.data.result | length'; }
has_data() { [ "$(query "$1")" -gt 0 ] 2>/dev/null; }
for _ in $(seq 1 240); do
  has_data 'collectd_vmscope_action_count{vmscope_action="actions_failed"} > 0' &&
    has_data 'collectd_vmscope_drift_gauge{type="anomaly"}' &&
    has_data 'delta(collectd_vmscope_drift_count{vmscope_drift="majority_changes"}[1h]) >= 0' && break
  sleep 0.5
done
has_data 'collectd_vmscope_drift_gauge{type="drift_score"}'
ok $? "Prometheus scrapes vmscope's values from collectd's write_prometheus"
vm=$(curl -s -G --data-urlencode 'match[]=collectd_vmscope_drift_gauge' "$api/label/vmscope_drift/values" | jq -r '.data[0]')
is "$(curl -s -G --data-urlencode 'match[]=collectd_vmscope_drift_gauge' "$api/label/vmscope_drift/values" | jq '.data | length')" 10 \
  "the VM variable's query (label_values) lists the ten VMs"
while IFS=$'\t' read -r title expr; do
  e=${expr//\$vm/$vm}
  n=$(query "$e")
  [ "${n:-0}" -gt 0 ] 2>/dev/null; ok $? "panel \"${title//\$vm/$vm}\": $e returns data ($n series)"
done < <(jq -r '.panels[] | select(.type != "row") | .title as $t | .targets[] | [$t, .expr] | @tsv' "$dash")
done_testing
