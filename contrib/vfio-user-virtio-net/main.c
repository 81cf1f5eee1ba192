/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * vfio-user-virtio-net: a virtio 1.x network device (modern PCI layout,
 * one RX/TX pair of split virtqueues) served over vfio-user, whose
 * frames loop back from TX to RX, migratable with the device-context
 * design of the vfio-virtio driver (seed 001).  See
 * docs/devel/vfio-user-virtio-net.rst; the migration stream is in
 * docs/interop/virtio-net-migration.rst.
 *
 * Threads: the library's service thread runs every callback (BAR
 * accesses, FSM arcs, migration data); the worker thread (queue.c)
 * moves frames.  VnetDevice.lock orders them.
 */
#include "vfio-user-virtio-net.h"
#include "device-server.h"
#include "qemu/cutils.h"

void vnet_log_needs_reset(VnetDevice *d, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    vus_log(d->ctx, VUS_LOG_WARN, "device needs a reset: %s", msg);
    d->state.status |= VIRTIO_STATUS_NEEDS_RESET;
    d->state.isr |= VIRTIO_ISR_CONFIG;
    d->state.config_generation++;
    if (d->state.msix_config == VIRTIO_MSI_NO_VECTOR ||
        vus_irq_trigger(d->ctx, VFIO_PCI_MSIX_IRQ_INDEX,
                        d->state.msix_config) < 0) {
        vus_irq_trigger(d->ctx, VFIO_PCI_INTX_IRQ_INDEX, 0);
    }
}

/* Power-on values of the context; MAC and filter table are kept. */
void vnet_state_reset(VnetDevice *d, VnetState *s)
{
    s->driver_features = 0;
    s->dfselect = s->gfselect = 0;
    s->msix_config = VIRTIO_MSI_NO_VECTOR;
    s->queue_select = 0;
    s->status = 0;
    s->isr = 0;
    s->config_generation++;
    for (unsigned i = 0; i < VNET_NUM_QUEUES; i++) {
        memset(&s->q[i], 0, sizeof(s->q[i]));
        s->q[i].size = d->queue_max;
        s->q[i].msix_vector = VIRTIO_MSI_NO_VECTOR;
    }
    s->link_status = VIRTIO_NET_S_LINK_UP;
}

static int vnet_reset(void *opaque)
{
    VnetDevice *d = opaque;

    vnet_migration_reset(d);
    g_mutex_lock(&d->lock);
    vnet_state_reset(d, &d->state);
    g_mutex_unlock(&d->lock);
    return 0;
}

/* ---- Common configuration ---- */

static void put_le(uint8_t *p, uint64_t v, unsigned size)
{
    for (unsigned i = 0; i < size; i++) {
        p[i] = v >> (8 * i);
    }
}

static uint64_t get_le(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;

    for (unsigned i = size; i-- > 0;) {
        v = v << 8 | p[i];
    }
    return v;
}

static VnetQueue *selected_queue(VnetState *s)
{
    return s->queue_select < VNET_NUM_QUEUES ? &s->q[s->queue_select] : NULL;
}

