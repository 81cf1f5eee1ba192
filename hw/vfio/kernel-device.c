/*
 * VFIODeviceIOOps over a kernel VFIO device fd: ioctls for info, irqs,
 * reset and device features, pread/pwrite at each region's offset, and
 * the migration data fd of the migration v2 uAPI.
 *
 * Real drivers bend the uAPI in small ways, and this file absorbs them:
 *   - read() on the data fd may return 0 instead of failing with ENOMSG
 *     at a temporary end of PRE_COPY data (mtty does): both mean "no more
 *     for now" there; in STOP_COPY, 0 is the end of the stream.
 *   - a write() that fails must fail the load even if the driver later
 *     accepts RESUMING -> STOP (mtty counts the bytes of a rejected write
 *     and then loads whatever it got).
 *   - each arc that starts a session returns a new data fd, and the old
 *     one is dead from then on (ENODEV): only the current one is used.
 *   - VFIO_DEVICE_RESET may work without VFIO_DEVICE_FLAGS_RESET (mtty).
 *
 * Regions that the kernel lets vmig mmap (VFIO_REGION_INFO_FLAG_MMAP: the
 * MMIO BARs of a PCI function) are mapped at open, as a whole or area by
 * area when a sparse-mmap capability lists the parts that may be mapped,
 * and accesses inside a mapping skip the syscall.
 */
#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <sys/mman.h>
#include "hw/vfio/region-caps.h"
#include "system/ramblock.h"
#include "qemu/trace.h"
#include "vfio-kernel.h"

TRACE_DEFINE(vfio_kernel_region_mmap);

/* The largest read from the data fd at once (QEMU's figure, too). */
#define VFIO_KERNEL_DATA_CHUNK (1 * MiB)

static VFIOKernelDevice *kdev_of(VFIODevice *vdev)
{
    return container_of(vdev, VFIOKernelDevice, vdev);
}

/*
 * An access through a mapping is an MMIO access to the device: one load
 * or store per naturally aligned piece of at most 8 bytes, never the byte
 * loops or vector moves that memcpy() may make, which registers such as
 * a 32-bit doorbell would see as other accesses.
 */
#define MMIO_PIECE(type, p, buf, is_write)                                  \
    do {                                                                    \
        type v_;                                                            \
        if (is_write) {                                                     \
            memcpy(&v_, buf, sizeof(v_));                                   \
            *(volatile type *)(p) = v_;                                     \
        } else {                                                            \
            v_ = *(volatile type *)(p);                                     \
            memcpy(buf, &v_, sizeof(v_));                                   \
        }                                                                   \
    } while (0)

static void mmio_copy(uint8_t *p, uint8_t *buf, size_t len, bool is_write)
{
    while (len) {
        uintptr_t a = (uintptr_t)p;
        size_t n;

        if (len >= 8 && !(a & 7)) {
            MMIO_PIECE(uint64_t, p, buf, is_write);
            n = 8;
        } else if (len >= 4 && !(a & 3)) {
            MMIO_PIECE(uint32_t, p, buf, is_write);
            n = 4;
        } else if (len >= 2 && !(a & 1)) {
            MMIO_PIECE(uint16_t, p, buf, is_write);
            n = 2;
        } else {
            MMIO_PIECE(uint8_t, p, buf, is_write);
            n = 1;
        }
        p += n;
        buf += n;
        len -= n;
    }
}

/* The mapping that holds all of [@offset, +@len) of @r, or NULL. */
static VFIOKernelMmap *region_mmap_find(VFIOKernelRegion *r, uint64_t offset,
                                        size_t len)
{
    for (uint32_t i = 0; i < r->nr_mmaps; i++) {
        VFIOKernelMmap *m = &r->mmaps[i];

        if (offset >= m->offset && offset - m->offset <= m->size &&
            len <= m->size - (offset - m->offset)) {
            return m;
        }
    }
    return NULL;
}

/*
 * Region access: through a mapping when one holds the range, else
 * pread/pwrite at the region's offset in the device fd.
 */
