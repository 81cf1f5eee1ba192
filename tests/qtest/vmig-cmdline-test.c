/*
 * The command line as a user meets it: help, versions, and clean one-line
 * errors with exit status 1 for every kind of bad input.
 */
#include "qemu/osdep.h"
#include "libqtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* Run vmig expecting failure: status 1, one line naming @needle. */
static void expect_error(const char *args, const char *needle)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = qtest_run(args, &out, &err);

    if (status != 1 || !strstr(err, needle)) {
        g_error("vmig %s: status %d, stderr '%s' (wanted '%s')", args, status,
                err, needle);
    }
    /* One line, prefixed with the program name. */
    g_assert_true(g_str_has_prefix(err, "vmig: "));
    g_assert_nonnull(strchr(err, '\n'));
    g_assert_cmpstr(strchr(err, '\n') + 1, ==, "");
}

static void test_bad_options(void)
{
    expect_error("-nosuch", "-nosuch: invalid option");
    expect_error("stray", "unexpected argument 'stray'");
    expect_error("-m", "-m: requires an argument");
    expect_error("-m 12Q", "-m: '12Q' is not a size");
    expect_error("-m 0", "must be a non-zero multiple");
    expect_error("-m 99999999T", "too large");
    expect_error("-m size=1G,slots=2", "-m: unknown parameter 'slots'");
    expect_error("-smp 0", "-smp: cpus=0 is out of range");
    expect_error("-smp many", "-smp: cpus='many' is not a non-negative integer");
    expect_error("-smp 1000", "out of range");
    expect_error("-machine pc", "machine type 'pc' is not supported: vmig "
                 "emulates no chipset");
    expect_error("-machine q35,accel=kvm", "machine type 'q35' is not "
                 "supported");
    expect_error("-machine none,accel=kvm", "-accel kvm: vmig has no "
                 "accelerators");
    expect_error("-accel tcg", "-accel tcg: vmig has no accelerators");
    expect_error("-enable-kvm", "vmig has no accelerators");
    expect_error("-add-fd fd=1,set=1", "fd must be above 2");
    expect_error("-add-fd fd=977,set=1", "fd 977 is not open");
    expect_error("-add-fd set=1", "fd=N and set=M are required");
    expect_error("-msg guest-name=on", "-msg guest-name: not supported");
    expect_error("-msg timestamp=maybe", "timestamp");
    expect_error("-overcommit cpu-pm=on", "-overcommit cpu-pm=on: not "
                 "supported");
    expect_error("-overcommit mem-lock=maybe", "mem-lock='maybe' is not on, "
                 "off or on-fault");
    expect_error("-machine none,foo=bar", "-machine: unknown parameter 'foo'");
    expect_error("-device nosuch-device", "'nosuch-device' is not a valid device driver");
    expect_error("-device nosuch,help", "unknown driver 'nosuch'");
    expect_error("-object nosuch,id=x", "unknown object type 'nosuch'");
    expect_error("-object memory-backend-ram,size=1M", "parameter 'id' is missing");
    expect_error("-incoming bogus:1", "-incoming");
    expect_error("-incoming tcp:localhost", "-incoming");
    expect_error("-incoming defer -incoming defer", "given more than once");
    expect_error("-guest nosuchprog", "nosuchprog");
    expect_error("-guest stress,bogus=1", "bogus");
    expect_error("-guest stress,ws=lots", "ws");
    expect_error("-guest stress -guest stress,ws=1M", "'stress' given more than once");
    expect_error("-guest nope,help", "unknown program 'nope'");
    /* A program with nothing to drive is refused before anything runs. */
    expect_error("-guest dma", "dma: there is no VFIO device to drive");
    expect_error("-name ''", "-name: missing name");
    expect_error("-uuid 1234", "-uuid: '1234' is not a UUID");
    expect_error("-qmp bogus:/x,server=on,wait=off", "bogus");
    expect_error("-object memory-backend-ram,id=a/b,size=1M", "id 'a/b' may only contain");
    expect_error("-object memory-backend-ram,id=9a,size=1M", "id '9a' must start with a letter");
    expect_error("-device vfio-user-pci,id=-x,socket=/nonexistent", "must start with a letter");
    expect_error("-trace enable=runstate_set,bogus=1", "-trace: unknown parameter 'bogus'");
    expect_error("-trace no_such_trace_point", "no trace event named 'no_such_trace_point'");
    expect_error("-display gtk", "-display: 'gtk' is not supported");
    expect_error("-D /nonexistent-dir/log", "cannot open log file");
}

