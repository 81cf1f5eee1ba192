/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * postcopy-ram on the destination: guest RAM registered with
 * userfaultfd, a fault thread that asks the source for the pages vCPUs
 * touch, page placement, and the blocktime figures.  Private to
 * migration/.  The design is in docs/devel/migration.rst, "Postcopy".
 */
#ifndef MIGRATION_POSTCOPY_RAM_H
#define MIGRATION_POSTCOPY_RAM_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "system/ramblock.h"
#include <json-glib/json-glib.h>

typedef struct MigrationIncomingState MigrationIncomingState;

/*
 * MIG_CMD_POSTCOPY_ADVISE: open a userfaultfd and check that it can do
 * what postcopy needs on every RAM block (missing-page faults on this
 * kind of memory, page copy and zero fill), so that a destination that
 * cannot fails before the source stops its VM.  Incoming thread.
 */
bool postcopy_incoming_advise(Error **errp);
/*
 * MIG_CMD_POSTCOPY_LISTEN: register every RAM block and start the fault
 * thread, which sends MIG_RP_MSG_REQ_PAGES for the pages a thread
 * touches that have not arrived.  From here on RAM is written only with
 * postcopy_place_*().  Incoming thread.
 */
bool postcopy_incoming_listen(MigrationIncomingState *mis, Error **errp);
/*
 * Place @n pages at @offset of @rb, from @src or zero-filled: every
 * thread waiting for one of them runs again.  Pages already there are
 * left alone (a page asked for and pushed arrives twice).  Incoming
 * thread.
 */
bool postcopy_place_pages(RAMBlock *rb, uint64_t offset, const void *src,
                          uint64_t n, Error **errp);
bool postcopy_place_zero(RAMBlock *rb, uint64_t offset, uint64_t n,
                         Error **errp);
/*
 * The whole stream is in (EOF): every page not received is zero on the
 * source.  Unregister RAM (waking any thread still waiting, whose page
 * is then a zero page) and stop the fault thread.  Incoming thread.
 */
void postcopy_incoming_end(void);
/*
 * The load failed after RUN: RAM stays registered and the fault thread
 * runs on, but the preempt channel, which uses the listener, stops.
 * Incoming thread.
 */
void postcopy_incoming_failed(void);
/*
 * Postcopy recovery, on the new stream's return path: the received
 * bitmap of every block, a request again for every page asked for and
 * not received, the preempt channel again, and RESUME_ACK.  Incoming
 * thread.
 */
bool postcopy_incoming_resume(MigrationIncomingState *mis, Error **errp);
/*
 * At exit, or before a new load: stop the fault thread and close the
 * userfaultfd even when the load failed after the switch (which leaves
 * RAM registered so that no vCPU runs on pages that never came).  Any
 * thread, once the incoming thread is gone.
 */
void postcopy_incoming_cleanup(void);

/*
 * postcopy-blocktime, destination's query-migrate: postcopy-blocktime
 * (ms during which every vCPU waited for a page at once) and
 * postcopy-vcpu-blocktime (ms each vCPU waited in all).  Main thread.
 */
void postcopy_blocktime_query(JsonObject *obj);

#endif
