/*
 * The CPU throttle of auto-converge.  See include/system/cpu-throttle.h.
 *
 * QEMU fires a timer per slice that queues the sleep on each vCPU; here
 * each vCPU thread keeps its own slice and sleeps at the first safe point
 * after it ends.  Steps are bounded (well under a millisecond), so a
 * slice overruns by at most one step.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/trace.h"
#include "system/cpus.h"
#include "system/cpu-throttle.h"

TRACE_DEFINE(cpu_throttle_set);

/* 0 (off) or 1..99; written by the migration core, read by the vCPUs. */
static int throttle_percentage;

/*
 * Per vCPU, its thread only: when its current running slice began, 0
 * when it has none (no throttle).
 */
static int64_t slice_start_ns[VMIG_MAX_VCPUS];

void cpu_throttle_set(int pct)
{
    pct = MAX(MIN(pct, CPU_THROTTLE_PCT_MAX), CPU_THROTTLE_PCT_MIN);
    __atomic_store_n(&throttle_percentage, pct, __ATOMIC_RELAXED);
    trace(cpu_throttle_set, "%d%%", pct);
    cpus_throttle_kick();
}

void cpu_throttle_stop(void)
{
    if (__atomic_exchange_n(&throttle_percentage, 0, __ATOMIC_RELAXED)) {
        trace(cpu_throttle_set, "off");
        cpus_throttle_kick();
    }
}

bool cpu_throttle_active(void)
{
    return cpu_throttle_get_percentage() > 0;
}

int cpu_throttle_get_percentage(void)
{
    return __atomic_load_n(&throttle_percentage, __ATOMIC_RELAXED);
}

bool cpu_throttle_vcpu(unsigned cpu)
{
    int pct = cpu_throttle_get_percentage();
    int64_t now;

    if (!pct) {
        slice_start_ns[cpu] = 0;
        return false;
    }
    now = get_clock_ns();
    if (!slice_start_ns[cpu]) {
        slice_start_ns[cpu] = now;
        return false;
    }
    if (now - slice_start_ns[cpu] < CPU_THROTTLE_TIMESLICE_NS) {
        return false;
    }
    vcpu_throttle_sleep(cpu, (int64_t)CPU_THROTTLE_TIMESLICE_NS * pct /
                             (100 - pct));
    slice_start_ns[cpu] = get_clock_ns();
    return true;
}