static bool kernel_region_rw(VFIOKernelDevice *kd, uint32_t index,
                             uint64_t offset, uint8_t *buf, size_t len,
                             bool is_write, Error **errp)
{
    VFIOKernelRegion *r = index < kd->nr_regions ? &kd->regions[index]
                                                 : NULL;
    VFIOKernelMmap *m;

    if (!r || !r->size) {
        error_setg(errp, "%s: region %u does not exist", kd->vdev.name, index);
        return false;
    }
    if (offset > r->size || len > r->size - offset) {
        error_setg(errp, "%s: [0x%" PRIx64 ", +0x%zx) is outside region %u "
                   "(size 0x%" PRIx64 ")", kd->vdev.name, offset, len, index,
                   r->size);
        return false;
    }
    m = region_mmap_find(r, offset, len);
    if (m) {
        mmio_copy(m->addr + (offset - m->offset), buf, len, is_write);
        __atomic_fetch_add(&kd->mmap_accesses, 1, __ATOMIC_RELAXED);
        return true;
    }
    while (len) {
        ssize_t n = is_write ? pwrite(kd->fd, buf, len, r->offset + offset)
                             : pread(kd->fd, buf, len, r->offset + offset);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : EIO, "%s: %s of %zu bytes "
                             "at 0x%" PRIx64 " of region %u", kd->vdev.name,
                             is_write ? "write" : "read", len, offset, index);
            return false;
        }
        buf += n;
        offset += n;
        len -= n;
    }
    return true;
}

/* ---- Device information, regions, interrupts, reset ---- */

/* Region @index's info with its capability chain (g_free it). */
static struct vfio_region_info *region_info_get(VFIOKernelDevice *kd,
                                                uint32_t index, Error **errp)
{
    struct vfio_region_info *info = NULL;
    size_t size = sizeof(*info);

    for (;;) {
        info = g_realloc(info, size);
        memset(info, 0, size);
        info->argsz = size;
        info->index = index;
        if (ioctl(kd->fd, VFIO_DEVICE_GET_REGION_INFO, info) < 0) {
            error_setg_errno(errp, errno, "%s: region %u info", kd->vdev.name,
                             index);
            g_free(info);
            return NULL;
        }
        /* The capability chain did not fit: ask again with room for it. */
        if (info->argsz <= size) {
            break;
        }
        size = info->argsz;
    }
    return info;
}

static struct vfio_region_info *kernel_region_info(VFIODevice *vdev,
                                                   uint32_t index,
                                                   int *mmap_fd, Error **errp)
{
    VFIOKernelDevice *kd = kdev_of(vdev);
    struct vfio_region_info *info = region_info_get(kd, index, errp);

    *mmap_fd = -1;
    if (info && (info->flags & VFIO_REGION_INFO_FLAG_MMAP)) {
        *mmap_fd = dup(kd->fd);
    }
    return info;
}

static bool kernel_region_read(VFIODevice *vdev, uint32_t index,
                               uint64_t offset, void *buf, size_t len,
                               Error **errp)
{
    return kernel_region_rw(kdev_of(vdev), index, offset, buf, len, false,
                            errp);
}

static bool kernel_region_write(VFIODevice *vdev, uint32_t index,
                                uint64_t offset, const void *buf, size_t len,
                                Error **errp)
{
    /* pwrite() does not write through the pointer. */
    return kernel_region_rw(kdev_of(vdev), index, offset, (uint8_t *)buf,
                            len, true, errp);
}

static bool kernel_irq_info(VFIODevice *vdev, uint32_t index,
                            struct vfio_irq_info *info, Error **errp)
{
    *info = (struct vfio_irq_info) { .argsz = sizeof(*info), .index = index };
    if (ioctl(kdev_of(vdev)->fd, VFIO_DEVICE_GET_IRQ_INFO, info) < 0) {
        error_setg_errno(errp, errno, "%s: irq %u info", vdev->name, index);
        return false;
    }
    return true;
}

static bool kernel_set_irqs(VFIODevice *vdev, uint32_t index, uint32_t flags,
                            uint32_t start, uint32_t count, const int *fds,
                            Error **errp)
{
    bool with_fds = (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) ==
                    VFIO_IRQ_SET_DATA_EVENTFD;
    size_t argsz = sizeof(struct vfio_irq_set) +
                   (with_fds ? count * sizeof(int32_t) : 0);
    g_autofree struct vfio_irq_set *set = g_malloc0(argsz);

    set->argsz = argsz;
    set->flags = flags;
    set->index = index;
    set->start = start;
    set->count = count;
    if (with_fds) {
        memcpy(set->data, fds, count * sizeof(int32_t));
    }
    if (ioctl(kdev_of(vdev)->fd, VFIO_DEVICE_SET_IRQS, set) < 0) {
        error_setg_errno(errp, errno, "%s: SET_IRQS of irq %u [%u, +%u] "
                         "(flags 0x%x)", vdev->name, index, start, count,
                         flags);
        return false;
    }
    return true;
}

