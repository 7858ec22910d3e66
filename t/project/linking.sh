#!/usr/bin/env bash
# Each plugin links only the core folders it uses, and so only their libraries (readelf -d):
# vmscope_drift ranks documents and needs none of libguestfs, librpm, libvirt or libcurl. And
# libvirt, libguestfs, libpq, libcurl, libnbd, librpm, librpmio, Augeas, libxml2, Nettle, hivex
# and libyal's readers (libfsntfs, libfsxfs, libvslvm, libvhdi, libvmdk, libbfio), and libblkid,
# libext2fs, com_err, zlib and zstd are opened on first use (src/core/base/dl.h),
# so neither vmscope nor any plugin names them among what the loader maps at start-up: the
# binary holds the name of the file it opens instead. Nor does vmscope need libm, which it
# calls nothing of (linked --as-needed).
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
needed() { readelf -d "$1" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' '; }
for p in vmscope_snapshot vmscope_drift vmscope_action; do
  [ -f "$VS_BUILDDIR/.libs/$p.so" ]; ok $? "$p.so is built"
done
drift=$(needed "$VS_BUILDDIR/.libs/vmscope_drift.so")
diag "vmscope_drift.so needs: $drift"
for lib in libguestfs librpm.so libvirt libcurl libaugeas libext2fs libnbd libxml2 libpq libnettle; do
  [[ " $drift" != *" $lib"* ]]; ok $? "vmscope_drift.so does not need $lib"
done
[[ " $drift" == *" libjansson"* ]]; ok $? "it needs jansson (documents are JSON): the check reads real NEEDED entries"
grep -qa 'libpq\.so\.[0-9]' "$VS_BUILDDIR/.libs/vmscope_drift.so"
ok $? "and names libpq's file, opened with the first fleet store"
snap=$(needed "$VS_BUILDDIR/.libs/vmscope_snapshot.so")
[[ " $snap" == *" libjansson"* ]]; ok $? "vmscope_snapshot.so needs jansson (documents are JSON)"
for lib in libguestfs libvirt libnbd libcurl libpq libnettle libext2fs libblkid libcom_err libz. libzstd; do
  [[ " $snap" != *" $lib"* ]]; ok $? "vmscope_snapshot.so does not need $lib at start-up"
done
for lib in 'libguestfs\.so\.[0-9]' 'libvirt\.so\.[0-9]' 'libnbd\.so\.[0-9]' 'libext2fs\.so\.[0-9]' \
  'libblkid\.so\.[0-9]' 'libcom_err\.so\.[0-9]' 'libz\.so\.[0-9]' 'libzstd\.so\.[0-9]'; do
  grep -qa "$lib" "$VS_BUILDDIR/.libs/vmscope_snapshot.so"
  ok $? "  it names ${lib%%\\*}'s file, opened on first use"
done
action=$(needed "$VS_BUILDDIR/.libs/vmscope_action.so")
[[ " $action" != *" libcurl"* && " $action" != *" libvirt"* ]]
ok $? "vmscope_action.so needs neither libcurl nor libvirt at start-up"
grep -qa 'libcurl\.so\.[0-9]' "$VS_BUILDDIR/.libs/vmscope_action.so"
ok $? "  it names libcurl's file (webhooks, the fleet map), opened on first use"
cli=$(needed "$VS_BUILDDIR/vmscope")
for lib in libguestfs libvirt libnbd libcurl libpq librpm librpmio libaugeas libxml2 libnettle \
  libext2fs libblkid libcom_err libz libzstd libm; do
  [[ " $cli" != *" $lib."* ]]; ok $? "vmscope does not need $lib at start-up"
done
for lib in 'libaugeas\.so\.[0-9]' 'libxml2\.so\.[0-9]' 'libnettle\.so\.[0-9]'; do
  grep -qa "$lib" "$VS_BUILDDIR/vmscope"
  ok $? "vmscope names ${lib%%\\*}'s file (config files' settings; a domain's XML; digests), opened on first use"
done
for lib in 'librpm\.so\.[0-9]' 'librpmio\.so\.[0-9]'; do
  grep -qa "$lib" "$VS_BUILDDIR/.libs/vmscope_snapshot.so"
  ok $? "vmscope_snapshot.so names ${lib%%\\*}'s file (RPM guests' packages and versions), opened on first use"
done
for p in vmscope .libs/vmscope_snapshot.so .libs/vmscope_action.so; do
  n=$(needed "$VS_BUILDDIR/$p")
  for lib in libhivex libfsntfs libfsxfs libvslvm libvhdi libvmdk libbfio; do
    [[ " $n" != *" $lib."* ]]; ok $? "${p#.libs/} does not need $lib at start-up"
  done
done
for lib in 'libhivex\.so\.[0-9]' 'libfsntfs\.so\.[0-9]' 'libvhdi\.so\.[0-9]' 'libvmdk\.so\.[0-9]'; do
  grep -qa "$lib" "$VS_BUILDDIR/vmscope"
  ok $? "vmscope names ${lib%%\\*}'s file (Windows guests; NTFS; VHD and libbfio; VMDK), opened on first use"
done
diag "vmscope needs $(wc -w <<<"$cli") libraries: $cli"
done_testing
