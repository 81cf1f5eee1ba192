/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The log-bucketed histogram: its percentiles are ordered, within 12.5%
 * above the exact ones, and never above the largest value.
 */
#include "qemu/osdep.h"
#include <math.h>
#include "qemu/histogram.h"

static uint64_t exact_percentile(uint64_t *sorted, size_t n, double pct)
{
    size_t rank = (size_t)(n * pct / 100.0);

    if (rank < n * pct / 100.0) {
        rank++;
    }
    return sorted[MAX(rank, 1) - 1];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void test_empty_and_small(void)
{
    Histogram h;

    hist_reset(&h);
    g_assert_cmpuint(hist_percentile(&h, 50), ==, 0);
    /* Values under 16 are exact. */
    for (uint64_t v = 0; v < 16; v++) {
        hist_add(&h, v);
    }
    g_assert_cmpuint(h.count, ==, 16);
    g_assert_cmpuint(h.max, ==, 15);
    g_assert_cmpuint(hist_percentile(&h, 50), ==, 7);
    g_assert_cmpuint(hist_percentile(&h, 100), ==, 15);
}

static void test_extremes(void)
{
    Histogram h;

    hist_reset(&h);
    hist_add(&h, UINT64_MAX);
    g_assert_cmpuint(hist_percentile(&h, 99), ==, UINT64_MAX);
    hist_add(&h, 1ull << 40);
    g_assert_cmpuint(hist_percentile(&h, 50), >=, 1ull << 40);
    g_assert_cmpuint(hist_percentile(&h, 50), <=, (1ull << 40) / 8 * 9);
}

/* Random values over many orders of magnitude, against a sorted copy. */
static void test_against_exact(void)
{
    static const double pcts[] = { 1, 10, 50, 90, 99, 99.9, 100 };
    GRand *r = g_rand_new_with_seed(14);
    size_t n = 100000;
    g_autofree uint64_t *v = g_new(uint64_t, n);
    Histogram h;

    hist_reset(&h);
    for (size_t i = 0; i < n; i++) {
        /* log-uniform from 1 ns to about 1 s */
        v[i] = (uint64_t)exp(g_rand_double_range(r, 0, 30 * M_LN2));
        hist_add(&h, v[i]);
    }
    qsort(v, n, sizeof(v[0]), cmp_u64);
    g_assert_cmpuint(h.max, ==, v[n - 1]);
    for (size_t i = 0; i < G_N_ELEMENTS(pcts); i++) {
        uint64_t want = exact_percentile(v, n, pcts[i]);
        uint64_t got = hist_percentile(&h, pcts[i]);

        g_assert_cmpuint(got, >=, want);
        g_assert_cmpuint(got, <=, want + want / 8 + 1);
        if (i) {
            g_assert_cmpuint(got, >=, hist_percentile(&h, pcts[i - 1]));
        }
    }
    g_rand_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/histogram/empty-and-small", test_empty_and_small);
    g_test_add_func("/histogram/extremes", test_extremes);
    g_test_add_func("/histogram/against-exact", test_against_exact);
    return g_test_run();
}
