/*
 * Internal to hw/vfio: a device's migration state, shared by the
 * migration handlers (migration.c) and the multifd device-state transfer
 * (migration-multifd.c).
 */
#ifndef HW_VFIO_VFIO_MIGRATION_INTERNAL_H
#define HW_VFIO_VFIO_MIGRATION_INTERNAL_H

#include "vfio-internal.h"
#include "migration/multifd.h"
#include "system/runstate.h"

/* Bytes of config space a device section (or the last packet) carries. */
#define VFIO_MIG_CONFIG_SIZE 256

/*
 * Threads: the handlers run where register.h says; the change-state
 * handlers with the BQL held.  A device's VFIOMigration is used by one
 * of them at a time (the migration core orders them); device_state is
 * also read by qom-get, hence the atomics.
 */
typedef struct VFIOMigration {
    VFIODevice *vdev;
    bool supported;                 /* the device has migration v2 */
    uint64_t mig_flags;             /* VFIO_MIGRATION_* */
    uint32_t device_state;          /* atomic: qom-get reads it */
    char *idstr;
    bool registered;
    VMChangeStateEntry *vmstate;

    /*
     * Source, migration thread (and the BQL for the stop); at the
     * switchover, with multifd transfer, the device's save thread
     * instead (the END and FULL sections then leave the device alone).
     */
    bool save_active;               /* between save_setup and save_cleanup */
    bool multifd_transfer;          /* this migration: STOP_COPY via multifd */
    uint64_t stop_copy_size;
    uint64_t precopy_init_size;
    uint64_t precopy_dirty_size;
    bool initial_data_sent;
    uint64_t bytes_transferred;     /* atomic */

    /*
     * Destination, incoming thread; after switchover_start the load
     * thread owns the device (the incoming thread only checks markers).
     */
    bool switchover_ack_pending;
    bool multifd_load;              /* device state comes via multifd */
    bool switchover_started;
    bool config_load_ready;         /* DEV_CONFIG_LOAD_READY was loaded */
    bool load_done;
    /*
     * The loaded command register waits in vdev->config for the first
     * state that takes region access (RUNNING_P2P or RUNNING).  Set by
     * the loader, cleared by the arc that writes it, after the load.
     */
    bool config_restore_pending;
    uint8_t *load_buf;
    /* Receive threads insert, the load thread takes (atomic pointer). */
    MultiFDStateQueue *load_queue;
} VFIOMigration;

/* ---- migration.c, for migration-multifd.c ---- */

/*
 * Move the device to STOP_COPY unless it is there already (a paused
 * VM's device never went through the switchover stop).
 */
bool vfio_mig_enter_stop_copy(VFIOMigration *m, Error **errp);
/*
 * Read the device's STOP_COPY data to its end, handing every piece to
 * @sink.  Returns the bytes read, or -1 with @errp naming the device.
 */
int64_t vfio_mig_drain_to_end(VFIOMigration *m, VFIOMigDataSink *sink,
                              void *opaque, Error **errp);
/*
 * The config space the destination loads last: vmig's copy, so the
 * device need not take region access in STOP_COPY.
 */
void vfio_mig_config_snapshot(VFIOMigration *m,
                              uint8_t config[VFIO_MIG_CONFIG_SIZE]);
/*
 * Check and apply @len bytes of config state, which ends RESUMING (the
 * device checks the stream it got then).  0 or a negative errno.
 */
int vfio_mig_load_config_buf(VFIOMigration *m, const uint8_t *config,
                             uint64_t len, Error **errp);

#endif
