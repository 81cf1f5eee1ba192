/*
 * The test device (see test-device.h).
 *
 * Stream format: the state blob (TD_STATE_SIZE bytes) then an 8-byte
 * checksum.  PRE_COPY serves the blob as initial data; reads at its end
 * come back short ("no more for now").  STOP_COPY continues from where
 * pre-copy stopped (or from 0) and ends with the checksum.  Every arc
 * that leaves or enters a saving state rewinds the stream: that is the
 * cancel behaviour the tests check.  RESUMING -> STOP validates length
 * and checksum and fails (staying in RESUMING) when they are wrong.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test-device.h"
#include "vus-client.h"

uint8_t td_state_byte(size_t i)
{
    return (uint8_t)(i * 131 + (i >> 8) * 7 + 1);
}

uint64_t td_checksum(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static ssize_t bar0_access(void *opaque, uint32_t region, uint64_t offset,
                           void *buf, size_t count, bool is_write)
{
    TestDev *td = opaque;

    if (is_write && offset == TD_REG_DMA_IOVA && count == 8) {
        /* DMA from inside a callback, on the service thread. */
        uint64_t iova, value = 0;
        int ret;

        memcpy(&iova, buf, 8);
        ret = vus_dma_read(td->ctx, iova, &value, sizeof(value));
        if (ret < 0) {
            return ret;
        }
        g_mutex_lock(&td->lock);
        memcpy(td->bar0 + TD_REG_DMA_VALUE, &value, 8);
        g_mutex_unlock(&td->lock);
        return count;
    }
    g_mutex_lock(&td->lock);
    if (is_write) {
        memcpy(td->bar0 + offset, buf, count);
    } else {
        memcpy(buf, td->bar0 + offset, count);
    }
    g_mutex_unlock(&td->lock);
    return count;
}

static ssize_t bar2_access(void *opaque, uint32_t region, uint64_t offset,
                           void *buf, size_t count, bool is_write)
{
    TestDev *td = opaque;
    ssize_t n = is_write ? pwrite(td->bar2_fd, buf, count, offset)
                         : pread(td->bar2_fd, buf, count, offset);

    return n < 0 ? -errno : n;
}

static int td_transition(void *opaque, enum vfio_device_mig_state from,
                         enum vfio_device_mig_state to)
{
    TestDev *td = opaque;
    TestArc arc = { from, to };
    int ret = 0;

    g_mutex_lock(&td->lock);
    g_array_append_val(td->arcs, arc);
    if (td->fail_errno && td->fail_from == from && td->fail_to == to) {
        ret = -td->fail_errno;
        goto out;
    }
    if (from == VFIO_DEVICE_STATE_RESUMING && !td->accept_any_stream) {
        uint64_t sum;

        /* Check the whole stream before anything of it is used. */
        if (td->incoming->len != TD_STATE_SIZE + sizeof(sum)) {
            ret = -EINVAL;
            goto out;
        }
        memcpy(&sum, td->incoming->data + TD_STATE_SIZE, sizeof(sum));
        if (sum != td_checksum(td->incoming->data, TD_STATE_SIZE)) {
            ret = -EINVAL;
            goto out;
        }
        memcpy(td->state, td->incoming->data, TD_STATE_SIZE);
        td->loaded = true;
    }
    if (to == VFIO_DEVICE_STATE_RESUMING) {
        g_byte_array_set_size(td->incoming, 0);
    }
    /* A new saving session starts from the beginning. */
    if ((to == VFIO_DEVICE_STATE_PRE_COPY &&
         from != VFIO_DEVICE_STATE_PRE_COPY_P2P) ||
        (to == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
         from != VFIO_DEVICE_STATE_PRE_COPY) ||
        (to == VFIO_DEVICE_STATE_STOP_COPY &&
         from == VFIO_DEVICE_STATE_STOP)) {
        td->read_pos = 0;
    }
out:
    g_mutex_unlock(&td->lock);
    return ret;
}

static ssize_t td_read_data(void *opaque, void *buf, uint64_t size)
{
    TestDev *td = opaque;
    uint32_t state = vus_mig_get_state(td->ctx);
    uint64_t sum = td_checksum(td->state, TD_STATE_SIZE);
    size_t end = TD_STATE_SIZE;
    size_t n = 0;

    g_mutex_lock(&td->lock);
    if (state == VFIO_DEVICE_STATE_STOP_COPY) {
        end += sizeof(sum);
    }
    while (n < size && td->read_pos < end) {
        size_t chunk;

        if (td->read_pos < TD_STATE_SIZE) {
            chunk = MIN(size - n, TD_STATE_SIZE - td->read_pos);
            memcpy((uint8_t *)buf + n, td->state + td->read_pos, chunk);
        } else {
            size_t off = td->read_pos - TD_STATE_SIZE;
            chunk = MIN(size - n, sizeof(sum) - off);
            memcpy((uint8_t *)buf + n, (uint8_t *)&sum + off, chunk);
        }
        n += chunk;
        td->read_pos += chunk;
    }
    g_mutex_unlock(&td->lock);
    return n;
}

