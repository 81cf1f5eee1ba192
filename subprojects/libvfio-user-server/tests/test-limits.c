/*
 * Per-client limits: DMA regions, mapped bytes and outstanding
 * server-to-client requests; clients that stall in the middle of a
 * message or stop reading replies (dropped after the message timeout,
 * the device going on with the next client); and clients that connect
 * while another is served (refused at once with EBUSY, or served next
 * when the first one leaves before they ask anything).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test-device.h"
#include "vus-client.h"

#define RW (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)

/* A short message timeout, so that the stall cases take little time. */
#define SHORT_TIMEOUT_MS 200

static void assert_log(TestDev *td, const char *needle)
{
    if (!td_wait_log(td, needle)) {
        g_error("the server never logged '%s'; it logged:\n%s", needle,
                td->log->str);
    }
}

/* The peer closed: EOF (after any replies still queued) or a reset. */
static void assert_closed(VusClient *c)
{
    for (;;) {
        VcMsg m;
        int ret = vc_recv(c, &m);

        if (ret == -ECONNRESET) {
            return;
        }
        g_assert_cmpint(ret, ==, 0);    /* not -ETIMEDOUT */
        vc_msg_free(&m);
    }
}

static void test_limits_api(void)
{
    VusClientLimits too_many = { .max_dma_maps = 65536 };
    VusClientLimits some = { .max_dma_maps = 7 };
    VusCtx *ctx = vus_ctx_new("limits", NULL);
    TestDev *td;
    VusClient *c;
    VcMsg reply;

    vus_ctx_set_log(ctx, NULL, VUS_LOG_ERROR);
    g_assert_cmpint(vus_ctx_set_client_limits(ctx, &too_many), ==, -EINVAL);
    vus_ctx_free(ctx);

    /* VERSION offers the limit, not the protocol's default. */
    td = td_new_limits(0, &some);
    c = vc_connect(td->path);
    g_assert_cmpint(vc_version(c, NULL, &reply), ==, 0);
    g_assert_nonnull(strstr((char *)reply.payload + 4,
                            "\"max_dma_maps\":7"));
    vc_msg_free(&reply);
    /* Too late once realized. */
    g_assert_cmpint(vus_ctx_set_client_limits(td->ctx, &some), ==, -EINVAL);
    vc_close(c);
    td_free(td);

    /* Zero fields keep the defaults. */
    td = td_new_limits(0, &(VusClientLimits) { 0 });
    c = vc_connect(td->path);
    g_assert_cmpint(vc_version(c, NULL, &reply), ==, 0);
    g_assert_nonnull(strstr((char *)reply.payload + 4,
                            "\"max_dma_maps\":1024"));
    vc_msg_free(&reply);
    vc_close(c);
    td_free(td);
}

static void test_dma_maps(void)
{
    VusClientLimits limits = { .max_dma_maps = 3 };
    TestDev *td = td_new_limits(0, &limits);
    VusClient *c = vc_open(td->path);

    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(vc_dma_map(c, 0x10000 * (i + 1), 4096, 0, RW, -1),
                        ==, 0);
    }
    g_assert_cmpint(vc_dma_map(c, 0x40000, 4096, 0, RW, -1), ==, -ENOSPC);
    assert_log(td, "the client already has 3 DMA regions, the limit");
    /* A region given back makes room for another. */
    g_assert_cmpint(vc_dma_unmap(c, 0x20000, 4096, 0), ==, 0);
    g_assert_cmpint(vc_dma_map(c, 0x40000, 4096, 0, RW, -1), ==, 0);
    g_assert_cmpint(vc_dma_map(c, 0x50000, 4096, 0, RW, -1), ==, -ENOSPC);
    /* A new client starts with none. */
    vc_close(c);
    td_wait_disconnected(td);
    c = vc_open(td->path);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(vc_dma_map(c, 0x10000 * (i + 1), 4096, 0, RW, -1),
                        ==, 0);
    }
    vc_close(c);
    td_free(td);
}

static void test_dma_bytes(void)
{
    VusClientLimits limits = { .max_dma_bytes = 64 * 1024 };
    TestDev *td = td_new_limits(0, &limits);
    VusClient *c = vc_open(td->path);

    g_assert_cmpint(vc_dma_map(c, 0x100000, 128 * 1024, 0, RW, -1), ==,
                    -ENOSPC);
    assert_log(td, "would pass the limit of 0x10000 bytes");
    g_assert_cmpint(vc_dma_map(c, 0x100000, 32 * 1024, 0, RW, -1), ==, 0);
    g_assert_cmpint(vc_dma_map(c, 0x200000, 32 * 1024, 0, RW, -1), ==, 0);
    g_assert_cmpint(vc_dma_map(c, 0x300000, 4096, 0, RW, -1), ==, -ENOSPC);
    g_assert_cmpint(vc_dma_unmap(c, 0x100000, 32 * 1024, 0), ==, 0);
    g_assert_cmpint(vc_dma_map(c, 0x300000, 4096, 0, RW, -1), ==, 0);
    vc_close(c);
    td_free(td);
}

