/*
 * Guest programs: the registry (-guest), the vCPU step dispatch, the
 * consistency check over all of RAM, and the programs' state as bytes.
 *
 * The program list changes only before the vCPUs exist (creation, setup)
 * and after they are gone (cleanup), so vCPU threads read it unlocked.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/buffer-is-zero.h"
#include "qemu/trace.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/ramblock.h"
#include "system/runstate.h"

TRACE_DEFINE(guest_verify);
TRACE_DEFINE(guest_state_load);

#define GUEST_MAX_PROGRAMS 8
#define GUEST_STATE_MAGIC 0x56475354u      /* "VGST" */
#define GUEST_STATE_VERSION 1
#define GUEST_STATE_NAME_MAX 64

static GuestProgram *programs[GUEST_MAX_PROGRAMS];
static unsigned nr_programs;
static bool programs_set_up;
static char *programs_name;

static void guest_rate_start(void);
static void guest_rate_stop(void);

unsigned guest_program_count(void)
{
    return nr_programs;
}

GuestProgram *guest_program_nth(unsigned i)
{
    return i < nr_programs ? programs[i] : NULL;
}

const char *guest_program_short_name(GuestProgram *prog)
{
    return object_type(&prog->parent_obj) + strlen(GUEST_PROGRAM_TYPE_PREFIX);
}

const char *guest_program_name(void)
{
    return programs_name ? programs_name : "idle";
}

static void guest_update_name(void)
{
    GString *name = g_string_new(NULL);

    for (unsigned i = 0; i < nr_programs; i++) {
        g_string_append_printf(name, "%s%s", i ? "+" : "",
                               guest_program_short_name(programs[i]));
    }
    g_free(programs_name);
    programs_name = nr_programs ? g_string_free(name, FALSE) :
                                  (g_string_free(name, TRUE), NULL);
}

void guest_program_print_help(FILE *out)
{
    g_autoptr(GPtrArray) list = object_class_list(TYPE_GUEST_PROGRAM);

    fprintf(out, "Guest programs (-guest PROGRAM[,option=value...]):\n");
    for (guint i = 0; i < list->len; i++) {
        const ObjectClass *klass = g_ptr_array_index(list, i);

        fprintf(out, "\n%s: %s\n",
                klass->name + strlen(GUEST_PROGRAM_TYPE_PREFIX), klass->desc);
        object_class_print_props(klass, out);
    }
}

void guest_program_finalize(Object *obj)
{
    GuestProgram *prog = (GuestProgram *)obj;

    /* A failed guest_setup() cleaned up already. */
    if (prog->set_up && prog->ops->cleanup) {
        prog->ops->cleanup(prog);
    }
    prog->set_up = false;
    for (unsigned i = 0; i < nr_programs; i++) {
        if (programs[i] == prog) {
            memmove(&programs[i], &programs[i + 1],
                    (nr_programs - i - 1) * sizeof(programs[0]));
            nr_programs--;
            break;
        }
    }
    if (!nr_programs) {
        programs_set_up = false;
        guest_rate_stop();
    }
    guest_update_name();
}

bool guest_program_create(const char *optarg, Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(optarg, "driver", "-guest", errp);
    g_autofree char *type = NULL;
    g_autofree char *child_name = NULL;
    const ObjectClass *klass;
    const char *name;
    Object *obj;

    if (!kv) {
        return false;
    }
    name = keyval_get(kv, "driver");
    if (!name || !*name) {
        error_setg(errp, "-guest: the program name is missing "
                   "(try -guest help)");
        return false;
    }
    type = g_strconcat(GUEST_PROGRAM_TYPE_PREFIX, name, NULL);
    klass = object_class_by_name(type);
    if (!klass || g_strcmp0(klass->parent, TYPE_GUEST_PROGRAM)) {
        error_setg(errp, "-guest: unknown program '%s' (try -guest help)",
                   name);
        return false;
    }
    if (programs_set_up) {
        error_setg(errp, "-guest %s: programs cannot be added once the vCPUs "
                   "exist", name);
        return false;
    }
    if (nr_programs == GUEST_MAX_PROGRAMS) {
        error_setg(errp, "-guest %s: at most %d programs", name,
                   GUEST_MAX_PROGRAMS);
        return false;
    }
    for (unsigned i = 0; i < nr_programs; i++) {
        const char *other = guest_program_short_name(programs[i]);

        if (!strcmp(other, name)) {
            error_setg(errp, "-guest %s: the program runs already", name);
            return false;
        }
        if (!strcmp(other, "idle") || !strcmp(name, "idle")) {
            error_setg(errp, "-guest %s: 'idle' cannot run with another "
                       "program ('%s')", name, other);
            return false;
        }
    }

    child_name = nr_programs ? g_strdup_printf("guest-%s", name) :
                               g_strdup("guest");
    obj = object_create(type, object_get_container("/machine"), child_name,
                        kv, errp);
    if (!obj) {
        return false;
    }
    assert(((GuestProgram *)obj)->ops);
    programs[nr_programs++] = (GuestProgram *)obj;
    guest_update_name();
    return true;
}

