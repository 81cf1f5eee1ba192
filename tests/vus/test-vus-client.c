/*
 * vfio-user client transport against real vfio-user-dma servers and a
 * misbehaving fake server: negotiation, region access, concurrency,
 * interrupts, DMA (with and without fds), DMA logging, and servers that
 * die, hang or send garbage.
 */
#include "vus-helpers.h"

#include <json-glib/json-glib.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#define MEM "4M"
#define MEM_SIZE (4 * MiB)
#define SEED 11

static uint64_t model_word(uint64_t seed, uint64_t offset)
{
    uint64_t page = offset / VDMA_PAGE_SIZE;
    uint64_t i = (offset % VDMA_PAGE_SIZE) / 8;

    return vdma_page_base(seed, page, 0) ^ (i * VDMA_WORD_STRIDE);
}

static void test_version(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    const VFIOUserPeerCaps *c = vfio_user_peer_caps(p);
    VFIOUserConnectOptions plain = { .timeout_ms = 10000,
                                     .no_extensions = true };

    g_assert_cmpuint(c->major, ==, 0);
    g_assert_cmpuint(c->minor, ==, VFIO_USER_MINOR);
    g_assert_true(c->migration);
    g_assert_true(c->precopy_info);
    g_assert_true(c->mig_data_size);
    g_assert_cmpuint(c->max_data_xfer_size, >=, 4096);
    g_assert_cmpuint(c->max_msg_fds, >=, 1);
    vfio_user_disconnect(p);

    /* Without our offer, the extensions are not used even if offered. */
    p = vus_connect(s, &plain);
    g_assert_false(vfio_user_peer_caps(p)->precopy_info);
    g_assert_false(vfio_user_peer_caps(p)->mig_data_size);
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

/* The capabilities parser on its own: defaults, limits, type checks. */
static void test_caps_parse(void)
{
    static const struct {
        const char *json;
        const char *error;
    } bad[] = {
        { "{\"capabilities\":{\"max_msg_fds\":\"8\"}}",
          "'max_msg_fds' is not an integer" },
        { "{\"capabilities\":{\"max_msg_fds\":-1}}", "out of range" },
        { "{\"capabilities\":{\"write_multiple\":1}}",
          "'write_multiple' is not a boolean" },
        { "{\"capabilities\":{\"migration\":{\"pgsize\":3000}}}",
          "not a power of two" },
        { "{\"capabilities\":{\"migration\":true}}",
          "'migration' is not an object" },
        { "[1]", "not a JSON object" },
    };
    VFIOUserPeerCaps caps = { 0 };
    Error *err = NULL;

    /* Nothing at all: the protocol's defaults. */
    g_assert_true(vfio_user_caps_parse(NULL, true, &caps, &error_abort));
    g_assert_cmpuint(caps.max_msg_fds, ==, VFIO_USER_DEF_MAX_FDS);
    g_assert_cmpuint(caps.max_data_xfer_size, ==, VFIO_USER_DEF_MAX_XFER);
    g_assert_false(caps.migration);
    g_assert_false(caps.precopy_info);

    /* Unknown keys are ignored; big limits are clamped to ours. */
    g_assert_true(vfio_user_caps_parse(
        "{\"capabilities\":{\"max_msg_fds\":1000,\"future\":{\"x\":[1]},"
        "\"max_data_xfer_size\":1073741824,\"twin_socket\":"
        "{\"supported\":true,\"fd_index\":0},\"migration\":{\"pgsize\":"
        "4096,\"x-precopy-info\":true,\"x-mig-data-size\":false}},"
        "\"other\":1}", true, &caps, &error_abort));
    g_assert_cmpuint(caps.max_msg_fds, ==, VFIO_USER_MAX_MAX_FDS);
    g_assert_cmpuint(caps.max_data_xfer_size, ==, VFIO_USER_MAX_MAX_XFER);
    g_assert_true(caps.migration);
    g_assert_true(caps.precopy_info);
    g_assert_false(caps.mig_data_size);

    /*
     * An extension the client did not offer is not used, and what it
     * never proposed is not even looked at: a twin socket (the client
     * sets none up), the extensions' values, keys of any form.
     */
    g_assert_true(vfio_user_caps_parse(
        "{\"capabilities\":{\"migration\":{\"x-precopy-info\":true,"
        "\"x-mig-data-size\":\"yes\",\"max_bitmap_size\":[]},"
        "\"twin_socket\":5}}", false, &caps, &error_abort));
    g_assert_false(caps.precopy_info);
    g_assert_false(caps.mig_data_size);
    g_assert_true(vfio_user_caps_parse(
        "{\"capabilities\":{\"twin_socket\":{\"supported\":\"no\"}}}",
        true, &caps, &error_abort));

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        g_assert_false(vfio_user_caps_parse(bad[i].json, true, &caps, &err));
        if (!strstr(error_get_pretty(err), bad[i].error)) {
            g_error("'%s': expected '%s', got: %s", bad[i].json, bad[i].error,
                    error_get_pretty(err));
        }
        error_free(err);
        err = NULL;
    }
    g_free(caps.json);
}

