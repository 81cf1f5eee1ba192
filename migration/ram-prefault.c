/*
 * Destination: fault guest RAM in ahead of the incoming data.
 *
 * Writing into fresh memory costs a page fault per 4 KiB page (allocate,
 * zero, map), and on the receiving thread that halves the load rate.  A
 * helper thread follows the loader's position and populates the next
 * window of the same block with MADV_POPULATE_WRITE, on another core.
 * It only ever runs a bounded window ahead of data that arrived, so RAM
 * the source never sends (zero pages) is not touched: a stream without
 * data allocates nothing.
 */
#include "qemu/osdep.h"
#include <sys/mman.h>
#include "migration/ram.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23          /* Linux 5.14 */
#endif

/* How far ahead of the loader the helper populates. */
#define PREFAULT_WINDOW (64 * MiB)
/* One madvise call: big enough to be cheap, small enough to stay ahead. */
#define PREFAULT_STEP (2 * MiB)

struct RamPrefault {
    GThread *thread;
    GMutex lock;
    GCond cond;
    /* lock: the loader's latest position and the stop request */
    RAMBlock *hint_block;
    uint64_t hint_end;
    bool stop;
    /* helper thread only */
    RAMBlock *done_block;
    uint64_t done_end;
    /* loader only: the hint last published, to signal rarely */
    RAMBlock *sent_block;
    uint64_t sent_end;
};

static gpointer prefault_thread(gpointer opaque)
{
    RamPrefault *p = opaque;

    g_mutex_lock(&p->lock);
    while (!p->stop) {
        RAMBlock *rb = p->hint_block;
        uint64_t target, start, len;

        if (!rb) {
            g_cond_wait(&p->cond, &p->lock);
            continue;
        }
        if (rb != p->done_block || p->done_end < p->hint_end) {
            /* Never populate behind the loader: it wrote that already. */
            if (rb != p->done_block) {
                p->done_block = rb;
                p->done_end = p->hint_end;
            }
            p->done_end = MAX(p->done_end, p->hint_end);
        }
        target = MIN(rb->size, p->hint_end + PREFAULT_WINDOW);
        if (p->done_end >= target) {
            g_cond_wait(&p->cond, &p->lock);
            continue;
        }
        start = p->done_end;
        len = MIN(PREFAULT_STEP, target - start);
        g_mutex_unlock(&p->lock);
        if (madvise(rb->host + start, len, MADV_POPULATE_WRITE) < 0 &&
            errno != EINTR) {
            /* Not supported here (old kernel, odd mapping): just stop. */
            g_mutex_lock(&p->lock);
            break;
        }
        g_mutex_lock(&p->lock);
        if (p->done_block == rb) {
            p->done_end = MAX(p->done_end, start + len);
        }
    }
    g_mutex_unlock(&p->lock);
    return NULL;
}

RamPrefault *ram_prefault_start(void)
{
    RamPrefault *p = g_new0(RamPrefault, 1);

    g_mutex_init(&p->lock);
    g_cond_init(&p->cond);
    p->thread = g_thread_new("mig/prefault", prefault_thread, p);
    return p;
}

void ram_prefault_hint(RamPrefault *p, RAMBlock *rb, uint64_t end)
{
    /* Wake the helper only when it may have fallen within half a window. */
    if (!p || (rb == p->sent_block && end < p->sent_end + PREFAULT_WINDOW / 2
               && end >= p->sent_end)) {
        return;
    }
    p->sent_block = rb;
    p->sent_end = end;
    g_mutex_lock(&p->lock);
    p->hint_block = rb;
    p->hint_end = end;
    g_cond_signal(&p->cond);
    g_mutex_unlock(&p->lock);
}

void ram_prefault_stop(RamPrefault *p)
{
    if (!p) {
        return;
    }
    g_mutex_lock(&p->lock);
    p->stop = true;
    g_cond_signal(&p->cond);
    g_mutex_unlock(&p->lock);
    g_thread_join(p->thread);
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->cond);
    g_free(p);
}
