/* Streaming read bandwidth: sums a 2 GiB array with T OpenMP threads, best of 5 passes.
 * Used by scripts/bench.sh to put generation speed next to what memory allows: a decoding
 * step reads every weight once. Build: gcc -O3 -march=native -fopenmp membw.c -o membw */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
    const size_t n = (size_t)1 << 28; /* 2 GiB of u64: far beyond any cache */
    uint64_t *a = aligned_alloc(64, n * sizeof *a);
    if (!a) { perror("aligned_alloc"); return 1; }
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) a[i] = i;
    double best = 0;
    for (int pass = 0; pass < 5; pass++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        uint64_t s = 0;
#pragma omp parallel for reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += a[i];
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        double gbs = n * sizeof *a / secs / 1e9;
        if (gbs > best) best = gbs;
        if (s == 42) puts(""); /* keep the sum alive */
    }
    printf("%.1f\n", best);
    free(a);
    return 0;
}