static void test_info(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    struct vfio_user_device_info dev;
    g_autofree struct vfio_region_info *bar2 = NULL;
    g_autofree struct vfio_region_sparse_mmap_area *areas = NULL;
    struct vfio_irq_info irq;
    Error *err = NULL;
    uint64_t flags;
    int fd;

    g_assert_true(vfio_user_get_device_info(p, &dev, &error_abort));
    g_assert_true(dev.flags & VFIO_DEVICE_FLAGS_PCI);
    g_assert_cmpuint(dev.num_regions, >=, VFIO_PCI_CONFIG_REGION_INDEX + 1);
    bar2 = vfio_user_get_region_info(p, VDMA_MEM_BAR, &fd, &error_abort);
    g_assert_cmpuint(bar2->size, ==, MEM_SIZE);
    g_assert_true(bar2->flags & VFIO_REGION_INFO_FLAG_MMAP);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(vfio_region_sparse_areas(bar2, &areas, NULL, &error_abort),
                    >=, 0);
    {
        /* The mapping shows the device memory the model says. */
        uint64_t *map = mmap(NULL, MEM_SIZE, PROT_READ, MAP_SHARED, fd,
                             bar2->offset);

        g_assert_true(map != MAP_FAILED);
        g_assert_cmphex(map[1000], ==, model_word(1, 8000));
        munmap(map, MEM_SIZE);
    }
    close(fd);
    g_assert_true(vfio_user_get_irq_info(p, VFIO_PCI_MSIX_IRQ_INDEX, &irq,
                                         &error_abort));
    g_assert_cmpuint(irq.count, ==, VDMA_MSIX_VECTORS);
    g_assert_true(vfio_user_mig_get_flags(p, &flags, &error_abort));
    g_assert_cmphex(flags, ==, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
                    VFIO_MIGRATION_PRE_COPY);

    /* A region that does not exist is refused, and the connection lives. */
    g_assert_null(vfio_user_get_region_info(p, 40, &fd, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "DEVICE_GET_REGION_INFO"));
    error_free(err);
    err = NULL;
    g_assert_cmphex(vus_reg_read(p, VDMA_REG_ID) & 0xffffffff, ==,
                    VDMA_ID_VALUE);
    /* Registers take aligned 4- or 8-byte accesses only. */
    {
        uint16_t half;

        g_assert_false(vfio_user_region_read(p, VDMA_REGS_BAR, VDMA_REG_SRC,
                                             &half, 2, &err));
        g_assert_nonnull(strstr(error_get_pretty(err), "region 0"));
        error_free(err);
        err = NULL;
        g_assert_false(vfio_user_region_read(p, VDMA_REGS_BAR,
                                             VDMA_REG_SRC + 4, &flags, 8,
                                             &err));
        error_free(err);
    }
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

static void test_region_rw(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, "--seed", "11", NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    size_t len = 3 * MiB + 100;    /* several messages, an odd tail */
    g_autofree uint8_t *out = g_malloc(len);
    g_autofree uint8_t *in = g_malloc(len);
    uint64_t word;
    Error *err = NULL;

    vfio_user_region_read(p, VDMA_MEM_BAR, 4096, &word, 8, &error_abort);
    g_assert_cmphex(word, ==, model_word(SEED, 4096));
    for (size_t i = 0; i < len; i++) {
        out[i] = i * 7 + (i >> 12);
    }
    g_assert_true(vfio_user_region_write(p, VDMA_MEM_BAR, 8, out, len,
                                         &error_abort));
    g_assert_true(vfio_user_region_read(p, VDMA_MEM_BAR, 8, in, len,
                                        &error_abort));
    g_assert_cmpmem(in, len, out, len);
    /* Written pages leave the content model. */
    g_assert_cmpuint(vus_reg_read(p, VDMA_REG_FOREIGN), ==,
                     DIV_ROUND_UP(len + 8, VDMA_PAGE_SIZE));
    g_assert_cmpuint(vus_reg_read(p, VDMA_REG_CHECK), ==, 0);

    /* Out of range: refused with an error naming the region. */
    g_assert_false(vfio_user_region_read(p, VDMA_MEM_BAR, MEM_SIZE - 4, in, 8,
                                         &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "region 2"));
    error_free(err);
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

static void test_write_multi(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    VFIOUserWrite w[300];
    VFIOUserWrite bad = { .region = VDMA_MEM_BAR, .count = 9 };
    Error *err = NULL;

    g_assert_true(vfio_user_peer_caps(p)->write_multiple);
    for (size_t i = 0; i < ARRAY_SIZE(w); i++) {
        uint64_t v = 0x1000 + i;

        w[i] = (VFIOUserWrite) {
            .region = VDMA_MEM_BAR, .count = 8, .offset = i * 64,
        };
        memcpy(w[i].data, &v, 8);
    }
    g_assert_true(vfio_user_region_write_multi(p, w, ARRAY_SIZE(w),
                                               &error_abort));
    for (size_t i = 0; i < ARRAY_SIZE(w); i += 37) {
        uint64_t v;

        vfio_user_region_read(p, VDMA_MEM_BAR, i * 64, &v, 8, &error_abort);
        g_assert_cmphex(v, ==, 0x1000 + i);
    }
    g_assert_false(vfio_user_region_write_multi(p, &bad, 1, &err));
    error_free(err);
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

/* ---- Concurrency ---- */

typedef struct ReaderArgs {
    VFIOUserProxy *proxy;
    unsigned index;
    unsigned iterations;
    unsigned errors;
    char *first_error;
} ReaderArgs;

static gpointer reader_thread(gpointer opaque)
{
    ReaderArgs *a = opaque;

    for (unsigned i = 0; i < a->iterations; i++) {
        uint64_t off = ((a->index * 7919 + i * 104729) % (MEM_SIZE / 8)) * 8;
        uint64_t v;
        Error *err = NULL;

        if (!vfio_user_region_read(a->proxy, VDMA_MEM_BAR, off, &v, 8, &err)) {
            if (!a->first_error) {
                a->first_error = g_strdup(error_get_pretty(err));
            }
            error_free(err);
            a->errors++;
            if (!vfio_user_proxy_alive(a->proxy)) {
                break;
            }
            continue;
        }
        /* A reply matched to the wrong request would show here. */
        g_assert_cmphex(v, ==, model_word(SEED, off));
    }
    return NULL;
}

static void test_concurrent(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, "--seed", "11", NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    ReaderArgs args[8];
    GThread *threads[8];

    for (unsigned i = 0; i < 8; i++) {
        args[i] = (ReaderArgs) { .proxy = p, .index = i, .iterations = 300 };
        threads[i] = g_thread_new("reader", reader_thread, &args[i]);
    }
    for (unsigned i = 0; i < 8; i++) {
        g_thread_join(threads[i]);
        g_assert_cmpuint(args[i].errors, ==, 0);
    }
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

/* ---- DMA, interrupts, logging ---- */

typedef struct GuestRam {
    int fd;
    uint8_t *ptr;
    uint64_t iova;
    uint64_t size;
} GuestRam;

static void ram_map(VFIOUserProxy *p, GuestRam *ram, uint64_t iova,
                    uint64_t size)
{
    ram->fd = memfd_create("test-ram", MFD_CLOEXEC);
    g_assert_cmpint(ram->fd, >=, 0);
    g_assert_cmpint(ftruncate(ram->fd, size), ==, 0);
    ram->ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ram->fd, 0);
    g_assert_true(ram->ptr != MAP_FAILED);
    ram->iova = iova;
    ram->size = size;
    g_assert_true(vfio_user_dma_map(p, iova, size, ram->fd, 0,
                                    VFIO_USER_F_DMA_REGION_READ |
                                    VFIO_USER_F_DMA_REGION_WRITE,
                                    &error_abort));
}

static void ram_free(GuestRam *ram)
{
    munmap(ram->ptr, ram->size);
    close(ram->fd);
}

/* Program a transfer, ring, and wait (bounded) for DONE or ERROR. */
static uint32_t run_dma(VFIOUserProxy *p, uint64_t src, uint64_t dst,
                        uint64_t len, uint32_t ctrl)
{
    uint32_t status = 0;

    vus_reg_write(p, VDMA_REG_SRC, src);
    vus_reg_write(p, VDMA_REG_DST, dst);
    vus_reg_write(p, VDMA_REG_LEN, len);
    vus_reg_write(p, VDMA_REG_CTRL, ctrl);
    vus_reg_write(p, VDMA_REG_DOORBELL, VDMA_DOORBELL_GO);
    for (int i = 0; i < 5000; i++) {
        status = vus_reg_read(p, VDMA_REG_STATUS);
        if (status & (VDMA_STATUS_DONE | VDMA_STATUS_ERROR)) {
            break;
        }
        g_usleep(1000);
    }
    g_assert_true(status & (VDMA_STATUS_DONE | VDMA_STATUS_ERROR));
    return status;
}

static bool eventfd_fired(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    uint64_t v;

    if (poll(&pfd, 1, 5000) != 1) {
        return false;
    }
    return read(fd, &v, 8) == 8 && v > 0;
}

static void test_irq(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    GuestRam ram;
    int msix = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int intx = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint32_t status;

    ram_map(p, &ram, 0x100000, 1 * MiB);
    g_assert_true(vfio_user_set_irqs(p, VFIO_PCI_MSIX_IRQ_INDEX,
                                     VFIO_IRQ_SET_DATA_EVENTFD |
                                     VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, &msix,
                                     NULL, &error_abort));
    g_assert_true(vfio_user_set_irqs(p, VFIO_PCI_INTX_IRQ_INDEX,
                                     VFIO_IRQ_SET_DATA_EVENTFD |
                                     VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, &intx,
                                     NULL, &error_abort));
    status = run_dma(p, 0, ram.iova, 8192,
                     VDMA_CTRL_DIR_TO_RAM | VDMA_CTRL_IRQ_ENABLE);
    g_assert_true(status & VDMA_STATUS_DONE);
    g_assert_true(status & VDMA_STATUS_IRQ);
    g_assert_true(eventfd_fired(msix));
    g_assert_cmphex(((uint64_t *)ram.ptr)[5], ==, model_word(1, 40));

    /* MSI-X off: the completion falls back to INTx. */
    g_assert_true(vfio_user_set_irqs(p, VFIO_PCI_MSIX_IRQ_INDEX,
                                     VFIO_IRQ_SET_DATA_NONE |
                                     VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL,
                                     NULL, &error_abort));
    vus_reg_write(p, VDMA_REG_STATUS, VDMA_STATUS_DONE | VDMA_STATUS_IRQ);
    status = run_dma(p, 4096, ram.iova, 4096,
                     VDMA_CTRL_DIR_TO_RAM | VDMA_CTRL_IRQ_ENABLE);
    g_assert_true(status & VDMA_STATUS_DONE);
    g_assert_true(eventfd_fired(intx));

    /* A transfer outside device memory fails with EINVAL in ERROR. */
    status = run_dma(p, MEM_SIZE - 4096, ram.iova, 8192, VDMA_CTRL_DIR_TO_RAM);
    g_assert_true(status & VDMA_STATUS_ERROR);
    g_assert_cmpuint(vus_reg_read(p, VDMA_REG_STATUS) >> 32, ==, EINVAL);

    close(msix);
    close(intx);
    vfio_user_disconnect(p);
    ram_free(&ram);
    vus_server_stop(s);
}

static void test_dma_logging(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    GuestRam ram;
    uint64_t page_size = 4096;
    uint64_t bitmap[4];     /* 256 pages = 1 MiB */
    uint64_t half[2];
    Error *err = NULL;

    ram_map(p, &ram, 0x200000, 1 * MiB);
    /* Reporting before starting is refused. */
    g_assert_false(vfio_user_dma_logging_report(p, ram.iova, ram.size, 4096,
                                                bitmap, &err));
    error_free(err);
    err = NULL;
    g_assert_true(vfio_user_dma_logging_start(p, &page_size, NULL, 0,
                                              &error_abort));
    g_assert_cmpuint(page_size, ==, 4096);

    /* Through the library's copy: pages 3 and 4. */
    g_assert_true(run_dma(p, 0, ram.iova + 0x3000, 0x2000,
                          VDMA_CTRL_DIR_TO_RAM) & VDMA_STATUS_DONE);
    /* Through the device's own mapping: page 16 (one byte into 17). */
    g_assert_true(run_dma(p, 0x10000, ram.iova + 0x10000, 0x1001,
                          VDMA_CTRL_DIR_TO_RAM | VDMA_CTRL_DIRECT) &
                  VDMA_STATUS_DONE);
    /* Reads of guest RAM are not logged: page 40 read into the device. */
    g_assert_true(run_dma(p, ram.iova + 0x28000, 0x20000, 0x1000, 0) &
                  VDMA_STATUS_DONE);
    g_assert_cmphex(((uint64_t *)(ram.ptr + 0x10000))[0], ==,
                    model_word(1, 0x10000));

    g_assert_true(vfio_user_dma_logging_report(p, ram.iova, ram.size, 4096,
                                               bitmap, &error_abort));
    g_assert_cmphex(bitmap[0], ==, (1ull << 3) | (1ull << 4) | (1ull << 16) |
                    (1ull << 17));
    g_assert_cmphex(bitmap[1] | bitmap[2] | bitmap[3], ==, 0);

    /* Reporting cleared the log; a sub-range report sees new writes. */
    g_assert_true(run_dma(p, 0, ram.iova + 0x41000, 0x1000,
                          VDMA_CTRL_DIR_TO_RAM) & VDMA_STATUS_DONE);
    g_assert_true(vfio_user_dma_logging_report(p, ram.iova + 0x40000, 0x80000,
                                               4096, half, &error_abort));
    g_assert_cmphex(half[0], ==, 1ull << 1);
    g_assert_cmphex(half[1], ==, 0);
    g_assert_true(vfio_user_dma_logging_report(p, ram.iova, ram.size, 4096,
                                               bitmap, &error_abort));
    g_assert_cmphex(bitmap[0] | bitmap[1] | bitmap[2] | bitmap[3], ==, 0);

    /* A range outside mapped DMA is refused, with the range named. */
    g_assert_false(vfio_user_dma_logging_report(p, 0x40000000, 0x10000, 4096,
                                                bitmap, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "0x40000000"));
    error_free(err);
    g_assert_true(vfio_user_dma_logging_stop(p, &error_abort));
    g_assert_true(vfio_user_dma_unmap(p, ram.iova, ram.size, &error_abort));
    vfio_user_disconnect(p);
    ram_free(&ram);
    vus_server_stop(s);
}

/* Guest RAM without an fd: the server reaches it with DMA_READ/WRITE. */
typedef struct SoftRam {
    uint8_t buf[64 * KiB];
    uint64_t iova;
    unsigned reads, writes;
} SoftRam;

static int soft_dma_read(void *opaque, uint64_t iova, void *buf, uint64_t len)
{
    SoftRam *r = opaque;

    if (iova < r->iova || iova - r->iova > sizeof(r->buf) ||
        len > sizeof(r->buf) - (iova - r->iova)) {
        return EFAULT;
    }
    memcpy(buf, r->buf + (iova - r->iova), len);
    __atomic_fetch_add(&r->reads, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static int soft_dma_write(void *opaque, uint64_t iova, const void *buf,
                          uint64_t len)
{
    SoftRam *r = opaque;

    if (iova < r->iova || iova - r->iova > sizeof(r->buf) ||
        len > sizeof(r->buf) - (iova - r->iova)) {
        return EFAULT;
    }
    memcpy(r->buf + (iova - r->iova), buf, len);
    __atomic_fetch_add(&r->writes, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void test_dma_no_fd(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, NULL);
    g_autofree SoftRam *ram = g_new0(SoftRam, 1);
    VFIOUserConnectOptions opts = {
        .timeout_ms = 10000,
        .dma_read = soft_dma_read,
        .dma_write = soft_dma_write,
        .dma_opaque = ram,
    };
    VFIOUserProxy *p = vus_connect(s, &opts);
    uint64_t v;

    ram->iova = 0x800000;
    g_assert_true(vfio_user_dma_map(p, ram->iova, sizeof(ram->buf), -1, 0,
                                    VFIO_USER_F_DMA_REGION_READ |
                                    VFIO_USER_F_DMA_REGION_WRITE,
                                    &error_abort));
    g_assert_true(run_dma(p, 0x3000, ram->iova + 0x100, 0x2000,
                          VDMA_CTRL_DIR_TO_RAM) & VDMA_STATUS_DONE);
    g_assert_cmpuint(ram->writes, >=, 1);
    memcpy(&v, ram->buf + 0x100 + 8, 8);
    g_assert_cmphex(v, ==, model_word(1, 0x3008));

    memset(ram->buf, 0xa5, 4096);
    g_assert_true(run_dma(p, ram->iova, 0x40000, 4096, 0) & VDMA_STATUS_DONE);
    g_assert_cmpuint(ram->reads, >=, 1);
    vfio_user_region_read(p, VDMA_MEM_BAR, 0x40000 + 64, &v, 8, &error_abort);
    g_assert_cmphex(v, ==, 0xa5a5a5a5a5a5a5a5ull);

    /* Outside what our handler backs: the device sees the error. */
    g_assert_true(vfio_user_dma_map(p, 0x900000, 4096, -1, 0,
                                    VFIO_USER_F_DMA_REGION_WRITE,
                                    &error_abort));
    g_assert_true(run_dma(p, 0, 0x900000, 4096, VDMA_CTRL_DIR_TO_RAM) &
                  VDMA_STATUS_ERROR);
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

/* ---- Servers that die, hang, or lie ---- */

typedef struct CloseNote {
    unsigned calls;
    char *reason;
} CloseNote;

static void note_closed(void *opaque, const char *reason)
{
    CloseNote *n = opaque;

    n->calls++;
    g_free(n->reason);
    n->reason = g_strdup(reason);
}

static void test_server_killed(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, "--seed", "11", NULL);
    CloseNote note = { 0 }, quiet = { 0 };
    VFIOUserConnectOptions opts = {
        .timeout_ms = 10000,
        .closed = note_closed,
        .closed_opaque = &note,
    };
    VFIOUserConnectOptions quiet_opts = {
        .timeout_ms = 10000,
        .closed = note_closed,
        .closed_opaque = &quiet,
    };
    VFIOUserProxy *p;
    ReaderArgs args[4];
    GThread *threads[4];
    Error *err = NULL;
    uint64_t v;

    /* Our own disconnect is not reported as a loss. */
    p = vus_connect(s, &quiet_opts);
    vfio_user_disconnect(p);
    g_assert_cmpuint(quiet.calls, ==, 0);
    p = vus_connect(s, &opts);

    for (unsigned i = 0; i < 4; i++) {
        args[i] = (ReaderArgs) { .proxy = p, .index = i,
                                 .iterations = 1000000 };
        threads[i] = g_thread_new("reader", reader_thread, &args[i]);
    }
    g_usleep(50 * 1000);
    vus_server_kill(s);
    for (unsigned i = 0; i < 4; i++) {
        g_thread_join(threads[i]);
        /* Every thread saw the connection die, with the reason. */
        g_assert_cmpuint(args[i].errors, >=, 1);
        g_assert_nonnull(args[i].first_error);
        g_test_message("thread %u: %s", i, args[i].first_error);
        g_assert_nonnull(strstr(args[i].first_error, "closed the connection"));
        g_free(args[i].first_error);
    }
    g_assert_false(vfio_user_proxy_alive(p));
    g_assert_false(vfio_user_region_read(p, VDMA_MEM_BAR, 0, &v, 8, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "cannot send"));
    error_free(err);
    vfio_user_disconnect(p);
    /* The loss was reported once, with its reason. */
    g_assert_cmpuint(note.calls, ==, 1);
    g_assert_nonnull(strstr(note.reason, "closed the connection"));
    g_free(note.reason);
}

static void test_server_hung(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserConnectOptions opts = { .timeout_ms = 300 };
    VFIOUserProxy *p = vus_connect(s, &opts);
    Error *err = NULL;
    uint64_t v;

    kill(s->pid, SIGSTOP);
    g_assert_false(vfio_user_region_read(p, VDMA_REGS_BAR, 0, &v, 8, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "no reply to REGION_READ"));
    error_free(err);
    kill(s->pid, SIGCONT);
    /* The late reply is dropped; the connection goes on. */
    g_assert_cmphex(vus_reg_read(p, VDMA_REG_ID) & 0xffffffff, ==,
                    VDMA_ID_VALUE);
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

/*
 * A fake server: answers VERSION (and one more request) with what the
 * case asks, to check that the client rejects it cleanly.
 */
typedef enum FakeCase {
    FAKE_SHORT_SIZE,
    FAKE_HUGE_SIZE,
    FAKE_BAD_JSON,
    FAKE_JSON_NOT_OBJECT,
    FAKE_TINY_XFER,
    FAKE_VERSION_ERROR,
    FAKE_WRONG_MAJOR,
    FAKE_WRONG_CMD,
    FAKE_DMA_WRITE_LIES,
    FAKE_MIG_READ,
    FAKE_TOO_MANY_FDS,
    FAKE_DMA_FLOOD,
    FAKE_CLOSE,
    FAKE_UNASKED,
} FakeCase;

typedef struct Fake {
    FakeCase which;
    int listen_fd;
    char *path;
    GThread *thread;
} Fake;

static bool read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = read(fd, p, len);

        if (n <= 0) {
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}

/* Read one request (header + payload, dropped); false on EOF. */
static bool fake_read_request(int fd, struct vfio_user_header *hdr)
{
    g_autofree uint8_t *payload = NULL;

    if (!read_full(fd, hdr, sizeof(*hdr)) || hdr->msg_size < sizeof(*hdr) ||
        hdr->msg_size > 1 * MiB) {
        return false;
    }
    payload = g_malloc(hdr->msg_size - sizeof(*hdr) + 1);
    return read_full(fd, payload, hdr->msg_size - sizeof(*hdr));
}

static void fake_reply(int fd, const struct vfio_user_header *req,
                       uint32_t size_field, const void *payload, size_t len)
{
    struct vfio_user_header hdr = {
        .msg_id = req->msg_id, .cmd = req->cmd, .msg_size = size_field,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };

    g_assert_cmpint(write(fd, &hdr, sizeof(hdr)), ==, sizeof(hdr));
    if (len) {
        g_assert_cmpint(write(fd, payload, len), ==, len);
    }
}

static void fake_version(int fd, const struct vfio_user_header *req,
                         uint16_t major, const char *json)
{
    size_t len = 4 + strlen(json) + 1;
    g_autofree uint8_t *buf = g_malloc0(len);
    uint16_t ver[2] = { major, VFIO_USER_MINOR };

    memcpy(buf, ver, 4);
    memcpy(buf + 4, json, strlen(json));
    fake_reply(fd, req, sizeof(*req) + len, buf, len);
}

static gpointer fake_thread(gpointer opaque)
{
    Fake *f = opaque;
    const char *good = "{\"capabilities\":{\"max_msg_fds\":1}}";
    struct vfio_user_header req, hdr;
    int fd = accept(f->listen_fd, NULL, NULL);

    if (fd < 0 || !fake_read_request(fd, &req)) {
        goto out;
    }
    switch (f->which) {
    case FAKE_SHORT_SIZE:
        fake_reply(fd, &req, 8, NULL, 0);
        break;
    case FAKE_HUGE_SIZE:
        fake_reply(fd, &req, 0x40000000, NULL, 0);
        break;
    case FAKE_BAD_JSON:
        fake_version(fd, &req, 0, "{\"capabilities\":");
        break;
    case FAKE_JSON_NOT_OBJECT:
        fake_version(fd, &req, 0, "{\"capabilities\":[1,2]}");
        break;
    case FAKE_TINY_XFER:
        fake_version(fd, &req, 0,
                     "{\"capabilities\":{\"max_data_xfer_size\":10}}");
        break;
    case FAKE_VERSION_ERROR:
        hdr = (struct vfio_user_header) {
            .msg_id = req.msg_id, .cmd = req.cmd, .msg_size = sizeof(hdr),
            .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
            .error_no = ENOTSUP,
        };
        g_assert_cmpint(write(fd, &hdr, sizeof(hdr)), ==, sizeof(hdr));
        break;
    case FAKE_WRONG_MAJOR:
        fake_version(fd, &req, 7, good);
        break;
    case FAKE_WRONG_CMD:
        fake_version(fd, &req, 0, good);
        if (fake_read_request(fd, &req)) {
            req.cmd = VFIO_USER_DMA_MAP;
            fake_reply(fd, &req, sizeof(req), NULL, 0);
        }
        break;
    case FAKE_DMA_WRITE_LIES: {
        /* Claims 1 GiB of data in a 16-byte message. */
        struct {
            struct vfio_user_header hdr;
            struct vfio_user_dma_access acc;
        } msg = {
            .hdr = { .msg_id = 99, .cmd = VFIO_USER_DMA_WRITE,
                     .msg_size = sizeof(msg),
                     .flags = VFIO_USER_F_TYPE_COMMAND },
            .acc = { .addr = 0, .count = 1 * GiB },
        };
        bool refused = false, answered = false;

        fake_version(fd, &req, 0, good);
        g_assert_cmpint(write(fd, &msg, sizeof(msg)), ==, sizeof(msg));
        /*
         * The client refuses it with an error reply and stays connected:
         * it goes on to send a request, which gets answered.
         */
        while (!(refused && answered) && read_full(fd, &hdr, sizeof(hdr))) {
            uint8_t body[64];

            g_assert_cmpuint(hdr.msg_size, <=, sizeof(hdr) + sizeof(body));
            g_assert_true(read_full(fd, body, hdr.msg_size - sizeof(hdr)));
            if ((hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY) {
                g_assert_cmpuint(hdr.msg_id, ==, 99);
                g_assert_true(hdr.flags & VFIO_USER_F_ERROR);
                g_assert_cmpuint(hdr.error_no, ==, EINVAL);
                refused = true;
            } else {
                fake_reply(fd, &hdr, sizeof(hdr), NULL, 0);
                answered = true;
            }
        }
        g_assert_true(refused && answered);
        break;
    }
    case FAKE_MIG_READ: {
        /*
         * First a padded reply, as libvfio-user sends: the size field
         * counts.  Then one that claims more than was asked.
         */
        struct vfio_user_mig_data m = { .size = 100 };
        uint8_t data[4096 + 64];

        fake_version(fd, &req, 0, good);
        memset(data, 0x3c, sizeof(data));
        if (!fake_read_request(fd, &req)) {
            break;
        }
        memcpy(data, &m, sizeof(m));
        fake_reply(fd, &req, sizeof(req) + sizeof(m) + 160, data,
                   sizeof(m) + 160);
        if (!fake_read_request(fd, &req)) {
            break;
        }
        m.size = 4097;
        memcpy(data, &m, sizeof(m));
        fake_reply(fd, &req, sizeof(req) + sizeof(m) + 4097, data,
                   sizeof(m) + 4097);
        break;
    }
    case FAKE_TOO_MANY_FDS: {
        /* 20 fds with the VERSION reply: more than any message may carry. */
        union {
            char buf[CMSG_SPACE(sizeof(int) * 20)];
            struct cmsghdr align;
        } control;
        struct vfio_user_header rh = {
            .msg_id = req.msg_id, .cmd = req.cmd, .msg_size = sizeof(rh) + 4,
            .flags = VFIO_USER_F_TYPE_REPLY,
        };
        uint16_t ver[2] = { 0, VFIO_USER_MINOR };
        struct iovec iov[2] = { { &rh, sizeof(rh) }, { ver, sizeof(ver) } };
        struct msghdr mh = {
            .msg_iov = iov, .msg_iovlen = 2,
            .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        int fds[20];

        for (int i = 0; i < 20; i++) {
            fds[i] = dup(fd);
        }
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(cm), fds, sizeof(fds));
        g_assert_cmpint(sendmsg(fd, &mh, 0), ==, sizeof(rh) + sizeof(ver));
        for (int i = 0; i < 20; i++) {
            close(fds[i]);
        }
        break;
    }
    case FAKE_DMA_FLOOD: {
        /*
         * DMA_READs worth far more reply bytes than the socket buffers
         * hold, and never a reply read: the client must give up on us.
         */
        struct {
            struct vfio_user_header hdr;
            struct vfio_user_dma_access acc;
        } msg = {
            .hdr = { .cmd = VFIO_USER_DMA_READ, .msg_size = sizeof(msg),
                     .flags = VFIO_USER_F_TYPE_COMMAND },
            .acc = { .addr = 0, .count = 64 * KiB },
        };
        struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };

        fake_version(fd, &req, 0, good);
        for (int i = 0; i < 400; i++) {
            msg.hdr.msg_id = i;
            g_assert_cmpint(write(fd, &msg, sizeof(msg)), ==, sizeof(msg));
        }
        g_assert_cmpint(poll(&pfd, 1, 10000), ==, 1);
        goto out;
    }
    case FAKE_CLOSE:
        goto out;
    case FAKE_UNASKED: {
        /*
         * Capabilities never proposed (a twin socket with its fd, an
         * unknown key, a key of the wrong type) and none of those that were.
         */
        const char *json = "{\"capabilities\":{\"twin_socket\":"
                           "{\"supported\":true,\"fd_index\":0},"
                           "\"x-vendor\":[1,{}],\"migration\":"
                           "{\"max_bitmap_size\":\"big\"}}}";
        size_t len = 4 + strlen(json) + 1;
        g_autofree uint8_t *buf = g_malloc0(sizeof(hdr) + len);
        uint16_t ver[2] = { 0, VFIO_USER_MINOR };
        char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
        struct iovec iov;
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = cbuf, .msg_controllen = sizeof(cbuf),
        };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        int sv[2];

        hdr = (struct vfio_user_header) {
            .msg_id = req.msg_id, .cmd = req.cmd,
            .msg_size = sizeof(hdr) + len, .flags = VFIO_USER_F_TYPE_REPLY,
        };
        memcpy(buf, &hdr, sizeof(hdr));
        memcpy(buf + sizeof(hdr), ver, 4);
        memcpy(buf + sizeof(hdr) + 4, json, strlen(json));
        iov = (struct iovec) { buf, sizeof(hdr) + len };
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                   sv), ==, 0);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &sv[1], sizeof(int));
        g_assert_cmpint(sendmsg(fd, &mh, 0), ==, (ssize_t)iov.iov_len);
        close(sv[0]);
        close(sv[1]);
        break;
    }
    }
    /* Wait for the client to hang up. */
    while (fake_read_request(fd, &req)) {
        /* drop */
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static Fake *fake_start(FakeCase which)
{
    Fake *f = g_new0(Fake, 1);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_autofree char *name = g_strdup_printf("fake%d.sock", which);

    f->which = which;
    f->path = vus_test_path(name);
    g_strlcpy(addr.sun_path, f->path, sizeof(addr.sun_path));
    unlink(f->path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(bind(f->listen_fd, (struct sockaddr *)&addr,
                         sizeof(addr)), ==, 0);
    g_assert_cmpint(listen(f->listen_fd, 1), ==, 0);
    f->thread = g_thread_new("fake-server", fake_thread, f);
    return f;
}

static void fake_stop(Fake *f)
{
    g_thread_join(f->thread);
    close(f->listen_fd);
    unlink(f->path);
    g_free(f->path);
    g_free(f);
}

static void expect_connect_error(FakeCase which, const char *needle)
{
    Fake *f = fake_start(which);
    VFIOUserConnectOptions opts = { .timeout_ms = 2000 };
    Error *err = NULL;

    g_assert_null(vfio_user_connect(f->path, &opts, &err));
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), needle)) {
        g_error("expected '%s' in: %s", needle, error_get_pretty(err));
    }
    error_free(err);
    fake_stop(f);
}

static void test_bad_server(void)
{
    expect_connect_error(FAKE_SHORT_SIZE, "bad size 8");
    expect_connect_error(FAKE_HUGE_SIZE, "bad size");
    expect_connect_error(FAKE_BAD_JSON, "not JSON");
    expect_connect_error(FAKE_JSON_NOT_OBJECT, "'capabilities' is not an "
                         "object");
    expect_connect_error(FAKE_TINY_XFER, "max_data_xfer_size");
    expect_connect_error(FAKE_VERSION_ERROR, "refused VERSION");
    expect_connect_error(FAKE_WRONG_MAJOR, "speaks protocol 7.");
    expect_connect_error(FAKE_TOO_MANY_FDS, "too many fds");
    expect_connect_error(FAKE_CLOSE, "closed the connection");
}

static unsigned count_open_fds(void)
{
    g_autoptr(GDir) dir = g_dir_open("/proc/self/fd", 0, NULL);
    unsigned n = 0;

    g_assert_nonnull(dir);
    while (g_dir_read_name(dir)) {
        n++;
    }
    return n;
}

/*
 * Liberal in what it accepts: a server that adds capabilities the client
 * never proposed (a twin socket and its fd included) and leaves out all
 * it did is served with the protocol's defaults, and the fd is closed.
 */
static void test_unasked_capabilities(void)
{
    VFIOUserConnectOptions opts = { .timeout_ms = 2000 };
    unsigned fds_before = count_open_fds();
    Fake *f = fake_start(FAKE_UNASKED);
    const VFIOUserPeerCaps *caps;
    VFIOUserProxy *p;

    p = vfio_user_connect(f->path, &opts, &error_abort);
    caps = vfio_user_peer_caps(p);
    g_assert_cmpuint(caps->max_msg_fds, ==, VFIO_USER_DEF_MAX_FDS);
    g_assert_cmpuint(caps->max_data_xfer_size, ==, VFIO_USER_DEF_MAX_XFER);
    g_assert_false(caps->write_multiple);
    g_assert_false(caps->precopy_info);
    g_assert_false(caps->mig_data_size);
    vfio_user_disconnect(p);
    fake_stop(f);
    g_assert_cmpuint(count_open_fds(), ==, fds_before);
}

/*
 * A raw client as the widely used client library's sample is written:
 * it proposes max_msg_fds, max_data_xfer_size and migration.pgsize only
 * and must get back nothing else, least of all a twin socket, from a
 * full server and from a plain one alike.
 */
static void test_raw_sample_client(void)
{
    static const char *const server_args[][2] = {
        { NULL, NULL },
        { "--no-extensions", "--strict-regions" },
    };
    const char *json = "{\"capabilities\":{\"max_msg_fds\":32,"
                       "\"max_data_xfer_size\":1024,"
                       "\"migration\":{\"pgsize\":4096}}}";

    for (size_t i = 0; i < G_N_ELEMENTS(server_args); i++) {
        VusServer *s = vus_server_start("--mem-size", MEM, server_args[i][0],
                                        server_args[i][1], NULL);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        size_t len = 4 + strlen(json) + 1;
        g_autofree uint8_t *buf = g_malloc0(sizeof(struct vfio_user_header) +
                                            4096);
        struct vfio_user_header hdr = {
            .msg_id = 0x55, .cmd = VFIO_USER_VERSION,
            .msg_size = sizeof(hdr) + len,
        };
        uint16_t ver[2] = { 0, VFIO_USER_MINOR };
        char cbuf[CMSG_SPACE(sizeof(int) * VFIO_USER_MAX_MAX_FDS)];
        struct iovec iov = { buf, sizeof(hdr) + 4096 };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = cbuf, .msg_controllen = sizeof(cbuf),
        };
        g_autoptr(JsonParser) parser = json_parser_new();
        JsonObject *caps, *mig;
        g_autoptr(GList) keys = NULL;
        ssize_t n;

        g_strlcpy(addr.sun_path, s->socket, sizeof(addr.sun_path));
        g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)),
                        ==, 0);
        memcpy(buf, &hdr, sizeof(hdr));
        memcpy(buf + sizeof(hdr), ver, 4);
        memcpy(buf + sizeof(hdr) + 4, json, strlen(json) + 1);
        g_assert_cmpint(write(fd, buf, hdr.msg_size), ==, hdr.msg_size);
        memset(buf, 0, iov.iov_len);
        /* The reply is small: one recvmsg holds it, and any fd with it. */
        n = recvmsg(fd, &mh, 0);
        g_assert_cmpint(n, >, (ssize_t)sizeof(hdr) + 4);
        g_assert_null(CMSG_FIRSTHDR(&mh));
        memcpy(&hdr, buf, sizeof(hdr));
        g_assert_cmpuint(hdr.msg_size, ==, n);
        g_assert_cmpuint(hdr.msg_id, ==, 0x55);
        g_assert_cmpuint(hdr.flags, ==, VFIO_USER_F_TYPE_REPLY);
        g_assert_cmpint(buf[n - 1], ==, '\0');
        g_test_message("reply: %s", (char *)buf + sizeof(hdr) + 4);
        g_assert_true(json_parser_load_from_data(
            parser, (char *)buf + sizeof(hdr) + 4, -1, NULL));
        caps = json_object_get_object_member(
            json_node_get_object(json_parser_get_root(parser)), "capabilities");
        g_assert_nonnull(caps);
        keys = json_object_get_members(caps);
        for (GList *k = keys; k; k = k->next) {
            if (strcmp(k->data, "max_msg_fds") &&
                strcmp(k->data, "max_data_xfer_size") &&
                strcmp(k->data, "max_dma_maps") &&
                strcmp(k->data, "migration")) {
                g_error("capability '%s' was never proposed",
                        (char *)k->data);
            }
        }
        g_assert_cmpint(json_object_get_int_member(caps, "max_data_xfer_size"),
                        ==, 1024);
        mig = json_object_get_object_member(caps, "migration");
        g_assert_nonnull(mig);
        g_assert_cmpuint(json_object_get_size(mig), ==, 1);
        g_assert_cmpint(json_object_get_int_member(mig, "pgsize"), ==, 4096);
        close(fd);
        vus_server_stop(s);
    }
}

