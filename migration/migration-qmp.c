/*
 * QMP commands of the migration core: migrate, migrate-incoming,
 * migrate_cancel, migrate-continue, query-migrate, yank and query-yank.
 * (Capabilities and parameters are in options.c.)
 */
#include "qemu/osdep.h"
#include "migration/timeline.h"
#include "qemu/cutils.h"
#include "monitor/qmp.h"
#include "qapi/qapi-types.h"
#include "system/ramblock.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "migration/multifd.h"
#include "migration/migration.h"

/* The MigrationAddress of the main channel of the channels form. */
static bool channel_addr_parse(const QapiMigrationAddress *in,
                               MigrationAddress *addr, Error **errp)
{
    const QapiSocketAddress *sock = &in->u.socket;

    memset(addr, 0, sizeof(*addr));
    switch (in->transport) {
    case QAPI_MIGRATION_ADDRESS_TYPE_SOCKET:
        switch (sock->type) {
        case QAPI_SOCKET_ADDRESS_TYPE_INET:
            addr->type = MIGRATION_ADDRESS_TCP;
            addr->host = g_strdup(sock->u.inet.host);
            addr->port = g_strdup(sock->u.inet.port);
            return true;
        case QAPI_SOCKET_ADDRESS_TYPE_UNIX:
            addr->type = MIGRATION_ADDRESS_UNIX;
            addr->path = g_strdup(sock->u.q_unix.path);
            return true;
        case QAPI_SOCKET_ADDRESS_TYPE_FD:
            addr->type = MIGRATION_ADDRESS_FD;
            addr->fd_name = g_strdup(sock->u.fd.str);
            return true;
        case QAPI_SOCKET_ADDRESS_TYPE__MAX:
            break;
        }
        break;
    case QAPI_MIGRATION_ADDRESS_TYPE_EXEC: {
        const QapiStrList *args = in->u.exec.args;
        g_autoptr(GString) cmd = g_string_new(NULL);

        if (!args->len) {
            error_setg(errp, "Parameter 'args' expects a non-empty array of "
                       "strings");
            return false;
        }
        for (size_t i = 0; i < args->len; i++) {
            g_autofree char *quoted = g_shell_quote(args->v[i]);

            g_string_append_printf(cmd, "%s%s", i ? " " : "", quoted);
        }
        addr->type = MIGRATION_ADDRESS_EXEC;
        addr->command = g_string_free(g_steal_pointer(&cmd), false);
        return true;
    }
    case QAPI_MIGRATION_ADDRESS_TYPE_FILE:
        addr->type = MIGRATION_ADDRESS_FILE;
        addr->path = g_strdup(in->u.file.filename);
        addr->offset = in->u.file.offset;
        return true;
    case QAPI_MIGRATION_ADDRESS_TYPE__MAX:
        break;
    }
    g_assert_not_reached();
}

/* Either "uri" or "channels" (exactly one main channel), not both. */
static bool migrate_args_address(const char *uri,
                                 const QapiMigrationChannelList *channels,
                                 MigrationAddress *addr, Error **errp)
{
    if (!uri == !channels) {
        error_setg(errp, "exactly one of 'uri' and 'channels' is needed");
        return false;
    }
    if (uri) {
        return migration_address_parse(uri, addr, errp);
    }
    if (channels->len != 1) {
        error_setg(errp, "Parameter 'channels' expects a list of one 'main' "
                   "channel");
        return false;
    }
    return channel_addr_parse(&channels->v[0].addr, addr, errp);
}

void qmp_migrate(const QapiMigrateArgs *args, JsonNode **ret, Error **errp)
{
    MigrationAddress addr;

    if (!migrate_args_address(args->uri, args->channels, &addr, errp)) {
        return;
    }
    if (args->resume) {
        migration_resume(&addr, errp);
    } else {
        migration_start(&addr, errp);
    }
    migration_address_clear(&addr);
}

void qmp_migrate_incoming(const QapiMigrateIncomingArgs *args, JsonNode **ret,
                          Error **errp)
{
    bool exit_on_error = args->has_exit_on_error ? args->exit_on_error : true;
    MigrationAddress addr;

    if (!migrate_args_address(args->uri, args->channels, &addr, errp)) {
        return;
    }
    migration_incoming_start_addr(&addr, exit_on_error, errp);
    migration_address_clear(&addr);
}

void qmp_migrate_cancel(JsonNode **ret, Error **errp)
{
    migration_cancel(errp);
}

/* The source's when it has a migration in postcopy, else the destination's. */
void qmp_migrate_pause(JsonNode **ret, Error **errp)
{
    if (migration_get_status(migrate_get_current()) != MIGRATION_STATUS_NONE) {
        migration_pause(errp);
    } else {
        migration_incoming_pause(errp);
    }
}

void qmp_migrate_recover(const QapiMigrateRecoverArgs *args, JsonNode **ret,
                         Error **errp)
{
    MigrationAddress addr;

    if (!migration_address_parse(args->uri, &addr, errp)) {
        return;
    }
    migration_incoming_recover(&addr, errp);
    migration_address_clear(&addr);
}

void qmp_migrate_start_postcopy(JsonNode **ret, Error **errp)
{
    migration_start_postcopy(errp);
}

void qmp_migrate_continue(const QapiMigrateContinueArgs *args, JsonNode **ret,
                          Error **errp)
{
    migration_continue(qapi_enum_str(&qapi_type_MigrationStatus, args->state),
                       errp);
}

