/*
 * The common VFIO device: registry, region helpers, interrupt wait, and
 * the wiring of migration and dirty tracking at attach time.
 */
#include "qemu/osdep.h"
#include "vfio-internal.h"

#include <poll.h>
#include <sys/eventfd.h>

TRACE_DEFINE(vfio_mig_state);
TRACE_DEFINE(vfio_mig_arc);
TRACE_DEFINE(vfio_mig_state_fail);
TRACE_DEFINE(vfio_save_setup);
TRACE_DEFINE(vfio_save_iterate);
TRACE_DEFINE(vfio_save_complete);
TRACE_DEFINE(vfio_save_state);
TRACE_DEFINE(vfio_save_cleanup);
TRACE_DEFINE(vfio_state_pending);
TRACE_DEFINE(vfio_load_setup);
TRACE_DEFINE(vfio_load_state);
TRACE_DEFINE(vfio_load_data);
TRACE_DEFINE(vfio_load_cleanup);
TRACE_DEFINE(vfio_vmstate_change);
TRACE_DEFINE(vfio_dirty_log_start);
TRACE_DEFINE(vfio_dirty_log_sync);
TRACE_DEFINE(vfio_dirty_log_stop);
TRACE_DEFINE(vfio_pci_open);
TRACE_DEFINE(vfio_dma_map);
TRACE_DEFINE(vfio_dma_unmap);
TRACE_DEFINE(vfio_iommu_dirty);
TRACE_DEFINE(vfio_multifd_packet);
TRACE_DEFINE(vfio_multifd_load_start);
TRACE_DEFINE(vfio_multifd_save_start);

/* Changed with the BQL held while the machine is built or torn down. */
static GPtrArray *vfio_devices;

static bool irq_count_get(Object *obj, ObjectProperty *prop, PropValue *val,
                          Error **errp)
{
    VFIODevice *vdev = prop->opaque;

    val->u64 = __atomic_load_n(&vdev->irq_count, __ATOMIC_RELAXED);
    return true;
}

bool vfio_device_attach(VFIODevice *vdev, Error **errp)
{
    g_mutex_init(&vdev->config_lock);
    if (!vfio_migration_realize(vdev, errp)) {
        g_mutex_clear(&vdev->config_lock);
        return false;
    }
    object_property_add(vdev->owner, "x-irq-count", PROP_TYPE_U64,
                        "completion interrupts taken so far", irq_count_get,
                        NULL, vdev);
    if (!vfio_dirty_tracking_init(vdev, errp)) {
        vfio_migration_exit(vdev);
        g_mutex_clear(&vdev->config_lock);
        return false;
    }
    if (!vfio_devices) {
        vfio_devices = g_ptr_array_new();
    }
    g_ptr_array_add(vfio_devices, vdev);
    return true;
}

void vfio_device_detach(VFIODevice *vdev)
{
    if (vfio_devices && g_ptr_array_remove(vfio_devices, vdev)) {
        vfio_dirty_tracking_exit(vdev);
        vfio_migration_exit(vdev);
        g_mutex_clear(&vdev->config_lock);
    }
}

unsigned vfio_device_count(void)
{
    return vfio_devices ? vfio_devices->len : 0;
}

VFIODevice *vfio_device_nth(unsigned i)
{
    return i < vfio_device_count() ? g_ptr_array_index(vfio_devices, i)
                                   : NULL;
}

VFIODevice *vfio_device_find(const char *id)
{
    for (unsigned i = 0; i < vfio_device_count(); i++) {
        VFIODevice *vdev = vfio_device_nth(i);

        if (!g_strcmp0(vdev->id, id)) {
            return vdev;
        }
    }
    return NULL;
}

