/*
 * Internal to hw/vfio: how device.c wires migration and dirty tracking
 * into a device at attach time.
 */
#ifndef HW_VFIO_VFIO_INTERNAL_H
#define HW_VFIO_VFIO_INTERNAL_H

#include "hw/vfio/vfio-device.h"
#include "qemu/trace.h"

/*
 * Probe the device's migration support, decide on blockers and register
 * the migration handlers (migration.c).  Fails only when the user asked
 * for migration (enable-migration=on) and the device cannot do it.
 */
bool vfio_migration_realize(VFIODevice *vdev, Error **errp);
void vfio_migration_exit(VFIODevice *vdev);
/* Whether the device can migrate (no blocker, migration v2 present). */
bool vfio_migration_supported(VFIODevice *vdev);
/* Whether the device runs (RUNNING or PRE_COPY): its DMA goes on. */
bool vfio_migration_device_running(VFIODevice *vdev);

/* Register / remove the device's dirty-log listener (dirty-tracking.c). */
bool vfio_dirty_tracking_init(VFIODevice *vdev, Error **errp);
void vfio_dirty_tracking_exit(VFIODevice *vdev);

/* Trace points of hw/vfio (defined in device.c). */
TRACE_DECLARE(vfio_mig_state);
TRACE_DECLARE(vfio_dma_map);
TRACE_DECLARE(vfio_dma_unmap);
TRACE_DECLARE(vfio_iommu_dirty);
TRACE_DECLARE(vfio_multifd_packet);
TRACE_DECLARE(vfio_multifd_load_start);
TRACE_DECLARE(vfio_multifd_save_start);
TRACE_DECLARE(vfio_mig_arc);
TRACE_DECLARE(vfio_mig_state_fail);
TRACE_DECLARE(vfio_save_setup);
TRACE_DECLARE(vfio_save_iterate);
TRACE_DECLARE(vfio_save_complete);
TRACE_DECLARE(vfio_save_state);
TRACE_DECLARE(vfio_save_cleanup);
TRACE_DECLARE(vfio_state_pending);
TRACE_DECLARE(vfio_load_setup);
TRACE_DECLARE(vfio_load_state);
TRACE_DECLARE(vfio_load_data);
TRACE_DECLARE(vfio_load_cleanup);
TRACE_DECLARE(vfio_vmstate_change);
TRACE_DECLARE(vfio_dirty_log_start);
TRACE_DECLARE(vfio_dirty_log_sync);
TRACE_DECLARE(vfio_dirty_log_stop);
TRACE_DECLARE(vfio_pci_open);

#endif
