/*
 * The device migration FSM (enum vfio_device_mig_state).
 *
 * The full FSM is the one of a device with every optional state (P2P and
 * PRE_COPY).  Its direct arcs are listed below; every other transition
 * is a path of direct arcs chosen by these rules:
 *   - the shortest path;
 *   - a saving state (PRE_COPY, PRE_COPY_P2P, STOP_COPY) is never an
 *     interior step, except while a saving session continues from a
 *     saving start to a saving end (PRE_COPY -> PRE_COPY_P2P ->
 *     STOP_COPY): there the data stream is not interrupted;
 *   - STOP_COPY -> PRE_COPY / PRE_COPY_P2P is refused (the pre-copy
 *     session cannot be resumed once stop-copy started).
 * The table of first steps for the full FSM is computed once by a
 * breadth-first search.  A device that lacks optional states uses the
 * same table and skips the states it does not have: from a skipped
 * state, the next step towards the target is taken instead.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "private.h"

#define NR_STATES VFIO_DEVICE_STATE_NR

enum {
    ST_ERROR = VFIO_DEVICE_STATE_ERROR,
    ST_STOP = VFIO_DEVICE_STATE_STOP,
    ST_RUNNING = VFIO_DEVICE_STATE_RUNNING,
    ST_STOP_COPY = VFIO_DEVICE_STATE_STOP_COPY,
    ST_RESUMING = VFIO_DEVICE_STATE_RESUMING,
    ST_RUNNING_P2P = VFIO_DEVICE_STATE_RUNNING_P2P,
    ST_PRE_COPY = VFIO_DEVICE_STATE_PRE_COPY,
    ST_PRE_COPY_P2P = VFIO_DEVICE_STATE_PRE_COPY_P2P,
};

/* Direct arcs of the full FSM, in the order the search tries them. */
static const uint8_t full_arcs[][2] = {
    { ST_RUNNING, ST_RUNNING_P2P },
    { ST_RUNNING, ST_PRE_COPY },
    { ST_RUNNING_P2P, ST_RUNNING },
    { ST_RUNNING_P2P, ST_STOP },
    { ST_RUNNING_P2P, ST_PRE_COPY_P2P },
    { ST_STOP, ST_RUNNING_P2P },
    { ST_STOP, ST_STOP_COPY },
    { ST_STOP, ST_RESUMING },
    { ST_STOP_COPY, ST_STOP },
    { ST_RESUMING, ST_STOP },
    { ST_PRE_COPY, ST_RUNNING },
    { ST_PRE_COPY, ST_PRE_COPY_P2P },
    { ST_PRE_COPY_P2P, ST_PRE_COPY },
    { ST_PRE_COPY_P2P, ST_RUNNING_P2P },
    { ST_PRE_COPY_P2P, ST_STOP_COPY },
};

static int8_t full_next[NR_STATES][NR_STATES];
static pthread_once_t full_once = PTHREAD_ONCE_INIT;

static bool is_saving(int s)
{
    return s == ST_PRE_COPY || s == ST_PRE_COPY_P2P || s == ST_STOP_COPY;
}

bool vus_mig_state_is_saving(uint32_t state)
{
    return is_saving(state);
}

const char *vus_mig_state_name(uint32_t state)
{
    static const char *const names[NR_STATES] = {
        [ST_ERROR] = "ERROR",
        [ST_STOP] = "STOP",
        [ST_RUNNING] = "RUNNING",
        [ST_STOP_COPY] = "STOP_COPY",
        [ST_RESUMING] = "RESUMING",
        [ST_RUNNING_P2P] = "RUNNING_P2P",
        [ST_PRE_COPY] = "PRE_COPY",
        [ST_PRE_COPY_P2P] = "PRE_COPY_P2P",
    };

    return state < NR_STATES ? names[state] : "?";
}

