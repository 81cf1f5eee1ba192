/*
 * Built-in guest programs.  There is no CPU emulator: each vCPU thread
 * runs the programs' step functions over guest RAM through the guest
 * memory API (include/system/ramblock.h), so the dirty log sees every
 * write.
 *
 * Programs are deterministic and self-checking: verify() checks all of
 * RAM (and whatever else a program drives) against the programs' own
 * state, which is saved and restored as bytes so that a migrated program
 * carries on where it stopped and can still be checked.
 *
 * A program is an object of type "guest-NAME" (abstract parent
 * "guest-program") whose options are its properties.  "-guest NAME,k=v"
 * creates the first at /machine/guest; further -guest options add other
 * programs (/machine/guest-NAME) that run on the same vCPUs, each vCPU
 * calling every program's step in turn: this is how a device-driving
 * program combines with stress.  Every program claims the RAM it writes;
 * verify expects every page nobody claims to be zero.
 *
 * Threads: setup, verify, state save/load and queries run with the BQL
 * held and the vCPUs paused (verify pauses them itself); step runs on a
 * vCPU thread.
 */
#ifndef SYSTEM_GUEST_H
#define SYSTEM_GUEST_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qom/object.h"

#define TYPE_GUEST_PROGRAM "guest-program"
#define GUEST_PROGRAM_TYPE_PREFIX "guest-"

typedef struct GuestVerifyResult {
    bool ok;
    uint64_t pages_checked;
    uint64_t bad_pages;
    int64_t first_bad;          /* guest physical address, -1 if none */
    char *detail;               /* what is wrong with first_bad (owned) */
    GPtrArray *unchecked;       /* what could not be checked, and why */
} GuestVerifyResult;

typedef struct GuestProgramStats {
    uint64_t passes;            /* complete passes over the program's RAM */
    uint64_t pages_written;
    uint64_t bytes_written;
} GuestProgramStats;

typedef struct GuestRange {
    uint64_t gpa;
    uint64_t len;
} GuestRange;

typedef struct GuestProgram GuestProgram;

/* setup, cleanup, claim_ram and verify may be NULL (nothing to do). */
typedef struct GuestProgramOps {
    /*
     * RAM exists and the vCPU count is known: check the options against
     * them and build the per-vCPU state (the program's initial state).
     * Called once, before any step.
     */
    bool (*setup)(GuestProgram *prog, unsigned nr_vcpus, Error **errp);
    /*
     * Free what setup built.  Called exactly once per setup, also when
     * setup failed half way (so setup itself need not undo its work).
     */
    void (*cleanup)(GuestProgram *prog);
    /*
     * The devices exist: find the ones the program drives.  A failure
     * (nothing to drive, no room for its buffers) refuses the start; see
     * guest_place_programs().
     */
    bool (*bind)(GuestProgram *prog, Error **errp);
    /*
     * On vCPU thread @cpu: one bounded step, then return to the safe
     * point.  Sleep only through vcpu_sleep_ns().
     */
    void (*step)(GuestProgram *prog, unsigned cpu);
    /* Append the GuestRange(s) of RAM the program writes to @ranges. */
    void (*claim_ram)(GuestProgram *prog, GArray *ranges);
    /*
     * The devices exist: a program that can choose its RAM lays it out
     * around @taken, the GuestRanges the programs without this member
     * claim (sorted by address).  Before any step; see
     * guest_place_programs().
     */
    bool (*place)(GuestProgram *prog, const GArray *taken, Error **errp);
    /*
     * vCPUs paused: check what the program wrote against its state,
     * adding to @res (pages_checked, and guest_verify_report_bad()).
     */
    void (*verify)(GuestProgram *prog, GuestVerifyResult *res);
    /* vCPUs paused: append the program state to @out. */
    void (*state_save)(GuestProgram *prog, GByteArray *out);
    /*
     * vCPUs paused: replace the program state with @buf, which comes from
     * another process and is checked before anything is changed.
     */
    bool (*state_load)(GuestProgram *prog, const uint8_t *buf, size_t len,
                       Error **errp);
    /* Progress; read with relaxed atomics while the vCPUs run. */
    void (*query)(GuestProgram *prog, GuestProgramStats *stats);
} GuestProgramOps;

struct GuestProgram {
    Object parent_obj;
    const GuestProgramOps *ops;     /* set by the type's realize */
    unsigned nr_vcpus;              /* set before ops->setup */
    bool set_up;
};

/*
 * The finalize of every program type: runs ops->cleanup if the program
 * is set up (a failed guest_setup() cleaned up already) and forgets the
 * program.  A type's realize sets prog->ops and checks its options.
 */
void guest_program_finalize(Object *obj);

/*
 * Create a guest program from a -guest option ("stress,ws=256M,...").
 * "help" is the caller's to handle (guest_program_print_help).
 */
