/*
 * Multifd payload kind RAM: a batch of pages of one RAM block.
 *
 * Without compression the pages go out by reference (iovecs into guest
 * RAM) and come in by reference (readv into the destination pages), so
 * the data is copied only by the kernel.
 */
#include "qemu/osdep.h"
#include "qemu/buffer-is-zero.h"
#include "migration/mapped-ram.h"
#include "multifd-internal.h"

/* Add [base, base+len) to @iov, merging it with the previous entry. */
static void iov_append(struct iovec *iov, int *iovcnt, uint8_t *base,
                       size_t len)
{
    if (*iovcnt > 0) {
        struct iovec *prev = &iov[*iovcnt - 1];

        if ((uint8_t *)prev->iov_base + prev->iov_len == base) {
            prev->iov_len += len;
            return;
        }
    }
    iov[*iovcnt].iov_base = base;
    iov[*iovcnt].iov_len = len;
    (*iovcnt)++;
}

/* Counted by the send threads, read by query-migrate. */
static uint64_t ram_normal_pages;
static uint64_t ram_zero_pages;

uint64_t multifd_ram_normal_pages(void)
{
    return __atomic_load_n(&ram_normal_pages, __ATOMIC_RELAXED);
}

uint64_t multifd_ram_zero_pages(void)
{
    return __atomic_load_n(&ram_zero_pages, __ATOMIC_RELAXED);
}

void multifd_ram_counters_reset(void)
{
    __atomic_store_n(&ram_normal_pages, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&ram_zero_pages, 0, __ATOMIC_RELAXED);
}

static ssize_t ram_send_prepare(MultiFDSendChannel *c, MultiFDSendJob *job,
                                const MultiFDCompressOps *compress,
                                Error **errp)
{
    const MultiFDPages *p = job->pages;
    RAMBlock *rb = p->block;
    uint8_t *m = c->meta + MULTIFD_PACKET_HDR_LEN;
    size_t idlen = strnlen(rb->idstr, sizeof(rb->idstr));
    uint8_t *pages[MULTIFD_PAGES_PER_PACKET];
    uint64_t offsets[MULTIFD_PAGES_PER_PACKET];
    uint32_t normal = 0, zero = 0, ram_flags = 0;
    uint64_t raw, data_size;
    size_t meta_len;

    if (idlen < 1 || idlen > MULTIFD_RAM_IDSTR_MAX) {
        error_setg(errp, "RAM block name '%.*s' must be 1 to %u characters",
                   (int)idlen, rb->idstr, MULTIFD_RAM_IDSTR_MAX);
        return -1;
    }
    /* Normal pages to the front, zero pages to the back. */
    for (uint32_t i = 0; i < p->num; i++) {
        uint8_t *page = rb->host + p->offsets[i];

        if (buffer_is_zero(page, TARGET_PAGE_SIZE)) {
            offsets[p->num - 1 - zero++] = p->offsets[i];
        } else {
            pages[normal] = page;
            offsets[normal++] = p->offsets[i];
        }
    }
    __atomic_fetch_add(&ram_normal_pages, normal, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ram_zero_pages, zero, __ATOMIC_RELAXED);
    raw = data_size = (uint64_t)normal * TARGET_PAGE_SIZE;
    if (compress && normal) {
        /* One byte less than raw: compressed data must really shrink. */
        ssize_t z = compress->compress(c->compress_state, pages, normal,
                                       c->zbuf, raw - 1, errp);

        if (z < 0) {
            error_prepend(errp, "RAM block '%s': ", rb->idstr);
            return -1;
        }
        if (z > 0) {
            ram_flags |= MULTIFD_RAM_COMPRESSED;
            data_size = z;
        }
    }

    multifd_put_be32(m, normal);
    multifd_put_be32(m + 4, zero);
    multifd_put_be32(m + 8, data_size);
    multifd_put_be32(m + 12, ram_flags);
    m[16] = idlen;
    memcpy(m + MULTIFD_RAM_FIXED_LEN, rb->idstr, idlen);
    m += MULTIFD_RAM_FIXED_LEN + idlen;
    for (uint32_t i = 0; i < p->num; i++) {
        multifd_put_be64(m + 8 * i, offsets[i]);
    }
    meta_len = MULTIFD_RAM_FIXED_LEN + idlen + 8 * p->num;

    c->iov[0].iov_base = c->meta;
    c->iov[0].iov_len = MULTIFD_PACKET_HDR_LEN + meta_len;
    c->iovcnt = 1;
    if (ram_flags & MULTIFD_RAM_COMPRESSED) {
        c->iov[1].iov_base = c->zbuf;
        c->iov[1].iov_len = data_size;
        c->iovcnt = 2;
    } else {
        /* Start a new entry after the metadata, never merged into it. */
        int n = 0;

        for (uint32_t i = 0; i < normal; i++) {
            iov_append(&c->iov[1], &n, pages[i], TARGET_PAGE_SIZE);
        }
        c->iovcnt += n;
    }
    return meta_len + data_size;
}

