#!/usr/bin/env bash
# Careless inputs to drift, analyze, similar and report, and to the vmscope_drift plugin: each
# case gives the input a user might type and the exact outcome, the right answer or a refusal
# (status and the line that says what to do instead). Peers are VMs, not files.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
work=$(tmpdir)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }

# Ten web servers; web-07 permits root logins, web-03 also forwards IPv4 (two alarms).
names=()
for i in 01 02 03 04 05 06 07 08 09 10; do
  g=$work/trees/web-$i
  names+=("web-$i")
  mk "$g/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
  mk "$g/etc/hostname" "web-$i\n"
  mk "$g/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\n'
  mk "$g/etc/sysctl.conf" 'vm.swappiness = 60\n'
done
mk "$work/trees/web-07/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\nPermitRootLogin yes\n'
mk "$work/trees/web-03/etc/sysctl.conf" 'vm.swappiness = 60\nnet.ipv4.ip_forward = 1\n'
T=$work/trees

# A pool as vmscope_snapshot writes it: DIR/<uuid>/<time>.json, two snapshots per VM; the older
# one of web-07 does not have its edit yet.
uuid() { printf '00000000-0000-4000-8000-0000000000%s' "$1"; }
for i in 01 02 03 04 05 06 07 08 09 10; do
  "$VMSCOPE" inspect "$T/web-$i" >"$work/web-$i.json" || bail "inspect web-$i"
  d=$work/pool/$(uuid "$i")
  mkdir -p "$d"
  jq --arg id "$(uuid "$i")" --arg n "web-$i" '.id = $id | .name = $n | .taken_at = "2026-11-25T10:00:00Z"' \
    "$work/web-$i.json" >"$d/20261125T100000Z.json"
  jq --arg id "$(uuid "$i")" --arg n "web-$i" '.id = $id | .name = $n | .taken_at = "2026-11-24T10:00:00Z"
    | .settings |= with_entries(select(.key | test("PermitRootLogin|ip_forward") | not))
    | .provenance |= with_entries(.value |= map(select(test("PermitRootLogin|ip_forward") | not)))' \
    "$work/web-$i.json" >"$d/20261124T100000Z.json"
done
# The same fleet as two hosts' pools of five.
for i in 01 02 03 04 05; do mkdir -p "$work/hostA" && cp -r "$work/pool/$(uuid "$i")" "$work/hostA/"; done
for i in 06 07 08 09 10; do mkdir -p "$work/hostB" && cp -r "$work/pool/$(uuid "$i")" "$work/hostB/"; done

# --- a VM is never its own peer -----------------------------------------------------------
others=()
for n in "${names[@]}"; do [ "$n" = web-07 ] || others+=("$T/$n"); done
"$VMSCOPE" drift --target "$T/web-07" "${others[@]}" >"$work/right.json" 2>/dev/null
ok $? "drift --target web-07 over the nine others exits 0"
"$VMSCOPE" drift --target "$T/web-07" "$T"/web-* >"$work/glob.json" 2>"$work/glob.err"
ok $? "drift --target web-07 with a glob that includes web-07 exits 0"
is "$(jq -c '[.samples, .alarms, .findings[0].key]' "$work/glob.json")" \
  "$(jq -c '[.samples, .alarms, .findings[0].key]' "$work/right.json")" \
  "and gives the same answer: web-07 is not one of its own samples (9 samples, 1 alarm)"
grep -q 'note: 1 sample(s) are documents of the target itself' "$work/glob.err"
ok $? "a note on stderr says the target's own document was left out of the samples"
(cd "$T" && "$VMSCOPE" drift --target ./web-07 ../trees/web-07 web-01 web-02 >"$work/rel.json" 2>/dev/null)
is "$(jq .samples "$work/rel.json")" 2 "the same tree by another relative name is the same VM (2 samples, not 3)"

"$VMSCOPE" drift --peer-group fleet --all "$work"/pool/*/*.json >"$work/globpool.json" 2>"$work/globpool.err"
ok $? "drift --all pool/*/*.json exits 0"
is "$(jq -c '[length, (map(.samples) | unique)]' "$work/globpool.json")" "[10,[9]]" \
  "ten VMs, each ranked against 9 peers (not 19 snapshots)"
