/*
 * The migration FSM: the next-state table for every from/to pair in the
 * four device shapes (STOP_COPY alone, + P2P, + PRE_COPY, + both),
 * written out by hand from the transition rules (FACTS.md, seed 002);
 * then the same transitions driven over the socket, checking that the
 * device saw exactly the arcs of the path; then arc failures, ERROR and
 * DEVICE_RESET.
 */
#include <errno.h>

#include "test-device.h"
#include "vus-client.h"

#define X  -1
#define E  VFIO_DEVICE_STATE_ERROR
#define S  VFIO_DEVICE_STATE_STOP
#define R  VFIO_DEVICE_STATE_RUNNING
#define SC VFIO_DEVICE_STATE_STOP_COPY
#define RS VFIO_DEVICE_STATE_RESUMING
#define RP VFIO_DEVICE_STATE_RUNNING_P2P
#define PC VFIO_DEVICE_STATE_PRE_COPY
#define PP VFIO_DEVICE_STATE_PRE_COPY_P2P

#define F_SC  VFIO_MIGRATION_STOP_COPY
#define F_P2P VFIO_MIGRATION_P2P
#define F_PRE VFIO_MIGRATION_PRE_COPY

typedef struct FsmCase {
    const char *name;
    uint64_t flags;
    int next[8][8];
} FsmCase;

/* Rows: from; columns: to, in the order E S R SC RS RP PC PP. */
static const FsmCase fsm_cases[] = {
    {
        "stop-copy", F_SC, {
            /* E */  { X, X,  X,  X,  X,  X, X, X },
            /* S */  { X, S,  R,  SC, RS, X, X, X },
            /* R */  { X, S,  R,  S,  S,  X, X, X },
            /* SC */ { X, S,  S,  SC, S,  X, X, X },
            /* RS */ { X, S,  S,  S,  RS, X, X, X },
            /* RP */ { X, X,  X,  X,  X,  X, X, X },
            /* PC */ { X, X,  X,  X,  X,  X, X, X },
            /* PP */ { X, X,  X,  X,  X,  X, X, X },
        },
    }, {
        "p2p", F_SC | F_P2P, {
            /* E */  { X, X,  X,  X,  X,  X,  X, X },
            /* S */  { X, S,  RP, SC, RS, RP, X, X },
            /* R */  { X, RP, R,  RP, RP, RP, X, X },
            /* SC */ { X, S,  S,  SC, S,  S,  X, X },
            /* RS */ { X, S,  S,  S,  RS, S,  X, X },
            /* RP */ { X, S,  R,  S,  S,  RP, X, X },
            /* PC */ { X, X,  X,  X,  X,  X,  X, X },
            /* PP */ { X, X,  X,  X,  X,  X,  X, X },
        },
    }, {
        "pre-copy", F_SC | F_PRE, {
            /* E */  { X, X,  X,  X,  X,  X, X,  X },
            /* S */  { X, S,  R,  SC, RS, X, R,  X },
            /* R */  { X, S,  R,  S,  S,  X, PC, X },
            /* SC */ { X, S,  S,  SC, S,  X, X,  X },
            /* RS */ { X, S,  S,  S,  RS, X, S,  X },
            /* RP */ { X, X,  X,  X,  X,  X, X,  X },
            /* PC */ { X, R,  R,  SC, R,  X, PC, X },
            /* PP */ { X, X,  X,  X,  X,  X, X,  X },
        },
    }, {
        "p2p+pre-copy", F_SC | F_P2P | F_PRE, {
            /* E */  { X, X,  X,  X,  X,  X,  X,  X },
            /* S */  { X, S,  RP, SC, RS, RP, RP, RP },
            /* R */  { X, RP, R,  RP, RP, RP, PC, RP },
            /* SC */ { X, S,  S,  SC, S,  S,  X,  X },
            /* RS */ { X, S,  S,  S,  RS, S,  S,  S },
            /* RP */ { X, S,  R,  S,  S,  RP, R,  PP },
            /* PC */ { X, R,  R,  PP, R,  R,  PC, PP },
            /* PP */ { X, RP, RP, SC, RP, RP, PC, PP },
        },
    },
};

