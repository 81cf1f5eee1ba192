/*
 * Multifd compression with zstd: one frame per packet, with its size
 * pledged so that the frame's window fits the packet; the decoder
 * refuses larger windows, which bounds its memory.
 */
#include "qemu/osdep.h"
#include <zstd.h>
#include "multifd-internal.h"

/* 1 MiB: above any packet's data, far below zstd's default limit. */
#define MULTIFD_ZSTD_WINDOW_LOG_MAX 20

static void *zstd_send_setup(int level, Error **errp)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t ret;

    if (!cctx) {
        error_setg(errp, "zstd: cannot allocate a compression context");
        return NULL;
    }
    ret = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    if (ZSTD_isError(ret)) {
        error_setg(errp, "zstd: cannot set compression level %d: %s", level,
                   ZSTD_getErrorName(ret));
        ZSTD_freeCCtx(cctx);
        return NULL;
    }
    return cctx;
}

static void zstd_send_cleanup(void *state)
{
    ZSTD_freeCCtx(state);
}

static ssize_t zstd_compress(void *state, uint8_t *const *pages, uint32_t n,
                             uint8_t *out, size_t cap, Error **errp)
{
    ZSTD_CCtx *cctx = state;
    ZSTD_outBuffer ob = { .dst = out, .size = cap };
    size_t ret;

    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
    ret = ZSTD_CCtx_setPledgedSrcSize(cctx, (uint64_t)n * TARGET_PAGE_SIZE);
    if (ZSTD_isError(ret)) {
        error_setg(errp, "zstd: cannot start a frame: %s",
                   ZSTD_getErrorName(ret));
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        bool last = i == n - 1;
        ZSTD_inBuffer ib = { .src = pages[i], .size = TARGET_PAGE_SIZE };

        do {
            ret = ZSTD_compressStream2(cctx, &ob, &ib,
                                       last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(ret)) {
                error_setg(errp, "zstd: compression failed: %s",
                           ZSTD_getErrorName(ret));
                return -1;
            }
            if (ob.pos == ob.size && (ib.pos < ib.size || (last && ret))) {
                return 0;           /* does not shrink: send it raw */
            }
        } while (ib.pos < ib.size || (last && ret));
    }
    return ob.pos;
}

static void *zstd_recv_setup(Error **errp)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    size_t ret;

    if (!dctx) {
        error_setg(errp, "zstd: cannot allocate a decompression context");
        return NULL;
    }
    ret = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax,
                                 MULTIFD_ZSTD_WINDOW_LOG_MAX);
    if (ZSTD_isError(ret)) {
        error_setg(errp, "zstd: cannot limit the window: %s",
                   ZSTD_getErrorName(ret));
        ZSTD_freeDCtx(dctx);
        return NULL;
    }
    return dctx;
}

static void zstd_recv_cleanup(void *state)
{
    ZSTD_freeDCtx(state);
}

/* One step; false with errp set on corrupt data or no progress. */
static bool zstd_step(ZSTD_DCtx *dctx, ZSTD_outBuffer *ob, ZSTD_inBuffer *ib,
                      uint32_t page, uint32_t n, size_t *ret, Error **errp)
{
    size_t in_before = ib->pos, out_before = ob->pos;

    *ret = ZSTD_decompressStream(dctx, ob, ib);
    if (ZSTD_isError(*ret)) {
        error_setg(errp, "zstd: corrupt data in page %u of %u: %s", page, n,
                   ZSTD_getErrorName(*ret));
        return false;
    }
    if (*ret && ib->pos == in_before && ob->pos == out_before) {
        error_setg(errp, "zstd: data truncated in page %u of %u", page, n);
        return false;
    }
    return true;
}

static bool zstd_decompress(void *state, const uint8_t *in, size_t len,
                            uint8_t *const *pages, uint32_t n, Error **errp)
{
    ZSTD_DCtx *dctx = state;
    ZSTD_inBuffer ib = { .src = in, .size = len };
    uint8_t scratch;
    size_t ret = 1;

    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
    for (uint32_t i = 0; i < n; i++) {
        ZSTD_outBuffer ob = { .dst = pages[i], .size = TARGET_PAGE_SIZE };

        while (ob.pos < ob.size) {
            if (ret == 0) {
                error_setg(errp, "zstd: data ends in page %u of %u", i, n);
                return false;
            }
            if (!zstd_step(dctx, &ob, &ib, i, n, &ret, errp)) {
                return false;
            }
        }
    }
    while (ret) {
        /* Every page is full: the frame may only end now, never grow. */
        ZSTD_outBuffer ob = { .dst = &scratch, .size = 1 };

        if (!zstd_step(dctx, &ob, &ib, n, n, &ret, errp)) {
            return false;
        }
        if (ob.pos) {
            error_setg(errp, "zstd: data decompresses to more than %u pages",
                       n);
            return false;
        }
    }
    if (ib.pos < ib.size) {
        error_setg(errp, "zstd: %zu bytes follow the end of the data",
                   ib.size - ib.pos);
        return false;
    }
    return true;
}

const MultiFDCompressOps multifd_zstd_ops = {
    .name = "zstd",
    .send_setup = zstd_send_setup,
    .send_cleanup = zstd_send_cleanup,
    .compress = zstd_compress,
    .recv_setup = zstd_recv_setup,
    .recv_cleanup = zstd_recv_cleanup,
    .decompress = zstd_decompress,
};
