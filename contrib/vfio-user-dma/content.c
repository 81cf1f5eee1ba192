/*
 * vfio-user-dma: the content model of device memory and the checksums.
 *
 * The model (hw/misc/vfio-user-dma-regs.h) makes every page's content a function of the
 * seed, the page number and a generation, and the background dirtying a
 * fixed sequence of (page, generation) pairs.  So a destination can prove
 * its memory is what the source had, knowing only the seed and how many
 * dirtying steps ran, both of which travel in the migration stream.
 */
#include "vfio-user-dma.h"
#include "qemu/bitmap.h"

void vdma_fill_page(VdmaDevice *d, uint64_t page, uint64_t gen)
{
    uint64_t base = vdma_page_base(d->seed, page, gen);
    uint64_t *w = (uint64_t *)(d->mem + page * VDMA_PAGE_SIZE);

    for (size_t i = 0; i < VDMA_PAGE_SIZE / 8; i++) {
        w[i] = base ^ (i * VDMA_WORD_STRIDE);
    }
}

void vdma_fill_all(VdmaDevice *d)
{
    for (uint64_t p = 0; p < d->nr_pages; p++) {
        vdma_fill_page(d, p, 0);
    }
}

uint64_t vdma_check(VdmaDevice *d, uint64_t seed, uint64_t steps,
                    uint64_t *first_bad)
{
    g_autofree uint64_t *gens = g_new0(uint64_t, d->nr_pages);
    uint64_t bad = 0;

    *first_bad = UINT64_MAX;
    for (uint64_t k = 0; k < steps; k++) {
        gens[vdma_dirty_page(seed, k, d->nr_pages)] = k + 1;
    }
    for (uint64_t p = 0; p < d->nr_pages; p++) {
        const uint64_t *w = (const uint64_t *)(d->mem + p * VDMA_PAGE_SIZE);
        uint64_t base = vdma_page_base(seed, p, gens[p]);
        uint64_t diff = 0;

        if (test_bit(p, d->foreign)) {
            continue;
        }
        for (size_t i = 0; i < VDMA_PAGE_SIZE / 8; i++) {
            diff |= w[i] ^ base ^ (i * VDMA_WORD_STRIDE);
        }
        if (diff) {
            if (!bad) {
                *first_bad = p;
            }
            bad++;
        }
    }
    return bad;
}

/*
 * A Fletcher-style sum over 64-bit little-endian words in four lanes, so
 * that it runs near memory speed: every word changes the first sums, and
 * the second sums make the position of a word count.  Words are numbered
 * from the start of the data, so feeding the same bytes in different
 * pieces gives the same result.
 */
static inline void sum_word(VdmaSum *s, uint64_t v)
{
    unsigned lane = s->words++ & 3;

    s->a[lane] += v;
    s->b[lane] += s->a[lane];
}

/*
 * The four lanes as one vector: 32 bytes per step are two vector adds.
 * In STOP_COPY the sum is a pass of its own over every byte sent (from
 * the cache, after the zero-copy send), so its speed is the device's
 * throughput: with AVX2 this runs about three times as fast as four
 * scalar chains.  The clones pick AVX2 at run time where the CPU has it;
 * elsewhere the compiler splits the vector into what the target offers.
 */
typedef uint64_t VdmaLanes __attribute__((vector_size(32)));

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VDMA_SUM_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef VDMA_SUM_CLONES
#define VDMA_SUM_CLONES
#endif

VDMA_SUM_CLONES
static void sum_blocks(uint64_t *a, uint64_t *b, uint8_t *out,
                       const uint8_t *in, size_t blocks)
{
    VdmaLanes va, vb;

    memcpy(&va, a, sizeof(va));
    memcpy(&vb, b, sizeof(vb));
    for (size_t i = 0; i < blocks; i++) {
        VdmaLanes w;

        memcpy(&w, in + i * sizeof(w), sizeof(w));
        if (out) {
            memcpy(out + i * sizeof(w), &w, sizeof(w));
        }
        va += w;
        vb += va;
    }
    memcpy(a, &va, sizeof(va));
    memcpy(b, &vb, sizeof(vb));
}

