#!/usr/bin/env bash
# vmscope report --html: one self-contained page, loaded in headless Chromium (Debian's
# chromium): a screenshot is taken, the page's DOM has the heat map, the roles and a section per
# VM, nothing is fetched, and the browser logs no console message. A VM name with markup in it
# comes out as text. The heat map's labels are measured in the browser: each whole, inside the
# map and clear of the others. A demo-like fleet: web-4, web-2 and web-6 each drifted their own
# way (root logins; MaxAuthTries and a long sysctl key; MaxAuthSessions), so in `vmscope similar`
# neither of the two others is as like web-4 as web-4 itself.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
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
mk "$work/trees/web-2/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\nMaxAuthTries 10\n'
mk "$work/trees/web-2/etc/sysctl.d/60-web.conf" 'net.core.somaxconn = 4096\nnet.ipv4.conf.default.accept_source_route = 1\n'
mk "$work/trees/web-6/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\nMaxAuthSessions 3\n'
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
for k in file:/etc/ssh/sshd_config:MaxAuthTries file:/etc/ssh/sshd_config:MaxAuthSessions sysctl:net.ipv4.conf.default.accept_source_route; do
  grep -q "<text class=\"key\"[^>]*><title>$k</title>$k</text>" "$html"
  ok $? "the heat map's column $k is labelled with its whole key, and titled with it"
done
row=$(grep -o '<tr class="finding[^"]*"><td>[0-9]*</td><td>os:hostname</td>.*</tr>' "$html" | head -n1)
case $row in *'<td><i>all differ</i></td><td>none shared</td>'*) rc=0 ;; *) rc=1 ;; esac
ok $rc "a key whose peers all differ (os:hostname) shows no majority but 'all differ': $row"

# web-2 and web-6 drifted each their own way, web-4 its own: neither is like it as itself is,
# nor as the web servers that did not drift (lacking the common sshd_config, each with its own,
# is no likeness).
"$VMSCOPE" similar web-4 --pool "$work/pool" >"$work/similar.json"
ok $? "vmscope similar web-4 --pool"
sims=$(jq -r 'map(select(.name == "web-2" or .name == "web-6") | "\(.name) \(.similarity)") | join(", ")' "$work/similar.json")
jq -e 'map(select(.name == "web-2" or .name == "web-6") | .similarity) | length == 2 and all(. < 0.999)' "$work/similar.json" >/dev/null
ok $? "web-2 and web-6, each with a drift of its own, are not 1.000 like web-4 ($sims)"
jq -e '(map(select(.name == "web-8" or .name == "web-10")) | map(.similarity) | min) > (map(select(.name == "web-2" or .name == "web-6")) | map(.similarity) | max)' "$work/similar.json" >/dev/null
ok $? "the web servers that did not drift are more like it than they are: $(jq -r 'map("\(.name) \(.similarity * 1000 | round / 1000)") | join(", ")' "$work/similar.json")"
jq -e '(map(select(.name | test("^web-"))) | map(.similarity) | min) > (map(select(.name | test("^db-"))) | map(.similarity) | max)' "$work/similar.json" >/dev/null
ok $? "and every web server is more like it than any database"

command -v chromium >/dev/null || { skip 15 "chromium is not installed"; done_testing; exit $?; }
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
grep -qE 'class="finding (warning|failure)' "$work/dom.html"; ok $? "web-4's root-login finding is marked as an alarm (alone among 9 close peers: a failure)"
grep -h 'CONSOLE' "$work/shot.err" "$work/dom.err" >&2; is $? 1 "the browser logs no console message"

