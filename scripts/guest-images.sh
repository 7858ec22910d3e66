# scripts/guest-images.sh: guests cloned from one base disk image as thin qcow2 overlays, with
# nothing mounted. Source it (after setting VMSCOPE to the vmscope program), then:
#   vs_base_image TREE RAW QCOW2 SIZE-MIB
#                 an ext4 file system of TREE's files filling RAW (SIZE-MIB), made reproducibly
#                 (fixed UUID, hash seed and time) so that every clone starts from the same
#                 blocks, and QCOW2, the base image, converted from it
#   vs_guest_image RAW QCOW2 OUT [GUEST-FILE LOCAL-FILE]...
#                 OUT: a thin overlay on QCOW2 holding only the blocks that change when each
#                 GUEST-FILE (absolute, its directory existing) is replaced by LOCAL-FILE in a
#                 copy of RAW (with debugfs), as `vmscope patchset make` finds them
vs_base_image() { # TREE RAW QCOW2 SIZE-MIB
  E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 -L root \
    -U 8a3c6f2e-1b7d-4a59-9c0e-3f2d5b6a7c81 -E hash_seed=1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9 \
    -d "$1" "$2" "${4}M" &&
    qemu-img convert -O qcow2 "$2" "$3"
}
vs_guest_image() { # RAW QCOW2 OUT [GUEST-FILE LOCAL-FILE]...
  local raw=$3.raw script=$3.debugfs base_raw=$1 base=$2 out=$3
  shift 3
  cp --sparse=always "$base_raw" "$raw" || return 1
  : >"$script"
  while [ $# -gt 0 ]; do
    printf 'cd %s\nrm %s\nwrite %s %s\n' "$(dirname "$1")" "$(basename "$1")" "$2" "$(basename "$1")" >>"$script"
    shift 2
  done
  # debugfs reports a file to remove that is not there, and goes on: its output is kept beside.
  E2FSPROGS_FAKE_TIME=1700000000 debugfs -w -f "$script" "$raw" >"$script.log" 2>&1 || return 1
  rm -f "$out" "$out.json"
  "$VMSCOPE" patchset make --base "$base" --patched "$raw" -o "$out" >/dev/null || return 1
  rm -f "$raw" "$out.json" "$script" "$script.log"
}
