/*
 * Multifd over real connections and threads: hellos, bad packets, RAM
 * transfers over 1, 2 and 4 channels with each compression method, the
 * sync barrier, device state across channels, and cancel.
 */
#include "qemu/osdep.h"
#include "qemu/buffer-is-zero.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <zlib.h>
#include <zstd.h>
#include "migration/multifd/multifd-internal.h"
#include "migration/qemu-file.h"

static const uint8_t test_uuid[16] = {
    0x6d, 0x69, 0x67, 0x72, 0x61, 0x74, 0x65, 0x21,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
};

static void assert_error_contains(Error *err, const char *needle)
{
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), needle)) {
        g_test_message("error '%s' lacks '%s'", error_get_pretty(err), needle);
        g_assert_not_reached();
    }
}

/* Poll @cond every 10 ms for up to 10 s (a bound, not a measurement). */
#define WAIT_FOR(cond)                                          \
    do {                                                        \
        for (int i_ = 0; i_ < 1000 && !(cond); i_++) {          \
            g_usleep(10 * 1000);                                \
        }                                                       \
        g_assert_true(cond);                                    \
    } while (0)

/* ---- RAM ---- */

/*
 * The destination's blocks are real RAM blocks; the source side of a
 * block is described by a RAMBlock that is not in the list (same name,
 * other memory), since both ends live in this process.
 */
typedef struct TestRam {
    RAMBlock *dst;
    RAMBlock src;
} TestRam;

static void test_ram_init(TestRam *r, const char *idstr, uint64_t gpa,
                          uint64_t pages, GRand *rand)
{
    uint64_t size = pages * TARGET_PAGE_SIZE;

    r->dst = ram_block_add(idstr, gpa, size, -1, 0, false, &error_abort);
    /* Fresh destination memory is zero, as multifd expects. */
    memset(&r->src, 0, sizeof(r->src));
    g_strlcpy(r->src.idstr, idstr, sizeof(r->src.idstr));
    r->src.size = size;
    r->src.pages = pages;
    r->src.host = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(r->src.host != MAP_FAILED);
    /* Random, compressible and zero pages, so every path is taken. */
    for (uint64_t p = 0; p < pages; p++) {
        uint8_t *page = r->src.host + p * TARGET_PAGE_SIZE;

        switch (p % 3) {
        case 0:
            for (unsigned j = 0; j < TARGET_PAGE_SIZE; j += 4) {
                uint32_t v = g_rand_int(rand);

                memcpy(page + j, &v, 4);
            }
            break;
        case 1:
            for (unsigned j = 0; j < TARGET_PAGE_SIZE; j++) {
                page[j] = (uint8_t)(p + j / 128);
            }
            break;
        default:
            break;
        }
    }
}

static void test_ram_cleanup(TestRam *r)
{
    munmap(r->src.host, r->src.size);
}

/* ---- Two ends over a UNIX socket ---- */

typedef struct Notified {
    int calls;                  /* atomic */
    char *first;
} Notified;

