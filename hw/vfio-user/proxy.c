/*
 * vfio-user client transport: socket, message framing, replies matched
 * by msg_id, fd passing and the receive thread.
 */
#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qemu/trace.h"
#include "hw/vfio-user/proxy.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

TRACE_DEFINE(vfio_user_send);
TRACE_DEFINE(vfio_user_reply);
TRACE_DEFINE(vfio_user_server_request);
TRACE_DEFINE(vfio_user_close);

/* A reply may be padded, but never by more than this over what we take. */
#define VFIO_USER_REPLY_SLACK (64 * KiB)

typedef enum WaiterState {
    WAITER_SENT,            /* in the table, reply not seen yet */
    WAITER_RECEIVING,       /* the receive thread is reading its payload */
    WAITER_DONE,            /* out of the table: reply read or failed */
} WaiterState;

typedef struct VFIOUserWaiter VFIOUserWaiter;
struct VFIOUserWaiter {
    uint16_t msg_id;
    VFIOUserRequest *req;
    WaiterState state;
    bool failed;            /* connection died under it */
    bool sleeping;          /* its thread waits on reply_cond for it */
    gint64 deadline;        /* monotonic time the reply is due by */
    VFIOUserWaiter *next_free;
};

/*
 * Waiters kept for reuse: a pipelined reader sends thousands of requests
 * per second, each needing one.
 */
#define VFIO_USER_FREE_WAITERS 32

struct VFIOUserProxy {
    char *path;
    int fd;
    unsigned timeout_ms;
    uint64_t our_max_xfer;
    VFIOUserPeerCaps caps;
    VFIOUserDMAReadFn *dma_read;
    VFIOUserDMAWriteFn *dma_write;
    void *dma_opaque;
    void (*closed_cb)(void *opaque, const char *reason);
    void *closed_opaque;

    GThread *recv_thread;

    /* Whole messages go out under send_lock, so they never interleave. */
    GMutex send_lock;

    /* lock protects everything below; reply_cond signals waiter changes. */
    GMutex lock;
    GCond reply_cond;
    GHashTable *waiters;    /* msg_id -> VFIOUserWaiter */
    VFIOUserWaiter *free_waiters;
    unsigned nr_free_waiters;
    uint16_t next_msg_id;
    bool closed;
    bool closing;           /* vfio_user_disconnect() was called */
    char *close_reason;
};


const char *vfio_user_cmd_name(uint16_t cmd)
{
    static __thread char buf[24];
    const char *name = vfio_user_command_name(cmd);

    if (name) {
        return name;
    }
    snprintf(buf, sizeof(buf), "command %u", cmd);
    return buf;
}

const char *vfio_user_proxy_name(const VFIOUserProxy *proxy)
{
    return proxy->path;
}

const VFIOUserPeerCaps *vfio_user_peer_caps(const VFIOUserProxy *proxy)
{
    return &proxy->caps;
}

bool vfio_user_proxy_alive(VFIOUserProxy *proxy)
{
    bool alive;

    g_mutex_lock(&proxy->lock);
    alive = !proxy->closed;
    g_mutex_unlock(&proxy->lock);
    return alive;
}

/*
 * Mark the connection dead: every waiter fails with @reason and the
 * socket is shut down so the receive thread (if it is not the caller)
 * leaves its read.  Called with proxy->lock held.
 */
static void proxy_close_locked(VFIOUserProxy *proxy, const char *reason)
{
    GHashTableIter iter;
    gpointer value;

    if (proxy->closed) {
        return;
    }
    proxy->closed = true;
    proxy->close_reason = g_strdup(reason);
    trace(vfio_user_close, "%s: %s", proxy->path, reason);
    g_hash_table_iter_init(&iter, proxy->waiters);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        VFIOUserWaiter *w = value;

        /*
         * The receive thread is writing into this one's buffers: it will
         * finish it, and its read fails promptly once the socket is down.
         */
        if (w->state == WAITER_RECEIVING) {
            continue;
        }
        w->failed = true;
        w->state = WAITER_DONE;
        g_hash_table_iter_remove(&iter);
    }
    shutdown(proxy->fd, SHUT_RDWR);
    g_cond_broadcast(&proxy->reply_cond);
}

