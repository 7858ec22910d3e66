#!/usr/bin/env bash
# The README's main job (scripts/demo-run.sh) on the cached debootstrap tree: ten guests cloned
# from one base image as thin overlays, two hosts (two real collectd with the three plugins, each
# on its own libvirt test-driver node) publishing into one private PostgreSQL fleet store, for
# two snapshot intervals; the findings of both hosts, the one only the fleet view finds (web-02,
# host-b's only web server), the fleet's findings from the store, the roles and the HTML report
# from the store. Skipped, as the other fleet store tests are, when PostgreSQL cannot start.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
cache=${VS_DEBOOTSTRAP_CACHE:-$VS_BUILDDIR/t/cache/debootstrap}
root="$cache/root"
bash "$VS_SRCDIR/scripts/debootstrap-tree.sh" "$root" >/dev/null 2>&1 || bail "no debootstrap tree at $root (see t/integration/debootstrap.sh)"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT

start=$(date +%s)
VS_DEMO_INTERVAL=5 bash "$VS_SRCDIR/scripts/demo-run.sh" "$VS_BUILDDIR" "$root" "$work" >"$work/out" 2>"$work/err"
rc=$?
if [ $rc -eq 3 ] && why=$(sed -n 's/^demo: cannot start PostgreSQL for the fleet store: //p' "$work/err") && [ -n "$why" ]; then
  skip 1 "$why"
  done_testing
  exit $?
fi
ok $rc "the demo runs to its end in $(($(date +%s) - start)) s" || sed 's/^/# /' "$work/err" | tail -n 20
out=$work/out
n=0
for g in web-01 web-02 web-03 web-04 web-05 web-06 web-07 web-08 db-01 db-02; do
  img=$work/images/$g.qcow2
  [ "$(qemu-img info --output=json "$img" | jq -r '."backing-filename"')" = base.qcow2 ] &&
    [ "$(du -k "$img" | cut -f1)" -lt 4096 ] && qemu-img check -q "$img" && n=$((n + 1))
done
is $n 10 "every guest's disk is a thin overlay (< 4 MiB) on the base image that qemu-img check accepts"

