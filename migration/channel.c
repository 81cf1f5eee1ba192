/*
 * Migration transports.  See include/migration/channel.h.
 */
#include "qemu/osdep.h"
#include "qemu/qemu-open.h"
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include "qemu/cutils.h"
#include "qemu/iov.h"
#include "qemu/main-loop.h"
#include "qemu/unix-listen.h"
#include "crypto/tls.h"
#include "monitor/qmp.h"
#include "migration/channel.h"
#include "migration/trace.h"

struct MigCancel {
    int eventfd;
    int fired;                  /* atomic */
    int yanked;                 /* atomic */
    int timeout_ms;             /* atomic; 0: no bound */
    GMutex lock;                /* channels */
    GList *channels;            /* MigChannel: open sockets, for yank */
};

MigCancel *mig_cancel_new(Error **errp)
{
    MigCancel *c = g_new0(MigCancel, 1);

    c->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->eventfd < 0) {
        error_setg_errno(errp, errno, "migration: cannot create eventfd");
        g_free(c);
        return NULL;
    }
    g_mutex_init(&c->lock);
    return c;
}

void mig_cancel_fire(MigCancel *c)
{
    uint64_t one = 1;

    __atomic_store_n(&c->fired, 1, __ATOMIC_SEQ_CST);
    if (write(c->eventfd, &one, sizeof(one)) < 0) {
        /* The counter can only overflow after 2^64 cancels: nothing to do. */
    }
}

bool mig_cancel_fired(const MigCancel *c)
{
    return c && __atomic_load_n(&c->fired, __ATOMIC_SEQ_CST);
}

void mig_cancel_free(MigCancel *c)
{
    if (c) {
        /* Every channel is closed first: see the teardown order. */
        g_assert(!c->channels);
        close(c->eventfd);
        g_mutex_clear(&c->lock);
        g_free(c);
    }
}

void mig_cancel_set_timeout(MigCancel *c, unsigned timeout_ms)
{
    __atomic_store_n(&c->timeout_ms, MIN(timeout_ms, INT_MAX),
                     __ATOMIC_RELAXED);
}

static int cancel_timeout_ms(const MigCancel *c)
{
    return c ? __atomic_load_n(&c->timeout_ms, __ATOMIC_RELAXED) : 0;
}

void mig_cancel_yank(MigCancel *c)
{
    g_mutex_lock(&c->lock);
    __atomic_store_n(&c->yanked, 1, __ATOMIC_SEQ_CST);
    for (GList *l = c->channels; l; l = l->next) {
        MigChannel *ch = l->data;

        trace(migration_yank, "%s", ch->desc);
        shutdown(ch->fd, SHUT_RDWR);
    }
    g_mutex_unlock(&c->lock);
}

static bool cancel_yanked(const MigCancel *c)
{
    return c && __atomic_load_n(&c->yanked, __ATOMIC_SEQ_CST);
}

bool mig_channel_yanked(const MigChannel *ch)
{
    return cancel_yanked(ch->cancel);
}

/* Sockets are listed on their canceller, so that yank can reach them. */
static void channel_attach(MigChannel *ch, MigCancel *c)
{
    ch->cancel = c;
    if (c && ch->is_socket) {
        g_mutex_lock(&c->lock);
        c->channels = g_list_prepend(c->channels, ch);
        g_mutex_unlock(&c->lock);
    }
}

static void channel_detach(MigChannel *ch)
{
    MigCancel *c = ch->cancel;

    if (c && ch->is_socket) {
        g_mutex_lock(&c->lock);
        c->channels = g_list_remove(c->channels, ch);
        g_mutex_unlock(&c->lock);
    }
}

void mig_channel_set_cancel(MigChannel *ch, MigCancel *c)
{
    channel_detach(ch);
    channel_attach(ch, c);
}

/* errno @err of a failed read or write, with the reason yank gave it. */
static void channel_io_error(MigChannel *ch, int err, const char *what,
                             Error **errp)
{
    trace(migration_channel_error, "%s: %s: %s%s", ch->desc, what,
          g_strerror(err), cancel_yanked(ch->cancel) ? " (yanked)" : "");
    if (cancel_yanked(ch->cancel)) {
        error_setg(errp, "%s: %s failed: the channel was yanked", ch->desc,
                   what);
    } else {
        error_setg_errno(errp, err, "%s: %s failed", ch->desc, what);
    }
}

