/*
 * vfio-user-dma: a DMA engine with its own device memory, served over
 * vfio-user with live migration.  See docs/devel/vfio-user-dma.rst and
 * the register map in include/hw/misc/vfio-user-dma-regs.h.
 *
 * Threads: the library's service thread runs every callback (region
 * accesses, FSM arcs, migration data); the DMA thread moves data when
 * the doorbell rings; the dirtying thread rewrites pages at the
 * --dirty-rate.  VdmaDevice.lock orders them (see vfio-user-dma.h).
 */
#include "vfio-user-dma.h"
#include "device-server.h"
#include "qemu/bitmap.h"
#include "qemu/cutils.h"

#include <math.h>
#include <sys/mman.h>

/* ---- Run control ---- */

/* Stop the DMA engine and the dirtying: wait for a transfer in flight. */
void vdma_quiesce(VdmaDevice *d)
{
    g_mutex_lock(&d->lock);
    d->running = false;
    while (d->dma_pending || d->dma_busy) {
        g_cond_wait(&d->cond, &d->lock);
    }
    g_mutex_unlock(&d->lock);
}

void vdma_resume(VdmaDevice *d)
{
    g_mutex_lock(&d->lock);
    d->running = true;
    g_cond_broadcast(&d->cond);
    g_mutex_unlock(&d->lock);
}

/* Power-on state: registers cleared, memory refilled from the seed. */
void vdma_reset_state(VdmaDevice *d)
{
    vdma_quiesce(d);
    vdma_migration_reset(d);
    g_mutex_lock(&d->lock);
    memset(&d->regs, 0, sizeof(d->regs));
    d->seed = d->initial_seed;
    d->dirty_steps = 0;
    d->last_check_first = UINT64_MAX;
    vdma_fill_all(d);
    bitmap_zero(d->foreign, d->nr_pages);
    g_mutex_unlock(&d->lock);
    vdma_resume(d);
}

static int vdma_reset(void *opaque)
{
    vdma_reset_state(opaque);
    return 0;
}

/* ---- The DMA engine ---- */

static void vdma_raise_irq(VdmaDevice *d)
{
    if (vus_irq_trigger(d->ctx, VFIO_PCI_MSIX_IRQ_INDEX, 0) == 0) {
        return;
    }
    vus_irq_trigger(d->ctx, VFIO_PCI_INTX_IRQ_INDEX, 0);
}

/* Move one transfer; the lock is not held.  Returns 0 or an errno. */
static int vdma_transfer(VdmaDevice *d, const VdmaRegs *r)
{
    bool to_ram = r->ctrl & VDMA_CTRL_DIR_TO_RAM;
    uint64_t dev_off = to_ram ? r->src : r->dst;
    uint64_t iova = to_ram ? r->dst : r->src;
    uint8_t *dev = d->mem + dev_off;
    int ret;

    if (r->len == 0 || dev_off >= d->mem_size ||
        r->len > d->mem_size - dev_off) {
        return EINVAL;
    }
    if (r->ctrl & VDMA_CTRL_DIRECT) {
        void *ram = vus_dma_addr(d->ctx, iova, r->len,
                                 to_ram ? VUS_DMA_WRITE : VUS_DMA_READ);

        if (!ram) {
            return errno ? errno : EFAULT;
        }
        if (to_ram) {
            memcpy(ram, dev, r->len);
            /* Our own mapping bypasses the library: log it ourselves. */
            ret = vus_dma_mark_dirty(d->ctx, iova, r->len);
        } else {
            memcpy(dev, ram, r->len);
            ret = 0;
        }
    } else if (to_ram) {
        ret = vus_dma_write(d->ctx, iova, dev, r->len);
    } else {
        ret = vus_dma_read(d->ctx, iova, dev, r->len);
    }
    if (!to_ram) {
        vdma_mark_changed(d, dev_off, r->len, true);
    }
    return ret < 0 ? -ret : 0;
}

