/*
 * HMP and the monitor plumbing: human-monitor-command, its output in
 * QEMU's layout through a real migration, the -monitor console on a
 * socket and on stdio, -chardev/-mon, wait=on and client mode.
 */
#include "qemu/osdep.h"
#include "libqtest.h"
#include "migration/framework.h"
#include "vfio/framework.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/un.h>

/* human-monitor-command: its text, with "\r\n" turned back into "\n". */
static char *hmp(QTestState *s, const char *line)
{
    g_autofree char *quoted = g_strescape(line, NULL);
    g_autoptr(JsonNode) ret = qtest_qmp_assert_success(s,
        "{\"execute\": \"human-monitor-command\", "
        "\"arguments\": {\"command-line\": \"%s\"}}", quoted);
    const char *text = json_node_get_string(ret);
    g_auto(GStrv) lines = NULL;

    /* Every line ends in CRLF, as QEMU's monitor sends them. */
    for (const char *p = text; (p = strchr(p, '\n')); p++) {
        g_assert_true(p > text && p[-1] == '\r');
    }
    lines = g_strsplit(text, "\r\n", -1);
    return g_strjoinv("\n", lines);
}

static void assert_has(const char *text, const char *part)
{
    if (!strstr(text, part)) {
        g_error("'%s' lacks '%s'", text, part);
    }
}

static void test_info_status(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 64M -S");
    g_autofree char *prelaunch = hmp(s, "info status");
    g_autofree char *running = NULL;
    g_autofree char *paused = NULL;
    g_autofree char *none = NULL;

    g_assert_cmpstr(prelaunch, ==, "VM status: paused (prelaunch)\n");
    g_free(hmp(s, "cont"));
    running = hmp(s, "info status");
    g_assert_cmpstr(running, ==, "VM status: running\n");
    g_free(hmp(s, "s"));
    paused = hmp(s, "info status");
    g_assert_cmpstr(paused, ==, "VM status: paused\n");
    /* No migration yet: nothing to say. */
    none = hmp(s, "info migrate");
    g_assert_cmpstr(none, ==, "");
}

static void test_errors(void)
{
    static const struct {
        const char *line;
        const char *want;
    } cases[] = {
        { "bogus", "unknown command: 'bogus'\n" },
        { "info bogus", "unknown command: 'info bogus'\n" },
        { "migrate", "migrate: string expected\n"
                     "Try \"help migrate\" for more information\n" },
        { "migrate_cancel now", "migrate_cancel: extraneous characters at "
          "the end of line\nTry \"help migrate_cancel\" for more "
          "information\n" },
        { "migrate_set_capability multifd maybe", "Expected 'on' or 'off'\n"
          "Try \"help migrate_set_capability\" for more information\n" },
        { "migrate_set_capability xbzrle on", "Error: " },
        { "migrate_set_parameter flavour 1", "Error: invalid parameter "
          "value: flavour" },
        { "migrate_set_parameter downtime-limit abc", "Error: Parameter "
          "'downtime-limit' expects a non-negative number" },
        { "migrate \"unix:/tmp/x", "unterminated string\n" },
        { "migrate_continue pre-switchover", "Error: " },
    };
    g_autoptr(QTestState) s = qtest_init("-m 64M");

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *out = hmp(s, cases[i].line);

        if (!g_str_has_prefix(out, cases[i].want)) {
            g_error("'%s' gave '%s', expected '%s...'", cases[i].line, out,
                    cases[i].want);
        }
    }
    /* The VM is fine after all that. */
    mig_assert_runstate(s, "running");
}

