/*
 * Unit tests of QMP dispatch (monitor/qmp-dispatch.c, monitor/qmp-args.c):
 * negotiation, request validation, id echo, error classes, and the
 * argument helpers.  Messages go straight to qmp_handle_message(), no
 * socket involved.
 */
#include "qemu/osdep.h"
#include "monitor/monitor-internal.h"

/* Send @text, check the framing of the reply, return it parsed. */
static JsonObject *handle(QmpSession *s, const char *text)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) gerr = NULL;
    g_autofree char *reply = qmp_handle_message(s, text, strlen(text));
    size_t len = strlen(reply);
    JsonNode *root;

    g_assert_cmpuint(len, >, 2);
    g_assert_cmpstr(reply + len - 2, ==, "\r\n");
    /* One line: the reply itself must not contain a raw line end. */
    g_assert_null(memchr(reply, '\n', len - 1));
    if (!json_parser_load_from_data(parser, reply, len, &gerr)) {
        g_error("reply is not JSON: %s (%s)", reply, gerr->message);
    }
    root = json_parser_get_root(parser);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
    return json_object_ref(json_node_get_object(root));
}

static void assert_error(JsonObject *reply, const char *cls,
                         const char *desc_part)
{
    JsonObject *err;

    g_assert_false(json_object_has_member(reply, "return"));
    g_assert_true(json_object_has_member(reply, "error"));
    err = json_object_get_object_member(reply, "error");
    g_assert_cmpstr(json_object_get_string_member(err, "class"), ==, cls);
    if (!strstr(json_object_get_string_member(err, "desc"), desc_part)) {
        g_error("desc '%s' lacks '%s'",
                json_object_get_string_member(err, "desc"), desc_part);
    }
}

static void check_error(QmpSession *s, const char *text, const char *cls,
                        const char *desc_part)
{
    g_autoptr(JsonObject) reply = handle(s, text);

    assert_error(reply, cls, desc_part);
}

static void check_ok(QmpSession *s, const char *text)
{
    g_autoptr(JsonObject) reply = handle(s, text);

    if (!json_object_has_member(reply, "return")) {
        g_error("'%s' failed: %s", text,
                json_object_get_string_member(
                    json_object_get_object_member(reply, "error"), "desc"));
    }
}

static void negotiate(QmpSession *s)
{
    qmp_session_init(s);
    check_ok(s, "{\"execute\": \"qmp_capabilities\"}");
    g_assert_true(s->negotiated);
}

/* ---- Commands of this test ---- */

static void cmd_echo(JsonObject *args, JsonNode **ret, Error **errp)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_set_object(node, args);
    *ret = node;
}

static void cmd_fail(JsonObject *args, JsonNode **ret, Error **errp)
{
    /* A result set before failing must be dropped, not leaked. */
    *ret = json_node_new(JSON_NODE_NULL);
    error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "x-test-fail: no device");
}

static void cmd_nothing(JsonObject *args, JsonNode **ret, Error **errp)
{
}

/* Order of after-reply calls, and the session the command ran in. */
static GString *after_reply_log;
static QmpSession *defer_session;

static void log_after_reply(void *opaque)
{
    g_string_append(after_reply_log, opaque);
}

static void cmd_defer(JsonObject *args, JsonNode **ret, Error **errp)
{
    defer_session = qmp_session_current();
    qmp_defer_after_reply(log_after_reply, (void *)"a");
    qmp_defer_after_reply(log_after_reply, (void *)"b");
}

static void register_test_commands(void)
{
    qmp_register_command("x-test-defer", cmd_defer, QMP_CMD_NONE);
    qmp_register_command("x-test-echo", cmd_echo, QMP_CMD_NONE);
    qmp_register_command("x-test-fail", cmd_fail, QMP_CMD_NONE);
    qmp_register_command("x-test-nothing", cmd_nothing, QMP_CMD_NONE);
}
qmp_init(register_test_commands);

/* ---- Tests ---- */

