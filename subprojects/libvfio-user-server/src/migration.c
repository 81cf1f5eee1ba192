/*
 * DEVICE_FEATURE (migration, device state, DMA logging, MIG_DATA_SIZE),
 * MIG_DATA_READ / MIG_DATA_WRITE and the precopy-info extension.
 *
 * The library keeps no stream state of its own: a data stream is the
 * device's, started and ended by the transition callback.  That is what
 * makes every legal arc safe at any point of a stream.
 */
#include <errno.h>
#include <string.h>

#include "private.h"

typedef struct FeatureDesc {
    uint32_t ops;           /* VFIO_DEVICE_FEATURE_GET / SET allowed */
    size_t get_len;         /* data in a GET reply */
    bool needs_migration;
} FeatureDesc;

static bool feature_desc(VusCtx *ctx, uint32_t feature, FeatureDesc *d)
{
    switch (feature) {
    case VFIO_DEVICE_FEATURE_MIGRATION:
        *d = (FeatureDesc) { VFIO_DEVICE_FEATURE_GET,
                             sizeof(struct vfio_device_feature_migration),
                             true };
        return ctx->migratable;
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
        *d = (FeatureDesc) { VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET,
                             sizeof(struct vfio_device_feature_mig_state),
                             true };
        return ctx->migratable;
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
        *d = (FeatureDesc) { VFIO_DEVICE_FEATURE_SET, 0, false };
        return !ctx->mig.no_dma_logging;
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        *d = (FeatureDesc) { VFIO_DEVICE_FEATURE_GET, 0, false };
        return !ctx->mig.no_dma_logging;
    case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
        *d = (FeatureDesc) { VFIO_DEVICE_FEATURE_GET,
                             sizeof(struct vfio_device_feature_mig_data_size),
                             true };
        return ctx->migratable && ctx->mig.data_size;
    default:
        return false;
    }
}

/* Runs the path to @target one arc at a time. */
static int set_device_state(VusCtx *ctx, uint32_t target)
{
    uint32_t cur = atomic_load(&ctx->mig_state);

    if (cur == VFIO_DEVICE_STATE_ERROR) {
        vus_warn(ctx, "MIG_DEVICE_STATE: the device is in ERROR, only "
                 "DEVICE_RESET leaves it");
        return -EINVAL;
    }
    if (vus_mig_next_state(ctx->mig.flags, cur, target) < 0) {
        vus_warn(ctx, "MIG_DEVICE_STATE: %s -> %s (%u) is not a valid "
                 "transition for this device", vus_mig_state_name(cur),
                 vus_mig_state_name(target), target);
        return -EINVAL;
    }
    while (cur != target) {
        int next = ctx->mig_next[cur][target];
        int ret;

        if (next < 0) {
            return -EINVAL;
        }
        ret = ctx->mig.transition(ctx->opaque, cur, next);
        if (ret == -ENOTRECOVERABLE) {
            atomic_store(&ctx->mig_state, VFIO_DEVICE_STATE_ERROR);
            vus_err(ctx, "migration arc %s -> %s failed and the device is "
                    "lost: state ERROR", vus_mig_state_name(cur),
                    vus_mig_state_name(next));
            return ret;
        }
        if (ret < 0) {
            vus_warn(ctx, "migration arc %s -> %s failed (%s); the device "
                     "stays in %s", vus_mig_state_name(cur),
                     vus_mig_state_name(next), strerror(-ret),
                     vus_mig_state_name(cur));
            return ret;
        }
        vus_debug(ctx, "migration arc %s -> %s", vus_mig_state_name(cur),
                  vus_mig_state_name(next));
        cur = next;
        atomic_store(&ctx->mig_state, cur);
    }
    return 0;
}