static void test_capabilities_parameters(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 64M");
    g_autofree char *caps = NULL;
    g_autofree char *params = NULL;
    g_autofree char *help = hmp(s, "help migrate_set_parameter");

    g_assert_cmpstr(help, ==, "migrate_set_parameter parameter value -- Set "
                    "the parameter for migration\n");
    g_free(hmp(s, "migrate_set_capability multifd on"));
    g_free(hmp(s, "migrate_set_parameter downtime-limit 500"));
    g_free(hmp(s, "migrate_set_parameter max-bandwidth 1G"));
    g_free(hmp(s, "migrate_set_parameter multifd-channels 3"));
    g_free(hmp(s, "migrate_set_parameter tls-hostname example.org"));
    caps = hmp(s, "info migrate_capabilities");
    assert_has(caps, "\nmultifd: on\n");
    assert_has(caps, "\nreturn-path: off\n");
    params = hmp(s, "info migrate_parameters");
    assert_has(params, "downtime-limit: 500 ms\n");
    /* Without a suffix max-bandwidth counts in MiB, as in QEMU's HMP. */
    assert_has(params, "max-bandwidth: 1073741824 bytes/second\n");
    assert_has(params, "multifd-channels: 3\n");
    assert_has(params, "tls-hostname: 'example.org'\n");
    assert_has(params, "multifd-compression: none\n");
    /* What HMP set, QMP sees. */
    {
        g_autoptr(JsonNode) p = qtest_qmp_assert_success(s,
            "{\"execute\": \"query-migrate-parameters\"}");

        g_assert_cmpint(qtest_get_int(p, "downtime-limit"), ==, 500);
        g_assert_cmpint(qtest_get_int(p, "max-bandwidth"), ==, 1 << 30);
    }
}

/* info migrate through a migration: active, pre-switchover, completed. */
static void test_info_migrate(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *line = g_strdup_printf("migrate -d %s", uri);
    g_autofree char *active = NULL;
    g_autofree char *paused = NULL;
    g_autofree char *done = NULL;
    g_autofree char *status = NULL;
    g_autofree char *dst_status = NULL;

    g_free(hmp(src, "migrate_set_capability pause-before-switchover on"));
    /*
     * 1 MiB/s against a guest that has written its 64 MiB working set:
     * it stays active a minute unless lifted.
     */
    mig_wait_guest_progress(src, 64 << 20);
    g_free(hmp(src, "migrate_set_parameter max-bandwidth 1"));
    g_free(hmp(src, line));
    g_free(mig_wait_status(src, (const char *const[]){ "active", NULL },
                           30000));
    active = hmp(src, "info migrate");
    assert_has(active, "Migration status: active\n");
    assert_has(active, "expected downtime: ");
    assert_has(active, "total ram: 131072 kbytes\n");
    assert_has(active, "page size: 4 kbytes\n");
    g_free(hmp(src, "migrate_set_parameter max-bandwidth 0"));
    g_free(mig_wait_status(src, (const char *const[]){ "pre-switchover",
                                                        NULL }, 60000));
    paused = hmp(src, "info migrate");
    assert_has(paused, "Migration status: pre-switchover\n");
    g_free(hmp(src, "migrate_continue pre-switchover"));
    mig_wait_completed(src, 60000);
    done = hmp(src, "info migrate");
    assert_has(done, "Migration status: completed\n");
    assert_has(done, "\ndowntime: ");
    assert_has(done, "\nsetup: ");
    assert_has(done, "\ntransferred ram: ");
    assert_has(done, "\nthroughput: ");
    assert_has(done, "\nnormal bytes: ");
    g_assert_null(strstr(done, "expected downtime"));
    status = hmp(src, "info status");
    g_assert_cmpstr(status, ==, "VM status: paused (postmigrate)\n");
    mig_check_success(src, dst);
    dst_status = hmp(dst, "info status");
    g_assert_cmpstr(dst_status, ==, "VM status: running\n");
}

static void test_info_migrate_failed(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *line = g_strdup_printf("migrate -d %s", uri);
    g_autofree char *out = NULL;
    g_autofree char *failed = NULL;

    /* Nobody listens there: the connect fails in the migration thread. */
    out = hmp(src, line);
    g_assert_cmpstr(out, ==, "");
    g_free(mig_wait_failed(src, 30000));
    failed = hmp(src, "info migrate");
    assert_has(failed, "Migration status: failed (");
    assert_has(failed, "cannot connect");
    mig_assert_runstate(src, "running");
}

