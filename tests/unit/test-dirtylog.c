/*
 * Software dirty logging: start/stop, writers, sync-and-clear, listeners,
 * and a writers-against-consumer run that must lose no page.
 */
#include "qemu/osdep.h"
#include <pthread.h>
#include <sched.h>
#include "system/ramblock.h"

#define BLOCK_SIZE (4 * MiB)
#define BLOCK_PAGES (BLOCK_SIZE / TARGET_PAGE_SIZE)

static RAMBlock *setup_ram(void)
{
    return ram_block_add("ram", 0, BLOCK_SIZE, -1, 0, false, &error_abort);
}

static void teardown_ram(void)
{
    dirty_log_stop();
    ram_blocks_free();
}

static void test_off_logs_nothing(void)
{
    RAMBlock *rb = setup_ram();

    g_assert_false(dirty_log_is_active());
    g_assert_true(guest_ram_write(8192, "x", 1));
    g_assert_true(bitmap_empty(rb->dirty_log, rb->pages));
    teardown_ram();
}

static void test_write_sync_clear(void)
{
    RAMBlock *rb = setup_ram();
    g_autofree unsigned long *dest = bitmap_new(rb->pages);
    uint8_t buf[3 * 4096] = { 1 };

    /* Start forgets whatever was logged before. */
    set_bit(7, rb->dirty_log);
    g_assert_true(dirty_log_start(&error_abort));
    g_assert_true(dirty_log_is_active());
    g_assert_true(bitmap_empty(rb->dirty_log, rb->pages));

    g_assert_true(guest_ram_write(5 * 4096 + 100, "a", 1));
    /* 3 pages at an unaligned start touch pages 10..13. */
    g_assert_true(guest_ram_write(10 * 4096 + 1, buf, sizeof(buf)));
    guest_ram_set_dirty(200 * 4096, 64 * 4096);
    guest_ram_set_dirty(BLOCK_SIZE - 4096, 1 * MiB);   /* partly not RAM */
    guest_ram_set_dirty(BLOCK_SIZE + 4096, 4096);      /* not RAM at all */

    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, 1 + 4 + 64 + 1);
    g_assert_true(test_bit(5, dest));
    g_assert_false(test_bit(9, dest));
    g_assert_true(test_bit(10, dest) && test_bit(13, dest));
    g_assert_false(test_bit(14, dest));
    g_assert_true(test_bit(200, dest) && test_bit(263, dest));
    g_assert_false(test_bit(264, dest));
    g_assert_true(test_bit(BLOCK_PAGES - 1, dest));
    g_assert_cmpuint(bitmap_count_one(dest, rb->pages), ==, 70);
    /* The log was cleared. */
    g_assert_true(bitmap_empty(rb->dirty_log, rb->pages));
    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, 0);

    /* A page still in dest is not counted again, a new one is. */
    g_assert_true(guest_ram_write(5 * 4096, "b", 1));
    g_assert_true(guest_ram_write(6 * 4096, "c", 1));
    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, 1);
    g_assert_cmpuint(bitmap_count_one(dest, rb->pages), ==, 71);

    dirty_log_stop();
    g_assert_false(dirty_log_is_active());
    g_assert_true(guest_ram_write(7 * 4096, "d", 1));
    g_assert_true(bitmap_empty(rb->dirty_log, rb->pages));
    teardown_ram();
}

typedef struct TestListener {
    DirtyLogListener l;
    int starts, stops, syncs;
    bool fail_start;
    bool fail_sync;
    uint64_t write_gpa;         /* "DMA" the listener reports on sync */
} TestListener;

static bool tl_start(DirtyLogListener *l, Error **errp)
{
    TestListener *tl = container_of(l, TestListener, l);

    if (tl->fail_start) {
        error_setg(errp, "device refused");
        return false;
    }
    tl->starts++;
    return true;
}

static void tl_stop(DirtyLogListener *l)
{
    container_of(l, TestListener, l)->stops++;
}

static bool tl_sync(DirtyLogListener *l, Error **errp)
{
    TestListener *tl = container_of(l, TestListener, l);

    if (tl->fail_sync) {
        error_setg(errp, "report failed");
        return false;
    }
    tl->syncs++;
    guest_ram_set_dirty(tl->write_gpa, 4096);
    return true;
}

