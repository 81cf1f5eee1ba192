/*
 * The device model commands: DEVICE_GET_INFO, DEVICE_GET_REGION_INFO,
 * DEVICE_GET_REGION_IO_FDS, REGION_READ / REGION_WRITE /
 * REGION_WRITE_MULTI and DEVICE_RESET.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

int vus_handle_device_info(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_user_device_info info;

    if (msg->len != sizeof(info)) {
        vus_warn(ctx, "DEVICE_GET_INFO: payload of %zu bytes, expected %zu",
                 msg->len, sizeof(info));
        return -EINVAL;
    }
    memcpy(&info, msg->payload, sizeof(info));
    if (info.argsz < sizeof(info)) {
        vus_warn(ctx, "DEVICE_GET_INFO: argsz %u is smaller than %zu",
                 info.argsz, sizeof(info));
        return -EINVAL;
    }
    info.argsz = sizeof(info);
    info.flags = VFIO_DEVICE_FLAGS_RESET |
                 (ctx->is_pci ? VFIO_DEVICE_FLAGS_PCI : 0);
    info.num_regions = ctx->nr_regions;
    info.num_irqs = VFIO_PCI_NUM_IRQS;
    return vus_reply(ctx, conn, msg, &info, sizeof(info), NULL, 0, NULL, 0);
}

int vus_handle_region_info(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_region_info info;
    /* The sparse-mmap capability: header, then one entry per area. */
    struct vfio_region_info_cap_sparse_mmap cap;
    struct vfio_region_sparse_mmap_area area;
    uint8_t *sparse = NULL;
    size_t sparse_len = 0;
    const VusRegion *r;
    int fd = -1;
    int ret;

    if (msg->len != sizeof(info)) {
        vus_warn(ctx, "DEVICE_GET_REGION_INFO: payload of %zu bytes, "
                 "expected %zu", msg->len, sizeof(info));
        return -EINVAL;
    }
    memcpy(&info, msg->payload, sizeof(info));
    if (info.argsz < sizeof(info)) {
        vus_warn(ctx, "DEVICE_GET_REGION_INFO: argsz %u is smaller than %zu",
                 info.argsz, sizeof(info));
        return -EINVAL;
    }
    if (info.index >= ctx->nr_regions) {
        vus_warn(ctx, "DEVICE_GET_REGION_INFO: region %u does not exist "
                 "(%u regions)", info.index, ctx->nr_regions);
        return -EINVAL;
    }
    r = &ctx->regions[info.index];
    info.flags = 0;
    info.cap_offset = 0;
    info.size = r->present ? r->size : 0;
    info.offset = 0;
    if (r->present && r->size) {
        if (r->flags & VUS_REGION_READ) {
            info.flags |= VFIO_REGION_INFO_FLAG_READ;
        }
        if (r->flags & VUS_REGION_WRITE) {
            info.flags |= VFIO_REGION_INFO_FLAG_WRITE;
        }
    }
    /* A mapping needs its fd: only offered if the client takes fds. */
    if (r->present && r->size && r->mmap_fd >= 0 && conn->client_max_fds) {
        info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
        info.offset = r->mmap_fd_offset;
        fd = r->mmap_fd;
        if (r->nr_areas) {
            sparse_len = sizeof(cap) + r->nr_areas * sizeof(area);
            info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
        }
    }
    if (sparse_len && info.argsz < sizeof(info) + sparse_len) {
        /* As the kernel does: say how much room the capability needs. */
        info.argsz = sizeof(info) + sparse_len;
        sparse_len = 0;
    } else if (sparse_len) {
        sparse = calloc(1, sparse_len);
        if (!sparse) {
            return -ENOMEM;
        }
        memset(&cap, 0, sizeof(cap));
        cap.header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
        cap.header.version = 1;
        cap.nr_areas = r->nr_areas;
        memcpy(sparse, &cap, sizeof(cap));
        for (uint32_t i = 0; i < r->nr_areas; i++) {
            area.offset = r->areas[i].offset;
            area.size = r->areas[i].size;
            memcpy(sparse + sizeof(cap) + i * sizeof(area), &area,
                   sizeof(area));
        }
        info.cap_offset = sizeof(info);
        info.argsz = sizeof(info) + sparse_len;
    } else {
        info.argsz = sizeof(info);
    }
    ret = vus_reply(ctx, conn, msg, &info, sizeof(info), sparse, sparse_len,
                    fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
    free(sparse);
    return ret;
}

