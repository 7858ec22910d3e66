#!/usr/bin/env bash
# Faults, with the real components:
#   - collectd is stopped with SIGTERM while vmscope_snapshot is inside libguestfs (its
#     appliance launching under emulation, half a minute): it exits within 10 s and leaves no
#     appliance behind;
#   - the guest agent (the real qemu-ga) dies while a command waits for its reply: the caller
#     hears not_connected at once, not at its deadline, and the next command, once the agent
#     is back, is answered;
#   - the disk holding the snapshot pool fills while a document is written: the write fails
#     saying so, the previous document stays whole and newest, no temporary file is left, and
#     once there is room again the next write succeeds.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/collectd.sh"
work=$(tmpdir)
pids=()
mnt=
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; [ -n "$mnt" ] && umount "$mnt"; rm -rf "$work"' EXIT
mk() { mkdir -p "$(dirname "$1")" && printf '%b' "$2" >"$1"; }
mk "$work/tree/etc/os-release" 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
mk "$work/tree/etc/ssh/sshd_config" 'Port 22\nUsePAM yes\n'
mk "$work/tree/etc/hostname" 'g1\n'
bash "$VS_SRCDIR/scripts/tree-to-image.sh" "$work/tree" "$work/g1.qcow2" gpt >/dev/null 2>&1 || bail "cannot make a guest image"
{ echo "<node>" && vs_test_domain g1 5e1d0000-0000-4000-8000-0000000000f1 "$work/g1.qcow2" 1 && echo "</node>"; } >"$work/node.xml"

# ---- SIGTERM while inside libguestfs
if [ "${VS_SANITIZED:-}" = 1 ]; then
  skip 3 "the ASan runtime preloaded into collectd would be inherited by the appliance's qemu"
else
  export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
  export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
  plugindir=$(vs_plugin_dir "$work")
  { vs_collectd_conf "$work" "$plugindir"; cat <<CONF; } >"$work/collectd.conf"
LoadPlugin vmscope_snapshot
<Plugin vmscope_snapshot>
  Connection "test://$work/node.xml"
  Backend guestfs
  DataDir "$work/pool"
  Interval 600
</Plugin>
CONF
  "$COLLECTD" -f -C "$work/collectd.conf" >"$work/collectd.out" 2>&1 &
  cpid=$!
  pids+=($cpid)
  appliance() { pgrep -P "$cpid" -f qemu-system >/dev/null; }
  wait_for 60 appliance
  ok $? "vmscope_snapshot launches a libguestfs appliance for the domain"
  sleep 2
  t0=$(date +%s.%N)
  kill -TERM "$cpid"
  for _ in $(seq 1 60); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.25; done
  took=$(echo "$(date +%s.%N) - $t0" | bc)
  ! kill -0 "$cpid" 2>/dev/null && grep -q 'Exiting normally' "$work/collectd.log"
  ok $? "SIGTERM mid-snapshot: collectd exits normally in ${took} s (at most 10)"
  sleep 1
  ! pgrep -f "qemu-system.*$(basename "$work")" >/dev/null && ! pgrep -f "libguestfs.*overlay" -P 1 >/dev/null
  ok $? "and no appliance is left running"
fi

# ---- the agent dies mid-command
agent_up() {
  rm -f "$work/qga.sock"
  qemu-ga -m unix-listen -p "$work/qga.sock" -t "$work" >"$work/qga.log" 2>&1 &
  qga=$!
  pids+=($qga)
  wait_for 10 test -S "$work/qga.sock"
}
agent_up
is "$("$VMSCOPE" send --compact --agent-socket "$work/qga.sock" '{"execute":"guest-ping"}' 2>&1)" "{}" "the real qemu-ga answers guest-ping"
kill -STOP "$qga" # it takes the connection (the kernel's backlog) but answers nothing
t0=$(date +%s.%N)
"$VMSCOPE" send --timeout 20 --agent-socket "$work/qga.sock" '{"execute":"guest-info"}' >"$work/died.out" 2>&1 &
sender=$!
sleep 1
kill -KILL "$qga"
wait "$sender"
rc=$?
took=$(echo "$(date +%s.%N) - $t0" | bc)
[ $rc = 1 ] && grep -q 'not_connected' "$work/died.out" && [ "$(echo "$took < 5" | bc)" = 1 ]
ok $? "the agent dies while a command waits: not_connected after ${took} s, not at the 20 s deadline ($(head -c 120 "$work/died.out"))"
agent_up
"$VMSCOPE" send --agent-socket "$work/qga.sock" '{"execute":"guest-info"}' | jq -e '.version' >/dev/null
ok $? "the agent back, the next command is answered"

# ---- the pool's disk fills
mnt=$work/small
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=1m tmpfs "$mnt" 2>"$work/mount.err"; then
  mnt=
  skip 5 "cannot mount a small tmpfs here: $(cat "$work/mount.err")"
else
  snap() { "$VMSCOPE" snapshot --connect "test://$work/node.xml" --backend direct --data-dir "$mnt/pool" >/dev/null 2>"$work/snap.err"; }
  snap; ok $? "a first document is written into a pool on a 1 MiB file system"
  first=$(ls "$mnt"/pool/*/*.json)
  sum=$(sha256sum "$first" | cut -d' ' -f1)
  dd if=/dev/zero of="$mnt/filler" bs=4k 2>/dev/null # until the disk is full
  sleep 1.1 # the next document's name is a later second
  snap
  rc=$?
  [ $rc = 1 ] && grep -qi 'no space left' "$work/snap.err"
  ok $? "with the disk full, the next write fails and says why: $(head -n1 "$work/snap.err")"
  [ "$(ls "$mnt"/pool/*/*.json)" = "$first" ] && [ "$(sha256sum "$first" | cut -d' ' -f1)" = "$sum" ] && jq -e .settings "$first" >/dev/null
  ok $? "the previous document is whole, the pool's only one, and loads"
  [ -z "$(find "$mnt/pool" -name '.tmp-*')" ]; ok $? "no temporary file is left behind"
  rm -f "$mnt/filler"
  snap && [ "$(ls "$mnt"/pool/*/*.json | wc -l)" = 2 ]; ok $? "with room again, the next document is written"
fi
done_testing
