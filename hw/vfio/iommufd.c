/*
 * The iommufd IOMMU back-end: -object iommufd,id=ID[,fd=N] opens
 * /dev/iommu (or takes a descriptor that a management layer passed), and
 * devices given iommufd=ID bind their cdev to it.  Its devices share one
 * IO address space (IOAS), allocated with the first of them, into which
 * guest RAM is mapped (iommu.c counts the users of each range).
 *
 * A vfio-pci device without iommufd= whose kernel offers a cdev uses a
 * private iommufd object of the same kind, shared by all such devices
 * and freed with the last one.  BQL.
 */
#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <linux/iommufd.h>
#include "qom/object.h"
#include "vfio-kernel.h"

#define TYPE_IOMMUFD "iommufd"

typedef struct IOMMUFDBackend {
    Object parent_obj;          /* unused by the private object */

    /* Properties */
    char *fd_str;

    int fd;
    bool ioas_allocated;
    uint32_t ioas_id;
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

/* The last device has gone: the IOAS goes, the fd stays with the object. */
static void iommufd_release(VFIOIOMMU *io)
{
    IOMMUFDBackend *be = backend_of(io);
    struct iommu_destroy destroy = { .size = sizeof(destroy),
                                     .id = be->ioas_id };

    if (be->ioas_allocated && ioctl(be->fd, IOMMU_DESTROY, &destroy) < 0) {
        warn_report("iommufd: cannot destroy IOAS %u: %s", be->ioas_id,
                    g_strerror(errno));
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
    .dma_map = iommufd_dma_map,
    .dma_unmap = iommufd_dma_unmap,
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

VFIOIOMMU *vfio_iommufd_attach(int cdev_fd, const char *id, Error **errp)
{
    IOMMUFDBackend *be = iommufd_find(id, errp);
    struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
    struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };

    if (!be) {
        return NULL;
    }
    if (!be->in_use) {
        vfio_iommu_init(&be->io, &iommufd_ops);
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
    attach.pt_id = be->ioas_id;
    if (ioctl(cdev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0) {
        error_setg_errno(errp, errno, "iommufd: cannot attach the device to "
                         "IOAS %u", be->ioas_id);
        goto fail;
    }
    return &be->io;

fail:
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
