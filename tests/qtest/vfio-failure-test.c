/*
 * VFIO migration when things go wrong, and what protects it: an FSM arc
 * that fails on the source (the source runs on, its device back to
 * running) or on the destination (a clean failure there), a device
 * server that dies, the migration blockers, a server that is not there,
 * and the proof that device DMA into guest RAM is caught by dirty
 * tracking (with the device's log ignored, the destination's check
 * fails; with it merged, the same migration passes).
 */
#include "qemu/osdep.h"
#include "migration/framework.h"
#include "migration/stream.h"
#include "vfio/framework.h"

static char *error_desc(QTestState *s)
{
    g_autoptr(JsonNode) q = mig_query(s);
    JsonObject *obj = qtest_obj(q);

    return g_strdup(json_object_has_member(obj, "error-desc") ?
                    json_object_get_string_member(obj, "error-desc") : "");
}

static void wait_failed(QTestState *s)
{
    static const char *const want[] = { "failed", NULL };
    static const char *const any[] = {
        "failed", "completed", "cancelled", NULL
    };
    int64_t deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

    for (;;) {
        g_autofree char *st = mig_status(s);

        if (g_strv_contains(any, st)) {
            g_assert_cmpstr(st, ==, want[0]);
            return;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(20 * 1000);
    }
}

/*
 * One device on each side, each served by its own vfio-user-dma (started
 * with @src_server / @dst_server), and the two VMs, the destination
 * listening on a fresh unix socket.
 */
typedef struct VfioPair {
    VfioServer *src_srv, *dst_srv;
    QTestState *src, *dst;
    char *uri;
} VfioPair;

static void vfio_pair_start(VfioPair *p, const char *src_server,
                            const char *dst_server)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *src_args = NULL, *dst_args = NULL;

    p->src_srv = vfio_server_start(src_server);
    p->dst_srv = vfio_server_start(dst_server);
    src_args = vfio_vm_args(&p->src_srv, 1, "");
    dst_args = vfio_vm_args(&p->dst_srv, 1, "");
    p->uri = g_strdup_printf("unix:%s", path);
    p->dst = mig_start_dst(p->uri, dst_args);
    p->src = mig_start_vm(src_args);
}

