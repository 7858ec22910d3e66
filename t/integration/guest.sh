#!/usr/bin/env bash
# A real running guest, end to end (issue 20): a Linux guest (the host's Debian kernel, the
# debootstrap tree as its ext4 root) boots under a private libvirtd with the QEMU guest agent
# running in it; vmscope reaches the agent, takes a consistent (quiesced) backup-mode snapshot
# of the running guest, leaves it thawed even when the backup job fails, and its document
# equals the one read offline from the same disk after shutdown, but for what the guest changed.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
. "$VS_SRCDIR/t/lib/libvirtd.sh"
. "$VS_SRCDIR/t/lib/guest.sh"
N=26 # the number of tests, for the skips
work=$(tmpdir)
dom=vs-guest-1
cleanup() {
  vs_libvirtd_stop
  rm -rf "$work"
}
trap cleanup EXIT
tree=${VS_DEBOOTSTRAP_CACHE:-$VS_BUILDDIR/t/cache/debootstrap}/root

vs_guest_require $N
# Before the libvirtd lock: a first build takes minutes, and other tests wait for that lock.
vs_guest_image || bail "$VS_GUEST_WHY"
ok 0 "the guest's kernel, initramfs and base image are at hand ($(sed -n 's/^kernel=//p' "$VS_GUEST_CACHE/stamp"), $(sed -n 's/^qemu-ga=//p' "$VS_GUEST_CACHE/stamp"))"
if ! vs_libvirtd_start "$work/libvirt"; then
  skip $((N - 1)) "no private libvirtd: $VS_LIBVIRT_WHY"
  done_testing
  exit $?
fi
chmod 755 "$work"

# 1. It boots, and its agent answers.
if ! vs_guest_boot "$dom" "$work/vm"; then
  ok 1 "the guest boots and its agent answers: $VS_GUEST_WHY"
  skip $((N - 2)) "the guest did not boot"
  done_testing
  exit $?
fi
ok 0 "the guest boots and its agent answers (${VS_GUEST_BOOT_S} s; user space at ${VS_GUEST_USERSPACE_S:-?} s guest time)"
diag "console: $(grep 'vmscope-guest:' "$work/vm/$dom.console" | tr '\n' '|')"

# 2. Through the product: guest-ping, and guest-exec running the guest's own programs.
"$VMSCOPE" send --connect "$VS_LIBVIRT_URI" --compact "$dom" '{"execute":"guest-ping"}' >"$work/ping.out" 2>&1
is "$?:$(cat "$work/ping.out")" "0:{}" "vmscope send guest-ping through libvirt: the agent answers"
"$VMSCOPE" send --connect "$VS_LIBVIRT_URI" --allow guest-exec --wait=60 "$dom" \
  '{"execute":"guest-exec","arguments":{"path":"/bin/cat","arg":["/etc/os-release"]}}' >"$work/exec.out" 2>&1
is "$(jq -r .exit_code "$work/exec.out")" 0 "vmscope send guest-exec --wait runs cat /etc/os-release in the guest"
is "$(jq -r .output "$work/exec.out")" "$(cat "$tree/etc/os-release")" "and prints the guest's own os-release, the debootstrap tree's"
mounts=$(vs_guest_exec "$dom" /bin/cat /proc/self/mounts)
grep -q '^/dev/vda1 / ext4 rw' <<<"$mounts"
ok $? "in the agent's view the guest's ext4 disk is its root file system, read-write (what fsfreeze freezes)"

# 3. A consistent snapshot of the running guest.
freeze_log() { vs_guest_exec "$dom" /bin/cat /run/vs-freeze.log 2>/dev/null; }
is "$(freeze_log)" "" "no freeze before the snapshot"
mkdir -p "$work/bk"
t0=$(vs_guest_now)
"$VMSCOPE" snapshot --connect "$VS_LIBVIRT_URI" --domain "$dom" --mode backup --backup-dir "$work/bk" \
  --stats >"$work/backup.json" 2>"$work/backup.err"
ok $? "vmscope snapshot --mode backup takes the running guest ($(vs_guest_since "$t0") s)"
grep -q 'from a backup job (quiesced: frozen [0-9.]* ms)' "$work/backup.err"
ok $? "and says it was quiesced: $(cat "$work/backup.err")"
freeze_log >"$work/freeze1.log"
# From the hook's freeze line to its thaw line, in the guest's uptime (10 ms resolution).
frozen_ms() { awk '$1 == "freeze" { f = $2 } $1 == "thaw" { t = $2 } END { printf "%.0f", (t - f) * 1000 }' "$1"; }
is "$(cut -d' ' -f1 "$work/freeze1.log" | tr '\n' ' ')" "freeze thaw " \
  "the guest's fsfreeze hook logged a freeze then a thaw during the job (frozen $(frozen_ms "$work/freeze1.log") ms guest time)"