static bool channel_check_cancel(MigChannel *ch, Error **errp)
{
    if (mig_cancel_fired(ch->cancel)) {
        error_setg(errp, "%s: migration cancelled", ch->desc);
        return false;
    }
    return true;
}

/*
 * Wait until @fd is ready for @events, or the canceller fires.  A wait
 * for room to write, or a bounded read (ch->read_bounded), fails once
 * the canceller's timeout passes without progress: the peer is frozen or
 * gone.  A caller holding the BQL (the switchover) lets go of it while it
 * waits, so that migrate_cancel, yank and quit still reach it.
 */
static bool channel_wait(MigChannel *ch, short events, Error **errp)
{
    struct pollfd pfd[2] = {
        { .fd = ch->fd, .events = events },
        { .fd = ch->cancel ? ch->cancel->eventfd : -1, .events = POLLIN },
    };
    bool bounded = (events & POLLOUT) || ch->read_bounded;
    int timeout_ms = bounded ? cancel_timeout_ms(ch->cancel) : 0;
    int64_t deadline = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    bool had_bql = bql_locked();
    bool ok = true;

    if (had_bql) {
        bql_unlock();
    }
    for (;;) {
        int wait_ms = -1;
        int ret;

        if (timeout_ms) {
            wait_ms = MAX(0, (deadline - g_get_monotonic_time()) / 1000);
        }
        ret = poll(pfd, 2, wait_ms);
        if (ret < 0 && errno == EINTR) {
            continue;
        }
        if (ret < 0) {
            error_setg_errno(errp, errno, "%s: poll failed", ch->desc);
            ok = false;
        } else if (pfd[1].revents) {
            ok = channel_check_cancel(ch, errp);
        } else if (ret == 0) {
            ch->timed_out = true;
            error_setg(errp, "%s: the peer %s for %d ms", ch->desc,
                       events & POLLOUT ? "took no data" : "sent nothing",
                       timeout_ms);
            ok = false;
        }
        /* POLLHUP / POLLERR: let the read or write report what happened. */
        break;
    }
    if (had_bql) {
        bql_lock();
    }
    return ok;
}

/*
 * TLS: wait for the socket the way the session wants it (a read may
 * need a write first, and the other way round).
 */
static bool tls_wait(MigChannel *ch, bool want_write, Error **errp)
{
    return channel_wait(ch, want_write ? POLLOUT : POLLIN, errp);
}

static void fd_set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags >= 0 && !(flags & O_NONBLOCK)) {
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    }
}

MigChannel *mig_channel_new_fd(int fd, const char *desc, MigCancel *cancel)
{
    MigChannel *ch = g_new0(MigChannel, 1);
    struct stat st;
    int type;
    socklen_t len = sizeof(type);

    ch->fd = fd;
    ch->desc = g_strdup(desc);
    ch->is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
    channel_attach(ch, cancel);
    ch->is_regular_file = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (!ch->is_regular_file) {
        fd_set_nonblocking(fd);
    }
    return ch;
}

MigChannel *mig_channel_dup(MigChannel *ch, Error **errp)
{
    MigChannel *dup;
    int fd;

    if (!ch->is_socket) {
        error_setg(errp, "%s: not a socket, so it cannot carry a return path",
                   ch->desc);
        return NULL;
    }
    fd = fcntl(ch->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot duplicate the socket",
                         ch->desc);
        return NULL;
    }
    dup = mig_channel_new_fd(fd, ch->desc, ch->cancel);
    if (ch->tls) {
        /* One TLS connection: both directions share its session. */
        tls_session_ref(ch->tls);
        dup->tls = ch->tls;
        dup->ref_unavailable = true;
    }
    return dup;
}

bool mig_channel_tls_handshake(MigChannel *ch, TLSSession *s, Error **errp)
{
    bool ok = false;

    ch->tls = s;
    ch->ref_unavailable = true;     /* vmsplice would bypass the session */
    /* A peer that does not answer its hello is a stalled peer. */
    ch->read_bounded = true;
    for (;;) {
        bool want_write = false;
        int ret = tls_session_handshake(s, &want_write, errp);

        if (ret > 0) {
            ok = true;
            break;
        }
        if (ret < 0 || !channel_check_cancel(ch, errp) ||
            !tls_wait(ch, want_write, errp)) {
            break;
        }
    }
    ch->read_bounded = false;
    if (!ok) {
        error_prepend(errp, "%s: ", ch->desc);
    }
    trace(migration_tls_handshake, "%s: %s, peer %s", ch->desc,
          ok ? "done" : "failed",
          ok && tls_session_peer_identity(s) ? tls_session_peer_identity(s)
                                             : "-");
    return ok;
}

