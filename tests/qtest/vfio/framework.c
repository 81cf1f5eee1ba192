/*
 * Helpers of the VFIO migration tests.
 */
#include "qemu/osdep.h"
#include "framework.h"
#include "migration/framework.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

static char *contrib_binary(const char *device)
{
    const char *vmig = g_getenv("VMIG_BINARY");
    g_autofree char *dir = NULL;

    g_assert_nonnull(vmig);
    dir = g_path_get_dirname(vmig);
    /* The executable of contrib/meson.build, or one in its own folder. */
    for (int depth = 0; depth < 2; depth++) {
        char *bin = g_build_filename(dir, "contrib", device,
                                     depth ? device : NULL, NULL);

        if (g_file_test(bin, G_FILE_TEST_IS_REGULAR)) {
            return bin;
        }
        g_free(bin);
    }
    g_error("no %s executable in %s/contrib", device, dir);
}

/*
 * Whether the server accepts connections: its socket file appears at
 * bind(), a moment before listen(), when a connect is still refused.
 */
static bool server_listening(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    ok = fd >= 0 &&
         connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

bool vfio_servers_plain(void)
{
    const char *args = g_getenv("VFIO_TEST_SERVER_ARGS");

    return args && strstr(args, "--no-extensions");
}

/* Run "@device --socket PATH @args"; stderr to a log file when @log. */
static VfioServer *server_run(const char *device, const char *args, bool log)
{
    VfioServer *srv = g_new0(VfioServer, 1);
    g_autofree char *bin = contrib_binary(device);
    g_autofree char *cmd = NULL;
    g_auto(GStrv) argv = NULL;
    g_autoptr(GError) gerr = NULL;
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC), log_fd = -1;
    struct stat st;
    bool ok;

    g_assert_cmpint(null_fd, >=, 0);
    srv->socket = qtest_tmp_path("vdev", "sock");
    if (log) {
        srv->log = qtest_tmp_path("vdev", "log");
        log_fd = open(srv->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                      0600);
        g_assert_cmpint(log_fd, >=, 0);
    }
    cmd = g_strdup_printf("%s --socket %s %s", bin, srv->socket, args);
    ok = g_shell_parse_argv(cmd, NULL, &argv, &gerr) &&
         g_spawn_async_with_fds(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                qtest_child_setup, NULL, &srv->pid, -1,
                                null_fd, log_fd, &gerr);
    close(null_fd);
    if (log_fd >= 0) {
        close(log_fd);
    }
    if (!ok) {
        g_error("starting '%s': %s", cmd, gerr->message);
    }
    for (int i = 0; i < 500; i++) {
        if (stat(srv->socket, &st) == 0 && S_ISSOCK(st.st_mode) &&
            server_listening(srv->socket)) {
            return srv;
        }
        g_usleep(10 * 1000);
    }
    g_error("%s did not listen on %s within 5 s", device, srv->socket);
}

VfioServer *vfio_server_start(const char *extra)
{
    g_autofree char *args = g_strdup_printf("--mem-size %s %s %s",
                                            VFIO_TEST_MEM_SIZE,
                                            g_getenv("VFIO_TEST_SERVER_ARGS")
                                            ?: "", extra);

    return server_run("vfio-user-dma", args, false);
}

VfioServer *vfio_server_spawn(const char *device, const char *args)
{
    return server_run(device, args, true);
}

char *vfio_server_log(VfioServer *srv)
{
    char *text = NULL;

    if (!srv->log || !g_file_get_contents(srv->log, &text, NULL, NULL)) {
        return g_strdup("");
    }
    return text;
}

void vfio_server_kill(VfioServer *srv, int sig)
{
    int status;

    if (!srv->pid) {
        return;
    }
    kill(srv->pid, sig);
    for (int i = 0; i < 500; i++) {
        if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
            srv->pid = 0;
            return;
        }
        if (i == 300) {
            kill(srv->pid, SIGKILL);
        }
        g_usleep(10 * 1000);
    }
    g_error("vfio-user-dma (pid %d) did not exit", srv->pid);
}

