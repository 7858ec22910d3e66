#!/usr/bin/env bash
# guest-image.sh OUTDIR [TREE]: a real Linux guest for the tests that need a running guest OS
# and its QEMU guest agent (t/lib/guest.sh boots it). OUTDIR gets:
#   vmlinuz     the host's Debian kernel (linux-image-amd64)
#   initrd.img  busybox (busybox-static), the modules that reach an ext4 root on virtio-blk and
#               the virtio console, and qemu-ga with its libraries and dynamic loader; its /init
#               mounts /dev/vda1 read-write, then runs qemu-ga chrooted into it (so guest-exec
#               runs the guest's own programs, and guest-fsfreeze-freeze freezes the ext4 root),
#               restarting the agent whenever it exits
#   base.qcow2  TREE (default: the debootstrap tree, $VS_DEBOOTSTRAP_CACHE/root, built if
#               missing) as one ext4 partition on GPT (scripts/tree-to-image.sh)
#   stamp       the kernel, qemu-ga and tree versions and this script's digest it was built from
# It is built once, and again when the stamp changes; under a lock (tests run in parallel), in a
# temporary directory renamed into place. Needs root (the tree is root's, and so is debootstrap).
set -euo pipefail
out=${1:?usage: guest-image.sh OUTDIR [TREE]}
here=$(cd "$(dirname "$0")" && pwd)
tree=${2:-${VS_DEBOOTSTRAP_CACHE:-$(dirname "$out")/debootstrap}/root}
die() {
  echo "guest-image.sh: $*" >&2
  exit 1
}

# The newest kernel whose modules are installed.
kver=
for k in $(ls /boot/vmlinuz-* 2>/dev/null | sort -V); do
  v=${k#/boot/vmlinuz-}
  [ -f "/lib/modules/$v/modules.dep" ] && kver=$v
done
[ -n "$kver" ] || die "no /boot/vmlinuz-* with its /lib/modules/*/modules.dep (scripts/install-deps.sh installs linux-image-amd64)"
mods=/lib/modules/$kver
qga=$(command -v qemu-ga || true)
[ -n "$qga" ] || qga=/usr/sbin/qemu-ga
[ -x "$qga" ] || die "qemu-ga is not installed (package qemu-guest-agent)"
{ [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; } ||
  die "/bin/busybox is missing or not static (package busybox-static)"
for c in cpio gzip qemu-img mke2fs sfdisk ldd; do
  command -v "$c" >/dev/null || die "$c is not installed"
done

if [ ! -f "$tree/.vmscope-complete" ]; then
  echo "guest-image.sh: building the debootstrap tree once ($tree)" >&2
  bash "$here/debootstrap-tree.sh" "$tree" || die "debootstrap-tree.sh $tree failed"
fi
tree=$(cd "$tree" && pwd)
stamp="kernel=$kver
qemu-ga=$("$qga" --version | head -n1)
tree=$tree $(stat -c %Y "$tree/.vmscope-complete")
script=$(sha256sum <"$0" | cut -d' ' -f1)"

mkdir -p "$(dirname "$out")"
exec 9>>"$out.lock"
flock -w 1800 9 || die "another build of $out held $out.lock for 30 minutes"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ]; then exit 0; fi
echo "guest-image.sh: building the guest into $out (kernel $kver)" >&2
tmp=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- initramfs
ird=$tmp/initrd
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules,vs-ga}
cp /bin/busybox "$ird/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -sf busybox "$ird/bin/$a"
done

# Modules in load order (dependencies first), as modules.dep names them; built-in ones are
# skipped. ext4 and jbd2 want crc32c from the crypto API (modules.softdep: crypto-crc32c), which
# nothing would load on demand here: the generic one is loaded first.
declare -A seen=()
order=()
add_module() { # NAME (as in modules.dep, "-" and "_" alike)
  local name=${1//-/_} line path dep
  [ -n "${seen[$name]:-}" ] && return 0
  seen[$name]=1
  if grep -qE "/${name}\.ko(\.[a-z]+)?\$" "$mods/modules.builtin" ||
    grep -qE "/${1}\.ko(\.[a-z]+)?\$" "$mods/modules.builtin"; then
    return 0
  fi
  line=$(grep -E "(^|/)(${name}|${1})\.ko(\.[a-z]+)?:" "$mods/modules.dep" | head -n1)
  [ -n "$line" ] || die "module $1 is neither in $mods/modules.dep nor built in"
  path=${line%%:*}
  for dep in ${line#*:}; do
    dep=${dep##*/}
    add_module "${dep%%.ko*}"
  done
  order+=("$path")
}
for m in crc32c_generic virtio_pci virtio_blk virtio_console ext4; do add_module "$m"; done
: >"$ird/lib/modules/order"
for p in "${order[@]}"; do
  b=${p##*/}
  case $b in
  *.ko) cp "$mods/$p" "$ird/lib/modules/$b" ;;
  *.ko.xz) xz -dc "$mods/$p" >"$ird/lib/modules/${b%.xz}" ;;
  *.ko.zst) zstd -qdc "$mods/$p" >"$ird/lib/modules/${b%.zst}" ;;
  *.ko.gz) gzip -dc "$mods/$p" >"$ird/lib/modules/${b%.gz}" ;;
  *) die "$p: unknown module file type" ;;
  esac
  echo "${b%.ko*}.ko" >>"$ird/lib/modules/order"
