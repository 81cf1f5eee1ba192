/*
 * QMP client connections: reading and framing requests, writing replies
 * and events, and collecting the fds a client passes with SCM_RIGHTS.
 *
 * Clients live on the main thread.  Output never blocks the main loop:
 * what the socket does not take at once waits in a per-client buffer
 * drained by a G_IO_OUT watch; a client that lets it grow without bound
 * is dropped.  A client is freed only from its own watch callbacks or at
 * cleanup, never from a write path, so that a failed write during an
 * event broadcast or in the middle of a command cannot pull the client
 * out from under code that is still using it.  A dead client (its
 * socket shut down after a write failed) is freed by the next of its
 * watches to fire, which the shutdown wakes; one whose input ended while
 * replies were still queued is freed by its write watch once they are
 * out.
 *
 * A client in readline mode (-monitor, -mon mode=readline) speaks HMP:
 * lines in, text and a "(qemu) " prompt out, no events.  Stdio clients
 * read one fd and write another, with read()/write() instead of the
 * socket calls.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "monitor/hmp.h"
#include "monitor/qapi.h"
#include "monitor/monitor-internal.h"

#include <glib-unix.h>
#include <poll.h>
#include <sys/socket.h>

/* What a client may leave unread before we give up on it. */
#define QMP_MAX_OUTPUT_BUFFER (16 * MiB)
/* Fds passed but not yet claimed with getfd, per client. */
#define QMP_MAX_PENDING_FDS 32
/* Fds accepted in one recvmsg(). */
#define QMP_MAX_FDS_PER_READ 16
/* How long monitor_cleanup() waits for the last replies to go out. */
#define QMP_FINAL_FLUSH_MS 1000
/* How often the console looks whether the migration it waits for ended. */
#define HMP_MIGRATE_POLL_MS 100
#define HMP_PROMPT "(qemu) "

typedef struct QmpClient {
    QmpSession session;         /* first: take_fd gets back to the client */
    int fd;
    int out_fd;                 /* fd, or stdout for a stdio client */
    bool is_socket;
    bool can_pass_fds;
    bool readline;              /* HMP console rather than QMP */
    GString *line;              /* readline: the line being typed */
    guint migrate_timer;        /* readline: waiting for "migrate" to end */
    GString *held;              /* readline: input that came meanwhile */
    guint dead_idle;            /* stdio: frees the dead client */
    char *peer;                 /* for messages: "unix:/path", "tcp:..." */
    guint read_watch;
    guint write_watch;
    GByteArray *outbuf;
    size_t out_pos;             /* bytes of outbuf already sent */
    JsonSplitter *splitter;
    GQueue pending_fds;         /* GINT_TO_POINTER(fd + 1), oldest first */
    guint negotiation_timer;    /* until qmp_capabilities, or 0 */
    unsigned negotiation_timeout_ms;
    bool dead;                  /* write failed: free at the next chance */
    bool input_closed;          /* EOF read; freed once output drains */
} QmpClient;

static GList *clients;

/* Event lines waiting for the main thread; any thread appends. */
static GMutex event_lock;
static GQueue event_queue;
static guint event_flush_source;
static GThread *main_thread;

static void __attribute__((constructor)) qmp_record_main_thread(void)
{
    /* Constructors run on the thread that will run main() and the loop. */
    main_thread = g_thread_self();
}

/* ---- Output ---- */

static gboolean client_dead_idle(gpointer opaque);

static void client_mark_dead(QmpClient *client)
{
    if (!client->dead) {
        client->dead = true;
        /* Wakes the read watch with EOF, which frees the client. */
        if (client->is_socket) {
            shutdown(client->fd, SHUT_RDWR);
        } else {
            /* A pipe cannot be shut down: free the client from idle. */
            client->dead_idle = g_idle_add(client_dead_idle, client);
        }
    }
}

static size_t client_pending_output(const QmpClient *client)
{
    return client->outbuf->len - client->out_pos;
}

