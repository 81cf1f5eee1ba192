/*
 * Zero-page detection.
 *
 * Every page a migration sends is tested first, and untouched memory is
 * cheap to read (it maps the kernel's zero page, which stays in cache),
 * so the test itself is what bounds an all-zero migration: it is worth a
 * vector loop.  Non-zero data almost always fails on its first word.
 */
#include "qemu/osdep.h"
#include "qemu/buffer-is-zero.h"

static bool is_zero_words(const void *buf, size_t len)
{
    const uint64_t *p = buf;

    for (size_t i = 0; i < len / sizeof(uint64_t); i += 8) {
        if (p[i] | p[i + 1] | p[i + 2] | p[i + 3] |
            p[i + 4] | p[i + 5] | p[i + 6] | p[i + 7]) {
            return false;
        }
    }
    return true;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Four 32-byte lanes per step: 128 bytes, OR-ed, tested once. */
static bool __attribute__((target("avx2"))) is_zero_avx2(const void *buf,
                                                         size_t len)
{
    const __m256i *p = buf;

    for (size_t i = 0; i < len / sizeof(__m256i); i += 4) {
        __m256i acc = _mm256_or_si256(
            _mm256_or_si256(_mm256_loadu_si256(p + i), _mm256_loadu_si256(p + i + 1)),
            _mm256_or_si256(_mm256_loadu_si256(p + i + 2), _mm256_loadu_si256(p + i + 3)));

        if (!_mm256_testz_si256(acc, acc)) {
            return false;
        }
    }
    return true;
}

static bool (*is_zero_impl)(const void *, size_t);

static void __attribute__((constructor)) buffer_is_zero_init(void)
{
    __builtin_cpu_init();
    is_zero_impl = __builtin_cpu_supports("avx2") ? is_zero_avx2 : is_zero_words;
}
#else
static bool (*const is_zero_impl)(const void *, size_t) = is_zero_words;
#endif

bool buffer_is_zero(const void *buf, size_t len)
{
    assert(len % 128 == 0);
    if (*(const uint64_t *)buf) {
        return false;
    }
    return is_zero_impl(buf, len);
}
