# t/lib/win_tree.sh: a Windows Server 2019 guest's registry and system tree, made at test time
# (source it after lib.sh; needs hivexregedit, from libwin-hivex-perl, and the build's
# t/lib/mkhive). Used by t/integration/windows.sh, which checks every value below, and by
# bench/inspect-images.sh's Windows row.
#   vs_win_regs    writes software.reg, system.reg and sam.reg in the current directory: product
#                  Windows Server 2019 Standard 10.0 build 17763, three Uninstall entries (one
#                  in the 32-bit view), services, hostname win-web-01 in the current control set
#                  (ControlSet001 a stale decoy), watched policy values, two users and groups
#   vs_win_hives   vs_win_regs, then software.hive, system.hive and sam.hive from them
#   vs_win_hive NAME REG-FILE, vs_win_mkpe FILE, vs_win_tree DIR SOFTWARE SYSTEM SAM: below
# vs_win_hexblob LEN [OFFSET:BYTE]...: LEN zero bytes but those given, as .reg hex ("00,11,...").
vs_win_hexblob() {
  local len=$1 i kv
  shift
  local -a b
  for ((i = 0; i < len; i++)); do b[i]=00; done
  for kv in "$@"; do b[$((${kv%%:*}))]=${kv#*:}; done
  local IFS=,
  echo "${b[*]}"
}
# vs_win_hive NAME REG-FILE: an empty hive filled from REG-FILE (hivexregedit wants a blank line
# before each key).
vs_win_hive() {
  sed 's/^\[/\n[/' "$2" >"$2.merged" && "$VS_BUILDDIR/t/lib/mkhive" empty "$1" && hivexregedit --merge "$1" "$2.merged"
}

vs_win_regs() {
  local U='\Microsoft\Windows\CurrentVersion\Uninstall'
  cat >software.reg <<EOF
Windows Registry Editor Version 5.00

[\\Microsoft]
[\\Microsoft\\Windows NT]
[\\Microsoft\\Windows NT\\CurrentVersion]
"ProductName"="Windows Server 2019 Standard"
"EditionID"="ServerStandard"
"InstallationType"="Server"
"CurrentVersion"="6.3"
"CurrentMajorVersionNumber"=dword:0000000a
"CurrentMinorVersionNumber"=dword:00000000
"CurrentBuild"="17763"
"CurrentBuildNumber"="17763"
[\\Microsoft\\Windows]
[\\Microsoft\\Windows\\CurrentVersion]
[$U]
[$U\\7-Zip]
"DisplayName"="7-Zip 19.00 (x64)"
"DisplayVersion"="19.00"
[$U\\{6F320B93-EE3C-4826-85E0-ADF79F8D4C61}]
"DisplayName"="Microsoft Visual C++ 2019 X64 Minimum Runtime"
"DisplayVersion"="14.29.30133"
[$U\\KB4052623]
"DisplayVersion"="4.18.1"
[\\Microsoft\\Windows\\CurrentVersion\\Policies]
[\\Microsoft\\Windows\\CurrentVersion\\Policies\\System]
"EnableLUA"=dword:00000001
"ConsentPromptBehaviorAdmin"=dword:00000005
[\\Microsoft\\Windows\\CurrentVersion\\Policies\\Explorer]
"NoDriveTypeAutoRun"=dword:000000ff
[\\WOW6432Node]
[\\WOW6432Node\\Microsoft]
[\\WOW6432Node\\Microsoft\\Windows]
[\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion]
[\\WOW6432Node$U]
[\\WOW6432Node$U\\Notepad++]
"DisplayName"="Notepad++ (32-bit x86)"
"DisplayVersion"="8.5.8"
[\\Policies]
[\\Policies\\Microsoft]
[\\Policies\\Microsoft\\Windows]
[\\Policies\\Microsoft\\Windows\\WindowsUpdate]
"WUServer"="http://wsus.example:8530"
[\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU]
"NoAutoUpdate"=dword:00000000
"AUOptions"=dword:00000004
[\\Vmscope]
[\\Vmscope\\Types]
"Qword"=hex(b):00,10,00,00,01,00,00,00
"Multi"=hex(7):61,00,2c,00,62,00,00,00,63,00,00,00,64,00,5c,00,65,00,00,00,00,00
"Expand"=hex(2):25,00,53,00,79,00,73,00,74,00,65,00,6d,00,52,00,6f,00,6f,00,74,00,25,00,00,00
"Blob"=hex:de,ad,be,ef
EOF

  # SYSTEM: Select\Current is 2, so ControlSet002 is current; ControlSet001 is a stale decoy.
  vs_win_cs() { # CONTROL-SET HOSTNAME
    local c="\\$1"
    cat <<EOF
[$c]
[$c\\Control]
[$c\\Control\\ComputerName]
[$c\\Control\\ComputerName\\ComputerName]
"ComputerName"="WIN-NETBIOS"
[$c\\Services]
[$c\\Services\\Tcpip]
"Type"=dword:00000001
"Start"=dword:00000001
[$c\\Services\\Tcpip\\Parameters]
"Hostname"="$2"
EOF
  }
  {
    printf 'Windows Registry Editor Version 5.00\n\n[\\Select]\n"Current"=dword:00000002\n'
    vs_win_cs ControlSet001 stale-name
    vs_win_cs ControlSet002 win-web-01
    local c='\ControlSet002'
    cat <<EOF
[$c\\Services\\LanmanServer]
"Type"=dword:00000020
"Start"=dword:00000002
[$c\\Services\\LanmanServer\\Parameters]
"SMB1"=dword:00000000
[$c\\Services\\wuauserv]
"Type"=dword:00000020
"Start"=dword:00000003
[$c\\Services\\RemoteRegistry]
"Type"=dword:00000010
"Start"=dword:00000004
[$c\\Services\\BITS]
"Type"=dword:00000020
"Start"=dword:00000002
"DelayedAutostart"=dword:00000001
[$c\\Services\\LegacySvc]
"ImagePath"="C:\\\\legacy.exe"
"Start"=dword:00000002
[$c\\Services\\SharedAccess]
"Type"=dword:00000020
"Start"=dword:00000002
[$c\\Services\\SharedAccess\\Parameters]
[$c\\Services\\SharedAccess\\Parameters\\FirewallPolicy]
[$c\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\DomainProfile]
"EnableFirewall"=dword:00000001
[$c\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\StandardProfile]
"EnableFirewall"=dword:00000001
[$c\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\PublicProfile]
"EnableFirewall"=dword:00000000
[$c\\Control\\Terminal Server]
"fDenyTSConnections"=dword:00000000
[$c\\Control\\Terminal Server\\WinStations]
[$c\\Control\\Terminal Server\\WinStations\\RDP-Tcp]
"UserAuthentication"=dword:00000001
[$c\\Control\\Lsa]
"RunAsPPL"=dword:00000001
[$c\\Control\\SecurityProviders]
[$c\\Control\\SecurityProviders\\SCHANNEL]
[$c\\Control\\SecurityProviders\\SCHANNEL\\Protocols]
[$c\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.0]
[$c\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.0\\Server]
"Enabled"=dword:00000000
"DisabledByDefault"=dword:00000001
[$c\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2]
[$c\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2\\Client]
"Enabled"=dword:00000001
EOF
  } >system.reg

  # SAM (samba's and chntpw's layout): Users\<RID in hex> holds F (account control bits at 0x38,
  # 0x0001 disabled) and V (the NT hash's offset at 0xa8 and length at 0xac, after a 0xcc-byte
  # header); Users\Names\<name> and Aliases\Names\<name> hold the RID as their default value's type.
  {
    local A='\SAM\Domains\Account'
    cat <<EOF
Windows Registry Editor Version 5.00

[\\SAM]
[\\SAM\\Domains]
[$A]
[$A\\Users]
[$A\\Users\\000001F4]
"F"=hex:$(vs_win_hexblob 80 0x38:11 0x39:02)
"V"=hex:$(vs_win_hexblob 208 0xac:04)
[$A\\Users\\000003E9]
"F"=hex:$(vs_win_hexblob 80 0x38:10 0x39:02)
"V"=hex:$(vs_win_hexblob 224 0xac:14 0xcc:02 0xcd:00 0xce:01 0xcf:00 0xd0:aa 0xd1:bb)
[$A\\Users\\Names]
[$A\\Users\\Names\\Administrator]
@=hex(1f4):
[$A\\Users\\Names\\alice]
@=hex(3e9):
[$A\\Aliases]
[$A\\Aliases\\Names]
[$A\\Aliases\\Names\\WebOps]
@=hex(3e8):
[\\SAM\\Domains\\Builtin]
[\\SAM\\Domains\\Builtin\\Aliases]
[\\SAM\\Domains\\Builtin\\Aliases\\Names]
[\\SAM\\Domains\\Builtin\\Aliases\\Names\\Administrators]
@=hex(220):
EOF
  } >sam.reg
}

vs_win_hives() {
  vs_win_regs && vs_win_hive software.hive software.reg && vs_win_hive system.hive system.reg &&
    vs_win_hive sam.hive sam.reg
}

# A PE header for cmd.exe: MZ, e_lfanew 0x40, PE\0\0, machine 0x8664 (x86-64), a PE32+
# optional header (magic 0x20b), the console subsystem.
vs_win_mkpe() {
  head -c 512 /dev/zero >"$1"
  printf 'MZ' | dd of="$1" conv=notrunc status=none
  printf '\x40' | dd of="$1" bs=1 seek=60 conv=notrunc status=none
  printf 'PE\0\0\x64\x86\x01\0' | dd of="$1" bs=1 seek=64 conv=notrunc status=none
  printf '\xf0\0\x22\0\x0b\x02' | dd of="$1" bs=1 seek=84 conv=notrunc status=none
  printf '\x03\0' | dd of="$1" bs=1 seek=156 conv=notrunc status=none
}
# vs_win_tree DIR SOFTWARE SYSTEM SAM: a Windows tree, every directory and hive in another case.
vs_win_tree() {
  mkdir -p "$1/WINDOWS/system32/Config" "$1/Program Files"
  cp "$2" "$1/WINDOWS/system32/Config/SOFTWARE"
  cp "$3" "$1/WINDOWS/system32/Config/system"
  cp "$4" "$1/WINDOWS/system32/Config/Sam"
  vs_win_mkpe "$1/WINDOWS/system32/cmd.exe"
}
