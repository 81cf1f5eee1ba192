/*
 * vfio-user client commands for migration: DEVICE_FEATURE (migration
 * flags, device state, MIG_DATA_SIZE, DMA logging), MIG_DATA_READ/WRITE
 * and the precopy-info extension.
 */
#include "qemu/osdep.h"
#include "hw/vfio-user/client.h"

static const char *const state_names[VFIO_DEVICE_STATE_NR] = {
    [VFIO_DEVICE_STATE_ERROR] = "ERROR",
    [VFIO_DEVICE_STATE_STOP] = "STOP",
    [VFIO_DEVICE_STATE_RUNNING] = "RUNNING",
    [VFIO_DEVICE_STATE_STOP_COPY] = "STOP_COPY",
    [VFIO_DEVICE_STATE_RESUMING] = "RESUMING",
    [VFIO_DEVICE_STATE_RUNNING_P2P] = "RUNNING_P2P",
    [VFIO_DEVICE_STATE_PRE_COPY] = "PRE_COPY",
    [VFIO_DEVICE_STATE_PRE_COPY_P2P] = "PRE_COPY_P2P",
};

const char *vfio_user_mig_state_name(uint32_t state)
{
    return state < VFIO_DEVICE_STATE_NR ? state_names[state] : "?";
}

bool vfio_user_mig_state_parse(const char *str, uint32_t *state)
{
    g_autofree char *norm = g_ascii_strup(str, -1);

    g_strdelimit(norm, "-", '_');
    for (uint32_t i = 0; i < VFIO_DEVICE_STATE_NR; i++) {
        if (!strcmp(norm, state_names[i])) {
            *state = i;
            return true;
        }
    }
    return false;
}

/*
 * One DEVICE_FEATURE exchange.  The reply's data (after the 8-byte
 * feature header) lands in @out; *@got says how much of it came.
 */
static bool feature_exchange(VFIOUserProxy *proxy, uint32_t flags,
                             const void *data, size_t len,
                             void *out, size_t out_len, size_t *got,
                             uint32_t *server_errno, Error **errp)
{
    struct vfio_device_feature hdr = {
        .argsz = sizeof(hdr) + MAX(len, out_len),
        .flags = flags,
    };
    struct vfio_device_feature reply_hdr;
    struct iovec iov[2] = {
        { &hdr, sizeof(hdr) },
        { (void *)data, len },
    };
    VFIOUserRequest req = {
        .cmd = VFIO_USER_DEVICE_FEATURE,
        .iov = iov, .iov_cnt = len ? 2 : 1,
        .reply_fixed = &reply_hdr, .reply_fixed_size = sizeof(reply_hdr),
        .reply_data = out, .reply_data_size = out_len,
    };
    bool ok = vfio_user_request(proxy, &req, errp);

    if (server_errno) {
        *server_errno = req.error_no;
    }
    if (!ok) {
        error_prepend(errp, "feature %u: ", flags & VFIO_DEVICE_FEATURE_MASK);
        return false;
    }
    *got = req.reply_len > sizeof(reply_hdr) ?
           MIN(req.reply_len - sizeof(reply_hdr), out_len) : 0;
    return true;
}

bool vfio_user_device_feature(VFIOUserProxy *proxy, uint32_t flags,
                              const void *data, size_t len,
                              void *out, size_t out_len,
                              uint32_t *server_errno, Error **errp)
{
    size_t got;

    if (!feature_exchange(proxy, flags, data, len, out, out_len, &got,
                          server_errno, errp)) {
        return false;
    }
    if (got < out_len) {
        error_setg(errp, "vfio-user %s: feature %u reply carries %zu bytes of "
                   "data, %zu expected", vfio_user_proxy_name(proxy),
                   flags & VFIO_DEVICE_FEATURE_MASK, got, out_len);
        return false;
    }
    return true;
}

