/*
 * VM run state: what query-status reports and what devices follow.
 *
 * All functions here are called with the BQL held.
 */
#ifndef SYSTEM_RUNSTATE_H
#define SYSTEM_RUNSTATE_H

#include "qemu/osdep.h"
#include "qemu/error.h"

typedef enum RunState {
    RUN_STATE_PRELAUNCH,        /* -S: created, not yet started */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,           /* stopped by the user */
    RUN_STATE_INMIGRATE,        /* destination waiting for / loading a stream */
    RUN_STATE_FINISH_MIGRATE,   /* source stopped for the switchover */
    RUN_STATE_POSTMIGRATE,      /* source after a completed migration */
    RUN_STATE_RESTORE_VM,
    RUN_STATE_SHUTDOWN,
    RUN_STATE_INTERNAL_ERROR,
    RUN_STATE__MAX,
} RunState;

/* The QMP name: "running", "paused", "inmigrate", ... */
const char *runstate_name(RunState state);
RunState runstate_get(void);
bool runstate_is_running(void);
/* Change the state without touching vCPUs or devices. */
void runstate_set(RunState state);

/*
 * Stop the VM: pause the vCPUs at a safe point, tell every change-state
 * handler (running = false), set @state and emit STOP.  Returns 0, or a
 * negative errno when a handler reported a failure (the VM is stopped
 * all the same).  A VM already stopped just takes @state.
 */
int vm_stop(RunState state);
/*
 * vm_stop() that also says why a handler failed: @errp gets the first
 * handler's Error (vm_state_notify_fail), or a generic message for a
 * handler that gave only an errno.
 */
int vm_stop_err(RunState state, Error **errp);
/*
 * On the way out: stop the VM, if it runs, in state shutdown.  Handlers are
 * told as for any stop, but no STOP event follows the SHUTDOWN event a
 * client has already seen (as QEMU does).
 */
void vm_shutdown(void);
/* Start the VM: handlers (running = true), resume vCPUs, emit RESUME. */
void vm_start(void);

/*
 * Change-state handlers follow the VM: devices move their own state with
 * it.  @prepare, when set, runs for every handler before any @cb on the
 * same change (VFIO uses it to step devices through their P2P states
 * first).  Handlers with a higher @priority run first when the VM starts
 * and last when it stops.  A handler that fails reports it with
 * vm_state_notify_error().
 */
typedef void VMChangeStateHandler(void *opaque, bool running, RunState state);
typedef struct VMChangeStateEntry VMChangeStateEntry;

VMChangeStateEntry *vm_change_state_add(VMChangeStateHandler *cb,
                                        VMChangeStateHandler *prepare,
                                        void *opaque, int priority);
void vm_change_state_del(VMChangeStateEntry *e);
/* Called by a handler that failed: vm_stop() then returns -err. */
void vm_state_notify_error(int err);
/*
 * The same with the handler's own message (taken over), which
 * vm_stop_err() hands to its caller; later ones are logged.
 */
void vm_state_notify_fail(int err, Error *reason);

#endif
