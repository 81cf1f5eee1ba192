/*
 * Precopy of a running stress guest over every transport: unix, tcp,
 * fd (getfd), exec and file, the "channels" form of migrate, and the
 * run states before and after, as in QEMU.
 */
#include "qemu/osdep.h"
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "migration/framework.h"

static void test_unix(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");
    /* As in QEMU 10.0 and later: every switchover passes through device. */
    static const char *const src_events[] = {
        "setup", "active", "device", "completed", NULL
    };

    mig_set_cap(src, "events", true);
    mig_set_cap(dst, "events", true);
    mig_set_fast(src);
    mig_wait_guest_progress(src, 8 * MiB);
    mig_migrate(src, uri);
    mig_check_success(src, dst);

    /* Both sides said what happened, in order. */
    mig_assert_status_events(src, src_events);
    for (const char *want = "active"; want; ) {
        g_autoptr(JsonNode) ev = qtest_qmp_eventwait(dst, "MIGRATION", 5000);

        g_assert_nonnull(ev);
        if (!strcmp(qtest_get_str(ev, "status"), want)) {
            want = !strcmp(want, "active") ? "completed" : NULL;
        }
    }

    /* The source reports what it did. */
    g_autoptr(JsonNode) q = mig_query(src);
    JsonObject *ram = json_object_get_object_member(qtest_obj(q), "ram");
    g_assert_cmpint(json_object_get_int_member(ram, "total"), ==, 128 * MiB);
    /* The guest had written 8 MiB of distinct pages before we started. */
    g_assert_cmpint(json_object_get_int_member(ram, "normal"), >=,
                    8 * MiB / 4096);
    g_assert_cmpint(json_object_get_int_member(ram, "normal-bytes"), ==,
                    json_object_get_int_member(ram, "normal") * 4096);
    g_assert_cmpint(json_object_get_int_member(ram, "transferred"), >=,
                    json_object_get_int_member(ram, "normal-bytes"));
    g_assert_cmpint(json_object_get_int_member(ram, "remaining"), ==, 0);
    g_assert_true(json_object_has_member(qtest_obj(q), "downtime"));
    g_assert_cmpint(qtest_get_int(q, "total-time"), >=,
                    qtest_get_int(q, "downtime"));
}

/* Connect to the UNIX socket @path and hang up without a byte. */
static void probe_and_close(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    close(fd);
}

/*
 * A destination's socket is refused to a second vmig, whose check that
 * the path is in use (a connection closed at once), like any other
 * connection that hangs up before its first byte, is no migration: the
 * destination keeps listening, and the real source then migrates.
 */
static void test_unix_probe_ignored(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *args = g_strdup_printf(MIG_TEST_MACHINE " -incoming %s",
                                            uri);
    g_autofree char *err = NULL;
    g_autofree char *st = NULL;

    probe_and_close(path);
    g_assert_cmpint(qtest_run(args, NULL, &err), ==, 1);
    g_assert_nonnull(strstr(err, "a server is already listening"));
    probe_and_close(path);
    st = mig_status(dst);
    g_assert_cmpstr(st, ==, "setup");
    mig_set_fast(src);
    mig_migrate(src, uri);
    mig_check_success(src, dst);
}

static void test_tcp(void)
{
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *uri = NULL;

    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"tcp:127.0.0.1:0\"}}");
    /* Port 0: the destination tells which port it got. */
    {
        g_autoptr(JsonNode) q = mig_query(dst);
        JsonArray *addrs = json_object_get_array_member(qtest_obj(q),
                                                        "socket-address");
        JsonObject *a = json_array_get_object_element(addrs, 0);

        g_assert_cmpstr(json_object_get_string_member(a, "type"), ==, "inet");
        uri = g_strdup_printf("tcp:127.0.0.1:%s",
                              json_object_get_string_member(a, "port"));
        g_assert_cmpstr(json_object_get_string_member(a, "port"), !=, "0");
    }
    mig_set_fast(src);
    mig_migrate(src, uri);
    mig_check_success(src, dst);
}

static void test_fd(void)
{
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    g_autoptr(QTestState) src = mig_start_vm("");
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    g_autoptr(JsonNode) r1 = qtest_qmp_fds(src, &sv[0], 1,
        "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"mig\"}}");
    g_assert_true(json_object_has_member(qtest_obj(r1), "return"));
    g_autoptr(JsonNode) r2 = qtest_qmp_fds(dst, &sv[1], 1,
        "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"mig\"}}");
    g_assert_true(json_object_has_member(qtest_obj(r2), "return"));
    close(sv[0]);
    close(sv[1]);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"fd:mig\"}}");
    mig_set_fast(src);
    mig_migrate(src, "fd:mig");
    mig_check_success(src, dst);
}