/* migrate_cancel from the console: info migrate says cancelled. */
static void test_info_migrate_cancelled(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autofree char *line = g_strdup_printf("migrate -d %s", uri);
    g_autofree char *out = NULL;

    mig_wait_guest_progress(src, 64 << 20);
    g_free(hmp(src, "migrate_set_parameter max-bandwidth 1"));
    g_free(hmp(src, line));
    g_free(mig_wait_status(src, (const char *const[]){ "active", NULL },
                           30000));
    g_free(hmp(src, "migrate_cancel"));
    g_free(mig_wait_status(src, (const char *const[]){ "cancelled", NULL },
                           30000));
    out = hmp(src, "info migrate");
    g_assert_true(g_str_has_prefix(out, "Migration status: cancelled\n"));
    mig_assert_runstate(src, "running");
}

/* info vfio before, and info migrate / info vfio after, a migration. */
static void test_info_vfio(void)
{
    g_autoptr(VfioServer) srv_src = vfio_server_start("");
    g_autoptr(VfioServer) srv_dst = vfio_server_start("");
    g_autofree char *src_args = vfio_vm_args(&srv_src, 1, NULL);
    g_autofree char *dst_args = vfio_vm_args(&srv_dst, 1, NULL);
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst(uri, dst_args);
    g_autoptr(QTestState) src = mig_start_vm(src_args);
    g_autofree char *before = hmp(src, "info vfio");
    g_autofree char *line = g_strdup_printf("migrate -d %s", uri);
    g_autofree char *after = NULL;
    g_autofree char *info = NULL;

    g_assert_true(g_str_has_prefix(before, "dev0: vfio-user-pci, migration "
                                   "supported, state running, "));
    assert_has(before, ", transferred 0 kbytes\n");
    g_free(hmp(src, "migrate_set_parameter max-bandwidth 0"));
    g_free(hmp(src, line));
    mig_wait_completed(src, 60000);
    info = hmp(src, "info migrate");
    assert_has(info, "\nvfio device transferred: ");
    after = hmp(src, "info vfio");
    assert_has(after, "dev0: vfio-user-pci, migration supported, state stop, ");
    g_assert_null(strstr(after, "transferred 0 kbytes"));
    mig_check_success(src, dst);
}

/* ---- The console ---- */

typedef struct Console {
    int in, out;
    GString *pending;           /* read, not yet returned */
} Console;

/* Read until the next prompt; returns what came before it. */
static char *console_read(Console *c)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    const char *prompt;
    char *text;

    if (!c->pending) {
        c->pending = g_string_new(NULL);
    }
    while (!(prompt = strstr(c->pending->str, "(qemu) "))) {
        char chunk[4096];
        struct pollfd pfd = { .fd = c->in, .events = POLLIN };
        ssize_t n;

        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        if (poll(&pfd, 1, 1000) <= 0) {
            continue;
        }
        n = read(c->in, chunk, sizeof(chunk));
        g_assert_cmpint(n, >, 0);
        g_string_append_len(c->pending, chunk, n);
    }
    text = g_strndup(c->pending->str, prompt - c->pending->str);
    g_string_erase(c->pending, 0, prompt - c->pending->str + strlen("(qemu) "));
    return text;
}

static void console_close(Console *c)
{
    close(c->in);
    if (c->out != c->in) {
        close(c->out);
    }
    if (c->pending) {
        g_string_free(c->pending, TRUE);
    }
}

static void console_send(Console *c, const char *text)
{
    g_assert_cmpint(write(c->out, text, strlen(text)), ==, strlen(text));
}

static char *console_cmd(Console *c, const char *line)
{
    g_autofree char *text = g_strdup_printf("%s\n", line);

    console_send(c, text);
    return console_read(c);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    return fd;
}

/*
 * migrate without -d on the console waits: the line typed after it runs
 * only once the migration has ended, and sees the source postmigrate.
 */
