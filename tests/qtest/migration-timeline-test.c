/*
 * x-query-migration-timeline: a VFIO migration's passes, device arcs and
 * downtime phases, checked against query-migrate's own figures.
 */
#include "qemu/osdep.h"
#include <math.h>
#include "libqtest.h"
#include "migration/framework.h"
#include "vfio/framework.h"

static JsonObject *timeline(QTestState *s, JsonNode **keep)
{
    *keep = qtest_qmp_assert_success(s, "{\"execute\": "
                                     "\"x-query-migration-timeline\"}");
    return qtest_obj(*keep);
}

static bool has_arc(JsonArray *arcs, const char *from, const char *to)
{
    for (guint i = 0; i < json_array_get_length(arcs); i++) {
        JsonObject *a = json_array_get_object_element(arcs, i);

        if (!strcmp(json_object_get_string_member(a, "from"), from) &&
            !strcmp(json_object_get_string_member(a, "to"), to)) {
            return true;
        }
    }
    return false;
}

static bool has_phase(JsonArray *phases, const char *name)
{
    for (guint i = 0; i < json_array_get_length(phases); i++) {
        if (!strcmp(json_object_get_string_member(
                json_array_get_object_element(phases, i), "name"), name)) {
            return true;
        }
    }
    return false;
}

/* Contiguous phases covering the downtime; their sum is the downtime. */
static void check_downtime(JsonObject *t, int64_t downtime_ms)
{
    JsonObject *d = json_object_get_object_member(t, "downtime");
    JsonArray *phases = json_object_get_array_member(d, "phases");
    double at = json_object_get_double_member(d, "start-ms");
    double total = json_object_get_double_member(d, "ms");
    double sum = 0;

    g_assert_cmpuint(json_array_get_length(phases), >=, 1);
    for (guint i = 0; i < json_array_get_length(phases); i++) {
        JsonObject *p = json_array_get_object_element(phases, i);
        double ms = json_object_get_double_member(p, "ms");

        g_assert_cmpfloat(fabs(json_object_get_double_member(p, "start-ms") -
                               at), <, 1e-6);
        g_assert_cmpfloat(ms, >=, 0);
        at = json_object_get_double_member(p, "end-ms");
        sum += ms;
    }
    g_assert_cmpfloat(fabs(at - json_object_get_double_member(d, "end-ms")),
                      <, 1e-6);
    /* The phases add up to the measured downtime within 5% (or 1 ms). */
    g_assert_cmpfloat(fabs(sum - total), <=, MAX(total * 0.05, 1.0));
    g_assert_cmpfloat(fabs(total - downtime_ms), <=,
                      MAX(downtime_ms * 0.05, 1.0));
}

/*
 * A live VFIO migration in PRE_COPY with switchover-ack and multifd
 * device state: passes, the device's arcs, and every downtime phase.
 */
