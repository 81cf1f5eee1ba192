/*
 * libqtest: spawn vmig, speak QMP, always clean up.
 */
#include "qemu/osdep.h"
#include "libqtest.h"

#include <signal.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>

#define QTEST_CONNECT_TIMEOUT_MS 20000
#define QTEST_REPLY_TIMEOUT_MS   60000
#define QTEST_RUN_TIMEOUT_S      60

struct QTestState {
    bool attached;              /* a second connection: owns no process */
    pid_t pid;
    int fd;                     /* QMP socket */
    char *sock_path;
    GString *rbuf;
    GQueue events;              /* JsonNode * */
    int exit_status;            /* once reaped */
    bool reaped;
    bool close_expected;        /* end of stream is not an error */
    bool closed;                /* vmig closed the connection */
};

#define QTEST_MAX_EXTRA_PIDS 16

static GList *live_states;
static char *tmpdir;
static unsigned tmp_counter;
/* Processes vmig forked off (daemons): a fixed array, for on_abort. */
static volatile pid_t extra_pids[QTEST_MAX_EXTRA_PIDS];

static void kill_all_children(void)
{
    for (GList *l = live_states; l; l = l->next) {
        QTestState *s = l->data;
        if (!s->reaped && s->pid > 0) {
            kill(s->pid, SIGKILL);
        }
    }
    for (int i = 0; i < QTEST_MAX_EXTRA_PIDS; i++) {
        if (extra_pids[i] > 0) {
            kill(extra_pids[i], SIGKILL);
            extra_pids[i] = 0;
        }
    }
}

static void remove_tmpdir(void)
{
    if (tmpdir) {
        g_autoptr(GDir) dir = g_dir_open(tmpdir, 0, NULL);
        const char *name;

        while (dir && (name = g_dir_read_name(dir))) {
            g_autofree char *p = g_build_filename(tmpdir, name, NULL);
            unlink(p);
        }
        rmdir(tmpdir);
    }
}

static void on_exit_cleanup(void)
{
    kill_all_children();
    remove_tmpdir();
}

