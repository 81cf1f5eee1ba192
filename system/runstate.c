/*
 * VM run state and the handlers that follow it.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "qemu/trace.h"
#include "system/runstate.h"
#include "system/cpus.h"
#include "monitor/qmp.h"

TRACE_DEFINE(runstate_set);
TRACE_DEFINE(vm_state_notify);

struct VMChangeStateEntry {
    VMChangeStateHandler *cb;
    VMChangeStateHandler *prepare;
    void *opaque;
    int priority;
};

static RunState current_state = RUN_STATE_PRELAUNCH;
static GList *handlers;     /* sorted by priority, highest first */
static int notify_error;
static Error *notify_err;       /* the first handler's own message */

static const char *const runstate_names[RUN_STATE__MAX] = {
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_INMIGRATE] = "inmigrate",
    [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [RUN_STATE_POSTMIGRATE] = "postmigrate",
    [RUN_STATE_RESTORE_VM] = "restore-vm",
    [RUN_STATE_SHUTDOWN] = "shutdown",
    [RUN_STATE_INTERNAL_ERROR] = "internal-error",
};

const char *runstate_name(RunState state)
{
    assert(state < RUN_STATE__MAX);
    return runstate_names[state];
}

RunState runstate_get(void)
{
    return current_state;
}

bool runstate_is_running(void)
{
    return current_state == RUN_STATE_RUNNING;
}

void runstate_set(RunState state)
{
    assert(state < RUN_STATE__MAX);
    if (state != current_state) {
        trace(runstate_set, "%s -> %s", runstate_name(current_state),
              runstate_name(state));
        current_state = state;
    }
}

static gint compare_priority(gconstpointer a, gconstpointer b)
{
    const VMChangeStateEntry *ea = a, *eb = b;

    return eb->priority - ea->priority;
}

VMChangeStateEntry *vm_change_state_add(VMChangeStateHandler *cb,
                                        VMChangeStateHandler *prepare,
                                        void *opaque, int priority)
{
    VMChangeStateEntry *e = g_new0(VMChangeStateEntry, 1);

    e->cb = cb;
    e->prepare = prepare;
    e->opaque = opaque;
    e->priority = priority;
    handlers = g_list_insert_sorted(handlers, e, compare_priority);
    return e;
}

void vm_change_state_del(VMChangeStateEntry *e)
{
    handlers = g_list_remove(handlers, e);
    g_free(e);
}

void vm_state_notify_error(int err)
{
    if (!notify_error) {
        notify_error = err > 0 ? err : EIO;
    }
}

void vm_state_notify_fail(int err, Error *reason)
{
    vm_state_notify_error(err);
    if (!notify_err) {
        notify_err = reason;
    } else {
        /* Only the first is returned; the others are not lost. */
        error_report_err(reason);
    }
}

/*
 * Starting walks handlers from the highest priority down, stopping walks
 * them back up, so a device started first is stopped last.  Every
 * prepare step of a change runs before any main step.
 */
static int vm_state_notify(bool running, RunState state)
{
    GList *first = running ? handlers : g_list_last(handlers);
#define step(l) (running ? (l)->next : (l)->prev)

    trace(vm_state_notify, "running=%d state=%s", running, runstate_name(state));
    notify_error = 0;
    g_clear_pointer(&notify_err, error_free);
    for (GList *l = first; l; l = step(l)) {
        VMChangeStateEntry *e = l->data;
        if (e->prepare) {
            e->prepare(e->opaque, running, state);
        }
    }
    for (GList *l = first; l; l = step(l)) {
        VMChangeStateEntry *e = l->data;
        e->cb(e->opaque, running, state);
    }
#undef step
    return -notify_error;
}

/* Stop the vCPUs and notify the handlers; @send_stop: emit STOP. */
static int do_vm_stop(RunState state, bool send_stop, Error **errp)
{
    int ret;

    assert(bql_locked());
    if (!runstate_is_running()) {
        runstate_set(state);
        return 0;
    }
    pause_all_vcpus();
    runstate_set(state);
    ret = vm_state_notify(false, state);
    if (send_stop) {
        qmp_event_emit("STOP", NULL);
    }
    if (ret < 0) {
        if (notify_err) {
            error_propagate(errp, g_steal_pointer(&notify_err));
        } else {
            error_setg_errno(errp, -ret, "a device failed to stop");
        }
    }
    return ret;
}

int vm_stop_err(RunState state, Error **errp)
{
    return do_vm_stop(state, true, errp);
}

void vm_shutdown(void)
{
    Error *err = NULL;

    if (runstate_is_running() &&
        do_vm_stop(RUN_STATE_SHUTDOWN, false, &err) < 0) {
        error_report_err(err);
    }
}

int vm_stop(RunState state)
{
    Error *err = NULL;
    int ret = vm_stop_err(state, &err);

    if (ret < 0) {
        /* The caller gets only the errno: the reason goes to the log. */
        error_report_err(err);
    }
    return ret;
}

void vm_start(void)
{
    assert(bql_locked());
    if (runstate_is_running()) {
        return;
    }
    runstate_set(RUN_STATE_RUNNING);
    vm_state_notify(true, RUN_STATE_RUNNING);
    resume_all_vcpus();
    qmp_event_emit("RESUME", NULL);
}
