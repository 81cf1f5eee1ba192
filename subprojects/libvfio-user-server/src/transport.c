/*
 * Message framing over the UNIX socket: the 16-byte header, the payload,
 * SCM_RIGHTS fds; replies; and server-to-client requests (DMA_READ /
 * DMA_WRITE) with their replies.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "private.h"

void vus_msg_init(VusMsg *msg)
{
    memset(msg, 0, sizeof(*msg));
}

void vus_msg_release(VusMsg *msg)
{
    for (size_t i = 0; i < msg->nfds; i++) {
        if (msg->fds[i] >= 0) {
            close(msg->fds[i]);
        }
    }
    msg->nfds = 0;
    free(msg->payload);
    msg->payload = NULL;
    msg->len = 0;
}

/*
 * Reads exactly @len bytes (or discards them when @buf is NULL),
 * collecting passed fds into @msg.  *@deadline_ms is -1 while nothing
 * of the message has come (the client may be idle as long as it
 * likes); the first byte sets it, and the rest must come before it.
 * Returns 0, -ECONNRESET on EOF, -ETIMEDOUT, -ECANCELED on a stop, or
 * another negative errno; *@done says how much came.  fds that were
 * lost or too many set *@fds_bad.
 */
static int recv_full(VusCtx *ctx, int fd, void *buf, size_t len, VusMsg *msg,
                     bool *fds_bad, int64_t *deadline_ms, size_t *done_out)
{
    uint8_t scratch[4096];
    size_t done = 0;

    *done_out = 0;
    while (done < len) {
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_MAX_MAX_FDS)];
        } control;
        struct iovec iov;
        struct msghdr mh = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.buf,
            .msg_controllen = sizeof(control.buf),
        };
        ssize_t n;

        if (buf) {
            iov.iov_base = (uint8_t *)buf + done;
            iov.iov_len = len - done;
        } else {
            iov.iov_base = scratch;
            iov.iov_len = MIN(sizeof(scratch), len - done);
        }
        /*
         * Read first and wait only when nothing is there: a busy client
         * (pipelined requests) then costs one system call per read, not
         * a poll() as well.
         */
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN) {
            /*
             * A client stalling mid-message must neither block
             * vus_ctx_stop() nor keep the device from other clients.
             */
            int ret = vus_wait_fd(ctx, fd, POLLIN, *deadline_ms);

            if (ret < 0) {
                return ret;
            }
            continue;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == ECONNRESET ? -ECONNRESET : -errno;
        }
        if (n == 0) {
            return -ECONNRESET;
        }
        if (*deadline_ms < 0) {
            *deadline_ms = vus_now_ms() + ctx->limits.msg_timeout_ms;
        }
        if (mh.msg_flags & MSG_CTRUNC) {
            *fds_bad = true;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
             c = CMSG_NXTHDR(&mh, c)) {
            size_t nr;
            int *fds;

            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
                c->cmsg_len < CMSG_LEN(0)) {
                continue;
            }
            nr = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            fds = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < nr; i++) {
                int one;

                memcpy(&one, &fds[i], sizeof(one));
                if (msg->nfds < VUS_SERVER_MAX_FDS) {
                    msg->fds[msg->nfds++] = one;
                } else {
                    close(one);
                    *fds_bad = true;
                }
            }
        }
        done += n;
        *done_out = done;
    }
    return 0;
}

static void warn_stalled(VusCtx *ctx, const VusMsg *msg, size_t got,
                         size_t total, bool header)
{
    if (header) {
        vus_warn(ctx, "dropping the client: it stopped after %zu of the 16 "
                 "header bytes of a message and sent nothing more for "
                 "%u ms", got, ctx->limits.msg_timeout_ms);
        return;
    }
    vus_warn(ctx, "dropping the client: message %u (%s) stopped after "
             "%zu of %zu bytes, nothing more for %u ms", msg->hdr.msg_id,
             vfio_user_command_name(msg->hdr.cmd) ?
             vfio_user_command_name(msg->hdr.cmd) : "unknown command",
             got, total, ctx->limits.msg_timeout_ms);
}