static bool kernel_reset(VFIODevice *vdev, Error **errp)
{
    VFIOKernelDevice *kd = kdev_of(vdev);

    /*
     * Not only when VFIO_DEVICE_FLAGS_RESET says so: mtty resets without
     * saying it can, and a RESUMING device that cannot take the rest of
     * its state has no other way out.
     */
    if (ioctl(kd->fd, VFIO_DEVICE_RESET) < 0) {
        error_setg_errno(errp, errno, "%s: reset", vdev->name);
        return false;
    }
    /* A reset returns the device to RUNNING: any session is over. */
    g_mutex_lock(&kd->data_lock);
    if (kd->data_fd >= 0) {
        close(kd->data_fd);
        kd->data_fd = -1;
    }
    g_mutex_unlock(&kd->data_lock);
    return true;
}

/* ---- Device features ---- */

static bool kernel_device_feature(VFIODevice *vdev, uint32_t flags,
                                  const void *data, size_t len, void *out,
                                  size_t out_len, uint32_t *dev_errno,
                                  Error **errp)
{
    size_t payload = MAX(len, out_len);
    g_autofree struct vfio_device_feature *feat =
        g_malloc0(sizeof(*feat) + payload);

    feat->argsz = sizeof(*feat) + payload;
    feat->flags = flags;
    if (len) {
        memcpy(feat->data, data, len);
    }
    if (ioctl(kdev_of(vdev)->fd, VFIO_DEVICE_FEATURE, feat) < 0) {
        if (dev_errno) {
            *dev_errno = errno;
        }
        error_setg_errno(errp, errno, "%s: DEVICE_FEATURE %u (flags 0x%x)",
                         vdev->name, flags & VFIO_DEVICE_FEATURE_MASK,
                         flags & ~VFIO_DEVICE_FEATURE_MASK);
        return false;
    }
    if (out_len) {
        memcpy(out, feat->data, out_len);
    }
    return true;
}

/* ---- Migration ---- */

static bool kernel_mig_get_flags(VFIODevice *vdev, uint64_t *flags,
                                 Error **errp)
{
    struct vfio_device_feature_migration mig;
    uint32_t dev_errno = 0;
    Error *err = NULL;

    if (!kernel_device_feature(vdev, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, &mig,
                               sizeof(mig), &dev_errno, &err)) {
        /* What the VFIO core answers for a driver without migration. */
        if (dev_errno == ENOTTY) {
            error_free(err);
            error_setg(errp, "its kernel driver has no VFIO migration "
                       "support (no MIGRATION device feature)");
        } else {
            error_propagate(errp, err);
        }
        return false;
    }
    *flags = mig.flags;
    return true;
}

static bool kernel_mig_get_state(VFIODevice *vdev, uint32_t *state,
                                 Error **errp)
{
    struct vfio_device_feature_mig_state st;

    if (!kernel_device_feature(vdev, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0,
                               &st, sizeof(st), NULL, errp)) {
        return false;
    }
    *state = st.device_state;
    return true;
}

/* The states that keep the session (and its data fd) of the arc before. */
static bool state_keeps_session(uint32_t state)
{
    return state == VFIO_DEVICE_STATE_PRE_COPY ||
           state == VFIO_DEVICE_STATE_PRE_COPY_P2P ||
           state == VFIO_DEVICE_STATE_STOP_COPY ||
           state == VFIO_DEVICE_STATE_RESUMING;
}

static bool kernel_mig_set_state(VFIODevice *vdev, uint32_t state,
                                 Error **errp)
{
    VFIOKernelDevice *kd = kdev_of(vdev);
    struct vfio_device_feature_mig_state st = {
        .device_state = state,
        .data_fd = -1,
    };
    bool ok;

    g_mutex_lock(&kd->data_lock);
    ok = kernel_device_feature(vdev, VFIO_DEVICE_FEATURE_SET |
                               VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st,
                               sizeof(st), &st, sizeof(st), NULL, errp);
    /*
     * An arc that starts a session hands out a new fd, and the old one is
     * dead; an arc out of the saving and resuming states ends it.
     */
    if (ok && (st.data_fd >= 0 || !state_keeps_session(state)) &&
        kd->data_fd >= 0) {
        close(kd->data_fd);
        kd->data_fd = -1;
    }
    if (ok && st.data_fd >= 0) {
        kd->data_fd = st.data_fd;
    }
    g_mutex_unlock(&kd->data_lock);
    return ok;
}