void vfio_server_free(VfioServer *srv)
{
    vfio_server_kill(srv, SIGTERM);
    unlink(srv->socket);
    if (srv->log) {
        unlink(srv->log);
        g_free(srv->log);
    }
    g_free(srv->socket);
    g_free(srv);
}

bool vfio_server_alive(VfioServer *srv)
{
    int status;

    if (srv->pid && waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
        srv->pid = 0;       /* reaped: nothing left to kill */
    }
    return srv->pid != 0;
}

char *vfio_vm_args(VfioServer **srvs, unsigned n, const char *props)
{
    return vfio_vm_args_guest("-guest stress,ws=64M,rate=32M -guest dma",
                              srvs, n, props);
}

char *vfio_vm_args_guest(const char *guest, VfioServer **srvs, unsigned n,
                         const char *props)
{
    GString *s = g_string_new(guest);

    for (unsigned i = 0; i < n; i++) {
        g_string_append_printf(s, " -device vfio-user-pci,socket=%s,id=dev%u"
                               "%s%s", srvs[i]->socket, i,
                               props && *props ? "," : "", props ? props : "");
    }
    return g_string_free(s, FALSE);
}

static JsonNode *dev_get(QTestState *s, const char *id, const char *prop)
{
    return qtest_qmp_assert_success(s, "{\"execute\": \"qom-get\", "
                                    "\"arguments\": {\"path\": \"%s\", "
                                    "\"property\": \"%s\"}}", id, prop);
}

char *vfio_dev_get_str(QTestState *s, const char *id, const char *prop)
{
    g_autoptr(JsonNode) r = dev_get(s, id, prop);

    return g_strdup(json_node_get_string(r));
}

int64_t vfio_dev_get_int(QTestState *s, const char *id, const char *prop)
{
    g_autoptr(JsonNode) r = dev_get(s, id, prop);

    return json_node_get_int(r);
}

char *vfio_mig_state(QTestState *s, const char *id)
{
    return vfio_dev_get_str(s, id, "migration-state");
}

int64_t vfio_transferred(QTestState *s)
{
    g_autoptr(JsonNode) q = mig_query(s);
    JsonObject *obj = qtest_obj(q);

    if (!json_object_has_member(obj, "vfio")) {
        return 0;
    }
    return json_object_get_int_member(
        json_object_get_object_member(obj, "vfio"), "transferred");
}

bool vfio_guest_verify(QTestState *s, char **detail)
{
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
        "{\"execute\": \"x-guest-verify\"}");
    JsonObject *obj = qtest_obj(r);
    bool ok = qtest_get_bool(r, "ok");

    if (detail) {
        *detail = json_object_has_member(obj, "detail") ?
            g_strdup(json_object_get_string_member(obj, "detail")) : NULL;
    }
    return ok;
}

static int64_t program_pages(QTestState *s, const char *name)
{
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
        "{\"execute\": \"x-query-guest\"}");
    JsonArray *progs = json_object_get_array_member(qtest_obj(r), "programs");

    for (guint i = 0; i < json_array_get_length(progs); i++) {
        JsonObject *p = json_array_get_object_element(progs, i);

        if (!strcmp(json_object_get_string_member(p, "name"), name)) {
            return json_object_get_int_member(p, "pages-written");
        }
    }
    g_error("the guest runs no %s program", name);
}

void vfio_wait_program_progress(QTestState *s, const char *name,
                                int64_t pages)
{
    int64_t start = program_pages(s, name);

    for (int i = 0; i < 1000; i++) {
        if (program_pages(s, name) >= start + pages) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_error("the %s program wrote fewer than %" PRId64 " pages in 10 s",
            name, pages);
}

void vfio_wait_dma_progress(QTestState *s, int64_t pages)
{
    vfio_wait_program_progress(s, "dma", pages);
}
