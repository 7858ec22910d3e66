/* image.h: read-only access to disk images: raw, and qcow2 (versions 2 and 3, zero and
 * compressed clusters with deflate or zstd, extended L2 entries, backing chains), VHD and VHDX
 * (libvhdi) and VMDK (libvmdk; image_yal.h), and the partitions and file systems on them
 * (libblkid).
 *
 * Images may come from anyone, so every offset in a qcow2 image is checked against the file
 * before it is used, and what we do not read correctly we refuse with a message: encrypted
 * images, external data files, unknown incompatible feature bits. A backing file must lie in
 * an allowed directory (by default the top image's own), so a header cannot make us read
 * /etc/shadow; a VMDK descriptor's extent files obey the same list. Chains are at most
 * VS_IMAGE_MAX_CHAIN deep and may not loop; differencing VHD/VHDX and VMDK images are refused.
 * One image serves one thread at a time. */
#ifndef VS_IMAGE_H
#define VS_IMAGE_H

#include "util.h"

#include <stdint.h>
#include <sys/stat.h>

#define VS_IMAGE_MAX_CHAIN 16

struct vs_image_opts {
  /* Directories backing files may lie in (resolved with realpath). NULL/0: the directory of
   * the top image. */
  const char *const *backing_dirs;
  size_t n_backing_dirs;
  /* "raw", "qcow2", "vpc" (or "vhd"), "vhdx" or "vmdk" to skip probing the top image (as
   * libvirt's XML says); NULL probes. */
  const char *format;
  /* For vs_source_open_image: one format per path (NULL entries use FORMAT). A guest that
   * writes a qcow2 header into a raw disk must not be read as qcow2: pass what libvirt says. */
  const char *const *formats;
  /* For vs_source_open_image: read XFS too (libfsxfs). Unset, an XFS the guest needs is
   * ENOTSUP, left to the appliance: libfsxfs 20201117 is unfit for hostile images (a double
   * free on a crafted one: SECURITY.md), so only a user's explicit choice reads it directly. */
  bool read_xfs;
  /* The file the caller writes its output to (a command's standard output, when a file), or
   * NULL: an image whose chain or extents include it is refused, so the output never lands in
   * an input. */
  const struct stat *output;
};

struct vs_image;

/* PATH may also be an NBD URI ("nbd+unix:///vda?socket=/run/x.sock"), as a libvirt backup job
 * exports a disk: read through libnbd, holes skipped by block status. Only a top image may be
 * one; a backing file name is always a file. */
struct vs_image *vs_image_open(const char *path, const struct vs_image_opts *opts,
                               struct vs_err *err);
bool vs_image_is_nbd_uri(const char *path);
/* What PATH's signature says it is, without opening it as an image: "qcow2", "vhd", "vhdx",
 * "vmdk", or "raw" for none of them; NULL when it cannot be opened or is not a regular file.
 * *RAW_TOO is set when reading it as raw is right too (a fixed VHD: the disk, then a footer).
 * For a user's --image-format to be checked before anything reads the file. */
const char *vs_image_probe_format(const char *path, bool *raw_too);
void vs_image_close(struct vs_image *img);
void vs_image_closep(struct vs_image **img);

const char *vs_image_path(const struct vs_image *img);
/* "raw", "qcow2", "vhd", "vhdx", "vmdk" or "nbd" */
const char *vs_image_format(const struct vs_image *img);
uint64_t vs_image_size(const struct vs_image *img); /* virtual size in bytes */
const struct vs_image *vs_image_backing(const struct vs_image *img);
uint64_t vs_image_cluster_size(const struct vs_image *img); /* 0 for raw */

/* Reads LEN bytes of the virtual disk at OFF, as the guest would see them. */
int vs_image_pread(struct vs_image *img, void *buf, size_t len, uint64_t off, struct vs_err *err);
/* Bytes read so far from IMG's chain's files, or from its NBD export (a hole or zero extent the
 * server described is not read): what reading the guest cost the disk. */
uint64_t vs_image_bytes_read(const struct vs_image *img);

/* What IMG itself (not its backing chain) holds for the cluster at OFF: nothing (reads fall
 * through to the backing file, or zeros without one), zeros (the zero flag), or data. Raw
 * images and NBD exports hold data everywhere. */
enum vs_cluster_state { VS_CLUSTER_UNALLOCATED, VS_CLUSTER_ZERO, VS_CLUSTER_DATA };
int vs_image_cluster_state(struct vs_image *img, uint64_t off, enum vs_cluster_state *state,
                           struct vs_err *err);
/* True when the cluster at OFF reads as zeros without any data being stored for it anywhere
 * in the chain (so two such images need not be read to compare them). */
bool vs_image_cluster_is_hole(struct vs_image *img, uint64_t off, struct vs_err *err);
/* Whether A and B read the same files (device and inode, all the way down their chains): two
 * handles opened by name are the same images, not files renamed in between. */
