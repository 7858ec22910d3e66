#!/usr/bin/env bash
# Live substitution the guest uses (issue 20, point 3): a patch set that replaces a script the
# guest runs and two data files is made from two images and put under a real running guest's
# disk. Until the guest drops its caches it still reads what it had cached; after, it reads the
# new content and the script runs with its new behaviour, while a patched file the guest had
# overwritten itself keeps the guest's data (the report counts it shadowed), as does a file it
# wrote. Twice: the set put in by a reopen of the disk's node, then a second set on it by a block
# copy with --flush. The guest's kernel logs no I/O error, and the disk, stopped, is a clean ext4.
#
# The images: A, an overlay of the cached guest base holding the three files, each in a
# 64 KiB cluster of its own (files of padding between them); A2 and A3, overlays of A and of the
# first set, differ from what they sit on in those files' data blocks alone (same sizes), so the
# sets touch no ext4 metadata under the mounted file system. The guest runs on an overlay of A.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/libvirtd.sh"
. "$VS_SRCDIR/t/lib/guest.sh"
N=44 # the number of tests, for the skips
work=$(tmpdir)
dom=vs-guest-patch
cleanup() {
  vs_libvirtd_stop
  rm -rf "$work"
}
trap cleanup EXIT

vs_guest_require $N
for c in debugfs dumpe2fs e2fsck sfdisk qemu-io cmp; do
  command -v "$c" >/dev/null || bail "$c is not installed (scripts/install-deps.sh installs it)"
done
# Before the libvirtd lock, as the images below: a first build takes minutes.
vs_guest_image || bail "$VS_GUEST_WHY"
ok 0 "the guest's kernel, initramfs and base image are at hand"

# ---------------------------------------------------------------- the images, offline
vm=$work/vm raw=$work/raw f=$work/files
mkdir -p "$vm" "$raw" "$f" && chmod 755 "$work" "$vm" || bail "cannot make $vm"
# Backing files are looked for beside the image (vmscope refuses others): the base, linked in.
ln "$VS_GUEST_CACHE/base.qcow2" "$vm/base.qcow2" 2>/dev/null || cp "$VS_GUEST_CACHE/base.qcow2" "$vm/base.qcow2" ||
  bail "cannot link or copy the base into $vm"
printf '#!/bin/sh\necho "hello v1"\n' >"$f/hello.v1"
printf 'data one: what the image had before the patch\n' >"$f/data.v1"
printf 'mine one: the guest will write over this file\n' >"$f/mine.v1"
for n in 2 3; do
  word=$([ $n = 2 ] && echo two || echo six) # as long as "one": the files keep their sizes
  sed "s/v1/v$n/" "$f/hello.v1" >"$f/hello.v$n"
  sed "s/^data one/data $word/" "$f/data.v1" >"$f/data.v$n"
  sed "s/^mine one/mine $word/" "$f/mine.v1" >"$f/mine.v$n"
done
own_mine=$(sed 's/^mine one/mine own/' "$f/mine.v1") # what the guest writes over it, in place
# Padding (not zeros, which debugfs would leave as holes) keeps each file in a cluster of its own.
yes 'padding between the files' | head -c 131072 >"$f/pad"

qemu-img convert -O raw "$vm/base.qcow2" "$raw/base.raw" && cp --sparse=always "$raw/base.raw" "$raw/a.raw" ||
  bail "cannot convert the base to raw"
part=$(sfdisk -J "$raw/a.raw" | jq '.partitiontable as $t | $t.partitions[0].start * ($t.sectorsize // 512)')
fs="$raw/a.raw?offset=$part" # libext2fs opens the partition at this offset of the disk
bs=$(dumpe2fs -h "$fs" 2>/dev/null | sed -n 's/^Block size: *//p')
[ -n "$part" ] && [ -n "$bs" ] || bail "no ext4 file system found on the base's first partition ($fs)"
debugfs -w "$fs" -f - >"$work/debugfs.log" 2>&1 <<EOF
mkdir /srv/vs
cd /srv/vs
write $f/pad pad0
cd /usr/local/bin
write $f/hello.v1 vs-hello
sif vs-hello mode 0100755
cd /srv/vs
write $f/pad pad1
write $f/data.v1 data
write $f/pad pad2
write $f/mine.v1 mine
write $f/pad pad3
EOF
files=(/usr/local/bin/vs-hello /srv/vs/data /srv/vs/mine)
names=(hello data mine)
declare -A blk clu
for i in 0 1 2; do
  blk[${names[$i]}]=$(debugfs -R "bmap ${files[$i]} 0" "$fs" 2>/dev/null)
  clu[${names[$i]}]=$(((part + ${blk[${names[$i]}]:-0} * bs) / 65536))
