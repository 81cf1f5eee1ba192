/*
 * Unit tests of the QMP server (monitor/qmp.c, qmp-listen.c): real
 * sockets, with the test acting as the client and pumping the default
 * main context in between, as vmig's main loop would.  Every wait is
 * bounded; a bound that runs out is a failure, not a timing assertion.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "system/runstate.h"
#include "monitor/monitor-internal.h"

#include <glib-unix.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#define WAIT_LIMIT_US (20 * G_USEC_PER_SEC)

typedef struct TestClient {
    int fd;
    GString *in;
} TestClient;

static char *tmp_dir;

static void wait_for_clients(unsigned n);

static void pump(void)
{
    while (g_main_context_iteration(NULL, FALSE)) {
        /* run everything ready */
    }
}

static TestClient *client_from_fd(int fd)
{
    TestClient *c = g_new0(TestClient, 1);

    c->fd = fd;
    c->in = g_string_new(NULL);
    g_assert_true(g_unix_set_fd_nonblocking(fd, TRUE, NULL));
    return c;
}

static void client_close(TestClient *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    g_string_free(c->in, TRUE);
    g_free(c);
}

/* Next line from the server, parsed; NULL on EOF. */
static JsonObject *client_read(TestClient *c)
{
    gint64 deadline = g_get_monotonic_time() + WAIT_LIMIT_US;

    for (;;) {
        char *eol = strstr(c->in->str, "\r\n");
        if (eol) {
            g_autoptr(JsonParser) parser = json_parser_new();
            size_t len = eol - c->in->str;
            g_autoptr(GError) gerr = NULL;
            JsonObject *obj;

            if (!json_parser_load_from_data(parser, c->in->str, len, &gerr)) {
                g_error("bad line from server: %.*s: %s", (int)len, c->in->str,
                        gerr->message);
            }
            g_assert_true(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)));
            obj = json_object_ref(json_node_get_object(json_parser_get_root(parser)));
            g_string_erase(c->in, 0, len + 2);
            return obj;
        }
        pump();
        char buf[4096];
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            g_string_append_len(c->in, buf, n);
            continue;
        }
        if (n == 0) {
            return NULL;
        }
        g_assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        if (g_get_monotonic_time() > deadline) {
            g_error("no reply from the QMP server");
        }
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        poll(&pfd, 1, 5);
    }
}

/* Send everything, letting the server read while the socket is full. */
static void client_write(TestClient *c, const char *data, size_t len)
{
    gint64 deadline = g_get_monotonic_time() + WAIT_LIMIT_US;

    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= n;
            continue;
        }
        g_assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        pump();
    }
}

static void client_send(TestClient *c, const char *text)
{
    client_write(c, text, strlen(text));
}

static void assert_return(JsonObject *reply, int64_t id)
{
    g_assert_nonnull(reply);
    if (!json_object_has_member(reply, "return")) {
        g_autofree char *text = qmp_object_to_line(reply);
        g_error("expected a return with id %" PRId64 ", got %s", id, text);
    }
    if (id >= 0) {
        g_assert_cmpint(json_object_get_int_member(reply, "id"), ==, id);
    }
}

static void assert_error(JsonObject *reply, const char *cls, const char *part)
{
    JsonObject *err;

    g_assert_nonnull(reply);
    if (!json_object_has_member(reply, "error")) {
        g_autofree char *text = qmp_object_to_line(reply);
        g_error("expected an error '%s', got %s", part, text);
    }
    err = json_object_get_object_member(reply, "error");
    g_assert_cmpstr(json_object_get_string_member(err, "class"), ==, cls);
    g_assert_nonnull(strstr(json_object_get_string_member(err, "desc"), part));
}

static void expect_return(TestClient *c, int64_t id)
{
    g_autoptr(JsonObject) reply = client_read(c);

    assert_return(reply, id);
}

static void expect_error(TestClient *c, const char *cls, const char *part)
{
    g_autoptr(JsonObject) reply = client_read(c);

    assert_error(reply, cls, part);
}

static void expect_greeting(TestClient *c)
{
    g_autoptr(JsonObject) greeting = client_read(c);
    JsonObject *qmp;

    g_assert_nonnull(greeting);
    qmp = json_object_get_object_member(greeting, "QMP");
    g_assert_nonnull(qmp);
    g_assert_true(json_object_has_member(qmp, "version"));
    g_assert_true(json_object_has_member(qmp, "capabilities"));
}

