/*
 * The guest programs as a user drives them: stress makes progress,
 * verifies, and a corrupted page is caught; programs that would write
 * the same RAM are refused at start, and stress's default working set
 * leaves the others' RAM alone.
 */
#include "qemu/osdep.h"
#include "libqtest.h"
#include "migration/framework.h"
#include "vfio/framework.h"

/* One counter of x-query-guest: "passes" or "bytes-written". */
static int64_t guest_stat(QTestState *s, const char *member)
{
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
        "{\"execute\": \"x-query-guest\"}");

    return qtest_get_int(r, member);
}

static int64_t guest_bytes(QTestState *s)
{
    return guest_stat(s, "bytes-written");
}

/* Wait until the guest's counter @member reaches @min (bounded). */
static void wait_guest_stat(QTestState *s, const char *member, int64_t min)
{
    for (int i = 0; i < 3000; i++) {
        if (guest_stat(s, member) >= min) {
            return;
        }
        g_usleep(10000);
    }
    g_error("guest's %s stayed below %" PRId64, member, min);
}

static void wait_progress(QTestState *s, int64_t bytes)
{
    wait_guest_stat(s, "bytes-written", bytes);
}

static JsonNode *verify(QTestState *s)
{
    return qtest_qmp_assert_success(s, "{\"execute\": \"x-guest-verify\"}");
}

static void test_stress_runs_and_verifies(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 64M -smp 2 -guest stress,ws=16M");

    wait_progress(s, 64 * MiB);
    /*
     * "passes" is the lowest count of any vCPU: one of them may have been
     * starved while the other wrote all of those bytes.
     */
    wait_guest_stat(s, "passes", 1);
    /* Checked while running (x-guest-verify parks the vCPUs itself). */
    g_autoptr(JsonNode) r1 = verify(s);
    g_assert_true(qtest_get_bool(r1, "ok"));
    g_assert_cmpint(qtest_get_int(r1, "pages-checked"), ==, 64 * MiB / 4096);
    g_assert_cmpint(qtest_get_int(r1, "bad-pages"), ==, 0);
    g_autofree char *st = qtest_status(s);
    g_assert_cmpstr(st, ==, "running");

    /* And while paused; the guest continues afterwards. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"stop\"}");
    int64_t before = guest_bytes(s);
    g_autoptr(JsonNode) r2 = verify(s);
    g_assert_true(qtest_get_bool(r2, "ok"));
    g_assert_cmpint(guest_bytes(s), ==, before);
    qtest_qmp_assert_ok(s, "{\"execute\": \"cont\"}");
    wait_progress(s, before + 16 * MiB);
}

static void test_corruption_caught(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 32M -guest stress,ws=8M");

    wait_progress(s, 16 * MiB);
    qtest_qmp_assert_ok(s, "{\"execute\": \"stop\"}");
    qtest_qmp_assert_ok(s, "{\"execute\": \"x-guest-corrupt\", "
                        "\"arguments\": {\"addr\": 20480}}");
    g_autoptr(JsonNode) r = verify(s);
    g_assert_false(qtest_get_bool(r, "ok"));
    g_assert_cmpint(qtest_get_int(r, "bad-pages"), ==, 1);
    g_assert_cmpint(qtest_get_int(r, "first-bad"), ==, 20480);

    /* Outside the working set, a page must stay zero. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"x-guest-corrupt\", "
                        "\"arguments\": {\"addr\": 16777216}}");
    g_autoptr(JsonNode) r2 = verify(s);
    g_assert_cmpint(qtest_get_int(r2, "bad-pages"), ==, 2);
}

static void test_paused_start_and_idle(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 32M -S -guest stress,ws=4M");
    g_autoptr(QTestState) idle = qtest_init("-m 32M -smp 2");

    g_usleep(100000);
    g_assert_cmpint(guest_bytes(s), ==, 0);
    g_autoptr(JsonNode) r = verify(s);
    g_assert_true(qtest_get_bool(r, "ok"));
    qtest_qmp_assert_ok(s, "{\"execute\": \"cont\"}");
    wait_progress(s, 4 * MiB);

    g_autoptr(JsonNode) r2 = verify(idle);
    g_assert_true(qtest_get_bool(r2, "ok"));
    g_assert_cmpint(guest_bytes(idle), ==, 0);
}

static void test_backends(void)
{
    g_autofree char *file = qtest_tmp_path("ram", "img");
    g_autoptr(QTestState) s = qtest_initf(
        "-object memory-backend-file,id=mem,size=32M,mem-path=%s,share=on "
        "-machine none,memory-backend=mem -guest stress,ws=4M", file);
    g_autoptr(QTestState) s2 = qtest_init(
        "-object memory-backend-ram,id=r,size=16M,prealloc=on "
        "-machine memory-backend=r -m 16M -guest stress");

    wait_progress(s, 8 * MiB);
    wait_progress(s2, 32 * MiB);
    g_autoptr(JsonNode) r = verify(s);
    g_autoptr(JsonNode) r2 = verify(s2);
    g_assert_true(qtest_get_bool(r, "ok"));
    g_assert_true(qtest_get_bool(r2, "ok"));
}

static void test_rate_limit(void)
{
    /* 4 MiB/s: after a short while far less than unlimited would write. */
    g_autoptr(QTestState) s = qtest_init("-m 32M -guest stress,ws=8M,rate=4M");

    g_usleep(200000);
    g_assert_cmpint(guest_bytes(s), <, 64 * MiB);
    qtest_qmp_assert_ok(s, "{\"execute\": \"qom-set\", \"arguments\": {\"path\":"
                        " \"/machine/guest\", \"property\": \"rate\", \"value\": 0}}");
    wait_progress(s, 64 * MiB);
}

