/*
 * Generic QMP commands: negotiation, version and command queries, run
 * state (query-status, stop, cont, quit), and trace / log state.
 */
#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/trace.h"
#include "qemu/uuid.h"
#include "migration/misc.h"
#include "system/runstate.h"
#include "system/system.h"
#include "monitor/monitor-internal.h"

static const char *const no_args[] = { NULL };

static JsonNode *object_node(JsonObject *obj)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(node, obj);
    return node;
}

static JsonNode *array_node(JsonArray *arr)
{
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);

    json_node_take_array(node, arr);
    return node;
}

/* ---- Negotiation and queries ---- */

static void qmp_capabilities(JsonObject *args, JsonNode **ret, Error **errp)
{
    static const char *const known[] = { "enable", NULL };
    QmpSession *session = qmp_session_current();
    JsonNode *enable;

    if (session->negotiated) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command "
                  "ignored");
        return;
    }
    if (!qmp_args_check(args, known, errp)) {
        return;
    }
    enable = json_object_get_member(args, "enable");
    if (enable) {
        JsonArray *caps;

        if (!JSON_NODE_HOLDS_ARRAY(enable)) {
            error_setg(errp, "Parameter 'enable' expects an array of "
                       "capability names");
            return;
        }
        /* The greeting offers no capability, so any request is refused. */
        caps = json_node_get_array(enable);
        if (json_array_get_length(caps)) {
            JsonNode *cap = json_array_get_element(caps, 0);
            const char *name = JSON_NODE_HOLDS_VALUE(cap) &&
                json_node_get_value_type(cap) == G_TYPE_STRING ?
                json_node_get_string(cap) : "?";
            error_setg(errp, "QMP capability '%s' is not offered by vmig",
                       name);
            return;
        }
    }
    session->negotiated = true;
}

static void qmp_query_version(JsonObject *args, JsonNode **ret, Error **errp)
{
    if (qmp_args_check(args, no_args, errp)) {
        *ret = object_node(qmp_version_object());
    }
}

static void qmp_query_commands(JsonObject *args, JsonNode **ret, Error **errp)
{
    g_autoptr(GPtrArray) names = NULL;
    JsonArray *list;

    if (!qmp_args_check(args, no_args, errp)) {
        return;
    }
    names = qmp_command_names();
    list = json_array_sized_new(names->len);
    for (guint i = 0; i < names->len; i++) {
        JsonObject *entry = json_object_new();
        json_object_set_string_member(entry, "name",
                                      g_ptr_array_index(names, i));
        json_array_add_object_element(list, entry);
    }
    *ret = array_node(list);
}

static void qmp_query_name(JsonObject *args, JsonNode **ret, Error **errp)
{
    JsonObject *info;

    if (!qmp_args_check(args, no_args, errp)) {
        return;
    }
    info = json_object_new();
    if (qemu_name) {
        json_object_set_string_member(info, "name", qemu_name);
    }
    *ret = object_node(info);
}

static void qmp_query_uuid(JsonObject *args, JsonNode **ret, Error **errp)
{
    JsonObject *info;
    char text[UUID_STR_LEN];

    if (!qmp_args_check(args, no_args, errp)) {
        return;
    }
    qemu_uuid_unparse(qemu_uuid, text);
    info = json_object_new();
    json_object_set_string_member(info, "UUID", text);
    *ret = object_node(info);
}

/* ---- Run state ---- */

static void qmp_query_status(JsonObject *args, JsonNode **ret, Error **errp)
{
    JsonObject *info;

    if (!qmp_args_check(args, no_args, errp)) {
        return;
    }
    info = json_object_new();
    json_object_set_string_member(info, "status",
                                  runstate_name(runstate_get()));
    json_object_set_boolean_member(info, "running", runstate_is_running());
    *ret = object_node(info);
}

static void qmp_stop(JsonObject *args, JsonNode **ret, Error **errp)
{
    int err;

    if (!qmp_args_check(args, no_args, errp)) {
        return;
    }
    /*
     * As in QEMU: on a destination still waiting for its stream, stop
     * means "do not start when the migration completes"; on any other
     * VM that does not run, it changes nothing.
     */
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        migration_incoming_set_autostart(false);
        return;
    }
    if (!runstate_is_running()) {
        return;
    }
    err = vm_stop(RUN_STATE_PAUSED);
    if (err < 0) {
        /* The VM is stopped all the same; the device said why already. */
        warn_report("stop: a device failed to follow the VM: %s",
                    g_strerror(-err));
    }
}

static void qmp_cont(JsonObject *args, JsonNode **ret, Error **errp)
{
    RunState state = runstate_get();

    if (!qmp_args_check(args, no_args, errp)) {
        return;
    }
    switch (state) {
    case RUN_STATE_RUNNING:
        return;
    case RUN_STATE_PRELAUNCH:
    case RUN_STATE_PAUSED:
    case RUN_STATE_POSTMIGRATE:
        vm_start();
        return;
    case RUN_STATE_INMIGRATE:
        /* As in QEMU: start once the incoming migration completes. */
        migration_incoming_set_autostart(true);
        return;
    case RUN_STATE_FINISH_MIGRATE:
        error_setg(errp, "cont: the migration has not finished yet; cancel "
                   "it or wait for it to complete");
        return;
    case RUN_STATE_RESTORE_VM:
        error_setg(errp, "cont: the VM state is still being restored");
        return;
    default:
        error_setg(errp, "cont: the VM cannot be resumed from state '%s'",
                   runstate_name(state));
        return;
    }
}

