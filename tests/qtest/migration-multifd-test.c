/*
 * Multifd: RAM over several channels next to the main stream, raw and
 * compressed, over unix and tcp; parameters that must match; failure
 * of a channel's peer.
 */
#include "qemu/osdep.h"
#include <signal.h>
#include "migration/framework.h"

static void set_multifd(QTestState *s, int channels, const char *method)
{
    mig_set_cap(s, "multifd", true);
    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate-set-parameters\", "
                        "\"arguments\": {\"multifd-channels\": %d, "
                        "\"multifd-compression\": \"%s\"}}", channels, method);
}

static void multifd_unix(int channels, const char *method)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    /*
     * zlib compresses a few tens of MB/s on a loaded 2-CPU machine: the
     * guest must dirty less than that for the migration to converge.
     */
    g_autoptr(QTestState) src = mig_start_vm(strcmp(method, "none")
        ? "-guest stress,ws=64M,rate=4M" : "");

    set_multifd(src, channels, method);
    set_multifd(dst, channels, method);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\"}}", uri);
    mig_set_fast(src);
    mig_wait_guest_progress(src, 8 * MiB);
    mig_migrate(src, uri);
    mig_check_success(src, dst);

    g_autoptr(JsonNode) q = mig_query(src);
    JsonObject *ram = json_object_get_object_member(qtest_obj(q), "ram");
    /* The pages went on the channels, not on the main stream. */
    g_assert_cmpint(json_object_get_int_member(ram, "multifd-bytes"), >, 0);
    g_assert_cmpint(json_object_get_int_member(ram, "normal"), >=,
                    8 * MiB / 4096);
    if (!strcmp(method, "none")) {
        g_assert_cmpint(json_object_get_int_member(ram, "multifd-bytes"), >=,
                        json_object_get_int_member(ram, "normal") * 4096);
    }
}

static void test_none(void)
{
    multifd_unix(2, "none");
}

static void test_zlib(void)
{
    multifd_unix(2, "zlib");
}

static void test_zstd(void)
{
    multifd_unix(3, "zstd");
}

static void test_tcp_four_channels(void)
{
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *uri = NULL;

    set_multifd(src, 4, "none");
    set_multifd(dst, 4, "none");
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"tcp:127.0.0.1:0\"}}");
    {
        g_autoptr(JsonNode) q = mig_query(dst);
        JsonArray *addrs = json_object_get_array_member(qtest_obj(q),
                                                        "socket-address");
        JsonObject *a = json_array_get_object_element(addrs, 0);

        uri = g_strdup_printf("tcp:127.0.0.1:%s",
                              json_object_get_string_member(a, "port"));
    }
    mig_set_fast(src);
    mig_migrate(src, uri);
    mig_check_success(src, dst);
}

/*
 * A live guest with a return path: several rounds, each synced.  The
 * guest rewrites its 4 MiB eight times during each 1 s pass, so the
 * migration cannot converge unless the guest is starved for a whole
 * pass (with the guest as fast as the channel it converged after a
 * few short passes, sometimes before the third sync).
 */
static void test_rounds_with_return_path(void)
{
    const char *guest = "-guest stress,ws=4M,rate=32M";
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst(uri, guest);
    g_autoptr(QTestState) src = mig_start_vm(guest);

    set_multifd(src, 2, "none");
    set_multifd(dst, 2, "none");
    mig_set_cap(src, "return-path", true);
    mig_set_cap(dst, "return-path", true);
    mig_set_param(src, "max-bandwidth", 4 * MiB);
    mig_set_param(src, "downtime-limit", 1);
    mig_wait_guest_progress(src, 8 * MiB);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 3, 30000);
    mig_set_param(src, "max-bandwidth", 0);
    mig_set_param(src, "downtime-limit", 300);
    mig_check_success(src, dst);

    /*
     * The guest never stops writing: the last pass, with the VM stopped,
     * had pages, and they went on the channels.
     */
    g_autoptr(JsonNode) q = mig_query(src);
    JsonObject *ram = json_object_get_object_member(qtest_obj(q), "ram");
    g_assert_cmpint(json_object_get_int_member(ram, "downtime-bytes"), >=,
                    4096);
    g_assert_cmpint(json_object_get_int_member(ram, "downtime-bytes"), <=,
                    json_object_get_int_member(ram, "multifd-bytes"));
}

