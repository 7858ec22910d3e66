#!/usr/bin/env bash
# vmscope's command line: help, exit codes, output forms, watch files.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
for g in web-01 web-02; do
  mk "$work/$g/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
  mk "$work/$g/etc/hostname" "$g\n"
  mk "$work/$g/etc/ssh/sshd_config" 'PermitRootLogin no\nPort 22\n'
  mk "$work/$g/etc/myapp.conf" 'mode=fast\nthreads=4\n'
done
mk "$work/web-02/etc/ssh/sshd_config" 'PermitRootLogin yes\nPort 22\n'

out=$("$VMSCOPE" --help); rc=$?
ok $rc "vmscope --help exits 0"
echo "$out" | grep -q 'inspect'; ok $? "and lists the inspect command"
out=$("$VMSCOPE" inspect --help); rc=$?
ok $rc "vmscope inspect --help exits 0"
for opt in --format --watch --no-default-watch --compact --quiet --stats --backend --image-format --backing-dir; do
  echo "$out" | grep -q -- "$opt"; ok $? "inspect --help documents $opt"
done
for cmd in "snapshot --connect --domain --ignore-selected --mode --backup-dir --data-dir --format --compact --backend --watch" \
  "send --agent-socket --connect --store --proxy-socket --timeout --allow --wait --compact --cacert --cert --key --user" \
  "fleet --store --prefix --host --socket --connect --vm --lease --allow --timeout --cacert --cert --key --user" \
  "diff --format --compact --exit-code --quiet --any-order --backend" \
  "patchset --base --patched --output --force --cluster-size --stats --image --connect --backing-dir --qmp --device --flush --agent-socket"; do
  set -- $cmd
  sub=$1
  shift
  out=$("$VMSCOPE" "$sub" --help); rc=$?
  ok $rc "vmscope $sub --help exits 0"
  missing=""
  for opt in "$@"; do echo "$out" | grep -q -- "$opt" || missing+=" $opt"; done
  is "$missing" "" "vmscope $sub --help documents all its options"
  grep -qE "^\.B vmscope $sub" "$VS_SRCDIR/man/vmscope.1"; ok $? "and vmscope(1) describes vmscope $sub"
done
"$VMSCOPE" >/dev/null 2>&1; is $? 2 "no command is a usage error (2)"
"$VMSCOPE" frobnicate >/dev/null 2>&1; is $? 2 "an unknown command is a usage error (2)"
"$VMSCOPE" inspect >/dev/null 2>&1; is $? 2 "inspect without a source is a usage error (2)"
"$VMSCOPE" inspect --format yaml "$work/web-01" >/dev/null 2>&1; is $? 2 "an unknown format is a usage error (2)"
err=$("$VMSCOPE" inspect --watch "$work/nope" "$work/web-01" 2>&1 >/dev/null); is $? 2 "a missing watch file is a usage error (2)"
echo "$err" | grep -q "$work/nope"; ok $? "and the message names the file"

"$VMSCOPE" inspect "$work/web-01" >"$work/one.json"; ok $? "one source exits 0"
is "$(jq -r .schema "$work/one.json")" "vmscope.features/1" "one source prints one document"
is "$(jq -r '.settings["file:/etc/ssh/sshd_config:PermitRootLogin"]' "$work/one.json")" "no" "with its sshd setting"
is "$(jq -r .os.hostname "$work/one.json")" "web-01" "and its hostname"

"$VMSCOPE" inspect "$work/web-01" "$work/web-02" >"$work/two.json"; ok $? "two sources exit 0"
is "$(jq -r 'length' "$work/two.json")" 2 "two sources print a JSON array of two"
is "$(jq -r '.[1].settings["file:/etc/ssh/sshd_config:PermitRootLogin"]' "$work/two.json")" "yes" "in order"

"$VMSCOPE" inspect "$work/web-01" "$work/missing" "$work/web-02" >"$work/part.json" 2>"$work/part.err"
is $? 1 "a failing source makes the exit status 1"
is "$(jq -r 'length' "$work/part.json")" 2 "while the other sources are still printed"
grep -q "$work/missing" "$work/part.err"; ok $? "and the error names the failing source"

"$VMSCOPE" inspect --format text "$work/web-02" >"$work/text.out"; ok $? "text format exits 0"
grep -qx 'file:/etc/ssh/sshd_config:PermitRootLogin = yes' "$work/text.out"; ok $? "text format prints key = value lines"