static void quit_after_reply(void *opaque)
{
    JsonObject *data = json_object_new();

    json_object_set_boolean_member(data, "guest", false);
    json_object_set_string_member(data, "reason", "host-qmp-quit");
    qmp_event_emit("SHUTDOWN", data);
    main_loop_request_exit(0);
}

static void qmp_quit(JsonObject *args, JsonNode **ret, Error **errp)
{
    if (qmp_args_check(args, no_args, errp)) {
        qmp_defer_after_reply(quit_after_reply, NULL);
    }
}

/* ---- Trace points and the log ---- */

static void add_trace_event_info(TraceEvent *ev, void *opaque)
{
    JsonArray *list = opaque;
    JsonObject *info = json_object_new();
    bool enabled = __atomic_load_n(&ev->enabled, __ATOMIC_RELAXED);

    json_object_set_string_member(info, "name", ev->name);
    json_object_set_string_member(info, "state",
                                  enabled ? "enabled" : "disabled");
    json_array_add_object_element(list, info);
}

static bool is_pattern(const char *name)
{
    return strpbrk(name, "*?") != NULL;
}

static void qmp_trace_event_get_state(JsonObject *args, JsonNode **ret,
                                      Error **errp)
{
    static const char *const known[] = { "name", NULL };
    JsonArray *list;
    const char *name;

    if (!qmp_args_check(args, known, errp) ||
        !(name = qmp_arg_str(args, "name", errp))) {
        return;
    }
    list = json_array_new();
    trace_event_foreach(name, add_trace_event_info, list);
    /* A pattern may match nothing; a plain name must name an event. */
    if (!json_array_get_length(list) && !is_pattern(name)) {
        json_array_unref(list);
        error_setg(errp, "No trace event named '%s'", name);
        return;
    }
    *ret = array_node(list);
}

typedef struct TraceSetState {
    bool enable;
    unsigned matched;
} TraceSetState;

static void set_trace_event_state(TraceEvent *ev, void *opaque)
{
    TraceSetState *set = opaque;

    __atomic_store_n(&ev->enabled, set->enable, __ATOMIC_RELAXED);
    set->matched++;
}

static void qmp_trace_event_set_state(JsonObject *args, JsonNode **ret,
                                      Error **errp)
{
    /* ignore-unavailable: QEMU scripts send it; every event is available. */
    static const char *const known[] = { "name", "enable", "ignore-unavailable",
                                          NULL };
    TraceSetState set = { 0 };
    bool ignore_unavailable;
    const char *name;

    if (!qmp_args_check(args, known, errp) ||
        !(name = qmp_arg_str(args, "name", errp))) {
        return;
    }
    if (!json_object_has_member(args, "enable")) {
        error_setg(errp, "Parameter 'enable' is missing");
        return;
    }
    if (!qmp_arg_bool_opt(args, "enable", false, &set.enable, errp) ||
        !qmp_arg_bool_opt(args, "ignore-unavailable", false,
                          &ignore_unavailable, errp)) {
        return;
    }
    trace_event_foreach(name, set_trace_event_state, &set);
    if (!set.matched) {
        error_setg(errp, "No trace event matches '%s'", name);
    }
}

static void qmp_x_query_log(JsonObject *args, JsonNode **ret, Error **errp)
{
    const char *file;
    JsonObject *info;

    if (!qmp_args_check(args, no_args, errp)) {
        return;
    }
    file = qemu_log_get_file();
    info = json_object_new();
    if (file) {
        json_object_set_string_member(info, "file", file);
    } else {
        json_object_set_null_member(info, "file");
    }
    *ret = object_node(info);
}

static void qmp_register_generic_commands(void)
{
    qmp_register_command("qmp_capabilities", qmp_capabilities,
                         QMP_CMD_NEGOTIATION);
    qmp_register_command("query-version", qmp_query_version, QMP_CMD_NONE);
    qmp_register_command("query-commands", qmp_query_commands, QMP_CMD_NONE);
    qmp_register_command("query-name", qmp_query_name, QMP_CMD_NONE);
    qmp_register_command("query-uuid", qmp_query_uuid, QMP_CMD_NONE);
    qmp_register_command("query-status", qmp_query_status, QMP_CMD_NONE);
    qmp_register_command("stop", qmp_stop, QMP_CMD_NONE);
    qmp_register_command("cont", qmp_cont, QMP_CMD_NONE);
    qmp_register_command("quit", qmp_quit, QMP_CMD_NONE);
    qmp_register_command("trace-event-get-state", qmp_trace_event_get_state,
                         QMP_CMD_NONE);
    qmp_register_command("trace-event-set-state", qmp_trace_event_set_state,
                         QMP_CMD_NONE);
    qmp_register_command("x-query-log", qmp_x_query_log, QMP_CMD_NONE);
}
qmp_init(qmp_register_generic_commands);
