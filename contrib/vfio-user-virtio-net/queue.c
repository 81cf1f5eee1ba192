/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * vfio-user-virtio-net: the split virtqueues and the loopback.
 *
 * The worker thread takes every frame the driver made available on the
 * TX queue and delivers it to the RX queue of the same device.  It takes
 * TX heads as soon as they are available and keeps a few RX buffers in
 * hand, so at any moment both queues hold in-flight descriptors: taken
 * from the available ring, not yet in the used ring.  Those are part of
 * the device context, and a migrated device finishes them.
 *
 * Everything the driver gives is checked before use: a head or a next
 * index out of the queue, a chain longer than the queue (a loop), an
 * address the client has not mapped, a TX buffer the device could write
 * or an RX buffer it could not, a frame too long or too short: the
 * device then sets NEEDS_RESET and does nothing more until the driver
 * resets it.  Guest memory is reached with vus_dma_read()/vus_dma_write(),
 * which log the device's writes for dirty tracking.
 */
#include "vfio-user-virtio-net.h"

/* RX buffers the device keeps in hand. */
#define VNET_RX_PREFETCH 8
/* Frames per batch: the lock is dropped between batches. */
#define VNET_BATCH 32
/* Without a notification, look at the rings this often anyway. */
#define VNET_POLL_US 10000

uint64_t vnet_mac_key(const uint8_t *mac)
{
    uint64_t k = 0;

    for (int i = 0; i < VNET_MAC_LEN; i++) {
        k = k << 8 | mac[i];
    }
    return k;
}

static int key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/*
 * Program the receive filter from the MAC table: the sorted keys.  This
 * is the work a device does to take a filter table, and why a context
 * whose table did not change is cheaper to take (migration.c).
 */
bool vnet_build_filter(VnetState *s)
{
    g_free(s->filter_keys);
    s->filter_keys = g_try_new(uint64_t, MAX(s->nr_filters, 1));
    if (!s->filter_keys) {
        return false;
    }
    for (uint32_t i = 0; i < s->nr_filters; i++) {
        s->filter_keys[i] = vnet_mac_key(s->filters + i * VNET_MAC_LEN);
    }
    qsort(s->filter_keys, s->nr_filters, sizeof(uint64_t), key_cmp);
    return true;
}

static bool filter_accepts(VnetState *s, const uint8_t *dst)
{
    uint64_t key = vnet_mac_key(dst);

    if (key == 0xffffffffffffull || !memcmp(dst, s->mac, VNET_MAC_LEN)) {
        return true;
    }
    return s->filter_keys &&
           bsearch(&key, s->filter_keys, s->nr_filters, sizeof(uint64_t),
                   key_cmp);
}

void vnet_kick(VnetDevice *d)
{
    d->kicked = true;
    g_cond_broadcast(&d->cond);
}

static uint16_t le16_at(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}

static bool dma_read16(VnetDevice *d, uint64_t iova, uint16_t *v)
{
    uint8_t b[2];

    if (vus_dma_read(d->ctx, iova, b, sizeof(b)) < 0) {
        return false;
    }
    *v = le16_at(b);
    return true;
}

static bool dma_write16(VnetDevice *d, uint64_t iova, uint16_t v)
{
    uint8_t b[2] = { v & 0xff, v >> 8 };

    return vus_dma_write(d->ctx, iova, b, sizeof(b)) == 0;
}

static const char *queue_name(VnetDevice *d, VnetQueue *q)
{
    return q == &d->state.q[VIRTIO_NET_RXQ] ? "RX" : "TX";
}

