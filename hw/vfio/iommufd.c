/*
 * The iommufd IOMMU back-end: -object iommufd,id=ID[,fd=N] opens
 * /dev/iommu (or takes a descriptor that a management layer passed), and
 * devices given iommufd=ID bind their cdev to it.  Its devices share one
 * IO address space (IOAS), allocated with the first of them, into which
 * guest RAM is mapped (iommu.c counts the users of each range).
 *
 * A vfio-pci device without iommufd= whose kernel offers a cdev uses a
 * private iommufd object of the same kind, shared by all such devices
 * and freed with the last one.
 *
 * Dirty tracking by the IOMMU (for devices that cannot log their own
 * DMA): when IOMMU_GET_HW_INFO says the device's IOMMU has
 * IOMMU_HW_CAP_DIRTY_TRACKING, the device is attached not to the IOAS
 * itself but to a hardware page table (HWPT) allocated on it with
 * IOMMU_HWPT_ALLOC_DIRTY_TRACKING, shared by the devices it is
 * compatible with; the dirty members turn tracking on and off in every
 * such HWPT and OR their bitmaps.  The HWPTs go with the IOAS, when the
 * last device has gone.
 *
 * BQL, except the dirty members, which the migration thread calls.
 */
#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <linux/iommufd.h>
#include "qom/object.h"
#include "qemu/trace.h"
#include "vfio-kernel.h"

TRACE_DEFINE(vfio_iommufd_attach);

#define TYPE_IOMMUFD "iommufd"

typedef struct IOMMUFDBackend {
    Object parent_obj;          /* unused by the private object */

    /* Properties */
    char *fd_str;

    int fd;
    bool ioas_allocated;
    uint32_t ioas_id;
    GArray *dirty_hwpts;        /* uint32_t: HWPTs with dirty tracking */
    VFIOIOMMU io;
    bool in_use;                /* a device holds io */
} IOMMUFDBackend;

/* The private object of devices without iommufd= (not in the QOM tree). */
static IOMMUFDBackend *implicit_backend;

static IOMMUFDBackend *backend_of(VFIOIOMMU *io)
{
    return container_of(io, IOMMUFDBackend, io);
}

static bool iommufd_dma_map(VFIOIOMMU *io, uint64_t iova, uint64_t size,
                            void *vaddr, bool writable, Error **errp)
{
    IOMMUFDBackend *be = backend_of(io);
    struct iommu_ioas_map map = {
        .size = sizeof(map),
        .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
                 (writable ? IOMMU_IOAS_MAP_WRITEABLE : 0),
        .ioas_id = be->ioas_id,
        .user_va = (uintptr_t)vaddr,
        .length = size,
        .iova = iova,
    };

    if (ioctl(be->fd, IOMMU_IOAS_MAP, &map) < 0) {
        error_setg_errno(errp, errno, "IOAS %u: map of [0x%" PRIx64 ", +0x%"
                         PRIx64 "]", be->ioas_id, iova, size);
        return false;
    }
    return true;
}

static bool iommufd_dma_unmap(VFIOIOMMU *io, uint64_t iova, uint64_t size,
                              Error **errp)
{
    IOMMUFDBackend *be = backend_of(io);
    struct iommu_ioas_unmap unmap = {
        .size = sizeof(unmap),
        .ioas_id = be->ioas_id,
        .iova = iova,
        .length = size,
    };

    if (ioctl(be->fd, IOMMU_IOAS_UNMAP, &unmap) < 0) {
        error_setg_errno(errp, errno, "IOAS %u: unmap of [0x%" PRIx64 ", +0x%"
                         PRIx64 "]", be->ioas_id, iova, size);
        return false;
    }
    return true;
}

static bool hwpt_set_dirty_tracking(IOMMUFDBackend *be, uint32_t hwpt,
                                    bool enable, Error **errp)
{
    struct iommu_hwpt_set_dirty_tracking set = {
        .size = sizeof(set),
        .flags = enable ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0,
        .hwpt_id = hwpt,
    };

    if (ioctl(be->fd, IOMMU_HWPT_SET_DIRTY_TRACKING, &set) < 0) {
        error_setg_errno(errp, errno, "HWPT %u: cannot %s dirty tracking",
                         hwpt, enable ? "start" : "stop");
        return false;
    }
    return true;
}

