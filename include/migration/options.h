/*
 * Migration capabilities and parameters: the one place that stores
 * them.  Everything else reads them through these accessors.
 *
 * Capabilities change only while no migration runs (QMP, BQL held).
 * Parameters may change during a migration (max-bandwidth, downtime
 * limit); they are stored and read with relaxed atomics, so the
 * migration thread sees a new value at its next rate-limit window.
 */
#ifndef MIGRATION_OPTIONS_H
#define MIGRATION_OPTIONS_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "migration/multifd.h"

/* max-bandwidth's default, bytes/s (QEMU's). */
#define DEFAULT_MAX_BANDWIDTH (128 * MiB)

typedef enum MigrationCapability {
    MIGRATION_CAPABILITY_EVENTS,
    MIGRATION_CAPABILITY_RETURN_PATH,
    MIGRATION_CAPABILITY_SWITCHOVER_ACK,
    MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER,
    MIGRATION_CAPABILITY_MULTIFD,
    MIGRATION_CAPABILITY_VALIDATE_UUID,
    MIGRATION_CAPABILITY_MAPPED_RAM,
    MIGRATION_CAPABILITY_AUTO_CONVERGE,
    MIGRATION_CAPABILITY_DIRTY_LIMIT,
    MIGRATION_CAPABILITY_POSTCOPY_RAM,
    MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME,
    MIGRATION_CAPABILITY_POSTCOPY_PREEMPT,
    MIGRATION_CAPABILITY__MAX,
} MigrationCapability;

const char *migration_capability_name(MigrationCapability cap);

bool migrate_events(void);
bool migrate_return_path(void);
bool migrate_switchover_ack(void);
bool migrate_pause_before_switchover(void);
bool migrate_multifd(void);
/*
 * Source: send this VM's -uuid in the configuration section, so that a
 * destination with another UUID refuses the stream.  (The destination
 * checks whenever the field is there, whatever its own setting.)
 */
bool migrate_validate_uuid(void);
/*
 * RAM goes to fixed places of a file: file: transport only, with or
 * without multifd (whose channels are then more fds on the file), never
 * with multifd compression.  See include/migration/mapped-ram.h.
 */
bool migrate_mapped_ram(void);

/* Milliseconds the VM may stay stopped at switchover (default 300). */
uint64_t migrate_downtime_limit(void);
/* Bytes per second the main channel may use (default 128 MiB/s). */
uint64_t migrate_max_bandwidth(void);
/* Bytes per second to assume at switchover instead of the measured
 * bandwidth; 0 means use the measurement. */
uint64_t migrate_avail_switchover_bandwidth(void);

/*
 * direct-io (default off): mapped-ram reads and writes pages past the
 * page cache (O_DIRECT) where the file system allows it.  Nothing else
 * reads it.
 */
bool migrate_direct_io(void);

/*
 * auto-converge (source): when RAM does not converge, throttle every
 * vCPU (system/cpu-throttle.h), more and more, with the parameters below.
 */
bool migrate_auto_converge(void);
/*
 * dirty-limit (source; not with auto-converge): when RAM does not
 * converge, limit every vCPU's dirty-page rate to vcpu-dirty-limit
 * (system/dirtylimit.h).
 */
bool migrate_dirty_limit(void);
/*
 * Both throttle when, twice, the bytes the guest dirtied over a sync
 * period exceed this percentage (1-100, default 50) of the bytes sent.
 */
unsigned migrate_throttle_trigger_threshold(void);
/* auto-converge: first percentage (1-99, default 20), */
unsigned migrate_cpu_throttle_initial(void);
/* the step (1-99, default 10), */
unsigned migrate_cpu_throttle_increment(void);
/* smaller steps near the goal (default off), */
bool migrate_cpu_throttle_tailslow(void);
/* and the highest percentage (1-99, default 99). */
unsigned migrate_max_cpu_throttle(void);
/* dirty-limit: the measuring period in ms (1-1000, default 1000), */
uint64_t migrate_vcpu_dirty_limit_period(void);
/* and the limit of every vCPU in MB/s (default 1). */
uint64_t migrate_vcpu_dirty_limit(void);

typedef enum MigrateTLSParam {
    MIGRATE_TLS_CREDS,          /* the id of a tls-creds-* object */
    MIGRATE_TLS_HOSTNAME,       /* the name the server's certificate shows */
    MIGRATE_TLS_AUTHZ,          /* the id of an authz-* object */
    MIGRATE_TLS__MAX,
} MigrateTLSParam;
/* A copy of tls-creds, tls-hostname or tls-authz; NULL when unset. */
char *migrate_tls_param(MigrateTLSParam p);

/*
 * x-channel-timeout: how long a peer may stall a migration channel before
 * the migration fails, in ms (0: for ever).  See mig_cancel_set_timeout().
 */
#define DEFAULT_CHANNEL_TIMEOUT_MS 30000
#define MAX_CHANNEL_TIMEOUT_MS 3600000
unsigned migrate_channel_timeout(void);

/*
 * postcopy-ram (both sides; needs return-path): after
 * migrate-start-postcopy the destination runs the VM while RAM still
 * arrives, fetching the pages its vCPUs touch first (postcopy-ram.c).
 */
bool migrate_postcopy_ram(void);
/*
 * postcopy-preempt (both sides; needs postcopy-ram, tcp: or unix:): the
 * pages the destination asks for go on a channel of their own, sent by
 * the source's return-path thread as soon as it reads the request.
 */
bool migrate_postcopy_preempt(void);
/* postcopy-blocktime (destination): measure how long vCPUs wait for pages. */
bool migrate_postcopy_blocktime(void);
/* Bytes per second of the background page push after the switch (0: no
 * limit, the default); pages the destination asks for are never held. */
uint64_t migrate_max_postcopy_bandwidth(void);

/* multifd-channels (default 2), -compression, -zlib-level, -zstd-level. */
unsigned migrate_multifd_channels(void);
MultiFDCompression migrate_multifd_compression(void);
int migrate_multifd_zlib_level(void);
int migrate_multifd_zstd_level(void);
/* All four as the multifd layer takes them (error_notify left NULL). */
void migrate_multifd_params(MultiFDParams *params);

/*
 * Whether the capabilities and parameters set now can migrate through an
 * address of @type (source or destination); errp names the capability.
 */
bool migrate_check_address_type(MigrationAddressType type, Error **errp);

/* For tests and vl.c: set a capability as QMP would (checks included). */
bool migrate_set_capability(MigrationCapability cap, bool on, Error **errp);

#endif
