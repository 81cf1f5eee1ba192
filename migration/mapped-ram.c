/*
 * mapped-ram: guest RAM at fixed places of a migration file.  See
 * include/migration/mapped-ram.h and docs/devel/migration.rst.
 *
 * A block header in the RAM setup section, after the record's be64
 * flags (all big-endian):
 *   str block id, be64 block size, be64 bitmap_offset, be64 pages_offset
 * Offsets are from the start of the file.  The bitmap follows the
 * header; the slots start at the next MAPPED_RAM_ALIGN boundary after
 * it; the main stream goes on after the last slot.
 */
#include "qemu/osdep.h"
#include "qemu/qemu-open.h"
#include "migration/trace.h"
#include "qemu/buffer-is-zero.h"
#include <sys/stat.h>
#include "migration/mapped-ram.h"
#include "migration/options.h"
#include "ram.h"

/* Destination: pages of the bitmap one reader claims at a time (8 MiB). */
#define MAPPED_RAM_LOAD_WINDOW 2048

G_STATIC_ASSERT(sizeof(unsigned long) == sizeof(uint64_t));

uint64_t mapped_ram_bitmap_bytes(uint64_t pages)
{
    return DIV_ROUND_UP(pages, 64) * 8;
}

/*
 * Page I/O goes through the page cache unless direct-io is on.  On this
 * project's test machine (2 cores, a virtual disk capped near 1 GB/s for
 * reads) O_DIRECT wrote 2 GiB in about half the time of filling fresh
 * page cache, at a tenth of the CPU, but a load right after it then has
 * to read the disk, while a file written buffered is read back from the
 * cache at memory speed: save + load took about as long either way, so
 * the default is QEMU's (off).  Reading what the page cache held first
 * and the rest with O_DIRECT (preadv2 with RWF_NOWAIT) was slower still:
 * it starts readahead that reads the disk twice.
 */
int mapped_ram_open(const char *path, bool writing, Error **errp)
{
    int flags = writing ? O_WRONLY : O_RDONLY;
    bool direct = migrate_direct_io();
    Error *err = NULL;
    int fd = qemu_open(path, flags | (direct ? O_DIRECT : 0), 0, &err);

    /* tmpfs and some others refuse O_DIRECT: the page cache it is. */
    if (fd < 0 && direct && errno == EINVAL) {
        error_free(err);
        err = NULL;
        fd = qemu_open(path, flags, 0, &err);
    }
    if (fd < 0) {
        error_prepend(&err, "mapped-ram: ");
        error_propagate(errp, err);
    }
    return fd;
}

int mapped_ram_reopen(int fd, bool writing, Error **errp)
{
    g_autofree char *path = g_strdup_printf("/proc/self/fd/%d", fd);

    return mapped_ram_open(path, writing, errp);
}

static bool pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t off,
                       Error **errp)
{
    while (len) {
        ssize_t n = pwrite(fd, buf, len, off);
        int fl;

        if (n < 0 && errno == EINTR) {
            continue;
        }
        /* O_DIRECT accepted at open, refused now: go buffered. */
        if (n < 0 && errno == EINVAL && (fl = fcntl(fd, F_GETFL)) >= 0 &&
            (fl & O_DIRECT) && fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : ENOSPC, "write of %zu "
                             "bytes at file offset 0x%" PRIx64 " failed", len,
                             off);
            return false;
        }
        buf += n;
        len -= n;
        off += n;
    }
    return true;
}

static bool pread_all(int fd, uint8_t *buf, size_t len, uint64_t off,
                      Error **errp)
{
    while (len) {
        ssize_t n = pread(fd, buf, len, off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "read at file offset 0x%" PRIx64
                             " failed", off);
            return false;
        }
        if (n == 0) {
            error_setg(errp, "the file ends at offset 0x%" PRIx64 " (%zu "
                       "bytes short): truncated", off, len);
            return false;
        }
        buf += n;
        len -= n;
        off += n;
    }
    return true;
}

/* ---- Source ---- */

static MappedRamBlock *published_blocks;
static unsigned published_count;

