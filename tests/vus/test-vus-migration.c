/*
 * Device migration between real vfio-user-dma processes through the
 * client library: STOP_COPY round trips, PRE_COPY with background
 * dirtying, cancel in the middle of a stream, corrupted and truncated
 * streams, injected arc failures and the fallback without extensions.
 */
#include "vus-helpers.h"

#define MEM "4M"
#define MEM_SIZE (4 * MiB)

/* What must be equal on both sides after a migration. */
typedef struct DeviceFacts {
    uint64_t checksum;
    uint64_t steps;
    uint64_t foreign;
    uint64_t scratch;
    uint64_t seed;
} DeviceFacts;

static DeviceFacts facts(VFIOUserProxy *p)
{
    return (DeviceFacts) {
        .checksum = vus_reg_read(p, VDMA_REG_CHECKSUM),
        .steps = vus_reg_read(p, VDMA_REG_DIRTY_STEPS),
        .foreign = vus_reg_read(p, VDMA_REG_FOREIGN),
        .scratch = vus_reg_read(p, VDMA_REG_SCRATCH),
        .seed = vus_reg_read(p, VDMA_REG_SEED),
    };
}

static void assert_same_device(VFIOUserProxy *src, VFIOUserProxy *dst)
{
    DeviceFacts a = facts(src), b = facts(dst);

    g_assert_cmpuint(vus_reg_read(dst, VDMA_REG_CHECK), ==, 0);
    g_assert_cmphex(a.checksum, ==, b.checksum);
    g_assert_cmpuint(a.steps, ==, b.steps);
    g_assert_cmpuint(a.foreign, ==, b.foreign);
    g_assert_cmphex(a.scratch, ==, b.scratch);
    g_assert_cmpuint(a.seed, ==, b.seed);
}

static bool append_to(void *opaque, const void *data, size_t len,
                      Error **errp)
{
    g_byte_array_append(opaque, data, len);
    return true;
}

/* Load @stream into @dst; returns whether RESUMING -> STOP accepted it. */
static bool load_stream(VFIOUserProxy *dst, const uint8_t *data, size_t len,
                        Error **errp)
{
    Error *write_err = NULL;

    vus_set_state(dst, VFIO_DEVICE_STATE_RESUMING);
    /* A bad record may already be refused while it is written. */
    if (len && !vfio_user_mig_data_write(dst, data, len, &write_err)) {
        error_free(write_err);
    }
    return vfio_user_mig_set_state(dst, VFIO_DEVICE_STATE_STOP, NULL, errp);
}

/* STOP_COPY save of a stopped source. */
static GByteArray *save_stop_copy(VFIOUserProxy *src)
{
    GByteArray *stream = g_byte_array_new();

    vus_set_state(src, VFIO_DEVICE_STATE_STOP_COPY);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP);
    return stream;
}

static void test_roundtrip(void)
{
    VusServer *s1 = vus_server_start("--mem-size", MEM, "--seed", "3", NULL);
    VusServer *s2 = vus_server_start("--mem-size", MEM, "--seed", "4", NULL);
    VFIOUserProxy *src = vus_connect(s1, NULL);
    VFIOUserProxy *dst = vus_connect(s2, NULL);
    g_autoptr(GByteArray) stream = NULL;
    uint8_t blob[10000], back[10000];
    uint64_t estimate;

    for (size_t i = 0; i < sizeof(blob); i++) {
        blob[i] = i * 13;
    }
    vfio_user_region_write(src, VDMA_MEM_BAR, 12345, blob, sizeof(blob),
                           &error_abort);
    vus_reg_write(src, VDMA_REG_SCRATCH, 0x5eed5eed12345678ull);
    g_assert_true(vfio_user_mig_data_size(src, &estimate, &error_abort));
    g_assert_cmpuint(estimate, >=, MEM_SIZE);

    stream = save_stop_copy(src);
    g_assert_cmpuint(stream->len, >=, MEM_SIZE);
    g_assert_cmpuint(stream->len, <=, estimate);
    g_assert_true(load_stream(dst, stream->data, stream->len, &error_abort));
    vus_set_state(dst, VFIO_DEVICE_STATE_RUNNING);

    assert_same_device(src, dst);
    vfio_user_region_read(dst, VDMA_MEM_BAR, 12345, back, sizeof(back),
                          &error_abort);
    g_assert_cmpmem(back, sizeof(back), blob, sizeof(blob));
    g_assert_cmpuint(vus_get_state(src), ==, VFIO_DEVICE_STATE_STOP);

    vfio_user_disconnect(src);
    vfio_user_disconnect(dst);
    vus_server_stop(s1);
    vus_server_stop(s2);
}

