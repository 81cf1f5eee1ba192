/*
 * The vfio-user wire protocol, version 0.9.2, as spoken by vmig (client)
 * and libvfio-user-server (server).
 *
 * Every message starts with a 16-byte header in host byte order (both
 * ends share a host: the transport is a UNIX socket).  msg_size counts
 * the header.  Payload layouts follow the header; the ones that mirror
 * a kernel structure use it (linux/vfio.h) directly.
 *
 * Extensions of this project are marked VFIO_USER_X_* and are used only
 * when the peer offered them in its VERSION capabilities; see
 * docs/interop/vfio-user.rst.
 */
#ifndef VFIO_USER_PROTOCOL_H
#define VFIO_USER_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <linux/vfio.h>

#define VFIO_USER_MAJOR 0
#define VFIO_USER_MINOR 2

enum vfio_user_command {
    VFIO_USER_VERSION = 1,
    VFIO_USER_DMA_MAP = 2,
    VFIO_USER_DMA_UNMAP = 3,
    VFIO_USER_DEVICE_GET_INFO = 4,
    VFIO_USER_DEVICE_GET_REGION_INFO = 5,
    VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
    VFIO_USER_DEVICE_GET_IRQ_INFO = 7,
    VFIO_USER_DEVICE_SET_IRQS = 8,
    VFIO_USER_REGION_READ = 9,
    VFIO_USER_REGION_WRITE = 10,
    VFIO_USER_DMA_READ = 11,            /* server -> client */
    VFIO_USER_DMA_WRITE = 12,           /* server -> client */
    VFIO_USER_DEVICE_RESET = 13,
    /* 14 was VFIO_USER_DIRTY_PAGES, retired */
    VFIO_USER_REGION_WRITE_MULTI = 15,
    VFIO_USER_DEVICE_FEATURE = 16,
    VFIO_USER_MIG_DATA_READ = 17,
    VFIO_USER_MIG_DATA_WRITE = 18,
    VFIO_USER_MAX_STANDARD,

    /*
     * Extension: the precopy-info query (the kernel's
     * VFIO_MIG_GET_PRECOPY_INFO).  Request: empty payload.  Reply:
     * struct vfio_precopy_info.  Valid in PRE_COPY / PRE_COPY_P2P only
     * (EINVAL otherwise).  Offered as capabilities.migration.x-precopy-info.
     */
    VFIO_USER_X_MIG_PRECOPY_INFO = 0x4001,
};