typedef struct DmaJob {
    VusCtx *ctx;
    uint8_t buf[8];
    int ret;
} DmaJob;

static gpointer dma_read_thread(gpointer opaque)
{
    DmaJob *job = opaque;

    job->ret = vus_dma_read(job->ctx, 0x100000, job->buf, sizeof(job->buf));
    return NULL;
}

/* Device threads waiting for the client's DMA replies are bounded. */
static void test_dma_requests(void)
{
    VusClientLimits limits = { .max_dma_requests = 1 };
    TestDev *td = td_new_limits(0, &limits);
    VusClient *c = vc_open(td->path);
    uint8_t mem[4096], buf[8];
    DmaJob job = { .ctx = td->ctx };
    GThread *t;

    for (size_t i = 0; i < sizeof(mem); i++) {
        mem[i] = i * 7;
    }
    g_assert_cmpint(vc_dma_map(c, 0x100000, sizeof(mem), 0, RW, -1), ==, 0);
    t = g_thread_new("dma", dma_read_thread, &job);
    /* Its DMA_READ is on the wire: that one is outstanding... */
    {
        VcMsg m;

        g_assert_cmpint(vc_recv(c, &m), ==, 0);
        g_assert_cmpuint(m.hdr.cmd, ==, VFIO_USER_DMA_READ);
        /* ...so a second caller is refused at once. */
        g_assert_cmpint(vus_dma_read(td->ctx, 0x100000, buf, sizeof(buf)),
                        ==, -EBUSY);
        assert_log(td, "DMA_READ refused: the limit of 1 outstanding "
                   "requests to the client is reached");
        /* Answer the first. */
        struct vfio_user_dma_access acc;
        struct {
            struct vfio_user_header hdr;
            struct vfio_user_dma_access acc;
            uint8_t data[8];
        } reply;

        memcpy(&acc, m.payload, sizeof(acc));
        g_assert_cmpuint(acc.count, ==, 8);
        reply.hdr = (struct vfio_user_header) {
            .msg_id = m.hdr.msg_id, .cmd = m.hdr.cmd,
            .msg_size = sizeof(reply), .flags = VFIO_USER_F_TYPE_REPLY,
        };
        reply.acc = acc;
        memcpy(reply.data, mem, 8);
        g_assert_cmpint(vc_send_raw(c, &reply, sizeof(reply), NULL, 0), ==,
                        0);
        vc_msg_free(&m);
    }
    g_thread_join(t);
    g_assert_cmpint(job.ret, ==, 0);
    g_assert_cmpmem(job.buf, 8, mem, 8);
    /* With nothing outstanding, the next one goes through. */
    t = g_thread_new("dma", dma_read_thread, &job);
    g_assert_cmpint(vc_serve_dma(c->fd, mem, 0x100000, sizeof(mem)), ==,
                    VFIO_USER_DMA_READ);
    g_thread_join(t);
    g_assert_cmpint(job.ret, ==, 0);
    vc_close(c);
    td_free(td);
}

/* Another client while one is served, idle or stalled: EBUSY at once. */
static void test_second_client(void)
{
    /* A long timeout: the refusal must not wait for it. */
    VusClientLimits limits = { .msg_timeout_ms = 60000 };
    TestDev *td = td_new_limits(0, &limits);
    VusClient *a = vc_open(td->path), *b;
    struct vfio_user_header half = { .msg_id = 9, .cmd = 4, .msg_size = 32 };
    struct vfio_user_device_info info = { .argsz = sizeof(info) };

    /* A is idle. */
    b = vc_connect(td->path);
    g_assert_cmpint(vc_version(b, NULL, NULL), ==, -EBUSY);
    assert_closed(b);
    vc_close(b);
    assert_log(td, "refusing a new client: another client is being served "
               "(one client at a time); its VERSION gets EBUSY");
    /* A did not notice. */
    g_assert_cmpint(vc_call(a, VFIO_USER_DEVICE_GET_INFO, &info,
                            sizeof(info), NULL, 0, NULL), ==, 0);

    /* A stalls in the middle of a message: the same. */
    g_assert_cmpint(vc_send_raw(a, &half, sizeof(half), NULL, 0), ==, 0);
    b = vc_connect(td->path);
    g_assert_cmpint(vc_version(b, NULL, NULL), ==, -EBUSY);
    vc_close(b);
    /* A finishes its message and is answered. */
    {
        VcMsg m;

        g_assert_cmpuint(sizeof(info), ==, 16);
        g_assert_cmpint(vc_send_raw(a, &info, sizeof(info), NULL, 0), ==, 0);
        g_assert_cmpint(vc_recv(a, &m), ==, 0);
        g_assert_cmpuint(m.hdr.msg_id, ==, 9);
        g_assert_false(m.hdr.flags & VFIO_USER_F_ERROR);
        vc_msg_free(&m);
    }
    vc_close(a);
    td_wait_disconnected(td);
    /* Free again: the next client is served. */
    a = vc_open(td->path);
    vc_close(a);
    g_assert_cmpint(td_clients_seen(td), ==, 2);
    td_free(td);
}

