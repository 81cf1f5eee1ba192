/*
 * HMP, the human monitor: the text commands an operator types during a
 * migration, with QEMU's names, arguments and output layout.
 *
 * Every command runs through QMP: it builds the request, hands it to the
 * dispatcher as a negotiated client would, and formats the reply.  HMP
 * thus checks nothing QMP does not, cannot drift from it, and reaches a
 * command only by its QMP name.  Calls a command defers until its reply
 * is out (quit's shutdown) move to the session HMP runs for: the QMP
 * client of human-monitor-command, or the console connection.
 *
 * Output lines end in "\n" here; the console and human-monitor-command
 * turn them into "\r\n" as QEMU's monitor sends them.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "monitor/hmp.h"
#include "monitor/monitor-internal.h"
#include "qapi/qapi-types.h"

typedef struct HmpCmd HmpCmd;

/* Runs with its words (argv[0] is the command's name); prints to @out. */
typedef void HmpFunc(HmpContext *ctx, int argc, char **argv);

struct HmpCmd {
    const char *name;           /* "stop|s": a name and its aliases */
    const char *params;         /* for help */
    const char *help;
    HmpFunc *fn;
    int min_args, max_args;     /* words after the name and its flags */
    const char *flags;          /* single-letter flags it takes, or NULL */
    const char *arg_kind;       /* in "... expected" when one is missing */
    const char *qmp;            /* do_forward: the QMP command */
    const char *qmp_arg;        /* do_forward: its one argument */
};

struct HmpContext {
    const HmpCmd *cmd;          /* the command running */
    QmpSession *owner;          /* receives deferred calls, may be NULL */
    GString *out;
    const char *flags;          /* flags given, as letters */
    bool wait;                  /* console: wait for migrate to finish */
};

