/*
 * Per-vCPU dirty-page rate limits and their QMP commands.  See
 * include/system/dirtylimit.h.
 *
 * QEMU's version sleeps a vCPU each time its KVM dirty ring fills, and a
 * thread adjusts that sleep once per period from the rate it measured,
 * which takes several periods to settle (and stops adjusting within
 * 25 MB/s of the limit).  vmig knows each vCPU's count of dirtied pages
 * at every step, so the vCPU itself keeps to its limit exactly, with no
 * controller: its measured rate equals the limit from the first period.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/trace.h"
#include "monitor/qmp.h"
#include "qapi/qapi-types.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "system/cpus.h"
#include "system/dirtylimit.h"

TRACE_DEFINE(dirtylimit_set);

/*
 * One vCPU's limit and measurements, a cache line or more each: its
 * thread writes its part at every step.
 */
typedef struct DirtyLimitVCPU {
    /* Written under dirtylimit_lock; the vCPU reads it relaxed. */
    uint64_t limit;             /* MB/s, 0: none */

    /* The vCPU thread only. */
    uint64_t sched_limit;       /* the limit its schedule is for, 0: none */
    int64_t next_ns;            /* when its pages so far are within limit */
    uint64_t sched_pages;       /* its dirty count at the last look */

    /*
     * The measuring window: written by the vCPU thread under stats_lock,
     * read by queries under it.
     */
    int64_t win_start_ns;       /* 0: no window (not limited) */
    uint64_t win_start_pages;
    uint64_t win_sleep_ns;      /* throttle sleeps in this window */
    uint64_t win_sleeps;
    int64_t last_end_ns;        /* 0: no window closed yet */
    int64_t last_ns;            /* the last closed window: its length, */
    uint64_t last_pages;        /* pages dirtied, */
    uint64_t last_sleep_ns;     /* time asleep */
    uint64_t last_sleeps;       /* and the number of sleeps (rounds) */
} __attribute__((aligned(64))) DirtyLimitVCPU;

static DirtyLimitVCPU limits[VMIG_MAX_VCPUS];
static GMutex dirtylimit_lock;      /* the limits, nr_limited */
static unsigned nr_limited;
static GMutex stats_lock;           /* the windows */
static uint64_t period_ms = DIRTYLIMIT_DEFAULT_PERIOD_MS;  /* atomic */

static int64_t period_ns(void)
{
    return __atomic_load_n(&period_ms, __ATOMIC_RELAXED) * 1000000;
}

/* Pages over @ns as MB/s, to the nearest. */
static uint64_t pages_to_rate(uint64_t pages, int64_t ns)
{
    return ns > 0 ? (uint64_t)((double)pages * TARGET_PAGE_SIZE * 1e9 /
                               ns / MiB + 0.5) : 0;
}

bool dirtylimit_in_service(void)
{
    return __atomic_load_n(&nr_limited, __ATOMIC_RELAXED) > 0;
}

static void dirtylimit_set_one(unsigned cpu, uint64_t rate)
{
    DirtyLimitVCPU *d = &limits[cpu];

    if (!d->limit != !rate) {
        __atomic_store_n(&nr_limited, rate ? nr_limited + 1 : nr_limited - 1,
                         __ATOMIC_RELAXED);
    }
    __atomic_store_n(&d->limit, rate, __ATOMIC_RELAXED);
}

static void dirtylimit_change(int cpu, uint64_t rate)
{
    g_mutex_lock(&dirtylimit_lock);
    for (unsigned i = 0; i < cpus_count(); i++) {
        if (cpu < 0 || (unsigned)cpu == i) {
            dirtylimit_set_one(i, rate);
        }
    }
    g_mutex_unlock(&dirtylimit_lock);
    trace(dirtylimit_set, "vCPU %d: %" PRIu64 " MB/s", cpu, rate);
    /* A vCPU asleep under its old limit looks again. */
    cpus_throttle_kick();
}

void dirtylimit_set_vcpu(int cpu, uint64_t rate)
{
    dirtylimit_change(cpu, MIN(MAX(rate, 1), DIRTYLIMIT_MAX_RATE));
}

void dirtylimit_cancel_vcpu(int cpu)
{
    dirtylimit_change(cpu, 0);
}

void dirtylimit_set_period_ms(uint64_t ms)
{
    __atomic_store_n(&period_ms, MIN(MAX(ms, 1), 1000), __ATOMIC_RELAXED);
}

