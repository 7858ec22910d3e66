#!/usr/bin/env bash
# seeds.sh OUT VMSCOPE: seed corpora for the fuzz targets, one directory per target under OUT,
# made from real things: qcow2 images written by qemu-img and qemu-io (v2 and v3, 512 B to
# 2 MiB clusters, zero, compressed (deflate and zstd) and extended-L2 clusters, backing
# names), small raw disks with ext2/ext4 file systems made by mke2fs from guest trees (whole
# disk, MBR and GPT), feature documents and drift input from `vmscope inspect` on those trees,
# replies of the real qemu-ga, replies of a real etcd's JSON gateway, and the plugins' own
# example configuration.
set -euo pipefail
export E2FSPROGS_FAKE_TIME=1700000000
out=$1 vmscope=$2
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT
for t in qcow2 direct ntfs xfs lvm vhdx vmdk hive feature drift agent etcd config_snapshot config_drift config_action; do
  mkdir -p "$out/$t"
done

# ---- qcow2
q=$out/qcow2
img() { qemu-img create -q -f qcow2 "$@"; }
img -o cluster_size=65536 "$q/empty-v3.qcow2" 4M
img -o compat=0.10,cluster_size=4096 "$q/empty-v2.qcow2" 1M
img -o cluster_size=512 "$tmp/small.qcow2" 256K
qemu-io -f qcow2 -c "write -P 0x11 0 8k" -c "write -z 16k 4k" "$tmp/small.qcow2" >/dev/null
cp "$tmp/small.qcow2" "$q/data-zero-512.qcow2"
img -o cluster_size=16384,extended_l2=on "$tmp/ext.qcow2" 1M
qemu-io -f qcow2 -c "write -P 0x22 2048 1024" -c "write -z 8192 2048" "$tmp/ext.qcow2" >/dev/null
cp "$tmp/ext.qcow2" "$q/extended-l2.qcow2"
head -c 65536 /dev/urandom | tr -dc 'a-z \n' | head -c 32768 >"$tmp/text" || true
truncate -s 64K "$tmp/text"
qemu-img convert -q -f raw -O qcow2 -c -o cluster_size=4096 "$tmp/text" "$q/compressed-deflate.qcow2"
qemu-img convert -q -f raw -O qcow2 -c -o cluster_size=4096,compression_type=zstd "$tmp/text" "$q/compressed-zstd.qcow2"
img -o cluster_size=4096 -b "base.qcow2" -F qcow2 "$q/backing-name.qcow2" 1M 2>/dev/null ||
  { img -o cluster_size=4096 "$tmp/base.qcow2" 1M && img -o cluster_size=4096 -b "$tmp/base.qcow2" -F qcow2 "$q/backing-name.qcow2"; }
head -c 4096 /dev/zero >"$q/raw-zeros.img"

# ---- raw disks with ext2/ext4 file systems, from small guest trees
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
tree=$tmp/tree
mk "$tree/etc/os-release" 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
mk "$tree/etc/hostname" 'web-01\n'
mk "$tree/etc/fstab" 'UUID=8a3c6f2e-1b7d-4a59-9c0e-3f2d5b6a7c81 / ext4 defaults 0 1\n/dev/vdb1 /srv ext4 defaults 0 2\n'
mk "$tree/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n'
mk "$tree/etc/group" 'root:x:0:\nwww-data:x:33:\n'
mk "$tree/etc/shadow" 'root:*:19000:0:99999:7:::\n'
mk "$tree/etc/ssh/sshd_config" '#PermitRootLogin prohibit-password\nPort 22\nUsePAM yes\n'
mk "$tree/etc/sysctl.d/60-x.conf" 'net.ipv4.ip_forward = 1\n'
mk "$tree/var/lib/dpkg/status" 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n\n'
mkdir -p "$tree/etc/systemd/system/multi-user.target.wants"
ln -s /lib/systemd/system/ssh.service "$tree/etc/systemd/system/multi-user.target.wants/ssh.service"
ln -s ../../etc/passwd "$tree/etc/escape"
d=$out/direct
mke2fs -q -F -t ext4 -b 1024 -I 256 -N 64 -U 8a3c6f2e-1b7d-4a59-9c0e-3f2d5b6a7c81 -d "$tree" "$d/ext4-whole.img" 512K
mke2fs -q -F -t ext2 -b 1024 -I 256 -N 64 -d "$tree" "$d/ext2-whole.img" 256K
mke2fs -q -F -t ext4 -b 1024 -I 256 -N 64 -O inline_data -d "$tree" "$d/ext4-inline.img" 512K
for label in gpt dos; do
  mke2fs -q -F -t ext4 -b 1024 -I 256 -N 64 -d "$tree" "$tmp/part.fs" 256K
  truncate -s 320K "$d/ext4-$label.img"
  printf 'label: %s\nstart=64, size=512\n' "$label" | sfdisk -q "$d/ext4-$label.img"
  dd if="$tmp/part.fs" of="$d/ext4-$label.img" bs=512 seek=64 conv=notrunc status=none
