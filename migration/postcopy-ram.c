/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * postcopy-ram on the destination.  At LISTEN every RAM block is
 * registered with one userfaultfd in MISSING mode: a thread that touches
 * a page that is not there (never sent, or discarded at the switch
 * because the source dirtied it after sending it) sleeps in the kernel,
 * and the fault thread, reading the userfaultfd, asks the source for
 * that page over the return path.  The loader (incoming thread) places
 * every page that arrives, asked for or pushed in the background, with
 * UFFDIO_COPY / UFFDIO_ZEROPAGE, which fills the page and wakes whoever
 * waits for it.  See docs/devel/migration.rst, "Postcopy".
 */
#include "qemu/osdep.h"
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include "qemu/cutils.h"
#include "qemu/histogram.h"
#include "system/cpus.h"
#include "migration/tls.h"
#include "migration/options.h"
#include "migration/migration.h"
#include "migration/postcopy-ram.h"
#include "migration/savevm.h"
#include "migration/trace.h"

TRACE_DEFINE(postcopy_fault);
TRACE_DEFINE(postcopy_listen);

/* Fault messages read per read() by the fault thread. */
#define POSTCOPY_FAULT_BATCH 16

typedef struct PostcopyBlock {
    RAMBlock *rb;
    unsigned long *received;    /* placers set (atomic), anyone reads */
    unsigned long *requested;   /* fault thread only */
} PostcopyBlock;

/*
 * postcopy-blocktime.  The fault thread records a vCPU as waiting
 * (fault_addr, fault_start); the placer that fills that page ends the
 * wait.  nr_waiting counts waiting vCPUs; while it equals the vCPU
 * count, the whole guest stands still, which postcopy-blocktime sums.
 * Every wait that ends goes into fault_wait (x-postcopy-fault-wait) if
 * the page was missing when the fault thread saw the fault (counted):
 * a wait that had ended before then has no known start.
 * All under lock; kept after the load for query-migrate.
 */
typedef struct PostcopyBlocktime {
    GMutex lock;
    unsigned nr_vcpus;
    uintptr_t *fault_addr;      /* the page a vCPU waits for, or 0 */
    int64_t *fault_start_ns;
    bool *fault_counted;
    uint64_t *vcpu_total_ns;
    unsigned nr_waiting;
    int64_t all_waiting_since_ns;
    uint64_t total_ns;
    Histogram fault_wait;       /* ns, every vCPU */
} PostcopyBlocktime;

/*
 * Fields by owner: the incoming thread sets up and tears down (uffd,
 * blocks, fault_thread) while the fault thread is not running, or after
 * joining it; listening is atomic.
 */
typedef struct PostcopyIncoming {
    int uffd;
    int quit_fd;                /* eventfd: the fault thread must end */
    GThread *fault_thread;
    MigrationIncomingState *mis;
    PostcopyBlock *blocks;
    unsigned nr_blocks;
    bool listening;
    /* postcopy-preempt: its thread and how to stop it */
    GThread *preempt_thread;
    MigCancel *preempt_cancel;
    bool preempt_stopping;      /* atomic: errors from now on are ours */
} PostcopyIncoming;

static PostcopyIncoming pc = { .uffd = -1, .quit_fd = -1 };
static PostcopyBlocktime blocktime;

static int uffd_open(Error **errp)
{
    int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    /*
     * Without CAP_SYS_PTRACE, and vm.unprivileged_userfaultfd at 0, only
     * faults from user mode may be handled: enough here, since vCPUs
     * touch RAM from user mode and the loader never lets the kernel
     * write into registered RAM (it reads pages into a buffer first).
     */
    if (fd < 0 && errno == EPERM) {
        fd = syscall(__NR_userfaultfd,
                     O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    }
    if (fd < 0) {
        error_setg_errno(errp, errno, "postcopy-ram: userfaultfd is not "
                         "available here (a kernel without it, or "
                         "vm.unprivileged_userfaultfd=0 on a kernel older "
                         "than 5.11 for a user without CAP_SYS_PTRACE)");
    }
    return fd;
}

static bool any_block_shared(void)
{
    RAMBLOCK_FOREACH(rb) {
        if (rb->shared) {
            return true;
        }
    }
    return false;
}

/* UFFDIO_API: the features this RAM needs (and blocktime's thread ids). */
static bool uffd_api(int fd, Error **errp)
{
    struct uffdio_api api = { .api = UFFD_API };
    uint64_t need = any_block_shared() ? UFFD_FEATURE_MISSING_SHMEM : 0;

    api.features = need | UFFD_FEATURE_THREAD_ID;
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        /* Retry with what we need only: thread ids are for blocktime. */
        struct uffdio_api min = { .api = UFFD_API, .features = need };

        if (ioctl(fd, UFFDIO_API, &min) < 0) {
            error_setg_errno(errp, errno, "postcopy-ram: userfaultfd does "
                             "not offer the features needed%s",
                             need ? " (missing-page faults on shared "
                             "memory)" : "");
            return false;
        }
    }
    return true;
}

