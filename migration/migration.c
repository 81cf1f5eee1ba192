/*
 * The source's migration: state machine, migration thread, return path,
 * rate limiting, downtime, cancel and failure.
 *
 * Downtime is measured on the source from the moment the migration
 * thread calls vm_stop(RUN_STATE_FINISH_MIGRATE) to:
 *   - with the return path: the arrival of the destination's SHUT(0),
 *     which it sends once the whole stream is loaded and its load
 *     threads (multifd device state) have finished, just before it
 *     starts its VM;
 *   - without: the moment the last byte of the stream (EOF) has been
 *     handed to the transport.
 * It therefore includes the final dirty sync, the last RAM pages, every
 * device's state and, with the return path, the destination's load.
 */
#include "qemu/osdep.h"
#include "migration/timeline.h"
#include <signal.h>
#include "qemu/buffer-is-zero.h"
#include "qemu/cutils.h"
#include "qemu/main-loop.h"
#include "monitor/qmp.h"
#include "system/runstate.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "migration/tls.h"
#include "migration/multifd.h"
#include "migration/register.h"
#include "migration/migration.h"
#include "migration/savevm.h"
#include "migration/ram.h"
#include "migration/trace.h"

/* Length of a rate-limit / bandwidth measurement window. */
#define RATE_WINDOW_MS 100

static MigrationState current_migration;

MigrationState *migrate_get_current(void)
{
    return &current_migration;
}

static const char *const status_names[MIGRATION_STATUS__MAX] = {
    [MIGRATION_STATUS_NONE] = "none",
    [MIGRATION_STATUS_SETUP] = "setup",
    [MIGRATION_STATUS_CANCELLING] = "cancelling",
    [MIGRATION_STATUS_CANCELLED] = "cancelled",
    [MIGRATION_STATUS_ACTIVE] = "active",
    [MIGRATION_STATUS_PRE_SWITCHOVER] = "pre-switchover",
    [MIGRATION_STATUS_DEVICE] = "device",
    [MIGRATION_STATUS_COMPLETED] = "completed",
    [MIGRATION_STATUS_FAILED] = "failed",
    [MIGRATION_STATUS_POSTCOPY_ACTIVE] = "postcopy-active",
    [MIGRATION_STATUS_POSTCOPY_PAUSED] = "postcopy-paused",
    [MIGRATION_STATUS_POSTCOPY_RECOVER_SETUP] = "postcopy-recover-setup",
    [MIGRATION_STATUS_POSTCOPY_RECOVER] = "postcopy-recover",
};

const char *migration_status_name(MigrationStatus s)
{
    return s < MIGRATION_STATUS__MAX ? status_names[s] : "?";
}

bool migration_status_is_terminal(MigrationStatus s)
{
    return s == MIGRATION_STATUS_NONE || s == MIGRATION_STATUS_COMPLETED ||
           s == MIGRATION_STATUS_FAILED || s == MIGRATION_STATUS_CANCELLED;
}

void migration_emit_status(MigrationStatus status)
{
    JsonObject *data;

    if (!migrate_events()) {
        return;
    }
    data = json_object_new();
    json_object_set_string_member(data, "status",
                                  migration_status_name(status));
    qmp_event_emit("MIGRATION", data);
}

void migration_event_pass(uint64_t pass)
{
    JsonObject *data;

    if (!migrate_events()) {
        return;
    }
    data = json_object_new();
    json_object_set_int_member(data, "pass", pass);
    qmp_event_emit("MIGRATION_PASS", data);
}

MigrationStatus migration_get_status(MigrationState *s)
{
    return __atomic_load_n(&s->status, __ATOMIC_SEQ_CST);
}

