/*
 * RAM precopy.
 *
 * Source: every page starts as a candidate; each pass walks the
 * migration bitmap and sends runs of dirty pages, then a sync moves the
 * dirty log (pages written since) into the bitmap for the next pass.
 * Zero pages are never sent unless the destination already holds data
 * for them (then a zero record tells it to clear them): a fresh
 * destination's RAM is zero, so untouched memory costs nothing on either
 * side.  Pages that are holes of a memfd, and anonymous pages never
 * touched, are skipped without reading them.  Page data goes to a socket
 * by reference (see qemu_put_buffer_nocopy()), copied by no one but the
 * receiver.
 *
 * Records inside a RAM section (all big-endian):
 *   be64 offset | flags        offset within the block, page aligned
 *   [str block id]             unless RAM_FLAG_CONTINUE
 *   PAGES: be32 count, count pages of data
 *   ZERO:  be32 count
 *   EOS:   nothing (end of this section's records)
 *   MULTIFD_FLUSH: nothing; every page queued on the multifd channels
 *          before it has been sent (the destination waits for them all)
 *
 * With multifd, page data goes on the multifd channels instead, and the
 * main stream carries only the flush records, one at the end of every
 * pass and around the final pass, so that a page sent again can never
 * overtake its older copy on another channel.
 *
 * With mapped-ram (a file), the setup section carries one record per
 * block instead, and nothing else but EOS follows:
 *   MAPPED_BLOCK: the block's region in the file (see mapped-ram.c)
 * Pages go to their slots in the file (from this thread, or from the
 * multifd channels, which a sync at the end of each pass waits for, so
 * that an older copy never lands over a newer one), and the bitmaps of
 * which slots hold data are written at completion.  The destination
 * loads every block when it reads its record.
 */
#include "qemu/osdep.h"
#include "migration/timeline.h"
#include "qemu/buffer-is-zero.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include "qemu/cutils.h"
#include "system/ramblock.h"
#include "migration/register.h"
#include "migration/multifd.h"
#include "migration/options.h"
#include "migration/savevm.h"
#include "migration/migration.h"
#include "migration/ram.h"
#include "migration/mapped-ram.h"
#include "migration/postcopy-ram.h"
#include "migration/trace.h"

#define RAM_FLAG_PAGES 0x02
#define RAM_FLAG_ZERO 0x04
#define RAM_FLAG_MAPPED_BLOCK 0x08
#define RAM_FLAG_EOS 0x10
#define RAM_FLAG_CONTINUE 0x20
#define RAM_FLAG_MULTIFD_FLUSH 0x40
#define RAM_FLAG_MASK 0x7e

/* Largest run in one record: 1 MiB of data. */
#define RAM_MAX_RUN_PAGES 256
/* mapped-ram: one write per run; fewer, larger ones suit a file (8 MiB). */
#define RAM_MAPPED_RUN_PAGES 2048
/* How long one iteration may take before it lets the core look around. */
#define RAM_ITERATE_MAX_NS (50 * 1000 * 1000)

typedef struct RamBlockState {
    RAMBlock *rb;
    uint64_t pages;
    unsigned long *bmap;        /* pages to send */
    unsigned long *sent;        /* pages the destination holds data for */
    unsigned long *postcopy_sent;   /* pages pushed since the switch */
    /*
     * postcopy-preempt: pages the return-path thread sent on the preempt
     * channel (it sets bits atomically under preempted_lock; the push
     * skips them).
     */
    unsigned long *preempted;
} RamBlockState;

/* Migration thread only, between save_setup and save_cleanup. */
typedef struct RAMState {
    RamBlockState *blocks;
    unsigned nblocks;
    uint64_t dirty_pages;       /* bits set in the bmaps */
    unsigned cur_block;
    uint64_t cur_page;
    RAMBlock *last_sent_block;
    int64_t last_sync_ns;
    bool in_completion;
    bool postcopy;              /* after the switch: every page is placed */
    bool multifd;               /* pages go on the multifd channels */
    bool multifd_unflushed;     /* pages queued since the last flush */
    uint64_t max_run;           /* pages per run */
    /* mapped-ram: the blocks' regions (as blocks[]), and our page fd */
    MappedRamBlock *mapped;
    int mapped_fd;
} RAMState;

static RAMState *ram_state;
RamStats ram_stats;
/* Keeps ram_state's preempted bitmaps alive for the return-path thread. */
static GMutex preempted_lock;

/* Destination: the block of the previous record (incoming thread). */
static RAMBlock *load_last_block;
static RamPrefault *load_prefault;
/* Destination, postcopy: pages go through this buffer to their place. */
static uint8_t *load_postcopy_buf;
/* Destination, mapped-ram: the blocks loaded from their regions. */
static GHashTable *load_mapped_blocks;

