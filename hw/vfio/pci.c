/*
 * vfio-pci: a device that the host kernel assigns through VFIO.
 *
 *   -device vfio-pci,host=[DDDD:]BB:DD.F|sysfsdev=PATH[,id=ID]
 *           [,iommufd=ID][,x-no-mmap=on|off][,enable-migration=on|off|auto]
 *           [,x-pre-copy-dirty-page-tracking=on|off]
 *           [,x-migration-multifd-transfer=on|off|auto]
 *
 * host= names a PCI function (/sys/bus/pci/devices/...); sysfsdev= any
 * VFIO device's sysfs directory, such as an mdev's
 * (/sys/bus/mdev/devices/UUID).  The device fd comes from the device's
 * cdev bound to iommufd (iommufd=ID, or a private iommufd object when the
 * kernel offers a cdev), or else from its IOMMU group in the legacy type1
 * container.  Realize then maps the device's mmappable regions (its MMIO
 * BARs, unless x-no-mmap=on), reads the config space, wires the completion
 * interrupt, maps guest RAM for the device's DMA, resets it, and hands it
 * to hw/vfio (migration, dirty tracking).
 */
#include "qemu/osdep.h"
#include "system/ramblock.h"
#include "vfio-internal.h"
#include "vfio-kernel.h"

#define TYPE_VFIO_PCI "vfio-pci"

typedef struct VFIOPCIDevice {
    Object parent_obj;

    /* Properties */
    char *host;
    char *sysfsdev;
    char *iommufd;
    char *backend;              /* auto, iommufd, legacy; realize resolves */
    bool no_mmap;
    OnOffAuto dirty_hwpt;

    /* Set by realize */
    char *sysfs_path;
    char *iommu_hw_info;        /* iommufd: what IOMMU_GET_HW_INFO said */
    bool attached;
    VFIOKernelDevice kdev;
} VFIOPCIDevice;

/* "BB:DD.F" or "DDDD:BB:DD.F", the way lspci prints them. */
static char *host_to_sysfs(const char *host, Error **errp)
{
    unsigned dom = 0, bus, dev, fn;
    char end;

    if (sscanf(host, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &end) != 4 &&
        (dom = 0, sscanf(host, "%x:%x.%x%c", &bus, &dev, &fn, &end) != 3)) {
        error_setg(errp, "vfio-pci: host=%s is not a PCI address "
                   "([DDDD:]BB:DD.F)", host);
        return NULL;
    }
    if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7) {
        error_setg(errp, "vfio-pci: host=%s is out of range", host);
        return NULL;
    }
    return g_strdup_printf("/sys/bus/pci/devices/%04x:%02x:%02x.%x", dom, bus,
                           dev, fn);
}

/* The device's sysfs directory, resolved, and its name (the last part). */
static bool resolve_sysfs(VFIOPCIDevice *d, Error **errp)
{
    g_autofree char *path = NULL;

    if (!!d->host == !!d->sysfsdev) {
        error_setg(errp, "vfio-pci: give host=[DDDD:]BB:DD.F or "
                   "sysfsdev=PATH (one of them)");
        return false;
    }
    path = d->host ? host_to_sysfs(d->host, errp) : g_strdup(d->sysfsdev);
    if (!path) {
        return false;
    }
    d->sysfs_path = realpath(path, NULL);
    if (!d->sysfs_path) {
        error_setg_errno(errp, errno, "vfio-pci: no device at %s", path);
        return false;
    }
    return true;
}

/* /dev/vfio/devices/vfioN when the kernel made a cdev, else NULL. */
static char *find_cdev(const char *sysfs)
{
    g_autofree char *dir = g_build_filename(sysfs, "vfio-dev", NULL);
    g_autoptr(GDir) gdir = g_dir_open(dir, 0, NULL);
    const char *name;

    while (gdir && (name = g_dir_read_name(gdir))) {
        if (g_str_has_prefix(name, "vfio")) {
            return g_build_filename("/dev/vfio/devices", name, NULL);
        }
    }
    return NULL;
}