/*
 * What QEMU command lines carry: -nodefaults and -no-user-config change
 * nothing, -msg timestamp=on dates every report line, -overcommit
 * mem-lock=on locks vmig's memory (VmLck in /proc covers guest RAM).
 */
static void test_qemu_habits(void)
{
    g_autoptr(QTestState) s = qtest_init("-m 32M -nodefaults -no-user-config "
                                         "-overcommit mem-lock=on");
    g_autofree char *status = NULL;
    g_autofree char *path = g_strdup_printf("/proc/%d/status",
                                            (int)qtest_pid(s));
    g_autofree char *text = NULL;
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    const char *lck;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    lck = strstr(text, "VmLck:");
    g_assert_nonnull(lck);
#ifndef __SANITIZE_ADDRESS__
    /* 32 MiB of guest RAM, locked (AddressSanitizer ignores mlockall). */
    g_assert_cmpint(g_ascii_strtoll(lck + strlen("VmLck:"), NULL, 10), >=,
                    32 * 1024);
#endif
    status = qtest_status(s);
    g_assert_cmpstr(status, ==, "running");

    g_assert_cmpint(qtest_run("-m 32M -msg timestamp=on -device nosuch",
                              &out, &err), !=, 0);
    /* 2026-12-06T06:32:23.160263Z vmig: ... */
    g_assert_true(g_regex_match_simple("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}"
                                       ":[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z vmig: ",
                                       err, 0, 0));
}

static void test_object_errors(void)
{
    expect_error("-object memory-backend-ram,id=m0,size=1M,bogus=on",
                 "has no property 'bogus'");
    expect_error("-object memory-backend-ram,id=m0,size=ten",
                 "size='ten' is not a size");
    expect_error("-machine none,memory-backend=nope", "memory-backend 'nope'");
    expect_error("-m 256M -object memory-backend-memfd,id=m0,size=128M "
                 "-machine memory-backend=m0", "128");
    expect_error("-object memory-backend-file,id=m0,size=1M,mem-path=/nonexistent/dir/f",
                 "/nonexistent/dir/f");
}

static void test_help(void)
{
    g_autofree char *out = NULL;
    g_autofree char *out2 = NULL;
    g_autofree char *out3 = NULL;
    g_autofree char *out4 = NULL;
    g_autofree char *out5 = NULL;

    g_assert_cmpint(qtest_run("-help", &out, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "-incoming"));
    g_assert_nonnull(strstr(out, "-qmp"));
    g_assert_cmpint(qtest_run("-version", &out2, NULL), ==, 0);
    g_assert_true(g_str_has_prefix(out2, "vmig version " VMIG_VERSION));
    g_assert_cmpint(qtest_run("-object help", &out3, NULL), ==, 0);
    g_assert_nonnull(strstr(out3, "memory-backend-memfd"));
    g_assert_cmpint(qtest_run("-object memory-backend-file,help", &out4, NULL), ==, 0);
    g_assert_nonnull(strstr(out4, "mem-path=<str>"));
    g_assert_cmpint(qtest_run("-guest help", &out5, NULL), ==, 0);
    g_assert_nonnull(strstr(out5, "stress"));
    g_assert_nonnull(strstr(out5, "idle"));
    g_autofree char *out6 = NULL;
    g_assert_cmpint(qtest_run("-guest stress,help", &out6, NULL), ==, 0);
    g_assert_nonnull(strstr(out6, "ws=<size>"));
    g_assert_nonnull(strstr(out6, "[runtime]"));
}

static void test_device_help(void)
{
    g_autofree char *out = NULL;

    g_assert_cmpint(qtest_run("-device help", &out, NULL), ==, 0);
    g_assert_nonnull(strstr(out, "Available devices"));
}

