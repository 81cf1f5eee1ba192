/*
 * vfio-user-dma: migration.
 *
 * The stream is a sequence of records:
 *   header   32 bytes: magic, type, sequence number, payload length, an
 *            argument, and a check of those fields
 *   payload  START: version, page size, memory size, seed
 *            PAGES: whole pages from page "argument" on
 *            END:   registers, dirtying steps, the foreign-page bitmap and
 *                   the fold of every earlier record's trailer
 *   trailer  8 bytes: the checksum of the payload
 * so a dropped, repeated, reordered, corrupted or cut record is found.
 *
 * PRE_COPY sends START and every page once (the initial bytes), then
 * pages changed since they were sent (the dirty bytes); STOP_COPY sends
 * what is still changed, then END.  While the device runs, page data is
 * copied (and summed) as it is read, so a page changing meanwhile is
 * consistent with its sum and is simply sent again later.  In STOP_COPY
 * memory is frozen: long runs of pages go to the socket straight from
 * device memory (the library's zero-copy read) and are summed afterwards,
 * from the cache, before anything may change them.
 *
 * Pages are written straight into device memory as they arrive; registers
 * are applied only when RESUMING -> STOP has checked the whole stream,
 * and a bad stream fails that arc, so a device never runs with
 * half-loaded state (leaving RESUMING then takes a reset).
 */
#include "vfio-user-dma.h"
#include "device-server.h"
#include "qemu/bitmap.h"

#define VDMA_REC_MAGIC      0x52444d56u     /* "VMDR" */
#define VDMA_STREAM_VERSION 2
/* Records while the device runs stay small, so precopy info is current. */
#define VDMA_REC_RUNNING_PAGES  256
#define VDMA_REC_MAX_PAGES      65536

enum {
    VDMA_REC_START = 1,
    VDMA_REC_PAGES = 2,
    VDMA_REC_END = 3,
};

typedef struct VdmaRecord {
    uint32_t magic;
    uint16_t type;
    uint16_t flags;
    uint32_t seq;
    uint32_t len;
    uint64_t arg;
    uint64_t check;         /* of the fields above */
} VdmaRecord;
G_STATIC_ASSERT(sizeof(VdmaRecord) == 32);

#define VDMA_TRAILER_SIZE 8

typedef struct VdmaStartPayload {
    uint32_t version;
    uint32_t page_size;
    uint64_t mem_size;
    uint64_t seed;
} VdmaStartPayload;

typedef struct VdmaEndPayload {
    VdmaRegs regs;
    uint64_t dirty_steps;
    uint64_t stream_sum;
    uint64_t nr_foreign;
} VdmaEndPayload;

static size_t foreign_bytes(VdmaDevice *d)
{
    return BITS_TO_LONGS(d->nr_pages) * sizeof(unsigned long);
}

static size_t end_len(VdmaDevice *d)
{
    return sizeof(VdmaEndPayload) + foreign_bytes(d);
}

static uint64_t header_check(const VdmaRecord *r)
{
    return vdma_mix64(vdma_mix64(((uint64_t)r->magic << 32) ^ r->seq) ^
                      vdma_mix64(((uint64_t)r->type << 48) ^
                                 ((uint64_t)r->flags << 32) ^ r->len) ^
                      vdma_mix64(r->arg ^ 0x5851f42d4c957f2dull));
}

static uint64_t trailer_value(const VdmaSum *sum, uint32_t seq)
{
    return vdma_sum_final(sum) ^ vdma_mix64(seq + 1);
}

/* ---- Save ---- */

static void save_free(VdmaSave *s)
{
    g_free(s->small);
    g_free(s->staging);
    memset(s, 0, sizeof(*s));
}

static void save_begin(VdmaDevice *d)
{
    save_free(&d->save);
    d->save.active = true;
    /* Everything is to be sent once: the initial bytes. */
    bitmap_fill(d->pending, d->nr_pages);
}

static void save_end(VdmaDevice *d)
{
    save_free(&d->save);
}

