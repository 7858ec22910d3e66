#!/usr/bin/env bash
# bench/inspect-images.sh [RUNS] : `vmscope inspect --backend direct` as a one-shot command (one
# image per process, as a person or a script runs it) on a qcow2 image of every role tree the
# tests build, against virt-inspector on the same image in the same run.
#
# Roles: the debootstrap minbase + openssh tree (t/integration/debootstrap.sh), the web, db and
# app trees made of real Debian packages (bench/fleet-roles.sh, as bench.sh builds them), and
# the small tree the libvirt and plugin tests write (os-release, sshd_config, passwd, a dpkg
# status). Each role has two images, A and B: B is A with its own hostname, hosts and
# machine-id, as two VMs of one role differ. Per role, the median of RUNS (default 5) processes:
#   no cache   --no-parse-cache: every config file through Augeas (the lens compile included)
#   cold       an empty parse cache (parse, then write the entries)
#   warm A     the cache filled by inspecting A; A again (the same image twice)
#   fleet B    the cache filled by inspecting A only; B (a fleet: most files seen before)
# and virt-inspector on A (VIRT_INSPECTOR_SAMPLE runs per role, default 1: about half a
# minute each under emulation). Every ratio is virt-inspector's time over vmscope's. The
# documents with and without the cache are compared (they must be the same byte for byte).
# Then the other guests and image formats, each an image made as the tests make
# them, direct against virt-inspector on the same image (VIRT_INSPECTOR_SAMPLE runs each):
#   rocky xfs-lvm   a Rocky 9 tree (t/lib/rhel_tree.sh) on XFS on LVM, RHEL's default layout,
#                   made in the appliance (t/lib/images.sh); read with --backend direct, the
#                   only way vmscope reads XFS without the appliance (SECURITY.md)
#   windows ntfs    a Windows Server 2019 registry (t/lib/win_tree.sh) on NTFS, raw
#   debootstrap vhdx, vmdk   the debootstrap image A converted by qemu-img (VHDX; VMDK
#                   monolithicSparse)
# with the parse cache off (no cache) and warm (A again). VS_NO_FORMATS=1 leaves them out.
# VS_DEBOOTSTRAP_CACHE and VS_ROLES_CACHE name where the trees are kept (default: the build's).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${VS_BUILDDIR:-$top/build}
runs=${1:-5}
sample=${VIRT_INSPECTOR_SAMPLE:-1}
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
bash "$top/scripts/build.sh" "$(realpath --relative-to="$top" "$build")"
export VS_DEBOOTSTRAP_CACHE=${VS_DEBOOTSTRAP_CACHE:-$build/t/cache/debootstrap}
base="$VS_DEBOOTSTRAP_CACHE/root"
[ -f "$base/.vmscope-complete" ] || (cd "$build" && VS_BUILDDIR="$build" VS_SRCDIR="$top" bash "$top/t/integration/debootstrap.sh" >/dev/null)
work=$(mktemp -d "${TMPDIR:-/var/tmp}/vmscope-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
roles=(debootstrap)
declare -A tree=([debootstrap]="$base")
rcache=${VS_ROLES_CACHE:-$build/bench/cache}
if bash "$top/bench/fleet-roles.sh" "$base" "$rcache" >"$work/roles.log" 2>&1; then
  for r in web db app; do roles+=("$r") tree[$r]="$rcache/roles/$r"; done
else
  echo "(no web, db, app rows: the role packages could not be fetched: $(tail -n 1 "$work/roles.log"))"
fi
small="$work/trees/small"
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
mk "$small/etc/os-release" 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
mk "$small/etc/ssh/sshd_config" '#PermitRootLogin prohibit-password\nPort 22\nUsePAM yes\n'
mk "$small/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\n'
mk "$small/var/lib/dpkg/status" 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n'
roles+=(small) tree[small]="$small"

# Images A and B of each role (B: its own hostname, hosts and machine-id).
for r in "${roles[@]}"; do
  for v in a b; do
    t="$work/trees/$r-$v"
    cp -a "${tree[$r]}" "$t"
    mk "$t/etc/hostname" "$r-$v\n"
    mk "$t/etc/hosts" "127.0.0.1 localhost\n127.0.1.1 $r-$v.example.org $r-$v\n::1 localhost ip6-localhost ip6-loopback\n"
    mk "$t/etc/machine-id" "$(printf '%s' "$r-$v" | md5sum | cut -d' ' -f1)\n"
    bash "$top/scripts/tree-to-image.sh" "$t" "$work/$r-$v.qcow2" gpt >/dev/null
    rm -rf "$t"
  done
done
sync

# Microseconds from bash's own clock: a $(date) on each side of a run adds two forks and execs,
# about 7 ms on this machine, to a 35 ms process.
us() { echo "${EPOCHREALTIME/./}"; }
inspect() { "$build/vmscope" inspect --compact --backend direct "$@"; }
# median MS of RUNS runs of: SETUP (untimed), then the inspect with ARGS.
median_of() { # SETUP ARGS...
  local setup=$1 i t0 t1
  shift
  for i in $(seq 1 "$runs"); do
    eval "$setup"
    t0=${EPOCHREALTIME/./}
    inspect "$@" >/dev/null
    t1=${EPOCHREALTIME/./}
    echo $((10#$t1 - 10#$t0))
  done | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1000 }'
}
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); one process per image, median of $runs; virt-inspector: $sample run(s) per role"
printf '%-12s %6s %5s | %9s %9s %9s %9s | %9s | %7s %7s %7s %7s\n' role settings files \
  "no cache" cold "warm A" "fleet B" virt-insp "ratio:nc" cold "warm A" "fleet B"
same=yes
for r in "${roles[@]}"; do
  a="$work/$r-a.qcow2" b="$work/$r-b.qcow2" c="$work/cache-$r"
  nc=$(median_of ":" --no-parse-cache "$a")
  cold=$(median_of "rm -rf '$c'" --parse-cache "$c" "$a")
  rm -rf "$c" && inspect --parse-cache "$c" "$a" >"$work/cached.json"
  warm=$(median_of ":" --parse-cache "$c" "$a")
  inspect --parse-cache "$c" "$a" >"$work/warm.json"
  fleet=$(median_of "rm -rf '$c.b' && cp -a '$c' '$c.b'" --parse-cache "$c.b" "$b")
  inspect --stats --no-parse-cache "$a" 2>"$work/stats" >"$work/plain.json"
  for f in cached warm; do
    cmp -s <(jq -S 'del(.taken_at)' "$work/plain.json") <(jq -S 'del(.taken_at)' "$work/$f.json") || same=NO
  done
  settings=$(jq '.settings | length' "$work/plain.json")
  files=$(grep -oE '[0-9]+ parsed' "$work/stats" | cut -d' ' -f1)
  t0=$(us)
  for _ in $(seq 1 "$sample"); do virt-inspector --format=qcow2 -a "$a" >/dev/null; done
  t1=$(us)
  vi=$(awk -v a="$t0" -v b="$t1" -v n="$sample" 'BEGIN { printf "%.1f", n ? (b - a) / 1e3 / n : 0 }')
  awk -v r="$r" -v s="$settings" -v f="$files" -v nc="$nc" -v co="$cold" -v w="$warm" -v fl="$fleet" -v vi="$vi" 'BEGIN {
    printf "%-12s %6d %5d | %7.1fms %7.1fms %7.1fms %7.1fms | ", r, s, f, nc, co, w, fl
    if (vi > 0) printf "%8.1fs | %6.0fx %6.0fx %6.0fx %6.0fx\n", vi / 1000, vi / nc, vi / co, vi / w, vi / fl
    else printf "%9s |\n", "-" }'
