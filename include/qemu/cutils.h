/*
 * Parsing of the scalar values users type: sizes, numbers, booleans and
 * OnOffAuto, with the spellings QEMU users know.
 */
#ifndef QEMU_CUTILS_H
#define QEMU_CUTILS_H

#include "qemu/osdep.h"

typedef enum OnOffAuto {
    ON_OFF_AUTO_AUTO,
    ON_OFF_AUTO_ON,
    ON_OFF_AUTO_OFF,
} OnOffAuto;

/*
 * Parse a size: a number with an optional suffix B, K, M, G, T, P, E
 * (powers of 1024, case-insensitive), a fraction allowed before a suffix
 * ("1.5G").  @default_suffix applies to a bare number (0 or 'B': bytes;
 * 'M' for -m).  Returns 0 or -EINVAL (not a size) / -ERANGE (too big).
 */
int qemu_strtosz_suffix(const char *str, char default_suffix, uint64_t *result);
int qemu_strtosz(const char *str, uint64_t *result);
/* Format a size the way humans read it ("512 MiB", "1.5 GiB"). */
char *size_to_str(uint64_t size);

/* Whole-string unsigned / signed integer, decimal or 0x hex. 0 or -errno. */
int qemu_strtou64(const char *str, uint64_t *result);
int qemu_strtoi64(const char *str, int64_t *result);

/* on/off, also yes/no and true/false. */
bool qemu_parse_bool(const char *str, bool *result);
bool qemu_parse_onoffauto(const char *str, OnOffAuto *result);
const char *onoffauto_str(OnOffAuto v);

/*
 * Bytes that came from outside (a migration stream, a device, a peer on
 * a socket), made safe to put into a message: printable ASCII stays as
 * it is, every other byte, and the backslash that would make the result
 * ambiguous, becomes \xNN.  The result is ASCII, so a QMP reply or a
 * log line that carries it stays valid UTF-8 whatever the peer sent.
 * Returns a new string (g_free it).
 */
char *qemu_escape_bytes(const void *buf, size_t len);
char *qemu_escape_str(const char *str);

/* Monotonic clock. */
static inline int64_t get_clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static inline int64_t get_clock_ms(void)
{
    return get_clock_ns() / 1000000;
}

#endif