/* Pages of the first sweep not taken yet. */
static uint64_t save_initial_left(VdmaDevice *d)
{
    return d->save.first_sweep_done ? 0 : d->nr_pages - d->save.cursor;
}

/*
 * The next run of changed pages at or after the cursor (wrapping once
 * the first sweep is done), taken out of the pending bitmap.  Returns the
 * run length (0: nothing changed), at most @max.
 */
static uint64_t save_take_run(VdmaDevice *d, uint64_t max, uint64_t *first)
{
    VdmaSave *s = &d->save;
    uint64_t p = find_next_bit(d->pending, d->nr_pages, s->cursor);
    uint64_t n = 0;

    if (p >= d->nr_pages) {
        s->first_sweep_done = true;
        p = find_next_bit(d->pending, d->nr_pages, 0);
        if (p >= d->nr_pages) {
            s->cursor = 0;
            return 0;
        }
    }
    *first = p;
    while (n < max && p + n < d->nr_pages) {
        unsigned long mask = BIT_MASK(p + n);
        unsigned long old = __atomic_fetch_and(&d->pending[BIT_WORD(p + n)],
                                               ~mask, __ATOMIC_SEQ_CST);
        if (!(old & mask)) {
            break;
        }
        n++;
    }
    s->cursor = p + n;
    if (s->cursor >= d->nr_pages) {
        s->first_sweep_done = true;
        s->cursor = 0;
    }
    return n;
}

/* Start a record: its header becomes the meta bytes to emit first. */
static void save_record_begin(VdmaSave *s, uint16_t type, uint64_t arg,
                              uint64_t len)
{
    VdmaRecord r = {
        .magic = VDMA_REC_MAGIC,
        .type = type,
        .seq = s->seq,
        .len = len,
        .arg = arg,
    };

    r.check = header_check(&r);
    memcpy(s->meta, &r, sizeof(r));
    s->meta_len = sizeof(r);
    s->meta_off = 0;
    s->in_record = true;
    s->type = type;
    s->first_page = arg;
    s->len = len;
    s->off = 0;
    vdma_sum_init(&s->sum);
}

/* The payload is out: its trailer is the next meta bytes. */
static void save_record_finish(VdmaSave *s)
{
    uint64_t trailer = trailer_value(&s->sum, s->seq);

    memcpy(s->meta, &trailer, sizeof(trailer));
    s->meta_len = sizeof(trailer);
    s->meta_off = 0;
    s->stream_sum = vdma_mix64(s->stream_sum ^ trailer);
    s->seq++;
    s->in_record = false;
    if (s->type == VDMA_REC_END) {
        s->end_sent = true;
    }
    g_clear_pointer(&s->small, g_free);
}

static void save_start_record(VdmaDevice *d)
{
    VdmaStartPayload st = {
        .version = VDMA_STREAM_VERSION,
        .page_size = VDMA_PAGE_SIZE,
        .mem_size = d->mem_size,
        .seed = d->seed,
    };

    save_record_begin(&d->save, VDMA_REC_START, 0, sizeof(st));
    d->save.small = g_memdup2(&st, sizeof(st));
    d->save.start_sent = true;
}

static void save_end_record(VdmaDevice *d)
{
    VdmaEndPayload end = { 0 };
    uint8_t *payload = g_malloc0(end_len(d));

    /* STOP_COPY: the device is stopped, nothing changes under us. */
    g_mutex_lock(&d->lock);
    end.regs = d->regs;
    end.dirty_steps = d->dirty_steps;
    g_mutex_unlock(&d->lock);
    end.stream_sum = d->save.stream_sum;
    end.nr_foreign = vdma_count_bits(d->foreign, d->nr_pages);
    memcpy(payload, &end, sizeof(end));
    memcpy(payload + sizeof(end), d->foreign, foreign_bytes(d));
    save_record_begin(&d->save, VDMA_REC_END, d->save.seq, end_len(d));
    d->save.small = payload;
}

