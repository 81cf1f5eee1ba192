/*
 * Device context: creation, setup, logging, the listening socket and the
 * service loop (accept a client, serve it, accept the next).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "private.h"
#include "qemu/unix-listen.h"

static void vus_default_log(void *opaque, VusLogLevel level, const char *msg)
{
    fprintf(stderr, "%s\n", msg);
}

VusCtx *vus_ctx_new(const char *name, void *opaque)
{
    VusCtx *ctx = calloc(1, sizeof(*ctx));

    if (!ctx) {
        return NULL;
    }
    ctx->name = strdup(name ? name : "vfio-user-device");
    ctx->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!ctx->name || ctx->stop_fd < 0) {
        free(ctx->name);
        if (ctx->stop_fd >= 0) {
            close(ctx->stop_fd);
        }
        free(ctx);
        return NULL;
    }
    ctx->opaque = opaque;
    ctx->log_fn = vus_default_log;
    ctx->log_level = VUS_LOG_WARN;
    ctx->max_xfer = VFIO_USER_DEF_MAX_XFER;
    ctx->region_states = UINT32_MAX;
    ctx->limits = (VusClientLimits) {
        .max_dma_maps = VUS_DEF_MAX_DMA_MAPS,
        .max_dma_bytes = VUS_DEF_MAX_DMA_BYTES,
        .max_dma_requests = VUS_DEF_MAX_DMA_REQUESTS,
        .msg_timeout_ms = VUS_DEF_MSG_TIMEOUT_MS,
    };
    ctx->listen_fd = -1;
    for (int i = 0; i < VUS_MAX_WAITING; i++) {
        ctx->waiting[i].fd = -1;
    }
    for (int i = 0; i < VUS_MAX_REGIONS; i++) {
        ctx->regions[i].mmap_fd = -1;
    }
    pthread_mutex_init(&ctx->cfg_lock, NULL);
    pthread_mutex_init(&ctx->irq_lock, NULL);
    pthread_rwlock_init(&ctx->dma_lock, NULL);
    pthread_mutex_init(&ctx->s2c_lock, NULL);
    pthread_mutex_init(&ctx->s2c_wait_lock, NULL);
    pthread_cond_init(&ctx->s2c_cond, NULL);
    atomic_store(&ctx->mig_state, VFIO_DEVICE_STATE_RUNNING);
    return ctx;
}

void vus_ctx_free(VusCtx *ctx)
{
    if (!ctx) {
        return;
    }
    if (ctx->thread_started) {
        vus_ctx_stop(ctx);
        pthread_join(ctx->thread, NULL);
    }
    if (ctx->conn) {
        vus_conn_close(ctx, ctx->conn);
    }
    for (int i = 0; i < VUS_MAX_WAITING; i++) {
        if (ctx->waiting[i].fd >= 0) {
            close(ctx->waiting[i].fd);
        }
    }
    vus_dma_unmap_all(ctx);
    vus_irq_detach_all(ctx);
    if (ctx->listen_fd >= 0) {
        close(ctx->listen_fd);
        unlink(ctx->socket_path);
    }
    for (int i = 0; i < VUS_MAX_REGIONS; i++) {
        if (ctx->regions[i].mmap_fd >= 0) {
            close(ctx->regions[i].mmap_fd);
        }
        free(ctx->regions[i].areas);
    }
    for (int i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
        free(ctx->irqs[i].vec);
    }
    free(ctx->log_ranges);
    free(ctx->dma);
    free(ctx->xfer_buf);
    free(ctx->cfg);
    free(ctx->cfg_wmask);
    close(ctx->stop_fd);
    pthread_cond_destroy(&ctx->s2c_cond);
    pthread_mutex_destroy(&ctx->s2c_wait_lock);
    pthread_mutex_destroy(&ctx->s2c_lock);
    pthread_rwlock_destroy(&ctx->dma_lock);
    pthread_mutex_destroy(&ctx->irq_lock);
    pthread_mutex_destroy(&ctx->cfg_lock);
    free(ctx->socket_path);
    free(ctx->name);
    free(ctx);
}

void vus_ctx_set_log(VusCtx *ctx, VusLogFn fn, VusLogLevel max_level)
{
    ctx->log_fn = fn;
    ctx->log_level = max_level;
}

void vus_logv(VusCtx *ctx, VusLogLevel level, const char *fmt, va_list ap)
{
    char line[1024];
    int n;

    if (!ctx->log_fn || level > ctx->log_level) {
        return;
    }
    n = snprintf(line, sizeof(line), "%s: ", ctx->name);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        n = 0;
    }
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    ctx->log_fn(ctx->opaque, level, line);
}

void vus_log(VusCtx *ctx, VusLogLevel level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vus_logv(ctx, level, fmt, ap);
    va_end(ap);
}

void *vus_ctx_opaque(VusCtx *ctx)
{
    return ctx->opaque;
}

int vus_ctx_set_max_data_xfer_size(VusCtx *ctx, uint32_t size)
{
    if (ctx->realized || size < VUS_PAGE_SIZE ||
        size > VFIO_USER_MAX_MAX_XFER) {
        vus_err(ctx, "max_data_xfer_size %u is outside [%u, %u] or set "
                "after realize", size, VUS_PAGE_SIZE,
                (unsigned)VFIO_USER_MAX_MAX_XFER);
        return -EINVAL;
    }
    ctx->max_xfer = size;
    return 0;
}

int vus_ctx_set_region_states(VusCtx *ctx, uint32_t states)
{
    if (ctx->realized) {
        vus_err(ctx, "region access states set after realize");
        return -EINVAL;
    }
    ctx->region_states = states;
    return 0;
}

int vus_ctx_set_client_limits(VusCtx *ctx, const VusClientLimits *limits)
{
    VusClientLimits l = *limits;

    if (ctx->realized) {
        vus_err(ctx, "client limits set after realize");
        return -EINVAL;
    }
    if (l.max_dma_maps > VFIO_USER_DEF_MAX_DMA_MAPS) {
        vus_err(ctx, "max_dma_maps %u is over the protocol's %u",
                l.max_dma_maps, VFIO_USER_DEF_MAX_DMA_MAPS);
        return -EINVAL;
    }
    if (l.msg_timeout_ms > INT32_MAX / 2) {
        vus_err(ctx, "msg_timeout_ms %u is too large", l.msg_timeout_ms);
        return -EINVAL;
    }
    ctx->limits = (VusClientLimits) {
        .max_dma_maps = l.max_dma_maps ?: VUS_DEF_MAX_DMA_MAPS,
        .max_dma_bytes = l.max_dma_bytes ?: VUS_DEF_MAX_DMA_BYTES,
        .max_dma_requests = l.max_dma_requests ?: VUS_DEF_MAX_DMA_REQUESTS,
        .msg_timeout_ms = l.msg_timeout_ms ?: VUS_DEF_MSG_TIMEOUT_MS,
    };
    return 0;
}

void vus_ctx_set_client_cb(VusCtx *ctx, VusClientFn fn)
{
    ctx->client_fn = fn;
}

bool vus_ctx_client_connected(VusCtx *ctx)
{
    return atomic_load(&ctx->client_connected);
}

bool vus_on_service_thread(VusCtx *ctx)
{
    return atomic_load(&ctx->in_service) &&
           pthread_equal(ctx->service_thread, pthread_self());
}

static bool is_power_of_2(uint64_t v)
{
    return v && !(v & (v - 1));
}

int vus_setup_region(VusCtx *ctx, uint32_t index, const VusRegionDesc *desc)
{
    VusRegion *r;

    if (ctx->realized || index >= VUS_MAX_REGIONS || !desc) {
        vus_err(ctx, "region %u: index out of range or set after realize",
                index);
        return -EINVAL;
    }
    if (desc->flags & ~(VUS_REGION_READ | VUS_REGION_WRITE | VUS_BAR_IO |
                        VUS_BAR_MEM64 | VUS_BAR_PREFETCH)) {
        vus_err(ctx, "region %u: unknown flags 0x%x", index, desc->flags);
        return -EINVAL;
    }
    if (desc->size && !desc->access) {
        vus_err(ctx, "region %u: no access callback", index);
        return -EINVAL;
    }
    if (index <= VFIO_PCI_BAR5_REGION_INDEX && desc->size) {
        uint64_t min = (desc->flags & VUS_BAR_IO) ? 4 : 16;
        if (!is_power_of_2(desc->size) || desc->size < min) {
            vus_err(ctx, "BAR%u: size 0x%" PRIx64 " is not a power of two "
                    ">= %" PRIu64, index, desc->size, min);
            return -EINVAL;
        }
        if ((desc->flags & VUS_BAR_IO) &&
            (desc->flags & (VUS_BAR_MEM64 | VUS_BAR_PREFETCH))) {
            vus_err(ctx, "BAR%u: an I/O BAR cannot be 64-bit or "
                    "prefetchable", index);
            return -EINVAL;
        }
        if ((desc->flags & VUS_BAR_MEM64) &&
            (index == VFIO_PCI_BAR5_REGION_INDEX ||
             ctx->regions[index + 1].present)) {
            vus_err(ctx, "BAR%u: a 64-bit BAR needs BAR%u free", index,
                    index + 1);
            return -EINVAL;
        }
        if (desc->size > UINT32_MAX && !(desc->flags & VUS_BAR_MEM64)) {
            vus_err(ctx, "BAR%u: over 4 GiB needs VUS_BAR_MEM64", index);
            return -EINVAL;
        }
    }
    if (index > 0 && index <= VFIO_PCI_BAR5_REGION_INDEX &&
        ctx->regions[index - 1].present &&
        (ctx->regions[index - 1].flags & VUS_BAR_MEM64)) {
        vus_err(ctx, "BAR%u is the upper half of 64-bit BAR%u", index,
                index - 1);
        return -EINVAL;
    }
    if (desc->mmap_fd >= 0) {
        if (desc->mmap_fd_offset % VUS_PAGE_SIZE) {
            vus_err(ctx, "region %u: mmap offset 0x%" PRIx64 " is not page "
                    "aligned", index, desc->mmap_fd_offset);
            return -EINVAL;
        }
        for (uint32_t i = 0; i < desc->nr_mmap_areas; i++) {
            const VusMmapArea *a = &desc->mmap_areas[i];
            if (a->offset % VUS_PAGE_SIZE || a->size % VUS_PAGE_SIZE ||
                !a->size || a->offset > desc->size ||
                a->size > desc->size - a->offset) {
                vus_err(ctx, "region %u: mmap area %u [0x%" PRIx64 ", +0x%"
                        PRIx64 ") is unaligned or outside the region",
                        index, i, a->offset, a->size);
                return -EINVAL;
            }
        }
        if (!desc->nr_mmap_areas && desc->size % VUS_PAGE_SIZE) {
            vus_err(ctx, "region %u: a mappable region needs a page-aligned "
                    "size", index);
            return -EINVAL;
        }
    }

    r = &ctx->regions[index];
    if (r->mmap_fd >= 0) {
        close(r->mmap_fd);
    }
    free(r->areas);
    memset(r, 0, sizeof(*r));
    r->mmap_fd = -1;
    r->present = true;
    r->size = desc->size;
    r->flags = desc->flags;
    r->access = desc->access;
    if (desc->mmap_fd >= 0) {
        r->mmap_fd = fcntl(desc->mmap_fd, F_DUPFD_CLOEXEC, 0);
        if (r->mmap_fd < 0) {
            int err = errno;
            vus_err(ctx, "region %u: cannot duplicate mmap fd: %s", index,
                    strerror(err));
            r->present = false;
            return -err;
        }
        r->mmap_fd_offset = desc->mmap_fd_offset;
        if (desc->nr_mmap_areas) {
            r->areas = calloc(desc->nr_mmap_areas, sizeof(*r->areas));
            if (!r->areas) {
                close(r->mmap_fd);
                r->mmap_fd = -1;
                r->present = false;
                return -ENOMEM;
            }
            memcpy(r->areas, desc->mmap_areas,
                   desc->nr_mmap_areas * sizeof(*r->areas));
            r->nr_areas = desc->nr_mmap_areas;
        }
    }
    if (index + 1 > ctx->nr_regions) {
        ctx->nr_regions = index + 1;
    }
    return 0;
}

int vus_setup_irqs(VusCtx *ctx, uint32_t irq_index, uint32_t count)
{
    VusIrqIndex *irq;

    if (ctx->realized || irq_index >= VFIO_PCI_NUM_IRQS) {
        vus_err(ctx, "IRQ index %u: out of range or set after realize",
                irq_index);
        return -EINVAL;
    }
    if ((irq_index == VFIO_PCI_INTX_IRQ_INDEX && count > 1) ||
        (irq_index == VFIO_PCI_MSI_IRQ_INDEX && count > 32) ||
        count > 2048) {
        vus_err(ctx, "IRQ index %u: %u vectors is too many", irq_index,
                count);
        return -EINVAL;
    }
    irq = &ctx->irqs[irq_index];
    free(irq->vec);
    irq->vec = NULL;
    irq->count = 0;
    if (count) {
        irq->vec = calloc(count, sizeof(*irq->vec));
        if (!irq->vec) {
            return -ENOMEM;
        }
        for (uint32_t i = 0; i < count; i++) {
            irq->vec[i].fd = -1;
        }
    }
    irq->count = count;
    return 0;
}

void vus_setup_irq_state_cb(VusCtx *ctx, VusIrqStateFn fn)
{
    ctx->irq_state_fn = fn;
}

int vus_setup_dma(VusCtx *ctx, VusDmaMapFn map, VusDmaUnmapFn unmap)
{
    if (ctx->realized) {
        return -EBUSY;
    }
    ctx->dma_map_fn = map;
    ctx->dma_unmap_fn = unmap;
    return 0;
}

void vus_setup_dma_log_cb(VusCtx *ctx, VusDmaLogFn fn)
{
    ctx->dma_log_fn = fn;
}

void vus_setup_reset(VusCtx *ctx, VusResetFn fn)
{
    ctx->reset_fn = fn;
}

int vus_setup_migration(VusCtx *ctx, const VusMigrationOps *ops)
{
    const uint64_t known = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
                           VFIO_MIGRATION_PRE_COPY;

    if (ctx->realized || !ops) {
        return -EINVAL;
    }
    if (!(ops->flags & VFIO_MIGRATION_STOP_COPY) || (ops->flags & ~known)) {
        vus_err(ctx, "migration flags 0x%" PRIx64 " must include STOP_COPY "
                "and nothing but STOP_COPY, P2P, PRE_COPY", ops->flags);
        return -EINVAL;
    }
    if (!ops->transition || (!ops->read_data && !ops->read_data_zc) ||
        !ops->write_data) {
        vus_err(ctx, "migration ops lack a required callback (transition, "
                "read_data or read_data_zc, write_data)");
        return -EINVAL;
    }
    ctx->mig = *ops;
    ctx->migratable = true;
    vus_mig_fill_table(ops->flags, ctx->mig_next);
    return 0;
}

enum vfio_device_mig_state vus_mig_get_state(VusCtx *ctx)
{
    return atomic_load(&ctx->mig_state);
}

int vus_ctx_finish_setup(VusCtx *ctx)
{
    if (ctx->is_pci && !ctx->setup_finished) {
        int ret = vus_pci_finish(ctx);
        if (ret < 0) {
            return ret;
        }
    }
    ctx->setup_finished = true;
    return 0;
}

int vus_ctx_realize(VusCtx *ctx, const char *socket_path)
{
    char why[UNIX_LISTEN_MSG_SIZE];
    int fd, ret;

    if (ctx->realized) {
        vus_err(ctx, "already realized");
        return -EBUSY;
    }
    if (!socket_path) {
        vus_err(ctx, "no socket path");
        return -EINVAL;
    }
    ret = vus_ctx_finish_setup(ctx);
    if (ret < 0) {
        return ret;
    }
    fd = unix_listen_private(socket_path, 1, 0, why, sizeof(why));
    if (fd < 0) {
        vus_err(ctx, "%s", why);
        return fd;
    }
    ctx->socket_path = strdup(socket_path);
    if (!ctx->socket_path) {
        unlink(socket_path);
        close(fd);
        return -ENOMEM;
    }
    ctx->listen_fd = fd;
    ctx->realized = true;
    vus_info(ctx, "listening on %s", socket_path);
    return 0;
}

static bool stop_requested(VusCtx *ctx)
{
    uint64_t v;

    if (read(ctx->stop_fd, &v, sizeof(v)) == sizeof(v)) {
        /* Keep it signalled: every loop level must see it. */
        v = 1;
        if (write(ctx->stop_fd, &v, sizeof(v)) < 0) {
            /* The counter is non-zero anyway. */
        }
        return true;
    }
    return false;
}

