/*
 * DMA_MAP / DMA_UNMAP with and without fds, the IOVA translation API,
 * DMA_READ / DMA_WRITE messages (main socket and twin socket), and DMA
 * logging bitmaps for writes made through the library's API, marked by
 * the device, and made behind the library's back (not logged).
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test-device.h"
#include "vus-client.h"

#define MEM_SIZE    (1024 * 1024)
#define IOVA_A      0x100000ull     /* 256 KiB, memfd offset 0 */
#define IOVA_B      0x140000ull     /* 256 KiB, memfd offset 256 KiB */
#define IOVA_C      0x200000ull     /* 64 KiB, no fd */
#define SIZE_AB     (256 * 1024)
#define SIZE_C      (64 * 1024)
#define RW (VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE)

typedef struct DmaEnv {
    TestDev *td;
    VusClient *c;
    int memfd;
    uint8_t *mem;           /* the client's view of the memfd */
    uint8_t shadow_c[SIZE_C];   /* the client's memory behind IOVA_C */
} DmaEnv;

static void env_init(DmaEnv *e, const char *json)
{
    memset(e, 0, sizeof(*e));
    e->td = td_new(0);
    e->c = vc_connect(e->td->path);
    g_assert_cmpint(vc_version(e->c, json, NULL), ==, 0);
    e->memfd = memfd_create("dma-test", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(e->memfd, MEM_SIZE), ==, 0);
    e->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  e->memfd, 0);
    g_assert_true(e->mem != MAP_FAILED);
    g_assert_cmpint(vc_dma_map(e->c, IOVA_A, SIZE_AB, 0, RW, e->memfd), ==, 0);
    g_assert_cmpint(vc_dma_map(e->c, IOVA_B, SIZE_AB, SIZE_AB, RW, e->memfd),
                    ==, 0);
    g_assert_cmpint(vc_dma_map(e->c, IOVA_C, SIZE_C, 0, RW, -1), ==, 0);
}

static void env_cleanup(DmaEnv *e)
{
    vc_close(e->c);
    td_wait_disconnected(e->td);
    /* Every mapping was dropped, with a callback, when the client left. */
    g_assert_cmpint(e->td->unmaps, ==, e->td->maps);
    td_free(e->td);
    munmap(e->mem, MEM_SIZE);
    close(e->memfd);
}