static void hmp_printf(HmpContext *ctx, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

static void hmp_printf(HmpContext *ctx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_string_append_vprintf(ctx->out, fmt, ap);
    va_end(ap);
}

static bool hmp_flag(HmpContext *ctx, char flag)
{
    return ctx->flags && strchr(ctx->flags, flag);
}

/* ---- Reaching QMP ---- */

/*
 * Run QMP command @name with @args (taken; NULL for none).  Returns the
 * value of "return", or NULL with @errp set from the error reply.
 */
static JsonNode *hmp_qmp(HmpContext *ctx, const char *name, JsonObject *args,
                         Error **errp)
{
    g_autoptr(JsonObject) req = json_object_new();
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autofree char *text = NULL;
    g_autofree char *reply = NULL;
    QmpSession session;
    JsonObject *obj;
    JsonNode *node;

    json_object_set_string_member(req, "execute", name);
    json_object_set_object_member(req, "arguments",
                                  args ? args : json_object_new());
    text = qmp_object_to_line(req);
    qmp_session_init(&session);
    session.negotiated = true;
    reply = qmp_handle_message(&session, text, strlen(text));
    if (ctx->owner) {
        ctx->owner->after_reply = g_slist_concat(ctx->owner->after_reply,
                                                 session.after_reply);
        session.after_reply = NULL;
    }
    qmp_session_cleanup(&session);

    if (!json_parser_load_from_data(parser, reply, -1, NULL) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
        error_setg(errp, "%s: unreadable reply", name);
        return NULL;
    }
    obj = json_node_get_object(json_parser_get_root(parser));
    node = json_object_get_member(obj, "return");
    if (node) {
        return json_node_copy(node);
    }
    node = json_object_get_member(obj, "error");
    error_setg(errp, "%s", node && JSON_NODE_HOLDS_OBJECT(node) ?
               json_object_get_string_member_with_default(
                   json_node_get_object(node), "desc", "unknown error") :
               "unknown error");
    return NULL;
}

/* Run a command whose reply is only success or an error, and print that. */
static void hmp_qmp_simple(HmpContext *ctx, const char *name,
                           JsonObject *args)
{
    Error *err = NULL;
    JsonNode *ret = hmp_qmp(ctx, name, args, &err);

    if (ret) {
        json_node_unref(ret);
    } else {
        hmp_printf(ctx, "Error: %s\n", error_get_pretty(err));
        error_free(err);
    }
}

/* The object a query returns, or NULL after printing its error. */
static JsonObject *hmp_query(HmpContext *ctx, const char *name)
{
    Error *err = NULL;
    JsonNode *ret = hmp_qmp(ctx, name, NULL, &err);
    JsonObject *obj = NULL;

    if (!ret) {
        hmp_printf(ctx, "Error: %s\n", error_get_pretty(err));
        error_free(err);
        return NULL;
    }
    if (JSON_NODE_HOLDS_OBJECT(ret)) {
        obj = json_object_ref(json_node_get_object(ret));
    }
    json_node_unref(ret);
    return obj;
}

static int64_t member_int(JsonObject *obj, const char *name)
{
    return obj ? json_object_get_int_member_with_default(obj, name, 0) : 0;
}

/* ---- info ---- */

static void info_status(HmpContext *ctx, int argc, char **argv)
{
    g_autoptr(JsonObject) st = hmp_query(ctx, "query-status");
    const char *status;

    if (!st) {
        return;
    }
    status = json_object_get_string_member_with_default(st, "status", "");
    if (json_object_get_boolean_member_with_default(st, "running", false)) {
        hmp_printf(ctx, "VM status: running\n");
    } else if (!strcmp(status, "paused")) {
        hmp_printf(ctx, "VM status: paused\n");
    } else {
        hmp_printf(ctx, "VM status: paused (%s)\n", status);
    }
}

static void print_kbytes(HmpContext *ctx, const char *label, JsonObject *obj,
                         const char *member)
{
    hmp_printf(ctx, "%s: %" PRId64 " kbytes\n", label,
               member_int(obj, member) >> 10);
}

/* Counters shown only once they are not zero, as QEMU does. */
static void print_if_set(HmpContext *ctx, const char *fmt, JsonObject *obj,
                         const char *member)
{
    int64_t v = member_int(obj, member);

    if (v) {
        hmp_printf(ctx, fmt, v);
    }
}

static void info_migrate_ram(HmpContext *ctx, JsonObject *ram)
{
    int64_t page_size = member_int(ram, "page-size");

    print_kbytes(ctx, "transferred ram", ram, "transferred");
    hmp_printf(ctx, "throughput: %0.2f mbps\n",
               json_object_get_double_member_with_default(ram, "mbps", 0));
    print_kbytes(ctx, "remaining ram", ram, "remaining");
    print_kbytes(ctx, "total ram", ram, "total");
    hmp_printf(ctx, "duplicate: %" PRId64 " pages\n",
               member_int(ram, "duplicate"));
    hmp_printf(ctx, "normal: %" PRId64 " pages\n", member_int(ram, "normal"));
    print_kbytes(ctx, "normal bytes", ram, "normal-bytes");
    hmp_printf(ctx, "dirty sync count: %" PRId64 "\n",
               member_int(ram, "dirty-sync-count"));
    hmp_printf(ctx, "page size: %" PRId64 " kbytes\n", page_size >> 10);
    print_kbytes(ctx, "multifd bytes", ram, "multifd-bytes");
    hmp_printf(ctx, "pages-per-second: %" PRId64 "\n",
               member_int(ram, "pages-per-second"));
    print_if_set(ctx, "dirty pages rate: %" PRId64 " pages\n", ram,
                 "dirty-pages-rate");
    print_if_set(ctx, "postcopy request count: %" PRId64 "\n", ram,
                 "postcopy-requests");
    if (member_int(ram, "precopy-bytes")) {
        print_kbytes(ctx, "precopy ram", ram, "precopy-bytes");
    }
    if (member_int(ram, "downtime-bytes")) {
        print_kbytes(ctx, "downtime ram", ram, "downtime-bytes");
    }
    if (member_int(ram, "postcopy-bytes")) {
        print_kbytes(ctx, "postcopy ram", ram, "postcopy-bytes");
    }
}

/* A member printed with its format when the reply has it. */
typedef struct HmpField {
    const char *member;
    const char *fmt;            /* takes one int64_t */
} HmpField;

static void print_present(HmpContext *ctx, JsonObject *obj,
                          const HmpField *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (json_object_has_member(obj, fields[i].member)) {
            g_string_append_printf(ctx->out, fields[i].fmt,
                                   member_int(obj, fields[i].member));
        }
    }
}

