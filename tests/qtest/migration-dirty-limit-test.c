/*
 * dirty-limit: per-vCPU dirty-page rate limits, set by hand
 * (set-vcpu-dirty-limit) or by a migration with the capability when RAM
 * does not converge.  A limited vCPU keeps to its limit, measured per
 * vCPU; the migration's limits end with it.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"

/* query-vcpu-dirty-limit (the "return" array). */
static JsonNode *query_limits(QTestState *s)
{
    return qtest_qmp_assert_success(s,
        "{\"execute\": \"query-vcpu-dirty-limit\"}");
}

static guint nr_limited(QTestState *s)
{
    g_autoptr(JsonNode) r = query_limits(s);

    return json_array_get_length(json_node_get_array(r));
}

/* calc-dirty-rate in mode dirty-ring over @seconds; vCPU @cpu's rate. */
static int64_t measure_vcpu_rate(QTestState *s, unsigned cpu, int seconds)
{
    qtest_qmp_assert_ok(s, "{\"execute\": \"calc-dirty-rate\", \"arguments\": "
                        "{\"calc-time\": %d, \"mode\": \"dirty-ring\"}}",
                        seconds);
    for (int i = 0; i < 3000; i++) {
        g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
            "{\"execute\": \"query-dirty-rate\"}");
        JsonArray *rates;

        if (strcmp(qtest_get_str(r, "status"), "measured")) {
            g_usleep(20 * 1000);
            continue;
        }
        g_assert_cmpstr(qtest_get_str(r, "mode"), ==, "dirty-ring");
        rates = json_object_get_array_member(qtest_obj(r), "vcpu-dirty-rate");
        g_assert_cmpuint(json_array_get_length(rates), >, cpu);
        return json_object_get_int_member(
            json_array_get_object_element(rates, cpu), "dirty-rate");
    }
    g_error("calc-dirty-rate did not finish in 60 s");
}

static void test_holds_rate(void)
{
    g_autoptr(QTestState) s = mig_start_vm(MIG_TEST_BUSY_GUEST);
    int64_t rate, unlimited;

    mig_wait_guest_progress(s, 64 * MiB);
    qtest_qmp_assert_ok(s, "{\"execute\": \"set-vcpu-dirty-limit\", "
                        "\"arguments\": {\"cpu-index\": 0, "
                        "\"dirty-rate\": 16}}");
    g_autoptr(JsonNode) l = query_limits(s);
    JsonArray *list = json_node_get_array(l);
    g_assert_cmpuint(json_array_get_length(list), ==, 1);
    JsonObject *entry = json_array_get_object_element(list, 0);
    g_assert_cmpint(json_object_get_int_member(entry, "cpu-index"), ==, 0);
    g_assert_cmpint(json_object_get_int_member(entry, "limit-rate"), ==, 16);

    /* Settled after one measuring period; then within 25% of the limit. */
    g_usleep(1100 * 1000);
    rate = measure_vcpu_rate(s, 0, 2);
    g_assert_cmpint(rate, >=, 12);
    g_assert_cmpint(rate, <=, 20);
    g_autoptr(JsonNode) l2 = query_limits(s);
    rate = json_object_get_int_member(
        json_array_get_object_element(json_node_get_array(l2), 0),
        "current-rate");
    g_assert_cmpint(rate, >=, 12);
    g_assert_cmpint(rate, <=, 20);
    /* vCPU 1 has no limit and rewrites its share far faster. */
    unlimited = measure_vcpu_rate(s, 1, 1);
    g_assert_cmpint(unlimited, >, 40);

    /* Lifted: vCPU 0 runs free again. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"cancel-vcpu-dirty-limit\", "
                        "\"arguments\": {\"cpu-index\": 0}}");
    g_assert_cmpuint(nr_limited(s), ==, 0);
    g_assert_cmpint(measure_vcpu_rate(s, 0, 1), >, 40);
    mig_assert_guest_ok(s);
}

static void test_qmp_errors(void)
{
    static const struct {
        const char *command, *args, *error;
    } cases[] = {
        { "set-vcpu-dirty-limit", "{\"cpu-index\": 2, \"dirty-rate\": 8}",
          "Parameter 'cpu-index': there is no vCPU 2 (the VM has 2, "
          "numbered from 0)" },
        { "set-vcpu-dirty-limit", "{\"cpu-index\": 0}",
          "'dirty-rate' is missing" },
        { "set-vcpu-dirty-limit", "{\"dirty-rate\": -1}",
          "'dirty-rate' expects a rate in MB/s from 0 (no limit) to" },
        { "set-vcpu-dirty-limit", "{\"dirty-rate\": 8, \"cpu\": 0}",
          "'cpu' is unexpected" },
        { "cancel-vcpu-dirty-limit", "{\"cpu-index\": -1}",
          "there is no vCPU -1" },
        { "migrate-set-parameters", "{\"x-vcpu-dirty-limit-period\": 1001}",
          "'x-vcpu-dirty-limit-period' expects a value between 1 and 1000 "
          "(ms)" },
        { "migrate-set-parameters", "{\"vcpu-dirty-limit\": 0}",
          "'vcpu-dirty-limit' expects a value between 1 and" },
    };
    g_autoptr(QTestState) s = mig_start_vm("");

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        mig_assert_error(s, cases[i].command, cases[i].args, cases[i].error);
    }

    /* Every vCPU; a rate of 0 lifts the limits, as in QEMU. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"set-vcpu-dirty-limit\", "
                        "\"arguments\": {\"dirty-rate\": 8}}");
    g_assert_cmpuint(nr_limited(s), ==, 2);
    qtest_qmp_assert_ok(s, "{\"execute\": \"set-vcpu-dirty-limit\", "
                        "\"arguments\": {\"dirty-rate\": 0}}");
    g_assert_cmpuint(nr_limited(s), ==, 0);
    /* Cancelling what is not limited is no error. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"cancel-vcpu-dirty-limit\"}");

    g_autoptr(JsonNode) def = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-migrate-parameters\"}");
    g_assert_cmpint(qtest_get_int(def, "x-vcpu-dirty-limit-period"), ==,
                    1000);
    g_assert_cmpint(qtest_get_int(def, "vcpu-dirty-limit"), ==, 1);

    /* One way of slowing the guest down at a time, as in QEMU. */
    mig_set_cap(s, "dirty-limit", true);
    mig_assert_error(s, "migrate-set-capabilities", "{\"capabilities\": "
                     "[{\"capability\": \"auto-converge\", \"state\": true}]}",
                     "capability 'dirty-limit' cannot be used with "
                     "capability 'auto-converge'");
}

