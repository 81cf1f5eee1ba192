/*
 * Cancel and failure: migrate_cancel in each status, the destination
 * killed mid-migration, the source killed.  The source must keep its VM
 * as it was (running, or paused), report why, and be able to migrate
 * again; the destination must fail cleanly.
 */
#include "qemu/osdep.h"
#include <signal.h>
#include "migration/framework.h"

static void cancel_and_check(QTestState *src)
{
    static const char *const cancelled[] = { "cancelled", NULL };

    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
    g_autofree char *st = mig_wait_status(src, cancelled, 20000);
}

/*
 * A migration that cannot finish on its own: the guest keeps dirtying
 * pages and a 1 ms downtime limit never lets it switch over.  The guest
 * must be under way first, or the first passes may find nothing dirty.
 */
static void make_slow(QTestState *src)
{
    /*
     * 1 MiB/s against the 8 MiB the guest writes first: the first pass
     * alone takes seconds, however loaded the machine (a starved guest
     * that dirties nothing could otherwise let it complete).
     */
    mig_set_param(src, "max-bandwidth", 1 * MiB);
    mig_set_param(src, "downtime-limit", 1);
    mig_wait_guest_progress(src, 8 * MiB);
}

/* After a failed or cancelled attempt the source migrates fine. */
static void migrate_again(QTestState *src)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");

    mig_set_param(src, "max-bandwidth", 0);
    mig_set_param(src, "downtime-limit", 300);
    mig_migrate(src, uri);
    mig_check_success(src, dst);
}

static void test_cancel_active(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    mig_set_cap(src, "events", true);
    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, 20000);
    cancel_and_check(src);
    g_autoptr(JsonNode) ev = qtest_qmp_eventwait(src, "MIGRATION", 1000);
    g_assert_nonnull(ev);
    mig_assert_runstate(src, "running");
    mig_wait_guest_progress(src, 8 * MiB);
    mig_assert_guest_ok(src);
    /* The destination saw the stream end early and, by default, exits. */
    g_assert_cmpint(qtest_wait_exit(dst, 20000), ==, 1);
    migrate_again(src);
}

/* quit in the middle of a migration: a clean exit, not a crash. */
static void test_quit_while_active(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    QTestState *src = mig_start_vm("");

    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, 20000);
    qtest_qmp_assert_ok(src, "{\"execute\": \"quit\"}");
    g_assert_cmpint(qtest_wait_exit(src, 20000), ==, 0);
    qtest_quit(src);
    g_assert_cmpint(qtest_wait_exit(dst, 20000), ==, 1);
}

static void test_cancel_immediately(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    /* Whatever state it reached (setup or active), cancel wins. */
    make_slow(src);
    mig_migrate(src, uri);
    cancel_and_check(src);
    mig_assert_runstate(src, "running");
    mig_assert_guest_ok(src);
    migrate_again(src);
}

static void test_cancel_pre_switchover(void)
{
    static const char *const pre[] = { "pre-switchover", NULL };
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    mig_set_cap(src, "pause-before-switchover", true);
    mig_set_fast(src);
    mig_migrate(src, uri);
    g_autofree char *st = mig_wait_status(src, pre, 20000);
    mig_assert_runstate(src, "finish-migrate");
    cancel_and_check(src);
    /* The VM was running before the switchover: it runs again. */
    mig_assert_runstate(src, "running");
    mig_wait_guest_progress(src, 8 * MiB);
    mig_assert_guest_ok(src);
    mig_set_cap(src, "pause-before-switchover", false);
    migrate_again(src);
}

static void test_cancel_paused_vm(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    qtest_qmp_assert_ok(src, "{\"execute\": \"stop\"}");
    mig_set_cap(src, "pause-before-switchover", true);
    mig_set_fast(src);
    mig_migrate(src, uri);
    {
        static const char *const pre[] = { "pre-switchover", NULL };
        g_autofree char *st = mig_wait_status(src, pre, 20000);
    }
    cancel_and_check(src);
    /* A VM paused by the user stays paused. */
    mig_assert_runstate(src, "paused");
    mig_assert_guest_ok(src);
}

static void test_cancel_after_completion(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    mig_set_fast(src);
    mig_migrate(src, uri);
    mig_check_success(src, dst);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
    g_autofree char *st = mig_status(src);
    g_assert_cmpstr(st, ==, "completed");
}

/*
 * As in QEMU, migrate_cancel with no migration, or after one has ended,
 * succeeds and changes nothing.
 */