void vdma_sum_init(VdmaSum *s)
{
    memset(s, 0, sizeof(*s));
}

/* Bytes one at a time until a word is whole, then whole words. */
static void sum_bytes(VdmaSum *s, const uint8_t *in, size_t len)
{
    while (len) {
        uint64_t v;

        if (!s->tail_len && len >= 8) {
            memcpy(&v, in, 8);
            sum_word(s, v);
            in += 8;
            len -= 8;
            continue;
        }
        s->tail[s->tail_len++] = *in++;
        len--;
        if (s->tail_len == 8) {
            memcpy(&v, s->tail, 8);
            sum_word(s, v);
            s->tail_len = 0;
        }
    }
}

/*
 * Sum the copy, not the source: the source may change meanwhile (a
 * running device), and the sum must match what was sent.  The edges are
 * copied, then summed from the copy; the bulk is copied and summed in
 * one pass, from the same loaded words, so that the data is read once.
 */
static void sum_edge(VdmaSum *s, uint8_t *out, const uint8_t *in, size_t len)
{
    if (out) {
        memcpy(out, in, len);
        in = out;
    }
    sum_bytes(s, in, len);
}

void vdma_sum_update(VdmaSum *s, void *dst, const void *src, size_t len)
{
    const uint8_t *in = src;
    uint8_t *out = dst;
    size_t head = 0, blocks;

    /* Up to a whole word, then up to four-word (one block) alignment. */
    if (s->tail_len) {
        head = MIN(len, 8u - s->tail_len);
    }
    head += MIN((len - head) / 8,
                (size_t)(-(s->words + !!s->tail_len) & 3)) * 8;
    sum_edge(s, out, in, head);
    in += head;
    out = out ? out + head : NULL;
    len -= head;

    blocks = len / 32;
    sum_blocks(s->a, s->b, out, in, blocks);
    s->words += blocks * 4;
    in += blocks * 32;
    out = out ? out + blocks * 32 : NULL;
    len -= blocks * 32;

    sum_edge(s, out, in, len);
}

uint64_t vdma_sum_final(const VdmaSum *s)
{
    VdmaSum t = *s;
    uint64_t h = vdma_mix64(t.words * 8 + t.tail_len);

    if (t.tail_len) {
        uint64_t v = 0;

        memcpy(&v, t.tail, t.tail_len);
        sum_word(&t, v);
    }
    for (int j = 0; j < 4; j++) {
        h = vdma_mix64(h ^ t.a[j]);
        h = vdma_mix64(h ^ t.b[j]);
    }
    return h;
}

uint64_t vdma_checksum(const void *buf, size_t len)
{
    VdmaSum s;

    vdma_sum_init(&s);
    vdma_sum_update(&s, NULL, buf, len);
    return vdma_sum_final(&s);
}

/*
 * Always a full read-modify-write: a writer must not skip the update
 * because the bit looks set, or its page store could still be in flight
 * when the save side takes the bit and copies the page.
 */
static void mark_page(unsigned long *map, uint64_t page)
{
    __atomic_fetch_or(&map[BIT_WORD(page)], BIT_MASK(page), __ATOMIC_SEQ_CST);
}

void vdma_mark_changed(VdmaDevice *d, uint64_t offset, uint64_t len,
                       bool foreign)
{
    uint64_t first, last;

    if (!len) {
        return;
    }
    first = offset / VDMA_PAGE_SIZE;
    last = (offset + len - 1) / VDMA_PAGE_SIZE;
    for (uint64_t p = first; p <= last && p < d->nr_pages; p++) {
        if (foreign) {
            mark_page(d->foreign, p);
        }
        mark_page(d->pending, p);
    }
}

uint64_t vdma_count_bits(unsigned long *map, uint64_t nbits)
{
    uint64_t count = 0;

    for (uint64_t i = 0; i < BITS_TO_LONGS(nbits); i++) {
        count += __builtin_popcountl(__atomic_load_n(&map[i],
                                                     __ATOMIC_RELAXED));
    }
    return count;
}
