/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The generic marshaller: one walk of a JSON value against the schema's
 * type tables that checks it and fills the C value the handler gets.
 * Its messages are QEMU's (qobject input visitor) with the member's full
 * path: "Invalid parameter type for 'capabilities[0].state', expected:
 * boolean", "Parameter 'x' is unexpected", "Parameter 'y' is missing".
 */
#include "qemu/osdep.h"
#include "monitor/qapi.h"
#include "qapi/qapi-types.h"

/* The C layout of every generated list type. */
typedef struct QapiGenericList {
    size_t len;
    void *v;
} QapiGenericList;

static bool input_value(const QapiType *type, GString *path, JsonNode *node,
                        void *out, Error **errp);

static void *at(void *base, size_t offset)
{
    return base ? (char *)base + offset : NULL;
}

static const char *path_name(GString *path)
{
    return path->len ? path->str : "null";
}

static void path_push_member(GString *path, const char *name)
{
    if (path->len) {
        g_string_append_c(path, '.');
    }
    g_string_append(path, name);
}

static GType node_value_type(JsonNode *node)
{
    return JSON_NODE_HOLDS_VALUE(node) ? json_node_get_value_type(node)
                                       : G_TYPE_INVALID;
}

static bool type_error(GString *path, const char *expected, Error **errp)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s",
               path_name(path), expected);
    return false;
}

const char *qapi_enum_str(const QapiType *type, int value)
{
    return value >= 0 && value < type->nvalues ? type->values[value] : "?";
}

static int enum_lookup(const QapiType *type, const char *name)
{
    for (int i = 0; i < type->nvalues; i++) {
        if (!strcmp(type->values[i], name)) {
            return i;
        }
    }
    return -1;
}

/* The member @name of an object type or of its named base. */
static const QapiMember *find_member(const QapiType *type, const char *name)
{
    for (const QapiMember *m = type->members; m->name; m++) {
        if (!strcmp(m->name, name)) {
            return m;
        }
    }
    return type->base ? find_member(type->base, name) : NULL;
}

static const QapiVariant *find_variant(const QapiType *type, int tag_value)
{
    for (const QapiVariant *v = type->variants; v && v->tag_value >= 0; v++) {
        if (v->tag_value == tag_value) {
            return v;
        }
    }
    return NULL;
}

/* The variant a (checked) union object selects, or NULL. */
static const QapiVariant *object_variant(const QapiType *type,
                                         JsonObject *obj)
{
    const QapiMember *tag;
    JsonNode *node;

    if (!type->variants) {
        return NULL;
    }
    tag = find_member(type, type->tag);
    node = json_object_get_member(obj, type->tag);
    if (!tag || !node || node_value_type(node) != G_TYPE_STRING) {
        return NULL;
    }
    return find_variant(type, enum_lookup(tag->type,
                                          json_node_get_string(node)));
}

/* Members of @type (base first, then its own, then the variant's). */
static bool input_members(const QapiType *type, GString *path,
                          JsonObject *obj, void *out, Error **errp)
{
    const QapiVariant *variant;

    if (type->base && !input_members(type->base, path, obj, out, errp)) {
        return false;
    }
    for (const QapiMember *m = type->members; m->name; m++) {
        JsonNode *node = json_object_get_member(obj, m->name);
        size_t len = path->len;
        bool ok = true;

        path_push_member(path, m->name);
        if (!node) {
            if (!m->optional) {
                error_setg(errp, "Parameter '%s' is missing", path->str);
                ok = false;
            }
        } else {
            ok = input_value(m->type, path, node, at(out, m->offset), errp);
            if (ok && out && m->has_offset != QAPI_NO_HAS) {
                *(bool *)at(out, m->has_offset) = true;
            }
        }
        g_string_truncate(path, len);
        if (!ok) {
            return false;
        }
    }
    variant = object_variant(type, obj);
    return !variant || input_members(variant->type, path, obj,
                                     at(out, variant->offset), errp);
}