static void test_cancel_none(void)
{
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *st = NULL;

    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
    st = mig_status(src);
    g_assert_cmpstr(st, ==, "");
    mig_assert_runstate(src, "running");
}

/*
 * migrate_cancel in status `device`: QMP waits for the BQL, which the
 * migration thread holds until the whole stream is out, so the cancel
 * comes too late.  QEMU would cancel and resume the source while the
 * destination may run the VM; vmig refuses with an error that says so,
 * and the migration ends as the destination says.  To hold the source
 * in `device` without luck: a stopped destination, a stream that fits in
 * the socket's buffer (idle guest, whose RAM is never written and never
 * sent) and a return path, so the source waits for SHUT.
 */
static void test_cancel_device(void)
{
    static const char *const device[] = { "device", NULL };
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "-guest idle");
    g_autoptr(QTestState) src = mig_start_vm("-guest idle");

    mig_set_cap(src, "return-path", true);
    mig_set_cap(dst, "return-path", true);
    mig_set_fast(src);
    qtest_kill(dst, SIGSTOP);
    mig_migrate(src, uri);
    {
        g_autofree char *st = mig_wait_status(src, device, 20000);
    }
    mig_assert_error(src, "migrate_cancel", "{}", "too late to cancel: the "
                     "whole migration stream has been sent");
    {
        g_autofree char *st = mig_status(src);

        g_assert_cmpstr(st, ==, "device");
    }
    mig_assert_runstate(src, "finish-migrate");
    qtest_kill(dst, SIGCONT);
    mig_wait_completed(src, 20000);
    mig_wait_completed(dst, 20000);
    mig_assert_runstate(src, "postmigrate");
    mig_assert_guest_ok(dst);
}

/*
 * The destination dies mid-migration: the source fails with an error
 * naming the address, runs on, verifies, and migrates again.
 */
static void dst_killed(bool return_path)
{
    static const char *const failed[] = { "failed", NULL };
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    mig_set_cap(src, "return-path", return_path);
    mig_set_cap(dst, "return-path", return_path);
    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, 20000);
    qtest_kill(dst, SIGKILL);
    qtest_wait_exit(dst, 10000);
    g_autofree char *st = mig_wait_status(src, failed, 20000);
    g_autoptr(JsonNode) q = mig_query(src);
    g_assert_nonnull(strstr(qtest_get_str(q, "error-desc"), "unix:"));
    mig_assert_runstate(src, "running");
    mig_wait_guest_progress(src, 8 * MiB);
    mig_assert_guest_ok(src);
    mig_set_cap(src, "return-path", false);
    migrate_again(src);
}

static void test_dst_killed(void)
{
    dst_killed(false);
}

static void test_dst_killed_with_return_path(void)
{
    dst_killed(true);
}

static void test_src_killed(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");

    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, 20000);
    qtest_kill(src, SIGKILL);
    /* exit-on-error is the default: the destination fails and exits 1. */
    g_assert_cmpint(qtest_wait_exit(dst, 20000), ==, 1);
}

static void test_src_killed_stay_up(void)
{
    static const char *const failed[] = { "failed", NULL };
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");
    g_autoptr(QTestState) src = mig_start_vm("");

    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": false}}", uri);
    make_slow(src);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, 20000);
    qtest_kill(src, SIGKILL);
    g_autofree char *st = mig_wait_status(dst, failed, 20000);
    g_autoptr(JsonNode) q = mig_query(dst);
    g_assert_nonnull(strstr(qtest_get_str(q, "error-desc"), "truncated"));
    mig_assert_runstate(dst, "inmigrate");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/cancel/none", test_cancel_none);
    g_test_add_func("/migration/cancel/immediately", test_cancel_immediately);
    g_test_add_func("/migration/cancel/active", test_cancel_active);
    g_test_add_func("/migration/cancel/pre-switchover",
                    test_cancel_pre_switchover);
    g_test_add_func("/migration/cancel/paused-vm", test_cancel_paused_vm);
    g_test_add_func("/migration/cancel/device", test_cancel_device);
    g_test_add_func("/migration/cancel/after-completion",
                    test_cancel_after_completion);
    g_test_add_func("/migration/quit-while-active", test_quit_while_active);
    g_test_add_func("/migration/failure/dst-killed", test_dst_killed);
    g_test_add_func("/migration/failure/dst-killed-return-path",
                    test_dst_killed_with_return_path);
    g_test_add_func("/migration/failure/src-killed", test_src_killed);
    g_test_add_func("/migration/failure/src-killed-stay-up",
                    test_src_killed_stay_up);
    return g_test_run();
}
