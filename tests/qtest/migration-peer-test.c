/*
 * A peer that stops answering: a destination frozen with SIGSTOP fails
 * the migration within x-channel-timeout, in `active` and in `device`,
 * and the source VM runs on; migrate_cancel and yank reach a migration
 * that waits on a frozen peer, even at the switchover.
 */
#include "qemu/osdep.h"
#include <signal.h>
#include "migration/framework.h"

#define TIMEOUT_MS 1500

/* Long enough for a bounded failure on a loaded machine, not for ever. */
#define WAIT_MS 30000

static const char *const cancelled[] = { "cancelled", NULL };

/* The source runs its guest as before and migrates again, to a new peer. */
static void source_healthy(QTestState *src)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");

    mig_assert_runstate(src, "running");
    mig_wait_guest_progress(src, 8 * MiB);
    mig_assert_guest_ok(src);
    mig_set_cap(src, "pause-before-switchover", false);
    mig_set_cap(src, "return-path", false);
    mig_set_fast(src);
    mig_set_param(src, "downtime-limit", 300);
    mig_migrate(src, uri);
    mig_check_success(src, dst);
}

/* Slow enough that the first pass outlasts the freeze. */
static void make_slow(QTestState *src)
{
    mig_set_param(src, "max-bandwidth", 4 * MiB);
    mig_set_param(src, "downtime-limit", 1);
    mig_wait_guest_progress(src, 8 * MiB);
}

/* Frozen during precopy: the writes find no room, the bound fails them. */
static void test_frozen_active(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    mig_set_param(src, "x-channel-timeout", TIMEOUT_MS);
    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, WAIT_MS);
    qtest_kill(dst, SIGSTOP);
    g_autofree char *desc = mig_wait_failed(src, WAIT_MS);

    g_assert_nonnull(strstr(desc, "took no data for 1500 ms"));
    g_assert_nonnull(strstr(desc, uri + strlen("unix:")));
    qtest_kill(dst, SIGKILL);
    source_healthy(src);
}

/*
 * Frozen at the switchover: the source VM is stopped in `device` while
 * the final state finds no room.  The bound ends it, and the VM resumes.
 * A large downtime limit leaves much more to send at the switchover than
 * the socket holds.
 */
static QTestState *start_frozen_switchover(QTestState **dstp,
                                           unsigned timeout_ms)
{
    static const char *const pre[] = { "pre-switchover", NULL };
    static const char *const device[] = { "device", NULL };
    g_autofree char *uri = mig_sock_uri();
    QTestState *dst = mig_start_dst("defer", "");
    QTestState *src = mig_start_vm("-guest stress,ws=64M");

    mig_set_cap(dst, "return-path", true);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\"}}", uri);
    mig_set_cap(src, "return-path", true);
    mig_set_cap(src, "pause-before-switchover", true);
    mig_set_param(src, "x-channel-timeout", timeout_ms);
    mig_set_param(src, "downtime-limit", 2000);
    mig_migrate(src, uri);
    g_autofree char *st = mig_wait_status(src, pre, WAIT_MS);
    qtest_kill(dst, SIGSTOP);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-continue\", "
                        "\"arguments\": {\"state\": \"pre-switchover\"}}");
    g_autofree char *st2 = mig_wait_status(src, device, WAIT_MS);
    *dstp = dst;
    return src;
}

static void test_frozen_device(void)
{
    g_autoptr(QTestState) dst = NULL;
    g_autoptr(QTestState) src = start_frozen_switchover(&dst, TIMEOUT_MS);
    g_autofree char *desc = mig_wait_failed(src, WAIT_MS);

    g_assert_true(strstr(desc, "took no data for 1500 ms") ||
                  strstr(desc, "did not confirm the load within 1500 ms"));
    qtest_kill(dst, SIGKILL);
    source_healthy(src);
}

/* Without a bound, migrate_cancel still reaches a stuck switchover. */
static void test_cancel_frozen_device(void)
{
    g_autoptr(QTestState) dst = NULL;
    g_autoptr(QTestState) src = start_frozen_switchover(&dst, 0);

    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
    g_autofree char *st = mig_wait_status(src, cancelled, WAIT_MS);
    qtest_kill(dst, SIGKILL);
    source_healthy(src);
}

