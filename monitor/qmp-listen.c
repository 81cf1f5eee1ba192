/*
 * -qmp and -monitor: parse the option, then listen on a UNIX or TCP
 * socket, connect to one (server=off), or serve stdin/stdout ("stdio").
 *
 * A listening socket is bound before the option is accepted, so a client
 * may connect as soon as vmig has started.  With wait=on (QEMU's default
 * for server=on) start-up goes on only once the first client is there.
 * -monitor gives the HMP console (readline mode) instead of QMP.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/keyval.h"
#include "qemu/unix-listen.h"
#include "monitor/monitor-internal.h"

#include <glib-unix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#define QMP_LISTEN_BACKLOG 16
/* Pause after accept() ran out of fds, instead of spinning on the socket. */
#define QMP_ACCEPT_RETRY_MS 100

typedef struct QmpListener {
    int fd;
    bool is_unix;
    char *unix_path;            /* unlinked at cleanup */
    char *what;                 /* "-qmp unix:/tmp/q.sock,..." for messages */
    unsigned negotiation_timeout_ms;
    bool readline;              /* -monitor: HMP console clients */
    guint watch;
    guint retry_timer;
} QmpListener;

static GList *listeners;

typedef struct QmpListenOpts {
    char *address;              /* "unix:PATH" or "tcp:HOST:PORT" */
    bool server;
    bool server_given;
    bool wait;
    bool wait_given;
    unsigned negotiation_timeout_ms;
    bool readline;              /* -monitor, -mon mode=readline */
} QmpListenOpts;

/* ---- Option parsing ---- */

/* Split at commas, ",," being a literal comma. */
static GPtrArray *split_option(const char *str)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = str; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',') {
            g_ptr_array_add(parts, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    g_ptr_array_add(parts, g_string_free(cur, FALSE));
    return parts;
}

/*
 * Flags as QEMU has accepted them over the years: "server=on", a bare
 * "server" (on), and "nowait" (wait=off).
 */
static bool parse_flag(const char *what, const char *key, const char *value,
                       bool *flag, Error **errp)
{
    if (!value) {
        *flag = true;
        return true;
    }
    if (!qemu_parse_bool(value, flag)) {
        error_setg(errp, "%s: %s='%s' is not on or off", what, key, value);
        return false;
    }
    return true;
}

static bool parse_listen_opts(const char *optarg, const char *what,
                              QmpListenOpts *opts, Error **errp)
{
    g_autoptr(GPtrArray) parts = split_option(optarg);

    opts->negotiation_timeout_ms = QMP_NEGOTIATION_TIMEOUT_MS;
    opts->address = g_strdup(g_ptr_array_index(parts, 0));
    if (!*opts->address) {
        error_setg(errp, "%s: missing address (unix:PATH or tcp:HOST:PORT)",
                   what);
        return false;
    }
    for (guint i = 1; i < parts->len; i++) {
        g_autofree char *key = g_strdup(g_ptr_array_index(parts, i));
        char *eq = strchr(key, '=');
        const char *value = NULL;

        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        if (!strcmp(key, "server")) {
            if (!parse_flag(what, key, value, &opts->server, errp)) {
                return false;
            }
            opts->server_given = true;
        } else if (!strcmp(key, "wait")) {
            if (!parse_flag(what, key, value, &opts->wait, errp)) {
                return false;
            }
            opts->wait_given = true;
        } else if (!strcmp(key, "x-negotiation-timeout")) {
            guint64 ms;

            if (!value || !g_ascii_string_to_unsigned(value, 10, 0,
                                                      24 * 3600 * 1000,
                                                      &ms, NULL)) {
                error_setg(errp, "%s: x-negotiation-timeout='%s' is not a "
                           "number of milliseconds (0 to %u; 0: none)",
                           what, value ? value : "", 24 * 3600 * 1000);
                return false;
            }
            opts->negotiation_timeout_ms = ms;
        } else if (!strcmp(key, "nowait") && !value) {
            opts->wait = false;
            opts->wait_given = true;
        } else {
            error_setg(errp, "%s: unknown option '%s' (expected server=on|off, "
                       "wait=on|off, x-negotiation-timeout=MS)", what, key);
            return false;
        }
    }
    if (!strcmp(opts->address, "stdio") && parts->len > 1) {
        error_setg(errp, "%s: stdio takes no options", what);
        return false;
    }
    /* As QEMU: a server waits for its first client unless told not to. */
    if (!opts->wait_given) {
        opts->wait = opts->server;
    }
    if (opts->wait_given && !opts->server) {
        error_setg(errp, "%s: wait= is for server=on only (a client "
                   "connects at start)", what);
        return false;
    }
    return true;
}

/* ---- Accepting ---- */

static gboolean listener_readable(gint fd, GIOCondition cond, gpointer opaque);

static gboolean listener_retry(gpointer opaque)
{
    QmpListener *l = opaque;

    l->retry_timer = 0;
    l->watch = g_unix_fd_add(l->fd, G_IO_IN, listener_readable, l);
    return G_SOURCE_REMOVE;
}

static char *describe_peer(const QmpListener *l, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (l->is_unix) {
        return g_strdup_printf("unix:%s", l->unix_path);
    }
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        return g_strdup("tcp:?");
    }
    return g_strdup_printf(ss.ss_family == AF_INET6 ? "tcp:[%s]:%s"
                                                    : "tcp:%s:%s", host, port);
}

