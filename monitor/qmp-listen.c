/*
 * -qmp: parse the option and listen on a UNIX or TCP socket.
 *
 * vmig only ever listens, and never blocks waiting for the first client:
 * the socket is bound before the option is accepted, so a client may
 * connect as soon as vmig has started, and can rely on that.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/unix-listen.h"
#include "monitor/monitor-internal.h"

#include <glib-unix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define QMP_LISTEN_BACKLOG 16
/* Pause after accept() ran out of fds, instead of spinning on the socket. */
#define QMP_ACCEPT_RETRY_MS 100

typedef struct QmpListener {
    int fd;
    bool is_unix;
    char *unix_path;            /* unlinked at cleanup */
    char *what;                 /* "-qmp unix:/tmp/q.sock,..." for messages */
    unsigned negotiation_timeout_ms;
    guint watch;
    guint retry_timer;
} QmpListener;

static GList *listeners;

typedef struct QmpListenOpts {
    char *address;              /* "unix:PATH" or "tcp:HOST:PORT" */
    bool server;
    bool wait;
    bool wait_given;
    unsigned negotiation_timeout_ms;
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
            error_setg(errp, "%s: unknown option '%s' (expected server=on, "
                       "wait=off, x-negotiation-timeout=MS)", what, key);
            return false;
        }
    }
    if (!opts->server) {
        error_setg(errp, "%s: vmig only listens for QMP clients; add "
                   "server=on,wait=off", what);
        return false;
    }
    if (opts->wait_given && opts->wait) {
        error_setg(errp, "%s: wait=on is not supported: vmig does not block "
                   "waiting for a QMP client; use wait=off", what);
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
    if (!monitor_qmp_attach(cfd, l->is_unix, peer, l->negotiation_timeout_ms,
                            &err)) {
        warn_report("%s", error_get_pretty(err));
        error_free(err);
        close(cfd);
    }
    return G_SOURCE_CONTINUE;
}

static void listener_add(int fd, bool is_unix, const char *unix_path,
                         const char *what, unsigned negotiation_timeout_ms)
{
    QmpListener *l = g_new0(QmpListener, 1);

    l->negotiation_timeout_ms = negotiation_timeout_ms;
    l->fd = fd;
    l->is_unix = is_unix;
    l->unix_path = g_strdup(unix_path);
    l->what = g_strdup(what);
    l->watch = g_unix_fd_add(fd, G_IO_IN, listener_readable, l);
    listeners = g_list_append(listeners, l);
}

/* ---- Binding ---- */

static bool listen_unix(const char *path, const char *what,
                        unsigned negotiation_timeout_ms, Error **errp)
{
    char why[UNIX_LISTEN_MSG_SIZE];
    int fd = unix_listen_private(path, QMP_LISTEN_BACKLOG, SOCK_NONBLOCK,
                                 why, sizeof(why));

    if (fd < 0) {
        error_setg(errp, "%s: %s", what, why);
        return false;
    }
    listener_add(fd, true, path, what, negotiation_timeout_ms);
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
                       unsigned negotiation_timeout_ms, Error **errp)
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
        listener_add(fd, false, NULL, what, negotiation_timeout_ms);
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
static bool parse_qmp_option(const char *optarg, const char *what,
                             QmpListenOpts *opts, Error **errp)
{
    if (!parse_listen_opts(optarg, what, opts, errp)) {
        return false;
    }
    if (!g_str_has_prefix(opts->address, "unix:") &&
        !g_str_has_prefix(opts->address, "tcp:")) {
        error_setg(errp, "%s: unsupported address '%s' (expected unix:PATH or "
                   "tcp:HOST:PORT)", what, opts->address);
        return false;
    }
    return true;
}

bool monitor_qmp_check(const char *optarg, Error **errp)
{
    g_autofree char *what = g_strdup_printf("-qmp %s", optarg);
    QmpListenOpts opts = { 0 };
    bool ok = parse_qmp_option(optarg, what, &opts, errp);

    g_free(opts.address);
    return ok;
}

bool monitor_qmp_add(const char *optarg, Error **errp)
{
    g_autofree char *what = g_strdup_printf("-qmp %s", optarg);
    QmpListenOpts opts = { 0 };
    bool ok = false;

    if (!parse_qmp_option(optarg, what, &opts, errp)) {
        goto out;
    }
    if (g_str_has_prefix(opts.address, "unix:")) {
        ok = listen_unix(opts.address + strlen("unix:"), what,
                         opts.negotiation_timeout_ms, errp);
    } else {
        ok = listen_tcp(opts.address + strlen("tcp:"), what,
                        opts.negotiation_timeout_ms, errp);
    }
out:
    g_free(opts.address);
    return ok;
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