/* vCPU thread: start a measuring window, closing the current one. */
static void window_next(DirtyLimitVCPU *d, int64_t now, uint64_t pages,
                        bool close)
{
    g_mutex_lock(&stats_lock);
    if (close) {
        d->last_end_ns = now;
        d->last_ns = now - d->win_start_ns;
        d->last_pages = pages - d->win_start_pages;
        d->last_sleep_ns = d->win_sleep_ns;
        d->last_sleeps = d->win_sleeps;
    }
    d->win_start_ns = now;
    d->win_start_pages = pages;
    d->win_sleep_ns = d->win_sleeps = 0;
    g_mutex_unlock(&stats_lock);
}

bool dirtylimit_vcpu_throttle(unsigned cpu)
{
    DirtyLimitVCPU *d = &limits[cpu];
    uint64_t limit = __atomic_load_n(&d->limit, __ATOMIC_RELAXED);
    uint64_t pages, delta;
    int64_t now, period, slept;

    if (!limit) {
        if (d->sched_limit) {
            d->sched_limit = 0;
            g_mutex_lock(&stats_lock);
            d->win_start_ns = d->last_end_ns = 0;
            g_mutex_unlock(&stats_lock);
        }
        return false;
    }
    now = get_clock_ns();
    pages = vcpu_dirty_pages(cpu);
    period = period_ns();
    if (d->sched_limit != limit) {
        /* A new limit starts now, with no debt from before. */
        if (!d->sched_limit) {
            window_next(d, now, pages, false);
        }
        d->sched_limit = limit;
        d->next_ns = now;
        d->sched_pages = pages;
        return false;
    }
    if (now - d->win_start_ns >= period) {
        window_next(d, now, pages, true);
    }
    /* Each page dirtied takes one page's share of the limit's time. */
    delta = MIN(pages - d->sched_pages, 1ULL << 20);
    d->next_ns += delta * TARGET_PAGE_SIZE * 1000000000ULL / (limit * MiB);
    d->sched_pages = pages;
    /* A quiet vCPU may catch up, for one period at most. */
    d->next_ns = MAX(d->next_ns, now - period);
    if (d->next_ns <= now) {
        return false;
    }
    slept = vcpu_throttle_sleep(cpu, d->next_ns - now);
    g_mutex_lock(&stats_lock);
    d->win_sleep_ns += slept;
    d->win_sleeps++;
    g_mutex_unlock(&stats_lock);
    return true;
}

/*
 * The last closed window of vCPU @cpu, or, when it is older than two
 * periods (a paused VM closes none), the window still open.  Under
 * stats_lock.
 */
static bool window_get(unsigned cpu, int64_t now, int64_t *ns,
                       uint64_t *pages, uint64_t *sleep_ns, uint64_t *sleeps)
{
    DirtyLimitVCPU *d = &limits[cpu];

    if (d->last_end_ns && now - d->last_end_ns < 2 * period_ns()) {
        *ns = d->last_ns;
        *pages = d->last_pages;
        *sleep_ns = d->last_sleep_ns;
        *sleeps = d->last_sleeps;
        return true;
    }
    if (!d->win_start_ns) {
        return false;
    }
    *ns = now - d->win_start_ns;
    *pages = vcpu_dirty_pages(cpu) - d->win_start_pages;
    *sleep_ns = d->win_sleep_ns;
    *sleeps = d->win_sleeps;
    return true;
}

bool dirtylimit_vcpu_info(unsigned cpu, DirtyLimitVcpuInfo *info)
{
    int64_t now = get_clock_ns(), ns;
    uint64_t pages, sleep_ns, sleeps;

    if (cpu >= cpus_count()) {
        return false;
    }
    info->limit_rate = __atomic_load_n(&limits[cpu].limit, __ATOMIC_RELAXED);
    info->current_rate = 0;
    g_mutex_lock(&stats_lock);
    if (window_get(cpu, now, &ns, &pages, &sleep_ns, &sleeps)) {
        info->current_rate = pages_to_rate(pages, ns);
    }
    g_mutex_unlock(&stats_lock);
    return true;
}

