/*
 * Guest RAM: blocks of host memory at guest physical addresses, each with
 * a software dirty log.
 *
 * Writers (vCPU threads through the guest memory API, device emulation,
 * the device-dirty-tracking merge) set dirty bits atomically *after*
 * writing the data, while dirty logging is on.  The consumer (the
 * migration thread) moves the log into its own bitmap with
 * ram_block_dirty_sync(), which clears it; a page written after its bit
 * was taken is logged again and sent in a later pass.
 *
 * Ordering.  A writer checks its bit before setting it, so that a page
 * that is already dirty costs one load.  A plain check could let the data
 * store sit in the writer's store buffer while the consumer clears the
 * bit and reads the old data: the page would then be lost.  Instead of a
 * full fence on every write, the consumer side issues a process-wide
 * barrier (membarrier(2), private expedited) after it has taken bits and
 * before it reads pages, and after it turns logging on; the writer needs
 * only a compiler barrier between its data and its check.  Where
 * membarrier is unavailable, writers fall back to a real fence.
 *
 * The block list is fixed once the machine is built (before vCPUs and
 * migration start), so it is read without locks.
 */
#ifndef SYSTEM_RAMBLOCK_H
#define SYSTEM_RAMBLOCK_H

#include "qemu/osdep.h"
#include "qemu/bitmap.h"
#include "qemu/error.h"

typedef struct RAMBlock {
    char idstr[64];             /* unique, names the block in the stream */
    uint8_t *host;              /* mapping of the whole block */
    uint64_t gpa;               /* guest physical address of byte 0 */
    uint64_t size;              /* bytes, a multiple of TARGET_PAGE_SIZE */
    uint64_t pages;             /* size >> TARGET_PAGE_BITS */
    int fd;                     /* memfd / file fd (shareable), or -1 */
    uint64_t fd_offset;         /* offset of byte 0 within fd */
    bool shared;                /* MAP_SHARED: devices may map it too */
    bool owns_memory;           /* unmap host and close fd when freed */
    unsigned long *dirty_log;   /* 1 bit per page, see above */
    struct RAMBlock *next;      /* in gpa order */
} RAMBlock;

/*
 * Add a block mapping @size bytes of @fd at @fd_offset (fd >= 0, MAP_SHARED
 * when @shared) or of anonymous memory (fd < 0).  Ownership of @fd passes
 * to the block, also on failure.  Called while the machine is built.
 * Blocks may not overlap; @gpa and @size must be page aligned.
 */
RAMBlock *ram_block_add(const char *idstr, uint64_t gpa, uint64_t size,
                        int fd, uint64_t fd_offset, bool shared, Error **errp);
/*
 * Add a block over memory the caller owns and keeps mapped for the
 * block's life (a memory backend): @host maps @size bytes, @fd (or -1)
 * stays the caller's.
 */
RAMBlock *ram_block_add_host(const char *idstr, uint64_t gpa, uint64_t size,
                             void *host, int fd, uint64_t fd_offset,
                             bool shared, Error **errp);
RAMBlock *ram_block_find(const char *idstr);
RAMBlock *ram_block_first(void);
#define RAMBLOCK_FOREACH(rb) for (RAMBlock *rb = ram_block_first(); rb; rb = rb->next)
uint64_t ram_total_size(void);
/* The block holding [gpa, gpa+len), or NULL. */
RAMBlock *ram_block_from_gpa(uint64_t gpa, uint64_t len, uint64_t *offset);
/*
 * The first page-aligned offset >= @offset of @rb that may hold non-zero
 * data, or rb->size; *@data_end is set to the end of that stretch of
 * possible data (page aligned, at most rb->size).  Holes of a shared memfd
 * or file read as zero, so checks of a mostly untouched RAM need not
 * fault every page in.
 */
uint64_t ram_block_next_data(RAMBlock *rb, uint64_t offset,
                             uint64_t *data_end);
/* Unmap and free every block (at exit, after the vCPUs are gone). */
void ram_blocks_free(void);

/* ---- Dirty logging ---- */

extern int dirty_log_active;        /* read by writers, relaxed */
extern bool dirty_log_writer_fence; /* no membarrier: writers fence (fixed) */