bool guest_program_create(const char *optarg, Error **errp);
/* "idle" when none was given, "stress", or "stress+dma" for several. */
const char *guest_program_name(void);
/* Print the programs and their options (-guest help). */
void guest_program_print_help(FILE *out);
/* The programs, in creation order. */
unsigned guest_program_count(void);
GuestProgram *guest_program_nth(unsigned i);
/* "stress" for an object of type "guest-stress". */
const char *guest_program_short_name(GuestProgram *prog);
/*
 * The pages program @i wrote per second over the last second or so (the
 * main loop samples them every 250 ms); 0 in the first 125 ms after the
 * programs start or load a state.  BQL.
 */
uint64_t guest_program_pages_per_second(unsigned i);

/*
 * Set every program up for @nr_vcpus (creating the idle program when
 * none exists).  cpus_init() calls it; tests may call it to drive steps
 * from their own thread.
 */
bool guest_setup(unsigned nr_vcpus, Error **errp);
/* Remove every program (after the vCPUs are gone). */
void guest_cleanup(void);
/*
 * Once the devices exist (a program's RAM may depend on them), before
 * the VM runs: bind the programs to their devices (ops->bind), let the
 * programs that can lay their RAM out around the others' (ops->place),
 * then refuse any page that two programs claim, with an error naming
 * both programs and their ranges.
 */
bool guest_place_programs(Error **errp);

/*
 * Run the consistency check over all of RAM.  When the vCPUs run, it
 * pauses them for the check and resumes them afterwards (BQL held), so a
 * running VM can be checked.  Fails (errp) only when there is nothing to
 * check; a failed check is res->ok == false.
 */
bool guest_verify(GuestVerifyResult *res, Error **errp);
void guest_verify_result_clear(GuestVerifyResult *res);
/*
 * A program's devices, found at first use (devices are created after the
 * programs are): @bind runs once, under the lock, and its failure is
 * kept and reported by every later call.  guest_binding_ready() is for
 * queries that must not wait: bound, and without a failure.
 */
typedef struct GuestBinding {
    GMutex lock;
    bool bound;                 /* atomic */
    char *error;                /* the failure, once bound */
} GuestBinding;

void guest_binding_init(GuestBinding *b);
void guest_binding_destroy(GuestBinding *b);
bool guest_binding_bind(GuestBinding *b, bool (*bind)(void *opaque,
                                                      Error **errp),
                        void *opaque, Error **errp);
bool guest_binding_ready(GuestBinding *b);

/*
 * Pacing of a program that drives a device at @rate rounds per second
 * (0: as fast as it goes).  guest_pace_due(): whether the round due at
 * @next_ns may run at @now; if not, *@wait shrinks to the time left.
 * guest_pace_next(): after a round, the next deadline, without making up
 * for time lost while paused (never more than @idle_ns behind @now).
 */
bool guest_pace_due(int64_t next_ns, int64_t now, uint64_t rate,
                    int64_t *wait);
void guest_pace_next(int64_t *next_ns, int64_t now, uint64_t rate,
                     int64_t idle_ns);

/* For programs' verify: count a bad page and keep the lowest one's detail. */
void guest_verify_report_bad(GuestVerifyResult *res, uint64_t gpa,
                             const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/*
 * For programs' verify: a part that cannot be checked now, not a bad
 * one (a stopped device that refuses access while the VM is paused).
 */
void guest_verify_report_unchecked(GuestVerifyResult *res, const char *fmt,
                                   ...) G_GNUC_PRINTF(2, 3);
/* Count the zero check of [gpa, gpa+len) (RAM) into @res. */
void guest_verify_zero_range(GuestVerifyResult *res, uint64_t gpa,
                             uint64_t len, const char *what);

/*
 * The programs' state as bytes (migrated as a section), vCPUs paused.
 * Load checks the bytes against the configured programs: a different
 * program, vCPU count or option is an error naming both values.
 */
GByteArray *guest_state_save(void);
bool guest_state_load(const uint8_t *buf, size_t len, Error **errp);

/* Called by the vCPU thread of index @cpu: do one bounded step. */
void guest_program_step(unsigned cpu);

/*
 * Byte-stream helpers for program state, big-endian.  A GuestStateReader
 * fails (once, with a message naming @what) on any read past the end.
 */
typedef struct GuestStateReader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    const char *what;
    Error **errp;
    bool failed;
} GuestStateReader;

void guest_state_put_be32(GByteArray *out, uint32_t v);
void guest_state_put_be64(GByteArray *out, uint64_t v);
bool guest_state_get_be32(GuestStateReader *r, uint32_t *v);
bool guest_state_get_be64(GuestStateReader *r, uint64_t *v);
/* Fails when unread bytes remain. */
bool guest_state_reader_done(GuestStateReader *r);

/*
 * The header a program's own state starts with: its format version, a
 * count (vCPUs, devices), a size (working-set pages, slots) and its seed.
 */
typedef struct GuestStateHeader {
    uint32_t version;
    uint32_t count;
    uint64_t size;
    uint64_t seed;
} GuestStateHeader;

void guest_state_put_header(GByteArray *out, const GuestStateHeader *h);
/*
 * Read the header and refuse a version other than @version (the error
 * names r->what).  The caller checks the other fields against its own.
 */
bool guest_state_get_header(GuestStateReader *r, uint32_t version,
                            GuestStateHeader *h);

#endif
