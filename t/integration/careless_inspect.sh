#!/usr/bin/env bash
# Careless inputs to inspect, snapshot, send and diff (issue 16): each case states what was
# given and the exact outcome, the right answer or a one-line refusal with its exit status.
# Trees and images are made here; snapshot runs on libvirt's test driver, send --wait on the
# real qemu-ga listening on a unix socket.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
work=$(tmpdir)
qga=
cleanup() {
  [ -n "$qga" ] && kill "$qga" 2>/dev/null && wait "$qga" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || bail "cannot enter $work"

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
# refused WANT-STATUS WANT-MESSAGE DESCRIPTION -- ARGS...: vmscope ARGS exits WANT-STATUS with
# exactly WANT-MESSAGE as its standard error, and prints nothing.
refused() {
  local want_rc=$1 want_msg=$2 what=$3
  shift 4
  "$VMSCOPE" "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  is "$rc $(cat "$work/err")" "$want_rc $want_msg" "$what"
  is "$(wc -c <"$work/out")" 0 "  and prints nothing on standard output"
}

mk web-01/etc/os-release 'ID=debian\nVERSION_ID="12"\n'
mk web-01/etc/hostname 'web-01\n'
mk web-01/etc/ssh/sshd_config 'PermitRootLogin no\nPort 22\n'
mkdir -p emptydir
mk datadir/srv/www/index.html 'hello\n'
mk passwd-only/etc/passwd 'root:x:0:0:root:/root:/bin/sh\n'
mk dpkg-only/var/lib/dpkg/status 'Package: base-files\nStatus: install ok installed\nVersion: 12.4\n\n'
bash "$VS_SRCDIR/scripts/tree-to-image.sh" web-01 web-02.qcow2 whole || bail "cannot build an image"
bash "$VS_SRCDIR/scripts/tree-to-image.sh" emptydir blank.qcow2 || bail "cannot build an image"
qemu-img convert -O raw web-02.qcow2 web-03.img || bail "cannot convert an image"

# ------------------------------------------------------------ item 5: no operating system
refused 1 "vmscope inspect: no operating system found in emptydir: no /etc/os-release, no package database" \
  "inspect emptydir: an empty directory is no VM (exit 1)" -- inspect emptydir
refused 1 "vmscope inspect: no operating system found in datadir: no /etc/os-release, no package database" \
  "inspect datadir: a data directory (srv/www only) is no VM (exit 1)" -- inspect datadir
refused 1 "vmscope inspect: no operating system found in blank.qcow2: no /etc/os-release, no package database (found: ext4 on partition 1)" \
  "inspect blank.qcow2: an image whose only file system is empty ext4 is no VM (exit 1, no appliance)" -- inspect blank.qcow2
"$VMSCOPE" inspect web-01 emptydir >two.json 2>two.err
is "$? $(jq -r 'map(.name) | join(",")' two.json)" "1 web-01" \
  "inspect web-01 emptydir: exit 1, and only web-01's document is printed (an array of one)"
"$VMSCOPE" inspect passwd-only >/dev/null 2>&1; is $? 0 "inspect passwd-only: a tree with only /etc/passwd is an OS (exit 0)"
is "$("$VMSCOPE" inspect dpkg-only | jq -r '.settings["pkg:base-files"]')" 12.4 "inspect dpkg-only: a tree with only dpkg's status is an OS, its package listed"
"$VMSCOPE" drift --target web-01 emptydir >/dev/null 2>drift.err
grep -q "no operating system found in emptydir: no /etc/os-release, no package database" drift.err
ok $? "drift --target web-01 emptydir: the empty directory is refused as a sample, never a peer"

# ------------------------------------------------------------ item 14: names and identity
"$VMSCOPE" inspect web-02.qcow2 >img.json
is "$(jq -r '.name + " " + .id' img.json)" "web-02 $work/web-02.qcow2" \
  "inspect web-02.qcow2: named web-02 (the file's stem), id the absolute path"
is "$("$VMSCOPE" inspect web-03.img | jq -r .name)" web-03 "inspect web-03.img: named web-03"
is "$("$VMSCOPE" inspect ./web-01/ | jq -r '.name + " " + .id')" "web-01 $work/web-01" \
  "inspect ./web-01/: named web-01 (the directory), id the canonical absolute path"
ln -s web-01 link-01
id_here=$("$VMSCOPE" inspect link-01 | jq -r .id)
id_there=$(cd / && "$VMSCOPE" inspect "$work/web-01" | jq -r .id)
is "$id_here" "$id_there" "inspect link-01 (a symlink, relative) and /abs/web-01 from / are one VM: $id_there"

# ------------------------------------------------------------ item 10: messages
refused 1 "vmscope inspect: web-02.qcow2 is a qcow2 image (not raw): drop --image-format or give qcow2" \
  "inspect --image-format raw web-02.qcow2: refused from its magic before anything launches" -- inspect --image-format raw web-02.qcow2
refused 1 "vmscope inspect: web-03.img is not a qcow2 image (no qcow2 signature): drop --image-format or give raw" \
  "inspect --image-format qcow2 web-03.img: refused the same way" -- inspect --image-format qcow2 web-03.img
is "$("$VMSCOPE" inspect --image-format raw web-03.img | jq -r .name)" web-03 "inspect --image-format raw web-03.img: the right format reads"
refused 2 "vmscope inspect: web-01 is a directory (a guest's tree), not an image: drop --image-format, which names an image file's format" \
  "inspect --image-format qcow2 web-01 (a tree): refused, not ignored (exit 2)" -- inspect --image-format qcow2 web-01
refused 2 "vmscope inspect: img.json is a feature document, not an image: drop --image-format, which names an image file's format" \
  "inspect --image-format qcow2 img.json (a document): refused, not ignored" -- inspect --image-format qcow2 img.json
"$VMSCOPE" inspect --image-format raw web-03.img web-01 >mixed.json 2>mixed.err
is "$? $(jq -r 'map(.name) | join(",")' mixed.json)" "0 web-03,web-01" \
  "inspect --image-format raw web-03.img web-01: with an image among them, the tree is read too ($(head -c 200 mixed.err))"
"$VMSCOPE" inspect web-03.img >w3.json
"$VMSCOPE" drift --image-format qcow2 --target web-02.qcow2 w3.json web-01 >/dev/null 2>mixed.err
is "$?" 0 "drift --image-format qcow2 IMAGE DOC TREE: the option applies to the image ($(head -c 200 mixed.err))"
refused 2 "vmscope drift: web-01 is a directory (a guest's tree), not an image: drop --image-format, which names an image file's format" \
  "drift --image-format qcow2 --target TREE DOC: no image among the target and samples, refused" -- drift --image-format qcow2 --target web-01 w3.json
refused 2 "vmscope diff: img.json is a feature document, not an image: drop --image-format, which names an image file's format" \
  "diff --image-format raw DOC TREE: refused the same way" -- diff --image-format raw img.json web-01
refused 2 "vmscope inspect: web-01 is a directory (a guest's tree), not an image: drop --backend, which says how to read images" \
  "inspect --backend guestfs web-01 (a tree): refused, not ignored" -- inspect --backend guestfs web-01
refused 2 "vmscope diff: img.json is a feature document, not an image: drop --backing-dir, which says where images' backing files and extents lie" \
  "diff --backing-dir DIR DOC TREE: refused the same way" -- diff --backing-dir "$work" img.json web-01
"$VMSCOPE" inspect --backend direct --backing-dir "$work" web-03.img web-01 >mixed.json 2>mixed.err
is "$? $(jq -r 'map(.name) | join(",")' mixed.json)" "0 web-03,web-01" \
  "inspect --backend direct --backing-dir DIR IMAGE TREE: with an image among them, both are read ($(head -c 200 mixed.err))"
refused 2 "vmscope inspect: --backing-dir /nonexistent: No such file or directory" \
  "inspect --backing-dir /nonexistent: refused at option time (exit 2)" -- inspect --backing-dir /nonexistent web-02.qcow2
refused 2 "vmscope inspect: --backing-dir web-03.img: not a directory (give the directory that holds the backing files)" \
  "inspect --backing-dir FILE: refused at option time (exit 2)" -- inspect --backing-dir web-03.img web-02.qcow2
echo '{"hello": "world"}' >notfeat.json
refused 1 'vmscope inspect: notfeat.json: has no "schema" (not a vmscope feature document: give one that vmscope inspect or vmscope snapshot wrote)' \
  "inspect notfeat.json: says it is not a feature document, no empty field" -- inspect notfeat.json

# ------------------------------------------------------------ options given twice
refused 2 'vmscope inspect: --format given twice ("json", then "text"): give it once' \
  "inspect --format json --format text web-01" -- inspect --format json --format text web-01
refused 2 'vmscope inspect: --backend given twice ("direct", then "guestfs"): give it once' \
  "inspect -b direct -b guestfs web-01" -- inspect -b direct -b guestfs web-01
refused 2 'vmscope inspect: --image-format given twice ("raw", then "raw"): give it once' \
  "inspect --image-format raw --image-format raw web-03.img" -- inspect --image-format raw --image-format raw web-03.img
refused 2 'vmscope diff: --format given twice ("text", then "json"): give it once' \
  "diff -f text -f json OLD NEW" -- diff -f text -f json web-01 web-01
refused 2 'vmscope snapshot: --connect given twice ("test:///default", then "test:///default"): give it once' \
  "snapshot -c test:///default -c test:///default" -- snapshot -c test:///default -c test:///default
refused 2 'vmscope snapshot: --mode given twice ("readonly", then "backup"): give it once' \
  "snapshot --mode readonly --mode backup" -- snapshot --mode readonly --mode backup
refused 2 'vmscope send: --timeout given twice ("1", then "2"): give it once' \
  "send -t 1 -t 2 -s S JSON" -- send -t 1 -t 2 -s "$work/qga.sock" '{"execute":"guest-ping"}'
refused 2 'vmscope send: --agent-socket given twice ("a", then "b"): give it once' \
  "send -s a -s b JSON" -- send -s a -s b '{"execute":"guest-ping"}'

# ------------------------------------------------------------ ignored options are refused
refused 2 "vmscope snapshot: --ignore-selected needs --domain (it takes every domain except those --domain names)" \
  "snapshot --ignore-selected without --domain (it took every domain)" -- snapshot -c test:///default --ignore-selected
refused 2 "vmscope snapshot: --backup-dir is for --mode backup" \
  "snapshot --backup-dir DIR in readonly mode (ignored before)" -- snapshot -c test:///default --backup-dir "$work"
refused 2 "vmscope snapshot: --image-format does not apply to snapshot: each disk's format comes from the domain XML" \
  "snapshot --image-format raw (ignored before)" -- snapshot -c test:///default --image-format raw
refused 2 "vmscope inspect: --compact is for JSON output, not --format text" \
  "inspect --compact --format text" -- inspect --compact --format text web-01
refused 2 "vmscope diff: --compact is for JSON output, not --quiet" \
  "diff --compact --quiet" -- diff --compact --quiet web-01 web-01
mk w1 '/etc/hostname\n'
mk w2 '/etc/ssh/sshd_config\n'
"$VMSCOPE" inspect --no-default-watch --watch w1 --watch w2 web-01 >w.json
is "$(jq -r '[.settings | keys[] | select(startswith("meta:")) | split(":")[1]] | unique | join(",")' w.json)" \
  "/etc/hostname,/etc/ssh/sshd_config" "inspect --watch w1 --watch w2: the watch files add up"

# ------------------------------------------------------------ item 9: snapshot --domain
{
  echo "<node>"
  vs_test_domain web-02 00000000-0000-4000-8000-000000000002 "$work/web-02.qcow2"
  vs_test_domain web-04 00000000-0000-4000-8000-000000000004 "$work/web-02.qcow2"
  echo "</node>"
} >node.xml
uri="test://$work/node.xml"
refused 1 "vmscope snapshot: --domain \"nosuch*\" matches no domain on $uri (the domains: web-02, web-04)" \
  "snapshot --domain 'nosuch*': a pattern that matches nothing is an error naming it (exit 1)" -- snapshot -c "$uri" --domain 'nosuch*'
refused 1 "vmscope snapshot: --domain \"nosuch\" matches no domain on $uri (the domains: web-02, web-04)" \
  "snapshot --domain web-02 --domain nosuch: one pattern matching nothing is an error, nothing is taken" -- snapshot -c "$uri" --domain web-02 --domain nosuch
"$VMSCOPE" snapshot -c "$uri" --domain 00000000-0000-4000-8000-000000000004 >uuid.json
is "$? $(jq -r '.name + " " + .id' uuid.json)" "0 web-04 00000000-0000-4000-8000-000000000004" \
  "snapshot --domain UUID: takes that domain, as send accepts UUIDs"
is "$("$VMSCOPE" snapshot -c "$uri" --domain 'web-*' | jq -r 'map(.name) | join(",")')" "web-02,web-04" \
  "snapshot --domain 'web-*': both domains"

# ------------------------------------------------------------ item 9 and 14: send
refused 2 "vmscope send: --agent-socket and --connect are two ways to reach the agent: give one" \
  "send --agent-socket S --connect URI VM JSON: conflicting ways refused in one line" -- send --agent-socket "$work/qga.sock" --connect "$uri" web-02 '{"execute":"guest-ping"}'
refused 2 "vmscope send: --agent-socket and --store are two ways to reach the agent: give one" \
  "send --agent-socket S --store URL JSON" -- send --agent-socket "$work/qga.sock" --store http://127.0.0.1:1 '{"execute":"guest-ping"}'
refused 2 "vmscope send: --connect and --store are two ways to reach the agent: give one" \
  "send --connect URI --store URL VM JSON" -- send --connect "$uri" --store http://127.0.0.1:1 web-02 '{"execute":"guest-ping"}'
refused 2 "vmscope send: --cacert is for the fleet store: give --store URL too, or drop it" \
  "send --cacert F --agent-socket S JSON" -- send --cacert ca.pem --agent-socket "$work/qga.sock" '{"execute":"guest-ping"}'
refused 2 "vmscope send: with --agent-socket give only JSON (the socket is the VM), not \"web-02\"" \
  "send --agent-socket S VM JSON: the VM is refused by name" -- send --agent-socket "$work/qga.sock" web-02 '{"execute":"guest-ping"}'
refused 2 "vmscope send: --wait is for guest-exec (it waits for the command to exit), not guest-ping" \
  "send --wait with guest-ping" -- send --wait --agent-socket "$work/qga.sock" '{"execute":"guest-ping"}'
if command -v qemu-ga >/dev/null; then
  qemu-ga -m unix-listen -p "$work/qga.sock" -t "$work" -b guest-shutdown,guest-file-open,guest-file-write >qga.log 2>&1 &
  qga=$!
  wait_for 10 test -S "$work/qga.sock" || bail "qemu-ga did not listen: $(cat qga.log)"
  exec_json() { printf '{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","%s"]}}' "$1"; }
  "$VMSCOPE" send -s "$work/qga.sock" -a guest-exec --wait --compact "$(exec_json 'echo hello; echo oops >&2; exit 3')" >w3.json 2>w3.err
  is "$? $(jq -c '[.exit_code, .signal, .output, .stderr, (.pid | type)]' w3.json)" '3 [3,0,"hello\n","oops\n","number"]' \
    "send --wait 'echo hello; echo oops >&2; exit 3': exit 3, exit code 3, stdout and stderr decoded"
  "$VMSCOPE" send -s "$work/qga.sock" -a guest-exec --wait=20 "$(exec_json 'printf ok')" >w0.json
  is "$? $(jq -c '[.exit_code, .output]' w0.json)" '0 [0,"ok"]' "send --wait=20 'printf ok': exit 0 with its output"
  "$VMSCOPE" send -s "$work/qga.sock" -a guest-exec --wait=0.5 "$(exec_json 'sleep 3')" >wt.json 2>wt.err
  rc=$?
  is "$rc $(sed 's/pid [0-9]*/pid N/' wt.err)" \
    "1 vmscope send: $work/qga.sock: /bin/sh (pid N in the guest) did not exit within 500 ms; it is left running (timeout)" \
    "send --wait=0.5 'sleep 3': a timeout (exit 1) that says the process is left running"
  "$VMSCOPE" send -s "$work/qga.sock" -a guest-exec "$(exec_json 'true')" >nowait.json
  is "$? $(jq -r 'keys | join(",")' nowait.json)" "0 pid" "send without --wait: the agent's reply, the pid"
else
  skip 4 "qemu-ga is not installed"
fi

# ------------------------------------------------------------ item 11 and 14: diff
cp -a web-01 web-01-new
mk web-01-new/etc/ssh/sshd_config 'PermitRootLogin yes\nPort 22\n'
"$VMSCOPE" diff --exit-code web-01 web-01-new >/dev/null; is $? 1 "diff --exit-code OLD NEW with a change: exit 1"
"$VMSCOPE" diff --exit-code web-01 web-01 >/dev/null; is $? 0 "diff --exit-code OLD OLD: exit 0"
"$VMSCOPE" diff web-01 web-01-new >/dev/null; is $? 0 "diff OLD NEW without --exit-code: exit 0 as before"
"$VMSCOPE" diff --quiet web-01 web-01-new >q.out; is "$? $(wc -c <q.out)" "1 0" "diff --quiet with a change: exit 1, nothing printed"
"$VMSCOPE" diff -q web-01 web-01 >q.out; is "$? $(wc -c <q.out)" "0 0" "diff -q without a change: exit 0, nothing printed"
refused 3 "vmscope diff: nosuch: No such file or directory" \
  "diff --exit-code OLD nosuch: a failed source is 3, not 'changed'" -- diff --exit-code web-01 nosuch
doc() { # NAME UUID TAKEN_AT PERMITROOTLOGIN: a saved document of a libvirt domain
  jq -n --arg n "$1" --arg u "$2" --arg t "$3" --arg p "$4" '{schema: "vmscope.features/1", id: $u, name: $n,
    taken_at: $t, source: {kind: "domain", path: $n, backend: "direct"}, os: {},
    settings: {"file:/etc/ssh/sshd_config:PermitRootLogin": $p}}'
}
doc web-01 00000000-0000-4000-8000-000000000001 2026-11-24T18:00:00Z no >a-old.json
doc web-01 00000000-0000-4000-8000-000000000001 2026-11-25T10:00:00Z yes >a-new.json
doc web-02 00000000-0000-4000-8000-000000000002 2026-11-25T10:00:00Z yes >b-new.json
"$VMSCOPE" diff --format text a-old.json a-new.json >t.txt
is "$(head -n1 t.txt)" "# web-01: 2026-11-24T18:00:00Z -> 2026-11-25T10:00:00Z" "diff --format text names the VM and both snapshot times"
is "$(sed -n 3p t.txt)" "~ file:/etc/ssh/sshd_config:PermitRootLogin: no -> yes  [local_edit]" "and the change"
is "$("$VMSCOPE" diff a-old.json a-new.json | jq -r '.old.name + " " + .new.name')" "web-01 web-01" "diff JSON names the VM too"
refused 2 "vmscope diff: OLD was taken after NEW (2026-11-25T10:00:00Z > 2026-11-24T18:00:00Z): swap them, or give --any-order to compare them as given" \
  "diff NEW OLD: swapped snapshots refused (exit 2)" -- diff a-new.json a-old.json
is "$("$VMSCOPE" diff --any-order --format text a-new.json a-old.json | sed -n 3p)" "~ file:/etc/ssh/sshd_config:PermitRootLogin: yes -> no  [local_edit]" \
  "diff --any-order NEW OLD: compared as given"
refused 2 "vmscope diff: OLD is web-01, NEW is web-02: diff compares two snapshots of one VM" \
  "diff web-01 web-02 (two domains, different UUIDs): refused (exit 2)" -- diff a-old.json b-new.json
done_testing
