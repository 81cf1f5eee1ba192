/*
 * The QMP command table and dispatch: one JSON text in, one reply out.
 *
 * Nothing here knows about sockets, so the whole protocol (negotiation,
 * request validation, id echo, error classes) can be driven directly by
 * unit tests and by the connection code in qmp.c alike.
 */
#include "qemu/osdep.h"
#include "monitor/monitor-internal.h"
#include "qapi/qapi-types.h"

#include <math.h>

typedef struct QmpCommand {
    const char *name;
    /* A command of the schema, or else a raw one (tests): fn and flags. */
    const QapiCommand *schema;
    QmpCommandFunc *fn;
    QmpCommandFlags flags;
} QmpCommand;

/*
 * Every command of the schema, and the raw ones registered by
 * constructors before main(); read-only once clients connect.
 */
static GHashTable *qmp_commands;

static GHashTable *qmp_command_table(void)
{
    if (!qmp_commands) {
        qmp_commands = g_hash_table_new_full(g_str_hash, g_str_equal,
                                             NULL, g_free);
        for (size_t i = 0; i < qapi_commands_count; i++) {
            QmpCommand *cmd = g_new0(QmpCommand, 1);

            cmd->name = qapi_commands[i].name;
            cmd->schema = &qapi_commands[i];
            cmd->flags = qapi_commands[i].flags;
            g_hash_table_insert(qmp_commands, (gpointer)cmd->name, cmd);
        }
    }
    return qmp_commands;
}

static QmpSession *current_session;

typedef struct AfterReply {
    void (*fn)(void *opaque);
    void *opaque;
} AfterReply;

void qmp_register_command(const char *name, QmpCommandFunc *fn,
                          QmpCommandFlags flags)
{
    QmpCommand *cmd;

    /* Two claims on one name are a build mistake, not a runtime one. */
    assert(!g_hash_table_contains(qmp_command_table(), name));
    cmd = g_new0(QmpCommand, 1);
    cmd->name = name;
    cmd->fn = fn;
    cmd->flags = flags;
    g_hash_table_insert(qmp_commands, (gpointer)name, cmd);
}

void qmp_unregister_command(const char *name)
{
    g_hash_table_remove(qmp_command_table(), name);
}

static const QmpCommand *qmp_find_command(const char *name)
{
    return g_hash_table_lookup(qmp_command_table(), name);
}

static gint compare_strings(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *qmp_command_names(void)
{
    GPtrArray *names = g_ptr_array_new();
    GHashTableIter iter;
    gpointer key;

    g_hash_table_iter_init(&iter, qmp_command_table());
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        g_ptr_array_add(names, key);
    }
    g_ptr_array_sort(names, compare_strings);
    return names;
}

/* ---- Sessions ---- */

void qmp_session_init(QmpSession *session)
{
    memset(session, 0, sizeof(*session));
}

void qmp_session_cleanup(QmpSession *session)
{
    g_slist_free_full(session->after_reply, g_free);
    session->after_reply = NULL;
}

QmpSession *qmp_session_current(void)
{
    return current_session;
}

void qmp_defer_after_reply(void (*fn)(void *opaque), void *opaque)
{
    AfterReply *call = g_new(AfterReply, 1);

    assert(current_session);
    call->fn = fn;
    call->opaque = opaque;
    current_session->after_reply =
        g_slist_append(current_session->after_reply, call);
}

void qmp_session_run_after_reply(QmpSession *session)
{
    GSList *calls = session->after_reply;

    session->after_reply = NULL;
    for (GSList *l = calls; l; l = l->next) {
        AfterReply *call = l->data;
        call->fn(call->opaque);
    }
    g_slist_free_full(calls, g_free);
}

/* ---- Text helpers ---- */