static void info_migrate(HmpContext *ctx, int argc, char **argv)
{
    static const HmpField head[] = {
        { "total-time", "total time: %" PRId64 " ms\n" },
        { "expected-downtime", "expected downtime: %" PRId64 " ms\n" },
        { "downtime", "downtime: %" PRId64 " ms\n" },
        { "setup-time", "setup: %" PRId64 " ms\n" },
    };
    static const HmpField tail[] = {
        { "cpu-throttle-percentage", "cpu throttle percentage: %" PRId64 "\n" },
        { "dirty-limit-throttle-time-per-round",
          "dirty-limit throttle time: %" PRId64 " us\n" },
        { "dirty-limit-ring-full-time",
          "dirty-limit ring full time: %" PRId64 " us\n" },
        { "postcopy-blocktime", "postcopy blocktime: %" PRId64 "\n" },
    };
    g_autoptr(JsonObject) info = hmp_query(ctx, "query-migrate");
    JsonObject *ram, *vfio;
    const char *status, *error;

    if (!info || !json_object_has_member(info, "status")) {
        return;
    }
    status = json_object_get_string_member(info, "status");
    error = json_object_get_string_member_with_default(info, "error-desc",
                                                       NULL);
    if (error) {
        hmp_printf(ctx, "Migration status: %s (%s)\n", status, error);
    } else {
        hmp_printf(ctx, "Migration status: %s\n", status);
    }
    print_present(ctx, info, head, G_N_ELEMENTS(head));
    ram = json_object_get_member(info, "ram") ?
          json_object_get_object_member(info, "ram") : NULL;
    if (ram) {
        info_migrate_ram(ctx, ram);
    }
    vfio = json_object_get_member(info, "vfio") ?
           json_object_get_object_member(info, "vfio") : NULL;
    if (vfio) {
        print_kbytes(ctx, "vfio device transferred", vfio, "transferred");
    }
    print_present(ctx, info, tail, G_N_ELEMENTS(tail));
    if (json_object_has_member(info, "postcopy-vcpu-blocktime")) {
        JsonArray *a = json_object_get_array_member(info,
                                                    "postcopy-vcpu-blocktime");

        hmp_printf(ctx, "postcopy vcpu blocktime: [");
        for (guint i = 0; i < json_array_get_length(a); i++) {
            hmp_printf(ctx, "%s%" PRId64, i ? ", " : "",
                       json_array_get_int_element(a, i));
        }
        hmp_printf(ctx, "]\n");
    }
}

static void info_migrate_capabilities(HmpContext *ctx, int argc, char **argv)
{
    Error *err = NULL;
    JsonNode *ret = hmp_qmp(ctx, "query-migrate-capabilities", NULL, &err);
    JsonArray *caps;

    if (!ret) {
        hmp_printf(ctx, "Error: %s\n", error_get_pretty(err));
        error_free(err);
        return;
    }
    caps = JSON_NODE_HOLDS_ARRAY(ret) ? json_node_get_array(ret) : NULL;
    for (guint i = 0; caps && i < json_array_get_length(caps); i++) {
        JsonObject *c = json_array_get_object_element(caps, i);

        hmp_printf(ctx, "%s: %s\n",
                   json_object_get_string_member(c, "capability"),
                   json_object_get_boolean_member(c, "state") ? "on" : "off");
    }
    json_node_unref(ret);
}