static gpointer vdma_dma_thread(gpointer opaque)
{
    VdmaDevice *d = opaque;

    g_mutex_lock(&d->lock);
    for (;;) {
        VdmaRegs job;
        int err;

        while (!d->quit && !d->dma_pending) {
            g_cond_wait(&d->cond, &d->lock);
        }
        if (d->quit) {
            break;
        }
        job = d->regs;
        d->dma_pending = false;
        d->dma_busy = true;
        d->dma_direct = job.ctrl & VDMA_CTRL_DIRECT;
        g_mutex_unlock(&d->lock);

        err = vdma_transfer(d, &job);

        g_mutex_lock(&d->lock);
        d->dma_busy = false;
        d->regs.status &= ~VDMA_STATUS_BUSY;
        if (err) {
            d->regs.status |= VDMA_STATUS_ERROR;
            d->regs.error = err;
        } else {
            d->regs.status |= VDMA_STATUS_DONE;
            d->regs.completed++;
        }
        if (d->regs.ctrl & VDMA_CTRL_IRQ_ENABLE) {
            d->regs.status |= VDMA_STATUS_IRQ;
            vdma_raise_irq(d);
        }
        g_cond_broadcast(&d->cond);
    }
    g_mutex_unlock(&d->lock);
    return NULL;
}

/* Called with the lock held, from a doorbell write. */
static void vdma_ring(VdmaDevice *d)
{
    if (d->regs.status & VDMA_STATUS_BUSY) {
        return;     /* one transfer at a time: the driver waits for DONE */
    }
    d->regs.status &= ~(VDMA_STATUS_DONE | VDMA_STATUS_ERROR);
    if (!d->running) {
        d->regs.status |= VDMA_STATUS_ERROR;
        d->regs.error = EAGAIN;
        return;
    }
    d->regs.status |= VDMA_STATUS_BUSY;
    d->dma_pending = true;
    g_cond_broadcast(&d->cond);
}

/* ---- Background dirtying ---- */

static gpointer vdma_dirty_thread(gpointer opaque)
{
    VdmaDevice *d = opaque;
    int64_t last = get_clock_ns();
    double owed = 0;

    g_mutex_lock(&d->lock);
    while (!d->quit) {
        gint64 until = g_get_monotonic_time() + 5000;
        int64_t now;

        g_cond_wait_until(&d->cond, &d->lock, until);
        now = get_clock_ns();
        if (!d->running) {
            last = now;
            owed = 0;
            continue;
        }
        /* At most 100 ms of debt, so a stall is not followed by a burst. */
        owed = MIN(owed + d->dirty_pages_per_sec * (now - last) / 1e9,
                   MAX(d->dirty_pages_per_sec / 10, 1));
        last = now;
        while (owed >= 1 && d->running && !d->quit) {
            /* Small batches keep the lock short and the arcs prompt. */
            for (int i = 0; owed >= 1 && i < 64; i++, owed--) {
                uint64_t page = vdma_dirty_page(d->seed, d->dirty_steps,
                                                d->nr_pages);

                vdma_fill_page(d, page, d->dirty_steps + 1);
                __atomic_fetch_and(&d->foreign[BIT_WORD(page)],
                                   ~BIT_MASK(page), __ATOMIC_SEQ_CST);
                vdma_mark_changed(d, page * VDMA_PAGE_SIZE, VDMA_PAGE_SIZE,
                                  false);
                d->dirty_steps++;
            }
            g_mutex_unlock(&d->lock);
            g_mutex_lock(&d->lock);
        }
    }
    g_mutex_unlock(&d->lock);
    return NULL;
}

/* ---- Regions ---- */