bool vfio_user_mig_get_flags(VFIOUserProxy *proxy, uint64_t *flags,
                             Error **errp)
{
    struct vfio_device_feature_migration mig;

    if (!vfio_user_device_feature(proxy, VFIO_DEVICE_FEATURE_GET |
                                  VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0,
                                  &mig, sizeof(mig), NULL, errp)) {
        return false;
    }
    if (!(mig.flags & VFIO_MIGRATION_STOP_COPY)) {
        error_setg(errp, "vfio-user %s: device migration flags 0x%" PRIx64
                   " lack STOP_COPY", vfio_user_proxy_name(proxy),
                   (uint64_t)mig.flags);
        return false;
    }
    *flags = mig.flags;
    return true;
}

bool vfio_user_mig_get_state(VFIOUserProxy *proxy, uint32_t *state,
                             Error **errp)
{
    struct vfio_device_feature_mig_state st;

    if (!vfio_user_device_feature(proxy, VFIO_DEVICE_FEATURE_GET |
                                  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0,
                                  &st, sizeof(st), NULL, errp)) {
        return false;
    }
    if (st.device_state >= VFIO_DEVICE_STATE_NR) {
        error_setg(errp, "vfio-user %s: device reports unknown migration "
                   "state %u", vfio_user_proxy_name(proxy), st.device_state);
        return false;
    }
    *state = st.device_state;
    return true;
}

bool vfio_user_mig_set_state(VFIOUserProxy *proxy, uint32_t state,
                             uint32_t *server_errno, Error **errp)
{
    struct vfio_device_feature_mig_state st = {
        .device_state = state,
        .data_fd = -1,
    };
    size_t got;

    if (!feature_exchange(proxy, VFIO_DEVICE_FEATURE_SET |
                          VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st, sizeof(st),
                          NULL, 0, &got, server_errno, errp)) {
        error_prepend(errp, "setting migration state %s: ",
                      vfio_user_mig_state_name(state));
        return false;
    }
    return true;
}

bool vfio_user_mig_data_size(VFIOUserProxy *proxy, uint64_t *stop_copy_length,
                             Error **errp)
{
    struct vfio_device_feature_mig_data_size size;

    if (!vfio_user_peer_caps(proxy)->mig_data_size) {
        error_setg(errp, "vfio-user %s: the server does not offer the "
                   "MIG_DATA_SIZE extension", vfio_user_proxy_name(proxy));
        return false;
    }
    if (!vfio_user_device_feature(proxy, VFIO_DEVICE_FEATURE_GET |
                                  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, NULL, 0,
                                  &size, sizeof(size), NULL, errp)) {
        return false;
    }
    *stop_copy_length = size.stop_copy_length;
    return true;
}

bool vfio_user_mig_precopy_info(VFIOUserProxy *proxy, uint64_t *initial_bytes,
                                uint64_t *dirty_bytes, Error **errp)
{
    struct vfio_precopy_info info = { 0 };
    VFIOUserRequest req = {
        .cmd = VFIO_USER_X_MIG_PRECOPY_INFO,
        .reply_fixed = &info, .reply_fixed_size = sizeof(info),
    };

    if (!vfio_user_peer_caps(proxy)->precopy_info) {
        error_setg(errp, "vfio-user %s: the server does not offer the "
                   "precopy-info extension", vfio_user_proxy_name(proxy));
        return false;
    }
    if (!vfio_user_request(proxy, &req, errp)) {
        return false;
    }
    if (req.reply_len < sizeof(info)) {
        error_setg(errp, "vfio-user %s: precopy-info reply of %zu bytes is "
                   "too short", vfio_user_proxy_name(proxy), req.reply_len);
        return false;
    }
    *initial_bytes = info.initial_bytes;
    *dirty_bytes = info.dirty_bytes;
    return true;
}

size_t vfio_user_mig_data_chunk(VFIOUserProxy *proxy)
{
    return MIN(vfio_user_peer_caps(proxy)->max_data_xfer_size,
               (uint64_t)UINT32_MAX - sizeof(struct vfio_user_mig_data));
}