static ssize_t tls_read(MigChannel *ch, void *buf, size_t len, Error **errp)
{
    for (;;) {
        bool want_write = false;
        ssize_t n;

        if (!channel_check_cancel(ch, errp)) {
            return -1;
        }
        Error *err = NULL;

        n = tls_session_recv(ch->tls, buf, len, &want_write, &err);
        if (n == -2) {
            if (!tls_wait(ch, want_write, errp)) {
                return -1;
            }
            continue;
        }
        if (n <= 0 && cancel_yanked(ch->cancel)) {
            error_free(err);
            channel_io_error(ch, 0, "read", errp);
            return -1;
        }
        if (n < 0) {
            error_prepend(&err, "%s: ", ch->desc);
            error_propagate(errp, err);
        }
        return n;
    }
}

ssize_t mig_channel_read(MigChannel *ch, void *buf, size_t len, Error **errp)
{
    if (ch->tls_peeked && ch->tls_peeked->len) {
        size_t n = MIN(len, ch->tls_peeked->len);

        memcpy(buf, ch->tls_peeked->data, n);
        g_byte_array_remove_range(ch->tls_peeked, 0, n);
        return n;
    }
    if (ch->tls) {
        return tls_read(ch, buf, len, errp);
    }
    for (;;) {
        ssize_t n;

        if (!channel_check_cancel(ch, errp)) {
            return -1;
        }
        n = read(ch->fd, buf, len);
        if (n == 0 && cancel_yanked(ch->cancel)) {
            channel_io_error(ch, 0, "read", errp);
            return -1;
        }
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            if (!channel_wait(ch, POLLIN, errp)) {
                return -1;
            }
            continue;
        }
        channel_io_error(ch, errno, "read", errp);
        return -1;
    }
}

/*
 * Peek at the first @len bytes: 1 when they are there, 0 when the peer
 * closed before sending any byte, -1 with errp set on failure or cancel.
 */
static int channel_peek(MigChannel *ch, void *buf, size_t len, Error **errp)
{
    if (ch->tls) {
        /* Decrypted bytes cannot be put back: keep them for the reads. */
        if (!ch->tls_peeked) {
            ch->tls_peeked = g_byte_array_new();
        }
        while (ch->tls_peeked->len < len) {
            uint8_t chunk[64];
            ssize_t n = tls_read(ch, chunk, MIN(sizeof(chunk),
                                                len - ch->tls_peeked->len),
                                 errp);

            if (n <= 0) {
                return n < 0 ? -1 : 0;
            }
            g_byte_array_append(ch->tls_peeked, chunk, n);
        }
        memcpy(buf, ch->tls_peeked->data, len);
        return 1;
    }
    for (;;) {
        ssize_t n;

        if (!channel_check_cancel(ch, errp)) {
            return -1;
        }
        n = recv(ch->fd, buf, len, MSG_PEEK);
        if (n == (ssize_t)len) {
            return 1;
        }
        if (n == 0) {
            return 0;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno != EAGAIN) {
            channel_io_error(ch, errno, "read", errp);
            return -1;
        }
        /* Nothing, or only part of it, yet: wait for more. */
        if (n > 0) {
            g_usleep(1000);
        } else if (!channel_wait(ch, POLLIN, errp)) {
            return -1;
        }
    }
}

bool mig_channel_peek(MigChannel *ch, void *buf, size_t len, Error **errp)
{
    int ret = channel_peek(ch, buf, len, errp);

    if (ret == 0) {
        error_setg(errp, "%s: the peer closed a new connection before "
                   "saying what it is", ch->desc);
    }
    return ret > 0;
}