bool guest_setup(unsigned nr_vcpus, Error **errp)
{
    if (programs_set_up) {
        error_setg(errp, "guest programs are set up already");
        return false;
    }
    if (!nr_programs && !guest_program_create("idle", errp)) {
        return false;
    }
    for (unsigned i = 0; i < nr_programs; i++) {
        GuestProgram *prog = programs[i];

        prog->nr_vcpus = nr_vcpus;
        if (prog->ops->setup && !prog->ops->setup(prog, nr_vcpus, errp)) {
            error_prepend(errp, "-guest %s: ", guest_program_short_name(prog));
            /*
             * Undo what was built, once: the failed program's half-done
             * setup and the programs set up before it.  set_up stays
             * false, so finalize does not clean up again.
             */
            for (unsigned j = i + 1; j-- > 0;) {
                if (programs[j]->ops->cleanup) {
                    programs[j]->ops->cleanup(programs[j]);
                }
                programs[j]->set_up = false;
            }
            return false;
        }
        prog->set_up = true;
    }
    programs_set_up = true;
    guest_rate_start();
    return true;
}

static gint guest_range_compare(gconstpointer a, gconstpointer b)
{
    const GuestRange *ra = a, *rb = b;

    return ra->gpa < rb->gpa ? -1 : ra->gpa > rb->gpa;
}

/* "0x7fc0000-0x7ffffff (256 KiB)" */
static char *guest_range_str(const GuestRange *r)
{
    g_autofree char *size = size_to_str(r->len);

    return g_strdup_printf("0x%" PRIx64 "-0x%" PRIx64 " (%s)", r->gpa,
                           r->gpa + r->len - 1, size);
}

/* The RAM program @i claims, sorted by address. */
static GArray *guest_program_claims(unsigned i)
{
    GArray *ranges = g_array_new(FALSE, FALSE, sizeof(GuestRange));

    if (programs[i]->ops->claim_ram) {
        programs[i]->ops->claim_ram(programs[i], ranges);
    }
    g_array_sort(ranges, guest_range_compare);
    return ranges;
}

/* Programs @i and @j must not claim the same page. */
static bool guest_check_overlap(unsigned i, unsigned j, Error **errp)
{
    g_autoptr(GArray) a = guest_program_claims(i);
    g_autoptr(GArray) b = guest_program_claims(j);

    for (guint k = 0; k < a->len; k++) {
        const GuestRange *ra = &g_array_index(a, GuestRange, k);

        for (guint l = 0; l < b->len; l++) {
            const GuestRange *rb = &g_array_index(b, GuestRange, l);
            g_autofree char *sa = NULL;
            g_autofree char *sb = NULL;

            if (ra->gpa >= rb->gpa + rb->len || rb->gpa >= ra->gpa + ra->len) {
                continue;
            }
            sa = guest_range_str(ra);
            sb = guest_range_str(rb);
            error_setg(errp, "-guest %s writes guest RAM %s, which overlaps "
                       "%s where -guest %s writes: each program checks the "
                       "pages it writes, so no page may be two programs'; "
                       "move them apart (stress: a smaller ws, or none, "
                       "which leaves the other programs' RAM alone)",
                       guest_program_short_name(programs[i]), sa, sb,
                       guest_program_short_name(programs[j]));
            return false;
        }
    }
    return true;
}

