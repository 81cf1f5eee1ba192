/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target for QMP's input side: one input is what a client
 * sends on one connection.  It reaches the real connection code
 * (monitor_qmp_attach() on a socketpair), the JSON splitter, the
 * parser, the request checks, the dispatcher and the commands' argument
 * checks, and the main loop runs until the connection is closed.
 *
 * Only commands that stay inside this process are kept (KEPT_COMMANDS):
 * migrate could write files or run a shell command (exec:), quit ends
 * the process, and a command that changes lasting state (capabilities,
 * parameters, the run state, trace points) would make an input's
 * outcome depend on the inputs before it.
 *
 * Besides crashes, hangs, leaks and sanitizer reports, the target fails
 * when a line the server sends back is not one JSON object in valid
 * UTF-8.  tests/fuzz/make-seeds.py records what real clients sent.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "monitor/qmp.h"
#include "monitor/monitor-internal.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/hostmem.h"
#include "migration/misc.h"
#include "fuzz-common.h"

static const char *const KEPT_COMMANDS[] = {
    "qmp_capabilities", "query-version", "query-commands", "query-name",
    "query-uuid", "query-status", "trace-event-get-state", "x-query-log",
    "qom-list", "qom-get", "query-migrate", "query-migrate-capabilities",
    "query-migrate-parameters", "query-vcpu-dirty-limit", "x-query-guest",
    "getfd", "closefd", NULL
};

/* Each line the server sent must be one JSON object in UTF-8. */
static void check_replies(GByteArray *out, unsigned *replies)
{
    g_autofree char *text = g_strndup((char *)out->data, out->len);
    g_auto(GStrv) lines = NULL;

    if (strlen(text) != out->len) {
        fuzz_fail("the server sent a NUL byte");
    }
    if (out->len && !g_str_has_suffix(text, "\r\n")) {
        fuzz_fail("the server's output does not end with CRLF");
    }
    lines = g_strsplit(text, "\r\n", -1);
    *replies = 0;
    for (unsigned i = 0; lines[i] && lines[i][0]; i++) {
        g_autoptr(JsonParser) parser = json_parser_new();
        g_autoptr(GError) gerr = NULL;

        if (!g_utf8_validate(lines[i], -1, NULL)) {
            g_autofree char *esc = g_strescape(lines[i], NULL);

            fuzz_fail("reply %u is not valid UTF-8: %s", i, esc);
        }
        if (!json_parser_load_from_data(parser, lines[i], -1, &gerr) ||
            !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
            fuzz_fail("reply %u is not a JSON object (%s): %s", i,
                      gerr ? gerr->message : "not an object", lines[i]);
        }
        (*replies)++;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    g_autoptr(GPtrArray) names = NULL;

    fuzz_common_init();
    fuzz_machine_init(true);
    migration_init();
    names = qmp_command_names();
    for (guint i = 0; i < names->len; i++) {
        const char *name = g_ptr_array_index(names, i);

        if (!g_strv_contains(KEPT_COMMANDS, name)) {
            qmp_unregister_command(name);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GByteArray) out = NULL;
    FuzzPeer *peer;
    unsigned replies;
    int fd;

    fuzz_set_result(NULL);
    peer = fuzz_peer_start(data, size, &fd);
    /* No negotiation timeout: an input's outcome must not depend on time. */
    if (!monitor_qmp_attach(fd, true, "fuzz", 0, &error_abort)) {
        fuzz_fail("monitor_qmp_attach failed");
    }
    /* The server closes the connection once it has read its end. */
    while (monitor_qmp_client_count()) {
        g_main_context_iteration(NULL, TRUE);
    }
    out = fuzz_peer_join(peer);
    check_replies(out, &replies);
    fuzz_log("%zu bytes in, %u lines out", size, replies);
    fuzz_set_result("ok");
    return 0;
}