done
got=$(for i in 0 1 2; do debugfs -R "cat ${files[$i]}" "$fs" 2>/dev/null; done)
is "$got" "$(cat "$f/hello.v1" "$f/data.v1" "$f/mine.v1")" \
  "debugfs writes the script and the two data files into a raw copy of the base ($bs-byte blocks, partition at $part)"
is "$(printf '%s\n' "${clu[@]}" | sort -u | wc -l)" 3 \
  "each file's data block is in a 64 KiB cluster of its own (blocks ${blk[hello]} ${blk[data]} ${blk[mine]}: clusters ${clu[hello]} ${clu[data]} ${clu[mine]})"
e2fsck -fn "$fs" >"$work/fsck-a.log" 2>&1
ok $? "e2fsck finds the file system with the files clean $(tail -n 1 "$work/fsck-a.log")"

# A: an overlay of the base with the clusters that differ, copied one by one (qemu-img convert -B
# would copy every cluster).
cmp -l "$raw/base.raw" "$raw/a.raw" | awk '{ c = int(($1 - 1) / 65536); if (c != last) print c; last = c }' >"$work/a.clusters"
qemu-img create -q -f qcow2 -b "$vm/base.qcow2" -F qcow2 "$vm/a.qcow2" || bail "qemu-img create $vm/a.qcow2 failed"
io=()
while read -r c; do
  dd if="$raw/a.raw" of="$raw/c$c" bs=64k skip="$c" count=1 status=none && io+=(-c "write -q -s $raw/c$c $((c * 65536)) 64k")
done <"$work/a.clusters"
qemu-io -f qcow2 "${io[@]}" "$vm/a.qcow2" && qemu-img compare -q -f qcow2 -F raw "$vm/a.qcow2" "$raw/a.raw"
ok $? "image A, an overlay of the base with its $(wc -l <"$work/a.clusters") changed clusters, reads as the raw copy (qemu-img compare)"

# A2 (on A) and A3 (on the first set, below): the new content written over the files' blocks.
patch_files() { # IMAGE VERSION
  qemu-io -f qcow2 \
    -c "write -q -s $f/hello.v$2 $((part + ${blk[hello]} * bs)) $(wc -c <"$f/hello.v$2")" \
    -c "write -q -s $f/data.v$2 $((part + ${blk[data]} * bs)) $(wc -c <"$f/data.v$2")" \
    -c "write -q -s $f/mine.v$2 $((part + ${blk[mine]} * bs)) $(wc -c <"$f/mine.v$2")" "$1"
}
qemu-img create -q -f qcow2 -b "$vm/a.qcow2" -F qcow2 "$vm/a2.qcow2" && patch_files "$vm/a2.qcow2" 2 ||
  bail "cannot make $vm/a2.qcow2"
qemu-img convert -O raw "$vm/a2.qcow2" "$raw/a2.raw" || bail "cannot convert $vm/a2.qcow2 to raw"
fs2="$raw/a2.raw?offset=$part"
want_bytes=$(for n in hello data mine; do cmp -l "$f/$n.v1" "$f/$n.v2"; done | wc -l)
is "$(cmp -l "$raw/a.raw" "$raw/a2.raw" | wc -l)" "$want_bytes" "A2 differs from A in the $want_bytes bytes the new content changes, nothing else"
got=$(for i in 0 1 2; do debugfs -R "cat ${files[$i]}" "$fs2" 2>/dev/null; done)
is "$got" "$(cat "$f/hello.v2" "$f/data.v2" "$f/mine.v2")" "in A2 the files read as version 2 (debugfs)"
e2fsck -fn "$fs2" >"$work/fsck-a2.log" 2>&1
ok $? "and its file system is clean (e2fsck) $(tail -n 1 "$work/fsck-a2.log")"
rm -rf "$raw"