static void test_negotiation(void)
{
    QmpSession s;

    qmp_session_init(&s);
    check_error(&s, "{\"execute\": \"query-version\"}", "CommandNotFound",
                "Expecting capabilities negotiation with 'qmp_capabilities'");
    check_error(&s, "{\"execute\": \"no-such-command\"}", "CommandNotFound",
                "Expecting capabilities negotiation with 'qmp_capabilities'");
    /* An unknown capability is refused and negotiation goes on. */
    check_error(&s, "{\"execute\": \"qmp_capabilities\", "
                "\"arguments\": {\"enable\": [\"oob\"]}}", "GenericError",
                "'oob'");
    check_error(&s, "{\"execute\": \"qmp_capabilities\", "
                "\"arguments\": {\"bogus\": 1}}", "GenericError",
                "Parameter 'bogus' is unexpected");
    g_assert_false(s.negotiated);

    check_ok(&s, "{\"execute\": \"qmp_capabilities\", "
             "\"arguments\": {\"enable\": []}}");
    g_assert_true(s.negotiated);
    check_ok(&s, "{\"execute\": \"query-version\"}");
    check_error(&s, "{\"execute\": \"qmp_capabilities\"}", "CommandNotFound",
                "Capabilities negotiation is already complete, command ignored");
    /* Each session negotiates for itself. */
    {
        QmpSession other;
        qmp_session_init(&other);
        check_error(&other, "{\"execute\": \"query-version\"}",
                    "CommandNotFound", "Expecting capabilities negotiation");
    }
}

static void test_id_echo(void)
{
    static const char *const ids[] = {
        "1", "-7", "\"abc\"", "[1, \"two\", {\"three\": 3}]",
        "{\"nested\": {\"k\": [true, null]}}", "null", "2.5", "false",
    };
    QmpSession s;

    negotiate(&s);
    for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
        g_autofree char *ok_req = g_strdup_printf(
            "{\"execute\": \"query-version\", \"id\": %s}", ids[i]);
        g_autofree char *err_req = g_strdup_printf(
            "{\"id\": %s, \"execute\": \"no-such\"}", ids[i]);
        g_autoptr(JsonParser) parser = json_parser_new();
        g_autoptr(JsonObject) ok_reply = handle(&s, ok_req);
        g_autoptr(JsonObject) err_reply = handle(&s, err_req);

        g_assert_true(json_parser_load_from_data(parser, ids[i], -1, NULL));
        g_assert_true(json_object_has_member(ok_reply, "return"));
        g_assert_true(json_node_equal(json_parser_get_root(parser),
                                      json_object_get_member(ok_reply, "id")));
        assert_error(err_reply, "CommandNotFound", "no-such");
        g_assert_true(json_node_equal(json_parser_get_root(parser),
                                      json_object_get_member(err_reply, "id")));
    }
    /* Without id, no id. */
    {
        g_autoptr(JsonObject) reply = handle(&s, "{\"execute\": \"query-version\"}");
        g_assert_false(json_object_has_member(reply, "id"));
    }
}