static bool listener_attach(QmpListener *l, int cfd, const char *peer,
                            Error **errp)
{
    MonitorClientOpts o = {
        .fd = cfd, .out_fd = cfd, .is_socket = true,
        .can_pass_fds = l->is_unix, .readline = l->readline, .peer = peer,
        .negotiation_timeout_ms = l->negotiation_timeout_ms,
    };

    return monitor_client_attach(&o, errp);
}

static gboolean listener_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpListener *l = opaque;
    g_autofree char *peer = NULL;
    Error *err = NULL;
    int cfd;

    cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
            warn_report("%s: cannot accept a QMP client: %s", l->what,
                        g_strerror(errno));
            l->watch = 0;
            l->retry_timer = g_timeout_add(QMP_ACCEPT_RETRY_MS,
                                           listener_retry, l);
            return G_SOURCE_REMOVE;
        }
        /* EAGAIN, EINTR, ECONNABORTED, ...: nothing to do this time. */
        return G_SOURCE_CONTINUE;
    }
    if (!l->is_unix) {
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    peer = describe_peer(l, cfd);
    if (!listener_attach(l, cfd, peer, &err)) {
        warn_report("%s", error_get_pretty(err));
        error_free(err);
        close(cfd);
    }
    return G_SOURCE_CONTINUE;
}

static void listener_add(int fd, bool is_unix, const char *unix_path,
                         const char *what, const QmpListenOpts *opts)
{
    QmpListener *l = g_new0(QmpListener, 1);

    l->negotiation_timeout_ms = opts->negotiation_timeout_ms;
    l->readline = opts->readline;
    l->fd = fd;
    l->is_unix = is_unix;
    l->unix_path = g_strdup(unix_path);
    l->what = g_strdup(what);
    l->watch = g_unix_fd_add(fd, G_IO_IN, listener_readable, l);
    listeners = g_list_append(listeners, l);
}

/* ---- Binding ---- */

static bool listen_unix(const char *path, const char *what,
                        const QmpListenOpts *opts, Error **errp)
{
    char why[UNIX_LISTEN_MSG_SIZE];
    int fd = unix_listen_private(path, QMP_LISTEN_BACKLOG, SOCK_NONBLOCK,
                                 why, sizeof(why));

    if (fd < 0) {
        error_setg(errp, "%s: %s", what, why);
        return false;
    }
    listener_add(fd, true, path, what, opts);
    return true;
}