printf '# my application\n/etc/myapp.conf Simplevars.lns\n!/etc/hosts\n' >"$work/watch"
"$VMSCOPE" inspect --watch "$work/watch" "$work/web-01" >"$work/w.json"; ok $? "a watch file is accepted"
is "$(jq -r '.settings["file:/etc/myapp.conf:threads"]' "$work/w.json")" "4" "its entry adds a config file parsed with the named lens"
is "$(jq -r '.settings["meta:/etc/myapp.conf:owner"]' "$work/w.json")" "0:0" "and the file's metadata"
"$VMSCOPE" inspect --no-default-watch "$work/web-01" >"$work/nd.json"
is "$(jq -r '.settings["file:/etc/ssh/sshd_config:PermitRootLogin"] // "absent"' "$work/nd.json")" "absent" "--no-default-watch drops the default list"
printf '/etc/myapp.conf no-such-lens\n' >"$work/badwatch"
err=$("$VMSCOPE" inspect --watch "$work/badwatch" "$work/web-01" 2>&1 >/dev/null); is $? 2 "a bad lens name in a watch file is a usage error"
echo "$err" | grep -q "badwatch:1"; ok $? "and the message names file and line"
"$VMSCOPE" inspect --backend magic "$work/web-01" >/dev/null 2>&1; is $? 2 "an unknown backend is a usage error (2)"
err=$("$VMSCOPE" inspect --image-format vdi "$work/web-01" 2>&1 >/dev/null); is $? 2 "an unknown image format is a usage error (2)"
echo "$err" | grep -q 'takes raw, qcow2, vhd (or vpc), vhdx or vmdk, not "vdi"'; ok $? "and the message lists the formats: $err"
"$VMSCOPE" --version | grep -qE '^vmscope [0-9]'; ok $? "--version prints the version"

# The progress line of the libguestfs path: on a terminal only, never under -q/--quiet. An
# overlay whose backing file lies outside the allowed directories is refused by our reader
# before any appliance starts, after the line shows "checking the images": no launch needed.
# t/integration/debootstrap.sh checks the launch itself, on a terminal and off one.
for sub in inspect drift diff analyze similar report; do
  "$VMSCOPE" "$sub" --help | grep -q -- '-q, --quiet'; ok $? "vmscope $sub --help documents -q, --quiet"
done
mkdir -p "$work/imgs/a" "$work/imgs/b"
qemu-img create -q -f qcow2 "$work/imgs/b/base.qcow2" 16M &&
  qemu-img create -q -f qcow2 -b ../b/base.qcow2 -F qcow2 "$work/imgs/a/over.qcow2" || bail "qemu-img cannot make the overlay"
refusal="$work/imgs/a/over.qcow2: backing file \"../b/base.qcow2\" resolves to $work/imgs/b/base.qcow2, outside the directories backing files may lie in ($work/imgs/a)"
# on_tty ARGS...: vmscope ARGS run with standard error on a pseudo-terminal (util-linux's
# script), standard output to a file; prints what the terminal received, with its \r\n as \n.
on_tty() {
  script -qec "$(printf '%q ' "$VMSCOPE" "$@") >$(printf '%q' "$work/tty.stdout")" /dev/null </dev/null | sed 's/\r$//'
}
"$VMSCOPE" inspect --backend guestfs "$work/imgs/a/over.qcow2" >/dev/null 2>"$work/notty.err"
is "$? $(cat "$work/notty.err")" "1 vmscope inspect: $refusal" \
  "standard error not a terminal: no progress line, the refusal alone"
out=$(on_tty inspect --backend guestfs "$work/imgs/a/over.qcow2")
case "$out" in
  $'\rvmscope: libguestfs appliance for 1 image: checking the images\r'*) ok 0 "on a terminal, the progress line shows the phase" ;;
  *) ok 1 "on a terminal, the progress line shows the phase"; diag "got: $(printf '%q' "$out")" ;;
esac
is "$(printf '%s' "$out" | awk -F'\r' '{ print $NF }')" "vmscope inspect: $refusal" \
  "and is erased before the refusal, which comes out whole on a line of its own"
is "$(printf '%s' "$out" | awk -F'\r' '{ print $(NF - 1) }' | tr -d ' ')" "" "  (spaces over the line, then back to its start)"
for args in "inspect -q --backend guestfs imgs/a/over.qcow2" "inspect --quiet --backend guestfs imgs/a/over.qcow2" \
  "diff -q --backend guestfs web-01 imgs/a/over.qcow2" "drift -q --backend guestfs --all web-01 web-02 imgs/a/over.qcow2"; do
  set -- $args
  sub=$1
  shift
  out=$(cd "$work" && on_tty "$sub" "$@")
  is "$(printf '%s' "$out" | tr '\r' '|')" "vmscope $sub: ${refusal//$work\/imgs\/a\/over/imgs/a/over}" \
    "vmscope $args on a terminal: no progress line, the refusal alone"
  quiet=$1
  shift
  out=$(cd "$work" && on_tty "$sub" "$@")
  [[ "$out" == $'\rvmscope: libguestfs appliance for 1 image: checking the images\r'* ]]
  ok $? "  and without $quiet the line shows"
done
done_testing