/* Write what the socket takes now; false when the client is gone. */
static bool client_flush(QmpClient *client)
{
    while (client_pending_output(client)) {
        const guint8 *data = client->outbuf->data + client->out_pos;
        ssize_t n = client->is_socket ?
            send(client->fd, data, client_pending_output(client),
                 MSG_NOSIGNAL | MSG_DONTWAIT) :
            write(client->out_fd, data, client_pending_output(client));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            client_mark_dead(client);
            return false;
        }
        client->out_pos += n;
    }
    /* Drop what went out; move the rest down only once it is worth it. */
    if (client->out_pos == client->outbuf->len) {
        g_byte_array_set_size(client->outbuf, 0);
        client->out_pos = 0;
    } else if (client->out_pos > client->outbuf->len / 2) {
        g_byte_array_remove_range(client->outbuf, 0, client->out_pos);
        client->out_pos = 0;
    }
    return true;
}

static void client_free(QmpClient *client);

static gboolean client_writable(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpClient *client = opaque;

    if (client_flush(client) && client_pending_output(client)) {
        return G_SOURCE_CONTINUE;
    }
    /* Returning REMOVE destroys the source: do not remove it twice. */
    client->write_watch = 0;
    if (client->input_closed) {
        /* The last replies are out (or cannot go out): all done. */
        client_free(client);
    }
    return G_SOURCE_REMOVE;
}

static void client_send(QmpClient *client, const char *text)
{
    if (client->dead) {
        return;
    }
    g_byte_array_append(client->outbuf, (const guint8 *)text, strlen(text));
    if (!client_flush(client)) {
        return;
    }
    if (client_pending_output(client) > QMP_MAX_OUTPUT_BUFFER) {
        warn_report("QMP client %s does not read its replies; disconnecting",
                    client->peer);
        client_mark_dead(client);
        return;
    }
    if (client_pending_output(client) && !client->write_watch) {
        client->write_watch = g_unix_fd_add(client->out_fd, G_IO_OUT,
                                            client_writable, client);
    }
}

/* ---- Events ---- */

static void event_flush(void)
{
    GQueue lines = G_QUEUE_INIT;

    g_mutex_lock(&event_lock);
    lines = event_queue;
    g_queue_init(&event_queue);
    g_mutex_unlock(&event_lock);

    for (char *line; (line = g_queue_pop_head(&lines)); g_free(line)) {
        for (GList *l = clients; l; l = l->next) {
            QmpClient *client = l->data;
            if (client->session.negotiated && !client->readline) {
                client_send(client, line);
            }
        }
    }
}

static gboolean event_flush_cb(gpointer opaque)
{
    g_mutex_lock(&event_lock);
    event_flush_source = 0;
    g_mutex_unlock(&event_lock);
    event_flush();
    return G_SOURCE_REMOVE;
}

/*
 * An event the schema does not declare, or whose data does not follow
 * it, is a bug of vmig's: reported, and sent all the same, as replies.
 */
static void qmp_event_check(const char *name, JsonObject *data)
{
    const QapiEvent *ev = qapi_event_lookup(name);
    g_autoptr(JsonNode) node = NULL;
    Error *err = NULL;

    if (!ev) {
        /* The unit tests' own events (X_TEST_*) go with raw commands. */
        if (!g_str_has_prefix(name, "X_TEST_")) {
            warn_report("QMP: event %s is not in the schema", name);
        }
        return;
    }
    if (!ev->data) {
        if (data && json_object_get_size(data)) {
            warn_report("QMP: event %s carries data the schema does not "
                        "declare", name);
        }
        return;
    }
    node = json_node_new(JSON_NODE_OBJECT);
    json_node_set_object(node, data ? data : json_object_new());
    if (!data) {
        json_object_unref(json_node_get_object(node));
    }
    if (!qapi_input(ev->data, "data", node, NULL, &err)) {
        warn_report("QMP: event %s does not follow the schema: %s", name,
                    error_get_pretty(err));
        error_free(err);
    }
}

