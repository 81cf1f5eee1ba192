/*
 * Unit tests of the generic QMP commands (monitor/qmp-cmds.c, fds.c) and
 * of qom-list / qom-get / qom-set (monitor/qom-qmp-cmds.c), called
 * through qmp_handle_message() on an in-process session.
 */
#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/trace.h"
#include "qom/object.h"
#include "system/runstate.h"
#include "system/system.h"
#include "monitor/monitor-internal.h"

#include <glib-unix.h>

TRACE_DEFINE(test_qmp_alpha);
TRACE_DEFINE(test_qmp_beta);

/* A session whose peer "passed" the fds queued in @fds. */
typedef struct TestSession {
    QmpSession session;
    GQueue fds;
} TestSession;

static int test_take_fd(QmpSession *session)
{
    TestSession *ts = container_of(session, TestSession, session);
    gpointer p = g_queue_pop_head(&ts->fds);

    return p ? GPOINTER_TO_INT(p) - 1 : -1;
}

static TestSession *session_new(void)
{
    TestSession *ts = g_new0(TestSession, 1);
    g_autofree char *reply = NULL;
    const char *caps = "{\"execute\": \"qmp_capabilities\"}";

    qmp_session_init(&ts->session);
    ts->session.take_fd = test_take_fd;
    g_queue_init(&ts->fds);
    reply = qmp_handle_message(&ts->session, caps, strlen(caps));
    g_assert_true(ts->session.negotiated);
    return ts;
}

static void session_free(TestSession *ts)
{
    qmp_session_cleanup(&ts->session);
    g_assert_true(g_queue_is_empty(&ts->fds));
    g_free(ts);
}

