/*
 * Multifd payload kind DEVICE_STATE: a device's state packet, routed by
 * (idstr, instance id) to the consumer the device registered on the
 * destination.  The packet itself ({version, idx, flags} + data) is the
 * device's business; see state-queue.c for the reassembly most devices
 * will want.
 */
#include "qemu/osdep.h"
#include "migration/trace.h"
#include "qemu/cutils.h"
#include "multifd-internal.h"

static ssize_t device_send_prepare(MultiFDSendChannel *c,
                                   MultiFDSendJob *job,
                                   const MultiFDCompressOps *compress,
                                   Error **errp)
{
    uint8_t *m = c->meta + MULTIFD_PACKET_HDR_LEN;
    size_t idlen = strlen(job->dev_idstr);
    size_t meta_len = MULTIFD_DEVICE_FIXED_LEN + idlen;

    /* multifd_queue_device_state() checked both lengths. */
    assert(idlen >= 1 && idlen <= MULTIFD_DEVICE_IDSTR_MAX);
    assert(job->dev_len <= MULTIFD_DEVICE_STATE_MAX_PACKET -
           MULTIFD_DEVICE_STATE_HDR_LEN);
    multifd_put_be32(m, job->dev_instance_id);
    m[4] = idlen;
    memcpy(m + MULTIFD_DEVICE_FIXED_LEN, job->dev_idstr, idlen);

    trace(multifd_device_state_send, "'%s' instance %u: %zu bytes",
          job->dev_idstr, job->dev_instance_id, (size_t)job->dev_len);
    c->iov[0].iov_base = c->meta;
    c->iov[0].iov_len = MULTIFD_PACKET_HDR_LEN + meta_len;
    c->iov[1].iov_base = job->dev_hdr;
    c->iov[1].iov_len = MULTIFD_DEVICE_STATE_HDR_LEN;
    c->iov[2].iov_base = (void *)job->dev_data;
    c->iov[2].iov_len = job->dev_len;
    c->iovcnt = 3;
    return meta_len + MULTIFD_DEVICE_STATE_HDR_LEN + job->dev_len;
}

/* ---- Consumers ---- */

typedef struct DeviceStateConsumer {
    char *idstr;
    uint32_t instance_id;
    MultiFDDeviceStateLoad *load;
    void *opaque;
} DeviceStateConsumer;

/*
 * Readers (receive threads) hold the lock across the call, so that
 * removing a consumer waits for its running calls.
 */
static GRWLock consumers_lock;
static GPtrArray *consumers;

static DeviceStateConsumer *consumer_find(const char *idstr,
                                          uint32_t instance_id)
{
    for (guint i = 0; consumers && i < consumers->len; i++) {
        DeviceStateConsumer *dc = g_ptr_array_index(consumers, i);

        if (dc->instance_id == instance_id && !strcmp(dc->idstr, idstr)) {
            return dc;
        }
    }
    return NULL;
}

static void consumer_free(gpointer p)
{
    DeviceStateConsumer *dc = p;

    g_free(dc->idstr);
    g_free(dc);
}

bool multifd_device_state_consumer_add(const char *idstr,
                                       uint32_t instance_id,
                                       MultiFDDeviceStateLoad *load,
                                       void *opaque, Error **errp)
{
    DeviceStateConsumer *dc;
    size_t idlen = idstr ? strlen(idstr) : 0;

    if (idlen < 1 || idlen > MULTIFD_DEVICE_IDSTR_MAX) {
        error_setg(errp, "multifd: device state id '%s' must be 1 to %u "
                   "characters", idstr ? idstr : "", MULTIFD_DEVICE_IDSTR_MAX);
        return false;
    }
    g_rw_lock_writer_lock(&consumers_lock);
    if (consumer_find(idstr, instance_id)) {
        g_rw_lock_writer_unlock(&consumers_lock);
        error_setg(errp, "multifd: device state of '%s' instance %u has a "
                   "consumer already", idstr, instance_id);
        return false;
    }
    if (!consumers) {
        consumers = g_ptr_array_new_with_free_func(consumer_free);
    }
    dc = g_new0(DeviceStateConsumer, 1);
    dc->idstr = g_strdup(idstr);
    dc->instance_id = instance_id;
    dc->load = load;
    dc->opaque = opaque;
    g_ptr_array_add(consumers, dc);
    g_rw_lock_writer_unlock(&consumers_lock);
    return true;
}

void multifd_device_state_consumer_del(const char *idstr,
                                       uint32_t instance_id)
{
    DeviceStateConsumer *dc;

    g_rw_lock_writer_lock(&consumers_lock);
    dc = consumer_find(idstr, instance_id);
    if (dc) {
        g_ptr_array_remove_fast(consumers, dc);
    }
    if (consumers && !consumers->len) {
        g_ptr_array_free(consumers, true);
        consumers = NULL;
    }
    g_rw_lock_writer_unlock(&consumers_lock);
}

