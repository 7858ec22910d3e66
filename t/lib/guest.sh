# t/lib/guest.sh: a real booted Linux guest (the host's Debian kernel, a busybox initramfs, the
# debootstrap tree as its ext4 root) running the QEMU guest agent, under the private libvirtd of
# t/lib/libvirtd.sh (source that first, and start it before booting). Then:
#   vs_guest_image          builds or checks the cached guest (scripts/guest-image.sh) in
#                           VS_GUEST_CACHE (default $VS_BUILDDIR/t/cache/guest); call it before
#                           vs_libvirtd_start, so that a first build does not hold the libvirtd
#                           lock (returns 1 with VS_GUEST_WHY set)
#   vs_guest_boot NAME DIR  a transient domain NAME on its own qcow2 overlay of the cached base
#                           (DIR/NAME.qcow2), console in DIR/NAME.console, agent channel at
#                           DIR/NAME.agent; returns once the agent answers guest-ping (at most
#                           VS_GUEST_BOOT_TIMEOUT s, default 180), and sets VS_GUEST_BOOT_S
#                           (create to first answer, host time) and VS_GUEST_USERSPACE_S (the
#                           guest's uptime when its /init started); 1 with VS_GUEST_WHY set when
#                           it does not come up
#   vs_guest_agent NAME JSON [TIMEOUT]
#                           one agent command through libvirt (virsh qemu-agent-command);
#                           prints the reply
#   vs_guest_exec NAME PROGRAM [ARG]...
#                           runs PROGRAM in the guest (guest-exec, then guest-exec-status until
#                           it exits, at most VS_GUEST_EXEC_TIMEOUT s, default 60): its stdout on
#                           stdout, its stderr on stderr, its exit status as ours (124 when it
#                           did not end in time, 125 when the agent failed)
#   vs_guest_wait SECONDS COMMAND...
#                           COMMAND, tried until it succeeds or SECONDS have passed
#   vs_guest_stop NAME      syncs and freezes the guest's file systems (so the disk is clean
#                           on the host: the ext4 journal is flushed), then destroys the domain
# DIR must be one libvirt-qemu can reach (chmod 755 along the way, as backup.sh does).
# Inside the guest: qemu-ga runs chrooted into the ext4 root (guest-exec runs the guest's own
# /bin/sh, sed...), PID 1 restarts it whenever it exits and keeps its pid in /run/vs-ga/qemu-ga.pid,
# and its fsfreeze hook appends
# "freeze UPTIME" / "thaw UPTIME" to /run/vs-freeze.log (tmpfs).
VS_GUEST_CACHE=${VS_GUEST_CACHE:-$VS_BUILDDIR/t/cache/guest}
VS_GUEST_WHY=

vs_guest_image() {
  VS_GUEST_WHY=
  [ "$(id -u)" = 0 ] || { VS_GUEST_WHY="not root (the guest's root tree and image are root's)"; return 1; }
  local tree=${VS_DEBOOTSTRAP_CACHE:-$VS_BUILDDIR/t/cache/debootstrap}/root log rc=0
  log=$(mktemp "${TMPDIR:-/tmp}/vs-guest-image-XXXXXX") || { VS_GUEST_WHY="mktemp failed"; return 1; }
  bash "$VS_SRCDIR/scripts/guest-image.sh" "$VS_GUEST_CACHE" "$tree" 2>"$log" || rc=1
  [ $rc = 0 ] || VS_GUEST_WHY="scripts/guest-image.sh failed: $(tail -n 3 "$log" | tr '\n' ' ')"
  sed 's/^/# /' "$log"
  rm -f "$log"
  return $rc
}

