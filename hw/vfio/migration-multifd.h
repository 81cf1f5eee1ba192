/*
 * Internal to hw/vfio: a device's state at the switchover over the
 * multifd channels (migration-multifd.c, docs/devel/vfio-migration.rst
 * "Multifd device state").
 */
#ifndef HW_VFIO_MIGRATION_MULTIFD_H
#define HW_VFIO_MIGRATION_MULTIFD_H

#include "vfio-migration-internal.h"
#include "migration/register.h"

/*
 * Whether this migration sends the device's STOP_COPY data over multifd:
 * the multifd capability and x-migration-multifd-transfer (read now, as
 * qom-set may change it at any time) not off.  Both sides decide the
 * same way, so they must agree.
 */
bool vfio_multifd_transfer_enabled(VFIODevice *vdev);
/* save_prepare: x-migration-multifd-transfer=on needs the capability. */
bool vfio_multifd_transfer_check(VFIODevice *vdev, Error **errp);

/*
 * save_live_complete_precopy_thread: with multifd transfer, the STOP_COPY
 * data as packets idx 0..N-1 and the config space as packet N
 * (CONFIG_STATE); without it, nothing to do.
 */
bool vfio_multifd_save_complete_precopy_thread(
    SaveLiveCompletePrecopyThreadData *d, Error **errp);

/* load_setup: a queue for the packets, which may come at any time. */
void vfio_multifd_load_setup(VFIOMigration *m);
/* load_cleanup (after the load thread was joined) and device exit. */
void vfio_multifd_load_cleanup(VFIOMigration *m);
/* load_state_buffer: file one packet by its idx. */
bool vfio_multifd_load_state_buffer(void *opaque, uint8_t **buf,
                                    size_t len, Error **errp);
/* switchover_start: start the device's load thread. */
void vfio_multifd_switchover_start(VFIOMigration *m);

#endif
