/*
 * Zero-page detection: one stray byte anywhere in a page is seen.
 */
#include "qemu/osdep.h"
#include "qemu/buffer-is-zero.h"

static void test_zero_and_every_byte(void)
{
    g_autofree uint8_t *page = g_malloc0(TARGET_PAGE_SIZE);

    g_assert_true(buffer_is_zero(page, TARGET_PAGE_SIZE));
    for (size_t i = 0; i < TARGET_PAGE_SIZE; i++) {
        page[i] = 1 << (i % 8);
        g_assert_false(buffer_is_zero(page, TARGET_PAGE_SIZE));
        page[i] = 0;
    }
    g_assert_true(buffer_is_zero(page, TARGET_PAGE_SIZE));
}

static void test_lengths(void)
{
    g_autofree uint8_t *buf = g_malloc0(64 * KiB);

    buf[64 * KiB - 1] = 0x80;
    g_assert_true(buffer_is_zero(buf, 128));
    g_assert_true(buffer_is_zero(buf, 64 * KiB - 128));
    g_assert_false(buffer_is_zero(buf, 64 * KiB));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/buffer-is-zero/every-byte", test_zero_and_every_byte);
    g_test_add_func("/buffer-is-zero/lengths", test_lengths);
    return g_test_run();
}