uint64_t dirtylimit_throttle_time_per_round(void)
{
    int64_t now = get_clock_ns(), ns;
    uint64_t pages, sleep_ns, sleeps, longest = 0;

    g_mutex_lock(&stats_lock);
    for (unsigned i = 0; i < cpus_count(); i++) {
        if (window_get(i, now, &ns, &pages, &sleep_ns, &sleeps) && sleeps) {
            longest = MAX(longest, sleep_ns / sleeps / 1000);
        }
    }
    g_mutex_unlock(&stats_lock);
    return longest;
}

uint64_t dirtylimit_ring_full_time(void)
{
    int64_t now = get_clock_ns(), ns;
    uint64_t pages, sleep_ns, sleeps, sum = 0, n = 0;

    g_mutex_lock(&stats_lock);
    for (unsigned i = 0; i < cpus_count(); i++) {
        if (window_get(i, now, &ns, &pages, &sleep_ns, &sleeps) && sleeps &&
            (uint64_t)ns > sleep_ns) {
            sum += (ns - sleep_ns) / sleeps / 1000;
            n++;
        }
    }
    g_mutex_unlock(&stats_lock);
    return n ? sum / n : 0;
}

/* ---- QMP ---- */

/*
 * As in QEMU: while a migration with capability dirty-limit runs and has
 * set limits, they are the migration's.
 */
static bool dirtylimit_owned_by_migration(const char *what, Error **errp)
{
    if (migration_is_active() && migrate_dirty_limit() &&
        dirtylimit_in_service()) {
        error_setg(errp, "cannot %s the dirty page rate limit while a "
                   "migration with capability 'dirty-limit' runs: the "
                   "migration sets the limits until it ends", what);
        return true;
    }
    return false;
}

/* The optional cpu-index: -1 when absent (every vCPU). */
static bool arg_cpu_index(bool has_cpu, int64_t cpu_index, int64_t *cpu,
                          Error **errp)
{
    if (!has_cpu) {
        *cpu = -1;
        return true;
    }
    if (cpu_index < 0 || cpu_index >= cpus_count()) {
        error_setg(errp, "Parameter 'cpu-index': there is no vCPU %" PRId64
                   " (the VM has %u, numbered from 0)", cpu_index,
                   cpus_count());
        return false;
    }
    *cpu = cpu_index;
    return true;
}

void qmp_set_vcpu_dirty_limit(const QapiSetVcpuDirtyLimitArgs *args,
                              JsonNode **ret, Error **errp)
{
    int64_t cpu, rate = args->dirty_rate;

    if (!arg_cpu_index(args->has_cpu_index, args->cpu_index, &cpu, errp)) {
        return;
    }
    if (rate < 0 || (uint64_t)rate > DIRTYLIMIT_MAX_RATE) {
        error_setg(errp, "Parameter 'dirty-rate' expects a rate in MB/s "
                   "from 0 (no limit) to %llu", DIRTYLIMIT_MAX_RATE);
        return;
    }
    if (dirtylimit_owned_by_migration("set", errp)) {
        return;
    }
    /* As in QEMU, a rate of 0 lifts the limit. */
    if (rate) {
        dirtylimit_set_vcpu(cpu, rate);
    } else {
        dirtylimit_cancel_vcpu(cpu);
    }
}

void qmp_cancel_vcpu_dirty_limit(const QapiCancelVcpuDirtyLimitArgs *args,
                                 JsonNode **ret, Error **errp)
{
    int64_t cpu;

    if (!arg_cpu_index(args->has_cpu_index, args->cpu_index, &cpu, errp) ||
        dirtylimit_owned_by_migration("cancel", errp)) {
        return;
    }
    dirtylimit_cancel_vcpu(cpu);
}

/* [{cpu-index, limit-rate, current-rate}] for the limited vCPUs. */
void qmp_query_vcpu_dirty_limit(JsonNode **ret, Error **errp)
{
    JsonArray *list = json_array_new();

    for (unsigned i = 0; i < cpus_count(); i++) {
        DirtyLimitVcpuInfo info;
        JsonObject *obj;

        if (!dirtylimit_vcpu_info(i, &info) || !info.limit_rate) {
            continue;
        }
        obj = json_object_new();
        json_object_set_int_member(obj, "cpu-index", i);
        json_object_set_int_member(obj, "limit-rate", info.limit_rate);
        json_object_set_int_member(obj, "current-rate", info.current_rate);
        json_array_add_object_element(list, obj);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
}
