#!/usr/bin/env bash
# vmscope inspect on disk images with the direct backend gives the same settings as on the
# directory tree the images were built from: whole-disk and partitioned (MBR, GPT), raw and
# qcow2, with a backing file, with /var on its own partition found through fstab.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
command -v qemu-img >/dev/null && command -v sfdisk >/dev/null || bail "qemu-img and sfdisk are needed (scripts/install-deps.sh)"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
cd "$work" || bail "cd"

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
t=tree
mk $t/etc/os-release 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
mk $t/etc/hostname 'img-01\n'
mk $t/etc/passwd 'root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n'
mk $t/etc/shadow 'root:$6$x$y:19000:0:99999:7:::\nbob:!:19000:0:90:7:::\n'
mk $t/etc/group 'root:x:0:\nsudo:x:27:bob\n'
mk $t/etc/ssh/sshd_config 'PermitRootLogin no\nPort 2222\nMatch User bob\n  X11Forwarding no\n'
mk $t/etc/sudoers 'Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n'
chmod 0440 $t/etc/sudoers
mk $t/etc/sysctl.d/60-net.conf 'net.ipv4.ip_forward = 1\n'
mk $t/usr/lib/sysctl.d/50-default.conf 'kernel.sysrq = 16\n'
mk $t/usr/lib/systemd/system/ssh.service '[Install]\nWantedBy=multi-user.target\n'
mkdir -p $t/etc/systemd/system/multi-user.target.wants
ln -s /usr/lib/systemd/system/ssh.service $t/etc/systemd/system/multi-user.target.wants/ssh.service
ln -s usr/lib $t/lib
ln -s /usr/lib/os-release $t/etc/os-release.link
mk $t/var/lib/dpkg/status 'Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.21.22\n\nPackage: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2\n'
head -c 300000 /dev/urandom >$t/etc/big.bin # spans many blocks and an extent tree
mk watch '/etc/big.bin -\n'
chown 1000:27 $t/etc/hostname

inspect() { "$VS_BUILDDIR/vmscope" inspect --watch watch "$@"; }
settings() { jq -S '.settings' "$1"; }
inspect $t >dir.json || bail "inspecting the tree failed"
same() { # IMAGE-JSON DESCRIPTION
  if diff <(settings dir.json) <(settings "$1") >"$1.diff"; then ok 0 "$2"; else
    ok 1 "$2"
    head -n 20 "$1.diff" | sed 's/^/# /'
  fi
}

# Whole-disk ext4, raw and qcow2, and a qcow2 overlay on a qcow2 base.
mke2fs -q -F -t ext4 -d $t whole.raw 32M >/dev/null
inspect --backend direct whole.raw >whole.json; ok $? "a whole-disk ext4 raw image inspects"
same whole.json "and gives the same settings as the directory tree"
is "$(jq -r .source.backend whole.json)" direct "through the direct backend"
qemu-img convert -O qcow2 whole.raw whole.qcow2
inspect --backend direct whole.qcow2 >whole-q.json && same whole-q.json "the same image as qcow2 gives the same settings"
qemu-img create -q -f qcow2 -b whole.qcow2 -F qcow2 overlay.qcow2
inspect overlay.qcow2 >overlay.json && same overlay.json "a qcow2 overlay over it (backing file) gives the same settings"
qemu-img convert -c -O qcow2 -o cluster_size=4k whole.raw small-c.qcow2
inspect small-c.qcow2 >small-c.json && same small-c.json "compressed, 4 KiB clusters: the same settings"

# MBR: a small first partition, the root in the second.
mke2fs -q -F -t ext4 -L root -d $t root.fs 32M >/dev/null
truncate -s 40M mbr.raw
printf 'label: dos\nstart=2048, size=4096, type=83\nstart=8192, size=65536, type=83\n' | sfdisk -q mbr.raw
dd if=root.fs of=mbr.raw bs=512 seek=8192 conv=notrunc status=none
qemu-img convert -O qcow2 mbr.raw mbr.qcow2
inspect mbr.qcow2 >mbr.json; ok $? "an MBR-partitioned qcow2 image inspects"
same mbr.json "the root on partition 2 gives the same settings"