static bool kernel_mig_data_size(VFIODevice *vdev, uint64_t *len,
                                 Error **errp)
{
    struct vfio_device_feature_mig_data_size size;

    if (!kernel_device_feature(vdev, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, NULL, 0,
                               &size, sizeof(size), NULL, errp)) {
        return false;
    }
    *len = size.stop_copy_length;
    return true;
}

static bool kernel_mig_precopy_info(VFIODevice *vdev, uint64_t *initial,
                                    uint64_t *dirty, Error **errp)
{
    VFIOKernelDevice *kd = kdev_of(vdev);
    struct vfio_precopy_info info = { .argsz = sizeof(info) };
    int ret = -1, err = ENODATA;

    g_mutex_lock(&kd->data_lock);
    if (kd->data_fd >= 0) {
        ret = ioctl(kd->data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info);
        err = errno;
    }
    g_mutex_unlock(&kd->data_lock);
    if (ret < 0) {
        error_setg_errno(errp, err, "%s: precopy info", vdev->name);
        return false;
    }
    *initial = info.initial_bytes;
    *dirty = info.dirty_bytes;
    return true;
}

static int64_t kernel_mig_data_drain(VFIODevice *vdev, uint64_t max_bytes,
                                     VFIOMigDataSink *sink, void *opaque,
                                     bool *end, Error **errp)
{
    VFIOKernelDevice *kd = kdev_of(vdev);
    g_autofree uint8_t *buf = g_malloc(MIN(max_bytes,
                                           VFIO_KERNEL_DATA_CHUNK));
    int64_t total = 0;

    *end = false;
    g_mutex_lock(&kd->data_lock);
    if (kd->data_fd < 0) {
        g_mutex_unlock(&kd->data_lock);
        error_setg(errp, "%s: no migration data session is open", vdev->name);
        return -1;
    }
    while ((uint64_t)total < max_bytes) {
        size_t want = MIN(max_bytes - total, VFIO_KERNEL_DATA_CHUNK);
        ssize_t n = read(kd->data_fd, buf, want);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        /* ENOMSG, or 0 from some drivers: nothing more for now. */
        if (n == 0 || (n < 0 && errno == ENOMSG)) {
            *end = true;
            break;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "%s: read of the migration data",
                             vdev->name);
            total = -1;
            break;
        }
        if (!sink(opaque, buf, n, errp)) {
            total = -1;
            break;
        }
        total += n;
    }
    g_mutex_unlock(&kd->data_lock);
    return total;
}

static bool kernel_mig_data_writev(VFIODevice *vdev, const struct iovec *iov,
                                   unsigned iov_cnt, Error **errp)
{
    VFIOKernelDevice *kd = kdev_of(vdev);
    bool ok = true;

    g_mutex_lock(&kd->data_lock);
    if (kd->data_fd < 0) {
        error_setg(errp, "%s: no migration data session is open", vdev->name);
        ok = false;
    }
    for (unsigned i = 0; ok && i < iov_cnt; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;

        while (left) {
            ssize_t n = write(kd->data_fd, p, left);

            if (n < 0 && errno == EINTR) {
                continue;
            }
            /*
             * A refused write fails the load here, whatever the driver
             * makes of the stream when RESUMING ends.
             */
            if (n <= 0) {
                error_setg_errno(errp, n < 0 ? errno : EIO, "%s: the device "
                                 "refused %zu bytes of its migration data",
                                 vdev->name, left);
                ok = false;
                break;
            }
            p += n;
            left -= n;
        }
    }
    g_mutex_unlock(&kd->data_lock);
    return ok;
}

/* ---- DMA ---- */

static bool kernel_dma_map(VFIODevice *vdev, uint64_t iova, uint64_t size,
                           int fd, uint64_t offset, bool writable,
                           Error **errp)
{
    void *vaddr = guest_ram_ptr(iova, size);
    VFIOIOMMU *io = kdev_of(vdev)->iommu;

    if (!vaddr) {
        error_setg(errp, "%s: DMA map of [0x%" PRIx64 ", +0x%" PRIx64 "]: not "
                   "guest RAM", vdev->name, iova, size);
        return false;
    }
    return vfio_iommu_map(io, iova, size, vaddr, writable, errp);
}

