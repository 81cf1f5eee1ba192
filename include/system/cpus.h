/*
 * vCPU threads.  Each runs the guest programs' step functions in a loop
 * ("CPU N/vmig"), checking at every safe point (between steps) whether it
 * must pause, and whether a throttle wants it to sleep first.  Steps are
 * bounded (a few hundred microseconds of work, or a sleep that a pause
 * request cuts short), so a pause is quick.
 *
 * vCPU threads never take the BQL to run; the pause handshake uses its
 * own lock.  pause_all_vcpus() / resume_all_vcpus() are called with the
 * BQL held (run state changes, x-guest-verify), which is what serializes
 * them against each other.
 */
#ifndef SYSTEM_CPUS_H
#define SYSTEM_CPUS_H

#include "qemu/osdep.h"
#include "qemu/error.h"

#define VMIG_MAX_VCPUS 256

/*
 * Set the guest programs up for @smp vCPUs (idle when none was created,
 * see guest.h) and create @smp vCPU threads, paused.
 */
bool cpus_init(unsigned smp, Error **errp);
/* The number of vCPUs (0 before cpus_init). */
unsigned cpus_count(void);
/*
 * Stop every vCPU at a safe point and wait until all are parked.  On
 * return, every write a vCPU made is visible to the caller, and no vCPU
 * touches guest RAM or program state until resume_all_vcpus().  Does
 * nothing when they are parked already.  BQL held.
 */
void pause_all_vcpus(void);
/* Let the vCPUs run again.  BQL held. */
void resume_all_vcpus(void);
/* True when every vCPU is parked (also before the VM first starts). */
bool all_vcpus_paused(void);
/*
 * The index of the vCPU whose thread is @tid (a kernel thread id, as
 * userfaultfd reports the thread that faulted), or -1.  Any thread.
 */
int cpus_index_of_tid(pid_t tid);
/* Stop and join the vCPU threads (at exit). */
void cpus_cleanup(void);

/*
 * For guest programs, on a vCPU thread: sleep up to @ns, returning early
 * when the vCPU is asked to pause or exit.  Programs use it instead of
 * sleeping so that a waiting vCPU parks at once.
 */
void vcpu_sleep_ns(unsigned cpu, int64_t ns);

/*
 * For throttles (cpu-throttle.h, dirtylimit.h), on the thread of vCPU
 * @cpu at its safe point: sleep up to @ns instead of running the next
 * step.  Returns early when the vCPU must pause or exit, or after
 * cpus_throttle_kick().  Returns the time slept, which is added to the
 * vCPU's throttle_ns.
 */
int64_t vcpu_throttle_sleep(unsigned cpu, int64_t ns);
/*
 * A throttle changed (any thread): wake every vCPU that sleeps for one,
 * so that it looks again at once.
 */
void cpus_throttle_kick(void);

/* What a vCPU did, for queries (any thread; relaxed reads). */
typedef struct VCPUStats {
    /* pages it wrote through the guest memory API (vcpu_dirty_counter) */
    uint64_t dirty_pages;
    /*
     * the longest time between the end of one of its steps and the start
     * of the next (throttle sleeps, pauses, waiting for a core), since
     * the vCPUs started or since cpus_reset_stall()
     */
    uint64_t longest_stall_ns;
    /* time it slept for throttles, in all */
    uint64_t throttle_ns;
} VCPUStats;

/* False when there is no vCPU @cpu. */
bool vcpu_get_stats(unsigned cpu, VCPUStats *stats);
/* The pages vCPU @cpu dirtied so far (0 for a vCPU that does not exist). */
uint64_t vcpu_dirty_pages(unsigned cpu);
/* Measure the longest stall afresh from now on. */
void cpus_reset_stall(void);

#endif