bool vus_mig_state_supported(uint64_t mig_flags, uint32_t state)
{
    if (!(mig_flags & VFIO_MIGRATION_STOP_COPY)) {
        return false;
    }
    switch (state) {
    case ST_ERROR:
    case ST_STOP:
    case ST_RUNNING:
    case ST_STOP_COPY:
    case ST_RESUMING:
        return true;
    case ST_RUNNING_P2P:
        return mig_flags & VFIO_MIGRATION_P2P;
    case ST_PRE_COPY:
        return mig_flags & VFIO_MIGRATION_PRE_COPY;
    case ST_PRE_COPY_P2P:
        return (mig_flags & VFIO_MIGRATION_PRE_COPY) &&
               (mig_flags & VFIO_MIGRATION_P2P);
    default:
        return false;
    }
}

/* First step of the shortest allowed path from @from to @to, or ERROR. */
static int8_t search_first_step(int from, int to)
{
    int8_t first[NR_STATES];
    bool seen[NR_STATES] = { false };
    int queue[NR_STATES], head = 0, tail = 0;
    /* A saving state may be passed through only in a saving session. */
    bool saving_session = is_saving(from) && is_saving(to);

    if ((from == ST_STOP_COPY && (to == ST_PRE_COPY ||
                                  to == ST_PRE_COPY_P2P))) {
        return ST_ERROR;
    }
    seen[from] = true;
    queue[tail++] = from;
    while (head < tail) {
        int s = queue[head++];

        for (size_t i = 0; i < sizeof(full_arcs) / sizeof(full_arcs[0]);
             i++) {
            int n = full_arcs[i][1];

            if (full_arcs[i][0] != s || seen[n]) {
                continue;
            }
            if (n != to && is_saving(n) &&
                !(saving_session && is_saving(s))) {
                continue;
            }
            seen[n] = true;
            first[n] = s == from ? n : first[s];
            if (n == to) {
                return first[n];
            }
            queue[tail++] = n;
        }
    }
    return ST_ERROR;
}

static void build_full_table(void)
{
    for (int from = 0; from < NR_STATES; from++) {
        for (int to = 0; to < NR_STATES; to++) {
            if (from == ST_ERROR || to == ST_ERROR) {
                full_next[from][to] = ST_ERROR;
            } else if (from == to) {
                full_next[from][to] = to;
            } else {
                full_next[from][to] = search_first_step(from, to);
            }
        }
    }
}

int vus_mig_next_state(uint64_t mig_flags, uint32_t from, uint32_t to)
{
    int next;

    pthread_once(&full_once, build_full_table);
    if (from >= NR_STATES || to >= NR_STATES || from == ST_ERROR ||
        to == ST_ERROR || !vus_mig_state_supported(mig_flags, from) ||
        !vus_mig_state_supported(mig_flags, to)) {
        return -EINVAL;
    }
    next = full_next[from][to];
    /* Skip the optional states this device does not have. */
    while (next != ST_ERROR && !vus_mig_state_supported(mig_flags, next)) {
        next = full_next[next][to];
    }
    return next == ST_ERROR ? -EINVAL : next;
}

int vus_mig_path(uint64_t mig_flags, uint32_t from, uint32_t to,
                 uint32_t *path, size_t max)
{
    uint32_t cur = from;
    size_t n = 0;

    if (vus_mig_next_state(mig_flags, from, to) < 0) {
        return -EINVAL;
    }
    while (cur != to) {
        int next = vus_mig_next_state(mig_flags, cur, to);

        /* The table has no cycles: at most one visit per state. */
        if (next < 0 || n >= NR_STATES) {
            return -EINVAL;
        }
        if (n >= max) {
            return -ENOSPC;
        }
        path[n++] = next;
        cur = next;
    }
    return n;
}

void vus_mig_fill_table(uint64_t mig_flags, VusMigTable table)
{
    for (int from = 0; from < NR_STATES; from++) {
        for (int to = 0; to < NR_STATES; to++) {
            int next = vus_mig_next_state(mig_flags, from, to);
            table[from][to] = next < 0 ? -1 : next;
        }
    }
}
