/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The QMP schema at work: the generic marshaller's messages, each with
 * its exact text and full path, on real commands of the schema; and
 * query-qmp-schema, read as a client reads it (masked names resolved)
 * and compared with the tables generated from the schema files.
 */
#include "qemu/osdep.h"
#include "monitor/monitor-internal.h"
#include "qapi/qapi-types.h"

static QmpSession session;

static JsonObject *exec(const char *request)
{
    g_autofree char *reply = qmp_handle_message(&session, request,
                                                strlen(request));
    g_autoptr(JsonParser) parser = json_parser_new();

    g_assert_true(json_parser_load_from_data(parser, reply, -1, NULL));
    qmp_session_run_after_reply(&session);
    return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static void expect_error(const char *cmd, const char *args, const char *desc)
{
    g_autofree char *req = g_strdup_printf(
        "{\"execute\": \"%s\", \"arguments\": %s}", cmd, args);
    g_autoptr(JsonObject) reply = exec(req);
    JsonObject *err = json_object_get_object_member(reply, "error");

    if (!err) {
        g_error("%s %s succeeded; expected: %s", cmd, args, desc);
    }
    g_assert_cmpstr(json_object_get_string_member(err, "class"), ==,
                    "GenericError");
    g_assert_cmpstr(json_object_get_string_member(err, "desc"), ==, desc);
}

static void test_errors(void)
{
    /* The three messages of the issue, nested in a list of structs. */
    expect_error("migrate-set-capabilities",
                 "{\"capabilities\": [{\"capability\": \"events\", "
                 "\"state\": \"on\"}]}",
                 "Invalid parameter type for 'capabilities[0].state', "
                 "expected: boolean");
    expect_error("migrate-set-capabilities",
                 "{\"capabilities\": [{\"capability\": \"events\", "
                 "\"state\": true}, {\"capability\": \"events\"}]}",
                 "Parameter 'capabilities[1].state' is missing");
    expect_error("migrate-set-capabilities",
                 "{\"capabilities\": [{\"capability\": \"events\", "
                 "\"state\": true, \"x\": 1}]}",
                 "Parameter 'capabilities[0].x' is unexpected");
    expect_error("query-status", "{\"x\": 1}", "Parameter 'x' is unexpected");
    expect_error("migrate-continue", "{}", "Parameter 'state' is missing");

    /* Every JSON type the schema asks for. */
    expect_error("migrate-set-capabilities", "{\"capabilities\": {}}",
                 "Invalid parameter type for 'capabilities', expected: array");
    expect_error("migrate-set-capabilities", "{\"capabilities\": [1]}",
                 "Invalid parameter type for 'capabilities[0]', "
                 "expected: object");
    expect_error("getfd", "{\"fdname\": null}",
                 "Invalid parameter type for 'fdname', expected: string");
    expect_error("calc-dirty-rate", "{\"calc-time\": 1.5}",
                 "Invalid parameter type for 'calc-time', expected: integer");
    expect_error("migrate-set-parameters", "{\"tls-creds\": 5}",
                 "Invalid parameter type for 'tls-creds', expected: "
                 "StrOrNull");
    expect_error("migrate-set-parameters", "{\"downtime-limit\": -1}",
                 "Parameter 'downtime-limit' expects uint64");

    /* Enums, by their value. */
    expect_error("migrate-set-capabilities",
                 "{\"capabilities\": [{\"capability\": \"xbzrle\", "
                 "\"state\": true}]}",
                 "Parameter 'capabilities[0].capability' does not accept "
                 "value 'xbzrle'");
    expect_error("migrate-continue", "{\"state\": 1}",
                 "Invalid parameter type for 'state', expected: string");

    /* Flat unions: the tag picks the members, at any depth. */
    expect_error("migrate",
                 "{\"channels\": [{\"channel-type\": \"main\", \"addr\": "
                 "{\"type\": \"inet\"}}]}",
                 "Parameter 'channels[0].addr.transport' is missing");
    expect_error("migrate",
                 "{\"channels\": [{\"channel-type\": \"main\", \"addr\": "
                 "{\"transport\": \"socket\", \"type\": \"inet\", "
                 "\"host\": \"h\"}}]}",
                 "Parameter 'channels[0].addr.port' is missing");
    expect_error("migrate",
                 "{\"channels\": [{\"channel-type\": \"main\", \"addr\": "
                 "{\"transport\": \"socket\", \"type\": \"unix\", "
                 "\"path\": \"/p\", \"host\": \"h\"}}]}",
                 "Parameter 'channels[0].addr.host' is unexpected");
    expect_error("migrate",
                 "{\"channels\": [{\"channel-type\": \"main\", \"addr\": "
                 "{\"transport\": \"exec\", \"args\": [\"a\", 2]}}]}",
                 "Invalid parameter type for 'channels[0].addr.args[1]', "
                 "expected: string");
    expect_error("yank", "{\"instances\": [{\"type\": \"block-node\"}]}",
                 "Parameter 'instances[0].node-name' is missing");
    expect_error("yank", "{\"instances\": [{\"type\": \"migration\", "
                 "\"id\": \"x\"}]}",
                 "Parameter 'instances[0].id' is unexpected");
}

/* ---- query-qmp-schema against the generated tables ---- */

static GHashTable *schema_by_name;

static JsonObject *entity(const char *name)
{
    JsonObject *e = g_hash_table_lookup(schema_by_name, name);

    if (!e) {
        g_error("query-qmp-schema has no entity '%s'", name);
    }
    return e;
}

static void check_type(const QapiType *type, const char *masked, int depth);

static void check_members(const QapiType *type, JsonArray *members,
                          guint *pos, int depth)
{
    if (type->base) {
        check_members(type->base, members, pos, depth);
    }
    for (const QapiMember *m = type->members; m->name; m++, (*pos)++) {
        JsonObject *info;

        g_assert_cmpuint(*pos, <, json_array_get_length(members));
        info = json_array_get_object_element(members, *pos);
        g_assert_cmpstr(json_object_get_string_member(info, "name"), ==,
                        m->name);
        g_assert_cmpint(json_object_has_member(info, "default"), ==,
                        m->optional);
        check_type(m->type, json_object_get_string_member(info, "type"),
                   depth + 1);
    }
}

/* The entity named @masked describes @type, to a few levels down. */
static void check_type(const QapiType *type, const char *masked, int depth)
{
    JsonObject *e;
    const char *meta;

    if (depth > 6) {
        return;
    }
    e = entity(masked);
    meta = json_object_get_string_member(e, "meta-type");
    switch (type->kind) {
    case QAPI_KIND_ARRAY:
        g_assert_cmpstr(meta, ==, "array");
        check_type(type->element,
                   json_object_get_string_member(e, "element-type"), depth);
        return;
    case QAPI_KIND_ENUM: {
        JsonArray *values = json_object_get_array_member(e, "values");

        g_assert_cmpstr(meta, ==, "enum");
        g_assert_cmpint(json_array_get_length(values), ==, type->nvalues);
        for (int i = 0; i < type->nvalues; i++) {
            g_assert_cmpstr(json_array_get_string_element(values, i), ==,
                            type->values[i]);
        }
        return;
    }
    case QAPI_KIND_OBJECT: {
        JsonArray *members = json_object_get_array_member(e, "members");
        guint pos = 0;

        g_assert_cmpstr(meta, ==, "object");
        /* Builtin names stay, every other type name is a number. */
        g_assert_true(g_ascii_isdigit(masked[0]));
        check_members(type, members, &pos, depth);
        g_assert_cmpuint(pos, ==, json_array_get_length(members));
        if (type->variants) {
            JsonArray *variants = json_object_get_array_member(e, "variants");
            guint n = 0;

            g_assert_cmpstr(json_object_get_string_member(e, "tag"), ==,
                            type->tag);
            for (const QapiVariant *v = type->variants; v->tag_value >= 0;
                 v++, n++) {
                JsonObject *vi = json_array_get_object_element(variants, n);

                check_type(v->type, json_object_get_string_member(vi, "type"),
                           depth + 1);
            }
            g_assert_cmpuint(n, ==, json_array_get_length(variants));
        } else {
            g_assert_false(json_object_has_member(e, "variants"));
        }
        return;
    }
    case QAPI_KIND_ALTERNATE:
        g_assert_cmpstr(meta, ==, "alternate");
        return;
    default:
        g_assert_cmpstr(meta, ==, "builtin");
        g_assert_cmpstr(masked, ==, type->name);
        return;
    }
}

static void test_introspection(void)
{
    g_autoptr(JsonObject) reply = exec("{\"execute\": \"query-qmp-schema\"}");
    JsonNode *ret = json_object_get_member(reply, "return");
    g_autoptr(GPtrArray) names = qmp_command_names();
    JsonArray *list;
    size_t commands = 0, events = 0;
    Error *err = NULL;

    g_assert_nonnull(ret);
    /* The reply follows the schema's own SchemaInfo. */
    g_assert_true(qapi_input(&qapi_type_list_SchemaInfo, "return", ret, NULL,
                             &err));
    list = json_node_get_array(ret);
    schema_by_name = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *e = json_array_get_object_element(list, i);
        const char *name = json_object_get_string_member(e, "name");

        g_assert_false(g_hash_table_contains(schema_by_name, name));
        g_hash_table_insert(schema_by_name, (gpointer)name, e);
        commands += !strcmp(json_object_get_string_member(e, "meta-type"),
                            "command");
        events += !strcmp(json_object_get_string_member(e, "meta-type"),
                          "event");
    }
    g_assert_cmpuint(commands, ==, qapi_commands_count);
    g_assert_cmpuint(events, ==, qapi_events_count);
    for (size_t i = 0; i < qapi_commands_count; i++) {
        const QapiCommand *cmd = &qapi_commands[i];
        JsonObject *e = entity(cmd->name);

        g_assert_cmpstr(json_object_get_string_member(e, "meta-type"), ==,
                        "command");
        check_type(cmd->args, json_object_get_string_member(e, "arg-type"),
                   0);
        if (cmd->ret) {
            check_type(cmd->ret, json_object_get_string_member(e, "ret-type"),
                       0);
        }
    }
    for (size_t i = 0; i < qapi_events_count; i++) {
        JsonObject *e = entity(qapi_events[i].name);

        g_assert_cmpstr(json_object_get_string_member(e, "meta-type"), ==,
                        "event");
        check_type(qapi_events[i].data,
                   json_object_get_string_member(e, "arg-type"), 0);
    }
    /* Every command vmig answers is in the schema. */
    for (guint i = 0; i < names->len; i++) {
        g_assert_nonnull(qapi_command_lookup(g_ptr_array_index(names, i)));
    }
    g_hash_table_destroy(schema_by_name);
}

/* The replies of the side-effect-free queries follow their schema type. */
static void test_replies(void)
{
    static const char *const queries[] = {
        "query-version", "query-commands", "query-name", "query-uuid",
        "query-status", "query-migrate", "query-migrate-capabilities",
        "query-migrate-parameters", "query-yank", "query-dirty-rate",
        "x-query-log",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(queries); i++) {
        g_autofree char *req = g_strdup_printf("{\"execute\": \"%s\"}",
                                               queries[i]);
        g_autoptr(JsonObject) reply = exec(req);
        const QapiCommand *cmd = qapi_command_lookup(queries[i]);
        Error *err = NULL;

        g_assert_nonnull(json_object_get_member(reply, "return"));
        if (!qapi_input(cmd->ret, "return",
                        json_object_get_member(reply, "return"), NULL, &err)) {
            g_error("%s: %s", queries[i], error_get_pretty(err));
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qmp_session_init(&session);
    session.negotiated = true;
    g_test_add_func("/qmp/schema/errors", test_errors);
    g_test_add_func("/qmp/schema/introspection", test_introspection);
    g_test_add_func("/qmp/schema/replies", test_replies);
    return g_test_run();
}
