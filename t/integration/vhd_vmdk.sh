#!/usr/bin/env bash
# Hyper-V and VMware images on the direct path (src/core/inspect/image_yal.c: libvhdi and
# libvmdk reading through our own libbfio handles), made at test time by qemu-img from one raw
# MBR disk holding an ext4 guest tree, against qemu-img as the oracle:
#   - VHD (dynamic and fixed), VHDX, VMDK (monolithicSparse, streamOptimized, monolithicFlat,
#     twoGbMaxExtentSparse): the bytes our reader reads are `qemu-img convert -O raw`'s, the
#     format is probed, and `vmscope inspect` gives the raw disk's settings;
#   - a qcow2 overlay on a VHDX (backing format vhdx) reads as its base;
#   - refused, with a message: a VMDK with a parent, and hostile images: a truncated VHDX, a
#     VHD whose block table points past the file, a VMDK descriptor naming /etc/passwd (by
#     absolute path, by ../, through a symlink) as its extent. Each a clean error naming the
#     file, in bounded memory, within a deadline.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
for c in qemu-img mke2fs sfdisk jq python3; do
  command -v "$c" >/dev/null || bail "$c is not installed (scripts/install-deps.sh installs it)"
done
[ -x /usr/bin/time ] || bail "/usr/bin/time is not installed (scripts/install-deps.sh installs it)"
CAT=("${VS_RUN[@]}" "$VS_BUILDDIR/t/lib/image_cat")
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
cd "$work" || bail "cd $work"

mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
t=tree
mk $t/etc/os-release 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
mk $t/etc/hostname 'hyperv-01\n'
mk $t/etc/passwd 'root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n'
mk $t/etc/group 'root:x:0:\nsudo:x:27:bob\n'
mk $t/etc/ssh/sshd_config 'PermitRootLogin no\nPort 2222\n'
mk $t/etc/sysctl.d/60-net.conf 'net.ipv4.ip_forward = 1\n'
mk $t/var/lib/dpkg/status 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2\n'
head -c 3000000 /dev/urandom >$t/srv-data.bin # many blocks of each format, some grains compressed
mk watch '/srv-data.bin -\n'
mke2fs -q -F -t ext4 -L root -d $t root.fs 24M >/dev/null || bail "mke2fs failed"
truncate -s 26M disk.raw
printf 'label: dos\nstart=2048, size=49152, type=83\n' | sfdisk -q disk.raw || bail "sfdisk failed"
dd if=root.fs of=disk.raw bs=512 seek=2048 conv=notrunc status=none
inspect() { "$VMSCOPE" inspect --backend direct --watch watch "$@"; }
inspect disk.raw >raw.json || bail "inspecting the raw disk failed"