done
echo "documents with the cache (cold and warm) the same as without it, byte for byte: $same"

[ -n "${VS_NO_FORMATS:-}" ] && exit 0
# ---- the other guests and image formats
fmt_images=()
declare -A fmt_format
. "$top/t/lib/rhel_tree.sh"
. "$top/t/lib/images.sh"
if vs_rhel_tree "$work/trees/rocky/rocky-01" rocky-01 >"$work/rocky.log" 2>&1 &&
  vs_xfs_lvm_image "$work/trees/rocky/rocky-01" "$work/rocky-xfs-lvm.qcow2" 512 >>"$work/rocky.log" 2>&1; then
  fmt_images+=(rocky-xfs-lvm) fmt_format[rocky-xfs-lvm]=qcow2
else
  echo "(no rocky xfs-lvm row: $(tail -n 1 "$work/rocky.log"))"
fi
if (cd "$work" && VS_BUILDDIR=$build && . "$top/t/lib/win_tree.sh" && vs_win_hives &&
  vs_win_tree trees/win software.hive system.hive sam.hive && vs_ntfs_image windows-ntfs.img trees/win) >"$work/win.log" 2>&1; then
  fmt_images+=(windows-ntfs) fmt_format[windows-ntfs]=raw
else
  echo "(no windows ntfs row: $(tail -n 1 "$work/win.log"))"
fi
for f in vhdx vmdk; do
  qemu-img convert -f qcow2 -O "$f" "$work/debootstrap-a.qcow2" "$work/debootstrap-$f.$f"
  fmt_images+=("debootstrap-$f") fmt_format[debootstrap-$f]=$f
done
echo
printf '%-18s %6s | %9s %9s | %9s | %7s %7s\n' image settings "no cache" "warm" virt-insp "ratio:nc" warm
for i in "${fmt_images[@]}"; do
  f=${fmt_format[$i]} img="$work/$i.$([ "$f" = qcow2 ] && echo qcow2 || { [ "$f" = raw ] && echo img || echo "$f"; })"
  c="$work/cache-$i"
  if ! inspect --no-parse-cache "$img" >"$work/$i.json" 2>"$work/$i.err"; then
    echo "$i: vmscope inspect failed: $(tail -n 1 "$work/$i.err")"
    continue
  fi
  nc=$(median_of ":" --no-parse-cache "$img")
  inspect --parse-cache "$c" "$img" >/dev/null
  warm=$(median_of ":" --parse-cache "$c" "$img")
  settings=$(jq '.settings | length' "$work/$i.json")
  t0=$(us)
  for _ in $(seq 1 "$sample"); do virt-inspector --format="$f" -a "$img" >"$work/$i.xml"; done
  t1=$(us)
  vi=$(awk -v a="$t0" -v b="$t1" -v n="$sample" 'BEGIN { printf "%.1f", n ? (b - a) / 1e3 / n : 0 }')
  awk -v r="$i" -v s="$settings" -v nc="$nc" -v w="$warm" -v vi="$vi" 'BEGIN {
    printf "%-18s %6d | %7.1fms %7.1fms | ", r, s, nc, w
    if (vi > 0) printf "%8.1fs | %6.0fx %6.0fx\n", vi / 1000, vi / nc, vi / w
    else printf "%9s |\n", "-" }'
  # what both read: OS type, distribution, version and hostname, as the tests check them
  echo "  vmscope: $(jq -r '[.os.type, .os.distro, .os.version, .os.hostname] | join(" ")' "$work/$i.json");" \
    "virt-inspector: $(xmllint --xpath 'concat(//operatingsystem/name, " ", //operatingsystem/distro, " ", //operatingsystem/major_version, ".", //operatingsystem/minor_version, " ", //operatingsystem/hostname)' "$work/$i.xml" 2>/dev/null)"
done
