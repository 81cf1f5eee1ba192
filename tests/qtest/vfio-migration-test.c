/*
 * Live migration of running VMs with vfio-user-dma devices: STOP_COPY
 * only and PRE_COPY devices, switchover-ack off and on, one and three
 * devices, unix and tcp.  Every successful migration ends with the
 * destination's guest check, which includes each device's memory check
 * and the slots its DMA wrote into guest RAM.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"
#include "vfio/framework.h"

typedef struct MigCase {
    unsigned nr_devices;
    const char *server_args;        /* for every device server */
    bool switchover_ack;
    bool tcp;
    const char *props;              /* extra device properties, or NULL */
} MigCase;

static void set_ack(QTestState *s, bool on)
{
    if (on) {
        mig_set_cap(s, "return-path", true);
        mig_set_cap(s, "switchover-ack", true);
    }
}

static char *tcp_listen(QTestState *dst)
{
    g_autoptr(JsonNode) q = NULL;
    JsonObject *a;

    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"tcp:127.0.0.1:0\"}}");
    q = mig_query(dst);
    a = json_array_get_object_element(
        json_object_get_array_member(qtest_obj(q), "socket-address"), 0);
    return g_strdup_printf("tcp:127.0.0.1:%s",
                           json_object_get_string_member(a, "port"));
}

static void run_migration(gconstpointer opaque)
{
    const MigCase *c = opaque;
    VfioServer *src_srv[3], *dst_srv[3];
    g_autofree char *src_args = NULL, *dst_args = NULL, *uri = NULL;
    QTestState *src, *dst;

    g_assert(c->nr_devices <= 3);
    for (unsigned i = 0; i < c->nr_devices; i++) {
        src_srv[i] = vfio_server_start(c->server_args);
        dst_srv[i] = vfio_server_start(c->server_args);
    }
    {
        g_autofree char *props = g_strdup_printf("migration-events=on%s%s",
                                                 c->props ? "," : "",
                                                 c->props ? c->props : "");

        src_args = vfio_vm_args(src_srv, c->nr_devices, props);
        dst_args = vfio_vm_args(dst_srv, c->nr_devices, c->props);
    }
    if (c->tcp) {
        dst = mig_start_dst("defer", dst_args);
    } else {
        g_autofree char *path = qtest_tmp_path("mig", "sock");

        uri = g_strdup_printf("unix:%s", path);
        dst = mig_start_dst(uri, dst_args);
    }
    src = mig_start_vm(src_args);
    set_ack(src, c->switchover_ack);
    set_ack(dst, c->switchover_ack);
    if (c->tcp) {
        uri = tcp_listen(dst);
    }
    mig_set_fast(src);
    /*
     * Once RAM has converged little is sent, so the measured bandwidth
     * says little about the link; the devices' stop-copy data must fit
     * the switchover all the same (the reason for this parameter).
     */
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
    vfio_wait_dma_progress(src, 256);
    {
        g_autofree char *st = vfio_mig_state(src, "dev0");

        g_assert_cmpstr(st, ==, "running");
    }
    mig_migrate(src, uri);
    mig_check_success(src, dst);
    {
        /* query-migrate counts the device bytes: at least their memory. */
        g_autoptr(JsonNode) q = mig_query(src);
        JsonObject *vfio = json_object_get_object_member(qtest_obj(q), "vfio");

        g_assert_nonnull(vfio);
        g_assert_cmpint(json_object_get_int_member(vfio, "transferred"), >=,
                        (int64_t)c->nr_devices * 16 * MiB);
    }

    for (unsigned i = 0; i < c->nr_devices; i++) {
        g_autofree char *id = g_strdup_printf("dev%u", i);
        g_autofree char *st_src = vfio_mig_state(src, id);
        g_autofree char *st_dst = vfio_mig_state(dst, id);

        g_assert_cmpstr(st_src, ==, "stop");
        g_assert_cmpstr(st_dst, ==, "running");
    }
    /* Every device went through stop-copy, and said so. */
    {
        unsigned seen = 0;

        for (int i = 0; i < 128 && seen != (1u << c->nr_devices) - 1; i++) {
            g_autoptr(JsonNode) ev = qtest_qmp_eventwait(src, "VFIO_MIGRATION",
                                                         5000);
            JsonObject *data;
            unsigned idx;

            g_assert_nonnull(ev);
            data = qtest_obj(ev);
            g_assert_true(sscanf(json_object_get_string_member(data,
                                                               "device-id"),
                                 "dev%u", &idx) == 1);
            g_assert_cmpuint(idx, <, c->nr_devices);
            g_assert_nonnull(json_object_get_string_member(data, "qom-path"));
            if (!strcmp(json_object_get_string_member(data, "device-state"),
                        "stop-copy")) {
                seen |= 1u << idx;
            }
        }
        g_assert_cmpuint(seen, ==, (1u << c->nr_devices) - 1);
    }
    /* The destination's devices keep working after the switchover. */
    vfio_wait_dma_progress(dst, 256);
    mig_assert_guest_ok(dst);

    qtest_quit(src);
    qtest_quit(dst);
    for (unsigned i = 0; i < c->nr_devices; i++) {
        vfio_server_free(src_srv[i]);
        vfio_server_free(dst_srv[i]);
    }
}

