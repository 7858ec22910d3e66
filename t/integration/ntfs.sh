#!/usr/bin/env bash
# NTFS on the direct path (src/core/inspect/fs_ntfs.c: libfsntfs reading through our image
# reader), against ntfs-3g's own tools as the oracle:
#   - a disk with an MBR partition holding NTFS, made by mkntfs and filled through ntfs-3g's
#     FUSE mount: the bytes of files (one over several read chunks), directory listings (one
#     large enough for an index allocation) and sizes agree with ntfscat and ntfsls, in the raw
#     image and in a qcow2 made from it by qemu-img;
#   - names are found case-insensitively, as Windows finds them; metadata files are not listed;
#   - the volume holding Windows/System32/config is chosen as the root, and its SOFTWARE and
#     SYSTEM hives (t/lib/mkhive + hivexregedit) give os: features through the direct path;
#   - hostile volumes: a directory whose index entry points back at the root (a loop any walk
#     could follow forever), and an $MFT whose data claims a terabyte: clean errors or bounded
#     work, in bounded memory, within a deadline.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
for c in mkntfs ntfsls ntfscat ntfs-3g fusermount sfdisk qemu-img jq mke2fs python3; do
  command -v "$c" >/dev/null || bail "$c is not installed (scripts/install-deps.sh installs it)"
done
[ -x /usr/bin/time ] || bail "/usr/bin/time is not installed (scripts/install-deps.sh installs it)"
CAT=("${VS_RUN[@]}" "$VS_BUILDDIR/t/lib/source_cat")
work=$(tmpdir)
mnt=$work/mnt
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && fusermount -u "$mnt"
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || bail "cd $work"

# ---- the volume: 32 MiB of NTFS, filled through ntfs-3g
truncate -s 32M vol.ntfs
mkntfs -F -Q -q -L WINSYS vol.ntfs >/dev/null 2>&1 || bail "mkntfs failed"
mkdir -p "$mnt"
if ! ntfs-3g vol.ntfs "$mnt" 2>fuse.err; then
  skip 21 "ntfs-3g cannot mount through FUSE here: $(head -c 200 fuse.err)"
  done_testing
  exit
fi
mkdir -p "$mnt/trap/loop" "$mnt/Windows/System32/config" "$mnt/Program Files/Big Dir"
head -c 262144 /dev/urandom >"$mnt/Windows/System32/config/RANDOM.DAT"
head -c 3000000 /dev/urandom >"$mnt/Program Files/large.bin"
printf 'hello from NTFS\n' >"$mnt/hello.txt"
: >"$mnt/empty.txt"
for i in $(seq 1 300); do printf '%d\n' "$i" >"$mnt/Program Files/Big Dir/file-$i.txt"; done
# SOFTWARE and SYSTEM hives (t/lib/mkhive's empty hive, filled by hivexregedit): os: features.
has_hive=0
if [ -x "$VS_BUILDDIR/t/lib/mkhive" ] && command -v hivexregedit >/dev/null; then
  printf 'Windows Registry Editor Version 5.00\n\n[\\Microsoft]\n\n[\\Microsoft\\Windows NT]\n\n[\\Microsoft\\Windows NT\\CurrentVersion]\n"ProductName"="Windows Server 2019 Standard"\n"CurrentBuild"="17763"\n' >software.reg
  printf 'Windows Registry Editor Version 5.00\n\n[\\Select]\n"Current"=dword:00000001\n\n[\\ControlSet001]\n\n[\\ControlSet001\\Control]\n\n[\\ControlSet001\\Control\\ComputerName]\n\n[\\ControlSet001\\Control\\ComputerName\\ComputerName]\n"ComputerName"="WIN-NTFS-01"\n' >system.reg
  "$VS_BUILDDIR/t/lib/mkhive" empty software.hive && hivexregedit --merge software.hive software.reg &&
    "$VS_BUILDDIR/t/lib/mkhive" empty system.hive && hivexregedit --merge system.hive system.reg &&
    cp software.hive "$mnt/Windows/System32/config/SOFTWARE" &&
    cp system.hive "$mnt/Windows/System32/config/SYSTEM" && has_hive=1
fi
# Windows symlinks: reparse points (IO_REPARSE_TAG_SYMLINK) written through ntfs-3g's xattr.
touch "$mnt/abs" "$mnt/rel"
python3 - "$mnt" <<'PY' || bail "writing the reparse points failed"
import os, struct, sys
def symlink(path, target, relative):
    sub = target.encode("utf-16-le")
    shown = (target[4:] if target.startswith("\\??\\") else target).encode("utf-16-le")
    body = struct.pack("<HHHHI", 0, len(sub), len(sub), len(shown), 1 if relative else 0) + sub + shown
    os.setxattr(path, "system.ntfs_reparse_data", struct.pack("<IHH", 0xA000000C, len(body), 0) + body)
symlink(sys.argv[1] + "/abs", "\\??\\C:\\Windows\\System32", False)
symlink(sys.argv[1] + "/rel", "..\\..\\..\\hello.txt", True)
PY
fusermount -u "$mnt" || bail "fusermount -u failed"