/* The number of the device's IOMMU group, or -1. */
static int find_group(const char *sysfs, Error **errp)
{
    g_autofree char *link = g_build_filename(sysfs, "iommu_group", NULL);
    g_autofree char *target = g_file_read_link(link, NULL);
    g_autofree char *base = NULL;
    int64_t group;

    if (!target) {
        error_setg(errp, "vfio-pci: %s has no IOMMU group: is it bound to a "
                   "VFIO driver (vfio-pci, or an mdev)?", sysfs);
        return -1;
    }
    base = g_path_get_basename(target);
    if (qemu_strtoi64(base, &group) < 0 || group < 0 || group > INT_MAX) {
        error_setg(errp, "vfio-pci: %s: IOMMU group '%s' is not a number",
                   sysfs, base);
        return -1;
    }
    return group;
}

/* Open the device through the back-end the options and kernel call for. */
static int open_device(VFIOPCIDevice *d, VFIOIOMMU **iommu, Error **errp)
{
    VFIODevice *vdev = &d->kdev.vdev;
    g_autofree char *cdev = find_cdev(d->sysfs_path);
    g_autofree char *name = g_path_get_basename(d->sysfs_path);
    bool legacy;
    int fd, group;

    if (!strcmp(d->backend, "auto")) {
        legacy = !cdev && !d->iommufd;
    } else if (!strcmp(d->backend, "legacy") && !d->iommufd) {
        legacy = true;
    } else if (!strcmp(d->backend, "iommufd")) {
        legacy = false;
    } else {
        error_setg(errp, "%s: x-iommu-backend=%s: must be auto, iommufd or "
                   "legacy (and not legacy with iommufd=)", vdev->name,
                   d->backend);
        return -1;
    }
    if (!legacy && !cdev) {
        error_setg(errp, "%s: iommufd needs the device's cdev, and the kernel "
                   "offers none (CONFIG_VFIO_DEVICE_CDEV)", vdev->name);
        return -1;
    }
    if (legacy && d->dirty_hwpt == ON_OFF_AUTO_ON) {
        error_setg(errp, "%s: x-iommufd-dirty-hwpt=on needs the iommufd "
                   "back-end, and the device uses the legacy one",
                   vdev->name);
        return -1;
    }
    g_free(d->backend);
    d->backend = g_strdup(legacy ? "legacy" : "iommufd");
    if (!legacy) {
        fd = open(cdev, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            error_setg_errno(errp, errno, "%s: cannot open %s", vdev->name,
                             cdev);
            return -1;
        }
        *iommu = vfio_iommufd_attach(fd, d->iommufd,
                                     vdev->device_dirty_page_tracking !=
                                     ON_OFF_AUTO_OFF, d->dirty_hwpt,
                                     &d->kdev.iommu_dirty,
                                     &d->iommu_hw_info, errp);
        if (!*iommu) {
            close(fd);
            error_prepend(errp, "%s: ", vdev->name);
            return -1;
        }
        return fd;
    }
    group = find_group(d->sysfs_path, errp);
    if (group < 0) {
        return -1;
    }
    fd = vfio_container_get_device(group, name, iommu, &d->kdev.iommu_dirty,
                                   errp);
    if (fd < 0) {
        error_prepend(errp, "%s: ", vdev->name);
        return -1;
    }
    return fd;
}

/* Every RAM block, at its guest physical address (IOVA == GPA). */
static bool map_ram(VFIOPCIDevice *d, Error **errp)
{
    VFIODevice *vdev = &d->kdev.vdev;
    unsigned n = 0;

    RAMBLOCK_FOREACH(rb) {
        n++;
    }
    vdev->dma_ranges = g_new0(VFIODMARange, n);
    RAMBLOCK_FOREACH(rb) {
        if (!vfio_iommu_map(d->kdev.iommu, rb->gpa, rb->size, rb->host, true,
                            errp)) {
            error_prepend(errp, "%s: RAM block '%s': ", vdev->name,
                          rb->idstr);
            return false;
        }
        vdev->dma_ranges[vdev->nr_dma_ranges].iova = rb->gpa;
        vdev->dma_ranges[vdev->nr_dma_ranges].size = rb->size;
        vdev->nr_dma_ranges++;
    }
    return true;
}

