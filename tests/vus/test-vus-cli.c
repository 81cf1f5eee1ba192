/*
 * vfio-user-cli as a user runs it: help, inspection, register access,
 * state changes, save/load and migrate between two vfio-user-dma
 * processes with the content check, and clear failures.
 */
#include "vus-helpers.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static const char *cli(void)
{
    return vus_test_bin("VUS_CLI_BIN");
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!haystack || !strstr(haystack, needle)) {
        g_error("expected '%s' in:\n%s", needle, haystack ? haystack : "");
    }
}

/* The "checksum 0x..." word of dma-check's output. */
static char *checksum_of(const char *out)
{
    const char *p = strstr(out, "checksum ");

    g_assert_nonnull(p);
    return g_strndup(p + 9, 18);
}

static void test_help(void)
{
    static const char *const cmds[] = {
        "version", "info", "read", "write", "state", "reset", "save", "load",
        "migrate", "dma-check",
    };
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;

    g_assert_cmpint(vus_run(&out, NULL, cli(), "--help", NULL), ==, 0);
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
        g_autofree char *sub = NULL;

        assert_contains(out, cmds[i]);
        g_assert_cmpint(vus_run(&sub, NULL, cli(), cmds[i], "--help", NULL),
                        ==, 0);
        assert_contains(sub, cmds[i]);
        assert_contains(sub, "--timeout");
    }
    g_assert_cmpint(vus_run(NULL, &err, cli(), "frobnicate", NULL), ==, 1);
    assert_contains(err, "unknown command 'frobnicate'");
}

static void test_inspect(void)
{
    VusServer *s = vus_server_start("--mem-size", "2M", "--no-p2p", NULL);
    g_autofree char *out = NULL;
    g_autofree char *out2 = NULL;
    g_autofree char *out3 = NULL;

    g_assert_cmpint(vus_run(&out, NULL, cli(), "version", s->socket, NULL),
                    ==, 0);
    assert_contains(out, "protocol           0.2");
    assert_contains(out, "x-precopy-info     yes");
    g_assert_cmpint(vus_run(&out2, NULL, cli(), "info", s->socket, NULL), ==,
                    0);
    assert_contains(out2, "region 2  size 0x200000");
    assert_contains(out2, "migration: STOP_COPY PRE_COPY, state RUNNING");
    assert_contains(out2, "irq 2 (MSI-X): 1 vector(s)");
    g_assert_cmpint(vus_run(NULL, NULL, cli(), "write", s->socket, "0",
                            "0x70", "0xabcdef", "--size", "8", NULL), ==, 0);
    g_assert_cmpint(vus_run(&out3, NULL, cli(), "read", s->socket, "0",
                            "0x70", "8", NULL), ==, 0);
    assert_contains(out3, "0xabcdef (11259375)");
    vus_server_stop(s);
}

static void test_state(void)
{
    VusServer *s = vus_server_start("--mem-size", "2M", NULL);
    g_autofree char *out = NULL;
    g_autofree char *out2 = NULL;
    g_autofree char *err = NULL;
    g_autofree char *err2 = NULL;

    /* The path is shown one arc at a time, P2P first. */
    g_assert_cmpint(vus_run(&out, NULL, cli(), "state", s->socket,
                            "stop-copy", NULL), ==, 0);
    assert_contains(out, "RUNNING -> RUNNING_P2P");
    assert_contains(out, "RUNNING_P2P -> STOP ");
    assert_contains(out, "STOP -> STOP_COPY");
    assert_contains(out, "\nSTOP_COPY\n");
    g_assert_cmpint(vus_run(NULL, &err, cli(), "state", s->socket,
                            "pre-copy", NULL), ==, 1);
    assert_contains(err, "no transition STOP_COPY -> PRE_COPY");
    g_assert_cmpint(vus_run(NULL, &err2, cli(), "state", s->socket, "bogus",
                            NULL), ==, 1);
    assert_contains(err2, "state 'bogus': unknown");
    g_assert_cmpint(vus_run(&out2, NULL, cli(), "state", s->socket,
                            "running", "--direct", NULL), ==, 0);
    assert_contains(out2, "STOP_COPY -> RUNNING");
    assert_contains(out2, "\nRUNNING\n");
    vus_server_stop(s);
}

