/*
 * Measuring the guest's dirty-page rate up front: QMP calc-dirty-rate
 * and query-dirty-rate, with QEMU's arguments, limits and result fields.
 *
 * Three modes, as in QEMU:
 *   page-sampling  hash sample-pages random pages per GiB of each RAM
 *                  block, hash them again after calc-time, and scale the
 *                  share that changed to the block's size;
 *   dirty-bitmap   count the pages the dirty log finds newly dirty over
 *                  calc-time (each page once, however often written);
 *   dirty-ring     per vCPU, from its count of pages dirtied
 *                  (vcpu_dirty_counter): QEMU reads KVM's dirty ring, vmig
 *                  its own per-vCPU accounting.  Each write of a page
 *                  counts, so a vCPU that rewrites a page counts it again,
 *                  as a dirty ring does once its entries are harvested.
 *
 * dirty-bitmap uses the dirty log, which has one consumer: it and an
 * outgoing migration exclude each other, each refusing to start while
 * the other runs.
 *
 * The measurement runs on the main loop: the command takes the first
 * sample, a timer takes the second.  Main thread, BQL.
 */
#include "qemu/osdep.h"
#include "migration/trace.h"
#include "qemu/cutils.h"
#include "monitor/qmp.h"
#include "qapi/qapi-types.h"
#include "system/cpus.h"
#include "system/ramblock.h"
#include "migration/migration.h"

/* QEMU's bounds and default. */
#define DIRTYRATE_MIN_CALC_TIME_MS 50
#define DIRTYRATE_MAX_CALC_TIME_MS 60000
#define DIRTYRATE_MIN_SAMPLE_PAGES 128
#define DIRTYRATE_MAX_SAMPLE_PAGES 4096
#define DIRTYRATE_DEFAULT_SAMPLE_PAGES 512
/* Blocks smaller than this are not sampled (QEMU's MIN_RAMBLOCK_SIZE). */
#define DIRTYRATE_MIN_BLOCK_SIZE (128 * KiB)

typedef enum DirtyRateStatus {
    DIRTY_RATE_STATUS_UNSTARTED,
    DIRTY_RATE_STATUS_MEASURING,
    DIRTY_RATE_STATUS_MEASURED,
} DirtyRateStatus;

typedef enum DirtyRateMode {
    DIRTY_RATE_MODE_PAGE_SAMPLING,
    DIRTY_RATE_MODE_DIRTY_BITMAP,
    DIRTY_RATE_MODE_DIRTY_RING,
    DIRTY_RATE_MODE__MAX,
} DirtyRateMode;

static const char *const status_names[] = {
    [DIRTY_RATE_STATUS_UNSTARTED] = "unstarted",
    [DIRTY_RATE_STATUS_MEASURING] = "measuring",
    [DIRTY_RATE_STATUS_MEASURED] = "measured",
};

static const char *const mode_names[DIRTY_RATE_MODE__MAX] = {
    [DIRTY_RATE_MODE_PAGE_SAMPLING] = "page-sampling",
    [DIRTY_RATE_MODE_DIRTY_BITMAP] = "dirty-bitmap",
    [DIRTY_RATE_MODE_DIRTY_RING] = "dirty-ring",
};

typedef struct DirtyRateSample {
    RAMBlock *rb;
    uint64_t page;
    uint64_t hash;
} DirtyRateSample;

/* Main thread, BQL. */
static struct {
    /* The last measurement, as query-dirty-rate shows it. */
    DirtyRateStatus status;
    DirtyRateMode mode;
    int64_t start_time;         /* s since the epoch */
    int64_t calc_time_ms;       /* asked for, then measured */
    uint64_t sample_pages;      /* per GiB */
    uint64_t dirty_rate;        /* MB/s, once measured */
    GArray *vcpu_rates;         /* uint64_t MB/s per vCPU (dirty-ring) */

    /* While measuring. */
    guint timer;
    int64_t start_ns;
    GArray *samples;            /* DirtyRateSample (page-sampling) */
    uint64_t sampled_mib;       /* the sampled blocks' size */
    GArray *vcpu_start;         /* uint64_t dirty pages (dirty-ring) */
    bool dirty_log_held;        /* dirty-bitmap */
} dr;