# GPT, with /var on its own partition mounted by UUID through fstab.
rm -rf rootpart varpart && cp -a $t rootpart && mkdir varpart && mv rootpart/var/* varpart/
uuid=0f2c1d3e-4b5a-4c6d-8e7f-90a1b2c3d4e5
mk rootpart/etc/fstab "LABEL=gptroot / ext4 defaults 0 1\nUUID=$uuid /var ext4 defaults 0 2\nUUID=dead-beef /srv ext4 defaults 0 2\ntmpfs /tmp tmpfs defaults 0 0\n"
cp rootpart/etc/fstab $t/etc/fstab && inspect $t >dir.json # the reference gets the same fstab
mke2fs -q -F -t ext4 -L gptroot -d rootpart root2.fs 32M >/dev/null
mke2fs -q -F -t ext4 -U $uuid -d varpart var.fs 16M >/dev/null
truncate -s 64M gpt.raw
printf 'label: gpt\nstart=2048, size=65536\nstart=67584, size=32768\n' | sfdisk -q gpt.raw
dd if=root2.fs of=gpt.raw bs=512 seek=2048 conv=notrunc status=none
dd if=var.fs of=gpt.raw bs=512 seek=67584 conv=notrunc status=none
qemu-img convert -O qcow2 -o cluster_size=2M gpt.raw gpt.qcow2
inspect gpt.qcow2 >gpt.json; ok $? "a GPT image with /var on its own partition inspects"
same gpt.json "packages from the separate /var give the same settings as the tree"
is "$(jq -r '.settings["pkg:openssh-server"]' gpt.json)" "1:9.2p1-2" "dpkg's status was read from the /var file system"
jq -r '.skipped[] | "\(.path): \(.reason)"' gpt.json | grep -q 'dead-beef on /srv: no such device'; ok $? "an fstab entry for a missing device is recorded as skipped"

# The same image served over NBD (as a libvirt backup job serves a disk), read with libnbd.
if command -v qemu-nbd >/dev/null; then
  qemu-nbd -r -t -f qcow2 -k "$work/nbd.sock" gpt.qcow2 >nbd.log 2>&1 &
  nbd_pid=$!
  for _ in $(seq 1 20); do [ -S "$work/nbd.sock" ] && break; sleep 0.25; done
  inspect "nbd+unix:///?socket=$work/nbd.sock" >nbd.json; ok $? "an NBD export of the image inspects (libnbd)"
  diff <(jq -S .settings nbd.json) <(jq -S .settings gpt.json) >/dev/null; ok $? "with the settings the image file gives"
  is "$(jq -r .source.path nbd.json)" "nbd+unix:///?socket=$work/nbd.sock" "and the export as its source"
  kill "$nbd_pid" 2>/dev/null; wait "$nbd_pid" 2>/dev/null
else
  skip 3 "qemu-nbd is not installed"
fi

# What the direct backend cannot read.
truncate -s 16M swap.raw
printf 'label: dos\nstart=2048, size=20000, type=82\n' | sfdisk -q swap.raw
dd if=/dev/zero bs=512 count=20000 2>/dev/null | dd of=swap.raw bs=512 seek=2048 conv=notrunc status=none
mkswap -q --offset $((2048 * 512)) swap.raw 10000 >/dev/null 2>&1 || mkswap -q swap.raw >/dev/null 2>&1
inspect --backend direct swap.raw >/dev/null 2>swap.err; is $? 1 "an image with no ext file system fails under --backend direct"
grep -q "no ext2/3/4 root file system" swap.err; ok $? "with a message saying what was found instead"
diag "$(cat swap.err)"
printf 'not a disk' >junk.raw
inspect --backend direct --image-format qcow2 junk.raw >/dev/null 2>junk.err; is $? 1 "a file that is not qcow2 fails with --image-format qcow2"
grep -q "no qcow2 signature" junk.err; ok $? "and says so"
done_testing
