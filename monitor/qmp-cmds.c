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
#include "qapi/qapi-types.h"

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

void qmp_qmp_capabilities(const QapiQmpCapabilitiesArgs *args, JsonNode **ret,
                          Error **errp)
{
    QmpSession *session = qmp_session_current();

    if (session->negotiated) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command "
                  "ignored");
        return;
    }
    /* The greeting offers no capability, so any request is refused. */
    if (args->enable && args->enable->len) {
        error_setg(errp, "QMP capability '%s' is not offered by vmig",
                   qapi_enum_str(&qapi_type_QMPCapability,
                                 args->enable->v[0]));
        return;
    }
    session->negotiated = true;
}

void qmp_query_version(JsonNode **ret, Error **errp)
{
    *ret = object_node(qmp_version_object());
}

void qmp_query_commands(JsonNode **ret, Error **errp)
{
    g_autoptr(GPtrArray) names = NULL;
    JsonArray *list;

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

void qmp_query_name(JsonNode **ret, Error **errp)
{
    JsonObject *info;

    info = json_object_new();
    if (qemu_name) {
        json_object_set_string_member(info, "name", qemu_name);
    }
    *ret = object_node(info);
}

void qmp_query_uuid(JsonNode **ret, Error **errp)
{
    JsonObject *info;
    char text[UUID_STR_LEN];

    qemu_uuid_unparse(qemu_uuid, text);
    info = json_object_new();
    json_object_set_string_member(info, "UUID", text);
    *ret = object_node(info);
}

/* ---- Run state ---- */

void qmp_query_status(JsonNode **ret, Error **errp)
{
    JsonObject *info;

    info = json_object_new();
    json_object_set_string_member(info, "status",
                                  runstate_name(runstate_get()));
    json_object_set_boolean_member(info, "running", runstate_is_running());
    *ret = object_node(info);
}

void qmp_stop(JsonNode **ret, Error **errp)
{
    int err;

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

void qmp_cont(JsonNode **ret, Error **errp)
{
    RunState state = runstate_get();

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

void qmp_quit(JsonNode **ret, Error **errp)
{
    qmp_defer_after_reply(quit_after_reply, NULL);
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

void qmp_trace_event_get_state(const QapiTraceEventGetStateArgs *args,
                               JsonNode **ret, Error **errp)
{
    const char *name = args->name;
    JsonArray *list;

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

/* ignore-unavailable: QEMU scripts send it; every event is available. */
void qmp_trace_event_set_state(const QapiTraceEventSetStateArgs *args,
                               JsonNode **ret, Error **errp)
{
    TraceSetState set = { .enable = args->enable };
    const char *name = args->name;

    trace_event_foreach(name, set_trace_event_state, &set);
    if (!set.matched) {
        error_setg(errp, "No trace event matches '%s'", name);
    }
}

void qmp_x_query_log(JsonNode **ret, Error **errp)
{
    const char *file;
    JsonObject *info;

    file = qemu_log_get_file();
    info = json_object_new();
    if (file) {
        json_object_set_string_member(info, "file", file);
    } else {
        json_object_set_null_member(info, "file");
    }
    *ret = object_node(info);
}

/* ---- Introspection ---- */

void qmp_query_qmp_schema(JsonNode **ret, Error **errp)
{
    static JsonNode *schema;

    /* Parsed once; the text was made from the schema at build time. */
    if (!schema) {
        g_autoptr(JsonParser) parser = json_parser_new_immutable();

        if (!json_parser_load_from_data(parser, qapi_introspection_json, -1,
                                        NULL)) {
            g_assert_not_reached();
        }
        schema = json_node_copy(json_parser_get_root(parser));
    }
    *ret = json_node_copy(schema);
}