/*
 * @pages over @ms as MB/s (MiB/s, as QEMU reports it), to the nearest
 * (QEMU rounds down).
 */
static uint64_t rate_of(uint64_t pages, int64_t ms)
{
    return ms > 0 ? (uint64_t)((double)pages * TARGET_PAGE_SIZE * 1000 /
                               ((double)ms * MiB) + 0.5) : 0;
}

/* A 64-bit hash of a page, to tell whether it changed. */
static uint64_t page_hash(const uint8_t *page)
{
    const uint64_t *w = (const uint64_t *)page;
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < TARGET_PAGE_SIZE / sizeof(*w); i++) {
        h = (h ^ w[i]) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}

static void sampling_start(void)
{
    g_autoptr(GRand) rand = g_rand_new();

    dr.samples = g_array_new(FALSE, FALSE, sizeof(DirtyRateSample));
    dr.sampled_mib = 0;
    RAMBLOCK_FOREACH(rb) {
        uint64_t n = (rb->size * dr.sample_pages) >> 30;

        if (rb->size < DIRTYRATE_MIN_BLOCK_SIZE || !n) {
            continue;
        }
        dr.sampled_mib += rb->size / MiB;
        for (uint64_t i = 0; i < n; i++) {
            DirtyRateSample s = { .rb = rb };

            s.page = g_rand_int_range(rand, 0, MIN(rb->pages, G_MAXINT32));
            s.hash = page_hash(rb->host + (s.page << TARGET_PAGE_BITS));
            g_array_append_val(dr.samples, s);
        }
    }
}

/* The share of samples that changed, scaled to the sampled RAM. */
static uint64_t sampling_finish(int64_t ms)
{
    uint64_t changed = 0;

    for (guint i = 0; i < dr.samples->len; i++) {
        DirtyRateSample *s = &g_array_index(dr.samples, DirtyRateSample, i);

        changed += page_hash(s->rb->host + (s->page << TARGET_PAGE_BITS)) !=
                   s->hash;
    }
    if (!dr.samples->len || ms <= 0) {
        return 0;
    }
    return (uint64_t)((double)changed * dr.sampled_mib * 1000 /
                      ((double)dr.samples->len * ms) + 0.5);
}

/* The pages the dirty log found since it started; stops it. */
static uint64_t bitmap_finish(void)
{
    Error *err = NULL;
    uint64_t pages = 0;

    if (!dirty_log_sync(&err)) {
        warn_report("calc-dirty-rate: %s (counting the guest's own writes "
                    "only)", error_get_pretty(err));
        error_free(err);
    }
    RAMBLOCK_FOREACH(rb) {
        g_autofree unsigned long *bits = bitmap_new(rb->pages);

        pages += ram_block_dirty_sync(rb, bits);
    }
    dirty_log_stop();
    dr.dirty_log_held = false;
    return pages;
}

static void ring_finish(int64_t ms)
{
    dr.dirty_rate = 0;
    for (guint i = 0; i < dr.vcpu_start->len; i++) {
        uint64_t rate = rate_of(vcpu_dirty_pages(i) -
                                g_array_index(dr.vcpu_start, uint64_t, i), ms);

        g_array_append_val(dr.vcpu_rates, rate);
        dr.dirty_rate += rate;
    }
}

/* Free what a measurement holds; stop the dirty log if it has it. */
static void dirtyrate_release(void)
{
    if (dr.timer) {
        g_source_remove(dr.timer);
        dr.timer = 0;
    }
    if (dr.dirty_log_held) {
        dirty_log_stop();
        dr.dirty_log_held = false;
    }
    g_clear_pointer(&dr.samples, g_array_unref);
    g_clear_pointer(&dr.vcpu_start, g_array_unref);
}

