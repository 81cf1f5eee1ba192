/*
 * Interrupts: DEVICE_GET_IRQ_INFO, DEVICE_SET_IRQS (eventfds, masking,
 * software triggers) and vus_irq_trigger() for the device's threads.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

int vus_handle_irq_info(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_irq_info info;

    if (msg->len != sizeof(info)) {
        vus_warn(ctx, "DEVICE_GET_IRQ_INFO: payload of %zu bytes, expected "
                 "%zu", msg->len, sizeof(info));
        return -EINVAL;
    }
    memcpy(&info, msg->payload, sizeof(info));
    if (info.argsz < sizeof(info) || info.index >= VFIO_PCI_NUM_IRQS) {
        vus_warn(ctx, "DEVICE_GET_IRQ_INFO: argsz %u too small or index %u "
                 "out of range", info.argsz, info.index);
        return -EINVAL;
    }
    info.argsz = sizeof(info);
    info.count = ctx->irqs[info.index].count;
    info.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE;
    if (info.index == VFIO_PCI_MSI_IRQ_INDEX ||
        info.index == VFIO_PCI_MSIX_IRQ_INDEX) {
        info.flags |= VFIO_IRQ_INFO_NORESIZE;
    }
    return vus_reply(ctx, conn, msg, &info, sizeof(info), NULL, 0, NULL, 0);
}

/* Signals a vector; irq_lock held. */
static int fire_locked(VusIrqVector *v)
{
    uint64_t one = 1;

    if (v->fd < 0) {
        return -ENOENT;
    }
    if (v->masked) {
        v->pending = true;
        return 0;
    }
    if (write(v->fd, &one, sizeof(one)) != sizeof(one)) {
        /* EAGAIN: the counter is saturated, so it is signalled anyway. */
        return errno == EAGAIN ? 0 : -errno;
    }
    return 0;
}

