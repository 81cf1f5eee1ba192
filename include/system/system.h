/*
 * Machine-wide settings from the command line.
 */
#ifndef SYSTEM_SYSTEM_H
#define SYSTEM_SYSTEM_H

#include "qemu/osdep.h"

/* -name NAME, or NULL. */
extern const char *qemu_name;

#endif