static bool iommufd_dirty_start(VFIOIOMMU *io, Error **errp)
{
    IOMMUFDBackend *be = backend_of(io);

    for (guint i = 0; i < be->dirty_hwpts->len; i++) {
        if (!hwpt_set_dirty_tracking(be, g_array_index(be->dirty_hwpts,
                                                       uint32_t, i),
                                     true, errp)) {
            while (i--) {
                hwpt_set_dirty_tracking(be, g_array_index(be->dirty_hwpts,
                                                          uint32_t, i),
                                        false, NULL);
            }
            return false;
        }
    }
    return true;
}

static bool iommufd_dirty_stop(VFIOIOMMU *io, Error **errp)
{
    IOMMUFDBackend *be = backend_of(io);
    bool ok = true;

    for (guint i = 0; i < be->dirty_hwpts->len; i++) {
        /* Stop every HWPT; report the first that refused. */
        ok &= hwpt_set_dirty_tracking(be, g_array_index(be->dirty_hwpts,
                                                        uint32_t, i),
                                      false, ok ? errp : NULL);
    }
    return ok;
}

/*
 * The kernel only sets bits in @bitmap (the caller clears it), so the
 * bitmaps of several HWPTs add up: the report covers every device.
 */
static bool iommufd_dirty_report(VFIOIOMMU *io, uint64_t iova, uint64_t size,
                                 uint64_t page_size, uint64_t *bitmap,
                                 Error **errp)
{
    IOMMUFDBackend *be = backend_of(io);

    for (guint i = 0; i < be->dirty_hwpts->len; i++) {
        struct iommu_hwpt_get_dirty_bitmap get = {
            .size = sizeof(get),
            .hwpt_id = g_array_index(be->dirty_hwpts, uint32_t, i),
            .iova = iova,
            .length = size,
            .page_size = page_size,
            .data = (uintptr_t)bitmap,
        };

        if (ioctl(be->fd, IOMMU_HWPT_GET_DIRTY_BITMAP, &get) < 0) {
            error_setg_errno(errp, errno, "HWPT %u: dirty bitmap of [0x%"
                             PRIx64 ", +0x%" PRIx64 "]", get.hwpt_id, iova,
                             size);
            return false;
        }
    }
    return true;
}

static void iommufd_destroy(IOMMUFDBackend *be, uint32_t id, const char *what)
{
    struct iommu_destroy destroy = { .size = sizeof(destroy), .id = id };

    if (ioctl(be->fd, IOMMU_DESTROY, &destroy) < 0) {
        warn_report("iommufd: cannot destroy %s %u: %s", what, id,
                    g_strerror(errno));
    }
}

/*
 * The last device has gone (closing its cdev detached it): the HWPTs and
 * the IOAS go, the fd stays with the object.
 */
static void iommufd_release(VFIOIOMMU *io)
{
    IOMMUFDBackend *be = backend_of(io);

    for (guint i = 0; i < be->dirty_hwpts->len; i++) {
        iommufd_destroy(be, g_array_index(be->dirty_hwpts, uint32_t, i),
                        "HWPT");
    }
    g_clear_pointer(&be->dirty_hwpts, g_array_unref);
    if (be->ioas_allocated) {
        iommufd_destroy(be, be->ioas_id, "IOAS");
    }
    be->ioas_allocated = false;
    be->in_use = false;
    if (be == implicit_backend) {
        close(be->fd);
        implicit_backend = NULL;
        g_free(be);
    }
}

static const VFIOIOMMUOps iommufd_ops = {
    .name = "iommufd",
    .dirty_name = "iommufd-hwpt",
    .dma_map = iommufd_dma_map,
    .dma_unmap = iommufd_dma_unmap,
    .dirty_start = iommufd_dirty_start,
    .dirty_stop = iommufd_dirty_stop,
    .dirty_report = iommufd_dirty_report,
    .release = iommufd_release,
};

static bool iommufd_open(IOMMUFDBackend *be, Error **errp)
{
    be->fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
    if (be->fd < 0) {
        error_setg_errno(errp, errno, "iommufd: cannot open /dev/iommu");
        return false;
    }
    return true;
}

