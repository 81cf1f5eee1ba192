/*
 * DMA: the client's memory as the device sees it.
 *
 * DMA_MAP / DMA_UNMAP keep a table of mappings sorted by IOVA.  Mappings
 * that come with an fd are mmap'ed here so that the device can reach
 * them directly; the others are reached with DMA_READ / DMA_WRITE
 * messages.  While DMA logging is on, every mapping carries a bitmap
 * with one bit per log page; the grid is absolute (bit = iova /
 * log_pgsize - dirty_first), so reports of any range, across mappings,
 * line up.  Bits are set with atomics under the read lock and collected
 * with atomic fetch-and, so device threads never wait for a report.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "private.h"

#define BITS_PER_LONG (sizeof(unsigned long) * 8)
#define VUS_MAX_LOG_PGSIZE (1ull << 30)

static bool range_ok(uint64_t start, uint64_t len)
{
    return len && start + len - 1 >= start;
}

/* Index of the mapping containing @iova, or -1.  dma_lock held. */
static int dma_find(VusCtx *ctx, uint64_t iova)
{
    int lo = 0, hi = (int)ctx->nr_dma - 1;

    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const VusDmaRegion *r = &ctx->dma[mid].r;

        if (iova < r->iova) {
            hi = mid - 1;
        } else if (iova - r->iova >= r->size) {
            lo = mid + 1;
        } else {
            return mid;
        }
    }
    return -1;
}

/* Allocates the log bitmap of @m for page size @pgsize. */
static int dma_log_alloc(VusDmaMapping *m, uint64_t pgsize)
{
    uint64_t first = m->r.iova / pgsize;
    uint64_t last = (m->r.iova + m->r.size - 1) / pgsize;
    uint64_t nbits = last - first + 1;

    m->dirty = calloc((nbits + BITS_PER_LONG - 1) / BITS_PER_LONG,
                      sizeof(unsigned long));
    if (!m->dirty) {
        return -ENOMEM;
    }
    m->dirty_first = first;
    m->dirty_nbits = nbits;
    return 0;
}

/* Sets the log bits of [iova, iova + len) inside @m.  Read lock held. */
static void dma_log_mark(VusCtx *ctx, VusDmaMapping *m, uint64_t iova,
                         uint64_t len)
{
    uint64_t first, last;

    if (!m->dirty || !len) {
        return;
    }
    if (ctx->nr_log_ranges) {
        /* Log only what the client asked for. */
        for (uint32_t i = 0; i < ctx->nr_log_ranges; i++) {
            const struct vfio_device_feature_dma_logging_range *lr =
                &ctx->log_ranges[i];
            uint64_t s = MAX(iova, lr->iova);
            uint64_t e = MIN(iova + len - 1, lr->iova + lr->length - 1);

            if (s <= e) {
                first = s / ctx->log_pgsize - m->dirty_first;
                last = e / ctx->log_pgsize - m->dirty_first;
                for (uint64_t b = first; b <= last; b++) {
                    __atomic_fetch_or(&m->dirty[b / BITS_PER_LONG],
                                      1ul << (b % BITS_PER_LONG),
                                      __ATOMIC_RELAXED);
                }
            }
        }
        return;
    }
    first = iova / ctx->log_pgsize - m->dirty_first;
    last = (iova + len - 1) / ctx->log_pgsize - m->dirty_first;
    for (uint64_t b = first; b <= last; b++) {
        __atomic_fetch_or(&m->dirty[b / BITS_PER_LONG],
                          1ul << (b % BITS_PER_LONG), __ATOMIC_RELAXED);
    }
}