static const MigCase cases[] = {
    { 1, "--no-precopy", false, false },
    { 1, "", false, false },
    { 1, "", true, false },
    { 1, "", true, true },
    { 3, "--no-precopy", false, true },
    { 3, "", true, false },
    /* A client without vmig's extensions: no MIG_DATA_SIZE, no precopy info. */
    { 1, "", true, false, "x-no-extensions=on" },
    /* The device's DMA log read only at the final sync. */
    { 1, "", false, false, "x-pre-copy-dirty-page-tracking=off" },
};

static const char *const case_names[] = {
    "/vfio/migration/1/stop-copy/unix",
    "/vfio/migration/1/pre-copy/unix",
    "/vfio/migration/1/pre-copy-ack/unix",
    "/vfio/migration/1/pre-copy-ack/tcp",
    "/vfio/migration/3/stop-copy/tcp",
    "/vfio/migration/3/pre-copy-ack/unix",
    "/vfio/migration/1/pre-copy-ack/no-extensions",
    "/vfio/migration/1/pre-copy/no-pre-copy-dirty-tracking",
};

/*
 * A paused VM: its PRE_COPY device has nothing to pre-copy, says at once
 * that its initial data is sent (or a switchover-ack migration would
 * wait forever), and goes straight from STOP to STOP_COPY.
 */
static void test_paused_source(void)
{
    g_autoptr(VfioServer) s0 = vfio_server_start("");
    g_autoptr(VfioServer) d0 = vfio_server_start("");
    g_autofree char *src_args = vfio_vm_args(&s0, 1, "");
    g_autofree char *dst_args = vfio_vm_args(&d0, 1, "");
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst(uri, dst_args);
    g_autoptr(QTestState) src = mig_start_vm(src_args);
    g_autofree char *st_src = NULL, *st_dst = NULL;

    set_ack(src, true);
    set_ack(dst, true);
    mig_set_fast(src);
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
    vfio_wait_dma_progress(src, 256);
    qtest_qmp_assert_ok(src, "{\"execute\": \"stop\"}");
    st_src = vfio_mig_state(src, "dev0");
    g_assert_cmpstr(st_src, ==, "stop");
    mig_migrate(src, uri);
    mig_wait_completed(src, 30000);
    mig_wait_completed(dst, 30000);
    /* The destination stays paused like the source was; its check passes. */
    mig_assert_runstate(dst, "paused");
    st_dst = vfio_mig_state(dst, "dev0");
    g_assert_cmpstr(st_dst, ==, "stop");
    mig_assert_guest_ok(dst);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"cont\"}");
    vfio_wait_dma_progress(dst, 256);
    mig_assert_guest_ok(dst);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_test_add_data_func(case_names[i], &cases[i], run_migration);
    }
    g_test_add_func("/vfio/migration/1/paused-source", test_paused_source);
    return g_test_run();
}