void mapped_ram_publish(MappedRamBlock *blocks, unsigned n)
{
    published_blocks = blocks;
    published_count = n;
}

MappedRamBlock *mapped_ram_lookup(RAMBlock *rb)
{
    for (unsigned i = 0; i < published_count; i++) {
        if (published_blocks[i].rb == rb) {
            return &published_blocks[i];
        }
    }
    return NULL;
}

bool mapped_ram_save_block_header(QEMUFile *f, MappedRamBlock *mb,
                                  RAMBlock *rb, uint64_t header_flags,
                                  Error **errp)
{
    uint64_t pos;

    if (!qemu_file_tell(f, &pos, errp)) {
        error_prepend(errp, "mapped-ram: ");
        return false;
    }
    mb->rb = rb;
    mb->pages = rb->size >> TARGET_PAGE_BITS;
    mb->bitmap = bitmap_new(mb->pages);
    /* flags, counted id, size and the two offsets */
    mb->bitmap_offset = pos + 8 + 1 + strlen(rb->idstr) + 3 * 8;
    mb->pages_offset = QEMU_ALIGN_UP(mb->bitmap_offset +
                                     mapped_ram_bitmap_bytes(mb->pages),
                                     MAPPED_RAM_ALIGN);
    trace(mapped_ram_block, "save '%s': bitmap at 0x%" PRIx64 ", pages at 0x%"
          PRIx64, rb->idstr, mb->bitmap_offset, mb->pages_offset);
    qemu_put_be64(f, header_flags);
    qemu_put_counted_string(f, rb->idstr);
    qemu_put_be64(f, rb->size);
    qemu_put_be64(f, mb->bitmap_offset);
    qemu_put_be64(f, mb->pages_offset);
    /* The region stays a hole until pages land in it. */
    if (!qemu_file_seek(f, mb->pages_offset + rb->size, errp)) {
        error_prepend(errp, "mapped-ram: ");
        return false;
    }
    return true;
}

/* Clear the bits of pages now zero whose slots held data. */
static void bitmap_clear_atomic(unsigned long *map, uint64_t start,
                                uint64_t n)
{
    for (uint64_t i = start; i < start + n; i++) {
        unsigned long *w = &map[BIT_WORD(i)];

        if (__atomic_load_n(w, __ATOMIC_RELAXED) & BIT_MASK(i)) {
            __atomic_fetch_and(w, ~BIT_MASK(i), __ATOMIC_RELAXED);
        }
    }
}

bool mapped_ram_save_run(int fd, MappedRamBlock *mb, uint64_t offset,
                         uint64_t n, uint64_t *normal, uint64_t *zero,
                         uint64_t *bytes, Error **errp)
{
    uint64_t first = offset >> TARGET_PAGE_BITS;
    uint8_t *host = mb->rb->host + offset;

    for (uint64_t i = 0; i < n; ) {
        bool is_zero = buffer_is_zero(host + (i << TARGET_PAGE_BITS),
                                      TARGET_PAGE_SIZE);
        uint64_t j = i + 1;

        while (j < n && buffer_is_zero(host + (j << TARGET_PAGE_BITS),
                                       TARGET_PAGE_SIZE) == is_zero) {
            j++;
        }
        if (is_zero) {
            bitmap_clear_atomic(mb->bitmap, first + i, j - i);
            *zero += j - i;
        } else {
            size_t len = (j - i) << TARGET_PAGE_BITS;

            if (!pwrite_all(fd, host + (i << TARGET_PAGE_BITS), len,
                            mb->pages_offset + offset +
                            (i << TARGET_PAGE_BITS), errp)) {
                error_prepend(errp, "mapped-ram: block '%s': ",
                              mb->rb->idstr);
                return false;
            }
            bitmap_set_atomic(mb->bitmap, first + i, j - i);
            *normal += j - i;
            *bytes += len;
        }
        i = j;
    }
    return true;
}

