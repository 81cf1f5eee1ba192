/*
 * Multifd wire format: hello and packet headers, parameter checks, and
 * reading whole buffers off a channel straight into their destination.
 */
#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "multifd-internal.h"

static const char *const compression_names[MULTIFD_COMPRESSION__MAX] = {
    [MULTIFD_COMPRESSION_NONE] = "none",
    [MULTIFD_COMPRESSION_ZLIB] = "zlib",
    [MULTIFD_COMPRESSION_ZSTD] = "zstd",
};

const char *multifd_compression_name(MultiFDCompression method)
{
    return (unsigned)method < MULTIFD_COMPRESSION__MAX ?
        compression_names[method] : "unknown";
}

bool multifd_compression_parse(const char *name, MultiFDCompression *method,
                               Error **errp)
{
    for (unsigned i = 0; i < MULTIFD_COMPRESSION__MAX; i++) {
        if (!strcmp(name, compression_names[i])) {
            *method = i;
            return true;
        }
    }
    error_setg(errp, "multifd-compression '%s' is not one of none, zlib, "
               "zstd", name);
    return false;
}

const MultiFDCompressOps *multifd_compress_ops(MultiFDCompression method)
{
    switch (method) {
    case MULTIFD_COMPRESSION_ZLIB:
        return &multifd_zlib_ops;
    case MULTIFD_COMPRESSION_ZSTD:
        return &multifd_zstd_ops;
    default:
        return NULL;
    }
}

void multifd_params_init(MultiFDParams *params)
{
    memset(params, 0, sizeof(*params));
    params->channels = 2;
    params->compression = MULTIFD_COMPRESSION_NONE;
    params->zlib_level = 1;
    params->zstd_level = 1;
}

bool multifd_params_check(const MultiFDParams *params, Error **errp)
{
    if (params->channels < 1 || params->channels > MULTIFD_MAX_CHANNELS) {
        error_setg(errp, "multifd-channels %u is out of range (1 to %u)",
                   params->channels, MULTIFD_MAX_CHANNELS);
        return false;
    }
    if ((unsigned)params->compression >= MULTIFD_COMPRESSION__MAX) {
        error_setg(errp, "multifd-compression %u is unknown",
                   (unsigned)params->compression);
        return false;
    }
    if (params->zlib_level < 0 || params->zlib_level > 9) {
        error_setg(errp, "multifd-zlib-level %d is out of range (0 to 9)",
                   params->zlib_level);
        return false;
    }
    if (params->zstd_level < 1 || params->zstd_level > 20) {
        error_setg(errp, "multifd-zstd-level %d is out of range (1 to 20)",
                   params->zstd_level);
        return false;
    }
    return true;
}

void multifd_hello_encode(const MultiFDHello *h,
                          uint8_t buf[MULTIFD_HELLO_LEN])
{
    multifd_put_be32(buf, h->magic);
    multifd_put_be32(buf + 4, h->version);
    memcpy(buf + 8, h->uuid, 16);
    multifd_put_be32(buf + 24, h->channel_id);
    multifd_put_be32(buf + 28, h->channel_count);
    multifd_put_be32(buf + 32, h->compression);
    multifd_put_be32(buf + 36, h->page_size);
}

void multifd_hello_decode(const uint8_t buf[MULTIFD_HELLO_LEN],
                          MultiFDHello *h)
{
    h->magic = multifd_get_be32(buf);
    h->version = multifd_get_be32(buf + 4);
    memcpy(h->uuid, buf + 8, 16);
    h->channel_id = multifd_get_be32(buf + 24);
    h->channel_count = multifd_get_be32(buf + 28);
    h->compression = multifd_get_be32(buf + 32);
    h->page_size = multifd_get_be32(buf + 36);
}

bool multifd_is_channel_hello(
    const uint8_t first_bytes[MULTIFD_HELLO_PEEK_LEN])
{
    return multifd_get_be32(first_bytes) == MULTIFD_HELLO_MAGIC;
}

void multifd_packet_header_encode(const MultiFDPacketHeader *h,
                                  uint8_t buf[MULTIFD_PACKET_HDR_LEN])
{
    multifd_put_be32(buf, h->magic);
    multifd_put_be32(buf + 4, h->version);
    multifd_put_be32(buf + 8, h->flags);
    multifd_put_be32(buf + 12, h->kind);
    multifd_put_be32(buf + 16, h->payload_size);
    multifd_put_be32(buf + 20, h->reserved);
    multifd_put_be64(buf + 24, h->packet_num);
}