GPtrArray *vfio_device_lookup(const char *ids, const char *who, Error **errp)
{
    GPtrArray *found = g_ptr_array_new();

    if (ids && *ids) {
        g_auto(GStrv) list = g_strsplit(ids, ":", -1);

        for (unsigned i = 0; list[i]; i++) {
            VFIODevice *vdev = vfio_device_find(list[i]);

            if (!vdev) {
                error_setg(errp, "%s: devices=%s: no VFIO device '%s'", who,
                           ids, list[i]);
                g_ptr_array_free(found, true);
                return NULL;
            }
            g_ptr_array_add(found, vdev);
        }
    } else {
        for (unsigned i = 0; i < vfio_device_count(); i++) {
            g_ptr_array_add(found, vfio_device_nth(i));
        }
    }
    if (!found->len) {
        error_setg(errp, "%s: there is no VFIO device to drive", who);
        g_ptr_array_free(found, true);
        return NULL;
    }
    return found;
}

bool vfio_device_region_read(VFIODevice *vdev, uint32_t index,
                             uint64_t offset, void *buf, size_t len,
                             Error **errp)
{
    return vdev->io_ops->region_read(vdev, index, offset, buf, len, errp);
}

bool vfio_device_region_write(VFIODevice *vdev, uint32_t index,
                              uint64_t offset, const void *buf, size_t len,
                              Error **errp)
{
    if (index != VFIO_PCI_CONFIG_REGION_INDEX) {
        return vdev->io_ops->region_write(vdev, index, offset, buf, len,
                                          errp);
    }
    /* The copy changes with the device, under the lock, in order. */
    g_mutex_lock(&vdev->config_lock);
    if (!vdev->io_ops->region_write(vdev, index, offset, buf, len, errp)) {
        g_mutex_unlock(&vdev->config_lock);
        return false;
    }
    if (offset < sizeof(vdev->config)) {
        memcpy(vdev->config + offset, buf,
               MIN(len, sizeof(vdev->config) - offset));
    }
    g_mutex_unlock(&vdev->config_lock);
    return true;
}

void vfio_device_config_snapshot(VFIODevice *vdev,
                                 uint8_t out[sizeof(vdev->config)])
{
    g_mutex_lock(&vdev->config_lock);
    memcpy(out, vdev->config, sizeof(vdev->config));
    g_mutex_unlock(&vdev->config_lock);
}

/* Device registers are little-endian (PCI). */
bool vfio_device_read64(VFIODevice *vdev, uint32_t index, uint64_t offset,
                        uint64_t *val, Error **errp)
{
    uint64_t le;

    if (!vfio_device_region_read(vdev, index, offset, &le, sizeof(le),
                                 errp)) {
        return false;
    }
    *val = GUINT64_FROM_LE(le);
    return true;
}

bool vfio_device_write64(VFIODevice *vdev, uint32_t index, uint64_t offset,
                         uint64_t val, Error **errp)
{
    uint64_t le = GUINT64_TO_LE(val);

    return vfio_device_region_write(vdev, index, offset, &le, sizeof(le),
                                    errp);
}

bool vfio_device_read32(VFIODevice *vdev, uint32_t index, uint64_t offset,
                        uint32_t *val, Error **errp)
{
    uint32_t le;

    if (!vfio_device_region_read(vdev, index, offset, &le, sizeof(le),
                                 errp)) {
        return false;
    }
    *val = GUINT32_FROM_LE(le);
    return true;
}

bool vfio_device_write32(VFIODevice *vdev, uint32_t index, uint64_t offset,
                         uint32_t val, Error **errp)
{
    uint32_t le = GUINT32_TO_LE(val);

    return vfio_device_region_write(vdev, index, offset, &le, sizeof(le),
                                    errp);
}

static const char *const irq_names[] = {
    [VFIO_PCI_INTX_IRQ_INDEX] = "intx",
    [VFIO_PCI_MSI_IRQ_INDEX] = "msi",
    [VFIO_PCI_MSIX_IRQ_INDEX] = "msix",
};