ssize_t mig_channel_splice_to_pipe(MigChannel *ch, int pipe_wr, size_t len,
                                   Error **errp)
{
    if (ch->tls || (ch->tls_peeked && ch->tls_peeked->len)) {
        return -2;      /* the kernel sees only ciphertext */
    }
    for (;;) {
        ssize_t n;

        if (!channel_check_cancel(ch, errp)) {
            return -1;
        }
        n = splice(ch->fd, NULL, pipe_wr, NULL, len,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n == 0 && cancel_yanked(ch->cancel)) {
            channel_io_error(ch, 0, "read", errp);
            return -1;
        }
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            /* Either the socket is empty or the pipe is full; it is empty. */
            if (!channel_wait(ch, POLLIN, errp)) {
                return -1;
            }
            continue;
        }
        if (errno == EINVAL || errno == ENOSYS) {
            return -2;
        }
        channel_io_error(ch, errno, "read", errp);
        return -1;
    }
}

/* Send all of @buf as TLS records. */
static bool tls_send_all(MigChannel *ch, const uint8_t *buf, size_t len,
                         Error **errp)
{
    while (len) {
        bool want_write = false;
        ssize_t n;

        if (!channel_check_cancel(ch, errp)) {
            return false;
        }
        Error *err = NULL;

        n = tls_session_send(ch->tls, buf, len, &want_write, &err);
        if (n == -2) {
            if (!tls_wait(ch, want_write, errp)) {
                return false;
            }
            continue;
        }
        if (n < 0) {
            if (cancel_yanked(ch->cancel)) {
                error_free(err);
                channel_io_error(ch, 0, "write", errp);
            } else {
                error_prepend(&err, "%s: ", ch->desc);
                error_propagate(errp, err);
            }
            return false;
        }
        buf += n;
        len -= n;
    }
    return true;
}

/*
 * TLS: gather @iov into records of up to 16 KiB (small pieces, such as
 * page headers, would otherwise each cost a record).
 */
static bool tls_writev(MigChannel *ch, struct iovec *iov, int iovcnt,
                       Error **errp)
{
    enum { RECORD = 16384 };

    if (!ch->tls_out) {
        ch->tls_out = g_malloc(RECORD);
    }
    while (iovcnt > 0) {
        size_t fill = 0;

        if (iov->iov_len >= RECORD) {
            /* Large pieces go as they are, without the copy. */
            size_t n = iov->iov_len;

            if (!tls_send_all(ch, iov->iov_base, n, errp)) {
                return false;
            }
            iov_consume(&iov, &iovcnt, n);
            continue;
        }
        while (iovcnt > 0 && fill < RECORD && iov->iov_len < RECORD) {
            size_t n = MIN(iov->iov_len, RECORD - fill);

            memcpy(ch->tls_out + fill, iov->iov_base, n);
            fill += n;
            iov_consume(&iov, &iovcnt, n);
        }
        if (!tls_send_all(ch, ch->tls_out, fill, errp)) {
            return false;
        }
    }
    return true;
}

/* writev() everything; @more: data follows at once (a socket may wait). */
static bool channel_writev(MigChannel *ch, struct iovec *iov, int iovcnt,
                           bool more, Error **errp)
{
    if (ch->tls) {
        return tls_writev(ch, iov, iovcnt, errp);
    }
    while (iovcnt > 0) {
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = MIN(iovcnt,
                                                                 IOV_MAX) };
        ssize_t n;

        if (!channel_check_cancel(ch, errp)) {
            return false;
        }
        n = more && ch->is_socket ? sendmsg(ch->fd, &msg, MSG_MORE)
                                  : writev(ch->fd, iov, MIN(iovcnt, IOV_MAX));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                if (!channel_wait(ch, POLLOUT, errp)) {
                    return false;
                }
                continue;
            }
            channel_io_error(ch, errno, "write", errp);
            return false;
        }
        iov_consume(&iov, &iovcnt, n);
    }
    return true;
}

bool mig_channel_writev_all(MigChannel *ch, struct iovec *iov, int iovcnt,
                            Error **errp)
{
    return channel_writev(ch, iov, iovcnt, false, errp);
}