static void proxy_close(VFIOUserProxy *proxy, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
static void proxy_close(VFIOUserProxy *proxy, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *reason = NULL;

    va_start(ap, fmt);
    reason = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_mutex_lock(&proxy->lock);
    proxy_close_locked(proxy, reason);
    g_mutex_unlock(&proxy->lock);
}

/* Why the stream broke, in words a user can act on. */
static const char *stream_error(int err)
{
    switch (-err) {
    case EPIPE:
        return "the server closed the connection";
    case ECONNRESET:
        return "the server closed the connection (reset)";
    case ETIMEDOUT:
        return "the server stopped in the middle of a message";
    case EAGAIN:
        /* Only a send gets here: the receive path says ETIMEDOUT. */
        return "the server stopped reading (a message could not be sent "
               "within the timeout)";
    case EMSGSIZE:
        return "the server passed too many fds";
    default:
        return g_strerror(-err);
    }
}

/* ---- Sending ---- */

/*
 * Write a whole message (header + payload iovs, fds with the first byte).
 * Returns 0 or -errno.  Caller holds send_lock.
 */
static int proxy_send_locked(VFIOUserProxy *proxy,
                             const struct vfio_user_header *hdr,
                             const struct iovec *payload, int payload_cnt,
                             const int *fds, int nr_fds)
{
    struct iovec iov_store[8];
    g_autofree struct iovec *iov_heap = NULL;
    struct iovec *iov = iov_store;
    int cnt = payload_cnt + 1;
    union {
        char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_MAX_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = { 0 };
    bool fds_pending = nr_fds > 0;

    assert(nr_fds <= VFIO_USER_MAX_MAX_FDS);
    if (cnt > (int)ARRAY_SIZE(iov_store)) {
        iov_heap = g_new(struct iovec, cnt);
        iov = iov_heap;
    }
    iov[0].iov_base = (void *)hdr;
    iov[0].iov_len = sizeof(*hdr);
    for (int i = 0; i < payload_cnt; i++) {
        iov[i + 1] = payload[i];
    }

    while (cnt > 0) {
        ssize_t n;

        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = cnt;
        if (fds_pending) {
            struct cmsghdr *cm;

            memset(&control, 0, sizeof(control));
            msg.msg_control = control.buf;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * nr_fds);
            cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nr_fds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nr_fds);
        }
        n = sendmsg(proxy->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        fds_pending = false;
        /* Step over what went out; iov entries are our copies. */
        iov_consume(&iov, &cnt, n);
    }
    return 0;
}

static int proxy_send(VFIOUserProxy *proxy, const struct vfio_user_header *hdr,
                      const struct iovec *payload, int payload_cnt,
                      const int *fds, int nr_fds)
{
    int ret;

    g_mutex_lock(&proxy->send_lock);
    ret = proxy_send_locked(proxy, hdr, payload, payload_cnt, fds, nr_fds);
    g_mutex_unlock(&proxy->send_lock);
    return ret;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t total = 0;

    for (int i = 0; i < cnt; i++) {
        total += iov[i].iov_len;
    }
    return total;
}

/* Called with proxy->lock held: a msg_id no outstanding request uses. */
static uint16_t proxy_alloc_msg_id(VFIOUserProxy *proxy)
{
    uint16_t id;

    do {
        id = proxy->next_msg_id++;
    } while (g_hash_table_contains(proxy->waiters, GUINT_TO_POINTER(id)));
    return id;
}

VFIOUserPending *vfio_user_request_send(VFIOUserProxy *proxy,
                                        VFIOUserRequest *req, Error **errp)
{
    const char *name = vfio_user_cmd_name(req->cmd);
    VFIOUserWaiter *w;
    struct vfio_user_header hdr = { 0 };
    size_t payload = iov_total(req->iov, req->iov_cnt);
    int ret;

    req->reply_len = 0;
    req->reply_nr_fds = 0;
    req->error_no = 0;

    if (payload > UINT32_MAX - sizeof(hdr)) {
        error_setg(errp, "vfio-user %s: %s of %zu bytes is too large",
                   proxy->path, name, payload);
        return NULL;
    }
    if (req->nr_fds > (int)proxy->caps.max_msg_fds ||
        req->nr_fds > VFIO_USER_MAX_MAX_FDS) {
        error_setg(errp, "vfio-user %s: %s passes %d fds, the server takes "
                   "at most %u", proxy->path, name, req->nr_fds,
                   proxy->caps.max_msg_fds);
        return NULL;
    }

    g_mutex_lock(&proxy->lock);
    if (proxy->closed) {
        error_setg(errp, "vfio-user %s: cannot send %s: %s", proxy->path,
                   name, proxy->close_reason);
        g_mutex_unlock(&proxy->lock);
        return NULL;
    }
    /* msg_id is 16 bits: every id in flight must stay unique. */
    if (g_hash_table_size(proxy->waiters) >= UINT16_MAX) {
        error_setg(errp, "vfio-user %s: cannot send %s: %u requests are "
                   "already waiting for replies", proxy->path, name,
                   UINT16_MAX);
        g_mutex_unlock(&proxy->lock);
        return NULL;
    }
    w = proxy->free_waiters;
    if (w) {
        proxy->free_waiters = w->next_free;
        proxy->nr_free_waiters--;
        memset(w, 0, sizeof(*w));
    } else {
        w = g_new0(VFIOUserWaiter, 1);
    }
    w->req = req;
    w->state = WAITER_SENT;
    w->msg_id = proxy_alloc_msg_id(proxy);
    g_hash_table_insert(proxy->waiters, GUINT_TO_POINTER(w->msg_id), w);
    g_mutex_unlock(&proxy->lock);

    hdr.msg_id = w->msg_id;
    hdr.cmd = req->cmd;
    hdr.msg_size = sizeof(hdr) + payload;
    hdr.flags = VFIO_USER_F_TYPE_COMMAND;
    trace(vfio_user_send, "%s: %s msg_id %u, %zu bytes, %d fds", proxy->path,
          name, w->msg_id, payload, req->nr_fds);
    ret = proxy_send(proxy, &hdr, req->iov, req->iov_cnt, req->fds,
                     req->nr_fds);
    if (ret < 0) {
        /*
         * A half-sent message leaves the stream unusable: end it.  The
         * waiter fails with the reason when it is waited for.
         */
        proxy_close(proxy, "sending %s failed: %s", name, stream_error(ret));
    }
    w->deadline = g_get_monotonic_time() + (gint64)proxy->timeout_ms * 1000;
    return (VFIOUserPending *)w;
}

/* Called with proxy->lock held: @w is done with, keep it for reuse. */
static void proxy_free_waiter_locked(VFIOUserProxy *proxy, VFIOUserWaiter *w)
{
    if (proxy->nr_free_waiters >= VFIO_USER_FREE_WAITERS) {
        g_free(w);
        return;
    }
    w->next_free = proxy->free_waiters;
    proxy->free_waiters = w;
    proxy->nr_free_waiters++;
}

bool vfio_user_request_wait(VFIOUserProxy *proxy, VFIOUserPending *pending,
                            Error **errp)
{
    VFIOUserWaiter *w = (VFIOUserWaiter *)pending;
    VFIOUserRequest *req = w->req;
    const char *name = vfio_user_cmd_name(req->cmd);
    bool timed_out = false, failed;

    g_mutex_lock(&proxy->lock);
    while (w->state != WAITER_DONE) {
        bool woken;

        /* The receive thread wakes us only for this waiter (or a close). */
        w->sleeping = true;
        woken = g_cond_wait_until(&proxy->reply_cond, &proxy->lock,
                                  w->deadline);
        w->sleeping = false;
        if (!woken && w->state == WAITER_SENT) {
            /* A reply arriving later is read and dropped by msg_id. */
            g_hash_table_remove(proxy->waiters, GUINT_TO_POINTER(w->msg_id));
            timed_out = true;
            break;
        }
        /*
         * A reply being read is bounded by the socket's receive timeout,
         * after which the receive thread closes the connection.
         */
    }
    failed = w->failed;
    if (timed_out) {
        error_setg(errp, "vfio-user %s: no reply to %s within %u ms",
                   proxy->path, name, proxy->timeout_ms);
    } else if (failed) {
        error_setg(errp, "vfio-user %s: %s failed: %s", proxy->path, name,
                   proxy->close_reason);
    }
    proxy_free_waiter_locked(proxy, w);
    g_mutex_unlock(&proxy->lock);

    if (timed_out || failed) {
        return false;
    }
    if (req->error_no) {
        error_setg(errp, "vfio-user %s: server refused %s: %s", proxy->path,
                   name, g_strerror(req->error_no));
        return false;
    }
    return true;
}

bool vfio_user_request(VFIOUserProxy *proxy, VFIOUserRequest *req,
                       Error **errp)
{
    VFIOUserPending *pending = vfio_user_request_send(proxy, req, errp);

    return pending && vfio_user_request_wait(proxy, pending, errp);
}

/* ---- Receiving ---- */

/*
 * Read exactly the bytes of @iov (modified).  Between messages the caller
 * may allow an idle wait (@idle_ok): the socket's timeout then only loops.
 * Returns 0, -EPIPE at end of stream, -ETIMEDOUT or -errno.
 */
static int proxy_recv_full(VFIOUserProxy *proxy, struct iovec *iov, int cnt,
                           bool idle_ok)
{
    bool started = false;

    iov_consume(&iov, &cnt, 0);
    while (cnt > 0) {
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = cnt };
        /*
         * MSG_WAITALL: a payload arriving in pieces is waited for in the
         * kernel rather than with a system call per piece.  The receive
         * timeout still ends the wait, with what came so far.
         */
        ssize_t n = recvmsg(proxy->fd, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (idle_ok && !started) {
                    continue;
                }
                return -ETIMEDOUT;
            }
            return -errno;
        }
        if (n == 0) {
            return -EPIPE;
        }
        started = true;
        iov_consume(&iov, &cnt, n);
    }
    return 0;
}