void multifd_packet_header_decode(const uint8_t buf[MULTIFD_PACKET_HDR_LEN],
                                  MultiFDPacketHeader *h)
{
    h->magic = multifd_get_be32(buf);
    h->version = multifd_get_be32(buf + 4);
    h->flags = multifd_get_be32(buf + 8);
    h->kind = multifd_get_be32(buf + 12);
    h->payload_size = multifd_get_be32(buf + 16);
    h->reserved = multifd_get_be32(buf + 20);
    h->packet_num = multifd_get_be64(buf + 24);
}

const MultiFDPayloadOps *multifd_payload_ops(uint32_t kind)
{
    switch (kind) {
    case MULTIFD_PAYLOAD_RAM:
        return &multifd_ram_ops;
    case MULTIFD_PAYLOAD_DEVICE_STATE:
        return &multifd_device_state_ops;
    default:
        return NULL;
    }
}

uint32_t multifd_payload_max(MultiFDPayloadKind kind)
{
    const MultiFDPayloadOps *ops = multifd_payload_ops(kind);

    return ops ? ops->max_payload : 0;
}

bool multifd_packet_header_check(const MultiFDPacketHeader *h,
                                 bool first, uint64_t last_packet_num,
                                 Error **errp)
{
    if (h->magic != MULTIFD_PACKET_MAGIC) {
        error_setg(errp, "bad packet magic 0x%08x (expected 0x%08x)",
                   h->magic, MULTIFD_PACKET_MAGIC);
        return false;
    }
    if (h->version != MULTIFD_PACKET_VERSION) {
        error_setg(errp, "unsupported packet version %u (expected %u)",
                   h->version, MULTIFD_PACKET_VERSION);
        return false;
    }
    if (h->flags & ~MULTIFD_FLAGS_KNOWN) {
        error_setg(errp, "packet has unknown flags 0x%x", h->flags);
        return false;
    }
    if (h->kind >= MULTIFD_PAYLOAD__MAX) {
        error_setg(errp, "packet has unknown payload kind %u", h->kind);
        return false;
    }
    if (h->reserved) {
        error_setg(errp, "packet has a non-zero reserved field 0x%x",
                   h->reserved);
        return false;
    }
    if (h->kind == MULTIFD_PAYLOAD_NONE && !(h->flags & MULTIFD_FLAG_SYNC)) {
        error_setg(errp, "packet %" PRIu64 " has neither payload nor SYNC",
                   h->packet_num);
        return false;
    }
    if (h->payload_size > multifd_payload_max(h->kind)) {
        error_setg(errp, "packet payload of %u bytes exceeds the limit of "
                   "%u for its kind %u", h->payload_size,
                   multifd_payload_max(h->kind), h->kind);
        return false;
    }
    if (!first && h->packet_num <= last_packet_num) {
        error_setg(errp, "packet number %" PRIu64 " does not follow %" PRIu64,
                   h->packet_num, last_packet_num);
        return false;
    }
    return true;
}

int multifd_readv_full(MigChannel *ch, struct iovec *iov, int iovcnt,
                       bool eof_ok, Error **errp)
{
    size_t done = 0;

    iov_consume(&iov, &iovcnt, 0);
    while (iovcnt > 0) {
        ssize_t n;

        if (mig_cancel_fired(ch->cancel)) {
            error_setg(errp, "%s: migration cancelled", ch->desc);
            return -1;
        }
        /* The fd is non-blocking: data that is there arrives in one call. */
        if (ch->tls || ch->tls_peeked) {
            /* Decrypted bytes: through the channel, a piece at a time. */
            n = mig_channel_read(ch, iov->iov_base, iov->iov_len, errp);
            if (n < 0) {
                return -1;
            }
        } else {
            n = readv(ch->fd, iov, MIN(iovcnt, IOV_MAX));
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            /* Nothing yet: the channel waits for us, cancel included. */
            n = mig_channel_read(ch, iov->iov_base, iov->iov_len, errp);
            if (n < 0) {
                return -1;
            }
        } else if (n < 0) {
            error_setg_errno(errp, errno, "%s: read failed", ch->desc);
            return -1;
        }
        if (n == 0 && mig_channel_yanked(ch)) {
            error_setg(errp, "%s: read failed: the channel was yanked",
                       ch->desc);
            return -1;
        }
        if (n == 0) {
            if (done == 0 && eof_ok) {
                return 0;
            }
            error_setg(errp, "%s: stream truncated (end of stream inside a "
                       "packet)", ch->desc);
            return -1;
        }
        done += n;
        iov_consume(&iov, &iovcnt, n);
    }
    return 1;
}

bool multifd_read_full(MigChannel *ch, void *buf, size_t len, Error **errp)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };

    return multifd_readv_full(ch, &iov, 1, false, errp) > 0;
}

void multifd_cond_wait_slice(GCond *cond, GMutex *lock)
{
    g_cond_wait_until(cond, lock,
                      g_get_monotonic_time() + 100 * G_TIME_SPAN_MILLISECOND);
}
