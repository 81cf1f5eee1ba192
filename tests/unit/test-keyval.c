/*
 * key=value option parsing.
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"

static KeyVal *parse_ok(const char *s, const char *implied)
{
    Error *err = NULL;
    KeyVal *kv = keyval_parse(s, implied, "-opt", &err);

    g_assert_null(err);
    g_assert_nonnull(kv);
    return kv;
}

static char *parse_err(const char *s, const char *implied)
{
    Error *err = NULL;
    KeyVal *kv = keyval_parse(s, implied, "-opt", &err);
    char *msg;

    g_assert_null(kv);
    g_assert_nonnull(err);
    msg = g_strdup(error_get_pretty(err));
    error_free(err);
    return msg;
}

static void test_basic(void)
{
    g_autoptr(KeyVal) kv = parse_ok("a=1,b=two,c=", NULL);

    g_assert_cmpuint(keyval_count(kv), ==, 3);
    g_assert_cmpstr(keyval_get(kv, "a"), ==, "1");
    g_assert_cmpstr(keyval_get(kv, "b"), ==, "two");
    g_assert_cmpstr(keyval_get(kv, "c"), ==, "");
    g_assert_null(keyval_get(kv, "d"));
    g_assert_cmpstr(keyval_key(kv, 1), ==, "b");
}

static void test_implied(void)
{
    g_autoptr(KeyVal) kv = parse_ok("vfio-user-pci,socket=/tmp/s,id=d0", "driver");
    g_autoptr(KeyVal) kv2 = parse_ok("driver=x,id=y", "driver");
    g_autoptr(KeyVal) kv3 = parse_ok("unix:/tmp/q.sock,server=on", "path");

    g_assert_cmpstr(keyval_get(kv, "driver"), ==, "vfio-user-pci");
    g_assert_cmpstr(keyval_get(kv, "socket"), ==, "/tmp/s");
    g_assert_cmpstr(keyval_get(kv2, "driver"), ==, "x");
    g_assert_cmpstr(keyval_get(kv3, "path"), ==, "unix:/tmp/q.sock");
}

static void test_comma_escape(void)
{
    g_autoptr(KeyVal) kv = parse_ok("path=/tmp/a,,b,x=1", NULL);
    g_autoptr(KeyVal) kv2 = parse_ok("exec:cat,,x,y=2", "uri");

    g_assert_cmpstr(keyval_get(kv, "path"), ==, "/tmp/a,b");
    g_assert_cmpstr(keyval_get(kv, "x"), ==, "1");
    g_assert_cmpstr(keyval_get(kv2, "uri"), ==, "exec:cat,x");
}

static void test_errors(void)
{
    g_autofree char *e1 = parse_err("a=1,a=2", NULL);
    g_autoptr(KeyVal) ok = parse_ok("a=1,,", NULL);
    g_autofree char *e3 = parse_err("a=1,", NULL);
    g_autofree char *e4 = parse_err("=5", NULL);
    g_autofree char *e5 = parse_err("novalue", NULL);
    g_autofree char *e6 = parse_err("a=1,b", "driver");
    g_autofree char *e7 = parse_err("", "driver");

    g_assert_nonnull(strstr(e1, "'a' given more than once"));
    g_assert_nonnull(strstr(e1, "-opt"));
    /* ",," at the end is an escaped comma, not a trailing one */
    g_assert_cmpstr(keyval_get(ok, "a"), ==, "1,");
    g_assert_nonnull(strstr(e3, "trailing comma"));
    g_assert_nonnull(strstr(e4, "empty key"));
    g_assert_nonnull(strstr(e5, "expected key=value"));
    g_assert_nonnull(strstr(e6, "'b'"));
    g_assert_nonnull(strstr(e7, "missing driver"));
}

static void test_typed(void)
{
    g_autoptr(KeyVal) kv = parse_ok("s=1G,n=42,b=on,a=auto,big=5000000000,bad=x", NULL);
    uint64_t size = 0, n = 0;
    uint32_t n32 = 0;
    bool b = false;
    OnOffAuto a = ON_OFF_AUTO_OFF;
    Error *err = NULL;

    g_assert_true(keyval_get_size(kv, "s", &size, &error_abort));
    g_assert_cmpuint(size, ==, GiB);
    g_assert_true(keyval_get_u64(kv, "n", &n, &error_abort));
    g_assert_cmpuint(n, ==, 42);
    g_assert_true(keyval_get_bool(kv, "b", &b, &error_abort));
    g_assert_true(b);
    g_assert_true(keyval_get_onoffauto(kv, "a", &a, &error_abort));
    g_assert_cmpint(a, ==, ON_OFF_AUTO_AUTO);
    g_assert_false(keyval_get_u32(kv, "big", &n32, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "big=5000000000 is out of range"));
    error_free(err);
    err = NULL;
    g_assert_false(keyval_get_size(kv, "bad", &size, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "bad='x' is not a size"));
    error_free(err);
    /* Absent keys keep the default. */
    n = 9;
    g_assert_true(keyval_get_u64(kv, "absent", &n, &error_abort));
    g_assert_cmpuint(n, ==, 9);
}

static void test_unused(void)
{
    g_autoptr(KeyVal) kv = parse_ok("a=1,typo=2", NULL);
    Error *err = NULL;

    keyval_get(kv, "a");
    g_assert_false(keyval_check_unused(kv, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "-opt: unknown parameter 'typo'");
    error_free(err);
    keyval_get(kv, "typo");
    g_assert_true(keyval_check_unused(kv, &error_abort));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/keyval/basic", test_basic);
    g_test_add_func("/keyval/implied", test_implied);
    g_test_add_func("/keyval/comma-escape", test_comma_escape);
    g_test_add_func("/keyval/errors", test_errors);
    g_test_add_func("/keyval/typed", test_typed);
    g_test_add_func("/keyval/unused", test_unused);
    return g_test_run();
}