static bool is_eventfd(int fd)
{
    char path[64], target[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        return false;
    }
    target[n] = '\0';
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

int vus_handle_set_irqs(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_irq_set set;
    uint32_t data_type, action;
    VusIrqIndex *irq;
    const uint8_t *bools = NULL;
    int ret = 0;

    if (msg->len < sizeof(set)) {
        vus_warn(ctx, "DEVICE_SET_IRQS: payload of %zu bytes is shorter "
                 "than %zu", msg->len, sizeof(set));
        return -EINVAL;
    }
    memcpy(&set, msg->payload, sizeof(set));
    data_type = set.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    action = set.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    if ((set.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK |
                       VFIO_IRQ_SET_ACTION_TYPE_MASK)) ||
        __builtin_popcount(data_type) != 1 ||
        __builtin_popcount(action) != 1) {
        vus_warn(ctx, "DEVICE_SET_IRQS: flags 0x%x need exactly one data "
                 "type and one action", set.flags);
        return -EINVAL;
    }
    if (set.index >= VFIO_PCI_NUM_IRQS) {
        vus_warn(ctx, "DEVICE_SET_IRQS: IRQ index %u out of range", set.index);
        return -EINVAL;
    }
    irq = &ctx->irqs[set.index];
    if (set.start > irq->count || set.count > irq->count - set.start) {
        vus_warn(ctx, "DEVICE_SET_IRQS: vectors [%u, +%u) outside the %u of "
                 "index %u", set.start, set.count, irq->count, set.index);
        return -EINVAL;
    }
    if (set.argsz < sizeof(set)) {
        vus_warn(ctx, "DEVICE_SET_IRQS: argsz %u too small", set.argsz);
        return -EINVAL;
    }
    if (data_type == VFIO_IRQ_SET_DATA_BOOL) {
        if (msg->len != sizeof(set) + set.count) {
            vus_warn(ctx, "DEVICE_SET_IRQS: %zu bytes of bools for %u vectors",
                     msg->len - sizeof(set), set.count);
            return -EINVAL;
        }
        bools = msg->payload + sizeof(set);
    } else if (msg->len != sizeof(set)) {
        vus_warn(ctx, "DEVICE_SET_IRQS: unexpected data after the header");
        return -EINVAL;
    }
    if (data_type == VFIO_IRQ_SET_DATA_EVENTFD) {
        if (action != VFIO_IRQ_SET_ACTION_TRIGGER) {
            vus_warn(ctx, "DEVICE_SET_IRQS: eventfds only for TRIGGER");
            return -EINVAL;
        }
        if (msg->nfds != set.count) {
            vus_warn(ctx, "DEVICE_SET_IRQS: %zu fds for %u vectors",
                     msg->nfds, set.count);
            return -EINVAL;
        }
        for (size_t i = 0; i < msg->nfds; i++) {
            if (!is_eventfd(msg->fds[i])) {
                vus_warn(ctx, "DEVICE_SET_IRQS: fd %zu is not an eventfd", i);
                return -EINVAL;
            }
        }
    } else if (msg->nfds) {
        vus_warn(ctx, "DEVICE_SET_IRQS: fds without DATA_EVENTFD");
        return -EINVAL;
    }

    pthread_mutex_lock(&ctx->irq_lock);
    if (data_type == VFIO_IRQ_SET_DATA_EVENTFD) {
        for (uint32_t i = 0; i < set.count; i++) {
            VusIrqVector *v = &irq->vec[set.start + i];
            if (v->fd >= 0) {
                close(v->fd);
            }
            v->fd = msg->fds[i];
            msg->fds[i] = -1;
            v->pending = false;
        }
    } else if (action == VFIO_IRQ_SET_ACTION_TRIGGER &&
               data_type == VFIO_IRQ_SET_DATA_NONE && set.count == 0) {
        /* The kernel's "disable the whole index". */
        for (uint32_t i = 0; i < irq->count; i++) {
            if (irq->vec[i].fd >= 0) {
                close(irq->vec[i].fd);
                irq->vec[i].fd = -1;
            }
            irq->vec[i].masked = false;
            irq->vec[i].pending = false;
        }
        set.start = 0;
        set.count = irq->count;
    } else {
        for (uint32_t i = 0; i < set.count; i++) {
            VusIrqVector *v = &irq->vec[set.start + i];

            if (bools && !bools[i]) {
                continue;
            }
            switch (action) {
            case VFIO_IRQ_SET_ACTION_MASK:
                v->masked = true;
                break;
            case VFIO_IRQ_SET_ACTION_UNMASK:
                v->masked = false;
                if (v->pending) {
                    v->pending = false;
                    fire_locked(v);
                }
                break;
            default:
                /* A software trigger of a detached vector is a no-op. */
                fire_locked(v);
                break;
            }
        }
    }
    pthread_mutex_unlock(&ctx->irq_lock);

    if (ctx->irq_state_fn && set.count) {
        ctx->irq_state_fn(ctx->opaque, set.index, set.start, set.count);
    }
    ret = vus_reply(ctx, conn, msg, msg->payload, sizeof(set), NULL, 0,
                    NULL, 0);
    return ret;
}

void vus_irq_detach_all(VusCtx *ctx)
{
    pthread_mutex_lock(&ctx->irq_lock);
    for (int i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
        for (uint32_t v = 0; v < ctx->irqs[i].count; v++) {
            VusIrqVector *vec = &ctx->irqs[i].vec[v];
            if (vec->fd >= 0) {
                close(vec->fd);
                vec->fd = -1;
            }
            vec->masked = false;
            vec->pending = false;
        }
    }
    pthread_mutex_unlock(&ctx->irq_lock);
}

int vus_irq_trigger(VusCtx *ctx, uint32_t irq_index, uint32_t vector)
{
    int ret;

    if (irq_index >= VFIO_PCI_NUM_IRQS ||
        vector >= ctx->irqs[irq_index].count) {
        return -EINVAL;
    }
    pthread_mutex_lock(&ctx->irq_lock);
    ret = fire_locked(&ctx->irqs[irq_index].vec[vector]);
    pthread_mutex_unlock(&ctx->irq_lock);
    return ret;
}

bool vus_irq_is_enabled(VusCtx *ctx, uint32_t irq_index, uint32_t vector)
{
    bool enabled;

    if (irq_index >= VFIO_PCI_NUM_IRQS ||
        vector >= ctx->irqs[irq_index].count) {
        return false;
    }
    pthread_mutex_lock(&ctx->irq_lock);
    enabled = ctx->irqs[irq_index].vec[vector].fd >= 0 &&
              !ctx->irqs[irq_index].vec[vector].masked;
    pthread_mutex_unlock(&ctx->irq_lock);
    return enabled;
}