static void record_error(void *opaque, const Error *err)
{
    Notified *n = opaque;
    char *msg = g_strdup(error_get_pretty(err));
    char *none = NULL;

    /* The message first: a waiter on calls then finds it. */
    if (!__atomic_compare_exchange_n(&n->first, &none, msg, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        g_free(msg);
    }
    __atomic_fetch_add(&n->calls, 1, __ATOMIC_SEQ_CST);
}


typedef struct Ends {
    char *dir;
    MigrationAddress addr;
    MigListener *listener;
    MigCancel *src_cancel;
    MigCancel *dst_cancel;
    MultiFDParams params;
    GThread *acceptor;
    Error *accept_err;
    unsigned accepted;
    bool raw_accept;            /* accept and hold, never read */
    MigChannel *held[8];
} Ends;

static gpointer acceptor_thread(gpointer opaque)
{
    Ends *e = opaque;

    for (unsigned i = 0; i < e->params.channels; i++) {
        MigChannel *ch = mig_listener_accept(e->listener, e->dst_cancel,
                                             &e->accept_err);
        uint8_t prefix[MULTIFD_HELLO_PEEK_LEN];

        if (!ch) {
            return NULL;
        }
        if (e->raw_accept) {
            e->held[i] = ch;
            continue;
        }
        /* As the core's accept loop will: look, then hand over. */
        if (!multifd_read_full(ch, prefix, sizeof(prefix), &e->accept_err)) {
            mig_channel_close(ch);
            return NULL;
        }
        g_assert_true(multifd_is_channel_hello(prefix));
        if (!multifd_recv_new_channel(ch, prefix, sizeof(prefix),
                                      &e->accept_err)) {
            return NULL;
        }
        e->accepted++;
    }
    return NULL;
}

/* Both ends report their first error to @notify (may be NULL). */
/*
 * The receive side as a destination sets it up, with no loader: device
 * state goes to its consumers at once (the loader would open the gate
 * after its devices' load_setup).
 */
static void recv_setup(const uint8_t *uuid, const MultiFDParams *params,
                       MigCancel *cancel)
{
    g_assert_true(multifd_recv_setup(uuid, params, cancel, &error_abort));
    multifd_device_state_gate_open();
}

static void ends_start_notify(Ends *e, unsigned channels,
                              MultiFDCompression compression, bool raw_accept,
                              Notified *notify)
{
    g_autofree char *uri = NULL;

    memset(e, 0, sizeof(*e));
    e->dir = g_dir_make_tmp("multifd-XXXXXX", NULL);
    g_assert_nonnull(e->dir);
    uri = g_strdup_printf("unix:%s/sock", e->dir);
    g_assert_true(migration_address_parse(uri, &e->addr, &error_abort));
    e->listener = mig_listener_new(&e->addr, &error_abort);
    e->src_cancel = mig_cancel_new(&error_abort);
    e->dst_cancel = mig_cancel_new(&error_abort);
    multifd_params_init(&e->params);
    e->params.channels = channels;
    e->params.compression = compression;
    if (notify) {
        e->params.error_notify = record_error;
        e->params.error_opaque = notify;
    }
    e->raw_accept = raw_accept;
    if (!raw_accept) {
        recv_setup(test_uuid, &e->params, e->dst_cancel);
    }
    e->acceptor = g_thread_new("acceptor", acceptor_thread, e);
    g_assert_true(multifd_send_setup(&e->addr, test_uuid, &e->params,
                                     e->src_cancel, &error_abort));
    g_thread_join(e->acceptor);
    g_assert_null(e->accept_err);
    if (!raw_accept) {
        g_assert_true(multifd_recv_all_channels_connected());
    }
}

static void ends_start(Ends *e, unsigned channels,
                       MultiFDCompression compression, bool raw_accept)
{
    ends_start_notify(e, channels, compression, raw_accept, NULL);
}

static void ends_stop(Ends *e)
{
    multifd_send_shutdown();
    multifd_recv_shutdown();
    for (unsigned i = 0; i < ARRAY_SIZE(e->held); i++) {
        mig_channel_close(e->held[i]);
    }
    mig_listener_free(e->listener);
    migration_address_clear(&e->addr);
    mig_cancel_free(e->src_cancel);
    mig_cancel_free(e->dst_cancel);
    rmdir(e->dir);
    g_free(e->dir);
}

/* ---- Transfers ---- */

typedef struct Source {
    TestRam *rams;
    unsigned nr_rams;
    uint64_t *order;            /* (ram index << 32) | page */
    uint64_t nr_pages;
    unsigned rounds;
    /* Between rounds, rewrite the source pages (sync test). */
    void (*between_rounds)(struct Source *src, unsigned round);
    int rounds_allowed;         /* atomic: sync test, see fill_round_gated */
    Error *err;
} Source;

static gpointer source_thread(gpointer opaque)
{
    Source *src = opaque;

    for (unsigned round = 0; round < src->rounds; round++) {
        if (round && src->between_rounds) {
            src->between_rounds(src, round);
        }
        for (uint64_t i = 0; i < src->nr_pages; i++) {
            TestRam *r = &src->rams[src->order[i] >> 32];
            uint64_t page = (uint32_t)src->order[i];

            if (!multifd_queue_ram_page(&r->src, page * TARGET_PAGE_SIZE,
                                        &src->err)) {
                return NULL;
            }
        }
        if (!multifd_send_sync(&src->err)) {
            return NULL;
        }
    }
    return NULL;
}

/* Every page of every block, shuffled. */
static uint64_t *shuffled_pages(TestRam *rams, unsigned nr_rams,
                                uint64_t *count, GRand *rand)
{
    uint64_t n = 0, *order;

    for (unsigned i = 0; i < nr_rams; i++) {
        n += rams[i].src.pages;
    }
    order = g_new(uint64_t, n);
    n = 0;
    for (unsigned i = 0; i < nr_rams; i++) {
        for (uint64_t p = 0; p < rams[i].src.pages; p++) {
            order[n++] = (uint64_t)i << 32 | p;
        }
    }
    /* Shuffle runs of 16 pages: batches mix blocks and skip offsets. */
    for (uint64_t i = n / 16; i > 1; i--) {
        uint64_t j = g_rand_int_range(rand, 0, i);
        uint64_t tmp[16];

        memcpy(tmp, &order[(i - 1) * 16], sizeof(tmp));
        memcpy(&order[(i - 1) * 16], &order[j * 16], sizeof(tmp));
        memcpy(&order[j * 16], tmp, sizeof(tmp));
    }
    *count = n;
    return order;
}

typedef struct TransferCase {
    unsigned channels;
    MultiFDCompression compression;
} TransferCase;

static void test_transfer(gconstpointer data)
{
    const TransferCase *tc = data;
    g_autoptr(GRand) rand = g_rand_new_with_seed(tc->channels * 10 +
                                                 tc->compression);
    TestRam rams[2];
    Source src = { .rams = rams, .nr_rams = 2, .rounds = 1 };
    GThread *th;
    Ends e;

    test_ram_init(&rams[0], "ram-a", 0, 1024, rand);
    test_ram_init(&rams[1], "ram-b", 64 * MiB, 300, rand);
    src.order = shuffled_pages(rams, 2, &src.nr_pages, rand);

    ends_start(&e, tc->channels, tc->compression, false);
    th = g_thread_new("source", source_thread, &src);
    g_assert_true(multifd_recv_sync_main(&error_abort));
    g_thread_join(th);
    g_assert_null(src.err);

    for (unsigned i = 0; i < 2; i++) {
        g_assert_cmpmem(rams[i].src.host, rams[i].src.size,
                        rams[i].dst->host, rams[i].dst->size);
    }
    /* The source wrote what the destination read, headers included. */
    g_assert_cmpuint(multifd_bytes_transferred(), ==,
                     multifd_recv_bytes_received() +
                     MULTIFD_HELLO_LEN * tc->channels);
    /* Every third page is zero: counted, and sent without data. */
    g_assert_cmpuint(multifd_ram_zero_pages(), ==, 341 + 100);
    g_assert_cmpuint(multifd_ram_normal_pages(), ==, 1024 + 300 - 341 - 100);
    if (tc->compression == MULTIFD_COMPRESSION_NONE) {
        g_assert_cmpuint(multifd_bytes_transferred(), >,
                         multifd_ram_normal_pages() * TARGET_PAGE_SIZE);
        g_assert_cmpuint(multifd_bytes_transferred(), <,
                         (multifd_ram_normal_pages() + 20) * TARGET_PAGE_SIZE);
    } else {
        /* Half of the normal pages is random, the other half shrinks. */
        g_assert_cmpuint(multifd_bytes_transferred(), <,
                         multifd_ram_normal_pages() * TARGET_PAGE_SIZE * 2 / 3);
    }
    ends_stop(&e);
    for (unsigned i = 0; i < 2; i++) {
        test_ram_cleanup(&rams[i]);
    }
    g_free(src.order);
    ram_blocks_free();
}

/* Round r writes the byte 'A' + r into every source page. */
static void fill_round(Source *src, unsigned round)
{
    memset(src->rams[0].src.host, 'A' + round, src->rams[0].src.size);
}

/*
 * The same, once the test allows round @round.  Pages go into the socket
 * by reference: until the destination has read round 1, rewriting the
 * source would change what it reads (which is fine for guest RAM, whose
 * rewrites are logged and sent again, but not for a test of what lands
 * when).
 */
static void fill_round_gated(Source *src, unsigned round)
{
    WAIT_FOR(__atomic_load_n(&src->rounds_allowed, __ATOMIC_ACQUIRE) >
             (int)round);
    fill_round(src, round);
}

static bool dst_all(TestRam *r, uint8_t v)
{
    for (uint64_t i = 0; i < r->dst->size; i++) {
        if (__atomic_load_n(&r->dst->host[i], __ATOMIC_RELAXED) != v) {
            return false;
        }
    }
    return true;
}

static bool dst_any(TestRam *r, uint8_t v)
{
    for (uint64_t i = 0; i < r->dst->size; i++) {
        if (__atomic_load_n(&r->dst->host[i], __ATOMIC_RELAXED) == v) {
            return true;
        }
    }
    return false;
}

/*
 * Round 2 rewrites every page that round 1 sent, on whatever channel the
 * batches land.  Its pages must not land before the destination's first
 * sync, and after both syncs every page has round 2's content.
 */
static void test_sync_barrier(void)
{
    g_autoptr(GRand) rand = g_rand_new_with_seed(42);
    TestRam ram;
    Source src = { .rams = &ram, .nr_rams = 1, .rounds = 2,
                   .between_rounds = fill_round_gated, .rounds_allowed = 1 };
    GThread *th;
    Ends e;

    test_ram_init(&ram, "ram-sync", 0, 512, rand);
    fill_round(&src, 0);
    src.order = shuffled_pages(&ram, 1, &src.nr_pages, rand);
    ends_start(&e, 4, MULTIFD_COMPRESSION_NONE, false);
    th = g_thread_new("source", source_thread, &src);

    /* Round 1 arrives and the channels stop at their SYNC... */
    WAIT_FOR(dst_all(&ram, 'A'));
    __atomic_store_n(&src.rounds_allowed, 2, __ATOMIC_RELEASE);
    /* ...and stay there, though round 2 is on its way (or sent). */
    g_usleep(50 * 1000);
    g_assert_false(dst_any(&ram, 'B'));
    g_assert_true(multifd_recv_sync_main(&error_abort));
    g_assert_true(multifd_recv_sync_main(&error_abort));
    g_assert_true(dst_all(&ram, 'B'));
    g_thread_join(th);
    g_assert_null(src.err);

    ends_stop(&e);
    test_ram_cleanup(&ram);
    g_free(src.order);
    ram_blocks_free();
}

/* Run one round of @src from a thread against the destination's sync. */
static void run_round(Source *src)
{
    GThread *th = g_thread_new("source", source_thread, src);

    g_assert_true(multifd_recv_sync_main(&error_abort));
    g_thread_join(th);
    g_assert_null(src->err);
}

static void fill_pages(TestRam *r, uint64_t first, uint64_t count,
                       GRand *rand)
{
    for (uint64_t i = 0; i < count * TARGET_PAGE_SIZE; i += 4) {
        uint32_t v = g_rand_int(rand) | 1;

        memcpy(r->src.host + first * TARGET_PAGE_SIZE + i, &v, 4);
    }
}

/*
 * Zero pages travel as offsets.  On fresh memory they are not even read
 * (the pages are PROT_NONE: any access would crash); over a page that
 * multifd had filled, they are written.
 */
static void test_zero_pages(gconstpointer data)
{
    g_autoptr(GRand) rand = g_rand_new_with_seed(11);
    TestRam ram;
    Source src = { .rams = &ram, .nr_rams = 1, .rounds = 1 };
    uint8_t *dst;
    Ends e;

    test_ram_init(&ram, "ram-z", 0, 64, rand);
    memset(ram.src.host, 0, ram.src.size);
    fill_pages(&ram, 0, 32, rand);
    src.order = shuffled_pages(&ram, 1, &src.nr_pages, rand);
    dst = ram.dst->host;
    ends_start(&e, 4, GPOINTER_TO_INT(data), false);

    g_assert_cmpint(mprotect(dst + 32 * TARGET_PAGE_SIZE,
                             32 * TARGET_PAGE_SIZE, PROT_NONE), ==, 0);
    run_round(&src);
    g_assert_cmpint(mprotect(dst, ram.dst->size, PROT_READ | PROT_WRITE),
                    ==, 0);
    g_assert_cmpmem(ram.src.host, ram.src.size, dst, ram.dst->size);
    g_assert_cmpuint(multifd_ram_normal_pages(), ==, 32);
    g_assert_cmpuint(multifd_ram_zero_pages(), ==, 32);

    /* Pages 0-15 become zero, 32-47 get data, 48-63 stay zero. */
    memset(ram.src.host, 0, 16 * TARGET_PAGE_SIZE);
    fill_pages(&ram, 32, 16, rand);
    g_assert_cmpint(mprotect(dst + 48 * TARGET_PAGE_SIZE,
                             16 * TARGET_PAGE_SIZE, PROT_NONE), ==, 0);
    run_round(&src);
    g_assert_cmpint(mprotect(dst, ram.dst->size, PROT_READ | PROT_WRITE),
                    ==, 0);
    g_assert_cmpmem(ram.src.host, ram.src.size, dst, ram.dst->size);
    g_assert_cmpuint(multifd_ram_normal_pages(), ==, 64);
    g_assert_cmpuint(multifd_ram_zero_pages(), ==, 64);

    /*
     * The core writes pages 60 and 61 by other means, and says so only
     * for 60: a zero page for 60 is written, 61 is left alone.
     */
    memset(dst + 60 * TARGET_PAGE_SIZE, 0x77, 2 * TARGET_PAGE_SIZE);
    multifd_recv_note_page_written(ram.dst, 60 * TARGET_PAGE_SIZE);
    {
        uint64_t two[2] = { 60, 61 };
        Source again = { .rams = &ram, .nr_rams = 1, .rounds = 1,
                         .order = two, .nr_pages = 2 };

        run_round(&again);
    }
    g_assert_true(buffer_is_zero(dst + 60 * TARGET_PAGE_SIZE, TARGET_PAGE_SIZE));
    g_assert_cmpuint(dst[61 * TARGET_PAGE_SIZE + 100], ==, 0x77);
    g_assert_true(multifd_send_check(&error_abort));
    g_assert_true(multifd_recv_check(&error_abort));

    ends_stop(&e);
    test_ram_cleanup(&ram);
    g_free(src.order);
    ram_blocks_free();
}

/* ---- Device state across channels ---- */

#define DEV_PACKETS 48

static size_t dev_packet_len(uint32_t idx)
{
    return 1 + (idx * 7919) % (96 * KiB);
}

static uint8_t dev_byte(uint32_t idx, size_t i)
{
    return (uint8_t)(idx * 131 + i * 7 + (i >> 9));
}

typedef struct DevSender {
    const uint32_t *order;
    unsigned count;
    Error *err;
} DevSender;

static gpointer dev_sender_thread(gpointer opaque)
{
    DevSender *ds = opaque;

    for (unsigned i = 0; i < ds->count; i++) {
        uint32_t idx = ds->order[i];
        size_t len = dev_packet_len(idx);
        g_autofree uint8_t *data = g_malloc(len);

        for (size_t j = 0; j < len; j++) {
            data[j] = dev_byte(idx, j);
        }
        if (!multifd_queue_device_state("vfio-dev", 3, idx,
                                        idx == DEV_PACKETS - 1 ?
                                        MULTIFD_DEVICE_STATE_CONFIG_STATE : 0,
                                        data, len, &ds->err)) {
            return NULL;
        }
    }
    return NULL;
}

/* The queue takes the receive buffer: no copy. */
static bool dev_consumer_load(void *opaque, uint8_t **packet, size_t len,
                              Error **errp)
{
    return multifd_state_queue_take_buffer(opaque, packet, len, errp);
}

static void test_device_state(void)
{
    g_autoptr(GRand) rand = g_rand_new_with_seed(5);
    MultiFDStateQueue *q;
    uint32_t order[DEV_PACKETS];
    DevSender senders[2];
    GThread *th[2];
    Ends e;

    for (uint32_t i = 0; i < DEV_PACKETS; i++) {
        order[i] = i;
    }
    for (uint32_t i = DEV_PACKETS - 1; i > 0; i--) {
        uint32_t j = g_rand_int_range(rand, 0, i + 1), t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    ends_start(&e, 4, MULTIFD_COMPRESSION_ZSTD, false);
    q = multifd_state_queue_new("vfio-dev/3", 64 * MiB, e.dst_cancel);
    g_assert_true(multifd_device_state_consumer_add("vfio-dev", 3,
                                                    dev_consumer_load, q,
                                                    &error_abort));
    {
        Error *err = NULL;

        g_assert_false(multifd_device_state_consumer_add(
                           "vfio-dev", 3, dev_consumer_load, q, &err));
        assert_error_contains(err, "has a consumer already");
        error_free(err);
    }
    /* Two save threads at once, each with half of the packets, shuffled. */
    for (int i = 0; i < 2; i++) {
        senders[i] = (DevSender) {
            .order = order + i * DEV_PACKETS / 2, .count = DEV_PACKETS / 2,
        };
        th[i] = g_thread_new("dev-save", dev_sender_thread, &senders[i]);
    }
    for (uint32_t idx = 0; idx < DEV_PACKETS; idx++) {
        MultiFDStatePacket pkt;

        g_assert_true(multifd_state_queue_take_next(q, &pkt, &error_abort));
        g_assert_cmpuint(pkt.idx, ==, idx);
        g_assert_cmpuint(pkt.len, ==, dev_packet_len(idx));
        for (size_t j = 0; j < pkt.len; j++) {
            if (pkt.data[j] != dev_byte(idx, j)) {
                g_test_message("packet %u byte %zu differs", idx, j);
                g_assert_not_reached();
            }
        }
        multifd_state_packet_free(&pkt);
    }
    g_assert_true(multifd_state_queue_complete(q));
    for (int i = 0; i < 2; i++) {
        g_thread_join(th[i]);
        g_assert_null(senders[i].err);
    }
    g_assert_true(multifd_send_sync(&error_abort));
    g_assert_true(multifd_recv_sync_main(&error_abort));
    ends_stop(&e);
    multifd_device_state_consumer_del("vfio-dev", 3);
    multifd_state_queue_free(q);
}

/* A bad packet from the source fails the channel, and the load thread. */
static void test_device_state_rejected(void)
{
    MultiFDStateQueue *q;
    MultiFDStatePacket pkt;
    Notified n = { 0 };
    Error *err = NULL;
    Ends e;

    ends_start_notify(&e, 2, MULTIFD_COMPRESSION_NONE, false, &n);
    q = multifd_state_queue_new("dev", 0, e.dst_cancel);
    g_assert_true(multifd_device_state_consumer_add("dev", 0,
                                                    dev_consumer_load, q,
                                                    &error_abort));
    g_assert_true(multifd_queue_device_state("dev", 0, 1, 0, "a", 1,
                                             &error_abort));
    g_assert_true(multifd_queue_device_state("dev", 0, 1, 0, "b", 1,
                                             &error_abort));
    g_assert_false(multifd_recv_sync_main(&err));
    assert_error_contains(err, "device state of 'dev' instance 0: dev: "
                          "duplicate device state packet index 1");
    /* The core hears of it once (just after the error is stored). */
    WAIT_FOR(__atomic_load_n(&n.calls, __ATOMIC_SEQ_CST) == 1);
    g_assert_cmpstr(n.first, ==, error_get_pretty(err));
    error_free(err);
    err = NULL;
    /* A core that polls sees the same. */
    g_assert_false(multifd_recv_check(&err));
    assert_error_contains(err, "duplicate device state packet index 1");
    error_free(err);
    err = NULL;
    g_assert_false(multifd_state_queue_take_next(q, &pkt, &err));
    assert_error_contains(err, "duplicate device state packet index 1");
    error_free(err);
    err = NULL;
    /* No consumer for this one on the destination. */
    g_assert_false(multifd_queue_device_state("", 0, 0, 0, "x", 1, &err));
    assert_error_contains(err, "must be 1 to 255 characters");
    error_free(err);
    ends_stop(&e);
    /* Every thread is gone: still one call. */
    g_assert_cmpint(n.calls, ==, 1);
    g_free(n.first);
    multifd_device_state_consumer_del("dev", 0);
    multifd_state_queue_free(q);
}

/* ---- Hellos, written by hand on a socketpair ---- */

static MultiFDHello good_hello(uint32_t id)
{
    MultiFDHello h = {
        .magic = MULTIFD_HELLO_MAGIC, .version = MULTIFD_HELLO_VERSION,
        .channel_id = id, .channel_count = 2,
        .compression = MULTIFD_COMPRESSION_NONE, .page_size = 4096,
    };

    memcpy(h.uuid, test_uuid, 16);
    return h;
}

/* Hand @len bytes of @h to a new channel; returns its result. */
static bool offer_hello(const MultiFDHello *h, size_t len, int *peer,
                        Error **errp)
{
    uint8_t buf[MULTIFD_HELLO_LEN];
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    multifd_hello_encode(h, buf);
    g_assert_cmpint(write(sv[0], buf, len), ==, (ssize_t)len);
    if (!peer) {
        close(sv[0]);
    } else {
        *peer = sv[0];
    }
    return multifd_recv_new_channel(mig_channel_new_fd(sv[1], "pair", NULL),
                                    NULL, 0, errp);
}

#define CHECK_HELLO(h, len, needle)                                   \
    do {                                                              \
        Error *err_ = NULL;                                           \
        g_assert_false(offer_hello(&(h), len, NULL, &err_));          \
        assert_error_contains(err_, needle);                          \
        error_free(err_);                                             \
    } while (0)

static void test_hello_checks(void)
{
    MultiFDParams params;
    MultiFDHello h;
    int peer0, peer1;
    Error *err = NULL;
    uint8_t uuid[16];

    multifd_params_init(&params);
    h = good_hello(0);
    g_assert_false(offer_hello(&h, sizeof(h), NULL, &err));
    assert_error_contains(err, "multifd is not set up on this destination");
    error_free(err);

    /* NULL UUID: adopt the first channel's. */
    recv_setup(NULL, &params, NULL);
    g_assert_false(multifd_recv_uuid(uuid));
    g_assert_true(offer_hello(&h, MULTIFD_HELLO_LEN, &peer0, &error_abort));
    g_assert_true(multifd_recv_uuid(uuid));
    g_assert_cmpmem(uuid, 16, test_uuid, 16);
    g_assert_false(multifd_recv_all_channels_connected());

    CHECK_HELLO(h, MULTIFD_HELLO_LEN, "channel 0 connected twice");
    h = good_hello(2);
    CHECK_HELLO(h, MULTIFD_HELLO_LEN, "channel id 2 is out of range (0 to 1)");
    h = good_hello(1);
    h.magic = 0x564d4947;
    CHECK_HELLO(h, MULTIFD_HELLO_LEN, "bad magic 0x564d4947");
    h = good_hello(1);
    h.version = 9;
    CHECK_HELLO(h, MULTIFD_HELLO_LEN, "unsupported version 9");
    h = good_hello(1);
    h.uuid[15] ^= 1;
    CHECK_HELLO(h, MULTIFD_HELLO_LEN, "channel 1 belongs to migration "
                "6d696772-6174-6521-0102-030405060709");
    h = good_hello(1);
    h.channel_count = 3;
    CHECK_HELLO(h, MULTIFD_HELLO_LEN, "source uses 3 channels, this "
                "destination expects 2");
    h = good_hello(1);
    h.compression = MULTIFD_COMPRESSION_ZLIB;
    CHECK_HELLO(h, MULTIFD_HELLO_LEN, "compression zlib, this destination "
                "expects none");
    h = good_hello(1);
    h.page_size = 65536;
    CHECK_HELLO(h, MULTIFD_HELLO_LEN, "page size 65536");
    h = good_hello(1);
    CHECK_HELLO(h, 20, "multifd hello: pair: stream truncated");

    /* Still room for channel 1, and then everything is connected. */
    g_assert_true(offer_hello(&h, MULTIFD_HELLO_LEN, &peer1, &error_abort));
    g_assert_true(multifd_recv_all_channels_connected());
    close(peer0);
    close(peer1);
    multifd_recv_shutdown();
}

/* ---- Bad packets, written by hand after a good hello ---- */

typedef struct PacketBuilder {
    GByteArray *bytes;
    uint64_t packet_num;
} PacketBuilder;

static void pb_header(PacketBuilder *pb, uint32_t flags, uint32_t kind,
                      uint32_t payload_size)
{
    MultiFDPacketHeader h = {
        .magic = MULTIFD_PACKET_MAGIC, .version = MULTIFD_PACKET_VERSION,
        .flags = flags, .kind = kind, .payload_size = payload_size,
        .packet_num = pb->packet_num++,
    };
    uint8_t buf[MULTIFD_PACKET_HDR_LEN];

    multifd_packet_header_encode(&h, buf);
    g_byte_array_append(pb->bytes, buf, sizeof(buf));
}

static void pb_be32(PacketBuilder *pb, uint32_t v)
{
    uint8_t b[4];

    multifd_put_be32(b, v);
    g_byte_array_append(pb->bytes, b, 4);
}

static void pb_be64(PacketBuilder *pb, uint64_t v)
{
    uint8_t b[8];

    multifd_put_be64(b, v);
    g_byte_array_append(pb->bytes, b, 8);
}

/*
 * A RAM packet: @normal + @zero @offsets of block @idstr, and @data_size
 * bytes of data (@data, or a pattern); @payload_adjust is added to the
 * honest size.
 */
static void pb_ram_full(PacketBuilder *pb, const char *idstr, uint32_t normal,
                        uint32_t zero, const uint64_t *offsets,
                        uint32_t ram_flags, const uint8_t *data,
                        uint32_t data_size, int payload_adjust)
{
    uint8_t idlen = strlen(idstr);

    pb_header(pb, 0, MULTIFD_PAYLOAD_RAM, MULTIFD_RAM_FIXED_LEN + idlen +
              8 * (normal + zero) + data_size + payload_adjust);
    pb_be32(pb, normal);
    pb_be32(pb, zero);
    pb_be32(pb, data_size);
    pb_be32(pb, ram_flags);
    g_byte_array_append(pb->bytes, &idlen, 1);
    g_byte_array_append(pb->bytes, (const uint8_t *)idstr, idlen);
    /* Absurd counts are rejected before the offsets are read. */
    for (uint64_t i = 0; i < MIN((uint64_t)normal + zero,
                                 MULTIFD_PAGES_PER_PACKET + 1); i++) {
        pb_be64(pb, offsets[i]);
    }
    for (uint32_t i = 0; i < data_size; i++) {
        uint8_t b = data ? data[i] : (uint8_t)(i * 13);

        g_byte_array_append(pb->bytes, &b, 1);
    }
}

static void pb_ram(PacketBuilder *pb, const char *idstr, uint32_t num,
                   const uint64_t *offsets, uint32_t ram_flags,
                   const uint8_t *data, uint32_t data_size,
                   int payload_adjust)
{
    pb_ram_full(pb, idstr, num, 0, offsets, ram_flags, data, data_size,
                payload_adjust);
}

/*
 * Feed @pb's bytes to a one-channel destination (then end the stream)
 * and return what the next sync says.
 */
static bool run_packets(PacketBuilder *pb, MultiFDCompression compression,
                        Error **errp)
{
    MultiFDParams params;
    MultiFDHello h = good_hello(0);
    uint8_t buf[MULTIFD_HELLO_LEN];
    int sv[2];
    bool ok;

    multifd_params_init(&params);
    params.channels = 1;
    params.compression = compression;
    h.channel_count = 1;
    h.compression = compression;
    recv_setup(test_uuid, &params, NULL);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    multifd_hello_encode(&h, buf);
    g_assert_cmpint(write(sv[0], buf, sizeof(buf)), ==, sizeof(buf));
    g_assert_true(multifd_recv_new_channel(
                      mig_channel_new_fd(sv[1], "pair", NULL), NULL, 0,
                      &error_abort));
    /* Every case fits in the socket's buffer. */
    {
        size_t off = 0;

        while (off < pb->bytes->len) {
            ssize_t n = write(sv[0], pb->bytes->data + off,
                              pb->bytes->len - off);

            g_assert_cmpint(n, >, 0);
            off += n;
        }
    }
    close(sv[0]);
    ok = multifd_recv_sync_main(errp);
    multifd_recv_shutdown();
    g_byte_array_set_size(pb->bytes, 0);
    pb->packet_num = 0;
    return ok;
}

#define CHECK_PACKETS(pb, comp, needle)                         \
    do {                                                        \
        Error *err_ = NULL;                                     \
        g_assert_false(run_packets(pb, comp, &err_));           \
        assert_error_contains(err_, needle);                    \
        error_free(err_);                                       \
    } while (0)

static void test_packet_checks(void)
{
    PacketBuilder pbs = { .bytes = g_byte_array_new() }, *pb = &pbs;
    const MultiFDCompression none = MULTIFD_COMPRESSION_NONE;
    RAMBlock *rb = ram_block_add("ram-pk", 0, 16 * TARGET_PAGE_SIZE, -1, 0,
                                 false, &error_abort);
    uint64_t offsets[2] = { 3 * TARGET_PAGE_SIZE, 15 * TARGET_PAGE_SIZE };
    uint8_t *page = g_malloc(2 * TARGET_PAGE_SIZE);

    /* The control: two good pages and a SYNC load fine. */
    pb_ram(pb, "ram-pk", 2, offsets, 0, NULL, 2 * TARGET_PAGE_SIZE, 0);
    pb_header(pb, MULTIFD_FLAG_SYNC, MULTIFD_PAYLOAD_NONE, 0);
    g_assert_true(run_packets(pb, none, &error_abort));
    g_assert_cmpuint(rb->host[15 * TARGET_PAGE_SIZE + 1], ==, 13);
    g_assert_cmpuint(rb->host[3 * TARGET_PAGE_SIZE + 2], ==, 26);

    /* No SYNC before the end. */
    pb_ram(pb, "ram-pk", 1, offsets, 0, NULL, TARGET_PAGE_SIZE, 0);
    CHECK_PACKETS(pb, none, "multifd channel 0: ended before sync 1");
    /* Truncated header, truncated data. */
    pb_header(pb, 0, MULTIFD_PAYLOAD_RAM, 100);
    g_byte_array_set_size(pb->bytes, 10);
    CHECK_PACKETS(pb, none, "multifd channel 0: pair: stream truncated");
    pb_ram(pb, "ram-pk", 1, offsets, 0, NULL, TARGET_PAGE_SIZE, 0);
    g_byte_array_set_size(pb->bytes, pb->bytes->len - 1);
    CHECK_PACKETS(pb, none, "stream truncated");
    /* Header fields. */
    pb_header(pb, 0, MULTIFD_PAYLOAD_RAM, 100);
    pb->bytes->data[0] = 'X';
    CHECK_PACKETS(pb, none, "multifd channel 0: bad packet magic 0x58464450");
    pb_header(pb, 0, 7, 0);
    CHECK_PACKETS(pb, none, "unknown payload kind 7");
    pb_header(pb, 0, MULTIFD_PAYLOAD_RAM, UINT32_MAX);
    CHECK_PACKETS(pb, none, "payload of 4294967295 bytes exceeds the limit");
    pb_ram(pb, "ram-pk", 1, offsets, 0, NULL, TARGET_PAGE_SIZE, 0);
    pb->packet_num = 0;
    pb_ram(pb, "ram-pk", 1, offsets, 0, NULL, TARGET_PAGE_SIZE, 0);
    CHECK_PACKETS(pb, none, "packet number 0 does not follow 0");

    /* RAM payloads. */
    pb_ram(pb, "ram-pk", 0, offsets, 0, NULL, 0, 0);
    CHECK_PACKETS(pb, none, "RAM packet has 0 + 0 zero pages");
    {
        uint64_t many[MULTIFD_PAGES_PER_PACKET + 1] = { 0 };

        pb_ram_full(pb, "ram-pk", 1, MULTIFD_PAGES_PER_PACKET, many, 0, NULL,
                    TARGET_PAGE_SIZE, 0);
        CHECK_PACKETS(pb, none, "has 1 + 128 zero pages (expected 1 to 128");
        pb_ram_full(pb, "ram-pk", 0, UINT32_MAX, many, 0, NULL, 0, 100);
        CHECK_PACKETS(pb, none, "has 0 + 4294967295 zero pages");
        pb_ram_full(pb, "ram-pk", 0, 1, many, 0, NULL, 5, 0);
        CHECK_PACKETS(pb, none, "RAM packet of zero pages carries 5 data "
                      "bytes");
        many[1] = 17;
        pb_ram_full(pb, "ram-pk", 0, 2, many, 0, NULL, 0, 0);
        CHECK_PACKETS(pb, none, "page offset 0x11 is not page aligned");
    }
    {
        uint64_t off = 3 * TARGET_PAGE_SIZE + 8;

        pb_ram(pb, "ram-pk", 1, &off, 0, NULL, TARGET_PAGE_SIZE, 0);
        CHECK_PACKETS(pb, none, "RAM block 'ram-pk': page offset 0x3008 is "
                      "not page aligned");
        off = 16 * TARGET_PAGE_SIZE;
        pb_ram(pb, "ram-pk", 1, &off, 0, NULL, TARGET_PAGE_SIZE, 0);
        CHECK_PACKETS(pb, none, "page offset 0x10000 is beyond its size "
                      "0x10000");
        off = UINT64_MAX & TARGET_PAGE_MASK;
        pb_ram(pb, "ram-pk", 1, &off, 0, NULL, TARGET_PAGE_SIZE, 0);
        CHECK_PACKETS(pb, none, "is beyond its size");
    }
    pb_ram(pb, "ram-nope", 1, offsets, 0, NULL, TARGET_PAGE_SIZE, 0);
    CHECK_PACKETS(pb, none, "unknown RAM block 'ram-nope'");
    pb_ram(pb, "ramxpk", 1, offsets, 0, NULL, TARGET_PAGE_SIZE, 0);
    pb->bytes->data[MULTIFD_PACKET_HDR_LEN + MULTIFD_RAM_FIXED_LEN + 3] = 0;
    CHECK_PACKETS(pb, none, "RAM packet block name contains a NUL byte");
    pb_ram(pb, "ram-pk", 1, offsets, 0, NULL, TARGET_PAGE_SIZE - 1, 0);
    CHECK_PACKETS(pb, none, "carries 4095 data bytes for 1 pages");
    pb_ram(pb, "ram-pk", 1, offsets, 0, NULL, TARGET_PAGE_SIZE, 1);
    CHECK_PACKETS(pb, none, "does not match 1 pages with 4096 data bytes");
    pb_ram(pb, "ram-pk", 1, offsets, 0x10, NULL, TARGET_PAGE_SIZE, 0);
    CHECK_PACKETS(pb, none, "RAM packet has unknown flags 0x10");
    pb_ram(pb, "ram-pk", 1, offsets, MULTIFD_RAM_COMPRESSED, NULL, 100, 0);
    CHECK_PACKETS(pb, none, "compressed, but multifd-compression is none");
    pb_ram(pb, "ram-pk", 1, offsets, MULTIFD_RAM_COMPRESSED, NULL,
           TARGET_PAGE_SIZE, 0);
    CHECK_PACKETS(pb, MULTIFD_COMPRESSION_ZLIB, "compressed size 4096 is out "
                  "of range (1 to 4095)");

    /* Bombs: two pages of data, announced as one. */
    memset(page, 0, 2 * TARGET_PAGE_SIZE);
    {
        uLongf zlen = compressBound(2 * TARGET_PAGE_SIZE);
        uint8_t *z = g_malloc(MAX(zlen, ZSTD_compressBound(2 * 4096)));
        size_t zs;

        g_assert_cmpint(compress2(z, &zlen, page, 2 * TARGET_PAGE_SIZE, 6),
                        ==, Z_OK);
        pb_ram(pb, "ram-pk", 1, offsets, MULTIFD_RAM_COMPRESSED, z, zlen, 0);
        CHECK_PACKETS(pb, MULTIFD_COMPRESSION_ZLIB, "RAM block 'ram-pk': "
                      "zlib: data decompresses to more than 1 pages");
        zs = ZSTD_compress(z, ZSTD_compressBound(2 * 4096), page,
                           2 * TARGET_PAGE_SIZE, 3);
        pb_ram(pb, "ram-pk", 1, offsets, MULTIFD_RAM_COMPRESSED, z, zs, 0);
        CHECK_PACKETS(pb, MULTIFD_COMPRESSION_ZSTD, "zstd: data decompresses "
                      "to more than 1 pages");
        g_free(z);
    }

    /* Device state payloads. */
    pb_header(pb, 0, MULTIFD_PAYLOAD_DEVICE_STATE, 3);
    pb_be32(pb, 0);
    CHECK_PACKETS(pb, none, "shorter than its fixed part");
    pb_header(pb, 0, MULTIFD_PAYLOAD_DEVICE_STATE, 5 + 3 + 11);
    pb_be32(pb, 0);
    g_byte_array_append(pb->bytes, (const uint8_t *)"\3devxxxxxxxxxxx", 15);
    CHECK_PACKETS(pb, none, "too short for a 3-byte id");
    pb_header(pb, 0, MULTIFD_PAYLOAD_DEVICE_STATE, 5 + 3 + 12);
    pb_be32(pb, 9);
    g_byte_array_append(pb->bytes, (const uint8_t *)"\3dev", 4);
    pb_be32(pb, 0);
    pb_be32(pb, 0);
    pb_be32(pb, 0);
    CHECK_PACKETS(pb, none, "device state packet for 'dev' instance 9, which "
                  "has no consumer");

    g_free(page);
    g_byte_array_free(pb->bytes, true);
    ram_blocks_free();
}

/* ---- Cancel ---- */

typedef struct Producer {
    RAMBlock *rb;
    Error *err;
    uint64_t queued;            /* atomic */
    bool done;                  /* atomic */
} Producer;

static gpointer producer_thread(gpointer opaque)
{
    Producer *p = opaque;

    /* 1 GiB into a peer that never reads: this must block. */
    for (uint64_t i = 0; i < 1 * GiB / TARGET_PAGE_SIZE && !p->err; i++) {
        multifd_queue_ram_page(p->rb, (i % p->rb->pages) * TARGET_PAGE_SIZE,
                               &p->err);
        __atomic_store_n(&p->queued, i + 1, __ATOMIC_SEQ_CST);
    }
    __atomic_store_n(&p->done, true, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_cancel_blocked_send(void)
{
    RAMBlock rb = { .idstr = "ram-c", .size = 4 * MiB,
                    .pages = 4 * MiB / TARGET_PAGE_SIZE };
    Producer p = { .rb = &rb };
    uint64_t before;
    GThread *th;
    Ends e;

    rb.host = g_malloc(rb.size);
    memset(rb.host, 0x5a, rb.size);     /* data, not zero pages */
    ends_start(&e, 2, MULTIFD_COMPRESSION_NONE, true);
    th = g_thread_new("producer", producer_thread, &p);
    /*
     * Wait (bounded) until the producer stops making progress: every
     * channel is stuck in a write and the producer waits for one.
     */
    for (int i = 0; i < 500; i++) {
        before = __atomic_load_n(&p.queued, __ATOMIC_SEQ_CST);
        g_usleep(20 * 1000);
        /* At least two channels with a batch each and a third one full. */
        if (before >= 3 * MULTIFD_PAGES_PER_PACKET &&
            __atomic_load_n(&p.queued, __ATOMIC_SEQ_CST) == before) {
            break;
        }
    }
    g_assert_cmpuint(p.queued, >=, 3 * MULTIFD_PAGES_PER_PACKET);
    g_assert_false(__atomic_load_n(&p.done, __ATOMIC_SEQ_CST));

    mig_cancel_fire(e.src_cancel);
    g_thread_join(th);
    g_assert_true(p.done);
    assert_error_contains(p.err, "cancelled");
    error_free(p.err);
    p.err = NULL;
    /* Later calls fail with the channel's error, and sync does too. */
    g_assert_false(multifd_send_sync(&p.err));
    assert_error_contains(p.err, "cancelled");
    error_free(p.err);
    ends_stop(&e);
    g_free(rb.host);
}

/* ---- pages by reference (mig_channel_writev_ref) ---- */

typedef struct RefWriter {
    MigChannel *ch;
    uint8_t *pages;
    size_t len;
    bool ok;
    Error *err;
} RefWriter;

static gpointer ref_writer_thread(gpointer opaque)
{
    RefWriter *w = opaque;
    char hdr1[] = "header", hdr2[] = "middle";
    /* Two copied entries, then pages; one copied entry, then pages. */
    struct iovec iov[] = {
        { hdr1, sizeof(hdr1) }, { hdr2, sizeof(hdr2) },
        { w->pages, w->len / 2 },
        { hdr1, sizeof(hdr1) },
        { w->pages + w->len / 2, w->len / 2 },
    };

    w->ok = mig_channel_writev_ref(w->ch, iov, 3, 2, &w->err) &&
            mig_channel_writev_ref(w->ch, iov + 3, 2, 1, &w->err);
    return NULL;
}

static void read_exactly(int fd, uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = read(fd, buf, len);

        g_assert_cmpint(n, >, 0);
        buf += n;
        len -= n;
    }
}

/*
 * Page data handed over by reference arrives intact, in order with the
 * copied headers, over a socket (vmsplice + splice, more than a pipe's
 * worth) and over a pipe (copies); then the wait for the peer's close.
 */
static void test_writev_ref(gconstpointer data)
{
    bool socket = GPOINTER_TO_INT(data);
    size_t len = 3 * MiB + 2 * TARGET_PAGE_SIZE;
    size_t total = 3 * sizeof("header") + len;
    uint8_t *pages = mmap(NULL, len, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_autofree uint8_t *got = g_malloc(total);
    RefWriter w = { .pages = pages, .len = len };
    MigCancel *cancel = mig_cancel_new(&error_abort);
    Error *err = NULL;
    GThread *th;
    int sv[2], rd, wr;

    g_assert_true(pages != MAP_FAILED);
    for (size_t i = 0; i < len; i++) {
        pages[i] = i * 7 + (i >> 12);
    }
    g_assert_cmpint(socket ? socketpair(AF_UNIX, SOCK_STREAM, 0, sv)
                           : pipe(sv), ==, 0);
    rd = sv[socket];
    wr = sv[!socket];
    w.ch = mig_channel_new_fd(wr, "ref", cancel);
    th = g_thread_new("ref-writer", ref_writer_thread, &w);
    read_exactly(rd, got, total);
    g_thread_join(th);
    g_assert_true(w.ok);
    g_assert_cmpmem(got, 7, "header", 7);
    g_assert_cmpmem(got + 7, 7, "middle", 7);
    g_assert_cmpmem(got + 14, len / 2, pages, len / 2);
    g_assert_cmpmem(got + 14 + len / 2, 7, "header", 7);
    g_assert_cmpmem(got + 21 + len / 2, len / 2, pages + len / 2, len / 2);
    g_assert_true(w.ch->sent_by_ref == socket);

    if (socket) {
        /* The peer still holds the connection: only a cancel ends it. */
        mig_cancel_fire(cancel);
        g_assert_false(mig_channel_wait_peer_close(w.ch, &err));
        assert_error_contains(err, "cancelled");
        error_free(err);
        mig_channel_set_cancel(w.ch, NULL);
        close(rd);
        g_assert_true(mig_channel_wait_peer_close(w.ch, &error_abort));
    } else {
        close(rd);
        /* Nothing went by reference: no wait at all. */
        g_assert_true(mig_channel_wait_peer_close(w.ch, &error_abort));
    }
    mig_channel_close(w.ch);
    mig_cancel_free(cancel);
    munmap(pages, len);
}

typedef struct Drain {
    int fd;
    GByteArray *got;
} Drain;

static gpointer drain_thread(gpointer opaque)
{
    Drain *d = opaque;
    uint8_t buf[64 * 1024];
    ssize_t n;

    while ((n = read(d->fd, buf, sizeof(buf))) > 0) {
        g_byte_array_append(d->got, buf, n);
    }
    return NULL;
}

/*
 * qemu_put_buffer_borrowed(): the data goes out at the flush, without a
 * copy into the file's buffer and not by reference, so the caller may
 * scribble over it right after the flush.
 */
static void test_qemu_file_borrowed(void)
{
    size_t len = 1 * MiB + 3;
    g_autofree uint8_t *data = g_malloc(len);
    g_autofree uint8_t *orig = NULL;
    Drain d = { .got = g_byte_array_new() };
    QEMUFile *f;
    GThread *th;
    int sv[2];

    for (size_t i = 0; i < len; i++) {
        data[i] = i * 13 + (i >> 10);
    }
    orig = g_memdup2(data, len);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    d.fd = sv[1];
    th = g_thread_new("drain", drain_thread, &d);
    f = qemu_file_new_output(mig_channel_new_fd(sv[0], "borrowed", NULL));
    qemu_put_be64(f, 0x1122334455667788ULL);
    qemu_put_buffer_borrowed(f, data, len);
    qemu_put_be32(f, 0xabcdef01);
    g_assert_cmpint(qemu_fflush(f), ==, 0);
    memset(data, 0xee, len);
    qemu_put_be32(f, 0x02030405);
    g_assert_false(qemu_file_channel(f)->sent_by_ref);
    g_assert_cmpint(qemu_fclose(f), ==, 0);
    g_thread_join(th);
    close(sv[1]);

    g_assert_cmpuint(d.got->len, ==, 8 + len + 4 + 4);
    g_assert_cmphex(multifd_get_be64(d.got->data), ==, 0x1122334455667788ULL);
    g_assert_cmpmem(d.got->data + 8, len, orig, len);
    g_assert_cmphex(multifd_get_be32(d.got->data + 8 + len), ==, 0xabcdef01);
    g_assert_cmphex(multifd_get_be32(d.got->data + 12 + len), ==, 0x02030405);
    g_byte_array_unref(d.got);
}

/* The destination goes away: the channel's error reaches the core once. */
static void test_peer_gone(void)
{
    RAMBlock rb = { .idstr = "ram-g", .size = 1 * MiB,
                    .pages = 1 * MiB / TARGET_PAGE_SIZE };
    Notified n = { 0 };
    Error *err = NULL;
    bool ok = true;
    Ends e;

    rb.host = g_malloc(rb.size);
    memset(rb.host, 0x5a, rb.size);
    ends_start_notify(&e, 2, MULTIFD_COMPRESSION_NONE, true, &n);
    for (unsigned i = 0; i < 2; i++) {
        mig_channel_close(e.held[i]);
        e.held[i] = NULL;
    }
    for (int round = 0; round < 1000 && ok; round++) {
        for (uint64_t off = 0; off < rb.size && ok; off += TARGET_PAGE_SIZE) {
            ok = multifd_queue_ram_page(&rb, off, &err);
        }
        ok = ok && multifd_send_sync(&err);
    }
    g_assert_false(ok);
    assert_error_contains(err, "multifd channel ");
    WAIT_FOR(__atomic_load_n(&n.calls, __ATOMIC_SEQ_CST) == 1);
    g_assert_cmpstr(n.first, ==, error_get_pretty(err));
    error_free(err);
    err = NULL;
    g_assert_false(multifd_send_check(&err));
    g_assert_cmpstr(n.first, ==, error_get_pretty(err));
    error_free(err);
    ends_stop(&e);
    g_assert_cmpint(n.calls, ==, 1);
    g_free(n.first);
    g_free(rb.host);
}

/*
 * Device state save threads block in multifd_queue_device_state() until
 * their packet is out, and the channel writes their buffer in place: a
 * peer that vanishes, or never reads and is then cancelled, must release
 * every one of them with an error, and no channel may touch a buffer
 * after its call returned (each one is freed at once: ASan watches).
 */
typedef struct DevSaver {
    unsigned id;
    Error *err;
    uint32_t sent;
} DevSaver;

static gpointer dev_saver_thread(gpointer opaque)
{
    DevSaver *d = opaque;
    g_autofree char *idstr = g_strdup_printf("saver-%u", d->id);

    /* 1 GiB at most: more than any socket buffer holds. */
    for (uint32_t idx = 0; idx < 4096; idx++) {
        size_t len = 256 * KiB;
        uint8_t *data = g_malloc(len);
        bool ok;

        memset(data, d->id + 1, len);
        ok = multifd_queue_device_state(idstr, 0, idx, 0, data, len, &d->err);
        g_free(data);
        if (!ok) {
            break;
        }
        __atomic_store_n(&d->sent, idx + 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void test_device_state_send_fails(gconstpointer data)
{
    bool cancel = GPOINTER_TO_INT(data);
    DevSaver savers[3];
    GThread *th[3];
    Ends e;

    ends_start(&e, 2, MULTIFD_COMPRESSION_NONE, true);
    if (!cancel) {
        for (unsigned i = 0; i < 2; i++) {
            mig_channel_close(e.held[i]);
            e.held[i] = NULL;
        }
    }
    /* More savers than channels: one always waits for a free channel. */
    for (unsigned i = 0; i < 3; i++) {
        savers[i] = (DevSaver) { .id = i };
        th[i] = g_thread_new("saver", dev_saver_thread, &savers[i]);
    }
    if (cancel) {
        /* Until the socket buffers are full and the savers stuck. */
        uint32_t before = UINT32_MAX;

        for (int round = 0; round < 100; round++) {
            uint32_t now = 0;

            g_usleep(50 * 1000);
            for (unsigned i = 0; i < 3; i++) {
                now += __atomic_load_n(&savers[i].sent, __ATOMIC_SEQ_CST);
            }
            if (now == before) {
                break;
            }
            before = now;
        }
        mig_cancel_fire(e.src_cancel);
    }
    for (unsigned i = 0; i < 3; i++) {
        g_thread_join(th[i]);
        assert_error_contains(savers[i].err,
                              cancel ? "cancelled" : "multifd channel ");
        error_free(savers[i].err);
    }
    ends_stop(&e);
}

typedef struct SyncWaiter {
    Error *err;
    bool ok;
} SyncWaiter;

static gpointer sync_waiter_thread(gpointer opaque)
{
    SyncWaiter *w = opaque;

    w->ok = multifd_recv_sync_main(&w->err);
    return NULL;
}

static void test_cancel_blocked_recv(gconstpointer data)
{
    bool use_cancel = GPOINTER_TO_INT(data);
    MigCancel *cancel = mig_cancel_new(&error_abort);
    MultiFDParams params;
    MultiFDHello h = good_hello(0);
    uint8_t buf[MULTIFD_HELLO_LEN];
    SyncWaiter w = { 0 };
    GThread *th;
    int sv[2];

    multifd_params_init(&params);
    recv_setup(test_uuid, &params, cancel);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    multifd_hello_encode(&h, buf);
    g_assert_cmpint(write(sv[0], buf, sizeof(buf)), ==, sizeof(buf));
    /* Half a header: the receive thread blocks inside a packet. */
    g_assert_cmpint(write(sv[0], "MFDP", 4), ==, 4);
    g_assert_true(multifd_recv_new_channel(
                      mig_channel_new_fd(sv[1], "pair", cancel), NULL, 0,
                      &error_abort));
    /* Channel 1 never connects: the sync waits for it as well. */
    th = g_thread_new("sync", sync_waiter_thread, &w);
    if (use_cancel) {
        mig_cancel_fire(cancel);
        g_thread_join(th);
        g_assert_false(w.ok);
        assert_error_contains(w.err, "cancelled");
        error_free(w.err);
        multifd_recv_shutdown();
    } else {
        /* The peer closing inside a packet fails the channel and the sync. */
        close(sv[0]);
        g_thread_join(th);
        g_assert_false(w.ok);
        assert_error_contains(w.err, "stream truncated");
        error_free(w.err);
        multifd_recv_shutdown();
    }
    if (use_cancel) {
        close(sv[0]);
    }
    mig_cancel_free(cancel);
}

/* Shutting down with a thread blocked in a read must not hang. */
static void test_shutdown_blocked_recv(void)
{
    MultiFDParams params;
    MultiFDHello h = good_hello(0);
    uint8_t buf[MULTIFD_HELLO_LEN];
    int sv[2];

    multifd_params_init(&params);
    recv_setup(test_uuid, &params, NULL);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    multifd_hello_encode(&h, buf);
    g_assert_cmpint(write(sv[0], buf, sizeof(buf)), ==, sizeof(buf));
    g_assert_true(multifd_recv_new_channel(
                      mig_channel_new_fd(sv[1], "pair", NULL), NULL, 0,
                      &error_abort));
    multifd_recv_shutdown();
    close(sv[0]);
}

static void test_setup_errors(void)
{
    MultiFDParams params;
    MigrationAddress addr = { .type = MIGRATION_ADDRESS_FILE,
                              .path = (char *)"/tmp/x" };
    MigrationAddress nowhere = { .type = MIGRATION_ADDRESS_UNIX,
                                 .path = (char *)"/nonexistent/multifd" };
    Error *err = NULL;

    multifd_params_init(&params);
    g_assert_false(multifd_send_setup(&addr, test_uuid, &params, NULL, &err));
    assert_error_contains(err, "multifd needs a tcp: or unix: address, not "
                          "file:");
    error_free(err);
    err = NULL;
    g_assert_false(multifd_send_setup(&nowhere, test_uuid, &params, NULL,
                                      &err));
    assert_error_contains(err, "multifd channel 0: unix:/nonexistent/multifd:"
                          " cannot connect");
    error_free(err);
    err = NULL;
    g_assert_false(multifd_queue_ram_page(&(RAMBlock) { .size = 4096 }, 0,
                                          &err));
    assert_error_contains(err, "not set up");
    error_free(err);
    multifd_send_shutdown();
}

int main(int argc, char **argv)
{
    static const unsigned channel_counts[] = { 1, 2, 4 };
    static TransferCase cases[3 * MULTIFD_COMPRESSION__MAX];
    unsigned n = 0;

    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (unsigned i = 0; i < ARRAY_SIZE(channel_counts); i++) {
        for (unsigned m = 0; m < MULTIFD_COMPRESSION__MAX; m++) {
            g_autofree char *path = g_strdup_printf(
                "/multifd/ram/%u-channels/%s", channel_counts[i],
                multifd_compression_name(m));

            cases[n] = (TransferCase) { channel_counts[i], m };
            g_test_add_data_func(path, &cases[n++], test_transfer);
        }
    }
    g_test_add_func("/multifd/ram/sync-barrier", test_sync_barrier);
    g_test_add_data_func("/multifd/ram/zero-pages/none",
                         GINT_TO_POINTER(MULTIFD_COMPRESSION_NONE),
                         test_zero_pages);
    g_test_add_data_func("/multifd/ram/zero-pages/zstd",
                         GINT_TO_POINTER(MULTIFD_COMPRESSION_ZSTD),
                         test_zero_pages);
    g_test_add_func("/multifd/device-state/reassembly", test_device_state);
    g_test_add_func("/multifd/device-state/rejected",
                    test_device_state_rejected);
    g_test_add_data_func("/multifd/device-state/peer-gone", GINT_TO_POINTER(0),
                         test_device_state_send_fails);
    g_test_add_data_func("/multifd/device-state/cancel-blocked",
                         GINT_TO_POINTER(1), test_device_state_send_fails);
    g_test_add_func("/multifd/hello/checks", test_hello_checks);
    g_test_add_func("/multifd/packet/checks", test_packet_checks);
    g_test_add_func("/multifd/cancel/blocked-send", test_cancel_blocked_send);
    g_test_add_func("/multifd/error/peer-gone", test_peer_gone);
    g_test_add_data_func("/multifd/cancel/blocked-recv", GINT_TO_POINTER(1),
                         test_cancel_blocked_recv);
    g_test_add_data_func("/multifd/cancel/truncated-recv", GINT_TO_POINTER(0),
                         test_cancel_blocked_recv);
    g_test_add_func("/multifd/cancel/shutdown-blocked-recv",
                    test_shutdown_blocked_recv);
    g_test_add_func("/multifd/setup/errors", test_setup_errors);
    g_test_add_data_func("/multifd/channel/writev-ref/socket",
                         GINT_TO_POINTER(1), test_writev_ref);
    g_test_add_data_func("/multifd/channel/writev-ref/pipe",
                         GINT_TO_POINTER(0), test_writev_ref);
    g_test_add_func("/multifd/channel/qemu-file-borrowed",
                    test_qemu_file_borrowed);
    return g_test_run();
}
