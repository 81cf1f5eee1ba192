/*
 * What the kernel IOMMU back-ends (container.c, iommufd.c) share: the
 * devices that hold one, and the ranges mapped for them.  Every device
 * maps all of guest RAM, so devices that share a back-end map the same
 * ranges: only the first map and the last unmap of a range reach the
 * kernel.  Dirty tracking by the IOMMU is counted the same way.  BQL.
 */
#include "qemu/osdep.h"
#include "vfio-kernel.h"
#include "vfio-internal.h"

typedef struct VFIOIOMMUMapping {
    uint64_t iova;
    uint64_t size;
    unsigned users;
} VFIOIOMMUMapping;

void vfio_iommu_init(VFIOIOMMU *io, const VFIOIOMMUOps *ops)
{
    io->ops = ops;
    io->refs = 0;
    io->dirty_users = 0;
    io->mappings = g_array_new(false, true, sizeof(VFIOIOMMUMapping));
}

void vfio_iommu_ref(VFIOIOMMU *io)
{
    io->refs++;
}

void vfio_iommu_unref(VFIOIOMMU *io)
{
    if (--io->refs) {
        return;
    }
    g_array_free(io->mappings, true);
    io->mappings = NULL;
    io->ops->release(io);
}

static VFIOIOMMUMapping *find_mapping(VFIOIOMMU *io, uint64_t iova,
                                      uint64_t size, guint *index)
{
    for (guint i = 0; i < io->mappings->len; i++) {
        VFIOIOMMUMapping *m = &g_array_index(io->mappings, VFIOIOMMUMapping,
                                             i);

        if (m->iova == iova && m->size == size) {
            *index = i;
            return m;
        }
    }
    return NULL;
}

bool vfio_iommu_map(VFIOIOMMU *io, uint64_t iova, uint64_t size, void *vaddr,
                    bool writable, Error **errp)
{
    VFIOIOMMUMapping fresh = { .iova = iova, .size = size, .users = 1 };
    guint i;
    VFIOIOMMUMapping *m = find_mapping(io, iova, size, &i);

    if (m) {
        m->users++;
        return true;
    }
    trace(vfio_dma_map, "%s: [0x%" PRIx64 ", +0x%" PRIx64 "] %s",
          io->ops->name, iova, size, writable ? "rw" : "ro");
    if (!io->ops->dma_map(io, iova, size, vaddr, writable, errp)) {
        error_prepend(errp, "%s IOMMU back-end: ", io->ops->name);
        return false;
    }
    g_array_append_val(io->mappings, fresh);
    return true;
}

bool vfio_iommu_unmap(VFIOIOMMU *io, uint64_t iova, uint64_t size,
                      Error **errp)
{
    guint i;
    VFIOIOMMUMapping *m = find_mapping(io, iova, size, &i);

    if (!m) {
        error_setg(errp, "%s IOMMU back-end: [0x%" PRIx64 ", +0x%" PRIx64 "] "
                   "is not mapped", io->ops->name, iova, size);
        return false;
    }
    if (--m->users) {
        return true;
    }
    g_array_remove_index_fast(io->mappings, i);
    trace(vfio_dma_unmap, "%s: [0x%" PRIx64 ", +0x%" PRIx64 "]",
          io->ops->name, iova, size);
    if (!io->ops->dma_unmap(io, iova, size, errp)) {
        error_prepend(errp, "%s IOMMU back-end: ", io->ops->name);
        return false;
    }
    return true;
}

bool vfio_iommu_dirty_start(VFIOIOMMU *io, Error **errp)
{
    if (!io->ops->dirty_start) {
        error_setg(errp, "the %s IOMMU back-end cannot track dirty pages",
                   io->ops->name);
        return false;
    }
    if (io->dirty_users++) {
        return true;
    }
    trace(vfio_iommu_dirty, "%s: start", io->ops->name);
    if (!io->ops->dirty_start(io, errp)) {
        io->dirty_users = 0;
        return false;
    }
    return true;
}

void vfio_iommu_dirty_stop(VFIOIOMMU *io)
{
    Error *err = NULL;

    if (!io->dirty_users || --io->dirty_users) {
        return;
    }
    trace(vfio_iommu_dirty, "%s: stop", io->ops->name);
    if (!io->ops->dirty_stop(io, &err)) {
        warn_report("%s", error_get_pretty(err));
        error_free(err);
    }
}
