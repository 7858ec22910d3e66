# t/lib/collectd.sh: the real collectd for tests and benchmarks. Source it, then:
#   vs_plugin_dir WORK     make install into WORK/dest and print the plugin directory, with
#                          collectd's own csv, logfile, exec and unixsock copied beside ours (PluginDir is
#                          global, and LoadPlugin refuses a plugin reached through a symlink)
#   vs_collectd_conf WORK PLUGINDIR [LOG]
#                          the global part of a collectd.conf: host "vstest", Interval 1, a
#                          logfile (LOG, default WORK/collectd.log) at level info, and the csv
#                          writer into WORK/csv/vstest/...; an empty PLUGINDIR keeps collectd's
#                          own (an installed package's plugins)
#   vs_test_domain NAME UUID DISK [VCPUS [MIB [DEVICES]]]
#                          a <domain type='test'> for the node XML of libvirt's test driver:
#                          its qcow2 DISK as vda (virtio, cache none), 2 vCPUs and 512 MiB
#                          unless given, DEVICES (XML) added to its devices
#   vs_collectd_env        sets VS_COLLECTD_ENV, the command prefix that runs collectd with an
#                          ASan-built plugin (the runtime preloaded; libtirpc too, because
#                          ASan's xdr_* interceptors resolve the real functions at start-up and
#                          libvirt's RPC client, loaded later with the plugin, would otherwise
#                          call through NULL)
COLLECTD=$(command -v collectd || echo /usr/sbin/collectd)
vs_plugin_dir() {
  make -s -C "$VS_BUILDDIR" install DESTDIR="$1/dest" >"$1/install.log" 2>&1 || return 1
  local dir
  dir=$(dirname "$(find "$1/dest" -name vmscope_snapshot.so | head -n1)")
  cp /usr/lib/collectd/csv.so /usr/lib/collectd/logfile.so /usr/lib/collectd/exec.so /usr/lib/collectd/unixsock.so \
    "$VS_BUILDDIR/.libs/vstest_notes.so" "$dir/"
  echo "$dir"
}
vs_collectd_conf() { # WORK PLUGINDIR [LOG]
  cat <<CONF
Hostname "vstest"
FQDNLookup false
Interval 1
BaseDir "$1"
PIDFile "$1/collectd.pid"
${2:+PluginDir \"$2\"}
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  File "${3:-$1/collectd.log}"
  LogLevel info
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$1/csv"
</Plugin>
CONF
}
vs_test_domain() { # NAME UUID DISK [VCPUS [MIB [DEVICES]]]
  cat <<XML
 <domain type='test'>
  <name>$1</name><uuid>$2</uuid>
  <memory unit='MiB'>${5:-512}</memory><vcpu>${4:-2}</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
   <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>
    <source file='$3'/><target dev='vda' bus='virtio'/></disk>
   ${6:-}
  </devices>
 </domain>
XML
}
vs_collectd_env() {
  VS_COLLECTD_ENV=()
  if [ "${VS_VALGRIND:-}" = 1 ]; then # the valgrind suite: collectd and our plugins in memcheck
    VS_COLLECTD_ENV=("$VS_SRCDIR/t/lib/valgrind.sh")
    return
  fi
  if [ "${VS_SANITIZED:-}" = 1 ]; then
    local cc=${VS_CC:-gcc} tirpc
    # awk reads to the end: an early exit would kill ldconfig with SIGPIPE, which pipefail (the
    # demo runs under set -eo pipefail) turns into the caller's death, now and then.
    tirpc=$(ldconfig -p | awk '/libtirpc\.so\.3 .*x86-64/ && !found { found = $NF } END { print found }')
    VS_COLLECTD_ENV=(env LD_PRELOAD="$($cc -print-file-name=libasan.so) $($cc -print-file-name=libubsan.so) $tirpc" ASAN_OPTIONS=detect_leaks=0)
  fi
}
