/*
 * Multifd source: the channels, their send threads, and the hand-off of
 * jobs from the producers (the migration thread's RAM batches, device
 * save threads' state packets) to idle channels.
 *
 * Each channel has one job slot.  A producer takes the lock, waits for a
 * channel whose slot is free (round robin), fills the slot and wakes the
 * channel's thread, which writes the packet without the lock and frees
 * the slot when the write is done.  RAM batches are swapped rather than
 * copied: the channel gets the producer's full batch and the producer
 * keeps the channel's empty one.
 */
#include "qemu/osdep.h"
#include "qemu/trace.h"
#include "migration/tls.h"
#include "migration/mapped-ram.h"
#include "multifd-internal.h"

TRACE_DEFINE(multifd_send_setup);
TRACE_DEFINE(multifd_send_sync);
TRACE_DEFINE(multifd_send_error);
TRACE_DEFINE(multifd_send_packet);

struct MultiFDSendState {
    MultiFDParams params;
    MigCancel *cancel;
    const MultiFDCompressOps *compress;
    MultiFDSendChannel *channels;
    unsigned nr_channels;       /* created (threads started) */

    GMutex lock;                /* guards the fields below and job slots */
    GCond idle_cond;            /* a slot was freed, or an error came */
    Error *error;               /* first failure */
    bool stopping;              /* shutdown: failures are expected */
    unsigned next_channel;      /* round robin start */
    uint64_t sync_round;

    /* Migration thread only: the batch being filled. */
    MultiFDPages *filling;

    uint64_t packet_num;        /* atomic */
};

/* Set up and torn down by the migration thread; read by producers. */
static MultiFDSendState *send_state;
/* Outlives the state, so that query-migrate shows the final total. */
static uint64_t send_bytes;
/* The device-state share of send_bytes: not RAM in query-migrate. */
static uint64_t send_device_state_bytes;
/* Each channel's share of send_bytes, and how many channels there were. */
static uint64_t channel_bytes[MULTIFD_MAX_CHANNELS];
static unsigned channel_count;
/* The RAM share of send_bytes (packets of pages and syncs, no hellos). */
static uint64_t send_ram_bytes;

bool multifd_send_channel_bytes(unsigned i, uint64_t *bytes)
{
    if (i >= __atomic_load_n(&channel_count, __ATOMIC_RELAXED)) {
        return false;
    }
    *bytes = __atomic_load_n(&channel_bytes[i], __ATOMIC_RELAXED);
    return true;
}

uint64_t multifd_bytes_transferred(void)
{
    return __atomic_load_n(&send_bytes, __ATOMIC_RELAXED);
}

uint64_t multifd_device_state_bytes_transferred(void)
{
    return __atomic_load_n(&send_device_state_bytes, __ATOMIC_RELAXED);
}

uint64_t multifd_ram_bytes_transferred(void)
{
    return __atomic_load_n(&send_ram_bytes, __ATOMIC_RELAXED);
}

/*
 * With s->lock held: keep @err as the first failure, or free it.  Returns
 * whether it was the first; the caller then calls multifd_send_spread_error()
 * once it has dropped the lock.
 */
static bool multifd_send_set_error_locked(MultiFDSendState *s, Error *err)
{
    bool first = !s->error && !s->stopping;

    if (first) {
        s->error = err;
    } else {
        error_free(err);
    }
    g_cond_broadcast(&s->idle_cond);
    return first;
}

/* After the first failure, without the lock: stop the rest, tell the core. */
static void multifd_send_spread_error(MultiFDSendState *s, unsigned started)
{
    trace(multifd_send_error, "%s", error_get_pretty(s->error));
    /* Wake sibling channels blocked in a write: the migration is over. */
    for (unsigned i = 0; i < started; i++) {
        mig_channel_shutdown(s->channels[i].ch);
    }
    if (s->params.error_notify) {
        s->params.error_notify(s->params.error_opaque, s->error);
    }
}

