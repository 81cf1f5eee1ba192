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
TRACE_DECLARE(savevm_section_start);
TRACE_DECLARE(savevm_section_end);
TRACE_DECLARE(savevm_state_setup);
TRACE_DECLARE(savevm_state_complete);
TRACE_DECLARE(savevm_state_cleanup);
TRACE_DECLARE(savevm_pending);
TRACE_DECLARE(savevm_complete_thread);
TRACE_DECLARE(ram_save_pass);
TRACE_DECLARE(ram_save_complete);
TRACE_DECLARE(ram_load_flush);
TRACE_DECLARE(ram_load_discard);
TRACE_DECLARE(ram_load_prepare);
TRACE_DECLARE(ram_postcopy_discard);
TRACE_DECLARE(postcopy_place);
TRACE_DECLARE(postcopy_pause);
TRACE_DECLARE(postcopy_recover);
TRACE_DECLARE(postcopy_resume);
TRACE_DECLARE(incoming_channel);
TRACE_DECLARE(incoming_finish);
TRACE_DECLARE(migration_channel_connect);
TRACE_DECLARE(migration_channel_listen);
TRACE_DECLARE(migration_channel_error);
TRACE_DECLARE(qemu_file_error);
TRACE_DECLARE(mapped_ram_block);
TRACE_DECLARE(multifd_device_state_send);
TRACE_DECLARE(multifd_device_state_recv);
TRACE_DECLARE(multifd_device_state_gate);
TRACE_DECLARE(dirtyrate_start);
TRACE_DECLARE(dirtyrate_finish);

#endif
