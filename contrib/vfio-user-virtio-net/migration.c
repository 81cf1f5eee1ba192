/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * vfio-user-virtio-net: migration, after the vfio-virtio design (seed 001).
 *
 * The device context is a list of device parts (features, common
 * configuration, status, each queue with its in-flight heads, the net
 * configuration, the MAC filter table).  The stream is a sequence of
 * records, each a 16-byte header (size, tag, flags; little-endian like
 * virtio) and then whole parts; docs/interop/virtio-net-migration.rst
 * has the byte layout.  The destination takes a record only once all of
 * it arrived, never a part of a part; it refuses unknown mandatory tags
 * and parts whose size disagrees with their content, and skips unknown
 * optional tags.
 *
 * The device itself knows only RUNNING and STOPPED: RUNNING and PRE_COPY
 * run it, every other state stops it, so the arcs between stopped
 * states (RUNNING_P2P <-> STOP, PRE_COPY_P2P -> STOP_COPY) are no-ops
 * for the device.  A context cannot be read in pieces, so PRE_COPY reads
 * the whole of it, again and again, under a rate limiter: once a context
 * has been read out, no data is reported for --precopy-interval ms.
 * STOP_COPY sends the rest of a context being read, then the final one.
 *
 * The destination takes every whole context as it arrives (RESUMING):
 * it checks it, then programs its receive filter from the MAC table,
 * which is the costly step; a later context with the same table keeps
 * the filter.  That is what PRE_COPY buys: when the final context comes
 * during the downtime, only what changed since the last pre-copied one
 * costs anything.  RESUMING -> STOP installs the last whole context, or
 * fails (the device stays in RESUMING) when the stream was bad or cut.
 */
#include "vfio-user-virtio-net.h"
#include "device-server.h"

#define VNET_RECORD_HDR_SIZE    16
#define VNET_RECORD_MAX         (64 * MiB)
#define VNET_TAG_DEVICE_CONTEXT 1
#define VNET_RECORD_F_OPTIONAL  1u

#define VNET_PART_HDR_SIZE      8
enum {
    VNET_PART_DEVICE_FEATURES = 1,
    VNET_PART_DRIVER_FEATURES = 2,
    VNET_PART_COMMON_CFG = 3,
    VNET_PART_DEVICE_STATUS = 4,
    VNET_PART_QUEUE = 5,
    VNET_PART_NET_CONFIG = 6,
    VNET_PART_MAC_FILTERS = 7,
    VNET_PART_MAX = 7,
};

#define PART_COMMON_CFG_LEN     16
#define PART_STATUS_LEN         4
#define PART_QUEUE_FIXED_LEN    40
#define PART_NET_CONFIG_LEN     12
#define PART_FILTERS_FIXED_LEN  8

static const char *const part_names[] = {
    [VNET_PART_DEVICE_FEATURES] = "DEVICE_FEATURES",
    [VNET_PART_DRIVER_FEATURES] = "DRIVER_FEATURES",
    [VNET_PART_COMMON_CFG] = "COMMON_CFG",
    [VNET_PART_DEVICE_STATUS] = "DEVICE_STATUS",
    [VNET_PART_QUEUE] = "QUEUE",
    [VNET_PART_NET_CONFIG] = "NET_CONFIG",
    [VNET_PART_MAC_FILTERS] = "MAC_FILTERS",
};

/* ---- Little-endian building and reading ---- */

static void put_le(GByteArray *b, uint64_t v, unsigned size)
{
    uint8_t tmp[8];

    for (unsigned i = 0; i < size; i++) {
        tmp[i] = v >> (8 * i);
    }
    g_byte_array_append(b, tmp, size);
}

static uint64_t get_le(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;

    for (unsigned i = size; i-- > 0;) {
        v = v << 8 | p[i];
    }
    return v;
}

static void put_part_header(GByteArray *b, uint16_t type, uint32_t len)
{
    put_le(b, type, 2);
    put_le(b, 0, 2);            /* flags, reserved */
    put_le(b, len, 4);
}

void vnet_state_free_filters(VnetState *s)
{
    g_clear_pointer(&s->filters, g_free);
    g_clear_pointer(&s->filter_keys, g_free);
}

static void state_free(VnetState *s)
{
    if (s) {
        vnet_state_free_filters(s);
        g_free(s);
    }
}

