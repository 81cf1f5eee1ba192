/*
 * Multifd pieces that need no connection: header encoding and checks,
 * parameters, the compression methods (round trips, bombs, truncation)
 * and the device state reassembly queue.
 */
#include "qemu/osdep.h"
#include <zlib.h>
#include <zstd.h>
#include "migration/multifd/multifd-internal.h"

static void assert_error_contains(Error *err, const char *needle)
{
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), needle)) {
        g_test_message("error '%s' lacks '%s'", error_get_pretty(err), needle);
        g_assert_not_reached();
    }
}

#define CHECK_ERR(expr, needle)                 \
    do {                                        \
        Error *err_ = NULL;                     \
        g_assert_false(expr);                   \
        assert_error_contains(err_, needle);    \
        error_free(err_);                       \
    } while (0)

/* ---- Headers and parameters ---- */

static void test_hello_roundtrip(void)
{
    MultiFDHello h = {
        .magic = MULTIFD_HELLO_MAGIC, .version = 1, .channel_id = 7,
        .channel_count = 9, .compression = 2, .page_size = 4096,
    };
    MultiFDHello back;
    uint8_t buf[MULTIFD_HELLO_LEN];

    for (int i = 0; i < 16; i++) {
        h.uuid[i] = i * 17;
    }
    multifd_hello_encode(&h, buf);
    /* Big-endian on the wire, whatever the host. */
    g_assert_cmpuint(buf[0], ==, 'M');
    g_assert_cmpuint(buf[3], ==, 'H');
    g_assert_cmpuint(buf[27], ==, 7);
    g_assert_true(multifd_is_channel_hello(buf));
    multifd_hello_decode(buf, &back);
    g_assert_cmpmem(&h, sizeof(h), &back, sizeof(back));
    buf[0] = 'V';
    g_assert_false(multifd_is_channel_hello(buf));
}

static MultiFDPacketHeader good_header(void)
{
    MultiFDPacketHeader h = {
        .magic = MULTIFD_PACKET_MAGIC, .version = MULTIFD_PACKET_VERSION,
        .kind = MULTIFD_PAYLOAD_RAM, .payload_size = 100, .packet_num = 10,
    };
    return h;
}

#define CHECK_HEADER(h, first, last, needle)                            \
    CHECK_ERR(multifd_packet_header_check(h, first, last, &err_), needle)

static void test_header_checks(void)
{
    MultiFDPacketHeader h = good_header(), back;
    uint8_t buf[MULTIFD_PACKET_HDR_LEN];

    multifd_packet_header_encode(&h, buf);
    g_assert_cmpuint(buf[31], ==, 10);
    multifd_packet_header_decode(buf, &back);
    g_assert_cmpmem(&h, sizeof(h), &back, sizeof(back));
    g_assert_true(multifd_packet_header_check(&h, true, 0, &error_abort));
    g_assert_true(multifd_packet_header_check(&h, false, 9, &error_abort));

    h.magic ^= 1;
    CHECK_HEADER(&h, true, 0, "bad packet magic");
    h = good_header();
    h.version = 2;
    CHECK_HEADER(&h, true, 0, "version 2");
    h = good_header();
    h.flags = 0x80;
    CHECK_HEADER(&h, true, 0, "unknown flags 0x80");
    h = good_header();
    h.kind = MULTIFD_PAYLOAD__MAX;
    CHECK_HEADER(&h, true, 0, "unknown payload kind");
    h = good_header();
    h.reserved = 1;
    CHECK_HEADER(&h, true, 0, "reserved");
    h = good_header();
    h.payload_size = multifd_payload_max(MULTIFD_PAYLOAD_RAM) + 1;
    CHECK_HEADER(&h, true, 0, "exceeds the limit");
    h = good_header();
    h.kind = MULTIFD_PAYLOAD_NONE;
    h.payload_size = 0;
    CHECK_HEADER(&h, true, 0, "neither payload nor SYNC");
    h.flags = MULTIFD_FLAG_SYNC;
    g_assert_true(multifd_packet_header_check(&h, true, 0, &error_abort));
    h.payload_size = 1;
    CHECK_HEADER(&h, true, 0, "exceeds the limit of 0");
    h = good_header();
    CHECK_HEADER(&h, false, 10, "does not follow 10");
}