/* The pipe that carries page references to the socket, made on first use. */
static bool ref_pipe_setup(MigChannel *ch)
{
    if (ch->ref_unavailable) {
        return false;
    }
    if (ch->ref_pipe_open) {
        return true;
    }
    if (!ch->is_socket || pipe2(ch->ref_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        ch->ref_unavailable = true;
        return false;
    }
    /* 1 MiB (256 pages) per round trip; the default is 64 KiB. */
    fcntl(ch->ref_pipe[1], F_SETPIPE_SZ, 1024 * 1024);
    ch->ref_pipe_open = true;
    return true;
}

/* Move the @n bytes in the pipe into the socket. */
static bool ref_pipe_drain(MigChannel *ch, size_t n, Error **errp)
{
    while (n) {
        ssize_t w;

        if (!channel_check_cancel(ch, errp)) {
            return false;
        }
        w = splice(ch->ref_pipe[0], NULL, ch->fd, NULL, n,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (w > 0) {
            n -= w;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        /* The pipe holds data, so only the socket can be full. */
        if (w < 0 && errno == EAGAIN) {
            if (!channel_wait(ch, POLLOUT, errp)) {
                return false;
            }
            continue;
        }
        channel_io_error(ch, w < 0 ? errno : EPIPE, "write", errp);
        return false;
    }
    return true;
}

bool mig_channel_writev_ref(MigChannel *ch, struct iovec *iov, int iovcnt,
                            int nr_copied, Error **errp)
{
    if (nr_copied && !channel_writev(ch, iov, nr_copied, iovcnt > nr_copied,
                                     errp)) {
        return false;
    }
    iov += nr_copied;
    iovcnt -= nr_copied;
    while (iovcnt > 0) {
        ssize_t n;

        if (!ref_pipe_setup(ch)) {
            return channel_writev(ch, iov, iovcnt, false, errp);
        }
        /* The pipe is empty here: this takes up to its size. */
        n = vmsplice(ch->ref_pipe[1], iov, MIN(iovcnt, IOV_MAX),
                     SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EINVAL || errno == ENOSYS) &&
            !ch->sent_by_ref) {
            ch->ref_unavailable = true;
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : EIO, "%s: cannot hand "
                             "guest RAM to the kernel", ch->desc);
            return false;
        }
        ch->sent_by_ref = true;
        if (!ref_pipe_drain(ch, n, errp)) {
            return false;
        }
        iov_consume(&iov, &iovcnt, n);
    }
    return true;
}

bool mig_channel_wait_peer_close(MigChannel *ch, Error **errp)
{
    char scratch[256];
    bool ok = true;

    ch->read_bounded = true;
    while (ch->sent_by_ref) {
        Error *err = NULL;
        ssize_t n = mig_channel_read(ch, scratch, sizeof(scratch), &err);

        if (n < 0 && (mig_cancel_fired(ch->cancel) || ch->timed_out)) {
            error_propagate(errp, err);
            ok = false;
            break;
        }
        error_free(err);
        /* End of stream, or a reset: the peer reads no more either way. */
        if (n <= 0) {
            ch->sent_by_ref = false;
        }
    }
    ch->read_bounded = false;
    return ok;
}

void mig_channel_shutdown(MigChannel *ch)
{
    if (ch && ch->is_socket) {
        shutdown(ch->fd, SHUT_RDWR);
    }
}

int mig_channel_steal_fd(MigChannel *ch)
{
    int fd = ch->fd;

    channel_detach(ch);
    g_free(ch->desc);
    g_free(ch);
    return fd;
}

void mig_channel_close(MigChannel *ch)
{
    if (!ch) {
        return;
    }
    channel_detach(ch);
    tls_session_unref(ch->tls);
    if (ch->tls_peeked) {
        g_byte_array_free(ch->tls_peeked, TRUE);
    }
    g_free(ch->tls_out);
    close(ch->fd);
    if (ch->ref_pipe_open) {
        close(ch->ref_pipe[0]);
        close(ch->ref_pipe[1]);
    }
    if (ch->child > 0) {
        /* The command sees end of stream; give it a moment to finish. */
        for (int i = 0; i < 500; i++) {
            pid_t r = waitpid(ch->child, NULL, WNOHANG);

            if (r == ch->child || (r < 0 && errno != EINTR)) {
                ch->child = 0;
                break;
            }
            g_usleep(10 * 1000);
        }
        if (ch->child > 0) {
            kill(ch->child, SIGKILL);
            waitpid(ch->child, NULL, 0);
        }
    }
    g_free(ch->desc);
    g_free(ch);
}

/* ---- sockets ---- */

static int socket_unix_addr(const char *path, struct sockaddr_un *sun,
                            Error **errp)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long (max %zu bytes)",
                   path, sizeof(sun->sun_path) - 1);
        return -1;
    }
    strcpy(sun->sun_path, path);
    return 0;
}

