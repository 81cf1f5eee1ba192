/*
 * A small JSON reader for the VERSION capabilities.
 *
 * Why not a JSON library: the server library depends on libc and
 * pthreads only, so that a device vendor can drop it into any build.
 * The capabilities are a few numbers, booleans and nested objects, so a
 * strict recursive-descent parser with a depth limit is enough.  It
 * accepts RFC 8259 JSON (strings with escapes, numbers, arrays) so that
 * unknown keys of any shape can be skipped, and rejects everything else.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

#define JSON_MAX_DEPTH 32

typedef struct JsonParser {
    const char *p;
    const char *end;
    const char *err;
} JsonParser;

static VusJson *json_value(JsonParser *jp, int depth);

static void json_skip_ws(JsonParser *jp)
{
    while (jp->p < jp->end &&
           (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' ||
            *jp->p == '\r')) {
        jp->p++;
    }
}

static bool json_fail(JsonParser *jp, const char *err)
{
    if (!jp->err) {
        jp->err = err;
    }
    return false;
}

static bool json_literal(JsonParser *jp, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0) {
        return json_fail(jp, "unknown literal");
    }
    jp->p += n;
    return true;
}

static int json_hex4(JsonParser *jp, unsigned *out)
{
    unsigned v = 0;

    if (jp->end - jp->p < 4) {
        return json_fail(jp, "truncated \\u escape");
    }
    for (int i = 0; i < 4; i++) {
        char c = *jp->p++;
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v |= c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v |= c - 'A' + 10;
        } else {
            return json_fail(jp, "bad \\u escape");
        }
    }
    *out = v;
    return true;
}

/* Appends the UTF-8 encoding of @cp; @out has room for 4 bytes. */
static size_t json_utf8(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = 0xc0 | (cp >> 6);
        out[1] = 0x80 | (cp & 0x3f);
        return 2;
    } else if (cp < 0x10000) {
        out[0] = 0xe0 | (cp >> 12);
        out[1] = 0x80 | ((cp >> 6) & 0x3f);
        out[2] = 0x80 | (cp & 0x3f);
        return 3;
    }
    out[0] = 0xf0 | (cp >> 18);
    out[1] = 0x80 | ((cp >> 12) & 0x3f);
    out[2] = 0x80 | ((cp >> 6) & 0x3f);
    out[3] = 0x80 | (cp & 0x3f);
    return 4;
}

/* Parses a string at jp->p (which is at the opening quote). */
static char *json_string(JsonParser *jp)
{
    const char *start = ++jp->p;
    /* The decoded string is never longer than its source. */
    size_t cap = 0;
    char *out, *o;

    while (jp->p < jp->end && *jp->p != '"') {
        if (*jp->p == '\\') {
            jp->p++;
        }
        jp->p++;
    }
    if (jp->p >= jp->end) {
        json_fail(jp, "unterminated string");
        return NULL;
    }
    cap = jp->p - start + 1;
    jp->p = start;
    out = o = malloc(cap);
    if (!out) {
        json_fail(jp, "out of memory");
        return NULL;
    }
    while (*jp->p != '"') {
        unsigned char c = *jp->p++;

        if (c < 0x20) {
            json_fail(jp, "control character in string");
            goto fail;
        }
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        c = *jp->p++;
        switch (c) {
        case '"': case '\\': case '/':
            *o++ = c;
            break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!json_hex4(jp, &cp)) {
                goto fail;
            }
            /* A \u escape is 6 source bytes, at most 4 UTF-8 bytes. */
            if (cp == 0) {
                json_fail(jp, "NUL in string");
                goto fail;
            }
            o += json_utf8(cp, o);
            break;
        }
        default:
            json_fail(jp, "bad escape in string");
            goto fail;
        }
    }
    jp->p++;
    *o = '\0';
    return out;

fail:
    free(out);
    return NULL;
}

static bool json_number(JsonParser *jp, double *out)
{
    const char *s = jp->p;
    char buf[64];
    char *endp;
    size_t n;

    if (jp->p < jp->end && *jp->p == '-') {
        jp->p++;
    }
    if (jp->p >= jp->end || !isdigit((unsigned char)*jp->p)) {
        return json_fail(jp, "bad number");
    }
    if (*jp->p == '0' && jp->p + 1 < jp->end &&
        isdigit((unsigned char)jp->p[1])) {
        return json_fail(jp, "number with a leading zero");
    }
    while (jp->p < jp->end && isdigit((unsigned char)*jp->p)) {
        jp->p++;
    }
    if (jp->p < jp->end && *jp->p == '.') {
        jp->p++;
        if (jp->p >= jp->end || !isdigit((unsigned char)*jp->p)) {
            return json_fail(jp, "bad fraction");
        }
        while (jp->p < jp->end && isdigit((unsigned char)*jp->p)) {
            jp->p++;
        }
    }
    if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
        jp->p++;
        if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-')) {
            jp->p++;
        }
        if (jp->p >= jp->end || !isdigit((unsigned char)*jp->p)) {
            return json_fail(jp, "bad exponent");
        }
        while (jp->p < jp->end && isdigit((unsigned char)*jp->p)) {
            jp->p++;
        }
    }
    n = jp->p - s;
    if (n >= sizeof(buf)) {
        return json_fail(jp, "number too long");
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* Out-of-range numbers become +-HUGE_VAL: valid JSON, never a u64. */
    *out = strtod(buf, &endp);
    if (*endp != '\0') {
        return json_fail(jp, "bad number");
    }
    return true;
}

