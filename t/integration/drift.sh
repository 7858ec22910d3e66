#!/usr/bin/env bash
# vmscope drift and vmscope diff on guest trees and saved documents.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
sshd='# shipped\n#PermitRootLogin prohibit-password\n#MaxAuthTries 6\nPort 22\nUsePAM yes\n'
status() { # VERSION-OF-OPENSSH MD5-OF-SSHD_CONFIG
  printf 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: %s\nConffiles:\n /etc/ssh/sshd_config %s\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n' "$1" "$2"
}
shipped_md5=$(printf '%b' "$sshd" | md5sum | cut -d' ' -f1)
for i in 01 02 03 04 05 06 07 08 09 10 11 12; do
  g=$work/web-$i
  mk "$g/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
  mk "$g/etc/hostname" "web-$i\n"
  mk "$g/etc/ssh/sshd_config" "$sshd"
  mk "$g/var/lib/dpkg/status" "$(status 1:9.2p1-2+deb12u3 "$shipped_md5")\n"
done
# web-03 writes the default out; web-07 permits root logins.
mk "$work/web-03/etc/ssh/sshd_config" "${sshd}PermitRootLogin prohibit-password\n"
mk "$work/web-07/etc/ssh/sshd_config" "${sshd}PermitRootLogin yes\n"

out=$("$VMSCOPE" drift --help); rc=$?
ok $rc "vmscope drift --help exits 0"
for opt in --target --all --fleet --format --top --waivers --warn-score --fail-score --compact --backend --watch; do
  echo "$out" | grep -q -- "$opt"; ok $? "drift --help documents $opt"
done
echo "$out" | grep -q 'alone among 2 agreeing close peers' && echo "$out" | grep -q 'default 0.60'
ok $? "drift --help says what the default warn score means (alone among 2 agreeing close peers)"
echo "$out" | grep -qE -- '--min-role-peers N +a VM needs N close peers'
ok $? "and that --min-role-peers counts close peers"
"$VMSCOPE" --help | grep -q 'drift'; ok $? "vmscope --help lists drift"
"$VMSCOPE" --help | grep -q 'diff'; ok $? "and diff"

"$VMSCOPE" drift "$work/web-01" >/dev/null 2>&1; is $? 2 "neither --target nor --all is a usage error"
"$VMSCOPE" drift --target "$work/web-07" >/dev/null 2>&1; is $? 2 "--target without samples is a usage error"
"$VMSCOPE" drift --top many --all "$work"/web-* >/dev/null 2>&1; is $? 2 "a --top that is not a count is a usage error"
"$VMSCOPE" drift --warn-score 0.95 --fail-score 0.9 --all "$work"/web-* >/dev/null 2>&1
is $? 2 "a fail score below the warn score is a usage error"

others=()
for i in 01 02 03 04 05 06 08 09 10 11 12; do others+=("$work/web-$i"); done
"$VMSCOPE" drift --target "$work/web-07" "${others[@]}" >"$work/d.json"; ok $? "drift --target over trees exits 0"
is "$(jq -r .samples "$work/d.json")" 11 "the target is ranked against 11 samples"
is "$(jq -r '.findings[0].key' "$work/d.json")" "file:/etc/ssh/sshd_config:PermitRootLogin" \
  "the setting that sets it apart ranks first"
is "$(jq -r '.findings[0].value' "$work/d.json")" "yes" "with the target's value"
is "$(jq -r '.findings[0].majority.value + " " + (.findings[0].majority.count | tostring)' "$work/d.json")" \
  "<absent> 11" "and what the peers have: absent (or the default) on all 11"
is "$(jq -r '.findings[0] | "\(.c) \(.m) \(.n)"' "$work/d.json")" "2 0 11" "c=2, m=0, N=11"
is "$(jq -r '.findings[0] | "\(.kind) \(.p * 1000 | round) \(.severity)"' "$work/d.json")" "alone 83 failure" \
  "alone among 11 agreeing close peers: p = 1/12, score 0.92, a failure"
