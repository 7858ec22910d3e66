/* tap.h: a small TAP producer for the C unit tests (automake's tap-driver reads it). */
#ifndef VS_TAP_H
#define VS_TAP_H

#include <stdbool.h>

void plan(int n);
void plan_no_plan(void);
/* Records one test; DESC says what behaviour holds. Returns COND. */
bool ok(bool cond, const char *desc, ...) __attribute__((format(printf, 2, 3)));
bool is_str(const char *got, const char *want, const char *desc, ...)
    __attribute__((format(printf, 3, 4)));
/* GOT == WANT, both printed when not (integers of up to 53 bits are exact). */
bool is_num(double got, double want, const char *desc, ...) __attribute__((format(printf, 3, 4)));
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void skip(int n, const char *why);
/* Prints the plan when none was given, and returns the exit status (failures make it 1). */
int done_testing(void);

#endif
