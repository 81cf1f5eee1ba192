/*
 * The timeline of the last outgoing migration: every status change, each
 * pass (bytes, dirty rate, bandwidth), each VFIO device's state arcs,
 * the downtime split into phases, and the bytes of every multifd
 * channel at each pass end.  x-query-migration-timeline returns it;
 * tools/vmig-migrate draws it.
 *
 * Recording is cheap (a lock and an append, a few hundred times per
 * migration) and happens on the migration thread, the main loop and the
 * device threads, hence the lock.  Only the source records: the
 * destination's arcs arrive while no timeline is open.
 */
#include "qemu/osdep.h"
#include "migration/timeline.h"
#include "qemu/cutils.h"
#include "migration/multifd.h"

typedef struct TlEvent {
    int64_t ns;
    const char *status;         /* static */
} TlEvent;

typedef struct TlPass {
    int64_t start_ns, end_ns;
    uint64_t bytes, dirty_pages;
} TlPass;

typedef struct TlArc {
    int64_t ns;
    char *dev;
    const char *from, *to;      /* static */
    uint64_t bytes;
} TlArc;

typedef struct TlPhase {
    int64_t start_ns;
    const char *name;           /* static */
} TlPhase;

typedef struct TlSample {
    int64_t ns;
    unsigned channel;
    uint64_t bytes;
} TlSample;

static struct {
    GMutex lock;
    bool open;                  /* a migration is being recorded */
    bool recorded;              /* there is something to show */
    int64_t start_ns, end_ns;   /* end_ns: 0 while it runs */
    int64_t start_wall_us;
    const char *status;
    GArray *events, *passes, *arcs, *phases, *samples;
    int64_t pass_start_ns;      /* 0: no pass begun */
    uint64_t pass_start_bytes;
    int64_t downtime_start_ns, downtime_end_ns;
} tl;

static void arc_clear(gpointer p)
{
    g_free(((TlArc *)p)->dev);
}

static void tl_reset_locked(void)
{
    if (!tl.events) {
        tl.events = g_array_new(FALSE, FALSE, sizeof(TlEvent));
        tl.passes = g_array_new(FALSE, FALSE, sizeof(TlPass));
        tl.arcs = g_array_new(FALSE, FALSE, sizeof(TlArc));
        g_array_set_clear_func(tl.arcs, arc_clear);
        tl.phases = g_array_new(FALSE, FALSE, sizeof(TlPhase));
        tl.samples = g_array_new(FALSE, FALSE, sizeof(TlSample));
    }
    g_array_set_size(tl.events, 0);
    g_array_set_size(tl.passes, 0);
    g_array_set_size(tl.arcs, 0);
    g_array_set_size(tl.phases, 0);
    g_array_set_size(tl.samples, 0);
    tl.pass_start_ns = 0;
    tl.pass_start_bytes = 0;
    tl.downtime_start_ns = tl.downtime_end_ns = 0;
    tl.end_ns = 0;
}

void mig_timeline_start(void)
{
    g_mutex_lock(&tl.lock);
    tl_reset_locked();
    tl.open = tl.recorded = true;
    tl.start_ns = get_clock_ns();
    tl.start_wall_us = g_get_real_time();
    g_mutex_unlock(&tl.lock);
}

void mig_timeline_status(const char *status)
{
    TlEvent e = { .ns = get_clock_ns(), .status = status };

    g_mutex_lock(&tl.lock);
    if (tl.open) {
        g_array_append_val(tl.events, e);
        tl.status = status;
    }
    g_mutex_unlock(&tl.lock);
}

/* The bytes each multifd channel has written, now. */
static void sample_channels_locked(int64_t ns)
{
    for (unsigned i = 0; i < MULTIFD_MAX_CHANNELS; i++) {
        TlSample s = { .ns = ns, .channel = i };

        if (!multifd_send_channel_bytes(i, &s.bytes)) {
            break;
        }
        g_array_append_val(tl.samples, s);
    }
}

