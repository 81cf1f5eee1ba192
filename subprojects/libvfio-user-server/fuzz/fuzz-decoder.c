/*
 * libFuzzer target for the message decoder: the input is a sequence of
 * vfio-user messages as they would arrive on the socket, fed to the
 * same dispatcher the service thread uses, against a device with
 * regions, IRQs, DMA and migration.  Replies are decoded but not sent.
 *
 * Input layout: byte 0 holds options (bit 0: start as if VERSION was
 * done, to reach the other commands quickly); then messages (16-byte
 * header, payload).  The low two bits of a header's error_no field say
 * how many fds to attach, and bits 2-3 their kind (memfd, eventfd,
 * socket, pipe), so that fd checks are exercised too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_decoder_cleanup(void);

#define FZ_BAR_SIZE   8192
#define FZ_STATE_SIZE (20 * 1024)
#define FZ_MEMFD_SIZE (64 * 1024)

static VusCtx *fz_ctx;
static uint8_t fz_bar[FZ_BAR_SIZE];
static size_t fz_read_pos;
static size_t fz_written;

static ssize_t fz_access(void *opaque, uint32_t region, uint64_t offset,
                         void *buf, size_t count, bool is_write)
{
    /* The library checked the bounds; touching every byte proves it. */
    if (is_write) {
        memcpy(fz_bar + offset, buf, count);
    } else {
        memcpy(buf, fz_bar + offset, count);
    }
    return count;
}

static int fz_transition(void *opaque, enum vfio_device_mig_state from,
                         enum vfio_device_mig_state to)
{
    if (to == VFIO_DEVICE_STATE_STOP_COPY || to == VFIO_DEVICE_STATE_PRE_COPY) {
        fz_read_pos = 0;
    }
    if (to == VFIO_DEVICE_STATE_RESUMING) {
        fz_written = 0;
    }
    /* Odd-sized streams do not load. */
    if (from == VFIO_DEVICE_STATE_RESUMING && (fz_written & 1)) {
        return -EINVAL;
    }
    return 0;
}

static ssize_t fz_read(void *opaque, void *buf, uint64_t size)
{
    size_t n = MIN(size, FZ_STATE_SIZE - fz_read_pos);

    memset(buf, 0x5a, n);
    fz_read_pos += n;
    return n;
}

static ssize_t fz_write(void *opaque, const void *buf, uint64_t size)
{
    fz_written += size;
    return size;
}

static int fz_data_size(void *opaque, uint64_t *len)
{
    *len = FZ_STATE_SIZE;
    return 0;
}

static int fz_precopy_info(void *opaque, uint64_t *initial, uint64_t *dirty)
{
    *initial = FZ_STATE_SIZE - fz_read_pos;
    *dirty = 0;
    return 0;
}

static void fz_log(void *opaque, VusLogLevel level, const char *msg)
{
    fprintf(stderr, "%s\n", msg);
}

static void fz_setup(void)
{
    VusPciIds ids = { .vendor_id = 0x1234, .device_id = 0x5678,
                      .class_code = 0xff0000 };
    VusRegionDesc bar = {
        .size = FZ_BAR_SIZE, .flags = VUS_REGION_READ | VUS_REGION_WRITE,
        .access = fz_access, .mmap_fd = -1,
    };
    VusMigrationOps mig = {
        .flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
                 VFIO_MIGRATION_PRE_COPY,
        .transition = fz_transition, .read_data = fz_read,
        .write_data = fz_write, .data_size = fz_data_size,
        .precopy_info = fz_precopy_info,
    };
    static const VusMmapArea area = { .offset = 4096, .size = 4096 };
    int memfd = memfd_create("fz-bar2", MFD_CLOEXEC);

    fz_ctx = vus_ctx_new("fuzz", NULL);
    if (!fz_ctx || memfd < 0 || ftruncate(memfd, FZ_BAR_SIZE) < 0) {
        abort();
    }
    /* VUS_FUZZ_LOG=1 shows what the decoder made of an input. */
    if (!getenv("VUS_FUZZ_LOG")) {
        vus_ctx_set_log(fz_ctx, NULL, VUS_LOG_ERROR);
    } else {
        vus_ctx_set_log(fz_ctx, fz_log, VUS_LOG_DEBUG);
    }
    vus_pci_setup(fz_ctx, &ids);
    vus_setup_region(fz_ctx, 0, &bar);
    bar.mmap_fd = memfd;
    bar.mmap_areas = &area;
    bar.nr_mmap_areas = 1;
    bar.flags |= VUS_BAR_MEM64;
    vus_setup_region(fz_ctx, 2, &bar);
    close(memfd);
    bar.mmap_fd = -1;
    bar.mmap_areas = NULL;
    bar.nr_mmap_areas = 0;
    bar.flags = VUS_REGION_READ;
    vus_setup_region(fz_ctx, 9, &bar);
    vus_setup_irqs(fz_ctx, VFIO_PCI_INTX_IRQ_INDEX, 1);
    vus_setup_irqs(fz_ctx, VFIO_PCI_MSIX_IRQ_INDEX, 16);
    vus_pci_add_msix_cap(fz_ctx, 16, 0, 0, 0, 4096);
    vus_pci_add_msi_cap(fz_ctx, 4);
    if (vus_setup_migration(fz_ctx, &mig) < 0 ||
        vus_ctx_finish_setup(fz_ctx) < 0) {
        abort();
    }
}