/* ---- Save ---- */

static uint64_t context_size(const VnetState *s)
{
    uint64_t n = VNET_RECORD_HDR_SIZE +
                 4 * VNET_PART_HDR_SIZE + 8 + 8 + PART_COMMON_CFG_LEN +
                 PART_STATUS_LEN +
                 VNET_PART_HDR_SIZE + PART_NET_CONFIG_LEN +
                 VNET_PART_HDR_SIZE + PART_FILTERS_FIXED_LEN +
                 (uint64_t)s->nr_filters * VNET_MAC_LEN;

    for (unsigned i = 0; i < VNET_NUM_QUEUES; i++) {
        n += VNET_PART_HDR_SIZE + PART_QUEUE_FIXED_LEN +
             2ull * s->q[i].nr_inflight;
    }
    return n;
}

/* --x-stream-fault: an extra record with a tag no version knows. */
static void put_unknown_record(GByteArray *b, bool optional)
{
    put_le(b, 4, 8);
    put_le(b, 0x7e57, 4);
    put_le(b, optional ? VNET_RECORD_F_OPTIONAL : 0, 4);
    put_le(b, 0xdeadbeef, 4);
}

/* --x-stream-fault: damage the context record that starts at @start. */
static void damage_context(VnetDevice *d, GByteArray *b, guint start)
{
    uint8_t *p = b->data + start + VNET_RECORD_HDR_SIZE;
    uint8_t *end = b->data + b->len;

    while (p + VNET_PART_HDR_SIZE <= end) {
        uint16_t type = get_le(p, 2);
        uint32_t len = get_le(p + 4, 4);

        if (d->stream_fault == VNET_FAULT_PARTIAL_PART &&
            type == VNET_PART_MAC_FILTERS) {
            p[4] += VNET_MAC_LEN;       /* one entry more than there is */
            return;
        }
        if (d->stream_fault == VNET_FAULT_SIZE_MISMATCH &&
            type == VNET_PART_QUEUE) {
            p[VNET_PART_HDR_SIZE + 36]++;   /* one in-flight head more */
            return;
        }
        p += VNET_PART_HDR_SIZE + len;
    }
}

/* Append one DEVICE_CONTEXT record of the device as it is.  Lock held. */
static void put_context(VnetDevice *d, GByteArray *b)
{
    VnetState *s = &d->state;
    guint start;

    if (d->stream_fault == VNET_FAULT_OPTIONAL_TAG ||
        d->stream_fault == VNET_FAULT_MANDATORY_TAG) {
        put_unknown_record(b, d->stream_fault == VNET_FAULT_OPTIONAL_TAG);
    }
    start = b->len;

    put_le(b, 0, 8);            /* size, filled in below */
    put_le(b, VNET_TAG_DEVICE_CONTEXT, 4);
    put_le(b, 0, 4);            /* flags: mandatory */

    put_part_header(b, VNET_PART_DEVICE_FEATURES, 8);
    put_le(b, d->device_features, 8);
    put_part_header(b, VNET_PART_DRIVER_FEATURES, 8);
    put_le(b, s->driver_features, 8);
    put_part_header(b, VNET_PART_COMMON_CFG, PART_COMMON_CFG_LEN);
    put_le(b, s->dfselect, 4);
    put_le(b, s->gfselect, 4);
    put_le(b, s->msix_config, 2);
    put_le(b, s->queue_select, 2);
    put_le(b, s->config_generation, 1);
    put_le(b, s->isr, 1);
    put_le(b, 0, 2);
    put_part_header(b, VNET_PART_DEVICE_STATUS, PART_STATUS_LEN);
    put_le(b, s->status, 4);
    for (unsigned i = 0; i < VNET_NUM_QUEUES; i++) {
        VnetQueue *q = &s->q[i];

        put_part_header(b, VNET_PART_QUEUE,
                        PART_QUEUE_FIXED_LEN + 2 * q->nr_inflight);
        put_le(b, i, 2);
        put_le(b, q->size, 2);
        put_le(b, q->enabled, 2);
        put_le(b, q->msix_vector, 2);
        put_le(b, q->desc, 8);
        put_le(b, q->driver, 8);
        put_le(b, q->device, 8);
        put_le(b, q->last_avail, 2);
        put_le(b, q->used_idx, 2);
        put_le(b, q->nr_inflight, 2);
        put_le(b, 0, 2);
        for (unsigned j = 0; j < q->nr_inflight; j++) {
            put_le(b, q->inflight[j], 2);
        }
    }
    put_part_header(b, VNET_PART_NET_CONFIG, PART_NET_CONFIG_LEN);
    g_byte_array_append(b, s->mac, VNET_MAC_LEN);
    put_le(b, s->link_status, 2);
    put_le(b, 1, 2);            /* max_virtqueue_pairs */
    put_le(b, 1500, 2);         /* mtu */
    put_part_header(b, VNET_PART_MAC_FILTERS, PART_FILTERS_FIXED_LEN +
                    s->nr_filters * VNET_MAC_LEN);
    put_le(b, s->nr_filters, 4);
    put_le(b, 0, 4);
    g_byte_array_append(b, s->filters, s->nr_filters * VNET_MAC_LEN);

    for (unsigned i = 0; i < 8; i++) {
        b->data[start + i] = (uint64_t)(b->len - start -
                                        VNET_RECORD_HDR_SIZE) >> (8 * i);
    }
    damage_context(d, b, start);
    d->save.contexts++;
}

