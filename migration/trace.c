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
TRACE_DEFINE(savevm_section_start);
TRACE_DEFINE(savevm_section_end);
TRACE_DEFINE(savevm_state_setup);
TRACE_DEFINE(savevm_state_complete);
TRACE_DEFINE(savevm_state_cleanup);
TRACE_DEFINE(savevm_pending);
TRACE_DEFINE(savevm_complete_thread);
TRACE_DEFINE(ram_save_pass);
TRACE_DEFINE(ram_save_complete);
TRACE_DEFINE(ram_load_flush);
TRACE_DEFINE(ram_load_discard);
TRACE_DEFINE(ram_load_prepare);
TRACE_DEFINE(ram_postcopy_discard);
TRACE_DEFINE(postcopy_place);
TRACE_DEFINE(postcopy_pause);
TRACE_DEFINE(postcopy_recover);
TRACE_DEFINE(postcopy_resume);
TRACE_DEFINE(incoming_channel);
TRACE_DEFINE(incoming_finish);
TRACE_DEFINE(migration_channel_connect);
TRACE_DEFINE(migration_channel_listen);
TRACE_DEFINE(migration_channel_error);
TRACE_DEFINE(qemu_file_error);
TRACE_DEFINE(mapped_ram_block);
TRACE_DEFINE(multifd_device_state_send);
TRACE_DEFINE(multifd_device_state_recv);
TRACE_DEFINE(multifd_device_state_gate);
TRACE_DEFINE(dirtyrate_start);
TRACE_DEFINE(dirtyrate_finish);