# Two hosts: each its own collectd, Hostname, node and pool; one elected for the fleet's work.
fleet=$(sed -n "/^== the fleet's alarms: vmscope fleet drift /,/^== /p" "$out")
hosts_ran() {
  local h=$1 want=$2
  grep -q '^Hostname "'"$h"'"$' "$work/$h/collectd.conf" &&
    grep -q 'Initialization complete' "$work/$h/collectd.log" &&
    [ "$(find "$work/$h/pool" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | wc -l)" = "$want" ] &&
    [ "$(grep -c "^# .* (host $h): " <<<"$fleet")" = "$want" ]
}
hosts_ran host-a 7 && hosts_ran host-b 3 && grep -q "^the fleet store's hosts: host-a (7 VMs), host-b (3 VMs)$" "$out"
ok $? "two collectd hosts ran: host-a with 7 guests, host-b with 3, each in its own pool and in the fleet store under its name"
is "$(grep -l "this host does the fleet's once-only work" "$work"/host-*/collectd.log | wc -l)" 1 \
  "exactly one host was elected for the fleet's once-only work"
grep -q "^the fleet's once-only work .*: host-[ab], which holds the store's lock$" "$out"
ok $? "the demo names it"

grep -qE '^(WARNING|FAILURE) web-02 config_drift: PermitRootLogin is yes on web-02; .*[0-9]+ close peers.* \[host-b\]$' "$out"
ok $? "the injected misconfiguration is found: web-02's PermitRootLogin, sent by host-b"
grep -qE 'Notification: severity = (WARNING|FAILURE), host = host-b, plugin = vmscope_drift, plugin_instance = web-02, type = config_drift, type_instance = sshd_config.PermitRootLogin' "$work/host-b/collectd.log"
ok $? "host-b's own collectd notified it"
grep -qE '^(WARNING|FAILURE) web-02 config_drift: net.ipv4.ip_forward is 1 on web-02' "$out"
ok $? "and its IPv4 forwarding"
# The fleet-only finding: what host-b's pool alone says about web-02, checked here directly.
alone=$("$VMSCOPE" drift --pool "$work/host-b/pool" --target web-02 --format json 2>/dev/null)
is "$(jq -r '[.alarms, ([.findings[] | select(.key == "file:/etc/ssh/sshd_config:PermitRootLogin") | .severity] | join(","))] | join(" ")' <<<"$alone")" "0 info" \
  "host-b's own pool alone gives web-02 no alarm: its PermitRootLogin is for information only there"
grep -q "^web-02's alarms: 0 from host-b's own pool, 2 from the fleet; host-b's collectd notified [1-9]" "$out" &&
  grep -q '^# web-02: .* 0 alarms; no close peers: nothing alarms$' "$out" &&
  grep -qE '^# web-02 \(host host-b\): 9 samples, .* 2 alarms$' "$out"
ok $? "the demo shows it: no alarm from host-b's pool alone, two from the fleet (9 peers)"

grep -q '^WARNING web-04 feature_change: web-04: 3 settings changed .*file:/etc/ssh/sshd_config:MaxAuthTries.* \[host-a\]$' "$out"
ok $? "the guest edited between the two snapshots is reported as changed (feature_change WARNING, by host-a)"
grep -qE '^(WARNING|FAILURE) web-04 config_drift: MaxAuthTries is 10 on web-04' "$out"
ok $? "and its edit sets it apart from its peers"
is "$(grep -cE '^(WARNING|FAILURE) (web-0[135678]|db-0[12]) config_drift' "$out")" 0 \
  "no alarm for the others (web-05 writes out sshd's documented default; the databases are their own role)"
is "$(grep -E '^# .* [1-9][0-9]* alarms$' <<<"$fleet" | sed 's/ (host.*//' | paste -sd' ')" "# web-02 # web-04" \
  "the fleet store's alarms (vmscope fleet drift) are web-02's and web-04's"
grep -q '^OKAY web-02 action_result: rule no-root-login: would run agent .* (dry run) \[host-b\]$' "$out"
ok $? "host-b's vmscope_action dry-run rule says what it would do about web-02"
grep -q '^10 VMs, 2 roles$' "$out" && grep -q '^role 0: 8 VMs, medoid web-01$' "$out" && grep -q '^role 1: 2 VMs, medoid db-01$' "$out"
ok $? "two roles across both hosts' pools: the eight web servers and the two databases"
html=$work/report.html
[ -s "$html" ] && grep -q '<svg' "$html" && grep -q 'PermitRootLogin' "$html" && grep -q 'MaxAuthTries' "$html" && ! grep -qE '(src|href)="https?:' "$html" &&
  grep -q '^== the HTML report from the fleet store: ' "$out"
ok $? "the HTML report is written from the fleet store, self-contained, with the heat map, web-02's findings and web-04's change"
pw=$(cat "$work/fleet-store.pw")
[ ${#pw} -ge 32 ] && ! grep -qF -- "$pw" "$out" "$work/err" "$work"/host-*/collectd.log "$work"/host-*/collectd.out "$work"/host-*/collectd.conf "$work/pg/postgres.log"
ok $? "the store's password is in its file only: in no output, log or configuration"
pgrep -f -- "-D $work/pg/data" >/dev/null
is $? 1 "PostgreSQL is stopped at the end"
grep -qE 'AddressSanitizer|runtime error' "$work"/host-*/collectd.out
is $? 1 "no sanitizer report from either collectd" ||
  grep -h -m 1 -A 30 -E 'AddressSanitizer|runtime error' "$work"/host-*/collectd.out | sed 's/^/# /'
done_testing
