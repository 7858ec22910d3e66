#!/usr/bin/env bash
# Careless plugin configurations (issue 16, items 6, 7, 8, 10), in the real collectd with our
# plugins: each case gives the configuration and the exact outcome. A plugin that cannot work
# refuses its configuration at once, with one log line naming the plugin and the option
# (collectd -T runs the config callbacks; -t only parses the file): a guest-exec rule without
# AllowCommand, a patch set or watch file that is not there, a number that is not one, an
# option given twice. PluginInstanceFormat uuid is one setting the three plugins honour: the
# csv files of vmscope_snapshot and vmscope_drift are under the domain's UUID, and a rule on
# a domain's name still takes vmscope_snapshot's notification and reports under the UUID.
# A domain removed from the host leaves the pool once its newest document is older than
# KeepDays. The SYNOPSIS of collectd-vmscope(5), pasted as it is, is accepted.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
[ -x "$COLLECTD" ] || bail "collectd is not installed (scripts/install-deps.sh installs it)"
work=$(tmpdir)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT; [ -n "${KEEP:-}" ] && trap - EXIT

plugindir=$(vs_plugin_dir "$work")
ok $? "make install into a staging root"
vs_collectd_env

# okd STATUS DESCRIPTION DIAGNOSTICS: ok, and the diagnostics when it failed.
okd() {
  ok "$1" "$2"
  [ "$1" = 0 ] || diag "$3"
}
# run_T FILE BODY: a collectd.conf with BODY, through collectd -T; its log is FILE.log.
run_T() {
  { vs_collectd_conf "$work" "$plugindir" "$1.log"; printf '%s\n' "$2"; } >"$1"
  rm -f "$1.log"
  "${VS_COLLECTD_ENV[@]}" timeout 120 "$COLLECTD" -T -C "$1" >"$1.out" 2>&1
}
# The log without its time stamps.
log_of() { sed 's/^\[[^]]*\] //' "$1.log" 2>/dev/null; }
block() { printf 'LoadPlugin %s\n<Plugin %s>\n%s\n</Plugin>\n' "$1" "$1" "$2"; }

# refused PLUGIN WHAT EXPECTED-LOG-LINE CONFIG-LINES: collectd refuses the configuration, and
# the log has exactly that line.
refused() {
  local f=$work/case.conf
  run_T "$f" "$(block "$1" "$4")"
  grep -q 'Parsing the config file failed' "$f.out" && log_of "$f" | grep -qxF -- "$3"
  okd $? "$2: collectd refuses it, logging: $3" "$(cat "$f.out"; log_of "$f" | grep -v plugin_load | tail -n 5)"
}
# The plugins' configuration errors in a log (not libvirt's absence: -T starts the workers).
config_errors() { grep -E '^vmscope_[a-z]+: ' | grep -v 'connect to libvirt' | grep -E 'unknown option| takes |given twice|refuses|No such|not a|cannot'; }
# accepted PLUGIN WHAT CONFIG-LINES: collectd -T takes it, and logs no error of the plugin.
accepted() {
  local f=$work/case.conf
  run_T "$f" "$(block "$1" "$3")"
  ! grep -q 'Parsing the config file failed' "$f.out" && ! log_of "$f" | config_errors | grep -q .
  okd $? "$2: accepted" "$(cat "$f.out"; log_of "$f" | grep -v plugin_load | tail -n 5)"
}

exec_json='{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/true\"}}'
rule() { printf '  <Rule "fix">\n    Type "config_drift"\n%s\n  </Rule>' "$1"; }

# -- item 6: what cannot work is a configuration error, not a failure when the alarm fires
refused vmscope_action "a guest-exec rule without AllowCommand" \
  'vmscope_action: Rule "fix": its agent action runs "guest-exec", which the guest agent channel refuses: add AllowCommand "guest-exec" to <Plugin vmscope_action>' \
  "$(rule "    Action \"agent\" \"$exec_json\"")"
accepted vmscope_action "the same rule with AllowCommand \"guest-exec\" (after the rule: order does not matter)" \
  "$(rule "    Action \"agent\" \"$exec_json\"")
  AllowCommand \"guest-exec\""
accepted vmscope_action "a read-only agent command (guest-ping) without AllowCommand" \
  "$(rule '    Action "agent" "{\"execute\":\"guest-ping\"}"')"
refused vmscope_action "a patchset action whose file is missing" \
  "vmscope_action: Rule \"fix\": Action \"$work/sets/nosuch.qcow2\": No such file or directory" \
  "$(rule "    Action \"patchset\" \"$work/sets/nosuch.qcow2\"")"
refused vmscope_action "a patchset action naming a directory" \
  "vmscope_action: Rule \"fix\": Action \"$work\": a directory, not a file" \
  "$(rule "    Action \"patchset\" \"$work\"")"
