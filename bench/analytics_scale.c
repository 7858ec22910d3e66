/* analytics_scale DOCS TOKENS: signatures and roles (analytics.h) for DOCS synthetic VMs of
 * TOKENS settings each, and the same at a tenth of the size, for the growth. The VMs belong
 * to 20 roles: a common base (60% of the tokens), the role's own (35%), and tokens of their
 * own (5%), with 2% of the role's flipped at random. Prints seconds, peak memory, the roles
 * found and their agreement with the generator's (adjusted Rand index). */
#include "analytics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define ROLES 20

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static double run(size_t n, size_t per, double *ari, size_t *roles) {
  struct vs_vm_tokens *vms = calloc(n, sizeof(*vms));
  uint64_t *all = malloc(n * per * sizeof(uint64_t));
  size_t *truth = malloc(n * sizeof(size_t)), *found = malloc(n * sizeof(size_t));
  if (!vms || !all || !truth || !found) {
    fprintf(stderr, "analytics_scale: out of memory\n");
    exit(1);
  }
  uint64_t s = 0x9e3779b97f4a7c15ULL;
  size_t base = per * 60 / 100, own = per * 5 / 100, role_n = per - base - own;
  for (size_t i = 0; i < n; i++) {
    uint64_t *t = all + i * per;
    size_t r = rnd(&s) % ROLES, k = 0;
    truth[i] = r;
    for (size_t b = 0; b < base; b++)
      t[k++] = 0x1000000000ULL + b;
    for (size_t b = 0; b < role_n; b++)
      t[k++] = rnd(&s) % 50 == 0 ? rnd(&s) : 0x2000000000ULL + r * 100000 + b;
    for (size_t b = 0; b < own; b++)
      t[k++] = 0x3000000000ULL + i * 1000 + b;
    vms[i] = (struct vs_vm_tokens){.tokens = t, .n = per};
  }
  double t0 = vs_now_monotonic();
  struct vs_analysis *a = vs_analyze(vms, n, NULL);
  double secs = vs_now_monotonic() - t0;
  for (size_t i = 0; i < n; i++)
    found[i] = vs_analysis_role(a, i);
  *ari = vs_adjusted_rand(found, truth, n);
  *roles = vs_analysis_role_count(a);
  vs_analysis_free(a);
  free(vms);
  free(all);
  free(truth);
  free(found);
  return secs;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
  size_t per = argc > 2 ? strtoul(argv[2], NULL, 10) : 500;
  double ari_small, ari;
  size_t roles_small, roles;
  double small = run(n / 10, per, &ari_small, &roles_small);
  double big = run(n, per, &ari, &roles);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("analytics-scale: %zu VMs x %zu tokens, %d roles generated\n", n, per, ROLES);
  printf("%-10s %10s %8s %8s\n", "VMs", "seconds", "roles", "ARI");
  printf("%-10zu %10.2f %8zu %8.3f\n", n / 10, small, roles_small, ari_small);
  printf("%-10zu %10.2f %8zu %8.3f\n", n, big, roles, ari);
  printf("growth from %zu to %zu VMs: %.1fx the time for 10x the VMs\n", n / 10, n, big / small);
  printf("peak memory %.0f MiB (the generated tokens alone: %.0f MiB)\n", ru.ru_maxrss / 1024.0,
         (double)n * per * 8 / 1048576);
  printf("targets (signatures and roles <= 30 s, <= 4 GiB): %s\n",
         big <= 30 && ru.ru_maxrss / 1048576.0 <= 4 ? "met" : "NOT met");
  return 0;
}