int vus_handle_dma_map(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_user_dma_map map;
    VusDmaMapping m = { 0 };
    int prot = 0, ret, idx;

    if (msg->len != sizeof(map)) {
        vus_warn(ctx, "DMA_MAP: payload of %zu bytes, expected %zu",
                 msg->len, sizeof(map));
        return -EINVAL;
    }
    memcpy(&map, msg->payload, sizeof(map));
    if (map.argsz < sizeof(map) ||
        (map.flags & ~(VFIO_USER_F_DMA_REGION_READ |
                       VFIO_USER_F_DMA_REGION_WRITE)) || !map.flags) {
        vus_warn(ctx, "DMA_MAP: bad argsz %u or flags 0x%x", map.argsz,
                 map.flags);
        return -EINVAL;
    }
    if (!range_ok(map.addr, map.size) || map.addr % VUS_PAGE_SIZE ||
        map.size % VUS_PAGE_SIZE) {
        vus_warn(ctx, "DMA_MAP: [0x%" PRIx64 ", +0x%" PRIx64 ") is empty, "
                 "wraps or is not page aligned", (uint64_t)map.addr,
                 (uint64_t)map.size);
        return -EINVAL;
    }
    if (map.size > SIZE_MAX) {
        return -EINVAL;
    }
    m.r.iova = map.addr;
    m.r.size = map.size;
    if (map.flags & VFIO_USER_F_DMA_REGION_READ) {
        m.r.prot |= VUS_DMA_READ;
        prot |= PROT_READ;
    }
    if (map.flags & VFIO_USER_F_DMA_REGION_WRITE) {
        m.r.prot |= VUS_DMA_WRITE;
        prot |= PROT_WRITE;
    }

    if (msg->nfds == 1) {
        struct stat st;
        int fd = msg->fds[0];

        /* Touching a mapping beyond the end of its file is SIGBUS. */
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            vus_warn(ctx, "DMA_MAP: the fd is not a regular file or memfd");
            return -EINVAL;
        }
        if (map.offset % VUS_PAGE_SIZE || map.offset > (uint64_t)st.st_size ||
            map.size > (uint64_t)st.st_size - map.offset) {
            vus_warn(ctx, "DMA_MAP: file range [0x%" PRIx64 ", +0x%" PRIx64
                     ") is unaligned or beyond the file's 0x%" PRIx64
                     " bytes", (uint64_t)map.offset, (uint64_t)map.size,
                     (uint64_t)st.st_size);
            return -EINVAL;
        }
        m.mmap_base = mmap(NULL, map.size, prot, MAP_SHARED, fd, map.offset);
        if (m.mmap_base == MAP_FAILED) {
            ret = -errno;
            vus_warn(ctx, "DMA_MAP: mmap of 0x%" PRIx64 " bytes failed: %s",
                     (uint64_t)map.size, strerror(-ret));
            return ret;
        }
        m.mmap_len = map.size;
        m.r.vaddr = m.mmap_base;
    } else if (map.offset) {
        vus_warn(ctx, "DMA_MAP: an offset without an fd");
        return -EINVAL;
    }

    pthread_rwlock_wrlock(&ctx->dma_lock);
    if (ctx->nr_dma >= ctx->limits.max_dma_maps) {
        vus_warn(ctx, "DMA_MAP [0x%" PRIx64 ", +0x%" PRIx64 ") refused: the "
                 "client already has %u DMA regions, the limit",
                 m.r.iova, m.r.size, ctx->nr_dma);
        ret = -ENOSPC;
        goto fail_unlock;
    }
    if (m.r.size > ctx->limits.max_dma_bytes - ctx->dma_total) {
        vus_warn(ctx, "DMA_MAP [0x%" PRIx64 ", +0x%" PRIx64 ") refused: with "
                 "the 0x%" PRIx64 " bytes already mapped it would pass the "
                 "limit of 0x%" PRIx64 " bytes", m.r.iova, m.r.size,
                 ctx->dma_total, ctx->limits.max_dma_bytes);
        ret = -ENOSPC;
        goto fail_unlock;
    }
    /* Where it goes, and whether it overlaps a neighbour. */
    for (idx = 0; idx < (int)ctx->nr_dma; idx++) {
        if (ctx->dma[idx].r.iova > m.r.iova) {
            break;
        }
    }
    if ((idx > 0 && ctx->dma[idx - 1].r.iova + ctx->dma[idx - 1].r.size >
         m.r.iova) ||
        (idx < (int)ctx->nr_dma &&
         m.r.iova + m.r.size > ctx->dma[idx].r.iova)) {
        vus_warn(ctx, "DMA_MAP: [0x%" PRIx64 ", +0x%" PRIx64 ") overlaps an "
                 "existing mapping", m.r.iova, m.r.size);
        ret = -EEXIST;
        goto fail_unlock;
    }
    if (ctx->log_active) {
        ret = dma_log_alloc(&m, ctx->log_pgsize);
        if (ret < 0) {
            goto fail_unlock;
        }
    }
    {
        VusDmaMapping *grown = realloc(ctx->dma,
                                       (ctx->nr_dma + 1) * sizeof(*grown));
        if (!grown) {
            free(m.dirty);
            ret = -ENOMEM;
            goto fail_unlock;
        }
        ctx->dma = grown;
    }
    memmove(&ctx->dma[idx + 1], &ctx->dma[idx],
            (ctx->nr_dma - idx) * sizeof(ctx->dma[0]));
    ctx->dma[idx] = m;
    ctx->nr_dma++;
    ctx->dma_total += m.r.size;
    pthread_rwlock_unlock(&ctx->dma_lock);

    vus_debug(ctx, "DMA_MAP [0x%" PRIx64 ", +0x%" PRIx64 ") %s", m.r.iova,
              m.r.size, m.r.vaddr ? "mapped" : "without fd");
    if (ctx->dma_map_fn) {
        ctx->dma_map_fn(ctx->opaque, &m.r);
    }
    return vus_reply(ctx, conn, msg, &map, sizeof(map), NULL, 0, NULL, 0);