"$VMSCOPE" patchset make --base "$vm/a.qcow2" --patched "$vm/a2.qcow2" -o "$vm/v2.qcow2" --stats 2>"$work/make2.err"
ok $? "vmscope patchset make makes the set v2 from A and A2: $(cat "$work/make2.err")"
is "$(jq -r '[.files[].path] | sort | join(" ")' "$vm/v2.qcow2.json")" "/srv/vs/data /srv/vs/mine /usr/local/bin/vs-hello" \
  "its manifest lists the three files changed, none of the padding around them"
cl() { for n in "$@"; do printf '[%s,65536]' $((clu[$n] * 65536)); done; }
is "$(jq -c '.changed' "$vm/v2.qcow2.json")" "[$(cl hello data mine | sed 's/\]\[/],[/g')]" \
  "and the three clusters that hold them as its changed ranges"
qemu-img create -q -f qcow2 -b "$vm/v2.qcow2" -F qcow2 "$vm/a3.qcow2" && patch_files "$vm/a3.qcow2" 3 ||
  bail "cannot make $vm/a3.qcow2"
"$VMSCOPE" patchset make --base "$vm/v2.qcow2" --patched "$vm/a3.qcow2" -o "$vm/v3.qcow2" 2>"$work/make3.err" &&
  jq -e '[.files[].path] | length == 3' "$vm/v3.qcow2.json" >/dev/null
