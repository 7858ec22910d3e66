#!/usr/bin/env bash
# The closed loop on a real running guest (issue 20, point 2), through the real collectd and its
# three plugins: a setting changed inside the running guest (PermitRootLogin yes, through its
# agent) -> the next backup-mode snapshot -> a config_drift alarm for that VM among nine stopped
# peers of the same shape -> a <Rule> agent action fixes it inside the guest -> the next snapshot
# -> the alarm clears (OKAY). Routed: vmscope send --store reaches the agent inside the guest
# through the etcd fleet map, past another host's proxy in the map (issue 20, point 4). Then the race a backup snapshot's freeze made (the rule's guest-exec
# refused by a frozen guest, never tried again): the guest is held frozen while the alarm comes,
# the action waits ThawTimeout, fails and is tried again after the thaw, and the alarm clears.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/libvirtd.sh"
. "$VS_SRCDIR/t/lib/guest.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
N=22 # the number of tests, for the skips
work=$(tmpdir)
dom=vs-loop-guest
peers=(vs-loop-peer-1 vs-loop-peer-2 vs-loop-peer-3 vs-loop-peer-4 vs-loop-peer-5 vs-loop-peer-6 vs-loop-peer-7 vs-loop-peer-8 vs-loop-peer-9)
pid=
pids=()
undefine_peers() { vs_guest_undefine "${peers[@]}"; } # definitions outlive libvirtd
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${VS_LIBVIRT_URI:-}" ] && undefine_peers
  vs_libvirtd_stop
  rm -rf "$work"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

# A TCG guest and collectd in memcheck on 2 cores would take many minutes per loop; the same
# plugin paths run under memcheck in action_rules.sh and backup.sh, and t/unit/channel runs
# the thaw wait against a frozen agent.
vs_guest_require $N "an emulated guest; the paths run under memcheck elsewhere"
[ -x "$COLLECTD" ] || bail "collectd is not installed (scripts/install-deps.sh installs it)"
command -v etcd >/dev/null || bail "etcd is not installed (scripts/install-deps.sh installs etcd-server)"
vs_guest_image || bail "$VS_GUEST_WHY"
if ! vs_libvirtd_start "$work/libvirt"; then
  skip $N "no private libvirtd: $VS_LIBVIRT_WHY"
  done_testing
  exit $?
fi
chmod 755 "$work"
undefine_peers # a run killed before its cleanup

if ! vs_guest_boot "$dom" "$work/vm"; then
  ok 1 "the guest boots and its agent answers: $VS_GUEST_WHY"
  skip $((N - 1)) "the guest did not boot"
  done_testing
  exit $?
fi
ok 0 "the guest boots and its agent answers ($VS_GUEST_BOOT_S s; user space at ${VS_GUEST_USERSPACE_S:-?} s guest time)"
# Nine stopped peers of the same shape: the same XML, each on its own overlay of the same base.
vs_guest_peers "$work/vm" "${peers[@]}"
ok $? "nine stopped peers of the same shape are defined"

# The etcd fleet map: this host (hv-a) runs the guest; another host's proxy (hv-b) is in it too.
port=$((27000 + $$ % 1000 * 2))
store=http://127.0.0.1:$port
etcd --name n1 --data-dir "$work/etcd" --listen-client-urls "$store" --advertise-client-urls "$store" \
  --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
  --initial-cluster "n1=http://127.0.0.1:$((port + 1))" >"$work/etcd.log" 2>&1 &
pids+=($!)
etcd_up() { curl -s -X POST "$store/v3/kv/range" -d '{"key":"AA=="}' >/dev/null 2>&1; }
wait_for 30 etcd_up || bail "etcd did not answer on $store: $(tail -n 3 "$work/etcd.log")"
"$VMSCOPE" fleet proxy --store "$store" --host hv-b --lease 10 \
  --vm "00000000-0000-4000-8000-0000000000b1:vs-elsewhere:unix:$work/nothing.sock" >"$work/proxy-b.log" 2>&1 &