/*
 * A migration with dirty-limit: the limits appear when RAM does not
 * converge, hold every vCPU, belong to the migration while it runs, and
 * go with it.  With @cancel, it is cancelled once limited.
 */
static void run_migration(bool cancel)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, MIG_TEST_BUSY_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(MIG_TEST_BUSY_GUEST);
    static const char *const cancelled[] = { "cancelled", NULL };
    int64_t full_rate;

    mig_set_cap(src, "dirty-limit", true);
    mig_set_param(src, "x-vcpu-dirty-limit-period", 500);
    mig_set_param(src, "vcpu-dirty-limit", cancel ? 200 : 1);
    mig_wait_guest_progress(src, 256 * MiB);
    full_rate = mig_guest_settled_rate(src);
    mig_migrate(src, uri);

    /* The limits are set once RAM has not converged twice. */
    for (int i = 0; nr_limited(src) < 2; i++) {
        static const char *const running[] = { "setup", "active", NULL };
        g_autofree char *st = mig_wait_status(src, running, 60000);

        if (i == 3000) {
            g_error("no dirty limit after 60 s");
        }
        g_usleep(20 * 1000);
    }
    {
        g_autoptr(JsonNode) q = mig_query(src);
        g_autoptr(JsonNode) l = query_limits(src);
        JsonObject *entry = json_array_get_object_element(
            json_node_get_array(l), 1);

        g_assert_cmpint(json_object_get_int_member(entry, "limit-rate"), ==,
                        cancel ? 200 : 1);
        if (!strcmp(qtest_get_str(q, "status"), "active")) {
            g_assert_true(json_object_has_member(qtest_obj(q),
                "dirty-limit-throttle-time-per-round"));
            g_assert_true(json_object_has_member(qtest_obj(q),
                "dirty-limit-ring-full-time"));
        }
    }
    if (cancel) {
        g_autofree char *st = NULL;

        mig_assert_error(src, "set-vcpu-dirty-limit", "{\"dirty-rate\": 8}",
                         "cannot set the dirty page rate limit while a "
                         "migration with capability 'dirty-limit' runs");
        mig_assert_error(src, "cancel-vcpu-dirty-limit", "{}",
                         "cannot cancel the dirty page rate limit");
        qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
        st = mig_wait_status(src, cancelled, 30000);
        g_assert_cmpuint(nr_limited(src), ==, 0);
        mig_assert_full_speed(src, full_rate);
        return;
    }
    mig_check_success(src, dst);
    g_assert_cmpuint(nr_limited(src), ==, 0);
    g_assert_cmpint(mig_query_int(src, "dirty-limit-ring-full-time", -1), ==,
                    -1);
    g_assert_cmpuint(nr_limited(dst), ==, 0);
    g_assert_cmpint(mig_guest_throttle_us(dst), ==, 0);
}

static void test_migration_converges(void)
{
    run_migration(false);
}

static void test_migration_cancel(void)
{
    run_migration(true);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/dirty-limit/holds-rate", test_holds_rate);
    g_test_add_func("/migration/dirty-limit/qmp-errors", test_qmp_errors);
    g_test_add_func("/migration/dirty-limit/converges",
                    test_migration_converges);
    g_test_add_func("/migration/dirty-limit/cancel-lifts-limits",
                    test_migration_cancel);
    return g_test_run();
}