# Seconds since the epoch, to the nanosecond; and B - A to the tenth.
vs_guest_now() { date +%s.%N; }
vs_guest_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Whether KVM runs the guest's kernel. /dev/kvm can open and still run nothing: on a nested
# host whose KVM is kvm_pvm (it runs only kernels built for PVM), the Debian kernel printed not
# a line in 180 s. So the kernel is booted once under KVM, with no root to mount: it prints
# its banner on the serial console at once and panics, and QEMU exits (-no-reboot; 9.4 s under
# TCG here, so a working KVM is far inside the bound); within 10 s, or KVM is taken not to
# work (a KVM too slow for that would be slower than TCG). The answer is kept per host boot,
# for every test suite of the run.
vs_guest_kvm_works() {
  [ -c /dev/kvm ] && (exec 3<>/dev/kvm) 2>/dev/null || return 1
  local boot mark out
  boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null) || boot=unknown
  mark=${TMPDIR:-/tmp}/vs-kvm.$boot
  if [ ! -f "$mark" ]; then
    out=$(mktemp "${TMPDIR:-/tmp}/vs-kvm-XXXXXX") || return 1
    timeout 10 qemu-system-x86_64 -accel kvm -machine pc -m 128 -nodefaults -display none \
      -no-reboot -kernel "$VS_GUEST_CACHE/vmlinuz" -append "console=ttyS0 panic=-1" \
      -serial "file:$out" >/dev/null 2>&1
    if grep -q "Linux version" "$out"; then echo kvm; else echo tcg; fi >"$mark.tmp.$$"
    mv -f "$mark.tmp.$$" "$mark"
    rm -f "$out"
  fi
  [ "$(cat "$mark")" = kvm ]
}

vs_guest_domain_xml() { # NAME OVERLAY CONSOLE-LOG AGENT-SOCKET
  local type=qemu
  # KVM where it runs the guest (above); else QEMU emulates (TCG), as on machines with none.
  if vs_guest_kvm_works; then type=kvm; fi
  cat <<XML
<domain type='$type'>
  <name>$1</name>
  <memory unit='MiB'>256</memory><vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$VS_GUEST_CACHE/vmlinuz</kernel>
    <initrd>$VS_GUEST_CACHE/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$2'/><target dev='vda' bus='virtio'/></disk>
    <serial type='file'><source path='$3'/><target port='0'/></serial>
    <channel type='unix'><source mode='bind' path='$4'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <memballoon model='none'/>
  </devices>
</domain>
XML
}

vs_guest_agent() { # NAME JSON [TIMEOUT]
  virsh -c "$VS_LIBVIRT_URI" qemu-agent-command --timeout "${3:-5}" "$1" "$2" 2>&1
}

vs_guest_is_running() { # NAME
  [ "$(virsh -c "$VS_LIBVIRT_URI" domstate "$1" 2>/dev/null | head -n1)" = running ]
}

vs_guest_boot() { # NAME DIR
  vs_guest_boot_on "$1" "$2" "$VS_GUEST_CACHE/base.qcow2"
}

