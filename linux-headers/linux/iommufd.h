/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The Linux iommufd userspace API, as far as vmig's kernel VFIO backend
 * needs it: IO address spaces, their mappings of guest RAM, hardware page
 * tables with dirty tracking, and the IOMMU's capabilities.
 *
 * Written from the uAPI's documented numbers and layouts (ABI: they must
 * match the running kernel).
 */
#ifndef VMIG_LINUX_IOMMUFD_H
#define VMIG_LINUX_IOMMUFD_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define IOMMUFD_TYPE            (';')
#define IOMMUFD_CMD_BASE        0x80

struct iommu_destroy {
    __u32 size;
    __u32 id;
};
#define IOMMU_DESTROY           _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 0)

struct iommu_ioas_alloc {
    __u32 size;
    __u32 flags;
    __u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC        _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 1)

#define IOMMU_IOAS_MAP_FIXED_IOVA (1 << 0)
#define IOMMU_IOAS_MAP_WRITEABLE  (1 << 1)
#define IOMMU_IOAS_MAP_READABLE   (1 << 2)

struct iommu_ioas_map {
    __u32 size;
    __u32 flags;
    __u32 ioas_id;
    __u32 __reserved;
    __aligned_u64 user_va;
    __aligned_u64 length;
    __aligned_u64 iova;
};
#define IOMMU_IOAS_MAP          _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 5)

struct iommu_ioas_unmap {
    __u32 size;
    __u32 ioas_id;
    __aligned_u64 iova;
    __aligned_u64 length;
};
#define IOMMU_IOAS_UNMAP        _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 6)

#define IOMMU_HWPT_ALLOC_DIRTY_TRACKING (1 << 1)
#define IOMMU_HWPT_DATA_NONE    0

struct iommu_hwpt_alloc {
    __u32 size;
    __u32 flags;
    __u32 dev_id;
    __u32 pt_id;
    __u32 out_hwpt_id;
    __u32 __reserved;
    __u32 data_type;
    __u32 data_len;
    __aligned_u64 data_uptr;
    __u32 fault_id;
    __u32 __reserved2;
};
#define IOMMU_HWPT_ALLOC        _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 9)

#define IOMMU_HW_CAP_DIRTY_TRACKING (1 << 0)

/* out_data_type of IOMMU_GET_HW_INFO */
#define IOMMU_HW_INFO_TYPE_NONE         0
#define IOMMU_HW_INFO_TYPE_INTEL_VTD    1

struct iommu_hw_info {
    __u32 size;
    __u32 flags;
    __u32 dev_id;
    __u32 data_len;
    __aligned_u64 data_uptr;
    __u32 out_data_type;
    __u8 out_max_pasid_log2;
    __u8 __reserved[3];
    __aligned_u64 out_capabilities;
};
#define IOMMU_GET_HW_INFO       _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 10)

#define IOMMU_HWPT_DIRTY_TRACKING_ENABLE 1

struct iommu_hwpt_set_dirty_tracking {
    __u32 size;
    __u32 flags;
    __u32 hwpt_id;
    __u32 __reserved;
};
#define IOMMU_HWPT_SET_DIRTY_TRACKING _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 11)

struct iommu_hwpt_get_dirty_bitmap {
    __u32 size;
    __u32 hwpt_id;
    __u32 flags;
    __u32 __reserved;
    __aligned_u64 iova;
    __aligned_u64 length;
    __aligned_u64 page_size;
    __aligned_u64 data;     /* user pointer to the bitmap */
};
#define IOMMU_HWPT_GET_DIRTY_BITMAP _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 12)

#endif
