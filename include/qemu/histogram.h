/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A fixed-size histogram of 64-bit values (times in ns, typically) with
 * logarithmic buckets: values under 16 each have a bucket of their own,
 * and every power of two above is split into 8 equal buckets, so a
 * percentile read from it is at most 12.5% above the true value, and
 * never above the largest value recorded.  4 KiB, no allocation: fit
 * for a hot path that holds a lock already.  Not thread-safe by itself.
 */
#ifndef QEMU_HISTOGRAM_H
#define QEMU_HISTOGRAM_H

#include "qemu/osdep.h"

#define HIST_SUB_BITS   3
#define HIST_SUB        (1u << HIST_SUB_BITS)
/* 16 exact buckets, then 8 per power of two from 2^4 to 2^63. */
#define HIST_BUCKETS    (2 * HIST_SUB + (64 - HIST_SUB_BITS - 1) * HIST_SUB)

typedef struct Histogram {
    uint64_t count;
    uint64_t max;
    uint64_t bucket[HIST_BUCKETS];
} Histogram;

void hist_reset(Histogram *h);
void hist_add(Histogram *h, uint64_t value);

/*
 * The @pct-th percentile (0 < @pct <= 100): the upper bound of the
 * bucket that holds the value of rank ceil(count x pct / 100), capped at
 * the largest value recorded; 0 when nothing was recorded.  So
 * hist_percentile(h, 50) <= hist_percentile(h, 99) <= h->max.
 */
uint64_t hist_percentile(const Histogram *h, double pct);

#endif
