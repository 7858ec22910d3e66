#!/usr/bin/env bash
# Hostile guests, end to end through vmscope inspect (t/unit/hostile.c has the rest: symlink
# loops and escapes, a 4 GiB sparse file, FIFOs, devices, names with newlines and bad UTF-8,
# binary junk; t/integration/image.sh the hostile qcow2 headers):
#   - 100,000 files in a watched directory (/etc/sysctl.d, /etc/sudoers.d): a document, in
#     bounded memory, within a deadline;
#   - a guest whose /etc holds a hard link to its own /etc/shadow, and a symlink to the host's
#     /etc/shadow, read from its disk image: the guest's file through the link, nothing of the
#     host's.
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
work=$(tmpdir)
trap 'rm -rf "$work"' EXIT
[ -x /usr/bin/time ] || bail "/usr/bin/time is not installed (scripts/install-deps.sh installs it)"

if [ "${VS_VALGRIND:-}" = 1 ]; then
  # 10,000 sudoers files parsed by Augeas under memcheck took 150 s of its suite's time; the
  # ASan suite (leak check on) and the plain one run the 100,000 files, and memcheck sees the
  # same directory walk and bounds on small trees in t/unit/hostile and t/unit/extract.
  skip 6 "the plain and ASan suites read the 100,000-file tree"
else
t=$work/many
mkdir -p "$t/etc/sysctl.d" "$t/etc/sudoers.d"
printf 'ID=debian\nVERSION_ID="12"\n' >"$t/etc/os-release"
python3 - "$t/etc" <<'PY'
import os, sys
etc = sys.argv[1]
for i in range(50000):
    with open(os.path.join(etc, "sysctl.d", "%05d.conf" % i), "w") as f:
        f.write("net.core.k%d = %d\n" % (i % 500, i))
    with open(os.path.join(etc, "sudoers.d", "u%05d" % i), "w") as f:
        f.write("u%d ALL=(ALL) NOPASSWD: ALL\n" % i)
PY
is "$(find "$t/etc" -type f | wc -l)" 100001 "a guest tree with 100,000 files in /etc/sysctl.d and /etc/sudoers.d"
/usr/bin/time -f '%M %e' -o "$work/time" timeout 300 "$VMSCOPE" inspect "$t" >"$work/many.json" 2>"$work/many.err"
rc=$?
read -r kib secs <"$work/time" 2>/dev/null
ok $rc "vmscope inspect makes its document (${secs:-?} s, peak RSS ${kib:-?} KiB)"
if [ "${VS_SANITIZED:-}" = 1 ]; then
  skip 1 "under ASan the peak RSS is its own (the plain run checks it)"
else
  [ "${kib:-999999}" -lt 262144 ]; ok $? "in bounded memory: ${kib:-?} KiB < 256 MiB"
fi
is "$(jq '[.settings | keys[] | select(startswith("sysctl:net.core.k"))] | length' "$work/many.json")" 500 \
  "the 500 distinct sysctl keys, each at the value of the last file that sets it"
is "$(jq -r '.settings["sysctl:net.core.k499"]' "$work/many.json")" 49999 "sysctl.d applied in order (the last file wins)"
n_files=$(jq '[.settings | keys[] | select(startswith("file:/etc/sudoers.d/")) | split(":")[1]] | unique | length' "$work/many.json")
why=$(jq -r '.skipped[] | select(.path == "/etc/sudoers.d/*") | .reason' "$work/many.json")
[ "$n_files" -eq 10000 ] && grep -q 'matches more than 10000 paths' <<<"$why"
ok $? "sudoers.d: the first $n_files files parsed, and the document says the rest were not read: $why"
fi

# Hard and symbolic links in a guest image.
g=$work/guest
mkdir -p "$g/etc/ssh"
printf 'ID=debian\nVERSION_ID="12"\n' >"$g/etc/os-release"
printf 'root:guest-only-hash:19000:0:99999:7:::\n' >"$g/etc/shadow"
ln "$g/etc/shadow" "$g/etc/ssh/hard.conf"
ln -s /etc/shadow "$g/etc/ssh/abs.conf"
ln -s ../../../../../../../etc/shadow "$g/etc/ssh/rel.conf"
printf '/etc/ssh/hard.conf -\n/etc/ssh/abs.conf -\n/etc/ssh/rel.conf -\n' >"$work/watch"
bash "$VS_SRCDIR/scripts/tree-to-image.sh" "$g" "$work/guest.qcow2" gpt >/dev/null 2>&1
ok $? "a guest image with a hard link to its /etc/shadow and symlinks to /etc/shadow (absolute, and relative past the root)"
"$VMSCOPE" inspect --backend direct --watch "$work/watch" "$work/guest.qcow2" >"$work/guest.json" 2>"$work/guest.err"
ok $? "vmscope inspect reads it directly"
want=$(sha256sum "$g/etc/shadow" | cut -d' ' -f1)
host=$(sha256sum /etc/shadow | cut -d' ' -f1)
for f in hard abs rel; do
  got=$(jq -r --arg k "meta:/etc/ssh/$f.conf:sha256" '.settings[$k] // "none"' "$work/guest.json")
  [ "$got" = "$want" ] && [ "$got" != "$host" ]; ok $? "/etc/ssh/$f.conf is the guest's shadow, never the host's ($got)"
done
done_testing
