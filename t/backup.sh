#!/usr/bin/env bash
# SnapshotMode backup on a real QEMU domain under a private libvirtd: a pull-mode backup job's
# NBD export, read through libnbd, gives the same document as the stopped image.
. "${VS_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "$VS_SRCDIR/t/lib/libvirtd.sh"
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
  skip 12 "no private libvirtd: $VS_LIBVIRT_WHY"
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
"$VS_BUILDDIR/vmscope" snapshot --connect "$VS_LIBVIRT_URI" --domain vs-backup-1 --mode readonly >"$work/readonly.json"
ok $? "readonly mode takes the running domain too"

# The plugin, in collectd, with SnapshotMode backup.
COLLECTD=$(command -v collectd || echo /usr/sbin/collectd)
make -s -C "$VS_BUILDDIR" install DESTDIR="$work/dest" >"$work/install.log" 2>&1
plugindir=$(dirname "$(find "$work/dest" -name vmscope_snapshot.so | head -n1)")
cp /usr/lib/collectd/logfile.so "$plugindir/"
cat >"$work/collectd.conf" <<CONF
Hostname "vstest"
FQDNLookup false
Interval 1
BaseDir "$work"
PIDFile "$work/collectd.pid"
PluginDir "$plugindir"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  File "$work/collectd.log"
  LogLevel info
</Plugin>
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "$VS_LIBVIRT_URI"
  SnapshotMode backup
  BackupDir "$work/bk"
  DataDir "$work/pool"
  Interval 1
</Plugin>
CONF
env_run=()
if [ "${VS_SANITIZED:-}" = 1 ]; then
  # libtirpc too: ASan's xdr_* interceptors find the real functions when the runtime starts,
  # and libvirt's RPC client (loaded later with the plugin) would otherwise call through NULL.
  tirpc=$(ldconfig -p | awk '/libtirpc\.so\.3 .*x86-64/ { print $NF; exit }')
  env_run=(env LD_PRELOAD="$(${VS_CC:-gcc} -print-file-name=libasan.so) $(${VS_CC:-gcc} -print-file-name=libubsan.so) $tirpc" ASAN_OPTIONS=detect_leaks=0)
fi
"${env_run[@]}" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/run.out" 2>&1 &
pid=$!
for _ in $(seq 1 60); do ls "$work"/pool/*/*.json >/dev/null 2>&1 && break; sleep 0.5; done
kill "$pid"; wait "$pid" 2>/dev/null; pid=
plugdoc=$(ls "$work"/pool/*/*.json 2>/dev/null | head -n1)
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
