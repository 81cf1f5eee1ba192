/*
 * The destination: listen, load the stream on the incoming thread, talk
 * back on the return path, then start the VM (or fail cleanly).
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/main-loop.h"
#include "monitor/qmp.h"
#include "system/runstate.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "migration/tls.h"
#include "migration/multifd.h"
#include "migration/ram.h"
#include "migration/migration.h"
#include "migration/savevm.h"
#include "migration/postcopy-ram.h"
#include "migration/trace.h"

/*
 * Fields by owner: the main thread (BQL) creates and frees the struct
 * and owns listener, thread, exit_on_error; the incoming thread owns
 * from_src (replaced under rp_lock, which migrate-pause takes);
 * rp_lock guards to_src, the switchover-ack fields and the recovery
 * fields (recover_cond signals them); status and the times are atomics
 * read by query-migrate.
 */
struct MigrationIncomingState {
    int status;
    MigListener *listener;
    MigCancel *cancel;
    GThread *thread;
    bool exit_on_error;
    QEMUFile *from_src;
    GMutex rp_lock;
    QEMUFile *to_src;
    unsigned ack_pending;
    bool ack_sent;
    Error *error;
    Error *multifd_error;       /* rp_lock: the first multifd failure */
    bool load_ended;            /* rp_lock: later multifd failures are noise */
    bool prepared;              /* incoming thread: RAM cleared, layer set */
    bool multifd;               /* incoming thread: the layer is set up */
    bool postcopy_ran;          /* atomic: the VM was started at RUN */
    GCond recover_cond;
    MigListener *recover_listener;  /* migrate-recover's */
    Error *pause_error;         /* why postcopy paused, for error-desc */
    bool stopping;              /* vmig exits: stop waiting for recovery */
    GThread *accept_thread;     /* multifd channels after the main one */
    bool accept_done;           /* atomic */
    int64_t start_ms;
    int64_t total_time_ms;
};

static MigrationIncomingState *current_incoming;
static bool incoming_autostart = true;

void migration_incoming_set_autostart(bool autostart)
{
    incoming_autostart = autostart;
}

bool migration_incoming_in_progress(void)
{
    MigrationIncomingState *mis = current_incoming;

    return mis && !migration_status_is_terminal(
        __atomic_load_n(&mis->status, __ATOMIC_SEQ_CST));
}

bool migration_incoming_is_loading(void)
{
    MigrationIncomingState *mis = current_incoming;

    MigrationStatus st;

    if (!mis) {
        return false;
    }
    st = __atomic_load_n(&mis->status, __ATOMIC_SEQ_CST);
    return st != MIGRATION_STATUS_SETUP && !migration_status_is_terminal(st);
}

static void incoming_set_state(MigrationIncomingState *mis,
                               MigrationStatus new)
{
    MigrationStatus old = __atomic_exchange_n(&mis->status, new,
                                              __ATOMIC_SEQ_CST);

    trace(incoming_set_state, "%s -> %s", migration_status_name(old),
          migration_status_name(new));
    migration_emit_status(new);
}

/* ---- return path (destination side) ---- */

static bool rp_send_locked(MigrationIncomingState *mis, MigRpMessage type,
                           const void *data, uint16_t len, Error **errp)
{
    if (!mis->to_src) {
        error_setg(errp, "return path: not open (the source did not ask "
                   "for one)");
        return false;
    }
    qemu_put_be16(mis->to_src, type);
    qemu_put_be16(mis->to_src, len);
    qemu_put_buffer(mis->to_src, data, len);
    if (qemu_fflush(mis->to_src) < 0) {
        qemu_file_check(mis->to_src, errp);
        error_prepend(errp, "return path: ");
        return false;
    }
    return true;
}

bool migration_incoming_rp_send(MigrationIncomingState *mis, MigRpMessage type,
                                const void *data, uint16_t len, Error **errp)
{
    bool ok;

    g_mutex_lock(&mis->rp_lock);
    ok = rp_send_locked(mis, type, data, len, errp);
    g_mutex_unlock(&mis->rp_lock);
    return ok;
}

/* rp_lock held: send the ack once nothing is pending any more. */
static void maybe_send_ack_locked(MigrationIncomingState *mis)
{
    Error *err = NULL;

    if (!migrate_switchover_ack() || mis->ack_sent || mis->ack_pending ||
        !mis->to_src) {
        return;
    }
    mis->ack_sent = true;
    if (!rp_send_locked(mis, MIG_RP_MSG_SWITCHOVER_ACK, NULL, 0, &err)) {
        /* The source sees the broken channel and fails the migration. */
        warn_report("%s", error_get_pretty(err));
        error_free(err);
    }
}