/* See multifd_device_state_gate_open(). */
typedef enum {
    GATE_ARMED,         /* hold packets: the loader is setting up */
    GATE_OPEN,          /* deliver */
    GATE_SHUT,          /* the load is over: deliver (to no consumer) */
} GateState;

static GMutex gate_lock;
static GCond gate_cond;
static GateState gate_state;

static void gate_set(GateState state)
{
    static const char *const names[] = { "armed", "open", "shut" };

    trace(multifd_device_state_gate, "%s", state < G_N_ELEMENTS(names) ?
          names[state] : "?");
    g_mutex_lock(&gate_lock);
    gate_state = state;
    g_cond_broadcast(&gate_cond);
    g_mutex_unlock(&gate_lock);
}

void multifd_device_state_gate_arm(void)
{
    gate_set(GATE_ARMED);
}

void multifd_device_state_gate_open(void)
{
    gate_set(GATE_OPEN);
}

void multifd_device_state_gate_shut(void)
{
    gate_set(GATE_SHUT);
}

/* Hold a packet until the loader has set every device up, or gave up. */
static void gate_wait(void)
{
    g_mutex_lock(&gate_lock);
    while (gate_state == GATE_ARMED) {
        g_cond_wait(&gate_cond, &gate_lock);
    }
    g_mutex_unlock(&gate_lock);
}

static bool device_recv(MultiFDRecvChannel *c, uint32_t payload_size,
                        Error **errp)
{
    uint8_t *m = c->meta;
    char idstr[MULTIFD_DEVICE_IDSTR_MAX + 1];
    g_autofree uint8_t *packet = NULL;
    uint32_t instance_id, idlen, packet_len;
    DeviceStateConsumer *dc;
    bool ok;

    if (payload_size < MULTIFD_DEVICE_FIXED_LEN) {
        error_setg(errp, "device state packet payload of %u bytes is shorter "
                   "than its fixed part (%u)", payload_size,
                   MULTIFD_DEVICE_FIXED_LEN);
        return false;
    }
    if (!multifd_read_full(c->ch, m, MULTIFD_DEVICE_FIXED_LEN, errp)) {
        return false;
    }
    instance_id = multifd_get_be32(m);
    idlen = m[4];
    if (idlen < 1) {
        error_setg(errp, "device state packet has an empty device id");
        return false;
    }
    if (payload_size - MULTIFD_DEVICE_FIXED_LEN < idlen +
        MULTIFD_DEVICE_STATE_HDR_LEN) {
        error_setg(errp, "device state packet payload of %u bytes is too "
                   "short for a %u-byte id and the %u-byte packet header",
                   payload_size, idlen, MULTIFD_DEVICE_STATE_HDR_LEN);
        return false;
    }
    packet_len = payload_size - MULTIFD_DEVICE_FIXED_LEN - idlen;
    if (packet_len > MULTIFD_DEVICE_STATE_MAX_PACKET) {
        error_setg(errp, "device state packet of %u bytes exceeds the limit "
                   "of %llu", packet_len, MULTIFD_DEVICE_STATE_MAX_PACKET);
        return false;
    }
    if (!multifd_read_full(c->ch, idstr, idlen, errp)) {
        return false;
    }
    if (memchr(idstr, '\0', idlen)) {
        error_setg(errp, "device state packet id contains a NUL byte");
        return false;
    }
    idstr[idlen] = '\0';
    packet = g_malloc(packet_len);
    if (!multifd_read_full(c->ch, packet, packet_len, errp)) {
        return false;
    }

    trace(multifd_device_state_recv, "'%s' instance %u: %u bytes", idstr,
          instance_id, packet_len);
    gate_wait();
    g_rw_lock_reader_lock(&consumers_lock);
    dc = consumer_find(idstr, instance_id);
    if (!dc) {
        g_autofree char *name = qemu_escape_str(idstr);

        g_rw_lock_reader_unlock(&consumers_lock);
        error_setg(errp, "device state packet for '%s' instance %u, which "
                   "has no consumer", name, instance_id);
        return false;
    }
    ok = dc->load(dc->opaque, &packet, packet_len, errp);
    g_rw_lock_reader_unlock(&consumers_lock);
    if (!ok) {
        error_prepend(errp, "device state of '%s' instance %u: ", idstr,
                      instance_id);
    }
    return ok;
}

/* Device state is never compressed: it is mostly device-specific data. */
const MultiFDPayloadOps multifd_device_state_ops = {
    .name = "device state",
    .max_payload = MULTIFD_DEVICE_META_MAX + MULTIFD_DEVICE_STATE_MAX_PACKET,
    .send_prepare = device_send_prepare,
    .recv = device_recv,
};