static void on_abort(int sig)
{
    /* Only async-signal-safe calls here (kill_all_children is). */
    kill_all_children();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void qtest_setup_once(void)
{
    static bool done;

    if (done) {
        return;
    }
    done = true;
    tmpdir = g_dir_make_tmp("vmig-qtest-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    atexit(on_exit_cleanup);
    signal(SIGABRT, on_abort);
    signal(SIGPIPE, SIG_IGN);
}

void qtest_kill_at_exit(pid_t pid)
{
    g_assert_cmpint(pid, >, 1);
    qtest_setup_once();
    for (int i = 0; i < QTEST_MAX_EXTRA_PIDS; i++) {
        if (extra_pids[i] <= 0) {
            extra_pids[i] = pid;
            return;
        }
    }
    kill(pid, SIGKILL);
    g_error("libqtest: more than %d extra processes", QTEST_MAX_EXTRA_PIDS);
}

void qtest_forget_pid(pid_t pid)
{
    for (int i = 0; i < QTEST_MAX_EXTRA_PIDS; i++) {
        if (extra_pids[i] == pid) {
            extra_pids[i] = 0;
        }
    }
}

const char *qtest_tmpdir(void)
{
    qtest_setup_once();
    return tmpdir;
}

char *qtest_tmp_path(const char *stem, const char *ext)
{
    qtest_setup_once();
    return g_strdup_printf("%s/%s-%u.%s", tmpdir, stem, ++tmp_counter, ext);
}

static const char *vmig_binary(void)
{
    const char *bin = g_getenv("VMIG_BINARY");

    if (!bin) {
        bin = VMIG_BUILD_DIR "/vmig";
    }
    return bin;
}

/* The network namespace children join (an open /run/netns/NAME), or -1. */
static int child_netns_fd = -1;

void qtest_set_netns(const char *name)
{
    if (child_netns_fd >= 0) {
        close(child_netns_fd);
        child_netns_fd = -1;
    }
    if (name) {
        g_autofree char *path = g_strdup_printf("/run/netns/%s", name);

        child_netns_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (child_netns_fd < 0) {
            g_error("cannot open %s: %s", path, g_strerror(errno));
        }
    }
}

void qtest_child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Between fork and exec: only async-signal-safe calls. */
    if (child_netns_fd >= 0 && setns(child_netns_fd, CLONE_NEWNET) < 0) {
        static const char msg[] = "qtest: cannot enter the network "
                                  "namespace\n";

        if (write(2, msg, sizeof(msg) - 1) < 0) {
            /* nothing more to say */
        }
        _exit(127);
    }
}

static void child_setup(gpointer data)
{
    qtest_child_setup(data);
}

/*
 * For qtest_run: a vmig that unexpectedly keeps running (an option that
 * should have failed) is ended by SIGALRM instead of hanging the test.
 * A pending alarm survives exec.
 */
static void run_child_setup(gpointer data)
{
    child_setup(data);
    alarm(QTEST_RUN_TIMEOUT_S);
}

static char **build_argv(const char *sock_path, const char *args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_auto(GStrv) extra = NULL;
    g_autoptr(GError) gerr = NULL;
    int n = 0;

    if (args && *args && !g_shell_parse_argv(args, &n, &extra, &gerr)) {
        g_error("bad test arguments '%s': %s", args, gerr->message);
    }
    g_ptr_array_add(argv, g_strdup(vmig_binary()));
    if (sock_path) {
        g_ptr_array_add(argv, g_strdup("-qmp"));
        g_ptr_array_add(argv, g_strdup_printf("unix:%s,server=on,wait=off",
                                              sock_path));
    }
    for (int i = 0; i < n; i++) {
        g_ptr_array_add(argv, g_strdup(extra[i]));
    }
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&argv), FALSE);
}

static bool reap(QTestState *s, int options)
{
    int status;
    pid_t r;

    if (s->reaped) {
        return true;
    }
    do {
        r = waitpid(s->pid, &status, options);
    } while (r < 0 && errno == EINTR);
    if (r == s->pid) {
        s->reaped = true;
        s->exit_status = WIFEXITED(status) ? WEXITSTATUS(status)
                                           : 128 + WTERMSIG(status);
        return true;
    }
    return false;
}

int qtest_wait_exit(QTestState *s, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000LL;

    while (!reap(s, WNOHANG)) {
        if (g_get_monotonic_time() > deadline) {
            return -1;
        }
        g_usleep(5000);
    }
    return s->exit_status;
}

/* Connect to @path, served by the process of @s. */
static int qmp_connect(QTestState *s, const char *path)
{
    gint64 deadline = g_get_monotonic_time() + QTEST_CONNECT_TIMEOUT_MS * 1000LL;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    g_assert_cmpuint(strlen(path), <, sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_assert_cmpint(fd, >=, 0);
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            return fd;
        }
        close(fd);
        if (reap(s, WNOHANG)) {
            g_error("vmig exited with status %d before QMP was up",
                    s->exit_status);
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("timed out connecting to QMP at %s", path);
        }
        g_usleep(10000);
    }
}

/* vmig closed QMP unasked: say how it ended (a crash, an exit). */
static void G_GNUC_NORETURN qmp_closed_error(QTestState *s)
{
    int st = qtest_wait_exit(s, 5000);

    if (st < 0) {
        g_error("QMP connection closed by vmig (pid %d), still running",
                s->pid);
    }
    if (st > 128) {
        g_error("QMP connection closed: vmig (pid %d) was killed by signal "
                "%d (%s)", s->pid, st - 128, strsignal(st - 128));
    }
    g_error("QMP connection closed: vmig (pid %d) exited with status %d",
            s->pid, st);
}