bool guest_place_programs(Error **errp)
{
    g_autoptr(GArray) taken = g_array_new(FALSE, FALSE, sizeof(GuestRange));

    for (unsigned i = 0; i < nr_programs; i++) {
        GuestProgram *prog = programs[i];

        /* Its errors name it already, as when it binds at first use. */
        if (prog->ops->bind && !prog->ops->bind(prog, errp)) {
            return false;
        }
    }
    for (unsigned i = 0; i < nr_programs; i++) {
        if (!programs[i]->ops->place && programs[i]->ops->claim_ram) {
            programs[i]->ops->claim_ram(programs[i], taken);
        }
    }
    g_array_sort(taken, guest_range_compare);
    for (unsigned i = 0; i < nr_programs; i++) {
        GuestProgram *prog = programs[i];

        if (prog->ops->place && !prog->ops->place(prog, taken, errp)) {
            error_prepend(errp, "-guest %s: ", guest_program_short_name(prog));
            return false;
        }
    }
    for (unsigned i = 0; i < nr_programs; i++) {
        for (unsigned j = i + 1; j < nr_programs; j++) {
            if (!guest_check_overlap(i, j, errp)) {
                return false;
            }
        }
    }
    return true;
}

void guest_cleanup(void)
{
    while (nr_programs) {
        object_unparent(&programs[nr_programs - 1]->parent_obj);
    }
    programs_set_up = false;
    guest_rate_stop();
}

void guest_program_step(unsigned cpu)
{
    for (unsigned i = 0; i < nr_programs; i++) {
        programs[i]->ops->step(programs[i], cpu);
    }
}

/* ---- Progress over the last second ---- */

/*
 * The main loop samples every program's pages written every
 * GUEST_RATE_SAMPLE_MS and keeps a second of samples, so that a query
 * tells the rate over the last second whenever it comes, without
 * depending on how often anyone asks.  Main thread, BQL.
 */
#define GUEST_RATE_SAMPLE_MS 250
#define GUEST_RATE_SAMPLES (1000 / GUEST_RATE_SAMPLE_MS + 1)

typedef struct GuestRateSample {
    int64_t ns;
    uint64_t pages[GUEST_MAX_PROGRAMS];
} GuestRateSample;

static GuestRateSample rate_samples[GUEST_RATE_SAMPLES];
static unsigned rate_next;          /* where the next sample goes */
static unsigned rate_count;         /* samples kept, up to the ring's size */
static guint rate_timer;
/* Set by a state load (any thread): the counters jumped, start afresh. */
static int rate_restart;

static uint64_t guest_program_pages(unsigned i)
{
    GuestProgramStats stats = { 0 };

    if (programs[i]->ops->query) {
        programs[i]->ops->query(programs[i], &stats);
    }
    return stats.pages_written;
}

static void guest_rate_sample(void)
{
    GuestRateSample *sample = &rate_samples[rate_next];

    sample->ns = get_clock_ns();
    for (unsigned i = 0; i < nr_programs; i++) {
        sample->pages[i] = guest_program_pages(i);
    }
    rate_next = (rate_next + 1) % GUEST_RATE_SAMPLES;
    rate_count = MIN(rate_count + 1, GUEST_RATE_SAMPLES);
}

/* After a state load, forget the samples from before it. */
static void guest_rate_check_restart(void)
{
    if (__atomic_exchange_n(&rate_restart, 0, __ATOMIC_ACQUIRE)) {
        rate_next = rate_count = 0;
        guest_rate_sample();
    }
}

static gboolean guest_rate_tick(gpointer opaque)
{
    guest_rate_check_restart();
    guest_rate_sample();
    return G_SOURCE_CONTINUE;
}

static void guest_rate_start(void)
{
    if (!rate_timer) {
        rate_timer = g_timeout_add(GUEST_RATE_SAMPLE_MS, guest_rate_tick,
                                   NULL);
        rate_next = rate_count = 0;
        guest_rate_sample();
    }
}

static void guest_rate_stop(void)
{
    if (rate_timer) {
        g_source_remove(rate_timer);
        rate_timer = 0;
    }
    rate_next = rate_count = 0;
}

uint64_t guest_program_pages_per_second(unsigned i)
{
    const GuestRateSample *oldest;
    int64_t ns;
    uint64_t pages;

    if (i >= nr_programs || !programs_set_up) {
        return 0;
    }
    guest_rate_check_restart();
    oldest = &rate_samples[rate_count < GUEST_RATE_SAMPLES ? 0 : rate_next];
    ns = get_clock_ns() - oldest->ns;
    if (ns < GUEST_RATE_SAMPLE_MS * 1000000LL / 2) {
        return 0;       /* too short to mean anything */
    }
    pages = guest_program_pages(i) - oldest->pages[i];
    return (uint64_t)(pages * 1e9 / ns);
}

/* ---- Binding programs to devices ---- */

void guest_binding_init(GuestBinding *b)
{
    g_mutex_init(&b->lock);
    b->bound = false;
    b->error = NULL;
}

