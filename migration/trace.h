/*
 * Trace points of the migration core (defined in trace.c).
 */
#ifndef MIGRATION_TRACE_H
#define MIGRATION_TRACE_H

#include "qemu/trace.h"

TRACE_DECLARE(migration_set_state);
TRACE_DECLARE(migration_switchover);
TRACE_DECLARE(migration_iteration);
TRACE_DECLARE(migration_rp_message);
TRACE_DECLARE(incoming_set_state);
TRACE_DECLARE(migration_probe_ignored);
TRACE_DECLARE(migration_yank);
TRACE_DECLARE(migration_tls_handshake);
TRACE_DECLARE(savevm_send_command);
TRACE_DECLARE(loadvm_command);
TRACE_DECLARE(loadvm_section);
TRACE_DECLARE(ram_setup);
TRACE_DECLARE(ram_sync);

#endif
