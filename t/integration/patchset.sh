#!/usr/bin/env bash
# vmscope patchset make: the thin qcow2 layer our writer makes passes qemu-img check and reads
# exactly as the patched image (qemu-img compare), for 64 KiB and 2 MiB clusters, zero and
# compressed clusters, raw and qcow2 bases, and patched images that are overlays of the base.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
cd "$work" || bail "no work directory"
qio() { qemu-io -f qcow2 "$@" >/dev/null; }
check_set() { # SET PATCHED DESCRIPTION
  qemu-img check -q "$1" >check.out 2>&1; ok $? "$3: qemu-img check finds no error"
  [ -s check.out ] && diag "$(head -n 5 check.out)"
  qemu-img compare -q "$1" "$2"; ok $? "$3: qemu-img compare finds the layer on its base identical to the patched image"
}
for cs in 65536 2097152; do
  qemu-img create -q -f qcow2 -o cluster_size=$cs base.qcow2 96M
  qio -c "write -P 0xaa 0 40M" -c "write -P 0x55 60M 8M" base.qcow2
  cp base.qcow2 patched.qcow2
  qio -c "write -P 0xbb 1M 64k" -c "write -z 4M 4M" -c "write -P 0xcc 41M 100k" -c "write -P 0xdd 95M 1M" patched.qcow2
  "$VMSCOPE" patchset make --stats -b base.qcow2 -p patched.qcow2 -o set.qcow2 2>stats.out
  ok $? "cluster size $cs: a patch set is made"
  check_set set.qcow2 patched.qcow2 "cluster size $cs"
  is "$(qemu-img info --output=json set.qcow2 | jq -r '."backing-filename" + " " + (."cluster-size" | tostring)')" "base.qcow2 65536" \
    "cluster size $cs: its backing file is the base, its cluster size 64 KiB (never coarser: what changed, not whole 2 MiB clusters)"
  grep -qE 'MiB read \([1-9][0-9.]* MiB of it in the page cache' stats.out
  ok $? "cluster size $cs: the images just written are compared in place, in the page cache ($(cat stats.out))"
  rm -f set.qcow2 set.qcow2.json
  # Cold: both images' pages dropped from the cache, they are read with pread, as mapped pages
  # would wait on the disk one fault at a time. (What the kernel has read ahead by the time a
  # later run is asked for is in the cache, and compared in place: a slow run, under valgrind,
  # finds much of it so. The first runs never are.)
  sync base.qcow2 patched.qcow2
  for f in base.qcow2 patched.qcow2; do dd if="$f" iflag=nocache count=0 status=none; done
  "$VMSCOPE" patchset make --stats -b base.qcow2 -p patched.qcow2 -o set.qcow2 2>stats.out
  ok $? "cluster size $cs, cold: a patch set is made"
  read_mib=$(sed -n 's/.* \([0-9.]*\) MiB read (.*/\1/p' stats.out)
  mapped_mib=$(sed -n 's/.* MiB read (\([0-9.]*\) MiB of it in the page cache.*/\1/p' stats.out)
  awk -v r="${read_mib:-0}" -v m="${mapped_mib:-x}" 'BEGIN { exit !(m != "x" && r > 0 && m + 0 < r + 0) }'
  ok $? "cluster size $cs, cold: what was not in the page cache is read, not compared in place ($(cat stats.out))"
  check_set set.qcow2 patched.qcow2 "cluster size $cs, cold"
  rm -f set.qcow2 set.qcow2.json
done
# A thin disk whose first 8 MiB were never written (holes in both: nothing there to find in the
# page cache or not) is still compared in place after them, by both workers: all 56 MiB of
# data of each image.
qemu-img create -q -f qcow2 thin.qcow2 64M
qio -c "write -P 0x44 8M 56M" thin.qcow2
cp thin.qcow2 thin-p.qcow2
qio -c "write -P 0x45 40M 64k" thin-p.qcow2
"$VMSCOPE" patchset make --stats -b thin.qcow2 -p thin-p.qcow2 -o set-thin.qcow2 2>stats.out
ok $? "a thin disk, its first 8 MiB never written"
grep -q ' (112.0 MiB of it in the page cache' stats.out
ok $? "what follows its holes is compared in place, all of it ($(cat stats.out))"
check_set set-thin.qcow2 thin-p.qcow2 "the thin disk"

