/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The stream loader's fuzz target without libFuzzer, in every build
 * (the sanitizer tree too): each input once through its entry point,
 * one TAP line each.
 *
 *   fuzz-migration-stream-driver [--completed] PATH... [--any PATH...]
 *
 * A PATH is an input file or a directory of them.  Inputs after
 * --completed must load completed: the seeds are streams saved by
 * vmig from the machine the target builds, so a failure means that the
 * two have drifted apart and the fuzzer would only ever see a
 * configuration mismatch.  Inputs after --any may end either way
 * (reproducers of past findings): only a crash or a failed check of the
 * target fails them.
 */
#include "qemu/osdep.h"
#include "fuzz-migration-stream.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned tests_run;
static unsigned tests_failed;

static void run_one(const char *path, bool must_complete)
{
    g_autofree char *data = NULL;
    g_autofree char *name = g_path_get_basename(path);
    g_autoptr(GError) gerr = NULL;
    const char *status;
    gsize len;

    tests_run++;
    if (!g_file_get_contents(path, &data, &len, &gerr)) {
        printf("not ok %u - %s: %s\n", tests_run, name, gerr->message);
        tests_failed++;
        return;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    status = fuzz_migration_last_status();
    if (must_complete && g_strcmp0(status, "completed")) {
        printf("not ok %u - %s: %s, expected completed\n", tests_run, name,
               status ? status : "refused before loading");
        tests_failed++;
        return;
    }
    printf("ok %u - %s: %s\n", tests_run, name,
           status ? status : "refused before loading");
}

static gint compare_paths(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path, bool must_complete)
{
    g_autoptr(GDir) dir = NULL;
    g_autoptr(GPtrArray) names = NULL;
    const char *name;

    if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
        run_one(path, must_complete);
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
        run_one(g_ptr_array_index(names, i), must_complete);
    }
}

int main(int argc, char **argv)
{
    bool must_complete = false;

    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--completed") || !strcmp(argv[i], "--any")) {
            must_complete = !strcmp(argv[i], "--completed");
            continue;
        }
        run_path(argv[i], must_complete);
    }
    printf("1..%u\n", tests_run);
    return tests_failed ? 1 : 0;
}
