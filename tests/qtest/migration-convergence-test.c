/*
 * Convergence: a stress guest that dirties its working set faster than
 * a tiny bandwidth can carry cannot switch over within a 1 ms downtime
 * limit; once bandwidth and limit are raised the migration completes.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"

#define SMALL_WS_GUEST "-guest stress,ws=8M"

static void test_converge_after_raise(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst(uri, SMALL_WS_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(SMALL_WS_GUEST);

    mig_set_cap(src, "events", true);
    mig_set_param(src, "max-bandwidth", 64 * MiB);
    mig_set_param(src, "downtime-limit", 1);
    mig_wait_guest_progress(src, 8 * MiB);
    mig_migrate(src, uri);

    /* Several passes, and still no switchover. */
    g_autoptr(JsonNode) pass = qtest_qmp_eventwait(src, "MIGRATION_PASS",
                                                   10000);
    g_assert_nonnull(pass);
    g_assert_cmpint(qtest_get_int(pass, "pass"), >=, 1);
    mig_wait_sync_count(src, 4, 20000);
    {
        g_autoptr(JsonNode) q = mig_query(src);
        JsonObject *ram = json_object_get_object_member(qtest_obj(q), "ram");

        g_assert_cmpstr(qtest_get_str(q, "status"), ==, "active");
        g_assert_true(json_object_has_member(qtest_obj(q),
                                             "expected-downtime"));
        g_assert_cmpint(qtest_get_int(q, "expected-downtime"), >, 1);
        g_assert_cmpint(json_object_get_int_member(ram, "dirty-pages-rate"),
                        >, 0);
        g_assert_cmpfloat(json_object_get_double_member(ram, "mbps"), >, 0);
        /* The limiter holds: a few windows of 64 MiB/s, not more. */
        g_assert_cmpfloat(json_object_get_double_member(ram, "mbps"), <,
                          64.0 * 8 * 1.048576 * 2);
    }
    mig_assert_runstate(src, "running");

    mig_set_param(src, "max-bandwidth", 0);
    mig_set_param(src, "downtime-limit", 5000);
    mig_check_success(src, dst);
}

static void test_avail_switchover_bandwidth(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst(uri, SMALL_WS_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(SMALL_WS_GUEST);

    /*
     * The measured bandwidth (8 MiB/s) says the working set cannot go in
     * 100 ms; the operator says 100 GiB/s are available at switchover.
     */
    mig_set_param(src, "max-bandwidth", 8 * MiB);
    mig_set_param(src, "downtime-limit", 100);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 1, 20000);
    mig_set_param(src, "avail-switchover-bandwidth", 100 * GiB);
    mig_check_success(src, dst);
}

static void test_parameters(void)
{
    g_autoptr(QTestState) s = mig_start_vm("");
    g_autoptr(JsonNode) def = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-migrate-parameters\"}");

    g_assert_cmpint(qtest_get_int(def, "downtime-limit"), ==, 300);
    g_assert_cmpint(qtest_get_int(def, "max-bandwidth"), ==, 128 * MiB);
    g_assert_cmpint(qtest_get_int(def, "avail-switchover-bandwidth"), ==, 0);

    mig_set_param(s, "downtime-limit", 42);
    g_autoptr(JsonNode) now = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-migrate-parameters\"}");
    g_assert_cmpint(qtest_get_int(now, "downtime-limit"), ==, 42);

    /* All or nothing: a bad value changes nothing. */
    g_autofree char *e1 = qtest_qmp_expect_error(s, "GenericError",
        "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"max-bandwidth\": 1, \"downtime-limit\": 3000000}}");
    g_assert_nonnull(strstr(e1, "downtime-limit"));
    g_autoptr(JsonNode) after = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-migrate-parameters\"}");
    g_assert_cmpint(qtest_get_int(after, "max-bandwidth"), ==, 128 * MiB);
    g_autofree char *e2 = qtest_qmp_expect_error(s, "GenericError",
        "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"no-such-parameter\": 1}}");
    g_assert_nonnull(strstr(e2, "no-such-parameter"));

    /* Before any migration, query-migrate is empty. */
    g_autoptr(JsonNode) q = mig_query(s);
    g_assert_cmpint(json_object_get_size(qtest_obj(q)), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/convergence/raise-bandwidth",
                    test_converge_after_raise);
    g_test_add_func("/migration/convergence/avail-switchover-bandwidth",
                    test_avail_switchover_bandwidth);
    g_test_add_func("/migration/convergence/parameters", test_parameters);
    return g_test_run();
}