static TestClient *client_pair(void)
{
    int sv[2];
    TestClient *c;

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    g_assert_true(monitor_qmp_add_fd(sv[0], &error_abort));
    c = client_from_fd(sv[1]);
    expect_greeting(c);
    return c;
}

static void negotiate(TestClient *c)
{
    client_send(c, "{\"execute\": \"qmp_capabilities\", \"id\": 0}");
    expect_return(c, 0);
}

/* ---- Tests ---- */

static void test_negotiation(void)
{
    TestClient *c = client_pair();

    client_send(c, "{\"execute\": \"query-status\", \"id\": 1}");
    expect_error(c, "CommandNotFound", "Expecting capabilities negotiation");
    negotiate(c);
    client_send(c, "{\"execute\": \"query-version\", \"id\": 2}");
    expect_return(c, 2);
    client_send(c, "{\"execute\": \"qmp_capabilities\", \"id\": 3}");
    expect_error(c, "CommandNotFound", "already complete");
    client_close(c);
    monitor_cleanup();
}

static void test_framing(void)
{
    TestClient *c = client_pair();
    const char *one = "{\"execute\": \"query-version\", \"id\": 10}";
    GString *big;

    negotiate(c);
    /* A byte at a time, with the server reading in between. */
    for (const char *p = one; *p; p++) {
        client_write(c, p, 1);
        pump();
    }
    expect_return(c, 10);

    /* Several in one write: replies in order. */
    client_send(c, "{\"execute\": \"query-version\", \"id\": 11}\r\n"
                "{\"execute\": \"query-name\", \"id\": 12}"
                "{\"execute\": \"query-commands\", \"id\": 13}");
    expect_return(c, 11);
    expect_return(c, 12);
    expect_return(c, 13);

    /* Garbage, a bad message and a forgotten quote each get an error. */
    client_send(c, "xyz {\"execute\": \"query-name\", \"id\": 14}\n"
                "[1] {\"id\": 15}\n{\"execute\": \"stop\n"
                "{\"execute\": \"query-name\", \"id\": 16}");
    expect_error(c, "GenericError", "JSON parse error");
    expect_return(c, 14);
    expect_error(c, "GenericError", "must be a JSON object");
    expect_error(c, "GenericError", "no 'execute' member");
    expect_error(c, "GenericError", "unterminated string");
    expect_return(c, 16);

    /* Over the size limit: one error, then back in step. */
    big = g_string_new("{\"execute\": \"query-name\", \"arguments\": {\"pad\": \"");
    while (big->len < QMP_MAX_MESSAGE_SIZE + 4096) {
        g_string_append(big, "0123456789abcdef{}[]");
    }
    g_string_append(big, "\"}, \"id\": 17}{\"execute\": \"query-name\", \"id\": 18}");
    client_write(c, big->str, big->len);
    g_string_free(big, TRUE);
    expect_error(c, "GenericError", "too large");
    expect_return(c, 18);

    client_close(c);
    monitor_cleanup();
}

#define EVENT_THREADS 4
#define EVENTS_PER_THREAD 50

static gpointer emit_events(gpointer opaque)
{
    int64_t thread = GPOINTER_TO_INT(opaque);

    for (int64_t seq = 0; seq < EVENTS_PER_THREAD; seq++) {
        JsonObject *data = json_object_new();
        json_object_set_int_member(data, "thread", thread);
        json_object_set_int_member(data, "seq", seq);
        qmp_event_emit("X_TEST_EVENT", data);
    }
    return NULL;
}

