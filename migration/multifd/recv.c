/*
 * Multifd destination: the channels' hellos, their receive threads, and
 * the sync barrier between the channels and the main stream.
 *
 * Each SYNC packet makes its channel's thread count it and then wait
 * until the incoming thread, at the matching "multifd flush" marker of
 * the main stream, has seen every channel reach that round: only then
 * may pages of the next round land, so that none overtakes an older copy
 * that travels on another channel.
 */
#include "qemu/osdep.h"
#include "qemu/uuid.h"
#include "qemu/trace.h"
#include "multifd-internal.h"

TRACE_DEFINE(multifd_recv_new_channel);
TRACE_DEFINE(multifd_recv_sync_main);
TRACE_DEFINE(multifd_recv_error);
TRACE_DEFINE(multifd_recv_packet);

struct MultiFDRecvState {
    MultiFDParams params;
    MigCancel *cancel;
    const MultiFDCompressOps *compress;
    MultiFDRecvChannel *channels;   /* params.channels entries */
    /* RAMBlock -> bitmap of pages written; fixed after setup. */
    GHashTable *written_maps;

    GMutex lock;                /* guards the fields below, channel ch */
    GCond cond;                 /* syncs, connections, ends, errors */
    bool uuid_known;
    uint8_t uuid[16];
    unsigned connected;
    uint64_t syncs_released;    /* rounds the incoming thread let go */
    bool quit;
    Error *error;               /* first failure */
};

/* Set up and torn down by the incoming thread. */
static MultiFDRecvState *recv_state;
/* Outlives the state, for the final statistics. */
static uint64_t recv_bytes;

uint64_t multifd_recv_bytes_received(void)
{
    return __atomic_load_n(&recv_bytes, __ATOMIC_RELAXED);
}

static void multifd_recv_set_error(MultiFDRecvState *s, Error *err)
{
    bool first;

    g_mutex_lock(&s->lock);
    /* Errors caused by shutting down are not news. */
    first = !s->error && !s->quit;
    if (first) {
        s->error = err;
    }
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    if (!first) {
        error_free(err);
        return;
    }
    trace(multifd_recv_error, "%s", error_get_pretty(err));
    if (s->params.error_notify) {
        s->params.error_notify(s->params.error_opaque, err);
    }
}

/* With s->lock held, at a SYNC: count it and wait to be let go. */
static bool multifd_recv_sync_wait_locked(MultiFDRecvChannel *c, Error **errp)
{
    MultiFDRecvState *s = c->state;

    c->syncs_received++;
    g_cond_broadcast(&s->cond);
    while (s->syncs_released < c->syncs_received) {
        if (s->quit || s->error) {
            /* Someone else reports why; this thread just ends. */
            return false;
        }
        if (mig_cancel_fired(s->cancel)) {
            error_setg(errp, "migration cancelled at sync %" PRIu64,
                       c->syncs_received);
            return false;
        }
        multifd_cond_wait_slice(&s->cond, &s->lock);
    }
    return true;
}

static bool multifd_recv_packet(MultiFDRecvChannel *c, bool *eof,
                                Error **errp)
{
    uint8_t buf[MULTIFD_PACKET_HDR_LEN];
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    const MultiFDPayloadOps *ops;
    MultiFDPacketHeader hdr;
    int r;

    r = multifd_readv_full(c->ch, &iov, 1, true, errp);
    if (r <= 0) {
        *eof = r == 0;
        return r == 0;
    }
    multifd_packet_header_decode(buf, &hdr);
    if (!multifd_packet_header_check(&hdr, !c->seen_packet,
                                     c->last_packet_num, errp)) {
        return false;
    }
    c->seen_packet = true;
    c->last_packet_num = hdr.packet_num;
    trace(multifd_recv_packet, "channel %u packet %" PRIu64 " kind %u flags "
          "0x%x payload %u", c->id, hdr.packet_num, hdr.kind, hdr.flags,
          hdr.payload_size);
    ops = multifd_payload_ops(hdr.kind);
    if (ops && !ops->recv(c, hdr.payload_size, errp)) {
        return false;
    }
    __atomic_fetch_add(&recv_bytes, MULTIFD_PACKET_HDR_LEN + hdr.payload_size,
                       __ATOMIC_RELAXED);
    if (hdr.flags & MULTIFD_FLAG_SYNC) {
        MultiFDRecvState *s = c->state;
        bool ok;

        g_mutex_lock(&s->lock);
        ok = multifd_recv_sync_wait_locked(c, errp);
        g_mutex_unlock(&s->lock);
        if (!ok) {
            /* Quitting (no errp) ends the thread like an end of stream. */
            *eof = !(errp && *errp);
            return *eof;
        }
    }
    return true;
}

