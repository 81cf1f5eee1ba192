/*
 * Machine-wide settings from the command line.
 */
#ifndef SYSTEM_SYSTEM_H
#define SYSTEM_SYSTEM_H

#include "qemu/osdep.h"

/* -name NAME, or NULL. */
extern const char *qemu_name;

/* -uuid UUID (all zero when not given), and whether it was given. */
extern uint8_t qemu_uuid[16];
extern bool qemu_uuid_set;

#endif
