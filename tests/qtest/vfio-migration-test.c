/*
 * Live migration of running VMs with vfio-user-dma devices: STOP_COPY
 * only and PRE_COPY devices, switchover-ack off and on, one and three
 * devices, unix and tcp, device state on the main channel or over
 * multifd.  Every successful migration ends with the destination's guest
 * check, which includes each device's memory check and the slots its
 * DMA wrote into guest RAM.
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
    bool multifd;                   /* the capability, 4 channels */
} MigCase;

/*
 * "-trace vfio_load_setup -D FILE": the destination's devices say there
 * whether their state comes over multifd or the main channel.
 */
static char *load_setup_trace_args(char **log)
{
    *log = qtest_tmp_path("vfio-load", "log");
    return g_strdup_printf("-trace vfio_load_setup -D %s", *log);
}

/* Every one of @n devices loaded its state the way @via says. */
static void assert_load_path(const char *log, unsigned n, const char *via)
{
    g_autofree char *text = NULL;
    g_autoptr(GError) gerr = NULL;
    g_autofree char *want = g_strdup_printf("device state via %s", via);
    unsigned count = 0;

    g_assert_true(g_file_get_contents(log, &text, NULL, &gerr));
    for (const char *p = text; (p = strstr(p, "vfio_load_setup")); p++) {
        const char *eol = strchr(p, '\n');
        g_autofree char *line = g_strndup(p, eol ? (size_t)(eol - p) : strlen(p));

        g_assert_nonnull(strstr(line, want));
        count++;
    }
    g_assert_cmpuint(count, ==, n);
    unlink(log);
}

static void set_multifd(QTestState *s)
{
    mig_set_cap(s, "multifd", true);
    mig_set_param(s, "multifd-channels", 4);
}

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

/* Whether every one of @n devices took more interrupts than @before. */
static bool interrupts_grew(QTestState *s, unsigned n, const int64_t *before)
{
    for (unsigned i = 0; i < n; i++) {
        g_autofree char *id = g_strdup_printf("dev%u", i);

        if (vfio_dev_get_int(s, id, "x-irq-count") <= before[i]) {
            return false;
        }
    }
    return true;
}

/*
 * Every device of @s takes its completion interrupts through @irq, and
 * each takes more of them while the dma program makes progress.
 */