bool postcopy_incoming_advise(Error **errp)
{
    int fd;

    postcopy_incoming_cleanup();
    fd = uffd_open(errp);
    if (fd < 0) {
        return false;
    }
    if (!uffd_api(fd, errp)) {
        close(fd);
        return false;
    }
    pc.uffd = fd;
    return true;
}

/* ---- blocktime ---- */

static void blocktime_reset(void)
{
    PostcopyBlocktime *bt = &blocktime;
    unsigned n = cpus_count();

    g_mutex_lock(&bt->lock);
    g_free(bt->fault_addr);
    g_free(bt->fault_start_ns);
    g_free(bt->fault_counted);
    g_free(bt->vcpu_total_ns);
    bt->nr_vcpus = n;
    bt->fault_addr = g_new0(uintptr_t, n);
    bt->fault_start_ns = g_new0(int64_t, n);
    bt->fault_counted = g_new0(bool, n);
    bt->vcpu_total_ns = g_new0(uint64_t, n);
    bt->nr_waiting = 0;
    bt->total_ns = 0;
    hist_reset(&bt->fault_wait);
    g_mutex_unlock(&bt->lock);
}

/* lock held: vCPU @i's wait ends at @now. */
static void blocktime_end_locked(PostcopyBlocktime *bt, unsigned i,
                                 int64_t now)
{
    /*
     * A placer reads the clock before it takes the lock, so a fault
     * recorded in between starts after @now: that wait lasted no time.
     */
    int64_t waited = MAX(now - bt->fault_start_ns[i], 0);

    if (bt->nr_waiting == bt->nr_vcpus) {
        bt->total_ns += MAX(now - bt->all_waiting_since_ns, 0);
    }
    bt->vcpu_total_ns[i] += waited;
    if (bt->fault_counted[i]) {
        hist_add(&bt->fault_wait, waited);
    }
    bt->fault_addr[i] = 0;
    bt->nr_waiting--;
}

/*
 * The fault thread saw vCPU @tid wait for the page at @addr; @missing:
 * the page was not there yet when it looked.
 */
static void blocktime_fault(pid_t tid, uintptr_t addr, bool missing)
{
    PostcopyBlocktime *bt = &blocktime;
    int i = cpus_index_of_tid(tid);
    int64_t now = get_clock_ns();

    if (i < 0 || (unsigned)i >= bt->nr_vcpus) {
        return;     /* not a vCPU: the monitor, a check */
    }
    g_mutex_lock(&bt->lock);
    if (!bt->fault_addr[i]) {
        bt->fault_addr[i] = addr;
        bt->fault_start_ns[i] = now;
        bt->fault_counted[i] = missing;
        if (++bt->nr_waiting == bt->nr_vcpus) {
            bt->all_waiting_since_ns = now;
        }
    }
    g_mutex_unlock(&bt->lock);
}

/* Pages [@start, @end) of host memory are in: their waiters run again. */
static void blocktime_placed(uintptr_t start, uintptr_t end)
{
    PostcopyBlocktime *bt = &blocktime;
    int64_t now = get_clock_ns();

    g_mutex_lock(&bt->lock);
    for (unsigned i = 0; i < bt->nr_vcpus && bt->nr_waiting; i++) {
        if (bt->fault_addr[i] >= start && bt->fault_addr[i] < end) {
            blocktime_end_locked(bt, i, now);
        }
    }
    g_mutex_unlock(&bt->lock);
}

/* Rounded up, so that a wait of a few ns does not read as none. */
static int64_t ns_to_us_up(uint64_t ns)
{
    return ns / 1000 + (ns % 1000 != 0);
}