bool mapped_ram_save_bitmap(int fd, MappedRamBlock *mb, Error **errp)
{
    uint64_t words = mapped_ram_bitmap_bytes(mb->pages) / 8;
    g_autofree uint64_t *le = g_new(uint64_t, words);

    for (uint64_t i = 0; i < words; i++) {
        le[i] = GUINT64_TO_LE(mb->bitmap[i]);
    }
    if (!pwrite_all(fd, (uint8_t *)le, words * 8, mb->bitmap_offset, errp)) {
        error_prepend(errp, "mapped-ram: block '%s': bitmap: ",
                      mb->rb->idstr);
        return false;
    }
    return true;
}

/* ---- Destination ---- */

typedef struct MappedRamLoad {
    MappedRamBlock *mb;
    int file_fd;                /* the stream's, to reopen */
    uint64_t next_page;         /* atomic: the next window to claim */
    RamPrefault *prefault;      /* lock */
    GMutex lock;
    Error *err;                 /* lock: the first failure */
    bool failed;                /* atomic */
} MappedRamLoad;

/* Read the set pages of [start, start + window) into guest RAM. */
static bool load_window(MappedRamBlock *mb, int fd, uint64_t start,
                        Error **errp)
{
    uint64_t end = MIN(mb->pages, start + MAPPED_RAM_LOAD_WINDOW);

    for (uint64_t p = find_next_bit(mb->bitmap, end, start); p < end; ) {
        uint64_t q = find_next_zero_bit(mb->bitmap, end, p);
        uint64_t off = p << TARGET_PAGE_BITS;

        if (!pread_all(fd, mb->rb->host + off, (q - p) << TARGET_PAGE_BITS,
                       mb->pages_offset + off, errp)) {
            return false;
        }
        p = find_next_bit(mb->bitmap, end, q);
    }
    return true;
}

