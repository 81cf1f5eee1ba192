/*
 * The "stress" guest program, after the idea of QEMU's migration test
 * guest: each vCPU walks its share of a working set, rewriting every page
 * with the next value of the page's counter.  After any stop, all pages
 * of a share hold the same counter except at one boundary (the vCPU's
 * position), before which they hold one more.
 *
 * The check is strict.  The state (per vCPU: position and completed
 * passes) says exactly which counter every page must hold; the rest of a
 * written page is a pattern derived from its address, its counter and
 * the seed, so that a page from an older pass, from another address or
 * with a single flipped byte is caught; a page of counter 0 (never
 * written) must be zero, and so must every page outside the working set.
 *
 * Page layout: u64 counter, u64 guest physical address, then pattern
 * words, all in host byte order (the page is only read back by the same
 * kind of host after migration, and the check recomputes it).
 */
#include "qemu/osdep.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/ramblock.h"

#define TYPE_GUEST_STRESS "guest-stress"
#define STRESS_STATE_VERSION 1
#define STRESS_PAGES_PER_STEP 64
/*
 * The longest a step sleeps, so that pauses stay quick (a pause cuts a
 * sleep short anyway), and the shortest, so that a rate-limited vCPU
 * writes a batch of pages per wake-up rather than one.
 */
#define STRESS_MAX_SLEEP_NS (10 * 1000 * 1000)
#define STRESS_MIN_SLEEP_NS (1000 * 1000)
/* With a rate limit, time not used for more than this is not made up. */
#define STRESS_RATE_SLACK_NS (20 * 1000 * 1000)
#define STRESS_PAGE_WORDS (TARGET_PAGE_SIZE / sizeof(uint64_t))
/*
 * The fastest rate accepted, far beyond any memory bandwidth.  Any rate
 * above a page per nanosecond per vCPU runs unlimited anyway.
 */
#define STRESS_MAX_RATE (1ULL << 50)

/* A run of the working set inside one RAM block. */
typedef struct StressSegment {
    uint64_t first_page;        /* working-set page index of its start */
    uint64_t pages;
    RAMBlock *rb;
    uint64_t offset;            /* in rb */
} StressSegment;

typedef struct StressVCPU {
    /* The share, in working-set page indices: fixed after setup. */
    uint64_t first;
    uint64_t count;
    /*
     * Written by the vCPU thread while it runs (relaxed atomic stores,
     * so that queries may read them); plain when the vCPUs are paused.
     */
    uint64_t pos;               /* next page of the share, 0..count-1 */
    uint64_t pass;              /* completed passes over the share */
    uint64_t pages_written;
    /* vCPU thread only: rate limiting schedule. */
    int64_t next_write_ns;
    uint64_t scheduled_rate;
} __attribute__((aligned(64))) StressVCPU;

typedef struct GuestStress {
    GuestProgram parent_obj;

    /* properties */
    uint64_t ws;                /* bytes, 0: all RAM */
    uint64_t rate;              /* bytes/s over all vCPUs, 0: unlimited */
    uint64_t seed;

    /* set up */
    uint64_t ws_pages;
    StressSegment *segs;
    unsigned nr_segs;
    StressVCPU *vcpus;
} GuestStress;

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t stress_page_key(uint64_t gpa, uint64_t counter,
                                       uint64_t seed)
{
    return mix64(gpa ^ mix64(counter ^ mix64(seed)));
}

/* Word @i (>= 2) of the page at @gpa holding @counter. */
static inline uint64_t stress_pattern_word(uint64_t key, size_t i)
{
    return mix64(key + i * 0x9e3779b97f4a7c15ULL);
}

static void stress_fill_page(uint64_t *page, uint64_t gpa, uint64_t counter,
                             uint64_t seed)
{
    uint64_t key = stress_page_key(gpa, counter, seed);

    page[0] = counter;
    page[1] = gpa;
    for (size_t i = 2; i < STRESS_PAGE_WORDS; i++) {
        page[i] = stress_pattern_word(key, i);
    }
}

static GuestStress *GUEST_STRESS(GuestProgram *prog)
{
    return container_of(prog, GuestStress, parent_obj);
}

static const StressSegment *stress_segment(GuestStress *s, uint64_t page)
{
    for (unsigned i = 0; i < s->nr_segs; i++) {
        if (page - s->segs[i].first_page < s->segs[i].pages) {
            return &s->segs[i];
        }
    }
    g_assert_not_reached();
}

static void stress_cleanup(GuestProgram *prog)
{
    GuestStress *s = GUEST_STRESS(prog);

    free(s->vcpus);
    s->vcpus = NULL;
    g_free(s->segs);
    s->segs = NULL;
    s->nr_segs = 0;
}

