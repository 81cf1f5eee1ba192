/*
 * The "guest" section: the guest program's vCPU state (loop positions,
 * counters), saved at switchover so that the program carries on at the
 * destination where it stopped.  Payload: be32 length, bytes.
 */
#include "qemu/osdep.h"
#include "system/guest.h"
#include "migration/register.h"
#include "migration/migration.h"

/* Far above any program's state; a larger length is a corrupt stream. */
#define GUEST_STATE_MAX_LEN (16 * MiB)

static int guest_save_state(QEMUFile *f, void *opaque, Error **errp)
{
    g_autoptr(GByteArray) state = guest_state_save();
    uint32_t len = state ? state->len : 0;

    if (len > GUEST_STATE_MAX_LEN) {
        error_setg(errp, "guest program state of %u bytes exceeds the limit "
                   "of %llu", len, GUEST_STATE_MAX_LEN);
        return -EINVAL;
    }
    qemu_put_be32(f, len);
    if (len) {
        qemu_put_buffer(f, state->data, len);
    }
    return qemu_file_check(f, errp) ? 0 : -EIO;
}

static int guest_load_state(QEMUFile *f, void *opaque, int version_id,
                            Error **errp)
{
    uint32_t len = qemu_get_be32(f);
    g_autofree uint8_t *buf = NULL;

    if (!qemu_file_check(f, errp)) {
        return -EIO;
    }
    if (len > GUEST_STATE_MAX_LEN) {
        error_setg(errp, "guest program state of %u bytes exceeds the limit "
                   "of %llu", len, GUEST_STATE_MAX_LEN);
        return -EINVAL;
    }
    buf = g_malloc(len ? len : 1);
    if (!qemu_get_buffer(f, buf, len)) {
        qemu_file_check(f, errp);
        return -EIO;
    }
    if (!guest_state_load(buf, len, errp)) {
        error_prepend(errp, "guest program '%s': ", guest_program_name());
        return -EINVAL;
    }
    return 0;
}

static const SaveVMHandlers guest_handlers = {
    .save_state = guest_save_state,
    .load_state = guest_load_state,
};

void guest_state_mig_init(void)
{
    register_savevm_live("guest", 0, 1, &guest_handlers, NULL);
}