/*
 * A client that connects while another is served, and asks nothing
 * before that one leaves, is served next.  One that asks nothing at all
 * is closed after the message timeout.
 */
static void test_waiting_client(void)
{
    VusClientLimits limits = { .msg_timeout_ms = SHORT_TIMEOUT_MS };
    TestDev *td = td_new_limits(0, &limits);
    VusClient *a = vc_open(td->path), *b;

    b = vc_connect(td->path);
    vc_close(a);
    g_assert_cmpint(vc_version(b, NULL, NULL), ==, 0);
    g_assert_cmpint(td_clients_seen(td), ==, 2);

    /* B is served; C connects and says nothing. */
    a = vc_connect(td->path);
    assert_closed(a);
    vc_close(a);
    assert_log(td, "closing a client that waited 200 ms to be served "
               "without sending a request");
    /* B is still served. */
    g_assert_cmpint(vc_dma_map(b, 0x100000, 4096, 0, RW, -1), ==, 0);
    vc_close(b);
    td_free(td);
}

/* A client that stalls mid-message is dropped; the next one is served. */
static void test_stalled_client(void)
{
    VusClientLimits limits = { .msg_timeout_ms = SHORT_TIMEOUT_MS };
    TestDev *td = td_new_limits(0, &limits);
    struct vfio_user_header h = { .msg_id = 5, .cmd = 4, .msg_size = 32 };
    struct vfio_user_device_info info = { .argsz = sizeof(info) };
    uint8_t part[20] = { 0 };
    VusClient *c;

    /* Stalled inside the header. */
    c = vc_open(td->path);
    g_assert_cmpint(vc_send_raw(c, &h, 8, NULL, 0), ==, 0);
    assert_closed(c);
    vc_close(c);
    assert_log(td, "dropping the client: it stopped after 8 of the 16 "
               "header bytes of a message and sent nothing more for 200 ms");

    /* Stalled inside the payload. */
    c = vc_open(td->path);
    memcpy(part, &h, sizeof(h));
    g_assert_cmpint(vc_send_raw(c, part, sizeof(part), NULL, 0), ==, 0);
    assert_closed(c);
    vc_close(c);
    assert_log(td, "dropping the client: message 5 (DEVICE_GET_INFO) "
               "stopped after 20 of 32 bytes, nothing more for 200 ms");

    /* Idle between messages for longer than the timeout: kept. */
    c = vc_open(td->path);
    g_usleep(3 * SHORT_TIMEOUT_MS * 1000);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, &info,
                            sizeof(info), NULL, 0, NULL), ==, 0);
    vc_close(c);
    td_wait_disconnected(td);
    g_assert_cmpint(td_clients_seen(td), ==, 3);
    td_free(td);
}

/* A client that stops reading replies is dropped, not waited for. */
static void test_not_reading(void)
{
    VusClientLimits limits = { .msg_timeout_ms = SHORT_TIMEOUT_MS };
    TestDev *td = td_new_limits(0, &limits);
    VusClient *c = vc_open(td->path);
    struct vfio_user_region_access a = { .offset = 0, .region = 2,
                                         .count = TD_BAR2_SIZE };

    /* Far more reply bytes than both socket buffers hold. */
    for (int i = 0; i < 400; i++) {
        vc_send(c, VFIO_USER_REGION_READ, 0, &a, sizeof(a), NULL, 0);
    }
    assert_log(td, "ms: it stopped reading");
    td_wait_disconnected(td);
    vc_close(c);
    c = vc_open(td->path);
    vc_close(c);
    td_free(td);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vus/limits/api", test_limits_api);
    g_test_add_func("/vus/limits/dma-maps", test_dma_maps);
    g_test_add_func("/vus/limits/dma-bytes", test_dma_bytes);
    g_test_add_func("/vus/limits/dma-requests", test_dma_requests);
    g_test_add_func("/vus/limits/second-client", test_second_client);
    g_test_add_func("/vus/limits/waiting-client", test_waiting_client);
    g_test_add_func("/vus/limits/stalled-client", test_stalled_client);
    g_test_add_func("/vus/limits/not-reading", test_not_reading);
    return g_test_run();
}