/* Read and drop @len payload bytes. */
static int proxy_recv_discard(VFIOUserProxy *proxy, size_t len)
{
    char scratch[4096];

    while (len) {
        struct iovec iov = { scratch, MIN(len, sizeof(scratch)) };
        size_t chunk = iov.iov_len;
        int ret = proxy_recv_full(proxy, &iov, 1, false);

        if (ret < 0) {
            return ret;
        }
        len -= chunk;
    }
    return 0;
}

/*
 * Read a header and any fds that came with it.  Returns the number of fds
 * (stored in @fds) or -errno.
 */
static int proxy_recv_header(VFIOUserProxy *proxy,
                             struct vfio_user_header *hdr, int *fds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_MAX_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { hdr, sizeof(*hdr) };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    struct cmsghdr *cm;
    int nr_fds = 0;
    ssize_t n;

    /* fds arrive with the first byte: take them with a plain recvmsg. */
    for (;;) {
        n = recvmsg(proxy->fd, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EINTR || errno == EAGAIN ||
                      errno == EWOULDBLOCK)) {
            continue;
        }
        break;
    }
    if (n < 0) {
        return -errno;
    }
    if (n == 0) {
        return -EPIPE;
    }
    for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (int i = 0; i < count; i++) {
                int fd;

                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (nr_fds < VFIO_USER_MAX_MAX_FDS) {
                    fds[nr_fds++] = fd;
                } else {
                    close(fd);
                }
            }
        }
    }
    if ((size_t)n < sizeof(*hdr)) {
        struct iovec rest = { (char *)hdr + n, sizeof(*hdr) - n };
        int ret = proxy_recv_full(proxy, &rest, 1, false);

        if (ret < 0) {
            for (int i = 0; i < nr_fds; i++) {
                close(fds[i]);
            }
            return ret;
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        for (int i = 0; i < nr_fds; i++) {
            close(fds[i]);
        }
        return -EMSGSIZE;
    }
    return nr_fds;
}