static void assert_interrupts(QTestState *s, unsigned n, const char *irq)
{
    int64_t before[3];

    for (unsigned i = 0; i < n; i++) {
        g_autofree char *id = g_strdup_printf("dev%u", i);
        g_autofree char *got = vfio_dev_get_str(s, id, "x-irq");

        g_assert_cmpstr(got, ==, irq);
        before[i] = vfio_dev_get_int(s, id, "x-irq-count");
    }
    vfio_wait_dma_progress(s, 256);
    /* A vCPU drives several devices: wait for each, do not assume. */
    for (int i = 0; i < 1000; i++) {
        if (interrupts_grew(s, n, before)) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_error("a device took no %s interrupt in 10 s", irq);
}

/*
 * Plain 0.9.2 servers have no P2P states, so several devices cannot be
 * stopped together: migrate is refused at once, naming the reason, and
 * the source runs on with its devices.
 */
static void expect_p2p_refusal(QTestState *src, const char *uri,
                               unsigned nr_devices, const char *irq)
{
    g_autofree char *err = mig_migrate_expect_error(src, uri);

    g_assert_nonnull(strstr(err, "does not support the P2P states"));
    mig_assert_runstate(src, "running");
    assert_interrupts(src, nr_devices, irq);
}

static void run_migration(gconstpointer opaque)
{
    const MigCase *c = opaque;
    VfioServer *src_srv[3], *dst_srv[3];
    g_autofree char *src_args = NULL, *dst_args = NULL, *uri = NULL;
    g_autofree char *log = NULL, *trace_args = load_setup_trace_args(&log);
    QTestState *src, *dst;
    bool via_multifd = c->multifd &&
        !(c->props && strstr(c->props, "x-migration-multifd-transfer=off"));
    const char *irq = strstr(c->server_args, "--no-msix") ? "intx" : "msix";

    g_assert(c->nr_devices <= 3);
    for (unsigned i = 0; i < c->nr_devices; i++) {
        src_srv[i] = vfio_server_start(c->server_args);
        dst_srv[i] = vfio_server_start(c->server_args);
    }
    {
        g_autofree char *props = g_strdup_printf("migration-events=on%s%s",
                                                 c->props ? "," : "",
                                                 c->props ? c->props : "");

        g_autofree char *dev_args = vfio_vm_args(dst_srv, c->nr_devices,
                                                 c->props);

        src_args = vfio_vm_args(src_srv, c->nr_devices, props);
        dst_args = g_strdup_printf("%s %s", dev_args, trace_args);
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
    if (c->multifd) {
        set_multifd(src);
        set_multifd(dst);
    }
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
    assert_interrupts(src, c->nr_devices, irq);
    {
        g_autofree char *st = vfio_mig_state(src, "dev0");

        g_assert_cmpstr(st, ==, "running");
    }
    if (c->nr_devices > 1 && vfio_servers_plain()) {
        expect_p2p_refusal(src, uri, c->nr_devices, irq);
        qtest_quit(src);
        qtest_quit(dst);
        unlink(log);
        goto out;
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
        /* RAM bytes are RAM only, whichever channel the devices used. */
        JsonObject *ram = json_object_get_object_member(qtest_obj(q), "ram");
        int64_t normal_bytes = json_object_get_int_member(ram, "normal-bytes");
        g_assert_cmpint(json_object_get_int_member(ram, "transferred"), <=,
                        normal_bytes + normal_bytes / 10 + MiB);
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
    assert_interrupts(dst, c->nr_devices, irq);
    mig_assert_guest_ok(dst);

    qtest_quit(src);
    qtest_quit(dst);
    assert_load_path(log, c->nr_devices,
                     via_multifd ? "multifd" : "the main channel");
out:
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
    /* Multifd device state (x-migration-multifd-transfer=auto). */
    { 1, "--no-precopy", false, false, NULL, true },
    { 1, "", true, true, NULL, true },
    { 3, "--no-precopy", false, true, NULL, true },
    { 3, "", true, false, NULL, true },
    { 1, "", false, false, "x-migration-multifd-transfer=on", true },
    /* Multifd for RAM only: device state stays on the main channel. */
    { 3, "", true, false, "x-migration-multifd-transfer=off", true },
    /* Devices without MSI-X: completions interrupt through INTx. */
    { 1, "--no-msix", true, false },
    { 3, "--no-msix --no-precopy", false, false, NULL, true },
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
    "/vfio/migration/1/stop-copy/multifd/unix",
    "/vfio/migration/1/pre-copy-ack/multifd/tcp",
    "/vfio/migration/3/stop-copy/multifd/tcp",
    "/vfio/migration/3/pre-copy-ack/multifd/unix",
    "/vfio/migration/1/pre-copy/multifd-on/unix",
    "/vfio/migration/3/pre-copy-ack/multifd-transfer-off/unix",
    "/vfio/migration/1/pre-copy-ack/intx",
    "/vfio/migration/3/stop-copy/multifd/intx",
};

/*
 * A paused VM: its PRE_COPY device has nothing to pre-copy, says at once
 * that its initial data is sent (or a switchover-ack migration would
 * wait forever), and goes straight from STOP to STOP_COPY.
 */
static void paused_source(bool multifd)
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
    if (multifd) {
        /* The save thread moves the device to STOP_COPY itself. */
        set_multifd(src);
        set_multifd(dst);
    }
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

static void test_paused_source(void)
{
    paused_source(false);
}

static void test_paused_source_multifd(void)
{
    paused_source(true);
}

/*
 * Device state that overtakes the destination's load_setup.  Each device
 * there takes 700 ms more to enter RESUMING, while the source switches
 * over at once; the guest is idle, so no RAM goes before the devices'
 * state and no multifd sync holds it back: the later devices' packets
 * arrive before their load_setup has run, and must wait for it.
 */
static void test_slow_load_setup(void)
{
    VfioServer *s[3], *d[3];
    g_autofree char *src_args = NULL, *dst_args = NULL;
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    QTestState *src, *dst;

    for (unsigned i = 0; i < 3; i++) {
        s[i] = vfio_server_start("--no-precopy");
        d[i] = vfio_server_start("--no-precopy "
                                 "--delay-arc STOP:RESUMING:700");
    }
    src_args = vfio_vm_args_guest("-guest idle", s, 3, NULL);
    dst_args = vfio_vm_args_guest("-guest idle", d, 3, NULL);
    dst = mig_start_dst(uri, dst_args);
    src = mig_start_vm(src_args);
    set_multifd(src);
    set_multifd(dst);
    mig_set_fast(src);
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
    mig_migrate(src, uri);
    mig_wait_completed(src, 30000);
    mig_wait_completed(dst, 30000);
    mig_assert_guest_ok(dst);
    for (unsigned i = 0; i < 3; i++) {
        g_autofree char *id = g_strdup_printf("dev%u", i);
        g_autofree char *st = vfio_mig_state(dst, id);

        g_assert_cmpstr(st, ==, "running");
    }
    qtest_quit(src);
    qtest_quit(dst);
    for (unsigned i = 0; i < 3; i++) {
        vfio_server_free(s[i]);
        vfio_server_free(d[i]);
    }
}

/* qom-set of x-migration-multifd-transfer on @s's devices. */
static void set_multifd_transfer(QTestState *s, unsigned n, const char *val)
{
    for (unsigned i = 0; i < n; i++) {
        g_autoptr(JsonNode) r = NULL;

        qtest_qmp_assert_ok(s, "{\"execute\": \"qom-set\", \"arguments\": "
                            "{\"path\": \"/machine/peripheral/dev%u\", "
                            "\"property\": \"x-migration-multifd-transfer\", "
                            "\"value\": \"%s\"}}", i, val);
        r = qtest_qmp(s, "{\"execute\": \"qom-get\", \"arguments\": "
                      "{\"path\": \"/machine/peripheral/dev%u\", "
                      "\"property\": \"x-migration-multifd-transfer\"}}",
                      i);
        g_assert_cmpstr(json_object_get_string_member(qtest_obj(r), "return"),
                        ==, val);
    }
}

/*
 * The property changes while the VMs run: devices started with it off
 * migrate their state over multifd once qom-set turned it on, on both
 * sides (the source reads it at save_setup, the destination at
 * load_setup).
 */
static void test_multifd_qom_set(void)
{
    VfioServer *s[2] = { vfio_server_start(""), vfio_server_start("") };
    VfioServer *d[2] = { vfio_server_start(""), vfio_server_start("") };
    g_autofree char *log = NULL, *trace_args = load_setup_trace_args(&log);
    g_autofree char *src_args = vfio_vm_args(s, 2,
                                             "x-migration-multifd-transfer=off");
    g_autofree char *dev_args = vfio_vm_args(d, 2,
                                             "x-migration-multifd-transfer=off");
    g_autofree char *dst_args = g_strdup_printf("%s %s", dev_args, trace_args);
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    QTestState *dst = mig_start_dst(uri, dst_args);
    QTestState *src = mig_start_vm(src_args);

    set_multifd(src);
    set_multifd(dst);
    set_ack(src, true);
    set_ack(dst, true);
    mig_set_fast(src);
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
    vfio_wait_dma_progress(src, 256);
    set_multifd_transfer(src, 2, "on");
    set_multifd_transfer(dst, 2, "on");
    mig_migrate(src, uri);
    mig_check_success(src, dst);
    vfio_wait_dma_progress(dst, 256);
    mig_assert_guest_ok(dst);
    qtest_quit(src);
    qtest_quit(dst);
    assert_load_path(log, 2, "multifd");
    for (unsigned i = 0; i < 2; i++) {
        vfio_server_free(s[i]);
        vfio_server_free(d[i]);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_test_add_data_func(case_names[i], &cases[i], run_migration);
    }
    g_test_add_func("/vfio/migration/1/paused-source", test_paused_source);
    g_test_add_func("/vfio/migration/1/paused-source/multifd",
                    test_paused_source_multifd);
    /* Several devices migrate only with the P2P states plain servers lack. */
    if (!vfio_servers_plain()) {
        g_test_add_func("/vfio/migration/2/multifd-qom-set",
                        test_multifd_qom_set);
        g_test_add_func("/vfio/migration/3/multifd/slow-load-setup",
                        test_slow_load_setup);
    }
    return g_test_run();
}