bool migration_incoming_rp_open(MigrationIncomingState *mis, Error **errp)
{
    MigChannel *ch;

    if (mis->to_src) {
        error_setg(errp, "return path: opened twice");
        return false;
    }
    ch = mig_channel_dup(qemu_file_channel(mis->from_src), errp);
    if (!ch) {
        error_prepend(errp, "return path: ");
        return false;
    }
    g_mutex_lock(&mis->rp_lock);
    mis->to_src = qemu_file_new_output(ch);
    maybe_send_ack_locked(mis);
    g_mutex_unlock(&mis->rp_lock);
    return true;
}

void migration_incoming_set_ack_needed(MigrationIncomingState *mis,
                                       unsigned count)
{
    g_mutex_lock(&mis->rp_lock);
    mis->ack_pending = count;
    mis->ack_sent = false;
    maybe_send_ack_locked(mis);
    g_mutex_unlock(&mis->rp_lock);
}

void migration_incoming_approve_switchover(void)
{
    MigrationIncomingState *mis = current_incoming;

    if (!mis) {
        return;
    }
    g_mutex_lock(&mis->rp_lock);
    if (mis->ack_pending) {
        mis->ack_pending--;
    }
    maybe_send_ack_locked(mis);
    g_mutex_unlock(&mis->rp_lock);
}

MigCancel *migration_incoming_current_cancel(void)
{
    return current_incoming ? current_incoming->cancel : NULL;
}

MigCancel *migration_incoming_cancel(MigrationIncomingState *mis)
{
    return mis->cancel;
}

void migration_incoming_load_ended(MigrationIncomingState *mis)
{
    g_mutex_lock(&mis->rp_lock);
    mis->load_ended = true;
    g_mutex_unlock(&mis->rp_lock);
}

/* ---- postcopy ---- */

MigListener *migration_incoming_listener(MigrationIncomingState *mis)
{
    return mis->recover_listener ? mis->recover_listener : mis->listener;
}

QEMUFile *migration_incoming_from_src(MigrationIncomingState *mis)
{
    return mis->from_src;
}

bool migration_incoming_rp_send_bitmap(MigrationIncomingState *mis,
                                       const char *idstr, uint64_t bits,
                                       const unsigned long *map, Error **errp)
{
    uint8_t hdr[1 + 255 + 8];
    size_t idlen = strlen(idstr);
    bool ok = false;

    hdr[0] = idlen;
    memcpy(hdr + 1, idstr, idlen);
    stl_be(hdr + 1 + idlen, bits >> 32);
    stl_be(hdr + 5 + idlen, bits);
    g_mutex_lock(&mis->rp_lock);
    if (!mis->to_src) {
        error_setg(errp, "return path: not open");
    } else {
        /* The length covers the header; the bitmap's words follow. */
        qemu_put_be16(mis->to_src, MIG_RP_MSG_RECV_BITMAP);
        qemu_put_be16(mis->to_src, 1 + idlen + 8);
        qemu_put_buffer(mis->to_src, hdr, 1 + idlen + 8);
        for (uint64_t w = 0; w < BITS_TO_LONGS(bits); w++) {
            qemu_put_be64(mis->to_src, map[w]);
        }
        ok = qemu_fflush(mis->to_src) == 0;
        if (!ok) {
            qemu_file_check(mis->to_src, errp);
            error_prepend(errp, "return path: ");
        }
    }
    g_mutex_unlock(&mis->rp_lock);
    return ok;
}

/* Main thread: error-desc while paused or recovering. */
static void incoming_query_pause(MigrationIncomingState *mis,
                                 JsonObject *obj)
{
    g_mutex_lock(&mis->rp_lock);
    if (mis->pause_error) {
        json_object_set_string_member(obj, "error-desc",
                                      error_get_pretty(mis->pause_error));
    }
    g_mutex_unlock(&mis->rp_lock);
}

