/*
 * The stress guest program: its check catches every kind of bad page,
 * its state survives a save/load round trip, malformed state is refused,
 * and it runs on real vCPU threads that pause and resume.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "monitor/monitor-internal.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/ramblock.h"
#include "system/runstate.h"

#define RAM_SIZE (4 * MiB)
#define WS_SIZE (2 * MiB)
#define SHARE_PAGES (WS_SIZE / TARGET_PAGE_SIZE / 2)
#define STEP_PAGES 64           /* pages one unlimited step writes */

/* Offsets in the saved state of one "stress" program with 2 vCPUs. */
#define STATE_PAYLOAD 26        /* magic, version, count, name, length */
#define STATE_VCPU0_POS (STATE_PAYLOAD + 24)

static void setup_stress(const char *opts, unsigned vcpus)
{
    ram_block_add("ram", 0, RAM_SIZE, -1, 0, false, &error_abort);
    g_assert_true(guest_program_create(opts, &error_abort));
    g_assert_true(guest_setup(vcpus, &error_abort));
}

static void teardown(void)
{
    cpus_cleanup();
    guest_cleanup();
    ram_blocks_free();
}

static void run_steps(unsigned vcpus, unsigned steps)
{
    for (unsigned s = 0; s < steps; s++) {
        for (unsigned cpu = 0; cpu < vcpus; cpu++) {
            guest_program_step(cpu);
        }
    }
}

/* Verify, expecting @bad bad pages, the first at @first with @detail. */
static void check_verify(uint64_t bad, int64_t first, const char *detail)
{
    GuestVerifyResult res = { 0 };

    g_assert_true(guest_verify(&res, &error_abort));
    if (res.detail) {
        g_test_message("verify: %s", res.detail);
    }
    g_assert_cmpuint(res.pages_checked, ==, RAM_SIZE / TARGET_PAGE_SIZE);
    g_assert_cmpuint(res.bad_pages, ==, bad);
    g_assert_cmpint(res.first_bad, ==, first);
    g_assert_true(res.ok == !bad);
    if (detail) {
        g_assert_nonnull(res.detail);
        g_assert_nonnull(strstr(res.detail, detail));
    } else {
        g_assert_null(res.detail);
    }
    guest_verify_result_clear(&res);
}

static bool verify_ok(void)
{
    GuestVerifyResult res = { 0 };
    bool ok;

    g_assert_true(guest_verify(&res, &error_abort));
    ok = res.ok;
    guest_verify_result_clear(&res);
    return ok;
}

static uint8_t *page_ptr(uint64_t page)
{
    return guest_ram_ptr(page * TARGET_PAGE_SIZE, TARGET_PAGE_SIZE);
}

static void test_fresh_and_progress(void)
{
    GuestProgram *prog;
    GuestProgramStats stats = { 0 };
    const uint64_t *page;

    setup_stress("stress,ws=2M,seed=7", 2);
    g_assert_cmpstr(guest_program_name(), ==, "stress");
    check_verify(0, -1, NULL);

    /* 5 steps of 64 pages: pass 1 done, 64 pages into pass 2. */
    run_steps(2, 5);
    check_verify(0, -1, NULL);
    prog = guest_program_nth(0);
    prog->ops->query(prog, &stats);
    g_assert_cmpuint(stats.passes, ==, 1);
    g_assert_cmpuint(stats.pages_written, ==, 2 * 5 * STEP_PAGES);
    g_assert_cmpuint(stats.bytes_written, ==, 2 * 5 * STEP_PAGES * 4096);

    /* The boundary: counter 2 before the position, 1 after it. */
    page = (const uint64_t *)page_ptr(63);
    g_assert_cmpuint(page[0], ==, 2);
    g_assert_cmpuint(page[1], ==, 63 * 4096);
    page = (const uint64_t *)page_ptr(64);
    g_assert_cmpuint(page[0], ==, 1);
    page = (const uint64_t *)page_ptr(SHARE_PAGES + 64);
    g_assert_cmpuint(page[0], ==, 1);
    /* Outside the working set nothing was written. */
    page = (const uint64_t *)page_ptr(2 * SHARE_PAGES);
    g_assert_cmpuint(page[0], ==, 0);
    teardown();
}