static void stat_add(uint64_t *counter, uint64_t v)
{
    __atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

static void stat_set(uint64_t *counter, uint64_t v)
{
    __atomic_store_n(counter, v, __ATOMIC_RELAXED);
}


/*
 * Whether the private mapping at @addr maps a file (a backend with
 * share=off), whose content shows through where the guest has not
 * written.  RAMBlock hides such an fd (it does not show guest writes),
 * so ask the kernel's list of mappings.
 */
static bool private_mapping_is_file(const void *addr)
{
    g_autofree char *maps = NULL;
    uintptr_t a = (uintptr_t)addr;

    if (!g_file_get_contents("/proc/self/maps", &maps, NULL, NULL)) {
        return true;    /* cannot tell: assume the worst */
    }
    for (char *line = maps; line && *line; ) {
        char *next = strchr(line, '\n');
        unsigned long start, end, inode;
        char path[256] = "";

        if (next) {
            *next++ = '\0';
        }
        if (sscanf(line, "%lx-%lx %*s %*s %*s %lu %255s", &start, &end,
                   &inode, path) >= 3 && a >= start && a < end) {
            return inode != 0 && !g_str_has_prefix(path, "/memfd:");
        }
        line = next;
    }
    return true;
}

/* /proc/self/pagemap: one entry per host page. */
#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)

/*
 * Clear the bits of private anonymous pages that were never touched
 * (neither present nor swapped out): they read as zero, and a guest
 * write from now on is in the dirty log.  Reading 2 GiB of untouched RAM
 * to find its zeros would cost more than all the rest of its migration.
 * Shared memory is left alone: its pages may hold data while unmapped.
 */
static uint64_t skip_untouched_anon(RamBlockState *bs)
{
    RAMBlock *rb = bs->rb;
    uint64_t entries[4096];
    uint64_t skipped = 0;
    int fd;

    if (rb->fd >= 0 || rb->shared || getpagesize() != TARGET_PAGE_SIZE ||
        private_mapping_is_file(rb->host)) {
        return 0;
    }
    fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;       /* no page information: read every page */
    }
    for (uint64_t page = 0; page < bs->pages; ) {
        uint64_t first = ((uintptr_t)rb->host >> TARGET_PAGE_BITS) + page;
        size_t want = MIN(bs->pages - page, G_N_ELEMENTS(entries));
        ssize_t got = pread(fd, entries, want * sizeof(entries[0]),
                            first * sizeof(entries[0]));

        if (got < (ssize_t)sizeof(entries[0])) {
            break;
        }
        for (size_t i = 0; i < got / sizeof(entries[0]); i++) {
            if (!(entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))) {
                clear_bit(page + i, bs->bmap);
                skipped++;
            }
        }
        page += got / sizeof(entries[0]);
    }
    close(fd);
    return skipped;
}

/* Clear the bits of pages that lie in holes of the block's memfd. */
static uint64_t skip_memfd_holes(RamBlockState *bs)
{
    RAMBlock *rb = bs->rb;
    uint64_t skipped = 0;
    off_t pos = rb->fd_offset, end = rb->fd_offset + rb->size;

    /* A private mapping's changes are not in the file: holes tell nothing. */
    if (rb->fd < 0 || !rb->shared) {
        return 0;
    }
    while (pos < end) {
        off_t data = lseek(rb->fd, pos, SEEK_DATA);
        off_t hole_end = data < 0 || data > end ? end : data;

        if (data < 0 && errno != ENXIO) {
            return skipped;     /* no hole information: read every page */
        }
        if (hole_end > pos) {
            uint64_t first = QEMU_ALIGN_UP(pos - rb->fd_offset,
                                           TARGET_PAGE_SIZE) >> TARGET_PAGE_BITS;
            uint64_t last = (hole_end - rb->fd_offset) >> TARGET_PAGE_BITS;

            if (last > first) {
                bitmap_clear(bs->bmap, first, last - first);
                skipped += last - first;
            }
        }
        if (hole_end >= end) {
            break;
        }
        pos = lseek(rb->fd, hole_end, SEEK_HOLE);
        if (pos < 0) {
            break;
        }
    }
    return skipped;
}

/* RAM bytes sent so far, on the main channel and the multifd ones. */
static uint64_t ram_bytes_sent(RAMState *rs)
{
    return __atomic_load_n(&ram_stats.transferred, __ATOMIC_RELAXED) +
           (rs->multifd ? multifd_bytes_transferred() -
                          multifd_device_state_bytes_transferred() : 0);
}

static bool ram_sync(RAMState *rs, Error **errp)
{
    uint64_t newly = 0;
    int64_t now = get_clock_ns();
    uint64_t count;

    if (!dirty_log_sync(errp)) {
        return false;
    }
    for (unsigned i = 0; i < rs->nblocks; i++) {
        newly += ram_block_dirty_sync(rs->blocks[i].rb, rs->blocks[i].bmap);
    }
    rs->dirty_pages += newly;
    if (!rs->in_completion && !rs->postcopy) {
        migration_throttle_after_sync(newly);
    }
    if (now > rs->last_sync_ns) {
        stat_set(&ram_stats.dirty_pages_rate,
                 newly * 1000000000ULL / (uint64_t)(now - rs->last_sync_ns));
    }
    rs->last_sync_ns = now;
    count = __atomic_add_fetch(&ram_stats.dirty_sync_count, 1,
                               __ATOMIC_RELAXED);
    stat_set(&ram_stats.remaining, rs->dirty_pages * TARGET_PAGE_SIZE);
    trace(ram_sync, "pass %" PRIu64 ": %" PRIu64 " pages newly dirty, %"
          PRIu64 " to send", count, newly, rs->dirty_pages);
    mig_timeline_pass(ram_bytes_sent(rs), newly);
    migration_event_pass(count);
    return true;
}

static void put_record_header(QEMUFile *f, RAMState *rs, RAMBlock *rb,
                              uint64_t offset, uint64_t flags)
{
    if (rb == rs->last_sent_block) {
        qemu_put_be64(f, offset | flags | RAM_FLAG_CONTINUE);
    } else {
        qemu_put_be64(f, offset | flags);
        qemu_put_counted_string(f, rb->idstr);
        rs->last_sent_block = rb;
    }
}

/*
 * Queue the pages of a run on the multifd channels; their send threads
 * tell zero pages from data.
 */
