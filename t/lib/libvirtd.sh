# t/lib/libvirtd.sh: a private libvirt daemon with the QEMU driver, for tests that need real
# QEMU domains (backup jobs, block jobs, the guest agent channel). Source it, then:
#   vs_libvirtd_start DIR   start virtlogd and libvirtd with their sockets under DIR; sets
#                           VS_LIBVIRT_URI (returns 1 with VS_LIBVIRT_WHY set when it cannot)
#   vs_domain_xml NAME DISK [EXTRA-DEVICE-XML]
#                           a transient TCG domain with no guest OS and DISK (qcow2) as vda
#   vs_libvirtd_restart DIR restart libvirtd alone (its domains keep running)
#   vs_libvirtd_stop        stop what vs_libvirtd_start started
# Needs root. QEMU runs as libvirt-qemu; the user and group are made if missing (libvirtd will
# not start without them), and the user joins group kvm: libvirt checks /dev/kvm as that user,
# and a mismatch with what it probed as root makes it probe QEMU again on every domain start
# (48 s each on this machine, instead of 0.3 s).
# Two libvirtds with the QEMU driver cannot run at once (each takes the drivers' pid files under
# /run/libvirt, and virtlogd is shared), and make check runs tests in parallel: a lock, held from
# start to stop, runs the tests that use one in turn.
VS_LIBVIRTD_PIDS=()
VS_LIBVIRTD_LOCK=
vs_libvirtd_start() {
  local dir=$1
  VS_LIBVIRT_WHY=
  [ "$(id -u)" = 0 ] || { VS_LIBVIRT_WHY="not root"; return 1; }
  command -v libvirtd >/dev/null && command -v virtlogd >/dev/null && command -v qemu-system-x86_64 >/dev/null ||
    { VS_LIBVIRT_WHY="libvirtd, virtlogd or qemu-system-x86_64 is not installed"; return 1; }
  exec {VS_LIBVIRTD_LOCK}>>/run/lock/vmscope-test-libvirtd.lock ||
    { VS_LIBVIRT_WHY="cannot open /run/lock/vmscope-test-libvirtd.lock"; return 1; }
  flock -w 900 "$VS_LIBVIRTD_LOCK" ||
    { VS_LIBVIRT_WHY="another test kept its libvirtd for 15 minutes (/run/lock/vmscope-test-libvirtd.lock)"; return 1; }
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  if getent group kvm >/dev/null && ! id -nG libvirt-qemu | grep -qw kvm; then usermod -aG kvm libvirt-qemu; fi
  mkdir -p /var/log/libvirt "$dir/sock"
  chmod 755 "$dir"
  cat >"$dir/libvirtd.conf" <<CONF
unix_sock_dir = "$dir/sock"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$dir/libvirtd.log"
CONF
  # virtlogd keeps QEMU's console log; it has one system socket, so reuse a running one. One that
  # was stopped leaves its socket behind, and libvirtd's connection to it is then refused.
  if ! pgrep -x virtlogd >/dev/null; then
    rm -f /run/libvirt/virtlogd-sock /run/libvirt/virtlogd-admin-sock
    virtlogd -d -p "$dir/virtlogd.pid" {VS_LIBVIRTD_LOCK}>&- || { VS_LIBVIRT_WHY="virtlogd did not start"; return 1; }
    VS_LIBVIRTD_PIDS+=("$dir/virtlogd.pid")
  fi
  # The previous test's libvirtd may still be letting go of the drivers' pid files.
  local try
  for try in 1 2 3 4 5 6; do
    libvirtd -d -f "$dir/libvirtd.conf" -p "$dir/libvirtd.pid" {VS_LIBVIRTD_LOCK}>&- && break
    [ "$try" = 6 ] && { VS_LIBVIRT_WHY="libvirtd did not start: $(tail -n 2 "$dir/libvirtd.log" 2>/dev/null)"; return 1; }
    sleep 2
  done
  VS_LIBVIRTD_PIDS+=("$dir/libvirtd.pid")
  VS_LIBVIRT_URI="qemu:///system?socket=$dir/sock/libvirt-sock"
  local i
  for i in $(seq 1 60); do
    virsh -c "$VS_LIBVIRT_URI" version >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  VS_LIBVIRT_WHY="libvirtd did not answer on $dir/sock within 30 s: $(tail -n 3 "$dir/libvirtd.log" 2>/dev/null)"
  return 1
}
vs_domain_xml() { # NAME DISK [EXTRA-DEVICES]
  cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$2'/><target dev='vda' bus='virtio'/></disk>
    ${3:-}
  </devices>
</domain>
XML
}
vs_libvirtd_stop() {
  local p d
  # QEMU outlives libvirtd: end the domains first.
  if [ -n "${VS_LIBVIRT_URI:-}" ]; then
    for d in $(virsh -c "$VS_LIBVIRT_URI" list --name 2>/dev/null); do
      virsh -c "$VS_LIBVIRT_URI" destroy "$d" >/dev/null 2>&1
    done
  fi
  local pids=()
  for p in "${VS_LIBVIRTD_PIDS[@]}"; do
    [ -f "$p" ] && pids+=("$(cat "$p")")
  done
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  local alive i
  for i in $(seq 1 120); do # they take a moment to shut down; the next test wants the drivers
    alive=
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.25
  done
  [ -n "$alive" ] && kill -9 "${pids[@]}" 2>/dev/null
  VS_LIBVIRTD_PIDS=()
  if [ -n "$VS_LIBVIRTD_LOCK" ]; then
    flock -u "$VS_LIBVIRTD_LOCK"
    exec {VS_LIBVIRTD_LOCK}>&-
    VS_LIBVIRTD_LOCK=
  fi
}
vs_libvirtd_restart() { # DIR
  local dir=$1 pid
  pid=$(cat "$dir/libvirtd.pid" 2>/dev/null) || return 1
  kill "$pid" 2>/dev/null
  # The new one cannot take the pidfile's lock until the old one is gone: under memcheck's
  # load its shutdown took over the 10 s this once allowed. Up to a minute, then SIGKILL.
  for _ in $(seq 1 240); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  libvirtd -d -f "$dir/libvirtd.conf" -p "$dir/libvirtd.pid" {VS_LIBVIRTD_LOCK}>&- || return 1
  for _ in $(seq 1 60); do
    virsh -c "$VS_LIBVIRT_URI" version >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}