static void test_params(void)
{
    MultiFDParams p;
    MultiFDCompression m;

    multifd_params_init(&p);
    g_assert_cmpuint(p.channels, ==, 2);
    g_assert_cmpint(p.compression, ==, MULTIFD_COMPRESSION_NONE);
    g_assert_cmpint(p.zlib_level, ==, 1);
    g_assert_cmpint(p.zstd_level, ==, 1);
    g_assert_true(multifd_params_check(&p, &error_abort));
    p.channels = 0;
    CHECK_ERR(multifd_params_check(&p, &err_), "multifd-channels 0");
    p.channels = 256;
    CHECK_ERR(multifd_params_check(&p, &err_), "multifd-channels 256");
    multifd_params_init(&p);
    p.zlib_level = 10;
    CHECK_ERR(multifd_params_check(&p, &err_), "multifd-zlib-level 10");
    multifd_params_init(&p);
    p.zstd_level = 21;
    CHECK_ERR(multifd_params_check(&p, &err_), "multifd-zstd-level 21");

    g_assert_true(multifd_compression_parse("zstd", &m, &error_abort));
    g_assert_cmpint(m, ==, MULTIFD_COMPRESSION_ZSTD);
    g_assert_cmpstr(multifd_compression_name(MULTIFD_COMPRESSION_ZLIB), ==,
                    "zlib");
    CHECK_ERR(multifd_compression_parse("lz4", &m, &err_), "'lz4'");
}

/* ---- Compression methods ---- */

#define NPAGES 8

typedef struct PageSet {
    uint8_t *mem;
    uint8_t *pages[NPAGES];
} PageSet;

static void pageset_init(PageSet *ps, unsigned npages, GRand *rand, bool random)
{
    ps->mem = g_malloc0(npages * TARGET_PAGE_SIZE);
    for (unsigned i = 0; i < npages; i++) {
        ps->pages[i] = ps->mem + i * TARGET_PAGE_SIZE;
        for (unsigned j = 0; j < TARGET_PAGE_SIZE; j += 4) {
            uint32_t v = random ? g_rand_int(rand) : (i * 31 + j / 64);

            memcpy(ps->pages[i] + j, &v, 4);
        }
    }
}

static const MultiFDCompressOps *method_ops(gconstpointer data)
{
    return multifd_compress_ops(GPOINTER_TO_INT(data));
}

static void test_compress_roundtrip(gconstpointer data)
{
    const MultiFDCompressOps *ops = method_ops(data);
    g_autoptr(GRand) rand = g_rand_new_with_seed(7);
    uint8_t *out = g_malloc(NPAGES * TARGET_PAGE_SIZE);
    void *cs = ops->send_setup(1, &error_abort);
    void *ds = ops->recv_setup(&error_abort);
    PageSet src, dst, rnd;
    ssize_t z;

    pageset_init(&src, NPAGES, rand, false);
    pageset_init(&dst, NPAGES, rand, true);
    pageset_init(&rnd, NPAGES, rand, true);

    /* Twice, to show the per-packet reset. */
    for (int round = 0; round < 2; round++) {
        z = ops->compress(cs, src.pages, NPAGES, out,
                          NPAGES * TARGET_PAGE_SIZE - 1, &error_abort);
        g_assert_cmpint(z, >, 0);
        g_assert_cmpint(z, <, NPAGES * TARGET_PAGE_SIZE / 4);
        memset(dst.mem, 0x5a, NPAGES * TARGET_PAGE_SIZE);
        g_assert_true(ops->decompress(ds, out, z, dst.pages, NPAGES,
                                      &error_abort));
        g_assert_cmpmem(src.mem, NPAGES * TARGET_PAGE_SIZE,
                        dst.mem, NPAGES * TARGET_PAGE_SIZE);
    }

    /* Random data does not shrink: 0 tells the caller to send it raw. */
    z = ops->compress(cs, rnd.pages, NPAGES, out,
                      NPAGES * TARGET_PAGE_SIZE - 1, &error_abort);
    g_assert_cmpint(z, ==, 0);

    /* Decoding into fewer pages than encoded is a bomb. */
    z = ops->compress(cs, src.pages, NPAGES, out,
                      NPAGES * TARGET_PAGE_SIZE - 1, &error_abort);
    CHECK_ERR(ops->decompress(ds, out, z, dst.pages, NPAGES - 1, &err_),
              "more than 7 pages");
    CHECK_ERR(ops->decompress(ds, out, z, dst.pages, 2, &err_),
              "more than 2 pages");
    /* More pages than encoded: the data ends early. */
    {
        PageSet big;
        ssize_t z2;

        pageset_init(&big, NPAGES, rand, false);
        z2 = ops->compress(cs, big.pages, 2, out,
                           NPAGES * TARGET_PAGE_SIZE - 1, &error_abort);
        CHECK_ERR(ops->decompress(ds, out, z2, dst.pages, 3, &err_),
                  "data ends in page 2 of 3");
        g_free(big.mem);
    }
    /* Truncated and corrupted input. */
    z = ops->compress(cs, src.pages, NPAGES, out,
                      NPAGES * TARGET_PAGE_SIZE - 1, &error_abort);
    CHECK_ERR(ops->decompress(ds, out, z / 2, dst.pages, NPAGES, &err_),
              "truncated");
    {
        Error *err = NULL;

        memset(out, 0xff, 16);
        g_assert_false(ops->decompress(ds, out, z, dst.pages, NPAGES, &err));
        g_assert_nonnull(err);
        error_free(err);
    }
    /* Trailing bytes after a complete stream. */
    z = ops->compress(cs, src.pages, NPAGES, out,
                      NPAGES * TARGET_PAGE_SIZE - 1, &error_abort);
    out[z] = 0;
    CHECK_ERR(ops->decompress(ds, out, z + 1, dst.pages, NPAGES, &err_),
              "1 bytes follow");

    ops->send_cleanup(cs);
    ops->recv_cleanup(ds);
    g_free(src.mem);
    g_free(dst.mem);
    g_free(rnd.mem);
    g_free(out);
}