static void queue_run_multifd(QEMUFile *f, RAMState *rs, RamBlockState *bs,
                              uint64_t page, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        Error *err = NULL;

        if (!multifd_queue_ram_page(bs->rb, (page + i) << TARGET_PAGE_BITS,
                                    &err)) {
            qemu_file_set_error(f, -EIO, err);
            return;
        }
    }
    rs->multifd_unflushed = true;
}

/* End of a round of pages on multifd: sync, then mark the main stream. */
static bool ram_multifd_flush(QEMUFile *f, RAMState *rs)
{
    Error *err = NULL;

    if (!rs->multifd || !rs->multifd_unflushed) {
        return true;
    }
    if (!multifd_send_sync(&err)) {
        qemu_file_set_error(f, -EIO, err);
        return false;
    }
    rs->multifd_unflushed = false;
    /* mapped-ram: every page is in the file; the destination waits not. */
    if (rs->mapped) {
        return true;
    }
    qemu_put_be64(f, RAM_FLAG_MULTIFD_FLUSH);
    /*
     * The destination's channels stop at the SYNC until the loader reads
     * this record: it must leave now, before pages of the next round
     * fill the channels.
     */
    return qemu_fflush(f) == 0;
}

/*
 * mapped-ram without multifd: write the run into the file ourselves; the
 * bytes count as the stream's, for the bandwidth and the statistics.
 */
static void save_run_mapped(QEMUFile *f, RAMState *rs, RamBlockState *bs,
                                uint64_t page, uint64_t n)
{
    uint64_t normal = 0, zero = 0, bytes = 0;
    Error *err = NULL;

    if (!mapped_ram_save_run(rs->mapped_fd, &rs->mapped[bs - rs->blocks],
                             page << TARGET_PAGE_BITS, n, &normal, &zero,
                             &bytes, &err)) {
        qemu_file_set_error(f, -EIO, err);
    }
    qemu_file_account(f, bytes);
    stat_add(&ram_stats.normal_pages, normal);
    stat_add(&ram_stats.zero_pages, zero);
}

/*
 * Send the dirty pages of [page, page + n) of @bs (bits already taken).
 * Data pages go by reference straight from guest RAM.
 */
static uint64_t send_run(QEMUFile *f, RAMState *rs, RamBlockState *bs,
                         uint64_t page, uint64_t n)
{
    uint64_t bytes = qemu_file_transferred(f);
    uint64_t i = 0;

    if (rs->multifd) {
        queue_run_multifd(f, rs, bs, page, n);
        return 0;
    }
    if (rs->mapped) {
        save_run_mapped(f, rs, bs, page, n);
        i = n;
    }

    while (i < n) {
        uint8_t *host = bs->rb->host + ((page + i) << TARGET_PAGE_BITS);
        bool zero = buffer_is_zero(host, TARGET_PAGE_SIZE);
        uint64_t j = i + 1;

        while (j < n && buffer_is_zero(bs->rb->host +
                                         ((page + j) << TARGET_PAGE_BITS),
                                         TARGET_PAGE_SIZE) == zero) {
            j++;
        }
        if (zero) {
            uint64_t need = 0;

            stat_add(&ram_stats.zero_pages, j - i);
            for (uint64_t k = i; k < j; k++) {
                need += test_and_clear_bit(page + k, bs->sent);
            }
            /*
             * Only pages the destination holds data for need clearing;
             * after a postcopy switch every page must be placed.
             */
            if (need || rs->postcopy) {
                put_record_header(f, rs, bs->rb, (page + i) << TARGET_PAGE_BITS,
                                  RAM_FLAG_ZERO);
                qemu_put_be32(f, j - i);
            }
        } else {
            put_record_header(f, rs, bs->rb, (page + i) << TARGET_PAGE_BITS,
                              RAM_FLAG_PAGES);
            qemu_put_be32(f, j - i);
            qemu_put_buffer_nocopy(f, host, (j - i) << TARGET_PAGE_BITS);
            bitmap_set(bs->sent, page + i, j - i);
            stat_add(&ram_stats.normal_pages, j - i);
        }
        i = j;
    }
    bytes = qemu_file_transferred(f) - bytes;
    stat_add(&ram_stats.transferred, bytes);
    if (rs->postcopy) {
        bitmap_set(bs->postcopy_sent, page, n);
    }
    stat_add(rs->postcopy ? &ram_stats.postcopy_bytes :
             rs->in_completion ? &ram_stats.downtime_bytes
                               : &ram_stats.precopy_bytes, bytes);
    return bytes;
}

static bool test_bit_relaxed(uint64_t nr, const unsigned long *map)
{
    return __atomic_load_n(&map[BIT_WORD(nr)], __ATOMIC_RELAXED) &
           BIT_MASK(nr);
}

/* Find the next run of dirty pages from the scan position and send it. */
static bool send_next_run(QEMUFile *f, RAMState *rs)
{
    while (rs->cur_block < rs->nblocks) {
        RamBlockState *bs = &rs->blocks[rs->cur_block];
        uint64_t start = find_next_bit(bs->bmap, bs->pages, rs->cur_page);
        uint64_t end;

        if (start >= bs->pages) {
            rs->cur_block++;
            rs->cur_page = 0;
            continue;
        }
        end = find_next_zero_bit(bs->bmap, MIN(bs->pages,
                                               start + rs->max_run),
                                 start);
        bitmap_clear(bs->bmap, start, end - start);
        rs->dirty_pages -= end - start;
        rs->cur_page = end;
        if (!bs->preempted) {
            send_run(f, rs, bs, start, end - start);
            return true;
        }
        /* The pages sent on the preempt channel need not go again. */
        for (uint64_t p = start, q; p < end; p = q) {
            bool skip = test_bit_relaxed(p, bs->preempted);

            for (q = p + 1; q < end &&
                 test_bit_relaxed(q, bs->preempted) == skip; q++) {
            }
            if (!skip) {
                send_run(f, rs, bs, p, q - p);
            }
        }
        return true;
    }
    return false;
}