fail_unlock:
    pthread_rwlock_unlock(&ctx->dma_lock);
    if (m.mmap_base) {
        munmap(m.mmap_base, m.mmap_len);
    }
    return ret;
}

/*
 * Removes the mappings with dying set: tells the device first (no lock
 * held, so it can wait for its threads), then drops them.
 */
static void dma_remove_dying(VusCtx *ctx)
{
    for (;;) {
        VusDmaRegion gone;
        bool found = false;

        pthread_rwlock_wrlock(&ctx->dma_lock);
        for (uint32_t i = 0; i < ctx->nr_dma; i++) {
            if (ctx->dma[i].dying && !ctx->dma[i].notified) {
                ctx->dma[i].notified = true;
                gone = ctx->dma[i].r;
                found = true;
                break;
            }
        }
        pthread_rwlock_unlock(&ctx->dma_lock);
        if (!found) {
            break;
        }
        if (ctx->dma_unmap_fn) {
            ctx->dma_unmap_fn(ctx->opaque, &gone);
        }
    }

    pthread_rwlock_wrlock(&ctx->dma_lock);
    for (uint32_t i = 0; i < ctx->nr_dma;) {
        VusDmaMapping *m = &ctx->dma[i];

        if (!m->dying) {
            i++;
            continue;
        }
        if (m->mmap_base) {
            munmap(m->mmap_base, m->mmap_len);
        }
        free(m->dirty);
        ctx->dma_total -= m->r.size;
        memmove(m, m + 1, (ctx->nr_dma - i - 1) * sizeof(*m));
        ctx->nr_dma--;
    }
    pthread_rwlock_unlock(&ctx->dma_lock);
}