static void test_vfio_timeline(void)
{
    g_autoptr(VfioServer) s0 = vfio_server_start("");
    g_autoptr(VfioServer) d0 = vfio_server_start("");
    g_autofree char *src_args = vfio_vm_args(&s0, 1, "");
    g_autofree char *dst_args = vfio_vm_args(&d0, 1, "");
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, dst_args);
    g_autoptr(QTestState) src = mig_start_vm(src_args);
    g_autoptr(JsonNode) before = NULL, after = NULL, q = NULL;
    JsonObject *t, *dev;
    JsonArray *passes, *events, *devices, *multifd;
    QTestState *sides[] = { src, dst };

    /* Before any migration there is nothing to tell. */
    t = timeline(src, &before);
    g_assert_cmpuint(json_object_get_size(t), ==, 0);

    for (unsigned i = 0; i < 2; i++) {
        mig_set_cap(sides[i], "return-path", true);
        mig_set_cap(sides[i], "switchover-ack", true);
        mig_set_cap(sides[i], "multifd", true);
        mig_set_param(sides[i], "multifd-channels", 2);
    }
    mig_set_cap(src, "pause-before-switchover", true);
    mig_set_fast(src);
    mig_migrate(src, uri);
    g_free(mig_wait_status(src, (const char *const[]){ "pre-switchover",
                                                        NULL }, 60000));
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-continue\", "
                        "\"arguments\": {\"state\": \"pre-switchover\"}}");
    mig_wait_completed(src, 60000);
    mig_check_success(src, dst);
    q = mig_query(src);

    t = timeline(src, &after);
    g_assert_cmpstr(json_object_get_string_member(t, "status"), ==,
                    "completed");
    g_assert_cmpfloat(json_object_get_double_member(t, "start"), >, 1e9);
    events = json_object_get_array_member(t, "events");
    g_assert_cmpstr(json_object_get_string_member(
        json_array_get_object_element(events, 0), "status"), ==, "setup");
    g_assert_cmpstr(json_object_get_string_member(
        json_array_get_object_element(events,
                                      json_array_get_length(events) - 1),
        "status"), ==, "completed");

    /* Passes in order, each with its figures. */
    passes = json_object_get_array_member(t, "passes");
    g_assert_cmpuint(json_array_get_length(passes), >=, 1);
    for (guint i = 0; i < json_array_get_length(passes); i++) {
        JsonObject *p = json_array_get_object_element(passes, i);

        g_assert_cmpint(json_object_get_int_member(p, "index"), ==, i + 1);
        g_assert_cmpfloat(json_object_get_double_member(p, "end-ms"), >=,
                          json_object_get_double_member(p, "start-ms"));
        g_assert_true(json_object_has_member(p, "bandwidth"));
        g_assert_true(json_object_has_member(p, "dirty-rate"));
    }
    g_assert_cmpint(json_object_get_int_member(
        json_array_get_object_element(passes, 0), "bytes"), >, 0);

    /* The device went through PRE_COPY and STOP_COPY and its bytes grew. */
    devices = json_object_get_array_member(t, "devices");
    g_assert_cmpuint(json_array_get_length(devices), ==, 1);
    dev = json_array_get_object_element(devices, 0);
    g_assert_cmpstr(json_object_get_string_member(dev, "id"), ==, "dev0");
    g_assert_true(has_arc(json_object_get_array_member(dev, "arcs"),
                          "running", "pre-copy"));
    g_assert_true(has_arc(json_object_get_array_member(dev, "arcs"),
                          "pre-copy", "stop-copy") ||
                  has_arc(json_object_get_array_member(dev, "arcs"),
                          "pre-copy-p2p", "stop-copy"));

    /* Every phase of this switchover, adding up to the downtime. */
    {
        JsonArray *phases = json_object_get_array_member(
            json_object_get_object_member(t, "downtime"), "phases");

        for (const char *const *n = (const char *const[]){
                 "device-stop", "pre-switchover", "final-ram",
                 "device-threads", "config", "destination", NULL };
             *n; n++) {
            if (!has_phase(phases, *n)) {
                g_error("no downtime phase '%s'", *n);
            }
        }
    }
    check_downtime(t, qtest_get_int(q, "downtime"));

    /* Both multifd channels carried something. */
    multifd = json_object_get_array_member(t, "multifd");
    g_assert_cmpuint(json_array_get_length(multifd), ==, 2);
    for (guint i = 0; i < 2; i++) {
        JsonArray *samples = json_object_get_array_member(
            json_array_get_object_element(multifd, i), "samples");
        JsonObject *last = json_array_get_object_element(
            samples, json_array_get_length(samples) - 1);

        g_assert_cmpint(json_object_get_int_member(last, "bytes"), >, 0);
    }
}

/* A failed migration has a timeline too, ending in its status. */
static void test_failed_timeline(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autoptr(JsonNode) keep = NULL;
    JsonObject *t;
    JsonArray *events;

    mig_migrate(src, uri);
    g_free(mig_wait_failed(src, 30000));
    t = timeline(src, &keep);
    g_assert_cmpstr(json_object_get_string_member(t, "status"), ==,
                    "failed");
    events = json_object_get_array_member(t, "events");
    g_assert_cmpstr(json_object_get_string_member(
        json_array_get_object_element(events,
                                      json_array_get_length(events) - 1),
        "status"), ==, "failed");
    g_assert_false(json_object_has_member(t, "downtime"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/timeline/vfio", test_vfio_timeline);
    g_test_add_func("/migration/timeline/failed", test_failed_timeline);
    return g_test_run();
}
