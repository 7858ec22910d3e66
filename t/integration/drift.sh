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
for opt in --target --all --format --top --waivers --warn-score --fail-score --compact --backend --watch; do
  echo "$out" | grep -q -- "$opt"; ok $? "drift --help documents $opt"
done
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
is "$(jq -r '.findings[0].severity' "$work/d.json")" "warning" "score 1-2/13 = 0.85 is a warning"
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
grep -qE '^ +1 +0\.846 +warning +file:/etc/ssh/sshd_config:PermitRootLogin = yes' "$work/d.txt"
ok $? "and lists rank, score, severity, key and value"

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
"$VMSCOPE" drift --warn-score 0.9 --fail-score 0.95 --target "$work/web-07" "${others[@]}" >"$work/t.json"
is "$(jq -r '.findings[0].severity + " " + (.alarms | tostring)' "$work/t.json")" "info 0" "--warn-score raises the bar"

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