/* Every page the program writes reaches the dirty log, and no other. */
static void test_writes_are_logged(void)
{
    RAMBlock *rb;
    g_autofree unsigned long *dirty = NULL;

    setup_stress("stress,ws=2M", 2);
    rb = ram_block_first();
    dirty = bitmap_new(rb->pages);
    g_assert_true(dirty_log_start(&error_abort));
    run_steps(2, 1);
    g_assert_cmpuint(ram_block_dirty_sync(rb, dirty), ==, 2 * STEP_PAGES);
    g_assert_cmpuint(find_next_bit(dirty, rb->pages, 0), ==, 0);
    g_assert_cmpuint(find_next_zero_bit(dirty, rb->pages, 0), ==, STEP_PAGES);
    g_assert_cmpuint(find_next_bit(dirty, rb->pages, STEP_PAGES), ==,
                     SHARE_PAGES);
    g_assert_cmpuint(find_next_zero_bit(dirty, rb->pages, SHARE_PAGES), ==,
                     SHARE_PAGES + STEP_PAGES);
    g_assert_cmpuint(find_next_bit(dirty, rb->pages,
                                   SHARE_PAGES + STEP_PAGES), ==, rb->pages);

    /* Logging off: the program writes on, the log stays empty. */
    dirty_log_stop();
    run_steps(2, 1);
    bitmap_zero(dirty, rb->pages);
    g_assert_cmpuint(ram_block_dirty_sync(rb, dirty), ==, 0);
    teardown();
}

static void test_catches_stale_page(void)
{
    uint8_t old[4096];

    setup_stress("stress,ws=2M", 2);
    run_steps(2, 4);            /* vCPU 0 at page 0 of pass 2 */
    memcpy(old, page_ptr(10), sizeof(old));
    run_steps(2, 1);            /* rewrites pages 0..63 */
    check_verify(0, -1, NULL);
    memcpy(page_ptr(10), old, sizeof(old));
    check_verify(1, 10 * 4096, "stale: counter 1, expected 2");
    teardown();
}

static void test_catches_zero_page(void)
{
    setup_stress("stress,ws=2M", 2);
    run_steps(2, 1);
    memset(page_ptr(SHARE_PAGES + 3), 0, 4096);
    check_verify(1, (SHARE_PAGES + 3) * 4096, "is zero, expected counter 1");
    teardown();
}

static void test_catches_wrong_pattern(void)
{
    setup_stress("stress,ws=2M", 2);
    run_steps(2, 1);
    page_ptr(5)[2000] ^= 0x10;
    page_ptr(6)[4095] ^= 0x01;
    check_verify(2, 5 * 4096, "wrong pattern at offset 0x7d0");
    teardown();
}

static void test_catches_misplaced_page(void)
{
    setup_stress("stress,ws=2M", 2);
    run_steps(2, 1);
    memcpy(page_ptr(7), page_ptr(8), 4096);
    check_verify(1, 7 * 4096, "holds the page of address 0x8000");
    teardown();
}

static void test_catches_unexpected_data(void)
{
    setup_stress("stress,ws=2M", 2);
    run_steps(2, 1);
    /* Not written yet in this pass-0 share position... */
    page_ptr(100)[17] = 1;
    /* ...and outside the working set. */
    page_ptr(2 * SHARE_PAGES + 9)[4000] = 0x42;
    check_verify(2, 100 * 4096, "(not written yet by vCPU 0) must be zero but "
                 "holds 0x01 at offset 0x11");
    memset(page_ptr(100), 0, 4096);
    check_verify(1, (2 * SHARE_PAGES + 9) * 4096,
                 "must be zero but holds 0x42 at offset 0xfa0");
    teardown();
}

