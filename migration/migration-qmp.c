/*
 * QMP commands of the migration core: migrate, migrate-incoming,
 * migrate_cancel, migrate-continue, query-migrate, yank and query-yank.
 * (Capabilities and parameters are in options.c.)
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "monitor/qmp.h"
#include "system/ramblock.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "migration/multifd.h"
#include "migration/migration.h"

static bool channel_str(JsonObject *obj, const char *name, char **out,
                        Error **errp)
{
    const char *v = qmp_arg_str(obj, name, errp);

    if (!v) {
        return false;
    }
    *out = g_strdup(v);
    return true;
}

/* The MigrationAddress of one "addr" object of the channels form. */
static bool channel_addr_parse(JsonObject *obj, MigrationAddress *addr,
                               Error **errp)
{
    const char *transport = qmp_arg_str(obj, "transport", errp);
    int64_t offset;

    memset(addr, 0, sizeof(*addr));
    if (!transport) {
        return false;
    }
    if (!strcmp(transport, "socket")) {
        static const char *const inet[] = { "transport", "type", "host",
                                            "port", NULL };
        static const char *const unix_[] = { "transport", "type", "path",
                                             NULL };
        static const char *const fd[] = { "transport", "type", "str", NULL };
        const char *type = qmp_arg_str(obj, "type", errp);

        if (!type) {
            return false;
        }
        if (!strcmp(type, "inet")) {
            addr->type = MIGRATION_ADDRESS_TCP;
            return qmp_args_check(obj, inet, errp) &&
                   channel_str(obj, "host", &addr->host, errp) &&
                   channel_str(obj, "port", &addr->port, errp);
        }
        if (!strcmp(type, "unix")) {
            addr->type = MIGRATION_ADDRESS_UNIX;
            return qmp_args_check(obj, unix_, errp) &&
                   channel_str(obj, "path", &addr->path, errp);
        }
        if (!strcmp(type, "fd")) {
            addr->type = MIGRATION_ADDRESS_FD;
            return qmp_args_check(obj, fd, errp) &&
                   channel_str(obj, "str", &addr->fd_name, errp);
        }
        error_setg(errp, "socket type '%s' is not supported (inet, unix or "
                   "fd)", type);
        return false;
    }
    if (!strcmp(transport, "exec")) {
        static const char *const known[] = { "transport", "args", NULL };
        JsonNode *node = json_object_get_member(obj, "args");
        GString *cmd = g_string_new(NULL);
        JsonArray *args;

        if (!qmp_args_check(obj, known, errp)) {
            g_string_free(cmd, true);
            return false;
        }
        if (!node || !JSON_NODE_HOLDS_ARRAY(node) ||
            !json_array_get_length(args = json_node_get_array(node))) {
            error_setg(errp, "Parameter 'args' expects a non-empty array of "
                       "strings");
            g_string_free(cmd, true);
            return false;
        }
        for (guint i = 0; i < json_array_get_length(args); i++) {
            JsonNode *arg = json_array_get_element(args, i);
            g_autofree char *quoted = NULL;

            if (!JSON_NODE_HOLDS_VALUE(arg) ||
                json_node_get_value_type(arg) != G_TYPE_STRING) {
                error_setg(errp, "Parameter 'args' expects strings");
                g_string_free(cmd, true);
                return false;
            }
            quoted = g_shell_quote(json_node_get_string(arg));
            g_string_append_printf(cmd, "%s%s", i ? " " : "", quoted);
        }
        addr->type = MIGRATION_ADDRESS_EXEC;
        addr->command = g_string_free(cmd, false);
        return true;
    }
    if (!strcmp(transport, "file")) {
        static const char *const known[] = { "transport", "filename",
                                             "offset", NULL };

        addr->type = MIGRATION_ADDRESS_FILE;
        if (!qmp_args_check(obj, known, errp) ||
            !channel_str(obj, "filename", &addr->path, errp) ||
            !qmp_arg_int_opt(obj, "offset", 0, &offset, errp)) {
            return false;
        }
        if (offset < 0) {
            error_setg(errp, "Parameter 'offset' must not be negative");
            return false;
        }
        addr->offset = offset;
        return true;
    }
    error_setg(errp, "transport '%s' is not supported (socket, exec or file)",
               transport);
    return false;
}

