/*
 * The VFIO and iommufd uAPI numbers and layouts in linux-headers/ are
 * ABI: check them against the documented values.
 */
#include "qemu/osdep.h"
#include <linux/vfio.h>
#include <linux/iommufd.h>

static void test_ioctl_numbers(void)
{
    g_assert_cmphex(VFIO_DEVICE_RESET, ==, 0x3B6F);
    g_assert_cmphex(VFIO_DEVICE_FEATURE, ==, 0x3B75);
    g_assert_cmphex(VFIO_MIG_GET_PRECOPY_INFO, ==, 0x3B79);
    g_assert_cmphex(VFIO_DEVICE_GET_INFO, ==, 0x3B6B);
    g_assert_cmphex(VFIO_DEVICE_GET_REGION_INFO, ==, 0x3B6C);
    g_assert_cmphex(VFIO_DEVICE_GET_IRQ_INFO, ==, 0x3B6D);
    g_assert_cmphex(VFIO_DEVICE_SET_IRQS, ==, 0x3B6E);
    /* Container, group, type1 IOMMU and the cdev's iommufd binding. */
    g_assert_cmphex(VFIO_GET_API_VERSION, ==, 0x3B64);
    g_assert_cmphex(VFIO_SET_IOMMU, ==, 0x3B66);
    g_assert_cmphex(VFIO_GROUP_SET_CONTAINER, ==, 0x3B68);
    g_assert_cmphex(VFIO_GROUP_GET_DEVICE_FD, ==, 0x3B6A);
    g_assert_cmphex(VFIO_IOMMU_GET_INFO, ==, 0x3B70);
    g_assert_cmphex(VFIO_IOMMU_MAP_DMA, ==, 0x3B71);
    g_assert_cmphex(VFIO_IOMMU_UNMAP_DMA, ==, 0x3B72);
    g_assert_cmphex(VFIO_IOMMU_DIRTY_PAGES, ==, 0x3B75);
    g_assert_cmphex(VFIO_DEVICE_BIND_IOMMUFD, ==, 0x3B76);
    g_assert_cmphex(VFIO_DEVICE_ATTACH_IOMMUFD_PT, ==, 0x3B77);
    g_assert_cmphex(VFIO_DEVICE_DETACH_IOMMUFD_PT, ==, 0x3B78);
    g_assert_cmpint(VFIO_TYPE1v2_IOMMU, ==, 3);
    g_assert_cmpint(VFIO_UNMAP_ALL, ==, 9);
}

static void test_iommufd(void)
{
    g_assert_cmphex(IOMMU_DESTROY, ==, 0x3B80);
    g_assert_cmphex(IOMMU_IOAS_ALLOC, ==, 0x3B81);
    g_assert_cmphex(IOMMU_IOAS_MAP, ==, 0x3B85);
    g_assert_cmphex(IOMMU_IOAS_UNMAP, ==, 0x3B86);
    g_assert_cmphex(IOMMU_HWPT_ALLOC, ==, 0x3B89);
    g_assert_cmphex(IOMMU_GET_HW_INFO, ==, 0x3B8A);
    g_assert_cmphex(IOMMU_HWPT_SET_DIRTY_TRACKING, ==, 0x3B8B);
    g_assert_cmphex(IOMMU_HWPT_GET_DIRTY_BITMAP, ==, 0x3B8C);
    g_assert_cmpuint(sizeof(struct iommu_ioas_alloc), ==, 12);
    g_assert_cmpuint(sizeof(struct iommu_ioas_map), ==, 40);
    g_assert_cmpuint(offsetof(struct iommu_ioas_map, user_va), ==, 16);
    g_assert_cmpuint(sizeof(struct iommu_ioas_unmap), ==, 24);
    g_assert_cmpuint(sizeof(struct iommu_hwpt_alloc), ==, 48);
    g_assert_cmpuint(offsetof(struct iommu_hwpt_alloc, data_uptr), ==, 32);
    g_assert_cmpuint(sizeof(struct iommu_hw_info), ==, 40);
    g_assert_cmpuint(offsetof(struct iommu_hw_info, out_capabilities), ==, 32);
    g_assert_cmpuint(sizeof(struct iommu_hwpt_set_dirty_tracking), ==, 16);
    g_assert_cmpuint(sizeof(struct iommu_hwpt_get_dirty_bitmap), ==, 48);
    g_assert_cmphex(IOMMU_HWPT_ALLOC_DIRTY_TRACKING, ==, 2);
    g_assert_cmphex(IOMMU_HW_CAP_DIRTY_TRACKING, ==, 1);
    g_assert_cmpint(IOMMU_HW_INFO_TYPE_NONE, ==, 0);
    g_assert_cmpint(IOMMU_HW_INFO_TYPE_INTEL_VTD, ==, 1);
    g_assert_cmphex(IOMMU_HWPT_DIRTY_TRACKING_ENABLE, ==, 1);
    g_assert_cmpuint(sizeof(struct vfio_iommu_type1_info), ==, 24);
    g_assert_cmpuint(sizeof(struct vfio_iommu_type1_dma_map), ==, 32);
    g_assert_cmpuint(sizeof(struct vfio_iommu_type1_dma_unmap), ==, 24);
    g_assert_cmpuint(sizeof(struct vfio_iommu_type1_dirty_bitmap), ==, 8);
    g_assert_cmpuint(sizeof(struct vfio_iommu_type1_dirty_bitmap_get), ==,
                     40);
    g_assert_cmpuint(sizeof(struct vfio_device_bind_iommufd), ==, 16);
    g_assert_cmpuint(sizeof(struct vfio_device_attach_iommufd_pt), ==, 12);
}

