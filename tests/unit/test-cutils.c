/*
 * Size, number and boolean parsing.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"

static void test_strtosz_valid(void)
{
    static const struct {
        const char *in;
        uint64_t out;
    } cases[] = {
        { "0", 0 }, { "4096", 4096 }, { "1K", KiB }, { "1k", KiB },
        { "64M", 64 * MiB }, { "2G", 2 * GiB }, { "1T", TiB },
        { "1.5G", 3 * GiB / 2 }, { "0x1000", 4096 }, { "12B", 12 },
        { "16383P", 16383ULL << 50 },
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        uint64_t v = 1;
        g_assert_cmpint(qemu_strtosz(cases[i].in, &v), ==, 0);
        g_assert_cmpuint(v, ==, cases[i].out);
    }
}

static void test_strtosz_invalid(void)
{
    static const char *const bad[] = {
        "", "abc", "-1", " 1", "1X", "1KB", "1.", "1.5", "G", "1 G", "+5",
    };

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        uint64_t v = 7;
        g_assert_cmpint(qemu_strtosz(bad[i], &v), ==, -EINVAL);
        g_assert_cmpuint(v, ==, 7);
    }
}

static void test_strtosz_range(void)
{
    uint64_t v;

    g_assert_cmpint(qemu_strtosz("16E", &v), ==, -ERANGE);
    g_assert_cmpint(qemu_strtosz("99999999999999999999", &v), ==, -ERANGE);
    g_assert_cmpint(qemu_strtosz("17179869184G", &v), ==, -ERANGE);
}

static void test_strtosz_default_suffix(void)
{
    uint64_t v;

    g_assert_cmpint(qemu_strtosz_suffix("512", 'M', &v), ==, 0);
    g_assert_cmpuint(v, ==, 512 * MiB);
    g_assert_cmpint(qemu_strtosz_suffix("1G", 'M', &v), ==, 0);
    g_assert_cmpuint(v, ==, GiB);
    g_assert_cmpint(qemu_strtosz_suffix("1.5", 'M', &v), ==, 0);
    g_assert_cmpuint(v, ==, 3 * MiB / 2);
}

static void test_size_to_str(void)
{
    g_autofree char *a = size_to_str(512);
    g_autofree char *b = size_to_str(64 * MiB);
    g_autofree char *c = size_to_str(3 * GiB / 2);

    g_assert_cmpstr(a, ==, "512 B");
    g_assert_cmpstr(b, ==, "64 MiB");
    g_assert_cmpstr(c, ==, "1.5 GiB");
}

static void test_numbers(void)
{
    uint64_t u;
    int64_t s;

    g_assert_cmpint(qemu_strtou64("18446744073709551615", &u), ==, 0);
    g_assert_cmpuint(u, ==, UINT64_MAX);
    g_assert_cmpint(qemu_strtou64("18446744073709551616", &u), ==, -ERANGE);
    g_assert_cmpint(qemu_strtou64("-1", &u), ==, -EINVAL);
    g_assert_cmpint(qemu_strtou64("12x", &u), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("-42", &s), ==, 0);
    g_assert_cmpint(s, ==, -42);
    g_assert_cmpint(qemu_strtoi64("", &s), ==, -EINVAL);
}

/* Decimal, as QEMU reads it; hex only with an explicit 0x. */
static void test_no_octal(void)
{
    uint64_t u = 0;
    int64_t s = 0;

    g_assert_cmpint(qemu_strtosz_suffix("010", 'M', &u), ==, 0);
    g_assert_cmpuint(u, ==, 10 * MiB);
    g_assert_cmpint(qemu_strtosz("010", &u), ==, 0);
    g_assert_cmpuint(u, ==, 10);
    g_assert_cmpint(qemu_strtosz("08", &u), ==, 0);
    g_assert_cmpuint(u, ==, 8);
    g_assert_cmpint(qemu_strtosz("0010.5K", &u), ==, 0);
    g_assert_cmpuint(u, ==, 10 * KiB + 512);
    g_assert_cmpint(qemu_strtosz("0x10M", &u), ==, 0);
    g_assert_cmpuint(u, ==, 16 * MiB);
    g_assert_cmpint(qemu_strtosz("0X1f", &u), ==, 0);
    g_assert_cmpuint(u, ==, 31);
    g_assert_cmpint(qemu_strtosz("0x", &u), ==, -EINVAL);
    g_assert_cmpint(qemu_strtosz("0x1.8K", &u), ==, -EINVAL);

    g_assert_cmpint(qemu_strtou64("010", &u), ==, 0);
    g_assert_cmpuint(u, ==, 10);
    g_assert_cmpint(qemu_strtou64("09", &u), ==, 0);
    g_assert_cmpuint(u, ==, 9);
    g_assert_cmpint(qemu_strtou64("0x10", &u), ==, 0);
    g_assert_cmpuint(u, ==, 16);
    g_assert_cmpint(qemu_strtou64("0xg", &u), ==, -EINVAL);
    g_assert_cmpint(qemu_strtoi64("-010", &s), ==, 0);
    g_assert_cmpint(s, ==, -10);
    g_assert_cmpint(qemu_strtoi64("-0x10", &s), ==, 0);
    g_assert_cmpint(s, ==, -16);
    g_assert_cmpint(qemu_strtoi64("-", &s), ==, -EINVAL);
}