/* A bomb made by a foreign encoder: 1 MiB of zeros claimed as 1 page. */
static void test_compress_foreign_bomb(void)
{
    size_t raw = 1 * MiB;
    uint8_t *zeros = g_malloc0(raw);
    uint8_t *page = g_malloc(TARGET_PAGE_SIZE);
    uint8_t *pages[1] = { page };
    uLongf zlen = compressBound(raw);
    uint8_t *z = g_malloc(MAX(zlen, ZSTD_compressBound(raw)));
    void *ds;
    size_t zs;

    g_assert_cmpint(compress2(z, &zlen, zeros, raw, 9), ==, Z_OK);
    ds = multifd_zlib_ops.recv_setup(&error_abort);
    CHECK_ERR(multifd_zlib_ops.decompress(ds, z, zlen, pages, 1, &err_),
              "more than 1 pages");
    multifd_zlib_ops.recv_cleanup(ds);

    zs = ZSTD_compress(z, ZSTD_compressBound(raw), zeros, raw, 19);
    g_assert_false(ZSTD_isError(zs));
    ds = multifd_zstd_ops.recv_setup(&error_abort);
    CHECK_ERR(multifd_zstd_ops.decompress(ds, z, zs, pages, 1, &err_),
              "more than 1 pages");
    multifd_zstd_ops.recv_cleanup(ds);
    g_free(zeros);
    g_free(page);
    g_free(z);
}

/* ---- Device state reassembly ---- */

static uint8_t *make_packet(uint32_t version, uint32_t idx, uint32_t flags,
                            size_t data_len, size_t *len)
{
    uint8_t *p = g_malloc(MULTIFD_DEVICE_STATE_HDR_LEN + data_len);

    multifd_put_be32(p, version);
    multifd_put_be32(p + 4, idx);
    multifd_put_be32(p + 8, flags);
    for (size_t i = 0; i < data_len; i++) {
        p[MULTIFD_DEVICE_STATE_HDR_LEN + i] = (uint8_t)(idx * 7 + i);
    }
    *len = MULTIFD_DEVICE_STATE_HDR_LEN + data_len;
    return p;
}

static bool insert(MultiFDStateQueue *q, uint32_t version, uint32_t idx,
                   uint32_t flags, size_t data_len, Error **errp)
{
    size_t len;
    g_autofree uint8_t *p = make_packet(version, idx, flags, data_len, &len);

    return multifd_state_queue_insert(q, p, len, errp);
}

