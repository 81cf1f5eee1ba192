/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The Linux VFIO userspace API, as far as vmig and its vfio-user devices
 * need it: the container and group, the type1 IOMMU (DMA map/unmap and
 * its dirty pages), binding a device cdev to iommufd, device/region/irq
 * info, device reset, device features (migration v2, DMA logging,
 * MIG_DATA_SIZE) and the precopy-info ioctl.
 *
 * Written from the uAPI's documented numbers and layouts.  The numbers
 * are ABI: they must match the running kernel and every vfio-user peer.
 */
#ifndef VMIG_LINUX_VFIO_H
#define VMIG_LINUX_VFIO_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define VFIO_API_VERSION        0

#define VFIO_TYPE               (';')
#define VFIO_BASE               100

/* Container and group ioctls (kernel transport only). */
#define VFIO_GET_API_VERSION    _IO(VFIO_TYPE, VFIO_BASE + 0)
#define VFIO_CHECK_EXTENSION    _IO(VFIO_TYPE, VFIO_BASE + 1)
#define VFIO_SET_IOMMU          _IO(VFIO_TYPE, VFIO_BASE + 2)
#define VFIO_GROUP_GET_STATUS   _IO(VFIO_TYPE, VFIO_BASE + 3)
#define VFIO_GROUP_SET_CONTAINER _IO(VFIO_TYPE, VFIO_BASE + 4)
#define VFIO_GROUP_UNSET_CONTAINER _IO(VFIO_TYPE, VFIO_BASE + 5)
#define VFIO_GROUP_GET_DEVICE_FD _IO(VFIO_TYPE, VFIO_BASE + 6)

#define VFIO_TYPE1v2_IOMMU      3
#define VFIO_UNMAP_ALL          9       /* extension: VFIO_DMA_UNMAP_FLAG_ALL */

struct vfio_group_status {
    __u32 argsz;
    __u32 flags;
#define VFIO_GROUP_FLAGS_VIABLE         (1 << 0)
#define VFIO_GROUP_FLAGS_CONTAINER_SET  (1 << 1)
};

/* Capability chains of info structs: offsets from the struct's start. */
struct vfio_info_cap_header {
    __u16 id;
    __u16 version;
    __u32 next;
};

/* ---- The type1 IOMMU, on the container fd ---- */

struct vfio_iommu_type1_info {
    __u32 argsz;
    __u32 flags;
#define VFIO_IOMMU_INFO_PGSIZES (1 << 0)
#define VFIO_IOMMU_INFO_CAPS    (1 << 1)
    __aligned_u64 iova_pgsizes;
    __u32 cap_offset;
    __u32 pad;
};
#define VFIO_IOMMU_GET_INFO     _IO(VFIO_TYPE, VFIO_BASE + 12)

/* In the info's capability chain: the IOMMU tracks dirty pages. */
#define VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION 2
struct vfio_iommu_type1_info_cap_migration {
    struct vfio_info_cap_header header;
    __u32 flags;
    __u64 pgsize_bitmap;
    __u64 max_dirty_bitmap_size;
};

struct vfio_iommu_type1_dma_map {
    __u32 argsz;
    __u32 flags;
#define VFIO_DMA_MAP_FLAG_READ  (1 << 0)
#define VFIO_DMA_MAP_FLAG_WRITE (1 << 1)
    __u64 vaddr;
    __u64 iova;
    __u64 size;
};
#define VFIO_IOMMU_MAP_DMA      _IO(VFIO_TYPE, VFIO_BASE + 13)

struct vfio_bitmap {
    __u64 pgsize;
    __u64 size;             /* bytes of the bitmap */
    __u64 *data;            /* one bit per page */
};

struct vfio_iommu_type1_dma_unmap {
    __u32 argsz;
    __u32 flags;
#define VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP (1 << 0)
#define VFIO_DMA_UNMAP_FLAG_ALL              (1 << 1)
    __u64 iova;
    __u64 size;
    __u8 data[];
};
#define VFIO_IOMMU_UNMAP_DMA    _IO(VFIO_TYPE, VFIO_BASE + 14)

/* Dirty pages of the whole container (devices without DMA logging). */
struct vfio_iommu_type1_dirty_bitmap {
    __u32 argsz;
    __u32 flags;
#define VFIO_IOMMU_DIRTY_PAGES_FLAG_START      (1 << 0)
#define VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP       (1 << 1)
#define VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP (1 << 2)
    __u8 data[];
};