/* The TCP port @fd is bound to, or -1. */
static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int bind_inet(const struct addrinfo *ai, int *bind_errno)
{
    int fd, one = 1;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                ai->ai_protocol);
    if (fd < 0) {
        *bind_errno = errno;
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) {
        /* Leave the IPv4 addresses to their own socket. */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, QMP_LISTEN_BACKLOG) < 0) {
        *bind_errno = errno;
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Listen on every address the host name has ("localhost" is often both
 * ::1 and 127.0.0.1, and a client may try either), except that port 0
 * binds the first one only: each bind would pick a different port.
 *
 * QMP has no authentication, and 'migrate' to an exec: URI runs a shell
 * command, so whoever reaches the port runs commands as vmig's user.
 * Hence an empty host means the loopback address rather than every
 * address, and every TCP listener gets a warning.
 */
static bool listen_tcp(const char *hostport, const char *what,
                       const QmpListenOpts *opts, Error **errp)
{
    g_autofree char *host = NULL;
    const char *colon = strrchr(hostport, ':');
    const char *port;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV,
    };
    struct addrinfo *res;
    int ret, bind_errno = 0, first_fd = -1;

    if (!colon || !colon[1]) {
        error_setg(errp, "%s: expected tcp:HOST:PORT", what);
        return false;
    }
    port = colon + 1;
    host = g_strndup(hostport, colon - hostport);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        host[strlen(host) - 1] = '\0';
        memmove(host, host + 1, strlen(host));
    }
    if (!*host) {
        g_free(host);
        host = g_strdup("127.0.0.1");
    }
    ret = getaddrinfo(host, port, &hints, &res);
    if (ret != 0) {
        error_setg(errp, "%s: cannot resolve '%s' port '%s': %s", what,
                   host, port, gai_strerror(ret));
        return false;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = bind_inet(ai, &bind_errno);
        if (fd < 0) {
            continue;
        }
        listener_add(fd, false, NULL, what, opts);
        if (first_fd < 0) {
            first_fd = fd;
        }
        if (!strcmp(port, "0")) {
            break;
        }
    }
    freeaddrinfo(res);
    if (first_fd < 0) {
        error_setg_errno(errp, bind_errno, "%s: cannot listen on %s", what,
                         hostport);
        return false;
    }
    warn_report("%s: QMP over TCP has no authentication and no encryption: "
                "anyone who can connect to %s port %d controls this VM and "
                "can run commands as this user (migrate to exec:); prefer "
                "-qmp unix:PATH", what, host, bound_port(first_fd));
    return true;
}

/* Parse @optarg into @opts, checking the address form too. */
static bool parse_monitor_option(const char *optarg, const char *what,
                                 QmpListenOpts *opts, Error **errp)
{
    if (!parse_listen_opts(optarg, what, opts, errp)) {
        return false;
    }
    if (strcmp(opts->address, "stdio") &&
        !g_str_has_prefix(opts->address, "unix:") &&
        !g_str_has_prefix(opts->address, "tcp:")) {
        error_setg(errp, "%s: unsupported address '%s' (expected unix:PATH, "
                   "tcp:HOST:PORT or stdio)", what, opts->address);
        return false;
    }
    return true;
}

/* Only one monitor may own stdin and stdout. */
static bool stdio_taken;

static bool attach_stdio(const char *what, const QmpListenOpts *opts,
                         Error **errp)
{
    MonitorClientOpts o = {
        .is_socket = false, .readline = opts->readline, .peer = "stdio",
        .negotiation_timeout_ms = 0,
    };

    if (stdio_taken) {
        error_setg(errp, "%s: stdio is taken by another monitor already",
                   what);
        return false;
    }
    /* Our own copies: closing the client must not close fd 0 and 1. */
    o.fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    o.out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    if (o.fd < 0 || o.out_fd < 0 || !monitor_client_attach(&o, errp)) {
        if (o.fd < 0 || o.out_fd < 0) {
            error_setg_errno(errp, errno, "%s: cannot use stdio", what);
        }
        if (o.fd >= 0) {
            close(o.fd);
        }
        if (o.out_fd >= 0) {
            close(o.out_fd);
        }
        return false;
    }
    stdio_taken = true;
    return true;
}