static void test_listeners(void)
{
    RAMBlock *rb = setup_ram();
    g_autofree unsigned long *dest = bitmap_new(rb->pages);
    TestListener a = { .l = { .name = "dev-a", .log_start = tl_start,
                              .log_stop = tl_stop, .log_sync = tl_sync },
                       .write_gpa = 30 * 4096 };
    TestListener b = { .l = { .name = "dev-b", .log_start = tl_start,
                              .log_stop = tl_stop, .log_sync = tl_sync },
                       .write_gpa = 31 * 4096 };
    TestListener late = { .l = { .name = "late", .log_start = tl_start,
                                 .log_stop = tl_stop },
                          .fail_start = true };
    Error *err = NULL;

    g_assert_true(dirty_log_listener_add(&a.l, &error_abort));
    g_assert_true(dirty_log_listener_add(&b.l, &error_abort));
    g_assert_cmpint(a.starts, ==, 0);

    /* One refusal undoes the whole start and names the listener. */
    b.fail_start = true;
    g_assert_false(dirty_log_start(&err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'dev-b'"));
    g_assert_nonnull(strstr(error_get_pretty(err), "device refused"));
    error_free(err);
    err = NULL;
    g_assert_false(dirty_log_is_active());
    g_assert_cmpint(a.starts, ==, a.stops);
    g_assert_cmpint(b.starts, ==, 0);

    b.fail_start = false;
    a.starts = a.stops = 0;
    g_assert_true(dirty_log_start(&error_abort));
    g_assert_cmpint(a.starts, ==, 1);
    g_assert_cmpint(b.starts, ==, 1);

    g_assert_true(dirty_log_sync(&error_abort));
    g_assert_cmpint(a.syncs, ==, 1);
    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, 2);
    g_assert_true(test_bit(30, dest) && test_bit(31, dest));

    a.fail_sync = true;
    g_assert_false(dirty_log_sync(&err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'dev-a'"));
    error_free(err);
    err = NULL;

    /* Added while logging runs: started at once, or refused. */
    g_assert_false(dirty_log_listener_add(&late.l, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'late'"));
    error_free(err);
    late.fail_start = false;
    g_assert_true(dirty_log_listener_add(&late.l, &error_abort));
    g_assert_cmpint(late.starts, ==, 1);
    dirty_log_listener_del(&late.l);
    g_assert_cmpint(late.stops, ==, 1);

    dirty_log_stop();
    g_assert_cmpint(a.stops, ==, 1);
    g_assert_cmpint(b.stops, ==, 1);
    /* Removed while logging is off: not stopped twice. */
    dirty_log_listener_del(&a.l);
    dirty_log_listener_del(&b.l);
    g_assert_cmpint(a.stops, ==, 1);
    teardown_ram();
}

/*
 * Writers bump a per-page sequence number, consumers copy every page the
 * log hands them: at the end, after a final sync, the copy must equal
 * RAM, or a write was lost between a writer and the consumer.
 */
#define RACE_WRITERS 2
#define RACE_PAGES 64           /* few pages: writers and consumer collide */
#define RACE_SECONDS 1.0

typedef struct RaceWriter {
    unsigned index;
    uint64_t rng;
    uint64_t writes;
} RaceWriter;

static int race_stop;

/*
 * Pin the calling thread to the @n-th CPU it may run on (modulo their
 * number), so that writers and consumer run on different CPUs whenever
 * there are two: a missing barrier only shows between CPUs.
 */
static void race_pin(unsigned n)
{
    cpu_set_t allowed, one;
    unsigned count, seen = 0;

    if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0) {
        return;
    }
    count = CPU_COUNT(&allowed);
    if (count < 2) {
        return;
    }
    n %= count;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && seen++ == n) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
            return;
        }
    }
}

static void *race_writer_fn(void *opaque)
{
    RaceWriter *w = opaque;

    race_pin(1 + w->index);
    while (!__atomic_load_n(&race_stop, __ATOMIC_RELAXED)) {
        for (unsigned i = 0; i < 1024; i++) {
            uint64_t page, value;

            w->rng ^= w->rng << 13;
            w->rng ^= w->rng >> 7;
            w->rng ^= w->rng << 17;
            /* Each writer owns the pages of its index: no lost updates. */
            page = (w->rng % (RACE_PAGES / RACE_WRITERS)) * RACE_WRITERS +
                   w->index;
            g_assert_true(guest_ram_read(page * 4096, &value, sizeof(value)));
            value++;
            g_assert_true(guest_ram_write(page * 4096, &value, sizeof(value)));
        }
        w->writes += 1024;
    }
    return NULL;
}

static void race_copy_dirty(RAMBlock *rb, unsigned long *dest, uint8_t *copy)
{
    ram_block_dirty_sync(rb, dest);
    for (size_t p = find_next_bit(dest, rb->pages, 0); p < rb->pages;
         p = find_next_bit(dest, rb->pages, p + 1)) {
        clear_bit(p, dest);
        /* Only the counter word: a short copy widens the race window. */
        memcpy(copy + p * 4096, rb->host + p * 4096, sizeof(uint64_t));
    }
}

/*
 * Writers on other CPUs than the consumer, for about a second: every
 * page's copy must end up equal to RAM.
 */
static void test_no_lost_writes(void)
{
    RAMBlock *rb = ram_block_add("race", 0, RACE_PAGES * 4096, -1, 0, false,
                                 &error_abort);
    g_autofree unsigned long *dest = bitmap_new(rb->pages);
    g_autofree uint8_t *copy = g_malloc0(rb->size);
    RaceWriter writers[RACE_WRITERS];
    GThread *threads[RACE_WRITERS];
    g_autoptr(GTimer) timer = g_timer_new();
    uint64_t rounds = 0, writes = 0;
    cpu_set_t saved;
    bool restore = sched_getaffinity(0, sizeof(saved), &saved) == 0;

    race_stop = 0;
    race_pin(0);
    g_assert_true(dirty_log_start(&error_abort));
    for (unsigned i = 0; i < RACE_WRITERS; i++) {
        writers[i] = (RaceWriter) { .index = i, .rng = 0x1234567 + i * 977 };
        threads[i] = g_thread_new("race-writer", race_writer_fn, &writers[i]);
    }
    while (g_timer_elapsed(timer, NULL) < RACE_SECONDS) {
        race_copy_dirty(rb, dest, copy);
        rounds++;
    }
    __atomic_store_n(&race_stop, 1, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < RACE_WRITERS; i++) {
        g_thread_join(threads[i]);
        writes += writers[i].writes;
    }
    race_copy_dirty(rb, dest, copy);
    if (restore) {
        pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
    }
    g_test_message("%" PRIu64 " sync rounds, %" PRIu64 " writes", rounds,
                   writes);
    for (unsigned p = 0; p < RACE_PAGES; p++) {
        uint64_t want, got;

        memcpy(&want, rb->host + p * 4096, sizeof(want));
        memcpy(&got, copy + p * 4096, sizeof(got));
        if (want != got) {
            g_error("page %u: copy holds %" PRIu64 ", RAM %" PRIu64
                    " (a write was lost)", p, got, want);
        }
    }
    dirty_log_stop();
    ram_blocks_free();
}

/*
 * The ordering rule, checked without a race: a sync that takes bits
 * issues the consumer barrier, even when every bit it took was set in
 * @dest already; a sync that takes nothing does not.
 */
static void test_barrier_when_taking(void)
{
    RAMBlock *rb = setup_ram();
    g_autofree unsigned long *dest = bitmap_new(rb->pages);
    uint64_t before = dirty_log_consumer_barrier_count();

    g_assert_true(dirty_log_start(&error_abort));
    g_assert_cmpuint(dirty_log_consumer_barrier_count(), ==, before + 1);

    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, 0);
    g_assert_cmpuint(dirty_log_consumer_barrier_count(), ==, before + 1);

    g_assert_true(guest_ram_write(3 * 4096, "x", 1));
    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, 1);
    g_assert_cmpuint(dirty_log_consumer_barrier_count(), ==, before + 2);

    /* Page 3 is still in @dest: nothing newly set, but a bit was taken. */
    g_assert_true(guest_ram_write(3 * 4096, "y", 1));
    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, 0);
    g_assert_cmpuint(dirty_log_consumer_barrier_count(), ==, before + 3);

    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, 0);
    g_assert_cmpuint(dirty_log_consumer_barrier_count(), ==, before + 3);
    teardown_ram();
}

static void test_sync_empty_and_full(void)
{
    RAMBlock *rb = ram_block_add("big", 0, 1 * GiB, -1, 0, false,
                                 &error_abort);
    g_autofree unsigned long *dest = bitmap_new(rb->pages);

    g_assert_true(dirty_log_start(&error_abort));
    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, 0);
    g_assert_true(bitmap_empty(dest, rb->pages));
    guest_ram_set_dirty(0, rb->size);
    g_assert_cmpuint(ram_block_dirty_sync(rb, dest), ==, rb->pages);
    g_assert_cmpuint(bitmap_count_one(dest, rb->pages), ==, rb->pages);
    g_assert_true(bitmap_empty(rb->dirty_log, rb->pages));
    teardown_ram();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/dirtylog/off-logs-nothing", test_off_logs_nothing);
    g_test_add_func("/dirtylog/write-sync-clear", test_write_sync_clear);
    g_test_add_func("/dirtylog/listeners", test_listeners);
    g_test_add_func("/dirtylog/no-lost-writes", test_no_lost_writes);
    g_test_add_func("/dirtylog/barrier-when-taking", test_barrier_when_taking);
    g_test_add_func("/dirtylog/sync-empty-and-full", test_sync_empty_and_full);
    return g_test_run();
}
