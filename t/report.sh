#!/usr/bin/env bash
# vmscope report --html: one self-contained page, loaded in headless Chromium (Debian's
# chromium): a screenshot is taken, the page's DOM has the heat map, the roles and a section per
# VM, nothing is fetched, and the browser logs no console message. A VM name with markup in it
# comes out as text.
. "${VS_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
names=()
for i in 1 2 3 4 5 6 7 8 9 10; do
  role=$([ $((i % 2)) = 0 ] && echo web || echo db)
  n=$role-$i
  names+=("$n")
  t=$work/trees/$n
  mk "$t/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
  mk "$t/etc/hostname" "$n\n"
  mk "$t/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\n'
  [ "$role" = web ] && mk "$t/etc/sysctl.d/60-web.conf" 'net.core.somaxconn = 4096\n'
  [ "$role" = db ] && mk "$t/etc/sysctl.d/60-db.conf" 'vm.dirty_ratio = 5\n'
done
mk "$work/trees/web-4/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\nPermitRootLogin yes\n'
for n in "${names[@]}"; do
  uuid=$(printf '00000000-0000-4000-8000-%012d' "$(echo "$n" | tr -dc 0-9)")
  mkdir -p "$work/pool/$uuid"
  "$VMSCOPE" inspect "$work/trees/$n" |
    jq --arg id "$uuid" --arg n "$n" '.id = $id | .name = $n | .taken_at = "2026-11-25T10:00:00Z"' >"$work/pool/$uuid/20261125T100000Z.json"
done
# web-4's previous snapshot, before root logins were permitted; and a name made of markup.
p4=$work/pool/00000000-0000-4000-8000-000000000004
jq '.taken_at = "2026-11-24T10:00:00Z" | .settings |= del(.["file:/etc/ssh/sshd_config:PermitRootLogin"])
    | .provenance |= with_entries(.value |= map(select(. != "file:/etc/ssh/sshd_config:PermitRootLogin")))' \
  "$p4/20261125T100000Z.json" >"$p4/20261124T100000Z.json"
p9=$work/pool/00000000-0000-4000-8000-000000000009
jq '.name = "db-9<script>alert(1)</script>"' "$p9/20261125T100000Z.json" >"$p9/x" && mv "$p9/x" "$p9/20261125T100000Z.json"

"$VMSCOPE" report --html "$work/report.html" --title "Fleet hv-07" --pool "$work/pool"
ok $? "vmscope report --html writes the page"
html=$work/report.html
grep -q '<svg id="heatmap"' "$html" && grep -q '<style>' "$html"; ok $? "with its heat map as inline SVG and its CSS inline"
[ -z "$(grep -oE '(src|href|url)\s*[=(]' "$html")" ]; ok $? "and nothing that would be fetched (no src, href or url())"
[ -z "$(grep -oE 'https?://[^" ]+' "$html" | grep -v '^http://www.w3.org/2000/svg$')" ]; ok $? "no address but SVG's namespace"
grep -q 'db-9&lt;script&gt;alert(1)&lt;/script&gt;' "$html" && ! grep -q '<script' "$html"
ok $? "a VM named with markup is shown as text"
grep -q 'Since 2026-11-24T10:00:00Z: 1 change' "$html" && grep -q 'PermitRootLogin' "$html"
ok $? "web-4's change since its previous snapshot is listed"

command -v chromium >/dev/null || { skip 6 "chromium is not installed"; done_testing; exit $?; }
chrome() {
  timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile-$1" --enable-logging=stderr --v=0 "${@:2}"
}
chrome shot --window-size=1280,1600 --screenshot="$work/shot.png" "file://$html" >/dev/null 2>"$work/shot.err"
[ "$(stat -c %s "$work/shot.png" 2>/dev/null || echo 0)" -gt 20000 ]
ok $? "headless Chromium renders it to a screenshot ($(stat -c %s "$work/shot.png" 2>/dev/null) bytes)"
chrome dom --dump-dom "file://$html" >"$work/dom.html" 2>"$work/dom.err"
is "$(grep -o '<section class="vm">' "$work/dom.html" | wc -l)" 10 "the loaded page has a section for each of the 10 VMs"
cells=$(grep -o '<rect class="cell"' "$work/dom.html" | wc -l)
[ "$cells" -ge 10 ]; ok $? "a heat map of $cells cells"
grep -q '<table id="roles">' "$work/dom.html" && [ "$(grep -o '<tr class="role">' "$work/dom.html" | wc -l)" -ge 2 ]
ok $? "and the roles ($(grep -o '<tr class="role">' "$work/dom.html" | wc -l))"
grep -q 'class="finding warning' "$work/dom.html"; ok $? "web-4's root-login finding is marked as a warning"
grep -h 'CONSOLE' "$work/shot.err" "$work/dom.err" >&2; is $? 1 "the browser logs no console message"
done_testing
