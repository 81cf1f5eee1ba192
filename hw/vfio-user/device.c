/*
 * vfio-user client commands for the device itself: info, regions,
 * interrupts, DMA mappings and reset.
 */
#include "qemu/osdep.h"
#include "hw/vfio-user/client.h"

/* Region info with a capability chain stays far below this. */
#define REGION_INFO_MAX (64 * KiB)

bool vfio_user_get_device_info(VFIOUserProxy *proxy,
                               struct vfio_user_device_info *info,
                               Error **errp)
{
    struct vfio_user_device_info req_info = { .argsz = sizeof(req_info) };
    struct iovec iov = { &req_info, sizeof(req_info) };
    VFIOUserRequest req = {
        .cmd = VFIO_USER_DEVICE_GET_INFO,
        .iov = &iov, .iov_cnt = 1,
        .reply_fixed = info, .reply_fixed_size = sizeof(*info),
    };

    memset(info, 0, sizeof(*info));
    if (!vfio_user_request(proxy, &req, errp)) {
        return false;
    }
    if (req.reply_len < sizeof(*info)) {
        error_setg(errp, "vfio-user %s: DEVICE_GET_INFO reply of %zu bytes "
                   "is too short", vfio_user_proxy_name(proxy), req.reply_len);
        return false;
    }
    if (info->num_regions > 64 || info->num_irqs > 64) {
        error_setg(errp, "vfio-user %s: device claims %u regions and %u "
                   "irq indices (at most 64 each)",
                   vfio_user_proxy_name(proxy), info->num_regions,
                   info->num_irqs);
        return false;
    }
    return true;
}

struct vfio_region_info *vfio_user_get_region_info(VFIOUserProxy *proxy,
                                                   uint32_t index,
                                                   int *mmap_fd,
                                                   Error **errp)
{
    const char *name = vfio_user_proxy_name(proxy);
    uint32_t room = sizeof(struct vfio_region_info) + 1024;

    *mmap_fd = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct vfio_region_info ask = {
            .argsz = room,
            .index = index,
        };
        struct iovec iov = { &ask, sizeof(ask) };
        g_autofree struct vfio_region_info *info = g_malloc0(room);
        int fd = -1;
        VFIOUserRequest req = {
            .cmd = VFIO_USER_DEVICE_GET_REGION_INFO,
            .iov = &iov, .iov_cnt = 1,
            .reply_fixed = info, .reply_fixed_size = room,
            .reply_fds = &fd, .reply_max_fds = 1,
        };

        if (!vfio_user_request(proxy, &req, errp)) {
            return NULL;
        }
        if (req.reply_len < sizeof(*info)) {
            error_setg(errp, "vfio-user %s: region %u info reply of %zu bytes "
                       "is too short", name, index, req.reply_len);
            goto fail;
        }
        if (info->index != index) {
            error_setg(errp, "vfio-user %s: asked for region %u info, got "
                       "region %u", name, index, info->index);
            goto fail;
        }
        if (info->argsz > room) {
            /* The chain did not fit: ask again with the room it needs. */
            if (info->argsz > REGION_INFO_MAX || attempt == 1) {
                error_setg(errp, "vfio-user %s: region %u info needs %u bytes",
                           name, index, info->argsz);
                goto fail;
            }
            room = info->argsz;
            if (fd >= 0) {
                close(fd);
            }
            continue;
        }
        if (info->argsz < sizeof(*info) || req.reply_len < info->argsz) {
            error_setg(errp, "vfio-user %s: region %u info has argsz %u but "
                       "%zu bytes came", name, index, info->argsz,
                       req.reply_len);
            goto fail;
        }
        *mmap_fd = fd;
        return g_steal_pointer(&info);

fail:
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    g_assert_not_reached();
}

bool vfio_user_get_irq_info(VFIOUserProxy *proxy, uint32_t index,
                            struct vfio_irq_info *info, Error **errp)
{
    struct vfio_irq_info ask = { .argsz = sizeof(ask), .index = index };
    struct iovec iov = { &ask, sizeof(ask) };
    VFIOUserRequest req = {
        .cmd = VFIO_USER_DEVICE_GET_IRQ_INFO,
        .iov = &iov, .iov_cnt = 1,
        .reply_fixed = info, .reply_fixed_size = sizeof(*info),
    };

    memset(info, 0, sizeof(*info));
    if (!vfio_user_request(proxy, &req, errp)) {
        return false;
    }
    if (req.reply_len < sizeof(*info) || info->index != index) {
        error_setg(errp, "vfio-user %s: bad reply to irq %u info (%zu bytes, "
                   "index %u)", vfio_user_proxy_name(proxy), index,
                   req.reply_len, info->index);
        return false;
    }
    return true;
}