static void vfio_pair_clear(VfioPair *p)
{
    g_clear_pointer(&p->src, qtest_quit);
    g_clear_pointer(&p->dst, qtest_quit);
    g_clear_pointer(&p->uri, g_free);
    g_clear_pointer(&p->dst_srv, vfio_server_free);
    g_clear_pointer(&p->src_srv, vfio_server_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VfioPair, vfio_pair_clear)

/* The source after a failed migration: running, devices usable, intact. */
static void assert_source_recovered(QTestState *src)
{
    g_autofree char *st = vfio_mig_state(src, "dev0");
    g_autofree char *detail = NULL;

    mig_assert_runstate(src, "running");
    g_assert_cmpstr(st, ==, "running");
    vfio_wait_dma_progress(src, 256);
    if (!vfio_guest_verify(src, &detail)) {
        g_error("source check after the failure: %s", detail);
    }
}

/*
 * The device refuses the arc into STOP_COPY when the VM stops for the
 * switchover: query-migrate's error-desc says which device and which
 * arc (the run-state handler's own Error, through vm_stop_err()).
 */
static void fail_arc_source(const char *server_args, const char *arc)
{
    g_auto(VfioPair) p = { 0 };
    g_autofree char *desc = NULL;

    vfio_pair_start(&p, server_args, "--no-p2p");
    mig_set_fast(p.src);
    mig_set_param(p.src, "avail-switchover-bandwidth", 1024 * MiB);
    vfio_wait_dma_progress(p.src, 256);
    mig_migrate(p.src, p.uri);
    wait_failed(p.src);
    desc = error_desc(p.src);
    g_test_message("error-desc: %s", desc);
    g_assert_nonnull(strstr(desc, "vfio-user-pci dev0: device state"));
    g_assert_nonnull(strstr(desc, arc));
    g_assert_nonnull(strstr(desc, "switchover"));
    assert_source_recovered(p.src);
    /* The destination saw a stream end early: exit-on-error. */
    g_assert_cmpint(qtest_wait_exit(p.dst, 20000), ==, 1);
}

/*
 * A paused VM's device goes to STOP_COPY only when its state is saved
 * (save_live_complete_precopy, or the save thread with multifd): the
 * refused arc then fails the completion, and error-desc carries the
 * handler's own message, not just "completion failed".
 */
static void fail_arc_paused_source(bool multifd)
{
    g_auto(VfioPair) p = { 0 };
    g_autofree char *desc = NULL, *st = NULL;

    vfio_pair_start(&p, "--no-p2p --no-precopy --fail-arc stop:stop_copy",
                    "--no-p2p --no-precopy");
    if (multifd) {
        for (QTestState *s = p.src; s; s = s == p.src ? p.dst : NULL) {
            mig_set_cap(s, "multifd", true);
            mig_set_param(s, "multifd-channels", 2);
        }
    }
    mig_set_fast(p.src);
    mig_set_param(p.src, "avail-switchover-bandwidth", 1024 * MiB);
    vfio_wait_dma_progress(p.src, 256);
    qtest_qmp_assert_ok(p.src, "{\"execute\": \"stop\"}");
    mig_migrate(p.src, p.uri);
    wait_failed(p.src);
    desc = error_desc(p.src);
    g_test_message("error-desc: %s", desc);
    g_assert_nonnull(strstr(desc, "vfio-user-pci dev0: device state stop -> "
                            "stop-copy failed"));
    g_assert_null(strstr(desc, "completion failed"));
    /* Paused before, paused after; the device back in STOP. */
    mig_assert_runstate(p.src, "paused");
    st = vfio_mig_state(p.src, "dev0");
    g_assert_cmpstr(st, ==, "stop");
    g_assert_cmpint(qtest_wait_exit(p.dst, 20000), ==, 1);
}

static void test_fail_arc_paused_source(void)
{
    fail_arc_paused_source(false);
}

static void test_fail_arc_paused_source_multifd(void)
{
    fail_arc_paused_source(true);
}

static void test_fail_arc_source(void)
{
    fail_arc_source("--no-p2p --fail-arc pre_copy:stop_copy",
                    "pre-copy -> stop-copy failed");
}

static void test_fail_arc_source_stop_copy_only(void)
{
    fail_arc_source("--no-p2p --no-precopy --fail-arc stop:stop_copy",
                    "stop -> stop-copy failed");
}

static void test_fail_arc_destination(void)
{
    g_auto(VfioPair) p = { 0 };

    vfio_pair_start(&p, "", "--fail-arc resuming:stop");
    /* With a return path the source hears that the destination failed. */
    mig_set_cap(p.src, "return-path", true);
    mig_set_cap(p.dst, "return-path", true);
    mig_set_fast(p.src);
    mig_set_param(p.src, "avail-switchover-bandwidth", 1024 * MiB);
    vfio_wait_dma_progress(p.src, 256);
    mig_migrate(p.src, p.uri);
    g_assert_cmpint(qtest_wait_exit(p.dst, 20000), ==, 1);
    wait_failed(p.src);
    assert_source_recovered(p.src);
}

static void test_server_killed(void)
{
    g_auto(VfioPair) p = { 0 };
    g_autofree char *desc = NULL;
    static const char *const active[] = { "active", NULL };
    g_autofree char *st = NULL;

    vfio_pair_start(&p, "", "");
    /* Slow enough that the device is still in pre-copy when it dies. */
    mig_set_param(p.src, "max-bandwidth", 4 * MiB);
    mig_migrate(p.src, p.uri);
    st = mig_wait_status(p.src, active, 10000);
    vfio_server_kill(p.src_srv, SIGKILL);
    wait_failed(p.src);
    desc = error_desc(p.src);
    g_test_message("error-desc: %s", desc);
    g_assert_nonnull(strstr(desc, "dev0"));
    /* The source runs on without its device, and answers. */
    mig_assert_runstate(p.src, "running");
    g_assert_cmpint(qtest_wait_exit(p.dst, 20000), ==, 1);
}

static void set_multifd(QTestState *s)
{
    mig_set_cap(s, "multifd", true);
    mig_set_param(s, "multifd-channels", 4);
}

/*
 * A migration that cannot switch over (1 byte/s cannot carry the
 * device's stop-copy data) with its device in pre-copy.
 */
static void start_stuck_migration(QTestState *src, const char *uri)
{
    static const char *const active[] = { "active", NULL };
    g_autofree char *st = NULL;

    mig_set_fast(src);
    mig_set_param(src, "avail-switchover-bandwidth", 1);
    mig_migrate(src, uri);
    st = mig_wait_status(src, active, 10000);
    mig_wait_sync_count(src, 3, 20000);
    for (int i = 0; i < 500; i++) {
        g_autofree char *dev = vfio_mig_state(src, "dev0");

        if (!strcmp(dev, "pre-copy-p2p") || !strcmp(dev, "pre-copy")) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_error("dev0 did not reach pre-copy");
}

static void test_cancel_precopy(void)
{
    g_auto(VfioPair) p = { 0 };
    static const char *const cancelled[] = { "cancelled", NULL };
    g_autofree char *st = NULL;

    vfio_pair_start(&p, "", "");
    start_stuck_migration(p.src, p.uri);
    qtest_qmp_assert_ok(p.src, "{\"execute\": \"migrate_cancel\"}");
    st = mig_wait_status(p.src, cancelled, 20000);
    assert_source_recovered(p.src);
    g_assert_cmpint(qtest_wait_exit(p.dst, 20000), ==, 1);
}

/*
 * A guest that leaves bandwidth to the device: RAM converges at once
 * under a low max-bandwidth, so that pre-copy iterations reach the
 * device (the core skips the sections after one that used the budget).
 */
#define LIGHT_GUEST "-guest stress,ws=16M,rate=1M -guest dma,rate=50"
#define CANCEL_DEV_MEM "--mem-size 64M"

/* Poll until the device has sent some bytes; returns the figure. */
static int64_t wait_device_bytes_sent(QTestState *src)
{
    static const char *const active[] = { "active", NULL };
    g_autofree char *first = mig_wait_status(src, active, 10000);

    for (int i = 0; i < 2000; i++) {
        g_autofree char *st = mig_status(src);
        int64_t sent = vfio_transferred(src);

        g_assert_cmpstr(st, ==, "active");
        if (sent > 0) {
            return sent;
        }
        g_usleep(10 * 1000);
    }
    g_error("the device sent no pre-copy data within 20 s");
}

/*
 * migrate_cancel while the device's initial bytes go out in pre-copy
 * (4 MiB/s and no switchover possible keep that window open): the
 * source runs on with its device back in RUNNING and intact, the
 * destination fails cleanly and its device server stays usable, and a
 * second migration, to a fresh destination on that same server,
 * completes.
 */
static void cancel_device_transfer(bool multifd)
{
    g_autoptr(VfioServer) s0 = vfio_server_start(CANCEL_DEV_MEM);
    g_autoptr(VfioServer) d0 = vfio_server_start(CANCEL_DEV_MEM);
    g_autofree char *src_args = vfio_vm_args_guest(LIGHT_GUEST, &s0, 1, "");
    g_autofree char *dst_args = vfio_vm_args_guest(LIGHT_GUEST, &d0, 1, "");
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *path2 = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autofree char *uri2 = g_strdup_printf("unix:%s", path2);
    g_autoptr(QTestState) dst = mig_start_dst(uri, dst_args);
    g_autoptr(QTestState) src = mig_start_vm(src_args);
    g_autoptr(QTestState) dst2 = NULL;
    static const char *const cancelled[] = { "cancelled", NULL };
    g_autofree char *st = NULL, *dev = NULL;
    int64_t sent;

    if (multifd) {
        set_multifd(src);
        set_multifd(dst);
    }
    mig_set_param(src, "max-bandwidth", 4 * MiB);
    mig_set_param(src, "avail-switchover-bandwidth", 1);
    vfio_wait_dma_progress(src, 16);
    mig_migrate(src, uri);
    sent = wait_device_bytes_sent(src);
    g_test_message("device bytes sent before the cancel: %" PRId64, sent);
    /* Less than the device memory: the initial bytes are not all out. */
    g_assert_cmpint(sent, <, 64 * MiB);
    dev = vfio_mig_state(src, "dev0");
    g_assert_true(g_str_has_prefix(dev, "pre-copy"));
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
    st = mig_wait_status(src, cancelled, 20000);
    assert_source_recovered(src);
    /* The destination saw its stream end: it exits, its server lives on. */
    g_assert_cmpint(qtest_wait_exit(dst, 20000), ==, 1);
    g_assert_true(vfio_server_alive(d0));

    dst2 = mig_start_dst(uri2, dst_args);
    if (multifd) {
        set_multifd(dst2);
    }
    mig_set_fast(src);
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
    mig_migrate(src, uri2);
    mig_wait_completed(src, 30000);
    mig_wait_completed(dst2, 30000);
    mig_assert_runstate(src, "postmigrate");
    g_free(dev);
    dev = vfio_mig_state(dst2, "dev0");
    g_assert_cmpstr(dev, ==, "running");
    vfio_wait_dma_progress(dst2, 64);
    mig_assert_guest_ok(dst2);
}

static void test_cancel_device_transfer(void)
{
    cancel_device_transfer(false);
}

static void test_cancel_device_transfer_multifd(void)
{
    cancel_device_transfer(true);
}

static void test_destination_server_killed(void)
{
    g_auto(VfioPair) p = { 0 };

    vfio_pair_start(&p, "", "");
    start_stuck_migration(p.src, p.uri);
    vfio_server_kill(p.dst_srv, SIGKILL);
    /* The destination cannot write the device's data: it fails cleanly. */
    g_assert_cmpint(qtest_wait_exit(p.dst, 20000), ==, 1);
    wait_failed(p.src);
    assert_source_recovered(p.src);
}

/* ---- Multifd device state ---- */

/*
 * A destination that stays up when its load fails (exit-on-error
 * false), listening on a fresh unix socket: its URI in *@uri.
 */
static QTestState *start_dst_stay_up(const char *args, char **uri)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    QTestState *dst = mig_start_dst("defer", args);

    *uri = g_strdup_printf("unix:%s", path);
    set_multifd(dst);
    mig_set_cap(dst, "return-path", true);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": false}}", *uri);
    return dst;
}

