/*
 * State handlers: how a subsystem (RAM, the guest program, a VFIO
 * device) takes part in a migration.
 *
 * Threads and locks, in brief:
 *   - "main thread, BQL": QMP context, before the migration thread exists.
 *   - "migration thread": the source's migration thread.  It holds the
 *     BQL where a member says so; otherwise the VM may be running and
 *     other threads (vCPUs, QMP) run concurrently.
 *   - "incoming thread": the destination's loading thread.  The VM is not
 *     running there; it holds no BQL unless a member says so.
 *   - multifd threads and per-device threads are named where used.
 *
 * Return contract: int members return 0 on success and a negative errno
 * on failure (the migration then fails); bool members return false on
 * failure.  When a member takes errp it must set it on failure, naming
 * the device and the problem; members without errp report through the
 * QEMUFile (qemu_file_set_error) or just the return value, and the core
 * names the section in its message.
 *
 * Section payloads: each handler writes and reads its own bytes; the
 * core frames them (section header, footer) and checks the footer, so a
 * loader that consumes too much or too little fails with a message that
 * names its section.  A loader must check every length, index and count
 * it reads before use.
 */
#ifndef MIGRATION_REGISTER_H
#define MIGRATION_REGISTER_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "migration/qemu-file.h"

/* Passed to save_live_complete_precopy_thread. */
typedef struct SaveLiveCompletePrecopyThreadData {
    const char *idstr;
    uint32_t instance_id;
    void *handler_opaque;
} SaveLiveCompletePrecopyThreadData;

typedef struct SaveVMHandlers {
    /* ---- Source ---- */

    /*
     * Check that a migration can start (refuse early, e.g. a device that
     * cannot migrate in its present configuration).
     * Main thread, BQL held, when migrate is executed.  bool + errp.
     */
    bool (*save_prepare)(void *opaque, Error **errp);

    /*
     * Start saving: allocate, start tracking, write the setup data of the
     * START section.  Migration thread, BQL held, VM running (or paused).
     * 0 / negative errno + errp.
     */
    int (*save_setup)(QEMUFile *f, void *opaque, Error **errp);

    /*
     * Send part of the remaining state in a PART section while the VM
     * runs.  Stop when migration_rate_limit_exceeded() says so.
     * Migration thread, no BQL.  Returns 1 when everything known to be
     * pending was sent, 0 when more remains, negative errno on failure.
     */
    int (*save_live_iterate)(QEMUFile *f, void *opaque);

    /*
     * Add the bytes still to send to *must_precopy.  The estimate must be
     * cheap (no device access, no dirty sync); exact may be slow (dirty
     * sync, a device query).  The core asks for the estimate first and
     * for the exact figure only when the estimate fits the switchover
     * threshold.  Migration thread, no BQL.
     */
    void (*state_pending_estimate)(void *opaque, uint64_t *must_precopy);
    void (*state_pending_exact)(void *opaque, uint64_t *must_precopy);

    /*
     * Whether this handler takes part in this migration at all (default:
     * yes).  Both sides: the source sends no section for a handler that
     * is not active, and the destination refuses a stream that lacks the
     * sections of one that is (so both must answer alike for the same
     * configuration).  Migration thread; incoming thread at the EOF.
     */
    bool (*is_active)(void *opaque);

    /*
     * Whether save_live_iterate has anything to do now (a VFIO device in
     * PRE_COPY; default: yes).  Migration thread, no BQL.
     */
    bool (*is_active_iterate)(void *opaque);

    /*
     * Destination (!) at load start, after load_setup: whether this
     * handler must approve the switchover (switchover-ack capability)
     * by calling qemu_loadvm_approve_switchover() once.  Incoming thread.
     */
    bool (*switchover_ack_needed)(void *opaque);

    /*
     * Send the rest of the state in the END section, VM stopped.
     * Migration thread, BQL held, within the downtime.
     * 0 / negative errno.
     */
    int (*save_live_complete_precopy)(QEMUFile *f, void *opaque);

    /*
     * postcopy-ram: whether this handler's iterative state goes on after
     * the switch (RAM).  Both sides, any thread; it must not change
     * during a migration.  Such a handler gets PART sections after the
     * package (save_live_iterate, asked for its pages) and ends with
     * save_live_complete_postcopy instead of save_live_complete_precopy.
     */
    bool (*has_postcopy)(void *opaque);

    /*
     * postcopy-ram: the END section once everything has been sent, VM
     * stopped here and running on the destination.  Migration thread,
     * no BQL.  0 / negative errno.
     */
    int (*save_live_complete_postcopy)(QEMUFile *f, void *opaque);

    /*
     * Send the rest of the state over multifd channels from a thread of
     * its own (multifd_queue_device_state()), in parallel with the main
     * channel's END and FULL sections (VFIO device state).  With multifd
     * on, the core starts one thread per handler that has it right after
     * MIG_CMD_SWITCHOVER_START, joins them all before the EOF, and then
     * syncs the channels so every packet is written.  A per-handler
     * thread, no BQL, VM stopped.  bool + errp (the first failure fails
     * the migration).
     */
    bool (*save_live_complete_precopy_thread)(
        SaveLiveCompletePrecopyThreadData *d, Error **errp);

    /*
     * Non-iterative state (a FULL section at switchover: config space,
     * vCPU state).  Migration thread, BQL held, VM stopped.  An
     * iterative handler may have it too: its FULL section then comes
     * after every handler's END section and reuses the section id of its
     * START, so the destination's load_state sees the FULL payload after
     * the END one.  0 / negative errno + errp.
     */
    int (*save_state)(QEMUFile *f, void *opaque, Error **errp);

    /*
     * Undo save_setup, after completion, failure or cancel (outside the
     * downtime).  Migration thread, BQL held.  Called for every handler
     * whose save_setup was called, even if it failed.
     */
    void (*save_cleanup)(void *opaque);

    /* ---- Destination ---- */

    /*
     * Prepare to load (e.g. put a device into RESUMING).  Incoming
     * thread, BQL held, before the first section.  0 / negative + errp.
     */
    int (*load_setup)(QEMUFile *f, void *opaque, Error **errp);

    /*
     * Load one section's payload (START, PART, END or FULL; a handler
     * that cares can tell them apart by its own markers).  Incoming
     * thread, no BQL, VM stopped.  @version_id is the stream's version
     * of this section, already checked against the registered one.
     * 0 / negative errno + errp.
     */
    int (*load_state)(QEMUFile *f, void *opaque, int version_id,
                      Error **errp);

    /*
     * Take a device state packet that arrived on a multifd channel for
     * this (idstr, instance): the whole packet, {be32 version, be32 idx,
     * be32 flags} + data, unchecked, in the g_malloc()ed *@buf.  A
     * handler that keeps the packet takes the buffer (sets *@buf to NULL)
     * instead of copying it; the core frees what is left after the call.
     * With multifd on, the core registers it as the packet consumer for
     * the whole load.  Multifd receive threads, no BQL, possibly several
     * at once and concurrently with load_state.  bool + errp.
     */
    bool (*load_state_buffer)(void *opaque, uint8_t **buf, size_t len,
                              Error **errp);

    /*
     * MIG_CMD_SWITCHOVER_START arrived: every iterative section before
     * it has been loaded; start loading what comes by other channels.
     * Incoming thread, no BQL.  0 / negative errno + errp.
     */
    int (*switchover_start)(void *opaque, Error **errp);

    /*
     * Undo load_setup after success or failure.  Incoming thread, BQL
     * held.  0 / negative errno.
     */
    int (*load_cleanup)(void *opaque);
} SaveVMHandlers;

