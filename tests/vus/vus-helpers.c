/*
 * Helpers of the vfio-user integration tests.
 */
#include "vus-helpers.h"

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

static char *tmp_dir;
static int tmp_dir_fd = -1;
static volatile pid_t live_pids[VUS_TEST_MAX_SERVERS * 2];
static unsigned server_seq;

/* Async-signal-safe enough for an aborting test: kill, unlink, rmdir. */
static void cleanup_everything(void)
{
    DIR *dir;
    struct dirent *de;

    for (size_t i = 0; i < ARRAY_SIZE(live_pids); i++) {
        if (live_pids[i] > 0) {
            kill(live_pids[i], SIGKILL);
            live_pids[i] = 0;
        }
    }
    if (tmp_dir_fd < 0) {
        return;
    }
    dir = fdopendir(dup(tmp_dir_fd));
    while (dir && (de = readdir(dir))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            unlinkat(tmp_dir_fd, de->d_name, 0);
        }
    }
    if (dir) {
        closedir(dir);
    }
    close(tmp_dir_fd);
    tmp_dir_fd = -1;
    rmdir(tmp_dir);
}

static void on_abort(int sig)
{
    cleanup_everything();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void track_pid(pid_t pid, bool add)
{
    for (size_t i = 0; i < ARRAY_SIZE(live_pids); i++) {
        if (add ? live_pids[i] == 0 : live_pids[i] == pid) {
            live_pids[i] = add ? pid : 0;
            return;
        }
    }
    g_assert(!add);
}

void vus_test_init(int *argc, char ***argv)
{
    g_autoptr(GError) gerr = NULL;

    g_test_init(argc, argv, NULL);
    tmp_dir = g_dir_make_tmp("vus-test-XXXXXX", &gerr);
    g_assert_no_error(gerr);
    tmp_dir_fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    g_assert_cmpint(tmp_dir_fd, >=, 0);
    signal(SIGABRT, on_abort);
    signal(SIGSEGV, on_abort);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup_everything);
}

char *vus_test_path(const char *name)
{
    return g_build_filename(tmp_dir, name, NULL);
}

const char *vus_test_bin(const char *env)
{
    const char *path = g_getenv(env);

    if (!path || access(path, X_OK) < 0) {
        g_error("%s must name the built program (set by meson test)", env);
    }
    return path;
}

/* fork + exec with stdout/stderr to @log; the child dies with us. */
static pid_t spawn(char **argv, const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();

    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        _exit(127);
    }
    track_pid(pid, true);
    return pid;
}

/* Wait for @pid at most @ms; returns the wait status or -1. */
static int reap(pid_t pid, int ms)
{
    int status;

    for (int waited = 0; waited <= ms; waited += 5) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid) {
            track_pid(pid, false);
            return status;
        }
        g_usleep(5000);
    }
    return -1;
}

static bool can_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

/* Takes @socket. */
static VusServer *server_start_va(char *socket, const char *first_arg,
                                  va_list ap)
{
    VusServer *s = g_new0(VusServer, 1);
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *log_name = g_strdup_printf("dma%u.log", server_seq++);
    const char *arg;

    s->socket = socket;
    s->log = vus_test_path(log_name);
    g_ptr_array_add(argv, g_strdup(vus_test_bin("VUS_DMA_BIN")));
    g_ptr_array_add(argv, g_strdup("--socket"));
    g_ptr_array_add(argv, g_strdup(s->socket));
    for (arg = first_arg; arg; arg = va_arg(ap, const char *)) {
        g_ptr_array_add(argv, g_strdup(arg));
    }
    g_ptr_array_add(argv, NULL);
    s->pid = spawn((char **)argv->pdata, s->log);

    for (int i = 0; i < 1000; i++) {
        int status;

        if (can_connect(s->socket)) {
            return s;
        }
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            g_autofree char *log = NULL;

            track_pid(s->pid, false);
            g_file_get_contents(s->log, &log, NULL, NULL);
            g_error("vfio-user-dma exited at start: %s", log ? log : "");
        }
        g_usleep(5000);
    }
    g_error("vfio-user-dma did not listen on %s within 5 s", s->socket);
}

VusServer *vus_server_start(const char *first_arg, ...)
{
    g_autofree char *sock_name = g_strdup_printf("dma%u.sock", server_seq);
    VusServer *s;
    va_list ap;

    va_start(ap, first_arg);
    s = server_start_va(vus_test_path(sock_name), first_arg, ap);
    va_end(ap);
    return s;
}