static struct addrinfo *tcp_resolve(const MigrationAddress *addr, bool passive,
                                    Error **errp)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = passive ? AI_PASSIVE : 0,
    };
    struct addrinfo *res = NULL;
    const char *host = addr->host && *addr->host ? addr->host : NULL;
    int ret = getaddrinfo(host, addr->port, &hints, &res);

    if (ret) {
        error_setg(errp, "cannot resolve '%s:%s': %s", host ? host : "*",
                   addr->port, gai_strerror(ret));
        return NULL;
    }
    return res;
}

static void socket_tune(int fd, bool tcp, MigCancel *cancel)
{
    int timeout_ms = cancel_timeout_ms(cancel);
    int one = 1;

    if (!tcp) {
        return;
    }
    /* Return-path messages and the final sections are small. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (timeout_ms) {
        /*
         * A cut link or a dead host: sent data unacknowledged for the
         * bound fails the socket, and so do three unanswered keepalive
         * probes on an idle one (the destination's reads), within it.
         */
        unsigned user_timeout = timeout_ms;
        int idle = MAX(1, timeout_ms / 3000);
        int intvl = MAX(1, timeout_ms / 6000);
        int cnt = 3;

        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
                   sizeof(user_timeout));
    }
}

static int connect_with_cancel(int fd, const struct sockaddr *sa,
                               socklen_t salen, MigCancel *cancel,
                               const char *desc, Error **errp)
{
    MigChannel tmp = { .fd = fd, .desc = (char *)desc, .cancel = cancel };
    Error *wait_err = NULL;
    int err = 0;
    socklen_t len = sizeof(err);

    fd_set_nonblocking(fd);
    if (connect(fd, sa, salen) == 0) {
        return 0;
    }
    if (errno != EINPROGRESS) {
        error_setg_errno(errp, errno, "%s: cannot connect", desc);
        return -1;
    }
    if (!channel_wait(&tmp, POLLOUT, &wait_err)) {
        if (tmp.timed_out) {
            error_free(wait_err);
            error_setg_errno(errp, ETIMEDOUT, "%s: cannot connect", desc);
        } else {
            error_propagate(errp, wait_err);
        }
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        error_setg_errno(errp, err ? err : errno, "%s: cannot connect", desc);
        return -1;
    }
    return 0;
}

