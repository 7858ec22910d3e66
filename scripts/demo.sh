#!/usr/bin/env bash
# Installs what vmscope needs, builds it, makes a demo fleet of nine Debian 12 guest trees
# (debootstrap minbase + openssh-server, then a few hand-made differences), inspects them and
# ranks how each drifted from its peers.
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
guests="web-01 web-02 web-03 web-04 web-05 web-06 web-07 web-08 db-01"
for g in $guests; do
  rm -rf "${demo:?}/$g" && cp -al "$base" "$demo/$g"
  put "$demo/$g/etc/hostname" "$g\n"
done
sed 's/^#PermitRootLogin.*/PermitRootLogin yes/' "$base/etc/ssh/sshd_config" >"$demo/web-02/etc/ssh/sshd_config.new"
rm -f "$demo/web-02/etc/ssh/sshd_config" && mv "$demo/web-02/etc/ssh/sshd_config.new" "$demo/web-02/etc/ssh/sshd_config"
put "$demo/web-02/etc/sysctl.d/60-router.conf" "net.ipv4.ip_forward = 1\n"
put "$demo/db-01/etc/sysctl.d/60-db.conf" "vm.swappiness = 1\nkernel.shmmax = 68719476736\n"
# web-05 writes sshd's documented default out: the same as leaving it commented.
cp "$base/etc/ssh/sshd_config" "$demo/web-05/etc/ssh/sshd_config.new"
echo 'PermitRootLogin prohibit-password' >>"$demo/web-05/etc/ssh/sshd_config.new"
rm -f "$demo/web-05/etc/ssh/sshd_config" && mv "$demo/web-05/etc/ssh/sshd_config.new" "$demo/web-05/etc/ssh/sshd_config"
cp "$base/etc/passwd" "$demo/db-01/etc/passwd.new"
echo 'postgres:x:105:110:PostgreSQL administrator:/var/lib/postgresql:/bin/bash' >>"$demo/db-01/etc/passwd.new"
rm -f "$demo/db-01/etc/passwd" && mv "$demo/db-01/etc/passwd.new" "$demo/db-01/etc/passwd"

echo
echo "== vmscope inspect --format text $demo/web-02 (excerpt)"
"$vmscope" inspect --format text "$demo/web-02" | grep -E '^(# |os:|file:/etc/ssh/sshd_config:|sysctl:|svc:|pkg:openssh-server )'
paths=()
for g in $guests; do paths+=("$demo/$g"); done
"$vmscope" inspect --compact "${paths[@]}" >"$demo/fleet.json"
echo
echo "== the fleet ($demo/fleet.json)"
jq -r '.[] | "\(.name): \(.os.pretty_name), \(.settings | length) settings, \([.settings | keys[] | select(startswith("pkg:"))] | length) packages, \(.skipped | length) skipped"' "$demo/fleet.json"
echo
echo "== vmscope drift --all: each guest ranked against the other eight (alarms = warning or worse)"
"$vmscope" drift --all --top 0 "$demo/fleet.json" >"$demo/drift.json"
jq -r '.[] | "\(.name): \(.alarms) alarm(s)" + ([.findings[] | select(.severity != "info") | "  \(.key) = \(.value) [\(.severity), score \(.score * 1000 | round / 1000)]"] | if length > 0 then "; " + join(";") else "" end)' "$demo/drift.json"
echo
echo "== vmscope drift --format text --top 5 --target web-02 (the others as samples)"
jq '.[1]' "$demo/fleet.json" >"$demo/web-02.json"
jq '[.[] | select(.name != "web-02")]' "$demo/fleet.json" >"$demo/peers.json"
"$vmscope" drift --format text --top 5 --target "$demo/web-02.json" "$demo/peers.json"
echo
echo "== vmscope diff --format text: what web-02 changed since it was cloned from web-01's image"
jq '.[0]' "$demo/fleet.json" >"$demo/web-01.json"
"$vmscope" diff --format text "$demo/web-01.json" "$demo/web-02.json" | grep -v -E 'hostname|:/etc/hosts:|/etc/hostname'

echo
echo "== vmscope analyze --format text: roles found without being told how many, and anomaly"
"$vmscope" analyze --format text "$demo/fleet.json"

echo
echo "== db-01 as a qcow2 disk image, read directly (no appliance)"
bash "$top/scripts/tree-to-image.sh" "$demo/db-01" "$demo/db-01.qcow2" whole
"$vmscope" inspect --stats --backend direct "$demo/db-01.qcow2" >"$demo/db-01.image.json"
if diff <(jq -S .settings "$demo/db-01.image.json") <(jq -S '.[8].settings' "$demo/fleet.json") >/dev/null; then
  echo "the image's $(jq '.settings | length' "$demo/db-01.image.json") settings equal the tree's"
else
  echo "the image's settings differ from the tree's" >&2
  exit 1
fi