static void test_console_socket(void)
{
    g_autofree char *mon = qtest_tmp_path("hmp", "sock");
    g_autofree char *uri = mig_sock_uri();
    g_autofree char *args = g_strdup_printf("-monitor unix:%s,server=on,"
                                            "wait=off", mon);
    g_autoptr(QTestState) dst = mig_start_dst(uri, "");
    g_autoptr(QTestState) src = mig_start_vm(args);
    g_autofree char *banner = NULL;
    g_autofree char *status = NULL;
    g_autofree char *out = NULL;
    g_autofree char *text = NULL;
    Console c = { 0 };

    c.in = c.out = connect_unix(mon);
    banner = console_read(&c);
    assert_has(banner, "monitor - type 'help' for more information\r\n");
    status = console_cmd(&c, "info status");
    g_assert_cmpstr(status, ==, "VM status: running\r\n");
    g_free(console_cmd(&c, "migrate_set_parameter max-bandwidth 0"));
    text = g_strdup_printf("migrate %s\ninfo status\n", uri);
    console_send(&c, text);
    out = console_read(&c);
    g_assert_cmpstr(out, ==, "");
    g_free(out);
    out = console_read(&c);
    g_assert_cmpstr(out, ==, "VM status: paused (postmigrate)\r\n");
    mig_check_success(src, dst);
    /* quit from the console ends the process. */
    console_send(&c, "quit\n");
    g_assert_cmpint(qtest_wait_exit(src, 30000), ==, 0);
    console_close(&c);
}

static void test_console_stdio_commands(void)
{
    const char *binary = g_getenv("VMIG_BINARY");
    char *argv[] = { (char *)binary, "-m", "64M", "-S", "-monitor", "stdio",
                     NULL };
    g_autoptr(GError) gerr = NULL;
    g_autofree char *banner = NULL;
    g_autofree char *status = NULL;
    Console c = { 0 };
    GPid pid;
    int wstatus;

    g_assert_true(g_spawn_async_with_pipes(NULL, argv, NULL,
                                           G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                           NULL, &pid, &c.out, &c.in, NULL,
                                           &gerr));
    qtest_kill_at_exit(pid);
    banner = console_read(&c);
    assert_has(banner, "monitor");
    status = console_cmd(&c, "info status");
    g_assert_cmpstr(status, ==, "VM status: paused (prelaunch)\r\n");
    console_send(&c, "quit\n");
    g_assert_cmpint(waitpid(pid, &wstatus, 0), ==, pid);
    qtest_forget_pid(pid);
    g_assert_true(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    console_close(&c);
}

/* ---- -chardev / -mon, wait=on, client mode ---- */

/* A QMP greeting on @fd, within the test's patience. */
static void expect_greeting(int fd)
{
    char buf[512] = "";
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    g_assert_cmpint(poll(&pfd, 1, 30000), ==, 1);
    g_assert_cmpint(read(fd, buf, sizeof(buf) - 1), >, 0);
    assert_has(buf, "{\"QMP\":");
}

/* The process behind @args, started without waiting for anything. */
static GPid spawn_vmig(const char *args)
{
    g_autofree char *cmd = g_strdup_printf("%s %s", g_getenv("VMIG_BINARY"),
                                           args);
    g_auto(GStrv) argv = NULL;
    GPid pid;

    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    g_assert_true(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
                                G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, &pid,
                                NULL));
    qtest_kill_at_exit(pid);
    return pid;
}

