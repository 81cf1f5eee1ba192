/*
 * Reassembly of a device's state packets on the destination.  Packets
 * of one device are spread over all channels, so they arrive in any
 * order; the device must load them in idx order.  Receive threads insert
 * (checking everything), one load thread takes them in order.
 */
#include "qemu/osdep.h"
#include "multifd-internal.h"

struct MultiFDStateQueue {
    char *name;
    uint64_t max_queued_bytes;  /* 0: no cap */
    MigCancel *cancel;          /* not owned, may be NULL */

    GMutex lock;                /* guards everything below */
    GCond cond;                 /* a packet arrived, or an error */
    GHashTable *packets;        /* idx -> MultiFDStatePacket, not taken yet */
    uint64_t queued_bytes;
    uint32_t next_idx;          /* the next one the load thread takes */
    bool any_inserted;
    uint32_t max_idx;           /* highest idx inserted */
    bool config_seen;
    uint32_t config_idx;
    bool complete;              /* the CONFIG_STATE packet was taken */
    Error *error;
};

void multifd_state_packet_free(MultiFDStatePacket *pkt)
{
    g_free(pkt->buf);
    pkt->buf = NULL;
    pkt->data = NULL;
}

static void state_packet_destroy(gpointer p)
{
    multifd_state_packet_free(p);
    g_free(p);
}

MultiFDStateQueue *multifd_state_queue_new(const char *name,
                                           uint64_t max_queued_bytes,
                                           MigCancel *cancel)
{
    MultiFDStateQueue *q = g_new0(MultiFDStateQueue, 1);

    q->name = g_strdup(name);
    q->max_queued_bytes = max_queued_bytes;
    q->cancel = cancel;
    g_mutex_init(&q->lock);
    g_cond_init(&q->cond);
    q->packets = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                       state_packet_destroy);
    return q;
}

void multifd_state_queue_free(MultiFDStateQueue *q)
{
    if (!q) {
        return;
    }
    g_hash_table_destroy(q->packets);
    error_free(q->error);
    g_cond_clear(&q->cond);
    g_mutex_clear(&q->lock);
    g_free(q->name);
    g_free(q);
}

/* With q->lock held: remember @err as the queue's failure and wake. */
static void state_queue_fail_locked(MultiFDStateQueue *q, const Error *err)
{
    if (!q->error) {
        q->error = error_copy(err);
    }
    g_cond_broadcast(&q->cond);
}

void multifd_state_queue_abort(MultiFDStateQueue *q, const Error *err)
{
    g_mutex_lock(&q->lock);
    state_queue_fail_locked(q, err);
    g_mutex_unlock(&q->lock);
}

/* With q->lock held: the checks of one packet, before it is stored. */
static bool state_queue_check_locked(MultiFDStateQueue *q, uint32_t version,
                                     uint32_t idx, uint32_t flags,
                                     size_t data_len, Error **errp)
{
    if (version != MULTIFD_DEVICE_STATE_VERSION) {
        error_setg(errp, "unsupported device state packet version %u "
                   "(expected %u)", version, MULTIFD_DEVICE_STATE_VERSION);
        return false;
    }
    if (idx == UINT32_MAX) {
        error_setg(errp, "invalid device state packet index %u", idx);
        return false;
    }
    if (flags & ~MULTIFD_DEVICE_STATE_CONFIG_STATE) {
        error_setg(errp, "device state packet %u has unknown flags 0x%x",
                   idx, flags);
        return false;
    }
    if (idx < q->next_idx || g_hash_table_contains(q->packets,
                                                   GUINT_TO_POINTER(idx))) {
        error_setg(errp, "duplicate device state packet index %u", idx);
        return false;
    }
    if (q->config_seen && idx > q->config_idx) {
        error_setg(errp, "device state packet %u follows the config state "
                   "packet %u", idx, q->config_idx);
        return false;
    }
    if (flags & MULTIFD_DEVICE_STATE_CONFIG_STATE) {
        if (q->config_seen) {
            error_setg(errp, "second config state packet %u (the first was "
                       "%u)", idx, q->config_idx);
            return false;
        }
        if (q->any_inserted && q->max_idx > idx) {
            error_setg(errp, "config state packet %u is not the last: packet "
                       "%u came before it", idx, q->max_idx);
            return false;
        }
    }
    if (q->max_queued_bytes &&
        (data_len > q->max_queued_bytes ||
         q->queued_bytes > q->max_queued_bytes - data_len)) {
        error_setg(errp, "queued device state would grow to %" PRIu64
                   " bytes with packet %u, above the limit of %" PRIu64,
                   q->queued_bytes + data_len, idx, q->max_queued_bytes);
        return false;
    }
    return true;
}