# ---- the disk: an MBR partition at 1 MiB
truncate -s 34M disk.raw
printf 'label: dos\nstart=2048, size=65536, type=7\n' | sfdisk -q disk.raw || bail "sfdisk failed"
dd if=vol.ntfs of=disk.raw bs=1M seek=1 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2 || bail "qemu-img convert failed"

for img in disk.raw disk.qcow2; do
  "${CAT[@]}" "$img" -- cat /Windows/System32/config/RANDOM.DAT >got.bin 2>got.err
  ntfscat vol.ntfs /Windows/System32/config/RANDOM.DAT >want.bin 2>/dev/null
  cmp -s got.bin want.bin
  ok $? "$img: a 256 KiB file's bytes are ntfscat's ($(head -c 200 got.err))"
  "${CAT[@]}" "$img" -- cat "/Program Files/large.bin" >got.bin 2>got.err
  ntfscat vol.ntfs "/Program Files/large.bin" >want.bin 2>/dev/null
  cmp -s got.bin want.bin
  ok $? "$img: a 3 MB file (many read chunks, non-resident runs) is ntfscat's too"
  got=$("${CAT[@]}" "$img" -- ls "/Program Files/Big Dir" 2>&1 | LC_ALL=C sort)
  want=$(ntfsls vol.ntfs -p "/Program Files/Big Dir" | grep -vx '\.\|\.\.' | LC_ALL=C sort)
  is "$got" "$want" "$img: a 300-entry directory (an index allocation) lists as ntfsls lists it"
done
is "$(vs_yal_loaded "$VS_BUILDDIR/t/lib/source_cat" disk.raw -- cat /hello.txt | tr '\n' ' ')" \
  "libbfio.so.1 libfsntfs.so.1 libvhdi.so.1 " \
  "reading NTFS opens libfsntfs on first use, after libvhdi (libbfio's copy: src/core/inspect/bfio.h), and no other reader"
got=$("${CAT[@]}" disk.raw -- ls / 2>&1 | LC_ALL=C sort)
is "$got" "$(ntfsls vol.ntfs | LC_ALL=C sort)" "the root lists as ntfsls lists it: no \$MFT, \$Bitmap or other metadata file"
is "$("${CAT[@]}" disk.raw -- stat /hello.txt stat /empty.txt stat /Windows stat "/Program Files/large.bin" 2>&1 | tr '\n' ,)" \
  "regular file 16,regular file 0,directory 0,regular file 3000000," "stat: types and sizes as ntfs-3g wrote them"
is "$("${CAT[@]}" disk.raw -- cat /WINDOWS/system32/CONFIG/random.dat 2>&1 | cksum)" \
  "$(ntfscat vol.ntfs /Windows/System32/config/RANDOM.DAT | cksum)" "names are found case-insensitively, as Windows finds them"
is "$("${CAT[@]}" disk.raw -- stat /abs readlink /abs ls /abs 2>&1 | tr '\n' ,)" "symlink 0,/Windows/System32,config," \
  "a Windows symlink to \\??\\C:\\Windows\\System32 reads as /Windows/System32, followed inside the volume"
is "$("${CAT[@]}" disk.raw -- readlink /rel cat /rel 2>&1 | tr '\n' ,)" "../../../hello.txt,hello from NTFS," \
  "a relative one climbing above the root stops at the volume's root, as source.c resolves any link"
"${CAT[@]}" disk.raw -- stat /\$MFT >/dev/null 2>&1
[ $? -eq 1 ]; ok $? "a metadata file (\$MFT) cannot be looked up"
"${CAT[@]}" disk.raw -- cat /Windows >/dev/null 2>dir.err
grep -q "not a regular file" dir.err; ok $? "reading a directory is refused: $(cat dir.err)"
"$VMSCOPE" inspect --backend direct disk.qcow2 >doc.json 2>doc.err
rc=$?
if [ $has_hive = 1 ]; then
  is "$rc $(jq -r '[.source.backend, .settings["os:type"], .settings["os:pretty_name"], .settings["os:build"], .settings["os:hostname"]] | join(",")' doc.json 2>&1)" \
    "0 direct,windows,Windows Server 2019 Standard,17763,WIN-NTFS-01" \
    "vmscope inspect --backend direct reads the Windows volume as the root, its hives giving os: features ($(head -c 200 doc.err))"
else
  ! grep -q "(found:" doc.err
  ok $? "vmscope inspect --backend direct takes the volume holding Windows as the root (no hive: t/lib/mkhive or hivexregedit missing; $(head -c 200 doc.err))"
fi
truncate -s 8M blank.ntfs
mkntfs -F -Q -q blank.ntfs >/dev/null 2>&1 || bail "mkntfs failed"
"${CAT[@]}" blank.ntfs -- ls / >/dev/null 2>blank.err
grep -q "no operating system found in blank.ntfs.*(found: ntfs on the whole disk 0)" blank.err
ok $? "an NTFS volume without Windows/System32/config is no root: $(head -c 200 blank.err)"
mkdir -p tree/etc
printf 'ID=debian\nVERSION_ID="12"\n' >tree/etc/os-release
mke2fs -q -F -t ext4 -d tree linux.img 8M >/dev/null 2>&1 || bail "mke2fs failed"
is "$("${CAT[@]}" disk.raw linux.img -- cat /etc/os-release 2>&1 | head -n1)" "ID=debian" \
  "beside a Linux root on another disk, Windows is not the root: the Linux one is, as before"

