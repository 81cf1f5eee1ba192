/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target for the return path's reader on the source.  One
 * input is what a destination sends back (SHUT, PONG, SWITCHOVER_ACK,
 * ...): a whole outgoing migration of a small stopped VM runs to an
 * "fd:" socket whose other end reads and drops the stream while it
 * writes the input, so the real return-path thread decodes it while the
 * migration thread waits for what it says.
 *
 * Byte 0 sets the source up (FUZZ_RP_* below), the rest is the return
 * path.  The machine is the stream loader target's (256 KiB of RAM, one
 * vCPU of the stress program, never started), built once.
 * tests/fuzz/make-seeds.py records what real destinations sent.
 *
 * A migration that does not end (in "completed" or "failed") within
 * libFuzzer's -timeout is a finding: a destination must not be able to
 * hold the source forever.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/hostmem.h"
#include "system/runstate.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "migration/migration.h"
#include "fuzz-common.h"

/* Byte 0 */
#define FUZZ_RP_SWITCHOVER_ACK  0x01    /* wait for the destination's ack */
#define FUZZ_RP_PAUSE           0x02    /* pause-before-switchover */

static gboolean tick_cb(gpointer opaque)
{
    return G_SOURCE_CONTINUE;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_common_init();
    fuzz_machine_init(true);
    migration_init();
    migrate_set_capability(MIGRATION_CAPABILITY_RETURN_PATH, true,
                           &error_abort);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    MigrationState *s = migrate_get_current();
    MigrationAddress addr = { .type = MIGRATION_ADDRESS_FD };
    g_autofree char *result = NULL;
    MigrationStatus status;
    FuzzPeer *peer;
    Error *err = NULL;
    guint tick;
    int fd;

    fuzz_set_result(NULL);
    if (size < 1) {
        return -1;
    }
    migrate_set_capability(MIGRATION_CAPABILITY_SWITCHOVER_ACK,
                           data[0] & FUZZ_RP_SWITCHOVER_ACK, &error_abort);
    migrate_set_capability(MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER,
                           data[0] & FUZZ_RP_PAUSE, &error_abort);
    /* A VM that never ran: every run sends the same stream. */
    runstate_set(RUN_STATE_PRELAUNCH);

    peer = fuzz_peer_start(data + 1, size - 1, &fd);
    addr.fd_name = g_strdup_printf("%d", fd);
    if (!migration_start(&addr, &err)) {
        fuzz_fail("migration_start: %s", error_get_pretty(err));
    }
    /* Look at the status every millisecond, whatever the loop waits for. */
    tick = g_timeout_add(1, tick_cb, NULL);
    while (migration_is_active()) {
        /* pause-before-switchover: go on, as an operator would. */
        if (migration_get_status(s) == MIGRATION_STATUS_PRE_SWITCHOVER) {
            migration_continue("pre-switchover", NULL);
        }
        g_main_context_iteration(NULL, TRUE);
    }
    g_source_remove(tick);
    g_byte_array_unref(fuzz_peer_join(peer));
    migration_address_clear(&addr);

    status = migration_get_status(s);
    result = g_strdup(status == MIGRATION_STATUS_COMPLETED ? "ok" :
                      s->error ? error_get_pretty(s->error) :
                      migration_status_name(status));
    fuzz_log("options 0x%02x, %zu bytes: %s: %s", data[0], size - 1,
             migration_status_name(status), result);
    if (status != MIGRATION_STATUS_COMPLETED &&
        status != MIGRATION_STATUS_FAILED) {
        fuzz_fail("the migration ended in status '%s'",
                  migration_status_name(status));
    }
    fuzz_set_result(result);
    return 0;
}
