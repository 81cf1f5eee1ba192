/*
 * Unit test of the migration address parser (-incoming, migrate uri).
 */
#include "qemu/osdep.h"
#include "migration/misc.h"

static void test_tcp(void)
{
    MigrationAddress addr;
    g_autofree char *uri = NULL;

    g_assert_true(migration_address_parse("tcp:localhost:4444", &addr,
                                          &error_abort));
    g_assert_cmpint(addr.type, ==, MIGRATION_ADDRESS_TCP);
    g_assert_cmpstr(addr.host, ==, "localhost");
    g_assert_cmpstr(addr.port, ==, "4444");
    uri = migration_address_to_uri(&addr);
    g_assert_cmpstr(uri, ==, "tcp:localhost:4444");
    migration_address_clear(&addr);

    g_assert_true(migration_address_parse("tcp:[::1]:0", &addr, &error_abort));
    g_assert_cmpstr(addr.host, ==, "::1");
    g_assert_cmpstr(addr.port, ==, "0");
    g_free(uri);
    uri = migration_address_to_uri(&addr);
    g_assert_cmpstr(uri, ==, "tcp:[::1]:0");
    migration_address_clear(&addr);

    /* An empty host means every local address. */
    g_assert_true(migration_address_parse("tcp::5555", &addr, &error_abort));
    g_assert_cmpstr(addr.host, ==, "");
    g_assert_cmpstr(addr.port, ==, "5555");
    migration_address_clear(&addr);
}

static void test_others(void)
{
    MigrationAddress addr;

    g_assert_true(migration_address_parse("unix:/tmp/a,b.sock", &addr,
                                          &error_abort));
    g_assert_cmpint(addr.type, ==, MIGRATION_ADDRESS_UNIX);
    g_assert_cmpstr(addr.path, ==, "/tmp/a,b.sock");
    migration_address_clear(&addr);

    g_assert_true(migration_address_parse("fd:migfd", &addr, &error_abort));
    g_assert_cmpint(addr.type, ==, MIGRATION_ADDRESS_FD);
    g_assert_cmpstr(addr.fd_name, ==, "migfd");
    migration_address_clear(&addr);

    g_assert_true(migration_address_parse("exec:cat > /dev/null", &addr,
                                          &error_abort));
    g_assert_cmpint(addr.type, ==, MIGRATION_ADDRESS_EXEC);
    g_assert_cmpstr(addr.command, ==, "cat > /dev/null");
    migration_address_clear(&addr);

    g_assert_true(migration_address_parse("file:/tmp/x", &addr, &error_abort));
    g_assert_cmpint(addr.type, ==, MIGRATION_ADDRESS_FILE);
    g_assert_cmpstr(addr.path, ==, "/tmp/x");
    g_assert_cmpuint(addr.offset, ==, 0);
    migration_address_clear(&addr);

    g_assert_true(migration_address_parse("file:/tmp/x,offset=0x1000", &addr,
                                          &error_abort));
    g_assert_cmpstr(addr.path, ==, "/tmp/x");
    g_assert_cmpuint(addr.offset, ==, 4096);
    migration_address_clear(&addr);

    g_assert_true(migration_address_parse("defer", &addr, &error_abort));
    g_assert_cmpint(addr.type, ==, MIGRATION_ADDRESS_DEFER);
    migration_address_clear(&addr);
}

static void expect_error(const char *uri, const char *fragment)
{
    MigrationAddress addr;
    Error *err = NULL;

    g_assert_false(migration_address_parse(uri, &addr, &err));
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), fragment)) {
        g_error("parsing '%s': '%s' lacks '%s'", uri, error_get_pretty(err),
                fragment);
    }
    /* A failed parse leaves nothing behind. */
    g_assert_null(addr.host);
    g_assert_null(addr.path);
    error_free(err);
}

static void test_errors(void)
{
    expect_error("", "empty");
    expect_error("rdma:host:1", "unknown transport");
    expect_error("tcp:host", "expected tcp:HOST:PORT");
    expect_error("tcp:host:", "missing port");
    expect_error("tcp:host:http", "not a decimal number");
    expect_error("tcp:host:65536", "out of range");
    expect_error("tcp:::1:80", "in brackets");
    expect_error("tcp:[::1:80", "expected [IPV6]:PORT");
    expect_error("tcp:h:1,ipv4=on", "takes no options");
    expect_error("unix:", "missing socket path");
    expect_error("fd:", "missing fd name");
    expect_error("exec:", "missing command");
    expect_error("file:", "missing file name");
    expect_error("file:,offset=4", "missing file name");
    expect_error("file:/x,offset=abc", "not a valid file offset");
    expect_error("file:/x,offset=-1", "not a valid file offset");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/address/tcp", test_tcp);
    g_test_add_func("/migration/address/others", test_others);
    g_test_add_func("/migration/address/errors", test_errors);
    return g_test_run();
}
