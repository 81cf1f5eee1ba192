/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * vfio-user-virtio-net: internal interfaces between the device's files.
 *
 * main.c       options, PCI identity, BAR0 (common/ISR/device config,
 *              notifications), virtio status handshake, reset
 * queue.c      the split virtqueues and the loopback worker thread
 * migration.c  the device context (parts), records, save/load, FSM arcs
 */
#ifndef CONTRIB_VFIO_USER_VIRTIO_NET_H
#define CONTRIB_VFIO_USER_VIRTIO_NET_H

#include "qemu/osdep.h"
#include "vfio-user/protocol.h"
#include "vfio-user-server/libvus.h"
#include "hw/virtio/virtio-net-pci.h"

#define VNET_MAC_LEN 6
/* Enough for a context of tens of MiB, which is what the benchmark uses. */
#define VNET_MAX_FILTERS (4u << 20)

/* --x-stream-fault: what the source's stream does wrong, for tests. */
enum {
    VNET_FAULT_NONE,
    VNET_FAULT_OPTIONAL_TAG,    /* an extra record, unknown optional tag */
    VNET_FAULT_MANDATORY_TAG,   /* an extra record, unknown mandatory tag */
    VNET_FAULT_PARTIAL_PART,    /* a part longer than what is left */
    VNET_FAULT_SIZE_MISMATCH,   /* a QUEUE part's size against its heads */
    VNET_FAULT_TRUNCATED,       /* the STOP_COPY stream cut in a part */
};

/* One split virtqueue as the device sees it: all of it is migrated. */
typedef struct VnetQueue {
    uint16_t size;              /* entries; the driver may lower the max */
    uint16_t enabled;
    uint16_t msix_vector;
    uint64_t desc;              /* descriptor table (guest address) */
    uint64_t driver;            /* available ring */
    uint64_t device;            /* used ring */
    uint16_t last_avail;        /* next available entry the device takes */
    uint16_t used_idx;          /* next used entry the device fills */
    /*
     * Heads taken from the available ring and not yet used, oldest
     * first: TX frames not delivered yet, RX buffers not filled yet.
     * Always (last_avail - used_idx) of them.
     */
    uint16_t nr_inflight;
    uint16_t inflight[VNET_QUEUE_MAX];
} VnetQueue;

/* The device context: everything the driver can observe, migrated whole. */
typedef struct VnetState {
    uint64_t driver_features;
    uint32_t dfselect;
    uint32_t gfselect;
    uint16_t msix_config;
    uint16_t queue_select;
    uint8_t status;
    uint8_t config_generation;
    uint8_t isr;
    VnetQueue q[VNET_NUM_QUEUES];
    uint8_t mac[VNET_MAC_LEN];
    uint16_t link_status;
    uint32_t nr_filters;
    uint8_t *filters;           /* nr_filters * 6 bytes (owned) */
    /*
     * Derived: the filters as sorted 48-bit keys, the device's receive
     * filter.  Building it is the costly part of taking a context (a
     * device programs its filter table); see migration.c.
     */
    uint64_t *filter_keys;
} VnetState;

/* Save side of the migration stream; service thread only. */
typedef struct VnetSave {
    bool active;
    GByteArray *buf;            /* records being read out */
    size_t off;                 /* bytes of buf already read */
    bool first_done;            /* the first context went out whole */
    int64_t next_context_us;    /* PRE_COPY: no new context before this */
    uint64_t contexts;          /* context records produced */
} VnetSave;

/* Load side; service thread only. */
typedef struct VnetLoad {
    bool active;
    char *error;                /* first problem found; the stream is bad */
    uint8_t hdr[16];
    size_t hdr_got;
    uint64_t size;              /* of the current record's payload */
    uint32_t tag;
    uint32_t flags;
    bool skipping;              /* an optional record of an unknown tag */
    uint8_t *payload;
    uint64_t got;
    uint64_t records;           /* whole records taken */
    VnetState *staged;          /* the last whole context, not applied */
} VnetLoad;

typedef struct VnetDevice {
    VusCtx *ctx;
    const char *name;

    /* Fixed after start-up. */
    uint64_t device_features;
    uint64_t mig_flags;
    uint16_t queue_max;
    uint32_t precopy_interval_ms;
    uint8_t initial_mac[VNET_MAC_LEN];
    int64_t drop_frame;         /* --drop-frame: frame to lose, or -1 */
    int stream_fault;           /* --x-stream-fault, VNET_FAULT_* */

    /*
     * lock protects state, running, nr_maps and the counters; the worker
     * holds it while it moves frames, so a callback holding it with
     * running == false knows the device touches no guest memory.
     */
    GMutex lock;
    GCond cond;
    VnetState state;
    bool running;               /* the device's own RUNNING (vs STOPPED) */
    bool kicked;                /* a notification arrived */
    bool quit;
    unsigned nr_maps;           /* DMA regions the client mapped */
    uint64_t frames;            /* frames taken from TX (since start) */
    GThread *worker;

    VnetSave save;
    VnetLoad load;
} VnetDevice;

/* main.c */
void vnet_state_reset(VnetDevice *d, VnetState *s);
void vnet_log_needs_reset(VnetDevice *d, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

/* queue.c */
gpointer vnet_worker(gpointer opaque);
void vnet_kick(VnetDevice *d);
uint64_t vnet_mac_key(const uint8_t *mac);
bool vnet_build_filter(VnetState *s);

/* migration.c */
extern const VusMigrationOps vnet_migration_ops;
void vnet_migration_reset(VnetDevice *d);
void vnet_state_free_filters(VnetState *s);

#endif