/* mapped-ram: give every block its region in the file. */
static bool ram_save_setup_mapped(QEMUFile *f, RAMState *rs, Error **errp)
{
    rs->mapped = g_new0(MappedRamBlock, rs->nblocks);
    for (unsigned i = 0; i < rs->nblocks; i++) {
        if (!mapped_ram_save_block_header(f, &rs->mapped[i], rs->blocks[i].rb,
                                          RAM_FLAG_MAPPED_BLOCK, errp)) {
            return false;
        }
    }
    mapped_ram_publish(rs->mapped, rs->nblocks);
    if (!rs->multifd) {
        rs->mapped_fd = mapped_ram_reopen(qemu_file_channel(f)->fd, true,
                                          errp);
    }
    return rs->mapped_fd >= 0 || rs->multifd;
}

static int ram_save_setup(QEMUFile *f, void *opaque, Error **errp)
{
    RAMState *rs = g_new0(RAMState, 1);
    unsigned n = 0, i = 0;
    uint64_t holes = 0;

    RAMBLOCK_FOREACH(rb) {
        n++;
    }
    rs->nblocks = n;
    rs->blocks = g_new0(RamBlockState, n);
    rs->multifd = migrate_multifd();
    rs->max_run = migrate_mapped_ram() && !rs->multifd ?
                  RAM_MAPPED_RUN_PAGES : RAM_MAX_RUN_PAGES;
    rs->mapped_fd = -1;
    memset(&ram_stats, 0, sizeof(ram_stats));
    ram_state = rs;
    if (!dirty_log_start(errp)) {
        error_prepend(errp, "RAM: cannot start dirty logging: ");
        return -EIO;
    }
    RAMBLOCK_FOREACH(rb) {
        RamBlockState *bs = &rs->blocks[i++];

        bs->rb = rb;
        bs->pages = rb->size >> TARGET_PAGE_BITS;
        bs->bmap = bitmap_new(bs->pages);
        bs->sent = bitmap_new(bs->pages);
        bitmap_fill(bs->bmap, bs->pages);
        holes += skip_memfd_holes(bs) + skip_untouched_anon(bs);
        rs->dirty_pages += bs->pages;
    }
    if (migrate_mapped_ram() && !ram_save_setup_mapped(f, rs, errp)) {
        return -EIO;
    }
    rs->dirty_pages -= holes;
    stat_add(&ram_stats.zero_pages, holes);
    stat_set(&ram_stats.remaining, rs->dirty_pages * TARGET_PAGE_SIZE);
    rs->last_sync_ns = get_clock_ns();
    trace(ram_setup, "%u blocks, %" PRIu64 " pages to send, %" PRIu64
          " in holes", n, rs->dirty_pages, holes);
    /* The first pass, every page, begins here. */
    mig_timeline_pass(ram_bytes_sent(rs), rs->dirty_pages);
    qemu_put_be64(f, RAM_FLAG_EOS);
    return 0;
}

static RamBlockState *block_state(RAMState *rs, RAMBlock *rb)
{
    for (unsigned i = 0; i < rs->nblocks; i++) {
        if (rs->blocks[i].rb == rb) {
            return &rs->blocks[i];
        }
    }
    return NULL;
}

/*
 * Postcopy: send the pages the destination asked for first, whatever
 * they hold and whatever the rate limit says; they leave the bitmap, so
 * the background push does not send them again.
 */
static void ram_serve_requests(QEMUFile *f, RAMState *rs)
{
    RAMBlock *rb;
    uint64_t offset, len;

    while (!qemu_file_get_error(f) &&
           migration_postcopy_take_request(&rb, &offset, &len)) {
        RamBlockState *bs = block_state(rs, rb);
        uint64_t page = offset >> TARGET_PAGE_BITS;
        uint64_t n = len >> TARGET_PAGE_BITS;

        if (!bs) {
            continue;
        }
        for (uint64_t i = 0; i < n; i++) {
            if (test_and_clear_bit(page + i, bs->bmap)) {
                rs->dirty_pages--;
            }
        }
        send_run(f, rs, bs, page, n);
    }
}

static int ram_save_iterate(QEMUFile *f, void *opaque)
{
    RAMState *rs = ram_state;
    int64_t start = get_clock_ns();
    int done = 0;
    unsigned runs = 0;

    rs->last_sent_block = NULL;
    for (;;) {
        if (rs->postcopy) {
            ram_serve_requests(f, rs);
        }
        if (migration_rate_limit_exceeded()) {
            break;
        }
        if (!send_next_run(f, rs)) {
            /* End of a pass: start over from the first block next time. */
            rs->cur_block = 0;
            rs->cur_page = 0;
            done = 1;
            trace(ram_save_pass, "end of a pass, %" PRIu64 " pages dirty",
                  rs->dirty_pages);
            ram_multifd_flush(f, rs);
            break;
        }
        if (qemu_file_get_error(f)) {
            break;
        }
        if (++runs % 64 == 0 && get_clock_ns() - start > RAM_ITERATE_MAX_NS) {
            break;
        }
    }
    stat_set(&ram_stats.remaining, rs->dirty_pages * TARGET_PAGE_SIZE);
    qemu_put_be64(f, RAM_FLAG_EOS);
    return qemu_file_get_error(f) ? qemu_file_get_error(f) : done;
}