void mig_timeline_pass(uint64_t ram_bytes, uint64_t dirty_pages)
{
    int64_t now = get_clock_ns();

    g_mutex_lock(&tl.lock);
    if (tl.open) {
        if (tl.pass_start_ns) {
            TlPass p = {
                .start_ns = tl.pass_start_ns, .end_ns = now,
                .bytes = ram_bytes - tl.pass_start_bytes,
                .dirty_pages = dirty_pages,
            };

            g_array_append_val(tl.passes, p);
            sample_channels_locked(now);
        }
        tl.pass_start_ns = now;
        tl.pass_start_bytes = ram_bytes;
    }
    g_mutex_unlock(&tl.lock);
}

void mig_timeline_device_arc(const char *dev, const char *from,
                             const char *to, uint64_t bytes)
{
    TlArc a = { .ns = get_clock_ns(), .from = from, .to = to,
                .bytes = bytes };

    g_mutex_lock(&tl.lock);
    if (tl.open) {
        a.dev = g_strdup(dev);
        g_array_append_val(tl.arcs, a);
    }
    g_mutex_unlock(&tl.lock);
}

void mig_timeline_downtime_start(int64_t ns)
{
    TlPhase p = { .start_ns = ns, .name = "device-stop" };

    g_mutex_lock(&tl.lock);
    if (tl.open) {
        tl.downtime_start_ns = ns;
        g_array_set_size(tl.phases, 0);
        g_array_append_val(tl.phases, p);
    }
    g_mutex_unlock(&tl.lock);
}

void mig_timeline_phase(const char *name)
{
    TlPhase p = { .start_ns = get_clock_ns(), .name = name };

    g_mutex_lock(&tl.lock);
    /* Only inside the downtime, and a phase that goes on is one phase. */
    if (tl.open && tl.downtime_start_ns && !tl.downtime_end_ns &&
        tl.phases->len &&
        strcmp(g_array_index(tl.phases, TlPhase, tl.phases->len - 1).name,
               name)) {
        g_array_append_val(tl.phases, p);
    }
    g_mutex_unlock(&tl.lock);
}

void mig_timeline_downtime_end(int64_t ns)
{
    g_mutex_lock(&tl.lock);
    if (tl.open && tl.downtime_start_ns) {
        tl.downtime_end_ns = ns;
        /* A phase begun after the end (a racing mark) ends there too. */
        while (tl.phases->len > 1 &&
               g_array_index(tl.phases, TlPhase,
                             tl.phases->len - 1).start_ns > ns) {
            g_array_set_size(tl.phases, tl.phases->len - 1);
        }
    }
    g_mutex_unlock(&tl.lock);
}

void mig_timeline_end(void)
{
    g_mutex_lock(&tl.lock);
    if (tl.open) {
        tl.end_ns = get_clock_ns();
        sample_channels_locked(tl.end_ns);
        /* Arcs after the end (the devices stopping) still belong to it. */
    }
    g_mutex_unlock(&tl.lock);
}

static double ms_of(int64_t ns)
{
    return (ns - tl.start_ns) / 1e6;
}

static JsonArray *query_passes_locked(void)
{
    JsonArray *a = json_array_new();

    for (guint i = 0; i < tl.passes->len; i++) {
        TlPass *p = &g_array_index(tl.passes, TlPass, i);
        double secs = MAX(p->end_ns - p->start_ns, 1) / 1e9;
        JsonObject *o = json_object_new();

        json_object_set_int_member(o, "index", i + 1);
        json_object_set_double_member(o, "start-ms", ms_of(p->start_ns));
        json_object_set_double_member(o, "end-ms", ms_of(p->end_ns));
        json_object_set_int_member(o, "bytes", p->bytes);
        json_object_set_int_member(o, "dirty-pages", p->dirty_pages);
        json_object_set_int_member(o, "dirty-rate",
                                   p->dirty_pages * TARGET_PAGE_SIZE / secs);
        json_object_set_int_member(o, "bandwidth", p->bytes / secs);
        json_array_add_object_element(a, o);
    }
    return a;
}

