/*
 * calc-dirty-rate / query-dirty-rate: each mode reports a guest that
 * dirties a known rate within 25%, with QEMU's result fields; bad
 * arguments are refused with clear errors; dirty-bitmap and a migration
 * do not share the dirty log.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"

/*
 * 32 MiB/s into a working set of 128 MiB: in the 2 s of a measurement no
 * page is written twice, so every mode should see the same 32 MB/s.
 */
#define RATE_GUEST "-m 128M -guest stress,ws=128M,rate=32M"

static JsonNode *query_rate(QTestState *s, const char *unit)
{
    if (unit) {
        return qtest_qmp_assert_success(s, "{\"execute\": "
            "\"query-dirty-rate\", \"arguments\": {\"calc-time-unit\": "
            "\"%s\"}}", unit);
    }
    return qtest_qmp_assert_success(s, "{\"execute\": \"query-dirty-rate\"}");
}

/* Wait (bounded) until the measurement is done; its result. */
static JsonNode *wait_measured(QTestState *s)
{
    for (int i = 0; i < 3000; i++) {
        JsonNode *r = query_rate(s, NULL);

        if (!strcmp(qtest_get_str(r, "status"), "measured")) {
            return r;
        }
        g_assert_cmpstr(qtest_get_str(r, "status"), ==, "measuring");
        json_node_unref(r);
        g_usleep(20 * 1000);
    }
    g_error("calc-dirty-rate did not finish in 60 s");
}

static void assert_near(int64_t rate, int64_t want)
{
    g_assert_cmpint(rate, >=, want * 3 / 4);
    g_assert_cmpint(rate, <=, want * 5 / 4);
}

