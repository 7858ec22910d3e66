/* guest_pause.c [--write] PATH OFFSET READY STOP [SECONDS]: the pause a guest sees, measured
 * inside it. Runs in the guest (bench/guest-substitute.sh and bench/guest-snapshot.sh build it
 * static and copy it in). Reads the 4 KiB block at OFFSET of PATH, a device, with O_DIRECT (no
 * page cache: every read reaches the virtual disk); with --write, writes that block of PATH, a
 * file, through the page cache instead (a frozen file system holds every write to it, and only
 * that: the stall is the freeze the guest's programs see, with no disk time in it), sleeping 1 ms
 * after each write (it never waits for a disk, and spinning would starve the guest's agent, whose
 * freeze it measures, on a guest of one CPU). Again and again, at the highest priority it may take
 * (so the guest's other processes hardly delay it), and keeps the gaps between two reads' returns.
 * Times are read from the CPU's time stamp counter, calibrated against CLOCK_MONOTONIC over the
 * whole run: an emulated guest's kernel clock may tick in 4 ms steps. Creates the file READY after
 * its first read, stops when the file STOP appears (looked for every 10 ms) or after SECONDS
 * (default 120), then prints: reads N seconds S longest_ms G1 G2 G3 switch_ms W the three longest
 * gaps, longest first, and W the gap before the first read whose block differed from the one before
 * (-1: the block never changed, or --write). A failed read or write ends it with exit status 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  int writing = argc > 1 && strcmp(argv[1], "--write") == 0;
  if (writing) {
    argv++;
    argc--;
  }
  if (argc < 5 || argc > 6) {
    fprintf(stderr, "usage: guest_pause [--write] PATH OFFSET READY STOP [SECONDS]\n");
    return 2;
  }
  off_t off = (off_t)strtoll(argv[2], NULL, 0);
  double limit = argc == 6 ? atof(argv[5]) : 120;
  if (setpriority(PRIO_PROCESS, 0, -20) < 0)
    fprintf(stderr, "guest_pause: keeping the default priority: %s\n", strerror(errno));
  int fd = writing ? open(argv[1], O_WRONLY | O_CREAT, 0644) : open(argv[1], O_RDONLY | O_DIRECT);
  if (fd < 0) {
    fprintf(stderr, "guest_pause: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  uint8_t *buf, *prev;
  if (posix_memalign((void **)&buf, 4096, 4096) != 0 || !(prev = malloc(4096))) {
    fprintf(stderr, "guest_pause: out of memory\n");
    return 1;
  }
  memset(buf, 0x5a, 4096);
  uint64_t top[3] = {0, 0, 0}, switched = 0;
  int has_switched = 0;
  unsigned long reads = 0;
  double start = mono(), checked = start, end = start;
  uint64_t t_start = __rdtsc(), last = t_start, t_end = t_start;
  for (;;) {
    if ((writing ? pwrite(fd, buf, 4096, off) : pread(fd, buf, 4096, off)) != 4096) {
      fprintf(stderr, "guest_pause: %s %s at %lld: %s\n", writing ? "writing" : "reading", argv[1],
              (long long)off, strerror(errno ? errno : EIO));
      return 1;
    }
    if (writing) nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    uint64_t t = __rdtsc(), gap = t - last;
    last = t;
    if (reads++ == 0) {
      memcpy(prev, buf, 4096);
      int r = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (r < 0) {
        fprintf(stderr, "guest_pause: %s: %s\n", argv[3], strerror(errno));
        return 1;
      }
      close(r);
      continue; /* the first gap is the open's, not a read's */
    }
    if (!has_switched && memcmp(prev, buf, 4096) != 0) {
      has_switched = 1;
      switched = gap;
    }
    for (int i = 0; i < 3; i++) {
      if (gap <= top[i]) continue;
      memmove(top + i + 1, top + i, (size_t)(2 - i) * sizeof(top[0]));
      top[i] = gap;
      break;
    }
    double now = mono();
    if (now - checked >= 0.01) {
      checked = now;
      if (access(argv[4], F_OK) == 0 || now - start >= limit) {
        end = now;
        t_end = t;
        break;
      }
    }
  }
  /* Ticks per millisecond, over the run (a second or more: the clock's steps hardly count). */
  double tpms = end > start ? (double)(t_end - t_start) / ((end - start) * 1e3) : 1;
  printf("reads %lu seconds %.3f longest_ms %.2f %.2f %.2f switch_ms %.2f\n", reads, end - start,
         (double)top[0] / tpms, (double)top[1] / tpms, (double)top[2] / tpms,
         has_switched ? (double)switched / tpms : -1.0);
  return 0;
}
