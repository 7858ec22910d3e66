#!/usr/bin/env bash
# XFS on LVM2 on the direct path (src/core/inspect/lvm.c: libvslvm finds the logical volumes;
# fs_xfs.c: libfsxfs reads XFS; both through our image reader), against the tree the libguestfs
# appliance's kernel (its LVM and XFS) wrote into the disk, and against the appliance path:
#   - a disk in RHEL's default layout (t/lib/images.sh: a PV on sda1, VG rl, LVs swap and root)
#     holding a small Rocky-like tree: the bytes of files (one over many read chunks), listings
#     (one large enough for a block directory), sizes and symlinks are the tree's, in the qcow2
#     image and in a raw copy;
#   - a symlink climbing above the root stays in the tree, as source.c resolves any link;
#   - `vmscope inspect --backend direct` reads it itself; auto leaves XFS to the appliance
#     (libfsxfs is unfit for hostile images: SECURITY.md), says why, and gives the same
#     settings (the one appliance boot besides the one making the disk);
#   - hostile disks: LVM metadata whose logical volume runs past the end of the disk, an XFS
#     directory whose entry points back at itself, an inode claiming an exabyte: clean errors
#     or bounded work, in bounded memory, within a deadline.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/images.sh"
for c in guestfish qemu-img jq sfdisk xfs_db python3; do
  command -v "$c" >/dev/null || bail "$c is not installed (scripts/install-deps.sh installs it)"
done
[ -x /usr/bin/time ] || bail "/usr/bin/time is not installed (scripts/install-deps.sh installs it)"
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg} # this host's KVM cannot run the appliance
CAT=("${VS_RUN[@]}" "$VS_BUILDDIR/t/lib/source_cat")
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
cd "$work" || bail "cd $work"
test_start=$(date +%s)

# ---- the tree and the disk
mkdir -p tree/etc/ssh tree/etc/sysconfig tree/usr/lib tree/usr/bin tree/usr/sbin tree/big tree/trap/loop tree/var/lib
ln -s usr/bin tree/bin && ln -s usr/lib tree/lib && ln -s usr/sbin tree/sbin # what libguestfs looks for in a root
cat >tree/usr/lib/os-release <<'EOF'
NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
EOF
ln -s ../usr/lib/os-release tree/etc/os-release
echo rocky-xfs-01 >tree/etc/hostname
printf 'Rocky Linux release 9.3 (Blue Onyx)\n' >tree/etc/redhat-release
printf 'PermitRootLogin no\nPasswordAuthentication no\nX11Forwarding no\n' >tree/etc/ssh/sshd_config
printf 'SELINUX=enforcing\nSELINUXTYPE=targeted\n' >tree/etc/sysconfig/selinux
printf '/dev/mapper/rl-root / xfs defaults 0 0\n/dev/mapper/rl-swap none swap defaults 0 0\n' >tree/etc/fstab
head -c 3000000 /dev/urandom >tree/big/large.bin
: >tree/big/empty
for i in $(seq 1 300); do printf '%d\n' "$i" >"tree/big/file-$i.txt"; done
ln -s /etc/hostname tree/abs
ln -s ../../../../../etc/hostname tree/big/climb
chmod 0600 tree/etc/ssh/sshd_config
start=$(date +%s)
vs_xfs_lvm_image tree disk.qcow2 512 2>mk.err || bail "making the XFS-on-LVM image failed: $(tail -c 600 mk.err)"
diag "the XFS-on-LVM image took $(($(date +%s) - start)) s to make through the appliance"
qemu-img convert -f qcow2 -O raw disk.qcow2 disk.raw || bail "qemu-img convert failed"

# ---- the oracle: the tree itself, which the appliance's kernel (its LVM and XFS) wrote in
want_big=$(ls -A tree/big | LC_ALL=C sort)
want_root=$(ls -A tree | LC_ALL=C sort)
want_sizes=$(stat -c %s tree/big/large.bin tree/big/empty tree/etc/ssh/sshd_config | paste -sd, -)
want_links=$(for l in etc/os-release abs big/climb; do readlink "tree/$l"; done | tr '\n' ,)