/*
 * A write into device memory in the middle of STOP_COPY (a VMM should not,
 * but the device must stay consistent): the stream still checks out and
 * carries the new bytes.
 */
static void test_write_during_stop_copy(void)
{
    VusServer *s1 = vus_server_start("--mem-size", MEM, NULL);
    VusServer *s2 = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserProxy *src = vus_connect(s1, NULL);
    VFIOUserProxy *dst = vus_connect(s2, NULL);
    g_autoptr(GByteArray) stream = g_byte_array_new();
    size_t chunk = vfio_user_mig_data_chunk(src);
    uint64_t mark = 0x1122334455667788ull, back;

    vus_set_state(src, VFIO_DEVICE_STATE_STOP_COPY);
    for (int i = 0; i < 3; i++) {
        guint old = stream->len;

        g_byte_array_set_size(stream, old + chunk);
        g_assert_cmpint(vfio_user_mig_data_read(src, stream->data + old,
                                                chunk, &error_abort), ==,
                        chunk);
    }
    /*
     * Into a page already sent, into the last piece handed out (the
     * third MiB), and into one not sent yet.
     */
    vfio_user_region_write(src, VDMA_MEM_BAR, 4096 + 8, &mark, 8,
                           &error_abort);
    vfio_user_region_write(src, VDMA_MEM_BAR, 2 * chunk + chunk / 2, &mark,
                           8, &error_abort);
    vfio_user_region_write(src, VDMA_MEM_BAR, MEM_SIZE - 8, &mark, 8,
                           &error_abort);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP);
    g_assert_true(load_stream(dst, stream->data, stream->len, &error_abort));
    vus_set_state(dst, VFIO_DEVICE_STATE_RUNNING);
    vfio_user_region_read(dst, VDMA_MEM_BAR, 4096 + 8, &back, 8, &error_abort);
    g_assert_cmphex(back, ==, mark);
    vfio_user_region_read(dst, VDMA_MEM_BAR, MEM_SIZE - 8, &back, 8,
                          &error_abort);
    g_assert_cmphex(back, ==, mark);
    vfio_user_region_read(dst, VDMA_MEM_BAR, 2 * chunk + chunk / 2, &back, 8,
                          &error_abort);
    g_assert_cmphex(back, ==, mark);
    assert_same_device(src, dst);

    vfio_user_disconnect(src);
    vfio_user_disconnect(dst);
    vus_server_stop(s1);
    vus_server_stop(s2);
}