is "$(jq -r .alarms "$work/d.json")" 1 "one alarm"
is "$(jq -r '[.findings[] | select(.key == "meta:/etc/ssh/sshd_config:sha256")][0] | "\(.severity) \(.edit_evidence)"' "$work/d.json")" \
  "info true" "the edited file's digest is reported as edit evidence, at info"

"$VMSCOPE" drift --all "$work"/web-* >"$work/all.json"; ok $? "drift --all exits 0"
is "$(jq -r 'length' "$work/all.json")" 12 "one report per VM"
is "$(jq -r '.[] | select(.name == "web-03") | [.findings[] | select(.key | test("PermitRootLogin"))] | length' "$work/all.json")" 0 \
  "writing the documented default out is not a finding"
is "$(jq -r '[.[] | select(.alarms > 0) | .name] | join(",")' "$work/all.json")" "web-07" \
  "only web-07 raises an alarm"
is "$(jq -r '.[] | select(.name == "web-05") | [.findings[] | select(.key == "os:hostname")][0].severity' "$work/all.json")" \
  "info" "a hostname, different everywhere, is info only"

# Saved documents work as sources, also as one JSON array.
"$VMSCOPE" inspect "$work/web-07" >"$work/web-07.json"
"$VMSCOPE" inspect "${others[@]}" >"$work/fleet.json"
"$VMSCOPE" drift --target "$work/web-07.json" "$work/fleet.json" >"$work/dj.json"; ok $? "drift over saved documents exits 0"
is "$(jq -c '[.samples, .findings[0].key, .findings[0].score]' "$work/dj.json")" \
  "$(jq -c '[.samples, .findings[0].key, .findings[0].score]' "$work/d.json")" "and ranks as the trees did"

"$VMSCOPE" inspect "${others[@]}" "$work/web-07" >"$work/all-docs.json"
"$VMSCOPE" drift --all "$work/all-docs.json" | jq -e 'length == 12' >/dev/null
ok $? "--all over one saved JSON array ranks each of its documents"
"$VMSCOPE" drift --all "$work/web-07.json" >/dev/null 2>&1; is $? 2 "--all over a single document is a usage error"
"$VMSCOPE" drift --top 1 --all "${others[@]}" "$work/web-07" | jq -e 'all(.[]; (.findings | length) <= 1)' >/dev/null
ok $? "--top 1 keeps one finding per VM"
"$VMSCOPE" drift --format text --target "$work/web-07" "${others[@]}" >"$work/d.txt"; ok $? "text format exits 0"
grep -q '^# web-07: 11 samples' "$work/d.txt"; ok $? "text starts with the VM and its sample count"
grep -qE '^ +1 +0\.917 +failure +alone +file:/etc/ssh/sshd_config:PermitRootLogin = yes +\(alone among 11 close peers; all have <absent>; p=0\.08\)$' "$work/d.txt"
ok $? "and lists rank, score, severity, kind, key, value and the evidence: $(sed -n 2p "$work/d.txt")"

# Waivers.
printf '# reason required\nfile:/etc/ssh/sshd_config:PermitRootLogin web-0* 2099-12-31 migration needs root (OPS-7)\n' >"$work/waivers"
"$VMSCOPE" drift --waivers "$work/waivers" --target "$work/web-07" "${others[@]}" >"$work/w.json"
is "$(jq -r '.findings[0] | "\(.key) \(.waived) \(.waiver.reason)"' "$work/w.json")" \
  "file:/etc/ssh/sshd_config:PermitRootLogin true migration needs root (OPS-7)" "a waived finding is still listed, marked waived, with the reason"