bool migration_incoming_postcopy_pause(MigrationIncomingState *mis,
                                       Error *reason)
{
    QEMUFile *old;

    trace(postcopy_pause, "destination: %s", error_get_pretty(reason));
    error_report("postcopy paused: %s", error_get_pretty(reason));
    g_mutex_lock(&mis->rp_lock);
    error_free(mis->pause_error);
    mis->pause_error = reason;
    if (mis->to_src) {
        qemu_fclose(mis->to_src);
        mis->to_src = NULL;
    }
    old = mis->from_src;
    mis->from_src = NULL;
    g_mutex_unlock(&mis->rp_lock);
    qemu_fclose(old);
    incoming_set_state(mis, MIGRATION_STATUS_POSTCOPY_PAUSED);

    for (;;) {
        MigChannel *ch;
        QEMUFile *f;
        uint8_t theirs[16], ours[16];
        Error *err = NULL;

        g_mutex_lock(&mis->rp_lock);
        while (!mis->recover_listener && !mis->stopping) {
            g_cond_wait(&mis->recover_cond, &mis->rp_lock);
        }
        g_mutex_unlock(&mis->rp_lock);
        if (mis->stopping) {
            return false;
        }
        ch = mig_listener_accept(mis->recover_listener, mis->cancel, &err);
        if (!ch) {
            error_free(err);
            return false;       /* cancelled: vmig exits */
        }
        f = qemu_file_new_input(ch);
        if (!migration_tls_server(ch, &err)) {
            error_report("postcopy recovery: %s", error_get_pretty(err));
            error_free(err);
            qemu_fclose(f);
            continue;
        }
        if (qemu_get_be32(f) != MIG_RESUME_MAGIC ||
            !qemu_get_buffer(f, theirs, sizeof(theirs)) ||
            !qemu_loadvm_stream_uuid(ours) || memcmp(ours, theirs, 16)) {
            if (qemu_file_check(f, &err)) {
                error_setg(&err, "not a resume of this migration");
            }
            error_report("postcopy recovery: %s", error_get_pretty(err));
            error_free(err);
            qemu_fclose(f);
            continue;
        }
        ch = mig_channel_dup(ch, &err);
        if (!ch) {
            error_report("postcopy recovery: %s", error_get_pretty(err));
            error_free(err);
            qemu_fclose(f);
            continue;
        }
        incoming_set_state(mis, MIGRATION_STATUS_POSTCOPY_RECOVER);
        g_mutex_lock(&mis->rp_lock);
        mis->from_src = f;
        mis->to_src = qemu_file_new_output(ch);
        g_mutex_unlock(&mis->rp_lock);
        return true;
    }
}

void migration_incoming_postcopy_resumed(MigrationIncomingState *mis)
{
    g_mutex_lock(&mis->rp_lock);
    error_free(mis->pause_error);
    mis->pause_error = NULL;
    g_mutex_unlock(&mis->rp_lock);
    incoming_set_state(mis, MIGRATION_STATUS_POSTCOPY_ACTIVE);
}

void migration_incoming_stream_broke(MigrationIncomingState *mis,
                                     const Error *err)
{
    error_report("%s", error_get_pretty(err));
    g_mutex_lock(&mis->rp_lock);
    if (mis->from_src) {
        mig_channel_shutdown(qemu_file_channel(mis->from_src));
    }
    g_mutex_unlock(&mis->rp_lock);
}

bool migration_incoming_pause(Error **errp)
{
    MigrationIncomingState *mis = current_incoming;
    MigrationStatus st = mis ? __atomic_load_n(&mis->status, __ATOMIC_SEQ_CST)
                             : MIGRATION_STATUS_NONE;

    if (st != MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        error_setg(errp, "migrate-pause is for a migration in status "
                   "postcopy-active (it is '%s')", migration_status_name(st));
        return false;
    }
    /* The loader sees the broken link and pauses. */
    g_mutex_lock(&mis->rp_lock);
    if (mis->from_src) {
        mig_channel_shutdown(qemu_file_channel(mis->from_src));
    }
    g_mutex_unlock(&mis->rp_lock);
    return true;
}

