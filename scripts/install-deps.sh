#!/usr/bin/env bash
# install-deps.sh [demo|real-guests]: installs what vmscope needs on Debian 12, with apt-get only:
# to build, run the demo and run the whole test suite; with "demo", only to build and run the
# demo (scripts/demo.sh), which is a much shorter download on a fresh machine; with
# "real-guests", to build and run `scripts/demo.sh --real-guests` (the guest, libvirtd and QEMU,
# no PostgreSQL).
set -euo pipefail
build=(
  autoconf automake libtool pkg-config make gcc
  libfsntfs-dev libbfio-dev # NTFS on the direct path (src/core/inspect/fs_ntfs.c)
  libfsxfs-dev libvslvm-dev # XFS and LVM2 on the direct path (src/core/inspect/fs_xfs.c, lvm.c)
  libvhdi-dev libvmdk-dev # VHD/VHDX and VMDK images (src/core/inspect/image_yal.c)
  libjansson-dev libvirt-dev libguestfs-dev libcurl4-openssl-dev libaugeas-dev augeas-lenses
  libext2fs-dev libblkid-dev nettle-dev libssl-dev librpm-dev collectd-dev zlib1g-dev libzstd-dev
  libxml2-dev libnbd-dev libpq-dev libhivex-dev
)
demo=(collectd-core debootstrap jq ca-certificates qemu-utils e2fsprogs bc)
store=(postgresql-15) # the demo's fleet store, that its two hosts share (and t/integration/fleet_store.sh)
guests=( # a real running guest (scripts/guest-image.sh, t/lib/guest.sh, scripts/demo-real.sh)
  linux-image-amd64 libvirt-clients libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86
  qemu-guest-agent busybox-static cpio fdisk file # the initramfs, the image's partition table
)
tests=(
  ntfs-3g # mkntfs, ntfscp, ntfsls, ntfscat and the FUSE mount for the NTFS images (t/integration/ntfs.sh)
  xfsprogs libguestfs-xfs # xfs_db, and mkfs.xfs in the appliance (t/lib/images.sh, t/integration/xfs_lvm.sh)
  debhelper dpkg-dev lintian # the Debian package (t/integration/deb.sh)
  clang libclang-rt-14-dev # libFuzzer for bench/fuzz.sh
  time # peak memory in t/integration/hostile.sh
  valgrind # the third test run (scripts/test.sh)
  rpm libguestfs-tools
  libwin-hivex-perl # hivexregedit writes the Windows test hives (t/integration/windows.sh)
  etcd-server etcd-client curl openssl prometheus-alertmanager prometheus socat chromium
  libprotobuf-c1 libmicrohttpd12 # collectd's write_prometheus (collectd-core does not pull them in)
)
case ${1:-} in
'') packages=("${build[@]}" "${demo[@]}" "${store[@]}" "${guests[@]}" "${tests[@]}") ;;
demo) packages=("${build[@]}" "${demo[@]}" "${store[@]}") ;;
real-guests) packages=("${build[@]}" "${demo[@]}" "${guests[@]}") ;;
*)
  echo "usage: install-deps.sh [demo|real-guests] (not \"$1\")" >&2
  exit 2
  ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
