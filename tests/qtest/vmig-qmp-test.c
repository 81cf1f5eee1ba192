/*
 * QMP as a client sees it: greeting, negotiation, errors, framing,
 * events to several clients, run control, the object tree, quit.
 */
#include "qemu/osdep.h"
#include "libqtest.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>

/* A raw connection, for what libqtest deliberately does right. */
typedef struct RawConn {
    int fd;
    GString *buf;
} RawConn;

static RawConn *raw_connect(const char *path)
{
    RawConn *c = g_new0(RawConn, 1);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    c->buf = g_string_new(NULL);
    return c;
}

static void raw_close(RawConn *c)
{
    close(c->fd);
    g_string_free(c->buf, TRUE);
    g_free(c);
}

static void raw_send(RawConn *c, const char *text)
{
    g_assert_cmpint(send(c->fd, text, strlen(text), MSG_NOSIGNAL), ==, strlen(text));
}

/* The next line, as JSON; asserts CRLF framing. */
static JsonNode *raw_read(RawConn *c)
{
    for (;;) {
        char *nl = memchr(c->buf->str, '\n', c->buf->len);
        if (nl) {
            size_t len = nl - c->buf->str + 1;
            g_autofree char *line = g_strndup(c->buf->str, len);
            g_autoptr(JsonParser) p = json_parser_new();

            g_assert_true(len >= 2 && line[len - 2] == '\r');
            g_string_erase(c->buf, 0, len);
            g_assert_true(json_parser_load_from_data(p, line, -1, NULL));
            return json_node_copy(json_parser_get_root(p));
        }
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        g_assert_cmpint(poll(&pfd, 1, 30000), ==, 1);
        char tmp[4096];
        ssize_t n = read(c->fd, tmp, sizeof(tmp));
        g_assert_cmpint(n, >, 0);
        g_string_append_len(c->buf, tmp, n);
    }
}

static const char *error_class(JsonNode *r)
{
    JsonObject *o = qtest_obj(r);

    g_assert_true(json_object_has_member(o, "error"));
    return json_object_get_string_member(json_object_get_object_member(o, "error"),
                                         "class");
}

static const char *error_desc(JsonNode *r)
{
    return json_object_get_string_member(
        json_object_get_object_member(qtest_obj(r), "error"), "desc");
}

static QTestState *start_with_second_qmp(char **second, const char *extra)
{
    *second = qtest_tmp_path("qmp2", "sock");
    return qtest_initf("-m 32M -qmp unix:%s,server=on,wait=off %s", *second,
                       extra ? extra : "");
}

static void test_greeting_negotiation(void)
{
    g_autofree char *path = NULL;
    g_autoptr(QTestState) s = start_with_second_qmp(&path, NULL);
    RawConn *c = raw_connect(path);
    g_autoptr(JsonNode) greet = raw_read(c);
    JsonObject *qmp = json_object_get_object_member(qtest_obj(greet), "QMP");
    JsonObject *ver = json_object_get_object_member(
        json_object_get_object_member(qmp, "version"), "qemu");

    g_assert_true(json_object_has_member(ver, "major"));
    g_assert_true(json_object_has_member(ver, "minor"));
    g_assert_true(json_object_has_member(ver, "micro"));
    g_assert_true(JSON_NODE_HOLDS_ARRAY(json_object_get_member(qmp, "capabilities")));

    raw_send(c, "{\"execute\": \"query-status\"}\r\n");
    g_autoptr(JsonNode) r1 = raw_read(c);
    g_assert_cmpstr(error_class(r1), ==, "CommandNotFound");
    g_assert_nonnull(strstr(error_desc(r1), "qmp_capabilities"));

    raw_send(c, "{\"execute\": \"qmp_capabilities\"}");
    g_autoptr(JsonNode) r2 = raw_read(c);
    g_assert_true(json_object_has_member(qtest_obj(r2), "return"));

    raw_send(c, "{\"execute\": \"qmp_capabilities\"}");
    g_autoptr(JsonNode) r3 = raw_read(c);
    g_assert_cmpstr(error_class(r3), ==, "CommandNotFound");

    raw_send(c, "{\"execute\": \"query-status\", \"id\": \"abc\"}");
    g_autoptr(JsonNode) r4 = raw_read(c);
    g_assert_cmpstr(qtest_get_str(r4, "id"), ==, "abc");
    raw_close(c);
}