static void test_fd_unknown_name(void)
{
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *err = mig_migrate_expect_error(src, "fd:nosuchfd");

    g_assert_nonnull(strstr(err, "nosuchfd"));
    mig_assert_runstate(src, "running");
}

static void test_exec(void)
{
    g_autofree char *fifo = qtest_tmp_path("mig", "fifo");
    g_autofree char *in = NULL, *out = NULL;

    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    in = g_strdup_printf("exec:cat %s", fifo);
    out = g_strdup_printf("exec:cat > %s", fifo);
    g_autoptr(QTestState) dst = mig_start_dst(in, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    mig_set_fast(src);
    mig_migrate(src, out);
    mig_check_success(src, dst);
}

static void test_file(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "img");
    g_autofree char *uri = g_strdup_printf("file:%s,offset=0x1000", path);
    struct stat st;

    {
        g_autoptr(QTestState) src = mig_start_vm("");

        mig_set_fast(src);
        mig_wait_guest_progress(src, 8 * MiB);
        mig_migrate(src, uri);
        mig_wait_completed(src, 30000);
        mig_assert_runstate(src, "postmigrate");
        /* The source's guest is as it was saved: still consistent. */
        mig_assert_guest_ok(src);
    }
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_size, >, 0x1000 + 8 * MiB);
    {
        g_autoptr(QTestState) dst = mig_start_dst(uri, "");

        mig_wait_completed(dst, 30000);
        mig_assert_runstate(dst, "running");
        mig_wait_guest_progress(dst, 8 * MiB);
        mig_assert_guest_ok(dst);
    }
}

static void test_channels(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    g_autoptr(QTestState) src = mig_start_vm("");
    const char *chan = "[{\"channel-type\": \"main\", \"addr\": "
                       "{\"transport\": \"socket\", \"type\": \"unix\", "
                       "\"path\": \"%s\"}}]";
    g_autofree char *channels = g_strdup_printf(chan, path);

    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"channels\": %s}}", channels);
    mig_set_fast(src);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate\", "
                        "\"arguments\": {\"channels\": %s}}", channels);
    mig_check_success(src, dst);
}

static void test_paused_source(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    mig_wait_guest_progress(src, 8 * MiB);
    qtest_qmp_assert_ok(src, "{\"execute\": \"stop\"}");
    mig_set_fast(src);
    mig_migrate(src, uri);
    mig_wait_completed(src, 30000);
    mig_wait_completed(dst, 30000);
    /* A paused VM stays paused: the destination waits for "cont". */
    g_usleep(100 * 1000);
    mig_assert_runstate(dst, "paused");
    mig_assert_guest_ok(dst);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"cont\"}");
    mig_wait_guest_progress(dst, 8 * MiB);
    mig_assert_guest_ok(dst);
}

/*
 * As in QEMU: a source that has migrated (postmigrate) refuses to migrate
 * again, with QEMU's words, and changes nothing; once "cont" runs it
 * here again it may.
 */
static void test_postmigrate_refused(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "img");
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *err = NULL;
    g_autofree char *st = NULL;

    mig_set_fast(src);
    mig_migrate(src, uri);
    mig_wait_completed(src, 30000);
    mig_assert_runstate(src, "postmigrate");
    err = mig_migrate_expect_error(src, uri);
    g_assert_cmpstr(err, ==, "Can't migrate the vm that was paused due to "
                    "previous migration");
    st = mig_status(src);
    g_assert_cmpstr(st, ==, "completed");
    mig_assert_runstate(src, "postmigrate");
    qtest_qmp_assert_ok(src, "{\"execute\": \"cont\"}");
    mig_wait_guest_progress(src, 1 * MiB);
    mig_migrate(src, uri);
    mig_wait_completed(src, 30000);
    mig_assert_runstate(src, "postmigrate");
}

/*
 * The destination's run state, as in QEMU: a source that never ran (-S,
 * prelaunch) gives a destination in prelaunch, whatever its own -S; a
 * running source gives a running destination, or a paused one with -S.
 * (A paused source: test_paused_source.)
 */