static gpointer multifd_recv_thread(gpointer opaque)
{
    MultiFDRecvChannel *c = opaque;
    MultiFDRecvState *s = c->state;
    Error *local_err = NULL;
    bool eof = false;

    while (!eof) {
        if (!multifd_recv_packet(c, &eof, &local_err)) {
            error_prepend(&local_err, "multifd channel %u: ", c->id);
            multifd_recv_set_error(s, local_err);
            break;
        }
    }
    g_mutex_lock(&s->lock);
    c->finished = true;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    return NULL;
}

bool multifd_recv_setup(const uint8_t *uuid, const MultiFDParams *params,
                        MigCancel *cancel, Error **errp)
{
    MultiFDRecvState *s;

    if (recv_state) {
        error_setg(errp, "multifd: the destination channels are set up "
                   "already");
        return false;
    }
    if (!multifd_params_check(params, errp)) {
        return false;
    }
    s = g_new0(MultiFDRecvState, 1);
    s->params = *params;
    s->cancel = cancel;
    s->compress = multifd_compress_ops(params->compression);
    s->channels = g_new0(MultiFDRecvChannel, params->channels);
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    if (uuid) {
        memcpy(s->uuid, uuid, 16);
        s->uuid_known = true;
    }
    s->written_maps = g_hash_table_new_full(g_direct_hash, g_direct_equal,
                                            NULL, g_free);
    RAMBLOCK_FOREACH(rb) {
        g_hash_table_insert(s->written_maps, rb, bitmap_new(rb->pages));
    }
    __atomic_store_n(&recv_bytes, 0, __ATOMIC_RELAXED);
    multifd_device_state_gate_arm();
    recv_state = s;
    return true;
}

static bool multifd_hello_check(MultiFDRecvState *s, const MultiFDHello *h,
                                Error **errp)
{
    if (h->magic != MULTIFD_HELLO_MAGIC) {
        error_setg(errp, "multifd hello: bad magic 0x%08x (expected 0x%08x)",
                   h->magic, MULTIFD_HELLO_MAGIC);
        return false;
    }
    if (h->version != MULTIFD_HELLO_VERSION) {
        error_setg(errp, "multifd hello: unsupported version %u (expected "
                   "%u)", h->version, MULTIFD_HELLO_VERSION);
        return false;
    }
    if (h->page_size != TARGET_PAGE_SIZE) {
        error_setg(errp, "multifd hello: page size %u differs from ours "
                   "(%llu)", h->page_size, TARGET_PAGE_SIZE);
        return false;
    }
    if (h->channel_count != s->params.channels) {
        error_setg(errp, "multifd hello: the source uses %u channels, this "
                   "destination expects %u (multifd-channels)",
                   h->channel_count, s->params.channels);
        return false;
    }
    if (h->channel_id >= s->params.channels) {
        error_setg(errp, "multifd hello: channel id %u is out of range (0 "
                   "to %u)", h->channel_id, s->params.channels - 1);
        return false;
    }
    if (h->compression != (uint32_t)s->params.compression) {
        error_setg(errp, "multifd hello: channel %u uses compression %s, "
                   "this destination expects %s (multifd-compression)",
                   h->channel_id,
                   multifd_compression_name((MultiFDCompression)
                                            h->compression),
                   multifd_compression_name(s->params.compression));
        return false;
    }
    return true;
}