/* The protocol's name of @cmd ("DMA_MAP"), or NULL for an unknown one. */
static inline const char *vfio_user_command_name(uint16_t cmd)
{
    static const char *const names[] = {
        [VFIO_USER_VERSION] = "VERSION",
        [VFIO_USER_DMA_MAP] = "DMA_MAP",
        [VFIO_USER_DMA_UNMAP] = "DMA_UNMAP",
        [VFIO_USER_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
        [VFIO_USER_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
        [VFIO_USER_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
        [VFIO_USER_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
        [VFIO_USER_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
        [VFIO_USER_REGION_READ] = "REGION_READ",
        [VFIO_USER_REGION_WRITE] = "REGION_WRITE",
        [VFIO_USER_DMA_READ] = "DMA_READ",
        [VFIO_USER_DMA_WRITE] = "DMA_WRITE",
        [VFIO_USER_DEVICE_RESET] = "DEVICE_RESET",
        [VFIO_USER_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
        [VFIO_USER_DEVICE_FEATURE] = "DEVICE_FEATURE",
        [VFIO_USER_MIG_DATA_READ] = "MIG_DATA_READ",
        [VFIO_USER_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
    };

    if (cmd == VFIO_USER_X_MIG_PRECOPY_INFO) {
        return "X_MIG_PRECOPY_INFO";
    }
    if (cmd < sizeof(names) / sizeof(names[0])) {
        return names[cmd];
    }
    return NULL;
}

struct vfio_user_header {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t msg_size;      /* header included */
    uint32_t flags;
    uint32_t error_no;      /* errno of a failed command, in a reply */
};
#define VFIO_USER_HDR_SIZE sizeof(struct vfio_user_header)

#define VFIO_USER_F_TYPE_MASK    0xf
#define VFIO_USER_F_TYPE_COMMAND 0
#define VFIO_USER_F_TYPE_REPLY   1
#define VFIO_USER_F_NO_REPLY     0x10
#define VFIO_USER_F_ERROR        0x20

/* VERSION: both directions; JSON capabilities follow, NUL-terminated. */
struct vfio_user_version {
    uint16_t major;
    uint16_t minor;
    char capabilities[];
};

/* Capability names and their defaults when absent. */
#define VFIO_USER_CAP_MAX_MSG_FDS          "max_msg_fds"
#define VFIO_USER_CAP_MAX_DATA_XFER_SIZE   "max_data_xfer_size"
#define VFIO_USER_CAP_PGSIZES              "pgsizes"
#define VFIO_USER_CAP_MAX_DMA_MAPS         "max_dma_maps"
#define VFIO_USER_CAP_MIGRATION            "migration"
#define VFIO_USER_CAP_MIGRATION_PGSIZE     "pgsize"
/* Dropped by 0.9.2 with DIRTY_PAGES; still proposed by some clients. */
#define VFIO_USER_CAP_MIGRATION_MAX_BITMAP "max_bitmap_size"
#define VFIO_USER_CAP_TWIN_SOCKET          "twin_socket"
#define VFIO_USER_CAP_WRITE_MULTIPLE       "write_multiple"
/* Extensions, inside the "migration" object. */
#define VFIO_USER_CAP_X_PRECOPY_INFO       "x-precopy-info"
#define VFIO_USER_CAP_X_MIG_DATA_SIZE      "x-mig-data-size"

#define VFIO_USER_DEF_MAX_FDS       1
#define VFIO_USER_DEF_MAX_XFER      (1024 * 1024)
#define VFIO_USER_DEF_PGSIZE        4096
#define VFIO_USER_DEF_MAX_DMA_MAPS  65535
/* Upper bounds a receiver enforces before allocating anything. */
#define VFIO_USER_MAX_MAX_FDS       16
#define VFIO_USER_MAX_MAX_XFER      (64 * 1024 * 1024)

/* DMA_MAP / DMA_UNMAP */
struct vfio_user_dma_map {
    uint32_t argsz;
    uint32_t flags;
#define VFIO_USER_F_DMA_REGION_READ  (1 << 0)
#define VFIO_USER_F_DMA_REGION_WRITE (1 << 1)
    uint64_t offset;        /* into the passed fd, if any */
    uint64_t addr;          /* IOVA */
    uint64_t size;
};

struct vfio_user_dma_unmap {
    uint32_t argsz;
    uint32_t flags;
#define VFIO_USER_F_DMA_UNMAP_ALL (1 << 1)
    uint64_t addr;
    uint64_t size;
};

/* DEVICE_GET_INFO: struct vfio_device_info without cap_offset/pad. */
struct vfio_user_device_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t num_regions;
    uint32_t num_irqs;
};

/*
 * DEVICE_GET_REGION_INFO: request and reply are struct vfio_region_info
 * (the reply may append a capability chain, argsz says how much room the
 * client has; a mappable region comes with one fd).
 * DEVICE_GET_IRQ_INFO: struct vfio_irq_info both ways.
 * DEVICE_SET_IRQS: struct vfio_irq_set, eventfds passed as fds.
 */

/* DEVICE_GET_REGION_IO_FDS */
struct vfio_user_region_io_fds_request {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
};

/* REGION_READ / REGION_WRITE */
struct vfio_user_region_access {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    uint8_t data[];
};

/* DMA_READ / DMA_WRITE (server -> client) */
struct vfio_user_dma_access {
    uint64_t addr;
    uint64_t count;
    uint8_t data[];
};

/* REGION_WRITE_MULTI */
#define VFIO_USER_MULTI_DATA 8
#define VFIO_USER_MULTI_MAX  200
struct vfio_user_write_multi_entry {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    uint8_t data[VFIO_USER_MULTI_DATA];
};
struct vfio_user_write_multi {
    uint64_t wr_cnt;
    struct vfio_user_write_multi_entry wrs[];
};

/*
 * DEVICE_FEATURE: struct vfio_device_feature, feature data follows.
 * MIGRATION, MIG_DEVICE_STATE and MIG_DATA_SIZE carry the kernel's
 * payloads (data_fd unused).  DMA logging differs from the kernel in that
 * the range array and the bitmap travel inline instead of as pointers.
 */
struct vfio_user_dma_logging_control {
    uint64_t page_size;
    uint32_t num_ranges;    /* 0: log every mapped DMA region */
    uint32_t reserved;
    struct vfio_device_feature_dma_logging_range ranges[];
};

struct vfio_user_dma_logging_report {
    uint64_t iova;
    uint64_t length;
    uint64_t page_size;
    uint64_t bitmap[];      /* in the reply: one bit per page */
};

/* MIG_DATA_READ (request without data, reply with) / MIG_DATA_WRITE */
struct vfio_user_mig_data {
    uint32_t argsz;
    uint32_t size;
    uint8_t data[];
};

#endif
