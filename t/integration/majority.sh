#!/usr/bin/env bash
# A fleet-wide change: the real collectd snapshots five guest trees; three of them then get the
# same edit (PermitRootLogin yes), one after the other. vmscope_drift says the key's majority
# moved, once, as a majority_change notification with no plugin instance (it is the fleet's),
# and counts it in count-majority_changes, which contrib/prometheus's VmscopeMajorityChanged
# alerts on. (An edit that several VMs get between two of their snapshots is a rollout, which
# its rollout notification reports instead: t/integration/alarms.sh.)
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
work=$(tmpdir)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
trees=
for i in 1 2 3 4 5; do
  t=$work/trees/vm-$i
  mk "$t/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
  mk "$t/etc/hostname" "vm-$i\n"
  mk "$t/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\n'
  trees+="  Tree \"vm-$i\" \"$t\""$'\n'
done
plugindir=$(vs_plugin_dir "$work")
{ vs_collectd_conf "$work" "$plugindir"; cat <<CONF; } >"$work/collectd.conf"
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
CONF
vs_collectd_env
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/collectd.out" 2>&1 &
pids+=($!)
count_file() { find "$work/csv" -path '*/vmscope_drift/count-majority_changes-*' 2>/dev/null | head -n1; }
last_count() { local f; f=$(count_file) && [ -n "$f" ] && tail -n1 "$f" | cut -d, -f2; }
counted() { [ "$(last_count)" = "$1" ]; }
wait_for 30 counted 0.000000
ok $? "count-majority_changes is dispatched for the fleet (no plugin instance) and starts at 0 ($(count_file))"
sleep 2 # a few rounds over the unchanged fleet
# settled VM: the two newest documents of VM in the pool both have the edit (its previous
# snapshot too: the next VM's edit is no longer a second VM changing the key in one window)
settled() {
  local d docs
  d=$(dirname "$(grep -l "\"name\": *\"$1\"" "$work"/pool/*/*.json 2>/dev/null | head -n1)")
  docs=$(ls "$d"/*.json 2>/dev/null | tail -n2)
  [ "$(echo "$docs" | wc -l)" = 2 ] || return 1
  [ "$(jq -r '.settings["file:/etc/ssh/sshd_config:PermitRootLogin"]' $docs | sort -u)" = yes ]
}
for i in 1 2 3; do
  mk "$work/trees/vm-$i/etc/ssh/sshd_config.new" 'Port 22\nUsePAM yes\nPermitRootLogin yes\n'
  mv "$work/trees/vm-$i/etc/ssh/sshd_config.new" "$work/trees/vm-$i/etc/ssh/sshd_config"
  [ $i = 3 ] || wait_for 30 settled "vm-$i" || diag "vm-$i's edit did not settle in the pool"
done
notes() { grep 'Notification: .*type = majority_change' "$work/collectd.log"; }
key_note() { notes | grep -q 'type_instance = sshd_config.PermitRootLogin, message = PermitRootLogin.s majority moved from <absent> to yes (3 of 5 VMs)'; }
wait_for 30 key_note
ok $? "the edit on three of five VMs moves PermitRootLogin's majority: $(notes | grep -o 'message = PermitRootLogin.*')"
notes | grep -q 'plugin = vmscope_drift, type = majority_change'
ok $? "the notification is the fleet's: no plugin instance"
notes | grep -q 'type_instance = sshd_config.sha256, message = .*majority moved'
ok $? "the file's digest moved with it"
wait_for 10 counted 2.000000
ok $? "count-majority_changes counts both ($(last_count))"
sleep 3
is "$(notes | wc -l)" 2 "and nothing more: a majority moves once"
grep -E 'AddressSanitizer|runtime error' "$work/collectd.out" >&2
is $? 1 "no sanitizer report"
done_testing