static IOMMUFDBackend *iommufd_find(const char *id, Error **errp)
{
    Object *obj;

    if (!id) {
        if (!implicit_backend) {
            IOMMUFDBackend *be = g_new0(IOMMUFDBackend, 1);

            if (!iommufd_open(be, errp)) {
                g_free(be);
                return NULL;
            }
            implicit_backend = be;
        }
        return implicit_backend;
    }
    obj = object_child(object_get_container("/objects"), id);
    if (!obj || !object_is_type(obj, TYPE_IOMMUFD)) {
        error_setg(errp, "iommufd object '%s' does not exist (create it with "
                   "-object iommufd,id=%s)", id, id);
        return NULL;
    }
    return (IOMMUFDBackend *)obj;
}

/* What IOMMU_GET_HW_INFO says of the device's IOMMU, for info and qom. */
static char *hw_info_describe(IOMMUFDBackend *be, uint32_t dev_id,
                              uint64_t *caps)
{
    struct iommu_hw_info info = { .size = sizeof(info), .dev_id = dev_id };
    static const char *const types[] = {
        [IOMMU_HW_INFO_TYPE_NONE] = "none",
        [IOMMU_HW_INFO_TYPE_INTEL_VTD] = "intel-vtd",
    };

    *caps = 0;
    /* A device behind no IOMMU of its own (an mdev) has no such info. */
    if (ioctl(be->fd, IOMMU_GET_HW_INFO, &info) < 0) {
        return g_strdup_printf("unavailable (%s)", g_strerror(errno));
    }
    *caps = info.out_capabilities;
    if (info.out_data_type < ARRAY_SIZE(types)) {
        return g_strdup_printf("%s, capabilities 0x%" PRIx64,
                               types[info.out_data_type], *caps);
    }
    return g_strdup_printf("type %u, capabilities 0x%" PRIx64,
                           info.out_data_type, *caps);
}

