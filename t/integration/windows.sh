#!/usr/bin/env bash
# Windows guests as features: hives made at test time (t/lib/mkhive's empty hive, filled by
# hivexregedit --merge from .reg text written here) under a Windows/System32/config directory
# with mixed-case names; vmscope inspect on the tree gives exact os:, pkg:, svc:, user:,
# group: and reg: values; a cyclic key list, a truncated hive and a hive over the size bound
# are clean errors with bounded memory; and, where the libguestfs appliance runs, virt-inspector
# on an NTFS image holding the same hives agrees with vmscope inspect --backend guestfs
# (VS_NO_ORACLE=1 leaves that part out: three appliance launches, to build, for virt-inspector, for vmscope).
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
command -v hivexregedit >/dev/null || bail "hivexregedit is needed (libwin-hivex-perl, scripts/install-deps.sh)"
command -v jq >/dev/null || bail "jq is needed"
MKHIVE="$VS_BUILDDIR/t/lib/mkhive"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
cd "$work" || bail "cd"

. "$VS_SRCDIR/t/lib/win_tree.sh"
vs_win_regs

"$MKHIVE" empty empty.hive && hivexregedit --export empty.hive '\' >/dev/null
ok $? "hivex opens the empty hive mkhive writes (base block checksum, hbin, root nk, sk)"
vs_win_hive software.hive software.reg && vs_win_hive system.hive system.reg && vs_win_hive sam.hive sam.reg
ok $? "hivexregedit fills SOFTWARE, SYSTEM and SAM from .reg text"

vs_win_tree win software.hive system.hive sam.hive
"$VS_BUILDDIR/vmscope" inspect win >win.json 2>win.err
ok $? "vmscope inspect reads a Windows tree" || sed 's/^/# /' win.err
get() { jq -r --arg k "$1" '.settings[$k] // "<absent>"' "${2:-win.json}"; }
is "$(jq -r '[.os.type, .os.distro, .os.version, .os.hostname, .os.arch] | join(" ")' win.json)" \
  "windows windows 10.0 win-web-01 x86_64" "os facts: type, distro, version (major.minor), hostname, arch of cmd.exe"
is "$(get os:pretty_name)" "Windows Server 2019 Standard" "os:pretty_name is ProductName"
is "$(get os:version)" "10.0" "os:version from CurrentMajorVersionNumber.CurrentMinorVersionNumber, not CurrentVersion"
is "$(get os:build) $(get os:edition) $(get os:variant)" "17763 ServerStandard Server" "os:build, os:edition, os:variant"
is "$(get os:hostname)" "win-web-01" "os:hostname from the current control set (Select\\Current = 2), not ControlSet001"
is "$(jq -r '[.settings | to_entries[] | select(.key | startswith("pkg:")) | "\(.key)=\(.value)"] | join(";")' win.json)" \
  "pkg:7-Zip=19.00;pkg:Notepad++=8.5.8;pkg:{6F320B93-EE3C-4826-85E0-ADF79F8D4C61}=14.29.30133" \
  "pkg: from both Uninstall views, by key name, DisplayVersion; no DisplayName, no package"
is "$(jq -r '[.settings | to_entries[] | select(.key | startswith("svc:")) | "\(.key)=\(.value)"] | join(";")' win.json)" \
  "svc:BITS=auto-delayed;svc:LanmanServer=auto;svc:LegacySvc=auto;svc:RemoteRegistry=disabled;svc:SharedAccess=auto;svc:wuauserv=manual" \
  "svc: start types of services (Type 0x10/0x20, or an ImagePath); drivers (Tcpip) left out"
is "$(jq -r '[.settings | to_entries[] | select(.key | test("^(user|group):")) | "\(.key)=\(.value)"] | join(";")' win.json)" \
  "group:Administrators:rid=544;group:WebOps:rid=1000;user:Administrator:disabled=yes;user:Administrator:password=empty;user:Administrator:rid=500;user:alice:disabled=no;user:alice:password=set;user:alice:rid=1001" \
  "user: names, RIDs, disabled, password set or empty; group: builtin and local aliases with RIDs"
ok "$(grep -ci 'aabb\|aa,bb' win.json)" "no byte of a password hash in the document"
CCS='HKLM\SYSTEM\CurrentControlSet'
is "$(get "reg:$CCS\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\PublicProfile:EnableFirewall")" 0 "reg: the public firewall profile is off (REG_DWORD as a number)"
is "$(get "reg:$CCS\\Services\\LanmanServer\\Parameters:SMB1")" 0 "reg: SMBv1 under the current control set"
is "$(get "reg:$CCS\\Control\\Terminal Server:fDenyTSConnections") $(get "reg:$CCS\\Control\\Terminal Server\\WinStations\\RDP-Tcp:UserAuthentication")" "0 1" "reg: RDP allowed, with NLA"
is "$(get "reg:$CCS\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.0\\Server:Enabled") $(get "reg:$CCS\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.0\\Server:DisabledByDefault") $(get "reg:$CCS\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2\\Client:Enabled")" \
  "0 1 1" "reg: SCHANNEL switches found through the Protocols\\*\\* pattern, named with the key's own name"