static void test_map_unmap(void)
{
    DmaEnv e;
    int efd = eventfd(0, EFD_CLOEXEC);
    uint8_t buf[64];
    void *p;

    env_init(&e, NULL);
    g_assert_cmpint(e.td->maps, ==, 3);

    /* Bad maps. */
    g_assert_cmpint(vc_dma_map(e.c, 0x400000, 0, 0, RW, e.memfd), ==, -EINVAL);
    g_assert_cmpint(vc_dma_map(e.c, 0x400100, 4096, 0, RW, e.memfd), ==,
                    -EINVAL);
    g_assert_cmpint(vc_dma_map(e.c, 0x400000, 4095, 0, RW, e.memfd), ==,
                    -EINVAL);
    g_assert_cmpint(vc_dma_map(e.c, 0xfffffffffffff000ull, 0x2000, 0, RW,
                               e.memfd), ==, -EINVAL);
    g_assert_cmpint(vc_dma_map(e.c, IOVA_A + 4096, 4096, 0, RW, e.memfd), ==,
                    -EEXIST);
    g_assert_cmpint(vc_dma_map(e.c, IOVA_A - 4096, 8192, 0, RW, -1), ==,
                    -EEXIST);
    g_assert_cmpint(vc_dma_map(e.c, 0x400000, 4096, 0, 0x4 | RW, e.memfd), ==,
                    -EINVAL);
    g_assert_cmpint(vc_dma_map(e.c, 0x400000, 4096, 0, 0, e.memfd), ==,
                    -EINVAL);
    g_assert_cmpint(vc_dma_map(e.c, 0x400000, 4096, 0, RW, efd), ==, -EINVAL);
    g_assert_cmpint(vc_dma_map(e.c, 0x400000, 8192, MEM_SIZE - 4096, RW,
                               e.memfd), ==, -EINVAL);
    g_assert_cmpint(vc_dma_map(e.c, 0x400000, 4096, 100, RW, e.memfd), ==,
                    -EINVAL);
    g_assert_cmpint(vc_dma_map(e.c, 0x400000, 4096, 4096, RW, -1), ==,
                    -EINVAL);
    {
        struct vfio_user_dma_map m = { .argsz = sizeof(m), .flags = RW,
                                       .addr = 0x400000, .size = 4096 };
        int two[2] = { e.memfd, e.memfd };
        g_assert_cmpint(vc_call(e.c, VFIO_USER_DMA_MAP, &m, sizeof(m) - 8,
                                NULL, 0, NULL), ==, -EINVAL);
        g_assert_cmpint(vc_call(e.c, VFIO_USER_DMA_MAP, &m, sizeof(m), two, 2,
                                NULL), ==, -EINVAL);
        m.argsz = 16;
        g_assert_cmpint(vc_call(e.c, VFIO_USER_DMA_MAP, &m, sizeof(m), NULL,
                                0, NULL), ==, -EINVAL);
    }
    /* Without an fd nothing bounds a mapping but the total limit. */
    g_assert_cmpint(vc_dma_map(e.c, 1ull << 44, 1ull << 40, 0, RW, -1), ==,
                    -ENOSPC);
    g_assert_cmpint(e.td->maps, ==, 3);

    /* Translation: inside, across two mappings, unmapped, no fd. */
    p = vus_dma_addr(e.td->ctx, IOVA_B + 100, 64, VUS_DMA_WRITE);
    g_assert_nonnull(p);
    memset(p, 0xab, 64);
    g_assert_cmpuint(e.mem[SIZE_AB + 100], ==, 0xab);
    g_assert_null(vus_dma_addr(e.td->ctx, IOVA_B - 32, 64, VUS_DMA_READ));
    g_assert_cmpint(errno, ==, EFAULT);
    g_assert_null(vus_dma_addr(e.td->ctx, 0x10000, 64, VUS_DMA_READ));
    g_assert_cmpint(errno, ==, ENOENT);
    g_assert_null(vus_dma_addr(e.td->ctx, IOVA_C, 64, VUS_DMA_READ));
    g_assert_cmpint(errno, ==, EFAULT);
    g_assert_null(vus_dma_addr(e.td->ctx, IOVA_A, 0, VUS_DMA_READ));
    g_assert_null(vus_dma_addr(e.td->ctx, 0xffffffffffffffc0ull, 0x80,
                               VUS_DMA_READ));

    /* Copies may span adjacent mappings. */
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = i + 1;
    }
    g_assert_cmpint(vus_dma_write(e.td->ctx, IOVA_B - 32, buf, 64), ==, 0);
    g_assert_cmpmem(e.mem + SIZE_AB - 32, 64, buf, 64);
    memset(buf, 0, sizeof(buf));
    g_assert_cmpint(vus_dma_read(e.td->ctx, IOVA_B - 32, buf, 64), ==, 0);
    g_assert_cmpmem(e.mem + SIZE_AB - 32, 64, buf, 64);
    g_assert_cmpint(vus_dma_read(e.td->ctx, IOVA_A - 1, buf, 2), ==, -ENOENT);

    /* A read-only mapping refuses writes. */
    g_assert_cmpint(vc_dma_map(e.c, 0x300000, 4096, 0,
                               VFIO_USER_F_DMA_REGION_READ, e.memfd), ==, 0);
    g_assert_null(vus_dma_addr(e.td->ctx, 0x300000, 8, VUS_DMA_WRITE));
    g_assert_cmpint(errno, ==, EACCES);
    g_assert_cmpint(vus_dma_write(e.td->ctx, 0x300000, buf, 8), ==, -EACCES);
    g_assert_cmpint(vus_dma_read(e.td->ctx, 0x300000, buf, 8), ==, 0);

    /* Bad unmaps: cutting a mapping, flags, sizes. */
    g_assert_cmpint(vc_dma_unmap(e.c, IOVA_A, 4096, 0), ==, -EINVAL);
    g_assert_cmpint(vc_dma_unmap(e.c, IOVA_A, SIZE_AB, 1), ==, -EINVAL);
    g_assert_cmpint(vc_dma_unmap(e.c, IOVA_A, SIZE_AB,
                                 VFIO_USER_F_DMA_UNMAP_ALL), ==, -EINVAL);
    g_assert_cmpint(vc_dma_unmap(e.c, IOVA_A, 0, 0), ==, -EINVAL);
    g_assert_cmpint(vc_call(e.c, VFIO_USER_DMA_UNMAP, buf, 16, NULL, 0, NULL),
                    ==, -EINVAL);
    g_assert_cmpint(e.td->unmaps, ==, 0);

    /* One exact unmap, then one covering two mappings. */
    g_assert_cmpint(vc_dma_unmap(e.c, 0x300000, 4096, 0), ==, 0);
    g_assert_cmpint(e.td->unmaps, ==, 1);
    g_assert_cmpint(vc_dma_unmap(e.c, IOVA_A, 2 * SIZE_AB, 0), ==, 0);
    g_assert_cmpint(e.td->unmaps, ==, 3);
    g_assert_null(vus_dma_addr(e.td->ctx, IOVA_A, 8, VUS_DMA_READ));
    /* Remapping the same range works again. */
    g_assert_cmpint(vc_dma_map(e.c, IOVA_A, SIZE_AB, 0, RW, e.memfd), ==, 0);
    g_assert_cmpint(vc_dma_unmap(e.c, 0, 0, VFIO_USER_F_DMA_UNMAP_ALL), ==, 0);
    g_assert_cmpint(e.td->unmaps, ==, 5);
    g_assert_cmpint(vc_dma_map(e.c, IOVA_A, SIZE_AB, 0, RW, e.memfd), ==, 0);
    close(efd);
    env_cleanup(&e);
}