# A patched image that is an overlay of the base keeps its own cluster size: its clusters are
# taken as they are, the base not read.
qemu-img create -q -f qcow2 -o cluster_size=2097152 -b base.qcow2 -F qcow2 over2m.qcow2
qio -c "write -P 0xee 3M 64k" over2m.qcow2
"$VMSCOPE" patchset make -b base.qcow2 -p over2m.qcow2 -o set-2m.qcow2 2>over.err
ok $? "a patch set of a 2 MiB-cluster overlay of the base is made ($(head -c 200 over.err))"
check_set set-2m.qcow2 over2m.qcow2 "the overlay's set"
is "$(qemu-img info --output=json set-2m.qcow2 | jq -r '."cluster-size"')" 2097152 "its cluster size is the overlay's"
grep -q 'holes not read' stats.out; ok $? "clusters neither image stores are not read ($(cat stats.out))"

# Compressed clusters in the patched image, a raw base.
qemu-img create -q -f raw base.raw 32M
qemu-io -f raw -c "write -P 0x11 0 32M" base.raw >/dev/null
cp base.raw patched.raw
qemu-io -f raw -c "write -P 0x22 2M 64k" -c "write -P 0x33 10M 64k" patched.raw >/dev/null
qemu-img convert -c -O qcow2 patched.raw patched-c.qcow2 # every cluster compressed
"$VMSCOPE" patchset make -b base.raw -p patched-c.qcow2 -o set-c.qcow2; ok $? "a raw base and a compressed patched image"
check_set set-c.qcow2 patched-c.qcow2 "compressed clusters"
is "$(jq -r '.changed | map("\(.[0]):\(.[1])") | join(",")' set-c.qcow2.json)" "2097152:65536,10485760:65536" \
  "the manifest lists the changed ranges"
is "$(jq -r '.base.size' set-c.qcow2.json)" 33554432 "and the base's size"
[ "$(jq -r '.base.identity | length' set-c.qcow2.json)" = 64 ]; ok $? "and its identity (a SHA-256)"

# The patched image is an overlay of the base: its clusters are taken without reading the base.
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 over.qcow2
qio -c "write -P 0xee 8M 192k" -c "write -z 20M 64k" over.qcow2
"$VMSCOPE" patchset make --stats -b base.qcow2 -p over.qcow2 -o set-o.qcow2 2>stats.out; ok $? "an overlay of the base"
grep -qE ' 4 taken from the overlay' stats.out; ok $? "its four allocated clusters are taken as they are ($(cat stats.out))"
check_set set-o.qcow2 over.qcow2 "overlay"
is "$(jq -r '.patched_is_overlay' set-o.qcow2.json)" true "the manifest says so"
[ -z "$(ls | grep '\.tmp-')" ]; ok $? "no temporary file is left behind"

# A fragmented base (its clusters written in a shuffled order, so the file holds them far from
# the guest's order) is compared in the file's order; the patched copy changes clusters in place,
# zeroes one, fills a hole of the base and leaves others, and one written in another order is
# compared as well. Both read exactly as the patched image.
qemu-img create -q -f qcow2 frag-base.qcow2 64M
shuffled() { seq 0 1023 | shuf --random-source=<(yes "$1") | awk '$1 % 16 != 7'; } # 1 in 16 a hole
shuffled a | while read -r g; do printf -- '-c\nwrite -q -P 0x%02x %dk 64k\n' $((g % 200 + 1)) $((g * 64)); done |
  xargs -d '\n' -n 2000 qemu-io -f qcow2 frag-base.qcow2 >/dev/null