static void quit_over(int fd, GPid pid)
{
    static const char quit[] = "{\"execute\": \"qmp_capabilities\"}\n"
                               "{\"execute\": \"quit\"}\n";
    int wstatus;

    g_assert_cmpint(write(fd, quit, strlen(quit)), ==, strlen(quit));
    g_assert_cmpint(waitpid(pid, &wstatus, 0), ==, pid);
    qtest_forget_pid(pid);
    g_assert_true(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    close(fd);
}

/* QEMU's default: a server waits for its first client before going on. */
static void test_chardev_wait_on(void)
{
    g_autofree char *path = qtest_tmp_path("mon", "sock");
    g_autofree char *args = g_strdup_printf(
        "-m 64M -chardev socket,id=m0,path=%s,server=on "
        "-mon chardev=m0,mode=control", path);
    GPid pid = spawn_vmig(args);
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    int fd;

    while (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(10000);
    }
    fd = connect_unix(path);
    expect_greeting(fd);
    quit_over(fd, pid);
}

/* server=off: vmig connects to a monitor client that listens. */
static void test_qmp_client_mode(void)
{
    g_autofree char *path = qtest_tmp_path("client", "sock");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_autofree char *args = NULL;
    GPid pid;
    int fd;

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    g_assert_cmpint(listen(lfd, 1), ==, 0);
    args = g_strdup_printf("-m 64M -qmp unix:%s,server=off", path);
    pid = spawn_vmig(args);
    fd = accept(lfd, NULL, NULL);
    g_assert_cmpint(fd, >=, 0);
    expect_greeting(fd);
    quit_over(fd, pid);
    close(lfd);
}

static void test_chardev_readline(void)
{
    g_autofree char *path = qtest_tmp_path("ro", "sock");
    g_autoptr(QTestState) s = NULL;
    g_autofree char *args = g_strdup_printf(
        "-m 64M -chardev socket,id=h,path=%s,server=on,wait=off "
        "-mon chardev=h", path);
    g_autofree char *status = NULL;
    Console c = { 0 };

    s = qtest_init(args);
    c.in = c.out = connect_unix(path);
    g_free(console_read(&c));
    status = console_cmd(&c, "info status");
    g_assert_cmpstr(status, ==, "VM status: running\r\n");
    console_close(&c);
}

static void test_option_errors(void)
{
    static const struct {
        const char *args;
        const char *error_part;
    } cases[] = {
        { "-chardev pty,id=p", "backend 'pty' is not supported" },
        { "-chardev socket,path=/tmp/x", "expected BACKEND,id=ID" },
        { "-chardev socket,id=a,path=/tmp/x,telnet=on",
          "option 'telnet' is not supported" },
        { "-chardev socket,id=a", "give either path=PATH or host=HOST" },
        { "-chardev socket,id=a,path=/tmp/x,wait=off",
          "wait= is for server=on only" },
        { "-mon chardev=nope", "chardev 'nope' is not defined" },
        { "-chardev stdio,id=a -mon a,mode=fancy",
          "mode='fancy' is not readline or control" },
        { "-chardev stdio,id=a -mon a -mon a,mode=control",
          "is used by another monitor already" },
        { "-chardev stdio,id=a -chardev stdio,id=a -mon a",
          "duplicate id 'a'" },
        { "-monitor stdio -qmp stdio", "stdio is used by another monitor" },
        { "-monitor stdio -daemonize", "exclude each other" },
        { "-qmp stdio,server=on", "stdio takes no options" },
        { "-qmp chardev:", "missing chardev id" },
        { "-monitor vc", "unsupported address 'vc'" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *args = g_strdup_printf("-m 64M %s", cases[i].args);
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;
        int rc = qtest_run(args, &out, &err);

        if (rc == 0 || !strstr(err, cases[i].error_part)) {
            g_error("'%s': exit %d, '%s' lacks '%s'", cases[i].args, rc, err,
                    cases[i].error_part);
        }
    }
}

/* ---- fd sets ---- */

/* add-fd of @fd (passed with SCM_RIGHTS); returns the set's id. */
static int64_t add_fd(QTestState *s, int fd, const char *extra)
{
    g_autoptr(JsonNode) r = qtest_qmp_fds(s, &fd, 1,
        "{\"execute\": \"add-fd\", \"arguments\": {%s}}", extra);
    JsonObject *o = json_object_get_object_member(qtest_obj(r), "return");

    g_assert_nonnull(o);
    g_assert_cmpint(json_object_get_int_member(o, "fd"), >=, 0);
    return json_object_get_int_member(o, "fdset-id");
}

/*
 * A save to file:/dev/fdset/N and a load from another set, with fds the
 * test opened: vmig never opens the path itself.
 */
static void test_fdset_migration(void)
{
    g_autofree char *path = qtest_tmp_path("fdset", "state");
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autoptr(QTestState) dst = NULL;
    g_autoptr(JsonNode) sets = NULL;
    g_autofree char *err = NULL;
    int wfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    JsonArray *list;

    g_assert_cmpint(wfd, >=, 0);
    g_assert_cmpint(rfd, >=, 0);
    /* A read-only member cannot serve a save. */
    g_assert_cmpint(add_fd(src, rfd, "\"fdset-id\": 3"), ==, 3);
    mig_migrate(src, "file:/dev/fdset/3");
    err = mig_wait_failed(src, 30000);
    assert_has(err, "no member opened with the access mode needed here");
    g_clear_pointer(&err, g_free);
    /* The lowest free id, and the client's note kept. */
    g_assert_cmpint(add_fd(src, wfd, "\"opaque\": \"state file\""), ==, 0);
    sets = qtest_qmp_assert_success(src, "{\"execute\": \"query-fdsets\"}");
    list = json_node_get_array(sets);
    g_assert_cmpuint(json_array_get_length(list), ==, 2);
    g_assert_cmpint(json_object_get_int_member(
        json_array_get_object_element(list, 0), "fdset-id"), ==, 0);
    g_assert_cmpstr(json_object_get_string_member(
        json_array_get_object_element(json_object_get_array_member(
            json_array_get_object_element(list, 0), "fds"), 0), "opaque"),
        ==, "state file");
    mig_set_fast(src);
    qtest_qmp_assert_ok(src, "{\"execute\": \"stop\"}");
    mig_migrate(src, "file:/dev/fdset/0");
    mig_wait_completed(src, 60000);

    dst = mig_start_dst("defer", "");
    g_assert_cmpint(add_fd(dst, rfd, "\"fdset-id\": 7"), ==, 7);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"file:/dev/fdset/7\"}}");
    g_free(mig_wait_status(dst, (const char *const[]){ "completed", NULL },
                           60000));
    /* The source was stopped, so the destination stays paused. */
    mig_assert_runstate(dst, "paused");
    mig_assert_guest_ok(dst);
    close(wfd);
    close(rfd);
}

static void test_fdset_errors(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 64M");
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *e5 = NULL;

    e1 = qtest_qmp_expect_error(s, "GenericError", "{\"execute\": "
        "\"remove-fd\", \"arguments\": {\"fdset-id\": 5}}");
    g_assert_cmpstr(e1, ==, "File descriptor named 'fdset-id:5' not found");
    e2 = qtest_qmp_expect_error(s, "GenericError", "{\"execute\": "
        "\"add-fd\", \"arguments\": {}}");
    assert_has(e2, "no file descriptor came with SCM_RIGHTS");
    g_assert_cmpint(add_fd(s, fd, "\"fdset-id\": 2"), ==, 2);
    e3 = qtest_qmp_expect_error(s, "GenericError", "{\"execute\": "
        "\"remove-fd\", \"arguments\": {\"fdset-id\": 2, \"fd\": 999}}");
    g_assert_cmpstr(e3, ==, "File descriptor named 'fdset-id:2, fd:999' not "
                    "found");
    qtest_qmp_assert_ok(s, "{\"execute\": \"remove-fd\", "
                        "\"arguments\": {\"fdset-id\": 2}}");
    mig_migrate(s, "file:/dev/fdset/2");
    e4 = mig_wait_failed(s, 30000);
    assert_has(e4, "no such fd set");
    e5 = qtest_qmp_expect_error(s, "GenericError", "{\"execute\": "
        "\"add-fd\", \"arguments\": {\"fdset-id\": -1}}");
    assert_has(e5, "non-negative");
    mig_assert_runstate(s, "running");
    close(fd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hmp/info-status", test_info_status);
    g_test_add_func("/hmp/errors", test_errors);
    g_test_add_func("/hmp/capabilities-parameters",
                   test_capabilities_parameters);
    g_test_add_func("/hmp/info-migrate", test_info_migrate);
    g_test_add_func("/hmp/info-migrate-failed", test_info_migrate_failed);
    g_test_add_func("/hmp/info-migrate-cancelled",
                    test_info_migrate_cancelled);
    g_test_add_func("/hmp/info-vfio", test_info_vfio);
    g_test_add_func("/hmp/console/socket", test_console_socket);
    g_test_add_func("/hmp/console/stdio", test_console_stdio_commands);
    g_test_add_func("/monitor/chardev-wait-on", test_chardev_wait_on);
    g_test_add_func("/monitor/qmp-client-mode", test_qmp_client_mode);
    g_test_add_func("/monitor/chardev-readline", test_chardev_readline);
    g_test_add_func("/monitor/option-errors", test_option_errors);
    g_test_add_func("/monitor/fdset-migration", test_fdset_migration);
    g_test_add_func("/monitor/fdset-errors", test_fdset_errors);
    return g_test_run();
}
