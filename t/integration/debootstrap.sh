#!/usr/bin/env bash
# A real Debian 12 root file system (debootstrap minbase + openssh-server), built once and
# cached, extracted by vmscope and checked against what the tree's own dpkg and files say.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
cache=${VS_DEBOOTSTRAP_CACHE:-$VS_BUILDDIR/t/cache/debootstrap}
root="$cache/root"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$root/.vmscope-complete" ]; then
  command -v debootstrap >/dev/null || bail "debootstrap is not installed (scripts/install-deps.sh installs it)"
  [ "$(id -u)" = 0 ] || bail "debootstrap needs root"
  diag "building the debootstrap tree once (cached in $root)"
  bash "$VS_SRCDIR/scripts/debootstrap-tree.sh" "$root" 2>&1 | sed 's/^/# /'
  [ -f "$root/.vmscope-complete" ] || bail "debootstrap failed"
fi
ok 0 "a debootstrap minbase tree with openssh-server is at hand"

"$VMSCOPE" inspect "$root" >"$work/doc.json" 2>"$work/err"; ok $? "vmscope inspect extracts the tree"
s() { jq -r --arg k "$1" '.settings[$k] // "<absent>"' "$work/doc.json"; }
is "$(jq -r .os.distro "$work/doc.json")" debian "distro is debian"
is "$(jq -r .os.version "$work/doc.json")" 12 "version is 12"
is "$(jq -r .os.arch "$work/doc.json")" "$(uname -m)" "arch is the host's, which debootstrap used"
is "$(jq -r .os.package_format "$work/doc.json")" deb "package format is deb"

want=$(chroot "$root" dpkg-query -W -f='${Version}' openssh-server)
is "$(s pkg:openssh-server)" "$want" "openssh-server's version equals what dpkg-query reports inside the tree"
n_want=$(chroot "$root" dpkg-query -W -f='${db:Status-Status}\n' | grep -cx installed)
n_got=$(jq '[.settings | keys[] | select(startswith("pkg:"))] | length' "$work/doc.json")
is "$n_got" "$n_want" "as many packages as dpkg-query lists installed ($n_want)"
mismatch=0
while read -r name ver; do
  [ "$(s "pkg:$name")" = "$ver" ] || { mismatch=$((mismatch + 1)); diag "pkg:$name: want $ver, got $(s "pkg:$name")"; }
done < <(chroot "$root" dpkg-query -W -f='${db:Status-Status} ${binary:Package} ${Version}\n' | awk '$1 == "installed" { sub(":'"$(chroot "$root" dpkg --print-architecture)"'$", "", $2); print $2, $3 }')
is "$mismatch" 0 "every installed package's version matches dpkg-query"