char *qmp_object_to_line(JsonObject *obj)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_node_new(JSON_NODE_OBJECT);
    g_autofree char *text = NULL;

    json_node_set_object(root, obj);
    json_generator_set_root(gen, root);
    text = json_generator_to_data(gen, NULL);
    /*
     * Bytes from a peer are escaped where they enter a message
     * (qemu_escape_bytes); one that slipped through must still not make
     * the whole line unreadable to a JSON parser.  json-glib escapes
     * control characters, so invalid bytes can only sit inside strings,
     * where U+FFFD replaces them.
     */
    if (!g_utf8_validate(text, -1, NULL)) {
        g_autofree char *valid = g_utf8_make_valid(text, -1);

        warn_report("QMP: a message held bytes that are not UTF-8; sent "
                    "with U+FFFD in their place");
        return g_strconcat(valid, "\r\n", NULL);
    }
    return g_strconcat(text, "\r\n", NULL);
}

static JsonObject *qmp_error_object(ErrorClass cls, const char *desc)
{
    JsonObject *reply = json_object_new();
    JsonObject *err = json_object_new();

    /*
     * A message may quote what the client sent (a command name, a JSON
     * parse error); the reply must stay valid UTF-8 whatever that was.
     */
    g_autofree char *valid = g_utf8_make_valid(desc, -1);

    json_object_set_string_member(err, "class", error_class_name(cls));
    json_object_set_string_member(err, "desc", valid);
    json_object_set_object_member(reply, "error", err);
    return reply;
}

char *qmp_error_reply_text(ErrorClass cls, const char *desc)
{
    g_autoptr(JsonObject) reply = qmp_error_object(cls, desc);

    return qmp_object_to_line(reply);
}

JsonObject *qmp_version_object(void)
{
    JsonObject *version = json_object_new();
    JsonObject *numbers = json_object_new();
    unsigned major = 0, minor = 0, micro = 0;

    /*
     * "0.1.0", possibly with a suffix such as "-rc1" that sscanf ignores;
     * numbers it cannot read stay 0.
     */
    sscanf(VMIG_VERSION, "%u.%u.%u", &major, &minor, &micro);
    json_object_set_int_member(numbers, "micro", micro);
    json_object_set_int_member(numbers, "minor", minor);
    json_object_set_int_member(numbers, "major", major);
    json_object_set_object_member(version, "qemu", numbers);
    json_object_set_string_member(version, "package", "vmig-" VMIG_VERSION);
    return version;
}

char *qmp_greeting_text(void)
{
    g_autoptr(JsonObject) greeting = json_object_new();
    JsonObject *qmp = json_object_new();

    json_object_set_object_member(qmp, "version", qmp_version_object());
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    json_object_set_object_member(greeting, "QMP", qmp);
    return qmp_object_to_line(greeting);
}

/* ---- Dispatch ---- */

/*
 * json-glib wraps integers that do not fit in 64 bits around silently
 * (-36893488147419103237 reads as 1) and turns 1e400 into infinity,
 * which it then prints as invalid JSON.  Refuse such numbers before
 * parsing, so that no command ever sees a value the client did not send.
 * The scan follows json-glib's lexical rules: strings in double or
 * single quotes, and C comments, hold no numbers.
 */