static bool attach_pt(int cdev_fd, uint32_t pt_id, Error **errp)
{
    struct vfio_device_attach_iommufd_pt attach = {
        .argsz = sizeof(attach),
        .pt_id = pt_id,
    };

    if (ioctl(cdev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0) {
        error_setg_errno(errp, errno, "iommufd: cannot attach the device to "
                         "object %u", pt_id);
        return false;
    }
    return true;
}

/*
 * Attach the device to a HWPT with dirty tracking: one it shares with
 * other devices, or a new one.  False when the IOMMU refuses (the caller
 * then attaches to the IOAS).
 */
static bool attach_dirty_hwpt(IOMMUFDBackend *be, int cdev_fd,
                              uint32_t dev_id, Error **errp)
{
    struct iommu_hwpt_alloc alloc = {
        .size = sizeof(alloc),
        .flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
        .dev_id = dev_id,
        .pt_id = be->ioas_id,
        .data_type = IOMMU_HWPT_DATA_NONE,
    };

    /* An HWPT of another IOMMU instance refuses the device (EINVAL). */
    for (guint i = 0; i < be->dirty_hwpts->len; i++) {
        if (attach_pt(cdev_fd, g_array_index(be->dirty_hwpts, uint32_t, i),
                      NULL)) {
            return true;
        }
    }
    if (ioctl(be->fd, IOMMU_HWPT_ALLOC, &alloc) < 0) {
        error_setg_errno(errp, errno, "iommufd: no HWPT with dirty tracking "
                         "on IOAS %u", be->ioas_id);
        return false;
    }
    if (!attach_pt(cdev_fd, alloc.out_hwpt_id, errp)) {
        iommufd_destroy(be, alloc.out_hwpt_id, "HWPT");
        return false;
    }
    g_array_append_val(be->dirty_hwpts, alloc.out_hwpt_id);
    return true;
}

/* Whether the (bound) device offers DMA logging of its own. */
static bool device_logs_dma(int cdev_fd)
{
    struct vfio_device_feature probe = {
        .argsz = sizeof(probe),
        .flags = VFIO_DEVICE_FEATURE_DMA_LOGGING_START |
                 VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET,
    };

    return ioctl(cdev_fd, VFIO_DEVICE_FEATURE, &probe) == 0;
}

VFIOIOMMU *vfio_iommufd_attach(int cdev_fd, const char *id,
                               bool use_device_logging, OnOffAuto dirty_hwpt,
                               bool *dirty, char **hw_info, Error **errp)
{
    IOMMUFDBackend *be = iommufd_find(id, errp);
    struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
    Error *err = NULL;
    bool device_logging;
    uint64_t caps;

    *dirty = false;
    *hw_info = NULL;
    if (!be) {
        return NULL;
    }
    if (!be->in_use) {
        vfio_iommu_init(&be->io, &iommufd_ops);
        be->dirty_hwpts = g_array_new(false, false, sizeof(uint32_t));
        be->in_use = true;
    }
    vfio_iommu_ref(&be->io);
    bind.iommufd = be->fd;
    if (ioctl(cdev_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
        error_setg_errno(errp, errno, "iommufd: cannot bind the device");
        goto fail;
    }
    if (!be->ioas_allocated) {
        struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };

        if (ioctl(be->fd, IOMMU_IOAS_ALLOC, &alloc) < 0) {
            error_setg_errno(errp, errno, "iommufd: cannot allocate an IOAS");
            goto fail;
        }
        be->ioas_id = alloc.out_ioas_id;
        be->ioas_allocated = true;
    }
    *hw_info = hw_info_describe(be, bind.out_devid, &caps);
    device_logging = use_device_logging && device_logs_dma(cdev_fd);
    if (dirty_hwpt == ON_OFF_AUTO_ON) {
        /* Asked for whatever GET_HW_INFO says: the kernel has the word. */
        *dirty = attach_dirty_hwpt(be, cdev_fd, bind.out_devid, errp);
        if (!*dirty) {
            error_prepend(errp, "x-iommufd-dirty-hwpt=on, IOMMU %s: ",
                          *hw_info);
            goto fail;
        }
    } else if (dirty_hwpt == ON_OFF_AUTO_AUTO && !device_logging &&
               (caps & IOMMU_HW_CAP_DIRTY_TRACKING)) {
        *dirty = attach_dirty_hwpt(be, cdev_fd, bind.out_devid, &err);
        if (!*dirty) {
            warn_report("%s; the device's writes are not tracked",
                        error_get_pretty(err));
            g_clear_pointer(&err, error_free);
        }
    }
    trace(vfio_iommufd_attach, "device %u: IOMMU %s; %s", bind.out_devid,
          *hw_info, *dirty ? "attached to a dirty-tracking HWPT" :
          device_logging ? "the device logs its DMA, attached to the IOAS" :
          "attached to the IOAS, no dirty tracking");
    if (!*dirty && !attach_pt(cdev_fd, be->ioas_id, errp)) {
        goto fail;
    }
    return &be->io;

fail:
    g_clear_pointer(hw_info, g_free);
    vfio_iommu_unref(&be->io);
    return NULL;
}

/* ---- -object iommufd ---- */

static bool iommufd_realize(Object *obj, Error **errp)
{
    IOMMUFDBackend *be = (IOMMUFDBackend *)obj;
    int64_t fd;

    if (!be->fd_str) {
        return iommufd_open(be, errp);
    }
    if (qemu_strtoi64(be->fd_str, &fd) < 0 || fd < 0 || fd > INT_MAX ||
        fcntl(fd, F_GETFD) < 0) {
        error_setg(errp, "iommufd '%s': fd=%s is not an open file descriptor",
                   obj->name, be->fd_str);
        return false;
    }
    be->fd = fd;
    return true;
}

static void iommufd_finalize(Object *obj)
{
    IOMMUFDBackend *be = (IOMMUFDBackend *)obj;

    /* Devices hold their object: none is left by now. */
    g_assert(!be->in_use);
    if (be->fd >= 0) {
        close(be->fd);
        be->fd = -1;
    }
}

static const Property iommufd_props[] = {
    DEFINE_PROP("fd", PROP_TYPE_STR, IOMMUFDBackend, fd_str, NULL,
                "an open /dev/iommu descriptor passed by the caller "
                "(default: open /dev/iommu)"),
    { 0 }
};

static const ObjectClass iommufd_class = {
    .name = TYPE_IOMMUFD,
    .desc = "an iommufd context that vfio-pci devices bind to (iommufd=ID)",
    .instance_size = sizeof(IOMMUFDBackend),
    .props = iommufd_props,
    .user_creatable = true,
    .realize = iommufd_realize,
    .finalize = iommufd_finalize,
};

static void iommufd_register_types(void)
{
    type_register(&iommufd_class);
}
type_init(iommufd_register_types)