static void test_pidfile_daemonize(void)
{
    g_autofree char *pidfile = qtest_tmp_path("vmig", "pid");
    g_autofree char *sock = qtest_tmp_path("qmp", "sock");
    g_autofree char *args = g_strdup_printf(
        "-daemonize -pidfile %s -qmp unix:%s,server=on,wait=off -m 32M",
        pidfile, sock);
    g_autofree char *text = NULL;
    g_autofree char *err = NULL;
    g_autofree char *args2 = g_strdup_printf("-pidfile %s -m 32M", pidfile);
    int64_t pid;

    /* The parent returns once the daemon is set up. */
    g_assert_cmpint(qtest_run(args, NULL, NULL), ==, 0);
    g_assert_true(g_file_get_contents(pidfile, &text, NULL, NULL));
    pid = g_ascii_strtoll(text, NULL, 10);
    g_assert_cmpint(pid, >, 1);
    /* Killed whatever happens below, even if an assertion fails. */
    qtest_kill_at_exit(pid);
    g_assert_cmpint(kill(pid, 0), ==, 0);
    g_assert_true(g_file_test(sock, G_FILE_TEST_EXISTS));

    /* A second vmig on the same pidfile refuses to start. */
    g_assert_cmpint(qtest_run(args2, NULL, &err), ==, 1);
    g_assert_nonnull(strstr(err, "locked by another running vmig"));

    /* SIGTERM is a clean shutdown that removes the pidfile. */
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000 && kill(pid, 0) == 0; i++) {
        g_usleep(10000);
    }
    g_assert_cmpint(kill(pid, 0), !=, 0);
    qtest_forget_pid(pid);
    g_assert_false(g_file_test(pidfile, G_FILE_TEST_EXISTS));
}

/*
 * memory-backend-file never resizes a file with data in it: a file
 * smaller than size is refused and left byte for byte as it was.  An
 * empty one is sized.
 */
static void test_mem_path_not_resized(void)
{
    g_autofree char *file = qtest_tmp_path("data", "bin");
    g_autofree char *empty = qtest_tmp_path("empty", "img");
    static const char data[] = "precious data, not guest RAM\n";
    g_autofree char *args = g_strdup_printf(
        "-object memory-backend-file,id=m0,size=1M,mem-path=%s,share=off "
        "-machine none,memory-backend=m0", file);
    g_autofree char *needle = g_strdup_printf(
        "mem-path '%s' holds %zu bytes, less than size 1048576", file,
        sizeof(data) - 1);
    g_autofree char *back = NULL;
    gsize len;
    struct stat st;

    g_assert_true(g_file_set_contents(file, data, sizeof(data) - 1, NULL));
    expect_error(args, needle);
    g_assert_true(g_file_get_contents(file, &back, &len, NULL));
    g_assert_cmpuint(len, ==, sizeof(data) - 1);
    g_assert_cmpmem(back, len, data, sizeof(data) - 1);

    /* An empty file is sized, and it then holds guest RAM. */
    g_assert_true(g_file_set_contents(empty, "", 0, NULL));
    {
        g_autoptr(QTestState) s = qtest_initf(
            "-object memory-backend-file,id=m0,size=1M,mem-path=%s,share=on "
            "-machine none,memory-backend=m0", empty);
        g_autofree char *st_text = qtest_status(s);

        g_assert_cmpstr(st_text, ==, "running");
    }
    g_assert_cmpint(stat(empty, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 1 * MiB);
}

static void test_logfile_and_trace(void)
{
    g_autofree char *log = qtest_tmp_path("vmig", "log");
    g_autoptr(QTestState) s = qtest_initf("-m 32M -D %s -trace 'runstate_*'", log);
    g_autofree char *text = NULL;
    g_autoptr(JsonNode) r = NULL;

    qtest_qmp_assert_ok(s, "{\"execute\": \"stop\"}");
    r = qtest_qmp_assert_success(s, "{\"execute\": \"trace-event-get-state\","
                                    " \"arguments\": {\"name\": \"runstate_set\"}}");
    g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
    g_assert_nonnull(strstr(text, "runstate_set running -> paused"));
}

/* A -qmp mistake is caught before anything exists: no backend file made. */
static void test_no_partial_start(void)
{
    g_autofree char *file = qtest_tmp_path("backend", "img");
    g_autofree char *args = g_strdup_printf(
        "-object memory-backend-file,id=m,size=4M,mem-path=%s "
        "-machine memory-backend=m -qmp bogus", file);
    g_autofree char *err = NULL;

    g_assert_cmpint(qtest_run(args, NULL, &err), ==, 1);
    g_assert_nonnull(strstr(err, "-qmp bogus"));
    g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
}

/* -trace's key=value form: the pattern and the log file together. */
static void test_trace_keyval(void)
{
    g_autofree char *log = qtest_tmp_path("trace", "log");
    g_autoptr(QTestState) s = qtest_initf("-m 32M -trace enable=runstate_set,file=%s",
                                          log);
    g_autofree char *text = NULL;

    qtest_qmp_assert_ok(s, "{\"execute\": \"stop\"}");
    g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
    g_assert_nonnull(strstr(text, "runstate_set running -> paused"));
}

/*
 * A daemon keeps nothing of its caller's: with -D too, the caller's
 * stderr pipe sees its end as soon as the parent returns.
 */
static void test_daemonize_releases_stderr(void)
{
    g_autofree char *pidfile = qtest_tmp_path("vmig", "pid");
    g_autofree char *log = qtest_tmp_path("daemon", "log");
    g_autofree char *sock = qtest_tmp_path("qmp", "sock");
    g_autofree char *args = g_strdup_printf(
        "-daemonize -pidfile %s -D %s -m 32M -qmp unix:%s,server=on,wait=off",
        pidfile, log, sock);
    g_autofree char *text = NULL;
    g_autofree char *err = NULL;

    /* qtest_run reads stderr to its end: it returns only if it is released. */
    g_assert_cmpint(qtest_run(args, NULL, &err), ==, 0);
    g_assert_true(g_file_get_contents(pidfile, &text, NULL, NULL));
    pid_t pid = g_ascii_strtoll(text, NULL, 10);
    qtest_kill_at_exit(pid);
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000 && kill(pid, 0) == 0; i++) {
        g_usleep(10000);
    }
    g_assert_cmpint(kill(pid, 0), !=, 0);
    qtest_forget_pid(pid);
}

