/*
 * Table-described fixed-layout state.  See include/migration/vmstate.h.
 */
#include "qemu/osdep.h"
#include "migration/vmstate.h"

bool vmstate_save_state(QEMUFile *f, const VMStateDescription *vmsd,
                        void *opaque, Error **errp)
{
    if (vmsd->pre_save && !vmsd->pre_save(opaque, errp)) {
        return false;
    }
    for (const VMStateField *fl = vmsd->fields; fl->name; fl++) {
        const uint8_t *p = (const uint8_t *)opaque + fl->offset;

        switch (fl->type) {
        case VMS_BOOL:
            qemu_put_byte(f, *(const bool *)p ? 1 : 0);
            break;
        case VMS_U8:
            qemu_put_byte(f, *p);
            break;
        case VMS_U16:
            qemu_put_be16(f, *(const uint16_t *)p);
            break;
        case VMS_U32:
            qemu_put_be32(f, *(const uint32_t *)p);
            break;
        case VMS_U64:
            qemu_put_be64(f, *(const uint64_t *)p);
            break;
        case VMS_BUFFER:
        case VMS_STRING:
            qemu_put_buffer(f, p, fl->size);
            break;
        }
    }
    return qemu_file_check(f, errp);
}

bool vmstate_load_state(QEMUFile *f, const VMStateDescription *vmsd,
                        void *opaque, int version_id, Error **errp)
{
    if (version_id > vmsd->version_id ||
        version_id < vmsd->minimum_version_id) {
        error_setg(errp, "stream version %d is not supported (this side "
                   "loads versions %d to %d)", version_id,
                   vmsd->minimum_version_id, vmsd->version_id);
        return false;
    }
    for (const VMStateField *fl = vmsd->fields; fl->name; fl++) {
        uint8_t *p = (uint8_t *)opaque + fl->offset;

        if (fl->version_id > version_id) {
            continue;
        }
        switch (fl->type) {
        case VMS_BOOL: {
            uint8_t v = qemu_get_byte(f);

            if (v > 1 && !qemu_file_get_error(f)) {
                error_setg(errp, "field %s: %u is not a boolean", fl->name,
                           v);
                return false;
            }
            *(bool *)p = v;
            break;
        }
        case VMS_U8:
            *p = qemu_get_byte(f);
            break;
        case VMS_U16:
            *(uint16_t *)p = qemu_get_be16(f);
            break;
        case VMS_U32:
            *(uint32_t *)p = qemu_get_be32(f);
            break;
        case VMS_U64:
            *(uint64_t *)p = qemu_get_be64(f);
            break;
        case VMS_BUFFER:
            qemu_get_buffer(f, p, fl->size);
            break;
        case VMS_STRING:
            qemu_get_buffer(f, p, fl->size);
            if (fl->size && !memchr(p, '\0', fl->size)) {
                error_setg(errp, "field %s is not NUL-terminated",
                           fl->name);
                return false;
            }
            break;
        }
        if (!qemu_file_check(f, errp)) {
            error_prepend(errp, "field %s: ", fl->name);
            return false;
        }
    }
    if (vmsd->post_load && !vmsd->post_load(opaque, version_id, errp)) {
        return false;
    }
    return true;
}