grep -q 'the sources hold 20 documents of 10 VMs: each VM counts once' "$work/globpool.err"
ok $? "and a note says the 20 documents are 10 VMs"
is "$(jq -r '[.[] | select(.alarms > 0) | .name + ":" + (.alarms | tostring)] | join(",")' "$work/globpool.json")" \
  "web-03:1,web-07:1" "each VM is its newest document: web-03 and web-07 alarm, once each"
is "$(jq -c '[.[] | .findings[] | select(.severity != "info") | [.n, .p * 100 | round]] | unique' "$work/globpool.json")" "[[9,10]]" \
  "and each alarm counts 9 peers, p = 1/10, not 19 snapshots (p = 1/20)"

# --- drift --pool ----------------------------------------------------------------------------
"$VMSCOPE" drift --pool "$work/pool" --peer-group fleet >"$work/pool.json"
ok $? "drift --pool exits 0"
is "$(jq -c 'map([.name, .samples, .alarms])' "$work/pool.json")" \
  "$(jq -c 'map([.name, .samples, .alarms])' "$work/globpool.json")" "and ranks as the globbed documents did"
"$VMSCOPE" drift --peer-group fleet --pool "$work/hostA" --pool "$work/hostB" >"$work/two.json"
is "$(jq -c 'map([.name, .samples, .alarms])' "$work/two.json")" \
  "$(jq -c 'map([.name, .samples, .alarms])' "$work/pool.json")" "two hosts' pools add up to the fleet's"
"$VMSCOPE" drift --peer-group fleet --pool "$work/pool" --pool "$work/hostA" >"$work/dup.json"
is "$(jq -c 'map(.samples) | unique' "$work/dup.json")" "[9]" "a VM in two pools (migrated) counts once"
"$VMSCOPE" drift --pool "$work/pool" --target web-07 --format text >"$work/t.txt"
ok $? "drift --pool --target NAME ranks one VM of the pool"
grep -q '^# web-07: 9 samples, .* 1 alarms' "$work/t.txt"; ok $? "against its 9 peers"
"$VMSCOPE" drift --pool "$work/pool" --target "$(uuid 07)" --format text | grep -q '^# web-07:'
ok $? "or by its UUID"
"$VMSCOPE" drift --pool "$work/pool" --target web-99 >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "1:vmscope drift: web-99 is no VM among the 10 VMs of the pool" "a target the pool lacks is an error"
"$VMSCOPE" drift --pool "$work/pool" >"$work/role.json"
is "$(jq -c 'map([.name, .samples]) | map(select(.[0] == "web-01" or .[0] == "web-07")) ' "$work/role.json")" '[["web-01",9],["web-07",9]]' \
  "by default a VM is ranked against its close peers, as the plugin does: the ten web servers differ in a key or two, one close group, so web-01 and web-07 each have the 9 others"
"$VMSCOPE" drift --pool "$work/pool" --peer-group host >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" '2:vmscope drift: --peer-group takes role or fleet, not "host"' "an unknown peer group is refused"

"$VMSCOPE" drift --all "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: $work/pool is a snapshot pool, not a guest: give it as --pool $work/pool" \
  "a pool given as a guest is refused with the option to use"
"$VMSCOPE" drift --image-format qcow2 --all "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: $work/pool is a snapshot pool, not a guest: give it as --pool $work/pool" \
  "with --image-format too: the pool is named as a pool, not as a tree"
"$VMSCOPE" drift --image-format qcow2 --pool "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --image-format is for images, and no image is given: drop it" \
  "--image-format with a pool alone is refused, not ignored"
"$VMSCOPE" drift --backend direct --pool "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --backend is for images, and no image is given: drop it" \
  "so is --backend"
"$VMSCOPE" drift --image-format qcow2 --pool "$work/pool" --target "$work/nosuch.qcow2" >/dev/null 2>"$work/e"
[ $? -ne 0 ] && ! grep -q "no image is given" "$work/e"
ok $? "a target path that does not exist is not taken for no image: $(cat "$work/e")"
"$VMSCOPE" drift --pool "$T/web-01" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --pool $T/web-01 holds a guest's /etc: it is a guest tree, not a snapshot pool; give it as a SOURCE instead of --pool" \
  "a guest tree given as a pool is refused"