/* Register values as the driver sees them; lock held. */
static uint64_t vdma_reg_value(VdmaDevice *d, uint32_t reg)
{
    switch (reg) {
    case VDMA_REG_ID:
        return VDMA_ID_VALUE | (uint64_t)VDMA_VERSION_VALUE << 32;
    case VDMA_REG_MEM_SIZE:
        return d->mem_size;
    case VDMA_REG_SRC:
        return d->regs.src;
    case VDMA_REG_DST:
        return d->regs.dst;
    case VDMA_REG_LEN:
        return d->regs.len;
    case VDMA_REG_CTRL:
        return d->regs.ctrl;        /* the DOORBELL half reads as zero */
    case VDMA_REG_STATUS:
        return d->regs.status | (uint64_t)d->regs.error << 32;
    case VDMA_REG_COMPLETED:
        return d->regs.completed;
    case VDMA_REG_SEED:
        return d->seed;
    case VDMA_REG_DIRTY_STEPS:
        return d->dirty_steps;
    case VDMA_REG_CHECK: {
        uint64_t first;
        uint64_t bad = vdma_check(d, d->seed, d->dirty_steps, &first);

        d->last_check_first = first;
        return bad;
    }
    case VDMA_REG_CHECK_FIRST:
        return d->last_check_first;
    case VDMA_REG_CHECKSUM:
        return vdma_checksum(d->mem, d->mem_size);
    case VDMA_REG_FOREIGN:
        return vdma_count_bits(d->foreign, d->nr_pages);
    case VDMA_REG_SCRATCH:
        return d->regs.scratch;
    default:
        return 0;
    }
}

/* A write of @val (@size bytes at @offset inside 8-byte slot @reg). */
static void vdma_reg_write(VdmaDevice *d, uint32_t reg, uint32_t shift,
                           uint64_t val, uint64_t mask)
{
    uint64_t *field = NULL;

    switch (reg) {
    case VDMA_REG_SRC:
        field = &d->regs.src;
        break;
    case VDMA_REG_DST:
        field = &d->regs.dst;
        break;
    case VDMA_REG_LEN:
        field = &d->regs.len;
        break;
    case VDMA_REG_SCRATCH:
        field = &d->regs.scratch;
        break;
    case VDMA_REG_CTRL:
        /* Low half CTRL, high half the DOORBELL. */
        if (mask & 0xffffffffull) {
            d->regs.ctrl = (val << shift) & 0xffffffffull &
                           (VDMA_CTRL_DIR_TO_RAM | VDMA_CTRL_IRQ_ENABLE |
                            VDMA_CTRL_DIRECT);
        }
        if ((mask >> 32) && (((val << shift) >> 32) & VDMA_DOORBELL_GO)) {
            vdma_ring(d);
        }
        return;
    case VDMA_REG_STATUS:
        if (mask & 0xffffffffull) {
            d->regs.status &= ~((val << shift) & (VDMA_STATUS_DONE |
                                                  VDMA_STATUS_ERROR |
                                                  VDMA_STATUS_IRQ));
        }
        return;
    default:
        return;     /* read-only: ignored, as hardware does */
    }
    *field = (*field & ~mask) | ((val << shift) & mask);
}

static ssize_t vdma_regs_access(void *opaque, uint32_t region, uint64_t offset,
                                void *buf, size_t count, bool is_write)
{
    VdmaDevice *d = opaque;
    uint32_t reg = offset & ~7ull;
    uint32_t shift = (offset & 7) * 8;
    uint64_t val = 0, mask;

    if (offset >= VDMA_REG_END) {
        /* The MSI-X table and PBA live in the client; reads see zero. */
        if (!is_write) {
            memset(buf, 0, count);
        }
        return count;
    }
    if ((count != 4 && count != 8) || offset % count) {
        vus_log(d->ctx, VUS_LOG_WARN, "BAR0: %s of %zu bytes at 0x%" PRIx64
                " refused: registers take aligned 4- or 8-byte accesses",
                is_write ? "write" : "read", count, offset);
        return -EINVAL;
    }
    mask = (count == 8 ? ~0ull : 0xffffffffull) << shift;
    g_mutex_lock(&d->lock);
    if (is_write) {
        memcpy(&val, buf, count);
        vdma_reg_write(d, reg, shift, val, mask);
    } else {
        val = (vdma_reg_value(d, reg) & mask) >> shift;
        memcpy(buf, &val, count);
    }
    g_mutex_unlock(&d->lock);
    return count;
}

