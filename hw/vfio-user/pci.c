/*
 * vfio-user-pci: a PCI device served by another process over vfio-user.
 *
 *   -device vfio-user-pci,socket=PATH[,id=ID][,enable-migration=on|off|auto]
 *   -device vfio-user-pci,socket.type=unix,socket.path=PATH
 *
 * Realize connects, negotiates the version, reads the config space and
 * the BARs (mapping those the server offers with an fd), wires the
 * completion interrupt to an eventfd (MSI-X, else MSI, else INTx), maps
 * every guest RAM block for DMA with its fd, resets the device, and hands
 * it to hw/vfio (migration, dirty tracking).  The VFIODeviceIOOps below
 * turn hw/vfio's requests into vfio-user messages through the client in
 * include/hw/vfio-user/client.h.
 */
#include "qemu/osdep.h"
#include "hw/vfio/vfio-device.h"
#include "hw/vfio-user/client.h"
#include "system/ramblock.h"

#include <sys/mman.h>

#define TYPE_VFIO_USER_PCI "vfio-user-pci"
#define VFIO_USER_PCI_BARS 6

typedef struct VFIOUserPCIBar {
    uint64_t size;
    uint32_t flags;
    void *mmap;                     /* whole-region mapping, or NULL */
} VFIOUserPCIBar;

typedef struct VFIOUserPCIDevice {
    Object parent_obj;

    /* Properties */
    char *socket;
    char *socket_type;
    char *socket_path;
    bool x_no_extensions;

    /* Set by realize */
    VFIOUserProxy *proxy;
    VFIOUserPCIBar bars[VFIO_USER_PCI_BARS];
    bool attached;
    /* The ops without the extensions this server did not offer. */
    VFIODeviceIOOps io_ops;
    VFIODevice vdev;
} VFIOUserPCIDevice;

static VFIOUserProxy *proxy_of(VFIODevice *vdev)
{
    return container_of(vdev, VFIOUserPCIDevice, vdev)->proxy;
}

/* ---- VFIODeviceIOOps over vfio-user messages ---- */

static struct vfio_region_info *vup_region_info(VFIODevice *vdev,
                                                uint32_t index, int *mmap_fd,
                                                Error **errp)
{
    return vfio_user_get_region_info(proxy_of(vdev), index, mmap_fd, errp);
}

static bool vup_region_read(VFIODevice *vdev, uint32_t index,
                            uint64_t offset, void *buf, size_t len,
                            Error **errp)
{
    return vfio_user_region_read(proxy_of(vdev), index, offset, buf, len,
                                 errp);
}

static bool vup_region_write(VFIODevice *vdev, uint32_t index,
                             uint64_t offset, const void *buf, size_t len,
                             Error **errp)
{
    return vfio_user_region_write(proxy_of(vdev), index, offset, buf, len,
                                  errp);
}

static bool vup_irq_info(VFIODevice *vdev, uint32_t index,
                         struct vfio_irq_info *info, Error **errp)
{
    return vfio_user_get_irq_info(proxy_of(vdev), index, info, errp);
}

static bool vup_set_irqs(VFIODevice *vdev, uint32_t index, uint32_t flags,
                         uint32_t start, uint32_t count, const int *fds,
                         Error **errp)
{
    return vfio_user_set_irqs(proxy_of(vdev), index, flags, start, count,
                              fds, NULL, errp);
}

static bool vup_reset(VFIODevice *vdev, Error **errp)
{
    return vfio_user_device_reset(proxy_of(vdev), errp);
}

static bool vup_device_feature(VFIODevice *vdev, uint32_t flags,
                               const void *data, size_t len, void *out,
                               size_t out_len, uint32_t *dev_errno,
                               Error **errp)
{
    return vfio_user_device_feature(proxy_of(vdev), flags, data, len, out,
                                    out_len, dev_errno, errp);
}

static bool vup_mig_get_flags(VFIODevice *vdev, uint64_t *flags,
                              Error **errp)
{
    return vfio_user_mig_get_flags(proxy_of(vdev), flags, errp);
}

static bool vup_mig_get_state(VFIODevice *vdev, uint32_t *state,
                              Error **errp)
{
    return vfio_user_mig_get_state(proxy_of(vdev), state, errp);
}

static bool vup_mig_set_state(VFIODevice *vdev, uint32_t state, Error **errp)
{
    return vfio_user_mig_set_state(proxy_of(vdev), state, NULL, errp);
}

static bool vup_mig_data_size(VFIODevice *vdev, uint64_t *len, Error **errp)
{
    return vfio_user_mig_data_size(proxy_of(vdev), len, errp);
}

