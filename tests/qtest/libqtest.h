/*
 * libqtest: run vmig processes from tests and speak QMP to them.
 *
 * Every process started here is killed when the test program ends, even
 * through a failed assertion (abort): the children die with their parent
 * (PR_SET_PDEATHSIG) and an abort handler kills them first.  Waits are
 * bounded; a timeout fails the test.
 */
#ifndef LIBQTEST_H
#define LIBQTEST_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>

typedef struct QTestState QTestState;

/* Start vmig with a QMP socket and @args (shell-quoted), negotiate. */
QTestState *qtest_init(const char *args);
QTestState *qtest_initf(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Like qtest_init, without talking QMP: for processes expected to fail. */
void qtest_quit(QTestState *s);

pid_t qtest_pid(QTestState *s);
void qtest_kill(QTestState *s, int sig);
/* Exit status (or 128 + signal); -1 on timeout.  Reaps the process. */
int qtest_wait_exit(QTestState *s, int timeout_ms);
/*
 * Also SIGKILL @pid when the test program ends or aborts: for processes
 * vmig forks off, such as a -daemonize child.  qtest_forget_pid() drops
 * it once the test has seen it exit (so a reused pid is not killed).
 */
void qtest_kill_at_exit(pid_t pid);
void qtest_forget_pid(pid_t pid);
/*
 * Processes started from now on (vmig, and helpers spawned with
 * qtest_child_setup) join the network namespace /run/netns/@name; NULL
 * goes back to the test's own.
 */
void qtest_set_netns(const char *name);
/* A g_spawn child setup: die with the test, join qtest_set_netns()'s. */
void qtest_child_setup(gpointer data);
/* A temporary directory for this test program, removed at exit. */
const char *qtest_tmpdir(void);
/* A fresh path inside qtest_tmpdir(), e.g. qtest_tmp_path("mig", "sock"). */
char *qtest_tmp_path(const char *stem, const char *ext);

/*
 * Send a command (printf-formatted JSON text) and return the whole
 * response ({"return": ...} or {"error": ...}); events that arrive first
 * are queued for qtest_qmp_eventwait.  The caller frees the node.
 */
JsonNode *qtest_qmp(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* As qtest_qmp, passing @fds with the message (SCM_RIGHTS), for getfd. */
JsonNode *qtest_qmp_fds(QTestState *s, const int *fds, size_t nfds,
                        const char *fmt, ...) G_GNUC_PRINTF(4, 5);
/* Send raw bytes (any framing, even invalid) without waiting. */
void qtest_qmp_send_raw(QTestState *s, const char *data, size_t len);
/* Read the next response (skipping and queueing events). */
JsonNode *qtest_qmp_receive(QTestState *s);
/* The "return" member of a successful command (asserts success). */
JsonNode *qtest_qmp_assert_success(QTestState *s, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
/* Assert success and drop the result. */
void qtest_qmp_assert_ok(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* The error "desc" (asserts failure with class @cls, or any when NULL). */
char *qtest_qmp_expect_error(QTestState *s, const char *cls, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* The "data" of the next @event (queued or new); NULL after @timeout_ms. */
JsonNode *qtest_qmp_eventwait(QTestState *s, const char *event, int timeout_ms);
/*
 * Read until vmig closes the connection (it quits), queueing the events
 * that come before; fail the test if it is still open after @timeout_ms.
 * qtest_qmp_eventwait(s, EVENT, 0) then tells whether EVENT came.
 */
void qtest_qmp_wait_close(QTestState *s, int timeout_ms);
/* Drop queued events. */
void qtest_qmp_clear_events(QTestState *s);

/*
 * Open another QMP connection to the same vmig (started with a second
 * -qmp on @sock_path), negotiated.  Closing it does not stop vmig.
 */
QTestState *qtest_attach(QTestState *s, const char *sock_path);
/* Close a connection made by qtest_attach. */
void qtest_detach(QTestState *client);

/* query-status "status". */
char *qtest_status(QTestState *s);

/*
 * Run vmig with @args (shell-quoted) to completion, capturing output.
 * Returns the exit status (128 + 14, SIGALRM, if it still ran after a
 * minute).  *out / *err may be NULL.
 */
int qtest_run(const char *args, char **out, char **err);

/* Convenience accessors for JSON results. */
JsonObject *qtest_obj(JsonNode *node);
const char *qtest_get_str(JsonNode *obj_node, const char *member);
int64_t qtest_get_int(JsonNode *obj_node, const char *member);
bool qtest_get_bool(JsonNode *obj_node, const char *member);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(QTestState, qtest_quit)

#endif
