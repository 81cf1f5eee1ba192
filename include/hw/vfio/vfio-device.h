/*
 * The common VFIO device: what hw/vfio knows about an assigned device,
 * whatever carries its requests (kernel ioctls or vfio-user messages).
 *
 * A transport (hw/vfio-user/pci.c for vfio-user-pci) fills a
 * VFIODeviceIOOps table and embeds a VFIODevice in its object.  The
 * migration code (hw/vfio/migration.c), the dirty tracking
 * (hw/vfio/dirty-tracking.c) and drivers inside vmig (the "dma" guest
 * program) reach the device only through these ops, so they never know
 * which transport is behind it.
 *
 * Threads: every op may be called from any thread (the migration
 * thread, vCPU threads, the main thread) at the same time; a transport
 * that needs serialisation does it itself.
 */
#ifndef HW_VFIO_VFIO_DEVICE_H
#define HW_VFIO_VFIO_DEVICE_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qom/object.h"
#include "linux/vfio.h"

typedef struct VFIODevice VFIODevice;
typedef struct VFIOMigration VFIOMigration;

/*
 * Receives migration data in stream order (see mig_data_drain).  Returns
 * false with @errp set to stop the drain.
 */
typedef bool VFIOMigDataSink(void *opaque, const void *data, size_t len,
                             Error **errp);

