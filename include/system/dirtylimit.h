/*
 * Per-vCPU dirty-page rate limits: QMP set-vcpu-dirty-limit,
 * cancel-vcpu-dirty-limit and query-vcpu-dirty-limit, and the
 * dirty-limit migration capability, which sets them on every vCPU when
 * RAM does not converge.
 *
 * Rates are in MB/s, meaning MiB per second, as QEMU's.  A limited vCPU
 * is measured from its own count of pages dirtied (vcpu_dirty_counter
 * in system/ramblock.h, where QEMU reads KVM's dirty ring) and paused at
 * its safe point, between two steps, for as long as it is ahead of its
 * limit: every page it dirties moves its "next allowed" time on by one
 * page's share of the limit, and it sleeps until that time.  A vCPU that
 * was quiet may catch up for at most one measuring period.
 *
 * The measuring period (1000 ms, or the migration parameter
 * x-vcpu-dirty-limit-period while a migration with dirty-limit runs)
 * is the window over which each limited vCPU's current rate and its
 * throttle figures are reported.
 *
 * Locks: the limits change with the BQL (QMP) or from the migration
 * thread, under dirtylimit's own lock; each vCPU reads its limit with a
 * relaxed load at every safe point.
 */
#ifndef SYSTEM_DIRTYLIMIT_H
#define SYSTEM_DIRTYLIMIT_H

#include "qemu/osdep.h"

/* The period outside migration (QEMU's DIRTYLIMIT_CALC_TIME_MS). */
#define DIRTYLIMIT_DEFAULT_PERIOD_MS 1000
/* The largest limit accepted: far beyond any memory bandwidth. */
#define DIRTYLIMIT_MAX_RATE (1ULL << 30)

/* Whether any vCPU has a limit. */
bool dirtylimit_in_service(void);
/*
 * Limit vCPU @cpu (all of them when negative) to @rate MB/s (1 to
 * DIRTYLIMIT_MAX_RATE; the caller checks the index and the rate).
 */
void dirtylimit_set_vcpu(int cpu, uint64_t rate);
/* Lift the limit of vCPU @cpu (all of them when negative). */
void dirtylimit_cancel_vcpu(int cpu);
/*
 * The measuring period in ms (1 to 1000), DIRTYLIMIT_DEFAULT_PERIOD_MS
 * unless a migration sets its own.
 */
void dirtylimit_set_period_ms(uint64_t ms);

typedef struct DirtyLimitVcpuInfo {
    uint64_t limit_rate;        /* MB/s, 0: not limited */
    uint64_t current_rate;      /* MB/s over the last period */
} DirtyLimitVcpuInfo;

/* False when vCPU @cpu does not exist. */
bool dirtylimit_vcpu_info(unsigned cpu, DirtyLimitVcpuInfo *info);

/*
 * For query-migrate, over the last period.  A "round" is vmig's
 * equivalent of QEMU's dirty ring filling up: the run of a limited vCPU
 * between two of its throttle sleeps.  Both in microseconds.
 *
 * The longest average sleep per round of any limited vCPU
 * (dirty-limit-throttle-time-per-round).
 */
uint64_t dirtylimit_throttle_time_per_round(void);
/*
 * How long limited vCPUs ran per round, on average over them
 * (dirty-limit-ring-full-time): the time they take to reach their limit.
 */
uint64_t dirtylimit_ring_full_time(void);

/*
 * On the thread of vCPU @cpu, at its safe point: sleep while it is ahead
 * of its limit.  Returns true when it slept, so that the caller looks
 * for a pause request before the next step.
 */
bool dirtylimit_vcpu_throttle(unsigned cpu);

#endif