/*
 * The destination's device server dies while the STOP_COPY data comes
 * over multifd: its load thread fails, and with it the load, naming the
 * device; the source hears it on the return path and runs on.  A
 * STOP_COPY-only device has nothing written to it before the load
 * thread starts, so the first write is the one that fails.
 */
static void test_multifd_dst_server_killed(void)
{
    g_autoptr(VfioServer) s0 = vfio_server_start("--no-precopy");
    g_autoptr(VfioServer) d0 = vfio_server_start("--no-precopy");
    g_autofree char *src_args = vfio_vm_args(&s0, 1, "");
    g_autofree char *dst_args = vfio_vm_args(&d0, 1, "");
    g_autofree char *uri = NULL, *desc = NULL, *st = NULL;
    g_autoptr(QTestState) dst = start_dst_stay_up(dst_args, &uri);
    g_autoptr(QTestState) src = mig_start_vm(src_args);
    static const char *const active[] = { "active", NULL };

    set_multifd(src);
    mig_set_cap(src, "return-path", true);
    mig_set_fast(src);
    /* No switchover until the server is gone. */
    mig_set_param(src, "avail-switchover-bandwidth", 1);
    mig_migrate(src, uri);
    st = mig_wait_status(src, active, 10000);
    mig_wait_sync_count(src, 2, 20000);
    vfio_server_kill(d0, SIGKILL);
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
    wait_failed(dst);
    desc = error_desc(dst);
    g_test_message("destination error-desc: %s", desc);
    g_assert_nonnull(strstr(desc, "vfio-user-pci dev0"));
    g_assert_nonnull(strstr(desc, "device state packet"));
    wait_failed(src);
    assert_source_recovered(src);
    mig_assert_runstate(dst, "inmigrate");
}

