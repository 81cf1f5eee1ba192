/*
 * Unit tests of qom-list, qom-get and qom-set (monitor/qom-qmp-cmds.c):
 * JSON <-> property value conversion for every property type, the
 * "type" pseudo-property, child links, and the errors.
 */
#include "qemu/osdep.h"
#include "qom/object.h"
#include "monitor/monitor-internal.h"

#define TYPE_TEST_OBJ "x-test-qmp-obj"

typedef struct TestObj {
    Object parent;
    char *label;
    bool flag;
    uint32_t count;
    uint64_t big;
    uint64_t size;
    OnOffAuto mode;
    bool fixed;
} TestObj;

static bool count_check(Object *obj, const Property *prop, const PropValue *val,
                        Error **errp)
{
    if (val->u64 == 13) {
        error_setg(errp, "count: 13 is unlucky");
        return false;
    }
    return true;
}

static const Property test_obj_props[] = {
    DEFINE_PROP("label", PROP_TYPE_STR, TestObj, label, "hello", "a label"),
    DEFINE_PROP_RT("flag", PROP_TYPE_BOOL, TestObj, flag, "off", NULL),
    { .name = "count", .type = PROP_TYPE_U32, .offset = offsetof(TestObj, count),
      .defval = "7", .runtime = true, .check = count_check },
    DEFINE_PROP_RT("big", PROP_TYPE_U64, TestObj, big, "0", NULL),
    DEFINE_PROP_RT("size", PROP_TYPE_SIZE, TestObj, size, "1M", NULL),
    DEFINE_PROP_RT("mode", PROP_TYPE_ONOFFAUTO, TestObj, mode, "auto", NULL),
    DEFINE_PROP("fixed", PROP_TYPE_BOOL, TestObj, fixed, "on", NULL),
    { 0 }
};

/* A computed, read-only property: twice the count. */
static bool get_double_count(Object *obj, ObjectProperty *prop, PropValue *val,
                             Error **errp)
{
    val->u64 = 2ULL * ((TestObj *)obj)->count;
    return true;
}

static bool test_obj_realize(Object *obj, Error **errp)
{
    object_property_add(obj, "double-count", PROP_TYPE_U64, "count times two",
                        get_double_count, NULL, NULL);
    return true;
}

static const ObjectClass test_obj_class = {
    .name = TYPE_TEST_OBJ,
    .desc = "object for QMP qom-* tests",
    .instance_size = sizeof(TestObj),
    .props = test_obj_props,
    .realize = test_obj_realize,
};

static void register_test_types(void)
{
    type_register(&test_obj_class);
}
type_init(register_test_types);

static QmpSession session;

static JsonObject *qom(const char *cmd, const char *args_json)
{
    g_autofree char *req = g_strdup_printf("{\"execute\": \"%s\", "
                                           "\"arguments\": %s}", cmd, args_json);
    g_autofree char *reply = qmp_handle_message(&session, req, strlen(req));
    g_autoptr(JsonParser) parser = json_parser_new();

    g_assert_true(json_parser_load_from_data(parser, reply, -1, NULL));
    return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

/* qom-get that must succeed; returns the value (new reference). */
static JsonNode *get(const char *path, const char *prop)
{
    g_autofree char *args = g_strdup_printf("{\"path\": \"%s\", \"property\": "
                                            "\"%s\"}", path, prop);
    g_autoptr(JsonObject) reply = qom("qom-get", args);

    if (!json_object_has_member(reply, "return")) {
        g_error("qom-get %s %s: %s", path, prop,
                json_object_get_string_member(
                    json_object_get_object_member(reply, "error"), "desc"));
    }
    return json_node_copy(json_object_get_member(reply, "return"));
}

static int64_t get_int(const char *path, const char *prop)
{
    g_autoptr(JsonNode) v = get(path, prop);

    g_assert_cmpint(json_node_get_value_type(v), ==, G_TYPE_INT64);
    return json_node_get_int(v);
}

static char *get_str(const char *path, const char *prop)
{
    g_autoptr(JsonNode) v = get(path, prop);

    g_assert_cmpint(json_node_get_value_type(v), ==, G_TYPE_STRING);
    return g_strdup(json_node_get_string(v));
}

static bool get_bool(const char *path, const char *prop)
{
    g_autoptr(JsonNode) v = get(path, prop);

    g_assert_cmpint(json_node_get_value_type(v), ==, G_TYPE_BOOLEAN);
    return json_node_get_boolean(v);
}

/* qom-set of @prop on obj0 to @value_json; NULL @error_part: must succeed. */
static void set(const char *prop, const char *value_json, const char *error_part)
{
    g_autofree char *args = g_strdup_printf(
        "{\"path\": \"/objects/obj0\", \"property\": \"%s\", \"value\": %s}",
        prop, value_json);
    g_autoptr(JsonObject) reply = qom("qom-set", args);
    JsonObject *err = json_object_has_member(reply, "error") ?
        json_object_get_object_member(reply, "error") : NULL;

    if (!error_part) {
        if (err) {
            g_error("qom-set %s %s: %s", prop, value_json,
                    json_object_get_string_member(err, "desc"));
        }
        g_assert_cmpuint(json_object_get_size(
                             json_object_get_object_member(reply, "return")), ==, 0);
        return;
    }
    if (!err) {
        g_error("qom-set %s %s succeeded, expected '%s'", prop, value_json,
                error_part);
    }
    if (!strstr(json_object_get_string_member(err, "desc"), error_part)) {
        g_error("qom-set %s %s: '%s' lacks '%s'", prop, value_json,
                json_object_get_string_member(err, "desc"), error_part);
    }
}

static void setup(void)
{
    const char *caps = "{\"execute\": \"qmp_capabilities\"}";
    g_autofree char *reply = NULL;

    qmp_session_init(&session);
    reply = qmp_handle_message(&session, caps, strlen(caps));
    g_assert_true(session.negotiated);
    g_assert_nonnull(object_create(TYPE_TEST_OBJ, object_get_container("/objects"),
                                   "obj0", NULL, &error_abort));
}

static const char *list_type_of(JsonArray *list, const char *name)
{
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *info = json_array_get_object_element(list, i);
        if (!strcmp(json_object_get_string_member(info, "name"), name)) {
            return json_object_get_string_member(info, "type");
        }
    }
    return NULL;
}