/* Either "uri" or "channels" (exactly one main channel), not both. */
static bool migrate_args_address(JsonObject *args, MigrationAddress *addr,
                                 Error **errp)
{
    bool has_uri = json_object_has_member(args, "uri");
    bool has_channels = json_object_has_member(args, "channels");
    JsonNode *node;
    JsonArray *list;
    JsonObject *chan, *addr_obj;
    const char *type;
    bool ok;

    if (has_uri == has_channels) {
        error_setg(errp, "exactly one of 'uri' and 'channels' is needed");
        return false;
    }
    if (has_uri) {
        const char *uri = qmp_arg_str(args, "uri", errp);

        return uri && migration_address_parse(uri, addr, errp);
    }
    node = json_object_get_member(args, "channels");
    if (!JSON_NODE_HOLDS_ARRAY(node) ||
        json_array_get_length(list = json_node_get_array(node)) != 1) {
        error_setg(errp, "Parameter 'channels' expects a list of one 'main' "
                   "channel");
        return false;
    }
    node = json_array_get_element(list, 0);
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        error_setg(errp, "channels[0]: expected an object");
        return false;
    }
    chan = json_node_get_object(node);
    {
        static const char *const known[] = { "channel-type", "addr", NULL };

        if (!qmp_args_check(chan, known, errp)) {
            return false;
        }
    }
    type = qmp_arg_str(chan, "channel-type", errp);
    if (!type) {
        return false;
    }
    if (strcmp(type, "main")) {
        error_setg(errp, "channel type '%s' is not supported (main)", type);
        return false;
    }
    node = json_object_get_member(chan, "addr");
    if (!node || !JSON_NODE_HOLDS_OBJECT(node)) {
        error_setg(errp, "channels[0]: Parameter 'addr' expects an object");
        return false;
    }
    addr_obj = json_node_get_object(node);
    ok = channel_addr_parse(addr_obj, addr, errp);
    if (!ok) {
        migration_address_clear(addr);
    }
    return ok;
}

static void qmp_migrate(JsonObject *args, JsonNode **ret, Error **errp)
{
    static const char *const known[] = { "uri", "channels", "detach",
                                         "resume", NULL };
    MigrationAddress addr;
    bool resume;

    if (!qmp_args_check(args, known, errp) ||
        !qmp_arg_bool_opt(args, "resume", false, &resume, errp)) {
        return;
    }
    if (!migrate_args_address(args, &addr, errp)) {
        return;
    }
    if (resume) {
        migration_resume(&addr, errp);
    } else {
        migration_start(&addr, errp);
    }
    migration_address_clear(&addr);
}

static void qmp_migrate_incoming(JsonObject *args, JsonNode **ret,
                                 Error **errp)
{
    static const char *const known[] = { "uri", "channels", "exit-on-error",
                                         NULL };
    MigrationAddress addr;
    bool exit_on_error;

    if (!qmp_args_check(args, known, errp) ||
        !qmp_arg_bool_opt(args, "exit-on-error", true, &exit_on_error, errp) ||
        !migrate_args_address(args, &addr, errp)) {
        return;
    }
    migration_incoming_start_addr(&addr, exit_on_error, errp);
    migration_address_clear(&addr);
}

static void qmp_migrate_cancel(JsonObject *args, JsonNode **ret, Error **errp)
{
    static const char *const known[] = { NULL };

    if (qmp_args_check(args, known, errp)) {
        migration_cancel(errp);
    }
}

/* The source's when it has a migration in postcopy, else the destination's. */
static void qmp_migrate_pause(JsonObject *args, JsonNode **ret, Error **errp)
{
    static const char *const known[] = { NULL };

    if (!qmp_args_check(args, known, errp)) {
        return;
    }
    if (migration_get_status(migrate_get_current()) != MIGRATION_STATUS_NONE) {
        migration_pause(errp);
    } else {
        migration_incoming_pause(errp);
    }
}

static void qmp_migrate_recover(JsonObject *args, JsonNode **ret,
                                Error **errp)
{
    static const char *const known[] = { "uri", NULL };
    MigrationAddress addr;
    const char *uri;

    if (!qmp_args_check(args, known, errp)) {
        return;
    }
    uri = qmp_arg_str(args, "uri", errp);
    if (!uri || !migration_address_parse(uri, &addr, errp)) {
        return;
    }
    migration_incoming_recover(&addr, errp);
    migration_address_clear(&addr);
}

static void qmp_migrate_start_postcopy(JsonObject *args, JsonNode **ret,
                                       Error **errp)
{
    static const char *const known[] = { NULL };

    if (qmp_args_check(args, known, errp)) {
        migration_start_postcopy(errp);
    }
}

