#!/usr/bin/env bash
# vmscope patchset with careless inputs: every case ends in the right answer or a one-line
# refusal with its exit status, and no case writes over an input or leaves a file behind.
# Each case states the command and the exact outcome; what the directory holds (every name, and
# every file's SHA-256) is compared before and after, so a changed or extra file fails it.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
mkdir "$work/img" "$work/sub" && cd "$work/img" || bail "no work directory"
P="vmscope patchset"
qio() { qemu-io -f qcow2 "$@" >/dev/null; }
# What the directory holds: each name with its type, and each file's digest.
state() {
  (cd "$work/img" && find . -mindepth 1 -printf '%p %y %l\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}
# refused STATUS MESSAGE DESCRIPTION COMMAND...: COMMAND exits STATUS, prints exactly
# "vmscope patchset: MESSAGE" on stderr and nothing on stdout, and changes nothing.
refused() {
  local want=$1 msg=$2 desc=$3 before rc
  shift 3
  before=$(state)
  "$@" >"$work/out" 2>"$work/err"
  rc=$?
  is "$rc" "$want" "$desc: exit status $want"
  is "$(cat "$work/err")" "$P: $msg" "$desc: says \"$msg\""
  is "$(cat "$work/out")" "" "$desc: prints nothing on stdout"
  is "$(state)" "$before" "$desc: no file changed, none added, nothing left behind"
}

# root.qcow2 <- base.qcow2 <- (patched.qcow2, an overlay of the base with the patch's writes)
qemu-img create -q -f qcow2 root.qcow2 4M
qio -c "write -P 0xaa 0 4M" root.qcow2
qemu-img create -q -f qcow2 -b root.qcow2 -F qcow2 base.qcow2
qio -c "write -P 0xab 1M 64k" base.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 patched.qcow2
qio -c "write -P 0xbb 2M 64k" -c "write -P 0xbc 3M 128k" patched.qcow2
# A second patched image on a backing file of its own (a flattened copy of the base).
qemu-img convert -O qcow2 base.qcow2 pbase.qcow2
qemu-img create -q -f qcow2 -b pbase.qcow2 -F qcow2 patched2.qcow2
qio -c "write -P 0xcc 2M 64k" patched2.qcow2
qemu-img create -q -f qcow2 small.qcow2 1M
ln base.qcow2 hard.qcow2
ln -s base.qcow2 link.qcow2
mkdir d
# Byte copies of the inputs, kept outside the directory, for cmp at the end.
mkdir "$work/orig" && cp root.qcow2 base.qcow2 patched.qcow2 pbase.qcow2 patched2.qcow2 "$work/orig/"

# ------------------------------------------------------------- make: the output is an input
M=("$VMSCOPE" patchset make --base base.qcow2 --patched patched.qcow2)
W="an output never replaces an input; write it to a new file"
refused 2 "base.qcow2 is an input: $W" "make -o base.qcow2 (the base)" "${M[@]}" -o base.qcow2
refused 2 "base.qcow2 is an input: $W" "make -o base.qcow2 --force (--force never allows an input)" "${M[@]}" -o base.qcow2 --force
refused 2 "patched.qcow2 is an input: $W" "make -o patched.qcow2 (the patched image)" "${M[@]}" -o patched.qcow2
refused 2 "hard.qcow2 is the input base.qcow2 under another name: $W" "make -o hard.qcow2 (a hard link to the base)" "${M[@]}" -o hard.qcow2
refused 2 "link.qcow2 is the input base.qcow2 under another name: $W" "make -o link.qcow2 (a symlink to the base)" "${M[@]}" -o link.qcow2
refused 2 "./base.qcow2 is the input base.qcow2 under another name: $W" "make -o ./base.qcow2 (a relative path to the base)" "${M[@]}" -o ./base.qcow2
refused 2 "../sub/../img/base.qcow2 is the input base.qcow2 under another name: $W" "make -o ../sub/../img/base.qcow2 (the base through another directory)" "${M[@]}" -o ../sub/../img/base.qcow2
refused 2 "$work/img/base.qcow2 is the input base.qcow2 under another name: $W" "make -o with the base's absolute path" "${M[@]}" -o "$work/img/base.qcow2"
refused 2 "root.qcow2 is $work/img/root.qcow2, in the backing chain of the input base.qcow2: an output never replaces an image an input reads; write it to a new file" \
  "make -o root.qcow2 (the base's backing file)" "${M[@]}" -o root.qcow2 --force
refused 2 "pbase.qcow2 is $work/img/pbase.qcow2, in the backing chain of the input patched2.qcow2: an output never replaces an image an input reads; write it to a new file" \
  "make -o pbase.qcow2 (the patched image's backing file)" "$VMSCOPE" patchset make --base base.qcow2 --patched patched2.qcow2 -o pbase.qcow2
refused 2 "d is a directory: give the name of a file to write" "make -o d (a directory)" "${M[@]}" -o d --force
refused 2 "nodir/set.qcow2: no directory nodir to write it in: create it first" "make -o nodir/set.qcow2 (a directory that is not there)" "${M[@]}" -o nodir/set.qcow2
refused 2 "--base base.qcow2 and --patched hard.qcow2 are one file: give the image before the patch and the one after it" \
  "make --patched hard.qcow2 (the base again, by a hard link)" "$VMSCOPE" patchset make --base base.qcow2 --patched hard.qcow2 -o set.qcow2

# ------------------------------------------------------------------ make: options given twice
refused 2 '--base given twice ("base.qcow2", then "root.qcow2"): give it once' "make --base twice" "${M[@]}" --base root.qcow2 -o set.qcow2
refused 2 '--patched given twice ("patched.qcow2", then "patched2.qcow2"): give it once' "make --patched twice" "${M[@]}" -p patched2.qcow2 -o set.qcow2
refused 2 '--output given twice ("a.qcow2", then "b.qcow2"): give it once' "make -o twice" "${M[@]}" -o a.qcow2 -o b.qcow2
refused 2 '--cluster-size given twice ("65536", then "4096"): give it once' "make --cluster-size twice" "${M[@]}" --cluster-size 65536 --cluster-size 4096 -o set.qcow2
refused 2 '--force given twice: give it once' "make --force twice" "${M[@]}" -o set.qcow2 --force --force
refused 2 '--stats given twice: give it once' "make --stats twice" "${M[@]}" -o set.qcow2 --stats --stats
refused 2 '-o takes a file name, not an empty one' "make -o ''" "${M[@]}" -o ''
refused 2 '--base takes a file name, not an empty one' "make --base ''" "$VMSCOPE" patchset make --base '' -p patched.qcow2 -o set.qcow2
refused 2 'unknown option "--frobnicate" (see vmscope patchset --help)' "make with an unknown option" "${M[@]}" --frobnicate -o set.qcow2
refused 2 '-o needs a value (see vmscope patchset --help)' "make -o without a value" "${M[@]}" -o

# --------------------------------------------------------- make: sizes, unreadable, mid-way
refused 1 "base.qcow2 is 4194304 bytes and small.qcow2 1048576: a patch set needs disks of one size (patch a copy of the base, or qemu-img resize the smaller one first); nothing written" \
  "make with images of different virtual sizes" "$VMSCOPE" patchset make --base base.qcow2 --patched small.qcow2 -o set.qcow2
refused 1 "nosuch.qcow2: No such file or directory" "make with a patched image that is not there" "$VMSCOPE" patchset make --base base.qcow2 --patched nosuch.qcow2 -o set.qcow2
# A patched image cut short: its header and tables read, its data clusters lie past the end,
# so make fails once the layer is being written (at the first piece, of 256 KiB, that lies past it).
qemu-img create -q -f qcow2 cut.qcow2 4M
qio -c "write -P 0xdd 0 4M" cut.qcow2
truncate -s 1M cut.qcow2
refused 1 "cut.qcow2: L2 entry points at 851968, outside the file's data (1048576 bytes)" \
  "make with a patched image cut short (fails mid-way)" "$VMSCOPE" patchset make --base base.qcow2 --patched cut.qcow2 -o set.qcow2

# ---------------------------------------------------------- make: an existing output, --force
"$VMSCOPE" patchset make --base base.qcow2 --patched patched.qcow2 -o set.qcow2 2>"$work/err"
ok $? "make -o set.qcow2 (a new name) writes the set"
qemu-img compare -q set.qcow2 patched.qcow2; ok $? "and the set on its base reads as the patched image (qemu-img compare)"
qemu-img check -q set.qcow2; ok $? "and passes qemu-img check"
is "$(ls set.qcow2*)" "set.qcow2
set.qcow2.json" "the set and its manifest, nothing else"
printf 'my notes\n' >notes.txt
refused 2 "notes.txt exists already: not replaced (choose another name, remove it, or give --force to replace it)" \
  "make -o notes.txt (an unrelated existing file) without --force" "${M[@]}" -o notes.txt
printf '{"mine": true}\n' >other.qcow2.json
refused 2 "other.qcow2.json exists already: not replaced (choose another name, remove it, or give --force to replace it)" \
  "make -o other.qcow2 whose manifest name other.qcow2.json exists" "${M[@]}" -o other.qcow2
refused 1 "cut.qcow2: L2 entry points at 851968, outside the file's data (1048576 bytes)" \
  "make --force -o notes.txt failing mid-way (the old file stays as it was)" "$VMSCOPE" patchset make --force --base base.qcow2 --patched cut.qcow2 -o notes.txt
"$VMSCOPE" patchset make --force --base base.qcow2 --patched patched2.qcow2 -o notes.txt 2>"$work/err"
ok $? "make --force -o notes.txt replaces the unrelated file ($(cat "$work/err"))"
qemu-img compare -q notes.txt patched2.qcow2; ok $? "with a set that reads as the patched image"
jq -e '.base.identity | length == 64' notes.txt.json >/dev/null; ok $? "and writes its manifest beside it"
[ -z "$(find . -name '*.tmp*')" ]; ok $? "no temporary file is left behind"

# -------------------------------------------------------------- apply: careless sets and disks
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 vm.qcow2
qio -c "write -P 0xee 0 64k" vm.qcow2
"$VMSCOPE" patchset make --base base.qcow2 --patched patched2.qcow2 -o set2.qcow2
refused 1 "set.qcow2 is the patch set itself: give the disk's top image (--image TOP) and the set to put under it" \
  "apply --image set.qcow2 set.qcow2 (the set as its own disk)" "$VMSCOPE" patchset apply --image set.qcow2 set.qcow2
refused 1 "base.qcow2 is the set's base itself: apply the set to the overlay a VM runs on (its top image), never to the base: not changed" \
  "apply --image base.qcow2 set.qcow2 (the base as the disk)" "$VMSCOPE" patchset apply --image base.qcow2 set.qcow2
refused 1 "vm.qcow2 is not a patch set: it has no manifest vm.qcow2.json beside it (give the SET.qcow2 vmscope patchset make wrote, with its .json)" \
  "apply --image set.qcow2 vm.qcow2 (disk and set swapped)" "$VMSCOPE" patchset apply --image set.qcow2 vm.qcow2
refused 1 "base.qcow2 is not a patch set: it has no manifest base.qcow2.json beside it (give the SET.qcow2 vmscope patchset make wrote, with its .json)" \
  "apply --image vm.qcow2 base.qcow2 (the base given as the set)" "$VMSCOPE" patchset apply --image vm.qcow2 base.qcow2
refused 1 "set2.qcow2 sits on the set's base but is a patch set itself (it has a manifest): re-pointing it would change a set other disks may use; make one set from both patches instead: not changed" \
  "apply --image set2.qcow2 set.qcow2 (a set under another set)" "$VMSCOPE" patchset apply --image set2.qcow2 set.qcow2
refused 2 "set.qcow2 given twice: apply takes one SET.qcow2" "apply --image vm.qcow2 set.qcow2 set.qcow2" \
  "$VMSCOPE" patchset apply --image vm.qcow2 set.qcow2 set.qcow2
refused 2 '--image given twice ("vm.qcow2", then "set2.qcow2"): give it once' "apply --image twice" \
  "$VMSCOPE" patchset apply --image vm.qcow2 --image set2.qcow2 set.qcow2
refused 2 "--backing-dir is for status, not apply" "apply --backing-dir (ignored before)" \
  "$VMSCOPE" patchset apply --backing-dir . --image vm.qcow2 set.qcow2
refused 2 "--flush is for a running VM, not a stopped disk's --image" "apply --image --flush (ignored before)" \
  "$VMSCOPE" patchset apply --flush true --image vm.qcow2 set.qcow2
refused 2 '--method takes reopen or copy, not "fast"' "apply --method fast" "$VMSCOPE" patchset apply --method fast vm set.qcow2
refused 2 "--timeout is for --method copy" "apply --timeout without --method copy" "$VMSCOPE" patchset apply --timeout 5 vm set.qcow2
refused 2 '--timeout takes whole seconds, 1 to 86400, not "5s"' "apply --method copy --timeout 5s" "$VMSCOPE" patchset apply --method copy --timeout 5s vm set.qcow2
refused 2 "--qmp is for apply, not status" "status --qmp" "$VMSCOPE" patchset status --qmp q.sock --image vm.qcow2
refused 2 "set.qcow2 given twice: apply takes one SET.qcow2" "apply --qmp with the set twice" \
  "$VMSCOPE" patchset apply --qmp q.sock set.qcow2 ./set.qcow2
refused 2 "--agent-socket is for --qmp (a libvirt DOMAIN's agent is reached through libvirt)" "apply --agent-socket without --qmp" \
  "$VMSCOPE" patchset apply --agent-socket a.sock vm set.qcow2

"$VMSCOPE" patchset apply --image vm.qcow2 set.qcow2 >"$work/apply.json"; ok $? "apply --image vm.qcow2 set.qcow2 inserts the set"
is "$(qemu-img info --output=json vm.qcow2 | jq -r '."backing-filename"')" "$work/img/set.qcow2" "the disk now sits on the set"
refused 1 "vm.qcow2: the patch set set.qcow2 is already in its chain: not changed" "apply the same set again" \
  "$VMSCOPE" patchset apply --image vm.qcow2 set.qcow2
ln set.qcow2 set-hard.qcow2 && ln set.qcow2.json set-hard.qcow2.json
refused 1 "vm.qcow2: the patch set set-hard.qcow2 is already in its chain: not changed" "apply the set again by a hard link" \
  "$VMSCOPE" patchset apply --image vm.qcow2 set-hard.qcow2
cp set.qcow2 set-copy.qcow2 && cp set.qcow2.json set-copy.qcow2.json
refused 1 "vm.qcow2: the patch set set-copy.qcow2 is already in its chain as $work/img/set.qcow2 (the same changes on the same base): not changed" \
  "apply a copy of the set already applied" "$VMSCOPE" patchset apply --image vm.qcow2 set-copy.qcow2
qemu-img create -q -f qcow2 -b pbase.qcow2 -F qcow2 vm2.qcow2
refused 1 "vm2.qcow2: its chain is not based on the set's base (identity $(jq -r '.base.identity[:16]' set.qcow2.json)...): not changed" \
  "apply a set to a disk on another base" "$VMSCOPE" patchset apply --image vm2.qcow2 set.qcow2
qemu-img check -q vm.qcow2 && qemu-img check -q set.qcow2 && qemu-img check -q base.qcow2; ok $? "every image passes qemu-img check"

for f in root base patched pbase patched2; do
  cmp "$f.qcow2" "$work/orig/$f.qcow2"; ok $? "after all of the above, $f.qcow2 is byte-identical to its copy made first (cmp)"
done

# ------------------------------------------------------------------- status on a non-image
printf '{"not": "an image"}\n' >notes.json
refused 1 "notes.json is not a qcow2 image (it reads as raw): it has no backing chain, so no patch set; give a disk's top qcow2 image" \
  "status --image notes.json (not an image)" "$VMSCOPE" patchset status --image notes.json
refused 1 "d: not a regular file or block device" "status --image d (a directory)" "$VMSCOPE" patchset status --image d
refused 2 "status takes nothing but --image TOP" "status --image vm.qcow2 extra" "$VMSCOPE" patchset status --image vm.qcow2 extra
"$VMSCOPE" patchset status --image vm.qcow2 >"$work/status.json"; ok $? "status --image vm.qcow2 reads the chain"
is "$(jq -r '.[0].image' "$work/status.json")" "$work/img/set.qcow2" "and lists the set"

# ------------------------------------------------------- apply to a running VM (QMP), careless
if command -v qemu-system-x86_64 >/dev/null && [ -x "$VS_BUILDDIR/t/lib/qmp_cmd" ]; then
  mkdir "$work/vm" && cd "$work/vm" || bail "no VM directory"
  cp "$work/img/root.qcow2" base.qcow2
  cp base.qcow2 p.qcow2
  qio -c "write -P 0x77 0 64k" p.qcow2
  "$VMSCOPE" patchset make -b base.qcow2 -p p.qcow2 -o fix.qcow2 || bail "no set for the VM"
  # The VM's disk is the set itself (a careless copy, manifest and all): vm.qcow2 on the base.
  cp fix.qcow2 vm.qcow2 && cp fix.qcow2.json vm.qcow2.json
  if vs_qemu_vm "$work/vm" "" ""; then
    sums=$(sha256sum ./*.qcow2 ./*.json)
    "$VMSCOPE" patchset apply --qmp "$work/vm/qmp.sock" vm.qcow2 >"$work/out" 2>"$work/err"
    is "$?" 1 "apply --qmp with the VM's own disk as the set: exit status 1"
    is "$(cat "$work/err")" "$P: $work/vm/qmp.sock: vm.qcow2 is the disk's own top image, not a patch set to put under it: not changed" \
      "says the set is the disk's own top image"
    "$VMSCOPE" patchset apply --qmp "$work/vm/qmp.sock" --device vs-patch-0123 fix.qcow2 >"$work/out" 2>"$work/err"
    is "$?" 1 "apply --qmp --device naming a layer node: exit status 1"
    is "$(cat "$work/err")" "$P: $work/vm/qmp.sock: node vs-patch-0123 is a patch set's layer node: name the disk's format node with --device (or leave it out)" \
      "says to name the disk's node"
    is "$(sha256sum ./*.qcow2 ./*.json)" "$sums" "no image or manifest changed"
  else
    skip 5 "QEMU did not start: $(head -n 3 "$work/vm/qemu.log")"
  fi
  [ -n "${VS_QEMU_PID:-}" ] && kill "$VS_QEMU_PID" 2>/dev/null && wait "$VS_QEMU_PID" 2>/dev/null
  cd "$work/img" || bail "no work directory"
else
  skip 5 "qemu-system-x86_64 or t/lib/qmp_cmd is not available"
fi
# Two bases with one qcow2 layout and different contents (two file systems of one size,
# converted alike): their headers and L1 tables are equal, so the set's base is told by content.
twin=$(tmpdir)
mkdir -p "$twin/t1/etc" "$twin/t2/etc"
echo one >"$twin/t1/etc/hostname"
echo two >"$twin/t2/etc/hostname"
for i in 1 2; do
  mke2fs -q -t ext4 -d "$twin/t$i" "$twin/fs$i.raw" 16M && qemu-img convert -O qcow2 "$twin/fs$i.raw" "$twin/fs$i.qcow2"
done
cp "$twin/fs1.qcow2" "$twin/fs1p.qcow2"
qemu-io -f qcow2 -c 'write -P 0x5a 8M 64k' "$twin/fs1p.qcow2" >/dev/null
"$VMSCOPE" patchset make --base "$twin/fs1.qcow2" --patched "$twin/fs1p.qcow2" -o "$twin/set.qcow2" >/dev/null 2>&1
ok $? "a set on the first file system"
qemu-img create -q -f qcow2 -b fs2.qcow2 -F qcow2 "$twin/on2.qcow2"
before=$(sha256sum "$twin/on2.qcow2")
"$VMSCOPE" patchset apply --image "$twin/on2.qcow2" "$twin/set.qcow2" >/dev/null 2>"$twin/err"
is "$?" 1 "is refused on a disk whose base has the same layout but other contents"
grep -q "its chain is not based on the set's base" "$twin/err"; ok $? "saying its chain is not on the set's base"
is "$(sha256sum "$twin/on2.qcow2")" "$before" "and the disk is unchanged"
rm -rf "$twin"
done_testing