/*
 * Rates beyond a page per nanosecond per vCPU run unlimited instead of
 * dividing by zero; absurd ones are refused, naming the property.
 */
static void test_rate_very_fast(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 16M -guest stress,rate=8T");
    g_autofree char *err = NULL;
    int ret;

    wait_progress(s, 64 * MiB);
    g_autofree char *st = qtest_status(s);
    g_assert_cmpstr(st, ==, "running");

    qtest_qmp_assert_ok(s, "{\"execute\": \"qom-set\", \"arguments\": {\"path\":"
                        " \"/machine/guest\", \"property\": \"rate\", "
                        "\"value\": 4096}}");
    qtest_qmp_assert_ok(s, "{\"execute\": \"qom-set\", \"arguments\": {\"path\":"
                        " \"/machine/guest\", \"property\": \"rate\", "
                        "\"value\": 8796093022208}}");
    int64_t before = guest_bytes(s);
    wait_progress(s, before + 64 * MiB);

    g_autofree char *desc = qtest_qmp_expect_error(s, NULL,
        "{\"execute\": \"qom-set\", \"arguments\": {\"path\":"
        " \"/machine/guest\", \"property\": \"rate\", "
        "\"value\": 1152921504606846976}}");
    g_assert_nonnull(strstr(desc, "rate=1152921504606846976 is too fast"));
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
        "{\"execute\": \"qom-get\", \"arguments\": {\"path\":"
        " \"/machine/guest\", \"property\": \"rate\"}}");
    g_assert_cmpint(json_node_get_int(r), ==, 8796093022208LL);
    g_autoptr(JsonNode) v = verify(s);
    g_assert_true(qtest_get_bool(v, "ok"));

    ret = qtest_run("-m 16M -guest stress,rate=16E", NULL, &err);
    g_assert_cmpint(ret, ==, 1);
    g_assert_nonnull(strstr(err, "rate"));
    g_clear_pointer(&err, g_free);
    ret = qtest_run("-m 16M -guest stress,rate=2P", NULL, &err);
    g_assert_cmpint(ret, ==, 1);
    g_assert_nonnull(strstr(err, "rate=2251799813685248"));
}

/*
 * x-query-guest's progress figures: pages per second over the last
 * second, in all and per program; per vCPU its dirtied pages and the
 * longest time between two of its steps, which a pause is.
 */