vs_guest_exec() { # NAME PROGRAM [ARG]...
  local name=$1 req reply pid st deadline code args a
  shift
  # Each argument made a JSON string on its own (jq would take "-c" among --args for its option).
  args=$(for a in "${@:2}"; do printf '%s' "$a" | jq -Rs .; done | jq -cs .)
  req=$(jq -cn --arg p "$1" --argjson a "$args" '{execute: "guest-exec", arguments: {path: $p, arg: $a, "capture-output": true}}')
  reply=$(vs_guest_agent "$name" "$req") || { echo "guest-exec $1: $reply" >&2; return 125; }
  pid=$(jq -r '.return.pid' <<<"$reply")
  deadline=$(($(date +%s) + ${VS_GUEST_EXEC_TIMEOUT:-60}))
  while :; do
    st=$(vs_guest_agent "$name" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") ||
      { echo "guest-exec-status $pid: $st" >&2; return 125; }
    [ "$(jq -r .return.exited <<<"$st")" = true ] && break
    [ "$(date +%s)" -ge "$deadline" ] && { echo "guest-exec $1: still running after ${VS_GUEST_EXEC_TIMEOUT:-60} s" >&2; return 124; }
    sleep 0.1
  done
  jq -r '.return["out-data"] // ""' <<<"$st" | base64 -d
  jq -r '.return["err-data"] // ""' <<<"$st" | base64 -d >&2
  code=$(jq -r 'if .return.exitcode != null then .return.exitcode else 128 + (.return.signal // 0) end' <<<"$st")
  return "$code"
}

# vs_guest_put NAME FILE GUEST-PATH: copies the host's FILE to GUEST-PATH through the agent's file
# calls, 48 KiB a call (the agent's reply and request sizes are bounded), mode 0755.
vs_guest_put() {
  local h c chunks
  chunks=$(mktemp -d "${TMPDIR:-/tmp}/vs-put-XXXXXX") || return 1
  split -b 49152 "$2" "$chunks/c." || { rm -rf "$chunks"; return 1; }
  h=$(vs_guest_agent "$1" "$(jq -cn --arg p "$3" '{execute: "guest-file-open", arguments: {path: $p, mode: "w"}}')" 30 |
    jq -e .return) || { echo "guest-file-open $3 failed" >&2; rm -rf "$chunks"; return 1; }
  local written=1
  for c in "$chunks"/c.*; do
    vs_guest_agent "$1" "$(jq -cn --argjson h "$h" --arg b "$(base64 -w0 "$c")" '{execute: "guest-file-write", arguments: {handle: $h, "buf-b64": $b}}')" 30 |
      jq -e .return >/dev/null || { echo "guest-file-write into $3 failed" >&2; written=0; break; }
  done
  rm -rf "$chunks"
  # Closed on every path: the agent keeps an open handle until it is, a failed put included.
  vs_guest_agent "$1" "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}" 30 | jq -e .return >/dev/null &&
    [ "$written" = 1 ] && vs_guest_exec "$1" /bin/chmod 755 "$3" || { echo "cannot write, close or chmod $3 in the guest" >&2; return 1; }
}

# vs_guest_pause_start NAME ARG...: starts /run/vs-pause in the guest (bench/guest_pause.c, put
# there by vs_guest_put) with ARG... ([--write] PATH OFFSET) and its ready and stop files, and
# returns once it runs; its agent pid is left in VS_GUEST_PAUSE_PID.
vs_guest_pause_start() {
  local name=$1 req
  shift
  vs_guest_exec "$name" /bin/rm -f /run/vs-pause.ready /run/vs-pause.stop || return 1
  req=$(jq -cn --args '{execute: "guest-exec", arguments: {path: "/run/vs-pause", arg: ($ARGS.positional + ["/run/vs-pause.ready", "/run/vs-pause.stop", "60"]), "capture-output": true}}' -- "$@")
  VS_GUEST_PAUSE_PID=$(vs_guest_agent "$name" "$req" 30 | jq -e .return.pid) || { echo "cannot start /run/vs-pause in the guest" >&2; return 1; }
  vs_guest_wait 30 vs_guest_exec "$name" /usr/bin/test -e /run/vs-pause.ready || {
    echo "/run/vs-pause did not start in the guest" >&2
    # Ask it to stop, so that a late start does not keep probing under the next measure.
    vs_guest_exec "$name" /usr/bin/touch /run/vs-pause.stop >/dev/null 2>&1
    return 1
  }
}

# vs_guest_pause_stop NAME: stops the helper vs_guest_pause_start started and prints its line.
vs_guest_pause_stop() {
  local st out
  vs_guest_exec "$1" /usr/bin/touch /run/vs-pause.stop || return 1
  for _ in $(seq 1 100); do
    st=$(vs_guest_agent "$1" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$VS_GUEST_PAUSE_PID}}" 30)
    [ "$(jq -r .return.exited <<<"$st")" = true ] && break
    sleep 0.1
  done
  out=$(jq -r '.return["out-data"] // ""' <<<"$st" | base64 -d)
  [ "$(jq -r .return.exitcode <<<"$st")" = 0 ] && [ -n "$out" ] ||
    { echo "/run/vs-pause failed: $out $(jq -r '.return["err-data"] // ""' <<<"$st" | base64 -d)" >&2; return 1; }
  echo "$out"
}