ok $? "and the set v3 from the set v2 and A3, the same three files $(cat "$work/make3.err")"
chmod 644 "$vm"/*.qcow2

# ---------------------------------------------------------------- the guest on an overlay of A
if ! vs_libvirtd_start "$work/libvirt"; then
  skip $((N - 12)) "no private libvirtd: $VS_LIBVIRT_WHY"
  done_testing
  exit $?
fi
if ! vs_guest_boot_on "$dom" "$vm" "$vm/a.qcow2"; then
  ok 1 "the guest boots on an overlay of A and its agent answers: $VS_GUEST_WHY"
  skip $((N - 13)) "the guest did not boot"
  done_testing
  exit $?
fi
ok 0 "the guest boots on an overlay of A (chain: overlay, A, base) and its agent answers (${VS_GUEST_BOOT_S} s)"
g() { vs_guest_exec "$dom" /bin/sh -c "$1" 2>&1; }
# What the guest's script prints, and what its data file, the file it wrote over and its own file
# hold, in one round trip (most of a second in an emulated guest).
reads() { g '/usr/local/bin/vs-hello; cat /srv/vs/data /srv/vs/mine /srv/vs/own' | tr '\n' '|'; }
v() { printf 'hello v%s|%s|%s|written by the guest|' "$1" "$(cat "$f/data.v$1")" "$own_mine"; }
# The guest runs the script and reads the data (now in its page cache), writes over the third
# file in place (the same blocks: its overlay now holds that cluster) and writes a file of its own.
is "$(g '/usr/local/bin/vs-hello; cat /srv/vs/data' | tr '\n' '|')" "hello v1|$(cat "$f/data.v1")|" \
  "in the guest the script prints hello v1 and the data file holds version 1"
g "printf '%s\n' '$own_mine' | dd of=/srv/vs/mine conv=notrunc,fsync status=none &&
   echo 'written by the guest' >/srv/vs/own && sync" >"$work/write.out"
ok $? "the guest writes over /srv/vs/mine in place and writes /srv/vs/own $(cat "$work/write.out")"
is "$(reads)" "$(v 1)" "and reads its own content back"

# ---------------------------------------------------------------- v2, by a reopen; the flush apart
t0=$(vs_guest_now)
"$VMSCOPE" patchset apply --connect "$VS_LIBVIRT_URI" "$dom" "$vm/v2.qcow2" >"$work/apply2.json" 2>"$work/apply2.err"
rc=$?
apply2_s=$(vs_guest_since "$t0")
ok $rc "vmscope patchset apply puts the set v2 under the running guest's disk ($apply2_s s) $(cat "$work/apply2.err")"
reopen_ms=$(jq -r '.reopen_seconds * 1000 | . * 10 | round / 10' "$work/apply2.json")
ok "$(jq -e '.reopen_seconds >= 0' "$work/apply2.json" >/dev/null; echo $?)" \
  "the report gives the reopen's pause: the node drained and reopened in ${reopen_ms} ms (the whole apply ${apply2_s} s)"
is "$(jq -c '[.set_clusters, .shadowed, .shadowed_ranges]' "$work/apply2.json")" "[3,1,[$(cl mine)]]" \
  "coverage: of the set's 3 clusters, 1 is shadowed, the one of the file the guest wrote over"
is "$(virsh -c "$VS_LIBVIRT_URI" domstate "$dom" 2>/dev/null | head -n1)" running "the guest kept running"
is "$(qemu-img info -U --output=json "$vm/$dom.qcow2" | jq -r '."backing-filename"')" "$vm/v2.qcow2" \
  "its overlay's header names the set"
is "$(reads)" "$(v 1)" "before the flush the guest still reads what it had cached: hello v1, data version 1"
t0=$(vs_guest_now)
g 'sync && echo 3 >/proc/sys/vm/drop_caches' >"$work/flush2.out"
ok $? "the guest drops its caches through the agent ($(vs_guest_since "$t0") s) $(cat "$work/flush2.out")"
is "$(reads)" "$(v 2)" \
  "after the flush the script prints hello v2 and the data file holds version 2; the file the guest wrote over and the one it wrote keep the guest's data"
"$VMSCOPE" patchset apply --connect "$VS_LIBVIRT_URI" "$dom" "$vm/v2.qcow2" >/dev/null 2>"$work/again2.err"
is "$?:$(grep -c 'runs on the set .* already' "$work/again2.err")" 1:1 "applying v2 again is refused: $(cat "$work/again2.err")"
"$VMSCOPE" patchset status --connect "$VS_LIBVIRT_URI" "$dom" >"$work/status2.json" 2>"$work/status2.err"
is "$?:$(jq -r '[.[].image] | join(" ")' "$work/status2.json")" "0:$vm/v2.qcow2" \
  "patchset status finds the set in the running disk's chain $(cat "$work/status2.err")"

# ---------------------------------------------------------------- v3 on v2, by a block copy, with --flush
t0=$(vs_guest_now)
"$VMSCOPE" patchset apply --connect "$VS_LIBVIRT_URI" --method copy --flush 'sync; echo 3 >/proc/sys/vm/drop_caches' \
  "$dom" "$vm/v3.qcow2" >"$work/apply3.json" 2>"$work/apply3.err"
rc=$?
apply3_s=$(vs_guest_since "$t0")
ok $rc "vmscope patchset apply --method copy --flush puts the set v3 under the disk, now on v2 ($apply3_s s) $(cat "$work/apply3.err")"
pivot_ms=$(jq -r '.pivot_seconds * 1000 | . * 10 | round / 10' "$work/apply3.json")
is "$(jq -r '.method + " " + .disk + " " + .image' "$work/apply3.json")" "copy vda $vm/$dom.v3.qcow2" \
  "the disk moved to a new top image on the set (the pivot took ${pivot_ms} ms, the whole apply with its flush ${apply3_s} s)"
is "$(jq -c '[.flush.status, .flush.exit_code]' "$work/apply3.json")" '["ok",0]' \
  "the flush ran in the guest through its agent: $(jq -c .flush "$work/apply3.json")"
is "$(jq -c '[.set_clusters, .shadowed, .shadowed_ranges]' "$work/apply3.json")" "[3,1,[$(cl mine)]]" \
  "coverage: the guest's own cluster, copied to the new top, shadows the set's one there again"
is "$(qemu-img info -U --output=json "$vm/$dom.v3.qcow2" | jq -r '."backing-filename"')" "$vm/v3.qcow2" \
  "the new top's header names the set v3"
is "$(reads)" "$(v 3)" \
  "right after the apply the script prints hello v3 and the data file holds version 3; the guest's files keep its data"
"$VMSCOPE" patchset status --connect "$VS_LIBVIRT_URI" "$dom" >"$work/status3.json" 2>"$work/status3.err"
is "$?:$(jq -r '[.[].image] | sort | join(" ")' "$work/status3.json")" "0:$vm/v2.qcow2 $vm/v3.qcow2" \
  "patchset status finds both sets in the running disk's chain $(cat "$work/status3.err")"
chain() { qemu-img info -U --backing-chain --output=json "$vm/$dom.v3.qcow2" | jq -r '[.[].filename] | join(" ")'; }
chain >"$work/chain3"
"$VMSCOPE" patchset apply --connect "$VS_LIBVIRT_URI" --method copy "$dom" "$vm/v3.qcow2" >/dev/null 2>"$work/again-copy.err"
is "$?:$(grep -c 'already in its chain' "$work/again-copy.err")" 1:1 "applying v3 again by a copy is refused: $(cat "$work/again-copy.err")"
"$VMSCOPE" patchset apply --connect "$VS_LIBVIRT_URI" "$dom" "$vm/v3.qcow2" >/dev/null 2>"$work/again-reopen.err"
is "$?:$(chain)" "1:$(cat "$work/chain3")" "and by a reopen too, the chain left as it was: $(cat "$work/again-reopen.err")"
grep -q "is in the disk's chain already" "$work/again-reopen.err"
ok $? "saying the set is in the chain already (not that it is the disk's own top image)"

# ---------------------------------------------------------------- the guest's kernel, and the disk at rest
g 'dmesg' >"$work/dmesg.txt"
ok $? "the guest's kernel log is read through the agent ($(wc -l <"$work/dmesg.txt") lines)"
grep -E 'I/O error|EXT4-fs (error|warning)|Buffer I/O|blk_update_request|JBD2' "$work/dmesg.txt" >"$work/dmesg.bad"
is "$(head -n 5 "$work/dmesg.bad")" "" "no I/O error, ext4 error or journal complaint in it"
grep -q 'EXT4-fs (vda1): mounted' "$work/dmesg.txt"
ok $? "(the log is the guest's: it has the root's mount, $(grep -m1 'EXT4-fs (vda1)' "$work/dmesg.txt" | cut -c1-80))"
vs_guest_stop "$dom"
ok $? "the guest stops (synced, frozen, destroyed)"
top=$vm/$dom.v3.qcow2
is "$(qemu-img info --backing-chain --output=json "$top" | jq -r '[.[].filename | split("/") | last] | join(" ")')" \
  "$dom.v3.qcow2 v3.qcow2 v2.qcow2 a.qcow2 base.qcow2" "the disk's chain: new top, v3, v2, A, base"
qemu-img check -q "$top" && qemu-img check -q "$vm/$dom.qcow2"
ok $? "qemu-img check finds the new top and the previous one consistent"
mkdir "$work/raw" && qemu-img convert -O raw "$top" "$work/raw/top.raw" || bail "cannot convert $top to raw"
fs="$work/raw/top.raw?offset=$part"
e2fsck -fn "$fs" >"$work/fsck-top.log" 2>&1
ok $? "e2fsck finds the guest's file system clean after both substitutions $(tail -n 1 "$work/fsck-top.log")"
got=$(for p in "${files[@]}" /srv/vs/own; do debugfs -R "cat $p" "$fs" 2>/dev/null; done)
is "$got" "$(cat "$f/hello.v3" "$f/data.v3")
$own_mine
written by the guest" "offline the files hold version 3, and the guest's data where it wrote"
diag "figures: boot ${VS_GUEST_BOOT_S} s; apply v2 (reopen) ${apply2_s} s, reopen pause ${reopen_ms} ms; apply v3 (copy, with its flush) ${apply3_s} s, pivot ${pivot_ms} ms"
done_testing