static ssize_t vdma_mem_access(void *opaque, uint32_t region, uint64_t offset,
                               void *buf, size_t count, bool is_write)
{
    VdmaDevice *d = opaque;

    if (is_write) {
        /* Memory handed out for migration is summed before it changes. */
        vdma_save_flush_sum(d);
        memcpy(d->mem + offset, buf, count);
        vdma_mark_changed(d, offset, count, true);
    } else {
        memcpy(buf, d->mem + offset, count);
    }
    return count;
}

static void vdma_dma_unmap(void *opaque, const VusDmaRegion *region)
{
    /*
     * A transfer through our own mapping holds a pointer into guest RAM:
     * let it finish.  The library's copy functions need no such care.
     */
    VdmaDevice *d = opaque;

    g_mutex_lock(&d->lock);
    while (d->dma_busy && d->dma_direct) {
        g_cond_wait(&d->cond, &d->lock);
    }
    g_mutex_unlock(&d->lock);
}

/* ---- Set-up ---- */

/*
 * Add FROM:TO (or FROM:TO:MS with @with_ms, MS at most a minute) of
 * option --@opt to @arcs.
 */
static bool parse_arc(const char *opt, const char *arg, bool with_ms,
                      VdmaArcs *arcs, Error **errp)
{
    g_auto(GStrv) parts = g_strsplit(arg, ":", 3);
    int from = -1, to = -1;
    guint64 ms = 0;

    if (arcs->n == VDMA_MAX_ARCS) {
        error_setg(errp, "--%s: at most %d arcs", opt, VDMA_MAX_ARCS);
        return false;
    }
    for (uint32_t s = 0; parts[0] && parts[1] && s < VFIO_DEVICE_STATE_NR;
         s++) {
        g_autofree char *name = g_ascii_strup(vus_mig_state_name(s), -1);
        g_autofree char *a = g_ascii_strup(parts[0], -1);
        g_autofree char *b = g_ascii_strup(parts[1], -1);

        g_strdelimit(a, "-", '_');
        g_strdelimit(b, "-", '_');
        if (!strcmp(a, name)) {
            from = s;
        }
        if (!strcmp(b, name)) {
            to = s;
        }
    }
    /* A known FROM and TO imply parts[1]. */
    if (from < 0 || to < 0 || !parts[2] != !with_ms ||
        (with_ms && !g_ascii_string_to_unsigned(parts[2], 10, 0, 60000, &ms,
                                                NULL))) {
        error_setg(errp, "--%s '%s': expected FROM:TO%s with states such "
                   "as RUNNING, STOP, STOP_COPY, PRE_COPY, RESUMING, "
                   "RUNNING_P2P, PRE_COPY_P2P%s", opt, arg,
                   with_ms ? ":MS" : "",
                   with_ms ? " and MS a number of milliseconds up to 60000"
                           : "");
        return false;
    }
    arcs->arc[arcs->n].from = from;
    arcs->arc[arcs->n].to = to;
    arcs->arc[arcs->n].ms = ms;
    arcs->n++;
    return true;
}