static int tcp_connect(const MigrationAddress *addr, MigCancel *cancel,
                       const char *desc, Error **errp)
{
    struct addrinfo *res = tcp_resolve(addr, false, errp);
    Error *last_err = NULL;
    int fd = -1;

    if (!res) {
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        error_free(last_err);
        last_err = NULL;
        if (connect_with_cancel(fd, ai->ai_addr, ai->ai_addrlen, cancel,
                                desc, &last_err) == 0) {
            break;
        }
        close(fd);
        fd = -1;
        if (mig_cancel_fired(cancel)) {
            break;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (last_err) {
            error_propagate(errp, last_err);
        } else {
            error_setg_errno(errp, errno, "%s: cannot create a socket", desc);
        }
        return -1;
    }
    error_free(last_err);
    socket_tune(fd, true, cancel);
    return fd;
}

static int unix_connect(const char *path, MigCancel *cancel, const char *desc,
                        Error **errp)
{
    struct sockaddr_un sun;
    int fd;

    if (socket_unix_addr(path, &sun, errp) < 0) {
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot create a socket", desc);
        return -1;
    }
    if (connect_with_cancel(fd, (struct sockaddr *)&sun, sizeof(sun), cancel,
                            desc, errp) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* fd:NAME: a descriptor passed with getfd, or a number we inherited. */
static int fd_take(const char *name, Error **errp)
{
    Error *local_err = NULL;
    uint64_t num;
    int fd = monitor_fd_take(name, &local_err);

    if (fd >= 0) {
        return fd;
    }
    if (qemu_strtou64(name, &num) == 0 && num <= INT_MAX &&
        fcntl((int)num, F_GETFD) >= 0) {
        error_free(local_err);
        return (int)num;
    }
    error_propagate(errp, local_err);
    error_prepend(errp, "fd:%s: ", name);
    return -1;
}

static int exec_spawn(const char *command, bool we_write, pid_t *child,
                      Error **errp)
{
    const char *argv[] = { "/bin/sh", "-c", command, NULL };
    GError *gerr = NULL;
    GPid pid;
    int fd;
    gboolean ok;

    if (we_write) {
        ok = g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                      G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                      &pid, &fd, NULL, NULL, &gerr);
    } else {
        ok = g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                      G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                      &pid, NULL, &fd, NULL, &gerr);
    }
    if (!ok) {
        error_setg(errp, "exec:%s: cannot run the command: %s", command,
                   gerr->message);
        g_error_free(gerr);
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    *child = pid;
    return fd;
}

static int file_open(const MigrationAddress *addr, bool writing, Error **errp)
{
    int flags = writing ? O_WRONLY | O_CREAT : O_RDONLY;
    int fd = qemu_open(addr->path, flags, 0600, errp);

    if (fd < 0) {
        error_prepend(errp, "file: ");
        return -1;
    }
    /* Writing: the stream replaces whatever followed the offset. */
    if (writing && ftruncate(fd, addr->offset) < 0) {
        error_setg_errno(errp, errno, "file:%s: cannot truncate to %" PRIu64,
                         addr->path, addr->offset);
        close(fd);
        return -1;
    }
    if (lseek(fd, addr->offset, SEEK_SET) < 0) {
        error_setg_errno(errp, errno, "file:%s: cannot seek to %" PRIu64,
                         addr->path, addr->offset);
        close(fd);
        return -1;
    }
    return fd;
}

MigChannel *mig_channel_connect(const MigrationAddress *addr,
                                MigCancel *cancel, Error **errp)
{
    g_autofree char *desc = migration_address_to_uri(addr);
    MigChannel *ch;
    pid_t child = 0;
    int fd = -1;

    switch (addr->type) {
    case MIGRATION_ADDRESS_TCP:
        fd = tcp_connect(addr, cancel, desc, errp);
        break;
    case MIGRATION_ADDRESS_UNIX:
        fd = unix_connect(addr->path, cancel, desc, errp);
        break;
    case MIGRATION_ADDRESS_FD:
        fd = fd_take(addr->fd_name, errp);
        break;
    case MIGRATION_ADDRESS_EXEC:
        fd = exec_spawn(addr->command, true, &child, errp);
        break;
    case MIGRATION_ADDRESS_FILE:
        fd = file_open(addr, true, errp);
        break;
    default:
        error_setg(errp, "'%s' is not an address to migrate to", desc);
        break;
    }
    if (fd < 0) {
        return NULL;
    }
    trace(migration_channel_connect, "%s: fd %d", desc, fd);
    ch = mig_channel_new_fd(fd, desc, cancel);
    ch->child = child;
    return ch;
}

/* ---- listeners ---- */

struct MigListener {
    MigrationAddress addr;
    int listen_fd;              /* tcp, unix; else -1 */
    MigChannel *single;         /* fd, exec, file: the one stream */
    char *bound_host;
    char *bound_port;
    bool unlink_path;
};

static int tcp_listen(MigListener *l, Error **errp)
{
    struct addrinfo *res = tcp_resolve(&l->addr, true, errp);
    int fd = -1, saved_errno = 0;

    if (!res) {
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved_errno = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, 16) == 0) {
            break;
        }
        saved_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, saved_errno, "tcp:%s:%s: cannot listen",
                         l->addr.host, l->addr.port);
        return -1;
    }
    {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char host[NI_MAXHOST], serv[NI_MAXSERV];

        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
            getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host),
                        serv, sizeof(serv),
                        NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
            l->bound_host = g_strdup(host);
            l->bound_port = g_strdup(serv);
        }
    }
    return fd;
}

static int unix_listen(MigListener *l, Error **errp)
{
    char why[UNIX_LISTEN_MSG_SIZE];
    int fd = unix_listen_private(l->addr.path, 16, 0, why, sizeof(why));

    if (fd < 0) {
        error_setg(errp, "unix:%s: %s", l->addr.path, why);
        return -1;
    }
    l->unlink_path = true;
    return fd;
}