int vus_handle_dma_unmap(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_user_dma_unmap unmap;
    bool all;
    int ret = 0;

    if (msg->len != sizeof(unmap)) {
        vus_warn(ctx, "DMA_UNMAP: payload of %zu bytes, expected %zu",
                 msg->len, sizeof(unmap));
        return -EINVAL;
    }
    memcpy(&unmap, msg->payload, sizeof(unmap));
    all = unmap.flags & VFIO_USER_F_DMA_UNMAP_ALL;
    if (unmap.argsz < sizeof(unmap) ||
        (unmap.flags & ~VFIO_USER_F_DMA_UNMAP_ALL) ||
        (all && (unmap.addr || unmap.size)) ||
        (!all && !range_ok(unmap.addr, unmap.size))) {
        vus_warn(ctx, "DMA_UNMAP: bad argsz %u, flags 0x%x or range "
                 "[0x%" PRIx64 ", +0x%" PRIx64 ")", unmap.argsz, unmap.flags,
                 (uint64_t)unmap.addr, (uint64_t)unmap.size);
        return -EINVAL;
    }

    pthread_rwlock_wrlock(&ctx->dma_lock);
    if (!all) {
        uint64_t end = unmap.addr + unmap.size - 1;

        /* Whole mappings only: a partial overlap unmaps nothing. */
        for (uint32_t i = 0; i < ctx->nr_dma; i++) {
            const VusDmaRegion *r = &ctx->dma[i].r;
            uint64_t r_end = r->iova + r->size - 1;

            if (r_end < unmap.addr || r->iova > end) {
                continue;
            }
            if (r->iova < unmap.addr || r_end > end) {
                vus_warn(ctx, "DMA_UNMAP: [0x%" PRIx64 ", +0x%" PRIx64 ") "
                         "cuts mapping [0x%" PRIx64 ", +0x%" PRIx64 ")",
                         (uint64_t)unmap.addr, (uint64_t)unmap.size,
                         r->iova, r->size);
                ret = -EINVAL;
                break;
            }
        }
    }
    if (ret == 0) {
        for (uint32_t i = 0; i < ctx->nr_dma; i++) {
            const VusDmaRegion *r = &ctx->dma[i].r;
            if (all || (r->iova >= unmap.addr &&
                        r->iova + r->size - 1 <=
                        unmap.addr + unmap.size - 1)) {
                ctx->dma[i].dying = true;
            }
        }
    }
    pthread_rwlock_unlock(&ctx->dma_lock);
    if (ret < 0) {
        return ret;
    }
    dma_remove_dying(ctx);
    return vus_reply(ctx, conn, msg, &unmap, sizeof(unmap), NULL, 0, NULL, 0);
}

void vus_dma_unmap_all(VusCtx *ctx)
{
    pthread_rwlock_wrlock(&ctx->dma_lock);
    for (uint32_t i = 0; i < ctx->nr_dma; i++) {
        ctx->dma[i].dying = true;
    }
    pthread_rwlock_unlock(&ctx->dma_lock);
    dma_remove_dying(ctx);
}

void *vus_dma_addr(VusCtx *ctx, uint64_t iova, size_t len, uint32_t prot)
{
    void *ptr = NULL;
    int idx, err = 0;

    if (!range_ok(iova, len)) {
        errno = EINVAL;
        return NULL;
    }
    pthread_rwlock_rdlock(&ctx->dma_lock);
    idx = dma_find(ctx, iova);
    if (idx < 0 || ctx->dma[idx].dying) {
        err = ENOENT;
    } else {
        const VusDmaRegion *r = &ctx->dma[idx].r;

        if (len > r->size - (iova - r->iova) || !r->vaddr) {
            err = EFAULT;
        } else if ((prot & r->prot) != prot) {
            err = EACCES;
        } else {
            ptr = (uint8_t *)r->vaddr + (iova - r->iova);
        }
    }
    pthread_rwlock_unlock(&ctx->dma_lock);
    if (!ptr) {
        errno = err;
    }
    return ptr;
}