is "$(get 'reg:HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System:EnableLUA') $(get 'reg:HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU:AUOptions') $(get 'reg:HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate:WUServer')" \
  "1 4 http://wsus.example:8530" "reg: UAC, the Windows Update policy (REG_SZ as text)"
is "$(jq '[.settings | keys[] | select(startswith("reg:"))] | length' win.json)" 16 "reg: exactly the 16 watched values this guest has"
is "$(jq -r '.settings | keys[] | select(contains("ControlSet00"))' win.json)" "" "no key names a numbered control set"

# A registry watch file of our own, on top of the default list: every value of a key, and the
# normalisation of each value type.
printf '# types\nHKLM\\SOFTWARE\\Vmscope\\Types\n!HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa RunAsPPL\n' >regwatch
"$VS_BUILDDIR/vmscope" inspect --reg-watch regwatch win >rw.json 2>rw.err
ok $? "vmscope inspect --reg-watch FILE" || sed 's/^/# /' rw.err
T='reg:HKLM\SOFTWARE\Vmscope\Types'
is "$(get "$T:Qword" rw.json) $(get "$T:Multi" rw.json) $(get "$T:Expand" rw.json) $(get "$T:Blob" rw.json)" \
  '4294971392 a\,b,c,d\\e %SystemRoot% deadbeef' "REG_QWORD decimal, REG_MULTI_SZ (\"a,b\", \"c\", \"d\\e\") joined with ',', a ',' or '\\' in a string escaped, REG_EXPAND_SZ unexpanded, binary as hex"
is "$(get "reg:$CCS\\Control\\Lsa:RunAsPPL" rw.json)" "<absent>" "a '!KEY VALUE' line removes a default entry"
"$VS_BUILDDIR/vmscope" inspect --no-default-reg-watch win >none.json
is "$(jq '[.settings | keys[] | select(startswith("reg:"))] | length' none.json)" 0 "--no-default-reg-watch: no reg: settings"
printf 'HKLM\\SAM\\SAM\\Domains\n' >bad
"$VS_BUILDDIR/vmscope" inspect --reg-watch bad win >/dev/null 2>bad.err
is "$? $(grep -c 'bad:1.*SAM and SECURITY' bad.err)" "2 1" "a watch entry in the SAM hive is a usage error naming the file and line"

# Hostile hives: each a clean result, bounded memory, the hive named.
peak() { # OUT ERR DIR: vmscope inspect DIR; prints its exit status and peak RSS in KiB
  /usr/bin/time -f '%x %M' -o "$1.time" timeout 60 "$VS_BUILDDIR/vmscope" inspect "$3" >"$1" 2>"$2"
  cat "$1.time"
}
"$MKHIVE" cycle software.hive cyclic.hive
ok $? "mkhive points the last entry of every subkey list at the root key"
vs_win_tree cyc cyclic.hive system.hive sam.hive
read -r rc kib < <(peak cyc.json cyc.err cyc)
ok $((rc != 0 || kib > 200000)) "a SOFTWARE hive with a cyclic key list: exit 0, peak RSS $kib KiB"
is "$(get os:hostname cyc.json)" win-web-01 "and the other hives are still read"
head -c 6000 system.hive >trunc.hive
vs_win_tree trunc software.hive trunc.hive sam.hive
read -r rc kib < <(peak trunc.json trunc.err trunc)
is "$rc" 0 "a truncated SYSTEM hive: exit 0"
is "$(jq -r '.skipped[] | select(.path | endswith("/system")) | .reason | test("SYSTEM hive .*hivex cannot read it")' trunc.json)" true \
  "and a skipped entry names the hive and says hivex refused it"
is "$(get os:pretty_name trunc.json)" "Windows Server 2019 Standard" "the SOFTWARE hive is still read"
vs_win_tree big software.hive system.hive sam.hive
truncate -s 300M big/WINDOWS/system32/Config/SOFTWARE
read -r rc kib < <(peak big.json big.err big)
ok $((rc != 0 || kib > 200000)) "a 300 MiB SOFTWARE hive (the bound is 256 MiB): exit 0, peak RSS $kib KiB"
is "$(jq -r '[.skipped[] | select(.path | endswith("/SOFTWARE"))] | length' big.json)" 1 "and a skipped entry names it"