static void unmap_ram(VFIOPCIDevice *d)
{
    VFIODevice *vdev = &d->kdev.vdev;
    Error *err = NULL;

    for (unsigned i = 0; i < vdev->nr_dma_ranges; i++) {
        if (!vfio_iommu_unmap(d->kdev.iommu, vdev->dma_ranges[i].iova,
                              vdev->dma_ranges[i].size, &err)) {
            warn_report("%s: %s", vdev->name, error_get_pretty(err));
            g_clear_pointer(&err, error_free);
        }
    }
    g_clear_pointer(&vdev->dma_ranges, g_free);
    vdev->nr_dma_ranges = 0;
}

static bool read_config(VFIOPCIDevice *d, Error **errp)
{
    VFIOKernelDevice *kd = &d->kdev;
    VFIODevice *vdev = &kd->vdev;
    uint16_t vendor;
    size_t len;

    if (!(kd->flags & VFIO_DEVICE_FLAGS_PCI) ||
        kd->nr_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
        error_setg(errp, "%s: not a PCI device (flags 0x%x, %u regions)",
                   vdev->name, kd->flags, kd->nr_regions);
        return false;
    }
    /* Some devices have less than the 256 bytes (mtty: 255). */
    len = MIN(sizeof(vdev->config),
              kd->regions[VFIO_PCI_CONFIG_REGION_INDEX].size);
    if (len < 64) {
        error_setg(errp, "%s: a config space of %zu bytes has no PCI "
                   "header", vdev->name, len);
        return false;
    }
    memset(vdev->config, 0, sizeof(vdev->config));
    if (!vdev->io_ops->region_read(vdev, VFIO_PCI_CONFIG_REGION_INDEX, 0,
                                   vdev->config, len, errp)) {
        error_prepend(errp, "%s: reading config space: ", vdev->name);
        return false;
    }
    vendor = vdev->config[0] | vdev->config[1] << 8;
    if (vendor == 0xffff || vendor == 0) {
        error_setg(errp, "%s: no PCI function (vendor ID 0x%04x)", vdev->name,
                   vendor);
        return false;
    }
    return true;
}

static void vfio_pci_finalize(Object *obj);

static bool mmap_accesses_get(Object *obj, ObjectProperty *prop,
                              PropValue *val, Error **errp)
{
    VFIOPCIDevice *d = (VFIOPCIDevice *)obj;

    val->u64 = __atomic_load_n(&d->kdev.mmap_accesses, __ATOMIC_RELAXED);
    return true;
}

static bool iommu_hw_info_get(Object *obj, ObjectProperty *prop,
                              PropValue *val, Error **errp)
{
    VFIOPCIDevice *d = (VFIOPCIDevice *)obj;

    val->str = g_strdup(d->iommu_hw_info ? d->iommu_hw_info :
                        "not asked (the legacy back-end)");
    return true;
}

static bool vfio_pci_realize(Object *obj, Error **errp)
{
    VFIOPCIDevice *d = (VFIOPCIDevice *)obj;
    VFIOKernelDevice *kd = &d->kdev;
    VFIODevice *vdev = &kd->vdev;
    VFIOIOMMU *iommu = NULL;
    int fd;

    kd->fd = -1;
    vdev->irq_fd = -1;
    vdev->owner = obj;
    vdev->id = g_strdup(obj->name);
    vdev->name = g_strdup_printf("vfio-pci %s", obj->name);
    if (!resolve_sysfs(d, errp)) {
        goto fail;
    }
    kd->no_mmap = d->no_mmap;
    fd = open_device(d, &iommu, errp);
    if (fd < 0) {
        goto fail;
    }
    if (!vfio_kernel_device_open(kd, fd, iommu, errp)) {
        close(fd);
        vfio_iommu_unref(iommu);
        goto fail;
    }
    trace(vfio_pci_open, "%s: %s through the %s back-end", vdev->name,
          d->sysfs_path, d->backend);
    object_property_add(obj, "x-mmap-accesses", PROP_TYPE_U64,
                        "region accesses made through a mapping of the "
                        "region (the others take pread/pwrite)",
                        mmap_accesses_get, NULL, NULL);
    object_property_add(obj, "x-iommu-hw-info", PROP_TYPE_STR,
                        "what IOMMU_GET_HW_INFO says of the device's IOMMU "
                        "(iommufd back-end)", iommu_hw_info_get, NULL, NULL);
    if (!read_config(d, errp) || !vfio_device_setup_irq(vdev, errp) ||
        !map_ram(d, errp)) {
        goto fail;
    }
    if ((kd->flags & VFIO_DEVICE_FLAGS_RESET) &&
        !vdev->io_ops->reset(vdev, errp)) {
        goto fail;
    }
    if (!vfio_device_attach(vdev, errp)) {
        goto fail;
    }
    d->attached = true;
    return true;

fail:
    vfio_pci_finalize(obj);
    return false;
}