/* One DMA_READ / DMA_WRITE exchange of at most the negotiated size. */
static int dma_message(VusCtx *ctx, uint64_t iova, void *buf, size_t len,
                       bool is_write)
{
    struct vfio_user_dma_access acc = { .addr = iova, .count = len };
    VusMsg reply;
    int ret;

    ret = vus_s2c_request(ctx, is_write ? VFIO_USER_DMA_WRITE :
                          VFIO_USER_DMA_READ, &acc, sizeof(acc),
                          is_write ? buf : NULL, is_write ? len : 0, &reply);
    if (ret < 0) {
        return ret;
    }
    if (reply.len != sizeof(acc) + (is_write ? 0 : len)) {
        ret = -EPROTO;
    } else {
        struct vfio_user_dma_access got;

        memcpy(&got, reply.payload, sizeof(got));
        if (got.addr != iova || got.count != len) {
            ret = -EPROTO;
        } else if (!is_write) {
            memcpy(buf, reply.payload + sizeof(got), len);
        }
    }
    if (ret < 0) {
        vus_warn(ctx, "%s reply for [0x%" PRIx64 ", +0x%zx) is malformed",
                 is_write ? "DMA_WRITE" : "DMA_READ", iova, len);
    }
    vus_msg_release(&reply);
    return ret;
}

static int dma_copy(VusCtx *ctx, uint64_t iova, void *buf, size_t len,
                    bool is_write)
{
    uint32_t need = is_write ? VUS_DMA_WRITE : VUS_DMA_READ;
    uint8_t *p = buf;

    if (!len) {
        return 0;
    }
    if (!range_ok(iova, len)) {
        return -EINVAL;
    }
    while (len) {
        VusDmaMapping *m;
        size_t piece;
        void *vaddr = NULL;
        int idx, ret;

        pthread_rwlock_rdlock(&ctx->dma_lock);
        idx = dma_find(ctx, iova);
        if (idx < 0 || ctx->dma[idx].dying) {
            pthread_rwlock_unlock(&ctx->dma_lock);
            return -ENOENT;
        }
        if ((ctx->dma[idx].r.prot & need) != need) {
            pthread_rwlock_unlock(&ctx->dma_lock);
            return -EACCES;
        }
        m = &ctx->dma[idx];
        piece = MIN((uint64_t)len, m->r.size - (iova - m->r.iova));
        if (m->r.vaddr) {
            vaddr = (uint8_t *)m->r.vaddr + (iova - m->r.iova);
            if (is_write) {
                memcpy(vaddr, p, piece);
                dma_log_mark(ctx, m, iova, piece);
            } else {
                memcpy(p, vaddr, piece);
            }
        } else if (is_write) {
            /* Logged before the write: never miss one, at worst extra. */
            dma_log_mark(ctx, m, iova, piece);
        }
        pthread_rwlock_unlock(&ctx->dma_lock);

        if (!vaddr) {
            size_t chunk_max = atomic_load(&ctx->conn_max_xfer);

            if (!chunk_max) {
                return -ENOTCONN;
            }
            for (size_t done = 0; done < piece;) {
                size_t chunk = MIN(piece - done, chunk_max);

                ret = dma_message(ctx, iova + done, p + done, chunk, is_write);
                if (ret < 0) {
                    return ret;
                }
                done += chunk;
            }
        }
        iova += piece;
        p += piece;
        len -= piece;
    }
    return 0;
}

int vus_dma_read(VusCtx *ctx, uint64_t iova, void *buf, size_t len)
{
    return dma_copy(ctx, iova, buf, len, false);
}

int vus_dma_write(VusCtx *ctx, uint64_t iova, const void *buf, size_t len)
{
    return dma_copy(ctx, iova, (void *)buf, len, true);
}

int vus_dma_mark_dirty(VusCtx *ctx, uint64_t iova, size_t len)
{
    int ret = 0;

    if (!range_ok(iova, len)) {
        return -EINVAL;
    }
    pthread_rwlock_rdlock(&ctx->dma_lock);
    while (len) {
        int idx = dma_find(ctx, iova);
        VusDmaMapping *m;
        uint64_t piece;

        if (idx < 0) {
            ret = -ENOENT;
            break;
        }
        m = &ctx->dma[idx];
        piece = MIN((uint64_t)len, m->r.size - (iova - m->r.iova));
        dma_log_mark(ctx, m, iova, piece);
        iova += piece;
        len -= piece;
    }
    pthread_rwlock_unlock(&ctx->dma_lock);
    return ret;
}