refused vmscope_action "a WebhookCACert that is not there" \
  "vmscope_action: Rule \"fix\": WebhookCACert \"$work/ca.pem\": No such file or directory" \
  "$(rule "    Action \"webhook\" \"https://127.0.0.1:1/\"
    WebhookCACert \"$work/ca.pem\"")"
refused vmscope_snapshot "a WatchFile that is not there" \
  "vmscope_snapshot: WatchFile \"$work/watch\": No such file or directory" \
  "  DataDir \"$work/pool\"
  WatchFile \"$work/watch\""
refused vmscope_snapshot "a Tree whose path is not there" \
  "vmscope_snapshot: Tree \"$work/guests/web-01\": No such file or directory" \
  "  DataDir \"$work/pool\"
  Tree \"web-01\" \"$work/guests/web-01\""
refused vmscope_snapshot "a BackingDir that is not there" \
  "vmscope_snapshot: BackingDir \"$work/images\": No such file or directory" \
  "  DataDir \"$work/pool\"
  BackingDir \"$work/images\""

# -- item 10: every configuration error names the plugin and the option
refused vmscope_snapshot "a word where a number belongs" \
  'vmscope_snapshot: Workers takes exactly one number, not "two"' \
  "  DataDir \"$work/pool\"
  Workers \"two\""
refused vmscope_drift "vmscope_drift's Top as a word" \
  'vmscope_drift: Top takes exactly one number, not "ten"' \
  "  DataDir \"$work/pool\"
  Top \"ten\""
refused vmscope_action "two numbers where one belongs" \
  'vmscope_action: QueueSize takes exactly one number, not 2 values' \
  "  Socket \"$work/proxy.sock\"
  QueueSize 10 20"
refused vmscope_action "a rule's Cooldown as a word" \
  'vmscope_action: Rule "fix": Cooldown takes exactly one number, not "soon"' \
  "$(rule '    Action "webhook" "http://127.0.0.1:1/"
    Cooldown "soon"')"
refused vmscope_snapshot "a boolean that is not one" \
  'vmscope_snapshot: IgnoreSelected takes true or false, not "maybe"' \
  "  DataDir \"$work/pool\"
  IgnoreSelected \"maybe\""

# -- item 4 for the plugins: an option given twice accumulates (lists) or is refused
refused vmscope_snapshot "DataDir given twice" \
  'vmscope_snapshot: DataDir is given twice (it takes one value: give it once)' \
  "  DataDir \"$work/pool\"
  DataDir \"$work/pool2\""
refused vmscope_action "a rule's Type given twice" \
  'vmscope_action: Rule "fix": Type is given twice (it takes one value: give it once)' \
  "$(rule '    Type "feature_change"
    Action "webhook" "http://127.0.0.1:1/"')"
refused vmscope_action "a rule's Type given in Match and on its own line" \
  'vmscope_action: Rule "fix": Type is given twice ("config_drift" and "feature_change"): a notification has one Type' \
  "$(rule '    Match Type "feature_change"
    Action "webhook" "http://127.0.0.1:1/"')"
refused vmscope_action "Socket given twice" \
  'vmscope_action: Socket is given twice (it takes one value: give it once)' \
  "  Socket \"$work/a.sock\"
  Socket \"$work/b.sock\""
refused vmscope_snapshot "two trees of one name" \
  'vmscope_snapshot: Tree "g" is given twice (a name is one tree'"'"'s plugin instance)' \
  "  DataDir \"$work/pool\"
  Tree \"g\" \"$work\"
  Tree \"g\" \"$VS_SRCDIR\""
mkdir -p "$work/bdir1" "$work/bdir2"
accepted vmscope_snapshot "BackingDir twice (a list: both are taken)" \
  "  DataDir \"$work/pool\"
  BackingDir \"$work/bdir1\"
  BackingDir \"$work/bdir2\""
accepted vmscope_action "two AllowCommand lines and two actions (lists)" \
  "  AllowCommand \"guest-exec\"
  AllowCommand \"guest-file-open\"
$(rule "    Action \"agent\" \"$exec_json\"
    Action \"webhook\" \"http://127.0.0.1:1/\"")"

# -- item 10: the SYNOPSIS of collectd-vmscope(5), pasted as printed (DataDir moved into this
# test's directory, so that the snapshot plugin's init creates no directory on the host).
sed -n '/^\.SH SYNOPSIS/,/^\.fi/p' "$VS_SRCDIR/man/collectd-vmscope.5" | sed '1,2d;$d; s/\\-/-/g; s/\\e/\\/g' |
  sed "s|\"/var/lib/collectd/vmscope\"|\"$work/synopsis-pool\"|" >"$work/synopsis.txt"
[ -s "$work/synopsis.txt" ] && grep -q '<Plugin vmscope_action>' "$work/synopsis.txt"
ok $? "the SYNOPSIS is extracted from the man page ($(wc -l <"$work/synopsis.txt") lines)"
run_T "$work/synopsis.conf" "$(cat "$work/synopsis.txt")"
! grep -q 'Parsing the config file failed' "$work/synopsis.conf.out" &&
  ! log_of "$work/synopsis.conf" | config_errors | grep -q .