static void test_bad_server_replies(void)
{
    VFIOUserConnectOptions opts = { .timeout_ms = 2000 };
    Error *err = NULL;
    Fake *f;
    VFIOUserProxy *p;

    /* A reply whose command does not match its msg_id ends the stream. */
    f = fake_start(FAKE_WRONG_CMD);
    p = vfio_user_connect(f->path, &opts, &error_abort);
    g_assert_false(vfio_user_device_reset(p, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "is for DMA_MAP"));
    error_free(err);
    err = NULL;
    g_assert_false(vfio_user_proxy_alive(p));
    vfio_user_disconnect(p);
    fake_stop(f);

    /* MIG_DATA_READ: padding is ignored, an oversized claim refused. */
    f = fake_start(FAKE_MIG_READ);
    p = vfio_user_connect(f->path, &opts, &error_abort);
    {
        uint8_t buf[4096];

        g_assert_cmpint(vfio_user_mig_data_read(p, buf, sizeof(buf),
                                                &error_abort), ==, 100);
        g_assert_cmpuint(buf[99], ==, 0x3c);
        g_assert_cmpint(vfio_user_mig_data_read(p, buf, sizeof(buf), &err),
                        <, 0);
        g_assert_nonnull(strstr(error_get_pretty(err), "claiming 4097"));
        error_free(err);
        err = NULL;
        g_assert_true(vfio_user_proxy_alive(p));
    }
    vfio_user_disconnect(p);
    fake_stop(f);

    /* A lying DMA_WRITE is refused and the connection survives. */
    f = fake_start(FAKE_DMA_WRITE_LIES);
    p = vfio_user_connect(f->path, &opts, &error_abort);
    g_assert_true(vfio_user_device_reset(p, &error_abort));
    g_assert_true(vfio_user_proxy_alive(p));
    vfio_user_disconnect(p);
    fake_stop(f);
}

