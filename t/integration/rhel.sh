#!/usr/bin/env bash
# RHEL-family guests end to end (issue 21, point 3): Rocky Linux 9 trees made at test time by
# t/lib/rhel_tree.sh (an rpm database from the real rpm and rpmbuild, sshd, sysctl and SELinux
# as RHEL 9 ships them), through
#   - vmscope inspect: os facts, pkg: with epochs and two kernels, the sshd drop-ins, SELinux,
#     sysctl, services, accounts and the XFS-on-LVM fstab; a database in /usr/lib/sysimage/rpm;
#     a guest with no os-release named by /etc/redhat-release;
#   - vmscope drift: five VMs, one that permits root logins, another set with one VM left in
#     SELinux permissive: that setting ranks first for that VM, and no other VM alarms;
#   - the plugins: collectd's vmscope_snapshot fills a pool with four peers, the image's
#     document joins them, and vmscope_drift's config_drift WARNING names the odd VM's setting;
#   - an XFS-on-LVM qcow2 image of the odd VM (t/lib/images.sh, through the appliance):
#     vmscope inspect gives the tree's settings, and virt-inspector, the oracle nobody here
#     wrote, agrees on OS type, distribution, version, hostname, arch and the installed
#     applications (names, epochs, versions).
# The image part (two or three emulated appliance boots, a few minutes under TCG) runs in the
# plain suite only; VS_NO_ORACLE=1 leaves it out. Times of each part are printed as diagnostics.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
for c in rpm rpmbuild jq python3; do
  command -v "$c" >/dev/null || bail "$c is not installed (scripts/install-deps.sh installs it)"
done
. "$VS_SRCDIR/t/lib/rhel_tree.sh"
work=$(tmpdir)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
cd "$work" || bail "cd $work"
t0=$(date +%s)
took() { diag "$1 took $(($(date +%s) - t0)) s"; t0=$(date +%s); }

# ---- (1) vmscope inspect on a Rocky 9 tree
for i in 1 2 3 4 5; do
  vs_rhel_tree "$work/vms/rocky-0$i" "rocky-0$i" || bail "vs_rhel_tree failed"
done
vs_rhel_tree "$work/vms/rocky-05" rocky-05 permitrootlogin
ok $? "five Rocky 9 trees, the rpm database made by rpm --initdb and rpm -i --justdb of rpmbuild's packages"
[ -f vms/rocky-01/var/lib/rpm/rpmdb.sqlite ]; ok $? "the database is sqlite in /var/lib/rpm, as on RHEL 9"
took "making the trees"
"$VMSCOPE" inspect vms/rocky-01 >r1.json 2>r1.err; ok $? "vmscope inspect reads the tree" || sed 's/^/# /' r1.err
get() { jq -r --arg k "$1" '.settings[$k] // "<absent>"' "${2:-r1.json}"; }
is "$(jq -r '[.os.type, .os.distro, .os.version, .os.hostname, .os.arch, .os.package_format] | join(" ")' r1.json)" \
  "linux rocky 9.3 rocky-01 x86_64 rpm" "os facts: type, distro, version, hostname, arch of /usr/bin/sh, package format"
is "$(get os:id_like) / $(get os:pretty_name)" "rhel centos fedora / Rocky Linux 9.3 (Blue Onyx)" "os:id_like and os:pretty_name from os-release"
is "$(get pkg:openssh-server) $(get pkg:bash)" "8.7p1-34.el9 5.1.8-6.el9_1" "pkg: version-release"
is "$(get pkg:openssl) $(get pkg:vim-minimal)" "1:3.0.7-24.el9 2:8.2.2637-20.el9_1" "pkg: with an epoch, epoch:version-release"
is "$(get pkg:kernel-core)" "5.14.0-284.11.1.el9_2 5.14.0-362.8.1.el9_3" "both installed kernels listed"
is "$(jq '[.settings | keys[] | select(startswith("pkg:"))] | length' r1.json)" 11 "11 package names (13 packages)"
is "$(jq -r '.provenance["/var/lib/rpm"] | map(select(startswith("pkg:"))) | length' r1.json)" 11 "from the rpm database"
S=file:/etc/ssh/sshd_config
is "$(get "$S:Include") $(get "$S:Subsystem/sftp")" "/etc/ssh/sshd_config.d/*.conf /usr/libexec/openssh/sftp-server" \
  "sshd_config as RHEL ships it: the Include line, sftp"