static void test_queue_reorders(void)
{
    MultiFDStateQueue *q = multifd_state_queue_new("dev", 0, NULL);
    uint32_t order[] = { 3, 0, 4, 2, 1 };
    MultiFDStatePacket pkt;

    for (unsigned i = 0; i < ARRAY_SIZE(order); i++) {
        g_assert_true(insert(q, 0, order[i],
                             order[i] == 4 ? MULTIFD_DEVICE_STATE_CONFIG_STATE
                             : 0, 10 + order[i], &error_abort));
    }
    for (uint32_t idx = 0; idx <= 4; idx++) {
        g_assert_false(multifd_state_queue_complete(q));
        g_assert_true(multifd_state_queue_take_next(q, &pkt, &error_abort));
        g_assert_cmpuint(pkt.idx, ==, idx);
        g_assert_cmpuint(pkt.len, ==, 10 + idx);
        g_assert_cmpuint(pkt.data[1], ==, (uint8_t)(idx * 7 + 1));
        g_assert_cmpuint(pkt.flags, ==,
                         idx == 4 ? MULTIFD_DEVICE_STATE_CONFIG_STATE : 0);
        multifd_state_packet_free(&pkt);
    }
    g_assert_true(multifd_state_queue_complete(q));
    CHECK_ERR(multifd_state_queue_take_next(q, &pkt, &err_), "loaded already");
    multifd_state_queue_free(q);
}

/*
 * take_ready takes the next packet only if it is in, never waits, and
 * stops at a gap or once the config packet has been taken.
 */
static void test_queue_take_ready(void)
{
    MultiFDStateQueue *q = multifd_state_queue_new("dev", 0, NULL);
    MultiFDStatePacket pkt;

    g_assert_false(multifd_state_queue_take_ready(q, &pkt));
    g_assert_true(insert(q, 0, 1, 0, 8, &error_abort));
    g_assert_false(multifd_state_queue_take_ready(q, &pkt));  /* gap at 0 */
    g_assert_true(insert(q, 0, 0, 0, 8, &error_abort));
    g_assert_true(insert(q, 0, 3, MULTIFD_DEVICE_STATE_CONFIG_STATE, 4,
                         &error_abort));
    for (uint32_t idx = 0; idx <= 1; idx++) {
        g_assert_true(multifd_state_queue_take_ready(q, &pkt));
        g_assert_cmpuint(pkt.idx, ==, idx);
        multifd_state_packet_free(&pkt);
    }
    g_assert_false(multifd_state_queue_take_ready(q, &pkt));  /* gap at 2 */
    g_assert_true(insert(q, 0, 2, 0, 8, &error_abort));
    for (uint32_t idx = 2; idx <= 3; idx++) {
        g_assert_true(multifd_state_queue_take_ready(q, &pkt));
        g_assert_cmpuint(pkt.idx, ==, idx);
        multifd_state_packet_free(&pkt);
    }
    g_assert_true(multifd_state_queue_complete(q));
    g_assert_false(multifd_state_queue_take_ready(q, &pkt));
    multifd_state_queue_free(q);
}

/* Each bad packet fails the queue: a fresh one per case. */
static void check_queue_rejects(uint32_t version, uint32_t idx, uint32_t flags,
                                size_t data_len, const char *needle,
                                uint32_t setup_idx, uint32_t setup_flags,
                                bool take_first)
{
    MultiFDStateQueue *q = multifd_state_queue_new("dev0", 100, NULL);
    MultiFDStatePacket pkt;

    if (setup_idx != UINT32_MAX) {
        g_assert_true(insert(q, 0, setup_idx, setup_flags, 60, &error_abort));
    }
    if (take_first) {
        g_assert_true(multifd_state_queue_take_next(q, &pkt, &error_abort));
        multifd_state_packet_free(&pkt);
    }
    CHECK_ERR(insert(q, version, idx, flags, data_len, &err_), needle);
    /* The load thread learns about it, and later packets fail too. */
    CHECK_ERR(multifd_state_queue_take_next(q, &pkt, &err_), needle);
    CHECK_ERR(insert(q, 0, 50, 0, 1, &err_), needle);
    multifd_state_queue_free(q);
}

