/*
 * libvfio-user-server (prefix vus_): write a migratable vfio-user device.
 *
 * A device is a process that owns a VusCtx.  It describes itself (PCI
 * identity, regions, interrupts, migration support), then listens on a
 * UNIX socket and serves one vfio-user client (a VMM, vfio-user-cli, a
 * test) at a time.  When the client goes away the device stays as it is
 * (its migration state included) and the next client can connect.  A
 * client that connects while another is served is refused at once: its
 * first request gets an EBUSY error reply and the connection is closed.
 *
 * Dependencies: libc and pthreads only.  Link vus_dep (meson) or
 * -lvfio-user-server -lpthread.
 *
 * ---------------------------------------------------------------------
 * Threads and locking
 * ---------------------------------------------------------------------
 *
 * The "service thread" is the thread that runs vus_ctx_run(), or the
 * thread vus_ctx_start() created.  It accepts a client and handles its
 * messages one at a time, so:
 *
 *   - EVERY device callback (VusRegionAccessFn, VusConfigWriteFn,
 *     VusIrqStateFn, VusDmaMapFn, VusDmaUnmapFn, VusResetFn,
 *     VusClientFn, every VusMigrationOps member, VusDmaLogFn) runs on the
 *     service thread, never two at once.  Callbacks need no lock against
 *     each other.
 *   - The device's own threads (a DMA engine, background work) run
 *     concurrently with those callbacks.  Device state touched by both
 *     needs the device's own lock.  The library never calls back while
 *     holding a lock the device could need, so a callback may take the
 *     device lock and wait for a device thread.
 *   - These functions may be called from ANY thread at any time after
 *     vus_ctx_realize(): vus_irq_trigger(), vus_irq_is_enabled(),
 *     vus_dma_addr(), vus_dma_read(), vus_dma_write(),
 *     vus_dma_mark_dirty(), vus_dma_logging_active(),
 *     vus_mig_get_state(), vus_pci_config_read(), vus_log(),
 *     vus_ctx_stop().  They use the library's internal locks, which are
 *     never held across a device callback.
 *   - Setup functions (vus_ctx_set_*, vus_pci_*, vus_setup_*) are called
 *     before vus_ctx_realize(), from one thread.
 *
 * DMA pointers: vus_dma_addr() returns a pointer into a client mapping.
 * It stays valid until the VusDmaUnmapFn callback for a range that
 * overlaps it RETURNS: the library calls the callback before it unmaps,
 * so the device must make its threads stop using pointers into that
 * range (for example: pause the DMA engine, wait for it) before
 * returning.  vus_dma_read() / vus_dma_write() copy under the library's
 * DMA lock and are always safe against a concurrent unmap.  All DMA
 * mappings are dropped (with VusDmaUnmapFn calls) when the client
 * disconnects.
 *
 * Migration: the device changes its behaviour only inside the
 * transition callback (one call per FSM arc).  A device thread that must
 * not run in STOP must be paused by the device in the arc that leaves a
 * running state (RUNNING -> STOP, RUNNING_P2P -> STOP, PRE_COPY ->
 * STOP_COPY, ...), before the callback returns.  Migration data is read
 * and written on the service thread, between arcs.
 *
 * ---------------------------------------------------------------------
 * Return values
 * ---------------------------------------------------------------------
 *
 * Functions returning int return 0 (or a count) on success and a
 * negative errno on failure; failures are also reported through the log
 * callback with the device name and the reason.  Callbacks report
 * failure the same way: a negative errno, which becomes the error_no of
 * the reply to the client.
 */
#ifndef VFIO_USER_SERVER_LIBVUS_H
#define VFIO_USER_SERVER_LIBVUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/vfio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct VusCtx VusCtx;

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

typedef enum VusLogLevel {
    VUS_LOG_ERROR = 0,
    VUS_LOG_WARN = 1,
    VUS_LOG_INFO = 2,
    VUS_LOG_DEBUG = 3,
} VusLogLevel;

/*
 * Receives one formatted line (no trailing newline), already prefixed
 * with the device name.  May be called from any thread that calls into
 * the library, including several at once.
 */
typedef void (*VusLogFn)(void *opaque, VusLogLevel level, const char *msg);

/* ------------------------------------------------------------------ */
/* Context                                                             */
/* ------------------------------------------------------------------ */

