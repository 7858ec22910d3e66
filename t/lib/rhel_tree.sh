# t/lib/rhel_tree.sh: a Rocky Linux 9 guest's root file system, as the installer leaves it, made
# at test time (source it; needs rpm and rpmbuild).
#   vs_rhel_tree DIR [HOSTNAME [VARIANT]]
#     writes the tree into DIR (made): os-release of Rocky 9.3 with ID_LIKE, redhat-release and
#     rocky-release, hostname (default rocky-01), an rpm database made by the real rpm
#     (--initdb, then the packages rpmbuild made installed --justdb: bash, openssh-server,
#     openssl and vim-minimal with epochs, kernel and kernel-core in two versions each, ...),
#     sshd_config as RHEL 9 ships it (Include of sshd_config.d/*.conf, 50-redhat.conf),
#     sysctl.conf and sysctl.d, SELinux enforcing/targeted, passwd/group/shadow ('!!' and '*'
#     for locked, no hashes), the units enabled in multi-user.target.wants, an XFS-on-LVM fstab,
#     and librpm's macros naming the database (what the guest's own rpm reads).
#     VARIANT makes a peer that differs in one thing:
#       permitrootlogin  sshd_config.d/01-permitrootlogin.conf with "PermitRootLogin yes", as
#                        Anaconda writes it when root may log in with a password
#       permissive       SELINUX=permissive
#       sysimage         the database in /usr/lib/sysimage/rpm, /var/lib/rpm a symlink to it
#                        (Fedora 36 and later, RHEL 10)
#       no-os-release    neither /etc/os-release nor /usr/lib/os-release (a RHEL 6 or CentOS 6 kind)
#   VS_RHEL_PKGS: the packages every tree gets, "NAME EPOCH VERSION RELEASE" per line (EPOCH
#   "-" for none), in the order rpm installs them.
# The packages are built once per directory holding DIR (DIR/../.rhel-rpms) and the first tree
# made there is copied for the others, so five peers cost one rpmbuild run.
VS_RHEL_PKGS='rocky-release - 9.3 1.2.el9 noarch
bash - 5.1.8 6.el9_1 x86_64
openssl 1 3.0.7 24.el9 x86_64
vim-minimal 2 8.2.2637 20.el9_1 x86_64
openssh - 8.7p1 34.el9 x86_64
openssh-server - 8.7p1 34.el9 x86_64
systemd - 252 18.el9 x86_64
firewalld - 1.2.5 2.el9 noarch
selinux-policy-targeted - 38.1.23 1.el9 noarch
kernel-core - 5.14.0 284.11.1.el9_2 x86_64
kernel-core - 5.14.0 362.8.1.el9_3 x86_64
kernel - 5.14.0 284.11.1.el9_2 x86_64
kernel - 5.14.0 362.8.1.el9_3 x86_64'

# vs_rhel_rpms OUTDIR: builds VS_RHEL_PKGS with rpmbuild into OUTDIR (once).
vs_rhel_rpms() {
  local out=$1 name epoch ver rel arch spec
  [ -f "$out/.done" ] && return 0
  mkdir -p "$out/spec" || return 1
  while read -r name epoch ver rel arch; do
    spec="$out/spec/$name-$ver-$rel.spec"
    {
      printf 'Name: %s\nVersion: %s\nRelease: %s\n' "$name" "$ver" "$rel"
      [ "$epoch" = - ] || printf 'Epoch: %s\n' "$epoch"
      printf 'Summary: %s as Rocky Linux 9 ships it, without its files\nLicense: MIT\n' "$name"
      printf 'BuildArch: %s\n%%description\nvmscope test package.\n%%files\n' "$arch"
    } >"$spec"
    rpmbuild -bb --quiet --define "_topdir $out/build" --define '_build_id_links none' \
      --target "$arch" "$spec" >"$out/rpmbuild.log" 2>&1 || {
      cat "$out/rpmbuild.log" >&2
      return 1
    }
  done <<<"$VS_RHEL_PKGS"
  touch "$out/.done"
}