/* The zero-copy flavour: the same stream, served from a buffer. */
static ssize_t td_read_data_zc(void *opaque, const void **data, uint64_t size)
{
    TestDev *td = opaque;
    size_t start;
    ssize_t n;

    g_mutex_lock(&td->lock);
    start = td->read_pos;
    g_mutex_unlock(&td->lock);
    n = td_read_data(opaque, td->zc_buf + start, size);
    *data = td->zc_buf + start;
    return n;
}

static ssize_t td_write_data(void *opaque, const void *buf, uint64_t size)
{
    TestDev *td = opaque;

    g_mutex_lock(&td->lock);
    if (td->incoming->len + size > 2 * TD_STATE_SIZE) {
        g_mutex_unlock(&td->lock);
        return -EFBIG;
    }
    g_byte_array_append(td->incoming, buf, size);
    g_mutex_unlock(&td->lock);
    return size;
}

static int td_data_size(void *opaque, uint64_t *len)
{
    *len = TD_STATE_SIZE + sizeof(uint64_t);
    return 0;
}

static int td_precopy_info(void *opaque, uint64_t *initial, uint64_t *dirty)
{
    TestDev *td = opaque;

    g_mutex_lock(&td->lock);
    *initial = td->read_pos < TD_STATE_SIZE ? TD_STATE_SIZE - td->read_pos : 0;
    *dirty = td->dirty_bytes;
    g_mutex_unlock(&td->lock);
    return 0;
}

static int td_reset(void *opaque)
{
    TestDev *td = opaque;

    g_mutex_lock(&td->lock);
    td->resets++;
    memset(td->bar0, 0, sizeof(td->bar0));
    td->read_pos = 0;
    g_mutex_unlock(&td->lock);
    return 0;
}

static void td_dma_map(void *opaque, const VusDmaRegion *r)
{
    TestDev *td = opaque;

    g_mutex_lock(&td->lock);
    td->maps++;
    g_mutex_unlock(&td->lock);
}

static void td_dma_unmap(void *opaque, const VusDmaRegion *r)
{
    TestDev *td = opaque;

    g_mutex_lock(&td->lock);
    td->unmaps++;
    g_mutex_unlock(&td->lock);
}

static void td_client(void *opaque, bool connected)
{
    TestDev *td = opaque;

    g_mutex_lock(&td->lock);
    td->connected = connected;
    if (connected) {
        td->clients_seen++;
    }
    g_mutex_unlock(&td->lock);
}

static void td_log(void *opaque, VusLogLevel level, const char *msg)
{
    TestDev *td = opaque;

    g_test_message("[server] %s", msg);
    g_mutex_lock(&td->lock);
    g_string_append_printf(td->log, "%s\n", msg);
    g_mutex_unlock(&td->lock);
}

bool td_wait_log(TestDev *td, const char *needle)
{
    for (int i = 0; i < VC_TIMEOUT_SEC * 200; i++) {
        bool found;

        g_mutex_lock(&td->lock);
        found = strstr(td->log->str, needle) != NULL;
        g_mutex_unlock(&td->lock);
        if (found) {
            return true;
        }
        g_usleep(5 * 1000);
    }
    return false;
}

int td_clients_seen(TestDev *td)
{
    int n;

    g_mutex_lock(&td->lock);
    n = td->clients_seen;
    g_mutex_unlock(&td->lock);
    return n;
}