/**
 * vus_ctx_new: create a device context.
 * @name: device name used as a prefix in every log line and error
 *        (copied).
 * @opaque: passed as the first argument of every device callback.
 *
 * The context starts with no regions, no IRQs, no migration and a
 * default log callback that prints ERROR and WARN lines to stderr.
 * Returns NULL only when memory runs out.
 */
VusCtx *vus_ctx_new(const char *name, void *opaque);

/**
 * vus_ctx_free: stop serving, drop the client, unmap all DMA, close the
 * listening socket, unlink its path and free @ctx.  If vus_ctx_start()
 * created a service thread it is stopped and joined first; a device that
 * runs vus_ctx_run() on a thread of its own calls vus_ctx_stop() and
 * waits for vus_ctx_run() to return before this.  Must not be called from
 * a device callback.  NULL is allowed.
 */
void vus_ctx_free(VusCtx *ctx);

/**
 * vus_ctx_set_log: route the library's log lines to @fn (NULL: discard).
 * Lines above @max_level are not formatted at all.
 */
void vus_ctx_set_log(VusCtx *ctx, VusLogFn fn, VusLogLevel max_level);

/**
 * vus_log: log a line through the context's log callback, prefixed with
 * the device name, so that a device's own messages look like the
 * library's.  Any thread.
 */