int64_t vus_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void waiting_close(VusCtx *ctx, int slot)
{
    close(ctx->waiting[slot].fd);
    ctx->waiting[slot].fd = -1;
}

/*
 * A client that connected while another is served: take it off the
 * listening socket (where it would wait unanswered) and keep it until
 * its first request can be refused or the served client leaves.
 */
static void waiting_add(VusCtx *ctx)
{
    int fd = accept4(ctx->listen_fd, NULL, NULL,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        return;     /* EAGAIN, ECONNABORTED, out of fds: try again later */
    }
    for (int i = 0; i < VUS_MAX_WAITING; i++) {
        if (ctx->waiting[i].fd < 0) {
            ctx->waiting[i].fd = fd;
            ctx->waiting[i].since_ms = vus_now_ms();
            return;
        }
    }
    vus_warn(ctx, "refusing a new client: another client is being served "
             "and %d more are waiting; closed at once", VUS_MAX_WAITING);
    close(fd);
}

/*
 * The waiting client in @slot sent something while another client is
 * served: answer its first request (VERSION, normally) with EBUSY, so
 * that it can say why, and close.
 */
static void waiting_refuse(VusCtx *ctx, int slot)
{
    int fd = ctx->waiting[slot].fd;
    struct vfio_user_header req, reply;
    uint8_t scratch[4096];
    size_t left;
    ssize_t n;

    n = recv(fd, &req, sizeof(req), MSG_DONTWAIT | MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n > 0 && (size_t)n < sizeof(req)) {
        return;     /* the rest of the header is on its way */
    }
    if (n != sizeof(req) || req.msg_size < sizeof(req) ||
        (req.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND) {
        waiting_close(ctx, slot);   /* it went away, or sent garbage */
        return;
    }
    vus_warn(ctx, "refusing a new client: another client is being served "
             "(one client at a time); its %s gets EBUSY",
             vfio_user_command_name(req.cmd) ?
             vfio_user_command_name(req.cmd) : "request");
    /* Take what came of the request, so that closing sends no reset. */
    left = req.msg_size;
    while (left && (n = recv(fd, scratch, MIN(left, sizeof(scratch)),
                             MSG_DONTWAIT)) > 0) {
        left -= n;
    }
    reply = (struct vfio_user_header) {
        .msg_id = req.msg_id,
        .cmd = req.cmd,
        .msg_size = sizeof(reply),
        .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
        .error_no = EBUSY,
    };
    if (!(req.flags & VFIO_USER_F_NO_REPLY) &&
        send(fd, &reply, sizeof(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        vus_debug(ctx, "cannot refuse a client: %s", strerror(errno));
    }
    waiting_close(ctx, slot);
}

/* The oldest waiting client, taken out of the list, or -1. */
static int waiting_take_oldest(VusCtx *ctx)
{
    int best = -1, fd;

    for (int i = 0; i < VUS_MAX_WAITING; i++) {
        if (ctx->waiting[i].fd >= 0 &&
            (best < 0 ||
             ctx->waiting[i].since_ms < ctx->waiting[best].since_ms)) {
            best = i;
        }
    }
    if (best < 0) {
        return -1;
    }
    fd = ctx->waiting[best].fd;
    ctx->waiting[best].fd = -1;
    return fd;
}

int vus_wait_fd(VusCtx *ctx, int fd, short events, int64_t deadline_ms)
{
    bool guard = vus_on_service_thread(ctx) && ctx->conn &&
                 fd == ctx->conn->fd && ctx->listen_fd >= 0;

    for (;;) {
        struct pollfd pfd[3 + VUS_MAX_WAITING];
        int slots[VUS_MAX_WAITING];
        int64_t wake = deadline_ms, now = vus_now_ms();
        int n = 0, nr_waiting = 0, timeout, ret;

        pfd[n++] = (struct pollfd) { .fd = fd, .events = events };
        pfd[n++] = (struct pollfd) { .fd = ctx->stop_fd, .events = POLLIN };
        if (guard) {
            pfd[n++] = (struct pollfd) { .fd = ctx->listen_fd,
                                         .events = POLLIN };
            for (int i = 0; i < VUS_MAX_WAITING; i++) {
                int64_t until;

                if (ctx->waiting[i].fd < 0) {
                    continue;
                }
                until = ctx->waiting[i].since_ms + ctx->limits.msg_timeout_ms;
                if (now >= until) {
                    vus_warn(ctx, "closing a client that waited %u ms to be "
                             "served without sending a request",
                             ctx->limits.msg_timeout_ms);
                    waiting_close(ctx, i);
                    continue;
                }
                if (wake < 0 || until < wake) {
                    wake = until;
                }
                slots[nr_waiting++] = i;
                pfd[n++] = (struct pollfd) { .fd = ctx->waiting[i].fd,
                                             .events = POLLIN };
            }
        }
        if (deadline_ms >= 0 && now >= deadline_ms) {
            return -ETIMEDOUT;
        }
        timeout = wake < 0 ? -1 : (int)MIN(wake - now, INT32_MAX);
        ret = poll(pfd, n, timeout);
        if (ret < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (pfd[1].revents & POLLIN) {
            return -ECANCELED;
        }
        /*
         * The served client first: if it is leaving, a client that
         * connected meanwhile is served next rather than refused.
         */
        if (pfd[0].revents) {
            return 0;
        }
        if (guard) {
            for (int i = 0; i < nr_waiting; i++) {
                if (pfd[3 + i].revents) {
                    waiting_refuse(ctx, slots[i]);
                }
            }
            if (pfd[2].revents & POLLIN) {
                waiting_add(ctx);
            }
        }
    }
}

/* Handles one client until it goes away or a stop is requested. */
static int serve_client(VusCtx *ctx, int fd)
{
    VusConn *conn = vus_conn_new(ctx, fd);
    int buf_size = VUS_SOCKET_BUF_SIZE;
    int ret = 0;

    /* Best effort: smaller buffers only cost more wake-ups. */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf_size, sizeof(buf_size)) ||
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf_size, sizeof(buf_size))) {
        vus_debug(ctx, "cannot size the socket buffers: %s", strerror(errno));
    }
    if (!conn) {
        close(fd);
        return -ENOMEM;
    }
    ctx->service_thread = pthread_self();
    ctx->in_service = true;
    atomic_store(&ctx->client_connected, true);
    vus_info(ctx, "client connected");
    if (ctx->client_fn) {
        ctx->client_fn(ctx->opaque, true);
    }

    for (;;) {
        VusMsg msg;

        /*
         * vus_recv_msg() waits for the client and for a stop together;
         * a client that never lets it wait still sees the stop here,
         * without a system call per message.
         */
        if (atomic_load(&ctx->stopping) && stop_requested(ctx)) {
            ret = -ECANCELED;
            break;
        }
        vus_msg_init(&msg);
        ret = vus_recv_msg(ctx, conn->fd, &msg,
                           conn->max_xfer + VUS_MSG_OVERHEAD);
        if (ret == -ECONNRESET || ret == -ECANCELED) {
            vus_msg_release(&msg);
            ret = ret == -ECANCELED ? ret : 0;
            break;
        }
        if (ret == -ETIMEDOUT) {
            /* vus_recv_msg() said how far the message got. */
            vus_msg_release(&msg);
            ret = 0;
            break;
        }
        if (ret == -EMSGSIZE || ret == -EBADMSG) {
            /* The message was consumed whole: answer and go on. */
            vus_reply_error(ctx, conn, &msg, EINVAL);
            vus_msg_release(&msg);
            ret = 0;
            continue;
        }
        if (ret < 0) {
            /* Framing is lost: tell the client and drop it. */
            vus_reply_error(ctx, conn, &msg, EINVAL);
            vus_msg_release(&msg);
            vus_warn(ctx, "dropping the client: %s", strerror(-ret));
            ret = 0;
            break;
        }
        if ((msg.hdr.flags & VFIO_USER_F_TYPE_MASK) ==
            VFIO_USER_F_TYPE_REPLY) {
            if (!vus_s2c_deliver(ctx, &msg)) {
                vus_warn(ctx, "unexpected reply msg_id %u, cmd %u",
                         msg.hdr.msg_id, msg.hdr.cmd);
                vus_msg_release(&msg);
            }
            continue;
        }
        ret = vus_dispatch(ctx, conn, &msg);
        vus_msg_release(&msg);
        if (ret < 0) {
            vus_warn(ctx, "dropping the client: %s", strerror(-ret));
            ret = 0;
            break;
        }
    }

    vus_conn_close(ctx, conn);
    ctx->in_service = false;
    return ret;
}

int vus_ctx_serve_one(VusCtx *ctx, int timeout_ms)
{
    struct pollfd pfd[2];
    int fd, ret;

    if (!ctx->realized) {
        vus_err(ctx, "serving before vus_ctx_realize()");
        return -EINVAL;
    }
    /* A client that connected while the last one was served goes first. */
    fd = waiting_take_oldest(ctx);
    if (fd >= 0) {
        if (stop_requested(ctx)) {
            close(fd);
            return -ECANCELED;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        return serve_client(ctx, fd);
    }
    for (;;) {
        pfd[0] = (struct pollfd) { .fd = ctx->listen_fd, .events = POLLIN };
        pfd[1] = (struct pollfd) { .fd = ctx->stop_fd, .events = POLLIN };
        ret = poll(pfd, 2, timeout_ms);
        if (ret < 0 && errno == EINTR) {
            continue;
        }
        if (ret < 0) {
            ret = -errno;
            vus_err(ctx, "poll on the listening socket: %s", strerror(-ret));
            return ret;
        }
        if (ret == 0) {
            return -ETIMEDOUT;
        }
        if (pfd[1].revents && stop_requested(ctx)) {
            return -ECANCELED;
        }
        if (!pfd[0].revents) {
            continue;
        }
        fd = accept4(ctx->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) {
                continue;
            }
            ret = -errno;
            vus_err(ctx, "accept: %s", strerror(-ret));
            return ret;
        }
        return serve_client(ctx, fd);
    }
}

int vus_ctx_run(VusCtx *ctx)
{
    for (;;) {
        int ret = vus_ctx_serve_one(ctx, -1);

        if (ret == -ECANCELED) {
            return 0;
        }
        if (ret < 0 && ret != -ENOMEM) {
            return ret;
        }
    }
}

static void *service_thread_fn(void *opaque)
{
    VusCtx *ctx = opaque;

    vus_ctx_run(ctx);
    return NULL;
}

int vus_ctx_start(VusCtx *ctx)
{
    int ret;

    if (!ctx->realized || ctx->thread_started) {
        vus_err(ctx, "start: not realized or already started");
        return -EINVAL;
    }
    ret = pthread_create(&ctx->thread, NULL, service_thread_fn, ctx);
    if (ret) {
        vus_err(ctx, "cannot create the service thread: %s", strerror(ret));
        return -ret;
    }
    ctx->thread_started = true;
    return 0;
}

void vus_ctx_stop(VusCtx *ctx)
{
    uint64_t one = 1;

    atomic_store(&ctx->stopping, true);
    if (write(ctx->stop_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is already huge, i.e. signalled. */
    }
}
