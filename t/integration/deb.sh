#!/usr/bin/env bash
# debian/: dpkg-buildpackage -us -uc -b builds collectd-vmscope from a copy of the source,
# lintian finds no error, apt installs it, and the stock collectd (its own plugin directory,
# no PluginDir) loads the three installed plugins and runs them. The package is removed again.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
if [ "${VS_SANITIZED:-}" = 1 ] || [ "${VS_VALGRIND:-}" = 1 ]; then
  skip 1 "the plain suite builds, installs and checks the package"
  done_testing
  exit $?
fi
[ "$(id -u)" = 0 ] || bail "installing a package needs root"
command -v dpkg-buildpackage >/dev/null && [ -x /usr/bin/dh ] || bail "dpkg-dev and debhelper are not installed (scripts/install-deps.sh installs them)"
if dpkg-query -W -f='${db:Status-Status}' collectd-vmscope 2>/dev/null | grep -qx installed; then
  skip 1 "collectd-vmscope is installed on this machine already: not replacing it"
  done_testing
  exit $?
fi
work=$(tmpdir)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; dpkg -r collectd-vmscope >/dev/null 2>&1; rm -rf "$work"' EXIT
vs_copy_source "$work/src"
(cd "$work/src" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1
rc=$?
ok $rc "dpkg-buildpackage -us -uc -b builds the package"
[ $rc = 0 ] || tail -n 20 "$work/build.log" | sed 's/^/# /'
deb=$(ls "$work"/collectd-vmscope_*_*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] && [ -f "$deb" ] || bail "no collectd-vmscope_*.deb was written"
ok 0 "collectd-vmscope_*.deb is written ($(basename "$deb"))"
files=$(dpkg-deb -c "$deb" | awk '{ print $6 }')
for f in ./usr/bin/vmscope ./usr/lib/collectd/vmscope_snapshot.so ./usr/lib/collectd/vmscope_drift.so \
  ./usr/lib/collectd/vmscope_action.so ./usr/share/man/man1/vmscope.1.gz ./usr/share/man/man5/collectd-vmscope.5.gz \
  ./usr/share/doc/collectd-vmscope/examples/vmscope.conf ./lib/systemd/system/collectd.service.d/vmscope.conf \
  ./usr/share/collectd-vmscope/prometheus/vmscope.rules.yml ./usr/share/collectd-vmscope/grafana/vmscope.json ./usr/share/collectd-vmscope/grafana/vmscope-fleet.json \
  ./usr/share/collectd-vmscope/alertmanager/alertmanager.yml; do
  grep -qxF "$f" <<<"$files"; ok $? "it ships $f"
done
! grep -q '^\./etc/' <<<"$files"; ok $? "and nothing in /etc: the example configuration is an example, not active"
# The libraries opened on first use (src/core/base/dl.h) are no NEEDED entries, so the package
# must name each itself: every package a VS_DL_LIBRARY names is a Depends or a Recommends.
wants=$(grep -rhoE 'VS_DL_LIBRARY\([a-z_]+, *VS_SONAME_[A-Z0-9_]+, *"[^"]+"' "$VS_SRCDIR/src" | sed 's/.*"\(.*\)"/\1/' | sort -u)
declared=$(dpkg-deb -f "$deb" Depends Recommends | tr ',|' '\n\n' | sed 's/^[A-Za-z]*: *//; s/^ *//; s/ .*//')
missing=$(comm -23 <(echo "$wants") <(echo "$declared" | sort -u) | tr '\n' ' ')
[ -n "$wants" ] && [ -z "$missing" ]
ok $? "it depends on or recommends every library it opens on first use ($(echo $wants)): missing: ${missing:-none}"
if command -v lintian >/dev/null; then
  lintian "$deb" >"$work/lintian.out" 2>&1
  sed 's/^/# /' "$work/lintian.out" | grep -v 'root privileges'
  ! grep -q '^E:' "$work/lintian.out"; ok $? "lintian reports no error"
else
  skip 1 "lintian is not installed"
fi

DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" >"$work/apt.log" 2>&1
rc=$?
ok $rc "apt installs it from the file"
[ $rc = 0 ] || bail "apt-get install failed: $(tail -n 3 "$work/apt.log" | tr '\n' ' ')"
is "$(/usr/bin/vmscope --version 2>&1 | head -n1)" "vmscope $(sed -n 's/^vmscope (\([^)]*\)).*/\1/p;q' "$work/src/debian/changelog")" \
  "the installed vmscope runs and says its version"
man -w collectd-vmscope >/dev/null 2>&1; ok $? "man collectd-vmscope finds the installed page"

# The stock collectd, as Debian installs it: its default plugin directory, our plugins there.
mkdir -p "$work/tree/etc/ssh"
printf 'ID=debian\nVERSION_ID="12"\n' >"$work/tree/etc/os-release"
printf 'Port 22\n' >"$work/tree/etc/ssh/sshd_config"
{ vs_collectd_conf "$work" ""; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Tree "guest" "$work/tree"
  DataDir "$work/pool"
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$work/pool"
</Plugin>
LoadPlugin vmscope_action
<Plugin vmscope_action>
  <Rule "log">
    Type "config_drift"
    Action "webhook" "http://127.0.0.1:1/"
    DryRun true
  </Rule>
</Plugin>
CONF
! grep -q PluginDir "$work/collectd.conf" && /usr/sbin/collectd -t -C "$work/collectd.conf" >"$work/t.out" 2>&1 &&
  ! grep -qsiE 'could not be loaded|error' "$work/t.out" "$work/collectd.log"
ok $? "collectd -t accepts a configuration that loads the three plugins from its own directory"
/usr/sbin/collectd -f -C "$work/collectd.conf" >"$work/collectd.out" 2>&1 &
pids+=($!)
snapshotted() { ls "$work"/csv/vstest/vmscope_snapshot-guest/count-settings-* >/dev/null 2>&1; }
wait_for 30 snapshotted
ok $? "the stock collectd runs the installed vmscope_snapshot: count-settings of the tree"
for p in vmscope_snapshot vmscope_drift vmscope_action; do
  grep -q "plugin \"$p\" successfully loaded" "$work/collectd.log" &&
    ! grep -qE "$p.*(could not be loaded|not found)" "$work/collectd.log" "$work/collectd.out"
  ok $? "$p loads without error"
done
kill "${pids[@]}"
wait 2>/dev/null
pids=()
dpkg -r collectd-vmscope >/dev/null 2>&1 && [ ! -e /usr/lib/collectd/vmscope_snapshot.so ] && [ ! -e /usr/bin/vmscope ]
ok $? "dpkg -r removes it again"
done_testing