/* The unit QEMU prints after a parameter's value, if any. */
static const char *param_unit(const char *name)
{
    static const char *const units[][2] = {
        { "downtime-limit", " ms" }, { "x-vcpu-dirty-limit-period", " ms" },
        { "x-channel-timeout", " ms" }, { "vcpu-dirty-limit", " MB/s" },
        { "max-bandwidth", " bytes/second" },
        { "avail-switchover-bandwidth", " bytes/second" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(units); i++) {
        if (!strcmp(units[i][0], name)) {
            return units[i][1];
        }
    }
    return "";
}

static void info_migrate_parameters(HmpContext *ctx, int argc, char **argv)
{
    g_autoptr(JsonObject) params = hmp_query(ctx, "query-migrate-parameters");
    GList *names;

    if (!params) {
        return;
    }
    names = json_object_get_members(params);
    for (GList *l = names; l; l = l->next) {
        const char *name = l->data;
        JsonNode *v = json_object_get_member(params, name);
        GType t = JSON_NODE_HOLDS_VALUE(v) ? json_node_get_value_type(v)
                                           : G_TYPE_INVALID;

        if (t == G_TYPE_BOOLEAN) {
            hmp_printf(ctx, "%s: %s\n", name,
                       json_node_get_boolean(v) ? "on" : "off");
        } else if (t == G_TYPE_STRING) {
            /* QEMU quotes the free-form strings, not the enums. */
            hmp_printf(ctx, g_str_has_prefix(name, "tls-") ? "%s: '%s'\n"
                       : "%s: %s\n", name, json_node_get_string(v));
        } else if (t == G_TYPE_INT64) {
            hmp_printf(ctx, "%s: %" PRId64 "%s\n", name, json_node_get_int(v),
                       param_unit(name));
        } else {
            g_autofree char *text = json_to_string(v, FALSE);

            hmp_printf(ctx, "%s: %s%s\n", name, text, param_unit(name));
        }
    }
    g_list_free(names);
}

static void info_vfio(HmpContext *ctx, int argc, char **argv)
{
    g_autoptr(JsonObject) info = hmp_query(ctx, "x-query-vfio");
    JsonArray *devs;

    if (!info) {
        return;
    }
    devs = json_object_get_array_member(info, "devices");
    if (!json_array_get_length(devs)) {
        hmp_printf(ctx, "No VFIO devices\n");
        return;
    }
    for (guint i = 0; i < json_array_get_length(devs); i++) {
        JsonObject *d = json_array_get_object_element(devs, i);

        hmp_printf(ctx, "%s: %s, migration %s",
                   json_object_get_string_member(d, "id"),
                   json_object_get_string_member(d, "transport"),
                   json_object_get_string_member(d, "migration"));
        if (json_object_has_member(d, "device-state")) {
            hmp_printf(ctx, ", state %s, dirty tracking %s, transferred %"
                       PRId64 " kbytes",
                       json_object_get_string_member(d, "device-state"),
                       json_object_get_string_member(d, "dirty-tracking"),
                       member_int(d, "transferred") >> 10);
        }
        hmp_printf(ctx, "\n");
    }
}

static void info_name(HmpContext *ctx, int argc, char **argv)
{
    g_autoptr(JsonObject) info = hmp_query(ctx, "query-name");

    if (info && json_object_has_member(info, "name")) {
        hmp_printf(ctx, "%s\n", json_object_get_string_member(info, "name"));
    }
}

static void info_uuid(HmpContext *ctx, int argc, char **argv)
{
    g_autoptr(JsonObject) info = hmp_query(ctx, "query-uuid");

    if (info) {
        hmp_printf(ctx, "%s\n", json_object_get_string_member(info, "UUID"));
    }
}

static void info_version(HmpContext *ctx, int argc, char **argv)
{
    g_autoptr(JsonObject) info = hmp_query(ctx, "query-version");
    const char *package;
    JsonObject *q;

    if (!info) {
        return;
    }
    q = json_object_get_object_member(info, "qemu");
    package = json_object_get_string_member_with_default(info, "package", "");
    hmp_printf(ctx, "%" PRId64 ".%" PRId64 ".%" PRId64 "%s%s%s\n",
               member_int(q, "major"), member_int(q, "minor"),
               member_int(q, "micro"), *package ? " (" : "", package,
               *package ? ")" : "");
}

/* ---- Commands ---- */

/*
 * The commands that are one QMP command each: its name in the table's
 * qmp, and the argument, if any, under the table's qmp_arg.
 */
static void do_forward(HmpContext *ctx, int argc, char **argv)
{
    JsonObject *args = json_object_new();

    if (ctx->cmd->qmp_arg) {
        json_object_set_string_member(args, ctx->cmd->qmp_arg, argv[1]);
    }
    hmp_qmp_simple(ctx, ctx->cmd->qmp, args);
}

static void do_migrate(HmpContext *ctx, int argc, char **argv)
{
    JsonObject *args = json_object_new();

    json_object_set_string_member(args, "uri", argv[1]);
    if (hmp_flag(ctx, 'r')) {
        json_object_set_boolean_member(args, "resume", true);
    }
    hmp_qmp_simple(ctx, "migrate", args);
    /* The console waits for the end unless -d; QMP callers never can. */
    ctx->wait = !hmp_flag(ctx, 'd') && !strstr(ctx->out->str, "Error: ");
}

static void do_migrate_set_capability(HmpContext *ctx, int argc, char **argv)
{
    JsonObject *args, *cap;
    JsonArray *caps;
    bool state;

    if (!qemu_parse_bool(argv[2], &state)) {
        hmp_printf(ctx, "Expected 'on' or 'off'\n"
                   "Try \"help migrate_set_capability\" for more "
                   "information\n");
        return;
    }
    args = json_object_new();
    caps = json_array_new();
    cap = json_object_new();
    json_object_set_string_member(cap, "capability", argv[1]);
    json_object_set_boolean_member(cap, "state", state);
    json_array_add_object_element(caps, cap);
    json_object_set_array_member(args, "capabilities", caps);
    hmp_qmp_simple(ctx, "migrate-set-capabilities", args);
}

/*
 * The value as the parameter's type wants it, the type being that of its
 * current value.  Sizes take QEMU's suffixes; max-bandwidth counts in
 * MiB without one, as in QEMU's HMP.
 */
static JsonNode *parse_param_value(HmpContext *ctx, const char *name,
                                   const char *value, JsonNode *current)
{
    GType t = current && JSON_NODE_HOLDS_VALUE(current) ?
              json_node_get_value_type(current) : G_TYPE_STRING;
    JsonNode *node = json_node_new(JSON_NODE_VALUE);

    if (t == G_TYPE_BOOLEAN) {
        bool b;

        if (!qemu_parse_bool(value, &b)) {
            hmp_printf(ctx, "Error: Parameter '%s' expects 'on' or 'off'\n",
                       name);
            json_node_unref(node);
            return NULL;
        }
        json_node_set_boolean(node, b);
    } else if (t == G_TYPE_INT64) {
        uint64_t v;

        if (qemu_strtosz_suffix(value, !strcmp(name, "max-bandwidth") ?
                                'M' : 'B', &v) < 0 || v > INT64_MAX) {
            hmp_printf(ctx, "Error: Parameter '%s' expects a non-negative "
                       "number below 2^63\nOptional suffix k, M, G, T, P or "
                       "E means kilo-, mega-, giga-, tera-, peta-\nand "
                       "exabytes, respectively.\n", name);
            json_node_unref(node);
            return NULL;
        }
        json_node_set_int(node, v);
    } else {
        json_node_set_string(node, value);
    }
    return node;
}

static void do_migrate_set_parameter(HmpContext *ctx, int argc, char **argv)
{
    g_autoptr(JsonObject) params = hmp_query(ctx, "query-migrate-parameters");
    JsonObject *args;
    JsonNode *value;

    if (!params) {
        return;
    }
    /* Every parameter is in the query, tls-* too (unset: ""). */
    if (!json_object_has_member(params, argv[1])) {
        hmp_printf(ctx, "Error: invalid parameter value: %s (not a migration "
                   "parameter; 'info migrate_parameters' lists them)\n",
                   argv[1]);
        return;
    }
    value = parse_param_value(ctx, argv[1], argv[2],
                              json_object_get_member(params, argv[1]));
    if (!value) {
        return;
    }
    args = json_object_new();
    json_object_set_member(args, argv[1], value);
    hmp_qmp_simple(ctx, "migrate-set-parameters", args);
}

static void do_help(HmpContext *ctx, int argc, char **argv);
static void do_info(HmpContext *ctx, int argc, char **argv);

static const HmpCmd info_cmds[] = {
    { "migrate", "", "show migration status", info_migrate },
    { "migrate_capabilities", "", "show current migration capabilities",
      info_migrate_capabilities },
    { "migrate_parameters", "", "show current migration parameters",
      info_migrate_parameters },
    { "name", "", "show the current VM name", info_name },
    { "status", "", "show the current VM status (running|paused)",
      info_status },
    { "uuid", "", "show the current VM UUID", info_uuid },
    { "version", "", "show the version of vmig", info_version },
    { "vfio", "", "show the VFIO devices, their migration state and bytes",
      info_vfio },
    { NULL },
};

static const HmpCmd cmds[] = {
    { "cont|c", "", "resume emulation", do_forward, .qmp = "cont" },
    { "help|?", "[cmd]", "show the help", do_help, 0, 1 },
    { "info", "[subcommand]", "show various information about the system "
      "state", do_info, 0, 1 },
    { "migrate", "[-d] [-r] uri", "migrate to URI (using -d to not wait for "
      "completion)\n\t\t\t -r to resume a paused migration", do_migrate,
      1, 1, "dr", "string" },
    { "migrate_cancel", "", "cancel the current VM migration", do_forward,
      .qmp = "migrate_cancel" },
    { "migrate_continue", "state", "Continue migration from the given "
      "paused state", do_forward, 1, 1, NULL, "string", "migrate-continue",
      "state" },
    { "migrate_incoming", "uri", "Continue an incoming migration from an "
      "-incoming defer", do_forward, 1, 1, NULL, "string",
      "migrate-incoming", "uri" },
    { "migrate_pause", "", "Pause an ongoing migration (postcopy-only)",
      do_forward, .qmp = "migrate-pause" },
    { "migrate_recover", "uri", "Continue a paused incoming postcopy "
      "migration", do_forward, 1, 1, NULL, "string", "migrate-recover",
      "uri" },
    { "migrate_set_capability", "capability state", "Enable/Disable the "
      "usage of a capability for migration", do_migrate_set_capability,
      2, 2, NULL, "string" },
    { "migrate_set_parameter", "parameter value", "Set the parameter for "
      "migration", do_migrate_set_parameter, 2, 2, NULL, "string" },
    { "migrate_start_postcopy", "", "Followup to a migration command to "
      "switch the migration to postcopy mode", do_forward,
      .qmp = "migrate-start-postcopy" },
    { "quit|q", "", "quit the emulator", do_forward, .qmp = "quit" },
    { "stop|s", "", "stop emulation", do_forward, .qmp = "stop" },
    { NULL },
};

static bool name_matches(const char *names, const char *word)
{
    g_auto(GStrv) alts = g_strsplit(names, "|", -1);

    return g_strv_contains((const char *const *)alts, word);
}

static const HmpCmd *find_cmd(const HmpCmd *table, const char *word)
{
    for (const HmpCmd *c = table; c->name; c++) {
        if (name_matches(c->name, word)) {
            return c;
        }
    }
    return NULL;
}

static void print_help_line(HmpContext *ctx, const char *prefix,
                            const HmpCmd *c)
{
    hmp_printf(ctx, "%s%s %s -- %s\n", prefix, c->name, c->params, c->help);
}

static void do_help(HmpContext *ctx, int argc, char **argv)
{
    const HmpCmd *c;

    if (argc > 1 && !strcmp(argv[1], "info")) {
        for (c = info_cmds; c->name; c++) {
            print_help_line(ctx, "info ", c);
        }
        return;
    }
    for (c = cmds; c->name; c++) {
        if (argc < 2 || name_matches(c->name, argv[1])) {
            print_help_line(ctx, "", c);
        }
    }
}

static void do_info(HmpContext *ctx, int argc, char **argv)
{
    const HmpCmd *c;

    if (argc < 2) {
        do_help(ctx, 2, (char *[]){ "help", "info" });
        return;
    }
    c = find_cmd(info_cmds, argv[1]);
    if (!c) {
        hmp_printf(ctx, "unknown command: 'info %s'\n", argv[1]);
        return;
    }
    ctx->cmd = c;
    c->fn(ctx, argc - 1, argv + 1);
}

/* ---- Parsing ---- */

/*
 * Split @line into words: blanks separate them, double quotes group
 * (with \" and \\ inside), as QEMU's monitor reads a string argument.
 */
static GPtrArray *split_words(const char *line, const char **error)
{
    GPtrArray *words = g_ptr_array_new_with_free_func(g_free);
    const char *p = line;

    for (;;) {
        GString *w;

        while (g_ascii_isspace(*p)) {
            p++;
        }
        if (!*p) {
            return words;
        }
        w = g_string_new(NULL);
        while (*p && !g_ascii_isspace(*p)) {
            if (*p != '"') {
                g_string_append_c(w, *p++);
                continue;
            }
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
                    p++;
                }
                g_string_append_c(w, *p);
            }
            if (*p != '"') {
                *error = "unterminated string";
                g_string_free(w, TRUE);
                g_ptr_array_free(words, TRUE);
                return NULL;
            }
            p++;
        }
        g_ptr_array_add(words, g_string_free(w, FALSE));
    }
}