ssize_t vfio_user_mig_data_read(VFIOUserProxy *proxy, void *buf, size_t size,
                                Error **errp)
{
    size_t ask_size = MIN(size, vfio_user_mig_data_chunk(proxy));
    struct vfio_user_mig_data ask = {
        .argsz = sizeof(ask) + ask_size,
        .size = ask_size,
    };
    struct vfio_user_mig_data got = { 0 };
    struct iovec iov = { &ask, sizeof(ask) };
    VFIOUserRequest req = {
        .cmd = VFIO_USER_MIG_DATA_READ,
        .iov = &iov, .iov_cnt = 1,
        .reply_fixed = &got, .reply_fixed_size = sizeof(got),
        .reply_data = buf, .reply_data_size = ask_size,
    };

    if (!vfio_user_request(proxy, &req, errp)) {
        return -1;
    }
    /* Servers may pad the reply: the size field is what counts. */
    if (req.reply_len < sizeof(got) || got.size > ask_size ||
        got.size > req.reply_len - sizeof(got)) {
        error_setg(errp, "vfio-user %s: MIG_DATA_READ of %zu bytes got a "
                   "reply of %zu bytes claiming %u", vfio_user_proxy_name(proxy),
                   ask_size, req.reply_len, got.size);
        return -1;
    }
    return got.size;
}

/* One MIG_DATA_READ of a pipelined drain. */
typedef struct DrainSlot {
    struct vfio_user_mig_data ask;
    struct vfio_user_mig_data got;
    struct iovec iov;
    VFIOUserRequest req;
    VFIOUserPending *pending;   /* NULL once waited for */
    bool ok;                    /* the wait's result */
    Error *err;                 /* and its error, until collected */
    uint8_t *buf;
} DrainSlot;

#define DRAIN_MAX_DEPTH 16

struct VFIOUserMigReader {
    VFIOUserProxy *proxy;
    size_t read_size;
    unsigned depth;
    DrainSlot slots[DRAIN_MAX_DEPTH];
};

VFIOUserMigReader *vfio_user_mig_reader_new(VFIOUserProxy *proxy,
                                            size_t read_size, unsigned depth)
{
    VFIOUserMigReader *r = g_new0(VFIOUserMigReader, 1);

    r->proxy = proxy;
    r->read_size = MIN(read_size ? read_size : VFIO_USER_MIG_READ_SIZE,
                       vfio_user_mig_data_chunk(proxy));
    if (!depth) {
        depth = MAX(2, MIN(VFIO_USER_MIG_READ_IN_FLIGHT /
                           MAX(r->read_size, 1), VFIO_USER_MIG_READ_DEPTH));
    }
    r->depth = MAX(1, MIN(depth, DRAIN_MAX_DEPTH));
    for (unsigned i = 0; i < r->depth; i++) {
        r->slots[i].buf = g_malloc(r->read_size);
    }
    return r;
}

void vfio_user_mig_reader_free(VFIOUserMigReader *r)
{
    if (!r) {
        return;
    }
    for (unsigned i = 0; i < r->depth; i++) {
        g_free(r->slots[i].buf);
    }
    g_free(r);
}

static void drain_issue(VFIOUserProxy *proxy, DrainSlot *slot, size_t size,
                        Error **errp)
{
    slot->ask = (struct vfio_user_mig_data) {
        .argsz = sizeof(slot->ask) + size,
        .size = size,
    };
    slot->iov = (struct iovec) { &slot->ask, sizeof(slot->ask) };
    slot->req = (VFIOUserRequest) {
        .cmd = VFIO_USER_MIG_DATA_READ,
        .iov = &slot->iov, .iov_cnt = 1,
        .reply_fixed = &slot->got, .reply_fixed_size = sizeof(slot->got),
        .reply_data = slot->buf, .reply_data_size = size,
    };
    slot->pending = vfio_user_request_send(proxy, &slot->req, errp);
}