static bool json_text_check_numbers(const char *text, size_t len, Error **errp)
{
    char quote = 0;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        size_t start = i;
        bool is_float = false;

        if (quote) {
            if (c == '\\') {
                i++;
            } else if (c == quote) {
                quote = 0;
            }
            continue;
        }
        if (c == '"' || c == '\'') {
            quote = c;
            continue;
        }
        if (c == '/' && i + 1 < len && text[i + 1] == '*') {
            /* json-glib skips C comments, quotes and all: so do we. */
            const char *close = g_strstr_len(text + i + 2, len - i - 2, "*/");
            i = close ? (size_t)(close - text) + 1 : len;
            continue;
        }
        if (!(c == '-' || g_ascii_isdigit(c)) ||
            (i > 0 && (g_ascii_isalnum(text[i - 1]) || text[i - 1] == '.'))) {
            continue;
        }
        for (i++; i < len && (g_ascii_isdigit(text[i]) || text[i] == '.' ||
                              text[i] == 'e' || text[i] == 'E' ||
                              ((text[i] == '+' || text[i] == '-') &&
                               (text[i - 1] == 'e' || text[i - 1] == 'E')));
             i++) {
            is_float |= !g_ascii_isdigit(text[i]);
        }
        g_autofree char *token = g_strndup(text + start, i - start);
        char *end;
        errno = 0;
        if (is_float) {
            double d = g_ascii_strtod(token, &end);
            if (errno == ERANGE && isinf(d)) {
                error_setg(errp, "QMP message has a number out of range: %s",
                           token);
                return false;
            }
        } else {
            g_ascii_strtoll(token, &end, 10);
            if (errno == ERANGE) {
                error_setg(errp, "QMP message has an integer out of the "
                           "64-bit signed range: %s", token);
                return false;
            }
        }
        i--;        /* the loop's i++ moves to the character after the token */
    }
    return true;
}

/*
 * Check the envelope of a request and find its command.  On success
 * *args is a new reference (an empty object when none was sent).
 */
static const QmpCommand *qmp_check_request(QmpSession *session,
                                           JsonObject *req, JsonObject **args,
                                           Error **errp)
{
    static const char *const members[] = { "execute", "arguments", "id", NULL };
    const char *unexpected = NULL;
    JsonNode *exec_node, *args_node;
    const QmpCommand *cmd;
    const char *name;
    GList *names;

    names = json_object_get_members(req);
    for (GList *m = names; m; m = m->next) {
        if (!g_strv_contains(members, m->data)) {
            unexpected = m->data;
            break;
        }
    }
    g_list_free(names);
    if (unexpected) {
        error_setg(errp, "QMP message member '%s' is not allowed "
                   "(expected execute, arguments, id)", unexpected);
        return NULL;
    }

    exec_node = json_object_get_member(req, "execute");
    if (!exec_node) {
        error_setg(errp, "QMP message has no 'execute' member");
        return NULL;
    }
    if (!JSON_NODE_HOLDS_VALUE(exec_node) ||
        json_node_get_value_type(exec_node) != G_TYPE_STRING) {
        error_setg(errp, "QMP message member 'execute' must be a string");
        return NULL;
    }
    args_node = json_object_get_member(req, "arguments");
    if (args_node && !JSON_NODE_HOLDS_OBJECT(args_node)) {
        error_setg(errp, "QMP message member 'arguments' must be an object");
        return NULL;
    }

    name = json_node_get_string(exec_node);
    cmd = qmp_find_command(name);
    if (!session->negotiated) {
        if (!cmd || !(cmd->flags & QMP_CMD_NEGOTIATION)) {
            error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                      "Expecting capabilities negotiation with "
                      "'qmp_capabilities'");
            return NULL;
        }
    } else if (!cmd) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "The command %s has not been found", name);
        return NULL;
    }

    *args = args_node ? json_object_ref(json_node_get_object(args_node))
                      : json_object_new();
    return cmd;
}

/*
 * A schema command: check the arguments against its tables, then call
 * the handler with them typed.  A reply that does not match the schema
 * is a bug of vmig's; it is reported, and sent all the same.
 */
static void qmp_call_schema_command(const QapiCommand *cmd, JsonObject *args,
                                    JsonNode **ret, Error **errp)
{
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
    g_autofree void *typed = g_malloc0(cmd->args->size);
    Error *err = NULL;

    json_node_set_object(node, args);
    if (!qapi_input(cmd->args, NULL, node, typed, errp)) {
        return;
    }
    cmd->marshal(typed, ret, errp);
    qapi_input_free(cmd->args, typed);
    if (*ret && cmd->ret && !qapi_input(cmd->ret, "return", *ret, NULL, &err)) {
        warn_report("QMP: the reply of %s does not follow the schema: %s",
                    cmd->name, error_get_pretty(err));
        error_free(err);
    }
}