bool migration_incoming_recover(const MigrationAddress *addr, Error **errp)
{
    MigrationIncomingState *mis = current_incoming;
    MigrationStatus st = mis ? __atomic_load_n(&mis->status, __ATOMIC_SEQ_CST)
                             : MIGRATION_STATUS_NONE;
    MigListener *l;

    trace(postcopy_recover, "destination: status %s",
          migration_status_name(st));

    if (st != MIGRATION_STATUS_POSTCOPY_PAUSED) {
        error_setg(errp, "migrate-recover is for an incoming migration in "
                   "status postcopy-paused (it is '%s')",
                   migration_status_name(st));
        return false;
    }
    if (addr->type != MIGRATION_ADDRESS_TCP &&
        addr->type != MIGRATION_ADDRESS_UNIX) {
        error_setg(errp, "migrate-recover needs a tcp: or unix: address, "
                   "not %s:", migration_address_type_name(addr->type));
        return false;
    }
    if (mis->recover_listener) {
        g_autofree char *where = mig_listener_describe(mis->recover_listener);

        error_setg(errp, "migrate-recover: already listening on %s", where);
        return false;
    }
    l = mig_listener_new(addr, errp);
    if (!l) {
        return false;
    }
    g_mutex_lock(&mis->rp_lock);
    mis->recover_listener = l;
    g_cond_broadcast(&mis->recover_cond);
    g_mutex_unlock(&mis->rp_lock);
    incoming_set_state(mis, MIGRATION_STATUS_POSTCOPY_RECOVER_SETUP);
    return true;
}

void migration_incoming_postcopy_listen(MigrationIncomingState *mis)
{
    incoming_set_state(mis, MIGRATION_STATUS_POSTCOPY_ACTIVE);
}

/*
 * Main thread, once the VM's state is loaded: as in QEMU, a VM that ran
 * on the source runs here unless -S or stop said otherwise (then
 * paused); a VM that did not run (paused, or prelaunch after -S) stays
 * in the source's state.
 */
static void incoming_start_vm(void)
{
    RunState src = global_state_source_runstate();

    if (src != RUN_STATE_RUNNING) {
        runstate_set(src);
    } else if (incoming_autostart) {
        vm_start();
    } else {
        runstate_set(RUN_STATE_PAUSED);
    }
}

/* Main thread: the package is loaded, the VM runs while RAM arrives. */
static void incoming_postcopy_run_bh(void *opaque)
{
    incoming_start_vm();
}

void migration_incoming_postcopy_run(MigrationIncomingState *mis)
{
    __atomic_store_n(&mis->postcopy_ran, true, __ATOMIC_SEQ_CST);
    main_loop_call(incoming_postcopy_run_bh, mis);
}

/* ---- the incoming thread ---- */

static void incoming_finish_bh(void *opaque)
{
    MigrationIncomingState *mis = opaque;
    bool ok = !mis->error;

    g_thread_join(mis->thread);
    mis->thread = NULL;
    mig_listener_free(mis->listener);
    mis->listener = NULL;
    mig_cancel_free(mis->cancel);
    mis->cancel = NULL;
    mis->total_time_ms = get_clock_ms() - mis->start_ms;
    trace(incoming_finish, "%s after %" PRId64 " ms", ok ? "loaded" : "failed",
          mis->total_time_ms);
    if (!ok) {
        error_report("incoming migration failed: %s",
                     error_get_pretty(mis->error));
        incoming_set_state(mis, MIGRATION_STATUS_FAILED);
        if (mis->exit_on_error) {
            main_loop_request_exit(1);
        }
        return;
    }
    incoming_set_state(mis, MIGRATION_STATUS_COMPLETED);
    if (mis->postcopy_ran) {
        return;     /* running (or paused) since RUN */
    }
    incoming_start_vm();
}

/* A multifd receive thread failed: stop the loader, keep the reason. */
static void incoming_multifd_error(void *opaque, const Error *err)
{
    MigrationIncomingState *mis = opaque;

    g_mutex_lock(&mis->rp_lock);
    /*
     * Once the loader has returned, channels fail only because the load
     * is being torn down (a packet for a device whose consumer is gone):
     * that must not replace the reason the load ended with.
     */
    if (!mis->multifd_error && !mis->load_ended) {
        mis->multifd_error = error_copy(err);
        error_prepend(&mis->multifd_error, "multifd: ");
    }
    g_mutex_unlock(&mis->rp_lock);
    mig_cancel_fire(mis->cancel);
}

static bool incoming_multifd_setup(MigrationIncomingState *mis, Error **errp)
{
    MultiFDParams params;

    migrate_multifd_params(&params);
    params.error_notify = incoming_multifd_error;
    params.error_opaque = mis;
    /* The UUID is checked against the main stream's at each flush. */
    if (!multifd_recv_setup(NULL, &params, mis->cancel, errp)) {
        return false;
    }
    mis->multifd = true;
    return true;
}

/*
 * Accept one connection.  With multifd, a connection that starts with a
 * channel hello goes to the multifd layer; *@main is set for the main
 * stream.  Returns false on failure.
 */
