#!/usr/bin/env bash
# Installs what vmscope needs, builds it, makes a demo fleet of three Debian 12 guest trees
# (debootstrap minbase + openssh-server, then a few hand-made differences) and inspects them.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
demo=${VS_DEMO_DIR:-/var/tmp/vmscope-demo}
bash "$top/scripts/install-deps.sh"
bash "$top/scripts/build.sh" build
vmscope="$top/build/vmscope"

base="$demo/base"
[ -f "$base/.vmscope-complete" ] || echo "demo: building a Debian 12 tree with debootstrap (once, about a minute)" >&2
bash "$top/scripts/debootstrap-tree.sh" "$base"

# Guests share the base's files through hard links; a file a guest changes is replaced, not
# written through, so the base stays as it was.
put() { rm -f "$1" && printf '%b' "$2" >"$1"; }
for g in web-01 web-02 db-01; do
  rm -rf "${demo:?}/$g" && cp -al "$base" "$demo/$g"
  put "$demo/$g/etc/hostname" "$g\n"
done
sed 's/^#PermitRootLogin.*/PermitRootLogin yes/' "$base/etc/ssh/sshd_config" >"$demo/web-02/etc/ssh/sshd_config.new"
rm -f "$demo/web-02/etc/ssh/sshd_config" && mv "$demo/web-02/etc/ssh/sshd_config.new" "$demo/web-02/etc/ssh/sshd_config"
put "$demo/web-02/etc/sysctl.d/60-router.conf" "net.ipv4.ip_forward = 1\n"
put "$demo/db-01/etc/sysctl.d/60-db.conf" "vm.swappiness = 1\nkernel.shmmax = 68719476736\n"
cp "$base/etc/passwd" "$demo/db-01/etc/passwd.new"
echo 'postgres:x:105:110:PostgreSQL administrator:/var/lib/postgresql:/bin/bash' >>"$demo/db-01/etc/passwd.new"
rm -f "$demo/db-01/etc/passwd" && mv "$demo/db-01/etc/passwd.new" "$demo/db-01/etc/passwd"

echo
echo "== vmscope inspect --format text $demo/web-02 (excerpt)"
"$vmscope" inspect --format text "$demo/web-02" | grep -E '^(# |os:|file:/etc/ssh/sshd_config:|sysctl:|svc:|pkg:openssh-server )'
"$vmscope" inspect --compact "$demo/web-01" "$demo/web-02" "$demo/db-01" >"$demo/fleet.json"
echo
echo "== the fleet ($demo/fleet.json)"
jq -r '.[] | "\(.name): \(.os.pretty_name), \(.settings | length) settings, \([.settings | keys[] | select(startswith("pkg:"))] | length) packages, \(.skipped | length) skipped"' "$demo/fleet.json"
echo
echo "== settings whose values are not the same on every guest (hostnames and digests aside)"
jq -r '
  (map(.settings | keys) | add | unique) as $keys
  | [.[] | {name, settings}] as $docs
  | $keys[]
  | select(test("sha256$|hostname") | not) as $k
  | [$docs[] | (.settings[$k] // "<absent>")] as $vals
  | select(($vals | unique | length) > 1)
  | "\($k): " + ([$docs, $vals] | transpose | map("\(.[0].name)=\(.[1])") | join("  "))
' "$demo/fleet.json"

echo
echo "== db-01 as a qcow2 disk image, read directly (no appliance)"
bash "$top/scripts/tree-to-image.sh" "$demo/db-01" "$demo/db-01.qcow2" whole
"$vmscope" inspect --stats --backend direct "$demo/db-01.qcow2" >"$demo/db-01.image.json"
if diff <(jq -S .settings "$demo/db-01.image.json") <(jq -S '.[2].settings' "$demo/fleet.json") >/dev/null; then
  echo "the image's $(jq '.settings | length' "$demo/db-01.image.json") settings equal the tree's"
else
  echo "the image's settings differ from the tree's" >&2
  exit 1
fi