static void test_modes(void)
{
    g_autoptr(QTestState) s = mig_start_vm(RATE_GUEST);
    g_autoptr(JsonNode) before = query_rate(s, NULL);

    g_assert_cmpstr(qtest_get_str(before, "status"), ==, "unstarted");
    mig_wait_guest_progress(s, 8 * MiB);

    /* Sampling: 4096 pages per GiB, of which half change in 2 s. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"calc-dirty-rate\", \"arguments\": "
                        "{\"calc-time\": 2, \"sample-pages\": 4096}}");
    g_autoptr(JsonNode) busy = query_rate(s, NULL);
    g_assert_cmpstr(qtest_get_str(busy, "status"), ==, "measuring");
    g_assert_cmpstr(qtest_get_str(busy, "mode"), ==, "page-sampling");
    g_assert_cmpint(qtest_get_int(busy, "calc-time"), ==, 2);
    g_assert_false(json_object_has_member(qtest_obj(busy), "dirty-rate"));
    mig_assert_error(s, "calc-dirty-rate", "{\"calc-time\": 1}",
                     "the dirty rate is already being measured");
    g_autoptr(JsonNode) sampled = wait_measured(s);
    g_assert_cmpint(qtest_get_int(sampled, "sample-pages"), ==, 4096);
    g_assert_cmpint(qtest_get_int(sampled, "calc-time"), ==, 2);
    g_assert_cmpstr(qtest_get_str(sampled, "calc-time-unit"), ==, "second");
    g_assert_cmpint(qtest_get_int(sampled, "start-time"), >, 1600000000);
    assert_near(qtest_get_int(sampled, "dirty-rate"), 32);

    /* The dirty log. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"calc-dirty-rate\", \"arguments\": "
                        "{\"calc-time\": 2000, \"calc-time-unit\": "
                        "\"millisecond\", \"mode\": \"dirty-bitmap\"}}");
    g_autoptr(JsonNode) bitmap = wait_measured(s);
    g_assert_cmpstr(qtest_get_str(bitmap, "mode"), ==, "dirty-bitmap");
    g_assert_cmpint(qtest_get_int(bitmap, "sample-pages"), ==, 0);
    assert_near(qtest_get_int(bitmap, "dirty-rate"), 32);
    g_autoptr(JsonNode) in_ms = query_rate(s, "millisecond");
    g_assert_cmpint(qtest_get_int(in_ms, "calc-time"), >=, 2000);
    g_assert_cmpstr(qtest_get_str(in_ms, "calc-time-unit"), ==,
                    "millisecond");

    /* Per vCPU: each runs half the rate. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"calc-dirty-rate\", \"arguments\": "
                        "{\"calc-time\": 2, \"mode\": \"dirty-ring\"}}");
    g_autoptr(JsonNode) ring = wait_measured(s);
    JsonArray *vcpus = json_object_get_array_member(qtest_obj(ring),
                                                    "vcpu-dirty-rate");
    int64_t sum = 0;

    assert_near(qtest_get_int(ring, "dirty-rate"), 32);
    g_assert_cmpuint(json_array_get_length(vcpus), ==, 2);
    for (guint i = 0; i < 2; i++) {
        JsonObject *v = json_array_get_object_element(vcpus, i);

        g_assert_cmpint(json_object_get_int_member(v, "id"), ==, i);
        assert_near(json_object_get_int_member(v, "dirty-rate"), 16);
        sum += json_object_get_int_member(v, "dirty-rate");
    }
    g_assert_cmpint(sum, ==, qtest_get_int(ring, "dirty-rate"));
    g_assert_false(json_object_has_member(qtest_obj(sampled),
                                          "vcpu-dirty-rate"));
}

static void test_bad_arguments(void)
{
    static const struct {
        const char *args;
        const char *error;
    } cases[] = {
        { "{}", "'calc-time' is missing" },
        { "{\"calc-time\": 0}", "'calc-time' is out of range: 0 s; it must "
          "be from 50 ms to 60000 ms" },
        { "{\"calc-time\": 61}", "out of range: 61 s" },
        { "{\"calc-time\": 49, \"calc-time-unit\": \"millisecond\"}",
          "out of range: 49 ms" },
        { "{\"calc-time\": 1, \"calc-time-unit\": \"minute\"}",
          "Parameter 'calc-time-unit' does not accept value 'minute'" },
        { "{\"calc-time\": 1, \"mode\": \"dirty-log\"}",
          "Parameter 'mode' does not accept value 'dirty-log'" },
        { "{\"calc-time\": 1, \"sample-pages\": 127}",
          "'sample-pages' is out of range: it must be from 128 to 4096" },
        { "{\"calc-time\": 1, \"sample-pages\": 512, \"mode\": "
          "\"dirty-ring\"}", "used only in mode page-sampling, not "
          "dirty-ring" },
        { "{\"calc-time\": \"1\"}", "Invalid parameter type for 'calc-time', "
          "expected: integer" },
        { "{\"calc-time\": 1, \"period\": 1}", "'period' is unexpected" },
    };
    g_autoptr(QTestState) s = mig_start_vm("");

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        mig_assert_error(s, "calc-dirty-rate", cases[i].args, cases[i].error);
    }
    mig_assert_error(s, "query-dirty-rate", "{\"calc-time-unit\": \"hour\"}",
                     "Parameter 'calc-time-unit' does not accept "
                     "value 'hour'");
}

/* dirty-bitmap and an outgoing migration both need the dirty log. */
static void test_dirty_log_exclusive(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, RATE_GUEST);
    g_autoptr(QTestState) src = mig_start_vm(RATE_GUEST);

    qtest_qmp_assert_ok(src, "{\"execute\": \"calc-dirty-rate\", "
                        "\"arguments\": {\"calc-time\": 2, \"mode\": "
                        "\"dirty-bitmap\"}}");
    g_autofree char *e1 = mig_migrate_expect_error(src, uri);
    g_assert_nonnull(strstr(e1, "calc-dirty-rate is measuring in mode "
                            "dirty-bitmap"));
    g_autoptr(JsonNode) done = wait_measured(src);

    /* Slow enough that the migration still runs for the next command. */
    mig_set_param(src, "max-bandwidth", 4 * MiB);
    mig_migrate(src, uri);
    mig_assert_error(src, "calc-dirty-rate",
                     "{\"calc-time\": 1, \"mode\": \"dirty-bitmap\"}",
                     "mode dirty-bitmap needs the dirty log, which the "
                     "running migration uses");
    /* The other modes measure during a migration. */
    qtest_qmp_assert_ok(src, "{\"execute\": \"calc-dirty-rate\", "
                        "\"arguments\": {\"calc-time\": 500, "
                        "\"calc-time-unit\": \"millisecond\", \"mode\": "
                        "\"dirty-ring\"}}");
    g_autoptr(JsonNode) ring = wait_measured(src);
    g_assert_cmpint(qtest_get_int(ring, "dirty-rate"), >, 0);
    mig_set_param(src, "max-bandwidth", 0);
    mig_check_success(src, dst);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/dirty-rate/modes", test_modes);
    g_test_add_func("/migration/dirty-rate/bad-arguments",
                    test_bad_arguments);
    g_test_add_func("/migration/dirty-rate/dirty-log-exclusive",
                    test_dirty_log_exclusive);
    return g_test_run();
}