static void test_precopy_dirty(void)
{
    /* 2048 page rewrites a second on 1024 pages: dirt appears quickly. */
    VusServer *s1 = vus_server_start("--mem-size", MEM, "--dirty-rate",
                                     "200%", NULL);
    VusServer *s2 = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserProxy *src = vus_connect(s1, NULL);
    VFIOUserProxy *dst = vus_connect(s2, NULL);
    g_autoptr(GByteArray) stream = g_byte_array_new();
    uint64_t initial, dirty, initial2, dirty2;
    size_t chunk = vfio_user_mig_data_chunk(src);
    ssize_t n;

    vus_set_state(dst, VFIO_DEVICE_STATE_RESUMING);
    vus_set_state(src, VFIO_DEVICE_STATE_PRE_COPY);
    g_assert_true(vfio_user_mig_precopy_info(src, &initial, &dirty,
                                             &error_abort));
    g_assert_cmpuint(initial, >=, MEM_SIZE);

    /* One chunk: initial bytes fall by about what was read. */
    g_byte_array_set_size(stream, chunk);
    n = vfio_user_mig_data_read(src, stream->data, chunk, &error_abort);
    g_assert_cmpuint(n, ==, chunk);
    g_assert_true(vfio_user_mig_precopy_info(src, &initial2, &dirty2,
                                             &error_abort));
    g_assert_cmpuint(initial2, <, initial);
    g_assert_cmpuint(initial - initial2, >=, chunk - chunk / 8);

    /* A bounded pipelined drain stops at its limit, with more to come. */
    {
        bool end = true;

        g_assert_cmpint(vfio_user_mig_data_drain(src, 300 * KiB + 5,
                                                 append_to, stream, &end,
                                                 &error_abort),
                        ==, 300 * KiB + 5);
        g_assert_false(end);
    }

    /* The rest of the initial data. */
    vus_drain(src, stream);
    g_assert_true(vfio_user_mig_precopy_info(src, &initial, &dirty,
                                             &error_abort));
    g_assert_cmpuint(initial, ==, 0);

    /* The device keeps running: rewritten pages show up as dirty bytes. */
    for (int i = 0; i < 2000 && dirty < 64 * VDMA_PAGE_SIZE; i++) {
        g_usleep(2000);
        vfio_user_mig_precopy_info(src, &initial, &dirty, &error_abort);
    }
    g_assert_cmpuint(dirty, >=, 64 * VDMA_PAGE_SIZE);
    g_assert_cmpuint(initial, ==, 0);
    vus_drain(src, stream);
    g_assert_cmpuint(vus_reg_read(src, VDMA_REG_DIRTY_STEPS), >, 0);

    vus_set_state(src, VFIO_DEVICE_STATE_STOP_COPY);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP);
    vfio_user_mig_data_write(dst, stream->data, stream->len, &error_abort);
    vus_set_state(dst, VFIO_DEVICE_STATE_STOP);

    assert_same_device(src, dst);
    /* The destination's dirtying goes on from the same step. */
    vus_set_state(dst, VFIO_DEVICE_STATE_RUNNING);
    vfio_user_disconnect(src);
    vfio_user_disconnect(dst);
    vus_server_stop(s1);
    vus_server_stop(s2);
}

static void test_cancel(void)
{
    VusServer *s1 = vus_server_start("--mem-size", MEM, "--dirty-rate", "50%",
                                     NULL);
    VusServer *s2 = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserProxy *src = vus_connect(s1, NULL);
    VFIOUserProxy *dst = vus_connect(s2, NULL);
    g_autoptr(GByteArray) stream = g_byte_array_new();
    g_autofree uint8_t *buf = g_malloc(64 * KiB);
    uint64_t initial, dirty;
    Error *err = NULL;

    /* PRE_COPY -> RUNNING halfway through the initial data. */
    vus_set_state(src, VFIO_DEVICE_STATE_PRE_COPY);
    g_assert_cmpint(vfio_user_mig_data_read(src, buf, 64 * KiB, &error_abort),
                    ==, 64 * KiB);
    vus_set_state(src, VFIO_DEVICE_STATE_RUNNING);
    g_assert_false(vfio_user_mig_precopy_info(src, &initial, &dirty, &err));
    error_free(err);
    err = NULL;
    g_assert_cmpint(vfio_user_mig_data_read(src, buf, 4096, &err), <, 0);
    error_free(err);
    err = NULL;
    /* Still a working device. */
    vus_reg_write(src, VDMA_REG_SCRATCH, 77);
    g_assert_cmpuint(vus_reg_read(src, VDMA_REG_SCRATCH), ==, 77);
    g_assert_cmpuint(vus_reg_read(src, VDMA_REG_CHECK), ==, 0);

    /* STOP_COPY -> STOP halfway, then back to running. */
    vus_set_state(src, VFIO_DEVICE_STATE_STOP_COPY);
    g_assert_cmpint(vfio_user_mig_data_read(src, buf, 64 * KiB, &error_abort),
                    ==, 64 * KiB);
    vus_set_state(src, VFIO_DEVICE_STATE_RUNNING);
    g_assert_cmpuint(vus_reg_read(src, VDMA_REG_CHECK), ==, 0);

    /* PRE_COPY again starts a whole new stream, which loads fine. */
    vus_set_state(src, VFIO_DEVICE_STATE_PRE_COPY);
    g_assert_true(vfio_user_mig_precopy_info(src, &initial, &dirty,
                                             &error_abort));
    g_assert_cmpuint(initial, >=, MEM_SIZE);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP_COPY);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP);
    g_assert_true(load_stream(dst, stream->data, stream->len, &error_abort));
    vus_set_state(dst, VFIO_DEVICE_STATE_RUNNING);
    assert_same_device(src, dst);

    vfio_user_disconnect(src);
    vfio_user_disconnect(dst);
    vus_server_stop(s1);
    vus_server_stop(s2);
}