static void test_malformed(void)
{
    QmpSession s;

    negotiate(&s);
    check_error(&s, "{\"execute\": ", "GenericError", "JSON parse error");
    check_error(&s, "{\"execute\" \"stop\"}", "GenericError",
                "JSON parse error");
    /* Not UTF-8: raw bytes, and an escape that decodes to none. */
    check_error(&s, "{\"execute\": \"x-test-echo\", \"id\": \"\xff\xfe\"}",
                "GenericError", "not valid UTF-8");
    check_error(&s, "{\"execute\": \"x-test-echo\", \"arguments\": "
                "{\"v\": \"\\ud800x\"}}", "GenericError", "not valid UTF-8");
    check_error(&s, "{\"execute\": \"x-test-echo\", \"arguments\": "
                "{\"v\": -36893488147419103237}}", "GenericError",
                "out of the 64-bit signed range: -36893488147419103237");
    check_error(&s, "{\"execute\": \"x-test-echo\", \"id\": 1e400}",
                "GenericError", "out of range: 1e400");
    /* A quote inside a comment does not hide what follows. */
    check_error(&s, "{\"execute\": \"x-test-echo\", /* it's */ \"arguments\": "
                "{\"v\": 99999999999999999999}}", "GenericError",
                "out of the 64-bit signed range");
    /* Numbers inside strings are text, extremes inside the range are fine. */
    check_ok(&s, "{\"execute\": \"x-test-echo\", \"arguments\": "
             "{\"s\": \"99999999999999999999999\", \"q\": '1e999', "
             "\"max\": 9223372036854775807, \"min\": -9223372036854775808, "
             "\"f\": -2.5e-3}}");
    check_error(&s, "xyz", "GenericError", "JSON parse error");
    check_error(&s, "[1, 2]", "GenericError", "must be a JSON object");
    check_error(&s, "42", "GenericError", "must be a JSON object");
    check_error(&s, "\"execute\"", "GenericError", "must be a JSON object");
    check_error(&s, "{}", "GenericError", "no 'execute' member");
    check_error(&s, "{\"arguments\": {}, \"id\": 1}", "GenericError",
                "no 'execute' member");
    check_error(&s, "{\"execute\": 1}", "GenericError",
                "'execute' must be a string");
    check_error(&s, "{\"execute\": [\"stop\"]}", "GenericError",
                "'execute' must be a string");
    check_error(&s, "{\"execute\": \"x-test-echo\", \"arguments\": [1]}",
                "GenericError", "'arguments' must be an object");
    check_error(&s, "{\"execute\": \"x-test-echo\", \"arguments\": null}",
                "GenericError", "'arguments' must be an object");
    check_error(&s, "{\"execute\": \"x-test-echo\", \"exec-oob\": \"x\"}",
                "GenericError", "member 'exec-oob' is not allowed");
    /* An id in a malformed request is still echoed. */
    {
        g_autoptr(JsonObject) reply = handle(&s, "{\"execute\": 5, \"id\": \"m\"}");
        assert_error(reply, "GenericError", "'execute' must be a string");
        g_assert_cmpstr(json_object_get_string_member(reply, "id"), ==, "m");
    }
    /* The session is none the worse. */
    check_ok(&s, "{\"execute\": \"query-version\"}");
    g_assert_true(s.negotiated);

    /* Before negotiation, a malformed message is reported as malformed. */
    qmp_session_init(&s);
    check_error(&s, "{\"execute\": true}", "GenericError",
                "'execute' must be a string");
}

static void test_command_results(void)
{
    QmpSession s;
    g_autoptr(JsonObject) echo = NULL;
    g_autoptr(JsonObject) empty = NULL;
    g_autoptr(JsonObject) noargs = NULL;
    JsonObject *ret;

    negotiate(&s);
    check_error(&s, "{\"execute\": \"no-such-command\"}", "CommandNotFound",
                "The command no-such-command has not been found");

    echo = handle(&s, "{\"execute\": \"x-test-echo\", "
                  "\"arguments\": {\"a\": [1, 2], \"b\": \"c\"}, \"id\": 9}");
    ret = json_object_get_object_member(echo, "return");
    g_assert_cmpuint(json_object_get_size(ret), ==, 2);
    g_assert_cmpstr(json_object_get_string_member(ret, "b"), ==, "c");
    g_assert_cmpint(json_object_get_int_member(echo, "id"), ==, 9);

    /* No arguments at all: the command sees {}. */
    noargs = handle(&s, "{\"execute\": \"x-test-echo\"}");
    g_assert_cmpuint(json_object_get_size(
                         json_object_get_object_member(noargs, "return")), ==, 0);

    /* No result: {} */
    empty = handle(&s, "{\"execute\": \"x-test-nothing\"}");
    ret = json_object_get_object_member(empty, "return");
    g_assert_nonnull(ret);
    g_assert_cmpuint(json_object_get_size(ret), ==, 0);

    /* The class of the command's error is the class of the reply. */
    check_error(&s, "{\"execute\": \"x-test-fail\"}", "DeviceNotFound",
                "x-test-fail: no device");
}

