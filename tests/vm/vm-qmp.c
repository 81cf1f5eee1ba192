/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vm-qmp: one QMP command from a shell script, for the test VM's cases
 * (busybox has no socat).
 *
 *   vm-qmp [-t SECONDS] [-u MEMBER=VALUE[,VALUE...]] [-g MEMBER]
 *          SOCKET COMMAND [ARGUMENTS-JSON]
 *
 * Connects to SOCKET (waiting for it to appear: the case has just started
 * vmig in the background), negotiates, runs COMMAND and prints its
 * "return" as one line of JSON.  An error reply prints its class and desc
 * on stderr and exits 1.
 *
 *   -u  repeat the command until the string MEMBER of its return is one of
 *       the VALUEs (say, query-migrate until status=completed,failed)
 *   -g  print only MEMBER of the return (a string without its quotes)
 *   -t  give up after SECONDS (default 60), exit 2
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>

#define POLL_INTERVAL_US (20 * 1000)

typedef struct Qmp {
    GSocketConnection *conn;
    GDataInputStream *in;
    GOutputStream *out;
} Qmp;

static gint64 deadline;

static void G_GNUC_NORETURN timed_out(const char *what)
{
    fprintf(stderr, "vm-qmp: timed out %s\n", what);
    exit(2);
}

/* vmig binds its socket only after it has started: retry until it is there. */
static GSocketConnection *connect_retrying(const char *path)
{
    g_autoptr(GSocketClient) client = g_socket_client_new();
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);

    for (;;) {
        g_autoptr(GError) err = NULL;
        GSocketConnection *conn =
            g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL,
                                    &err);

        if (conn) {
            return conn;
        }
        if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) &&
            !g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)) {
            fprintf(stderr, "vm-qmp: %s: %s\n", path, err->message);
            exit(1);
        }
        if (g_get_monotonic_time() > deadline) {
            timed_out("waiting for the QMP socket");
        }
        g_usleep(POLL_INTERVAL_US);
    }
}

/* The next message that is not an event, as a JSON object. */
static JsonNode *receive(Qmp *q)
{
    for (;;) {
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonParser) parser = json_parser_new();
        g_autofree char *line = g_data_input_stream_read_line(q->in, NULL,
                                                              NULL, &err);
        JsonNode *root;

        if (!line) {
            fprintf(stderr, "vm-qmp: %s\n",
                    err ? err->message : "vmig closed the connection");
            exit(1);
        }
        if (!json_parser_load_from_data(parser, line, -1, &err) ||
            !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
            fprintf(stderr, "vm-qmp: not a QMP message: %s\n", line);
            exit(1);
        }
        root = json_parser_get_root(parser);
        if (!json_object_has_member(json_node_get_object(root), "event")) {
            return json_node_copy(root);
        }
    }
}

static void send_line(Qmp *q, const char *text)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *line = g_strconcat(text, "\n", NULL);

    if (!g_output_stream_write_all(q->out, line, strlen(line), NULL, NULL,
                                   &err)) {
        fprintf(stderr, "vm-qmp: %s\n", err->message);
        exit(1);
    }
}

/* Run one command; its "return" member, or exit 1 on an error reply. */
static JsonNode *execute(Qmp *q, const char *command, const char *args)
{
    g_autofree char *text = args
        ? g_strdup_printf("{\"execute\": \"%s\", \"arguments\": %s}", command,
                          args)
        : g_strdup_printf("{\"execute\": \"%s\"}", command);
    g_autoptr(JsonNode) reply = NULL;
    JsonObject *obj;

    send_line(q, text);
    reply = receive(q);
    obj = json_node_get_object(reply);
    if (json_object_has_member(obj, "error")) {
        JsonObject *e = json_object_get_object_member(obj, "error");

        fprintf(stderr, "vm-qmp: %s: %s: %s\n", command,
                json_object_get_string_member_with_default(e, "class", "?"),
                json_object_get_string_member_with_default(e, "desc", "?"));
        exit(1);
    }
    if (!json_object_has_member(obj, "return")) {
        fprintf(stderr, "vm-qmp: %s: a reply without \"return\"\n", command);
        exit(1);
    }
    return json_node_copy(json_object_get_member(obj, "return"));
}

static bool member_is_one_of(JsonNode *ret, const char *member,
                             char **values)
{
    const char *v;

    if (!JSON_NODE_HOLDS_OBJECT(ret)) {
        return false;
    }
    v = json_object_get_string_member_with_default(json_node_get_object(ret),
                                                   member, NULL);
    return v && g_strv_contains((const char *const *)values, v);
}

static void print_result(JsonNode *ret, const char *member)
{
    g_autofree char *text = NULL;

    if (member) {
        JsonObject *obj = JSON_NODE_HOLDS_OBJECT(ret)
                          ? json_node_get_object(ret) : NULL;
        JsonNode *m = obj ? json_object_get_member(obj, member) : NULL;

        if (!m) {
            fprintf(stderr, "vm-qmp: the reply has no member %s\n", member);
            exit(1);
        }
        if (JSON_NODE_HOLDS_VALUE(m) &&
            json_node_get_value_type(m) == G_TYPE_STRING) {
            printf("%s\n", json_node_get_string(m));
            return;
        }
        ret = m;
    }
    text = json_to_string(ret, FALSE);
    printf("%s\n", text);
}

static void G_GNUC_NORETURN usage(void)
{
    fprintf(stderr, "usage: vm-qmp [-t SECONDS] [-u MEMBER=VALUE[,VALUE...]] "
            "[-g MEMBER] SOCKET COMMAND [ARGUMENTS-JSON]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    g_autofree char *until_member = NULL;
    g_auto(GStrv) until_values = NULL;
    const char *get_member = NULL;
    int timeout_s = 60;
    Qmp q;
    int opt;

    while ((opt = getopt(argc, argv, "t:u:g:")) != -1) {
        switch (opt) {
        case 't':
            timeout_s = atoi(optarg);
            break;
        case 'u': {
            const char *eq = strchr(optarg, '=');

            if (!eq) {
                usage();
            }
            until_member = g_strndup(optarg, eq - optarg);
            until_values = g_strsplit(eq + 1, ",", -1);
            break;
        }
        case 'g':
            get_member = optarg;
            break;
        default:
            usage();
        }
    }
    if (argc - optind < 2 || argc - optind > 3 || timeout_s <= 0) {
        usage();
    }
    deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;

    q.conn = connect_retrying(argv[optind]);
    q.in = g_data_input_stream_new(
        g_io_stream_get_input_stream(G_IO_STREAM(q.conn)));
    q.out = g_io_stream_get_output_stream(G_IO_STREAM(q.conn));
    json_node_unref(receive(&q));       /* the greeting */
    json_node_unref(execute(&q, "qmp_capabilities", NULL));

    for (;;) {
        g_autoptr(JsonNode) ret = execute(&q, argv[optind + 1],
                                          argv[optind + 2]);

        if (!until_member ||
            member_is_one_of(ret, until_member, until_values)) {
            print_result(ret, get_member);
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            print_result(ret, get_member);
            timed_out("waiting for the reply's member to change");
        }
        g_usleep(POLL_INTERVAL_US);
    }
    g_object_unref(q.in);
    g_object_unref(q.conn);
    return 0;
}
