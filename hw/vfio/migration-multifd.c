/*
 * VFIO device state over the multifd channels (docs/devel/vfio-migration.rst,
 * "Multifd device state").
 *
 * Source: at the switchover each device gets a save thread that reads its
 * STOP_COPY data and queues {be32 version, be32 idx, be32 flags} + data
 * packets on the multifd channels, the last one (CONFIG_STATE) with the
 * config space.  Destination: the receive threads file the packets of a
 * device by idx in its MultiFDStateQueue; a load thread, started when
 * MIG_CMD_SWITCHOVER_START is loaded, writes them to the device in order
 * and loads the config last.
 *
 * Threads: as in vfio-migration-internal.h; the save thread owns the
 * device between the switchover stop and save_cleanup, the load thread
 * between switchover_start and load_cleanup.
 */
#include "qemu/osdep.h"
#include "migration-multifd.h"
#include "migration/options.h"

static OnOffAuto multifd_transfer_prop(VFIODevice *vdev)
{
    return __atomic_load_n(&vdev->migration_multifd_transfer,
                           __ATOMIC_RELAXED);
}

/* Multifd channels that carry packets: a mapped-ram file has none. */
static bool multifd_carries_packets(void)
{
    return migrate_multifd() && !migrate_mapped_ram();
}

bool vfio_multifd_transfer_enabled(VFIODevice *vdev)
{
    return multifd_carries_packets() &&
           multifd_transfer_prop(vdev) != ON_OFF_AUTO_OFF;
}

bool vfio_multifd_transfer_check(VFIODevice *vdev, Error **errp)
{
    if (multifd_transfer_prop(vdev) == ON_OFF_AUTO_ON &&
        !multifd_carries_packets()) {
        error_setg(errp, "%s: x-migration-multifd-transfer=on needs the "
                   "multifd capability, without mapped-ram", vdev->name);
        return false;
    }
    return true;
}

/* ---- Source: the save thread ---- */

typedef struct MultifdSink {
    VFIOMigration *m;
    SaveLiveCompletePrecopyThreadData *d;
    uint32_t idx;
} MultifdSink;

/*
 * Each piece the device hands out becomes one packet, queued straight
 * from the transport's receive buffer: the one copy (into the packet)
 * reads a piece still in the CPU cache.  Gathering pieces into bigger
 * packets first cost a second copy, from memory, that took more CPU
 * than the rest of the save thread.
 */
static bool multifd_sink(void *opaque, const void *data, size_t len,
                         Error **errp)
{
    MultifdSink *s = opaque;

    if (!len) {
        return true;
    }
    if (s->idx == UINT32_MAX - 1) {
        /* idx UINT32_MAX is invalid, and the config needs one more. */
        error_setg(errp, "%s: too many device state packets",
                   s->m->vdev->name);
        return false;
    }
    if (!multifd_queue_device_state(s->d->idstr, s->d->instance_id, s->idx,
                                    0, data, len, errp)) {
        return false;
    }
    __atomic_fetch_add(&s->m->bytes_transferred, len, __ATOMIC_RELAXED);
    s->idx++;
    return true;
}

/*
 * It runs next to the main channel's END and FULL sections (which are
 * empty for this device) and the other devices' threads.
 */
bool vfio_multifd_save_complete_precopy_thread(
    SaveLiveCompletePrecopyThreadData *d, Error **errp)
{
    VFIOMigration *m = d->handler_opaque;
    MultifdSink sink = { .m = m, .d = d };
    uint8_t config[VFIO_MIG_CONFIG_SIZE];
    int64_t total;

    if (!m->multifd_transfer) {
        return true;
    }
    trace(vfio_multifd_save_start, "%s: the save thread drains the device",
          m->vdev->name);
    if (!vfio_mig_enter_stop_copy(m, errp)) {
        return false;
    }
    total = vfio_mig_drain_to_end(m, multifd_sink, &sink, errp);
    if (total < 0) {
        return false;
    }
    vfio_mig_config_snapshot(m, config);
    if (!multifd_queue_device_state(d->idstr, d->instance_id, sink.idx,
                                    MULTIFD_DEVICE_STATE_CONFIG_STATE,
                                    config, sizeof(config), errp)) {
        return false;
    }
    trace(vfio_save_complete, "%s: %" PRId64 " bytes of stop-copy data in %u "
          "multifd packets, config in packet %u", m->vdev->name, total,
          sink.idx, sink.idx);
    return true;
}

/* ---- Destination: the packet queue and the load thread ---- */

void vfio_multifd_load_setup(VFIOMigration *m)
{
    VFIODevice *vdev = m->vdev;

    __atomic_store_n(&m->load_queue, multifd_state_queue_new(
                         vdev->name, vdev->migration_max_queued_buffers_size,
                         NULL),
                     __ATOMIC_RELEASE);
}

