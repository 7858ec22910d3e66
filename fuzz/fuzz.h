/* fuzz.h: what the fuzz targets share. Each target is one LLVMFuzzerTestOneInput, built twice:
 * with libFuzzer (clang, ASan+UBSan: bench/fuzz.sh) and with replay.c's main (the regular
 * build: t/integration/fuzz.sh replays the seed corpora and every input that ever crashed). */
#ifndef VS_FUZZ_H
#define VS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A private directory for the target's files, made once per process. */
const char *fuzz_dir(void);
/* Writes DATA to NAME in fuzz_dir(), replacing it; returns its path (static storage). */
const char *fuzz_file(const char *name, const uint8_t *data, size_t size);

#endif