int vus_handle_device_feature(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_device_feature feat;
    const uint32_t op_mask = VFIO_DEVICE_FEATURE_GET |
                             VFIO_DEVICE_FEATURE_SET |
                             VFIO_DEVICE_FEATURE_PROBE;
    uint32_t feature, ops;
    const uint8_t *data;
    size_t data_len;
    FeatureDesc d;
    union {
        struct vfio_device_feature_migration migration;
        struct vfio_device_feature_mig_state state;
        struct vfio_device_feature_mig_data_size size;
    } out;
    int ret;

    if (msg->len < sizeof(feat)) {
        vus_warn(ctx, "DEVICE_FEATURE: payload of %zu bytes is shorter than "
                 "%zu", msg->len, sizeof(feat));
        return -EINVAL;
    }
    memcpy(&feat, msg->payload, sizeof(feat));
    data = msg->payload + sizeof(feat);
    data_len = msg->len - sizeof(feat);
    feature = feat.flags & VFIO_DEVICE_FEATURE_MASK;
    ops = feat.flags & op_mask;
    if (feat.argsz < sizeof(feat) ||
        (feat.flags & ~(VFIO_DEVICE_FEATURE_MASK | op_mask))) {
        vus_warn(ctx, "DEVICE_FEATURE: bad argsz %u or flags 0x%x",
                 feat.argsz, feat.flags);
        return -EINVAL;
    }
    if (!(ops & VFIO_DEVICE_FEATURE_PROBE) &&
        __builtin_popcount(ops & (VFIO_DEVICE_FEATURE_GET |
                                  VFIO_DEVICE_FEATURE_SET)) != 1) {
        vus_warn(ctx, "DEVICE_FEATURE %u: exactly one of GET and SET, "
                 "unless probing", feature);
        return -EINVAL;
    }
    if (!feature_desc(ctx, feature, &d)) {
        vus_debug(ctx, "DEVICE_FEATURE: feature %u not supported", feature);
        return -ENOTTY;
    }
    if (ops & ~VFIO_DEVICE_FEATURE_PROBE & ~d.ops) {
        vus_warn(ctx, "DEVICE_FEATURE %u: %s not supported", feature,
                 (ops & VFIO_DEVICE_FEATURE_GET) ? "GET" : "SET");
        return -EINVAL;
    }
    if (ops & VFIO_DEVICE_FEATURE_PROBE) {
        return vus_reply(ctx, conn, msg, msg->payload, msg->len, NULL, 0,
                         NULL, 0);
    }

    switch (feature) {
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
        return vus_dma_log_start(ctx, conn, msg, data, data_len);
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
        if (data_len) {
            vus_warn(ctx, "DMA_LOGGING_STOP: unexpected %zu bytes of data",
                     data_len);
            return -EINVAL;
        }
        vus_dma_log_stop(ctx);
        return vus_reply(ctx, conn, msg, msg->payload, msg->len, NULL, 0,
                         NULL, 0);
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        return vus_dma_log_report(ctx, conn, msg, data, data_len);
    default:
        break;
    }

    if (ops & VFIO_DEVICE_FEATURE_SET) {
        /* Only MIG_DEVICE_STATE is settable among the rest. */
        struct vfio_device_feature_mig_state st;

        if (data_len != sizeof(st)) {
            vus_warn(ctx, "MIG_DEVICE_STATE: %zu bytes of data, expected %zu",
                     data_len, sizeof(st));
            return -EINVAL;
        }
        memcpy(&st, data, sizeof(st));
        ret = set_device_state(ctx, st.device_state);
        if (ret < 0) {
            return ret;
        }
        out.state.device_state = atomic_load(&ctx->mig_state);
        out.state.data_fd = -1;
    } else {
        /* GET: the request may carry room for the answer, or nothing. */
        if (data_len && data_len != d.get_len) {
            vus_warn(ctx, "DEVICE_FEATURE %u GET: %zu bytes of data, expected "
                     "0 or %zu", feature, data_len, d.get_len);
            return -EINVAL;
        }
        memset(&out, 0, sizeof(out));
        switch (feature) {
        case VFIO_DEVICE_FEATURE_MIGRATION:
            out.migration.flags = ctx->mig.flags;
            break;
        case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
            out.state.device_state = atomic_load(&ctx->mig_state);
            out.state.data_fd = -1;
            break;
        case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: {
            uint64_t len = 0;

            ret = ctx->mig.data_size(ctx->opaque, &len);
            if (ret < 0) {
                return ret;
            }
            out.size.stop_copy_length = len;
            break;
        }
        default:
            return -ENOTTY;
        }
    }
    feat.argsz = sizeof(feat) + d.get_len;
    return vus_reply(ctx, conn, msg, &feat, sizeof(feat), &out, d.get_len,
                     NULL, 0);
}

static bool in_saving_state(VusCtx *ctx)
{
    uint32_t s = atomic_load(&ctx->mig_state);

    return s == VFIO_DEVICE_STATE_PRE_COPY ||
           s == VFIO_DEVICE_STATE_PRE_COPY_P2P ||
           s == VFIO_DEVICE_STATE_STOP_COPY;
}

