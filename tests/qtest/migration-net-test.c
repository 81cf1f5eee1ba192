/*
 * Two hosts: source and destination, each with its vfio-user device
 * server, in network namespaces of their own joined by a veth pair
 * (tests/qtest/migration/netns.h).  A stress VM with a device converges
 * over a 1 Gbit/s link; a link cut in each status fails the migration
 * within x-channel-timeout on both sides, the source VM runs on, and once
 * the link is back a new migration completes; twenty migrations go back
 * and forth with guest and device checks after each.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"
#include "migration/netns.h"
#include "vfio/framework.h"

#define PORT 4444
#define TIMEOUT_MS 2000
#define WAIT_MS 60000

/* A VM on @side of @p with one vfio-user-dma device served there too. */
typedef struct Host {
    QTestState *vm;
    VfioServer *srv;
} Host;

static void host_start(Host *h, NetPair *p, int side, bool incoming)
{
    g_autofree char *args = NULL;

    qtest_set_netns(netpair_ns(p, side));
    h->srv = vfio_server_start("");
    args = vfio_vm_args(&h->srv, 1, NULL);
    h->vm = incoming ? mig_start_dst("defer", args) : mig_start_vm(args);
    qtest_set_netns(NULL);
    mig_set_param(h->vm, "x-channel-timeout", TIMEOUT_MS);
}

static void host_stop(Host *h)
{
    if (h->vm) {
        qtest_quit(h->vm);
    }
    vfio_server_free(h->srv);
    memset(h, 0, sizeof(*h));
}

/* The destination listens on its address; returns the source's URI. */
static char *host_listen(Host *dst, NetPair *p, int side, bool stay_up)
{
    g_autofree char *uri = netpair_uri(p, side, PORT);

    qtest_qmp_assert_ok(dst->vm, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": %s}}", uri,
                        stay_up ? "false" : "true");
    return g_steal_pointer(&uri);
}

/* The whole happy path, and the device's state went across too. */
static void migrate_ok(Host *src, Host *dst, const char *uri)
{
    mig_set_fast(src->vm);
    mig_set_param(src->vm, "avail-switchover-bandwidth", 0);
    mig_migrate(src->vm, uri);
    mig_check_success(src->vm, dst->vm);
    g_autofree char *st = vfio_mig_state(dst->vm, "dev0");
    g_assert_cmpstr(st, ==, "running");
}

static void test_converge_1gbit(void)
{
    g_autoptr(NetPair) p = netpair_new("1gbit");
    Host src, dst;

    if (!p) {
        return;
    }
    host_start(&src, p, NET_A, false);
    host_start(&dst, p, NET_B, true);
    g_autofree char *uri = host_listen(&dst, p, NET_B, false);
    mig_wait_guest_progress(src.vm, 8 * MiB);
    migrate_ok(&src, &dst, uri);
    {
        g_autoptr(JsonNode) q = mig_query(src.vm);
        JsonObject *ram = json_object_get_object_member(qtest_obj(q), "ram");
        int64_t ms = qtest_get_int(q, "total-time");
        int64_t bytes = json_object_get_int_member(ram, "transferred");

        g_test_message("1 Gbit/s link: %" PRId64 " MiB in %" PRId64 " ms, "
                       "%" PRIu64 "%% of the link", bytes / (int64_t)MiB, ms,
                       ms ? bytes * 1000 / ms * 100 / netpair_rate(p) : 0);
    }
    host_stop(&src);
    host_stop(&dst);
}

typedef enum { CUT_SETUP, CUT_ACTIVE, CUT_DEVICE } CutAt;