static bool kernel_dma_unmap(VFIODevice *vdev, uint64_t iova, uint64_t size,
                             Error **errp)
{
    VFIOIOMMU *io = kdev_of(vdev)->iommu;

    return vfio_iommu_unmap(io, iova, size, errp);
}

static bool kernel_dma_logging_start(VFIODevice *vdev, uint64_t *page_size,
        const struct vfio_device_feature_dma_logging_range *ranges,
        uint32_t nr_ranges, Error **errp)
{
    struct vfio_device_feature_dma_logging_control ctl = {
        .page_size = *page_size,
        .num_ranges = nr_ranges,
        .ranges = (uintptr_t)ranges,
    };

    return kernel_device_feature(vdev, VFIO_DEVICE_FEATURE_SET |
                                 VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &ctl,
                                 sizeof(ctl), NULL, 0, NULL, errp);
}

static bool kernel_dma_logging_stop(VFIODevice *vdev, Error **errp)
{
    return kernel_device_feature(vdev, VFIO_DEVICE_FEATURE_SET |
                                 VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL,
                                 0, NULL, 0, NULL, errp);
}

static bool kernel_dma_logging_report(VFIODevice *vdev, uint64_t iova,
                                      uint64_t length, uint64_t page_size,
                                      uint64_t *bitmap, Error **errp)
{
    struct vfio_device_feature_dma_logging_report rep = {
        .iova = iova,
        .length = length,
        .page_size = page_size,
        .bitmap = (uintptr_t)bitmap,
    };

    return kernel_device_feature(vdev, VFIO_DEVICE_FEATURE_GET |
                                 VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
                                 &rep, sizeof(rep), NULL, 0, NULL, errp);
}

static bool kernel_iommu_dirty_start(VFIODevice *vdev, Error **errp)
{
    return vfio_iommu_dirty_start(kdev_of(vdev)->iommu, errp);
}

static void kernel_iommu_dirty_stop(VFIODevice *vdev)
{
    vfio_iommu_dirty_stop(kdev_of(vdev)->iommu);
}

static bool kernel_iommu_dirty_report(VFIODevice *vdev, uint64_t iova,
                                      uint64_t length, uint64_t page_size,
                                      uint64_t *bitmap, Error **errp)
{
    VFIOIOMMU *io = kdev_of(vdev)->iommu;

    if (!io->ops->dirty_report(io, iova, length, page_size, bitmap, errp)) {
        error_prepend(errp, "%s IOMMU back-end: ", io->ops->name);
        return false;
    }
    return true;
}

static const VFIODeviceIOOps vfio_kernel_io_ops = {
    .region_info = kernel_region_info,
    .region_read = kernel_region_read,
    .region_write = kernel_region_write,
    .irq_info = kernel_irq_info,
    .set_irqs = kernel_set_irqs,
    .reset = kernel_reset,
    .device_feature = kernel_device_feature,
    .mig_get_flags = kernel_mig_get_flags,
    .mig_get_state = kernel_mig_get_state,
    .mig_set_state = kernel_mig_set_state,
    .mig_data_size = kernel_mig_data_size,
    .mig_precopy_info = kernel_mig_precopy_info,
    .mig_data_drain = kernel_mig_data_drain,
    .mig_data_writev = kernel_mig_data_writev,
    .dma_map = kernel_dma_map,
    .dma_unmap = kernel_dma_unmap,
    .dma_logging_start = kernel_dma_logging_start,
    .dma_logging_stop = kernel_dma_logging_stop,
    .dma_logging_report = kernel_dma_logging_report,
    .iommu_dirty_start = kernel_iommu_dirty_start,
    .iommu_dirty_stop = kernel_iommu_dirty_stop,
    .iommu_dirty_report = kernel_iommu_dirty_report,
};

/* ---- Open and close ---- */

/*
 * Map what region @index lets vmig map.  A failure costs only speed (the
 * accesses take pread/pwrite), so it is a warning.
 */