void qmp_event_emit(const char *name, JsonObject *data)
{
    g_autoptr(JsonObject) event = json_object_new();
    JsonObject *timestamp = json_object_new();
    gint64 now = g_get_real_time();
    bool on_main_thread = g_thread_self() == main_thread;
    char *line;

    qmp_event_check(name, data);
    json_object_set_string_member(event, "event", name);
    if (data) {
        json_object_set_object_member(event, "data", data);
    }
    json_object_set_int_member(timestamp, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(timestamp, "microseconds", now % G_USEC_PER_SEC);
    json_object_set_object_member(event, "timestamp", timestamp);
    line = qmp_object_to_line(event);

    /*
     * Every event goes through the queue, so that one the main thread
     * emits cannot overtake one a vCPU thread queued a moment earlier.
     */
    g_mutex_lock(&event_lock);
    g_queue_push_tail(&event_queue, line);
    if (!on_main_thread && !event_flush_source) {
        event_flush_source = g_idle_add(event_flush_cb, NULL);
    }
    g_mutex_unlock(&event_lock);
    if (on_main_thread) {
        event_flush();
    }
}

/* ---- Input ---- */

static void client_close_pending_fds(QmpClient *client)
{
    gpointer p;

    while ((p = g_queue_pop_head(&client->pending_fds))) {
        close(GPOINTER_TO_INT(p) - 1);
    }
}

static int client_take_fd(QmpSession *session)
{
    QmpClient *client = container_of(session, QmpClient, session);
    gpointer p = g_queue_pop_head(&client->pending_fds);

    /* Stored plus one, so that fd 0 is not mistaken for "none". */
    return p ? GPOINTER_TO_INT(p) - 1 : -1;
}

static void client_keep_fd(QmpClient *client, int fd)
{
    if (g_queue_get_length(&client->pending_fds) >= QMP_MAX_PENDING_FDS) {
        warn_report("QMP client %s passed more than %d fds without getfd; "
                    "closing the extra one", client->peer, QMP_MAX_PENDING_FDS);
        close(fd);
        return;
    }
    g_queue_push_tail(&client->pending_fds, GINT_TO_POINTER(fd + 1));
}

static void client_message(void *opaque, const char *msg, size_t len,
                           const char *error)
{
    QmpClient *client = opaque;
    g_autofree char *reply = NULL;

    if (error) {
        reply = qmp_error_reply_text(ERROR_CLASS_GENERIC_ERROR, error);
        client_send(client, reply);
        return;
    }
    reply = qmp_handle_message(&client->session, msg, len);
    client_send(client, reply);
    qmp_session_run_after_reply(&client->session);
}

/* ---- The HMP console ---- */

static void client_free(QmpClient *client);

static gboolean client_dead_idle(gpointer opaque)
{
    QmpClient *client = opaque;

    client->dead_idle = 0;
    client_free(client);
    return G_SOURCE_REMOVE;
}

static gboolean client_readable(gint fd, GIOCondition cond, gpointer opaque);

static void console_send(QmpClient *client, const char *text)
{
    g_autofree char *crlf = hmp_crlf(text);

    client_send(client, crlf);
}

static void console_feed(QmpClient *client, const char *data, size_t len);

static void console_resume(QmpClient *client)
{
    g_autoptr(GString) held = client->held;

    client_send(client, HMP_PROMPT);
    client->held = g_string_new(NULL);
    console_feed(client, held->str, held->len);
    if (!client->migrate_timer && !client->read_watch && !client->dead) {
        client->read_watch = g_unix_fd_add(client->fd,
                                           G_IO_IN | G_IO_HUP | G_IO_ERR,
                                           client_readable, client);
    }
}

/* "migrate" without -d: no input, no prompt, until the migration ends. */
static gboolean console_migrate_poll(gpointer opaque)
{
    QmpClient *client = opaque;
    g_autofree char *message = NULL;

    if (!hmp_migration_finished(&message)) {
        return G_SOURCE_CONTINUE;
    }
    client->migrate_timer = 0;
    console_send(client, message);
    console_resume(client);
    return G_SOURCE_REMOVE;
}

static void console_line(QmpClient *client, const char *line)
{
    g_autofree char *out = NULL;
    bool wait = false;

    out = hmp_run(line, &client->session, &wait);
    console_send(client, out);
    qmp_session_run_after_reply(&client->session);
    if (wait && !client->dead) {
        /* The read watch is the caller's to drop (it returns REMOVE). */
        client->migrate_timer = g_timeout_add(HMP_MIGRATE_POLL_MS,
                                              console_migrate_poll, client);
        return;
    }
    client_send(client, HMP_PROMPT);
}

static void console_feed(QmpClient *client, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !client->dead; i++) {
        if (data[i] == '\n') {
            g_autofree char *line = g_string_free(client->line, FALSE);

            client->line = g_string_new(NULL);
            g_strchomp(line);
            if (!g_utf8_validate(line, -1, NULL)) {
                console_send(client, "the line is not valid UTF-8\n");
                client_send(client, HMP_PROMPT);
            } else {
                console_line(client, line);
            }
            if (client->migrate_timer) {
                /* Input after "migrate" waits until it has ended. */
                g_string_append_len(client->held, data + i + 1, len - i - 1);
                return;
            }
        } else if (client->line->len < QMP_MAX_MESSAGE_SIZE) {
            g_string_append_c(client->line, data[i]);
        }
    }
}