/* Run a checked request; returns the value of "return". */
static JsonNode *qmp_run_command(QmpSession *session, const QmpCommand *cmd,
                                 JsonObject *args, Error **errp)
{
    QmpSession *outer = current_session;
    Error *local_err = NULL;
    JsonNode *ret = NULL;

    current_session = session;
    if (cmd->schema) {
        qmp_call_schema_command(cmd->schema, args, &ret, &local_err);
    } else {
        cmd->fn(args, &ret, &local_err);
    }
    current_session = outer;

    if (local_err) {
        if (ret) {
            json_node_unref(ret);
        }
        error_propagate(errp, local_err);
        return NULL;
    }
    if (!ret) {
        ret = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(ret, json_object_new());
    }
    return ret;
}

/*
 * Escapes such as a lone "\ud800" decode to bytes that are not UTF-8;
 * nothing that holds them may reach a command or a reply.
 */
static bool json_node_is_utf8(JsonNode *node)
{
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT: {
        JsonObjectIter it;
        const char *name;
        JsonNode *member;

        json_object_iter_init(&it, json_node_get_object(node));
        while (json_object_iter_next(&it, &name, &member)) {
            if (!g_utf8_validate(name, -1, NULL) || !json_node_is_utf8(member)) {
                return false;
            }
        }
        return true;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *a = json_node_get_array(node);

        for (guint i = 0; i < json_array_get_length(a); i++) {
            if (!json_node_is_utf8(json_array_get_element(a, i))) {
                return false;
            }
        }
        return true;
    }
    case JSON_NODE_VALUE:
        return json_node_get_value_type(node) != G_TYPE_STRING ||
               g_utf8_validate(json_node_get_string(node), -1, NULL);
    case JSON_NODE_NULL:
    default:
        return true;
    }
}

char *qmp_handle_message(QmpSession *session, const char *text, size_t len)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) gerr = NULL;
    g_autoptr(JsonObject) reply = NULL;
    g_autoptr(JsonObject) args = NULL;
    JsonObject *req = NULL;
    JsonNode *root, *id, *ret;
    const QmpCommand *cmd;
    Error *err = NULL;

    if (!g_utf8_validate(text, len, NULL)) {
        return qmp_error_reply_text(ERROR_CLASS_GENERIC_ERROR,
                                    "QMP message is not valid UTF-8");
    }
    if (!json_text_check_numbers(text, len, &err)) {
        reply = qmp_error_object(error_get_class(err), error_get_pretty(err));
        error_free(err);
        return qmp_object_to_line(reply);
    }
    if (!json_parser_load_from_data(parser, text, len, &gerr)) {
        g_autofree char *desc = g_strdup_printf("JSON parse error: %s",
                                                gerr->message);
        return qmp_error_reply_text(ERROR_CLASS_GENERIC_ERROR, desc);
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        return qmp_error_reply_text(ERROR_CLASS_GENERIC_ERROR,
                                    "QMP message must be a JSON object");
    }
    if (!json_node_is_utf8(root)) {
        return qmp_error_reply_text(ERROR_CLASS_GENERIC_ERROR,
                                    "QMP message holds a string that is not "
                                    "valid UTF-8 (a lone surrogate escape?)");
    }
    req = json_node_get_object(root);

    cmd = qmp_check_request(session, req, &args, &err);
    ret = cmd ? qmp_run_command(session, cmd, args, &err) : NULL;
    if (err) {
        reply = qmp_error_object(error_get_class(err), error_get_pretty(err));
        error_free(err);
    } else {
        reply = json_object_new();
        json_object_set_member(reply, "return", ret);
    }
    id = json_object_get_member(req, "id");
    if (id) {
        json_object_set_member(reply, "id", json_node_copy(id));
    }
    return qmp_object_to_line(reply);
}