static void test_queue_rejects(void)
{
    const uint32_t none = UINT32_MAX, cfg = MULTIFD_DEVICE_STATE_CONFIG_STATE;

    check_queue_rejects(1, 0, 0, 4, "dev0: unsupported device state packet "
                        "version 1", none, 0, false);
    check_queue_rejects(0, UINT32_MAX, 0, 4, "invalid device state packet "
                        "index 4294967295", none, 0, false);
    check_queue_rejects(0, 1, 0x6, 4, "unknown flags 0x6", none, 0, false);
    check_queue_rejects(0, 3, 0, 4, "duplicate device state packet index 3",
                        3, 0, false);
    /* Already taken by the load thread. */
    check_queue_rejects(0, 0, 0, 4, "duplicate device state packet index 0",
                        0, 0, true);
    check_queue_rejects(0, 5, 0, 4, "packet 5 follows the config state "
                        "packet 2", 2, cfg, false);
    check_queue_rejects(0, 1, cfg, 4, "second config state packet 1", 2, cfg,
                        false);
    check_queue_rejects(0, 1, cfg, 4, "config state packet 1 is not the last",
                        2, 0, false);
    /* Cap of 100 bytes: 60 queued + 41 is too many, 40 fits. */
    check_queue_rejects(0, 1, 0, 41, "grow to 101 bytes with packet 1, above "
                        "the limit of 100", 0, 0, false);
    {
        MultiFDStateQueue *q = multifd_state_queue_new("dev0", 100, NULL);
        MultiFDStatePacket pkt;
        size_t len = 5;

        g_assert_true(insert(q, 0, 0, 0, 60, &error_abort));
        g_assert_true(insert(q, 0, 1, 0, 40, &error_abort));
        /* Taking frees room: the cap is on what waits, not the total. */
        g_assert_true(multifd_state_queue_take_next(q, &pkt, &error_abort));
        multifd_state_packet_free(&pkt);
        g_assert_true(insert(q, 0, 2, 0, 60, &error_abort));
        CHECK_ERR(multifd_state_queue_insert(q, (uint8_t *)"short", len,
                                             &err_),
                  "5 bytes is shorter than its 12-byte header");
        multifd_state_queue_free(q);
    }
}

typedef struct Taker {
    MultiFDStateQueue *q;
    Error *err;
    bool ok;
} Taker;

static gpointer taker_thread(gpointer opaque)
{
    Taker *t = opaque;
    MultiFDStatePacket pkt;

    t->ok = multifd_state_queue_take_next(t->q, &pkt, &t->err);
    if (t->ok) {
        multifd_state_packet_free(&pkt);
    }
    return NULL;
}

static void test_queue_wakeups(void)
{
    MigCancel *cancel = mig_cancel_new(&error_abort);
    Taker t = { .q = multifd_state_queue_new("dev", 0, cancel) };
    GThread *th;
    Error *err = NULL;

    /* A packet arriving wakes the waiting load thread. */
    th = g_thread_new("taker", taker_thread, &t);
    g_assert_true(insert(t.q, 0, 0, 0, 8, &error_abort));
    g_thread_join(th);
    g_assert_true(t.ok);

    /* So does an abort, with its message. */
    th = g_thread_new("taker", taker_thread, &t);
    error_setg(&err, "channel 3 failed");
    multifd_state_queue_abort(t.q, err);
    error_free(err);
    g_thread_join(th);
    g_assert_false(t.ok);
    assert_error_contains(t.err, "channel 3 failed");
    error_free(t.err);
    t.err = NULL;
    multifd_state_queue_free(t.q);

    /* And a cancel. */
    t.q = multifd_state_queue_new("dev", 0, cancel);
    th = g_thread_new("taker", taker_thread, &t);
    mig_cancel_fire(cancel);
    g_thread_join(th);
    g_assert_false(t.ok);
    assert_error_contains(t.err, "cancelled while waiting for device state "
                          "packet 0");
    error_free(t.err);
    multifd_state_queue_free(t.q);
    mig_cancel_free(cancel);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/multifd/wire/hello", test_hello_roundtrip);
    g_test_add_func("/multifd/wire/header-checks", test_header_checks);
    g_test_add_func("/multifd/wire/params", test_params);
    g_test_add_data_func("/multifd/compress/zlib",
                         GINT_TO_POINTER(MULTIFD_COMPRESSION_ZLIB),
                         test_compress_roundtrip);
    g_test_add_data_func("/multifd/compress/zstd",
                         GINT_TO_POINTER(MULTIFD_COMPRESSION_ZSTD),
                         test_compress_roundtrip);
    g_test_add_func("/multifd/compress/foreign-bomb",
                    test_compress_foreign_bomb);
    g_test_add_func("/multifd/state-queue/reorders", test_queue_reorders);
    g_test_add_func("/multifd/state-queue/take-ready", test_queue_take_ready);
    g_test_add_func("/multifd/state-queue/rejects", test_queue_rejects);
    g_test_add_func("/multifd/state-queue/wakeups", test_queue_wakeups);
    return g_test_run();
}