/* Load a damaged stream: it must be refused and nothing may run. */
static void expect_rejected(VFIOUserProxy *dst, const uint8_t *data,
                            size_t len, const char *what)
{
    Error *err = NULL;

    if (load_stream(dst, data, len, &err)) {
        g_error("a %s stream was accepted", what);
    }
    g_assert_nonnull(strstr(error_get_pretty(err), "STOP"));
    error_free(err);
    /* Refused: still RESUMING; only a reset leaves it, to power-on state. */
    g_assert_cmpuint(vus_get_state(dst), ==, VFIO_DEVICE_STATE_RESUMING);
    g_assert_true(vfio_user_device_reset(dst, &error_abort));
    g_assert_cmpuint(vus_get_state(dst), ==, VFIO_DEVICE_STATE_RUNNING);
    g_assert_cmpuint(vus_reg_read(dst, VDMA_REG_CHECK), ==, 0);
    g_assert_cmpuint(vus_reg_read(dst, VDMA_REG_SCRATCH), ==, 0);
}

static void test_bad_streams(void)
{
    VusServer *s1 = vus_server_start("--mem-size", MEM, "--seed", "5", NULL);
    VusServer *s2 = vus_server_start("--mem-size", MEM, NULL);
    VusServer *s3 = vus_server_start("--mem-size", "8M", NULL);
    VFIOUserProxy *src = vus_connect(s1, NULL);
    VFIOUserProxy *dst = vus_connect(s2, NULL);
    VFIOUserProxy *big = vus_connect(s3, NULL);
    g_autoptr(GByteArray) stream = NULL;
    g_autofree uint8_t *copy = NULL;
    size_t len;

    vus_reg_write(src, VDMA_REG_SCRATCH, 99);
    stream = save_stop_copy(src);
    len = stream->len;
    copy = g_memdup2(stream->data, len);

    /* One flipped bit in page data. */
    copy[len / 2] ^= 0x10;
    expect_rejected(dst, copy, len, "corrupted (page data)");
    memcpy(copy, stream->data, len);
    /* ... in the first record header. */
    copy[12] ^= 1;
    expect_rejected(dst, copy, len, "corrupted (header)");
    memcpy(copy, stream->data, len);
    /* ... in the END record (registers). */
    copy[len - 100] ^= 0x80;
    expect_rejected(dst, copy, len, "corrupted (END)");
    memcpy(copy, stream->data, len);

    /* Truncated: in the END record, at a record boundary, empty. */
    expect_rejected(dst, copy, len - 1, "truncated by one byte");
    expect_rejected(dst, copy, len / 3, "truncated to a third");
    expect_rejected(dst, copy, 0, "empty");
    /* Extra data after END. */
    {
        g_autofree uint8_t *longer = g_malloc(len + 64);

        memcpy(longer, stream->data, len);
        memset(longer + len, 0, 64);
        expect_rejected(dst, longer, len + 64, "over-long");
    }
    /* A stream for another memory size. */
    vus_set_state(big, VFIO_DEVICE_STATE_STOP);
    expect_rejected(big, stream->data, len, "wrong-size");

    /* And the intact stream still loads. */
    g_assert_true(load_stream(dst, stream->data, len, &error_abort));
    vus_set_state(dst, VFIO_DEVICE_STATE_RUNNING);
    assert_same_device(src, dst);

    vfio_user_disconnect(src);
    vfio_user_disconnect(dst);
    vfio_user_disconnect(big);
    vus_server_stop(s1);
    vus_server_stop(s2);
    vus_server_stop(s3);
}