typedef struct DmaJob {
    VusCtx *ctx;
    uint64_t iova;
    uint8_t *buf;
    size_t len;
    bool is_write;
    int result;
} DmaJob;

static gpointer dma_job_thread(gpointer opaque)
{
    DmaJob *job = opaque;

    job->result = job->is_write ?
        vus_dma_write(job->ctx, job->iova, job->buf, job->len) :
        vus_dma_read(job->ctx, job->iova, job->buf, job->len);
    return NULL;
}

/* A device thread does DMA to the fd-less region; we serve it on @fd. */
static void run_message_dma(DmaEnv *e, int fd, size_t len, bool is_write,
                            int expected_msgs)
{
    g_autofree uint8_t *buf = g_malloc(len);
    DmaJob job = { e->td->ctx, IOVA_C + 100, buf, len, is_write, 1 };
    GThread *t;
    int msgs = 0;

    for (size_t i = 0; i < len; i++) {
        buf[i] = is_write ? (uint8_t)(i * 7) : 0;
        e->shadow_c[100 + i] = is_write ? 0 : (uint8_t)(i * 5);
    }
    t = g_thread_new("dma-job", dma_job_thread, &job);
    for (;;) {
        int cmd = vc_serve_dma(fd, e->shadow_c, IOVA_C, SIZE_C);

        g_assert_cmpint(cmd, ==, is_write ? VFIO_USER_DMA_WRITE :
                        VFIO_USER_DMA_READ);
        if (++msgs == expected_msgs) {
            break;
        }
    }
    g_thread_join(t);
    g_assert_cmpint(job.result, ==, 0);
    for (size_t i = 0; i < len; i++) {
        g_assert_cmpuint(is_write ? e->shadow_c[100 + i] : buf[i], ==,
                         (uint8_t)(i * (is_write ? 7 : 5)));
    }
}

static void test_dma_messages(void)
{
    DmaEnv e;

    /* The main socket; pieces of at most max_data_xfer_size (4 KiB). */
    env_init(&e, "{\"capabilities\":{\"max_data_xfer_size\":4096}}");
    run_message_dma(&e, e.c->fd, 10000, true, 3);
    run_message_dma(&e, e.c->fd, 4096, false, 1);
    env_cleanup(&e);
}

/*
 * DMA from inside a device callback without a twin socket: the DMA_READ
 * comes on the main socket before the reply to our command, and a
 * command we send meanwhile is refused with EBUSY.
 */
