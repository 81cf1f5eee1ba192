/*
 * Zero-page detection: the test every migrated page goes through.
 */
#ifndef QEMU_BUFFER_IS_ZERO_H
#define QEMU_BUFFER_IS_ZERO_H

#include "qemu/osdep.h"

/*
 * Whether @len bytes at @buf are all zero.  @buf is 8-byte aligned and
 * @len a multiple of 128 (a page, typically).  Uses AVX2 when the CPU has
 * it, chosen once at start.
 */
bool buffer_is_zero(const void *buf, size_t len);

#endif
