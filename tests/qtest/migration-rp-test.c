/*
 * The return path, switchover-ack, pause-before-switchover with
 * migrate-continue, and capabilities that must agree on both sides.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"

typedef struct Pair {
    QTestState *src;
    QTestState *dst;
    char *uri;
} Pair;

static void pair_start(Pair *p, const char *const *caps)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");

    p->uri = g_strdup_printf("unix:%s", path);
    p->dst = mig_start_dst(p->uri, "");
    p->src = mig_start_vm("");
    for (; caps && *caps; caps++) {
        mig_set_cap(p->src, *caps, true);
        mig_set_cap(p->dst, *caps, true);
    }
    mig_set_fast(p->src);
}

static void pair_end(Pair *p)
{
    qtest_quit(p->src);
    qtest_quit(p->dst);
    g_free(p->uri);
}

static void test_return_path(void)
{
    static const char *const caps[] = { "return-path", NULL };
    Pair p;

    pair_start(&p, caps);
    mig_migrate(p.src, p.uri);
    mig_check_success(p.src, p.dst);
    /* Downtime ends at the destination's confirmation: it was measured. */
    g_autoptr(JsonNode) q = mig_query(p.src);
    g_assert_cmpint(qtest_get_int(q, "downtime"), >=, 0);
    pair_end(&p);
}

static void test_switchover_ack(void)
{
    static const char *const caps[] = { "return-path", "switchover-ack",
                                        NULL };
    Pair p;

    pair_start(&p, caps);
    mig_migrate(p.src, p.uri);
    /* No handler needs to approve: the destination acks at once. */
    mig_check_success(p.src, p.dst);
    pair_end(&p);
}

static void test_switchover_ack_needs_return_path(void)
{
    g_autoptr(QTestState) s = mig_start_vm("");
    g_autofree char *err = qtest_qmp_expect_error(s, "GenericError",
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
        "{\"capabilities\": [{\"capability\": \"switchover-ack\", "
        "\"state\": true}]}}");

    g_assert_nonnull(strstr(err, "'return-path'"));
    g_autofree char *err2 = qtest_qmp_expect_error(s, "GenericError",
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
        "{\"capabilities\": [{\"capability\": \"postcopy-ram\", "
        "\"state\": true}]}}");
    g_assert_nonnull(strstr(err2, "postcopy-ram"));

    /* Both in one command is fine, and shows in the query. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate-set-capabilities\", "
        "\"arguments\": {\"capabilities\": ["
        "{\"capability\": \"return-path\", \"state\": true}, "
        "{\"capability\": \"switchover-ack\", \"state\": true}]}}");
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-migrate-capabilities\"}");
    JsonArray *list = json_node_get_array(r);
    unsigned on = 0;

    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *c = json_array_get_object_element(list, i);

        on += json_object_get_boolean_member(c, "state");
    }
    g_assert_cmpuint(on, ==, 2);
    /* A one-way transport cannot carry a return path. */
    g_autofree char *err3 = mig_migrate_expect_error(s, "file:/dev/null");
    g_assert_nonnull(strstr(err3, "return-path"));
}

static void test_capability_mismatch(void)
{
    Pair p;

    pair_start(&p, NULL);
    mig_set_cap(p.src, "return-path", true);
    mig_migrate(p.src, p.uri);
    /* The destination refuses the stream and, by default, exits. */
    g_assert_cmpint(qtest_wait_exit(p.dst, 20000), ==, 1);
    {
        static const char *const failed[] = { "failed", NULL };
        g_autofree char *st = mig_wait_status(p.src, failed, 20000);
        g_autoptr(JsonNode) q = mig_query(p.src);

        g_assert_nonnull(qtest_get_str(q, "error-desc"));
    }
    mig_assert_runstate(p.src, "running");
    mig_assert_guest_ok(p.src);
    pair_end(&p);
}

static void test_pause_before_switchover(void)
{
    static const char *const caps[] = { "pause-before-switchover", "events",
                                        NULL };
    static const char *const pre[] = { "pre-switchover", NULL };
    static const char *const events[] = {
        "setup", "active", "pre-switchover", "device", "completed", NULL
    };
    Pair p;

    pair_start(&p, caps);
    g_autofree char *e0 = qtest_qmp_expect_error(p.src, "GenericError",
        "{\"execute\": \"migrate-continue\", \"arguments\": "
        "{\"state\": \"pre-switchover\"}}");
    mig_migrate(p.src, p.uri);
    g_autofree char *st = mig_wait_status(p.src, pre, 20000);

    /* Stopped and waiting for the management's go. */
    mig_assert_runstate(p.src, "finish-migrate");
    g_usleep(200 * 1000);
    g_autofree char *st2 = mig_status(p.src);
    g_assert_cmpstr(st2, ==, "pre-switchover");
    g_autofree char *e1 = qtest_qmp_expect_error(p.src, "GenericError",
        "{\"execute\": \"migrate-continue\", \"arguments\": "
        "{\"state\": \"active\"}}");
    g_assert_nonnull(strstr(e1, "pre-switchover"));
    qtest_qmp_assert_ok(p.src, "{\"execute\": \"migrate-continue\", "
                        "\"arguments\": {\"state\": \"pre-switchover\"}}");
    mig_check_success(p.src, p.dst);
    /* As in QEMU: the pause comes before the switchover's `device`. */
    mig_assert_status_events(p.src, events);
    pair_end(&p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/rp/return-path", test_return_path);
    g_test_add_func("/migration/rp/switchover-ack", test_switchover_ack);
    g_test_add_func("/migration/rp/switchover-ack-needs-return-path",
                    test_switchover_ack_needs_return_path);
    g_test_add_func("/migration/rp/capability-mismatch",
                    test_capability_mismatch);
    g_test_add_func("/migration/rp/pause-before-switchover",
                    test_pause_before_switchover);
    return g_test_run();
}
