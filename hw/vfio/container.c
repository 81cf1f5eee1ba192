/*
 * The legacy VFIO IOMMU back-end: /dev/vfio/vfio with the type1 v2 IOMMU,
 * and the groups (/dev/vfio/N) whose devices vmig uses.
 *
 * Every group of the process joins one container, so guest RAM is
 * mapped once for all of them (iommu.c counts the users of each range);
 * the container lives while a device holds it, and its groups with it.
 *
 * All of it runs with the BQL (realize and unrealize), except the dirty
 * page report, which only the migration thread makes.
 */
#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include "vfio-kernel.h"

typedef struct ContainerGroup {
    int id;
    int fd;
} ContainerGroup;

typedef struct VFIOContainer {
    VFIOIOMMU io;
    int fd;
    bool iommu_set;             /* VFIO_SET_IOMMU done (needs a group) */
    GArray *groups;             /* ContainerGroup */
    bool dirty_supported;       /* the type1 IOMMU has dirty page tracking */
    uint64_t dirty_pgsizes;
} VFIOContainer;

static VFIOContainer *the_container;

static VFIOContainer *container_of_io(VFIOIOMMU *io)
{
    return container_of(io, VFIOContainer, io);
}

static bool container_dma_map(VFIOIOMMU *io, uint64_t iova, uint64_t size,
                              void *vaddr, bool writable, Error **errp)
{
    struct vfio_iommu_type1_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_DMA_MAP_FLAG_READ |
                 (writable ? VFIO_DMA_MAP_FLAG_WRITE : 0),
        .vaddr = (uintptr_t)vaddr,
        .iova = iova,
        .size = size,
    };

    if (ioctl(container_of_io(io)->fd, VFIO_IOMMU_MAP_DMA, &map) < 0) {
        error_setg_errno(errp, errno, "DMA map of [0x%" PRIx64 ", +0x%"
                         PRIx64 "]", iova, size);
        return false;
    }
    return true;
}

static bool container_dma_unmap(VFIOIOMMU *io, uint64_t iova, uint64_t size,
                                Error **errp)
{
    struct vfio_iommu_type1_dma_unmap unmap = {
        .argsz = sizeof(unmap),
        .iova = iova,
        .size = size,
    };

    if (ioctl(container_of_io(io)->fd, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0) {
        error_setg_errno(errp, errno, "DMA unmap of [0x%" PRIx64 ", +0x%"
                         PRIx64 "]", iova, size);
        return false;
    }
    return true;
}

static bool container_dirty_ctl(VFIOContainer *c, uint32_t flag,
                                Error **errp)
{
    struct vfio_iommu_type1_dirty_bitmap ctl = {
        .argsz = sizeof(ctl),
        .flags = flag,
    };

    if (ioctl(c->fd, VFIO_IOMMU_DIRTY_PAGES, &ctl) < 0) {
        error_setg_errno(errp, errno, "dirty page tracking %s",
                         flag == VFIO_IOMMU_DIRTY_PAGES_FLAG_START ?
                         "start" : "stop");
        return false;
    }
    return true;
}

static bool container_dirty_start(VFIOIOMMU *io, Error **errp)
{
    VFIOContainer *c = container_of_io(io);

    if (!c->dirty_supported) {
        error_setg(errp, "the type1 IOMMU has no dirty page tracking");
        return false;
    }
    return container_dirty_ctl(c, VFIO_IOMMU_DIRTY_PAGES_FLAG_START, errp);
}

static bool container_dirty_stop(VFIOIOMMU *io, Error **errp)
{
    return container_dirty_ctl(container_of_io(io),
                               VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, errp);
}

static bool container_dirty_report(VFIOIOMMU *io, uint64_t iova,
                                   uint64_t size, uint64_t page_size,
                                   uint64_t *bitmap, Error **errp)
{
    VFIOContainer *c = container_of_io(io);
    uint64_t pages = size / page_size;
    g_autofree struct vfio_iommu_type1_dirty_bitmap *ctl = g_malloc0(
        sizeof(*ctl) + sizeof(struct vfio_iommu_type1_dirty_bitmap_get));
    struct vfio_iommu_type1_dirty_bitmap_get *get = (void *)ctl->data;

    if (!(c->dirty_pgsizes & page_size)) {
        error_setg(errp, "dirty bitmaps of %" PRIu64 "-byte "
                   "pages are not offered (sizes 0x%" PRIx64 ")", page_size,
                   c->dirty_pgsizes);
        return false;
    }
    ctl->argsz = sizeof(*ctl) + sizeof(*get);
    ctl->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    get->iova = iova;
    get->size = size;
    get->bitmap.pgsize = page_size;
    get->bitmap.size = DIV_ROUND_UP(pages, 64) * 8;
    get->bitmap.data = (__u64 *)bitmap;
    if (ioctl(c->fd, VFIO_IOMMU_DIRTY_PAGES, ctl) < 0) {
        error_setg_errno(errp, errno, "dirty bitmap of [0x%" PRIx64 ", +0x%"
                         PRIx64 "]", iova, size);
        return false;
    }
    return true;
}

static void container_release(VFIOIOMMU *io)
{
    VFIOContainer *c = container_of_io(io);

    for (guint i = 0; i < c->groups->len; i++) {
        close(g_array_index(c->groups, ContainerGroup, i).fd);
    }
    g_array_free(c->groups, true);
    close(c->fd);
    the_container = NULL;
    g_free(c);
}

static const VFIOIOMMUOps container_ops = {
    .name = "legacy",
    .dirty_name = "iommu",
    .dma_map = container_dma_map,
    .dma_unmap = container_dma_unmap,
    .dirty_start = container_dirty_start,
    .dirty_stop = container_dirty_stop,
    .dirty_report = container_dirty_report,
    .release = container_release,
};

static VFIOContainer *container_get(Error **errp)
{
    VFIOContainer *c = the_container;
    int fd, version;

    if (c) {
        return c;
    }
    fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open /dev/vfio/vfio");
        return NULL;
    }
    version = ioctl(fd, VFIO_GET_API_VERSION);
    if (version != VFIO_API_VERSION) {
        error_setg(errp, "/dev/vfio/vfio: VFIO API version %d, this vmig "
                   "speaks %d", version, VFIO_API_VERSION);
        close(fd);
        return NULL;
    }
    if (ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1) {
        error_setg(errp, "/dev/vfio/vfio: the type1 v2 IOMMU is not "
                   "available");
        close(fd);
        return NULL;
    }
    c = g_new0(VFIOContainer, 1);
    vfio_iommu_init(&c->io, &container_ops);
    c->fd = fd;
    c->groups = g_array_new(false, true, sizeof(ContainerGroup));
    the_container = c;
    return c;
}

