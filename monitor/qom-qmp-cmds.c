/*
 * qom-list, qom-get, qom-set: the object tree over QMP.
 *
 * Property values cross between JSON and PropValue by the property's
 * type: strings, booleans, integers for U32 / U64 / SIZE, and "on",
 * "off", "auto" for OnOffAuto.  Like QEMU, every object also shows a
 * read-only "type" property holding its type name.
 */
#include "qemu/osdep.h"
#include "qom/object.h"
#include "monitor/monitor-internal.h"
#include "qapi/qapi-types.h"

/* An object's "type" unless a real property of that name hides it. */
static bool is_type_pseudo_property(Object *obj, const char *name)
{
    return !strcmp(name, "type") && !object_property_find(obj, "type");
}

void qmp_qom_list(const QapiQomListArgs *args, JsonNode **ret, Error **errp)
{
    Object *obj = object_resolve_path(args->path, errp);
    JsonArray *list;

    if (!obj) {
        return;
    }
    list = json_array_new();
    if (!object_property_find(obj, "type")) {
        JsonObject *info = json_object_new();
        json_object_set_string_member(info, "name", "type");
        json_object_set_string_member(info, "type", "string");
        json_array_add_object_element(list, info);
    }
    for (guint i = 0; i < obj->props->len; i++) {
        ObjectProperty *prop = g_ptr_array_index(obj->props, i);
        JsonObject *info = json_object_new();

        json_object_set_string_member(info, "name", prop->name);
        if (prop->type == PROP_TYPE_CHILD) {
            g_autofree char *type = g_strdup_printf("child<%s>",
                                                    object_type(prop->child));
            json_object_set_string_member(info, "type", type);
        } else {
            json_object_set_string_member(info, "type",
                                          prop_type_name(prop->type));
        }
        if (prop->desc) {
            json_object_set_string_member(info, "description", prop->desc);
        }
        json_array_add_object_element(list, info);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
}

static JsonNode *prop_value_to_json(PropertyType type, PropValue *val)
{
    JsonNode *node = json_node_new(JSON_NODE_VALUE);

    switch (type) {
    case PROP_TYPE_STR:
    case PROP_TYPE_CHILD:
        /* An unset string reads as "", as QEMU's string properties do. */
        json_node_set_string(node, val->str ? val->str : "");
        g_free(val->str);
        val->str = NULL;
        break;
    case PROP_TYPE_BOOL:
        json_node_set_boolean(node, val->b);
        break;
    case PROP_TYPE_U32:
    case PROP_TYPE_U64:
    case PROP_TYPE_SIZE:
        /* json-glib integers are signed: beyond that, a (rounded) double. */
        if (val->u64 > INT64_MAX) {
            json_node_set_double(node, (double)val->u64);
        } else {
            json_node_set_int(node, (int64_t)val->u64);
        }
        break;
    case PROP_TYPE_ONOFFAUTO:
        json_node_set_string(node, onoffauto_str(val->ona));
        break;
    }
    return node;
}

void qmp_qom_get(const QapiQomGetArgs *args, JsonNode **ret, Error **errp)
{
    Object *obj = object_resolve_path(args->path, errp);
    const char *name = args->property;
    ObjectProperty *prop;
    PropValue val;

    if (!obj) {
        return;
    }
    if (is_type_pseudo_property(obj, name)) {
        *ret = json_node_new(JSON_NODE_VALUE);
        json_node_set_string(*ret, object_type(obj));
        return;
    }
    /* object_property_get() reports a missing property by name. */
    if (!object_property_get(obj, name, &val, errp)) {
        return;
    }
    prop = object_property_find(obj, name);
    *ret = prop_value_to_json(prop->type, &val);
}

static bool json_holds(JsonNode *node, GType type)
{
    return JSON_NODE_HOLDS_VALUE(node) &&
           json_node_get_value_type(node) == type;
}

/*
 * Convert @value for @prop.  val->str, when set, is borrowed from
 * @value (object_property_set() copies it).
 */
static bool prop_value_from_json(Object *obj, ObjectProperty *prop,
                                 JsonNode *value, PropValue *val, Error **errp)
{
    const char *type = object_type(obj);
    int64_t num;

    switch (prop->type) {
    case PROP_TYPE_STR:
        if (!json_holds(value, G_TYPE_STRING)) {
            error_setg(errp, "Property '%s.%s' expects a string", type,
                       prop->name);
            return false;
        }
        val->str = (char *)json_node_get_string(value);
        return true;
    case PROP_TYPE_BOOL:
        if (!json_holds(value, G_TYPE_BOOLEAN)) {
            error_setg(errp, "Property '%s.%s' expects a boolean", type,
                       prop->name);
            return false;
        }
        val->b = json_node_get_boolean(value);
        return true;
    case PROP_TYPE_U32:
    case PROP_TYPE_U64:
    case PROP_TYPE_SIZE:
        if (!json_holds(value, G_TYPE_INT64) ||
            (num = json_node_get_int(value)) < 0 ||
            (prop->type == PROP_TYPE_U32 && num > UINT32_MAX)) {
            error_setg(errp, "Property '%s.%s' expects %s", type, prop->name,
                       prop->type == PROP_TYPE_U32 ?
                       "an integer from 0 to 4294967295" :
                       "a non-negative integer");
            return false;
        }
        val->u64 = num;
        return true;
    case PROP_TYPE_ONOFFAUTO:
        if (!json_holds(value, G_TYPE_STRING) ||
            !qemu_parse_onoffauto(json_node_get_string(value), &val->ona)) {
            error_setg(errp, "Property '%s.%s' expects \"on\", \"off\" or "
                       "\"auto\"", type, prop->name);
            return false;
        }
        return true;
    case PROP_TYPE_CHILD:
        break;
    }
    error_setg(errp, "Property '%s.%s' is read-only", type, prop->name);
    return false;
}

void qmp_qom_set(const QapiQomSetArgs *args, JsonNode **ret, Error **errp)
{
    Object *obj = object_resolve_path(args->path, errp);
    const char *name = args->property;
    PropValue val = { 0 };
    ObjectProperty *prop;

    if (!obj) {
        return;
    }
    if (is_type_pseudo_property(obj, name)) {
        error_setg(errp, "Property '%s.type' is read-only", object_type(obj));
        return;
    }
    prop = object_property_find(obj, name);
    if (!prop) {
        error_setg(errp, "Property '%s.%s' not found", object_type(obj), name);
        return;
    }
    if (!prop_value_from_json(obj, prop, args->value, &val, errp)) {
        return;
    }
    object_property_set(obj, name, &val, errp);
}