# PermitRootLogin as shipped: Debian leaves it commented out, so the key is absent and sshd's
# built-in default applies; whatever the file says, the document says the same.
shipped=$(awk '$1 == "PermitRootLogin" { print $2; exit }' "$root/etc/ssh/sshd_config")
is "$(s file:/etc/ssh/sshd_config:PermitRootLogin)" "${shipped:-<absent>}" "PermitRootLogin as shipped (${shipped:-commented out})"
grep -q '^#PermitRootLogin prohibit-password' "$root/etc/ssh/sshd_config"; ok $? "the shipped file documents the default in a comment"
is "$(s file:/etc/ssh/sshd_config:UsePAM)" "$(awk '$1 == "UsePAM" { print $2 }' "$root/etc/ssh/sshd_config")" "UsePAM as in the file"
is "$(s file:/etc/ssh/sshd_config:Subsystem/sftp)" "$(awk '$1 == "Subsystem" && $2 == "sftp" { print $3 }' "$root/etc/ssh/sshd_config")" "the sftp subsystem as in the file"
is "$(s meta:/etc/ssh/sshd_config:sha256)" "$(sha256sum <"$root/etc/ssh/sshd_config" | cut -d' ' -f1)" "sshd_config's digest equals sha256sum's"
is "$(s meta:/etc/shadow:mode)" "$(stat -c %04a "$root/etc/shadow")" "shadow's mode equals stat's"
is "$(s user:root:uid)" 0 "root's uid is 0"
is "$(s user:sshd:home)" "$(awk -F: '$1 == "sshd" { print $6 }' "$root/etc/passwd")" "the sshd user's home as in passwd"
is "$(s svc:ssh.service)" enabled "ssh.service is enabled"
conf=$(grep -l '^fs.protected_regular' "$root"/usr/lib/sysctl.d/*.conf | head -n1)
is "$(s sysctl:fs.protected_regular)" "$(awk -F' *= *' '$1 == "fs.protected_regular" { print $2 }' "$conf")" "sysctl from /usr/lib/sysctl.d"
is "$(jq -r '.provenance | to_entries[] | select(.value | index("sysctl:fs.protected_regular")) | .key' "$work/doc.json")" "${conf#"$root"}" "with that file as its provenance"
is "$(jq '.skipped | length' "$work/doc.json")" 0 "nothing in a stock tree was skipped"
jq -r '.skipped[] | "\(.path): \(.reason)"' "$work/doc.json" | sed 's/^/# skipped /'

# The same tree as a qcow2 disk image (one ext4 partition on GPT), read by the direct backend.
bash "$VS_SRCDIR/scripts/tree-to-image.sh" "$root" "$work/disk.qcow2" gpt; ok $? "the tree became a qcow2 image (GPT, ext4 made by mke2fs -d)"
"$VMSCOPE" inspect --backend direct "$work/disk.qcow2" >"$work/img.json"; ok $? "vmscope inspect reads the image with the direct backend"
diff <(jq -S .settings "$work/doc.json") <(jq -S .settings "$work/img.json") >"$work/diff"; ok $? "the image gives the same settings as the tree itself"
head -n 20 "$work/diff" | sed 's/^/# /'
diff <(jq -S .os "$work/doc.json") <(jq -S .os "$work/img.json") >/dev/null; ok $? "and the same OS facts"

# The slow tier: the same image and an overlay of it through one libguestfs appliance.
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg} # this host's KVM cannot run the appliance
qemu-img create -q -f qcow2 -b disk.qcow2 -F qcow2 "$work/overlay.qcow2"
t0=$(date +%s)
mkdir -p "$work/tmp"
# A third image our reader refuses (a backing file outside the allowed directories) is that
# image's error alone: the other two still share one appliance.
mkdir -p "$work/elsewhere" && qemu-img create -q -f qcow2 -b "$work/disk.qcow2" -F qcow2 "$work/elsewhere/escape.qcow2"
TMPDIR="$work/tmp" "$VMSCOPE" inspect --stats --backend guestfs "$work/disk.qcow2" "$work/elsewhere/escape.qcow2" "$work/overlay.qcow2" >"$work/gfs.json" 2>"$work/gfs.err"
is "$? $(jq length "$work/gfs.json")" "1 2" "vmscope inspect --backend guestfs reads both images in one batch ($(( $(date +%s) - t0 )) s), exit 1 for the refused one"
grep -q "elsewhere/escape.qcow2: backing file" "$work/gfs.err" && ! grep -q "one appliance per image" "$work/gfs.err"
ok $? "the refused image is refused alone, before the appliance: $(grep -m1 escape "$work/gfs.err" | head -c 300)"
[ -z "$(ls "$work/tmp" | grep vmscope-guestfs || true)" ]; ok $? "the staging copies of the guests' files are removed afterwards"
sed 's/^/# /' "$work/gfs.err"
grep -c "appliance for 2 image(s) up" "$work/gfs.err" | grep -qx 1; ok $? "through a single appliance"
! grep -q $'\r' "$work/gfs.err" && ! grep -q "launching" "$work/gfs.err"
ok $? "standard error is a file, not a terminal: no progress line in it, only --stats' lines"
for i in 0 1; do
  is "$(jq -r ".[$i].source.backend" "$work/gfs.json")" guestfs "image $i was read by libguestfs"
  diff <(jq -S .settings "$work/doc.json") <(jq -S ".[$i].settings" "$work/gfs.json") >"$work/gdiff"; ok $? "image $i gives the same settings as the tree and the direct backend"
  head -n 20 "$work/gdiff" | sed 's/^/# /'
done
is "$(jq '.[0].skipped | length' "$work/gfs.json")" 0 "nothing was skipped pulling the files out"

# On a terminal (standard error on a pseudo-terminal, util-linux's script; the document to a
# file), the appliance's phases show on one line rewritten in place, erased at the end. The
# quiet cases need no appliance: t/integration/cli.sh.
if [ "${VS_VALGRIND:-}" = 1 ]; then
  # Another half minute of an emulated appliance under memcheck's suite: the renderer and its
  # ticker run under memcheck in t/unit/progress, the terminal case in cli.sh.
  skip 7 "the plain and ASan suites show the progress line on a real appliance launch"
else
  script -qec "$(printf '%q ' env TMPDIR="$work/tmp" "$VMSCOPE" inspect --backend guestfs "$work/disk.qcow2") >$(printf '%q' "$work/tty.json")" \
    /dev/null </dev/null >"$work/tty.out"
  ok $? "vmscope inspect --backend guestfs with standard error on a terminal"
  line() { grep -qF $'\r'"vmscope: libguestfs$1" "$work/tty.out"; ok $? "$2"; }
  line " appliance for 1 image: launching" "the progress line shows the appliance launching"
  grep -qE $'\r''vmscope: libguestfs appliance for 1 image: launching \([0-9]+ s\)' "$work/tty.out"
  ok $? "with its seconds ticking while it boots"
  line " appliance for 1 image: finding the operating systems" "then libguestfs finding the operating systems"
  line ", image 1 of 1: disk.qcow2: reading files" "then the image, by name, as its files are pulled out"
  is "$(tail -c 1 "$work/tty.out" | od -An -c | tr -d ' ')" '\r' "and is erased at the end (spaces, back to the line's start)"
  tr '\r' '\n' <"$work/tty.out" | grep -v '^ *$' | grep -v '^vmscope: libguestfs' | sed 's/^/# unexpected: /'
  diff <(jq -S .settings "$work/doc.json") <(jq -S .settings "$work/tty.json") >/dev/null
  ok $? "the document is the one read off a terminal"
fi

# The same through vmscope_snapshot inside collectd, which ignores SIGCHLD: libguestfs must
# still launch (the plugin resets SIGCHLD before it does).
. "$VS_SRCDIR/t/lib/collectd.sh"
if [ "${VS_SANITIZED:-}" = 1 ]; then
  skip 2 "the ASan runtime preloaded into collectd would be inherited by the appliance's qemu"
elif [ "${VS_VALGRIND:-}" = 1 ]; then
  # Half a minute of an emulated appliance's boot, and none of it ours: the plugin's path into
  # libguestfs runs under memcheck in faults.sh (collectd stopped while inside it).
  skip 2 "the plain suite runs vmscope_snapshot's guestfs backend on the real tree"
else
  { echo "<node>" && vs_test_domain deb-1 00000000-0000-4000-8000-00000000d001 "$work/disk.qcow2" 1 && echo "</node>"; } >"$work/node.xml"
  plugindir=$(vs_plugin_dir "$work")
  { vs_collectd_conf "$work" "$plugindir"; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "test://$work/node.xml"
  Backend guestfs
  Interval 600
  DataDir "$work/pool"
</Plugin>
CONF
  t0=$(date +%s)
  TMPDIR="$work/tmp" "$COLLECTD" -f -C "$work/collectd.conf" >"$work/collectd.out" 2>&1 &
  cpid=$!
  for _ in $(seq 1 600); do ls "$work"/pool/*/*.json >/dev/null 2>&1 && break; sleep 1; done
  kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
  pdoc=$(ls "$work"/pool/*/*.json 2>/dev/null | head -n1)
  [ -n "$pdoc" ] && [ "$(jq -r .source.backend "$pdoc")" = guestfs ]
  ok $? "vmscope_snapshot with Backend guestfs takes the domain inside collectd ($(( $(date +%s) - t0 )) s)"
  [ -n "$pdoc" ] || grep -iE 'error|guestfs' "$work/collectd.log" | head -n 5 | sed 's/^/# /'
  guest() { jq -S '.settings | with_entries(select(.key | startswith("vm:") | not))' "$1"; }
  [ -n "$pdoc" ] && diff <(guest "$pdoc") <(jq -S .settings "$work/doc.json") >/dev/null
  ok $? "with the tree's settings"
fi
done_testing