static void test_feature_flags(void)
{
    g_assert_cmphex(VFIO_DEVICE_FEATURE_MASK, ==, 0xffff);
    g_assert_cmphex(VFIO_DEVICE_FEATURE_GET, ==, 1 << 16);
    g_assert_cmphex(VFIO_DEVICE_FEATURE_SET, ==, 1 << 17);
    g_assert_cmphex(VFIO_DEVICE_FEATURE_PROBE, ==, 1 << 18);
    g_assert_cmpint(VFIO_DEVICE_FEATURE_MIGRATION, ==, 1);
    g_assert_cmpint(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, ==, 2);
    g_assert_cmpint(VFIO_DEVICE_FEATURE_DMA_LOGGING_START, ==, 6);
    g_assert_cmpint(VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, ==, 7);
    g_assert_cmpint(VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, ==, 8);
    g_assert_cmpint(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, ==, 9);
    g_assert_cmphex(VFIO_MIGRATION_STOP_COPY, ==, 1);
    g_assert_cmphex(VFIO_MIGRATION_P2P, ==, 2);
    g_assert_cmphex(VFIO_MIGRATION_PRE_COPY, ==, 4);
}

static void test_states(void)
{
    g_assert_cmpint(VFIO_DEVICE_STATE_ERROR, ==, 0);
    g_assert_cmpint(VFIO_DEVICE_STATE_STOP, ==, 1);
    g_assert_cmpint(VFIO_DEVICE_STATE_RUNNING, ==, 2);
    g_assert_cmpint(VFIO_DEVICE_STATE_STOP_COPY, ==, 3);
    g_assert_cmpint(VFIO_DEVICE_STATE_RESUMING, ==, 4);
    g_assert_cmpint(VFIO_DEVICE_STATE_RUNNING_P2P, ==, 5);
    g_assert_cmpint(VFIO_DEVICE_STATE_PRE_COPY, ==, 6);
    g_assert_cmpint(VFIO_DEVICE_STATE_PRE_COPY_P2P, ==, 7);
}

static void test_layouts(void)
{
    g_assert_cmpuint(sizeof(struct vfio_device_feature), ==, 8);
    g_assert_cmpuint(sizeof(struct vfio_device_feature_migration), ==, 8);
    g_assert_cmpuint(sizeof(struct vfio_device_feature_mig_state), ==, 8);
    g_assert_cmpuint(offsetof(struct vfio_device_feature_mig_state, data_fd), ==, 4);
    g_assert_cmpuint(sizeof(struct vfio_precopy_info), ==, 24);
    g_assert_cmpuint(offsetof(struct vfio_precopy_info, initial_bytes), ==, 8);
    g_assert_cmpuint(offsetof(struct vfio_precopy_info, dirty_bytes), ==, 16);
    g_assert_cmpuint(sizeof(struct vfio_device_feature_dma_logging_control), ==, 24);
    g_assert_cmpuint(offsetof(struct vfio_device_feature_dma_logging_control, ranges), ==, 16);
    g_assert_cmpuint(sizeof(struct vfio_device_feature_dma_logging_range), ==, 16);
    g_assert_cmpuint(sizeof(struct vfio_device_feature_dma_logging_report), ==, 32);
    g_assert_cmpuint(sizeof(struct vfio_device_feature_mig_data_size), ==, 8);
    g_assert_cmpuint(sizeof(struct vfio_region_info), ==, 32);
    g_assert_cmphex(VFIO_REGION_INFO_FLAG_MMAP, ==, 4);
    g_assert_cmphex(VFIO_REGION_INFO_FLAG_CAPS, ==, 8);
    g_assert_cmpint(VFIO_REGION_INFO_CAP_SPARSE_MMAP, ==, 1);
    g_assert_cmpuint(sizeof(struct vfio_region_info_cap_sparse_mmap), ==, 16);
    g_assert_cmpuint(sizeof(struct vfio_region_sparse_mmap_area), ==, 16);
    g_assert_cmpuint(sizeof(struct vfio_irq_info), ==, 16);
    g_assert_cmpuint(sizeof(struct vfio_irq_set), ==, 20);
    g_assert_cmpuint(sizeof(struct vfio_device_info), ==, 24);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vfio-abi/ioctls", test_ioctl_numbers);
    g_test_add_func("/vfio-abi/iommufd", test_iommufd);
    g_test_add_func("/vfio-abi/feature-flags", test_feature_flags);
    g_test_add_func("/vfio-abi/states", test_states);
    g_test_add_func("/vfio-abi/layouts", test_layouts);
    return g_test_run();
}