static void test_errors_keep_connection(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 32M");
    g_autofree char *d1 = qtest_qmp_expect_error(s, "CommandNotFound",
                                                 "{\"execute\": \"no-such-command\"}");
    g_autofree char *d2 = qtest_qmp_expect_error(s, "GenericError", "{\"exec\": 1}");
    g_autofree char *d3 = qtest_qmp_expect_error(s, "GenericError",
                                                 "{\"execute\": \"stop\", \"arguments\": []}");
    g_autofree char *d4 = qtest_qmp_expect_error(s, "GenericError", "[1, 2]");
    g_autofree char *d5 = qtest_qmp_expect_error(s, "GenericError",
                                                 "{\"execute\": \"stop\", \"bogus\": 1}");
    g_autofree char *d6 = qtest_qmp_expect_error(s, "GenericError",
                                                 "{\"execute\": \"qom-get\", \"arguments\": {}}");

    g_assert_nonnull(strstr(d1, "no-such-command"));
    g_assert_nonnull(d2);
    g_assert_nonnull(d3);
    g_assert_nonnull(d4);
    g_assert_nonnull(strstr(d5, "bogus"));
    g_assert_nonnull(strstr(d6, "path"));

    /* Broken JSON gets an error reply; the connection stays usable. */
    qtest_qmp_send_raw(s, "{\"execute\": \"stop\"]\r\n", 21);
    g_autoptr(JsonNode) r = qtest_qmp_receive(s);
    g_assert_cmpstr(error_class(r), ==, "GenericError");
    g_autofree char *st = qtest_status(s);
    g_assert_cmpstr(st, ==, "running");
}

static void test_framing(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 32M");
    const char *two = "{\"execute\": \"query-name\", \"id\": 1}"
                      "{\"execute\": \"query-status\", \"id\": 2}";
    const char *one = "{\"execute\": \"query-version\", \"id\": \"x{}\\\"\"}";

    qtest_qmp_send_raw(s, two, strlen(two));
    g_autoptr(JsonNode) r1 = qtest_qmp_receive(s);
    g_autoptr(JsonNode) r2 = qtest_qmp_receive(s);
    g_assert_cmpint(qtest_get_int(r1, "id"), ==, 1);
    g_assert_cmpint(qtest_get_int(r2, "id"), ==, 2);

    /* One byte per write. */
    for (const char *p = one; *p; p++) {
        qtest_qmp_send_raw(s, p, 1);
    }
    g_autoptr(JsonNode) r3 = qtest_qmp_receive(s);
    g_assert_cmpstr(qtest_get_str(r3, "id"), ==, "x{}\"");
}

/*
 * An unbalanced '{' costs one error reply; the message after it is
 * answered normally.  So does a partial message ended by a 0xff byte.
 */
static void test_unbalanced_recovers(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 32M -S");
    const char *seq = "{\"execute\":\"cont\"\n"
                      "{\"execute\":\"query-status\", \"id\": 7}\n";
    const char *reset = "{\"execute\": \"cont\", \"arguments\": {\xff"
                        "{\"execute\":\"query-status\", \"id\": 8}\n";

    qtest_qmp_send_raw(s, seq, strlen(seq));
    g_autoptr(JsonNode) r1 = qtest_qmp_receive(s);
    g_assert_cmpstr(error_class(r1), ==, "GenericError");
    g_autoptr(JsonNode) r2 = qtest_qmp_receive(s);
    g_assert_cmpint(qtest_get_int(r2, "id"), ==, 7);
    JsonObject *ret = json_object_get_object_member(qtest_obj(r2), "return");
    g_assert_nonnull(ret);
    /* The broken "cont" never ran. */
    g_assert_cmpstr(json_object_get_string_member(ret, "status"), ==,
                    "prelaunch");

    qtest_qmp_send_raw(s, reset, strlen(reset));
    g_autoptr(JsonNode) r3 = qtest_qmp_receive(s);
    g_assert_cmpstr(error_class(r3), ==, "GenericError");
    g_autoptr(JsonNode) r4 = qtest_qmp_receive(s);
    g_assert_cmpint(qtest_get_int(r4, "id"), ==, 8);
    g_autofree char *st = qtest_status(s);
    g_assert_cmpstr(st, ==, "prelaunch");
}

static void test_stop_cont_events(void)
{
    g_autofree char *path = NULL;
    g_autoptr(QTestState) s = start_with_second_qmp(&path, "-S -guest stress,ws=8M");
    QTestState *c2 = qtest_attach(s, path);
    g_autofree char *st1 = qtest_status(s);

    g_assert_cmpstr(st1, ==, "prelaunch");
    qtest_qmp_assert_ok(s, "{\"execute\": \"cont\"}");
    g_autoptr(JsonNode) e1 = qtest_qmp_eventwait(s, "RESUME", 10000);
    g_autoptr(JsonNode) e1b = qtest_qmp_eventwait(c2, "RESUME", 10000);
    g_assert_nonnull(e1);
    g_assert_nonnull(e1b);
    g_autofree char *st2 = qtest_status(s);
    g_assert_cmpstr(st2, ==, "running");

    qtest_qmp_assert_ok(c2, "{\"execute\": \"stop\"}");
    g_autoptr(JsonNode) e2 = qtest_qmp_eventwait(s, "STOP", 10000);
    g_assert_nonnull(e2);
    g_autofree char *st3 = qtest_status(s);
    g_assert_cmpstr(st3, ==, "paused");
    qtest_detach(c2);
}