static void close_fds(int *fds, int nr)
{
    for (int i = 0; i < nr; i++) {
        close(fds[i]);
    }
}

/*
 * Read the payload of a reply into its waiter's buffers.  Returns 0 or
 * -errno for a broken stream.
 */
static int proxy_recv_reply_payload(VFIOUserProxy *proxy,
                                    const struct vfio_user_header *hdr,
                                    VFIOUserRequest *req)
{
    size_t len = hdr->msg_size - sizeof(*hdr);
    size_t fixed = MIN(len, req->reply_fixed_size);
    size_t data = MIN(len - fixed, req->reply_data_size);
    struct iovec iov[2] = {
        { req->reply_fixed, fixed },
        { req->reply_data, data },
    };
    int ret;

    ret = proxy_recv_full(proxy, iov, 2, false);
    if (ret < 0) {
        return ret;
    }
    req->reply_len = len;
    return proxy_recv_discard(proxy, len - fixed - data);
}

/* Serve DMA_READ / DMA_WRITE from the server and send the reply. */
static int proxy_serve_dma(VFIOUserProxy *proxy,
                           const struct vfio_user_header *hdr)
{
    size_t len = hdr->msg_size - sizeof(*hdr);
    struct vfio_user_dma_access access;
    struct vfio_user_header reply = {
        .msg_id = hdr->msg_id,
        .cmd = hdr->cmd,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };
    g_autofree uint8_t *data = NULL;
    struct iovec in[1], out[2];
    int out_cnt = 1;
    uint32_t error_no = 0;
    int ret;

    if (len < sizeof(access)) {
        return -EBADMSG;
    }
    in[0] = (struct iovec){ &access, sizeof(access) };
    ret = proxy_recv_full(proxy, in, 1, false);
    if (ret < 0) {
        return ret;
    }
    len -= sizeof(access);

    if (access.count > proxy->our_max_xfer ||
        access.addr + access.count < access.addr) {
        error_no = EINVAL;
    } else if (hdr->cmd == VFIO_USER_DMA_WRITE && len != access.count) {
        error_no = EINVAL;
    } else if (hdr->cmd == VFIO_USER_DMA_READ && len != 0) {
        error_no = EINVAL;
    }
    if (error_no) {
        /* Keep the stream in step, then refuse. */
        ret = proxy_recv_discard(proxy, len);
        if (ret < 0) {
            return ret;
        }
    } else if (hdr->cmd == VFIO_USER_DMA_WRITE) {
        data = g_malloc(access.count ? access.count : 1);
        in[0] = (struct iovec){ data, access.count };
        ret = proxy_recv_full(proxy, in, 1, false);
        if (ret < 0) {
            return ret;
        }
        error_no = proxy->dma_write ?
            proxy->dma_write(proxy->dma_opaque, access.addr, data,
                             access.count) : EFAULT;
    } else {
        data = g_malloc(access.count ? access.count : 1);
        error_no = proxy->dma_read ?
            proxy->dma_read(proxy->dma_opaque, access.addr, data,
                            access.count) : EFAULT;
    }

    out[0] = (struct iovec){ &access, sizeof(access) };
    if (error_no) {
        reply.flags |= VFIO_USER_F_ERROR;
        reply.error_no = error_no;
        out_cnt = 0;
    } else if (hdr->cmd == VFIO_USER_DMA_READ) {
        out[1] = (struct iovec){ data, access.count };
        out_cnt = 2;
    }
    reply.msg_size = sizeof(reply) + iov_total(out, out_cnt);
    if (hdr->flags & VFIO_USER_F_NO_REPLY) {
        return 0;
    }
    return proxy_send(proxy, &reply, out, out_cnt, NULL, 0);
}

