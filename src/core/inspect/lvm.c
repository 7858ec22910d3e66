/* lvm.c: LVM2 logical volumes through libvslvm (lvm.h). */
#include "lvm.h"
#include "bfio.h"
#include "dl.h"

#include <errno.h>
#include <inttypes.h>
/* Debian's libvslvm carries its own copy of libbfio, exported, and its header then leaves the
 * bfio functions out. It calls libbfio through the PLT (no -Bsymbolic), so one copy, the first
 * the dynamic linker finds, serves the whole process: libvhdi's, opened before libvslvm
 * (bfio.h). */
#define LIBVSLVM_HAVE_BFIO 1
#include <libvslvm.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libvslvm, opened on first use (dl.h), after libbfio. */
/* clang-format off */
#define VSLVM_SYMBOLS(X) X(libvslvm_error_free) X(libvslvm_error_sprint) X(libvslvm_handle_close)  \
  X(libvslvm_handle_free) X(libvslvm_handle_get_volume_group) X(libvslvm_handle_initialize)        \
  X(libvslvm_handle_open_file_io_handle) X(libvslvm_logical_volume_free)                           \
  X(libvslvm_logical_volume_get_name) X(libvslvm_logical_volume_get_number_of_segments)            \
  X(libvslvm_logical_volume_get_segment) X(libvslvm_physical_volume_free)                          \
  X(libvslvm_physical_volume_get_identifier) X(libvslvm_physical_volume_get_name)                  \
  X(libvslvm_segment_free) X(libvslvm_segment_get_number_of_stripes)                               \
  X(libvslvm_segment_get_offset) X(libvslvm_segment_get_size) X(libvslvm_segment_get_stripe)       \
  X(libvslvm_stripe_free) X(libvslvm_stripe_get_data_area_offset)                                  \
  X(libvslvm_stripe_get_physical_volume_name) X(libvslvm_volume_group_free)                        \
  X(libvslvm_volume_group_get_logical_volume) X(libvslvm_volume_group_get_name)                    \
  X(libvslvm_volume_group_get_number_of_logical_volumes)                                           \
  X(libvslvm_volume_group_get_number_of_physical_volumes)                                          \
  X(libvslvm_volume_group_get_physical_volume)
/* clang-format on */
VS_DL_LIBRARY(vslvm_lib, VS_SONAME_VSLVM, "libvslvm1", VSLVM_SYMBOLS);

#define META_READ_BUDGET (16u << 20)
#define MAX_LVS 256

/* Fills ERR with CODE and WHAT, with libvslvm's reason, and frees E. */
static int fail(struct vs_err *err, const struct vs_bfio *io, int code, libvslvm_error_t **e,
                const char *what) {
  char why[512] = "";
  if (*e && sym_libvslvm_error_sprint(*e, why, sizeof(why)) < 0) why[0] = '\0';
  sym_libvslvm_error_free(e);
  return vs_bfio_fail(err, io, "libvslvm", META_READ_BUDGET >> 20, code, what, why);
}

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* The start of the physical volume's data area (pe_start), in bytes from its start: the first
 * data area descriptor of the label ("LABELONE" in one of the first four sectors). */
static int data_area_start(struct vs_image *img, const struct vs_volume *pv, uint64_t *start,
                           const char *what, struct vs_err *err) {
  uint8_t buf[2048];
  if (pv->size < sizeof(buf))
    return vs_err_set(err, EINVAL, "%s: too small for an LVM2 label", what);
  if (vs_image_pread(img, buf, sizeof(buf), pv->offset, err) < 0) return -1;
  for (size_t s = 0; s < 4; s++) {
    const uint8_t *l = buf + 512 * s;
    if (memcmp(l, "LABELONE", 8) != 0 || memcmp(l + 24, "LVM2 001", 8) != 0) continue;
    uint32_t off =
        (uint32_t)l[20] | (uint32_t)l[21] << 8 | (uint32_t)l[22] << 16 | (uint32_t)l[23] << 24;
    if (off < 32 || off > 512 - 32 - 8 - 16) break;
    const uint8_t *d = l + off + 32 + 8; /* after the PV's uuid and size */
    *start = le64(d);
    if (*start == 0 || *start >= pv->size)
      return vs_err_set(err, EINVAL,
                        "%s: the LVM2 label puts the data area at %" PRIu64
                        ", past the physical volume's end (%" PRIu64 " bytes)",
                        what, *start, pv->size);
    return 0;
  }
  return vs_err_set(err, EINVAL, "%s: no LVM2 label in its first four sectors", what);
}