static void client_free(QmpClient *client)
{
    clients = g_list_remove(clients, client);
    if (client->read_watch) {
        g_source_remove(client->read_watch);
    }
    if (client->write_watch) {
        g_source_remove(client->write_watch);
    }
    if (client->negotiation_timer) {
        g_source_remove(client->negotiation_timer);
    }
    if (client->migrate_timer) {
        g_source_remove(client->migrate_timer);
    }
    if (client->dead_idle) {
        g_source_remove(client->dead_idle);
    }
    client_close_pending_fds(client);
    qmp_session_cleanup(&client->session);
    json_splitter_free(client->splitter);
    if (client->line) {
        g_string_free(client->line, TRUE);
        g_string_free(client->held, TRUE);
    }
    g_byte_array_free(client->outbuf, TRUE);
    if (client->out_fd != client->fd) {
        close(client->out_fd);
    }
    close(client->fd);
    g_free(client->peer);
    g_free(client);
}

/* Read once; false when the connection is finished. */
static bool client_read(QmpClient *client)
{
    char buf[4096];
    union {
        char space[CMSG_SPACE(sizeof(int) * QMP_MAX_FDS_PER_READ)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = client->can_pass_fds ? control.space : NULL,
        .msg_controllen = client->can_pass_fds ? sizeof(control.space) : 0,
    };
    ssize_t n;

    do {
        n = client->is_socket ?
            recvmsg(client->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) :
            read(client->fd, buf, sizeof(buf));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }

    for (struct cmsghdr *cmsg = client->is_socket ? CMSG_FIRSTHDR(&msg) : NULL;
         cmsg;
         cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            client_keep_fd(client, fd);
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        warn_report("QMP client %s passed more than %d fds at once; "
                    "the rest were dropped", client->peer,
                    QMP_MAX_FDS_PER_READ);
    }
    if (n == 0) {
        return false;
    }
    if (client->readline) {
        console_feed(client, buf, n);
    } else {
        json_splitter_feed(client->splitter, buf, n);
    }
    return !client->dead;
}

static gboolean client_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpClient *client = opaque;

    if (!client->dead && client_read(client)) {
        if (client->migrate_timer) {
            client->read_watch = 0;
            return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
    }
    client->read_watch = 0;
    if (!client->dead && client_pending_output(client)) {
        /*
         * The client closed its sending side (socat does at the end of
         * its input) but may still read: let the write watch deliver
         * the replies it is owed, then free the client.
         */
        client->input_closed = true;
    } else {
        client_free(client);
    }
    return G_SOURCE_REMOVE;
}

/*
 * A client that never negotiates would hold one of the QMP_MAX_CLIENTS
 * places for good: tell it, then drop it.  Negotiated clients may stay
 * idle as long as they like (a management tool waits for events).
 */
static gboolean client_negotiation_expired(gpointer opaque)
{
    QmpClient *client = opaque;
    g_autofree char *reply = NULL;
    g_autofree char *desc = NULL;

    client->negotiation_timer = 0;
    if (client->session.negotiated || client->dead) {
        return G_SOURCE_REMOVE;
    }
    desc = g_strdup_printf("no qmp_capabilities within %u ms of connecting; "
                           "closing the connection",
                           client->negotiation_timeout_ms);
    warn_report("QMP client %s sent no qmp_capabilities within %u ms; "
                "disconnecting", client->peer,
                client->negotiation_timeout_ms);
    reply = qmp_error_reply_text(ERROR_CLASS_GENERIC_ERROR, desc);
    client_send(client, reply);
    client_mark_dead(client);
    return G_SOURCE_REMOVE;
}

/* Best effort: the refused client learns why before its socket closes. */
static void refuse_client(int fd, const char *desc)
{
    g_autofree char *reply = qmp_error_reply_text(ERROR_CLASS_GENERIC_ERROR,
                                                  desc);

    if (send(fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* It is going away anyway. */
    }
}

bool monitor_client_attach(const MonitorClientOpts *o, Error **errp)
{
    g_autofree char *greeting = NULL;
    QmpClient *client;

    if (g_list_length(clients) >= QMP_MAX_CLIENTS) {
        g_autofree char *desc = g_strdup_printf(
            "too many QMP clients: %d are connected, the most vmig takes; "
            "connection refused", QMP_MAX_CLIENTS);

        if (o->is_socket) {
            refuse_client(o->fd, desc);
        }
        error_setg(errp, "QMP: refusing %s: %d clients are connected, the "
                   "most vmig takes", o->peer, QMP_MAX_CLIENTS);
        return false;
    }
    if (!g_unix_set_fd_nonblocking(o->fd, TRUE, NULL) ||
        !g_unix_set_fd_nonblocking(o->out_fd, TRUE, NULL)) {
        error_setg_errno(errp, errno, "QMP: cannot make %s non-blocking",
                         o->peer);
        return false;
    }
    client = g_new0(QmpClient, 1);
    qmp_session_init(&client->session);
    client->session.take_fd = o->can_pass_fds ? client_take_fd : NULL;
    client->fd = o->fd;
    client->out_fd = o->out_fd;
    client->is_socket = o->is_socket;
    client->can_pass_fds = o->can_pass_fds;
    client->readline = o->readline;
    client->peer = g_strdup(o->peer);
    client->outbuf = g_byte_array_new();
    client->splitter = json_splitter_new(QMP_MAX_MESSAGE_SIZE, client_message,
                                         client);
    g_queue_init(&client->pending_fds);
    client->read_watch = g_unix_fd_add(o->fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                       client_readable, client);
    clients = g_list_append(clients, client);
    if (o->readline) {
        client->line = g_string_new(NULL);
        client->held = g_string_new(NULL);
        greeting = g_strdup_printf("vmig %s monitor - type 'help' for more "
                                   "information\r\n" HMP_PROMPT,
                                   VMIG_VERSION);
        client_send(client, greeting);
        return true;
    }
    client->negotiation_timeout_ms = o->negotiation_timeout_ms;
    if (o->negotiation_timeout_ms) {
        client->negotiation_timer = g_timeout_add(o->negotiation_timeout_ms,
                                                  client_negotiation_expired,
                                                  client);
    }

    greeting = qmp_greeting_text();
    client_send(client, greeting);
    return true;
}

bool monitor_qmp_attach(int fd, bool can_pass_fds, const char *peer,
                        unsigned negotiation_timeout_ms, Error **errp)
{
    MonitorClientOpts o = {
        .fd = fd, .out_fd = fd, .is_socket = true,
        .can_pass_fds = can_pass_fds, .peer = peer,
        .negotiation_timeout_ms = negotiation_timeout_ms,
    };

    return monitor_client_attach(&o, errp);
}

unsigned monitor_qmp_client_count(void)
{
    return g_list_length(clients);
}

bool monitor_qmp_add_fd(int fd, Error **errp)
{
    int domain = 0;
    socklen_t len = sizeof(domain);

    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) {
        error_setg_errno(errp, errno, "QMP: fd %d is not a connected socket",
                         fd);
        return false;
    }
    g_autofree char *peer = g_strdup_printf("fd:%d", fd);
    return monitor_qmp_attach(fd, domain == AF_UNIX, peer,
                              QMP_NEGOTIATION_TIMEOUT_MS, errp);
}

/* Give the last replies (say, to quit) a bounded chance to go out. */
static void clients_final_flush(void)
{
    gint64 deadline = g_get_monotonic_time() + QMP_FINAL_FLUSH_MS * 1000;

    for (GList *l = clients; l; l = l->next) {
        QmpClient *client = l->data;

        while (!client->dead && client_pending_output(client)) {
            gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
            struct pollfd pfd = { .fd = client->fd, .events = POLLOUT };

            if (left_ms <= 0 || poll(&pfd, 1, left_ms) <= 0) {
                return;
            }
            client_flush(client);
        }
    }
}

void monitor_cleanup(void)
{
    g_mutex_lock(&event_lock);
    if (event_flush_source) {
        g_source_remove(event_flush_source);
        event_flush_source = 0;
    }
    g_mutex_unlock(&event_lock);
    event_flush();

    clients_final_flush();
    while (clients) {
        client_free(clients->data);
    }
    monitor_listeners_cleanup();
    monitor_fds_cleanup();
}
