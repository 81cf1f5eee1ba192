/*
 * Cut a QMP byte stream into top-level JSON texts.
 *
 * A socket read may hold half a message, or several.  The splitter
 * follows the JSON grammar as the bytes arrive, one nesting level at a
 * time: what each open object or array expects next (a key, a colon, a
 * value, a comma or the closing bracket).  Strings are followed with
 * their escapes; a bare scalar (number, true, false, null) is taken as a
 * run of characters up to the next delimiter and left for the parser to
 * spell-check.  Anything the splitter hands on gets exactly one reply.
 *
 * Recovery rules, so that a client can always get back in step:
 *  - a token that cannot come where it is (a '{' where an object member
 *    must be followed by ',' or '}', a second key without a colon, ...)
 *    ends the broken text with an error.  If the token is '{' or '[',
 *    the splitter starts over AT that token: '{"execute":"cont"' followed
 *    by a complete message costs one error reply, and the complete
 *    message is answered.  Any other token cannot begin a message, so
 *    the rest of the broken text is discarded with it, up to where its
 *    brackets close or its line ends;
 *  - a top-level scalar or stray character (garbage) ends at the next
 *    whitespace or opening bracket outside a string;
 *  - a raw newline inside a string cannot be valid JSON (control
 *    characters must be escaped), so it ends the text at once: a client
 *    that forgot a quote is back in step on its next line;
 *  - a 0xff byte, which JSON text never contains, discards whatever was
 *    received of the current text (the parser reset QMP documents for
 *    clients); it is answered with one error, unless the text it ends
 *    was answered already;
 *  - a text over the size or nesting limit is reported once and the rest
 *    of it is skipped, still following its structure to find its end.
 *
 * Newlines are whitespace between tokens: a message may span lines.
 */
#include "qemu/osdep.h"
#include "monitor/monitor-internal.h"

/* What an open object or array expects next. */
typedef enum SplitterExpect {
    EXPECT_KEY_OR_CLOSE,        /* after '{' */
    EXPECT_KEY,                 /* after ',' in an object */
    EXPECT_COLON,               /* after a key */
    EXPECT_VALUE_OR_CLOSE,      /* after '[' */
    EXPECT_VALUE,               /* after ':', or ',' in an array */
    EXPECT_COMMA_OR_CLOSE,      /* after a member or element */
} SplitterExpect;

typedef struct SplitterLevel {
    char open;                  /* '{' or '[' */
    uint8_t expect;             /* SplitterExpect */
} SplitterLevel;

struct JsonSplitter {
    JsonSplitterFunc *fn;
    void *opaque;
    size_t max_size;

    GString *buf;           /* the text so far */
    bool active;            /* inside a text */
    bool structured;        /* it began with '{' or '[' */
    bool in_string;
    bool escaped;           /* previous character was a backslash */
    bool in_scalar;         /* inside a number or literal */
    bool skipping;          /* over a limit: reported, now discarding */
    bool broken;            /* after a grammar error: discarding */
    unsigned depth;         /* open levels with their grammar followed */
    unsigned extra_depth;   /* levels beyond the nesting limit (skipped) */
    SplitterLevel levels[QMP_MAX_NESTING];
};

JsonSplitter *json_splitter_new(size_t max_size, JsonSplitterFunc *fn,
                                void *opaque)
{
    JsonSplitter *js = g_new0(JsonSplitter, 1);

    js->fn = fn;
    js->opaque = opaque;
    js->max_size = max_size;
    js->buf = g_string_new(NULL);
    return js;
}

void json_splitter_free(JsonSplitter *js)
{
    if (js) {
        g_string_free(js->buf, TRUE);
        g_free(js);
    }
}

