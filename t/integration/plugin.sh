#!/usr/bin/env bash
# The real collectd daemon loads vmscope_snapshot from where `make install` put it and
# dispatches what the plugin extracted from a guest tree.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
command -v collectd >/dev/null || command -v /usr/sbin/collectd >/dev/null || bail "collectd is not installed (scripts/install-deps.sh installs it)"
. "$VS_SRCDIR/t/lib/collectd.sh"
work=$(tmpdir)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT; [ -n "${KEEP:-}" ] && trap - EXIT

make -s -C "$VS_BUILDDIR" install DESTDIR="$work/dest" >"$work/install.log" 2>&1
ok $? "make install succeeds into a staging root"
so=$(find "$work/dest" -name vmscope_snapshot.so | head -n1)
[ -n "$so" ] && [ -f "$so" ] && [ ! -L "$so" ]; ok $? "vmscope_snapshot.so is installed as a real file, not a symlink"
# collectd's plugin directory as configured (/usr/lib/collectd unless --with-collectd-plugindir)
plugdir=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s -C "$VS_BUILDDIR" -f Makefile -f <(printf 'vs-print-plugindir:\n\t@echo $(collectd_plugindir)\n') vs-print-plugindir)
[ "$so" = "$work/dest$plugdir/vmscope_snapshot.so" ]; ok $? "into collectd's plugin directory ($plugdir)"
[ -z "$(find "$work/dest" -name 'vmscope_*.la')" ]; ok $? "no libtool .la files are left beside it"
[ -n "$(find "$work/dest" -path '*/bin/vmscope' -type f -perm -u+x)" ]; ok $? "the vmscope command is installed (under the configured prefix)"

mkdir -p "$work/guest/etc/ssh" "$work/csv"
printf 'ID=debian\nVERSION_ID="12"\n' >"$work/guest/etc/os-release"
printf 'PermitRootLogin no\nX11Forwarding yes\n' >"$work/guest/etc/ssh/sshd_config"
plugindir=$(dirname "$so")
# PluginDir is global: give the daemon its own csv and logfile beside ours (copies, since
# collectd refuses to load a plugin through a symlink).
cp /usr/lib/collectd/csv.so /usr/lib/collectd/logfile.so "$plugindir/"
write_conf() { # FILE EXTRA-PLUGIN-LINES
  { vs_collectd_conf "$work" "$plugindir" "$1.log"; cat <<CONF; } >"$1"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
$2
</Plugin>
CONF
}

vs_collectd_env

write_conf "$work/bad.conf" "  Tree \"g\" \"$work/guest\"
  Frobnicate 3"
# -T runs the config callbacks (-t only parses the file).
"${VS_COLLECTD_ENV[@]}" timeout 60 "$COLLECTD" -T -C "$work/bad.conf" >"$work/bad.out" 2>&1
grep -q 'unknown option "Frobnicate"' "$work/bad.conf.log" 2>/dev/null
ok $? "an unknown option is reported by name at config time"
grep -q 'Parsing the config file failed' "$work/bad.out"; ok $? "and collectd refuses the configuration"

# The shipped example configuration is accepted as it is.
write_conf "$work/example.conf" "  DataDir \"$work/pool\""
sed -i '/^LoadPlugin vmscope_snapshot$/,$d' "$work/example.conf"
# as shipped, but for the pool: vmscope_snapshot's init creates its DataDir
sed "s|\"/var/lib/collectd/vmscope\"|\"$work/example-pool\"|" "$VS_SRCDIR/etc/vmscope.conf" >"$work/vmscope.conf"
echo "Include \"$work/vmscope.conf\"" >>"$work/example.conf"
"${VS_COLLECTD_ENV[@]}" timeout 60 "$COLLECTD" -T -C "$work/example.conf" >"$work/example.out" 2>&1
rc=$?
[ $rc = 0 ] && ! grep -q 'Parsing the config file failed' "$work/example.out" && grep -q vmscope_drift "$work/example.conf.log"
ok $? "etc/vmscope.conf passes collectd -T (both plugins' options)"
grep -q 'Parsing the config file failed' "$work/example.out" && diag "$(cat "$work/example.out" "$work/example.conf.log" 2>/dev/null | tail -n 5)"