/* Handle one message.  Returns 0, or -errno when the stream is unusable. */
static int proxy_recv_one(VFIOUserProxy *proxy, char **why)
{
    struct vfio_user_header hdr;
    int fds[VFIO_USER_MAX_MAX_FDS];
    uint32_t type;
    VFIOUserWaiter *w;
    int nr_fds, ret;

    nr_fds = proxy_recv_header(proxy, &hdr, fds);
    if (nr_fds < 0) {
        *why = g_strdup(stream_error(nr_fds));
        return nr_fds;
    }
    type = hdr.flags & VFIO_USER_F_TYPE_MASK;
    if (hdr.msg_size < sizeof(hdr) ||
        hdr.msg_size - sizeof(hdr) > MAX(proxy->our_max_xfer,
                                         proxy->caps.max_data_xfer_size) +
                                     VFIO_USER_REPLY_SLACK) {
        close_fds(fds, nr_fds);
        *why = g_strdup_printf("%s message with a bad size %u",
                               vfio_user_cmd_name(hdr.cmd), hdr.msg_size);
        return -EBADMSG;
    }

    if (type == VFIO_USER_F_TYPE_COMMAND) {
        trace(vfio_user_server_request, "%s: %s msg_id %u, %u bytes",
              proxy->path, vfio_user_cmd_name(hdr.cmd), hdr.msg_id,
              hdr.msg_size);
        close_fds(fds, nr_fds);
        if (hdr.cmd != VFIO_USER_DMA_READ && hdr.cmd != VFIO_USER_DMA_WRITE) {
            struct vfio_user_header reply = {
                .msg_id = hdr.msg_id, .cmd = hdr.cmd,
                .msg_size = sizeof(reply),
                .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
                .error_no = ENOSYS,
            };

            ret = proxy_recv_discard(proxy, hdr.msg_size - sizeof(hdr));
            if (ret == 0 && !(hdr.flags & VFIO_USER_F_NO_REPLY)) {
                ret = proxy_send(proxy, &reply, NULL, 0, NULL, 0);
            }
        } else {
            ret = proxy_serve_dma(proxy, &hdr);
        }
        if (ret < 0) {
            *why = g_strdup_printf("serving the server's %s failed: %s",
                                   vfio_user_cmd_name(hdr.cmd),
                                   ret == -EBADMSG ? "malformed request" :
                                   stream_error(ret));
        }
        return ret;
    }
    if (type != VFIO_USER_F_TYPE_REPLY) {
        close_fds(fds, nr_fds);
        *why = g_strdup_printf("message of unknown type %u", type);
        return -EBADMSG;
    }

    g_mutex_lock(&proxy->lock);
    w = g_hash_table_lookup(proxy->waiters, GUINT_TO_POINTER(hdr.msg_id));
    if (w && w->req->cmd != hdr.cmd) {
        g_mutex_unlock(&proxy->lock);
        close_fds(fds, nr_fds);
        *why = g_strdup_printf("reply %u is for %s but request %u was %s",
                               hdr.msg_id, vfio_user_cmd_name(hdr.cmd),
                               hdr.msg_id, vfio_user_cmd_name(w->req->cmd));
        return -EBADMSG;
    }
    if (w) {
        w->state = WAITER_RECEIVING;
    }
    g_mutex_unlock(&proxy->lock);

    if (!w) {
        /* Its waiter gave up: keep the stream in step. */
        close_fds(fds, nr_fds);
        ret = proxy_recv_discard(proxy, hdr.msg_size - sizeof(hdr));
        if (ret < 0) {
            *why = g_strdup(stream_error(ret));
        }
        return ret;
    }

    if (hdr.flags & VFIO_USER_F_ERROR) {
        w->req->error_no = hdr.error_no ? hdr.error_no : EIO;
        close_fds(fds, nr_fds);
        ret = proxy_recv_discard(proxy, hdr.msg_size - sizeof(hdr));
    } else {
        VFIOUserRequest *req = w->req;
        int keep = MIN(nr_fds, req->reply_max_fds);

        for (int i = 0; i < keep; i++) {
            req->reply_fds[i] = fds[i];
        }
        req->reply_nr_fds = keep;
        close_fds(fds + keep, nr_fds - keep);
        ret = proxy_recv_reply_payload(proxy, &hdr, req);
    }
    if (ret < 0) {
        *why = g_strdup_printf("reading the reply to %s failed: %s",
                               vfio_user_cmd_name(hdr.cmd),
                               stream_error(ret));
        g_mutex_lock(&proxy->lock);
        close_fds(w->req->reply_fds, w->req->reply_nr_fds);
        w->req->reply_nr_fds = 0;
        g_hash_table_remove(proxy->waiters, GUINT_TO_POINTER(hdr.msg_id));
        w->failed = true;
        w->state = WAITER_DONE;
        proxy_close_locked(proxy, *why);
        g_cond_broadcast(&proxy->reply_cond);
        g_mutex_unlock(&proxy->lock);
        return ret;
    }

    trace(vfio_user_reply, "%s: %s msg_id %u, %u bytes, error %u, %d fds",
          proxy->path, vfio_user_cmd_name(hdr.cmd), hdr.msg_id,
          hdr.msg_size - (uint32_t)sizeof(hdr), w->req->error_no,
          w->req->reply_nr_fds);
    g_mutex_lock(&proxy->lock);
    g_hash_table_remove(proxy->waiters, GUINT_TO_POINTER(hdr.msg_id));
    w->state = WAITER_DONE;
    /*
     * Wake only a thread that sleeps for this reply: a pipelined reader
     * waiting for the last of several replies is not woken by each.
     */
    if (w->sleeping) {
        g_cond_broadcast(&proxy->reply_cond);
    }
    g_mutex_unlock(&proxy->lock);
    return 0;
}

