/*
 * The message decoder: checks what every command has in common (type,
 * flags, VERSION first, fd count) and hands the message to its handler.
 * Handlers return 0 once they replied, or a negative errno that becomes
 * an error reply here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

VusConn *vus_conn_new(VusCtx *ctx, int fd)
{
    VusConn *conn = calloc(1, sizeof(*conn));

    if (!conn) {
        return NULL;
    }
    /* One client at a time: the reply buffer is the context's. */
    if (!ctx->xfer_buf) {
        ctx->xfer_buf = malloc(ctx->max_xfer);
        if (!ctx->xfer_buf) {
            free(conn);
            return NULL;
        }
    }
    conn->xfer_buf = ctx->xfer_buf;
    conn->ctx = ctx;
    conn->fd = fd;
    conn->msg_timeout_ms = ctx->limits.msg_timeout_ms;
    conn->twin_fd = -1;
    conn->client_max_fds = VFIO_USER_DEF_MAX_FDS;
    conn->max_xfer = MIN(ctx->max_xfer, VFIO_USER_DEF_MAX_XFER);
    pthread_mutex_init(&conn->send_lock, NULL);

    pthread_mutex_lock(&ctx->s2c_lock);
    ctx->conn = conn;
    pthread_mutex_unlock(&ctx->s2c_lock);
    return conn;
}

void vus_conn_close(VusCtx *ctx, VusConn *conn)
{
    /* Wake a device thread waiting for a DMA reply, then wait for it. */
    vus_s2c_abort(ctx);
    pthread_mutex_lock(&ctx->s2c_lock);
    ctx->conn = NULL;
    pthread_mutex_unlock(&ctx->s2c_lock);

    vus_dma_log_stop(ctx);
    vus_dma_unmap_all(ctx);
    vus_irq_detach_all(ctx);
    if (conn->twin_fd >= 0) {
        close(conn->twin_fd);
    }
    if (conn->fd >= 0) {
        close(conn->fd);
    }
    pthread_mutex_destroy(&conn->send_lock);
    free(conn);
    vus_info(ctx, "client disconnected");
    if (ctx->client_fn) {
        ctx->client_fn(ctx->opaque, false);
    }
}

static const char *command_name(uint16_t cmd)
{
    const char *name = vfio_user_command_name(cmd);

    return name ? name : "unknown";
}

/* How many fds a command may carry. */
static size_t max_fds_for(uint16_t cmd)
{
    switch (cmd) {
    case VFIO_USER_DMA_MAP:         /* the memory to map */
        return 1;
    case VFIO_USER_DEVICE_SET_IRQS: /* eventfds */
        return VUS_SERVER_MAX_FDS;
    default:
        return 0;
    }
}

static int dispatch_command(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    switch (msg->hdr.cmd) {
    case VFIO_USER_VERSION:
        return vus_handle_version(ctx, conn, msg);
    case VFIO_USER_DMA_MAP:
        return vus_handle_dma_map(ctx, conn, msg);
    case VFIO_USER_DMA_UNMAP:
        return vus_handle_dma_unmap(ctx, conn, msg);
    case VFIO_USER_DEVICE_GET_INFO:
        return vus_handle_device_info(ctx, conn, msg);
    case VFIO_USER_DEVICE_GET_REGION_INFO:
        return vus_handle_region_info(ctx, conn, msg);
    case VFIO_USER_DEVICE_GET_REGION_IO_FDS:
        return vus_handle_region_io_fds(ctx, conn, msg);
    case VFIO_USER_DEVICE_GET_IRQ_INFO:
        return vus_handle_irq_info(ctx, conn, msg);
    case VFIO_USER_DEVICE_SET_IRQS:
        return vus_handle_set_irqs(ctx, conn, msg);
    case VFIO_USER_REGION_READ:
    case VFIO_USER_REGION_WRITE:
        return vus_handle_region_rw(ctx, conn, msg);
    case VFIO_USER_DEVICE_RESET:
        return vus_handle_reset(ctx, conn, msg);
    case VFIO_USER_REGION_WRITE_MULTI:
        return vus_handle_write_multi(ctx, conn, msg);
    case VFIO_USER_DEVICE_FEATURE:
        return vus_handle_device_feature(ctx, conn, msg);
    case VFIO_USER_MIG_DATA_READ:
        return vus_handle_mig_data_read(ctx, conn, msg);
    case VFIO_USER_MIG_DATA_WRITE:
        return vus_handle_mig_data_write(ctx, conn, msg);
    case VFIO_USER_X_MIG_PRECOPY_INFO:
        return vus_handle_precopy_info(ctx, conn, msg);
    case VFIO_USER_DMA_READ:
    case VFIO_USER_DMA_WRITE:
        vus_warn(ctx, "%s is a server-to-client command, refused from the "
                 "client", command_name(msg->hdr.cmd));
        return -EINVAL;
    default:
        vus_warn(ctx, "unknown command %u", msg->hdr.cmd);
        return -ENOSYS;
    }
}

int vus_dispatch(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    const uint32_t known_flags = VFIO_USER_F_TYPE_MASK |
                                 VFIO_USER_F_NO_REPLY | VFIO_USER_F_ERROR;
    int ret;

    if ((msg->hdr.flags & VFIO_USER_F_TYPE_MASK) !=
        VFIO_USER_F_TYPE_COMMAND ||
        (msg->hdr.flags & (~known_flags | VFIO_USER_F_ERROR))) {
        vus_warn(ctx, "message %u (%s): bad flags 0x%x for a command",
                 msg->hdr.msg_id, command_name(msg->hdr.cmd), msg->hdr.flags);
        ret = -EINVAL;
        goto reply_error;
    }
    if (!conn->versioned && msg->hdr.cmd != VFIO_USER_VERSION) {
        vus_warn(ctx, "message %u (%s) before VERSION", msg->hdr.msg_id,
                 command_name(msg->hdr.cmd));
        ret = -EINVAL;
        goto reply_error;
    }
    if (msg->nfds > max_fds_for(msg->hdr.cmd)) {
        vus_warn(ctx, "message %u (%s): %zu fds, at most %zu expected",
                 msg->hdr.msg_id, command_name(msg->hdr.cmd), msg->nfds,
                 max_fds_for(msg->hdr.cmd));
        ret = -EINVAL;
        goto reply_error;
    }
    vus_debug(ctx, "message %u: %s, %zu payload bytes, %zu fds",
              msg->hdr.msg_id, command_name(msg->hdr.cmd), msg->len,
              msg->nfds);
    ret = dispatch_command(ctx, conn, msg);
    if (ret >= 0) {
        return 0;
    }

reply_error:
    ret = vus_reply_error(ctx, conn, msg, -ret);
    /* A reply that cannot be sent means the client is gone. */
    return ret < 0 ? ret : 0;
}
