/*
 * Bitmap operations.
 */
#include "qemu/osdep.h"
#include "qemu/bitmap.h"

/* Mask of the bits [start % BITS_PER_LONG, ...) within a word. */
#define FIRST_WORD_MASK(start) (~0UL << ((start) % BITS_PER_LONG))
#define LAST_WORD_MASK(nbits) (~0UL >> (-(nbits) & (BITS_PER_LONG - 1)))

void bitmap_zero(unsigned long *map, size_t nbits)
{
    memset(map, 0, BITS_TO_LONGS(nbits) * sizeof(unsigned long));
}

void bitmap_fill(unsigned long *map, size_t nbits)
{
    size_t n = BITS_TO_LONGS(nbits);

    memset(map, 0xff, n * sizeof(unsigned long));
    if (nbits % BITS_PER_LONG) {
        map[n - 1] = LAST_WORD_MASK(nbits);
    }
}

static void bitmap_update(unsigned long *map, size_t start, size_t nr,
                          bool set)
{
    size_t end = start + nr;

    while (start < end) {
        size_t w = BIT_WORD(start);
        size_t bits = MIN(end - start, BITS_PER_LONG - start % BITS_PER_LONG);
        unsigned long mask = (bits == BITS_PER_LONG) ? ~0UL :
            ((1UL << bits) - 1) << (start % BITS_PER_LONG);

        if (set) {
            map[w] |= mask;
        } else {
            map[w] &= ~mask;
        }
        start += bits;
    }
}

void bitmap_set(unsigned long *map, size_t start, size_t nr)
{
    bitmap_update(map, start, nr, true);
}

void bitmap_clear(unsigned long *map, size_t start, size_t nr)
{
    bitmap_update(map, start, nr, false);
}

bool bitmap_empty(const unsigned long *map, size_t nbits)
{
    return find_next_bit(map, nbits, 0) >= nbits;
}

size_t bitmap_count_one(const unsigned long *map, size_t nbits)
{
    size_t n = 0, full = nbits / BITS_PER_LONG;

    for (size_t i = 0; i < full; i++) {
        n += __builtin_popcountl(map[i]);
    }
    if (nbits % BITS_PER_LONG) {
        n += __builtin_popcountl(map[full] & LAST_WORD_MASK(nbits));
    }
    return n;
}

static size_t find_next(const unsigned long *map, size_t size, size_t offset,
                        unsigned long invert)
{
    if (offset >= size) {
        return size;
    }
    size_t w = BIT_WORD(offset);
    unsigned long word = (map[w] ^ invert) & FIRST_WORD_MASK(offset);

    for (;;) {
        if (word) {
            size_t bit = w * BITS_PER_LONG + __builtin_ctzl(word);
            return MIN(bit, size);
        }
        w++;
        if (w * BITS_PER_LONG >= size) {
            return size;
        }
        word = map[w] ^ invert;
    }
}

size_t find_next_bit(const unsigned long *map, size_t size, size_t offset)
{
    return find_next(map, size, offset, 0);
}

size_t find_next_zero_bit(const unsigned long *map, size_t size, size_t offset)
{
    return find_next(map, size, offset, ~0UL);
}

size_t bitmap_move_atomic(unsigned long *dst, unsigned long *src, size_t nbits,
                          bool *took)
{
    size_t n = 0, words = BITS_TO_LONGS(nbits);
    unsigned long any = 0;

    for (size_t i = 0; i < words; i++) {
        unsigned long bits;

        if (likely(!__atomic_load_n(&src[i], __ATOMIC_RELAXED))) {
            continue;
        }
        bits = __atomic_exchange_n(&src[i], 0, __ATOMIC_SEQ_CST);
        n += __builtin_popcountl(bits & ~dst[i]);
        dst[i] |= bits;
        any |= bits;
    }
    if (took) {
        *took = any != 0;
    }
    return n;
}