for img in disk.qcow2 disk.raw; do
  "${CAT[@]}" "$img" -- cat /big/large.bin >got.bin 2>got.err
  cmp -s got.bin tree/big/large.bin
  ok $? "$img: a 3 MB file (many read chunks, several extents) has the tree's bytes ($(head -c 200 got.err))"
  "${CAT[@]}" "$img" -- cat /etc/ssh/sshd_config >got.txt 2>&1
  cmp -s got.txt tree/etc/ssh/sshd_config
  ok $? "$img: sshd_config too"
  is "$("${CAT[@]}" "$img" -- ls /big 2>&1 | LC_ALL=C sort)" "$want_big" \
    "$img: a 303-entry directory (a block directory, not short form) lists as the tree"
  is "$("${CAT[@]}" "$img" -- ls / 2>&1 | LC_ALL=C sort)" "$want_root" "$img: the root lists as the tree"
done
got_stat=$("${CAT[@]}" disk.qcow2 -- stat /big/large.bin stat /big/empty stat /etc/ssh/sshd_config 2>&1 |
  awk '{print $NF}' | paste -sd, -)
is "$got_stat" "$want_sizes" "stat: the tree's sizes"
is "$("${CAT[@]}" disk.qcow2 -- readlink /etc/os-release readlink /abs readlink /big/climb 2>&1 | tr '\n' ,)" \
  "$want_links" "symlink targets (relative, absolute, climbing) as the tree's"
is "$("${CAT[@]}" disk.qcow2 -- cat /big/climb cat /etc/os-release 2>&1 | head -n2 | tr '\n' ,)" \
  "rocky-xfs-01,NAME=\"Rocky Linux\"," "a link climbing above the root stops at the root; a relative one is followed in the tree"
is "$("${CAT[@]}" disk.qcow2 -- stat /etc/ssh 2>&1)" "directory 0" "a directory stats as one"
"${CAT[@]}" disk.qcow2 -- cat /big >/dev/null 2>dir.err
grep -q "not a regular file" dir.err
ok $? "reading a directory is refused: $(head -c 200 dir.err)"
"${CAT[@]}" disk.qcow2 -- cat /nope >/dev/null 2>nope.err
grep -q "No such file" nope.err
ok $? "a missing file is ENOENT: $(head -c 200 nope.err)"

# ---- vmscope inspect: --backend direct reads the XFS itself; auto leaves it to the appliance
# (libfsxfs is unfit for hostile images: SECURITY.md), saying why; both give the same settings.
/usr/bin/time -f '%e %M' -o direct.time "$VMSCOPE" inspect --backend direct disk.qcow2 >direct.json 2>direct.err
is "$? $(jq -r '.source.backend' direct.json 2>&1)" "0 direct" "vmscope inspect --backend direct reads XFS on LVM itself ($(head -c 200 direct.err))"
read -r dsecs dkib <direct.time
diag "direct path: $dsecs s, $dkib KiB"
is "$(jq -r '[.settings["os:distro"], .settings["os:version"], .settings["os:hostname"]] | join(",")' direct.json)" \
  "rocky,9.3,rocky-xfs-01" "its os: features are the tree's"
t0=$(date +%s)
timeout 600 "$VMSCOPE" inspect disk.qcow2 >auto.json 2>auto.err
is "$? $(jq -r '.source.backend' auto.json 2>&1)" "0 guestfs" "vmscope inspect (auto) reads XFS through the appliance"
diag "appliance path: $(($(date +%s) - t0)) s"
grep -q "rl/root.*XFS is left to the appliance: libfsxfs 20201117 is unfit for hostile images (SECURITY.md)" auto.err
ok $? "and says why, naming the logical volume: $(head -c 400 auto.err)"
diff <(jq -S .settings direct.json) <(jq -S .settings auto.json) >settings.diff
ok $? "the direct path's settings are the appliance path's: $(head -c 600 settings.diff)"
# ---- hostile disks
run_bounded() { # IMAGE OUT ARGS...: source_cat under time and a deadline; "kib secs rc" in OUT
  local img=$1 out=$2
  shift 2
  /usr/bin/time -f '%M %e' -o time.out timeout 60 "$VS_BUILDDIR/t/lib/source_cat" "$img" -- "$@" >/dev/null 2>"$out.err"
  local rc=$?
  echo "$(tail -n1 time.out) $rc" >"$out"
}
# Where things are: the partition's start (sfdisk), the LV's first XFS superblock in it.
part_start=$(($(sfdisk -d disk.raw | awk -F'start=' '/disk.raw1/ {split($2, a, ","); print a[1]}') * 512))
lv_start=$(python3 - disk.raw <<'PY'
import sys
with open(sys.argv[1], "rb") as f:
    data = f.read(64 << 20)
i = data.find(b"XFSB")
while i >= 0 and i % 512:
    i = data.find(b"XFSB", i + 1)
print(i)
PY
)
diag "partition 1 at $part_start, the root LV's XFS at $lv_start"