static void test_dma_from_callback(void)
{
    struct vfio_user_region_access a = {
        .offset = TD_REG_DMA_IOVA, .region = 0, .count = 8,
    };
    uint64_t iova = IOVA_C + 512;
    uint8_t wr[sizeof(a) + 8];
    uint32_t info[4] = { 16, 0, 0, 0 };
    uint64_t magic = 0x0123456789abcdefull, got = 0;
    uint16_t wr_id, info_id;
    VcMsg m;
    DmaEnv e;

    env_init(&e, NULL);
    memcpy(e.shadow_c + 512, &magic, 8);
    memcpy(wr, &a, sizeof(a));
    memcpy(wr + sizeof(a), &iova, 8);
    wr_id = vc_send(e.c, VFIO_USER_REGION_WRITE, 0, wr, sizeof(wr), NULL, 0);
    /* The server's DMA_READ arrives first... */
    {
        struct vfio_user_dma_access acc;
        struct vfio_user_header h;
        g_autofree uint8_t *out = NULL;

        g_assert_cmpint(vc_recv(e.c, &m), ==, 0);
        g_assert_cmpuint(m.hdr.cmd, ==, VFIO_USER_DMA_READ);
        g_assert_cmpuint(m.hdr.flags & VFIO_USER_F_TYPE_MASK, ==,
                         VFIO_USER_F_TYPE_COMMAND);
        memcpy(&acc, m.payload, sizeof(acc));
        g_assert_cmpuint(acc.addr, ==, IOVA_C + 512);
        g_assert_cmpuint(acc.count, ==, 8);
        /* ...a command now is refused, the server being busy... */
        info_id = vc_send(e.c, VFIO_USER_DEVICE_GET_INFO, 0, info,
                          sizeof(info), NULL, 0);
        /* ...and then we answer. */
        h = (struct vfio_user_header) {
            .msg_id = m.hdr.msg_id, .cmd = m.hdr.cmd,
            .msg_size = sizeof(h) + sizeof(acc) + 8,
            .flags = VFIO_USER_F_TYPE_REPLY,
        };
        out = g_malloc(h.msg_size);
        memcpy(out, &h, sizeof(h));
        memcpy(out + sizeof(h), &acc, sizeof(acc));
        memcpy(out + sizeof(h) + sizeof(acc), e.shadow_c + 512, 8);
        g_assert_cmpint(vc_send_raw(e.c, out, h.msg_size, NULL, 0), ==, 0);
        vc_msg_free(&m);
    }
    g_assert_cmpint(vc_recv(e.c, &m), ==, 0);
    g_assert_cmpuint(m.hdr.msg_id, ==, info_id);
    g_assert_cmpuint(m.hdr.error_no, ==, EBUSY);
    vc_msg_free(&m);
    g_assert_cmpint(vc_recv(e.c, &m), ==, 0);
    g_assert_cmpuint(m.hdr.msg_id, ==, wr_id);
    g_assert_false(m.hdr.flags & VFIO_USER_F_ERROR);
    vc_msg_free(&m);
    g_assert_cmpint(vc_region_read(e.c, 0, TD_REG_DMA_VALUE, &got, 8), ==, 0);
    g_assert_cmpuint(got, ==, magic);
    env_cleanup(&e);
}

