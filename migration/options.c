/*
 * Migration capabilities and parameters, and their QMP commands.
 */
#include "qemu/osdep.h"
#include "monitor/qmp.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "migration/migration.h"
#include "qapi/qapi-types.h"
#include "system/cpu-throttle.h"
#include "system/dirtylimit.h"

#define DEFAULT_DOWNTIME_LIMIT_MS 300
#define MAX_DOWNTIME_LIMIT_MS 2000000       /* QEMU's bound: 2000 s */

static const char *const capability_names[MIGRATION_CAPABILITY__MAX] = {
    [MIGRATION_CAPABILITY_EVENTS] = "events",
    [MIGRATION_CAPABILITY_RETURN_PATH] = "return-path",
    [MIGRATION_CAPABILITY_SWITCHOVER_ACK] = "switchover-ack",
    [MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER] = "pause-before-switchover",
    [MIGRATION_CAPABILITY_MULTIFD] = "multifd",
    [MIGRATION_CAPABILITY_VALIDATE_UUID] = "validate-uuid",
    [MIGRATION_CAPABILITY_MAPPED_RAM] = "mapped-ram",
    [MIGRATION_CAPABILITY_AUTO_CONVERGE] = "auto-converge",
    [MIGRATION_CAPABILITY_DIRTY_LIMIT] = "dirty-limit",
    [MIGRATION_CAPABILITY_POSTCOPY_RAM] = "postcopy-ram",
    [MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME] = "postcopy-blocktime",
    [MIGRATION_CAPABILITY_POSTCOPY_PREEMPT] = "postcopy-preempt",
};

/* Written with the BQL while no migration runs; read from any thread. */
static bool capabilities[MIGRATION_CAPABILITY__MAX];

static struct {
    uint64_t downtime_limit;
    uint64_t max_bandwidth;
    uint64_t avail_switchover_bandwidth;
    uint64_t multifd_channels;
    uint64_t multifd_compression;   /* MultiFDCompression */
    uint64_t multifd_zlib_level;
    uint64_t multifd_zstd_level;
    uint64_t direct_io;             /* bool */
    uint64_t throttle_trigger_threshold;
    uint64_t cpu_throttle_initial;
    uint64_t cpu_throttle_increment;
    uint64_t cpu_throttle_tailslow;     /* bool */
    uint64_t max_cpu_throttle;
    uint64_t vcpu_dirty_limit_period;
    uint64_t vcpu_dirty_limit;
    uint64_t channel_timeout;
    uint64_t max_postcopy_bandwidth;
} params = {
    .downtime_limit = DEFAULT_DOWNTIME_LIMIT_MS,
    .max_bandwidth = DEFAULT_MAX_BANDWIDTH,
    .multifd_channels = 2,
    .multifd_compression = MULTIFD_COMPRESSION_NONE,
    .multifd_zlib_level = 1,
    .multifd_zstd_level = 1,
    /* QEMU's defaults */
    .throttle_trigger_threshold = 50,
    .cpu_throttle_initial = 20,
    .cpu_throttle_increment = 10,
    .max_cpu_throttle = 99,
    .vcpu_dirty_limit_period = 1000,
    .vcpu_dirty_limit = 1,
    .channel_timeout = DEFAULT_CHANNEL_TIMEOUT_MS,
};

/* tls-creds, tls-hostname, tls-authz: "" (unset) is kept as NULL. */
static const char *const tls_param_names[MIGRATE_TLS__MAX] = {
    [MIGRATE_TLS_CREDS] = "tls-creds",
    [MIGRATE_TLS_HOSTNAME] = "tls-hostname",
    [MIGRATE_TLS_AUTHZ] = "tls-authz",
};
static char *tls_params[MIGRATE_TLS__MAX];
static GMutex tls_params_lock;

char *migrate_tls_param(MigrateTLSParam p)
{
    char *v;

    g_mutex_lock(&tls_params_lock);
    v = g_strdup(tls_params[p]);
    g_mutex_unlock(&tls_params_lock);
    return v;
}

const char *migration_capability_name(MigrationCapability cap)
{
    return cap < MIGRATION_CAPABILITY__MAX ? capability_names[cap] : "?";
}

static bool cap_get(MigrationCapability cap)
{
    return __atomic_load_n(&capabilities[cap], __ATOMIC_RELAXED);
}

bool migrate_events(void)
{
    return cap_get(MIGRATION_CAPABILITY_EVENTS);
}

bool migrate_return_path(void)
{
    return cap_get(MIGRATION_CAPABILITY_RETURN_PATH);
}