bool vus_dma_logging_active(VusCtx *ctx)
{
    bool active;

    pthread_rwlock_rdlock(&ctx->dma_lock);
    active = ctx->log_active;
    pthread_rwlock_unlock(&ctx->dma_lock);
    return active;
}

static int cmp_range(const void *a, const void *b)
{
    const struct vfio_device_feature_dma_logging_range *x = a, *y = b;

    return x->iova < y->iova ? -1 : x->iova > y->iova;
}

int vus_dma_log_start(VusCtx *ctx, VusConn *conn, VusMsg *msg,
                      const uint8_t *data, size_t len)
{
    struct vfio_user_dma_logging_control ctl;
    struct vfio_device_feature_dma_logging_range *ranges = NULL;
    uint64_t pgsize;
    int ret = 0;

    if (len < sizeof(ctl)) {
        vus_warn(ctx, "DMA_LOGGING_START: %zu bytes of data, at least %zu "
                 "expected", len, sizeof(ctl));
        return -EINVAL;
    }
    memcpy(&ctl, data, sizeof(ctl));
    if (ctl.num_ranges > VUS_MAX_LOG_RANGES ||
        len != sizeof(ctl) + (size_t)ctl.num_ranges * sizeof(*ranges)) {
        vus_warn(ctx, "DMA_LOGGING_START: %u ranges (at most %u) do not "
                 "match %zu bytes of data", ctl.num_ranges,
                 VUS_MAX_LOG_RANGES, len);
        return -EINVAL;
    }
    if (!ctl.page_size || (ctl.page_size & (ctl.page_size - 1)) ||
        ctl.page_size > VUS_MAX_LOG_PGSIZE) {
        vus_warn(ctx, "DMA_LOGGING_START: page size 0x%" PRIx64 " is not a "
                 "power of two up to 1 GiB", (uint64_t)ctl.page_size);
        return -EINVAL;
    }
    /* Finer than a page is not worth it: the device picks 4 KiB. */
    pgsize = MAX((uint64_t)ctl.page_size, (uint64_t)VUS_PAGE_SIZE);
    if (ctl.num_ranges) {
        ranges = calloc(ctl.num_ranges, sizeof(*ranges));
        if (!ranges) {
            return -ENOMEM;
        }
        memcpy(ranges, data + sizeof(ctl), ctl.num_ranges * sizeof(*ranges));
        qsort(ranges, ctl.num_ranges, sizeof(*ranges), cmp_range);
        for (uint32_t i = 0; i < ctl.num_ranges; i++) {
            if (!range_ok(ranges[i].iova, ranges[i].length) ||
                (i && ranges[i - 1].iova + ranges[i - 1].length >
                 ranges[i].iova)) {
                vus_warn(ctx, "DMA_LOGGING_START: range %u [0x%" PRIx64
                         ", +0x%" PRIx64 ") is empty, wraps or overlaps", i,
                         (uint64_t)ranges[i].iova,
                         (uint64_t)ranges[i].length);
                free(ranges);
                return -EINVAL;
            }
        }
    }

    pthread_rwlock_wrlock(&ctx->dma_lock);
    if (ctx->log_active) {
        pthread_rwlock_unlock(&ctx->dma_lock);
        free(ranges);
        vus_warn(ctx, "DMA_LOGGING_START: logging is already on");
        return -EBUSY;
    }
    for (uint32_t i = 0; i < ctx->nr_dma && ret == 0; i++) {
        ret = dma_log_alloc(&ctx->dma[i], pgsize);
    }
    if (ret < 0) {
        for (uint32_t i = 0; i < ctx->nr_dma; i++) {
            free(ctx->dma[i].dirty);
            ctx->dma[i].dirty = NULL;
        }
        pthread_rwlock_unlock(&ctx->dma_lock);
        free(ranges);
        return ret;
    }
    ctx->log_pgsize = pgsize;
    ctx->log_ranges = ranges;
    ctx->nr_log_ranges = ctl.num_ranges;
    ctx->log_active = true;
    pthread_rwlock_unlock(&ctx->dma_lock);

    vus_info(ctx, "DMA logging on: page size %" PRIu64 ", %u ranges", pgsize,
             ctl.num_ranges);
    if (ctx->dma_log_fn) {
        ctx->dma_log_fn(ctx->opaque, true);
    }
    /* The reply echoes the request with the page size chosen. */
    ctl.page_size = pgsize;
    memcpy(msg->payload + sizeof(struct vfio_device_feature), &ctl,
           sizeof(ctl));
    return vus_reply(ctx, conn, msg, msg->payload, msg->len, NULL, 0,
                     NULL, 0);
}

