/*
 * Software dirty logging of guest RAM: global start/stop, listeners for
 * writes the guest memory API does not see, and the consumer's
 * sync-and-clear.  See "Ordering" in include/system/ramblock.h for why
 * the consumer issues a process-wide barrier and the writers do not.
 */
#include "qemu/osdep.h"
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include "qemu/trace.h"
#include "system/ramblock.h"

TRACE_DEFINE(dirty_log_start);
TRACE_DEFINE(dirty_log_stop);
TRACE_DEFINE(ram_block_dirty_sync);

int dirty_log_active;
bool dirty_log_writer_fence;

static DirtyLogListener *listeners;
static uint64_t consumer_barriers;

/*
 * Decided once, before any writer runs (a constructor): registering for
 * private expedited membarrier needs a 4.14+ kernel and a seccomp policy
 * that allows it.
 */
static void __attribute__((constructor)) dirty_log_barrier_init(void)
{
    long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) ||
        syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                0, 0) < 0) {
        dirty_log_writer_fence = true;
    }
}

/*
 * Make every write that any thread made before its (compiler-barrier)
 * check of the log visible to this thread.
 */
static void dirty_log_consumer_barrier(void)
{
    __atomic_fetch_add(&consumer_barriers, 1, __ATOMIC_RELAXED);
    if (dirty_log_writer_fence) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return;
    }
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) < 0) {
        /* Registered at start, so this cannot fail short of a kernel bug. */
        error_report("dirty log: membarrier failed: %s", strerror(errno));
        abort();
    }
}

uint64_t dirty_log_consumer_barrier_count(void)
{
    return __atomic_load_n(&consumer_barriers, __ATOMIC_RELAXED);
}

bool dirty_log_is_active(void)
{
    return __atomic_load_n(&dirty_log_active, __ATOMIC_RELAXED);
}

bool dirty_log_listener_add(DirtyLogListener *l, Error **errp)
{
    if (dirty_log_is_active() && l->log_start && !l->log_start(l, errp)) {
        error_prepend(errp, "dirty log listener '%s': ", l->name);
        return false;
    }
    l->next = listeners;
    listeners = l;
    return true;
}

void dirty_log_listener_del(DirtyLogListener *l)
{
    for (DirtyLogListener **link = &listeners; *link; link = &(*link)->next) {
        if (*link == l) {
            *link = l->next;
            l->next = NULL;
            if (dirty_log_is_active() && l->log_stop) {
                l->log_stop(l);
            }
            return;
        }
    }
}

bool dirty_log_start(Error **errp)
{
    DirtyLogListener *l, *failed = NULL;

    if (dirty_log_is_active()) {
        return true;
    }
    RAMBLOCK_FOREACH(rb) {
        bitmap_zero(rb->dirty_log, rb->pages);
    }
    __atomic_store_n(&dirty_log_active, 1, __ATOMIC_SEQ_CST);
    /*
     * A writer that saw logging off wrote before this point; after the
     * barrier its data is visible to whoever copies RAM next.
     */
    dirty_log_consumer_barrier();

    for (l = listeners; l; l = l->next) {
        if (l->log_start && !l->log_start(l, errp)) {
            error_prepend(errp, "dirty log listener '%s': ", l->name);
            failed = l;
            break;
        }
    }
    if (!failed) {
        trace(dirty_log_start, "writer barrier: %s",
              dirty_log_writer_fence ? "fence" : "membarrier");
        return true;
    }
    for (l = listeners; l != failed; l = l->next) {
        if (l->log_stop) {
            l->log_stop(l);
        }
    }
    __atomic_store_n(&dirty_log_active, 0, __ATOMIC_SEQ_CST);
    return false;
}

void dirty_log_stop(void)
{
    if (!dirty_log_is_active()) {
        return;
    }
    for (DirtyLogListener *l = listeners; l; l = l->next) {
        if (l->log_stop) {
            l->log_stop(l);
        }
    }
    __atomic_store_n(&dirty_log_active, 0, __ATOMIC_SEQ_CST);
    trace(dirty_log_stop, "logging off");
}

bool dirty_log_sync(Error **errp)
{
    for (DirtyLogListener *l = listeners; l; l = l->next) {
        if (l->log_sync && !l->log_sync(l, errp)) {
            error_prepend(errp, "dirty log listener '%s': ", l->name);
            return false;
        }
    }
    return true;
}

uint64_t ram_block_dirty_sync(RAMBlock *rb, unsigned long *dest)
{
    bool taken;
    uint64_t newly_set = bitmap_move_atomic(dest, rb->dirty_log, rb->pages,
                                            &taken);

    /* Pages whose bits were taken are read next: see "Ordering". */
    if (taken) {
        dirty_log_consumer_barrier();
    }
    trace(ram_block_dirty_sync, "%s: %" PRIu64 " pages newly dirty",
          rb->idstr, newly_set);
    return newly_set;
}