static void assert_yank_instances(QTestState *s, const char *want)
{
    g_autoptr(JsonNode) r = qtest_qmp(s, "{\"execute\": \"query-yank\"}");
    JsonNode *ret = json_object_get_member(qtest_obj(r), "return");
    g_autofree char *text = json_to_string(ret, FALSE);

    g_assert_cmpstr(text, ==, want);
}

static void yank(QTestState *s)
{
    qtest_qmp_assert_ok(s, "{\"execute\": \"yank\", \"arguments\": "
                        "{\"instances\": [{\"type\": \"migration\"}]}}");
}

static void assert_yanked(QTestState *s)
{
    g_autofree char *desc = mig_wait_failed(s, WAIT_MS);

    g_assert_nonnull(strstr(desc, "yanked"));
}

/* query-yank and yank's arguments, as QEMU has them. */
static void test_yank_qmp(void)
{
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    char *desc;

    assert_yank_instances(src, "[]");
    assert_yank_instances(dst, "[{\"type\":\"migration\"}]");
    desc = qtest_qmp_expect_error(src, "DeviceNotFound", "{\"execute\": "
                                  "\"yank\", \"arguments\": {\"instances\": "
                                  "[{\"type\": \"migration\"}]}}");
    g_assert_nonnull(strstr(desc, "Instance 'migration' not found"));
    g_free(desc);
    desc = qtest_qmp_expect_error(src, "DeviceNotFound", "{\"execute\": "
                                  "\"yank\", \"arguments\": {\"instances\": "
                                  "[{\"type\": \"chardev\", \"id\": \"x\"}]}}");
    g_assert_nonnull(strstr(desc, "vmig has no chardevs"));
    g_free(desc);
    mig_assert_error(src, "yank", "{\"instances\": [{\"type\": \"disk\"}]}",
                     "'instances[0].type' does not accept value 'disk'");
    mig_assert_error(src, "yank", "{\"instances\": [7]}",
                     "'instances[0]', expected: object");
    mig_assert_error(src, "yank", "{}", "'instances'");
    /* An empty list yanks nothing, as in QEMU. */
    qtest_qmp_assert_ok(src, "{\"execute\": \"yank\", \"arguments\": "
                        "{\"instances\": []}}");
    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, WAIT_MS);
    assert_yank_instances(src, "[{\"type\":\"migration\"}]");
    mig_set_fast(src);
    mig_set_param(src, "downtime-limit", 300);
    mig_check_success(src, dst);
    assert_yank_instances(src, "[]");
    assert_yank_instances(dst, "[]");
}

static void test_yank_active(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, WAIT_MS);
    yank(src);
    assert_yanked(src);
    /* The destination saw its stream end in the middle, and exits. */
    g_assert_cmpint(qtest_wait_exit(dst, WAIT_MS), ==, 1);
    source_healthy(src);
}

/* yank on the destination side fails both. */
static void test_yank_destination(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    g_autoptr(QTestState) src = mig_start_vm("");

    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": false}}", uri);
    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, WAIT_MS);
    yank(dst);
    assert_yanked(dst);
    g_autofree char *desc = mig_wait_failed(src, WAIT_MS);

    g_test_message("source: %s", desc);
    source_healthy(src);
}

static void test_yank_device(void)
{
    g_autoptr(QTestState) dst = NULL;
    g_autoptr(QTestState) src = start_frozen_switchover(&dst, 0);

    yank(src);
    assert_yanked(src);
    qtest_kill(dst, SIGKILL);
    source_healthy(src);
}

static void test_yank_multifd(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    g_autoptr(QTestState) src = mig_start_vm("");

    mig_set_cap(src, "multifd", true);
    mig_set_cap(dst, "multifd", true);
    mig_set_param(src, "multifd-channels", 4);
    mig_set_param(dst, "multifd-channels", 4);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\"}}", uri);
    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, WAIT_MS);
    yank(src);
    assert_yanked(src);
    mig_set_cap(src, "multifd", false);
    source_healthy(src);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/peer/frozen-active", test_frozen_active);
    g_test_add_func("/migration/peer/frozen-device", test_frozen_device);
    g_test_add_func("/migration/peer/cancel-frozen-device",
                   test_cancel_frozen_device);
    g_test_add_func("/migration/yank/qmp", test_yank_qmp);
    g_test_add_func("/migration/yank/active", test_yank_active);
    g_test_add_func("/migration/yank/destination", test_yank_destination);
    g_test_add_func("/migration/yank/device", test_yank_device);
    g_test_add_func("/migration/yank/multifd", test_yank_multifd);
    return g_test_run();
}