bool vs_image_same_files(const struct vs_image *a, const struct vs_image *b);
/* Asks the kernel to start reading, in the background, the data IMG itself (not its backing
 * chain) stores for [OFF, OFF+LEN): scattered clusters are then read at once, not one by one
 * as they are asked for. Returns the bytes asked for; or nothing is asked, and -1 returned, when
 * the range's first data is in the page cache already (a warm file: the caller may take what
 * follows to be). */
int64_t vs_image_prefetch(struct vs_image *img, uint64_t off, uint64_t len);
/* Where IMG itself stores the cluster at OFF, as plain data in its own file: true, with *HOST
 * the file offset, for a qcow2 image's allocated cluster that is neither compressed, zero nor
 * made of subclusters and lies inside the file; false for anything else (and for raw, NBD, VHD
 * and VMDK images). Lets a reader that compares whole images take the clusters in the file's
 * order, which for a fragmented file is far from the guest's. */
bool vs_image_stored_at(struct vs_image *img, uint64_t off, uint64_t *host);
/* Where the guest's [OFF, OFF+LEN) lies in IMG's own file, in one piece: true, with *HOST its
 * file offset, for a raw file, and for a qcow2 image that stores every cluster of the range as
 * plain data (as vs_image_stored_at), one after the other, inside the file. */
bool vs_image_stored_run(struct vs_image *img, uint64_t off, uint64_t len, uint64_t *host);
/* The LEN bytes of IMG's own file at HOST (a range vs_image_stored_run or vs_image_stored_at
 * gave), mapped instead of copied: a file in the page cache is then compared where it lies,
 * without the copy pread makes (half a warm patch set's compare). Valid until the next call on
 * IMG or its close; counted in vs_image_bytes_read. NULL with ERR when the range is not inside
 * the file or cannot be mapped. A file cut short after it was opened would raise SIGBUS on
 * reading the mapping: read it with vs_image_cmp_mapped only. */
const uint8_t *vs_image_map_stored(struct vs_image *img, uint64_t host, size_t len,
                                   struct vs_err *err);
/* Compares LEN bytes mapped from A's file (PA) with LEN bytes mapped from B's (PB), a piece of
 * SEG bytes at a time: DIFFERS[i] says whether piece i differs. When either file was cut short
 * while it was read, fails naming it, instead of the SIGBUS killing the process (a handler for
 * SIGBUS is installed on first use; a SIGBUS elsewhere goes to the action there was before). */
int vs_image_cmp_mapped(struct vs_image *a, const uint8_t *pa, struct vs_image *b,
                        const uint8_t *pb, size_t len, size_t seg, bool *differs,
                        struct vs_err *err);
/* The most clusters vs_image_stored_at can find in IMG's own file, each at a place of its own:
 * the file's whole clusters after the header's; 0 when it finds none (not qcow2, extended L2
 * entries, ...). More found than that means clusters sharing places, which a caller listing them
 * should not trust. */
uint64_t vs_image_stored_max(const struct vs_image *img);
/* Reads LEN bytes of IMG's own file at HOST (whole clusters vs_image_stored_at gave), checked to
 * lie inside the file's data, counted in vs_image_bytes_read. */
int vs_image_read_stored(struct vs_image *img, void *buf, size_t len, uint64_t host,
                         struct vs_err *err);
/* vs_image_prefetch for [HOST, HOST+LEN) of IMG's own file. */
int64_t vs_image_prefetch_stored(struct vs_image *img, uint64_t host, uint64_t len);
/* Tells the kernel the whole chain will be read front to back (bigger read-ahead). */
void vs_image_advise_sequential(struct vs_image *img);
/* The image's identity, for telling later that a chain is based on it: SHA-256 of the qcow2
 * header cluster, L1 table and the guest's first and last 64 KiB (of the first 64 KiB for raw),
 * with the virtual size. OUT gets 64 hex digits. */
int vs_image_identity(struct vs_image *img, char out[65], struct vs_err *err);

/* ------------------------------------------------------------ partitions and file systems */

struct vs_volume {
  int number;        /* partition number (1-based), 0 for a whole-disk file system */
  uint64_t offset;   /* bytes from the start of the disk */
  uint64_t size;     /* bytes */
  char fstype[32];   /* blkid TYPE: "ext4", "xfs", "LVM2_member", "crypto_LUKS", "" unknown */
  char uuid[64];     /* file system UUID, "" when none */
  char label[64];    /* file system LABEL */
  char partuuid[64]; /* partition UUID (GPT, or MBR's disk-id-partition) */
  char lv[136];      /* "VG/LV" for an LVM2 logical volume (lvm.h), "" otherwise */
};

/* Finds the file systems on IMG: one per partition of an MBR or GPT table, or the whole disk.
 * Returns the number found (in a malloc'd array) or -1. */
int vs_image_volumes(struct vs_image *img, struct vs_volume **volumes, struct vs_err *err);
/* Fills V's fstype, uuid and label from what libblkid finds at [V->offset, V->offset + V->size)
 * of IMG (the start of a logical volume, lvm.h). */
int vs_image_probe_volume(struct vs_image *img, struct vs_volume *v, struct vs_err *err);

#endif