static void test_events(void)
{
    TestClient *a = client_pair();
    TestClient *b = client_pair();
    GThread *threads[EVENT_THREADS];
    int64_t next_seq[EVENT_THREADS] = { 0 };

    negotiate(a);
    for (int i = 0; i < EVENT_THREADS; i++) {
        threads[i] = g_thread_new("emitter", emit_events, GINT_TO_POINTER(i));
    }
    for (int n = 0; n < EVENT_THREADS * EVENTS_PER_THREAD; n++) {
        g_autoptr(JsonObject) ev = client_read(a);
        JsonObject *data, *ts;
        int64_t thread;

        g_assert_nonnull(ev);
        g_assert_cmpstr(json_object_get_string_member(ev, "event"), ==,
                        "X_TEST_EVENT");
        ts = json_object_get_object_member(ev, "timestamp");
        g_assert_cmpint(json_object_get_int_member(ts, "seconds"), >, 0);
        g_assert_cmpint(json_object_get_int_member(ts, "microseconds"), <,
                        G_USEC_PER_SEC);
        data = json_object_get_object_member(ev, "data");
        thread = json_object_get_int_member(data, "thread");
        g_assert_cmpint(thread, >=, 0);
        g_assert_cmpint(thread, <, EVENT_THREADS);
        /* Each emitter's events arrive in the order it emitted them. */
        g_assert_cmpint(json_object_get_int_member(data, "seq"), ==,
                        next_seq[thread]);
        next_seq[thread]++;
    }
    for (int i = 0; i < EVENT_THREADS; i++) {
        g_thread_join(threads[i]);
    }

    /* b never negotiated: its next line is the reply, not an event. */
    negotiate(b);
    /* Now both get events; one without data has no "data" member. */
    qmp_event_emit("X_TEST_BARE", NULL);
    for (TestClient **c = (TestClient *[]){ a, b, NULL }; *c; c++) {
        g_autoptr(JsonObject) ev = client_read(*c);
        g_assert_cmpstr(json_object_get_string_member(ev, "event"), ==,
                        "X_TEST_BARE");
        g_assert_false(json_object_has_member(ev, "data"));
    }
    client_close(a);
    client_close(b);
    monitor_cleanup();
}

static void test_run_state_events(void)
{
    TestClient *c = client_pair();

    negotiate(c);
    runstate_set(RUN_STATE_PAUSED);
    client_send(c, "{\"execute\": \"cont\", \"id\": 30}");
    {
        g_autoptr(JsonObject) ev = client_read(c);
        g_assert_cmpstr(json_object_get_string_member(ev, "event"), ==, "RESUME");
    }
    expect_return(c, 30);
    client_send(c, "{\"execute\": \"stop\", \"id\": 31}");
    {
        g_autoptr(JsonObject) ev = client_read(c);
        g_assert_cmpstr(json_object_get_string_member(ev, "event"), ==, "STOP");
    }
    expect_return(c, 31);
    client_close(c);
    monitor_cleanup();
}

/* Send @text with @fd attached as SCM_RIGHTS. */
static void send_with_fd(TestClient *c, const char *text, int fd)
{
    union {
        char space[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control.space, .msg_controllen = sizeof(control.space),
    };
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    g_assert_cmpint(sendmsg(c->fd, &msg, MSG_NOSIGNAL), ==, (ssize_t)strlen(text));
}

static void test_getfd(void)
{
    TestClient *c = client_pair();
    int p[2], q[2], fd;
    char ch;

    negotiate(c);
    g_assert_cmpint(pipe(p), ==, 0);
    send_with_fd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"pipe\"}, "
                 "\"id\": 40}", p[1]);
    close(p[1]);
    expect_return(c, 40);
    fd = monitor_fd_take("pipe", &error_abort);
    g_assert_cmpint(write(fd, "!", 1), ==, 1);
    close(fd);
    g_assert_cmpint(read(p[0], &ch, 1), ==, 1);
    g_assert_cmpint(ch, ==, '!');
    close(p[0]);

    /* No fd this time. */
    client_send(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"none\"}}");
    expect_error(c, "GenericError", "no file descriptor");

    /* An fd passed but never claimed is closed when the client goes. */
    g_assert_cmpint(pipe(q), ==, 0);
    send_with_fd(c, "{\"execute\": \"query-name\", \"id\": 41}", q[1]);
    close(q[1]);
    expect_return(c, 41);
    client_close(c);
    {
        gint64 deadline = g_get_monotonic_time() + WAIT_LIMIT_US;
        g_assert_true(g_unix_set_fd_nonblocking(q[0], TRUE, NULL));
        while (read(q[0], &ch, 1) != 0) {
            g_assert_cmpint(errno, ==, EAGAIN);
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
            pump();
            g_usleep(1000);
        }
    }
    close(q[0]);
    monitor_cleanup();
}