static gboolean dirtyrate_finish(gpointer opaque)
{
    int64_t ms = (get_clock_ns() - dr.start_ns) / 1000000;

    dr.timer = 0;
    dr.calc_time_ms = ms;
    switch (dr.mode) {
    case DIRTY_RATE_MODE_PAGE_SAMPLING:
        dr.dirty_rate = sampling_finish(ms);
        break;
    case DIRTY_RATE_MODE_DIRTY_BITMAP:
        dr.dirty_rate = rate_of(bitmap_finish(), ms);
        break;
    default:
        ring_finish(ms);
        break;
    }
    dirtyrate_release();
    dr.status = DIRTY_RATE_STATUS_MEASURED;
    trace(dirtyrate_finish, "%" PRIu64 " MB/s after %" PRId64 " ms",
          (uint64_t)dr.dirty_rate, ms);
    return G_SOURCE_REMOVE;
}

bool dirtyrate_holds_dirty_log(Error **errp)
{
    if (dr.dirty_log_held) {
        error_setg(errp, "calc-dirty-rate is measuring in mode dirty-bitmap, "
                   "which uses the dirty log: wait until query-dirty-rate "
                   "says 'measured'");
        return true;
    }
    return false;
}

void dirtyrate_shutdown(void)
{
    dirtyrate_release();
    g_clear_pointer(&dr.vcpu_rates, g_array_unref);
}

/* ---- QMP ---- */

/*
 * calc-dirty-rate {calc-time, calc-time-unit?, sample-pages?, mode?}:
 * starts a measurement and returns at once.
 */
G_STATIC_ASSERT((int)DIRTY_RATE_MODE_PAGE_SAMPLING ==
                QAPI_DIRTY_RATE_MEASURE_MODE_PAGE_SAMPLING);
G_STATIC_ASSERT((int)DIRTY_RATE_MODE_DIRTY_BITMAP ==
                QAPI_DIRTY_RATE_MEASURE_MODE_DIRTY_BITMAP);
G_STATIC_ASSERT((int)DIRTY_RATE_MODE_DIRTY_RING ==
                QAPI_DIRTY_RATE_MEASURE_MODE_DIRTY_RING);

void qmp_calc_dirty_rate(const QapiCalcDirtyRateArgs *args, JsonNode **ret,
                         Error **errp)
{
    DirtyRateMode mode = args->has_mode ? (DirtyRateMode)args->mode
                                        : DIRTY_RATE_MODE_PAGE_SAMPLING;
    int64_t sample_pages = args->has_sample_pages
                           ? args->sample_pages
                           : DIRTYRATE_DEFAULT_SAMPLE_PAGES;
    bool in_ms = args->has_calc_time_unit &&
                 args->calc_time_unit == QAPI_TIME_UNIT_MILLISECOND;
    int64_t calc_time = args->calc_time, calc_time_ms;

    if (dr.status == DIRTY_RATE_STATUS_MEASURING) {
        error_setg(errp, "the dirty rate is already being measured "
                   "(query-dirty-rate says when it is done)");
        return;
    }
    /* Bounded first, so that seconds cannot overflow into ms. */
    calc_time_ms = MIN(MAX(calc_time, 0), DIRTYRATE_MAX_CALC_TIME_MS + 1);
    if (!in_ms) {
        calc_time_ms *= 1000;
    }
    if (calc_time_ms < DIRTYRATE_MIN_CALC_TIME_MS ||
        calc_time_ms > DIRTYRATE_MAX_CALC_TIME_MS) {
        error_setg(errp, "Parameter 'calc-time' is out of range: %" PRId64
                   " %s; it must be from %d ms to %d ms", calc_time,
                   in_ms ? "ms" : "s", DIRTYRATE_MIN_CALC_TIME_MS,
                   DIRTYRATE_MAX_CALC_TIME_MS);
        return;
    }
    if (args->has_sample_pages) {
        if (mode != DIRTY_RATE_MODE_PAGE_SAMPLING) {
            error_setg(errp, "Parameter 'sample-pages' is used only in mode "
                       "page-sampling, not %s", mode_names[mode]);
            return;
        }
        if (sample_pages < DIRTYRATE_MIN_SAMPLE_PAGES ||
            sample_pages > DIRTYRATE_MAX_SAMPLE_PAGES) {
            error_setg(errp, "Parameter 'sample-pages' is out of range: it "
                       "must be from %d to %d (pages per GiB)",
                       DIRTYRATE_MIN_SAMPLE_PAGES,
                       DIRTYRATE_MAX_SAMPLE_PAGES);
            return;
        }
    }
    dirtyrate_release();
    if (mode == DIRTY_RATE_MODE_DIRTY_BITMAP) {
        if (migration_is_active()) {
            error_setg(errp, "mode dirty-bitmap needs the dirty log, which "
                       "the running migration uses: use mode dirty-ring (per "
                       "vCPU) or page-sampling");
            return;
        }
        if (!dirty_log_start(errp)) {
            error_prepend(errp, "mode dirty-bitmap: ");
            return;
        }
        dr.dirty_log_held = true;
    }

    dr.status = DIRTY_RATE_STATUS_MEASURING;
    dr.mode = mode;
    dr.calc_time_ms = in_ms ? calc_time : calc_time * 1000;
    dr.sample_pages = sample_pages;
    dr.dirty_rate = 0;
    g_clear_pointer(&dr.vcpu_rates, g_array_unref);
    dr.vcpu_rates = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    dr.start_time = g_get_real_time() / G_USEC_PER_SEC;
    if (mode == DIRTY_RATE_MODE_PAGE_SAMPLING) {
        sampling_start();
    } else if (mode == DIRTY_RATE_MODE_DIRTY_RING) {
        dr.vcpu_start = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        for (unsigned i = 0; i < cpus_count(); i++) {
            uint64_t pages = vcpu_dirty_pages(i);

            g_array_append_val(dr.vcpu_start, pages);
        }
    }
    dr.start_ns = get_clock_ns();
    trace(dirtyrate_start, "mode %u for %" PRId64 " ms", dr.mode,
          (int64_t)dr.calc_time_ms);
    dr.timer = g_timeout_add(dr.calc_time_ms, dirtyrate_finish, NULL);
}