bool migrate_switchover_ack(void)
{
    return cap_get(MIGRATION_CAPABILITY_SWITCHOVER_ACK);
}

bool migrate_pause_before_switchover(void)
{
    return cap_get(MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER);
}

uint64_t migrate_downtime_limit(void)
{
    return __atomic_load_n(&params.downtime_limit, __ATOMIC_RELAXED);
}

uint64_t migrate_max_bandwidth(void)
{
    return __atomic_load_n(&params.max_bandwidth, __ATOMIC_RELAXED);
}

uint64_t migrate_avail_switchover_bandwidth(void)
{
    return __atomic_load_n(&params.avail_switchover_bandwidth,
                           __ATOMIC_RELAXED);
}

bool migrate_multifd(void)
{
    return cap_get(MIGRATION_CAPABILITY_MULTIFD);
}

bool migrate_validate_uuid(void)
{
    return cap_get(MIGRATION_CAPABILITY_VALIDATE_UUID);
}

bool migrate_mapped_ram(void)
{
    return cap_get(MIGRATION_CAPABILITY_MAPPED_RAM);
}

bool migrate_direct_io(void)
{
    return __atomic_load_n(&params.direct_io, __ATOMIC_RELAXED);
}

bool migrate_auto_converge(void)
{
    return cap_get(MIGRATION_CAPABILITY_AUTO_CONVERGE);
}

bool migrate_dirty_limit(void)
{
    return cap_get(MIGRATION_CAPABILITY_DIRTY_LIMIT);
}

unsigned migrate_throttle_trigger_threshold(void)
{
    return __atomic_load_n(&params.throttle_trigger_threshold,
                           __ATOMIC_RELAXED);
}

unsigned migrate_cpu_throttle_initial(void)
{
    return __atomic_load_n(&params.cpu_throttle_initial, __ATOMIC_RELAXED);
}

unsigned migrate_cpu_throttle_increment(void)
{
    return __atomic_load_n(&params.cpu_throttle_increment, __ATOMIC_RELAXED);
}

bool migrate_cpu_throttle_tailslow(void)
{
    return __atomic_load_n(&params.cpu_throttle_tailslow, __ATOMIC_RELAXED);
}

unsigned migrate_max_cpu_throttle(void)
{
    return __atomic_load_n(&params.max_cpu_throttle, __ATOMIC_RELAXED);
}

uint64_t migrate_vcpu_dirty_limit_period(void)
{
    return __atomic_load_n(&params.vcpu_dirty_limit_period, __ATOMIC_RELAXED);
}

unsigned migrate_channel_timeout(void)
{
    return __atomic_load_n(&params.channel_timeout, __ATOMIC_RELAXED);
}

uint64_t migrate_vcpu_dirty_limit(void)
{
    return __atomic_load_n(&params.vcpu_dirty_limit, __ATOMIC_RELAXED);
}

bool migrate_postcopy_ram(void)
{
    return cap_get(MIGRATION_CAPABILITY_POSTCOPY_RAM);
}

bool migrate_postcopy_preempt(void)
{
    return cap_get(MIGRATION_CAPABILITY_POSTCOPY_PREEMPT);
}

bool migrate_postcopy_blocktime(void)
{
    return cap_get(MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME);
}

uint64_t migrate_max_postcopy_bandwidth(void)
{
    return __atomic_load_n(&params.max_postcopy_bandwidth, __ATOMIC_RELAXED);
}

bool migrate_check_address_type(MigrationAddressType type, Error **errp)
{
    bool socket = type == MIGRATION_ADDRESS_TCP ||
                  type == MIGRATION_ADDRESS_UNIX;

    if (migrate_mapped_ram() && type != MIGRATION_ADDRESS_FILE) {
        error_setg(errp, "capability 'mapped-ram' needs a file: address "
                   "(pages go to fixed offsets of a file), not %s:",
                   migration_address_type_name(type));
        return false;
    }
    if (migrate_multifd() && !socket && !migrate_mapped_ram()) {
        error_setg(errp, "capability 'multifd' needs a tcp: or unix: "
                   "address to open its channels, or file: with "
                   "capability 'mapped-ram'");
        return false;
    }
    if (migrate_postcopy_ram() && !socket &&
        type != MIGRATION_ADDRESS_FD) {
        error_setg(errp, "capability 'postcopy-ram' needs a socket (tcp:, "
                   "unix: or fd:): the destination asks for pages on the "
                   "way back, and %s: is one-way",
                   migration_address_type_name(type));
        return false;
    }
    if (migrate_postcopy_preempt() && !socket) {
        error_setg(errp, "capability 'postcopy-preempt' needs a tcp: or "
                   "unix: address to open its channel, not %s:",
                   migration_address_type_name(type));
        return false;
    }
    if (migrate_mapped_ram() && migrate_multifd() &&
        migrate_multifd_compression() != MULTIFD_COMPRESSION_NONE) {
        error_setg(errp, "capability 'mapped-ram' cannot be used with "
                   "multifd-compression %s: pages go to their slots as "
                   "they are",
                   multifd_compression_name(migrate_multifd_compression()));
        return false;
    }
    return true;
}