int vus_handle_region_io_fds(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_user_region_io_fds_request req;

    if (msg->len != sizeof(req)) {
        vus_warn(ctx, "DEVICE_GET_REGION_IO_FDS: payload of %zu bytes, "
                 "expected %zu", msg->len, sizeof(req));
        return -EINVAL;
    }
    memcpy(&req, msg->payload, sizeof(req));
    if (req.argsz < sizeof(req) || req.flags ||
        req.index >= ctx->nr_regions) {
        vus_warn(ctx, "DEVICE_GET_REGION_IO_FDS: bad argsz, flags or "
                 "region %u", req.index);
        return -EINVAL;
    }
    /* This library offers no ioeventfds: an empty list. */
    req.argsz = sizeof(req);
    req.count = 0;
    return vus_reply(ctx, conn, msg, &req, sizeof(req), NULL, 0, NULL, 0);
}

/* Checks and performs one access; @what names the command in errors. */
static ssize_t region_access(VusCtx *ctx, const char *what, uint32_t index,
                             uint64_t offset, void *buf, size_t count,
                             bool is_write)
{
    uint32_t state = atomic_load(&ctx->mig_state);
    const VusRegion *r;
    ssize_t ret;

    if (index >= ctx->nr_regions || !ctx->regions[index].present) {
        vus_warn(ctx, "%s: region %u does not exist", what, index);
        return -EINVAL;
    }
    r = &ctx->regions[index];
    if (!(r->flags & (is_write ? VUS_REGION_WRITE : VUS_REGION_READ))) {
        vus_warn(ctx, "%s: region %u is not %s", what, index,
                 is_write ? "writable" : "readable");
        return -EINVAL;
    }
    if (offset > r->size || count > r->size - offset) {
        vus_warn(ctx, "%s: [0x%" PRIx64 ", +0x%zx) is outside region %u "
                 "(size 0x%" PRIx64 ")", what, offset, count, index, r->size);
        return -EINVAL;
    }
    if (!(ctx->region_states & (1u << state))) {
        vus_warn(ctx, "%s: region %u refused in state %s", what, index,
                 vus_mig_state_name(state));
        return -EINVAL;
    }
    if (!count) {
        return 0;
    }
    if (!r->access) {
        ret = vus_pci_config_access(ctx, offset, buf, count, is_write);
    } else {
        ret = r->access(ctx->opaque, index, offset, buf, count, is_write);
    }
    if (ret >= 0 && (size_t)ret != count) {
        vus_warn(ctx, "%s: region %u callback returned %zd for %zu bytes",
                 what, index, ret, count);
        return -EIO;
    }
    return ret;
}

int vus_handle_region_rw(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    bool is_write = msg->hdr.cmd == VFIO_USER_REGION_WRITE;
    const char *what = is_write ? "REGION_WRITE" : "REGION_READ";
    struct vfio_user_region_access acc;
    size_t expected;
    ssize_t ret;

    if (msg->len < sizeof(acc)) {
        vus_warn(ctx, "%s: payload of %zu bytes is shorter than %zu", what,
                 msg->len, sizeof(acc));
        return -EINVAL;
    }
    memcpy(&acc, msg->payload, sizeof(acc));
    if (acc.count > conn->max_xfer) {
        vus_warn(ctx, "%s: count %u exceeds max_data_xfer_size %u", what,
                 acc.count, conn->max_xfer);
        return -EINVAL;
    }
    expected = sizeof(acc) + (is_write ? acc.count : 0);
    if (msg->len != expected) {
        vus_warn(ctx, "%s: payload of %zu bytes, expected %zu for count %u",
                 what, msg->len, expected, acc.count);
        return -EINVAL;
    }
    if (is_write) {
        ret = region_access(ctx, what, acc.region, acc.offset,
                            msg->payload + sizeof(acc), acc.count, true);
        if (ret < 0) {
            return ret;
        }
        return vus_reply(ctx, conn, msg, &acc, sizeof(acc), NULL, 0, NULL, 0);
    }
    ret = region_access(ctx, what, acc.region, acc.offset, conn->xfer_buf,
                        acc.count, false);
    if (ret < 0) {
        return ret;
    }
    return vus_reply(ctx, conn, msg, &acc, sizeof(acc), conn->xfer_buf,
                     acc.count, NULL, 0);
}