static bool vup_mig_precopy_info(VFIODevice *vdev, uint64_t *initial,
                                 uint64_t *dirty, Error **errp)
{
    return vfio_user_mig_precopy_info(proxy_of(vdev), initial, dirty, errp);
}

static int64_t vup_mig_data_drain(VFIODevice *vdev, uint64_t max_bytes,
                                  VFIOMigDataSink *sink, void *opaque,
                                  bool *end, Error **errp)
{
    return vfio_user_mig_data_drain(proxy_of(vdev), max_bytes, sink, opaque,
                                    end, errp);
}

static bool vup_mig_data_writev(VFIODevice *vdev, const struct iovec *iov,
                                unsigned iov_cnt, Error **errp)
{
    return vfio_user_mig_data_writev(proxy_of(vdev), iov, iov_cnt, errp);
}

static bool vup_dma_map(VFIODevice *vdev, uint64_t iova, uint64_t size,
                        int fd, uint64_t offset, bool writable, Error **errp)
{
    uint32_t prot = VFIO_USER_F_DMA_REGION_READ |
                    (writable ? VFIO_USER_F_DMA_REGION_WRITE : 0);

    return vfio_user_dma_map(proxy_of(vdev), iova, size, fd, offset, prot,
                             errp);
}

static bool vup_dma_unmap(VFIODevice *vdev, uint64_t iova, uint64_t size,
                          Error **errp)
{
    return vfio_user_dma_unmap(proxy_of(vdev), iova, size, errp);
}

static bool vup_dma_logging_start(VFIODevice *vdev, uint64_t *page_size,
        const struct vfio_device_feature_dma_logging_range *ranges,
        uint32_t nr_ranges, Error **errp)
{
    return vfio_user_dma_logging_start(proxy_of(vdev), page_size, ranges,
                                       nr_ranges, errp);
}

static bool vup_dma_logging_stop(VFIODevice *vdev, Error **errp)
{
    return vfio_user_dma_logging_stop(proxy_of(vdev), errp);
}

static bool vup_dma_logging_report(VFIODevice *vdev, uint64_t iova,
                                   uint64_t length, uint64_t page_size,
                                   uint64_t *bitmap, Error **errp)
{
    return vfio_user_dma_logging_report(proxy_of(vdev), iova, length,
                                        page_size, bitmap, errp);
}

static const VFIODeviceIOOps vfio_user_pci_io_ops = {
    .region_info = vup_region_info,
    .region_read = vup_region_read,
    .region_write = vup_region_write,
    .irq_info = vup_irq_info,
    .set_irqs = vup_set_irqs,
    .reset = vup_reset,
    .device_feature = vup_device_feature,
    .mig_get_flags = vup_mig_get_flags,
    .mig_get_state = vup_mig_get_state,
    .mig_set_state = vup_mig_set_state,
    .mig_data_size = vup_mig_data_size,
    .mig_precopy_info = vup_mig_precopy_info,
    .mig_data_drain = vup_mig_data_drain,
    .mig_data_writev = vup_mig_data_writev,
    .dma_map = vup_dma_map,
    .dma_unmap = vup_dma_unmap,
    .dma_logging_start = vup_dma_logging_start,
    .dma_logging_stop = vup_dma_logging_stop,
    .dma_logging_report = vup_dma_logging_report,
};

/* ---- Server-to-client DMA, for RAM blocks without an fd ---- */

static int vup_dma_read_cb(void *opaque, uint64_t iova, void *buf,
                           uint64_t len)
{
    return guest_ram_read(iova, buf, len) ? 0 : EFAULT;
}

static int vup_dma_write_cb(void *opaque, uint64_t iova, const void *buf,
                            uint64_t len)
{
    /* Goes through the guest memory API, so the dirty log sees it. */
    return guest_ram_write(iova, buf, len) ? 0 : EFAULT;
}

/* ---- Realize ---- */

static const char *vup_socket_path(VFIOUserPCIDevice *d, Error **errp)
{
    if (d->socket && d->socket_path) {
        error_setg(errp, "vfio-user-pci: give socket=PATH or socket.path=PATH,"
                   " not both");
        return NULL;
    }
    if (d->socket_type && strcmp(d->socket_type, "unix")) {
        error_setg(errp, "vfio-user-pci: socket.type=%s is not supported "
                   "(only unix)", d->socket_type);
        return NULL;
    }
    if (!d->socket && !d->socket_path) {
        error_setg(errp, "vfio-user-pci: socket=PATH is required");
        return NULL;
    }
    return d->socket ? d->socket : d->socket_path;
}