/* Read one CRLF-terminated message, bounded by @timeout_ms. */
static JsonNode *read_message(QTestState *s, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000LL;

    for (;;) {
        char *nl = memchr(s->rbuf->str, '\n', s->rbuf->len);
        if (nl) {
            size_t len = nl - s->rbuf->str + 1;
            g_autofree char *line = g_strndup(s->rbuf->str, len);
            g_autoptr(JsonParser) parser = json_parser_new();
            g_autoptr(GError) gerr = NULL;

            g_string_erase(s->rbuf, 0, len);
            if (!json_parser_load_from_data(parser, line, -1, &gerr)) {
                g_error("QMP sent invalid JSON '%s': %s", line, gerr->message);
            }
            return json_node_copy(json_parser_get_root(parser));
        }

        int left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0) {
            return NULL;
        }
        struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
        int r = poll(&pfd, 1, left);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            continue;
        }
        char buf[65536];
        ssize_t n = read(s->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 && s->close_expected) {
            s->closed = true;
            return NULL;
        }
        if (n <= 0) {
            qmp_closed_error(s);
        }
        g_string_append_len(s->rbuf, buf, n);
    }
}

static bool is_event(JsonNode *node)
{
    return JSON_NODE_HOLDS_OBJECT(node) &&
           json_object_has_member(json_node_get_object(node), "event");
}

JsonNode *qtest_qmp_receive(QTestState *s)
{
    for (;;) {
        JsonNode *msg = read_message(s, QTEST_REPLY_TIMEOUT_MS);

        if (!msg) {
            g_error("timed out waiting for a QMP reply from pid %d", s->pid);
        }
        if (is_event(msg)) {
            g_queue_push_tail(&s->events, msg);
            continue;
        }
        return msg;
    }
}

