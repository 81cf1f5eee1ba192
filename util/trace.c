/*
 * Trace point registry and output.
 */
#include "qemu/osdep.h"
#include "qemu/trace.h"
#include "qemu/keyval.h"
#include "qemu/log.h"

static TraceEvent *trace_events;

void trace_event_register(TraceEvent *ev)
{
    /* Constructors run single-threaded, before main(). Keep sorted. */
    TraceEvent **p = &trace_events;

    while (*p && strcmp((*p)->name, ev->name) < 0) {
        p = &(*p)->next;
    }
    ev->next = *p;
    *p = ev;
}

void trace_emit(TraceEvent *ev, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qemu_log("%s %s", ev->name, msg);
    g_free(msg);
}

void trace_event_foreach(const char *pattern, TraceEventVisit *fn, void *opaque)
{
    for (TraceEvent *ev = trace_events; ev; ev = ev->next) {
        if (!pattern || g_pattern_match_simple(pattern, ev->name)) {
            fn(ev, opaque);
        }
    }
}

int trace_enable_pattern(const char *pattern, bool enable)
{
    int n = 0;

    if (pattern[0] == '-') {
        pattern++;
        enable = !enable;
    }
    for (TraceEvent *ev = trace_events; ev; ev = ev->next) {
        if (g_pattern_match_simple(pattern, ev->name)) {
            __atomic_store_n(&ev->enabled, enable, __ATOMIC_RELAXED);
            n++;
        }
    }
    return n;
}

static bool trace_enable_checked(const char *pattern, Error **errp)
{
    if (!*pattern) {
        error_setg(errp, "-trace: empty event pattern");
        return false;
    }
    if (trace_enable_pattern(pattern, true) == 0 && !strpbrk(pattern, "*?")) {
        error_setg(errp, "-trace: no trace event named '%s'", pattern);
        return false;
    }
    return true;
}

static bool trace_load_events_file(const char *path, Error **errp)
{
    g_autofree char *text = NULL;
    g_autoptr(GError) gerr = NULL;

    if (!g_file_get_contents(path, &text, NULL, &gerr)) {
        error_setg(errp, "-trace events=%s: %s", path, gerr->message);
        return false;
    }
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *line = g_strstrip(*l);
        if (*line == '\0' || *line == '#') {
            continue;
        }
        if (!trace_enable_checked(line, errp)) {
            return false;
        }
    }
    return true;
}

bool trace_opt_parse(const char *optarg, Error **errp)
{
    /* "PATTERN" alone, or enable=PATTERN,events=FILE,file=LOGFILE. */
    g_autoptr(KeyVal) kv = keyval_parse(optarg, "enable", "-trace", errp);
    const char *pattern, *events, *file;

    if (!kv) {
        return false;
    }
    pattern = keyval_get(kv, "enable");
    events = keyval_get(kv, "events");
    file = keyval_get(kv, "file");
    if (!keyval_check_unused(kv, errp)) {
        return false;
    }
    if (file && !qemu_log_set_file(file, errp)) {
        error_prepend(errp, "-trace file=%s: ", file);
        return false;
    }
    if (events && !trace_load_events_file(events, errp)) {
        return false;
    }
    return !pattern || trace_enable_checked(pattern, errp);
}