bool vs_lvm_is_pv(const struct vs_volume *v) {
  return strcmp(v->fstype, "LVM2_member") == 0;
}

/* Where logical volume LV lies on PV (whose name in the volume group is PV_NAME), in bytes
 * from the data area's start, when it lies there in one piece: 1; 0 when not (WHY says). */
static int lv_extent(libvslvm_logical_volume_t *lv, const char *pv_name, uint64_t *start,
                     uint64_t *size, char *why, size_t why_size) {
  libvslvm_error_t *e = NULL;
  int n = 0;
  if (sym_libvslvm_logical_volume_get_number_of_segments(lv, &n, &e) != 1 || n < 1) {
    sym_libvslvm_error_free(&e);
    snprintf(why, why_size, "no segments");
    return 0;
  }
  uint64_t next_lv = 0, next_pv = 0;
  for (int i = 0; i < n; i++) {
    libvslvm_segment_t *seg = NULL;
    libvslvm_stripe_t *st = NULL;
    off64_t seg_off = 0, data_off = 0;
    size64_t seg_size = 0;
    int stripes = 0;
    char name[64] = "";
    bool is_ok = sym_libvslvm_logical_volume_get_segment(lv, i, &seg, &e) == 1 &&
                 sym_libvslvm_segment_get_offset(seg, &seg_off, &e) == 1 &&
                 sym_libvslvm_segment_get_size(seg, &seg_size, &e) == 1 &&
                 sym_libvslvm_segment_get_number_of_stripes(seg, &stripes, &e) == 1;
    if (is_ok && stripes != 1) {
      snprintf(why, why_size, "segment %d has %d stripes", i, stripes);
      sym_libvslvm_segment_free(&seg, NULL);
      return 0;
    }
    is_ok = is_ok && sym_libvslvm_segment_get_stripe(seg, 0, &st, &e) == 1 &&
            sym_libvslvm_stripe_get_physical_volume_name(st, name, sizeof(name), &e) == 1 &&
            sym_libvslvm_stripe_get_data_area_offset(st, &data_off, &e) == 1;
    sym_libvslvm_error_free(&e);
    if (st) sym_libvslvm_stripe_free(&st, NULL);
    if (seg) sym_libvslvm_segment_free(&seg, NULL);
    if (!is_ok || seg_off < 0 || data_off < 0) {
      snprintf(why, why_size, "segment %d cannot be read", i);
      return 0;
    }
    if (strcmp(name, pv_name) != 0) {
      snprintf(why, why_size, "segment %d lies on physical volume %s, not on this one", i, name);
      return 0;
    }
    if (i == 0) next_pv = (uint64_t)data_off;
    if ((uint64_t)seg_off != next_lv || (uint64_t)data_off != next_pv ||
        seg_size > UINT64_MAX - next_pv) {
      snprintf(why, why_size, "segment %d does not follow the one before it on the disk", i);
      return 0;
    }
    if (i == 0) *start = (uint64_t)data_off;
    next_lv += seg_size;
    next_pv += seg_size;
  }
  *size = next_lv;
  return 1;
}