static void test_query_commands_lists_all(void)
{
    static const char *const expected[] = {
        "qmp_capabilities", "query-version", "query-commands", "query-name",
        "query-status", "stop", "cont", "quit", "qom-list", "qom-get",
        "qom-set", "trace-event-get-state", "trace-event-set-state",
        "x-query-log", "getfd", "closefd", "x-test-echo",
    };
    g_autoptr(JsonObject) reply = NULL;
    g_autoptr(GPtrArray) registered = qmp_command_names();
    JsonArray *list;
    QmpSession s;

    negotiate(&s);
    reply = handle(&s, "{\"execute\": \"query-commands\"}");
    list = json_object_get_array_member(reply, "return");
    g_assert_cmpuint(json_array_get_length(list), ==, registered->len);
    for (size_t i = 0; i < ARRAY_SIZE(expected); i++) {
        bool found = false;
        for (guint j = 0; j < json_array_get_length(list); j++) {
            JsonObject *entry = json_array_get_object_element(list, j);
            found |= !strcmp(json_object_get_string_member(entry, "name"),
                             expected[i]);
        }
        if (!found) {
            g_error("query-commands lacks %s", expected[i]);
        }
    }
    check_error(&s, "{\"execute\": \"query-commands\", \"arguments\": {\"x\": 1}}",
                "GenericError", "Parameter 'x' is unexpected");
}

static void test_after_reply(void)
{
    QmpSession s;

    after_reply_log = g_string_new(NULL);
    negotiate(&s);
    check_ok(&s, "{\"execute\": \"x-test-defer\"}");
    g_assert_true(defer_session == &s);
    g_assert_null(qmp_session_current());
    /* Nothing runs before the caller says the reply is out. */
    g_assert_cmpstr(after_reply_log->str, ==, "");
    qmp_session_run_after_reply(&s);
    g_assert_cmpstr(after_reply_log->str, ==, "ab");
    qmp_session_run_after_reply(&s);
    g_assert_cmpstr(after_reply_log->str, ==, "ab");

    /* A session that goes away drops its queued calls uncalled. */
    check_ok(&s, "{\"execute\": \"x-test-defer\"}");
    qmp_session_cleanup(&s);
    qmp_session_run_after_reply(&s);
    g_assert_cmpstr(after_reply_log->str, ==, "ab");
    g_string_free(after_reply_log, TRUE);
}