void postcopy_blocktime_query(JsonObject *obj)
{
    PostcopyBlocktime *bt = &blocktime;
    JsonObject *fault_wait;
    JsonArray *list;
    int64_t now = get_clock_ns();

    if (!migrate_postcopy_blocktime() || !bt->fault_addr) {
        return;
    }
    list = json_array_new();
    g_mutex_lock(&bt->lock);
    for (unsigned i = 0; i < bt->nr_vcpus; i++) {
        uint64_t ns = bt->vcpu_total_ns[i];

        /* A wait still going on counts up to now. */
        if (bt->fault_addr[i]) {
            ns += MAX(now - bt->fault_start_ns[i], 0);
        }
        json_array_add_int_element(list, ns / 1000000);
    }
    json_object_set_int_member(obj, "postcopy-blocktime",
        (bt->total_ns + (bt->nr_waiting == bt->nr_vcpus && bt->nr_vcpus ?
                         MAX(now - bt->all_waiting_since_ns, 0) : 0))
        / 1000000);
    fault_wait = json_object_new();
    json_object_set_int_member(fault_wait, "count", bt->fault_wait.count);
    json_object_set_int_member(fault_wait, "p50",
        ns_to_us_up(hist_percentile(&bt->fault_wait, 50)));
    json_object_set_int_member(fault_wait, "p99",
        ns_to_us_up(hist_percentile(&bt->fault_wait, 99)));
    json_object_set_int_member(fault_wait, "max",
        ns_to_us_up(bt->fault_wait.max));
    g_mutex_unlock(&bt->lock);
    json_object_set_array_member(obj, "postcopy-vcpu-blocktime", list);
    json_object_set_object_member(obj, "x-postcopy-fault-wait", fault_wait);
}

/* ---- the fault thread ---- */

static PostcopyBlock *block_of_host(uintptr_t addr)
{
    for (unsigned i = 0; i < pc.nr_blocks; i++) {
        uintptr_t base = (uintptr_t)pc.blocks[i].rb->host;

        if (addr >= base && addr - base < pc.blocks[i].rb->size) {
            return &pc.blocks[i];
        }
    }
    return NULL;
}

/* Ask the source for the page at @offset of @pb. */
static bool request_page(PostcopyBlock *pb, uint64_t offset, Error **errp)
{
    uint8_t msg[1 + 255 + 8 + 4];
    size_t idlen = strlen(pb->rb->idstr);
    uint8_t *p = msg;

    *p++ = idlen;
    memcpy(p, pb->rb->idstr, idlen);
    p += idlen;
    stl_be(p, offset >> 32);
    stl_be(p + 4, offset);
    stl_be(p + 8, TARGET_PAGE_SIZE);
    p += 12;
    trace(postcopy_fault, "asking for '%s' + 0x%" PRIx64, pb->rb->idstr,
          offset);
    return migration_incoming_rp_send(pc.mis, MIG_RP_MSG_REQ_PAGES, msg,
                                      p - msg, errp);
}

static void handle_fault(const struct uffd_msg *msg)
{
    uintptr_t addr = msg->arg.pagefault.address & TARGET_PAGE_MASK;
    PostcopyBlock *pb = block_of_host(addr);
    uint64_t page;
    bool missing;
    Error *err = NULL;

    if (!pb) {
        return;
    }
    page = (addr - (uintptr_t)pb->rb->host) >> TARGET_PAGE_BITS;
    /*
     * One look decides both: a wait counted in x-postcopy-fault-wait is
     * always for a page asked for (here or before), so their count is
     * at most the vCPUs times the requests.
     */
    missing = !test_bit(page, pb->received);
    if (migrate_postcopy_blocktime()) {
        blocktime_fault(msg->arg.pagefault.feat.ptid, addr, missing);
        /* Placed meanwhile: that placement may have missed the record. */
        if (test_bit(page, pb->received)) {
            blocktime_placed(addr, addr + TARGET_PAGE_SIZE);
        }
    }
    if (!missing || test_bit(page, pb->requested)) {
        return;
    }
    set_bit(page, pb->requested);
    if (!request_page(pb, page << TARGET_PAGE_BITS, &err)) {
        /* The loader sees the broken channel and reports it. */
        trace(postcopy_fault, "request failed: %s", error_get_pretty(err));
        error_free(err);
    }
}