/* Wait (10 s at most) until the server has logged @needle. */
static void assert_server_log(VusServer *s, const char *needle)
{
    g_autofree char *log = NULL;

    for (int i = 0; i < 1000; i++) {
        g_free(log);
        log = NULL;
        if (g_file_get_contents(s->log, &log, NULL, NULL) &&
            strstr(log, needle)) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_error("the server never logged '%s'; it logged:\n%s", needle,
            log ? log : "");
}

/* One client per device: another gets a clear refusal, at once. */
static void test_second_client(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserConnectOptions opts = { .timeout_ms = 20000 };
    VFIOUserProxy *p = vus_connect(s, NULL);
    gint64 start = g_get_monotonic_time();
    Error *err = NULL;

    g_assert_null(vfio_user_connect(s->socket, &opts, &err));
    g_test_message("%s", error_get_pretty(err));
    g_assert_nonnull(strstr(error_get_pretty(err), "the server is serving "
                            "another client (one client per device at a "
                            "time)"));
    error_free(err);
    /* Well before the reply timeout: the server did not make it wait. */
    g_assert_cmpint(g_get_monotonic_time() - start, <, 10 * G_USEC_PER_SEC);
    assert_server_log(s, "refusing a new client: another client is being "
                      "served");
    /* The first client goes on; once it leaves, the next is served. */
    g_assert_cmphex(vus_reg_read(p, VDMA_REG_ID) & 0xffffffff, ==,
                    VDMA_ID_VALUE);
    vfio_user_disconnect(p);
    p = vus_connect(s, NULL);
    g_assert_cmphex(vus_reg_read(p, VDMA_REG_ID) & 0xffffffff, ==,
                    VDMA_ID_VALUE);
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

/* vfio-user-dma's limit options reach the library, with clear errors. */
static void test_server_limits(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, "--max-dma-maps", "2",
                                    "--max-dma-bytes", "64K", NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    const uint32_t rw = VFIO_USER_F_DMA_REGION_READ |
                        VFIO_USER_F_DMA_REGION_WRITE;
    Error *err = NULL;

    g_assert_cmpuint(vfio_user_peer_caps(p)->max_dma_maps, ==, 2);
    g_assert_false(vfio_user_dma_map(p, 0x100000, 128 * KiB, -1, 0, rw,
                                     &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "server refused DMA_MAP"));
    error_free(err);
    err = NULL;
    assert_server_log(s, "would pass the limit of 0x10000 bytes");
    g_assert_true(vfio_user_dma_map(p, 0x100000, 16 * KiB, -1, 0, rw,
                                    &error_abort));
    g_assert_true(vfio_user_dma_map(p, 0x200000, 16 * KiB, -1, 0, rw,
                                    &error_abort));
    g_assert_false(vfio_user_dma_map(p, 0x300000, 16 * KiB, -1, 0, rw,
                                     &err));
    g_assert_nonnull(strstr(error_get_pretty(err), g_strerror(ENOSPC)));
    error_free(err);
    assert_server_log(s, "the client already has 2 DMA regions, the limit");
    vfio_user_disconnect(p);
    vus_server_stop(s);

    /* Bad values are refused at start. */
    {
        g_autofree char *out = NULL, *errs = NULL;

        g_assert_cmpint(vus_run(&out, &errs, vus_test_bin("VUS_DMA_BIN"),
                                "--socket", "/nonexistent/x.sock",
                                "--max-dma-maps", "70000", NULL), !=, 0);
        g_assert_nonnull(strstr(errs, "--max-dma-maps '70000': expected a "
                                "number from 1 to 65535"));
    }
}

/*
 * A client that stalls mid-message keeps vmig's client out only until
 * the server's message timeout drops it.
 */
static void test_stalled_client(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, "--msg-timeout", "300",
                                    NULL);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct vfio_user_header h = { .msg_id = 1, .cmd = VFIO_USER_VERSION,
                                  .msg_size = 64 };
    VFIOUserConnectOptions opts = { .timeout_ms = 20000 };
    Error *err = NULL;
    VFIOUserProxy *p;
    char c;
    int fd;

    g_strlcpy(addr.sun_path, s->socket, sizeof(addr.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==,
                    0);
    g_assert_cmpint(write(fd, &h, 8), ==, 8);
    /* While it stalls, another client is refused, not kept waiting. */
    g_assert_null(vfio_user_connect(s->socket, &opts, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "serving another client"));
    error_free(err);
    /* The stalled one is dropped after the timeout... */
    g_assert_cmpint(read(fd, &c, 1), ==, 0);
    close(fd);
    assert_server_log(s, "dropping the client: it stopped after 8 of the 16 "
                      "header bytes of a message and sent nothing more for "
                      "300 ms");
    /* ...and the device serves the next client. */
    p = vus_connect(s, NULL);
    g_assert_cmphex(vus_reg_read(p, VDMA_REG_ID) & 0xffffffff, ==,
                    VDMA_ID_VALUE);
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

static int zero_dma_read(void *opaque, uint64_t iova, void *buf, uint64_t len)
{
    memset(buf, 0, len);
    return 0;
}

/*
 * A server that floods DMA requests and does not read the replies: the
 * client serves one at a time, so it holds no more than one, and drops
 * the connection, saying why, once a reply cannot go out in time.
 */
static void test_server_floods(void)
{
    Fake *f = fake_start(FAKE_DMA_FLOOD);
    CloseNote note = { 0 };
    VFIOUserConnectOptions opts = {
        .timeout_ms = 300,
        .dma_read = zero_dma_read,
        .closed = note_closed,
        .closed_opaque = &note,
    };
    VFIOUserProxy *p = vfio_user_connect(f->path, &opts, &error_abort);

    for (int i = 0; i < 1000 && !__atomic_load_n(&note.calls, __ATOMIC_SEQ_CST);
         i++) {
        g_usleep(10 * 1000);
    }
    g_assert_cmpuint(__atomic_load_n(&note.calls, __ATOMIC_SEQ_CST), ==, 1);
    g_test_message("%s", note.reason);
    g_assert_nonnull(strstr(note.reason, "serving the server's DMA_READ "
                            "failed: the server stopped reading"));
    g_assert_false(vfio_user_proxy_alive(p));
    vfio_user_disconnect(p);
    fake_stop(f);
    g_free(note.reason);
}

int main(int argc, char **argv)
{
    vus_test_init(&argc, &argv);
    g_test_add_func("/vus/client/caps-parse", test_caps_parse);
    g_test_add_func("/vus/client/version", test_version);
    g_test_add_func("/vus/client/info", test_info);
    g_test_add_func("/vus/client/region-rw", test_region_rw);
    g_test_add_func("/vus/client/write-multi", test_write_multi);
    g_test_add_func("/vus/client/concurrent", test_concurrent);
    g_test_add_func("/vus/client/irq", test_irq);
    g_test_add_func("/vus/client/dma-logging", test_dma_logging);
    g_test_add_func("/vus/client/dma-no-fd", test_dma_no_fd);
    g_test_add_func("/vus/client/server-killed", test_server_killed);
    g_test_add_func("/vus/client/server-hung", test_server_hung);
    g_test_add_func("/vus/client/bad-server", test_bad_server);
    g_test_add_func("/vus/client/bad-server-replies", test_bad_server_replies);
    g_test_add_func("/vus/client/unasked-capabilities",
                    test_unasked_capabilities);
    g_test_add_func("/vus/client/raw-sample-client", test_raw_sample_client);
    g_test_add_func("/vus/client/second-client", test_second_client);
    g_test_add_func("/vus/client/server-limits", test_server_limits);
    g_test_add_func("/vus/client/stalled-client", test_stalled_client);
    g_test_add_func("/vus/client/server-floods", test_server_floods);
    return g_test_run();
}
