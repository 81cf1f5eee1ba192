/*
 * Dirty tracking of device DMA (docs/devel/vfio-migration.rst).
 *
 * A device writes guest RAM behind the VMM's back (through its own
 * mapping of the memfd), so the software dirty log never sees those
 * writes.  Each device gets a DirtyLogListener: when global dirty
 * logging starts, the device's tracker starts over its DMA-mapped
 * ranges; every dirty sync reads (and clears) its log and merges it
 * into the RAM dirty log.  The tracker is, in this order of preference
 * (seed 003, QEMU's order):
 *   - the device's own DMA logging (DMA_LOGGING_START/REPORT/STOP),
 *     unless x-device-dirty-page-tracking=off;
 *   - the IOMMU's dirty tracking, for the kernel transport when the IOMMU
 *     has it: the type1 container's dirty pages, or an iommufd HWPT
 *     allocated with dirty tracking;
 *   - none: every DMA-able page counts as dirty at every sync.  That
 *     blocks migration under enable-migration=auto (the stop-and-copy
 *     would carry all of RAM); enable-migration=on accepts it.
 *
 * Threads: log_start / log_stop run where the migration core turns
 * logging on and off, log_sync on the migration thread; the listener's
 * fields are used by one of them at a time.
 */
#include "qemu/osdep.h"
#include "vfio-internal.h"
#include "system/ramblock.h"

#define VFIO_DIRTY_PAGE_SIZE 4096

typedef struct VFIODirtyTracking {
    DirtyLogListener listener;
    VFIODevice *vdev;
    bool logging;                   /* DMA logging started on the device */
    uint64_t page_size;             /* granted by the device */
    uint64_t *bitmap;               /* scratch, fits the largest range */
} VFIODirtyTracking;

static VFIODirtyTracking *tracking_of(DirtyLogListener *l)
{
    return container_of(l, VFIODirtyTracking, listener);
}

static const char *const mode_names[] = {
    [VFIO_DIRTY_NONE] = "none",
    [VFIO_DIRTY_DEVICE] = "device-dma-logging",
    [VFIO_DIRTY_IOMMU] = "iommu",
    [VFIO_DIRTY_ALL] = "all-dirty",
};

const char *vfio_dirty_mode_name(VFIODevice *vdev)
{
    if (vdev->dirty_mode == VFIO_DIRTY_IOMMU &&
        vdev->io_ops->iommu_dirty_name) {
        return vdev->io_ops->iommu_dirty_name;
    }
    return mode_names[vdev->dirty_mode];
}

static bool vfio_dirty_log_start(DirtyLogListener *l, Error **errp)
{
    VFIODirtyTracking *t = tracking_of(l);
    VFIODevice *vdev = t->vdev;
    g_autofree struct vfio_device_feature_dma_logging_range *ranges = NULL;
    uint64_t largest = 0;

    if (!vfio_migration_supported(vdev) || vdev->dirty_mode == VFIO_DIRTY_ALL) {
        return true;
    }
    t->page_size = VFIO_DIRTY_PAGE_SIZE;
    if (vdev->dirty_mode == VFIO_DIRTY_IOMMU) {
        if (!vdev->io_ops->iommu_dirty_start(vdev, errp)) {
            error_prepend(errp, "%s: starting the IOMMU's dirty tracking: ",
                          vdev->name);
            return false;
        }
    } else {
        ranges = g_new0(struct vfio_device_feature_dma_logging_range,
                        vdev->nr_dma_ranges);
        for (unsigned i = 0; i < vdev->nr_dma_ranges; i++) {
            ranges[i].iova = vdev->dma_ranges[i].iova;
            ranges[i].length = vdev->dma_ranges[i].size;
        }
        if (!vdev->io_ops->dma_logging_start(vdev, &t->page_size, ranges,
                                             vdev->nr_dma_ranges, errp)) {
            error_prepend(errp, "%s: starting DMA logging: ", vdev->name);
            return false;
        }
        if (!t->page_size || (t->page_size & (t->page_size - 1))) {
            error_setg(errp, "%s: the device logs DMA in pages of %" PRIu64
                       " bytes (not a power of two)", vdev->name,
                       t->page_size);
            vdev->io_ops->dma_logging_stop(vdev, NULL);
            return false;
        }
    }
    for (unsigned i = 0; i < vdev->nr_dma_ranges; i++) {
        largest = MAX(largest, vdev->dma_ranges[i].size);
    }
    t->bitmap = g_new0(uint64_t,
                       DIV_ROUND_UP(DIV_ROUND_UP(largest, t->page_size), 64));
    t->logging = true;
    trace(vfio_dirty_log_start, "%s: %s, %u ranges, pages of %" PRIu64,
          vdev->name, vfio_dirty_mode_name(vdev),
          vdev->nr_dma_ranges, t->page_size);
    return true;
}

static void vfio_dirty_log_stop(DirtyLogListener *l)
{
    VFIODirtyTracking *t = tracking_of(l);
    VFIODevice *vdev = t->vdev;
    Error *err = NULL;

    if (!t->logging) {
        return;
    }
    if (vdev->dirty_mode == VFIO_DIRTY_IOMMU) {
        vdev->io_ops->iommu_dirty_stop(vdev);
    } else if (!vdev->io_ops->dma_logging_stop(vdev, &err)) {
        /* A device gone or refusing in its state: its log dies with it. */
        trace(vfio_dirty_log_stop, "%s: %s", vdev->name,
              error_get_pretty(err));
        error_free(err);
    }
    t->logging = false;
    g_clear_pointer(&t->bitmap, g_free);
    trace(vfio_dirty_log_stop, "%s: stopped", vdev->name);
}

