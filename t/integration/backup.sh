#!/usr/bin/env bash
# SnapshotMode backup on a real QEMU domain under a private libvirtd: a pull-mode backup job's
# NBD export, read through libnbd, gives the same document as the stopped image.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/libvirtd.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
work=$(tmpdir)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  vs_libvirtd_stop
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if ! vs_libvirtd_start "$work/libvirt"; then
  skip 17 "no private libvirtd: $VS_LIBVIRT_WHY"
  done_testing
  exit $?
fi
ok 0 "a private libvirtd with the QEMU driver answers on its own socket"
chmod 755 "$work"
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
t=$work/tree
mk "$t/etc/os-release" 'ID=debian\nVERSION_ID="12"\n'
mk "$t/etc/hostname" 'backup-1\n'
mk "$t/etc/ssh/sshd_config" '#PermitRootLogin prohibit-password\nPermitRootLogin no\nPort 2222\n'
mk "$t/etc/passwd" 'root:x:0:0:root:/root:/bin/bash\n'
mk "$t/var/lib/dpkg/status" 'Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2+deb12u3\n'
mkdir -p "$work/img"
bash "$VS_SRCDIR/scripts/tree-to-image.sh" "$t" "$work/img/base.qcow2" gpt
qemu-img create -q -f qcow2 -b "$work/img/base.qcow2" -F qcow2 "$work/img/vm.qcow2"
ok $? "a qcow2 overlay on an image built from a guest tree"
chmod -R a+rX "$work/img"
vs_domain_xml vs-backup-1 "$work/img/vm.qcow2" >"$work/dom.xml"
t0=$(date +%s.%N)
virsh -c "$VS_LIBVIRT_URI" create "$work/dom.xml" >"$work/create.out" 2>&1
ok $? "a transient TCG domain with no guest OS starts ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'))"

mkdir -p "$work/bk"
"$VS_BUILDDIR/vmscope" snapshot --connect "$VS_LIBVIRT_URI" --domain vs-backup-1 --mode backup \
  --backup-dir "$work/bk" --stats >"$work/backup.json" 2>"$work/backup.err"
ok $? "vmscope snapshot --mode backup takes the running domain"
grep -q 'from a backup job' "$work/backup.err"; ok $? "through a backup job ($(cat "$work/backup.err"))"
is "$(jq -r '.settings["file:/etc/ssh/sshd_config:Port"]' "$work/backup.json")" 2222 "reading the guest's settings from the export"
is "$(ls -A "$work/bk")" "" "the job's socket, scratch file and directory are gone afterwards"
virsh -c "$VS_LIBVIRT_URI" domjobinfo vs-backup-1 2>/dev/null | grep -q 'Job type: *None'; ok $? "and the job has ended"
# vmscope makes the scratch file itself, before any freeze (libvirt would make it while the guest
# is frozen); a job that does not begin leaves none behind: here QEMU (libvirt-qemu) cannot
# reach the backup directory, one only root may enter, where vmscope made the file.
mkdir -m 700 "$work/closed"
"$VS_BUILDDIR/vmscope" snapshot --connect "$VS_LIBVIRT_URI" --domain vs-backup-1 --mode backup \
  --backup-dir "$work/closed" >/dev/null 2>"$work/refused.err"
is "$(($? != 0)):$(grep -c 'the backup job did not begin.*vda.scratch' "$work/refused.err")" "1:1" \
  "a job on a scratch file QEMU cannot open does not begin: $(head -c 300 "$work/refused.err")"
is "$(ls -A "$work/closed")" "" "and the scratch file and its directory are gone"
"$VS_BUILDDIR/vmscope" snapshot --connect "$VS_LIBVIRT_URI" --domain vs-backup-1 --mode readonly >"$work/readonly.json"
ok $? "readonly mode takes the running domain too"

# The plugin, in collectd, with SnapshotMode backup.
plugindir=$(vs_plugin_dir "$work")
{ vs_collectd_conf "$work" "$plugindir"; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "$VS_LIBVIRT_URI"
  SnapshotMode backup
  BackupDir "$work/bk"
  DataDir "$work/pool"
  Interval 1
</Plugin>
CONF
vs_collectd_env
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/run.out" 2>&1 &
pid=$!
for _ in $(seq 1 60); do ls "$work"/pool/*/*.json >/dev/null 2>&1 && break; sleep 0.5; done
# Kept aside: the pool's retention removes it once newer ones come (KeepSnapshots).
plugdoc=$(ls "$work"/pool/*/*.json 2>/dev/null | head -n1)
[ -n "$plugdoc" ] && cp "$plugdoc" "$work/plugdoc.json" && plugdoc=$work/plugdoc.json
# libvirtd goes away and comes back: logged once each way, and the plugin reconnects.
vs_libvirtd_restart "$work/libvirt"
patience=20
[ "${VS_VALGRIND:-}" = 1 ] && patience=120 # backup jobs and snapshots under memcheck
recovered() { grep -q 'libvirt works again' "$work/collectd.log"; }
wait_for "$patience" recovered
ok $? "after libvirtd restarts, the plugin logs the lost connection and its recovery"
# A document newer than the newest at the recovery: one taken on the new connection (a cycle
# that began before the restart may end after it; a count would stop at the pool's retention).
newest() { ls "$work"/pool/*/*.json 2>/dev/null | sort | tail -n1; }
before=$(newest)
newer() { [ "$(newest)" != "$before" ]; }
wait_for "$patience" newer
ok $? "and takes snapshots again"
is "$(grep -c 'connection to libvirtd was lost' "$work/collectd.log")" 1 "the loss is logged once"
kill -0 "$pid" 2>/dev/null; ok $? "collectd kept running meanwhile"
kill "$pid"; wait "$pid" 2>/dev/null; pid=
[ -n "$plugdoc" ]; ok $? "vmscope_snapshot with SnapshotMode backup writes the domain's document into the pool"
[ -n "$plugdoc" ] || sed -n '/AddressSanitizer\|runtime error/,+12p' "$work/run.out" | sed 's/^/# /' 

# The stopped image is the reference.
virsh -c "$VS_LIBVIRT_URI" destroy vs-backup-1 >/dev/null 2>&1
"$VS_BUILDDIR/vmscope" inspect --backend direct "$work/img/vm.qcow2" >"$work/stopped.json"
guest() { jq -S '.settings | with_entries(select(.key | startswith("vm:") | not))' "$1"; }
diff <(guest "$work/backup.json") <(guest "$work/stopped.json") >"$work/diff.out"
ok $? "the backup export gives the same guest settings as the stopped image"
[ -s "$work/diff.out" ] && diag "$(head -n 10 "$work/diff.out")"
diff <(guest "$work/readonly.json") <(guest "$work/stopped.json") >/dev/null; ok $? "and so does readonly mode"
[ -n "$plugdoc" ] && diff <(guest "$plugdoc") <(guest "$work/stopped.json") >/dev/null; ok $? "and so does the plugin's document"
done_testing