static VusJson *json_new(JsonParser *jp, VusJsonType type)
{
    VusJson *j = calloc(1, sizeof(*j));

    if (!j) {
        json_fail(jp, "out of memory");
        return NULL;
    }
    j->type = type;
    return j;
}

/* Parses the members of an array or object; jp->p is after '[' / '{'. */
static bool json_container(JsonParser *jp, VusJson *parent, int depth)
{
    bool is_object = parent->type == VUS_JSON_OBJECT;
    char close = is_object ? '}' : ']';
    VusJson **tail = &parent->child;

    json_skip_ws(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        VusJson *member;

        json_skip_ws(jp);
        if (is_object) {
            if (jp->p >= jp->end || *jp->p != '"') {
                return json_fail(jp, "object key is not a string");
            }
            key = json_string(jp);
            if (!key) {
                return false;
            }
            json_skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                return json_fail(jp, "missing ':' after object key");
            }
            jp->p++;
        }
        member = json_value(jp, depth + 1);
        if (!member) {
            free(key);
            return false;
        }
        member->key = key;
        *tail = member;
        tail = &member->next;

        json_skip_ws(jp);
        if (jp->p >= jp->end) {
            return json_fail(jp, "unterminated array or object");
        }
        if (*jp->p == ',') {
            jp->p++;
            continue;
        }
        if (*jp->p == close) {
            jp->p++;
            return true;
        }
        return json_fail(jp, "missing ',' between members");
    }
}

static VusJson *json_value(JsonParser *jp, int depth)
{
    VusJson *j = NULL;

    if (depth > JSON_MAX_DEPTH) {
        json_fail(jp, "nested too deeply");
        return NULL;
    }
    json_skip_ws(jp);
    if (jp->p >= jp->end) {
        json_fail(jp, "value expected");
        return NULL;
    }
    switch (*jp->p) {
    case '{':
    case '[':
        j = json_new(jp, *jp->p == '{' ? VUS_JSON_OBJECT : VUS_JSON_ARRAY);
        if (!j) {
            return NULL;
        }
        jp->p++;
        if (!json_container(jp, j, depth)) {
            goto fail;
        }
        return j;
    case '"':
        j = json_new(jp, VUS_JSON_STRING);
        if (!j || !(j->string = json_string(jp))) {
            goto fail;
        }
        return j;
    case 't':
    case 'f':
        j = json_new(jp, VUS_JSON_BOOL);
        if (!j) {
            return NULL;
        }
        j->boolean = *jp->p == 't';
        if (!json_literal(jp, j->boolean ? "true" : "false")) {
            goto fail;
        }
        return j;
    case 'n':
        j = json_new(jp, VUS_JSON_NULL);
        if (!j || !json_literal(jp, "null")) {
            goto fail;
        }
        return j;
    default:
        j = json_new(jp, VUS_JSON_NUMBER);
        if (!j || !json_number(jp, &j->number)) {
            goto fail;
        }
        return j;
    }

fail:
    vus_json_free(j);
    return NULL;
}

VusJson *vus_json_parse(const char *text, size_t len, const char **err)
{
    JsonParser jp = { .p = text, .end = text + len };
    VusJson *j = json_value(&jp, 0);

    if (j) {
        json_skip_ws(&jp);
        if (jp.p != jp.end) {
            json_fail(&jp, "trailing characters after the value");
            vus_json_free(j);
            j = NULL;
        }
    }
    if (!j && err) {
        *err = jp.err ? jp.err : "invalid JSON";
    }
    return j;
}

void vus_json_free(VusJson *json)
{
    while (json) {
        VusJson *next = json->next;

        vus_json_free(json->child);
        free(json->key);
        free(json->string);
        free(json);
        json = next;
    }
}

const VusJson *vus_json_get(const VusJson *object, const char *key)
{
    if (!object || object->type != VUS_JSON_OBJECT) {
        return NULL;
    }
    /* Duplicate keys: the last one wins, as in most JSON readers. */
    const VusJson *found = NULL;
    for (const VusJson *m = object->child; m; m = m->next) {
        if (strcmp(m->key, key) == 0) {
            found = m;
        }
    }
    return found;
}

bool vus_json_get_u64(const VusJson *value, uint64_t *out)
{
    if (!value || value->type != VUS_JSON_NUMBER || value->number < 0 ||
        value->number != floor(value->number) ||
        value->number >= 18446744073709551616.0) {
        return false;
    }
    *out = (uint64_t)value->number;
    return true;
}