static void test_next_state_table(gconstpointer opaque)
{
    const FsmCase *fc = opaque;

    for (int from = 0; from < 8; from++) {
        for (int to = 0; to < 8; to++) {
            int got = vus_mig_next_state(fc->flags, from, to);
            int want = fc->next[from][to] == X ? -EINVAL : fc->next[from][to];

            if (got != want) {
                g_test_message("%s: %s -> %s: got %d, want %d", fc->name,
                               vus_mig_state_name(from),
                               vus_mig_state_name(to), got, want);
            }
            g_assert_cmpint(got, ==, want);
        }
    }
}

/* The path as the table says it, ending in @to. */
static int expected_path(const FsmCase *fc, int from, int to, uint32_t *path)
{
    int n = 0;

    while (from != to) {
        from = fc->next[from][to];
        g_assert_cmpint(from, !=, X);
        g_assert_cmpint(n, <, 8);
        path[n++] = from;
    }
    return n;
}

static void test_path_rules(gconstpointer opaque)
{
    const FsmCase *fc = opaque;

    for (int from = 1; from < 8; from++) {
        for (int to = 1; to < 8; to++) {
            uint32_t path[8], want[8];
            int n = vus_mig_path(fc->flags, from, to, path, 8);

            if (fc->next[from][to] == X) {
                g_assert_cmpint(n, ==, -EINVAL);
                continue;
            }
            g_assert_cmpint(n, ==, expected_path(fc, from, to, want));
            g_assert_cmpmem(path, n * sizeof(path[0]), want,
                            n * sizeof(want[0]));
            /* Rule: no saving state as an interior step, except within a
             * saving session (saving start, saving end). */
            for (int i = 0; i + 1 < n; i++) {
                bool saving = path[i] == SC || path[i] == PC || path[i] == PP;
                bool from_saving = from == SC || from == PC || from == PP;
                bool to_saving = to == SC || to == PC || to == PP;
                g_assert_true(!saving || (from_saving && to_saving));
            }
            if (n > 1) {
                g_assert_cmpint(vus_mig_path(fc->flags, from, to, path, 1),
                                ==, -ENOSPC);
            }
        }
    }
    /* Out-of-range states are refused, not looked up. */
    g_assert_cmpint(vus_mig_next_state(fc->flags, 8, S), ==, -EINVAL);
    g_assert_cmpint(vus_mig_next_state(fc->flags, S, 0xffffffff), ==,
                    -EINVAL);
}

static void goto_state(VusClient *c, TestDev *td, uint32_t state)
{
    uint32_t got;

    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0,
                            NULL), ==, 0);
    g_assert_cmpint(vc_set_state(c, state), ==, 0);
    g_assert_cmpint(vc_get_state(c, &got), ==, 0);
    g_assert_cmpuint(got, ==, state);
    g_array_unref(td_take_arcs(td));
}

static void test_live_transitions(gconstpointer opaque)
{
    const FsmCase *fc = opaque;
    TestDev *td = td_new(fc->flags);
    VusClient *c;

    td->accept_any_stream = true;
    c = vc_open(td->path);
    for (int from = 1; from < 8; from++) {
        if (!vus_mig_state_supported(fc->flags, from)) {
            g_assert_cmpint(vc_set_state(c, from), ==, -EINVAL);
            continue;
        }
        for (int to = 0; to < 8; to++) {
            uint32_t want[8], state;
            g_autoptr(GArray) arcs = NULL;
            int n;

            goto_state(c, td, from);
            if (fc->next[from][to] == X) {
                g_assert_cmpint(vc_set_state(c, to), ==, -EINVAL);
                arcs = td_take_arcs(td);
                g_assert_cmpuint(arcs->len, ==, 0);
                g_assert_cmpint(vc_get_state(c, &state), ==, 0);
                g_assert_cmpuint(state, ==, from);
                continue;
            }
            g_assert_cmpint(vc_set_state(c, to), ==, 0);
            n = expected_path(fc, from, to, want);
            arcs = td_take_arcs(td);
            g_assert_cmpuint(arcs->len, ==, n);
            for (int i = 0; i < n; i++) {
                TestArc *a = &g_array_index(arcs, TestArc, i);
                g_assert_cmpuint(a->from, ==, i ? want[i - 1] : (uint32_t)from);
                g_assert_cmpuint(a->to, ==, want[i]);
            }
        }
    }
    vc_close(c);
    td_free(td);
}

