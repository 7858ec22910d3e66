#!/usr/bin/env bash
# The README's main job (scripts/demo-run.sh) on the cached debootstrap tree: ten guests cloned
# from one base image as thin overlays, the real collectd with the three plugins on libvirt's
# test driver for two snapshot intervals, the findings, the roles and the HTML report.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
cache=${VS_DEBOOTSTRAP_CACHE:-$VS_BUILDDIR/t/cache/debootstrap}
root="$cache/root"
bash "$VS_SRCDIR/scripts/debootstrap-tree.sh" "$root" >/dev/null 2>&1 || bail "no debootstrap tree at $root (see t/integration/debootstrap.sh)"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT

start=$(date +%s)
VS_DEMO_INTERVAL=5 bash "$VS_SRCDIR/scripts/demo-run.sh" "$VS_BUILDDIR" "$root" "$work" >"$work/out" 2>"$work/err"
ok $? "the demo runs to its end in $(($(date +%s) - start)) s" || sed 's/^/# /' "$work/err" | tail -n 20
out=$work/out
n=0
for g in web-01 web-02 web-03 web-04 web-05 web-06 web-07 web-08 db-01 db-02; do
  img=$work/images/$g.qcow2
  [ "$(qemu-img info --output=json "$img" | jq -r '."backing-filename"')" = base.qcow2 ] &&
    [ "$(du -k "$img" | cut -f1)" -lt 4096 ] && qemu-img check -q "$img" && n=$((n + 1))
done
is $n 10 "every guest's disk is a thin overlay (< 4 MiB) on the base image that qemu-img check accepts"
grep -qE '^(WARNING|FAILURE) web-02 config_drift: PermitRootLogin is yes on web-02; .*[0-9]+ close peers' "$out"
ok $? "the injected misconfiguration is found: web-02's PermitRootLogin"
grep -qE '^(WARNING|FAILURE) web-02 config_drift: net.ipv4.ip_forward is 1 on web-02' "$out"
ok $? "and its IPv4 forwarding"
grep -q '^WARNING web-04 feature_change: web-04: 3 settings changed .*file:/etc/ssh/sshd_config:MaxAuthTries' "$out"
ok $? "the guest edited between the two snapshots is reported as changed (feature_change WARNING)"
grep -qE '^(WARNING|FAILURE) web-04 config_drift: MaxAuthTries is 10 on web-04' "$out"
ok $? "and its edit sets it apart from its peers"
is "$(grep -cE '^(WARNING|FAILURE) (web-0[135678]|db-0[12]) config_drift' "$out")" 0 \
  "no alarm for the others (web-05 writes out sshd's documented default; the databases are their own role)"
grep -q '^OKAY web-02 action_result: rule no-root-login: would run agent .* (dry run)' "$out"
ok $? "vmscope_action's dry-run rule says what it would do about web-02"
grep -q '^10 VMs, 2 roles$' "$out" && grep -q '^role 0: 8 VMs, medoid web-01$' "$out" && grep -q '^role 1: 2 VMs, medoid db-01$' "$out"
ok $? "two roles: the eight web servers and the two databases"
html=$work/report.html
[ -s "$html" ] && grep -q '<svg' "$html" && grep -q 'PermitRootLogin' "$html" && grep -q 'MaxAuthTries' "$html" && ! grep -qE '(src|href)="https?:' "$html"
ok $? "the HTML report is written, self-contained, with the heat map, web-02's findings and web-04's change"
grep -qE 'AddressSanitizer|runtime error' "$work/collectd.out"
is $? 1 "no sanitizer report from collectd" ||
  grep -m 1 -A 30 -E 'AddressSanitizer|runtime error' "$work/collectd.out" | sed 's/^/# /'
done_testing