ssize_t multifd_ram_save_mapped(MultiFDSendChannel *c, MultiFDSendJob *job,
                                Error **errp)
{
    const MultiFDPages *p = job->pages;
    MappedRamBlock *mb = mapped_ram_lookup(p->block);
    uint64_t normal = 0, zero = 0, bytes = 0;

    if (!mb) {
        error_setg(errp, "RAM block '%s' has no region in the file",
                   p->block->idstr);
        return -1;
    }
    /* The batch is in page order: one write per run of neighbours. */
    for (uint32_t i = 0; i < p->num; ) {
        uint32_t j = i + 1;

        while (j < p->num &&
               p->offsets[j] == p->offsets[j - 1] + TARGET_PAGE_SIZE) {
            j++;
        }
        if (!mapped_ram_save_run(c->ch->fd, mb, p->offsets[i], j - i,
                                 &normal, &zero, &bytes, errp)) {
            return -1;
        }
        i = j;
    }
    __atomic_fetch_add(&ram_normal_pages, normal, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ram_zero_pages, zero, __ATOMIC_RELAXED);
    return bytes;
}

static RAMBlock *ram_recv_find_block(MultiFDRecvChannel *c, const char *idstr,
                                     Error **errp)
{
    RAMBlock *rb = c->last_block;

    if (rb && !strcmp(rb->idstr, idstr)) {
        return rb;
    }
    rb = ram_block_find(idstr);
    if (!rb) {
        error_setg(errp, "RAM packet for unknown RAM block '%s'", idstr);
        return NULL;
    }
    c->last_written_map = multifd_recv_written_map(c->state, rb);
    if (!c->last_written_map) {
        error_setg(errp, "RAM packet for RAM block '%s', which was added "
                   "after multifd was set up", idstr);
        c->last_block = NULL;
        return NULL;
    }
    c->last_block = rb;
    return rb;
}

/* Check one offset of @rb from the wire. */
static bool ram_recv_check_offset(RAMBlock *rb, uint64_t offset, Error **errp)
{
    if (offset & ~TARGET_PAGE_MASK) {
        error_setg(errp, "RAM block '%s': page offset 0x%" PRIx64
                   " is not page aligned", rb->idstr, offset);
        return false;
    }
    /* The block size is page aligned, so the whole page fits. */
    if (offset >= rb->size) {
        error_setg(errp, "RAM block '%s': page offset 0x%" PRIx64
                   " is beyond its size 0x%" PRIx64, rb->idstr, offset,
                   rb->size);
        return false;
    }
    return true;
}

/* Read the normal pages' data straight into them. */
static bool ram_recv_data(MultiFDRecvChannel *c, uint32_t normal,
                          uint32_t data_size, uint32_t ram_flags,
                          Error **errp)
{
    uint64_t raw = (uint64_t)normal * TARGET_PAGE_SIZE;
    int n = 0;

    if (ram_flags & MULTIFD_RAM_COMPRESSED) {
        if (!c->compress) {
            error_setg(errp, "RAM packet is compressed, but multifd-"
                       "compression is none");
            return false;
        }
        if (data_size == 0 || data_size >= raw) {
            error_setg(errp, "RAM packet compressed size %u is out of range "
                       "(1 to %" PRIu64 ")", data_size, raw ? raw - 1 : 0);
            return false;
        }
        if (!multifd_read_full(c->ch, c->zbuf, data_size, errp)) {
            return false;
        }
        if (!c->compress->decompress(c->decompress_state, c->zbuf, data_size,
                                     c->pages, normal, errp)) {
            error_prepend(errp, "RAM block '%s': ", c->last_block->idstr);
            return false;
        }
        return true;
    }
    if (data_size != raw) {
        error_setg(errp, "RAM packet carries %u data bytes for %u pages",
                   data_size, normal);
        return false;
    }
    for (uint32_t i = 0; i < normal; i++) {
        iov_append(c->iov, &n, c->pages[i], TARGET_PAGE_SIZE);
    }
    return multifd_readv_full(c->ch, c->iov, n, false, errp) > 0;
}