unsigned migrate_multifd_channels(void)
{
    return __atomic_load_n(&params.multifd_channels, __ATOMIC_RELAXED);
}

MultiFDCompression migrate_multifd_compression(void)
{
    return __atomic_load_n(&params.multifd_compression, __ATOMIC_RELAXED);
}

int migrate_multifd_zlib_level(void)
{
    return __atomic_load_n(&params.multifd_zlib_level, __ATOMIC_RELAXED);
}

int migrate_multifd_zstd_level(void)
{
    return __atomic_load_n(&params.multifd_zstd_level, __ATOMIC_RELAXED);
}

void migrate_multifd_params(MultiFDParams *p)
{
    multifd_params_init(p);
    p->channels = migrate_multifd_channels();
    p->compression = migrate_multifd_compression();
    p->zlib_level = migrate_multifd_zlib_level();
    p->zstd_level = migrate_multifd_zstd_level();
    p->mapped_ram = migrate_mapped_ram();
}

static bool migration_busy(Error **errp)
{
    if (migration_is_active() || migration_incoming_is_loading()) {
        error_setg(errp, "this cannot be changed while a migration is in "
                   "progress");
        return true;
    }
    return false;
}

/* Check a whole new set of capabilities for combinations that need others. */
static bool capabilities_check(const bool *new_caps, Error **errp)
{
    if (new_caps[MIGRATION_CAPABILITY_SWITCHOVER_ACK] &&
        !new_caps[MIGRATION_CAPABILITY_RETURN_PATH]) {
        error_setg(errp, "capability 'switchover-ack' requires capability "
                   "'return-path'");
        return false;
    }
    /*
     * As in QEMU.  (QEMU's other condition, KVM with a dirty ring, has no
     * counterpart: vmig counts every vCPU's dirtied pages all the time.)
     */
    if (new_caps[MIGRATION_CAPABILITY_DIRTY_LIMIT] &&
        new_caps[MIGRATION_CAPABILITY_AUTO_CONVERGE]) {
        error_setg(errp, "capability 'dirty-limit' cannot be used with "
                   "capability 'auto-converge': both slow the vCPUs down "
                   "when RAM does not converge; turn one of them off");
        return false;
    }
    if (new_caps[MIGRATION_CAPABILITY_POSTCOPY_PREEMPT] &&
        !new_caps[MIGRATION_CAPABILITY_POSTCOPY_RAM]) {
        error_setg(errp, "capability 'postcopy-preempt' requires capability "
                   "'postcopy-ram'");
        return false;
    }
    if (new_caps[MIGRATION_CAPABILITY_POSTCOPY_RAM]) {
        if (!new_caps[MIGRATION_CAPABILITY_RETURN_PATH]) {
            error_setg(errp, "capability 'postcopy-ram' requires capability "
                       "'return-path': the destination asks the source for "
                       "the pages its vCPUs touch over it");
            return false;
        }
        /* Not yet: both carry pages on other channels than the main one. */
        if (new_caps[MIGRATION_CAPABILITY_MULTIFD] ||
            new_caps[MIGRATION_CAPABILITY_MAPPED_RAM]) {
            error_setg(errp, "capability 'postcopy-ram' cannot be used with "
                       "capability '%s' in vmig",
                       new_caps[MIGRATION_CAPABILITY_MULTIFD] ? "multifd"
                                                              : "mapped-ram");
            return false;
        }
    }
    return true;
}

bool migrate_set_capability(MigrationCapability cap, bool on, Error **errp)
{
    bool new_caps[MIGRATION_CAPABILITY__MAX];

    if (migration_busy(errp)) {
        return false;
    }
    memcpy(new_caps, capabilities, sizeof(new_caps));
    new_caps[cap] = on;
    if (!capabilities_check(new_caps, errp)) {
        return false;
    }
    __atomic_store_n(&capabilities[cap], on, __ATOMIC_RELAXED);
    return true;
}