static void test_dma_twin_socket(void)
{
    const char *json = "{\"capabilities\":{\"twin_socket\":"
                       "{\"supported\":true}}}";
    struct timeval tv = { .tv_sec = VC_TIMEOUT_SEC };
    uint8_t buf[256];
    int sv[1];
    VcMsg r;
    DmaEnv e;

    memset(&e, 0, sizeof(e));
    e.td = td_new(0);
    e.c = vc_connect(e.td->path);
    /* The server makes the pair and hands us our end with the reply. */
    g_assert_cmpint(vc_version(e.c, json, &r), ==, 0);
    g_assert_cmpuint(r.nfds, ==, 1);
    sv[0] = r.fds[0];
    r.nfds = 0;
    vc_msg_free(&r);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    e.memfd = memfd_create("dma-test", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(e.memfd, MEM_SIZE), ==, 0);
    e.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, e.memfd,
                 0);
    g_assert_cmpint(vc_dma_map(e.c, IOVA_C, SIZE_C, 0, RW, -1), ==, 0);

    /* Server-to-client traffic goes over the twin socket only. */
    run_message_dma(&e, sv[0], 3000, true, 1);
    run_message_dma(&e, sv[0], SIZE_C - 100, false, 1);
    /* The main socket still works, and saw nothing unexpected. */
    {
        uint32_t info[4] = { 16, 0, 0, 0 };
        g_assert_cmpint(vc_call(e.c, VFIO_USER_DEVICE_GET_INFO, info,
                                sizeof(info), NULL, 0, NULL), ==, 0);
    }
    /* The client answering with an error is the device's error. */
    {
        DmaJob job = { e.td->ctx, IOVA_C, buf, 16, false, 1 };
        GThread *t = g_thread_new("dma-job", dma_job_thread, &job);
        VusClient twin = { .fd = sv[0] };
        VcMsg m;
        struct vfio_user_header h;

        g_assert_cmpint(vc_recv(&twin, &m), ==, 0);
        h = (struct vfio_user_header) {
            .msg_id = m.hdr.msg_id, .cmd = m.hdr.cmd,
            .msg_size = sizeof(h),
            .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
            .error_no = EFAULT,
        };
        vc_msg_free(&m);
        g_assert_cmpint(vc_send_raw(&twin, &h, sizeof(h), NULL, 0), ==, 0);
        g_thread_join(t);
        g_assert_cmpint(job.result, ==, -EFAULT);
    }
    close(sv[0]);
    env_cleanup(&e);
}

static int log_start(VusClient *c, uint64_t page_size, uint32_t nr,
                     const struct vfio_device_feature_dma_logging_range *r,
                     uint64_t *chosen)
{
    uint8_t buf[16 + 4 * 16];
    struct vfio_user_dma_logging_control ctl = {
        .page_size = page_size, .num_ranges = nr,
    };
    VcMsg m;
    int ret;

    g_assert_cmpuint(nr, <=, 4);
    memcpy(buf, &ctl, 16);
    if (nr) {
        memcpy(buf + 16, r, nr * 16);
    }
    ret = vc_feature(c, VFIO_DEVICE_FEATURE_SET |
                     VFIO_DEVICE_FEATURE_DMA_LOGGING_START, buf, 16 + nr * 16,
                     &m);
    if (ret == 0) {
        g_assert_cmpuint(m.len, ==, 8 + 16 + nr * 16);
        memcpy(&ctl, m.payload + 8, 16);
        if (chosen) {
            *chosen = ctl.page_size;
        }
        vc_msg_free(&m);
    }
    return ret;
}

static int log_stop(VusClient *c)
{
    return vc_feature(c, VFIO_DEVICE_FEATURE_SET |
                      VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0, NULL);
}

/* Fetches a report; returns the number of bits set, bitmap in @bits. */
static int log_report(VusClient *c, uint64_t iova, uint64_t length,
                      uint64_t page_size, uint64_t *bits, size_t nwords)
{
    struct vfio_user_dma_logging_report rep = {
        .iova = iova, .length = length, .page_size = page_size,
    };
    size_t words = (length / page_size + 63) / 64;
    VcMsg m;
    int ret, count = 0;
    uint32_t argsz;

    ret = vc_feature(c, VFIO_DEVICE_FEATURE_GET |
                     VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &rep,
                     sizeof(rep), &m);
    if (ret < 0) {
        return ret;
    }
    g_assert_cmpuint(m.len, ==, 8 + sizeof(rep) + words * 8);
    memcpy(&argsz, m.payload, 4);
    g_assert_cmpuint(argsz, ==, m.len);
    g_assert_cmpuint(words, <=, nwords);
    memcpy(bits, m.payload + 8 + sizeof(rep), words * 8);
    for (size_t i = 0; i < words; i++) {
        count += __builtin_popcountll(bits[i]);
    }
    vc_msg_free(&m);
    return count;
}

static bool bit(const uint64_t *bits, size_t n)
{
    return bits[n / 64] & (1ull << (n % 64));
}