/*
 * A migration with multifd device state whose destination device,
 * configured with @dst_props, must fail the load: the destination's
 * error names the device and @expect, and the source recovers.
 */
static void expect_multifd_load_failure(const char *server_args,
                                        const char *dst_props,
                                        const char *expect)
{
    g_autoptr(VfioServer) s0 = vfio_server_start(server_args);
    g_autoptr(VfioServer) d0 = vfio_server_start(server_args);
    g_autofree char *src_args = vfio_vm_args(&s0, 1, "");
    g_autofree char *dst_args = vfio_vm_args(&d0, 1, dst_props);
    g_autofree char *uri = NULL, *desc = NULL;
    g_autoptr(QTestState) dst = start_dst_stay_up(dst_args, &uri);
    g_autoptr(QTestState) src = mig_start_vm(src_args);

    set_multifd(src);
    mig_set_cap(src, "return-path", true);
    mig_set_fast(src);
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
    mig_migrate(src, uri);
    wait_failed(dst);
    desc = error_desc(dst);
    g_test_message("destination error-desc: %s", desc);
    g_assert_nonnull(strstr(desc, "vfio-user-pci dev0"));
    g_assert_nonnull(strstr(desc, expect));
    wait_failed(src);
    assert_source_recovered(src);
}

/*
 * x-migration-max-queued-buffers-size below one packet: the first packet
 * that would be queued fails the load, which names the device and the
 * limit.
 */