done

# ---- NTFS volumes (mkntfs's smallest, 512-byte clusters), a file put in with ntfscp
if command -v mkntfs >/dev/null && command -v ntfscp >/dev/null; then
  truncate -s 1025K "$out/ntfs/empty.img"
  mkntfs -F -Q -q -c 512 -L seed "$out/ntfs/empty.img" >/dev/null 2>&1
  cp "$out/ntfs/empty.img" "$out/ntfs/file.img"
  ntfscp "$out/ntfs/file.img" "$tree/etc/os-release" /os-release >/dev/null 2>&1
fi

# ---- XFS volumes (mkfs.xfs -p from a protofile): the first MiB of a 320 MiB volume, which
# fuzz_xfs extends with zeros; an LVM2 physical volume's label and metadata, written here as
# LVM2 writes them (its tools need a block device)
if command -v mkfs.xfs >/dev/null; then
  printf '/seed\n0 0\nd--755 0 0\netc d--755 0 0\nos-release ---644 0 0 %s\nhostname ---644 0 0 %s\nescape l--777 0 0 ../../etc/passwd\n$\n$\n' \
    "$tree/etc/os-release" "$tree/etc/hostname" >"$tmp/proto"
  for v in crc=1 crc=0; do
    truncate -s 320M "$tmp/xfs.img"
    mkfs.xfs -q -f -m "$v" -p "$tmp/proto" "$tmp/xfs.img" >/dev/null 2>&1 &&
      head -c 1M "$tmp/xfs.img" >"$out/xfs/tree-$v.img"
    rm -f "$tmp/xfs.img"
  done
fi
python3 - "$out/lvm" <<'PY'
import struct, sys, zlib
def crc(data):  # LVM2's calc_crc: CRC-32 from 0xf597a6cf, not inverted at the end
    return (zlib.crc32(data, 0xf597a6cf ^ 0xffffffff) ^ 0xffffffff) & 0xffffffff
def pv(lvs, extent_sectors=8192, pe_count=15):
    pvid = "t2wdZ1gNWyEkQNuEkk4Pyc7b73tKoJ8x"
    dashed = "-".join([pvid[:6], pvid[6:10], pvid[10:14], pvid[14:18], pvid[18:22], pvid[22:26], pvid[26:]])
    body = "".join("%s {\nid = \"Dgamzr-pTfR-s8Ls-4opH-yjKw-stQd-cjeK4x\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\n"
                   "flags = []\nsegment_count = 1\n\nsegment1 {\nstart_extent = 0\nextent_count = %d\n\n"
                   "type = \"striped\"\nstripe_count = 1\n\nstripes = [\n\"pv0\", %d\n]\n}\n}\n" % (n, c, s)
                   for n, c, s in lvs)
    text = ("vg {\nid = \"3lTDZu-1SCa-WykV-Dksf-qCKV-82Iw-EC3xWP\"\nseqno = 2\nformat = \"lvm2\"\n"
            "status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\nflags = []\nextent_size = %d\nmax_lv = 0\n"
            "max_pv = 0\nmetadata_copies = 0\n\nphysical_volumes {\n\npv0 {\nid = \"%s\"\n"
            "device = \"/dev/sda1\"\n\nstatus = [\"ALLOCATABLE\"]\nflags = []\ndev_size = 131072\n"
            "pe_start = 2048\npe_count = %d\n}\n}\n\nlogical_volumes {\n\n%s}\n\n}\n"
            "contents = \"Text Format Volume Group\"\nversion = 1\n\n" % (extent_sectors, dashed, pe_count, body)).encode() + b"\0"
    disk = bytearray(1 << 20)
    # the label, in sector 1
    hdr = struct.pack("<32sQ", pvid.encode(), 64 << 20)
    hdr += struct.pack("<QQQQ", 1 << 20, 0, 0, 0)            # data area: from 1 MiB to the end
    hdr += struct.pack("<QQQQ", 4096, (1 << 20) - 4096, 0, 0)  # metadata area
    label = bytearray(512)
    label[0:32] = struct.pack("<8sQII8s", b"LABELONE", 1, 0, 32, b"LVM2 001")
    label[32:32 + len(hdr)] = hdr
    struct.pack_into("<I", label, 16, crc(bytes(label[20:])))
    disk[512:1024] = label
    # the metadata area's header, and the text after it
    mda = bytearray(512)
    struct.pack_into("<16sIQQ", mda, 4, b" LVM2 x[5A%r0N*>", 1, 4096, (1 << 20) - 4096)
    struct.pack_into("<QQII", mda, 40, 512, len(text), crc(text), 0)
    struct.pack_into("<I", mda, 0, crc(bytes(mda[4:])))
    disk[4096:4608] = mda
    disk[4608:4608 + len(text)] = text
    return bytes(disk).rstrip(b"\0")