# vs_rhel_base DIR RPMS: the tree every variant starts from.
vs_rhel_base() {
  local g=$1 rpms=$2 f
  mkdir -p "$g"/etc/{ssh/sshd_config.d,sysctl.d,selinux,sysconfig,systemd/system/multi-user.target.wants} \
    "$g"/etc/systemd/system/sysinit.target.wants "$g"/usr/lib/systemd/system "$g"/usr/lib/rpm \
    "$g"/usr/lib/sysctl.d "$g"/var/lib/rpm "$g"/boot "$g"/root "$g"/home || return 1
  cat >"$g/etc/os-release" <<'EOF'
NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.3"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
EOF
  # the merged /usr, and the shell (the host's: its architecture is the guest's)
  mkdir -p "$g"/usr/bin "$g"/usr/sbin "$g"/usr/lib64 && ln -s usr/bin "$g/bin" && ln -s usr/sbin "$g/sbin" &&
    ln -s usr/lib "$g/lib" && ln -s usr/lib64 "$g/lib64" && cp /bin/bash "$g/usr/bin/bash" && ln -s bash "$g/usr/bin/sh" || return 1
  echo 'Rocky Linux release 9.3 (Blue Onyx)' >"$g/etc/rocky-release"
  ln -s rocky-release "$g/etc/redhat-release"
  ln -s rocky-release "$g/etc/system-release"
  # what the rpm package installs: where the database is, and its format
  printf '%%_dbpath\t\t%%{_var}/lib/rpm\n%%_db_backend\t\tsqlite\n%%_var\t\t\t/var\n' >"$g/usr/lib/rpm/macros"
  : >"$g/usr/lib/rpm/rpmrc"
  # sshd: RHEL 9's shipped file, which reads the drop-ins first (first value wins)
  cat >"$g/etc/ssh/sshd_config" <<'EOF'
#	$OpenBSD: sshd_config,v 1.104 2021/07/02 05:11:21 dtucker Exp $

# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

# To modify the system-wide sshd configuration, create a  *.conf  file under
#  /etc/ssh/sshd_config.d/  which will be automatically included below
Include /etc/ssh/sshd_config.d/*.conf

#Port 22
#AddressFamily any
#ListenAddress 0.0.0.0

#HostKey /etc/ssh/ssh_host_rsa_key
#HostKey /etc/ssh/ssh_host_ecdsa_key
#HostKey /etc/ssh/ssh_host_ed25519_key

# Logging
#SyslogFacility AUTH
#LogLevel INFO

# Authentication:

#LoginGraceTime 2m
#PermitRootLogin prohibit-password
#StrictModes yes
#MaxAuthTries 6
#MaxSessions 10

#PubkeyAuthentication yes

AuthorizedKeysFile	.ssh/authorized_keys

#PasswordAuthentication yes
#PermitEmptyPasswords no

#KbdInteractiveAuthentication yes

#UsePAM no

#AllowAgentForwarding yes
#AllowTcpForwarding yes
#GatewayPorts no
#X11Forwarding no
#PrintMotd yes

# override default of no subsystems
Subsystem	sftp	/usr/libexec/openssh/sftp-server
EOF
  cat >"$g/etc/ssh/sshd_config.d/50-redhat.conf" <<'EOF'
# This system is following system-wide crypto policy. The changes to
# crypto properties (Ciphers, MACs, ...) will not have any effect in
# this or following included files. To override some configuration option,
# write it before this block or in a file in this directory with a lower
# number.
Include /etc/crypto-policies/back-ends/opensshserver.config

SyslogFacility AUTHPRIV

ChallengeResponseAuthentication no

GSSAPIAuthentication yes
GSSAPICleanupCredentials no

UsePAM yes

X11Forwarding yes

# It is recommended to use pam_motd in /etc/pam.d/sshd instead of PrintMotd,
# as it is more configurable and versatile than the built-in version.
PrintMotd no
EOF
  # sysctl: RHEL keeps /etc/sysctl.conf as comments only; settings come from drop-ins
  printf '# sysctl settings are defined through files in\n# /usr/lib/sysctl.d/, /run/sysctl.d/, and /etc/sysctl.d/.\n' >"$g/etc/sysctl.conf"
  ln -s ../sysctl.conf "$g/etc/sysctl.d/99-sysctl.conf"
  printf 'kernel.yama.ptrace_scope = 0\nkernel.sysrq = 16\nnet.ipv4.conf.all.rp_filter = 2\n' >"$g/usr/lib/sysctl.d/50-default.conf"
  printf 'vm.swappiness = 10\nnet.core.somaxconn = 4096\n' >"$g/etc/sysctl.d/60-tuned.conf"
  cat >"$g/etc/selinux/config" <<'EOF'

# This file controls the state of SELinux on the system.
# SELINUX= can take one of these three values:
#     enforcing - SELinux security policy is enforced.
#     permissive - SELinux prints warnings instead of enforcing.
#     disabled - No SELinux policy is loaded.
SELINUX=enforcing
# SELINUXTYPE= can take one of these three values:
#     targeted - Targeted processes are protected,
#     minimum - Modification of targeted policy. Only selected processes are protected.
#     mls - Multi Level Security protection.
SELINUXTYPE=targeted

EOF
  ln -s ../selinux/config "$g/etc/sysconfig/selinux"
  cat >"$g/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin
systemd-coredump:x:999:997:systemd Core Dumper:/:/sbin/nologin
dbus:x:81:81:System message bus:/:/sbin/nologin
polkitd:x:998:996:User for polkitd:/:/sbin/nologin
sshd:x:74:74:Privilege-separated SSH:/usr/share/empty.sshd:/sbin/nologin
chrony:x:997:995::/var/lib/chrony:/sbin/nologin
rocky:x:1000:1000:rocky:/home/rocky:/bin/bash
EOF
  cat >"$g/etc/group" <<'EOF'
root:x:0:
bin:x:1:
daemon:x:2:
wheel:x:10:rocky
nobody:x:65534:
dbus:x:81:
sshd:x:74:
rocky:x:1000:
EOF
  cat >"$g/etc/shadow" <<'EOF'
root:!!:19700:0:99999:7:::
bin:*:19469:0:99999:7:::
daemon:*:19469:0:99999:7:::
nobody:*:19469:0:99999:7:::
systemd-coredump:!!:19700::::::
dbus:!!:19700::::::
polkitd:!!:19700::::::
sshd:!!:19700::::::
chrony:!!:19700::::::
rocky:!!:19700:0:99999:7:::
EOF
  [ "$(id -u)" != 0 ] || chmod 0000 "$g/etc/shadow" # as RHEL has it; root reads it still
  cat >"$g/etc/fstab" <<'EOF'

#
# /etc/fstab
# Created by anaconda on Mon Nov 20 10:12:01 2023
#
# Accessible filesystems, by reference, are maintained under '/dev/disk/'.
# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info.
#
/dev/mapper/rl-root     /                       xfs     defaults        0 0
UUID=8d3b6d7e-2a0c-4c1e-9e55-0f9c1d2f3a4b /boot                   xfs     defaults        0 0
/dev/mapper/rl-swap     none                    swap    defaults        0 0
EOF
  # units and their enablement, as systemctl enable leaves them
  for f in sshd firewalld chronyd crond NetworkManager auditd rsyslog tuned kdump; do
    printf '[Unit]\nDescription=%s\n\n[Service]\nExecStart=/usr/sbin/%s\n\n[Install]\nWantedBy=multi-user.target\n' "$f" "$f" \
      >"$g/usr/lib/systemd/system/$f.service"
    ln -s "/usr/lib/systemd/system/$f.service" "$g/etc/systemd/system/multi-user.target.wants/$f.service"
  done
  printf '[Unit]\nDescription=Postfix\n\n[Service]\nExecStart=/usr/sbin/postfix\n\n[Install]\nWantedBy=multi-user.target\n' >"$g/usr/lib/systemd/system/postfix.service"
  printf '[Unit]\nDescription=Security Auditing\n[Install]\nWantedBy=sysinit.target\n' >"$g/usr/lib/systemd/system/selinux-autorelabel-mark.service"
  ln -s /usr/lib/systemd/system/selinux-autorelabel-mark.service "$g/etc/systemd/system/sysinit.target.wants/"
  ln -s /usr/lib/systemd/system/multi-user.target "$g/etc/systemd/system/default.target"
  printf '[Unit]\nDescription=Multi-User System\n' >"$g/usr/lib/systemd/system/multi-user.target"
  rpm --root "$g" --dbpath /var/lib/rpm --initdb &&
    rpm --root "$g" --dbpath /var/lib/rpm -i --justdb --nodeps --noscripts --nosignature --ignorearch --ignoreos \
      $(while read -r name epoch ver rel arch; do echo "$rpms/build/RPMS/$arch/$name-$ver-$rel.$arch.rpm"; done <<<"$VS_RHEL_PKGS") 2>/dev/null
}

vs_rhel_tree() { # DIR [HOSTNAME [VARIANT]]
  local g=$1 host=${2:-rocky-01} variant=${3:-}
  local top
  top=$(dirname "$g")
  local rpms=$top/.rhel-rpms proto=$top/.rhel-proto
  mkdir -p "$top" || return 1
  if [ ! -d "$proto" ]; then
    vs_rhel_rpms "$rpms" && vs_rhel_base "$proto.tmp" "$rpms" && mv "$proto.tmp" "$proto" || return 1
  fi
  rm -rf "$g" && cp -a "$proto" "$g" || return 1
  echo "$host" >"$g/etc/hostname"
  case $variant in
  '') ;;
  permitrootlogin)
    printf 'PermitRootLogin yes\n' >"$g/etc/ssh/sshd_config.d/01-permitrootlogin.conf"
    ;;
  permissive)
    sed -i 's/^SELINUX=enforcing$/SELINUX=permissive/' "$g/etc/selinux/config"
    ;;
  sysimage)
    mkdir -p "$g/usr/lib/sysimage" && mv "$g/var/lib/rpm" "$g/usr/lib/sysimage/rpm" &&
      ln -s ../../usr/lib/sysimage/rpm "$g/var/lib/rpm" &&
      sed -i 's|%{_var}/lib/rpm|/usr/lib/sysimage/rpm|' "$g/usr/lib/rpm/macros"
    ;;
  no-os-release)
    rm -f "$g/etc/os-release" "$g/usr/lib/os-release"
    ;;
  *)
    echo "vs_rhel_tree: unknown variant '$variant'" >&2
    return 1
    ;;
  esac
}