int vus_dma_log_stop(VusCtx *ctx)
{
    bool was_active;

    pthread_rwlock_wrlock(&ctx->dma_lock);
    was_active = ctx->log_active;
    for (uint32_t i = 0; i < ctx->nr_dma; i++) {
        free(ctx->dma[i].dirty);
        ctx->dma[i].dirty = NULL;
    }
    free(ctx->log_ranges);
    ctx->log_ranges = NULL;
    ctx->nr_log_ranges = 0;
    ctx->log_active = false;
    pthread_rwlock_unlock(&ctx->dma_lock);
    if (was_active) {
        vus_info(ctx, "DMA logging off");
        if (ctx->dma_log_fn) {
            ctx->dma_log_fn(ctx->opaque, false);
        }
    }
    return 0;
}

/* Sets bits [first, last] of a report bitmap, a word at a time. */
static void report_set_bits(uint64_t *bitmap, uint64_t first, uint64_t last)
{
    while (first <= last) {
        uint64_t word = first / 64;
        unsigned lo = first % 64;
        unsigned hi = last / 64 == word ? last % 64 : 63;
        uint64_t mask = (hi - lo == 63) ? ~0ull :
                        ((1ull << (hi - lo + 1)) - 1) << lo;

        bitmap[word] |= mask;
        first = word * 64 + hi + 1;
    }
}

/* Collects and clears the log of @m for [iova, iova + len) into @bitmap. */
static void dma_log_collect(VusCtx *ctx, VusDmaMapping *m, uint64_t iova,
                            uint64_t len, uint64_t page_size,
                            uint64_t *bitmap)
{
    uint64_t lp = ctx->log_pgsize;
    uint64_t end = iova + len - 1;
    uint64_t s = MAX(iova, m->r.iova);
    uint64_t e = MIN(end, m->r.iova + m->r.size - 1);
    uint64_t first = s / lp - m->dirty_first;
    uint64_t last = e / lp - m->dirty_first;

    for (uint64_t b = first; b <= last;) {
        uint64_t word = b / BITS_PER_LONG;
        uint64_t word_last = MIN(last, word * BITS_PER_LONG +
                                 BITS_PER_LONG - 1);
        unsigned long want = 0, whole = 0, got;

        for (uint64_t i = b; i <= word_last; i++) {
            uint64_t page = (m->dirty_first + i) * lp;
            unsigned long bit = 1ul << (i % BITS_PER_LONG);

            want |= bit;
            /* Only a log page wholly inside the report is cleared. */
            if (page >= iova && page + lp - 1 <= end) {
                whole |= bit;
            }
        }
        got = __atomic_fetch_and(&m->dirty[word], ~whole, __ATOMIC_RELAXED);
        got &= want;
        while (got) {
            unsigned i = __builtin_ctzl(got);
            uint64_t page = (m->dirty_first + word * BITS_PER_LONG + i) * lp;
            uint64_t ps = MAX(page, iova), pe = MIN(page + lp - 1, end);

            got &= got - 1;
            report_set_bits(bitmap, (ps - iova) / page_size,
                            (pe - iova) / page_size);
        }
        b = word_last + 1;
    }
}