/* "5%" of memory per second, or a size per second ("64M"). */
static bool parse_dirty_rate(VdmaDevice *d, const char *arg, Error **errp)
{
    size_t len = strlen(arg);
    uint64_t bytes;

    if (len && arg[len - 1] == '%') {
        g_autofree char *num = g_strndup(arg, len - 1);
        char *end;
        double pct = g_ascii_strtod(num, &end);

        if (!*num || *end || !(pct >= 0) || pct > 10000) {
            error_setg(errp, "--dirty-rate '%s': not a percentage", arg);
            return false;
        }
        d->dirty_pages_per_sec = d->nr_pages * pct / 100;
        return true;
    }
    if (qemu_strtosz(arg, &bytes) < 0) {
        error_setg(errp, "--dirty-rate '%s': expected a percentage of memory "
                   "per second (5%%) or bytes per second (64M)", arg);
        return false;
    }
    d->dirty_pages_per_sec = (double)bytes / VDMA_PAGE_SIZE;
    return true;
}

/* Interrupts: INTx always, MSI-X unless @no_msix (INTx is then used). */
static int vdma_setup_irqs(VdmaDevice *d, bool no_msix)
{
    int ret = vus_setup_irqs(d->ctx, VFIO_PCI_INTX_IRQ_INDEX, 1);

    if (ret < 0 || no_msix) {
        return ret;
    }
    ret = vus_pci_add_msix_cap(d->ctx, VDMA_MSIX_VECTORS, VDMA_REGS_BAR,
                               VDMA_MSIX_TABLE, VDMA_REGS_BAR, VDMA_MSIX_PBA);
    if (ret < 0) {
        return ret;
    }
    return vus_setup_irqs(d->ctx, VFIO_PCI_MSIX_IRQ_INDEX, VDMA_MSIX_VECTORS);
}

/* A count from @min to @max for option --@opt, or false. */
static bool parse_count(const char *opt, const char *arg, guint64 min,
                        guint64 max, guint64 *out, Error **errp)
{
    if (!g_ascii_string_to_unsigned(arg, 10, min, max, out, NULL)) {
        error_setg(errp, "--%s '%s': expected a number from %" PRIu64
                   " to %" PRIu64, opt, arg, (uint64_t)min, (uint64_t)max);
        return false;
    }
    return true;
}

/* The per-client limits; options not given keep the library's defaults. */
static bool parse_limits(VdmaDevice *d, const char *maps, const char *bytes,
                         const char *requests, const char *timeout,
                         Error **errp)
{
    guint64 v;

    if (maps) {
        if (!parse_count("max-dma-maps", maps, 1, VFIO_USER_DEF_MAX_DMA_MAPS,
                         &v, errp)) {
            return false;
        }
        d->limits.max_dma_maps = v;
    }
    if (bytes && (qemu_strtosz(bytes, &d->limits.max_dma_bytes) < 0 ||
                  d->limits.max_dma_bytes < VDMA_PAGE_SIZE)) {
        error_setg(errp, "--max-dma-bytes '%s': expected a size of at "
                   "least 4K", bytes);
        return false;
    }
    if (requests) {
        if (!parse_count("max-dma-requests", requests, 1, 1024, &v, errp)) {
            return false;
        }
        d->limits.max_dma_requests = v;
    }
    if (timeout) {
        if (!parse_count("msg-timeout", timeout, 1, 3600 * 1000, &v, errp)) {
            return false;
        }
        d->limits.msg_timeout_ms = v;
    }
    return true;
}

/* --strict-regions: the states in which a running device takes accesses. */
#define VDMA_STRICT_STATES (1u << VFIO_DEVICE_STATE_RUNNING | \
                            1u << VFIO_DEVICE_STATE_RUNNING_P2P | \
                            1u << VFIO_DEVICE_STATE_PRE_COPY)