"$VMSCOPE" drift --pool "$work/nosuch" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --pool $work/nosuch: No such file or directory" "a pool that does not exist is refused"
mkdir -p "$work/empty"
"$VMSCOPE" drift --pool "$work/empty" >/dev/null 2>"$work/e"
is "$?:$(head -n1 "$work/e")" "1:vmscope drift: --pool $work/empty holds no VM documents" "an empty pool is an error, not 0 findings"
# A pool caught in vmscope_snapshot's first cycle (its marker says it started and none ended):
# three of the ten VMs are in, and an answer about them is said to be partial.
mkdir -p "$work/first"
cp -r "$work/pool/$(uuid 01)" "$work/pool/$(uuid 02)" "$work/pool/$(uuid 07)" "$work/first/"
printf '{"completed": null, "domains": 10, "started": "2026-11-25T10:00:00Z"}' >"$work/first/cycle.json"
"$VMSCOPE" drift --pool "$work/first" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "1:vmscope drift: --pool $work/first: vmscope_snapshot's first cycle (10 domain(s)) is still running: the pool holds 3 of them so far, and VMs are ranked against the peers in it" \
  "a pool whose first snapshot cycle is still running gives a partial answer (exit 1), and says why"
printf '{"completed": "2026-11-25T10:00:09Z", "domains": 10, "started": "2026-11-25T10:10:00Z"}' >"$work/first/cycle.json"
"$VMSCOPE" drift --pool "$work/first" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "0:" "once a cycle has ended, a later one running is no reason: the pool has every VM's documents"