struct vfio_iommu_type1_dirty_bitmap_get {
    __u64 iova;
    __u64 size;
    struct vfio_bitmap bitmap;
};
/* The same number as VFIO_DEVICE_FEATURE, on the container fd. */
#define VFIO_IOMMU_DIRTY_PAGES  _IO(VFIO_TYPE, VFIO_BASE + 17)

/* ---- A device cdev (/dev/vfio/devices/vfioN) and iommufd ---- */

struct vfio_device_bind_iommufd {
    __u32 argsz;
    __u32 flags;
    __s32 iommufd;
    __u32 out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)

struct vfio_device_attach_iommufd_pt {
    __u32 argsz;
    __u32 flags;
    __u32 pt_id;
};
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)

struct vfio_device_detach_iommufd_pt {
    __u32 argsz;
    __u32 flags;
};
#define VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)

/* ---- Device information ---- */

struct vfio_device_info {
    __u32 argsz;
    __u32 flags;
#define VFIO_DEVICE_FLAGS_RESET (1 << 0)
#define VFIO_DEVICE_FLAGS_PCI   (1 << 1)
#define VFIO_DEVICE_FLAGS_PLATFORM (1 << 2)
#define VFIO_DEVICE_FLAGS_AMBA  (1 << 3)
#define VFIO_DEVICE_FLAGS_CCW   (1 << 4)
#define VFIO_DEVICE_FLAGS_AP    (1 << 5)
#define VFIO_DEVICE_FLAGS_FSL_MC (1 << 6)
#define VFIO_DEVICE_FLAGS_CAPS  (1 << 7)
#define VFIO_DEVICE_FLAGS_CDX   (1 << 8)
    __u32 num_regions;
    __u32 num_irqs;
    __u32 cap_offset;
    __u32 pad;
};
#define VFIO_DEVICE_GET_INFO    _IO(VFIO_TYPE, VFIO_BASE + 7)

/* ---- Regions ---- */

struct vfio_region_info {
    __u32 argsz;
    __u32 flags;
#define VFIO_REGION_INFO_FLAG_READ  (1 << 0)
#define VFIO_REGION_INFO_FLAG_WRITE (1 << 1)
#define VFIO_REGION_INFO_FLAG_MMAP  (1 << 2)
#define VFIO_REGION_INFO_FLAG_CAPS  (1 << 3)
    __u32 index;
    __u32 cap_offset;
    __u64 size;
    __u64 offset;
};
#define VFIO_DEVICE_GET_REGION_INFO _IO(VFIO_TYPE, VFIO_BASE + 8)

/* Capability chain header shared by region and device info. */
#define VFIO_REGION_INFO_CAP_SPARSE_MMAP 1

struct vfio_region_sparse_mmap_area {
    __u64 offset;
    __u64 size;
};

struct vfio_region_info_cap_sparse_mmap {
    struct vfio_info_cap_header header;
    __u32 nr_areas;
    __u32 reserved;
    struct vfio_region_sparse_mmap_area areas[];
};

/* ---- Interrupts ---- */

struct vfio_irq_info {
    __u32 argsz;
    __u32 flags;
#define VFIO_IRQ_INFO_EVENTFD    (1 << 0)
#define VFIO_IRQ_INFO_MASKABLE   (1 << 1)
#define VFIO_IRQ_INFO_AUTOMASKED (1 << 2)
#define VFIO_IRQ_INFO_NORESIZE   (1 << 3)
    __u32 index;
    __u32 count;
};
#define VFIO_DEVICE_GET_IRQ_INFO _IO(VFIO_TYPE, VFIO_BASE + 9)

struct vfio_irq_set {
    __u32 argsz;
    __u32 flags;
#define VFIO_IRQ_SET_DATA_NONE      (1 << 0)
#define VFIO_IRQ_SET_DATA_BOOL      (1 << 1)
#define VFIO_IRQ_SET_DATA_EVENTFD   (1 << 2)
#define VFIO_IRQ_SET_ACTION_MASK    (1 << 3)
#define VFIO_IRQ_SET_ACTION_UNMASK  (1 << 4)
#define VFIO_IRQ_SET_ACTION_TRIGGER (1 << 5)
    __u32 index;
    __u32 start;
    __u32 count;
    __u8 data[];
};
#define VFIO_DEVICE_SET_IRQS    _IO(VFIO_TYPE, VFIO_BASE + 10)

#define VFIO_IRQ_SET_DATA_TYPE_MASK (VFIO_IRQ_SET_DATA_NONE | \
                                     VFIO_IRQ_SET_DATA_BOOL | \
                                     VFIO_IRQ_SET_DATA_EVENTFD)