/* Wait for @slot's reply, once; the result stays in the slot. */
static void drain_wait(VFIOUserProxy *proxy, DrainSlot *slot)
{
    if (slot->pending) {
        slot->ok = vfio_user_request_wait(proxy,
                                          g_steal_pointer(&slot->pending),
                                          &slot->err);
    }
}

/* Wait for @slot if not done yet; returns its data size or -1. */
static ssize_t drain_collect(VFIOUserProxy *proxy, DrainSlot *slot,
                             Error **errp)
{
    size_t asked = slot->ask.size;

    drain_wait(proxy, slot);
    if (!slot->ok) {
        error_propagate(errp, g_steal_pointer(&slot->err));
        return -1;
    }
    if (slot->req.reply_len < sizeof(slot->got) || slot->got.size > asked ||
        slot->got.size > slot->req.reply_len - sizeof(slot->got)) {
        error_setg(errp, "vfio-user %s: MIG_DATA_READ of %zu bytes got a "
                   "reply of %zu bytes claiming %u", vfio_user_proxy_name(proxy),
                   asked, slot->req.reply_len, slot->got.size);
        return -1;
    }
    return slot->got.size;
}

int64_t vfio_user_mig_reader_drain(VFIOUserMigReader *r, uint64_t max_bytes,
                                   VFIOUserMigSink *sink, void *opaque,
                                   bool *end, Error **errp)
{
    VFIOUserProxy *proxy = r->proxy;
    uint64_t requested = 0;
    int64_t total = 0;
    unsigned head = 0, in_flight = 0, batch;
    bool stop = false, failed = false;
    Error *local_err = NULL;

    *end = false;
    for (;;) {
        /* Keep the server busy while we take in what it sent. */
        while (!stop && !failed && in_flight < r->depth &&
               requested < max_bytes) {
            DrainSlot *slot = &r->slots[(head + in_flight) % r->depth];
            size_t size = MIN(r->read_size, max_bytes - requested);

            drain_issue(proxy, slot, size, &local_err);
            if (!slot->pending) {
                failed = true;
                break;
            }
            requested += size;
            in_flight++;
        }
        if (!in_flight) {
            break;
        }
        /*
         * Take replies in batches of half the depth, sleeping once for
         * the last of them: replies come in order, so the others are in
         * by then, and the server still has the other half to work on.
         * One wake-up per batch instead of one per reply.
         */
        batch = MIN(in_flight, MAX(1, r->depth / 2));
        if (!failed && batch > 1) {
            drain_wait(proxy, &r->slots[(head + batch - 1) % r->depth]);
        }
        while (batch--) {
            DrainSlot *slot = &r->slots[head];
            ssize_t n;

            /* After a failure, still collect what is in flight. */
            n = drain_collect(proxy, slot, failed ? NULL : &local_err);
            head = (head + 1) % r->depth;
            in_flight--;
            if (failed) {
                continue;
            }
            if (n < 0 || (n && !sink(opaque, slot->buf, n, &local_err))) {
                failed = true;
                continue;
            }
            total += n;
            /* A short reply: nothing more for now.  In-flight ones count. */
            *end = (size_t)n < slot->ask.size;
            stop |= *end;
        }
    }
    if (failed) {
        error_propagate(errp, local_err);
        return -1;
    }
    return total;
}

int64_t vfio_user_mig_data_drain(VFIOUserProxy *proxy, uint64_t max_bytes,
                                 VFIOUserMigSink *sink, void *opaque,
                                 bool *end, Error **errp)
{
    /* No more buffers than @max_bytes can use (UINT64_MAX must not wrap). */
    uint64_t read_size = MIN(VFIO_USER_MIG_READ_SIZE,
                             vfio_user_mig_data_chunk(proxy));
    uint64_t reads = max_bytes / read_size + !!(max_bytes % read_size);
    VFIOUserMigReader *r = vfio_user_mig_reader_new(
        proxy, 0, MAX(1, MIN(reads, VFIO_USER_MIG_READ_DEPTH)));
    int64_t ret = vfio_user_mig_reader_drain(r, max_bytes, sink, opaque, end,
                                             errp);

    vfio_user_mig_reader_free(r);
    return ret;
}

