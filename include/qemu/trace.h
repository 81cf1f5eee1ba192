/*
 * Named trace points, off by default and one predictable branch when off.
 *
 * Define a trace point once in a .c file of its subsystem:
 *     TRACE_DEFINE(migration_set_state);
 * declare it where it is used (a subsystem's trace.h):
 *     TRACE_DECLARE(migration_set_state);
 * and fire it:
 *     trace(migration_set_state, "%s -> %s", from, to);
 *
 * -trace PATTERN (glob, '-' prefix disables), -trace enable=PATTERN and
 * -trace events=FILE select them at start; QMP trace-event-get-state and
 * trace-event-set-state at run time.  Output goes to the log (-D).
 */
#ifndef QEMU_TRACE_H
#define QEMU_TRACE_H

#include "qemu/error.h"

typedef struct TraceEvent {
    const char *name;
    int enabled;                /* read with relaxed atomics */
    struct TraceEvent *next;
} TraceEvent;

void trace_event_register(TraceEvent *ev);
void trace_emit(TraceEvent *ev, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

#define TRACE_DEFINE(ev)                                                \
    TraceEvent trace_ev_##ev = { .name = #ev };                         \
    static void __attribute__((constructor)) trace_register_##ev(void)  \
    {                                                                   \
        trace_event_register(&trace_ev_##ev);                           \
    }
#define TRACE_DECLARE(ev) extern TraceEvent trace_ev_##ev

#define trace(ev, ...)                                                  \
    do {                                                                \
        if (__builtin_expect(__atomic_load_n(&trace_ev_##ev.enabled,    \
                                             __ATOMIC_RELAXED), 0)) {   \
            trace_emit(&trace_ev_##ev, __VA_ARGS__);                    \
        }                                                               \
    } while (0)

/* Enable (or, with a leading '-', disable) every event matching @pattern.
 * Returns the number of events matched. */
int trace_enable_pattern(const char *pattern, bool enable);
/* Parse one -trace argument: PATTERN, enable=PATTERN, events=FILE, file=F. */
bool trace_opt_parse(const char *optarg, Error **errp);
/* Visit every registered event (sorted by name) whose name matches. */
typedef void TraceEventVisit(TraceEvent *ev, void *opaque);
void trace_event_foreach(const char *pattern, TraceEventVisit *fn, void *opaque);

#endif