static void test_save_load(void)
{
    VusServer *s1 = vus_server_start("--mem-size", "8M", "--dirty-rate",
                                     "50%", "--seed", "21", NULL);
    VusServer *s2 = vus_server_start("--mem-size", "8M", NULL);
    g_autofree char *file = vus_test_path("device.bin");
    g_autofree char *out = NULL, *out2 = NULL, *chk1 = NULL, *chk2 = NULL;
    g_autofree char *sum1 = NULL, *sum2 = NULL;

    g_assert_cmpint(vus_run(&out, NULL, cli(), "save", s1->socket, file,
                            NULL), ==, 0);
    assert_contains(out, "RUNNING -> PRE_COPY");
    assert_contains(out, "pre-copy pass 1");
    assert_contains(out, "-> STOP_COPY");
    assert_contains(out, "stop-copy data");
    g_assert_cmpint(vus_run(&out2, NULL, cli(), "load", s2->socket, file,
                            NULL), ==, 0);
    assert_contains(out2, "STOP -> RESUMING");
    assert_contains(out2, "RESUMING -> STOP");
    g_assert_cmpint(vus_run(&chk2, NULL, cli(), "dma-check", s2->socket,
                            NULL), ==, 0);
    assert_contains(chk2, "check passed");
    assert_contains(chk2, "seed 21");
    /* The source is stopped: its memory is what was saved. */
    g_assert_cmpint(vus_run(&chk1, NULL, cli(), "dma-check", s1->socket,
                            NULL), ==, 0);
    sum1 = checksum_of(chk1);
    sum2 = checksum_of(chk2);
    g_assert_cmpstr(sum1, ==, sum2);
    unlink(file);
    vus_server_stop(s1);
    vus_server_stop(s2);
}

static void test_migrate(void)
{
    VusServer *s1 = vus_server_start("--mem-size", "8M", "--dirty-rate",
                                     "100%", NULL);
    /* s2 moves its state at a device engine's pace, both ways. */
    VusServer *s2 = vus_server_start("--mem-size", "8M", "--state-rate",
                                     "64M", NULL);
    VusServer *s3 = vus_server_start("--mem-size", "8M", "--no-precopy",
                                     NULL);
    g_autofree char *out = NULL, *out2 = NULL, *chk = NULL, *chk3 = NULL;
    g_autofree char *err = NULL;
    int status;

    status = vus_run(&out, &err, cli(), "migrate", s1->socket, s2->socket,
                     "--threshold", "64K", NULL);
    if (status) {
        g_error("migrate failed with %d:\n%s%s", status, out, err);
    }
    assert_contains(out, "pre-copy pass");
    assert_contains(out, "downtime");
    g_assert_cmpint(vus_run(&chk, NULL, cli(), "dma-check", s2->socket, NULL),
                    ==, 0);
    assert_contains(chk, "check passed");
    /* Onward to a device without PRE_COPY, with no extensions at all. */
    g_assert_cmpint(vus_run(&out2, NULL, cli(), "migrate", s2->socket,
                            s3->socket, "--no-extensions", NULL), ==, 0);
    g_assert_cmpint(vus_run(&chk3, NULL, cli(), "dma-check", s3->socket,
                            NULL), ==, 0);
    assert_contains(chk3, "check passed");
    vus_server_stop(s1);
    vus_server_stop(s2);
    vus_server_stop(s3);
}

static void test_errors(void)
{
    VusServer *s1 = vus_server_start("--mem-size", "2M", NULL);
    VusServer *s2 = vus_server_start("--mem-size", "2M", NULL);
    g_autofree char *nowhere = vus_test_path("nothing-here.sock");
    g_autofree char *file = vus_test_path("cut.bin");
    g_autofree char *err = NULL, *err2 = NULL, *err3 = NULL, *data = NULL;
    gsize len;

    g_assert_cmpint(vus_run(NULL, &err, cli(), "info", nowhere, NULL), ==, 1);
    assert_contains(err, "cannot connect");
    assert_contains(err, nowhere);
    g_assert_cmpint(vus_run(NULL, &err2, cli(), "read", s1->socket, "0",
                            NULL), ==, 1);
    assert_contains(err2, "expected SOCKET REGION OFFSET [COUNT]");

    /* A truncated file is refused by the device, and the CLI says so. */
    g_assert_cmpint(vus_run(NULL, NULL, cli(), "save", s1->socket, file,
                            "--no-precopy", NULL), ==, 0);
    g_assert_true(g_file_get_contents(file, &data, &len, NULL));
    g_assert_true(g_file_set_contents(file, data, len - 10, NULL));
    g_assert_cmpint(vus_run(NULL, &err3, cli(), "load", s2->socket, file,
                            NULL), ==, 1);
    assert_contains(err3, "the device rejected the data");
    assert_contains(err3, "RESUMING");
    unlink(file);
    vus_server_stop(s1);
    vus_server_stop(s2);
}

