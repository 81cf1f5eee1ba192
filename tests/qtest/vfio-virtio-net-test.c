/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Live migration of a VM whose guest streams frames through a
 * vfio-user-virtio-net device (the seed's device-context design): with
 * STOP_COPY only and with PRE_COPY, switchover-ack, multifd device
 * state, back and forth; streams the destination must refuse (an unknown
 * mandatory tag, a partial part, a size that disagrees with its part, a
 * stream cut short) and one it must take (an unknown optional tag);
 * cancels; and the guest's own check catching one lost frame.  Every
 * migration that completes ends with the destination's guest receiving
 * more frames and x-guest-verify passing: not one frame lost, repeated
 * or out of order across the switchover.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"
#include "vfio/framework.h"

#define DEVICE "vfio-user-virtio-net"
#define GUEST "-guest virtio-net,rate=3000"
/* A 600 KB device context: PRE_COPY has something to do. */
#define FILTERS "--mac-filters 100000"

typedef struct NetCase {
    const char *server_args;
    bool ack;
    bool multifd;
} NetCase;

static char *vm_args(VfioServer *srv)
{
    return g_strdup_printf(GUEST " -device vfio-user-pci,socket=%s,id=net0,"
                           "migration-events=on", srv->socket);
}

static void set_caps(QTestState *src, QTestState *dst, const NetCase *c)
{
    QTestState *both[] = { src, dst };

    for (int i = 0; i < 2; i++) {
        if (c->ack) {
            mig_set_cap(both[i], "return-path", true);
            mig_set_cap(both[i], "switchover-ack", true);
        }
        if (c->multifd) {
            mig_set_cap(both[i], "multifd", true);
            mig_set_param(both[i], "multifd-channels", 2);
        }
    }
    mig_set_fast(src);
    mig_set_param(src, "avail-switchover-bandwidth", 1024 * MiB);
}

static void wait_frames(QTestState *s, int64_t n)
{
    vfio_wait_program_progress(s, "virtio-net", n);
}

/*
 * Migrate the VM in *@src (device server *@srv) to a new destination
 * with a new server; afterwards *@src and *@srv are the destination's.
 */
static void migrate_hop(QTestState **src, VfioServer **srv, const NetCase *c)
{
    VfioServer *dsrv = vfio_server_spawn(DEVICE, c->server_args);
    g_autofree char *dst_args = vm_args(dsrv);
    g_autofree char *uri = mig_sock_uri();
    QTestState *dst = mig_start_dst(uri, dst_args);
    g_autofree char *st = NULL;

    set_caps(*src, dst, c);
    wait_frames(*src, 500);
    mig_migrate(*src, uri);
    mig_check_success(*src, dst);
    st = vfio_mig_state(dst, "net0");
    g_assert_cmpstr(st, ==, "running");
    /* The stream goes on through the destination's device, still exact. */
    wait_frames(dst, 1000);
    mig_assert_guest_ok(dst);
    g_assert_cmpint(vfio_transferred(*src), >, 600000);
    qtest_quit(*src);
    vfio_server_free(*srv);
    *src = dst;
    *srv = dsrv;
}

static void run_migration(gconstpointer opaque)
{
    const NetCase *c = opaque;
    VfioServer *srv = vfio_server_spawn(DEVICE, c->server_args);
    g_autofree char *args = vm_args(srv);
    QTestState *src = mig_start_vm(args);

    migrate_hop(&src, &srv, c);
    qtest_quit(src);
    vfio_server_free(srv);
}

/* There and back twice more: each hop with fresh device servers. */
static void test_back_and_forth(void)
{
    static const NetCase c = { FILTERS, true, false };
    VfioServer *srv = vfio_server_spawn(DEVICE, c.server_args);
    g_autofree char *args = vm_args(srv);
    QTestState *src = mig_start_vm(args);

    for (int i = 0; i < 3; i++) {
        migrate_hop(&src, &srv, &c);
    }
    qtest_quit(src);
    vfio_server_free(srv);
}

/*
 * The source's device sends a stream with @fault; the destination's
 * device refuses it, its log says why (@why), the migration fails, and
 * the source runs on with its stream intact.
 */
static void refused_stream(const char *fault, const char *why)
{
    g_autofree char *src_srv_args = g_strdup_printf(FILTERS
                                                    " --x-stream-fault %s",
                                                    fault);
    g_autoptr(VfioServer) ssrv = vfio_server_spawn(DEVICE, src_srv_args);
    g_autoptr(VfioServer) dsrv = vfio_server_spawn(DEVICE, FILTERS);
    g_autofree char *src_args = vm_args(ssrv), *dst_args = vm_args(dsrv);
    g_autofree char *uri = mig_sock_uri(), *log = NULL, *err = NULL;
    g_autoptr(QTestState) src = mig_start_vm(src_args);
    g_autoptr(QTestState) dst = mig_start_dst("defer", dst_args);
    /* The return path tells the source when the destination failed late. */
    static const NetCase c = { FILTERS, true, false };

    set_caps(src, dst, &c);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": false}}", uri);
    wait_frames(src, 500);
    mig_migrate(src, uri);
    err = mig_wait_failed(dst, 30000);
    g_test_message("destination: %s", err);
    g_assert_nonnull(strstr(err, "net0"));
    log = vfio_server_log(dsrv);
    if (!strstr(log, why)) {
        g_error("the destination device's log does not say '%s':\n%s", why,
                log);
    }
    g_free(mig_wait_failed(src, 30000));
    mig_assert_runstate(src, "running");
    {
        g_autofree char *st = vfio_mig_state(src, "net0");

        g_assert_cmpstr(st, ==, "running");
    }
    wait_frames(src, 1000);
    mig_assert_guest_ok(src);
}

