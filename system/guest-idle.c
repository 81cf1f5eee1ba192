/*
 * The "idle" guest program: vCPUs sleep in bounded steps and write
 * nothing, so the check expects all of RAM to be zero.  It is what runs
 * when no -guest is given.
 */
#include "qemu/osdep.h"
#include "system/cpus.h"
#include "system/guest.h"

#define TYPE_GUEST_IDLE "guest-idle"
#define IDLE_STATE_VERSION 1
#define IDLE_STEP_NS (10 * 1000 * 1000)

static void idle_step(GuestProgram *prog, unsigned cpu)
{
    vcpu_sleep_ns(cpu, IDLE_STEP_NS);
}

static void idle_state_save(GuestProgram *prog, GByteArray *out)
{
    guest_state_put_be32(out, IDLE_STATE_VERSION);
    guest_state_put_be32(out, prog->nr_vcpus);
}

static bool idle_state_load(GuestProgram *prog, const uint8_t *buf,
                            size_t len, Error **errp)
{
    GuestStateReader r = { .buf = buf, .len = len, .what = "idle state",
                           .errp = errp };
    uint32_t version, nr_vcpus;

    if (!guest_state_get_be32(&r, &version) ||
        !guest_state_get_be32(&r, &nr_vcpus) ||
        !guest_state_reader_done(&r)) {
        return false;
    }
    if (version != IDLE_STATE_VERSION) {
        error_setg(errp, "idle state: unsupported version %u (this vmig "
                   "reads version %u)", version, IDLE_STATE_VERSION);
        return false;
    }
    if (nr_vcpus != prog->nr_vcpus) {
        error_setg(errp, "idle state: made with %u vCPUs, this VM has %u",
                   nr_vcpus, prog->nr_vcpus);
        return false;
    }
    return true;
}

static void idle_query(GuestProgram *prog, GuestProgramStats *stats)
{
    memset(stats, 0, sizeof(*stats));
}

/* No setup, RAM or check of its own: RAM nobody claims must be zero. */
static const GuestProgramOps idle_ops = {
    .step = idle_step,
    .state_save = idle_state_save,
    .state_load = idle_state_load,
    .query = idle_query,
};

static bool idle_realize(Object *obj, Error **errp)
{
    ((GuestProgram *)obj)->ops = &idle_ops;
    return true;
}

static const ObjectClass idle_class = {
    .name = TYPE_GUEST_IDLE,
    .parent = TYPE_GUEST_PROGRAM,
    .desc = "vCPUs sleep and write nothing; RAM must stay zero (default)",
    .instance_size = sizeof(GuestProgram),
    .realize = idle_realize,
    .finalize = guest_program_finalize,
};

static void idle_register_types(void)
{
    type_register(&idle_class);
}
type_init(idle_register_types)
