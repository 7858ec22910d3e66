#!/usr/bin/env bash
# debootstrap-tree.sh DEST: a Debian 12 minbase tree with openssh-server at DEST, built once
# (DEST/.vmscope-complete marks a finished one) from the mirror apt already uses here.
set -euo pipefail
dest=$1
[ -f "$dest/.vmscope-complete" ] && exit 0
mkdir -p "$(dirname "$dest")"
# Tests running in parallel may ask for the same tree: one builds it, the others wait.
exec 9>"$dest.lock"
flock 9
[ -f "$dest/.vmscope-complete" ] && exit 0
mirror=$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$dest.tmp" && mkdir -p "$(dirname "$dest")"
echo "debootstrap bookworm from $mirror into $dest" >&2
if ! debootstrap --variant=minbase --include=openssh-server bookworm "$dest.tmp" "$mirror" >"$dest.log" 2>&1; then
  tail -n 20 "$dest.log" >&2
  exit 1
fi
rm -rf "$dest" && mv "$dest.tmp" "$dest" && touch "$dest/.vmscope-complete"
