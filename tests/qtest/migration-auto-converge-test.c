/*
 * auto-converge: a guest that rewrites its working set faster than the
 * channel carries it never converges with plain precopy; with the
 * capability its vCPUs are throttled more and more until it does.  The
 * throttle ends with the migration, whether it completes, is cancelled
 * or fails.
 *
 * Pass/fail depends on no clock: non-convergence is counted in passes,
 * convergence waits without a deadline of its own (meson's is the
 * clock), and "full speed" is half the rate measured before.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"

/*
 * Three steps to the top (50, 75, 99): the throttle is seen to rise, and
 * the test stays short.  (The defaults take nine steps: 20, 30, ... 99.)
 */
static void set_fast_throttle(QTestState *s)
{
    mig_set_param(s, "cpu-throttle-initial", 50);
    mig_set_param(s, "cpu-throttle-increment", 25);
}

static void test_plain_does_not_converge(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, MIG_TEST_BUSY_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(MIG_TEST_BUSY_GUEST);
    static const char *const done[] = { "cancelled", NULL };
    g_autofree char *st = NULL;

    mig_wait_guest_progress(src, 256 * MiB);
    mig_migrate(src, uri);
    /* Each pass finds the whole working set dirty again. */
    mig_wait_sync_count(src, 6, 60000);
    g_assert_cmpint(mig_throttle_percentage(src), ==, 0);
    g_assert_cmpint(mig_guest_throttle_us(src), ==, 0);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
    st = mig_wait_status(src, done, 30000);
    mig_assert_runstate(src, "running");
}

static void test_converges(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, MIG_TEST_BUSY_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(MIG_TEST_BUSY_GUEST);
    static const char *const running[] = { "active", "completed", NULL };
    int64_t first, highest, throttled;

    mig_set_cap(src, "auto-converge", true);
    set_fast_throttle(src);
    mig_wait_guest_progress(src, 256 * MiB);
    mig_migrate(src, uri);

    first = highest = mig_wait_throttle(src, 60000);
    g_assert_cmpint(first, ==, 50);
    for (;;) {
        g_autofree char *st = mig_wait_status(src, running, -1);

        if (!strcmp(st, "completed")) {
            break;
        }
        highest = MAX(highest, mig_throttle_percentage(src));
        g_usleep(20 * 1000);
    }
    /* It had to rise: at 50% the guest still outruns the channel. */
    g_assert_cmpint(highest, >, first);
    g_assert_cmpint(highest, <=, 99);

    /* Over with the migration: no more throttle sleeps on the source. */
    g_assert_cmpint(mig_throttle_percentage(src), ==, 0);
    throttled = mig_guest_throttle_us(src);
    g_assert_cmpint(throttled, >, 0);
    mig_check_success(src, dst);
    g_assert_cmpint(mig_guest_throttle_us(src), ==, throttled);
    /* The throttle is the source's: the destination never sleeps. */
    g_assert_cmpint(mig_guest_throttle_us(dst), ==, 0);
}

/*
 * A migration that never converges, throttled, ends by migrate_cancel
 * or, with @kill_dst, because the destination dies: either way the
 * throttle ends with it and the guest runs at full speed again.
 */
static void run_throttled_then_end(bool kill_dst)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, MIG_TEST_BUSY_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(MIG_TEST_BUSY_GUEST);
    static const char *const cancelled[] = { "cancelled", NULL };
    static const char *const failed[] = { "failed", NULL };
    g_autofree char *st = NULL;
    int64_t full_rate;

    mig_set_cap(src, "auto-converge", true);
    set_fast_throttle(src);
    /* Never converges: at 60% the guest still outruns the channel. */
    mig_set_param(src, "max-cpu-throttle", 60);
    mig_wait_guest_progress(src, 256 * MiB);
    full_rate = mig_guest_settled_rate(src);
    mig_migrate(src, uri);

    g_assert_cmpint(mig_wait_throttle(src, 60000), >=, 50);
    /* The vCPUs really sleep (a slice is 10 ms). */
    for (int i = 0; !mig_guest_throttle_us(src); i++) {
        g_assert_cmpint(i, <, 500);
        g_usleep(20 * 1000);
    }
    if (kill_dst) {
        qtest_kill(dst, SIGKILL);
        qtest_wait_exit(dst, 20000);
        st = mig_wait_status(src, failed, 30000);
    } else {
        /* The throttle's parameters may change now; the stream's not. */
        mig_set_param(src, "cpu-throttle-increment", 5);
        mig_assert_error(src, "migrate-set-parameters",
                         "{\"cpu-throttle-increment\": 10, "
                         "\"multifd-compression\": \"zlib\"}",
                         "cannot be changed while a migration is in "
                         "progress");
        qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
        st = mig_wait_status(src, cancelled, 30000);
    }
    g_assert_cmpint(mig_throttle_percentage(src), ==, 0);
    mig_assert_full_speed(src, full_rate);
    mig_assert_runstate(src, "running");
}