static void vfio_pci_finalize(Object *obj)
{
    VFIOPCIDevice *d = (VFIOPCIDevice *)obj;
    VFIODevice *vdev = &d->kdev.vdev;

    if (d->attached) {
        vfio_device_detach(vdev);
        d->attached = false;
    }
    if (d->kdev.iommu) {
        unmap_ram(d);
    }
    vfio_kernel_device_close(&d->kdev);
    vfio_device_release_irq(vdev);
    g_clear_pointer(&d->sysfs_path, free);
    g_clear_pointer(&d->iommu_hw_info, g_free);
    g_clear_pointer(&vdev->name, g_free);
    g_clear_pointer(&vdev->id, g_free);
}

static const Property vfio_pci_props[] = {
    DEFINE_PROP("host", PROP_TYPE_STR, VFIOPCIDevice, host, NULL,
                "host PCI address [DDDD:]BB:DD.F of the assigned function"),
    DEFINE_PROP("sysfsdev", PROP_TYPE_STR, VFIOPCIDevice, sysfsdev, NULL,
                "sysfs directory of the device (an mdev: "
                "/sys/bus/mdev/devices/UUID)"),
    DEFINE_PROP("iommufd", PROP_TYPE_STR, VFIOPCIDevice, iommufd, NULL,
                "id of the -object iommufd to bind the device's cdev to "
                "(default: iommufd when the kernel offers a cdev, else the "
                "legacy container)"),
    DEFINE_PROP("x-iommu-backend", PROP_TYPE_STR, VFIOPCIDevice, backend,
                "auto", "how the device's DMA is mapped: auto (iommufd when "
                "the kernel offers the device's cdev, else legacy), "
                "iommufd or legacy; qom-get says which one is in use"),
    DEFINE_PROP("x-no-mmap", PROP_TYPE_BOOL, VFIOPCIDevice, no_mmap, "off",
                "never map the device's regions: every BAR access takes "
                "pread/pwrite on the device fd"),
    DEFINE_PROP("x-iommufd-dirty-hwpt", PROP_TYPE_ONOFFAUTO, VFIOPCIDevice,
                dirty_hwpt, "auto",
                "iommufd: attach the device to a HWPT with dirty tracking "
                "(auto: when it does not log its own DMA and "
                "IOMMU_GET_HW_INFO offers it; on: always, failing if the "
                "kernel refuses; off: never)"),
    VFIO_DEVICE_PROPS(VFIOPCIDevice, kdev.vdev),
    { 0 }
};

static const ObjectClass vfio_pci_class = {
    .name = TYPE_VFIO_PCI,
    .parent = "device",
    .desc = "a PCI device assigned by the host kernel through VFIO",
    .instance_size = sizeof(VFIOPCIDevice),
    .props = vfio_pci_props,
    .user_creatable = true,
    .realize = vfio_pci_realize,
    .finalize = vfio_pci_finalize,
};

static void vfio_pci_register_types(void)
{
    type_register(&vfio_pci_class);
}
type_init(vfio_pci_register_types)