# --- options given twice, and scripts' exit codes ----------------------------------------------
"$VMSCOPE" drift --top 5 --top 6 --pool "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --top given twice (\"5\", then \"6\"): give it once" "--top twice is refused"
"$VMSCOPE" drift --format text --format json --pool "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --format given twice (\"text\", then \"json\"): give it once" "--format twice is refused"
"$VMSCOPE" drift --target "$T/web-01" --target "$T/web-02" "${others[@]}" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --target given twice (\"$T/web-01\", then \"$T/web-02\"): give it once" "--target twice is refused"
"$VMSCOPE" drift --pool "$work/pool" --format text --compact >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --compact is for JSON output, not --format text" "--compact with text is refused, as inspect does"
"$VMSCOPE" drift --all --target "$T/web-07" "${others[@]}" >/dev/null 2>"$work/e"
is "$?" 2 "--all with --target is refused"

"$VMSCOPE" drift --pool "$work/pool" --fail-on warning >/dev/null
is $? 3 "--fail-on warning exits 3 when a VM alarms"
"$VMSCOPE" drift --pool "$work/pool" --fail-on failure >/dev/null
is $? 3 "--fail-on failure exits 3: alone among 9 agreeing peers scores 0.90, a failure"
"$VMSCOPE" drift --pool "$work/pool" --fail-on failure --fail-score 0.95 >/dev/null
is $? 0 "--fail-on failure exits 0 when the alarms are warnings (score 0.90 < --fail-score 0.95)"
out=$("$VMSCOPE" drift --pool "$work/pool" --fail-on warning --quiet); rc=$?
is "$rc:$out" "3:" "--quiet prints nothing, and keeps the status"
printf 'file:/etc/ssh/sshd_config:PermitRootLogin web-07 - test fleet\nsysctl:net.ipv4.ip_forward web-03 - router\n' >"$work/waivers"
"$VMSCOPE" drift --pool "$work/pool" --fail-on warning --waivers "$work/waivers" >/dev/null
is $? 0 "waived alarms do not fail --fail-on"
"$VMSCOPE" drift --pool "$work/pool" --fail-on sometimes >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" '2:vmscope drift: --fail-on takes warning or failure, not "sometimes"' "an unknown --fail-on is refused"
is "$(jq -r '.[0].findings[] | select(.key == "os:hostname") | .majority.value' "$work/pool.json")" "<all differ>" \
  "a key where every VM differs shows no arbitrary VM's value as the majority"

# --- analyze, similar, report --------------------------------------------------------------------
"$VMSCOPE" analyze --pool "$work/hostA" --pool "$work/hostB" >"$work/an.json"
is "$(jq '.vms | length' "$work/an.json")" 10 "analyze --pool A --pool B sees both hosts' VMs (10, not 5)"
"$VMSCOPE" analyze --pool "$work/pool" --format text --format json >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope analyze: --format given twice (\"text\", then \"json\"): give it once" "analyze: --format twice is refused"
"$VMSCOPE" analyze --threshold 7 --pool "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" '2:vmscope analyze: --threshold takes a similarity in (0, 1], not "7"' "--threshold says its range"
"$VMSCOPE" analyze "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope analyze: $work/pool is a snapshot pool, not a guest: give it as --pool $work/pool" \
  "analyze: a pool given as a source is refused with a hint"
"$VMSCOPE" analyze --pool "$work/pool" "$T/web-01" >"$work/an2.json" 2>/dev/null
is "$(jq '.vms | length' "$work/an2.json")" 11 "a source beside a pool is added to it, not ignored (a tree is a VM of its own)"
"$VMSCOPE" similar web-02 --setting a=b --pool "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" '2:vmscope similar: give a VM or --setting KEY=VALUE, not both ("web-02" with --setting)' \
  "similar VM --setting is refused"
"$VMSCOPE" similar --setting nokey --pool "$work/pool" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" '2:vmscope similar: --setting takes KEY=VALUE, not "nokey"' "a --setting without = is refused"
"$VMSCOPE" similar web-07 --pool "$work/pool" --pool "$work/hostB" >"$work/sim.json"
is "$(jq 'length' "$work/sim.json")" 10 "similar: a VM in two pools is listed once"
"$VMSCOPE" report --html "$work/r.html" --top 0 --pool "$work/hostA" --pool "$work/hostB"
ok $? "report --top 0 (all findings) is accepted"
is "$(grep -o 'web-[0-9][0-9]' "$work/r.html" | sort -u | wc -l)" 10 "and report --pool A --pool B shows all ten VMs"
doc=$(ls "$work/pool/$(uuid 01)"/*.json | head -n1)
before=$(sha256sum "$doc")
"$VMSCOPE" report --html "$doc" --pool "$work/pool" 2>"$work/e"
is "$?:$(sha256sum "$doc")" "2:$before" "report --html onto a pool's document is refused, the document unchanged"
grep -q "lies inside the input directory" "$work/e"; ok $? "saying the page lies inside the input: $(cat "$work/e")"
"$VMSCOPE" report --html "$work/web-01.json" "$work/web-01.json" "$work/web-02.json" 2>"$work/e"
is "$?" 2 "report --html onto a SOURCE is refused"
"$VMSCOPE" report --html "$work/r.html" --html "$work/s.html" --pool "$work/pool" 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope report: --html given twice (\"$work/r.html\", then \"$work/s.html\"): give it once" "report: --html twice is refused"
"$VMSCOPE" report --html "$work/r.html" --top -1 --pool "$work/pool" 2>"$work/e"
is "$?:$(cat "$work/e")" '2:vmscope report: --top takes a count of findings per VM (0 for all), not "-1"' "report: a negative --top is refused"

# --- found by a fresh-eyes trial ------------------------------------------------------------------
cp "$work/web-01.json" "$work/keep.json"
before=$(sha256sum "$work/keep.json")
"$VMSCOPE" report --html "$work/keep.json" --pool "$work/pool" 2>"$work/e"
is "$?:$(sha256sum "$work/keep.json")" "2:$before" "report over an existing file that is not a vmscope page is refused, the file unchanged"
grep -q 'exists already: not replaced' "$work/e"; ok $? "saying how to proceed: $(cat "$work/e")"
"$VMSCOPE" report --html "$work/keep.json" --force --pool "$work/pool"
is "$?:$(head -c 15 "$work/keep.json")" "0:<!DOCTYPE html>" "with --force it is replaced"
"$VMSCOPE" report --html "$work/keep.json" --pool "$work/pool"
is "$?" 0 "and a page vmscope wrote is replaced without --force (a report run again)"
"$VMSCOPE" drift --pool "$work/pool" --pool "./$(realpath --relative-to=. "$work/pool")" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "0:" "the same pool given twice by two names is one pool, without a false error"
"$VMSCOPE" drift --pool "$work/pool/$(uuid 02)" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --pool $work/pool/$(uuid 02) holds documents itself: it is one VM's directory in a pool; give the pool, its parent directory" \
  "one VM's directory given as the pool points at its parent"
cp -r "$work/pool" "$work/misfiled"
cp "$work/pool/$(uuid 02)/20261125T100000Z.json" "$work/misfiled/$(uuid 03)/20261126T100000Z.json"
"$VMSCOPE" drift --pool "$work/misfiled" >/dev/null 2>"$work/e"
is "$?" 1 "a document filed under another VM's directory is an error, not a VM silently gone"
grep -q "misfiled/$(uuid 03): its newest document is VM web-02's" "$work/e"; ok $? "naming the directory and the VM: $(cat "$work/e")"
"$VMSCOPE" analyze --pool "$work/empty" >"$work/o" 2>/dev/null
is "$?:$(cat "$work/o")" "1:" "analyze of an empty pool prints no empty analysis"
rm -f "$work/r0.html"
"$VMSCOPE" report --html "$work/r0.html" --pool "$work/empty" 2>/dev/null
is "$?:$(test -e "$work/r0.html" && echo written)" "1:" "report of an empty pool writes no page"
"$VMSCOPE" similar --setting nosuchkey=1 --pool "$work/pool" >"$work/o" 2>"$work/e"
is "$?:$(cat "$work/o")" "2:" "similar by a key no VM has is refused"
is "$(cat "$work/e")" "vmscope similar: no VM has nosuchkey (see vmscope inspect for the keys)" "saying so"
"$VMSCOPE" analyze --pool "$work/pool" >/dev/full 2>"$work/e"
is "$?:$(cat "$work/e")" "1:vmscope analyze: writing standard output failed" "a failed write to standard output is an error"
mkdir -p "$work/web-07-image" && cp -r "$T/web-07/." "$work/web-07-image/"
jq --arg id "$(uuid 07)" '.id = $id' "$work/web-07.json" >/dev/null
"$VMSCOPE" drift --pool "$work/pool" --peer-group fleet --target "$T/web-07" --format text 2>"$work/e" >"$work/o"
grep -q '^# web-07: 9 samples' "$work/o"; ok $? "drift --pool --target TREE: the pool's VM of the same name is the target itself, not its peer (9 samples)"
grep -q "the pool's VM web-07 ($(uuid 07)) has the target's name" "$work/e"; ok $? "with a note"
sockfile=$work/not-a-socket.json
cp "$work/web-01.json" "$sockfile"
timeout 20 "$VMSCOPE" fleet proxy --socket "$sockfile" --host h1 >/dev/null 2>"$work/e"
is "$?:$(cmp -s "$sockfile" "$work/web-01.json" && echo same)" "1:same" "fleet proxy --socket FILE never deletes a file that is not a socket"
grep -q 'exists and is not a socket: not replaced' "$work/e"; ok $? "saying so: $(head -n1 "$work/e")"

"$VMSCOPE" snapshot --connect test:///default --data-dir "$T/web-01" >"$work/o" 2>"$work/e"
is "$?:$(cat "$work/o")" "2:" "snapshot --data-dir GUEST_TREE is refused before any snapshot"
is "$(cat "$work/e")" "vmscope snapshot: --data-dir $T/web-01 holds a guest's /etc: it is a guest tree, not a snapshot pool (give a directory of its own)" "saying why"
is "$(ls "$T/web-01" | tr '\n' ' ')" "etc " "and the guest tree is untouched"
"$VMSCOPE" snapshot --connect test:///default --data-dir "$work/web-01.json" >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope snapshot: --data-dir $work/web-01.json is not a directory: a snapshot pool is a directory of its own" \
  "snapshot --data-dir FILE is refused in one line"

# --- the vmscope_drift plugin ------------------------------------------------------------------
plugindir=$(vs_plugin_dir "$work")
vs_collectd_env
drift_conf() { # FILE OPTIONS
  { vs_collectd_conf "$work" "$plugindir" "$1.log"; printf 'LoadPlugin vmscope_drift\n<Plugin vmscope_drift>\n%s\n</Plugin>\n' "$2"; } >"$1"
}
drift_conf "$work/waiver.conf" "  DataDir \"$work/pool\"
  WaiverFile \"$work/no-such-waivers\""
"${VS_COLLECTD_ENV[@]}" timeout 60 "$COLLECTD" -T -C "$work/waiver.conf" >"$work/waiver.out" 2>&1
grep -q "vmscope_drift: WaiverFile \"$work/no-such-waivers\"" "$work/waiver.conf.log" "$work/waiver.out"
ok $? "a WaiverFile that does not exist is a configuration error naming the plugin and the option"
drift_conf "$work/twice.conf" "  DataDir \"$work/pool\"
  Top 3
  Top 4"
"${VS_COLLECTD_ENV[@]}" timeout 60 "$COLLECTD" -T -C "$work/twice.conf" >"$work/twice.out" 2>&1
grep -qi 'vmscope_drift: Top is given twice' "$work/twice.conf.log" "$work/twice.out"
ok $? "an option given twice is a configuration error"

drift_conf "$work/guestdir.conf" "  DataDir \"$T/web-02\""
"${VS_COLLECTD_ENV[@]}" timeout 60 "$COLLECTD" -T -C "$work/guestdir.conf" >"$work/guestdir.out" 2>&1
is "$?" 1 "a DataDir that is a guest tree stops collectd"
grep -q "vmscope_drift: DataDir: $T/web-02 holds a guest's /etc" "$work/guestdir.conf.log" "$work/guestdir.out"
ok $? "naming the plugin and the option"

# A DataDir that does not exist (a typo): said once, not silence.
drift_conf "$work/typo.conf" "  DataDir \"$work/pooll\"
  Interval 1"
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/typo.conf" >"$work/typo.out" 2>&1 &
pid=$!
pids+=($pid)
typo_logged() { grep -q "vmscope_drift: DataDir: $work/pooll: No such file or directory" "$work/typo.conf.log"; }
wait_for 30 typo_logged
ok $? "a DataDir that does not exist is logged, naming it"
kill "$pid"
wait "$pid" 2>/dev/null

# ForgetAfter: every VM is fresh and web-07 alarms; then web-07's domain is gone (its newest
# snapshot is two hours old, past ForgetAfter 3600): its alarm clears and it is not exported.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
old=$(date -u -d '-2 hours' +%Y-%m-%dT%H:%M:%SZ)
put_doc() { # INDEX TIME
  local d=$work/live/$(uuid "$1")
  rm -rf "$d" && mkdir -p "$d"
  jq --arg id "$(uuid "$1")" --arg n "web-$1" --arg t "$2" '.id = $id | .name = $n | .taken_at = $t' \
    "$work/web-$1.json" >"$d/$(date -u -d "$2" +%Y%m%dT%H%M%SZ).json"
}
for i in 01 02 03 04 05 06 07 08 09 10; do put_doc "$i" "$now"; done
drift_conf "$work/forget.conf" "  DataDir \"$work/live\"
  Interval 1
  ForgetAfter 3600"
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/forget.conf" >"$work/forget.out" 2>&1 &
pid=$!
pids+=($pid)
note_of() { grep "Notification: .*plugin = vmscope_drift, plugin_instance = web-07, type = config_drift" "$work/forget.conf.log"; }
raised() { note_of | grep -qE 'severity = (WARNING|FAILURE)'; } # alone among 9: a failure
cleared() { note_of | grep -q 'severity = OKAY'; }
csv_of() { find "$work/csv" -path "*vmscope_drift-$1/gauge-drift_score-*" 2>/dev/null | head -n1; }
lines() { local f; f=$(csv_of "$1"); [ -n "$f" ] && wc -l <"$f" || echo 0; }
exported() { [ "$(lines web-07)" -gt 0 ]; }
wait_for 60 raised
ok $? "web-07's alarm is raised while its snapshots are fresh"
wait_for 30 exported
ok $? "and it is exported"
put_doc 07 "$old"
wait_for 60 cleared
ok $? "once its newest snapshot is older than ForgetAfter, its alarm is cleared (OKAY)"
gone_logged() { grep -q 'vmscope_drift: 1 VM(s) left out: no snapshot in the last 3600 s (ForgetAfter)' "$work/forget.conf.log"; }
wait_for 30 gone_logged
ok $? "the log says a VM was left out, and why"
# Two reads after the clear, web-07's count is final; three more, web-01 is still exported.
grown() { [ "$(lines web-01)" -ge "$1" ]; }
wait_for 30 grown $(($(lines web-01) + 2))
before=$(lines web-07)
wait_for 30 grown $(($(lines web-01) + 3))
ok $? "the fleet's other VMs are still exported"
is "$(lines web-07)" "$before" "web-07 is no longer exported"
kill "$pid"
wait "$pid" 2>/dev/null
grep -E 'AddressSanitizer|runtime error' "$work"/*.out >&2
is $? 1 "no sanitizer report"
done_testing