# vs_guest_wait SECONDS COMMAND...: runs COMMAND (an agent round trip, say) until it succeeds (0)
# or SECONDS have passed (1), twice a second; the bound is in time, however long each try takes.
vs_guest_wait() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

vs_guest_stop() { # NAME
  local name=$1
  if vs_guest_is_running "$name"; then
    vs_guest_exec "$name" /bin/sync >/dev/null 2>&1
    vs_guest_agent "$name" '{"execute":"guest-fsfreeze-freeze"}' 30 >/dev/null
    virsh -c "$VS_LIBVIRT_URI" destroy "$name" >/dev/null 2>&1
  fi
  # A transient domain is gone once destroyed.
  local _
  for _ in $(seq 1 120); do
    virsh -c "$VS_LIBVIRT_URI" domstate "$name" >/dev/null 2>&1 || return 0
    sleep 0.25
  done
  return 1
}

# vs_guest_boot_on NAME DIR BACKING: vs_guest_boot, but on an overlay DIR/NAME.qcow2 of BACKING
# (a qcow2 image the test made, whose chain ends at the cached base; QEMU must be able to read
# it) instead of the base itself. The same variables are set, the same status returned.
vs_guest_boot_on() {
  local name=$1 dir=$2 backing=$3 t0
  VS_GUEST_WHY='' VS_GUEST_BOOT_S='' VS_GUEST_USERSPACE_S=''
  if ! mkdir -p "$dir" || ! chmod 755 "$dir"; then
    VS_GUEST_WHY="cannot make $dir"
    return 1
  fi
  rm -f "$dir/$name.qcow2" "$dir/$name.console" "$dir/$name.agent"
  qemu-img create -q -f qcow2 -b "$backing" -F qcow2 "$dir/$name.qcow2" ||
    { VS_GUEST_WHY="qemu-img create failed for the overlay $dir/$name.qcow2 of $backing"; return 1; }
  chmod 644 "$dir/$name.qcow2"
  vs_guest_domain_xml "$name" "$dir/$name.qcow2" "$dir/$name.console" "$dir/$name.agent" >"$dir/$name.xml"
  t0=$(vs_guest_now)
  if ! virsh -c "$VS_LIBVIRT_URI" create "$dir/$name.xml" >"$dir/$name.create" 2>&1; then
    VS_GUEST_WHY="virsh create failed: $(tail -n 3 "$dir/$name.create")"
    return 1
  fi
  vs_guest_await "$name" "$dir" "$t0"
}

# vs_guest_await NAME DIR T0: waits until the agent of domain NAME (created at T0, host time, with
# its console in DIR/NAME.console) answers guest-ping, at most VS_GUEST_BOOT_TIMEOUT s (default
# 180); sets VS_GUEST_BOOT_S and VS_GUEST_USERSPACE_S as vs_guest_boot does (1 with VS_GUEST_WHY
# when the domain stops or the agent does not answer in time).
vs_guest_await() {
  local name=$1 dir=$2 t0=$3 deadline
  deadline=$(($(date +%s) + ${VS_GUEST_BOOT_TIMEOUT:-180}))
  until vs_guest_agent "$name" '{"execute":"guest-ping"}' 2 >"$dir/$name.ping"; do
    if ! vs_guest_is_running "$name"; then
      VS_GUEST_WHY="the domain stopped while booting; its console: $(tail -n 5 "$dir/$name.console" 2>/dev/null | tr '\n' '|')"
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      VS_GUEST_WHY="no answer from the guest agent within ${VS_GUEST_BOOT_TIMEOUT:-180} s ($(cat "$dir/$name.ping")); its console: $(tail -n 5 "$dir/$name.console" 2>/dev/null | tr '\n' '|')"
      return 1
    fi
    sleep 0.5
  done
  VS_GUEST_BOOT_S=$(vs_guest_since "$t0")
  VS_GUEST_USERSPACE_S=$(sed -n 's/.*vmscope-guest: user space at \([0-9.]*\) s.*/\1/p' "$dir/$name.console" | tail -n1)
  return 0
}