/*
 * Register handlers under (@idstr, @instance_id); the pair names the
 * section in the stream and must be unique.  @version is written with
 * each section; a destination accepts a stream version up to its own.
 * Call with the BQL held, before a migration starts.  Returns 0 or -EEXIST.
 */
int register_savevm_live(const char *idstr, uint32_t instance_id,
                         int version, const SaveVMHandlers *ops,
                         void *opaque);
void unregister_savevm(const char *idstr, uint32_t instance_id);

/* Destination: a handler whose switchover_ack_needed was true approves. */
void qemu_loadvm_approve_switchover(void);

/*
 * Destination: a load thread loads what a handler receives outside the
 * main stream (VFIO: device state packets from multifd).  @run returns
 * true when its part of the state is loaded, false with @errp set on
 * failure.  @abort (any thread) must make a running @run return soon,
 * with @reason or its own error; it is called when the load fails
 * elsewhere (the main stream, multifd, another load thread).
 */
typedef bool MigrationLoadThreadRun(void *opaque, Error **errp);
typedef void MigrationLoadThreadAbort(void *opaque, const Error *reason);

/*
 * Start a load thread named @name.  Incoming thread only, between
 * load_setup and the end of the stream (typically from
 * switchover_start).  The core waits for every load thread after the
 * stream's EOF: the load (and the return path's SHUT(0), which ends the
 * source's downtime) completes only when all of them returned true, and
 * the first one that fails fails the load with its own error.  Threads
 * are always joined before load_cleanup runs.
 */
void qemu_loadvm_start_load_thread(const char *name,
                                   MigrationLoadThreadRun *run,
                                   MigrationLoadThreadAbort *abort,
                                   void *opaque);

/*
 * Source: whether the bytes sent in this rate-limit window reached the
 * max-bandwidth budget (max-postcopy-bandwidth after a postcopy switch;
 * iterators stop and return 0 then).
 */
bool migration_rate_limit_exceeded(void);

#endif
