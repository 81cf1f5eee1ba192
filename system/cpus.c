/*
 * vCPU threads, the pause handshake, throttle sleeps and the per-vCPU
 * figures (pages dirtied, stalls, time throttled).
 *
 * A vCPU checks one flag (stop_requested, a relaxed load) at each safe
 * point; only when it is set does it take vcpu_lock and park.  The
 * pauser sets the flag, wakes sleeping vCPUs and waits for the parked
 * count to reach the vCPU count.  Parking and waking go through the lock,
 * which orders everything a vCPU wrote before parking before whatever the
 * pauser does next (verify, state save, RAM copy).
 *
 * At each safe point a vCPU also obeys the throttles (auto-converge's
 * CPU throttle, its dirty-page rate limit) by sleeping before its next
 * step; the sleep ends early when the vCPU must pause, or when a
 * throttle changes (cpus_throttle_kick), so that a lifted throttle ends
 * at once.
 */
#include "qemu/osdep.h"
#include <pthread.h>
#include "qemu/trace.h"
#include "system/cpus.h"
#include "system/cpu-throttle.h"
#include "system/dirtylimit.h"
#include "system/guest.h"
#include "system/ramblock.h"

/*
 * One vCPU.  Aligned to a cache line each: the vCPU thread bumps
 * dirty_pages on every page it writes, and a neighbour's line would
 * bounce between the cores.
 */
typedef struct VCPU {
    unsigned index;
    pthread_t thread;
    bool started;
    pid_t tid;                      /* set by the thread before its loop */

    /* vCPU thread only. */
    int64_t last_step_end_ns;       /* 0 before its first step */

    /* Written by the vCPU thread (relaxed atomics), read by anyone. */
    uint64_t dirty_pages;           /* see vcpu_dirty_counter */
    uint64_t longest_stall_ns;      /* also cleared by cpus_reset_stall() */
    uint64_t throttle_ns;
} __attribute__((aligned(64))) VCPU;

TRACE_DEFINE(pause_all_vcpus);
TRACE_DEFINE(resume_all_vcpus);

static VCPU *vcpus;
static unsigned nr_vcpus;

/* Protected by vcpu_lock; stop_requested is also read without it. */
static GMutex vcpu_lock;
static GCond vcpu_wake_cond;        /* vCPUs wait here (parked or asleep) */
static GCond vcpu_parked_cond;      /* the pauser waits here */
static int stop_requested;          /* pause or exit */
static bool exit_requested;
static unsigned nr_parked;
static unsigned throttle_generation;    /* bumped by cpus_throttle_kick() */

unsigned cpus_count(void)
{
    return nr_vcpus;
}

/* Park until resumed; returns false when the thread must exit. */
static bool vcpu_park(void)
{
    bool keep_running;

    g_mutex_lock(&vcpu_lock);
    nr_parked++;
    g_cond_broadcast(&vcpu_parked_cond);
    while (stop_requested && !exit_requested) {
        g_cond_wait(&vcpu_wake_cond, &vcpu_lock);
    }
    nr_parked--;
    keep_running = !exit_requested;
    g_mutex_unlock(&vcpu_lock);
    return keep_running;
}

/*
 * Sleep up to @ns, or less when the vCPU must pause or exit, or, for a
 * @throttle sleep, when a throttle changes.
 */
static void vcpu_wait(int64_t ns, bool throttle)
{
    gint64 deadline = g_get_monotonic_time() + MAX(ns / 1000, 1);
    unsigned generation;

    g_mutex_lock(&vcpu_lock);
    generation = throttle_generation;
    while (!stop_requested &&
           (!throttle || generation == throttle_generation)) {
        if (!g_cond_wait_until(&vcpu_wake_cond, &vcpu_lock, deadline)) {
            break;
        }
    }
    g_mutex_unlock(&vcpu_lock);
}

/*
 * The time since the vCPU's previous step is a stall: a throttle sleep,
 * a pause, or a wait for a core.  (A program's own sleeps happen inside
 * its steps and are not.)
 */
static void vcpu_note_stall(VCPU *cpu, int64_t now)
{
    uint64_t stall;

    if (!cpu->last_step_end_ns) {
        return;
    }
    stall = now - cpu->last_step_end_ns;
    if (stall > __atomic_load_n(&cpu->longest_stall_ns, __ATOMIC_RELAXED)) {
        __atomic_store_n(&cpu->longest_stall_ns, stall, __ATOMIC_RELAXED);
    }
}

static void *vcpu_thread_fn(void *opaque)
{
    VCPU *cpu = opaque;
    char name[16];

    snprintf(name, sizeof(name), "CPU %u/vmig", cpu->index);
    pthread_setname_np(pthread_self(), name);
    __atomic_store_n(&cpu->tid, gettid(), __ATOMIC_RELEASE);
    vcpu_dirty_counter = &cpu->dirty_pages;

    for (;;) {
        if (__atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE) &&
            !vcpu_park()) {
            break;
        }
        /* After a throttle sleep, look for a pause request first. */
        if (cpu_throttle_vcpu(cpu->index) ||
            dirtylimit_vcpu_throttle(cpu->index)) {
            continue;
        }
        vcpu_note_stall(cpu, get_clock_ns());
        guest_program_step(cpu->index);
        cpu->last_step_end_ns = get_clock_ns();
    }
    vcpu_dirty_counter = NULL;
    return NULL;
}

int cpus_index_of_tid(pid_t tid)
{
    for (unsigned i = 0; i < nr_vcpus; i++) {
        if (__atomic_load_n(&vcpus[i].tid, __ATOMIC_ACQUIRE) == tid) {
            return i;
        }
    }
    return -1;
}