/* One MIG_DATA_WRITE of a pipelined write. */
typedef struct WriteSlot {
    struct vfio_user_mig_data hdr;
    struct iovec iov[2];
    VFIOUserRequest req;
    VFIOUserPending *pending;
} WriteSlot;

#define WRITE_DEPTH 4

bool vfio_user_mig_data_writev(VFIOUserProxy *proxy, const struct iovec *iov,
                               unsigned iov_cnt, Error **errp)
{
    size_t chunk = vfio_user_mig_data_chunk(proxy);
    WriteSlot slots[WRITE_DEPTH];
    unsigned head = 0, in_flight = 0, cur = 0;
    size_t cur_off = 0;
    bool failed = false;
    Error *local_err = NULL;

    /*
     * Several messages in flight, so the server works on one while the
     * next is on its way; a message never spans two buffers, so a batch
     * of small buffers keeps the pipe as full as one big buffer.  The
     * first error stops sending; what is in flight is still collected.
     */
    for (;;) {
        while (cur < iov_cnt && cur_off == iov[cur].iov_len) {
            cur++;
            cur_off = 0;
        }
        if (!in_flight && (failed || cur == iov_cnt)) {
            break;
        }
        while (!failed && in_flight < WRITE_DEPTH && cur < iov_cnt) {
            WriteSlot *w = &slots[(head + in_flight) % WRITE_DEPTH];
            size_t n = MIN(iov[cur].iov_len - cur_off, chunk);

            w->hdr = (struct vfio_user_mig_data) {
                .argsz = sizeof(w->hdr) + n,
                .size = n,
            };
            w->iov[0] = (struct iovec) { &w->hdr, sizeof(w->hdr) };
            w->iov[1] = (struct iovec) {
                (char *)iov[cur].iov_base + cur_off, n
            };
            w->req = (VFIOUserRequest) {
                .cmd = VFIO_USER_MIG_DATA_WRITE,
                .iov = w->iov, .iov_cnt = 2,
            };
            w->pending = vfio_user_request_send(proxy, &w->req, &local_err);
            if (!w->pending) {
                failed = true;
                break;
            }
            cur_off += n;
            in_flight++;
            while (cur < iov_cnt && cur_off == iov[cur].iov_len) {
                cur++;
                cur_off = 0;
            }
        }
        if (in_flight) {
            WriteSlot *w = &slots[head];

            if (!vfio_user_request_wait(proxy, g_steal_pointer(&w->pending),
                                        failed ? NULL : &local_err)) {
                failed = true;
            }
            head = (head + 1) % WRITE_DEPTH;
            in_flight--;
        }
    }
    if (failed) {
        error_propagate(errp, local_err);
        return false;
    }
    return true;
}

bool vfio_user_mig_data_write(VFIOUserProxy *proxy, const void *buf,
                              size_t size, Error **errp)
{
    struct iovec iov = { (void *)buf, size };

    return vfio_user_mig_data_writev(proxy, &iov, 1, errp);
}

