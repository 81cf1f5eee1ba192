/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * postcopy-ram: a guest that rewrites its working set faster than the
 * channel carries it never converges with plain precopy; after
 * migrate-start-postcopy the destination runs it while the rest of RAM
 * arrives, fetching what its vCPUs touch first, and the migration ends.
 * Also the refusals, cancel in each status, and the loss of the source.
 *
 * Pass/fail depends on no clock: completion waits without a deadline of
 * its own (meson's is the clock); bounded waits only catch hangs.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"

/* Both sides: the capabilities postcopy needs. */
static void set_postcopy(QTestState *s)
{
    mig_set_cap(s, "return-path", true);
    mig_set_cap(s, "postcopy-ram", true);
}

static JsonObject *ram_of(JsonNode *q)
{
    return json_object_get_object_member(qtest_obj(q), "ram");
}

/* Wait until the source is in postcopy-active (bounded: a hang fails). */
static void wait_postcopy_active(QTestState *src)
{
    static const char *const want[] = { "postcopy-active", "completed",
                                        NULL };
    g_autofree char *st = mig_wait_status(src, want, 60000);

    g_assert_cmpstr(st, ==, "postcopy-active");
}

/*
 * A busy guest and a running migration with postcopy-ram on both sides,
 * past its first pass; @bandwidth is max-postcopy-bandwidth (0: none),
 * and with @preempt the pages asked for go on their own channel.
 */
static void start_busy(QTestState *src, QTestState *dst, const char *uri,
                       int64_t bandwidth, bool preempt)
{
    set_postcopy(src);
    set_postcopy(dst);
    mig_set_cap(src, "postcopy-preempt", preempt);
    mig_set_cap(dst, "postcopy-preempt", preempt);
    mig_set_cap(dst, "postcopy-blocktime", true);
    mig_set_param(src, "max-postcopy-bandwidth", bandwidth);
    mig_wait_guest_progress(src, 256 * MiB);
    mig_migrate(src, uri);
    /* Past the first pass: precopy alone would go on for ever. */
    mig_wait_sync_count(src, 2, 60000);
}

/*
 * x-postcopy-fault-wait on the destination @dq: ordered percentiles,
 * and a count of waits between one (the vCPUs faulted: the source had
 * requests) and one per vCPU per page requested.
 */
static void check_fault_wait(JsonNode *dq, int64_t vcpus, int64_t requests)
{
    JsonObject *fw = json_object_get_object_member(qtest_obj(dq),
                                                   "x-postcopy-fault-wait");
    int64_t count, p50, p99, max;

    g_assert_nonnull(fw);
    count = json_object_get_int_member(fw, "count");
    p50 = json_object_get_int_member(fw, "p50");
    p99 = json_object_get_int_member(fw, "p99");
    max = json_object_get_int_member(fw, "max");
    g_test_message("fault waits: %" PRId64 " for %" PRId64 " requests, "
                   "p50 %" PRId64 " us, p99 %" PRId64 " us, max %" PRId64
                   " us", count, requests, p50, p99, max);
    g_assert_cmpint(count, >=, 1);
    g_assert_cmpint(count, <=, vcpus * requests);
    g_assert_cmpint(p50, >=, 0);
    g_assert_cmpint(p50, <=, p99);
    g_assert_cmpint(p99, <=, max);
}

/*
 * With @pause (pause-before-switchover), the switch waits in
 * pre-switchover for migrate-continue, as in QEMU; either way it passes
 * through `device` on its way to postcopy-active.
 */
static void run_converges(bool preempt, bool pause)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, MIG_TEST_BUSY_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(MIG_TEST_BUSY_GUEST);
    static const char *const done[] = { "completed", NULL };
    static const char *const pre[] = { "pre-switchover", NULL };
    static const char *const events[] = {
        "setup", "active", "device", "postcopy-active", "completed", NULL
    };
    static const char *const paused_events[] = {
        "setup", "active", "pre-switchover", "device", "postcopy-active",
        "completed", NULL
    };
    g_autofree char *st = NULL;
    g_autoptr(JsonNode) q = NULL;
    g_autoptr(JsonNode) dq = NULL;
    JsonArray *per_vcpu;

    mig_set_cap(src, "events", true);
    mig_set_cap(src, "pause-before-switchover", pause);
    /*
     * The background push at 32 MiB/s takes seconds for the working
     * set, while the busy guest faults at once: requests are certain
     * however slow the machine (a sanitizer build), and requested pages
     * are never held back by the limit.
     */
    start_busy(src, dst, uri, 32 * MiB, preempt);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-start-postcopy\"}");
    if (pause) {
        g_autofree char *st_pre = mig_wait_status(src, pre, 60000);

        mig_assert_runstate(src, "finish-migrate");
        qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-continue\", "
                            "\"arguments\": {\"state\": "
                            "\"pre-switchover\"}}");
    }
    st = mig_wait_status(src, done, -1);
    mig_assert_status_events(src, pause ? paused_events : events);
    q = mig_query(src);
    /* Pages went after the switch, and the destination asked for some. */
    g_assert_cmpint(json_object_get_int_member(ram_of(q), "postcopy-bytes"),
                    >, 0);
    g_assert_cmpint(json_object_get_int_member(ram_of(q),
                                               "postcopy-requests"), >, 0);
    g_assert_cmpint(json_object_get_int_member(ram_of(q), "remaining"), ==,
                    0);
    mig_check_success(src, dst);

    /* The destination measured its vCPUs' waits: one figure each. */
    dq = mig_query(dst);
    g_assert_cmpstr(qtest_get_str(dq, "status"), ==, "completed");
    g_assert_true(json_object_has_member(qtest_obj(dq),
                                         "postcopy-blocktime"));
    per_vcpu = json_object_get_array_member(qtest_obj(dq),
                                            "postcopy-vcpu-blocktime");
    g_assert_cmpint(json_array_get_length(per_vcpu), ==, 2);
    check_fault_wait(dq, 2, json_object_get_int_member(ram_of(q),
                                                       "postcopy-requests"));
    g_test_message("%s: %" PRId64 " page requests, vCPUs waited %" PRId64
                   " / %" PRId64 " ms, all at once %" PRId64 " ms, "
                   "downtime %" PRId64 " ms", preempt ? "preempt" : "plain",
                   json_object_get_int_member(ram_of(q), "postcopy-requests"),
                   json_array_get_int_element(per_vcpu, 0),
                   json_array_get_int_element(per_vcpu, 1),
                   qtest_get_int(dq, "postcopy-blocktime"),
                   qtest_get_int(q, "downtime"));
}