/* The process @pid really runs under @mask (it inherited ours). */
static void assert_umask(pid_t pid, const char *mask)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    g_autofree char *text = NULL;
    g_autofree char *line = g_strdup_printf("\nUmask:\t%s\n", mask);

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_assert_nonnull(strstr(text, line));
}

static void assert_private_socket(const char *path)
{
    struct stat st;

    g_assert_cmpint(lstat(path, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
}

/*
 * QMP and migration sockets are their owner's alone, even under umask 0,
 * and a live one is not taken over.  (The refusal is tried on a QMP socket:
 * the check connects, and a waiting -incoming would take that connection
 * as its stream.)
 */
static void test_socket_modes(void)
{
    g_autofree char *qmp = qtest_tmp_path("qmp", "sock");
    g_autofree char *mig = qtest_tmp_path("mig", "sock");
    g_autofree char *mig2 = qtest_tmp_path("mig", "sock");
    g_autofree char *desc = NULL;
    mode_t old_mask = umask(0);
    QTestState *src = qtest_initf("-m 32M -qmp unix:%s,server=on,wait=off "
                                  "-incoming unix:%s", qmp, mig);
    QTestState *dst = qtest_init("-m 32M -incoming defer");

    umask(old_mask);
    assert_umask(qtest_pid(src), "0000");
    assert_umask(qtest_pid(dst), "0000");
    assert_private_socket(qmp);
    assert_private_socket(mig);

    /* migrate-incoming: the same rules. */
    desc = qtest_qmp_expect_error(dst, "GenericError",
                                  "{\"execute\": \"migrate-incoming\", "
                                  "\"arguments\": {\"uri\": \"unix:%s\"}}",
                                  qmp);
    g_assert_nonnull(strstr(desc, "a server is already listening on"));
    qtest_detach(qtest_attach(src, qmp));
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"unix:%s\"}}", mig2);
    assert_private_socket(mig2);
    qtest_quit(dst);
    qtest_quit(src);
}

/* The TCP sockets @pid listens on, as /proc shows them: "ADDR:PORT" in hex. */
static GPtrArray *tcp_listeners(pid_t pid, bool ipv6)
{
    g_autofree char *fd_dir = g_strdup_printf("/proc/%d/fd", pid);
    g_autofree char *table = g_strdup_printf("/proc/%d/net/%s", pid,
                                             ipv6 ? "tcp6" : "tcp");
    g_autoptr(GHashTable) inodes = g_hash_table_new_full(g_str_hash,
                                                         g_str_equal, g_free,
                                                         NULL);
    g_autoptr(GDir) dir = g_dir_open(fd_dir, 0, NULL);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    GPtrArray *found = g_ptr_array_new_with_free_func(g_free);
    const char *name;

    g_assert_nonnull(dir);
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *link = g_build_filename(fd_dir, name, NULL);
        g_autofree char *target = g_file_read_link(link, NULL);

        if (target && g_str_has_prefix(target, "socket:[")) {
            g_hash_table_add(inodes, g_strndup(target + 8,
                                               strlen(target) - 9));
        }
    }
    g_assert_true(g_file_get_contents(table, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ... */
    for (int i = 1; lines[i]; i++) {
        char local[64], state[8], inode[32];

        if (sscanf(lines[i], "%*s %63s %*s %7s %*s %*s %*s %*s %*s %31s",
                   local, state, inode) == 3 &&
            !strcmp(state, "0A") && g_hash_table_contains(inodes, inode)) {
            g_ptr_array_add(found, g_strdup(local));
        }
    }
    return found;
}

/* tcp::PORT listens on 127.0.0.1 only, and says that QMP is open there. */
static void test_qmp_tcp_localhost(void)
{
    g_autofree char *log = qtest_tmp_path("tcp", "log");
    g_autoptr(QTestState) s = qtest_initf(
        "-m 32M -D %s -qmp tcp::0,server=on,wait=off", log);
    g_autoptr(GPtrArray) v4 = tcp_listeners(qtest_pid(s), false);
    g_autoptr(GPtrArray) v6 = tcp_listeners(qtest_pid(s), true);
    struct sockaddr_in sin = {
        .sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    g_autofree char *text = NULL;
    g_autofree char *needle = NULL;
    unsigned port;
    char greeting[16];
    int fd;

    g_assert_cmpuint(v4->len, ==, 1);
    g_assert_cmpuint(v6->len, ==, 0);
    g_assert_true(g_str_has_prefix(v4->pdata[0], "0100007F:"));
    port = strtoul((char *)v4->pdata[0] + 9, NULL, 16);

    g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
    needle = g_strdup_printf("warning: -qmp tcp::0,server=on,wait=off: QMP "
                             "over TCP has no authentication and no "
                             "encryption: anyone who can connect to "
                             "127.0.0.1 port %u", port);
    g_assert_nonnull(strstr(text, needle));

    /* And it is the QMP server. */
    sin.sin_port = htons(port);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), ==, 0);
    g_assert_cmpint(recv(fd, greeting, sizeof(greeting), MSG_WAITALL), ==,
                    sizeof(greeting));
    g_assert_cmpmem(greeting, 6, "{\"QMP\"", 6);
    close(fd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cmdline/no-partial-start", test_no_partial_start);
    g_test_add_func("/cmdline/trace-keyval", test_trace_keyval);
    g_test_add_func("/cmdline/daemonize-releases-stderr", test_daemonize_releases_stderr);
    g_test_add_func("/cmdline/bad-options", test_bad_options);
    g_test_add_func("/cmdline/qemu-habits", test_qemu_habits);
    g_test_add_func("/cmdline/object-errors", test_object_errors);
    g_test_add_func("/cmdline/help", test_help);
    g_test_add_func("/cmdline/device-help", test_device_help);
    g_test_add_func("/cmdline/pidfile-daemonize", test_pidfile_daemonize);
    g_test_add_func("/cmdline/logfile-trace", test_logfile_and_trace);
    g_test_add_func("/cmdline/mem-path-not-resized", test_mem_path_not_resized);
    g_test_add_func("/cmdline/socket-modes", test_socket_modes);
    g_test_add_func("/cmdline/qmp-tcp-localhost", test_qmp_tcp_localhost);
    return g_test_run();
}
