/* fuzz_yal.h: what fuzz_vhdx and fuzz_vmdk share. */
#ifndef VS_FUZZ_YAL_H
#define VS_FUZZ_YAL_H

/* Opens PATH as FORMAT and reads its first 64 KiB pieces, a read across a sector boundary and
 * the disk's last bytes. */
void fuzz_yal_read(const char *path, const char *format);

#endif