static JsonObject *parse_object(const char *text)
{
    g_autoptr(JsonParser) parser = json_parser_new();

    g_assert_true(json_parser_load_from_data(parser, text, -1, NULL));
    return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static void test_greeting_and_version(void)
{
    g_autofree char *text = qmp_greeting_text();
    g_auto(GStrv) parts = g_strsplit(VMIG_VERSION, ".", 3);
    g_autoptr(JsonObject) greeting = NULL;
    g_autoptr(JsonObject) reply = NULL;
    JsonObject *qmp, *version, *numbers;
    QmpSession s;

    g_assert_true(g_str_has_suffix(text, "\r\n"));
    greeting = parse_object(text);
    qmp = json_object_get_object_member(greeting, "QMP");
    g_assert_nonnull(qmp);
    g_assert_cmpuint(json_array_get_length(
                         json_object_get_array_member(qmp, "capabilities")), ==, 0);
    version = json_object_get_object_member(qmp, "version");
    g_assert_cmpstr(json_object_get_string_member(version, "package"), ==,
                    "vmig-" VMIG_VERSION);
    numbers = json_object_get_object_member(version, "qemu");
    g_assert_cmpuint(g_strv_length(parts), ==, 3);
    g_assert_cmpint(json_object_get_int_member(numbers, "major"), ==,
                    g_ascii_strtoll(parts[0], NULL, 10));
    g_assert_cmpint(json_object_get_int_member(numbers, "minor"), ==,
                    g_ascii_strtoll(parts[1], NULL, 10));
    g_assert_cmpint(json_object_get_int_member(numbers, "micro"), ==,
                    g_ascii_strtoll(parts[2], NULL, 10));

    /* query-version returns the same object. */
    negotiate(&s);
    reply = handle(&s, "{\"execute\": \"query-version\"}");
    {
        JsonNode *a = json_object_get_member(reply, "return");
        JsonNode *b = json_object_get_member(qmp, "version");
        g_assert_true(json_node_equal(a, b));
    }
}

/*
 * Mangled requests: whatever the bytes, every message gets one reply
 * that is a JSON object with either "return" or "error".  json-glib
 * criticals would be fatal here (g_test_init makes them so).
 */
static void test_mangled_requests(void)
{
    static const char *const seeds[] = {
        "{\"execute\": \"x-test-echo\", \"arguments\": {\"a\": [1, 2.5, "
        "\"s\\u00e9\\n\"], \"b\": {\"c\": null}}, \"id\": \"x\"}",
        "{\"execute\": \"query-version\", \"id\": [1, {\"k\": true}]}",
        "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/\", "
        "\"property\": \"type\"}}",
    };
    static const char alphabet[] = "{}[]\",:\\ 0123456789-+.eEtrufalsn\x01\xff\xc3";
    QmpSession s;

    negotiate(&s);
    for (int iter = 0; iter < 3000; iter++) {
        const char *seed = seeds[iter % ARRAY_SIZE(seeds)];
        g_autofree char *msg = g_strdup(seed);
        size_t len = strlen(msg);
        int edits = g_test_rand_int_range(1, 6);

        for (int e = 0; e < edits; e++) {
            size_t pos = g_test_rand_int_range(0, len);
            switch (g_test_rand_int_range(0, 3)) {
            case 0:     /* replace a byte */
                msg[pos] = alphabet[g_test_rand_int_range(0, sizeof(alphabet) - 1)];
                break;
            case 1:     /* cut the message short */
                len = MAX(pos, 1);
                msg[len] = '\0';
                break;
            default:    /* delete a byte */
                memmove(msg + pos, msg + pos + 1, len - pos);
                len = MAX(len - 1, 1);
                break;
            }
        }
        {
            g_autoptr(JsonObject) reply = handle(&s, msg);
            g_assert_true(json_object_has_member(reply, "return") !=
                          json_object_has_member(reply, "error"));
        }
    }
    g_assert_true(s.negotiated);
}

/*
 * A string that holds bytes which are not UTF-8 (from a stream or a
 * device that was not escaped) still gives a line a JSON parser reads.
 */
static void test_line_stays_utf8(void)
{
    g_autoptr(JsonObject) obj = json_object_new();
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autofree char *line = NULL;
    JsonObject *back;

    json_object_set_string_member(obj, "error-desc",
                                  "unknown run state 'r\xffn\xc3'");
    json_object_set_string_member(obj, "ok", "caf\xc3\xa9");
    line = qmp_object_to_line(obj);
    g_assert_true(g_utf8_validate(line, -1, NULL));
    g_assert_true(g_str_has_suffix(line, "\r\n"));
    g_assert_true(json_parser_load_from_data(parser, line, -1, NULL));
    back = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpstr(json_object_get_string_member(back, "error-desc"), ==,
                    "unknown run state 'r\xef\xbf\xbdn\xef\xbf\xbd'");
    /* Valid UTF-8 goes through untouched. */
    g_assert_cmpstr(json_object_get_string_member(back, "ok"), ==,
                    "caf\xc3\xa9");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/dispatch/negotiation", test_negotiation);
    g_test_add_func("/qmp/dispatch/line-stays-utf8", test_line_stays_utf8);
    g_test_add_func("/qmp/dispatch/id-echo", test_id_echo);
    g_test_add_func("/qmp/dispatch/malformed", test_malformed);
    g_test_add_func("/qmp/dispatch/command-results", test_command_results);
    g_test_add_func("/qmp/dispatch/query-commands", test_query_commands_lists_all);
    g_test_add_func("/qmp/dispatch/after-reply", test_after_reply);
    g_test_add_func("/qmp/dispatch/mangled-requests", test_mangled_requests);
    g_test_add_func("/qmp/dispatch/greeting-and-version",
                    test_greeting_and_version);
    return g_test_run();
}
