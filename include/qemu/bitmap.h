/*
 * Bitmaps of unsigned long words, bit 0 of word 0 first.  The atomic
 * variants are for bitmaps shared between writers (vCPUs, devices) and a
 * consumer (the migration thread).
 */
#ifndef QEMU_BITMAP_H
#define QEMU_BITMAP_H

#include "qemu/osdep.h"

#define BITS_PER_LONG (sizeof(unsigned long) * 8)
#define BIT_WORD(nr) ((nr) / BITS_PER_LONG)
#define BIT_MASK(nr) (1UL << ((nr) % BITS_PER_LONG))
#define BITS_TO_LONGS(nr) DIV_ROUND_UP(nr, BITS_PER_LONG)

static inline unsigned long *bitmap_new(size_t nbits)
{
    return g_new0(unsigned long, BITS_TO_LONGS(nbits));
}

static inline void set_bit(size_t nr, unsigned long *map)
{
    map[BIT_WORD(nr)] |= BIT_MASK(nr);
}

static inline void clear_bit(size_t nr, unsigned long *map)
{
    map[BIT_WORD(nr)] &= ~BIT_MASK(nr);
}

static inline bool test_bit(size_t nr, const unsigned long *map)
{
    return map[BIT_WORD(nr)] & BIT_MASK(nr);
}

/* Set a bit with a full barrier; cheap when the bit is already set. */
static inline void set_bit_atomic(size_t nr, unsigned long *map)
{
    unsigned long *w = &map[BIT_WORD(nr)];

    if (!(__atomic_load_n(w, __ATOMIC_RELAXED) & BIT_MASK(nr))) {
        __atomic_fetch_or(w, BIT_MASK(nr), __ATOMIC_SEQ_CST);
    }
}

/*
 * Set bits [start, start + nr) of a bitmap that other threads take bits
 * from with bitmap_move_atomic().  Each word is checked before it is
 * written: bits that are set already cost one load and no store.  The
 * updates are relaxed atomics; ordering them against the data they
 * describe is the caller's (see "Ordering" in system/ramblock.h, whose
 * dirty log writers use this).
 */
static inline void bitmap_set_atomic(unsigned long *map, size_t start,
                                     size_t nr)
{
    size_t end = start + nr;

    if (likely(nr == 1)) {
        unsigned long *w = &map[BIT_WORD(start)];

        if (!(__atomic_load_n(w, __ATOMIC_RELAXED) & BIT_MASK(start))) {
            __atomic_fetch_or(w, BIT_MASK(start), __ATOMIC_RELAXED);
        }
        return;
    }
    while (start < end) {
        unsigned long *w = &map[BIT_WORD(start)];
        size_t bits = MIN(end - start, BITS_PER_LONG - start % BITS_PER_LONG);
        unsigned long mask = bits == BITS_PER_LONG ? ~0UL :
            ((1UL << bits) - 1) << (start % BITS_PER_LONG);

        if ((__atomic_load_n(w, __ATOMIC_RELAXED) & mask) != mask) {
            __atomic_fetch_or(w, mask, __ATOMIC_RELAXED);
        }
        start += bits;
    }
}

/* Clear a bit and return whether it was set. */
static inline bool test_and_clear_bit(size_t nr, unsigned long *map)
{
    bool was = test_bit(nr, map);

    clear_bit(nr, map);
    return was;
}

void bitmap_zero(unsigned long *map, size_t nbits);
void bitmap_fill(unsigned long *map, size_t nbits);
void bitmap_set(unsigned long *map, size_t start, size_t nr);
void bitmap_clear(unsigned long *map, size_t start, size_t nr);
bool bitmap_empty(const unsigned long *map, size_t nbits);
size_t bitmap_count_one(const unsigned long *map, size_t nbits);
/* Index of the next set (zero) bit at or after @offset, or @size. */
size_t find_next_bit(const unsigned long *map, size_t size, size_t offset);
size_t find_next_zero_bit(const unsigned long *map, size_t size, size_t offset);
/*
 * Atomically take every set bit of @src (clearing it) and OR it into
 * @dst, which the caller owns.  Returns how many bits of @dst were newly
 * set; *@took (if not NULL) says whether any bit was taken at all.  Words
 * that are zero cost one relaxed load; each non-zero one is taken with a
 * sequentially consistent exchange.  The consumer of the dirty log
 * (ram_block_dirty_sync) uses this.
 */
size_t bitmap_move_atomic(unsigned long *dst, unsigned long *src, size_t nbits,
                          bool *took);

#endif