static void cut_case(gconstpointer opaque)
{
    static const char *const pre[] = { "pre-switchover", NULL };
    CutAt at = GPOINTER_TO_INT(opaque);
    g_autoptr(NetPair) p = netpair_new("1gbit");
    Host src, dst;
    g_autofree char *uri = NULL, *desc = NULL;

    if (!p) {
        return;
    }
    host_start(&src, p, NET_A, false);
    host_start(&dst, p, NET_B, true);
    if (at == CUT_DEVICE) {
        mig_set_cap(src.vm, "return-path", true);
        mig_set_cap(dst.vm, "return-path", true);
        mig_set_cap(src.vm, "pause-before-switchover", true);
        mig_set_param(src.vm, "downtime-limit", 2000);
    } else {
        /* A first pass of seconds, so that the cut finds it under way. */
        mig_set_param(src.vm, "max-bandwidth", 4 * MiB);
        mig_set_param(src.vm, "downtime-limit", 1);
    }
    uri = host_listen(&dst, p, NET_B, true);
    mig_wait_guest_progress(src.vm, 8 * MiB);
    switch (at) {
    case CUT_SETUP:
        netpair_link(p, false);
        mig_migrate(src.vm, uri);
        break;
    case CUT_ACTIVE:
        mig_migrate(src.vm, uri);
        mig_wait_sync_count(src.vm, 1, WAIT_MS);
        netpair_link(p, false);
        break;
    case CUT_DEVICE: {
        mig_migrate(src.vm, uri);
        g_autofree char *st = mig_wait_status(src.vm, pre, WAIT_MS);
        netpair_link(p, false);
        qtest_qmp_assert_ok(src.vm, "{\"execute\": \"migrate-continue\", "
                            "\"arguments\": {\"state\": \"pre-switchover\"}}");
        break;
    }
    }
    desc = mig_wait_failed(src.vm, WAIT_MS);
    g_test_message("source: %s", desc);
    g_assert_true(strstr(desc, "timed out") ||
                  strstr(desc, "took no data for 2000 ms") ||
                  strstr(desc, "did not confirm the load within 2000 ms"));
    mig_assert_runstate(src.vm, "running");
    if (at != CUT_SETUP) {
        /* Keepalive: the destination notices the dead link too. */
        g_autofree char *dst_desc = mig_wait_failed(dst.vm, WAIT_MS);

        g_test_message("destination: %s", dst_desc);
    }
    netpair_link(p, true);
    mig_set_cap(src.vm, "pause-before-switchover", false);
    mig_set_param(src.vm, "downtime-limit", 300);
    if (at != CUT_SETUP) {
        host_stop(&dst);
        host_start(&dst, p, NET_B, true);
        mig_set_cap(dst.vm, "return-path", at == CUT_DEVICE);
        g_free(uri);
        uri = host_listen(&dst, p, NET_B, false);
    }
    mig_wait_guest_progress(src.vm, 8 * MiB);
    mig_assert_guest_ok(src.vm);
    migrate_ok(&src, &dst, uri);
    host_stop(&src);
    host_stop(&dst);
}

static void test_ping_pong(void)
{
    g_autoptr(NetPair) p = netpair_new(NULL);
    Host h[2];
    int from = NET_A;

    if (!p) {
        return;
    }
    host_start(&h[NET_A], p, NET_A, false);
    for (int i = 0; i < 20; i++) {
        int to = !from;
        g_autofree char *uri = NULL;

        host_start(&h[to], p, to, true);
        uri = host_listen(&h[to], p, to, false);
        mig_wait_guest_progress(h[from].vm, 4 * MiB);
        migrate_ok(&h[from], &h[to], uri);
        host_stop(&h[from]);
        from = to;
    }
    host_stop(&h[from]);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/net/converge-1gbit", test_converge_1gbit);
    g_test_add_data_func("/migration/net/cut/setup",
                         GINT_TO_POINTER(CUT_SETUP), cut_case);
    g_test_add_data_func("/migration/net/cut/active",
                         GINT_TO_POINTER(CUT_ACTIVE), cut_case);
    g_test_add_data_func("/migration/net/cut/device",
                         GINT_TO_POINTER(CUT_DEVICE), cut_case);
    g_test_add_func("/migration/net/ping-pong", test_ping_pong);
    return g_test_run();
}