static void test_converges(void)
{
    run_converges(false, false);
}

/*
 * The pages asked for go on their own channel, and it all still holds,
 * also after a pause before the switch.
 */
static void test_preempt(void)
{
    run_converges(true, true);
}

static void test_refusals(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");
    static const char *const done[] = { "completed", NULL };
    g_autofree char *st = NULL;

    /* Without the capability, with or without a migration. */
    mig_assert_error(src, "migrate-start-postcopy", "{}",
                     "Enable postcopy with migrate-set-capabilities");
    /* It needs the return path, and no multifd. */
    mig_assert_error(src, "migrate-set-capabilities", "{\"capabilities\": "
                     "[{\"capability\": \"postcopy-ram\", \"state\": true}]}",
                     "capability 'postcopy-ram' requires capability "
                     "'return-path'");
    mig_set_cap(src, "return-path", true);
    mig_assert_error(src, "migrate-set-capabilities", "{\"capabilities\": "
                     "[{\"capability\": \"postcopy-ram\", \"state\": true}, "
                     "{\"capability\": \"multifd\", \"state\": true}]}",
                     "cannot be used with capability 'multifd'");
    mig_set_cap(src, "postcopy-ram", true);
    mig_assert_error(src, "migrate-set-capabilities", "{\"capabilities\": "
                     "[{\"capability\": \"postcopy-ram\", \"state\": false}, "
                     "{\"capability\": \"postcopy-preempt\", \"state\": true}]}",
                     "capability 'postcopy-preempt' requires capability "
                     "'postcopy-ram'");
    /* Nothing to start yet. */
    mig_assert_error(src, "migrate-start-postcopy", "{}",
                     "Postcopy must be started after migration has been "
                     "started");
    /* A one-way transport cannot carry page requests. */
    mig_assert_error(src, "migrate", "{\"uri\": \"exec:cat\"}",
                     "needs a socket");

    /* The capability must agree: this destination has it off. */
    qtest_quit(dst);
    dst = mig_start_dst("defer", "");
    mig_set_cap(dst, "return-path", true);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": false}}", uri);
    mig_set_fast(src);
    mig_migrate(src, uri);
    {
        static const char *const failed[] = { "failed", NULL };
        g_autofree char *fst = mig_wait_status(src, failed, 30000);
        g_autofree char *dst_st = mig_wait_status(dst, failed, 30000);
        g_autoptr(JsonNode) q = mig_query(dst);

        g_assert_nonnull(strstr(qtest_get_str(q, "error-desc"),
                                "capability 'postcopy-ram' is on on the "
                                "source, off here"));
    }
    qtest_quit(dst);
    dst = mig_start_dst(uri, "");
    set_postcopy(dst);
    /* Converges by itself: migrate-start-postcopy is never needed. */
    mig_migrate(src, uri);
    st = mig_wait_status(src, done, -1);
    mig_check_success(src, dst);
}