int vus_handle_write_multi(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_user_write_multi wm;
    struct vfio_user_write_multi_entry e;

    if (msg->len < sizeof(wm)) {
        vus_warn(ctx, "REGION_WRITE_MULTI: payload of %zu bytes is too short",
                 msg->len);
        return -EINVAL;
    }
    memcpy(&wm, msg->payload, sizeof(wm));
    if (!wm.wr_cnt || wm.wr_cnt > VFIO_USER_MULTI_MAX ||
        msg->len != sizeof(wm) + wm.wr_cnt * sizeof(e)) {
        vus_warn(ctx, "REGION_WRITE_MULTI: wr_cnt %" PRIu64 " is outside "
                 "[1, %u] or does not match the payload of %zu bytes",
                 (uint64_t)wm.wr_cnt, VFIO_USER_MULTI_MAX, msg->len);
        return -EINVAL;
    }
    /* Check every entry before doing any, so that a bad one does nothing. */
    for (uint64_t i = 0; i < wm.wr_cnt; i++) {
        memcpy(&e, msg->payload + sizeof(wm) + i * sizeof(e), sizeof(e));
        if (e.count == 0 || e.count > VFIO_USER_MULTI_DATA ||
            e.region >= ctx->nr_regions ||
            !ctx->regions[e.region].present ||
            !(ctx->regions[e.region].flags & VUS_REGION_WRITE) ||
            e.offset > ctx->regions[e.region].size ||
            e.count > ctx->regions[e.region].size - e.offset) {
            vus_warn(ctx, "REGION_WRITE_MULTI: entry %" PRIu64 " (region %u, "
                     "offset 0x%" PRIx64 ", count %u) is invalid", i,
                     e.region, (uint64_t)e.offset, e.count);
            return -EINVAL;
        }
    }
    for (uint64_t i = 0; i < wm.wr_cnt; i++) {
        ssize_t ret;

        memcpy(&e, msg->payload + sizeof(wm) + i * sizeof(e), sizeof(e));
        ret = region_access(ctx, "REGION_WRITE_MULTI", e.region, e.offset,
                            e.data, e.count, true);
        if (ret < 0) {
            return ret;
        }
    }
    return vus_reply(ctx, conn, msg, &wm, sizeof(wm), NULL, 0, NULL, 0);
}

int vus_handle_reset(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    int ret = 0;

    if (msg->len != 0) {
        vus_warn(ctx, "DEVICE_RESET: unexpected payload of %zu bytes",
                 msg->len);
        return -EINVAL;
    }
    if (ctx->reset_fn) {
        ret = ctx->reset_fn(ctx->opaque);
        if (ret < 0) {
            vus_warn(ctx, "DEVICE_RESET: the device failed to reset: %s",
                     strerror(-ret));
            return ret;
        }
    }
    vus_dma_log_stop(ctx);
    if (ctx->is_pci && !ctx->regions[VFIO_PCI_CONFIG_REGION_INDEX].access) {
        /* Reset clears the command register (decoding, bus master). */
        pthread_mutex_lock(&ctx->cfg_lock);
        ctx->cfg[0x04] = 0;
        ctx->cfg[0x05] = 0;
        pthread_mutex_unlock(&ctx->cfg_lock);
    }
    atomic_store(&ctx->mig_state, VFIO_DEVICE_STATE_RUNNING);
    vus_info(ctx, "device reset");
    return vus_reply(ctx, conn, msg, NULL, 0, NULL, 0, NULL, 0);
}