static gpointer proxy_recv_thread(gpointer opaque)
{
    VFIOUserProxy *proxy = opaque;
    char *why = NULL;
    void (*closed_cb)(void *opaque, const char *reason);
    bool by_us;

    while (proxy_recv_one(proxy, &why) == 0) {
        /* next message */
    }
    g_mutex_lock(&proxy->lock);
    by_us = proxy->closing;
    closed_cb = proxy->closed_cb;
    proxy_close_locked(proxy, why ? why : "connection lost");
    g_mutex_unlock(&proxy->lock);
    /* close_reason no longer changes once closed is set. */
    if (!by_us && closed_cb) {
        closed_cb(proxy->closed_opaque, proxy->close_reason);
    }
    g_free(why);
    return NULL;
}

/* ---- Connection ---- */

static int proxy_socket_connect(const char *path, unsigned timeout_ms,
                                Error **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct timeval tv = {
        .tv_sec = timeout_ms / 1000,
        .tv_usec = (timeout_ms % 1000) * 1000,
    };
    int buf_size = VFIO_USER_SOCKET_BUF_SIZE;
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        error_setg(errp, "vfio-user socket path '%s' is too long (at most "
                   "%zu bytes)", path, sizeof(addr.sun_path) - 1);
        return -1;
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "vfio-user %s: socket", path);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        error_setg_errno(errp, errno, "vfio-user %s: cannot connect", path);
        close(fd);
        return -1;
    }
    /*
     * Bound every blocking call: a server that stops reading or stops in
     * the middle of a message cannot hang the client.
     */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
        error_setg_errno(errp, errno, "vfio-user %s: setting socket timeouts",
                         path);
        close(fd);
        return -1;
    }
    /*
     * Room for big MIG_DATA_WRITEs in one call.  Best effort: the kernel
     * caps the sizes, and smaller buffers only cost more wake-ups.
     */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf_size, sizeof(buf_size));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf_size, sizeof(buf_size));
    return fd;
}