/* Where the current record's payload byte @off lives. */
static const uint8_t *save_payload_ptr(VdmaDevice *d)
{
    VdmaSave *s = &d->save;

    if (s->type == VDMA_REC_PAGES) {
        return d->mem + s->first_page * VDMA_PAGE_SIZE + s->off;
    }
    return s->small + s->off;
}

/*
 * Fill @out with up to @size bytes of the stream; fewer only when there
 * is no more for now.
 */
static uint64_t save_fill(VdmaDevice *d, uint8_t *out, uint64_t size,
                          bool stop_copy)
{
    VdmaSave *s = &d->save;
    uint64_t done = 0;

    while (done < size) {
        if (s->meta_off < s->meta_len) {
            size_t n = MIN(size - done, s->meta_len - s->meta_off);

            memcpy(out + done, s->meta + s->meta_off, n);
            s->meta_off += n;
            done += n;
            continue;
        }
        if (s->in_record) {
            if (s->off < s->len) {
                uint64_t n = MIN(size - done, s->len - s->off);

                vdma_sum_update(&s->sum, out + done, save_payload_ptr(d), n);
                s->off += n;
                done += n;
            } else {
                save_record_finish(s);
            }
            continue;
        }
        if (!s->start_sent) {
            save_start_record(d);
            continue;
        }
        if (s->end_sent) {
            break;
        }
        {
            uint64_t first, n;

            n = save_take_run(d, stop_copy ? VDMA_REC_MAX_PAGES :
                              VDMA_REC_RUNNING_PAGES, &first);
            if (n) {
                save_record_begin(s, VDMA_REC_PAGES, first,
                                  n * VDMA_PAGE_SIZE);
                continue;
            }
        }
        if (stop_copy) {
            save_end_record(d);
            continue;
        }
        break;      /* PRE_COPY: nothing more until something changes */
    }
    return done;
}

void vdma_save_flush_sum(VdmaDevice *d)
{
    VdmaSave *s = &d->save;

    if (s->lazy_len) {
        vdma_sum_update(&s->sum, NULL, s->lazy_ptr, s->lazy_len);
        s->lazy_len = 0;
    }
}

/*
 * --state-rate: a device whose state passes through an engine of its own
 * (firmware, a DMA queue) moves it at that engine's rate, however fast
 * the host is.  Account @n bytes to the engine whose next free moment is
 * *@free_us and wait until it has moved them.  Idle time earns no credit.
 */
static void pace_state(VdmaDevice *d, int64_t *free_us, uint64_t n)
{
    int64_t now;

    if (!d->state_rate || !n) {
        return;
    }
    now = g_get_monotonic_time();
    *free_us = MAX(*free_us, now) + n * G_USEC_PER_SEC / d->state_rate;
    if (*free_us > now) {
        g_usleep(*free_us - now);
    }
}

static ssize_t vdma_read_data_zc(void *opaque, const void **data,
                                 uint64_t size)
{
    VdmaDevice *d = opaque;
    VdmaSave *s = &d->save;
    bool stop_copy = vus_mig_get_state(d->ctx) == VFIO_DEVICE_STATE_STOP_COPY;
    ssize_t got;

    if (!s->active) {
        return -EINVAL;
    }
    vdma_save_flush_sum(d);
    /*
     * Frozen memory, in the middle of a run that covers the whole read:
     * hand out device memory itself.  It is summed at the next call, when
     * the copy to the socket has left it in the cache.
     */
    if (stop_copy && s->meta_off == s->meta_len && s->in_record &&
        s->type == VDMA_REC_PAGES && s->len - s->off >= size) {
        const uint8_t *p = save_payload_ptr(d);

        s->lazy_ptr = p;
        s->lazy_len = size;
        s->off += size;
        *data = p;
        pace_state(d, &s->free_us, size);
        return size;
    }
    if (s->staging_size < size) {
        g_free(s->staging);
        s->staging = g_malloc(size);
        s->staging_size = size;
    }
    *data = s->staging;
    got = save_fill(d, s->staging, size, stop_copy);
    if (got > 0) {
        pace_state(d, &s->free_us, got);
    }
    return got;
}