done

# qemu-ga, the shared libraries ldd names, and the dynamic loader, all in one directory: the
# agent runs as "LOADER --library-path DIR DIR/qemu-ga" inside the guest's tree.
cp "$qga" "$ird/vs-ga/qemu-ga"
loader=
while read -r lib; do
  cp -L "$lib" "$ird/vs-ga/${lib##*/}"
  case $lib in */ld-linux*) loader=${lib##*/} ;; esac
done < <(ldd "$qga" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$loader" ] || die "ldd $qga names no dynamic loader"
cat >"$ird/vs-ga/fsfreeze-hook" <<'HOOK'
#!/bin/sh
# qemu-ga's fsfreeze hook: "freeze" before the file systems are frozen, "thaw" after they are
# thawed, each with the guest's uptime (monotonic), logged on /run (tmpfs, never frozen). Shell
# built-ins only: nothing is read from the root file system while it is frozen.
read -r up _ </proc/uptime
echo "$1 $up" >>/run/vs-freeze.log
exit 0
HOOK
chmod 755 "$ird/vs-ga/fsfreeze-hook"

cat >"$ird/init" <<INIT
#!/bin/sh
# vmscope's test guest: PID 1 mounts the ext4 root (/dev/vda1), then keeps qemu-ga running in
# it, chrooted, restarting it whenever it exits. Console lines start with "vmscope-guest:".
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "vmscope-guest: \$*" >/dev/console; }
read -r up _ </proc/uptime
say "user space at \$up s"
fail() {
  say "\$*; powering off"
  poweroff -f
}
while read -r m; do
  insmod "/lib/modules/\$m" || say "insmod \$m failed"
done </lib/modules/order
i=0
while [ ! -b /dev/vda1 ]; do
  i=\$((i + 1))
  [ \$i -le 300 ] || fail "no /dev/vda1 after 30 s"
  sleep 0.1
done
mount -t ext4 -o rw /dev/vda1 /newroot || fail "cannot mount /dev/vda1"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
cp -a /vs-ga /newroot/run/vs-ga
mkdir -p /newroot/run/vs-ga/state
# No udev, so no /dev/virtio-ports/org.qemu.guest_agent.0: the port whose name is that one.
port=
i=0
while [ -z "\$port" ]; do
  for n in /sys/class/virtio-ports/vport*/name; do
    [ "\$(cat "\$n" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=\${n%/name} && port=\${port##*/}
  done
  [ -n "\$port" ] && [ -c "/newroot/dev/\$port" ] && break
  port=
  i=\$((i + 1))
  [ \$i -le 300 ] || fail "no virtio port named org.qemu.guest_agent.0 after 30 s"
  sleep 0.1
done
read -r up _ </proc/uptime
say "root mounted, agent on /dev/\$port at \$up s"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd /
# qemu-ga writes its pid file only when it daemonizes: this one stays our child (chroot execs it),
# and its pid is written here, in the guest's /run/vs-ga/qemu-ga.pid.
while :; do
  /bin/chroot /newroot /run/vs-ga/$loader --library-path /run/vs-ga /run/vs-ga/qemu-ga \\
    -m virtio-serial -p "/dev/\$port" -t /run/vs-ga/state \\
    --fsfreeze-hook=/run/vs-ga/fsfreeze-hook -l /run/vs-ga/qemu-ga.log &
  echo \$! >/newroot/run/vs-ga/qemu-ga.pid
  wait \$!
  say "qemu-ga exited with status \$?; starting it again"
  # Not a wait for anything: a bound on how fast an agent that cannot start is retried.
  /bin/sleep 1
done
INIT
chmod 755 "$ird/init"
(cd "$ird" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -6 >"$tmp/initrd.img"
rm -rf "$ird"
cp "/boot/vmlinuz-$kver" "$tmp/vmlinuz"

# ---- root disk
bash "$here/tree-to-image.sh" "$tree" "$tmp/base.qcow2" gpt || die "tree-to-image.sh $tree failed"
printf '%s\n' "$stamp" >"$tmp/stamp"
chmod 755 "$tmp"
chmod 644 "$tmp/vmlinuz" "$tmp/initrd.img" "$tmp/base.qcow2" "$tmp/stamp"
rm -rf "$out.old"
[ -e "$out" ] && mv "$out" "$out.old"
mv "$tmp" "$out"
trap - EXIT
rm -rf "$out.old"
echo "guest-image.sh: $out: $(du -sh "$out/initrd.img" | cut -f1) initrd, $(du -sh "$out/base.qcow2" | cut -f1) base image" >&2
