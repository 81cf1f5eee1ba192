/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Log-bucketed histogram: see include/qemu/histogram.h.
 */
#include <math.h>
#include "qemu/histogram.h"

static unsigned bucket_of(uint64_t v)
{
    unsigned e;

    if (v < 2 * HIST_SUB) {
        return v;
    }
    e = 63 - __builtin_clzll(v);    /* e >= HIST_SUB_BITS + 1 */
    /* The top HIST_SUB_BITS bits below the leading one pick the bucket. */
    return (e - HIST_SUB_BITS + 1) * HIST_SUB +
           ((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The largest value that falls into bucket @b. */
static uint64_t bucket_top(unsigned b)
{
    unsigned e, shift;

    if (b < 2 * HIST_SUB) {
        return b;
    }
    e = b / HIST_SUB + HIST_SUB_BITS - 1;
    shift = e - HIST_SUB_BITS;
    return (((uint64_t)(HIST_SUB + b % HIST_SUB) << shift) - 1) +
           ((uint64_t)1 << shift);
}

void hist_reset(Histogram *h)
{
    memset(h, 0, sizeof(*h));
}

void hist_add(Histogram *h, uint64_t value)
{
    h->bucket[bucket_of(value)]++;
    h->count++;
    if (value > h->max) {
        h->max = value;
    }
}

uint64_t hist_percentile(const Histogram *h, double pct)
{
    uint64_t rank, seen = 0;

    if (!h->count) {
        return 0;
    }
    rank = (uint64_t)ceil(h->count * pct / 100.0);
    rank = MAX(rank, 1);
    rank = MIN(rank, h->count);
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += h->bucket[b];
        if (seen >= rank) {
            return MIN(bucket_top(b), h->max);
        }
    }
    return h->max;
}