/* Move from @old to @new; false when the status was not @old any more. */
static bool migrate_set_state(MigrationState *s, MigrationStatus old,
                              MigrationStatus new)
{
    int expected = old;

    if (!__atomic_compare_exchange_n(&s->status, &expected, new, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        return false;
    }
    trace(migration_set_state, "%s -> %s", migration_status_name(old),
          migration_status_name(new));
    mig_timeline_status(migration_status_name(new));
    migration_emit_status(new);
    return true;
}

bool migration_is_active(void)
{
    MigrationState *s = &current_migration;

    return s->thread || !migration_status_is_terminal(migration_get_status(s));
}

void migration_report_error(Error *err)
{
    MigrationState *s = &current_migration;

    g_mutex_lock(&s->lock);
    if (!s->error) {
        s->error = err;
        err = NULL;
    }
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    error_free(err);
}

static bool migration_has_error(MigrationState *s)
{
    bool ret;

    g_mutex_lock(&s->lock);
    ret = s->error != NULL;
    g_mutex_unlock(&s->lock);
    return ret;
}

/* ---- rate limiting and bandwidth (migration thread) ---- */

/* Every byte sent: the main stream and the multifd channels. */
static uint64_t migration_bytes_sent(MigrationState *s)
{
    return qemu_file_transferred(s->to_dst) +
           (s->multifd_started ? multifd_bytes_transferred() : 0);
}

uint64_t migration_transferred_bytes(void)
{
    return migration_bytes_sent(&current_migration);
}

bool migration_in_postcopy(void)
{
    return __atomic_load_n(&current_migration.in_postcopy, __ATOMIC_SEQ_CST);
}

/* The bandwidth limit of the current phase (0: none). */
static uint64_t migration_bandwidth_limit(MigrationState *s)
{
    return migration_in_postcopy() ? migrate_max_postcopy_bandwidth()
                                   : migrate_max_bandwidth();
}

bool migration_rate_limit_exceeded(void)
{
    MigrationState *s = &current_migration;
    uint64_t limit = migration_bandwidth_limit(s);
    uint64_t budget;
    MigrationStatus st = migration_get_status(s);

    if (!s->to_dst || s->in_downtime || !limit) {
        return false;
    }
    if (st != MIGRATION_STATUS_ACTIVE &&
        st != MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        return true;    /* cancelling: stop sending at once */
    }
    budget = limit * RATE_WINDOW_MS / 1000;
    return migration_bytes_sent(s) - s->window_start_bytes >= budget;
}

/* RAM pages handled so far: all of them, or only those sent with data. */
static uint64_t migration_pages(MigrationState *s, bool data_only)
{
    uint64_t pages = ram_stats.normal_pages;

    if (!data_only) {
        pages += ram_stats.zero_pages;
    }
    if (s->multifd_started) {
        pages += multifd_ram_normal_pages() +
                 (data_only ? 0 : multifd_ram_zero_pages());
    }
    return pages;
}

static void rate_window_start(MigrationState *s)
{
    s->window_starved = false;
    s->window_start_ms = get_clock_ms();
    s->window_start_bytes = migration_bytes_sent(s);
    s->window_start_pages = migration_pages(s, false);
    s->window_start_data_pages = migration_pages(s, true);
}

/*
 * The channel's speed before a busy window has measured it: max-bandwidth,
 * or, unlimited, at least its default.  Without it a VM that has little
 * to send (an idle guest, a device whose state goes only at switchover)
 * never measures anything and never switches over.
 */
static uint64_t bandwidth_stand_in(void)
{
    return migrate_max_bandwidth() ?: DEFAULT_MAX_BANDWIDTH;
}

/*
 * The switchover estimate from a window that just closed, which moved
 * pending data at @rate bytes/s.  Only a window in which the sender
 * always had data (or used its whole max-bandwidth budget) measures the
 * channel.  A starved one measures what the guest dirtied, a lower bound
 * of the channel: it may raise the estimate, never lower it.  Until a
 * busy window has been seen, bandwidth_stand_in() is the channel.
 */
static void bandwidth_update(MigrationState *s, uint64_t rate, bool budget_used)
{
    if (!s->window_starved || budget_used) {
        s->bandwidth = rate;
        s->bandwidth_measured = true;
    } else if (s->bandwidth_measured) {
        s->bandwidth = MAX(s->bandwidth, rate);
    } else {
        s->bandwidth = MAX(rate, bandwidth_stand_in());
    }
}

/*
 * Close a measurement window when it is due.  Sleep until its end when
 * it is over budget, or when the sender is @starved: everything the
 * last exact count found is sent, so there is nothing to do until the
 * guest dirties more (a new dirty sync at once would find next to
 * nothing, and each one costs a pass over the bitmaps and the devices).
 * The bandwidth that decides the switchover is the rate at which pending
 * data goes: bytes on the wire, or the data pages sent when compression
 * makes them smaller on the wire.
 */
static void rate_window_update(MigrationState *s, bool starved)
{
    int64_t now = get_clock_ms();
    int64_t elapsed = now - s->window_start_ms;
    uint64_t bytes = migration_bytes_sent(s) - s->window_start_bytes;
    uint64_t limit = migration_bandwidth_limit(s);

    s->window_starved |= starved;
    if (elapsed < RATE_WINDOW_MS &&
        (starved || migration_rate_limit_exceeded())) {
        g_mutex_lock(&s->lock);
        /*
         * Wake early on cancel, a return-path failure, the ack or a
         * page request; one that came in before this wait is not held
         * back either (rp_req_pages queues it under the lock).
         */
        if (g_queue_is_empty(&s->page_requests)) {
            g_cond_wait_until(&s->cond, &s->lock, g_get_monotonic_time() +
                              (RATE_WINDOW_MS - elapsed) * 1000);
        }
        g_mutex_unlock(&s->lock);
        now = get_clock_ms();
        elapsed = now - s->window_start_ms;
        bytes = migration_bytes_sent(s) - s->window_start_bytes;
    }
    if (elapsed >= RATE_WINDOW_MS) {
        uint64_t wire = bytes * 1000 / elapsed;
        uint64_t data = (migration_pages(s, true) - s->window_start_data_pages)
                        * TARGET_PAGE_SIZE * 1000 / elapsed;

        bandwidth_update(s, MAX(wire, data),
                         limit && bytes >= limit * RATE_WINDOW_MS / 1000);
        __atomic_store_n(&s->mbps_x1000, wire * 8 / 1000, __ATOMIC_RELAXED);
        __atomic_store_n(&s->pages_per_second,
                         (migration_pages(s, false) - s->window_start_pages) *
                         1000 / elapsed, __ATOMIC_RELAXED);
        rate_window_start(s);
    }
}

/* Bytes that may remain when the VM stops, for the downtime limit. */
static uint64_t switchover_threshold(MigrationState *s)
{
    uint64_t bw = migrate_avail_switchover_bandwidth();

    if (!bw) {
        bw = s->bandwidth;
    }
    return bw * migrate_downtime_limit() / 1000;
}

/* ---- return path (source side) ---- */

typedef struct PageRequest {
    RAMBlock *rb;
    uint64_t offset;
    uint64_t len;
} PageRequest;

/* Largest run of pages one request may ask for. */
#define MIG_PAGE_REQUEST_MAX (1 * MiB)

/*
 * postcopy-preempt: send the pages asked for at once, on their own
 * channel, from the return-path thread (the VM is stopped: the pages no
 * longer change).  They may go again in the background push, which the
 * destination ignores.  rp thread.
 */
static bool preempt_send_pages(MigrationState *s, RAMBlock *rb,
                               uint64_t offset, uint64_t len, Error **errp)
{
    QEMUFile *f = s->preempt;
    uint64_t before = qemu_file_transferred(f);

    for (uint64_t off = offset; off < offset + len; off += TARGET_PAGE_SIZE) {
        const uint8_t *page = rb->host + off;
        bool zero = buffer_is_zero(page, TARGET_PAGE_SIZE);

        qemu_put_byte(f, zero ? MIG_PREEMPT_ZERO : MIG_PREEMPT_PAGE);
        qemu_put_counted_string(f, rb->idstr);
        qemu_put_be64(f, off);
        if (!zero) {
            qemu_put_buffer(f, page, TARGET_PAGE_SIZE);
        }
    }
    if (qemu_fflush(f) < 0) {
        qemu_file_check(f, errp);
        error_prepend(errp, "postcopy-preempt: ");
        return false;
    }
    __atomic_fetch_add(&ram_stats.postcopy_bytes,
                       qemu_file_transferred(f) - before, __ATOMIC_RELAXED);
    ram_postcopy_note_preempted(rb, offset, len);
    return true;
}

typedef struct RecvBitmap {
    RAMBlock *rb;
    unsigned long *bitmap;
} RecvBitmap;

static void recv_bitmap_free(gpointer p)
{
    RecvBitmap *rbm = p;

    g_free(rbm->bitmap);
    g_free(rbm);
}

/*
 * RECV_BITMAP: str block, be64 bits (the block's pages), then the bitmap
 * as be64 words beyond the message.  Only while recovering.  rp thread.
 */
static bool rp_recv_bitmap(MigrationState *s, QEMUFile *f, const uint8_t *buf,
                           uint16_t len, Error **errp)
{
    char id[256];
    uint8_t idlen = len ? buf[0] : 0;
    RecvBitmap *rbm;
    uint64_t bits;
    RAMBlock *rb;

    if (len != 1 + idlen + 8 ||
        migration_get_status(s) != MIGRATION_STATUS_POSTCOPY_RECOVER) {
        error_setg(errp, "return path: a received bitmap out of place (%u "
                   "bytes)", len);
        return false;
    }
    memcpy(id, buf + 1, idlen);
    id[idlen] = '\0';
    bits = (uint64_t)ldl_be(buf + 1 + idlen) << 32 | ldl_be(buf + 5 + idlen);
    rb = ram_block_find(id);
    if (!rb || bits != rb->pages) {
        g_autofree char *name = qemu_escape_bytes((const uint8_t *)id, idlen);

        error_setg(errp, "return path: a received bitmap of %" PRIu64
                   " pages for RAM block '%s', which %s", bits, name,
                   rb ? "has another size here" : "does not exist here");
        return false;
    }
    rbm = g_new0(RecvBitmap, 1);
    rbm->rb = rb;
    rbm->bitmap = bitmap_new(bits);
    for (uint64_t w = 0; w < BITS_TO_LONGS(bits); w++) {
        rbm->bitmap[w] = qemu_get_be64(f);
    }
    if (!qemu_file_check(f, errp)) {
        recv_bitmap_free(rbm);
        error_prepend(errp, "return path: ");
        return false;
    }
    g_mutex_lock(&s->lock);
    g_ptr_array_add(s->recv_bitmaps, rbm);
    g_mutex_unlock(&s->lock);
    return true;
}

/* REQ_PAGES: str block, be64 offset, be32 length.  rp thread. */
static bool rp_req_pages(MigrationState *s, const uint8_t *buf, uint16_t len,
                         Error **errp)
{
    char id[256];
    uint8_t idlen = len ? buf[0] : 0;
    PageRequest *req;
    uint64_t offset;
    uint32_t size;
    RAMBlock *rb;

    if (len != 1 + idlen + 12) {
        error_setg(errp, "return path: page request of %u bytes", len);
        return false;
    }
    if (!__atomic_load_n(&s->postcopy_listen_sent, __ATOMIC_SEQ_CST)) {
        error_setg(errp, "return path: a page request before the postcopy "
                   "switch");
        return false;
    }
    memcpy(id, buf + 1, idlen);
    id[idlen] = '\0';
    offset = (uint64_t)ldl_be(buf + 1 + idlen) << 32 |
             ldl_be(buf + 5 + idlen);
    size = ldl_be(buf + 9 + idlen);
    rb = ram_block_find(id);
    if (!rb) {
        g_autofree char *name = qemu_escape_bytes((const uint8_t *)id, idlen);

        error_setg(errp, "return path: page request for unknown RAM block "
                   "'%s'", name);
        return false;
    }
    if ((offset | size) & ~TARGET_PAGE_MASK || !size ||
        size > MIG_PAGE_REQUEST_MAX || offset >= rb->size ||
        size > rb->size - offset) {
        error_setg(errp, "return path: page request for 0x%x bytes at 0x%"
                   PRIx64 " of RAM block '%s' (0x%" PRIx64 " bytes)", size,
                   offset, id, rb->size);
        return false;
    }
    if (__atomic_load_n(&s->preempt, __ATOMIC_ACQUIRE)) {
        Error *err = NULL;

        __atomic_fetch_add(&ram_stats.postcopy_requests, 1, __ATOMIC_RELAXED);
        if (preempt_send_pages(s, rb, offset, size, &err)) {
            return true;
        }
        /*
         * Once the EOF is out, every page is on the main stream: a
         * destination that has loaded it all closes the preempt channel
         * while requests of its last faults may still come in.  Its
         * SHUT, behind them on the return path, decides.
         */
        if (__atomic_load_n(&s->stream_complete, __ATOMIC_SEQ_CST)) {
            trace(migration_rp_message, "after the EOF: %s",
                  error_get_pretty(err));
            error_free(err);
            return true;
        }
        error_propagate(errp, err);
        return false;
    }
    req = g_new(PageRequest, 1);
    req->rb = rb;
    req->offset = offset;
    req->len = size;
    __atomic_fetch_add(&ram_stats.postcopy_requests, 1, __ATOMIC_RELAXED);
    g_mutex_lock(&s->lock);
    g_queue_push_tail(&s->page_requests, req);
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}

bool migration_postcopy_take_request(RAMBlock **rb, uint64_t *offset,
                                     uint64_t *len)
{
    MigrationState *s = &current_migration;
    PageRequest *req;

    g_mutex_lock(&s->lock);
    req = g_queue_pop_head(&s->page_requests);
    g_mutex_unlock(&s->lock);
    if (!req) {
        return false;
    }
    *rb = req->rb;
    *offset = req->offset;
    *len = req->len;
    g_free(req);
    return true;
}

static bool migration_has_page_requests(MigrationState *s)
{
    bool ret;

    g_mutex_lock(&s->lock);
    ret = !g_queue_is_empty(&s->page_requests);
    g_mutex_unlock(&s->lock);
    return ret;
}

bool migration_postcopy_has_requests(void)
{
    return migration_has_page_requests(&current_migration);
}

static gpointer rp_thread_fn(gpointer opaque)
{
    MigrationState *s = opaque;
    QEMUFile *f = s->from_dst;
    Error *err = NULL;

    for (;;) {
        uint16_t type, len;
        uint8_t buf[MIG_RP_MAX_LEN];

        if (qemu_file_at_eof(f)) {
            if (!s->rp_shut_received) {
                MigChannel *ch = qemu_file_channel(f);

                error_setg(&err, "return path: %s: the destination closed the "
                           "connection", ch ? ch->desc : "stream");
            }
            break;
        }
        type = qemu_get_be16(f);
        len = qemu_get_be16(f);
        if (!qemu_file_check(f, &err)) {
            error_prepend(&err, "return path: ");
            break;
        }
        if (len > MIG_RP_MAX_LEN) {
            error_setg(&err, "return path: message %u of %u bytes exceeds the "
                       "limit of %u", type, len, MIG_RP_MAX_LEN);
            break;
        }
        if (!qemu_get_buffer(f, buf, len)) {
            qemu_file_check(f, &err);
            error_prepend(&err, "return path: ");
            break;
        }
        trace(migration_rp_message, "type %u, %u bytes", type, len);
        if (type == MIG_RP_MSG_SHUT && len == 4) {
            g_mutex_lock(&s->lock);
            s->rp_shut_received = true;
            s->rp_shut_value = ldl_be(buf);
            s->downtime_end_ns = get_clock_ns();
            g_cond_broadcast(&s->cond);
            g_mutex_unlock(&s->lock);
        } else if (type == MIG_RP_MSG_PONG && len == 4) {
            g_mutex_lock(&s->lock);
            s->rp_pong = ldl_be(buf);
            g_cond_broadcast(&s->cond);
            g_mutex_unlock(&s->lock);
        } else if (type == MIG_RP_MSG_REQ_PAGES) {
            if (!rp_req_pages(s, buf, len, &err)) {
                break;
            }
        } else if (type == MIG_RP_MSG_RECV_BITMAP) {
            if (!rp_recv_bitmap(s, f, buf, len, &err)) {
                break;
            }
        } else if (type == MIG_RP_MSG_RESUME_ACK && len == 0) {
            g_mutex_lock(&s->lock);
            s->resume_acked = true;
            g_cond_broadcast(&s->cond);
            g_mutex_unlock(&s->lock);
        } else if (type == MIG_RP_MSG_SWITCHOVER_ACK && len == 0) {
            g_mutex_lock(&s->lock);
            __atomic_store_n(&s->switchover_acked, true, __ATOMIC_SEQ_CST);
            g_cond_broadcast(&s->cond);
            g_mutex_unlock(&s->lock);
        } else {
            error_setg(&err, "return path: unknown message %u (%u bytes)",
                       type, len);
            break;
        }
    }
    if (err) {
        /* Only a failure while the migration runs matters. */
        if (!s->rp_shut_received) {
            migration_report_error(err);
        } else {
            error_free(err);
        }
    }
    g_mutex_lock(&s->lock);
    s->rp_exited = true;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return NULL;
}

static bool rp_start(MigrationState *s, Error **errp)
{
    MigChannel *ch = mig_channel_dup(qemu_file_channel(s->to_dst), errp);

    if (!ch) {
        error_prepend(errp, "capability 'return-path': ");
        return false;
    }
    s->from_dst = qemu_file_new_input(ch);
    s->rp_thread = g_thread_new("mig/rp", rp_thread_fn, s);
    qemu_savevm_send_command(s->to_dst, MIG_CMD_OPEN_RETURN_PATH, 0, NULL);
    return true;
}

/*
 * Wait until the destination reports the load done (SHUT), for at most
 * x-channel-timeout: a destination that stays silent longer is taken
 * for frozen or gone, and the source VM resumes.
 */
static bool rp_wait_shut(MigrationState *s, Error **errp)
{
    unsigned timeout_ms = migrate_channel_timeout();
    int64_t deadline = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    bool timed_out = false;
    bool ok;

    g_mutex_lock(&s->lock);
    while (!s->rp_shut_received && !s->rp_exited && !s->error &&
           migration_get_status(s) != MIGRATION_STATUS_CANCELLING &&
           !timed_out) {
        if (!timeout_ms) {
            g_cond_wait(&s->cond, &s->lock);
        } else if (!g_cond_wait_until(&s->cond, &s->lock, deadline)) {
            timed_out = true;
        }
    }
    ok = s->rp_shut_received && s->rp_shut_value == 0;
    if (!ok) {
        if (timed_out) {
            error_setg(errp, "return path: the destination did not confirm "
                       "the load within %u ms (x-channel-timeout)",
                       timeout_ms);
        } else if (s->rp_shut_received) {
            error_setg(errp, "the destination failed to load the stream "
                       "(status %u)", s->rp_shut_value);
        } else if (s->error) {
            *errp = error_copy(s->error);
        } else {
            error_setg(errp, "the return path ended before the destination "
                       "confirmed the load");
        }
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

/*
 * switchover-ack: false (errp set) once the ack can no longer come, that
 * is when the destination has ended its load (SHUT) or closed the return
 * path without acking, so that the source fails instead of iterating
 * forever.  An ack read before either counts.
 */
static bool rp_ack_still_possible(MigrationState *s, Error **errp)
{
    bool ok = true;

    g_mutex_lock(&s->lock);
    if (__atomic_load_n(&s->switchover_acked, __ATOMIC_SEQ_CST)) {
        /* It came after the caller looked. */
    } else if (s->rp_shut_received) {
        error_setg(errp, "return path: the destination ended its load "
                   "(SHUT %u) without acknowledging the switchover",
                   s->rp_shut_value);
        ok = false;
    } else if (s->rp_exited) {
        error_setg(errp, "return path: closed before the destination "
                   "acknowledged the switchover");
        ok = false;
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

/* ---- end of a migration ---- */

/* Main thread, BQL: forget the previous migration (none may be running). */
static void migration_state_reset(MigrationState *s)
{
    error_free(s->error);
    s->error = NULL;
    migration_address_clear(&s->addr);
    mig_cancel_free(s->cancel);
    s->cancel = NULL;
    s->to_dst = s->from_dst = s->preempt = NULL;
    s->rp_thread = NULL;
    s->savevm_setup_done = s->vm_was_running = s->vm_stopped = false;
    s->multifd_started = false;
    s->in_downtime = s->succeeded = false;
    s->bandwidth = 0;
    s->bandwidth_measured = s->window_starved = false;
    s->rp_shut_received = s->rp_exited = s->continue_requested = false;
    s->rp_shut_value = s->rp_pong = 0;
    s->downtime_start_ns = s->downtime_end_ns = 0;
    s->switchover_acked = s->stream_complete = false;
    s->start_postcopy = s->postcopy_listen_sent = s->in_postcopy = false;
    g_queue_clear_full(&s->page_requests, g_free);
    error_free(s->pause_error);
    s->pause_error = NULL;
    s->resume_requested = s->resume_acked = s->pause_requested = false;
    migration_address_clear(&s->resume_addr);
    if (!s->recv_bitmaps) {
        s->recv_bitmaps = g_ptr_array_new_with_free_func(recv_bitmap_free);
    }
    g_ptr_array_set_size(s->recv_bitmaps, 0);
    s->expected_downtime_ms = s->mbps_x1000 = s->pages_per_second = 0;
    s->setup_time_ms = s->total_time_ms = s->downtime_ms = 0;
    memset(&ram_stats, 0, sizeof(ram_stats));
}

/* Main thread, BQL: the thread is gone; publish the final status. */
static void migration_finish_bh(void *opaque)
{
    MigrationState *s = opaque;
    MigrationStatus st = migration_get_status(s);
    MigrationStatus final;

    g_thread_join(s->thread);
    s->thread = NULL;
    mig_timeline_end();
    if (s->succeeded) {
        final = MIGRATION_STATUS_COMPLETED;
    } else if (st == MIGRATION_STATUS_CANCELLING) {
        final = MIGRATION_STATUS_CANCELLED;
    } else {
        final = MIGRATION_STATUS_FAILED;
    }
    if (final == MIGRATION_STATUS_FAILED && s->error) {
        error_report("migration failed: %s", error_get_pretty(s->error));
    }
    mig_cancel_free(s->cancel);
    s->cancel = NULL;
    migrate_set_state(s, st, final);
}

/*
 * Migration thread, at its end: undo everything, leave the VM as it was
 * (running or paused) unless the migration completed, and hand over to
 * the main thread.
 *
 * Order matters: a thread is joined before anything it uses is freed.
 * The multifd channels write from the handlers' state (mapped-ram's block
 * regions and bitmaps, RAM batches), so they stop before save_cleanup
 * frees it; the device save threads were joined at completion already.
 * The return-path thread reads from_dst, which closes after its join.
 * docs/devel/migration.rst ("Teardown order") lists the whole sequence.
 */
static void migration_thread_cleanup(MigrationState *s, bool ok)
{
    MigChannel *ch = s->to_dst ? qemu_file_channel(s->to_dst) : NULL;

    /* Before the VM may run again: full speed after any end. */
    migration_throttle_cleanup();
    if (!ok) {
        /* Nothing may block on a peer that stopped reading. */
        mig_cancel_fire(s->cancel);
    }
    if (s->multifd_started) {
        /* Every producer (RAM, device save threads) has returned. */
        multifd_send_shutdown();
    }

    bql_lock();
    if (s->savevm_setup_done) {
        qemu_savevm_state_cleanup();
        s->savevm_setup_done = false;
    }
    if (ok) {
        runstate_set(RUN_STATE_POSTMIGRATE);
    } else if (migration_in_postcopy()) {
        /* The destination may have run the guest: it must not run here. */
        runstate_set(RUN_STATE_POSTMIGRATE);
    } else if (s->vm_stopped) {
        if (s->vm_was_running) {
            vm_start();
        } else {
            runstate_set(s->prev_runstate);
        }
    }
    bql_unlock();

    if (s->rp_thread) {
        /* The destination closes after SHUT; a failure does not wait. */
        mig_channel_shutdown(ch);
        g_thread_join(s->rp_thread);
        s->rp_thread = NULL;
    }
    qemu_fclose(s->from_dst);
    s->from_dst = NULL;
    if (s->preempt) {
        qemu_fclose(s->preempt);
        s->preempt = NULL;
    }
    qemu_fclose(s->to_dst);
    s->to_dst = NULL;
    s->succeeded = ok;
    main_loop_call(migration_finish_bh, s);
}

/* ---- the migration thread ---- */

/* A fresh random UUID (version 4) naming this migration. */
static void migration_new_uuid(uint8_t uuid[16])
{
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = g_random_int();

        memcpy(uuid + i, &r, 4);
    }
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
}

/* Any multifd thread: its first failure fails the migration. */
static void migration_multifd_error(void *opaque, const Error *err)
{
    Error *copy = error_copy(err);

    error_prepend(&copy, "multifd: ");
    migration_report_error(copy);
}

static bool migration_multifd_start(MigrationState *s, Error **errp)
{
    MultiFDParams params;

    /* The destination reads the header before it accepts channels. */
    if (qemu_fflush(s->to_dst) < 0) {
        qemu_file_check(s->to_dst, errp);
        return false;
    }
    migrate_multifd_params(&params);
    params.error_notify = migration_multifd_error;
    params.error_opaque = s;
    if (!multifd_send_setup(&s->addr, s->uuid, &params, s->cancel, errp)) {
        return false;
    }
    s->multifd_started = true;
    return true;
}

static bool migration_wait_continue(MigrationState *s, Error **errp)
{
    g_mutex_lock(&s->lock);
    while (!s->continue_requested && !s->error &&
           migration_get_status(s) == MIGRATION_STATUS_PRE_SWITCHOVER) {
        g_cond_wait(&s->cond, &s->lock);
    }
    g_mutex_unlock(&s->lock);
    if (migration_get_status(s) != MIGRATION_STATUS_PRE_SWITCHOVER ||
        migration_has_error(s)) {
        error_setg(errp, "cancelled before the switchover");
        return false;
    }
    return true;
}

/*
 * With the BQL: note how the VM was, start the downtime and stop the VM
 * for @what.  On failure the BQL is released and errp says why.
 */
static bool migration_stop_vm(MigrationState *s, const char *what,
                              Error **errp)
{
    s->vm_was_running = runstate_is_running();
    s->prev_runstate = runstate_get();
    global_state_store();
    s->downtime_start_ns = get_clock_ns();
    mig_timeline_downtime_start(s->downtime_start_ns);
    s->in_downtime = true;
    s->vm_stopped = true;
    if (vm_stop_err(RUN_STATE_FINISH_MIGRATE, errp) < 0) {
        bql_unlock();
        error_prepend(errp, "stopping the VM for %s: ", what);
        return false;
    }
    return true;
}

/*
 * With the BQL and the VM stopped: enter the switchover, status `device`,
 * through `pre-switchover` and the wait for migrate-continue when
 * pause-before-switchover is on.  As in QEMU 10.0 and later, every
 * switchover, precopy or postcopy, passes through `device` (QEMU 2.11 to
 * 9.2 entered it only after a pause, and only in precopy).  On failure
 * (a cancel) the BQL is released and errp says why.
 */
static bool migration_switchover_start(MigrationState *s, Error **errp)
{
    MigrationStatus from = MIGRATION_STATUS_ACTIVE;

    if (migrate_pause_before_switchover()) {
        if (!migrate_set_state(s, MIGRATION_STATUS_ACTIVE,
                               MIGRATION_STATUS_PRE_SWITCHOVER)) {
            bql_unlock();
            error_setg(errp, "cancelled before the switchover");
            return false;
        }
        bql_unlock();
        mig_timeline_phase("pre-switchover");
        if (!migration_wait_continue(s, errp)) {
            return false;
        }
        bql_lock();
        from = MIGRATION_STATUS_PRE_SWITCHOVER;
    }
    if (!migrate_set_state(s, from, MIGRATION_STATUS_DEVICE)) {
        bql_unlock();
        error_setg(errp, "cancelled at the switchover");
        return false;
    }
    return true;
}

static bool migration_completion(MigrationState *s, Error **errp)
{
    int ret;

    bql_lock();
    trace(migration_switchover, "pending within %" PRIu64 " bytes",
          switchover_threshold(s));
    if (!migration_stop_vm(s, "the switchover", errp) ||
        !migration_switchover_start(s, errp)) {
        return false;
    }
    ret = qemu_savevm_state_complete(s->to_dst, errp);
    if (ret == 0) {
        /* Set with the BQL, which migrate_cancel needs: see there. */
        __atomic_store_n(&s->stream_complete, true, __ATOMIC_SEQ_CST);
    }
    bql_unlock();
    if (ret < 0) {
        return false;
    }
    mig_timeline_phase("destination");
    if (s->from_dst) {
        if (!rp_wait_shut(s, errp)) {
            return false;
        }
    } else {
        /* Pages sent by reference must be read before the VM may resume. */
        if (!qemu_file_wait_peer_done(s->to_dst, errp)) {
            return false;
        }
        s->downtime_end_ns = get_clock_ns();
    }
    s->downtime_ms = (s->downtime_end_ns - s->downtime_start_ns) / 1000000;
    mig_timeline_downtime_end(s->downtime_end_ns);
    return true;
}

/*
 * postcopy-ram: stop the VM, drop on the destination the pages dirtied
 * since it got them, and send the device state as one package that ends
 * with POSTCOPY_RUN.  The destination runs the VM from there on, and RAM
 * follows.  From the moment the status is postcopy-active there is no way
 * back: migrate_cancel is refused, and a failure leaves this VM stopped.
 * Downtime ends once the package is out.
 */
/* postcopy-preempt: the page channel (the destination accepts it). */
static bool postcopy_preempt_connect(MigrationState *s, Error **errp)
{
    MigChannel *ch = mig_channel_connect(&s->addr, s->cancel, errp);
    QEMUFile *f;

    if (!ch) {
        error_prepend(errp, "postcopy-preempt: ");
        return false;
    }
    f = qemu_file_new_output(ch);
    if (!migration_tls_client(ch, &s->addr, errp)) {
        error_prepend(errp, "postcopy-preempt: ");
        qemu_fclose(f);
        return false;
    }
    qemu_put_be32(f, MIG_PREEMPT_MAGIC);
    qemu_put_buffer(f, s->uuid, sizeof(s->uuid));
    if (qemu_fflush(f) < 0) {
        qemu_file_check(f, errp);
        error_prepend(errp, "postcopy-preempt: ");
        qemu_fclose(f);
        return false;
    }
    /* The rp thread uses it for the requests that follow LISTEN. */
    __atomic_store_n(&s->preempt, f, __ATOMIC_RELEASE);
    return true;
}

static bool migration_postcopy_switch(MigrationState *s, Error **errp)
{
    int ret;

    bql_lock();
    trace(migration_switchover, "postcopy");
    if (!migration_stop_vm(s, "the postcopy switch", errp) ||
        !migration_switchover_start(s, errp)) {
        return false;
    }
    /*
     * In `device` a cancel that gets in while a write waits (BQL let go)
     * fails the package half way, which the destination never runs.
     */
    mig_timeline_phase("postcopy-package");
    if (!ram_postcopy_send_discard(s->to_dst, errp)) {
        bql_unlock();
        error_prepend(errp, "postcopy: ");
        return false;
    }
    __atomic_store_n(&s->postcopy_listen_sent, true, __ATOMIC_SEQ_CST);
    qemu_savevm_send_command(s->to_dst, MIG_CMD_POSTCOPY_LISTEN, 0, NULL);
    ret = qemu_savevm_send_postcopy_package(s->to_dst, errp);
    if (ret < 0) {
        bql_unlock();
        return false;
    }
    /*
     * The package may be out (or go with the flush below): from here on
     * the destination may run the VM.  migrate_cancel needs the BQL: it
     * sees both or neither.
     */
    if (!migrate_set_state(s, MIGRATION_STATUS_DEVICE,
                           MIGRATION_STATUS_POSTCOPY_ACTIVE)) {
        bql_unlock();
        error_setg(errp, "cancelled at the postcopy switch");
        return false;
    }
    __atomic_store_n(&s->in_postcopy, true, __ATOMIC_SEQ_CST);
    bql_unlock();
    if (qemu_fflush(s->to_dst) < 0) {
        qemu_file_check(s->to_dst, errp);
        return false;
    }
    s->in_downtime = false;
    s->downtime_end_ns = get_clock_ns();
    s->downtime_ms = (s->downtime_end_ns - s->downtime_start_ns) / 1000000;
    mig_timeline_downtime_end(s->downtime_end_ns);
    /*
     * The destination accepts the page channel once it has read LISTEN
     * (a TLS handshake needs it to answer); until the channel is up,
     * requested pages go first on the main stream.
     */
    if (migrate_postcopy_preempt() && !postcopy_preempt_connect(s, errp)) {
        return false;
    }
    return true;
}

/*
 * After the switch: push the rest of RAM, pages the destination asks for
 * first (RAM's iterator takes them from the queue), then the END and the
 * EOF, and wait for the destination's SHUT.
 */
static bool migration_postcopy_push(MigrationState *s, Error **errp)
{
    rate_window_start(s);
    for (;;) {
        int ret;

        if (migration_get_status(s) != MIGRATION_STATUS_POSTCOPY_ACTIVE) {
            error_setg(errp, "postcopy: migration stopped");
            return false;
        }
        if (migration_has_error(s)) {
            g_mutex_lock(&s->lock);
            *errp = error_copy(s->error);
            g_mutex_unlock(&s->lock);
            return false;
        }
        ret = qemu_savevm_state_iterate(s->to_dst, true, errp);
        if (ret < 0) {
            return false;
        }
        if (qemu_fflush(s->to_dst) < 0) {
            qemu_file_check(s->to_dst, errp);
            return false;
        }
        if (ret > 0 && !migration_has_page_requests(s)) {
            break;
        }
        rate_window_update(s, false);
    }
    if (qemu_savevm_state_complete_postcopy(s->to_dst, errp) < 0) {
        return false;
    }
    __atomic_store_n(&s->stream_complete, true, __ATOMIC_SEQ_CST);
    return rp_wait_shut(s, errp);
}

/*
 * Postcopy recovery: shut the channels down and close them, with the
 * return-path thread joined.  Under the lock the pointers go, so that
 * migrate-pause never shuts down a closed fd.  Migration thread.
 */
static void postcopy_channels_close(MigrationState *s)
{
    QEMUFile *to, *from, *preempt;

    g_mutex_lock(&s->lock);
    if (s->to_dst) {
        mig_channel_shutdown(qemu_file_channel(s->to_dst));
    }
    g_mutex_unlock(&s->lock);
    if (s->rp_thread) {
        g_thread_join(s->rp_thread);
        s->rp_thread = NULL;
    }
    g_mutex_lock(&s->lock);
    to = s->to_dst;
    from = s->from_dst;
    preempt = s->preempt;
    s->to_dst = s->from_dst = s->preempt = NULL;
    s->rp_exited = s->rp_shut_received = s->resume_acked = false;
    /* A resume sends RAM's END and the EOF again. */
    __atomic_store_n(&s->stream_complete, false, __ATOMIC_SEQ_CST);
    g_queue_clear_full(&s->page_requests, g_free);
    g_ptr_array_set_size(s->recv_bitmaps, 0);
    g_mutex_unlock(&s->lock);
    if (preempt) {
        qemu_fclose(preempt);
    }
    if (from) {
        qemu_fclose(from);
    }
    if (to) {
        qemu_fclose(to);
    }
}

/*
 * Connect to the destination's recovery address, ask it to resume the
 * migration of this UUID, take its bitmaps of what it received, and put
 * what it lacks back into RAM's bitmap.  postcopy-recover-setup, then
 * postcopy-recover; postcopy-active when it returns true.
 */
static bool postcopy_resume(MigrationState *s, MigrationAddress *addr,
                            Error **errp)
{
    MigChannel *ch = mig_channel_connect(addr, s->cancel, errp);
    QEMUFile *to;
    bool acked;

    if (!ch) {
        return false;
    }
    to = qemu_file_new_output(ch);
    if (!migration_tls_client(ch, addr, errp)) {
        qemu_fclose(to);
        return false;
    }
    qemu_put_be32(to, MIG_RESUME_MAGIC);
    qemu_put_buffer(to, s->uuid, sizeof(s->uuid));
    if (qemu_fflush(to) < 0) {
        qemu_file_check(to, errp);
        qemu_fclose(to);
        return false;
    }
    ch = mig_channel_dup(ch, errp);
    if (!ch) {
        qemu_fclose(to);
        return false;
    }
    g_mutex_lock(&s->lock);
    s->to_dst = to;
    s->from_dst = qemu_file_new_input(ch);
    g_mutex_unlock(&s->lock);
    if (!migrate_set_state(s, MIGRATION_STATUS_POSTCOPY_RECOVER_SETUP,
                           MIGRATION_STATUS_POSTCOPY_RECOVER)) {
        error_setg(errp, "stopped while connecting");
        return false;
    }
    s->rp_thread = g_thread_new("mig/rp", rp_thread_fn, s);

    g_mutex_lock(&s->lock);
    while (!s->resume_acked && !s->rp_exited && !s->error &&
           migration_get_status(s) == MIGRATION_STATUS_POSTCOPY_RECOVER) {
        g_cond_wait(&s->cond, &s->lock);
    }
    acked = s->resume_acked && !s->error;
    if (!acked) {
        if (s->error) {
            *errp = error_copy(s->error);
        } else {
            error_setg(errp, "the destination did not take the resume");
        }
    }
    g_mutex_unlock(&s->lock);
    if (!acked) {
        return false;
    }
    for (guint i = 0; i < s->recv_bitmaps->len; i++) {
        RecvBitmap *rbm = g_ptr_array_index(s->recv_bitmaps, i);

        ram_postcopy_resume_block(rbm->rb, rbm->bitmap);
    }
    /* Later channels (preempt) go where the destination listens now. */
    migration_address_clear(&s->addr);
    s->addr = *addr;
    memset(addr, 0, sizeof(*addr));
    if (migrate_postcopy_preempt() && !postcopy_preempt_connect(s, errp)) {
        return false;
    }
    if (!migrate_set_state(s, MIGRATION_STATUS_POSTCOPY_RECOVER,
                           MIGRATION_STATUS_POSTCOPY_ACTIVE)) {
        error_setg(errp, "stopped while resuming");
        return false;
    }
    return true;
}

/*
 * The link broke after the switch (@reason): postcopy-paused, keeping
 * every page on both sides, until migrate resume=true names a new
 * address (or vmig exits).  true once resumed.  Migration thread.
 */
static void pause_error_publish(MigrationState *s, const Error *reason)
{
    g_mutex_lock(&s->lock);
    error_free(s->pause_error);
    s->pause_error = error_copy(reason);
    g_mutex_unlock(&s->lock);
}

static bool migration_postcopy_pause(MigrationState *s, Error *reason)
{
    g_mutex_lock(&s->lock);
    if (s->pause_requested) {
        /* What the cut caused says less than who cut it. */
        s->pause_requested = false;
        error_free(reason);
        reason = NULL;
        error_setg(&reason, "migrate-pause");
    }
    g_mutex_unlock(&s->lock);
    /* The reason is there as soon as query-migrate says paused. */
    pause_error_publish(s, reason);
    if (!migrate_set_state(s, MIGRATION_STATUS_POSTCOPY_ACTIVE,
                           MIGRATION_STATUS_POSTCOPY_PAUSED)) {
        error_free(reason);
        return false;
    }
    for (;;) {
        MigrationAddress addr = { 0 };
        Error *err = NULL;
        MigrationStatus st;

        error_report("postcopy paused: %s", error_get_pretty(reason));
        postcopy_channels_close(s);
        g_mutex_lock(&s->lock);
        error_free(s->pause_error);
        s->pause_error = reason;
        error_free(s->error);
        s->error = NULL;
        while (!s->resume_requested &&
               migration_get_status(s) == MIGRATION_STATUS_POSTCOPY_PAUSED) {
            g_cond_wait(&s->cond, &s->lock);
        }
        if (s->resume_requested) {
            addr = s->resume_addr;
            memset(&s->resume_addr, 0, sizeof(s->resume_addr));
            s->resume_requested = false;
        }
        g_mutex_unlock(&s->lock);
        if (migration_get_status(s) !=
            MIGRATION_STATUS_POSTCOPY_RECOVER_SETUP) {
            migration_address_clear(&addr);
            return false;       /* vmig exits */
        }
        if (postcopy_resume(s, &addr, &err)) {
            migration_address_clear(&addr);
            g_mutex_lock(&s->lock);
            error_free(s->pause_error);
            s->pause_error = NULL;
            g_mutex_unlock(&s->lock);
            return true;
        }
        migration_address_clear(&addr);
        error_prepend(&err, "postcopy recovery failed: ");
        reason = err;
        /* Back to paused, unless vmig exits (cancelling). */
        st = migration_get_status(s);
        pause_error_publish(s, reason);
        if ((st != MIGRATION_STATUS_POSTCOPY_RECOVER_SETUP &&
             st != MIGRATION_STATUS_POSTCOPY_RECOVER) ||
            !migrate_set_state(s, st, MIGRATION_STATUS_POSTCOPY_PAUSED)) {
            error_free(reason);
            return false;
        }
    }
}

/* Push until done; a broken link pauses until resumed. */
static bool migration_postcopy_run(MigrationState *s, Error **errp)
{
    for (;;) {
        Error *err = NULL;

        if (migration_postcopy_push(s, &err)) {
            return true;
        }
        if (migration_get_status(s) != MIGRATION_STATUS_POSTCOPY_ACTIVE) {
            error_propagate(errp, err);
            return false;
        }
        if (!migration_postcopy_pause(s, err)) {
            error_setg(errp, "postcopy: vmig exits while the migration is "
                       "paused");
            return false;
        }
    }
}

typedef enum IterateResult {
    ITERATE_FAILED,
    ITERATE_COMPLETE,           /* precopy may switch over */
    ITERATE_POSTCOPY,           /* migrate-start-postcopy */
} IterateResult;

static IterateResult migration_iterate_until_ready(MigrationState *s,
                                                   Error **errp)
{
    rate_window_start(s);
    for (;;) {
        uint64_t threshold = switchover_threshold(s);
        uint64_t pending = qemu_savevm_pending_estimate();
        bool synced = false;
        bool acked = !migrate_switchover_ack() ||
                     __atomic_load_n(&s->switchover_acked, __ATOMIC_SEQ_CST);
        int ret;

        if (migration_get_status(s) != MIGRATION_STATUS_ACTIVE) {
            error_setg(errp, "migration cancelled");
            return ITERATE_FAILED;
        }
        if (migration_has_error(s)) {
            g_mutex_lock(&s->lock);
            *errp = error_copy(s->error);
            g_mutex_unlock(&s->lock);
            return ITERATE_FAILED;
        }
        if (pending <= threshold) {
            pending = qemu_savevm_pending_exact();
            synced = true;
        }
        if (s->bandwidth) {
            __atomic_store_n(&s->expected_downtime_ms,
                             pending * 1000 / s->bandwidth, __ATOMIC_RELAXED);
        }
        trace(migration_iteration, "pending %" PRIu64 " threshold %" PRIu64
              " acked %d", pending, threshold, acked);
        if (pending <= threshold && acked && !migration_has_error(s)) {
            return ITERATE_COMPLETE;
        }
        /* As in QEMU: precopy ends by itself when it can. */
        if (__atomic_load_n(&s->start_postcopy, __ATOMIC_SEQ_CST)) {
            return ITERATE_POSTCOPY;
        }
        if (!acked && !rp_ack_still_possible(s, errp)) {
            return ITERATE_FAILED;
        }
        ret = qemu_savevm_state_iterate(s->to_dst, false, errp);
        if (ret < 0) {
            return ITERATE_FAILED;
        }
        if (qemu_fflush(s->to_dst) < 0) {
            qemu_file_check(s->to_dst, errp);
            return ITERATE_FAILED;
        }
        /* Every iterator sent all that the exact figure counted. */
        rate_window_update(s, synced && ret > 0);
    }
}

static gpointer migration_thread(gpointer opaque)
{
    MigrationState *s = opaque;
    MigChannel *ch;
    Error *err = NULL;
    IterateResult ready;
    bool ok = false;

    ch = mig_channel_connect(&s->addr, s->cancel, &err);
    if (!ch) {
        goto done;
    }
    /* On failure the channel goes with to_dst, at cleanup. */
    s->to_dst = qemu_file_new_output(ch);
    if (!migration_tls_client(ch, &s->addr, &err)) {
        goto done;
    }
    migration_new_uuid(s->uuid);
    qemu_savevm_send_header(s->to_dst, migration_config_caps(), s->uuid);
    if (migrate_return_path() && !rp_start(s, &err)) {
        goto done;
    }
    if (migrate_multifd() && !migration_multifd_start(s, &err)) {
        goto done;
    }
    if (migrate_postcopy_ram()) {
        /* The destination checks that it can, before anything else. */
        qemu_savevm_send_command(s->to_dst, MIG_CMD_POSTCOPY_ADVISE, 0, NULL);
    }
    bql_lock();
    s->savevm_setup_done = true;
    if (qemu_savevm_state_setup(s->to_dst, &err) < 0) {
        bql_unlock();
        goto done;
    }
    bql_unlock();
    if (qemu_fflush(s->to_dst) < 0) {
        qemu_file_check(s->to_dst, &err);
        goto done;
    }
    s->setup_time_ms = get_clock_ms() - s->start_ms;
    migration_throttle_setup();
    if (!migrate_set_state(s, MIGRATION_STATUS_SETUP,
                           MIGRATION_STATUS_ACTIVE)) {
        error_setg(&err, "migration cancelled during setup");
        goto done;
    }
    ready = migration_iterate_until_ready(s, &err);
    if (ready == ITERATE_POSTCOPY) {
        ok = migration_postcopy_switch(s, &err) &&
             migration_postcopy_run(s, &err);
    } else if (ready == ITERATE_COMPLETE) {
        ok = migration_completion(s, &err);
    }

done:
    s->total_time_ms = get_clock_ms() - s->start_ms;
    if (!ok) {
        migration_report_error(err);
        err = NULL;
    }
    migration_thread_cleanup(s, ok);
    return NULL;
}

/* ---- start, cancel, continue (main thread, BQL) ---- */

bool migration_start(const MigrationAddress *addr, Error **errp)
{
    MigrationState *s = &current_migration;

    if (migration_is_active()) {
        error_setg(errp, "a migration is already in progress (status '%s')",
                   migration_status_name(migration_get_status(s)));
        return false;
    }
    if (migration_incoming_in_progress()) {
        error_setg(errp, "cannot migrate while an incoming migration is in "
                   "progress");
        return false;
    }
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        error_setg(errp, "cannot migrate a VM that is still waiting for its "
                   "own incoming migration");
        return false;
    }
    /*
     * QEMU's check and words: the destination has (or may have) taken
     * over this VM; sending it again would fork the guest.
     */
    if (runstate_get() == RUN_STATE_POSTMIGRATE) {
        error_setg(errp, "Can't migrate the vm that was paused due to "
                   "previous migration");
        return false;
    }
    if (addr->type == MIGRATION_ADDRESS_DEFER) {
        error_setg(errp, "'defer' is an address for migrate-incoming only");
        return false;
    }
    if (!migrate_check_address_type(addr->type, errp)) {
        return false;
    }
    if (dirtyrate_holds_dirty_log(errp)) {
        return false;
    }
    if (migrate_return_path() && (addr->type == MIGRATION_ADDRESS_FILE ||
                                  addr->type == MIGRATION_ADDRESS_EXEC)) {
        error_setg(errp, "capability 'return-path' needs a socket, and %s: "
                   "is one-way", migration_address_type_name(addr->type));
        return false;
    }
    if (!migration_tls_check_transport(addr, errp) ||
        !qemu_savevm_state_prepare(errp)) {
        return false;
    }
    migration_state_reset(s);
    s->cancel = mig_cancel_new(errp);
    if (!s->cancel) {
        return false;
    }
    mig_cancel_set_timeout(s->cancel, migrate_channel_timeout());
    s->addr.type = addr->type;
    s->addr.host = g_strdup(addr->host);
    s->addr.port = g_strdup(addr->port);
    s->addr.path = g_strdup(addr->path);
    s->addr.fd_name = g_strdup(addr->fd_name);
    s->addr.command = g_strdup(addr->command);
    s->addr.offset = addr->offset;
    /* fd: take the descriptor now, so a bad name fails the command. */
    if (addr->type == MIGRATION_ADDRESS_FD) {
        MigChannel *ch = mig_channel_connect(addr, s->cancel, errp);

        if (!ch) {
            migration_state_reset(s);
            return false;
        }
        g_free(s->addr.fd_name);
        s->addr.fd_name = g_strdup_printf("%d", mig_channel_steal_fd(ch));
    }
    s->start_ms = get_clock_ms();
    mig_timeline_start();
    mig_timeline_status(migration_status_name(MIGRATION_STATUS_SETUP));
    __atomic_store_n(&s->status, MIGRATION_STATUS_SETUP, __ATOMIC_SEQ_CST);
    migration_emit_status(MIGRATION_STATUS_SETUP);
    s->thread = g_thread_new("mig/src", migration_thread, s);
    return true;
}

static void migration_cancel_now(MigrationState *s)
{
    for (;;) {
        MigrationStatus st = migration_get_status(s);

        if (migration_status_is_terminal(st) ||
            st == MIGRATION_STATUS_CANCELLING) {
            return;
        }
        if (migrate_set_state(s, st, MIGRATION_STATUS_CANCELLING)) {
            break;
        }
    }
    if (s->cancel) {
        mig_cancel_fire(s->cancel);
    }
    g_mutex_lock(&s->lock);
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
}

/*
 * migrate_cancel.  As in QEMU, it does nothing (and succeeds) when no
 * migration runs or one is being cancelled, and is refused after the
 * postcopy switch.  In status `device` the migration thread holds the BQL
 * while it writes the final state, except while it waits for room on a
 * channel (see channel_wait()): a cancel gets in then and fails the next
 * write.  Once the whole stream, EOF included, is out it is too late: the
 * destination may load it and run the VM, and a source that resumed
 * would run it a second time.  QEMU cancels all the same; vmig refuses,
 * and the destination's verdict (SHUT, or the end of the stream without
 * a return path) ends the migration, or x-channel-timeout without one.
 */
bool migration_cancel(Error **errp)
{
    MigrationState *s = &current_migration;
    MigrationStatus st = migration_get_status(s);

    if (migration_status_is_terminal(st) ||
        st == MIGRATION_STATUS_CANCELLING) {
        return true;
    }
    /* QEMU's words first: the destination runs the VM now. */
    if (migration_in_postcopy()) {
        error_setg(errp, "Postcopy migration in progress, cannot cancel: "
                   "the destination runs the VM");
        return false;
    }
    if (__atomic_load_n(&s->stream_complete, __ATOMIC_SEQ_CST)) {
        error_setg(errp, "too late to cancel: the whole migration stream "
                   "has been sent and the destination may already run the "
                   "VM; the migration ends as the destination says");
        return false;
    }
    migration_cancel_now(s);
    return true;
}

void migration_query_pause(JsonObject *obj)
{
    MigrationState *s = &current_migration;

    g_mutex_lock(&s->lock);
    if (s->pause_error) {
        json_object_set_string_member(obj, "error-desc",
                                      error_get_pretty(s->pause_error));
    }
    g_mutex_unlock(&s->lock);
}

bool migration_pause(Error **errp)
{
    MigrationState *s = &current_migration;

    if (migration_get_status(s) != MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        error_setg(errp, "migrate-pause is for a migration in status "
                   "postcopy-active (it is '%s')",
                   migration_status_name(migration_get_status(s)));
        return false;
    }
    /* The migration thread sees the broken link and pauses. */
    g_mutex_lock(&s->lock);
    s->pause_requested = true;
    if (s->to_dst) {
        mig_channel_shutdown(qemu_file_channel(s->to_dst));
    }
    g_mutex_unlock(&s->lock);
    return true;
}

bool migration_resume(const MigrationAddress *addr, Error **errp)
{
    MigrationState *s = &current_migration;

    if (migration_get_status(s) != MIGRATION_STATUS_POSTCOPY_PAUSED) {
        error_setg(errp, "migrate with 'resume' needs a migration in status "
                   "postcopy-paused (it is '%s')",
                   migration_status_name(migration_get_status(s)));
        return false;
    }
    if (addr->type != MIGRATION_ADDRESS_TCP &&
        addr->type != MIGRATION_ADDRESS_UNIX) {
        error_setg(errp, "a postcopy resume needs a tcp: or unix: address, "
                   "not %s:", migration_address_type_name(addr->type));
        return false;
    }
    g_mutex_lock(&s->lock);
    migration_address_clear(&s->resume_addr);
    s->resume_addr.type = addr->type;
    s->resume_addr.host = g_strdup(addr->host);
    s->resume_addr.port = g_strdup(addr->port);
    s->resume_addr.path = g_strdup(addr->path);
    s->resume_requested = true;
    migrate_set_state(s, MIGRATION_STATUS_POSTCOPY_PAUSED,
                      MIGRATION_STATUS_POSTCOPY_RECOVER_SETUP);
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}

bool migration_start_postcopy(Error **errp)
{
    MigrationState *s = &current_migration;
    MigrationStatus st = migration_get_status(s);

    if (!migrate_postcopy_ram()) {
        error_setg(errp, "Enable postcopy with migrate-set-capabilities "
                   "(capability 'postcopy-ram') before the start of "
                   "migration");
        return false;
    }
    if (st != MIGRATION_STATUS_SETUP && st != MIGRATION_STATUS_ACTIVE) {
        error_setg(errp, st == MIGRATION_STATUS_POSTCOPY_ACTIVE ?
                   "postcopy has started already" :
                   "Postcopy must be started after migration has been "
                   "started");
        return false;
    }
    g_mutex_lock(&s->lock);
    __atomic_store_n(&s->start_postcopy, true, __ATOMIC_SEQ_CST);
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}

/* Main thread, BQL: the cancellers are freed there, in the final bhs. */
bool migration_yank_exists(void)
{
    return current_migration.cancel || migration_incoming_current_cancel();
}

void migration_yank(void)
{
    MigCancel *in = migration_incoming_current_cancel();

    if (current_migration.cancel) {
        mig_cancel_yank(current_migration.cancel);
    }
    if (in) {
        mig_cancel_yank(in);
    }
}

bool migration_continue(const char *state, Error **errp)
{
    MigrationState *s = &current_migration;
    MigrationStatus st = migration_get_status(s);

    if (strcmp(state, migration_status_name(st))) {
        error_setg(errp, "migrate-continue: the migration is in state '%s', "
                   "not '%s'", migration_status_name(st), state);
        return false;
    }
    if (st != MIGRATION_STATUS_PRE_SWITCHOVER) {
        error_setg(errp, "migrate-continue: only 'pre-switchover' can be "
                   "continued");
        return false;
    }
    g_mutex_lock(&s->lock);
    s->continue_requested = true;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return true;
}

void migration_shutdown(void)
{
    MigrationState *s = &current_migration;

    if (s->thread) {
        /* Even after the stream's end: this process goes away. */
        migration_cancel_now(s);
        /* The thread takes the BQL to clean up; its final bh never runs. */
        bql_unlock();
        g_thread_join(s->thread);
        bql_lock();
        s->thread = NULL;
        mig_cancel_free(s->cancel);
        s->cancel = NULL;
    }
    migration_incoming_shutdown();
    dirtyrate_shutdown();
    migration_address_clear(&s->addr);
    migration_address_clear(&s->resume_addr);
    error_free(s->error);
    s->error = NULL;
    error_free(s->pause_error);
    s->pause_error = NULL;
    g_queue_clear_full(&s->page_requests, g_free);
    g_clear_pointer(&s->recv_bitmaps, g_ptr_array_unref);
}

void migration_init(void)
{
    /* A peer that goes away must fail a write, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    ram_mig_init();
    global_state_init();
    guest_state_mig_init();
}