/* Merge one range's bitmap, a run of set bits at a time. */
static uint64_t merge_bitmap(const uint64_t *bitmap, uint64_t pages,
                             uint64_t iova, uint64_t page_size)
{
    uint64_t dirty = 0;

    for (uint64_t p = 0; p < pages;) {
        uint64_t start;

        if (!bitmap[p / 64]) {
            p = (p / 64 + 1) * 64;
            continue;
        }
        if (!(bitmap[p / 64] & (1ULL << (p % 64)))) {
            p++;
            continue;
        }
        start = p;
        while (p < pages && (bitmap[p / 64] & (1ULL << (p % 64)))) {
            p++;
        }
        guest_ram_set_dirty(iova + start * page_size, (p - start) * page_size);
        dirty += p - start;
    }
    return dirty;
}

static bool vfio_dirty_log_sync(DirtyLogListener *l, Error **errp)
{
    VFIODirtyTracking *t = tracking_of(l);
    VFIODevice *vdev = t->vdev;
    uint64_t dirty = 0;

    if (!vfio_migration_supported(vdev) || vdev->dirty_sync_disabled) {
        return true;
    }
    if (vdev->dirty_mode == VFIO_DIRTY_ALL) {
        /* No log: every page the device may write is dirty. */
        for (unsigned i = 0; i < vdev->nr_dma_ranges; i++) {
            guest_ram_set_dirty(vdev->dma_ranges[i].iova,
                                vdev->dma_ranges[i].size);
        }
        trace(vfio_dirty_log_sync, "%s: all DMA ranges dirty", vdev->name);
        return true;
    }
    if (!t->logging) {
        return true;
    }
    if (!vdev->pre_copy_dirty_page_tracking &&
        vfio_migration_device_running(vdev)) {
        /* Read only once the device has stopped (the final sync). */
        return true;
    }
    for (unsigned i = 0; i < vdev->nr_dma_ranges; i++) {
        const VFIODMARange *r = &vdev->dma_ranges[i];
        uint64_t pages = DIV_ROUND_UP(r->size, t->page_size);
        bool ok;

        /* Kernel reports only set bits: no stale bit may be merged again. */
        memset(t->bitmap, 0, DIV_ROUND_UP(pages, 64) * sizeof(uint64_t));
        ok = vdev->dirty_mode == VFIO_DIRTY_IOMMU ?
            vdev->io_ops->iommu_dirty_report(vdev, r->iova, r->size,
                                             t->page_size, t->bitmap, errp) :
            vdev->io_ops->dma_logging_report(vdev, r->iova, r->size,
                                             t->page_size, t->bitmap, errp);

        if (!ok) {
            error_prepend(errp, "%s: reading the %s log: ", vdev->name,
                          vfio_dirty_mode_name(vdev));
            return false;
        }
        dirty += merge_bitmap(t->bitmap, pages, r->iova, t->page_size);
    }
    trace(vfio_dirty_log_sync, "%s: %" PRIu64 " pages written by the device",
          vdev->name, dirty);
    return true;
}

/* Whether the device says it can start DMA logging. */
static bool probe_dma_logging(VFIODevice *vdev)
{
    return vdev->io_ops->device_feature(vdev,
                                        VFIO_DEVICE_FEATURE_DMA_LOGGING_START |
                                        VFIO_DEVICE_FEATURE_PROBE |
                                        VFIO_DEVICE_FEATURE_SET,
                                        NULL, 0, NULL, 0, NULL, NULL);
}

bool vfio_dirty_tracking_init(VFIODevice *vdev, Error **errp)
{
    VFIODirtyTracking *t;

    vdev->dirty_mode = VFIO_DIRTY_NONE;
    if (!vfio_migration_supported(vdev)) {
        return true;
    }
    if (vdev->device_dirty_page_tracking != ON_OFF_AUTO_OFF &&
        probe_dma_logging(vdev)) {
        vdev->dirty_mode = VFIO_DIRTY_DEVICE;
    } else if (vdev->io_ops->iommu_dirty_start) {
        vdev->dirty_mode = VFIO_DIRTY_IOMMU;
    } else {
        vdev->dirty_mode = VFIO_DIRTY_ALL;
    }
    if (vdev->dirty_mode == VFIO_DIRTY_ALL &&
        vdev->enable_migration != ON_OFF_AUTO_ON) {
        error_setg(&vdev->migration_blocker, "%s: migration is blocked: "
                   "neither the device nor its IOMMU can track its DMA "
                   "writes (dirty tracking); enable-migration=on migrates it "
                   "with its DMA ranges always dirty", vdev->name);
        vdev->dirty_mode = VFIO_DIRTY_NONE;
        return true;
    }
    t = g_new0(VFIODirtyTracking, 1);
    t->vdev = vdev;
    t->listener.name = vdev->name;
    t->listener.log_start = vfio_dirty_log_start;
    t->listener.log_stop = vfio_dirty_log_stop;
    t->listener.log_sync = vfio_dirty_log_sync;
    if (!dirty_log_listener_add(&t->listener, errp)) {
        g_free(t);
        return false;
    }
    vdev->dirty_tracking = t;
    return true;
}

void vfio_dirty_tracking_exit(VFIODevice *vdev)
{
    VFIODirtyTracking *t = vdev->dirty_tracking;

    if (!t) {
        return;
    }
    dirty_log_listener_del(&t->listener);
    g_free(t->bitmap);
    g_free(t);
    vdev->dirty_tracking = NULL;
}