# name  qemu-img's format and options  our format name
images=(
  "dynamic.vhd vpc:subformat=dynamic vhd"
  "fixed.vhd vpc:subformat=fixed vhd"
  "disk.vhdx vhdx: vhdx"
  "sparse.vmdk vmdk:subformat=monolithicSparse vmdk"
  "stream.vmdk vmdk:subformat=streamOptimized vmdk"
  "flat.vmdk vmdk:subformat=monolithicFlat vmdk"
  "split.vmdk vmdk:subformat=twoGbMaxExtentSparse vmdk"
)
for row in "${images[@]}"; do
  read -r name spec ours <<<"$row"
  fmt=${spec%%:*} opts=${spec#*:}
  qemu-img convert -f raw -O "$fmt" ${opts:+-o "$opts"} disk.raw "$name" || bail "qemu-img convert -O $fmt $opts failed"
  qemu-img convert -f "$fmt" -O raw "$name" "$name.want" || bail "qemu-img convert of $name back to raw failed"
  "${CAT[@]}" "$name" >"$name.got" 2>"$name.err"
  rc=$?
  cmp -s "$name.got" "$name.want"
  ok $? "$name ($fmt ${opts:-default}): our reader's bytes are qemu-img's ($(stat -c %s "$name.want") bytes; rc $rc $(head -c 200 "$name.err"))"
  inspect "$name" >"$name.json" 2>"$name.ierr"
  ok $? "$name: vmscope inspect reads it directly ($(head -c 200 "$name.ierr"))"
  diff <(jq -S .settings raw.json) <(jq -S .settings "$name.json") >"$name.diff"
  ok $? "$name: the same settings as the raw disk" || head -n 10 "$name.diff" | sed 's/^/# /'
  is "$("${CAT[@]}" -i "$name")" "$ours $(stat -c %s "$name.want")" "$name: probed as $ours, of qemu-img's virtual size"
done

# The readers are opened on first use (src/core/base/dl.h): none at start-up; a VHD opens libvhdi
# (whose copy of libbfio serves every reader: src/core/inspect/bfio.h) alone, a VMDK libvmdk too,
# and libbfio1, which libvmdk needs, while libvhdi's copy keeps serving it.
is "$(vs_yal_loaded "$VS_BUILDDIR/vmscope" --version | tr '\n' ' ')" "" \
  "vmscope --version maps none of hivex, libfsntfs, libfsxfs, libvslvm, libvhdi, libvmdk, libbfio"
is "$(vs_yal_loaded "$VS_BUILDDIR/t/lib/image_cat" dynamic.vhd | tr '\n' ' ')" "libvhdi.so.1 " \
  "reading a VHD opens libvhdi, and none of the others"
is "$(vs_yal_loaded "$VS_BUILDDIR/t/lib/image_cat" sparse.vmdk | tr '\n' ' ')" \
  "libbfio.so.1 libvhdi.so.1 libvmdk.so.1 " "reading a VMDK opens libvmdk, after libvhdi (libbfio's copy)"

# --image-format names them as qemu-img does (vhd also as vpc); a file of another format is
# refused, saying which signature was expected.
inspect --image-format vhdx disk.vhdx >fmt.json 2>fmt.err
ok $? "inspect --image-format vhdx disk.vhdx reads it ($(head -c 200 fmt.err))"
inspect --image-format vpc dynamic.vhd >/dev/null 2>fmt.err
ok $? "inspect --image-format vpc dynamic.vhd: qemu's name for vhd ($(head -c 200 fmt.err))"
cp dynamic.vhd web-09.vpc
is "$(inspect web-09.vpc | jq -r .name)" web-09 "a .vpc file (qemu's name for VHD) is named without its extension, as .vhd is"
inspect --image-format vmdk disk.vhdx >/dev/null 2>fmt.err
rc=$?
is "$rc $(grep -c 'disk.vhdx is a vhdx image (not vmdk): drop --image-format or give vhdx' fmt.err)" "1 1" \
  "inspect --image-format vmdk disk.vhdx: refused, naming what the file is ($(head -c 200 fmt.err))"
inspect --image-format raw disk.vhdx >/dev/null 2>fmt.err
is "$? $(grep -c 'disk.vhdx is a vhdx image (not raw)' fmt.err)" "1 1" "inspect --image-format raw disk.vhdx: refused the same way ($(head -c 200 fmt.err))"
inspect --image-format qcow2 sparse.vmdk >/dev/null 2>fmt.err
is "$? $(grep -c 'sparse.vmdk is a vmdk image (not qcow2): drop --image-format or give vmdk' fmt.err)" "1 1" \
  "inspect --image-format qcow2 sparse.vmdk: the advice names the format it has ($(head -c 200 fmt.err))"
inspect --image-format raw fixed.vhd >fixed-raw.json 2>fmt.err
ok $? "inspect --image-format raw fixed.vhd reads it: a fixed VHD is the disk, then a footer ($(head -c 200 fmt.err))"

# A sparse VMDK holds its descriptor, whose extent is the file's name when it was made: a copy
# or a renamed file is itself the disk, as qemu reads it, never the file that name now points to.
mkdir -p moved && cp sparse.vmdk moved/copy.vmdk && cp stream.vmdk moved/stream-copy.vmdk
qemu-img create -q -f vmdk moved/sparse.vmdk 26M # another disk under the original's name
for f in copy stream-copy; do
  inspect "moved/$f.vmdk" >"$f.json" 2>"$f.err"
  ok $? "moved/$f.vmdk (a copy beside another disk named as its descriptor says) is read ($(head -c 200 "$f.err"))"
  diff <(jq -S .settings raw.json) <(jq -S .settings "$f.json") >/dev/null
  ok $? "moved/$f.vmdk: the same settings as the raw disk, not the other file's"
done

# A FIFO, as the image or as an extent, is refused at once (opening it must not wait for a writer).
mkfifo pipe.img
timeout 20 "$VMSCOPE" inspect --backend direct pipe.img >/dev/null 2>pipe.err
is "$? $(grep -c 'pipe.img: not a regular file or block device' pipe.err)" "1 1" "a FIFO as the image: refused ($(head -c 200 pipe.err))"
sed 's/^RW \([0-9]*\) FLAT ".*"/RW \1 FLAT "pipe.img"/' flat.vmdk >pipe.vmdk # qemu-img's descriptor
timeout 20 "$VMSCOPE" inspect --backend direct pipe.vmdk >/dev/null 2>pipe.err
is "$? $(grep -c 'is not a regular file' pipe.err)" "1 1" "a FIFO as a VMDK extent: refused ($(head -c 200 pipe.err))"

# The output never lands in an input: standard output appended to the image, or to a backing file.
cp disk.vhdx keep.vhdx
"$VMSCOPE" inspect --backend direct keep.vhdx >>keep.vhdx 2>out.err
rc=$?
cmp -s keep.vhdx disk.vhdx
is "$rc $? $(grep -c 'keep.vhdx is also where the output goes: refused' out.err)" "1 0 1" \
  "inspect keep.vhdx >> keep.vhdx: refused, the image unchanged ($(head -c 200 out.err))"
qemu-img create -q -f qcow2 -b keep.vhdx -F vhdx top.qcow2
"$VMSCOPE" inspect --backend direct top.qcow2 1<>keep.vhdx 2>out.err
rc=$?
cmp -s keep.vhdx disk.vhdx
is "$rc $? $(grep -c 'keep.vhdx is also where the output goes' out.err)" "1 0 1" \
  "inspect top.qcow2 1<> its backing file: refused, the backing file unchanged ($(head -c 200 out.err))"

# A qcow2 overlay whose backing file is the VHDX.
qemu-img create -q -f qcow2 -b disk.vhdx -F vhdx overlay.qcow2 || bail "qemu-img create overlay failed"
"${CAT[@]}" overlay.qcow2 | cmp -s - disk.vhdx.want
ok $? "a qcow2 overlay on the VHDX reads as its base"

# A VMDK with a parent: refused, with a message.
qemu-img create -q -f vmdk -b sparse.vmdk -F vmdk child.vmdk || bail "qemu-img create child failed"
"${CAT[@]}" child.vmdk >/dev/null 2>child.err
is $? 1 "a VMDK with a parent is refused"
grep -q "child.vmdk: a VMDK with a parent" child.err; ok $? "saying so: $(cat child.err)"

# ---- hostile images: a clean error naming the file, bounded memory, within a deadline
hostile() { # FILE DESCRIPTION MESSAGE-PATTERN
  local f=$1 what=$2 pattern=$3 kib secs rc
  /usr/bin/time -f '%M %e' -o "$f.time" timeout 60 "${CAT[@]}" "$f" >/dev/null 2>"$f.err"
  rc=$?
  read -r kib secs < <(tail -n 1 "$f.time" 2>/dev/null) # after "Command exited with ..."
  [ $rc = 1 ] && grep -q "^$f: " "$f.err" && grep -qE "$pattern" "$f.err"
  ok $? "$what: a clean error naming the file in ${secs:-?} s (rc $rc): $(head -c 300 "$f.err")"
  if [ "${VS_VALGRIND:-}" = 1 ] || [ "${VS_SANITIZED:-}" = 1 ]; then
    skip 1 "under valgrind or ASan the peak RSS is theirs (the plain run checks it)"
  else
    [ "${kib:-999999}" -lt 65536 ]; ok $? "$what: in bounded memory (${kib:-?} KiB < 64 MiB)"
  fi
  timeout 60 "$VMSCOPE" inspect --backend direct "$f" >/dev/null 2>"$f.ierr"
  rc=$?
  [ $rc = 1 ] && grep -q "$f" "$f.ierr"
  ok $? "$what: vmscope inspect fails cleanly too (rc $rc): $(head -c 200 "$f.ierr")"
}
head -c 1500000 disk.vhdx >truncated.vhdx
hostile truncated.vhdx "a VHDX cut short" "VHD/VHDX|reading"
python3 - dynamic.vhd badbat.vhd <<'PY' || bail "patching the VHD's block table failed"
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
assert d[512:520] == b"cxsparse"
bat = struct.unpack(">Q", d[512 + 16:512 + 24])[0]
n = struct.unpack(">I", d[512 + 28:512 + 32])[0]
for i in range(n):  # every allocated block now lies 1 TiB past the file's end
    if struct.unpack(">I", d[bat + 4 * i:bat + 4 * i + 4])[0] != 0xFFFFFFFF:
        d[bat + 4 * i:bat + 4 * i + 4] = struct.pack(">I", 0x7FFFFFF0)
open(sys.argv[2], "wb").write(d)
PY
hostile badbat.vhd "a VHD whose block table points past the file" "reading"
sed 's#"flat-flat.vmdk"#"/etc/passwd"#' flat.vmdk >passwd.vmdk
hostile passwd.vmdk "a VMDK descriptor naming /etc/passwd as its extent" 'resolves to /etc/passwd, outside'
sed 's#"flat-flat.vmdk"#"../../../../../../../etc/passwd"#' flat.vmdk >dotdot.vmdk
hostile dotdot.vmdk "a VMDK descriptor naming ../../etc/passwd" 'resolves to /etc/passwd, outside'
ln -s /etc/passwd passwd-link
sed 's#"flat-flat.vmdk"#"passwd-link"#' flat.vmdk >link.vmdk
hostile link.vmdk "a VMDK descriptor naming a symlink to /etc/passwd" 'resolves to /etc/passwd, outside'
done_testing
