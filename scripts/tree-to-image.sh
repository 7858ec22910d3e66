#!/usr/bin/env bash
# tree-to-image.sh TREE OUT.qcow2 [gpt|whole]: an ext4 file system holding TREE (mke2fs -d),
# on one GPT partition (default) or the whole disk, converted to qcow2. Nothing is mounted.
set -euo pipefail
tree=$1 out=$2 layout=${3:-gpt}
size=$(( $(du -sm "$tree" | cut -f1) * 13 / 10 + 64 ))
tmp=$(mktemp -d "$(dirname "$out")/.tree-to-image-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mke2fs -q -F -t ext4 -d "$tree" "$tmp/root.fs" "${size}M" >/dev/null
if [ "$layout" = whole ]; then
  qemu-img convert -O qcow2 "$tmp/root.fs" "$out"
else
  truncate -s $((size + 2))M "$tmp/disk.raw"
  printf 'label: gpt\nstart=2048, size=%d\n' $((size * 2048)) | sfdisk -q "$tmp/disk.raw"
  dd if="$tmp/root.fs" of="$tmp/disk.raw" bs=1M seek=1 conv=notrunc status=none
  qemu-img convert -O qcow2 "$tmp/disk.raw" "$out"
fi