static bool vup_read_config(VFIOUserPCIDevice *d, Error **errp)
{
    VFIODevice *vdev = &d->vdev;
    g_autofree struct vfio_region_info *info = NULL;
    int fd = -1;
    uint16_t vendor;

    info = vfio_user_get_region_info(d->proxy, VFIO_PCI_CONFIG_REGION_INDEX,
                                     &fd, errp);
    if (fd >= 0) {
        close(fd);
    }
    if (!info) {
        error_prepend(errp, "%s: config space: ", vdev->name);
        return false;
    }
    if (info->size < sizeof(vdev->config)) {
        error_setg(errp, "%s: config space of %" PRIu64 " bytes is too small "
                   "(at least %zu)", vdev->name, (uint64_t)info->size,
                   sizeof(vdev->config));
        return false;
    }
    if (!vfio_user_region_read(d->proxy, VFIO_PCI_CONFIG_REGION_INDEX, 0,
                               vdev->config, sizeof(vdev->config), errp)) {
        error_prepend(errp, "%s: reading config space: ", vdev->name);
        return false;
    }
    vendor = vdev->config[0] | vdev->config[1] << 8;
    if (vendor == 0xffff || vendor == 0) {
        error_setg(errp, "%s: no PCI function behind the socket (vendor ID "
                   "0x%04x)", vdev->name, vendor);
        return false;
    }
    return true;
}

static bool vup_setup_bars(VFIOUserPCIDevice *d, Error **errp)
{
    for (uint32_t i = 0; i < VFIO_USER_PCI_BARS; i++) {
        g_autofree struct vfio_region_info *info = NULL;
        g_autofree struct vfio_region_sparse_mmap_area *areas = NULL;
        VFIOUserPCIBar *bar = &d->bars[i];
        int fd = -1, nr_areas;
        bool listed;

        info = vfio_user_get_region_info(d->proxy, i, &fd, errp);
        if (!info) {
            error_prepend(errp, "%s: BAR%u: ", d->vdev.name, i);
            return false;
        }
        bar->size = info->size;
        bar->flags = info->flags;
        if (fd < 0) {
            continue;
        }
        /*
         * Map only a region that is mappable as a whole (a sparse list,
         * even an empty one, says it is not).
         */
        nr_areas = vfio_region_sparse_areas(info, &areas, &listed, NULL);
        if ((info->flags & VFIO_REGION_INFO_FLAG_MMAP) && nr_areas == 0 &&
            !listed && info->size) {
            int prot = PROT_READ |
                       (info->flags & VFIO_REGION_INFO_FLAG_WRITE ?
                        PROT_WRITE : 0);
            void *p = mmap(NULL, info->size, prot, MAP_SHARED, fd,
                           info->offset);

            bar->mmap = p == MAP_FAILED ? NULL : p;
        }
        close(fd);
    }
    return true;
}

static bool vup_map_ram(VFIOUserPCIDevice *d, Error **errp)
{
    VFIODevice *vdev = &d->vdev;
    unsigned n = 0;

    RAMBLOCK_FOREACH(rb) {
        n++;
    }
    vdev->dma_ranges = g_new0(VFIODMARange, n);
    RAMBLOCK_FOREACH(rb) {
        int fd = rb->shared ? rb->fd : -1;

        if (!vfio_user_dma_map(d->proxy, rb->gpa, rb->size, fd,
                               rb->fd_offset,
                               VFIO_USER_F_DMA_REGION_READ |
                               VFIO_USER_F_DMA_REGION_WRITE, errp)) {
            error_prepend(errp, "%s: DMA_MAP of RAM block '%s': ",
                          vdev->name, rb->idstr);
            return false;
        }
        vdev->dma_ranges[vdev->nr_dma_ranges].iova = rb->gpa;
        vdev->dma_ranges[vdev->nr_dma_ranges].size = rb->size;
        vdev->nr_dma_ranges++;
    }
    return true;
}

static void vup_finalize(Object *obj);

/*
 * The connection ended under us (receive thread): say so at once, with
 * the device and the reason, rather than only at the next request.
 */
static void vup_closed_cb(void *opaque, const char *reason)
{
    VFIOUserPCIDevice *d = opaque;

    warn_report("%s: lost the connection to the vfio-user server: %s",
                d->vdev.name, reason);
}