# The plugin's counterpart: RegWatch, RegWatchFile and NoDefaultRegWatch in vmscope_snapshot.
if command -v collectd >/dev/null || [ -x /usr/sbin/collectd ]; then
  . "$VS_SRCDIR/t/lib/collectd.sh"
  pdir=$(vs_plugin_dir "$work")
  vs_collectd_env
  pconf() { # FILE PLUGIN-LINES
    { vs_collectd_conf "$work" "$pdir" "$1.log"; printf 'LoadPlugin vmscope_snapshot\n<Plugin vmscope_snapshot>\n%s\n</Plugin>\n' "$2"; } >"$1"
  }
  pconf bad.conf "  Tree \"w\" \"$work/win\"
  RegWatch \"HKLM\\\\SAM\\\\SAM\""
  "${VS_COLLECTD_ENV[@]}" timeout 60 "$COLLECTD" -T -C bad.conf >bad.out 2>&1
  grep -q 'RegWatch: .*SAM and SECURITY' bad.conf.log && grep -q 'Parsing the config file failed' bad.out
  ok $? "vmscope_snapshot refuses a RegWatch in the SAM hive at config time, naming the option"
  printf 'HKLM\\SOFTWARE\\Vmscope\\Types Blob\n' >plugin.regwatch
  pconf good.conf "  Tree \"w\" \"$work/win\"
  DataDir \"$work/pool\"
  Interval 1
  NoDefaultRegWatch true
  RegWatch \"HKLM\\\\SOFTWARE\\\\Vmscope\\\\Types\" \"Qword\"
  RegWatchFile \"$work/plugin.regwatch\""
  "${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C good.conf >run.out 2>&1 &
  cpid=$!
  wait_for 60 sh -c 'find pool -name "*.json" 2>/dev/null | grep -q .'
  ok $? "collectd with vmscope_snapshot writes the Windows tree's document into the pool"
  # the reg: settings of the first document that has any (it failed once under memcheck with
  # none: the document's skipped entries say why, should it again)
  regs() {
    local f
    for f in $(find pool -name '*.json' 2>/dev/null | sort); do
      jq -r '[.settings | to_entries[] | select(.key | startswith("reg:")) | "\(.key)=\(.value)"] | join(";")' "$f" 2>/dev/null
    done | grep -m1 .
  }
  has_regs() { [ -n "$(regs)" ]; }
  wait_for 60 has_regs || for f in $(find pool -name '*.json' | sort | head -n 2); do diag "$f: $(jq -c '.skipped' "$f" 2>&1 | cut -c1-300)"; done
  kill "$cpid" 2>/dev/null
  wait "$cpid" 2>/dev/null
  is "$(regs)" \
    'reg:HKLM\SOFTWARE\Vmscope\Types:Blob=deadbeef;reg:HKLM\SOFTWARE\Vmscope\Types:Qword=4294971392' \
    "its reg: settings are exactly RegWatch's and RegWatchFile's, with NoDefaultRegWatch"
else
  skip 3 "collectd is not installed"
fi

# The oracle: virt-inspector on an NTFS image holding the same hives.
oracle() {
  export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
  command -v guestfish >/dev/null && command -v virt-inspector >/dev/null || return 1
  . "$VS_SRCDIR/t/lib/images.sh" && vs_ntfs_image ntfs.img win 2>gf.out
}
# Only in the plain suite: three emulated appliance boots are a minute or more of CI time, the
# same in every suite, and the guestfs backend's C runs under ASan and memcheck in faults.sh.
if [ -n "${VS_SANITIZED:-}${VS_VALGRIND:-}" ]; then
  skip 8 "the virt-inspector oracle runs in the plain suite only"
elif [ -n "${VS_NO_ORACLE:-}" ] || ! oracle; then
  sed 's/^/# /' gf.out 2>/dev/null | tail -n 5
  skip 8 "the libguestfs appliance cannot build an NTFS image here"
else
  timeout 300 virt-inspector --format=raw -a ntfs.img >vi.xml 2>vi.err
  ok $? "virt-inspector inspects the NTFS image" || sed 's/^/# /' vi.err | tail -n 5
  "$VS_BUILDDIR/vmscope" inspect --backend guestfs ntfs.img >gfs.json 2>gfs.err
  ok $? "vmscope inspect --backend guestfs inspects it" || sed 's/^/# /' gfs.err | tail -n 5
  x() { xmllint --xpath "string(/operatingsystems/operatingsystem/$1)" vi.xml; }
  is "$(jq -r '[.os.type, .os.distro] | join(" ")' gfs.json)" "$(x name) $(x distro)" "OS type and distribution agree with virt-inspector"
  is "$(get os:pretty_name gfs.json)" "$(x product_name)" "the product name agrees"
  is "$(get os:version gfs.json) $(get os:hostname gfs.json)" "$(x major_version).$(x minor_version) $(x hostname)" "version and hostname agree"
  vi_apps=$(xmllint --xpath '/operatingsystems/operatingsystem/applications/application' vi.xml |
    sed -n 's:.*<name>\(.*\)</name>.*:\1:p;s:.*<version>\(.*\)</version>.*:\1:p' | paste -d= - - | sort | paste -sd';')
  our_apps=$(jq -r '[.settings | to_entries[] | select(.key | startswith("pkg:")) | "\(.key[4:])=\(.value)"] | sort | join(";")' gfs.json)
  is "$our_apps" "$vi_apps" "the installed applications (names and versions) agree"
  "$VS_BUILDDIR/vmscope" inspect --backend direct ntfs.img >direct.json 2>direct.err
  ok $? "vmscope inspect --backend direct reads the NTFS image too (no appliance)" || sed 's/^/# /' direct.err | tail -n 5
  diff <(jq -S .settings gfs.json) <(jq -S .settings direct.json) >direct.diff
  ok $? "and gives the same settings as the guestfs backend" || sed 's/^/# /' direct.diff | head -n 10
fi
done_testing
