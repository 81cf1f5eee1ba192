/*
 * VFIO device migration: what the rest of vmig may ask of it.
 */
#ifndef HW_VFIO_VFIO_MIGRATION_H
#define HW_VFIO_VFIO_MIGRATION_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>

/* Stream markers of a VFIO device section (be64). */
#define VFIO_MIG_FLAG_END_OF_STATE          0xffffffffef100001ULL
#define VFIO_MIG_FLAG_DEV_CONFIG_STATE      0xffffffffef100002ULL
#define VFIO_MIG_FLAG_DEV_SETUP_STATE       0xffffffffef100003ULL
#define VFIO_MIG_FLAG_DEV_DATA_STATE        0xffffffffef100004ULL
#define VFIO_MIG_FLAG_DEV_INIT_DATA_SENT    0xffffffffef100005ULL
#define VFIO_MIG_FLAG_DEV_CONFIG_LOAD_READY 0xffffffffef100006ULL

/* Largest read from a device per iteration step (more is no faster). */
#define VFIO_MIG_ITERATE_MAX (1ULL << 20)

/*
 * Device bytes put in the stream by the migration that runs or ran last
 * (query-migrate "vfio": {"transferred"}); any thread.
 */
uint64_t vfio_migration_bytes_transferred(void);
/* Whether any device takes part in migration (show "vfio" at all). */
bool vfio_migration_active(void);
/*
 * query-migrate's "vfio": {transferred, devices: [{id, device-state,
 * dirty-tracking, transferred}]}, or NULL when no device takes part.
 * Main thread, BQL.
 */
JsonObject *vfio_migration_query(void);

/* "running", "stop-copy", ... as in VFIO_MIGRATION events. */
const char *vfio_mig_state_event_name(uint32_t state);

#endif