static gpointer postcopy_fault_thread(gpointer opaque)
{
    struct pollfd pfd[2] = {
        { .fd = pc.uffd, .events = POLLIN },
        { .fd = pc.quit_fd, .events = POLLIN },
    };

    for (;;) {
        struct uffd_msg msgs[POSTCOPY_FAULT_BATCH];
        ssize_t n;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_report("postcopy: fault thread: poll: %s", strerror(errno));
            break;
        }
        if (pfd[1].revents) {
            break;
        }
        n = read(pc.uffd, msgs, sizeof(msgs));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            error_report("postcopy: fault thread: read: %s", strerror(errno));
            break;
        }
        for (size_t i = 0; i < n / sizeof(msgs[0]); i++) {
            if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
                handle_fault(&msgs[i]);
            }
        }
    }
    return NULL;
}

/* ---- postcopy-preempt ---- */

static bool place(RAMBlock *rb, uint64_t offset, const uint8_t *src,
                  uint64_t n, Error **errp);

/* One page record of the preempt channel; false at its clean end. */
static bool preempt_load_page(QEMUFile *f, uint8_t *buf, Error **errp)
{
    uint8_t type;
    char id[256];
    uint64_t offset;
    RAMBlock *rb;

    if (qemu_file_at_eof(f)) {
        return false;
    }
    type = qemu_get_byte(f);
    qemu_get_counted_string(f, id);
    offset = qemu_get_be64(f);
    if (!qemu_file_check(f, errp)) {
        return false;
    }
    rb = ram_block_find(id);
    if ((type != MIG_PREEMPT_PAGE && type != MIG_PREEMPT_ZERO) || !rb ||
        (offset & ~TARGET_PAGE_MASK) || offset >= rb->size) {
        error_setg(errp, "a bad page record (type %u, block '%s', offset "
                   "0x%" PRIx64 ")", type, id, offset);
        return false;
    }
    if (type == MIG_PREEMPT_PAGE &&
        !qemu_get_buffer(f, buf, TARGET_PAGE_SIZE)) {
        qemu_file_check(f, errp);
        return false;
    }
    return place(rb, offset, type == MIG_PREEMPT_PAGE ? buf : NULL, 1, errp);
}

static gpointer preempt_thread_fn(gpointer opaque)
{
    MigListener *listener = opaque;
    uint8_t ours[16], theirs[16];
    QEMUFile *f = NULL;
    Error *err = NULL;
    uint8_t *buf = NULL;
    MigChannel *ch;

    ch = mig_listener_accept(listener, pc.preempt_cancel, &err);
    if (!ch) {
        goto out;
    }
    f = qemu_file_new_input(ch);
    if (!migration_tls_server(ch, &err)) {
        goto out;
    }
    if (qemu_get_be32(f) != MIG_PREEMPT_MAGIC ||
        !qemu_get_buffer(f, theirs, sizeof(theirs)) ||
        !qemu_loadvm_stream_uuid(ours) || memcmp(ours, theirs, 16)) {
        if (qemu_file_check(f, &err)) {
            error_setg(&err, "not the page channel of this migration");
        }
        goto out;
    }
    if (posix_memalign((void **)&buf, TARGET_PAGE_SIZE, TARGET_PAGE_SIZE)) {
        error_setg(&err, "no memory for a page");
        goto out;
    }
    while (preempt_load_page(f, buf, &err)) {
    }

out:
    /* The loader pauses (recovery reopens this channel too). */
    if (err && !__atomic_load_n(&pc.preempt_stopping, __ATOMIC_SEQ_CST)) {
        error_prepend(&err, "postcopy-preempt: ");
        migration_incoming_stream_broke(pc.mis, err);
    }
    error_free(err);
    free(buf);
    if (f) {
        qemu_fclose(f);
    }
    return NULL;
}

static bool preempt_start(MigrationIncomingState *mis, Error **errp)
{
    pc.preempt_cancel = mig_cancel_new(errp);
    if (!pc.preempt_cancel) {
        return false;
    }
    pc.preempt_stopping = false;
    pc.preempt_thread = g_thread_new("mig/preempt", preempt_thread_fn,
                                     migration_incoming_listener(mis));
    return true;
}