/* The device refuses bad options by name and does not start. */
static void test_device_options(void)
{
    static const char *const bad[][3] = {
        { "--mem-size", "3M", "power of two" },
        { "--mem-size", "lots", "not a size" },
        { "--fail-arc", "RUNNING-STOP", "expected FROM:TO" },
        { "--fail-arc", "RUNNING:FLYING", "expected FROM:TO" },
        { "--dirty-rate", "fast", "--dirty-rate 'fast'" },
        { "--max-xfer", "1", "--max-xfer '1'" },
        { "--state-rate", "1K", "--state-rate '1K'" },
    };
    g_autofree char *sock = vus_test_path("never.sock");

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        g_autofree char *err = NULL;

        g_assert_cmpint(vus_run(NULL, &err, vus_test_bin("VUS_DMA_BIN"),
                                "--socket", sock, bad[i][0], bad[i][1], NULL),
                        ==, 1);
        assert_contains(err, bad[i][2]);
        g_assert_false(g_file_test(sock, G_FILE_TEST_EXISTS));
    }
}

/*
 * The device's socket: its owner's alone even under umask 0; a second
 * device on the same path is refused while the first keeps serving; a
 * socket file left by a device that died is replaced; a file that is not
 * a socket is refused and kept.
 */
static void test_device_socket(void)
{
    g_autofree char *stale = vus_test_path("stale.sock");
    g_autofree char *file = vus_test_path("not-a-socket");
    g_autofree char *busy = NULL, *refused = NULL, *text = NULL;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    mode_t old_mask = umask(0);
    VusServer *s1 = vus_server_start("--mem-size", "2M", NULL);
    VusServer *s2;
    VFIOUserProxy *p;
    struct stat st;
    int fd;

    umask(old_mask);
    g_assert_cmpint(lstat(s1->socket, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_cmpuint(st.st_mode & 07777, ==, 0600);

    busy = g_strdup_printf("a server is already listening on '%s'", s1->socket);
    g_assert_cmpint(vus_run(NULL, &refused, vus_test_bin("VUS_DMA_BIN"),
                            "--socket", s1->socket, "--mem-size", "2M", NULL),
                    ==, 1);
    assert_contains(refused, busy);
    p = vus_connect(s1, NULL);
    vus_reg_write(p, VDMA_REG_SRC, 0x1234);
    g_assert_cmpuint(vus_reg_read(p, VDMA_REG_SRC), ==, 0x1234);
    vfio_user_disconnect(p);
    vus_server_stop(s1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_strlcpy(sun.sun_path, stale, sizeof(sun.sun_path));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    close(fd);
    s2 = vus_server_start_at(stale, "--mem-size", "2M", NULL);
    p = vus_connect(s2, NULL);
    vfio_user_disconnect(p);
    vus_server_stop(s2);

    g_free(refused);
    g_assert_true(g_file_set_contents(file, "keep me", -1, NULL));
    g_assert_cmpint(vus_run(NULL, &refused, vus_test_bin("VUS_DMA_BIN"),
                            "--socket", file, "--mem-size", "2M", NULL), ==, 1);
    assert_contains(refused, "exists and is not a socket");
    g_assert_true(g_file_get_contents(file, &text, NULL, NULL));
    g_assert_cmpstr(text, ==, "keep me");
    unlink(file);
}

int main(int argc, char **argv)
{
    vus_test_init(&argc, &argv);
    g_test_add_func("/vus/cli/help", test_help);
    g_test_add_func("/vus/cli/inspect", test_inspect);
    g_test_add_func("/vus/cli/state", test_state);
    g_test_add_func("/vus/cli/save-load", test_save_load);
    g_test_add_func("/vus/cli/migrate", test_migrate);
    g_test_add_func("/vus/cli/errors", test_errors);
    g_test_add_func("/vus/cli/device-options", test_device_options);
    g_test_add_func("/vus/cli/device-socket", test_device_socket);
    return g_test_run();
}