static MultiFDSendState *multifd_send_get(Error **errp);

/* With s->lock held: copy the first error into errp. */
static bool multifd_send_check_locked(MultiFDSendState *s, Error **errp)
{
    if (s->error) {
        error_propagate(errp, error_copy(s->error));
        return false;
    }
    if (mig_cancel_fired(s->cancel)) {
        error_setg(errp, "multifd: migration cancelled");
        return false;
    }
    return true;
}

static void multifd_job_release(MultiFDSendJob *job)
{
    job->dev_idstr = NULL;
    job->dev_data = NULL;
    job->dev_len = 0;
    if (job->pages) {
        job->pages->num = 0;
        job->pages->block = NULL;
    }
    job->kind = MULTIFD_PAYLOAD_NONE;
    job->flags = 0;
}

/*
 * mapped-ram: a job is a write into the file, and a SYNC has nothing to
 * write: that the channel took it means its earlier writes are done.
 */
static bool multifd_send_job_mapped(MultiFDSendChannel *c, Error **errp)
{
    ssize_t bytes = 0;

    if (c->job.kind == MULTIFD_PAYLOAD_DEVICE_STATE) {
        error_setg(errp, "device state '%s' cannot go through multifd into "
                   "a mapped-ram file", c->job.dev_idstr);
        return false;
    }
    if (c->job.kind == MULTIFD_PAYLOAD_RAM) {
        bytes = multifd_ram_save_mapped(c, &c->job, errp);
    }
    if (bytes < 0) {
        return false;
    }
    __atomic_fetch_add(&send_bytes, bytes, __ATOMIC_RELAXED);
    __atomic_fetch_add(&send_ram_bytes, bytes, __ATOMIC_RELAXED);
    __atomic_fetch_add(&channel_bytes[c->id], bytes, __ATOMIC_RELAXED);
    return true;
}