# vmscope_drift refuses unknown options and impossible thresholds the same way.
for bad in 'Frobnicate 3' 'WarningScore 0.9
  FailureScore 0.8'; do
  write_conf "$work/bad-drift.conf" "  DataDir \"$work/pool\""
  printf 'LoadPlugin vmscope_drift\n<Plugin vmscope_drift>\n  %s\n</Plugin>\n' "$bad" >>"$work/bad-drift.conf"
  "${VS_COLLECTD_ENV[@]}" timeout 60 "$COLLECTD" -T -C "$work/bad-drift.conf" >"$work/bad-drift.out" 2>&1
  grep -q 'Parsing the config file failed' "$work/bad-drift.out"
  ok $? "vmscope_drift refuses \"$(echo $bad)\" at config time"
done
grep -q 'unknown option "Frobnicate"' "$work/bad-drift.conf.log" 2>/dev/null || grep -q 'WarningScore' "$work/bad-drift.conf.log"
ok $? "and says why in the log"

# Numbers collectd's own cf_util_get_int would cast unchecked (found by fuzz_config_*; the
# inputs are in t/fuzz/): refused with the option's name, in the real daemon.
for bad in 'vmscope_drift MinRolePeers 99999999999' 'vmscope_snapshot Workers -99999999999' 'vmscope_drift Interval -5' 'vmscope_action QueueSize 2.5'; do
  set -- $bad
  if [ "$1" = vmscope_snapshot ]; then
    write_conf "$work/bad-num.conf" "  DataDir \"$work/pool\"
  $2 $3"
  else
    write_conf "$work/bad-num.conf" "  DataDir \"$work/pool\""
    printf 'LoadPlugin %s\n<Plugin %s>\n  %s %s\n</Plugin>\n' "$1" "$1" "$2" "$3" >>"$work/bad-num.conf"
  fi
  rm -f "$work/bad-num.conf.log"
  "${VS_COLLECTD_ENV[@]}" timeout 60 "$COLLECTD" -T -C "$work/bad-num.conf" >"$work/bad-num.out" 2>&1
  grep -q 'Parsing the config file failed' "$work/bad-num.out" && grep -qE "$2 takes (a whole number|seconds)" "$work/bad-num.conf.log"
  ok $? "$1 refuses \"$2 $3\": $(grep -oE "$2 takes[^\"]*" "$work/bad-num.conf.log" | head -n1)"
  ! grep -qE 'runtime error|AddressSanitizer' "$work/bad-num.out"; ok $? "without undefined behaviour"
done

write_conf "$work/good.conf" "  Tree \"guest-1\" \"$work/guest\"
  DataDir \"$work/pool\"
  Interval 1
  Watch \"/etc/ssh/sshd_config\" \"Sshd.lns\""
"${VS_COLLECTD_ENV[@]}" "$COLLECTD" -f -C "$work/good.conf" >"$work/run.out" 2>&1 &
pid=$!
csvdir="$work/csv/vstest/vmscope_snapshot-guest-1"
for _ in $(seq 1 60); do
  ls "$csvdir"/count-settings-* >/dev/null 2>&1 && break
  sleep 0.5
done
ls "$csvdir"/count-settings-* >/dev/null 2>&1; ok $? "collectd dispatches count-settings for the tree within 30 s"
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
val=$(tail -n1 "$csvdir"/count-settings-* 2>/dev/null | cut -d, -f2)
# os:type, os:distro, os:version, 2 sshd settings, owner, mode, sha256 = 8
is "${val%%.*}" 8 "the settings count is what the extractor found in the tree"
val=$(tail -n1 "$csvdir"/bool-snapshot_ok-* 2>/dev/null | cut -d, -f2)
is "${val%%.*}" 1 "bool-snapshot_ok reports success"
ls "$csvdir"/duration-snapshot-* >/dev/null 2>&1; ok $? "duration-snapshot is dispatched"
[ "$(stat -c %a "$work/pool/.parse-cache")" = 700 ] && [ -n "$(find "$work/pool/.parse-cache" -type f)" ]
ok $? "the parse cache is DataDir/.parse-cache, mode 0700, and holds the parse of sshd_config"
grep -qi 'error' "$work/good.conf.log" && { diag "$(cat "$work/good.conf.log")"; ok 1 "collectd logged no error"; } || ok 0 "collectd logged no error"
done_testing
