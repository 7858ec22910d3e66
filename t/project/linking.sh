#!/usr/bin/env bash
# Each plugin links only the core folders it uses, and so only their libraries (readelf -d):
# vmscope_drift ranks documents and needs none of libguestfs, librpm, libvirt or libcurl (its
# fleet store is libpq).
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
needed() { readelf -d "$VS_BUILDDIR/.libs/$1.so" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' '; }
for p in vmscope_snapshot vmscope_drift vmscope_action; do
  [ -f "$VS_BUILDDIR/.libs/$p.so" ]; ok $? "$p.so is built"
done
drift=$(needed vmscope_drift)
diag "vmscope_drift.so needs: $drift"
for lib in libguestfs librpm.so libvirt libcurl libaugeas libext2fs libnbd libxml2; do
  [[ " $drift" != *" $lib"* ]]; ok $? "vmscope_drift.so does not need $lib"
done
[[ " $drift" == *" libjansson"* ]]; ok $? "it needs jansson (documents are JSON): the check reads real NEEDED entries"
[[ " $drift" == *" libpq.so"* ]]; ok $? "and libpq (the fleet store), without the fleet map's libcurl"
snap=$(needed vmscope_snapshot)
for lib in libguestfs libext2fs libvirt; do
  [[ " $snap" == *" $lib"* ]]; ok $? "vmscope_snapshot.so needs $lib (it reads guests and domains)"
done
[[ " $snap" != *" libcurl"* ]]; ok $? "vmscope_snapshot.so does not need libcurl"
action=$(needed vmscope_action)
[[ " $action" == *" libcurl"* ]]; ok $? "vmscope_action.so needs libcurl (webhooks, the fleet map)"
done_testing
