/*
 * getfd / closefd: file descriptors a client passed with SCM_RIGHTS,
 * kept under a name until a command (migrate fd:NAME, say) claims them.
 *
 * The table is global, as a name given on one connection may be used
 * from another.  It has its own lock because monitor_fd_take() may be
 * called from a thread that is not the main one.
 */
#include "qemu/osdep.h"
#include "monitor/monitor-internal.h"
#include "qapi/qapi-types.h"

static GMutex named_fds_lock;
static GHashTable *named_fds;       /* name -> GINT_TO_POINTER(fd + 1) */

static void named_fd_close(gpointer value)
{
    close(GPOINTER_TO_INT(value) - 1);
}

static void named_fd_store(const char *name, int fd)
{
    g_mutex_lock(&named_fds_lock);
    if (!named_fds) {
        named_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          named_fd_close);
    }
    /* A new fd under a name in use replaces (and closes) the old one. */
    g_hash_table_insert(named_fds, g_strdup(name), GINT_TO_POINTER(fd + 1));
    g_mutex_unlock(&named_fds_lock);
}

int monitor_fd_take(const char *name, Error **errp)
{
    gpointer key, value;
    int fd = -1;

    g_mutex_lock(&named_fds_lock);
    if (named_fds &&
        g_hash_table_steal_extended(named_fds, name, &key, &value)) {
        g_free(key);
        fd = GPOINTER_TO_INT(value) - 1;
    }
    g_mutex_unlock(&named_fds_lock);
    if (fd < 0) {
        error_setg(errp, "No file descriptor named '%s' (pass one with getfd)",
                   name);
    }
    return fd;
}

void monitor_fds_cleanup(void)
{
    g_mutex_lock(&named_fds_lock);
    if (named_fds) {
        g_hash_table_destroy(named_fds);
        named_fds = NULL;
    }
    g_mutex_unlock(&named_fds_lock);
}

static const char *fdname_check(const char *name, Error **errp)
{
    if (!*name) {
        error_setg(errp, "Parameter 'fdname' must not be empty");
        return NULL;
    }
    /* Names that look like numbers would be mistaken for fd numbers. */
    if (g_ascii_isdigit(name[0])) {
        error_setg(errp, "Parameter 'fdname' must not start with a digit");
        return NULL;
    }
    return name;
}

void qmp_getfd(const QapiGetfdArgs *args, JsonNode **ret, Error **errp)
{
    QmpSession *session = qmp_session_current();
    const char *name = fdname_check(args->fdname, errp);
    int fd;

    if (!name) {
        return;
    }
    if (!session || !session->take_fd) {
        error_setg(errp, "getfd: this connection cannot pass file descriptors "
                   "(connect over a UNIX socket)");
        return;
    }
    fd = session->take_fd(session);
    if (fd < 0) {
        error_setg(errp, "getfd: no file descriptor came with SCM_RIGHTS on "
                   "this connection");
        return;
    }
    named_fd_store(name, fd);
}

void qmp_closefd(const QapiClosefdArgs *args, JsonNode **ret, Error **errp)
{
    const char *name = fdname_check(args->fdname, errp);
    int fd;

    if (!name) {
        return;
    }
    fd = monitor_fd_take(name, errp);
    if (fd >= 0) {
        close(fd);
    }
}