pids+=($!)
plugindir=$(vs_plugin_dir "$work")
vs_collectd_env
vs_guest_loop_conf "$work" "$plugindir" "$dom" "FleetStore \"$store\"" 'HostName "hv-a"' >"$work/collectd.conf"
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/run.out" 2>&1 &
pid=$!
log=$work/collectd.log
logged() { grep -q "$1" "$log" 2>/dev/null; }
count() { grep -c "$1" "$log" 2>/dev/null; }
key_note='type = config_drift, type_instance = sshd_config.PermitRootLogin'
alarm='severity = \(WARNING\|FAILURE\)' # alone among 9 agreeing peers: FailureScore's
documents() { [ "$(ls -d "$work"/pool/*/ 2>/dev/null | wc -l)" -ge 10 ] && ls "$work"/pool/*/*.json >/dev/null 2>&1; }
wait_for 120 documents
ok $? "vmscope_snapshot takes the running guest (a backup job) and its nine stopped peers into the pool"
# A drift round over the ten: the peers agree, nothing to alarm on yet.
ranked() { [ "$(jq '.vms | length' "$work/pool/analytics.json" 2>/dev/null)" = 10 ]; }
wait_for 60 ranked
ok $? "vmscope_drift ranks the ten VMs"
logged "$key_note" && ok 1 "no PermitRootLogin alarm before the change" || ok 0 "no PermitRootLogin alarm before the change"

# The loop: a change made inside the running guest, found, fixed inside it, cleared.
# change N: appends PermitRootLogin yes once for try N. A try the agent refused (a snapshot's
# freeze) is tried again; the marker keeps a try that did run, but whose end was not seen,
# from writing it again after the rule fixed it.
change() {
  vs_guest_exec "$dom" /bin/sh -c "[ -e /run/vs-change-$1 ] || { echo 'PermitRootLogin yes' >>/etc/ssh/sshd_config; sync; touch /run/vs-change-$1; }" >/dev/null 2>&1
}
vs_guest_wait 60 change 1
ok $? "PermitRootLogin yes is written inside the running guest through its agent"
t0=$(vs_guest_now)
wait_for 120 logged "$alarm.*$key_note"
ok $? "a config_drift alarm for the guest's PermitRootLogin follows ($(vs_guest_since "$t0") s after the change): $(grep -o "$alarm.*$key_note, message = [^(]*" "$log" | head -n1 | sed 's/.*message = //')"
alarm_s=$(vs_guest_since "$t0")
t1=$(vs_guest_now)
fixes() { count "severity = OKAY.*type = action_result.*rule root-login: agent on $dom done"; }
clears() { count "severity = OKAY.*$key_note"; }
wait_for 120 eval '[ "$(fixes)" -ge 1 ]'
ok $? "the rule's agent action fixes it inside the guest"
wait_for 120 eval '[ "$(clears)" -ge 1 ]'
ok $? "and the next snapshot clears the alarm: config_drift OKAY"
clear_s=$(vs_guest_since "$t1")
diag "change to alarm: $alarm_s s; alarm to clear: $clear_s s (snapshot and drift every 2 s, TCG guest)"
# (tried again while a snapshot's freeze refuses the agent; grep -c's status is not the answer)
count_in_guest() { vs_guest_exec "$dom" /bin/sh -c "grep -c '^PermitRootLogin yes' /etc/ssh/sshd_config; true" >"$work/count" 2>/dev/null; }
vs_guest_wait 30 count_in_guest
is "$(cat "$work/count")" 0 "the guest's sshd_config no longer permits root logins"

# The race: the guest held frozen (as a backup snapshot's freeze would, only longer) when the
# alarm comes. The rule's guest-exec is refused, waits ThawTimeout (3 s), fails and is to be
# tried again; the guest is thawed once that failure is seen; the retry fixes it. A try in
# which the rule's fix ran before the test's freeze held (a snapshot and a drift round fell
# between the change and the freeze) had no overlap: it is thawed, cleared and made again.
freeze() { vs_guest_agent "$dom" '{"execute":"guest-fsfreeze-freeze"}' 10 | grep -q '"return"'; }
thaw() { vs_guest_agent "$dom" '{"execute":"guest-fsfreeze-thaw"}' 10 | grep -q '"return"'; }
frozen() { vs_guest_agent "$dom" '{"execute":"guest-fsfreeze-status"}' | grep -q '"frozen"'; }
refused='rule "root-login": agent on vs-loop-guest failed (attempt 1): .*stayed frozen.*tried again in 2 s'
overlap() { logged "$refused"; }
fixed_since() { [ "$(fixes)" -gt "$1" ]; }
overlap_or_fixed() { overlap || fixed_since "$1"; }
try=1 held=0 # held: 0 once the overlap is made (an exit status)
while :; do
  try=$((try + 1))
  before=$(fixes) cleared=$(clears)
  vs_guest_wait 60 change "$try" || { held=1; break; }
  until freeze; do sleep 0.1; done # refused while a snapshot's own freeze holds
  wait_for 120 overlap_or_fixed "$before" || { held=1; break; }
  overlap && break
  vs_guest_wait 30 thaw
  wait_for 120 eval '[ "$(clears)" -gt "$cleared" ]'
  [ "$try" -lt 6 ] || { held=1; break; }
done
ok $held "PermitRootLogin yes is written again and the guest held frozen before the rule's fix ran ($((try - 1)) tries)"
# what a failed race leaves to read: the rule's runs, the alarms and the snapshots' freezes
race_log() { grep -E 'root-login|config_drift|freeze|thaw|frozen|vs-loop-guest.*(snapshot|backup)' "$log" | tail -n "$1" | cut -c1-400 | sed 's/^/  /' | while IFS= read -r l; do diag "$l"; done; }
[ $held = 0 ] || race_log 22
frozen; ok $? "the guest's file systems are frozen when the alarm's action comes"
ok "$(overlap && echo 0 || echo 1)" "the action, refused by the frozen guest, waits ThawTimeout and fails, to be tried again: $(grep -o 'stayed frozen for [0-9.]* s' "$log" | head -n1)"
logged "severity = FAILURE.*type = action_result.*failed, tried again in 2 s (attempt 2)"
ok $? "its action_result FAILURE says when it is tried again"
cleared=$(clears)
vs_guest_wait 30 thaw
thawed=$(date +%T.%N)
wait_for 60 logged "severity = OKAY.*type = action_result.*rule root-login: agent on $dom done.*(a retry)"
rc=$?
ok $rc "after the thaw the retry fixes it"
[ $rc = 0 ] || { diag "thawed at $thawed"; race_log 24; }
wait_for 120 eval '[ "$(clears)" -gt "$cleared" ]'
ok $? "and the alarm clears again"
# Routed: the map says hv-a runs the guest; the message goes into hv-a's inbox, its proxy
# (vmscope_action) delivers it to the agent inside the guest and answers.
mapped() { "$VMSCOPE" fleet ls --store "$store" >"$work/map.txt" 2>&1 && grep -q "hv-a  *$dom " "$work/map.txt" && grep -q "hv-b  *vs-elsewhere " "$work/map.txt"; }
wait_for 30 mapped
ok $? "the fleet map has the guest on hv-a, and hv-b's VM on hv-b: $(awk 'NR > 1 { printf "%s %s; ", $2, $3 }' "$work/map.txt")"
"$VMSCOPE" send --store "$store" --timeout 30 --allow guest-exec --wait=30 --compact "$dom" \
  '{"execute":"guest-exec","arguments":{"path":"/bin/cat","arg":["/etc/os-release"]}}' >"$work/routed.out" 2>&1
rc=$?
[ $rc = 0 ] && jq -e '.exit_code == 0 and (.output | test("ID=debian"))' "$work/routed.out" >/dev/null
ok $? "vmscope send --store runs a command inside the guest through hv-a's proxy: $(jq -c '{exit_code, output: (.output[0:40])}' "$work/routed.out" 2>/dev/null || head -c 300 "$work/routed.out")"
# (refused while a snapshot's freeze holds: hv-a's proxy waits for the thaw, ThawTimeout)
"$VMSCOPE" send --store "$store" --timeout 30 --compact "$dom" '{"execute":"guest-get-osinfo"}' >"$work/routed2.out" 2>&1
jq -e '.id == "debian"' "$work/routed2.out" >/dev/null
ok $? "and a read-only command gets the agent's own answer: $(cut -c1-160 "$work/routed2.out")"
"$VMSCOPE" send --store "$store" --timeout 30 vs-elsewhere '{"execute":"guest-ping"}' >"$work/routed3.out" 2>&1
[ $? != 0 ] && grep -q 'not_connected\|nothing listens' "$work/routed3.out"
ok $? "hv-b's VM is reached through hv-b, whose agent is not there (not_connected): $(head -c 200 "$work/routed3.out")"
kill "$pid"
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
! kill -0 "$pid" 2>/dev/null; ok $? "collectd stops within 10 s of SIGTERM"
pid=
grep -E 'AddressSanitizer|runtime error' "$work/run.out" >&2; is $? 1 "no sanitizer report"
done_testing
