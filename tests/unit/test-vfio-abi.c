/*
 * The VFIO uAPI numbers and layouts in linux-headers/linux/vfio.h are
 * ABI: check them against the documented values.
 */
#include "qemu/osdep.h"
#include <linux/vfio.h>

static void test_ioctl_numbers(void)
{
    g_assert_cmphex(VFIO_DEVICE_RESET, ==, 0x3B6F);
    g_assert_cmphex(VFIO_DEVICE_FEATURE, ==, 0x3B75);
    g_assert_cmphex(VFIO_MIG_GET_PRECOPY_INFO, ==, 0x3B79);
    g_assert_cmphex(VFIO_DEVICE_GET_INFO, ==, 0x3B6B);
    g_assert_cmphex(VFIO_DEVICE_GET_REGION_INFO, ==, 0x3B6C);
    g_assert_cmphex(VFIO_DEVICE_GET_IRQ_INFO, ==, 0x3B6D);
    g_assert_cmphex(VFIO_DEVICE_SET_IRQS, ==, 0x3B6E);
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
    g_assert_cmpuint(sizeof(struct vfio_irq_info), ==, 16);
    g_assert_cmpuint(sizeof(struct vfio_irq_set), ==, 20);
    g_assert_cmpuint(sizeof(struct vfio_device_info), ==, 24);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vfio-abi/ioctls", test_ioctl_numbers);
    g_test_add_func("/vfio-abi/feature-flags", test_feature_flags);
    g_test_add_func("/vfio-abi/states", test_states);
    g_test_add_func("/vfio-abi/layouts", test_layouts);
    return g_test_run();
}