static void test_multifd_queue_cap(void)
{
    expect_multifd_load_failure("--no-precopy",
                                "x-migration-max-queued-buffers-size=4096",
                                "above the limit of 4096");
}

/*
 * Both sides must agree on x-migration-multifd-transfer: a source that
 * sends over multifd to a destination that expects the main channel
 * fails the load with a message that says so.
 */
static void test_multifd_disagreement(void)
{
    expect_multifd_load_failure("", "x-migration-multifd-transfer=off",
                                "x-migration-multifd-transfer");
}

/*
 * migrate is refused at once for a VM started with @args: the error
 * holds @what and @who, and the source keeps running.  Returns the VM
 * for further checks.
 */
static QTestState *expect_migrate_refused(const char *args, const char *what,
                                          const char *who)
{
    QTestState *src = mig_start_vm(args);
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autofree char *err = mig_migrate_expect_error(src, uri);

    g_assert_nonnull(strstr(err, what));
    g_assert_nonnull(strstr(err, who));
    mig_assert_runstate(src, "running");
    return src;
}

/* =on without the multifd capability is refused at once, and says why. */
static void test_multifd_on_without_capability(void)
{
    g_autoptr(VfioServer) a = vfio_server_start("");
    g_autofree char *args = vfio_vm_args(&a, 1,
                                         "x-migration-multifd-transfer=on");
    g_autoptr(QTestState) src = expect_migrate_refused(
        args, "needs the multifd capability", "dev0");
}

static void test_blocker_mixed_p2p(void)
{
    g_autoptr(VfioServer) a = vfio_server_start("");
    g_autoptr(VfioServer) b = vfio_server_start("--no-p2p");
    VfioServer *srvs[] = { a, b };
    g_autofree char *args = vfio_vm_args(srvs, 2, "");
    /* Plain servers have no P2P at all: the first device is named. */
    g_autoptr(QTestState) src = expect_migrate_refused(
        args, "P2P", vfio_servers_plain() ? "dev0" : "dev1");
}

static void test_blocker_disabled(void)
{
    g_autoptr(VfioServer) a = vfio_server_start("");
    g_autofree char *args = vfio_vm_args(&a, 1, "enable-migration=off");
    g_autoptr(QTestState) src = expect_migrate_refused(
        args, "enable-migration=off", "dev0");
    g_autofree char *st = vfio_mig_state(src, "dev0");

    g_assert_cmpstr(st, ==, "none");
}

/*
 * postcopy-ram with a VFIO device: refused when the migration starts (as
 * in QEMU), naming the device and why, so migrate-start-postcopy never
 * has a migration to switch; the source runs on.
 */
static void test_blocker_postcopy(void)
{
    g_autoptr(VfioServer) a = vfio_server_start("");
    g_autofree char *args = vfio_vm_args(&a, 1, "");
    g_autoptr(QTestState) src = mig_start_vm(args);
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autofree char *err = NULL;

    mig_set_cap(src, "return-path", true);
    mig_set_cap(src, "postcopy-ram", true);
    err = mig_migrate_expect_error(src, uri);
    g_assert_nonnull(strstr(err, "dev0"));
    g_assert_nonnull(strstr(err, "VFIO migration is not supported with "
                                 "postcopy"));
    mig_assert_error(src, "migrate-start-postcopy", "{}",
                     "Postcopy must be started after migration has been "
                     "started");
    mig_assert_runstate(src, "running");
}

static void test_no_server(void)
{
    g_autofree char *path = qtest_tmp_path("absent", "sock");
    g_autofree char *args = g_strdup_printf("-device vfio-user-pci,"
                                            "socket.type=unix,socket.path=%s,"
                                            "id=dev0", path);
    g_autofree char *err = NULL;

    g_assert_cmpint(qtest_run(args, NULL, &err), ==, 1);
    g_assert_nonnull(strstr(err, path));
    g_assert_nonnull(strstr(err, "dev0"));
}

/*
 * A migration during which the device rewrites every slot of guest RAM
 * by DMA, its servers started with @server_args, the source's device
 * with @src_props and the source with @src_extra.  The destination stays
 * paused (-S) so that its dma program cannot rewrite the slots before
 * the check.  Returns the check's verdict.
 */