static void hmp_dispatch(HmpContext *ctx, const char *line)
{
    const char *error = NULL;
    g_autoptr(GPtrArray) words = split_words(line, &error);
    g_autofree char *flags = NULL;
    GPtrArray *args;
    const HmpCmd *c;

    if (!words) {
        hmp_printf(ctx, "%s\n", error);
        return;
    }
    if (!words->len) {
        return;
    }
    c = find_cmd(cmds, g_ptr_array_index(words, 0));
    if (!c) {
        hmp_printf(ctx, "unknown command: '%s'\n",
                   (char *)g_ptr_array_index(words, 0));
        return;
    }
    /* Flags first ("-d"), then the arguments proper. */
    args = g_ptr_array_new();
    g_ptr_array_add(args, g_ptr_array_index(words, 0));
    flags = g_strdup("");
    for (guint i = 1; i < words->len; i++) {
        const char *w = g_ptr_array_index(words, i);

        if (c->flags && args->len == 1 && w[0] == '-' && w[1] &&
            !w[2] && strchr(c->flags, w[1])) {
            char *more = g_strdup_printf("%s%c", flags, w[1]);

            g_free(flags);
            flags = more;
            continue;
        }
        g_ptr_array_add(args, (gpointer)w);
    }
    if ((int)args->len - 1 < c->min_args) {
        hmp_printf(ctx, "%s: %s expected\nTry \"help %s\" for more "
                   "information\n", (char *)g_ptr_array_index(words, 0),
                   c->arg_kind ? c->arg_kind : "argument",
                   (char *)g_ptr_array_index(words, 0));
    } else if ((int)args->len - 1 > c->max_args) {
        hmp_printf(ctx, "%s: extraneous characters at the end of line\n"
                   "Try \"help %s\" for more information\n",
                   (char *)g_ptr_array_index(words, 0),
                   (char *)g_ptr_array_index(words, 0));
    } else {
        ctx->flags = flags;
        ctx->cmd = c;
        c->fn(ctx, args->len, (char **)args->pdata);
    }
    g_ptr_array_free(args, TRUE);
}