/* Whether the last write end of the pipe read by @read_end is closed. */
static bool pipe_writers_gone(int read_end)
{
    char ch;
    ssize_t n;

    g_assert_true(g_unix_set_fd_nonblocking(read_end, TRUE, NULL));
    n = read(read_end, &ch, 1);
    g_assert_true(n == 0 || (n < 0 && errno == EAGAIN));
    return n == 0;
}

#define PASSED_PIPES 40

static void test_pending_fd_limit(void)
{
    TestClient *c = client_pair();
    int read_ends[PASSED_PIPES];
    char ch;
    int fd;

    negotiate(c);
    for (int i = 0; i < PASSED_PIPES; i++) {
        g_autofree char *req = g_strdup_printf(
            "{\"execute\": \"query-name\", \"id\": %d}", 100 + i);
        int p[2];

        g_assert_cmpint(pipe(p), ==, 0);
        read_ends[i] = p[0];
        send_with_fd(c, req, p[1]);
        close(p[1]);
        expect_return(c, 100 + i);
    }
    /* The server keeps 32 unclaimed fds per client and closes the rest. */
    for (int i = 0; i < PASSED_PIPES; i++) {
        g_assert_cmpint(pipe_writers_gone(read_ends[i]), ==, i >= 32);
    }
    /* getfd claims the oldest. */
    client_send(c, "{\"execute\": \"getfd\", \"arguments\": "
                "{\"fdname\": \"oldest\"}, \"id\": 99}");
    expect_return(c, 99);
    fd = monitor_fd_take("oldest", &error_abort);
    g_assert_cmpint(write(fd, "o", 1), ==, 1);
    close(fd);
    g_assert_cmpint(read(read_ends[0], &ch, 1), ==, 1);

    client_close(c);
    wait_for_clients(0);
    for (int i = 0; i < PASSED_PIPES; i++) {
        g_assert_true(pipe_writers_gone(read_ends[i]));
        close(read_ends[i]);
    }
    monitor_cleanup();
}

static void wait_for_clients(unsigned n)
{
    gint64 deadline = g_get_monotonic_time() + WAIT_LIMIT_US;

    while (monitor_qmp_client_count() != n) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        pump();
        g_usleep(1000);
    }
}

static void test_disconnect(void)
{
    TestClient *a = client_pair();
    TestClient *b = client_pair();
    TestClient *c = client_pair();

    g_assert_cmpuint(monitor_qmp_client_count(), ==, 3);
    /* Half a message, then gone. */
    client_send(a, "{\"execute\": \"query-");
    pump();
    client_close(a);
    wait_for_clients(2);

    /* A request whose sender is gone before the reply. */
    negotiate(b);
    client_send(b, "{\"execute\": \"query-commands\"}");
    shutdown(b->fd, SHUT_RDWR);
    client_close(b);
    wait_for_clients(1);

    /* The survivor is unaffected, and events skip the departed. */
    negotiate(c);
    qmp_event_emit("X_TEST_AFTER", NULL);
    {
        g_autoptr(JsonObject) ev = client_read(c);
        g_assert_cmpstr(json_object_get_string_member(ev, "event"), ==,
                        "X_TEST_AFTER");
    }
    client_close(c);
    wait_for_clients(0);
    monitor_cleanup();
}

/* A reply of 256 KiB, so that a client that does not read fills up fast. */
static void cmd_big(JsonObject *args, JsonNode **ret, Error **errp)
{
    g_autofree char *text = g_malloc(256 * KiB + 1);

    memset(text, 'v', 256 * KiB);
    text[256 * KiB] = '\0';
    *ret = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(*ret, text);
}

static void register_test_commands(void)
{
    qmp_register_command("x-test-big", cmd_big, QMP_CMD_NONE);
}
qmp_init(register_test_commands);

static void test_client_that_does_not_read(void)
{
    TestClient *lazy = client_pair();
    TestClient *other = client_pair();
    GString *reqs = g_string_new(NULL);

    negotiate(lazy);
    negotiate(other);
    /* Replies to all of these add up to 20 MiB, over the output limit. */
    for (int i = 0; i < 80; i++) {
        g_string_append(reqs, "{\"execute\": \"x-test-big\"}");
    }
    client_send(lazy, reqs->str);
    g_string_free(reqs, TRUE);
    wait_for_clients(1);

    /* The server dropped only that client. */
    client_send(other, "{\"execute\": \"query-name\", \"id\": 70}");
    expect_return(other, 70);
    client_close(lazy);
    client_close(other);
    monitor_cleanup();
}