/* server=off: connect at start to a monitor client that listens. */
static bool connect_client(const char *what, const QmpListenOpts *opts,
                           Error **errp)
{
    bool is_unix = g_str_has_prefix(opts->address, "unix:");
    g_autofree char *host = NULL;
    const char *path = opts->address + strlen("unix:");
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    MonitorClientOpts o = {
        .is_socket = true, .can_pass_fds = is_unix, .readline = opts->readline,
        .peer = opts->address,
        .negotiation_timeout_ms = opts->negotiation_timeout_ms,
    };
    int fd = -1, err = 0;

    if (is_unix) {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sun.sun_path)) {
            error_setg(errp, "%s: socket path too long", what);
            return false;
        }
        strcpy(sun.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    } else {
        const char *hostport = opts->address + strlen("tcp:");
        const char *colon = strrchr(hostport, ':');
        int ret;

        if (!colon || !colon[1]) {
            error_setg(errp, "%s: expected tcp:HOST:PORT", what);
            return false;
        }
        host = g_strndup(hostport, colon - hostport);
        ret = getaddrinfo(*host ? host : "127.0.0.1", colon + 1, &hints,
                          &res);
        if (ret) {
            error_setg(errp, "%s: cannot resolve '%s': %s", what, hostport,
                       gai_strerror(ret));
            return false;
        }
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                err = errno;
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(res);
    }
    if (fd < 0) {
        error_setg_errno(errp, err ? err : errno, "%s: cannot connect to %s",
                         what, opts->address);
        return false;
    }
    o.fd = o.out_fd = fd;
    if (!monitor_client_attach(&o, errp)) {
        close(fd);
        return false;
    }
    return true;
}

/* wait=on: take the first client of the listeners from @first on. */
static bool wait_first_client(GList *first, const char *what, Error **errp)
{
    GArray *pfds = g_array_new(FALSE, TRUE, sizeof(struct pollfd));
    bool ok = false;

    for (GList *l = first; l; l = l->next) {
        struct pollfd pfd = { .fd = ((QmpListener *)l->data)->fd,
                              .events = POLLIN };

        g_array_append_val(pfds, pfd);
    }
    info_report("%s: waiting for a connection (wait=on)", what);
    for (;;) {
        int n = poll((struct pollfd *)pfds->data, pfds->len, -1);

        if (n < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "%s: waiting for a client", what);
            break;
        }
        for (guint i = 0; n > 0 && i < pfds->len; i++) {
            if (g_array_index(pfds, struct pollfd, i).revents) {
                QmpListener *l = g_list_nth_data(first, i);
                unsigned before = monitor_qmp_client_count();

                listener_readable(l->fd, G_IO_IN, l);
                ok = monitor_qmp_client_count() > before;
            }
        }
        if (ok) {
            break;
        }
    }
    g_array_free(pfds, TRUE);
    return ok;
}

bool monitor_start(const char *option, const char *optarg, bool readline,
                   Error **errp)
{
    g_autofree char *what = g_strdup_printf("%s %s", option, optarg);
    QmpListenOpts opts = { .readline = readline };
    GList *last = g_list_last(listeners);
    bool ok = false;

    if (!parse_monitor_option(optarg, what, &opts, errp)) {
        goto out;
    }
    if (!strcmp(opts.address, "stdio")) {
        ok = attach_stdio(what, &opts, errp);
    } else if (!opts.server) {
        ok = connect_client(what, &opts, errp);
    } else if (g_str_has_prefix(opts.address, "unix:")) {
        ok = listen_unix(opts.address + strlen("unix:"), what, &opts, errp);
    } else {
        ok = listen_tcp(opts.address + strlen("tcp:"), what, &opts, errp);
    }
    if (ok && opts.server && opts.wait) {
        ok = wait_first_client(last ? last->next : listeners, what, errp);
    }
out:
    g_free(opts.address);
    return ok;
}

bool monitor_check(const char *option, const char *optarg, Error **errp)
{
    g_autofree char *what = g_strdup_printf("%s %s", option, optarg);
    QmpListenOpts opts = { 0 };
    bool ok = parse_monitor_option(optarg, what, &opts, errp);

    g_free(opts.address);
    return ok;
}

bool monitor_qmp_check(const char *optarg, Error **errp)
{
    return monitor_check("-qmp", optarg, errp);
}

bool monitor_qmp_add(const char *optarg, Error **errp)
{
    return monitor_start("-qmp", optarg, false, errp);
}