static bool multifd_send_job(MultiFDSendChannel *c, Error **errp)
{
    MultiFDSendState *s = c->state;
    MultiFDSendJob *job = &c->job;
    MultiFDPacketHeader hdr = {
        .magic = MULTIFD_PACKET_MAGIC,
        .version = MULTIFD_PACKET_VERSION,
        .flags = job->flags,
        .kind = job->kind,
    };
    const MultiFDPayloadOps *ops = multifd_payload_ops(job->kind);
    ssize_t payload = 0;
    uint64_t total;

    c->iov[0].iov_base = c->meta;
    c->iov[0].iov_len = MULTIFD_PACKET_HDR_LEN;
    c->iovcnt = 1;
    if (ops) {
        payload = ops->send_prepare(c, job, s->compress, errp);
    }
    if (payload < 0) {
        return false;
    }
    hdr.payload_size = payload;
    hdr.packet_num = __atomic_fetch_add(&s->packet_num, 1, __ATOMIC_RELAXED);
    multifd_packet_header_encode(&hdr, c->meta);
    trace(multifd_send_packet, "channel %u packet %" PRIu64 " kind %u flags "
          "0x%x payload %zd", c->id, hdr.packet_num, hdr.kind, hdr.flags,
          payload);
    total = MULTIFD_PACKET_HDR_LEN + payload;
    /* Raw RAM pages follow the metadata by reference; all else is ours. */
    if (!mig_channel_writev_ref(c->ch, c->iov, c->iovcnt,
                                job->kind == MULTIFD_PAYLOAD_RAM &&
                                !s->compress ? 1 : c->iovcnt, errp)) {
        return false;
    }
    __atomic_fetch_add(&send_bytes, total, __ATOMIC_RELAXED);
    __atomic_fetch_add(&channel_bytes[c->id], total, __ATOMIC_RELAXED);
    if (job->kind == MULTIFD_PAYLOAD_DEVICE_STATE) {
        __atomic_fetch_add(&send_device_state_bytes, total, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_add(&send_ram_bytes, total, __ATOMIC_RELAXED);
    }
    return true;
}

static gpointer multifd_send_thread(gpointer opaque)
{
    MultiFDSendChannel *c = opaque;
    MultiFDSendState *s = c->state;

    for (;;) {
        Error *local_err = NULL;
        unsigned started;
        bool ok, first = false;

        g_mutex_lock(&s->lock);
        while (!c->has_job && !c->quit) {
            g_cond_wait(&c->job_cond, &s->lock);
        }
        if (!c->has_job) {
            g_mutex_unlock(&s->lock);
            break;
        }
        g_mutex_unlock(&s->lock);

        ok = s->params.mapped_ram ? multifd_send_job_mapped(c, &local_err)
                                  : multifd_send_job(c, &local_err);

        g_mutex_lock(&s->lock);
        if (ok && (c->job.flags & MULTIFD_FLAG_SYNC)) {
            c->syncs_sent++;
        }
        multifd_job_release(&c->job);
        c->has_job = false;
        c->jobs_done++;
        if (!ok) {
            /* In the same step, so that no producer picks a dead channel. */
            c->failed_job = c->jobs_done;
            error_prepend(&local_err, "multifd channel %u: ", c->id);
            first = multifd_send_set_error_locked(s, local_err);
        }
        started = s->nr_channels;
        g_cond_broadcast(&s->idle_cond);
        g_mutex_unlock(&s->lock);
        if (!ok) {
            if (first) {
                multifd_send_spread_error(s, started);
            }
            break;
        }
    }
    return NULL;
}

/*
 * With s->lock held: wait for a channel with a free slot and return it,
 * or NULL with errp set.  @only: that channel, or NULL for any.
 */
static MultiFDSendChannel *multifd_send_wait_idle(MultiFDSendState *s,
                                                  MultiFDSendChannel *only,
                                                  Error **errp)
{
    for (;;) {
        if (!multifd_send_check_locked(s, errp)) {
            return NULL;
        }
        if (only) {
            if (!only->has_job && !only->failed_job) {
                return only;
            }
        } else {
            for (unsigned i = 0; i < s->nr_channels; i++) {
                MultiFDSendChannel *c =
                    &s->channels[(s->next_channel + i) % s->nr_channels];

                if (!c->has_job && !c->failed_job) {
                    s->next_channel = (c->id + 1) % s->nr_channels;
                    return c;
                }
            }
        }
        multifd_cond_wait_slice(&s->idle_cond, &s->lock);
    }
}

bool multifd_send_check(Error **errp)
{
    MultiFDSendState *s = multifd_send_get(errp);
    bool ok;

    if (!s) {
        return false;
    }
    g_mutex_lock(&s->lock);
    ok = multifd_send_check_locked(s, errp);
    g_mutex_unlock(&s->lock);
    return ok;
}

static MultiFDSendState *multifd_send_get(Error **errp)
{
    MultiFDSendState *s = send_state;

    if (!s) {
        error_setg(errp, "multifd: channels are not set up");
    }
    return s;
}

/* Give the batch being filled to an idle channel. */
static bool multifd_send_pages(MultiFDSendState *s, Error **errp)
{
    MultiFDSendChannel *c;
    MultiFDPages *empty;

    g_mutex_lock(&s->lock);
    c = multifd_send_wait_idle(s, NULL, errp);
    if (!c) {
        g_mutex_unlock(&s->lock);
        return false;
    }
    empty = c->job.pages;
    c->job.pages = s->filling;
    c->job.kind = MULTIFD_PAYLOAD_RAM;
    c->job.flags = 0;
    c->has_job = true;
    g_cond_signal(&c->job_cond);
    g_mutex_unlock(&s->lock);
    s->filling = empty;
    return true;
}

bool multifd_queue_ram_page(RAMBlock *rb, uint64_t offset, Error **errp)
{
    MultiFDSendState *s = multifd_send_get(errp);
    MultiFDPages *p;

    if (!s) {
        return false;
    }
    if ((offset & ~TARGET_PAGE_MASK) || offset >= rb->size) {
        error_setg(errp, "multifd: page offset 0x%" PRIx64 " is not a page "
                   "of RAM block '%s' (size 0x%" PRIx64 ")", offset,
                   rb->idstr, rb->size);
        return false;
    }
    p = s->filling;
    if (p->num && (p->block != rb || p->num == MULTIFD_PAGES_PER_PACKET)) {
        if (!multifd_send_pages(s, errp)) {
            return false;
        }
        p = s->filling;
    }
    p->block = rb;
    p->offsets[p->num++] = offset;
    return true;
}

bool multifd_send_sync(Error **errp)
{
    MultiFDSendState *s = multifd_send_get(errp);
    uint64_t round;
    bool ok = true;

    if (!s) {
        return false;
    }
    if (s->filling->num && !multifd_send_pages(s, errp)) {
        return false;
    }
    g_mutex_lock(&s->lock);
    round = ++s->sync_round;
    trace(multifd_send_sync, "round %" PRIu64, round);
    for (unsigned i = 0; i < s->nr_channels && ok; i++) {
        MultiFDSendChannel *c = multifd_send_wait_idle(s, &s->channels[i],
                                                       errp);

        if (!c) {
            ok = false;
            break;
        }
        c->job.kind = MULTIFD_PAYLOAD_NONE;
        c->job.flags = MULTIFD_FLAG_SYNC;
        c->has_job = true;
        g_cond_signal(&c->job_cond);
    }
    for (unsigned i = 0; i < s->nr_channels && ok; i++) {
        while (ok && s->channels[i].syncs_sent < round) {
            ok = multifd_send_check_locked(s, errp);
            if (ok) {
                multifd_cond_wait_slice(&s->idle_cond, &s->lock);
            }
        }
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

bool multifd_queue_device_state(const char *idstr, uint32_t instance_id,
                                uint32_t idx, uint32_t flags,
                                const void *data, size_t len, Error **errp)
{
    MultiFDSendState *s = multifd_send_get(errp);
    size_t idlen = idstr ? strlen(idstr) : 0;
    MultiFDSendChannel *c;
    uint64_t ticket;
    bool ok;

    if (!s) {
        return false;
    }
    if (idlen < 1 || idlen > MULTIFD_DEVICE_IDSTR_MAX) {
        error_setg(errp, "multifd: device state id '%s' must be 1 to %u "
                   "characters", idstr ? idstr : "", MULTIFD_DEVICE_IDSTR_MAX);
        return false;
    }
    if (len > MULTIFD_DEVICE_STATE_MAX_PACKET - MULTIFD_DEVICE_STATE_HDR_LEN) {
        error_setg(errp, "multifd: device state packet of %zu bytes for '%s' "
                   "exceeds the limit of %llu", len, idstr,
                   MULTIFD_DEVICE_STATE_MAX_PACKET -
                   MULTIFD_DEVICE_STATE_HDR_LEN);
        return false;
    }
    g_mutex_lock(&s->lock);
    c = multifd_send_wait_idle(s, NULL, errp);
    if (!c) {
        g_mutex_unlock(&s->lock);
        return false;
    }
    c->job.kind = MULTIFD_PAYLOAD_DEVICE_STATE;
    c->job.flags = 0;
    c->job.dev_idstr = idstr;
    c->job.dev_instance_id = instance_id;
    multifd_put_be32(c->job.dev_hdr, MULTIFD_DEVICE_STATE_VERSION);
    multifd_put_be32(c->job.dev_hdr + 4, idx);
    multifd_put_be32(c->job.dev_hdr + 8, flags);
    c->job.dev_data = data;
    c->job.dev_len = len;
    c->has_job = true;
    ticket = c->jobs_done + 1;
    g_cond_signal(&c->job_cond);
    /*
     * The channel writes @data from where it is: no copy into a packet
     * (that copy, and faulting in fresh packet buffers, cost the save
     * threads more than the rest of their work).  Wait until it is out,
     * even after a failure or a cancel, which shut the channels down:
     * the caller reuses @data as soon as this returns.  Other devices'
     * threads keep the other channels busy meanwhile.
     */
    while (c->jobs_done < ticket) {
        multifd_cond_wait_slice(&s->idle_cond, &s->lock);
    }
    ok = multifd_send_check_locked(s, errp);
    if (ok && c->failed_job == ticket) {
        /* It failed while the channels were being stopped anyway. */
        error_setg(errp, "multifd channel %u: device state packet %u of "
                   "'%s' was not sent", c->id, idx, idstr);
        ok = false;
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

static bool multifd_send_hello(MultiFDSendChannel *c, const uint8_t uuid[16],
                               Error **errp)
{
    MultiFDSendState *s = c->state;
    MultiFDHello h = {
        .magic = MULTIFD_HELLO_MAGIC,
        .version = MULTIFD_HELLO_VERSION,
        .channel_id = c->id,
        .channel_count = s->params.channels,
        .compression = s->params.compression,
        .page_size = TARGET_PAGE_SIZE,
    };
    uint8_t buf[MULTIFD_HELLO_LEN];
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };

    memcpy(h.uuid, uuid, 16);
    multifd_hello_encode(&h, buf);
    if (!mig_channel_writev_all(c->ch, &iov, 1, errp)) {
        return false;
    }
    __atomic_fetch_add(&send_bytes, sizeof(buf), __ATOMIC_RELAXED);
    return true;
}

/* Connect, greet and start channel @c (not yet counted in nr_channels). */
static bool multifd_send_channel_start(MultiFDSendState *s,
                                       MultiFDSendChannel *c,
                                       const MigrationAddress *dest,
                                       const uint8_t uuid[16], Error **errp)
{
    c->job.pages = g_new0(MultiFDPages, 1);
    if (s->compress) {
        c->zbuf = g_malloc(MULTIFD_RAM_DATA_MAX);
        c->compress_state = s->compress->send_setup(
            s->params.compression == MULTIFD_COMPRESSION_ZLIB ?
            s->params.zlib_level : s->params.zstd_level, errp);
        if (!c->compress_state) {
            return false;
        }
    }
    if (s->params.mapped_ram) {
        /* Another fd on the file: no connection, nothing to greet. */
        int fd = mapped_ram_open(dest->path, true, errp);

        if (fd < 0) {
            return false;
        }
        c->ch = mig_channel_new_fd(fd, dest->path, s->cancel);
    } else {
        c->ch = mig_channel_connect(dest, s->cancel, errp);
        if (!c->ch || !migration_tls_client(c->ch, dest, errp) ||
            !multifd_send_hello(c, uuid, errp)) {
            return false;
        }
    }
    c->thread = g_thread_new(c->name, multifd_send_thread, c);
    return true;
}

/* Undo multifd_send_channel_start (thread already joined, or never run). */
static void multifd_send_channel_free(MultiFDSendState *s,
                                      MultiFDSendChannel *c)
{
    multifd_job_release(&c->job);
    g_free(c->job.pages);
    if (s->compress && c->compress_state) {
        s->compress->send_cleanup(c->compress_state);
    }
    g_free(c->zbuf);
    mig_channel_close(c->ch);
    g_cond_clear(&c->job_cond);
}

static void multifd_send_state_free(MultiFDSendState *s)
{
    for (unsigned i = 0; i < s->params.channels; i++) {
        multifd_send_channel_free(s, &s->channels[i]);
    }
    g_free(s->channels);
    g_free(s->filling);
    error_free(s->error);
    g_cond_clear(&s->idle_cond);
    g_mutex_clear(&s->lock);
    g_free(s);
}

/* Stop every started thread; @abort shuts the connections down first. */
static void multifd_send_stop_threads(MultiFDSendState *s, bool abort)
{
    g_mutex_lock(&s->lock);
    s->stopping = true;
    for (unsigned i = 0; i < s->nr_channels; i++) {
        abort |= s->channels[i].has_job;
    }
    for (unsigned i = 0; i < s->nr_channels; i++) {
        s->channels[i].quit = true;
        g_cond_signal(&s->channels[i].job_cond);
    }
    g_mutex_unlock(&s->lock);
    if (abort) {
        for (unsigned i = 0; i < s->nr_channels; i++) {
            mig_channel_shutdown(s->channels[i].ch);
        }
    }
    for (unsigned i = 0; i < s->nr_channels; i++) {
        g_thread_join(s->channels[i].thread);
        s->channels[i].thread = NULL;
    }
}

bool multifd_send_setup(const MigrationAddress *dest, const uint8_t uuid[16],
                        const MultiFDParams *params, MigCancel *cancel,
                        Error **errp)
{
    MultiFDSendState *s;

    if (send_state) {
        error_setg(errp, "multifd: the source channels are set up already");
        return false;
    }
    if (!multifd_params_check(params, errp)) {
        return false;
    }
    if (params->mapped_ram ? dest->type != MIGRATION_ADDRESS_FILE :
        dest->type != MIGRATION_ADDRESS_TCP &&
        dest->type != MIGRATION_ADDRESS_UNIX) {
        error_setg(errp, "multifd needs %s address, not %s:",
                   params->mapped_ram ? "with mapped-ram a file:" :
                   "a tcp: or unix:",
                   migration_address_type_name(dest->type));
        return false;
    }
    if (params->mapped_ram && params->compression != MULTIFD_COMPRESSION_NONE) {
        error_setg(errp, "multifd with mapped-ram cannot compress");
        return false;
    }
    s = g_new0(MultiFDSendState, 1);
    s->params = *params;
    s->cancel = cancel;
    s->compress = multifd_compress_ops(params->compression);
    g_mutex_init(&s->lock);
    g_cond_init(&s->idle_cond);
    s->filling = g_new0(MultiFDPages, 1);
    s->channels = g_new0(MultiFDSendChannel, params->channels);
    for (unsigned i = 0; i < params->channels; i++) {
        g_cond_init(&s->channels[i].job_cond);
    }
    __atomic_store_n(&send_bytes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&send_device_state_bytes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&send_ram_bytes, 0, __ATOMIC_RELAXED);
    memset(channel_bytes, 0, sizeof(channel_bytes));
    __atomic_store_n(&channel_count, params->channels, __ATOMIC_RELAXED);
    multifd_ram_counters_reset();
    trace(multifd_send_setup, "%u channels, compression %s",
          params->channels, multifd_compression_name(params->compression));

    for (unsigned i = 0; i < params->channels; i++) {
        MultiFDSendChannel *c = &s->channels[i];

        c->id = i;
        c->state = s;
        snprintf(c->name, sizeof(c->name), "multifdsend_%u", i);
        if (!multifd_send_channel_start(s, c, dest, uuid, errp)) {
            error_prepend(errp, "multifd channel %u: ", i);
            goto fail;
        }
        g_mutex_lock(&s->lock);
        s->nr_channels++;
        g_mutex_unlock(&s->lock);
    }
    __atomic_store_n(&send_state, s, __ATOMIC_RELEASE);
    return true;

fail:
    multifd_send_stop_threads(s, true);
    multifd_send_state_free(s);
    return false;
}

void multifd_send_shutdown(void)
{
    MultiFDSendState *s = send_state;

    if (!s) {
        return;
    }
    multifd_send_stop_threads(s, s->filling->num > 0);
    __atomic_store_n(&send_state, NULL, __ATOMIC_RELEASE);
    multifd_send_state_free(s);
}