static void test_logging(void)
{
    DmaEnv e;
    uint64_t bits[64], chosen = 0;
    uint8_t data[16] = { 1 };
    const uint64_t whole = IOVA_C + SIZE_C - IOVA_A;
    uint8_t *p;

    env_init(&e, NULL);
    /* Not started: reports are refused, device marks are no-ops. */
    g_assert_cmpint(log_report(e.c, IOVA_A, SIZE_AB, 4096, bits, 64), ==,
                    -EINVAL);
    g_assert_false(vus_dma_logging_active(e.td->ctx));
    g_assert_cmpint(vus_dma_mark_dirty(e.td->ctx, IOVA_A, 1), ==, 0);

    /* Probing; GET is not an operation of START. */
    g_assert_cmpint(vc_feature(e.c, VFIO_DEVICE_FEATURE_PROBE |
                               VFIO_DEVICE_FEATURE_SET |
                               VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0,
                               NULL), ==, 0);
    g_assert_cmpint(vc_feature(e.c, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0,
                               NULL), ==, -EINVAL);
    /* Bad starts. */
    g_assert_cmpint(log_start(e.c, 3000, 0, NULL, NULL), ==, -EINVAL);
    g_assert_cmpint(log_start(e.c, 0, 0, NULL, NULL), ==, -EINVAL);
    {
        struct vfio_device_feature_dma_logging_range r[2] = {
            { IOVA_A, 8192 }, { IOVA_A + 4096, 4096 },
        };
        g_assert_cmpint(log_start(e.c, 4096, 2, r, NULL), ==, -EINVAL);
        r[1].length = 0;
        g_assert_cmpint(log_start(e.c, 4096, 2, r, NULL), ==, -EINVAL);
        struct vfio_user_dma_logging_control ctl = { 4096, 3, 0 };
        g_assert_cmpint(vc_feature(e.c, VFIO_DEVICE_FEATURE_SET |
                                   VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
                                   &ctl, sizeof(ctl), NULL), ==, -EINVAL);
        g_assert_cmpint(vc_feature(e.c, VFIO_DEVICE_FEATURE_SET |
                                   VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
                                   &ctl, 8, NULL), ==, -EINVAL);
    }

    /* Zero ranges: all of mapped DMA; 512-byte pages become 4 KiB. */
    g_assert_cmpint(log_start(e.c, 512, 0, NULL, &chosen), ==, 0);
    g_assert_cmpuint(chosen, ==, 4096);
    g_assert_true(vus_dma_logging_active(e.td->ctx));
    g_assert_cmpint(log_start(e.c, 4096, 0, NULL, NULL), ==, -EBUSY);

    /* Library API write (page 3 of A), a write straddling A/B (pages 63
     * and 64), a device write through its own mapping that it marks
     * (page 70), one that it does not mark (page 80), and a write to
     * the fd-less region by message (C, page 1 of C). */
    g_assert_cmpint(vus_dma_write(e.td->ctx, IOVA_A + 3 * 4096 + 5, data, 4),
                    ==, 0);
    g_assert_cmpint(vus_dma_write(e.td->ctx, IOVA_B - 2, data, 4), ==, 0);
    p = vus_dma_addr(e.td->ctx, IOVA_A + 70 * 4096, 4096, VUS_DMA_WRITE);
    g_assert_nonnull(p);
    memset(p, 1, 4096);
    g_assert_cmpint(vus_dma_mark_dirty(e.td->ctx, IOVA_A + 70 * 4096, 4096),
                    ==, 0);
    p = vus_dma_addr(e.td->ctx, IOVA_A + 80 * 4096, 16, VUS_DMA_WRITE);
    memset(p, 1, 16);
    g_assert_cmpint(vus_dma_mark_dirty(e.td->ctx, 0x10000, 16), ==, -ENOENT);
    {
        DmaJob job = { e.td->ctx, IOVA_C + 4096 + 8, data, 8, true, 1 };
        GThread *t = g_thread_new("dma-job", dma_job_thread, &job);
        g_assert_cmpint(vc_serve_dma(e.c->fd, e.shadow_c, IOVA_C, SIZE_C), ==,
                        VFIO_USER_DMA_WRITE);
        g_thread_join(t);
        g_assert_cmpint(job.result, ==, 0);
    }

    /* Bad reports: outside mapped DMA (the hole between B and C),
     * unaligned, bad page size, a bitmap over max_data_xfer_size. */
    g_assert_cmpint(log_report(e.c, IOVA_A, whole, 4096, bits, 64), ==,
                    -EINVAL);
    g_assert_cmpint(log_report(e.c, IOVA_A + 1, 4096, 4096, bits, 64), ==,
                    -EINVAL);
    g_assert_cmpint(log_report(e.c, IOVA_A, 4096, 3, bits, 64), ==, -EINVAL);
    g_assert_cmpint(log_report(e.c, 0, 1ull << 40, 4096, bits, 64), ==,
                    -EINVAL);
    g_assert_cmpint(log_report(e.c, IOVA_A, 0, 4096, bits, 64), ==, -EINVAL);

    /* A range across A and B, in 4 KiB pages. */
    memset(bits, 0, sizeof(bits));
    g_assert_cmpint(log_report(e.c, IOVA_A, 2 * SIZE_AB, 4096, bits, 64), ==,
                    4);
    g_assert_true(bit(bits, 3));
    g_assert_true(bit(bits, 63));
    g_assert_true(bit(bits, 64));
    g_assert_true(bit(bits, 70));
    g_assert_false(bit(bits, 80));
    /* Reported bits are cleared. */
    g_assert_cmpint(log_report(e.c, IOVA_A, 2 * SIZE_AB, 4096, bits, 64), ==,
                    0);
    /* C, inside one region, any sub-range. */
    g_assert_cmpint(log_report(e.c, IOVA_C + 4096, 4096, 4096, bits, 64), ==,
                    1);

    /* Coarser and finer report pages. */
    g_assert_cmpint(vus_dma_write(e.td->ctx, IOVA_A + 5 * 4096, data, 1), ==,
                    0);
    g_assert_cmpint(log_report(e.c, IOVA_A, SIZE_AB, 16384, bits, 64), ==, 1);
    g_assert_true(bit(bits, 1));
    g_assert_cmpint(vus_dma_write(e.td->ctx, IOVA_A + 5 * 4096, data, 1), ==,
                    0);
    g_assert_cmpint(log_report(e.c, IOVA_A + 5 * 4096, 4096, 1024, bits, 64),
                    ==, 4);

    /* A mapping added while logging is on is logged too. */
    g_assert_cmpint(vc_dma_map(e.c, 0x300000, 8192, 2 * SIZE_AB, RW, e.memfd),
                    ==, 0);
    g_assert_cmpint(vus_dma_write(e.td->ctx, 0x301000, data, 1), ==, 0);
    g_assert_cmpint(log_report(e.c, 0x300000, 8192, 4096, bits, 64), ==, 1);
    g_assert_true(bit(bits, 1));

    /* STOP takes no data; after it, reports are refused again. */
    g_assert_cmpint(vc_feature(e.c, VFIO_DEVICE_FEATURE_SET |
                               VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, data, 8,
                               NULL), ==, -EINVAL);
    g_assert_cmpint(log_stop(e.c), ==, 0);
    g_assert_false(vus_dma_logging_active(e.td->ctx));
    g_assert_cmpint(log_report(e.c, IOVA_A, 4096, 4096, bits, 64), ==,
                    -EINVAL);

    /* With ranges: only writes inside them are logged. */
    {
        struct vfio_device_feature_dma_logging_range r[2] = {
            { IOVA_B + 8192, 8192 }, { IOVA_A, 4096 },
        };
        g_assert_cmpint(log_start(e.c, 4096, 2, r, NULL), ==, 0);
    }
    g_assert_cmpint(vus_dma_write(e.td->ctx, IOVA_A, data, 1), ==, 0);
    g_assert_cmpint(vus_dma_write(e.td->ctx, IOVA_A + 4096, data, 1), ==, 0);
    g_assert_cmpint(vus_dma_write(e.td->ctx, IOVA_B + 8192 + 4096, data, 1),
                    ==, 0);
    g_assert_cmpint(log_report(e.c, IOVA_A, 2 * SIZE_AB, 4096, bits, 64), ==,
                    2);
    g_assert_true(bit(bits, 0));
    g_assert_true(bit(bits, 64 + 3));
    /* A log page of 64 KiB reported in 512-byte pages: every bit of
     * the log page is repeated, across whole bitmap words. */
    g_assert_cmpint(log_stop(e.c), ==, 0);
    g_assert_cmpint(log_start(e.c, 65536, 0, NULL, &chosen), ==, 0);
    g_assert_cmpuint(chosen, ==, 65536);
    g_assert_cmpint(vus_dma_write(e.td->ctx, IOVA_A + 65536 + 7, data, 1), ==,
                    0);
    g_assert_cmpint(log_report(e.c, IOVA_A + 65536 + 4096, 8192, 1024, bits,
                               64), ==, 8);
    g_assert_cmpint(log_report(e.c, IOVA_A, 2 * 65536, 512, bits, 64), ==,
                    128);
    g_assert_cmpuint(bits[0], ==, 0);
    g_assert_cmpuint(bits[1], ==, 0);
    g_assert_cmpuint(bits[2], ==, ~0ull);
    g_assert_cmpuint(bits[3], ==, ~0ull);
    /* That report covered the whole log page: it is clean now. */
    g_assert_cmpint(log_report(e.c, IOVA_A, 2 * 65536, 512, bits, 64), ==, 0);
    /* A reset stops logging. */
    g_assert_cmpint(vc_call(e.c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0,
                            NULL), ==, 0);
    g_assert_false(vus_dma_logging_active(e.td->ctx));
    env_cleanup(&e);
}