static int vdma_precopy_info(void *opaque, uint64_t *initial_bytes,
                             uint64_t *dirty_bytes)
{
    VdmaDevice *d = opaque;
    VdmaSave *s = &d->save;
    uint64_t pending, initial, in_flight;

    if (!s->active) {
        return -EINVAL;
    }
    pending = vdma_count_bits(d->pending, d->nr_pages);
    initial = MIN(save_initial_left(d), pending);
    /* What was taken out of the bitmap but is not out of the device yet. */
    in_flight = (s->in_record ? s->len - s->off + VDMA_TRAILER_SIZE : 0) +
                (s->meta_len - s->meta_off);
    *initial_bytes = initial * VDMA_PAGE_SIZE;
    *dirty_bytes = (pending - initial) * VDMA_PAGE_SIZE;
    if (!s->start_sent) {
        *initial_bytes += sizeof(VdmaRecord) + sizeof(VdmaStartPayload) +
                          VDMA_TRAILER_SIZE;
    }
    if (s->first_sweep_done) {
        *dirty_bytes += in_flight;
    } else {
        *initial_bytes += in_flight;
    }
    return 0;
}

static int vdma_data_size(void *opaque, uint64_t *stop_copy_length)
{
    VdmaDevice *d = opaque;
    uint64_t pages = d->save.active ?
                     vdma_count_bits(d->pending, d->nr_pages) : d->nr_pages;
    uint64_t records = DIV_ROUND_UP(pages, VDMA_REC_RUNNING_PAGES) + 3;

    *stop_copy_length = pages * VDMA_PAGE_SIZE +
                        records * (sizeof(VdmaRecord) + VDMA_TRAILER_SIZE) +
                        sizeof(VdmaStartPayload) + end_len(d);
    if (d->save.active) {
        *stop_copy_length += d->save.len - d->save.off;
    }
    return 0;
}

/* ---- Load ---- */

static void load_free(VdmaLoad *l)
{
    g_free(l->small);
    g_free(l->end_payload);
    g_free(l->error);
    memset(l, 0, sizeof(*l));
}

static void load_begin(VdmaDevice *d)
{
    load_free(&d->load);
    d->load.active = true;
}

static void load_end(VdmaDevice *d)
{
    load_free(&d->load);
}

/* Reject the incoming stream: the first problem is kept and logged. */
#define load_fail(d, ...) \
    devserver_stream_reject((d)->ctx, &(d)->load.error, __VA_ARGS__)

/* Check a complete header against what the stream allows next. */
static ssize_t load_check_header(VdmaDevice *d, const VdmaRecord *r)
{
    VdmaLoad *l = &d->load;

    if (r->magic != VDMA_REC_MAGIC) {
        return load_fail(d, "record %u has bad magic 0x%08x", l->seq,
                         r->magic);
    }
    if (r->check != header_check(r)) {
        return load_fail(d, "record %u: corrupted header", l->seq);
    }
    if (r->seq != l->seq) {
        return load_fail(d, "record %u arrived where record %u was due",
                         r->seq, l->seq);
    }
    if (l->end_seen) {
        return load_fail(d, "data after the END record");
    }
    switch (r->type) {
    case VDMA_REC_START:
        if (l->start_seen || r->len != sizeof(VdmaStartPayload)) {
            return load_fail(d, "START record %u: %s", r->seq,
                             l->start_seen ? "repeated" : "bad length");
        }
        break;
    case VDMA_REC_PAGES:
        if (!l->start_seen) {
            return load_fail(d, "PAGES record %u before START", r->seq);
        }
        if (!r->len || r->len % VDMA_PAGE_SIZE ||
            r->len / VDMA_PAGE_SIZE > VDMA_REC_MAX_PAGES ||
            r->arg >= d->nr_pages ||
            r->len / VDMA_PAGE_SIZE > d->nr_pages - r->arg) {
            return load_fail(d, "PAGES record %u: %u bytes at page %" PRIu64
                             " do not fit %" PRIu64 " pages", r->seq, r->len,
                             r->arg, d->nr_pages);
        }
        break;
    case VDMA_REC_END:
        if (!l->start_seen || r->len != end_len(d) || r->arg != r->seq) {
            return load_fail(d, "END record %u: bad length %u or count %"
                             PRIu64, r->seq, r->len, r->arg);
        }
        break;
    default:
        return load_fail(d, "record %u has unknown type %u", r->seq, r->type);
    }
    return 0;
}