/* A client that closes its sending side still gets every reply it is owed. */
static void test_half_close(void)
{
    TestClient *c = client_pair();
    g_autoptr(JsonObject) big = NULL;

    negotiate(c);
    client_send(c, "{\"execute\": \"x-test-big\", \"id\": 80}"
                "{\"execute\": \"query-name\", \"id\": 81}");
    g_assert_cmpint(shutdown(c->fd, SHUT_WR), ==, 0);
    big = client_read(c);
    assert_return(big, 80);
    g_assert_cmpuint(strlen(json_object_get_string_member(big, "return")), ==,
                     256 * KiB);
    expect_return(c, 81);
    /* Then the server is done with it. */
    g_assert_null(client_read(c));
    wait_for_clients(0);
    client_close(c);
    monitor_cleanup();
}

static TestClient *connect_unix(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    return client_from_fd(fd);
}

static void test_unix_listener(void)
{
    g_autofree char *path = g_build_filename(tmp_dir, "qmp.sock", NULL);
    g_autofree char *stale = g_build_filename(tmp_dir, "stale.sock", NULL);
    g_autofree char *file = g_build_filename(tmp_dir, "regular", NULL);
    g_autofree char *opt = g_strdup_printf("unix:%s,server=on,wait=off", path);
    g_autofree char *opt_stale = g_strdup_printf("unix:%s,server,nowait", stale);
    g_autofree char *opt_file = g_strdup_printf("unix:%s,server=on,wait=off", file);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    TestClient *c1, *c2;
    Error *err = NULL;
    int fd;

    g_assert_true(monitor_qmp_add(opt, &error_abort));
    /* Two clients of one listener at once. */
    c1 = connect_unix(path);
    c2 = connect_unix(path);
    expect_greeting(c1);
    expect_greeting(c2);
    negotiate(c1);
    negotiate(c2);
    client_send(c2, "{\"execute\": \"query-status\", \"id\": 50}");
    client_send(c1, "{\"execute\": \"query-status\", \"id\": 51}");
    expect_return(c1, 51);
    expect_return(c2, 50);

    /* A live socket is not taken over. */
    g_assert_false(monitor_qmp_add(opt, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "a server is already listening"));
    error_free_or_abort(&err);

    /* A socket file nobody listens on any more is replaced. */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_strlcpy(sun.sun_path, stale, sizeof(sun.sun_path));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    close(fd);
    g_assert_true(g_file_test(stale, G_FILE_TEST_EXISTS));
    g_assert_true(monitor_qmp_add(opt_stale, &error_abort));
    {
        TestClient *c3 = connect_unix(stale);
        expect_greeting(c3);
        client_close(c3);
    }

    /* Anything else at the path is left alone. */
    g_assert_true(g_file_set_contents(file, "keep me", -1, NULL));
    g_assert_false(monitor_qmp_add(opt_file, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "is not a socket"));
    error_free_or_abort(&err);
    g_assert_true(g_file_test(file, G_FILE_TEST_IS_REGULAR));
    unlink(file);

    client_close(c1);
    client_close(c2);
    monitor_cleanup();
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(stale, G_FILE_TEST_EXISTS));
}

static void test_tcp_listener(void)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    TestClient *c;
    int port, fd;

    g_assert_true(monitor_qmp_add("tcp:127.0.0.1:0,server=on,wait=off",
                                  &error_abort));
    port = monitor_listener_tcp_port();
    g_assert_cmpint(port, >, 0);
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), ==, 0);
    c = client_from_fd(fd);
    expect_greeting(c);
    negotiate(c);
    /* TCP cannot carry fds. */
    client_send(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"x\"}}");
    expect_error(c, "GenericError", "cannot pass file descriptors");
    client_close(c);
    monitor_cleanup();
}