/*
 * query-dirty-rate {calc-time-unit?}: {status, start-time, calc-time,
 * calc-time-unit, sample-pages, mode[, dirty-rate][, vcpu-dirty-rate]}.
 */
void qmp_query_dirty_rate(const QapiQueryDirtyRateArgs *args, JsonNode **ret,
                          Error **errp)
{
    bool measured = dr.status == DIRTY_RATE_STATUS_MEASURED;
    bool in_ms = args->has_calc_time_unit &&
                 args->calc_time_unit == QAPI_TIME_UNIT_MILLISECOND;
    JsonObject *obj = json_object_new();

    json_object_set_string_member(obj, "status", status_names[dr.status]);
    json_object_set_int_member(obj, "start-time", dr.start_time);
    json_object_set_int_member(obj, "calc-time", in_ms ? dr.calc_time_ms :
                               dr.calc_time_ms / 1000);
    json_object_set_string_member(obj, "calc-time-unit",
                                  in_ms ? "millisecond" : "second");
    /* As QEMU: 0 once measured in a mode that does not sample. */
    json_object_set_int_member(obj, "sample-pages",
                               measured && dr.mode !=
                               DIRTY_RATE_MODE_PAGE_SAMPLING ? 0 :
                               dr.sample_pages);
    json_object_set_string_member(obj, "mode", mode_names[dr.mode]);
    if (measured) {
        json_object_set_int_member(obj, "dirty-rate", dr.dirty_rate);
    }
    if (measured && dr.mode == DIRTY_RATE_MODE_DIRTY_RING) {
        JsonArray *list = json_array_new();

        for (guint i = 0; i < dr.vcpu_rates->len; i++) {
            JsonObject *vcpu = json_object_new();

            json_object_set_int_member(vcpu, "id", i);
            json_object_set_int_member(vcpu, "dirty-rate",
                g_array_index(dr.vcpu_rates, uint64_t, i));
            json_array_add_object_element(list, vcpu);
        }
        json_object_set_array_member(obj, "vcpu-dirty-rate", list);
    }
    *ret = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(*ret, obj);
}