diag "the hook's log: $(tr '\n' ' ' <"$work/freeze1.log")"
is "$(vs_guest_agent "$dom" '{"execute":"guest-fsfreeze-status"}' | jq -r .return)" thawed "after the job the guest's file systems are thawed"
is "$(jq -r '.os.distro + " " + .os.version' "$work/backup.json")" "debian 12" "the document is the running guest's: Debian 12"
is "$(jq -r '.settings["pkg:openssh-server"]' "$work/backup.json")" "$(chroot "$tree" dpkg-query -W -f='${Version}' openssh-server)" \
  "with openssh-server's version as dpkg-query reports it in the tree"
is "$(ls -A "$work/bk")" "" "the job's socket, scratch file and directory are gone afterwards"

# 4. Thawed even when the job fails after the freeze: QEMU (libvirt-qemu) cannot reach a backup
# directory under one only root may enter, so the job does not begin; vmscope made its directory
# there (as root) and froze the guest before asking for the job.
mkdir -m 700 "$work/closed"
"$VMSCOPE" snapshot --connect "$VS_LIBVIRT_URI" --domain "$dom" --mode backup --backup-dir "$work/closed" \
  >"$work/fail.json" 2>"$work/fail.err"
rc=$?
[ $rc -ne 0 ]; ok $? "a backup job QEMU cannot write fails: vmscope exits $rc"
grep -q 'the backup job did not begin' "$work/fail.err"; ok $? "saying why: $(head -c 300 "$work/fail.err")"
freeze_log >"$work/freeze2.log"
is "$(cut -d' ' -f1 "$work/freeze2.log" | tr '\n' ' ')" "freeze thaw freeze thaw " \
  "the guest had been frozen for it, and was thawed (frozen $(tail -n 2 "$work/freeze2.log" >"$work/freeze2.tail" && frozen_ms "$work/freeze2.tail") ms)"
is "$(vs_guest_agent "$dom" '{"execute":"guest-fsfreeze-status"}' | jq -r .return)" thawed "guest-fsfreeze-status says thawed"
"$VMSCOPE" send --connect "$VS_LIBVIRT_URI" --compact "$dom" '{"execute":"guest-ping"}' >/dev/null 2>&1
ok $? "and the agent still answers"

# The agent, killed inside the guest, comes back: the guest's PID 1 starts it again.
ga_pid=$(vs_guest_exec "$dom" /bin/cat /run/vs-ga/qemu-ga.pid)
# guest-exec alone: the agent that would report the kill's exit status is the one killed.
vs_guest_agent "$dom" "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/kill\",\"arg\":[\"${ga_pid:-0}\"]}}" >/dev/null
new_agent() {
  local p
  p=$(vs_guest_exec "$dom" /bin/cat /run/vs-ga/qemu-ga.pid 2>/dev/null) && [ -n "$p" ] && [ "$p" != "$ga_pid" ] && ga_new=$p
}
ga_new=
t0=$(vs_guest_now)
[ -n "$ga_pid" ] && vs_guest_wait 60 new_agent
ok $? "the agent killed inside the guest (pid ${ga_pid:-?}) is started again by its init and answers (pid ${ga_new:-?}, $(vs_guest_since "$t0") s)"

# 5. The document equals the one read offline after shutdown, but for what the guest changed.
vs_guest_exec "$dom" /bin/sh -c \
  "sed -i 's/^#Port 22\$/Port 2200/' /etc/ssh/sshd_config && grep -qx 'Port 2200' /etc/ssh/sshd_config && sync" 2>"$work/sed.err"
ok $? "inside the guest, sshd_config gets Port 2200 (sed through guest-exec) $(cat "$work/sed.err")"
vs_guest_stop "$dom"
ok $? "the guest stops (synced, frozen so that its journal is flushed, destroyed)"
"$VMSCOPE" inspect --backend direct --backing-dir "$VS_GUEST_CACHE" "$work/vm/$dom.qcow2" >"$work/offline.json" 2>"$work/offline.err"
ok $? "vmscope inspect reads the stopped guest's disk offline $(head -c 300 "$work/offline.err")"
# The keys whose values differ (a key on one side only counts), vm:* (the domain's XML) aside.
changed=$(jq -rn --slurpfile a "$work/backup.json" --slurpfile b "$work/offline.json" '
  ($a[0].settings | with_entries(select(.key | startswith("vm:") | not))) as $x |
  ($b[0].settings | with_entries(select(.key | startswith("vm:") | not))) as $y |
  ([$x, $y] | map(keys) | add | unique)[] | select($x[.] != $y[.])' | tr '\n' ' ')
is "$changed" "file:/etc/ssh/sshd_config:Port meta:/etc/ssh/sshd_config:sha256 " \
  "the running guest's document and the offline one differ in the changed setting and its file's digest alone"
diff <(jq -S .os "$work/backup.json") <(jq -S .os "$work/offline.json") >/dev/null
ok $? "and they give the same OS facts"
is "$(jq -r '.settings["file:/etc/ssh/sshd_config:Port"] // "<absent>"' "$work/backup.json"):$(jq -r '.settings["file:/etc/ssh/sshd_config:Port"] // "<absent>"' "$work/offline.json")" \
  "<absent>:2200" "Port: absent (commented out) while running, 2200 offline after the change"
done_testing