static bool migrate_and_check(const char *server_args, const char *src_props,
                              const char *src_extra, char **detail)
{
    g_autoptr(VfioServer) s0 = vfio_server_start(server_args);
    g_autoptr(VfioServer) d0 = vfio_server_start(server_args);
    g_autofree char *dev_args = vfio_vm_args(&s0, 1, src_props);
    g_autofree char *src_args = g_strdup_printf("%s %s", dev_args, src_extra);
    g_autofree char *dst_args = NULL, *tmp = vfio_vm_args(&d0, 1, src_props);
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = NULL;
    g_autoptr(QTestState) src = NULL;

    dst_args = g_strdup_printf("-S %s", tmp);
    dst = mig_start_dst(uri, dst_args);
    src = mig_start_vm(src_args);
    /* As fast as the device goes: every slot is rewritten during the run. */
    qtest_qmp_assert_ok(src, "{\"execute\": \"qom-set\", \"arguments\": "
                        "{\"path\": \"/machine/guest-dma\", \"property\": "
                        "\"rate\", \"value\": 0}}");
    mig_set_fast(src);
    /*
     * No switchover for a few passes (1 byte/s cannot carry the device's
     * stop-copy data), so that the device rewrites every slot after
     * RAM's first pass has sent it; then let the migration finish.
     */
    mig_set_param(src, "avail-switchover-bandwidth", 1);
    vfio_wait_dma_progress(src, 512);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 5, 20000);
    vfio_wait_dma_progress(src, 512);
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
    mig_wait_completed(src, 30000);
    mig_wait_completed(dst, 30000);
    mig_assert_runstate(dst, "paused");
    return vfio_guest_verify(dst, detail);
}

static void test_dirty_tracking(void)
{
    g_autofree char *detail_on = NULL, *detail_off = NULL;

    if (!migrate_and_check("", "", "", &detail_on)) {
        g_error("with dirty tracking: %s", detail_on);
    }
    g_assert_false(migrate_and_check("", "x-no-dirty-sync=on", "",
                                     &detail_off));
    /* What is lost is a page only the device wrote. */
    g_assert_nonnull(detail_off);
    g_assert_nonnull(strstr(detail_off, "slot"));
}

/*
 * A device without DMA logging under enable-migration=on: its DMA
 * ranges are dirty at every sync (the trace says so), and the slots it
 * wrote during the migration arrive; the same migration with the
 * marking left out (x-no-dirty-sync) loses them, so the marking is what
 * carries them.
 */
static void test_always_dirty(void)
{
    g_autofree char *log = qtest_tmp_path("vfio-dirty", "log");
    g_autofree char *trace_args = g_strdup_printf(
        "-trace vfio_dirty_log_sync -D %s", log);
    g_autofree char *detail = NULL, *detail_off = NULL, *text = NULL;

    if (!migrate_and_check("--no-dma-logging", "enable-migration=on",
                           trace_args, &detail)) {
        g_error("with the DMA ranges always dirty: %s", detail);
    }
    g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
    g_assert_nonnull(strstr(text, "all DMA ranges dirty"));
    unlink(log);
    g_assert_false(migrate_and_check("--no-dma-logging",
                                     "enable-migration=on,x-no-dirty-sync=on",
                                     "", &detail_off));
    g_assert_nonnull(strstr(detail_off, "slot"));
}

/* The same device under enable-migration=auto blocks migration. */
static void test_blocker_no_dma_logging(void)
{
    g_autoptr(VfioServer) a = vfio_server_start("--no-dma-logging");
    g_autofree char *args = vfio_vm_args(&a, 1, "");
    g_autoptr(QTestState) src = expect_migrate_refused(
        args, "nor its IOMMU can track its DMA writes", "dev0");
}

/* ---- A destination fed a damaged VFIO section ---- */

#define MARK_CONFIG 0xffffffffef100002ULL
#define MARK_SETUP 0xffffffffef100003ULL
#define MARK_DATA  0xffffffffef100004ULL
#define MARK_LOAD_READY 0xffffffffef100006ULL

/* Offset of the first be64 @marker in @buf, or -1. */
static gssize find_marker(const uint8_t *buf, gsize len, uint64_t marker)
{
    uint64_t be = GUINT64_TO_BE(marker);

    for (gsize i = 0; i + 8 <= len; i++) {
        if (!memcmp(buf + i, &be, 8)) {
            return i;
        }
    }
    return -1;
}