static JsonArray *query_devices_locked(void)
{
    g_autoptr(GHashTable) by_dev = g_hash_table_new(g_str_hash, g_str_equal);
    JsonArray *a = json_array_new();

    for (guint i = 0; i < tl.arcs->len; i++) {
        TlArc *arc = &g_array_index(tl.arcs, TlArc, i);
        JsonArray *arcs = g_hash_table_lookup(by_dev, arc->dev);
        JsonObject *o;

        if (!arcs) {
            JsonObject *dev = json_object_new();

            arcs = json_array_new();
            json_object_set_string_member(dev, "id", arc->dev);
            json_object_set_array_member(dev, "arcs", arcs);
            json_array_add_object_element(a, dev);
            g_hash_table_insert(by_dev, arc->dev, arcs);
        }
        o = json_object_new();
        json_object_set_double_member(o, "ms", ms_of(arc->ns));
        json_object_set_string_member(o, "from", arc->from);
        json_object_set_string_member(o, "to", arc->to);
        json_object_set_int_member(o, "bytes", arc->bytes);
        json_array_add_object_element(arcs, o);
    }
    return a;
}

static JsonObject *query_downtime_locked(void)
{
    JsonObject *d = json_object_new();
    JsonArray *phases = json_array_new();
    int64_t end = tl.downtime_end_ns ? tl.downtime_end_ns : get_clock_ns();

    for (guint i = 0; i < tl.phases->len; i++) {
        TlPhase *p = &g_array_index(tl.phases, TlPhase, i);
        int64_t stop = i + 1 < tl.phases->len ?
            g_array_index(tl.phases, TlPhase, i + 1).start_ns : end;
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "name", p->name);
        json_object_set_double_member(o, "start-ms", ms_of(p->start_ns));
        json_object_set_double_member(o, "end-ms", ms_of(stop));
        json_object_set_double_member(o, "ms", (stop - p->start_ns) / 1e6);
        json_array_add_object_element(phases, o);
    }
    json_object_set_double_member(d, "start-ms", ms_of(tl.downtime_start_ns));
    json_object_set_double_member(d, "end-ms", ms_of(end));
    json_object_set_double_member(d, "ms", (end - tl.downtime_start_ns) / 1e6);
    json_object_set_array_member(d, "phases", phases);
    return d;
}

static JsonArray *query_multifd_locked(void)
{
    JsonArray *a = json_array_new();
    GPtrArray *per_channel = g_ptr_array_new();

    for (guint i = 0; i < tl.samples->len; i++) {
        TlSample *s = &g_array_index(tl.samples, TlSample, i);
        JsonObject *sample = json_object_new();

        while (per_channel->len <= s->channel) {
            JsonObject *ch = json_object_new();
            JsonArray *samples = json_array_new();

            json_object_set_int_member(ch, "channel", per_channel->len);
            json_object_set_array_member(ch, "samples", samples);
            json_array_add_object_element(a, ch);
            g_ptr_array_add(per_channel, samples);
        }
        json_object_set_double_member(sample, "ms", ms_of(s->ns));
        json_object_set_int_member(sample, "bytes", s->bytes);
        json_array_add_object_element(g_ptr_array_index(per_channel,
                                                        s->channel), sample);
    }
    g_ptr_array_free(per_channel, TRUE);
    return a;
}

JsonObject *mig_timeline_query(void)
{
    JsonObject *obj = json_object_new();
    JsonArray *events;

    g_mutex_lock(&tl.lock);
    if (!tl.recorded) {
        g_mutex_unlock(&tl.lock);
        return obj;
    }
    json_object_set_string_member(obj, "status", tl.status);
    json_object_set_double_member(obj, "start", tl.start_wall_us / 1e6);
    json_object_set_double_member(obj, "total-ms",
                                  ms_of(tl.end_ns ? tl.end_ns
                                                  : get_clock_ns()));
    events = json_array_new();
    for (guint i = 0; i < tl.events->len; i++) {
        TlEvent *e = &g_array_index(tl.events, TlEvent, i);
        JsonObject *o = json_object_new();

        json_object_set_double_member(o, "ms", ms_of(e->ns));
        json_object_set_string_member(o, "status", e->status);
        json_array_add_object_element(events, o);
    }
    json_object_set_array_member(obj, "events", events);
    json_object_set_array_member(obj, "passes", query_passes_locked());
    json_object_set_array_member(obj, "devices", query_devices_locked());
    if (tl.downtime_start_ns) {
        json_object_set_object_member(obj, "downtime",
                                      query_downtime_locked());
    }
    json_object_set_array_member(obj, "multifd", query_multifd_locked());
    g_mutex_unlock(&tl.lock);
    return obj;
}