VusServer *vus_server_start_at(const char *socket, const char *first_arg, ...)
{
    VusServer *s;
    va_list ap;

    va_start(ap, first_arg);
    s = server_start_va(g_strdup(socket), first_arg, ap);
    va_end(ap);
    return s;
}

static void server_free(VusServer *s)
{
    unlink(s->socket);
    unlink(s->log);
    g_free(s->socket);
    g_free(s->log);
    g_free(s);
}

int vus_server_stop(VusServer *s)
{
    int status;

    kill(s->pid, SIGTERM);
    status = reap(s->pid, 5000);
    if (status < 0) {
        kill(s->pid, SIGKILL);
        status = reap(s->pid, 5000);
    }
    /* A clean exit, also under the sanitizers (leaks, UB). */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_autofree char *log = NULL;

        g_file_get_contents(s->log, &log, NULL, NULL);
        g_error("vfio-user-dma on %s ended with status 0x%x:\n%s", s->socket,
                status, log ? log : "");
    }
    server_free(s);
    return status;
}

void vus_server_kill(VusServer *s)
{
    kill(s->pid, SIGKILL);
    g_assert_cmpint(reap(s->pid, 5000), >=, 0);
    server_free(s);
}

VFIOUserProxy *vus_connect(VusServer *s, const VFIOUserConnectOptions *opts)
{
    VFIOUserConnectOptions defaults = { .timeout_ms = 10000 };
    Error *err = NULL;
    VFIOUserProxy *p = vfio_user_connect(s->socket, opts ? opts : &defaults,
                                         &err);

    if (!p) {
        g_error("connecting to %s: %s", s->socket, error_get_pretty(err));
    }
    return p;
}

uint64_t vus_reg_read(VFIOUserProxy *p, uint32_t reg)
{
    uint64_t v = 0;

    vfio_user_region_read(p, VDMA_REGS_BAR, reg, &v, 8, &error_abort);
    return v;
}

void vus_reg_write(VFIOUserProxy *p, uint32_t reg, uint64_t val)
{
    vfio_user_region_write(p, VDMA_REGS_BAR, reg, &val,
                           reg == VDMA_REG_CTRL || reg == VDMA_REG_DOORBELL ||
                           reg == VDMA_REG_STATUS ? 4 : 8, &error_abort);
}

void vus_set_state(VFIOUserProxy *p, uint32_t state)
{
    vfio_user_mig_set_state(p, state, NULL, &error_abort);
}

uint32_t vus_get_state(VFIOUserProxy *p)
{
    uint32_t state;

    vfio_user_mig_get_state(p, &state, &error_abort);
    return state;
}

size_t vus_drain(VFIOUserProxy *p, GByteArray *out)
{
    size_t chunk = vfio_user_mig_data_chunk(p);
    size_t total = 0;

    for (;;) {
        guint old = out->len;
        ssize_t n;

        g_byte_array_set_size(out, old + chunk);
        n = vfio_user_mig_data_read(p, out->data + old, chunk, &error_abort);
        g_byte_array_set_size(out, old + n);
        total += n;
        if ((size_t)n < chunk) {
            return total;
        }
    }
}

int vus_run(char **out, char **err, const char *first_arg, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autofree char *log = vus_test_path("run.log");
    g_autofree char *errlog = vus_test_path("run.err");
    const char *arg;
    va_list ap;
    pid_t parent = getpid(), pid;
    int status;

    va_start(ap, first_arg);
    for (arg = first_arg; arg; arg = va_arg(ap, const char *)) {
        g_ptr_array_add(argv, (char *)arg);
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);

    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int efd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent || fd < 0 || efd < 0) {
            _exit(127);
        }
        dup2(fd, 1);
        dup2(efd, 2);
        execv(argv->pdata[0], (char **)argv->pdata);
        _exit(127);
    }
    track_pid(pid, true);
    status = reap(pid, 20000);
    if (status < 0) {
        kill(pid, SIGKILL);
        reap(pid, 5000);
        g_error("%s %s did not finish within 20 s", first_arg,
                argv->len > 2 ? (char *)argv->pdata[1] : "");
    }
    if (out) {
        g_file_get_contents(log, out, NULL, NULL);
    }
    if (err) {
        g_file_get_contents(errlog, err, NULL, NULL);
    }
    unlink(log);
    unlink(errlog);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
