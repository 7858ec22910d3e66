#!/usr/bin/env bash
# fleet-roles.sh BASE OUT: three role trees (web, db, app) for synthetic fleets, made of real
# Debian 12 files. BASE is a debootstrap tree (scripts/debootstrap-tree.sh); its /etc, unit
# files and dpkg status are the common part. Each role adds real packages: their /etc files and
# unit files are unpacked from the .deb (apt-get download), their dpkg status stanza is written
# from the .deb's own control data (version, architecture, conffiles with the shipped MD5s), and
# their services are enabled as systemd would. Nothing is installed or run on this host.
set -euo pipefail
base=$(realpath "$1") out=$(realpath -m "$2")
[ -f "$out/roles/.complete" ] && exit 0
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
[ -f "$out/roles/.complete" ] && exit 0
common="sudo procps cron"
declare -A role_pkgs=([web]="nginx nginx-common" [db]="mariadb-server mariadb-common" [app]="")
mkdir -p "$out/debs"
(cd "$out/debs" && apt-get download $common nginx nginx-common mariadb-server mariadb-common \
  >"$out/debs/download.log" 2>&1) || { tail -n 5 "$out/debs/download.log" >&2; exit 1; }

# The dpkg status stanza of a .deb, as dpkg would write it once installed.
stanza() { # DEB ROOT (where DEB was just unpacked: its conffiles are as shipped)
  local deb=$1 root=$2 ctl
  ctl=$(mktemp -d)
  dpkg-deb -e "$deb" "$ctl"
  echo "Package: $(dpkg-deb -f "$deb" Package)"
  echo "Status: install ok installed"
  dpkg-deb -f "$deb" Priority Section Installed-Size Maintainer Architecture Version | grep -v '^Package:' || true
  if [ -s "$ctl/conffiles" ]; then
    echo "Conffiles:"
    while read -r f; do
      [ -n "$f" ] || continue
      # md5sums leaves conffiles out; dpkg records the shipped file's MD5, which is this one.
      [ -f "$root$f" ] && echo " $f $(md5sum <"$root$f" | cut -d' ' -f1)"
    done <"$ctl/conffiles"
  fi
  echo "Description: $(dpkg-deb -f "$deb" Description | head -n1 | sed 's/^Description: //')"
  echo
  rm -rf "$ctl"
}

unpack() { # DEB ROOT
  dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards './etc/*' './lib/systemd/*' \
    './usr/lib/systemd/*' 2>/dev/null || true
}

rm -rf "$out/roles.tmp"
for role in web db app; do
  r=$out/roles.tmp/$role
  mkdir -p "$r/var/lib/dpkg" "$r/usr/lib"
  cp -a "$base/etc" "$r/"
  cp -a "$base/usr/lib/systemd" "$base/usr/lib/os-release" "$r/usr/lib/"
  [ -d "$base/usr/lib/sysctl.d" ] && cp -a "$base/usr/lib/sysctl.d" "$r/usr/lib/"
  for l in lib bin sbin; do [ -L "$base/$l" ] && cp -a "$base/$l" "$r/"; done
  cp "$base/var/lib/dpkg/status" "$r/var/lib/dpkg/status"
  for p in $common ${role_pkgs[$role]}; do
    deb=$(ls "$out"/debs/"${p}"_*.deb | head -n1)
    unpack "$deb" "$r"
    # A package the base already has (procps is in minbase) keeps its own stanza.
    grep -qx "Package: $p" "$r/var/lib/dpkg/status" || stanza "$deb" "$r" >>"$r/var/lib/dpkg/status"
  done
  # Enable what the packages' units ask for, as "systemctl enable" would.
  for unit in "$r"/usr/lib/systemd/system/*.service "$r"/lib/systemd/system/*.service; do
    [ -f "$unit" ] || continue
    if grep -q '^WantedBy=multi-user.target' "$unit"; then
      mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
      ln -sfn "/lib/systemd/system/$(basename "$unit")" \
        "$r/etc/systemd/system/multi-user.target.wants/$(basename "$unit")"
    fi
  done
  chmod 0640 "$r/etc/shadow" 2>/dev/null || true
done
rm -rf "$out/roles" && mv "$out/roles.tmp" "$out/roles" && touch "$out/roles/.complete"