/*
 * Load @image on a fresh destination that stays up when the load fails:
 * NULL when it loaded (and the guest and device check out), else the
 * destination's error-desc.
 */
static char *load_image(const uint8_t *image, gsize len)
{
    g_autoptr(VfioServer) d0 = vfio_server_start("");
    g_autofree char *dst_args = vfio_vm_args(&d0, 1, "");
    g_autofree char *path = qtest_tmp_path("img", "mig");
    g_autoptr(GError) gerr = NULL;
    g_autoptr(QTestState) dst = NULL;
    static const char *const done[] = { "completed", "failed", NULL };
    g_autofree char *st = NULL;

    g_assert_true(g_file_set_contents(path, (const char *)image, len, &gerr));
    dst = mig_start_dst("defer", dst_args);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"file:%s\", "
                        "\"exit-on-error\": false}}", path);
    /* mig_wait_status treats "failed" as unexpected: poll for both. */
    for (int i = 0; i < 1500; i++) {
        g_free(st);
        st = mig_status(dst);
        if (g_strv_contains(done, st)) {
            break;
        }
        g_usleep(20 * 1000);
    }
    if (!strcmp(st, "completed")) {
        vfio_wait_dma_progress(dst, 256);
        mig_assert_guest_ok(dst);
        return NULL;
    }
    g_assert_cmpstr(st, ==, "failed");
    return error_desc(dst);
}

/* A running VM with one device migrated to a file: the file's bytes. */
static uint8_t *save_device_image(gsize *len)
{
    g_autoptr(VfioServer) s0 = vfio_server_start("");
    g_autofree char *src_args = vfio_vm_args(&s0, 1, "");
    g_autofree char *path = qtest_tmp_path("img", "mig");
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(QTestState) src = mig_start_vm(src_args);
    g_autoptr(GError) gerr = NULL;
    uint8_t *image;

    mig_set_fast(src);
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
    vfio_wait_dma_progress(src, 256);
    mig_migrate(src, uri);
    mig_wait_completed(src, 30000);
    g_assert_true(g_file_get_contents(path, (char **)&image, len, &gerr));
    unlink(path);
    return image;
}

static void test_damaged_stream(void)
{
    gsize len;
    g_autofree uint8_t *image = save_device_image(&len);
    g_autofree uint8_t *bad = NULL;
    gssize setup, data, ready, config;
    char *desc;

    setup = find_marker(image, len, MARK_SETUP);
    data = find_marker(image, len, MARK_DATA);
    ready = find_marker(image, len, MARK_LOAD_READY);
    config = find_marker(image, len, MARK_CONFIG);
    g_assert_cmpint(setup, >=, 0);
    g_assert_cmpint(data, >, setup);
    /* The config state has its own FULL section, after the END one. */
    g_assert_cmpint(ready, >, data);
    g_assert_cmpint(config, >, ready);

    /* The image as saved loads, and the guest and device check out. */
    g_assert_null(load_image(image, len));

    /* An unknown marker where the setup marker was. */
    bad = g_memdup2(image, len);
    {
        uint64_t v = GUINT64_TO_BE(0xffffffffef1000ffULL);

        memcpy(bad + setup, &v, 8);
    }
    desc = load_image(bad, len);
    g_assert_nonnull(strstr(desc, "dev0: unknown marker"));
    g_free(desc);

    /* A data block claiming far more than any block may hold. */
    memcpy(bad, image, len);
    {
        uint64_t v = GUINT64_TO_BE(1ULL << 40);

        memcpy(bad + data + 8, &v, 8);
    }
    desc = load_image(bad, len);
    g_assert_nonnull(strstr(desc, "dev0: device state block of"));
    g_free(desc);

    /* No DEV_CONFIG_LOAD_READY (a harmless marker in its place). */
    memcpy(bad, image, len);
    {
        uint64_t v = GUINT64_TO_BE(MARK_SETUP);

        memcpy(bad + ready, &v, 8);
    }
    desc = load_image(bad, len);
    g_assert_nonnull(strstr(desc, "dev0: config state before "
                            "DEV_CONFIG_LOAD_READY"));
    g_free(desc);

    /* The FULL section without its config state. */
    memcpy(bad, image, len);
    {
        uint64_t v = GUINT64_TO_BE(0xffffffffef100001ULL);

        memcpy(bad + config, &v, 8);
    }
    desc = load_image(bad, len);
    g_assert_nonnull(strstr(desc, "dev0: the config state is missing"));
    g_free(desc);

    /* The stream cut in the middle of the first data block. */
    desc = load_image(image, data + 16 + 100);
    g_assert_nonnull(strstr(desc, "dev0: device state block"));
    g_free(desc);
}

