/*
 * Cut a QMP byte stream into top-level JSON texts.
 *
 * A socket read may hold half a message, or several.  The splitter only
 * tracks what it needs to find where a text ends: string state (so that
 * braces inside strings do not count) and bracket depth.  Whether the
 * text is valid JSON is the parser's business: anything the splitter
 * hands on gets exactly one reply, so garbage between messages turns
 * into an error reply instead of silently shifting the framing.
 *
 * Recovery rules, so that a client can always get back in step:
 *  - a top-level scalar or stray character (garbage) ends at the next
 *    whitespace or opening bracket outside a string;
 *  - a raw newline inside a string cannot be valid JSON (control
 *    characters must be escaped), so it ends the text at once: a client
 *    that forgot a quote is back in step on its next line;
 *  - a text over the size or nesting limit is reported once and the rest
 *    of it is skipped, still following its structure to find its end.
 */
#include "qemu/osdep.h"
#include "monitor/monitor-internal.h"

struct JsonSplitter {
    JsonSplitterFunc *fn;
    void *opaque;
    size_t max_size;

    GString *buf;           /* the text so far */
    bool active;            /* inside a text */
    bool structured;        /* it began with '{' or '[' */
    bool in_string;
    bool escaped;           /* previous character was a backslash */
    bool skipping;          /* over a limit: reported, now discarding */
    unsigned depth;
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

static void splitter_reset(JsonSplitter *js)
{
    js->active = false;
    js->structured = false;
    js->in_string = false;
    js->escaped = false;
    js->skipping = false;
    js->depth = 0;
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
    }
}

static void splitter_char(JsonSplitter *js, char c)
{
    if (!js->active) {
        if (is_json_space(c)) {
            return;
        }
        js->active = true;
        js->structured = c == '{' || c == '[';
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
    splitter_append(js, c);
    if (c == '"') {
        js->in_string = true;
    } else if (js->structured && (c == '{' || c == '[')) {
        js->depth++;
        if (js->depth > QMP_MAX_NESTING) {
            g_autofree char *why = g_strdup_printf(
                "QMP message nested deeper than %d levels, skipped",
                QMP_MAX_NESTING);
            splitter_refuse(js, why);
        }
    } else if (js->structured && (c == '}' || c == ']')) {
        /* A mismatched bracket still counts; the parser will object. */
        js->depth--;
        if (js->depth == 0) {
            splitter_finish(js);
        }
    }
}

void json_splitter_feed(JsonSplitter *js, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        splitter_char(js, data[i]);
    }
}