/* Take the available heads into the in-flight list, up to @max in all. */
static bool take_avail(VnetDevice *d, VnetQueue *q, unsigned max)
{
    uint16_t avail_idx, pending;

    if (q->nr_inflight >= max) {
        return true;
    }
    if (!dma_read16(d, q->driver + VRING_AVAIL_IDX, &avail_idx)) {
        vnet_log_needs_reset(d, "%s queue: available ring at 0x%" PRIx64
                             " is not mapped", queue_name(d, q), q->driver);
        return false;
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    pending = avail_idx - q->last_avail;
    if (pending > q->size) {
        vnet_log_needs_reset(d, "%s queue: available index %u is %u ahead "
                             "of %u, more than the queue's %u entries",
                             queue_name(d, q), avail_idx, pending,
                             q->last_avail, q->size);
        return false;
    }
    while (pending-- && q->nr_inflight < max) {
        uint16_t head;

        if (!dma_read16(d, q->driver + VRING_AVAIL_RING +
                        2ull * (q->last_avail % q->size), &head)) {
            vnet_log_needs_reset(d, "%s queue: available ring unreadable",
                                 queue_name(d, q));
            return false;
        }
        if (head >= q->size) {
            vnet_log_needs_reset(d, "%s queue: head %u out of a queue of %u",
                                 queue_name(d, q), head, q->size);
            return false;
        }
        q->inflight[q->nr_inflight++] = head;
        q->last_avail++;
    }
    return true;
}

typedef struct VnetDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VnetDesc;

static bool read_desc(VnetDevice *d, VnetQueue *q, uint16_t i, VnetDesc *out)
{
    uint8_t b[VRING_DESC_SIZE];

    if (vus_dma_read(d->ctx, q->desc + (uint64_t)i * VRING_DESC_SIZE, b,
                     sizeof(b)) < 0) {
        vnet_log_needs_reset(d, "%s queue: descriptor table at 0x%" PRIx64
                             " is not mapped", queue_name(d, q), q->desc);
        return false;
    }
    out->addr = (uint64_t)le16_at(b) | (uint64_t)le16_at(b + 2) << 16 |
                (uint64_t)le16_at(b + 4) << 32 | (uint64_t)le16_at(b + 6) << 48;
    out->len = le16_at(b + 8) | (uint32_t)le16_at(b + 10) << 16;
    out->flags = le16_at(b + 12);
    out->next = le16_at(b + 14);
    return true;
}

/*
 * Walk the chain at @head: every descriptor must be device-writable
 * (@writable) or not, and the chain at most the queue long.  A TX chain
 * (read-only) is gathered into @buf, at most @len bytes; an RX chain
 * (writable) gets the first @len bytes of @buf.  Returns the bytes
 * moved, or -1 after NEEDS_RESET.
 */
static int64_t walk_chain(VnetDevice *d, VnetQueue *q, uint16_t head,
                          bool writable, uint8_t *buf, uint32_t len)
{
    uint16_t i = head;
    uint64_t moved = 0;

    for (unsigned n = 0;; n++) {
        VnetDesc desc;
        uint32_t chunk;

        if (n >= q->size) {
            vnet_log_needs_reset(d, "%s queue: the chain at head %u loops",
                                 queue_name(d, q), head);
            return -1;
        }
        if (!read_desc(d, q, i, &desc)) {
            return -1;
        }
        if (desc.flags & VRING_DESC_F_INDIRECT) {
            vnet_log_needs_reset(d, "%s queue: indirect descriptor %u was not "
                                 "negotiated", queue_name(d, q), i);
            return -1;
        }
        if (!!(desc.flags & VRING_DESC_F_WRITE) != writable) {
            vnet_log_needs_reset(d, "%s queue: descriptor %u is %s, the queue "
                                 "needs %s buffers", queue_name(d, q), i,
                                 writable ? "read-only" : "device-writable",
                                 writable ? "writable" : "read-only");
            return -1;
        }
        chunk = MIN(desc.len, len - moved);
        if (!writable && desc.len > len - moved) {
            vnet_log_needs_reset(d, "TX queue: the chain at head %u holds more "
                                 "than a %u-byte frame", head, len);
            return -1;
        }
        if (chunk && (writable ?
                      vus_dma_write(d->ctx, desc.addr, buf + moved, chunk) :
                      vus_dma_read(d->ctx, desc.addr, buf + moved, chunk)) <
                     0) {
            vnet_log_needs_reset(d, "%s queue: descriptor %u points at 0x%"
                                 PRIx64 "+%u, outside guest memory",
                                 queue_name(d, q), i, desc.addr, desc.len);
            return -1;
        }
        moved += chunk;
        if (!(desc.flags & VRING_DESC_F_NEXT)) {
            break;
        }
        if (desc.next >= q->size) {
            vnet_log_needs_reset(d, "%s queue: descriptor %u chains to %u, out "
                                 "of a queue of %u", queue_name(d, q), i,
                                 desc.next, q->size);
            return -1;
        }
        i = desc.next;
    }
    return moved;
}

static void raise_irq(VnetDevice *d, VnetQueue *q)
{
    uint16_t flags;

    if (dma_read16(d, q->driver + VRING_AVAIL_FLAGS, &flags) &&
        (flags & VRING_AVAIL_F_NO_INTERRUPT)) {
        return;
    }
    d->state.isr |= VIRTIO_ISR_QUEUE;
    if (q->msix_vector == VIRTIO_MSI_NO_VECTOR ||
        vus_irq_trigger(d->ctx, VFIO_PCI_MSIX_IRQ_INDEX, q->msix_vector) < 0) {
        vus_irq_trigger(d->ctx, VFIO_PCI_INTX_IRQ_INDEX, 0);
    }
}

/* Complete the oldest in-flight head of @q with @len bytes written. */
static bool push_used(VnetDevice *d, VnetQueue *q, uint32_t len)
{
    uint8_t elem[VRING_USED_ELEM_SIZE];
    uint32_t id = q->inflight[0];

    for (int i = 0; i < 4; i++) {
        elem[i] = id >> (8 * i);
        elem[4 + i] = len >> (8 * i);
    }
    if (vus_dma_write(d->ctx, q->device + VRING_USED_RING +
                      (uint64_t)VRING_USED_ELEM_SIZE * (q->used_idx % q->size),
                      elem, sizeof(elem)) < 0) {
        vnet_log_needs_reset(d, "%s queue: used ring at 0x%" PRIx64 " is not "
                             "mapped", queue_name(d, q), q->device);
        return false;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    q->used_idx++;
    if (!dma_write16(d, q->device + VRING_USED_IDX, q->used_idx)) {
        vnet_log_needs_reset(d, "%s queue: used ring unwritable",
                             queue_name(d, q));
        return false;
    }
    memmove(q->inflight, q->inflight + 1, --q->nr_inflight * sizeof(uint16_t));
    return true;
}

/*
 * Move up to a batch of frames from TX to RX.  Lock held.  Returns the
 * number moved, 0 when there is nothing to do (no frame, or no RX
 * buffer for the next one), -1 when the device needs a reset.
 */
static int process(VnetDevice *d)
{
    VnetState *s = &d->state;
    VnetQueue *rx = &s->q[VIRTIO_NET_RXQ], *tx = &s->q[VIRTIO_NET_TXQ];
    uint8_t frame[VNET_FRAME_MAX];
    int done = 0;

    if (!rx->enabled || !tx->enabled || !rx->size || !tx->size) {
        return 0;
    }
    if (!take_avail(d, tx, tx->size) ||
        !take_avail(d, rx, MIN(VNET_RX_PREFETCH, rx->size))) {
        return -1;
    }
    while (tx->nr_inflight && done < VNET_BATCH) {
        int64_t len = walk_chain(d, tx, tx->inflight[0], false, frame,
                                 sizeof(frame));
        bool drop = d->drop_frame >= 0 && (int64_t)d->frames == d->drop_frame;

        if (len < 0) {
            return -1;
        }
        if (len < VIRTIO_NET_HDR_SIZE + 14) {
            vnet_log_needs_reset(d, "TX queue: a %" PRId64 "-byte frame is "
                                 "shorter than the header and an Ethernet "
                                 "header", len);
            return -1;
        }
        if (!drop && filter_accepts(s, frame + VIRTIO_NET_HDR_SIZE)) {
            int64_t put;

            if (!rx->nr_inflight &&
                !take_avail(d, rx, MIN(VNET_RX_PREFETCH, rx->size))) {
                return -1;
            }
            if (!rx->nr_inflight) {
                break;      /* no RX buffer: wait for the driver */
            }
            /* One buffer per frame: num_buffers is 1. */
            memset(frame, 0, VIRTIO_NET_HDR_SIZE);
            frame[VIRTIO_NET_HDR_NUM_BUFFERS] = 1;
            put = walk_chain(d, rx, rx->inflight[0], true, frame, len);
            if (put < 0) {
                return -1;
            }
            if (put < len) {
                vnet_log_needs_reset(d, "RX queue: buffer %u holds %" PRId64
                                     " bytes, the frame needs %" PRId64,
                                     rx->inflight[0], put, len);
                return -1;
            }
            if (!push_used(d, rx, put)) {
                return -1;
            }
        } else if (drop) {
            vus_log(d->ctx, VUS_LOG_WARN, "frame %" PRIu64 " dropped as "
                    "asked (--drop-frame)", d->frames);
        }
        if (!push_used(d, tx, 0)) {
            return -1;
        }
        d->frames++;
        done++;
    }
    if (done) {
        raise_irq(d, rx);
        raise_irq(d, tx);
    }
    return done;
}

static bool can_work(VnetDevice *d)
{
    return d->running && d->nr_maps &&
           (d->state.status & VIRTIO_STATUS_DRIVER_OK) &&
           !(d->state.status & VIRTIO_STATUS_NEEDS_RESET);
}

gpointer vnet_worker(gpointer opaque)
{
    VnetDevice *d = opaque;

    g_mutex_lock(&d->lock);
    while (!d->quit) {
        bool kicked = d->kicked;
        int moved = 0;

        d->kicked = false;
        if (can_work(d)) {
            moved = process(d);
        }
        if (moved > 0 || (kicked && moved == 0 && can_work(d))) {
            /* Let callbacks (FSM arcs, register accesses) in, go again. */
            g_mutex_unlock(&d->lock);
            g_mutex_lock(&d->lock);
            continue;
        }
        if (!d->kicked) {
            g_cond_wait_until(&d->cond, &d->lock,
                              g_get_monotonic_time() + VNET_POLL_US);
        }
    }
    g_mutex_unlock(&d->lock);
    return NULL;
}