static void test_bool_onoffauto(void)
{
    bool b;
    OnOffAuto a;

    g_assert_true(qemu_parse_bool("on", &b) && b);
    g_assert_true(qemu_parse_bool("yes", &b) && b);
    g_assert_true(qemu_parse_bool("off", &b) && !b);
    g_assert_true(qemu_parse_bool("false", &b) && !b);
    g_assert_false(qemu_parse_bool("1", &b));
    g_assert_false(qemu_parse_bool("On", &b));
    g_assert_true(qemu_parse_onoffauto("auto", &a) && a == ON_OFF_AUTO_AUTO);
    g_assert_true(qemu_parse_onoffauto("on", &a) && a == ON_OFF_AUTO_ON);
    g_assert_true(qemu_parse_onoffauto("off", &a) && a == ON_OFF_AUTO_OFF);
    g_assert_false(qemu_parse_onoffauto("maybe", &a));
    g_assert_cmpstr(onoffauto_str(ON_OFF_AUTO_AUTO), ==, "auto");
}

static void test_escape(void)
{
    static const uint8_t mixed[] = { 'r', 'a', 'm', 0xff, 0, '\\', '\n',
                                     0x7f, 0xc3, 0xa9, '~', ' ' };
    g_autofree char *plain = qemu_escape_str("vfio-user-pci 0 [x]");
    g_autofree char *empty = qemu_escape_bytes("", 0);
    g_autofree char *esc = qemu_escape_bytes(mixed, sizeof(mixed));
    g_autofree char *twice = qemu_escape_str(esc);
    g_autofree char *all = NULL;
    uint8_t bytes[256];

    g_assert_cmpstr(plain, ==, "vfio-user-pci 0 [x]");
    g_assert_cmpstr(empty, ==, "");
    /* Even valid UTF-8 from a peer comes out as bytes: ASCII only. */
    g_assert_cmpstr(esc, ==, "ram\\xff\\x00\\x5c\\x0a\\x7f\\xc3\\xa9~ ");
    /* The backslash is escaped too, so no input is mistaken for another. */
    g_assert_cmpstr(twice, ==, "ram\\x5cxff\\x5cx00\\x5cx5c\\x5cx0a"
                    "\\x5cx7f\\x5cxc3\\x5cxa9~ ");
    for (unsigned i = 0; i < sizeof(bytes); i++) {
        bytes[i] = i;
    }
    all = qemu_escape_bytes(bytes, sizeof(bytes));
    g_assert_true(g_utf8_validate(all, -1, NULL));
    for (const char *c = all; *c; c++) {
        g_assert_true(*c >= 0x20 && *c < 0x7f);
    }
    /* 94 printable bytes (not the backslash) as is, 162 escaped. */
    g_assert_cmpuint(strlen(all), ==, 94 + 162 * 4);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cutils/strtosz/valid", test_strtosz_valid);
    g_test_add_func("/cutils/strtosz/invalid", test_strtosz_invalid);
    g_test_add_func("/cutils/strtosz/range", test_strtosz_range);
    g_test_add_func("/cutils/strtosz/default-suffix", test_strtosz_default_suffix);
    g_test_add_func("/cutils/size-to-str", test_size_to_str);
    g_test_add_func("/cutils/numbers", test_numbers);
    g_test_add_func("/cutils/no-octal", test_no_octal);
    g_test_add_func("/cutils/bool-onoffauto", test_bool_onoffauto);
    g_test_add_func("/cutils/escape", test_escape);
    return g_test_run();
}
