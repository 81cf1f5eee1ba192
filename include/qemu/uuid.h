/*
 * UUIDs as 16 bytes, and their text form.
 */
#ifndef QEMU_UUID_H
#define QEMU_UUID_H

#include "qemu/osdep.h"

/* Characters of "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" plus the NUL. */
#define UUID_STR_LEN 37

/* The canonical lower-case text of @uuid, into @out. */
static inline void qemu_uuid_unparse(const uint8_t uuid[16],
                                     char out[UUID_STR_LEN])
{
    const uint8_t *u = uuid;

    snprintf(out, UUID_STR_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
             u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
             u[14], u[15]);
}

#endif