static void test_arc_failure(void)
{
    TestDev *td = td_new(F_SC | F_P2P | F_PRE);
    VusClient *c = vc_open(td->path);
    uint32_t state;
    g_autoptr(GArray) arcs = NULL;

    /* RUNNING -> STOP_COPY is R->RP->S->SC; the middle arc fails. */
    td_fail_arc(td, RP, S, EIO);
    g_assert_cmpint(vc_set_state(c, SC), ==, -EIO);
    g_assert_cmpint(vc_get_state(c, &state), ==, 0);
    g_assert_cmpuint(state, ==, RP);
    /* The device is usable: it goes back to RUNNING. */
    g_assert_cmpint(vc_set_state(c, R), ==, 0);

    /* An arc that loses the device: ERROR, left only by reset. */
    td_fail_arc(td, R, PC, ENOTRECOVERABLE);
    g_assert_cmpint(vc_set_state(c, PC), ==, -ENOTRECOVERABLE);
    g_assert_cmpint(vc_get_state(c, &state), ==, 0);
    g_assert_cmpuint(state, ==, E);
    g_assert_cmpint(vc_set_state(c, R), ==, -EINVAL);
    g_assert_cmpint(vc_set_state(c, S), ==, -EINVAL);
    g_assert_cmpint(vc_set_state(c, E), ==, -EINVAL);
    td_fail_arc(td, 0, 0, 0);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0,
                            NULL), ==, 0);
    g_assert_cmpint(vc_get_state(c, &state), ==, 0);
    g_assert_cmpuint(state, ==, R);
    g_assert_cmpint(td->resets, ==, 1);
    g_array_unref(td_take_arcs(td));
    g_assert_cmpint(vc_set_state(c, PC), ==, 0);
    arcs = td_take_arcs(td);
    g_assert_cmpuint(arcs->len, ==, 1);

    /* Requests for ERROR or unknown states are refused. */
    g_assert_cmpint(vc_set_state(c, 8), ==, -EINVAL);
    g_assert_cmpint(vc_set_state(c, 0x7fffffff), ==, -EINVAL);
    vc_close(c);
    td_free(td);
}

static void test_resume_validation(void)
{
    TestDev *td = td_new(F_SC);
    VusClient *c = vc_open(td->path);
    uint8_t junk[100] = { 1, 2, 3 };
    uint32_t state;

    /* A truncated stream: RESUMING -> STOP fails, nothing is loaded. */
    g_assert_cmpint(vc_set_state(c, S), ==, 0);
    g_assert_cmpint(vc_set_state(c, RS), ==, 0);
    g_assert_cmpint(vc_mig_write(c, junk, sizeof(junk)), ==, 0);
    g_assert_cmpint(vc_set_state(c, S), ==, -EINVAL);
    g_assert_cmpint(vc_get_state(c, &state), ==, 0);
    g_assert_cmpuint(state, ==, RS);
    g_assert_false(td->loaded);
    /* Aborting RESUMING takes a reset. */
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0,
                            NULL), ==, 0);
    g_assert_cmpint(vc_get_state(c, &state), ==, 0);
    g_assert_cmpuint(state, ==, R);
    vc_close(c);
    td_free(td);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(fsm_cases); i++) {
        g_autofree char *t1 = g_strdup_printf("/vus/fsm/table/%s",
                                              fsm_cases[i].name);
        g_autofree char *t2 = g_strdup_printf("/vus/fsm/path/%s",
                                              fsm_cases[i].name);
        g_autofree char *t3 = g_strdup_printf("/vus/fsm/live/%s",
                                              fsm_cases[i].name);
        g_test_add_data_func(t1, &fsm_cases[i], test_next_state_table);
        g_test_add_data_func(t2, &fsm_cases[i], test_path_rules);
        g_test_add_data_func(t3, &fsm_cases[i], test_live_transitions);
    }
    g_test_add_func("/vus/fsm/arc-failure", test_arc_failure);
    g_test_add_func("/vus/fsm/resume-validation", test_resume_validation);
    return g_test_run();
}
