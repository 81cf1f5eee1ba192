/*
 * RAM migration.  Private to migration/.
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include "qemu/osdep.h"
#include "system/ramblock.h"

/* Register the "ram" section handlers. */
void ram_mig_init(void);
/* Whether @len bytes (a multiple of 64) at @page are all zero. */

/*
 * Destination, before anything of a stream arrives (multifd channels may
 * write RAM as soon as they connect): make every RAM block read as zero,
 * since the source sends no zero page the destination has no data for.
 * Incoming thread.
 */
bool ram_load_prepare(Error **errp);

/* Destination: populate guest RAM ahead of the loader (ram-prefault.c). */
typedef struct RamPrefault RamPrefault;
RamPrefault *ram_prefault_start(void);
/*
 * The loader is about to write @rb up to @end.  One caller at a time:
 * the incoming thread, or mapped-ram's readers under their lock.
 */
void ram_prefault_hint(RamPrefault *p, RAMBlock *rb, uint64_t end);
void ram_prefault_stop(RamPrefault *p);

#endif