static void send_all(QTestState *s, const char *data, size_t len,
                     const int *fds, size_t nfds)
{
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    union {
        char buf[CMSG_SPACE(sizeof(int) * 16)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

    g_assert_cmpuint(nfds, <=, 16);
    if (nfds) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    while (iov.iov_len) {
        ssize_t n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            qmp_closed_error(s);
        }
        g_assert_cmpint(n, >, 0);
        iov.iov_base = (char *)iov.iov_base + n;
        iov.iov_len -= n;
        msg.msg_control = NULL;     /* fds go with the first byte only */
        msg.msg_controllen = 0;
    }
}

void qtest_qmp_send_raw(QTestState *s, const char *data, size_t len)
{
    send_all(s, data, len, NULL, 0);
}

static JsonNode *qmp_vsend(QTestState *s, const int *fds, size_t nfds,
                           const char *fmt, va_list ap)
{
    g_autofree char *text = g_strdup_vprintf(fmt, ap);

    send_all(s, text, strlen(text), fds, nfds);
    return qtest_qmp_receive(s);
}

JsonNode *qtest_qmp(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    JsonNode *r;

    va_start(ap, fmt);
    r = qmp_vsend(s, NULL, 0, fmt, ap);
    va_end(ap);
    return r;
}

JsonNode *qtest_qmp_fds(QTestState *s, const int *fds, size_t nfds,
                        const char *fmt, ...)
{
    va_list ap;
    JsonNode *r;

    va_start(ap, fmt);
    r = qmp_vsend(s, fds, nfds, fmt, ap);
    va_end(ap);
    return r;
}

static char *node_to_string(JsonNode *node)
{
    return json_to_string(node, FALSE);
}

static JsonNode *qmp_vassert_success(QTestState *s, const char *fmt,
                                     va_list ap)
{
    g_autoptr(JsonNode) r = qmp_vsend(s, NULL, 0, fmt, ap);
    JsonObject *obj = qtest_obj(r);

    if (!json_object_has_member(obj, "return")) {
        g_autofree char *text = node_to_string(r);
        g_error("QMP command failed: %s", text);
    }
    return json_node_copy(json_object_get_member(obj, "return"));
}

JsonNode *qtest_qmp_assert_success(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    JsonNode *ret;

    va_start(ap, fmt);
    ret = qmp_vassert_success(s, fmt, ap);
    va_end(ap);
    return ret;
}

void qtest_qmp_assert_ok(QTestState *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    json_node_unref(qmp_vassert_success(s, fmt, ap));
    va_end(ap);
}

char *qtest_qmp_expect_error(QTestState *s, const char *cls, const char *fmt, ...)
{
    va_list ap;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *obj, *err;

    va_start(ap, fmt);
    r = qmp_vsend(s, NULL, 0, fmt, ap);
    va_end(ap);
    obj = qtest_obj(r);
    if (!json_object_has_member(obj, "error")) {
        g_autofree char *text = node_to_string(r);
        g_error("QMP command succeeded, an error was expected: %s", text);
    }
    err = json_object_get_object_member(obj, "error");
    if (cls) {
        g_assert_cmpstr(json_object_get_string_member(err, "class"), ==, cls);
    }
    return g_strdup(json_object_get_string_member(err, "desc"));
}

static JsonNode *take_event(QTestState *s, const char *event)
{
    for (GList *l = s->events.head; l; l = l->next) {
        JsonObject *obj = json_node_get_object(l->data);
        if (!strcmp(json_object_get_string_member(obj, "event"), event)) {
            JsonNode *ev = l->data;
            JsonNode *data = json_object_has_member(obj, "data")
                ? json_node_copy(json_object_get_member(obj, "data"))
                : json_node_init_object(json_node_alloc(), json_object_new());
            g_queue_delete_link(&s->events, l);
            json_node_unref(ev);
            return data;
        }
    }
    return NULL;
}

JsonNode *qtest_qmp_eventwait(QTestState *s, const char *event, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000LL;

    for (;;) {
        JsonNode *data = take_event(s, event);
        int left;

        if (data) {
            return data;
        }
        left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0) {
            return NULL;
        }
        JsonNode *msg = read_message(s, left);
        if (!msg) {
            return NULL;
        }
        if (!is_event(msg)) {
            g_autofree char *text = node_to_string(msg);
            g_error("unexpected QMP reply while waiting for %s: %s", event, text);
        }
        g_queue_push_tail(&s->events, msg);
    }
}

void qtest_qmp_wait_close(QTestState *s, int timeout_ms)
{
    JsonNode *msg;

    s->close_expected = true;
    while ((msg = read_message(s, timeout_ms))) {
        if (!is_event(msg)) {
            g_autofree char *text = node_to_string(msg);
            g_error("unexpected QMP reply while waiting for the end: %s", text);
        }
        g_queue_push_tail(&s->events, msg);
    }
    if (!s->closed) {
        g_error("vmig (pid %d) kept the QMP connection open for %d ms",
                s->pid, timeout_ms);
    }
}

void qtest_qmp_clear_events(QTestState *s)
{
    JsonNode *n;

    while ((n = g_queue_pop_head(&s->events))) {
        json_node_unref(n);
    }
}

QTestState *qtest_init(const char *args)
{
    QTestState *s = g_new0(QTestState, 1);
    g_auto(GStrv) argv = NULL;
    g_autoptr(GError) gerr = NULL;
    g_autoptr(JsonNode) greeting = NULL;

    qtest_setup_once();
    s->sock_path = qtest_tmp_path("qmp", "sock");
    s->rbuf = g_string_new(NULL);
    s->fd = -1;
    g_queue_init(&s->events);
    argv = build_argv(s->sock_path, args);
    if (!g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, child_setup, NULL,
                       &s->pid, &gerr)) {
        g_error("cannot start %s: %s", argv[0], gerr->message);
    }
    live_states = g_list_prepend(live_states, s);
    s->fd = qmp_connect(s, s->sock_path);
    greeting = read_message(s, QTEST_REPLY_TIMEOUT_MS);
    g_assert_nonnull(greeting);
    g_assert_true(json_object_has_member(qtest_obj(greeting), "QMP"));
    qtest_qmp_assert_ok(s, "{\"execute\": \"qmp_capabilities\"}");
    return s;
}