static void test_fail_arc(void)
{
    VusServer *s = vus_server_start("--mem-size", MEM, "--no-p2p",
                                    "--fail-arc", "PRE_COPY:STOP_COPY",
                                    "--fail-arc", "stop:resuming", NULL);
    VusServer *sp = vus_server_start("--mem-size", MEM,
                                     "--fail-arc", "RUNNING_P2P:STOP", NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    VFIOUserProxy *pp = vus_connect(sp, NULL);
    uint32_t server_errno = 0;
    uint64_t flags;
    Error *err = NULL;

    g_assert_true(vfio_user_mig_get_flags(p, &flags, &error_abort));
    g_assert_cmphex(flags, ==, VFIO_MIGRATION_STOP_COPY |
                    VFIO_MIGRATION_PRE_COPY);
    vus_set_state(p, VFIO_DEVICE_STATE_PRE_COPY);
    g_assert_false(vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_STOP_COPY,
                                           &server_errno, &err));
    g_assert_cmpuint(server_errno, ==, EIO);
    g_assert_nonnull(strstr(error_get_pretty(err), "STOP_COPY"));
    error_free(err);
    err = NULL;
    /* The arc failed with the device intact: still PRE_COPY, can go back. */
    g_assert_cmpuint(vus_get_state(p), ==, VFIO_DEVICE_STATE_PRE_COPY);
    vus_set_state(p, VFIO_DEVICE_STATE_RUNNING);
    g_assert_cmpuint(vus_reg_read(p, VDMA_REG_CHECK), ==, 0);

    /* RUNNING -> RESUMING: the first arc works, the second fails. */
    g_assert_false(vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_RESUMING,
                                           &server_errno, &err));
    error_free(err);
    err = NULL;
    g_assert_cmpuint(vus_get_state(p), ==, VFIO_DEVICE_STATE_STOP);

    /* With P2P, RUNNING -> STOP passes RUNNING_P2P and stops there. */
    g_assert_false(vfio_user_mig_set_state(pp, VFIO_DEVICE_STATE_STOP,
                                           &server_errno, &err));
    error_free(err);
    g_assert_cmpuint(vus_get_state(pp), ==, VFIO_DEVICE_STATE_RUNNING_P2P);
    vus_set_state(pp, VFIO_DEVICE_STATE_RUNNING);

    vfio_user_disconnect(p);
    vfio_user_disconnect(pp);
    vus_server_stop(s);
    vus_server_stop(sp);
}

static void test_p2p_and_refusals(void)
{
    VusServer *s1 = vus_server_start("--mem-size", MEM, "--dirty-rate", "20%",
                                     NULL);
    VusServer *s2 = vus_server_start("--mem-size", MEM, "--no-precopy", NULL);
    VFIOUserProxy *src = vus_connect(s1, NULL);
    VFIOUserProxy *dst = vus_connect(s2, NULL);
    g_autoptr(GByteArray) stream = g_byte_array_new();
    uint32_t server_errno;
    uint64_t flags;
    Error *err = NULL;

    /* The P2P route of a VMM with several devices. */
    vus_set_state(src, VFIO_DEVICE_STATE_PRE_COPY);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_PRE_COPY_P2P);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP_COPY);
    /* STOP_COPY -> PRE_COPY is refused. */
    g_assert_false(vfio_user_mig_set_state(src, VFIO_DEVICE_STATE_PRE_COPY,
                                           &server_errno, &err));
    error_free(err);
    err = NULL;
    g_assert_cmpuint(vus_get_state(src), ==, VFIO_DEVICE_STATE_STOP_COPY);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP);

    /* A device without PRE_COPY refuses it, and still loads the stream. */
    g_assert_true(vfio_user_mig_get_flags(dst, &flags, &error_abort));
    g_assert_false(flags & VFIO_MIGRATION_PRE_COPY);
    g_assert_false(vfio_user_mig_set_state(dst, VFIO_DEVICE_STATE_PRE_COPY,
                                           &server_errno, &err));
    error_free(err);
    g_assert_true(load_stream(dst, stream->data, stream->len, &error_abort));
    vus_set_state(dst, VFIO_DEVICE_STATE_RUNNING_P2P);
    vus_set_state(dst, VFIO_DEVICE_STATE_RUNNING);
    assert_same_device(src, dst);

    vfio_user_disconnect(src);
    vfio_user_disconnect(dst);
    vus_server_stop(s1);
    vus_server_stop(s2);
}