static bool incoming_accept_one(MigrationIncomingState *mis, MigChannel **main,
                                Error **errp)
{
    uint8_t hello[MULTIFD_HELLO_PEEK_LEN];
    MigChannel *ch = mig_listener_accept(mis->listener, mis->cancel, errp);

    *main = NULL;
    if (!ch) {
        return false;
    }
    if (!migration_tls_server(ch, errp)) {
        mig_channel_close(ch);
        return false;
    }
    /*
     * Capabilities may change while we only listen: they count from the
     * first connection.  RAM is cleared before any channel may write it.
     */
    if (!mis->prepared) {
        /* mapped-ram reads pages from the file itself: no channels. */
        if (!ram_load_prepare(errp) ||
            (migrate_multifd() && !migrate_mapped_ram() &&
             !incoming_multifd_setup(mis, errp))) {
            mig_channel_close(ch);
            return false;
        }
        mis->prepared = true;
    }
    if (!mis->multifd) {
        *main = ch;
        return true;
    }
    if (!mig_channel_peek(ch, hello, sizeof(hello), errp)) {
        mig_channel_close(ch);
        return false;
    }
    if (!multifd_is_channel_hello(hello)) {
        trace(incoming_channel, "main stream");
        *main = ch;
        return true;
    }
    trace(incoming_channel, "a multifd channel");
    /* The layer owns the channel from here on, also on failure. */
    return multifd_recv_new_channel(ch, NULL, 0, errp);
}

/* The multifd channels that connect after the main stream. */
static gpointer incoming_accept_thread(gpointer opaque)
{
    MigrationIncomingState *mis = opaque;
    Error *err = NULL;

    while (!multifd_recv_all_channels_connected()) {
        MigChannel *main = NULL;

        if (!incoming_accept_one(mis, &main, &err)) {
            break;
        }
        if (main) {
            error_setg(&err, "a second main stream connected");
            mig_channel_close(main);
            break;
        }
    }
    if (err) {
        incoming_multifd_error(mis, err);
        error_free(err);
    }
    __atomic_store_n(&mis->accept_done, true, __ATOMIC_SEQ_CST);
    return NULL;
}

static gpointer incoming_thread(gpointer opaque)
{
    MigrationIncomingState *mis = opaque;
    MigChannel *ch = NULL;
    Error *err = NULL;
    uint8_t value[4];
    int ret = -EIO;

    while (!ch) {
        if (!incoming_accept_one(mis, &ch, &err)) {
            goto out;
        }
    }
    if (mis->multifd) {
        mis->accept_thread = g_thread_new("mig/accept",
                                          incoming_accept_thread, mis);
    }
    mis->from_src = qemu_file_new_input(ch);
    incoming_set_state(mis, MIGRATION_STATUS_ACTIVE);
    ret = qemu_loadvm_state(mis->from_src, mis, &err);

out:
    /* Tell the source how it went; SHUT(0) also ends its downtime. */
    stl_be(value, ret < 0 ? 1 : 0);
    g_mutex_lock(&mis->rp_lock);
    if (mis->to_src) {
        rp_send_locked(mis, MIG_RP_MSG_SHUT, value, sizeof(value), NULL);
        qemu_fclose(mis->to_src);
        mis->to_src = NULL;
    }
    g_mutex_unlock(&mis->rp_lock);
    if (mis->accept_thread) {
        if (!__atomic_load_n(&mis->accept_done, __ATOMIC_SEQ_CST)) {
            mig_cancel_fire(mis->cancel);
        }
        g_thread_join(mis->accept_thread);
        mis->accept_thread = NULL;
    }
    if (mis->multifd) {
        multifd_recv_shutdown();
        mis->multifd = false;
    }
    qemu_fclose(mis->from_src);
    mis->from_src = NULL;
    /* A failed channel explains a load that was cancelled because of it. */
    if (ret < 0 && mis->multifd_error) {
        error_free(err);
        err = mis->multifd_error;
        mis->multifd_error = NULL;
    }
    mis->error = err;
    main_loop_call(incoming_finish_bh, mis);
    return NULL;
}

static void incoming_free(MigrationIncomingState *mis)
{
    if (!mis) {
        return;
    }
    mig_listener_free(mis->listener);
    mig_listener_free(mis->recover_listener);
    mig_cancel_free(mis->cancel);
    error_free(mis->error);
    error_free(mis->multifd_error);
    error_free(mis->pause_error);
    g_cond_clear(&mis->recover_cond);
    g_mutex_clear(&mis->rp_lock);
    g_free(mis);
}