static void preempt_stop(void)
{
    if (pc.preempt_thread) {
        __atomic_store_n(&pc.preempt_stopping, true, __ATOMIC_SEQ_CST);
        mig_cancel_fire(pc.preempt_cancel);
        g_thread_join(pc.preempt_thread);
        pc.preempt_thread = NULL;
    }
    mig_cancel_free(pc.preempt_cancel);
    pc.preempt_cancel = NULL;
}

/* ---- listen, place, end ---- */

static bool register_block(PostcopyBlock *pb, Error **errp)
{
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)pb->rb->host, .len = pb->rb->size },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE);

    if (ioctl(pc.uffd, UFFDIO_REGISTER, &reg) < 0) {
        error_setg_errno(errp, errno, "postcopy-ram: RAM block '%s' cannot "
                         "be registered with userfaultfd", pb->rb->idstr);
        return false;
    }
    if ((reg.ioctls & need) != need) {
        error_setg(errp, "postcopy-ram: RAM block '%s': userfaultfd cannot "
                   "copy or zero-fill pages of this memory", pb->rb->idstr);
        return false;
    }
    return true;
}

bool postcopy_incoming_listen(MigrationIncomingState *mis, Error **errp)
{
    unsigned n = 0;

    if (pc.uffd < 0) {
        error_setg(errp, "postcopy: LISTEN without ADVISE");
        return false;
    }
    if (pc.listening) {
        error_setg(errp, "postcopy: a second LISTEN");
        return false;
    }
    RAMBLOCK_FOREACH(rb) {
        n++;
    }
    pc.blocks = g_new0(PostcopyBlock, n);
    pc.nr_blocks = n;
    pc.mis = mis;
    n = 0;
    RAMBLOCK_FOREACH(rb) {
        PostcopyBlock *pb = &pc.blocks[n++];

        pb->rb = rb;
        pb->received = bitmap_new(rb->pages);
        pb->requested = bitmap_new(rb->pages);
        if (!register_block(pb, errp)) {
            return false;
        }
    }
    blocktime_reset();
    pc.quit_fd = eventfd(0, EFD_CLOEXEC);
    if (pc.quit_fd < 0) {
        error_setg_errno(errp, errno, "postcopy: eventfd");
        return false;
    }
    if (migrate_postcopy_preempt() && !preempt_start(mis, errp)) {
        return false;
    }
    pc.fault_thread = g_thread_new("mig/fault", postcopy_fault_thread, NULL);
    __atomic_store_n(&pc.listening, true, __ATOMIC_SEQ_CST);
    trace(postcopy_listen, "%u blocks registered", pc.nr_blocks);
    return true;
}

static PostcopyBlock *block_of(RAMBlock *rb)
{
    for (unsigned i = 0; i < pc.nr_blocks; i++) {
        if (pc.blocks[i].rb == rb) {
            return &pc.blocks[i];
        }
    }
    return NULL;
}

/*
 * One UFFDIO_COPY (@src) or UFFDIO_ZEROPAGE over @n pages; a page that
 * is there already (EEXIST) is skipped.
 */
static bool place(RAMBlock *rb, uint64_t offset, const uint8_t *src,
                  uint64_t n, Error **errp)
{
    PostcopyBlock *pb = block_of(rb);
    uintptr_t start = (uintptr_t)rb->host + offset;
    uint64_t done = 0, len = n << TARGET_PAGE_BITS;

    if (!pb) {
        error_setg(errp, "postcopy: RAM block '%s' is not registered",
                   rb->idstr);
        return false;
    }
    while (done < len) {
        int64_t got;
        int ret;

        if (src) {
            struct uffdio_copy c = {
                .dst = start + done, .src = (uintptr_t)src + done,
                .len = len - done,
            };

            ret = ioctl(pc.uffd, UFFDIO_COPY, &c);
            got = c.copy;
        } else {
            struct uffdio_zeropage z = {
                .range = { .start = start + done, .len = len - done },
            };

            ret = ioctl(pc.uffd, UFFDIO_ZEROPAGE, &z);
            got = z.zeropage;
        }
        if (ret == 0) {
            break;
        }
        if (got > 0) {
            done += got;
        }
        if (errno == EEXIST) {
            done += TARGET_PAGE_SIZE;   /* got stops at the page that is */
        } else if (errno != EAGAIN && errno != EINTR) {
            error_setg_errno(errp, errno, "postcopy: RAM block '%s': cannot "
                             "place %" PRIu64 " pages at 0x%" PRIx64,
                             rb->idstr, n, offset);
            return false;
        }
    }
    bitmap_set_atomic(pb->received, offset >> TARGET_PAGE_BITS, n);
    trace(postcopy_place, "'%s' + 0x%" PRIx64 ": %" PRIu64 " %s pages",
          rb->idstr, offset, n, src ? "data" : "zero");
    if (migrate_postcopy_blocktime()) {
        blocktime_placed(start, start + len);
    }
    return true;
}

