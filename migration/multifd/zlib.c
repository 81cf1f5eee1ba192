/*
 * Multifd compression with zlib: one deflate stream per packet, reset in
 * between, so every packet decodes on its own.
 */
#include "qemu/osdep.h"
#include <zlib.h>
#include "multifd-internal.h"

static void *zlib_send_setup(int level, Error **errp)
{
    z_stream *zs = g_new0(z_stream, 1);
    int ret = deflateInit(zs, level);

    if (ret != Z_OK) {
        error_setg(errp, "zlib: cannot set up compression at level %d: %s",
                   level, zs->msg ? zs->msg : zError(ret));
        g_free(zs);
        return NULL;
    }
    return zs;
}

static void zlib_send_cleanup(void *state)
{
    if (state) {
        deflateEnd(state);
        g_free(state);
    }
}

static ssize_t zlib_compress(void *state, uint8_t *const *pages, uint32_t n,
                             uint8_t *out, size_t cap, Error **errp)
{
    z_stream *zs = state;
    int ret = Z_OK;

    deflateReset(zs);
    zs->next_out = out;
    zs->avail_out = cap;
    for (uint32_t i = 0; i < n; i++) {
        bool last = i == n - 1;

        zs->next_in = pages[i];
        zs->avail_in = TARGET_PAGE_SIZE;
        while (zs->avail_in > 0 || (last && ret != Z_STREAM_END)) {
            ret = deflate(zs, last ? Z_FINISH : Z_NO_FLUSH);
            if (ret == Z_STREAM_END) {
                break;
            }
            if (zs->avail_out == 0) {
                return 0;           /* does not shrink: send it raw */
            }
            if (ret != Z_OK) {
                error_setg(errp, "zlib: compression failed: %s",
                           zs->msg ? zs->msg : zError(ret));
                return -1;
            }
        }
    }
    return cap - zs->avail_out;
}

static void *zlib_recv_setup(Error **errp)
{
    z_stream *zs = g_new0(z_stream, 1);
    int ret = inflateInit(zs);

    if (ret != Z_OK) {
        error_setg(errp, "zlib: cannot set up decompression: %s",
                   zs->msg ? zs->msg : zError(ret));
        g_free(zs);
        return NULL;
    }
    return zs;
}

static void zlib_recv_cleanup(void *state)
{
    if (state) {
        inflateEnd(state);
        g_free(state);
    }
}

static bool zlib_decompress(void *state, const uint8_t *in, size_t len,
                            uint8_t *const *pages, uint32_t n, Error **errp)
{
    z_stream *zs = state;
    uint8_t scratch;
    int ret = Z_OK;

    inflateReset(zs);
    zs->next_in = (uint8_t *)in;
    zs->avail_in = len;
    for (uint32_t i = 0; i < n; i++) {
        zs->next_out = pages[i];
        zs->avail_out = TARGET_PAGE_SIZE;
        while (zs->avail_out > 0) {
            if (ret == Z_STREAM_END) {
                error_setg(errp, "zlib: data ends in page %u of %u", i, n);
                return false;
            }
            ret = inflate(zs, Z_NO_FLUSH);
            if (ret == Z_BUF_ERROR) {
                error_setg(errp, "zlib: data truncated in page %u of %u", i,
                           n);
                return false;
            }
            if (ret != Z_OK && ret != Z_STREAM_END) {
                error_setg(errp, "zlib: corrupt data in page %u of %u: %s",
                           i, n, zs->msg ? zs->msg : zError(ret));
                return false;
            }
        }
    }
    if (ret != Z_STREAM_END) {
        /* Every page is full: anything but the stream's end is a bomb. */
        zs->next_out = &scratch;
        zs->avail_out = 1;
        ret = inflate(zs, Z_FINISH);
        if (zs->avail_out == 0) {
            error_setg(errp, "zlib: data decompresses to more than %u pages",
                       n);
            return false;
        }
        if (ret != Z_STREAM_END) {
            error_setg(errp, "zlib: data truncated or corrupt after %u pages:"
                       " %s", n, zs->msg ? zs->msg : zError(ret));
            return false;
        }
    }
    if (zs->avail_in) {
        error_setg(errp, "zlib: %u bytes follow the end of the data",
                   zs->avail_in);
        return false;
    }
    return true;
}

const MultiFDCompressOps multifd_zlib_ops = {
    .name = "zlib",
    .send_setup = zlib_send_setup,
    .send_cleanup = zlib_send_cleanup,
    .compress = zlib_compress,
    .recv_setup = zlib_recv_setup,
    .recv_cleanup = zlib_recv_cleanup,
    .decompress = zlib_decompress,
};