/* Options of -chardev socket that vmig's monitors take, and their meaning. */
static bool chardev_socket_spec(KeyVal *kv, const char *arg, GString *spec,
                                Error **errp)
{
    static const char *const known[] = {
        "backend", "id", "path", "host", "port", "server", "wait", NULL,
    };
    bool server = false, wait = true;

    for (unsigned i = 0; i < keyval_count(kv); i++) {
        if (!g_strv_contains(known, keyval_key(kv, i))) {
            error_setg(errp, "-chardev %s: option '%s' is not supported by "
                       "vmig (socket takes id, path or host and port, "
                       "server, wait)", arg, keyval_key(kv, i));
            return false;
        }
    }
    if (keyval_has(kv, "path") == keyval_has(kv, "port")) {
        error_setg(errp, "-chardev %s: give either path=PATH or "
                   "host=HOST,port=PORT", arg);
        return false;
    }
    if ((keyval_has(kv, "server") &&
         !keyval_get_bool(kv, "server", &server, errp)) ||
        (keyval_has(kv, "wait") && !keyval_get_bool(kv, "wait", &wait, errp))) {
        return false;
    }
    if (keyval_has(kv, "path")) {
        g_string_printf(spec, "unix:%s", keyval_get(kv, "path"));
    } else {
        g_string_printf(spec, "tcp:%s:%s", keyval_has(kv, "host") ?
                        keyval_get(kv, "host") : "", keyval_get(kv, "port"));
    }
    /* The path or host came from keyval unescaped: escape its commas. */
    {
        g_auto(GStrv) parts = g_strsplit(spec->str, ",", -1);
        g_autofree char *joined = g_strjoinv(",,", parts);

        g_string_assign(spec, joined);
    }
    g_string_append_printf(spec, ",server=%s", server ? "on" : "off");
    if (server) {
        g_string_append_printf(spec, ",wait=%s", wait ? "on" : "off");
    } else if (keyval_has(kv, "wait")) {
        error_setg(errp, "-chardev %s: wait= is for server=on only", arg);
        return false;
    }
    return true;
}

char *monitor_chardev_spec(const char *arg, char **id, Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(arg, "backend", "-chardev", errp);
    g_autoptr(GString) spec = g_string_new(NULL);
    const char *backend;
    bool signal;

    if (!kv) {
        return NULL;
    }
    backend = keyval_get(kv, "backend");
    if (!backend || !keyval_has(kv, "id") || !*keyval_get(kv, "id")) {
        error_setg(errp, "-chardev %s: expected BACKEND,id=ID,...", arg);
        return NULL;
    }
    if (!strcmp(backend, "socket")) {
        if (!chardev_socket_spec(kv, arg, spec, errp)) {
            return NULL;
        }
    } else if (!strcmp(backend, "stdio")) {
        /* signal=off: ^C reaches the monitor; vmig leaves the tty alone. */
        if (keyval_has(kv, "signal") &&
            !keyval_get_bool(kv, "signal", &signal, errp)) {
            return NULL;
        }
        if (!keyval_check_unused(kv, errp)) {
            return NULL;
        }
        g_string_assign(spec, "stdio");
    } else {
        error_setg(errp, "-chardev %s: backend '%s' is not supported (vmig's "
                   "character devices serve monitors: socket or stdio)",
                   arg, backend);
        return NULL;
    }
    *id = g_strdup(keyval_get(kv, "id"));
    return g_string_free(g_steal_pointer(&spec), FALSE);
}

static void listener_free(QmpListener *l)
{
    if (l->watch) {
        g_source_remove(l->watch);
    }
    if (l->retry_timer) {
        g_source_remove(l->retry_timer);
    }
    close(l->fd);
    if (l->unix_path) {
        unlink(l->unix_path);
    }
    g_free(l->unix_path);
    g_free(l->what);
    g_free(l);
}

void monitor_listeners_cleanup(void)
{
    g_list_free_full(g_steal_pointer(&listeners),
                     (GDestroyNotify)listener_free);
}

int monitor_listener_tcp_port(void)
{
    GList *last = g_list_last(listeners);
    const QmpListener *l = last ? last->data : NULL;

    return l && !l->is_unix ? bound_port(l->fd) : -1;
}