static bool set_irqs_one(VFIOUserProxy *proxy, uint32_t index, uint32_t flags,
                         uint32_t start, uint32_t count, const int *fds,
                         int nr_fds, const uint8_t *bools, Error **errp)
{
    size_t data_len = bools ? count : 0;
    struct vfio_irq_set set = {
        .argsz = sizeof(set) + data_len,
        .flags = flags,
        .index = index,
        .start = start,
        .count = count,
    };
    struct iovec iov[2] = {
        { &set, sizeof(set) },
        { (void *)bools, data_len },
    };
    VFIOUserRequest req = {
        .cmd = VFIO_USER_DEVICE_SET_IRQS,
        .iov = iov, .iov_cnt = bools ? 2 : 1,
        .fds = fds, .nr_fds = nr_fds,
    };

    return vfio_user_request(proxy, &req, errp);
}

bool vfio_user_set_irqs(VFIOUserProxy *proxy, uint32_t index, uint32_t flags,
                        uint32_t start, uint32_t count, const int *fds,
                        const uint8_t *bools, Error **errp)
{
    uint32_t data_type = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    uint32_t per_msg;

    if (data_type == VFIO_IRQ_SET_DATA_BOOL) {
        return set_irqs_one(proxy, index, flags, start, count, NULL, 0, bools,
                            errp);
    }
    if (data_type != VFIO_IRQ_SET_DATA_EVENTFD || count == 0) {
        return set_irqs_one(proxy, index, flags, start, count, NULL, 0, NULL,
                            errp);
    }
    for (uint32_t i = 0; i < count; i++) {
        if (fds[i] < 0) {
            error_setg(errp, "vfio-user %s: SET_IRQS index %u vector %u: an "
                       "eventfd is needed (detach with DATA_NONE, count 0)",
                       vfio_user_proxy_name(proxy), index, start + i);
            return false;
        }
    }
    per_msg = MAX(vfio_user_peer_caps(proxy)->max_msg_fds, 1);
    for (uint32_t done = 0; done < count; done += per_msg) {
        uint32_t n = MIN(per_msg, count - done);

        if (!set_irqs_one(proxy, index, flags, start + done, n, fds + done, n,
                          NULL, errp)) {
            return false;
        }
    }
    return true;
}

/* Data bytes one REGION_READ/WRITE may carry on this connection. */
static size_t region_chunk(VFIOUserProxy *proxy)
{
    return vfio_user_peer_caps(proxy)->max_data_xfer_size;
}

bool vfio_user_region_read(VFIOUserProxy *proxy, uint32_t region,
                           uint64_t offset, void *buf, size_t count,
                           Error **errp)
{
    size_t done = 0;

    while (done < count) {
        size_t n = MIN(count - done, region_chunk(proxy));
        struct vfio_user_region_access ask = {
            .offset = offset + done,
            .region = region,
            .count = n,
        };
        struct vfio_user_region_access got;
        struct iovec iov = { &ask, sizeof(ask) };
        VFIOUserRequest req = {
            .cmd = VFIO_USER_REGION_READ,
            .iov = &iov, .iov_cnt = 1,
            .reply_fixed = &got, .reply_fixed_size = sizeof(got),
            .reply_data = (char *)buf + done, .reply_data_size = n,
        };

        if (!vfio_user_request(proxy, &req, errp)) {
            error_prepend(errp, "region %u offset 0x%" PRIx64 ": ", region,
                          offset + done);
            return false;
        }
        if (req.reply_len < sizeof(got) + n || got.count != n) {
            error_setg(errp, "vfio-user %s: region %u read of %zu bytes at "
                       "0x%" PRIx64 " returned %zu", vfio_user_proxy_name(proxy),
                       region, n, offset + done,
                       req.reply_len < sizeof(got) ? 0 :
                       MIN(req.reply_len - sizeof(got), (size_t)got.count));
            return false;
        }
        done += n;
    }
    return true;
}

bool vfio_user_region_write(VFIOUserProxy *proxy, uint32_t region,
                            uint64_t offset, const void *buf, size_t count,
                            Error **errp)
{
    size_t done = 0;

    while (done < count) {
        size_t n = MIN(count - done, region_chunk(proxy));
        struct vfio_user_region_access ask = {
            .offset = offset + done,
            .region = region,
            .count = n,
        };
        struct vfio_user_region_access got = { 0 };
        struct iovec iov[2] = {
            { &ask, sizeof(ask) },
            { (char *)buf + done, n },
        };
        VFIOUserRequest req = {
            .cmd = VFIO_USER_REGION_WRITE,
            .iov = iov, .iov_cnt = 2,
            .reply_fixed = &got, .reply_fixed_size = sizeof(got),
        };

        if (!vfio_user_request(proxy, &req, errp)) {
            error_prepend(errp, "region %u offset 0x%" PRIx64 ": ", region,
                          offset + done);
            return false;
        }
        if (req.reply_len >= sizeof(got) && got.count != n) {
            error_setg(errp, "vfio-user %s: region %u write of %zu bytes at "
                       "0x%" PRIx64 " wrote %u", vfio_user_proxy_name(proxy),
                       region, n, offset + done, got.count);
            return false;
        }
        done += n;
    }
    return true;
}