static void migrate_runstates(const char *src_args, const char *dst_args,
                              const char *dst_state)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, dst_args);
    g_autoptr(QTestState) src = mig_start_vm(src_args);

    mig_set_fast(src);
    mig_migrate(src, uri);
    mig_wait_completed(src, 30000);
    mig_assert_runstate(src, "postmigrate");
    mig_wait_completed(dst, 30000);
    mig_assert_runstate(dst, dst_state);
    mig_assert_guest_ok(dst);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"cont\"}");
    mig_assert_runstate(dst, "running");
    mig_wait_guest_progress(dst, 8 * MiB);
    mig_assert_guest_ok(dst);
}

static void test_prelaunch_source(void)
{
    migrate_runstates("-S", "", "prelaunch");
}

static void test_stopped_destination(void)
{
    migrate_runstates("", "-S", "paused");
}

/*
 * Destinations whose RAM is not fresh memfd: anonymous memory (pages
 * faulted in ahead of the data), and a backing file full of garbage,
 * shared or private, which the load must clear: the source sends no zero
 * page the destination has no data for, and the guest check insists
 * that never-written pages are zero.
 */
static void migrate_to_backend(const char *dst_backend)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autofree char *dst_args = g_strdup_printf(
        "%s -machine memory-backend=mem", dst_backend);
    g_autoptr(QTestState) dst = mig_start_dst(uri, dst_args);
    g_autoptr(QTestState) src = mig_start_vm(
        "-object memory-backend-memfd,id=mem,size=128M "
        "-machine memory-backend=mem");

    mig_set_fast(src);
    mig_wait_guest_progress(src, 8 * MiB);
    mig_migrate(src, uri);
    mig_check_success(src, dst);
}

static void test_anonymous_ram(void)
{
    migrate_to_backend("-object memory-backend-ram,id=mem,size=128M");
}

static char *garbage_file(void)
{
    char *path = qtest_tmp_path("garbage", "ram");
    g_autofree char *junk = g_malloc(128 * MiB);

    memset(junk, 0xa5, 128 * MiB);
    g_assert_true(g_file_set_contents(path, junk, 128 * MiB, NULL));
    return path;
}

static void test_garbage_file_shared(void)
{
    g_autofree char *file = garbage_file();
    g_autofree char *backend = g_strdup_printf(
        "-object memory-backend-file,id=mem,size=128M,mem-path=%s,share=on",
        file);

    migrate_to_backend(backend);
}

static void test_garbage_file_private(void)
{
    g_autofree char *file = garbage_file();
    g_autofree char *backend = g_strdup_printf(
        "-object memory-backend-file,id=mem,size=128M,mem-path=%s,share=off",
        file);

    migrate_to_backend(backend);
}

static void test_bad_uri(void)
{
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *e1 = mig_migrate_expect_error(src, "rdma:x:1");
    g_autofree char *e2 = mig_migrate_expect_error(src, "defer");
    g_autofree char *e3 = qtest_qmp_expect_error(src, "GenericError",
        "{\"execute\": \"migrate-incoming\", \"arguments\": "
        "{\"uri\": \"unix:/nonexistent\"}}");

    g_assert_nonnull(strstr(e1, "unknown transport"));
    g_assert_nonnull(strstr(e2, "migrate-incoming only"));
    g_assert_nonnull(strstr(e3, "-incoming defer"));
    mig_assert_runstate(src, "running");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/precopy/unix", test_unix);
    g_test_add_func("/migration/precopy/unix-probe-ignored",
                    test_unix_probe_ignored);
    g_test_add_func("/migration/precopy/tcp", test_tcp);
    g_test_add_func("/migration/precopy/fd", test_fd);
    g_test_add_func("/migration/precopy/fd-unknown-name", test_fd_unknown_name);
    g_test_add_func("/migration/precopy/exec", test_exec);
    g_test_add_func("/migration/precopy/file", test_file);
    g_test_add_func("/migration/precopy/channels", test_channels);
    g_test_add_func("/migration/precopy/paused-source", test_paused_source);
    g_test_add_func("/migration/precopy/prelaunch-source",
                    test_prelaunch_source);
    g_test_add_func("/migration/precopy/stopped-destination",
                    test_stopped_destination);
    g_test_add_func("/migration/precopy/postmigrate-refused",
                    test_postmigrate_refused);
    g_test_add_func("/migration/precopy/anonymous-ram", test_anonymous_ram);
    g_test_add_func("/migration/precopy/garbage-file-shared",
                    test_garbage_file_shared);
    g_test_add_func("/migration/precopy/garbage-file-private",
                    test_garbage_file_private);
    g_test_add_func("/migration/precopy/bad-uri", test_bad_uri);
    return g_test_run();
}