static void test_qom_list(void)
{
    g_autoptr(JsonObject) reply = qom("qom-list", "{\"path\": \"/objects/obj0\"}");
    g_autoptr(JsonObject) parent = qom("qom-list", "{\"path\": \"/objects\"}");
    g_autoptr(JsonObject) partial = qom("qom-list", "{\"path\": \"obj0\"}");
    JsonArray *list = json_object_get_array_member(reply, "return");

    g_assert_nonnull(list);
    /* "type" first, then the properties in order. */
    g_assert_cmpuint(json_array_get_length(list), ==, 9);
    g_assert_cmpstr(json_object_get_string_member(
                        json_array_get_object_element(list, 0), "name"), ==, "type");
    g_assert_cmpstr(list_type_of(list, "type"), ==, "string");
    g_assert_cmpstr(list_type_of(list, "label"), ==, prop_type_name(PROP_TYPE_STR));
    g_assert_cmpstr(list_type_of(list, "flag"), ==, "bool");
    g_assert_cmpstr(list_type_of(list, "count"), ==, "uint32");
    g_assert_cmpstr(list_type_of(list, "big"), ==, "uint64");
    g_assert_cmpstr(list_type_of(list, "size"), ==, "size");
    g_assert_cmpstr(list_type_of(list, "mode"), ==, "OnOffAuto");
    g_assert_cmpstr(list_type_of(list, "double-count"), ==, "uint64");
    g_assert_cmpstr(json_object_get_string_member(
                        json_array_get_object_element(list, 1), "description"),
                    ==, "a label");

    list = json_object_get_array_member(parent, "return");
    g_assert_cmpstr(list_type_of(list, "obj0"), ==, "child<" TYPE_TEST_OBJ ">");
    g_assert_true(json_node_equal(json_object_get_member(reply, "return"),
                                  json_object_get_member(partial, "return")));

    {
        g_autoptr(JsonObject) bad = qom("qom-list", "{\"path\": \"/objects/nope\"}");
        JsonObject *err = json_object_get_object_member(bad, "error");
        g_assert_cmpstr(json_object_get_string_member(err, "class"), ==,
                        "DeviceNotFound");
    }
    {
        g_autoptr(JsonObject) bad = qom("qom-list", "{}");
        JsonObject *err = json_object_get_object_member(bad, "error");
        g_assert_cmpstr(json_object_get_string_member(err, "desc"), ==,
                        "Parameter 'path' is missing");
    }
}