/* Makes one fd of @kind; *extra gets an fd to close afterwards or -1. */
static int fz_make_fd(unsigned kind, int *extra)
{
    int sv[2];

    *extra = -1;
    switch (kind) {
    case 0: {
        int fd = memfd_create("fz-dma", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, FZ_MEMFD_SIZE) < 0) {
            close(fd);
            return -1;
        }
        return fd;
    }
    case 1:
        return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    case 2:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            return -1;
        }
        *extra = sv[0];
        return sv[1];
    default:
        if (pipe2(sv, O_CLOEXEC) < 0) {
            return -1;
        }
        *extra = sv[0];
        return sv[1];
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VusConn *conn;
    size_t pos = 1;

    if (!fz_ctx) {
        fz_setup();
    }
    if (size < 1) {
        return 0;
    }
    conn = vus_conn_new(fz_ctx, -1);
    if (!conn) {
        return 0;
    }
    conn->discard_replies = true;
    conn->versioned = data[0] & 1;
    atomic_store(&fz_ctx->mig_state, VFIO_DEVICE_STATE_RUNNING);
    fz_read_pos = 0;
    fz_written = 0;

    while (size - pos >= VFIO_USER_HDR_SIZE) {
        VusMsg msg;
        int extras[4];
        size_t nextra = 0;

        vus_msg_init(&msg);
        memcpy(&msg.hdr, data + pos, sizeof(msg.hdr));
        pos += VFIO_USER_HDR_SIZE;
        if (msg.hdr.msg_size < VFIO_USER_HDR_SIZE) {
            break;      /* framing lost: the server drops the client */
        }
        msg.len = msg.hdr.msg_size - VFIO_USER_HDR_SIZE;
        if (msg.len > size - pos) {
            break;      /* truncated: the client went away */
        }
        if (msg.len > conn->max_xfer + VUS_MSG_OVERHEAD) {
            pos += msg.len;
            continue;   /* consumed and refused */
        }
        msg.payload = calloc(1, msg.len + 1);
        if (!msg.payload) {
            break;
        }
        memcpy(msg.payload, data + pos, msg.len);
        pos += msg.len;
        for (unsigned i = 0; i < (msg.hdr.error_no & 3); i++) {
            int fd = fz_make_fd((msg.hdr.error_no >> 2) & 3, &extras[nextra]);

            if (extras[nextra] >= 0) {
                nextra++;
            }
            if (fd >= 0) {
                msg.fds[msg.nfds++] = fd;
            }
        }
        if ((msg.hdr.flags & VFIO_USER_F_TYPE_MASK) !=
            VFIO_USER_F_TYPE_REPLY) {
            vus_dispatch(fz_ctx, conn, &msg);
        }
        vus_msg_release(&msg);
        for (size_t i = 0; i < nextra; i++) {
            close(extras[i]);
        }
    }
    vus_conn_close(fz_ctx, conn);
    return 0;
}

/* Frees the device; for the corpus driver, so that leak checks are clean. */
void fuzz_decoder_cleanup(void)
{
    vus_ctx_free(fz_ctx);
    fz_ctx = NULL;
}