# The partition shrunk to 32 MiB (and the disk cut after it): the metadata still gives the root
# LV its 500 MiB, past the end of the physical volume and of the disk.
cp disk.raw short.raw
printf 'label: dos\nstart=%d, size=65536, type=8e\n' $((part_start / 512)) | sfdisk -q --no-reread short.raw 2>/dev/null
truncate -s $((part_start + 32 * 1048576)) short.raw
run_bounded short.raw short.res ls /
read -r kib secs rc <short.res
is "${rc:-9}" 1 "LVM metadata whose LV ends past the disk: a clean error, exit ${rc:-?} ($(head -c 300 short.res.err))"
grep -q "logical volume\|LVM2_member" short.res.err
ok $? "naming what was found; ${kib:-?} KiB, ${secs:-?} s"

# The XFS patched with xfs_db (which keeps the CRCs right): /trap/loop's entry points back at
# /trap; /big/large.bin claims 2^40 bytes, /big/file-1.txt 2^62.
dd if=disk.raw of=lv.xfs bs=512 skip=$((lv_start / 512)) count=$((500 * 2048)) status=none
trap_ino=$(xfs_db -r -c 'path /trap' -c 'print v3.inumber' lv.xfs 2>&1 | awk '{print $3}')
diag "/trap is inode ${trap_ino:-?}"
xfs_db -x -c 'path /trap' -c "write u3.sfdir3.list[0].inumber.i4 $trap_ino" \
  -c 'path /big/large.bin' -c 'write core.size 1099511627776' \
  -c 'path /big/file-1.txt' -c 'write core.size 4611686018427387904' lv.xfs >xfs_db.out 2>&1
is "$(xfs_db -r -c 'path /trap' -c 'print u3.sfdir3.list[0].inumber.i4' -c 'path /big/large.bin' -c 'print core.size' \
  -c 'path /big/file-1.txt' -c 'print core.size' lv.xfs 2>&1 | awk '{print $3}' | paste -sd, -)" \
  "$trap_ino,1099511627776,4611686018427387904" "xfs_db wrote the loop and the sizes ($(head -c 200 xfs_db.out))"
cp disk.raw bad.raw
dd if=lv.xfs of=bad.raw bs=512 seek=$((lv_start / 512)) conv=notrunc status=none
run_bounded bad.raw loop.res ls /trap/loop/loop/loop/loop stat /trap/loop/loop/loop/loop/loop/loop/loop/loop
read -r kib secs rc <loop.res
[ "${rc:-9}" -le 1 ]
ok $? "a directory whose entry points back at itself: a clean answer or error, exit ${rc:-?} ($(head -c 200 loop.res.err))"
[ "${kib:-999999}" -lt 131072 ]
ok $? "in bounded memory and time: ${kib:-?} KiB, ${secs:-?} s"
run_bounded bad.raw big.res stat /big/large.bin cat /big/large.bin
read -r kib secs rc <big.res
is "${rc:-9}" 1 "an inode claiming 2^40 bytes: read refused, exit ${rc:-?} ($(head -c 200 big.res.err))"
grep -q "large.bin: 1099511627776 bytes, over the limit" big.res.err
ok $? "as over the read limit; ${kib:-?} KiB, ${secs:-?} s"
run_bounded bad.raw huge.res stat /big/file-1.txt
read -r kib secs rc <huge.res
is "${rc:-9}" 1 "an inode claiming 2^62 bytes: refused at its look-up (libfsxfs's inode checks), exit ${rc:-?} ($(head -c 200 huge.res.err))"
/usr/bin/time -f '%M %e' -o time.out timeout 120 "$VMSCOPE" inspect --backend direct bad.raw >bad.json 2>bad.err
rc=$?
read -r kib secs < <(tail -n1 time.out)
[ $rc -le 1 ] && [ "${kib:-999999}" -lt 262144 ]
ok $? "vmscope inspect on the corrupted XFS ends: exit $rc, ${kib:-?} KiB, ${secs:-?} s"
diag "the test took $(($(date +%s) - test_start)) s"
done_testing
