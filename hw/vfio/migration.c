/*
 * VFIO device live migration: SaveVMHandlers over the migration v2
 * device FSM (docs/devel/vfio-migration.rst).
 *
 * Source: save_setup puts the device in PRE_COPY when it has it and the
 * VM runs; save_live_iterate reads at most 1 MiB per step while the VM
 * runs; the VM stop for the switchover moves the device to STOP_COPY,
 * save_live_complete_precopy drains it (END section) and save_state
 * sends the config space (FULL section), and save_cleanup takes it to
 * STOP after the downtime.  With multifd transfer, a save thread per
 * device does the draining and sends the config as the last packet.
 * Destination: load_setup puts the device in RESUMING, load_state (or,
 * with multifd transfer, the device's load thread) writes the data to
 * it, and the config state, loaded last, ends RESUMING, so that a device
 * that rejects the stream fails the load rather than the VM start.
 *
 * The device state follows the VM through a change-state handler, via
 * the P2P states first when every device has them.  Transitions are
 * taken one arc at a time (vus_mig_next_state: shortest path, no saving
 * state inside a path), so that every state is traced and reported.
 * The multifd part (save threads, packet queues, load threads) is in
 * migration-multifd.c; VFIOMigration and its threads are described in
 * vfio-migration-internal.h.
 */
#include "qemu/osdep.h"
#include "migration/timeline.h"
#include "migration-multifd.h"
#include "hw/vfio/vfio-migration.h"
#include "migration/register.h"
#include "migration/options.h"
#include "monitor/qmp.h"
#include "qapi/qapi-types.h"
#include "system/runstate.h"
#include "vfio-user-server/libvus.h"

#define VFIO_MIG_SECTION_VERSION 1
/* Assumed stop-copy size of a device that cannot tell (QEMU's figure). */
#define VFIO_MIG_DEFAULT_STOP_COPY_SIZE (100ULL << 20)
/* The largest data block a destination accepts. */
#define VFIO_MIG_MAX_BLOCK (64ULL << 20)

/* Every device with a VFIOMigration; changed with the BQL held. */
static GPtrArray *vfio_migrations;

static const char *const state_event_names[VFIO_DEVICE_STATE_NR] = {
    [VFIO_DEVICE_STATE_ERROR] = "error",
    [VFIO_DEVICE_STATE_STOP] = "stop",
    [VFIO_DEVICE_STATE_RUNNING] = "running",
    [VFIO_DEVICE_STATE_STOP_COPY] = "stop-copy",
    [VFIO_DEVICE_STATE_RESUMING] = "resuming",
    [VFIO_DEVICE_STATE_RUNNING_P2P] = "running-p2p",
    [VFIO_DEVICE_STATE_PRE_COPY] = "pre-copy",
    [VFIO_DEVICE_STATE_PRE_COPY_P2P] = "pre-copy-p2p",
};

const char *vfio_mig_state_event_name(uint32_t state)
{
    return state < VFIO_DEVICE_STATE_NR ? state_event_names[state]
                                        : "unknown";
}

uint64_t vfio_migration_bytes_transferred(void)
{
    uint64_t total = 0;

    for (unsigned i = 0; vfio_migrations && i < vfio_migrations->len; i++) {
        VFIOMigration *m = g_ptr_array_index(vfio_migrations, i);

        total += __atomic_load_n(&m->bytes_transferred, __ATOMIC_RELAXED);
    }
    return total;
}

bool vfio_migration_active(void)
{
    for (unsigned i = 0; vfio_migrations && i < vfio_migrations->len; i++) {
        VFIOMigration *m = g_ptr_array_index(vfio_migrations, i);

        if (m->supported) {
            return true;
        }
    }
    return false;
}

static uint32_t mig_state(VFIOMigration *m);
static void vfio_migration_query_device(VFIOMigration *m, JsonObject *dev);

JsonObject *vfio_migration_query(void)
{
    JsonObject *vfio;
    JsonArray *devices;

    if (!vfio_migration_active()) {
        return NULL;
    }
    vfio = json_object_new();
    devices = json_array_new();
    json_object_set_int_member(vfio, "transferred",
                               vfio_migration_bytes_transferred());
    for (unsigned i = 0; i < vfio_migrations->len; i++) {
        VFIOMigration *m = g_ptr_array_index(vfio_migrations, i);
        JsonObject *dev;

        if (!m->supported) {
            continue;
        }
        dev = json_object_new();
        json_object_set_string_member(dev, "id", m->vdev->id);
        vfio_migration_query_device(m, dev);
        json_array_add_object_element(devices, dev);
    }
    json_object_set_array_member(vfio, "devices", devices);
    return vfio;
}

static void vfio_migration_query_device(VFIOMigration *m, JsonObject *dev)
{
    json_object_set_string_member(dev, "device-state",
                                  vfio_mig_state_event_name(mig_state(m)));
    json_object_set_string_member(dev, "dirty-tracking",
                                  vfio_dirty_mode_name(m->vdev));
    json_object_set_int_member(dev, "transferred",
        __atomic_load_n(&m->bytes_transferred, __ATOMIC_RELAXED));
}

/*
 * x-query-vfio: every VFIO device, migratable or not, at any time (HMP's
 * "info vfio"): its transport, whether it can migrate (and why not), and
 * with migration its device state, dirty tracking and bytes so far.
 */
