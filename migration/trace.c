/*
 * Trace points of the migration core.  Enable with -trace 'migration_*'.
 */
#include "qemu/osdep.h"
#include "migration/trace.h"

TRACE_DEFINE(migration_set_state);
TRACE_DEFINE(migration_switchover);
TRACE_DEFINE(migration_iteration);
TRACE_DEFINE(migration_rp_message);
TRACE_DEFINE(incoming_set_state);
TRACE_DEFINE(migration_probe_ignored);
TRACE_DEFINE(migration_yank);
TRACE_DEFINE(migration_tls_handshake);
TRACE_DEFINE(savevm_send_command);
TRACE_DEFINE(loadvm_command);
TRACE_DEFINE(loadvm_section);
TRACE_DEFINE(ram_setup);
TRACE_DEFINE(ram_sync);
