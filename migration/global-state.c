/*
 * The "globalstate" section: the source's run state when it stopped for
 * the switchover, so that a destination starts the VM only if the source
 * was running, and otherwise ends in the source's state (a VM paused, or
 * never started after -S, stays so across a migration), as in QEMU.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "system/runstate.h"
#include "migration/vmstate.h"
#include "migration/migration.h"

typedef struct GlobalState {
    char runstate[32];
} GlobalState;

static GlobalState global_state;
/* Destination: the state parsed by post_load. */
static RunState source_runstate;

/* Source, BQL held, just before vm_stop() at switchover. */
void global_state_store(void)
{
    g_strlcpy(global_state.runstate, runstate_name(runstate_get()),
              sizeof(global_state.runstate));
}

/* The states a VM can be in when its migration stops it. */
static bool runstate_can_migrate_from(RunState st)
{
    switch (st) {
    case RUN_STATE_PRELAUNCH:
    case RUN_STATE_RUNNING:
    case RUN_STATE_PAUSED:
    case RUN_STATE_SHUTDOWN:
    case RUN_STATE_INTERNAL_ERROR:
        return true;
    default:
        return false;
    }
}

static bool global_state_post_load(void *opaque, int version_id, Error **errp)
{
    GlobalState *gs = opaque;
    g_autofree char *name = qemu_escape_str(gs->runstate);

    for (int i = 0; i < RUN_STATE__MAX; i++) {
        if (strcmp(gs->runstate, runstate_name(i))) {
            continue;
        }
        if (!runstate_can_migrate_from(i)) {
            error_setg(errp, "the source says it stopped from run state "
                       "'%s', which no VM migrates from", name);
            return false;
        }
        source_runstate = i;
        return true;
    }
    error_setg(errp, "unknown source run state '%s'", name);
    return false;
}

/* After a load, which fails without this section. */
RunState global_state_source_runstate(void)
{
    return source_runstate;
}

static const VMStateDescription vmstate_globalstate = {
    .name = "globalstate",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = global_state_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_STRING(runstate, GlobalState),
        VMSTATE_END_OF_LIST(),
    },
};

void global_state_init(void)
{
    vmstate_register(0, &vmstate_globalstate, &global_state);
}
