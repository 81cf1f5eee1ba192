/*
 * The CPU throttle (auto-converge): each vCPU runs for a time slice, then
 * sleeps so that it runs only (100 - percentage)% of the time.
 *
 * As in QEMU, the slice is CPU_THROTTLE_TIMESLICE_NS of running, followed
 * by a sleep of slice * pct / (100 - pct): at 99% a vCPU runs 10 ms and
 * sleeps 990 ms.  The migration core sets and stops it (BQL or migration
 * thread); vCPU threads read the percentage with a relaxed load at every
 * safe point.
 */
#ifndef SYSTEM_CPU_THROTTLE_H
#define SYSTEM_CPU_THROTTLE_H

#include "qemu/osdep.h"

#define CPU_THROTTLE_PCT_MIN 1
#define CPU_THROTTLE_PCT_MAX 99
#define CPU_THROTTLE_TIMESLICE_NS (10 * 1000 * 1000)

/*
 * Throttle every vCPU to (100 - @pct)% (clamped to 1..99); vCPUs asleep
 * for the old percentage start afresh with the new one.  Any thread.
 */
void cpu_throttle_set(int pct);
/* Let every vCPU run at full speed again, at once.  Any thread. */
void cpu_throttle_stop(void);
bool cpu_throttle_active(void);
/* The percentage set, 0 when off. */
int cpu_throttle_get_percentage(void);

/*
 * On the thread of vCPU @cpu, at its safe point: when its slice is over,
 * sleep its share (vcpu_throttle_sleep()).  Returns true when it slept,
 * so that the caller looks for a pause request before the next step.
 */
bool cpu_throttle_vcpu(unsigned cpu);

#endif