static void ram_pending_estimate(void *opaque, uint64_t *must_precopy)
{
    *must_precopy += ram_state->dirty_pages * TARGET_PAGE_SIZE;
}

static void ram_pending_exact(void *opaque, uint64_t *must_precopy)
{
    Error *err = NULL;

    if (!ram_sync(ram_state, &err)) {
        /* A failed sync must not let the migration switch over early. */
        migration_report_error(err);
        *must_precopy += UINT64_MAX / 2;
        return;
    }
    *must_precopy += ram_state->dirty_pages * TARGET_PAGE_SIZE;
}

bool ram_postcopy_send_discard(QEMUFile *f, Error **errp)
{
    RAMState *rs = ram_state;

    trace(ram_postcopy_discard, "%" PRIu64 " pages dirty at the switch",
          rs->dirty_pages);

    rs->postcopy = true;
    g_mutex_lock(&preempted_lock);
    for (unsigned i = 0; i < rs->nblocks; i++) {
        rs->blocks[i].postcopy_sent = bitmap_new(rs->blocks[i].pages);
        if (migrate_postcopy_preempt()) {
            rs->blocks[i].preempted = bitmap_new(rs->blocks[i].pages);
        }
    }
    g_mutex_unlock(&preempted_lock);
    if (!ram_sync(rs, errp)) {
        return false;
    }
    rs->cur_block = 0;
    rs->cur_page = 0;
    for (unsigned i = 0; i < rs->nblocks; i++) {
        RamBlockState *bs = &rs->blocks[i];
        uint8_t cmd[MIG_CMD_MAX_LEN];
        size_t idlen = strlen(bs->rb->idstr);
        size_t head = 1 + idlen, len = head;
        uint64_t page = 0;

        cmd[0] = idlen;
        memcpy(cmd + 1, bs->rb->idstr, idlen);
        /* Dirty pages the destination holds an older copy of. */
        for (;;) {
            uint64_t end;

            while (page < bs->pages &&
                   !(test_bit(page, bs->bmap) && test_bit(page, bs->sent))) {
                page++;
            }
            if (page >= bs->pages) {
                break;
            }
            end = page + 1;
            while (end < bs->pages && test_bit(end, bs->bmap) &&
                   test_bit(end, bs->sent)) {
                end++;
            }
            if (len + 16 > sizeof(cmd)) {
                qemu_savevm_send_command(f, MIG_CMD_POSTCOPY_RAM_DISCARD, len,
                                         cmd);
                len = head;
            }
            stl_be(cmd + len, (page << TARGET_PAGE_BITS) >> 32);
            stl_be(cmd + len + 4, page << TARGET_PAGE_BITS);
            stl_be(cmd + len + 8, ((end - page) << TARGET_PAGE_BITS) >> 32);
            stl_be(cmd + len + 12, (end - page) << TARGET_PAGE_BITS);
            len += 16;
            bitmap_clear(bs->sent, page, end - page);
            page = end;
        }
        if (len > head) {
            qemu_savevm_send_command(f, MIG_CMD_POSTCOPY_RAM_DISCARD, len,
                                     cmd);
        }
    }
    trace(ram_sync, "postcopy: %" PRIu64 " pages left to send",
          rs->dirty_pages);
    return qemu_file_check(f, errp);
}

void ram_postcopy_resume_block(RAMBlock *rb, const unsigned long *received)
{
    RAMState *rs = ram_state;
    RamBlockState *bs = block_state(rs, rb);
    uint64_t again = 0;

    if (!bs || !bs->postcopy_sent) {
        return;
    }
    /* The return-path thread sends nothing on the preempt channel now. */
    for (uint64_t page = 0; page < bs->pages; page++) {
        bool pushed = test_bit(page, bs->postcopy_sent) ||
                      (bs->preempted && test_bit(page, bs->preempted));

        if (pushed && !test_bit(page, received)) {
            if (bs->preempted) {
                clear_bit(page, bs->preempted);
            }
            if (!test_bit(page, bs->bmap)) {
                set_bit(page, bs->bmap);
                again++;
            }
        }
    }
    rs->dirty_pages += again;
    rs->cur_block = 0;
    rs->cur_page = 0;
    stat_set(&ram_stats.remaining, rs->dirty_pages * TARGET_PAGE_SIZE);
    trace(ram_sync, "postcopy resume: '%s': %" PRIu64 " pages lost on the "
          "way go again, %" PRIu64 " pages left in all", rb->idstr, again,
          rs->dirty_pages);
}

void ram_postcopy_note_preempted(RAMBlock *rb, uint64_t offset, uint64_t len)
{
    RamBlockState *bs;

    g_mutex_lock(&preempted_lock);
    bs = ram_state ? block_state(ram_state, rb) : NULL;
    if (bs && bs->preempted) {
        bitmap_set_atomic(bs->preempted, offset >> TARGET_PAGE_BITS,
                          len >> TARGET_PAGE_BITS);
    }
    g_mutex_unlock(&preempted_lock);
}

static bool ram_has_postcopy(void *opaque)
{
    return migrate_postcopy_ram();
}

/* Everything was sent (iterate returned 1 with no request left). */
static int ram_save_complete_postcopy(QEMUFile *f, void *opaque)
{
    stat_set(&ram_stats.remaining, 0);
    qemu_put_be64(f, RAM_FLAG_EOS);
    return qemu_file_get_error(f);
}