/* Wire irq @index to a new eventfd; false (errp unset) if it has none. */
static bool setup_irq_index(VFIODevice *vdev, uint32_t index, Error **errp)
{
    struct vfio_irq_info info;
    int fd;

    if (!vdev->io_ops->irq_info(vdev, index, &info, NULL) ||
        info.count == 0 || !(info.flags & VFIO_IRQ_INFO_EVENTFD)) {
        return false;
    }
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: eventfd", vdev->name);
        return false;
    }
    if (!vdev->io_ops->set_irqs(vdev, index, VFIO_IRQ_SET_DATA_EVENTFD |
                                VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, &fd,
                                errp)) {
        close(fd);
        error_prepend(errp, "%s: enabling %s interrupts: ", vdev->name,
                      irq_names[index]);
        return false;
    }
    vdev->irq_fd = fd;
    vdev->irq_index = index;
    return true;
}

bool vfio_device_setup_irq(VFIODevice *vdev, Error **errp)
{
    static const uint32_t order[] = {
        VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX,
        VFIO_PCI_INTX_IRQ_INDEX,
    };
    const char *want = vdev->irq_name ? vdev->irq_name : "auto";
    bool any = !strcmp(want, "auto");

    vdev->irq_fd = -1;
    if (strcmp(want, "none")) {
        bool known = any;

        for (unsigned i = 0; i < ARRAY_SIZE(order) && vdev->irq_fd < 0;
             i++) {
            Error *err = NULL;

            if (!any && strcmp(want, irq_names[order[i]])) {
                continue;
            }
            known = true;
            if (!setup_irq_index(vdev, order[i], &err) && err) {
                error_propagate(errp, err);
                return false;
            }
        }
        if (!known) {
            error_setg(errp, "%s: x-irq=%s: must be auto, msix, msi, intx "
                       "or none", vdev->name, want);
            return false;
        }
        if (!any && vdev->irq_fd < 0) {
            error_setg(errp, "%s: x-irq=%s, but the device offers no %s "
                       "interrupt with eventfds", vdev->name, want, want);
            return false;
        }
    }
    /* A device without interrupts is still usable by polling. */
    g_free(vdev->irq_name);
    vdev->irq_name = g_strdup(vdev->irq_fd < 0 ? "none"
                                               : irq_names[vdev->irq_index]);
    return true;
}

void vfio_device_release_irq(VFIODevice *vdev)
{
    if (vdev->irq_fd >= 0) {
        close(vdev->irq_fd);
        vdev->irq_fd = -1;
    }
}

int vfio_device_irq_wait(VFIODevice *vdev, int timeout_ms, Error **errp)
{
    struct pollfd pfd = { .fd = vdev->irq_fd, .events = POLLIN };
    uint64_t count;
    int ret;

    if (vdev->irq_fd < 0) {
        error_setg(errp, "%s: no interrupt is set up", vdev->name);
        return -1;
    }
    do {
        ret = poll(&pfd, 1, timeout_ms);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        error_setg_errno(errp, errno, "%s: waiting for the interrupt",
                         vdev->name);
        return -1;
    }
    if (ret == 0) {
        return 0;
    }
    if (read(vdev->irq_fd, &count, sizeof(count)) != sizeof(count) &&
        errno != EAGAIN) {
        error_setg_errno(errp, errno, "%s: reading the interrupt eventfd",
                         vdev->name);
        return -1;
    }
    __atomic_fetch_add(&vdev->irq_count, 1, __ATOMIC_RELAXED);
    if (vdev->irq_index == VFIO_PCI_INTX_IRQ_INDEX) {
        /* INTx masks itself when it fires: unmask for the next one. */
        if (!vdev->io_ops->set_irqs(vdev, VFIO_PCI_INTX_IRQ_INDEX,
                                    VFIO_IRQ_SET_DATA_NONE |
                                    VFIO_IRQ_SET_ACTION_UNMASK,
                                    0, 1, NULL, errp)) {
            return -1;
        }
    }
    return 1;
}
