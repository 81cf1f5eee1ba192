/*
 * RAM migration.  Private to migration/.
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include "qemu/osdep.h"
#include "system/ramblock.h"
#include "migration/qemu-file.h"

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

/*
 * postcopy-ram, source, at the switch (BQL held, VM stopped): the last
 * dirty sync, then MIG_CMD_POSTCOPY_RAM_DISCARD for every dirty page the
 * destination holds an older copy of.  From here on every page sent is
 * one the destination places (zero pages too).
 */
bool ram_postcopy_send_discard(QEMUFile *f, Error **errp);
/*
 * Postcopy recovery, source (migration thread): @received is the
 * destination's bitmap of @rb (the pages it placed since the switch);
 * pages pushed since the switch that it lacks go again, and nothing else.
 */
void ram_postcopy_resume_block(RAMBlock *rb, const unsigned long *received);
/*
 * postcopy-preempt, source: the return-path thread sent [offset, offset +
 * len) of @rb on the preempt channel; the push leaves those pages out
 * (a recovery sends them again if they got lost).  Any thread.
 */
void ram_postcopy_note_preempted(RAMBlock *rb, uint64_t offset, uint64_t len);
/* Destination: drop [offset, offset + len) of @rb (checked here). */
bool ram_load_discard(RAMBlock *rb, uint64_t offset, uint64_t len,
                      Error **errp);
/*
 * Destination, at LISTEN: pages are placed from now on (incoming
 * thread).  false when the buffer for them cannot be had.
 */
bool ram_load_postcopy_listen(void);

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