/* With s->lock held: the UUID and the channel id's uniqueness. */
static bool multifd_hello_claim_locked(MultiFDRecvState *s,
                                       const MultiFDHello *h, Error **errp)
{
    if (s->uuid_known && memcmp(s->uuid, h->uuid, 16)) {
        char got[UUID_STR_LEN];

        qemu_uuid_unparse(h->uuid, got);
        error_setg(errp, "multifd hello: channel %u belongs to migration %s, "
                   "not to this one", h->channel_id, got);
        return false;
    }
    if (s->channels[h->channel_id].ch) {
        error_setg(errp, "multifd hello: channel %u connected twice",
                   h->channel_id);
        return false;
    }
    if (!s->uuid_known) {
        memcpy(s->uuid, h->uuid, 16);
        s->uuid_known = true;
    }
    return true;
}

bool multifd_recv_new_channel(MigChannel *ch, const uint8_t *prefix,
                              size_t prefix_len, Error **errp)
{
    MultiFDRecvState *s = recv_state;
    uint8_t buf[MULTIFD_HELLO_LEN];
    MultiFDRecvChannel *c;
    void *decompress_state = NULL;
    MultiFDHello h;

    if (!s) {
        error_setg(errp, "multifd: a channel connected, but multifd is not "
                   "set up on this destination");
        goto fail_close;
    }
    if (prefix_len > sizeof(buf)) {
        error_setg(errp, "multifd: %zu bytes already read exceed the hello "
                   "(%d)", prefix_len, MULTIFD_HELLO_LEN);
        goto fail_close;
    }
    if (prefix_len) {
        memcpy(buf, prefix, prefix_len);
    }
    if (!multifd_read_full(ch, buf + prefix_len, sizeof(buf) - prefix_len,
                           errp)) {
        error_prepend(errp, "multifd hello: ");
        goto fail_close;
    }
    multifd_hello_decode(buf, &h);
    if (!multifd_hello_check(s, &h, errp)) {
        goto fail_close;
    }
    if (s->compress) {
        decompress_state = s->compress->recv_setup(errp);
        if (!decompress_state) {
            goto fail_close;
        }
    }

    g_mutex_lock(&s->lock);
    if (!multifd_hello_claim_locked(s, &h, errp)) {
        g_mutex_unlock(&s->lock);
        goto fail_decompress;
    }
    c = &s->channels[h.channel_id];
    c->id = h.channel_id;
    c->state = s;
    c->ch = ch;
    c->compress = s->compress;
    c->decompress_state = decompress_state;
    if (s->compress) {
        c->zbuf = g_malloc(MULTIFD_RAM_DATA_MAX);
    }
    snprintf(c->name, sizeof(c->name), "multifdrecv_%u", c->id);
    c->thread = g_thread_new(c->name, multifd_recv_thread, c);
    s->connected++;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    trace(multifd_recv_new_channel, "channel %u (%s)", c->id, ch->desc);
    return true;

fail_decompress:
    if (decompress_state) {
        s->compress->recv_cleanup(decompress_state);
    }
fail_close:
    mig_channel_close(ch);
    return false;
}

unsigned long *multifd_recv_written_map(MultiFDRecvState *s, RAMBlock *rb)
{
    return g_hash_table_lookup(s->written_maps, rb);
}