int vus_dma_log_report(VusCtx *ctx, VusConn *conn, VusMsg *msg,
                       const uint8_t *data, size_t len)
{
    struct vfio_user_dma_logging_report rep;
    struct vfio_device_feature feat;
    uint64_t nbits, bitmap_len, covered;
    uint64_t *bitmap;
    int ret = 0;

    if (len != sizeof(rep)) {
        vus_warn(ctx, "DMA_LOGGING_REPORT: %zu bytes of data, expected %zu",
                 len, sizeof(rep));
        return -EINVAL;
    }
    memcpy(&rep, data, sizeof(rep));
    if (!rep.page_size || (rep.page_size & (rep.page_size - 1)) ||
        !range_ok(rep.iova, rep.length) || rep.iova % rep.page_size ||
        rep.length % rep.page_size) {
        vus_warn(ctx, "DMA_LOGGING_REPORT: page size 0x%" PRIx64 " is not a "
                 "power of two, or [0x%" PRIx64 ", +0x%" PRIx64 ") is empty, "
                 "wraps or is not aligned to it", (uint64_t)rep.page_size,
                 (uint64_t)rep.iova, (uint64_t)rep.length);
        return -EINVAL;
    }
    nbits = rep.length / rep.page_size;
    bitmap_len = (nbits + 63) / 64 * 8;
    if (bitmap_len > conn->max_xfer) {
        vus_warn(ctx, "DMA_LOGGING_REPORT: a bitmap of %" PRIu64 " bytes "
                 "exceeds max_data_xfer_size %u", bitmap_len, conn->max_xfer);
        return -EINVAL;
    }
    bitmap = calloc(1, bitmap_len);
    if (!bitmap) {
        return -ENOMEM;
    }

    pthread_rwlock_rdlock(&ctx->dma_lock);
    if (!ctx->log_active) {
        vus_warn(ctx, "DMA_LOGGING_REPORT: logging is off");
        ret = -EINVAL;
        goto out_unlock;
    }
    /*
     * The range must be covered by mappings, possibly several; checked
     * before anything is collected, because collecting clears the log.
     */
    covered = 0;
    for (uint32_t i = 0; i < ctx->nr_dma; i++) {
        const VusDmaMapping *m = &ctx->dma[i];
        uint64_t s = MAX((uint64_t)rep.iova, m->r.iova);
        uint64_t e = MIN(rep.iova + rep.length - 1,
                         m->r.iova + m->r.size - 1);

        if (s <= e) {
            covered += e - s + 1;
        }
    }
    if (covered != rep.length) {
        vus_warn(ctx, "DMA_LOGGING_REPORT: [0x%" PRIx64 ", +0x%" PRIx64 ") is "
                 "not wholly inside mapped DMA", (uint64_t)rep.iova,
                 (uint64_t)rep.length);
        ret = -EINVAL;
        goto out_unlock;
    }
    for (uint32_t i = 0; i < ctx->nr_dma; i++) {
        VusDmaMapping *m = &ctx->dma[i];

        if (m->dirty && m->r.iova <= rep.iova + rep.length - 1 &&
            m->r.iova + m->r.size - 1 >= rep.iova) {
            dma_log_collect(ctx, m, rep.iova, rep.length, rep.page_size,
                            bitmap);
        }
    }
out_unlock:
    pthread_rwlock_unlock(&ctx->dma_lock);
    if (ret == 0) {
        memcpy(&feat, msg->payload, sizeof(feat));
        feat.argsz = sizeof(feat) + sizeof(rep) + bitmap_len;
        /* Header and report in one buffer, the bitmap as the second. */
        uint8_t head[sizeof(feat) + sizeof(rep)];
        memcpy(head, &feat, sizeof(feat));
        memcpy(head + sizeof(feat), &rep, sizeof(rep));
        ret = vus_reply(ctx, conn, msg, head, sizeof(head), bitmap,
                        bitmap_len, NULL, 0);
    }
    free(bitmap);
    return ret;
}