QTestState *qtest_initf(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *args = NULL;

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return qtest_init(args);
}

QTestState *qtest_attach(QTestState *s, const char *sock_path)
{
    QTestState *c = g_new0(QTestState, 1);
    g_autoptr(JsonNode) greeting = NULL;

    c->attached = true;
    c->pid = s->pid;
    c->sock_path = g_strdup(sock_path);
    c->rbuf = g_string_new(NULL);
    g_queue_init(&c->events);
    c->fd = qmp_connect(s, sock_path);
    greeting = read_message(c, QTEST_REPLY_TIMEOUT_MS);
    g_assert_nonnull(greeting);
    g_assert_true(json_object_has_member(qtest_obj(greeting), "QMP"));
    qtest_qmp_assert_ok(c, "{\"execute\": \"qmp_capabilities\"}");
    return c;
}

void qtest_detach(QTestState *c)
{
    g_assert_true(c->attached);
    close(c->fd);
    qtest_qmp_clear_events(c);
    g_string_free(c->rbuf, TRUE);
    g_free(c->sock_path);
    g_free(c);
}

pid_t qtest_pid(QTestState *s)
{
    return s->pid;
}

void qtest_kill(QTestState *s, int sig)
{
    if (!s->reaped) {
        kill(s->pid, sig);
    }
}

void qtest_quit(QTestState *s)
{
    if (!s) {
        return;
    }
    g_assert_false(s->attached);
    if (!s->reaped && s->fd >= 0) {
        static const char quit[] = "{\"execute\": \"quit\"}\r\n";
        /* The process may be gone already: ignore write errors. */
        if (send(s->fd, quit, sizeof(quit) - 1, MSG_NOSIGNAL) < 0) {
            /* fall through to kill */
        }
    }
    if (qtest_wait_exit(s, 15000) < 0) {
        kill(s->pid, SIGKILL);
        reap(s, 0);
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    unlink(s->sock_path);
    live_states = g_list_remove(live_states, s);
    qtest_qmp_clear_events(s);
    g_string_free(s->rbuf, TRUE);
    g_free(s->sock_path);
    g_free(s);
}

char *qtest_status(QTestState *s)
{
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-status\"}");

    return g_strdup(qtest_get_str(r, "status"));
}

int qtest_run(const char *args, char **out, char **err)
{
    g_auto(GStrv) argv = build_argv(NULL, args);
    g_autoptr(GError) gerr = NULL;
    int status;

    qtest_setup_once();
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, run_child_setup,
                      NULL, out, err, &status, &gerr)) {
        g_error("cannot run %s: %s", argv[0], gerr->message);
    }
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return 128 + WTERMSIG(status);
}

JsonObject *qtest_obj(JsonNode *node)
{
    g_assert_nonnull(node);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(node));
    return json_node_get_object(node);
}

const char *qtest_get_str(JsonNode *obj_node, const char *member)
{
    JsonObject *obj = qtest_obj(obj_node);

    g_assert_true(json_object_has_member(obj, member));
    return json_object_get_string_member(obj, member);
}

int64_t qtest_get_int(JsonNode *obj_node, const char *member)
{
    JsonObject *obj = qtest_obj(obj_node);

    g_assert_true(json_object_has_member(obj, member));
    return json_object_get_int_member(obj, member);
}

bool qtest_get_bool(JsonNode *obj_node, const char *member)
{
    JsonObject *obj = qtest_obj(obj_node);

    g_assert_true(json_object_has_member(obj, member));
    return json_object_get_boolean_member(obj, member);
}