static void test_no_extensions(void)
{
    VusServer *s1 = vus_server_start("--mem-size", MEM, "--dirty-rate", "20%",
                                     NULL);
    VusServer *s2 = vus_server_start("--mem-size", MEM, NULL);
    VFIOUserConnectOptions plain = { .timeout_ms = 10000,
                                     .no_extensions = true };
    VFIOUserProxy *src = vus_connect(s1, &plain);
    VFIOUserProxy *dst = vus_connect(s2, &plain);
    g_autoptr(GByteArray) stream = g_byte_array_new();
    uint64_t a, b;
    Error *err = NULL;

    g_assert_false(vfio_user_mig_data_size(src, &a, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "does not offer the "
                            "MIG_DATA_SIZE extension"));
    error_free(err);
    err = NULL;
    vus_set_state(src, VFIO_DEVICE_STATE_PRE_COPY);
    g_assert_false(vfio_user_mig_precopy_info(src, &a, &b, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "precopy-info"));
    error_free(err);
    /* A migration works with the standard commands alone. */
    g_assert_cmpuint(vus_drain(src, stream), >=, MEM_SIZE);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP_COPY);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP);
    g_assert_true(load_stream(dst, stream->data, stream->len, &error_abort));
    vus_set_state(dst, VFIO_DEVICE_STATE_RUNNING);
    assert_same_device(src, dst);

    vfio_user_disconnect(src);
    vfio_user_disconnect(dst);
    vus_server_stop(s1);
    vus_server_stop(s2);
}

/*
 * A plain, strict 0.9.2 server (--no-extensions --strict-regions) and a
 * client that proposes the extensions: none is used, there are no P2P
 * states, PRE_COPY data runs dry with 0-byte reads that are not the end
 * of the stream, and a migration works with the standard commands alone.
 */
static void test_plain_server(void)
{
    VusServer *s1 = vus_server_start("--mem-size", MEM, "--no-extensions",
                                     "--strict-regions", NULL);
    VusServer *s2 = vus_server_start("--mem-size", MEM, "--no-extensions",
                                     "--strict-regions", NULL);
    VusServer *s3 = vus_server_start("--mem-size", MEM, "--no-extensions",
                                     "--strict-regions", "--dirty-rate",
                                     "200%", NULL);
    VFIOUserProxy *src = vus_connect(s1, NULL);
    VFIOUserProxy *dst = vus_connect(s2, NULL);
    VFIOUserProxy *busy = vus_connect(s3, NULL);
    g_autoptr(GByteArray) stream = g_byte_array_new();
    uint8_t buf[4096];
    DeviceFacts before;
    uint64_t flags, a, b;
    Error *err = NULL;
    ssize_t n;

    g_assert_false(vfio_user_peer_caps(src)->precopy_info);
    g_assert_false(vfio_user_peer_caps(src)->mig_data_size);
    g_assert_true(vfio_user_mig_get_flags(src, &flags, &error_abort));
    g_assert_cmphex(flags, ==, VFIO_MIGRATION_STOP_COPY |
                    VFIO_MIGRATION_PRE_COPY);
    g_assert_false(vfio_user_mig_data_size(src, &a, &err));
    g_clear_pointer(&err, error_free);

    /* Its registers are out of reach once it stops: take them now. */
    vus_reg_write(src, VDMA_REG_SCRATCH, 0x0123456789abcdefull);
    before = facts(src);
    vus_set_state(src, VFIO_DEVICE_STATE_PRE_COPY);
    g_assert_false(vfio_user_mig_precopy_info(src, &a, &b, &err));
    g_clear_pointer(&err, error_free);
    g_assert_cmpuint(vus_drain(src, stream), >=, MEM_SIZE);
    /* Dry for now: a 0-byte read, not an error, and the state stays. */
    g_assert_cmpint(vfio_user_mig_data_read(src, buf, sizeof(buf),
                                            &error_abort), ==, 0);
    g_assert_cmpuint(vus_get_state(src), ==, VFIO_DEVICE_STATE_PRE_COPY);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP_COPY);
    g_assert_false(vfio_user_region_read(src, VDMA_REGS_BAR, VDMA_REG_ID,
                                         buf, 4, &err));
    g_clear_pointer(&err, error_free);
    vus_drain(src, stream);
    vus_set_state(src, VFIO_DEVICE_STATE_STOP);
    g_assert_true(load_stream(dst, stream->data, stream->len, &error_abort));
    vus_set_state(dst, VFIO_DEVICE_STATE_RUNNING);
    g_assert_cmpuint(vus_reg_read(dst, VDMA_REG_CHECK), ==, 0);
    g_assert_cmphex(facts(dst).checksum, ==, before.checksum);
    g_assert_cmphex(facts(dst).scratch, ==, before.scratch);

    /* A running device runs dry, then has more: the end was temporary. */
    vus_set_state(busy, VFIO_DEVICE_STATE_PRE_COPY);
    g_byte_array_set_size(stream, 0);
    vus_drain(busy, stream);
    n = -1;
    for (int i = 0; i < 10000 && n != 0; i++) {
        n = vfio_user_mig_data_read(busy, buf, sizeof(buf), &error_abort);
    }
    g_assert_cmpint(n, ==, 0);
    for (int i = 0; i < 5000 && n == 0; i++) {
        g_usleep(1000);
        n = vfio_user_mig_data_read(busy, buf, sizeof(buf), &error_abort);
    }
    g_assert_cmpint(n, >, 0);
    vus_set_state(busy, VFIO_DEVICE_STATE_RUNNING);
    g_assert_cmpuint(vus_reg_read(busy, VDMA_REG_CHECK), ==, 0);

    vfio_user_disconnect(src);
    vfio_user_disconnect(dst);
    vfio_user_disconnect(busy);
    vus_server_stop(s1);
    vus_server_stop(s2);
    vus_server_stop(s3);
}

