/*
 * The capability chain of a VFIO region info, the same for the kernel
 * (VFIO_DEVICE_GET_REGION_INFO) and for vfio-user (DEVICE_GET_REGION_INFO):
 * offsets from the start of the info, each checked before use, since a
 * vfio-user server is not trusted.
 */
#include "qemu/osdep.h"
#include "hw/vfio/region-caps.h"

int vfio_region_sparse_areas(const struct vfio_region_info *info,
                             struct vfio_region_sparse_mmap_area **areas,
                             bool *listed, Error **errp)
{
    uint32_t off = info->cap_offset;
    unsigned hops = 0;

    *areas = NULL;
    if (listed) {
        *listed = false;
    }
    if (!(info->flags & VFIO_REGION_INFO_FLAG_CAPS)) {
        return 0;
    }
    while (off) {
        const struct vfio_info_cap_header *cap;

        if (off < sizeof(*info) || off > info->argsz ||
            info->argsz - off < sizeof(*cap) || ++hops > 64) {
            error_setg(errp, "region %u: capability chain offset %u is outside "
                       "the %u bytes of info", info->index, off, info->argsz);
            return -1;
        }
        cap = (const void *)((const char *)info + off);
        if (cap->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
            const struct vfio_region_info_cap_sparse_mmap *sp = (const void *)cap;
            size_t room = info->argsz - off;

            if (room < sizeof(*sp) ||
                sp->nr_areas > (room - sizeof(*sp)) / sizeof(sp->areas[0])) {
                error_setg(errp, "region %u: sparse mmap capability with %u "
                           "areas does not fit", info->index,
                           room < sizeof(*sp) ? 0 : sp->nr_areas);
                return -1;
            }
            for (uint32_t i = 0; i < sp->nr_areas; i++) {
                const struct vfio_region_sparse_mmap_area *a = &sp->areas[i];

                if (a->offset > info->size || a->size > info->size - a->offset) {
                    error_setg(errp, "region %u: mmap area %u [0x%" PRIx64
                               ", +0x%" PRIx64 ") is outside the region of "
                               "0x%" PRIx64 " bytes", info->index, i,
                               (uint64_t)a->offset, (uint64_t)a->size,
                               (uint64_t)info->size);
                    return -1;
                }
            }
            *areas = g_memdup2(sp->areas, sizeof(sp->areas[0]) * sp->nr_areas);
            if (listed) {
                *listed = true;
            }
            return sp->nr_areas;
        }
        off = cap->next;
    }
    return 0;
}
