/*
 * Internal to hw/vfio: kernel VFIO devices.  A device fd from the kernel
 * (a group's VFIO_GROUP_GET_DEVICE_FD, or a cdev bound to iommufd) is
 * driven through VFIODeviceIOOps made of ioctls and pread/pwrite
 * (kernel-device.c); its DMA goes through an IOMMU back-end, a legacy
 * type1 container (container.c) or an iommufd IOAS (iommufd.c), which
 * devices share when they share a container or an iommufd object.
 */
#ifndef HW_VFIO_VFIO_KERNEL_H
#define HW_VFIO_VFIO_KERNEL_H

#include "hw/vfio/vfio-device.h"

typedef struct VFIOIOMMU VFIOIOMMU;

/*
 * What a back-end does for its devices: the raw operations, which the
 * vfio_iommu_*() helpers below call once per range however many devices
 * share it.  Threads: map and unmap with the BQL (realize, unrealize);
 * the dirty members from the migration thread.
 */
typedef struct VFIOIOMMUOps {
    const char *name;           /* "legacy" or "iommufd", for info/trace */
    /* Its dirty tracking, as query-migrate names it. */
    const char *dirty_name;
    /* Map [@iova, +@size) to the process memory at @vaddr. */
    bool (*dma_map)(VFIOIOMMU *io, uint64_t iova, uint64_t size, void *vaddr,
                    bool writable, Error **errp);
    bool (*dma_unmap)(VFIOIOMMU *io, uint64_t iova, uint64_t size,
                      Error **errp);
    /*
     * Dirty tracking by the IOMMU, for devices without DMA logging; NULL
     * when the back-end has none.  The report is read-and-clear, one bit
     * per page of @page_size, u64 words, set in a bitmap that the caller
     * has cleared.
     */
    bool (*dirty_start)(VFIOIOMMU *io, Error **errp);
    bool (*dirty_stop)(VFIOIOMMU *io, Error **errp);
    bool (*dirty_report)(VFIOIOMMU *io, uint64_t iova, uint64_t size,
                         uint64_t page_size, uint64_t *bitmap, Error **errp);
    /* The last device has gone: free the back-end's own state. */
    void (*release)(VFIOIOMMU *io);
} VFIOIOMMUOps;

/* The part every back-end shares; BQL. */
struct VFIOIOMMU {
    const VFIOIOMMUOps *ops;
    unsigned refs;              /* devices */
    GArray *mappings;           /* VFIOIOMMUMapping: ranges and their users */
    unsigned dirty_users;
};

void vfio_iommu_init(VFIOIOMMU *io, const VFIOIOMMUOps *ops);
/* A device takes a reference / drops it (the last one releases). */
void vfio_iommu_ref(VFIOIOMMU *io);
void vfio_iommu_unref(VFIOIOMMU *io);
/* Counted: the first map and the last unmap of a range reach the kernel. */
bool vfio_iommu_map(VFIOIOMMU *io, uint64_t iova, uint64_t size, void *vaddr,
                    bool writable, Error **errp);
bool vfio_iommu_unmap(VFIOIOMMU *io, uint64_t iova, uint64_t size,
                      Error **errp);
/* Counted too: the first start and the last stop reach the kernel. */
bool vfio_iommu_dirty_start(VFIOIOMMU *io, Error **errp);
void vfio_iommu_dirty_stop(VFIOIOMMU *io);

/* A part of a region that vmig has mapped (its process memory). */
typedef struct VFIOKernelMmap {
    uint64_t offset;            /* in the region */
    uint64_t size;
    uint8_t *addr;
} VFIOKernelMmap;

/* One region of the device fd, from VFIO_DEVICE_GET_REGION_INFO. */
typedef struct VFIOKernelRegion {
    uint64_t offset;            /* in the device fd */
    uint64_t size;
    uint32_t flags;             /* VFIO_REGION_INFO_FLAG_* */
    /*
     * The mmappable areas that are mapped: the whole region, or each area
     * of its sparse-mmap capability.  Accesses that fall inside one go
     * through the mapping, the rest through pread/pwrite.
     */
    VFIOKernelMmap *mmaps;
    uint32_t nr_mmaps;
} VFIOKernelRegion;

/*
 * A kernel VFIO device.  Fixed after vfio_kernel_device_open(): fd,
 * regions (with their mappings), iommu, iommu_dirty.  data_lock guards
 * data_fd, the migration data fd of the current save or load session
 * (-1 between sessions).
 */
typedef struct VFIOKernelDevice {
    VFIODevice vdev;
    VFIODeviceIOOps io_ops;     /* less what the IOMMU cannot do */
    int fd;
    VFIOKernelRegion *regions;
    uint32_t nr_regions;
    uint32_t nr_irqs;
    uint32_t flags;             /* VFIO_DEVICE_FLAGS_* */
    VFIOIOMMU *iommu;
    bool iommu_dirty;           /* the IOMMU tracks this device's writes */
    bool no_mmap;               /* x-no-mmap: pread/pwrite only */
    uint64_t mmap_accesses;     /* region accesses through a mapping (atomic) */
    GMutex data_lock;
    int data_fd;
} VFIOKernelDevice;

/*
 * kernel-device.c: take over @fd (a device fd attached to @iommu), read
 * its info and regions, map the mmappable ones (unless kd->no_mmap), and
 * point vdev->io_ops at the kernel's, with the IOMMU dirty members only
 * when kd->iommu_dirty.  On failure the caller still owns @fd and @iommu.
 */
bool vfio_kernel_device_open(VFIOKernelDevice *kd, int fd, VFIOIOMMU *iommu,
                             Error **errp);
/* Unmap the regions, close the fds and drop the back-end reference. */
void vfio_kernel_device_close(VFIOKernelDevice *kd);

/*
 * container.c: the device fd of the device @name (its sysfs name: a PCI
 * address or an mdev UUID) in IOMMU group @group (/dev/vfio/@group),
 * through the type1 container that every group of this process shares.
 * *@dirty: the container can track the device's writes (type1 dirty
 * pages).
 */
int vfio_container_get_device(int group, const char *name,
                              VFIOIOMMU **iommu, bool *dirty, Error **errp);

/*
 * iommufd.c: bind the device cdev @cdev_fd to the iommufd object @id
 * (or to a private one when @id is NULL) and attach it to that object's
 * IOAS: directly, or, when the device will not log its own DMA (it
 * cannot, or !@use_device_logging) and IOMMU_GET_HW_INFO says its IOMMU
 * can track dirty pages, through a HWPT allocated with dirty tracking
 * (*@dirty true).  @dirty_hwpt (x-iommufd-dirty-hwpt) off never tries
 * that; on always does, and fails if the kernel refuses.
 * *@hw_info (g_free it) says what GET_HW_INFO reported.  Returns the
 * back-end.
 */
VFIOIOMMU *vfio_iommufd_attach(int cdev_fd, const char *id,
                               bool use_device_logging, OnOffAuto dirty_hwpt,
                               bool *dirty, char **hw_info, Error **errp);

#endif