static void test_seed_changes_pattern(void)
{
    uint8_t with_seed0[4096];

    setup_stress("stress,ws=2M", 2);
    run_steps(2, 1);
    memcpy(with_seed0, page_ptr(1), sizeof(with_seed0));
    teardown();

    setup_stress("stress,ws=2M,seed=1", 2);
    run_steps(2, 1);
    g_assert_cmpint(memcmp(with_seed0, page_ptr(1), 16), ==, 0);
    g_assert_cmpint(memcmp(with_seed0, page_ptr(1), 4096), !=, 0);
    /* A page of another seed is caught. */
    memcpy(page_ptr(1), with_seed0, sizeof(with_seed0));
    check_verify(1, 4096, "wrong pattern");
    teardown();
}

/* Like a migration: RAM and state taken together, restored later. */
static void test_state_round_trip(void)
{
    g_autoptr(GByteArray) state = NULL;
    g_autoptr(GByteArray) again = NULL;
    g_autofree uint8_t *ram_copy = g_malloc(RAM_SIZE);

    setup_stress("stress,ws=2M,seed=3", 2);
    run_steps(2, 7);
    state = guest_state_save();
    memcpy(ram_copy, guest_ram_ptr(0, RAM_SIZE), RAM_SIZE);

    run_steps(2, 3);
    check_verify(0, -1, NULL);
    g_assert_true(guest_state_load(state->data, state->len, &error_abort));
    /* The RAM is ahead of the old state now. */
    g_assert_false(verify_ok());
    memcpy(guest_ram_ptr(0, RAM_SIZE), ram_copy, RAM_SIZE);
    check_verify(0, -1, NULL);
    again = guest_state_save();
    g_assert_cmpmem(state->data, state->len, again->data, again->len);

    /* And the program carries on from there. */
    run_steps(2, 9);
    check_verify(0, -1, NULL);
    teardown();
}

static void expect_load_fails(const uint8_t *buf, size_t len,
                              const char *message)
{
    g_autoptr(GByteArray) before = guest_state_save();
    g_autoptr(GByteArray) after = NULL;
    Error *err = NULL;

    g_assert_false(guest_state_load(buf, len, &err));
    g_assert_nonnull(err);
    if (message && !strstr(error_get_pretty(err), message)) {
        g_error("load error '%s' does not mention '%s'",
                error_get_pretty(err), message);
    }
    error_free(err);
    /* A refused state changes nothing. */
    after = guest_state_save();
    g_assert_cmpmem(before->data, before->len, after->data, after->len);
}

static void put_be64_at(uint8_t *buf, size_t off, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(buf + off, &v, sizeof(v));
}