void guest_binding_destroy(GuestBinding *b)
{
    g_clear_pointer(&b->error, g_free);
    b->bound = false;
    g_mutex_clear(&b->lock);
}

bool guest_binding_bind(GuestBinding *b, bool (*bind)(void *opaque,
                                                      Error **errp),
                        void *opaque, Error **errp)
{
    bool ok;

    g_mutex_lock(&b->lock);
    if (!b->bound) {
        Error *err = NULL;

        if (!bind(opaque, &err)) {
            b->error = g_strdup(error_get_pretty(err));
            error_free(err);
        }
        __atomic_store_n(&b->bound, true, __ATOMIC_RELEASE);
    }
    ok = !b->error;
    if (!ok) {
        error_setg(errp, "%s", b->error);
    }
    g_mutex_unlock(&b->lock);
    return ok;
}

bool guest_binding_ready(GuestBinding *b)
{
    return __atomic_load_n(&b->bound, __ATOMIC_ACQUIRE) && !b->error;
}

bool guest_pace_due(int64_t next_ns, int64_t now, uint64_t rate,
                    int64_t *wait)
{
    if (rate && now < next_ns) {
        *wait = MIN(*wait, next_ns - now);
        return false;
    }
    return true;
}

void guest_pace_next(int64_t *next_ns, int64_t now, uint64_t rate,
                     int64_t idle_ns)
{
    if (rate) {
        *next_ns = MAX(*next_ns + (int64_t)(1000000000ULL / rate),
                       now - idle_ns);
    }
}

/* ---- Consistency check ---- */

void guest_verify_result_clear(GuestVerifyResult *res)
{
    g_free(res->detail);
    if (res->unchecked) {
        g_ptr_array_free(res->unchecked, true);
    }
    memset(res, 0, sizeof(*res));
    res->first_bad = -1;
}

