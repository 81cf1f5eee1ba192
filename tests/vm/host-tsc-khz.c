/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-tsc-khz: the host's TSC frequency in kHz, for the test VM's kernel
 * command line (tsc_early_khz=).  Under TCG the guest's TSC is the host's,
 * and the guest kernel's own calibration against the PIT fails whenever
 * QEMU is starved of CPU, which leaves it on 4 ms jiffies.  Prints nothing
 * on a host without a TSC.
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
    struct timespec nap = { .tv_nsec = 50 * 1000 * 1000 };
    int64_t t0 = now_ns();
    uint64_t c0 = __rdtsc();
    int64_t t1;
    uint64_t c1;

    nanosleep(&nap, NULL);
    t1 = now_ns();
    c1 = __rdtsc();
    /* Cycles per microsecond is MHz, rounded: TSCs tick at a round rate. */
    printf("%llu\n", (unsigned long long)
           (((c1 - c0) * 1000 + (t1 - t0) / 2) / (t1 - t0)) * 1000);
    return 0;
}
#else
int main(void)
{
    return 0;
}
#endif