static void test_malformed_state(void)
{
    g_autoptr(GByteArray) good = NULL;
    g_autofree uint8_t *bad = NULL;
    size_t len;

    setup_stress("stress,ws=2M", 2);
    run_steps(2, 3);
    good = guest_state_save();
    len = good->len;
    g_assert_cmpuint(len, ==, STATE_PAYLOAD + 24 + 2 * 24);

    /* Every truncation. */
    for (size_t cut = 0; cut < len; cut++) {
        expect_load_fails(good->data, cut, NULL);
    }
    bad = g_malloc(len + 1);

    memcpy(bad, good->data, len);
    bad[len] = 0;
    expect_load_fails(bad, len + 1, "1 unexpected bytes at the end");

    memcpy(bad, good->data, len);
    bad[0] ^= 1;
    expect_load_fails(bad, len, "bad magic");

    memcpy(bad, good->data, len);
    bad[7] = 9;
    expect_load_fails(bad, len, "unsupported version 9");

    memcpy(bad, good->data, len);
    bad[11] = 2;
    expect_load_fails(bad, len, "holds 2 program(s)");

    memcpy(bad, good->data, len);
    memcpy(bad + 16, "strexx", 6);
    expect_load_fails(bad, len, "program 0 is 'strexx'");

    memcpy(bad, good->data, len);
    bad[15] = 0xff;
    expect_load_fails(bad, len, "a name of 255 bytes");

    memcpy(bad, good->data, len);
    bad[STATE_PAYLOAD - 1] += 8;        /* payload longer than the buffer */
    expect_load_fails(bad, len, "truncated");

    memcpy(bad, good->data, len);
    bad[STATE_PAYLOAD + 7] = 3;
    expect_load_fails(bad, len, "made with 3 vCPUs, this VM has 2");

    memcpy(bad, good->data, len);
    bad[STATE_PAYLOAD + 15] ^= 1;
    expect_load_fails(bad, len, "working set of");

    memcpy(bad, good->data, len);
    bad[STATE_PAYLOAD + 23] ^= 1;
    expect_load_fails(bad, len, "seed 1");

    memcpy(bad, good->data, len);
    put_be64_at(bad, STATE_VCPU0_POS, SHARE_PAGES);
    expect_load_fails(bad, len, "vCPU 0 is at page 256 of a share of 256");

    memcpy(bad, good->data, len);
    put_be64_at(bad, STATE_VCPU0_POS + 24 + 8, UINT64_MAX);
    expect_load_fails(bad, len, "vCPU 1 has an impossible pass count");

    /* The untouched state still loads. */
    g_assert_true(guest_state_load(good->data, len, &error_abort));
    teardown();
}

