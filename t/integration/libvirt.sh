#!/usr/bin/env bash
# The real collectd loads vmscope_snapshot and vmscope_drift; libvirt's test driver serves nine
# domains whose disks are real qcow2 images built here, one of them misconfigured. The drift
# plugin must raise exactly that finding; changing another domain's image must give a
# feature_change and a new finding, and reverting it an OKAY.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
[ -x "$COLLECTD" ] || bail "collectd is not installed (scripts/install-deps.sh installs it)"
work=$(tmpdir)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT; [ -n "${KEEP:-}" ] && trap - EXIT
chmod 755 "$work" # the notification script runs as nobody

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
base=$work/trees/base
mk "$base/etc/os-release" 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
mk "$base/etc/ssh/sshd_config" '#PermitRootLogin prohibit-password\nPort 22\nUsePAM yes\n'
mk "$base/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n'
mk "$base/etc/group" 'root:x:0:\n'
mk "$base/etc/sysctl.d/50-base.conf" 'kernel.sysrq = 0\n'
mk "$base/var/lib/dpkg/status" 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n'
mk "$base/lib/systemd/system/ssh.service" '[Install]\nWantedBy=multi-user.target\n'
mkdir -p "$base/etc/systemd/system/multi-user.target.wants"
ln -s /lib/systemd/system/ssh.service "$base/etc/systemd/system/multi-user.target.wants/ssh.service"

mkdir -p "$work/images"
names=()
for i in 01 02 03 04 05 06 07 08 09; do
  n=web-$i
  names+=("$n")
  cp -a "$base" "$work/trees/$n"
  mk "$work/trees/$n/etc/hostname" "$n\n"
done
mk "$work/trees/web-03/etc/ssh/sshd_config" '#PermitRootLogin prohibit-password\nPort 22\nUsePAM yes\nPermitRootLogin yes\n'
cp -a "$work/trees/web-05" "$work/trees/web-05-bad"
mk "$work/trees/web-05-bad/etc/sysctl.d/60-router.conf" 'net.ipv4.ip_forward = 1\n'
built=0
for n in "${names[@]}" web-05-bad; do
  bash "$VS_SRCDIR/scripts/tree-to-image.sh" "$work/trees/$n" "$work/images/$n.qcow2" whole && built=$((built + 1))
done
is $built 10 "ten qcow2 images are built from guest trees"
cp "$work/images/web-05.qcow2" "$work/images/web-05-good.qcow2"

{
  echo "<node>"
  k=0
  for n in "${names[@]}"; do
    k=$((k + 1))
    vs_test_domain "$n" "00000000-0000-4000-8000-0000000000$(printf '%02d' $k)" "$work/images/$n.qcow2" 2 512 \
      "<interface type='network'><source network='default'/><model type='virtio'/></interface>"
  done
  echo "</node>"
} >"$work/node.xml"

mkdir -m 0777 "$work/notes"
: >"$work/waivers"
cat >"$work/notify.sh" <<EOF
#!/bin/sh
cat >"$work/notes/\$(date +%s%N).\$\$"
EOF
chmod 755 "$work/notify.sh"

plugindir=$(vs_plugin_dir "$work")
ok $? "make install into a staging root"
[ -f "$plugindir/vmscope_drift.so" ] && [ -f "$plugindir/vmscope_snapshot.so" ]
ok $? "both plugins are installed"
# Notifications reach $work/notes through NotificationExec, as an operator's hook receives them;
# under ASan through t/lib/notes_plugin.c in the daemon instead: GCC 12's ASan does not hold its
# allocator's locks across fork, and an exec child forked while another thread held one hangs
# before its exec, losing the note (the anomaly WARNING, sent once, in one ASan run of CI's).
if [ "${VS_SANITIZED:-}" = 1 ]; then
  notify_conf="LoadPlugin vstest_notes
<Plugin vstest_notes>
  Directory \"$work/notes\"
</Plugin>"
else
  notify_conf="LoadPlugin exec
<Plugin exec>
  NotificationExec \"nobody\" \"$work/notify.sh\"