okd $? "collectd -T accepts the SYNOPSIS as it is" "$(cat "$work/synopsis.conf.out"; log_of "$work/synopsis.conf" | grep vmscope | head -n 5)"

# -- item 8: PluginInstanceFormat uuid, one setting of the three plugins. libvirt's test
# driver serves two domains on qcow2 images built here.
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
for n in web-01 web-02 web-01b; do
  t=$work/trees/$n
  mk "$t/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
  mk "$t/etc/hostname" "${n%b}\n"
  mk "$t/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\n'
  mk "$t/var/lib/dpkg/status" 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n'
done
mk "$work/trees/web-01b/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\nPermitRootLogin yes\n'
mkdir -p "$work/images"
built=0
for n in web-01 web-02 web-01b; do
  bash "$VS_SRCDIR/scripts/tree-to-image.sh" "$work/trees/$n" "$work/images/$n.qcow2" whole && built=$((built + 1))
done
is $built 3 "three qcow2 images are built from guest trees"
u1=00000000-0000-4000-8000-000000000001 u2=00000000-0000-4000-8000-000000000002
{
  echo "<node>"
  vs_test_domain web-01 $u1 "$work/images/web-01.qcow2"
  vs_test_domain web-02 $u2 "$work/images/web-02.qcow2"
  echo "</node>"
} >"$work/node.xml"
# -- item 7: two domains that left the host, with documents in the pool: one last seen 40
# days ago (past KeepDays 30: it leaves the pool), one 2 days ago (kept, newest included).
gone_doc() { # UUID NAME DAYS-AGO
  local t
  t=$(date -u -d "$3 days ago" +%Y-%m-%dT%H:%M:%SZ)
  mkdir -p "$work/pool/$1"
  "$VMSCOPE" inspect "$work/trees/web-02" | jq --arg id "$1" --arg n "$2" --arg t "$t" '.id = $id | .name = $n | .taken_at = $t' \
    >"$work/pool/$1/$(date -u -d "$3 days ago" +%Y%m%dT%H%M%SZ).json"
}
u8=00000000-0000-4000-8000-000000000008 u9=00000000-0000-4000-8000-000000000009
gone_doc $u8 web-08 41
gone_doc $u8 web-08 40
gone_doc $u9 web-09 3
gone_doc $u9 web-09 2
{ vs_collectd_conf "$work" "$plugindir" "$work/uuid.log"; cat <<CONF; } >"$work/uuid.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "test://$work/node.xml"
  DataDir "$work/pool"
  Interval 1
  KeepDays 30
  PluginInstanceFormat uuid
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$work/pool"
  Interval 1
  PluginInstanceFormat uuid
</Plugin>
LoadPlugin vmscope_action
<Plugin vmscope_action>
  PluginInstanceFormat uuid
  <Rule "changed">
    Plugin "vmscope_snapshot"
    Type "feature_change"
    Domain "web-*"
    Action "webhook" "http://127.0.0.1:1/"
    DryRun true
  </Rule>
</Plugin>
CONF
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/uuid.conf" >"$work/uuid.out" 2>&1 &
pid=$!
csv=$work/csv/vstest
exists() { compgen -G "$1" >/dev/null; }
wait_for 60 exists "$csv/vmscope_snapshot-$u1/count-settings-*"
ok $? "vmscope_snapshot's values of web-01 are under its UUID: vmscope_snapshot-$u1/count-settings"
# the changed image: the next snapshot differs, and vmscope_snapshot notifies feature_change
mv "$work/images/web-01b.qcow2" "$work/images/web-01.qcow2"
wait_for 60 grep -q "plugin = vmscope_action, plugin_instance = $u1, type = action_result" "$work/uuid.log"
okd $? "a rule on Domain \"web-*\" takes web-01's feature_change and reports its action_result under the UUID" "$(grep -E 'Notification|vmscope' "$work/uuid.log" | tail -n 5)"
grep -q "plugin = vmscope_snapshot, plugin_instance = $u1, type = feature_change" "$work/uuid.log"
ok $? "vmscope_snapshot's feature_change is under the UUID"
wait_for 60 exists "$csv/vmscope_drift-$u1/gauge-drift_score-*"
ok $? "vmscope_drift's values of web-01 are under its UUID too: vmscope_drift-$u1/gauge-drift_score"
! exists "$csv/vmscope_*-web-0*"
ok $? "no plugin keeps the names: $(cd "$csv" && ls -d vmscope_* | tr '\n' ' ')"
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
[ ! -e "$work/pool/$u8" ]
ok $? "web-08, gone from the host and last snapshotted 40 days ago (KeepDays 30), has left the pool"
is "$(ls "$work/pool/$u9" 2>/dev/null | wc -l)" 2 "web-09, gone 2 days ago, keeps its 2 documents until they are older than KeepDays"
done_testing
