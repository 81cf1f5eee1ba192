/*
 * iov_consume(): stepping over what a vectored read or write moved.
 */
#include "qemu/osdep.h"
#include "qemu/iov.h"

static void test_consume(void)
{
    char a[3], b[5], c[2];
    struct iovec v[] = {
        { NULL, 0 }, { a, sizeof(a) }, { NULL, 0 }, { b, sizeof(b) },
        { c, sizeof(c) }, { NULL, 0 },
    };
    struct iovec *iov = v;
    int cnt = G_N_ELEMENTS(v);

    /* Nothing moved: only the leading empty entry goes. */
    iov_consume(&iov, &cnt, 0);
    g_assert_true(iov == &v[1]);
    g_assert_cmpint(cnt, ==, 5);
    /* Into the middle of b: a and the empty entry go, b is cut. */
    iov_consume(&iov, &cnt, 4);
    g_assert_true(iov == &v[3]);
    g_assert_cmpint(cnt, ==, 3);
    g_assert_true(iov->iov_base == b + 1);
    g_assert_cmpuint(iov->iov_len, ==, 4);
    /* Exactly to the end of b: the cut entry goes, c is whole. */
    iov_consume(&iov, &cnt, 4);
    g_assert_true(iov == &v[4]);
    g_assert_cmpint(cnt, ==, 2);
    g_assert_cmpuint(iov->iov_len, ==, 2);
    /* The rest: the trailing empty entry goes too, the loop ends. */
    iov_consume(&iov, &cnt, 2);
    g_assert_cmpint(cnt, ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/iov/consume", test_consume);
    return g_test_run();
}