int vus_recv_msg(VusCtx *ctx, int fd, VusMsg *msg, uint32_t max_payload)
{
    int64_t deadline_ms = -1;
    bool fds_bad = false;
    size_t got;
    int ret;

    ret = recv_full(ctx, fd, &msg->hdr, sizeof(msg->hdr), msg, &fds_bad,
                    &deadline_ms, &got);
    if (ret == -ETIMEDOUT) {
        warn_stalled(ctx, msg, got, sizeof(msg->hdr), true);
    }
    if (ret < 0) {
        return ret;
    }
    if (msg->hdr.msg_size < VFIO_USER_HDR_SIZE) {
        vus_warn(ctx, "message %u (cmd %u): size %u is smaller than the "
                 "header", msg->hdr.msg_id, msg->hdr.cmd, msg->hdr.msg_size);
        return -EPROTO;
    }
    msg->len = msg->hdr.msg_size - VFIO_USER_HDR_SIZE;
    if (msg->len > max_payload) {
        vus_warn(ctx, "message %u (cmd %u): payload of %zu bytes exceeds "
                 "the limit of %u", msg->hdr.msg_id, msg->hdr.cmd, msg->len,
                 max_payload);
        ret = recv_full(ctx, fd, NULL, msg->len, msg, &fds_bad, &deadline_ms,
                        &got);
        if (ret == -ETIMEDOUT) {
            warn_stalled(ctx, msg, VFIO_USER_HDR_SIZE + got,
                         msg->hdr.msg_size, false);
        }
        msg->len = 0;
        return ret < 0 ? ret : -EMSGSIZE;
    }
    /* One spare byte keeps string parsing of the payload bounded. */
    msg->payload = calloc(1, msg->len + 1);
    if (!msg->payload) {
        return -ENOMEM;
    }
    ret = recv_full(ctx, fd, msg->payload, msg->len, msg, &fds_bad,
                    &deadline_ms, &got);
    if (ret == -ETIMEDOUT) {
        warn_stalled(ctx, msg, VFIO_USER_HDR_SIZE + got, msg->hdr.msg_size,
                     false);
    }
    if (ret < 0) {
        return ret;
    }
    if (fds_bad) {
        vus_warn(ctx, "message %u (cmd %u): more than %u fds", msg->hdr.msg_id,
                 msg->hdr.cmd, VUS_SERVER_MAX_FDS);
        return -EBADMSG;
    }
    return 0;
}

int vus_send_msg(VusConn *conn, int fd, const struct vfio_user_header *hdr,
                 const void *p1, size_t len1, const void *p2, size_t len2,
                 const int *fds, size_t nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_MAX_MAX_FDS)];
    } control;
    struct iovec iov[3] = {
        { .iov_base = (void *)hdr, .iov_len = sizeof(*hdr) },
        { .iov_base = (void *)p1, .iov_len = len1 },
        { .iov_base = (void *)p2, .iov_len = len2 },
    };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
    size_t left = sizeof(*hdr) + len1 + len2;
    int64_t deadline_ms = -1;
    int ret = 0;

    if (conn->discard_replies) {
        return 0;
    }
    if (nfds > VFIO_USER_MAX_MAX_FDS) {
        return -EINVAL;
    }
    if (nfds) {
        struct cmsghdr *c;

        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }

    pthread_mutex_lock(&conn->send_lock);
    while (left) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EAGAIN) {
            /*
             * A client that stops reading must block neither
             * vus_ctx_stop() nor the device for long.
             */
            if (deadline_ms < 0) {
                deadline_ms = vus_now_ms() + conn->msg_timeout_ms;
            }
            ret = vus_wait_fd(conn->ctx, fd, POLLOUT, deadline_ms);
            if (ret < 0) {
                break;
            }
            continue;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            ret = -errno;
            break;
        }
        left -= n;
        /* fds went with the first bytes; skip what was sent. */
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        while (n > 0 && mh.msg_iovlen) {
            if ((size_t)n >= mh.msg_iov->iov_len) {
                n -= mh.msg_iov->iov_len;
                mh.msg_iov++;
                mh.msg_iovlen--;
            } else {
                mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + n;
                mh.msg_iov->iov_len -= n;
                n = 0;
            }
        }
    }
    pthread_mutex_unlock(&conn->send_lock);
    return ret;
}