/* Whether a 4-byte read of @region at @offset is taken. */
static bool region_readable(VFIOUserProxy *p, uint32_t region,
                            uint64_t offset)
{
    Error *err = NULL;
    uint32_t v;

    if (vfio_user_region_read(p, region, offset, &v, sizeof(v), &err)) {
        return true;
    }
    g_assert_nonnull(strstr(error_get_pretty(err), "REGION_READ"));
    error_free(err);
    return false;
}

/*
 * --strict-regions: registers, device memory and config space take
 * REGION_READ/WRITE only in RUNNING, RUNNING_P2P and PRE_COPY, as the
 * strictest servers do; the migration data still flows.
 */
static void test_strict_regions(void)
{
    static const struct {
        uint32_t state;
        bool taken;
    } steps[] = {
        { VFIO_DEVICE_STATE_RUNNING, true },
        { VFIO_DEVICE_STATE_PRE_COPY, true },
        { VFIO_DEVICE_STATE_PRE_COPY_P2P, false },
        { VFIO_DEVICE_STATE_STOP_COPY, false },
        { VFIO_DEVICE_STATE_STOP, false },
        { VFIO_DEVICE_STATE_RUNNING_P2P, true },
        { VFIO_DEVICE_STATE_RUNNING, true },
    };
    VusServer *s = vus_server_start("--mem-size", MEM, "--strict-regions",
                                    NULL);
    VFIOUserProxy *p = vus_connect(s, NULL);
    g_autoptr(GByteArray) stream = g_byte_array_new();
    Error *err = NULL;
    uint32_t one = 1;

    for (size_t i = 0; i < G_N_ELEMENTS(steps); i++) {
        vus_set_state(p, steps[i].state);
        g_assert_cmpint(region_readable(p, VDMA_REGS_BAR, VDMA_REG_ID), ==,
                        steps[i].taken);
        g_assert_cmpint(region_readable(p, VDMA_MEM_BAR, 4096), ==,
                        steps[i].taken);
        g_assert_cmpint(region_readable(p, VFIO_PCI_CONFIG_REGION_INDEX, 0),
                        ==, steps[i].taken);
        if (steps[i].state == VFIO_DEVICE_STATE_STOP_COPY) {
            g_assert_false(vfio_user_region_write(p, VDMA_MEM_BAR, 0, &one,
                                                  sizeof(one), &err));
            g_clear_pointer(&err, error_free);
            g_assert_cmpuint(vus_drain(p, stream), >=, MEM_SIZE);
        }
    }
    vfio_user_disconnect(p);
    vus_server_stop(s);
}

int main(int argc, char **argv)
{
    vus_test_init(&argc, &argv);
    g_test_add_func("/vus/migration/roundtrip", test_roundtrip);
    g_test_add_func("/vus/migration/write-during-stop-copy",
                    test_write_during_stop_copy);
    g_test_add_func("/vus/migration/precopy-dirty", test_precopy_dirty);
    g_test_add_func("/vus/migration/cancel", test_cancel);
    g_test_add_func("/vus/migration/bad-streams", test_bad_streams);
    g_test_add_func("/vus/migration/fail-arc", test_fail_arc);
    g_test_add_func("/vus/migration/p2p-and-refusals", test_p2p_and_refusals);
    g_test_add_func("/vus/migration/no-extensions", test_no_extensions);
    g_test_add_func("/vus/migration/plain-server", test_plain_server);
    g_test_add_func("/vus/migration/strict-regions", test_strict_regions);
    return g_test_run();
}
