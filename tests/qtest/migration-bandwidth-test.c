/*
 * The bandwidth estimate that decides the switchover must survive
 * converged RAM.  Once the guest's RAM has gone, each 100 ms window
 * carries only what the guest dirtied since the last pass: the sender is
 * starved, and such a window measures the guest, not the channel.  A
 * device without PRE_COPY (vfio-user-dma --no-precopy) has all its state
 * to send at the switchover, so the migration can only complete if the
 * estimate still says what the channel carries.
 *
 * No test here looks at a clock: each waits for the migration to
 * complete, with meson's timeout as the only bound.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"
#include "vfio/framework.h"

/* Device memory: its whole state goes during the downtime. */
#define DEVICE_MEM "32M"
/*
 * Bytes/s the source may send, well within what loopback carries on a
 * loaded machine, and a downtime limit the device fits in at that rate
 * (32 MiB in 1 s at 64 MiB/s) but not at the guest's dirty rate.
 */
#define MAX_BANDWIDTH (64 * MiB)
#define DOWNTIME_LIMIT_MS 1000

typedef struct BwCase {
    /* The guest's RAM writer; the dma program drives the device too. */
    const char *guest;
    /* Guest bytes written before the migration starts. */
    int64_t written;
    /*
     * Hold the switchover back (1 ms limit) until RAM has converged, as
     * an operator waiting for it would, then allow DOWNTIME_LIMIT_MS.
     */
    bool limit_after_convergence;
} BwCase;

static char *vm_args(VfioServer *srv, const char *guest)
{
    return g_strdup_printf("%s -guest dma -device vfio-user-pci,socket=%s,"
                           "id=dev0", guest, srv->socket);
}

/*
 * Wait until the first pass is over and a window has carried less than
 * half of max-bandwidth ("mbps" is the last window's rate): the sender
 * has run out of data, the guest's dirtying is all there is to send.
 */
static void wait_starved_window(QTestState *src)
{
    mig_wait_sync_count(src, 2, 60000);
    for (;;) {
        g_autoptr(JsonNode) q = mig_query(src);
        JsonObject *ram = json_object_get_object_member(qtest_obj(q), "ram");

        g_assert_cmpstr(qtest_get_str(q, "status"), ==, "active");
        if (json_object_get_double_member(ram, "mbps") <
            MAX_BANDWIDTH * 8.0 / 1e6 / 2) {
            return;
        }
        g_usleep(20 * 1000);
    }
}

static void run_switchover(gconstpointer opaque)
{
    static const char *const completed[] = { "completed", NULL };
    const BwCase *c = opaque;
    g_autoptr(VfioServer) src_srv = vfio_server_start(
        "--no-precopy --mem-size " DEVICE_MEM);
    g_autoptr(VfioServer) dst_srv = vfio_server_start(
        "--no-precopy --mem-size " DEVICE_MEM);
    g_autofree char *src_args = vm_args(src_srv, c->guest);
    g_autofree char *dst_args = vm_args(dst_srv, c->guest);
    g_autofree char *path = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    g_autoptr(QTestState) dst = mig_start_dst(uri, dst_args);
    g_autoptr(QTestState) src = mig_start_vm(src_args);

    mig_set_param(src, "max-bandwidth", MAX_BANDWIDTH);
    mig_set_param(src, "downtime-limit",
                  c->limit_after_convergence ? 1 : DOWNTIME_LIMIT_MS);
    mig_wait_guest_progress(src, c->written);
    mig_migrate(src, uri);
    if (c->limit_after_convergence) {
        wait_starved_window(src);
        mig_set_param(src, "downtime-limit", DOWNTIME_LIMIT_MS);
    }
    /* Unbounded: before the fix this never switched over. */
    g_autofree char *st = mig_wait_status(src, completed, -1);
    mig_check_success(src, dst);
    {
        g_autoptr(JsonNode) q = mig_query(src);
        JsonObject *vfio = json_object_get_object_member(qtest_obj(q), "vfio");

        g_assert_nonnull(vfio);
        g_assert_cmpint(json_object_get_int_member(vfio, "transferred"), >=,
                        32 * MiB);
    }
}

/*
 * The first pass (16 MiB at 64 MiB/s) fills whole windows and measures
 * the channel; then the guest dirties 16 MiB/s, far less than a window
 * carries, and those windows must not replace that measurement.
 */
static const BwCase after_busy_pass = {
    .guest = "-guest stress,ws=16M,rate=16M",
    .written = 32 * MiB,
    .limit_after_convergence = true,
};

/*
 * A guest that never gives the sender a full window (4 MiB of RAM in
 * all): no window measures the channel, and max-bandwidth stands in.
 */
static const BwCase never_busy = {
    .guest = "-guest stress,ws=4M,rate=4M",
    .written = 4 * MiB,
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/migration/bandwidth/converged-ram-after-busy-pass",
                         &after_busy_pass, run_switchover);
    g_test_add_data_func("/migration/bandwidth/converged-ram-never-busy",
                         &never_busy, run_switchover);
    return g_test_run();
}
