# t/lib/images.sh: disk images made at test time from a directory tree, for the shell tests.
# Source it after t/lib/lib.sh.
#
# vs_xfs_lvm_image TREE OUT.qcow2 [SIZE_MB]
#   Builds OUT.qcow2 (SIZE_MB of virtual disk, default 512: mkfs.xfs refuses much less than
#   300 MiB) in the RHEL/Rocky/Alma default layout, through the libguestfs appliance:
#     /dev/sda1     an MBR partition over the whole disk, an LVM2 physical volume
#     VG "$VS_IMAGES_VG" (default "rl"), holding
#       LV "swap"   8 MiB of swap (mkswap, label "swap")
#       LV "root"   the rest: XFS labelled "root", filled with TREE's contents
#   TREE is copied with tar (owners and groups made 0, modes, symlinks, mtimes kept), so a
#   fstab the tree holds can name /dev/mapper/rl-root, /dev/rl/root, UUID= or LABEL=root.
#   The UUID of the root file system is written to OUT.qcow2.uuid.
#   Needs guestfish and qemu-img (scripts/install-deps.sh installs them); runs the appliance
#   under TCG unless LIBGUESTFS_BACKEND_SETTINGS says otherwise (this host's KVM cannot run it),
#   which takes a minute or so. Returns non-zero, with guestfish's output on stderr, on failure.
vs_xfs_lvm_image() { # TREE OUT.qcow2 [SIZE_MB]
  local tree=$1 out=$2 size=${3:-512} vg=${VS_IMAGES_VG:-rl}
  [ -d "$tree" ] || {
    echo "vs_xfs_lvm_image: $tree is not a directory" >&2
    return 1
  }
  local raw="$out.raw" tar="$out.tar"
  tar --numeric-owner --owner=0 --group=0 -C "$tree" -cf "$tar" . || return 1
  rm -f "$raw"
  truncate -s "${size}M" "$raw" || return 1
  LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct} \
    LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg} \
    timeout 600 guestfish --rw -a "$raw" >"$out.uuid" <<EOF || {
run
part-disk /dev/sda mbr
part-set-mbr-id /dev/sda 1 0x8e
pvcreate /dev/sda1
vgcreate $vg /dev/sda1
lvcreate swap $vg 8
lvcreate-free root $vg 100
mkswap /dev/$vg/swap label:swap
mkfs xfs /dev/$vg/root label:root
mount /dev/$vg/root /
tar-in "$tar" /
umount-all
vfs-uuid /dev/$vg/root
shutdown
EOF
    rm -f "$raw" "$tar"
    return 1
  }
  rm -f "$tar"
  qemu-img convert -f raw -O qcow2 "$raw" "$out" || {
    rm -f "$raw"
    return 1
  }
  rm -f "$raw"
}

# vs_ntfs_image OUT.img WINTREE [SIZE_MB]
#   Builds a raw disk OUT.img (SIZE_MB, default 64) through the libguestfs appliance: an MBR
#   partition holding NTFS (mkntfs), with the hives of WINTREE (t/lib/win_tree.sh's
#   vs_win_tree) in /Windows/System32/config and its cmd.exe in /Windows/System32, as
#   libguestfs's inspection wants them. Needs guestfish; returns non-zero, with guestfish's
#   output on stderr, on failure.
vs_ntfs_image() { # OUT.img WINTREE [SIZE_MB]
  local out=$1 config=$2/WINDOWS/system32/Config
  LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct} \
    LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg} \
    timeout 300 guestfish -N "$out=disk:${3:-64}M" -- \
    part-disk /dev/sda mbr : mkfs ntfs /dev/sda1 : mount /dev/sda1 / : \
    mkdir-p /Windows/System32/config : \
    upload "$config/SOFTWARE" /Windows/System32/config/SOFTWARE : \
    upload "$config/system" /Windows/System32/config/SYSTEM : \
    upload "$config/Sam" /Windows/System32/config/SAM : \
    upload "$2/WINDOWS/system32/cmd.exe" /Windows/System32/cmd.exe >&2
}