bool multifd_recv_check(Error **errp)
{
    MultiFDRecvState *s = recv_state;
    bool ok = true;

    if (!s) {
        error_setg(errp, "multifd: channels are not set up");
        return false;
    }
    g_mutex_lock(&s->lock);
    if (s->error) {
        error_propagate(errp, error_copy(s->error));
        ok = false;
    } else if (mig_cancel_fired(s->cancel)) {
        error_setg(errp, "multifd: migration cancelled");
        ok = false;
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

void multifd_recv_note_page_written(RAMBlock *rb, uint64_t offset)
{
    MultiFDRecvState *s = recv_state;
    unsigned long *map = s ? multifd_recv_written_map(s, rb) : NULL;

    if (map && offset < rb->size) {
        set_bit_atomic(offset >> TARGET_PAGE_BITS, map);
    }
}

bool multifd_recv_all_channels_connected(void)
{
    MultiFDRecvState *s = recv_state;
    bool all;

    if (!s) {
        return false;
    }
    g_mutex_lock(&s->lock);
    all = s->connected == s->params.channels;
    g_mutex_unlock(&s->lock);
    return all;
}

bool multifd_recv_uuid(uint8_t uuid[16])
{
    MultiFDRecvState *s = recv_state;
    bool known;

    if (!s) {
        return false;
    }
    g_mutex_lock(&s->lock);
    known = s->uuid_known;
    if (known) {
        memcpy(uuid, s->uuid, 16);
    }
    g_mutex_unlock(&s->lock);
    return known;
}

/* With s->lock held: whether every channel reached round @target. */
static bool multifd_recv_round_reached_locked(MultiFDRecvState *s,
                                              uint64_t target, Error **errp)
{
    bool all = true;

    for (unsigned i = 0; i < s->params.channels; i++) {
        MultiFDRecvChannel *c = &s->channels[i];

        if (!c->ch) {
            all = false;
        } else if (c->syncs_received < target) {
            if (c->finished) {
                error_setg(errp, "multifd channel %u: ended before sync %"
                           PRIu64, i, target);
                return false;
            }
            all = false;
        }
    }
    return all;
}

bool multifd_recv_sync_main(Error **errp)
{
    MultiFDRecvState *s = recv_state;
    Error *local_err = NULL;
    uint64_t target;

    if (!s) {
        error_setg(errp, "multifd: channels are not set up");
        return false;
    }
    g_mutex_lock(&s->lock);
    target = s->syncs_released + 1;
    for (;;) {
        if (s->error) {
            error_propagate(errp, error_copy(s->error));
            goto fail;
        }
        if (mig_cancel_fired(s->cancel)) {
            error_setg(errp, "multifd: migration cancelled while waiting for "
                       "sync %" PRIu64, target);
            goto fail;
        }
        if (multifd_recv_round_reached_locked(s, target, &local_err)) {
            break;
        }
        if (local_err) {
            error_propagate(errp, local_err);
            goto fail;
        }
        multifd_cond_wait_slice(&s->cond, &s->lock);
    }
    s->syncs_released = target;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    trace(multifd_recv_sync_main, "round %" PRIu64, target);
    return true;

fail:
    g_mutex_unlock(&s->lock);
    return false;
}

void multifd_recv_shutdown(void)
{
    MultiFDRecvState *s = recv_state;

    if (!s) {
        return;
    }
    g_mutex_lock(&s->lock);
    s->quit = true;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    multifd_device_state_gate_shut();
    for (unsigned i = 0; i < s->params.channels; i++) {
        mig_channel_shutdown(s->channels[i].ch);
    }
    for (unsigned i = 0; i < s->params.channels; i++) {
        MultiFDRecvChannel *c = &s->channels[i];

        if (!c->ch) {
            continue;
        }
        g_thread_join(c->thread);
        if (c->decompress_state) {
            s->compress->recv_cleanup(c->decompress_state);
        }
        g_free(c->zbuf);
        mig_channel_close(c->ch);
    }
    recv_state = NULL;
    g_hash_table_destroy(s->written_maps);
    g_free(s->channels);
    error_free(s->error);
    g_cond_clear(&s->cond);
    g_mutex_clear(&s->lock);
    g_free(s);
}