void guest_verify_report_bad(GuestVerifyResult *res, uint64_t gpa,
                             const char *fmt, ...)
{
    va_list ap;

    res->bad_pages++;
    if (res->first_bad >= 0 && (uint64_t)res->first_bad <= gpa) {
        return;
    }
    res->first_bad = gpa;
    g_free(res->detail);
    va_start(ap, fmt);
    res->detail = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

void guest_verify_report_unchecked(GuestVerifyResult *res, const char *fmt,
                                   ...)
{
    va_list ap;

    if (!res->unchecked) {
        res->unchecked = g_ptr_array_new_with_free_func(g_free);
    }
    va_start(ap, fmt);
    g_ptr_array_add(res->unchecked, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

void guest_verify_zero_range(GuestVerifyResult *res, uint64_t gpa,
                             uint64_t len, const char *what)
{
    RAMBLOCK_FOREACH(rb) {
        uint64_t from = MAX(gpa, rb->gpa) - rb->gpa;
        uint64_t to = MIN(gpa + len, rb->gpa + rb->size);
        uint64_t off, data_end;

        if (to <= rb->gpa + from) {
            continue;
        }
        to -= rb->gpa;
        res->pages_checked += (to - from) >> TARGET_PAGE_BITS;
        for (off = ram_block_next_data(rb, from, &data_end); off < to;
             off = ram_block_next_data(rb, off, &data_end)) {
            for (; off < MIN(data_end, to); off += TARGET_PAGE_SIZE) {
                const uint8_t *page = rb->host + off;

                if (buffer_is_zero(page, TARGET_PAGE_SIZE)) {
                    continue;
                }
                for (size_t i = 0; i < TARGET_PAGE_SIZE; i++) {
                    if (page[i]) {
                        guest_verify_report_bad(res, rb->gpa + off,
                            "page 0x%" PRIx64 " (%s) must be zero but holds "
                            "0x%02x at offset 0x%zx", rb->gpa + off, what,
                            page[i], i);
                        break;
                    }
                }
            }
        }
    }
}

/* Every page no program claims must be zero. */
static void guest_verify_unclaimed(GuestVerifyResult *res, GArray *claims)
{
    uint64_t cursor = 0;

    g_array_sort(claims, guest_range_compare);
    for (guint i = 0; i < claims->len; i++) {
        GuestRange *r = &g_array_index(claims, GuestRange, i);

        if (r->gpa > cursor) {
            guest_verify_zero_range(res, cursor, r->gpa - cursor,
                                    "written by no program");
        }
        cursor = MAX(cursor, r->gpa + r->len);
    }
    if (cursor < UINT64_MAX) {
        guest_verify_zero_range(res, cursor, UINT64_MAX - cursor,
                                "written by no program");
    }
}

bool guest_verify(GuestVerifyResult *res, Error **errp)
{
    g_autoptr(GArray) claims = g_array_new(FALSE, FALSE, sizeof(GuestRange));
    bool was_paused;

    memset(res, 0, sizeof(*res));
    res->first_bad = -1;
    if (!ram_block_first()) {
        error_setg(errp, "guest verify: there is no guest RAM");
        return false;
    }
    if (!programs_set_up) {
        error_setg(errp, "guest verify: the guest programs are not set up");
        return false;
    }
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        error_setg(errp, "guest verify: the VM is waiting for an incoming "
                   "migration (run state inmigrate); verify it after the "
                   "migration completes");
        return false;
    }

    was_paused = all_vcpus_paused();
    if (!was_paused) {
        pause_all_vcpus();
    }
    for (unsigned i = 0; i < nr_programs; i++) {
        const GuestProgramOps *ops = programs[i]->ops;

        if (ops->verify) {
            ops->verify(programs[i], res);
        }
        if (ops->claim_ram) {
            ops->claim_ram(programs[i], claims);
        }
    }
    guest_verify_unclaimed(res, claims);
    if (!was_paused) {
        resume_all_vcpus();
    }
    res->ok = res->bad_pages == 0;
    trace(guest_verify, "%" PRIu64 " pages checked, %" PRIu64 " bad%s%s",
          res->pages_checked, res->bad_pages, res->detail ? ": " : "",
          res->detail ? res->detail : "");
    return true;
}

/* ---- State as bytes ---- */

void guest_state_put_be32(GByteArray *out, uint32_t v)
{
    uint32_t be = GUINT32_TO_BE(v);

    g_byte_array_append(out, (const guint8 *)&be, sizeof(be));
}

void guest_state_put_be64(GByteArray *out, uint64_t v)
{
    uint64_t be = GUINT64_TO_BE(v);

    g_byte_array_append(out, (const guint8 *)&be, sizeof(be));
}

static bool guest_state_need(GuestStateReader *r, size_t n)
{
    if (r->failed) {
        return false;
    }
    if (r->len - r->pos < n) {
        error_setg(r->errp, "%s: truncated at byte %zu (%zu more needed, "
                   "%zu left)", r->what, r->pos, n, r->len - r->pos);
        r->failed = true;
        return false;
    }
    return true;
}

bool guest_state_get_be32(GuestStateReader *r, uint32_t *v)
{
    uint32_t be;

    if (!guest_state_need(r, sizeof(be))) {
        return false;
    }
    memcpy(&be, r->buf + r->pos, sizeof(be));
    r->pos += sizeof(be);
    *v = GUINT32_FROM_BE(be);
    return true;
}

void guest_state_put_header(GByteArray *out, const GuestStateHeader *h)
{
    guest_state_put_be32(out, h->version);
    guest_state_put_be32(out, h->count);
    guest_state_put_be64(out, h->size);
    guest_state_put_be64(out, h->seed);
}

bool guest_state_get_header(GuestStateReader *r, uint32_t version,
                            GuestStateHeader *h)
{
    if (!guest_state_get_be32(r, &h->version) ||
        !guest_state_get_be32(r, &h->count) ||
        !guest_state_get_be64(r, &h->size) ||
        !guest_state_get_be64(r, &h->seed)) {
        return false;
    }
    if (h->version != version) {
        error_setg(r->errp, "%s: unsupported version %u (this vmig reads "
                   "version %u)", r->what, h->version, version);
        r->failed = true;
        return false;
    }
    return true;
}

bool guest_state_get_be64(GuestStateReader *r, uint64_t *v)
{
    uint64_t be;

    if (!guest_state_need(r, sizeof(be))) {
        return false;
    }
    memcpy(&be, r->buf + r->pos, sizeof(be));
    r->pos += sizeof(be);
    *v = GUINT64_FROM_BE(be);
    return true;
}

bool guest_state_reader_done(GuestStateReader *r)
{
    if (r->failed) {
        return false;
    }
    if (r->pos != r->len) {
        error_setg(r->errp, "%s: %zu unexpected bytes at the end", r->what,
                   r->len - r->pos);
        r->failed = true;
        return false;
    }
    return true;
}

/*
 * magic, version, program count, then per program: its name (be32
 * length + bytes) and its state (be32 length + bytes).
 */
GByteArray *guest_state_save(void)
{
    GByteArray *out = g_byte_array_new();

    guest_state_put_be32(out, GUEST_STATE_MAGIC);
    guest_state_put_be32(out, GUEST_STATE_VERSION);
    guest_state_put_be32(out, nr_programs);
    for (unsigned i = 0; i < nr_programs; i++) {
        const char *name = guest_program_short_name(programs[i]);
        g_autoptr(GByteArray) state = g_byte_array_new();

        programs[i]->ops->state_save(programs[i], state);
        guest_state_put_be32(out, strlen(name));
        g_byte_array_append(out, (const guint8 *)name, strlen(name));
        guest_state_put_be32(out, state->len);
        g_byte_array_append(out, state->data, state->len);
    }
    return out;
}

typedef struct GuestStatePart {
    const uint8_t *data;
    uint32_t len;
} GuestStatePart;

/* Split @buf into one part per program, checking names against ours. */
static bool guest_state_split(const uint8_t *buf, size_t len,
                              GuestStatePart *parts, Error **errp)
{
    GuestStateReader r = { .buf = buf, .len = len, .what = "guest state",
                           .errp = errp };
    uint32_t magic, version, count;

    if (!guest_state_get_be32(&r, &magic) ||
        !guest_state_get_be32(&r, &version) ||
        !guest_state_get_be32(&r, &count)) {
        return false;
    }
    if (magic != GUEST_STATE_MAGIC) {
        error_setg(errp, "guest state: bad magic 0x%08x (expected 0x%08x)",
                   magic, GUEST_STATE_MAGIC);
        return false;
    }
    if (version != GUEST_STATE_VERSION) {
        error_setg(errp, "guest state: unsupported version %u (this vmig "
                   "reads version %u)", version, GUEST_STATE_VERSION);
        return false;
    }
    if (count != nr_programs) {
        error_setg(errp, "guest state: holds %u program(s), this VM runs %u "
                   "(%s)", count, nr_programs, guest_program_name());
        return false;
    }
    for (unsigned i = 0; i < count; i++) {
        const char *ours = guest_program_short_name(programs[i]);
        uint32_t name_len;

        if (!guest_state_get_be32(&r, &name_len)) {
            return false;
        }
        if (name_len == 0 || name_len > GUEST_STATE_NAME_MAX) {
            error_setg(errp, "guest state: program %u has a name of %u bytes "
                       "(1 to %d allowed)", i, name_len, GUEST_STATE_NAME_MAX);
            return false;
        }
        if (!guest_state_need(&r, name_len)) {
            return false;
        }
        if (name_len != strlen(ours) || memcmp(buf + r.pos, ours, name_len)) {
            g_autofree char *theirs = qemu_escape_bytes(buf + r.pos,
                                                        name_len);

            error_setg(errp, "guest state: program %u is '%s', this VM runs "
                       "'%s'", i, theirs, ours);
            return false;
        }
        r.pos += name_len;
        if (!guest_state_get_be32(&r, &parts[i].len) ||
            !guest_state_need(&r, parts[i].len)) {
            return false;
        }
        parts[i].data = buf + r.pos;
        r.pos += parts[i].len;
    }
    return guest_state_reader_done(&r);
}

bool guest_state_load(const uint8_t *buf, size_t len, Error **errp)
{
    GuestStatePart parts[GUEST_MAX_PROGRAMS];
    g_autoptr(GByteArray) previous = NULL;
    GuestStatePart old[GUEST_MAX_PROGRAMS];

    if (!programs_set_up) {
        error_setg(errp, "guest state: the guest programs are not set up");
        return false;
    }
    if (!guest_state_split(buf, len, parts, errp)) {
        return false;
    }
    /*
     * Each program checks its part before changing anything; keep the
     * current state so that a later program's refusal can undo an
     * earlier program's load.
     */
    previous = guest_state_save();
    if (!guest_state_split(previous->data, previous->len, old, &error_abort)) {
        return false;
    }
    for (unsigned i = 0; i < nr_programs; i++) {
        GuestProgram *prog = programs[i];

        if (!prog->ops->state_load(prog, parts[i].data, parts[i].len, errp)) {
            error_prepend(errp, "guest state of '%s': ",
                          guest_program_short_name(prog));
            for (unsigned j = 0; j < i; j++) {
                programs[j]->ops->state_load(programs[j], old[j].data,
                                             old[j].len, &error_abort);
            }
            return false;
        }
    }
    __atomic_store_n(&rate_restart, 1, __ATOMIC_RELEASE);
    trace(guest_state_load, "%zu bytes for %s", len, guest_program_name());
    return true;
}
