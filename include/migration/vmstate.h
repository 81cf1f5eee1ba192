/*
 * Fixed-layout state described by a table: each field's type and offset
 * in a C struct, saved big-endian in table order.  For state whose shape
 * does not vary (a device's registers, the migration's global state);
 * variable state uses SaveVMHandlers directly.
 */
#ifndef MIGRATION_VMSTATE_H
#define MIGRATION_VMSTATE_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "migration/qemu-file.h"

typedef enum VMStateFieldType {
    VMS_BOOL,                   /* bool, one byte 0/1 on the wire */
    VMS_U8,
    VMS_U16,
    VMS_U32,
    VMS_U64,
    VMS_BUFFER,                 /* @size raw bytes */
    VMS_STRING,                 /* char[@size], NUL-terminated on load */
} VMStateFieldType;

typedef struct VMStateField {
    const char *name;
    VMStateFieldType type;
    size_t offset;
    size_t size;                /* VMS_BUFFER, VMS_STRING */
    int version_id;             /* first stream version with this field */
} VMStateField;

typedef struct VMStateDescription {
    const char *name;
    int version_id;
    int minimum_version_id;     /* oldest stream version still loadable */
    const VMStateField *fields; /* terminated by an entry with name NULL */
    /* Optional hooks; return false with errp set to fail. */
    bool (*pre_save)(void *opaque, Error **errp);
    bool (*post_load)(void *opaque, int version_id, Error **errp);
} VMStateDescription;

#define VMSTATE_FIELD(_state, _field, _type, _ver) \
    { .name = #_field, .type = (_type), .offset = offsetof(_state, _field), \
      .size = sizeof(((_state *)0)->_field), .version_id = (_ver) }
#define VMSTATE_BOOL(_f, _s)   VMSTATE_FIELD(_s, _f, VMS_BOOL, 0)
#define VMSTATE_UINT8(_f, _s)  VMSTATE_FIELD(_s, _f, VMS_U8, 0)
#define VMSTATE_UINT16(_f, _s) VMSTATE_FIELD(_s, _f, VMS_U16, 0)
#define VMSTATE_UINT32(_f, _s) VMSTATE_FIELD(_s, _f, VMS_U32, 0)
#define VMSTATE_UINT64(_f, _s) VMSTATE_FIELD(_s, _f, VMS_U64, 0)
#define VMSTATE_BUFFER(_f, _s) VMSTATE_FIELD(_s, _f, VMS_BUFFER, 0)
#define VMSTATE_STRING(_f, _s) VMSTATE_FIELD(_s, _f, VMS_STRING, 0)
#define VMSTATE_END_OF_LIST() { .name = NULL }

/* Write @opaque's fields (version vmsd->version_id). */
bool vmstate_save_state(QEMUFile *f, const VMStateDescription *vmsd,
                        void *opaque, Error **errp);
/*
 * Read fields of stream version @version_id into @opaque; the version
 * must lie in [minimum_version_id, version_id] of @vmsd.  Messages name
 * the field; the caller names the section.
 */
bool vmstate_load_state(QEMUFile *f, const VMStateDescription *vmsd,
                        void *opaque, int version_id, Error **errp);

/* Register @vmsd as a FULL section saved at switchover. */
int vmstate_register(uint32_t instance_id, const VMStateDescription *vmsd,
                     void *opaque);
void vmstate_unregister(uint32_t instance_id, const VMStateDescription *vmsd);

#endif