/* Run "execute" with @args_json (NULL: none); returns the reply. */
static JsonObject *exec(TestSession *ts, const char *cmd, const char *args_json)
{
    g_autofree char *req = args_json ?
        g_strdup_printf("{\"execute\": \"%s\", \"arguments\": %s}", cmd, args_json) :
        g_strdup_printf("{\"execute\": \"%s\"}", cmd);
    g_autofree char *reply = qmp_handle_message(&ts->session, req, strlen(req));
    g_autoptr(JsonParser) parser = json_parser_new();

    g_assert_true(g_str_has_suffix(reply, "\r\n"));
    g_assert_true(json_parser_load_from_data(parser, reply, -1, NULL));
    qmp_session_run_after_reply(&ts->session);
    return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

/* The "return" value of a command that must succeed (new reference). */
static JsonNode *exec_ok(TestSession *ts, const char *cmd, const char *args_json)
{
    g_autoptr(JsonObject) reply = exec(ts, cmd, args_json);
    JsonNode *ret = json_object_get_member(reply, "return");

    if (!ret) {
        g_error("%s %s failed: %s", cmd, args_json ? args_json : "",
                json_object_get_string_member(
                    json_object_get_object_member(reply, "error"), "desc"));
    }
    return json_node_ref(ret);
}

static void exec_fail(TestSession *ts, const char *cmd, const char *args_json,
                      const char *cls, const char *desc_part)
{
    g_autoptr(JsonObject) reply = exec(ts, cmd, args_json);
    JsonObject *err = json_object_has_member(reply, "error") ?
        json_object_get_object_member(reply, "error") : NULL;
    const char *desc;

    if (!err) {
        g_error("%s %s succeeded, expected '%s'", cmd, args_json ? args_json : "",
                desc_part);
    }
    desc = json_object_get_string_member(err, "desc");
    g_assert_cmpstr(json_object_get_string_member(err, "class"), ==, cls);
    if (!strstr(desc, desc_part)) {
        g_error("%s: desc '%s' lacks '%s'", cmd, desc, desc_part);
    }
}

/* ---- Run state, name, quit ---- */

static const char *status_of(TestSession *ts, bool *running)
{
    static char status[32];
    g_autoptr(JsonNode) ret = exec_ok(ts, "query-status", NULL);
    JsonObject *info = json_node_get_object(ret);

    g_strlcpy(status, json_object_get_string_member(info, "status"),
              sizeof(status));
    *running = json_object_get_boolean_member(info, "running");
    return status;
}

static void test_run_state(void)
{
    TestSession *ts = session_new();
    bool running;

    runstate_set(RUN_STATE_PRELAUNCH);
    g_assert_cmpstr(status_of(ts, &running), ==, "prelaunch");
    g_assert_false(running);
    /* stop on a VM that does not run changes nothing. */
    g_autoptr(JsonNode) r1 = exec_ok(ts, "stop", NULL);
    g_assert_cmpstr(status_of(ts, &running), ==, "prelaunch");

    g_autoptr(JsonNode) r2 = exec_ok(ts, "cont", NULL);
    g_assert_cmpstr(status_of(ts, &running), ==, "running");
    g_assert_true(running);
    g_autoptr(JsonNode) r3 = exec_ok(ts, "cont", NULL);
    g_assert_cmpstr(status_of(ts, &running), ==, "running");

    g_autoptr(JsonNode) r4 = exec_ok(ts, "stop", NULL);
    g_assert_cmpstr(status_of(ts, &running), ==, "paused");
    g_assert_false(running);
    g_autoptr(JsonNode) r5 = exec_ok(ts, "stop", NULL);
    g_assert_cmpstr(status_of(ts, &running), ==, "paused");

    /* A destination waiting for its stream: cont is remembered, not done. */
    runstate_set(RUN_STATE_INMIGRATE);
    g_autoptr(JsonNode) r6 = exec_ok(ts, "cont", NULL);
    g_assert_cmpstr(status_of(ts, &running), ==, "inmigrate");

    runstate_set(RUN_STATE_FINISH_MIGRATE);
    exec_fail(ts, "cont", NULL, "GenericError", "migration has not finished");
    runstate_set(RUN_STATE_SHUTDOWN);
    exec_fail(ts, "cont", NULL, "GenericError",
              "cannot be resumed from state 'shutdown'");
    runstate_set(RUN_STATE_INTERNAL_ERROR);
    exec_fail(ts, "cont", NULL, "GenericError", "'internal-error'");
    g_assert_cmpstr(status_of(ts, &running), ==, "internal-error");

    runstate_set(RUN_STATE_POSTMIGRATE);
    g_autoptr(JsonNode) r7 = exec_ok(ts, "cont", NULL);
    g_assert_cmpstr(status_of(ts, &running), ==, "running");
    g_autoptr(JsonNode) r8 = exec_ok(ts, "stop", NULL);

    exec_fail(ts, "stop", "{\"now\": true}", "GenericError",
              "Parameter 'now' is unexpected");
    exec_fail(ts, "query-status", "{\"x\": 1}", "GenericError",
              "Parameter 'x' is unexpected");
    session_free(ts);
}

static void test_query_name(void)
{
    TestSession *ts = session_new();
    const char *saved = qemu_name;

    qemu_name = NULL;
    {
        g_autoptr(JsonNode) ret = exec_ok(ts, "query-name", NULL);
        g_assert_cmpuint(json_object_get_size(json_node_get_object(ret)), ==, 0);
    }
    qemu_name = "vm-under-test";
    {
        g_autoptr(JsonNode) ret = exec_ok(ts, "query-name", NULL);
        g_assert_cmpstr(json_object_get_string_member(json_node_get_object(ret),
                                                      "name"), ==,
                        "vm-under-test");
    }
    qemu_name = saved;
    session_free(ts);
}

static void test_quit(void)
{
    TestSession *ts = session_new();
    g_autofree char *reply = NULL;
    const char *req = "{\"execute\": \"quit\", \"id\": \"q\"}";

    exec_fail(ts, "quit", "{\"force\": true}", "GenericError",
              "Parameter 'force' is unexpected");
    g_assert_false(main_loop_exit_requested());
    reply = qmp_handle_message(&ts->session, req, strlen(req));
    g_assert_cmpstr(reply, ==, "{\"return\":{},\"id\":\"q\"}\r\n");
    /* The exit waits until the reply is out. */
    g_assert_false(main_loop_exit_requested());
    qmp_session_run_after_reply(&ts->session);
    g_assert_true(main_loop_exit_requested());
    session_free(ts);
}

/* ---- Trace points and log ---- */

static JsonArray *trace_state(TestSession *ts, const char *name,
                              JsonNode **holder)
{
    g_autofree char *args = g_strdup_printf("{\"name\": \"%s\"}", name);

    *holder = exec_ok(ts, "trace-event-get-state", args);
    return json_node_get_array(*holder);
}

static void test_trace_events(void)
{
    TestSession *ts = session_new();
    g_autoptr(JsonNode) h1 = NULL;
    g_autoptr(JsonNode) h2 = NULL;
    g_autoptr(JsonNode) h3 = NULL;
    g_autoptr(JsonNode) h4 = NULL;
    JsonArray *list;

    list = trace_state(ts, "test_qmp_*", &h1);
    g_assert_cmpuint(json_array_get_length(list), ==, 2);
    g_assert_cmpstr(json_object_get_string_member(
                        json_array_get_object_element(list, 0), "name"), ==,
                    "test_qmp_alpha");
    g_assert_cmpstr(json_object_get_string_member(
                        json_array_get_object_element(list, 1), "state"), ==,
                    "disabled");

    g_autoptr(JsonNode) r1 = exec_ok(ts, "trace-event-set-state",
                                     "{\"name\": \"test_qmp_alpha\", \"enable\": true}");
    g_assert_cmpint(trace_ev_test_qmp_alpha.enabled, ==, 1);
    g_assert_cmpint(trace_ev_test_qmp_beta.enabled, ==, 0);
    list = trace_state(ts, "test_qmp_alpha", &h2);
    g_assert_cmpuint(json_array_get_length(list), ==, 1);
    g_assert_cmpstr(json_object_get_string_member(
                        json_array_get_object_element(list, 0), "state"), ==,
                    "enabled");

    g_autoptr(JsonNode) r2 = exec_ok(ts, "trace-event-set-state",
                                     "{\"name\": \"test_qmp_?e*\", \"enable\": true}");
    g_assert_cmpint(trace_ev_test_qmp_beta.enabled, ==, 1);
    g_autoptr(JsonNode) r3 = exec_ok(ts, "trace-event-set-state",
                                     "{\"name\": \"test_qmp_*\", \"enable\": false, "
                                     "\"ignore-unavailable\": true}");
    g_assert_cmpint(trace_ev_test_qmp_alpha.enabled, ==, 0);
    g_assert_cmpint(trace_ev_test_qmp_beta.enabled, ==, 0);

    /* A pattern that matches nothing lists nothing; a name must exist. */
    list = trace_state(ts, "no_such_event_*", &h3);
    g_assert_cmpuint(json_array_get_length(list), ==, 0);
    exec_fail(ts, "trace-event-get-state", "{\"name\": \"no_such_event\"}",
              "GenericError", "No trace event named 'no_such_event'");
    exec_fail(ts, "trace-event-set-state",
              "{\"name\": \"no_such_*\", \"enable\": true}", "GenericError",
              "No trace event matches 'no_such_*'");
    exec_fail(ts, "trace-event-set-state", "{\"name\": \"test_qmp_alpha\"}",
              "GenericError", "Parameter 'enable' is missing");
    exec_fail(ts, "trace-event-set-state",
              "{\"name\": \"test_qmp_alpha\", \"enable\": \"yes\"}",
              "GenericError",
              "Invalid parameter type for 'enable', expected: boolean");
    exec_fail(ts, "trace-event-get-state", NULL, "GenericError",
              "Parameter 'name' is missing");
    /* Everything registered shows up under "*". */
    list = trace_state(ts, "*", &h4);
    g_assert_cmpuint(json_array_get_length(list), >=, 2);
    session_free(ts);
}

static void test_query_log(void)
{
    TestSession *ts = session_new();
    g_autofree char *path = g_build_filename(g_get_tmp_dir(), "vmig-test-qmp-log-XXXXXX",
                                             NULL);
    int fd = g_mkstemp(path);

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    {
        g_autoptr(JsonNode) ret = exec_ok(ts, "x-query-log", NULL);
        JsonObject *info = json_node_get_object(ret);
        g_assert_true(json_object_has_member(info, "file"));
        g_assert_true(json_object_get_null_member(info, "file"));
    }
    g_assert_true(qemu_log_set_file(path, &error_abort));
    {
        g_autoptr(JsonNode) ret = exec_ok(ts, "x-query-log", NULL);
        g_assert_cmpstr(json_object_get_string_member(json_node_get_object(ret),
                                                      "file"), ==, path);
    }
    g_assert_true(qemu_log_set_file(NULL, &error_abort));
    unlink(path);
    session_free(ts);
}

/* ---- getfd / closefd ---- */

/* A pipe whose write end is passed; EOF on the read end proves it closed. */
static void pass_pipe(TestSession *ts, int *read_end, int *write_end)
{
    int p[2];

    g_assert_cmpint(pipe(p), ==, 0);
    *read_end = p[0];
    *write_end = p[1];
    g_queue_push_tail(&ts->fds, GINT_TO_POINTER(p[1] + 1));
}

static bool write_end_closed(int read_end)
{
    char c;

    g_assert_true(g_unix_set_fd_nonblocking(read_end, TRUE, NULL));
    return read(read_end, &c, 1) == 0;
}

static void test_getfd(void)
{
    TestSession *ts = session_new();
    int ra, wa, rb, wb, fd;
    Error *err = NULL;
    char c;

    exec_fail(ts, "getfd", "{\"fdname\": \"mig\"}", "GenericError",
              "no file descriptor came with SCM_RIGHTS");
    pass_pipe(ts, &ra, &wa);
    exec_fail(ts, "getfd", "{\"fdname\": \"1mig\"}", "GenericError",
              "must not start with a digit");
    exec_fail(ts, "getfd", "{\"fdname\": \"\"}", "GenericError", "must not be empty");
    exec_fail(ts, "getfd", NULL, "GenericError", "Parameter 'fdname' is missing");
    exec_fail(ts, "getfd", "{\"fdname\": \"mig\", \"x\": 0}", "GenericError",
              "Parameter 'x' is unexpected");
    /* None of the failures consumed the fd. */
    g_assert_cmpuint(g_queue_get_length(&ts->fds), ==, 1);
    g_autoptr(JsonNode) r1 = exec_ok(ts, "getfd", "{\"fdname\": \"mig\"}");
    g_assert_true(g_queue_is_empty(&ts->fds));

    /* The same name again replaces, and closes, the first fd. */
    pass_pipe(ts, &rb, &wb);
    g_autoptr(JsonNode) r2 = exec_ok(ts, "getfd", "{\"fdname\": \"mig\"}");
    g_assert_true(write_end_closed(ra));

    fd = monitor_fd_take("mig", &error_abort);
    g_assert_cmpint(write(fd, "x", 1), ==, 1);
    g_assert_cmpint(read(rb, &c, 1), ==, 1);
    g_assert_cmpint(c, ==, 'x');
    close(fd);
    g_assert_cmpint(monitor_fd_take("mig", &err), ==, -1);
    g_assert_nonnull(strstr(error_get_pretty(err), "'mig'"));
    error_free_or_abort(&err);

    /* closefd */
    pass_pipe(ts, &ra, &wa);
    g_autoptr(JsonNode) r3 = exec_ok(ts, "getfd", "{\"fdname\": \"other\"}");
    g_autoptr(JsonNode) r4 = exec_ok(ts, "closefd", "{\"fdname\": \"other\"}");
    g_assert_true(write_end_closed(ra));
    exec_fail(ts, "closefd", "{\"fdname\": \"other\"}", "GenericError",
              "No file descriptor named 'other'");

    /* Named fds left at exit are closed by the cleanup. */
    close(ra);
    close(rb);
    pass_pipe(ts, &ra, &wa);
    g_autoptr(JsonNode) r5 = exec_ok(ts, "getfd", "{\"fdname\": \"left\"}");
    monitor_cleanup();
    g_assert_true(write_end_closed(ra));
    close(ra);

    /* A transport that cannot pass fds says so. */
    ts->session.take_fd = NULL;
    exec_fail(ts, "getfd", "{\"fdname\": \"mig\"}", "GenericError",
              "cannot pass file descriptors");
    session_free(ts);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* Commands run with the BQL held, as under the main loop. */
    bql_lock();
    g_test_add_func("/qmp/cmds/run-state", test_run_state);
    g_test_add_func("/qmp/cmds/query-name", test_query_name);
    g_test_add_func("/qmp/cmds/trace-events", test_trace_events);
    g_test_add_func("/qmp/cmds/query-log", test_query_log);
    g_test_add_func("/qmp/cmds/getfd", test_getfd);
    /* Last: it asks the (not running) main loop to exit. */
    g_test_add_func("/qmp/cmds/quit", test_quit);
    return g_test_run();
}