is "$(jq -r .alarms "$work/w.json")" 0 "and raises no alarm"
printf 'file:/etc/ssh/sshd_config:* * 2020-01-31 old exception\n' >"$work/expired"
"$VMSCOPE" drift --waivers "$work/expired" --target "$work/web-07" "${others[@]}" >"$work/e.json"
is "$(jq -r '.findings[0] | "\(.waived) \(.waiver.expired) \(.waiver.expires)"' "$work/e.json")" "false true 2020-01-31" \
  "an expired waiver is shown as expired and waives nothing"
is "$(jq -r .alarms "$work/e.json")" 1 "so the alarm stands"
printf 'pkg:* * someday because\n' >"$work/badw"
err=$("$VMSCOPE" drift --waivers "$work/badw" --all "$work"/web-* 2>&1 >/dev/null); is $? 2 "a bad waiver file is a usage error"
echo "$err" | grep -q "badw:1"; ok $? "and the message names file and line"

# Thresholds.
"$VMSCOPE" drift --warn-score 0.95 --fail-score 0.99 --target "$work/web-07" "${others[@]}" >"$work/t.json"
is "$(jq -r '.findings[0].severity + " " + (.alarms | tostring)' "$work/t.json")" "info 0" "--warn-score raises the bar"

"$VMSCOPE" drift --warn-score 0.9 --fail-score 0.95 --target "$work/web-07" "${others[@]}" >"$work/t.json"
is "$(jq -r '.findings[0].severity' "$work/t.json")" "warning" "score 0.92 between the two is a warning"

# --fleet: a team's tweak on two of eight VMs, a package rolling out on three, and a VM of a
# kind of its own. Each is said once, for the fleet.
for i in 1 2 3 4 5 6 7 8; do
  cp -a "$work/web-01" "$work/fleet/f-0$i" 2>/dev/null || { mkdir -p "$work/fleet" && cp -a "$work/web-01" "$work/fleet/f-0$i"; }
  mk "$work/fleet/f-0$i/etc/hostname" "f-0$i\n"
  mk "$work/fleet/f-0$i/etc/sysctl.conf" 'vm.swappiness = 60\n'