/*
 * The first free page at or after @off in @rb, outside @taken (sorted
 * GuestRanges, may be NULL), and in *@run_end where that free run ends.
 */
static uint64_t stress_next_free(const RAMBlock *rb, uint64_t off,
                                 const GArray *taken, uint64_t *run_end)
{
    *run_end = rb->size;
    for (guint i = 0; taken && i < taken->len; i++) {
        const GuestRange *t = &g_array_index(taken, GuestRange, i);
        uint64_t at = rb->gpa + off;

        if (t->gpa + t->len <= at) {
            continue;
        }
        if (t->gpa <= at) {
            off = MIN(QEMU_ALIGN_UP(t->gpa + t->len - rb->gpa,
                                    TARGET_PAGE_SIZE), rb->size);
            continue;
        }
        *run_end = MAX(off, MIN(rb->size, QEMU_ALIGN_DOWN(t->gpa - rb->gpa,
                                                          TARGET_PAGE_SIZE)));
        break;
    }
    return off;
}

/*
 * Lay the working set out: the first ws bytes of RAM in gpa order (all
 * of it when ws is 0) that lie outside @taken (the other programs' RAM,
 * sorted; NULL: none), and give each vCPU its share.
 */
static bool stress_layout(GuestStress *s, const GArray *taken, Error **errp)
{
    uint64_t want = s->ws ? s->ws >> TARGET_PAGE_BITS : UINT64_MAX;
    uint64_t page = 0;
    unsigned max_segs = 0, nr_vcpus = s->parent_obj.nr_vcpus;

    RAMBLOCK_FOREACH(rb) {
        max_segs += 1 + (taken ? taken->len : 0);
    }
    g_free(s->segs);
    s->segs = g_new0(StressSegment, max_segs);
    s->nr_segs = 0;
    RAMBLOCK_FOREACH(rb) {
        uint64_t off = 0, run_end;

        while (page < want &&
               (off = stress_next_free(rb, off, taken, &run_end)) < run_end) {
            StressSegment *seg = &s->segs[s->nr_segs++];

            seg->first_page = page;
            seg->pages = MIN((run_end - off) >> TARGET_PAGE_BITS,
                             want - page);
            seg->rb = rb;
            seg->offset = off;
            page += seg->pages;
            off += seg->pages << TARGET_PAGE_BITS;
        }
    }
    s->ws_pages = page;
    if (!s->ws_pages) {
        error_setg(errp, "there is no guest RAM %sto work on",
                   taken && taken->len ? "left by the other programs " : "");
        return false;
    }
    for (unsigned i = 0; i < nr_vcpus; i++) {
        StressVCPU *v = &s->vcpus[i];

        v->first = s->ws_pages * i / nr_vcpus;
        v->count = s->ws_pages * (i + 1) / nr_vcpus - v->first;
    }
    return true;
}

static bool stress_setup(GuestProgram *prog, unsigned nr_vcpus, Error **errp)
{
    GuestStress *s = GUEST_STRESS(prog);
    uint64_t ram = ram_total_size();
    void *mem;

    if (s->ws > ram) {
        g_autofree char *ws = size_to_str(s->ws);
        g_autofree char *have = size_to_str(ram);

        error_setg(errp, "ws=%s is larger than guest RAM (%s)", ws, have);
        return false;
    }
    if (posix_memalign(&mem, 64, nr_vcpus * sizeof(StressVCPU))) {
        error_setg(errp, "cannot allocate the state of %u vCPUs", nr_vcpus);
        return false;
    }
    s->vcpus = mem;
    memset(s->vcpus, 0, nr_vcpus * sizeof(StressVCPU));
    /* Until guest_place_programs() knows what the others take. */
    return stress_layout(s, NULL, errp);
}

/*
 * The devices exist, and with them the other programs' RAM: a default
 * working set leaves it alone; an explicit ws stays the first ws bytes
 * (guest_place_programs() refuses it if it overlaps).
 */
static bool stress_place(GuestProgram *prog, const GArray *taken,
                         Error **errp)
{
    GuestStress *s = GUEST_STRESS(prog);

    return s->ws || stress_layout(s, taken, errp);
}