int vus_reply(VusCtx *ctx, VusConn *conn, const VusMsg *req,
              const void *p1, size_t len1, const void *p2, size_t len2,
              const int *fds, size_t nfds)
{
    struct vfio_user_header hdr = {
        .msg_id = req->hdr.msg_id,
        .cmd = req->hdr.cmd,
        .msg_size = VFIO_USER_HDR_SIZE + len1 + len2,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };
    int ret;

    if (req->hdr.flags & VFIO_USER_F_NO_REPLY) {
        return 0;
    }
    ret = vus_send_msg(conn, conn->fd, &hdr, p1, len1, p2, len2, fds, nfds);
    if (ret == -ETIMEDOUT) {
        vus_warn(ctx, "the client took none of the reply to message %u "
                 "(cmd %u) for %d ms: it stopped reading", req->hdr.msg_id,
                 req->hdr.cmd, conn->msg_timeout_ms);
    } else if (ret < 0) {
        vus_warn(ctx, "cannot send the reply to message %u (cmd %u): %s",
                 req->hdr.msg_id, req->hdr.cmd, strerror(-ret));
    }
    return ret;
}

int vus_reply_error(VusCtx *ctx, VusConn *conn, const VusMsg *req, int err)
{
    struct vfio_user_header hdr = {
        .msg_id = req->hdr.msg_id,
        .cmd = req->hdr.cmd,
        .msg_size = VFIO_USER_HDR_SIZE,
        .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
        .error_no = err,
    };

    vus_debug(ctx, "message %u (cmd %u) failed: %s", req->hdr.msg_id,
              req->hdr.cmd, strerror(err));
    int ret;

    if (req->hdr.flags & VFIO_USER_F_NO_REPLY) {
        return 0;
    }
    ret = vus_send_msg(conn, conn->fd, &hdr, NULL, 0, NULL, 0, NULL, 0);
    if (ret == -ETIMEDOUT) {
        vus_warn(ctx, "the client took none of the error reply to message "
                 "%u (cmd %u) for %d ms: it stopped reading",
                 req->hdr.msg_id, req->hdr.cmd, conn->msg_timeout_ms);
    }
    return ret;
}

/*
 * Reads messages from @fd until the reply to @msg_id comes (service
 * thread or twin socket).  Commands that arrive meanwhile on the main
 * socket are refused with EBUSY: the device is inside a callback.
 */
static int s2c_wait_inline(VusCtx *ctx, VusConn *conn, int fd,
                           uint16_t msg_id, VusMsg *reply)
{
    int64_t deadline_ms = vus_now_ms() + VUS_S2C_TIMEOUT_MS;

    for (;;) {
        int ret = vus_wait_fd(ctx, fd, POLLIN, deadline_ms);

        if (ret < 0) {
            return ret;
        }
        vus_msg_init(reply);
        ret = vus_recv_msg(ctx, fd, reply, conn->max_xfer + VUS_MSG_OVERHEAD);
        if (ret < 0) {
            vus_msg_release(reply);
            return ret;
        }
        if ((reply->hdr.flags & VFIO_USER_F_TYPE_MASK) ==
            VFIO_USER_F_TYPE_REPLY && reply->hdr.msg_id == msg_id) {
            return 0;
        }
        if ((reply->hdr.flags & VFIO_USER_F_TYPE_MASK) ==
            VFIO_USER_F_TYPE_COMMAND && fd == conn->fd) {
            vus_warn(ctx, "command %u arrived while waiting for a DMA "
                     "reply: refused with EBUSY", reply->hdr.cmd);
            vus_reply_error(ctx, conn, reply, EBUSY);
        }
        vus_msg_release(reply);
    }
}