out = sys.argv[1]
open(out + "/one-lv.img", "wb").write(pv([("root", 10, 0)]))
open(out + "/two-lvs.img", "wb").write(pv([("swap", 2, 0), ("root", 8, 2)]))
open(out + "/past-end.img", "wb").write(pv([("root", 100000, 0)]))
PY

# ---- VHD, VHDX and VMDK images of a small disk, written by qemu-img; VMDK descriptors naming
# the input itself (allowed: it lies in the target's directory) and /etc/passwd (refused)
head -c 65536 /dev/urandom >"$tmp/small.raw"
truncate -s 1M "$tmp/small.raw"
qemu-img convert -q -f raw -O vpc "$tmp/small.raw" "$out/vhdx/dynamic.vhd"
qemu-img convert -q -f raw -O vpc -o subformat=fixed "$tmp/small.raw" "$out/vhdx/fixed.vhd"
qemu-img convert -q -f raw -O vhdx -o block_size=1M,log_size=1M "$tmp/small.raw" "$out/vhdx/data.vhdx"
qemu-img convert -q -f raw -O vmdk "$tmp/small.raw" "$out/vmdk/sparse.vmdk"
qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$tmp/small.raw" "$out/vmdk/stream.vmdk"
descriptor() { printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n# Extent description\nRW 1 FLAT "%s" 0\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = "4"\n' "$1"; }
descriptor disk.vmdk >"$out/vmdk/self.vmdk"
descriptor /etc/passwd >"$out/vmdk/passwd.vmdk"

# ---- registry hives: t/lib/mkhive's empty hive filled by hivexregedit, and one with a cyclic
# key list (every subkey list's last entry pointed back at the root)
mkhive=$(dirname "$vmscope")/t/lib/mkhive
if [ -x "$mkhive" ] && command -v hivexregedit >/dev/null; then
  "$mkhive" empty "$out/hive/empty"
  keys=('\Microsoft' '\Microsoft\Windows NT' '\Microsoft\Windows' '\Microsoft\Windows\CurrentVersion'
    '\Microsoft\Windows\CurrentVersion\Uninstall' '\ControlSet001' '\ControlSet001\Control'
    '\ControlSet001\Control\ComputerName' '\ControlSet001\Services')
  {
    printf 'Windows Registry Editor Version 5.00\n\n'
    for k in "${keys[@]}"; do printf '[%s]\n\n' "$k"; done
    printf '[\\Microsoft\\Windows NT\\CurrentVersion]\n"ProductName"="Windows Server 2022 Standard"\n"CurrentBuild"="20348"\n\n'
    printf '[\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\App]\n"DisplayName"="App"\n"DisplayVersion"="1.0"\n\n'
    printf '[\\Select]\n"Current"=dword:00000001\n\n'
    printf '[\\ControlSet001\\Control\\ComputerName\\ComputerName]\n"ComputerName"="WIN-01"\n\n'
    printf '[\\ControlSet001\\Services\\Svc]\n"Start"=dword:00000002\n"List"=hex(7):61,00,00,00,62,00,00,00,00,00\n'
  } >"$tmp/hive.reg"
  cp "$out/hive/empty" "$out/hive/filled" && hivexregedit --merge "$out/hive/filled" "$tmp/hive.reg"
  "$mkhive" cycle "$out/hive/filled" "$out/hive/cyclic"
fi

# ---- feature documents and drift input
"$vmscope" inspect --compact "$tree" >"$out/feature/tree.json"
cp "$tree/etc/hostname" "$tmp/h" && mk "$tree/etc/hostname" 'web-02\n'
mk "$tree/etc/ssh/sshd_config" 'PermitRootLogin yes\nPort 22\n'
"$vmscope" inspect --compact "$tree" >"$out/feature/tree-2.json"
printf '{"schema":"vmscope.features/1","id":"x","name":"x","settings":{"a":"b"},"skipped":[]}' >"$out/feature/minimal.json"
{ printf 'j'; jq -cs . "$out/feature/tree.json" "$out/feature/tree-2.json"; } >"$out/drift/docs"
printf 'wfile:/etc/ssh/sshd_config:PermitRootLogin web-* 2027-01-01 root logins are needed for the migration\n# comment\nsysctl:* * - tuning is ours\n' >"$out/drift/waivers"
printf 'lweb-01 web\ndb-01 db # the database\n' >"$out/drift/labels"

# ---- replies of the real qemu-ga (after an honest sync: an empty first part)
if command -v qemu-ga >/dev/null && command -v socat >/dev/null; then
  qemu-ga -m unix-listen -p "$tmp/qga.sock" -t "$tmp" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do [ -S "$tmp/qga.sock" ] && break; sleep 0.1; done
  ask() { printf '%s\n' "$1" | timeout 5 socat -t 2 - "UNIX-CONNECT:$tmp/qga.sock" | head -n1; }
  info=$(ask '{"execute":"guest-info"}')
  exec_reply=$(ask '{"execute":"guest-exec","arguments":{"path":"/bin/echo","arg":["hello"],"capture-output":true}}')
  pid=$(jq -r '.return.pid' <<<"$exec_reply")
  sleep 0.3
  status=$(ask "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}")
  printf '\x00%s\n' "$info" >"$out/agent/info"
  printf '\x01\x00%s\n\x00%s\n' "$exec_reply" "$status" >"$out/agent/exec"
  printf '\x00garbage\n\xff{"return": @ID@}\n\x00{"error":{"class":"GenericError","desc":"x"}}\n' >"$out/agent/error"
fi
printf '\x00\x00{"return": {"version": "7.2.0"}}\n' >"$out/agent/minimal"

# ---- replies of a real etcd's JSON gateway
if command -v etcd >/dev/null; then
  port=$((30000 + $$ % 2000 * 2))
  etcd --data-dir "$tmp/etcd" --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((port + 1))" >"$tmp/etcd.log" 2>&1 &
  pids+=($!)
  api=http://127.0.0.1:$port/v3
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  b64() { printf '%s' "$1" | base64 -w0; }
  curl -sf "$api/kv/put" -d "{\"key\":\"$(b64 /vmscope/vms/5e1d0000-0000-4000-8000-000000000001)\",\"value\":\"$(b64 '{"host":"hv-01","name":"web-01","channel":"libvirt"}')\"}" >/dev/null
  curl -sf "$api/kv/put" -d "{\"key\":\"$(b64 /vmscope/inbox/hv-01/m1)\",\"value\":\"$(b64 '{"vm":"web-01","command":{"execute":"guest-ping"}}')\"}" >/dev/null
  curl -sf "$api/kv/range" -d "{\"key\":\"$(b64 /vmscope/)\",\"range_end\":\"$(b64 /vmscope0)\"}" >"$out/etcd/range"
  curl -sf "$api/kv/range" -d "{\"key\":\"$(b64 /nothing)\"}" >"$out/etcd/empty"
  curl -sf "$api/lease/grant" -d '{"TTL":15}' >"$out/etcd/lease"
fi
printf '{"kvs":[{"key":"L3Ztc2NvcGUveA==","value":"eQ==","mod_revision":"7"}],"count":"1"}' >"$out/etcd/minimal"

# ---- the plugins' configuration (etc/vmscope.conf, each plugin's block)
awk -v out="$out" '
  /^<Plugin vmscope_/ { name = $2; sub(/>$/, "", name); sub(/^vmscope_/, "", name); f = out "/config_" name "/example"; next }
  /^<\/Plugin>/ { f = ""; next }
  f != "" { print > f }' "$top/etc/vmscope.conf"
printf 'Tree "a" "/srv/a"\nDomain "web-*"\nInterval 0\nWorkers 100000\nKeepDays -1\n' >"$out/config_snapshot/edges"
printf 'WaiverFile "/nonexistent"\nPeerGroup "nobody"\nMinRolePeers -3\n' >"$out/config_drift/edges"
printf '<Rule "r">\n  Match Plugin "vmscope_drift" Meta "key"\n  Action "agent" "{}"\n  RateLimit 0 0\n</Rule>\n<Rule "r">\n</Rule>\n' >"$out/config_action/edges"
for t in "$out"/*/; do echo "$(basename "$t"): $(ls "$t" | wc -l) seeds"; done
