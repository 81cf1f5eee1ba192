/*
 * Slowing the guest down so that RAM converges: auto-converge (the CPU
 * throttle, system/cpu-throttle.h) and dirty-limit (per-vCPU dirty-page
 * rate limits, system/dirtylimit.h), triggered by QEMU's rule.
 *
 * The rule.  Dirty syncs are grouped into periods of at least a second.
 * At the end of each period, the bytes the guest dirtied in it (pages
 * newly dirty at its syncs) are compared with the bytes the migration
 * sent in it (main stream and multifd channels).  When the dirtied bytes
 * exceed throttle-trigger-threshold percent of the sent ones for the
 * second time, the guest is slowed down, and the count starts again.  As
 * in QEMU, a period below the threshold does not reset the count: "the
 * second time" need not be two periods in a row.
 *
 * Slowing down is, with auto-converge, setting the throttle to
 * cpu-throttle-initial, then raising it by cpu-throttle-increment up to
 * max-cpu-throttle (with cpu-throttle-tailslow, by no more than what
 * should bring the dirtied bytes down to the threshold); with
 * dirty-limit, limiting every vCPU to vcpu-dirty-limit MB/s, once (and
 * again if the parameter changes).
 *
 * Both end with the migration, whatever its end: see
 * migration_throttle_cleanup().
 *
 * State: migration thread only, from setup to cleanup.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/trace.h"
#include "migration/options.h"
#include "migration/migration.h"
#include "system/cpu-throttle.h"
#include "system/dirtylimit.h"

TRACE_DEFINE(migration_throttle);

#define THROTTLE_PERIOD_MIN_MS 1000

static struct {
    int64_t period_start_ms;
    uint64_t period_start_bytes;
    uint64_t period_dirty_pages;
    unsigned high_count;            /* periods over the threshold */
    uint64_t dirty_limit_set;       /* MB/s set on every vCPU, 0: none */
} throttle;

void migration_throttle_setup(void)
{
    memset(&throttle, 0, sizeof(throttle));
    throttle.period_start_ms = get_clock_ms();
    throttle.period_start_bytes = migration_transferred_bytes();
    if (migrate_dirty_limit()) {
        dirtylimit_set_period_ms(migrate_vcpu_dirty_limit_period());
    }
}

/* Throttle more (auto-converge). */
static void throttle_guest_down(uint64_t dirty_bytes, uint64_t threshold)
{
    int now = cpu_throttle_get_percentage();
    int inc = migrate_cpu_throttle_increment();

    if (!cpu_throttle_active()) {
        cpu_throttle_set(migrate_cpu_throttle_initial());
        return;
    }
    if (migrate_cpu_throttle_tailslow()) {
        /*
         * The share of time that would bring the dirtied bytes down to
         * the threshold, if they are proportional to the time the vCPUs
         * run: no bigger step than that.
         */
        int cpu_now = 100 - now;
        int cpu_ideal = cpu_now * ((double)threshold / dirty_bytes);

        inc = MIN(inc, cpu_now - cpu_ideal);
    }
    cpu_throttle_set(MIN(now + inc, (int)migrate_max_cpu_throttle()));
}

/* Limit every vCPU (dirty-limit), unless it is done already. */
static void limit_guest_dirty_rate(void)
{
    uint64_t rate = migrate_vcpu_dirty_limit();

    if (throttle.dirty_limit_set == rate && dirtylimit_in_service()) {
        return;
    }
    dirtylimit_set_vcpu(-1, rate);
    throttle.dirty_limit_set = rate;
}

void migration_throttle_after_sync(uint64_t newly_dirty_pages)
{
    int64_t now = get_clock_ms();
    uint64_t sent, dirty, threshold;

    if (migrate_dirty_limit()) {
        /* The parameter may change during the migration. */
        dirtylimit_set_period_ms(migrate_vcpu_dirty_limit_period());
    }
    throttle.period_dirty_pages += newly_dirty_pages;
    if (now <= throttle.period_start_ms + THROTTLE_PERIOD_MIN_MS) {
        return;
    }
    sent = migration_transferred_bytes() - throttle.period_start_bytes;
    dirty = throttle.period_dirty_pages * TARGET_PAGE_SIZE;
    threshold = sent * migrate_throttle_trigger_threshold() / 100;
    trace(migration_throttle, "period of %" PRId64 " ms: %" PRIu64
          " bytes dirtied, %" PRIu64 " sent, threshold %" PRIu64,
          now - throttle.period_start_ms, dirty, sent, threshold);
    throttle.period_start_ms = now;
    throttle.period_start_bytes += sent;
    throttle.period_dirty_pages = 0;

    if (dirty <= threshold || ++throttle.high_count < 2) {
        return;
    }
    throttle.high_count = 0;
    if (migrate_auto_converge()) {
        throttle_guest_down(dirty, threshold);
    } else if (migrate_dirty_limit()) {
        limit_guest_dirty_rate();
    }
}

void migration_throttle_cleanup(void)
{
    cpu_throttle_stop();
    if (throttle.dirty_limit_set) {
        /* As QEMU does at cancel: the limits were the migration's. */
        dirtylimit_cancel_vcpu(-1);
        throttle.dirty_limit_set = 0;
    }
    dirtylimit_set_period_ms(DIRTYLIMIT_DEFAULT_PERIOD_MS);
}

void migration_throttle_query(JsonObject *obj)
{
    if (cpu_throttle_active()) {
        json_object_set_int_member(obj, "cpu-throttle-percentage",
                                   cpu_throttle_get_percentage());
    }
    if (migrate_dirty_limit() && dirtylimit_in_service()) {
        json_object_set_int_member(obj, "dirty-limit-throttle-time-per-round",
                                   dirtylimit_throttle_time_per_round());
        json_object_set_int_member(obj, "dirty-limit-ring-full-time",
                                   dirtylimit_ring_full_time());
    }
}
