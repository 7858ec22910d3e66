#!/usr/bin/env bash
# An RPM database, written by the real rpm into a guest tree, read through librpm.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
command -v rpmbuild >/dev/null || bail "rpmbuild is not installed (scripts/install-deps.sh installs rpm)"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
mkpkg() { # NAME VERSION RELEASE [EPOCH]
  cat >"$work/$1-$2.spec" <<SPEC
Name: $1
Version: $2
Release: $3
${4:+Epoch: $4}
Summary: vmscope test package
License: MIT
BuildArch: noarch
%description
A package with no files, for vmscope's tests.
%files
SPEC
  rpmbuild -bb --quiet --define "_topdir $work/rpmbuild" "$work/$1-$2.spec" >/dev/null 2>&1
}
mkpkg vstest-tool 1.2 3 2 && mkpkg vstest-lib 0.9 1 && mkpkg vstest-kernel 5.14.0 70 && mkpkg vstest-kernel 5.14.0 162
ok $? "rpmbuild made four test packages"
g="$work/guest"
mkdir -p "$g/etc"
printf 'ID="rocky"\nVERSION_ID="9.3"\nID_LIKE="rhel centos fedora"\n' >"$g/etc/os-release"
rpm --root "$g" --dbpath /var/lib/rpm --initdb && \
  rpm --root "$g" --dbpath /var/lib/rpm -i --justdb --nodeps --noscripts --nosignature "$work"/rpmbuild/RPMS/noarch/*.rpm 2>"$work/rpm.err"
ok $? "rpm installed them into the guest's database (--justdb)"
[ -f "$g/var/lib/rpm/rpmdb.sqlite" ]; ok $? "the database is sqlite, as on current Fedora and RHEL"

"$VMSCOPE" inspect "$g" >"$work/doc.json" 2>"$work/err"; ok $? "vmscope inspect reads the tree"
s() { jq -r --arg k "$1" '.settings[$k] // "<absent>"' "$work/doc.json"; }
is "$(s pkg:vstest-tool)" "2:1.2-3" "a package's version is epoch:version-release"
is "$(s pkg:vstest-lib)" "0.9-1" "no epoch, no prefix"
is "$(s pkg:vstest-kernel)" "5.14.0-162 5.14.0-70" "two versions of one name are both listed"
is "$(jq -r .os.package_format "$work/doc.json")" rpm "package format is rpm"
is "$(jq -r .os.distro "$work/doc.json")" rocky "distro from os-release"
is "$(jq -r '[.provenance["/var/lib/rpm"][] | select(startswith("pkg:"))] | length' "$work/doc.json")" 3 "the packages' provenance is the rpm database"
[ -z "$(ls -A "${TMPDIR:-/tmp}" | grep '^vmscope-rpm-' || true)" ]; ok $? "the staging copy of the database is removed afterwards"

# A guest that points its rpm database at a host path gets its own tree's file, or nothing.
g2="$work/guest2"
mkdir -p "$g2/var/lib/rpm"
ln -s /var/lib/rpm/../../../../../etc/passwd "$g2/var/lib/rpm/rpmdb.sqlite"
"$VMSCOPE" inspect "$g2" >"$work/doc2.json" 2>"$work/err2"; ok $? "a symlinked rpm database does not stop extraction"
is "$(jq '[.settings | keys[] | select(startswith("pkg:"))] | length' "$work/doc2.json")" 0 "and yields no packages"
done_testing
