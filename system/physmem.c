/*
 * Guest RAM blocks and the guest memory API.
 *
 * The block list is built while the machine is created, before any vCPU
 * or migration thread exists, and stays fixed until exit: lookups walk it
 * without a lock.  Blocks are few (one for the machine's RAM), so a walk
 * is as fast as any index.
 */
#include "qemu/osdep.h"
#include <sys/mman.h>
#include "system/ramblock.h"

static RAMBlock *ram_blocks;

__thread uint64_t *vcpu_dirty_counter;

RAMBlock *ram_block_first(void)
{
    return ram_blocks;
}

RAMBlock *ram_block_find(const char *idstr)
{
    RAMBLOCK_FOREACH(rb) {
        if (!strcmp(rb->idstr, idstr)) {
            return rb;
        }
    }
    return NULL;
}

uint64_t ram_total_size(void)
{
    uint64_t total = 0;

    RAMBLOCK_FOREACH(rb) {
        total += rb->size;
    }
    return total;
}

RAMBlock *ram_block_from_gpa(uint64_t gpa, uint64_t len, uint64_t *offset)
{
    RAMBLOCK_FOREACH(rb) {
        if (gpa >= rb->gpa && gpa - rb->gpa < rb->size &&
            len <= rb->size - (gpa - rb->gpa)) {
            if (offset) {
                *offset = gpa - rb->gpa;
            }
            return rb;
        }
    }
    return NULL;
}

static bool ram_block_check_new(const char *idstr, uint64_t gpa,
                                uint64_t size, Error **errp)
{
    if (!idstr || !*idstr || strlen(idstr) >= sizeof(((RAMBlock *)0)->idstr)) {
        error_setg(errp, "RAM block name '%s' must be 1 to %zu characters",
                   idstr ? idstr : "", sizeof(((RAMBlock *)0)->idstr) - 1);
        return false;
    }
    if (!size || !QEMU_IS_ALIGNED(size, TARGET_PAGE_SIZE) ||
        !QEMU_IS_ALIGNED(gpa, TARGET_PAGE_SIZE) || gpa + size < gpa) {
        error_setg(errp, "RAM block '%s': gpa 0x%" PRIx64 " size 0x%" PRIx64
                   " must be non-empty and multiples of the page size (%llu)",
                   idstr, gpa, size, TARGET_PAGE_SIZE);
        return false;
    }
    RAMBLOCK_FOREACH(rb) {
        if (!strcmp(rb->idstr, idstr)) {
            error_setg(errp, "RAM block '%s' exists already", idstr);
            return false;
        }
        if (gpa < rb->gpa + rb->size && rb->gpa < gpa + size) {
            error_setg(errp, "RAM block '%s' [0x%" PRIx64 ", 0x%" PRIx64
                       ") overlaps block '%s' [0x%" PRIx64 ", 0x%" PRIx64 ")",
                       idstr, gpa, gpa + size, rb->idstr, rb->gpa,
                       rb->gpa + rb->size);
            return false;
        }
    }
    return true;
}

static RAMBlock *ram_block_insert(const char *idstr, uint64_t gpa,
                                  uint64_t size, void *host, int fd,
                                  uint64_t fd_offset, bool shared,
                                  bool owns_memory)
{
    RAMBlock *rb = g_new0(RAMBlock, 1);
    RAMBlock **link = &ram_blocks;

    g_strlcpy(rb->idstr, idstr, sizeof(rb->idstr));
    rb->host = host;
    rb->gpa = gpa;
    rb->size = size;
    rb->pages = size >> TARGET_PAGE_BITS;
    rb->fd = fd;
    rb->fd_offset = fd_offset;
    rb->shared = shared;
    rb->owns_memory = owns_memory;
    rb->dirty_log = bitmap_new(rb->pages);

    while (*link && (*link)->gpa < gpa) {
        link = &(*link)->next;
    }
    rb->next = *link;
    *link = rb;
    return rb;
}

RAMBlock *ram_block_add(const char *idstr, uint64_t gpa, uint64_t size,
                        int fd, uint64_t fd_offset, bool shared, Error **errp)
{
    int flags = shared ? MAP_SHARED : MAP_PRIVATE;
    void *host;

    if (!ram_block_check_new(idstr, gpa, size, errp)) {
        goto fail;
    }
    if (fd < 0) {
        /* Untouched anonymous memory costs nothing until written. */
        flags |= MAP_ANONYMOUS | MAP_NORESERVE;
    }
    host = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, fd_offset);
    if (host == MAP_FAILED) {
        error_setg_errno(errp, errno, "RAM block '%s': cannot map %" PRIu64
                         " bytes", idstr, size);
        goto fail;
    }
    return ram_block_insert(idstr, gpa, size, host, fd, fd_offset, shared,
                            true);

