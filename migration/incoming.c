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
#include "migration/multifd.h"
#include "migration/ram.h"
#include "migration/migration.h"
#include "migration/savevm.h"
#include "migration/postcopy-ram.h"
#include "migration/trace.h"

/*
 * Fields by owner: the main thread (BQL) creates and frees the struct
 * and owns listener, thread, exit_on_error; the incoming thread owns
 * from_src; rp_lock guards to_src and the switchover-ack fields; status
 * and the times are atomics read by query-migrate.
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
    Error *multifd_error;       /* rp_lock: the first failure of a channel
                                 * besides the main one (multifd, preempt) */
    bool load_ended;            /* rp_lock: later multifd failures are noise */
    bool prepared;              /* incoming thread: RAM cleared, layer set */
    bool multifd;               /* incoming thread: the layer is set up */
    bool postcopy_ran;          /* atomic: the VM was started at RUN */
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
    return st == MIGRATION_STATUS_ACTIVE ||
           st == MIGRATION_STATUS_POSTCOPY_ACTIVE;
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
    return mis->listener;
}

void migration_incoming_channel_error(MigrationIncomingState *mis,
                                      const Error *err)
{
    g_mutex_lock(&mis->rp_lock);
    if (!mis->multifd_error && !mis->load_ended) {
        mis->multifd_error = error_copy(err);
    }
    g_mutex_unlock(&mis->rp_lock);
    mig_cancel_fire(mis->cancel);
}

void migration_incoming_postcopy_listen(MigrationIncomingState *mis)
{
    incoming_set_state(mis, MIGRATION_STATUS_POSTCOPY_ACTIVE);
}

/* Main thread: the package is loaded, the VM runs while RAM arrives. */
static void incoming_postcopy_run_bh(void *opaque)
{
    if (incoming_autostart && global_state_source_was_running()) {
        vm_start();
    } else {
        runstate_set(RUN_STATE_PAUSED);
    }
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
    if (!ok) {
        /*
         * After RUN the guest ran here with part of its RAM: vCPUs that
         * touch a missing page wait for good (RAM stays registered).
         */
        if (mis->postcopy_ran) {
            error_prepend(&mis->error, "postcopy failed after the switch: "
                          "the guest cannot go on without the pages still "
                          "on the source (%" PRIu64 " arrived since): ",
                          postcopy_pages_received());
        }
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
    if (incoming_autostart && global_state_source_was_running()) {
        vm_start();
    } else {
        runstate_set(RUN_STATE_PAUSED);
    }
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
        *main = ch;
        return true;
    }
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
    mig_cancel_free(mis->cancel);
    error_free(mis->error);
    error_free(mis->multifd_error);
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
    if (!migrate_check_address_type(addr->type, errp)) {
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
    mis->exit_on_error = exit_on_error;
    mis->cancel = mig_cancel_new(errp);
    if (!mis->cancel) {
        goto fail;
    }
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
    postcopy_blocktime_query(obj);
}