static int ram_save_complete(QEMUFile *f, void *opaque)
{
    RAMState *rs = ram_state;
    uint64_t multifd_before = rs->multifd ? multifd_ram_bytes_transferred() : 0;
    Error *err = NULL;

    rs->in_completion = true;
    trace(ram_save_complete, "%" PRIu64 " pages dirty at the stop",
          rs->dirty_pages);
    /* What an unfinished pass queued must land before the last pass. */
    if (!ram_multifd_flush(f, rs)) {
        return -EIO;
    }
    if (!ram_sync(rs, &err)) {
        qemu_file_set_error(f, -EIO, err);
        return -EIO;
    }
    rs->cur_block = 0;
    rs->cur_page = 0;
    rs->last_sent_block = NULL;
    while (send_next_run(f, rs)) {
        if (qemu_file_get_error(f)) {
            return qemu_file_get_error(f);
        }
    }
    if (!ram_multifd_flush(f, rs)) {
        return -EIO;
    }
    /*
     * The VM is stopped: what the channels sent since, the flush has
     * waited for (pages an unfinished pass had queued count too).
     */
    if (rs->multifd) {
        stat_add(&ram_stats.downtime_bytes,
                 multifd_ram_bytes_transferred() - multifd_before);
    }
    /* Every page is in its slot: the bitmaps say which. */
    for (unsigned i = 0; rs->mapped && i < rs->nblocks; i++) {
        if (!mapped_ram_save_bitmap(qemu_file_channel(f)->fd, &rs->mapped[i],
                                    &err)) {
            qemu_file_set_error(f, -EIO, err);
            return -EIO;
        }
    }
    if (rs->multifd && !rs->mapped) {
        qemu_file_note_ref_elsewhere(f);
    }
    stat_set(&ram_stats.remaining, 0);
    qemu_put_be64(f, RAM_FLAG_EOS);
    return qemu_file_get_error(f);
}

static void ram_save_cleanup(void *opaque)
{
    RAMState *rs = ram_state;

    dirty_log_stop();
    if (!rs) {
        return;
    }
    g_mutex_lock(&preempted_lock);
    ram_state = NULL;
    g_mutex_unlock(&preempted_lock);
    for (unsigned i = 0; i < rs->nblocks; i++) {
        g_free(rs->blocks[i].bmap);
        g_free(rs->blocks[i].sent);
        g_free(rs->blocks[i].postcopy_sent);
        g_free(rs->blocks[i].preempted);
        if (rs->mapped) {
            g_free(rs->mapped[i].bitmap);
        }
    }
    mapped_ram_publish(NULL, 0);
    g_free(rs->mapped);
    if (rs->mapped_fd >= 0) {
        close(rs->mapped_fd);
    }
    g_free(rs->blocks);
    g_free(rs);
    ram_state = NULL;
}

/* ---- destination ---- */

/*
 * The source never sends a zero page the destination has no data for, so
 * every block must read as zero before the load: a previous failed load
 * may have left data, and a file backend may hold some.  Done without
 * touching memory: a hole punched in a shared backing file, dropped pages
 * of anonymous memory, fresh anonymous pages over a private file mapping.
 */
static bool ram_load_zero_block(RAMBlock *rb, bool private_file,
                                Error **errp)
{
    void *p;

    if (rb->fd >= 0 && rb->shared) {
        if (fallocate(rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      rb->fd_offset, rb->size) == 0) {
            return true;
        }
        /* No hole punching here: clear what is not zero, page by page. */
        for (uint64_t off = 0; off < rb->size; off += TARGET_PAGE_SIZE) {
            if (!buffer_is_zero(rb->host + off, TARGET_PAGE_SIZE)) {
                memset(rb->host + off, 0, TARGET_PAGE_SIZE);
            }
        }
        return true;
    }
    if (!private_file) {
        if (madvise(rb->host, rb->size, MADV_DONTNEED) == 0) {
            return true;
        }
        error_setg_errno(errp, errno, "RAM: block '%s': cannot drop its "
                         "pages", rb->idstr);
        return false;
    }
    p = mmap(rb->host, rb->size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        error_setg_errno(errp, errno, "RAM: block '%s': cannot replace its "
                         "memory with zero pages", rb->idstr);
        return false;
    }
    return true;
}

/*
 * Whether @rb may hold data before the load.  The destination's VM has
 * not run, so anonymous memory and unlinked files (memfd) are zero on the
 * first load; a named file may have content.  Clearing only then keeps
 * preallocated memory allocated.
 */
static bool ram_block_may_hold_data(RAMBlock *rb, bool private_file,
                                    bool loaded_before)
{
    struct stat st;

    if (loaded_before || private_file) {
        return true;
    }
    if (rb->fd < 0) {
        return false;
    }
    return fstat(rb->fd, &st) < 0 || st.st_nlink > 0;
}

bool ram_load_prepare(Error **errp)
{
    static bool loaded_before;

    RAMBLOCK_FOREACH(rb) {
        bool private_file = !(rb->fd >= 0 && rb->shared) &&
                            private_mapping_is_file(rb->host);

        bool clear = ram_block_may_hold_data(rb, private_file,
                                             loaded_before);

        trace(ram_load_prepare, "'%s': %s", rb->idstr,
              clear ? "cleared" : "zero already");
        if (clear && !ram_load_zero_block(rb, private_file, errp)) {
            return false;
        }
    }
    loaded_before = true;
    return true;
}