/*
 * Switch over in the middle of a pass, with tens of MiB still to go: the
 * flush before the final pass must reach the destination before the
 * final pass fills the channels (which wait at their SYNC for it).
 */
static void test_switchover_mid_pass(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst(uri, "-guest stress,ws=64M");
    g_autoptr(QTestState) src = mig_start_vm("-guest stress,ws=64M");

    set_multifd(src, 2, "none");
    set_multifd(dst, 2, "none");
    mig_wait_guest_progress(src, 64 * MiB);
    mig_set_param(src, "max-bandwidth", 32 * MiB);
    mig_set_param(src, "downtime-limit", 100000);
    mig_migrate(src, uri);
    mig_check_success(src, dst);
    g_autoptr(JsonNode) q = mig_query(src);
    JsonObject *ram = json_object_get_object_member(qtest_obj(q), "ram");
    g_assert_cmpint(json_object_get_int_member(ram, "dirty-sync-count"), <=, 2);
}

static void expect_mismatch(const char *src_method, const char *dst_method,
                            int src_channels, int dst_channels)
{
    static const char *const failed[] = { "failed", NULL };
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    g_autoptr(QTestState) src = mig_start_vm("");

    set_multifd(src, src_channels, src_method);
    set_multifd(dst, dst_channels, dst_method);
    /*
     * Without the return path a source whose stream is small (here: a
     * guest that has hardly written yet, on a loaded machine) can write
     * it all into the socket buffers and complete before the refusal
     * breaks a write.  The return path tells it the verdict.
     */
    mig_set_cap(src, "return-path", true);
    mig_set_cap(dst, "return-path", true);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": false}}", uri);
    mig_set_fast(src);
    mig_migrate(src, uri);
    g_autofree char *st = mig_wait_status(dst, failed, 30000);
    g_autofree char *st2 = mig_wait_status(src, failed, 30000);
    mig_assert_runstate(src, "running");
    mig_assert_guest_ok(src);
}

static void test_compression_mismatch(void)
{
    expect_mismatch("zlib", "zstd", 2, 2);
}

static void test_channels_mismatch(void)
{
    expect_mismatch("none", "none", 2, 3);
}

static void test_needs_socket(void)
{
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *err = NULL;

    mig_set_cap(src, "multifd", true);
    err = mig_migrate_expect_error(src, "exec:cat > /dev/null");
    g_assert_nonnull(strstr(err, "'multifd'"));
    g_autofree char *e2 = qtest_qmp_expect_error(src, "GenericError",
        "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"multifd-compression\": \"lz4\"}}");
    g_assert_nonnull(strstr(e2, "multifd-compression"));
    g_autofree char *e3 = qtest_qmp_expect_error(src, "GenericError",
        "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"multifd-channels\": 0}}");
    g_assert_nonnull(strstr(e3, "multifd-channels"));
}

static void test_dst_killed(void)
{
    static const char *const failed[] = { "failed", NULL };
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    g_autoptr(QTestState) src = mig_start_vm("");

    set_multifd(src, 2, "none");
    set_multifd(dst, 2, "none");
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\"}}", uri);
    mig_set_param(src, "max-bandwidth", 16 * MiB);
    mig_set_param(src, "downtime-limit", 1);
    mig_wait_guest_progress(src, 8 * MiB);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, 20000);
    qtest_kill(dst, SIGKILL);
    qtest_wait_exit(dst, 10000);
    g_autofree char *st = mig_wait_status(src, failed, 20000);
    mig_assert_runstate(src, "running");
    mig_assert_guest_ok(src);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/multifd/none", test_none);
    g_test_add_func("/migration/multifd/zlib", test_zlib);
    g_test_add_func("/migration/multifd/zstd", test_zstd);
    g_test_add_func("/migration/multifd/tcp-4-channels",
                    test_tcp_four_channels);
    g_test_add_func("/migration/multifd/rounds-return-path",
                    test_rounds_with_return_path);
    g_test_add_func("/migration/multifd/switchover-mid-pass",
                    test_switchover_mid_pass);
    g_test_add_func("/migration/multifd/compression-mismatch",
                    test_compression_mismatch);
    g_test_add_func("/migration/multifd/channels-mismatch",
                    test_channels_mismatch);
    g_test_add_func("/migration/multifd/needs-socket", test_needs_socket);
    g_test_add_func("/migration/multifd/dst-killed", test_dst_killed);
    return g_test_run();
}
