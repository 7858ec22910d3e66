#!/usr/bin/env bash
# contrib/: the Prometheus scrape config and alert rules checked and unit-tested with the real
# promtool, and the Alertmanager routes checked with the real amtool and a real Alertmanager
# that receives alerts shaped as vmscope_action posts them.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
for c in promtool amtool prometheus-alertmanager; do
  command -v "$c" >/dev/null || { skip 1 "$c is not installed"; done_testing; exit $?; }
done
work=$(tmpdir)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT
c=$VS_SRCDIR/contrib
cp "$c"/prometheus/* "$work/"
(cd "$work" && promtool check config prometheus.yml) >"$work/check.out" 2>&1
ok $? "promtool check config: the scrape config and its rule file are valid ($(grep -c SUCCESS "$work/check.out") checks)"
(cd "$work" && promtool test rules vmscope.rules.test.yml) >"$work/test.out" 2>&1
ok $? "promtool test rules: every alert fires when it should and not before$(grep -q FAILED "$work/test.out" && echo ": $(head -c 400 "$work/test.out")")"
for a in VmscopeDriftFindings VmscopeDriftFailure VmscopeSnapshotStale VmscopeMajorityChanged VmscopeAnomalousVM VmscopeConfigGroups VmscopeRollout VmscopeUniqueVM VmscopeActionFailures; do
  grep -q "alertname: $a" "$work/vmscope.rules.test.yml"; ok $? "$a has a unit test"
done

am=$c/alertmanager/alertmanager.yml
amtool check-config "$am" >"$work/am-check.out" 2>&1; ok $? "amtool check-config accepts the Alertmanager example"
route() { amtool config routes test --config.file="$am" "$@" 2>/dev/null; }
is "$(route alertname=vmscope_config_drift domain=web-03 key=file:/etc/ssh/sshd_config:PermitRootLogin)" vmscope-drift \
  "vmscope_action's drift alerts go to the drift receiver"
is "$(route alertname=vmscope_action_result)" vmscope-actions "its action results to the actions receiver"
is "$(route alertname=VmscopeSnapshotStale)" vmscope-drift "Prometheus's vmscope alerts to the drift receiver"
is "$(route alertname=VmscopeActionFailures)" vmscope-actions "and action failures to the actions receiver"
is "$(route alertname=Unrelated)" ops "anything else to the default receiver"

# The real Alertmanager with this configuration, receiving an alert as vmscope_action posts it.
port=$((22000 + $$ % 1000 * 2))
prometheus-alertmanager --config.file="$am" --storage.path="$work/am" \
  --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >"$work/am.log" 2>&1 &
pids+=($!)
url=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf "$url/-/ready" >/dev/null && break; sleep 0.1; done
curl -sf "$url/-/ready" >/dev/null; ok $? "Alertmanager starts with the example configuration"
body='[{"labels":{"alertname":"vmscope_config_drift","rule":"alert","host":"hv-07","domain":"web-03","plugin":"vmscope_drift","type":"config_drift","type_instance":"sshd_config.PermitRootLogin","key":"file:/etc/ssh/sshd_config:PermitRootLogin"},"annotations":{"severity":"warning","summary":"PermitRootLogin is yes on web-03"},"startsAt":"'"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)"'","generatorURL":""}]'
curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "$url/api/v2/alerts" >/dev/null
ok $? "it takes a vmscope_action alert"
got=""
for _ in $(seq 1 50); do
  got=$(curl -s "$url/api/v2/alerts" | jq -r '.[] | select(.labels.domain == "web-03") | [.receivers[].name] | join(",")')
  [ -n "$got" ] && break
  sleep 0.1
done
is "$got" vmscope-drift "and routes it to the drift receiver"
# The systemd drop-in, against Debian's collectd.service, as systemd reads it.
if command -v systemd-analyze >/dev/null && [ -f /lib/systemd/system/collectd.service ]; then
  mkdir -p "$work/units/collectd.service.d"
  cp /lib/systemd/system/collectd.service "$work/units/"
  cp "$c/systemd/collectd.service.d/vmscope.conf" "$work/units/collectd.service.d/"
  SYSTEMD_UNIT_PATH="$work/units:" systemd-analyze verify collectd.service >"$work/sd.out" 2>&1
  ! grep -q 'vmscope.conf' "$work/sd.out"; ok $? "systemd-analyze verify reads the collectd drop-in without a complaint"
  grep -qx 'StateDirectory=collectd/vmscope' "$c/systemd/collectd.service.d/vmscope.conf"
  ok $? "it gives the plugins their DataDir as a state directory"
else
  skip 2 "systemd-analyze or collectd.service is missing"
fi
done_testing