cp frag-base.qcow2 frag-patched.qcow2
qio -c "write -P 0xe1 64k 64k" -c "write -P 0xe2 32704k 128k" -c "write -z 1M 64k" -c "write -P 0xe3 448k 64k" -c "write -P 0xe4 65472k 64k" frag-patched.qcow2
"$VMSCOPE" patchset make --stats -b frag-base.qcow2 -p frag-patched.qcow2 -o set-f.qcow2 2>stats.out
ok $? "a fragmented base and its patched copy"
n=$(sed -n 's/.* \([0-9]*\) compared in the file.s order.*/\1/p' stats.out)
[ "${n:-0}" -gt 900 ]; ok $? "their stored clusters are compared in the file's order ($(cat stats.out))"
grep -qE 'MiB read \([1-9][0-9.]* MiB of it in the page cache' stats.out; ok $? "in place, in the page cache"
check_set set-f.qcow2 frag-patched.qcow2 "fragmented"
is "$(jq -c '[.changed, .zeroed]' set-f.qcow2.json)" "[[[65536,65536],[458752,65536],[33488896,131072],[67043328,65536]],[[1048576,65536]]]" \
  "the manifest lists exactly the clusters changed, the one filled in a hole of the base and the one zeroed"
qemu-img create -q -f qcow2 frag-other.qcow2 64M
shuffled b | while read -r g; do printf -- '-c\nwrite -q -P 0x%02x %dk 64k\n' $((g % 200 + 1)) $((g * 64)); done |
  xargs -d '\n' -n 2000 qemu-io -f qcow2 frag-other.qcow2 >/dev/null
qio -c "write -P 0xe1 64k 64k" -c "write -P 0xe2 32704k 128k" frag-other.qcow2
"$VMSCOPE" patchset make -b frag-base.qcow2 -p frag-other.qcow2 -o set-g.qcow2 2>make.err
ok $? "a patched image fragmented in another order ($(head -c 200 make.err))"
check_set set-g.qcow2 frag-other.qcow2 "another order"
is "$(jq -c '.changed' set-g.qcow2.json)" "[[65536,65536],[33488896,131072]]" "its manifest lists the two changes"
cp frag-patched.qcow2 frag-cut.qcow2
truncate -s $(($(stat -c %s frag-cut.qcow2) * 2 / 3)) frag-cut.qcow2
"$VMSCOPE" patchset make -b frag-base.qcow2 -p frag-cut.qcow2 -o set-cut.qcow2 2>cut.err
is "$?" 1 "a patched image cut short fails, exit 1"
grep -q 'frag-cut.qcow2' cut.err; ok $? "naming the file cut short ($(head -c 300 cut.err))"
[ ! -e set-cut.qcow2 ] && [ ! -e set-cut.qcow2.json ]; ok $? "and leaves no set"