static void save_take_context(VnetDevice *d, bool keep_unread)
{
    VnetSave *s = &d->save;

    if (!keep_unread || s->off == s->buf->len) {
        g_byte_array_set_size(s->buf, 0);
        s->off = 0;
    }
    g_mutex_lock(&d->lock);
    put_context(d, s->buf);
    g_mutex_unlock(&d->lock);
}

static void save_begin(VnetDevice *d)
{
    VnetSave *s = &d->save;

    s->active = true;
    s->first_done = false;
    s->contexts = 0;
    s->buf = s->buf ? s->buf : g_byte_array_new();
    save_take_context(d, false);
}

static void save_end(VnetDevice *d)
{
    VnetSave *s = &d->save;

    if (s->buf) {
        g_byte_array_free(s->buf, TRUE);
    }
    memset(s, 0, sizeof(*s));
}

static bool in_precopy(VnetDevice *d)
{
    uint32_t st = vus_mig_get_state(d->ctx);

    return st == VFIO_DEVICE_STATE_PRE_COPY ||
           st == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

/*
 * PRE_COPY's rate limiter: a context read out completely starts the
 * interval; once it is over and the reader asks, the context is read
 * from the device again.
 */
static void precopy_refill(VnetDevice *d)
{
    VnetSave *s = &d->save;

    if (s->off < s->buf->len || !in_precopy(d) ||
        g_get_monotonic_time() < s->next_context_us) {
        return;
    }
    save_take_context(d, false);
}

static void precopy_note_read(VnetDevice *d)
{
    VnetSave *s = &d->save;

    if (s->off == s->buf->len && in_precopy(d)) {
        s->first_done = true;
        s->next_context_us = g_get_monotonic_time() +
                             d->precopy_interval_ms * 1000ll;
    }
}

static ssize_t vnet_read_data(void *opaque, void *buf, uint64_t size)
{
    VnetDevice *d = opaque;
    VnetSave *s = &d->save;
    uint64_t n;

    if (!s->active) {
        return -EINVAL;
    }
    precopy_refill(d);
    n = MIN(size, s->buf->len - s->off);
    memcpy(buf, s->buf->data + s->off, n);
    s->off += n;
    if (n) {
        precopy_note_read(d);
    }
    return n;
}

/*
 * What the vfio-virtio driver reports: the unread part of the first
 * context as initial bytes; after it, the unread bytes plus the size of
 * the context as it is now (which a later read would give) as dirty.
 */
static int vnet_precopy_info(void *opaque, uint64_t *initial_bytes,
                             uint64_t *dirty_bytes)
{
    VnetDevice *d = opaque;
    VnetSave *s = &d->save;
    uint64_t unread, ctx;

    if (!s->active) {
        return -EINVAL;
    }
    unread = s->buf->len - s->off;
    if (!s->first_done) {
        *initial_bytes = unread;
        *dirty_bytes = 0;
        return 0;
    }
    g_mutex_lock(&d->lock);
    ctx = context_size(&d->state);
    g_mutex_unlock(&d->lock);
    *initial_bytes = 0;
    *dirty_bytes = unread + ctx;
    return 0;
}

static int vnet_data_size(void *opaque, uint64_t *stop_copy_length)
{
    VnetDevice *d = opaque;
    VnetSave *s = &d->save;

    g_mutex_lock(&d->lock);
    *stop_copy_length = context_size(&d->state);
    g_mutex_unlock(&d->lock);
    if (s->active) {
        *stop_copy_length += s->buf->len - s->off;
    }
    return 0;
}

/* ---- Load ---- */

static void load_end(VnetDevice *d)
{
    VnetLoad *l = &d->load;

    g_free(l->error);
    g_free(l->payload);
    state_free(l->staged);
    memset(l, 0, sizeof(*l));
}

static void load_begin(VnetDevice *d)
{
    load_end(d);
    d->load.active = true;
}

/* Reject the incoming stream: the first problem is kept and logged. */
#define load_fail(d, ...) \
    devserver_stream_reject((d)->ctx, &(d)->load.error, __VA_ARGS__)

/* The fixed size a part of @type has, or 0 when it depends on content. */
static uint32_t part_fixed_len(uint16_t type)
{
    switch (type) {
    case VNET_PART_DEVICE_FEATURES:
    case VNET_PART_DRIVER_FEATURES:
        return 8;
    case VNET_PART_COMMON_CFG:
        return PART_COMMON_CFG_LEN;
    case VNET_PART_DEVICE_STATUS:
        return PART_STATUS_LEN;
    case VNET_PART_NET_CONFIG:
        return PART_NET_CONFIG_LEN;
    default:
        return 0;
    }
}

/* A QUEUE part into @out; false with *@why set. */
static bool parse_queue(VnetDevice *d, const uint8_t *p, uint32_t len,
                        VnetState *out, unsigned *seen, char **why)
{
    unsigned idx;
    VnetQueue *q;

    if (len < PART_QUEUE_FIXED_LEN) {
        *why = g_strdup_printf("QUEUE part of %u bytes, less than its %u "
                               "fixed bytes", len, PART_QUEUE_FIXED_LEN);
        return false;
    }
    idx = get_le(p, 2);
    if (idx >= VNET_NUM_QUEUES || (*seen & (1u << idx))) {
        *why = g_strdup_printf("QUEUE part for queue %u: %s", idx,
                               idx >= VNET_NUM_QUEUES ? "no such queue" :
                               "given twice");
        return false;
    }
    *seen |= 1u << idx;
    q = &out->q[idx];
    q->size = get_le(p + 2, 2);
    q->enabled = get_le(p + 4, 2);
    q->msix_vector = get_le(p + 6, 2);
    q->desc = get_le(p + 8, 8);
    q->driver = get_le(p + 16, 8);
    q->device = get_le(p + 24, 8);
    q->last_avail = get_le(p + 32, 2);
    q->used_idx = get_le(p + 34, 2);
    q->nr_inflight = get_le(p + 36, 2);
    if (len != PART_QUEUE_FIXED_LEN + 2u * q->nr_inflight) {
        *why = g_strdup_printf("QUEUE part for queue %u is %u bytes, its %u "
                               "in-flight heads make it %u", idx, len,
                               q->nr_inflight,
                               PART_QUEUE_FIXED_LEN + 2u * q->nr_inflight);
        return false;
    }
    if (q->size > d->queue_max || (q->size & (q->size - 1)) ||
        q->enabled > 1 || (q->enabled && !q->size) ||
        q->nr_inflight > q->size ||
        (uint16_t)(q->last_avail - q->used_idx) != q->nr_inflight) {
        *why = g_strdup_printf("queue %u: size %u (at most %u here), enabled "
                               "%u, %u in flight between used %u and avail "
                               "%u do not fit together", idx, q->size,
                               d->queue_max, q->enabled, q->nr_inflight,
                               q->used_idx, q->last_avail);
        return false;
    }
    for (unsigned j = 0; j < q->nr_inflight; j++) {
        q->inflight[j] = get_le(p + PART_QUEUE_FIXED_LEN + 2 * j, 2);
        if (q->inflight[j] >= q->size) {
            *why = g_strdup_printf("queue %u: in-flight head %u out of a "
                                   "queue of %u", idx, q->inflight[j],
                                   q->size);
            return false;
        }
    }
    return true;
}

static bool parse_part(VnetDevice *d, uint16_t type, const uint8_t *p,
                       uint32_t len, VnetState *out, unsigned *queues,
                       char **why)
{
    uint64_t features;

    switch (type) {
    case VNET_PART_DEVICE_FEATURES:
        features = get_le(p, 8);
        if (features & ~d->device_features) {
            *why = g_strdup_printf("the source offered features 0x%" PRIx64
                                   ", this device only 0x%" PRIx64, features,
                                   d->device_features);
            return false;
        }
        return true;
    case VNET_PART_DRIVER_FEATURES:
        out->driver_features = get_le(p, 8);
        if (out->driver_features & ~d->device_features) {
            *why = g_strdup_printf("the driver uses features 0x%" PRIx64
                                   " that this device lacks",
                                   out->driver_features & ~d->device_features);
            return false;
        }
        return true;
    case VNET_PART_COMMON_CFG:
        out->dfselect = get_le(p, 4);
        out->gfselect = get_le(p + 4, 4);
        out->msix_config = get_le(p + 8, 2);
        out->queue_select = get_le(p + 10, 2);
        out->config_generation = p[12];
        out->isr = p[13];
        return true;
    case VNET_PART_DEVICE_STATUS:
        features = get_le(p, 4);
        if (features & ~0xcfull) {
            *why = g_strdup_printf("device status 0x%" PRIx64 " has unknown "
                                   "bits", features);
            return false;
        }
        out->status = features;
        return true;
    case VNET_PART_QUEUE:
        return parse_queue(d, p, len, out, queues, why);
    case VNET_PART_NET_CONFIG:
        memcpy(out->mac, p, VNET_MAC_LEN);
        out->link_status = get_le(p + 6, 2);
        return true;
    case VNET_PART_MAC_FILTERS:
        if (len < PART_FILTERS_FIXED_LEN) {
            *why = g_strdup_printf("MAC_FILTERS part of %u bytes", len);
            return false;
        }
        out->nr_filters = get_le(p, 4);
        if (out->nr_filters > VNET_MAX_FILTERS ||
            len != PART_FILTERS_FIXED_LEN +
                   (uint64_t)out->nr_filters * VNET_MAC_LEN) {
            *why = g_strdup_printf("MAC_FILTERS part of %u bytes for %u "
                                   "entries (at most %u)", len,
                                   out->nr_filters, VNET_MAX_FILTERS);
            return false;
        }
        /* One byte more: never a zero-size allocation for an empty table. */
        out->filters = g_malloc((size_t)out->nr_filters * VNET_MAC_LEN + 1);
        memcpy(out->filters, p + PART_FILTERS_FIXED_LEN,
               (size_t)out->nr_filters * VNET_MAC_LEN);
        return true;
    }
    g_assert_not_reached();
}

/* Check the parts of a DEVICE_CONTEXT record into a new state. */
static VnetState *parse_context(VnetDevice *d, const uint8_t *p,
                                uint64_t len, char **why)
{
    VnetState *out = g_new0(VnetState, 1);
    unsigned seen = 0, queues = 0;
    uint64_t pos = 0;

    while (pos < len) {
        uint16_t type;
        uint32_t plen, fixed;

        if (len - pos < VNET_PART_HDR_SIZE) {
            *why = g_strdup_printf("a part header cut after %" PRIu64
                                   " of %u bytes", len - pos,
                                   VNET_PART_HDR_SIZE);
            goto fail;
        }
        type = get_le(p + pos, 2);
        plen = get_le(p + pos + 4, 4);
        if (p[pos + 2] || p[pos + 3]) {
            *why = g_strdup_printf("part type %u has flags 0x%x, none are "
                                   "defined", type, p[pos + 2]);
            goto fail;
        }
        pos += VNET_PART_HDR_SIZE;
        if (!type || type > VNET_PART_MAX) {
            *why = g_strdup_printf("unknown part type %u", type);
            goto fail;
        }
        if (plen > len - pos) {
            *why = g_strdup_printf("partial %s part: %u bytes announced, %"
                                   PRIu64 " left in the record",
                                   part_names[type], plen, len - pos);
            goto fail;
        }
        fixed = part_fixed_len(type);
        if (fixed && plen != fixed) {
            *why = g_strdup_printf("%s part of %u bytes, it has %u",
                                   part_names[type], plen, fixed);
            goto fail;
        }
        if (type != VNET_PART_QUEUE && (seen & (1u << type))) {
            *why = g_strdup_printf("%s part given twice", part_names[type]);
            goto fail;
        }
        seen |= 1u << type;
        if (!parse_part(d, type, p + pos, plen, out, &queues, why)) {
            goto fail;
        }
        pos += plen;
    }
    for (unsigned t = 1; t <= VNET_PART_MAX; t++) {
        if (!(seen & (1u << t))) {
            *why = g_strdup_printf("no %s part", part_names[t]);
            goto fail;
        }
    }
    if (queues != (1u << VNET_NUM_QUEUES) - 1) {
        *why = g_strdup_printf("QUEUE parts for %u of the %u queues",
                               __builtin_popcount(queues), VNET_NUM_QUEUES);
        goto fail;
    }
    return out;
fail:
    state_free(out);
    return NULL;
}

/*
 * A whole context arrived: check it and program the receive filter,
 * unless the table is the one the last context brought.
 */
static ssize_t load_context(VnetDevice *d)
{
    VnetLoad *l = &d->load;
    char *why = NULL;
    VnetState *s = parse_context(d, l->payload, l->size, &why);
    VnetState *prev = l->staged;

    if (!s) {
        ssize_t ret = load_fail(d, "record %" PRIu64 ": %s", l->records, why);

        g_free(why);
        return ret;
    }
    if (prev && prev->nr_filters == s->nr_filters &&
        !memcmp(prev->filters, s->filters,
                (size_t)s->nr_filters * VNET_MAC_LEN)) {
        s->filter_keys = g_steal_pointer(&prev->filter_keys);
    } else if (!vnet_build_filter(s)) {
        state_free(s);
        return load_fail(d, "record %" PRIu64 ": no memory for a filter of "
                         "%u entries", l->records, s->nr_filters);
    }
    state_free(prev);
    l->staged = s;
    return 0;
}

static ssize_t load_header(VnetDevice *d)
{
    VnetLoad *l = &d->load;

    l->size = get_le(l->hdr, 8);
    l->tag = get_le(l->hdr + 8, 4);
    l->flags = get_le(l->hdr + 12, 4);
    l->got = 0;
    l->skipping = false;
    if (l->flags & ~VNET_RECORD_F_OPTIONAL) {
        return load_fail(d, "record %" PRIu64 ": unknown flags 0x%x",
                         l->records, l->flags);
    }
    if (l->tag != VNET_TAG_DEVICE_CONTEXT) {
        if (!(l->flags & VNET_RECORD_F_OPTIONAL)) {
            return load_fail(d, "record %" PRIu64 ": unknown mandatory tag "
                             "%u", l->records, l->tag);
        }
        l->skipping = true;
        return 0;
    }
    if (l->size > VNET_RECORD_MAX) {
        return load_fail(d, "record %" PRIu64 ": %" PRIu64 " bytes, more "
                         "than the %llu a context can take", l->records,
                         l->size, VNET_RECORD_MAX);
    }
    g_free(l->payload);
    l->payload = g_try_malloc(MAX(l->size, 1));
    if (!l->payload) {
        return load_fail(d, "record %" PRIu64 ": no memory for %" PRIu64
                         " bytes", l->records, l->size);
    }
    return 0;
}

static ssize_t load_record_done(VnetDevice *d)
{
    VnetLoad *l = &d->load;
    ssize_t ret = l->skipping ? 0 : load_context(d);

    if (l->skipping) {
        vus_log(d->ctx, VUS_LOG_INFO, "record %" PRIu64 ": optional tag %u "
                "(%" PRIu64 " bytes) skipped", l->records, l->tag, l->size);
    }
    g_clear_pointer(&l->payload, g_free);
    l->hdr_got = 0;
    l->records++;
    return ret;
}

static ssize_t vnet_write_data(void *opaque, const void *buf, uint64_t size)
{
    VnetDevice *d = opaque;
    VnetLoad *l = &d->load;
    const uint8_t *in = buf;
    uint64_t used = 0;
    ssize_t ret;

    if (!l->active || l->error) {
        return -EINVAL;
    }
    while (used < size) {
        uint64_t n;

        if (l->hdr_got < VNET_RECORD_HDR_SIZE) {
            n = MIN(size - used, VNET_RECORD_HDR_SIZE - l->hdr_got);
            memcpy(l->hdr + l->hdr_got, in + used, n);
            l->hdr_got += n;
            used += n;
            if (l->hdr_got < VNET_RECORD_HDR_SIZE) {
                break;
            }
            if ((ret = load_header(d)) < 0) {
                return ret;
            }
        } else {
            n = MIN(size - used, l->size - l->got);
            if (!l->skipping) {
                memcpy(l->payload + l->got, in + used, n);
            }
            l->got += n;
            used += n;
        }
        if (l->got == l->size && (ret = load_record_done(d)) < 0) {
            return ret;
        }
    }
    return size;
}

/* RESUMING -> STOP: install the last whole context, if the stream was whole. */
static int load_commit(VnetDevice *d)
{
    VnetLoad *l = &d->load;
    const char *why = l->error;
    g_autofree char *cut = NULL;

    if (!why && l->hdr_got) {
        cut = l->hdr_got < VNET_RECORD_HDR_SIZE ?
            g_strdup_printf("the stream ends in the header of record %" PRIu64
                            " (%zu of %u bytes)", l->records, l->hdr_got,
                            VNET_RECORD_HDR_SIZE) :
            g_strdup_printf("the stream ends in record %" PRIu64 " (%" PRIu64
                            " of %" PRIu64 " bytes): a partial part",
                            l->records, l->got, l->size);
        why = cut;
    }
    if (!why && !l->staged) {
        why = "the stream holds no device context";
    }
    if (why) {
        vus_log(d->ctx, VUS_LOG_ERROR, "RESUMING -> STOP refused: %s", why);
        return -EINVAL;
    }
    g_mutex_lock(&d->lock);
    vnet_state_free_filters(&d->state);
    d->state = *l->staged;
    g_free(l->staged);
    l->staged = NULL;
    g_mutex_unlock(&d->lock);
    load_end(d);
    return 0;
}

/* ---- Arcs ---- */

/* The device's own two states: RUNNING and PRE_COPY run it. */
static bool device_runs(uint32_t s)
{
    return s == VFIO_DEVICE_STATE_RUNNING || s == VFIO_DEVICE_STATE_PRE_COPY;
}

static int vnet_transition(void *opaque, enum vfio_device_mig_state from,
                           enum vfio_device_mig_state to)
{
    VnetDevice *d = opaque;

    if (from == VFIO_DEVICE_STATE_RESUMING) {
        int ret = load_commit(d);

        if (ret < 0) {
            return ret;
        }
    }
    if (to == VFIO_DEVICE_STATE_RESUMING) {
        load_begin(d);
    }
    /*
     * Between two stopped states (RUNNING_P2P <-> STOP, PRE_COPY_P2P ->
     * STOP_COPY, ...) the device has nothing to do: it stopped at the
     * first of them.  Stopping waits for the worker's batch (the lock).
     */
    if (device_runs(from) != device_runs(to)) {
        g_mutex_lock(&d->lock);
        d->running = device_runs(to);
        if (d->running) {
            vnet_kick(d);
        }
        g_mutex_unlock(&d->lock);
    }
    if (!vus_mig_state_is_saving(from) && vus_mig_state_is_saving(to)) {
        save_begin(d);
    } else if (vus_mig_state_is_saving(from) &&
               to == VFIO_DEVICE_STATE_STOP_COPY) {
        /* The rest of a context being read, then the final context. */
        save_take_context(d, true);
    }
    if (to == VFIO_DEVICE_STATE_STOP_COPY &&
        d->stream_fault == VNET_FAULT_TRUNCATED) {
        g_byte_array_set_size(d->save.buf, d->save.buf->len - 5);
    } else if (vus_mig_state_is_saving(from) &&
               !vus_mig_state_is_saving(to)) {
        save_end(d);
    }
    return 0;
}

void vnet_migration_reset(VnetDevice *d)
{
    save_end(d);
    load_end(d);
}

const VusMigrationOps vnet_migration_ops = {
    .transition = vnet_transition,
    .read_data = vnet_read_data,
    .write_data = vnet_write_data,
    .data_size = vnet_data_size,
    .precopy_info = vnet_precopy_info,
};
