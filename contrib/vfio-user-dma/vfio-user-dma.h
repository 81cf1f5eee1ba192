/*
 * vfio-user-dma: internal interfaces between the device's files.
 *
 * main.c       options, PCI identity, regions, the DMA engine, dirtying
 * content.c    the content model (fill, check), checksums
 * migration.c  the migration stream: save, load, FSM arcs
 */
#ifndef CONTRIB_VFIO_USER_DMA_H
#define CONTRIB_VFIO_USER_DMA_H

#include "qemu/osdep.h"
#include "vfio-user/protocol.h"
#include "vfio-user-server/libvus.h"
#include "hw/misc/vfio-user-dma-regs.h"

#define VDMA_MAX_ARCS 8

/* FSM arcs named on the command line (--fail-arc, --delay-arc). */
typedef struct VdmaArcs {
    unsigned n;
    struct {
        uint32_t from, to;
        uint32_t ms;            /* --delay-arc only */
    } arc[VDMA_MAX_ARCS];
} VdmaArcs;

/* A checksum being computed over data that comes in pieces. */
typedef struct VdmaSum {
    uint64_t a[4];
    uint64_t b[4];
    uint64_t words;
    uint8_t tail[8];
    unsigned tail_len;
} VdmaSum;

/* Registers that are device state (migrated). */
typedef struct VdmaRegs {
    uint64_t src;
    uint64_t dst;
    uint64_t len;
    uint32_t ctrl;
    uint32_t status;
    uint32_t error;
    uint32_t reserved;
    uint64_t completed;
    uint64_t scratch;
} VdmaRegs;

/* Save side of the migration stream; service thread only. */
typedef struct VdmaSave {
    bool active;
    bool start_sent;
    bool end_sent;
    bool first_sweep_done;
    uint32_t seq;
    uint64_t stream_sum;
    uint64_t cursor;            /* next page to look at */
    /* The record being emitted. */
    bool in_record;
    uint16_t type;
    uint64_t first_page;        /* PAGES */
    uint64_t len;
    uint64_t off;               /* payload bytes emitted */
    uint8_t *small;             /* START / END payload */
    VdmaSum sum;
    /*
     * Device memory handed out without a copy and not summed yet: summed
     * at the next read, once the socket copy has brought it into the
     * cache, or before anything writes device memory (STOP_COPY only).
     */
    const uint8_t *lazy_ptr;
    uint64_t lazy_len;
    /* A header or trailer, possibly cut across two reads. */
    uint8_t meta[40];
    size_t meta_len;
    size_t meta_off;
    /* Pieces that are not straight device memory are built here. */
    uint8_t *staging;
    size_t staging_size;
    int64_t free_us;            /* --state-rate: when the engine is free */
} VdmaSave;

/* Load side; service thread only. */
typedef struct VdmaLoad {
    bool active;
    bool start_seen;
    bool end_seen;
    char *error;                /* first problem found; the stream is bad */
    uint32_t seq;
    uint64_t stream_sum;
    uint8_t hdr_buf[32];
    size_t hdr_got;
    uint64_t payload_got;       /* of the current record */
    uint8_t trailer_buf[8];
    size_t trailer_got;
    VdmaSum sum;
    uint8_t *small;             /* START / END payload */
    uint8_t *end_payload;       /* the checked END, applied at STOP */
    uint64_t seed;
    int64_t free_us;            /* --state-rate: when the engine is free */
} VdmaLoad;

typedef struct VdmaDevice {
    VusCtx *ctx;
    const char *name;

    /* Fixed after start-up. */
    uint64_t mem_size;
    uint64_t nr_pages;
    int mem_fd;
    uint8_t *mem;
    uint64_t initial_seed;
    uint64_t mig_flags;
    bool no_dma_logging;        /* --no-dma-logging */
    bool strict_regions;        /* --strict-regions */
    bool no_extensions;         /* --no-extensions: plain 0.9.2 */
    VusClientLimits limits;     /* --max-dma-maps, ..., --msg-timeout */
    double dirty_pages_per_sec;
    uint64_t state_rate;        /* --state-rate, bytes per second; 0: none */
    VdmaArcs fail_arcs;         /* --fail-arc FROM:TO */
    VdmaArcs delay_arcs;        /* --delay-arc FROM:TO:MS */

    /*
     * lock protects the registers, the run flags and the content
     * counters; cond signals the DMA and dirtying threads.  The dirtying
     * thread writes a page with lock held, so holding lock with
     * running == false means no device thread touches memory.
     */
    GMutex lock;
    GCond cond;
    VdmaRegs regs;
    uint64_t seed;
    uint64_t dirty_steps;
    bool running;               /* device operation allowed */
    bool dma_pending;           /* doorbell rung, engine not started */
    bool dma_busy;              /* engine moving data, lock dropped */
    bool dma_direct;            /* ... through our own mapping of RAM */
    bool quit;
    GThread *dma_thread;
    GThread *dirty_thread;
    uint64_t last_check_first;

    /* Page bitmaps, changed with atomics from any thread. */
    unsigned long *pending;     /* changed since last sent */
    unsigned long *foreign;     /* written by someone else than the model */

    VdmaSave save;
    VdmaLoad load;
} VdmaDevice;

/* content.c */
void vdma_fill_page(VdmaDevice *d, uint64_t page, uint64_t gen);
void vdma_fill_all(VdmaDevice *d);
uint64_t vdma_check(VdmaDevice *d, uint64_t seed, uint64_t steps,
                    uint64_t *first_bad);
uint64_t vdma_checksum(const void *buf, size_t len);
/* Fold @len bytes of @src into @s, copying them to @dst unless NULL. */
void vdma_sum_update(VdmaSum *s, void *dst, const void *src, size_t len);
void vdma_sum_init(VdmaSum *s);
uint64_t vdma_sum_final(const VdmaSum *s);
void vdma_mark_changed(VdmaDevice *d, uint64_t offset, uint64_t len,
                       bool foreign);
uint64_t vdma_count_bits(unsigned long *map, uint64_t nbits);

/* migration.c */
extern const VusMigrationOps vdma_migration_ops;
void vdma_save_flush_sum(VdmaDevice *d);
void vdma_migration_reset(VdmaDevice *d);

/* main.c */
void vdma_quiesce(VdmaDevice *d);
void vdma_resume(VdmaDevice *d);
void vdma_reset_state(VdmaDevice *d);

#endif