/* The trailer of @r is in: verify the record and act on it. */
static ssize_t load_finish_record(VdmaDevice *d, const VdmaRecord *r)
{
    VdmaLoad *l = &d->load;
    uint64_t trailer;

    memcpy(&trailer, l->trailer_buf, sizeof(trailer));
    if (trailer != trailer_value(&l->sum, r->seq)) {
        return load_fail(d, "record %u (type %u) fails its checksum", r->seq,
                         r->type);
    }
    if (r->type == VDMA_REC_START) {
        VdmaStartPayload st;

        memcpy(&st, l->small, sizeof(st));
        if (st.version != VDMA_STREAM_VERSION ||
            st.page_size != VDMA_PAGE_SIZE || st.mem_size != d->mem_size) {
            return load_fail(d, "stream of version %u, page size %u, memory "
                             "%" PRIu64 " bytes does not match this device "
                             "(version %u, page %u, memory %" PRIu64 ")",
                             st.version, st.page_size, st.mem_size,
                             VDMA_STREAM_VERSION, VDMA_PAGE_SIZE,
                             d->mem_size);
        }
        l->seed = st.seed;
        l->start_seen = true;
    } else if (r->type == VDMA_REC_END) {
        VdmaEndPayload end;

        memcpy(&end, l->small, sizeof(end));
        if (end.stream_sum != l->stream_sum) {
            return load_fail(d, "END record: the stream's records do not add "
                             "up");
        }
        if (end.nr_foreign != vdma_count_bits((unsigned long *)(l->small +
                                              sizeof(end)), d->nr_pages)) {
            return load_fail(d, "END record: foreign page count mismatch");
        }
        l->end_seen = true;
        l->end_payload = g_steal_pointer(&l->small);
    }
    g_clear_pointer(&l->small, g_free);
    l->stream_sum = vdma_mix64(l->stream_sum ^ trailer);
    l->seq++;
    return 0;
}

static ssize_t vdma_write_data(void *opaque, const void *buf, uint64_t size)
{
    VdmaDevice *d = opaque;
    VdmaLoad *l = &d->load;
    const uint8_t *in = buf;
    uint64_t used = 0;

    if (!l->active || l->error) {
        return -EINVAL;
    }
    while (used < size) {
        VdmaRecord r;
        ssize_t ret;

        if (l->hdr_got < sizeof(r)) {
            size_t n = MIN(size - used, sizeof(r) - l->hdr_got);

            memcpy(l->hdr_buf + l->hdr_got, in + used, n);
            l->hdr_got += n;
            used += n;
            if (l->hdr_got < sizeof(r)) {
                break;
            }
            memcpy(&r, l->hdr_buf, sizeof(r));
            ret = load_check_header(d, &r);
            if (ret < 0) {
                return ret;
            }
            l->payload_got = 0;
            l->trailer_got = 0;
            vdma_sum_init(&l->sum);
            g_free(l->small);
            l->small = r.type == VDMA_REC_PAGES ? NULL : g_malloc(r.len);
            continue;
        }
        memcpy(&r, l->hdr_buf, sizeof(r));
        if (l->payload_got < r.len) {
            uint64_t n = MIN(size - used, r.len - l->payload_got);
            uint8_t *dst = r.type == VDMA_REC_PAGES ?
                d->mem + r.arg * VDMA_PAGE_SIZE + l->payload_got :
                l->small + l->payload_got;

            vdma_sum_update(&l->sum, dst, in + used, n);
            l->payload_got += n;
            used += n;
            continue;
        }
        {
            size_t n = MIN(size - used, VDMA_TRAILER_SIZE - l->trailer_got);

            memcpy(l->trailer_buf + l->trailer_got, in + used, n);
            l->trailer_got += n;
            used += n;
            if (l->trailer_got == VDMA_TRAILER_SIZE) {
                ret = load_finish_record(d, &r);
                if (ret < 0) {
                    return ret;
                }
                l->hdr_got = 0;
            }
        }
    }
    pace_state(d, &l->free_us, size);
    return size;
}