bool vfio_user_dma_logging_start(VFIOUserProxy *proxy, uint64_t *page_size,
                                 const struct vfio_device_feature_dma_logging_range *ranges,
                                 uint32_t nr_ranges, Error **errp)
{
    size_t len;
    g_autofree struct vfio_user_dma_logging_control *ctl = NULL;
    struct vfio_user_dma_logging_control out = { 0 };
    size_t got;

    if (nr_ranges > 64 * KiB) {
        error_setg(errp, "vfio-user %s: DMA logging over %u ranges is too many",
                   vfio_user_proxy_name(proxy), nr_ranges);
        return false;
    }
    len = sizeof(*ctl) + nr_ranges * sizeof(ranges[0]);
    ctl = g_malloc0(len);
    ctl->page_size = *page_size;
    ctl->num_ranges = nr_ranges;
    if (nr_ranges) {
        memcpy(ctl->ranges, ranges, nr_ranges * sizeof(ranges[0]));
    }
    if (!feature_exchange(proxy, VFIO_DEVICE_FEATURE_SET |
                          VFIO_DEVICE_FEATURE_DMA_LOGGING_START, ctl, len,
                          &out, sizeof(out), &got, NULL, errp)) {
        error_prepend(errp, "starting DMA logging: ");
        return false;
    }
    /* The reply may carry the page size the device settled on. */
    if (got >= sizeof(out.page_size) && out.page_size) {
        if (out.page_size & (out.page_size - 1)) {
            error_setg(errp, "vfio-user %s: DMA logging page size %" PRIu64
                       " is not a power of two", vfio_user_proxy_name(proxy),
                       (uint64_t)out.page_size);
            return false;
        }
        *page_size = out.page_size;
    }
    return true;
}

bool vfio_user_dma_logging_stop(VFIOUserProxy *proxy, Error **errp)
{
    size_t got;

    if (!feature_exchange(proxy, VFIO_DEVICE_FEATURE_SET |
                          VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0,
                          NULL, 0, &got, NULL, errp)) {
        error_prepend(errp, "stopping DMA logging: ");
        return false;
    }
    return true;
}

bool vfio_user_dma_logging_report(VFIOUserProxy *proxy, uint64_t iova,
                                  uint64_t length, uint64_t page_size,
                                  uint64_t *bitmap, Error **errp)
{
    struct {
        struct vfio_device_feature hdr;
        struct vfio_user_dma_logging_report report;
    } ask, got;
    struct iovec iov = { &ask, sizeof(ask) };
    uint64_t pages, bitmap_size;
    VFIOUserRequest req = {
        .cmd = VFIO_USER_DEVICE_FEATURE,
        .iov = &iov, .iov_cnt = 1,
        .reply_fixed = &got, .reply_fixed_size = sizeof(got),
        .reply_data = bitmap,
    };

    if (!page_size || (page_size & (page_size - 1)) || !length ||
        length % page_size || iova % page_size || iova + length < iova) {
        error_setg(errp, "vfio-user %s: bad DMA logging report range "
                   "[0x%" PRIx64 ", +0x%" PRIx64 ") in pages of %" PRIu64,
                   vfio_user_proxy_name(proxy), iova, length, page_size);
        return false;
    }
    pages = length / page_size;
    bitmap_size = DIV_ROUND_UP(pages, 64) * sizeof(uint64_t);
    if (bitmap_size > vfio_user_peer_caps(proxy)->max_data_xfer_size) {
        error_setg(errp, "vfio-user %s: a DMA logging report of %" PRIu64
                   " pages exceeds the %" PRIu64 "-byte message limit",
                   vfio_user_proxy_name(proxy), pages,
                   vfio_user_peer_caps(proxy)->max_data_xfer_size);
        return false;
    }
    memset(&ask, 0, sizeof(ask));
    ask.hdr.argsz = sizeof(ask) + bitmap_size;
    ask.hdr.flags = VFIO_DEVICE_FEATURE_GET |
                    VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT;
    ask.report.iova = iova;
    ask.report.length = length;
    ask.report.page_size = page_size;
    req.reply_data_size = bitmap_size;
    memset(bitmap, 0, bitmap_size);

    if (!vfio_user_request(proxy, &req, errp)) {
        error_prepend(errp, "DMA logging report [0x%" PRIx64 ", +0x%" PRIx64
                      "): ", iova, length);
        return false;
    }
    if (req.reply_len < sizeof(got) + bitmap_size) {
        error_setg(errp, "vfio-user %s: DMA logging report reply of %zu bytes "
                   "is shorter than its %" PRIu64 "-byte bitmap",
                   vfio_user_proxy_name(proxy), req.reply_len, bitmap_size);
        return false;
    }
    return true;
}