void migration_incoming_shutdown(void)
{
    MigrationIncomingState *mis = current_incoming;

    if (!mis) {
        return;
    }
    if (mis->thread) {
        g_mutex_lock(&mis->rp_lock);
        mis->stopping = true;
        g_cond_broadcast(&mis->recover_cond);
        g_mutex_unlock(&mis->rp_lock);
        mig_cancel_fire(mis->cancel);
        /* load_cleanup takes the BQL; the final bh never runs. */
        bql_unlock();
        g_thread_join(mis->thread);
        bql_lock();
        mis->thread = NULL;
    }
    /* vCPUs still waiting for pages after a failed postcopy wake up. */
    postcopy_incoming_cleanup();
    current_incoming = NULL;
    incoming_free(mis);
}

bool migration_incoming_start_addr(const MigrationAddress *addr,
                                   bool exit_on_error, Error **errp)
{
    MigrationIncomingState *mis;

    if (addr->type == MIGRATION_ADDRESS_DEFER) {
        error_setg(errp, "'defer' is not an address to listen on");
        return false;
    }
    if (!migrate_check_address_type(addr->type, errp) ||
        !migration_tls_check_transport(addr, errp)) {
        return false;
    }
    if (runstate_get() != RUN_STATE_INMIGRATE) {
        error_setg(errp, "an incoming migration needs '-incoming defer' (the "
                   "VM is '%s')", runstate_name(runstate_get()));
        return false;
    }
    if (migration_incoming_in_progress()) {
        error_setg(errp, "an incoming migration is already in progress");
        return false;
    }
    if (current_incoming && current_incoming->thread) {
        error_setg(errp, "the previous incoming migration is still ending");
        return false;
    }
    mis = g_new0(MigrationIncomingState, 1);
    g_mutex_init(&mis->rp_lock);
    g_cond_init(&mis->recover_cond);
    mis->exit_on_error = exit_on_error;
    mis->cancel = mig_cancel_new(errp);
    if (!mis->cancel) {
        goto fail;
    }
    mig_cancel_set_timeout(mis->cancel, migrate_channel_timeout());
    mis->listener = mig_listener_new(addr, errp);
    if (!mis->listener) {
        goto fail;
    }
    incoming_free(current_incoming);
    current_incoming = mis;
    mis->start_ms = get_clock_ms();
    incoming_set_state(mis, MIGRATION_STATUS_SETUP);
    mis->thread = g_thread_new("mig/dst", incoming_thread, mis);
    return true;

fail:
    incoming_free(mis);
    return false;
}

bool migration_incoming_start(const char *uri, Error **errp)
{
    MigrationAddress addr;
    bool ok;

    if (!migration_address_parse(uri, &addr, errp)) {
        return false;
    }
    ok = migration_incoming_start_addr(&addr, true, errp);
    migration_address_clear(&addr);
    return ok;
}

void migration_incoming_query(JsonObject *obj)
{
    MigrationIncomingState *mis = current_incoming;
    MigrationStatus st;

    if (!mis) {
        return;
    }
    st = __atomic_load_n(&mis->status, __ATOMIC_SEQ_CST);
    json_object_set_string_member(obj, "status", migration_status_name(st));
    if (mis->listener && mig_listener_socket_type(mis->listener)) {
        JsonArray *list = json_array_new();
        JsonObject *sock = json_object_new();
        const char *type = mig_listener_socket_type(mis->listener);

        json_object_set_string_member(sock, "type", type);
        if (!strcmp(type, "inet")) {
            json_object_set_string_member(sock, "host",
                                          mig_listener_host(mis->listener));
            json_object_set_string_member(sock, "port",
                mig_listener_port_or_path(mis->listener));
        } else {
            json_object_set_string_member(sock, "path",
                mig_listener_port_or_path(mis->listener));
        }
        json_array_add_object_element(list, sock);
        json_object_set_array_member(obj, "socket-address", list);
    }
    if (migration_status_is_terminal(st)) {
        json_object_set_int_member(obj, "total-time", mis->total_time_ms);
    }
    if (st == MIGRATION_STATUS_FAILED && mis->error) {
        json_object_set_string_member(obj, "error-desc",
                                      error_get_pretty(mis->error));
    }
    incoming_query_pause(mis, obj);
    postcopy_blocktime_query(obj);
}
