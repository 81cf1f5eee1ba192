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

/*
 * Data bytes per multifd packet.  The device hands out pieces of 256
 * KiB; gathering several lets the destination's single MIG_DATA_WRITE
 * call keep several messages in flight to its server, which is where
 * the load thread spends its time.
 */
#define VFIO_MULTIFD_PACKET_DATA (4ULL << 20)

static OnOffAuto multifd_transfer_prop(VFIODevice *vdev)
{
    return __atomic_load_n(&vdev->migration_multifd_transfer,
                           __ATOMIC_RELAXED);
}

bool vfio_multifd_transfer_enabled(VFIODevice *vdev)
{
    return migrate_multifd() && multifd_transfer_prop(vdev) != ON_OFF_AUTO_OFF;
}

bool vfio_multifd_transfer_check(VFIODevice *vdev, Error **errp)
{
    if (multifd_transfer_prop(vdev) == ON_OFF_AUTO_ON && !migrate_multifd()) {
        error_setg(errp, "%s: x-migration-multifd-transfer=on needs the "
                   "multifd capability", vdev->name);
        return false;
    }
    return true;
}

/* ---- Source: the save thread ---- */

typedef struct MultifdSink {
    VFIOMigration *m;
    SaveLiveCompletePrecopyThreadData *d;
    uint32_t idx;
    uint8_t *buf;               /* VFIO_MULTIFD_PACKET_DATA bytes */
    size_t used;
} MultifdSink;

static bool multifd_sink_flush(MultifdSink *s, Error **errp)
{
    if (!s->used) {
        return true;
    }
    if (s->idx == UINT32_MAX - 1) {
        /* idx UINT32_MAX is invalid, and the config needs one more. */
        error_setg(errp, "%s: too many device state packets",
                   s->m->vdev->name);
        return false;
    }
    if (!multifd_queue_device_state(s->d->idstr, s->d->instance_id, s->idx,
                                    0, s->buf, s->used, errp)) {
        return false;
    }
    __atomic_fetch_add(&s->m->bytes_transferred, s->used, __ATOMIC_RELAXED);
    s->idx++;
    s->used = 0;
    return true;
}

/* Gathers the device's pieces into packets of VFIO_MULTIFD_PACKET_DATA. */
static bool multifd_sink(void *opaque, const void *data, size_t len,
                         Error **errp)
{
    MultifdSink *s = opaque;

    while (len) {
        size_t n = MIN(len, VFIO_MULTIFD_PACKET_DATA - s->used);

        memcpy(s->buf + s->used, data, n);
        s->used += n;
        data = (const uint8_t *)data + n;
        len -= n;
        if (s->used == VFIO_MULTIFD_PACKET_DATA &&
            !multifd_sink_flush(s, errp)) {
            return false;
        }
    }
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
    g_autofree uint8_t *buf = NULL;
    MultifdSink sink = { .m = m, .d = d };
    uint8_t config[VFIO_MIG_CONFIG_SIZE];
    int64_t total;

    if (!m->multifd_transfer) {
        return true;
    }
    if (!vfio_mig_enter_stop_copy(m, errp)) {
        return false;
    }
    buf = g_malloc(VFIO_MULTIFD_PACKET_DATA);
    sink.buf = buf;
    total = vfio_mig_drain_to_end(m, multifd_sink, &sink, errp);
    if (total < 0 ||
        !multifd_sink_flush(&sink, errp) ||
        !vfio_mig_read_config(m, config, errp) ||
        !multifd_queue_device_state(d->idstr, d->instance_id, sink.idx,
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

bool vfio_multifd_load_state_buffer(void *opaque, const uint8_t *buf,
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
    return multifd_state_queue_insert(q, buf, len, errp);
}

/* One data packet into the device. */
static bool load_packet(VFIOMigration *m, const MultiFDStatePacket *pkt,
                        Error **errp)
{
    VFIODevice *vdev = m->vdev;

    if (pkt->len && !vdev->io_ops->mig_data_write(vdev, pkt->data, pkt->len,
                                                  errp)) {
        error_prepend(errp, "%s: writing device state packet %u: ",
                      vdev->name, pkt->idx);
        return false;
    }
    __atomic_fetch_add(&m->bytes_transferred, pkt->len, __ATOMIC_RELAXED);
    return true;
}

/*
 * The load thread: the packets in idx order into the device, the
 * config state (the CONFIG_STATE packet) last.
 */
static bool vfio_load_thread(void *opaque, Error **errp)
{
    VFIOMigration *m = opaque;
    uint64_t total = 0;
    unsigned packets = 0;

    for (;;) {
        MultiFDStatePacket pkt;
        bool ok;

        if (!multifd_state_queue_take_next(m->load_queue, &pkt, errp)) {
            return false;
        }
        if (pkt.flags & MULTIFD_DEVICE_STATE_CONFIG_STATE) {
            ok = vfio_mig_load_config_buf(m, pkt.data, pkt.len, errp) == 0;
            g_free(pkt.data);
            trace(vfio_load_data, "%s: %" PRIu64 " bytes in %u multifd "
                  "packets, then the config state: %s", m->vdev->name, total,
                  packets, ok ? "loaded" : "failed");
            return ok;
        }
        ok = load_packet(m, &pkt, errp);
        g_free(pkt.data);
        if (!ok) {
            return false;
        }
        total += pkt.len;
        packets++;
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

    qemu_loadvm_start_load_thread(name, vfio_load_thread,
                                  vfio_load_thread_abort, m);
}