static bool proxy_negotiate(VFIOUserProxy *proxy,
                            const VFIOUserConnectOptions *opts, Error **errp)
{
    g_autofree char *ours = vfio_user_caps_build(opts);
    struct vfio_user_version ver = {
        .major = VFIO_USER_MAJOR,
        .minor = VFIO_USER_MINOR,
    };
    struct vfio_user_version theirs;
    /* Capabilities are small; 64 KiB is a generous bound on them. */
    g_autofree char *json = g_malloc0(64 * KiB + 1);
    struct iovec iov[2] = {
        { &ver, sizeof(ver) },
        { ours, strlen(ours) + 1 },
    };
    VFIOUserRequest req = {
        .cmd = VFIO_USER_VERSION,
        .iov = iov,
        .iov_cnt = 2,
        .reply_fixed = &theirs,
        .reply_fixed_size = sizeof(theirs),
        .reply_data = json,
        .reply_data_size = 64 * KiB,
    };
    Error *local_err = NULL;
    size_t json_len;

    if (!vfio_user_request(proxy, &req, &local_err)) {
        if (req.error_no == EBUSY) {
            /* A server serves one client at a time: say who is in the way. */
            error_free(local_err);
            error_setg(errp, "vfio-user %s: the server is serving another "
                       "client (one client per device at a time)",
                       proxy->path);
            return false;
        }
        error_propagate(errp, local_err);
        error_prepend(errp, "version negotiation: ");
        return false;
    }
    if (req.reply_len < sizeof(theirs)) {
        error_setg(errp, "vfio-user %s: VERSION reply of %zu bytes is too "
                   "short", proxy->path, req.reply_len);
        return false;
    }
    if (theirs.major != VFIO_USER_MAJOR) {
        error_setg(errp, "vfio-user %s: server speaks protocol %u.%u, this "
                   "client %u.%u", proxy->path, theirs.major, theirs.minor,
                   VFIO_USER_MAJOR, VFIO_USER_MINOR);
        return false;
    }
    json_len = req.reply_len - sizeof(theirs);
    if (json_len > 64 * KiB) {
        error_setg(errp, "vfio-user %s: VERSION capabilities of %zu bytes "
                   "are too long", proxy->path, json_len);
        return false;
    }
    if (json_len && memchr(json, '\0', json_len) == NULL) {
        error_setg(errp, "vfio-user %s: VERSION capabilities are not "
                   "NUL-terminated", proxy->path);
        return false;
    }
    proxy->caps.major = theirs.major;
    proxy->caps.minor = MIN(theirs.minor, VFIO_USER_MINOR);
    if (!vfio_user_caps_parse(json_len ? json : NULL,
                              !(opts && opts->no_extensions),
                              &proxy->caps, errp)) {
        error_prepend(errp, "vfio-user %s: ", proxy->path);
        return false;
    }
    return true;
}

