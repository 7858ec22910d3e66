/* version.h: ordering package versions the way the guest's package manager does.
 *
 * Debian versions ([epoch:]upstream[-revision]) are compared by dpkg's algorithm (deb-version(7):
 * '~' sorts before everything, even the end; letters before other characters; digit runs by
 * number). libdpkg, which implements it, ships only as a non-PIC static archive that cannot go
 * into the collectd plugins, so the algorithm is written out here and tested against
 * "dpkg --compare-versions". RPM versions ([epoch:]version-release) go to librpmio's rpmverCmp,
opened on first use (dl.h).
 * A value holding several versions separated by spaces (several kernels) compares by its
 * highest, the last one listed. */
#ifndef VS_VERSION_H
#define VS_VERSION_H

/* Returns <0, 0 or >0 as A is older than, the same as, or newer than B. FORMAT is the guest's
 * package format ("deb" or "rpm"; anything else compares as "deb"). */
int vs_version_compare(const char *format, const char *a, const char *b);

#endif