# A hostile pair whose L2 entries all point at one cluster of the file: 1,024 clusters claimed
# in a file of a few. They are not listed for the file's order (a tiny file would list 192 MiB
# at the bound), and are compared in the guest's order, with the one real change found.
qemu-img create -q -f qcow2 dup.qcow2 256M
qio -c "write -P 0x5a 0 64k" dup.qcow2
cp dup.qcow2 dup-p.qcow2
qio -c "write -P 0x77 $((1500 * 64))k 64k" dup-p.qcow2
be64() { od -An -tx1 -j "$2" -N 8 "$1" | tr -d ' \n'; }
for f in dup.qcow2 dup-p.qcow2; do
  l2=$((16#$(be64 "$f" $((16#$(be64 "$f" 40)))) & 0x00fffffffffffe00))
  dd if="$f" of=entry.bin bs=8 skip=$((l2 / 8)) count=1 status=none
  for _ in $(seq 1 1023); do cat entry.bin; done >entries.bin
  dd if=entries.bin of="$f" bs=8 seek=$((l2 / 8 + 1)) conv=notrunc status=none
done
"$VMSCOPE" patchset make --stats -b dup.qcow2 -p dup-p.qcow2 -o set-dup.qcow2 2>stats.out
ok $? "a pair whose clusters share one place in the file ($(head -c 300 stats.out))"
grep -q ' 0 compared in the file.s order' stats.out; ok $? "is not taken in the file's order"
is "$(jq -c '.changed' set-dup.qcow2.json)" "[[$((1500 * 65536)),65536]]" "and its one change is found"

# An ext4 base where the patch replaces one file (written with debugfs -w on a copy): the
# manifest names that file.
mkdir -p tree/etc tree/usr/bin
printf 'Welcome to the base image\n' >tree/etc/motd
head -c 300000 /dev/urandom >tree/usr/bin/tool
printf 'keep me\n' >tree/etc/hostname
mke2fs -q -F -t ext4 -d tree base-fs.raw 32M >/dev/null
cp base-fs.raw patched-fs.raw
head -c 200000 /dev/urandom >newtool
debugfs -w -R "rm /usr/bin/tool" patched-fs.raw >/dev/null 2>&1
debugfs -w -R "write newtool /usr/bin/tool" patched-fs.raw >/dev/null 2>&1
"$VMSCOPE" patchset make -b base-fs.raw -p patched-fs.raw -o set-fs.qcow2; ok $? "an ext4 image where one file was replaced"
check_set set-fs.qcow2 patched-fs.raw "ext4"
jq -e '.files | map(.path) | index("/usr/bin/tool")' set-fs.qcow2.json >/dev/null
ok $? "the manifest names the replaced file: $(jq -c '[.files[].path]' set-fs.qcow2.json)"
jq -e '.files | map(.path) | index("/etc/hostname") | not' set-fs.qcow2.json >/dev/null
ok $? "and not the files the patch left alone"
# libext2fs is opened on first use: without it the set is still made, and its manifest says the
# files were not looked for (null and why), not that none changed.
ext2fs_so=$(ldconfig -p | sed -n 's/^[[:space:]]*libext2fs\.so\.2 (libc6,x86-64) => //p' | head -n1)
if [ -n "$ext2fs_so" ] && unshare -m true 2>/dev/null; then
  unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' sh "$ext2fs_so" \
    "$VMSCOPE" patchset make -b base-fs.raw -p patched-fs.raw -o set-nofs.qcow2 2>nofs.err
  ok $? "without libext2fs the set is still made ($(head -c 300 nofs.err))"
  grep -q 'install the libext2fs2 package; the patch set.s manifest does not say which files changed' nofs.err
  ok $? "with a warning that says which package and what the manifest lacks"
  is "$(jq -c '[.files, (.files_error | test("libext2fs2"))]' set-nofs.qcow2.json)" '[null,true]' \
    "its manifest's files are null, and files_error says why"
  qemu-img compare -q set-nofs.qcow2 patched-fs.raw; ok $? "and the set is the patched image on the base"
else
  skip 4 "no mount namespace here (unshare -m) to hide libext2fs in"
fi

# Apply to a stopped disk: an overlay the "guest" wrote into, on the base.
qemu-img create -q -f qcow2 -o cluster_size=65536 base.qcow2 16M
qio -c "write -P 0xaa 0 16M" base.qcow2
cp base.qcow2 patched.qcow2
qio -c "write -P 0xbb 1M 128k" -c "write -P 0xbc 5M 64k" patched.qcow2
"$VMSCOPE" patchset make -b base.qcow2 -p patched.qcow2 -o set-a.qcow2; ok $? "a set for the apply tests"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 vm.qcow2
qio -c "write -P 0xcc 1M 64k" -c "write -P 0xcd 9M 64k" vm.qcow2 # the guest's own writes
"$VMSCOPE" patchset apply --image vm.qcow2 set-a.qcow2 >apply.json; ok $? "patchset apply --image inserts the set under the stopped disk"
is "$(qemu-img info --output=json vm.qcow2 | jq -r '."backing-filename"' | xargs basename)" set-a.qcow2 "the overlay now sits on the set"
is "$(jq -c '[.set_clusters, .shadowed, .shadowed_ranges]' apply.json)" '[3,1,[[1048576,65536]]]' \
  "coverage: of the set's 3 clusters, the one the guest already wrote is shadowed, and named"
qemu-img check -q vm.qcow2 && qemu-img check -q set-a.qcow2 && qemu-img check -q base.qcow2; ok $? "every image passes qemu-img check"
qemu-io -r -f qcow2 -c "read -P 0xcc 1M 64k" -c "read -P 0xbb 1088k 64k" -c "read -P 0xbc 5M 64k" -c "read -P 0xcd 9M 64k" -c "read -P 0xaa 12M 64k" vm.qcow2 >read.out
! grep -q 'Pattern verification failed' read.out; ok $? "the disk reads guest data where the guest wrote, patched data where the set changed, base data elsewhere"
"$VMSCOPE" patchset apply --image vm.qcow2 set-a.qcow2 >/dev/null 2>again.err; is $? 1 "applying it twice is refused"
grep -q 'already' again.err; ok $? "as already applied"
"$VMSCOPE" patchset status --image vm.qcow2 >status.json; ok $? "patchset status reads the chain"
is "$(jq -r '.[0].image | split("/") | last' status.json) $(jq -r '.[0].changed_clusters' status.json)" "set-a.qcow2 3" "and lists the set with its changed clusters"
qemu-img create -q -f qcow2 other.qcow2 16M
qemu-img create -q -f qcow2 -b other.qcow2 -F qcow2 vm2.qcow2
"$VMSCOPE" patchset apply --image vm2.qcow2 set-a.qcow2 >/dev/null 2>other.err; is $? 1 "a disk on another base is refused"
grep -q 'not based on' other.err; ok $? "with a message saying so"
is "$(qemu-img info --output=json vm2.qcow2 | jq -r '."backing-filename"')" other.qcow2 "and is left as it was"

# kill -9 in the middle of make: no image appears under the set's name, and the inputs are
# untouched (they are only read).
qemu-img create -q -f qcow2 big.qcow2 1G
qemu-io -f qcow2 -c "write -P 0x11 0 1G" big.qcow2 >/dev/null
cp big.qcow2 big-patched.qcow2
qemu-io -f qcow2 -c "write -P 0x22 100M 64M" big-patched.qcow2 >/dev/null
for delay in 0.05 0.2 0.5; do
  rm -f killed.qcow2 killed.qcow2.json
  "$VMSCOPE" patchset make -b big.qcow2 -p big-patched.qcow2 -o killed.qcow2 &
  kpid=$!
  sleep "$delay"
  kill -9 "$kpid" 2>/dev/null
  wait "$kpid" 2>/dev/null
  if [ -e killed.qcow2 ]; then qemu-img check -q killed.qcow2; else true; fi
  ok $? "killed after ${delay} s: nothing broken under the set's name ($(ls killed.qcow2 2>/dev/null || echo absent))"
  is "$(ls | grep -c '\.tmp')" 0 "and no temporary file is left behind"
done
qemu-img check -q big.qcow2 && qemu-img check -q big-patched.qcow2; ok $? "and the images it read pass qemu-img check"
rm -f big.qcow2 big-patched.qcow2 killed.qcow2*

# An image another process has open (QEMU locks its images) is never written.
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 vm3.qcow2
if command -v qemu-nbd >/dev/null; then
  qemu-nbd -f qcow2 -k "$work/vm3.sock" vm3.qcow2 >/dev/null 2>&1 &
  nbd=$!
  for _ in $(seq 1 40); do [ -S "$work/vm3.sock" ] && break; sleep 0.1; done
  "$VMSCOPE" patchset apply --image vm3.qcow2 set-a.qcow2 >/dev/null 2>busy.err; is $? 1 "a disk open in another process (qemu-nbd) is refused"
  grep -q 'open in another process' busy.err; ok $? "with a message saying so: $(cat busy.err)"
  kill "$nbd"; wait "$nbd" 2>/dev/null
  is "$(qemu-img info --output=json vm3.qcow2 | jq -r '."backing-filename"')" base.qcow2 "and it is left as it was"
else
  skip 3 "qemu-nbd is not installed"
fi

qemu-img create -q -f qcow2 small.qcow2 1M
"$VMSCOPE" patchset make -b base.qcow2 -p small.qcow2 -o set-s.qcow2 2>err.out; is $? 1 "images of different sizes are refused"
grep -q 'one size' err.out; ok $? "with a message saying why"
[ ! -e set-s.qcow2 ]; ok $? "and nothing is written"
done_testing