#define VFIO_IRQ_SET_ACTION_TYPE_MASK (VFIO_IRQ_SET_ACTION_MASK | \
                                       VFIO_IRQ_SET_ACTION_UNMASK | \
                                       VFIO_IRQ_SET_ACTION_TRIGGER)

#define VFIO_DEVICE_RESET       _IO(VFIO_TYPE, VFIO_BASE + 11)

/* Region and IRQ indices of a vfio-pci device. */
enum {
    VFIO_PCI_BAR0_REGION_INDEX,
    VFIO_PCI_BAR1_REGION_INDEX,
    VFIO_PCI_BAR2_REGION_INDEX,
    VFIO_PCI_BAR3_REGION_INDEX,
    VFIO_PCI_BAR4_REGION_INDEX,
    VFIO_PCI_BAR5_REGION_INDEX,
    VFIO_PCI_ROM_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_VGA_REGION_INDEX,
    VFIO_PCI_NUM_REGIONS = 9
};

enum {
    VFIO_PCI_INTX_IRQ_INDEX,
    VFIO_PCI_MSI_IRQ_INDEX,
    VFIO_PCI_MSIX_IRQ_INDEX,
    VFIO_PCI_ERR_IRQ_INDEX,
    VFIO_PCI_REQ_IRQ_INDEX,
    VFIO_PCI_NUM_IRQS
};

/* ---- Device features ---- */

struct vfio_device_feature {
    __u32 argsz;
    __u32 flags;
#define VFIO_DEVICE_FEATURE_MASK  (0xffff)
#define VFIO_DEVICE_FEATURE_GET   (1 << 16)
#define VFIO_DEVICE_FEATURE_SET   (1 << 17)
#define VFIO_DEVICE_FEATURE_PROBE (1 << 18)
    __u8 data[];
};
#define VFIO_DEVICE_FEATURE     _IO(VFIO_TYPE, VFIO_BASE + 17)

/* Feature 1: which migration states the device supports (GET). */
struct vfio_device_feature_migration {
    __aligned_u64 flags;
#define VFIO_MIGRATION_STOP_COPY (1 << 0)
#define VFIO_MIGRATION_P2P       (1 << 1)
#define VFIO_MIGRATION_PRE_COPY  (1 << 2)
};
#define VFIO_DEVICE_FEATURE_MIGRATION 1

/* Feature 2: read or change the migration state (GET / SET). */
struct vfio_device_feature_mig_state {
    __u32 device_state;   /* enum vfio_device_mig_state */
    __s32 data_fd;
};
#define VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE 2

enum vfio_device_mig_state {
    VFIO_DEVICE_STATE_ERROR = 0,
    VFIO_DEVICE_STATE_STOP = 1,
    VFIO_DEVICE_STATE_RUNNING = 2,
    VFIO_DEVICE_STATE_STOP_COPY = 3,
    VFIO_DEVICE_STATE_RESUMING = 4,
    VFIO_DEVICE_STATE_RUNNING_P2P = 5,
    VFIO_DEVICE_STATE_PRE_COPY = 6,
    VFIO_DEVICE_STATE_PRE_COPY_P2P = 7,
    VFIO_DEVICE_STATE_NR,
};

/*
 * On the migration data fd, in PRE_COPY / PRE_COPY_P2P only: how much
 * initial data is still to be read, and how much state has changed since.
 */
struct vfio_precopy_info {
    __u32 argsz;
    __u32 flags;
    __aligned_u64 initial_bytes;
    __aligned_u64 dirty_bytes;
};
#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)

/* Features 6/7/8: device DMA dirty logging. */
struct vfio_device_feature_dma_logging_control {
    __aligned_u64 page_size;
    __u32 num_ranges;
    __u32 __reserved;
    __aligned_u64 ranges;   /* user pointer to the range array */
};

struct vfio_device_feature_dma_logging_range {
    __aligned_u64 iova;
    __aligned_u64 length;
};
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_START 6
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP  7

struct vfio_device_feature_dma_logging_report {
    __aligned_u64 iova;
    __aligned_u64 length;
    __aligned_u64 page_size;
    __aligned_u64 bitmap;   /* user pointer to the bitmap */
};
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT 8

/* Feature 9: estimated size of the STOP_COPY data, valid in any state. */
struct vfio_device_feature_mig_data_size {
    __aligned_u64 stop_copy_length;
};
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9

#endif