static void region_map(VFIOKernelDevice *kd, uint32_t index)
{
    VFIOKernelRegion *r = &kd->regions[index];
    g_autofree struct vfio_region_info *info = NULL;
    g_autofree struct vfio_region_sparse_mmap_area *areas = NULL;
    int prot = (r->flags & VFIO_REGION_INFO_FLAG_READ ? PROT_READ : 0) |
               (r->flags & VFIO_REGION_INFO_FLAG_WRITE ? PROT_WRITE : 0);
    Error *err = NULL;
    bool listed = false;
    int n = -1;

    info = region_info_get(kd, index, &err);
    if (info) {
        n = vfio_region_sparse_areas(info, &areas, &listed, &err);
    }
    if (n < 0) {
        warn_report("%s: region %u is not mapped: %s", kd->vdev.name, index,
                    error_get_pretty(err));
        error_free(err);
        return;
    }
    if (!listed) {
        /* No sparse list: the whole region may be mapped. */
        n = 1;
        areas = g_new0(struct vfio_region_sparse_mmap_area, 1);
        areas[0].size = r->size;
    }
    r->mmaps = g_new0(VFIOKernelMmap, MAX(n, 1));
    for (int i = 0; i < n; i++) {
        void *p;

        if (!areas[i].size) {
            continue;
        }
        p = mmap(NULL, areas[i].size, prot, MAP_SHARED, kd->fd,
                 r->offset + areas[i].offset);
        if (p == MAP_FAILED) {
            warn_report("%s: region %u: cannot map [0x%" PRIx64 ", +0x%"
                        PRIx64 "), read and written through the device fd: "
                        "%s", kd->vdev.name, index,
                        (uint64_t)areas[i].offset, (uint64_t)areas[i].size,
                        g_strerror(errno));
            continue;
        }
        r->mmaps[r->nr_mmaps++] = (VFIOKernelMmap) {
            .offset = areas[i].offset,
            .size = areas[i].size,
            .addr = p,
        };
        trace(vfio_kernel_region_mmap, "%s: region %u [0x%" PRIx64 ", +0x%"
              PRIx64 ") mapped at %p", kd->vdev.name, index,
              (uint64_t)areas[i].offset, (uint64_t)areas[i].size, p);
    }
}

static void region_unmap(VFIOKernelRegion *r)
{
    for (uint32_t i = 0; i < r->nr_mmaps; i++) {
        munmap(r->mmaps[i].addr, r->mmaps[i].size);
    }
    g_clear_pointer(&r->mmaps, g_free);
    r->nr_mmaps = 0;
}

bool vfio_kernel_device_open(VFIOKernelDevice *kd, int fd, VFIOIOMMU *iommu,
                             Error **errp)
{
    struct vfio_device_info info = { .argsz = sizeof(info) };

    if (ioctl(fd, VFIO_DEVICE_GET_INFO, &info) < 0) {
        error_setg_errno(errp, errno, "%s: device info", kd->vdev.name);
        return false;
    }
    kd->flags = info.flags;
    kd->nr_irqs = info.num_irqs;
    kd->nr_regions = info.num_regions;
    kd->regions = g_new0(VFIOKernelRegion, info.num_regions);
    for (uint32_t i = 0; i < info.num_regions; i++) {
        struct vfio_region_info ri = { .argsz = sizeof(ri), .index = i };

        /* Some indexes are holes (no VGA region, say): size 0. */
        if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) == 0) {
            kd->regions[i].offset = ri.offset;
            kd->regions[i].size = ri.size;
            kd->regions[i].flags = ri.flags;
        }
    }
    kd->fd = fd;
    kd->iommu = iommu;
    kd->data_fd = -1;
    for (uint32_t i = 0; i < kd->nr_regions && !kd->no_mmap; i++) {
        if ((kd->regions[i].flags & VFIO_REGION_INFO_FLAG_MMAP) &&
            kd->regions[i].size) {
            region_map(kd, i);
        }
    }
    g_mutex_init(&kd->data_lock);
    kd->io_ops = vfio_kernel_io_ops;
    kd->io_ops.iommu_dirty_name = iommu->ops->dirty_name;
    if (!kd->iommu_dirty) {
        kd->io_ops.iommu_dirty_start = NULL;
        kd->io_ops.iommu_dirty_stop = NULL;
        kd->io_ops.iommu_dirty_report = NULL;
    }
    kd->vdev.io_ops = &kd->io_ops;
    return true;
}

void vfio_kernel_device_close(VFIOKernelDevice *kd)
{
    for (uint32_t i = 0; kd->regions && i < kd->nr_regions; i++) {
        region_unmap(&kd->regions[i]);
    }
    if (kd->data_fd >= 0) {
        close(kd->data_fd);
        kd->data_fd = -1;
    }
    if (kd->fd >= 0) {
        close(kd->fd);
        kd->fd = -1;
        g_mutex_clear(&kd->data_lock);
    }
    if (kd->iommu) {
        vfio_iommu_unref(kd->iommu);
        kd->iommu = NULL;
    }
    g_clear_pointer(&kd->regions, g_free);
}