void vus_log(VusCtx *ctx, VusLogLevel level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * vus_ctx_opaque: the @opaque given to vus_ctx_new().
 */
void *vus_ctx_opaque(VusCtx *ctx);

/**
 * vus_ctx_set_max_data_xfer_size: the largest data payload this server
 * accepts or sends in one message (REGION_READ/WRITE, MIG_DATA_READ/
 * WRITE, DMA_READ/WRITE), offered as max_data_xfer_size in VERSION.
 * Default 1 MiB; at most VFIO_USER_MAX_MAX_XFER.  The value used on a
 * connection is the smaller of the client's and the server's.
 */
int vus_ctx_set_max_data_xfer_size(VusCtx *ctx, uint32_t size);

/**
 * vus_ctx_set_region_states: the migration states in which the client
 * may access regions with REGION_READ/WRITE(_MULTI), as a mask of
 * 1 << state (enum vfio_device_mig_state); in any other state those
 * messages fail with EINVAL.  Default: every state.  Some device servers
 * refuse region access while their device is stopped (in STOP_COPY at
 * least); a mask of RUNNING, RUNNING_P2P and PRE_COPY lets a client be
 * tested against the strictest of them.  What the client maps directly
 * is not affected.  Before vus_ctx_realize().
 */
int vus_ctx_set_region_states(VusCtx *ctx, uint32_t states);

/*
 * What one client may hold and how long it may make the server wait.
 * A zero field keeps its default.
 *
 * The library reads one request and answers it before it reads the
 * next, so requests a client pipelines wait in its socket (bounded by
 * the socket buffer), never in the library's memory.
 */
typedef struct VusClientLimits {
    /*
     * DMA regions mapped at once (offered as max_dma_maps in VERSION).
     * Default VUS_DEF_MAX_DMA_MAPS; DMA_MAP beyond it fails with ENOSPC.
     */
    uint32_t max_dma_maps;
    /*
     * Bytes mapped in all the client's DMA regions.  Default
     * VUS_DEF_MAX_DMA_BYTES; DMA_MAP beyond it fails with ENOSPC.
     */
    uint64_t max_dma_bytes;
    /*
     * Server-to-client requests (DMA_READ / DMA_WRITE from device
     * threads) outstanding at once, the one on the wire included: the
     * others wait their turn.  Beyond it vus_dma_read() and
     * vus_dma_write() fail at once with -EBUSY.  Default
     * VUS_DEF_MAX_DMA_REQUESTS.
     */
    uint32_t max_dma_requests;
    /*
     * A message the client has begun to send must arrive whole within
     * this many ms, and a reply the library sends must be taken by the
     * client within it; otherwise the client is dropped (with a log line
     * saying why) and the next one is served.  A client idle between
     * messages is kept.  Default VUS_DEF_MSG_TIMEOUT_MS.
     */
    uint32_t msg_timeout_ms;
} VusClientLimits;

#define VUS_DEF_MAX_DMA_MAPS     1024u
#define VUS_DEF_MAX_DMA_BYTES    (1ull << 40)
#define VUS_DEF_MAX_DMA_REQUESTS 16u
#define VUS_DEF_MSG_TIMEOUT_MS   10000u

/**
 * vus_ctx_set_client_limits: set the per-client limits (see
 * VusClientLimits) before vus_ctx_realize().  max_dma_maps is at most
 * 65535 (the protocol's own bound).  Returns 0 or -EINVAL.
 */
int vus_ctx_set_client_limits(VusCtx *ctx, const VusClientLimits *limits);

/**
 * Client connect/disconnect notification.  @connected is true after a
 * client was accepted (before VERSION), false after it went away and the
 * library dropped its DMA mappings and IRQ eventfds.
 */
typedef void (*VusClientFn)(void *opaque, bool connected);

/** vus_ctx_set_client_cb: get told when a client comes and goes. */
void vus_ctx_set_client_cb(VusCtx *ctx, VusClientFn fn);

/* ------------------------------------------------------------------ */
/* PCI identity and config space                                       */
/* ------------------------------------------------------------------ */

typedef struct VusPciIds {
    uint16_t vendor_id;
    uint16_t device_id;
    uint16_t subsys_vendor_id;
    uint16_t subsys_id;
    uint32_t class_code;        /* 24 bits: base class, sub class, prog-if */
    uint8_t revision;
    /* 256 (conventional) or 4096 (PCIe extended config space). */
    uint32_t config_size;
} VusPciIds;

/**
 * vus_pci_setup: make the device a PCI device with these ids.  The
 * library then owns region VFIO_PCI_CONFIG_REGION_INDEX: it builds the
 * type-0 header, keeps the BAR registers in line with the BAR regions
 * (sizing writes included), the capability list, the interrupt pin
 * (INTx declared) and the writable bits of the command register and of
 * the MSI / MSI-X capabilities.  Must come before any vus_pci_add_*.
 */
int vus_pci_setup(VusCtx *ctx, const VusPciIds *ids);

/**
 * vus_pci_add_cap: append a capability to the config-space capability
 * list.
 * @cap_id: PCI capability id (0x01 PM, 0x05 MSI, 0x10 PCIe, 0x11 MSI-X,
 *          0x09 vendor specific, ...).
 * @body: the capability after its 2-byte header (id, next), @len bytes.
 * @wmask: NULL (read-only to the client) or @len bytes of writable bit
 *         masks, one per byte of @body.
 *
 * Returns the config-space offset of the capability (> 0) or a negative
 * errno (no room, bad length).
 */
int vus_pci_add_cap(VusCtx *ctx, uint8_t cap_id, const void *body,
                    size_t len, const uint8_t *wmask);

/**
 * vus_pci_add_msi_cap: add an MSI capability for @nr_vectors (1, 2, 4,
 * 8, 16 or 32) with 64-bit addresses; the client programs it, the device
 * only triggers vectors with vus_irq_trigger(VFIO_PCI_MSI_IRQ_INDEX, n).
 * Returns the capability offset or a negative errno.
 */
int vus_pci_add_msi_cap(VusCtx *ctx, uint32_t nr_vectors);

/**
 * vus_pci_add_msix_cap: add an MSI-X capability for @nr_vectors (1 to
 * 2048), with the vector table at @table_offset of BAR @table_bar and
 * the pending-bit array at @pba_offset of BAR @pba_bar.  The client
 * emulates the table; the device triggers vectors with
 * vus_irq_trigger(VFIO_PCI_MSIX_IRQ_INDEX, n).
 * Returns the capability offset or a negative errno.
 */
int vus_pci_add_msix_cap(VusCtx *ctx, uint32_t nr_vectors,
                         uint8_t table_bar, uint32_t table_offset,
                         uint8_t pba_bar, uint32_t pba_offset);

/**
 * Called (service thread) after the client wrote @count bytes at config
 * offset @offset and the library applied the writable bits; read the
 * result with vus_pci_config_read().
 */
typedef void (*VusConfigWriteFn)(void *opaque, uint32_t offset,
                                 uint32_t count);

/** vus_pci_set_config_write_cb: get told about config-space writes. */
void vus_pci_set_config_write_cb(VusCtx *ctx, VusConfigWriteFn fn);

/**
 * vus_pci_config_read: copy @len bytes of config space at @offset into
 * @buf.  Any thread.  Returns 0 or -EINVAL (out of range, not PCI).
 */
int vus_pci_config_read(VusCtx *ctx, uint32_t offset, void *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Regions                                                             */
/* ------------------------------------------------------------------ */

#define VUS_MAX_REGIONS 16

/* VusRegionDesc.flags */
#define VUS_REGION_READ    (1u << 0)
#define VUS_REGION_WRITE   (1u << 1)
/* BAR kinds, for region indices 0-5 of a PCI device (config space). */
#define VUS_BAR_IO         (1u << 8)
#define VUS_BAR_MEM64      (1u << 9)   /* takes BAR n and n+1 */
#define VUS_BAR_PREFETCH   (1u << 10)

/**
 * Region access (service thread).  @is_write: copy @count bytes from
 * @buf into the device at @offset; otherwise fill @buf.  The library has
 * already checked that [offset, offset + count) lies inside the region.
 * Return @count, or a negative errno (becomes the reply's error).
 */
typedef ssize_t (*VusRegionAccessFn)(void *opaque, uint32_t region,
                                     uint64_t offset, void *buf,
                                     size_t count, bool is_write);

typedef struct VusMmapArea {
    uint64_t offset;        /* from the start of the region */
    uint64_t size;
} VusMmapArea;

typedef struct VusRegionDesc {
    uint64_t size;
    uint32_t flags;             /* VUS_REGION_*, VUS_BAR_* */
    VusRegionAccessFn access;   /* may be NULL only if size == 0 */
    /*
     * Optional direct mapping: the client may mmap @mmap_fd at
     * @mmap_fd_offset (page aligned) for the areas listed (none listed:
     * the whole region).  The device's own view of that memory is its own
     * business; accesses through REGION_READ/WRITE still go to @access.
     * The library dup()s the fd; -1 means not mappable.
     */
    int mmap_fd;
    uint64_t mmap_fd_offset;
    const VusMmapArea *mmap_areas;
    uint32_t nr_mmap_areas;
} VusRegionDesc;

/**
 * vus_setup_region: declare region @index (< VUS_MAX_REGIONS).  For a
 * PCI device, indices 0-5 are the BARs (size must be a power of two, at
 * least 16 bytes for memory and 4 for I/O), 6 the ROM, 7 config space
 * (owned by the library after vus_pci_setup(); declaring it replaces the
 * library's emulation), 8 VGA, and 9 onwards device-specific regions.
 * Mappable areas must be page aligned and inside the region.
 */
int vus_setup_region(VusCtx *ctx, uint32_t index, const VusRegionDesc *desc);

/* ------------------------------------------------------------------ */
/* Interrupts                                                          */
/* ------------------------------------------------------------------ */

/**
 * vus_setup_irqs: declare @count vectors of IRQ index @irq_index
 * (VFIO_PCI_INTX_IRQ_INDEX: count 0 or 1, VFIO_PCI_MSI_IRQ_INDEX,
 * VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_ERR_IRQ_INDEX,
 * VFIO_PCI_REQ_IRQ_INDEX).  The client attaches eventfds with SET_IRQS.
 */
int vus_setup_irqs(VusCtx *ctx, uint32_t irq_index, uint32_t count);

/**
 * Called (service thread) after SET_IRQS changed vectors
 * [start, start + count) of @irq_index: eventfds attached or detached,
 * masked or unmasked.  Query with vus_irq_is_enabled().
 */
typedef void (*VusIrqStateFn)(void *opaque, uint32_t irq_index,
                              uint32_t start, uint32_t count);

/** vus_setup_irq_state_cb: get told when the client changes IRQs. */
void vus_setup_irq_state_cb(VusCtx *ctx, VusIrqStateFn fn);

/**
 * vus_irq_trigger: signal vector @vector of @irq_index (writes 1 to the
 * eventfd the client attached).  A masked vector is left pending and
 * signalled when the client unmasks it.  Any thread.
 * Returns 0, -ENOENT (no eventfd attached: the client has not enabled
 * that vector), -EINVAL (no such vector) or the write error.
 */
int vus_irq_trigger(VusCtx *ctx, uint32_t irq_index, uint32_t vector);

/**
 * vus_irq_is_enabled: true if the client attached an eventfd to the
 * vector and it is not masked.  Any thread.
 */
bool vus_irq_is_enabled(VusCtx *ctx, uint32_t irq_index, uint32_t vector);

/* ------------------------------------------------------------------ */
/* DMA                                                                 */
/* ------------------------------------------------------------------ */

/* Protection bits (VusDmaRegion.prot, vus_dma_addr) */
#define VUS_DMA_READ   (1u << 0)
#define VUS_DMA_WRITE  (1u << 1)

typedef struct VusDmaRegion {
    uint64_t iova;
    uint64_t size;
    uint32_t prot;      /* VUS_DMA_READ | VUS_DMA_WRITE */
    void *vaddr;        /* where the server mapped it; NULL if no fd */
} VusDmaRegion;

/** Called (service thread) after a DMA_MAP was mapped. */
typedef void (*VusDmaMapFn)(void *opaque, const VusDmaRegion *region);
/**
 * Called (service thread) BEFORE @region is unmapped (DMA_UNMAP, or the
 * client going away).  When it returns no device thread may use a
 * pointer into the region any more.
 */
typedef void (*VusDmaUnmapFn)(void *opaque, const VusDmaRegion *region);

/** vus_setup_dma: register DMA notifications (both may be NULL). */
int vus_setup_dma(VusCtx *ctx, VusDmaMapFn map, VusDmaUnmapFn unmap);

/**
 * vus_dma_addr: translate [iova, iova + len) to a pointer in this
 * process.  The whole range must lie in one DMA region that the client
 * mapped with an fd and whose protection includes @prot.  Writes made
 * through the pointer are NOT logged: call vus_dma_mark_dirty().
 * Returns NULL and sets errno (ENOENT not mapped, EFAULT no fd / crosses
 * regions, EACCES protection) otherwise.  Any thread; see the top of
 * this file for how long the pointer lives.
 */
void *vus_dma_addr(VusCtx *ctx, uint64_t iova, size_t len, uint32_t prot);

/**
 * vus_dma_read: copy @len bytes of client memory at @iova into @buf.
 * The range may span several DMA regions; regions mapped without an fd
 * are read with DMA_READ messages to the client (over the twin socket
 * when the client offered one), in pieces of at most the negotiated
 * max_data_xfer_size.  Any thread.  Without a twin socket, a call from
 * a device callback answers commands that arrive while it waits for the
 * client's reply with EBUSY; one from a device thread waits at most 10
 * seconds for the service thread to hand the reply over.
 * Returns 0 or a negative errno (-ENOTCONN without a client).
 */
int vus_dma_read(VusCtx *ctx, uint64_t iova, void *buf, size_t len);

/**
 * vus_dma_write: copy @len bytes from @buf into client memory at @iova,
 * like vus_dma_read() in the other direction (DMA_WRITE messages for
 * regions without an fd).  The pages written are logged when DMA
 * logging is active.  Any thread.  Returns 0 or a negative errno.
 */
int vus_dma_write(VusCtx *ctx, uint64_t iova, const void *buf, size_t len);

/**
 * vus_dma_mark_dirty: record that the device wrote [iova, iova + len)
 * through its own mapping (vus_dma_addr()).  No-op when DMA logging is
 * not active.  Any thread.  Returns 0, or -ENOENT if the range is not
 * wholly mapped.
 */
int vus_dma_mark_dirty(VusCtx *ctx, uint64_t iova, size_t len);

/**
 * vus_dma_logging_active: true between DMA_LOGGING_START and
 * DMA_LOGGING_STOP (or reset / disconnect).  Any thread.
 */
bool vus_dma_logging_active(VusCtx *ctx);

/**
 * Called (service thread) when DMA logging starts (@active true) or
 * stops.  Optional; the library keeps the log itself.
 */
typedef void (*VusDmaLogFn)(void *opaque, bool active);

/** vus_setup_dma_log_cb: get told when the client starts/stops logging. */
void vus_setup_dma_log_cb(VusCtx *ctx, VusDmaLogFn fn);

/* ------------------------------------------------------------------ */
/* Reset                                                               */
/* ------------------------------------------------------------------ */

/**
 * Device reset (service thread): DEVICE_RESET from the client.  Return
 * the device to its power-on state.  Afterwards the migration state is
 * RUNNING (also when it was ERROR) and DMA logging is stopped; DMA
 * mappings and IRQ eventfds are kept.  Return 0 or a negative errno.
 */
typedef int (*VusResetFn)(void *opaque);

/** vus_setup_reset: register the reset callback (NULL: reset is a no-op). */
void vus_setup_reset(VusCtx *ctx, VusResetFn fn);

/* ------------------------------------------------------------------ */
/* Migration                                                           */
/* ------------------------------------------------------------------ */

typedef struct VusMigrationOps {
    /*
     * VFIO_MIGRATION_STOP_COPY (required), optionally | VFIO_MIGRATION_P2P
     * | VFIO_MIGRATION_PRE_COPY.
     */
    uint64_t flags;

    /*
     * One call per FSM arc, @from -> @to a direct arc of the device's FSM
     * (see vus_mig_next_state()).  A client request that needs several
     * arcs gets several calls.  Return 0 when the device is in @to.
     * Return a negative errno when the arc failed but the device is still
     * in @from: the request fails with that errno and the state stays
     * @from.  Return -ENOTRECOVERABLE when the device is in neither: the
     * state becomes ERROR, which only DEVICE_RESET leaves.
     * The arcs that enter a saving state (-> PRE_COPY, -> PRE_COPY_P2P,
     * STOP -> STOP_COPY) start a new read stream; -> RESUMING starts a
     * new write stream; leaving those states ends the stream (cancel).
     * Required.
     */
    int (*transition)(void *opaque, enum vfio_device_mig_state from,
                      enum vfio_device_mig_state to);

    /*
     * Read up to @size bytes of the stream into @buf (PRE_COPY,
     * PRE_COPY_P2P, STOP_COPY only).  Return the count; a count below
     * @size means "no more data for now" (in STOP_COPY: the end of the
     * stream; in PRE_COPY: until more state changes).  Negative errno on
     * failure.  Required unless read_data_zc is set.
     */
    ssize_t (*read_data)(void *opaque, void *buf, uint64_t size);

    /*
     * Optional zero-copy variant of read_data, used instead of it when
     * set: point *@data at up to @size contiguous bytes of the stream and
     * return their count (same short-read rule as read_data).  The bytes
     * must stay valid and unchanged until the next call of any migration
     * callback; the library sends them straight from there, saving a copy
     * per MIG_DATA_READ.
     */
    ssize_t (*read_data_zc)(void *opaque, const void **data, uint64_t size);

    /*
     * Consume @size bytes of the stream (RESUMING only).  Return @size or
     * a negative errno.  Validate the whole stream in RESUMING -> STOP.
     * Required.
     */
    ssize_t (*write_data)(void *opaque, const void *buf, uint64_t size);

    /*
     * Estimated size of the STOP_COPY data in any state (feature 9,
     * MIG_DATA_SIZE).  Optional: when NULL the feature is not offered.
     */
    int (*data_size)(void *opaque, uint64_t *stop_copy_length);

    /*
     * In PRE_COPY / PRE_COPY_P2P: bytes of initial data still to be read
     * and bytes of state changed since (the kernel's
     * VFIO_MIG_GET_PRECOPY_INFO).  Optional: when NULL the precopy-info
     * extension is not offered and its command is unknown (ENOSYS), as
     * on a plain 0.9.2 server.
     */
    int (*precopy_info)(void *opaque, uint64_t *initial_bytes,
                        uint64_t *dirty_bytes);

    /*
     * Do not offer DMA logging (DMA_LOGGING_START / STOP / REPORT), like
     * a device that cannot track its writes: a client then has to treat
     * every page the device may write as dirty.
     */
    bool no_dma_logging;
} VusMigrationOps;

/**
 * vus_setup_migration: make the device migratable (copied).  Without
 * this, DEVICE_FEATURE MIGRATION answers ENOTTY.  Fails with -EINVAL if
 * a required member is missing or the flags are not valid.
 */
int vus_setup_migration(VusCtx *ctx, const VusMigrationOps *ops);

/**
 * vus_mig_get_state: the current migration state (RUNNING if migration
 * is not set up).  Any thread; a state change in progress is seen once
 * its arc completed.
 */
enum vfio_device_mig_state vus_mig_get_state(VusCtx *ctx);

/**
 * vus_mig_state_name: "ERROR", "STOP", "RUNNING", "STOP_COPY",
 * "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P", or "?".
 */
const char *vus_mig_state_name(uint32_t state);

/**
 * vus_mig_state_is_saving: does a device in @state produce a migration
 * stream (PRE_COPY, PRE_COPY_P2P or STOP_COPY)?  Pure function.
 */
bool vus_mig_state_is_saving(uint32_t state);

/**
 * vus_mig_state_supported: is @state part of the FSM of a device with
 * migration flags @mig_flags?  ERROR, STOP, RUNNING, STOP_COPY and
 * RESUMING always are (with STOP_COPY in the flags).
 */
bool vus_mig_state_supported(uint64_t mig_flags, uint32_t state);

/**
 * vus_mig_next_state: the first arc from @from towards @to in the FSM of
 * a device with flags @mig_flags: the shortest path, no saving state
 * (PRE_COPY, PRE_COPY_P2P, STOP_COPY) as an interior step, arcs through
 * states the device lacks skipped.  Pure function of its arguments,
 * shared with the VMM and tests.
 * Returns the next state (== @to when the arc is direct), or -EINVAL
 * when the transition is refused (@to is ERROR or unsupported, @from is
 * ERROR or unsupported, STOP_COPY -> PRE_COPY(_P2P), ...).  @from == @to
 * returns @to.
 */
int vus_mig_next_state(uint64_t mig_flags, uint32_t from, uint32_t to);

/**
 * vus_mig_path: the whole path from @from to @to: fills @path with the
 * states after @from (the last one is @to), at most @max entries.
 * Returns the number of arcs (0 when @from == @to), -EINVAL when
 * refused, -ENOSPC when @max is too small.
 */
int vus_mig_path(uint64_t mig_flags, uint32_t from, uint32_t to,
                 uint32_t *path, size_t max);

/* ------------------------------------------------------------------ */
/* Serving                                                             */
/* ------------------------------------------------------------------ */

/**
 * vus_ctx_realize: finish setup and create the listening UNIX socket at
 * @socket_path, mode 0600 from the start.  A socket file nobody listens on
 * any more is replaced; a live server at the path is -EADDRINUSE, any other
 * kind of file -EEXIST (both left alone).  After this the device
 * description is frozen.
 */
int vus_ctx_realize(VusCtx *ctx, const char *socket_path);

/**
 * vus_ctx_run: serve clients on the calling thread (which becomes the
 * service thread): accept one client, handle its messages until it
 * disconnects, accept the next, until vus_ctx_stop().  A client that
 * sends garbage gets error replies, or is disconnected when framing is
 * lost or it stalls (VusClientLimits.msg_timeout_ms); either way the
 * device survives.  Clients that connect meanwhile are refused with
 * EBUSY (see the top of this file).  Returns 0 after vus_ctx_stop(),
 * a negative errno if the listening socket fails.
 */
int vus_ctx_run(VusCtx *ctx);

/**
 * vus_ctx_serve_one: accept one client (waiting at most @timeout_ms
 * milliseconds, -1 forever) and serve it until it disconnects or
 * vus_ctx_stop() is called.  Returns 0 when the client went away,
 * -ETIMEDOUT, -ECANCELED after vus_ctx_stop(), or another negative errno.
 */
int vus_ctx_serve_one(VusCtx *ctx, int timeout_ms);

/**
 * vus_ctx_start: run vus_ctx_run() on a new service thread owned by the
 * library ("one thread per connection": the thread serves one client at
 * a time, in turn).  Stop it with vus_ctx_stop() + vus_ctx_free().
 */
int vus_ctx_start(VusCtx *ctx);

/**
 * vus_ctx_stop: ask the service thread to finish: the current client is
 * disconnected and vus_ctx_run() returns, also when the client stalls
 * mid-message or stops reading replies.  A stop is final: serving
 * functions return at once afterwards.  Any thread, also from a signal
 * handler (it only writes to an eventfd).  Does not wait.
 */
void vus_ctx_stop(VusCtx *ctx);

/**
 * vus_ctx_client_connected: true while a client is connected.  Any
 * thread.
 */
bool vus_ctx_client_connected(VusCtx *ctx);

#ifdef __cplusplus
}
#endif

#endif