static void stress_write_page(GuestStress *s, StressVCPU *v)
{
    uint64_t page = v->first + v->pos;
    const StressSegment *seg = stress_segment(s, page);
    uint64_t offset = seg->offset +
                      ((page - seg->first_page) << TARGET_PAGE_BITS);

    stress_fill_page((uint64_t *)(seg->rb->host + offset),
                     seg->rb->gpa + offset, v->pass + 1, s->seed);
    ram_block_set_dirty(seg->rb, offset, TARGET_PAGE_SIZE);

    if (v->pos + 1 == v->count) {
        __atomic_store_n(&v->pos, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&v->pass, v->pass + 1, __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(&v->pos, v->pos + 1, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&v->pages_written, v->pages_written + 1,
                     __ATOMIC_RELAXED);
}

/*
 * How many pages the rate limit lets this vCPU write now (at most
 * @budget); 0 after sleeping until the next one is due.
 */
static unsigned stress_rate_budget(GuestStress *s, StressVCPU *v,
                                   unsigned cpu, uint64_t rate,
                                   uint64_t *ns_per_page)
{
    uint64_t vcpu_rate = MAX(rate / s->parent_obj.nr_vcpus, 1);
    int64_t now = get_clock_ns();

    *ns_per_page = TARGET_PAGE_SIZE * 1000000000ULL / vcpu_rate;
    if (*ns_per_page == 0) {
        /* Faster than a page per nanosecond: as good as unlimited. */
        v->scheduled_rate = 0;
        return STRESS_PAGES_PER_STEP;
    }
    if (v->scheduled_rate != vcpu_rate ||
        v->next_write_ns < now - STRESS_RATE_SLACK_NS) {
        /* New rate, or back from a pause: no credit for the past. */
        v->scheduled_rate = vcpu_rate;
        v->next_write_ns = now;
    }
    if (now < v->next_write_ns) {
        vcpu_sleep_ns(cpu, MIN(MAX(v->next_write_ns - now, STRESS_MIN_SLEEP_NS),
                               STRESS_MAX_SLEEP_NS));
        return 0;
    }
    return MIN((uint64_t)STRESS_PAGES_PER_STEP,
               1 + (uint64_t)(now - v->next_write_ns) / *ns_per_page);
}

static void stress_step(GuestProgram *prog, unsigned cpu)
{
    GuestStress *s = GUEST_STRESS(prog);
    StressVCPU *v = &s->vcpus[cpu];
    uint64_t rate = __atomic_load_n(&s->rate, __ATOMIC_RELAXED);
    uint64_t ns_per_page = 0;
    unsigned budget = STRESS_PAGES_PER_STEP;

    if (!v->count) {
        /* More vCPUs than working-set pages: nothing to do here. */
        vcpu_sleep_ns(cpu, STRESS_MAX_SLEEP_NS);
        return;
    }
    if (rate) {
        budget = stress_rate_budget(s, v, cpu, rate, &ns_per_page);
    }
    for (unsigned i = 0; i < budget; i++) {
        stress_write_page(s, v);
    }
    v->next_write_ns += budget * ns_per_page;
}

static void stress_claim_ram(GuestProgram *prog, GArray *ranges)
{
    GuestStress *s = GUEST_STRESS(prog);

    for (unsigned i = 0; i < s->nr_segs; i++) {
        GuestRange r = {
            .gpa = s->segs[i].rb->gpa + s->segs[i].offset,
            .len = s->segs[i].pages << TARGET_PAGE_BITS,
        };
        g_array_append_val(ranges, r);
    }
}

/* A page that must hold counter @expected (>= 1). */
static void stress_check_page(GuestStress *s, GuestVerifyResult *res,
                              const uint64_t *page, uint64_t gpa,
                              uint64_t expected, unsigned cpu)
{
    uint64_t key, diff = 0;

    if (page[0] != expected) {
        uint64_t any = 0;

        for (size_t i = 0; i < STRESS_PAGE_WORDS; i++) {
            any |= page[i];
        }
        if (!any) {
            guest_verify_report_bad(res, gpa, "page 0x%" PRIx64 " (vCPU %u) "
                "is zero, expected counter %" PRIu64, gpa, cpu, expected);
        } else if (page[0] + 1 == expected) {
            guest_verify_report_bad(res, gpa, "page 0x%" PRIx64 " (vCPU %u) "
                "is stale: counter %" PRIu64 ", expected %" PRIu64,
                gpa, cpu, page[0], expected);
        } else {
            guest_verify_report_bad(res, gpa, "page 0x%" PRIx64 " (vCPU %u) "
                "holds counter %" PRIu64 ", expected %" PRIu64,
                gpa, cpu, page[0], expected);
        }
        return;
    }
    if (page[1] != gpa) {
        guest_verify_report_bad(res, gpa, "page 0x%" PRIx64 " (vCPU %u) "
            "holds the page of address 0x%" PRIx64, gpa, cpu, page[1]);
        return;
    }
    key = stress_page_key(gpa, expected, s->seed);
    for (size_t i = 2; i < STRESS_PAGE_WORDS; i++) {
        diff |= page[i] ^ stress_pattern_word(key, i);
    }
    if (!diff) {
        return;
    }
    for (size_t i = 2; i < STRESS_PAGE_WORDS; i++) {
        uint64_t want = stress_pattern_word(key, i);
        size_t byte = 0;

        if (page[i] == want) {
            continue;
        }
        while (((const uint8_t *)&page[i])[byte] ==
               ((const uint8_t *)&want)[byte]) {
            byte++;
        }
        guest_verify_report_bad(res, gpa, "page 0x%" PRIx64 " (vCPU %u, "
            "counter %" PRIu64 ") has a wrong pattern at offset 0x%zx",
            gpa, cpu, expected, i * sizeof(uint64_t) + byte);
        return;
    }
}

/*
 * Pages [first, first+count) of the working set that no vCPU wrote yet
 * must be zero; holes of a memfd are zero without being read (and so
 * without being allocated).
 */
static void stress_verify_unwritten(GuestStress *s, GuestVerifyResult *res,
                                    uint64_t first, uint64_t count,
                                    unsigned cpu)
{
    g_autofree char *what = g_strdup_printf("not written yet by vCPU %u",
                                            cpu);

    while (count) {
        const StressSegment *seg = stress_segment(s, first);
        uint64_t n = MIN(count, seg->first_page + seg->pages - first);
        uint64_t gpa = seg->rb->gpa + seg->offset +
                       ((first - seg->first_page) << TARGET_PAGE_BITS);

        guest_verify_zero_range(res, gpa, n << TARGET_PAGE_BITS, what);
        first += n;
        count -= n;
    }
}

static void stress_verify(GuestProgram *prog, GuestVerifyResult *res)
{
    GuestStress *s = GUEST_STRESS(prog);

    for (unsigned cpu = 0; cpu < prog->nr_vcpus; cpu++) {
        StressVCPU *v = &s->vcpus[cpu];
        /* In the first pass, the pages from pos on hold counter 0. */
        uint64_t written = v->pass ? v->count : v->pos;

        for (uint64_t j = 0; j < written; j++) {
            uint64_t page = v->first + j;
            const StressSegment *seg = stress_segment(s, page);
            uint64_t offset = seg->offset +
                              ((page - seg->first_page) << TARGET_PAGE_BITS);

            stress_check_page(s, res,
                              (const uint64_t *)(seg->rb->host + offset),
                              seg->rb->gpa + offset,
                              v->pass + (j < v->pos), cpu);
        }
        res->pages_checked += written;
        stress_verify_unwritten(s, res, v->first + written,
                                v->count - written, cpu);
    }
}

/*
 * version, vCPU count, working-set pages, seed, then per vCPU: position,
 * passes, pages written.
 */
static void stress_state_save(GuestProgram *prog, GByteArray *out)
{
    GuestStress *s = GUEST_STRESS(prog);

    guest_state_put_header(out, &(GuestStateHeader) {
        .version = STRESS_STATE_VERSION, .count = prog->nr_vcpus,
        .size = s->ws_pages, .seed = s->seed,
    });
    for (unsigned i = 0; i < prog->nr_vcpus; i++) {
        guest_state_put_be64(out, s->vcpus[i].pos);
        guest_state_put_be64(out, s->vcpus[i].pass);
        guest_state_put_be64(out, s->vcpus[i].pages_written);
    }
}

static bool stress_state_load(GuestProgram *prog, const uint8_t *buf,
                              size_t len, Error **errp)
{
    GuestStress *s = GUEST_STRESS(prog);
    GuestStateReader r = { .buf = buf, .len = len, .what = "stress state",
                           .errp = errp };
    GuestStateHeader h;
    uint32_t nr_vcpus;
    uint64_t ws_pages, seed;
    g_autofree uint64_t *vals = NULL;

    if (!guest_state_get_header(&r, STRESS_STATE_VERSION, &h)) {
        return false;
    }
    nr_vcpus = h.count;
    ws_pages = h.size;
    seed = h.seed;
    if (nr_vcpus != prog->nr_vcpus) {
        error_setg(errp, "stress state: made with %u vCPUs, this VM has %u",
                   nr_vcpus, prog->nr_vcpus);
        return false;
    }
    if (ws_pages != s->ws_pages) {
        error_setg(errp, "stress state: working set of %" PRIu64 " pages, "
                   "this VM's is %" PRIu64 " pages", ws_pages, s->ws_pages);
        return false;
    }
    if (seed != s->seed) {
        error_setg(errp, "stress state: seed %" PRIu64 ", this VM's is %"
                   PRIu64, seed, s->seed);
        return false;
    }
    vals = g_new(uint64_t, 3 * (size_t)nr_vcpus);
    for (unsigned i = 0; i < 3 * nr_vcpus; i++) {
        if (!guest_state_get_be64(&r, &vals[i])) {
            return false;
        }
    }
    if (!guest_state_reader_done(&r)) {
        return false;
    }
    for (unsigned i = 0; i < nr_vcpus; i++) {
        uint64_t pos = vals[3 * i], pass = vals[3 * i + 1];
        uint64_t count = s->vcpus[i].count;

        if ((count && pos >= count) || (!count && pos)) {
            error_setg(errp, "stress state: vCPU %u is at page %" PRIu64
                       " of a share of %" PRIu64 " pages", i, pos, count);
            return false;
        }
        if (pass == UINT64_MAX || (!count && pass)) {
            error_setg(errp, "stress state: vCPU %u has an impossible pass "
                       "count %" PRIu64, i, pass);
            return false;
        }
    }
    for (unsigned i = 0; i < nr_vcpus; i++) {
        s->vcpus[i].pos = vals[3 * i];
        s->vcpus[i].pass = vals[3 * i + 1];
        s->vcpus[i].pages_written = vals[3 * i + 2];
        s->vcpus[i].scheduled_rate = 0;
    }
    return true;
}

static void stress_query(GuestProgram *prog, GuestProgramStats *stats)
{
    GuestStress *s = GUEST_STRESS(prog);
    uint64_t passes = UINT64_MAX, pages = 0;

    for (unsigned i = 0; i < prog->nr_vcpus; i++) {
        StressVCPU *v = &s->vcpus[i];

        pages += __atomic_load_n(&v->pages_written, __ATOMIC_RELAXED);
        if (v->count) {
            passes = MIN(passes, __atomic_load_n(&v->pass, __ATOMIC_RELAXED));
        }
    }
    stats->passes = passes == UINT64_MAX ? 0 : passes;
    stats->pages_written = pages;
    stats->bytes_written = pages << TARGET_PAGE_BITS;
}

static const GuestProgramOps stress_ops = {
    .setup = stress_setup,
    .cleanup = stress_cleanup,
    .step = stress_step,
    .claim_ram = stress_claim_ram,
    .place = stress_place,
    .verify = stress_verify,
    .state_save = stress_state_save,
    .state_load = stress_state_load,
    .query = stress_query,
};

static bool stress_realize(Object *obj, Error **errp)
{
    GuestStress *s = (GuestStress *)obj;

    if (!QEMU_IS_ALIGNED(s->ws, TARGET_PAGE_SIZE)) {
        error_setg(errp, "ws=%" PRIu64 " is not a multiple of the page size "
                   "(%llu)", s->ws, TARGET_PAGE_SIZE);
        return false;
    }
    s->parent_obj.ops = &stress_ops;
    return true;
}

static bool stress_check_rate(Object *obj, const Property *prop,
                              const PropValue *val, Error **errp)
{
    if (val->u64 > STRESS_MAX_RATE) {
        error_setg(errp, "%s=%" PRIu64 " is too fast: at most %llu bytes per "
                   "second (1P); use 0 for unlimited", prop->name, val->u64,
                   STRESS_MAX_RATE);
        return false;
    }
    return true;
}

static const Property stress_props[] = {
    DEFINE_PROP("ws", PROP_TYPE_SIZE, GuestStress, ws, "0",
                "working set: the first ws bytes of RAM (0: all the RAM "
                "the other programs leave free)"),
    DEFINE_PROP_RT_CHECK("rate", PROP_TYPE_SIZE, GuestStress, rate, "0",
                         "bytes of pages written per second over all vCPUs "
                         "(0: unlimited; changeable with qom-set)",
                         stress_check_rate),
    DEFINE_PROP("seed", PROP_TYPE_U64, GuestStress, seed, "0",
                "varies the page contents"),
    { 0 }
};

static const ObjectClass stress_class = {
    .name = TYPE_GUEST_STRESS,
    .parent = TYPE_GUEST_PROGRAM,
    .desc = "each vCPU rewrites its share of a working set, page by page, "
            "with a per-page counter and pattern",
    .instance_size = sizeof(GuestStress),
    .props = stress_props,
    .realize = stress_realize,
    .finalize = guest_program_finalize,
};

static void stress_register_types(void)
{
    type_register(&stress_class);
}
type_init(stress_register_types)