static void qmp_migrate_continue(JsonObject *args, JsonNode **ret,
                                 Error **errp)
{
    static const char *const known[] = { "state", NULL };
    const char *state;

    if (!qmp_args_check(args, known, errp)) {
        return;
    }
    state = qmp_arg_str(args, "state", errp);
    if (state) {
        migration_continue(state, errp);
    }
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

static void qmp_query_migrate(JsonObject *args, JsonNode **ret, Error **errp)
{
    static const char *const known[] = { NULL };
    MigrationState *s = migrate_get_current();
    MigrationStatus st = migration_get_status(s);
    JsonObject *obj;

    if (!qmp_args_check(args, known, errp)) {
        return;
    }
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
static bool yank_instance_check(JsonNode *node, guint i, Error **errp)
{
    JsonObject *inst;
    JsonNode *tnode;
    const char *type = NULL;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        error_setg(errp, "Invalid parameter type for 'instances[%u]', "
                   "expected: object", i);
        return false;
    }
    inst = json_node_get_object(node);
    tnode = json_object_get_member(inst, "type");
    if (tnode && JSON_NODE_HOLDS_VALUE(tnode) &&
        json_node_get_value_type(tnode) == G_TYPE_STRING) {
        type = json_node_get_string(tnode);
    }
    if (!type) {
        error_setg(errp, "Parameter 'instances[%u].type' is missing or not "
                   "a string", i);
        return false;
    }
    if (!strcmp(type, "migration")) {
        static const char *const known[] = { "type", NULL };

        if (!qmp_args_check(inst, known, errp)) {
            error_prepend(errp, "instances[%u]: ", i);
            return false;
        }
        if (!migration_yank_exists()) {
            error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                      "Instance 'migration' not found: no migration is "
                      "running");
            return false;
        }
        return true;
    }
    if (!strcmp(type, "block-node") || !strcmp(type, "chardev")) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Instance of type '%s' "
                  "not found: vmig has no %ss", type,
                  !strcmp(type, "chardev") ? "chardev" : "block node");
        return false;
    }
    error_setg(errp, "Parameter 'instances[%u].type' does not accept value "
               "'%s'", i, type);
    return false;
}

static void qmp_yank(JsonObject *args, JsonNode **ret, Error **errp)
{
    static const char *const known[] = { "instances", NULL };
    JsonNode *node;
    JsonArray *list;
    guint n;

    if (!qmp_args_check(args, known, errp)) {
        return;
    }
    node = json_object_get_member(args, "instances");
    if (!node || !JSON_NODE_HOLDS_ARRAY(node)) {
        error_setg(errp, "Parameter 'instances' expects an array");
        return;
    }
    list = json_node_get_array(node);
    n = json_array_get_length(list);
    /* All or nothing: every instance must exist before any is yanked. */
    for (guint i = 0; i < n; i++) {
        if (!yank_instance_check(json_array_get_element(list, i), i, errp)) {
            return;
        }
    }
    if (n) {
        migration_yank();
    }
}

static void qmp_query_yank(JsonObject *args, JsonNode **ret, Error **errp)
{
    static const char *const known[] = { NULL };
    JsonArray *list;

    if (!qmp_args_check(args, known, errp)) {
        return;
    }
    list = json_array_new();
    if (migration_yank_exists()) {
        JsonObject *inst = json_object_new();

        json_object_set_string_member(inst, "type", "migration");
        json_array_add_object_element(list, inst);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
}

static void migration_qmp_init(void)
{
    qmp_register_command("migrate", qmp_migrate, QMP_CMD_NONE);
    qmp_register_command("migrate-incoming", qmp_migrate_incoming,
                         QMP_CMD_NONE);
    qmp_register_command("migrate_cancel", qmp_migrate_cancel, QMP_CMD_NONE);
    qmp_register_command("migrate-start-postcopy", qmp_migrate_start_postcopy,
                         QMP_CMD_NONE);
    qmp_register_command("migrate-pause", qmp_migrate_pause, QMP_CMD_NONE);
    qmp_register_command("migrate-recover", qmp_migrate_recover,
                         QMP_CMD_NONE);
    qmp_register_command("migrate-continue", qmp_migrate_continue,
                         QMP_CMD_NONE);
    qmp_register_command("query-migrate", qmp_query_migrate, QMP_CMD_NONE);
    qmp_register_command("yank", qmp_yank, QMP_CMD_NONE);
    qmp_register_command("query-yank", qmp_query_yank, QMP_CMD_NONE);
}
qmp_init(migration_qmp_init);
