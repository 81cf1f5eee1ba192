/*
 * Reading command arguments, with the same messages for every command.
 */
#include "qemu/osdep.h"
#include "monitor/qmp.h"

static bool node_holds(JsonNode *node, GType type)
{
    return JSON_NODE_HOLDS_VALUE(node) &&
           json_node_get_value_type(node) == type;
}

const char *qmp_arg_str(JsonObject *args, const char *name, Error **errp)
{
    JsonNode *node = json_object_get_member(args, name);

    if (!node) {
        error_setg(errp, "Parameter '%s' is missing", name);
        return NULL;
    }
    if (!node_holds(node, G_TYPE_STRING)) {
        error_setg(errp, "Parameter '%s' expects a string", name);
        return NULL;
    }
    return json_node_get_string(node);
}

const char *qmp_arg_str_opt(JsonObject *args, const char *name, const char *def,
                            Error **errp)
{
    JsonNode *node = json_object_get_member(args, name);

    if (!node) {
        return def;
    }
    if (!node_holds(node, G_TYPE_STRING)) {
        error_setg(errp, "Parameter '%s' expects a string", name);
        return NULL;
    }
    return json_node_get_string(node);
}

bool qmp_arg_bool_opt(JsonObject *args, const char *name, bool def, bool *val,
                      Error **errp)
{
    JsonNode *node = json_object_get_member(args, name);

    if (!node) {
        *val = def;
        return true;
    }
    if (!node_holds(node, G_TYPE_BOOLEAN)) {
        error_setg(errp, "Parameter '%s' expects a boolean (true or false)",
                   name);
        return false;
    }
    *val = json_node_get_boolean(node);
    return true;
}

bool qmp_arg_int_opt(JsonObject *args, const char *name, int64_t def,
                     int64_t *val, Error **errp)
{
    JsonNode *node = json_object_get_member(args, name);

    if (!node) {
        *val = def;
        return true;
    }
    if (!node_holds(node, G_TYPE_INT64)) {
        error_setg(errp, "Parameter '%s' expects an integer", name);
        return false;
    }
    *val = json_node_get_int(node);
    return true;
}

bool qmp_args_check(JsonObject *args, const char *const *known, Error **errp)
{
    GList *names = json_object_get_members(args);
    const char *unexpected = NULL;

    for (GList *m = names; m; m = m->next) {
        if (!known || !g_strv_contains(known, m->data)) {
            unexpected = m->data;
            break;
        }
    }
    g_list_free(names);
    if (unexpected) {
        error_setg(errp, "Parameter '%s' is unexpected", unexpected);
        return false;
    }
    return true;
}