int vus_s2c_request(VusCtx *ctx, uint16_t cmd, const void *p1, size_t len1,
                    const void *p2, size_t len2, VusMsg *reply)
{
    struct vfio_user_header hdr = {
        .cmd = cmd,
        .msg_size = VFIO_USER_HDR_SIZE + len1 + len2,
        .flags = VFIO_USER_F_TYPE_COMMAND,
    };
    VusS2cWait wait = { 0 };
    VusConn *conn;
    uint32_t waiting;
    int ret;

    vus_msg_init(reply);
    /* Each caller holds a device thread: bound how many wait their turn. */
    waiting = atomic_fetch_add(&ctx->s2c_requests, 1);
    if (waiting >= ctx->limits.max_dma_requests) {
        atomic_fetch_sub(&ctx->s2c_requests, 1);
        vus_warn(ctx, "%s refused: the limit of %u outstanding requests "
                 "to the client is reached", vfio_user_command_name(cmd),
                 waiting);
        return -EBUSY;
    }
    pthread_mutex_lock(&ctx->s2c_lock);
    conn = ctx->conn;
    if (!conn || !conn->versioned || conn->discard_replies) {
        ret = -ENOTCONN;
        goto out;
    }
    hdr.msg_id = ctx->s2c_next_id++;

    if (conn->twin_fd >= 0) {
        ret = vus_send_msg(conn, conn->twin_fd, &hdr, p1, len1, p2, len2,
                           NULL, 0);
        if (ret == 0) {
            ret = s2c_wait_inline(ctx, conn, conn->twin_fd, hdr.msg_id,
                                  reply);
        }
    } else if (vus_on_service_thread(ctx)) {
        ret = vus_send_msg(conn, conn->fd, &hdr, p1, len1, p2, len2, NULL, 0);
        if (ret == 0) {
            ret = s2c_wait_inline(ctx, conn, conn->fd, hdr.msg_id, reply);
        }
    } else {
        struct timespec deadline;

        /* The service thread reads the reply and hands it over. */
        wait.msg_id = hdr.msg_id;
        pthread_mutex_lock(&ctx->s2c_wait_lock);
        if (!atomic_load(&ctx->client_connected)) {
            pthread_mutex_unlock(&ctx->s2c_wait_lock);
            ret = -ENOTCONN;
            goto out;
        }
        ctx->s2c_wait = &wait;
        pthread_mutex_unlock(&ctx->s2c_wait_lock);

        ret = vus_send_msg(conn, conn->fd, &hdr, p1, len1, p2, len2, NULL, 0);

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += VUS_S2C_TIMEOUT_MS / 1000;
        pthread_mutex_lock(&ctx->s2c_wait_lock);
        while (ret == 0 && !wait.done) {
            if (pthread_cond_timedwait(&ctx->s2c_cond, &ctx->s2c_wait_lock,
                                       &deadline) == ETIMEDOUT) {
                ret = -ETIMEDOUT;
            }
        }
        if (ret == 0) {
            ret = wait.result;
            *reply = wait.reply;
        } else if (wait.done) {
            vus_msg_release(&wait.reply);
        }
        ctx->s2c_wait = NULL;
        pthread_mutex_unlock(&ctx->s2c_wait_lock);
    }
    if (ret == 0 && (reply->hdr.flags & VFIO_USER_F_ERROR)) {
        ret = reply->hdr.error_no ? -(int)reply->hdr.error_no : -EIO;
    }
    if (ret == 0 && reply->hdr.cmd != cmd) {
        ret = -EPROTO;
    }
    if (ret < 0) {
        vus_msg_release(reply);
    }
out:
    pthread_mutex_unlock(&ctx->s2c_lock);
    atomic_fetch_sub(&ctx->s2c_requests, 1);
    return ret;
}

bool vus_s2c_deliver(VusCtx *ctx, VusMsg *msg)
{
    bool taken = false;

    pthread_mutex_lock(&ctx->s2c_wait_lock);
    if (ctx->s2c_wait && !ctx->s2c_wait->done &&
        ctx->s2c_wait->msg_id == msg->hdr.msg_id) {
        ctx->s2c_wait->reply = *msg;
        ctx->s2c_wait->result = 0;
        ctx->s2c_wait->done = true;
        vus_msg_init(msg);
        pthread_cond_broadcast(&ctx->s2c_cond);
        taken = true;
    }
    pthread_mutex_unlock(&ctx->s2c_wait_lock);
    return taken;
}

void vus_s2c_abort(VusCtx *ctx)
{
    pthread_mutex_lock(&ctx->s2c_wait_lock);
    atomic_store(&ctx->client_connected, false);
    if (ctx->s2c_wait && !ctx->s2c_wait->done) {
        ctx->s2c_wait->result = -ENOTCONN;
        ctx->s2c_wait->done = true;
        pthread_cond_broadcast(&ctx->s2c_cond);
    }
    pthread_mutex_unlock(&ctx->s2c_wait_lock);
}