static bool vdma_setup(VdmaDevice *d, const char *socket_path,
                       uint64_t max_xfer, bool no_msix, Error **errp)
{
    VusPciIds ids = {
        .vendor_id = VDMA_PCI_VENDOR_ID,
        .device_id = VDMA_PCI_DEVICE_ID,
        .subsys_vendor_id = VDMA_PCI_VENDOR_ID,
        .subsys_id = VDMA_PCI_DEVICE_ID,
        .class_code = VDMA_PCI_CLASS,
        .config_size = 256,
    };
    VusRegionDesc regs = {
        .size = VDMA_REGS_SIZE,
        .flags = VUS_REGION_READ | VUS_REGION_WRITE,
        .access = vdma_regs_access,
        .mmap_fd = -1,
    };
    VusRegionDesc mem = {
        .size = d->mem_size,
        .flags = VUS_REGION_READ | VUS_REGION_WRITE | VUS_BAR_MEM64 |
                 VUS_BAR_PREFETCH,
        .access = vdma_mem_access,
        .mmap_fd = d->mem_fd,
    };
    VusMigrationOps mig = vdma_migration_ops;
    int ret;

    mig.flags = d->mig_flags;
    mig.no_dma_logging = d->no_dma_logging;
    if (d->no_extensions) {
        /* Without them the library offers neither extension. */
        mig.data_size = NULL;
        mig.precopy_info = NULL;
    }
    d->ctx = devserver_ctx_new(d->name, d, max_xfer, errp);
    if (!d->ctx) {
        return false;
    }
    if ((ret = vus_ctx_set_client_limits(d->ctx, &d->limits)) < 0 ||
        (d->strict_regions &&
         (ret = vus_ctx_set_region_states(d->ctx, VDMA_STRICT_STATES)) < 0) ||
        (ret = vus_pci_setup(d->ctx, &ids)) < 0 ||
        (ret = vus_setup_region(d->ctx, VDMA_REGS_BAR, &regs)) < 0 ||
        (ret = vus_setup_region(d->ctx, VDMA_MEM_BAR, &mem)) < 0 ||
        (ret = vdma_setup_irqs(d, no_msix)) < 0 ||
        (ret = vus_setup_dma(d->ctx, NULL, vdma_dma_unmap)) < 0 ||
        (ret = vus_setup_migration(d->ctx, &mig)) < 0) {
        return devserver_setup_failed(d->name, ret, errp);
    }
    return devserver_realize(d->ctx, d->name, vdma_reset, socket_path, errp);
}

static bool vdma_alloc_memory(VdmaDevice *d, Error **errp)
{
    d->mem_fd = memfd_create("vfio-user-dma-mem", MFD_CLOEXEC);
    if (d->mem_fd < 0) {
        error_setg_errno(errp, errno, "%s: memfd_create", d->name);
        return false;
    }
    if (ftruncate(d->mem_fd, d->mem_size) < 0) {
        error_setg_errno(errp, errno, "%s: sizing device memory to %" PRIu64
                         " bytes", d->name, d->mem_size);
        return false;
    }
    d->mem = mmap(NULL, d->mem_size, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_POPULATE, d->mem_fd, 0);
    if (d->mem == MAP_FAILED) {
        d->mem = NULL;
        error_setg_errno(errp, errno, "%s: mapping %" PRIu64 " bytes of "
                         "device memory", d->name, d->mem_size);
        return false;
    }
    d->pending = bitmap_new(d->nr_pages);
    d->foreign = bitmap_new(d->nr_pages);
    return true;
}