</Plugin>"
fi
{ vs_collectd_conf "$work" "$plugindir"; echo "$notify_conf"; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "test://$work/node.xml"
  Domain "web-*"
  Interval 1
  DataDir "$work/pool"
  KeepSnapshots 3
  Workers 2
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$work/pool"
  Interval 1
  ResendInterval 2
  WaiverFile "$work/waivers"
</Plugin>
CONF
vs_collectd_env
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/run.out" 2>&1 &
pid=$!

# Notifications as the exec plugin hands them over: headers, a blank line, the message.
notes() { # TYPE [SEVERITY] [PLUGIN-INSTANCE] -> matching files
  local f
  for f in "$work"/notes/*; do
    [ -f "$f" ] || continue
    grep -qx "Type: $1" "$f" || continue
    [ -z "${2:-}" ] || grep -qx "Severity: $2" "$f" || continue
    [ -z "${3:-}" ] || grep -qx "PluginInstance: $3" "$f" || continue
    echo "$f"
  done
}
has_notes() { [ -n "$(notes "$@")" ]; }
csv_last() { tail -n1 "$work/csv/vstest/$1"-* 2>/dev/null | cut -d, -f2; }

wait_for 60 has_notes config_drift WARNING web-03
ok $? "vmscope_drift raises a config_drift WARNING for web-03 within 60 s"
sleep 3 # a few more rounds: nothing else may appear
f=$(notes config_drift WARNING web-03 | head -n1)
grep -qx 'TypeInstance: sshd_config.PermitRootLogin' "$f"; ok $? "about sshd_config.PermitRootLogin"
grep -q 'PermitRootLogin is yes on web-03; its 8 close peers all have <absent> (alone among them: p = 0.11, score 0.89, rank 1)' "$f"
ok $? "with a message a person reads: $(tail -n1 "$f")"
grep -qx 'key: file:/etc/ssh/sshd_config:PermitRootLogin' "$f"; ok $? "meta carries the full key"
grep -qx 'majority: <absent>' "$f" && grep -qx 'support: 8' "$f" && grep -qE '^score: (0\.888|8\.888[0-9]*e-01)' "$f" && grep -qE '^p: (0\.111|1\.111[0-9]*e-01)' "$f" && grep -qx 'kind: alone' "$f" && grep -qx 'rank: 1' "$f"
ok $? "and the majority value, its support, the score (1 - p, p = 1/9), the kind and the rank"
pairs=$(for f in $(notes config_drift); do grep -E '^(PluginInstance|TypeInstance):' "$f" | tr '\n' ' '; echo; done | sort -u | wc -l)
is "$pairs" 1 "it is the only finding notified: web-01 (writing no default out) and the rest raise none"
# Roles (PeerGroup role): stored beside the pool, and dispatched.
is "$(jq '.vms | length' "$work/pool/analytics.json" 2>/dev/null)" 9 "vmscope_drift writes the roles of the nine VMs beside the pool"
is "$(jq -r '[.vms[] | select(.anomaly >= 0.5) | .name] | join(",")' "$work/pool/analytics.json")" web-03 \
  "web-03, the one that permits root logins, is the only anomalous VM"
# (collectd's exec plugin writes each notification from a process of its own: it may land after
# analytics.json, most of all under ASan)
wait_for 30 has_notes anomaly WARNING web-03
ok $? "and an anomaly WARNING says so"
ls "$work"/csv/vstest/vmscope_drift-web-03/gauge-anomaly-* "$work"/csv/vstest/vmscope_drift-web-03/gauge-role_similarity-* >/dev/null 2>&1
ok $? "gauge-anomaly and gauge-role_similarity are written per VM"
resent() { [ "$(notes config_drift WARNING web-03 | wc -l)" -ge 2 ]; }
wait_for 30 resent
ok $? "ResendInterval 2 sends the active alarm again"
grep -qx 'Host: vstest' "$f"; ok $? "the notification carries the host"

is "$(csv_last vmscope_drift-web-03/count-alarms)" "1.000000" "count-alarms is 1 for web-03"
is "$(csv_last vmscope_drift-web-01/count-alarms)" "0.000000" "and 0 for web-01"
is "$(csv_last vmscope_drift-web-03/gauge-peers)" "8.000000" "gauge-peers is 8"
score=$(csv_last vmscope_drift-web-03/gauge-drift_score)
awk -v s="$score" 'BEGIN { exit !(s > 0.88 && s < 0.89) }'; ok $? "gauge-drift_score is its alarm's, 1 - 1/9 ($score)"

for m in count-settings count-packages count-users count-services count-changed_settings duration-snapshot timestamp-last_snapshot bool-snapshot_ok; do
  ls "$work/csv/vstest/vmscope_snapshot-web-01/$m"-* >/dev/null 2>&1; ok $? "vmscope_snapshot dispatches $m"
done
is "$(csv_last vmscope_snapshot-web-01/count-packages)" "2.000000" "count-packages counts the guest's packages"
is "$(csv_last vmscope_snapshot-web-01/count-users)" "2.000000" "count-users counts its users"
is "$(csv_last vmscope_snapshot-web-01/count-services)" "1.000000" "count-services counts enabled services"

uuid1=00000000-0000-4000-8000-000000000001
# (KeepSnapshots prunes every second: a listed document may be gone by the time it is read, so
# test the glob's names, and read a copy of the newest, which the next two rounds keep)
docs=("$work/pool/$uuid1"/*.json)
[ -e "${docs[-1]}" ]; ok $? "the pool holds web-01's documents under its uuid"
doc=$work/web-01-newest.json
cp "${docs[-1]}" "$doc" 2>/dev/null || cp "$(printf '%s\n' "$work/pool/$uuid1"/*.json | tail -n1)" "$doc"
is "$(jq -r .name "$doc")" web-01 "named after the domain"
is "$(jq -r '.settings["vm:vcpu"] + " " + .settings["vm:devices/disk[vda]/format"] + " " + .settings["vm:devices/interface[1]/model"]' "$doc")" \
  "2 qcow2 virtio" "with the domain's vm: settings from its XML"
is "$(jq -r '.settings["file:/etc/ssh/sshd_config:Port"]' "$doc")" 22 "and the guest's settings from its disk" ||
  jq -c '.skipped' "$doc" | head -c 2000 | sed 's/^/# skipped: /'
is "$(jq -r '.source.kind + " " + .source.backend' "$doc")" "domain direct" "read by the direct backend"
sleep 2
[ "$(ls "$work/pool/$uuid1"/*.json | wc -l)" -le 3 ]; ok $? "KeepSnapshots 3 keeps at most three documents"

# Change web-05's disk: a feature_change, and a finding for what the change set apart.
mv "$work/images/web-05-bad.qcow2" "$work/images/web-05.qcow2.new" && mv "$work/images/web-05.qcow2.new" "$work/images/web-05.qcow2"
wait_for 30 has_notes feature_change "" web-05; ok $? "changing web-05's image gives a feature_change notification"
f=$(notes feature_change "" web-05 | head -n1)
grep -q 'sysctl:net.ipv4.ip_forward' "$f"; ok $? "naming the changed key"
grep -qx 'added: 1' "$f"; ok $? "with the diff summary in meta (added: 1)"
wait_for 30 has_notes config_drift WARNING web-05; ok $? "and vmscope_drift raises a WARNING for web-05"
grep -qx 'TypeInstance: sysctl.net.ipv4.ip_forward' "$(notes config_drift WARNING web-05 | head -n1)"
ok $? "about sysctl.net.ipv4.ip_forward"

# Revert: the finding clears with an OKAY.
cp "$work/images/web-05-good.qcow2" "$work/images/web-05.qcow2.new" && mv "$work/images/web-05.qcow2.new" "$work/images/web-05.qcow2"
wait_for 30 has_notes config_drift OKAY web-05; ok $? "reverting the image clears it with an OKAY"
[ "$(notes feature_change "" web-05 | wc -l)" -ge 2 ]; ok $? "after a second feature_change"

# A waiver (the file is read again every round): the alarm clears with an OKAY, and the
# finding is counted as waived.
printf 'file:/etc/ssh/sshd_config:PermitRootLogin web-03 2099-12-31 root login for the migration (OPS-7)\n' >"$work/waivers"
wait_for 15 has_notes config_drift OKAY web-03; ok $? "waiving web-03's finding clears its alarm with an OKAY"
sleep 2
is "$(csv_last vmscope_drift-web-03/count-waived)" "1.000000" "count-waived is 1"
is "$(csv_last vmscope_drift-web-03/count-alarms)" "0.000000" "and count-alarms 0"

# A disk that disappears is logged once, not every interval.
mv "$work/images/web-09.qcow2" "$work/images/web-09.gone"
sleep 4
n=$(grep -c 'domain web-09' "$work/collectd.log")
is "$n" 1 "a disk that cannot be read is logged once over four intervals"
is "$(csv_last vmscope_snapshot-web-09/bool-snapshot_ok)" "0.000000" "and bool-snapshot_ok says so"
mv "$work/images/web-09.gone" "$work/images/web-09.qcow2"
wait_for 10 grep -q 'domain web-09 works again' "$work/collectd.log"; ok $? "its recovery is logged once too"
kill -0 "$pid" 2>/dev/null; ok $? "collectd kept running"
kill "$pid"; wait "$pid" 2>/dev/null; pid=
grep -E 'ERROR|error' "$work/collectd.log" | grep -v 'domain web-09' >"$work/errors"
[ ! -s "$work/errors" ]; ok $? "nothing else was logged as an error"
[ -s "$work/errors" ] && diag "$(head -n 5 "$work/errors")"
done_testing