/* The common configuration as the driver reads it; lock held. */
static void common_image(VnetDevice *d, uint8_t *img)
{
    VnetState *s = &d->state;
    VnetQueue *q = selected_queue(s);

    memset(img, 0, VIRTIO_COMMON_SIZE);
    put_le(img + VIRTIO_COMMON_DFSELECT, s->dfselect, 4);
    put_le(img + VIRTIO_COMMON_DF, s->dfselect < 2 ?
           d->device_features >> (32 * s->dfselect) : 0, 4);
    put_le(img + VIRTIO_COMMON_GFSELECT, s->gfselect, 4);
    put_le(img + VIRTIO_COMMON_GF, s->gfselect < 2 ?
           s->driver_features >> (32 * s->gfselect) : 0, 4);
    put_le(img + VIRTIO_COMMON_MSIX, s->msix_config, 2);
    put_le(img + VIRTIO_COMMON_NUMQ, VNET_NUM_QUEUES, 2);
    img[VIRTIO_COMMON_STATUS] = s->status;
    img[VIRTIO_COMMON_CFGGENERATION] = s->config_generation;
    put_le(img + VIRTIO_COMMON_Q_SELECT, s->queue_select, 2);
    if (q) {
        put_le(img + VIRTIO_COMMON_Q_SIZE, q->size, 2);
        put_le(img + VIRTIO_COMMON_Q_MSIX, q->msix_vector, 2);
        put_le(img + VIRTIO_COMMON_Q_ENABLE, q->enabled, 2);
        put_le(img + VIRTIO_COMMON_Q_NOFF, s->queue_select, 2);
        put_le(img + VIRTIO_COMMON_Q_DESC, q->desc, 8);
        put_le(img + VIRTIO_COMMON_Q_DRIVER, q->driver, 8);
        put_le(img + VIRTIO_COMMON_Q_DEVICE, q->device, 8);
    }
}

/*
 * The status handshake: the driver only adds bits; 0 resets.
 * FEATURES_OK sticks only when the features are acceptable (VERSION_1,
 * nothing the device did not offer), which the driver checks by reading
 * the status back.  NEEDS_RESET is the device's to set.
 */
static void write_status(VnetDevice *d, uint8_t val)
{
    VnetState *s = &d->state;
    uint8_t add = val & ~s->status & ~VIRTIO_STATUS_NEEDS_RESET;

    if (!val) {
        vnet_state_reset(d, s);
        return;
    }
    if (add & VIRTIO_STATUS_FEATURES_OK &&
        ((s->driver_features & ~d->device_features) ||
         !(s->driver_features & (1ull << VIRTIO_F_VERSION_1)))) {
        vus_log(d->ctx, VUS_LOG_WARN, "features 0x%" PRIx64 " refused (the "
                "device offers 0x%" PRIx64 " and needs VERSION_1)",
                s->driver_features, d->device_features);
        add &= ~VIRTIO_STATUS_FEATURES_OK;
    }
    if (add & VIRTIO_STATUS_DRIVER_OK &&
        !((s->status | add) & VIRTIO_STATUS_FEATURES_OK)) {
        vus_log(d->ctx, VUS_LOG_WARN, "DRIVER_OK without FEATURES_OK");
        add |= VIRTIO_STATUS_NEEDS_RESET;
    }
    s->status |= add;
    if (add & VIRTIO_STATUS_DRIVER_OK) {
        vnet_kick(d);
    }
}

static bool queue_size_valid(VnetDevice *d, uint64_t v)
{
    return v && v <= d->queue_max && !(v & (v - 1));
}

/* Apply field @off of @img (a write touched it); lock held. */
static void common_apply(VnetDevice *d, unsigned off, const uint8_t *img)
{
    VnetState *s = &d->state;
    VnetQueue *q = selected_queue(s);
    bool q_writable = q && !q->enabled &&
                      !(s->status & VIRTIO_STATUS_DRIVER_OK);
    uint64_t v;

    switch (off) {
    case VIRTIO_COMMON_DFSELECT:
        s->dfselect = get_le(img + off, 4);
        break;
    case VIRTIO_COMMON_GFSELECT:
        s->gfselect = get_le(img + off, 4);
        break;
    case VIRTIO_COMMON_GF:
        if (s->gfselect < 2 && !(s->status & VIRTIO_STATUS_FEATURES_OK)) {
            unsigned shift = 32 * s->gfselect;

            s->driver_features = (s->driver_features &
                                  ~(0xffffffffull << shift)) |
                                 get_le(img + off, 4) << shift;
        }
        break;
    case VIRTIO_COMMON_MSIX:
        s->msix_config = get_le(img + off, 2);
        break;
    case VIRTIO_COMMON_STATUS:
        write_status(d, img[off]);
        break;
    case VIRTIO_COMMON_Q_SELECT:
        s->queue_select = get_le(img + off, 2);
        break;
    case VIRTIO_COMMON_Q_SIZE:
        v = get_le(img + off, 2);
        if (q_writable && queue_size_valid(d, v)) {
            q->size = v;
        }
        break;
    case VIRTIO_COMMON_Q_MSIX:
        if (q) {
            q->msix_vector = get_le(img + off, 2);
        }
        break;
    case VIRTIO_COMMON_Q_ENABLE:
        /* Only 1 may be written; a queue is disabled by a reset. */
        if (q_writable && get_le(img + off, 2) == 1) {
            q->enabled = 1;
        }
        break;
    case VIRTIO_COMMON_Q_DESC:
    case VIRTIO_COMMON_Q_DRIVER:
    case VIRTIO_COMMON_Q_DEVICE:
        if (q_writable) {
            uint64_t *field = off == VIRTIO_COMMON_Q_DESC ? &q->desc :
                              off == VIRTIO_COMMON_Q_DRIVER ? &q->driver :
                              &q->device;

            *field = get_le(img + off, 8);
        }
        break;
    default:
        break;      /* read-only fields */
    }
}