typedef struct VFIODeviceIOOps {
    /*
     * Region @index: its info and capability chain (g_free it), or NULL.
     * *@mmap_fd gets an fd to map the region with, or -1.
     */
    struct vfio_region_info *(*region_info)(VFIODevice *vdev, uint32_t index,
                                            int *mmap_fd, Error **errp);
    /*
     * @len bytes at @offset of region @index, whole or not at all (a
     * device may refuse while it is stopped: see vfio-user-dma
     * --strict-regions).  Callers use vfio_device_region_*(), which keep
     * vdev->config.
     */
    bool (*region_read)(VFIODevice *vdev, uint32_t index, uint64_t offset,
                        void *buf, size_t len, Error **errp);
    bool (*region_write)(VFIODevice *vdev, uint32_t index, uint64_t offset,
                         const void *buf, size_t len, Error **errp);

    /* VFIO_DEVICE_GET_IRQ_INFO of irq @index into *@info. */
    bool (*irq_info)(VFIODevice *vdev, uint32_t index,
                     struct vfio_irq_info *info, Error **errp);
    /* VFIO_DEVICE_SET_IRQS with eventfds (@fds, -1 detaches) or none. */
    bool (*set_irqs)(VFIODevice *vdev, uint32_t index, uint32_t flags,
                     uint32_t start, uint32_t count, const int *fds,
                     Error **errp);

    /*
     * VFIO_DEVICE_RESET: the device back to its power-on state, migration
     * state RUNNING; the only way out of ERROR and out of RESUMING.
     */
    bool (*reset)(VFIODevice *vdev, Error **errp);

    /*
     * VFIO_DEVICE_FEATURE: @flags is the feature index | GET/SET/PROBE,
     * @data the payload after the header, @out what a GET returns.
     * *@dev_errno (may be NULL) gets the device's errno on a refusal.
     */
    bool (*device_feature)(VFIODevice *vdev, uint32_t flags,
                           const void *data, size_t len, void *out,
                           size_t out_len, uint32_t *dev_errno,
                           Error **errp);

    /* ---- Migration (migration v2 uAPI semantics) ---- */

    /* VFIO_MIGRATION_* the device offers; fails if it has no migration. */
    bool (*mig_get_flags)(VFIODevice *vdev, uint64_t *flags, Error **errp);
    /* Its enum vfio_device_mig_state, as the device tells it. */
    bool (*mig_get_state)(VFIODevice *vdev, uint32_t *state, Error **errp);
    /* One arc: @state must be the next state on the device's path. */
    bool (*mig_set_state)(VFIODevice *vdev, uint32_t state, Error **errp);
    /*
     * MIG_DATA_SIZE, valid in any state.  NULL when the device cannot
     * tell (the caller then assumes a default).
     */
    bool (*mig_data_size)(VFIODevice *vdev, uint64_t *stop_copy_length,
                          Error **errp);
    /* Precopy info, PRE_COPY(_P2P) only; NULL when unavailable. */
    bool (*mig_precopy_info)(VFIODevice *vdev, uint64_t *initial_bytes,
                             uint64_t *dirty_bytes, Error **errp);
    /*
     * Read the migration data stream into @sink until the device has no
     * more for now (*@end = true) or @max_bytes were read.  Returns the
     * bytes read or -1.
     */
    int64_t (*mig_data_drain)(VFIODevice *vdev, uint64_t max_bytes,
                              VFIOMigDataSink *sink, void *opaque,
                              bool *end, Error **errp);
    /* Write @iov's buffers, in order, into the stream (RESUMING). */
    bool (*mig_data_writev)(VFIODevice *vdev, const struct iovec *iov,
                            unsigned iov_cnt, Error **errp);

    /* ---- DMA and its logging ---- */

    /* Map guest RAM [@iova, +@size) backed by @fd at @offset (fd -1: none). */
    bool (*dma_map)(VFIODevice *vdev, uint64_t iova, uint64_t size, int fd,
                    uint64_t offset, bool writable, Error **errp);
    /* Undo dma_map of exactly that range. */
    bool (*dma_unmap)(VFIODevice *vdev, uint64_t iova, uint64_t size,
                      Error **errp);
    /* Start logging the ranges; *@page_size in: wanted, out: granted. */
    bool (*dma_logging_start)(VFIODevice *vdev, uint64_t *page_size,
                              const struct vfio_device_feature_dma_logging_range *ranges,
                              uint32_t nr_ranges, Error **errp);
    /* Stop logging; the log is dropped. */
    bool (*dma_logging_stop)(VFIODevice *vdev, Error **errp);
    /* One bit per page, u64 words, read-and-clear. */
    bool (*dma_logging_report)(VFIODevice *vdev, uint64_t iova,
                               uint64_t length, uint64_t page_size,
                               uint64_t *bitmap, Error **errp);
    /*
     * Dirty tracking by the IOMMU the device's DMA goes through (kernel
     * transport), for a device that cannot log its own DMA; NULL when
     * that IOMMU cannot track.  Devices that share the IOMMU share its
     * log: starts and stops are counted, and a report (pages of 4 KiB,
     * read-and-clear) covers the writes of all of them.
     */
    bool (*iommu_dirty_start)(VFIODevice *vdev, Error **errp);
    void (*iommu_dirty_stop)(VFIODevice *vdev);
    bool (*iommu_dirty_report)(VFIODevice *vdev, uint64_t iova,
                               uint64_t length, uint64_t page_size,
                               uint64_t *bitmap, Error **errp);
    /*
     * How query-migrate names that IOMMU's tracking ("iommu" for the
     * legacy type1 container, "iommufd-hwpt"); set with the members above.
     */
    const char *iommu_dirty_name;
} VFIODeviceIOOps;

/* How a device's DMA writes reach the dirty log (dirty-tracking.c). */
typedef enum VFIODirtyMode {
    VFIO_DIRTY_NONE,                /* the device does not migrate */
    VFIO_DIRTY_DEVICE,              /* its own DMA logging */
    VFIO_DIRTY_IOMMU,               /* the IOMMU's dirty tracking */
    VFIO_DIRTY_ALL,                 /* every DMA-able page, at every sync */
} VFIODirtyMode;

/*
 * The device's dirty tracking as query-migrate names it:
 * "device-dma-logging", the IOMMU's name for its tracking ("iommu",
 * "iommufd-hwpt"), "all-dirty" or "none".
 */
const char *vfio_dirty_mode_name(VFIODevice *vdev);