MigListener *mig_listener_new(const MigrationAddress *addr, Error **errp)
{
    MigListener *l = g_new0(MigListener, 1);
    g_autofree char *desc = migration_address_to_uri(addr);
    pid_t child = 0;
    int fd = -1;

    l->listen_fd = -1;
    l->addr.type = addr->type;
    l->addr.host = g_strdup(addr->host);
    l->addr.port = g_strdup(addr->port);
    l->addr.path = g_strdup(addr->path);
    l->addr.fd_name = g_strdup(addr->fd_name);
    l->addr.command = g_strdup(addr->command);
    l->addr.offset = addr->offset;

    switch (addr->type) {
    case MIGRATION_ADDRESS_TCP:
        l->listen_fd = tcp_listen(l, errp);
        break;
    case MIGRATION_ADDRESS_UNIX:
        l->listen_fd = unix_listen(l, errp);
        break;
    case MIGRATION_ADDRESS_FD:
        fd = fd_take(addr->fd_name, errp);
        break;
    case MIGRATION_ADDRESS_EXEC:
        fd = exec_spawn(addr->command, false, &child, errp);
        break;
    case MIGRATION_ADDRESS_FILE:
        fd = file_open(addr, false, errp);
        break;
    default:
        error_setg(errp, "'%s' is not an address to listen on", desc);
        break;
    }
    if (l->listen_fd < 0 && fd < 0) {
        mig_listener_free(l);
        return NULL;
    }
    if (fd >= 0) {
        l->single = mig_channel_new_fd(fd, desc, NULL);
        l->single->child = child;
    }
    return l;
}

char *mig_listener_describe(const MigListener *l)
{
    if (l->addr.type == MIGRATION_ADDRESS_TCP && l->bound_port) {
        MigrationAddress a = l->addr;

        a.host = l->bound_host;
        a.port = l->bound_port;
        return migration_address_to_uri(&a);
    }
    return migration_address_to_uri(&l->addr);
}

const char *mig_listener_socket_type(const MigListener *l)
{
    switch (l->addr.type) {
    case MIGRATION_ADDRESS_TCP:
        return "inet";
    case MIGRATION_ADDRESS_UNIX:
        return "unix";
    default:
        return NULL;
    }
}

const char *mig_listener_host(const MigListener *l)
{
    return l->bound_host ? l->bound_host : l->addr.host;
}

const char *mig_listener_port_or_path(const MigListener *l)
{
    if (l->addr.type == MIGRATION_ADDRESS_TCP) {
        return l->bound_port ? l->bound_port : l->addr.port;
    }
    return l->addr.path;
}

MigChannel *mig_listener_accept(MigListener *l, MigCancel *cancel,
                                Error **errp)
{
    g_autofree char *desc = mig_listener_describe(l);
    MigChannel tmp = { .fd = l->listen_fd, .desc = desc, .cancel = cancel };
    MigChannel *ch;
    int fd;

    if (l->single) {
        ch = l->single;
        l->single = NULL;
        channel_attach(ch, cancel);
        return ch;
    }
    if (l->listen_fd < 0) {
        error_setg(errp, "%s: the only stream was taken already", desc);
        return NULL;
    }
    fd_set_nonblocking(l->listen_fd);
    for (;;) {
        uint8_t first;
        int ret;

        if (!channel_check_cancel(&tmp, errp)) {
            return NULL;
        }
        fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN) {
                error_setg_errno(errp, errno, "%s: accept failed", desc);
                return NULL;
            }
            if (!channel_wait(&tmp, POLLIN, errp)) {
                return NULL;
            }
            continue;
        }
        socket_tune(fd, l->addr.type == MIGRATION_ADDRESS_TCP, cancel);
        ch = mig_channel_new_fd(fd, desc, cancel);
        /*
         * A peer that hangs up before its first byte is no migration: a
         * process checking whether the socket path is in use (see
         * unix_listen_private()), a port scan.  Keep listening.
         */
        ret = channel_peek(ch, &first, 1, errp);
        if (ret > 0) {
            trace(migration_channel_listen, "%s: accepted fd %d", desc, fd);
            return ch;
        }
        mig_channel_close(ch);
        if (ret < 0) {
            return NULL;
        }
        trace(migration_probe_ignored, "%s: a connection closed before its "
              "first byte", desc);
    }
}

void mig_listener_free(MigListener *l)
{
    if (!l) {
        return;
    }
    if (l->listen_fd >= 0) {
        close(l->listen_fd);
    }
    if (l->unlink_path) {
        unlink(l->addr.path);
    }
    mig_channel_close(l->single);
    g_free(l->bound_host);
    g_free(l->bound_port);
    migration_address_clear(&l->addr);
    g_free(l);
}