static bool object_knows(const QapiType *type, JsonObject *obj,
                         const char *name)
{
    const QapiVariant *variant = object_variant(type, obj);

    return find_member(type, name) ||
           (variant && object_knows(variant->type, obj, name));
}

static bool input_object(const QapiType *type, GString *path,
                         JsonObject *obj, void *out, Error **errp)
{
    g_autoptr(GList) names = NULL;

    if (!input_members(type, path, obj, out, errp)) {
        return false;
    }
    names = json_object_get_members(obj);
    for (GList *n = names; n; n = n->next) {
        if (!object_knows(type, obj, n->data)) {
            size_t len = path->len;

            path_push_member(path, n->data);
            error_setg(errp, "Parameter '%s' is unexpected", path->str);
            g_string_truncate(path, len);
            return false;
        }
    }
    return true;
}

static bool input_array(const QapiType *type, GString *path, JsonArray *arr,
                        void *out, Error **errp)
{
    const QapiType *elem = type->element;
    guint n = json_array_get_length(arr);
    QapiGenericList *list = NULL;

    if (out) {
        list = g_new0(QapiGenericList, 1);
        list->len = n;
        list->v = g_malloc0_n(MAX(n, 1), elem->size);
        *(QapiGenericList **)out = list;
    }
    for (guint i = 0; i < n; i++) {
        size_t len = path->len;
        bool ok;

        g_string_append_printf(path, "[%u]", i);
        ok = input_value(elem, path, json_array_get_element(arr, i),
                         list ? (char *)list->v + i * elem->size : NULL,
                         errp);
        g_string_truncate(path, len);
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Which alternative takes a JSON value of this kind. */
static bool alternative_takes(const QapiType *alt, JsonNode *node)
{
    GType vt = node_value_type(node);

    switch (alt->kind) {
    case QAPI_KIND_STR:
    case QAPI_KIND_ENUM:
        return vt == G_TYPE_STRING;
    case QAPI_KIND_BOOL:
        return vt == G_TYPE_BOOLEAN;
    case QAPI_KIND_INT:
    case QAPI_KIND_UINT:
        return vt == G_TYPE_INT64;
    case QAPI_KIND_NUMBER:
        return vt == G_TYPE_INT64 || vt == G_TYPE_DOUBLE;
    case QAPI_KIND_NULL:
        return JSON_NODE_HOLDS_NULL(node);
    case QAPI_KIND_OBJECT:
        return JSON_NODE_HOLDS_OBJECT(node);
    case QAPI_KIND_ARRAY:
        return JSON_NODE_HOLDS_ARRAY(node);
    case QAPI_KIND_ANY:
    case QAPI_KIND_ALTERNATE:
        return true;
    }
    return false;
}

static bool input_value(const QapiType *type, GString *path, JsonNode *node,
                        void *out, Error **errp)
{
    GType vt = node_value_type(node);
    int64_t i;

    switch (type->kind) {
    case QAPI_KIND_STR:
        if (vt != G_TYPE_STRING) {
            return type_error(path, "string", errp);
        }
        if (out) {
            *(const char **)out = json_node_get_string(node);
        }
        return true;
    case QAPI_KIND_BOOL:
        if (vt != G_TYPE_BOOLEAN) {
            return type_error(path, "boolean", errp);
        }
        if (out) {
            *(bool *)out = json_node_get_boolean(node);
        }
        return true;
    case QAPI_KIND_INT:
    case QAPI_KIND_UINT:
        if (vt != G_TYPE_INT64) {
            return type_error(path, "integer", errp);
        }
        i = json_node_get_int(node);
        if (type->kind == QAPI_KIND_INT ? i < type->min ||
                                          i > (int64_t)type->max
                                        : i < 0 || (uint64_t)i > type->max) {
            error_setg(errp, "Parameter '%s' expects %s", path_name(path),
                       type->name);
            return false;
        }
        if (out && type->kind == QAPI_KIND_INT) {
            *(int64_t *)out = i;
        } else if (out) {
            *(uint64_t *)out = i;
        }
        return true;
    case QAPI_KIND_NUMBER:
        if (vt != G_TYPE_DOUBLE && vt != G_TYPE_INT64) {
            return type_error(path, "number", errp);
        }
        if (out) {
            *(double *)out = vt == G_TYPE_DOUBLE ? json_node_get_double(node)
                                                 : json_node_get_int(node);
        }
        return true;
    case QAPI_KIND_NULL:
        if (!JSON_NODE_HOLDS_NULL(node)) {
            return type_error(path, "null", errp);
        }
        return true;
    case QAPI_KIND_ANY:
        if (out) {
            *(JsonNode **)out = node;
        }
        return true;
    case QAPI_KIND_ENUM: {
        int value;

        if (vt != G_TYPE_STRING) {
            return type_error(path, "string", errp);
        }
        value = enum_lookup(type, json_node_get_string(node));
        if (value < 0) {
            error_setg(errp, "Parameter '%s' does not accept value '%s'",
                       path_name(path), json_node_get_string(node));
            return false;
        }
        if (out) {
            *(int *)out = value;
        }
        return true;
    }
    case QAPI_KIND_OBJECT:
        if (!JSON_NODE_HOLDS_OBJECT(node)) {
            return type_error(path, "object", errp);
        }
        return input_object(type, path, json_node_get_object(node), out,
                            errp);
    case QAPI_KIND_ARRAY:
        if (!JSON_NODE_HOLDS_ARRAY(node)) {
            return type_error(path, "array", errp);
        }
        return input_array(type, path, json_node_get_array(node), out, errp);
    case QAPI_KIND_ALTERNATE:
        for (const QapiType *const *alt = type->alternatives; *alt; alt++) {
            if (alternative_takes(*alt, node)) {
                if (!input_value(*alt, path, node, NULL, errp)) {
                    return false;
                }
                if (out) {
                    *(JsonNode **)out = node;
                }
                return true;
            }
        }
        return type_error(path, type->name, errp);
    }
    g_assert_not_reached();
}

bool qapi_input(const QapiType *type, const char *name, JsonNode *node,
                void *out, Error **errp)
{
    g_autoptr(GString) path = g_string_new(name);

    if (!input_value(type, path, node, out, errp)) {
        if (out) {
            qapi_input_free(type, out);
        }
        return false;
    }
    return true;
}

void qapi_input_free(const QapiType *type, void *value)
{
    if (type->kind == QAPI_KIND_ARRAY) {
        QapiGenericList *list = *(QapiGenericList **)value;

        if (!list) {
            return;
        }
        for (size_t i = 0; i < list->len; i++) {
            qapi_input_free(type->element,
                            (char *)list->v + i * type->element->size);
        }
        g_free(list->v);
        g_free(list);
        *(QapiGenericList **)value = NULL;
        return;
    }
    if (type->kind != QAPI_KIND_OBJECT) {
        return;
    }
    if (type->base) {
        qapi_input_free(type->base, value);
    }
    for (const QapiMember *m = type->members; m->name; m++) {
        qapi_input_free(m->type, at(value, m->offset));
    }
    if (type->variants) {
        /* The tag is filled before any variant member. */
        const QapiMember *tag = find_member(type, type->tag);
        const QapiVariant *v = find_variant(type,
                                            *(int *)at(value, tag->offset));

        if (v) {
            qapi_input_free(v->type, at(value, v->offset));
        }
    }
}

const QapiCommand *qapi_command_lookup(const char *name)
{
    for (size_t i = 0; i < qapi_commands_count; i++) {
        if (!strcmp(qapi_commands[i].name, name)) {
            return &qapi_commands[i];
        }
    }
    return NULL;
}

const QapiEvent *qapi_event_lookup(const char *name)
{
    for (size_t i = 0; i < qapi_events_count; i++) {
        if (!strcmp(qapi_events[i].name, name)) {
            return &qapi_events[i];
        }
    }
    return NULL;
}