void vcpu_sleep_ns(unsigned cpu, int64_t ns)
{
    if (ns > 0) {
        vcpu_wait(ns, false);
    }
}

int64_t vcpu_throttle_sleep(unsigned index, int64_t ns)
{
    VCPU *cpu = &vcpus[index];
    int64_t start, slept;

    if (ns <= 0) {
        return 0;
    }
    start = get_clock_ns();
    vcpu_wait(ns, true);
    slept = get_clock_ns() - start;
    __atomic_store_n(&cpu->throttle_ns, cpu->throttle_ns + slept,
                     __ATOMIC_RELAXED);
    return slept;
}

void cpus_throttle_kick(void)
{
    g_mutex_lock(&vcpu_lock);
    throttle_generation++;
    g_cond_broadcast(&vcpu_wake_cond);
    g_mutex_unlock(&vcpu_lock);
}

uint64_t vcpu_dirty_pages(unsigned index)
{
    return index < nr_vcpus ?
           __atomic_load_n(&vcpus[index].dirty_pages, __ATOMIC_RELAXED) : 0;
}

bool vcpu_get_stats(unsigned index, VCPUStats *stats)
{
    VCPU *cpu;

    if (index >= nr_vcpus) {
        return false;
    }
    cpu = &vcpus[index];
    stats->dirty_pages = __atomic_load_n(&cpu->dirty_pages, __ATOMIC_RELAXED);
    stats->longest_stall_ns = __atomic_load_n(&cpu->longest_stall_ns,
                                              __ATOMIC_RELAXED);
    stats->throttle_ns = __atomic_load_n(&cpu->throttle_ns, __ATOMIC_RELAXED);
    return true;
}

void cpus_reset_stall(void)
{
    for (unsigned i = 0; i < nr_vcpus; i++) {
        __atomic_store_n(&vcpus[i].longest_stall_ns, 0, __ATOMIC_RELAXED);
    }
}

bool cpus_init(unsigned smp, Error **errp)
{
    int err;

    if (vcpus) {
        error_setg(errp, "vCPUs exist already");
        return false;
    }
    if (smp < 1 || smp > VMIG_MAX_VCPUS) {
        error_setg(errp, "-smp %u: the number of vCPUs must be 1 to %u",
                   smp, VMIG_MAX_VCPUS);
        return false;
    }
    if (!guest_setup(smp, errp)) {
        return false;
    }

    /* Threads start parked: the VM starts with vm_start() or cont. */
    stop_requested = 1;
    exit_requested = false;
    if (posix_memalign((void **)&vcpus, 64, smp * sizeof(VCPU))) {
        error_setg(errp, "cannot allocate the state of %u vCPUs", smp);
        return false;
    }
    memset(vcpus, 0, smp * sizeof(VCPU));
    nr_vcpus = smp;
    for (unsigned i = 0; i < smp; i++) {
        vcpus[i].index = i;
        err = pthread_create(&vcpus[i].thread, NULL, vcpu_thread_fn, &vcpus[i]);
        if (err) {
            error_setg_errno(errp, err, "cannot create the thread of vCPU %u",
                             i);
            cpus_cleanup();
            return false;
        }
        vcpus[i].started = true;
    }
    /* Callers may rely on all_vcpus_paused() from the start. */
    g_mutex_lock(&vcpu_lock);
    while (nr_parked < nr_vcpus) {
        g_cond_wait(&vcpu_parked_cond, &vcpu_lock);
    }
    g_mutex_unlock(&vcpu_lock);
    return true;
}

void pause_all_vcpus(void)
{
    int64_t start = get_clock_ns();

    g_mutex_lock(&vcpu_lock);
    __atomic_store_n(&stop_requested, 1, __ATOMIC_RELEASE);
    g_cond_broadcast(&vcpu_wake_cond);
    while (nr_parked < nr_vcpus) {
        g_cond_wait(&vcpu_parked_cond, &vcpu_lock);
    }
    g_mutex_unlock(&vcpu_lock);
    trace(pause_all_vcpus, "%u vCPUs parked in %" PRId64 " us", nr_vcpus,
          (get_clock_ns() - start) / 1000);
}

void resume_all_vcpus(void)
{
    g_mutex_lock(&vcpu_lock);
    __atomic_store_n(&stop_requested, 0, __ATOMIC_RELEASE);
    g_cond_broadcast(&vcpu_wake_cond);
    g_mutex_unlock(&vcpu_lock);
    trace(resume_all_vcpus, "%u vCPUs", nr_vcpus);
}

bool all_vcpus_paused(void)
{
    bool paused;

    g_mutex_lock(&vcpu_lock);
    paused = !nr_vcpus || (stop_requested && nr_parked == nr_vcpus);
    g_mutex_unlock(&vcpu_lock);
    return paused;
}

void cpus_cleanup(void)
{
    if (!vcpus) {
        return;
    }
    g_mutex_lock(&vcpu_lock);
    exit_requested = true;
    __atomic_store_n(&stop_requested, 1, __ATOMIC_RELEASE);
    g_cond_broadcast(&vcpu_wake_cond);
    g_mutex_unlock(&vcpu_lock);

    for (unsigned i = 0; i < nr_vcpus; i++) {
        if (vcpus[i].started) {
            pthread_join(vcpus[i].thread, NULL);
        }
    }
    free(vcpus);
    vcpus = NULL;
    nr_vcpus = 0;
    nr_parked = 0;
    exit_requested = false;
    stop_requested = 0;
}