# ---- hostile volumes, patched at offsets the boot sector gives
u8() { od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' '; }
u16() { od -An -t u2 -j "$2" -N 2 "$1" | tr -d ' '; }
u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
bps=$(u16 vol.ntfs 11)
spc=$(u8 vol.ntfs 13)
cluster=$((bps * spc))
mft=$(($(u64 vol.ntfs 48) * cluster))
rec=1024
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
run_bounded() { # IMAGE OUT: source_cat under time and a deadline; "kib secs rc" in OUT
  local img=$1 out=$2
  shift 2
  /usr/bin/time -f '%M %e' -o time.out timeout 60 "$VS_BUILDDIR/t/lib/source_cat" "$img" -- "$@" >/dev/null 2>"$out.err"
  local rc=$?
  echo "$(tail -n1 time.out) $rc" >"$out"
}

# The index entry for /trap/loop, in /trap's $INDEX_ROOT, is made to point back at /trap.
cp vol.ntfs loop.ntfs
python3 - loop.ntfs "$mft" <<'PY' >loop.where || bail "patching the index failed"
import struct, sys
path, mft = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    for i in range(16, 1024):
        f.seek(mft + i * 1024)
        r = bytearray(f.read(1024))
        if r[:4] != b"FILE":
            continue
        seq = struct.unpack_from("<H", r, 0x10)[0]
        off = struct.unpack_from("<H", r, 0x14)[0]
        while off + 16 < 1024:
            typ, length = struct.unpack_from("<II", r, off)
            if typ == 0xFFFFFFFF or length == 0:
                break
            if typ == 0x90 and r[off + 8] == 0:  # a resident $INDEX_ROOT
                value = off + struct.unpack_from("<H", r, off + 0x14)[0]
                node = value + 16
                e = node + struct.unpack_from("<I", r, node)[0]
                end = node + struct.unpack_from("<I", r, node + 4)[0]
                while e + 0x52 < end:
                    elen, klen = struct.unpack_from("<HH", r, e + 8)
                    n = r[e + 0x50]
                    if klen and r[e + 0x52:e + 0x52 + 2 * n].decode("utf-16-le", "replace") == "loop":
                        struct.pack_into("<IHH", r, e, i, 0, seq)
                        f.seek(mft + i * 1024)
                        f.write(r)
                        print(i)
                        sys.exit(0)
                    if elen == 0:
                        break
                    e += elen
            off += length
sys.exit("no index entry named loop")
PY
diag "/trap is MFT record $(cat loop.where); its entry for loop now points at it"
run_bounded loop.ntfs loop.res ls /trap/loop/loop/loop/loop stat /trap/loop/loop/loop/loop/loop/loop/loop
read -r kib secs rc <loop.res
[ "${rc:-9}" -le 1 ]; ok $? "a directory whose index points back at itself: a clean answer or error, exit ${rc:-?} ($(head -c 200 loop.res.err))"
[ "${kib:-999999}" -lt 131072 ]; ok $? "in bounded memory and time: ${kib:-?} KiB, ${secs:-?} s"
cp loop.ntfs loop-disk.raw
/usr/bin/time -f '%M %e' -o time.out timeout 120 "$VMSCOPE" inspect --backend direct loop-disk.raw >/dev/null 2>loop-inspect.err
rc=$?
read -r kib secs < <(tail -n1 time.out)
[ $rc -le 1 ]; ok $? "vmscope inspect on the looping volume ends: exit $rc, ${kib:-?} KiB, ${secs:-?} s"

# $MFT's $DATA attribute claims a terabyte: the allocated, data and initialized sizes.
cp vol.ntfs mft.ntfs
python3 - mft.ntfs "$mft" <<'PY' || bail "patching \$MFT failed"
import struct, sys
path, mft = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(mft)
    r = bytearray(f.read(1024))
    off = struct.unpack_from("<H", r, 0x14)[0]
    while off < 1024:
        typ, length = struct.unpack_from("<II", r, off)
        if typ == 0xFFFFFFFF or length == 0:
            sys.exit("no $DATA in $MFT")
        if typ == 0x80 and r[off + 8] == 1:
            struct.pack_into("<QQQ", r, off + 0x28, 1 << 40, 1 << 40, 1 << 40)
            break
        off += length
    f.seek(mft)
    f.write(r)
PY
run_bounded mft.ntfs mft.res ls / cat /Windows/System32/config/RANDOM.DAT
read -r kib secs rc <mft.res
[ "${rc:-9}" -le 1 ]; ok $? "an \$MFT claiming 1 TiB: a clean answer or error, exit $rc ($(head -c 200 mft.res.err))"
[ "${kib:-999999}" -lt 131072 ]; ok $? "in bounded memory and time: ${kib:-?} KiB, ${secs:-?} s"
done_testing