void qmp_x_query_vfio(JsonNode **ret, Error **errp)
{
    JsonObject *obj = json_object_new();
    JsonArray *devices = json_array_new();

    for (unsigned i = 0; i < vfio_device_count(); i++) {
        VFIODevice *vdev = vfio_device_nth(i);
        JsonObject *dev = json_object_new();
        g_autofree char *transport = g_strndup(vdev->name,
                                               strcspn(vdev->name, " "));

        json_object_set_string_member(dev, "id", vdev->id);
        json_object_set_string_member(dev, "transport", transport);
        if (vdev->migration && vdev->migration->supported) {
            json_object_set_string_member(dev, "migration", "supported");
            vfio_migration_query_device(vdev->migration, dev);
        } else {
            json_object_set_string_member(dev, "migration", "blocked");
            if (vdev->migration_blocker) {
                json_object_set_string_member(dev, "blocker",
                    error_get_pretty(vdev->migration_blocker));
            }
        }
        json_array_add_object_element(devices, dev);
    }
    json_object_set_array_member(obj, "devices", devices);
    *ret = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(*ret, obj);
}

static uint32_t mig_state(VFIOMigration *m)
{
    return __atomic_load_n(&m->device_state, __ATOMIC_RELAXED);
}

static bool in_precopy(VFIOMigration *m)
{
    uint32_t s = mig_state(m);

    return s == VFIO_DEVICE_STATE_PRE_COPY ||
           s == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

/* P2P is used only when every migratable device has it. */
static bool all_devices_p2p(void)
{
    unsigned n = 0;

    for (unsigned i = 0; vfio_migrations && i < vfio_migrations->len; i++) {
        VFIOMigration *m = g_ptr_array_index(vfio_migrations, i);

        if (!m->supported) {
            continue;
        }
        if (!(m->mig_flags & VFIO_MIGRATION_P2P)) {
            return false;
        }
        n++;
    }
    return n > 0;
}

/* ---- State transitions ---- */

static void mig_state_changed(VFIOMigration *m, uint32_t state)
{
    VFIODevice *vdev = m->vdev;
    uint32_t old = mig_state(m);

    __atomic_store_n(&m->device_state, state, __ATOMIC_RELAXED);
    trace(vfio_mig_state, "%s: %s -> %s", vdev->name,
          vfio_mig_state_event_name(old), vfio_mig_state_event_name(state));
    if (vdev->migration_events && old != state) {
        JsonObject *data = json_object_new();
        g_autofree char *path = object_get_canonical_path(vdev->owner);

        json_object_set_string_member(data, "device-id", vdev->id);
        json_object_set_string_member(data, "qom-path", path);
        json_object_set_string_member(data, "device-state",
                                      vfio_mig_state_event_name(state));
        qmp_event_emit("VFIO_MIGRATION", data);
    }
}

/*
 * After a load, the first arc into a running state writes the command
 * register that the source's config state brought.
 */
static bool mig_restore_config(VFIOMigration *m, Error **errp)
{
    VFIODevice *vdev = m->vdev;
    uint32_t s = mig_state(m);
    uint8_t config[VFIO_MIG_CONFIG_SIZE];

    if (!m->config_restore_pending || (s != VFIO_DEVICE_STATE_RUNNING &&
                                       s != VFIO_DEVICE_STATE_RUNNING_P2P)) {
        return true;
    }
    m->config_restore_pending = false;
    vfio_device_config_snapshot(vdev, config);
    if (!vfio_device_region_write(vdev, VFIO_PCI_CONFIG_REGION_INDEX, 4,
                                  &config[4], 2, errp)) {
        error_prepend(errp, "%s: restoring the command register: ",
                      vdev->name);
        return false;
    }
    return true;
}

/* Step towards @target one arc at a time; on failure the device is in
 * the state read back from it. */
static bool mig_step_to(VFIOMigration *m, uint32_t target, Error **errp)
{
    VFIODevice *vdev = m->vdev;

    while (mig_state(m) != target) {
        uint32_t from = mig_state(m), now;
        int next = vus_mig_next_state(m->mig_flags, from, target);
        Error *err = NULL;
        int64_t t0;

        if (next < 0) {
            error_setg(errp, "%s: no path from %s to %s", vdev->name,
                       vfio_mig_state_event_name(from),
                       vfio_mig_state_event_name(target));
            return false;
        }
        t0 = get_clock_ns();
        if (vdev->io_ops->mig_set_state(vdev, next, &err)) {
            trace(vfio_mig_arc, "%s: %s -> %s in %" PRId64 " us", vdev->name,
                  vfio_mig_state_event_name(from),
                  vfio_mig_state_event_name(next),
                  (get_clock_ns() - t0) / 1000);
            mig_timeline_device_arc(vdev->id, vfio_mig_state_event_name(from),
                                    vfio_mig_state_event_name(next),
                                    __atomic_load_n(&m->bytes_transferred,
                                                    __ATOMIC_RELAXED));
            mig_state_changed(m, next);
            if (!mig_restore_config(m, errp)) {
                return false;
            }
            continue;
        }
        trace(vfio_mig_state_fail, "%s: %s -> %s: %s", vdev->name,
              vfio_mig_state_event_name(from),
              vfio_mig_state_event_name(next), error_get_pretty(err));
        error_setg(errp, "%s: device state %s -> %s failed: %s", vdev->name,
                   vfio_mig_state_event_name(from),
                   vfio_mig_state_event_name(next), error_get_pretty(err));
        error_free(err);
        if (vdev->io_ops->mig_get_state(vdev, &now, NULL) &&
            now < VFIO_DEVICE_STATE_NR) {
            mig_state_changed(m, now);
        } else {
            mig_state_changed(m, VFIO_DEVICE_STATE_ERROR);
        }
        return false;
    }
    return true;
}

/* A reset is the only way out of ERROR (and out of RESUMING, cleanly). */
static void mig_reset(VFIOMigration *m)
{
    VFIODevice *vdev = m->vdev;
    Error *err = NULL;
    uint32_t now;

    if (!vdev->io_ops->reset(vdev, &err)) {
        error_report("%s: reset after a failed transition: %s", vdev->name,
                     error_get_pretty(err));
        error_free(err);
        return;
    }
    if (vdev->io_ops->mig_get_state(vdev, &now, NULL) &&
        now < VFIO_DEVICE_STATE_NR) {
        mig_state_changed(m, now);
    } else {
        mig_state_changed(m, VFIO_DEVICE_STATE_RUNNING);
    }
}

/*
 * Go to @target.  When that fails, try to get back to @recover, and
 * reset the device when even that is impossible; @errp says what failed
 * first.
 */
static bool mig_set_state(VFIOMigration *m, uint32_t target,
                          uint32_t recover, Error **errp)
{
    if (mig_step_to(m, target, errp)) {
        return true;
    }
    if (mig_state(m) == VFIO_DEVICE_STATE_ERROR ||
        !mig_step_to(m, recover, NULL)) {
        mig_reset(m);
    }
    return false;
}

/* ---- The VM's run state ---- */

static void vfio_vmstate_prepare(void *opaque, bool running, RunState state)
{
    VFIOMigration *m = opaque;
    uint32_t cur = mig_state(m), target;
    Error *err = NULL;

    if (!m->supported || !all_devices_p2p()) {
        return;
    }
    if (running) {
        if (cur != VFIO_DEVICE_STATE_STOP) {
            return;
        }
        target = VFIO_DEVICE_STATE_RUNNING_P2P;
    } else if (cur == VFIO_DEVICE_STATE_RUNNING) {
        target = VFIO_DEVICE_STATE_RUNNING_P2P;
    } else if (cur == VFIO_DEVICE_STATE_PRE_COPY) {
        target = VFIO_DEVICE_STATE_PRE_COPY_P2P;
    } else {
        return;
    }
    trace(vfio_vmstate_change, "%s: prepare %s (%s)", m->vdev->name,
          running ? "run" : "stop", runstate_name(state));
    if (!mig_set_state(m, target, cur, &err)) {
        vm_state_notify_fail(EIO, err);
    }
}

static void vfio_vmstate_change(void *opaque, bool running, RunState state)
{
    VFIOMigration *m = opaque;
    uint32_t cur = mig_state(m), target;
    Error *err = NULL;

    if (!m->supported) {
        return;
    }
    if (running) {
        target = VFIO_DEVICE_STATE_RUNNING;
    } else if (state == RUN_STATE_FINISH_MIGRATE && m->save_active) {
        /* The downtime starts: the device gives up its final state. */
        target = VFIO_DEVICE_STATE_STOP_COPY;
    } else {
        target = VFIO_DEVICE_STATE_STOP;
    }
    if (cur == target) {
        return;
    }
    trace(vfio_vmstate_change, "%s: %s (%s): %s -> %s", m->vdev->name,
          running ? "run" : "stop", runstate_name(state),
          vfio_mig_state_event_name(cur), vfio_mig_state_event_name(target));
    if (mig_set_state(m, target, cur, &err)) {
        return;
    }
    if (running) {
        error_report_err(err);
        return;
    }
    /* vm_stop_err() hands it to the caller: the migration names us. */
    vm_state_notify_fail(EIO, err);
}

/* ---- Source ---- */

static bool vfio_save_prepare(void *opaque, Error **errp)
{
    VFIOMigration *m = opaque;
    VFIODevice *vdev = m->vdev;
    unsigned n = 0;
    const char *no_p2p = NULL;

    if (vdev->migration_blocker) {
        error_setg(errp, "%s", error_get_pretty(vdev->migration_blocker));
        return false;
    }
    /* As in QEMU: after the switch a device could DMA into missing RAM. */
    if (migrate_postcopy_ram()) {
        error_setg(errp, "%s: VFIO migration is not supported with postcopy "
                   "(capability 'postcopy-ram'): the device could DMA into "
                   "guest RAM that has not arrived yet", vdev->name);
        return false;
    }
    if (!vfio_multifd_transfer_check(vdev, errp)) {
        return false;
    }
    for (unsigned i = 0; i < vfio_migrations->len; i++) {
        VFIOMigration *other = g_ptr_array_index(vfio_migrations, i);

        if (!other->supported) {
            continue;
        }
        n++;
        if (!(other->mig_flags & VFIO_MIGRATION_P2P) && !no_p2p) {
            no_p2p = other->vdev->name;
        }
    }
    if (n > 1 && no_p2p) {
        error_setg(errp, "%s: %u VFIO devices would migrate but %s does not "
                   "support the P2P states: several devices can only "
                   "migrate when all of them do", vdev->name, n, no_p2p);
        return false;
    }
    return true;
}

static void refresh_stop_copy_size(VFIOMigration *m)
{
    VFIODevice *vdev = m->vdev;
    uint64_t size;

    if (vdev->io_ops->mig_data_size &&
        vdev->io_ops->mig_data_size(vdev, &size, NULL)) {
        m->stop_copy_size = size;
    } else {
        m->stop_copy_size = VFIO_MIG_DEFAULT_STOP_COPY_SIZE;
    }
}

static void refresh_precopy_info(VFIOMigration *m)
{
    VFIODevice *vdev = m->vdev;
    uint64_t init, dirty;

    if (in_precopy(m) && vdev->io_ops->mig_precopy_info &&
        vdev->io_ops->mig_precopy_info(vdev, &init, &dirty, NULL)) {
        m->precopy_init_size = init;
        m->precopy_dirty_size = dirty;
    }
}

/* The initial bytes are out: tell the destination (switchover-ack). */
static void maybe_send_init_data_sent(VFIOMigration *m, QEMUFile *f)
{
    if (migrate_switchover_ack() && !m->initial_data_sent &&
        m->precopy_init_size == 0) {
        qemu_put_be64(f, VFIO_MIG_FLAG_DEV_INIT_DATA_SENT);
        m->initial_data_sent = true;
        trace(vfio_save_iterate, "%s: initial data sent", m->vdev->name);
    }
}

static int vfio_save_setup(QEMUFile *f, void *opaque, Error **errp)
{
    VFIOMigration *m = opaque;
    VFIODevice *vdev = m->vdev;
    uint32_t cur = mig_state(m);

    m->save_active = true;
    m->multifd_transfer = vfio_multifd_transfer_enabled(vdev);
    m->initial_data_sent = false;
    m->precopy_init_size = m->precopy_dirty_size = 0;
    __atomic_store_n(&m->bytes_transferred, 0, __ATOMIC_RELAXED);

    qemu_put_be64(f, VFIO_MIG_FLAG_DEV_SETUP_STATE);
    refresh_stop_copy_size(m);
    if (m->mig_flags & VFIO_MIGRATION_PRE_COPY) {
        if (cur == VFIO_DEVICE_STATE_RUNNING ||
            cur == VFIO_DEVICE_STATE_RUNNING_P2P) {
            uint32_t target = cur == VFIO_DEVICE_STATE_RUNNING ?
                VFIO_DEVICE_STATE_PRE_COPY : VFIO_DEVICE_STATE_PRE_COPY_P2P;

            if (!mig_set_state(m, target, cur, errp)) {
                return -EIO;
            }
            if (vdev->io_ops->mig_precopy_info) {
                refresh_precopy_info(m);
            } else {
                /* Unknown: count one step's worth until a drain ends. */
                m->precopy_init_size = VFIO_MIG_ITERATE_MAX;
            }
        } else {
            /*
             * A stopped VM has nothing to pre-copy: the initial data is
             * trivially sent, so a switchover-ack destination may ack.
             */
            maybe_send_init_data_sent(m, f);
        }
    }
    qemu_put_be64(f, VFIO_MIG_FLAG_END_OF_STATE);
    trace(vfio_save_setup, "%s: state %s, stop-copy size %" PRIu64
          ", initial %" PRIu64 ", dirty %" PRIu64 ", %s", vdev->name,
          vfio_mig_state_event_name(mig_state(m)), m->stop_copy_size,
          m->precopy_init_size, m->precopy_dirty_size,
          m->multifd_transfer ? "multifd" : "main channel");
    return qemu_file_get_error(f);
}

static void vfio_state_pending_estimate(void *opaque, uint64_t *must_precopy)
{
    VFIOMigration *m = opaque;

    if (!in_precopy(m)) {
        return;
    }
    *must_precopy += m->precopy_init_size + m->precopy_dirty_size;
    trace(vfio_state_pending, "%s: estimate initial %" PRIu64 " dirty %"
          PRIu64, m->vdev->name, m->precopy_init_size,
          m->precopy_dirty_size);
}

static void vfio_state_pending_exact(void *opaque, uint64_t *must_precopy)
{
    VFIOMigration *m = opaque;

    refresh_stop_copy_size(m);
    *must_precopy += m->stop_copy_size;
    if (in_precopy(m)) {
        refresh_precopy_info(m);
        *must_precopy += m->precopy_init_size + m->precopy_dirty_size;
    }
    trace(vfio_state_pending, "%s: exact stop-copy %" PRIu64 " initial %"
          PRIu64 " dirty %" PRIu64, m->vdev->name, m->stop_copy_size,
          m->precopy_init_size, m->precopy_dirty_size);
}

static bool vfio_is_active(void *opaque)
{
    VFIOMigration *m = opaque;

    return m->supported;
}

static bool vfio_is_active_iterate(void *opaque)
{
    return in_precopy(opaque);
}

typedef struct SaveSink {
    VFIOMigration *m;
    QEMUFile *f;
} SaveSink;

/* Each piece the device hands out becomes one DEV_DATA_STATE block. */
static bool save_sink(void *opaque, const void *data, size_t len,
                      Error **errp)
{
    SaveSink *s = opaque;

    if (!len) {
        return true;
    }
    qemu_put_be64(s->f, VFIO_MIG_FLAG_DEV_DATA_STATE);
    qemu_put_be64(s->f, len);
    /* Out before the transport reuses @data: no copy into the stream. */
    qemu_put_buffer_borrowed(s->f, data, len);
    qemu_fflush(s->f);
    __atomic_fetch_add(&s->m->bytes_transferred, len, __ATOMIC_RELAXED);
    return qemu_file_check(s->f, errp);
}

/* Read the device until it has nothing more to give: its STOP_COPY end. */
int64_t vfio_mig_drain_to_end(VFIOMigration *m, VFIOMigDataSink *sink,
                              void *opaque, Error **errp)
{
    VFIODevice *vdev = m->vdev;
    int64_t total = 0;
    bool end = false;

    while (!end) {
        int64_t n = vdev->io_ops->mig_data_drain(vdev, UINT64_MAX, sink,
                                                 opaque, &end, errp);

        if (n < 0) {
            error_prepend(errp, "%s: reading device state: ", vdev->name);
            return -1;
        }
        total += n;
    }
    return total;
}

static int64_t save_drain(VFIOMigration *m, QEMUFile *f, uint64_t max,
                          bool *end)
{
    VFIODevice *vdev = m->vdev;
    SaveSink sink = { .m = m, .f = f };
    Error *err = NULL;
    int64_t n;

    n = vdev->io_ops->mig_data_drain(vdev, max, save_sink, &sink, end, &err);
    if (n < 0) {
        error_prepend(&err, "%s: reading device state: ", vdev->name);
        qemu_file_set_error(f, -EIO, err);
    }
    return n;
}

static int vfio_save_live_iterate(QEMUFile *f, void *opaque)
{
    VFIOMigration *m = opaque;
    VFIODevice *vdev = m->vdev;
    bool end = false;
    int64_t n;

    n = save_drain(m, f, VFIO_MIG_ITERATE_MAX, &end);
    if (n < 0) {
        return -EIO;
    }
    if (vdev->io_ops->mig_precopy_info) {
        refresh_precopy_info(m);
    } else if (end) {
        m->precopy_init_size = m->precopy_dirty_size = 0;
    }
    maybe_send_init_data_sent(m, f);
    qemu_put_be64(f, VFIO_MIG_FLAG_END_OF_STATE);
    trace(vfio_save_iterate, "%s: %" PRId64 " bytes%s, initial %" PRIu64
          " dirty %" PRIu64, vdev->name, n, end ? " (end for now)" : "",
          m->precopy_init_size, m->precopy_dirty_size);
    if (qemu_file_get_error(f)) {
        return qemu_file_get_error(f);
    }
    return end || !(m->precopy_init_size + m->precopy_dirty_size) ? 1 : 0;
}

G_STATIC_ASSERT(VFIO_MIG_CONFIG_SIZE == sizeof(((VFIODevice *)0)->config));

void vfio_mig_config_snapshot(VFIOMigration *m,
                              uint8_t config[VFIO_MIG_CONFIG_SIZE])
{
    vfio_device_config_snapshot(m->vdev, config);
}

/* From a paused VM, the device never went through the switchover stop. */
bool vfio_mig_enter_stop_copy(VFIOMigration *m, Error **errp)
{
    return mig_state(m) == VFIO_DEVICE_STATE_STOP_COPY ||
           mig_set_state(m, VFIO_DEVICE_STATE_STOP_COPY, mig_state(m), errp);
}

/*
 * Within the downtime, on the main channel: the rest of the device data,
 * then DEV_CONFIG_LOAD_READY, which tells the destination that every
 * data block is in and the config state (the FULL section that follows)
 * may be loaded.  With multifd transfer the save thread does all this
 * and the section is empty.
 */
static int vfio_save_complete_precopy(QEMUFile *f, void *opaque)
{
    VFIOMigration *m = opaque;
    SaveSink sink = { .m = m, .f = f };
    Error *err = NULL;
    int64_t total;

    if (m->multifd_transfer) {
        qemu_put_be64(f, VFIO_MIG_FLAG_END_OF_STATE);
        return qemu_file_get_error(f);
    }
    if (!vfio_mig_enter_stop_copy(m, &err) ||
        (total = vfio_mig_drain_to_end(m, save_sink, &sink, &err)) < 0) {
        qemu_file_set_error(f, -EIO, err);
        return -EIO;
    }
    qemu_put_be64(f, VFIO_MIG_FLAG_DEV_CONFIG_LOAD_READY);
    qemu_put_be64(f, VFIO_MIG_FLAG_END_OF_STATE);
    trace(vfio_save_complete, "%s: %" PRId64 " bytes of stop-copy data",
          m->vdev->name, total);
    return qemu_file_get_error(f);
}

/* The FULL section: the config space, after every END section. */
static int vfio_save_state(QEMUFile *f, void *opaque, Error **errp)
{
    VFIOMigration *m = opaque;
    uint8_t config[VFIO_MIG_CONFIG_SIZE];

    if (!m->multifd_transfer) {
        vfio_mig_config_snapshot(m, config);
        qemu_put_be64(f, VFIO_MIG_FLAG_DEV_CONFIG_STATE);
        qemu_put_be64(f, sizeof(config));
        qemu_put_buffer(f, config, sizeof(config));
        trace(vfio_save_state, "%s: config space", m->vdev->name);
    }
    qemu_put_be64(f, VFIO_MIG_FLAG_END_OF_STATE);
    return qemu_file_check(f, errp) ? 0 : -EIO;
}

static void vfio_save_cleanup(void *opaque)
{
    VFIOMigration *m = opaque;
    uint32_t cur = mig_state(m), target = cur;
    Error *err = NULL;

    /* Outside the downtime: leave the saving states. */
    if (cur == VFIO_DEVICE_STATE_STOP_COPY) {
        target = VFIO_DEVICE_STATE_STOP;
    } else if (cur == VFIO_DEVICE_STATE_PRE_COPY) {
        target = VFIO_DEVICE_STATE_RUNNING;
    } else if (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P) {
        target = VFIO_DEVICE_STATE_RUNNING_P2P;
    }
    if (target != cur && !mig_set_state(m, target, cur, &err)) {
        error_report_err(err);
    }
    m->save_active = false;
    trace(vfio_save_cleanup, "%s: %s, %" PRIu64 " bytes sent", m->vdev->name,
          vfio_mig_state_event_name(mig_state(m)),
          __atomic_load_n(&m->bytes_transferred, __ATOMIC_RELAXED));
}

/* ---- Destination ---- */

static int vfio_load_setup(QEMUFile *f, void *opaque, Error **errp)
{
    VFIOMigration *m = opaque;
    VFIODevice *vdev = m->vdev;

    if (!m->supported) {
        error_setg(errp, "%s", vdev->migration_blocker ?
                   error_get_pretty(vdev->migration_blocker) :
                   "device cannot migrate");
        return -EINVAL;
    }
    m->load_done = false;
    m->switchover_ack_pending = false;
    m->switchover_started = false;
    m->config_load_ready = false;
    m->config_restore_pending = false;
    m->multifd_load = vfio_multifd_transfer_enabled(vdev);
    m->load_buf = g_malloc(VFIO_MIG_ITERATE_MAX);
    __atomic_store_n(&m->bytes_transferred, 0, __ATOMIC_RELAXED);
    if (!mig_set_state(m, VFIO_DEVICE_STATE_RESUMING, mig_state(m), errp)) {
        return -EIO;
    }
    if (m->multifd_load) {
        /* Packets may come before SWITCHOVER_START is read: queue them. */
        vfio_multifd_load_setup(m);
    }
    trace(vfio_load_setup, "%s: resuming, device state via %s", vdev->name,
          m->multifd_load ? "multifd" : "the main channel");
    return 0;
}

static bool vfio_switchover_ack_needed(void *opaque)
{
    VFIOMigration *m = opaque;

    m->switchover_ack_pending = m->supported &&
                                (m->mig_flags & VFIO_MIGRATION_PRE_COPY);
    return m->switchover_ack_pending;
}

static int load_data_block(VFIOMigration *m, QEMUFile *f, Error **errp)
{
    VFIODevice *vdev = m->vdev;
    uint64_t size = qemu_get_be64(f), left;

    if (!qemu_file_check(f, errp)) {
        return -EIO;
    }
    if (size > VFIO_MIG_MAX_BLOCK) {
        error_setg(errp, "%s: device state block of %" PRIu64 " bytes "
                   "(at most %llu)", vdev->name, size, VFIO_MIG_MAX_BLOCK);
        return -EINVAL;
    }
    for (left = size; left;) {
        size_t n = MIN(left, VFIO_MIG_ITERATE_MAX);
        struct iovec iov = { m->load_buf, n };

        if (!qemu_get_buffer(f, m->load_buf, n)) {
            qemu_file_check(f, errp);
            error_prepend(errp, "%s: device state block: ", vdev->name);
            return -EIO;
        }
        if (!vdev->io_ops->mig_data_writev(vdev, &iov, 1, errp)) {
            error_prepend(errp, "%s: writing device state: ", vdev->name);
            return -EIO;
        }
        left -= n;
    }
    __atomic_fetch_add(&m->bytes_transferred, size, __ATOMIC_RELAXED);
    trace(vfio_load_data, "%s: %" PRIu64 " bytes", vdev->name, size);
    return 0;
}

/*
 * The device's last step on the destination: check and apply the
 * config state, which ends RESUMING.  Incoming thread, or the load
 * thread with multifd.
 */
static bool check_config_len(VFIOMigration *m, uint64_t len, Error **errp)
{
    if (len != VFIO_MIG_CONFIG_SIZE) {
        error_setg(errp, "%s: config state of %" PRIu64 " bytes (expected "
                   "%u)", m->vdev->name, len, VFIO_MIG_CONFIG_SIZE);
        return false;
    }
    return true;
}

int vfio_mig_load_config_buf(VFIOMigration *m, const uint8_t *config,
                             uint64_t len, Error **errp)
{
    VFIODevice *vdev = m->vdev;

    if (!check_config_len(m, len, errp)) {
        return -EINVAL;
    }
    /* Vendor and device ID: the same kind of device on both sides. */
    if (memcmp(config, vdev->config, 4)) {
        error_setg(errp, "%s: the source device is %02x%02x:%02x%02x, this "
                   "one is %02x%02x:%02x%02x", vdev->name, config[1],
                   config[0], config[3], config[2], vdev->config[1],
                   vdev->config[0], vdev->config[3], vdev->config[2]);
        return -EINVAL;
    }
    /* The device's last section: it checks the stream it got now. */
    if (!mig_set_state(m, VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_RESUMING,
                       errp)) {
        return -EIO;
    }
    /*
     * The command register (memory / bus master enables) as the guest
     * left it: in vmig's copy now, in the device when it next runs (a
     * device may refuse region access until then).
     */
    g_mutex_lock(&vdev->config_lock);
    memcpy(&vdev->config[4], &config[4], 2);
    g_mutex_unlock(&vdev->config_lock);
    m->config_restore_pending = true;
    m->load_done = true;
    return 0;
}

static int load_config(VFIOMigration *m, QEMUFile *f, Error **errp)
{
    uint8_t config[VFIO_MIG_CONFIG_SIZE];
    uint64_t len = qemu_get_be64(f);

    if (!qemu_file_check(f, errp)) {
        return -EIO;
    }
    if (!check_config_len(m, len, errp)) {
        return -EINVAL;
    }
    if (!qemu_get_buffer(f, config, sizeof(config))) {
        qemu_file_check(f, errp);
        return -EIO;
    }
    return vfio_mig_load_config_buf(m, config, len, errp);
}

/*
 * Every PART section is loaded: the multifd packets may go into the
 * device now, in order, on a thread of the device's own.
 */
static int vfio_switchover_start(void *opaque, Error **errp)
{
    VFIOMigration *m = opaque;

    if (m->switchover_started) {
        /* A damaged stream: a second load thread would share the queue. */
        error_setg(errp, "%s: a second SWITCHOVER_START", m->vdev->name);
        return -EINVAL;
    }
    m->switchover_started = true;
    if (m->multifd_load) {
        vfio_multifd_switchover_start(m);
    }
    return 0;
}

static int vfio_load_state(QEMUFile *f, void *opaque, int version_id,
                           Error **errp)
{
    VFIOMigration *m = opaque;
    VFIODevice *vdev = m->vdev;
    /*
     * The section after DEV_CONFIG_LOAD_READY must bring the config.
     * (Never set with multifd transfer, whose load thread writes
     * load_done concurrently.)
     */
    bool config_due = m->config_load_ready && !m->load_done;

    for (;;) {
        uint64_t marker = qemu_get_be64(f);
        int ret = 0;

        if (!qemu_file_check(f, errp)) {
            error_prepend(errp, "%s: ", vdev->name);
            return -EIO;
        }
        trace(vfio_load_state, "%s: marker 0x%" PRIx64, vdev->name, marker);
        switch (marker) {
        case VFIO_MIG_FLAG_END_OF_STATE:
            if (config_due && !m->load_done) {
                error_setg(errp, "%s: the config state is missing after "
                           "DEV_CONFIG_LOAD_READY", vdev->name);
                return -EINVAL;
            }
            return 0;
        case VFIO_MIG_FLAG_DEV_SETUP_STATE:
            break;
        case VFIO_MIG_FLAG_DEV_DATA_STATE:
            /* First: the load thread owns the device (and load_done) now. */
            if (m->multifd_load && m->switchover_started) {
                error_setg(errp, "%s: device state on the main channel at "
                           "the switchover, but x-migration-multifd-transfer "
                           "makes this side expect it over multifd (both "
                           "sides must agree)", vdev->name);
                return -EINVAL;
            }
            if (m->load_done || m->config_load_ready) {
                error_setg(errp, "%s: device state after the %s", vdev->name,
                           m->load_done ? "config state"
                                        : "DEV_CONFIG_LOAD_READY marker");
                return -EINVAL;
            }
            ret = load_data_block(m, f, errp);
            break;
        case VFIO_MIG_FLAG_DEV_CONFIG_LOAD_READY:
            if (m->multifd_load || m->config_load_ready) {
                error_setg(errp, "%s: unexpected DEV_CONFIG_LOAD_READY%s",
                           vdev->name, m->multifd_load ?
                           " (the config state comes over multifd)" :
                           " (a second one)");
                return -EINVAL;
            }
            m->config_load_ready = true;
            break;
        case VFIO_MIG_FLAG_DEV_CONFIG_STATE:
            if (m->multifd_load) {
                error_setg(errp, "%s: config state on the main channel, but "
                           "x-migration-multifd-transfer makes this side "
                           "expect it over multifd (both sides must agree)",
                           vdev->name);
                return -EINVAL;
            }
            if (m->load_done) {
                error_setg(errp, "%s: a second config state", vdev->name);
                return -EINVAL;
            }
            /* Only after every data block: the config ends RESUMING. */
            if (!m->config_load_ready) {
                error_setg(errp, "%s: config state before "
                           "DEV_CONFIG_LOAD_READY", vdev->name);
                return -EINVAL;
            }
            ret = load_config(m, f, errp);
            break;
        case VFIO_MIG_FLAG_DEV_INIT_DATA_SENT:
            if (!m->switchover_ack_pending) {
                error_setg(errp, "%s: unexpected DEV_INIT_DATA_SENT (no "
                           "switchover-ack expected from this device)",
                           vdev->name);
                return -EINVAL;
            }
            m->switchover_ack_pending = false;
            qemu_loadvm_approve_switchover();
            break;
        default:
            error_setg(errp, "%s: unknown marker 0x%" PRIx64 " in the device "
                       "section", vdev->name, marker);
            return -EINVAL;
        }
        if (ret < 0) {
            return ret;
        }
    }
}

static int vfio_load_cleanup(void *opaque)
{
    VFIOMigration *m = opaque;

    /* A device left RESUMING with half a state: only a reset aborts it. */
    if (m->supported && !m->load_done &&
        mig_state(m) == VFIO_DEVICE_STATE_RESUMING) {
        mig_reset(m);
    }
    /* The core removed the consumer and joined the load thread already. */
    vfio_multifd_load_cleanup(m);
    g_clear_pointer(&m->load_buf, g_free);
    trace(vfio_load_cleanup, "%s: %s, %" PRIu64 " bytes loaded",
          m->vdev->name, vfio_mig_state_event_name(mig_state(m)),
          __atomic_load_n(&m->bytes_transferred, __ATOMIC_RELAXED));
    return 0;
}

static const SaveVMHandlers vfio_savevm_handlers = {
    .save_prepare = vfio_save_prepare,
    .save_setup = vfio_save_setup,
    .save_live_iterate = vfio_save_live_iterate,
    .state_pending_estimate = vfio_state_pending_estimate,
    .state_pending_exact = vfio_state_pending_exact,
    .is_active = vfio_is_active,
    .is_active_iterate = vfio_is_active_iterate,
    .switchover_ack_needed = vfio_switchover_ack_needed,
    .save_live_complete_precopy = vfio_save_complete_precopy,
    .save_live_complete_precopy_thread =
        vfio_multifd_save_complete_precopy_thread,
    .save_state = vfio_save_state,
    .save_cleanup = vfio_save_cleanup,
    .load_setup = vfio_load_setup,
    .load_state = vfio_load_state,
    .load_state_buffer = vfio_multifd_load_state_buffer,
    .switchover_start = vfio_switchover_start,
    .load_cleanup = vfio_load_cleanup,
};

/* ---- Set-up ---- */

bool vfio_migration_supported(VFIODevice *vdev)
{
    return vdev->migration && vdev->migration->supported &&
           !vdev->migration_blocker;
}

bool vfio_migration_device_running(VFIODevice *vdev)
{
    uint32_t s;

    if (!vdev->migration) {
        return true;
    }
    s = mig_state(vdev->migration);
    return s == VFIO_DEVICE_STATE_RUNNING || s == VFIO_DEVICE_STATE_PRE_COPY;
}

static bool migration_state_get(Object *obj, ObjectProperty *prop,
                                PropValue *val, Error **errp)
{
    VFIOMigration *m = prop->opaque;

    val->str = g_strdup(m->supported ?
                        vfio_mig_state_event_name(mig_state(m)) : "none");
    return true;
}

/* Why the device cannot migrate, under enable-migration=auto. */
static void set_blocker(VFIODevice *vdev, const char *why)
{
    error_setg(&vdev->migration_blocker, "%s: migration is blocked: %s",
               vdev->name, why);
}

bool vfio_migration_realize(VFIODevice *vdev, Error **errp)
{
    VFIOMigration *m = g_new0(VFIOMigration, 1);
    Error *err = NULL;
    uint32_t state;

    m->vdev = vdev;
    m->idstr = g_strdup_printf("vfio/%s", vdev->id);
    vdev->migration = m;

    if (vdev->enable_migration == ON_OFF_AUTO_OFF) {
        set_blocker(vdev, "enable-migration=off");
    } else if (!vdev->io_ops->mig_get_flags(vdev, &m->mig_flags, &err) ||
               !vdev->io_ops->mig_get_state(vdev, &state, &err)) {
        if (vdev->enable_migration == ON_OFF_AUTO_ON) {
            error_propagate(errp, err);
            error_prepend(errp, "%s: enable-migration=on but the device "
                          "cannot migrate: ", vdev->name);
            goto fail;
        }
        set_blocker(vdev, error_get_pretty(err));
        error_free(err);
    } else if (!(m->mig_flags & VFIO_MIGRATION_STOP_COPY)) {
        if (vdev->enable_migration == ON_OFF_AUTO_ON) {
            error_setg(errp, "%s: enable-migration=on but the device has no "
                       "STOP_COPY state", vdev->name);
            goto fail;
        }
        set_blocker(vdev, "the device has no STOP_COPY state");
    } else {
        m->supported = true;
        m->device_state = state < VFIO_DEVICE_STATE_NR ? state
                                                       : VFIO_DEVICE_STATE_ERROR;
        /* The FSM paths then never pass through the PRE_COPY states. */
        if (!vdev->allow_pre_copy) {
            m->mig_flags &= ~VFIO_MIGRATION_PRE_COPY;
        }
    }

    if (register_savevm_live(m->idstr, 0, VFIO_MIG_SECTION_VERSION,
                             &vfio_savevm_handlers, m) < 0) {
        error_setg(errp, "%s: a device with id '%s' already takes part in "
                   "migration", vdev->name, vdev->id);
        goto fail;
    }
    m->registered = true;
    m->vmstate = vm_change_state_add(vfio_vmstate_change,
                                     vfio_vmstate_prepare, m, 0);
    object_property_add(vdev->owner, "migration-state", PROP_TYPE_STR,
                        "the device's migration state (none: no migration)",
                        migration_state_get, NULL, m);
    if (!vfio_migrations) {
        vfio_migrations = g_ptr_array_new();
    }
    g_ptr_array_add(vfio_migrations, m);
    return true;

fail:
    vfio_migration_exit(vdev);
    return false;
}

void vfio_migration_exit(VFIODevice *vdev)
{
    VFIOMigration *m = vdev->migration;

    if (!m) {
        return;
    }
    if (vfio_migrations) {
        g_ptr_array_remove(vfio_migrations, m);
    }
    if (m->vmstate) {
        vm_change_state_del(m->vmstate);
    }
    if (m->registered) {
        unregister_savevm(m->idstr, 0);
    }
    vfio_multifd_load_cleanup(m);
    g_free(m->load_buf);
    g_free(m->idstr);
    g_free(m);
    vdev->migration = NULL;
    g_clear_pointer(&vdev->migration_blocker, error_free);
}