VFIOUserProxy *vfio_user_connect(const char *path,
                                 const VFIOUserConnectOptions *opts,
                                 Error **errp)
{
    VFIOUserConnectOptions defaults = { 0 };
    VFIOUserProxy *proxy;
    int fd;

    if (!opts) {
        opts = &defaults;
    }
    proxy = g_new0(VFIOUserProxy, 1);
    proxy->path = g_strdup(path);
    proxy->timeout_ms = opts->timeout_ms ? opts->timeout_ms :
                        VFIO_USER_DEF_TIMEOUT_MS;
    proxy->our_max_xfer = opts->max_data_xfer_size ?
                          MIN(opts->max_data_xfer_size,
                              VFIO_USER_MAX_MAX_XFER) :
                          VFIO_USER_DEF_MAX_XFER;
    proxy->dma_read = opts->dma_read;
    proxy->dma_write = opts->dma_write;
    proxy->dma_opaque = opts->dma_opaque;
    /* Until VERSION says otherwise, the protocol defaults hold. */
    proxy->caps.max_msg_fds = VFIO_USER_DEF_MAX_FDS;
    proxy->caps.max_data_xfer_size = VFIO_USER_DEF_MAX_XFER;
    g_mutex_init(&proxy->send_lock);
    g_mutex_init(&proxy->lock);
    g_cond_init(&proxy->reply_cond);
    proxy->waiters = g_hash_table_new(NULL, NULL);
    proxy->fd = -1;

    fd = proxy_socket_connect(path, proxy->timeout_ms, errp);
    if (fd < 0) {
        goto fail;
    }
    proxy->fd = fd;
    proxy->recv_thread = g_thread_try_new("vfio-user-recv", proxy_recv_thread,
                                          proxy, NULL);
    if (!proxy->recv_thread) {
        error_setg(errp, "vfio-user %s: cannot start the receive thread",
                   path);
        goto fail;
    }
    if (!proxy_negotiate(proxy, opts, errp)) {
        goto fail;
    }
    /* Only a connection the caller has can be reported as lost. */
    g_mutex_lock(&proxy->lock);
    proxy->closed_cb = opts->closed;
    proxy->closed_opaque = opts->closed_opaque;
    g_mutex_unlock(&proxy->lock);
    return proxy;

fail:
    vfio_user_disconnect(proxy);
    return NULL;
}

void vfio_user_disconnect(VFIOUserProxy *proxy)
{
    if (!proxy) {
        return;
    }
    if (proxy->fd >= 0) {
        g_mutex_lock(&proxy->lock);
        /* A connection lost before is still reported as lost. */
        proxy->closing = !proxy->closed;
        proxy_close_locked(proxy, "the client disconnected");
        g_mutex_unlock(&proxy->lock);
    }
    if (proxy->recv_thread) {
        g_thread_join(proxy->recv_thread);
    }
    if (proxy->fd >= 0) {
        close(proxy->fd);
    }
    g_hash_table_destroy(proxy->waiters);
    while (proxy->free_waiters) {
        VFIOUserWaiter *w = proxy->free_waiters;

        proxy->free_waiters = w->next_free;
        g_free(w);
    }
    g_cond_clear(&proxy->reply_cond);
    g_mutex_clear(&proxy->lock);
    g_mutex_clear(&proxy->send_lock);
    g_free(proxy->caps.json);
    g_free(proxy->close_reason);
    g_free(proxy->path);
    g_free(proxy);
}