bool postcopy_place_pages(RAMBlock *rb, uint64_t offset, const void *src,
                          uint64_t n, Error **errp)
{
    return place(rb, offset, src, n, errp);
}

bool postcopy_place_zero(RAMBlock *rb, uint64_t offset, uint64_t n,
                         Error **errp)
{
    return place(rb, offset, NULL, n, errp);
}

static void fault_thread_stop(void)
{
    uint64_t one = 1;

    if (pc.fault_thread) {
        if (write(pc.quit_fd, &one, sizeof(one)) != sizeof(one)) {
            error_report("postcopy: cannot stop the fault thread: %s",
                         strerror(errno));
        }
        g_thread_join(pc.fault_thread);
        pc.fault_thread = NULL;
    }
    if (pc.quit_fd >= 0) {
        close(pc.quit_fd);
        pc.quit_fd = -1;
    }
}

static void blocks_free(void)
{
    for (unsigned i = 0; i < pc.nr_blocks; i++) {
        g_free(pc.blocks[i].received);
        g_free(pc.blocks[i].requested);
    }
    g_free(pc.blocks);
    pc.blocks = NULL;
    pc.nr_blocks = 0;
}

void postcopy_incoming_failed(void)
{
    preempt_stop();
}

bool postcopy_incoming_resume(MigrationIncomingState *mis, Error **errp)
{
    trace(postcopy_resume, "destination: %u blocks' received bitmaps",
          pc.nr_blocks);
    for (unsigned i = 0; i < pc.nr_blocks; i++) {
        PostcopyBlock *pb = &pc.blocks[i];

        if (!migration_incoming_rp_send_bitmap(mis, pb->rb->idstr,
                                               pb->rb->pages, pb->received,
                                               errp)) {
            return false;
        }
    }
    if (migrate_postcopy_preempt() && !preempt_start(mis, errp)) {
        return false;
    }
    /*
     * Threads that wait for a page asked for before the break would wait
     * for ever: ask again.  The fault thread skips pages it has asked
     * for, so this runs while it can only add requests of its own.
     */
    for (unsigned i = 0; i < pc.nr_blocks; i++) {
        PostcopyBlock *pb = &pc.blocks[i];

        for (uint64_t page = 0; page < pb->rb->pages; page++) {
            if (test_bit(page, pb->requested) &&
                !test_bit(page, pb->received) &&
                !request_page(pb, page << TARGET_PAGE_BITS, errp)) {
                return false;
            }
        }
    }
    return migration_incoming_rp_send(mis, MIG_RP_MSG_RESUME_ACK, NULL, 0,
                                      errp);
}

void postcopy_incoming_end(void)
{
    for (unsigned i = 0; i < pc.nr_blocks; i++) {
        struct uffdio_range r = {
            .start = (uintptr_t)pc.blocks[i].rb->host,
            .len = pc.blocks[i].rb->size,
        };

        /* Wakes every waiter: what never came is zero on the source. */
        if (ioctl(pc.uffd, UFFDIO_UNREGISTER, &r) < 0) {
            warn_report("postcopy: RAM block '%s': unregister: %s",
                        pc.blocks[i].rb->idstr, strerror(errno));
        }
    }
    postcopy_incoming_cleanup();
}

void postcopy_incoming_cleanup(void)
{
    __atomic_store_n(&pc.listening, false, __ATOMIC_SEQ_CST);
    /* It places pages: before the userfaultfd goes. */
    preempt_stop();
    fault_thread_stop();
    if (pc.uffd >= 0) {
        /* Closing it unregisters everything and wakes every waiter. */
        close(pc.uffd);
        pc.uffd = -1;
    }
    blocks_free();
    pc.mis = NULL;
}