static bool list_has(JsonNode *list, const char *name, const char *type)
{
    JsonArray *a = json_node_get_array(list);

    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = json_array_get_object_element(a, i);
        if (!strcmp(json_object_get_string_member(o, "name"), name) &&
            (!type || !strcmp(json_object_get_string_member(o, "type"), type))) {
            return true;
        }
    }
    return false;
}

static void test_qom(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 64M -guest stress,ws=8M");
    g_autoptr(JsonNode) root = qtest_qmp_assert_success(s,
        "{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/\"}}");
    g_autoptr(JsonNode) objs = qtest_qmp_assert_success(s,
        "{\"execute\": \"qom-list\", \"arguments\": {\"path\": \"/objects\"}}");
    g_autoptr(JsonNode) size = qtest_qmp_assert_success(s,
        "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/objects/pc.ram\","
        " \"property\": \"size\"}}");

    g_assert_true(list_has(root, "machine", NULL));
    g_assert_true(list_has(objs, "pc.ram", "child<memory-backend-memfd>"));
    g_assert_cmpint(json_node_get_int(size), ==, 64 * MiB);

    /* A runtime property of the guest program. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"qom-set\", \"arguments\": {\"path\":"
                        " \"/machine/guest\", \"property\": \"rate\", \"value\": 1048576}}");
    g_autoptr(JsonNode) rate = qtest_qmp_assert_success(s,
        "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/machine/guest\","
        " \"property\": \"rate\"}}");
    g_assert_cmpint(json_node_get_int(rate), ==, 1048576);

    g_autofree char *e1 = qtest_qmp_expect_error(s, NULL,
        "{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"/objects/pc.ram\","
        " \"property\": \"size\", \"value\": 1}}");
    g_autofree char *e2 = qtest_qmp_expect_error(s, "DeviceNotFound",
        "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/nowhere\","
        " \"property\": \"x\"}}");
    g_autofree char *e3 = qtest_qmp_expect_error(s, NULL,
        "{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"/machine/guest\","
        " \"property\": \"rate\", \"value\": \"fast\"}}");
    g_assert_nonnull(strstr(e1, "size"));
    g_assert_nonnull(e2);
    g_assert_nonnull(e3);
}

static void test_queries(void)
{
    g_autoptr(QTestState) s = qtest_init(
        "-m 32M -name testvm -uuid 550e8400-e29b-41d4-a716-446655440000");
    g_autoptr(JsonNode) name = qtest_qmp_assert_success(s, "{\"execute\": \"query-name\"}");
    g_autoptr(JsonNode) cmds = qtest_qmp_assert_success(s, "{\"execute\": \"query-commands\"}");
    g_autoptr(JsonNode) ver = qtest_qmp_assert_success(s, "{\"execute\": \"query-version\"}");

    g_assert_cmpstr(qtest_get_str(name, "name"), ==, "testvm");
    g_autoptr(JsonNode) uuid = qtest_qmp_assert_success(s, "{\"execute\": \"query-uuid\"}");
    g_assert_cmpstr(qtest_get_str(uuid, "UUID"), ==, "550e8400-e29b-41d4-a716-446655440000");
    g_assert_true(list_has(cmds, "query-status", NULL));
    g_assert_true(list_has(cmds, "qom-set", NULL));
    g_assert_true(json_object_has_member(qtest_obj(ver), "qemu"));
}

/* True when the peer closed (EOF) within 30 s; drops anything before. */
static bool raw_wait_eof(RawConn *c)
{
    for (;;) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        char tmp[4096];
        ssize_t n;

        g_assert_cmpint(poll(&pfd, 1, 30000), ==, 1);
        n = read(c->fd, tmp, sizeof(tmp));
        if (n <= 0) {
            return true;
        }
    }
}