/* RESUMING -> STOP: accept the loaded state only if the stream was whole. */
static int load_commit(VdmaDevice *d)
{
    VdmaLoad *l = &d->load;
    VdmaEndPayload end;

    if (l->error) {
        vus_log(d->ctx, VUS_LOG_ERROR, "RESUMING -> STOP refused: %s",
                l->error);
        return -EINVAL;
    }
    if (!l->end_seen) {
        vus_log(d->ctx, VUS_LOG_ERROR, "RESUMING -> STOP refused: the stream "
                "is truncated (%u whole records, no END%s)", l->seq,
                l->hdr_got ? ", the last one cut short" : "");
        return -EINVAL;
    }
    memcpy(&end, l->end_payload, sizeof(end));
    g_mutex_lock(&d->lock);
    d->regs = end.regs;
    d->regs.status &= ~VDMA_STATUS_BUSY;
    d->dirty_steps = end.dirty_steps;
    d->seed = l->seed;
    g_mutex_unlock(&d->lock);
    memcpy(d->foreign, l->end_payload + sizeof(end), foreign_bytes(d));
    load_end(d);
    return 0;
}

/* ---- Arcs ---- */

static bool state_is_running(uint32_t s)
{
    return s == VFIO_DEVICE_STATE_RUNNING ||
           s == VFIO_DEVICE_STATE_RUNNING_P2P ||
           s == VFIO_DEVICE_STATE_PRE_COPY ||
           s == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

static int vdma_transition(void *opaque, enum vfio_device_mig_state from,
                           enum vfio_device_mig_state to)
{
    VdmaDevice *d = opaque;

    for (unsigned i = 0; i < d->delay_arcs.n; i++) {
        if (d->delay_arcs.arc[i].from == from &&
            d->delay_arcs.arc[i].to == to) {
            g_usleep(d->delay_arcs.arc[i].ms * 1000ULL);
        }
    }
    for (unsigned i = 0; i < d->fail_arcs.n; i++) {
        if (d->fail_arcs.arc[i].from == from && d->fail_arcs.arc[i].to == to) {
            vus_log(d->ctx, VUS_LOG_WARN, "arc %s -> %s fails as asked "
                    "(--fail-arc)", vus_mig_state_name(from),
                    vus_mig_state_name(to));
            return -EIO;
        }
    }

    if (from == VFIO_DEVICE_STATE_RESUMING) {
        int ret = load_commit(d);

        if (ret < 0) {
            return ret;
        }
    }
    if (to == VFIO_DEVICE_STATE_RESUMING) {
        load_begin(d);
    }

    /* Stop device activity before a stopped state, so memory is stable. */
    if (state_is_running(from) && !state_is_running(to)) {
        vdma_quiesce(d);
    }
    if (!vus_mig_state_is_saving(from) && vus_mig_state_is_saving(to)) {
        save_begin(d);
    } else if (vus_mig_state_is_saving(from) &&
               !vus_mig_state_is_saving(to)) {
        /* The end of a stream, or a cancel in the middle of one. */
        save_end(d);
    }
    if (!state_is_running(from) && state_is_running(to)) {
        vdma_resume(d);
    }
    return 0;
}

void vdma_migration_reset(VdmaDevice *d)
{
    save_end(d);
    load_end(d);
}

const VusMigrationOps vdma_migration_ops = {
    .transition = vdma_transition,
    .read_data_zc = vdma_read_data_zc,
    .write_data = vdma_write_data,
    .data_size = vdma_data_size,
    .precopy_info = vdma_precopy_info,
};