static int capability_lookup(const char *name)
{
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (!strcmp(name, capability_names[i])) {
            return i;
        }
    }
    return -1;
}

void qmp_migrate_set_capabilities(const QapiMigrateSetCapabilitiesArgs *args,
                                  JsonNode **ret, Error **errp)
{
    bool new_caps[MIGRATION_CAPABILITY__MAX];

    if (migration_busy(errp)) {
        return;
    }
    memcpy(new_caps, capabilities, sizeof(new_caps));
    for (size_t i = 0; i < args->capabilities->len; i++) {
        const QapiMigrationCapabilityStatus *cs = &args->capabilities->v[i];
        int cap = capability_lookup(
            qapi_enum_str(&qapi_type_MigrationCapability, cs->capability));

        /* The schema and capability_names list the same names. */
        assert(cap >= 0);
        new_caps[cap] = cs->state;
    }
    if (!capabilities_check(new_caps, errp)) {
        return;
    }
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        __atomic_store_n(&capabilities[i], new_caps[i], __ATOMIC_RELAXED);
    }
}

void qmp_query_migrate_capabilities(JsonNode **ret, Error **errp)
{
    JsonArray *list = json_array_new();

    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        JsonObject *obj = json_object_new();

        json_object_set_string_member(obj, "capability", capability_names[i]);
        json_object_set_boolean_member(obj, "state", cap_get(i));
        json_array_add_object_element(list, obj);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
}

typedef struct ParamDesc {
    const char *name;
    uint64_t *field;
    /* Where migrate-set-parameters' typed arguments hold it. */
    size_t has_arg;
    size_t arg;
    uint64_t min;
    uint64_t max;
    const char *unit;
    bool is_compression;        /* a string: none, zlib, zstd */
    bool is_bool;
    bool fixed_while_running;   /* shapes the stream */
} ParamDesc;