/* A guest RAM range the device may DMA to (IOVA == guest address). */
typedef struct VFIODMARange {
    uint64_t iova;
    uint64_t size;
} VFIODMARange;

struct VFIODevice {
    /* Set by the transport before vfio_device_attach(); fixed after. */
    char *name;                     /* "vfio-user-pci dev0", for messages */
    char *id;                       /* the -device id (or the QOM name) */
    Object *owner;
    const VFIODeviceIOOps *io_ops;

    /* Properties (VFIO_DEVICE_PROPS; runtime ones read with atomics). */
    OnOffAuto enable_migration;
    bool pre_copy_dirty_page_tracking;
    OnOffAuto device_dirty_page_tracking;
    bool allow_pre_copy;
    OnOffAuto migration_multifd_transfer;
    /* Destination: cap on device state queued from multifd (0: none). */
    uint64_t migration_max_queued_buffers_size;
    bool migration_events;
    /* Testing only: never merge the device's DMA log (writes get lost). */
    bool dirty_sync_disabled;

    /* What realize found: fixed after vfio_device_attach(). */
    VFIODMARange *dma_ranges;
    unsigned nr_dma_ranges;
    int irq_fd;                     /* completion eventfd, or -1 */
    uint32_t irq_index;             /* VFIO_PCI_*_IRQ_INDEX of irq_fd */
    char *irq_name;                 /* x-irq: asked for, then in use */
    uint64_t irq_count;             /* interrupts taken (atomic) */

    /*
     * vmig's own copy of config space: read by the transport at realize,
     * then kept by every config write through vfio_device_region_write().
     * Migration saves this copy and never reads the device for it (some
     * devices refuse region access while stopped).  config_lock guards
     * it once vfio_device_attach() has returned.
     */
    GMutex config_lock;
    uint8_t config[256];

    /* Migration (hw/vfio/migration.c); NULL when the device has none. */
    VFIOMigration *migration;
    Error *migration_blocker;       /* why the device cannot migrate */
    /* Dirty tracking (hw/vfio/dirty-tracking.c). */
    struct VFIODirtyTracking *dirty_tracking;
    VFIODirtyMode dirty_mode;       /* fixed by vfio_device_attach() */
};

/*
 * The -device properties of every VFIO device type, with QEMU's names and
 * defaults, set straight into the VFIODevice that @_state embeds as
 * @_vdev (x-migration-multifd-transfer may change while the VM runs:
 * hw/vfio reads it with atomics).
 */
#define VFIO_DEVICE_PROPS(_state, _vdev) \
    DEFINE_PROP("enable-migration", PROP_TYPE_ONOFFAUTO, _state, \
                _vdev.enable_migration, "auto", \
                "migrate the device (auto: when it can, else block)"), \
    DEFINE_PROP("x-pre-copy-dirty-page-tracking", PROP_TYPE_BOOL, _state, \
                _vdev.pre_copy_dirty_page_tracking, "on", \
                "read the device's DMA log during pre-copy too"), \
    DEFINE_PROP("x-device-dirty-page-tracking", PROP_TYPE_ONOFFAUTO, \
                _state, _vdev.device_dirty_page_tracking, "on", \
                "use the device's DMA logging when it has it (off: the " \
                "IOMMU's dirty tracking, else every page dirty)"), \
    DEFINE_PROP("x-allow-pre-copy", PROP_TYPE_BOOL, _state, \
                _vdev.allow_pre_copy, "on", \
                "use the device's PRE_COPY states when it has them (off: " \
                "STOP_COPY only)"), \
    DEFINE_PROP_RT("x-migration-multifd-transfer", PROP_TYPE_ONOFFAUTO, \
                   _state, _vdev.migration_multifd_transfer, "auto", \
                   "send the device state over multifd channels " \
                   "(changeable with qom-set)"), \
    DEFINE_PROP("x-migration-max-queued-buffers-size", PROP_TYPE_SIZE, \
                _state, _vdev.migration_max_queued_buffers_size, "0", \
                "destination: the most device state received over " \
                "multifd that may wait for the device (0: no limit)"), \
    DEFINE_PROP("migration-events", PROP_TYPE_BOOL, _state, \
                _vdev.migration_events, "off", \
                "emit VFIO_MIGRATION events on device state changes"), \
    DEFINE_PROP("x-no-dirty-sync", PROP_TYPE_BOOL, _state, \
                _vdev.dirty_sync_disabled, "off", \
                "testing only: never read the device's DMA log, so its " \
                "writes to guest RAM are lost in a migration"), \
    DEFINE_PROP("x-irq", PROP_TYPE_STR, _state, _vdev.irq_name, "auto", \
                "the completion interrupt: auto (MSI-X, else MSI, else " \
                "INTx), msix, msi, intx or none; qom-get says which one " \
                "is in use")

