/*
 * The USDT trace backend: every trace point vmig lists (-trace help) is
 * a probe "vmig:NAME" in the binary's SystemTap notes, with a semaphore
 * (so that the message is formatted only while a tool is attached) and
 * one argument, the message.
 */
#include "qemu/osdep.h"
#include "libqtest.h"

/* The probes readelf finds in @binary: name -> "semaphore arguments". */
static GHashTable *read_probes(const char *binary)
{
    g_autofree char *cmd = g_strdup_printf("readelf -n %s", binary);
    g_autofree char *out = NULL;
    g_autoptr(GError) gerr = NULL;
    g_auto(GStrv) lines = NULL;
    GHashTable *probes = g_hash_table_new_full(g_str_hash, g_str_equal,
                                               g_free, g_free);
    int status;

    if (!g_spawn_command_line_sync(cmd, &out, NULL, &status, &gerr)) {
        g_error("readelf: %s", gerr->message);
    }
    g_assert_true(g_spawn_check_wait_status(status, NULL));
    lines = g_strsplit(out, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        const char *name, *loc, *args;

        if (!strstr(lines[i], "Provider: vmig") || !lines[i + 1] ||
            !lines[i + 2] || !lines[i + 3]) {
            continue;
        }
        name = strstr(lines[i + 1], "Name: ");
        loc = strstr(lines[i + 2], "Semaphore: ");
        args = strstr(lines[i + 3], "Arguments: ");
        g_assert_nonnull(name);
        g_assert_nonnull(loc);
        g_assert_nonnull(args);
        g_hash_table_insert(probes, g_strdup(name + strlen("Name: ")),
                            g_strdup_printf("%s %s", loc, args));
    }
    return probes;
}

static void test_every_trace_point_is_a_probe(void)
{
    const char *binary = g_getenv("VMIG_BINARY");
    g_autoptr(GHashTable) probes = NULL;
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_auto(GStrv) names = NULL;
    unsigned n = 0;

    if (!CONFIG_USDT) {
        g_test_skip("built without sys/sdt.h (systemtap-sdt-dev)");
        return;
    }
    g_assert_cmpint(qtest_run("-trace help", &out, &err), ==, 0);
    probes = read_probes(binary);
    names = g_strsplit(g_strstrip(out), "\n", -1);
    for (guint i = 0; names[i]; i++) {
        const char *info = g_hash_table_lookup(probes, names[i]);

        if (!info) {
            g_error("trace point '%s' has no USDT probe vmig:%s", names[i],
                    names[i]);
        }
        /* A semaphore (not 0x0) and exactly one argument, a pointer. */
        g_assert_null(strstr(info, "Semaphore: 0x0000000000000000 "));
        g_assert_true(g_str_has_prefix(strstr(info, "Arguments: ") +
                                       strlen("Arguments: "), "8@"));
        g_assert_null(strchr(strstr(info, "Arguments: ") +
                             strlen("Arguments: "), ' '));
        n++;
    }
    /* Migration and VFIO are covered, not just a handful of points. */
    g_assert_cmpuint(n, >=, 90);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/usdt/every-trace-point", test_every_trace_point_is_a_probe);
    return g_test_run();
}