/*
 * On a vCPU thread, its count of pages dirtied (VCPUStats.dirty_pages);
 * NULL on every other thread.  Each page a write through the guest memory
 * API covers counts once per write, whether or not dirty logging is on:
 * this is vmig's per-vCPU dirty accounting (what KVM's dirty ring gives
 * QEMU), which the dirty-page rate limit and calc-dirty-rate read.  Only
 * the vCPU thread writes it, so a relaxed store is enough.
 */
extern __thread uint64_t *vcpu_dirty_counter;

static inline void ram_block_set_dirty(RAMBlock *rb, uint64_t offset,
                                       uint64_t len)
{
    uint64_t *counter = vcpu_dirty_counter;

    /* Data before the checks below; see "Ordering" at the top. */
    if (unlikely(dirty_log_writer_fence)) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    } else {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    if (!len) {
        return;
    }

    uint64_t page = offset >> TARGET_PAGE_BITS;
    uint64_t last = (offset + len - 1) >> TARGET_PAGE_BITS;

    if (counter) {
        __atomic_store_n(counter, *counter + last - page + 1,
                         __ATOMIC_RELAXED);
    }
    if (!__atomic_load_n(&dirty_log_active, __ATOMIC_RELAXED)) {
        return;
    }

    /* Checks each word before setting it: see "Ordering". */
    bitmap_set_atomic(rb->dirty_log, page, last - page + 1);
}

/*
 * Something besides the guest memory API that knows about writes (device
 * DMA logging): log_start / log_stop follow global dirty logging, and
 * log_sync is called by dirty_log_sync() to merge what it saw, through
 * guest_ram_set_dirty(), before the logs are read.  Any may fail.
 * Listeners are added and removed with the BQL held, not while a sync runs.
 */
typedef struct DirtyLogListener {
    const char *name;
    bool (*log_start)(struct DirtyLogListener *l, Error **errp);
    void (*log_stop)(struct DirtyLogListener *l);
    bool (*log_sync)(struct DirtyLogListener *l, Error **errp);
    struct DirtyLogListener *next;
} DirtyLogListener;

/* A listener added while logging is on is started at once (may fail). */
bool dirty_log_listener_add(DirtyLogListener *l, Error **errp);
/* Stops the listener first when logging is on. */
void dirty_log_listener_del(DirtyLogListener *l);

/*
 * Global dirty logging on/off (the migration core).  Start clears every
 * log, then starts each listener; a listener that fails undoes the start
 * and its error names the listener.
 */
bool dirty_log_start(Error **errp);
void dirty_log_stop(void);
bool dirty_log_is_active(void);
/* Ask every listener to merge its writes into the logs. */
bool dirty_log_sync(Error **errp);
/*
 * Move @rb's log into @dest (rb->pages bits, owned by the caller):
 * atomically take and clear every set bit, OR it into @dest.  Returns the
 * number of pages newly set in @dest.  On return, the data of every page
 * whose bit was taken is visible to the caller.  Zero words of the log
 * cost one relaxed load each.  One consumer at a time.
 */
uint64_t ram_block_dirty_sync(RAMBlock *rb, unsigned long *dest);
/*
 * How many process-wide barriers the consumer side has issued (dirty log
 * start, and every sync that took bits): lets tests check the ordering
 * rule above without having to lose a race.
 */
uint64_t dirty_log_consumer_barrier_count(void);

/* ---- Guest memory API (guest physical addresses) ---- */

/*
 * Host pointer for [gpa, gpa+len) within one block, or NULL.  Writers
 * that fill memory in place (guest programs) call guest_ram_set_dirty()
 * or ram_block_set_dirty() after the data is written.
 */
void *guest_ram_ptr(uint64_t gpa, uint64_t len);
/* Copy out of RAM; false when [gpa, gpa+len) is not all RAM. */
bool guest_ram_read(uint64_t gpa, void *buf, uint64_t len);
/* Copies and logs; false when the range is not all RAM.  May span blocks. */
bool guest_ram_write(uint64_t gpa, const void *buf, uint64_t len);
/* Log a range written by other means (device DMA merge); non-RAM is ignored. */
void guest_ram_set_dirty(uint64_t gpa, uint64_t len);

#endif
