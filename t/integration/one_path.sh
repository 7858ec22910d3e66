#!/usr/bin/env bash
# One code path (issue 18): the CLI (vmscope drift --pool), the plugin (vmscope_drift in the real
# collectd) and the bench (alarm_calibration --pool) raise the same alarms for the same
# documents: each alarm as (VM, key, severity), compared as sets, the difference shown when
# they differ. The pool: ten web servers (two alone with a setting: failures among 9 agreeing
# close peers; a team's tweak on two: no alarm), three databases (one alone among 2: a
# warning) and a build server with no close peers (unique: no alarm).
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
command -v collectd >/dev/null || command -v /usr/sbin/collectd >/dev/null || bail "collectd is not installed (scripts/install-deps.sh installs it)"
. "$VS_SRCDIR/t/lib/collectd.sh"
work=$(tmpdir)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
chmod 755 "$work" # the notification script runs as nobody
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
settings() { # PREFIX COUNT: sysctl lines of a kind of machine of its own
  local k
  for k in $(seq 1 "$2"); do printf '%s.tunable_%d = %d\n' "$1" "$k" "$k"; done
}

vms=()
for i in 01 02 03 04 05 06 07 08 09 10; do vms+=("web-$i"); done
vms+=(db-01 db-02 db-03 build-01)
for n in "${vms[@]}"; do
  t=$work/trees/$n
  mk "$t/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
  mk "$t/etc/hostname" "$n\n"
  mk "$t/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\n'
  mk "$t/etc/sysctl.conf" 'vm.swappiness = 60\n'
  case $n in
  web-*) mk "$t/etc/sysctl.d/60-web.conf" "$(settings net.web 12)\n" ;;
  db-*) mk "$t/etc/sysctl.d/60-db.conf" "$(settings kernel.db 12)\nvm.dirty_ratio = 5\n" ;;
  build-*) mk "$t/etc/sysctl.d/60-build.conf" "$(settings fs.build 30)\n" ;;
  esac
done
mk "$work/trees/web-03/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\nPermitRootLogin yes\n'
mk "$work/trees/web-05/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\nMaxAuthTries 10\n'
for n in web-07 web-08; do mk "$work/trees/$n/etc/sysctl.conf" 'vm.swappiness = 10\n'; done
mk "$work/trees/db-02/etc/sysctl.d/60-db.conf" "$(settings kernel.db 12)\nvm.dirty_ratio = 40\n"
# A pool as vmscope_snapshot writes it: POOL/<uuid>/<time>.json, taken now (the plugin forgets
# VMs with no snapshot in the last day, ForgetAfter).
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k=0
for n in "${vms[@]}"; do
  k=$((k + 1))
  uuid=$(printf '00000000-0000-4000-8000-%012d' "$k")
  mkdir -p "$work/pool/$uuid"
  "$VMSCOPE" inspect "$work/trees/$n" |
    jq --arg id "$uuid" --arg n "$n" '.id = $id | .name = $n | .taken_at = $t' --arg t "$now" \
      >"$work/pool/$uuid/$(date -u -d "$now" +%Y%m%dT%H%M%SZ).json" || bail "inspect $n"
done

# The CLI.
"$VMSCOPE" drift --pool "$work/pool" --all --format json --top 0 >"$work/cli.json"
ok $? "vmscope drift --pool --all exits 0"
jq -r '.[] | .name as $vm | .findings[] | select((.waived | not) and .severity != "info")
  | [$vm, .key, .severity] | @tsv' "$work/cli.json" | sort >"$work/cli.tsv"
is "$(cut -f1,3 "$work/cli.tsv" | tr '\t\n' ': ' | sed 's/ $//')" \
  "db-02:warning web-03:failure web-05:failure" \
  "the CLI alarms on the three VMs alone with a setting (a warning among 2 peers, failures among 9)"
is "$(jq -r '.[] | select(.name == "build-01") | "\(.unique) \(.alarms)"' "$work/cli.json")" "true 0" \
  "the build server has no close peers: unique, no alarm"

# The bench's core path.
"${VS_RUN[@]}" "$VS_BUILDDIR/bench/alarm_calibration" --pool "$work/pool" >"$work/bench.jsonl"
ok $? "alarm_calibration --pool exits 0"
jq -r '[.vm, .key, .severity] | @tsv' "$work/bench.jsonl" | sort >"$work/bench.tsv"
diff -u "$work/cli.tsv" "$work/bench.tsv" >"$work/bench.diff"
ok $? "the bench raises the CLI's alarms, no more, no fewer"
[ -s "$work/bench.diff" ] && sed 's/^/#   /' "$work/bench.diff"

# The plugin, in the real collectd: each notification through NotificationExec (which gives
# its meta data: the whole key, the VM's name and the severity).
mkdir -m 0777 "$work/notes"
cat >"$work/notify.sh" <<EOF
#!/bin/sh
cat >"$work/notes/\$(date +%s%N).\$\$"
EOF
chmod 755 "$work/notify.sh"
plugindir=$(vs_plugin_dir "$work") || bail "make install failed: $(tail -n 5 "$work/install.log")"
{ vs_collectd_conf "$work" "$plugindir"; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin exec
<Plugin exec>
  NotificationExec "nobody" "$work/notify.sh"
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$work/pool"
  Interval 1
  Top 0
</Plugin>
CONF
vs_collectd_env
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/collectd.out" 2>&1 &
pid=$!
# The worker publishes a round's metrics after its notifications: once every VM has its
# count-alarms, the first round's alarms are sent; their sum says how many notes to wait for.
csv() { find "$work/csv" -path "*/vmscope_drift-$1/count-alarms-*" 2>/dev/null | head -n1; }
all_counted() {
  local n
  for n in "${vms[@]}"; do [ -n "$(csv "$n")" ] || return 1; done
}
wait_for 60 all_counted
ok $? "vmscope_drift ranked the pool's ${#vms[@]} VMs"
plugin_alarms=0
for n in "${vms[@]}"; do
  f=$(csv "$n")
  v=$(sed -n 2p "$f" 2>/dev/null | cut -d, -f2)
  v=${v%%.*}
  plugin_alarms=$((plugin_alarms + ${v:-0}))
done
alarm_notes() {
  local f
  for f in "$work"/notes/*; do
    [ -f "$f" ] && grep -qx 'Type: config_drift' "$f" && grep -qxE 'Severity: (WARNING|FAILURE)' "$f" && echo "$f"
  done
}
all_noted() { [ "$(alarm_notes | wc -l)" -ge "$plugin_alarms" ]; }
wait_for 30 all_noted
ok $? "its config_drift notes arrived ($(alarm_notes | wc -l) of the $plugin_alarms alarms it counted)"
for f in $(alarm_notes); do
  printf '%s\t%s\t%s\n' "$(sed -n 's/^name: //p' "$f")" "$(sed -n 's/^key: //p' "$f")" \
    "$(sed -n 's/^Severity: //p' "$f" | tr 'A-Z' 'a-z')"
done | sort >"$work/plugin.tsv"
diff -u "$work/cli.tsv" "$work/plugin.tsv" >"$work/plugin.diff"
ok $? "the plugin notifies the CLI's alarms, no more, no fewer"
[ -s "$work/plugin.diff" ] && sed 's/^/#   /' "$work/plugin.diff"
is "$plugin_alarms" "$(wc -l <"$work/cli.tsv")" "and counts as many in count-alarms"
kill "$pid"
wait "$pid" 2>/dev/null
pid=
grep -E 'AddressSanitizer|runtime error' "$work/collectd.out" >&2
is $? 1 "no sanitizer report"
done_testing