static void test_options(void)
{
    Error *err = NULL;
    Object *obj;
    g_autofree char *rate = NULL;

    ram_block_add("ram", 0, RAM_SIZE, -1, 0, false, &error_abort);
    g_assert_false(guest_program_create("nosuch", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "unknown program 'nosuch'"));
    error_free(err);
    err = NULL;
    g_assert_false(guest_program_create("stress,bogus=1", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "bogus"));
    error_free(err);
    err = NULL;
    g_assert_false(guest_program_create("stress,ws=1000", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "not a multiple"));
    error_free(err);
    err = NULL;

    g_assert_true(guest_program_create("stress,ws=8M", &error_abort));
    g_assert_false(guest_program_create("idle", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'idle' cannot run"));
    error_free(err);
    err = NULL;
    g_assert_false(guest_setup(2, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "ws=8 MiB is larger than "
                            "guest RAM (4 MiB)"));
    error_free(err);
    err = NULL;
    guest_cleanup();

    /* rate changes at run time, ws does not. */
    g_assert_true(guest_program_create("stress,rate=1M", &error_abort));
    g_assert_true(guest_setup(1, &error_abort));
    obj = object_resolve_path("/machine/guest", &error_abort);
    g_assert_true(object_property_parse(obj, "rate", "2M", &error_abort));
    rate = object_property_print(obj, "rate", &error_abort);
    g_assert_nonnull(rate);
    g_assert_false(object_property_parse(obj, "ws", "1M", &err));
    error_free(err);
    teardown();
}

/*
 * Two test programs counting their setups and cleanups: "tcount-ok"
 * always sets up, "tcount-fail" fails half way.
 */
static unsigned tcount_setups[2], tcount_cleanups[2];

static unsigned tcount_index(GuestProgram *prog)
{
    return !strcmp(guest_program_short_name(prog), "tcount-fail");
}

static bool tcount_setup(GuestProgram *prog, unsigned nr_vcpus, Error **errp)
{
    unsigned i = tcount_index(prog);

    tcount_setups[i]++;
    if (i) {
        error_setg(errp, "fails on purpose");
        return false;
    }
    return true;
}

static void tcount_cleanup(GuestProgram *prog)
{
    tcount_cleanups[tcount_index(prog)]++;
}

static void tcount_step(GuestProgram *prog, unsigned cpu)
{
}

static const GuestProgramOps tcount_ops = {
    .setup = tcount_setup,
    .cleanup = tcount_cleanup,
    .step = tcount_step,
};

static bool tcount_realize(Object *obj, Error **errp)
{
    ((GuestProgram *)obj)->ops = &tcount_ops;
    return true;
}

static const ObjectClass tcount_ok_class = {
    .name = GUEST_PROGRAM_TYPE_PREFIX "tcount-ok",
    .desc = "test program that sets up",
    .parent = TYPE_GUEST_PROGRAM,
    .instance_size = sizeof(GuestProgram),
    .realize = tcount_realize,
    .finalize = guest_program_finalize,
};

static const ObjectClass tcount_fail_class = {
    .name = GUEST_PROGRAM_TYPE_PREFIX "tcount-fail",
    .desc = "test program whose setup fails",
    .parent = TYPE_GUEST_PROGRAM,
    .instance_size = sizeof(GuestProgram),
    .realize = tcount_realize,
    .finalize = guest_program_finalize,
};

static void tcount_register_types(void)
{
    type_register(&tcount_ok_class);
    type_register(&tcount_fail_class);
}
type_init(tcount_register_types)

/* A failed setup cleans up each program once, not again at exit. */
static void test_setup_failure_cleans_once(void)
{
    Error *err = NULL;

    memset(tcount_setups, 0, sizeof(tcount_setups));
    memset(tcount_cleanups, 0, sizeof(tcount_cleanups));
    g_assert_true(guest_program_create("tcount-ok", &error_abort));
    g_assert_true(guest_program_create("tcount-fail", &error_abort));
    g_assert_false(guest_setup(1, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "fails on purpose"));
    error_free(err);
    g_assert_cmpuint(tcount_setups[0], ==, 1);
    g_assert_cmpuint(tcount_setups[1], ==, 1);
    g_assert_cmpuint(tcount_cleanups[0], ==, 1);
    g_assert_cmpuint(tcount_cleanups[1], ==, 1);
    guest_cleanup();
    g_assert_cmpuint(guest_program_count(), ==, 0);
    g_assert_cmpuint(tcount_cleanups[0], ==, 1);
    g_assert_cmpuint(tcount_cleanups[1], ==, 1);

    /* A program that was set up is cleaned up once, at removal. */
    g_assert_true(guest_program_create("tcount-ok", &error_abort));
    g_assert_true(guest_setup(1, &error_abort));
    g_assert_cmpuint(tcount_cleanups[0], ==, 1);
    guest_cleanup();
    g_assert_cmpuint(tcount_cleanups[0], ==, 2);

    /* One that never was set up has nothing to clean up. */
    g_assert_true(guest_program_create("tcount-ok", &error_abort));
    guest_cleanup();
    g_assert_cmpuint(tcount_cleanups[0], ==, 2);
}

static GuestProgramStats query_stats(void)
{
    GuestProgram *prog = guest_program_nth(0);
    GuestProgramStats stats = { 0 };

    prog->ops->query(prog, &stats);
    return stats;
}

/* Wait (bounded) until the vCPUs wrote @pages more pages. */
static void wait_for_pages(uint64_t pages)
{
    uint64_t target = query_stats().pages_written + pages;
    int64_t deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

    while (query_stats().pages_written < target) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
}

/*
 * Wait until every vCPU completed @passes passes (bounded): counting
 * pages is not enough, one vCPU thread may get far less CPU time.
 */
static void wait_for_passes(uint64_t passes)
{
    int64_t deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

    while (query_stats().passes < passes) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
}

static void test_vcpu_threads(void)
{
    GuestProgramStats paused_stats, later;

    ram_block_add("ram", 0, RAM_SIZE, -1, 0, false, &error_abort);
    g_assert_true(guest_program_create("stress,ws=2M", &error_abort));
    g_assert_true(cpus_init(2, &error_abort));
    g_assert_cmpuint(cpus_count(), ==, 2);
    g_assert_true(all_vcpus_paused());

    resume_all_vcpus();
    g_assert_false(all_vcpus_paused());
    wait_for_passes(3);
    /* Verify pauses the running vCPUs itself and resumes them. */
    check_verify(0, -1, NULL);
    g_assert_false(all_vcpus_paused());
    wait_for_pages(2 * SHARE_PAGES);

    pause_all_vcpus();
    g_assert_true(all_vcpus_paused());
    paused_stats = query_stats();
    g_assert_cmpuint(paused_stats.passes, >=, 3);
    /* Every page a vCPU wrote is in its own dirty count. */
    g_assert_cmpuint(vcpu_dirty_pages(0) + vcpu_dirty_pages(1), ==,
                     paused_stats.pages_written);
    g_assert_cmpuint(vcpu_dirty_pages(0), >, 0);
    g_assert_cmpuint(vcpu_dirty_pages(2), ==, 0);
    check_verify(0, -1, NULL);
    g_usleep(20000);
    later = query_stats();
    g_assert_cmpuint(later.pages_written, ==, paused_stats.pages_written);
    g_assert_true(all_vcpus_paused());

    resume_all_vcpus();
    wait_for_pages(100);
    pause_all_vcpus();
    check_verify(0, -1, NULL);
    teardown();
}

static void test_idle_program(void)
{
    ram_block_add("ram", 0, RAM_SIZE, -1, 0, false, &error_abort);
    g_assert_true(cpus_init(1, &error_abort));
    g_assert_cmpstr(guest_program_name(), ==, "idle");
    resume_all_vcpus();
    check_verify(0, -1, NULL);
    pause_all_vcpus();
    page_ptr(1000)[1] = 1;
    check_verify(1, 1000 * 4096, "must be zero");
    teardown();
}

/* Run one QMP command on @session; returns the parsed reply. */
static JsonObject *qmp(QmpSession *session, const char *request)
{
    g_autofree char *reply = qmp_handle_message(session, request,
                                                strlen(request));
    g_autoptr(JsonParser) parser = json_parser_new();

    g_assert_true(json_parser_load_from_data(parser, reply, -1, NULL));
    qmp_session_run_after_reply(session);
    return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static JsonObject *qmp_return(QmpSession *session, const char *request)
{
    g_autoptr(JsonObject) reply = qmp(session, request);

    g_assert_true(json_object_has_member(reply, "return"));
    return json_object_ref(json_object_get_object_member(reply, "return"));
}

static void qmp_expect_error(QmpSession *session, const char *request,
                             const char *desc_part)
{
    g_autoptr(JsonObject) reply = qmp(session, request);
    JsonObject *err;

    g_assert_true(json_object_has_member(reply, "error"));
    err = json_object_get_object_member(reply, "error");
    g_assert_nonnull(strstr(json_object_get_string_member(err, "desc"),
                            desc_part));
}

static void test_qmp_commands(void)
{
    QmpSession session;
    g_autoptr(JsonObject) query = NULL;
    g_autoptr(JsonObject) good = NULL;
    g_autoptr(JsonObject) bad = NULL;
    g_autoptr(JsonObject) caps = NULL;
    g_autofree unsigned long *dirty = NULL;
    JsonArray *programs;
    RunState state;

    setup_stress("stress,ws=2M", 2);
    qmp_session_init(&session);
    caps = qmp(&session, "{\"execute\": \"qmp_capabilities\"}");
    run_steps(2, 5);

    query = qmp_return(&session, "{\"execute\": \"x-query-guest\"}");
    g_assert_cmpstr(json_object_get_string_member(query, "program"), ==,
                    "stress");
    g_assert_cmpint(json_object_get_int_member(query, "passes"), ==, 1);
    g_assert_cmpint(json_object_get_int_member(query, "pages-written"), ==,
                    2 * 5 * STEP_PAGES);
    g_assert_cmpint(json_object_get_int_member(query, "bytes-written"), ==,
                    2 * 5 * STEP_PAGES * 4096);
    programs = json_object_get_array_member(query, "programs");
    g_assert_cmpuint(json_array_get_length(programs), ==, 1);

    good = qmp_return(&session, "{\"execute\": \"x-guest-verify\"}");
    g_assert_true(json_object_get_boolean_member(good, "ok"));
    g_assert_cmpint(json_object_get_int_member(good, "pages-checked"), ==,
                    RAM_SIZE / 4096);
    g_assert_cmpint(json_object_get_int_member(good, "first-bad"), ==, -1);
    g_assert_false(json_object_has_member(good, "detail"));

    /* The hook's write is not logged: migration would not resend it. */
    dirty = bitmap_new(RAM_SIZE / 4096);
    g_assert_true(dirty_log_start(&error_abort));
    qmp_return(&session, "{\"execute\": \"x-guest-corrupt\", "
               "\"arguments\": {\"addr\": 12388}}");
    g_assert_cmpuint(ram_block_dirty_sync(ram_block_first(), dirty), ==, 0);
    dirty_log_stop();
    bad = qmp_return(&session, "{\"execute\": \"x-guest-verify\"}");
    g_assert_false(json_object_get_boolean_member(bad, "ok"));
    g_assert_cmpint(json_object_get_int_member(bad, "bad-pages"), ==, 1);
    g_assert_cmpint(json_object_get_int_member(bad, "first-bad"), ==, 12288);
    g_assert_nonnull(strstr(json_object_get_string_member(bad, "detail"),
                            "wrong pattern at offset 0x64"));

    qmp_expect_error(&session, "{\"execute\": \"x-guest-corrupt\", "
                     "\"arguments\": {\"addr\": 4194304}}",
                     "0x400000 is not guest RAM");
    qmp_expect_error(&session, "{\"execute\": \"x-guest-corrupt\", "
                     "\"arguments\": {\"addr\": -5}}", "is negative");
    qmp_expect_error(&session, "{\"execute\": \"x-guest-corrupt\"}",
                     "'addr' is missing");
    qmp_expect_error(&session, "{\"execute\": \"x-guest-verify\", "
                     "\"arguments\": {\"deep\": true}}", "deep");
    /* A destination still waiting for its stream has nothing to verify. */
    state = runstate_get();
    runstate_set(RUN_STATE_INMIGRATE);
    qmp_expect_error(&session, "{\"execute\": \"x-guest-verify\"}",
                     "waiting for an incoming migration");
    runstate_set(state);
    qmp_session_cleanup(&session);
    teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bql_lock();
    g_test_add_func("/guest-stress/fresh-and-progress",
                    test_fresh_and_progress);
    g_test_add_func("/guest-stress/writes-are-logged",
                    test_writes_are_logged);
    g_test_add_func("/guest-stress/catches/stale-page",
                    test_catches_stale_page);
    g_test_add_func("/guest-stress/catches/zero-page", test_catches_zero_page);
    g_test_add_func("/guest-stress/catches/wrong-pattern",
                    test_catches_wrong_pattern);
    g_test_add_func("/guest-stress/catches/misplaced-page",
                    test_catches_misplaced_page);
    g_test_add_func("/guest-stress/catches/unexpected-data",
                    test_catches_unexpected_data);
    g_test_add_func("/guest-stress/seed-changes-pattern",
                    test_seed_changes_pattern);
    g_test_add_func("/guest-stress/state/round-trip", test_state_round_trip);
    g_test_add_func("/guest-stress/state/malformed", test_malformed_state);
    g_test_add_func("/guest-stress/options", test_options);
    g_test_add_func("/guest-stress/setup-failure-cleans-once",
                    test_setup_failure_cleans_once);
    g_test_add_func("/guest-stress/vcpu-threads", test_vcpu_threads);
    g_test_add_func("/guest-stress/idle", test_idle_program);
    g_test_add_func("/guest-stress/qmp", test_qmp_commands);
    return g_test_run();
}