bool vfio_user_region_write_multi(VFIOUserProxy *proxy,
                                  const VFIOUserWrite *writes, size_t nr,
                                  Error **errp)
{
    for (size_t i = 0; i < nr; i++) {
        if (writes[i].count == 0 || writes[i].count > VFIO_USER_MULTI_DATA) {
            error_setg(errp, "vfio-user %s: write %zu of a batch has %u bytes "
                       "(1 to %d)", vfio_user_proxy_name(proxy), i,
                       writes[i].count, VFIO_USER_MULTI_DATA);
            return false;
        }
    }
    if (!vfio_user_peer_caps(proxy)->write_multiple) {
        for (size_t i = 0; i < nr; i++) {
            if (!vfio_user_region_write(proxy, writes[i].region,
                                        writes[i].offset, writes[i].data,
                                        writes[i].count, errp)) {
                return false;
            }
        }
        return true;
    }
    for (size_t done = 0; done < nr; done += VFIO_USER_MULTI_MAX) {
        size_t n = MIN(nr - done, (size_t)VFIO_USER_MULTI_MAX);
        g_autofree struct vfio_user_write_multi *msg =
            g_malloc0(sizeof(*msg) + n * sizeof(msg->wrs[0]));
        struct vfio_user_write_multi got = { 0 };
        struct iovec iov = {
            msg, sizeof(*msg) + n * sizeof(msg->wrs[0])
        };
        VFIOUserRequest req = {
            .cmd = VFIO_USER_REGION_WRITE_MULTI,
            .iov = &iov, .iov_cnt = 1,
            .reply_fixed = &got, .reply_fixed_size = sizeof(got),
        };

        msg->wr_cnt = n;
        for (size_t i = 0; i < n; i++) {
            msg->wrs[i].offset = writes[done + i].offset;
            msg->wrs[i].region = writes[done + i].region;
            msg->wrs[i].count = writes[done + i].count;
            memcpy(msg->wrs[i].data, writes[done + i].data,
                   writes[done + i].count);
        }
        if (!vfio_user_request(proxy, &req, errp)) {
            return false;
        }
        if (req.reply_len >= sizeof(got) && got.wr_cnt != n) {
            error_setg(errp, "vfio-user %s: REGION_WRITE_MULTI completed %"
                       PRIu64 " of %zu writes", vfio_user_proxy_name(proxy),
                       (uint64_t)got.wr_cnt, n);
            return false;
        }
    }
    return true;
}

bool vfio_user_dma_map(VFIOUserProxy *proxy, uint64_t iova, uint64_t size,
                       int fd, uint64_t offset, uint32_t prot, Error **errp)
{
    struct vfio_user_dma_map map = {
        .argsz = sizeof(map),
        .flags = prot,
        .offset = offset,
        .addr = iova,
        .size = size,
    };
    struct iovec iov = { &map, sizeof(map) };
    VFIOUserRequest req = {
        .cmd = VFIO_USER_DMA_MAP,
        .iov = &iov, .iov_cnt = 1,
        .fds = &fd, .nr_fds = fd >= 0 ? 1 : 0,
    };

    if (!vfio_user_request(proxy, &req, errp)) {
        error_prepend(errp, "DMA map [0x%" PRIx64 ", +0x%" PRIx64 "): ", iova,
                      size);
        return false;
    }
    return true;
}

static bool dma_unmap(VFIOUserProxy *proxy, uint64_t iova, uint64_t size,
                      uint32_t flags, Error **errp)
{
    struct vfio_user_dma_unmap unmap = {
        .argsz = sizeof(unmap),
        .flags = flags,
        .addr = iova,
        .size = size,
    };
    struct vfio_user_dma_unmap got;
    struct iovec iov = { &unmap, sizeof(unmap) };
    VFIOUserRequest req = {
        .cmd = VFIO_USER_DMA_UNMAP,
        .iov = &iov, .iov_cnt = 1,
        .reply_fixed = &got, .reply_fixed_size = sizeof(got),
    };

    if (!vfio_user_request(proxy, &req, errp)) {
        error_prepend(errp, "DMA unmap [0x%" PRIx64 ", +0x%" PRIx64 "): ", iova,
                      size);
        return false;
    }
    return true;
}

bool vfio_user_dma_unmap(VFIOUserProxy *proxy, uint64_t iova, uint64_t size,
                         Error **errp)
{
    return dma_unmap(proxy, iova, size, 0, errp);
}

bool vfio_user_dma_unmap_all(VFIOUserProxy *proxy, Error **errp)
{
    return dma_unmap(proxy, 0, 0, VFIO_USER_F_DMA_UNMAP_ALL, errp);
}

bool vfio_user_device_reset(VFIOUserProxy *proxy, Error **errp)
{
    VFIOUserRequest req = { .cmd = VFIO_USER_DEVICE_RESET };

    return vfio_user_request(proxy, &req, errp);
}