void vfio_multifd_load_cleanup(VFIOMigration *m)
{
    multifd_state_queue_free(m->load_queue);
    m->load_queue = NULL;
}

bool vfio_multifd_load_state_buffer(void *opaque, uint8_t **buf,
                                    size_t len, Error **errp)
{
    VFIOMigration *m = opaque;
    MultiFDStateQueue *q = __atomic_load_n(&m->load_queue, __ATOMIC_ACQUIRE);

    if (!q) {
        error_setg(errp, "%s: device state arrived over multifd, but "
                   "x-migration-multifd-transfer is off here (both sides "
                   "must agree)", m->vdev->name);
        return false;
    }
    trace(vfio_multifd_packet, "%s: %zu bytes queued", m->vdev->name, len);
    return multifd_state_queue_take_buffer(q, buf, len, errp);
}

/*
 * The load thread writes the data packets that are in, up to this many
 * at a time, as one pipelined write: several messages stay in flight to
 * the server across packet boundaries, however small the packets are.
 */
#define VFIO_LOAD_BATCH 16

typedef struct LoadBatch {
    MultiFDStatePacket pkt[VFIO_LOAD_BATCH];
    unsigned n;
} LoadBatch;

/* Wait for the next packet, then take those right behind it that are in. */
static bool load_batch_take(VFIOMigration *m, LoadBatch *b, Error **errp)
{
    b->n = 0;
    if (!multifd_state_queue_take_next(m->load_queue, &b->pkt[0], errp)) {
        return false;
    }
    b->n = 1;
    while (b->n < VFIO_LOAD_BATCH &&
           !(b->pkt[b->n - 1].flags & MULTIFD_DEVICE_STATE_CONFIG_STATE) &&
           multifd_state_queue_take_ready(m->load_queue, &b->pkt[b->n])) {
        b->n++;
    }
    return true;
}

/* The batch's data packets into the device. */
static bool load_batch_data(VFIOMigration *m, LoadBatch *b, uint64_t *bytes,
                            Error **errp)
{
    VFIODevice *vdev = m->vdev;
    struct iovec iov[VFIO_LOAD_BATCH];
    unsigned cnt = 0;
    size_t len = 0;

    *bytes = 0;
    for (unsigned i = 0; i < b->n; i++) {
        if (!(b->pkt[i].flags & MULTIFD_DEVICE_STATE_CONFIG_STATE)) {
            iov[cnt++] = (struct iovec) { b->pkt[i].data, b->pkt[i].len };
            len += b->pkt[i].len;
        }
    }
    if (cnt && !vdev->io_ops->mig_data_writev(vdev, iov, cnt, errp)) {
        error_prepend(errp, "%s: writing device state packets %u-%u: ",
                      vdev->name, b->pkt[0].idx, b->pkt[0].idx + cnt - 1);
        return false;
    }
    __atomic_fetch_add(&m->bytes_transferred, len, __ATOMIC_RELAXED);
    *bytes = len;
    return true;
}

/*
 * The load thread: the packets in idx order into the device, the
 * config state (the CONFIG_STATE packet) last.
 */
static bool vfio_load_thread(void *opaque, Error **errp)
{
    VFIOMigration *m = opaque;
    uint64_t total = 0, bytes;
    unsigned packets = 0;
    LoadBatch b;

    for (;;) {
        MultiFDStatePacket *last;
        bool ok;

        if (!load_batch_take(m, &b, errp)) {
            return false;
        }
        last = &b.pkt[b.n - 1];
        ok = load_batch_data(m, &b, &bytes, errp);
        total += bytes;
        packets += b.n;
        if (ok && (last->flags & MULTIFD_DEVICE_STATE_CONFIG_STATE)) {
            ok = vfio_mig_load_config_buf(m, last->data, last->len,
                                          errp) == 0;
            trace(vfio_load_data, "%s: %" PRIu64 " bytes in %u multifd "
                  "packets, then the config state: %s", m->vdev->name,
                  total, packets - 1, ok ? "loaded" : "failed");
            if (ok) {
                last = NULL;    /* done */
            }
        }
        for (unsigned i = 0; i < b.n; i++) {
            multifd_state_packet_free(&b.pkt[i]);
        }
        if (!ok || !last) {
            return ok;
        }
    }
}

static void vfio_load_thread_abort(void *opaque, const Error *reason)
{
    VFIOMigration *m = opaque;

    multifd_state_queue_abort(m->load_queue, reason);
}

/* Every pre-copy block is in the device: the packets may follow now. */
void vfio_multifd_switchover_start(VFIOMigration *m)
{
    g_autofree char *name = g_strdup_printf("%s load", m->vdev->name);

    trace(vfio_multifd_load_start, "%s: the load thread starts",
          m->vdev->name);
    qemu_loadvm_start_load_thread(name, vfio_load_thread,
                                  vfio_load_thread_abort, m);
}