#define PARAM_ARG(field) \
    offsetof(QapiMigrateSetParameters, has_##field), \
    offsetof(QapiMigrateSetParameters, field)

static const ParamDesc param_descs[] = {
    { "downtime-limit", &params.downtime_limit,
      PARAM_ARG(downtime_limit), 0, MAX_DOWNTIME_LIMIT_MS, "ms" },
    { "max-bandwidth", &params.max_bandwidth,
      PARAM_ARG(max_bandwidth), 0, INT64_MAX, "bytes/s" },
    { "avail-switchover-bandwidth", &params.avail_switchover_bandwidth,
      PARAM_ARG(avail_switchover_bandwidth), 0, INT64_MAX, "bytes/s" },
    { "multifd-channels", &params.multifd_channels,
      PARAM_ARG(multifd_channels), 1, MULTIFD_MAX_CHANNELS,
      "channels", .fixed_while_running = true },
    { "multifd-compression", &params.multifd_compression,
      PARAM_ARG(multifd_compression), 0, 0,
      "", .is_compression = true, .fixed_while_running = true },
    { "multifd-zlib-level", &params.multifd_zlib_level,
      PARAM_ARG(multifd_zlib_level), 0, 9, "level" },
    { "multifd-zstd-level", &params.multifd_zstd_level,
      PARAM_ARG(multifd_zstd_level), 1, 20, "level" },
    { "direct-io", &params.direct_io,
      PARAM_ARG(direct_io), 0, 1, "", .is_bool = true },
    { "throttle-trigger-threshold", &params.throttle_trigger_threshold,
      PARAM_ARG(throttle_trigger_threshold), 1, 100, "percent" },
    { "cpu-throttle-initial", &params.cpu_throttle_initial,
      PARAM_ARG(cpu_throttle_initial),
      CPU_THROTTLE_PCT_MIN, CPU_THROTTLE_PCT_MAX,       "percent" },
    { "cpu-throttle-increment", &params.cpu_throttle_increment,
      PARAM_ARG(cpu_throttle_increment),
      CPU_THROTTLE_PCT_MIN, CPU_THROTTLE_PCT_MAX,       "percent" },
    { "cpu-throttle-tailslow", &params.cpu_throttle_tailslow,
      PARAM_ARG(cpu_throttle_tailslow), 0, 1, "", .is_bool = true },
    { "max-cpu-throttle", &params.max_cpu_throttle,
      PARAM_ARG(max_cpu_throttle), CPU_THROTTLE_PCT_MIN, CPU_THROTTLE_PCT_MAX,
      "percent" },
    { "x-vcpu-dirty-limit-period", &params.vcpu_dirty_limit_period,
      PARAM_ARG(x_vcpu_dirty_limit_period), 1, 1000, "ms" },
    { "vcpu-dirty-limit", &params.vcpu_dirty_limit,
      PARAM_ARG(vcpu_dirty_limit), 1, DIRTYLIMIT_MAX_RATE, "MB/s" },
    { "x-channel-timeout", &params.channel_timeout,
      PARAM_ARG(x_channel_timeout), 0, MAX_CHANNEL_TIMEOUT_MS, "ms" },
    { "max-postcopy-bandwidth", &params.max_postcopy_bandwidth,
      PARAM_ARG(max_postcopy_bandwidth), 0, INT64_MAX, "bytes/s" },
};

static const void *param_arg(const QapiMigrateSetParameters *args,
                             const ParamDesc *d)
{
    return *(const bool *)((const char *)args + d->has_arg)
           ? (const char *)args + d->arg : NULL;
}

void qmp_migrate_set_parameters(const QapiMigrateSetParameters *args,
                                JsonNode **ret, Error **errp)
{
    JsonNode *const tls_args[MIGRATE_TLS__MAX] = {
        [MIGRATE_TLS_CREDS] = args->tls_creds,
        [MIGRATE_TLS_HOSTNAME] = args->tls_hostname,
        [MIGRATE_TLS_AUTHZ] = args->tls_authz,
    };
    uint64_t values[ARRAY_SIZE(param_descs)];
    const char *tls_values[MIGRATE_TLS__MAX] = { NULL };
    bool fixed = false;

    /* Check every value before changing any: all or nothing. */
    for (size_t i = 0; i < ARRAY_SIZE(param_descs); i++) {
        const ParamDesc *d = &param_descs[i];
        const void *arg = param_arg(args, d);

        if (!arg) {
            continue;
        }
        fixed |= d->fixed_while_running;
        if (d->is_compression) {
            MultiFDCompression method;

            if (!multifd_compression_parse(
                    qapi_enum_str(&qapi_type_MultiFDCompression,
                                  *(const int *)arg), &method, errp)) {
                error_prepend(errp, "Parameter '%s': ", d->name);
                return;
            }
            values[i] = method;
            continue;
        }
        if (d->is_bool) {
            values[i] = *(const bool *)arg;
            continue;
        }
        values[i] = *(const uint64_t *)arg;
        if (values[i] < d->min || values[i] > d->max) {
            error_setg(errp, "Parameter '%s' expects a value between %" PRIu64
                       " and %" PRIu64 " (%s)", d->name, d->min, d->max,
                       d->unit);
            return;
        }
    }
    /* A string, or null for "" as in QEMU. */
    for (int i = 0; i < MIGRATE_TLS__MAX; i++) {
        if (tls_args[i]) {
            fixed = true;
            tls_values[i] = JSON_NODE_HOLDS_NULL(tls_args[i])
                            ? "" : json_node_get_string(tls_args[i]);
        }
    }
    /* The channels and the method shape the stream: not while it runs. */
    if (fixed && migration_busy(errp)) {
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(param_descs); i++) {
        if (param_arg(args, &param_descs[i])) {
            __atomic_store_n(param_descs[i].field, values[i],
                             __ATOMIC_RELAXED);
        }
    }
    g_mutex_lock(&tls_params_lock);
    for (int i = 0; i < MIGRATE_TLS__MAX; i++) {
        if (tls_values[i]) {
            g_free(tls_params[i]);
            tls_params[i] = *tls_values[i] ? g_strdup(tls_values[i]) : NULL;
        }
    }
    g_mutex_unlock(&tls_params_lock);
}

void qmp_query_migrate_parameters(JsonNode **ret, Error **errp)
{
    JsonObject *obj = json_object_new();

    for (size_t i = 0; i < ARRAY_SIZE(param_descs); i++) {
        uint64_t v = __atomic_load_n(param_descs[i].field, __ATOMIC_RELAXED);

        if (param_descs[i].is_compression) {
            json_object_set_string_member(obj, param_descs[i].name,
                                          multifd_compression_name(v));
        } else if (param_descs[i].is_bool) {
            json_object_set_boolean_member(obj, param_descs[i].name, v);
        } else {
            json_object_set_int_member(obj, param_descs[i].name, v);
        }
    }
    for (int i = 0; i < MIGRATE_TLS__MAX; i++) {
        g_autofree char *v = migrate_tls_param(i);

        json_object_set_string_member(obj, tls_param_names[i], v ? v : "");
    }
    *ret = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(*ret, obj);
}
