/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A decoder fuzz target without libFuzzer, in every build (the
 * sanitizer tree too): each input once through its entry point, one TAP
 * line each.
 *
 *   fuzz-NAME-replay [--ok] PATH... [--any PATH...]
 *
 * A PATH is an input file or a directory of them (a missing one is
 * skipped: the reproducers' before any finding).  Inputs after --ok
 * (the seeds, real traffic) must be taken whole without an error
 * (fuzz_last_result() "ok"); inputs after --any (reproducers of past
 * findings) may end either way: only a crash, a sanitizer report, a
 * failed check of the target or a hang (no result within
 * REPLAY_TIMEOUT_S) fails them.
 */
#include "qemu/osdep.h"
#include "fuzz-common.h"

/* An input that takes longer hangs (libFuzzer's -timeout is 20 s). */
#define REPLAY_TIMEOUT_S 30

static unsigned tests_run;
static unsigned tests_failed;
/* What on_timeout() says, made before each input. */
static char timeout_msg[320];

static void on_timeout(int sig)
{
    /* Only async-signal-safe calls here. */
    if (write(STDOUT_FILENO, timeout_msg, strlen(timeout_msg)) < 0) {
        /* nothing more to say */
    }
    _exit(1);
}

static void run_one(const char *path, bool must_be_ok)
{
    g_autofree char *data = NULL;
    g_autofree char *name = g_path_get_basename(path);
    g_autoptr(GError) gerr = NULL;
    const char *result;
    gsize len;

    tests_run++;
    if (!g_file_get_contents(path, &data, &len, &gerr)) {
        printf("not ok %u - %s: %s\n", tests_run, name, gerr->message);
        tests_failed++;
        return;
    }
    fuzz_set_result(NULL);
    snprintf(timeout_msg, sizeof(timeout_msg), "Bail out! %s: no result "
             "within %d s (a hang)\n", name, REPLAY_TIMEOUT_S);
    fflush(stdout);
    alarm(REPLAY_TIMEOUT_S);
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    alarm(0);
    result = fuzz_last_result();
    if (must_be_ok && g_strcmp0(result, "ok")) {
        printf("not ok %u - %s: %s, expected ok\n", tests_run, name,
               result ? result : "refused before decoding");
        tests_failed++;
        return;
    }
    printf("ok %u - %s: %s\n", tests_run, name,
           result ? result : "refused before decoding");
}

static gint compare_paths(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path, bool must_be_ok)
{
    g_autoptr(GDir) dir = NULL;
    g_autoptr(GPtrArray) names = NULL;
    const char *name;

    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        /* A folder of reproducers before the first finding. */
        printf("# %s: none\n", path);
        return;
    }
    if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
        run_one(path, must_be_ok);
        return;
    }
    dir = g_dir_open(path, 0, NULL);
    if (!dir) {
        printf("Bail out! cannot open %s\n", path);
        exit(1);
    }
    /* In name order, so that the TAP lines are the same every time. */
    names = g_ptr_array_new_with_free_func(g_free);
    while ((name = g_dir_read_name(dir))) {
        g_ptr_array_add(names, g_build_filename(path, name, NULL));
    }
    g_ptr_array_sort(names, compare_paths);
    for (guint i = 0; i < names->len; i++) {
        run_one(g_ptr_array_index(names, i), must_be_ok);
    }
}

int main(int argc, char **argv)
{
    bool must_be_ok = false;

    signal(SIGALRM, on_timeout);
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ok") || !strcmp(argv[i], "--any")) {
            must_be_ok = !strcmp(argv[i], "--ok");
            continue;
        }
        run_path(argv[i], must_be_ok);
    }
    printf("1..%u\n", tests_run);
    return tests_failed ? 1 : 0;
}