static const uint8_t common_fields[] = {
    VIRTIO_COMMON_DFSELECT, VIRTIO_COMMON_DF, VIRTIO_COMMON_GFSELECT,
    VIRTIO_COMMON_GF, VIRTIO_COMMON_MSIX, VIRTIO_COMMON_NUMQ,
    VIRTIO_COMMON_STATUS, VIRTIO_COMMON_CFGGENERATION, VIRTIO_COMMON_Q_SELECT,
    VIRTIO_COMMON_Q_SIZE, VIRTIO_COMMON_Q_MSIX, VIRTIO_COMMON_Q_ENABLE,
    VIRTIO_COMMON_Q_NOFF, VIRTIO_COMMON_Q_DESC, VIRTIO_COMMON_Q_DRIVER,
    VIRTIO_COMMON_Q_DEVICE, VIRTIO_COMMON_SIZE,
};

/* Merge the written bytes into the current image, apply each field hit. */
static void common_write(VnetDevice *d, unsigned off, const uint8_t *buf,
                         size_t count)
{
    uint8_t img[VIRTIO_COMMON_SIZE];

    common_image(d, img);
    memcpy(img + off, buf, count);
    for (unsigned i = 0; i + 1 < sizeof(common_fields); i++) {
        if (common_fields[i] < off + count && common_fields[i + 1] > off) {
            common_apply(d, common_fields[i], img);
        }
    }
}

static void devcfg_image(VnetDevice *d, uint8_t *img)
{
    memset(img, 0, VNET_DEVCFG_SIZE);
    memcpy(img + VIRTIO_NET_CFG_MAC, d->state.mac, VNET_MAC_LEN);
    put_le(img + VIRTIO_NET_CFG_STATUS, d->state.link_status, 2);
    put_le(img + VIRTIO_NET_CFG_MAX_VQ_PAIRS, 1, 2);
    put_le(img + VIRTIO_NET_CFG_MTU, 1500, 2);
}

static ssize_t vnet_bar_access(void *opaque, uint32_t region, uint64_t offset,
                               void *buf, size_t count, bool is_write)
{
    VnetDevice *d = opaque;
    uint8_t img[VNET_DEVCFG_SIZE > VIRTIO_COMMON_SIZE ?
                VNET_DEVCFG_SIZE : VIRTIO_COMMON_SIZE];

    g_mutex_lock(&d->lock);
    if (offset + count <= VNET_COMMON_OFF + VIRTIO_COMMON_SIZE) {
        if (is_write) {
            common_write(d, offset - VNET_COMMON_OFF, buf, count);
        } else {
            common_image(d, img);
            memcpy(buf, img + offset - VNET_COMMON_OFF, count);
        }
    } else if (offset >= VNET_ISR_OFF &&
               offset + count <= VNET_ISR_OFF + VNET_ISR_SIZE) {
        if (!is_write) {
            /* Reading the ISR clears it. */
            memset(buf, 0, count);
            if (offset == VNET_ISR_OFF) {
                *(uint8_t *)buf = d->state.isr;
                d->state.isr = 0;
            }
        }
    } else if (offset >= VNET_DEVCFG_OFF &&
               offset + count <= VNET_DEVCFG_OFF + VNET_DEVCFG_SIZE) {
        if (!is_write) {
            devcfg_image(d, img);
            memcpy(buf, img + offset - VNET_DEVCFG_OFF, count);
        }
    } else if (offset >= VNET_NOTIFY_OFF &&
               offset + count <= VNET_NOTIFY_OFF + VNET_NOTIFY_SIZE) {
        /* Accepted in every state: a stopped device looks when it runs. */
        if (is_write) {
            vnet_kick(d);
        } else {
            memset(buf, 0, count);
        }
    } else if (!is_write) {
        /* Gaps, and the MSI-X table and PBA, which the client emulates. */
        memset(buf, 0, count);
    }
    g_mutex_unlock(&d->lock);
    return count;
}

