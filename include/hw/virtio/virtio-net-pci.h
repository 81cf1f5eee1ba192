/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * virtio 1.x over PCI (modern layout) and the virtio-net bits that the
 * vfio-user-virtio-net device and vmig's "virtio-net" guest program share.
 * The numbers are the virtio specification's; the BAR layout at the end
 * is this device's own (a driver finds it through the capabilities, as
 * any virtio driver does).  All fields are little-endian, as virtio is.
 */
#ifndef HW_VIRTIO_VIRTIO_NET_PCI_H
#define HW_VIRTIO_VIRTIO_NET_PCI_H

#include <stdint.h>

#define VIRTIO_PCI_VENDOR_ID            0x1af4
#define VIRTIO_PCI_DEVICE_ID_NET        0x1041  /* 0x1040 + net's id 1 */
#define VIRTIO_PCI_CLASS_NET            0x020000

/* Vendor-specific PCI capability (id 0x09) that points into a BAR. */
#define PCI_CAP_ID_VNDR                 0x09
#define VIRTIO_PCI_CAP_COMMON_CFG       1
#define VIRTIO_PCI_CAP_NOTIFY_CFG       2
#define VIRTIO_PCI_CAP_ISR_CFG          3
#define VIRTIO_PCI_CAP_DEVICE_CFG       4
#define VIRTIO_PCI_CAP_PCI_CFG          5
/* Capability body after id/next: len, cfg_type, bar, id, pad[2], offset, length */
#define VIRTIO_PCI_CAP_LEN              16
#define VIRTIO_PCI_NOTIFY_CAP_LEN       20  /* + notify_off_multiplier */

/* Common configuration structure (offsets in it). */
#define VIRTIO_COMMON_DFSELECT          0x00    /* le32 device_feature_select */
#define VIRTIO_COMMON_DF                0x04    /* le32 device_feature, RO */
#define VIRTIO_COMMON_GFSELECT          0x08    /* le32 driver_feature_select */
#define VIRTIO_COMMON_GF                0x0c    /* le32 driver_feature */
#define VIRTIO_COMMON_MSIX              0x10    /* le16 config_msix_vector */
#define VIRTIO_COMMON_NUMQ              0x12    /* le16 num_queues, RO */
#define VIRTIO_COMMON_STATUS            0x14    /* u8 device_status */
#define VIRTIO_COMMON_CFGGENERATION     0x15    /* u8 config_generation, RO */
#define VIRTIO_COMMON_Q_SELECT          0x16    /* le16 queue_select */
#define VIRTIO_COMMON_Q_SIZE            0x18    /* le16 queue_size */
#define VIRTIO_COMMON_Q_MSIX            0x1a    /* le16 queue_msix_vector */
#define VIRTIO_COMMON_Q_ENABLE          0x1c    /* le16 queue_enable */
#define VIRTIO_COMMON_Q_NOFF            0x1e    /* le16 queue_notify_off, RO */
#define VIRTIO_COMMON_Q_DESC            0x20    /* le64 queue_desc */
#define VIRTIO_COMMON_Q_DRIVER          0x28    /* le64 queue_driver (avail) */
#define VIRTIO_COMMON_Q_DEVICE          0x30    /* le64 queue_device (used) */
#define VIRTIO_COMMON_SIZE              0x38

#define VIRTIO_MSI_NO_VECTOR            0xffff

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE       1
#define VIRTIO_STATUS_DRIVER            2
#define VIRTIO_STATUS_DRIVER_OK         4
#define VIRTIO_STATUS_FEATURES_OK       8
#define VIRTIO_STATUS_NEEDS_RESET       64
#define VIRTIO_STATUS_FAILED            128

/* ISR status bits (reading the ISR clears it). */
#define VIRTIO_ISR_QUEUE                1
#define VIRTIO_ISR_CONFIG               2

/* Feature bits. */
#define VIRTIO_NET_F_MAC                5
#define VIRTIO_NET_F_STATUS             16
#define VIRTIO_F_VERSION_1              32

/* virtio-net device configuration (offsets in it). */
#define VIRTIO_NET_CFG_MAC              0x00    /* u8 mac[6] */
#define VIRTIO_NET_CFG_STATUS           0x06    /* le16 status */
#define VIRTIO_NET_CFG_MAX_VQ_PAIRS     0x08    /* le16 max_virtqueue_pairs */
#define VIRTIO_NET_CFG_MTU              0x0a    /* le16 mtu */
#define VIRTIO_NET_CFG_SIZE             0x0c
#define VIRTIO_NET_S_LINK_UP            1

#define VIRTIO_NET_RXQ                  0
#define VIRTIO_NET_TXQ                  1

/* struct virtio_net_hdr with VIRTIO_F_VERSION_1: num_buffers included. */
#define VIRTIO_NET_HDR_SIZE             12
#define VIRTIO_NET_HDR_NUM_BUFFERS      10      /* le16 */

/* Split virtqueue layout. */
#define VRING_DESC_SIZE                 16      /* le64 addr, le32 len,
                                                 * le16 flags, le16 next */
#define VRING_DESC_F_NEXT               1
#define VRING_DESC_F_WRITE              2
#define VRING_DESC_F_INDIRECT           4
#define VRING_AVAIL_F_NO_INTERRUPT      1
#define VRING_AVAIL_FLAGS               0       /* le16 */
#define VRING_AVAIL_IDX                 2       /* le16 */
#define VRING_AVAIL_RING                4       /* le16 ring[size] */
#define VRING_USED_FLAGS                0
#define VRING_USED_IDX                  2
#define VRING_USED_RING                 4       /* {le32 id, le32 len}[size] */
#define VRING_USED_ELEM_SIZE            8

static inline uint64_t vring_avail_size(unsigned num)
{
    return VRING_AVAIL_RING + 2ull * num + 2;   /* + used_event */
}

static inline uint64_t vring_used_size(unsigned num)
{
    return VRING_USED_RING + (uint64_t)VRING_USED_ELEM_SIZE * num + 2;
}

/*
 * This device's BAR0 (4 KiB, 32-bit memory), as its capabilities
 * describe it: common configuration, ISR, device configuration, one
 * notification address per queue (queue_notify_off = queue index,
 * multiplier VNET_NOTIFY_MULT), then the MSI-X table and PBA.
 */
#define VNET_BAR                        0
#define VNET_BAR_SIZE                   0x1000
#define VNET_COMMON_OFF                 0x000
#define VNET_ISR_OFF                    0x040
#define VNET_ISR_SIZE                   4
#define VNET_DEVCFG_OFF                 0x060
#define VNET_DEVCFG_SIZE                0x20
#define VNET_NOTIFY_OFF                 0x080
#define VNET_NOTIFY_MULT                4
#define VNET_NOTIFY_SIZE                0x80
#define VNET_MSIX_TABLE                 0x800
#define VNET_MSIX_PBA                   0xc00
#define VNET_MSIX_VECTORS               3       /* config, RX, TX */

#define VNET_NUM_QUEUES                 2
#define VNET_QUEUE_MAX                  256
/* The largest frame a TX chain may carry: header + 1514-byte frame. */
#define VNET_FRAME_MAX                  (VIRTIO_NET_HDR_SIZE + 1514)

#endif