int vus_handle_mig_data_read(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_user_mig_data req;
    const void *data = conn->xfer_buf;
    ssize_t n;

    if (msg->len != sizeof(req)) {
        vus_warn(ctx, "MIG_DATA_READ: payload of %zu bytes, expected %zu",
                 msg->len, sizeof(req));
        return -EINVAL;
    }
    memcpy(&req, msg->payload, sizeof(req));
    if (req.argsz < sizeof(req) || req.size > conn->max_xfer) {
        vus_warn(ctx, "MIG_DATA_READ: argsz %u too small or size %u over "
                 "max_data_xfer_size %u", req.argsz, req.size,
                 conn->max_xfer);
        return -EINVAL;
    }
    if (!ctx->migratable || !in_saving_state(ctx)) {
        vus_warn(ctx, "MIG_DATA_READ in %s: only in PRE_COPY, PRE_COPY_P2P "
                 "or STOP_COPY",
                 vus_mig_state_name(atomic_load(&ctx->mig_state)));
        return -EINVAL;
    }
    if (!req.size) {
        n = 0;
    } else if (ctx->mig.read_data_zc) {
        n = ctx->mig.read_data_zc(ctx->opaque, &data, req.size);
    } else {
        n = ctx->mig.read_data(ctx->opaque, conn->xfer_buf, req.size);
    }
    if (n < 0) {
        return n;
    }
    if ((uint64_t)n > req.size) {
        vus_err(ctx, "MIG_DATA_READ: the device returned %zd bytes for %u",
                n, req.size);
        return -EIO;
    }
    if (n && !data) {
        vus_err(ctx, "MIG_DATA_READ: the device gave no data pointer");
        return -EIO;
    }
    req.size = n;
    req.argsz = sizeof(req) + n;
    return vus_reply(ctx, conn, msg, &req, sizeof(req), data, n, NULL, 0);
}

int vus_handle_mig_data_write(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_user_mig_data req;
    ssize_t n;

    if (msg->len < sizeof(req)) {
        vus_warn(ctx, "MIG_DATA_WRITE: payload of %zu bytes is too short",
                 msg->len);
        return -EINVAL;
    }
    memcpy(&req, msg->payload, sizeof(req));
    if (req.argsz < sizeof(req) || req.size > conn->max_xfer ||
        msg->len != sizeof(req) + (size_t)req.size) {
        vus_warn(ctx, "MIG_DATA_WRITE: argsz %u, size %u and payload of %zu "
                 "bytes disagree (max_data_xfer_size %u)", req.argsz,
                 req.size, msg->len, conn->max_xfer);
        return -EINVAL;
    }
    if (!ctx->migratable ||
        atomic_load(&ctx->mig_state) != VFIO_DEVICE_STATE_RESUMING) {
        vus_warn(ctx, "MIG_DATA_WRITE in %s: only in RESUMING",
                 vus_mig_state_name(atomic_load(&ctx->mig_state)));
        return -EINVAL;
    }
    if (req.size) {
        n = ctx->mig.write_data(ctx->opaque, msg->payload + sizeof(req),
                                req.size);
        if (n < 0) {
            return n;
        }
        if ((uint64_t)n != req.size) {
            vus_err(ctx, "MIG_DATA_WRITE: the device took %zd of %u bytes", n,
                    req.size);
            return -EIO;
        }
    }
    return vus_reply(ctx, conn, msg, NULL, 0, NULL, 0, NULL, 0);
}

int vus_handle_precopy_info(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_precopy_info info = { .argsz = sizeof(info) };
    uint32_t s = atomic_load(&ctx->mig_state);
    uint64_t initial = 0, dirty = 0;
    int ret;

    if (!ctx->mig.precopy_info) {
        vus_debug(ctx, "X_MIG_PRECOPY_INFO: not offered by this device");
        return -ENOSYS;
    }
    if (msg->len != 0 && msg->len != sizeof(info)) {
        vus_warn(ctx, "X_MIG_PRECOPY_INFO: payload of %zu bytes, expected 0 "
                 "or %zu", msg->len, sizeof(info));
        return -EINVAL;
    }
    if (!ctx->migratable || !(ctx->mig.flags & VFIO_MIGRATION_PRE_COPY) ||
        (s != VFIO_DEVICE_STATE_PRE_COPY &&
         s != VFIO_DEVICE_STATE_PRE_COPY_P2P)) {
        vus_warn(ctx, "X_MIG_PRECOPY_INFO in %s: only in PRE_COPY or "
                 "PRE_COPY_P2P", vus_mig_state_name(s));
        return -EINVAL;
    }
    ret = ctx->mig.precopy_info(ctx->opaque, &initial, &dirty);
    if (ret < 0) {
        return ret;
    }
    info.initial_bytes = initial;
    info.dirty_bytes = dirty;
    return vus_reply(ctx, conn, msg, &info, sizeof(info), NULL, 0, NULL, 0);
}
