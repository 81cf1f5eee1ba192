/*
 * The timeline of the last outgoing migration (migration/timeline.c),
 * for x-query-migration-timeline: statuses, passes, VFIO device arcs,
 * the downtime's phases and the multifd channels' bytes.
 */
#ifndef MIGRATION_TIMELINE_H
#define MIGRATION_TIMELINE_H

#include <json-glib/json-glib.h>

/* migrate: forget the last timeline and start recording. */
void mig_timeline_start(void);
/* A status change (a static name, query-migrate's). */
void mig_timeline_status(const char *status);
/*
 * A dirty sync: the pass that began at the previous one ends, with
 * @ram_bytes of RAM sent so far in all and @dirty_pages found now.
 */
void mig_timeline_pass(uint64_t ram_bytes, uint64_t dirty_pages);
/* VFIO device @dev went @from -> @to with @bytes of its state sent. */
void mig_timeline_device_arc(const char *dev, const char *from,
                             const char *to, uint64_t bytes);
/* The VM stopped at @ns (get_clock_ns()): phase "device-stop" begins. */
void mig_timeline_downtime_start(int64_t ns);
/* The downtime's next phase (a static name) begins now. */
void mig_timeline_phase(const char *name);
/* The downtime ended at @ns. */
void mig_timeline_downtime_end(int64_t ns);
/* The migration thread is done: the channels' last sample. */
void mig_timeline_end(void);
/* The x-query-migration-timeline reply ({} before any migration). */
JsonObject *mig_timeline_query(void);

#endif
