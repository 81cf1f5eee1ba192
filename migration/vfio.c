/*
 * What query-migrate shows of VFIO devices: the one place where the
 * migration core asks hw/vfio for anything.
 */
#include "qemu/osdep.h"
#include "hw/vfio/vfio-migration.h"
#include "migration/migration.h"

void migration_query_vfio(JsonObject *obj)
{
    JsonObject *vfio = vfio_migration_query();

    if (vfio) {
        json_object_set_object_member(obj, "vfio", vfio);
    }
}