static void test_qom_get(void)
{
    g_autofree char *label = get_str("/objects/obj0", "label");
    g_autofree char *mode = get_str("/objects/obj0", "mode");
    g_autofree char *type = get_str("obj0", "type");
    g_autofree char *child = get_str("/objects", "obj0");
    g_autofree char *root_type = get_str("/objects", "type");

    g_assert_cmpstr(label, ==, "hello");
    g_assert_false(get_bool("/objects/obj0", "flag"));
    g_assert_true(get_bool("/objects/obj0", "fixed"));
    g_assert_cmpint(get_int("/objects/obj0", "count"), ==, 7);
    g_assert_cmpint(get_int("/objects/obj0", "size"), ==, 1 * MiB);
    g_assert_cmpint(get_int("/objects/obj0", "double-count"), ==, 14);
    g_assert_cmpstr(mode, ==, "auto");
    g_assert_cmpstr(type, ==, TYPE_TEST_OBJ);
    g_assert_cmpstr(child, ==, "/objects/obj0");
    g_assert_nonnull(root_type);

    {
        g_autoptr(JsonObject) bad = qom("qom-get", "{\"path\": \"/objects/obj0\", "
                                        "\"property\": \"nope\"}");
        JsonObject *err = json_object_get_object_member(bad, "error");
        g_assert_cmpstr(json_object_get_string_member(err, "class"), ==,
                        "GenericError");
        g_assert_nonnull(strstr(json_object_get_string_member(err, "desc"),
                                "'" TYPE_TEST_OBJ ".nope' not found"));
    }
}

static void test_qom_set(void)
{
    Object *obj = object_resolve_path("/objects/obj0", &error_abort);
    g_autofree char *label = NULL;
    g_autofree char *mode = NULL;
    PropValue huge = { .u64 = UINT64_MAX };

    /* Strings are never runtime properties (threads may be reading them). */
    set("label", "\"renamed\"", "cannot be changed while the object is in use");
    label = get_str("/objects/obj0", "label");
    g_assert_cmpstr(label, ==, "hello");
    set("label", "5", "expects a string");

    set("flag", "true", NULL);
    g_assert_true(get_bool("/objects/obj0", "flag"));
    set("flag", "\"on\"", "expects a boolean");

    set("count", "4294967295", NULL);
    g_assert_cmpint(get_int("/objects/obj0", "count"), ==, UINT32_MAX);
    g_assert_cmpint(get_int("/objects/obj0", "double-count"), ==,
                    2LL * UINT32_MAX);
    set("count", "4294967296", "from 0 to 4294967295");
    set("count", "-1", "from 0 to 4294967295");
    set("count", "1.5", "from 0 to 4294967295");
    set("count", "13", "13 is unlucky");
    g_assert_cmpint(get_int("/objects/obj0", "count"), ==, UINT32_MAX);

    set("big", "9223372036854775807", NULL);
    g_assert_cmpint(get_int("/objects/obj0", "big"), ==, INT64_MAX);
    set("big", "-5", "non-negative integer");
    set("size", "2147483648", NULL);
    g_assert_cmpint(get_int("/objects/obj0", "size"), ==, 2 * GiB);
    set("size", "\"1G\"", "non-negative integer");

    set("mode", "\"off\"", NULL);
    mode = get_str("/objects/obj0", "mode");
    g_assert_cmpstr(mode, ==, "off");
    set("mode", "\"sometimes\"", "\"on\", \"off\" or \"auto\"");
    set("mode", "true", "\"on\", \"off\" or \"auto\"");

    set("fixed", "false", "cannot be changed while the object is in use");
    set("double-count", "4", "read-only");
    set("type", "\"other\"", "read-only");
    set("nope", "1", "not found");
    {
        g_autoptr(JsonObject) r = qom("qom-set", "{\"path\": \"/objects/obj0\", "
                                      "\"property\": \"flag\"}");
        JsonObject *err = json_object_get_object_member(r, "error");
        g_assert_cmpstr(json_object_get_string_member(err, "desc"), ==,
                        "Parameter 'value' is missing");
    }
    {
        g_autoptr(JsonObject) r = qom("qom-set", "{\"path\": \"/objects\", "
                                      "\"property\": \"obj0\", \"value\": \"x\"}");
        g_assert_true(json_object_has_member(r, "error"));
        g_assert_nonnull(object_resolve_path("/objects/obj0", NULL));
    }

    /* Beyond json-glib's signed integers: reported as a (rounded) double. */
    g_assert_true(object_property_set(obj, "big", &huge, &error_abort));
    {
        g_autoptr(JsonNode) v = get("/objects/obj0", "big");
        g_assert_cmpint(json_node_get_value_type(v), ==, G_TYPE_DOUBLE);
        g_assert_cmpfloat(json_node_get_double(v), ==, (double)UINT64_MAX);
    }
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    setup();
    g_test_add_func("/qmp/qom/list", test_qom_list);
    g_test_add_func("/qmp/qom/get", test_qom_get);
    g_test_add_func("/qmp/qom/set", test_qom_set);
    ret = g_test_run();
    object_unparent(object_get_root());
    qmp_session_cleanup(&session);
    return ret;
}