bool ram_load_discard(RAMBlock *rb, uint64_t offset, uint64_t len,
                      Error **errp)
{
    if ((offset | len) & ~TARGET_PAGE_MASK || offset >= rb->size ||
        len > rb->size - offset || !len) {
        error_setg(errp, "postcopy: discard of 0x%" PRIx64 " bytes at 0x%"
                   PRIx64 " does not fit RAM block '%s' (0x%" PRIx64
                   " bytes) in whole pages", len, offset, rb->idstr, rb->size);
        return false;
    }
    trace(ram_load_discard, "'%s' + 0x%" PRIx64 ": 0x%" PRIx64 " bytes",
          rb->idstr, offset, len);
    if (rb->fd >= 0 && rb->shared) {
        if (fallocate(rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      rb->fd_offset + offset, len) == 0) {
            return true;
        }
    } else if (madvise(rb->host + offset, len, MADV_DONTNEED) == 0) {
        return true;
    }
    error_setg_errno(errp, errno, "postcopy: RAM block '%s': cannot drop "
                     "0x%" PRIx64 " bytes at 0x%" PRIx64, rb->idstr, len,
                     offset);
    return false;
}

bool ram_load_postcopy_listen(void)
{
    /* Its faults would come to the fault thread: RAM fills by placing. */
    ram_prefault_stop(load_prefault);
    load_prefault = NULL;
    /* UFFDIO_COPY takes whole pages from a page-aligned source. */
    if (posix_memalign((void **)&load_postcopy_buf, TARGET_PAGE_SIZE,
                       RAM_MAX_RUN_PAGES * TARGET_PAGE_SIZE)) {
        return false;
    }
    return true;
}

static int ram_load_setup(QEMUFile *f, void *opaque, Error **errp)
{
    load_last_block = NULL;
    load_prefault = ram_prefault_start();
    load_mapped_blocks = g_hash_table_new(NULL, NULL);
    return 0;
}

/*
 * The multifd receive threads are joined only after this (incoming.c),
 * so nothing freed here may be theirs: they write guest RAM and use
 * their own state only, never load_prefault or load_mapped_blocks.
 */
static int ram_load_cleanup(void *opaque)
{
    ram_prefault_stop(load_prefault);
    load_prefault = NULL;
    free(load_postcopy_buf);
    load_postcopy_buf = NULL;
    g_clear_pointer(&load_mapped_blocks, g_hash_table_destroy);
    return 0;
}

/* Wait until every page queued before the source's flush has landed. */
static bool ram_load_multifd_flush(Error **errp)
{
    uint8_t ours[16], theirs[16];

    if (!migrate_multifd()) {
        error_setg(errp, "RAM: a multifd flush, but multifd is off here");
        return false;
    }
    trace(ram_load_flush, "waiting for the multifd channels");
    if (!multifd_recv_sync_main(errp)) {
        return false;
    }
    /* Channels of another migration must not write into this one. */
    if (!qemu_loadvm_stream_uuid(ours) || !multifd_recv_uuid(theirs) ||
        memcmp(ours, theirs, 16)) {
        error_setg(errp, "RAM: the multifd channels carry another "
                   "migration's UUID");
        return false;
    }
    return true;
}

static RAMBlock *load_block(QEMUFile *f, uint64_t flags, Error **errp)
{
    char idstr[256];
    RAMBlock *rb;

    if (flags & RAM_FLAG_CONTINUE) {
        if (!load_last_block) {
            error_setg(errp, "RAM: a record continues a block but none was "
                       "named before");
        }
        return load_last_block;
    }
    if (!qemu_get_counted_string(f, idstr)) {
        qemu_file_check(f, errp);
        return NULL;
    }
    rb = ram_block_find(idstr);
    if (!rb) {
        error_setg(errp, "RAM: unknown block '%s'", idstr);
        return NULL;
    }
    load_last_block = rb;
    return rb;
}

/*
 * mapped-ram readers without multifd: the first touch of fresh guest RAM,
 * more than the file, bounds the load, and two threads touch in parallel.
 */
#define MAPPED_RAM_LOAD_THREADS 2

/* mapped-ram: a block's record; its pages come from the file now. */
static bool ram_load_mapped_block(QEMUFile *f, uint64_t header, Error **errp)
{
    RAMBlock *rb;

    if (!migrate_mapped_ram()) {
        error_setg(errp, "RAM: a mapped-ram block record, but mapped-ram is "
                   "off here");
        return false;
    }
    if (header != RAM_FLAG_MAPPED_BLOCK) {
        error_setg(errp, "RAM: malformed mapped-ram block record 0x%" PRIx64,
                   header);
        return false;
    }
    rb = mapped_ram_load_block(f, migrate_multifd() ?
                               migrate_multifd_channels() :
                               MAPPED_RAM_LOAD_THREADS, load_prefault, errp);
    if (!rb) {
        return false;
    }
    if (!g_hash_table_add(load_mapped_blocks, rb)) {
        error_setg(errp, "RAM: mapped-ram: block '%s' has two regions",
                   rb->idstr);
        return false;
    }
    return true;
}

/* mapped-ram: every block must have come with its region. */
static bool ram_load_mapped_complete(Error **errp)
{
    RAMBLOCK_FOREACH(rb) {
        if (!g_hash_table_contains(load_mapped_blocks, rb)) {
            error_setg(errp, "RAM: mapped-ram: the file has no region for "
                       "block '%s'", rb->idstr);
            return false;
        }
    }
    return true;
}