# The heat map's labels measured where they are drawn: a copy of the page without its policy
# against scripts, with one that writes each label's box (getBBox through getCTM, rotation and
# all, and getBoundingClientRect) and every pair of labels whose boxes intersect (separating
# axes) into the page; Chromium dumps the page once it has loaded.
cat >"$work/geometry.js" <<'EOF'
(function () {
  var out = [], svg = document.getElementById('heatmap');
  var W = svg.width.baseVal.value, H = svg.height.baseVal.value, box = svg.getBoundingClientRect();
  var texts = Array.prototype.slice.call(svg.querySelectorAll('text'));
  function shown(t) { var s = ''; t.childNodes.forEach(function (n) { if (n.nodeType === 3) s += n.data; }); return s; }
  function corners(t) { /* the text's box in its own frame, through its rotation into the map's */
    var b = t.getBBox(), m = t.getCTM();
    return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
      .map(function (p) { return [m.a * p[0] + m.c * p[1] + m.e, m.b * p[0] + m.d * p[1] + m.f]; });
  }
  function apart(p, q) { /* separating axis theorem, for two convex quadrilaterals */
    for (var k = 0; k < 2; k++)
      for (var i = 0; i < 4; i++) {
        var e = [p, q][k], nx = e[i][1] - e[(i + 1) % 4][1], ny = e[(i + 1) % 4][0] - e[i][0];
        var x = p.map(function (v) { return v[0] * nx + v[1] * ny; });
        var y = q.map(function (v) { return v[0] * nx + v[1] * ny; });
        if (Math.max.apply(null, x) <= Math.min.apply(null, y) + 1e-6 ||
            Math.max.apply(null, y) <= Math.min.apply(null, x) + 1e-6) return true;
      }
    return false;
  }
  var quads = texts.map(corners);
  out.push('map ' + W + 'x' + H + ', ' + texts.length + ' labels');
  texts.forEach(function (t, i) {
    var r = t.getBoundingClientRect(), title = t.querySelector('title');
    var inside = quads[i].every(function (v) { return v[0] >= 0 && v[0] <= W && v[1] >= 0 && v[1] <= H; }) &&
      r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
    out.push((inside ? 'inside ' : 'OUTSIDE ') + (title && shown(t) === title.textContent ? 'whole ' : 'CUT ') +
      t.getAttribute('class') + ' ' + Math.round(r.left - box.left) + ',' + Math.round(r.top - box.top) + ' ' +
      Math.round(r.width) + 'x' + Math.round(r.height) + ' ' + JSON.stringify(shown(t)));
  });
  for (var i = 0; i < texts.length; i++)
    for (var j = i + 1; j < texts.length; j++)
      if (!apart(quads[i], quads[j]))
        out.push('OVERLAP ' + JSON.stringify(shown(texts[i])) + ' ' + JSON.stringify(shown(texts[j])));
  var pre = document.createElement('pre');
  pre.id = 'geometry';
  pre.textContent = '\n' + out.join('\n') + '\n';
  document.body.appendChild(pre);
})();
EOF
measure() { # PAGE NAME: the label lines of PAGE's heat map into $work/NAME.geometry
  {
    sed -e 's|<meta http-equiv="Content-Security-Policy"[^>]*>||' -e '/^<\/body><\/html>$/d' "$1"
    printf '<script>\n%s\n</script></body></html>\n' "$(cat "$work/geometry.js")"
  } >"$work/$2.probe.html"
  chrome "$2" --dump-dom "file://$work/$2.probe.html" >"$work/$2.dom" 2>"$work/$2.err"
  sed -n '/<pre id="geometry">/,/^<\/pre>/{/</d;p}' "$work/$2.dom" >"$work/$2.geometry"
  sed 's/^/# /' "$work/$2.geometry"
}
measure "$html" probe
g=$work/probe.geometry
keys=$(grep -c ' key ' "$g")
[ "$keys" -ge 4 ] && [ "$(grep -c ' vm ' "$g")" = 10 ]
measured=$?
ok $measured "Chromium measured the heat map's $keys column and 10 row labels"
[ $measured = 0 ] && ! grep -q '^OUTSIDE' "$g"; ok $? "every label's box lies inside the map's"
[ $measured = 0 ] && ! grep -q '^OVERLAP' "$g"; ok $? "no two labels' boxes overlap"
[ $measured = 0 ] && ! grep -q '^[a-zA-Z]* CUT' "$g"; ok $? "every label shows the whole of its title"

# A crowded map: 25 more alarms spread over the fleet (each VM alone with two or three keys: a
# VM with more than 16 keys of its own would have no close peers, and no alarms) and web-8 with
# a sysctl key of 171 bytes, under a long name that is not ASCII; 30 columns (the most the map
# shows).
cp -r "$work/pool" "$work/crowded"
long="sysctl:net.ipv4.conf.$(printf 'x%.0s' {1..150}).forwarding"
for f in "$work"/crowded/*/20261125T100000Z.json; do
  i=$((10#$(basename "$(dirname "$f")" | tail -c 3)))
  jq --argjson i "$i" '.settings += ([range(1; 26) | select(. % 10 == $i % 10) | {key: "sysctl:net.ipv4.neigh.default.gc_thresh_long_name_\(.)", value: "\(.)"}] | from_entries)' \
    "$f" >"$f.new" && mv "$f.new" "$f"
done
p8=$(ls "$work"/crowded/00000000-0000-4000-8000-000000000008/*.json)
jq --arg long "$long" '.name = "wéb-8-ünïcödé-a-very-long-virtual-machine-name-indeed"
    | .settings[$long] = "1"' "$p8" >"$p8.new" && mv "$p8.new" "$p8"
"$VMSCOPE" report --html "$work/crowded.html" --top 40 --pool "$work/crowded"
ok $? "vmscope report --html with 30 columns"
grep -qF "<title>$long</title>" "$work/crowded.html"; ok $? "the 171-byte key's column is titled with the whole key"
measure "$work/crowded.html" crowded
g=$work/crowded.geometry
[ "$(grep -c ' key ' "$g")" = 30 ] && [ "$(grep -c ' vm ' "$g")" = 10 ]
measured=$?
ok $measured "Chromium measured its 30 column and 10 row labels"
[ $measured = 0 ] && ! grep -q '^OUTSIDE' "$g" && ! grep -q '^OVERLAP' "$g"
ok $? "every label inside the map, no two overlapping"
[ $measured = 0 ] && [ "$(grep -c '^[a-zA-Z]* CUT' "$g")" = 1 ] && grep -q '^inside CUT key .*"sysctl:net.ipv4.conf.xxx*…xxx*.forwarding"$' "$g"
ok $? "every label whole but the 171-byte key's, which keeps both ends around an ellipsis"
done_testing
