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
 *
 * Built with sys/sdt.h (CONFIG_USDT), every trace point is also a USDT
 * probe "vmig:NAME" whose one argument is the message as a C string, for
 * perf and bpftrace.  Its semaphore is non-zero while a tool is attached:
 * only then is the message formatted for it, whatever -trace says.
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

#if CONFIG_USDT
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
/* The semaphore a tracer increments while it is attached to the probe. */
#define TRACE_USDT_DEFINE(ev)                                           \
    unsigned short vmig_##ev##_semaphore                                \
        __attribute__((section(".probes"), used));
#define TRACE_USDT_DECLARE(ev) extern unsigned short vmig_##ev##_semaphore;
#define trace_usdt(ev, ...)                                             \
    do {                                                                \
        if (__builtin_expect(__atomic_load_n(&vmig_##ev##_semaphore,    \
                                             __ATOMIC_RELAXED), 0)) {   \
            char *trace_msg_ = g_strdup_printf(__VA_ARGS__);            \
            STAP_PROBE1(vmig, ev, trace_msg_);                          \
            g_free(trace_msg_);                                         \
        }                                                               \
    } while (0)
#else
#define TRACE_USDT_DEFINE(ev)
#define TRACE_USDT_DECLARE(ev)
#define trace_usdt(ev, ...) do { } while (0)
#endif

#define TRACE_DEFINE(ev)                                                \
    TRACE_USDT_DEFINE(ev)                                               \
    TraceEvent trace_ev_##ev = { .name = #ev };                         \
    static void __attribute__((constructor)) trace_register_##ev(void)  \
    {                                                                   \
        trace_event_register(&trace_ev_##ev);                           \
    }
#define TRACE_DECLARE(ev)                                               \
    TRACE_USDT_DECLARE(ev)                                              \
    extern TraceEvent trace_ev_##ev

#define trace(ev, ...)                                                  \
    do {                                                                \
        if (__builtin_expect(__atomic_load_n(&trace_ev_##ev.enabled,    \
                                             __ATOMIC_RELAXED), 0)) {   \
            trace_emit(&trace_ev_##ev, __VA_ARGS__);                    \
        }                                                               \
        trace_usdt(ev, __VA_ARGS__);                                    \
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
