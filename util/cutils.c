/*
 * Scalar parsing helpers.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"

#include <math.h>

/*
 * Numbers on the command line and in properties are decimal, as in QEMU;
 * an explicit "0x" prefix selects hexadecimal.  A leading zero does not
 * mean octal: "010" is ten.  Returns the base, or 0 if a "0x" prefix has
 * no hex digit after it.
 */
static int number_base(const char *digits)
{
    if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
        return g_ascii_isxdigit(digits[2]) ? 16 : 0;
    }
    return 10;
}

static int suffix_shift(char c)
{
    switch (g_ascii_toupper(c)) {
    case 'B': return 0;
    case 'K': return 10;
    case 'M': return 20;
    case 'G': return 30;
    case 'T': return 40;
    case 'P': return 50;
    case 'E': return 60;
    default: return -1;
    }
}

int qemu_strtosz_suffix(const char *str, char default_suffix, uint64_t *result)
{
    const char *p = str;
    char *end;
    uint64_t whole;
    double frac = 0;
    int shift, base;

    if (!str || !g_ascii_isdigit(*p)) {
        return -EINVAL;     /* also rejects a sign and leading spaces */
    }
    base = number_base(p);
    if (!base) {
        return -EINVAL;
    }
    errno = 0;
    whole = strtoull(p, &end, base);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    if (*end == '.') {
        if (base != 10) {
            return -EINVAL;  /* no hex fractions */
        }
        const char *fstart = end;
        frac = strtod(fstart, &end);
        if (end == fstart + 1) {
            return -EINVAL;  /* "1." */
        }
    }
    if (*end == '\0') {
        shift = default_suffix ? suffix_shift(default_suffix) : 0;
        if (frac != 0 && shift == 0) {
            return -EINVAL;  /* fractional bytes */
        }
    } else {
        shift = suffix_shift(*end);
        if (shift < 0 || end[1] != '\0') {
            return -EINVAL;
        }
        if (frac != 0 && shift == 0) {
            return -EINVAL;
        }
    }
    if (shift > 0 && whole > (UINT64_MAX >> shift)) {
        return -ERANGE;
    }
    uint64_t val = whole << shift;
    if (frac != 0) {
        double extra = ldexp(frac, shift);
        if ((double)val + extra >= 18446744073709551616.0) {
            return -ERANGE;
        }
        val += (uint64_t)extra;
    }
    *result = val;
    return 0;
}

int qemu_strtosz(const char *str, uint64_t *result)
{
    return qemu_strtosz_suffix(str, 'B', result);
}

char *size_to_str(uint64_t size)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    int i = 0;
    double v = size;

    while (v >= 1024 && i < (int)ARRAY_SIZE(units) - 1) {
        v /= 1024;
        i++;
    }
    if (i == 0) {
        return g_strdup_printf("%" PRIu64 " B", size);
    }
    return g_strdup_printf("%.3g %s", v, units[i]);
}

int qemu_strtou64(const char *str, uint64_t *result)
{
    char *end;
    int base;

    if (!str || !g_ascii_isdigit(*str)) {
        return -EINVAL;
    }
    base = number_base(str);
    if (!base) {
        return -EINVAL;
    }
    errno = 0;
    uint64_t v = strtoull(str, &end, base);
    if (errno) {
        return -errno;
    }
    if (*end) {
        return -EINVAL;
    }
    *result = v;
    return 0;
}

int qemu_strtoi64(const char *str, int64_t *result)
{
    char *end;
    int base;

    if (!str || !(*str == '-' || g_ascii_isdigit(*str))) {
        return -EINVAL;
    }
    base = number_base(*str == '-' ? str + 1 : str);
    if (!base || (*str == '-' && !g_ascii_isdigit(str[1]))) {
        return -EINVAL;
    }
    errno = 0;
    int64_t v = strtoll(str, &end, base);
    if (errno) {
        return -errno;
    }
    if (*end) {
        return -EINVAL;
    }
    *result = v;
    return 0;
}

bool qemu_parse_bool(const char *str, bool *result)
{
    if (!strcmp(str, "on") || !strcmp(str, "yes") || !strcmp(str, "true")) {
        *result = true;
        return true;
    }
    if (!strcmp(str, "off") || !strcmp(str, "no") || !strcmp(str, "false")) {
        *result = false;
        return true;
    }
    return false;
}

bool qemu_parse_onoffauto(const char *str, OnOffAuto *result)
{
    bool b;

    if (!strcmp(str, "auto")) {
        *result = ON_OFF_AUTO_AUTO;
        return true;
    }
    if (qemu_parse_bool(str, &b)) {
        *result = b ? ON_OFF_AUTO_ON : ON_OFF_AUTO_OFF;
        return true;
    }
    return false;
}

const char *onoffauto_str(OnOffAuto v)
{
    return v == ON_OFF_AUTO_ON ? "on" : v == ON_OFF_AUTO_OFF ? "off" : "auto";
}

char *qemu_escape_bytes(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    GString *out = g_string_sized_new(len);

    for (size_t i = 0; i < len; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
            g_string_append_c(out, p[i]);
        } else {
            g_string_append_printf(out, "\\x%02x", p[i]);
        }
    }
    return g_string_free(out, false);
}

char *qemu_escape_str(const char *str)
{
    return qemu_escape_bytes(str, strlen(str));
}
