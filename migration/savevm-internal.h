/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * What the source's writer (savevm.c) and the destination's loader
 * (loadvm.c) share: the handler registry.  Private to migration/.
 */
#ifndef MIGRATION_SAVEVM_INTERNAL_H
#define MIGRATION_SAVEVM_INTERNAL_H

#include "migration/register.h"
#include "migration/vmstate.h"

/* Identifies this machine model in the configuration section. */
#define MIG_MACHINE_TYPE "vmig-virt"

typedef struct SaveStateEntry {
    char idstr[256];
    uint32_t instance_id;
    int version_id;
    uint32_t section_id;
    const SaveVMHandlers *ops;
    const VMStateDescription *vmsd;
    void *opaque;
    bool active;                /* source: takes part in this migration */
    bool setup_called;          /* source: save_setup was called */
    bool load_setup_called;     /* destination */
    bool consumer_added;        /* destination: multifd packets come here */
    struct SaveStateEntry *next;
} SaveStateEntry;

/*
 * The registry, in registration order (RAM first).  Registered with the
 * BQL, before any migration; read without it after.
 */
SaveStateEntry *savevm_handlers_first(void);
/* The handlers registered under (@idstr, @instance_id), or NULL. */
SaveStateEntry *savevm_find_se(const char *idstr, uint32_t instance_id);

static inline bool se_is_iterative(const SaveStateEntry *se)
{
    return se->ops && (se->ops->save_setup || se->ops->save_live_iterate);
}

static inline bool se_has_full_state(const SaveStateEntry *se)
{
    return se->vmsd || (se->ops && se->ops->save_state);
}

/*
 * Whether the capability bits and flags @theirs of a stream's
 * configuration agree with this side's @ours (savevm.c's table).
 */
bool migration_config_caps_check(uint32_t theirs, uint32_t ours,
                                 Error **errp);

#endif