static void test_mandatory_tag(void)
{
    refused_stream("mandatory-tag", "unknown mandatory tag 32343");
}

static void test_partial_part(void)
{
    refused_stream("partial-part", "partial MAC_FILTERS part");
}

static void test_size_mismatch(void)
{
    refused_stream("size-mismatch", "in-flight heads make it");
}

static void test_truncated(void)
{
    refused_stream("truncated", "a partial part");
}

/* Records of a tag this version does not know, marked optional: skipped. */
static void test_optional_tag(void)
{
    static const NetCase c = { FILTERS " --x-stream-fault optional-tag",
                               true, false };
    VfioServer *srv = vfio_server_spawn(DEVICE, c.server_args);
    g_autofree char *args = vm_args(srv);
    QTestState *src = mig_start_vm(args);

    migrate_hop(&src, &srv, &c);
    qtest_quit(src);
    vfio_server_free(srv);
}

/*
 * migrate_cancel once the migration reached @status (with @pause,
 * pause-before-switchover holds it in pre-switchover): the source runs
 * on, its device back to running, every frame still exact; then the
 * same VM migrates to a new destination.
 */
static void cancel_at(const char *status, bool pause)
{
    static const NetCase c = { FILTERS, true, false };
    static const char *const cancelled[] = { "cancelled", NULL };
    const char *const want[] = { status, NULL };
    VfioServer *srv = vfio_server_spawn(DEVICE, FILTERS);
    g_autoptr(VfioServer) dsrv = vfio_server_spawn(DEVICE, FILTERS);
    g_autofree char *args = vm_args(srv), *dst_args = vm_args(dsrv);
    g_autofree char *uri = mig_sock_uri(), *st = NULL, *dev = NULL;
    QTestState *src = mig_start_vm(args);
    g_autoptr(QTestState) dst = mig_start_dst("defer", dst_args);

    set_caps(src, dst, &c);
    if (pause) {
        mig_set_cap(src, "pause-before-switchover", true);
    } else {
        /* Slow enough that the device's pre-copy is seen under way. */
        mig_set_param(src, "max-bandwidth", 32 * MiB);
    }
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": false}}", uri);
    wait_frames(src, 500);
    mig_migrate(src, uri);
    g_free(mig_wait_status(src, want, 30000));
    if (!pause) {
        for (int i = 0; i < 1000 && !vfio_transferred(src); i++) {
            g_usleep(10 * 1000);
        }
        dev = vfio_mig_state(src, "net0");
        g_assert_cmpstr(dev, ==, "pre-copy");
        g_clear_pointer(&dev, g_free);
    }
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate_cancel\"}");
    st = mig_wait_status(src, cancelled, 20000);
    mig_assert_runstate(src, "running");
    dev = vfio_mig_state(src, "net0");
    g_assert_cmpstr(dev, ==, "running");
    wait_frames(src, 1000);
    mig_assert_guest_ok(src);
    if (pause) {
        mig_set_cap(src, "pause-before-switchover", false);
    }
    mig_set_fast(src);
    migrate_hop(&src, &srv, &c);
    qtest_quit(src);
    vfio_server_free(srv);
}

static void test_cancel_active(void)
{
    cancel_at("active", false);
}

static void test_cancel_pre_switchover(void)
{
    cancel_at("pre-switchover", true);
}

/* The device loses one frame: the guest's check says which. */
static void test_lost_frame(void)
{
    g_autoptr(VfioServer) srv = vfio_server_spawn(DEVICE, "--drop-frame 300");
    g_autofree char *args = vm_args(srv);
    g_autoptr(QTestState) vm = mig_start_vm(args);
    g_autofree char *detail = NULL;

    for (int i = 0; i < 1000 && vfio_guest_verify(vm, NULL); i++) {
        g_usleep(10 * 1000);
    }
    g_assert_false(vfio_guest_verify(vm, &detail));
    g_test_message("x-guest-verify: %s", detail);
    g_assert_nonnull(strstr(detail, "frame 301 arrived where frame 300 was "
                            "due: frames were lost"));
}

static const NetCase cases[] = {
    { FILTERS " --no-precopy", false, false },
    { FILTERS, false, false },
    { FILTERS, true, false },
    { FILTERS, true, true },
    { FILTERS " --no-precopy --no-p2p", false, true },
};

static const char *const case_names[] = {
    "/virtio-net/migration/stop-copy",
    "/virtio-net/migration/pre-copy",
    "/virtio-net/migration/pre-copy-ack",
    "/virtio-net/migration/pre-copy-ack/multifd",
    "/virtio-net/migration/stop-copy/no-p2p/multifd",
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_test_add_data_func(case_names[i], &cases[i], run_migration);
    }
    g_test_add_func("/virtio-net/migration/back-and-forth",
                    test_back_and_forth);
    g_test_add_func("/virtio-net/stream/optional-tag", test_optional_tag);
    g_test_add_func("/virtio-net/stream/mandatory-tag", test_mandatory_tag);
    g_test_add_func("/virtio-net/stream/partial-part", test_partial_part);
    g_test_add_func("/virtio-net/stream/size-mismatch", test_size_mismatch);
    g_test_add_func("/virtio-net/stream/truncated", test_truncated);
    g_test_add_func("/virtio-net/cancel/active", test_cancel_active);
    g_test_add_func("/virtio-net/cancel/pre-switchover",
                    test_cancel_pre_switchover);
    g_test_add_func("/virtio-net/guest/lost-frame", test_lost_frame);
    return g_test_run();
}