done
for i in 2 5; do mk "$work/fleet/f-0$i/etc/sysctl.conf" 'vm.swappiness = 10\n'; done
for i in 3 6 8; do mk "$work/fleet/f-0$i/var/lib/dpkg/status" "$(status 1:9.2p1-2+deb12u5 "$shipped_md5")\n"; done
cp -a "$work/web-01" "$work/fleet/db-01"
mk "$work/fleet/db-01/etc/hostname" 'db-01\n'
mk "$work/fleet/db-01/etc/sysctl.conf" "$(for k in $(seq 1 24); do echo "kernel.db_tunable_$k = $k"; done)\n"
"$VMSCOPE" drift --fleet --format text "$work"/fleet/* >"$work/fleet.txt"; ok $? "drift --fleet SOURCE... exits 0"
is "$(head -n1 "$work/fleet.txt")" "# fleet: 9 VMs, 1 group, 1 rollout, 1 unique" "it counts the fleet's findings"
grep -qx 'group    sysctl:vm.swappiness is 10 on 2 of 9 VMs: f-02, f-05; 6 of the rest have 60' "$work/fleet.txt"
ok $? "the tweak on two VMs is one line for the fleet: $(grep '^group' "$work/fleet.txt")"
grep -qx 'rollout  pkg:openssh-server is 1:9.2p1-2+deb12u5 on 3 of 9 VMs (33%), from 1:9.2p1-2+deb12u3' "$work/fleet.txt"
ok $? "the newer openssh is a rollout with its share: $(grep '^rollout' "$work/fleet.txt")"
grep -qx 'unique   db-01: no close peers: nothing alarms' "$work/fleet.txt"
ok $? "and the VM of a kind of its own is unique"
"$VMSCOPE" drift --fleet --all "$work"/fleet/* >"$work/fleet.json"
is "$(jq -c '[.vms, .groups[0].members, .groups[0].key, .rollouts[0].have, .rollouts[0].of, .rollouts[0].by, .unique]' "$work/fleet.json")" \
  '[9,["f-02","f-05"],"sysctl:vm.swappiness",3,9,"version",["db-01"]]' "--fleet --all gives the same as JSON"
"$VMSCOPE" drift --all --format text "$work"/fleet/* >"$work/fleetvms.txt"
grep -q '^# db-01: 8 samples, .* 0 alarms; no close peers: nothing alarms$' "$work/fleetvms.txt"
ok $? "per VM, the unique one says it has no close peers: $(grep '^# db-01' "$work/fleetvms.txt")"
grep -qE '^ +[0-9]+ +[0-9.]+ +info +shared +sysctl:vm.swappiness = 10 +\(shared with 1 of 7 close peers; 6 have 60\)$' "$work/fleetvms.txt"
ok $? "and a member of the group shares its value with a close peer, at info"
grep -qE '^ +[0-9]+ +[0-9.]+ +info +(shared|rollout) +pkg:openssh-server = 1:9.2p1-2\+deb12u5 ' "$work/fleetvms.txt"
ok $? "the upgraded VMs' newer openssh is no alarm"
is "$(grep -c '^# .* 0 alarms' "$work/fleetvms.txt")" 9 "no VM of the fleet alarms"
"$VMSCOPE" drift --fleet --target "$work/fleet/f-01" "$work"/fleet/f-0[2-8] >/dev/null 2>"$work/e"
is "$?:$(cat "$work/e")" "2:vmscope drift: --fleet reports the whole fleet and --target one VM: give one of them" \
  "--fleet with --target is refused"

# Temporal diff: an upgrade that brought a new sshd_config, and a local edit.
cp -a "$work/web-01" "$work/old"
cp -a "$work/web-01" "$work/new"
new_sshd="${sshd}X11Forwarding no\n"
mk "$work/new/etc/ssh/sshd_config" "$new_sshd"
mk "$work/new/var/lib/dpkg/status" "$(status 1:9.2p1-2+deb12u5 "$(printf '%b' "$new_sshd" | md5sum | cut -d' ' -f1)")\n"
mk "$work/new/etc/hostname" "web-01-renamed\n"
"$VMSCOPE" diff "$work/old" "$work/new" >"$work/diff.json"; ok $? "diff exits 0"
is "$(jq -r '.changes[] | select(.key == "pkg:openssh-server") | .class' "$work/diff.json")" "upgrade" "deb12u3 -> deb12u5 is an upgrade"
is "$(jq -r '.changes[] | select(.key == "file:/etc/ssh/sshd_config:X11Forwarding") | "\(.kind) \(.class) \(.package)"' "$work/diff.json")" \
  "added package openssh-server" "the new setting came with the openssh-server upgrade"
is "$(jq -r '.summary | "\(.upgrades) \(.downgrades) \(.files_changed_with_package) \(.files_edited_locally)"' "$work/diff.json")" \
  "1 0 1 0" "summary: 1 upgrade, 1 file changed with its package"
"$VMSCOPE" diff "$work/new" "$work/old" >"$work/back.json"
is "$(jq -r '.changes[] | select(.key == "pkg:openssh-server") | .class' "$work/back.json")" "downgrade" "the other way round it is a downgrade"
cp -a "$work/web-01/." "$work/edited2"
mk "$work/edited2/etc/ssh/sshd_config" "${sshd}PermitRootLogin yes\n"
"$VMSCOPE" diff --format text "$work/web-01" "$work/edited2" >"$work/edit.txt"; ok $? "diff --format text exits 0"
grep -q '^+ file:/etc/ssh/sshd_config:PermitRootLogin = yes  \[local_edit openssh-server\]' "$work/edit.txt"
ok $? "an edit with no package change is a local edit"
"$VMSCOPE" diff "$work/web-01" >/dev/null 2>&1; is $? 2 "diff with one source is a usage error"
"$VMSCOPE" diff "$work/web-01" "$work/missing" >/dev/null 2>&1; is $? 1 "diff with a missing source exits 1"
done_testing