int vs_lvm_volumes(struct vs_image *img, const struct vs_volume *pv, struct vs_volume **vols,
                   int *n, struct vs_err *err) {
  char what[PATH_MAX + 64];
  snprintf(what, sizeof(what), "%s: LVM2 physical volume on partition %d", vs_image_path(img),
           pv->number);
  uint64_t data_start = 0;
  if (data_area_start(img, pv, &data_start, what, err) < 0) return -1;
  if (vs_bfio_load(err) < 0 || vs_dl_load(&vslvm_lib, err) < 0)
    return vs_err_prefix(err, "%s", what);
  struct vs_bfio io;
  if (vs_bfio_open(&io, img, pv->offset, pv->size, META_READ_BUDGET, what, err) < 0) return -1;
  libvslvm_error_t *e = NULL;
  libvslvm_handle_t *h = NULL;
  libvslvm_volume_group_t *vg = NULL;
  int rc = -1, added = 0, n_lvs = 0, n_pvs = 0;
  char vg_name[64] = "", pv_name[64] = "";
  if (sym_libvslvm_handle_initialize(&h, &e) != 1 ||
      sym_libvslvm_handle_open_file_io_handle(h, io.handle, LIBVSLVM_OPEN_READ, &e) != 1 ||
      sym_libvslvm_handle_get_volume_group(h, &vg, &e) != 1 ||
      sym_libvslvm_volume_group_get_name(vg, vg_name, sizeof(vg_name), &e) != 1 ||
      sym_libvslvm_volume_group_get_number_of_physical_volumes(vg, &n_pvs, &e) != 1 ||
      sym_libvslvm_volume_group_get_number_of_logical_volumes(vg, &n_lvs, &e) != 1) {
    fail(err, &io, EIO, &e, what);
    goto out;
  }
  /* This physical volume's name in the group ("pv0"): the one whose id blkid read. */
  for (int i = 0; i < n_pvs && !pv_name[0]; i++) {
    libvslvm_physical_volume_t *p = NULL;
    char id[64] = "", name[64] = "";
    if (sym_libvslvm_volume_group_get_physical_volume(vg, i, &p, &e) == 1 &&
        sym_libvslvm_physical_volume_get_identifier(p, id, sizeof(id), &e) == 1 &&
        sym_libvslvm_physical_volume_get_name(p, name, sizeof(name), &e) == 1 &&
        ((pv->uuid[0] && strcmp(id, pv->uuid) == 0) || (!pv->uuid[0] && n_pvs == 1)))
      snprintf(pv_name, sizeof(pv_name), "%s", name);
    sym_libvslvm_error_free(&e);
    if (p) sym_libvslvm_physical_volume_free(&p, NULL);
  }
  if (!pv_name[0]) {
    vs_err_set(err, EINVAL, "%s: volume group %s does not list this physical volume (%s)", what,
               vg_name, pv->uuid[0] ? pv->uuid : "no UUID");
    goto out;
  }
  if (n_lvs > MAX_LVS) {
    vs_log(VS_LOG_WARNING, "%s: volume group %s has %d logical volumes; the first %d are read",
           what, vg_name, n_lvs, MAX_LVS);
    n_lvs = MAX_LVS;
  }
  for (int i = 0; i < n_lvs; i++) {
    libvslvm_logical_volume_t *lv = NULL;
    char lv_name[64] = "", why[160] = "";
    uint64_t start = 0, size = 0;
    int got = sym_libvslvm_volume_group_get_logical_volume(vg, i, &lv, &e) == 1 &&
                      sym_libvslvm_logical_volume_get_name(lv, lv_name, sizeof(lv_name), &e) == 1
                  ? lv_extent(lv, pv_name, &start, &size, why, sizeof(why))
                  : -1;
    if (lv) sym_libvslvm_logical_volume_free(&lv, NULL);
    if (got < 0) {
      fail(err, &io, EIO, &e, what);
      goto out;
    }
    if (got == 1 && (start > pv->size - data_start || size > pv->size - data_start - start)) {
      snprintf(why, sizeof(why),
               "its extents (%" PRIu64 " bytes at %" PRIu64 ") end past the physical volume's end",
               size, start);
      got = 0;
    }
    if (got == 0 || size == 0) {
      vs_log(VS_LOG_WARNING, "%s: logical volume %s/%s is not read: %s", what, vg_name, lv_name,
             why[0] ? why : "it is empty");
      continue;
    }
    struct vs_volume v = {.number = -1, .offset = pv->offset + data_start + start, .size = size};
    snprintf(v.lv, sizeof(v.lv), "%s/%s", vg_name, lv_name);
    struct vs_err pe = {0};
    if (vs_image_probe_volume(img, &v, &pe) < 0) {
      vs_log(VS_LOG_WARNING, "%s: logical volume %s: %s", what, v.lv, vs_err_msg(&pe));
      vs_err_clear(&pe);
      continue;
    }
    *vols = vs_xrealloc(*vols, (size_t)(*n + 1) * sizeof(**vols));
    (*vols)[(*n)++] = v;
    added++;
  }
  rc = added;
out:
  if (vg) sym_libvslvm_volume_group_free(&vg, NULL);
  if (h) {
    sym_libvslvm_handle_close(h, NULL);
    sym_libvslvm_handle_free(&h, NULL);
  }
  vs_bfio_close(&io);
  return rc;
}