int main(int argc, char **argv)
{
    g_autofree char *socket_path = NULL;
    g_autofree char *mem_size_str = NULL;
    g_autofree char *dirty_rate = NULL;
    g_autofree char *state_rate = NULL;
    g_autofree char *max_xfer_str = NULL;
    g_autofree char *name = NULL;
    g_autofree char *max_dma_maps = NULL;
    g_autofree char *max_dma_bytes = NULL;
    g_autofree char *max_dma_requests = NULL;
    g_autofree char *msg_timeout = NULL;
    g_auto(GStrv) fail_arcs = NULL;
    g_auto(GStrv) delay_arcs = NULL;
    gint64 seed = 1;
    gboolean no_precopy = false, no_p2p = false, no_dma_logging = false;
    gboolean no_msix = false, strict_regions = false, no_extensions = false;
    GOptionEntry entries[] = {
        DEVSERVER_OPT_SOCKET(socket_path),
        { "mem-size", 'm', 0, G_OPTION_ARG_STRING, &mem_size_str,
          "device memory size, a power of two (default 64M)", "SIZE" },
        { "dirty-rate", 'd', 0, G_OPTION_ARG_STRING, &dirty_rate,
          "rewrite device memory in the background, as a percentage of it "
          "per second (5%) or bytes per second (64M)", "RATE" },
        { "state-rate", 0, 0, G_OPTION_ARG_STRING, &state_rate,
          "save and load migration state at most RATE bytes per second "
          "each way, as a device whose firmware moves its state "
          "(default: as fast as the host)", "RATE" },
        { "seed", 0, 0, G_OPTION_ARG_INT64, &seed,
          "seed of the device memory content (default 1)", "N" },
        DEVSERVER_OPT_NO_PRECOPY(no_precopy),
        DEVSERVER_OPT_NO_P2P(no_p2p),
        { "no-dma-logging", 0, 0, G_OPTION_ARG_NONE, &no_dma_logging,
          "do not offer DMA logging (the client must treat the device's "
          "DMA as always dirty)", NULL },
        { "no-msix", 0, 0, G_OPTION_ARG_NONE, &no_msix,
          "offer INTx only: completions interrupt through INTx", NULL },
        { "strict-regions", 0, 0, G_OPTION_ARG_NONE, &strict_regions,
          "refuse region access (REGION_READ/WRITE) in every migration "
          "state but RUNNING, RUNNING_P2P and PRE_COPY, as strict device "
          "servers do", NULL },
        { "no-extensions", 0, 0, G_OPTION_ARG_NONE, &no_extensions,
          "answer as a plain vfio-user 0.9.2 server: none of vmig's "
          "extensions (MIG_DATA_SIZE, precopy-info) and no P2P states",
          NULL },
        { "fail-arc", 0, 0, G_OPTION_ARG_STRING_ARRAY, &fail_arcs,
          "make the FSM arc FROM -> TO fail (repeatable)", "FROM:TO" },
        { "delay-arc", 0, 0, G_OPTION_ARG_STRING_ARRAY, &delay_arcs,
          "make the FSM arc FROM -> TO take MS milliseconds more, to widen "
          "races in tests (repeatable)", "FROM:TO:MS" },
        { "max-xfer", 0, 0, G_OPTION_ARG_STRING, &max_xfer_str,
          "largest data payload per message (default 1M)", "SIZE" },
        { "max-dma-maps", 0, 0, G_OPTION_ARG_STRING, &max_dma_maps,
          "DMA regions a client may map at once (default 1024, at most "
          "65535)", "N" },
        { "max-dma-bytes", 0, 0, G_OPTION_ARG_STRING, &max_dma_bytes,
          "bytes a client may map in all (default 1T)", "SIZE" },
        { "max-dma-requests", 0, 0, G_OPTION_ARG_STRING, &max_dma_requests,
          "DMA_READ/DMA_WRITE requests to the client outstanding at once "
          "(default 16)", "N" },
        { "msg-timeout", 0, 0, G_OPTION_ARG_STRING, &msg_timeout,
          "drop a client that stalls this long in the middle of a message "
          "or leaves a reply unread (default 10000)", "MS" },
        DEVSERVER_OPT_NAME(name, "vfio-user-dma"),
        { NULL }
    };
    VdmaDevice *d;
    Error *err = NULL;
    uint64_t max_xfer = VFIO_USER_DEF_MAX_XFER;
    int ret = 1;

    if (!devserver_parse_options("vfio-user-dma",
                                 "- a migratable vfio-user DMA device",
                                 entries, &socket_path, &argc, &argv)) {
        return 1;
    }
    d = g_new0(VdmaDevice, 1);
    d->name = name ? name : "vfio-user-dma";
    d->mem_fd = -1;
    d->mem_size = 64 * MiB;
    d->initial_seed = d->seed = seed;
    d->last_check_first = UINT64_MAX;
    d->mig_flags = devserver_mig_flags(no_precopy, no_p2p || no_extensions);
    d->no_dma_logging = no_dma_logging;
    d->strict_regions = strict_regions;
    d->no_extensions = no_extensions;
    g_mutex_init(&d->lock);
    g_cond_init(&d->cond);
    if (mem_size_str && qemu_strtosz_suffix(mem_size_str, 'M',
                                            &d->mem_size) < 0) {
        error_report("--mem-size '%s': not a size", mem_size_str);
        goto out;
    }
    if (d->mem_size < VDMA_PAGE_SIZE || (d->mem_size & (d->mem_size - 1)) ||
        d->mem_size > 64 * GiB) {
        error_report("--mem-size %" PRIu64 ": must be a power of two from "
                     "4K to 64G", d->mem_size);
        goto out;
    }
    d->nr_pages = d->mem_size / VDMA_PAGE_SIZE;
    if (max_xfer_str && (qemu_strtosz(max_xfer_str, &max_xfer) < 0 ||
                         max_xfer < 4096 ||
                         max_xfer > VFIO_USER_MAX_MAX_XFER)) {
        error_report("--max-xfer '%s': expected a size from 4K to %dM",
                     max_xfer_str, VFIO_USER_MAX_MAX_XFER >> 20);
        goto out;
    }
    if (!parse_limits(d, max_dma_maps, max_dma_bytes, max_dma_requests,
                      msg_timeout, &err)) {
        error_report_err(err);
        goto out;
    }
    if (state_rate && (qemu_strtosz(state_rate, &d->state_rate) < 0 ||
                       d->state_rate < 64 * KiB)) {
        error_report("--state-rate '%s': expected bytes per second, at "
                     "least 64K", state_rate);
        goto out;
    }
    if (dirty_rate && !parse_dirty_rate(d, dirty_rate, &err)) {
        error_report_err(err);
        goto out;
    }
    for (int i = 0; fail_arcs && fail_arcs[i]; i++) {
        if (!parse_arc("fail-arc", fail_arcs[i], false, &d->fail_arcs,
                       &err)) {
            error_report_err(err);
            goto out;
        }
    }
    for (int i = 0; delay_arcs && delay_arcs[i]; i++) {
        if (!parse_arc("delay-arc", delay_arcs[i], true, &d->delay_arcs,
                       &err)) {
            error_report_err(err);
            goto out;
        }
    }
    if (!vdma_alloc_memory(d, &err)) {
        error_report_err(err);
        goto out;
    }
    vdma_fill_all(d);
    d->running = true;

    if (!vdma_setup(d, socket_path, max_xfer, no_msix, &err)) {
        error_report_err(err);
        goto out;
    }
    d->dma_thread = g_thread_new("vdma-engine", vdma_dma_thread, d);
    if (d->dirty_pages_per_sec > 0) {
        d->dirty_thread = g_thread_new("vdma-dirty", vdma_dirty_thread, d);
    }
    ret = devserver_run(d->ctx);

    g_mutex_lock(&d->lock);
    d->quit = true;
    g_cond_broadcast(&d->cond);
    g_mutex_unlock(&d->lock);
    g_thread_join(d->dma_thread);
    if (d->dirty_thread) {
        g_thread_join(d->dirty_thread);
    }

out:
    vus_ctx_free(d->ctx);
    vdma_migration_reset(d);
    if (d->mem) {
        munmap(d->mem, d->mem_size);
    }
    if (d->mem_fd >= 0) {
        close(d->mem_fd);
    }
    g_free(d->pending);
    g_free(d->foreign);
    g_mutex_clear(&d->lock);
    g_cond_clear(&d->cond);
    g_free(d);
    return ret;
}