/*
 * Cancel as QEMU has it: before the switch like any migration (the source
 * runs on); in postcopy-active refused, as the destination runs the VM.
 */
static void test_cancel(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, MIG_TEST_BUSY_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(MIG_TEST_BUSY_GUEST);
    static const char *const cancelled[] = { "cancelled", NULL };
    static const char *const done[] = { "completed", NULL };
    g_autofree char *st = NULL;
    g_autofree char *st2 = NULL;

    /* Before the switch. */
    start_busy(src, dst, uri, 0, false);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
    st = mig_wait_status(src, cancelled, 30000);
    mig_assert_runstate(src, "running");
    mig_assert_guest_ok(src);
    qtest_quit(dst);

    /* After it: slow enough to be seen in postcopy-active. */
    dst = mig_start_dst(uri, MIG_TEST_BUSY_GUEST);
    start_busy(src, dst, uri, 8 * MiB, false);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-start-postcopy\"}");
    wait_postcopy_active(src);
    mig_assert_error(src, "migrate_cancel", "{}",
                     "Postcopy migration in progress, cannot cancel");
    mig_assert_error(src, "migrate-start-postcopy", "{}",
                     "postcopy has started already");
    mig_assert_runstate(src, "finish-migrate");
    /* The limit may change while it runs: lift it, and it completes. */
    mig_set_param(src, "max-postcopy-bandwidth", 0);
    st2 = mig_wait_status(src, done, -1);
    mig_check_success(src, dst);
}

/* Wait (bounded) for @status; returns query-migrate's error-desc. */
static char *wait_paused(QTestState *s)
{
    static const char *const want[] = { "postcopy-paused", NULL };
    g_autofree char *st = mig_wait_status(s, want, 30000);
    g_autoptr(JsonNode) q = mig_query(s);

    g_assert_true(json_object_has_member(qtest_obj(q), "error-desc"));
    return g_strdup(qtest_get_str(q, "error-desc"));
}

static int64_t postcopy_bytes(QTestState *src)
{
    g_autoptr(JsonNode) q = mig_query(src);

    return json_object_get_int_member(ram_of(q), "postcopy-bytes");
}

/*
 * The source dies after the switch: the destination, whose guest runs
 * on with part of its RAM, pauses (it cannot tell a dead source from a
 * broken link), says why, stays responsive, and quits without hanging
 * on the vCPUs that wait for pages.
 */
static void test_source_killed(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, MIG_TEST_BUSY_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(MIG_TEST_BUSY_GUEST);
    static const char *const pc[] = { "postcopy-active", NULL };
    g_autofree char *dst_st = NULL;
    g_autofree char *desc = NULL;

    start_busy(src, dst, uri, 4 * MiB, true);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-start-postcopy\"}");
    wait_postcopy_active(src);
    dst_st = mig_wait_status(dst, pc, 30000);
    qtest_kill(src, SIGKILL);
    qtest_wait_exit(src, 20000);

    desc = wait_paused(dst);
    g_assert_cmpstr(desc, !=, "");
    mig_assert_runstate(dst, "running");
    /* Only a resume can end it. */
    mig_assert_error(dst, "migrate-pause", "{}",
                     "migrate-pause is for a migration in status "
                     "postcopy-active (it is 'postcopy-paused')");
    /* qtest_quit (autoptr) must see it exit, not hang. */
}