static uint64_t stat_get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void query_ram(JsonObject *obj, MigrationState *s)
{
    JsonObject *ram = json_object_new();
    uint64_t normal = stat_get(&ram_stats.normal_pages);
    uint64_t zero = stat_get(&ram_stats.zero_pages);
    uint64_t multifd_bytes = 0, multifd_ram_bytes = 0;

    /*
     * With multifd, pages are counted by its send threads; its channels
     * also carry device state, which is not RAM (query "vfio" has it).
     */
    if (s->multifd_started) {
        normal += multifd_ram_normal_pages();
        zero += multifd_ram_zero_pages();
        multifd_bytes = multifd_bytes_transferred();
        multifd_ram_bytes = multifd_bytes - multifd_device_state_bytes_transferred();
    }
    json_object_set_int_member(ram, "transferred",
                               stat_get(&ram_stats.transferred) +
                               multifd_ram_bytes);
    json_object_set_int_member(ram, "remaining",
                               stat_get(&ram_stats.remaining));
    json_object_set_int_member(ram, "total", ram_total_size());
    json_object_set_int_member(ram, "duplicate", zero);
    json_object_set_int_member(ram, "normal", normal);
    json_object_set_int_member(ram, "normal-bytes",
                               normal * TARGET_PAGE_SIZE);
    json_object_set_int_member(ram, "dirty-pages-rate",
                               stat_get(&ram_stats.dirty_pages_rate));
    json_object_set_double_member(ram, "mbps",
                                  stat_get(&s->mbps_x1000) / 1000.0);
    json_object_set_int_member(ram, "dirty-sync-count",
                               stat_get(&ram_stats.dirty_sync_count));
    json_object_set_int_member(ram, "page-size", TARGET_PAGE_SIZE);
    json_object_set_int_member(ram, "multifd-bytes", multifd_bytes);
    json_object_set_int_member(ram, "pages-per-second",
                               stat_get(&s->pages_per_second));
    json_object_set_int_member(ram, "precopy-bytes",
                               stat_get(&ram_stats.precopy_bytes));
    json_object_set_int_member(ram, "downtime-bytes",
                               stat_get(&ram_stats.downtime_bytes));
    json_object_set_int_member(ram, "postcopy-requests",
                               stat_get(&ram_stats.postcopy_requests));
    json_object_set_int_member(ram, "postcopy-bytes",
                               stat_get(&ram_stats.postcopy_bytes));
    json_object_set_object_member(obj, "ram", ram);
}

void qmp_query_migrate(JsonNode **ret, Error **errp)
{
    MigrationState *s = migrate_get_current();
    MigrationStatus st = migration_get_status(s);
    JsonObject *obj;

    obj = json_object_new();
    if (st != MIGRATION_STATUS_NONE) {
        bool running = !migration_status_is_terminal(st) || s->thread;

        json_object_set_string_member(obj, "status",
                                      migration_status_name(st));
        if (st != MIGRATION_STATUS_SETUP) {
            query_ram(obj, s);
            migration_query_vfio(obj);
        }
        migration_throttle_query(obj);
        json_object_set_int_member(obj, "total-time", running
                                   ? get_clock_ms() - s->start_ms
                                   : s->total_time_ms);
        if (st != MIGRATION_STATUS_SETUP) {
            json_object_set_int_member(obj, "setup-time", s->setup_time_ms);
        }
        if (st == MIGRATION_STATUS_COMPLETED) {
            json_object_set_int_member(obj, "downtime", s->downtime_ms);
        } else if (running) {
            json_object_set_int_member(obj, "expected-downtime",
                                       stat_get(&s->expected_downtime_ms));
        }
        if (st == MIGRATION_STATUS_FAILED && s->error) {
            json_object_set_string_member(obj, "error-desc",
                                          error_get_pretty(s->error));
        }
        migration_query_pause(obj);
    } else {
        migration_incoming_query(obj);
    }
    *ret = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(*ret, obj);
}

/*
 * yank / query-yank, with QEMU's YankInstance union.  The migration is
 * vmig's only instance (it has no block nodes and no chardevs): it exists
 * from migrate or migrate-incoming until the migration has ended.
 */
static bool yank_instance_check(const QapiYankInstance *inst, Error **errp)
{
    switch (inst->type) {
    case QAPI_YANK_INSTANCE_TYPE_MIGRATION:
        if (!migration_yank_exists()) {
            error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                      "Instance 'migration' not found: no migration is "
                      "running");
            return false;
        }
        return true;
    case QAPI_YANK_INSTANCE_TYPE_BLOCK_NODE:
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Instance of type "
                  "'block-node' not found: vmig has no block nodes");
        return false;
    case QAPI_YANK_INSTANCE_TYPE_CHARDEV:
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Instance of type "
                  "'chardev' not found: vmig has no chardevs");
        return false;
    case QAPI_YANK_INSTANCE_TYPE__MAX:
        break;
    }
    g_assert_not_reached();
}

void qmp_yank(const QapiYankArgs *args, JsonNode **ret, Error **errp)
{
    /* All or nothing: every instance must exist before any is yanked. */
    for (size_t i = 0; i < args->instances->len; i++) {
        if (!yank_instance_check(&args->instances->v[i], errp)) {
            return;
        }
    }
    if (args->instances->len) {
        migration_yank();
    }
}

void qmp_query_yank(JsonNode **ret, Error **errp)
{
    JsonArray *list = json_array_new();

    if (migration_yank_exists()) {
        JsonObject *inst = json_object_new();

        json_object_set_string_member(inst, "type", "migration");
        json_array_add_object_element(list, inst);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
}

void qmp_x_query_migration_timeline(JsonNode **ret, Error **errp)
{
    *ret = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(*ret, mig_timeline_query());
}