static bool vup_realize(Object *obj, Error **errp)
{
    VFIOUserPCIDevice *d = (VFIOUserPCIDevice *)obj;
    VFIODevice *vdev = &d->vdev;
    VFIOUserConnectOptions opts = {
        .dma_read = vup_dma_read_cb,
        .dma_write = vup_dma_write_cb,
        .dma_opaque = d,
        .no_extensions = d->x_no_extensions,
        .closed = vup_closed_cb,
        .closed_opaque = d,
    };
    struct vfio_user_device_info info;
    const VFIOUserPeerCaps *caps;
    const char *path;

    vdev->irq_fd = -1;
    vdev->owner = obj;
    vdev->id = g_strdup(obj->name);
    vdev->name = g_strdup_printf("vfio-user-pci %s", obj->name);

    path = vup_socket_path(d, errp);
    if (!path) {
        goto fail;
    }
    d->proxy = vfio_user_connect(path, &opts, errp);
    if (!d->proxy) {
        error_prepend(errp, "%s: cannot connect to the server at '%s': ",
                      vdev->name, path);
        goto fail;
    }
    caps = vfio_user_peer_caps(d->proxy);
    /*
     * Without an extension the migration code falls back (a default
     * stop-copy size, no precopy info): leave its op out.
     */
    d->io_ops = vfio_user_pci_io_ops;
    if (!caps->mig_data_size) {
        d->io_ops.mig_data_size = NULL;
    }
    if (!caps->precopy_info) {
        d->io_ops.mig_precopy_info = NULL;
    }
    vdev->io_ops = &d->io_ops;

    if (!vfio_user_get_device_info(d->proxy, &info, errp)) {
        error_prepend(errp, "%s: ", vdev->name);
        goto fail;
    }
    if (!(info.flags & VFIO_DEVICE_FLAGS_PCI) ||
        info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
        error_setg(errp, "%s: the server at '%s' is not a PCI device (flags "
                   "0x%x, %u regions)", vdev->name, path, info.flags,
                   info.num_regions);
        goto fail;
    }
    if (!vup_read_config(d, errp) || !vup_setup_bars(d, errp) ||
        !vfio_device_setup_irq(vdev, errp) || !vup_map_ram(d, errp)) {
        goto fail;
    }
    if (!vfio_user_device_reset(d->proxy, errp)) {
        error_prepend(errp, "%s: ", vdev->name);
        goto fail;
    }
    if (!vfio_device_attach(vdev, errp)) {
        goto fail;
    }
    d->attached = true;
    return true;

fail:
    vup_finalize(obj);
    return false;
}

static void vup_finalize(Object *obj)
{
    VFIOUserPCIDevice *d = (VFIOUserPCIDevice *)obj;
    VFIODevice *vdev = &d->vdev;

    if (d->attached) {
        vfio_device_detach(vdev);
        d->attached = false;
    }
    for (unsigned i = 0; i < VFIO_USER_PCI_BARS; i++) {
        if (d->bars[i].mmap) {
            munmap(d->bars[i].mmap, d->bars[i].size);
            d->bars[i].mmap = NULL;
        }
    }
    if (d->proxy) {
        vfio_user_disconnect(d->proxy);
        d->proxy = NULL;
    }
    vfio_device_release_irq(vdev);
    g_clear_pointer(&vdev->dma_ranges, g_free);
    vdev->nr_dma_ranges = 0;
    g_clear_pointer(&vdev->name, g_free);
    g_clear_pointer(&vdev->id, g_free);
}

static const Property vup_props[] = {
    DEFINE_PROP("socket", PROP_TYPE_STR, VFIOUserPCIDevice, socket, NULL,
                "UNIX socket path of the vfio-user server"),
    DEFINE_PROP("socket.type", PROP_TYPE_STR, VFIOUserPCIDevice, socket_type,
                NULL, "socket type (unix)"),
    DEFINE_PROP("socket.path", PROP_TYPE_STR, VFIOUserPCIDevice, socket_path,
                NULL, "UNIX socket path (with socket.type=unix)"),
    VFIO_DEVICE_PROPS(VFIOUserPCIDevice, vdev),
    DEFINE_PROP("x-no-extensions", PROP_TYPE_BOOL, VFIOUserPCIDevice,
                x_no_extensions, "off",
                "testing only: offer none of vmig's vfio-user extensions "
                "(MIG_DATA_SIZE, precopy info), as a plain 0.9.2 client"),
    { 0 }
};

static const ObjectClass vup_class = {
    .name = TYPE_VFIO_USER_PCI,
    .parent = "device",
    .desc = "a PCI device served by another process over vfio-user",
    .instance_size = sizeof(VFIOUserPCIDevice),
    .props = vup_props,
    .user_creatable = true,
    .realize = vup_realize,
    .finalize = vup_finalize,
};

static void vup_register_types(void)
{
    type_register(&vup_class);
}
type_init(vup_register_types)