static TestDev *td_create(uint64_t mig_flags, uint32_t max_xfer,
                          bool zero_copy, const VusClientLimits *limits)
{
    static const VusMmapArea areas[] = {
        { .offset = 0, .size = 4096 },
        { .offset = 32768, .size = 32768 },
    };
    VusPciIds ids = {
        .vendor_id = 0x1b36, .device_id = 0x0042,
        .subsys_vendor_id = 0x1af4, .subsys_id = 0x1100,
        .class_code = 0x058000, .revision = 2,
    };
    VusRegionDesc bar0 = {
        .size = TD_BAR0_SIZE, .flags = VUS_REGION_READ | VUS_REGION_WRITE,
        .access = bar0_access, .mmap_fd = -1,
    };
    VusRegionDesc bar2 = {
        .size = TD_BAR2_SIZE,
        .flags = VUS_REGION_READ | VUS_REGION_WRITE | VUS_BAR_MEM64 |
                 VUS_BAR_PREFETCH,
        .access = bar2_access, .mmap_areas = areas,
        .nr_mmap_areas = G_N_ELEMENTS(areas),
    };
    VusMigrationOps mig = {
        .flags = mig_flags,
        .transition = td_transition,
        .read_data = td_read_data,
        .write_data = td_write_data,
        .data_size = td_data_size,
        .precopy_info = td_precopy_info,
        .read_data_zc = zero_copy ? td_read_data_zc : NULL,
    };
    TestDev *td = g_new0(TestDev, 1);

    g_mutex_init(&td->lock);
    td->log = g_string_new(NULL);
    td->arcs = g_array_new(false, false, sizeof(TestArc));
    td->incoming = g_byte_array_new();
    td->mig_flags = mig_flags;
    for (size_t i = 0; i < TD_STATE_SIZE; i++) {
        td->state[i] = td_state_byte(i);
    }
    td->path = vc_tmp_socket_path(&td->dir);
    td->bar2_fd = memfd_create("td-bar2", MFD_CLOEXEC);
    g_assert_cmpint(td->bar2_fd, >=, 0);
    g_assert_cmpint(ftruncate(td->bar2_fd, TD_BAR2_SIZE), ==, 0);
    bar2.mmap_fd = td->bar2_fd;

    td->ctx = vus_ctx_new("test-dev", td);
    g_assert_nonnull(td->ctx);
    vus_ctx_set_log(td->ctx, td_log, VUS_LOG_DEBUG);
    if (max_xfer) {
        g_assert_cmpint(vus_ctx_set_max_data_xfer_size(td->ctx, max_xfer),
                        ==, 0);
    }
    if (limits) {
        g_assert_cmpint(vus_ctx_set_client_limits(td->ctx, limits), ==, 0);
    }
    g_assert_cmpint(vus_pci_setup(td->ctx, &ids), ==, 0);
    g_assert_cmpint(vus_setup_region(td->ctx, VFIO_PCI_BAR0_REGION_INDEX,
                                     &bar0), ==, 0);
    g_assert_cmpint(vus_setup_region(td->ctx, VFIO_PCI_BAR2_REGION_INDEX,
                                     &bar2), ==, 0);
    g_assert_cmpint(vus_setup_irqs(td->ctx, VFIO_PCI_INTX_IRQ_INDEX, 1), ==,
                    0);
    g_assert_cmpint(vus_setup_irqs(td->ctx, VFIO_PCI_MSI_IRQ_INDEX, 1), ==, 0);
    g_assert_cmpint(vus_setup_irqs(td->ctx, VFIO_PCI_MSIX_IRQ_INDEX,
                                   TD_MSIX_VECS), ==, 0);
    g_assert_cmpint(vus_pci_add_msi_cap(td->ctx, 1), >, 0);
    g_assert_cmpint(vus_pci_add_msix_cap(td->ctx, TD_MSIX_VECS, 0, 0x800, 0,
                                         0xc00), >, 0);
    g_assert_cmpint(vus_setup_dma(td->ctx, td_dma_map, td_dma_unmap), ==, 0);
    vus_setup_reset(td->ctx, td_reset);
    vus_ctx_set_client_cb(td->ctx, td_client);
    if (mig_flags) {
        g_assert_cmpint(vus_setup_migration(td->ctx, &mig), ==, 0);
    }
    g_assert_cmpint(vus_ctx_realize(td->ctx, td->path), ==, 0);
    g_assert_cmpint(vus_ctx_start(td->ctx), ==, 0);
    return td;
}

TestDev *td_new_full(uint64_t mig_flags, uint32_t max_xfer, bool zero_copy)
{
    return td_create(mig_flags, max_xfer, zero_copy, NULL);
}

TestDev *td_new_limits(uint64_t mig_flags, const VusClientLimits *limits)
{
    return td_create(mig_flags, 0, false, limits);
}

TestDev *td_new(uint64_t mig_flags)
{
    return td_new_full(mig_flags, 0, false);
}

void td_free(TestDev *td)
{
    vus_ctx_free(td->ctx);
    /* The library removed the socket; the directory is ours. */
    g_assert_false(g_file_test(td->path, G_FILE_TEST_EXISTS));
    rmdir(td->dir);
    close(td->bar2_fd);
    g_array_unref(td->arcs);
    g_byte_array_unref(td->incoming);
    g_string_free(td->log, TRUE);
    g_mutex_clear(&td->lock);
    g_free(td->path);
    g_free(td->dir);
    g_free(td);
}

GArray *td_take_arcs(TestDev *td)
{
    GArray *arcs;

    g_mutex_lock(&td->lock);
    arcs = td->arcs;
    td->arcs = g_array_new(false, false, sizeof(TestArc));
    g_mutex_unlock(&td->lock);
    return arcs;
}

void td_fail_arc(TestDev *td, uint32_t from, uint32_t to, int err)
{
    g_mutex_lock(&td->lock);
    td->fail_from = from;
    td->fail_to = to;
    td->fail_errno = err;
    g_mutex_unlock(&td->lock);
}

void td_wait_disconnected(TestDev *td)
{
    for (int i = 0; i < 1000; i++) {
        bool connected;

        g_mutex_lock(&td->lock);
        connected = td->connected;
        g_mutex_unlock(&td->lock);
        if (!connected) {
            return;
        }
        g_usleep(5 * 1000);
    }
    g_assert_not_reached();
}