static bool ram_recv(MultiFDRecvChannel *c, uint32_t payload_size,
                     Error **errp)
{
    uint8_t *m = c->meta;
    uint32_t normal, zero, num, data_size, ram_flags, idlen, meta_len;
    char idstr[MULTIFD_RAM_IDSTR_MAX + 1];
    unsigned long *written;
    RAMBlock *rb;

    if (payload_size < MULTIFD_RAM_FIXED_LEN) {
        error_setg(errp, "RAM packet payload of %u bytes is shorter than its "
                   "fixed part (%u)", payload_size, MULTIFD_RAM_FIXED_LEN);
        return false;
    }
    if (!multifd_read_full(c->ch, m, MULTIFD_RAM_FIXED_LEN, errp)) {
        return false;
    }
    normal = multifd_get_be32(m);
    zero = multifd_get_be32(m + 4);
    data_size = multifd_get_be32(m + 8);
    ram_flags = multifd_get_be32(m + 12);
    idlen = m[16];
    if (normal > MULTIFD_PAGES_PER_PACKET || zero > MULTIFD_PAGES_PER_PACKET ||
        normal + zero < 1 || normal + zero > MULTIFD_PAGES_PER_PACKET) {
        error_setg(errp, "RAM packet has %u + %u zero pages (expected 1 to "
                   "%u in all)", normal, zero, MULTIFD_PAGES_PER_PACKET);
        return false;
    }
    num = normal + zero;
    if (ram_flags & ~MULTIFD_RAM_COMPRESSED) {
        error_setg(errp, "RAM packet has unknown flags 0x%x", ram_flags);
        return false;
    }
    if (idlen < 1 || idlen > MULTIFD_RAM_IDSTR_MAX) {
        error_setg(errp, "RAM packet block name length %u is out of range "
                   "(1 to %u)", idlen, MULTIFD_RAM_IDSTR_MAX);
        return false;
    }
    meta_len = MULTIFD_RAM_FIXED_LEN + idlen + 8 * num;
    if (payload_size < meta_len || payload_size - meta_len != data_size) {
        error_setg(errp, "RAM packet payload of %u bytes does not match %u "
                   "pages with %u data bytes", payload_size, num, data_size);
        return false;
    }
    if (!multifd_read_full(c->ch, m + MULTIFD_RAM_FIXED_LEN,
                           meta_len - MULTIFD_RAM_FIXED_LEN, errp)) {
        return false;
    }
    if (memchr(m + MULTIFD_RAM_FIXED_LEN, '\0', idlen)) {
        error_setg(errp, "RAM packet block name contains a NUL byte");
        return false;
    }
    memcpy(idstr, m + MULTIFD_RAM_FIXED_LEN, idlen);
    idstr[idlen] = '\0';
    rb = ram_recv_find_block(c, idstr, errp);
    if (!rb) {
        return false;
    }
    written = c->last_written_map;

    m += MULTIFD_RAM_FIXED_LEN + idlen;
    for (uint32_t i = 0; i < num; i++) {
        uint64_t offset = multifd_get_be64(m + 8 * i);

        if (!ram_recv_check_offset(rb, offset, errp)) {
            return false;
        }
        c->pages[i] = rb->host + offset;
    }
    if (normal && !ram_recv_data(c, normal, data_size, ram_flags, errp)) {
        return false;
    }
    if (!normal && (data_size || ram_flags)) {
        error_setg(errp, "RAM packet of zero pages carries %u data bytes "
                   "(flags 0x%x)", data_size, ram_flags);
        return false;
    }
    for (uint32_t i = 0; i < normal; i++) {
        set_bit_atomic((c->pages[i] - rb->host) >> TARGET_PAGE_BITS, written);
    }
    /*
     * A zero page needs writing only where an older copy of it landed;
     * elsewhere the memory is still fresh, and stays untouched.  Within a
     * round a page travels once, so no other channel writes it meanwhile.
     */
    for (uint32_t i = normal; i < num; i++) {
        uint64_t page = (c->pages[i] - rb->host) >> TARGET_PAGE_BITS;
        unsigned long *word = &written[BIT_WORD(page)];

        if (__atomic_load_n(word, __ATOMIC_RELAXED) & BIT_MASK(page)) {
            memset(c->pages[i], 0, TARGET_PAGE_SIZE);
            __atomic_fetch_and(word, ~BIT_MASK(page), __ATOMIC_RELAXED);
        }
    }
    return true;
}

const MultiFDPayloadOps multifd_ram_ops = {
    .name = "RAM",
    .max_payload = MULTIFD_RAM_META_MAX + MULTIFD_RAM_DATA_MAX,
    .send_prepare = ram_send_prepare,
    .recv = ram_recv,
};