size_t json_splitter_pending(const JsonSplitter *js)
{
    return js->active ? js->buf->len : 0;
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_json_delimiter(char c)
{
    return is_json_space(c) || c == '{' || c == '}' || c == '[' ||
           c == ']' || c == ':' || c == ',' || c == '"';
}

static void splitter_reset(JsonSplitter *js)
{
    js->active = false;
    js->structured = false;
    js->in_string = false;
    js->escaped = false;
    js->in_scalar = false;
    js->skipping = false;
    js->broken = false;
    js->depth = 0;
    js->extra_depth = 0;
    /* Do not keep a 1 MiB buffer around for every idle client. */
    if (js->buf->allocated_len > 64 * KiB) {
        g_string_free(js->buf, TRUE);
        js->buf = g_string_new(NULL);
    } else {
        g_string_truncate(js->buf, 0);
    }
}

/* End the current text: hand it on unless it was already reported. */
static void splitter_finish(JsonSplitter *js)
{
    if (!js->skipping) {
        js->fn(js->opaque, js->buf->str, js->buf->len, NULL);
    }
    splitter_reset(js);
}

/* Report a limit once and discard the rest of the text. */
static void splitter_refuse(JsonSplitter *js, const char *why)
{
    if (!js->skipping) {
        js->skipping = true;
        g_string_truncate(js->buf, 0);
        js->fn(js->opaque, NULL, 0, why);
    }
}

static void splitter_append(JsonSplitter *js, char c)
{
    if (js->skipping) {
        return;
    }
    if (js->buf->len >= js->max_size) {
        g_autofree char *why = g_strdup_printf(
            "QMP message too large (over %zu bytes), skipped", js->max_size);
        splitter_refuse(js, why);
        return;
    }
    g_string_append_c(js->buf, c);
}

static SplitterLevel *splitter_top(JsonSplitter *js)
{
    return &js->levels[js->depth - 1];
}

static const char *expect_text(const SplitterLevel *l)
{
    switch ((SplitterExpect)l->expect) {
    case EXPECT_KEY_OR_CLOSE:
        return "a member name in quotes or '}'";
    case EXPECT_KEY:
        return "a member name in quotes";
    case EXPECT_COLON:
        return "':' after the member name";
    case EXPECT_VALUE_OR_CLOSE:
        return "a value or ']'";
    case EXPECT_VALUE:
        return "a value";
    case EXPECT_COMMA_OR_CLOSE:
        return l->open == '{' ? "',' or '}' after an object member"
                              : "',' or ']' after an array element";
    }
    g_assert_not_reached();
}

/*
 * @c cannot come here: end the broken text with an error (unless it was
 * reported already).  A '{' or '[' starts over as the next text; any
 * other token is discarded with the rest of the broken text.
 */
static void splitter_char(JsonSplitter *js, char c);
static void splitter_extra_char(JsonSplitter *js, char c);

static void splitter_unexpected(JsonSplitter *js, char c)
{
    if (!js->skipping) {
        g_autofree char *what = g_ascii_isprint(c) ?
            g_strdup_printf("'%c'", c) :
            g_strdup_printf("byte 0x%02x", (unsigned char)c);
        g_autofree char *why = g_strdup_printf(
            "JSON parse error: unexpected %s where %s was expected, message "
            "discarded", what, expect_text(splitter_top(js)));

        js->fn(js->opaque, NULL, 0, why);
    }
    if (c == '{' || c == '[') {
        /* Most likely the next message: start over at it. */
        splitter_reset(js);
        splitter_char(js, c);
        return;
    }
    /*
     * A token that cannot begin a message: the rest of the broken text
     * goes with it, up to where its brackets close or the line ends.
     */
    js->skipping = true;
    js->broken = true;
    js->extra_depth = js->depth;
    js->depth = 0;
    g_string_truncate(js->buf, 0);
    splitter_extra_char(js, c);
}

/* A value (scalar, string or container) ended at the current level. */
static void splitter_value_done(JsonSplitter *js)
{
    if (js->depth == 0) {
        splitter_finish(js);
    } else {
        splitter_top(js)->expect = EXPECT_COMMA_OR_CLOSE;
    }
}

static bool expects_value(const SplitterLevel *l)
{
    return l->expect == EXPECT_VALUE || l->expect == EXPECT_VALUE_OR_CLOSE;
}

static bool expects_key(const SplitterLevel *l)
{
    return l->expect == EXPECT_KEY || l->expect == EXPECT_KEY_OR_CLOSE;
}

/* One character of a string (the opening quote already seen). */
static void splitter_string_char(JsonSplitter *js, char c)
{
    if (c == '\n') {
        /* Raw newlines are invalid in JSON strings: resynchronize here. */
        if (!js->skipping) {
            splitter_refuse(js, "JSON parse error: unterminated string "
                            "(raw newline inside a string)");
        }
        splitter_reset(js);
        return;
    }
    splitter_append(js, c);
    if (js->escaped) {
        js->escaped = false;
    } else if (c == '\\') {
        js->escaped = true;
    } else if (c == '"') {
        js->in_string = false;
        if (!js->structured || js->extra_depth) {
            return;
        }
        if (expects_key(splitter_top(js))) {
            splitter_top(js)->expect = EXPECT_COLON;
        } else {
            splitter_value_done(js);
        }
    }
}

/*
 * Beyond the nesting limit, or after a grammar error: only find where
 * the skipped value ends.  A broken text also ends with its line.
 */
static void splitter_extra_char(JsonSplitter *js, char c)
{
    if (c == '\n' && js->broken) {
        splitter_reset(js);
    } else if (c == '"') {
        js->in_string = true;
    } else if (c == '{' || c == '[') {
        js->extra_depth++;
    } else if (c == '}' || c == ']') {
        js->extra_depth--;
        if (!js->extra_depth) {
            splitter_value_done(js);
        }
    }
}

static void splitter_push(JsonSplitter *js, char c)
{
    if (js->depth == QMP_MAX_NESTING) {
        g_autofree char *why = g_strdup_printf(
            "QMP message nested deeper than %d levels, skipped",
            QMP_MAX_NESTING);
        splitter_refuse(js, why);
        js->extra_depth = 1;
        return;
    }
    js->levels[js->depth].open = c;
    js->levels[js->depth].expect = c == '{' ? EXPECT_KEY_OR_CLOSE
                                            : EXPECT_VALUE_OR_CLOSE;
    js->depth++;
}

/* A character of a structured text, outside strings and scalars. */
static void splitter_structure_char(JsonSplitter *js, char c)
{
    SplitterLevel *l = splitter_top(js);

    if (is_json_space(c)) {
        splitter_append(js, c);
        return;
    }
    switch (c) {
    case '"':
        if (!expects_key(l) && !expects_value(l)) {
            splitter_unexpected(js, c);
            return;
        }
        js->in_string = true;
        break;
    case ':':
        if (l->expect != EXPECT_COLON) {
            splitter_unexpected(js, c);
            return;
        }
        l->expect = EXPECT_VALUE;
        break;
    case ',':
        if (l->expect != EXPECT_COMMA_OR_CLOSE) {
            splitter_unexpected(js, c);
            return;
        }
        l->expect = l->open == '{' ? EXPECT_KEY : EXPECT_VALUE;
        break;
    case '{':
    case '[':
        if (!expects_value(l)) {
            splitter_unexpected(js, c);
            return;
        }
        splitter_append(js, c);
        splitter_push(js, c);
        return;
    case '}':
    case ']':
        if (l->open != (c == '}' ? '{' : '[') ||
            !(l->expect == EXPECT_COMMA_OR_CLOSE ||
              l->expect == EXPECT_KEY_OR_CLOSE ||
              l->expect == EXPECT_VALUE_OR_CLOSE)) {
            splitter_unexpected(js, c);
            return;
        }
        splitter_append(js, c);
        js->depth--;
        splitter_value_done(js);
        return;
    default:
        if (!expects_value(l)) {
            splitter_unexpected(js, c);
            return;
        }
        js->in_scalar = true;
        break;
    }
    splitter_append(js, c);
}

static void splitter_char(JsonSplitter *js, char c)
{
    if ((unsigned char)c == 0xff) {
        /* The documented parser reset: drop the partial text. */
        if (!js->skipping) {
            js->fn(js->opaque, NULL, 0, js->active ?
                   "JSON parse error: byte 0xff, the partial message "
                   "before it is discarded" :
                   "JSON parse error: stray byte 0xff");
        }
        splitter_reset(js);
        return;
    }
    if (!js->active) {
        if (is_json_space(c)) {
            return;
        }
        js->active = true;
        js->structured = c == '{' || c == '[';
        if (js->structured) {
            splitter_append(js, c);
            splitter_push(js, c);
            return;
        }
    } else if (!js->structured && !js->in_string &&
               (is_json_space(c) || c == '{' || c == '[')) {
        /* Garbage or a bare scalar ends here; @c starts what follows. */
        splitter_finish(js);
        splitter_char(js, c);
        return;
    }

    if (js->in_string) {
        splitter_string_char(js, c);
        return;
    }
    if (!js->structured) {
        splitter_append(js, c);
        if (c == '"') {
            js->in_string = true;
        }
        return;
    }
    if (js->extra_depth) {
        splitter_extra_char(js, c);
        return;
    }
    if (js->in_scalar) {
        if (!is_json_delimiter(c)) {
            splitter_append(js, c);
            return;
        }
        js->in_scalar = false;
        splitter_value_done(js);
    }
    splitter_structure_char(js, c);
}

void json_splitter_feed(JsonSplitter *js, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        splitter_char(js, data[i]);
    }
}