is "$(get "$S.d/50-redhat.conf:X11Forwarding") $(get "$S.d/50-redhat.conf:UsePAM") $(get "$S.d/50-redhat.conf:SyslogFacility")" \
  "yes yes AUTHPRIV" "the included drop-in sshd_config.d/50-redhat.conf is read, each setting under its own file"
is "$(get "$S:PermitRootLogin")" "<absent>" "a commented-out default is no setting"
is "$(get file:/etc/selinux/config:SELINUX) $(get file:/etc/selinux/config:SELINUXTYPE)" "enforcing targeted" \
  "SELinux mode and policy from /etc/selinux/config (in the default watch list)"
is "$(get sysctl:vm.swappiness) $(get sysctl:kernel.sysrq) $(get sysctl:net.ipv4.conf.all.rp_filter)" "10 16 2" \
  "sysctl from /etc/sysctl.d and /usr/lib/sysctl.d"
is "$(get svc:sshd.service) $(get svc:firewalld.service) $(get svc:postfix.service)" "enabled enabled disabled" \
  "services enabled in multi-user.target.wants, and one that is not"
is "$(get user:root:password) $(get user:bin:password) $(get meta:/etc/shadow:mode)" "locked locked 0000" \
  "shadow's '!!' and '*' are locked accounts; shadow's mode 0000"
is "$(get file:/etc/fstab:1/spec) $(get file:/etc/fstab:1/vfstype)" "/dev/mapper/rl-root xfs" "fstab: XFS on LVM"
is "$(jq -c .skipped r1.json)" "[]" "nothing skipped"

vs_rhel_tree "$work/var/sysimage" rocky-si sysimage && "$VMSCOPE" inspect var/sysimage >si.json 2>si.err
ok $? "a tree whose database is in /usr/lib/sysimage/rpm, /var/lib/rpm a symlink to it (Fedora 36+, RHEL 10)"
is "$(jq -c '.settings | with_entries(select(.key | startswith("pkg:")))' si.json)" \
  "$(jq -c '.settings | with_entries(select(.key | startswith("pkg:")))' r1.json)" "gives the same packages"
vs_rhel_tree "$work/var/old" rocky-old no-os-release && "$VMSCOPE" inspect var/old >old.json 2>old.err
ok $? "a tree with no os-release"
is "$(jq -r '[.os.type, .os.distro, .os.version, .os.pretty_name] | join(" / ")' old.json)" \
  "linux / rocky / 9.3 / Rocky Linux release 9.3 (Blue Onyx)" "is named by /etc/redhat-release, as libguestfs names it"
took "inspecting the trees"

# ---- (2) drift: five VMs, one differs
others=(vms/rocky-01 vms/rocky-02 vms/rocky-03 vms/rocky-04)
"$VMSCOPE" drift --all "${others[@]}" vms/rocky-05 >d.json 2>d.err; ok $? "vmscope drift --all over the five trees" || sed 's/^/# /' d.err
# a file that only one VM has is one finding, about its setting (about_key)
first() { jq -r --arg n "$1" '.[] | select(.name == $n) | .findings[0] | "\(.about_key // .key) = \(.value) \(.severity)"' "${2:-d.json}"; }
P=file:/etc/ssh/sshd_config.d/01-permitrootlogin.conf:PermitRootLogin
is "$(first rocky-05)" "$P = yes warning" "rocky-05's drop-in that permits root logins ranks first, a warning"
is "$(jq -r '[.[] | select(.alarms > 0) | .name] | join(",")' d.json)" rocky-05 "and only rocky-05 alarms"
is "$(jq -r --arg k "$P" '[.[] | select(.name != "rocky-05") | .findings[] | select((.about_key // .key) == $k and .severity != "info")] | length' d.json)" 0 \
  "for the others, rocky-05's setting is nothing above info"