/* The 65th client is told why before it is closed; a free place is taken. */
static void test_client_limit(void)
{
    g_autofree char *path = NULL;
    g_autoptr(QTestState) s = start_with_second_qmp(&path, NULL);
    g_autoptr(GPtrArray) conns = g_ptr_array_new();
    RawConn *c = NULL;
    JsonNode *first = NULL;

    /* libqtest's own connection holds one place. */
    for (int i = 0; i < 70; i++) {
        c = raw_connect(path);
        first = raw_read(c);
        if (json_object_has_member(qtest_obj(first), "error")) {
            break;
        }
        g_assert_true(json_object_has_member(qtest_obj(first), "QMP"));
        json_node_unref(first);
        first = NULL;
        g_ptr_array_add(conns, c);
    }
    g_assert_nonnull(first);
    g_assert_cmpuint(conns->len, ==, 63);
    g_assert_cmpstr(error_class(first), ==, "GenericError");
    g_test_message("%s", error_desc(first));
    g_assert_nonnull(strstr(error_desc(first), "too many QMP clients: 64 are "
                            "connected, the most vmig takes; connection "
                            "refused"));
    json_node_unref(first);
    g_assert_true(raw_wait_eof(c));
    raw_close(c);
    /* The others were not disturbed. */
    qtest_qmp_assert_ok(s, "{\"execute\": \"query-status\"}");

    /* Once one leaves, a new client gets its place. */
    raw_close(g_ptr_array_steal_index(conns, 0));
    for (int tries = 0;; tries++) {
        g_autoptr(JsonNode) greet = NULL;

        g_assert_cmpint(tries, <, 500);
        c = raw_connect(path);
        greet = raw_read(c);
        if (json_object_has_member(qtest_obj(greet), "QMP")) {
            break;
        }
        /* Its close not yet seen: try again. */
        raw_close(c);
        g_usleep(10 * 1000);
    }
    raw_close(c);
    for (guint i = 0; i < conns->len; i++) {
        raw_close(conns->pdata[i]);
    }
}

/*
 * A client that never negotiates is told so and closed after the
 * negotiation timeout; a negotiated one may stay idle.
 */
static void test_negotiation_timeout(void)
{
    g_autofree char *path = qtest_tmp_path("qmp2", "sock");
    g_autoptr(QTestState) s = qtest_initf(
        "-m 32M -qmp unix:%s,server=on,wait=off,x-negotiation-timeout=300",
        path);
    RawConn *idle = raw_connect(path), *quiet = raw_connect(path);
    g_autoptr(JsonNode) g1 = raw_read(idle);
    g_autoptr(JsonNode) g2 = raw_read(quiet);
    g_autoptr(JsonNode) r = NULL;
    g_autoptr(JsonNode) err = NULL;
    g_autofree char *out = NULL, *errs = NULL;

    raw_send(quiet, "{\"execute\": \"qmp_capabilities\"}");
    r = raw_read(quiet);
    g_assert_true(json_object_has_member(qtest_obj(r), "return"));

    err = raw_read(idle);
    g_assert_cmpstr(error_class(err), ==, "GenericError");
    g_assert_nonnull(strstr(error_desc(err), "no qmp_capabilities within "
                            "300 ms of connecting; closing the connection"));
    g_assert_true(raw_wait_eof(idle));
    raw_close(idle);

    /* Idle far longer than the timeout, but negotiated: still served. */
    g_usleep(900 * 1000);
    raw_send(quiet, "{\"execute\": \"query-status\", \"id\": 7}");
    json_node_unref(g_steal_pointer(&r));
    r = raw_read(quiet);
    g_assert_cmpint(qtest_get_int(r, "id"), ==, 7);
    raw_close(quiet);

    g_assert_cmpint(qtest_run("-qmp unix:/tmp/x.sock,server=on,wait=off,"
                              "x-negotiation-timeout=soon", &out, &errs),
                    ==, 1);
    g_assert_nonnull(strstr(errs, "x-negotiation-timeout='soon' is not a "
                            "number of milliseconds"));
}

static void test_quit(void)
{
    QTestState *s = qtest_init("-m 32M -guest stress,ws=4M");

    qtest_qmp_assert_ok(s, "{\"execute\": \"quit\"}");
    g_autoptr(JsonNode) ev = qtest_qmp_eventwait(s, "SHUTDOWN", 10000);
    g_assert_nonnull(ev);
    /* The VM stops on the way out, but as in QEMU no STOP follows. */
    qtest_qmp_wait_close(s, 60000);
    g_assert_null(qtest_qmp_eventwait(s, "STOP", 0));
    g_assert_cmpint(qtest_wait_exit(s, 10000), ==, 0);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/greeting-negotiation", test_greeting_negotiation);
    g_test_add_func("/qmp/errors-keep-connection", test_errors_keep_connection);
    g_test_add_func("/qmp/framing", test_framing);
    g_test_add_func("/qmp/unbalanced-recovers", test_unbalanced_recovers);
    g_test_add_func("/qmp/stop-cont-events", test_stop_cont_events);
    g_test_add_func("/qmp/qom", test_qom);
    g_test_add_func("/qmp/queries", test_queries);
    g_test_add_func("/qmp/quit", test_quit);
    g_test_add_func("/qmp/client-limit", test_client_limit);
    g_test_add_func("/qmp/negotiation-timeout", test_negotiation_timeout);
    return g_test_run();
}