static void test_progress(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 64M -smp 2 "
                                         "-guest stress,ws=32M,rate=16M");
    g_autoptr(JsonNode) q = NULL, paused = NULL, reset = NULL, after = NULL;
    JsonArray *vcpus, *programs;
    int64_t rate, dirty = 0;

    /* 16 MiB/s are 4096 pages/s, once a whole second is measured. */
    for (int i = 0; !guest_stat(s, "pages-per-second"); i++) {
        g_assert_cmpint(i, <, 500);
        g_usleep(10000);
    }
    g_usleep(1100 * 1000);
    q = qtest_qmp_assert_success(s, "{\"execute\": \"x-query-guest\"}");
    rate = qtest_get_int(q, "pages-per-second");
    g_assert_cmpint(rate, >=, 4096 * 3 / 4);
    g_assert_cmpint(rate, <=, 4096 * 5 / 4);
    programs = json_object_get_array_member(qtest_obj(q), "programs");
    g_assert_cmpint(json_object_get_int_member(
        json_array_get_object_element(programs, 0), "pages-per-second"), ==,
        rate);

    /* Stopped: nothing more is written, and each vCPU wrote its part. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"stop\"}");
    paused = qtest_qmp_assert_success(s, "{\"execute\": \"x-query-guest\"}");
    vcpus = json_object_get_array_member(qtest_obj(paused), "vcpu-stats");
    g_assert_cmpuint(json_array_get_length(vcpus), ==, 2);
    for (guint i = 0; i < 2; i++) {
        JsonObject *v = json_array_get_object_element(vcpus, i);

        g_assert_cmpint(json_object_get_int_member(v, "cpu-index"), ==, i);
        g_assert_cmpint(json_object_get_int_member(v, "dirty-pages"), >, 0);
        g_assert_cmpint(json_object_get_int_member(v, "throttle-us"), ==, 0);
        dirty += json_object_get_int_member(v, "dirty-pages");
    }
    g_assert_cmpint(dirty, ==, qtest_get_int(paused, "pages-written"));
    for (int i = 0; guest_stat(s, "pages-per-second"); i++) {
        g_assert_cmpint(i, <, 500);
        g_usleep(10000);
    }

    /* The pause is a stall of each vCPU, seen once it runs again. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"cont\"}");
    wait_progress(s, qtest_get_int(paused, "bytes-written") + 1 * MiB);
    reset = qtest_qmp_assert_success(s, "{\"execute\": \"x-query-guest\", "
                                     "\"arguments\": {\"reset-stall\": "
                                     "true}}");
    g_assert_cmpint(qtest_get_int(reset, "longest-stall-us"), >=, 1000000);
    after = qtest_qmp_assert_success(s, "{\"execute\": \"x-query-guest\"}");
    g_assert_cmpint(qtest_get_int(after, "longest-stall-us"), <, 1000000);
    g_autofree char *e = qtest_qmp_expect_error(s, "GenericError",
        "{\"execute\": \"x-query-guest\", \"arguments\": "
        "{\"reset-stall\": 1}}");
    g_assert_nonnull(strstr(e, "Invalid parameter type for 'reset-stall', "
                                "expected: boolean"));
}

/*
 * The dma program's buffers are at the top of RAM (256 KiB per device):
 * a stress working set that reaches them is refused before anything
 * runs, with both programs and their ranges.
 */
static void test_overlap_refused(void)
{
    g_autoptr(VfioServer) srv = vfio_server_start("");
    g_autofree char *args = vfio_vm_args_guest(
        "-m 64M -guest stress,ws=64M -guest dma", &srv, 1, NULL);
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = qtest_run(args, &out, &err);

    g_assert_cmpint(status, ==, 1);
    g_assert_nonnull(strstr(err, "-guest stress writes guest RAM "
                            "0x0-0x3ffffff (64 MiB), which overlaps "
                            "0x3fc0000-0x3ffffff (256 KiB) where -guest dma "
                            "writes"));
}

/*
 * As a new user tries it: stress without ws next to dma.  The working
 * set is all of RAM but the dma buffers, both programs check out, and
 * so they do on the destination of a migration.
 */
static void test_default_leaves_dma_alone(void)
{
    g_autoptr(VfioServer) src_srv = vfio_server_start("");
    g_autoptr(VfioServer) dst_srv = vfio_server_start("");
    g_autofree char *src_args = vfio_vm_args_guest(
        "-guest stress,rate=32M -guest dma", &src_srv, 1, NULL);
    g_autofree char *dst_args = vfio_vm_args_guest(
        "-guest stress,rate=32M -guest dma", &dst_srv, 1, NULL);
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, dst_args);
    g_autoptr(QTestState) src = mig_start_vm(src_args);
    g_autoptr(JsonNode) r = NULL;

    vfio_wait_dma_progress(src, 64);
    mig_wait_guest_progress(src, 8 * MiB);
    r = verify(src);
    g_assert_true(qtest_get_bool(r, "ok"));
    mig_set_fast(src);
    mig_migrate(src, uri);
    mig_check_success(src, dst);
    vfio_wait_dma_progress(dst, 64);
    mig_assert_guest_ok(dst);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/guest/stress-runs-and-verifies", test_stress_runs_and_verifies);
    g_test_add_func("/guest/corruption-caught", test_corruption_caught);
    g_test_add_func("/guest/paused-start-and-idle", test_paused_start_and_idle);
    g_test_add_func("/guest/backends", test_backends);
    g_test_add_func("/guest/rate-limit", test_rate_limit);
    g_test_add_func("/guest/rate-very-fast", test_rate_very_fast);
    g_test_add_func("/guest/progress", test_progress);
    g_test_add_func("/guest/overlap-refused", test_overlap_refused);
    g_test_add_func("/guest/default-leaves-dma-alone",
                    test_default_leaves_dma_alone);
    return g_test_run();
}