typedef struct Hammer {
    VusCtx *ctx;
    gint stop;
    int writes, refused;
} Hammer;

/* A device thread writing through the library while the client changes
 * the mappings and the log under it. */
static gpointer hammer_thread(gpointer opaque)
{
    Hammer *h = opaque;
    uint8_t data[256];

    memset(data, 0x3c, sizeof(data));
    while (!g_atomic_int_get(&h->stop)) {
        for (uint64_t off = 0; off < 2 * SIZE_AB; off += 20000) {
            int ret = vus_dma_write(h->ctx, IOVA_A + off, data, sizeof(data));

            if (ret == 0) {
                g_atomic_int_inc(&h->writes);
                vus_dma_mark_dirty(h->ctx, IOVA_A + off, sizeof(data));
            } else {
                g_assert_cmpint(ret, ==, -ENOENT);
                h->refused++;
            }
        }
    }
    return NULL;
}

static void test_concurrent(void)
{
    DmaEnv e;
    Hammer h = { 0 };
    uint64_t bits[64];
    GThread *t;

    env_init(&e, NULL);
    h.ctx = e.td->ctx;
    t = g_thread_new("hammer", hammer_thread, &h);
    /* At least 100 rounds, and as many more as it takes for the device
     * thread to get some writes in between them: on a loaded machine
     * it may not have been scheduled at all during the first 100. */
    for (int i = 0; i < 100 || g_atomic_int_get(&h.writes) < 100; i++) {
        g_assert_cmpint(log_start(e.c, 4096, 0, NULL, NULL), ==, 0);
        g_assert_cmpint(log_report(e.c, IOVA_A, SIZE_AB, 4096, bits, 64),
                        >=, 0);
        g_assert_cmpint(vc_dma_unmap(e.c, IOVA_B, SIZE_AB, 0), ==, 0);
        g_assert_cmpint(vc_dma_map(e.c, IOVA_B, SIZE_AB, SIZE_AB, RW,
                                   e.memfd), ==, 0);
        g_assert_cmpint(log_stop(e.c), ==, 0);
    }
    g_atomic_int_set(&h.stop, 1);
    g_thread_join(t);
    g_test_message("%d writes, %d refused while unmapped", h.writes,
                   h.refused);
    g_assert_cmpint(h.writes, >, 0);
    env_cleanup(&e);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vus/dma/map-unmap", test_map_unmap);
    g_test_add_func("/vus/dma/messages", test_dma_messages);
    g_test_add_func("/vus/dma/from-callback", test_dma_from_callback);
    g_test_add_func("/vus/dma/twin-socket", test_dma_twin_socket);
    g_test_add_func("/vus/dma/logging", test_logging);
    g_test_add_func("/vus/dma/concurrent", test_concurrent);
    return g_test_run();
}