static void test_cancel_stops_throttle(void)
{
    run_throttled_then_end(false);
}

static void test_failure_stops_throttle(void)
{
    run_throttled_then_end(true);
}

static void test_parameters(void)
{
    g_autoptr(QTestState) s = mig_start_vm("");
    g_autoptr(JsonNode) def = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-migrate-parameters\"}");
    g_autoptr(JsonNode) caps = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-migrate-capabilities\"}");
    JsonArray *list = json_node_get_array(caps);
    bool found = false;

    /* QEMU's defaults. */
    g_assert_cmpint(qtest_get_int(def, "throttle-trigger-threshold"), ==, 50);
    g_assert_cmpint(qtest_get_int(def, "cpu-throttle-initial"), ==, 20);
    g_assert_cmpint(qtest_get_int(def, "cpu-throttle-increment"), ==, 10);
    g_assert_false(qtest_get_bool(def, "cpu-throttle-tailslow"));
    g_assert_cmpint(qtest_get_int(def, "max-cpu-throttle"), ==, 99);
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *cap = json_array_get_object_element(list, i);

        if (!strcmp(json_object_get_string_member(cap, "capability"),
                    "auto-converge")) {
            g_assert_false(json_object_get_boolean_member(cap, "state"));
            found = true;
        }
    }
    g_assert_true(found);

    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate-set-parameters\", "
                        "\"arguments\": {\"cpu-throttle-tailslow\": true, "
                        "\"max-cpu-throttle\": 80}}");
    g_autoptr(JsonNode) now = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-migrate-parameters\"}");
    g_assert_true(qtest_get_bool(now, "cpu-throttle-tailslow"));
    g_assert_cmpint(qtest_get_int(now, "max-cpu-throttle"), ==, 80);

    mig_assert_error(s, "migrate-set-parameters",
                     "{\"cpu-throttle-initial\": 100}",
                     "Parameter 'cpu-throttle-initial' expects a value "
                     "between 1 and 99 (percent)");
    mig_assert_error(s, "migrate-set-parameters",
                     "{\"throttle-trigger-threshold\": 0}",
                     "'throttle-trigger-threshold' expects a value between "
                     "1 and 100");
    mig_assert_error(s, "migrate-set-parameters",
                     "{\"cpu-throttle-tailslow\": 1}",
                     "Invalid parameter type for "
                     "'cpu-throttle-tailslow', expected: boolean");

    /* One way of slowing the guest down at a time, as in QEMU. */
    mig_set_cap(s, "auto-converge", true);
    mig_assert_error(s, "migrate-set-capabilities", "{\"capabilities\": "
                     "[{\"capability\": \"dirty-limit\", \"state\": true}]}",
                     "capability 'dirty-limit' cannot be used with "
                     "capability 'auto-converge'");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/auto-converge/plain-does-not-converge",
                    test_plain_does_not_converge);
    g_test_add_func("/migration/auto-converge/converges", test_converges);
    g_test_add_func("/migration/auto-converge/cancel-stops-throttle",
                    test_cancel_stops_throttle);
    g_test_add_func("/migration/auto-converge/failure-stops-throttle",
                    test_failure_stops_throttle);
    g_test_add_func("/migration/auto-converge/parameters", test_parameters);
    return g_test_run();
}