/* ---- Set-up ---- */

static void vnet_dma_map(void *opaque, const VusDmaRegion *region)
{
    VnetDevice *d = opaque;

    g_mutex_lock(&d->lock);
    d->nr_maps++;
    vnet_kick(d);
    g_mutex_unlock(&d->lock);
}

/* The worker copies under the lock: once we hold it, it is not in a copy. */
static void vnet_dma_unmap(void *opaque, const VusDmaRegion *region)
{
    VnetDevice *d = opaque;

    g_mutex_lock(&d->lock);
    d->nr_maps--;
    g_mutex_unlock(&d->lock);
}

static int add_virtio_cap(VnetDevice *d, uint8_t type, uint32_t off,
                          uint32_t len)
{
    uint8_t body[VIRTIO_PCI_NOTIFY_CAP_LEN - 2] = { 0 };
    size_t size = type == VIRTIO_PCI_CAP_NOTIFY_CFG ?
                  VIRTIO_PCI_NOTIFY_CAP_LEN : VIRTIO_PCI_CAP_LEN;

    /* After id and next: cap_len, cfg_type, bar, id, padding, offset, length */
    body[0] = size;
    body[1] = type;
    body[2] = VNET_BAR;
    put_le(body + 6, off, 4);
    put_le(body + 10, len, 4);
    if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
        put_le(body + 14, VNET_NOTIFY_MULT, 4);
    }
    return vus_pci_add_cap(d->ctx, PCI_CAP_ID_VNDR, body, size - 2, NULL);
}

static bool vnet_setup(VnetDevice *d, const char *socket_path, Error **errp)
{
    VusPciIds ids = {
        .vendor_id = VIRTIO_PCI_VENDOR_ID,
        .device_id = VIRTIO_PCI_DEVICE_ID_NET,
        .subsys_vendor_id = VIRTIO_PCI_VENDOR_ID,
        .subsys_id = 0x0040,
        .class_code = VIRTIO_PCI_CLASS_NET,
        .revision = 1,              /* modern only */
        .config_size = 256,
    };
    VusRegionDesc bar = {
        .size = VNET_BAR_SIZE,
        .flags = VUS_REGION_READ | VUS_REGION_WRITE,
        .access = vnet_bar_access,
        .mmap_fd = -1,
    };
    VusMigrationOps mig = vnet_migration_ops;
    int ret;

    mig.flags = d->mig_flags;
    d->ctx = devserver_ctx_new(d->name, d, VFIO_USER_DEF_MAX_XFER, errp);
    if (!d->ctx) {
        return false;
    }
    if ((ret = vus_pci_setup(d->ctx, &ids)) < 0 ||
        (ret = vus_setup_region(d->ctx, VNET_BAR, &bar)) < 0 ||
        (ret = add_virtio_cap(d, VIRTIO_PCI_CAP_COMMON_CFG, VNET_COMMON_OFF,
                              VIRTIO_COMMON_SIZE)) < 0 ||
        (ret = add_virtio_cap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, VNET_NOTIFY_OFF,
                              VNET_NOTIFY_SIZE)) < 0 ||
        (ret = add_virtio_cap(d, VIRTIO_PCI_CAP_ISR_CFG, VNET_ISR_OFF,
                              VNET_ISR_SIZE)) < 0 ||
        (ret = add_virtio_cap(d, VIRTIO_PCI_CAP_DEVICE_CFG, VNET_DEVCFG_OFF,
                              VIRTIO_NET_CFG_SIZE)) < 0 ||
        (ret = vus_setup_irqs(d->ctx, VFIO_PCI_INTX_IRQ_INDEX, 1)) < 0 ||
        (ret = vus_pci_add_msix_cap(d->ctx, VNET_MSIX_VECTORS, VNET_BAR,
                                    VNET_MSIX_TABLE, VNET_BAR,
                                    VNET_MSIX_PBA)) < 0 ||
        (ret = vus_setup_irqs(d->ctx, VFIO_PCI_MSIX_IRQ_INDEX,
                              VNET_MSIX_VECTORS)) < 0 ||
        (ret = vus_setup_dma(d->ctx, vnet_dma_map, vnet_dma_unmap)) < 0 ||
        (ret = vus_setup_migration(d->ctx, &mig)) < 0) {
        return devserver_setup_failed(d->name, ret, errp);
    }
    return devserver_realize(d->ctx, d->name, vnet_reset, socket_path, errp);
}

