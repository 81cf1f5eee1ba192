/*
 * The "globalstate" section: the source's run state when it stopped for
 * the switchover, so that a destination starts the VM only if the source
 * was running (a paused VM stays paused across a migration).
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

/* Source, BQL held, just before vm_stop() at switchover. */
void global_state_store(void)
{
    g_strlcpy(global_state.runstate, runstate_name(runstate_get()),
              sizeof(global_state.runstate));
}

static bool global_state_post_load(void *opaque, int version_id, Error **errp)
{
    GlobalState *gs = opaque;
    g_autofree char *name = NULL;

    for (int i = 0; i < RUN_STATE__MAX; i++) {
        if (!strcmp(gs->runstate, runstate_name(i))) {
            return true;
        }
    }
    name = qemu_escape_str(gs->runstate);
    error_setg(errp, "unknown source run state '%s'", name);
    return false;
}

/* After a load, which fails without this section. */
bool global_state_source_was_running(void)
{
    return !strcmp(global_state.runstate, runstate_name(RUN_STATE_RUNNING));
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
