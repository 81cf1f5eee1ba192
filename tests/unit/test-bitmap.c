/*
 * Bitmap operations, including the atomic move used by dirty sync.
 */
#include "qemu/osdep.h"
#include "qemu/bitmap.h"

static void test_set_clear_find(void)
{
    const size_t n = 300;
    g_autofree unsigned long *map = bitmap_new(n);

    g_assert_true(bitmap_empty(map, n));
    g_assert_cmpuint(find_next_bit(map, n, 0), ==, n);
    bitmap_set(map, 60, 10);            /* crosses a word boundary */
    g_assert_cmpuint(bitmap_count_one(map, n), ==, 10);
    g_assert_cmpuint(find_next_bit(map, n, 0), ==, 60);
    g_assert_cmpuint(find_next_zero_bit(map, n, 60), ==, 70);
    g_assert_cmpuint(find_next_bit(map, n, 70), ==, n);
    bitmap_clear(map, 62, 3);
    g_assert_cmpuint(bitmap_count_one(map, n), ==, 7);
    g_assert_false(test_bit(63, map));
    g_assert_true(test_bit(65, map));
    set_bit(299, map);
    g_assert_cmpuint(find_next_bit(map, n, 70), ==, 299);
    g_assert_true(test_and_clear_bit(299, map));
    g_assert_false(test_and_clear_bit(299, map));
}

static void test_fill_partial_word(void)
{
    const size_t n = 70;
    g_autofree unsigned long *map = bitmap_new(n);

    bitmap_fill(map, n);
    g_assert_cmpuint(bitmap_count_one(map, n), ==, n);
    g_assert_cmpuint(find_next_zero_bit(map, n, 0), ==, n);
    /* No bit beyond nbits may be set. */
    g_assert_cmpuint(map[1], ==, (1UL << 6) - 1);
}

static void test_large_ranges(void)
{
    const size_t n = 4096;
    g_autofree unsigned long *map = bitmap_new(n);

    bitmap_set_atomic(map, 1, n - 2);
    g_assert_cmpuint(bitmap_count_one(map, n), ==, n - 2);
    g_assert_false(test_bit(0, map));
    g_assert_false(test_bit(n - 1, map));
    bitmap_zero(map, n);
    g_assert_true(bitmap_empty(map, n));
}

static void test_move_atomic(void)
{
    const size_t n = 1000;
    g_autofree unsigned long *src = bitmap_new(n);
    g_autofree unsigned long *dst = bitmap_new(n);

    bitmap_set(src, 10, 5);
    bitmap_set(src, 900, 1);
    set_bit(12, dst);                   /* already dirty in dst */
    g_assert_cmpuint(bitmap_move_atomic(dst, src, n, NULL), ==, 5);
    g_assert_true(bitmap_empty(src, n));
    g_assert_cmpuint(bitmap_count_one(dst, n), ==, 6);
    g_assert_cmpuint(bitmap_move_atomic(dst, src, n, NULL), ==, 0);
}

/* took: whether any bit was taken, even one already set in @dst. */
static void test_move_atomic_took(void)
{
    const size_t n = 200;
    g_autofree unsigned long *src = bitmap_new(n);
    g_autofree unsigned long *dst = bitmap_new(n);
    bool took = true;

    g_assert_cmpuint(bitmap_move_atomic(dst, src, n, &took), ==, 0);
    g_assert_false(took);
    set_bit(150, dst);
    bitmap_set_atomic(src, 150, 1);
    g_assert_cmpuint(bitmap_move_atomic(dst, src, n, &took), ==, 0);
    g_assert_true(took);
    g_assert_true(bitmap_empty(src, n));
}

/* Ranges over word boundaries, partly set already, single bits. */
static void test_set_atomic_ranges(void)
{
    const size_t n = 300;
    g_autofree unsigned long *map = bitmap_new(n);
    g_autofree unsigned long *want = bitmap_new(n);

    bitmap_set_atomic(map, 5, 1);
    bitmap_set_atomic(map, 5, 1);
    bitmap_set(map, 70, 3);
    bitmap_set_atomic(map, 60, 200);
    bitmap_set_atomic(map, 299, 1);
    bitmap_set_atomic(map, 64, 64);
    bitmap_set(want, 5, 1);
    bitmap_set(want, 60, 200);
    bitmap_set(want, 299, 1);
    g_assert_cmpmem(map, BITS_TO_LONGS(n) * sizeof(long),
                    want, BITS_TO_LONGS(n) * sizeof(long));
}

typedef struct Writer {
    unsigned long *map;
    size_t nbits;
    unsigned seed;
} Writer;

static gpointer writer_thread(gpointer opaque)
{
    Writer *w = opaque;

    for (size_t i = 0; i < w->nbits; i++) {
        if ((i * 2654435761u + w->seed) % 3 == 0) {
            set_bit_atomic(i, w->map);
        }
    }
    return NULL;
}

/* Bits set concurrently with moves are each taken exactly once. */
static void test_move_concurrent(void)
{
    const size_t n = 1 << 16;
    g_autofree unsigned long *src = bitmap_new(n);
    g_autofree unsigned long *dst = bitmap_new(n);
    g_autofree unsigned long *want = bitmap_new(n);
    Writer w = { src, n, 7 };
    GThread *t = g_thread_new("writer", writer_thread, &w);

    for (int i = 0; i < 50; i++) {
        bitmap_move_atomic(dst, src, n, NULL);
    }
    g_thread_join(t);
    bitmap_move_atomic(dst, src, n, NULL);
    writer_thread(&(Writer){ want, n, 7 });
    g_assert_cmpmem(dst, BITS_TO_LONGS(n) * sizeof(long),
                    want, BITS_TO_LONGS(n) * sizeof(long));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/bitmap/move-atomic-took", test_move_atomic_took);
    g_test_add_func("/bitmap/set-atomic-ranges", test_set_atomic_ranges);
    g_test_add_func("/bitmap/set-clear-find", test_set_clear_find);
    g_test_add_func("/bitmap/fill-partial-word", test_fill_partial_word);
    g_test_add_func("/bitmap/large-ranges", test_large_ranges);
    g_test_add_func("/bitmap/move-atomic", test_move_atomic);
    g_test_add_func("/bitmap/move-concurrent", test_move_concurrent);
    return g_test_run();
}