static void test_option_errors(void)
{
    static const struct {
        const char *opt;
        const char *error_part;
    } cases[] = {
        /* server=off (the default) connects, as QEMU's client mode. */
        { "unix:/nonexistent/vmig-test.sock", "cannot connect" },
        { "unix:/tmp/x.sock,server=off,wait=off", "wait= is for server=on only" },
        { "unix:/tmp/x.sock,server=maybe", "server='maybe' is not on or off" },
        { "unix:/tmp/x.sock,server=on,flavour=mint", "unknown option 'flavour'" },
        { "stdio,server=on", "stdio takes no options" },
        { "vc", "unsupported address 'vc'" },
        { ",server=on", "missing address" },
        { "unix:,server=on,wait=off", "empty socket path" },
        { "tcp:localhost,server=on,wait=off", "expected tcp:HOST:PORT" },
        { "tcp:127.0.0.1:,server=on", "expected tcp:HOST:PORT" },
        { "tcp:127.0.0.1:notaport,server=on", "cannot resolve" },
    };
    g_autofree char *long_opt = NULL;
    GString *long_path = g_string_new("unix:/tmp/");

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        Error *err = NULL;
        if (monitor_qmp_add(cases[i].opt, &err)) {
            g_error("-qmp %s was accepted", cases[i].opt);
        }
        if (!strstr(error_get_pretty(err), cases[i].error_part)) {
            g_error("-qmp %s: '%s' lacks '%s'", cases[i].opt,
                    error_get_pretty(err), cases[i].error_part);
        }
        /* Every message names the option it is about. */
        g_assert_true(g_str_has_prefix(error_get_pretty(err), "-qmp "));
        error_free(err);
    }
    while (long_path->len < 200) {
        g_string_append(long_path, "long-directory-name/");
    }
    long_opt = g_strdup_printf("%s,server=on,wait=off", long_path->str);
    {
        Error *err = NULL;
        g_assert_false(monitor_qmp_add(long_opt, &err));
        g_assert_nonnull(strstr(error_get_pretty(err), "too long"));
        error_free(err);
    }
    g_string_free(long_path, TRUE);
    /* ",," is a comma in the path. */
    {
        g_autofree char *path = g_build_filename(tmp_dir, "a,b.sock", NULL);
        g_autofree char *escaped = g_build_filename(tmp_dir, "a,,b.sock", NULL);
        g_autofree char *opt = g_strdup_printf("unix:%s,server=on,wait=off",
                                               escaped);
        g_assert_true(monitor_qmp_add(opt, &error_abort));
        g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
        monitor_cleanup();
        g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    }
}

static void test_quit(void)
{
    TestClient *c = client_pair();
    JsonObject *data;

    negotiate(c);
    client_send(c, "{\"execute\": \"quit\", \"id\": 60}");
    /* The reply first, then SHUTDOWN, then the main loop is told to exit. */
    expect_return(c, 60);
    {
        g_autoptr(JsonObject) ev = client_read(c);
        g_assert_cmpstr(json_object_get_string_member(ev, "event"), ==, "SHUTDOWN");
        data = json_object_get_object_member(ev, "data");
        g_assert_false(json_object_get_boolean_member(data, "guest"));
        g_assert_cmpstr(json_object_get_string_member(data, "reason"), ==,
                        "host-qmp-quit");
    }
    g_assert_true(main_loop_exit_requested());
    client_close(c);
    monitor_cleanup();
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    tmp_dir = g_dir_make_tmp("vmig-test-qmp-XXXXXX", NULL);
    g_assert_nonnull(tmp_dir);
    /* Commands run with the BQL held, as under the main loop. */
    bql_lock();
    g_test_add_func("/qmp/server/negotiation", test_negotiation);
    g_test_add_func("/qmp/server/framing", test_framing);
    g_test_add_func("/qmp/server/events", test_events);
    g_test_add_func("/qmp/server/run-state-events", test_run_state_events);
    g_test_add_func("/qmp/server/getfd", test_getfd);
    g_test_add_func("/qmp/server/pending-fd-limit", test_pending_fd_limit);
    g_test_add_func("/qmp/server/disconnect", test_disconnect);
    g_test_add_func("/qmp/server/client-that-does-not-read",
                    test_client_that_does_not_read);
    g_test_add_func("/qmp/server/half-close", test_half_close);
    g_test_add_func("/qmp/server/unix-listener", test_unix_listener);
    g_test_add_func("/qmp/server/tcp-listener", test_tcp_listener);
    g_test_add_func("/qmp/server/option-errors", test_option_errors);
    /* Last: it asks the (not running) main loop to exit. */
    g_test_add_func("/qmp/server/quit", test_quit);
    ret = g_test_run();
    rmdir(tmp_dir);
    g_free(tmp_dir);
    return ret;
}