/*
 * Cut the link after the switch (migrate-pause on the source, with a
 * slow push so that much is left): both sides pause and keep what they
 * have; migrate-recover and migrate resume=true over a new address then
 * complete it, sending again only what the destination lacks, and the
 * guest checks out.  With @preempt the page channel is cut and
 * reopened too.
 */
static void run_recover(bool preempt)
{
    g_autofree char *uri = mig_sock_uri();
    g_autofree char *uri2 = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, MIG_TEST_BUSY_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(MIG_TEST_BUSY_GUEST);
    static const char *const pc[] = { "postcopy-active", NULL };
    static const char *const done[] = { "completed", NULL };
    static const char *const setup[] = { "postcopy-recover-setup", NULL };
    g_autofree char *st = NULL, *dst_st = NULL, *rst = NULL;
    g_autofree char *src_desc = NULL, *dst_desc = NULL;
    g_autoptr(JsonNode) paused = NULL;
    int64_t remaining, sent_before;

    start_busy(src, dst, uri, 16 * MiB, preempt);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-start-postcopy\"}");
    wait_postcopy_active(src);
    dst_st = mig_wait_status(dst, pc, 30000);
    /* A third of the working set is across. */
    for (int i = 0; postcopy_bytes(src) < (int64_t)(48 * MiB); i++) {
        g_assert_cmpint(i, <, 3000);
        g_usleep(10 * 1000);
    }
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-pause\"}");
    src_desc = wait_paused(src);
    dst_desc = wait_paused(dst);
    g_test_message("source paused: %s; destination: %s", src_desc, dst_desc);

    /* As in QEMU, nothing cancels it, and a resume needs a paused one. */
    mig_assert_error(src, "migrate_cancel", "{}", "cannot cancel");
    mig_assert_error(src, "migrate-pause", "{}",
                     "(it is 'postcopy-paused')");
    mig_assert_error(dst, "migrate-recover", "{\"uri\": \"exec:cat\"}",
                     "needs a tcp: or unix: address");

    paused = mig_query(src);
    remaining = json_object_get_int_member(ram_of(paused), "remaining");
    sent_before = json_object_get_int_member(ram_of(paused),
                                             "postcopy-bytes");
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-recover\", "
                        "\"arguments\": {\"uri\": \"%s\"}}", uri2);
    rst = mig_wait_status(dst, setup, 30000);
    mig_set_param(src, "max-postcopy-bandwidth", 0);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate\", \"arguments\": "
                        "{\"uri\": \"%s\", \"resume\": true}}", uri2);
    st = mig_wait_status(src, done, -1);
    {
        int64_t again = postcopy_bytes(src) - sent_before;

        g_test_message("%" PRId64 " MiB left at the pause, %" PRId64
                       " MiB sent after it", remaining >> 20, again >> 20);
        /*
         * Only what was left, what the destination's vCPUs asked for
         * again, and what the cut lost in the sockets' buffers: far less
         * than the 128 MiB working set.
         */
        g_assert_cmpint(again, <=, remaining + (int64_t)(16 * MiB));
    }
    mig_check_success(src, dst);
}

static void test_recover(void)
{
    run_recover(false);
}

static void test_recover_preempt(void)
{
    run_recover(true);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/postcopy/converges", test_converges);
    g_test_add_func("/migration/postcopy/preempt", test_preempt);
    g_test_add_func("/migration/postcopy/refusals", test_refusals);
    g_test_add_func("/migration/postcopy/cancel", test_cancel);
    g_test_add_func("/migration/postcopy/source-killed", test_source_killed);
    g_test_add_func("/migration/postcopy/recover", test_recover);
    g_test_add_func("/migration/postcopy/recover-preempt",
                    test_recover_preempt);
    return g_test_run();
}