char *hmp_run(const char *line, QmpSession *owner, bool *wait_migration)
{
    HmpContext ctx = { .owner = owner, .out = g_string_new(NULL) };

    hmp_dispatch(&ctx, line);
    if (wait_migration) {
        *wait_migration = ctx.wait;
    }
    return g_string_free(ctx.out, FALSE);
}

/* Whether the migration started by "migrate" has ended; prints its error. */
bool hmp_migration_finished(char **message)
{
    HmpContext ctx = { .out = g_string_new(NULL) };
    g_autoptr(JsonObject) info = hmp_query(&ctx, "query-migrate");
    const char *status = info ?
        json_object_get_string_member_with_default(info, "status", "") : "";
    bool done = !info || !strcmp(status, "completed") ||
                !strcmp(status, "failed") || !strcmp(status, "cancelled") ||
                !strcmp(status, "postcopy-paused") || !*status;

    if (info && !strcmp(status, "failed")) {
        hmp_printf(&ctx, "Error: %s\n",
                   json_object_get_string_member_with_default(
                       info, "error-desc", "migration failed"));
    }
    *message = g_string_free(ctx.out, FALSE);
    return done;
}

/* ---- human-monitor-command ---- */

char *hmp_crlf(const char *text)
{
    GString *s = g_string_sized_new(strlen(text) + 16);

    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            g_string_append_c(s, '\r');
        }
        g_string_append_c(s, *p);
    }
    return g_string_free(s, FALSE);
}

void qmp_human_monitor_command(const QapiHumanMonitorCommandArgs *args,
                               JsonNode **ret, Error **errp)
{
    g_autofree char *out = hmp_run(args->command_line, qmp_session_current(),
                                   NULL);
    g_autofree char *text = hmp_crlf(out);

    *ret = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(*ret, text);
}