# vs_guest_peers DIR NAME...: stopped domains NAME... of the guest's shape (its XML), each on
# its own overlay DIR/NAME.qcow2 of the cached base, defined in the private libvirtd. Such
# definitions outlive libvirtd: vs_guest_undefine them in the test's cleanup.
vs_guest_peers() {
  local dir=$1 p
  shift
  for p; do
    qemu-img create -q -f qcow2 -b "$VS_GUEST_CACHE/base.qcow2" -F qcow2 "$dir/$p.qcow2" &&
      chmod 644 "$dir/$p.qcow2" &&
      vs_guest_domain_xml "$p" "$dir/$p.qcow2" "$dir/$p.console" "$dir/$p.agent" >"$dir/$p.xml" &&
      virsh -c "$VS_LIBVIRT_URI" define "$dir/$p.xml" >/dev/null || return 1
  done
}
vs_guest_undefine() { # NAME...
  local p
  for p; do virsh -c "$VS_LIBVIRT_URI" undefine "$p" >/dev/null 2>&1; done
}

# vs_guest_loop_conf WORK PLUGINDIR DOMAIN [LINE...]: the collectd.conf of the closed loop
# (t/lib/collectd.sh's vs_collectd_conf first): vmscope_snapshot takes every domain by backup
# jobs every 2 s into WORK/pool (the peers' base allowed), vmscope_drift ranks them every 2 s,
# and vmscope_action's rule root-login has DOMAIN's agent remove "PermitRootLogin yes" from
# its sshd_config when that drifts (ThawTimeout 3, RetryBackoff 2); each LINE is added to
# vmscope_action's block.
vs_guest_loop_conf() {
  local work=$1 plugindir=$2 dom=$3 fix fix_json line
  shift 3
  mkdir -p "$work/bk"
  fix="sed -i '/^PermitRootLogin yes\$/d' /etc/ssh/sshd_config && sync"
  fix_json=$(jq -cn --arg c "$fix" '{execute: "guest-exec", arguments: {path: "/bin/sh", arg: ["-c", $c], "capture-output": true}}')
  fix_json=$(sed 's/\\/\\\\/g; s/"/\\"/g' <<<"$fix_json") # a collectd config string
  vs_collectd_conf "$work" "$plugindir"
  cat <<CONF
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "$VS_LIBVIRT_URI"
  SnapshotMode backup
  BackupDir "$work/bk"
  BackingDir "$VS_GUEST_CACHE" # the peers' overlays' base
  DataDir "$work/pool"
  Interval 2
</Plugin>
LoadPlugin vmscope_drift
<Plugin vmscope_drift>
  DataDir "$work/pool"
  Interval 2
  WarningScore 0.7 # alone among 9 agreeing peers scores 0.9
</Plugin>
LoadPlugin vmscope_action
<Plugin vmscope_action>
  Connection "$VS_LIBVIRT_URI"
  AllowCommand "guest-exec"
  ThawTimeout 3
CONF
  for line; do printf '  %s\n' "$line"; done
  cat <<CONF
  <Rule "root-login">
    Match Plugin "vmscope_drift" Type "config_drift" Severity "[wf]*" Meta "key" "file:/etc/ssh/sshd_config:PermitRootLogin"
    Domain "$dom"
    Action "agent" "$fix_json"
    RetryBackoff 2
  </Rule>
</Plugin>
CONF
}

# vs_guest_require N [WHY-NOT-UNDER-MEMCHECK]: skips the test's N checks and exits when the real
# guest cannot run here: not root (its tree, image and the private libvirtd need root), or,
# when WHY-NOT-UNDER-MEMCHECK is given, under the valgrind suite (the reason is printed).
vs_guest_require() {
  local why=
  [ "$(id -u)" = 0 ] || why="not root: the guest's tree, its image and the private libvirtd need root"
  [ -z "$why" ] && [ -n "${2:-}" ] && [ "${VS_VALGRIND:-}" = 1 ] && why="not under valgrind ($2)"
  [ -z "$why" ] && return 0
  skip "$1" "$why"
  done_testing
  exit $?
}