bool multifd_state_queue_take_buffer(MultiFDStateQueue *q, uint8_t **packet,
                                     size_t len, Error **errp)
{
    MultiFDStatePacket *pkt;
    Error *local_err = NULL;
    uint32_t version, idx, flags;
    uint8_t *buf = *packet;
    size_t data_len;

    if (len < MULTIFD_DEVICE_STATE_HDR_LEN) {
        error_setg(&local_err, "device state packet of %zu bytes is shorter "
                   "than its %u-byte header", len,
                   MULTIFD_DEVICE_STATE_HDR_LEN);
        goto fail_unlocked;
    }
    version = multifd_get_be32(buf);
    idx = multifd_get_be32(buf + 4);
    flags = multifd_get_be32(buf + 8);
    data_len = len - MULTIFD_DEVICE_STATE_HDR_LEN;

    g_mutex_lock(&q->lock);
    if (q->error) {
        error_propagate(errp, error_copy(q->error));
        g_mutex_unlock(&q->lock);
        return false;
    }
    if (!state_queue_check_locked(q, version, idx, flags, data_len,
                                  &local_err)) {
        error_prepend(&local_err, "%s: ", q->name);
        state_queue_fail_locked(q, local_err);
        g_mutex_unlock(&q->lock);
        error_propagate(errp, local_err);
        return false;
    }
    pkt = g_new0(MultiFDStatePacket, 1);
    pkt->idx = idx;
    pkt->flags = flags;
    pkt->len = data_len;
    pkt->buf = g_steal_pointer(packet);
    pkt->data = buf + MULTIFD_DEVICE_STATE_HDR_LEN;
    g_hash_table_insert(q->packets, GUINT_TO_POINTER(idx), pkt);
    q->queued_bytes += data_len;
    if (!q->any_inserted || idx > q->max_idx) {
        q->max_idx = idx;
    }
    q->any_inserted = true;
    if (flags & MULTIFD_DEVICE_STATE_CONFIG_STATE) {
        q->config_seen = true;
        q->config_idx = idx;
    }
    if (idx == q->next_idx) {
        g_cond_broadcast(&q->cond);
    }
    g_mutex_unlock(&q->lock);
    return true;

fail_unlocked:
    error_prepend(&local_err, "%s: ", q->name);
    multifd_state_queue_abort(q, local_err);
    error_propagate(errp, local_err);
    return false;
}

bool multifd_state_queue_insert(MultiFDStateQueue *q, const uint8_t *packet,
                                size_t len, Error **errp)
{
    g_autofree uint8_t *copy = g_memdup2(packet, len);

    return multifd_state_queue_take_buffer(q, &copy, len, errp);
}

/* With q->lock held: hand over the next packet if it is here. */
static bool state_queue_take_locked(MultiFDStateQueue *q,
                                    MultiFDStatePacket *out)
{
    MultiFDStatePacket *pkt;

    if (q->error || q->complete) {
        return false;
    }
    pkt = g_hash_table_lookup(q->packets, GUINT_TO_POINTER(q->next_idx));
    if (!pkt) {
        return false;
    }
    g_hash_table_steal(q->packets, GUINT_TO_POINTER(q->next_idx));
    q->queued_bytes -= pkt->len;
    q->next_idx++;
    q->complete = pkt->flags & MULTIFD_DEVICE_STATE_CONFIG_STATE;
    *out = *pkt;
    g_free(pkt);
    return true;
}

bool multifd_state_queue_take_next(MultiFDStateQueue *q,
                                   MultiFDStatePacket *out, Error **errp)
{
    bool ok = false;

    g_mutex_lock(&q->lock);
    for (;;) {
        if (state_queue_take_locked(q, out)) {
            ok = true;
            break;
        }
        if (q->error) {
            error_propagate(errp, error_copy(q->error));
            break;
        }
        if (q->complete) {
            error_setg(errp, "%s: every device state packet was loaded "
                       "already", q->name);
            break;
        }
        if (mig_cancel_fired(q->cancel)) {
            error_setg(errp, "%s: migration cancelled while waiting for "
                       "device state packet %u", q->name, q->next_idx);
            break;
        }
        multifd_cond_wait_slice(&q->cond, &q->lock);
    }
    g_mutex_unlock(&q->lock);
    return ok;
}

bool multifd_state_queue_take_ready(MultiFDStateQueue *q,
                                    MultiFDStatePacket *out)
{
    bool ok;

    g_mutex_lock(&q->lock);
    ok = state_queue_take_locked(q, out);
    g_mutex_unlock(&q->lock);
    return ok;
}

bool multifd_state_queue_complete(MultiFDStateQueue *q)
{
    bool complete;

    g_mutex_lock(&q->lock);
    complete = q->complete;
    g_mutex_unlock(&q->lock);
    return complete;
}