/* The type1 IOMMU's capabilities, once the first group made it usable. */
static void container_probe(VFIOContainer *c)
{
    g_autofree struct vfio_iommu_type1_info *info =
        g_malloc0(sizeof(*info));
    uint32_t argsz = sizeof(*info);
    struct vfio_info_cap_header *hdr;

    for (;;) {
        info->argsz = argsz;
        if (ioctl(c->fd, VFIO_IOMMU_GET_INFO, info) < 0) {
            return;
        }
        if (info->argsz <= argsz) {
            break;
        }
        argsz = info->argsz;
        info = g_realloc(info, argsz);
        memset(info, 0, argsz);
    }
    if (!(info->flags & VFIO_IOMMU_INFO_CAPS)) {
        return;
    }
    /* The capability chain: offsets from the start, each checked. */
    for (uint32_t off = info->cap_offset;
         off && off + sizeof(*hdr) <= argsz; off = hdr->next) {
        hdr = (void *)((uint8_t *)info + off);
        if (hdr->id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION &&
            off + sizeof(struct vfio_iommu_type1_info_cap_migration) <=
            argsz) {
            struct vfio_iommu_type1_info_cap_migration *mig = (void *)hdr;

            c->dirty_supported = true;
            c->dirty_pgsizes = mig->pgsize_bitmap;
        }
        if (hdr->next <= off) {
            break;
        }
    }
}

static int container_add_group(VFIOContainer *c, int group, Error **errp)
{
    g_autofree char *path = g_strdup_printf("/dev/vfio/%d", group);
    struct vfio_group_status status = { .argsz = sizeof(status) };
    ContainerGroup g = { .id = group };

    for (guint i = 0; i < c->groups->len; i++) {
        ContainerGroup *have = &g_array_index(c->groups, ContainerGroup, i);

        if (have->id == group) {
            return have->fd;
        }
    }
    g.fd = open(path, O_RDWR | O_CLOEXEC);
    if (g.fd < 0) {
        error_setg_errno(errp, errno, "cannot open %s", path);
        return -1;
    }
    if (ioctl(g.fd, VFIO_GROUP_GET_STATUS, &status) < 0) {
        error_setg_errno(errp, errno, "%s: group status", path);
        goto fail;
    }
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        error_setg(errp, "%s is not viable: bind every device of IOMMU group "
                   "%d to a VFIO driver", path, group);
        goto fail;
    }
    if (ioctl(g.fd, VFIO_GROUP_SET_CONTAINER, &c->fd) < 0) {
        error_setg_errno(errp, errno, "%s: cannot join the container", path);
        goto fail;
    }
    if (!c->iommu_set) {
        if (ioctl(c->fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
            error_setg_errno(errp, errno, "VFIO container: cannot set the "
                             "type1 v2 IOMMU");
            ioctl(g.fd, VFIO_GROUP_UNSET_CONTAINER);
            goto fail;
        }
        c->iommu_set = true;
        container_probe(c);
    }
    g_array_append_val(c->groups, g);
    return g.fd;

fail:
    close(g.fd);
    return -1;
}

int vfio_container_get_device(int group, const char *name,
                              VFIOIOMMU **iommu, bool *dirty, Error **errp)
{
    VFIOContainer *c = container_get(errp);
    int group_fd, fd;

    if (!c) {
        return -1;
    }
    vfio_iommu_ref(&c->io);
    group_fd = container_add_group(c, group, errp);
    if (group_fd >= 0) {
        fd = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, name);
        if (fd >= 0) {
            *iommu = &c->io;
            *dirty = c->dirty_supported;
            return fd;
        }
        error_setg_errno(errp, errno, "/dev/vfio/%d: no device '%s'", group,
                         name);
    }
    vfio_iommu_unref(&c->io);
    return -1;
}
