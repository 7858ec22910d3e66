#!/usr/bin/env bash
# The README's first command on a fresh Debian 12 system, all but its debootstrap (below): a
# copy of the debootstrap tree (minbase and openssh-server: no compiler, no collectd, none of
# vmscope's libraries) as a chroot with this machine's apt sources, the source files in
# /root/vmscope, and `bash scripts/demo.sh` run there as root. It must install what it needs
# with apt-get, build, and run the demo to its end, printing the findings and writing the
# report.
# The Debian tree the demo builds once with debootstrap is put in its place beforehand, as a
# second run of the command finds it: building it took 63 of the command's 263 s on an idle
# machine, and scripts/debootstrap-tree.sh builds it on CI's own fresh machine in
# t/integration/debootstrap.sh. That the command installs debootstrap is checked here.
# The plain suite only (it downloads packages and takes a few minutes).
. "${VS_SRCDIR:-$(dirname "$0")/../..}/t/lib/lib.sh"
if [ "${VS_SANITIZED:-}" = 1 ] || [ "${VS_VALGRIND:-}" = 1 ]; then
  skip 1 "the plain suite runs the README's command on a fresh system"
  done_testing
  exit $?
fi
[ "$(id -u)" = 0 ] || bail "a chroot needs root"
cache=${VS_DEBOOTSTRAP_CACHE:-$VS_BUILDDIR/t/cache/debootstrap}
bash "$VS_SRCDIR/scripts/debootstrap-tree.sh" "$cache/root" >/dev/null 2>&1 || bail "no debootstrap tree at $cache/root (see t/integration/debootstrap.sh)"
work=$(tmpdir)
fresh=$work/root
# Everything mounted under the chroot (ours, and whatever the command mounts inside it) comes off
# before the tree goes; rm stays on the tree's own file system whatever happens.
unmount_all() {
  findmnt -rn -o TARGET | awk -v r="$fresh" 'index($0, r "/") == 1' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
  done
}
trap 'unmount_all; rm -rf --one-file-system "$work"' EXIT
cp -a "$cache/root" "$fresh" || bail "cannot copy the debootstrap tree"
rm -f "$fresh/.vmscope-complete"
# A /dev of its own (nothing of the machine's /dev is reachable from the chroot), and /proc.
mount -t tmpfs -o mode=755 vs-dev "$fresh/dev" && mount -t proc proc "$fresh/proc" || bail "cannot mount /dev and /proc in the chroot"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<<"$d"
  mknod -m 666 "$fresh/dev/$name" c "$major" "$minor"
done
ln -s /proc/self/fd "$fresh/dev/fd" && ln -s fd/0 "$fresh/dev/stdin" && ln -s fd/1 "$fresh/dev/stdout" && ln -s fd/2 "$fresh/dev/stderr"
mkdir -m 1777 "$fresh/dev/shm"
# This machine's apt configuration and name service, as a new machine of its kind has them.
cp /etc/resolv.conf "$fresh/etc/resolv.conf"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then rm -f "$fresh/etc/apt/sources.list"; fi
cp -a /etc/apt/sources.list* "$fresh/etc/apt/" 2>/dev/null
cp -a /etc/apt/apt.conf.d/. "$fresh/etc/apt/apt.conf.d/"
vs_copy_source "$fresh/root/vmscope" || bail "cannot copy the source"
mkdir -p "$fresh/var/tmp/vmscope-demo" && cp -a "$cache/root" "$fresh/var/tmp/vmscope-demo/base" || bail "cannot copy the demo's Debian tree"
in_chroot() { chroot "$fresh" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
in_chroot sh -c 'command -v gcc || command -v make || command -v collectd || command -v qemu-img || test -e /usr/include/jansson.h'
is $? 1 "the fresh system has no compiler, make, collectd, qemu-img or vmscope's libraries"

start=$(date +%s)
in_chroot bash -c 'cd /root/vmscope && bash scripts/demo.sh' >"$work/out" 2>"$work/err"
rc=$?
ok $rc "bash scripts/demo.sh runs to its end on the fresh system in $(($(date +%s) - start)) s (installing, building, the demo)"
[ $rc -eq 0 ] || tail -n 20 "$work/err" | sed 's/^/# /'
in_chroot sh -c 'command -v debootstrap' >/dev/null
ok $? "it installed debootstrap, which builds the demo's tree on a first run"
grep -qE '^(WARNING|FAILURE) web-02 config_drift: PermitRootLogin is yes on web-02' "$work/out" &&
  grep -q '^WARNING web-04 feature_change: ' "$work/out" && grep -q '^10 VMs, 2 roles$' "$work/out"
ok $? "it prints the findings (web-02's misconfiguration, web-04's change) and the two roles"
html=$fresh/var/tmp/vmscope-demo/report.html
[ -s "$html" ] && grep -q '<svg' "$html" && grep -q 'PermitRootLogin' "$html"
ok $? "and writes the HTML report"
done_testing