/* After LISTEN: through the buffer into place, never written in place. */
static bool ram_load_postcopy_run(QEMUFile *f, RAMBlock *rb, uint64_t offset,
                                  uint32_t count, bool data, Error **errp)
{
    if (!data) {
        return postcopy_place_zero(rb, offset, count, errp);
    }
    if (!qemu_get_buffer(f, load_postcopy_buf,
                         (size_t)count << TARGET_PAGE_BITS)) {
        qemu_file_check(f, errp);
        error_prepend(errp, "RAM: block '%s': ", rb->idstr);
        return false;
    }
    return postcopy_place_pages(rb, offset, load_postcopy_buf, count, errp);
}

static int ram_load_state(QEMUFile *f, void *opaque, int version_id,
                          Error **errp)
{
    for (;;) {
        uint64_t header = qemu_get_be64(f);
        uint64_t flags = header & ~TARGET_PAGE_MASK;
        uint64_t offset = header & TARGET_PAGE_MASK;
        uint32_t count;
        RAMBlock *rb;
        uint8_t *host;

        if (!qemu_file_check(f, errp)) {
            return -EIO;
        }
        if (flags & ~RAM_FLAG_MASK) {
            error_setg(errp, "RAM: unknown record flags 0x%" PRIx64, flags);
            return -EINVAL;
        }
        if (flags & RAM_FLAG_MAPPED_BLOCK) {
            if (!ram_load_mapped_block(f, header, errp)) {
                return -EINVAL;
            }
            continue;
        }
        if (migrate_mapped_ram() && !(flags & RAM_FLAG_EOS)) {
            error_setg(errp, "RAM: record 0x%" PRIx64 " in a mapped-ram "
                       "stream, which has pages only in the file", header);
            return -EINVAL;
        }
        if (flags & RAM_FLAG_MULTIFD_FLUSH) {
            if (flags != RAM_FLAG_MULTIFD_FLUSH || offset) {
                error_setg(errp, "RAM: malformed multifd flush record 0x%"
                           PRIx64, header);
                return -EINVAL;
            }
            if (!ram_load_multifd_flush(errp)) {
                return -EIO;
            }
            continue;
        }
        if (flags & RAM_FLAG_EOS) {
            if (flags != RAM_FLAG_EOS || offset) {
                error_setg(errp, "RAM: malformed end-of-section record 0x%"
                           PRIx64, header);
                return -EINVAL;
            }
            if (migrate_mapped_ram() && !ram_load_mapped_complete(errp)) {
                return -EINVAL;
            }
            return 0;
        }
        if (!(flags & RAM_FLAG_PAGES) == !(flags & RAM_FLAG_ZERO)) {
            error_setg(errp, "RAM: record 0x%" PRIx64 " is neither pages nor "
                       "zero", header);
            return -EINVAL;
        }
        rb = load_block(f, flags, errp);
        if (!rb) {
            return -EINVAL;
        }
        count = qemu_get_be32(f);
        if (!qemu_file_check(f, errp)) {
            return -EIO;
        }
        if (count == 0 || count > RAM_MAX_RUN_PAGES) {
            error_setg(errp, "RAM: block '%s': run of %u pages (allowed: 1 to "
                       "%u)", rb->idstr, count, RAM_MAX_RUN_PAGES);
            return -EINVAL;
        }
        if (offset >= rb->size ||
            (uint64_t)count << TARGET_PAGE_BITS > rb->size - offset) {
            error_setg(errp, "RAM: block '%s': %u pages at offset 0x%" PRIx64
                       " lie beyond its size 0x%" PRIx64, rb->idstr, count,
                       offset, rb->size);
            return -EINVAL;
        }
        host = rb->host + offset;
        if (load_postcopy_buf) {
            if (!ram_load_postcopy_run(f, rb, offset, count,
                                       flags & RAM_FLAG_PAGES, errp)) {
                return -EIO;
            }
        } else if (flags & RAM_FLAG_PAGES) {
            bool by_fd = rb->fd >= 0 && rb->shared && qemu_file_can_splice(f);

            /* Into the backing file's page cache, or fault RAM in ahead. */
            if (!by_fd) {
                ram_prefault_hint(load_prefault, rb, offset +
                                  ((uint64_t)count << TARGET_PAGE_BITS));
            }
            /* Straight into guest RAM: no bounce buffer. */
            if (!qemu_get_buffer_to_ram(f, host, by_fd ? rb->fd : -1,
                                        rb->fd_offset + offset,
                                        (size_t)count << TARGET_PAGE_BITS)) {
                qemu_file_check(f, errp);
                error_prepend(errp, "RAM: block '%s': ", rb->idstr);
                return -EIO;
            }
        } else {
            for (uint32_t i = 0; i < count; i++) {
                uint8_t *page = host + ((size_t)i << TARGET_PAGE_BITS);

                if (!buffer_is_zero(page, TARGET_PAGE_SIZE)) {
                    memset(page, 0, TARGET_PAGE_SIZE);
                }
            }
        }
    }
}

static const SaveVMHandlers ram_handlers = {
    .save_setup = ram_save_setup,
    .save_live_iterate = ram_save_iterate,
    .state_pending_estimate = ram_pending_estimate,
    .state_pending_exact = ram_pending_exact,
    .save_live_complete_precopy = ram_save_complete,
    .has_postcopy = ram_has_postcopy,
    .save_live_complete_postcopy = ram_save_complete_postcopy,
    .save_cleanup = ram_save_cleanup,
    .load_setup = ram_load_setup,
    .load_state = ram_load_state,
    .load_cleanup = ram_load_cleanup,
};

void ram_mig_init(void)
{
    register_savevm_live("ram", 0, 1, &ram_handlers, NULL);
}