/* A MigStreamExpectError: the load of @image fails with @fragment. */
static void expect_image_error(const uint8_t *image, size_t len,
                               const char *fragment, void *opaque)
{
    g_autofree char *desc = load_image(image, len);

    if (!desc || !mig_error_matches(desc, fragment)) {
        g_error("a cut image: %s, expected an error with '%s'",
                desc ? desc : "it loaded", fragment);
    }
}

static bool is_device_section(const MigStreamElement *el)
{
    return el->type >= MIG_EL_START && el->type <= MIG_EL_FULL &&
           !strcmp(el->name, "vfio/dev0");
}

/*
 * A stream with a device cut before and after each of the device's
 * sections, and inside the first of each kind: each load fails naming
 * the missing part (the device's START, END or FULL, SWITCHOVER_START,
 * the next section) and the destination stays up; none completes.
 */
static void test_truncated_device_stream(void)
{
    gsize len;
    g_autofree uint8_t *image = save_device_image(&len);
    g_autoptr(MigStream) ms = mig_stream_walk(image, len);
    bool seen[MIG_EL_FULL + 1] = { false };

    for (guint i = 0; i < ms->elements->len; i++) {
        MigStreamElement *el = mig_stream_element(ms, i);
        bool device = is_device_section(el);

        if (device || (i && is_device_section(mig_stream_element(ms,
                                                                 i - 1)))) {
            mig_stream_check_cut(ms, i, expect_image_error, NULL);
        }
        if (device && !seen[el->type]) {
            seen[el->type] = true;
            mig_stream_check_cut_inside(ms, i, expect_image_error, NULL);
        }
    }
    g_assert_true(seen[MIG_EL_START] && seen[MIG_EL_END] &&
                  seen[MIG_EL_FULL]);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vfio/failure/arc/source", test_fail_arc_source);
    g_test_add_func("/vfio/failure/arc/source-stop-copy-only",
                    test_fail_arc_source_stop_copy_only);
    g_test_add_func("/vfio/failure/arc/paused-source",
                    test_fail_arc_paused_source);
    g_test_add_func("/vfio/failure/arc/paused-source-multifd",
                    test_fail_arc_paused_source_multifd);
    g_test_add_func("/vfio/failure/multifd/server-killed/destination",
                    test_multifd_dst_server_killed);
    g_test_add_func("/vfio/failure/multifd/queue-cap", test_multifd_queue_cap);
    g_test_add_func("/vfio/failure/multifd/disagreement",
                    test_multifd_disagreement);
    g_test_add_func("/vfio/failure/multifd/on-without-capability",
                    test_multifd_on_without_capability);
    g_test_add_func("/vfio/failure/arc/destination",
                    test_fail_arc_destination);
    g_test_add_func("/vfio/failure/server-killed/source", test_server_killed);
    g_test_add_func("/vfio/failure/server-killed/destination",
                    test_destination_server_killed);
    g_test_add_func("/vfio/failure/cancel/pre-copy", test_cancel_precopy);
    g_test_add_func("/vfio/failure/cancel/device-transfer",
                    test_cancel_device_transfer);
    g_test_add_func("/vfio/failure/cancel/device-transfer-multifd",
                    test_cancel_device_transfer_multifd);
    g_test_add_func("/vfio/blocker/mixed-p2p", test_blocker_mixed_p2p);
    g_test_add_func("/vfio/blocker/enable-migration-off",
                    test_blocker_disabled);
    g_test_add_func("/vfio/blocker/postcopy", test_blocker_postcopy);
    g_test_add_func("/vfio/realize/no-server", test_no_server);
    g_test_add_func("/vfio/dirty-tracking/device-writes", test_dirty_tracking);
    g_test_add_func("/vfio/dirty-tracking/always-dirty", test_always_dirty);
    g_test_add_func("/vfio/blocker/no-dma-logging",
                    test_blocker_no_dma_logging);
    g_test_add_func("/vfio/stream/damaged", test_damaged_stream);
    g_test_add_func("/vfio/stream/truncated", test_truncated_device_stream);
    return g_test_run();
}