static bool parse_mac(const char *arg, uint8_t *mac)
{
    unsigned v[VNET_MAC_LEN];
    char end;

    if (sscanf(arg, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &end) != VNET_MAC_LEN) {
        return false;
    }
    for (int i = 0; i < VNET_MAC_LEN; i++) {
        if (v[i] > 0xff) {
            return false;
        }
        mac[i] = v[i];
    }
    return !(mac[0] & 1);       /* a unicast address */
}

/* @n locally administered unicast addresses, the same for the same seed. */
static void make_filters(VnetState *s, uint32_t n, uint64_t seed)
{
    s->nr_filters = n;
    s->filters = g_malloc((size_t)n * VNET_MAC_LEN + 1);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t z = seed * 0x9e3779b97f4a7c15ull + i + 1;
        uint8_t *mac = s->filters + (size_t)i * VNET_MAC_LEN;

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        mac[0] = 0x02;
        for (int j = 1; j < VNET_MAC_LEN; j++) {
            mac[j] = z >> (8 * j);
        }
    }
}

int main(int argc, char **argv)
{
    g_autofree char *socket_path = NULL;
    g_autofree char *name = NULL;
    g_autofree char *mac = NULL;
    gint64 nr_filters = 0, queue_size = VNET_QUEUE_MAX, seed = 1;
    gint64 precopy_interval = 100, drop_frame = -1;
    g_autofree char *stream_fault = NULL;
    gboolean no_precopy = false, no_p2p = false;
    GOptionEntry entries[] = {
        DEVSERVER_OPT_SOCKET(socket_path),
        { "mac", 0, 0, G_OPTION_ARG_STRING, &mac,
          "the device's MAC address (default 52:54:00:12:34:56)", "MAC" },
        { "mac-filters", 0, 0, G_OPTION_ARG_INT64, &nr_filters,
          "entries in the MAC filter table, made up from --seed (default 0, "
          "at most 4194304): they make the device context bigger, 6 bytes "
          "each", "N" },
        { "seed", 0, 0, G_OPTION_ARG_INT64, &seed,
          "seed of the filter table (default 1)", "N" },
        { "queue-size", 0, 0, G_OPTION_ARG_INT64, &queue_size,
          "largest queue size offered, a power of two up to 256 (default "
          "256)", "N" },
        { "precopy-interval", 0, 0, G_OPTION_ARG_INT64, &precopy_interval,
          "in PRE_COPY, after the device context was read, report no data "
          "for MS milliseconds before reading it again (default 100)", "MS" },
        DEVSERVER_OPT_NO_PRECOPY(no_precopy),
        DEVSERVER_OPT_NO_P2P(no_p2p),
        { "drop-frame", 0, 0, G_OPTION_ARG_INT64, &drop_frame,
          "lose the N-th frame (from 0) the driver transmits, to show that "
          "the guest notices (a test aid)", "N" },
        { "x-stream-fault", 0, 0, G_OPTION_ARG_STRING, &stream_fault,
          "make the migration stream this device sends wrong, to test the "
          "receiving side: optional-tag, mandatory-tag, partial-part, "
          "size-mismatch or truncated", "KIND" },
        DEVSERVER_OPT_NAME(name, "vfio-user-virtio-net"),
        { NULL }
    };
    VnetDevice *d = g_new0(VnetDevice, 1);
    Error *err = NULL;
    int ret = 1;

    g_mutex_init(&d->lock);
    g_cond_init(&d->cond);
    if (!devserver_parse_options("vfio-user-virtio-net",
                                 "- a migratable vfio-user virtio-net device",
                                 entries, &socket_path, &argc, &argv)) {
        goto out;
    }
    d->name = name ? name : "vfio-user-virtio-net";
    if (!parse_mac(mac ? mac : "52:54:00:12:34:56", d->initial_mac)) {
        error_report("--mac '%s': expected a unicast address such as "
                     "52:54:00:12:34:56", mac);
        goto out;
    }
    if (nr_filters < 0 || nr_filters > VNET_MAX_FILTERS) {
        error_report("--mac-filters %" PRId64 ": expected 0 to %u",
                     (int64_t)nr_filters, VNET_MAX_FILTERS);
        goto out;
    }
    if (queue_size < 2 || queue_size > VNET_QUEUE_MAX ||
        (queue_size & (queue_size - 1))) {
        error_report("--queue-size %" PRId64 ": expected a power of two "
                     "from 2 to %u", (int64_t)queue_size, VNET_QUEUE_MAX);
        goto out;
    }
    if (precopy_interval < 0 || precopy_interval > 60000) {
        error_report("--precopy-interval %" PRId64 ": expected 0 to 60000 "
                     "milliseconds", (int64_t)precopy_interval);
        goto out;
    }
    if (stream_fault) {
        static const char *const kinds[] = {
            "", "optional-tag", "mandatory-tag", "partial-part",
            "size-mismatch", "truncated",
        };

        for (unsigned i = 1; i < G_N_ELEMENTS(kinds); i++) {
            if (!strcmp(stream_fault, kinds[i])) {
                d->stream_fault = i;
            }
        }
        if (!d->stream_fault) {
            error_report("--x-stream-fault '%s': expected optional-tag, "
                         "mandatory-tag, partial-part, size-mismatch or "
                         "truncated", stream_fault);
            goto out;
        }
    }
    d->queue_max = queue_size;
    d->precopy_interval_ms = precopy_interval;
    d->drop_frame = drop_frame;
    d->device_features = 1ull << VIRTIO_F_VERSION_1 |
                         1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_STATUS;
    d->mig_flags = devserver_mig_flags(no_precopy, no_p2p);
    memcpy(d->state.mac, d->initial_mac, VNET_MAC_LEN);
    make_filters(&d->state, nr_filters, seed);
    vnet_build_filter(&d->state);
    vnet_state_reset(d, &d->state);
    d->running = true;

    if (!vnet_setup(d, socket_path, &err)) {
        error_report_err(err);
        goto out;
    }
    d->worker = g_thread_new("vnet-worker", vnet_worker, d);
    ret = devserver_run(d->ctx);

    g_mutex_lock(&d->lock);
    d->quit = true;
    g_cond_broadcast(&d->cond);
    g_mutex_unlock(&d->lock);
    g_thread_join(d->worker);

out:
    vus_ctx_free(d->ctx);
    vnet_migration_reset(d);
    vnet_state_free_filters(&d->state);
    g_mutex_clear(&d->lock);
    g_cond_clear(&d->cond);
    g_free(d);
    return ret;
}