/* One reader: claim windows until none is left or someone failed. */
static gpointer load_thread(gpointer opaque)
{
    MappedRamLoad *ld = opaque;
    Error *err = NULL;
    int fd = mapped_ram_reopen(ld->file_fd, false, &err);

    while (fd >= 0 && !__atomic_load_n(&ld->failed, __ATOMIC_RELAXED)) {
        uint64_t start = __atomic_fetch_add(&ld->next_page,
                                            MAPPED_RAM_LOAD_WINDOW,
                                            __ATOMIC_RELAXED);
        uint64_t end = MIN(ld->mb->pages, start + MAPPED_RAM_LOAD_WINDOW);

        if (start >= ld->mb->pages) {
            break;
        }
        /*
         * Fresh pages fault in on the helper, ahead of the next windows;
         * a window of zero pages gives no hint, as data gives in a stream.
         */
        if (find_next_bit(ld->mb->bitmap, end, start) < end) {
            g_mutex_lock(&ld->lock);
            ram_prefault_hint(ld->prefault, ld->mb->rb,
                              end << TARGET_PAGE_BITS);
            g_mutex_unlock(&ld->lock);
        }
        if (!load_window(ld->mb, fd, start, &err)) {
            break;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    if (err) {
        g_mutex_lock(&ld->lock);
        if (!ld->err) {
            ld->err = err;
            err = NULL;
        }
        g_mutex_unlock(&ld->lock);
        __atomic_store_n(&ld->failed, true, __ATOMIC_RELAXED);
        error_free(err);
    }
    return NULL;
}

static bool load_pages(MappedRamBlock *mb, int file_fd, unsigned threads,
                       RamPrefault *prefault, Error **errp)
{
    MappedRamLoad ld = { .mb = mb, .file_fd = file_fd, .prefault = prefault };
    g_autofree GThread **th = g_new0(GThread *, threads);

    g_mutex_init(&ld.lock);
    for (unsigned i = 1; i < threads; i++) {
        th[i] = g_thread_new("mig/mapped-ram", load_thread, &ld);
    }
    load_thread(&ld);
    for (unsigned i = 1; i < threads; i++) {
        g_thread_join(th[i]);
    }
    g_mutex_clear(&ld.lock);
    if (ld.err) {
        error_propagate(errp, ld.err);
        return false;
    }
    return true;
}

/* Read @mb's bitmap from the file and check it covers only its pages. */
static bool load_bitmap(MappedRamBlock *mb, int fd, Error **errp)
{
    uint64_t words = mapped_ram_bitmap_bytes(mb->pages) / 8;
    unsigned tail = mb->pages % 64;

    mb->bitmap = g_new(unsigned long, words);
    if (!pread_all(fd, (uint8_t *)mb->bitmap, words * 8, mb->bitmap_offset,
                   errp)) {
        error_prepend(errp, "bitmap: ");
        return false;
    }
    for (uint64_t i = 0; i < words; i++) {
        mb->bitmap[i] = GUINT64_FROM_LE(mb->bitmap[i]);
    }
    if (tail && (mb->bitmap[words - 1] >> tail)) {
        error_setg(errp, "the bitmap marks pages beyond the block's %" PRIu64
                   " pages", mb->pages);
        return false;
    }
    return true;
}

/* Check the header's region against the file; @pos: where it ends. */
static bool check_region(MappedRamBlock *mb, uint64_t pos, uint64_t file_size,
                         Error **errp)
{
    uint64_t bitmap_end = mb->bitmap_offset +
                          mapped_ram_bitmap_bytes(mb->pages);

    if (mb->bitmap_offset < pos || bitmap_end < mb->bitmap_offset ||
        bitmap_end > file_size) {
        error_setg(errp, "bitmap at 0x%" PRIx64 " is out of range (the "
                   "header ends at 0x%" PRIx64 ", the file at 0x%" PRIx64 ")",
                   mb->bitmap_offset, pos, file_size);
        return false;
    }
    if (mb->pages_offset % MAPPED_RAM_ALIGN || mb->pages_offset < bitmap_end) {
        error_setg(errp, "pages at 0x%" PRIx64 " are misplaced (expected a "
                   "multiple of 0x%llx after the bitmap's end 0x%" PRIx64 ")",
                   mb->pages_offset, MAPPED_RAM_ALIGN, bitmap_end);
        return false;
    }
    if (mb->pages_offset > file_size ||
        mb->rb->size > file_size - mb->pages_offset) {
        error_setg(errp, "pages at 0x%" PRIx64 " + 0x%" PRIx64 " lie beyond "
                   "the end of the file (0x%" PRIx64 "): truncated",
                   mb->pages_offset, mb->rb->size, file_size);
        return false;
    }
    return true;
}

RAMBlock *mapped_ram_load_block(QEMUFile *f, unsigned threads,
                                RamPrefault *prefault, Error **errp)
{
    int fd = qemu_file_channel(f)->fd;
    MappedRamBlock mb = { 0 };
    char idstr[256];
    uint64_t size, pos;
    struct stat st;
    bool ok;

    qemu_get_counted_string(f, idstr);
    size = qemu_get_be64(f);
    mb.bitmap_offset = qemu_get_be64(f);
    mb.pages_offset = qemu_get_be64(f);
    if (!qemu_file_check(f, errp) || !qemu_file_tell(f, &pos, errp)) {
        error_prepend(errp, "mapped-ram block header: ");
        return NULL;
    }
    mb.rb = ram_block_find(idstr);
    if (!mb.rb) {
        error_setg(errp, "mapped-ram: unknown RAM block '%s'", idstr);
        return NULL;
    }
    if (size != mb.rb->size) {
        error_setg(errp, "mapped-ram: block '%s' has size 0x%" PRIx64 " in "
                   "the file, 0x%" PRIx64 " here", idstr, size, mb.rb->size);
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "mapped-ram: cannot stat the file");
        return NULL;
    }
    mb.pages = size >> TARGET_PAGE_BITS;
    trace(mapped_ram_block, "load '%s': bitmap at 0x%" PRIx64 ", pages at 0x%"
          PRIx64 ", %u threads", idstr, mb.bitmap_offset, mb.pages_offset,
          MAX(threads, 1));
    ok = check_region(&mb, pos, st.st_size, errp) &&
         load_bitmap(&mb, fd, errp) &&
         load_pages(&mb, fd, MAX(threads, 1), prefault, errp) &&
         qemu_file_seek(f, mb.pages_offset + size, errp);
    g_free(mb.bitmap);
    if (!ok) {
        error_prepend(errp, "mapped-ram: block '%s': ", idstr);
        return NULL;
    }
    return mb.rb;
}