fail:
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

RAMBlock *ram_block_add_host(const char *idstr, uint64_t gpa, uint64_t size,
                             void *host, int fd, uint64_t fd_offset,
                             bool shared, Error **errp)
{
    if (!ram_block_check_new(idstr, gpa, size, errp)) {
        return NULL;
    }
    return ram_block_insert(idstr, gpa, size, host, fd, fd_offset, shared,
                            false);
}

uint64_t ram_block_next_data(RAMBlock *rb, uint64_t offset,
                             uint64_t *data_end)
{
    off_t data, hole;

    *data_end = rb->size;
    if (offset >= rb->size) {
        return rb->size;
    }
    if (rb->fd < 0 || !rb->shared) {
        /* A private mapping may hold data the file has not. */
        return offset;
    }
    data = lseek(rb->fd, rb->fd_offset + offset, SEEK_DATA);
    if (data < 0) {
        /* ENXIO: nothing but a hole up to the end; otherwise assume data. */
        return errno == ENXIO ? rb->size : offset;
    }
    data = MAX((uint64_t)data, rb->fd_offset + offset) - rb->fd_offset;
    if ((uint64_t)data >= rb->size) {
        return rb->size;
    }
    data = QEMU_ALIGN_DOWN((uint64_t)data, TARGET_PAGE_SIZE);
    hole = lseek(rb->fd, rb->fd_offset + data, SEEK_HOLE);
    if (hole >= 0 && (uint64_t)hole > rb->fd_offset + data) {
        *data_end = MIN(QEMU_ALIGN_UP((uint64_t)hole - rb->fd_offset,
                                      TARGET_PAGE_SIZE), rb->size);
    }
    return data;
}

void ram_blocks_free(void)
{
    while (ram_blocks) {
        RAMBlock *rb = ram_blocks;

        ram_blocks = rb->next;
        if (rb->owns_memory) {
            munmap(rb->host, rb->size);
            if (rb->fd >= 0) {
                close(rb->fd);
            }
        }
        g_free(rb->dirty_log);
        g_free(rb);
    }
}

void *guest_ram_ptr(uint64_t gpa, uint64_t len)
{
    uint64_t offset;
    RAMBlock *rb = ram_block_from_gpa(gpa, len, &offset);

    return rb ? rb->host + offset : NULL;
}

/*
 * Walk [gpa, gpa+len) block by block, calling @fn on each piece; false
 * (having done nothing) when any byte is not RAM.
 */
static bool guest_ram_for_range(uint64_t gpa, uint64_t len,
                                void (*fn)(RAMBlock *rb, uint64_t offset,
                                           uint64_t n, uint64_t done,
                                           void *opaque),
                                void *opaque)
{
    uint64_t pos, done;

    if (gpa + len < gpa) {
        return false;
    }
    for (pos = gpa; pos < gpa + len; ) {
        RAMBlock *rb = ram_block_from_gpa(pos, 1, NULL);

        if (!rb) {
            return false;
        }
        pos = rb->gpa + rb->size;
    }
    for (pos = gpa, done = 0; done < len; ) {
        uint64_t offset;
        RAMBlock *rb = ram_block_from_gpa(pos, 1, &offset);
        uint64_t n = MIN(len - done, rb->size - offset);

        fn(rb, offset, n, done, opaque);
        pos += n;
        done += n;
    }
    return true;
}

static void read_piece(RAMBlock *rb, uint64_t offset, uint64_t n,
                       uint64_t done, void *opaque)
{
    memcpy((uint8_t *)opaque + done, rb->host + offset, n);
}

static void write_piece(RAMBlock *rb, uint64_t offset, uint64_t n,
                        uint64_t done, void *opaque)
{
    memcpy(rb->host + offset, (const uint8_t *)opaque + done, n);
    ram_block_set_dirty(rb, offset, n);
}

bool guest_ram_read(uint64_t gpa, void *buf, uint64_t len)
{
    return guest_ram_for_range(gpa, len, read_piece, buf);
}

bool guest_ram_write(uint64_t gpa, const void *buf, uint64_t len)
{
    return guest_ram_for_range(gpa, len, write_piece, (void *)buf);
}

void guest_ram_set_dirty(uint64_t gpa, uint64_t len)
{
    uint64_t end = gpa + len < gpa ? UINT64_MAX : gpa + len;

    RAMBLOCK_FOREACH(rb) {
        uint64_t from = MAX(gpa, rb->gpa);
        uint64_t to = MIN(end, rb->gpa + rb->size);

        if (from < to) {
            ram_block_set_dirty(rb, from - rb->gpa, to - from);
        }
    }
}