mkdir -p sel
for i in 1 2 3 4 5; do cp -a "vms/rocky-01" "sel/rocky-0$i" && echo "rocky-0$i" >"sel/rocky-0$i/etc/hostname"; done
sed -i 's/^SELINUX=enforcing$/SELINUX=permissive/' sel/rocky-03/etc/selinux/config
"$VMSCOPE" drift --all sel/* >s.json 2>s.err; ok $? "vmscope drift --all over five trees, rocky-03 left in SELinux permissive"
is "$(first rocky-03 s.json)" "file:/etc/selinux/config:SELINUX = permissive warning" "SELINUX=permissive ranks first for rocky-03"
is "$(jq -r '[.[] | select(.alarms > 0) | .name] | join(",")' s.json)" rocky-03 "and only rocky-03 alarms"
took "drift"

# ---- (3) the image: XFS on LVM, inspected by vmscope and by virt-inspector
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg} # this host's KVM cannot run the appliance
have_image=0
if [ -n "${VS_SANITIZED:-}${VS_VALGRIND:-}" ]; then
  skip 7 "the appliance's images and the virt-inspector oracle run in the plain suite only"
elif [ -n "${VS_NO_ORACLE:-}" ]; then
  skip 7 "VS_NO_ORACLE is set"
elif ! command -v guestfish >/dev/null || ! command -v virt-inspector >/dev/null || ! command -v xmllint >/dev/null; then
  skip 7 "guestfish, virt-inspector or xmllint is not installed (scripts/install-deps.sh installs them)"
elif ! . "$VS_SRCDIR/t/lib/images.sh" || ! vs_xfs_lvm_image vms/rocky-05 rocky-05.qcow2 512 2>mk.err; then
  sed 's/^/# /' mk.err | tail -n 5
  skip 7 "the libguestfs appliance cannot make an XFS-on-LVM image here"
else
  have_image=1
  took "making the XFS-on-LVM image (one appliance boot)"
  # virt-inspector's appliance boots while vmscope reads the image (its own appliance, when
  # the backend it chooses is guestfs): the two emulated boots share the wall-clock time
  timeout 600 virt-inspector --format=qcow2 -a rocky-05.qcow2 >vi.xml 2>vi.err &
  vipid=$!
  "$VMSCOPE" inspect --quiet rocky-05.qcow2 >img.json 2>img.err
  ok $? "vmscope inspect reads the XFS-on-LVM image" || sed 's/^/# /' img.err | tail -n 5
  took "vmscope inspect of the image"
  "$VMSCOPE" inspect vms/rocky-05 >r5.json
  diff <(jq -S .settings r5.json) <(jq -S .settings img.json) >img.diff
  ok $? "and gives the tree's settings, every one" || sed 's/^/# /' img.diff | head -n 10
  wait "$vipid"
  ok $? "virt-inspector inspects the image" || sed 's/^/# /' vi.err | tail -n 5
  took "virt-inspector (the rest of it)"
  x() { xmllint --xpath "string(/operatingsystems/operatingsystem/$1)" vi.xml; }
  is "$(jq -r '[.os.type, .os.distro, .os.arch] | join(" ")' img.json)" "$(x name) $(x distro) $(x arch)" \
    "OS type, distribution and arch agree with virt-inspector"
  is "$(get os:version img.json) $(get os:hostname img.json)" "$(x major_version).$(x minor_version) $(x hostname)" \
    "version (major.minor) and hostname agree"
  # virt-inspector lists each installed package, its epoch apart; vmscope has one key per name,
  # its versions sorted and joined by a space
  vi_apps=$(python3 - vi.xml <<'PY'
import sys, xml.etree.ElementTree as ET
apps = {}
for a in ET.parse(sys.argv[1]).getroot().iter("application"):
    epoch, rel = a.findtext("epoch") or "0", a.findtext("release")
    v = ("" if epoch == "0" else epoch + ":") + a.findtext("version") + ("-" + rel if rel else "")
    apps.setdefault(a.findtext("name"), []).append(v)
print(";".join(sorted(n + "=" + " ".join(sorted(v)) for n, v in apps.items())))
PY
)
  our_apps=$(jq -r '[.settings | to_entries[] | select(.key | startswith("pkg:")) | "\(.key[4:])=\(.value)"] | sort | join(";")' img.json)
  is "$our_apps" "$vi_apps" "the installed applications (names, epochs, versions, both kernels) agree"
  "$VMSCOPE" drift --target img.json vms/rocky-0[1-4] >di.json 2>di.err
  is "$(jq -r '.findings[0] | "\(.about_key // .key) = \(.value)"' di.json)" "$P = yes" \
    "drift of the image's document against the four trees ranks the same setting first"
fi

# ---- (4) the plugins: vmscope_snapshot fills the pool, vmscope_drift raises the alarm
. "$VS_SRCDIR/t/lib/collectd.sh"
if [ ! -x "$COLLECTD" ]; then
  skip 4 "collectd is not installed"
  done_testing
  exit
fi
plugindir=$(vs_plugin_dir "$work") || bail "make install failed: $(tail -n 5 install.log)"
vs_collectd_env
conf() { # NAME PLUGIN-SECTIONS
  { vs_collectd_conf "$work/$1" "$plugindir" "$work/$1.log"; printf '%s\n' "$2"; } >"$1.conf"
  mkdir -p "$work/$1"
}
trees=
for i in 1 2 3 4; do trees+="  Tree \"rocky-0$i\" \"$work/vms/rocky-0$i\""$'\n'; done
# without the image, rocky-05's tree is the odd VM's source
[ "$have_image" = 1 ] || trees+="  Tree \"rocky-05\" \"$work/vms/rocky-05\""$'\n'
conf fill "LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
$trees  DataDir \"$work/pool\"
  Interval 1
</Plugin>"
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C fill.conf >fill.out 2>&1 &
pid=$!
pooled() { [ "$(find pool -mindepth 2 -name '*.json' -printf '%h\n' 2>/dev/null | sort -u | wc -l)" -ge "$1" ]; }
n=$((have_image ? 4 : 5))
wait_for 120 pooled "$n"
ok $? "vmscope_snapshot writes the $n Rocky trees' documents into the pool"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=
if [ "$have_image" = 1 ]; then
  # the image's document joins the pool as vmscope_snapshot would write it: under "x" and the
  # hex of its id (a path), named by the time it was taken
  vmdir=pool/x$(jq -j .id img.json | od -An -v -tx1 | tr -d ' \n')
  mkdir -p "$vmdir" && jq --arg t "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '.taken_at = $t' img.json >"$vmdir/$(date -u +%Y%m%dT%H%M%SZ).json"
fi
conf drift "LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir \"$work/pool\"
  Interval 1
</Plugin>"
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C drift.conf >drift.out 2>&1 &
pid=$!
notes() { grep -a 'Notification: .*plugin = vmscope_drift, .*type = config_drift, ' drift.log 2>/dev/null || true; }
odd() { notes | grep -a 'severity = WARNING' | grep -a 'plugin_instance = rocky-05, '; }
wait_for 60 odd >/dev/null
ok $? "vmscope_drift raises a config_drift WARNING for rocky-05$([ "$have_image" = 1 ] && echo ", whose document is the image's")"
# the drop-in only rocky-05 has is one alarm (its setting and its file's metadata), named by
# its setting
odd | head -n1 | grep -qaF 'type_instance = 01-permitrootlogin.conf.*, message = PermitRootLogin is yes on rocky-05 (one of the 4 keys of file:/etc/ssh/sshd_config.d/01-permitrootlogin.conf:*); its 4 close peers all have <absent>'
ok $? "naming the setting: $(odd | head -n1 | grep -ao 'type_instance = .*' | cut -c1-250)"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=
is "$(notes | grep -aoE 'plugin_instance = [^,]*' | sort -u)" "plugin_instance = rocky-05" "no other VM gets a config_drift"
took "the plugins"
done_testing