/*
 * After realize has filled the device in: set up migration and dirty
 * tracking (which may refuse, e.g. enable-migration=on on a device
 * without migration) and make the device visible to the lookups below.
 * BQL held.
 */
bool vfio_device_attach(VFIODevice *vdev, Error **errp);
/* Undo vfio_device_attach.  BQL held. */
void vfio_device_detach(VFIODevice *vdev);

/*
 * The attached devices, in creation order.  The list changes only while
 * the machine is built and torn down (BQL held), never while vCPUs run,
 * so vCPU threads may read it without a lock.
 */
unsigned vfio_device_count(void);
VFIODevice *vfio_device_nth(unsigned i);
VFIODevice *vfio_device_find(const char *id);
/*
 * For a guest program's devices= option: the devices named in @ids
 * (separated by ':'), or every device when @ids is NULL or empty.  NULL
 * with errp set (naming @who) when one is missing or there is none.
 */
GPtrArray *vfio_device_lookup(const char *ids, const char *who, Error **errp);

/* Region access (any thread). */
bool vfio_device_region_read(VFIODevice *vdev, uint32_t index,
                             uint64_t offset, void *buf, size_t len,
                             Error **errp);
/* A write to the config region also updates vdev->config. */
bool vfio_device_region_write(VFIODevice *vdev, uint32_t index,
                              uint64_t offset, const void *buf, size_t len,
                              Error **errp);
/* A consistent copy of vdev->config (any thread). */
void vfio_device_config_snapshot(VFIODevice *vdev,
                                 uint8_t out[sizeof(vdev->config)]);
bool vfio_device_read64(VFIODevice *vdev, uint32_t index, uint64_t offset,
                        uint64_t *val, Error **errp);
bool vfio_device_write64(VFIODevice *vdev, uint32_t index, uint64_t offset,
                         uint64_t val, Error **errp);
bool vfio_device_read32(VFIODevice *vdev, uint32_t index, uint64_t offset,
                        uint32_t *val, Error **errp);
bool vfio_device_write32(VFIODevice *vdev, uint32_t index, uint64_t offset,
                         uint32_t val, Error **errp);

/*
 * Realize: wire the completion interrupt to an eventfd (vdev->irq_fd),
 * through what x-irq asks for: with auto, MSI-X, else MSI, else INTx,
 * and none at all leaves irq_fd -1 (the device is polled).  x-irq then
 * names the one in use.  Release closes the eventfd; the transport's
 * teardown has stopped the device from signalling it.
 */
bool vfio_device_setup_irq(VFIODevice *vdev, Error **errp);
void vfio_device_release_irq(VFIODevice *vdev);
/*
 * Wait at most @timeout_ms for the device's interrupt and consume it.
 * Returns 1 when it fired, 0 on timeout, -1 on error.  Re-arms a
 * level-triggered INTx.  One waiter per device at a time.
 */
int vfio_device_irq_wait(VFIODevice *vdev, int timeout_ms, Error **errp);

#endif
